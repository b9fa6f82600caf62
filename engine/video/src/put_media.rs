//! PutMedia (`POST /putMedia`): a long-lived chunked MKV upload answered at
//! once with 200 and then a stream of acknowledgements on the same
//! connection, as Kinesis Video Streams sends them (one JSON object a line):
//!
//! - `BUFFERING` when a fragment's (cluster's) Timecode arrives, naming the
//!   number it will have;
//! - `RECEIVED` when the whole fragment is in;
//! - `PERSISTED` when it is durable in the stream's internal stream (same
//!   group commit as any record; not for a stream that keeps no data);
//! - `ERROR` with AWS's ErrorId (4001 too large, 4002 too long, 4004
//!   timecode going back, 4006 invalid MKV, 4008 stream deleted, 4010–4012
//!   tracks, 5001 not stored); errors in the MKV end the upload, errors of
//!   one fragment drop it and the upload goes on;
//! - `IDLE` every `IDLE_ACK_MS` without data; after `IDLE_CLOSE_MS` the
//!   server ends the answer.
//!
//! The body is read chunk by chunk into the splitter (`mkv`), which holds at
//! most one fragment (`SplitLimits::buffered_max`, ~50 MiB) and the header;
//! acknowledgements queue up to `ACKS_QUEUED_MAX`, then reading stops until
//! the client reads them: memory per connection stays bounded. A fragment
//! is stored whole or not at all (index.rs: a fragment cut short by a crash
//! is not indexed), and only a stored one is acknowledged PERSISTED.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_engine::http::HttpBody;
use riffle_engine::http::service::{StreamSender, StreamingBody, streamed, whole};
use riffle_engine::rt;
use serde_json::json;

use crate::index::Entry;
use crate::mkv::{Event, Fragment, SplitLimits, Splitter};
use crate::record::{self, FragmentFacts};
use crate::service::{Shared, invalid, not_found_name};
use crate::state::VideoStream;

/// An IDLE acknowledgement after this long without data.
const IDLE_ACK_MS: u64 = 3_000;
/// The answer ends after this long without data (AWS: 30 s).
const IDLE_CLOSE_MS: i64 = 30_000;
/// Acknowledgements waiting for the client to read them.
const ACKS_QUEUED_MAX: usize = 16;
/// AWS: a fragment lasts at most 10 s (ErrorId 4002).
const FRAGMENT_DURATION_MS_MAX: i64 = 10_000;
/// A fragment whose bytes take longer than this to arrive (from its
/// Timecode to its end) is dropped and the upload ended (ErrorId 4000):
/// its number would hold every live reader of the stream back
/// (index.rs), so a stalled or trickling upload cannot.
const FRAGMENT_ARRIVAL_MS_MAX: i64 = 20_000;
/// An acknowledgement the client does not make room for within this long
/// ends the upload (a client that stopped reading holds nothing for long).
const ACK_WAIT_MS_MAX: u64 = 10_000;
/// The session's header is written again after this long, so the records
/// a fragment needs are never much older than the fragment (retention
/// drops whole segments by age, an hour at least).
const HEADER_REPEAT_MS: i64 = 10 * 60 * 1000;
/// Fragments whose appends a session keeps in flight while it reads on
/// (their PERSISTED acks still go in order).
const STORES_IN_FLIGHT_MAX: usize = 3;
/// The index drops fragments retention removed every this many stored.
const PRUNE_EVERY: u32 = 32;
/// Producer times in ms stay within this (about ±285,000 years): anything
/// further out is not a timecode a camera writes (ErrorId 4006).
const TIME_MS_ABS_MAX: i128 = 1 << 53;

/// How a session's cluster timecodes become producer timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timecodes {
    /// Cluster timecodes are times since the epoch.
    Absolute,
    /// Cluster timecodes count from the producer's start time (ms).
    Relative { start_ms: i64 },
}

/// Reads the request's headers; refuses the upload before answering 200.
fn open(s: &Shared, headers: &http::HeaderMap) -> Result<(VideoStream, Timecodes), Refusal> {
    let header = |name: &str| riffle_aws::rest::header(headers, name);
    let state = s.meta.state();
    let stream = match (header("x-amzn-stream-name"), header("x-amzn-stream-arn")) {
        (_, Some(arn)) => {
            state
                .by_arn(arn)
                .ok_or_else(|| match crate::state::name_of_arn(arn) {
                    Some(n) => not_found_name(n),
                    None => invalid(format!("x-amzn-stream-arn {arn} names no video stream.")),
                })?
        }
        (Some(name), None) => state
            .streams
            .get(name)
            .ok_or_else(|| not_found_name(name))?,
        (None, None) => {
            return Err(invalid(
                "PutMedia needs the x-amzn-stream-name or x-amzn-stream-arn header.",
            ));
        }
    };
    let start = match header("x-amzn-producer-start-timestamp") {
        None => None,
        Some(t) => Some(seconds_to_ms(t).ok_or_else(|| {
            invalid(format!(
                "x-amzn-producer-start-timestamp {t} is not a time in seconds since the epoch."
            ))
        })?),
    };
    let timecodes = match header("x-amzn-fragment-timecode-type") {
        Some("ABSOLUTE") => Timecodes::Absolute,
        Some("RELATIVE") => Timecodes::Relative {
            start_ms: start.ok_or_else(|| {
                invalid("RELATIVE timecodes need x-amzn-producer-start-timestamp.")
            })?,
        },
        Some(other) => {
            return Err(invalid(format!(
                "x-amzn-fragment-timecode-type {other} is not ABSOLUTE or RELATIVE."
            )));
        }
        None => return Err(invalid("PutMedia needs x-amzn-fragment-timecode-type.")),
    };
    Ok((stream.clone(), timecodes))
}

/// `1700000000.123` (seconds, as the SDKs send it) as ms.
fn seconds_to_ms(text: &str) -> Option<i64> {
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && (0.0..1e11).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as i64)
}

/// Answers a PutMedia request: 200 at once, acknowledgements after.
pub(crate) async fn put_media(
    s: &Arc<Shared>,
    parts: &http::request::Parts,
    body: StreamingBody,
) -> Response<HttpBody> {
    let (stream, timecodes) = match open(s, &parts.headers) {
        Ok(o) => o,
        Err(r) => return whole(r.to_rest_response()),
    };
    let (tx, resp) = streamed(StatusCode::OK, "application/json", ACKS_QUEUED_MAX);
    let metrics = s.metrics.of(&stream.name);
    metrics.put_media_requests.add(1);
    let session = Session {
        metrics,
        s: s.clone(),
        media: s.media.index(&stream.internal),
        stream,
        timecodes,
        tx,
        stalled: std::cell::Cell::new(false),
        header: None,
        stored_since_prune: 0,
        current: None,
        last_frame_ms: None,
        pending: VecDeque::new(),
    };
    rt::spawn(session.run(body));
    resp
}

/// One upload.
struct Session {
    /// Its stream's metrics (an ended upload counts itself when dropped).
    metrics: Arc<crate::metrics::StreamMetrics>,
    s: Arc<Shared>,
    stream: VideoStream,
    media: crate::media::SharedIndex,
    timecodes: Timecodes,
    tx: StreamSender,
    /// An acknowledgement waited `ACK_WAIT_MS_MAX` in vain: the client is
    /// not reading, later ones are queued only if there is room at once.
    stalled: std::cell::Cell<bool>,
    /// The session's header as last written.
    header: Option<SessionHeader>,
    /// Fragments stored since the index was last pruned.
    stored_since_prune: u32,
    /// The fragment being received: its number, server time, timecode.
    current: Option<(u128, i64, u64)>,
    /// The previous fragment's last frame (ms, producer time base).
    last_frame_ms: Option<i64>,
    /// Fragments being stored, oldest first.
    pending: VecDeque<Pending>,
}

/// What a fragment's store task answers: its first record's offset and its
/// part count, or AWS's ErrorId and a message.
type StoreResult = Result<(u64, u16), (u16, String)>;

/// A fragment being stored: its facts and where its result comes.
struct Pending {
    facts: FragmentFacts,
    timecode: u64,
    done: flume::Receiver<StoreResult>,
    /// When its last byte arrived (PutMedia.PersistedAckLatency).
    received: std::time::Instant,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.metrics.put_media_ended.add(1);
    }
}

/// What woke a session.
enum Wake {
    Chunk(Option<Result<Bytes, String>>),
    Stored(StoreResult),
    Timer,
}

/// A session's MKV header: where its record was last written, when, and
/// what to write again.
struct SessionHeader {
    offset: u64,
    written_ms: i64,
    scale_ns: u64,
    record: Vec<u8>,
}

/// Ticks of `scale_ns` as ms, if within `TIME_MS_ABS_MAX`.
fn ticks_to_ms(ticks: i128, scale_ns: u64) -> Option<i64> {
    let ms = ticks.checked_mul(i128::from(scale_ns))? / 1_000_000;
    (ms.abs() <= TIME_MS_ABS_MAX).then_some(ms as i64)
}

/// Why a session stops.
enum Stop {
    /// The client went away or the stream is gone: nothing more to say.
    Quiet,
}

impl Session {
    async fn run(mut self, mut body: StreamingBody) {
        // A header record holds the header behind its prefix, within a record.
        let record_max = self
            .s
            .engine
            .limits_of(&self.stream.internal)
            .record_data_size_max;
        let mut splitter = Splitter::new(SplitLimits {
            header_bytes_max: SplitLimits::AWS
                .header_bytes_max
                .min(record_max as usize - record::HEADER_PREFIX_SIZE),
            ..SplitLimits::AWS
        });
        let mut events = Vec::new();
        let mut last_data_ms = rt::now_ms();
        loop {
            let wake = {
                let pending = &self.pending;
                futures_lite::future::or(
                    async { Wake::Chunk(body.chunk().await) },
                    futures_lite::future::or(
                        async {
                            match pending.front() {
                                Some(p) => Wake::Stored(answer(&p.done).await),
                                None => std::future::pending().await,
                            }
                        },
                        async {
                            rt::sleep(Duration::from_millis(IDLE_ACK_MS)).await;
                            Wake::Timer
                        },
                    ),
                )
                .await
            };
            // A store's answer is taken from its channel: it is handled
            // before anything else can end the loop.
            let wake = match wake {
                Wake::Stored(result) => {
                    if self.finish_oldest(result).await.is_err() {
                        break;
                    }
                    continue;
                }
                other => other,
            };
            if let Some((_, started_ms, timecode)) = self.current
                && rt::now_ms() - started_ms > FRAGMENT_ARRIVAL_MS_MAX
            {
                let why =
                    format!("The fragment took more than {FRAGMENT_ARRIVAL_MS_MAX} ms to arrive.");
                self.error(4000, &why, Some(timecode)).await;
                break;
            }
            let (ended, split) = match wake {
                Wake::Stored(_) => unreachable!("handled above"),
                Wake::Timer => {
                    if rt::now_ms() - last_data_ms >= IDLE_CLOSE_MS
                        || !self.ack(json!({ "EventType": "IDLE" })).await
                    {
                        break;
                    }
                    continue;
                }
                // The upload ended.
                Wake::Chunk(None) => (true, splitter.finish(&mut events)),
                // A disconnect mid-upload: the fragment under way is lost.
                Wake::Chunk(Some(Err(_))) => break,
                Wake::Chunk(Some(Ok(chunk))) => {
                    last_data_ms = rt::now_ms();
                    (false, splitter.push(&chunk, &mut events))
                }
            };
            let mut stopped = false;
            for event in events.drain(..) {
                if self.on(event).await.is_err() {
                    stopped = true;
                    break;
                }
            }
            if stopped {
                break;
            }
            if let Err(e) = split {
                let timecode = self.current.map(|c| c.2);
                self.error(e.error_id(), &e.to_string(), timecode).await;
                break;
            }
            if ended {
                break;
            }
        }
        self.give_up();
        // The upload is not read any more: its body (and the gateway's
        // place for it) go now.
        drop(body);
        // Fragments being stored are waited for: each is indexed once
        // durable (and acknowledged, if the client still listens; one that
        // failed gets its ERROR and the others still their acks).
        while let Some(p) = self.pending.front() {
            let result = answer(&p.done).await;
            let _ = self.finish_oldest(result).await;
        }
    }

    /// A fragment under way will not be stored.
    fn give_up(&mut self) {
        if let Some((n, ..)) = self.current.take() {
            self.media.index.lock().unwrap().abandon(n);
            self.media.changed();
        }
    }

    /// Queues an acknowledgement; false when the client is gone or has not
    /// made room for it within `ACK_WAIT_MS_MAX` (once that happened, none
    /// is waited for again: the session's last fragments are not held 10 s
    /// each).
    async fn ack(&self, ack: serde_json::Value) -> bool {
        let mut line = ack.to_string();
        line.push('\n');
        if self.stalled.get() {
            return self.tx.try_send(Bytes::from(line));
        }
        let sent = futures_lite::future::or(self.tx.send(Bytes::from(line)), async {
            rt::sleep(Duration::from_millis(ACK_WAIT_MS_MAX)).await;
            false
        })
        .await;
        if !sent && !self.tx.is_closed() {
            self.stalled.set(true);
        }
        sent
    }

    /// An ERROR ack about the fragment being received (if any).
    async fn error(&self, error_id: u16, message: &str, timecode: Option<u64>) -> bool {
        let number = self.current.map(|c| c.0);
        self.error_about(error_id, message, timecode, number).await
    }

    async fn error_about(
        &self,
        error_id: u16,
        message: &str,
        timecode: Option<u64>,
        number: Option<u128>,
    ) -> bool {
        self.metrics.error_acks.add(1);
        let mut ack = json!({
            "EventType": "ERROR",
            "ErrorId": error_id,
            "ErrorCode": message,
        });
        if let Some(t) = timecode {
            ack["FragmentTimecode"] = json!(t);
        }
        if let Some(n) = number {
            ack["FragmentNumber"] = json!(record::number_text(n));
        }
        self.ack(ack).await
    }

    async fn on(&mut self, event: Event) -> Result<(), Stop> {
        match event {
            Event::Header(h) => {
                let record = record::header_record(h.timecode_scale_ns, &h.bytes);
                let offset = self.append(&[(record::HEADER_KEY, &record)]).await?;
                self.header = Some(SessionHeader {
                    offset,
                    written_ms: rt::now_ms(),
                    scale_ns: h.timecode_scale_ns,
                    record,
                });
                Ok(())
            }
            Event::FragmentStarted { timecode } => {
                let now = rt::now_ms();
                let n = self.media.index.lock().unwrap().assign(now);
                self.current = Some((n, now, timecode));
                let ack = json!({
                    "EventType": "BUFFERING",
                    "FragmentTimecode": timecode,
                    "FragmentNumber": record::number_text(n),
                });
                self.ack(ack).await.then_some(()).ok_or(Stop::Quiet)
            }
            Event::Fragment(f) => self.fragment(f).await,
        }
    }

    /// A whole cluster: checked, acknowledged RECEIVED, stored, PERSISTED.
    async fn fragment(&mut self, f: Fragment) -> Result<(), Stop> {
        let (Some((n, server_ms, _)), Some(scale_ns)) =
            (self.current, self.header.as_ref().map(|h| h.scale_ns))
        else {
            // The splitter gives a Header before any fragment and a start
            // before each; should it not, the upload is refused, not trusted.
            self.error(
                4006,
                "A cluster came without its header or timecode.",
                Some(f.timecode),
            )
            .await;
            return Err(Stop::Quiet);
        };
        let times = (
            ticks_to_ms(i128::from(f.first_frame), scale_ns),
            ticks_to_ms(i128::from(f.last_frame), scale_ns),
            ticks_to_ms(i128::from(f.timecode), scale_ns),
        );
        let (Some(first_ms), Some(last_ms), Some(timecode_ms)) = times else {
            let why = "The fragment's timecodes are out of range for its TimecodeScale.";
            self.error(4006, why, Some(f.timecode)).await;
            return Err(Stop::Quiet);
        };
        if last_ms - first_ms > FRAGMENT_DURATION_MS_MAX {
            let why = format!(
                "The fragment lasts {} ms, more than {FRAGMENT_DURATION_MS_MAX} ms.",
                last_ms - first_ms
            );
            return self.drop_fragment(4002, &why, f.timecode).await;
        }
        if let Some(prev) = self.last_frame_ms
            && first_ms < prev
        {
            let why = format!(
                "The fragment starts at {first_ms} ms, before the previous one ends at {prev} ms."
            );
            return self.drop_fragment(4004, &why, f.timecode).await;
        }
        self.metrics.incoming_fragments.add(1);
        self.metrics.incoming_bytes.add(f.bytes.len() as u64);
        self.metrics.incoming_frames.add(u64::from(f.frame_count));
        let received_at = std::time::Instant::now();
        let received = json!({
            "EventType": "RECEIVED",
            "FragmentTimecode": f.timecode,
            "FragmentNumber": record::number_text(n),
        });
        if !self.ack(received).await {
            return Err(Stop::Quiet);
        }
        let producer_ms = match self.timecodes {
            Timecodes::Absolute => timecode_ms,
            Timecodes::Relative { start_ms } => start_ms.saturating_add(timecode_ms),
        };
        let header_offset = self.header_offset().await?;
        let facts = FragmentFacts {
            number: n,
            header_offset,
            producer_ms,
            server_ms,
            duration_ms: duration_ms(first_ms, last_ms, f.frame_count),
            size: f.bytes.len() as u32,
            timecode: f.timecode,
        };
        let done = self.spawn_store(facts, f.bytes);
        self.pending.push_back(Pending {
            facts,
            timecode: f.timecode,
            done,
            received: received_at,
        });
        // Its number stays in flight in the index until it is stored.
        self.current = None;
        self.last_frame_ms = Some(last_ms);
        while self.pending.len() > STORES_IN_FLIGHT_MAX {
            let oldest = self.pending.front().expect("more than the bound");
            let result = answer(&oldest.done).await;
            self.finish_oldest(result).await?;
        }
        Ok(())
    }

    /// The oldest store's answer: the fragment indexed and acknowledged
    /// PERSISTED, or an ERROR ack (and the session ends).
    async fn finish_oldest(&mut self, result: StoreResult) -> Result<(), Stop> {
        let p = self.pending.pop_front().expect("a store was pending");
        let n = p.facts.number;
        let (offset, part_count) = match result {
            Ok(stored) => stored,
            Err((error_id, why)) => {
                self.media.index.lock().unwrap().abandon(n);
                self.media.changed();
                self.error_about(error_id, &why, Some(p.timecode), Some(n))
                    .await;
                return Err(Stop::Quiet);
            }
        };
        self.media.index.lock().unwrap().stored(Entry {
            facts: p.facts,
            offset,
            part_count,
        });
        self.media.changed();
        self.prune().await;
        // The stream's retention now (it may have changed during the upload).
        let retention = self
            .s
            .meta
            .state()
            .streams
            .get(&self.stream.name)
            .filter(|v| v.id == self.stream.id)
            .map(|v| v.retention_hours);
        match retention {
            None => {
                self.error_about(4008, "The stream was deleted.", Some(p.timecode), Some(n))
                    .await;
                return Err(Stop::Quiet);
            }
            // A stream that keeps no data gets no PERSISTED (as on AWS).
            Some(0) => return Ok(()),
            Some(_) => {}
        }
        self.metrics
            .persisted_ack_latency
            .observe_us(p.received.elapsed().as_micros() as u64);
        let persisted = json!({
            "EventType": "PERSISTED",
            "FragmentTimecode": p.timecode,
            "FragmentNumber": record::number_text(n),
        });
        self.ack(persisted).await.then_some(()).ok_or(Stop::Quiet)
    }

    /// Stores a fragment in a task of its own; its answer comes on the
    /// channel given back.
    fn spawn_store(&self, facts: FragmentFacts, cluster: Bytes) -> flume::Receiver<StoreResult> {
        let (tx, rx) = flume::bounded(1);
        let s = self.s.clone();
        let internal = self.stream.internal.clone();
        rt::spawn(async move {
            let _ = tx.send(store(&s.engine, &internal, &facts, &cluster).await);
        });
        rx
    }

    /// Where the session's header record is, writing it again first when
    /// the last copy is `HEADER_REPEAT_MS` old.
    async fn header_offset(&mut self) -> Result<u64, Stop> {
        let Some(h) = &self.header else {
            return Err(Stop::Quiet);
        };
        if rt::now_ms() - h.written_ms < HEADER_REPEAT_MS {
            return Ok(h.offset);
        }
        let record = h.record.clone();
        let offset = self.append(&[(record::HEADER_KEY, &record)]).await?;
        if let Some(h) = &mut self.header {
            h.offset = offset;
            h.written_ms = rt::now_ms();
        }
        Ok(offset)
    }

    /// Every `PRUNE_EVERY` fragments, forgets the ones retention removed.
    async fn prune(&mut self) {
        self.stored_since_prune += 1;
        if self.stored_since_prune < PRUNE_EVERY {
            return;
        }
        self.stored_since_prune = 0;
        crate::media::prune(&self.s.engine, &self.media, &self.stream.internal).await;
    }

    /// An ERROR for this fragment alone: it is not stored, the upload goes on.
    async fn drop_fragment(&mut self, error_id: u16, why: &str, timecode: u64) -> Result<(), Stop> {
        let sent = self.error(error_id, why, Some(timecode)).await;
        self.give_up();
        sent.then_some(()).ok_or(Stop::Quiet)
    }

    /// Appends one record; its offset.
    async fn append(&self, records: &[(&str, &[u8])]) -> Result<u64, Stop> {
        match self
            .s
            .engine
            .append_keyed(&self.stream.internal, 0, records)
            .await
        {
            Ok((_, appended)) => Ok(appended.base_offset),
            Err(e) => {
                let (id, why) = store_error(&e);
                self.error(id, &why, None).await;
                Err(Stop::Quiet)
            }
        }
    }
}

/// Stores a fragment's parts in `internal`, as few appends as the request
/// bounds allow; the offset of its first part and the part count.
async fn store(
    engine: &riffle_engine::Engine,
    internal: &str,
    facts: &FragmentFacts,
    cluster: &[u8],
) -> StoreResult {
    let limits = engine.limits_of(internal);
    // Each part's data is a slice of the cluster (its facts are its key).
    let parts = record::fragment_parts(facts, cluster.len(), limits.record_data_size_max as usize);
    let count = parts.len() as u16;
    let call_bytes_max = limits.request_size_max as usize;
    let call_records_max = limits.put_records_count_max as usize;
    let mut first = None;
    let mut call: Vec<(&str, &[u8])> = Vec::new();
    let mut call_bytes = 0;
    for (i, (key, range)) in parts.iter().enumerate() {
        call.push((key.as_str(), &cluster[range.clone()]));
        call_bytes += range.len() + key.len();
        let next_fits = parts.get(i + 1).is_some_and(|(k, r)| {
            call_bytes + r.len() + k.len() <= call_bytes_max && call.len() < call_records_max
        });
        if next_fits {
            continue;
        }
        let (_, appended) = engine
            .append_keyed(internal, 0, &call)
            .await
            .map_err(|e| store_error(&e))?;
        first.get_or_insert(appended.base_offset);
        call.clear();
        call_bytes = 0;
    }
    Ok((first.expect("at least one part"), count))
}

/// A store task's answer (a task that ended without one: 5001).
async fn answer(done: &flume::Receiver<StoreResult>) -> StoreResult {
    done.recv_async().await.unwrap_or_else(|_| {
        Err((
            5001,
            "The fragment's store ended without an answer.".to_string(),
        ))
    })
}

/// AWS's ErrorId for a failed append: 4008 when the stream is gone, 4500,
/// 4501, 4505 or 4506 when its KMS key refuses (access denied, disabled,
/// invalid state, not found), 5001 (failed to persist) otherwise.
fn store_error(e: &riffle_protocol::Error) -> (u16, String) {
    use riffle_protocol::ErrorCode;
    match e.code {
        ErrorCode::ResourceNotFound => (4008, "The stream was deleted.".to_string()),
        ErrorCode::KmsAccessDenied => (4500, e.message.clone()),
        ErrorCode::KmsDisabled => (4501, e.message.clone()),
        ErrorCode::KmsInvalidState => (4505, e.message.clone()),
        ErrorCode::KmsNotFound => (4506, e.message.clone()),
        _ => (
            5001,
            format!("The fragment could not be stored: {}", e.message),
        ),
    }
}

/// A fragment's length: from its first frame to its last, plus one frame's
/// share (the last frame lasts as long as the others, on average).
fn duration_ms(first_ms: i64, last_ms: i64, frame_count: u32) -> u32 {
    let span = (last_ms - first_ms).max(0);
    let one = if frame_count > 1 {
        span / i64::from(frame_count - 1)
    } else {
        0
    };
    u32::try_from(span + one).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_start_times_in_seconds() {
        assert_eq!(seconds_to_ms("1700000000.123"), Some(1_700_000_000_123));
        assert_eq!(seconds_to_ms("1700000000"), Some(1_700_000_000_000));
        for bad in ["", "abc", "-1", "NaN", "inf", "1e12"] {
            assert_eq!(seconds_to_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_fragment_lasts_its_frames_and_one_more() {
        // 25 frames a second: 0 .. 960 ms is one second.
        assert_eq!(duration_ms(0, 960, 25), 1000);
        assert_eq!(duration_ms(0, 0, 1), 0);
        assert_eq!(duration_ms(5, 3, 2), 0);
    }
}
