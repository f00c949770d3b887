//! [`History`]: a record of every lock operation in a test, and the checkers run over it.
//!
//! Times are offsets on this process's monotonic clock. Events of clients in other processes
//! are stamped when their line is read here, which is later than they happened: a checker that
//! passes on those times passes on the true ones too only where lateness cannot hide a
//! violation, so ordering checks use in-process clients.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Acquire,
    Release,
    Refresh,
    Lost,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Unknown,
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Event {
    pub client: String,
    pub key: String,
    pub op: Op,
    pub invoke: Duration,
    pub complete: Duration,
    pub outcome: Outcome,
    pub token: Option<u64>,
}

/// The recorder; share it behind an `Arc`.
pub struct History {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    /// Now, as an offset from the start of the history.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn record(
        &self,
        client: &str,
        key: &str,
        op: Op,
        invoke: Duration,
        outcome: Outcome,
        token: Option<u64>,
    ) {
        let event = Event {
            client: client.to_owned(),
            key: key.to_owned(),
            op,
            invoke,
            complete: self.now(),
            outcome,
            token,
        };
        self.events.lock().unwrap().push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The intervals in which each client believed it held `key`: from its acquire's
    /// completion to its release's invocation or its loss's report (or the end of the test).
    pub fn tenures(&self, key: &str) -> Vec<(String, u64, Duration, Duration)> {
        let events = self.events();
        let mut out = Vec::new();
        for a in events
            .iter()
            .filter(|e| e.key == key && e.op == Op::Acquire && e.outcome == Outcome::Ok)
        {
            let end = events
                .iter()
                .filter(|e| e.key == key && e.token == a.token && e.client == a.client)
                .filter(|e| matches!(e.op, Op::Release | Op::Lost))
                .map(|e| {
                    if e.op == Op::Release {
                        e.invoke
                    } else {
                        e.complete
                    }
                })
                .min()
                .unwrap_or(Duration::MAX);
            out.push((a.client.clone(), a.token.unwrap_or(0), a.complete, end));
        }
        out.sort_by_key(|t| t.2);
        out
    }

    /// Checker: no two tenures of `key` overlap.
    pub fn check_no_overlap(&self, key: &str) -> Result<(), String> {
        let tenures = self.tenures(key);
        for pair in tenures.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.2 < a.3 {
                return Err(format!("tenures overlap on {key}: {a:?} and {b:?}"));
            }
        }
        Ok(())
    }

    /// Checker: tokens strictly increase in the order acquires completed.
    pub fn check_tokens_increase(&self, key: &str) -> Result<(), String> {
        let tokens: Vec<u64> = self.tenures(key).iter().map(|t| t.1).collect();
        if tokens.windows(2).all(|w| w[0] < w[1]) {
            Ok(())
        } else {
            Err(format!(
                "tokens on {key} do not strictly increase: {tokens:?}"
            ))
        }
    }

    /// Checker: every loss is reported before the next tenure's acquire completes.
    pub fn check_loss_before_next_acquire(&self, key: &str) -> Result<(), String> {
        let events = self.events();
        for lost in events.iter().filter(|e| e.key == key && e.op == Op::Lost) {
            let next = events.iter().find(|e| {
                e.key == key
                    && e.op == Op::Acquire
                    && e.outcome == Outcome::Ok
                    && e.token > lost.token
            });
            if let Some(next) = next {
                if next.complete < lost.complete {
                    return Err(format!(
                        "loss of token {:?} reported at {:?}, after token {:?} was granted at {:?}",
                        lost.token, lost.complete, next.token, next.complete
                    ));
                }
            }
        }
        Ok(())
    }
}
