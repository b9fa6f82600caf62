//! An input's Lambda preprocessor (docs/analytics.md, "Input
//! preprocessing"): each read's records posted to an HTTP function (an
//! `InputLambdaProcessor.ResourceARN` that is a URL, or a name the server's
//! `[functions]` table maps to one) as AWS's preprocessing event,
//! `{"invocationId", "applicationArn", "streamArn", "records": [{"recordId",
//! "kinesisStreamRecordMetadata": {"sequenceNumber", "partitionKey",
//! "shardId", "approximateArrivalTimestamp"}, "data"}]}` (for a delivery
//! stream input, `kinesisFirehoseRecordMetadata` with the arrival only).
//! The function answers `{"records": [{"recordId", "result": "Ok" |
//! "Dropped" | "ProcessingFailed", "data"}]}`: an `Ok` record's data is
//! decoded (several JSON documents, or CSV rows, in one), a `Dropped` one
//! is left out, a `ProcessingFailed` one becomes an error_stream row.
//!
//! An answer that is not that (a record missing or unknown, a result
//! missing, `Ok` without base64 data, not 200, not JSON, no answer in time)
//! fails the invocation, which is made again on the same records after a
//! pause, as AWS does, until it succeeds or the run stops: the shard waits.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use riffle_engine::GetRecordsOutput;
use riffle_engine::http::client as http_client;
use riffle_engine::rt;
use serde_json::{Value, json};

/// An invocation's event at most (Lambda's synchronous payload limit is
/// 6 MB; this leaves room for the JSON around the records).
const EVENT_BYTES_MAX: usize = 5 * 1024 * 1024;
/// How long a function has to answer.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
/// After a failed invocation, the pause before it is made again.
const PAUSE: Duration = Duration::from_secs(1);

/// What the function made of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok(Vec<u8>),
    Dropped,
    Failed,
}

/// An input's preprocessing function.
pub(crate) struct Preprocessor {
    url: String,
    application_arn: String,
    /// The input's ARN (`streamArn`).
    stream_arn: String,
    /// The input is a delivery stream (its records' metadata is Firehose's).
    firehose: bool,
    tls: Arc<rustls::ClientConfig>,
}

/// One record as the event gives it.
pub(crate) struct InRecord<'a> {
    pub(crate) id: String,
    pub(crate) partition_key: &'a str,
    pub(crate) arrival_ms: i64,
    pub(crate) data: &'a [u8],
}

impl Preprocessor {
    pub(crate) fn new(
        url: String,
        application_arn: String,
        stream_arn: String,
        firehose: bool,
        tls: Arc<rustls::ClientConfig>,
    ) -> Preprocessor {
        Preprocessor {
            url,
            application_arn,
            stream_arn,
            firehose,
            tls,
        }
    }

    /// The outcome of each of `read`'s records, in order; None when the
    /// run stopped before the function answered them all.
    pub(crate) async fn process(
        &self,
        read: &GetRecordsOutput,
        live: impl Fn() -> bool,
        what: &str,
        on_call: &dyn Fn(bool, std::time::Duration),
    ) -> Option<Vec<Outcome>> {
        let shard_id = riffle_protocol::routing::shard_id(read.shard_index());
        let records: Vec<InRecord<'_>> = read
            .records()
            .map(|r| InRecord {
                id: riffle_engine::kinesis::sequence_number(
                    r.shard_index,
                    read.shard_opened,
                    r.offset,
                    r.arrival_ms(),
                ),
                partition_key: r.record.partition_key(),
                arrival_ms: r.arrival_ms(),
                data: r.record.data(),
            })
            .collect();
        self.process_records(&records, &shard_id, live, what, on_call)
            .await
    }

    /// The outcome of each of `records` (of shard `shard_id`), in order;
    /// None when the run stopped before the function answered them all.
    /// `on_call` hears of each invocation: answered (its answer read) or
    /// not, and how long it took.
    pub(crate) async fn process_records(
        &self,
        records: &[InRecord<'_>],
        shard_id: &str,
        live: impl Fn() -> bool,
        what: &str,
        on_call: &dyn Fn(bool, std::time::Duration),
    ) -> Option<Vec<Outcome>> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in chunks(records) {
            let event = self.event(chunk, shard_id);
            loop {
                if !live() {
                    return None;
                }
                let began = std::time::Instant::now();
                let call = super::lambda_out::unless_stopped(self.call(event.clone()), &live);
                let answered = call
                    .await
                    .and_then(|body| outcomes(&body, chunk.iter().map(|r| r.id.as_str())));
                // A call given up because the run stopped is not the function's.
                if live() {
                    on_call(answered.is_ok(), began.elapsed());
                }
                match answered {
                    Ok(outcomes) => {
                        out.extend(outcomes);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("{what}: input preprocessing: {e}; invoking again");
                        rt::sleep(PAUSE).await;
                    }
                }
            }
        }
        Some(out)
    }

    fn event(&self, records: &[InRecord<'_>], shard_id: &str) -> Bytes {
        let records: Vec<Value> = records
            .iter()
            .map(|r| {
                let metadata = match self.firehose {
                    true => (
                        "kinesisFirehoseRecordMetadata",
                        json!({"approximateArrivalTimestamp": r.arrival_ms}),
                    ),
                    false => (
                        "kinesisStreamRecordMetadata",
                        json!({
                            "sequenceNumber": r.id,
                            "partitionKey": r.partition_key,
                            "shardId": shard_id,
                            "approximateArrivalTimestamp": r.arrival_ms,
                        }),
                    ),
                };
                json!({
                    "recordId": r.id,
                    metadata.0: metadata.1,
                    "data": BASE64.encode(r.data),
                })
            })
            .collect();
        let event = json!({
            "invocationId": riffle_engine::http::random_uuid(),
            "applicationArn": self.application_arn,
            "streamArn": self.stream_arn,
            "records": records,
        });
        Bytes::from(event.to_string())
    }

    /// One invocation: the answer's body when the function answered 200.
    async fn call(&self, event: Bytes) -> Result<Bytes, String> {
        http_client::invoke(&self.url, event, &self.tls, INVOCATION_TIMEOUT).await
    }
}

/// The outcome of each record `ids` names, from the function's answer; an
/// error when the answer is not AWS's shape for exactly those records.
fn outcomes<'a>(answer: &[u8], ids: impl Iterator<Item = &'a str>) -> Result<Vec<Outcome>, String> {
    let v: Value = serde_json::from_slice(answer)
        .map_err(|e| format!("the function's answer is not JSON ({e})"))?;
    let records = (v.get("records").and_then(Value::as_array))
        .ok_or("the function's answer has no records")?;
    let mut by_id = std::collections::HashMap::with_capacity(records.len());
    for r in records {
        let id = (r.get("recordId").and_then(Value::as_str))
            .ok_or("a record of the function's answer has no recordId")?;
        let outcome = match r.get("result").and_then(Value::as_str) {
            Some("Ok") => {
                let data = (r.get("data").and_then(Value::as_str))
                    .ok_or_else(|| format!("record {id} is Ok without data"))?;
                let data = BASE64
                    .decode(data)
                    .map_err(|_| format!("record {id}'s data is not base64"))?;
                Outcome::Ok(data)
            }
            Some("Dropped") => Outcome::Dropped,
            Some("ProcessingFailed") => Outcome::Failed,
            Some(other) => return Err(format!("record {id}'s result {other} is not one AWS has")),
            None => return Err(format!("record {id} has no result")),
        };
        if by_id.insert(id, outcome).is_some() {
            return Err(format!("the function's answer has record {id} twice"));
        }
    }
    let mut out = Vec::with_capacity(records.len());
    for id in ids {
        let outcome = by_id
            .remove(id)
            .ok_or_else(|| format!("the function's answer leaves out record {id}"))?;
        out.push(outcome);
    }
    match by_id.keys().next() {
        Some(id) => Err(format!(
            "the function's answer has a record {id} it was not given"
        )),
        None => Ok(out),
    }
}

/// `records` cut into invocations of at most `EVENT_BYTES_MAX` bytes.
fn chunks<'a, 'b>(records: &'a [InRecord<'b>]) -> Vec<&'a [InRecord<'b>]> {
    super::sink::cut(records, usize::MAX, EVENT_BYTES_MAX, |r| {
        r.data.len().div_ceil(3) * 4 + r.partition_key.len() + 256
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gives_each_record_its_outcome_or_fails_whole() {
        let ok = BASE64.encode(b"{\"a\":1}");
        let answer = format!(
            r#"{{"records":[{{"recordId":"2","result":"Dropped"}},
               {{"recordId":"1","result":"Ok","data":"{ok}"}},
               {{"recordId":"3","result":"ProcessingFailed"}}]}}"#
        );
        let got = outcomes(answer.as_bytes(), ["1", "2", "3"].into_iter()).unwrap();
        assert_eq!(
            got,
            [
                Outcome::Ok(b"{\"a\":1}".to_vec()),
                Outcome::Dropped,
                Outcome::Failed
            ]
        );
        let fails = |answer: &str| outcomes(answer.as_bytes(), ["1"].into_iter()).unwrap_err();
        assert!(fails("nope").contains("not JSON"));
        assert!(fails(r#"{"records":[]}"#).contains("leaves out record 1"));
        assert!(fails(r#"{"records":[{"recordId":"1","result":"Ok"}]}"#).contains("without data"));
        assert!(fails(r#"{"records":[{"recordId":"1"}]}"#).contains("no result"));
        assert!(fails(r#"{"records":[{"recordId":"1","result":"Maybe"}]}"#).contains("Maybe"));
        assert!(
            fails(r#"{"records":[{"recordId":"1","result":"Dropped"},{"recordId":"9","result":"Dropped"}]}"#)
                .contains("not given")
        );
        assert!(fails(r#"{"errorMessage":"boom"}"#).contains("no records"));
        assert!(
            fails(r#"{"records":[{"recordId":"1","result":"Dropped"},{"recordId":"1","result":"Dropped"}]}"#)
                .contains("twice")
        );
    }
}
