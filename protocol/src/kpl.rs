//! The Kinesis Producer Library's aggregated record format, read: one Kinesis
//! record carrying many user records, as the KPL and the `aws-kinesis-agg`
//! libraries write it.
//!
//! ```text
//! [magic F3 89 9A C2][protobuf AggregatedRecord][MD5 of the protobuf: 16 bytes]
//!
//! message AggregatedRecord {
//!   repeated string partition_key_table = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes data = 3;
//!   repeated Tag tags = 4;
//! }
//! ```
//!
//! A record that does not start with the magic, is too short, fails its MD5
//! or does not parse is not aggregated: readers (the KCL, Firehose) deliver
//! it as it is. Parsing borrows from the record and trusts no length.

use md5::{Digest, Md5};

/// The first four bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record of an aggregated record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// The user records of `record`, or None when it is not a (valid) aggregated record.
pub fn deaggregate(record: &[u8]) -> Option<Vec<UserRecord<'_>>> {
    if record.len() < MAGIC.len() + DIGEST_LEN || record[..4] != MAGIC {
        return None;
    }
    let (body, digest) = record[4..].split_at(record.len() - 4 - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let mut keys = Vec::new();
    let mut hash_keys = Vec::new();
    let mut entries = Vec::new();
    let mut r = Reader(body);
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => keys.push(std::str::from_utf8(r.bytes()?).ok()?),
            (2, 2) => hash_keys.push(std::str::from_utf8(r.bytes()?).ok()?),
            (3, 2) => entries.push(r.bytes()?),
            _ => r.skip(wire)?,
        }
    }
    entries
        .into_iter()
        .map(|entry| {
            let mut r = Reader(entry);
            let (mut key, mut hash, mut data) = (None, None, None);
            while !r.0.is_empty() {
                match r.key()? {
                    (1, 0) => key = Some(r.varint()?),
                    (2, 0) => hash = Some(r.varint()?),
                    (3, 2) => data = Some(r.bytes()?),
                    (_, wire) => r.skip(wire)?,
                }
            }
            Some(UserRecord {
                partition_key: keys.get(usize::try_from(key?).ok()?)?,
                explicit_hash_key: match hash {
                    Some(i) => Some(*hash_keys.get(usize::try_from(i).ok()?)?),
                    None => None,
                },
                data: data?,
            })
        })
        .collect()
}

/// A protobuf reader over borrowed bytes; every method is None on malformed input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A field's number and wire type.
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (out, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(out)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => None,
        }
    }

    fn advance(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    /// An aggregated record as the KPL writes it (the format above).
    fn aggregate(keys: &[&str], hashes: &[&str], records: &[(u64, Option<u64>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for k in keys {
            field_bytes(1, k.as_bytes(), &mut body);
        }
        for h in hashes {
            field_bytes(2, h.as_bytes(), &mut body);
        }
        for (k, h, data) in records {
            let mut r = Vec::new();
            varint(1 << 3, &mut r);
            varint(*k, &mut r);
            if let Some(h) = h {
                varint(2 << 3, &mut r);
                varint(*h, &mut r);
            }
            field_bytes(3, data, &mut r);
            // A tag (field 4) the reader skips.
            field_bytes(4, &[10, 1, b'k'], &mut r);
            field_bytes(3, &r, &mut body);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        out
    }

    #[test]
    fn user_records_come_out_in_order() {
        let agg = aggregate(
            &["a", "b"],
            &["12345"],
            &[(0, None, b"one"), (1, Some(0), b""), (0, None, b"three")],
        );
        let got = deaggregate(&agg).unwrap();
        assert_eq!(
            got,
            vec![
                UserRecord {
                    partition_key: "a",
                    explicit_hash_key: None,
                    data: b"one"
                },
                UserRecord {
                    partition_key: "b",
                    explicit_hash_key: Some("12345"),
                    data: b""
                },
                UserRecord {
                    partition_key: "a",
                    explicit_hash_key: None,
                    data: b"three"
                },
            ]
        );
    }

    #[test]
    fn anything_else_is_not_aggregated() {
        let agg = aggregate(&["a"], &[], &[(0, None, b"x")]);
        assert!(deaggregate(b"plain record").is_none());
        assert!(deaggregate(&MAGIC).is_none());
        // A flipped bit: the MD5 does not match.
        let mut bad = agg.clone();
        bad[6] ^= 1;
        assert!(deaggregate(&bad).is_none());
        // Valid MD5 but an index out of the table, or a truncated field.
        let out_of_table = aggregate(&["a"], &[], &[(5, None, b"x")]);
        assert!(deaggregate(&out_of_table).is_none());
        let mut body = Vec::new();
        field_bytes(3, &[0x1a, 0x7f, 1], &mut body); // data claims 127 bytes
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&body);
        truncated.extend_from_slice(&Md5::digest(&body));
        assert!(deaggregate(&truncated).is_none());
        // Every prefix of a valid record, and every byte of it flipped: no panic.
        for n in 0..agg.len() {
            let _ = deaggregate(&agg[..n]);
            let mut f = agg.clone();
            f[n] ^= 0xff;
            let _ = deaggregate(&f);
        }
    }
}
