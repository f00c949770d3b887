//! The bounded check of the lock protocol's model (`docs/protocol-model.md`): the design
//! passes, and each broken variant is caught with a counterexample.

use nlock_model::{Faults, Kind, LockProtocol, Protocol, Setup};
use stateright::{Checker, HasDiscoveries, Model};

const EXCLUSION: &str = "never two holders whose is_held() is true";
const ORDER: &str = "queued waiters are granted in arrival order";
const TOKENS: &str = "tokens increase in grant order";

fn setup(clients: Vec<Kind>, rates: Vec<u16>, faults: Faults, protocol: Protocol) -> Setup {
    Setup {
        clients,
        rates,
        faults,
        protocol,
        horizon: 80,
        check_liveness: true,
        expect_takeover: false,
    }
}

/// Runs the whole bounded check and asserts every property: no counterexample to the
/// `always` and `eventually` ones, an example of each `sometimes` one.
fn passes(s: Setup) -> usize {
    let checker = LockProtocol { setup: s }.checker().spawn_bfs().join();
    checker.assert_properties();
    checker.unique_state_count()
}

/// Runs until a counterexample to `property` is found, and returns its steps.
fn counterexample(mut s: Setup, property: &'static str) -> Vec<String> {
    s.check_liveness = false;
    let model = LockProtocol { setup: s };
    let checker = model
        .checker()
        .finish_when(HasDiscoveries::AnyOf([property].into()))
        .spawn_bfs()
        .join();
    let path = checker.assert_any_discovery(property);
    let model = LockProtocol {
        setup: checker.model().setup.clone(),
    };
    let steps = nlock_model::explain(&model, path.into_vec());
    eprintln!("counterexample to {property:?}:\n{}", steps.join("\n"));
    steps
}

fn two_queued() -> Vec<Kind> {
    vec![Kind::Queued, Kind::Queued]
}

/// The slowest and fastest clocks the drift bound allows.
const DRIFT_EXTREMES: [u16; 2] = [2, 6];

#[test]
fn the_design_holds_with_pauses_and_crashes() {
    let faults = Faults {
        pauses: 1,
        crashes: 1,
        ..Faults::default()
    };
    let mut s = setup(two_queued(), DRIFT_EXTREMES.into(), faults, Protocol::FULL);
    s.expect_takeover = true;
    passes(s);
}

#[test]
fn the_design_holds_with_lost_and_late_messages_and_a_waiter_giving_up() {
    let faults = Faults {
        losses: 1,
        delays: 1,
        give_ups: 1,
        ..Faults::default()
    };
    passes(setup(
        two_queued(),
        DRIFT_EXTREMES.into(),
        faults,
        Protocol::FULL,
    ));
}

#[test]
fn the_design_holds_for_three_waiters_with_a_crash() {
    let faults = Faults {
        crashes: 1,
        ..Faults::default()
    };
    passes(setup(
        vec![Kind::Queued; 3],
        vec![4],
        faults,
        Protocol::FULL,
    ));
}

#[test]
fn the_design_holds_across_a_reset_of_the_servers_data() {
    let faults = Faults {
        resets: 1,
        ..Faults::default()
    };
    passes(setup(
        two_queued(),
        DRIFT_EXTREMES.into(),
        faults,
        Protocol::FULL,
    ));
}

#[test]
fn an_old_client_that_barges_never_overlaps() {
    let faults = Faults {
        pauses: 1,
        ..Faults::default()
    };
    let clients = vec![Kind::Queued, Kind::Barging];
    passes(setup(
        clients,
        DRIFT_EXTREMES.into(),
        faults,
        Protocol::FULL,
    ));
}

#[test]
fn without_the_drift_margin_a_takeover_overlaps_a_slow_holder() {
    let faults = Faults {
        pauses: 1,
        ..Faults::default()
    };
    let broken = Protocol {
        drift_margin: false,
        ..Protocol::FULL
    };
    let s = setup(two_queued(), DRIFT_EXTREMES.into(), faults, broken);
    let steps = counterexample(s, EXCLUSION);
    assert!(steps.iter().any(|s| s.contains("Takeover")), "{steps:#?}");
}

#[test]
fn a_waiter_that_skips_the_queue_is_granted_out_of_order() {
    let broken = Protocol {
        queue_order: false,
        ..Protocol::FULL
    };
    counterexample(
        setup(two_queued(), vec![4], Faults::default(), broken),
        ORDER,
    );
}

#[test]
fn without_the_restart_grace_a_reset_grants_a_key_still_held() {
    let faults = Faults {
        resets: 1,
        pauses: 1,
        ..Faults::default()
    };
    let broken = Protocol {
        restart_grace: false,
        ..Protocol::FULL
    };
    let s = setup(two_queued(), DRIFT_EXTREMES.into(), faults, broken);
    let steps = counterexample(s, EXCLUSION);
    assert!(steps.iter().any(|s| s.contains("Reset")), "{steps:#?}");
}

#[test]
fn todays_release_keeps_is_held_true_while_its_lost_answer_frees_the_key() {
    let faults = Faults {
        losses: 1,
        ..Faults::default()
    };
    let today = Protocol {
        release_ends_lease: false,
        ..Protocol::FULL
    };
    counterexample(
        setup(two_queued(), DRIFT_EXTREMES.into(), faults, today),
        EXCLUSION,
    );
}

#[test]
fn without_moving_a_reset_streams_sequence_tokens_go_back() {
    let faults = Faults {
        resets: 1,
        ..Faults::default()
    };
    let broken = Protocol {
        move_reset_sequence: false,
        ..Protocol::FULL
    };
    let steps = counterexample(setup(two_queued(), vec![4], faults, broken), TOKENS);
    assert!(steps.iter().any(|s| s.contains("Reset")), "{steps:#?}");
}
