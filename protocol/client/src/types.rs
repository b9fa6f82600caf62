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
    /// The record's place in the aggregated record (KPL format) that carried
    /// it, which `sequence_number` names; None when it was stored on its own.
    pub sub_sequence_number: Option<u32>,
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

/// A record read from a shard, owned: a stored record, or one user record of
/// a stored aggregated record (KPL format) once de-aggregated
/// ([`Record::user_records`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: u128,
    /// A user record's place in its aggregated record (0, 1, ...); None for a
    /// record as stored.
    pub sub_sequence_number: Option<u32>,
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Vec<u8>,
    /// Server arrival time, ms since the epoch.
    pub arrival_ms: i64,
}

impl Record {
    /// How far a reader has got once it has processed this record.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            sequence_number: self.sequence_number,
            sub_sequence_number: self.sub_sequence_number,
        }
    }

    /// The user records of an aggregated record (KPL format: magic, protobuf,
    /// MD5), each with this record's sequence number and arrival time and its
    /// own sub-sequence number, keys and data. A record that is not a valid
    /// aggregated record (no magic, a bad digest, a malformed body, an explicit
    /// hash key that is not a decimal 128-bit number) is its own only user
    /// record, as the KCL delivers it. An aggregate with no user record gives none.
    pub fn user_records(self) -> Vec<Record> {
        if self.sub_sequence_number.is_some() {
            return vec![self];
        }
        let users = riffle_protocol::kpl::deaggregate(&self.data).and_then(|users| {
            users
                .into_iter()
                .enumerate()
                .map(|(i, u)| {
                    let explicit_hash_key = match u.explicit_hash_key {
                        Some(k) => Some(riffle_protocol::routing::parse_explicit_hash_key(k).ok()?),
                        None => None,
                    };
                    Some(Record {
                        sequence_number: self.sequence_number,
                        sub_sequence_number: Some(u32::try_from(i).ok()?),
                        partition_key: u.partition_key.to_owned(),
                        explicit_hash_key,
                        data: u.data.to_vec(),
                        arrival_ms: self.arrival_ms,
                    })
                })
                .collect::<Option<Vec<Record>>>()
        });
        users.unwrap_or_else(|| vec![self])
    }

    /// The shard and offset the sequence number encodes.
    pub fn position(&self) -> (u32, u64) {
        // The inverse of `seqno::encode`, whose marker bit every record's number has.
        (
            (self.sequence_number >> 64) as u32,
            self.sequence_number as u64,
        )
    }
}

/// How far a reader of a shard has got: through the record with this sequence
/// number, or, inside an aggregated record, through its user record
/// `sub_sequence_number` (the KCL's extended sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    pub sequence_number: u128,
    pub sub_sequence_number: Option<u32>,
}

impl Checkpoint {
    /// Whether a reader at this checkpoint has already processed `record`: an
    /// earlier sequence number, or the same one when the checkpoint covers the
    /// whole record, or `record` is a user record at or before the checkpoint's.
    /// A whole record is not covered by a checkpoint inside it (it is read
    /// again: at least once, never lost).
    pub fn covers(&self, record: &Record) -> bool {
        match record.sequence_number.cmp(&self.sequence_number) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => match self.sub_sequence_number {
                None => true,
                Some(done) => record.sub_sequence_number.is_some_and(|sub| sub <= done),
            },
        }
    }

    /// Where reading starts again to resume after this checkpoint: after the
    /// record when it was processed whole, else at it (its user records up to
    /// the checkpoint are then skipped with [`Checkpoint::covers`]).
    pub fn resume_position(&self) -> StartPosition {
        match self.sub_sequence_number {
            None => StartPosition::AfterSequenceNumber(self.sequence_number),
            Some(_) => StartPosition::AtSequenceNumber(self.sequence_number),
        }
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
                sub_sequence_number: None,
                partition_key: r.partition_key().to_owned(),
                explicit_hash_key: r.explicit_hash_key(),
                data: r.data().to_vec(),
                arrival_ms: r.arrival_ms(),
            });
        }
    }
    Ok(out)
}
