//! Firehose on the native protocol: `FirehosePutRecordBatch` and
//! `FirehoseDescribe` (`riffle_protocol::native::firehose`), served as a
//! `riffle_engine::net::Extension` the binary registers with the native server.
//!
//! Each operation runs the JSON API's own code after the same input checks:
//! the model's constraints on PutRecordBatch's and DescribeDeliveryStream's
//! members (refused with AWS's ValidationException text), then `puts::put_batch`
//! (the delivery stream must take puts, AWS's 4 MiB limit, records appended to
//! the internal stream and acknowledged once durable) or `ops::description`.
//! Errors keep AWS's messages; their codes are the protocol's: AWS's
//! ValidationException and InvalidArgumentException are InvalidArgument,
//! ResourceNotFoundException is ResourceNotFound. A record that could not be
//! stored is a per-record `ServiceUnavailableException`, as in AWS's answer.

use riffle_aws::model::{Path, Violations};
use riffle_engine::net::{Answer, Extension, LocalFuture};
use riffle_protocol::Error;
use riffle_protocol::native::{Api, FirehosePutBatch, FirehoseRecordResult, Request, Response};

use crate::puts::CHECKS;
use crate::service::FirehoseService;
use crate::{ops, puts};

/// The per-record error code of a record the service could not store.
const SERVICE_UNAVAILABLE: &str = "ServiceUnavailableException";

// The protocol's bounds and the service's are AWS's same numbers.
const _: () =
    assert!(riffle_protocol::native::firehose::PUT_RECORD_BATCH_BYTES_MAX == puts::BATCH_BYTES_MAX);

impl Extension for FirehoseService {
    fn name(&self) -> &'static str {
        "firehose"
    }

    fn apis(&self) -> Vec<Api> {
        vec![Api::FirehosePutRecordBatch, Api::FirehoseDescribe]
    }

    fn call<'a>(
        &'a self,
        request: &'a Request<'a>,
        answer: Answer<'a>,
    ) -> LocalFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match request {
                Request::FirehosePutRecordBatch {
                    delivery_stream,
                    records,
                } => {
                    self.put_record_batch(delivery_stream, records, answer)
                        .await
                }
                Request::FirehoseDescribe { delivery_stream } => {
                    self.describe(delivery_stream, answer)
                }
                other => Err(Error::internal(format!(
                    "the firehose extension was handed {:?}",
                    other.api()
                ))),
            }
        })
    }
}

impl FirehoseService {
    async fn put_record_batch(
        &self,
        name: &str,
        records: &[&[u8]],
        answer: Answer<'_>,
    ) -> Result<(), Error> {
        let checks = &*CHECKS;
        let mut violations = Violations::new();
        checks.name.check(
            name,
            &Path::ROOT.member("DeliveryStreamName"),
            &mut violations,
        );
        let list = Path::ROOT.member("Records");
        checks.records.check(records.len(), &list, &mut violations);
        for (i, r) in records.iter().enumerate() {
            if violations.is_full() {
                break;
            }
            let element = list.index(i);
            checks
                .data
                .check(r.len(), &element.member("Data"), &mut violations);
        }
        if let Some(message) = violations.message() {
            return Err(Error::invalid(message));
        }
        let put = puts::put_batch(&self.shared, name, records).await?;
        let (ids, at) = put.record_ids();
        let results = at
            .iter()
            .map(|r| match r {
                Ok(at) => FirehoseRecordResult::Stored {
                    record_id: &ids[at.clone()],
                },
                Err(e) => FirehoseRecordResult::Failed {
                    error_code: SERVICE_UNAVAILABLE,
                    message: &e.message,
                },
            })
            .collect();
        answer.respond(&Response::FirehosePutBatch(FirehosePutBatch {
            encrypted: put.encrypted,
            results,
        }));
        Ok(())
    }

    fn describe(&self, name: &str, answer: Answer<'_>) -> Result<(), Error> {
        let mut violations = Violations::new();
        CHECKS.name.check(
            name,
            &Path::ROOT.member("DeliveryStreamName"),
            &mut violations,
        );
        if let Some(message) = violations.message() {
            return Err(Error::invalid(message));
        }
        // The JSON API's answer, as its gateway writes it.
        let json = ops::description(&self.shared, name)?.to_string();
        answer.respond(&Response::FirehoseDescription(&json));
        Ok(())
    }
}
