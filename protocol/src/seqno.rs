//! Kinesis sequence numbers: how a (shard, record offset) pair becomes the decimal
//! string clients see, and back.
//!
//! Owns the encoding and the validation of client-supplied sequence numbers. It does
//! not know which offsets exist in a shard (the log does) nor which shards exist in a
//! stream (the catalog does).
//!
//! Encoding, as a 128-bit unsigned integer written in plain decimal:
//!
//! ```text
//!  bit 127   126 ..= 96     95 ..= 64      63 ..= 0
//! [marker=1][zero: 31 bits][shard_index: u32][offset: u64]
//! ```
//!
//! The marker bit makes every number 39 digits long (AWS's are long too) and sets
//! them apart from small garbage such as `"5"`. Within a shard the numbers grow
//! strictly with the offset, as Kinesis promises.

use crate::Error;

/// The marker bit every sequence number we issue carries.
const MARKER: u128 = 1 << 127;

/// AWS's pattern for sequence numbers is `0|([1-9]\d{0,128})`: at most 129 digits.
const DIGITS_MAX: usize = 129;

/// The sequence number of the record at `offset` in shard `shard_index`.
pub const fn encode(shard_index: u32, offset: u64) -> u128 {
    MARKER | ((shard_index as u128) << 64) | offset as u128
}

/// A number that comes before every record of shard `shard_index`: AFTER it is
/// the shard's first offset (offset `u64::MAX` is never a record's, and the
/// offset after it wraps to 0). AT it is past the shard's end.
pub const fn before_first(shard_index: u32) -> u128 {
    encode(shard_index, u64::MAX)
}

/// The decimal form clients see.
pub fn to_string(seq: u128) -> String {
    seq.to_string()
}

/// Parses a client-supplied sequence number: it must match AWS's pattern
/// `0|([1-9]\d{0,128})` and fit in 128 bits.
pub fn parse(s: &str) -> Result<u128, Error> {
    if !is_canonical_decimal(s, DIGITS_MAX) {
        return Err(Error::invalid(format!(
            "Invalid SequenceNumber {}: it must match the pattern 0|([1-9]\\d{{0,128}}).",
            echo(s)
        )));
    }
    // Only overflow is left to fail: the pattern has been checked.
    s.parse::<u128>().map_err(|_| {
        Error::invalid(format!(
            "Invalid SequenceNumber {}: it must be less than 2^128.",
            echo(s)
        ))
    })
}

/// Splits a sequence number into `(shard_index, offset)`; rejects numbers this
/// encoding never produces (no marker bit, or stray bits between 96 and 126).
pub fn decode(seq: u128) -> Result<(u32, u64), Error> {
    if seq >> 96 != MARKER >> 96 {
        return Err(Error::invalid(format!(
            "Invalid SequenceNumber {seq}: it was not issued by this service."
        )));
    }
    Ok(((seq >> 64) as u32, seq as u64))
}

/// Parses and decodes a client-supplied sequence number that must belong to shard
/// `shard_index`, and returns its offset. `shard_id_for_messages` is the shard's
/// name (`shardId-000000000001`), only used in error messages.
pub fn offset_in_shard(
    seq_str: &str,
    shard_index: u32,
    shard_id_for_messages: &str,
) -> Result<u64, Error> {
    let (encoded_shard_index, offset) = decode(parse(seq_str)?)?;
    if encoded_shard_index != shard_index {
        return Err(Error::invalid(format!(
            "Invalid SequenceNumber for ShardId {shard_id_for_messages}. It encodes {}, \
             while it was used in a call to a shard with {shard_id_for_messages}.",
            crate::routing::shard_id(encoded_shard_index)
        )));
    }
    Ok(offset)
}

/// Whether `s` matches `0|([1-9]\d{0,digits_max-1})`.
pub(crate) fn is_canonical_decimal(s: &str, digits_max: usize) -> bool {
    let bytes = s.as_bytes();
    match bytes {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => bytes.len() <= digits_max && bytes.iter().all(u8::is_ascii_digit),
    }
}

/// Client input quoted for an error message, cut short so a huge input cannot make
/// a huge message.
pub fn echo(s: &str) -> String {
    const CHARS_MAX: usize = 130;
    match s.char_indices().nth(CHARS_MAX) {
        None => format!("'{s}'"),
        Some((cut, _)) => format!("'{}...' ({} bytes)", &s[..cut], s.len()),
    }
}

#[cfg(test)]
mod tests {
    use crate::ErrorCode;

    use super::*;

    #[test]
    fn round_trip() {
        let shard_indexes = [0, 1, 7, 499, u32::MAX];
        let offsets = [0, 1, 1 << 32, u64::MAX - 1, u64::MAX];
        for shard_index in shard_indexes {
            for offset in offsets {
                let seq = encode(shard_index, offset);
                let text = to_string(seq);
                assert_eq!(text.len(), 39, "{text}");
                assert_eq!(parse(&text), Ok(seq));
                assert_eq!(decode(seq), Ok((shard_index, offset)));
                let shard_id = crate::routing::shard_id(shard_index);
                assert_eq!(offset_in_shard(&text, shard_index, &shard_id), Ok(offset));
            }
        }
    }

    #[test]
    fn golden_values() {
        assert_eq!(
            to_string(encode(0, 0)),
            "170141183460469231731687303715884105728"
        );
        assert_eq!(
            to_string(encode(5, 42)),
            "170141183460469231823921024084431863850"
        );
    }

    #[test]
    fn strictly_increasing_with_offset() {
        for shard_index in [0, 3, u32::MAX] {
            let mut previous = None;
            for offset in (0..1000).chain([u64::MAX - 1, u64::MAX]) {
                let seq = encode(shard_index, offset);
                assert!(previous < Some(seq));
                // The decimal strings order the same way: they all have 39 digits.
                let text = to_string(seq);
                if let Some(previous) = previous {
                    assert!(to_string(previous) < text);
                }
                previous = Some(seq);
            }
        }
    }

    #[test]
    fn rejections() {
        fn check(input: &str, expected_message_part: &str) {
            let err = offset_in_shard(input, 1, "shardId-000000000001").unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidArgument, "{input:?}");
            assert!(
                err.message.contains(expected_message_part),
                "{input:?}: {:?} lacks {expected_message_part:?}",
                err.message
            );
        }
        let max = u128::MAX.to_string();
        let over_max = "340282366920938463463374607431768211456"; // 2^128
        let other_shard = to_string(encode(5, 9));
        let stray_bit = to_string(encode(1, 9) | 1 << 96);
        let cases: &[(&str, &str)] = &[
            ("", "must match the pattern"),
            ("0", "not issued by this service"),
            ("5", "not issued by this service"),
            ("01", "must match the pattern"),
            (
                "0170141183460469231731687303715884105728",
                "must match the pattern",
            ),
            ("-1", "must match the pattern"),
            ("+1", "must match the pattern"),
            (" 1", "must match the pattern"),
            ("1 ", "must match the pattern"),
            ("12a4", "must match the pattern"),
            ("１２", "must match the pattern"),
            ("1.0", "must match the pattern"),
            ("1e5", "must match the pattern"),
            (&max[..], "not issued by this service"),
            (over_max, "less than 2^128"),
            (&"9".repeat(129), "less than 2^128"),
            (&"9".repeat(130), "must match the pattern"),
            (&"1".repeat(100_000), "must match the pattern"),
            (&stray_bit, "not issued by this service"),
            (
                &other_shard,
                "It encodes shardId-000000000005, while it was used in a call to a shard \
                 with shardId-000000000001",
            ),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn error_messages_stay_short() {
        let err = parse(&"x".repeat(1 << 20)).unwrap_err();
        assert!(err.message.len() < 300, "{}", err.message.len());
        let err = parse("é".repeat(1000).as_str()).unwrap_err();
        assert!(err.message.len() < 400, "{}", err.message.len());
    }
}
