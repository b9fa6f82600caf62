//! The Kinesis Producer Library's aggregated record format, read and written: one
//! Kinesis record carrying many user records, as the KPL and the `aws-kinesis-agg`
//! libraries write it. [`deaggregate`] reads; [`Aggregator`] writes.
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
//!
//! Writing produces the bytes of `aws-kinesis-agg`'s Python `RecordAggregator`
//! (checked byte for byte in the tests), which are also the KPL's (C++
//! `KinesisRecord`) for two or more user records: protobuf writes fields in
//! number order, so the whole partition key table, then the whole explicit hash
//! key table, then the records; keys are deduplicated in order of first use; a
//! user record's explicit hash key goes in the table only when it was given (the
//! Java `aws-kinesis-agg` differs: it derives one from the partition key's MD5
//! for every record, so its bytes differ). No tags are written.

use md5::{Digest, Md5};
use std::hash::{BuildHasher, RandomState};

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

/// Builds one aggregated record from user records, incrementally, in the bytes
/// `aws-kinesis-agg` and the KPL write (see the module header).
///
/// The outer record, as `aws-kinesis-agg` (Python and Java) puts it: partition key
/// [`Aggregator::partition_key`], the first user record's; explicit hash key
/// [`Aggregator::explicit_hash_key`], the first user record's when it has one,
/// else unset (Python; Java sends the decimal MD5 of the partition key, which
/// routes the same). Either way the outer record lands on the shard of the first
/// user record. The C++ KPL routes the same way but spells it
/// differently: partition key `"a"` and explicit hash key the first user record's
/// hash key in decimal (its explicit hash key, else
/// [`crate::routing::hash_key_of`] of its partition key).
///
/// A lone user record: the KPL puts it as a plain record (its own data and keys,
/// no magic); `aws-kinesis-agg` aggregates it like any other. [`Aggregator::single`]
/// gives what a caller needs to do as the KPL does.
///
/// Limits are the caller's: this type checks no key lengths or sizes. Kinesis
/// counts data plus partition key against its per-record limit:
/// [`Aggregator::put_size_with`] is that count, for keeping an aggregate under it.
///
/// After warm-up, adding allocates nothing beyond the amortized growth of its
/// buffers; [`Aggregator::finish`] empties it and keeps their capacity.
#[derive(Debug, Default)]
pub struct Aggregator {
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    /// The `records` fields (3), encoded, in order.
    records: Vec<u8>,
    record_count: usize,
    /// Whether the first user record has an explicit hash key (then it is entry 0).
    first_has_explicit_hash_key: bool,
    /// The first user record's data, within `records`.
    first_data: std::ops::Range<usize>,
}

const FIELD_PARTITION_KEY_TABLE: u8 = 1 << 3 | 2;
const FIELD_EXPLICIT_HASH_KEY_TABLE: u8 = 2 << 3 | 2;
const FIELD_RECORDS: u8 = 3 << 3 | 2;
const FIELD_PARTITION_KEY_INDEX: u8 = 1 << 3;
const FIELD_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const FIELD_DATA: u8 = 3 << 3 | 2;

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a user record. An empty explicit hash key counts as none, as in
    /// `aws-kinesis-agg` (Kinesis would refuse it anyway).
    pub fn add(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) {
        let explicit_hash_key = explicit_hash_key.filter(|k| !k.is_empty());
        let key_index = self.partition_keys.insert(partition_key);
        let hash_index = explicit_hash_key.map(|k| self.explicit_hash_keys.insert(k));
        let r = &mut self.records;
        r.push(FIELD_RECORDS);
        put_varint(record_len(key_index, hash_index, data.len()), r);
        r.push(FIELD_PARTITION_KEY_INDEX);
        put_varint(key_index, r);
        if let Some(i) = hash_index {
            r.push(FIELD_EXPLICIT_HASH_KEY_INDEX);
            put_varint(i, r);
        }
        r.push(FIELD_DATA);
        put_varint(data.len(), r);
        let start = r.len();
        r.extend_from_slice(data);
        if self.record_count == 0 {
            self.first_data = start..r.len();
            self.first_has_explicit_hash_key = hash_index.is_some();
        }
        self.record_count += 1;
    }

    /// The [`Aggregator::encoded_len`] this aggregated record would have after
    /// adding this user record. Exact, not an estimate.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let mut added = 0;
        let key_index = self
            .partition_keys
            .index_of(partition_key)
            .unwrap_or_else(|| {
                added += field_len(partition_key.len());
                self.partition_keys.len()
            });
        let hash_index = explicit_hash_key.filter(|k| !k.is_empty()).map(|k| {
            self.explicit_hash_keys.index_of(k).unwrap_or_else(|| {
                added += field_len(k.len());
                self.explicit_hash_keys.len()
            })
        });
        added += field_len(record_len(key_index, hash_index, data.len()));
        self.encoded_len() + added
    }

    /// What Kinesis counts against its per-record limit when the aggregate is put
    /// after adding this user record: [`Aggregator::size_with`] plus the outer
    /// partition key's UTF-8 bytes (the first user record's).
    pub fn put_size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let outer_key = self.partition_key().unwrap_or(partition_key);
        self.size_with(partition_key, explicit_hash_key, data) + outer_key.len()
    }

    /// The number of user records added since the last finish.
    pub fn len(&self) -> usize {
        self.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The length of what [`Aggregator::finish`] would return now: magic, protobuf
    /// and MD5 (20 bytes when empty).
    pub fn encoded_len(&self) -> usize {
        MAGIC.len()
            + self.partition_keys.encoded_len
            + self.explicit_hash_keys.encoded_len
            + self.records.len()
            + DIGEST_LEN
    }

    /// The outer record's partition key: the first user record's; None when empty.
    pub fn partition_key(&self) -> Option<&str> {
        (!self.is_empty()).then(|| self.partition_keys.get(0))
    }

    /// The outer record's explicit hash key: the first user record's, if it has
    /// one; None when empty.
    pub fn explicit_hash_key(&self) -> Option<&str> {
        (!self.is_empty() && self.first_has_explicit_hash_key)
            .then(|| self.explicit_hash_keys.get(0))
    }

    /// The user record when there is exactly one, which the KPL would put as it is
    /// rather than aggregated.
    pub fn single(&self) -> Option<UserRecord<'_>> {
        (self.record_count == 1).then(|| UserRecord {
            partition_key: self.partition_keys.get(0),
            explicit_hash_key: self.explicit_hash_key(),
            data: &self.records[self.first_data.clone()],
        })
    }

    /// The aggregated record, always aggregated (even one user record, as
    /// `aws-kinesis-agg` does); leaves the aggregator empty, capacity kept.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.finish_into(&mut out);
        out
    }

    /// [`Aggregator::finish`], appending to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let expected_len = self.encoded_len();
        out.reserve(expected_len);
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        self.partition_keys.write(FIELD_PARTITION_KEY_TABLE, out);
        self.explicit_hash_keys
            .write(FIELD_EXPLICIT_HASH_KEY_TABLE, out);
        out.extend_from_slice(&self.records);
        let digest = Md5::digest(&out[start + MAGIC.len()..]);
        out.extend_from_slice(&digest);
        assert_eq!(out.len() - start, expected_len);
        self.clear();
    }

    /// Drops every user record added since the last finish.
    pub fn clear(&mut self) {
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        self.records.clear();
        self.record_count = 0;
        self.first_has_explicit_hash_key = false;
        self.first_data = 0..0;
    }
}

/// The length of one encoded `Record` message (without its own key and length).
fn record_len(key_index: usize, hash_index: Option<usize>, data_len: usize) -> usize {
    1 + varint_len(key_index) + hash_index.map_or(0, |i| 1 + varint_len(i)) + field_len(data_len)
}

/// The encoded length of a length-delimited field with a one-byte key.
fn field_len(len: usize) -> usize {
    1 + varint_len(len) + len
}

fn varint_len(v: usize) -> usize {
    (usize::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

fn put_varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A fast seeded hash of short keys (word at a time, multiply and rotate,
/// then a final mix). Keys come from the caller; a random seed per table keeps
/// colliding keys from being chosen in advance, and a collision only costs
/// probing.
#[derive(Clone, Copy, Debug)]
struct Seed(u64);

impl Default for Seed {
    fn default() -> Seed {
        Seed(RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl Seed {
    fn hash(self, key: &str) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = key.as_bytes();
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(K);
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
        // Final mix: every input bit reaches the low bits the table masks.
        h ^= h >> 32;
        h = h.wrapping_mul(K);
        h ^ (h >> 29)
    }
}

/// A key table: distinct strings in order of first use, found by an
/// open-addressing hash index, all in flat buffers so that a new key costs no
/// allocation of its own.
#[derive(Debug, Default)]
struct KeyTable {
    /// The keys, concatenated.
    text: String,
    /// Each key's place in `text` and its hash, in table order.
    entries: Vec<KeyEntry>,
    /// Hash index: 0 is empty, `i + 1` names `entries[i]`. Its length is 0 or a
    /// power of two, kept under 3/4 full.
    slots: Vec<usize>,
    /// Seeds the key hash (per table, from the std's random state).
    seed: Seed,
    /// The table's fields, encoded.
    encoded_len: usize,
}

#[derive(Clone, Copy, Debug)]
struct KeyEntry {
    start: usize,
    end: usize,
    hash: u64,
}

impl KeyTable {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, i: usize) -> &str {
        let e = self.entries[i];
        &self.text[e.start..e.end]
    }

    fn index_of(&self, key: &str) -> Option<usize> {
        self.find(key, self.seed.hash(key)).ok()
    }

    /// The key's entry, or the empty slot where it would go.
    fn find(&self, key: &str, hash: u64) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return Err(slot),
                i => {
                    let e = self.entries[i - 1];
                    if e.hash == hash && &self.text[e.start..e.end] == key {
                        return Ok(i - 1);
                    }
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The key's index, adding it at the end when it is new.
    fn insert(&mut self, key: &str) -> usize {
        if (self.entries.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let hash = self.seed.hash(key);
        match self.find(key, hash) {
            Ok(i) => i,
            Err(slot) => {
                let start = self.text.len();
                self.text.push_str(key);
                self.entries.push(KeyEntry {
                    start,
                    end: self.text.len(),
                    hash,
                });
                self.slots[slot] = self.entries.len();
                self.encoded_len += field_len(key.len());
                self.entries.len() - 1
            }
        }
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(16);
        self.slots.clear();
        self.slots.resize(new_len, 0);
        let mask = new_len - 1;
        for (i, e) in self.entries.iter().enumerate() {
            let mut slot = e.hash as usize & mask;
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = i + 1;
        }
    }

    /// Writes the table as repeated string fields `key`.
    fn write(&self, key: u8, out: &mut Vec<u8>) {
        for e in &self.entries {
            out.push(key);
            put_varint(e.end - e.start, out);
            out.extend_from_slice(&self.text.as_bytes()[e.start..e.end]);
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.slots.fill(0);
        self.encoded_len = 0;
    }
}

#[cfg(test)]
#[path = "kpl_tests.rs"]
mod tests;
