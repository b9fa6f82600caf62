//! A Lambda output (docs/analytics.md, "Lambda outputs"): an output's rows
//! posted to an HTTP function (a `ResourceARN` that is a URL, or a name the
//! server's `[functions]` table maps to one) as AWS's output-delivery
//! event, `{"invocationId", "applicationArn", "records": [{"recordId",
//! "lambdaDeliveryRecordMetadata": {"retryHint"}, "data"}]}`, the function
//! answering `{"records": [{"recordId", "result": "Ok" | "DeliveryFailed"}]}`.
//!
//! A record the function does not answer `Ok` (failed, missing from the
//! answer, or the whole call failed: not 200, not JSON, a timeout) is sent
//! again, its `retryHint` one higher, after a pause: as AWS, indefinitely,
//! holding the application back, until the run stops. A record's `recordId`
//! is the row's name (sink.rs's partition key), the same when a resumed run
//! sends a row again, so a function can tell a row it was given before.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use riffle_engine::http::client as http_client;
use riffle_engine::rt;
use serde_json::{Value, json};

use crate::encode::Pieces;

/// Records per invocation at most.
const RECORDS_MAX: usize = 500;
/// An invocation's event at most (Lambda's synchronous payload limit is
/// 6 MB; this leaves room for the JSON around the records).
const EVENT_BYTES_MAX: usize = 5 * 1024 * 1024;
/// How long a function has to answer.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
/// After a round with records not delivered, the pause before the next.
const PAUSE: Duration = Duration::from_secs(1);
/// How often a call in flight looks whether the run stopped.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// An output's function.
pub(super) struct LambdaOut {
    url: String,
    application_arn: String,
    tls: Arc<rustls::ClientConfig>,
}

impl LambdaOut {
    pub(super) fn new(
        url: String,
        application_arn: String,
        tls: Arc<rustls::ClientConfig>,
    ) -> LambdaOut {
        LambdaOut {
            url,
            application_arn,
            tls,
        }
    }

    /// Delivers records `pending` (by index into `records` and `keys`)
    /// until each was answered `Ok`, or `live` says the run is over; each
    /// invocation's records delivered and failed, and its time, told to
    /// `flow` (`LambdaDelivery.*`).
    pub(super) async fn deliver(
        &mut self,
        records: &Pieces,
        keys: &Pieces,
        mut pending: Vec<usize>,
        live: impl Fn() -> bool,
        what: &str,
        flow: &crate::metrics::Flow,
    ) {
        // Per record (by index into `records`): its failed deliveries.
        let mut hints = vec![0u32; records.len()];
        while !pending.is_empty() {
            if !live() {
                return;
            }
            let mut failed = Vec::new();
            for chunk in chunks(&pending, records, keys) {
                if !live() {
                    return;
                }
                let event = self.event(chunk, records, keys, &hints);
                let began = std::time::Instant::now();
                let ok = match unless_stopped(self.call(event), &live).await {
                    Ok(answer) => delivered(&answer),
                    Err(e) => {
                        tracing::warn!("{what}: {e}; its records are sent again");
                        HashSet::new()
                    }
                };
                let (mut ok_count, mut failed_count) = (0u64, 0u64);
                for &i in chunk {
                    if !ok.contains(keys.get(i)) {
                        hints[i] += 1;
                        failed.push(i);
                        failed_count += 1;
                    } else {
                        ok_count += 1;
                    }
                }
                // A call given up because the run stopped is not the function's.
                if live() {
                    flow.lambda_delivered(ok_count, failed_count, began.elapsed());
                }
            }
            pending = failed;
            if !pending.is_empty() {
                rt::sleep(PAUSE).await;
            }
        }
    }

    /// The event for records `chunk`.
    fn event(&self, chunk: &[usize], records: &Pieces, keys: &Pieces, hints: &[u32]) -> Bytes {
        let records: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                json!({
                    "recordId": keys.get(i),
                    "lambdaDeliveryRecordMetadata": {"retryHint": hints[i]},
                    "data": BASE64.encode(records.get(i)),
                })
            })
            .collect();
        let event = json!({
            "invocationId": riffle_engine::http::random_uuid(),
            "applicationArn": self.application_arn,
            "records": records,
        });
        Bytes::from(event.to_string())
    }

    /// One invocation: the answer's body when the function answered 200.
    async fn call(&self, event: Bytes) -> Result<Bytes, String> {
        http_client::invoke(&self.url, event, &self.tls, INVOCATION_TIMEOUT).await
    }
}

/// `call`, given up (an error) once `live` says the run stopped: a
/// function slow to answer does not hold a stopped run, whose successor
/// waits for it (`run::follow_previous`).
pub(super) async fn unless_stopped<T>(
    call: impl std::future::Future<Output = Result<T, String>>,
    live: &impl Fn() -> bool,
) -> Result<T, String> {
    let stopped = async {
        loop {
            rt::sleep(STOP_CHECK).await;
            if !live() {
                return Err("the application stopped".to_string());
            }
        }
    };
    futures_lite::future::or(call, stopped).await
}

/// The recordIds an answer says were delivered (`"result": "Ok"`); none
/// for an answer that is not AWS's shape.
fn delivered(answer: &[u8]) -> HashSet<String> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return HashSet::new();
    };
    let records = v.get("records").and_then(Value::as_array);
    (records.into_iter().flatten())
        .filter(|r| r.get("result").and_then(Value::as_str) == Some("Ok"))
        .filter_map(|r| r.get("recordId").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `pending` cut into invocations of at most `RECORDS_MAX` records and
/// `EVENT_BYTES_MAX` bytes (data in base64, with its id).
fn chunks<'a>(pending: &'a [usize], records: &Pieces, keys: &Pieces) -> Vec<&'a [usize]> {
    super::sink::cut(pending, RECORDS_MAX, EVENT_BYTES_MAX, |&i| {
        records.get(i).len().div_ceil(3) * 4 + keys.get(i).len() + 96
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_delivers_the_records_it_says_ok() {
        let answer = br#"{"records":[{"recordId":"a","result":"Ok"},
            {"recordId":"b","result":"DeliveryFailed"},{"recordId":"c"},
            {"result":"Ok"},{"recordId":"d","result":"Ok"}]}"#;
        let ok = delivered(answer);
        assert_eq!(ok.len(), 2);
        assert!(ok.contains("a") && ok.contains("d"));
        assert!(delivered(b"not json").is_empty());
        assert!(delivered(br#"{"errorMessage":"boom"}"#).is_empty());
    }

    #[test]
    fn invocations_are_cut_by_count_and_by_bytes() {
        let (mut records, mut keys) = (Pieces::default(), Pieces::default());
        for i in 0..1200 {
            records
                .text()
                .push_str(&"x".repeat(if i < 600 { 10 } else { 30_000 }));
            records.end();
            keys.text().push('k');
            keys.end();
        }
        let pending: Vec<usize> = (0..1200).collect();
        let cut = chunks(&pending, &records, &keys);
        assert_eq!(cut.iter().map(|c| c.len()).sum::<usize>(), 1200);
        assert_eq!(cut[0].len(), RECORDS_MAX);
        for c in &cut {
            let bytes: usize = c
                .iter()
                .map(|&i| records.get(i).len().div_ceil(3) * 4 + 1 + 96)
                .sum();
            assert!(c.len() <= RECORDS_MAX && bytes <= EVENT_BYTES_MAX);
        }
    }
}
