//! GetMedia (`POST /getMedia`, boto3 `kinesis-video-media`): the stream's
//! fragments from a starting point, as MKV chunks (chunk.rs) in fragment
//! number order, on an answer that stays open and follows new fragments
//! as they are stored. StartSelector: NOW (after the newest stored
//! fragment), EARLIEST, FRAGMENT_NUMBER (after that number),
//! SERVER_TIMESTAMP / PRODUCER_TIMESTAMP (the fragment holding that time,
//! or the first after it), CONTINUATION_TOKEN (after the fragment whose
//! chunk carried it). At most `READERS_MAX` readers a stream
//! (ConnectionLimitExceededException). The answer ends when the client
//! goes, the stream is deleted, or no fragment came for `IDLE_CLOSE_MS`
//! (resume with the last continuation token).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::http::HttpBody;
use riffle_engine::http::service::{streamed, whole};
use riffle_engine::rt;

use crate::chunk;
use crate::index::{Entry, TimeKind};
use crate::media::SharedIndex;
use crate::record;
use crate::service::{Shared, invalid};
use crate::state::VideoStream;

/// The answer ends after this long without a new fragment.
const IDLE_CLOSE_MS: i64 = 30_000;
/// A waiting reader looks at the index again at least this often (the
/// stream may have been deleted).
const WAIT_MS: u64 = 1_000;
/// Chunks queued for the client.
const CHUNKS_QUEUED_MAX: usize = 2;
/// A chunk the client does not make room for within this long ends the
/// answer (and frees its reader place).
const SEND_WAIT_MS_MAX: u64 = 30_000;

/// Where a reader starts: after this number (`None`: from the first).
fn start(media: &SharedIndex, selector: Input<'_>) -> Result<Option<u128>, Refusal> {
    let number = |member: &str| -> Result<u128, Refusal> {
        let text = selector.required_str(member)?;
        record::parse_number(text).ok_or_else(|| {
            invalid(format!(
                "{member} {text} is not a fragment number of this stream."
            ))
        })
    };
    let index = media.index.lock().unwrap();
    // "After the newest" never passes a number still being received.
    let settled = index.settled_below();
    let newest = || {
        index
            .last()
            .map(|e| e.facts.number.min(settled.saturating_sub(1)))
    };
    Ok(match selector.required_str("StartSelectorType")? {
        "EARLIEST" => None,
        "NOW" => newest(),
        "FRAGMENT_NUMBER" => Some(number("AfterFragmentNumber")?),
        "CONTINUATION_TOKEN" => Some(number("ContinuationToken")?),
        kind => {
            let kind = if kind == "SERVER_TIMESTAMP" {
                TimeKind::Server
            } else {
                TimeKind::Producer
            };
            let Some(ms) = selector.timestamp_ms("StartTimestamp")? else {
                return Err(invalid(
                    "StartTimestamp is required for this StartSelectorType.",
                ));
            };
            match index.at_time(kind, ms) {
                // Just before that fragment (numbers are never 0).
                Some(e) => Some(e.facts.number - 1),
                // Nothing that late yet: what comes next.
                None => newest(),
            }
        }
    })
}

pub(crate) async fn get_media(
    s: &Arc<Shared>,
    call: &riffle_engine::http::Call,
) -> Response<HttpBody> {
    let input = match crate::service::input_of(
        riffle_aws::model::kinesis_video_media(),
        "GetMedia",
        call,
    ) {
        Ok(m) => m,
        Err(r) => return whole(r.to_rest_response()),
    };
    let input = Input(&input);
    let opened = (|| {
        let stream = s.named(input)?;
        let media = s.media.index(&stream.internal);
        let selector = input
            .object("StartSelector")?
            .ok_or_else(|| invalid("StartSelector is required."))?;
        let after = start(&media, selector)?;
        Ok::<_, Refusal>((stream, media, after))
    })();
    let (stream, media, after) = match opened {
        Ok(o) => o,
        Err(r) => return whole(r.to_rest_response()),
    };
    let kind = crate::media::ReaderKind::Media;
    let Some(place) = media.reader(kind) else {
        return whole(
            Refusal::client(
                "ConnectionLimitExceededException",
                format!(
                    "Stream {} already has {} GetMedia connections.",
                    stream.name,
                    kind.max()
                ),
            )
            .to_rest_response(),
        );
    };
    let (tx, resp) = streamed(StatusCode::OK, "video/webm", CHUNKS_QUEUED_MAX);
    let s = s.clone();
    rt::spawn(async move {
        let _place = place;
        let metrics = s.metrics.of(&stream.name);
        metrics.get_media_requests.add(1);
        let mut reader = Reader {
            s,
            stream,
            media,
            header: None,
            metrics,
        };
        reader.run(after, tx).await;
    });
    resp
}

struct Reader {
    s: Arc<Shared>,
    stream: VideoStream,
    media: SharedIndex,
    /// The last session header read: its record's offset, TimecodeScale
    /// and bytes (a session's fragments share one).
    header: Option<(u64, u64, Bytes)>,
    /// Its stream's metrics.
    metrics: Arc<crate::metrics::StreamMetrics>,
}

impl Reader {
    async fn run(
        &mut self,
        mut after: Option<u128>,
        tx: riffle_engine::http::service::StreamSender,
    ) {
        let changes = self.media.watch();
        let mut last_sent_ms = rt::now_ms();
        loop {
            let next = self.media.index.lock().unwrap().next_after(after).copied();
            let Some(entry) = next else {
                if rt::now_ms() - last_sent_ms >= IDLE_CLOSE_MS
                    || !self.stream_exists()
                    || tx.is_closed()
                {
                    return;
                }
                futures_lite::future::or(
                    async {
                        let _ = changes.recv_async().await;
                    },
                    rt::sleep(Duration::from_millis(WAIT_MS)),
                )
                .await;
                continue;
            };
            after = Some(entry.facts.number);
            let chunk = match self.chunk(&entry).await {
                Ok(c) => c,
                Err(e) if e.code == riffle_protocol::ErrorCode::ResourceNotFound => {
                    // Retention removed it (or its header) since it was
                    // indexed: on to the next.
                    crate::media::prune(&self.s.engine, &self.media, &self.stream.internal).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("video stream {}: GetMedia: {e}", self.stream.name);
                    // The client is told why the answer ends (best effort).
                    let _ = futures_lite::future::or(
                        tx.send(Bytes::from(crate::chunk::error_tags(&e))),
                        async {
                            rt::sleep(Duration::from_millis(SEND_WAIT_MS_MAX)).await;
                            false
                        },
                    )
                    .await;
                    return;
                }
            };
            // A client that does not read holds its place for long at most.
            let size = chunk.len() as u64;
            let sent = futures_lite::future::or(tx.send(Bytes::from(chunk)), async {
                rt::sleep(Duration::from_millis(SEND_WAIT_MS_MAX)).await;
                false
            })
            .await;
            if !sent {
                return;
            }
            self.metrics.outgoing_fragments.add(1);
            self.metrics.outgoing_bytes.add(size);
            last_sent_ms = rt::now_ms();
        }
    }

    fn stream_exists(&self) -> bool {
        self.s
            .meta
            .state()
            .streams
            .get(&self.stream.name)
            .is_some_and(|v| v.id == self.stream.id)
    }

    async fn chunk(&mut self, e: &Entry) -> Result<Vec<u8>, riffle_protocol::Error> {
        let engine = &self.s.engine;
        let internal = &self.stream.internal;
        let (scale_ns, header) = match &self.header {
            Some((at, scale_ns, h)) if *at == e.facts.header_offset => (*scale_ns, h.clone()),
            _ => {
                let (scale_ns, h) =
                    crate::read::header(engine, internal, e.facts.header_offset).await?;
                self.header = Some((e.facts.header_offset, scale_ns, h.clone()));
                (scale_ns, h)
            }
        };
        let cluster = crate::read::cluster(engine, internal, e).await?;
        Ok(compose(e, scale_ns, &header, &cluster, rt::now_ms()))
    }
}

/// One chunk: header, the fragment's tags, its cluster at its absolute
/// (producer) time, the tags for following.
pub(crate) fn compose(
    e: &Entry,
    scale_ns: u64,
    header: &[u8],
    stored: &[u8],
    now_ms: i64,
) -> Vec<u8> {
    let number = record::number_text(e.facts.number);
    let ticks = (i128::from(e.facts.producer_ms) * 1_000_000 / i128::from(scale_ns.max(1))) as u64;
    let cluster = crate::mkv::with_timecode(stored, ticks);
    let mut out = Vec::with_capacity(header.len() + stored.len() + 512);
    out.extend_from_slice(header);
    out.extend_from_slice(&chunk::tags(&[
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &number),
        (
            "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            &chunk::seconds_text(e.facts.server_ms),
        ),
        (
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            &chunk::seconds_text(e.facts.producer_ms),
        ),
    ]));
    // The stored cluster is always one PutMedia wrote; should it not
    // read, it goes out as stored.
    out.extend_from_slice(cluster.as_deref().unwrap_or(stored));
    out.extend_from_slice(&chunk::tags(&[
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            &(now_ms - e.facts.server_ms).max(0).to_string(),
        ),
        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", &number),
    ]));
    out
}
