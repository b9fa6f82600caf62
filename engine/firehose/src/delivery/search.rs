//! Delivering to OpenSearch (`_bulk`) and to Splunk (HEC with indexer
//! acknowledgement), the runtime half of `opensearch.rs` and `splunk.rs`:
//! requests cut to size, each retried with AWS's backoff (`min(120 s, 1 s *
//! 2^n)`, jittered) until it succeeds or `RetryOptions` runs out, each
//! failure reported to DescribeDeliveryStream, and the AWS error lines of
//! the records that could not be delivered handed back for the backup
//! bucket. Document ids and event ids come from the object id and the
//! record's index: the same on every retry and after a restart. Every
//! failure message is cut by `opensearch::capped` (512 bytes) before it is
//! reported or written into the records' error lines.

use std::time::Duration;

use bytes::Bytes;
use riffle_engine::rt;

use super::{HTTP_RETRY_FIRST, HTTP_RETRY_MAX, HTTP_TIMEOUT, Task};
use crate::http_client::{self, HttpUrl, Peer};
use crate::opensearch::{self, Doc, FailedDoc, Item, SearchDestination};
use crate::splunk::{self, Failure, SplunkDestination};

/// Acknowledgement polls back off from this to `ACK_POLL_MAX`.
const ACK_POLL_FIRST: Duration = Duration::from_millis(200);
const ACK_POLL_MAX: Duration = Duration::from_secs(5);

/// The next wait of AWS's backoff (`wait` doubled up to 120 s), and the
/// jittered (+-15%) wait to sleep now.
fn backoff(wait: &mut Duration) -> Duration {
    let now = *wait;
    *wait = (*wait * 2).min(HTTP_RETRY_MAX);
    let jitter = 85 + (rt::now_ms().rem_euclid(31)) as u32;
    now * jitter / 100
}

impl Task {
    /// POSTs `body` to `url` with `headers`: the status and the answer, or why
    /// no answer came.
    async fn post(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let mut request = hyper::Request::post(&url.path)
            .header(hyper::header::HOST, &url.authority)
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(http_body_util::Full::new(body))
            .map_err(|e| e.to_string())?;
        let peer = Peer::resolve(url, &self.shared.tls).await?;
        let (status, answer) = http_client::send(peer, request, HTTP_TIMEOUT).await?;
        Ok((status.as_u16(), answer))
    }

    /// Delivers `records` as documents of `dest` (bulk requests of at most
    /// `BULK_DOCS_MAX` documents and `BULK_BYTES_MAX` bytes); the error lines
    /// of the documents that were not indexed.
    pub(super) async fn send_opensearch(
        &self,
        dest: &SearchDestination,
        object_id: &str,
        records: &[&[u8]],
        arrivals: &[i64],
    ) -> Vec<u8> {
        let mut errors = Vec::new();
        let type_name = dest.type_name.as_deref();
        let Ok(url) = HttpUrl::parse(&dest.bulk_url()) else {
            return errors;
        };
        // The documents, and the record each is; records that are not JSON
        // objects fail at once (they would break the NDJSON body).
        let mut docs: Vec<Doc<'_>> = Vec::with_capacity(records.len());
        let mut record_of = Vec::with_capacity(records.len());
        for (i, (record, &arrival_ms)) in records.iter().zip(arrivals).enumerate() {
            let index = opensearch::index_name(&dest.index, dest.rotation, arrival_ms);
            let id = dest
                .document_ids
                .then(|| opensearch::document_id(object_id, i));
            match opensearch::document(record) {
                Ok(source) => {
                    docs.push(Doc { index, id, source });
                    record_of.push(i);
                }
                Err(message) => errors.extend(opensearch::error_record(
                    dest.flavor,
                    type_name,
                    &FailedDoc {
                        attempts: 0,
                        arrival_ms,
                        code: "400",
                        message: &message,
                        ended_ms: rt::now_ms(),
                        id: id.as_deref(),
                        index: &index,
                        raw: record,
                    },
                )),
            }
        }
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| opensearch::doc_bytes(d, type_name))
            .collect();
        for range in opensearch::ranges(
            &sizes,
            opensearch::BULK_DOCS_MAX,
            opensearch::BULK_BYTES_MAX,
        ) {
            // The documents still to index, with the last reason they were not.
            let mut pending: Vec<(usize, String, String)> =
                range.map(|k| (k, String::new(), String::new())).collect();
            let deadline = rt::now_ms().saturating_add(dest.retry_ms as i64);
            let mut attempts = 0u32;
            let mut wait = HTTP_RETRY_FIRST;
            loop {
                attempts += 1;
                let body = Bytes::from(opensearch::bulk_body(
                    pending.iter().map(|(k, _, _)| &docs[*k]),
                    type_name,
                ));
                let answer = self
                    .post(&url, &[("content-type", "application/x-ndjson")], body)
                    .await;
                let items = match answer {
                    Err(message) => Err((
                        opensearch::CONNECTION_FAILED.to_string(),
                        opensearch::capped(message),
                    )),
                    Ok((status, answer)) => {
                        opensearch::read_bulk_answer(status, &answer, pending.len())
                            .map_err(|f| (f.code, f.message))
                    }
                };
                let mut next = Vec::new();
                let mut refused = Vec::new();
                let m = &self.metrics.delivery;
                m.attempt(items.is_ok());
                match items {
                    Err((code, message)) => {
                        self.fail("OpenSearch.BulkRequest", message.clone());
                        next = pending
                            .iter()
                            .map(|(k, _, _)| (*k, code.clone(), message.clone()))
                            .collect();
                    }
                    Ok(items) => {
                        for ((k, _, _), item) in pending.iter().zip(items) {
                            match item {
                                Item::Indexed => m.delivered(1, records[record_of[*k]].len()),
                                Item::Retry { code, message } => next.push((*k, code, message)),
                                Item::Failed { code, message } => refused.push((*k, code, message)),
                            }
                        }
                        if let Some((_, _, message)) = next.first().or(refused.first()) {
                            self.fail("OpenSearch.Document", message.clone());
                        }
                    }
                }
                let gone =
                    !next.is_empty() && (rt::now_ms() >= deadline || self.stream().is_none());
                if gone {
                    refused.append(&mut next);
                }
                let now = rt::now_ms();
                for (k, code, message) in &refused {
                    let i = record_of[*k];
                    errors.extend(opensearch::error_record(
                        dest.flavor,
                        type_name,
                        &FailedDoc {
                            attempts,
                            arrival_ms: arrivals[i],
                            code,
                            message,
                            ended_ms: now,
                            id: docs[*k].id.as_deref(),
                            index: &docs[*k].index,
                            raw: records[i],
                        },
                    ));
                }
                if next.is_empty() {
                    break;
                }
                pending = next;
                rt::sleep(backoff(&mut wait)).await;
            }
        }
        errors
    }

    /// Delivers `records` to Splunk's HEC (requests of at most
    /// `REQUEST_BYTES_MAX` bytes, each acknowledged); the error lines of the
    /// records whose request was not acknowledged in the end.
    pub(super) async fn send_splunk(
        &self,
        dest: &SplunkDestination,
        object_id: &str,
        records: &[&[u8]],
        arrivals: &[i64],
    ) -> Vec<u8> {
        let mut errors = Vec::new();
        let (Ok(events_url), Ok(ack_url)) = (
            HttpUrl::parse(&dest.events_url()),
            HttpUrl::parse(&dest.ack_url()),
        ) else {
            return errors;
        };
        let channel = splunk::channel(&self.shared.arn(&self.name), self.id);
        let parts: Vec<Vec<u8>> = records
            .iter()
            .map(|r| splunk::body_part(dest.endpoint_type, r))
            .collect();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        for range in opensearch::ranges(&sizes, usize::MAX, splunk::REQUEST_BYTES_MAX) {
            let body = Bytes::from(parts[range.clone()].concat());
            let mut attempts = 0u32;
            // RetryOptions counts from the first failure, without the time
            // spent waiting for acknowledgements.
            let mut deadline: Option<i64> = None;
            let mut wait = HTTP_RETRY_FIRST;
            let failed = loop {
                attempts += 1;
                let (outcome, ack_wait_ms) = self
                    .splunk_attempt(dest, &events_url, &ack_url, &channel, body.clone())
                    .await;
                let m = &self.metrics.delivery;
                m.attempt(outcome.is_ok());
                let Err(f) = outcome else {
                    m.delivered(range.len(), range.clone().map(|i| records[i].len()).sum());
                    break None;
                };
                self.fail(f.code, f.message.clone());
                let now = rt::now_ms();
                let deadline = match &mut deadline {
                    Some(d) => {
                        *d = d.saturating_add(ack_wait_ms as i64);
                        *d
                    }
                    None => *deadline.insert(now.saturating_add(dest.retry_ms as i64)),
                };
                if now >= deadline || self.stream().is_none() {
                    break Some(f);
                }
                rt::sleep(backoff(&mut wait)).await;
            };
            if let Some(f) = failed {
                let now = rt::now_ms();
                for i in range {
                    errors.extend(splunk::error_record(
                        attempts,
                        arrivals[i],
                        &f,
                        now,
                        records[i],
                        &splunk::event_id(object_id, i),
                    ));
                }
            }
        }
        errors
    }

    /// One Splunk attempt: post, then poll the acknowledgement until it is
    /// true or the acknowledgement timeout passes. The outcome, and how long
    /// was spent waiting for the acknowledgement.
    async fn splunk_attempt(
        &self,
        dest: &SplunkDestination,
        events_url: &HttpUrl,
        ack_url: &HttpUrl,
        channel: &str,
        body: Bytes,
    ) -> (Result<(), Failure>, u64) {
        let authorization = dest.authorization();
        let content_type = match dest.endpoint_type {
            splunk::EndpointType::Raw => "text/plain",
            splunk::EndpointType::Event => "application/json",
        };
        let headers = [
            ("authorization", authorization.as_str()),
            ("x-splunk-request-channel", channel),
            ("content-type", content_type),
        ];
        let ack_id = match self.post(events_url, &headers, body).await {
            Ok((status, answer)) => match splunk::read_post_answer(status, &answer) {
                Ok(id) => id,
                Err(f) => return (Err(f), 0),
            },
            Err(message) => return (Err(transport_failure(message)), 0),
        };
        let started = rt::now_ms();
        let waited = || (rt::now_ms() - started).max(0) as u64;
        let mut poll = ACK_POLL_FIRST;
        let ack_body = Bytes::from(splunk::ack_body(ack_id));
        let headers = [
            ("authorization", authorization.as_str()),
            ("x-splunk-request-channel", channel),
            ("content-type", "application/json"),
        ];
        loop {
            let left = dest.ack_timeout_ms.saturating_sub(waited());
            if left == 0 {
                let f = Failure {
                    code: "Splunk.AckTimeout",
                    message: splunk::ACK_TIMEOUT_MESSAGE.into(),
                };
                return (Err(f), waited());
            }
            rt::sleep(poll.min(Duration::from_millis(left))).await;
            poll = (poll * 2).min(ACK_POLL_MAX);
            match self.post(ack_url, &headers, ack_body.clone()).await {
                Ok((status, answer)) => match splunk::read_ack_answer(status, &answer, ack_id) {
                    Ok(true) => return (Ok(()), waited()),
                    Ok(false) => {}
                    // A busy indexer may answer again: poll on until the timeout.
                    Err(f) if f.code == "Splunk.ServerError" => {
                        self.fail(f.code, f.message);
                    }
                    Err(f) => return (Err(f), waited()),
                },
                Err(message) => self.fail("Splunk.ConnectionClosed", opensearch::capped(message)),
            }
        }
    }
}

/// AWS's error code for a request that got no answer.
fn transport_failure(message: String) -> Failure {
    let code = if message.starts_with("TLS ") {
        "Splunk.SSLHandshake"
    } else if message.contains("did not answer within") {
        "Splunk.ConnectionTimeout"
    } else if message.starts_with("cannot connect") || message.contains("resolve") {
        "Splunk.InvalidEndpoint"
    } else {
        "Splunk.ConnectionClosed"
    };
    Failure {
        code,
        message: opensearch::capped(message),
    }
}
