//! The loop of one candidate: campaign (a waiting acquire), lead (run and supervise the
//! role), end the term (stop the role, then release), back off, and campaign again.
//!
//! It runs as a task on an actix arbiter (the caller's, or nlock's own), so roles start on
//! the same arbiter. It owns the command queue's receiver; the `Elector` handle, the
//! manager's shutdown hook and every `Term` hold senders.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::backoff::jittered_backoff;
use super::history::{KeyHistory, PreviousEnd};
use super::options::ElectorOptions;
use super::role::{RoleExit, RunningRole};
use super::status::{ElectorStatus, Standing};
use super::term::{Command, Term};
use crate::client::LockManager;
use crate::deadline::deadline_after;
use crate::error::{ErrorKind, LockError, LossReason};
use crate::handle::LockHandle;
use crate::lock::lease::{Lease, LeaseEnd};
use crate::lock::requests::LockOptions;

/// The longest pause between two restarts of a role that keeps failing within one term. The
/// first restart is immediate; each next one waits 50 ms more.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Starts one run of the role for a term: an actor or a future, on the current arbiter.
pub(crate) type RoleFactory = Box<dyn FnMut(Term) -> RunningRole>;

/// One candidate's campaign.
pub(crate) struct Campaign {
    pub(crate) manager: LockManager,
    pub(crate) key: String,
    pub(crate) options: ElectorOptions,
    pub(crate) lock_options: LockOptions,
    pub(crate) factory: RoleFactory,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) commands_tx: mpsc::UnboundedSender<Command>,
    pub(crate) status: watch::Sender<Standing>,
    pub(crate) history: KeyHistory,
}

/// What ends a term.
enum TermEnd {
    Lost(LossReason),
    Resign {
        hold_off: Duration,
        done: Option<oneshot::Sender<()>>,
    },
    Stop(Option<oneshot::Sender<()>>),
}

/// How one campaign attempt ended.
enum Attempt {
    Won(LockHandle),
    /// Asked to resign while campaigning: stand aside for this long.
    StandAside(Duration),
    /// Failed for a reason that may pass: back off and try again.
    Failed,
    Stop,
}

/// What to do after a term or an attempt.
enum Next {
    /// Campaign again after this wait.
    After(Duration),
    /// End the campaign.
    Stop,
}

impl Campaign {
    pub(crate) async fn run(mut self) {
        let span =
            tracing::info_span!("elector", key = %self.key, identity = %self.options.identity);
        async move {
            let mut failures = 0u32;
            let mut wait = Duration::ZERO;
            loop {
                if !wait.is_zero() {
                    self.set_status(ElectorStatus::HoldingOff, None);
                    if let Next::Stop = self.hold_off(wait).await {
                        break;
                    }
                }
                self.set_status(ElectorStatus::Campaigning, None);
                let next = match self.campaign().await {
                    Attempt::Won(lock) => {
                        failures = 0;
                        self.lead(lock).await
                    }
                    Attempt::StandAside(hold_off) => Next::After(hold_off),
                    Attempt::Stop => Next::Stop,
                    Attempt::Failed => {
                        failures = failures.saturating_add(1);
                        Next::After(self.backoff(failures))
                    }
                };
                match next {
                    Next::Stop => break,
                    Next::After(d) => wait = d,
                }
            }
            self.set_status(ElectorStatus::Stopped, None);
        }
        .instrument(span)
        .await
    }

    fn set_status(&self, status: ElectorStatus, lease: Option<Lease>) {
        let leads = matches!(status, ElectorStatus::Leading { .. });
        let led = matches!(
            self.status.send_replace(Standing { status, lease }).status,
            ElectorStatus::Leading { .. }
        );
        if leads != led {
            self.manager.meter().leadership(&self.key, leads);
        }
    }

    /// `failures` doublings of the first backoff, capped, plus up to half again at random.
    fn backoff(&self, failures: u32) -> Duration {
        let jitter = rand::rng().random_range(0.0..0.5);
        jittered_backoff(&self.options, failures, jitter)
    }

    /// Waits `wait` without campaigning; commands still count. A resign here extends the wait.
    async fn hold_off(&mut self, wait: Duration) -> Next {
        let mut until = deadline_after(wait);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Next::After(Duration::ZERO),
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Stop { .. }) => {
                        reply(cmd);
                        return Next::Stop;
                    }
                    Some(Command::Resign { hold_off, done }) => {
                        until = until.max(deadline_after(hold_off));
                        tell(done);
                    }
                    Some(Command::StepDown { .. }) => {}
                },
            }
        }
    }

    /// One waiting acquire, interrupted by a resign (stand aside) or a stop.
    async fn campaign(&mut self) -> Attempt {
        let acquire = self
            .manager
            .lock(&self.key)
            .options(self.lock_options.clone())
            .acquire();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                got = &mut acquire => return match got {
                    Ok(lock) => Attempt::Won(lock),
                    Err(e) => self.failed(e.lock_error()),
                },
                cmd = self.commands.recv() => match cmd {
                    // Dropping the acquire withdraws it and leaves no lock behind.
                    None | Some(Command::Stop { .. }) => {
                        reply(cmd);
                        return Attempt::Stop;
                    }
                    Some(Command::Resign { hold_off, done }) => {
                        tell(done);
                        return Attempt::StandAside(hold_off);
                    }
                    Some(Command::StepDown { .. }) => {}
                },
            }
        }
    }

    fn failed(&self, e: &LockError) -> Attempt {
        match e.kind() {
            // The manager shut down: nothing can be campaigned for any more.
            ErrorKind::ManagerGone => Attempt::Stop,
            // A bad key or options never get better.
            ErrorKind::InvalidKey | ErrorKind::InvalidConfig | ErrorKind::Unsupported => {
                tracing::error!(error = %e, "cannot campaign");
                Attempt::Stop
            }
            _ => {
                tracing::warn!(error = %e, "campaign failed; backing off");
                Attempt::Failed
            }
        }
    }

    /// One term: the lock-delay if the previous term ended uncleanly, then the role, restarted
    /// while the term lasts; then the end, in order: stop the role, wait, release.
    async fn lead(&mut self, lock: LockHandle) -> Next {
        let lease = lock.lease().clone();
        let token = lease.token();
        self.set_status(ElectorStatus::Leading { token }, Some(lease.clone()));
        tracing::info!(token, "leading");
        let term = Term::new(
            lease.clone(),
            Arc::from(self.options.identity.as_str()),
            self.commands_tx.clone(),
        );
        let delay = self.options.lock_delay;
        let previous = lease.previous_revision();
        let mut delay_until = match self.history.previous_end(token, previous, delay).await {
            PreviousEnd::Unclean if !delay.is_zero() => {
                tracing::info!(
                    ?delay,
                    "previous term ended uncleanly: waiting out the lock-delay"
                );
                Some(deadline_after(delay))
            }
            _ => None,
        };
        let mut role: Option<RunningRole> = None;
        let mut restarts = 0u32;
        let end = loop {
            if role.is_none() && delay_until.is_none() {
                if !lease.is_held() {
                    break TermEnd::Lost(lease_loss(&lease));
                }
                role = Some((self.factory)(term.clone()));
            }
            tokio::select! {
                // A loss first: nothing else matters once the term is over.
                biased;
                lost = lease.lost() => break TermEnd::Lost(lost.reason),
                cmd = self.commands.recv() => match cmd {
                    None => break TermEnd::Stop(None),
                    Some(Command::Stop { done }) => break TermEnd::Stop(done),
                    Some(Command::Resign { hold_off, done }) => {
                        break TermEnd::Resign { hold_off, done }
                    }
                    Some(Command::StepDown { token: t }) if t == token => {
                        tracing::info!("the role asked to step down");
                        break TermEnd::Resign { hold_off: self.backoff(1), done: None };
                    }
                    Some(Command::StepDown { .. }) => {} // from an earlier term
                },
                _ = sleep_until_opt(delay_until) => delay_until = None,
                exit = exited_opt(&mut role) => {
                    role = None;
                    restarts = restarts.saturating_add(1);
                    match exit {
                        RoleExit::Panicked => tracing::error!(restarts, "role panicked; restarting"),
                        RoleExit::Stopped => {
                            tracing::warn!(restarts, "role stopped (or returned); restarting")
                        }
                    }
                    let pause = Duration::from_millis(50)
                        .saturating_mul(restarts - 1)
                        .min(MAX_RESTART_DELAY);
                    if !pause.is_zero() {
                        delay_until = Some(deadline_after(pause));
                    }
                }
            }
        };
        // From here the term is ending: not leading, whatever the lease says.
        self.set_status(ElectorStatus::Ending { token }, None);
        term.end();
        // Stop the role and wait for it, at most `stop_timeout`, while keep-alive goes on
        // refreshing the term (the handle is kept): nobody else can lead meanwhile.
        let Some(mut role) = role else {
            self.release(lock, &end).await;
            tracing::info!(token, "term over");
            return self.after(end);
        };
        role.stop();
        let timeout = self.options.stop_timeout;
        if tokio::time::timeout(timeout, role.exited()).await.is_ok() {
            self.release(lock, &end).await;
            tracing::info!(token, "term over");
            return self.after(end);
        }
        // Never a release while the role may run, nor once it was cut short in its wind-down
        // (what it spawned may still hold what it was releasing): the term is left to expire
        // at its lease deadline (its `is_held()` turns false then), and only then can another
        // lead.
        lock.let_expire();
        if role.cut() {
            tracing::warn!(
                ?timeout,
                time_left = ?lease.time_left(),
                "role did not return within stop_timeout: dropped it; no longer refreshing \
                 the term, which expires at its lease deadline"
            );
            // Resolves as soon as its task has dropped it.
            role.exited().await;
            return self.after(end);
        }
        tracing::warn!(
            ?timeout,
            time_left = ?lease.time_left(),
            "role did not stop within stop_timeout: no longer refreshing the term, which \
             expires at its lease deadline; the role may still be running"
        );
        match end {
            // A shutdown does not wait any longer: bounded by `stop_timeout`.
            TermEnd::Stop(_) => self.after(end),
            _ => self.outwait(role, end).await,
        }
    }

    /// After a resign or a loss whose role would not stop: waits for it before this candidate
    /// campaigns again (so its own next role never overlaps it), unless told to stop meanwhile.
    async fn outwait(&mut self, mut role: RunningRole, end: TermEnd) -> Next {
        loop {
            tokio::select! {
                _ = role.exited() => {
                    tracing::info!("the late role has stopped");
                    return self.after(end);
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Stop { .. }) => {
                        tracing::warn!("stopping with the late role still running");
                        let _ = self.after(end);
                        reply(cmd);
                        return Next::Stop;
                    }
                    // Nothing is held any more: a resign is done at once.
                    Some(Command::Resign { done, .. }) => tell(done),
                    Some(Command::StepDown { .. }) => {}
                },
            }
        }
    }

    /// Releases the lock unless it is already lost.
    async fn release(&self, lock: LockHandle, end: &TermEnd) {
        if let TermEnd::Lost(_) = end {
            return;
        }
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "release at the end of a term");
        }
    }

    fn after(&self, end: TermEnd) -> Next {
        match end {
            TermEnd::Lost(reason) => {
                tracing::warn!(%reason, "lost the lead");
                Next::After(self.backoff(1))
            }
            TermEnd::Resign { hold_off, done } => {
                tell(done);
                Next::After(hold_off.max(self.backoff(1)))
            }
            TermEnd::Stop(done) => {
                tell(done);
                Next::Stop
            }
        }
    }
}

/// Why a lease that is no longer held ended (an expired deadline not yet told as a loss).
fn lease_loss(lease: &Lease) -> LossReason {
    match lease.end() {
        Some(LeaseEnd::Lost { reason }) => reason,
        _ => LossReason::Expired,
    }
}

async fn sleep_until_opt(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

async fn exited_opt(role: &mut Option<RunningRole>) -> RoleExit {
    match role {
        Some(role) => role.exited().await,
        None => std::future::pending().await,
    }
}

fn tell(done: Option<oneshot::Sender<()>>) {
    if let Some(done) = done {
        let _ = done.send(());
    }
}

fn reply(cmd: Option<Command>) {
    if let Some(Command::Stop { done }) = cmd {
        tell(done);
    }
}
