//! The hash-key space and record routing, computed exactly as AWS Kinesis does.
//!
//! Owns: the partition-key hash (MD5, read as a big-endian 128-bit integer), the
//! validation of explicit hash keys, the even split of the key space that
//! CreateStream uses, the lookup of the range holding a key, and shard names
//! (`shardId-000000000000`). It does not know which shards are open: the catalog
//! passes the ranges of the open shards in and maps the returned position back to a
//! shard.

use crate::Error;
use md5::{Digest, Md5};

use crate::seqno::{echo, is_canonical_decimal};

/// The largest hash key: the space is `0..=2^128-1`.
pub const HASH_KEY_MAX: u128 = u128::MAX;

/// AWS's pattern for explicit hash keys is `0|([1-9]\d{0,38})`: at most 39 digits.
const EXPLICIT_HASH_KEY_DIGITS_MAX: usize = 39;

/// Shard names carry this prefix and a 12-digit zero-padded index.
const SHARD_ID_PREFIX: &str = "shardId-";

/// The hash key of a record: MD5 of the partition key's UTF-8 bytes, read as a
/// big-endian unsigned integer.
pub fn hash_key_of(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Parses a client-supplied `ExplicitHashKey`: decimal digits matching AWS's pattern
/// `0|([1-9]\d{0,38})`, at most `2^128-1`.
pub fn parse_explicit_hash_key(s: &str) -> Result<u128, Error> {
    if !is_canonical_decimal(s, EXPLICIT_HASH_KEY_DIGITS_MAX) {
        return Err(Error::invalid(format!(
            "Invalid ExplicitHashKey {}: it must match the pattern 0|([1-9]\\d{{0,38}}).",
            echo(s)
        )));
    }
    // Only overflow is left to fail: the pattern has been checked.
    s.parse::<u128>().map_err(|_| {
        Error::invalid(format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
             Specified value was {s}"
        ))
    })
}

/// Splits the key space into `shard_count` inclusive `(start, end)` ranges the way
/// CreateStream does: shard `i` starts at `floor(i * 2^128 / shard_count)` and the
/// last one ends at `HASH_KEY_MAX`.
///
/// The caller validates `shard_count`; zero is a bug and panics.
pub fn even_split(shard_count: u32) -> Vec<(u128, u128)> {
    assert!(shard_count > 0, "even_split of zero shards");
    if shard_count == 1 {
        // 2^128 / 1 does not fit in a u128; the one range is the whole space.
        return vec![(0, HASH_KEY_MAX)];
    }
    let n = u128::from(shard_count);
    // 2^128 = (MAX / n) * n + (MAX % n) + 1; fold the + 1 into quotient and remainder.
    let (quotient, remainder) = if HASH_KEY_MAX % n + 1 == n {
        (HASH_KEY_MAX / n + 1, 0)
    } else {
        (HASH_KEY_MAX / n, HASH_KEY_MAX % n + 1)
    };
    // floor(i * 2^128 / n) = i * quotient + floor(i * remainder / n). Both products
    // fit: i < n <= 2^32 and remainder < n, and i * quotient <= i * 2^128 / n < 2^128.
    let start = |i: u32| u128::from(i) * quotient + u128::from(i) * remainder / n;
    (0..shard_count)
        .map(|i| {
            let end = if i + 1 == shard_count {
                HASH_KEY_MAX
            } else {
                start(i + 1) - 1
            };
            (start(i), end)
        })
        .collect()
}

/// The position in `ranges` of the range holding `hash_key`. `ranges` must be
/// sorted, contiguous and cover the whole key space (the open shards of a stream
/// always do); anything else is a bug and panics.
pub fn route(ranges: &[(u128, u128)], hash_key: u128) -> usize {
    assert!(
        ranges.first().is_some_and(|&(start, _)| start == 0),
        "ranges do not cover the key space"
    );
    let index = ranges.partition_point(|&(start, _)| start <= hash_key) - 1;
    let (start, end) = ranges[index];
    assert!(
        start <= hash_key && hash_key <= end,
        "ranges do not cover hash key {hash_key}"
    );
    index
}

/// The AWS name of shard `index`: `shardId-` and 12 zero-padded digits.
pub fn shard_id(index: u32) -> String {
    ShardName(index).to_string()
}

/// A shard's AWS name written without allocating (`shardId-000000000000`):
/// what [`shard_id`] returns, for answers written straight into a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardName(pub u32);

impl std::fmt::Display for ShardName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SHARD_ID_PREFIX}{:012}", self.0)
    }
}

/// The index in a shard name: accepts `shardId-` followed by digits (any zero
/// padding) and bare digits. AWS is more lenient still (it takes the digits after
/// any first hyphen); we accept only these two forms.
pub fn parse_shard_id(s: &str) -> Option<u32> {
    let digits = s.strip_prefix(SHARD_ID_PREFIX).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use crate::ErrorCode;

    use super::*;

    #[test]
    fn md5_vectors() {
        fn check(partition_key: &str, md5_hex: &str) {
            let expected = u128::from_str_radix(md5_hex, 16).unwrap();
            assert_eq!(hash_key_of(partition_key), expected, "{partition_key:?}");
        }
        check("", "d41d8cd98f00b204e9800998ecf8427e");
        check("a", "0cc175b9c0f1b6a831c399e269772661");
        check("abc", "900150983cd24fb0d6963f7d28e17f72");
        check("message digest", "f96b697d7cb7938d525a2f31aaf161d0");
        check(
            "The quick brown fox jumps over the lazy dog",
            "9e107d9d372bb6826bd81d3542a419d6",
        );
        check("héllo ✓", "21b1ae5bc147bb564254200a4731e337");
        // The decimal form AWS would show as a record's hash key.
        assert_eq!(
            hash_key_of("").to_string(),
            "281949768489412648962353822266799178366"
        );
    }

    #[test]
    fn explicit_hash_keys() {
        fn check(input: &str, expected: Option<u128>) {
            match (parse_explicit_hash_key(input), expected) {
                (Ok(value), Some(expected)) => assert_eq!(value, expected, "{input:?}"),
                (Err(err), None) => {
                    assert_eq!(err.code, ErrorCode::InvalidArgument, "{input:?}");
                    assert!(err.message.contains("ExplicitHashKey"), "{}", err.message);
                }
                (got, expected) => panic!("{input:?}: got {got:?}, expected {expected:?}"),
            }
        }
        check("0", Some(0));
        check("1", Some(1));
        check("170141183460469231731687303715884105728", Some(1 << 127));
        check("340282366920938463463374607431768211455", Some(u128::MAX));
        check("340282366920938463463374607431768211456", None); // 2^128
        check("999999999999999999999999999999999999999", None);
        check(&"1".repeat(40), None);
        check("", None);
        check("00", None);
        check("01", None);
        check("-1", None);
        check("+1", None);
        check("1 ", None);
        check("0x10", None);
        check("１", None);
    }

    #[test]
    fn even_split_matches_aws() {
        let starts = |n| even_split(n).iter().map(|&(s, _)| s).collect::<Vec<_>>();
        assert_eq!(even_split(1), vec![(0, u128::MAX)]);
        assert_eq!(
            even_split(2),
            vec![
                (0, 170141183460469231731687303715884105727),
                (170141183460469231731687303715884105728, u128::MAX)
            ]
        );
        assert_eq!(
            starts(3),
            vec![
                0,
                113427455640312821154458202477256070485,
                226854911280625642308916404954512140970
            ]
        );
        assert_eq!(
            starts(10)[1..3],
            [
                34028236692093846346337460743176821145,
                68056473384187692692674921486353642291
            ]
        );
        assert_eq!(
            starts(7)[6],
            291670600217947254397178234941515609819,
            "floor(6 * 2^128 / 7)"
        );
    }

    #[test]
    fn even_split_is_contiguous_and_covering() {
        let counts = (1..=64).chain([255, 256, 500, 1000, 10_000, u32::from(u16::MAX)]);
        for n in counts {
            let ranges = even_split(n);
            assert_eq!(ranges.len(), n as usize);
            assert_eq!(ranges[0].0, 0, "n={n}");
            assert_eq!(ranges[ranges.len() - 1].1, HASH_KEY_MAX, "n={n}");
            for pair in ranges.windows(2) {
                assert!(pair[0].0 <= pair[0].1, "n={n}: {pair:?}");
                assert_eq!(pair[0].1 + 1, pair[1].0, "n={n}: {pair:?}");
            }
            // Even: sizes differ by at most one key.
            let sizes = ranges.iter().map(|&(s, e)| e - s);
            let (min, max) = (sizes.clone().min().unwrap(), sizes.max().unwrap());
            assert!(max - min <= 1, "n={n}: sizes {min}..={max}");
        }
    }

    #[test]
    fn even_split_of_a_power_of_two_is_exact() {
        let ranges = even_split(1 << 16);
        assert_eq!(ranges[1].0, 1 << 112);
        assert_eq!(ranges[(1 << 16) - 1].0, u128::MAX - (1 << 112) + 1);
    }

    #[test]
    #[should_panic(expected = "zero shards")]
    fn even_split_of_zero_panics() {
        even_split(0);
    }

    #[test]
    fn routes() {
        let three = even_split(3);
        let cases: &[(u128, usize)] = &[
            (0, 0),
            (1, 0),
            (113427455640312821154458202477256070484, 0),
            (113427455640312821154458202477256070485, 1),
            (226854911280625642308916404954512140969, 1),
            (226854911280625642308916404954512140970, 2),
            (u128::MAX, 2),
        ];
        for &(hash_key, expected) in cases {
            assert_eq!(route(&three, hash_key), expected, "{hash_key}");
        }
        assert_eq!(route(&even_split(1), u128::MAX), 0);
        // Uneven ranges, as after splits and merges.
        let uneven = [
            (0, 9),
            (10, 10),
            (11, 1 << 100),
            ((1 << 100) + 1, u128::MAX),
        ];
        let cases: &[(u128, usize)] = &[
            (0, 0),
            (9, 0),
            (10, 1),
            (11, 2),
            (1 << 100, 2),
            ((1 << 100) + 1, 3),
            (u128::MAX, 3),
        ];
        for &(hash_key, expected) in cases {
            assert_eq!(route(&uneven, hash_key), expected, "{hash_key}");
        }
        // Every partition key lands in the range it hashes into.
        let ranges = even_split(500);
        for i in 0..2000 {
            let hash_key = hash_key_of(&format!("key-{i}"));
            let (start, end) = ranges[route(&ranges, hash_key)];
            assert!(start <= hash_key && hash_key <= end);
        }
    }

    #[test]
    #[should_panic(expected = "do not cover")]
    fn route_over_a_hole_panics() {
        route(&[(0, 9), (20, u128::MAX)], 15);
    }

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(1), "shardId-000000000001");
        assert_eq!(shard_id(u32::MAX), "shardId-004294967295");
        let cases: &[(&str, Option<u32>)] = &[
            ("shardId-000000000000", Some(0)),
            ("shardId-000000000001", Some(1)),
            ("shardId-000000000499", Some(499)),
            ("shardId-1", Some(1)),
            ("shardId-004294967295", Some(u32::MAX)),
            ("shardId-004294967296", None),
            ("0", Some(0)),
            ("42", Some(42)),
            ("007", Some(7)),
            ("", None),
            ("shardId-", None),
            ("shardId--1", None),
            ("shardId-+1", None),
            ("shardId-1 ", None),
            ("shardid-1", None),
            ("shard-1", None),
            ("+1", None),
            ("-1", None),
            ("１", None),
            ("99999999999999999999", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(parse_shard_id(input), expected, "{input:?}");
        }
        for index in [0, 1, 12345, u32::MAX] {
            assert_eq!(parse_shard_id(&shard_id(index)), Some(index));
        }
    }
}
