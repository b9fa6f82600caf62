//! Runs a delivery stream's processing (`processing.rs`) on one object's
//! records: invokes the function over HTTP in batches (each at most
//! `BufferSizeInMBs` of data and AWS's 6 MB payload), retrying a failed
//! invocation `NumberOfRetries` times, and gives the object's new data and the
//! JSON lines of the records that failed.
//!
//! Invocation ids and record ids are derived from where the records are, so
//! a rebuilt object (after a crash) sends the function the same ids.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use riffle_engine::rt;

use crate::http_client::{self, HttpUrl, Peer};
use crate::processing::{self, INVOCATION_BYTES_MAX, InRecord, Lambda, Outcome, Processing};

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
    /// For https function URLs.
    pub tls: &'a std::sync::Arc<rustls::ClientConfig>,
}

/// One record to process.
pub struct Record<'a> {
    pub data: &'a [u8],
    pub arrival_ms: i64,
}

/// An object's processed records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transformed {
    /// The records to deliver (each with its delimiter).
    pub records: Vec<Vec<u8>>,
    /// When each of them arrived (its source record's arrival).
    pub arrivals: Vec<i64>,
    /// JSON lines of the records that failed (`processing-failed`).
    pub errors: Vec<u8>,
}

/// Processes `records` as `p` says.
pub async fn run(p: &Processing, cx: &Context<'_>, records: &[Record<'_>]) -> Transformed {
    let mut out = Transformed::default();
    let deliver = |out: &mut Transformed, data: &[u8], arrival_ms: i64| {
        let mut record = data.to_vec();
        if let Some(d) = &p.delimiter {
            record.extend_from_slice(d);
        }
        out.records.push(record);
        out.arrivals.push(arrival_ms);
    };
    let Some(lambda) = &p.lambda else {
        for r in records {
            deliver(&mut out, r.data, r.arrival_ms);
        }
        return out;
    };
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
        let batch = &records[at..end];
        let ids: Vec<String> = (at..end).map(|i| format!("{}-{i}", cx.object_id)).collect();
        let (outcomes, attempts) = invoke(lambda, cx, invocation, batch, &ids).await;
        for (r, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Ok(data) => deliver(&mut out, &data, r.arrival_ms),
                Outcome::Dropped => {}
                Outcome::Failed(code, message) => {
                    out.errors.extend(processing::error_record(
                        attempts,
                        r.arrival_ms,
                        code,
                        &message,
                        rt::now_ms(),
                        r.data,
                        &lambda.arn,
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
    let url = HttpUrl::parse(url)?;
    let request = hyper::Request::post(&url.path)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, event.len())
        .body(Full::new(event))
        .map_err(|e| e.to_string())?;
    let peer = Peer::resolve(&url, tls).await?;
    let (status, body) = http_client::send(peer, request, INVOCATION_TIMEOUT).await?;
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "the function answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        ));
    }
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
