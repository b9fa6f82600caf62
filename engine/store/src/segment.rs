//! Segment files: naming and the recovery scan.
//!
//! A segment (`<base-offset:020>.seg`) is a run of batches, each starting at a
//! multiple of 8 bytes, followed by zeros up to the next 4 KiB block. Recovery never
//! trusts the file length: [`scan`] walks the batches, checks every one with
//! `batch::verify_stored` (crc and checked archive access; an encrypted frame, whose
//! archive needs its key, by crc and sizes) and the offset continuity, and decides
//! where the good data ends.
//!
//! Torn tail vs corruption: the appender keeps at most `unsynced_bytes_max` bytes
//! written but not yet synced, so after a crash only the last `unsynced_bytes_max`
//! bytes of the active segment can be torn or missing (writes may land out of order
//! within that window). An invalid batch with no valid batch more than that window
//! beyond it is a torn tail: it and everything after it was never acknowledged and
//! is cut off. An invalid batch followed by valid data further away, or any invalid
//! batch in a sealed segment (synced before it was sealed), is corruption: an error
//! naming the file and offset; corrupt bytes are never served.

use riffle_protocol::batch::{self, BATCH_MAGIC};
use riffle_protocol::limits::{BATCH_ALIGNMENT, BATCH_HEADER_SIZE};

use crate::index::SegmentIndex;

pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

pub fn index_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.idx")
}

/// The base offset named by a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Position just past the last good batch (padding included).
    pub end: u64,
    pub next_offset: u64,
    pub first_arrival_ms: Option<i64>,
    pub last_arrival_ms: Option<i64>,
    pub index: SegmentIndex,
    /// Where a torn tail began, if one was cut off.
    pub torn_at: Option<u64>,
}

/// A scan found corruption that is not a torn tail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt batch at byte {position}: {reason}")]
pub struct ScanError {
    pub position: u64,
    pub reason: String,
}

/// Scans segment bytes. `tail_window` is `Some(unsynced_bytes_max)` for the active
/// (last) segment, `None` for a sealed one (which must be intact).
pub fn scan(
    bytes: &[u8],
    base_offset: u64,
    index_interval_bytes: u32,
    tail_window: Option<u64>,
) -> Result<ScanOutcome, ScanError> {
    let mut out = ScanOutcome {
        end: 0,
        next_offset: base_offset,
        first_arrival_ms: None,
        last_arrival_ms: None,
        index: SegmentIndex::default(),
        torn_at: None,
    };
    let mut p = 0usize;
    loop {
        let rest = &bytes[p..];
        if rest.iter().all(|&b| b == 0) {
            break; // clean end: nothing but padding after the last batch
        }
        let reason = match batch::verify_stored(rest) {
            Ok(h) if h.base_offset == out.next_offset && h.record_count > 0 => {
                out.index.observe(
                    h.base_offset,
                    p as u32,
                    h.first_arrival_ms,
                    index_interval_bytes,
                );
                out.first_arrival_ms.get_or_insert(h.first_arrival_ms);
                out.last_arrival_ms = Some(h.last_arrival_ms);
                out.next_offset = h.next_offset();
                p += h.padded_length();
                out.end = p as u64;
                if p >= bytes.len() {
                    break;
                }
                continue;
            }
            Ok(h) => format!(
                "batch base offset {} where {} was expected",
                h.base_offset, out.next_offset
            ),
            Err(e) => e.to_string(),
        };
        // An invalid batch at `p`: torn tail or corruption.
        let window = match tail_window {
            None => {
                return Err(ScanError {
                    position: p as u64,
                    reason,
                });
            }
            Some(w) => w as usize,
        };
        if let Some(q) = find_valid_batch(bytes, p.saturating_add(window).saturating_add(1)) {
            return Err(ScanError {
                position: p as u64,
                reason: format!(
                    "{reason}; a valid batch follows at byte {q}, beyond the unsynced window"
                ),
            });
        }
        out.torn_at = Some(p as u64);
        break;
    }
    Ok(out)
}

/// The first position at or after `from` (8-aligned) where a valid batch starts.
/// It looks inside record data too, where a client may have planted anything with a
/// valid crc: `batch::verify_stored` checks the archive, so such bytes are refused
/// (or, if they are a well-formed batch or an encrypted frame, only reported,
/// never served: a frame is authenticated by its key when read).
fn find_valid_batch(bytes: &[u8], from: usize) -> Option<usize> {
    let mut q = from.div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT;
    while q + BATCH_HEADER_SIZE <= bytes.len() {
        if bytes[q..q + 4] == BATCH_MAGIC && batch::verify_stored(&bytes[q..]).is_ok() {
            return Some(q);
        }
        q += BATCH_ALIGNMENT;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_protocol::batch::{BatchBuilder, RecordIn, padded};
    use rkyv::util::AlignedVec;

    /// A segment of `n` batches of 3 records each, starting at `base`.
    fn segment(base: u64, n: usize) -> (AlignedVec<16>, Vec<usize>) {
        let mut out = AlignedVec::<16>::new();
        let mut starts = Vec::new();
        let mut builder = BatchBuilder::new();
        for i in 0..n {
            let data = vec![i as u8; 100 + i * 7];
            let recs = [RecordIn {
                partition_key: "k",
                explicit_hash_key: None,
                data: &data,
                arrival_ms: 0,
            }; 3];
            let mut b = builder.build(&recs);
            b.seal(base + 3 * i as u64, 1000 + i as i64);
            starts.push(out.len());
            out.extend_from_slice(&b);
            out.resize(padded(out.len()), 0);
        }
        out.resize(out.len() + 4096, 0);
        (out, starts)
    }

    #[test]
    fn clean_segment_scans_to_its_end() {
        let (bytes, starts) = segment(30, 10);
        let out = scan(&bytes, 30, 256, Some(1 << 20)).unwrap();
        assert_eq!(out.next_offset, 60);
        assert_eq!(out.torn_at, None);
        assert_eq!(
            (out.first_arrival_ms, out.last_arrival_ms),
            (Some(1000), Some(1009))
        );
        assert!(out.end as usize > *starts.last().unwrap());
        assert_eq!(scan(&bytes, 30, 256, None).unwrap(), out);
    }

    #[test]
    fn torn_tail_is_cut_and_mid_corruption_is_an_error() {
        let (bytes, starts) = segment(0, 10);
        // Tear the last batch: cut off at the last start + 20 bytes.
        let mut torn = AlignedVec::<16>::new();
        torn.extend_from_slice(&bytes[..starts[9] + 20]);
        let out = scan(&torn, 0, 256, Some(4096)).unwrap();
        assert_eq!((out.next_offset, out.torn_at), (27, Some(starts[9] as u64)));
        assert!(
            scan(&torn, 0, 256, None).is_err(),
            "sealed segments are never torn"
        );

        // Flip a byte in batch 2: with a small window, later batches make it corruption.
        let mut bad = AlignedVec::<16>::new();
        bad.extend_from_slice(&bytes);
        bad[starts[2] + 60] ^= 0xff;
        let err = scan(&bad, 0, 256, Some(64)).unwrap_err();
        assert_eq!(err.position, starts[2] as u64);
        // With a window covering the rest, it is a torn tail (unsynced writes may land out of order).
        let out = scan(&bad, 0, 256, Some(1 << 20)).unwrap();
        assert_eq!(out.torn_at, Some(starts[2] as u64));
        assert_eq!(out.next_offset, 6);
    }

    #[test]
    fn offset_discontinuity_is_invalid() {
        let (bytes, _) = segment(0, 3);
        assert!(scan(&bytes, 5, 256, None).is_err());
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        for bad in [
            "42.seg",
            "00000000000000000042.idx",
            "0000000000000000004x.seg",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
