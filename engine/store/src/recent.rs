//! Recently appended batches, kept in memory so that readers near the tip
//! (subscriptions, tailing GetRecords, a consumer a few seconds behind) are
//! served without reading the device back: segments are written with direct
//! I/O, so there is no page cache to hit.
//!
//! The pump hands every sealed batch it appends to [`RecentBatches::push`]
//! instead of dropping it (no copy: the buffer the batch arrived in is kept;
//! shared, so a read hands it to a reader on another thread without a copy);
//! the oldest go when the shard's budget (`LogConfig::recent_bytes_max`) is
//! exceeded. Batches are contiguous in offsets, so a read that starts at or
//! after the oldest one is answered from here entirely. Visibility still
//! applies: readers stop at the visible offset whatever is cached.
//!
//! A reader that follows the shard all the time (a delivery task: it must
//! read every record once, soon) says so at each read ([`RecentBatches::follow`]):
//! the batches it has not read yet are then kept past the budget, up to
//! `LogConfig::follow_bytes_max`, so a moment's lag (an object being written)
//! does not send it to the disk, where its reads would compete with the
//! segment writes and fall further behind. A follower that stops reading
//! for `FOLLOW_STALE_MS` protects nothing any more.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use riffle_protocol::batch::ValidBatch;

/// One cached batch: its offsets and its sealed bytes (as written to disk).
struct Cached {
    base_offset: u64,
    end_offset: u64,
    bytes: Arc<ValidBatch>,
}

/// A follower that has not read for this long no longer holds batches.
pub const FOLLOW_STALE_MS: i64 = 5_000;

/// The reader following the shard: where it reads next, and when it last read.
#[derive(Clone, Copy, Debug)]
struct Follower {
    offset: u64,
    read_ms: i64,
}

/// A shard's recently appended batches, oldest first. Lives on the shard's core.
pub struct RecentBatches {
    batches: VecDeque<Cached>,
    bytes: usize,
    bytes_max: usize,
    /// The most kept for a follower's unread batches (at least `bytes_max`).
    follow_bytes_max: usize,
    follower: Option<Follower>,
}

impl RecentBatches {
    /// Keeps `bytes_max` of the newest batches, and up to `follow_bytes_max`
    /// for a follower's unread ones.
    pub fn new(bytes_max: usize, follow_bytes_max: usize) -> RecentBatches {
        RecentBatches {
            batches: VecDeque::new(),
            bytes: 0,
            bytes_max,
            follow_bytes_max: follow_bytes_max.max(bytes_max),
            follower: None,
        }
    }

    /// A following reader reads next at `offset` (`now_ms`: now): the
    /// batches from there on are kept past the budget (up to
    /// `follow_bytes_max`) until it reads on, or stops reading for
    /// `FOLLOW_STALE_MS`. One follower per shard: the last to read.
    pub fn follow(&mut self, offset: u64, now_ms: i64) {
        self.follower = Some(Follower {
            offset,
            read_ms: now_ms,
        });
        self.evict(now_ms);
    }

    /// Drops the oldest batches past the budget, keeping those a fresh
    /// follower has not read (within `follow_bytes_max`), and always the newest.
    fn evict(&mut self, now_ms: i64) {
        let follows = self
            .follower
            .filter(|f| now_ms.saturating_sub(f.read_ms) < FOLLOW_STALE_MS)
            .map(|f| f.offset);
        while self.bytes > self.bytes_max && self.batches.len() > 1 {
            let oldest = self.batches.front().expect("not empty");
            let unread = follows.is_some_and(|offset| oldest.end_offset > offset);
            if unread && self.bytes <= self.follow_bytes_max {
                break;
            }
            let old = self.batches.pop_front().expect("not empty");
            self.bytes -= old.bytes.len();
        }
    }

    /// Keeps `batch` (sealed, holding offsets `base_offset .. end_offset`), the
    /// batch appended right after the previous one pushed (at `now_ms`); evicts
    /// the oldest past the budget. A gap (a batch not pushed) would make reads
    /// skip records, so a non-contiguous push drops everything cached before it.
    pub fn push(&mut self, base_offset: u64, end_offset: u64, batch: ValidBatch, now_ms: i64) {
        if self.bytes_max == 0 {
            return;
        }
        if self
            .batches
            .back()
            .is_some_and(|last| last.end_offset != base_offset)
        {
            self.clear();
        }
        self.bytes += batch.len();
        self.batches.push_back(Cached {
            base_offset,
            end_offset,
            bytes: Arc::new(batch),
        });
        self.evict(now_ms);
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Whether a read from `offset` can be served from memory (up to the newest
    /// batch appended).
    pub fn covers(&self, offset: u64) -> bool {
        self.batches
            .front()
            .is_some_and(|first| first.base_offset <= offset)
    }

    /// The cached batches from the one holding `offset` on, in order.
    pub fn from(&self, offset: u64) -> impl Iterator<Item = &Arc<ValidBatch>> {
        let first = self.batches.partition_point(|b| b.end_offset <= offset);
        self.batches.range(first..).map(|b| &b.bytes)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The buffer a read span's batch lives in: read from disk, or cached.
#[derive(Clone)]
pub enum SpanBuf<R> {
    Disk(R),
    Memory(Arc<ValidBatch>),
}

impl<R: Deref<Target = [u8]>> Deref for SpanBuf<R> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SpanBuf::Disk(r) => r,
            SpanBuf::Memory(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_protocol::batch::{BatchBuilder, RecordIn};

    /// A batch of one record with `data_len` bytes of data.
    fn batch(data_len: usize) -> ValidBatch {
        let data = vec![7u8; data_len];
        BatchBuilder::new().build(&[RecordIn {
            partition_key: "k",
            explicit_hash_key: None,
            data: &data,
            arrival_ms: 0,
        }])
    }

    fn lens(r: &RecentBatches, from: u64) -> Vec<usize> {
        r.from(from).map(|b| b.len()).collect()
    }

    #[test]
    fn keeps_the_newest_batches_within_the_budget() {
        let (a, b, c) = (batch(100), batch(110), batch(120));
        let (lb, lc) = (b.len(), c.len());
        // Room for the last two, not for all three.
        let mut r = RecentBatches::new(lb + lc + 5, 0);
        assert!(!r.covers(0));
        r.push(0, 10, a, 0);
        r.push(10, 15, b, 0);
        r.push(15, 30, c, 0);
        assert_eq!(r.bytes(), lb + lc, "the oldest went");
        assert!(!r.covers(9));
        assert!(r.covers(10) && r.covers(29) && r.covers(1000));
        assert_eq!(lens(&r, 10), vec![lb, lc]);
        assert_eq!(lens(&r, 14), vec![lb, lc]);
        assert_eq!(lens(&r, 15), vec![lc]);
        assert_eq!(lens(&r, 30), Vec::<usize>::new());
    }

    #[test]
    fn one_batch_larger_than_the_budget_is_kept_alone() {
        let (a, b) = (batch(40), batch(64));
        let lb = b.len();
        let mut r = RecentBatches::new(50, 0);
        r.push(0, 1, a, 0);
        r.push(1, 2, b, 0);
        assert_eq!(r.bytes(), lb);
        assert!(r.covers(1) && !r.covers(0));
    }

    #[test]
    fn a_gap_drops_what_came_before_it() {
        let mut r = RecentBatches::new(1 << 20, 0);
        r.push(0, 10, batch(16), 0);
        let b = batch(32);
        let lb = b.len();
        r.push(12, 20, b, 0);
        assert!(!r.covers(10) && r.covers(12));
        assert_eq!(r.bytes(), lb);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let mut r = RecentBatches::new(0, 0);
        r.push(0, 10, batch(16), 0);
        assert!(!r.covers(0));
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn a_follower_keeps_its_unread_batches_up_to_the_follow_budget() {
        let lens_of = |r: &RecentBatches| lens(r, 0).len();
        let one = batch(100).len();
        // Room for two batches; four for a follower.
        let mut r = RecentBatches::new(2 * one, 4 * one);
        r.follow(0, 1_000);
        for i in 0..6 {
            r.push(i, i + 1, batch(100), 1_000);
        }
        // Unread from 0: four kept (the follow budget), the oldest two went.
        assert_eq!(lens_of(&r), 4);
        assert!(r.covers(2) && !r.covers(1));
        // It reads on to 4: what it read goes down to the plain budget.
        r.follow(4, 1_100);
        assert_eq!(lens_of(&r), 2);
        assert!(r.covers(4) && !r.covers(3));
        // A follower that stopped reading protects nothing.
        r.push(6, 7, batch(100), 1_200);
        r.push(7, 8, batch(100), 1_100 + FOLLOW_STALE_MS);
        assert!(r.covers(6) && !r.covers(5));
        assert_eq!(lens_of(&r), 2);
    }

    #[test]
    fn span_buffers_deref_to_their_bytes() {
        let disk: SpanBuf<Vec<u8>> = SpanBuf::Disk(vec![1, 2, 3]);
        let b = batch(4);
        let bytes = b.to_vec();
        let memory: SpanBuf<Vec<u8>> = SpanBuf::Memory(Arc::new(b));
        assert_eq!(&*disk, &[1, 2, 3]);
        assert_eq!(&*memory, &bytes[..]);
    }
}
