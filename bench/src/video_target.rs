//! The `video` scenario: Kinesis Video Streams' PutMedia and GetMedia
//! (docs/video.md, issue 15), over plain HTTP/1.1 on blocking threads (a
//! camera is a thread that sleeps between fragments).
//!
//! The media is synthetic but well-formed Matroska: an H.264 track (the
//! server copies frames, it never decodes them), one cluster per
//! `--fragment-ms`, 25 frames a second of `--bitrate-kbps`, the first a key
//! frame. Cameras use ABSOLUTE timecodes from the run's start, so a
//! fragment's producer timestamp names it.
//!
//! Two figures, `--video`:
//! - `cameras`: `--cameras` streams (the figure: 200), each with a PutMedia
//!   connection sending a fragment every `--fragment-ms` at real-time pace,
//!   and a GetMedia reader (StartSelector NOW) started before it. Reported:
//!   PERSISTED ack latency (from the fragment's last byte written to its
//!   ack), GetMedia lag (from that same moment to the chunk's last byte
//!   read), fragments sent, persisted and read in the measured window, and
//!   the server's CPU.
//! - `ingest`: one PutMedia connection sending 4 MiB fragments as fast as it
//!   can for `--duration`: MB/s of PERSISTED fragments.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;

use crate::Args;
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
use crate::report::{Percentiles, histogram};
use crate::server::{self, ServerUnderTest};

/// Which figure the scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Many paced cameras, each read live: ack latency and GetMedia lag.
    Cameras,
    /// One upload as fast as it goes: MB/s.
    Ingest,
}

/// Frames a second of the synthetic video.
const FPS: u64 = 25;
/// Fragment size of the ingest figure.
const INGEST_FRAGMENT_BYTES: usize = 4 << 20;

/// Runs the scenario and prints its result.
pub fn run(args: &Args, machine: Machine, durability: &str) -> anyhow::Result<()> {
    if args.server.is_some() {
        bail!("video needs the bench's own server");
    }
    if args.cameras == 0 || args.fragment_ms == 0 || args.fragment_ms > 10_000 {
        bail!("--cameras must be at least 1 and --fragment-ms 1 to 10000");
    }
    let server = ServerUnderTest::start(
        &server::riffle_bin(args.riffle_bin.clone()),
        &args.data_dir,
        durability,
        args.server_cores,
        true,
        &[],
    )?;
    let http = server.http.context("the server serves no HTTP")?;
    let mut out = match args.video {
        Mode::Cameras => cameras(args, &server, http)?,
        Mode::Ingest => ingest(args, &server, http)?,
    };
    out.durability = durability.into();
    out.machine = Some(machine);
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", out.table());
    }
    Ok(())
}

/// What a run found.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    scenario: &'static str,
    mode: &'static str,
    durability: String,
    cameras: usize,
    bitrate_kbps: u64,
    fragment_ms: u64,
    measured_s: f64,
    fragments_sent: u64,
    fragments_persisted: u64,
    chunks_read: u64,
    persisted_ack_us: Option<Percentiles>,
    get_media_lag_us: Option<Percentiles>,
    /// ingest: MB/s (10^6 bytes) of fragments acknowledged PERSISTED.
    persisted_mb_per_s: f64,
    errors: u64,
    server_cpu_s: Option<f64>,
    client_cpu_s: f64,
    machine: Option<Machine>,
}

impl Outcome {
    fn table(&self) -> String {
        let p = |p: &Option<Percentiles>| match p {
            Some(p) => format!(
                "p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms  ({} samples)",
                p.p50 as f64 / 1000.0,
                p.p99 as f64 / 1000.0,
                p.p999 as f64 / 1000.0,
                p.max as f64 / 1000.0,
                p.count
            ),
            None => "-".into(),
        };
        let mut s = String::new();
        s += &format!(
            "video {}: {} camera(s) at {} kbps, a fragment per {} ms, durability {}, {:.1} s measured\n",
            self.mode,
            self.cameras,
            self.bitrate_kbps,
            self.fragment_ms,
            self.durability,
            self.measured_s
        );
        s += &format!(
            "  fragments sent {}  persisted {}  chunks read {}  errors {}\n",
            self.fragments_sent, self.fragments_persisted, self.chunks_read, self.errors
        );
        s += &format!("  PERSISTED ack   {}\n", p(&self.persisted_ack_us));
        s += &format!("  GetMedia lag    {}\n", p(&self.get_media_lag_us));
        if self.mode == "ingest" {
            s += &format!("  persisted       {:.1} MB/s\n", self.persisted_mb_per_s);
        }
        s += &format!(
            "  cpu: server {} s, bench {:.2} s\n",
            self.server_cpu_s
                .map_or("-".to_string(), |c| format!("{c:.2}")),
            self.client_cpu_s
        );
        if let Some(m) = &self.machine {
            s += &format!("  machine: {}\n", m.describe());
        }
        s
    }
}

// Synthetic Matroska.

fn element(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    let id = id.to_be_bytes();
    let skip = id.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&id[skip..]);
    let mut size = (payload.len() as u64).to_be_bytes();
    size[0] = 0x01;
    out.extend_from_slice(&size);
    out.extend_from_slice(payload);
}

fn uint(out: &mut Vec<u8>, id: u32, value: u64) {
    element(out, id, &value.to_be_bytes());
}

/// EBML header, a Segment of unknown size, Info (1 ms ticks), Tracks (one
/// H.264 track with an AVCDecoderConfigurationRecord).
fn mkv_header() -> Vec<u8> {
    let mut ebml = Vec::new();
    uint(&mut ebml, 0x4286, 1);
    uint(&mut ebml, 0x42F7, 1);
    uint(&mut ebml, 0x42F2, 4);
    uint(&mut ebml, 0x42F3, 8);
    element(&mut ebml, 0x4282, b"matroska");
    uint(&mut ebml, 0x4287, 4);
    uint(&mut ebml, 0x4285, 2);
    let mut out = Vec::new();
    element(&mut out, 0x1A45_DFA3, &ebml);
    out.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    let mut info = Vec::new();
    uint(&mut info, 0x2A_D7B1, 1_000_000);
    element(&mut info, 0x4D80, b"riffle-bench");
    element(&mut out, 0x1549_A966, &info);
    let mut video = Vec::new();
    uint(&mut video, 0xB0, 640);
    uint(&mut video, 0xBA, 480);
    let mut track = Vec::new();
    uint(&mut track, 0xD7, 1);
    uint(&mut track, 0x73C5, 1);
    uint(&mut track, 0x83, 1);
    element(&mut track, 0x86, b"V_MPEG4/ISO/AVC");
    // avcC: version 1, High@3.0, 4-byte lengths, one tiny SPS and PPS.
    element(
        &mut track,
        0x63A2,
        &[
            1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1E, 1, 0, 2, 0x68, 0xEE,
        ],
    );
    element(&mut track, 0xE0, &video);
    let mut tracks = Vec::new();
    element(&mut tracks, 0xAE, &track);
    element(&mut out, 0x1654_AE6B, &tracks);
    out
}

/// One cluster at `timecode_ms`: `frames` SimpleBlocks of `frame_bytes`,
/// the first a key frame.
fn mkv_cluster(timecode_ms: u64, frames: u64, frame_ms: u64, frame_bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(frames as usize * (frame_bytes + 16) + 16);
    uint(&mut body, 0xE7, timecode_ms);
    let payload = vec![0x5Au8; frame_bytes];
    for i in 0..frames {
        let mut block = Vec::with_capacity(frame_bytes + 4);
        block.push(0x81); // track 1
        block.extend_from_slice(&((i * frame_ms) as i16).to_be_bytes());
        block.push(if i == 0 { 0x80 } else { 0 });
        block.extend_from_slice(&payload);
        element(&mut body, 0xA3, &block);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    element(&mut out, 0x1F43_B675, &body);
    out
}

fn now_wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An HTTP/1.1 body in chunked encoding, read as it arrives.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF closing the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= got;
        Ok(got)
    }
}

/// Sends a request; reads the answer's head; gives its status and a
/// reader of its body (chunked or not).
fn request(
    http: SocketAddr,
    head: &str,
    body: Option<&[u8]>,
) -> anyhow::Result<(u16, TcpStream, Box<dyn Read + Send>)> {
    let mut conn = TcpStream::connect(http).with_context(|| format!("connect {http}"))?;
    conn.set_nodelay(true)?;
    conn.write_all(head.as_bytes())?;
    if let Some(b) = body {
        conn.write_all(b)?;
    }
    let mut reader = BufReader::with_capacity(1 << 16, conn.try_clone()?);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
        {
            chunked = true;
        }
    }
    let body: Box<dyn Read + Send> = if chunked {
        Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        })
    } else {
        Box::new(reader)
    };
    Ok((status, conn, body))
}

fn create_stream(http: SocketAddr, name: &str) -> anyhow::Result<()> {
    let body = json!({"StreamName": name, "DataRetentionInHours": 1}).to_string();
    let head = format!(
        "POST /createStream HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, _, mut answer) = request(http, &head, Some(body.as_bytes()))?;
    if status != 200 {
        let mut text = String::new();
        let _ = answer.read_to_string(&mut text);
        bail!("CreateStream {name}: {status} {text}");
    }
    Ok(())
}

/// What every thread of a run shares.
struct Run {
    start: Instant,
    /// The measured window, as times since `start`.
    measure_from: Duration,
    measure_to: Duration,
    stop: AtomicBool,
    sent: AtomicU64,
    persisted: AtomicU64,
    chunks: AtomicU64,
    errors: AtomicU64,
    acks: Mutex<Histogram<u64>>,
    lags: Mutex<Histogram<u64>>,
}

impl Run {
    fn measured(&self, at: Instant) -> bool {
        let t = at.duration_since(self.start);
        t >= self.measure_from && t < self.measure_to
    }
}

/// One camera's fragments: when each was fully written (by index).
type Sent = Arc<Mutex<Vec<Option<Instant>>>>;

fn mark_sent(sent: &Sent, index: usize, at: Instant) {
    let mut s = sent.lock().unwrap();
    if s.len() <= index {
        s.resize(index + 1, None);
    }
    s[index] = Some(at);
}

fn sent_at(sent: &Sent, index: usize) -> Option<Instant> {
    sent.lock().unwrap().get(index).copied().flatten()
}

/// A PutMedia connection: the header, then a cluster from `next` until it
/// gives none; the acks are read by a thread of their own.
fn camera(
    http: SocketAddr,
    stream: String,
    run: Arc<Run>,
    sent: Sent,
    base_ms: u64,
    fragment_ms: u64,
    mut next: impl FnMut(usize, &mut Vec<u8>) -> Option<Instant>,
) -> anyhow::Result<()> {
    let head = format!(
        "POST /putMedia HTTP/1.1\r\nHost: {http}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nx-amzn-stream-name: {stream}\r\nx-amzn-fragment-timecode-type: ABSOLUTE\r\n\r\n"
    );
    let mut conn = TcpStream::connect(http)?;
    conn.set_nodelay(true)?;
    conn.write_all(head.as_bytes())?;
    let header = mkv_header();
    write_chunk(&mut conn, &header)?;
    let acks = {
        let conn = conn.try_clone()?;
        let run = run.clone();
        let sent = sent.clone();
        std::thread::spawn(move || read_acks(conn, run, sent, base_ms, fragment_ms))
    };
    let mut i = 0;
    let mut cluster = Vec::new();
    while let Some(due) = next(i, &mut cluster) {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if run.stop.load(Ordering::Relaxed) {
            break;
        }
        write_chunk(&mut conn, &cluster)?;
        let done = Instant::now();
        mark_sent(&sent, i, done);
        if run.measured(done) {
            run.sent.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
    }
    conn.write_all(b"0\r\n\r\n")?;
    let _ = acks.join();
    Ok(())
}

fn write_chunk(conn: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    conn.write_all(data)?;
    conn.write_all(b"\r\n")
}

/// Reads a PutMedia answer: each PERSISTED ack's latency from its
/// fragment's last byte written.
fn read_acks(conn: TcpStream, run: Arc<Run>, sent: Sent, base_ms: u64, fragment_ms: u64) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    // The status line and headers, then the chunked body's lines: the
    // chunk-size lines are not JSON and are skipped.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = line.trim();
        if !text.starts_with('{') {
            continue;
        }
        let now = Instant::now();
        let Ok(ack) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        match ack["EventType"].as_str() {
            Some("PERSISTED") => {
                let tc = ack["FragmentTimecode"].as_u64().unwrap_or(0);
                let index = (tc.saturating_sub(base_ms) / fragment_ms) as usize;
                if let Some(at) = sent_at(&sent, index)
                    && run.measured(at)
                {
                    run.persisted.fetch_add(1, Ordering::Relaxed);
                    let us = now.saturating_duration_since(at).as_micros() as u64;
                    let _ = run.acks.lock().unwrap().record(us.max(1));
                }
            }
            Some("ERROR") => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("riffle-bench: PutMedia error ack: {text}");
            }
            _ => {}
        }
    }
}

/// A GetMedia reader (StartSelector NOW): each chunk's lag from its
/// fragment's last byte written to the chunk's last tag read.
fn reader(
    http: SocketAddr,
    stream: String,
    run: Arc<Run>,
    sent: Sent,
    base_ms: u64,
    fragment_ms: u64,
) {
    let body =
        json!({"StreamName": stream, "StartSelector": {"StartSelectorType": "NOW"}}).to_string();
    let head = format!(
        "POST /getMedia HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let Ok((200, _conn, mut answer)) = request(http, &head, Some(body.as_bytes())) else {
        run.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("riffle-bench: GetMedia on {stream} refused");
        return;
    };
    const PRODUCER: &[u8] = b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP";
    const TOKEN: &[u8] = b"AWS_KINESISVIDEO_CONTINUATION_TOKEN";
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut scanned = 0;
    let mut current: Option<usize> = None;
    let mut piece = vec![0u8; 1 << 16];
    loop {
        let n = match answer.read(&mut piece) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&piece[..n]);
        // Tag values follow their names: TagString's ID (2 bytes) and an
        // 8-byte size, then the text.
        loop {
            let producer = find(&buf[scanned..], PRODUCER).map(|i| (i + scanned, true));
            let token = find(&buf[scanned..], TOKEN).map(|i| (i + scanned, false));
            let Some((at, is_producer)) = [producer, token].into_iter().flatten().min() else {
                // Nothing more here; a tag name split across reads starts
                // within the last name's length.
                scanned = scanned.max(buf.len().saturating_sub(TOKEN.len()));
                break;
            };
            let name_len = if is_producer {
                PRODUCER.len()
            } else {
                TOKEN.len()
            };
            let value_at = at + name_len + 10;
            let Some(size) = buf.get(value_at - 1).map(|b| *b as usize) else {
                break;
            };
            let Some(value) = buf.get(value_at..value_at + size) else {
                break;
            };
            if is_producer {
                let text = String::from_utf8_lossy(value);
                let ms = text.split_once('.').and_then(|(s, f)| {
                    Some(s.parse::<u64>().ok()? * 1000 + f.parse::<u64>().ok()?)
                });
                current = ms.map(|ms| (ms.saturating_sub(base_ms) / fragment_ms) as usize);
            } else if let Some(index) = current.take() {
                let now = Instant::now();
                if let Some(at) = sent_at(&sent, index)
                    && run.measured(at)
                {
                    run.chunks.fetch_add(1, Ordering::Relaxed);
                    let us = now.saturating_duration_since(at).as_micros() as u64;
                    let _ = run.lags.lock().unwrap().record(us.max(1));
                }
            }
            scanned = value_at + size;
        }
        // Keep only what a split tag may still need.
        if scanned > (1 << 20) {
            buf.drain(..scanned);
            scanned = 0;
        }
    }
}

/// Where `needle` (not empty) starts in `hay`: candidates by its first byte.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = hay.get(from..)?.iter().position(|b| *b == first) {
        let at = from + i;
        if hay.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn new_run(args: &Args) -> Arc<Run> {
    let warmup = Duration::from_secs_f64(args.warmup);
    Arc::new(Run {
        start: Instant::now(),
        measure_from: warmup,
        measure_to: warmup + Duration::from_secs_f64(args.duration),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        persisted: AtomicU64::new(0),
        chunks: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        acks: Mutex::new(histogram()),
        lags: Mutex::new(histogram()),
    })
}

fn cameras(args: &Args, server: &ServerUnderTest, http: SocketAddr) -> anyhow::Result<Outcome> {
    let streams: Vec<String> = (0..args.cameras)
        .map(|i| format!("cam-{}-{i}", std::process::id()))
        .collect();
    for s in &streams {
        create_stream(http, s)?;
    }
    let fragment_ms = args.fragment_ms;
    let frames = (FPS * fragment_ms / 1000).max(1);
    let frame_ms = fragment_ms / frames;
    let frame_bytes = (args.bitrate_kbps * 1000 / 8 * fragment_ms / 1000 / frames) as usize;
    let base_ms = now_wall_ms();
    let run = new_run(args);
    let end = run.measure_to + Duration::from_millis(fragment_ms);
    let cpu0 = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let mut threads = Vec::new();
    for (c, stream) in streams.iter().enumerate() {
        let sent: Sent = Arc::default();
        {
            let (run, sent, stream) = (run.clone(), sent.clone(), stream.clone());
            threads.push(std::thread::spawn(move || {
                reader(http, stream, run, sent, base_ms, fragment_ms)
            }));
        }
        let (run, stream) = (run.clone(), stream.clone());
        // Cameras start spread over one fragment's time, as real ones would.
        let offset = Duration::from_millis(fragment_ms * c as u64 / args.cameras as u64);
        threads.push(std::thread::spawn(move || {
            let start = run.start + offset;
            let next = |i: usize, cluster: &mut Vec<u8>| {
                let due = start + Duration::from_millis(fragment_ms * (i as u64 + 1));
                (due.duration_since(run.start) < end).then(|| {
                    let tc = base_ms + fragment_ms * i as u64;
                    *cluster = mkv_cluster(tc, frames, frame_ms, frame_bytes);
                    due
                })
            };
            let r = run.clone();
            if let Err(e) = camera(http, stream, r, sent, base_ms, fragment_ms, next) {
                run.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("riffle-bench: camera: {e:#}");
            }
        }));
    }
    std::thread::sleep(end + Duration::from_millis(fragment_ms * 2));
    run.stop.store(true, Ordering::Relaxed);
    let cpu1 = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    drop(threads);
    Ok(outcome(args, &run, "cameras", cpu0, cpu1))
}

fn ingest(args: &Args, server: &ServerUnderTest, http: SocketAddr) -> anyhow::Result<Outcome> {
    let stream = format!("ingest-{}", std::process::id());
    create_stream(http, &stream)?;
    let frames = 25u64;
    let cluster_bytes =
        |tc: u64| mkv_cluster(tc, frames, 40, INGEST_FRAGMENT_BYTES / frames as usize);
    let template = cluster_bytes(0);
    let run = new_run(args);
    let cpu0 = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let sent: Sent = Arc::default();
    let fragment_ms = 1000;
    let r = run.clone();
    let next = move |i: usize, cluster: &mut Vec<u8>| {
        (r.start.elapsed() < r.measure_to).then(|| {
            // The same bytes but for the Timecode (a 1 s fragment each),
            // written in place: the sender spends its time sending.
            if cluster.is_empty() {
                cluster.extend_from_slice(&template);
            }
            // Cluster head (12 bytes), Timecode's ID and size (9): its value.
            cluster[21..29].copy_from_slice(&(i as u64 * fragment_ms).to_be_bytes());
            Instant::now()
        })
    };
    camera(http, stream, run.clone(), sent, 0, fragment_ms, next)?;
    let cpu1 = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let mut out = outcome(args, &run, "ingest", cpu0, cpu1);
    out.persisted_mb_per_s =
        (out.fragments_persisted * INGEST_FRAGMENT_BYTES as u64) as f64 / 1e6 / args.duration;
    out.cameras = 1;
    out.bitrate_kbps = 0;
    out.fragment_ms = fragment_ms;
    Ok(out)
}

fn outcome(
    args: &Args,
    run: &Run,
    mode: &'static str,
    cpu0: (f64, Option<f64>),
    cpu1: (f64, Option<f64>),
) -> Outcome {
    Outcome {
        scenario: "video",
        mode,
        cameras: args.cameras,
        bitrate_kbps: args.bitrate_kbps,
        fragment_ms: args.fragment_ms,
        measured_s: args.duration,
        fragments_sent: run.sent.load(Ordering::Relaxed),
        fragments_persisted: run.persisted.load(Ordering::Relaxed),
        chunks_read: run.chunks.load(Ordering::Relaxed),
        persisted_ack_us: Percentiles::of(&run.acks.lock().unwrap()),
        get_media_lag_us: Percentiles::of(&run.lags.lock().unwrap()),
        errors: run.errors.load(Ordering::Relaxed),
        server_cpu_s: cpu1.1.zip(cpu0.1).map(|(b, a)| b - a),
        client_cpu_s: cpu1.0 - cpu0.0,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_its_frames_and_timecode() {
        let c = mkv_cluster(7_000, 3, 40, 10);
        // Cluster ID, 8-byte size, Timecode element (1 + 8 + 8 bytes), then
        // three SimpleBlocks of 1 + 8 + 4 + 10 bytes.
        assert_eq!(&c[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        assert_eq!(c.len(), 12 + 17 + 3 * 23);
        assert_eq!(&c[12..13], &[0xE7]);
        assert_eq!(&c[21..29], &7_000u64.to_be_bytes());
        // The second block: track 1, +40 ms, not a key frame.
        let second = 12 + 17 + 23;
        assert_eq!(&c[second + 9..second + 13], &[0x81, 0, 40, 0]);
        assert!(mkv_header().starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
    }

    #[test]
    fn find_sees_a_needle_anywhere_and_not_a_cut_one() {
        assert_eq!(find(b"xxAWS_Kyy", b"AWS_K"), Some(2));
        assert_eq!(find(b"AAWS_K", b"AWS_K"), Some(1));
        assert_eq!(find(b"AWS_K", b"AWS_K"), Some(0));
        assert_eq!(find(b"xxAWS_", b"AWS_K"), None);
        assert_eq!(find(b"", b"AWS_K"), None);
    }
}
