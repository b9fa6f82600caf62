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
//! segment writes and fall further behind. Several followers (delivery
//! streams reading one Kinesis stream) are kept apart, up to `FOLLOWERS_MAX`:
//! the batches the furthest behind has not read are kept. A follower that
//! stops reading for `FOLLOW_STALE_MS` protects nothing any more (what it
//! held goes at the shard's next append or read).

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
/// Followers of one shard kept track of; a new one replaces the one that
/// read least recently.
pub const FOLLOWERS_MAX: usize = 4;

/// A reader following the shard: who, where it reads next, when it last read.
#[derive(Clone, Copy, Debug)]
struct Follower {
    id: u64,
    offset: u64,
    read_ms: i64,
}

impl Follower {
    /// Read within `FOLLOW_STALE_MS` (a clock gone back counts as stale: the
    /// follower's next read makes it fresh again).
    fn fresh(&self, now_ms: i64) -> bool {
        now_ms >= self.read_ms && now_ms - self.read_ms < FOLLOW_STALE_MS
    }
}

/// A shard's recently appended batches, oldest first. Lives on the shard's core.
pub struct RecentBatches {
    batches: VecDeque<Cached>,
    bytes: usize,
    bytes_max: usize,
    /// The most kept for a follower's unread batches (at least `bytes_max`).
    follow_bytes_max: usize,
    followers: Vec<Follower>,
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
            followers: Vec::new(),
        }
    }

    /// Follower `id` (unique among the shard's readers) reads next at
    /// `offset` (`now_ms`: now): the batches from there on are kept past the
    /// budget (up to `follow_bytes_max`) until it reads on, or stops reading
    /// for `FOLLOW_STALE_MS`.
    pub fn follow(&mut self, id: u64, offset: u64, now_ms: i64) {
        match self.followers.iter_mut().find(|f| f.id == id) {
            Some(f) => {
                f.offset = offset;
                f.read_ms = now_ms;
            }
            None => {
                if self.followers.len() >= FOLLOWERS_MAX
                    && let Some(least) =
                        (0..self.followers.len()).min_by_key(|&i| self.followers[i].read_ms)
                {
                    self.followers.swap_remove(least);
                }
                self.followers.push(Follower {
                    id,
                    offset,
                    read_ms: now_ms,
                });
            }
        }
        self.evict(now_ms);
    }

    /// Drops the oldest batches past the budget, keeping those a fresh
    /// follower has not read (within `follow_bytes_max`), and always the
    /// newest; forgets stale followers. Runs at each append and read.
    pub fn evict(&mut self, now_ms: i64) {
        self.followers.retain(|f| f.fresh(now_ms));
        let follows = self.followers.iter().map(|f| f.offset).min();
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
        let count = |r: &RecentBatches| lens(r, 0).len();
        let one = batch(100).len();
        // Room for two batches; four for a follower.
        let mut r = RecentBatches::new(2 * one, 4 * one);
        r.follow(1, 0, 1_000);
        for i in 0..6 {
            r.push(i, i + 1, batch(100), 1_000);
        }
        // Unread from 0: four kept (the follow budget), the oldest two went.
        assert_eq!(count(&r), 4);
        assert!(r.covers(2) && !r.covers(1));
        // It reads on to 4: what it read goes down to the plain budget.
        r.follow(1, 4, 1_100);
        assert_eq!(count(&r), 2);
        assert!(r.covers(4) && !r.covers(3));
        // A follower that stopped reading protects nothing.
        r.push(6, 7, batch(100), 1_200);
        assert_eq!(count(&r), 3);
        r.push(7, 8, batch(100), 1_100 + FOLLOW_STALE_MS);
        assert!(r.covers(6) && !r.covers(5));
        assert_eq!(count(&r), 2);
        // A read on an idle shard lets the stale one's batches go too.
        r.follow(2, 6, 10_000);
        r.push(8, 9, batch(100), 10_000);
        assert_eq!(count(&r), 3, "follower 2 holds 6..");
        r.evict(10_000 + FOLLOW_STALE_MS);
        assert_eq!(count(&r), 2);
    }

    #[test]
    fn the_follower_furthest_behind_is_served() {
        let count = |r: &RecentBatches| lens(r, 0).len();
        let one = batch(100).len();
        let mut r = RecentBatches::new(one, 8 * one);
        r.follow(1, 0, 0);
        r.follow(2, 0, 0);
        for i in 0..5 {
            r.push(i, i + 1, batch(100), 0);
        }
        // The one ahead reads to the tip: the one behind still has its batches.
        r.follow(2, 5, 1);
        assert_eq!(count(&r), 5);
        r.follow(1, 3, 2);
        assert!(r.covers(3) && !r.covers(2));
        r.follow(2, 5, 3);
        // More followers than kept: the one that read least recently is
        // forgotten (1, at 2 ms), and with it the hold at 3.
        for id in 3..=5 {
            r.follow(id, 5, 4);
        }
        assert_eq!(count(&r), 1);
        assert!(r.covers(4) && !r.covers(3));
    }

    #[test]
    fn a_clock_gone_back_holds_nothing_until_the_next_read() {
        let count = |r: &RecentBatches| lens(r, 0).len();
        let one = batch(100).len();
        let mut r = RecentBatches::new(one, 8 * one);
        r.follow(1, 0, 50_000);
        r.push(0, 1, batch(100), 50_000);
        r.push(1, 2, batch(100), 50_000);
        assert_eq!(count(&r), 2);
        // The wall clock stepped back an hour: the follower is not fresh.
        r.push(2, 3, batch(100), 50_000 - 3_600_000);
        assert_eq!(count(&r), 1);
        // Its next read makes it fresh again.
        r.follow(1, 2, 50_000 - 3_600_000 + 10);
        r.push(3, 4, batch(100), 50_000 - 3_600_000 + 20);
        assert_eq!(count(&r), 2);
    }

    #[test]
    fn no_cache_means_nothing_for_followers_either() {
        let mut r = RecentBatches::new(0, 1 << 20);
        r.follow(1, 0, 0);
        r.push(0, 1, batch(16), 0);
        assert!(!r.covers(0));
        assert_eq!(r.bytes(), 0);
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
