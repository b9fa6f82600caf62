//! The inference hook: a stream's image generation configuration (AWS's
//! `UpdateImageGenerationConfiguration` shape) makes images of its fragments
//! as they are stored and POSTs each to an HTTP endpoint (an inference
//! server), and its notification configuration (`UpdateNotificationConfiguration`)
//! names the Kinesis data stream where each endpoint answer is written as a
//! record, the way Rekognition Video stream processors deliver results.
//!
//! - `DestinationConfig.Uri` is the endpoint: an `http://` or `https://` URL
//!   (AWS delivers to `s3://` here; this server does not). Each image is a
//!   POST with the image as its body (`Content-Type: image/jpeg` or
//!   `image/png`) and `x-amz-kinesisvideo-*` headers naming the stream, the
//!   fragment and the times.
//! - `NotificationConfiguration.DestinationConfig.Uri` is a data stream's
//!   ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`; AWS takes an SNS
//!   topic). Each answer becomes one record, partition key the video
//!   stream's name, data a JSON object: the stream, fragment number,
//!   producer, server and image timestamps (ms), and the endpoint's JSON
//!   answer (`Result`) or why there is none (`Error`).
//!
//! One task a configured stream, on core 0, following the stream's index
//! from the newest fragment at its start (at most once: fragments stored
//! while the server was down or the configuration disabled are not
//! imaged). Images come from the same ffmpeg runs as GetImages; samples
//! are every `SamplingInterval` on the stream's timeline (by producer or
//! server timestamp), each from the fragment holding it; a gap between
//! fragments starts the samples again at the next fragment's start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::http::client::{self, HttpUrl, Peer};
use riffle_engine::rt;
use serde_json::{Value, json};

use crate::images::{self, Shape};
use crate::index::{Entry, TimeKind};
use crate::service::{Shared, invalid, refusal};
use crate::state::{VideoEvent, VideoStream};

/// AWS: images at most every 200 ms, at least every 20 s.
const SAMPLING_INTERVAL_MS_MIN: i64 = 200;
const SAMPLING_INTERVAL_MS_MAX: i64 = 20_000;
/// An endpoint answer taking longer is an error record.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);
/// A waiting generator looks at its configuration again at least this often.
const WAIT_MS: u64 = 1_000;
/// A generator further behind than this (by server time) skips to the
/// newest fragment: images are about now, not a backlog.
const LAG_MS_MAX: i64 = 30_000;
/// The configuration members kept (AWS's model; anything else is dropped).
const CONFIG_MEMBERS: &[&str] = &[
    "Status",
    "ImageSelectorType",
    "DestinationConfig",
    "SamplingInterval",
    "Format",
    "FormatConfig",
    "WidthPixels",
    "HeightPixels",
];
/// A data stream record's data at most (Kinesis's 1 MiB).
const RESULT_BYTES_MAX: usize = 1 << 20;

/// What a generator task does, read from the configurations.
struct Plan {
    uri: String,
    kind: TimeKind,
    interval_ms: i64,
    shape: Shape,
    /// The data stream answers go to (an enabled notification configuration).
    results: Option<String>,
}

fn plan(s: &Shared, v: &VideoStream) -> Option<Plan> {
    let c = v.image_generation.as_ref()?;
    if c["Status"] != "ENABLED" {
        return None;
    }
    let results = v
        .notification
        .as_ref()
        .filter(|n| n["Status"] == "ENABLED")
        .and_then(|n| n["DestinationConfig"]["Uri"].as_str())
        .and_then(|arn| data_stream_of(s, arn));
    // Either alone keeps the aspect ratio (AWS's model documentation).
    let size = match (c["WidthPixels"].as_i64(), c["HeightPixels"].as_i64()) {
        (Some(w), Some(h)) => Some((w, h)),
        (None, Some(h)) => Some((-2, h)),
        (Some(w), None) => Some((w, -2)),
        (None, None) => None,
    };
    let interval_ms = c["SamplingInterval"]
        .as_i64()
        .filter(|i| (SAMPLING_INTERVAL_MS_MIN..=SAMPLING_INTERVAL_MS_MAX).contains(i))?;
    Some(Plan {
        uri: c["DestinationConfig"]["Uri"].as_str()?.to_string(),
        kind: if c["ImageSelectorType"] == "PRODUCER_TIMESTAMP" {
            TimeKind::Producer
        } else {
            TimeKind::Server
        },
        interval_ms,
        shape: Shape {
            png: c["Format"] == "PNG",
            jpeg_quality: c["FormatConfig"]["JPEGQuality"]
                .as_str()
                .and_then(|q| q.parse().ok())
                .unwrap_or(80),
            size,
        },
        results,
    })
}

/// The data stream a Kinesis ARN of this server names.
fn data_stream_of(s: &Shared, arn: &str) -> Option<String> {
    let prefix = format!(
        "arn:aws:kinesis:{}:{}:stream/",
        s.config.region, s.config.account
    );
    let name = arn.strip_prefix(&prefix)?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

pub(crate) async fn update_image_generation(
    s: &Arc<Shared>,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    // Only the model's members are kept.
    let config = input.get("ImageGenerationConfiguration").map(|c| {
        let kept: serde_json::Map<String, Value> = CONFIG_MEMBERS
            .iter()
            .filter_map(|k| c.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Value::Object(kept)
    });
    if let Some(c) = &config {
        if v.retention_hours == 0 {
            return Err(Refusal::client(
                "NoDataRetentionException",
                format!("Stream {} keeps no data.", v.name),
            ));
        }
        let uri = c["DestinationConfig"]["Uri"].as_str().unwrap_or("");
        if HttpUrl::parse(uri).is_err() {
            return Err(invalid(format!(
                "DestinationConfig.Uri {uri} is not an http(s) URL (this server POSTs images to HTTP endpoints)."
            )));
        }
        let interval = c["SamplingInterval"].as_i64().unwrap_or(0);
        if !(SAMPLING_INTERVAL_MS_MIN..=SAMPLING_INTERVAL_MS_MAX).contains(&interval) {
            return Err(invalid(format!(
                "SamplingInterval must be {SAMPLING_INTERVAL_MS_MIN} to {SAMPLING_INTERVAL_MS_MAX} ms."
            )));
        }
        if let Some(q) = c["FormatConfig"]["JPEGQuality"].as_str()
            && !q.parse::<i64>().is_ok_and(|q| (1..=100).contains(&q))
        {
            return Err(invalid(format!("JPEGQuality {q} is not 1 to 100.")));
        }
    }
    s.meta
        .apply(VideoEvent::ImageGeneration {
            name: v.name.clone(),
            id: v.id,
            config,
        })
        .await
        .map_err(refusal)?;
    start_from_core(s, &v.name, v.id).await;
    Ok(json!({}))
}

pub(crate) fn describe_image_generation(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    Ok(match v.image_generation {
        Some(c) => json!({ "ImageGenerationConfiguration": c }),
        None => json!({}),
    })
}

pub(crate) async fn update_notification(
    s: &Arc<Shared>,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    let config = input.get("NotificationConfiguration").map(|c| {
        json!({
            "Status": c["Status"],
            "DestinationConfig": { "Uri": c["DestinationConfig"]["Uri"] },
        })
    });
    if let Some(c) = &config {
        let uri = c["DestinationConfig"]["Uri"].as_str().unwrap_or("");
        if data_stream_of(s, uri).is_none() {
            return Err(invalid(format!(
                "DestinationConfig.Uri {uri} is not a Kinesis data stream ARN of this server (where image results are written)."
            )));
        }
    }
    s.meta
        .apply(VideoEvent::Notification {
            name: v.name.clone(),
            id: v.id,
            config,
        })
        .await
        .map_err(refusal)?;
    // A running generator reads the notification at its next fragment.
    Ok(json!({}))
}

pub(crate) fn describe_notification(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    Ok(match v.notification {
        Some(c) => json!({ "NotificationConfiguration": c }),
        None => json!({}),
    })
}

/// The next generation of `name`'s generator (older ones end).
fn next_generation(s: &Shared, name: &str) -> u64 {
    let mut g = s.generators.lock().unwrap();
    let n = g.entry(name.to_string()).or_insert(0);
    *n += 1;
    *n
}

/// (Re)starts the generator of incarnation `id` of `name`: a task on core
/// 0 that ends when its configuration changes again, is disabled, or the
/// stream goes. Blocks: for the server's start, off the cores.
pub(crate) fn start(s: &Arc<Shared>, name: &str, id: u64) {
    let generation = next_generation(s, name);
    let (s2, name) = (s.clone(), name.to_string());
    let started = s.engine.run_on_core(0, move || {
        rt::spawn(async move { run(s2, name, id, generation).await })
    });
    if let Err(e) = started {
        tracing::warn!("cannot start an image generator: {e}");
    }
}

/// [`start`] from a task on a core.
async fn start_from_core(s: &Arc<Shared>, name: &str, id: u64) {
    let generation = next_generation(s, name);
    let (s2, name) = (s.clone(), name.to_string());
    let started = s
        .engine
        .run_on_core_async(0, move || {
            rt::spawn(async move { run(s2, name, id, generation).await })
        })
        .await;
    if let Err(e) = started {
        tracing::warn!("cannot start an image generator: {e}");
    }
}

async fn run(s: Arc<Shared>, name: String, id: u64, generation: u64) {
    let current = |s: &Shared| {
        let mine = s.generators.lock().unwrap().get(&name).copied() == Some(generation);
        let state = s.meta.state();
        let v = state.streams.get(&name).filter(|v| v.id == id).cloned();
        mine.then_some(v).flatten()
    };
    let Some(v) = current(&s) else { return };
    let media = s.media.index(&v.internal);
    let changes = media.watch();
    let tls = s.tls.clone();
    // From the newest fragment now on.
    let mut after = {
        let index = media.index.lock().unwrap();
        index
            .last()
            .map(|e| e.facts.number.min(index.settled_below().saturating_sub(1)))
    };
    // The next sample time on the stream's timeline.
    let mut next_sample: Option<i64> = None;
    loop {
        let Some(v) = current(&s) else { return };
        let Some(plan) = plan(&s, &v) else { return };
        let next = media.index.lock().unwrap().next_after(after).copied();
        let Some(entry) = next else {
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
        if rt::now_ms().saturating_sub(entry.facts.server_ms) > LAG_MS_MAX {
            // Too far behind: on after the newest fragment (skipped too).
            let index = media.index.lock().unwrap();
            after = index
                .newest(1, index.settled_below())
                .first()
                .map(|e| e.facts.number)
                .max(after);
            next_sample = None;
            continue;
        }
        let alive = || current(&s).is_some();
        next_sample = fragment(&s, &v, &plan, &entry, next_sample, &tls, &alive).await;
    }
}

/// The samples of one fragment (from `next`, the timeline's next sample
/// time, or its start): imaged, POSTed, their answers written. The next
/// sample time after it.
async fn fragment(
    s: &Shared,
    v: &VideoStream,
    plan: &Plan,
    e: &Entry,
    next: Option<i64>,
    tls: &Arc<rustls::ClientConfig>,
    alive: &dyn Fn() -> bool,
) -> Option<i64> {
    let start = e.time_ms(plan.kind);
    let end = start.saturating_add(i64::from(e.facts.duration_ms).max(1));
    let mut at = next_in(next, start, end, plan.interval_ms);
    if at >= end {
        return Some(at);
    }
    let playable = match images::fragment_mkv(s, &v.internal, e).await {
        Ok(p) => p,
        Err(why) => {
            tracing::debug!("video stream {}: image generator: {why}", v.name);
            return Some(end);
        }
    };
    while at < end {
        // A changed configuration (or a deleted stream) stops it here.
        if !alive() {
            return None;
        }
        let this = at;
        at = at.saturating_add(plan.interval_ms);
        let outcome = match playable.frame_at(this - start) {
            None => Err("the fragment has no video frame (track 1)".to_string()),
            Some(frame) => {
                let args = images::ffmpeg_args(&plan.shape, frame);
                match images::run_ffmpeg(args, playable.mkv.clone()).await {
                    Ok(image) => post(plan, v, e, this, image, tls).await,
                    Err(why) => Err(why),
                }
            }
        };
        let Some(results) = &plan.results else {
            continue;
        };
        let mut record = json!({
            "StreamName": v.name,
            "FragmentNumber": crate::record::number_text(e.facts.number),
            "ProducerTimestamp": e.facts.producer_ms,
            "ServerTimestamp": e.facts.server_ms,
            "ImageTimestamp": this,
        });
        match outcome {
            Ok(answer) => record["Result"] = answer,
            Err(why) => record["Error"] = json!(why),
        }
        let mut data = record.to_string();
        if data.len() > RESULT_BYTES_MAX {
            record.as_object_mut().map(|o| o.remove("Result"));
            record["Error"] = json!("The endpoint's answer is larger than a record (1 MiB).");
            data = record.to_string();
        }
        if let Err(err) = s
            .engine
            .put_record(results, &v.name, None, data.as_bytes())
            .await
        {
            tracing::warn!(
                "video stream {}: cannot write an image result to {results}: {err}",
                v.name
            );
        }
    }
    Some(at)
}

/// Where a fragment `[start, end)`'s samples begin, given the timeline's
/// next sample time `next`: there, unless it fell in a gap before the
/// fragment (then at its start) or lies more than an interval past it (the
/// producer's time went back: a new session; then at its start too).
fn next_in(next: Option<i64>, start: i64, end: i64, interval_ms: i64) -> i64 {
    match next {
        Some(n) if n >= start && n <= end.saturating_add(interval_ms) => n,
        _ => start,
    }
}

/// POSTs one image; the endpoint's JSON answer.
async fn post(
    plan: &Plan,
    v: &VideoStream,
    e: &Entry,
    at: i64,
    image: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Value, String> {
    let url = HttpUrl::parse(&plan.uri)?;
    let content_type = if plan.shape.png {
        "image/png"
    } else {
        "image/jpeg"
    };
    let request = hyper::Request::post(&url.path)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::CONTENT_LENGTH, image.len())
        .header("x-amz-kinesisvideo-stream-name", &v.name)
        .header(
            "x-amz-kinesisvideo-fragment-number",
            crate::record::number_text(e.facts.number),
        )
        .header("x-amz-kinesisvideo-producer-timestamp", e.facts.producer_ms)
        .header("x-amz-kinesisvideo-server-timestamp", e.facts.server_ms)
        .header("x-amz-kinesisvideo-image-timestamp", at)
        .body(Full::new(Bytes::from(image)))
        .map_err(|err| err.to_string())?;
    let peer = Peer::resolve(&url, tls).await?;
    let (status, body) = client::send(peer, request, ENDPOINT_TIMEOUT).await?;
    if !status.is_success() {
        return Err(format!(
            "the endpoint answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(256)])
        ));
    }
    serde_json::from_slice(&body).map_err(|err| format!("the endpoint's answer is not JSON: {err}"))
}

#[cfg(test)]
mod tests {
    use super::next_in;

    #[test]
    fn samples_follow_the_timeline_across_fragments() {
        // The first fragment: from its start.
        assert_eq!(next_in(None, 1000, 2000, 400), 1000);
        // The next one goes on where the last left off (1000, 1400, 1800 → 2200).
        assert_eq!(next_in(Some(2200), 2000, 3000, 400), 2200);
        // A fragment shorter than the interval is passed over.
        assert_eq!(next_in(Some(2200), 2000, 2100, 400), 2200);
        // A gap: start again at the fragment.
        assert_eq!(next_in(Some(2200), 5000, 6000, 400), 5000);
        // Time went back (a new session from an earlier start).
        assert_eq!(next_in(Some(9000), 1000, 2000, 400), 1000);
    }
}
