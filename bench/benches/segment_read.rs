//! Cold segment reads on the owning core: `riffle_store::log::read` over the
//! direct-I/O storage, GetRecords-sized calls (10,000 records / 10 MiB), no copy
//! out of the core. O_DIRECT bypasses the page cache, so every read is cold.
//!
//! Back of the envelope: dd reads this VM's disk at ~1.4 GB/s with 1 MiB requests
//! at queue depth 1; crc32c runs at >10 GB/s; so a read path that keeps several
//! requests in flight should be disk bound.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use riffle_bench::make_batch;
use riffle_engine::rt::{self, dma::DmaStorage};
use riffle_protocol::Limits;
use riffle_protocol::batch::ValidBatch;
use riffle_store::log::{self, LogConfig, ShardLog};

const BATCHES: usize = 512;
const RECORDS: usize = 500;
const RECORD_SIZE: usize = 1024;

fn config() -> LogConfig {
    let mut c = LogConfig::default();
    if let Ok(v) = std::env::var("RIFFLE_READ_SIZE") {
        c.read_size = v.parse().unwrap();
    }
    c
}

fn fill(dir: PathBuf) {
    rt::block_on_local(move || async move {
        DmaStorage::probe_device(&dir).await.unwrap();
        let mut log = ShardLog::open(DmaStorage, &dir, config()).await.unwrap();
        let batch =
            ValidBatch::validate(make_batch(RECORDS, RECORD_SIZE, 1), &Limits::default()).unwrap();
        for i in 0..BATCHES {
            let mut b = batch.clone();
            if log.needs_roll(b.len(), i as i64) {
                log.roll().await.unwrap();
            }
            log.append(&mut b, i as i64).unwrap();
            if i % 8 == 7 {
                log.flush().await.unwrap();
            }
        }
        log.flush().await.unwrap();
    })
    .unwrap();
}

fn read_all(dir: PathBuf) -> Duration {
    rt::block_on_local(move || async move {
        DmaStorage::probe_device(&dir).await.unwrap();
        let log = ShardLog::open(DmaStorage, &dir, config()).await.unwrap();
        let read_size = log.config().read_size;
        let start = Instant::now();
        let mut from = 0;
        let mut records = 0u64;
        loop {
            let out = log::read(log.view(), from, 10_000, 10 << 20, read_size)
                .await
                .unwrap();
            if out.record_count == 0 {
                break;
            }
            records += out.record_count as u64;
            from = out.next_offset;
        }
        let elapsed = start.elapsed();
        assert_eq!(records, (BATCHES * RECORDS) as u64);
        elapsed
    })
    .unwrap()
}

fn cold_read(c: &mut Criterion) {
    let root = tempfile::tempdir_in(
        std::env::var("RIFFLE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .unwrap();
    let dir = root.path().join("shard");
    fill(dir.clone());
    let mut group = c.benchmark_group("segment_read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes((BATCHES * RECORDS * RECORD_SIZE) as u64));
    group.bench_function("cold_1KiB_records", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| read_all(dir.clone())).sum())
    });
    group.finish();
}

criterion_group!(benches, cold_read);
criterion_main!(benches);
