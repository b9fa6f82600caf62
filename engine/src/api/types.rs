//! The values the engine's API takes and answers: put entries and results,
//! stream and shard descriptions, records read.

use riffle_protocol::batch::ArchivedRecord;
use riffle_protocol::{routing, seqno};

use crate::core::OwnedRead;

/// One record of a PutRecords call.
#[derive(Clone, Debug)]
pub struct PutRecordsEntry<'a> {
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// Where a record was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub shard_index: u32,
    pub offset: u64,
    /// When the record arrived (its batch's arrival time).
    pub arrival_ms: i64,
    /// When its shard opened (AWS's sequence numbers carry it).
    pub shard_opened: ShardOpened,
}

impl PutResult {
    /// The shard's AWS name (`shardId-000000000000`).
    pub fn shard_id(&self) -> String {
        routing::shard_id(self.shard_index)
    }

    /// The engine's sequence number of the record (`riffle_protocol::seqno`).
    pub fn sequence_number(&self) -> u128 {
        seqno::encode(self.shard_index, self.offset)
    }
}

/// When a shard opened: with its stream, or later, by resharding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardOpened {
    pub at_ms: i64,
    pub by_reshard: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardDescription {
    /// The shard's index in its stream (what the native protocol names it by).
    pub shard_index: u32,
    /// Its AWS name, `routing::shard_id(shard_index)` (`shardId-000000000000`).
    pub shard_id: String,
    pub hash_key_start: u128,
    pub hash_key_end: u128,
    pub starting_sequence_number: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// Set once resharding closed the shard: its last record's sequence number
    /// (the starting one when it holds none).
    pub ending_sequence_number: Option<String>,
    /// When the shard opened (the stream's creation for its first shards).
    pub opened_ms: i64,
    /// When resharding closed it.
    pub closed_ms: Option<i64>,
}

impl ShardDescription {
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }
}

/// A shard a closed shard's records continue in (GetRecords' ChildShards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shard_ids: Vec<String>,
    pub hash_key_start: u128,
    pub hash_key_end: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDescription {
    pub name: String,
    pub status: &'static str,
    pub shards: Vec<ShardDescription>,
    pub retention_hours: u32,
    pub created_ms: i64,
}

/// A record returned by GetRecords (borrowed from the output's batches).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub offset: u64,
    pub shard_index: u32,
    pub record: &'a ArchivedRecord,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("partition_key", &self.partition_key())
            .finish()
    }
}

impl Record<'_> {
    pub fn sequence_number(&self) -> String {
        seqno::to_string(seqno::encode(self.shard_index, self.offset))
    }
    pub fn data(&self) -> &[u8] {
        self.record.data()
    }
    pub fn partition_key(&self) -> &str {
        self.record.partition_key()
    }
    pub fn arrival_ms(&self) -> i64 {
        self.record.arrival_ms()
    }
}

/// The answer to GetRecords.
#[derive(Debug)]
pub struct GetRecordsOutput {
    pub(super) shard_index: u32,
    pub(super) read: OwnedRead,
    pub record_count: u32,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
    /// Set when the read reached the end of a shard closed by resharding: where
    /// its records continue. There is no next iterator then.
    pub child_shards: Option<Vec<ChildShard>>,
    /// The stream has server-side encryption on (records report EncryptionType KMS).
    pub encrypted: bool,
    /// When the shard opened (AWS's sequence numbers carry it).
    pub shard_opened: ShardOpened,
}

impl GetRecordsOutput {
    pub fn shard_index(&self) -> u32 {
        self.shard_index
    }

    /// Where the next read starts.
    pub fn next_offset(&self) -> u64 {
        self.read.next_offset
    }

    /// More records were visible when this read was answered than it gave
    /// (a reader behind the shard's tip).
    pub fn behind(&self) -> bool {
        self.read.next_offset < self.read.visible_offset
    }

    /// The shard's arrival watermark at [`next_offset`](Self::next_offset):
    /// `Some(t)` guarantees that every record at or after `next_offset`,
    /// whenever it is appended, has an arrival time of at least `t`.
    ///
    /// It is `Some` when this read had every record appended to the shard at
    /// the moment the shard's owning core answered it (nothing left unread,
    /// nothing appended but not yet visible; an empty shard, an idle shard
    /// read at its tip, a closed shard read to its end); `t` is that core's
    /// clock then, never earlier than the last record's arrival. It is `None`
    /// when the reader is behind or appended records were not yet visible:
    /// then the arrival of the last record read is the bound (arrival times
    /// never decrease within a shard).
    ///
    /// Assumes the node's wall clock does not step backwards (arrival times
    /// are that clock, clamped to never decrease).
    pub fn arrival_watermark_ms(&self) -> Option<i64> {
        self.read.caught_up_at_ms
    }

    /// The stored batches the records come from, as (batch bytes, skip, take):
    /// records `skip .. skip + take` of each batch. Served as stored, never re-encoded.
    pub fn spans(&self) -> impl Iterator<Item = (&[u8], u32, u32)> {
        self.read
            .spans
            .iter()
            .map(|s| (s.bytes(), s.skip(), s.take()))
    }

    /// The records, in order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.read.spans.iter().flat_map(move |s| {
            let view = s.batch();
            let base = view.header.base_offset;
            let (skip, take) = (s.skip(), s.take());
            let records = &view.records()[skip as usize..(skip + take) as usize];
            records.iter().enumerate().map(move |(i, record)| Record {
                offset: base + skip as u64 + i as u64,
                shard_index: self.shard_index,
                record,
            })
        })
    }
}
