//! Sequence numbers and shard iterators in AWS's form, at the edge of the
//! Kinesis API: the engine numbers a shard's records by offset
//! (`riffle_protocol::seqno`, 39 digits) and signs its own iterator tokens;
//! AWS clients see and send what AWS sends.
//!
//! A sequence number, as AWS writes it, is a 47-hex-digit number printed in
//! decimal (56 digits), version 2 (the layout kinesalite's suite recorded):
//!
//! ```text
//! hex digit  0    1..10       10        11..27    27..29  29..38     38..46   46
//!           [2][created_s:9][ix:1][seq_ix:16][00][time_s:9][shard:8][2]
//! ```
//!
//! `created_s`: when the shard opened, in seconds, as AWS dates it: a new
//! stream's shards a few seconds before CreateStream returned (2-7 s in the
//! recording; here 3), a child one second after its parents' ending numbers;
//! `ix`, `shard`: the shard's index (its low hex digit, then all 32 bits);
//! `seq_ix`: the record's offset + 1 (0 is the shard's starting number,
//! before every record; `0x7fff_ffff_ffff_ffff` its ending number once
//! closed); `time_s`: the record's arrival (the shard's opening for its
//! starting number, its closing for its ending one). Only the shard and
//! `seq_ix` locate a record; the times only have to match AWS's checks.
//!
//! Clients' numbers are read as AWS reads them (`parse`): versions 0, 1 and 2,
//! with AWS's refusals (a date too large, an index past 63 bits, a negative
//! shard, an unknown version).
//!
//! A shard iterator is the engine's token inside AWS's envelope: standard
//! base64 of `[0, 0, 0, 0, 0, 0, 0, 1]`, the token's length and bytes, and
//! zeros up to 152 + 16·k bytes (AWS's iterators are that long).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use riffle_protocol::seqno;

use crate::ShardOpened;

/// `seq_ix` of a closed shard's ending sequence number.
const SEQ_IX_END: u64 = 0x7fff_ffff_ffff_ffff;

/// AWS refuses sequence numbers whose creation time is at or past this
/// (seconds; the year 2477).
const CREATED_S_LIMIT: u64 = 16_025_175_000;

/// A 192-bit unsigned integer: limbs most significant first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct U192([u64; 3]);

impl U192 {
    /// `2^bit`.
    fn pow2(bit: u32) -> U192 {
        let mut v = U192::default();
        v.0[2 - (bit / 64) as usize] = 1 << (bit % 64);
        v
    }

    /// `self | (value << shift)` for a `width`-bit `value` (`shift + width <= 192`).
    fn with(mut self, value: u64, shift: u32, width: u32) -> U192 {
        debug_assert!(width == 64 || value >> width == 0);
        debug_assert!(shift + width <= 192);
        let (limb, offset) = (2 - (shift / 64) as usize, shift % 64);
        self.0[limb] |= value << offset;
        if offset > 0 && offset + width > 64 {
            self.0[limb - 1] |= value >> (64 - offset);
        }
        self
    }

    /// The `width` bits (at most 64) from bit `shift` up.
    fn bits(self, shift: u32, width: u32) -> u64 {
        let (limb, offset) = (2 - (shift / 64) as usize, shift % 64);
        let mut v = self.0[limb] >> offset;
        if offset > 0 && offset + width > 64 {
            v |= self.0[limb - 1] << (64 - offset);
        }
        if width == 64 {
            v
        } else {
            v & ((1 << width) - 1)
        }
    }

    fn add(self, other: U192) -> U192 {
        let mut out = [0u64; 3];
        let mut carry = 0u128;
        for i in (0..3).rev() {
            let sum = self.0[i] as u128 + other.0[i] as u128 + carry;
            out[i] = sum as u64;
            carry = sum >> 64;
        }
        U192(out)
    }

    /// A decimal number of at most 192 bits (`None` when larger or not digits).
    fn parse_decimal(s: &str) -> Option<U192> {
        let mut v = [0u64; 3];
        for d in s.bytes() {
            if !d.is_ascii_digit() {
                return None;
            }
            let mut carry = (d - b'0') as u128;
            for limb in v.iter_mut().rev() {
                let x = *limb as u128 * 10 + carry;
                *limb = x as u64;
                carry = x >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U192(v))
    }

    /// In decimal: at most 58 digits (2^192 < 10^58). This runs once per
    /// record of every answer, so it allocates nothing and divides only
    /// 64-bit numbers by a constant (a u128 division is a library call).
    fn to_decimal(self) -> Digits {
        const BASE: u64 = 1_000_000_000;
        // 32-bit limbs, most significant first.
        let mut limbs = [0u32; 6];
        for (i, l) in self.0.iter().enumerate() {
            limbs[2 * i] = (l >> 32) as u32;
            limbs[2 * i + 1] = *l as u32;
        }
        let mut buf = [b'0'; DIGITS_MAX];
        let mut end = DIGITS_MAX;
        let mut first = limbs.iter().position(|&l| l != 0).unwrap_or(limbs.len());
        while first < limbs.len() {
            // Divide by 10^9; the remainder is the next 9 digits.
            let mut rem = 0u64;
            for limb in &mut limbs[first..] {
                let cur = (rem << 32) | *limb as u64;
                *limb = (cur / BASE) as u32;
                rem = cur % BASE;
            }
            // Two digits at a time (each `/` by a constant is a multiply).
            for _ in 0..4 {
                let pair = (rem % 100) as usize * 2;
                rem /= 100;
                end -= 2;
                buf[end..end + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            }
            end -= 1;
            buf[end] = b'0' + rem as u8;
            while first < limbs.len() && limbs[first] == 0 {
                first += 1;
            }
        }
        // No leading zeros; zero is "0".
        let start = buf[..DIGITS_MAX - 1]
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(DIGITS_MAX - 1);
        Digits { buf, start }
    }
}

/// "00" to "99".
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Room for 7 chunks of 9 digits (a 192-bit number has at most 58).
const DIGITS_MAX: usize = 63;

/// A number's decimal digits, on the stack.
#[derive(Clone, Copy)]
pub(super) struct Digits {
    buf: [u8; DIGITS_MAX],
    start: usize,
}

impl Digits {
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits")
    }
}

impl std::ops::Deref for Digits {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for Digits {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Digits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How many seconds before its stream's creation AWS dates a new stream's shards.
const CREATED_LEAD_S: u64 = 3;

/// The `created_s` of a shard.
pub(super) fn created_s(opened: ShardOpened) -> u64 {
    let s = secs(opened.at_ms);
    if opened.by_reshard {
        s + 1
    } else {
        s.saturating_sub(CREATED_LEAD_S)
    }
}

fn secs(ms: i64) -> u64 {
    ms.max(0).div_euclid(1000) as u64
}

/// A version 2 sequence number.
fn encode(created_s: u64, shard_index: u32, seq_ix: u64, time_s: u64) -> Digits {
    const SECS_MASK: u64 = (1 << 36) - 1;
    U192::pow2(185)
        .with(created_s & SECS_MASK, 148, 36)
        .with(shard_index as u64 & 0xf, 144, 4)
        .with(seq_ix, 80, 64)
        .with(time_s & SECS_MASK, 36, 36)
        .with(shard_index as u64, 4, 32)
        .with(2, 0, 4)
        .to_decimal()
}

/// The sequence number of the record at `offset` of shard `shard_index`,
/// which arrived at `arrival_ms`.
pub(super) fn record(
    shard_index: u32,
    opened: ShardOpened,
    offset: u64,
    arrival_ms: i64,
) -> Digits {
    encode(
        created_s(opened),
        shard_index,
        offset.saturating_add(1).min(SEQ_IX_END),
        secs(arrival_ms),
    )
}

/// Where a reader that has read up to `next_offset` continues with
/// AFTER_SEQUENCE_NUMBER: the number of the record before it (the shard's
/// starting number when nothing was read); `time_ms`: when that record arrived.
pub(super) fn continuation(
    shard_index: u32,
    opened: ShardOpened,
    next_offset: u64,
    time_ms: i64,
) -> Digits {
    match next_offset.checked_sub(1) {
        Some(last) => record(shard_index, opened, last, time_ms),
        None => starting(shard_index, opened),
    }
}

/// A shard's StartingSequenceNumber: before its first record.
pub(super) fn starting(shard_index: u32, opened: ShardOpened) -> Digits {
    let created = created_s(opened);
    encode(created, shard_index, 0, created)
}

/// A closed shard's EndingSequenceNumber: after its last record.
pub(super) fn ending(shard_index: u32, opened: ShardOpened, closed_ms: i64) -> Digits {
    encode(created_s(opened), shard_index, SEQ_IX_END, secs(closed_ms))
}

/// A client's sequence number, read as AWS reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Parsed {
    pub(super) version: u8,
    pub(super) created_s: u64,
    /// May be negative (AWS reads the 32-bit field as signed).
    pub(super) shard: i64,
    pub(super) seq_ix: u64,
    pub(super) time_s: u64,
}

impl Parsed {
    /// Whether it was made for a shard that opened at `opened` (AWS: "did not
    /// come from this stream" otherwise).
    pub(super) fn is_of(&self, opened: ShardOpened) -> bool {
        self.version == 2 && self.created_s == created_s(opened)
    }

    /// The engine's number for an iterator at (`after`: just after) it.
    pub(super) fn engine_number(&self, shard_index: u32, after: bool) -> u128 {
        match (after, self.seq_ix) {
            // After the starting number: the first record.
            (true, 0) => seqno::before_first(shard_index),
            (true, ix) => seqno::encode(shard_index, ix - 1),
            // At the starting number: the first record too.
            (false, ix) => seqno::encode(shard_index, ix.saturating_sub(1)),
        }
    }
}

/// `None` when AWS finds the number invalid (not a number of a version it
/// knows, a date too large, an index past 63 bits).
pub(super) fn parse(s: &str) -> Option<Parsed> {
    let mut n = U192::parse_decimal(s)?;
    if n < U192::pow2(124) {
        n = n.add(U192::pow2(124));
    }
    if n < U192::pow2(128) {
        // 32 hex digits: [1][created:9][byte:2][random:16][shard:4].
        let created_s = n.bits(88, 36);
        if created_s >= CREATED_S_LIMIT {
            return None;
        }
        return Some(Parsed {
            version: 0,
            created_s,
            shard: n.bits(0, 16) as i64,
            seq_ix: 0,
            time_s: 0,
        });
    }
    let three_halves = U192::pow2(185).add(U192::pow2(184));
    if n <= U192::pow2(185) || n >= three_halves {
        return None;
    }
    // 47 hex digits; the last is the version.
    let created_s = n.bits(148, 36);
    match n.bits(0, 4) {
        2 => {
            let seq_ix = n.bits(80, 64);
            if seq_ix > SEQ_IX_END || created_s >= CREATED_S_LIMIT {
                return None;
            }
            Some(Parsed {
                version: 2,
                created_s,
                shard: n.bits(4, 32) as u32 as i32 as i64,
                seq_ix,
                time_s: n.bits(36, 36),
            })
        }
        // [2][created:9][?:1][byte:2][time:9][random:14][index:2][shard:8][1]
        1 => Some(Parsed {
            version: 1,
            created_s,
            shard: n.bits(4, 32) as i64,
            seq_ix: n.bits(36, 8),
            time_s: n.bits(100, 36),
        }),
        0 => {
            if created_s >= CREATED_S_LIMIT {
                return None;
            }
            Some(Parsed {
                version: 0,
                created_s,
                shard: n.bits(60, 16) as i64,
                seq_ix: 0,
                time_s: 0,
            })
        }
        _ => None,
    }
}

/// How AWS names a shard index in messages (`shardId-000000000001`,
/// `shardId--02147483648` for a negative one).
pub(super) fn shard_name(shard: i64) -> String {
    if shard < 0 {
        format!("shardId--{:011}", shard.unsigned_abs())
    } else {
        format!("shardId-{shard:012}")
    }
}

/// The header every AWS shard iterator starts with.
const ITERATOR_HEADER: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];

/// AWS's iterators are 152 + 16·k bytes long.
const ITERATOR_SIZE_MIN: usize = 152;

/// The engine's iterator token in AWS's envelope.
pub(super) fn wrap_iterator(token: &str) -> String {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .expect("the engine's tokens are base64");
    let len = u8::try_from(bytes.len()).expect("tokens are under 256 bytes");
    let used = ITERATOR_HEADER.len() + 1 + bytes.len();
    let size = ITERATOR_SIZE_MIN + used.saturating_sub(ITERATOR_SIZE_MIN).div_ceil(16) * 16;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&ITERATOR_HEADER);
    out.push(len);
    out.extend_from_slice(&bytes);
    out.resize(size, 0);
    STANDARD.encode(out)
}

/// The engine's token in an iterator a client sent, if it is in AWS's envelope.
pub(super) fn unwrap_iterator(iterator: &str) -> Option<String> {
    let bytes = STANDARD.decode(iterator).ok()?;
    let rest = bytes.strip_prefix(&ITERATOR_HEADER)?;
    let (&len, rest) = rest.split_first()?;
    let token = rest.get(..len as usize)?;
    Some(URL_SAFE_NO_PAD.encode(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_numbers_map_back_to_their_shard_and_offset() {
        let opened = ShardOpened {
            at_ms: 1_796_306_000_000,
            by_reshard: false,
        };
        for (shard, offset) in [(0u32, 0u64), (3, 1), (7, 123_456_789), (u32::MAX, 5)] {
            let s = super::super::sequence_number(shard, opened, offset, 1_796_306_123_456);
            assert_eq!(
                super::super::record_of_sequence_number(&s),
                Some((shard, offset)),
                "{s}"
            );
        }
        let start = starting(2, opened);
        assert_eq!(super::super::record_of_sequence_number(&start), None);
        assert_eq!(super::super::record_of_sequence_number("12x"), None);
    }

    #[test]
    fn decimals_match_reference_formatting() {
        // Below 2^128: u128's own formatting; above: the decimal parses back.
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for v in [
            0u128,
            1,
            9,
            10,
            999_999_999,
            1_000_000_000,
            u64::MAX as u128,
            u128::MAX,
        ] {
            assert_eq!(
                U192([0, (v >> 64) as u64, v as u64]).to_decimal(),
                &*v.to_string()
            );
        }
        for _ in 0..2000 {
            x = x
                .wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
                .wrapping_add(1);
            let v = x >> (x % 128);
            assert_eq!(
                U192([0, (v >> 64) as u64, v as u64]).to_decimal(),
                &*v.to_string()
            );
            let big = U192([(x >> 70) as u64, x as u64, (x >> 13) as u64]);
            let d = big.to_decimal();
            assert_eq!(U192::parse_decimal(&d), Some(big), "{d}");
            assert!(d.len() <= 58 && !d.starts_with('0'), "{d}");
        }
        let max = U192([u64::MAX; 3]).to_decimal();
        assert_eq!(U192::parse_decimal(&max), Some(U192([u64::MAX; 3])));
    }

    fn hex(decimal: &str) -> String {
        let mut v = U192::parse_decimal(decimal).unwrap();
        let mut digits = Vec::new();
        while v != U192::default() {
            digits.push(format!("{:x}", v.bits(0, 4)));
            let mut rem = 0u128;
            for limb in v.0.iter_mut() {
                let cur = (rem << 64) | *limb as u128;
                *limb = (cur / 16) as u64;
                rem = cur % 16;
            }
        }
        digits.reverse();
        digits.concat()
    }

    fn from_hex(h: &str) -> String {
        let mut v = U192::default();
        for (i, c) in h.chars().rev().enumerate() {
            v = v.with(c.to_digit(16).unwrap() as u64, 4 * i as u32, 4);
        }
        v.to_decimal().to_string()
    }

    const OPENED: ShardOpened = ShardOpened {
        at_ms: 1_700_000_000_500,
        by_reshard: false,
    };

    #[test]
    fn numbers_have_aws_layout() {
        // A record of shard 2, offset 9 (seq_ix 10), arrived at 1_700_000_123.4 s,
        // in a shard of a stream created at 1_700_000_000.5 s.
        let s = record(2, OPENED, 9, 1_700_000_123_400);
        assert_eq!(s.len(), 56, "{s}");
        assert_eq!(
            hex(&s),
            format!(
                "2{:09x}2{:016x}00{:09x}{:08x}2",
                1_699_999_997u64, 10, 1_700_000_123u64, 2
            )
        );
        assert_eq!(
            parse(&s),
            Some(Parsed {
                version: 2,
                created_s: 1_699_999_997,
                shard: 2,
                seq_ix: 10,
                time_s: 1_700_000_123,
            })
        );
        assert!(parse(&s).unwrap().is_of(OPENED));
        let child_opened = ShardOpened {
            at_ms: 1_700_000_200_900,
            by_reshard: true,
        };
        assert!(!parse(&s).unwrap().is_of(child_opened));
        let start = parse(&starting(2, OPENED)).unwrap();
        assert_eq!((start.seq_ix, start.time_s), (0, 1_699_999_997));
        let end = parse(&ending(2, OPENED, 1_700_000_200_900)).unwrap();
        assert_eq!((end.seq_ix, end.time_s), (SEQ_IX_END, 1_700_000_200));
        // A child opened when its parent closed starts a second after the end.
        let child = parse(&starting(3, child_opened)).unwrap();
        assert_eq!(child.created_s - end.time_s, 1);
        assert_eq!(child.created_s, child.time_s);
        // Numbers grow with the offset.
        let next = record(2, OPENED, 10, 1_700_000_123_400);
        assert!(U192::parse_decimal(&next) > U192::parse_decimal(&s));
    }

    #[test]
    fn engine_numbers() {
        let at = |ix, after| {
            Parsed {
                version: 2,
                created_s: 1,
                shard: 1,
                seq_ix: ix,
                time_s: 1,
            }
            .engine_number(1, after)
        };
        assert_eq!(at(0, false), seqno::encode(1, 0));
        assert_eq!(at(1, false), seqno::encode(1, 0));
        assert_eq!(at(5, false), seqno::encode(1, 4));
        assert_eq!(at(0, true), seqno::before_first(1));
        assert_eq!(at(5, true), seqno::encode(1, 4));
    }

    /// AWS's readings of clients' numbers (kinesalite's getShardIterator.js and
    /// putRecord.js, recorded from AWS).
    #[test]
    fn clients_numbers_are_read_as_aws_reads_them() {
        // Small numbers are version 0; their shard is the last 4 hex digits.
        assert_eq!(parse("5").map(|p| (p.version, p.shard)), Some((0, 5)));
        assert_eq!(parse("0").map(|p| (p.version, p.shard)), Some((0, 0)));
        // A version 0 number from the year 2477.
        assert_eq!(parse(&from_hex("13bb2cc3d80000000000000000000000")), None);
        // An index with its top bit set.
        assert_eq!(
            parse(&from_hex("20000000000800000000000000000000000000000000002")),
            None
        );
        // A negative shard.
        let negative = parse(&from_hex("20000000000000000000000000000000000000800000002")).unwrap();
        assert_eq!(shard_name(negative.shard), "shardId--02147483648");
        // All zeros, versions 2 and 1.
        for h in [
            "20000000000000000000000000000000000000000000002",
            "20000000000000000000000000000000000000000000001",
        ] {
            assert_eq!(parse(&from_hex(h)).map(|p| p.shard), Some(0), "{h}");
        }
        // Version 3, between 2^128 and 2^185, beyond 1.5 * 2^185, not a number.
        assert_eq!(
            parse(&from_hex("20000000000000000000000000000000000000000000003")),
            None
        );
        assert_eq!(parse(&from_hex("100000000000000000000000000000000")), None);
        assert_eq!(
            parse(&from_hex("30000000000000000000000000000000000000000000002")),
            None
        );
        assert_eq!(parse("12a"), None);
        assert_eq!(parse(&"9".repeat(129)), None);
        assert_eq!(shard_name(5), "shardId-000000000005");
    }

    #[test]
    fn iterators_have_aws_envelope() {
        for name_len in [1, 10, 100, 128] {
            // A token of the engine's size for a stream name of this length.
            let token = URL_SAFE_NO_PAD.encode(vec![7u8; 30 + name_len + 16]);
            let wrapped = wrap_iterator(&token);
            let bytes = STANDARD.decode(&wrapped).unwrap();
            assert_eq!(STANDARD.encode(&bytes), wrapped);
            assert!(bytes.len() >= ITERATOR_SIZE_MIN);
            assert_eq!((bytes.len() - ITERATOR_SIZE_MIN) % 16, 0);
            assert_eq!(bytes[..8], ITERATOR_HEADER);
            assert!(wrapped.len() <= 512);
            assert_eq!(unwrap_iterator(&wrapped).as_deref(), Some(token.as_str()));
        }
        assert_eq!(unwrap_iterator("not an iterator"), None);
        assert_eq!(unwrap_iterator(&STANDARD.encode([0u8; 9])), None);
    }
}
