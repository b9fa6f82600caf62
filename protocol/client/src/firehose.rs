//! Firehose's operations over the native protocol (`riffle_protocol::native::firehose`):
//! PutRecordBatch and DescribeDeliveryStream, on both clients. A server
//! without Firehose (or older than these api keys) answers them with an
//! InvalidArgument error ([`ClientError::Server`]).
//!
//! The client refuses locally what AWS's limits forbid (no records or more
//! than 500, a record over 1,000 KiB, more than 4 MiB in all, a name over 64
//! characters); the server checks the rest (the name's pattern, the delivery
//! stream) and words its refusals as AWS does.

use futures_io::{AsyncRead, AsyncWrite};
use riffle_protocol::Limits;
use riffle_protocol::native::firehose::{
    DELIVERY_STREAM_NAME_CHARS_MAX, PUT_RECORD_BATCH_BYTES_MAX, PUT_RECORD_BATCH_COUNT_MAX,
    RECORD_DATA_SIZE_MAX,
};
use riffle_protocol::native::{Api, FirehoseRecordResult, Request, Response};

use crate::error::ClientError;
use crate::ops::{Op, check_str, unexpected};
use crate::{AsyncClient, Client};

/// A record Firehose could not store (AWS's ErrorCode and ErrorMessage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirehoseRecordError {
    /// `ServiceUnavailableException`.
    pub error_code: String,
    pub message: String,
}

/// The answer to a PutRecordBatch (AWS's PutRecordBatchOutput).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirehosePutBatchResult {
    /// Records not stored (AWS's FailedPutCount).
    pub failed_put_count: usize,
    /// Whether the delivery stream encrypts records at rest.
    pub encrypted: bool,
    /// Per record, in input order: its RecordId, or why it was not stored
    /// (retry those records).
    pub records: Vec<Result<String, FirehoseRecordError>>,
}

/// A delivery stream as DescribeDeliveryStream answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirehoseDescription {
    /// AWS's DescribeDeliveryStream answer, as JSON text
    /// (`{"DeliveryStreamDescription": {...}}`), as the JSON API answers it.
    pub json: String,
}

pub(crate) struct FirehosePut<'a> {
    pub name: &'a str,
    pub records: Vec<&'a [u8]>,
}

impl<'a> FirehosePut<'a> {
    fn new<R: AsRef<[u8]>>(name: &'a str, records: &'a [R]) -> FirehosePut<'a> {
        FirehosePut {
            name,
            records: records.iter().map(AsRef::as_ref).collect(),
        }
    }
}

impl Op for FirehosePut<'_> {
    type Output = FirehosePutBatchResult;
    const API: Api = Api::FirehosePutRecordBatch;
    const IDEMPOTENT: bool = false;
    fn check(&self, _: &Limits) -> Result<(), ClientError> {
        check_name(self.name)?;
        let count = self.records.len();
        if count == 0 || count > PUT_RECORD_BATCH_COUNT_MAX as usize {
            return Err(ClientError::InvalidArgument(format!(
                "Records must contain 1 to {PUT_RECORD_BATCH_COUNT_MAX} entries, got {count}"
            )));
        }
        if let Some((i, r)) = self
            .records
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() > RECORD_DATA_SIZE_MAX)
        {
            return Err(ClientError::InvalidArgument(format!(
                "record {i} has {} bytes, more than {RECORD_DATA_SIZE_MAX}",
                r.len()
            )));
        }
        let total: usize = self.records.iter().map(|r| r.len()).sum();
        if total > PUT_RECORD_BATCH_BYTES_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "Records size exceeds {PUT_RECORD_BATCH_BYTES_MAX} bytes limit; the records hold {total} bytes"
            )));
        }
        Ok(())
    }
    fn request(&self) -> Request<'_> {
        Request::FirehosePutRecordBatch {
            delivery_stream: self.name,
            records: self.records.clone(),
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<FirehosePutBatchResult, ClientError> {
        let Response::FirehosePutBatch(batch) = response else {
            return Err(unexpected(Self::API, &response));
        };
        if batch.results.len() != self.records.len() {
            return Err(ClientError::protocol(format!(
                "FirehosePutRecordBatch sent {} records, got {} results",
                self.records.len(),
                batch.results.len()
            )));
        }
        Ok(FirehosePutBatchResult {
            failed_put_count: batch.failed_put_count(),
            encrypted: batch.encrypted,
            records: batch
                .results
                .iter()
                .map(|r| match *r {
                    FirehoseRecordResult::Stored { record_id } => Ok(record_id.to_owned()),
                    FirehoseRecordResult::Failed {
                        error_code,
                        message,
                    } => Err(FirehoseRecordError {
                        error_code: error_code.to_owned(),
                        message: message.to_owned(),
                    }),
                })
                .collect(),
        })
    }
}

pub(crate) struct FirehoseDescribe<'a> {
    pub name: &'a str,
}

impl Op for FirehoseDescribe<'_> {
    type Output = FirehoseDescription;
    const API: Api = Api::FirehoseDescribe;
    const IDEMPOTENT: bool = true;
    fn check(&self, _: &Limits) -> Result<(), ClientError> {
        check_name(self.name)
    }
    fn request(&self) -> Request<'_> {
        Request::FirehoseDescribe {
            delivery_stream: self.name,
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<FirehoseDescription, ClientError> {
        match response {
            Response::FirehoseDescription(json) => Ok(FirehoseDescription {
                json: json.to_owned(),
            }),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

fn check_name(name: &str) -> Result<(), ClientError> {
    check_str("delivery stream name", name, DELIVERY_STREAM_NAME_CHARS_MAX)
}

impl Client {
    /// Firehose's PutRecordBatch: appends the records to delivery stream
    /// `name`; answered once they are durable. One result per record.
    pub fn firehose_put_record_batch<R: AsRef<[u8]>>(
        &self,
        name: &str,
        records: &[R],
    ) -> Result<FirehosePutBatchResult, ClientError> {
        self.call(&FirehosePut::new(name, records))
    }

    /// Firehose's DescribeDeliveryStream.
    pub fn firehose_describe(&self, name: &str) -> Result<FirehoseDescription, ClientError> {
        self.call(&FirehoseDescribe { name })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncClient<S> {
    /// Firehose's PutRecordBatch: appends the records to delivery stream
    /// `name`; answered once they are durable. One result per record.
    pub async fn firehose_put_record_batch<R: AsRef<[u8]>>(
        &self,
        name: &str,
        records: &[R],
    ) -> Result<FirehosePutBatchResult, ClientError> {
        self.call(&FirehosePut::new(name, records)).await
    }

    /// Firehose's DescribeDeliveryStream.
    pub async fn firehose_describe(&self, name: &str) -> Result<FirehoseDescription, ClientError> {
        self.call(&FirehoseDescribe { name }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_before_sending() {
        let limits = Limits::default();
        let big = vec![0u8; RECORD_DATA_SIZE_MAX + 1];
        let fits = vec![0u8; RECORD_DATA_SIZE_MAX];
        let five: Vec<&[u8]> = vec![&fits; 5];
        let none: [&[u8]; 0] = [];
        let many: Vec<&[u8]> = vec![b"x"; 501];
        let long = "n".repeat(65);
        let cases: Vec<(&str, FirehosePut<'_>, &str)> = vec![
            (
                "no records",
                FirehosePut::new("s", &none),
                "1 to 500 entries, got 0",
            ),
            (
                "501 records",
                FirehosePut::new("s", &many),
                "1 to 500 entries, got 501",
            ),
            (
                "a record over 1,000 KiB",
                FirehosePut::new("s", std::slice::from_ref(&big)),
                "record 0 has 1024001 bytes, more than 1024000",
            ),
            (
                "5 MB in all",
                FirehosePut::new("s", &five),
                "Records size exceeds 4194304 bytes limit; the records hold 5120000 bytes",
            ),
            (
                "a name of 65 characters",
                FirehosePut::new(&long, &five[..1]),
                "delivery stream name is longer than 64 characters",
            ),
        ];
        for (what, op, expected) in cases {
            match op.check(&limits) {
                Err(ClientError::InvalidArgument(m)) => {
                    assert!(m.contains(expected), "{what}: {m}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(FirehosePut::new("s", &five[..4]).check(&limits).is_ok());
    }
}
