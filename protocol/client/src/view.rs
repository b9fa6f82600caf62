//! In-place access to served records and puts of pre-encoded batches: the
//! zero-copy side of the async client, for callers that cannot afford the owned
//! API's copy of every record (load generators, relays, consumers that only
//! inspect records).
//!
//! A [`RecordsView`] borrows the reply frame: its batches are validated exactly as
//! the owned API validates them (crc, archive, limits, order) and records are
//! rkyv archives read where they lie.

use riffle_protocol::Limits;
use riffle_protocol::batch::{self, ArchivedRecord, BatchView};
use riffle_protocol::native::{Api, Records, Request, Response};

use crate::error::ClientError;
use crate::ops::{Op, check_stream, put_records_request, unexpected};

/// Records of one reply (GetRecords) or push (subscription), in place.
#[derive(Debug)]
pub struct RecordsView<'f> {
    pub shard_index: u32,
    pub millis_behind_latest: i64,
    /// The offset the next read starts at.
    pub next_offset: u64,
    /// GetRecords only: absent when the shard is closed and read to its end.
    pub next_iterator: Option<&'f str>,
    /// A subscription's last push.
    pub end: bool,
    spans: Vec<(BatchView<'f>, u32, u32)>,
}

impl<'f> RecordsView<'f> {
    /// Validates every served batch (the same checks as the owned API).
    pub(crate) fn new(
        records: Records<'f>,
        end: bool,
        limits: &Limits,
    ) -> Result<RecordsView<'f>, ClientError> {
        let total: u64 = records.spans.iter().map(|s| s.take as u64).sum();
        if total > limits.get_records_count_max as u64 {
            return Err(ClientError::protocol(format!(
                "{total} records in one reply, more than {}",
                limits.get_records_count_max
            )));
        }
        let mut spans = Vec::with_capacity(records.spans.len());
        let mut next_expected: Option<u64> = None;
        for span in &records.spans {
            let view = batch::validate(span.batch, limits)
                .map_err(|e| ClientError::protocol(format!("served batch: {e}")))?;
            let (skip, take) = (span.skip as u64, span.take as u64);
            if skip + take > view.len() as u64 {
                return Err(ClientError::protocol("span reaches past its batch"));
            }
            let first = view
                .header
                .base_offset
                .checked_add(skip)
                .and_then(|f| f.checked_add(take).map(|_| f))
                .ok_or_else(|| ClientError::protocol("record offset overflows"))?;
            if take > 0 {
                if next_expected.is_some_and(|n| first < n) {
                    return Err(ClientError::protocol("served records are out of order"));
                }
                next_expected = Some(first + take);
            }
            spans.push((view, span.skip, span.take));
        }
        Ok(RecordsView {
            shard_index: records.shard_index,
            millis_behind_latest: records.millis_behind_latest,
            next_offset: records.next_offset,
            next_iterator: records.next_iterator,
            end,
            spans,
        })
    }

    /// Number of records served.
    pub fn len(&self) -> usize {
        self.spans.iter().map(|s| s.2 as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records in order, each with its offset in the shard
    /// (`riffle_protocol::seqno::encode(shard_index, offset)` is its sequence number).
    pub fn records(&self) -> impl Iterator<Item = (u64, &'f ArchivedRecord)> + '_ {
        self.spans.iter().flat_map(|(view, skip, take)| {
            let base = view.header.base_offset + *skip as u64;
            view.records()[*skip as usize..(*skip + *take) as usize]
                .iter()
                .enumerate()
                .map(move |(i, r)| (base + i as u64, r))
        })
    }
}

/// PutRecords of batches the caller encoded (`riffle_protocol::batch::BatchBuilder`)
/// and routed: one batch per shard. The server validates every batch.
pub(crate) struct PutBatches<'a> {
    pub stream: &'a str,
    pub stream_id: u64,
    pub batches: &'a [(u32, &'a [u8])],
}

impl Op for PutBatches<'_> {
    type Output = Vec<riffle_protocol::native::BatchResult>;
    const API: Api = Api::PutRecords;
    const IDEMPOTENT: bool = false;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)?;
        if self.batches.is_empty() {
            return Err(ClientError::InvalidArgument(
                "PutRecords needs at least one batch".into(),
            ));
        }
        Ok(())
    }
    fn request(&self) -> Request<'_> {
        put_records_request(self.stream, self.stream_id, self.batches.iter().copied())
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<Self::Output, ClientError> {
        match response {
            Response::PutBatches(results) => {
                if results.len() != self.batches.len()
                    || results
                        .iter()
                        .zip(self.batches)
                        .any(|(r, b)| r.shard_index != b.0)
                {
                    return Err(ClientError::protocol(
                        "PutRecords results do not answer the batches sent",
                    ));
                }
                Ok(results)
            }
            r => Err(unexpected(Self::API, &r)),
        }
    }
}
