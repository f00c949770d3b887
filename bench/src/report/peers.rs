//! Section 6 of BENCHMARKS.md: the peers, etcd and Redis.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Results, Summary};

/// Section 6, when a workload with peers ran.
pub(super) fn write(body: &mut String, summary: &mut Summary, r: &Results) -> Result<()> {
    // ---- Workload 6
    if r.w1.is_some() || r.w2.is_some() || r.w4.is_some() {
        let _ = writeln!(body, "## 6. The peers: etcd and Redis\n");
        let mut have = vec![];
        for (name, _, _) in &r.servers {
            if name != "nats-server" {
                have.push(name.clone());
            }
        }
        if have.is_empty() {
            let _ = writeln!(body, "No peer ran in this run (see *Skipped* above).\n");
        } else {
            let _ = writeln!(
                body,
                "{} ran side by side with nlock in workloads 1, 2 and 4 above, interleaved in \
                 the same process (their rows in those tables). etcd: the v3 lock API \
                 (`etcd-client` `lock` with a lease granted per client, `unlock`); Redis: \
                 `SET key token NX PX 30000` and a Lua compare-and-delete. Neither can wait for a \
                 key the way a watch does: etcd's `lock` blocks in the server (which queues \
                 waiters in order), and Redis clients poll, here every 250 ms + jitter like the \
                 Go algorithm.\n",
                have.join(" and ")
            );
        }
        summary.push((
            "6".into(),
            "etcd and Redis reported side by side".into(),
            if have.is_empty() {
                "skipped".into()
            } else {
                have.join(", ")
            },
            if have.is_empty() {
                "not measured"
            } else {
                "reported"
            },
        ));
    }
    Ok(())
}
