//! In-process appends through the engine (durability fsync) and cold reads.
//!
//! Back of the envelope on the 2-core dev box: direct sequential writes reach
//! ~1.4 GB/s (dd, 1 MiB, QD1), so 1 KiB-record ingest is disk bound near that;
//! 100-byte records are bound by per-record encode/validate/seal CPU work.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_lite::future::block_on;
use riffle_bench::{join_all, make_batch};
use riffle_engine::{Durability, Engine, EngineConfig};
use riffle_store::iterator::IteratorType;

const SHARDS: u32 = match option_env!("RIFFLE_BENCH_SHARDS") {
    Some(_) => 1,
    None => 4,
};
const IN_FLIGHT: usize = 32;

fn engine(dir: &std::path::Path) -> Engine {
    let mut c = EngineConfig::new(dir);
    c.durability = Durability::Fsync;
    if std::env::var("RIFFLE_PREALLOCATE").is_ok_and(|v| v == "0") {
        c.log.preallocate = false;
    }
    if let Ok(v) = std::env::var("RIFFLE_PREALLOCATE_STEP") {
        c.log.preallocate_step = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("RIFFLE_COMMIT_BYTES") {
        c.commit_bytes_max = v.parse().unwrap();
        c.log.unsynced_bytes_max = 512 << 20;
    }
    if let Ok(v) = std::env::var("RIFFLE_WRITE_SIZE") {
        c.log.write_size = v.parse().unwrap();
    }
    let e = Engine::start(c).unwrap();
    block_on(e.create_stream("bench", SHARDS)).unwrap();
    e
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(
        std::env::var("RIFFLE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .unwrap();
    let e = engine(dir.path());
    let mut group = c.benchmark_group("engine_append_fsync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (record_size, records_per_batch) in [(1024usize, 500usize), (100, 500)] {
        let batches: Vec<_> = (0..IN_FLIGHT)
            .map(|i| make_batch(records_per_batch, record_size, i as u64))
            .collect();
        let records = (IN_FLIGHT * records_per_batch) as u64;
        group.throughput(if record_size >= 1024 {
            Throughput::Bytes(records * record_size as u64)
        } else {
            Throughput::Elements(records)
        });
        group.bench_function(format!("{record_size}B_records"), |b| {
            b.iter_custom(|iters| {
                // IN_FLIGHT producers, each appending `iters` batches back to back:
                // continuous load, no barrier between iterations.
                let start = Instant::now();
                let producers: Vec<_> = batches
                    .iter()
                    .enumerate()
                    .map(|(i, batch)| {
                        let e = &e;
                        async move {
                            for _ in 0..iters {
                                e.append_batch("bench", None, i as u32 % SHARDS, batch.clone())
                                    .await
                                    .unwrap();
                            }
                        }
                    })
                    .collect();
                block_on(join_all(producers));
                start.elapsed()
            })
        });
    }
    group.finish();
    e.shutdown().unwrap();
}

fn cold_read(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(
        std::env::var("RIFFLE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .unwrap();
    let e = engine(dir.path());
    // 256 MiB of 1 KiB records in shard 0.
    let batch = make_batch(500, 1024, 1);
    for _ in 0..64 {
        let futs: Vec<_> = (0..8)
            .map(|_| e.append_batch("bench", None, 0, batch.clone()))
            .collect();
        for r in block_on(join_all(futs)) {
            r.unwrap();
        }
    }
    e.shutdown().unwrap();
    let e = Engine::start({
        let mut c = EngineConfig::new(dir.path());
        if let Ok(v) = std::env::var("RIFFLE_READ_SIZE") {
            c.log.read_size = v.parse().unwrap();
        }
        c
    })
    .unwrap();
    let mut group = c.benchmark_group("engine_read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(256 * 1000 * 1024));
    group.bench_function("cold_segment_1KiB_records", |b| {
        b.iter(|| {
            block_on(async {
                let mut it = e
                    .get_shard_iterator("bench", "shardId-000000000000", IteratorType::TrimHorizon)
                    .await
                    .unwrap();
                let mut n = 0u64;
                loop {
                    let r = e.get_records(&it, None).await.unwrap();
                    if r.record_count == 0 {
                        break;
                    }
                    n += r.record_count as u64;
                    it = r.next_shard_iterator.unwrap();
                }
                assert_eq!(n, 256_000);
            })
        })
    });
    group.finish();
    e.shutdown().unwrap();
}

criterion_group!(benches, append, cold_read);
criterion_main!(benches);
