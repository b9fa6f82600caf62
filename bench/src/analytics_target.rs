//! The `analytics` scenario: a Kinesis Data Analytics for SQL application
//! draining a pre-loaded backlog of Nexmark-like bids (docs/analytics-design.md
//! §7, issue 14). The figure is events/s per core.
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
//! 4. polls the output until it holds everything it should: for q0 and q1 a
//!    record per bid, for q2 a record per bid the generator knows matches,
//!    for the tumbling window rows whose counts add up to the bids.
//!
//! The drain time runs from the StartApplication call to the arrival (the
//! server's stamp) of the last output record. For the tumbling window the
//! bench first waits until the last pre-loaded window has ended (at most
//! 10 s, reported as the settle time): the backlog's windows then close as
//! soon as every shard has been read to its tip, so the drain is the
//! processing alone; settle + drain is what a user starting at once waits
//! at most. Server CPU comes from `/proc/<pid>/stat` over the drain.
//!
//! The generator is this file's own (the published Nexmark model, not the
//! `nexmark` crate): bids of a 1:3:46 person:auction:bid event stream, half
//! of them on the hot auction (the newest multiple of 100), the others
//! spread over the 100 newest; three quarters by the hot bidder, the others
//! over the 1,000 newest people; prices log-uniform between 1 and 10^8
//! cents; a tenth of the channels one of four named, the rest `channel-N`.
//! Every bid follows from the seed and its index alone, so the producer
//! threads generate their slices independently.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::ValueEnum;
use riffle_client::{Client, ClientConfig, PutRecordsEntry, StartPosition};
use riffle_protocol::seqno;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Args;
use crate::http_target::admin_call_to;
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
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
    /// Bids and the highest price per auction per 10-second tumbling window.
    Tumble,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Tumble => "tumble",
        }
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
/// The tumbling query's window, ms.
const WINDOW_MS: i64 = 10_000;
/// How long the output may make no progress before the run gives up.
const STALL: Duration = Duration::from_secs(30);
/// How often the output is polled.
const POLL: Duration = Duration::from_millis(25);
/// The generator's seed (every run loads the same bids).
const SEED: u64 = 14;

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
    /// Output records, and what they should be (q0-q2: records; tumble:
    /// the sum of the BIDS column, `expected` bids).
    output_records: u64,
    counted: u64,
    expected: u64,
    error_records: u64,
    first_error: Option<String>,
    /// Output records parsed and checked against the query.
    checked: u64,
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
                "         load {:.2} s ({:.0} B/bid){}; output {} records, counted {} of {}, {} errors{}, {} checked{}\n",
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

/// One run on a server of its own.
fn one_run(args: &Args, cores: usize, durability: &str, i: u32) -> anyhow::Result<RunOutcome> {
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
    if query == Query::Tumble {
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
    if let Err(e) = waited {
        let first = first_error.map(|e| format!("; first error: {e}"));
        bail!(
            "{e:#} ({error_records} errors{})",
            first.unwrap_or_default()
        );
    }
    let _ = admin_call_to(
        http,
        ANALYTICS,
        "StopApplication",
        json!({"ApplicationName": name}),
    );
    let (first_ms, last_ms) = watch.arrivals(&admin)?;
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

/// The bid schema: every column mapped from its JSON member.
fn bid_columns() -> Value {
    let column = |name: &str, path: &str, ty: &str| json!({"Name": name, "Mapping": format!("$.{path}"), "SqlType": ty});
    json!([
        column("AUCTION", "auction", "BIGINT"),
        column("BIDDER", "bidder", "BIGINT"),
        column("PRICE", "price", "BIGINT"),
        column("CHANNEL", "channel", "VARCHAR(16)"),
        column("URL", "url", "VARCHAR(128)"),
        column("DATETIME", "dateTime", "TIMESTAMP"),
        column("EXTRA", "extra", "VARCHAR(64)"),
    ])
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
                "InputSchema": {
                    "RecordFormat": {"RecordFormatType": "JSON",
                                     "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
                    "RecordEncoding": "UTF-8",
                    "RecordColumns": bid_columns(),
                },
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
/// the first records of each shard parsed and checked. Tumble: every
/// record read and its BIDS added up.
struct Watch {
    stream: String,
    shards: u32,
    query: Query,
    /// Tumble: each shard's iterator (None once the shard is set up).
    iterators: HashMap<u32, String>,
    records: u64,
    /// What is compared with `expected`: records, or the BIDS column's sum.
    counted: u64,
    checked: u64,
    problem: Option<String>,
    /// Tumble: the first and last arrivals seen.
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
            records: 0,
            counted: 0,
            checked: 0,
            problem: None,
            first_ms: None,
            last_ms: None,
        }
    }

    /// Looks at the output again.
    fn poll(&mut self, admin: &Client) -> anyhow::Result<()> {
        if self.query != Query::Tumble {
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

    /// Checks one output record against the query; a tumble row adds its
    /// BIDS to `counted`.
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
            Query::Tumble => match row["BIDS"].as_u64() {
                Some(n) => {
                    self.counted += n;
                    n == 0
                }
                None => true,
            },
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
        if self.query == Query::Tumble {
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

// ------------------------------------------------------------- the bids

/// First ids, as Nexmark numbers them.
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_PERSON_ID: i64 = 1000;
/// Events per epoch: 1 person, 3 auctions, 46 bids.
const BIDS_PER_EPOCH: u64 = 46;
const AUCTIONS_PER_EPOCH: i64 = 3;
/// A hot auction is the newest multiple of this; a hot bidder the newest
/// multiple of it plus one.
const HOT_STEP: i64 = 100;
/// 1 in HOT_AUCTION_RATIO bids is not on the hot auction; 1 in
/// HOT_BIDDER_RATIO not by the hot bidder.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const AUCTIONS_IN_FLIGHT: u64 = 100;
const ACTIVE_PEOPLE: u64 = 1000;
/// 2026-01-01 00:00:00 UTC; bids are 1 ms apart per 10 events.
const BASE_MS: i64 = 1_767_225_600_000;
const NAMED_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// SplitMix64: small, seedable, good enough for a load.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn letters(&mut self, n: usize, out: &mut Vec<u8>) {
        out.extend((0..n).map(|_| b'a' + self.below(26) as u8));
    }
}

/// Bid `index` of the stream seeded `seed`, as JSON, and its auction.
fn bid(seed: u64, index: u64) -> (Vec<u8>, i64) {
    let mut rng = Rng(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next();
    let epoch = index / BIDS_PER_EPOCH;
    // The event's number in the 1:3:46 stream (person, auctions, then bids).
    let event = epoch * 50 + 4 + index % BIDS_PER_EPOCH;
    let newest_auction = epoch as i64 * AUCTIONS_PER_EPOCH + AUCTIONS_PER_EPOCH - 1;
    let newest_person = epoch as i64;
    let auction = FIRST_AUCTION_ID
        + if rng.below(HOT_AUCTION_RATIO) > 0 {
            newest_auction / HOT_STEP * HOT_STEP
        } else {
            (newest_auction - rng.below(AUCTIONS_IN_FLIGHT) as i64).max(0)
        };
    let bidder = FIRST_PERSON_ID
        + if rng.below(HOT_BIDDER_RATIO) > 0 {
            newest_person / HOT_STEP * HOT_STEP + 1
        } else {
            (newest_person - rng.below(ACTIVE_PEOPLE) as i64).max(0)
        };
    let price = (10f64.powf(rng.unit() * 6.0) * 100.0).round() as i64;
    let mut out = Vec::with_capacity(208);
    let _ = write!(
        out,
        r#"{{"auction":{auction},"bidder":{bidder},"price":{price},"channel":""#
    );
    if rng.below(10) == 0 {
        out.extend_from_slice(NAMED_CHANNELS[rng.below(4) as usize].as_bytes());
    } else {
        let _ = write!(out, "channel-{}", rng.below(10_000));
    }
    out.extend_from_slice(br#"","url":"https://www.nexmark.com/"#);
    for _ in 0..3 {
        rng.letters(5, &mut out);
        out.push(b'/');
    }
    out.extend_from_slice(br#"item.htm?query=1","dateTime":""#);
    timestamp(BASE_MS + (event / 10) as i64, &mut out);
    out.extend_from_slice(br#"","extra":""#);
    // Pad to 160-200 bytes with at most 64 letters.
    let target = 160 + rng.below(41) as usize;
    let extra = target.saturating_sub(out.len() + 2).min(64);
    rng.letters(extra, &mut out);
    out.extend_from_slice(b"\"}");
    (out, auction)
}

/// `yyyy-MM-dd HH:mm:ss.SSS` (UTC) of `ms` since the epoch.
fn timestamp(ms: i64, out: &mut Vec<u8>) {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days to a civil date: eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_are_json_of_the_schema_and_their_size() {
        for i in [0, 1, 45, 46, 1_000_000, 1_999_999] {
            let (data, auction) = bid(SEED, i);
            assert!((150..=200).contains(&data.len()), "{}", show(&data));
            let v: Value = serde_json::from_slice(&data).expect("a bid is JSON");
            assert_eq!(v["auction"].as_i64(), Some(auction));
            assert!(v["bidder"].as_i64().is_some_and(|b| b >= FIRST_PERSON_ID));
            assert!(
                v["price"]
                    .as_i64()
                    .is_some_and(|p| (100..=100_000_000).contains(&p))
            );
            assert!(v["channel"].as_str().is_some_and(|c| c.len() <= 16));
            assert!(v["url"].as_str().is_some_and(|u| u.len() <= 128));
            assert!(v["extra"].as_str().is_some_and(|e| e.len() <= 64));
            assert_eq!(bid(SEED, i).0, data, "a bid follows from seed and index");
        }
    }

    #[test]
    fn about_half_the_bids_are_on_the_hot_auction() {
        let hot = (0..10_000u64)
            .filter(|&i| {
                let newest = (i / BIDS_PER_EPOCH) as i64 * AUCTIONS_PER_EPOCH + 2;
                bid(SEED, i).1 == FIRST_AUCTION_ID + newest / HOT_STEP * HOT_STEP
            })
            .count();
        assert!((4_700..=5_500).contains(&hot), "{hot} of 10000 hot");
    }

    #[test]
    fn timestamps_are_civil_utc() {
        let mut out = Vec::new();
        timestamp(BASE_MS, &mut out);
        out.push(b'|');
        timestamp(951_825_599_999, &mut out); // 2000-02-29 11:59:59.999
        out.push(b'|');
        timestamp(0, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01 00:00:00.000|2000-02-29 11:59:59.999|1970-01-01 00:00:00.000"
        );
    }
}
