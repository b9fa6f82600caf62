//! Sparse per-segment index, by offset and by arrival time.
//!
//! One entry per `index_interval_bytes` of segment data (and always one for the
//! first batch): the batch's base offset, its position in the segment and its first
//! arrival time. Arrival times never decrease within a shard (the shard clamps
//! them), so one entry list serves both seeks: a seek by offset or by timestamp
//! lands on one entry and reads at most up to the next one (plus one batch).
//!
//! File layout (`<base-offset>.idx`, written when a segment is sealed, all LE):
//! ```text
//!  0 magic [u8;4] b"RFIX" | 4 version u16 = 1 | 6 reserved u16
//!  8 base_offset u64 | 16 next_offset u64 | 24 data_len u64
//! 32 first_arrival_ms i64 | 40 last_arrival_ms i64
//! 48 entry_count u32 | 52 crc32c u32 over bytes [0,52) ++ entries
//! 56 entries: offset_delta u32 | position u32 | arrival_ms i64   (16 bytes each)
//! ```
//! An index file whose crc, base offset or data length does not match its segment
//! is stale and is rebuilt by scanning the segment.

use riffle_protocol::le::{u16_at, u32_at, u64_at};

pub const INDEX_MAGIC: [u8; 4] = *b"RFIX";
const INDEX_HEADER_SIZE: usize = 56;
const ENTRY_SIZE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub position: u32,
    pub arrival_ms: i64,
}

/// The in-memory index of one segment. Lives on the shard's owning core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    entries: Vec<IndexEntry>,
}

/// What a sealed segment's index file says about the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedIndex {
    pub index: SegmentIndex,
    pub next_offset: u64,
    pub data_len: u64,
    pub first_arrival_ms: i64,
    pub last_arrival_ms: i64,
}

impl SegmentIndex {
    /// Notes a batch at `position`; keeps it when it is the first or at least
    /// `interval_bytes` past the last kept entry.
    pub fn observe(&mut self, offset: u64, position: u32, arrival_ms: i64, interval_bytes: u32) {
        match self.entries.last() {
            Some(last) if position < last.position.saturating_add(interval_bytes) => {}
            _ => self.entries.push(IndexEntry {
                offset,
                position,
                arrival_ms,
            }),
        }
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The position to start reading for `offset`, and the position of the next
    /// entry (the read can stop there once `offset` is found).
    pub fn seek_offset(&self, offset: u64) -> (u32, Option<u32>) {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        let start = if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        };
        (start, self.entries.get(i).map(|e| e.position))
    }

    /// The position to start reading for the first record that arrived at or after
    /// `time_ms`, and the entry position where that record is found at the latest.
    pub fn seek_time(&self, time_ms: i64) -> (u32, Option<u32>) {
        let i = self.entries.partition_point(|e| e.arrival_ms < time_ms);
        let start = if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        };
        (start, self.entries.get(i).map(|e| e.position))
    }

    /// Encodes the index file of a sealed segment.
    pub fn encode(&self, base_offset: u64, sealed: &SealedIndexMeta) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_HEADER_SIZE + self.entries.len() * ENTRY_SIZE);
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&base_offset.to_le_bytes());
        out.extend_from_slice(&sealed.next_offset.to_le_bytes());
        out.extend_from_slice(&sealed.data_len.to_le_bytes());
        out.extend_from_slice(&sealed.first_arrival_ms.to_le_bytes());
        out.extend_from_slice(&sealed.last_arrival_ms.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&((e.offset - base_offset) as u32).to_le_bytes());
            out.extend_from_slice(&e.position.to_le_bytes());
            out.extend_from_slice(&e.arrival_ms.to_le_bytes());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..52]), &out[INDEX_HEADER_SIZE..]);
        out[52..56].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an index file; `None` when it is corrupt or belongs to another
    /// segment (the caller then rebuilds it by scanning).
    pub fn decode(bytes: &[u8], base_offset: u64) -> Option<SealedIndex> {
        if bytes.len() < INDEX_HEADER_SIZE || bytes[0..4] != INDEX_MAGIC || u16_at(bytes, 4) != 1 {
            return None;
        }
        let count = u32_at(bytes, 48) as usize;
        let end = INDEX_HEADER_SIZE.checked_add(count.checked_mul(ENTRY_SIZE)?)?;
        if bytes.len() < end {
            return None;
        }
        let crc =
            crc32c::crc32c_append(crc32c::crc32c(&bytes[..52]), &bytes[INDEX_HEADER_SIZE..end]);
        if crc != u32_at(bytes, 52) || u64_at(bytes, 8) != base_offset {
            return None;
        }
        let entries = bytes[INDEX_HEADER_SIZE..end]
            .chunks_exact(ENTRY_SIZE)
            .map(|e| IndexEntry {
                offset: base_offset + u32_at(e, 0) as u64,
                position: u32_at(e, 4),
                arrival_ms: u64_at(e, 8) as i64,
            })
            .collect();
        Some(SealedIndex {
            index: SegmentIndex { entries },
            next_offset: u64_at(bytes, 16),
            data_len: u64_at(bytes, 24),
            first_arrival_ms: u64_at(bytes, 32) as i64,
            last_arrival_ms: u64_at(bytes, 40) as i64,
        })
    }
}

/// The segment facts stored in an index file header besides the entries.
#[derive(Clone, Copy, Debug)]
pub struct SealedIndexMeta {
    pub next_offset: u64,
    pub data_len: u64,
    pub first_arrival_ms: i64,
    pub last_arrival_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut index = SegmentIndex::default();
        // Batches of 10 records every 1000 bytes, arrival +5 ms each.
        for i in 0..100u32 {
            index.observe(500 + i as u64 * 10, i * 1000, 1_000 + i as i64 * 5, 4096);
        }
        index
    }

    #[test]
    fn sparse_entries_every_interval() {
        let index = sample();
        let positions: Vec<u32> = index.entries().iter().map(|e| e.position).take(4).collect();
        assert_eq!(positions, vec![0, 5000, 10000, 15000]);
    }

    #[test]
    fn seeks_land_on_one_interval() {
        let index = sample();
        // (offset, expected start, expected next)
        let cases = [
            (0, 0, Some(0)),
            (500, 0, Some(5000)),
            (549, 0, Some(5000)),
            (550, 5000, Some(10000)),
            (1499, 95000, None),
        ];
        for (offset, start, next) in cases {
            let (s, n) = index.seek_offset(offset);
            if offset < 500 {
                assert_eq!((s, n), (0, Some(0)), "offset {offset}");
            } else {
                assert_eq!((s, n), (start, next), "offset {offset}");
            }
        }
        // Record 55 arrives at 1000 + 5*5 = 1025 (batch at 5000).
        assert_eq!(index.seek_time(1025), (0, Some(5000)));
        assert_eq!(index.seek_time(1026), (5000, Some(10000)));
        assert_eq!(index.seek_time(0), (0, Some(0)));
        assert_eq!(index.seek_time(i64::MAX), (95000, None));
    }

    #[test]
    fn file_round_trip_and_staleness() {
        let index = sample();
        let meta = SealedIndexMeta {
            next_offset: 1500,
            data_len: 100_000,
            first_arrival_ms: 1000,
            last_arrival_ms: 1495,
        };
        let bytes = index.encode(500, &meta);
        let back = SegmentIndex::decode(&bytes, 500).unwrap();
        assert_eq!(back.index, index);
        assert_eq!(
            (back.next_offset, back.data_len, back.last_arrival_ms),
            (1500, 100_000, 1495)
        );
        assert!(SegmentIndex::decode(&bytes, 501).is_none(), "other segment");
        for cut in 0..bytes.len() {
            assert!(
                SegmentIndex::decode(&bytes[..cut], 500).is_none(),
                "cut {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[60] ^= 1;
        assert!(SegmentIndex::decode(&flipped, 500).is_none());
    }
}
