//! `Term`: what a role gets when its candidate leads, and the commands a campaign takes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::lock::lease::Lease;

/// What the campaign loop is asked to do. Sent by the [`Elector`](super::Elector) handle, by
/// the manager's shutdown, and by a role through its [`Term`].
#[derive(Debug)]
pub(crate) enum Command {
    /// Hand the lead over now and do not campaign for `hold_off`; `done` is told when the
    /// role has stopped and the lock is released (at once when not leading).
    Resign {
        hold_off: Duration,
        done: Option<oneshot::Sender<()>>,
    },
    /// Resign for good and end the campaign.
    Stop { done: Option<oneshot::Sender<()>> },
    /// A role of term `token` asks to step down (unhealthy): like a resign with the default
    /// backoff, ignored when that term is already over.
    StepDown { token: u64 },
}

/// One term of leadership, as its role sees it: the election key, the fencing token of this
/// term, the lease, a way to step down, and the signal that the term is ending. Cheap to
/// clone; a role restarted within the term gets the same `Term`.
///
/// Check [`is_held`](Term::is_held) before acting, and pass [`token`](Term::token) to every
/// resource the role writes to: a role of a process that was paused may act after the next
/// term began, and only a resource that refuses lower tokens stops that.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let elector = m.elector("jobs.leader", nlock::ElectorOptions::new("node-a")).run(|term| async move {
///     println!("{} leads {} with token {}", term.identity(), term.key(), term.token());
///     println!("{:?} left", term.lease().time_left());
///     term.ending().await;
/// })?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Term {
    lease: Lease,
    identity: Arc<str>,
    /// The campaign loop's command queue: unbounded so that `step_down` never waits or fails
    /// for a full queue; the loop drains it all the time.
    commands: mpsc::UnboundedSender<Command>,
    /// Shared by every clone of this term (and so by every run of its role).
    end: Arc<EndSignal>,
}

/// The end of one term as its roles see it.
#[derive(Debug)]
struct EndSignal {
    /// True from the moment the term ends (a loss, a resign, a step-down, a shutdown); set
    /// once, by the campaign. A watch channel so that a role that asks late still sees it.
    ending: watch::Sender<bool>,
    /// Whether a role of this term asked for [`Term::ending`]: such an async role winds down
    /// by itself and is given up to `stop_timeout` to return, instead of being dropped at
    /// once. An atomic: roles set it from their own task, the campaign reads it.
    winds_down: AtomicBool,
}

impl Term {
    pub(crate) fn new(
        lease: Lease,
        identity: Arc<str>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Term {
        Term {
            lease,
            identity,
            commands,
            end: Arc::new(EndSignal {
                ending: watch::channel(false).0,
                winds_down: AtomicBool::new(false),
            }),
        }
    }

    /// The election key.
    pub fn key(&self) -> &str {
        self.lease.key()
    }

    /// The fencing token of this term: strictly greater than every earlier term's.
    pub fn token(&self) -> u64 {
        self.lease.token()
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The term's lease: `is_held()`, `time_left()`, `lost()`, `ended()`.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether this term still holds, as far as this process knows (read locally: false at
    /// the lease deadline even if nothing else ran meanwhile, as after a pause).
    ///
    /// ```no_run
    /// # async fn write(_token: u64) {}
    /// # async fn role(term: nlock::Term) {
    /// if term.is_held() {
    ///     write(term.token()).await; // the resource refuses tokens lower than the last seen
    /// }
    /// # }
    /// ```
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// Asks to step down (for a role that finds itself unhealthy): the role is stopped, the
    /// lock released, and the candidate campaigns again after its backoff. Does nothing once
    /// this term is over.
    ///
    /// ```no_run
    /// # async fn healthy() -> bool { true }
    /// # async fn role(term: nlock::Term) {
    /// if !healthy().await {
    ///     term.step_down();
    /// }
    /// # }
    /// ```
    pub fn step_down(&self) {
        // A closed queue means the campaign already ended, and with it this term.
        let _ = self.commands.send(Command::StepDown {
            token: self.token(),
        });
    }

    /// Resolves when this term ends, whatever ends it: a loss of the lock, a resign, a
    /// step-down, a shutdown (the context cancellation of client-go's
    /// `OnStartedLeading(ctx)`). At once if it has already ended.
    ///
    /// For an async role ([`ElectorRequest::run`](super::ElectorRequest::run)), calling
    /// this is how the role says it winds down by itself: from then on, at the end of this
    /// term its future is not dropped at once but polled on for up to
    /// [`stop_timeout`](super::ElectorOptions::stop_timeout) until it returns, the lock kept
    /// refreshed meanwhile (unless it was lost) and released only after. A role that never
    /// calls it is dropped as soon as the term ends. For an actor role it resolves when the
    /// actor is told to stop.
    ///
    /// ```no_run
    /// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let options = nlock::ElectorOptions::new("node-a");
    /// let elector = manager.elector("jobs.leader", options).run(|term| async move {
    ///     let ending = term.ending(); // asked first: this role winds down by itself
    ///     tokio::pin!(ending);
    ///     let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    ///     loop {
    ///         tokio::select! {
    ///             () = &mut ending => break,
    ///             _ = tick.tick() => println!("tick as leader, token {}", term.token()),
    ///         }
    ///     }
    ///     println!("flushing before the term is released");
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn ending(&self) -> impl Future<Output = ()> + Send + 'static {
        self.end.winds_down.store(true, Ordering::SeqCst);
        let mut ending = self.end.ending.subscribe();
        async move {
            // A sender gone means every `Term` of it is gone: the term is over too.
            let _ = ending.wait_for(|ending| *ending).await;
        }
    }

    /// Whether a role of this term asked for [`ending`](Term::ending).
    pub(crate) fn winds_down(&self) -> bool {
        self.end.winds_down.load(Ordering::SeqCst)
    }

    /// Tells this term's roles that it is ending; called once by the campaign.
    pub(crate) fn end(&self) {
        self.end.ending.send_replace(true);
    }
}
