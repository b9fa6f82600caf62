//! Micro benchmarks of the CPU work under the network and the disk, one criterion
//! group each, no I/O on the clock:
//!
//! - `frame`: the native protocol codec: PutRecords requests and Records replies
//!   carrying one 500-record batch (encode = write fields + frame crc; decode =
//!   header, crc and field checks, batches borrowed, not validated), and the small
//!   Ping / GetShardIterator requests (fixed per-frame cost).
//! - `batch`: record batches: `BatchBuilder::encode` (rkyv archive + crc),
//!   `validate` (what the server does to a batch from outside: crc, checked
//!   archive, limits per record), `verify` (bytes read back from disk: crc,
//!   checked archive), `reopen_verified` (no checks: a span re-opening its
//!   batch), `seal` (offsets, arrival times, crc; `ValidBatch::seal`). The access
//!   benches also reach every record (not its data bytes: `reopen_verified`'s
//!   bytes/s is nominal).
//! - `crc`: crc32c over 4 KiB, 64 KiB and 1 MiB buffers.
//! - `segment_append`: `ShardLog::append` (parse, seal, copy into the appender's
//!   write buffer, index, watermarks) on the engine's direct-I/O storage, with the
//!   write jobs taken every 4 MiB group (the pump's `commit_bytes_max`) and
//!   dropped, not written: no disk I/O on the clock, but the real DMA buffers
//!   (glommio's pool); and `Appender::append` alone (the copy). Files live in
//!   `RIFFLE_BENCH_DIR` or `target/tmp` (not /tmp: tmpfs has no O_DIRECT).
//! - `index_lookup`: `SegmentIndex::seek_offset` / `seek_time` over 4k entries
//!   (256 MiB segment, 64 KiB interval: the default) and 64k entries (4 KiB
//!   interval), 1024 scattered seeks per iteration; and `SegmentIndex::decode` of
//!   the sealed `.idx` file.
//!
//! Run: `cargo bench -p riffle-bench --bench micro` (about two minutes), one group
//! with `cargo bench -p riffle-bench --bench micro -- batch/`, a smoke run with
//! `-- --quick`. Throughput is records/s and bytes/s of the frame or batch where
//! records are involved, bytes/s for crc, seeks/s for the index.
//!
//! Back of the envelope (2-core dev VM): crc32c runs at >10 GB/s (hardware crc32
//! instruction, three streams) and memcpy at ~10 GB/s, so anything that touches
//! a 1 KiB-record batch once or twice should run at several GB/s; 100-byte
//! records are bound by per-record work (rkyv serialization, UTF-8 and limit
//! checks: tens of ns per record). A binary search over 4k-64k entries is 12-16
//! probes, tens of ns per seek.
//!
//! Caveats: the bench crate cannot name `crc32c` itself (not a dependency), so
//! `crc` goes through `batch::batch_crc`, which hashes all but 4 bytes of the
//! buffer (throughput counts the hashed bytes). `segment_append` does not run on
//! `SimStorage`: its buffers come from the system allocator, and 1 MiB ones are
//! mmapped and page-faulted in anew or not depending on the heap's history, so
//! its numbers varied tenfold with the benches run before it.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group};
use criterion::{criterion_main, measurement::WallTime};
use riffle_bench::make_batch;
use riffle_engine::rt::{self, dma::DmaStorage};
use riffle_protocol::Limits;
use riffle_protocol::batch::{self, BatchBuilder, BatchView, ValidBatch};
use riffle_protocol::native::{
    Api, Records, Reply, Request, Response, ShardBatch, Span, StartPosition, decode_reply,
    decode_request, encode_request, encode_response,
};
use riffle_store::appender::Appender;
use riffle_store::index::{SealedIndexMeta, SegmentIndex};
use riffle_store::log::{LogConfig, ShardLog};
use riffle_store::storage::Storage;

/// Records per batch: a full PutRecords request.
const RECORD_COUNT: usize = 500;
/// (label, record data size) of the two workloads every record bench runs.
const RECORD_SIZES: [(&str, usize); 2] = [("500x100B", 100), ("500x1KiB", 1024)];
/// The pump's default group commit size (`EngineConfig::commit_bytes_max`).
const COMMIT_BYTES: usize = 4 << 20;
/// Seeks per `index_lookup` iteration.
const SEEK_COUNT: usize = 1024;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// Both throughputs of a bench that handles `RECORD_COUNT` records in `bytes`.
fn records_throughput(bytes: usize) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: RECORD_COUNT as u64,
        bytes: bytes as u64,
    }
}

/// What a reader of a batch does at least once: reach every record's key and
/// data (their lengths; the data bytes themselves are not read).
fn walk(view: BatchView<'_>) -> usize {
    view.records()
        .iter()
        .map(|r| r.partition_key().len() + r.data().len())
        .sum()
}

// ---------------------------------------------------------------------------

fn frame(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("frame");
    configure(&mut group);
    let mut out = Vec::with_capacity(2 << 20);

    for (label, size) in RECORD_SIZES {
        let batch = make_batch(RECORD_COUNT, size, 1);
        let put = Request::PutRecords {
            stream: "bench",
            stream_id: 7,
            batches: vec![ShardBatch {
                shard_index: 3,
                batch: &batch,
            }],
        };
        out.clear();
        let n = encode_request(&mut out, 1, &put);
        let put_frame = out.clone();
        group.throughput(records_throughput(n));
        group.bench_function(BenchmarkId::new("encode_put_records", label), |b| {
            b.iter(|| {
                out.clear();
                encode_request(&mut out, 1, black_box(&put))
            })
        });
        group.bench_function(BenchmarkId::new("decode_put_records", label), |b| {
            b.iter(|| decode_request(black_box(&put_frame), &limits).unwrap())
        });

        let iterator = "A".repeat(68); // a token for stream "bench" is 68 chars
        let reply = Response::Records(Records {
            shard_index: 3,
            millis_behind_latest: 0,
            next_offset: RECORD_COUNT as u64,
            next_iterator: Some(&iterator),
            spans: vec![Span {
                skip: 0,
                take: RECORD_COUNT as u32,
                batch: &batch,
            }],
        });
        out.clear();
        let n = encode_response(&mut out, Api::GetRecords, 2, &reply);
        let reply_frame = out.clone();
        match decode_reply(&reply_frame, &limits).unwrap().1 {
            Reply::Response(Response::Records(r)) => assert_eq!(r.spans.len(), 1),
            other => panic!("unexpected reply {other:?}"),
        }
        group.throughput(records_throughput(n));
        group.bench_function(BenchmarkId::new("encode_records_reply", label), |b| {
            b.iter(|| {
                out.clear();
                encode_response(&mut out, Api::GetRecords, 2, black_box(&reply))
            })
        });
        group.bench_function(BenchmarkId::new("decode_records_reply", label), |b| {
            b.iter(|| decode_reply(black_box(&reply_frame), &limits).unwrap())
        });
    }

    let small = [
        ("ping", Request::Ping { nonce: 42 }),
        (
            "get_shard_iterator",
            Request::GetShardIterator {
                stream: "bench",
                shard_index: 3,
                position: StartPosition::AtSequenceNumber(0x1234_5678_9abc_def0),
            },
        ),
    ];
    group.throughput(Throughput::Elements(1));
    for (label, request) in &small {
        out.clear();
        encode_request(&mut out, 9, request);
        let frame = out.clone();
        group.bench_function(BenchmarkId::new("encode", label), |b| {
            b.iter(|| {
                out.clear();
                encode_request(&mut out, 9, black_box(request))
            })
        });
        group.bench_function(BenchmarkId::new("decode", label), |b| {
            b.iter(|| decode_request(black_box(&frame), &limits).unwrap())
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------

fn batch(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("batch");
    configure(&mut group);
    for (label, size) in RECORD_SIZES {
        // The same records as `make_batch`, kept as inputs for the encoder.
        let (keys, data) = riffle_bench::batch_inputs(RECORD_COUNT, size, 1);
        let records = riffle_bench::records_of(&keys, &data);
        let bytes = BatchBuilder::new().encode(&records);
        group.throughput(records_throughput(bytes.len()));

        group.bench_function(BenchmarkId::new("encode", label), |b| {
            b.iter(|| BatchBuilder::new().encode(black_box(&records)))
        });
        group.bench_function(BenchmarkId::new("validate", label), |b| {
            b.iter(|| walk(batch::validate(black_box(&bytes), &limits).unwrap()))
        });
        group.bench_function(BenchmarkId::new("verify", label), |b| {
            b.iter(|| walk(batch::verify(black_box(&bytes)).unwrap()))
        });
        batch::verify(&bytes).unwrap();
        group.bench_function(BenchmarkId::new("reopen_verified", label), |b| {
            // SAFETY: `bytes` passed `verify` just above and is never modified
            // (`seal` works on its own copy); an AlignedVec<16> keeps the payload
            // aligned.
            b.iter(|| walk(unsafe { batch::reopen_verified(black_box(&bytes)) }))
        });
        let mut valid = BatchBuilder::new().build(&records);
        let mut base_offset = 0u64;
        group.bench_function(BenchmarkId::new("seal", label), |b| {
            b.iter(|| {
                base_offset += RECORD_COUNT as u64;
                black_box(&mut valid).seal(base_offset, 1_700_000_000_000);
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc");
    configure(&mut group);
    for (label, size) in [
        ("4KiB", 4usize << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
    ] {
        let mut buf: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        // `batch_crc` hashes bytes [0, 12) and [16, length), length at [8, 12).
        buf[8..12].copy_from_slice(&(size as u32).to_le_bytes());
        group.throughput(Throughput::Bytes(size as u64 - 4));
        group.bench_function(BenchmarkId::new("crc32c", label), |b| {
            b.iter(|| batch::batch_crc(black_box(&buf)))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------

/// A directory on a real file system for the direct-I/O files (tmpfs has no
/// O_DIRECT): `RIFFLE_BENCH_DIR`, else `target/tmp`.
fn bench_root() -> tempfile::TempDir {
    tempfile::tempdir_in(
        std::env::var("RIFFLE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .unwrap()
}

fn log_config() -> LogConfig {
    LogConfig {
        // Nothing is written: reserving space would only cost a syscall per open.
        preallocate: false,
        ..LogConfig::default()
    }
}

/// Takes every pending write job and reports it done without performing it.
fn drain<S: Storage>(log: &mut ShardLog<S>) {
    while let Some(write) = log.take_write() {
        let end = write.job.end;
        drop(write);
        log.write_done(end);
    }
}

/// `iters` appends of `bytes` to a shard log in `dir`, on a fresh executor;
/// returns the time spent in them. When the segment is full (256 MiB) the log is
/// replaced by a fresh one off the clock: a real roll is a flush, an index write
/// and a file create, all I/O.
fn time_shard_log(dir: PathBuf, mut bytes: ValidBatch, iters: u64) -> Duration {
    rt::block_on_local(move || async move {
        let mut log = ShardLog::open(DmaStorage, &dir, log_config())
            .await
            .unwrap();
        let padded = batch::padded(bytes.len());
        let mut elapsed = Duration::ZERO;
        let mut group_bytes = 0;
        let mut start = Instant::now();
        for i in 0..iters {
            let now_ms = i as i64;
            if log.needs_roll(bytes.len(), now_ms) {
                elapsed += start.elapsed();
                drain(&mut log);
                drop(log);
                std::fs::remove_dir_all(&dir).unwrap();
                log = ShardLog::open(DmaStorage, &dir, log_config())
                    .await
                    .unwrap();
                group_bytes = 0;
                start = Instant::now();
            }
            black_box(log.append(&mut bytes, now_ms).unwrap());
            group_bytes += padded;
            if group_bytes >= COMMIT_BYTES {
                drain(&mut log);
                group_bytes = 0;
            }
        }
        drain(&mut log);
        elapsed += start.elapsed();
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
        elapsed
    })
    .unwrap()
}

/// `iters` appends of `bytes` to a bare `Appender` over a file in `dir`, jobs
/// taken every group and dropped; returns the time spent.
fn time_appender(dir: PathBuf, bytes: ValidBatch, iters: u64) -> Duration {
    rt::block_on_local(move || async move {
        DmaStorage.create_dir_all(&dir).await.unwrap();
        let file = DmaStorage.open(&dir.join("file"), true).await.unwrap();
        let mut appender = Appender::new(&file, 0, &[], log_config().write_size);
        let padded = batch::padded(bytes.len());
        let mut group_bytes = 0;
        let start = Instant::now();
        for _ in 0..iters {
            black_box(appender.append(&file, black_box(&bytes), padded - bytes.len()));
            group_bytes += padded;
            if group_bytes >= COMMIT_BYTES {
                while let Some(job) = appender.take_write(&file) {
                    drop(black_box(job));
                }
                group_bytes = 0;
            }
        }
        let elapsed = start.elapsed();
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
        elapsed
    })
    .unwrap()
}

fn segment_append(c: &mut Criterion) {
    let root = bench_root();
    let mut group = c.benchmark_group("segment_append");
    configure(&mut group);
    for (label, size) in RECORD_SIZES {
        let bytes =
            ValidBatch::validate(make_batch(RECORD_COUNT, size, 1), &Limits::default()).unwrap();
        group.throughput(records_throughput(bytes.len()));
        let dir = root.path().join("shard");
        group.bench_function(BenchmarkId::new("shard_log", label), |b| {
            b.iter_custom(|iters| time_shard_log(dir.clone(), bytes.clone(), iters))
        });
        group.bench_function(BenchmarkId::new("appender", label), |b| {
            b.iter_custom(|iters| time_appender(dir.clone(), bytes.clone(), iters))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------

/// An index of `entry_count` entries: one per `interval_bytes` of a segment of
/// 500-record batches, arrival time +1 ms per entry.
fn index_of(entry_count: u32, interval_bytes: u32) -> SegmentIndex {
    let mut index = SegmentIndex::default();
    for i in 0..entry_count {
        index.observe(
            i as u64 * RECORD_COUNT as u64,
            i * interval_bytes,
            1_700_000_000_000 + i as i64,
            interval_bytes,
        );
    }
    assert_eq!(index.entries().len(), entry_count as usize);
    index
}

/// `SEEK_COUNT` pseudo-random values below `range` (xorshift: no pattern the
/// branch predictor could learn).
fn scattered(range: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..SEEK_COUNT)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % range
        })
        .collect()
}

fn index_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_lookup");
    configure(&mut group);
    // 256 MiB segments: the default 64 KiB interval, and a 4 KiB one.
    for (label, entry_count, interval_bytes) in [("4k", 4096u32, 64u32 << 10), ("64k", 65536, 4096)]
    {
        let index = index_of(entry_count, interval_bytes);
        let records = entry_count as u64 * RECORD_COUNT as u64;
        let offsets = scattered(records);
        let times: Vec<i64> = scattered(entry_count as u64 + 1)
            .into_iter()
            .map(|t| 1_700_000_000_000 + t as i64)
            .collect();
        group.throughput(Throughput::Elements(SEEK_COUNT as u64));
        group.bench_function(BenchmarkId::new("seek_offset", label), |b| {
            b.iter(|| {
                let index = black_box(&index);
                offsets
                    .iter()
                    .map(|&o| index.seek_offset(o).0 as u64)
                    .sum::<u64>()
            })
        });
        group.bench_function(BenchmarkId::new("seek_time", label), |b| {
            b.iter(|| {
                let index = black_box(&index);
                times
                    .iter()
                    .map(|&t| index.seek_time(t).0 as u64)
                    .sum::<u64>()
            })
        });

        let base_offset = 1_000_000;
        let meta = SealedIndexMeta {
            next_offset: base_offset + records,
            data_len: entry_count as u64 * interval_bytes as u64,
            first_arrival_ms: 1_700_000_000_000,
            last_arrival_ms: 1_700_000_000_000 + entry_count as i64,
        };
        let file = {
            let mut shifted = SegmentIndex::default();
            for e in index.entries() {
                shifted.observe(
                    base_offset + e.offset,
                    e.position,
                    e.arrival_ms,
                    interval_bytes,
                );
            }
            shifted.encode(base_offset, &meta)
        };
        assert!(SegmentIndex::decode(&file, base_offset).is_some());
        group.throughput(Throughput::ElementsAndBytes {
            elements: entry_count as u64,
            bytes: file.len() as u64,
        });
        group.bench_function(BenchmarkId::new("decode_idx_file", label), |b| {
            b.iter(|| SegmentIndex::decode(black_box(&file), base_offset).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, frame, batch, crc, segment_append, index_lookup);
criterion_main!(benches);
