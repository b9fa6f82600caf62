//! Per-shard throughput limits, when the engine enforces them
//! (`EngineConfig::shard_limits`; `riffle server --shard-limits aws`): a debt
//! bucket per dimension, and the count of what they refused per stream.
//!
//! A [`Bucket`] owes time: charging `n` units at `per_s` units a second moves
//! the instant its debt is paid `n / per_s` seconds on (from now, when it
//! owed nothing). A request is admitted while the bucket owes less than
//! [`BURST`] (one second's worth of units), and once admitted its whole
//! cost is charged: an idle shard takes a request bigger than a second's
//! worth (and then refuses until it owes less than a second again), and the
//! sustained rate is `per_s`. [`ShardThrottle`] holds a shard's four buckets:
//! writes in bytes and records, reads in GetRecords calls and bytes served
//! (charged after the read, so that a large read puts the shard in debt, as
//! AWS's "if a call returns 10 MB, subsequent calls made within the next 5
//! seconds throw an exception").
//!
//! The buckets live on the shard's owning core (in its `ShardEntry`):
//! single-threaded, no atomics, no allocation. Time comes in as a monotonic [`Instant`]; the
//! module reads no clock. Only [`Refusals`] is shared: the cores count into
//! it (an atomic add) and the Kinesis metrics collector reads it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::ShardLimits;
use crate::metrics::Count;

/// A bucket admits while it owes less than this: one second's worth of units.
pub const BURST: Duration = Duration::from_secs(1);

/// One dimension's debt bucket.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    /// Units per second; at least 1 (`EngineConfig::validate`).
    per_s: u64,
    /// When what was charged is paid; at or before now: nothing owed.
    paid_at: Instant,
}

impl Bucket {
    /// A bucket of `per_s` units a second that owes nothing at `now`.
    pub fn new(per_s: u64, now: Instant) -> Bucket {
        assert!(per_s > 0, "a rate of 0 units per second admits nothing");
        Bucket {
            per_s,
            paid_at: now,
        }
    }

    /// What the bucket owes at `now`, in time.
    pub fn debt(&self, now: Instant) -> Duration {
        self.paid_at.saturating_duration_since(now)
    }

    /// Whether a request is admitted at `now`: the bucket owes less than [`BURST`].
    pub fn admits(&self, now: Instant) -> bool {
        self.debt(now) < BURST
    }

    /// Charges `units` at `now`: the debt grows by `units / per_s` seconds,
    /// rounded up to the nanosecond (never more than the rate admitted).
    pub fn charge(&mut self, units: u64, now: Instant) {
        let ns = (units as u128 * 1_000_000_000).div_ceil(self.per_s as u128);
        let cost = Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
        let from = self.paid_at.max(now);
        // Costs are bounded by a request's size (MiBs at ≥ 1 unit/s: days at
        // most); an `Instant` that far out cannot overflow, but never panic.
        self.paid_at = from.checked_add(cost).unwrap_or(from);
    }
}

/// A shard's four buckets.
#[derive(Clone, Copy, Debug)]
pub struct ShardThrottle {
    write_bytes: Bucket,
    write_records: Bucket,
    read_calls: Bucket,
    read_bytes: Bucket,
}

impl ShardThrottle {
    /// A shard's buckets under `limits`, owing nothing at `now`.
    pub fn new(limits: &ShardLimits, now: Instant) -> ShardThrottle {
        ShardThrottle {
            write_bytes: Bucket::new(limits.write_bytes_per_s, now),
            write_records: Bucket::new(limits.write_records_per_s, now),
            read_calls: Bucket::new(limits.read_calls_per_s, now),
            read_bytes: Bucket::new(limits.read_bytes_per_s, now),
        }
    }

    /// A batch of `records` records of `bytes` (data and partition keys):
    /// admitted, and charged, iff neither write bucket owes a second or more.
    pub fn admit_write(&mut self, records: u64, bytes: u64, now: Instant) -> bool {
        if !(self.write_bytes.admits(now) && self.write_records.admits(now)) {
            return false;
        }
        self.write_bytes.charge(bytes, now);
        self.write_records.charge(records, now);
        true
    }

    /// A GetRecords call: admitted, and one call charged, iff neither read
    /// bucket owes a second or more. The bytes it serves are charged after
    /// the read ([`ShardThrottle::charge_read`]).
    pub fn admit_read(&mut self, now: Instant) -> bool {
        if !(self.read_calls.admits(now) && self.read_bytes.admits(now)) {
            return false;
        }
        self.read_calls.charge(1, now);
        true
    }

    /// `bytes` served by an admitted GetRecords call.
    pub fn charge_read(&mut self, bytes: u64, now: Instant) {
        self.read_bytes.charge(bytes, now);
    }
}

/// What one stream incarnation's limits refused (CloudWatch's
/// `WriteProvisionedThroughputExceeded`: records; `ReadProvisionedThroughputExceeded`:
/// GetRecords calls).
#[derive(Debug, Default)]
pub struct StreamRefusals {
    pub records_refused: Count,
    pub reads_refused: Count,
}

/// Every stream's [`StreamRefusals`], by stream id (ids are never reused: a
/// stream created again starts from zero). Shared by the cores, which take
/// a stream's entry once per shard ([`Refusals::of`]) and then only add to
/// it, and the metrics collector, which drops those of deleted streams.
#[derive(Debug, Default)]
pub struct Refusals {
    streams: RwLock<HashMap<u64, Arc<StreamRefusals>>>,
}

impl Refusals {
    /// The refusals of stream id `stream_id` (made on first use).
    pub fn of(&self, stream_id: u64) -> Arc<StreamRefusals> {
        if let Some(r) = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&stream_id)
        {
            return r.clone();
        }
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        streams.entry(stream_id).or_default().clone()
    }

    /// Keeps only the streams `live` says exist; returns, per id it is
    /// asked for, (records refused, reads refused), zeros for a stream
    /// nothing was refused on yet.
    pub fn counts(&self, live: &[u64]) -> Vec<(u64, u64)> {
        let mut sorted = live.to_vec();
        sorted.sort_unstable();
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        streams.retain(|id, _| sorted.binary_search(id).is_ok());
        live.iter()
            .map(|id| {
                streams
                    .get(id)
                    .map_or((0, 0), |r| (r.records_refused.get(), r.reads_refused.get()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limits(
        write_bytes: u64,
        write_records: u64,
        read_calls: u64,
        read_bytes: u64,
    ) -> ShardLimits {
        ShardLimits {
            write_bytes_per_s: write_bytes,
            write_records_per_s: write_records,
            read_calls_per_s: read_calls,
            read_bytes_per_s: read_bytes,
            ..ShardLimits::aws()
        }
    }

    /// Requests of `cost` units every `every` from `t0` for `span`: how many
    /// were admitted.
    fn admitted(
        bucket: &mut Bucket,
        t0: Instant,
        every: Duration,
        span: Duration,
        cost: u64,
    ) -> u64 {
        let mut n = 0;
        let mut t = t0;
        while t < t0 + span {
            if bucket.admits(t) {
                bucket.charge(cost, t);
                n += 1;
            }
            t += every;
        }
        n
    }

    #[test]
    fn an_idle_bucket_admits_one_seconds_worth_at_once() {
        let t0 = Instant::now();
        // (rate, cost per request, admitted at one instant)
        for (per_s, cost, expected) in [
            (10, 1, 10),
            (5, 1, 5),
            (3, 1, 3),
            (1000, 500, 2),
            (1000, 300, 4),
            (7, 7, 1),
        ] {
            let mut b = Bucket::new(per_s, t0);
            let mut n = 0;
            while b.admits(t0) {
                b.charge(cost, t0);
                n += 1;
                assert!(n <= per_s, "rate {per_s}: unbounded");
            }
            assert_eq!(n, expected, "rate {per_s}, cost {cost}");
        }
    }

    #[test]
    fn the_sustained_rate_is_the_limit() {
        let t0 = Instant::now();
        // Offered far above the rate for 10 s: what 10 s pay at the rate plus
        // the second's worth still owed at the end.
        let mut b = Bucket::new(100, t0);
        assert_eq!(
            admitted(&mut b, t0, ms(1), Duration::from_secs(10), 1),
            1000 + 100
        );
        // Offered below the rate: everything.
        let mut b = Bucket::new(100, t0);
        assert_eq!(
            admitted(&mut b, t0, ms(20), Duration::from_secs(10), 1),
            500
        );
        // 5 calls a second, offered every 10 ms for 3 s: 3 s at the rate and
        // the second owed at the end.
        let mut b = Bucket::new(5, t0);
        assert_eq!(
            admitted(&mut b, t0, ms(10), Duration::from_secs(3), 1),
            15 + 5
        );
    }

    #[test]
    fn debt_is_paid_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        b.charge(30, t0);
        assert_eq!(b.debt(t0), Duration::from_secs(3));
        assert!(!b.admits(t0 + ms(1999)));
        assert!(b.admits(t0 + ms(2001)));
        assert_eq!(b.debt(t0 + Duration::from_secs(5)), Duration::ZERO);
        // Charging after the debt was paid starts from then, not from the old instant.
        b.charge(5, t0 + Duration::from_secs(5));
        assert_eq!(b.debt(t0 + Duration::from_secs(5)), ms(500));
        // Rounded up: 3 units at 3/s owe a full second.
        let mut b = Bucket::new(3, t0);
        b.charge(1, t0);
        b.charge(1, t0);
        b.charge(1, t0);
        assert!(!b.admits(t0));
    }

    #[test]
    fn a_batch_bigger_than_the_burst_gets_through_an_idle_shard() {
        let t0 = Instant::now();
        let mut t = ShardThrottle::new(&limits(1 << 20, 1000, 5, 2 << 20), t0);
        // 1.5 MiB at 1 MiB/s: admitted when idle, then 1.5 s owed.
        assert!(t.admit_write(10, 3 << 19, t0));
        assert!(!t.admit_write(1, 1, t0 + ms(499)));
        assert!(t.admit_write(1, 1, t0 + ms(501)));
        // A huge cost never panics (a day owed at 1 unit a second).
        let mut b = Bucket::new(1, t0);
        b.charge(86_400, t0);
        assert_eq!(b.debt(t0), Duration::from_secs(86_400));
        b.charge(u64::MAX, t0);
        assert!(!b.admits(t0));
    }

    #[test]
    fn dimensions_refuse_independently() {
        let t0 = Instant::now();
        // Records: 10/s, bytes plenty. 10 records of 1 byte fill the records bucket.
        let mut t = ShardThrottle::new(&limits(1 << 20, 10, 5, 2 << 20), t0);
        assert!(t.admit_write(10, 10, t0));
        assert!(!t.admit_write(1, 1, t0));
        // Reads have buckets of their own.
        assert!(t.admit_read(t0));
        // Bytes: 100/s, records plenty. 100 bytes in one record fill the bytes bucket.
        let mut t = ShardThrottle::new(&limits(100, 1000, 5, 2 << 20), t0);
        assert!(t.admit_write(1, 100, t0));
        assert!(!t.admit_write(1, 1, t0));
        assert!(t.admit_write(1, 1, t0 + ms(1)));
        // A refused request charges nothing: still open at the same instant after it.
        let mut t = ShardThrottle::new(&limits(100, 10, 5, 2 << 20), t0);
        assert!(t.admit_write(9, 99, t0));
        assert!(t.admit_write(1, 1, t0));
        assert!(!t.admit_write(1, 1, t0));
        // (Had the refusal been charged, 1 ms later the shard would still owe
        // more than a second.)
        assert!(t.admit_write(1, 1, t0 + ms(1)));
        assert!(!t.admit_write(1, 1, t0 + ms(1)));
    }

    #[test]
    fn reads_count_calls_and_the_bytes_they_served() {
        let t0 = Instant::now();
        let mut t = ShardThrottle::new(&limits(1 << 20, 1000, 5, 2 << 20), t0);
        for i in 0..5 {
            assert!(t.admit_read(t0), "call {i}");
        }
        assert!(!t.admit_read(t0));
        assert!(t.admit_read(t0 + ms(201)));
        // 10 MiB served at 2 MiB/s: 5 s owed; refused until less than a second is.
        let mut t = ShardThrottle::new(&limits(1 << 20, 1000, 5, 2 << 20), t0);
        assert!(t.admit_read(t0));
        t.charge_read(10 << 20, t0);
        assert!(!t.admit_read(t0 + ms(3999)));
        assert!(t.admit_read(t0 + ms(4001)));
        // Writes are not held back by reads.
        assert!(t.admit_write(1, 1, t0));
    }

    #[test]
    fn refusals_are_kept_for_live_streams_only() {
        let r = Refusals::default();
        r.of(1).records_refused.add(3);
        r.of(1).reads_refused.add(1);
        r.of(2).records_refused.add(7);
        assert_eq!(r.counts(&[1, 2, 3]), vec![(3, 1), (7, 0), (0, 0)]);
        // Stream 1 deleted: its counts go; a new incarnation starts from zero.
        assert_eq!(r.counts(&[2]), vec![(7, 0)]);
        assert_eq!(r.counts(&[1, 2]), vec![(0, 0), (7, 0)]);
    }
}
