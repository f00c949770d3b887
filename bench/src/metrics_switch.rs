//! A metrics recorder that workload 1 turns on for one manager: nlock registers a bucket's
//! series when a manager opens it, so the manager opened while the switch is on gets
//! metrics-exporter-prometheus's handles (what an app serving `/metrics` installs), and one
//! opened while it is off gets no-op handles, exactly as with no recorder installed. One
//! process, one global recorder: so the "nlock" and "nlock + Prometheus" rows run
//! interleaved in the same iterations, on the same server and machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The installed switch, once per process.
static SWITCH: OnceLock<&'static Switch> = OnceLock::new();

/// Forwards to Prometheus's recorder while `on`.
pub struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

impl Switch {
    /// Installs the switch as the global recorder (once; off at first).
    pub fn get() -> &'static Switch {
        SWITCH.get_or_init(|| {
            // Histograms with buckets, as an app serving /metrics has them (the builder
            // refuses only an empty list).
            let inner = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.005, 0.01, 0.1, 1.0])
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let switch: &'static Switch = Box::leak(Box::new(Switch {
                on: AtomicBool::new(false),
                inner,
            }));
            // A recorder of someone else (none in the bench) would leave the switch unused.
            let _ = metrics::set_global_recorder(switch);
            nlock::telemetry::describe();
            switch
        })
    }

    /// Hands out real handles from now on (`true`), or no-op ones.
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// What a scrape would show now.
    pub fn handle(&self) -> PrometheusHandle {
        self.inner.handle()
    }

    fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.on() {
            true => self.inner.register_counter(key, metadata),
            false => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.on() {
            true => self.inner.register_gauge(key, metadata),
            false => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.on() {
            true => self.inner.register_histogram(key, metadata),
            false => Histogram::noop(),
        }
    }
}
