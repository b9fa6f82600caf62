//! Metadata log framing: how events are laid out in a `<name>.log` file, and the
//! recovery scan that tells a torn tail from corruption. Pure: bytes in, bytes out.
//!
//! ```text
//! [len: u32 LE][crc32c(payload): u32 LE][payload: len bytes][zero pad to a multiple of 8]
//! ```
//!
//! Frames follow each other without gaps from byte 0. `scan_log` reads frames
//! until the first one that is zero, short, too long, fails its crc or has a
//! non-zero pad: that is a torn tail (the one write in flight at a crash) and is
//! dropped. A bad frame with a valid frame somewhere after it cannot come from a
//! crash (only one frame is ever unsynced), so it is corruption.

use crate::storage::DMA_ALIGNMENT;

/// `[len: u32][crc: u32]` before each payload.
pub(crate) const FRAME_HEADER_SIZE: usize = 8;
/// Frames start on this boundary, like batches in segments.
pub(crate) const FRAME_ALIGNMENT: usize = 8;
/// The largest payload a frame holds. The catalog's largest events are reshards:
/// UpdateShardCount to 500 shards adds 500 or more shards of about 130 bytes of
/// JSON each (plus closed intermediate ones when the layouts do not align), well
/// over AddTags with 50 tags of AWS's longest keys and values (about 20 KiB) or a
/// resource policy (AWS allows 20 KiB). 1 MiB holds them while any larger length
/// in a header marks it as torn or garbage before we look at the payload. (Logs
/// written with the catalog's former 16 and 64 KiB bounds read the same.)
pub const FRAME_PAYLOAD_SIZE_MAX: usize = 1 << 20;

const _: () = assert!(FRAME_HEADER_SIZE.is_multiple_of(FRAME_ALIGNMENT));
const _: () = assert!(DMA_ALIGNMENT.is_multiple_of(FRAME_ALIGNMENT));
const _: () = assert!(FRAME_PAYLOAD_SIZE_MAX <= u32::MAX as usize);

/// Zero bytes after a payload of `len` bytes so the next frame starts aligned.
pub(crate) fn frame_pad(payload_len: usize) -> usize {
    let end = FRAME_HEADER_SIZE + payload_len;
    end.next_multiple_of(FRAME_ALIGNMENT) - end
}

/// Header and payload of one frame (the pad is left to the appender).
pub(crate) fn encode_frame(payload: &[u8]) -> Vec<u8> {
    assert!(!payload.is_empty() && payload.len() <= FRAME_PAYLOAD_SIZE_MAX);
    let mut frame = Vec::with_capacity(FRAME_HEADER_SIZE + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The payload of a valid frame at `pos` and where the next frame starts, or
/// `None` when there is no valid frame there (zero, short, too long, bad crc or
/// non-zero pad).
fn frame_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(pos..pos.checked_add(FRAME_HEADER_SIZE)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    if len == 0 || len > FRAME_PAYLOAD_SIZE_MAX {
        return None;
    }
    let start = pos + FRAME_HEADER_SIZE;
    let payload = bytes.get(start..start + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let next = start + len + frame_pad(len);
    if !bytes.get(start + len..next)?.iter().all(|&b| b == 0) {
        return None;
    }
    Some((payload, next))
}

/// The valid frames of a log (offset, payload) and the logical end after them.
#[derive(Debug, PartialEq)]
pub(crate) struct LogScan<'a> {
    pub(crate) frames: Vec<(u64, &'a [u8])>,
    pub(crate) end: u64,
}

/// Splits a log into frames; see the module docs for torn tail vs. corruption.
/// `Err((offset, reason))` names the first bad frame.
pub(crate) fn scan_log(bytes: &[u8]) -> Result<LogScan<'_>, (u64, String)> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some((payload, next)) = frame_at(bytes, pos) {
        frames.push((pos as u64, payload));
        pos = next;
    }
    let mut later = pos + FRAME_ALIGNMENT;
    while later + FRAME_HEADER_SIZE <= bytes.len() {
        if frame_at(bytes, later).is_some() {
            return Err((
                pos as u64,
                format!("invalid frame followed by a valid frame at byte {later}"),
            ));
        }
        later += FRAME_ALIGNMENT;
    }
    Ok(LogScan {
        frames,
        end: pos as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bytes_are_pinned() {
        let payload = br#"{"seq":7,"event":{"type":"DeleteStream","name":"a"}}"#;
        let frame = encode_frame(payload);
        // len 52, crc32c 0x921a8998, both little-endian; then 4 bytes of pad.
        assert_eq!(frame[..8], [52, 0, 0, 0, 0x98, 0x89, 0x1a, 0x92]);
        assert_eq!(frame[8..], payload[..]);
        assert_eq!(frame_pad(payload.len()), 4);

        let mut log = frame.clone();
        log.resize(DMA_ALIGNMENT, 0);
        let scan = scan_log(&log).unwrap();
        assert_eq!(
            scan,
            LogScan {
                frames: vec![(0, &payload[..])],
                end: 64
            }
        );
    }

    #[test]
    fn every_prefix_of_a_log_scans_to_its_whole_frames() {
        let mut log = Vec::new();
        // (end of payload, end of pad) of each frame.
        let mut ends = Vec::new();
        for seq in 1..=3 {
            let payload = format!(r#"{{"seq":{seq},"event":{{"n":"{}"}}}}"#, "y".repeat(seq));
            log.extend_from_slice(&encode_frame(payload.as_bytes()));
            let payload_end = log.len();
            log.resize(log.len() + frame_pad(payload.len()), 0);
            ends.push((payload_end, log.len()));
        }
        for len in 0..=log.len() {
            // The rest of the block reads as zeros, as on disk: a frame is whole
            // once its payload is in.
            let mut prefix = log[..len].to_vec();
            prefix.resize(len.next_multiple_of(64) + 64, 0);
            let scan = scan_log(&prefix).unwrap_or_else(|e| panic!("prefix {len}: {e:?}"));
            let whole = ends
                .iter()
                .filter(|&&(payload_end, _)| payload_end <= len)
                .count();
            assert_eq!(scan.frames.len(), whole, "prefix {len}");
            assert_eq!(
                scan.end,
                if whole == 0 {
                    0
                } else {
                    ends[whole - 1].1 as u64
                },
                "prefix {len}"
            );
        }
        assert!(scan_log(&[]).unwrap().frames.is_empty());
    }

    /// Refusals of `frame_at`, one per rule, on an otherwise valid frame.
    #[test]
    fn invalid_frames_are_not_frames() {
        let payload = b"{\"seq\":1}";
        let mut good = encode_frame(payload);
        good.resize(good.len() + frame_pad(payload.len()), 0);
        assert!(frame_at(&good, 0).is_some());
        let check = |what: &str, edit: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            edit(&mut bytes);
            assert!(frame_at(&bytes, 0).is_none(), "{what}");
        };
        check("zero length", &|b| b[..4].fill(0));
        check("too long", &|b| {
            b[..4].copy_from_slice(&(FRAME_PAYLOAD_SIZE_MAX as u32 + 1).to_le_bytes())
        });
        check("bad crc", &|b| b[4] ^= 1);
        check("bad payload", &|b| b[9] ^= 1);
        check("short", &|b| b.truncate(FRAME_HEADER_SIZE + 3));
        check("non-zero pad", &|b| *b.last_mut().unwrap() = 1);
    }
}
