//! The owned values client calls take and return (records, stream descriptions,
//! put results), and the conversion of served batches into owned records, which
//! validates every batch the server sends (the client's trust boundary).

use riffle_protocol::batch;
use riffle_protocol::native::{Records, StartPosition};
use riffle_protocol::seqno;
use riffle_protocol::{Error, Limits};

pub use riffle_protocol::native::ShardInfo;

use crate::error::ClientError;

/// A stream as DescribeStream reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDescription {
    pub name: String,
    pub status: String,
    pub retention_hours: u32,
    pub created_ms: i64,
    pub shards: Vec<ShardInfo>,
}

/// Where a record was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Put {
    pub shard_index: u32,
    /// `riffle_protocol::seqno` encoding; `seqno::to_string` gives the AWS decimal form.
    pub sequence_number: u128,
}

/// One record of a `put_records` call.
#[derive(Clone, Copy, Debug)]
pub struct PutRecordsEntry<'a> {
    pub partition_key: &'a str,
    /// Routes the record instead of the partition key's MD5.
    pub explicit_hash_key: Option<u128>,
    pub data: &'a [u8],
}

/// The outcome of each record of a `put_records` call, in input order (AWS
/// PutRecords partial failure: some records may fail while others are stored).
pub type PutRecordsResults = Vec<Result<Put, Error>>;

/// A record read from a shard, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: u128,
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Vec<u8>,
    /// Server arrival time, ms since the epoch.
    pub arrival_ms: i64,
}

impl Record {
    /// The shard and offset the sequence number encodes.
    pub fn position(&self) -> (u32, u64) {
        // The inverse of `seqno::encode`, whose marker bit every record's number has.
        (
            (self.sequence_number >> 64) as u32,
            self.sequence_number as u64,
        )
    }
}

/// The answer to GetRecords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    /// Absent when the shard is closed and fully read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: i64,
    /// The offset the next read starts at.
    pub next_offset: u64,
}

/// One push frame of a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub shard_index: u32,
    pub records: Vec<Record>,
    pub millis_behind_latest: i64,
    /// The offset the next push starts at.
    pub next_offset: u64,
    /// The subscription's last frame: nothing follows.
    pub end: bool,
}

impl SubscriptionEvent {
    /// Where to start again to continue right after this event.
    pub fn continuation(&self) -> StartPosition {
        continuation(self.shard_index, self.next_offset)
    }
}

/// The position of offset `next_offset` of a shard (valid up to the shard's tip).
pub fn continuation(shard_index: u32, next_offset: u64) -> StartPosition {
    StartPosition::AtSequenceNumber(seqno::encode(shard_index, next_offset))
}

/// Copies the records a reply serves out of its batches, validating each batch
/// (crc, archive, limits) and giving each record its sequence number.
pub(crate) fn owned_records(
    records: &Records<'_>,
    limits: &Limits,
) -> Result<Vec<Record>, ClientError> {
    let total: u64 = records.spans.iter().map(|s| s.take as u64).sum();
    if total > limits.get_records_count_max as u64 {
        return Err(ClientError::protocol(format!(
            "{total} records in one reply, more than {}",
            limits.get_records_count_max
        )));
    }
    let mut out = Vec::with_capacity(total as usize);
    let mut next_expected: Option<u64> = None;
    for span in &records.spans {
        let view = batch::validate(span.batch, limits)
            .map_err(|e| ClientError::protocol(format!("served batch: {e}")))?;
        let base = view.header.base_offset;
        let range = span.skip as usize..(span.skip as usize + span.take as usize);
        let Some(recs) = view.records().get(range) else {
            return Err(ClientError::protocol("span reaches past its batch"));
        };
        for (i, r) in recs.iter().enumerate() {
            let offset = base
                .checked_add(span.skip as u64 + i as u64)
                .ok_or_else(|| ClientError::protocol("record offset overflows"))?;
            if next_expected.is_some_and(|n| offset < n) {
                return Err(ClientError::protocol("served records are out of order"));
            }
            next_expected = Some(offset + 1);
            out.push(Record {
                sequence_number: seqno::encode(records.shard_index, offset),
                partition_key: r.partition_key().to_owned(),
                explicit_hash_key: r.explicit_hash_key(),
                data: r.data().to_vec(),
                arrival_ms: r.arrival_ms(),
            });
        }
    }
    Ok(out)
}
