//! Retention workloads of the shard log with injected times: whole segments whose
//! newest record arrived before `now - retention` are deleted (files and indexes),
//! the trim horizon moves to the first remaining segment, reads and time seeks
//! start there, an expired active segment is rolled and deleted, offsets continue
//! after everything expired, and all of it survives a reopen and a restart.

use std::path::{Path, PathBuf};

use super::{
    Machine, Rec, Served, assert_same, encode, file_names, read_all, reopen, small_config, wipe,
};
use crate::log::{self, LogConfig, ShardLog};

/// Batch `i` arrives at `10_000 + 100 * i` ms.
fn arrival(i: u64) -> i64 {
    10_000 + 100 * i as i64
}

/// Far after every arrival: retention is given as `NOW_MS - cutoff`.
const NOW_MS: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_size_max: 8 << 10,
        ..small_config()
    }
}

fn batch_recs(i: u64) -> Vec<Rec> {
    (0..3)
        .map(|j| Rec {
            key: format!("k{i}.{j}"),
            data: vec![(i + j) as u8; 300 + (i as usize % 5) * 40],
        })
        .collect()
}

/// One segment as the view had it before retention.
#[derive(Clone, Copy, Debug)]
struct Seg {
    base: u64,
    last_arrival_ms: i64,
}

struct Fixture<M: Machine> {
    machine: M,
    dir: PathBuf,
    log: ShardLog<M::Storage>,
    records: Vec<Served>,
    batches: u64,
}

impl<M: Machine> Fixture<M> {
    /// A log in an emptied `dir` of `n` flushed batches over several segments.
    async fn new(dir: &Path, n: u64) -> Fixture<M> {
        let machine = M::boot(5);
        wipe(&machine.storage(), dir).await;
        let log = ShardLog::open(machine.storage(), dir, config())
            .await
            .unwrap();
        let mut f = Fixture {
            machine,
            dir: dir.to_path_buf(),
            log,
            records: Vec::new(),
            batches: 0,
        };
        f.append(n).await;
        f.log.flush().await.unwrap();
        f
    }

    async fn append(&mut self, n: u64) {
        for _ in 0..n {
            let i = self.batches;
            self.batches += 1;
            let recs = batch_recs(i);
            let mut batch = encode(&recs);
            if self.log.needs_roll(batch.len(), arrival(i)) {
                self.log.roll().await.unwrap();
            }
            let a = self.log.append(&mut batch, arrival(i)).unwrap();
            assert_eq!(a.arrival_ms, arrival(i));
            for (j, r) in recs.into_iter().enumerate() {
                self.records.push(Served {
                    offset: a.base_offset + j as u64,
                    key: r.key,
                    data: r.data,
                    arrival_ms: a.arrival_ms,
                });
            }
        }
    }

    fn segments(&self) -> Vec<Seg> {
        let v = self.log.view().borrow();
        v.segments
            .values()
            .map(|s| Seg {
                base: s.base_offset,
                last_arrival_ms: s.last_arrival_ms.unwrap_or(i64::MIN),
            })
            .collect()
    }

    fn next(&self) -> u64 {
        self.records.len() as u64
    }

    /// Opens the log again (the old one is dropped after), on a restarted
    /// machine when `restart` is set and the machine can restart.
    async fn reopen(&mut self, restart: bool) {
        self.log = reopen(&mut self.machine, None, &self.dir, &config(), restart)
            .await
            .unwrap();
    }
}

/// Checks the log after retention: files, trim horizon, reads and time seeks start
/// at `trim`, the next offset is unchanged.
async fn check_trimmed<M: Machine>(f: &Fixture<M>, kept: &[u64], active: u64, ctx: &str) {
    let trim = kept.first().copied().unwrap_or(active);
    let mut want_files = Vec::new();
    for &base in kept {
        want_files.push(format!("{base:020}.idx"));
        want_files.push(format!("{base:020}.seg"));
    }
    want_files.push(format!("{active:020}.seg"));
    want_files.sort();
    assert_eq!(
        file_names(&f.machine.storage(), &f.dir).await,
        want_files,
        "{ctx}: files"
    );
    {
        let v = f.log.view().borrow();
        assert_eq!(v.trim_offset, trim, "{ctx}: trim offset");
        assert_eq!(v.next_offset, f.next(), "{ctx}: next offset");
        let bases: Vec<u64> = v.segments.keys().copied().collect();
        assert_eq!(bases, [kept, &[active]].concat(), "{ctx}: segments");
    }

    let got = read_all(f.log.view(), 0, 8192).await.unwrap();
    assert_same(
        &got,
        &f.records[trim as usize..],
        &format!("{ctx}: read from 0"),
    );
    let out = log::read(f.log.view(), 0, 1, 1, 8192).await.unwrap();
    let first = super::served(&out).first().map(|r| r.offset);
    assert_eq!(
        first,
        (trim < f.next()).then_some(trim),
        "{ctx}: first record served from 0"
    );
    assert_eq!(
        out.next_offset,
        (trim + 1).min(f.next()).max(trim),
        "{ctx}: next offset of a read from 0"
    );
    for time_ms in [i64::MIN, 0, arrival(0)] {
        assert_eq!(
            log::offset_at_time(f.log.view(), time_ms).await.unwrap(),
            trim,
            "{ctx}: offset_at_time({time_ms})"
        );
    }
}

/// Retention with cutoffs at, just after and between segments' newest arrivals:
/// the segments strictly older than the cutoff go, whole.
pub async fn expired_sealed_segments_are_deleted_whole<M: Machine>(dir: &Path) {
    let segs = Fixture::<M>::new(dir, 40).await.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    let sealed = segs.len() - 1;
    let active = segs[sealed].base;
    // (cutoff, segments deleted)
    let mut cases = vec![(i64::MIN, 0), (arrival(0), 0), (segs[0].last_arrival_ms, 0)];
    for (k, s) in segs[..sealed].iter().enumerate() {
        cases.push((s.last_arrival_ms + 1, k + 1));
        cases.push((s.last_arrival_ms + 50, k + 1));
    }
    cases.push((segs[sealed].last_arrival_ms, sealed));
    for (cutoff, deleted) in cases {
        let ctx = format!("cutoff {cutoff} (segments {segs:?})");
        let mut f = Fixture::<M>::new(dir, 40).await;
        let retention_ms = NOW_MS.saturating_sub(cutoff);
        let got = f.log.apply_retention(NOW_MS, retention_ms).await.unwrap();
        assert_eq!(got, deleted, "{ctx}: segments deleted");
        let kept: Vec<u64> = segs[deleted..sealed].iter().map(|s| s.base).collect();
        check_trimmed(&f, &kept, active, &ctx).await;

        // The same retention again deletes nothing more.
        assert_eq!(
            f.log.apply_retention(NOW_MS, retention_ms).await.unwrap(),
            0,
            "{ctx}: again"
        );
        for restart in [false, true] {
            f.reopen(restart).await;
            check_trimmed(
                &f,
                &kept,
                active,
                &format!("{ctx}, reopened (restart {restart})"),
            )
            .await;
        }
        // Appends continue at the next offset.
        let next = f.next();
        f.append(2).await;
        assert_eq!(
            f.log.flush().await.unwrap(),
            next + 6,
            "{ctx}: flush after retention"
        );
        let got = read_all(f.log.view(), 0, 8192).await.unwrap();
        let trim = kept.first().copied().unwrap_or(active);
        assert_same(
            &got,
            &f.records[trim as usize..],
            &format!("{ctx}: after new appends"),
        );
    }
}

/// When every record expired, the active segment is rolled and deleted too: the
/// log is empty, its trim horizon is its next offset, and offsets continue from
/// there, also after a reopen and a restart.
pub async fn expired_active_segment_is_rolled_and_deleted<M: Machine>(dir: &Path) {
    for (unflushed, restart) in [(0, false), (0, true), (2, false), (2, true)] {
        let ctx = format!("{unflushed} unflushed batches, restart {restart}");
        let mut f = Fixture::<M>::new(dir, 30).await;
        // Appended, not yet flushed: rolling the active segment flushes them.
        f.append(unflushed).await;
        let segs = f.segments();
        let next = f.next();
        let cutoff = arrival(f.batches - 1) + 1;
        let got = f
            .log
            .apply_retention(NOW_MS, NOW_MS - cutoff)
            .await
            .unwrap();
        assert_eq!(got, segs.len(), "{ctx}: every segment deleted");
        check_trimmed(&f, &[], next, &ctx).await;
        {
            let v = f.log.view().borrow();
            assert_eq!(
                (v.durable_offset, v.visible_offset),
                (next, next),
                "{ctx}: (durable, visible)"
            );
        }
        let out = log::read(f.log.view(), 0, 100, 1 << 20, 8192)
            .await
            .unwrap();
        assert_eq!(
            (out.record_count, out.next_offset),
            (0, next),
            "{ctx}: read from 0"
        );

        f.reopen(restart).await;
        check_trimmed(&f, &[], next, &format!("{ctx}, reopened")).await;
        assert_eq!(f.log.next_offset(), next, "{ctx}: next offset after reopen");
        assert_eq!(
            f.log.apply_retention(NOW_MS, 0).await.unwrap(),
            0,
            "{ctx}: nothing left to delete"
        );

        // New appends get the next offsets, not 0.
        f.append(3).await;
        assert_eq!(
            f.log.flush().await.unwrap(),
            next + 9,
            "{ctx}: flush after everything expired"
        );
        let got = read_all(f.log.view(), 0, 8192).await.unwrap();
        assert_same(
            &got,
            &f.records[next as usize..],
            &format!("{ctx}: new records"),
        );
        f.reopen(true).await;
        let got = read_all(f.log.view(), 0, 8192).await.unwrap();
        assert_same(
            &got,
            &f.records[next as usize..],
            &format!("{ctx}: new records after a restart"),
        );
        assert_eq!(
            f.log.view().borrow().trim_offset,
            next,
            "{ctx}: trim after a restart"
        );
    }
}

/// Retention in steps, with reopens in between, ends where one retention would.
pub async fn retention_in_steps_across_reopens<M: Machine>(dir: &Path) {
    let mut f = Fixture::<M>::new(dir, 60).await;
    let segs = f.segments();
    let sealed = segs.len() - 1;
    let active = segs[sealed].base;
    for (k, s) in segs[..sealed].iter().enumerate() {
        let ctx = format!("step {k} (segments {segs:?})");
        let got = f
            .log
            .apply_retention(NOW_MS, NOW_MS - s.last_arrival_ms - 1)
            .await
            .unwrap();
        assert_eq!(got, 1, "{ctx}: one segment per step");
        let kept: Vec<u64> = segs[k + 1..sealed].iter().map(|s| s.base).collect();
        check_trimmed(&f, &kept, active, &ctx).await;
        f.reopen(k % 2 == 1).await;
        check_trimmed(&f, &kept, active, &format!("{ctx}, reopened")).await;
    }
}

/// Retention of an empty log deletes nothing and leaves it usable.
pub async fn retention_of_an_empty_log<M: Machine>(dir: &Path) {
    let mut f = Fixture::<M>::new(dir, 0).await;
    assert_eq!(f.log.apply_retention(NOW_MS, 0).await.unwrap(), 0);
    check_trimmed(&f, &[], 0, "empty log").await;
    f.append(1).await;
    f.log.flush().await.unwrap();
    assert_same(
        &read_all(f.log.view(), 0, 8192).await.unwrap(),
        &f.records,
        "one batch",
    );
}
