//! The CPU work of an Analytics application per input read, no I/O: the
//! bench's Nexmark bids (JSON, 160-200 bytes, `riffle_bench::nexmark`)
//! decoded into an Arrow batch with the `analytics` scenario's schema
//! (`decode`: UTF-8 check, JSON scan, coercion, builders), and that batch's
//! seven columns written back as JSON rows (`encode`: what q0 writes to its
//! output). 10,000 bids an iteration: one source read.
//!
//! Run: `cargo bench -p riffle-bench --bench analytics_codec`; under
//! callgrind for instruction counts (stable on a noisy machine):
//! `valgrind --tool=callgrind target/release/deps/analytics_codec-* --bench
//! --profile-time 2 decode`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use riffle_analytics::config::SourceSchema;
use riffle_analytics::decode::{Decoder, InputFormat};
use riffle_analytics::encode::{RecordFormat, encode};
use riffle_bench::nexmark::{SEED, bid, bid_schema};

/// Bids per iteration: one full source read (`READ_RECORDS_MAX`).
const BIDS: u64 = 10_000;

fn format() -> Arc<InputFormat> {
    let schema: SourceSchema =
        serde_json::from_value(bid_schema()).expect("the bid schema is the API's shape");
    Arc::new(InputFormat::compile(&schema).expect("the bid schema compiles"))
}

fn codec(c: &mut Criterion) {
    let bids: Vec<Vec<u8>> = (0..BIDS).map(|i| bid(SEED, i).0).collect();
    let bytes: usize = bids.iter().map(Vec::len).sum();
    let mut decoder = Decoder::new(format());
    let mut group = c.benchmark_group("analytics");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::ElementsAndBytes {
            elements: BIDS,
            bytes: bytes as u64,
        });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for data in &bids {
                decoder.push(data, 1, 1);
            }
            let (batch, errors) = decoder.finish();
            assert!(errors.is_empty());
            black_box(batch)
        })
    });
    for data in &bids {
        decoder.push(data, 1, 1);
    }
    let (batch, _) = decoder.finish();
    // The schema's columns without ROWTIME and APPROXIMATE_ARRIVAL_TIME.
    let columns: Vec<usize> = (0..batch.num_columns() - 2).collect();
    let rows = batch.project(&columns).expect("the columns exist");
    group.bench_function("encode", |b| {
        b.iter(|| black_box(encode(&rows, RecordFormat::Json)))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
