//! Shard iterators: the iterator types GetShardIterator accepts, and the opaque
//! tokens it hands out and GetRecords takes back.
//!
//! Owns the token format, its authentication (a truncated HMAC-SHA256 under a
//! per-server secret, so clients cannot forge positions or streams) and its expiry
//! check. It does not resolve positions: turning TRIM_HORIZON, LATEST or a timestamp
//! into an offset is the log's job, and checking that the stream still exists (and
//! is the same incarnation, via `stream_id`) is the catalog's.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use riffle_protocol::{Error, ErrorCode};
use sha2::Sha256;

use riffle_protocol::seqno;

/// Where a new iterator starts, as GetShardIterator asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IteratorType {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record: only records written from now on.
    Latest,
    /// At the record with this sequence number.
    AtSequenceNumber(u128),
    /// Just after the record with this sequence number.
    AfterSequenceNumber(u128),
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(i64),
}

impl IteratorType {
    /// Parses GetShardIterator's `ShardIteratorType`, `StartingSequenceNumber` and
    /// `Timestamp` (already converted to ms) the way AWS checks them.
    ///
    /// A timestamp given with another type is ignored, as AWS does. The caller
    /// still checks that an AT_TIMESTAMP time is not in the future (it needs the
    /// clock) and that a sequence number belongs to the shard
    /// ([`seqno::offset_in_shard`]).
    pub fn parse(
        kind: &str,
        sequence_number: Option<&str>,
        timestamp_ms: Option<i64>,
    ) -> Result<IteratorType, Error> {
        let sequence_number_rule = |specified: &str| {
            Error::invalid(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
                 StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
                 StartingSequenceNumber. Request specified {kind} and {specified} \
                 StartingSequenceNumber."
            ))
        };
        match (kind, sequence_number) {
            ("TRIM_HORIZON", None) => Ok(IteratorType::TrimHorizon),
            ("LATEST", None) => Ok(IteratorType::Latest),
            ("TRIM_HORIZON" | "LATEST", Some(_)) => Err(sequence_number_rule("also a")),
            ("AT_SEQUENCE_NUMBER", Some(s)) => Ok(IteratorType::AtSequenceNumber(seqno::parse(s)?)),
            ("AFTER_SEQUENCE_NUMBER", Some(s)) => {
                Ok(IteratorType::AfterSequenceNumber(seqno::parse(s)?))
            }
            ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
                Err(sequence_number_rule("no"))
            }
            ("AT_TIMESTAMP", Some(_)) => Err(Error::invalid(
                "Must not specify StartingSequenceNumber for iterator of type AT_TIMESTAMP.",
            )),
            ("AT_TIMESTAMP", None) => match timestamp_ms {
                Some(timestamp_ms) => Ok(IteratorType::AtTimestamp(timestamp_ms)),
                None => Err(Error::invalid(
                    "Must specify timestampInMillis parameter for iterator of type \
                     AT_TIMESTAMP. Current request has no timestamp parameter.",
                )),
            },
            _ => Err(Error::invalid(format!(
                "1 validation error detected: Value {} at 'shardIteratorType' failed to \
                 satisfy constraint: Member must satisfy enum value set: \
                 [AFTER_SEQUENCE_NUMBER, LATEST, TRIM_HORIZON, AT_SEQUENCE_NUMBER, AT_TIMESTAMP]",
                seqno::echo(kind)
            ))),
        }
    }
}

/// The per-server secret that authenticates iterator tokens. Its `Debug` never
/// shows the bytes.
#[derive(Clone)]
pub struct IteratorKey([u8; 32]);

impl IteratorKey {
    pub fn new(bytes: [u8; 32]) -> IteratorKey {
        IteratorKey(bytes)
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for IteratorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IteratorKey(<redacted>)")
    }
}

/// Token format version; bump it when the layout changes.
const TOKEN_VERSION: u8 = 1;
/// Bytes before the stream name: version, stream_id, shard_index, offset, issued_ms,
/// name_len.
const TOKEN_HEADER_SIZE: usize = 1 + 8 + 4 + 8 + 8 + 1;
/// AWS stream names are 1 to 128 ASCII characters, so at most 128 bytes.
const TOKEN_NAME_SIZE_MAX: usize = 128;
/// Truncated HMAC-SHA256: 128 bits are plenty against forgery of a token that
/// lives five minutes, and keep tokens short.
const TOKEN_MAC_SIZE: usize = 16;
const TOKEN_SIZE_MAX: usize = TOKEN_HEADER_SIZE + TOKEN_NAME_SIZE_MAX + TOKEN_MAC_SIZE;
/// The longest token we issue, in base64 characters (no padding).
const TOKEN_CHARS_MAX: usize = (TOKEN_SIZE_MAX * 4).div_ceil(3);
/// AWS: a ShardIterator is 1 to 512 characters.
const AWS_SHARD_ITERATOR_CHARS_MAX: usize = 512;

const _: () = assert!(TOKEN_NAME_SIZE_MAX <= u8::MAX as usize);
const _: () = assert!(TOKEN_CHARS_MAX <= AWS_SHARD_ITERATOR_CHARS_MAX);
const _: () = assert!(TOKEN_MAC_SIZE <= 32);

/// A decoded shard iterator: where to read next, in which stream, and when it was
/// issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorToken {
    /// The stream's incarnation: a stream deleted and recreated under the same name
    /// gets a new id, so old iterators do not read the new stream.
    pub stream_id: u64,
    pub stream_name: String,
    pub shard_index: u32,
    /// The position of the next record to read.
    pub offset: u64,
    pub issued_ms: i64,
}

impl IteratorToken {
    /// The token string, URL-safe base64 without padding, of these bytes
    /// (integers little-endian):
    ///
    /// ```text
    /// [version:u8 = 1][stream_id:u64][shard_index:u32][offset:u64][issued_ms:i64]
    /// [name_len:u8][name: name_len bytes, <= 128][mac: 16 bytes]
    /// ```
    ///
    /// `mac` is the first 16 bytes of HMAC-SHA256(key, every byte before it). The
    /// result is 62 to 232 characters, within AWS's 512.
    ///
    /// The stream name must be at most 128 bytes (names are validated on
    /// CreateStream); a longer one is a bug and panics.
    pub fn encode(&self, key: &IteratorKey) -> String {
        let name = self.stream_name.as_bytes();
        assert!(
            name.len() <= TOKEN_NAME_SIZE_MAX,
            "stream name of {} bytes in an iterator",
            name.len()
        );
        let mut bytes = Vec::with_capacity(TOKEN_SIZE_MAX);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.stream_id.to_le_bytes());
        bytes.extend_from_slice(&self.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.offset.to_le_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_le_bytes());
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name);
        let tag = key.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TOKEN_MAC_SIZE]);
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(!token.is_empty() && token.len() <= TOKEN_CHARS_MAX);
        token
    }

    /// Checks and decodes a token from a client. Malformed, forged or tampered
    /// tokens get InvalidArgument "Invalid ShardIterator."; a token issued more than
    /// `age_ms_max` before `now_ms` gets ExpiredIterator. Never panics.
    pub fn decode(
        token: &str,
        key: &IteratorKey,
        now_ms: i64,
        age_ms_max: u64,
    ) -> Result<IteratorToken, Error> {
        let invalid = || Error::invalid("Invalid ShardIterator.");
        // Bound before allocating: longer strings are not ours.
        if token.len() > TOKEN_CHARS_MAX {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let body_size = bytes
            .len()
            .checked_sub(TOKEN_MAC_SIZE)
            .ok_or_else(invalid)?;
        let (body, tag) = bytes.split_at(body_size);
        // Authenticate before interpreting a single byte; the comparison is
        // constant-time.
        key.mac(body)
            .verify_truncated_left(tag)
            .map_err(|_| invalid())?;
        let decoded = IteratorToken::decode_body(body).ok_or_else(invalid)?;

        let age_ms = i128::from(now_ms) - i128::from(decoded.issued_ms);
        if age_ms > i128::from(age_ms_max) {
            return Err(Error::new(
                ErrorCode::ExpiredIterator,
                format!(
                    "Iterator expired. The iterator was created at time {} while right now \
                     it is {} which is further in the future than the tolerated delay of \
                     {age_ms_max} milliseconds.",
                    amz_utc_string(decoded.issued_ms),
                    amz_utc_string(now_ms)
                ),
            ));
        }
        Ok(decoded)
    }

    /// The fields of an authenticated body; `None` if it is not version 1's layout.
    fn decode_body(body: &[u8]) -> Option<IteratorToken> {
        let mut reader = Reader(body);
        if reader.array::<1>()? != [TOKEN_VERSION] {
            return None;
        }
        let stream_id = u64::from_le_bytes(reader.array()?);
        let shard_index = u32::from_le_bytes(reader.array()?);
        let offset = u64::from_le_bytes(reader.array()?);
        let issued_ms = i64::from_le_bytes(reader.array()?);
        let [name_len] = reader.array::<1>()?;
        let name = reader.slice(usize::from(name_len))?;
        if !reader.0.is_empty() || name.len() > TOKEN_NAME_SIZE_MAX {
            return None;
        }
        Some(IteratorToken {
            stream_id,
            stream_name: String::from_utf8(name.to_vec()).ok()?,
            shard_index,
            offset,
            issued_ms,
        })
    }
}

/// Reads fixed-size fields off the front of a byte slice; `None` when short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn slice(&mut self, size: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(size)?;
        self.0 = rest;
        Some(head)
    }
}

/// A time the way AWS writes it in ExpiredIterator messages:
/// `Thu Jan 22 01:22:02 UTC 2015`. Total over every `i64`.
fn amz_utc_string(ms: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let (year, month, day) = riffle_protocol::time::civil_from_days(days);
    format!(
        "{weekday} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        MONTHS[month as usize - 1],
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const AGE_MS_MAX: u64 = 300_000;
    const NOW_MS: i64 = 1_421_889_722_000;

    fn key() -> IteratorKey {
        IteratorKey::new(*b"0123456789abcdef0123456789abcdef")
    }

    fn token(stream_name: &str) -> IteratorToken {
        IteratorToken {
            stream_id: 0x0102_0304_0506_0708,
            stream_name: stream_name.to_string(),
            shard_index: 7,
            offset: 1_000_000,
            issued_ms: NOW_MS,
        }
    }

    fn expect_invalid(text: &str) {
        match IteratorToken::decode(text, &key(), NOW_MS, AGE_MS_MAX) {
            Err(err) => {
                assert_eq!(err.code, ErrorCode::InvalidArgument, "{text:?}");
                assert_eq!(err.message, "Invalid ShardIterator.");
            }
            Ok(decoded) => panic!("{text:?} decoded to {decoded:?}"),
        }
    }

    /// RIFFLE_SEED replays a run; otherwise the seed comes from the clock.
    fn seeded_rng() -> SmallRng {
        let seed = std::env::var("RIFFLE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.map_or(0, |d| d.as_nanos() as u64)
            });
        eprintln!("RIFFLE_SEED={seed}");
        SmallRng::seed_from_u64(seed)
    }

    #[test]
    fn round_trip() {
        let cases = [
            token("s"),
            token(&"n".repeat(128)),
            token(""),
            IteratorToken {
                stream_id: u64::MAX,
                stream_name: "my-stream_1.a".to_string(),
                shard_index: u32::MAX,
                offset: u64::MAX,
                issued_ms: i64::MIN,
            },
            IteratorToken {
                stream_id: 0,
                stream_name: "x".to_string(),
                shard_index: 0,
                offset: 0,
                issued_ms: i64::MAX,
            },
        ];
        for original in cases {
            let text = original.encode(&key());
            assert!((1..=512).contains(&text.len()), "{}", text.len());
            let decoded = IteratorToken::decode(&text, &key(), original.issued_ms, 0);
            assert_eq!(decoded, Ok(original));
        }
    }

    #[test]
    fn golden_bytes() {
        let text = token("ab").encode(&key());
        let bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        #[rustfmt::skip]
        let expected_body: &[u8] = &[
            1,                                      // version
            8, 7, 6, 5, 4, 3, 2, 1,                 // stream_id
            7, 0, 0, 0,                             // shard_index
            0x40, 0x42, 0x0f, 0, 0, 0, 0, 0,        // offset 1_000_000
            0x90, 0x56, 0x3b, 0x0f, 0x4b, 1, 0, 0,  // issued_ms 1_421_889_722_000
            2, b'a', b'b',                          // name
        ];
        assert_eq!(&bytes[..expected_body.len()], expected_body);
        assert_eq!(bytes.len(), expected_body.len() + TOKEN_MAC_SIZE);
        let mac = key().mac(expected_body).finalize().into_bytes();
        assert_eq!(&bytes[expected_body.len()..], &mac[..TOKEN_MAC_SIZE]);
    }

    #[test]
    fn longest_name_fits_aws_limit() {
        let text = token(&"a".repeat(128)).encode(&key());
        assert_eq!(text.len(), TOKEN_CHARS_MAX);
        assert_eq!(text.len(), 232);
        assert!(text.len() <= 512);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    #[should_panic(expected = "stream name of 129 bytes")]
    fn overlong_name_is_a_bug() {
        token(&"a".repeat(129)).encode(&key());
    }

    #[test]
    fn expiry_boundary() {
        let text = token("s").encode(&key());
        let decode = |now_ms| IteratorToken::decode(&text, &key(), now_ms, AGE_MS_MAX);
        assert!(decode(NOW_MS).is_ok());
        assert!(
            decode(NOW_MS - 1_000).is_ok(),
            "issued in the future: clock skew"
        );
        assert!(decode(NOW_MS + AGE_MS_MAX as i64).is_ok());
        let err = decode(NOW_MS + AGE_MS_MAX as i64 + 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::ExpiredIterator);
        assert_eq!(
            err.message,
            "Iterator expired. The iterator was created at time Thu Jan 22 01:22:02 UTC 2015 \
             while right now it is Thu Jan 22 01:27:02 UTC 2015 which is further in the \
             future than the tolerated delay of 300000 milliseconds."
        );
        // Extremes do not overflow: the largest age is 2^64 - 1 ms.
        let old = IteratorToken {
            issued_ms: i64::MIN,
            ..token("s")
        }
        .encode(&key());
        assert!(IteratorToken::decode(&old, &key(), i64::MAX, u64::MAX).is_ok());
        let err = IteratorToken::decode(&old, &key(), i64::MAX, u64::MAX - 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::ExpiredIterator);
    }

    #[test]
    fn foreign_key_is_rejected() {
        let text = token("s").encode(&IteratorKey::new([7; 32]));
        expect_invalid(&text);
    }

    #[test]
    fn tampering_is_rejected() {
        let original = URL_SAFE_NO_PAD
            .decode(token("stream").encode(&key()))
            .unwrap();
        // Every bit of the raw token.
        for index in 0..original.len() {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[index] ^= 1 << bit;
                expect_invalid(&URL_SAFE_NO_PAD.encode(&bytes));
            }
        }
        // Every truncation and extension of the raw token.
        for size in 0..original.len() {
            expect_invalid(&URL_SAFE_NO_PAD.encode(&original[..size]));
        }
        let mut longer = original.clone();
        longer.push(0);
        expect_invalid(&URL_SAFE_NO_PAD.encode(&longer));
        // Every character of the text replaced by every other base64 character, and
        // every truncation of the text.
        let text = URL_SAFE_NO_PAD.encode(&original);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for index in 0..text.len() {
            for &replacement in alphabet.iter().filter(|&&c| c != text.as_bytes()[index]) {
                let mut changed = text.clone().into_bytes();
                changed[index] = replacement;
                expect_invalid(&String::from_utf8(changed).unwrap());
            }
            expect_invalid(&text[..index]);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let fixed = [
            "",
            "=",
            "AAAA",
            "AAAA==",
            "not a token",
            "AAAAAAAAAAFEvJjIYI+3jw/4aqgH9FifJ+n48XWTh/IFIsbILP6o5eDueD39NXNBfpZ10WL5K6ADXk8w",
            "ÿÿÿÿ",
        ];
        for text in fixed {
            expect_invalid(text);
        }
        expect_invalid(&"A".repeat(1 << 20));
        expect_invalid(&format!("{}=", token("s").encode(&key())));

        let mut rng = seeded_rng();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \0";
        for _ in 0..5_000 {
            let size = rng.random_range(0..=600);
            let text: String = (0..size)
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect();
            expect_invalid(&text);
            // Well-formed base64 of random bytes of a plausible size.
            let raw: Vec<u8> = (0..rng.random_range(0..=TOKEN_SIZE_MAX + 4))
                .map(|_| rng.random())
                .collect();
            expect_invalid(&URL_SAFE_NO_PAD.encode(&raw));
        }
        // Well-formed bodies with random MACs.
        let original = URL_SAFE_NO_PAD.decode(token("s").encode(&key())).unwrap();
        let body_size = original.len() - TOKEN_MAC_SIZE;
        for _ in 0..1_000 {
            let mut bytes = original.clone();
            rng.fill(&mut bytes[body_size..]);
            if bytes != original {
                expect_invalid(&URL_SAFE_NO_PAD.encode(&bytes));
            }
        }
    }

    #[test]
    fn body_checks_after_authentication() {
        // A correctly authenticated body that is not version 1's layout is still
        // rejected: this is what a key shared with a newer server would produce.
        let sign = |body: &[u8]| {
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(&key().mac(body).finalize().into_bytes()[..TOKEN_MAC_SIZE]);
            URL_SAFE_NO_PAD.encode(&bytes)
        };
        let good = URL_SAFE_NO_PAD.decode(token("ab").encode(&key())).unwrap();
        let body = &good[..good.len() - TOKEN_MAC_SIZE];
        assert!(IteratorToken::decode(&sign(body), &key(), NOW_MS, AGE_MS_MAX).is_ok());
        let mut wrong_version = body.to_vec();
        wrong_version[0] = 2;
        let mut wrong_name_len = body.to_vec();
        wrong_name_len[TOKEN_HEADER_SIZE - 1] = 3;
        let mut not_utf8 = body.to_vec();
        not_utf8[TOKEN_HEADER_SIZE] = 0xff;
        let mut trailing = body.to_vec();
        trailing.push(b'c');
        for bad in [
            &wrong_version[..],
            &wrong_name_len,
            &not_utf8,
            &trailing,
            &body[..TOKEN_HEADER_SIZE],
            &[],
        ] {
            expect_invalid(&sign(bad));
        }
    }

    #[test]
    fn key_debug_hides_secret() {
        assert_eq!(
            format!("{:?}", IteratorKey::new([0xab; 32])),
            "IteratorKey(<redacted>)"
        );
    }

    #[test]
    fn amz_utc_strings() {
        let cases = [
            (1_421_889_722_000, "Thu Jan 22 01:22:02 UTC 2015"),
            (1_421_889_722_999, "Thu Jan 22 01:22:02 UTC 2015"),
            (0, "Thu Jan 01 00:00:00 UTC 1970"),
            (-1, "Wed Dec 31 23:59:59 UTC 1969"),
            (1_709_251_199_000, "Thu Feb 29 23:59:59 UTC 2024"),
            (951_782_400_000, "Tue Feb 29 00:00:00 UTC 2000"),
            (4_102_444_800_000, "Fri Jan 01 00:00:00 UTC 2100"),
        ];
        for (ms, expected) in cases {
            assert_eq!(amz_utc_string(ms), expected, "{ms}");
        }
        // Total: the extremes format without panicking.
        assert!(amz_utc_string(i64::MIN).ends_with("UTC -292275055"));
        assert!(amz_utc_string(i64::MAX).ends_with("UTC 292278994"));
    }

    #[test]
    fn iterator_types() {
        fn check(
            kind: &str,
            sequence_number: Option<&str>,
            timestamp_ms: Option<i64>,
            expected: Result<IteratorType, &str>,
        ) {
            let got = IteratorType::parse(kind, sequence_number, timestamp_ms);
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{kind}"),
                (Err(err), Err(part)) => {
                    assert_eq!(err.code, ErrorCode::InvalidArgument, "{kind}");
                    assert!(err.message.contains(part), "{kind}: {}", err.message);
                }
                (got, expected) => panic!("{kind}: got {got:?}, expected {expected:?}"),
            }
        }
        let seq = seqno::to_string(seqno::encode(1, 5));
        let seq_value = seqno::encode(1, 5);
        use IteratorType::*;
        check("TRIM_HORIZON", None, None, Ok(TrimHorizon));
        check("LATEST", None, None, Ok(Latest));
        check("LATEST", None, Some(5), Ok(Latest));
        check(
            "AT_SEQUENCE_NUMBER",
            Some(&seq),
            None,
            Ok(AtSequenceNumber(seq_value)),
        );
        check(
            "AFTER_SEQUENCE_NUMBER",
            Some(&seq),
            None,
            Ok(AfterSequenceNumber(seq_value)),
        );
        check("AT_TIMESTAMP", None, Some(-5), Ok(AtTimestamp(-5)));
        check("AT_TIMESTAMP", None, Some(NOW_MS), Ok(AtTimestamp(NOW_MS)));
        check(
            "LATEST",
            Some(&seq),
            None,
            Err("Request specified LATEST and also a StartingSequenceNumber."),
        );
        check(
            "TRIM_HORIZON",
            Some("1"),
            None,
            Err("Request specified TRIM_HORIZON and also a StartingSequenceNumber."),
        );
        check(
            "AT_SEQUENCE_NUMBER",
            None,
            Some(5),
            Err("Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber."),
        );
        check(
            "AFTER_SEQUENCE_NUMBER",
            None,
            None,
            Err("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER"),
        );
        check(
            "AT_SEQUENCE_NUMBER",
            Some("01"),
            None,
            Err("Invalid SequenceNumber"),
        );
        check(
            "AFTER_SEQUENCE_NUMBER",
            Some(""),
            None,
            Err("Invalid SequenceNumber"),
        );
        check(
            "AT_TIMESTAMP",
            None,
            None,
            Err("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP."),
        );
        check("AT_TIMESTAMP", Some(&seq), Some(5), Err("Must not specify"));
        for kind in [
            "",
            "latest",
            "Latest",
            "LATEST ",
            "AT_TIME_STAMP",
            "TRIM-HORIZON",
        ] {
            check(kind, None, None, Err("Member must satisfy enum value set"));
        }
    }
}
