//! The closing section of BENCHMARKS.md: where nlock's time and memory go, what is left, and
//! what would change it. Numbers come from this run's results; the mechanisms come from
//! profiling this code (see "How these were found"), and are stated without numbers of
//! their own.

use std::fmt::Write as _;
use std::time::Duration;

use crate::results::Results;
use crate::stats::{fmt_dur, Summary};

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn w1_row<'a>(rows: &'a [crate::w1::Row], name: &str) -> Option<&'a crate::w1::Row> {
    rows.iter().find(|r| r.name == name)
}

fn writes(row: &crate::w1::Row) -> f64 {
    row.samples.syscalls_write as f64 / row.samples.lat.len().max(1) as f64
}

/// What the allocations of one size per held lock are, as profiled with heaptrack on this
/// code (nlock 0.1.0, actix 0.13, tokio 1.x): only sizes that appear once per lock in this
/// run's breakdown are named.
fn known_allocation(size: usize) -> Option<&'static str> {
    Some(match size {
        1024 => "the `LockActor`'s tokio task: actix's `ContextFut` (the actor, its context, mailbox and items) in a task cell (`Actor::start` in `on_contended`, `src/lock/manager/grant.rs`)",
        384 => "the `tokio::sync::watch` channel behind `LockHandle::lost()`, in the lock's `LeaseState` (`src/lease.rs`, made by `LockActor::new` in `src/lock/actor.rs`); its shared state carries eight `Notify`s",
        112 => "the lock's timer, `run_later` boxed into the actor's context (`src/lock/actor/keep_alive.rs`)",
        130..=200 => "the lock value, the holder's JSON record (`Holder::encode`, `src/holder.rs`)",
        _ => return None,
    })
}

pub fn write(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Where the time and memory go, and what is left\n");

    if let Some((_, _, rows)) = &r.w1 {
        if let (Some(nl), Some(raw), Some(ttl)) = (
            w1_row(rows, "nlock"),
            w1_row(rows, "raw floor"),
            w1_row(rows, "raw floor + Nats-TTL"),
        ) {
            let (a, b, t): (Summary, Summary, Summary) = (
                nl.samples.summary(),
                raw.samples.summary(),
                ttl.samples.summary(),
            );
            let header = match crate::stats::ratio(t.p50, b.p50) {
                Some(x) if x > 1.05 => format!(
                    "The raw floor with nlock's `Nats-TTL` header takes {} at p50 against {} \
                     without it: the header costs the server {:.0} % here.",
                    fmt_dur(t.p50),
                    fmt_dur(b.p50),
                    (x - 1.0) * 100.0
                ),
                _ => format!(
                    "The raw floor with nlock's `Nats-TTL` header takes {} at p50 against {} \
                     without it, so the header is not what makes the difference here.",
                    fmt_dur(t.p50),
                    fmt_dur(b.p50)
                ),
            };
            let _ = writeln!(
                out,
                "**Workload 1.** nlock's cycle costs {:.1} µs of client CPU against the raw \
                 floor's {:.1} µs, and makes {:.1} write system calls against {:.1} (the raw \
                 floor's are its two publishes). {header} Profiling the cycle in a loop \
                 (`nlock-bench profile nlock 20000` under `perf record` and `strace -f -k`) \
                 shows where the client's extra time goes: the extra write calls are eventfd \
                 writes that wake tokio's I/O \
                 driver. Each one follows a timer registered during the cycle (async-nats's \
                 ack timeout on each publish) at a moment when the driver last parked with only \
                 the lock actor's far timer pending (its next refresh or lease deadline) or \
                 none; tokio then unparks the driver to move its wake-up earlier. \
                 The raw floor registers each timer while the previous one is still pending, so \
                 it rarely does. The rest of the gap is the actor hops of a cycle (caller → \
                 manager → contender future → lock actor → caller, and the release through \
                 the lock actor) and the per-lock set-up (a task, a timer, a watch channel, \
                 the holder's JSON, random ids). With 1 ms of idle before each cycle every hop \
                 pays a wake-up of a parked thread, which is why the ratio is worse there.\n",
                us(a.cpu_per_op),
                us(b.cpu_per_op),
                writes(nl),
                writes(raw),
            );
        }
    }

    if let Some((plan, rows)) = &r.w2 {
        crate::w2::analysis::write(out, plan, rows);
    }

    if let Some(o) = &r.w3 {
        let row = |i: usize| o.rows.get(i).map(|r| &r.2);
        if let (Some(nl), Some(raw), Some(plain)) = (row(0), row(1), row(3)) {
            let late = |s: &crate::stats::Samples| {
                let mut v: Vec<Duration> = s
                    .lat
                    .iter()
                    .copied()
                    .filter(|d| *d > crate::w3::PROMPT)
                    .collect();
                v.sort();
                match (v.first(), v.last()) {
                    (Some(a), Some(b)) => format!("{} to {}", fmt_dur(*a), fmt_dur(*b)),
                    _ => "none".into(),
                }
            };
            let _ = writeln!(
                out,
                "**Workload 3.** The raw watch floor reacts to the server's expiry marker, \
                 which has two modes here: prompt (within milliseconds of the deadline) or \
                 late. nlock takes whichever comes first of that marker and its own takeover at \
                 the end of the holder's lease (TTL · (1 + d) / (1 − d) after it saw the \
                 holder's last write, on its own clock, then a compare-and-set on that write: \
                 GUARANTEES.md, \"Takeover at the lease's end\"), so a late marker does not \
                 delay it by more than the drift allowance (2 ms at this TTL). Prompt within {}: \
                 nlock {}, the raw floor {}, the raw floor on a plainly written key {}; the late \
                 ones took nlock {}, the raw floor {}, the plain key {}.\n",
                fmt_dur(crate::w3::PROMPT),
                crate::w3::within(nl, crate::w3::PROMPT),
                crate::w3::within(raw, crate::w3::PROMPT),
                crate::w3::within(plain, crate::w3::PROMPT),
                late(nl),
                late(raw),
                late(plain),
            );
        }
    }

    if let Some((_, _, rows)) = &r.w4 {
        let get = |n: &str| rows.iter().find(|r| r.name == n).map(|r| &r.samples);
        if let (Some(nl), Some(raw)) = (get("nlock"), get("raw floor")) {
            let per = |s: &crate::stats::Samples, d: Duration| us(d) / s.ops.max(1) as f64;
            let ttl = get("raw floor + Nats-TTL");
            let (nc, ns, rc, rs) = (
                per(nl, nl.cpu),
                per(nl, nl.server_cpu),
                per(raw, raw.cpu),
                per(raw, raw.server_cpu),
            );
            let header = ttl
                .map(|t| {
                    let ts = per(t, t.server_cpu);
                    if ts > rs * 1.03 {
                        format!(
                            " The raw floor with nlock's `Nats-TTL` header costs the server \
                             {ts:.1} µs per cycle, {:.1} µs more than without: what a lock \
                             with a TTL of its own (which needs the header) costs the server.",
                            ts - rs
                        )
                    } else {
                        format!(
                            " The raw floor with nlock's `Nats-TTL` header costs the server \
                             {ts:.1} µs per cycle, within noise of the floor in this run."
                        )
                    }
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "**Workload 4.** With 64 in flight the client and nats-server share two cores, \
                 so throughput follows the CPU each cycle costs both: nlock {nc:.1} µs client + \
                 {ns:.1} µs server, the raw floor {rc:.1} + {rs:.1}.{header} The client part is \
                 the same per-lock set-up and hops as in workload 1: a lock actor started and \
                 stopped, its timer armed and cancelled, a watch channel, the holder's JSON, \
                 three messages through actix mailboxes.\n"
            );
        }
    }

    if let Some(reports) = &r.w5 {
        let largest = reports.iter().map(|x| x.n).max().unwrap_or(0);
        if let Some(nl) = reports
            .iter()
            .find(|x| x.variant == "nlock" && x.n == largest)
        {
            let timer = reports
                .iter()
                .find(|x| x.variant == "timer" && x.n == largest);
            let _ = writeln!(
                out,
                "**Workload 5.** A held lock is an actor: at {} locks nlock holds {:.2} KiB of \
                 heap per lock{}. The sizes in the table of workload 5, as profiled with \
                 heaptrack (`heaptrack nlock-bench hold nlock <url> <bucket> 10000 1`):\n",
                nl.n,
                nl.heap_per_lock() / 1024.0,
                timer
                    .map(|t| format!(
                        ", where one shared timer task needs {:.2} KiB",
                        t.heap_per_lock() / 1024.0
                    ))
                    .unwrap_or_default()
            );
            for (size, count, _) in &nl.grown {
                let per = *count as f64 / nl.n as f64;
                if let Some(what) = known_allocation(*size).filter(|_| (0.9..1.1).contains(&per)) {
                    let _ = writeln!(out, "- {size} B: {what}.");
                }
            }
            let _ = writeln!(
                out,
                "- The small allocations are strings held twice or three times per lock: the \
                 key (manager queue, tenure, handle), and the holder record (owner, host, \
                 tenure id) in the lock actor, in its tenure and in the manager's \
                 `KeyState::Held`.\n- The tables are the manager's map of keys and the \
                 caller's `Vec` of handles.\n"
            );
            let _ = writeln!(
                out,
                "Trimming further (one shared `Arc<Holder>`, `Arc<str>` keys, a smaller loss \
                 signal than a watch channel) removes a few hundred bytes more, but the actor's \
                 task alone is 1 KiB, so the goal of 1 KiB per lock needs held locks to stop \
                 being actors: a record per lock (key, value, revision, deadline) in one keeper \
                 per manager that refreshes from a single timer queue, as the shared-timer baseline does.\n"
            );
        }
    }

    let _ = writeln!(
        out,
        "**What is left to change in `src/`** (the benchmark only measures; the cheap fixes \
         its profile found, one timer per lock, no second timeout around a request, a shrunk \
         value, no idle queue buffer, `Nats-TTL` only for a TTL of the lock's own, are in this \
         run already).\n\n\
         1. For the 1 KiB goal: keep held locks as records in one keeper per manager with one \
         timer queue, and make `LockHandle` talk to the manager by key and token; a \
         `LockActor` would then exist only for callers that ask for its address. This \
         changes the public `LockHandle::actor()` and the `LockActor` messages. It also takes \
         the per-lock task start and stop out of every acquire and release (workloads 1 and 4).\n\
         2. Short of that: a smaller loss signal than the `tokio::sync::watch` channel (a \
         shared `Notify` plus a once-set cell), one shared `Arc<Holder>` for the lock actor, \
         its tenure and the manager's `KeyState::Held`, and `Arc<str>` keys: several hundred \
         bytes per lock.\n\
         3. Takeover (workload 3): done on the client (the takeover at the lease's end); \
         servers before 2.11, which announce no expiry, are not measured here (the raw \
         floor would never wake there).\n"
    );
}
