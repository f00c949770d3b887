//! Counterexamples in words: one line per step, with what changed.

use crate::protocol::{Action, LockProtocol};
use crate::state::{Phase, State};

fn client_line(s: &State, ends: bool) -> String {
    s.clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let phase = match c.phase {
                Phase::Holding(t) => format!("holds token {} until {}", t.token, t.deadline),
                Phase::Releasing(t) => {
                    format!("releases token {} (lease to {})", t.token, t.deadline)
                }
                p => format!("{p:?}").to_lowercase(),
            };
            let held = if c.is_held(s.now, ends) {
                ", is_held"
            } else {
                ""
            };
            format!("c{i}@{}x clock {}: {phase}{held}", c.rate, c.clock(s.now))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The steps of a path, each with the action taken and the state after it.
pub fn explain(model: &LockProtocol, path: Vec<(State, Option<Action>)>) -> Vec<String> {
    let ends = model.setup.protocol.release_ends_lease;
    let mut out = Vec::new();
    let mut last: Option<&State> = None;
    let states: Vec<&(State, Option<Action>)> = path.iter().collect();
    for (k, (s, _)) in states.iter().enumerate() {
        let what = match (k, last) {
            (0, _) | (_, None) => "start".to_string(),
            (_, Some(prev)) => {
                let a = states[k - 1].1;
                match a {
                    Some(Action::Deliver(i)) => format!("deliver {:?}", prev.net[i]),
                    Some(Action::Lose(i)) => format!("LOSE {:?}", prev.net[i]),
                    Some(Action::Delay(i)) => format!("DELAY {:?}", prev.net[i]),
                    Some(a) => format!("{a:?}"),
                    None => String::new(),
                }
            }
        };
        out.push(format!(
            "t{} {what}\n      lock {:?}; {}",
            s.now,
            s.server.lock.map(|l| (l.rev, l.owner)),
            client_line(s, ends)
        ));
        last = Some(s);
    }
    out
}
