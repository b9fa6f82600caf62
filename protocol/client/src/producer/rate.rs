//! The producer's per-shard rate limiting: two token buckets per shard (bytes
//! and records), each holding at most one second of its rate, so that a
//! producer alone stays within what a shard takes (AWS: 1 MiB/s and 1,000
//! records/s; a Riffle server enforces that with `--shard-limits aws`).
//!
//! A send waits until both buckets hold its cost, or, for a send costing more
//! than a second's worth, until they are full; it then takes its whole cost,
//! possibly leaving a debt that later sends wait out. The sustained rate is the
//! configured one and a server that admits while it is not in debt (Riffle's
//! rule) never refuses a lone producer's sends.

use std::time::{Duration, Instant};

/// A shard's throughput, per second, as the producer paces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRate {
    /// Data plus partition keys of the records put (aggregated records count
    /// as one record of their encoded size plus their partition key).
    pub bytes_per_second: u64,
    /// Kinesis records: an aggregated record counts once.
    pub records_per_second: u64,
}

impl ShardRate {
    /// What one AWS shard ingests: 1 MiB/s and 1,000 records/s.
    pub const fn aws() -> ShardRate {
        ShardRate {
            bytes_per_second: 1 << 20,
            records_per_second: 1000,
        }
    }
}

/// One bucket: `tokens` of at most `rate` (one second's worth), refilled at
/// `rate` per second; negative while in debt.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        let rate = rate.max(1) as f64;
        Bucket { rate, tokens: rate }
    }

    fn refill(&mut self, elapsed: Duration) {
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate);
    }

    /// How long until it holds what a send of `cost` needs.
    fn wait_for(&self, cost: f64) -> Duration {
        let need = cost.min(self.rate);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }
}

/// A shard's buckets.
#[derive(Clone, Copy, Debug)]
pub(super) struct RateLimiter {
    bytes: Bucket,
    records: Bucket,
    at: Instant,
}

impl RateLimiter {
    /// Full buckets at `now`.
    pub(super) fn new(rate: ShardRate, now: Instant) -> RateLimiter {
        RateLimiter {
            bytes: Bucket::new(rate.bytes_per_second),
            records: Bucket::new(rate.records_per_second),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        self.bytes.refill(elapsed);
        self.records.refill(elapsed);
        self.at = self.at.max(now);
    }

    /// When a send of `records` records and `bytes` bytes may go: None for now.
    pub(super) fn ready_at(
        &mut self,
        now: Instant,
        records: usize,
        bytes: usize,
    ) -> Option<Instant> {
        self.refill(now);
        let wait = self
            .bytes
            .wait_for(bytes as f64)
            .max(self.records.wait_for(records as f64));
        // Round up to a whole microsecond so that waking at the instant finds
        // the buckets full enough.
        (!wait.is_zero()).then(|| now + wait + Duration::from_micros(1))
    }

    /// Takes a send's cost.
    pub(super) fn take(&mut self, now: Instant, records: usize, bytes: usize) {
        self.refill(now);
        self.bytes.tokens -= bytes as f64;
        self.records.tokens -= records as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bytes: u64, records: u64) -> ShardRate {
        ShardRate {
            bytes_per_second: bytes,
            records_per_second: records,
        }
    }

    /// Sends `records` records of `bytes` bytes as soon as the limiter lets
    /// them go, `n` times, from `start`; returns when the last went.
    fn run(l: &mut RateLimiter, start: Instant, n: usize, records: usize, bytes: usize) -> Instant {
        let mut now = start;
        for _ in 0..n {
            if let Some(at) = l.ready_at(now, records, bytes) {
                now = at;
                assert_eq!(
                    l.ready_at(now, records, bytes),
                    None,
                    "ready at the instant it named"
                );
            }
            l.take(now, records, bytes);
        }
        now
    }

    #[test]
    fn a_full_bucket_lets_one_second_through_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(rate(1000, 1_000_000), t0);
        // 10 sends of 100 bytes: the first second's worth goes at once.
        assert_eq!(run(&mut l, t0, 10, 1, 100), t0);
        // The next 20 take two seconds.
        let end = run(&mut l, t0, 20, 1, 100);
        let took = end - t0;
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2001),
            "{took:?}"
        );
    }

    #[test]
    fn records_and_bytes_limit_independently() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(rate(1 << 30, 10), t0);
        // 10 records/s: 30 one-record sends after the burst of 10 take 3 s.
        let end = run(&mut l, t0, 40, 1, 1);
        let took = end - t0;
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_millis(3001),
            "{took:?}"
        );
        let mut l = RateLimiter::new(rate(100, 1_000_000), t0);
        let end = run(&mut l, t0, 4, 1000, 50);
        assert!(
            end - t0 >= Duration::from_secs(1),
            "bytes bound it: {:?}",
            end - t0
        );
    }

    #[test]
    fn a_send_larger_than_a_second_goes_when_full_and_leaves_a_debt() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(rate(100, 1000), t0);
        assert_eq!(l.ready_at(t0, 1, 500), None, "a full bucket lets it go");
        l.take(t0, 1, 500);
        // 500 taken from 100: a debt of 400, so a 100-byte send waits 5 s.
        let at = l.ready_at(t0, 1, 100).expect("in debt");
        let wait = at - t0;
        assert!(
            wait >= Duration::from_secs(5) && wait < Duration::from_millis(5001),
            "{wait:?}"
        );
    }

    #[test]
    fn an_instant_before_the_last_one_is_not_a_refill() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut l = RateLimiter::new(rate(100, 1000), later);
        l.take(later, 1, 100);
        assert!(l.ready_at(t0, 1, 100).is_some(), "no time passed");
    }
}
