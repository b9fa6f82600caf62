//! A shard task's calls out: the function invoked with a batch (AWS's
//! event, a kept connection, a place when the function's invocations are
//! limited, the answer judged), OnFailure records written for discarded
//! records, and both counted in the mapping's metrics.

use bytes::Bytes;
use http_body_util::Full;
use riffle_engine::PutRecordsEntry;
use riffle_engine::http::client::{self, HttpUrl, Peer};
use riffle_engine::rt;
use riffle_protocol::{ErrorCode, routing};

use super::{PAUSE, PROBLEM, Rec, Task};
use crate::answer::{self, Outcome};
use crate::event::{self, EventRecord};
use crate::failure::{self, LastAnswer};
use crate::function::Function;
use crate::state::Mapping;

impl Task {
    pub(super) fn count(&self, records: &[&Rec], outcome: &Outcome) {
        let m = &self.metrics;
        m.invocations.add(1);
        m.invoked.add(records.len() as u64);
        if let Some(last) = records.last() {
            m.iterator_age
                .set(rt::now_ms().saturating_sub(last.arrival_ms).max(0) as u64);
        }
        let result = match outcome {
            Outcome::Success => "OK",
            Outcome::Partial { from } => {
                m.failed_invoke
                    .add(records.len().saturating_sub(*from) as u64);
                "OK"
            }
            Outcome::FunctionError { reason, .. } => {
                m.errors.add(1);
                m.failed_invoke.add(records.len() as u64);
                tracing::debug!("event-source mapping {}: {reason}", self.uuid);
                PROBLEM
            }
        };
        self.shared.set_result(self.id, result);
    }

    /// POSTs the event for `records`: what the answer means, and what the
    /// OnFailure record would report of it.
    pub(super) async fn invoke(
        &self,
        f: &Function,
        records: &[&Rec],
        report: bool,
        window: Option<&event::Window<'_>>,
    ) -> (Outcome, LastAnswer, Bytes) {
        let source = event::Source {
            stream_arn: &self.stream_arn,
            region: &self.shared.config.region,
            account: &self.shared.config.account,
        };
        let event_records: Vec<EventRecord<'_>> = records
            .iter()
            .map(|r| EventRecord {
                shard_index: self.shard,
                sequence_number: r.sequence_number(),
                partition_key: r.partition_key(),
                data: &r.data,
                arrival_ms: r.arrival_ms,
            })
            .collect();
        let body = match window {
            Some(w) => event::window_event_json(&source, &event_records, w),
            None => event::event_json(&source, &event_records),
        };
        let no_answer = |reason: String| {
            (
                Outcome::FunctionError {
                    function_error: Some("Unhandled".into()),
                    reason,
                },
                LastAnswer {
                    status: 200,
                    function_error: Some("Unhandled".into()),
                },
                Bytes::new(),
            )
        };
        let url = match HttpUrl::parse(&f.url) {
            Ok(u) => u,
            Err(e) => return no_answer(e),
        };
        let peer = match Peer::resolve(&url, &self.shared.tls).await {
            Ok(p) => p,
            Err(e) => return no_answer(e),
        };
        let request = hyper::Request::post(url.path.as_str())
            .header(hyper::header::HOST, url.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(r) => r,
            Err(e) => return no_answer(e.to_string()),
        };
        let _place = self.shared.place(&f.url).await;
        // A connection kept from an earlier invocation of this shard's task
        // (one per lane in flight). Not for a function whose invocations are
        // limited: its server may serve one connection at a time, and an idle
        // kept one would hold it from the other shards.
        let limited = self.shared.places.contains_key(&f.url);
        let mut kept = self.connections.borrow_mut().pop();
        let started = rt::now_ms();
        let sent = client::send_kept(
            &mut kept,
            peer,
            request,
            self.shared.config.invocation_timeout,
        )
        .await;
        if let Some(c) = kept.filter(|_| !limited) {
            self.connections.borrow_mut().push(c);
        }
        self.metrics
            .duration
            .observe_ms(rt::now_ms().saturating_sub(started));
        let (status, headers, answer_body) = match sent {
            Ok(a) => a,
            Err(e) => return no_answer(e),
        };
        let function_error = headers
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok());
        let seqs: Vec<&str> = match report {
            true => records.iter().map(|r| r.sequence_number()).collect(),
            false => Vec::new(),
        };
        let outcome = answer::judge(
            &answer::Answer {
                status: status.as_u16(),
                function_error,
                body: &answer_body,
            },
            &seqs,
            report,
        );
        let reported = match &outcome {
            Outcome::FunctionError { function_error, .. } => {
                function_error.clone().or_else(|| Some("Unhandled".into()))
            }
            _ => None,
        };
        (
            outcome,
            LastAnswer {
                status: status.as_u16(),
                function_error: reported,
            },
            answer_body,
        )
    }

    /// Puts the OnFailure record of `records` (if the mapping has a
    /// destination); retried while the destination exists. False when the
    /// mapping stopped meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn discard(
        &self,
        m: &Mapping,
        function: &Function,
        request_id: &str,
        condition: crate::batch::Condition,
        invoke_count: u32,
        last: Option<&LastAnswer>,
        records: &[&Rec],
    ) -> bool {
        let (Some(first), Some(last_record)) = (records.first(), records.last()) else {
            return true;
        };
        tracing::warn!(
            "event-source mapping {} shard {}: {} records discarded ({})",
            self.uuid,
            self.shard,
            records.len(),
            condition.aws_name()
        );
        let Some(destination) = &m.config.on_failure else {
            return true;
        };
        let stream = destination.rsplit_once(":stream/").map_or("", |(_, s)| s);

        let body = failure::record(
            request_id,
            &m.function_arn,
            &function.version,
            condition,
            invoke_count,
            last,
            &failure::Discarded {
                shard_index: self.shard,
                first_sequence_number: first.sequence_number(),
                last_sequence_number: last_record.sequence_number(),
                first_arrival_ms: first.arrival_ms,
                last_arrival_ms: last_record.arrival_ms,
                count: records.len(),
                stream_arn: &self.stream_arn,
            },
            rt::now_ms(),
        );
        let key = routing::shard_id(self.shard);
        loop {
            let put = self
                .shared
                .engine
                .put_records(
                    stream,
                    &[PutRecordsEntry {
                        partition_key: &key,
                        explicit_hash_key: None,
                        data: &body,
                    }],
                )
                .await;
            match put.map(|mut r| r.pop()) {
                Ok(Some(Ok(_))) => return true,
                Err(e) if e.code == ErrorCode::ResourceNotFound => {
                    tracing::warn!(
                        "event-source mapping {}: the OnFailure destination {destination} is \
                         gone: the records' failure record is lost",
                        self.uuid
                    );
                    self.shared.set_result(self.id, PROBLEM);
                    return true;
                }
                other => {
                    let why = match other {
                        Err(e) | Ok(Some(Err(e))) => e.message,
                        _ => "no result".into(),
                    };
                    tracing::warn!(
                        "event-source mapping {}: OnFailure put to {destination}: {why}",
                        self.uuid
                    );
                    rt::sleep(PAUSE).await;
                    if self.mapping().is_none() {
                        return false;
                    }
                }
            }
        }
    }
}

/// The `state` object of a tumbling-window answer, as JSON text.
pub(super) fn state_of(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Object(mut o) => match o.remove("state")? {
            state @ serde_json::Value::Object(_) => Some(state.to_string()),
            _ => None,
        },
        _ => None,
    }
}
