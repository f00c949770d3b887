//! [`Resource`]: a register behind a lock, served over NATS request/reply, that records every
//! write. Fenced, it refuses a write whose token is lower than the highest it has seen, which is
//! how a real resource uses nlock's fencing token. Unfenced, it takes every write.

use std::sync::{Arc, Mutex};

use futures::StreamExt;

/// One write as the resource saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub token: u64,
    pub value: i64,
    pub accepted: bool,
}

#[derive(Debug, Default)]
struct State {
    value: i64,
    max_token: u64,
    writes: Vec<Write>,
}

/// The register; `read_subject()` and `write_subject()` are what clients request.
pub struct Resource {
    name: String,
    fenced: bool,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Resource {
    /// Serves the register on `client` under `res.<name>.read` / `res.<name>.write`.
    pub async fn start(client: async_nats::Client, name: &str, fenced: bool) -> Resource {
        let state = Arc::new(Mutex::new(State::default()));
        let mut subs = client
            .subscribe(format!("res.{name}.*"))
            .await
            .expect("subscribe resource");
        crate::harness::server_round_trip(&client).await;
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = subs.next().await {
                let Some(reply) = msg.reply.clone() else {
                    continue;
                };
                let answer = if msg.subject.ends_with(".read") {
                    st.lock().unwrap().value.to_string()
                } else {
                    let body: serde_json::Value =
                        serde_json::from_slice(&msg.payload).unwrap_or_default();
                    let token = body["token"].as_u64().unwrap_or(0);
                    let value = body["value"].as_i64().unwrap_or(0);
                    let mut s = st.lock().unwrap();
                    let accepted = !fenced || token >= s.max_token;
                    if accepted {
                        s.value = value;
                        s.max_token = s.max_token.max(token);
                    }
                    s.writes.push(Write {
                        token,
                        value,
                        accepted,
                    });
                    if accepted { "accepted" } else { "rejected" }.to_string()
                };
                let _ = client.publish(reply, answer.into()).await;
            }
        });
        Resource {
            name: name.to_owned(),
            fenced,
            state,
            task,
        }
    }

    pub fn read_subject(&self) -> String {
        format!("res.{}.read", self.name)
    }

    pub fn write_subject(&self) -> String {
        format!("res.{}.write", self.name)
    }

    pub fn value(&self) -> i64 {
        self.state.lock().unwrap().value
    }

    pub fn writes(&self) -> Vec<Write> {
        self.state.lock().unwrap().writes.clone()
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        self.task.abort();
    }
}
