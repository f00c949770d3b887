//! Publishes the server refused: a "Permissions Violation" arrives on the connection as an
//! `-ERR`, and the request that caused it gets no answer at all. The connection's event
//! callback (set up in `connect.rs`) records each refused subject here, and a request that
//! races against [`Denials::refused`] ends with the subject within one round trip, instead
//! of waiting out its timeout and reporting "unavailable" or an unknown outcome.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// How many refused subjects are kept: enough for every request in flight at once to find
/// its own.
const KEPT: usize = 256;

/// The publish subjects the server refused on one connection, newest last. Empty, and never
/// firing, for a connection nlock did not make (nothing records into it).
#[derive(Clone, Debug, Default)]
pub(crate) struct Denials(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// `(number, subject)`; numbers count up from 1. A std mutex: nothing awaits holding it.
    refused: Mutex<(u64, Vec<(u64, String)>)>,
    changed: Notify,
}

impl Denials {
    /// Records the server's error text if it is a publish permission violation, as
    /// `Permissions Violation for Publish to "<subject>"`. Other errors are ignored.
    pub(crate) fn record(&self, server_error: &str) {
        let Some(subject) = publish_violation(server_error) else {
            return;
        };
        if let Ok(mut refused) = self.0.refused.lock() {
            refused.0 += 1;
            let n = refused.0;
            refused.1.push((n, subject));
            if refused.1.len() > KEPT {
                refused.1.remove(0);
            }
        }
        self.0.changed.notify_waiters();
    }

    /// The number of the last refusal so far: a request takes it before it sends, and only
    /// later refusals count for it.
    fn mark(&self) -> u64 {
        self.0.refused.lock().map(|r| r.0).unwrap_or(0)
    }

    /// The first refused subject after `mark` that `matches`.
    fn find(&self, mark: u64, matches: &impl Fn(&str) -> bool) -> Option<String> {
        let refused = self.0.refused.lock().ok()?;
        refused
            .1
            .iter()
            .find(|(n, s)| *n > mark && matches(s))
            .map(|(_, s)| s.clone())
    }

    /// Runs `request`, unless the server refuses a publish to a subject that `matches`
    /// first: then `Err(subject)`. The request is dropped then; the server did not let its
    /// publish through, so nothing was done by it. `matches` must name only this request's
    /// own subjects, so that another request's refusal never ends it.
    pub(crate) async fn refused<T>(
        &self,
        matches: impl Fn(&str) -> bool,
        request: impl Future<Output = T>,
    ) -> Result<T, String> {
        let mark = self.mark();
        // On the heap: a request future (a whole bucket opening) can be large, and this one
        // holds it beside the refusal's.
        let request = Box::pin(request);
        let refusal = async {
            loop {
                let changed = self.0.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some(subject) = self.find(mark, &matches) {
                    return subject;
                }
                changed.await;
            }
        };
        tokio::select! {
            biased;
            done = request => Ok(done),
            subject = refusal => Err(subject),
        }
    }
}

/// A request the server refused for want of permission, as an error for code that passes
/// errors on boxed; [`super::unavailable_or_denied`] turns it into
/// [`LockError::PermissionDenied`](crate::LockError::PermissionDenied).
#[derive(Debug, thiserror::Error)]
#[error("permission denied: this NATS user may not publish to {0:?}")]
pub(crate) struct Refused(pub(crate) String);

/// The subject of a publish permission violation, from the server's error text.
fn publish_violation(text: &str) -> Option<String> {
    let rest = text
        .trim()
        .trim_matches('\'')
        .strip_prefix("Permissions Violation for Publish to ")?;
    Some(rest.trim().trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subject_of_a_publish_violation() {
        assert_eq!(
            publish_violation("Permissions Violation for Publish to \"$KV.b.k\"").as_deref(),
            Some("$KV.b.k")
        );
        assert_eq!(
            publish_violation("'Permissions Violation for Publish to \"$JS.API.X\"'").as_deref(),
            Some("$JS.API.X")
        );
        assert_eq!(
            publish_violation("Permissions Violation for Subscription to \"_INBOX.>\""),
            None
        );
        assert_eq!(publish_violation("Stale Connection"), None);
    }

    #[tokio::test]
    async fn a_request_ends_at_its_own_refusal_and_not_at_an_earlier_or_other_one() {
        let d = Denials::default();
        d.record("Permissions Violation for Publish to \"a\"");
        let pending = std::future::pending::<()>();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move {
                let _ = tx.send(());
                d.refused(|s| s == "a", pending).await
            })
        };
        rx.await.unwrap();
        tokio::task::yield_now().await;
        // The refusal before it started does not end it.
        assert!(!waiting.is_finished());
        d.record("Permissions Violation for Publish to \"b\"");
        d.record("Permissions Violation for Publish to \"a\"");
        assert_eq!(waiting.await.unwrap(), Err("a".to_owned()));
        // A request that finishes is not ended by a refusal.
        assert_eq!(d.refused(|_| true, async { 7 }).await, Ok(7));
    }
}
