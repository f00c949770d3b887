//! What one run measured, for the report (`report/`) and its analysis (`analysis.rs`), which
//! both read it: the report uses the analysis, never the reverse.

use std::time::Duration;

use crate::{leadership, w1, w2, w3, w4, w5};

#[derive(Default)]
pub struct Results {
    pub quick: bool,
    pub started_at: String,
    /// /proc/loadavg at the start and the end: other work on the machine shows here.
    pub load_start: String,
    pub load_end: String,
    pub elapsed: Duration,
    pub caps: Option<nlock::Capabilities>,
    pub value_len: usize,
    /// (name, version, flags)
    pub servers: Vec<(String, String, String)>,
    pub skipped: Vec<String>,
    /// (warm-up, iterations, rows)
    pub w1: Option<(usize, usize, Vec<w1::Row>)>,
    /// Workload 1 again with 1 ms of idle before each cycle.
    pub w1_idle: Option<(usize, usize, Vec<w1::Row>)>,
    pub w2: Option<(w2::Plan, Vec<w2::Row>)>,
    pub w3: Option<w3::Outcome>,
    /// (batches, operations per task, rows)
    pub w4: Option<(usize, usize, Vec<w4::Row>)>,
    pub w5: Option<Vec<w5::Report>>,
    /// Leadership measurements per server, if `scripts/bench` made them (`--leadership`).
    pub leadership: Option<Vec<leadership::Server>>,
}
