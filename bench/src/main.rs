//! `riffle-bench`: the load generator. Starts a `riffle server` in a temporary
//! data directory (or drives `--server ADDR`), creates the streams, runs one
//! scenario on client executor threads, prints a progress line each second, then
//! a table (or, with `--json`, one JSON object) with throughput, latency
//! percentiles, CPU time of client and server, and the machine.
//!
//! Modules: `load` (producer and consumer tasks), `report` (histograms, table,
//! JSON), `server` (the server under test), `machine` (machine facts, CPU time),
//! `http_target` (Kinesis over HTTP), `firehose_target` (the firehose scenario),
//! `s3_target` (s3-put: an S3 server's own ceiling for Firehose's uploads),
//! `kpl_target` (the aggregating producer), `lambda_target` (event-source
//! mappings delivering to the bench's own function), `analytics_target` (a
//! Kinesis Data Analytics application draining a backlog of bids),
//! `video_target` (Kinesis Video cameras into PutMedia, read by GetMedia).

mod analytics_target;
mod firehose_store;
mod firehose_target;
mod http_target;
mod kpl_target;
mod lambda_function;
mod lambda_target;
mod load;
mod machine;
mod report;
mod s3_client;
mod s3_target;
mod server;
mod video_target;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use riffle_client::{Client, ClientConfig, StartPosition};

use load::{ConsumeMode, Plan, Shared, Start, Tally};
use machine::Machine;
use report::{Cpu, Percentiles, Report};
use server::ServerUnderTest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Producers only: ingest throughput and produce-to-ack latency.
    Produce,
    /// Write a backlog (`--backlog-mb`), then read it from TRIM_HORIZON with
    /// GetRecords as fast as possible.
    Consume,
    /// Producers at full speed (or `--rate`) and consumers subscribed at LATEST:
    /// can consumers keep up, and how late do records arrive.
    Tail,
    /// Producers at a fixed offered rate (default 50,000 records/s) and
    /// subscribed consumers: produce-to-consume latency.
    #[value(alias = "e2e")]
    EndToEnd,
    /// A backlog, then producers writing while consumers read from TRIM_HORIZON.
    Mixed,
    /// Firehose Direct PUT (PutRecordBatch over HTTP) delivered to the embedded
    /// object store or `--s3-endpoint`: ingest, delivered MB/s, put-to-object
    /// latency (docs/benchmarks.md).
    Firehose,
    /// An S3-compatible server's own ceiling for Firehose's S3 delivery:
    /// `--concurrency` writers putting `--object-size` objects (PutObject, or
    /// `--multipart` as Firehose sends large objects) to `--s3-endpoint`.
    S3Put,
    /// The aggregating producer (KPL format): user records/s into the server.
    Kpl,
    /// Lambda event-source mappings invoking the bench's own HTTP function:
    /// delivery records/s or put→invoke latency (`--lambda`).
    Lambda,
    /// A Kinesis Data Analytics application draining a pre-loaded backlog of
    /// Nexmark-like bids: events/s per core (`--query`).
    Analytics,
    /// Kinesis Video Streams: paced cameras into PutMedia, each read live by
    /// GetMedia, or one upload as fast as it goes (`--video`).
    Video,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Produce => "produce",
            Scenario::Consume => "consume",
            Scenario::Tail => "tail",
            Scenario::EndToEnd => "end-to-end",
            Scenario::Mixed => "mixed",
            Scenario::Firehose => "firehose",
            Scenario::S3Put => "s3-put",
            Scenario::Kpl => "kpl",
            Scenario::Lambda => "lambda",
            Scenario::Analytics => "analytics",
            Scenario::Video => "video",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Riffle's native binary protocol.
    Native,
    /// AWS's Kinesis JSON 1.1 API over HTTP/1.1 (Riffle's `--http`, or any
    /// Kinesis-compatible endpoint with `--server ADDR`); produce and consume.
    KinesisHttp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Durability {
    /// Acknowledge after fdatasync.
    Fsync,
    /// Acknowledge once written (no fdatasync).
    None,
}

/// Riffle's load generator (docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "riffle-bench", version)]
struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "produce")]
    scenario: Scenario,
    /// Bytes of data per record (at least 8 when consumers measure delivery: the
    /// send time rides in the first 8 bytes).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per PutRecords request (1-500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Consumers, each with its own connection, sharing the shards (default: 0
    /// for produce, else 1).
    #[arg(long)]
    consumers: Option<usize>,
    /// Shards per stream.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Streams; producers and consumers are spread over them.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// Seconds measured (after the warm-up). Catch-up consume runs until the
    /// backlog is read.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: offered records per second over all producers; latency counts
    /// from each request's intended send time. Without it: closed loop.
    #[arg(long)]
    rate: Option<u64>,
    /// Closed loop: requests each producer keeps in flight.
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Distinct partition keys per producer (records cycle through them).
    #[arg(long, default_value_t = 64)]
    keys: usize,
    /// The server's durability mode (the bench's own server runs with it; with
    /// --server, say what that server runs with).
    #[arg(long, value_enum, default_value = "fsync")]
    durability: Durability,
    /// Drive a running server instead of starting one (with `--target
    /// kinesis-http` or firehose: its HTTP address).
    #[arg(long)]
    server: Option<String>,
    /// The protocol the load uses.
    #[arg(long, value_enum, default_value = "native")]
    target: Target,
    /// With --server: the server's pid, to report its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Executor threads (cores) of the bench's own server (default: all).
    #[arg(long)]
    server_cores: Option<usize>,
    /// Client executor threads running the producers and consumers.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Backlog written before consume and mixed, in MB of record data.
    #[arg(long, default_value_t = 1024)]
    backlog_mb: u64,
    /// Where the bench's own server gets its temporary data directory (a real
    /// disk: a tmpfs measures memory, not durability).
    #[arg(long, default_value = ".")]
    data_dir: PathBuf,
    /// The `riffle` binary to start (default: beside riffle-bench, else PATH).
    #[arg(long)]
    riffle_bin: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// firehose: how records are put: Firehose's JSON API over HTTP, or the
    /// native protocol's FirehosePutRecordBatch (the bench's own server only).
    #[arg(long, value_enum, default_value = "http")]
    transport: firehose_target::Transport,
    /// firehose: the delivery stream's CompressionFormat.
    #[arg(long, value_enum, ignore_case = true, default_value = "UNCOMPRESSED")]
    compression: firehose_target::Compression,
    /// firehose: BufferingHints.SizeInMBs (1-128).
    #[arg(long, default_value_t = 128)]
    buffer_mb: u32,
    /// firehose: BufferingHints.IntervalInSeconds.
    #[arg(long, default_value_t = 1)]
    buffer_interval: u32,
    /// firehose: deliver to this S3-compatible server (http://HOST:PORT; the
    /// bench's own server gets it as --s3-endpoint) instead of the embedded
    /// store; the bench makes the bucket and reads the objects back.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// firehose: the S3 server's access key (default: AWS_ACCESS_KEY_ID).
    #[arg(long)]
    s3_access_key: Option<String>,
    /// firehose: the S3 server's secret key (default: AWS_SECRET_ACCESS_KEY).
    #[arg(long)]
    s3_secret_key: Option<String>,
    /// firehose with --server and no --s3-endpoint: that server's data
    /// directory (its embedded store is <dir>/s3/).
    #[arg(long)]
    server_data_dir: Option<PathBuf>,
    /// s3-put: bytes per object.
    #[arg(long, default_value_t = 11_000_000)]
    object_size: usize,
    /// s3-put: writers, each with one object (one request, or one multipart
    /// upload) in flight; --server-pid names the S3 server to report its CPU.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// s3-put: upload every object as Firehose uploads objects of 10 MiB or
    /// more (multipart, parts a quarter of the object, 4 in flight).
    #[arg(long)]
    multipart: bool,
    /// s3-put: objects of hex digits (about 2:1 for GZIP, like the firehose
    /// scenario's records) instead of bytes nothing compresses.
    #[arg(long)]
    compressible: bool,
    /// lambda: the figure (throughput: a pre-loaded stream, BatchSize 1000;
    /// latency: paced puts, BatchSize 100, window 0).
    #[arg(long, value_enum, default_value = "throughput")]
    lambda: lambda_target::Mode,
    /// lambda throughput: records loaded before the mapping is made;
    /// analytics: bids loaded before the application starts.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// analytics: the application's query.
    #[arg(long, value_enum, default_value = "q0")]
    query: analytics_target::Query,
    /// analytics: runs, each on a fresh server (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// video: the figure (cameras: paced uploads each read live; ingest: one
    /// upload as fast as it goes).
    #[arg(long, value_enum, default_value = "cameras")]
    video: video_target::Mode,
    /// video cameras: concurrent streams, each with one PutMedia and one GetMedia.
    #[arg(long, default_value_t = 200)]
    cameras: usize,
    /// video cameras: each camera's bitrate.
    #[arg(long, default_value_t = 2000)]
    bitrate_kbps: u64,
    /// video cameras: a fragment (cluster) this long.
    #[arg(long, default_value_t = 1000)]
    fragment_ms: u64,
    /// produce/consume: the streams are encrypted at rest (the bench's own
    /// server gets a keyring; StartStreamEncryption with alias/aws/kinesis).
    #[arg(long)]
    encrypt: bool,
    /// produce/consume: the bench's own server verifies identities (`--auth
    /// sigv4`) and decides every call by an IAM policy (`--iam-policies`):
    /// over kinesis-http the bench signs each request, body hashed in; over
    /// the native protocol each connection authenticates once.
    #[arg(long)]
    auth: bool,
}

fn main() {
    riffle_engine::rt::keep_freed_memory();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("riffle-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(mut args: Args) -> anyhow::Result<()> {
    check(&mut args)?;
    let machine = Machine::probe();
    let durability = match args.durability {
        Durability::Fsync => "fsync",
        Durability::None => "none",
    };
    if args.scenario == Scenario::Firehose {
        return firehose_target::run(&args, machine, durability);
    }
    if args.scenario == Scenario::S3Put {
        return s3_target::run(&args, machine);
    }
    if args.scenario == Scenario::Kpl {
        return kpl_target::run(&args, machine, durability);
    }
    if args.scenario == Scenario::Lambda {
        return lambda_target::run(&args, machine, durability);
    }
    if args.scenario == Scenario::Analytics {
        return analytics_target::run(&args, machine, durability);
    }
    if args.scenario == Scenario::Video {
        return video_target::run(&args, machine, durability);
    }
    // The keyring, config and policies of --encrypt and --auth live here
    // while the server runs.
    let setup = tempfile::Builder::new()
        .prefix("riffle-bench-setup-")
        .tempdir_in(&args.data_dir)
        .with_context(|| format!("cannot create a directory in {}", args.data_dir.display()))?;
    let extra = security_flags(&args, setup.path())?;
    let server = match &args.server {
        Some(addr) => ServerUnderTest::attach(addr, args.server_pid)?,
        None => ServerUnderTest::start(
            &server::riffle_bin(args.riffle_bin.clone()),
            &args.data_dir,
            durability,
            args.server_cores,
            args.target == Target::KinesisHttp || args.encrypt,
            &extra,
        )?,
    };
    let streams: Vec<String> = (0..args.streams)
        .map(|i| format!("bench-{}-{i}", std::process::id()))
        .collect();
    let result = if args.target == Target::KinesisHttp {
        let addr = server.http.unwrap_or(server.addr);
        let mut shard_ids = Vec::new();
        for s in &streams {
            shard_ids.push(http_target::create_stream(addr, s, args.shards)?);
            if args.encrypt {
                encrypt(addr, s)?;
            }
        }
        let http = load::HttpPlan { addr, shard_ids };
        let result = measure(
            &args,
            &server,
            None,
            Some(http),
            &streams,
            machine,
            durability,
        );
        for s in &streams {
            let _ =
                http_target::admin_call(addr, "DeleteStream", serde_json::json!({"StreamName": s}));
        }
        result
    } else {
        let config = ClientConfig {
            credentials: load::credentials(),
            ..ClientConfig::default()
        };
        let admin = Client::connect(server.addr, config)
            .with_context(|| format!("cannot reach the server at {}", server.addr))?;
        for s in &streams {
            admin
                .create_stream(s, args.shards)
                .with_context(|| format!("CreateStream {s}"))?;
            if args.encrypt {
                encrypt(
                    server
                        .http
                        .context("--encrypt needs the server's HTTP API")?,
                    s,
                )?;
            }
        }
        let result = measure(
            &args,
            &server,
            Some(&admin),
            None,
            &streams,
            machine,
            durability,
        );
        for s in &streams {
            let _ = admin.delete_stream(s);
        }
        result
    };
    let report = result?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The `riffle server` flags of `--encrypt` (an empty keyring in the clear:
/// alias/aws/kinesis is made in it on first use) and `--auth` (one access key,
/// its user allowed kinesis:* on the bench's streams by an identity policy with
/// a deny beside it, so that every call is evaluated); files written in `dir`.
fn security_flags(args: &Args, dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut extra = Vec::new();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    if args.encrypt {
        std::fs::write(
            path("keyring.json"),
            r#"{"Format": "riffle-keyring/1", "Protection": {"Kind": "none"}, "Keys": []}"#,
        )?;
        extra.extend(["--kms-keyring".to_string(), path("keyring.json")]);
    }
    if args.auth {
        const KEY: &str = "AKIDBENCH";
        const SECRET: &str = "bench-secret-key";
        let policies = serde_json::json!({"Users": {"bench": {"Policies": [{
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kinesis:*",
                 "Resource": "arn:aws:kinesis:*:*:stream/bench-*"},
                {"Effect": "Deny", "Action": "kinesis:DeleteStream",
                 "Resource": "arn:aws:kinesis:*:*:stream/protected-*"}]}]}}});
        std::fs::write(path("iam.json"), policies.to_string())?;
        std::fs::write(
            path("riffle.toml"),
            format!(
                "access_keys = [{{ id = \"{KEY}\", secret = \"{SECRET}\", user = \"bench\" }}]\niam_policies = \"{}\"\n",
                path("iam.json")
            ),
        )?;
        extra.extend(["--config", &path("riffle.toml"), "--auth", "sigv4"].map(str::to_string));
        load::authenticate_with(riffle_client::Credentials {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
        });
        http_target::sign_with(riffle_aws::sign::Signer {
            access_key: KEY.into(),
            secret_key: SECRET.into(),
            region: "us-east-1".into(),
            service: "kinesis".into(),
        });
    }
    Ok(extra)
}

/// StartStreamEncryption on `stream` with the AWS-managed key, then waits
/// until the stream is ACTIVE again.
fn encrypt(http: std::net::SocketAddr, stream: &str) -> anyhow::Result<()> {
    http_target::admin_call(
        http,
        "StartStreamEncryption",
        serde_json::json!({"StreamName": stream, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    )?;
    for _ in 0..600 {
        let d = http_target::admin_call(
            http,
            "DescribeStreamSummary",
            serde_json::json!({"StreamName": stream}),
        )?;
        let s = &d["StreamDescriptionSummary"];
        if s["StreamStatus"] == "ACTIVE" && s["EncryptionType"] == "KMS" {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("stream {stream} did not become ACTIVE and encrypted within 60 s")
}

fn check(args: &mut Args) -> anyhow::Result<()> {
    if (args.encrypt || args.auth) && args.server.is_some() {
        bail!("--encrypt and --auth set up the bench's own server: drop --server");
    }
    if args.batch == 0 || args.batch > 500 {
        bail!(
            "--batch must be 1 to 500 (PutRecords' limit), got {}",
            args.batch
        );
    }
    if args.producers == 0 {
        bail!("--producers must be at least 1");
    }
    if args.shards == 0 || args.streams == 0 || args.client_threads == 0 {
        bail!("--shards, --streams and --client-threads must be at least 1");
    }
    if args.record_size > 1 << 20 {
        bail!("--record-size is at most 1 MiB");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!(
            "--duration must be more than 0 and at most 86400 seconds, got {}",
            args.duration
        );
    }
    if !(args.warmup.is_finite() && args.warmup >= 0.0 && args.warmup <= 3_600.0) {
        bail!("--warmup must be 0 to 3600 seconds, got {}", args.warmup);
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1 record/s");
    }
    if args.scenario == Scenario::EndToEnd && args.rate.is_none() {
        args.rate = Some(50_000);
    }
    if args.target == Target::KinesisHttp
        && !matches!(args.scenario, Scenario::Produce | Scenario::Consume)
    {
        bail!("--target kinesis-http runs the produce and consume scenarios");
    }
    if args.target == Target::KinesisHttp && args.rate.is_some() {
        bail!("--target kinesis-http runs closed loop only (no --rate)");
    }
    let measures_delivery = matches!(
        args.scenario,
        Scenario::Tail | Scenario::EndToEnd | Scenario::Mixed
    );
    if measures_delivery && args.record_size < 8 {
        bail!(
            "--record-size must be at least 8 bytes for {} (the send time rides in the record)",
            args.scenario.name()
        );
    }
    Ok(())
}

/// Producers and consumers dealt round-robin to client threads.
fn plans(args: &Args, base: &Plan, consumers: usize) -> Vec<Plan> {
    let threads = args.client_threads;
    let mut plans: Vec<Plan> = (0..threads).map(|_| base.clone()).collect();
    for (i, p) in (0..args.producers).enumerate() {
        plans[i % threads]
            .producers
            .push((p, p % base.streams.len()));
    }
    // Every (stream, shard) is read by exactly one consumer.
    let pairs: Vec<(usize, u32)> = (0..base.streams.len())
        .flat_map(|s| (0..args.shards).map(move |sh| (s, sh)))
        .collect();
    let consumers = consumers.min(pairs.len());
    let mut per_consumer: Vec<Vec<(usize, u32)>> = vec![Vec::new(); consumers];
    for (i, pair) in pairs.into_iter().enumerate() {
        if consumers > 0 {
            per_consumer[i % consumers].push(pair);
        }
    }
    for (c, pairs) in per_consumer.into_iter().enumerate() {
        // One connection per (consumer, stream).
        let mut by_stream: HashMap<usize, Vec<u32>> = HashMap::new();
        for (s, sh) in pairs {
            by_stream.entry(s).or_default().push(sh);
        }
        for (s, shards) in by_stream {
            plans[c % threads].consumers.push((s, shards));
        }
    }
    plans
}

fn measure(
    args: &Args,
    server: &ServerUnderTest,
    admin: Option<&Client>,
    http: Option<load::HttpPlan>,
    streams: &[String],
    machine: Machine,
    durability: &str,
) -> anyhow::Result<Report> {
    let scenario = args.scenario;
    let consumers = args
        .consumers
        .unwrap_or(if scenario == Scenario::Produce { 0 } else { 1 });
    if consumers == 0 && scenario != Scenario::Produce {
        bail!("{} needs --consumers of at least 1", scenario.name());
    }
    if let Some(rate) = args.rate {
        let requests = rate as f64 / args.batch as f64 * args.duration;
        if requests < 10.0 * args.producers as f64 && !args.quiet {
            eprintln!(
                "riffle-bench: warning: --rate {rate} is only {requests:.0} requests of {} records over the run for {} producers; each sends at least one, so the offered rate is coarse (lower --batch or --producers, or run longer)",
                args.batch, args.producers
            );
        }
    }
    let base = Plan {
        addr: server.addr,
        streams: streams.to_vec(),
        record_size: args.record_size,
        batch: args.batch,
        keys_per_producer: args.keys,
        inflight: args.inflight,
        request_rate: args
            .rate
            .map(|r| r as f64 / args.batch as f64 / args.producers as f64),
        stamp: matches!(
            scenario,
            Scenario::Tail | Scenario::EndToEnd | Scenario::Mixed
        ),
        producers: Vec::new(),
        consumers: Vec::new(),
        consume: ConsumeMode::Follow(Start::Latest),
        until: HashMap::new(),
        producers_total: args.producers,
        http,
        records_per_producer: None,
    };
    let mut backlog_records = 0;
    if matches!(scenario, Scenario::Consume | Scenario::Mixed) {
        let records = (args.backlog_mb * 1_000_000).div_ceil(args.record_size.max(1) as u64);
        let fill = Plan {
            stamp: false,
            request_rate: None,
            inflight: args.inflight.max(4),
            records_per_producer: Some(records.div_ceil(args.producers as u64)),
            ..base.clone()
        };
        if !args.quiet {
            eprintln!("writing a backlog of {} MB ...", args.backlog_mb);
        }
        let shared = Shared::new();
        let (tally, _) = phase(
            args,
            &shared,
            plans(args, &fill, 0),
            Phase::UntilDone,
            None,
            0,
        )?;
        backlog_records = shared.produced.load(Ordering::Relaxed);
        if tally.errors > 0 {
            bail!(
                "{} errors while writing the backlog; first: {}",
                tally.errors,
                tally.first_error.unwrap_or_default()
            );
        }
    }
    let mut plan = base;
    match scenario {
        Scenario::Produce => {}
        Scenario::Consume => {
            plan.consume = ConsumeMode::CatchUp;
            plan.producers.clear();
            // Over HTTP, consumers stop at an empty read at the tip instead.
            if let Some(admin) = admin {
                for (s, name) in streams.iter().enumerate() {
                    for shard in 0..args.shards {
                        plan.until.insert((s, shard), tip(admin, name, shard)?);
                    }
                }
            }
        }
        Scenario::Tail | Scenario::EndToEnd => plan.consume = ConsumeMode::Follow(Start::Latest),
        Scenario::Mixed => plan.consume = ConsumeMode::Follow(Start::TrimHorizon),
        Scenario::Firehose
        | Scenario::S3Put
        | Scenario::Kpl
        | Scenario::Lambda
        | Scenario::Analytics
        | Scenario::Video => {
            unreachable!("run by their own modules")
        }
    }
    let mut thread_plans = plans(args, &plan, consumers);
    if scenario == Scenario::Consume {
        for p in &mut thread_plans {
            p.producers.clear();
        }
    }
    let shared = Shared::new();
    let how = if scenario == Scenario::Consume {
        Phase::UntilDone
    } else {
        Phase::Timed
    };
    let (tally, cpu) = phase(
        args,
        &shared,
        thread_plans,
        how,
        server.pid,
        backlog_records,
    )?;
    let measured_ns = match how {
        Phase::UntilDone => shared
            .last_done
            .load(Ordering::Relaxed)
            .saturating_sub(shared.measure_from.load(Ordering::Relaxed)),
        Phase::Timed => (args.duration * 1e9) as u64,
    };
    let secs = (measured_ns as f64 / 1e9).max(1e-9);
    let per_sec = |v: u64| v as f64 / secs;
    let (records, bytes, latency) = match scenario {
        Scenario::Produce => (tally.produced_records, tally.produced_bytes, &tally.ack),
        Scenario::Consume => (tally.consumed_records, tally.consumed_bytes, &tally.read),
        _ => (tally.consumed_records, tally.consumed_bytes, &tally.e2e),
    };
    if latency.is_empty() {
        bail!(
            "nothing was measured: no request completed in the measured window ({} errors{})",
            tally.errors,
            tally
                .first_error
                .as_deref()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default()
        );
    }
    if tally.errors > 0 && !args.quiet {
        eprintln!(
            "{} errors; first: {}",
            tally.errors,
            tally.first_error.as_deref().unwrap_or("")
        );
    }
    Ok(Report {
        scenario: scenario.name().into(),
        records_per_sec: per_sec(records),
        bytes_per_sec: per_sec(bytes),
        latency_us: Percentiles::of(latency).unwrap_or_default(),
        durability: durability.into(),
        record_size: args.record_size,
        duration_s: secs,
        loop_mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate: args.rate,
        batch: args.batch,
        producers: if scenario == Scenario::Consume {
            0
        } else {
            args.producers
        },
        consumers,
        shards: args.shards,
        streams: args.streams,
        produced_records_per_sec: per_sec(tally.produced_records),
        produced_bytes_per_sec: per_sec(tally.produced_bytes),
        consumed_records_per_sec: per_sec(tally.consumed_records),
        consumed_bytes_per_sec: per_sec(tally.consumed_bytes),
        ack_latency_us: Percentiles::of(&tally.ack),
        e2e_latency_us: Percentiles::of(&tally.e2e),
        read_latency_us: Percentiles::of(&tally.read),
        errors: tally.errors,
        undelivered: tally.undelivered,
        cpu,
        machine,
        server: match args.server {
            Some(_) => server.addr.to_string(),
            None => format!("riffle server started by the bench on {}", server.addr),
        },
    })
}

/// The offset a shard's next record will get.
fn tip(admin: &Client, stream: &str, shard: u32) -> anyhow::Result<u64> {
    let it = admin.get_shard_iterator(stream, shard, StartPosition::Latest)?;
    Ok(admin.get_records(&it, Some(1))?.next_offset)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Warm-up, then `--duration` measured seconds.
    Timed,
    /// Measured from the start until every producer and consumer is done.
    UntilDone,
}

/// Runs one phase on the client threads and sums what they measured, with the
/// CPU time client and server used while measuring.
fn phase(
    args: &Args,
    shared: &Arc<Shared>,
    plans: Vec<Plan>,
    how: Phase,
    server_pid: Option<u32>,
    backlog_records: u64,
) -> anyhow::Result<(Tally, Cpu)> {
    let (ready_tx, ready_rx) = flume::unbounded();
    let (go_tx, go_rx) = flume::bounded::<()>(1);
    let producers: usize = plans.iter().map(|p| p.producers.len()).sum();
    let consumer_tasks: usize = plans
        .iter()
        .map(|p| p.consumers.iter().map(|c| c.1.len()).sum::<usize>())
        .sum();
    let handles: Vec<_> = plans
        .into_iter()
        .map(|p| load::run_thread(p, shared.clone(), ready_tx.clone(), go_rx.clone()))
        .collect();
    drop(ready_tx);
    let mut setup = load::wait_ready(&ready_rx, handles.len(), shared);
    let go_at = shared.now_ns();
    let warmup = if how == Phase::Timed {
        args.warmup
    } else {
        0.0
    };
    shared
        .measure_from
        .store(go_at + (warmup * 1e9) as u64, Ordering::Relaxed);
    // Dropping the sender releases every task at once.
    drop(go_tx);
    let mut cpu = Cpu {
        client_s: 0.0,
        server_s: None,
    };
    let mut undelivered = 0;
    if setup.is_ok() {
        let (cpu0, cpu1) = progress(args, shared, how, producers, consumer_tasks, server_pid);
        cpu.client_s = cpu1.0 - cpu0.0;
        cpu.server_s = cpu0.1.zip(cpu1.1).map(|(a, b)| b - a);
        if how == Phase::Timed {
            match drain(shared, producers, consumer_tasks > 0, backlog_records) {
                Ok(n) => undelivered = n,
                Err(e) => setup = Err(e),
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new();
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => total.add(t),
            Ok(Err(e)) => setup = setup.and(Err(e)),
            Err(_) => setup = setup.and(Err(anyhow::anyhow!("a client thread panicked"))),
        }
    }
    total.undelivered = undelivered;
    setup.map(|()| (total, cpu))
}

/// CPU seconds used so far by this process and by the server.
fn cpu_now(server_pid: Option<u32>) -> (f64, Option<f64>) {
    (
        machine::own_cpu_seconds(),
        server_pid.and_then(machine::process_cpu_seconds),
    )
}

type CpuSample = (f64, Option<f64>);

/// Prints a progress line each second until the phase is over; samples CPU
/// time when measurement starts and when the phase ends.
fn progress(
    args: &Args,
    shared: &Shared,
    how: Phase,
    producers: usize,
    consumer_tasks: usize,
    server_pid: Option<u32>,
) -> (CpuSample, CpuSample) {
    let start = Instant::now();
    let warmup = match how {
        Phase::Timed => Duration::from_secs_f64(args.warmup),
        Phase::UntilDone => Duration::ZERO,
    };
    let mut cpu0 = (warmup.is_zero()).then(|| cpu_now(server_pid));
    let end = start + Duration::from_secs_f64(args.warmup + args.duration);
    let tty = std::io::stderr().is_terminal();
    let mut last = (0u64, 0u64);
    let mut tick = start;
    loop {
        let done = match how {
            Phase::Timed => Instant::now() >= end,
            // Catch-up consumers finish; backlog producers finish.
            Phase::UntilDone => {
                shared.consumers_done.load(Ordering::Relaxed) >= consumer_tasks
                    && shared.producers_done.load(Ordering::Relaxed) >= producers
            }
        };
        if done {
            break;
        }
        if cpu0.is_none() && start.elapsed() >= warmup {
            cpu0 = Some(cpu_now(server_pid));
        }
        let next_tick = tick + Duration::from_secs(1);
        let wake = match how {
            Phase::Timed if cpu0.is_none() => next_tick.min(end).min(start + warmup),
            Phase::Timed => next_tick.min(end),
            Phase::UntilDone => Instant::now() + Duration::from_millis(20),
        };
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        if Instant::now() < next_tick {
            continue;
        }
        let now = (
            shared.produced.load(Ordering::Relaxed),
            shared.consumed.load(Ordering::Relaxed),
        );
        let dt = tick.elapsed().as_secs_f64();
        tick = Instant::now();
        if !args.quiet {
            let rate = |a: u64, b: u64| (a - b) as f64 / dt;
            let line = format!(
                "[{:5.1} s] produced {:>9.0} records/s {:>8.1} MB/s | consumed {:>9.0} records/s {:>8.1} MB/s",
                start.elapsed().as_secs_f64(),
                rate(now.0, last.0),
                rate(now.0, last.0) * args.record_size as f64 / 1e6,
                rate(now.1, last.1),
                rate(now.1, last.1) * args.record_size as f64 / 1e6,
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}")
            } else {
                writeln!(err, "{line}")
            };
        }
        last = now;
    }
    shared
        .measure_until
        .store(shared.now_ns(), Ordering::Relaxed);
    let cpu1 = cpu_now(server_pid);
    if tty && !args.quiet {
        eprintln!();
    }
    (cpu0.unwrap_or(cpu1), cpu1)
}

/// How long the end of a run waits for outstanding replies and deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Ends a timed phase: producers stop sending and wait for their replies, then
/// consumers get what was acknowledged (so late replies and deliveries still
/// count in the latencies), then everything stops. Returns how many
/// acknowledged records the consumers had not received by the deadline.
fn drain(
    shared: &Shared,
    producers: usize,
    follow_consumers: bool,
    backlog_records: u64,
) -> anyhow::Result<u64> {
    shared.stop_producing.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while shared.producers_done.load(Ordering::Relaxed) < producers {
        if Instant::now() >= deadline {
            shared.stop.store(true, Ordering::Relaxed);
            bail!(
                "the server did not answer every request within {} s of the end of the run",
                DRAIN_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let expected = shared.produced.load(Ordering::Relaxed) + backlog_records;
    let mut missing = 0;
    if follow_consumers {
        loop {
            let got = shared.consumed.load(Ordering::Relaxed);
            if got >= expected {
                break;
            }
            if Instant::now() >= deadline {
                missing = expected - got;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    Ok(missing)
}
