//! GetImages: still images from a stream's stored fragments, one per
//! `SamplingInterval` from StartTimestamp to EndTimestamp (by producer or
//! server timestamp), as JPEG or PNG, base64 in the answer, 25 a page.
//!
//! Decoding needs a codec: each image is made by the `ffmpeg` program (on
//! the server's PATH) as a subprocess, fed the fragment as MKV (its
//! session header and its cluster) on stdin, seeking to the sample's
//! offset in the fragment and writing one frame. At most `FFMPEG_PLACES`
//! run at once on the server, each on a thread of its own (the cores only
//! wait for their answers), killed after `FFMPEG_TIMEOUT`. A time no stored
//! fragment holds is `NO_MEDIA`; a frame ffmpeg cannot make (no ffmpeg,
//! audio only, a broken fragment, the timeout) is `MEDIA_ERROR`, as AWS
//! reports them per image.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use serde_json::{Value, json};

use crate::index::{Entry, TimeKind};
use crate::service::{Shared, invalid};

/// AWS: the range is at most 300 s.
const RANGE_MS_MAX: i64 = 300_000;
/// AWS: at most 5 images a second.
const SAMPLING_INTERVAL_MS_MIN: i64 = 200;
/// The interval when none is given (AWS's image generation default).
const SAMPLING_INTERVAL_MS_DEFAULT: i64 = 3_000;
/// AWS: pages of at most 25 images (a larger MaxResults still pages by 25).
const PAGE_MAX: usize = 25;
/// AWS's default JPEG quality.
const JPEG_QUALITY_DEFAULT: i64 = 80;
/// ffmpeg processes running at once on the server.
static FFMPEG_PLACES: crate::places::Places = crate::places::Places::new(2);
/// An ffmpeg run taking longer is killed (the image is MEDIA_ERROR).
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(10);
/// A page's images are made within this; the ones left after it are
/// MEDIA_ERROR (a page never holds the server's ffmpeg places for long).
const PAGE_BUDGET: Duration = Duration::from_secs(30);
/// ffmpeg's error output kept for the log.
const STDERR_KEPT_MAX: u64 = 4096;
/// AWS: an image is at most 6 MiB (base64).
const IMAGE_BASE64_MAX: usize = 6 << 20;

/// What one image is asked to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub png: bool,
    pub jpeg_quality: i64,
    /// (width, height); width -2 keeps the aspect ratio.
    pub size: Option<(i64, i64)>,
}

/// The sample times of `[start, end]` every `interval`, from sample
/// `from` on, at most `page`: the times and whether more follow.
pub(crate) fn samples(
    start_ms: i64,
    end_ms: i64,
    interval_ms: i64,
    from: usize,
    page: usize,
) -> (Vec<i64>, bool) {
    let count = ((end_ms - start_ms) / interval_ms) as usize + 1;
    let to = count.min(from.saturating_add(page));
    let times = (from..to)
        .map(|i| start_ms + i as i64 * interval_ms)
        .collect();
    (times, to < count)
}

/// ffmpeg's arguments for one image at `offset_ms` into its input.
pub(crate) fn ffmpeg_args(shape: &Shape, offset_ms: i64) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["-i".into(), "pipe:0".into()]);
    // Seeking after the input: exact (decodes from the cluster's key frame).
    args.extend([
        "-ss".into(),
        format!("{:.3}", offset_ms.max(0) as f64 / 1000.0),
    ]);
    args.extend(["-frames:v".into(), "1".into(), "-an".into()]);
    if let Some((w, h)) = shape.size {
        args.extend(["-vf".into(), format!("scale={w}:{h}")]);
    }
    if shape.png {
        args.extend([
            "-c:v".into(),
            "png".into(),
            "-f".into(),
            "image2pipe".into(),
        ]);
    } else {
        // ffmpeg's mjpeg scale: 2 (best) to 31; AWS's JPEGQuality 1 to 100.
        let q = 2 + (100 - shape.jpeg_quality.clamp(1, 100)) * 29 / 99;
        args.extend(["-c:v".into(), "mjpeg".into(), "-q:v".into(), q.to_string()]);
        args.extend(["-f".into(), "image2pipe".into()]);
    }
    args.push("pipe:1".into());
    args
}

/// Runs ffmpeg on `input` on a thread of its own, which holds the place
/// until ffmpeg has exited; its stdout, or why not.
pub(crate) async fn run_ffmpeg(args: Vec<String>, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let place = FFMPEG_PLACES.take().await;
    let (tx, rx) = flume::bounded(1);
    std::thread::spawn(move || {
        let _place = place;
        let _ = tx.send(ffmpeg_blocking(&args, &input));
    });
    rx.recv_async()
        .await
        .unwrap_or_else(|_| Err("ffmpeg's thread ended without an answer".into()))
}

fn ffmpeg_blocking(args: &[String], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    // Writing and reading on threads of their own, so neither pipe fills.
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout
            .by_ref()
            .take(IMAGE_BASE64_MAX as u64)
            .read_to_end(&mut out);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        out
    });
    // Its error output drained as it comes (kept in part), so it never fills.
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut kept = String::new();
        let _ = stderr
            .by_ref()
            .take(STDERR_KEPT_MAX)
            .read_to_string(&mut kept);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        kept
    });
    let deadline = Instant::now() + FFMPEG_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("ffmpeg took too long".into());
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    if !status.success() || out.is_empty() {
        return Err(format!("ffmpeg failed ({status}): {}", err.trim()));
    }
    Ok(out)
}

/// The fragment holding `ms` by `kind` (its start to its start plus its
/// duration), if one is stored.
fn holding(entries: &[Entry], kind: TimeKind, ms: i64) -> Option<&Entry> {
    entries.iter().find(|e| {
        let start = e.time_ms(kind);
        start <= ms && ms < start + i64::from(e.facts.duration_ms).max(1)
    })
}

pub(crate) async fn get_images(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let stream = s.named(input)?;
    if stream.retention_hours == 0 {
        return Err(Refusal::client(
            "NoDataRetentionException",
            format!("Stream {} keeps no data.", stream.name),
        ));
    }
    let kind = match input.required_str("ImageSelectorType")? {
        "PRODUCER_TIMESTAMP" => TimeKind::Producer,
        _ => TimeKind::Server,
    };
    let start = input.timestamp_ms("StartTimestamp")?.unwrap_or(0);
    let end = input.timestamp_ms("EndTimestamp")?.unwrap_or(0);
    if end < start || end.saturating_sub(start) > RANGE_MS_MAX {
        return Err(invalid(format!(
            "EndTimestamp must be from StartTimestamp to {} s after it.",
            RANGE_MS_MAX / 1000
        )));
    }
    let interval = input
        .int("SamplingInterval")?
        .unwrap_or(SAMPLING_INTERVAL_MS_DEFAULT);
    if interval < SAMPLING_INTERVAL_MS_MIN {
        return Err(invalid(format!(
            "SamplingInterval must be at least {SAMPLING_INTERVAL_MS_MIN} ms."
        )));
    }
    let png = input.required_str("Format")? == "PNG";
    let jpeg_quality = match input.object("FormatConfig")? {
        Some(c) => match c.str("JPEGQuality")? {
            Some(q) => q
                .parse::<i64>()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or_else(|| invalid(format!("JPEGQuality {q} is not 1 to 100.")))?,
            None => JPEG_QUALITY_DEFAULT,
        },
        None => JPEG_QUALITY_DEFAULT,
    };
    let size = match (input.int("WidthPixels")?, input.int("HeightPixels")?) {
        (Some(w), Some(h)) => Some((w, h)),
        (None, Some(h)) => Some((-2, h)),
        (Some(_), None) => {
            return Err(Refusal::validation(
                "WidthPixels needs HeightPixels (or give HeightPixels alone).",
            ));
        }
        (None, None) => None,
    };
    let page = input
        .int("MaxResults")?
        .map_or(PAGE_MAX, |n| (n as usize).min(PAGE_MAX));
    // The token is the index of the page's first sample.
    let from = crate::page::next(input, |t| t.parse::<usize>().ok())?.unwrap_or(0);
    let (times, more) = samples(start, end, interval, from, page);
    let shape = Shape {
        png,
        jpeg_quality,
        size,
    };
    let media = s.media.index(&stream.internal);
    crate::media::prune(&s.engine, &media, &stream.internal).await;
    let entries: Vec<Entry> = {
        let index = media.index.lock().unwrap();
        let first = times
            .first()
            .copied()
            .unwrap_or(start)
            .saturating_sub(10_001);
        let last = times.last().copied().unwrap_or(end);
        index.in_range(kind, first, last, None).copied().collect()
    };
    let mut images = Vec::with_capacity(times.len());
    // The last fragment read, kept for the next samples in it.
    let mut cached: Option<(u128, Playable)> = None;
    let deadline = Instant::now() + PAGE_BUDGET;
    for t in times {
        let stamp = t as f64 / 1000.0;
        let Some(e) = holding(&entries, kind, t) else {
            images.push(json!({ "TimeStamp": stamp, "Error": "NO_MEDIA" }));
            continue;
        };
        if Instant::now() >= deadline {
            images.push(json!({ "TimeStamp": stamp, "Error": "MEDIA_ERROR" }));
            continue;
        }
        let playable = match cached.take() {
            Some((n, p)) if n == e.facts.number => Ok(p),
            _ => fragment_mkv(s, &stream.internal, e).await,
        };
        let image = match playable {
            Ok(p) => {
                let frame = p.frame_at(t - e.time_ms(kind));
                let run = match frame {
                    Some(at) => run_ffmpeg(ffmpeg_args(&shape, at), p.mkv.clone()).await,
                    None => Err("the fragment has no video frame (track 1)".to_string()),
                };
                cached = Some((e.facts.number, p));
                run
            }
            Err(why) => Err(why),
        };
        let encoded = image.map(|i| base64::engine::general_purpose::STANDARD.encode(i));
        match encoded {
            Ok(b64) if b64.len() <= IMAGE_BASE64_MAX => {
                images.push(json!({ "TimeStamp": stamp, "ImageContent": b64 }))
            }
            Ok(_) => images.push(json!({ "TimeStamp": stamp, "Error": "MEDIA_ERROR" })),
            Err(why) => {
                tracing::debug!("video stream {}: GetImages at {t}: {why}", stream.name);
                images.push(json!({ "TimeStamp": stamp, "Error": "MEDIA_ERROR" }));
            }
        }
    }
    let mut out = json!({ "Images": images });
    if more {
        out["NextToken"] = json!(crate::page::token(&(from + page).to_string()));
    }
    Ok(out)
}

/// A stored fragment as a playable MKV (its session header and cluster)
/// and when its video frames are, in ms from its first frame.
pub(crate) struct Playable {
    pub(crate) mkv: Vec<u8>,
    frames_ms: Vec<i64>,
}

impl Playable {
    /// The frame to show at `offset_ms` into the fragment: the last one at
    /// or before it (the first, for an offset before it).
    pub(crate) fn frame_at(&self, offset_ms: i64) -> Option<i64> {
        let before = self.frames_ms.iter().rev().find(|f| **f <= offset_ms);
        before.or(self.frames_ms.first()).copied()
    }
}

/// The track images are made from: KVS's playback layout puts video first.
const IMAGE_TRACK: u64 = 1;

pub(crate) async fn fragment_mkv(
    s: &Shared,
    internal: &str,
    e: &Entry,
) -> Result<Playable, String> {
    let (scale_ns, header) = crate::read::header(&s.engine, internal, e.facts.header_offset)
        .await
        .map_err(|err| err.message)?;
    let cluster = crate::read::cluster(&s.engine, internal, e)
        .await
        .map_err(|err| err.message)?;
    let blocks = crate::mkv::blocks(&cluster).map_err(|err| err.to_string())?;
    let mut ticks: Vec<i64> = blocks
        .iter()
        .filter(|b| b.track == IMAGE_TRACK)
        .map(|b| b.time)
        .collect();
    ticks.sort_unstable();
    let first = ticks.first().copied().unwrap_or(0);
    let frames_ms = ticks
        .iter()
        .map(|t| (i128::from(t - first) * i128::from(scale_ns) / 1_000_000) as i64)
        .collect();
    let mut mkv = Vec::with_capacity(header.len() + cluster.len());
    mkv.extend_from_slice(&header);
    mkv.extend_from_slice(&cluster);
    Ok(Playable { mkv, frames_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_page_through_the_range() {
        // 0 .. 1000 every 200: 6 samples, in pages of 4.
        assert_eq!(samples(0, 1000, 200, 0, 4), (vec![0, 200, 400, 600], true));
        assert_eq!(samples(0, 1000, 200, 4, 4), (vec![800, 1000], false));
        // A range shorter than the interval: the start alone.
        assert_eq!(samples(500, 600, 3000, 0, 25), (vec![500], false));
        assert_eq!(samples(0, 1000, 200, 9, 4), (vec![], false));
    }

    #[test]
    fn a_sample_shows_the_last_frame_at_or_before_it() {
        let p = Playable {
            mkv: Vec::new(),
            frames_ms: vec![0, 40, 80, 960],
        };
        assert_eq!(p.frame_at(0), Some(0));
        assert_eq!(p.frame_at(79), Some(40));
        assert_eq!(p.frame_at(1000), Some(960));
        assert_eq!(p.frame_at(-5), Some(0));
        let empty = Playable {
            mkv: Vec::new(),
            frames_ms: vec![],
        };
        assert_eq!(empty.frame_at(10), None);
    }

    #[test]
    fn ffmpeg_is_asked_for_one_frame_of_the_shape() {
        let jpeg = Shape {
            png: false,
            jpeg_quality: 100,
            size: Some((320, 240)),
        };
        let args = ffmpeg_args(&jpeg, 1500).join(" ");
        assert!(args.contains("-i pipe:0 -ss 1.500 -frames:v 1"), "{args}");
        assert!(args.contains("-vf scale=320:240"), "{args}");
        assert!(args.contains("-c:v mjpeg -q:v 2"), "{args}");
        let worst = Shape {
            jpeg_quality: 1,
            size: None,
            ..jpeg.clone()
        };
        assert!(ffmpeg_args(&worst, 0).join(" ").contains("-q:v 31"));
        let png = Shape {
            png: true,
            jpeg_quality: 80,
            size: Some((-2, 100)),
        };
        let args = ffmpeg_args(&png, 0).join(" ");
        assert!(
            args.contains("-c:v png") && args.contains("scale=-2:100"),
            "{args}"
        );
    }
}
