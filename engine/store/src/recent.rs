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

use rkyv::util::AlignedVec;

/// One cached batch: its offsets and its sealed bytes (as written to disk).
struct Cached {
    base_offset: u64,
    end_offset: u64,
    bytes: Rc<AlignedVec<16>>,
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
    pub fn push(&mut self, base_offset: u64, end_offset: u64, batch: AlignedVec<16>) {
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
    pub fn from(&self, offset: u64) -> impl Iterator<Item = &Rc<AlignedVec<16>>> {
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
    Memory(Rc<AlignedVec<16>>),
}

impl<R: Deref<Target = [u8]>> Deref for SpanBuf<R> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SpanBuf::Disk(r) => r,
            SpanBuf::Memory(b) => b.as_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> AlignedVec<16> {
        let mut b = AlignedVec::<16>::with_capacity(len);
        b.resize(len, 7);
        b
    }

    fn offsets(r: &RecentBatches, from: u64) -> Vec<usize> {
        r.from(from).map(|b| b.len()).collect()
    }

    #[test]
    fn keeps_the_newest_batches_within_the_budget() {
        let mut r = RecentBatches::new(300);
        assert!(!r.covers(0));
        r.push(0, 10, batch(100));
        r.push(10, 15, batch(110));
        r.push(15, 30, batch(120));
        // 330 bytes > 300: the oldest went.
        assert_eq!(r.bytes(), 230);
        assert!(!r.covers(9));
        assert!(r.covers(10) && r.covers(29) && r.covers(1000));
        assert_eq!(offsets(&r, 10), vec![110, 120]);
        assert_eq!(offsets(&r, 14), vec![110, 120]);
        assert_eq!(offsets(&r, 15), vec![120]);
        assert_eq!(offsets(&r, 30), Vec::<usize>::new());
    }

    #[test]
    fn one_batch_larger_than_the_budget_is_kept_alone() {
        let mut r = RecentBatches::new(50);
        r.push(0, 1, batch(40));
        r.push(1, 2, batch(64));
        assert_eq!(r.bytes(), 64);
        assert!(r.covers(1) && !r.covers(0));
    }

    #[test]
    fn a_gap_drops_what_came_before_it() {
        let mut r = RecentBatches::new(1 << 20);
        r.push(0, 10, batch(16));
        r.push(12, 20, batch(32));
        assert!(!r.covers(10) && r.covers(12));
        assert_eq!(r.bytes(), 32);
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
        let memory: SpanBuf<Vec<u8>> = SpanBuf::Memory(Rc::new(batch(4)));
        assert_eq!(&*disk, &[1, 2, 3]);
        assert_eq!(&*memory, &[7, 7, 7, 7]);
    }
}
