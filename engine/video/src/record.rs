//! How a video stream's media is stored in its internal stream: each record
//! is one of two kinds, told apart by its partition key.
//!
//! - A **header record** (one per PutMedia session, written again every few
//!   minutes): key `h`, data the session's MKV header (EBML header, Segment
//!   start, Info, Tracks) behind a fixed little-endian prefix; it makes any
//!   of the session's clusters playable again.
//! - A **fragment part**: one cluster (a fragment) is stored as 1..n parts,
//!   each record's data a slice of the cluster as received (at most a
//!   record's size: no copy is made to store it), its key the fragment's
//!   facts in decimal, so each part names its fragment and place on its own.
//!
//! ```text
//! header record data (integers little-endian)
//!  0 magic    b"RFVH"
//!  4 version  u16 = 1
//!  6 reserved u16 = 0
//!  8 scale_ns u64 (TimecodeScale)
//! 16 the MKV header's bytes
//!
//! fragment part key (decimal fields, '.' between; at most ~170 characters)
//! <number: 47 digits>.<part>.<part_count>.<header_offset>.<producer_ms>.<server_ms>.<duration_ms>.<size>.<timecode>
//! ```
//! `number` is the fragment number as AWS shows it, `header_offset` its
//! session's header record's offset, `size` the whole cluster's bytes, and
//! `timecode` the cluster's Timecode in ticks. A fragment is whole when all
//! `part_count` parts are present in order (other sessions' records may lie
//! between the appends of a large fragment).

/// The prefix of header records.
pub const HEADER_MAGIC: [u8; 4] = *b"RFVH";
pub const VERSION: u16 = 1;
/// Bytes before a header record's MKV header.
pub const HEADER_PREFIX_SIZE: usize = 16;
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

/// The parts of a fragment of `cluster_len` bytes, each at most
/// `part_data_max` bytes of it: (partition key, the range of the cluster).
pub fn fragment_parts(
    facts: &FragmentFacts,
    cluster_len: usize,
    part_data_max: usize,
) -> Vec<(String, std::ops::Range<usize>)> {
    assert!(part_data_max > 0, "parts hold at least one byte");
    let count = cluster_len.div_ceil(part_data_max).max(1);
    let count16 = u16::try_from(count).expect("a fragment's parts fit in u16");
    (0..count)
        .map(|i| {
            let from = (i * part_data_max).min(cluster_len);
            let to = ((i + 1) * part_data_max).min(cluster_len);
            (part_key(facts, i as u16, count16), from..to)
        })
        .collect()
}

/// A fragment part's partition key.
pub fn part_key(f: &FragmentFacts, part: u16, part_count: u16) -> String {
    format!(
        "{}.{part}.{part_count}.{}.{}.{}.{}.{}.{}",
        number_text(f.number),
        f.header_offset,
        f.producer_ms,
        f.server_ms,
        f.duration_ms,
        f.size,
        f.timecode
    )
}

/// A fragment part's key read back: its facts, part and part count.
pub fn parse_part_key(key: &str) -> Option<(FragmentFacts, u16, u16)> {
    let mut fields = key.split('.');
    let number = parse_number(fields.next()?)?;
    // Decimal digits only (with a sign for the times): no other spelling
    // of a number is one this server wrote.
    fn digits<T: std::str::FromStr>(field: Option<&str>, signed: bool) -> Option<T> {
        let f = field?;
        let body = if signed {
            f.strip_prefix('-').unwrap_or(f)
        } else {
            f
        };
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        f.parse().ok()
    }
    let part: u16 = digits(fields.next(), false)?;
    let part_count: u16 = digits(fields.next(), false)?;
    let facts = FragmentFacts {
        number,
        header_offset: digits(fields.next(), false)?,
        producer_ms: digits(fields.next(), true)?,
        server_ms: digits(fields.next(), true)?,
        duration_ms: digits(fields.next(), false)?,
        size: digits(fields.next(), false)?,
        timecode: digits(fields.next(), false)?,
    };
    (fields.next().is_none() && part < part_count).then_some((facts, part, part_count))
}

fn le<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at + N)?.try_into().ok()
}

/// Reads a stored record back from its key and data; `None` for a record
/// that is neither kind (one this service did not write, or of a later
/// version).
pub fn parse<'a>(key: &str, data: &'a [u8]) -> Option<Stored<'a>> {
    if key == HEADER_KEY {
        let magic: [u8; 4] = le(data, 0)?;
        if magic != HEADER_MAGIC || u16::from_le_bytes(le(data, 4)?) != VERSION {
            return None;
        }
        return Some(Stored::Header {
            scale_ns: u64::from_le_bytes(le(data, 8)?),
            mkv: data.get(HEADER_PREFIX_SIZE..)?,
        });
    }
    let (facts, part, part_count) = parse_part_key(key)?;
    Some(Stored::Part {
        facts,
        part,
        part_count,
        bytes: data,
    })
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
            number: 0x0102_0304_0506_0708_090a_0b0c,
            header_offset: 7,
            producer_ms: 1_700_000_000_123,
            server_ms: 1_700_000_000_456,
            duration_ms: 2_000,
            size: 5,
            timecode: 90_000,
        }
    }

    #[test]
    fn a_fragment_part_key_has_its_documented_fields() {
        let parts = fragment_parts(&facts(), 5, 3);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, 0..3);
        assert_eq!(parts[1].1, 3..5);
        assert_eq!(
            parts[1].0,
            format!(
                "{}.1.2.7.1700000000123.1700000000456.2000.5.90000",
                number_text(facts().number)
            )
        );
        assert!(parts[1].0.len() < 256);
        // An empty cluster is one empty part.
        assert_eq!(
            fragment_parts(&facts(), 0, 3),
            vec![(part_key(&facts(), 0, 1), 0..0)]
        );
    }

    #[test]
    fn records_read_back_as_written() {
        let cluster = b"abcdefg";
        let parts = fragment_parts(&facts(), cluster.len(), 3);
        let mut back = Vec::new();
        for (i, (key, range)) in parts.iter().enumerate() {
            let Some(Stored::Part {
                facts: f,
                part,
                part_count,
                bytes,
            }) = parse(key, &cluster[range.clone()])
            else {
                panic!("not a part: {key}")
            };
            assert_eq!((f, part as usize, part_count), (facts(), i, 3));
            back.extend_from_slice(bytes);
        }
        assert_eq!(back, cluster);
        // Negative times (a producer clock before the epoch) read back too.
        let early = FragmentFacts {
            producer_ms: -5,
            ..facts()
        };
        assert_eq!(parse_part_key(&part_key(&early, 0, 1)), Some((early, 0, 1)));
        let h = header_record(1_000_000, b"\x1a\x45\xdf\xa3mkv");
        assert_eq!(&h[..8], b"RFVH\x01\x00\x00\x00");
        assert_eq!(&h[8..16], &1_000_000u64.to_le_bytes());
        assert_eq!(
            parse(HEADER_KEY, &h),
            Some(Stored::Header {
                scale_ns: 1_000_000,
                mkv: b"\x1a\x45\xdf\xa3mkv"
            })
        );
    }

    #[test]
    fn other_records_are_not_taken_for_ours() {
        let good = part_key(&facts(), 0, 2);
        let n = number_text(facts().number);
        for key in [
            "".to_string(),
            "k".to_string(),
            format!("{n}.0.2.7.1.2.3.4"),     // a field short
            format!("{n}.0.2.7.1.2.3.4.5.6"), // a field more
            format!("{n}.2.2.7.1.2.3.4.5"),   // part past the count
            format!("{n}.0.2.+7.1.2.3.4.5"),  // not plain decimal
            format!("{n}.0.2.7.1.2.-3.4.5"),  // a sign where none goes
            format!("1{}", &good[1..]),       // not our number
        ] {
            assert_eq!(parse_part_key(&key), None, "{key}");
        }
        assert!(parse_part_key(&good).is_some());
        for bad in [
            &b""[..],
            b"RFV",
            b"RFVX\x01\x00",
            b"RFVH\x02\x00\x00\x00\x40\x42\x0f\x00\x00\x00\x00\x00",
            b"RFVH\x01\x00\x00\x00\x40\x42\x0f",
        ] {
            assert_eq!(parse(HEADER_KEY, bad), None, "{bad:?}");
        }
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
