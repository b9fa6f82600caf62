//! GetClip: a non-fragmented MP4 of a time range (by producer or server
//! timestamp), from its first fragment on, at most 200 fragments or 100 MB
//! of them, as AWS serves it; built from the stored fragments by `mp4`
//! without re-encoding. The clip stops early where a producer session
//! with other tracks begins (an MP4 has one set of tracks).

use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::http::HttpBody;
use riffle_engine::http::service::whole;

use crate::index::{Entry, TimeKind};
use crate::service::{Shared, invalid};

/// AWS: a clip holds at most 200 fragments.
const CLIP_FRAGMENTS_MAX: usize = 200;
/// AWS: a clip holds at most 100 MB of media.
const CLIP_BYTES_MAX: u64 = 100 * 1000 * 1000;
/// Clips made at once on the server (each holds up to some 200 MB while
/// it is made); more wait.
static CLIP_PLACES: crate::places::Places = crate::places::Places::new(2);

pub(crate) async fn get_clip(s: &Shared, input: Input<'_>) -> Response<HttpBody> {
    let _place = CLIP_PLACES.take().await;
    let named = input.str("StreamName").ok().flatten().map(str::to_string);
    let made = clip(s, input).await;
    if let Some(name) = named.filter(|n| s.meta.state().streams.contains_key(n)) {
        let m = s.metrics.of(&name);
        m.get_clip_requests.add(1);
        if let Ok(mp4) = &made {
            m.get_clip_bytes.add(mp4.len() as u64);
        }
    }
    match made {
        Ok(mp4) => whole(
            Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "video/mp4")
                .body(bytes::Bytes::from(mp4))
                .expect("a valid response"),
        ),
        Err(r) => whole(r.to_rest_response()),
    }
}

async fn clip(s: &Shared, input: Input<'_>) -> Result<Vec<u8>, Refusal> {
    let stream = s.named(input)?;
    if stream.retention_hours == 0 {
        return Err(Refusal::client(
            "NoDataRetentionException",
            format!("Stream {} keeps no data.", stream.name),
        ));
    }
    let selector = input
        .object("ClipFragmentSelector")?
        .ok_or_else(|| invalid("ClipFragmentSelector is required."))?;
    let kind = match selector.required_str("FragmentSelectorType")? {
        "PRODUCER_TIMESTAMP" => TimeKind::Producer,
        _ => TimeKind::Server,
    };
    let range = selector
        .object("TimestampRange")?
        .ok_or_else(|| invalid("TimestampRange is required."))?;
    let start = range.timestamp_ms("StartTimestamp")?.unwrap_or(0);
    let end = range.timestamp_ms("EndTimestamp")?.unwrap_or(0);
    if end < start {
        return Err(invalid("EndTimestamp must not be before StartTimestamp."));
    }
    let media = s.media.index(&stream.internal);
    crate::media::prune(&s.engine, &media, &stream.internal).await;
    let entries: Vec<Entry> = {
        let index = media.index.lock().unwrap();
        let settled = index.settled_below();
        let mut bytes = 0u64;
        index
            .in_range(kind, start, end, None)
            .take_while(|e| e.facts.number < settled)
            .take(CLIP_FRAGMENTS_MAX)
            .take_while(|e| {
                bytes += u64::from(e.facts.size);
                bytes <= CLIP_BYTES_MAX
            })
            .copied()
            .collect()
    };
    if entries.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!(
                "No fragments of stream {} are in the requested range.",
                stream.name
            ),
        ));
    }
    let mut tracks = Vec::new();
    let mut scale = 0;
    let mut blocks = Vec::new();
    for e in &entries {
        let (scale_ns, t, cluster) = crate::playback::fragment_of(s, &stream.internal, e).await?;
        if tracks.is_empty() {
            tracks = t;
            scale = scale_ns;
        } else if t != tracks || scale_ns != scale {
            break;
        }
        blocks.extend(crate::playback::blocks_at_producer_time(
            e, scale_ns, &cluster,
        )?);
    }
    crate::mp4::whole_mp4(&tracks, &blocks, scale).map_err(|e| match e.aws_exception() {
        Some(kind) => Refusal::client(kind, e.to_string()),
        None => Refusal::client("InvalidMediaFrameException", e.to_string()),
    })
}
