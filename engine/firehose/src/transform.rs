//! Runs a delivery stream's processing (`processing.rs`) on one object's
//! records: the processors before the function (`preprocess.rs`), the
//! function over HTTP in batches (each at most `BufferSizeInMBs` of data and
//! AWS's 6 MB payload; a failed invocation retried `NumberOfRetries` times),
//! the partition keys (`partition.rs`) and the delimiter; gives the records
//! to deliver with their keys, and the JSON lines of the records that failed.
//!
//! Invocation ids and record ids are derived from where the records are, so
//! a rebuilt object (after a crash) sends the function the same ids.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use riffle_engine::rt;

use crate::http_client;
use crate::partition::Keys;
use crate::preprocess;
use crate::processing::{
    self, INVOCATION_BYTES_MAX, InRecord, KinesisMeta, Lambda, Outcome, Processing,
};

/// The longest a function may take (AWS: 5 minutes).
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Between attempts of a failed invocation.
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// What the delivery stream is, for the invocation event.
pub struct Context<'a> {
    pub delivery_stream_arn: &'a str,
    pub source_stream_arn: Option<&'a str>,
    pub region: &'a str,
    /// Names the object (its origin): invocation and record ids derive from it.
    pub object_id: &'a str,
    /// For stream sources: the source shard's id.
    pub shard_id: Option<&'a str>,
    /// Dynamic partitioning is on: the function's partition keys are kept
    /// (and checked; otherwise its `metadata` is ignored, as AWS does).
    pub partitioned: bool,
    /// Where computing processors run.
    pub workers: &'a crate::workers::Workers,
    /// For https function URLs.
    pub tls: &'a std::sync::Arc<rustls::ClientConfig>,
}

/// One record to process.
pub struct Record<'a> {
    pub data: &'a [u8],
    pub arrival_ms: i64,
    /// Where it was in the source stream (stream sources).
    pub kinesis: Option<&'a KinesisMeta>,
}

/// An object's processed records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transformed {
    /// The records to deliver (each with its delimiter).
    pub records: Vec<Vec<u8>>,
    /// When each of them arrived (its source record's arrival).
    pub arrivals: Vec<i64>,
    /// Each one's partition keys (all empty without dynamic partitioning).
    pub keys: Vec<Keys>,
    /// JSON lines of the records that failed (`processing-failed`).
    pub errors: Vec<u8>,
    /// JSON lines of the records whose partition keys could not be
    /// extracted (`partitioning-failed`).
    pub partition_errors: Vec<u8>,
}

/// A record between processors.
struct Stage<'a> {
    data: Cow<'a, [u8]>,
    arrival_ms: i64,
    kinesis: Option<&'a KinesisMeta>,
    /// Keys the function gave.
    lambda_keys: Vec<(String, String)>,
}

/// Processes `records` as `p` says; `kpl`: KPL aggregated records are split
/// (Direct PUT with `RecordDeAggregation`). The processors that only compute
/// (decompression, de-aggregation, the query) run on worker threads, off the
/// core; the function is called from the core (it waits on the network).
pub async fn run(
    p: &Processing,
    kpl: bool,
    cx: &Context<'_>,
    records: &[Record<'_>],
) -> Transformed {
    let mut out = Transformed::default();
    // Decompression, CloudWatch Logs, de-aggregation.
    let mut staged: Vec<Stage<'_>> = Vec::with_capacity(records.len());
    if preprocess::any(p, kpl) {
        let (data, ends) = packed(records.iter().map(|r| r.data));
        let p2 = p.clone();
        let run = move || {
            preprocess::run_batch(
                &p2,
                kpl,
                unpacked(&data, &ends),
                preprocess::BATCH_DECOMPRESSED_BYTES_MAX,
            )
        };
        let (made, failed) = match cx.workers.run("preprocessing", run).await {
            Ok(done) => done,
            Err(e) => (
                Vec::new(),
                (0..records.len())
                    .map(|i| (i, "Processing.Failed", e.message.clone()))
                    .collect(),
            ),
        };
        for (i, code, message) in failed {
            let r = &records[i];
            out.errors.extend(processing::error_record(
                1,
                r.arrival_ms,
                code,
                &message,
                rt::now_ms(),
                r.data,
                None,
            ));
        }
        staged.extend(made.into_iter().map(|(data, i)| Stage {
            data: Cow::Owned(data),
            arrival_ms: records[i].arrival_ms,
            kinesis: records[i].kinesis,
            lambda_keys: Vec::new(),
        }));
    } else {
        staged.extend(records.iter().map(|r| Stage {
            data: Cow::Borrowed(r.data),
            arrival_ms: r.arrival_ms,
            kinesis: r.kinesis,
            lambda_keys: Vec::new(),
        }));
    }
    if let Some(lambda) = &p.lambda {
        staged = transform(lambda, cx, staged, &mut out.errors).await;
    }
    // Partition keys from the query, on a worker (which compiles it: jq's
    // values stay on one thread).
    let query_keys = match &p.metadata_query {
        // Keys only mean something to dynamic partitioning.
        Some(query) if cx.partitioned => {
            let (data, ends) = packed(staged.iter().map(|r| &r.data[..]));
            let query = query.clone();
            let keys = cx
                .workers
                .run("the metadata extraction query", move || {
                    crate::partition::keys_of_all(&query, unpacked(&data, &ends))
                })
                .await
                .unwrap_or_else(|e| staged.iter().map(|_| Err(e.message.clone())).collect());
            Some(keys)
        }
        _ => None,
    };
    let mut query_keys = query_keys.map(Vec::into_iter);
    for r in staged {
        let mut keys = Keys::default();
        if let Some(next) = query_keys.as_mut().and_then(Iterator::next) {
            match next {
                Ok(k) => keys.add(false, k),
                Err(why) => {
                    out.partition_errors.extend(processing::error_record(
                        1,
                        r.arrival_ms,
                        "DynamicPartitioning.MetadataExtractionFailed",
                        &why,
                        rt::now_ms(),
                        &r.data,
                        None,
                    ));
                    continue;
                }
            }
        }
        if cx.partitioned {
            keys.add(true, r.lambda_keys);
        }
        let mut record = r.data.into_owned();
        if let Some(d) = &p.delimiter {
            record.extend_from_slice(d);
        }
        out.records.push(record);
        out.arrivals.push(r.arrival_ms);
        out.keys.push(keys);
    }
    out
}

/// Records packed into one buffer and where each ends, to hand to a worker.
fn packed<'a>(records: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut ends = Vec::new();
    for r in records {
        data.extend_from_slice(r);
        ends.push(data.len());
    }
    (data, ends)
}

/// The records of [`packed`] again.
fn unpacked<'a>(data: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let starts = std::iter::once(0).chain(ends.iter().copied());
    starts.zip(ends).map(move |(a, &b)| &data[a..b])
}

/// The function's records: invoked in batches (each at most `batch_bytes` of
/// data and a payload under 6 MB), failures as error lines in `errors`.
async fn transform<'a>(
    lambda: &Lambda,
    cx: &Context<'_>,
    records: Vec<Stage<'a>>,
    errors: &mut Vec<u8>,
) -> Vec<Stage<'a>> {
    let mut out = Vec::with_capacity(records.len());
    let mut at = 0;
    let mut invocation = 0;
    while at < records.len() {
        // A batch: at least one record, at most batch_bytes of data and a
        // payload under 6 MB (base64 grows data by a third).
        let mut end = at;
        let mut bytes = 0;
        while end < records.len() {
            let next = records[end].data.len();
            let payload = (bytes + next) * 4 / 3 + (end - at + 1) * 128;
            if end > at && (bytes + next > lambda.batch_bytes || payload > INVOCATION_BYTES_MAX) {
                break;
            }
            bytes += next;
            end += 1;
        }
        let batch: Vec<Record<'_>> = records[at..end]
            .iter()
            .map(|r| Record {
                data: &r.data,
                arrival_ms: r.arrival_ms,
                kinesis: r.kinesis,
            })
            .collect();
        let ids: Vec<String> = (at..end).map(|i| format!("{}-{i}", cx.object_id)).collect();
        let (outcomes, attempts) = invoke(lambda, cx, invocation, &batch, &ids).await;
        for ((r, outcome), source) in batch.iter().zip(outcomes).zip(&records[at..end]) {
            match outcome {
                Outcome::Ok(data, Ok(keys)) => out.push(Stage {
                    data: Cow::Owned(data),
                    arrival_ms: r.arrival_ms,
                    kinesis: source.kinesis,
                    lambda_keys: keys,
                }),
                // Without dynamic partitioning the metadata is not read.
                Outcome::Ok(data, Err(_)) if !cx.partitioned => out.push(Stage {
                    data: Cow::Owned(data),
                    arrival_ms: r.arrival_ms,
                    kinesis: source.kinesis,
                    lambda_keys: Vec::new(),
                }),
                Outcome::Ok(_, Err(why)) => errors.extend(processing::error_record(
                    attempts,
                    r.arrival_ms,
                    "Lambda.InvalidPartitionKeys",
                    &why,
                    rt::now_ms(),
                    r.data,
                    Some(&lambda.arn),
                )),
                Outcome::Dropped => {}
                Outcome::Failed(code, message) => {
                    errors.extend(processing::error_record(
                        attempts,
                        r.arrival_ms,
                        code,
                        &message,
                        rt::now_ms(),
                        r.data,
                        Some(&lambda.arn),
                    ));
                }
            }
        }
        at = end;
        invocation += 1;
    }
    out
}

/// One batch's outcomes and the attempts made.
async fn invoke(
    lambda: &Lambda,
    cx: &Context<'_>,
    invocation: usize,
    batch: &[Record<'_>],
    ids: &[String],
) -> (Vec<Outcome>, u32) {
    let in_records: Vec<InRecord<'_>> = batch
        .iter()
        .zip(ids)
        .map(|(r, id)| InRecord {
            record_id: id.clone(),
            arrival_ms: r.arrival_ms,
            data: r.data,
            kinesis: cx.shard_id.zip(r.kinesis),
        })
        .collect();
    let event = Bytes::from(processing::invocation_event(
        &format!("{}-{invocation}", cx.object_id),
        cx.delivery_stream_arn,
        cx.source_stream_arn,
        cx.region,
        &in_records,
    ));
    let mut last_error = String::new();
    let attempts = lambda.retries + 1;
    for attempt in 1..=attempts {
        match call(&lambda.url, event.clone(), cx.tls).await {
            Ok(answer) => return (processing::outcomes(&answer, ids), attempt),
            Err(e) => last_error = e,
        }
        if attempt < attempts {
            rt::sleep(RETRY_WAIT).await;
        }
    }
    let failed = ids
        .iter()
        .map(|_| Outcome::Failed("Lambda.FunctionError", last_error.clone()))
        .collect();
    (failed, attempts)
}

/// One invocation: the answer's body when the function answered 200.
async fn call(
    url: &str,
    event: Bytes,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, String> {
    let body = http_client::invoke(url, event, tls, INVOCATION_TIMEOUT).await?;
    if body.len() > INVOCATION_BYTES_MAX {
        return Err(format!(
            "the function's answer is {} bytes, over the 6 MB limit",
            body.len()
        ));
    }
    // A function error answered as 200 (Lambda's Invoke does so): a failed
    // invocation, retried, not a malformed answer.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && v.get("records").is_none()
        && let Some(message) = v.get("errorMessage").and_then(|m| m.as_str())
    {
        return Err(format!("the function failed: {message}"));
    }
    Ok(body.to_vec())
}
