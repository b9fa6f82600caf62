//! Crash tests of the shard log on the simulated disk.
//!
//! A seeded workload (60 appends, flushes every few appends, rolls) runs once
//! without a crash to count its syncs and writes; then it runs again on a fresh
//! disk for every crash point: at each sync (`crash_at_sync`) and before each
//! segment write (the pipeline driven by hand). After the crash the disk restarts
//! (only durable bytes survive, plus a seeded choice of unsynced blocks) and the log
//! reopens. Every acknowledged record must be there, byte for byte and in order;
//! nothing that was not appended may be served; reads never fail; and the log takes
//! new appends. The same checks run after a second crash during recovery itself.
//!
//! An append is acknowledged once a later flush returned a durable offset at or
//! past its end.
//!
//! Replay a failure: `RIFFLE_SEED=<seed> cargo test -p riffle-store --test log_crash`.

mod common;

use common::{
    Rec, Rng, Served, assert_same, dir, encode, gen_records, read_all, replay_hint, seeds,
    small_config,
};
use futures_lite::future::block_on;
use riffle_protocol::{Error, ErrorCode};
use riffle_store::StorageFile;
use riffle_store::log::{self, LogConfig, ShardLog};
use riffle_store::sim::SimStorage;

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4, 5];
const APPEND_COUNT: usize = 60;
/// Flush at the latest when this many bytes were appended since the last flush,
/// far below `unsynced_bytes_max` (the torn-tail window of recovery).
const UNSYNCED_BYTES_TARGET: usize = 96 << 10;

struct Step {
    recs: Vec<Rec>,
    now_ms: i64,
    flush_after: bool,
}

fn workload(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut unsynced = 0;
    (0..APPEND_COUNT)
        .map(|i| {
            let recs = gen_records(&mut rng, 8, 1500, 5, 12_000);
            unsynced += encode(&recs).len();
            let flush_after =
                rng.chance(30) || unsynced > UNSYNCED_BYTES_TARGET || i + 1 == APPEND_COUNT;
            if flush_after {
                unsynced = 0;
            }
            Step {
                recs,
                now_ms: 1_000 + 7 * i as i64,
                flush_after,
            }
        })
        .collect()
}

fn config() -> LogConfig {
    LogConfig {
        segment_size_max: 24 << 10,
        ..small_config()
    }
}

/// How a run performs its flushes.
#[derive(Clone, Copy, Debug)]
enum Flush {
    /// `ShardLog::flush`.
    Log,
    /// The write/sync pipeline by hand; the disk crashes just before segment
    /// write number `crash_before_write` (counting from 1).
    Manual { crash_before_write: u64 },
}

struct AppendedBatch {
    step: usize,
    base: u64,
    end: u64,
    arrival_ms: i64,
}

#[derive(Default)]
struct Outcome {
    appended: Vec<AppendedBatch>,
    /// Durable offset returned by the last successful flush.
    acked: u64,
    writes: u64,
    failure: Option<String>,
}

impl Outcome {
    fn appended_end(&self) -> u64 {
        self.appended.last().map_or(0, |a| a.end)
    }

    /// The records expected at offsets `0..end` (which must be a batch boundary).
    fn expected(&self, steps: &[Step], end: u64) -> Vec<Served> {
        let mut out = Vec::new();
        for a in self.appended.iter().take_while(|a| a.end <= end) {
            for (i, r) in steps[a.step].recs.iter().enumerate() {
                out.push(Served {
                    offset: a.base + i as u64,
                    key: r.key.clone(),
                    data: r.data.clone(),
                    arrival_ms: a.arrival_ms,
                });
            }
        }
        assert_eq!(
            out.len() as u64,
            end,
            "expected records end at a batch boundary"
        );
        out
    }
}

async fn flush(
    log: &mut ShardLog<SimStorage>,
    storage: &SimStorage,
    how: Flush,
    writes: &mut u64,
) -> Result<u64, Error> {
    let Flush::Manual { crash_before_write } = how else {
        return log.flush().await;
    };
    let failed = |log: &ShardLog<SimStorage>, what: &str, e: std::io::Error| {
        let err = Error::new(ErrorCode::StorageFailed, format!("{what}: {e}"));
        log.view().borrow_mut().poison(err.message.clone());
        err
    };
    while let Some(w) = log.take_write() {
        *writes += 1;
        if *writes == crash_before_write {
            storage.crash();
        }
        let end = w.job.end;
        w.file
            .write_at(w.job.buf, w.job.pos)
            .await
            .map_err(|e| failed(log, "write", e))?;
        log.write_done(end);
    }
    let (file, covered, durable) = {
        let v = log.view().borrow();
        (
            v.segments.values().next_back().unwrap().file.clone(),
            v.written_offset,
            v.durable_offset,
        )
    };
    if covered > durable {
        file.sync().await.map_err(|e| failed(log, "sync", e))?;
        log.view().borrow_mut().mark_durable(covered);
    }
    Ok(log.view().borrow().durable_offset)
}

/// Runs the workload until an operation fails.
async fn run(storage: &SimStorage, steps: &[Step], how: Flush) -> Outcome {
    let mut out = Outcome::default();
    let mut log = match ShardLog::open(storage.clone(), dir(), config()).await {
        Ok(log) => log,
        Err(e) => {
            out.failure = Some(format!("open: {e}"));
            return out;
        }
    };
    for (i, step) in steps.iter().enumerate() {
        let mut batch = encode(&step.recs);
        if log.needs_roll(batch.len(), step.now_ms) {
            // Flush first so that every segment write goes through `flush` here.
            match flush(&mut log, storage, how, &mut out.writes).await {
                Ok(d) => out.acked = d,
                Err(e) => {
                    out.failure = Some(format!("step {i}: flush before roll: {e}"));
                    return out;
                }
            }
            if let Err(e) = log.roll().await {
                out.failure = Some(format!("step {i}: roll: {e}"));
                return out;
            }
        }
        match log.append(&mut batch, step.now_ms) {
            Ok(a) => out.appended.push(AppendedBatch {
                step: i,
                base: a.base_offset,
                end: a.end_offset,
                arrival_ms: a.arrival_ms,
            }),
            Err(e) => {
                out.failure = Some(format!("step {i}: append: {e}"));
                return out;
            }
        }
        if step.flush_after {
            match flush(&mut log, storage, how, &mut out.writes).await {
                Ok(d) => {
                    assert!(
                        d >= out.acked,
                        "durable offset went back from {} to {d}",
                        out.acked
                    );
                    out.acked = d;
                }
                Err(e) => {
                    out.failure = Some(format!("step {i}: flush: {e}"));
                    return out;
                }
            }
        }
    }
    out
}

/// Reopens the log on a restarted disk and checks it against the run. Returns
/// the recovered next offset.
async fn check_recovered(storage: SimStorage, steps: &[Step], run: &Outcome, ctx: &str) -> u64 {
    let config = config();
    let mut log = ShardLog::open(storage.clone(), dir(), config.clone())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: reopen after the crash failed: {e}"));
    let next = log.next_offset();
    let appended_end = run.appended_end();
    assert!(
        run.acked <= next && next <= appended_end,
        "{ctx}: recovered next offset {next} is outside [acked {}, appended {appended_end}]",
        run.acked
    );
    assert!(
        next == 0 || run.appended.iter().any(|a| a.end == next),
        "{ctx}: recovered next offset {next} is not a batch boundary"
    );
    {
        let v = log.view().borrow();
        assert_eq!(
            (v.written_offset, v.durable_offset, v.visible_offset),
            (next, next, next),
            "{ctx}: watermarks"
        );
    }
    let expected = run.expected(steps, next);
    for read_size in [config.read_size, 65536] {
        let got = read_all(log.view(), 0, read_size)
            .await
            .unwrap_or_else(|e| {
                panic!("{ctx}: read after recovery failed (read_size {read_size}): {e}")
            });
        assert_same(
            &got,
            &expected,
            &format!("{ctx}: records after recovery (read_size {read_size})"),
        );
    }
    // Reads starting at every batch, one record at a time.
    for a in run.appended.iter().take_while(|a| a.end <= next) {
        let out = log::read(log.view(), a.base, 1, 1, config.read_size)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read from {}: {e}", a.base));
        assert_same(
            &common::served(&out),
            &expected[a.base as usize..a.base as usize + 1],
            &format!("{ctx}: read from {}", a.base),
        );
    }

    // The log takes new appends, and they survive another restart.
    let mut rng = Rng::new(next);
    let mut all = expected;
    for i in 0..4 {
        let recs = gen_records(&mut rng, 6, 2000, 10, 30_000);
        let mut batch = encode(&recs);
        let now = 100_000 + i;
        if log.needs_roll(batch.len(), now) {
            log.roll()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: roll after recovery: {e}"));
        }
        let a = log
            .append(&mut batch, now)
            .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
        assert_eq!(
            a.base_offset,
            all.len() as u64,
            "{ctx}: offset of the first append after recovery"
        );
        for (j, r) in recs.into_iter().enumerate() {
            all.push(Served {
                offset: a.base_offset + j as u64,
                key: r.key,
                data: r.data,
                arrival_ms: a.arrival_ms,
            });
        }
    }
    let durable = log
        .flush()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: flush after recovery: {e}"));
    assert_eq!(
        durable,
        all.len() as u64,
        "{ctx}: durable offset after new appends"
    );
    let got = read_all(log.view(), 0, config.read_size)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
    assert_same(&got, &all, &format!("{ctx}: records after new appends"));
    drop(log);
    let log = ShardLog::open(storage.restart(), dir(), config.clone())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
    assert_eq!(
        log.next_offset(),
        all.len() as u64,
        "{ctx}: next offset after the second reopen"
    );
    let got = read_all(log.view(), 0, config.read_size)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
    assert_same(
        &got,
        &all,
        &format!("{ctx}: records after the second reopen"),
    );
    next
}

/// What the crashes of one test recovered, to check the test covers the
/// interesting cases.
#[derive(Default, Debug)]
struct Coverage {
    /// Recoveries that kept records past the acknowledged point.
    kept_unacked: u32,
    /// Recoveries that lost records appended past the acknowledged point.
    lost_unacked: u32,
}

/// Checks recovery from a crashed disk twice: directly, and after a second crash
/// at the first sync of recovery (cutting the torn tail).
async fn check_crash(
    crashed: &SimStorage,
    steps: &[Step],
    run: &Outcome,
    ctx: &str,
    coverage: &mut Coverage,
) {
    assert!(crashed.is_crashed(), "{ctx}: the disk should have crashed");
    let next = check_recovered(crashed.restart(), steps, run, ctx).await;
    coverage.kept_unacked += u32::from(next > run.acked);
    coverage.lost_unacked += u32::from(next < run.appended_end());

    let again = crashed.restart();
    again.crash_at_sync(1);
    if let Ok(log) = ShardLog::open(again.clone(), dir(), config()).await {
        drop(log);
    }
    check_recovered(
        again.restart(),
        steps,
        run,
        &format!("{ctx}, crashed again during recovery"),
    )
    .await;
}

#[test]
fn crash_at_every_sync() {
    for seed in seeds(DEFAULT_SEEDS) {
        eprintln!(
            "crash_at_every_sync seed {seed}: replay with {}",
            replay_hint("log_crash", seed)
        );
        block_on(async {
            let steps = workload(seed);
            let clean = SimStorage::new(seed);
            let full = run(&clean, &steps, Flush::Log).await;
            assert!(
                full.failure.is_none(),
                "seed {seed}: run without a crash failed: {:?}",
                full.failure
            );
            let sync_count = clean.sync_count();
            assert!(
                sync_count >= 15,
                "seed {seed}: the workload should sync often, synced {sync_count} times"
            );
            let mut coverage = Coverage::default();
            for n in 1..=sync_count + 1 {
                let storage = SimStorage::new(seed.wrapping_add(n));
                storage.crash_at_sync(n);
                let out = run(&storage, &steps, Flush::Log).await;
                let ctx = format!(
                    "seed {seed}, crash at sync {n} of {sync_count} ({:?})",
                    out.failure
                );
                assert_eq!(
                    out.failure.is_some(),
                    n <= sync_count,
                    "{ctx}: the run fails exactly when the crash hits"
                );
                storage.crash();
                check_crash(&storage, &steps, &out, &ctx, &mut coverage).await;
            }
            assert!(
                coverage.kept_unacked > 0 && coverage.lost_unacked > 0,
                "seed {seed}: {coverage:?}"
            );
        });
    }
}

#[test]
fn crash_before_every_write() {
    // Coverage is summed over the seeds of the run: a crash between the jobs of
    // one flush keeps unacknowledged records only when whole batches landed in
    // surviving blocks, which some seeds never produce.
    let mut coverage = Coverage::default();
    for seed in seeds(DEFAULT_SEEDS) {
        eprintln!(
            "crash_before_every_write seed {seed}: replay with {}",
            replay_hint("log_crash", seed)
        );
        block_on(async {
            let steps = workload(seed);
            let full = run(
                &SimStorage::new(seed),
                &steps,
                Flush::Manual {
                    crash_before_write: u64::MAX,
                },
            )
            .await;
            assert!(
                full.failure.is_none(),
                "seed {seed}: run without a crash failed: {:?}",
                full.failure
            );
            assert!(
                full.writes >= 15,
                "seed {seed}: the workload should write often, wrote {} times",
                full.writes
            );
            for n in 1..=full.writes + 1 {
                let storage = SimStorage::new(seed.wrapping_mul(31).wrapping_add(n));
                let out = run(
                    &storage,
                    &steps,
                    Flush::Manual {
                        crash_before_write: n,
                    },
                )
                .await;
                let ctx = format!(
                    "seed {seed}, crash before write {n} of {} ({:?})",
                    full.writes, out.failure
                );
                assert_eq!(
                    out.failure.is_some(),
                    n <= full.writes,
                    "{ctx}: the run fails exactly when the crash hits"
                );
                storage.crash();
                check_crash(&storage, &steps, &out, &ctx, &mut coverage).await;
            }
        });
    }
    assert!(
        coverage.kept_unacked > 0 && coverage.lost_unacked > 0,
        "seeds {:?}: {coverage:?}",
        seeds(DEFAULT_SEEDS)
    );
}

/// Records a reopened log serves must survive a crash, even when the process that
/// wrote them died between its writes and its sync: open found them in the page
/// cache, and readers may have seen them.
#[test]
fn records_served_after_reopen_survive_a_crash() {
    for seed in seeds(DEFAULT_SEEDS) {
        eprintln!(
            "records_served_after_reopen_survive_a_crash seed {seed}: replay with {}",
            replay_hint("log_crash", seed)
        );
        block_on(async {
            let steps = workload(seed);
            let storage = SimStorage::new(seed);
            let mut log = ShardLog::open(storage.clone(), dir(), config())
                .await
                .unwrap();
            let mut expected = Vec::new();
            for (i, step) in steps.iter().take(12).enumerate() {
                let mut batch = encode(&step.recs);
                let a = log.append(&mut batch, step.now_ms).unwrap();
                for (j, r) in step.recs.iter().enumerate() {
                    let (key, data) = (r.key.clone(), r.data.clone());
                    expected.push(Served {
                        offset: a.base_offset + j as u64,
                        key,
                        data,
                        arrival_ms: a.arrival_ms,
                    });
                }
                if i == 3 {
                    log.flush().await.unwrap();
                }
            }
            // Write everything, but the process dies before the sync.
            while let Some(w) = log.take_write() {
                let end = w.job.end;
                w.file.write_at(w.job.buf, w.job.pos).await.unwrap();
                log.write_done(end);
            }
            drop(log);
            let log = ShardLog::open(storage.clone(), dir(), config())
                .await
                .unwrap();
            let served = read_all(log.view(), 0, 8192).await.unwrap();
            assert_same(
                &served,
                &expected,
                &format!("seed {seed}: the reopened log serves the written records"),
            );
            drop(log);

            let log = ShardLog::open(storage.restart(), dir(), config())
                .await
                .unwrap();
            let after = read_all(log.view(), 0, 8192).await.unwrap();
            assert_same(
                &after,
                &served,
                &format!(
                    "seed {seed}: records served after a reopen must survive a crash (they were never synced)"
                ),
            );
        });
    }
}
