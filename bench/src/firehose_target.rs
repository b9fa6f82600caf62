//! The `firehose` scenario: Direct PUT into a Firehose delivery stream over
//! Firehose's JSON 1.1 API (PutRecordBatch on keep-alive HTTP/1.1
//! connections, closed loop, or paced with `--rate`), or with `--transport
//! native` over the native protocol (FirehosePutRecordBatch through the async
//! client, one connection per lane; the control calls stay on HTTP), delivered to the
//! embedded object store (files under `<server data dir>/s3/<bucket>/`) or to
//! an S3-compatible server (`--s3-endpoint`), uncompressed or GZIP.
//!
//! Records are fixed-size, `--record-size` bytes each, so an object (once
//! gunzipped) splits back into records unambiguously: bytes 0..8 are the
//! request's send time (µs since the run's epoch, little-endian), byte 8 is
//! `|` (a check that the split is aligned), the rest hex digits drawn at random
//! per record (so GZIP finds what it would in text, about 2:1, and not the
//! repeats of a copied record). The time rides in the first 9 bytes, 12
//! base64 characters of their own, so a request body is encoded once per lane
//! and only those characters are rewritten per request.
//!
//! After the run the bench waits until every acknowledged record is in an
//! object (listing the store until no object has appeared for a few seconds,
//! then reading what is new), and measures put→object latency as the object's
//! time minus the record's send time: the file's mtime for the embedded store
//! (nanosecond resolution), `LastModified` for S3 (whole seconds: latencies
//! are rounded down by up to 1 s). Delivered MB/s is the record bytes found in
//! objects over the time from the first put to the newest object.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use riffle_client::{AsyncClient, AsyncClientConfig, ClientError};
use riffle_engine::rt::{self, net::Connection};
use serde::Deserialize;
use serde_json::json;

use crate::firehose_store::{Store, collect, wall_us};
use crate::http_target::{HttpConn, admin_call_to};
use crate::load::{Shared, Tally, micros};
use crate::machine::Machine;
use crate::report::{Cpu, Percentiles, Report};
use crate::s3_client::{S3, credential};
use crate::server::ServerUnderTest;
use crate::{Args, Phase};

/// The `X-Amz-Target` prefix of Firehose's operations.
pub const FIREHOSE: &str = "Firehose_20150804.";

/// How the scenario puts records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Firehose's JSON 1.1 API over HTTP/1.1 (PutRecordBatch).
    Http,
    /// Riffle's native protocol (FirehosePutRecordBatch).
    Native,
}

/// The delivery stream's `CompressionFormat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    #[value(name = "UNCOMPRESSED")]
    Uncompressed,
    #[value(name = "GZIP")]
    Gzip,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
        }
    }
}

/// The words of the records' text.
const WORDS: [&str; 16] = [
    "GET /api/v1/orders/",
    "POST /api/v1/cart/",
    "status=200 ",
    "status=404 ",
    "region=eu-west-1 ",
    "latency_ms=",
    "user=",
    "session=",
    "INFO checkout ",
    "WARN retry ",
    "item=",
    "price=",
    "referer=https://example.com/",
    "agent=Mozilla/5.0 ",
    "bytes=",
    "trace=",
];

/// Bytes of a record that carry its send time and the alignment mark.
const STAMP_LEN: usize = 9;
pub(crate) const MARK: u8 = b'|';
/// PutRecordBatch's limits: a record's data, and a call's records together.
const RECORD_MAX: usize = 1000 * 1024;
const CALL_MAX: usize = 4 << 20;

/// Runs the scenario and prints its report.
pub fn run(args: &Args, machine: Machine, durability: &str) -> anyhow::Result<()> {
    if args.record_size < STAMP_LEN || args.record_size > RECORD_MAX {
        bail!(
            "--record-size must be {STAMP_LEN} to {RECORD_MAX} bytes for firehose (the send time rides in the record), got {}",
            args.record_size
        );
    }
    if args.batch * args.record_size > CALL_MAX {
        bail!("--batch x --record-size must be at most 4 MiB (PutRecordBatch's limit)");
    }
    if !(1..=128).contains(&args.buffer_mb) {
        bail!("--buffer-mb must be 1 to 128 (SizeInMBs)");
    }
    if args.transport == Transport::Native && args.server.is_some() {
        bail!(
            "--transport native needs the bench's own server (--server gives one address, the HTTP API's)"
        );
    }
    let id = std::process::id();
    let bucket = format!("riffle-bench-{id}");
    let name = format!("bench-{id}");
    let s3 = match &args.s3_endpoint {
        None => None,
        Some(endpoint) => {
            let key = credential(&args.s3_access_key, "AWS_ACCESS_KEY_ID");
            let secret = credential(&args.s3_secret_key, "AWS_SECRET_ACCESS_KEY");
            let (Some(key), Some(secret)) = (key, secret) else {
                bail!(
                    "--s3-endpoint needs --s3-access-key and --s3-secret-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                );
            };
            Some(S3::new(endpoint, &key, &secret)?)
        }
    };
    let server = match &args.server {
        Some(addr) => ServerUnderTest::attach(addr, args.server_pid)?,
        None => {
            let mut extra = Vec::new();
            if let (Some(s3), Some(endpoint)) = (&s3, &args.s3_endpoint) {
                let (key, secret) = s3.keys();
                extra.extend([
                    "--s3-endpoint".to_string(),
                    endpoint.clone(),
                    "--s3-access-key".into(),
                    key.into(),
                    "--s3-secret-key".into(),
                    secret.into(),
                ]);
            }
            ServerUnderTest::start(
                &crate::server::riffle_bin(args.riffle_bin.clone()),
                &args.data_dir,
                durability,
                args.server_cores,
                true,
                &extra,
            )?
        }
    };
    let store = match s3 {
        Some(client) => {
            client.create_bucket(&bucket)?;
            Store::S3 {
                client,
                bucket: bucket.clone(),
            }
        }
        None => {
            let data = match (server.data_dir(), &args.server_data_dir) {
                (Some(d), _) => d.to_path_buf(),
                (None, Some(d)) => d.clone(),
                (None, None) => bail!(
                    "firehose with --server needs --server-data-dir (where its embedded store is) or --s3-endpoint"
                ),
            };
            Store::Dir(data.join("s3").join(&bucket))
        }
    };
    let http = server.http.unwrap_or(server.addr);
    create_delivery_stream(http, &name, &bucket, args)?;
    let result = measure(args, &server, http, &name, &store, machine, durability);
    let _ = admin_call_to(
        http,
        FIREHOSE,
        "DeleteDeliveryStream",
        json!({"DeliveryStreamName": name}),
    );
    store.remove();
    let (report, delivery) = result?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["firehose"] = serde_json::to_value(&delivery)?;
        println!("{v}");
    } else {
        print!("{}", report.table());
        print!("{}", delivery.table());
    }
    Ok(())
}

fn create_delivery_stream(
    addr: SocketAddr,
    name: &str,
    bucket: &str,
    args: &Args,
) -> anyhow::Result<()> {
    admin_call_to(
        addr,
        FIREHOSE,
        "CreateDeliveryStream",
        json!({
            "DeliveryStreamName": name,
            "DeliveryStreamType": "DirectPut",
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/riffle-bench",
                "BucketARN": format!("arn:aws:s3:::{bucket}"),
                "BufferingHints": {
                    "SizeInMBs": args.buffer_mb,
                    "IntervalInSeconds": args.buffer_interval,
                },
                "CompressionFormat": args.compression.name(),
            },
        }),
    )?;
    for _ in 0..600 {
        let d = admin_call_to(
            addr,
            FIREHOSE,
            "DescribeDeliveryStream",
            json!({"DeliveryStreamName": name}),
        )?;
        if d["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("delivery stream {name} did not become ACTIVE within 60 s")
}

/// What the delivery side of a run measured (beside the [`Report`]).
#[derive(Debug, serde::Serialize)]
pub struct Delivery {
    pub destination: String,
    pub compression: &'static str,
    pub buffer_mb: u32,
    pub buffer_interval_s: u32,
    /// Records acknowledged over the whole run (warm-up included).
    pub acknowledged_records: u64,
    /// Records found in objects.
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    pub objects: u64,
    /// Bytes the objects hold (compressed, for GZIP).
    pub object_bytes: u64,
    /// From the first put to the newest object.
    pub delivered_s: f64,
    pub delivered_records_per_sec: f64,
    pub delivered_bytes_per_sec: f64,
    /// Put→object latency of the records sent in the measured window (µs).
    pub put_to_object_us: Option<Percentiles>,
    /// What the object's time is, and its resolution.
    pub object_time: &'static str,
    /// Objects whose length is not a whole number of records, or records
    /// without their alignment mark.
    pub malformed: u64,
}

impl Delivery {
    fn table(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<22} {v}\n"));
        line(
            "destination",
            format!(
                "{}, {}, buffering {} MiB / {} s",
                self.destination, self.compression, self.buffer_mb, self.buffer_interval_s
            ),
        );
        line(
            "delivered",
            format!(
                "{:.0} records/s, {:.1} MB/s (first put to newest object, {:.1} s; {} of {} acknowledged records in {} objects, {:.1} MB stored)",
                self.delivered_records_per_sec,
                self.delivered_bytes_per_sec / 1e6,
                self.delivered_s,
                self.delivered_records,
                self.acknowledged_records,
                self.objects,
                self.object_bytes as f64 / 1e6
            ),
        );
        if let Some(p) = &self.put_to_object_us {
            line(
                "put-to-object",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}  (µs, n={}; object time: {})",
                    p.p50, p.p90, p.p99, p.max, p.count, self.object_time
                ),
            );
        }
        if self.malformed > 0 {
            line(
                "malformed",
                format!("{} objects or records", self.malformed),
            );
        }
        out
    }
}

fn measure(
    args: &Args,
    server: &ServerUnderTest,
    http: SocketAddr,
    name: &str,
    store: &Store,
    machine: Machine,
    durability: &str,
) -> anyhow::Result<(Report, Delivery)> {
    let shared = Shared::new();
    // The run's epoch on the wall clock, which object times are read on.
    let epoch_wall_us = wall_us(SystemTime::now()) - (shared.now_ns() / 1000) as i64;
    let native = (args.transport == Transport::Native).then_some(server.addr);
    let (tally, cpu, first_put_ns) = load(args, &shared, http, native, name, server.pid)?;
    let acknowledged = shared.produced.load(Ordering::Relaxed);
    if !args.quiet {
        eprintln!("waiting for {acknowledged} acknowledged records to be delivered ...");
    }
    let found = collect(
        store,
        acknowledged,
        args.record_size,
        |stamp_us, object_us| {
            let at = object_us - epoch_wall_us;
            let sent = stamp_us as i64;
            (
                shared.measuring(stamp_us * 1000),
                at,
                (at - sent).max(1) as u64,
            )
        },
    )?;
    let secs = args.duration;
    let per_sec = |v: u64| v as f64 / secs;
    let put_to_object = Percentiles::of(&found.latency);
    if tally.ack.is_empty() {
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
    let delivered_s =
        ((found.newest_us - (first_put_ns / 1000) as i64).max(1) as f64 / 1e6).max(1e-6);
    let delivered_bytes = found.records * args.record_size as u64;
    let report = Report {
        scenario: "firehose".into(),
        records_per_sec: per_sec(tally.produced_records),
        bytes_per_sec: per_sec(tally.produced_bytes),
        latency_us: put_to_object.unwrap_or_default(),
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
        producers: args.producers,
        consumers: 0,
        // The internal stream has one shard per server core.
        shards: args.server_cores.unwrap_or(machine.cores) as u32,
        streams: 1,
        produced_records_per_sec: per_sec(tally.produced_records),
        produced_bytes_per_sec: per_sec(tally.produced_bytes),
        consumed_records_per_sec: 0.0,
        consumed_bytes_per_sec: 0.0,
        ack_latency_us: Percentiles::of(&tally.ack),
        e2e_latency_us: None,
        read_latency_us: None,
        errors: tally.errors,
        undelivered: acknowledged.saturating_sub(found.records),
        cpu,
        machine,
        server: match (args.server.is_some(), native) {
            (true, _) => format!("{http} (Firehose over HTTP)"),
            (false, None) => {
                format!("riffle server started by the bench, Firehose over HTTP on {http}")
            }
            (false, Some(addr)) => format!(
                "riffle server started by the bench, Firehose over the native protocol on {addr}"
            ),
        },
    };
    let delivery = Delivery {
        destination: store.describe(),
        compression: args.compression.name(),
        buffer_mb: args.buffer_mb,
        buffer_interval_s: args.buffer_interval,
        acknowledged_records: acknowledged,
        delivered_records: found.records,
        delivered_bytes,
        objects: found.objects,
        object_bytes: found.object_bytes,
        delivered_s,
        delivered_records_per_sec: found.records as f64 / delivered_s,
        delivered_bytes_per_sec: delivered_bytes as f64 / delivered_s,
        put_to_object_us: put_to_object,
        object_time: match store {
            Store::Dir(_) => "file mtime (ns resolution)",
            Store::S3 { .. } => "S3 LastModified (1 s resolution: rounded down by up to 1 s)",
        },
        malformed: found.malformed,
    };
    Ok((report, delivery))
}

/// Runs the producers on the client threads for the warm-up and `--duration`,
/// then lets them finish what they sent. Returns their tally, the CPU time of
/// the measured window and when the first put left (ns since the epoch).
fn load(
    args: &Args,
    shared: &Arc<Shared>,
    http: SocketAddr,
    native: Option<SocketAddr>,
    name: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<(Tally, Cpu, u64)> {
    let threads = args.client_threads.min(args.producers).max(1);
    let lanes_total = args.producers * args.inflight.max(1);
    // Open loop: each lane sends one request every `interval` ns.
    let interval_ns = args
        .rate
        .map(|r| 1e9 * lanes_total as f64 * args.batch as f64 / r as f64);
    let (ready_tx, ready_rx) = flume::unbounded::<anyhow::Result<()>>();
    let (go_tx, go_rx) = flume::bounded::<()>(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let producers: Vec<usize> = (0..args.producers).filter(|p| p % threads == t).collect();
            let lane = LaneConfig {
                addr: http,
                native,
                stream: name.to_string(),
                batch: args.batch,
                record_size: args.record_size,
                inflight: args.inflight.max(1),
                interval_ns,
                lanes_total,
            };
            let (shared, ready, go) = (shared.clone(), ready_tx.clone(), go_rx.clone());
            std::thread::spawn(move || {
                rt::block_on_local(move || client_thread(lane, producers, shared, ready, go))
                    .context("client executor")?
            })
        })
        .collect();
    drop(ready_tx);
    let mut setup = crate::load::wait_ready(&ready_rx, handles.len(), shared);
    let go_at = shared.now_ns();
    shared
        .measure_from
        .store(go_at + (args.warmup * 1e9) as u64, Ordering::Relaxed);
    drop(go_tx);
    let mut cpu = Cpu {
        client_s: 0.0,
        server_s: None,
    };
    if setup.is_ok() {
        let (cpu0, cpu1) =
            crate::progress(args, shared, Phase::Timed, args.producers, 0, server_pid);
        cpu.client_s = cpu1.0 - cpu0.0;
        cpu.server_s = cpu0.1.zip(cpu1.1).map(|(a, b)| b - a);
        if let Err(e) = crate::drain(shared, args.producers, false, 0) {
            setup = Err(e);
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
    setup.map(|()| (total, cpu, go_at))
}

#[derive(Clone)]
struct LaneConfig {
    addr: SocketAddr,
    /// Put over the native protocol at this address instead of HTTP.
    native: Option<SocketAddr>,
    stream: String,
    batch: usize,
    record_size: usize,
    inflight: usize,
    /// Open loop: ns between one lane's requests.
    interval_ns: Option<f64>,
    lanes_total: usize,
}

/// One client thread: connects every lane of its producers, says so, waits
/// for `go`, runs them until producing stops.
async fn client_thread(
    config: LaneConfig,
    producers: Vec<usize>,
    shared: Arc<Shared>,
    ready: flume::Sender<anyhow::Result<()>>,
    go: flume::Receiver<()>,
) -> anyhow::Result<Tally> {
    let tally = Rc::new(RefCell::new(Tally::new()));
    let mut lanes = Vec::new();
    for &p in &producers {
        let mut own = Vec::new();
        for l in 0..config.inflight {
            let conn = match LaneConn::connect(&config).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return Ok(Tally::new());
                }
            };
            let body = Body::new(&config.stream, p, l, config.batch, config.record_size);
            let phase = (p * config.inflight + l) as f64 / config.lanes_total as f64;
            own.push((conn, body, phase));
        }
        lanes.push(own);
    }
    let _ = ready.send(Ok(()));
    let _ = go.recv_async().await;
    let producer_tasks: Vec<_> = lanes
        .into_iter()
        .map(|own| {
            let (shared, tally, config) = (shared.clone(), tally.clone(), config.clone());
            async move {
                let runs: Vec<_> = own
                    .into_iter()
                    .map(|(conn, body, phase)| lane(conn, body, phase, &config, &shared, &tally))
                    .collect();
                riffle_engine::join_all(runs).await;
                shared.producers_done.fetch_add(1, Ordering::Relaxed);
            }
        })
        .collect();
    riffle_engine::join_all(producer_tasks).await;
    Rc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("tasks still hold the tally"))
        .map(RefCell::into_inner)
}

#[derive(Deserialize)]
struct PutAnswer {
    #[serde(rename = "FailedPutCount")]
    failed: u64,
}

/// A lane's connection.
enum LaneConn {
    Http(HttpConn),
    Native(Box<AsyncClient<Connection>>),
}

impl LaneConn {
    async fn connect(config: &LaneConfig) -> anyhow::Result<LaneConn> {
        Ok(match config.native {
            None => LaneConn::Http(HttpConn::connect_to(config.addr, FIREHOSE).await?),
            Some(addr) => {
                let conn = rt::net::connect(addr)
                    .await
                    .with_context(|| format!("cannot connect to {addr}"))?;
                LaneConn::Native(Box::new(AsyncClient::new(
                    conn,
                    AsyncClientConfig::default(),
                )))
            }
        })
    }

    /// One PutRecordBatch of the body's records, sent at `us`: how many
    /// records failed, or why the call failed (and whether the lane must stop).
    async fn put(&mut self, body: &mut Body, stream: &str, us: u64) -> Result<u64, (String, bool)> {
        match self {
            LaneConn::Http(conn) => {
                body.stamp(us);
                match conn.call("PutRecordBatch", &body.json).await {
                    Ok((200, answer)) => Ok(serde_json::from_slice::<PutAnswer>(&answer)
                        .map(|a| a.failed)
                        .unwrap_or(body.records.len() as u64)),
                    Ok((status, answer)) => Err((
                        format!(
                            "PutRecordBatch: HTTP {status}: {}",
                            String::from_utf8_lossy(&answer)
                        ),
                        false,
                    )),
                    Err(e) => Err((format!("PutRecordBatch: {e}"), true)),
                }
            }
            LaneConn::Native(client) => {
                body.stamp_records(us);
                match client
                    .firehose_put_record_batch(stream, &body.records)
                    .await
                {
                    Ok(put) => Ok(put.failed_put_count as u64),
                    Err(e) => {
                        let fatal = matches!(e, ClientError::ConnectionLost { .. });
                        Err((format!("FirehosePutRecordBatch: {e}"), fatal))
                    }
                }
            }
        }
    }
}

/// One request in flight at a time on its own connection.
async fn lane(
    mut conn: LaneConn,
    mut body: Body,
    phase: f64,
    config: &LaneConfig,
    shared: &Shared,
    tally: &RefCell<Tally>,
) {
    let batch = config.batch as u64;
    let start = shared.now_ns() as f64 + config.interval_ns.unwrap_or(0.0) * phase;
    let mut n = 0u64;
    while shared.producing() {
        let intended = match config.interval_ns {
            Some(interval) => {
                let at = (start + interval * n as f64) as u64;
                n += 1;
                let now = shared.now_ns();
                if at > now {
                    rt::sleep(Duration::from_nanos(at - now)).await;
                }
                at
            }
            None => shared.now_ns(),
        };
        let result = conn.put(&mut body, &config.stream, intended / 1000).await;
        let done = shared.now_ns();
        let stored = match result {
            Ok(failed) => {
                if failed > 0 {
                    tally
                        .borrow_mut()
                        .error(format!("{failed} records failed in PutRecordBatch"));
                }
                batch - failed.min(batch)
            }
            Err((e, fatal)) => {
                tally.borrow_mut().error(e);
                if fatal {
                    break;
                }
                0
            }
        };
        shared.produced.fetch_add(stored, Ordering::Relaxed);
        let mut t = tally.borrow_mut();
        if shared.measuring(done) {
            t.produced_records += stored;
            t.produced_bytes += stored * config.record_size as u64;
        }
        if shared.measuring(intended) {
            t.ack.record(micros(done.saturating_sub(intended))).ok();
        }
    }
}

/// A lane's PutRecordBatch body, encoded once; `stamp` rewrites the send
/// time in every record (of the JSON body; `stamp_records`: of the records
/// the native protocol sends).
struct Body {
    json: Vec<u8>,
    /// Where each record's base64 starts.
    stamps: Vec<usize>,
    records: Vec<Vec<u8>>,
}

impl Body {
    fn new(stream: &str, producer: usize, lane: usize, batch: usize, size: usize) -> Body {
        let mut json = json!({"DeliveryStreamName": stream})
            .to_string()
            .into_bytes();
        json.pop();
        json.extend_from_slice(br#","Records":["#);
        let mut stamps = Vec::with_capacity(batch);
        let mut records = Vec::with_capacity(batch);
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ ((producer as u64) << 32 | lane as u64);
        let mut record = vec![0u8; size];
        for i in 0..batch {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(br#"{"Data":""#);
            stamps.push(json.len());
            record[8] = MARK;
            // Log-like text: words of a small vocabulary, each followed by 4
            // random hex digits (xorshift64).
            let mut text = Vec::with_capacity(size + 32);
            while text.len() < size - STAMP_LEN {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.extend_from_slice(WORDS[(x >> 60) as usize].as_bytes());
                for shift in [0, 4, 8, 12] {
                    text.push(b"0123456789abcdef"[(x >> shift & 15) as usize]);
                }
                text.push(b' ');
            }
            record[STAMP_LEN..].copy_from_slice(&text[..size - STAMP_LEN]);
            json.extend_from_slice(BASE64.encode(&record).as_bytes());
            records.push(record.clone());
            json.extend_from_slice(br#""}"#);
        }
        json.extend_from_slice(b"]}");
        Body {
            json,
            stamps,
            records,
        }
    }

    fn stamp_records(&mut self, us: u64) {
        for r in &mut self.records {
            r[..8].copy_from_slice(&us.to_le_bytes());
            r[8] = MARK;
        }
    }

    fn stamp(&mut self, us: u64) {
        let mut head = [MARK; STAMP_LEN];
        head[..8].copy_from_slice(&us.to_le_bytes());
        let mut text = [0u8; 12];
        BASE64
            .encode_slice(head, &mut text)
            .expect("9 bytes are 12 characters");
        for &at in &self.stamps {
            self.json[at..at + 12].copy_from_slice(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn stamps_rewrite_only_the_send_time() {
        let mut b = Body::new("s", 1, 2, 3, 40);
        b.stamp(0x0102_0304_0506_0708);
        let v: Value = serde_json::from_slice(&b.json).unwrap();
        let records = v["Records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        let first = BASE64.decode(records[0]["Data"].as_str().unwrap()).unwrap();
        assert_eq!(first.len(), 40);
        assert_eq!(
            u64::from_le_bytes(first[..8].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(first[8], MARK);
        let second = BASE64.decode(records[1]["Data"].as_str().unwrap()).unwrap();
        assert_ne!(first[STAMP_LEN..], second[STAMP_LEN..]);
    }

    #[test]
    fn native_records_are_the_json_records() {
        let mut b = Body::new("s", 1, 2, 3, 40);
        b.stamp(7);
        b.stamp_records(7);
        let v: Value = serde_json::from_slice(&b.json).unwrap();
        let json: Vec<Vec<u8>> = v["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| BASE64.decode(r["Data"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(json, b.records);
    }
}
