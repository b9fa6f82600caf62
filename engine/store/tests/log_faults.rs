//! Fault injection into the shard log on the simulated disk: failed writes,
//! syncs, reads and opens; corrupted segments and indexes; torn tails.
//!
//! The failure policy under test (see `log.rs` and `segment.rs`): a failed write or
//! sync poisons the log (appends fail with `StorageFailed`, nothing past the last
//! durable offset is ever acknowledged or made visible, visible data stays
//! readable); a failed read is an error for that read only; corrupt bytes are never
//! served, and errors about them name the file and the byte; recovery cuts a torn
//! tail but refuses corruption it cannot explain by a crash.

mod common;

use std::path::Path;

use common::{Rec, Served, assert_same, dir, encode, idx_path, read_all, seg_path, small_config};
use futures_lite::future::block_on;
use riffle_protocol::ErrorCode;
use riffle_protocol::batch::BatchHeader;
use riffle_store::log::{self, LogConfig, ShardLog};
use riffle_store::sim::{SimOp, SimStorage};
use riffle_store::storage::IoBuf;
use riffle_store::{Storage, StorageFile};

/// Batch `i`: three records of about 300 bytes each, distinct per batch.
fn batch_recs(i: u64) -> Vec<Rec> {
    (0..3)
        .map(|j| Rec {
            key: format!("key-{i}-{j}"),
            data: vec![(i * 3 + j) as u8; 250 + (i as usize * 37) % 120],
        })
        .collect()
}

/// One segment for everything: no roll happens behind the test's back.
fn one_segment_config() -> LogConfig {
    LogConfig {
        segment_size_max: 1 << 20,
        ..small_config()
    }
}

/// A log and the records it acknowledged, in order.
struct Fixture {
    storage: SimStorage,
    log: ShardLog<SimStorage>,
    records: Vec<Served>,
    next_batch: u64,
}

impl Fixture {
    async fn new(config: LogConfig) -> Fixture {
        let storage = SimStorage::new(11);
        let log = ShardLog::open(storage.clone(), dir(), config)
            .await
            .unwrap();
        Fixture {
            storage,
            log,
            records: Vec::new(),
            next_batch: 0,
        }
    }

    /// Appends `n` batches (rolling when needed); returns the records appended.
    async fn append(&mut self, n: u64) -> Vec<Served> {
        let mut out = Vec::new();
        for _ in 0..n {
            let i = self.next_batch;
            self.next_batch += 1;
            let recs = batch_recs(i);
            let mut batch = encode(&recs);
            let now = 1_000 + 10 * i as i64;
            if self.log.needs_roll(batch.len(), now) {
                self.log.roll().await.unwrap();
            }
            let a = self.log.append(&mut batch, now).unwrap();
            for (j, r) in recs.into_iter().enumerate() {
                out.push(Served {
                    offset: a.base_offset + j as u64,
                    key: r.key,
                    data: r.data,
                    arrival_ms: a.arrival_ms,
                });
            }
        }
        out
    }

    /// Appends `n` batches and flushes them: they are acknowledged.
    async fn append_acked(&mut self, n: u64) {
        let recs = self.append(n).await;
        self.records.extend(recs);
        let durable = self.log.flush().await.unwrap();
        assert_eq!(durable, self.records.len() as u64);
    }

    fn acked(&self) -> u64 {
        self.records.len() as u64
    }
}

async fn file_bytes(storage: &SimStorage, path: &Path) -> Vec<u8> {
    let file = storage.open(path, false).await.unwrap();
    let len = file.len().await.unwrap();
    file.read_at(0, len as usize).await.unwrap().to_vec()
}

/// Positions of the batches in a segment's bytes.
fn batch_positions(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 0;
    while let Ok(h) = BatchHeader::parse(bytes.get(p..).unwrap_or(&[])) {
        out.push(p);
        p += h.padded_length();
    }
    out
}

/// Checks the policy of a poisoned log: appends refused, flush and roll fail,
/// nothing past `acked` visible, acknowledged data readable.
async fn assert_poisoned(f: &mut Fixture, ctx: &str) {
    {
        let v = f.log.view().borrow();
        assert!(v.failed.is_some(), "{ctx}: the log is poisoned");
        assert_eq!(
            (v.durable_offset, v.visible_offset),
            (f.acked(), f.acked()),
            "{ctx}: (durable, visible)"
        );
    }
    let mut batch = encode(&batch_recs(999));
    let err = f.log.append(&mut batch, 5_000).unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::StorageFailed,
        "{ctx}: append on a poisoned log: {err}"
    );
    let got = read_all(f.log.view(), 0, 8192)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: read of acked data: {e}"));
    assert_same(&got, &f.records, &format!("{ctx}: acked records"));
    let out = log::read(f.log.view(), f.acked(), 100, 1 << 20, 8192)
        .await
        .unwrap();
    assert_eq!(
        out.record_count, 0,
        "{ctx}: nothing past the durable offset is served"
    );
}

/// Restarts the disk and reopens: the acknowledged records are there, anything
/// after them is what was appended, and the log takes appends again.
async fn assert_recovers(f: Fixture, appended: &[Served], ctx: &str) {
    let Fixture {
        storage,
        log,
        records,
        ..
    } = f;
    drop(log);
    let storage = storage.restart();
    let mut log = ShardLog::open(storage.clone(), dir(), small_config())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let got = read_all(log.view(), 0, 8192)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: read after reopen: {e}"));
    assert!(
        got.len() >= records.len(),
        "{ctx}: {} acked records, {} recovered",
        records.len(),
        got.len()
    );
    let all: Vec<Served> = records.iter().chain(appended).cloned().collect();
    assert_same(
        &got,
        &all[..got.len()],
        &format!("{ctx}: records after reopen"),
    );
    let next = log.next_offset();
    let mut batch = encode(&batch_recs(500));
    let a = log
        .append(&mut batch, 100_000)
        .unwrap_or_else(|e| panic!("{ctx}: append after reopen: {e}"));
    assert_eq!(a.base_offset, next, "{ctx}: first offset after reopen");
    assert_eq!(
        log.flush().await.unwrap(),
        next + 3,
        "{ctx}: flush after reopen"
    );
    let got = read_all(log.view(), next, 8192).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        batch_recs(500)
            .into_iter()
            .map(|r| r.data)
            .collect::<Vec<_>>(),
        "{ctx}"
    );
}

#[test]
fn failed_write_poisons_the_log() {
    block_on(async {
        let mut f = Fixture::new(one_segment_config()).await;
        f.append_acked(12).await;
        f.storage.fail_nth(SimOp::Write, 1);
        let unacked = f.append(3).await;
        let err = f.log.flush().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::StorageFailed, "{err}");
        assert_poisoned(&mut f, "after a failed write").await;
        let err = f.log.roll().await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::StorageFailed,
            "roll of a poisoned log: {err}"
        );
        assert_recovers(f, &unacked, "failed write").await;
    })
}

/// A flush retried after a failed write must not acknowledge the batches of the
/// failed write, nor anything after them (the file has a hole where it failed).
#[test]
fn flush_after_a_failed_write_acknowledges_nothing_more() {
    block_on(async {
        let mut f = Fixture::new(one_segment_config()).await;
        f.append_acked(4).await;
        f.storage.fail_nth(SimOp::Write, 1);
        // About 12 KiB: three write jobs of 4 KiB; the first one fails.
        let unacked = f.append(12).await;
        assert!(f.log.flush().await.is_err());
        assert_poisoned(&mut f, "after a failed write").await;
        let retry = f.log.flush().await;
        assert!(retry.is_err(), "a poisoned log's flush fails: {retry:?}");
        assert_poisoned(&mut f, "after a flush retried after a failed write").await;
        assert_recovers(f, &unacked, "failed write, flush retried").await;
    })
}

#[test]
fn failed_sync_poisons_the_log() {
    block_on(async {
        let mut f = Fixture::new(one_segment_config()).await;
        f.append_acked(12).await;
        f.storage.fail_nth(SimOp::Sync, 1);
        let unacked = f.append(3).await;
        let err = f.log.flush().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::StorageFailed, "{err}");
        assert_poisoned(&mut f, "after a failed sync").await;
        assert_recovers(f, &unacked, "failed sync").await;
    })
}

/// After a failed fsync the page cache is in an unknown state (the module docs):
/// a retried flush whose sync succeeds must still not make the records visible.
#[test]
fn flush_after_a_failed_sync_acknowledges_nothing_more() {
    block_on(async {
        let mut f = Fixture::new(one_segment_config()).await;
        f.append_acked(6).await;
        f.storage.fail_nth(SimOp::Sync, 1);
        let unacked = f.append(3).await;
        assert!(f.log.flush().await.is_err());
        assert_poisoned(&mut f, "after a failed sync").await;
        let retry = f.log.flush().await;
        assert!(retry.is_err(), "a poisoned log's flush fails: {retry:?}");
        assert_poisoned(&mut f, "after a flush retried after a failed sync").await;
        assert_recovers(f, &unacked, "failed sync, flush retried").await;
    })
}

/// A failed index write while rolling poisons the log; everything flushed before
/// the roll survives a restart.
#[test]
fn failed_roll_poisons_the_log() {
    block_on(async {
        let mut f = Fixture::new(one_segment_config()).await;
        f.append_acked(5).await;
        f.storage.fail_nth(SimOp::Write, 1);
        let err = f.log.roll().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::StorageFailed, "{err}");
        assert_poisoned(&mut f, "after a failed roll").await;
        assert_recovers(f, &[], "failed roll").await;
    })
}

/// Every read a read makes can fail: the read returns the error, and the next read
/// works. The same for `offset_at_time`.
#[test]
fn failed_reads_are_errors_and_later_reads_work() {
    block_on(async {
        let mut f = Fixture::new(small_config()).await;
        f.append_acked(40).await;
        // One big batch, larger than a read, in the last segment.
        let big = vec![Rec {
            key: "big".into(),
            data: vec![0xab; 100_000],
        }];
        let mut batch = encode(&big);
        f.log.roll().await.unwrap();
        let a = f.log.append(&mut batch, 9_000).unwrap();
        f.records.push(Served {
            offset: a.base_offset,
            key: "big".into(),
            data: big[0].data.clone(),
            arrival_ms: a.arrival_ms,
        });
        f.log.flush().await.unwrap();
        assert!(f.log.view().borrow().segments.len() > 3);

        let before = f.storage.op_count(SimOp::Read);
        assert_same(
            &read_all(f.log.view(), 0, 4096 * 3).await.unwrap(),
            &f.records,
            "clean read",
        );
        let reads = f.storage.op_count(SimOp::Read) - before;
        assert!(
            reads > 5,
            "the read should take several reads, took {reads}"
        );
        for k in 1..=reads {
            f.storage.fail_nth(SimOp::Read, k);
            let err = read_all(f.log.view(), 0, 4096 * 3).await.err();
            let err =
                err.unwrap_or_else(|| panic!("failing read {k} of {reads}: the read succeeded"));
            assert_eq!(
                err.code,
                ErrorCode::StorageFailed,
                "failing read {k}: {err}"
            );
            let got = read_all(f.log.view(), 0, 4096 * 3)
                .await
                .unwrap_or_else(|e| panic!("after failing read {k}: {e}"));
            assert_same(&got, &f.records, &format!("after failing read {k}"));
        }
        for time_ms in [0, 1_200, 9_000] {
            let want = log::offset_at_time(f.log.view(), time_ms).await.unwrap();
            f.storage.fail_nth(SimOp::Read, 1);
            let err = log::offset_at_time(f.log.view(), time_ms)
                .await
                .unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::StorageFailed,
                "offset_at_time({time_ms}): {err}"
            );
            assert_eq!(
                log::offset_at_time(f.log.view(), time_ms).await.unwrap(),
                want
            );
        }
    })
}

/// Opening never panics when one of its operations fails: it fails, or it works
/// around the failure (an unreadable index is rebuilt) and serves the right
/// records; a later open works.
#[test]
fn failed_open_is_an_error() {
    block_on(async {
        let mut f = Fixture::new(small_config()).await;
        f.append_acked(30).await;
        let Fixture {
            storage,
            log,
            records,
            ..
        } = f;
        drop(log);
        // Without the index of the first segment, open scans it (more reads).
        storage.remove_file(&idx_path(0)).await.unwrap();
        let mut survived = 0;
        for op in [SimOp::Open, SimOp::Read, SimOp::Write, SimOp::Sync] {
            let before = storage.op_count(op);
            let log = ShardLog::open(storage.clone(), dir(), small_config())
                .await
                .unwrap();
            drop(log);
            let count = storage.op_count(op) - before;
            for k in 1..=count {
                // The index of segment 0 was rebuilt by the open before; remove it
                // again so that each open does the same work.
                storage.remove_file(&idx_path(0)).await.unwrap();
                storage.fail_nth(op, k);
                if let Ok(log) = ShardLog::open(storage.clone(), dir(), small_config()).await {
                    let got = read_all(log.view(), 0, 8192).await.unwrap();
                    assert_same(
                        &got,
                        &records,
                        &format!("opened with {op:?} {k} of {count} failing"),
                    );
                    survived += 1;
                }
                let log = ShardLog::open(storage.clone(), dir(), small_config())
                    .await
                    .unwrap_or_else(|e| panic!("open after failing {op:?} {k}: {e}"));
                let got = read_all(log.view(), 0, 8192).await.unwrap();
                assert_same(&got, &records, &format!("after failing {op:?} {k}"));
            }
        }
        // Only failed reads of index files are worked around (by rebuilding them).
        assert!(
            survived <= 5,
            "most failures fail the open ({survived} survived)"
        );
    })
}

/// A flipped bit in a sealed segment: reads of that batch fail naming the file and
/// the byte; other segments stay readable; an open that has to scan the segment
/// (its index missing or corrupt) fails naming the segment file and the byte.
#[test]
fn corrupt_sealed_segment_is_reported_never_served() {
    for index in ["kept", "deleted", "corrupt"] {
        block_on(async {
            let config = LogConfig {
                segment_size_max: 8 << 10,
                ..small_config()
            };
            let mut f = Fixture::new(config.clone()).await;
            f.append_acked(30).await;
            let bases: Vec<u64> = f.log.view().borrow().segments.keys().copied().collect();
            assert!(bases.len() >= 3, "{bases:?}");
            let seg = seg_path(bases[0]);
            assert!(f.storage.files().contains(&seg));
            let positions = batch_positions(&file_bytes(&f.storage, &seg).await);
            let bad = positions[1];
            f.storage.corrupt(&seg, bad + 70);
            let ctx = format!("index {index}");

            let name = seg.display().to_string();
            let expect_error = |e: riffle_protocol::Error, what: &str| {
                assert!(
                    e.message.contains(&name) && e.message.contains(&format!("byte {bad}")),
                    "{ctx}: {what}: the error should name {name} and byte {bad}: {e}"
                );
            };
            // The second batch holds offsets 3..6.
            for from in [0, 3, 5] {
                let r = log::read(f.log.view(), from, 10_000, 10 << 20, 8192).await;
                match r {
                    Ok(out) => panic!(
                        "{ctx}: read from {from} served {} records over corrupt bytes",
                        out.record_count
                    ),
                    Err(e) => expect_error(e, &format!("read from {from}")),
                }
            }
            // The batch before is intact. (A read whose limit ends exactly at its end
            // verifies the next batch too, and fails: stop inside it.)
            let out = log::read(f.log.view(), 0, 2, 10 << 20, 8192).await.unwrap();
            assert_same(
                &common::served(&out),
                &f.records[..2],
                &format!("{ctx}: first batch"),
            );
            let e = log::offset_at_time(f.log.view(), f.records[3].arrival_ms)
                .await
                .unwrap_err();
            expect_error(e, "offset_at_time");
            let got = read_all(f.log.view(), bases[1], 8192).await.unwrap();
            assert_same(
                &got,
                &f.records[bases[1] as usize..],
                &format!("{ctx}: later segments"),
            );

            let Fixture { storage, log, .. } = f;
            drop(log);
            match index {
                "deleted" => storage.remove_file(&idx_path(bases[0])).await.unwrap(),
                "corrupt" => storage.corrupt(&idx_path(bases[0]), 8 + 20),
                _ => {}
            }
            match ShardLog::open(storage.clone(), dir(), config).await {
                Ok(log) => {
                    assert_eq!(
                        index, "kept",
                        "open must scan the segment when its index is {index}"
                    );
                    let e = log::read(log.view(), 0, 10_000, 10 << 20, 8192)
                        .await
                        .err()
                        .unwrap();
                    expect_error(e, "read after reopen");
                }
                Err(e) => {
                    assert_ne!(index, "kept", "open with a good index need not scan: {e}");
                    expect_error(e, "open");
                }
            }
        })
    }
}

/// Corruption in the middle of the active segment, with valid batches further than
/// the unsynced window after it, cannot be a torn tail: open fails naming the file
/// and the byte.
#[test]
fn corrupt_active_segment_middle_fails_open() {
    block_on(async {
        let config = LogConfig {
            segment_size_max: 1 << 20,
            unsynced_bytes_max: 4096,
            ..small_config()
        };
        let mut f = Fixture::new(config.clone()).await;
        f.append_acked(40).await;
        assert_eq!(f.log.view().borrow().segments.len(), 1);
        let Fixture { storage, log, .. } = f;
        drop(log);
        let seg = seg_path(0);
        let positions = batch_positions(&file_bytes(&storage, &seg).await);
        let bad = positions[2];
        storage.corrupt(&seg, bad + 100);
        let name = seg.display().to_string();
        let e = ShardLog::open(storage.clone(), dir(), config.clone())
            .await
            .err()
            .expect("open must fail");
        assert!(
            e.message.contains(&name) && e.message.contains(&format!("byte {bad}")),
            "the error should name {name} and byte {bad}: {e}"
        );
        let e = ShardLog::open(storage.restart(), dir(), config)
            .await
            .err()
            .expect("open after restart must fail");
        assert!(
            e.message.contains(&name) && e.message.contains(&format!("byte {bad}")),
            "after restart: {e}"
        );
    })
}

/// A torn batch after the last good one in the active segment (a crash with
/// unsynced data) is cut: open recovers the acknowledged records, zeroes the torn
/// bytes, and new appends land where the torn batch was.
#[test]
fn torn_tail_is_cut() {
    block_on(async {
        let config = small_config();
        let mut f = Fixture::new(config.clone()).await;
        f.append_acked(7).await;
        let Fixture {
            storage,
            log,
            mut records,
            ..
        } = f;
        let data_len = log.view().borrow().segments[&0].data_len as usize;
        drop(log);

        // Write the first 700 bytes of a sealed batch after the data, durably.
        let seg = seg_path(0);
        let mut torn = encode(&batch_recs(77));
        torn.seal(records.len() as u64, 2_000);
        let bytes = file_bytes(&storage, &seg).await;
        let block = data_len / 4096 * 4096;
        let file = storage.open(&seg, false).await.unwrap();
        let len = (data_len - block + 700).div_ceil(4096) * 4096;
        let mut buf = file.alloc(len);
        let out = buf.as_bytes_mut();
        out.fill(0);
        out[..data_len - block].copy_from_slice(&bytes[block..data_len]);
        out[data_len - block..data_len - block + 700].copy_from_slice(&torn[..700]);
        file.write_at(buf, block as u64).await.unwrap();
        file.sync().await.unwrap();
        drop(file);

        let storage = storage.restart();
        let mut log = ShardLog::open(storage.clone(), dir(), config.clone())
            .await
            .unwrap();
        assert_eq!(
            log.next_offset(),
            records.len() as u64,
            "the torn batch is not recovered"
        );
        let after = file_bytes(&storage, &seg).await;
        assert!(
            after[data_len..].iter().all(|&b| b == 0),
            "the torn bytes are zeroed or cut"
        );
        // Blocks after the last good one are dropped; with preallocation one step
        // past the data is reserved again, as zeros (asserted above).
        let expected_len = if config.preallocate {
            let step = config.preallocate_step as usize;
            ((data_len / step + 1) * step).min(config.segment_size_max as usize)
        } else {
            data_len.div_ceil(4096) * 4096
        };
        assert_eq!(
            after.len(),
            expected_len,
            "blocks after the last good one are dropped"
        );
        assert_same(
            &read_all(log.view(), 0, 8192).await.unwrap(),
            &records,
            "after cutting the torn tail",
        );

        let recs = batch_recs(78);
        let mut batch = encode(&recs);
        let a = log.append(&mut batch, 3_000).unwrap();
        assert_eq!(a.base_offset, records.len() as u64);
        log.flush().await.unwrap();
        for (j, r) in recs.into_iter().enumerate() {
            records.push(Served {
                offset: a.base_offset + j as u64,
                key: r.key,
                data: r.data,
                arrival_ms: a.arrival_ms,
            });
        }
        assert_same(
            &read_all(log.view(), 0, 8192).await.unwrap(),
            &records,
            "appends after the cut",
        );
        drop(log);
        let log = ShardLog::open(storage.restart(), dir(), config)
            .await
            .unwrap();
        assert_same(
            &read_all(log.view(), 0, 8192).await.unwrap(),
            &records,
            "after another restart",
        );
    })
}
