//! Deleting the consumers nlock creates, as soon as their user is done with them, instead of
//! leaving them to the server's inactivity timeout (until then they count against the
//! account's and the stream's consumer limits; enough of them stop new managers starting).
//!
//! Every consumer nlock creates is an ordered push consumer named `nlock_<random>`. The
//! client library re-creates an ordered consumer by itself when it falls behind or
//! reconnects, under the name `<name>_<n>`, and deletes the previous one as it does so;
//! which `n` is current it does not say. So a [`ConsumerGuard`] deletes its name, and if
//! that is not there any more, every consumer whose name starts with `<name>_`.

use std::sync::Arc;

use async_nats::jetstream;
use futures::StreamExt;

use crate::telemetry::Meter;

/// Deletes one consumer (and the re-creations of it) when dropped, on a task of its own: a
/// drop cannot wait for the server. The task runs on the current tokio runtime, or else on
/// the runtime the consumer was created on; with neither left, the server's inactivity
/// timeout (30 s for ordered consumers) removes it.
pub(crate) struct ConsumerGuard {
    js: jetstream::Context,
    stream: String,
    name: String,
    /// Where the guard was made: the runtime that runs the connection, used when the guard
    /// is dropped outside any runtime.
    runtime: Option<tokio::runtime::Handle>,
    /// Counts the consumer in `nlock_consumers_open` while the guard has it.
    meter: Arc<Meter>,
}

impl std::fmt::Debug for ConsumerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGuard")
            .field("stream", &self.stream)
            .field("name", &self.name)
            .finish()
    }
}

impl ConsumerGuard {
    /// A guard for the consumer `name` on `stream`, to be created right after this.
    pub(crate) fn new(js: jetstream::Context, stream: String, meter: Arc<Meter>) -> Self {
        meter.consumer(true);
        ConsumerGuard {
            meter,
            js,
            stream,
            // 128 random bits: unique among every process's consumers on the stream.
            name: format!("nlock_{:032x}", rand::random::<u128>()),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The consumer's name, to create it with.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the consumer now and waits for the server's answer (where the caller can wait:
    /// a shutdown, the end of a snapshot), so that a process exiting next leaves nothing.
    pub(crate) async fn delete_now(mut self) {
        let name = std::mem::take(&mut self.name);
        self.meter.consumer(false);
        delete(&self.js, &self.stream, &name).await;
    }
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return; // deleted already
        }
        self.meter.consumer(false);
        let (js, stream) = (self.js.clone(), std::mem::take(&mut self.stream));
        let name = std::mem::take(&mut self.name);
        let delete = async move { delete(&js, &stream, &name).await };
        match tokio::runtime::Handle::try_current()
            .ok()
            .or(self.runtime.take())
        {
            Some(runtime) => {
                runtime.spawn(delete);
            }
            None => tracing::debug!("no runtime to delete a consumer on; it times out instead"),
        }
    }
}

/// Deletes the consumer `name` of `stream`, or its latest re-creation. Failures are only
/// logged: the server's inactivity timeout is the fallback.
async fn delete(js: &jetstream::Context, stream: &str, name: &str) {
    if js.delete_consumer_from_stream(name, stream).await.is_ok() {
        return;
    }
    // Re-created under another name, or not created at all (then nothing matches), or the
    // server is unreachable (then the listing fails too).
    let Ok(handle) = js.get_stream_no_info(stream).await else {
        return;
    };
    let prefix = format!("{name}_");
    let mut names = handle.consumer_names();
    while let Some(Ok(found)) = names.next().await {
        if found.starts_with(&prefix) {
            if let Err(e) = handle.delete_consumer(&found).await {
                tracing::debug!(consumer = %found, error = %e, "consumer not deleted");
            }
        }
    }
}
