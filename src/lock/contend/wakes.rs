//! What wakes a waiting contender: the key's changes, from the manager's one change stream or
//! from a consumer of the contender's own.

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::store::{Change, Changes};

/// What wakes a waiting contender when the key may have become free.
pub(crate) enum Wakes {
    /// The key's changes, forwarded from the manager's one change stream while this contender
    /// runs. The manager makes the channel before the contender's first round, so a release
    /// after that round's read is in it.
    Feed(mpsc::Receiver<Change>),
    /// The manager follows no changes (`follow_changes(false)`): the contender follows the key
    /// with a consumer of its own while it waits, deleted when the wait ends. Still at most
    /// one per key per manager, since one contender per key runs.
    Own,
}

/// The next change of the key from whichever source the waiter has, or never when it has
/// none (the poll still runs). `None`: the manager's channel closed.
pub(super) async fn next_change(
    feed: &mut Option<mpsc::Receiver<Change>>,
    own: &mut Option<Changes>,
) -> Option<Change> {
    match (feed, own) {
        (Some(rx), _) => rx.recv().await,
        // A change stream never ends by itself (it reopens after a break).
        (None, Some(changes)) => match changes.next().await {
            Some(c) => Some(c),
            None => std::future::pending().await,
        },
        (None, None) => std::future::pending().await,
    }
}
