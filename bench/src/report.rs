//! Results: latency histograms (microseconds, 3 significant digits), the
//! report a run produces, and its two renderings, a human table and one JSON
//! object for scripts.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::machine::Machine;

/// A latency histogram in microseconds, 1 µs to 1 hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Cpu {
    /// CPU seconds the bench process used during the measured window.
    pub client_s: f64,
    /// CPU seconds the server process used, when known.
    pub server_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The headline rate: records produced (produce) or consumed (consume, tail,
    /// end-to-end, mixed) per second.
    pub records_per_sec: f64,
    /// Record data bytes per second (10^6 bytes = 1 MB), of the same records.
    pub bytes_per_sec: f64,
    /// The headline latency: produce-to-ack (produce), GetRecords call
    /// (consume), produce-to-consume (tail, end-to-end, mixed).
    pub latency_us: Percentiles,
    pub durability: String,
    pub record_size: usize,
    pub duration_s: f64,
    pub loop_mode: &'static str,
    /// Offered rate (records/s, open loop), when set.
    pub rate: Option<u64>,
    pub batch: usize,
    pub producers: usize,
    pub consumers: usize,
    pub shards: u32,
    pub streams: u32,
    pub produced_records_per_sec: f64,
    pub produced_bytes_per_sec: f64,
    pub consumed_records_per_sec: f64,
    pub consumed_bytes_per_sec: f64,
    pub ack_latency_us: Option<Percentiles>,
    pub e2e_latency_us: Option<Percentiles>,
    pub read_latency_us: Option<Percentiles>,
    /// Requests or records refused or failed (any error).
    pub errors: u64,
    /// Acknowledged records consumers had not received 30 s after the run.
    pub undelivered: u64,
    pub cpu: Cpu,
    pub machine: Machine,
    pub server: String,
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<22} {v}\n"));
        line("scenario", self.scenario.clone());
        line(
            "load",
            format!(
                "{} producers x batch {} x {} B, {} consumers, {} stream(s) x {} shards, {} loop{}",
                self.producers,
                self.batch,
                self.record_size,
                self.consumers,
                self.streams,
                self.shards,
                self.loop_mode,
                self.rate
                    .map(|r| format!(" at {r} records/s offered"))
                    .unwrap_or_default()
            ),
        );
        line(
            "durability / duration",
            format!("{} / {:.1} s", self.durability, self.duration_s),
        );
        if self.produced_records_per_sec > 0.0 {
            line(
                "produced",
                rate(self.produced_records_per_sec, self.produced_bytes_per_sec),
            );
        }
        if self.consumed_records_per_sec > 0.0 {
            line(
                "consumed",
                rate(self.consumed_records_per_sec, self.consumed_bytes_per_sec),
            );
        }
        let mut lat = |k: &str, p: &Option<Percentiles>| {
            if let Some(p) = p {
                line(
                    k,
                    format!(
                        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (µs, n={})",
                        p.p50, p.p90, p.p99, p.p999, p.max, p.count
                    ),
                );
            }
        };
        lat("produce-to-ack", &self.ack_latency_us);
        lat("produce-to-consume", &self.e2e_latency_us);
        lat("GetRecords call", &self.read_latency_us);
        line(
            "cpu",
            format!(
                "client {:.2} s, server {} (of {:.1} s x {} cores)",
                self.cpu.client_s,
                self.cpu
                    .server_s
                    .map(|s| format!("{s:.2} s"))
                    .unwrap_or_else(|| "unknown (pass --server-pid)".into()),
                self.duration_s,
                self.machine.cores
            ),
        );
        line(
            "errors",
            if self.undelivered > 0 {
                format!(
                    "{}, {} acknowledged records never delivered",
                    self.errors, self.undelivered
                )
            } else {
                self.errors.to_string()
            },
        );
        line("server", self.server.clone());
        line("machine", self.machine.describe());
        out
    }
}

fn rate(records: f64, bytes: f64) -> String {
    format!("{} records/s, {:.1} MB/s", human(records), bytes / 1e6)
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
