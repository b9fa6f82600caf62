//! The `lambda` scenario: Lambda event-source mappings delivering a stream to
//! the bench's own HTTP function (docs/lambda-design.md §7, issue 13).
//!
//! The function is a small HTTP/1.1 server on threads of its own (one per
//! connection, keep-alive honoured; the server's invoker opens one
//! connection per invocation). It parses each event with serde_json,
//! base64-decodes every record's data, and keeps per shard which offsets
//! (from the sequence numbers) arrived, so every record is checked: count,
//! gaps and duplicates. It answers `{}`.
//!
//! Two figures, `--lambda`:
//! - `throughput`: a `--shards` stream (the figure: 8) is pre-loaded over the
//!   native protocol with `--records` records of `--record-size` bytes (the
//!   figure: 100), as the consume scenario writes its backlog; then a mapping
//!   with BatchSize 1000, MaximumBatchingWindowInSeconds 1 and TRIM_HORIZON
//!   delivers it. Reported: records/s from the first invocation's arrival to
//!   the last's, the batch sizes (min, median, max), the invocations, and
//!   the server's CPU over the delivery.
//! - `latency`: a `--shards` stream (4) and a mapping with BatchSize 100,
//!   window 0 and LATEST; the producers of the end-to-end scenario put
//!   `--rate` records/s (default 10,000), paced open loop at one PutRecords
//!   of `rate / 1000` records per millisecond over all producers, for
//!   `--duration` s after `--warmup` s. Each record carries its intended send
//!   time (ns since the run's epoch, 8 bytes little-endian: the function runs
//!   in this process and reads the same monotonic clock), and the function
//!   records `receive time − send time` for every record sent in the measured
//!   window, taken when the event's body has been read.
//!
//! The mapping is driven over the server's HTTP API (REST-JSON, unsigned:
//! the bench's own server runs without `--auth`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;
use riffle_client::{Client, ClientConfig};
use serde::Serialize;
use serde_json::{Value, json};

use crate::lambda_function::{Delivery, Function};
use crate::load::{ConsumeMode, Plan, Shared};
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
use crate::report::Percentiles;
use crate::server::{self, ServerUnderTest};
use crate::{Args, Phase};

/// Which figure the scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A pre-loaded stream delivered in batches of 1000: records/s.
    Throughput,
    /// Paced puts delivered with window 0: put→invoke latency.
    Latency,
}

const ESM_PATH: &str = "/2015-03-31/event-source-mappings";
/// How long delivery may make no progress before the run gives up.
const STALL: Duration = Duration::from_secs(30);

/// Runs the scenario and prints its result.
pub fn run(args: &Args, machine: Machine, durability: &str) -> anyhow::Result<()> {
    if args.server.is_some() {
        bail!(
            "lambda needs the bench's own server (--server gives one address; the scenario uses both the native protocol and HTTP)"
        );
    }
    let mode = args.lambda;
    if mode == Mode::Latency && args.record_size < 8 {
        bail!(
            "--record-size must be at least 8 bytes for lambda latency (the send time rides in the record)"
        );
    }
    if mode == Mode::Throughput && args.records == 0 {
        bail!("--records must be at least 1");
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
    let stream = format!("lambda-{}", std::process::id());
    let admin = Client::connect(server.addr, ClientConfig::default())
        .with_context(|| format!("cannot reach the server at {}", server.addr))?;
    admin
        .create_stream(&stream, args.shards)
        .with_context(|| format!("CreateStream {stream}"))?;
    let shared = Shared::new();
    let function = Function::start(shared.clone(), mode == Mode::Latency)?;
    let result = match mode {
        Mode::Throughput => throughput(args, &server, http, &admin, &stream, &shared, &function),
        Mode::Latency => latency(args, &server, http, &admin, &stream, &shared, &function),
    };
    let _ = admin.delete_stream(&stream);
    let mut out = result?;
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
    shards: u32,
    record_size: usize,
    batch_size: u32,
    window_s: u32,
    starting_position: &'static str,
    durability: String,
    /// Records in the stream (tips summed), and what reached the function.
    expected: u64,
    delivered: Delivery,
    /// Throughput: first to last invocation (s), and records/s over it.
    span_s: f64,
    records_per_s: f64,
    /// Throughput: from CreateEventSourceMapping to the last invocation.
    from_create_s: f64,
    /// Latency: the offered rate and records per PutRecords.
    rate: Option<u64>,
    records_per_put: Option<usize>,
    measured_s: f64,
    /// Latency: put→invoke over the measured window, µs.
    put_to_invoke_us: Option<Percentiles>,
    put_ack_us: Option<Percentiles>,
    put_errors: u64,
    server_cpu_s: Option<f64>,
    bench_cpu_s: f64,
    machine: Option<Machine>,
}

impl Outcome {
    fn table(&self) -> String {
        let (o, d) = (self, &self.delivered);
        let mut s = format!(
            "lambda {}: {} shards, {} B records, BatchSize {}, window {} s, {}, durability {}\n",
            o.mode,
            o.shards,
            o.record_size,
            o.batch_size,
            o.window_s,
            o.starting_position,
            o.durability
        );
        if let Some(m) = &o.machine {
            s += &format!("  machine: {}\n", m.describe());
        }
        let ms = |us: u64| format!("{:.2}", us as f64 / 1e3);
        let over = match o.mode {
            "throughput" => {
                s += &format!(
                    "  {:.0} records/s from the first to the last invocation ({:.2} s); {:.2} s from CreateEventSourceMapping\n",
                    o.records_per_s, o.span_s, o.from_create_s
                );
                o.from_create_s
            }
            _ => {
                s += &format!(
                    "  offered {} records/s ({} per PutRecords, one PutRecords per ms), {:.1} s measured, {} put errors\n",
                    o.rate.unwrap_or(0),
                    o.records_per_put.unwrap_or(0),
                    o.measured_s,
                    o.put_errors
                );
                if let Some(p) = &o.put_to_invoke_us {
                    let (p50, p99, p999, max) = (ms(p.p50), ms(p.p99), ms(p.p999), ms(p.max));
                    s += &format!(
                        "  put→invoke ms ({} records): p50 {p50}  p99 {p99}  p99.9 {p999}  max {max}\n",
                        p.count
                    );
                }
                if let Some(p) = &o.put_ack_us {
                    let (p50, p99, max) = (ms(p.p50), ms(p.p99), ms(p.max));
                    s += &format!("  put→ack ms: p50 {p50}  p99 {p99}  max {max}\n");
                }
                o.measured_s
            }
        };
        s += &format!(
            "  {} invocations, batch sizes min {} median {} max {} ({} of exactly {})\n",
            d.invocations, d.batch_min, d.batch_median, d.batch_max, d.batches_full, o.batch_size
        );
        let problem = d.first_problem.as_deref().map(|p| format!(" (first: {p})"));
        s += &format!(
            "  records: {} in the stream, {} distinct delivered, {} missing, {} duplicates, {} beyond the tips, {} bad events{}\n",
            o.expected,
            d.distinct,
            d.missing,
            d.duplicates,
            d.beyond,
            d.bad_events,
            problem.unwrap_or_default()
        );
        let server = o.server_cpu_s.map_or("n/a".into(), |c| format!("{c:.2} s"));
        let who = if o.mode == "latency" {
            "function and producers"
        } else {
            "function"
        };
        s += &format!(
            "  CPU: server {server}, bench ({who}) {:.2} s, over {over:.2} s\n",
            o.bench_cpu_s
        );
        s
    }
}

fn throughput(
    args: &Args,
    server: &ServerUnderTest,
    http: SocketAddr,
    admin: &Client,
    stream: &str,
    shared: &Arc<Shared>,
    function: &Function,
) -> anyhow::Result<Outcome> {
    let fill = Plan {
        inflight: args.inflight.max(4),
        records_per_producer: Some(args.records.div_ceil(args.producers.max(1) as u64)),
        ..plan(args, server, stream)
    };
    if !args.quiet {
        eprintln!(
            "loading {} records of {} B into {} shards ...",
            args.records, args.record_size, args.shards
        );
    }
    let load = Shared::new();
    let (tally, _) = crate::phase(
        args,
        &load,
        crate::plans(args, &fill, 0),
        Phase::UntilDone,
        None,
        0,
    )?;
    if tally.errors > 0 {
        bail!(
            "{} errors while loading; first: {}",
            tally.errors,
            tally.first_error.unwrap_or_default()
        );
    }
    let tips = tips(admin, stream, args.shards)?;
    let expected: u64 = tips.iter().sum();
    let arn = stream_arn(http, stream)?;
    let (cpu0, server0) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let created = shared.now_ns();
    let uuid = create_mapping(
        http,
        &json!({
            "FunctionName": function.url(),
            "EventSourceArn": arn,
            "BatchSize": 1000,
            "MaximumBatchingWindowInSeconds": 1,
            "StartingPosition": "TRIM_HORIZON",
        }),
    )?;
    let waited = wait_delivered(args, function, expected);
    let (cpu1, server1) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let _ = rest(http, "DELETE", &format!("{ESM_PATH}/{uuid}"), None);
    waited?;
    let c = function.handler.collector.lock().unwrap();
    let (first, last) = (c.first_ns.unwrap_or(created), c.last_ns);
    let span_s = last.saturating_sub(first) as f64 / 1e9;
    Ok(Outcome {
        scenario: "lambda",
        mode: "throughput",
        shards: args.shards,
        record_size: args.record_size,
        batch_size: 1000,
        window_s: 1,
        starting_position: "TRIM_HORIZON",
        expected,
        delivered: c.delivery(&tips, 1000),
        span_s,
        records_per_s: c.records as f64 / span_s.max(1e-9),
        from_create_s: last.saturating_sub(created) as f64 / 1e9,
        server_cpu_s: server0.zip(server1).map(|(a, b)| b - a),
        bench_cpu_s: cpu1 - cpu0,
        ..Outcome::default()
    })
}

fn latency(
    args: &Args,
    server: &ServerUnderTest,
    http: SocketAddr,
    admin: &Client,
    stream: &str,
    shared: &Arc<Shared>,
    function: &Function,
) -> anyhow::Result<Outcome> {
    let rate = args.rate.unwrap_or(10_000);
    // One PutRecords per millisecond over all producers.
    let per_put = (rate / 1000).clamp(1, 500) as usize;
    let producers = args.producers.max(1);
    let arn = stream_arn(http, stream)?;
    let uuid = create_mapping(
        http,
        &json!({
            "FunctionName": function.url(),
            "EventSourceArn": arn,
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 0,
            "StartingPosition": "LATEST",
        }),
    )?;
    let plan = Plan {
        batch: per_put,
        request_rate: Some(rate as f64 / per_put as f64 / producers as f64),
        stamp: true,
        ..plan(args, server, stream)
    };
    let measured = crate::phase(
        args,
        shared,
        crate::plans(args, &plan, 0),
        Phase::Timed,
        server.pid,
        0,
    );
    let waited = measured.and_then(|m| {
        let produced = shared.produced.load(Ordering::Relaxed);
        wait_delivered(args, function, produced).map(|()| m)
    });
    let _ = rest(http, "DELETE", &format!("{ESM_PATH}/{uuid}"), None);
    let (tally, cpu) = waited?;
    let tips = tips(admin, stream, args.shards)?;
    let c = function.handler.collector.lock().unwrap();
    Ok(Outcome {
        scenario: "lambda",
        mode: "latency",
        shards: args.shards,
        record_size: args.record_size,
        batch_size: 100,
        window_s: 0,
        starting_position: "LATEST",
        expected: tips.iter().sum(),
        delivered: c.delivery(&tips, 100),
        rate: Some(rate),
        records_per_put: Some(per_put),
        measured_s: args.duration,
        put_to_invoke_us: Percentiles::of(&c.latency),
        put_ack_us: Percentiles::of(&tally.ack),
        put_errors: tally.errors,
        server_cpu_s: cpu.server_s,
        bench_cpu_s: cpu.client_s,
        ..Outcome::default()
    })
}

/// Producers (the load module's) writing `stream`, no consumers.
fn plan(args: &Args, server: &ServerUnderTest, stream: &str) -> Plan {
    Plan {
        addr: server.addr,
        streams: vec![stream.to_string()],
        record_size: args.record_size,
        batch: args.batch,
        keys_per_producer: args.keys,
        inflight: 1,
        request_rate: None,
        stamp: false,
        producers: Vec::new(),
        consumers: Vec::new(),
        consume: ConsumeMode::CatchUp,
        until: HashMap::new(),
        producers_total: args.producers,
        http: None,
        records_per_producer: None,
    }
}

/// Each shard's next offset (its record count: the stream is new).
fn tips(admin: &Client, stream: &str, shards: u32) -> anyhow::Result<Vec<u64>> {
    (0..shards).map(|s| crate::tip(admin, stream, s)).collect()
}

/// Waits until the function has `expected` distinct records, printing
/// progress each second; fails after [`STALL`] without progress.
fn wait_delivered(args: &Args, function: &Function, expected: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut last_count, mut last_change) = (0, Instant::now());
    let mut tick = Instant::now();
    loop {
        let got = function.handler.distinct.load(Ordering::Relaxed);
        if got >= expected {
            return Ok(());
        }
        if got != last_count {
            last_count = got;
            last_change = Instant::now();
        } else if last_change.elapsed() >= STALL {
            bail!(
                "delivery stalled: {got} of {expected} records reached the function, none in the last {} s",
                STALL.as_secs()
            );
        }
        if !args.quiet && tick.elapsed() >= Duration::from_secs(1) {
            tick = Instant::now();
            eprintln!(
                "[{:5.1} s] delivered {got} of {expected} records",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stream's ARN, from the Kinesis HTTP API.
fn stream_arn(http: SocketAddr, stream: &str) -> anyhow::Result<String> {
    let d = crate::http_target::admin_call(
        http,
        "DescribeStreamSummary",
        json!({"StreamName": stream}),
    )?;
    d["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .map(str::to_owned)
        .context("DescribeStreamSummary gave no StreamARN")
}

/// CreateEventSourceMapping, then waits until the mapping is Enabled;
/// returns its UUID.
fn create_mapping(http: SocketAddr, input: &Value) -> anyhow::Result<String> {
    let made = rest(http, "POST", ESM_PATH, Some(input))?;
    let uuid = made["UUID"]
        .as_str()
        .with_context(|| format!("CreateEventSourceMapping answered without a UUID: {made}"))?
        .to_string();
    for _ in 0..600 {
        let m = rest(http, "GET", &format!("{ESM_PATH}/{uuid}"), None)?;
        if m["State"] == "Enabled" {
            return Ok(uuid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("event-source mapping {uuid} did not become Enabled within 30 s")
}

/// One REST-JSON call to the Lambda API: the JSON answer, or the error.
fn rest(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut conn = TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)?;
    let split =
        (answer.windows(4).position(|w| w == b"\r\n\r\n")).context("a truncated HTTP answer")?;
    let status: u16 = std::str::from_utf8(&answer[..split])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1)?.parse().ok())
        .context("no status line")?;
    let v: Value = serde_json::from_slice(&answer[split + 4..]).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        bail!("{method} {path}: HTTP {status}: {v}");
    }
    Ok(v)
}
