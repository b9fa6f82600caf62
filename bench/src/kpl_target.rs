//! `riffle-bench kpl`: the aggregating producer's throughput (issue 13's
//! goal: 100 B user records, at least 5 M user records/s into the server).
//! `--producers` `riffle_client::Producer`s with aggregation on (the KPL's
//! defaults: aggregated records up to 51,200 bytes, batches up to 1 MiB), each
//! on its own thread and connection, send `--record-size` byte user records
//! with `--keys` partition keys as fast as `send` takes them, for `--duration`
//! seconds after `--warmup`. Counted from the producers' own metrics: user
//! records and Kinesis records stored in the measured window, their bytes, and
//! the send-to-result latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use riffle_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerMetrics};
use serde_json::json;

use crate::Args;
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
use crate::server::{self, ServerUnderTest};

/// Runs the kpl scenario and prints its result.
pub fn run(args: &Args, machine: Machine, durability: &str) -> anyhow::Result<()> {
    let server = match &args.server {
        Some(addr) => ServerUnderTest::attach(addr, args.server_pid)?,
        None => ServerUnderTest::start(
            &server::riffle_bin(args.riffle_bin.clone()),
            &args.data_dir,
            durability,
            args.server_cores,
            false,
            &[],
        )?,
    };
    let stream = format!("kpl-{}", std::process::id());
    let admin = Client::connect(server.addr, ClientConfig::default())
        .with_context(|| format!("cannot reach the server at {}", server.addr))?;
    admin
        .create_stream(&stream, args.shards)
        .with_context(|| format!("CreateStream {stream}"))?;
    let result = measure(args, &server, &stream);
    let _ = admin.delete_stream(&stream);
    let r = result?;
    let user_rate = r.delta.user_records_put as f64 / r.seconds;
    let kinesis_rate = r.delta.kinesis_records_put as f64 / r.seconds;
    let user_mb_s = r.delta.user_records_put as f64 * args.record_size as f64 / r.seconds / 1e6;
    let wire_mb_s = r.delta.bytes_put as f64 / r.seconds / 1e6;
    let (p50, p99, max) = (
        r.latency.latency_p50.as_secs_f64() * 1e3,
        r.latency.latency_p99.as_secs_f64() * 1e3,
        r.latency.latency_max.as_secs_f64() * 1e3,
    );
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "kpl",
                "producers": args.producers,
                "shards": args.shards,
                "record_size": args.record_size,
                "keys": args.keys,
                "durability": durability,
                "seconds": r.seconds,
                "user_records_per_s": user_rate,
                "kinesis_records_per_s": kinesis_rate,
                "user_mb_per_s": user_mb_s,
                "stored_mb_per_s": wire_mb_s,
                "requests": r.delta.requests,
                "failed": r.delta.user_records_failed,
                "latency_ms": {"p50": p50, "p99": p99, "max": max},
                "client_cpu_s": r.client_cpu,
                "server_cpu_s": r.server_cpu,
                "machine": machine,
            })
        );
    } else {
        println!(
            "kpl: {} producers, {} shards, {} B user records, {} keys, durability {durability}",
            args.producers, args.shards, args.record_size, args.keys
        );
        println!("  machine: {}", machine.describe());
        println!(
            "  {user_rate:.0} user records/s ({user_mb_s:.1} MB/s) in {kinesis_rate:.0} Kinesis records/s ({wire_mb_s:.1} MB/s stored), {} requests, {} failed",
            r.delta.requests, r.delta.user_records_failed
        );
        println!(
            "  send-to-result latency ms (whole run): p50 {p50:.1}  p99 {p99:.1}  max {max:.1}"
        );
        let server_cpu = r
            .server_cpu
            .map_or("n/a".to_string(), |s| format!("{s:.2} s"));
        println!(
            "  CPU: client {:.2} s, server {server_cpu}, of {:.1} s measured",
            r.client_cpu, r.seconds
        );
    }
    Ok(())
}

struct Measured {
    seconds: f64,
    /// Counters over the measured window, summed over producers.
    delta: ProducerMetrics,
    /// The latency of the whole run, the worst producer's.
    latency: ProducerMetrics,
    client_cpu: f64,
    server_cpu: Option<f64>,
}

fn measure(args: &Args, server: &ServerUnderTest, stream: &str) -> anyhow::Result<Measured> {
    let config = ProducerConfig {
        aggregate: true,
        ..ProducerConfig::default()
    };
    let producers: Vec<Arc<Producer>> = (0..args.producers)
        .map(|_| {
            let client = Client::connect(server.addr, ClientConfig::default())?;
            Ok(Arc::new(Producer::new(client, stream, config.clone())?))
        })
        .collect::<anyhow::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let data = vec![b'x'; args.record_size];
    let threads: Vec<_> = producers
        .iter()
        .enumerate()
        .map(|(p, producer)| {
            let (producer, stop, data) = (producer.clone(), stop.clone(), data.clone());
            let keys: Vec<String> = (0..args.keys.max(1))
                .map(|k| format!("p{p}-key-{k}"))
                .collect();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    producer.put(&keys[i % keys.len()], None, &data)?;
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    let sum = |producers: &[Arc<Producer>]| {
        producers
            .iter()
            .map(|p| p.metrics())
            .fold(ProducerMetrics::default(), |a, m| ProducerMetrics {
                user_records_put: a.user_records_put + m.user_records_put,
                kinesis_records_put: a.kinesis_records_put + m.kinesis_records_put,
                bytes_put: a.bytes_put + m.bytes_put,
                requests: a.requests + m.requests,
                user_records_failed: a.user_records_failed + m.user_records_failed,
                ..a
            })
    };
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let (before, started) = (sum(&producers), Instant::now());
    let (cpu0, server0) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let (after, seconds) = (sum(&producers), started.elapsed().as_secs_f64());
    let (cpu1, server1) = (own_cpu_seconds(), server.pid.and_then(process_cpu_seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
    }
    for p in &producers {
        p.flush()?;
    }
    let latency = producers
        .iter()
        .map(|p| p.metrics())
        .max_by_key(|m| m.latency_p99)
        .unwrap_or_default();
    Ok(Measured {
        seconds,
        delta: ProducerMetrics {
            user_records_put: after.user_records_put - before.user_records_put,
            kinesis_records_put: after.kinesis_records_put - before.kinesis_records_put,
            bytes_put: after.bytes_put - before.bytes_put,
            requests: after.requests - before.requests,
            user_records_failed: after.user_records_failed - before.user_records_failed,
            ..ProducerMetrics::default()
        },
        latency,
        client_cpu: cpu1 - cpu0,
        server_cpu: server0.zip(server1).map(|(a, b)| b - a),
    })
}
