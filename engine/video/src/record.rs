//! How a video stream's media is stored in its internal stream: each record
//! is one of two kinds, told apart by a fixed little-endian prefix.
//!
//! - A **header record** (one per PutMedia session, before its first
//!   fragment): the session's MKV header (EBML header, Segment start, Info,
//!   Tracks), which makes any of the session's clusters playable again.
//! - A **fragment part**: one cluster (a fragment) is stored as 1..n parts
//!   in consecutive records, each at most `PART_DATA_MAX` bytes of cluster;
//!   part 0 carries the fragment's facts.
//!
//! A record's partition key is the fragment number's 47 digits (fragment
//! parts) or `h` (header records): what a recovery scan reads back.
//!
//! Layout (integers little-endian):
//! ```text
//! header record                     fragment part
//!  0 magic    b"RFVH"                0 magic         b"RFVF"
//!  4 version  u16 = 1                4 version       u16 = 1
//!  6 reserved u16 = 0                6 part          u16  (0-based)
//!  8 scale_ns u64 (TimecodeScale)    8 part_count    u16
//! 16 the MKV header's bytes         10 reserved      u16 = 0
//!                                   12 reserved      u32 = 0
//!                                   16 number        u128 (the fragment number)
//!                                   32 header_offset u64  (its header record's offset)
//!                                   40 producer_ms   i64
//!                                   48 server_ms     i64
//!                                   56 duration_ms   u32
//!                                   60 size          u32  (the cluster's bytes, all parts)
//!                                   64 timecode      u64  (the cluster's Timecode, ticks)
//!                                   72 the part's slice of the cluster's bytes
//! ```
//! Parts after the first repeat the facts (so each part names its fragment
//! and place on its own); a fragment is whole when all `part_count` parts
//! are present in order.

/// The prefix of header records.
pub const HEADER_MAGIC: [u8; 4] = *b"RFVH";
/// The prefix of fragment parts.
pub const PART_MAGIC: [u8; 4] = *b"RFVF";
pub const VERSION: u16 = 1;
/// Bytes before a header record's MKV header.
pub const HEADER_PREFIX_SIZE: usize = 16;
/// Bytes before a fragment part's slice of the cluster.
pub const PART_PREFIX_SIZE: usize = 72;
/// The partition key of header records.
pub const HEADER_KEY: &str = "h";

/// What part 0 (and every part) says of its fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentFacts {
    pub number: u128,
    /// The shard offset of the session's header record.
    pub header_offset: u64,
    pub producer_ms: i64,
    /// When its first byte was received.
    pub server_ms: i64,
    pub duration_ms: u32,
    /// The cluster's whole size (all parts).
    pub size: u32,
    /// The cluster's Timecode, in the session's TimecodeScale ticks.
    pub timecode: u64,
}

/// One stored record, read back.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored<'a> {
    /// The session's TimecodeScale (ns per tick) and its MKV header.
    Header { scale_ns: u64, mkv: &'a [u8] },
    Part {
        facts: FragmentFacts,
        part: u16,
        part_count: u16,
        bytes: &'a [u8],
    },
}

/// A header record's data.
pub fn header_record(scale_ns: u64, mkv_header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_PREFIX_SIZE + mkv_header.len());
    out.extend_from_slice(&HEADER_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&scale_ns.to_le_bytes());
    out.extend_from_slice(mkv_header);
    out
}

/// The records of one fragment: `cluster` cut into parts of at most
/// `part_data_max` bytes, each behind the facts.
pub fn fragment_parts(facts: &FragmentFacts, cluster: &[u8], part_data_max: usize) -> Vec<Vec<u8>> {
    assert!(part_data_max > 0, "parts hold at least one byte");
    let chunks: Vec<&[u8]> = if cluster.is_empty() {
        vec![&[][..]]
    } else {
        cluster.chunks(part_data_max).collect()
    };
    let count = u16::try_from(chunks.len()).expect("a fragment's parts fit in u16");
    chunks
        .iter()
        .enumerate()
        .map(|(i, slice)| {
            let mut out = Vec::with_capacity(PART_PREFIX_SIZE + slice.len());
            out.extend_from_slice(&PART_MAGIC);
            out.extend_from_slice(&VERSION.to_le_bytes());
            out.extend_from_slice(&(i as u16).to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&facts.number.to_le_bytes());
            out.extend_from_slice(&facts.header_offset.to_le_bytes());
            out.extend_from_slice(&facts.producer_ms.to_le_bytes());
            out.extend_from_slice(&facts.server_ms.to_le_bytes());
            out.extend_from_slice(&facts.duration_ms.to_le_bytes());
            out.extend_from_slice(&facts.size.to_le_bytes());
            out.extend_from_slice(&facts.timecode.to_le_bytes());
            out.extend_from_slice(slice);
            out
        })
        .collect()
}

fn le<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at + N)?.try_into().ok()
}

/// Reads a stored record back; `None` for bytes that are neither kind (a
/// record this service did not write, or of a later version).
pub fn parse(data: &[u8]) -> Option<Stored<'_>> {
    let magic: [u8; 4] = le(data, 0)?;
    if u16::from_le_bytes(le(data, 4)?) != VERSION {
        return None;
    }
    match magic {
        HEADER_MAGIC => Some(Stored::Header {
            scale_ns: u64::from_le_bytes(le(data, 8)?),
            mkv: data.get(HEADER_PREFIX_SIZE..)?,
        }),
        PART_MAGIC => {
            let part = u16::from_le_bytes(le(data, 6)?);
            let part_count = u16::from_le_bytes(le(data, 8)?);
            if part >= part_count {
                return None;
            }
            let facts = FragmentFacts {
                number: u128::from_le_bytes(le(data, 16)?),
                header_offset: u64::from_le_bytes(le(data, 32)?),
                producer_ms: i64::from_le_bytes(le(data, 40)?),
                server_ms: i64::from_le_bytes(le(data, 48)?),
                duration_ms: u32::from_le_bytes(le(data, 56)?),
                size: u32::from_le_bytes(le(data, 60)?),
                timecode: u64::from_le_bytes(le(data, 64)?),
            };
            Some(Stored::Part {
                facts,
                part,
                part_count,
                bytes: data.get(PART_PREFIX_SIZE..)?,
            })
        }
        _ => None,
    }
}

/// A fragment number as AWS shows it: 47 decimal digits, increasing with
/// the number ("91343852333" then the number zero-padded to 36 digits).
pub fn number_text(number: u128) -> String {
    debug_assert!(
        number < 10u128.pow(36),
        "fragment numbers stay under 36 digits"
    );
    format!("{NUMBER_PREFIX}{number:036}")
}

/// The fixed leading digits of every fragment number.
const NUMBER_PREFIX: &str = "91343852333";

/// A fragment number read back from its text; `None` for text this server
/// did not make.
pub fn parse_number(text: &str) -> Option<u128> {
    let digits = text.strip_prefix(NUMBER_PREFIX)?;
    if digits.len() != 36 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The next fragment number after `last`, at `now_ms`: the server time in
/// the high bits (so numbers carry when they were made and keep increasing
/// across restarts), and always above `last` (a clock that went back).
pub fn next_number(last: u128, now_ms: i64) -> u128 {
    let by_time = (now_ms.max(0) as u128) << NUMBER_SEQUENCE_BITS;
    by_time.max(last + 1)
}

/// Numbers made in one millisecond before the time part must move on.
const NUMBER_SEQUENCE_BITS: u32 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> FragmentFacts {
        FragmentFacts {
            number: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            header_offset: 7,
            producer_ms: 1_700_000_000_123,
            server_ms: 1_700_000_000_456,
            duration_ms: 2_000,
            size: 5,
            timecode: 90_000,
        }
    }

    #[test]
    fn a_fragment_part_has_its_documented_bytes() {
        let parts = fragment_parts(&facts(), b"abcde", 3);
        assert_eq!(parts.len(), 2);
        let p = &parts[1];
        assert_eq!(&p[0..4], b"RFVF");
        assert_eq!(&p[4..6], &[1, 0]); // version
        assert_eq!(&p[6..8], &[1, 0]); // part 1
        assert_eq!(&p[8..10], &[2, 0]); // of 2
        assert_eq!(&p[10..16], &[0; 6]);
        assert_eq!(&p[16..32], &facts().number.to_le_bytes());
        assert_eq!(&p[32..40], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&p[40..48], &1_700_000_000_123i64.to_le_bytes());
        assert_eq!(&p[48..56], &1_700_000_000_456i64.to_le_bytes());
        assert_eq!(&p[56..60], &[0xd0, 0x07, 0, 0]); // 2,000 ms
        assert_eq!(&p[60..64], &[5, 0, 0, 0]);
        assert_eq!(&p[64..72], &90_000u64.to_le_bytes());
        assert_eq!(&p[72..], b"de");
        assert_eq!(&parts[0][72..], b"abc");
    }

    #[test]
    fn records_read_back_as_written() {
        let parts = fragment_parts(&facts(), b"abcdefg", 3);
        let back: Vec<Stored<'_>> = parts.iter().map(|p| parse(p).expect("a part")).collect();
        let mut cluster = Vec::new();
        for (i, s) in back.iter().enumerate() {
            let Stored::Part {
                facts: f,
                part,
                part_count,
                bytes,
            } = s
            else {
                panic!("not a part: {s:?}")
            };
            assert_eq!((*f, *part as usize, *part_count), (facts(), i, 3));
            cluster.extend_from_slice(bytes);
        }
        assert_eq!(cluster, b"abcdefg");
        let h = header_record(1_000_000, b"\x1a\x45\xdf\xa3mkv");
        assert_eq!(&h[..8], b"RFVH\x01\x00\x00\x00");
        assert_eq!(&h[8..16], &1_000_000u64.to_le_bytes());
        assert_eq!(
            parse(&h),
            Some(Stored::Header {
                scale_ns: 1_000_000,
                mkv: b"\x1a\x45\xdf\xa3mkv"
            })
        );
        // An empty cluster is one empty part.
        assert_eq!(fragment_parts(&facts(), b"", 3).len(), 1);
    }

    #[test]
    fn other_bytes_are_not_taken_for_records() {
        let part = &fragment_parts(&facts(), b"abc", 8)[0];
        for bad in [
            &b""[..],
            b"RFV",
            b"RFVX\x01\x00",
            b"RFVH\x02\x00\x00\x00\x40\x42\x0f\x00\x00\x00\x00\x00",
            b"RFVH\x01\x00\x00\x00\x40\x42\x0f",
            &part[..71],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // A part index past the count.
        let mut p = part.clone();
        p[6] = 1;
        assert_eq!(parse(&p), None);
    }

    #[test]
    fn numbers_are_47_digits_and_increase() {
        let n = next_number(0, 1_700_000_000_000);
        let text = number_text(n);
        assert_eq!(text.len(), 47);
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parse_number(&text), Some(n));
        // Same millisecond, then a clock gone back: still increasing.
        let m = next_number(n, 1_700_000_000_000);
        let k = next_number(m, 1_600_000_000_000);
        assert!(n < m && m < k);
        assert!(number_text(n) < number_text(m) && number_text(m) < number_text(k));
        for bad in ["", "913438523330", "1234", &format!("91343852334{:036}", 1)] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        let top = 10u128.pow(36) - 1;
        assert_eq!(parse_number(&number_text(top)), Some(top));
    }
}
