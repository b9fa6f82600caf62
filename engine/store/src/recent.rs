//! Recently appended batches, kept in memory so that readers near the tip
//! (subscriptions, tailing GetRecords, a consumer a few seconds behind) are
//! served without reading the device back: segments are written with direct
//! I/O, so there is no page cache to hit.
//!
//! The pump hands every sealed batch it appends to [`RecentBatches::push`]
//! instead of dropping it (no copy: the buffer the batch arrived in is kept);
//! the oldest go when the shard's budget (`LogConfig::recent_bytes_max`) is
//! exceeded. Batches are contiguous in offsets, so a read that starts at or
//! after the oldest one is answered from here entirely. Visibility still
//! applies: readers stop at the visible offset whatever is cached.

use std::collections::VecDeque;
use std::ops::Deref;
use std::rc::Rc;

use riffle_protocol::batch::ValidBatch;

/// One cached batch: its offsets and its sealed bytes (as written to disk).
struct Cached {
    base_offset: u64,
    end_offset: u64,
    bytes: Rc<ValidBatch>,
}

/// A shard's recently appended batches, oldest first. Lives on the shard's core.
pub struct RecentBatches {
    batches: VecDeque<Cached>,
    bytes: usize,
    bytes_max: usize,
}

impl RecentBatches {
    pub fn new(bytes_max: usize) -> RecentBatches {
        RecentBatches {
            batches: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Keeps `batch` (sealed, holding offsets `base_offset .. end_offset`), the
    /// batch appended right after the previous one pushed; evicts the oldest past
    /// the budget. A gap (a batch not pushed) would make reads skip records, so
    /// a non-contiguous push drops everything cached before it.
    pub fn push(&mut self, base_offset: u64, end_offset: u64, batch: ValidBatch) {
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
            bytes: Rc::new(batch),
        });
        while self.bytes > self.bytes_max && self.batches.len() > 1 {
            let old = self.batches.pop_front().expect("not empty");
            self.bytes -= old.bytes.len();
        }
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
    pub fn from(&self, offset: u64) -> impl Iterator<Item = &Rc<ValidBatch>> {
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
    Memory(Rc<ValidBatch>),
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
        let mut r = RecentBatches::new(lb + lc + 5);
        assert!(!r.covers(0));
        r.push(0, 10, a);
        r.push(10, 15, b);
        r.push(15, 30, c);
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
        let mut r = RecentBatches::new(50);
        r.push(0, 1, a);
        r.push(1, 2, b);
        assert_eq!(r.bytes(), lb);
        assert!(r.covers(1) && !r.covers(0));
    }

    #[test]
    fn a_gap_drops_what_came_before_it() {
        let mut r = RecentBatches::new(1 << 20);
        r.push(0, 10, batch(16));
        let b = batch(32);
        let lb = b.len();
        r.push(12, 20, b);
        assert!(!r.covers(10) && r.covers(12));
        assert_eq!(r.bytes(), lb);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let mut r = RecentBatches::new(0);
        r.push(0, 10, batch(16));
        assert!(!r.covers(0));
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn span_buffers_deref_to_their_bytes() {
        let disk: SpanBuf<Vec<u8>> = SpanBuf::Disk(vec![1, 2, 3]);
        let b = batch(4);
        let bytes = b.to_vec();
        let memory: SpanBuf<Vec<u8>> = SpanBuf::Memory(Rc::new(b));
        assert_eq!(&*disk, &[1, 2, 3]);
        assert_eq!(&*memory, &bytes[..]);
    }
}
