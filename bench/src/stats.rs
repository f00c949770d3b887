//! Samples and their summaries, and the process facts a run reads: thread CPU time and RSS.

use std::time::Duration;

/// Latency samples of one contender in one workload, plus the thread CPU time they used.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub lat: Vec<Duration>,
    pub cpu: Duration,
    /// Wall time of the batches these samples came from (throughput workloads).
    pub wall: Duration,
    /// Operations done in `wall` (throughput workloads).
    pub ops: u64,
    /// nats-server CPU time over the same batches (throughput workloads).
    pub server_cpu: Duration,
    /// Write-family system calls of the client thread over the samples: socket writes and
    /// the eventfd writes that wake tokio's driver.
    pub syscalls_write: u64,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.lat.push(d);
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.lat.clone();
        v.sort_unstable();
        let n = v.len();
        let total: Duration = v.iter().sum();
        let pct = |p: f64| -> Duration {
            if n == 0 {
                return Duration::ZERO;
            }
            // Nearest rank.
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            v[rank - 1]
        };
        let ops_per_sec = if self.ops > 0 && !self.wall.is_zero() {
            self.ops as f64 / self.wall.as_secs_f64()
        } else if n > 0 && !total.is_zero() {
            // One client, one operation at a time: its rate is 1 / mean latency.
            n as f64 / total.as_secs_f64()
        } else {
            0.0
        };
        let cpu_per_op = if n > 0 {
            self.cpu / n as u32
        } else {
            Duration::ZERO
        };
        Summary {
            n,
            p50: pct(0.50),
            p99: pct(0.99),
            min: v.first().copied().unwrap_or_default(),
            max: v.last().copied().unwrap_or_default(),
            ops_per_sec,
            cpu_per_op,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub min: Duration,
    pub max: Duration,
    pub ops_per_sec: f64,
    pub cpu_per_op: Duration,
}

/// CPU time of the calling thread. Every client in a run lives on the one actix thread, so
/// this is the client's CPU cost.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time (user + system) of this whole process.
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resident set size of this process, in bytes (VmRSS of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `d` in the unit that reads best next to its peers: µs below 10 ms, else ms.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 100.0 {
        format!("{us:.1} µs")
    } else if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// `a / b` as a ratio, `—` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> Option<f64> {
    if b.is_zero() {
        None
    } else {
        Some(a.as_secs_f64() / b.as_secs_f64())
    }
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
        None => "—".into(),
    }
}

/// Write-family system calls made so far by the calling thread (`syscw` of
/// /proc/thread-self/io): socket writes, and the eventfd writes that wake tokio's driver, so
/// the count shows a client's extra wake-ups. (Socket reads go through recvfrom, which that
/// file does not count.)
pub fn thread_write_syscalls() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/io").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}
