//! A first measurement of the native protocol path (until issue 4's
//! `riffle-bench` harness): N threads, each with its own connection, put
//! PutRecords of `batch` records of `size` bytes in a closed loop for `seconds`
//! against a running server, then print records/s, MB/s and call latency.
//!
//! `cargo run --release -p riffle-bench --example native_produce -- ADDR [threads] [size] [batch] [seconds] [shards]`

use std::time::{Duration, Instant};

use riffle_client::{Client, ClientConfig, PutRecordsEntry};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4600".into());
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (threads, size, batch, seconds, shards) =
        (arg(2, 4), arg(3, 1024), arg(4, 500), arg(5, 10), arg(6, 4));
    let admin = Client::connect(addr.as_str(), ClientConfig::default()).expect("connect");
    let stream = format!("bench-{}", std::process::id());
    admin.create_stream(&stream, shards as u32).expect("create");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, stream) = (addr.clone(), stream.clone());
            std::thread::spawn(move || {
                let client = Client::connect(addr.as_str(), ClientConfig::default()).unwrap();
                let keys: Vec<String> = (0..batch).map(|i| format!("k{t}-{i}")).collect();
                let data = vec![0x42u8; size as usize];
                let entries: Vec<PutRecordsEntry<'_>> = keys
                    .iter()
                    .map(|k| PutRecordsEntry {
                        partition_key: k,
                        explicit_hash_key: None,
                        data: &data,
                    })
                    .collect();
                let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                let mut records = 0u64;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let results = client.put_records(&stream, &entries).expect("put_records");
                    hist.record(start.elapsed().as_micros() as u64).unwrap();
                    records += results.iter().filter(|r| r.is_ok()).count() as u64;
                }
                (records, hist)
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for w in workers {
        let (r, h) = w.join().unwrap();
        total += r;
        hist.add(h).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "threads {threads} size {size} B batch {batch} shards {shards}: {:.0} records/s, {:.1} MB/s; PutRecords latency p50 {} us p99 {} us max {} us",
        total as f64 / elapsed,
        total as f64 * size as f64 / elapsed / 1e6,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    admin.delete_stream(&stream).expect("delete");
}
