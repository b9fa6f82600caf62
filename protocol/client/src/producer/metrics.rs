//! What a producer counts about itself, readable at any time from any thread
//! ([`Producer::metrics`](super::Producer::metrics)): records put, failed and
//! expired, retries, throttling, bytes and records buffered, and the latency
//! from `send` to a record's result. Counting is an atomic add.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a producer's counters (totals since it started) and levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerMetrics {
    /// User records stored (each record given to `send`).
    pub user_records_put: u64,
    /// Kinesis records stored: an aggregated record counts once.
    pub kinesis_records_put: u64,
    /// Bytes stored (data and partition keys of the Kinesis records).
    pub bytes_put: u64,
    /// PutRecords requests sent.
    pub requests: u64,
    /// User records that failed (including expired ones).
    pub user_records_failed: u64,
    /// User records failed because their time to live ran out.
    pub user_records_expired: u64,
    /// Batches sent again after a retryable failure.
    pub retries: u64,
    /// Batches the server refused for throughput (ProvisionedThroughputExceeded).
    pub throttled: u64,
    /// Batches held back by the producer's own rate limit before sending.
    pub rate_limited: u64,
    /// Bytes of records given to `send` without a result yet.
    pub buffered_bytes: u64,
    /// Records given to `send` without a result yet.
    pub buffered_records: u64,
    /// From `send` to the result, over every record resolved: median, 99th
    /// percentile (within 1/8 of the value) and maximum.
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
}

/// Sub-buckets per power of two of the latency histogram (1/8 precision).
const SUB_BITS: u32 = 3;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) << SUB_BITS;

#[derive(Debug)]
pub(super) struct Counters {
    pub user_records_put: AtomicU64,
    pub kinesis_records_put: AtomicU64,
    pub bytes_put: AtomicU64,
    pub requests: AtomicU64,
    pub user_records_failed: AtomicU64,
    pub user_records_expired: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub rate_limited: AtomicU64,
    pub buffered_records: AtomicU64,
    latency_max_us: AtomicU64,
    /// Counts of latencies in microseconds, log-linear buckets.
    latency: Box<[AtomicU64]>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            user_records_put: AtomicU64::new(0),
            kinesis_records_put: AtomicU64::new(0),
            bytes_put: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            user_records_failed: AtomicU64::new(0),
            user_records_expired: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            buffered_records: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of a value: exact below `2^SUB_BITS`, then `2^SUB_BITS` buckets
/// per power of two.
fn bucket_of(v: u64) -> usize {
    if v < 1 << SUB_BITS {
        return v as usize;
    }
    let magnitude = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = (v >> shift) as usize & ((1 << SUB_BITS) - 1);
    (((shift + 1) as usize) << SUB_BITS) + sub
}

/// The largest value of a bucket.
fn bucket_high(b: usize) -> u64 {
    if b < 1 << SUB_BITS {
        return b as u64;
    }
    let shift = (b >> SUB_BITS) as u32 - 1;
    let sub = (b & ((1 << SUB_BITS) - 1)) as u64;
    let low = ((1u64 << SUB_BITS) | sub) << shift;
    low + ((1u64 << shift) - 1)
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(super) fn record_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency[bucket_of(us)].fetch_add(1, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
    }

    pub(super) fn snapshot(&self, buffered_bytes: u64) -> ProducerMetrics {
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (b, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_micros(bucket_high(b));
                }
            }
            Duration::ZERO
        };
        let max = Duration::from_micros(self.latency_max_us.load(Relaxed));
        ProducerMetrics {
            user_records_put: self.user_records_put.load(Relaxed),
            kinesis_records_put: self.kinesis_records_put.load(Relaxed),
            bytes_put: self.bytes_put.load(Relaxed),
            requests: self.requests.load(Relaxed),
            user_records_failed: self.user_records_failed.load(Relaxed),
            user_records_expired: self.user_records_expired.load(Relaxed),
            retries: self.retries.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            buffered_bytes,
            buffered_records: self.buffered_records.load(Relaxed),
            latency_p50: quantile(0.5).min(max),
            latency_p99: quantile(0.99).min(max),
            latency_max: max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_an_eighth() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v}");
            assert!(b >= last, "buckets grow with values");
            last = b;
            let high = bucket_high(b);
            assert!(high >= v, "{v} in bucket {b} up to {high}");
            assert!(high - v <= v / 8, "{v}: bucket {b} reaches {high}");
        }
    }

    #[test]
    fn quantiles_come_from_the_recorded_latencies() {
        let c = Counters::default();
        for ms in 1..=100 {
            c.record_latency(Duration::from_millis(ms));
        }
        let m = c.snapshot(0);
        let near = |d: Duration, ms: u64| {
            let ms = Duration::from_millis(ms);
            d >= ms && d <= ms + ms / 8
        };
        assert!(near(m.latency_p50, 50), "{:?}", m.latency_p50);
        assert!(near(m.latency_p99, 99), "{:?}", m.latency_p99);
        assert_eq!(m.latency_max, Duration::from_millis(100));
        assert_eq!(Counters::default().snapshot(0).latency_p99, Duration::ZERO);
    }
}
