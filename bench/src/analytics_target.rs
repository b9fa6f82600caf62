//! The `analytics` scenario: a Kinesis Data Analytics for SQL application
//! draining a pre-loaded backlog of Nexmark-like bids (docs/analytics-design.md
//! §7, issue 14), or, with `--rate`, reading bids put at a fixed rate. The
//! figures are events/s per core, and with `--rate` latencies.
//!
//! Each of `--runs` runs (default 3) starts its own release `riffle server
//! --http`, then:
//! 1. makes an input stream of `2 × cores` shards, an output stream of as
//!    many and a one-shard stream for the application's error_stream, over
//!    the native protocol;
//! 2. pre-loads `--records` bids (JSON, 160-200 bytes, [`bid`]) over the
//!    native protocol's PutRecords, `--producers` threads with their own
//!    connections, `--batch` records a call, the bid's index as partition
//!    key (so the shards fill evenly);
//! 3. creates the application over the HTTP API (AWS JSON 1.1,
//!    `KinesisAnalytics_20150814`, unsigned: the bench's own server runs
//!    without `--auth`) with the bid schema and the code of `--query`, and
//!    starts it from TRIM_HORIZON;
//! 4. polls the output until it holds everything it should: for q0, q1 and
//!    q5 a record per bid, for q2 a record per bid the generator knows
//!    matches, for the tumbling windows (tumble, q7) rows whose counts add
//!    up to the bids;
//! 5. q5, q7 and tumble: reads the whole input and output back (not timed)
//!    and compares every row's values with what the input's arrival stamps
//!    (its ROWTIMEs) give ([`verify`]).
//!
//! The drain time runs from the StartApplication call to the arrival (the
//! server's stamp) of the last output record. For the tumbling windows the
//! bench first waits until the last pre-loaded window has ended (at most
//! 10 s, reported as the settle time): the backlog's windows then close as
//! soon as every shard has been read to its tip, so the drain is the
//! processing alone; settle + drain is what a user starting at once waits
//! at most. Server CPU comes from `/proc/<pid>/stat` over the drain.
//!
//! `--rate N` (latency): each run puts N bids/s ([`Pace`]: open loop, one
//! PutRecords a millisecond over the producers) for `--warmup` +
//! `--duration` s into a stream no application reads, then starts the
//! application on its empty input (TRIM_HORIZON) and puts the same into
//! it. PutRecords latency (from each call's intended send time) is
//! compared between the two phases; each output row's latency is its
//! arrival minus its input record's (per-row queries: the record its
//! partition key names, [`RowKey`]; q5: its ROWTIME, which is that
//! arrival) or minus its window's end (tumble, q7). Both stamps are the
//! server's.
//!
//! The bids come from [`riffle_bench::nexmark`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use riffle_client::{Client, ClientConfig, PutRecordsEntry, Record, StartPosition};
use riffle_protocol::seqno;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use riffle_bench::nexmark::{SEED, bid, bid_schema};

use crate::Args;
use crate::http_target::admin_call_to;
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
use crate::report::{self, Percentiles};
use crate::server::{self, ServerUnderTest};

/// The query the application runs (Nexmark's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Query {
    /// Pass-through: every column of every bid.
    Q0,
    /// Currency conversion: `0.908 * PRICE` into a DOUBLE.
    Q1,
    /// Selection: the bids on auctions that are multiples of 123.
    Q2,
    /// Hot items (Nexmark q5-like): per bid, the bids on its auction in the
    /// last 10 seconds (a sliding window).
    Q5,
    /// Highest bid (Nexmark q7-like): the bids and the highest price per
    /// 10-second tumbling window.
    Q7,
    /// Bids and the highest price per auction per 10-second tumbling window.
    Tumble,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Tumble => "tumble",
        }
    }

    /// Whether the output is window rows whose BIDS add up to the bids
    /// (else a row per bid, or per matching bid).
    fn windowed(self) -> bool {
        matches!(self, Query::Tumble | Query::Q7)
    }

    /// Whether the query keeps `auction`'s bids (q2's WHERE; the others
    /// keep every bid).
    fn keeps(self, auction: i64) -> bool {
        self != Query::Q2 || auction % 123 == 0
    }

    /// The application code. The planner has no `MOD` function; `%`
    /// (sqlparser's modulo, which the planner serves) stands for Nexmark's
    /// `MOD(auction, 123)`.
    fn code(self) -> &'static str {
        match self {
            Query::Q0 => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (AUCTION BIGINT, BIDDER BIGINT, PRICE BIGINT, CHANNEL VARCHAR(16), URL VARCHAR(128), "DATETIME" TIMESTAMP, EXTRA VARCHAR(64));
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM AUCTION, BIDDER, PRICE, CHANNEL, URL, "DATETIME", EXTRA FROM "SOURCE_SQL_STREAM_001";"#
            }
            Query::Q1 => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (AUCTION BIGINT, BIDDER BIGINT, PRICE DOUBLE, "DATETIME" TIMESTAMP);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM AUCTION, BIDDER, 0.908 * PRICE, "DATETIME" FROM "SOURCE_SQL_STREAM_001";"#
            }
            Query::Q2 => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (AUCTION BIGINT, PRICE BIGINT);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM AUCTION, PRICE FROM "SOURCE_SQL_STREAM_001" WHERE AUCTION % 123 = 0;"#
            }
            Query::Q5 => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (AUCTION BIGINT, BIDS BIGINT);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM AUCTION, COUNT(*) OVER w FROM "SOURCE_SQL_STREAM_001"
  WINDOW w AS (PARTITION BY AUCTION RANGE INTERVAL '10' SECOND PRECEDING);"#
            }
            Query::Q7 => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (BIDS BIGINT, PRICE BIGINT);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM COUNT(*), MAX(PRICE) FROM "SOURCE_SQL_STREAM_001"
  GROUP BY STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);"#
            }
            Query::Tumble => {
                r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (AUCTION BIGINT, BIDS BIGINT, MAX_PRICE BIGINT);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM AUCTION, COUNT(*), MAX(PRICE) FROM "SOURCE_SQL_STREAM_001"
  GROUP BY AUCTION, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);"#
            }
        }
    }
}

const ANALYTICS: &str = "KinesisAnalytics_20150814.";
/// The tumbling queries' window and the sliding query's range, ms.
const WINDOW_MS: i64 = 10_000;
/// How long the output may make no progress before the run gives up.
const STALL: Duration = Duration::from_secs(30);
/// How often the output is polled.
const POLL: Duration = Duration::from_millis(25);

/// Runs the scenario (`--runs` times) and prints the result.
pub fn run(args: &Args, machine: Machine, durability: &str) -> anyhow::Result<()> {
    if args.server.is_some() {
        bail!(
            "analytics needs the bench's own server (--server gives one address; the scenario uses both the native protocol and HTTP)"
        );
    }
    if args.records == 0 || args.runs == 0 {
        bail!("--records and --runs must be at least 1");
    }
    let cores = args.server_cores.unwrap_or(machine.cores).max(1);
    if let Some(rate) = args.rate {
        return latency(args, machine, durability, cores, rate);
    }
    let mut runs = Vec::new();
    for i in 0..args.runs {
        if !args.quiet {
            eprintln!("run {} of {}", i + 1, args.runs);
        }
        runs.push(one_run(args, cores, durability, i)?);
    }
    let median = |f: fn(&RunOutcome) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let out = Outcome {
        scenario: "analytics",
        query: args.query.name(),
        records: args.records,
        shards: 2 * cores as u32,
        cores,
        durability: durability.into(),
        median_events_per_s: median(|r| r.events_per_s),
        median_events_per_s_per_core: median(|r| r.events_per_s_per_core),
        median_drain_s: median(|r| r.drain_s),
        median_server_cpu_s: median(|r| r.server_cpu_s.unwrap_or(f64::NAN)),
        median_events_per_server_cpu_s: median(|r| r.events_per_server_cpu_s.unwrap_or(f64::NAN)),
        runs,
        machine,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", out.table());
    }
    Ok(())
}

/// What the runs found.
#[derive(Debug, Serialize)]
struct Outcome {
    scenario: &'static str,
    query: &'static str,
    records: u64,
    shards: u32,
    /// The server's executor cores (the divisor of the per-core figure).
    cores: usize,
    durability: String,
    median_events_per_s: f64,
    median_events_per_s_per_core: f64,
    median_drain_s: f64,
    median_server_cpu_s: f64,
    median_events_per_server_cpu_s: f64,
    runs: Vec<RunOutcome>,
    machine: Machine,
}

/// What one run found.
#[derive(Debug, Default, Serialize)]
struct RunOutcome {
    /// Pre-load: seconds, and the input's mean record size (bytes).
    load_s: f64,
    mean_bid_bytes: f64,
    /// Tumble: the wait before the start until the last window had ended.
    settle_s: f64,
    /// StartApplication call to the first and the last output record's arrival.
    first_output_s: f64,
    drain_s: f64,
    events_per_s: f64,
    events_per_s_per_core: f64,
    /// Output records, and what they should be (q0-q2, q5: records;
    /// tumble, q7: the sum of the BIDS column, `expected` bids).
    output_records: u64,
    counted: u64,
    expected: u64,
    error_records: u64,
    first_error: Option<String>,
    /// Output records parsed and checked against the query.
    checked: u64,
    /// q5, q7, tumble: output rows whose values were compared with what
    /// the input's arrival stamps give (after the drain, not timed).
    verified: u64,
    first_problem: Option<String>,
    server_cpu_s: Option<f64>,
    events_per_server_cpu_s: Option<f64>,
    bench_cpu_s: f64,
}

impl Outcome {
    fn table(&self) -> String {
        let mut s = format!(
            "analytics {}: {} bids into {} shards, {} server cores, durability {}\n  machine: {}\n",
            self.query,
            self.records,
            self.shards,
            self.cores,
            self.durability,
            self.machine.describe()
        );
        for (i, r) in self.runs.iter().enumerate() {
            let cpu = r.server_cpu_s.map_or("n/a".into(), |c| format!("{c:.2} s"));
            s += &format!(
                "  run {}: drain {:.2} s (first output {:.2} s) -> {:.0} events/s, {:.0} per core; server CPU {cpu}, bench {:.2} s\n",
                i + 1,
                r.drain_s,
                r.first_output_s,
                r.events_per_s,
                r.events_per_s_per_core,
                r.bench_cpu_s
            );
            s += &format!(
                "         load {:.2} s ({:.0} B/bid){}; output {} records, counted {} of {}, {} errors{}, {} checked{}{}\n",
                r.load_s,
                r.mean_bid_bytes,
                if r.settle_s > 0.0 {
                    format!(", settle {:.2} s", r.settle_s)
                } else {
                    String::new()
                },
                r.output_records,
                r.counted,
                r.expected,
                r.error_records,
                r.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                r.checked,
                if r.verified > 0 {
                    format!(", {} values verified", r.verified)
                } else {
                    String::new()
                },
                r.first_problem
                    .as_deref()
                    .map(|p| format!(", PROBLEM: {p}"))
                    .unwrap_or_default()
            );
        }
        s += &format!(
            "  median: {:.0} events/s, {:.0} events/s per core, drain {:.2} s, server CPU {:.2} s ({:.0} events per server CPU second)\n",
            self.median_events_per_s,
            self.median_events_per_s_per_core,
            self.median_drain_s,
            self.median_server_cpu_s,
            self.median_events_per_server_cpu_s
        );
        s
    }
}

/// A release server of its own for one run, its HTTP address, and a
/// native client on it.
fn start_server(
    args: &Args,
    cores: usize,
    durability: &str,
) -> anyhow::Result<(ServerUnderTest, SocketAddr, Client)> {
    let server = ServerUnderTest::start(
        &server::riffle_bin(args.riffle_bin.clone()),
        &args.data_dir,
        durability,
        Some(cores),
        true,
        &[],
    )?;
    let http = server.http.context("the server serves no HTTP")?;
    let admin = Client::connect(server.addr, ClientConfig::default())
        .with_context(|| format!("cannot reach the server at {}", server.addr))?;
    Ok((server, http, admin))
}

/// The output wait's outcome as the run's: a failed wait names the
/// error_stream records and the first of them.
fn output_complete(
    waited: anyhow::Result<()>,
    error_records: u64,
    first_error: Option<&str>,
) -> anyhow::Result<()> {
    if let Err(e) = waited {
        let first = first_error.map(|e| format!("; first error: {e}"));
        bail!(
            "{e:#} ({error_records} errors{})",
            first.unwrap_or_default()
        );
    }
    Ok(())
}

/// Stops application `name` (a failure is the next run's problem: each run
/// has a server of its own).
fn stop_application(http: SocketAddr, name: &str) {
    let _ = admin_call_to(
        http,
        ANALYTICS,
        "StopApplication",
        json!({"ApplicationName": name}),
    );
}

/// One run on a server of its own.
fn one_run(args: &Args, cores: usize, durability: &str, i: u32) -> anyhow::Result<RunOutcome> {
    let (server, http, admin) = start_server(args, cores, durability)?;
    let shards = 2 * cores as u32;
    let tag = format!("{}-{i}", std::process::id());
    let (input, output, errors) = (
        format!("bids-{tag}"),
        format!("out-{tag}"),
        format!("err-{tag}"),
    );
    for (name, n) in [(&input, shards), (&output, shards), (&errors, 1)] {
        admin
            .create_stream(name, n)
            .with_context(|| format!("CreateStream {name}"))?;
    }
    if !args.quiet {
        eprintln!(
            "server pid {}; loading {} bids into {shards} shards ...",
            server.pid.unwrap_or(0),
            args.records
        );
    }
    let loaded_at = Instant::now();
    let loaded = preload(args, server.addr, &input)?;
    let load_s = loaded_at.elapsed().as_secs_f64();
    let input_tips = tips(&admin, &input, shards)?;
    let stored: u64 = input_tips.iter().sum();
    if stored != args.records {
        bail!(
            "the input holds {stored} records after loading {}",
            args.records
        );
    }
    let query = args.query;
    let expected = match query {
        Query::Q2 => loaded.q2_matches,
        _ => args.records,
    };
    let name = create_application(http, &input, &output, &errors, query)?;
    let mut settle_s = 0.0;
    if query.windowed() {
        let last = last_arrival_ms(&admin, &input, &input_tips)?.unwrap_or(0);
        let window_end = (last.div_euclid(WINDOW_MS) + 1) * WINDOW_MS;
        // A margin for the engine's clock against ours.
        let wait = window_end + 100 - now_ms();
        if wait > 0 {
            if !args.quiet {
                eprintln!("waiting {wait} ms for the last window of the backlog to end ...");
            }
            std::thread::sleep(Duration::from_millis(wait as u64));
            settle_s = wait as f64 / 1e3;
        }
    }
    if !args.quiet {
        eprintln!("starting application {name} ({}) ...", query.name());
    }
    let (cpu0, server0) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let started_ms = now_ms();
    start_application(http, &name)?;
    let mut watch = Watch::new(&output, shards, query);
    let waited = wait_output(args, &mut watch, &admin, &errors, expected);
    let (cpu1, server1) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    let (error_records, first_error) = error_stream(&admin, &errors)?;
    output_complete(waited, error_records, first_error.as_deref())?;
    stop_application(http, &name);
    let (first_ms, last_ms) = watch.arrivals(&admin)?;
    if matches!(query, Query::Q5 | Query::Q7 | Query::Tumble) {
        if !args.quiet {
            eprintln!("checking every output row against the input ...");
        }
        verify(&admin, &input, &input_tips, &output, shards, &mut watch)?;
    }
    let drain_s = (last_ms - started_ms).max(1) as f64 / 1e3;
    let events_per_s = args.records as f64 / drain_s;
    let server_cpu_s = server0.zip(server1).map(|(a, b)| b - a);
    Ok(RunOutcome {
        load_s,
        mean_bid_bytes: loaded.bytes as f64 / args.records as f64,
        settle_s,
        first_output_s: (first_ms - started_ms) as f64 / 1e3,
        drain_s,
        events_per_s,
        events_per_s_per_core: events_per_s / cores as f64,
        output_records: watch.records,
        counted: watch.counted,
        expected,
        error_records,
        first_error,
        checked: watch.checked,
        verified: watch.verified,
        first_problem: watch.problem.clone(),
        server_cpu_s,
        events_per_server_cpu_s: server_cpu_s.map(|c| args.records as f64 / c.max(1e-9)),
        bench_cpu_s: cpu1 - cpu0,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the pre-load put.
#[derive(Default)]
struct Loaded {
    /// Bids whose auction is a multiple of 123 (q2's output).
    q2_matches: u64,
    /// Record data bytes.
    bytes: u64,
}

/// Puts bids `0..records` into `stream`: `--producers` threads, each with
/// its own connection and a contiguous slice of the indices.
fn preload(args: &Args, addr: SocketAddr, stream: &str) -> anyhow::Result<Loaded> {
    let producers = args.producers.max(1) as u64;
    let (records, batch) = (args.records, args.batch.clamp(1, 500) as u64);
    let threads: Vec<_> = (0..producers)
        .map(|t| {
            let stream = stream.to_string();
            let (from, to) = (records * t / producers, records * (t + 1) / producers);
            std::thread::spawn(move || -> anyhow::Result<Loaded> {
                let client = Client::connect(addr, ClientConfig::default())?;
                let mut loaded = Loaded::default();
                let mut at = from;
                while at < to {
                    let end = (at + batch).min(to);
                    let bids: Vec<(String, Vec<u8>)> = (at..end)
                        .map(|i| {
                            let (data, auction) = bid(SEED, i);
                            loaded.q2_matches += u64::from(auction % 123 == 0);
                            loaded.bytes += data.len() as u64;
                            (i.to_string(), data)
                        })
                        .collect();
                    let entries: Vec<PutRecordsEntry<'_>> = bids
                        .iter()
                        .map(|(key, data)| PutRecordsEntry {
                            partition_key: key,
                            explicit_hash_key: None,
                            data,
                        })
                        .collect();
                    let results = client.put_records(&stream, &entries)?;
                    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                        bail!("PutRecords refused a bid: {e}");
                    }
                    at = end;
                }
                Ok(loaded)
            })
        })
        .collect();
    let mut total = Loaded::default();
    for t in threads {
        let l = t
            .join()
            .map_err(|_| anyhow::anyhow!("a loading thread panicked"))??;
        total.q2_matches += l.q2_matches;
        total.bytes += l.bytes;
    }
    Ok(total)
}

/// Each shard's next offset (its record count: the stream is new).
fn tips(admin: &Client, stream: &str, shards: u32) -> anyhow::Result<Vec<u64>> {
    (0..shards).map(|s| crate::tip(admin, stream, s)).collect()
}

/// The latest arrival (server ms) of the last records of the shards whose
/// next offsets are `tips`.
fn last_arrival_ms(admin: &Client, stream: &str, tips: &[u64]) -> anyhow::Result<Option<i64>> {
    let mut last = None;
    for (shard, &tip) in tips.iter().enumerate() {
        if tip == 0 {
            continue;
        }
        let shard = shard as u32;
        let at = StartPosition::AtSequenceNumber(seqno::encode(shard, tip - 1));
        let it = admin.get_shard_iterator(stream, shard, at)?;
        if let Some(r) = admin.get_records(&it, Some(1))?.records.first() {
            last = last.max(Some(r.arrival_ms));
        }
    }
    Ok(last)
}

/// The ARN of a data stream, from the Kinesis HTTP API.
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

/// CreateApplication reading `input`, writing DESTINATION_SQL_STREAM to
/// `output` and error_stream to `errors`, as JSON; gives its name.
fn create_application(
    http: SocketAddr,
    input: &str,
    output: &str,
    errors: &str,
    query: Query,
) -> anyhow::Result<String> {
    let input_arn = stream_arn(http, input)?;
    // arn:aws:kinesis:REGION:ACCOUNT:stream/NAME
    let account = input_arn.split(':').nth(4).unwrap_or("000000000000");
    let role = format!("arn:aws:iam::{account}:role/riffle-bench");
    let name = format!("bench-{input}");
    let destination = |name: &str, arn: String| {
        json!({"Name": name,
               "KinesisStreamsOutput": {"ResourceARN": arn, "RoleARN": role},
               "DestinationSchema": {"RecordFormatType": "JSON"}})
    };
    admin_call_to(
        http,
        ANALYTICS,
        "CreateApplication",
        json!({
            "ApplicationName": name,
            "Inputs": [{
                "NamePrefix": "SOURCE_SQL_STREAM",
                "KinesisStreamsInput": {"ResourceARN": input_arn, "RoleARN": role},
                "InputSchema": bid_schema(),
            }],
            "Outputs": [
                destination("DESTINATION_SQL_STREAM", stream_arn(http, output)?),
                destination("error_stream", stream_arn(http, errors)?),
            ],
            "ApplicationCode": query.code(),
        }),
    )?;
    Ok(name)
}

/// StartApplication from TRIM_HORIZON; checks the application is RUNNING.
fn start_application(http: SocketAddr, name: &str) -> anyhow::Result<()> {
    let described = |http| {
        admin_call_to(
            http,
            ANALYTICS,
            "DescribeApplication",
            json!({"ApplicationName": name}),
        )
    };
    let d = described(http)?;
    let input_id = d["ApplicationDetail"]["InputDescriptions"][0]["InputId"]
        .as_str()
        .context("DescribeApplication gave no InputId")?
        .to_string();
    admin_call_to(
        http,
        ANALYTICS,
        "StartApplication",
        json!({"ApplicationName": name, "InputConfigurations": [{
            "Id": input_id,
            "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}]}),
    )?;
    let status = described(http)?["ApplicationDetail"]["ApplicationStatus"].clone();
    if status != "RUNNING" {
        bail!("application {name} is {status} after StartApplication");
    }
    Ok(())
}

/// Watches the output stream. Per-row queries: the shards' tips (cheap),
/// the first records of each shard parsed and checked. Windowed queries:
/// every record read, checked, kept and its BIDS added up.
struct Watch {
    stream: String,
    shards: u32,
    query: Query,
    /// Windowed: each shard's iterator (None once the shard is set up).
    iterators: HashMap<u32, String>,
    /// Windowed: the rows as [`WindowRow`]s.
    rows: Vec<WindowRow>,
    records: u64,
    /// What is compared with `expected`: records, or the BIDS column's sum.
    counted: u64,
    checked: u64,
    /// Rows whose values [`verify`] compared with the input's.
    verified: u64,
    problem: Option<String>,
    /// Windowed: the first and last arrivals seen.
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl Watch {
    fn new(stream: &str, shards: u32, query: Query) -> Watch {
        Watch {
            stream: stream.to_string(),
            shards,
            query,
            iterators: HashMap::new(),
            rows: Vec::new(),
            records: 0,
            counted: 0,
            checked: 0,
            verified: 0,
            problem: None,
            first_ms: None,
            last_ms: None,
        }
    }

    /// Looks at the output again.
    fn poll(&mut self, admin: &Client) -> anyhow::Result<()> {
        if !self.query.windowed() {
            self.records = tips(admin, &self.stream, self.shards)?.iter().sum();
            self.counted = self.records;
            return Ok(());
        }
        for shard in 0..self.shards {
            let it = match self.iterators.remove(&shard) {
                Some(it) => it,
                None => {
                    admin.get_shard_iterator(&self.stream, shard, StartPosition::TrimHorizon)?
                }
            };
            let mut it = Some(it);
            while let Some(current) = it.take() {
                let got = admin.get_records(&current, None)?;
                let more = !got.records.is_empty();
                for r in &got.records {
                    self.records += 1;
                    self.first_ms =
                        Some(self.first_ms.map_or(r.arrival_ms, |f| f.min(r.arrival_ms)));
                    self.last_ms = self.last_ms.max(Some(r.arrival_ms));
                    self.check(&r.data);
                }
                match got.next_iterator {
                    Some(next) if more => it = Some(next),
                    Some(next) => {
                        self.iterators.insert(shard, next);
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Checks one output record against the query; a window row adds its
    /// BIDS to `counted` and is kept.
    fn check(&mut self, data: &[u8]) {
        self.checked += 1;
        let row: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => return self.found(format!("not JSON ({e}): {}", show(data))),
        };
        let keys: &[&str] = match self.query {
            Query::Q0 => &[
                "AUCTION", "BIDDER", "PRICE", "CHANNEL", "URL", "DATETIME", "EXTRA",
            ],
            Query::Q1 => &["AUCTION", "BIDDER", "PRICE", "DATETIME"],
            Query::Q2 => &["AUCTION", "PRICE"],
            Query::Q5 => &["AUCTION", "BIDS"],
            Query::Q7 => &["BIDS", "PRICE"],
            Query::Tumble => &["AUCTION", "BIDS", "MAX_PRICE"],
        };
        let fits = row.as_object().is_some_and(|o| {
            o.len() == keys.len() && keys.iter().all(|k| o.get(*k).is_some_and(|v| !v.is_null()))
        });
        if !fits {
            return self.found(format!("not a row of {keys:?}: {}", show(data)));
        }
        let wrong = match self.query {
            Query::Q0 => !row["DATETIME"]
                .as_str()
                .is_some_and(|t| t.len() == 23 && t.as_bytes()[10] == b' '),
            // A DOUBLE with no fraction is written without one.
            Query::Q1 => !row["PRICE"].is_number(),
            Query::Q2 => row["AUCTION"].as_i64().is_none_or(|a| a % 123 != 0),
            Query::Q5 => row["BIDS"].as_u64().is_none_or(|n| n == 0),
            Query::Q7 | Query::Tumble => {
                let (price, auction) = match self.query {
                    Query::Q7 => ("PRICE", Some(0)),
                    _ => ("MAX_PRICE", row["AUCTION"].as_i64()),
                };
                match (auction, row["BIDS"].as_u64(), row[price].as_i64()) {
                    (Some(auction), Some(bids), Some(max_price)) if bids > 0 => {
                        self.counted += bids;
                        self.rows.push(WindowRow {
                            auction,
                            bids,
                            max_price,
                        });
                        false
                    }
                    _ => true,
                }
            }
        };
        if wrong {
            self.found(format!("unexpected row: {}", show(data)));
        }
    }

    fn found(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }

    /// The first and last output arrivals (server ms). Per-row queries: the
    /// first record of each shard is read (and the first batch checked) and
    /// the last record of each shard.
    fn arrivals(&mut self, admin: &Client) -> anyhow::Result<(i64, i64)> {
        if self.query.windowed() {
            return Ok((self.first_ms.unwrap_or(0), self.last_ms.unwrap_or(0)));
        }
        let tips = tips(admin, &self.stream, self.shards)?;
        let mut first = None;
        for (shard, &tip) in tips.iter().enumerate() {
            if tip == 0 {
                continue;
            }
            let it =
                admin.get_shard_iterator(&self.stream, shard as u32, StartPosition::TrimHorizon)?;
            let got = admin.get_records(&it, Some(1000))?;
            if let Some(r) = got.records.first() {
                first = Some(first.map_or(r.arrival_ms, |f: i64| f.min(r.arrival_ms)));
            }
            for r in &got.records {
                self.check(&r.data);
            }
        }
        let last = last_arrival_ms(admin, &self.stream, &tips)?;
        Ok((first.unwrap_or(0), last.unwrap_or(0)))
    }
}

/// At most 200 bytes of a record, for a message.
fn show(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned()
}

/// Polls until the output's count reaches `expected`, printing progress
/// each second; fails after [`STALL`] without progress.
fn wait_output(
    args: &Args,
    watch: &mut Watch,
    admin: &Client,
    errors: &str,
    expected: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut last_count, mut last_change) = (0, Instant::now());
    let mut tick = Instant::now();
    loop {
        watch.poll(admin)?;
        let got = watch.counted;
        if got >= expected {
            return Ok(());
        }
        if got != last_count {
            last_count = got;
            last_change = Instant::now();
        } else if last_change.elapsed() >= STALL {
            let errors: u64 = tips(admin, errors, 1)?.iter().sum();
            bail!(
                "the output stalled at {got} of {expected} ({} records, {errors} errors), nothing new in {} s",
                watch.records,
                STALL.as_secs()
            );
        }
        if !args.quiet && tick.elapsed() >= Duration::from_secs(1) {
            tick = Instant::now();
            eprintln!(
                "[{:5.1} s] output {got} of {expected}",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The error_stream's record count and its first record.
fn error_stream(admin: &Client, stream: &str) -> anyhow::Result<(u64, Option<String>)> {
    let count: u64 = tips(admin, stream, 1)?.iter().sum();
    if count == 0 {
        return Ok((0, None));
    }
    let it = admin.get_shard_iterator(stream, 0, StartPosition::TrimHorizon)?;
    let first = admin
        .get_records(&it, Some(1))?
        .records
        .first()
        .map(|r| show(&r.data));
    Ok((count, first))
}

// ------------------------------------------------------ latency (--rate)

/// The paced puts of a latency run: `rate` bids/s over `producers`
/// threads, `per_put` bids a PutRecords (one call a millisecond over all
/// producers, at most 500 bids), for `warmup` then `measured`.
#[derive(Clone, Copy, Debug)]
struct Pace {
    rate: u64,
    producers: usize,
    per_put: usize,
    warmup: Duration,
    measured: Duration,
}

impl Pace {
    fn of(args: &Args, rate: u64) -> Pace {
        Pace {
            rate,
            producers: args.producers.max(1),
            per_put: (rate / 1000).clamp(1, 500) as usize,
            warmup: Duration::from_secs_f64(args.warmup),
            measured: Duration::from_secs_f64(args.duration),
        }
    }

    /// The time between one producer's calls.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.per_put as f64 * self.producers as f64 / self.rate as f64)
    }
}

/// What paced puts did.
struct Paced {
    /// Bids stored (warm-up included), and those q2 keeps.
    put: u64,
    q2_matches: u64,
    /// Bids refused.
    errors: u64,
    /// From the first intended call to the last call's return: the warm-up
    /// and the measured time when the producers kept up.
    wall: Duration,
    /// PutRecords latency after the warm-up, µs, from each call's intended
    /// send time (so a call that starts late counts its wait).
    latency: Histogram<u64>,
}

/// Puts bids into `stream` as `pace` says, open loop; the bids' indices
/// come from `next` (their partition key, as in the pre-load).
fn paced_puts(
    addr: SocketAddr,
    stream: &str,
    pace: Pace,
    next: &AtomicU64,
) -> anyhow::Result<Paced> {
    let interval = pace.interval();
    let start = Instant::now() + Duration::from_millis(20);
    let (measure_from, end) = (start + pace.warmup, start + pace.warmup + pace.measured);
    let producer = |t: usize| -> anyhow::Result<Paced> {
        let client = Client::connect(addr, ClientConfig::default())?;
        let mut paced = Paced {
            put: 0,
            q2_matches: 0,
            errors: 0,
            wall: Duration::ZERO,
            latency: report::histogram(),
        };
        // Producers start spread over one interval.
        let offset = t as f64 / pace.producers as f64;
        for k in 0u64.. {
            let intended = start + interval.mul_f64(k as f64 + offset);
            if intended >= end {
                break;
            }
            if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let from = next.fetch_add(pace.per_put as u64, Ordering::Relaxed);
            let bids: Vec<(String, Vec<u8>, i64)> = (from..from + pace.per_put as u64)
                .map(|i| {
                    let (data, auction) = bid(SEED, i);
                    (i.to_string(), data, auction)
                })
                .collect();
            let entries: Vec<PutRecordsEntry<'_>> = bids
                .iter()
                .map(|(key, data, _)| PutRecordsEntry {
                    partition_key: key,
                    explicit_hash_key: None,
                    data,
                })
                .collect();
            let results = client.put_records(stream, &entries)?;
            let took = intended.elapsed();
            if intended >= measure_from {
                paced.latency.saturating_record(took.as_micros() as u64);
            }
            for (result, (_, _, auction)) in results.iter().zip(&bids) {
                if result.is_ok() {
                    paced.put += 1;
                    paced.q2_matches += u64::from(Query::Q2.keeps(*auction));
                } else {
                    paced.errors += 1;
                }
            }
        }
        Ok(paced)
    };
    let outcomes: Vec<anyhow::Result<Paced>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..pace.producers)
            .map(|t| scope.spawn(move || producer(t)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a producer thread panicked"))?
            })
            .collect()
    });
    let mut total = Paced {
        put: 0,
        q2_matches: 0,
        errors: 0,
        wall: Instant::now().saturating_duration_since(start),
        latency: report::histogram(),
    };
    for paced in outcomes {
        let paced = paced?;
        total.put += paced.put;
        total.q2_matches += paced.q2_matches;
        total.errors += paced.errors;
        total.latency.add(&paced.latency)?;
    }
    Ok(total)
}

/// What an output record's partition key says of its row
/// (docs/analytics.md, "Outputs"; the engine's run/sink.rs). The current
/// form and the two before it are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowKey {
    /// `…:r<shard>:<path>:<offset>.<part>`: a per-row row made from the
    /// record at `offset` of input shard `shard`.
    Record { shard: u32, offset: u64 },
    /// `…:s<shard>:<path>:<n>` or `…:h<shard>:<path>:<n>` (before:
    /// `…:s<shard>:<n>`): the n-th (from 0) per-row row of input shard
    /// `shard` (one pump: one path).
    PerRow { shard: u32, n: u64 },
    /// `…:w<path>:<ROWTIME ms>:<k>`: a closed row (a window's, or a
    /// sliding pump's) and its ROWTIME.
    Closed { rowtime_ms: i64 },
}

fn row_key(key: &str) -> Option<RowKey> {
    let mut parts = key.rsplit(':');
    let (last, second) = (parts.next()?, parts.next()?);
    let third = parts.next();
    if let Some(shard) = third.and_then(|p| p.strip_prefix('r')?.parse().ok())
        && let Some((offset, part)) = last.split_once('.')
    {
        part.parse::<u64>().ok()?;
        return Some(RowKey::Record {
            shard,
            offset: offset.parse().ok()?,
        });
    }
    let shard_of = |part: &str| -> Option<u32> {
        part.strip_prefix('s')
            .or_else(|| part.strip_prefix('h'))?
            .parse()
            .ok()
    };
    if let Some(shard) = third.and_then(shard_of).or_else(|| shard_of(second)) {
        return Some(RowKey::PerRow {
            shard,
            n: last.parse().ok()?,
        });
    }
    third?.strip_prefix('w')?;
    last.parse::<u64>().ok()?;
    Some(RowKey::Closed {
        rowtime_ms: second.parse().ok()?,
    })
}

/// A histogram of milliseconds, up to an hour.
fn ms_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds")
}

/// What the latency runs found.
#[derive(Debug, Serialize)]
struct LatencyOutcome {
    scenario: &'static str,
    mode: &'static str,
    query: &'static str,
    rate: u64,
    records_per_put: usize,
    producers: usize,
    warmup_s: f64,
    measured_s: f64,
    shards: u32,
    cores: usize,
    durability: String,
    /// Where the row latency starts: the input record's arrival (per-row
    /// queries and q5, whose ROWTIME is that arrival) or the window's end.
    row_latency_from: &'static str,
    /// Over every run: output arrival − [`Self::row_latency_from`], ms.
    row_latency_ms: Option<Percentiles>,
    /// Over every run: PutRecords latency after the warm-up, µs, into a
    /// stream no application reads, and into the application's input.
    put_latency_alone_us: Option<Percentiles>,
    put_latency_beside_application_us: Option<Percentiles>,
    runs: Vec<LatencyRun>,
    machine: Machine,
}

/// What one latency run found.
#[derive(Debug, Default, Serialize)]
struct LatencyRun {
    /// Bids stored (warm-up included) without and with the application,
    /// and bids refused.
    put_alone: u64,
    put_beside_application: u64,
    put_errors: u64,
    /// Each put phase's wall time, s (`--warmup` + `--duration` when the
    /// producers kept up with the rate).
    put_wall_alone_s: f64,
    put_wall_beside_application_s: f64,
    row_latency_ms: Option<Percentiles>,
    put_latency_alone_us: Option<Percentiles>,
    put_latency_beside_application_us: Option<Percentiles>,
    /// Server CPU seconds over each put phase (the second's includes the
    /// application).
    server_cpu_alone_s: Option<f64>,
    server_cpu_beside_application_s: Option<f64>,
    /// The bench's CPU seconds over the two put phases (the producers'
    /// work, the same in both).
    bench_cpu_s: f64,
    /// From the end of the puts to the output's last arrival, s.
    output_after_puts_s: f64,
    output_records: u64,
    counted: u64,
    expected: u64,
    error_records: u64,
    first_error: Option<String>,
    /// Output rows whose latency was measured (per-row queries: those
    /// whose AUCTION is that of the input row their key names).
    measured_rows: u64,
    first_problem: Option<String>,
}

/// The latency histograms of every run.
struct Latencies {
    rows: Histogram<u64>,
    alone: Histogram<u64>,
    beside: Histogram<u64>,
}

/// `--rate`: each run puts bids at a fixed rate into a stream no
/// application reads, then, with the application started on its empty
/// input, into that input; and measures each output row's latency.
fn latency(
    args: &Args,
    machine: Machine,
    durability: &str,
    cores: usize,
    rate: u64,
) -> anyhow::Result<()> {
    let pace = Pace::of(args, rate);
    let mut all = Latencies {
        rows: ms_histogram(),
        alone: report::histogram(),
        beside: report::histogram(),
    };
    let mut runs = Vec::new();
    for i in 0..args.runs {
        if !args.quiet {
            eprintln!("run {} of {}", i + 1, args.runs);
        }
        runs.push(latency_run(args, cores, durability, i, pace, &mut all)?);
    }
    let out = LatencyOutcome {
        scenario: "analytics",
        mode: "latency",
        query: args.query.name(),
        rate,
        records_per_put: pace.per_put,
        producers: pace.producers,
        warmup_s: args.warmup,
        measured_s: args.duration,
        shards: 2 * cores as u32,
        cores,
        durability: durability.into(),
        row_latency_from: if args.query.windowed() {
            "window end"
        } else {
            "input arrival"
        },
        row_latency_ms: Percentiles::of(&all.rows),
        put_latency_alone_us: Percentiles::of(&all.alone),
        put_latency_beside_application_us: Percentiles::of(&all.beside),
        runs,
        machine,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", out.table());
    }
    Ok(())
}

/// `p50 / p99 / max` of a histogram, in its unit.
fn spread(p: &Option<Percentiles>, unit: &str) -> String {
    p.map_or("n/a".into(), |p| {
        format!("p50 {} / p99 {} / max {} {unit}", p.p50, p.p99, p.max)
    })
}

impl LatencyOutcome {
    fn table(&self) -> String {
        let mut s = format!(
            "analytics {} latency: {} bids/s offered ({} a PutRecords, {} producers) for {:.0} + {:.0} s, {} shards, {} server cores, durability {}\n  machine: {}\n",
            self.query,
            self.rate,
            self.records_per_put,
            self.producers,
            self.warmup_s,
            self.measured_s,
            self.shards,
            self.cores,
            self.durability,
            self.machine.describe()
        );
        let cpu = |c: Option<f64>| c.map_or("n/a".into(), |c| format!("{c:.2} s"));
        for (i, r) in self.runs.iter().enumerate() {
            s += &format!(
                "  run {}: row latency ({} -> output arrival) {}; last output {:.2} s after the puts\n",
                i + 1,
                self.row_latency_from,
                spread(&r.row_latency_ms, "ms"),
                r.output_after_puts_s.max(0.0)
            );
            s += &format!(
                "         PutRecords alone {} (server CPU {}), beside the application {} (server CPU {}); bench CPU {:.2} s\n",
                spread(&r.put_latency_alone_us, "us"),
                cpu(r.server_cpu_alone_s),
                spread(&r.put_latency_beside_application_us, "us"),
                cpu(r.server_cpu_beside_application_s),
                r.bench_cpu_s
            );
            s += &format!(
                "         put {} bids in {:.2} s + {} in {:.2} s ({} refused); output {} records, counted {} of {}, {} errors{}, {} rows measured{}\n",
                r.put_alone,
                r.put_wall_alone_s,
                r.put_beside_application,
                r.put_wall_beside_application_s,
                r.put_errors,
                r.output_records,
                r.counted,
                r.expected,
                r.error_records,
                r.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                r.measured_rows,
                r.first_problem
                    .as_deref()
                    .map(|p| format!(", PROBLEM: {p}"))
                    .unwrap_or_default()
            );
        }
        s += &format!(
            "  all runs: row latency {}\n            PutRecords alone {}, beside the application {}\n",
            spread(&self.row_latency_ms, "ms"),
            spread(&self.put_latency_alone_us, "us"),
            spread(&self.put_latency_beside_application_us, "us")
        );
        s
    }
}

/// One latency run on a server of its own.
fn latency_run(
    args: &Args,
    cores: usize,
    durability: &str,
    i: u32,
    pace: Pace,
    all: &mut Latencies,
) -> anyhow::Result<LatencyRun> {
    let (server, http, admin) = start_server(args, cores, durability)?;
    let shards = 2 * cores as u32;
    let tag = format!("{}-{i}", std::process::id());
    let (alone, input, output, errors) = (
        format!("alone-{tag}"),
        format!("bids-{tag}"),
        format!("out-{tag}"),
        format!("err-{tag}"),
    );
    for (name, n) in [
        (&alone, shards),
        (&input, shards),
        (&output, shards),
        (&errors, 1),
    ] {
        admin
            .create_stream(name, n)
            .with_context(|| format!("CreateStream {name}"))?;
    }
    let server_cpu = || server.pid.and_then(process_cpu_seconds);
    let next = AtomicU64::new(0);
    if !args.quiet {
        eprintln!(
            "server pid {}; putting {} bids/s for {:.0} + {:.0} s into a stream no application reads ...",
            server.pid.unwrap_or(0),
            pace.rate,
            args.warmup,
            args.duration
        );
    }
    let bench0 = own_cpu_seconds();
    let cpu0 = server_cpu();
    let without = paced_puts(server.addr, &alone, pace, &next)?;
    let cpu1 = server_cpu();
    let query = args.query;
    let name = create_application(http, &input, &output, &errors, query)?;
    // TRIM_HORIZON on the empty input: the application reads every bid.
    start_application(http, &name)?;
    if !args.quiet {
        eprintln!(
            "application {name} ({}) running; putting the same into its input ...",
            query.name()
        );
    }
    let cpu2 = server_cpu();
    let beside = paced_puts(server.addr, &input, pace, &next)?;
    let cpu3 = server_cpu();
    let bench_cpu_s = own_cpu_seconds() - bench0;
    let puts_ended_ms = now_ms();
    let expected = if query == Query::Q2 {
        beside.q2_matches
    } else {
        beside.put
    };
    let mut watch = Watch::new(&output, shards, query);
    let waited = wait_output(args, &mut watch, &admin, &errors, expected);
    let (error_records, first_error) = error_stream(&admin, &errors)?;
    output_complete(waited, error_records, first_error.as_deref())?;
    stop_application(http, &name);
    if !args.quiet {
        eprintln!("reading the input and the output back ...");
    }
    let (_, last_ms) = watch.arrivals(&admin)?;
    // The input rows, per shard by offset (the input is new: its first
    // record is at offset 0), and the per-row rows they make.
    let by_offset: Vec<Vec<SeenBid>> = if query.windowed() || query == Query::Q5 {
        Vec::new()
    } else {
        let input_tips = tips(&admin, &input, shards)?;
        input_bids(&admin, &input, &input_tips)?
    };
    let kept: Vec<Vec<SeenBid>> = (by_offset.iter())
        .map(|bids| {
            (bids.iter())
                .filter(|b| query.keeps(b.auction))
                .cloned()
                .collect()
        })
        .collect();
    let mut rows = ms_histogram();
    let mut problem = watch.problem.clone();
    for (shard, tip) in tips(&admin, &output, shards)?.into_iter().enumerate() {
        read_shard(&admin, &output, shard as u32, tip, |r| {
            let from_ms = match row_key(&r.partition_key) {
                Some(key @ (RowKey::PerRow { .. } | RowKey::Record { .. })) => {
                    let input = match key {
                        RowKey::Record { shard, offset } => by_offset
                            .get(shard as usize)
                            .and_then(|k| k.get(offset as usize)),
                        RowKey::PerRow { shard, n } => {
                            kept.get(shard as usize).and_then(|k| k.get(n as usize))
                        }
                        RowKey::Closed { .. } => None,
                    };
                    let auction = serde_json::from_slice::<RowAuction>(&r.data).ok();
                    match (input, auction) {
                        (Some(b), Some(a)) if a.auction == b.auction => Some(b.arrival_ms),
                        _ => {
                            problem.get_or_insert(format!(
                                "output row {} ({}) is not the input row its key names ({input:?})",
                                r.partition_key,
                                show(&r.data)
                            ));
                            None
                        }
                    }
                }
                Some(RowKey::Closed { rowtime_ms }) => Some(rowtime_ms),
                None => {
                    problem.get_or_insert(format!(
                        "output partition key {} names no row",
                        r.partition_key
                    ));
                    None
                }
            };
            if let Some(from_ms) = from_ms {
                rows.saturating_record((r.arrival_ms - from_ms).max(0) as u64);
            }
        })?;
    }
    all.rows.add(&rows)?;
    all.alone.add(&without.latency)?;
    all.beside.add(&beside.latency)?;
    Ok(LatencyRun {
        put_alone: without.put,
        put_beside_application: beside.put,
        put_errors: without.errors + beside.errors,
        put_wall_alone_s: without.wall.as_secs_f64(),
        put_wall_beside_application_s: beside.wall.as_secs_f64(),
        row_latency_ms: Percentiles::of(&rows),
        put_latency_alone_us: Percentiles::of(&without.latency),
        put_latency_beside_application_us: Percentiles::of(&beside.latency),
        server_cpu_alone_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        server_cpu_beside_application_s: cpu2.zip(cpu3).map(|(a, b)| b - a),
        bench_cpu_s,
        output_after_puts_s: (last_ms - puts_ended_ms) as f64 / 1e3,
        output_records: watch.records,
        counted: watch.counted,
        expected,
        error_records,
        first_error,
        measured_rows: rows.len(),
        first_problem: problem,
    })
}

// ------------------------------------------------------ checking values

/// A bid as the application saw it: its arrival (its ROWTIME), auction
/// and price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeenBid {
    arrival_ms: i64,
    auction: i64,
    price: i64,
}

/// The members of a bid the checks need.
#[derive(Deserialize)]
struct BidFields {
    auction: i64,
    price: i64,
}

/// The AUCTION column of an output row.
#[derive(Deserialize)]
struct RowAuction {
    #[serde(rename = "AUCTION")]
    auction: i64,
}

/// A q5 output row.
#[derive(Deserialize)]
struct SlidingRow {
    #[serde(rename = "AUCTION")]
    auction: i64,
    #[serde(rename = "BIDS")]
    bids: u64,
}

/// A row of a windowed query: AUCTION (0 for q7, which has none), BIDS and
/// the highest price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct WindowRow {
    auction: i64,
    bids: u64,
    max_price: i64,
}

/// Gives every record of shard `shard` of `stream`, from TRIM_HORIZON up
/// to its next offset `tip`, to `each`.
fn read_shard(
    admin: &Client,
    stream: &str,
    shard: u32,
    tip: u64,
    mut each: impl FnMut(&Record),
) -> anyhow::Result<()> {
    let mut it = admin.get_shard_iterator(stream, shard, StartPosition::TrimHorizon)?;
    let (mut read, mut empty) = (0u64, 0u32);
    while read < tip {
        let got = admin.get_records(&it, Some(10_000))?;
        if got.records.is_empty() {
            empty += 1;
            if empty > 100 {
                bail!("{stream} shard {shard} gave nothing at {read} of {tip} records");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got.records.iter().for_each(&mut each);
        read += got.records.len() as u64;
        match got.next_iterator {
            Some(next) => it = next,
            None => break,
        }
    }
    Ok(())
}

/// Every bid of `stream` (next offsets `tips`), per shard, in shard order.
fn input_bids(admin: &Client, stream: &str, tips: &[u64]) -> anyhow::Result<Vec<Vec<SeenBid>>> {
    let mut shards = Vec::with_capacity(tips.len());
    for (shard, &tip) in tips.iter().enumerate() {
        let mut bids = Vec::with_capacity(tip as usize);
        let mut bad = None;
        read_shard(
            admin,
            stream,
            shard as u32,
            tip,
            |r| match serde_json::from_slice::<BidFields>(&r.data) {
                Ok(b) => bids.push(SeenBid {
                    arrival_ms: r.arrival_ms,
                    auction: b.auction,
                    price: b.price,
                }),
                Err(e) => {
                    bad.get_or_insert(format!("{e}: {}", show(&r.data)));
                }
            },
        )?;
        if let Some(bad) = bad {
            bail!("an input record is not a bid ({bad})");
        }
        shards.push(bids);
    }
    Ok(shards)
}

/// After the drain: compares every output row of q5, q7 and tumble with
/// what the input's arrival stamps give ([`sliding_counts`],
/// [`window_rows`]); a difference is the run's problem.
fn verify(
    admin: &Client,
    input: &str,
    input_tips: &[u64],
    output: &str,
    shards: u32,
    watch: &mut Watch,
) -> anyhow::Result<()> {
    let bids: Vec<SeenBid> = input_bids(admin, input, input_tips)?
        .into_iter()
        .flatten()
        .collect();
    match watch.query {
        Query::Q5 => {
            let expected = sliding_counts(&bids, WINDOW_MS);
            let mut got: HashMap<i64, Vec<u64>> = HashMap::new();
            let mut bad = None;
            for (shard, tip) in tips(admin, output, shards)?.into_iter().enumerate() {
                read_shard(
                    admin,
                    output,
                    shard as u32,
                    tip,
                    |r| match serde_json::from_slice::<SlidingRow>(&r.data) {
                        Ok(row) => got.entry(row.auction).or_default().push(row.bids),
                        Err(e) => {
                            bad.get_or_insert(format!("not a q5 row ({e}): {}", show(&r.data)));
                        }
                    },
                )?;
            }
            if let Some(bad) = bad {
                watch.found(bad);
            }
            watch.verified = got.values().map(|v| v.len() as u64).sum();
            let mut auctions: Vec<i64> = expected.keys().chain(got.keys()).copied().collect();
            auctions.sort_unstable();
            auctions.dedup();
            for auction in auctions {
                let mut counts = got.remove(&auction).unwrap_or_default();
                counts.sort_unstable();
                let want = expected.get(&auction).map_or(&[][..], Vec::as_slice);
                if counts != want {
                    watch.found(format!(
                        "auction {auction}: BIDS {} (sorted) where the input gives {}",
                        head(&counts),
                        head(want)
                    ));
                    break;
                }
            }
        }
        Query::Q7 | Query::Tumble => {
            let expected = window_rows(&bids, watch.query == Query::Tumble);
            let mut got = watch.rows.clone();
            got.sort_unstable();
            watch.verified = got.len() as u64;
            if got != expected {
                let missing = expected.iter().find(|r| got.binary_search(r).is_err());
                let extra = got.iter().find(|r| expected.binary_search(r).is_err());
                watch.found(format!(
                    "{} window rows where the input gives {}; first missing {missing:?}, first unexpected {extra:?}",
                    got.len(),
                    expected.len()
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The first values of a list, for a message.
fn head(v: &[u64]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(u64::to_string).collect();
    let more = if v.len() > 8 { ", ..." } else { "" };
    format!("[{}{more}] ({} rows)", shown.join(", "), v.len())
}

/// What q5 gives each auction's bids, sorted: a bid's BIDS counts its
/// auction's bids with ROWTIME in [its ROWTIME − `range_ms`, its ROWTIME]
/// that the engine took before it, itself included. Bids with the same
/// ROWTIME come in an order the bench cannot know (the home task merges
/// the shards), but the k of them get `before + 1 ..= before + k` in any
/// order, so the sorted lists are exact.
fn sliding_counts(bids: &[SeenBid], range_ms: i64) -> HashMap<i64, Vec<u64>> {
    let mut times: HashMap<i64, Vec<i64>> = HashMap::new();
    for b in bids {
        times.entry(b.auction).or_default().push(b.arrival_ms);
    }
    times
        .into_iter()
        .map(|(auction, mut times)| {
            times.sort_unstable();
            let mut counts = Vec::with_capacity(times.len());
            let (mut oldest, mut at) = (0, 0);
            while at < times.len() {
                let t = times[at];
                let same = times[at..].iter().take_while(|&&u| u == t).count();
                while times[oldest] < t - range_ms {
                    oldest += 1;
                }
                let before = (at - oldest) as u64;
                counts.extend((1..=same as u64).map(|k| before + k));
                at += same;
            }
            counts.sort_unstable();
            (auction, counts)
        })
        .collect()
}

/// The rows the tumbling queries give, sorted: per 10-second window of
/// ROWTIME (and per auction, `by_auction`: tumble), the bids and the
/// highest price.
fn window_rows(bids: &[SeenBid], by_auction: bool) -> Vec<WindowRow> {
    let mut groups: HashMap<(i64, i64), (u64, i64)> = HashMap::new();
    for b in bids {
        let auction = if by_auction { b.auction } else { 0 };
        let group = groups
            .entry((b.arrival_ms.div_euclid(WINDOW_MS), auction))
            .or_insert((0, i64::MIN));
        group.0 += 1;
        group.1 = group.1.max(b.price);
    }
    let mut rows: Vec<WindowRow> = groups
        .into_iter()
        .map(|((_, auction), (bids, max_price))| WindowRow {
            auction,
            bids,
            max_price,
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use riffle_bench::nexmark::BASE_MS;

    use super::*;

    fn seen(arrival_ms: i64, auction: i64, price: i64) -> SeenBid {
        SeenBid {
            arrival_ms,
            auction,
            price,
        }
    }

    #[test]
    fn sliding_counts_cover_the_range_and_tie_in_any_order() {
        let bids = [
            seen(0, 7, 1),
            seen(5_000, 7, 1),
            seen(5_000, 7, 1),
            seen(10_000, 7, 1), // the bid at 0 is just in its range
            seen(10_001, 7, 1), // the bid at 0 is not
            seen(30_000, 7, 1),
            seen(10_000, 8, 1),
        ];
        let counts = sliding_counts(&bids, WINDOW_MS);
        // 5 000 twice: 2 and 3 in either order; 10 000: 4; 10 001: 4 (0 left).
        assert_eq!(counts[&7], vec![1, 1, 2, 3, 4, 4]);
        assert_eq!(counts[&8], vec![1]);
        assert_eq!(counts.len(), 2);
        // The input's order does not matter.
        let mut reversed = bids;
        reversed.reverse();
        assert_eq!(sliding_counts(&reversed, WINDOW_MS), counts);
    }

    #[test]
    fn window_rows_count_and_take_the_highest_price_per_window() {
        let bids = [
            seen(BASE_MS, 1, 50),
            seen(BASE_MS + 9_999, 1, 70),
            seen(BASE_MS + 9_999, 2, 90),
            seen(BASE_MS + 10_000, 1, 10),
        ];
        let row = |auction, bids, max_price| WindowRow {
            auction,
            bids,
            max_price,
        };
        assert_eq!(
            window_rows(&bids, true),
            vec![row(1, 1, 10), row(1, 2, 70), row(2, 1, 90)]
        );
        assert_eq!(
            window_rows(&bids, false),
            vec![row(0, 1, 10), row(0, 3, 90)]
        );
        let rows = window_rows(&bids, false);
        assert_eq!(rows.iter().map(|r| r.bids).sum::<u64>(), bids.len() as u64);
    }

    #[test]
    fn row_keys_name_per_row_and_closed_rows() {
        let prefix = "app-1234:2.1:3:";
        let path = "cbf29ce484222325";
        for (key, row) in [
            (
                format!("{prefix}r3:{path}:98765.0"),
                RowKey::Record {
                    shard: 3,
                    offset: 98765,
                },
            ),
            (
                format!("{prefix}s5:{path}:1200"),
                RowKey::PerRow { shard: 5, n: 1200 },
            ),
            (
                format!("{prefix}h0:{path}:0"),
                RowKey::PerRow { shard: 0, n: 0 },
            ),
            (
                format!("{prefix}w{path}:1767225610000:17"),
                RowKey::Closed {
                    rowtime_ms: 1_767_225_610_000,
                },
            ),
            // The form before paths.
            (
                format!("{prefix}s5:1200"),
                RowKey::PerRow { shard: 5, n: 1200 },
            ),
            (
                format!("{prefix}w0:1767225610000:17"),
                RowKey::Closed {
                    rowtime_ms: 1_767_225_610_000,
                },
            ),
        ] {
            assert_eq!(row_key(&key), Some(row), "{key}");
        }
        for bad in [
            "",
            "s1",
            "x:e4",
            "a:sx:1",
            "a:w0:t:1",
            "a:v0:10:1",
            "a:s1:p:x",
            "a:r1:p:x.0",
            "a:r1:p:1.x",
        ] {
            assert_eq!(row_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_pace_is_one_call_a_millisecond_over_the_producers() {
        let pace = |rate| Pace {
            rate,
            producers: 4,
            per_put: (rate / 1000).clamp(1, 500) as usize,
            warmup: Duration::ZERO,
            measured: Duration::from_secs(1),
        };
        let p = pace(100_000);
        assert_eq!((p.per_put, p.interval()), (100, Duration::from_millis(4)));
        let p = pace(1_000_000);
        assert_eq!((p.per_put, p.interval()), (500, Duration::from_millis(2)));
        let p = pace(500);
        assert_eq!((p.per_put, p.interval()), (1, Duration::from_millis(8)));
    }

    #[test]
    fn q2_keeps_the_multiples_of_123_and_the_others_keep_all() {
        assert!(Query::Q2.keeps(1230) && !Query::Q2.keeps(1231));
        assert!(Query::Q0.keeps(1231) && Query::Q5.keeps(1231));
        assert!(Query::Q7.windowed() && Query::Tumble.windowed() && !Query::Q5.windowed());
    }
}
