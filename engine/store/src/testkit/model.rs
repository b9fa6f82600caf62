//! Model-based workload of the shard log: seeded random operations (appends,
//! flushes, rolls, reads, time seeks, reopens, restarts, retention) run against a
//! `ShardLog` on any [`Machine`] and against a plain in-memory model of what the
//! log promises. Every output and every watermark is compared exactly.
//!
//! The model is records by offset (key, data, arrival time), the batches they were
//! appended in (for segment sizes), the segment bases, and the visible and trim
//! offsets. Read limits follow AWS: data plus partition key bytes count, and one
//! record is returned whatever its size when one is available.
//!
//! Some seeds encrypt (an encrypted stream's log, see `cipher`): about half
//! their batches are written under one of two data keys, and every read is
//! given the keys. The model is the same; only batch sizes on disk grow.
//!
//! Restarts keep only durable bytes on a machine that can restart (the simulated
//! disk); elsewhere they are reopens. Every restart follows a flush, so the model
//! expects the same either way, and one seed runs the same operations on every
//! storage.

use std::collections::BTreeSet;
use std::path::Path;

use riffle_protocol::batch::{ENCRYPTION_OVERHEAD, padded};

use super::{
    Machine, Rec, Rng, Served, TestKeys, assert_same, encode, file_names, gen_records, read_all,
    reopen, served, wipe,
};
use crate::StorageFile;
use crate::log::{self, Appended, LogConfig, ShardLog};

/// Where the test clock starts.
const CLOCK_START_MS: i64 = 1_700_000_000_000;

struct ModelRecord {
    rec: Rec,
    arrival_ms: i64,
}

struct ModelBatch {
    base: u64,
    padded_len: u64,
}

/// What the log should hold.
struct Model {
    config: LogConfig,
    /// Every record ever appended and not lost, by offset (trimmed ones included).
    records: Vec<ModelRecord>,
    batches: Vec<ModelBatch>,
    /// Bases of the retained segments; the last is the active one.
    segments: Vec<u64>,
    /// Records below this were written to the file (not necessarily synced).
    written: u64,
    /// Records below this were covered by a completed sync.
    durable: u64,
    trim: u64,
    last_arrival_ms: i64,
}

impl Model {
    fn new(config: LogConfig) -> Model {
        Model {
            config,
            records: Vec::new(),
            batches: Vec::new(),
            segments: vec![0],
            written: 0,
            durable: 0,
            trim: 0,
            last_arrival_ms: i64::MIN,
        }
    }

    fn next(&self) -> u64 {
        self.records.len() as u64
    }

    /// Readers see durable records, or written ones when acks do not wait for fsync.
    fn visible(&self) -> u64 {
        if self.config.durable_acks {
            self.durable
        } else {
            self.written
        }
    }

    /// (base, end) of retained segment `i`.
    fn segment(&self, i: usize) -> (u64, u64) {
        (
            self.segments[i],
            self.segments.get(i + 1).copied().unwrap_or(self.next()),
        )
    }

    fn segment_bytes(&self, i: usize) -> u64 {
        let (base, end) = self.segment(i);
        self.batches
            .iter()
            .filter(|b| b.base >= base && b.base < end)
            .map(|b| b.padded_len)
            .sum()
    }

    fn arrival(&self, offset: u64) -> i64 {
        self.records[offset as usize].arrival_ms
    }

    fn needs_roll(&self, batch_len: usize, now_ms: i64) -> bool {
        let i = self.segments.len() - 1;
        let (base, end) = self.segment(i);
        if base == end {
            return false;
        }
        self.segment_bytes(i) + padded(batch_len) as u64 > self.config.segment_size_max
            || now_ms - self.arrival(base) >= self.config.segment_age_ms_max
    }

    fn append(&mut self, recs: Vec<Rec>, batch_len: usize, now_ms: i64) -> Appended {
        let arrival_ms = now_ms.max(self.last_arrival_ms);
        self.last_arrival_ms = arrival_ms;
        let base_offset = self.next();
        self.batches.push(ModelBatch {
            base: base_offset,
            padded_len: padded(batch_len) as u64,
        });
        let record_count = recs.len() as u32;
        self.records
            .extend(recs.into_iter().map(|rec| ModelRecord { rec, arrival_ms }));
        Appended {
            base_offset,
            record_count,
            end_offset: self.next(),
            arrival_ms,
        }
    }

    fn flush(&mut self) {
        self.written = self.next();
        self.durable = self.next();
    }

    /// The written offset after a write job ending at segment position `job_end`
    /// completed: every batch of the active segment that ends at or before it.
    fn write_done(&mut self, job_end: u64) -> u64 {
        let active = *self.segments.last().unwrap();
        let mut pos = 0;
        for b in self.batches.iter().filter(|b| b.base >= active) {
            pos += b.padded_len;
            let end = self
                .batches
                .iter()
                .find(|n| n.base > b.base)
                .map_or(self.next(), |n| n.base);
            if pos <= job_end {
                self.written = self.written.max(end);
            }
        }
        self.written
    }

    fn roll(&mut self) {
        self.flush();
        self.segments.push(self.next());
    }

    /// Forgets what was appended but never flushed (the log was dropped).
    /// (The disk did not crash: what was written is read back by the reopen.)
    fn lose_pending(&mut self) {
        self.records.truncate(self.written as usize);
        let written = self.written;
        self.batches.retain(|b| b.base < written);
    }

    /// After a reopen everything recovered is durable, and the arrival clamp
    /// restarts from the newest retained record.
    fn reopened(&mut self) {
        self.durable = self.written;
        self.last_arrival_ms = if self.next() > self.trim {
            self.arrival(self.next() - 1)
        } else {
            i64::MIN
        };
    }

    fn retention(&mut self, now_ms: i64, retention_ms: i64) -> usize {
        let cutoff = now_ms.saturating_sub(retention_ms);
        let active = self.segments.len() - 1;
        let (base, end) = self.segment(active);
        if end > base && self.arrival(end - 1) < cutoff {
            self.roll();
        }
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let (base, end) = self.segment(0);
            if end > base && self.arrival(end - 1) >= cutoff {
                break;
            }
            self.segments.remove(0);
            self.trim = self.segments[0];
            deleted += 1;
        }
        deleted
    }

    /// (offsets served, next_offset, byte_count) of a read.
    fn read(&self, from: u64, count_max: u32, bytes_max: u64) -> (std::ops::Range<u64>, u64, u64) {
        let start = from.max(self.trim);
        let (mut next, mut count, mut bytes) = (start, 0u32, 0u64);
        while next < self.visible() {
            let size = self.records[next as usize].rec.size();
            if count >= count_max || (count > 0 && bytes + size > bytes_max) {
                break;
            }
            count += 1;
            bytes += size;
            next += 1;
        }
        (start..next, next, bytes)
    }

    fn offset_at_time(&self, time_ms: i64) -> u64 {
        (self.trim..self.visible())
            .find(|&o| self.arrival(o) >= time_ms)
            .unwrap_or(self.visible())
    }

    fn expect_served(&self, range: std::ops::Range<u64>) -> Vec<Served> {
        range
            .map(|o| {
                let r = &self.records[o as usize];
                Served {
                    offset: o,
                    key: r.rec.key.clone(),
                    data: r.rec.data.clone(),
                    arrival_ms: r.arrival_ms,
                }
            })
            .collect()
    }
}

/// The test clock: mostly moves forward a little, sometimes steps back (the log
/// must clamp arrival times), sometimes leaps.
struct Clock {
    now_ms: i64,
}

impl Clock {
    fn tick(&mut self, rng: &mut Rng) -> i64 {
        if rng.chance(5) {
            self.now_ms -= rng.range(0, 30) as i64;
        } else {
            self.now_ms += rng.range(0, 40) as i64;
        }
        self.now_ms
    }
}

fn config_for(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_size_max: *rng.pick(&[16u64 << 10, 32 << 10, 64 << 10]),
        segment_age_ms_max: *rng.pick(&[2_000i64, 5_000, 1_000_000]),
        write_size: *rng.pick(&[4096usize, 8192]),
        index_interval_bytes: 1024,
        unsynced_bytes_max: 64 << 20,
        read_size: *rng.pick(&[4096usize, 8192]),
        durable_acks: rng.chance(70),
        preallocate: rng.chance(50),
        preallocate_step: *rng.pick(&[4096u64, 8192, 12288]),
        recent_bytes_max: *rng.pick(&[0usize, 4096, 64 << 10]),
        follow_bytes_max: *rng.pick(&[0usize, 8192, 256 << 10]),
    }
}

/// Compares everything the view exposes with the model.
fn check_view<S: crate::Storage>(log: &ShardLog<S>, m: &Model, ctx: &str) {
    let v = log.view().borrow();
    assert!(v.failed.is_none(), "{ctx}: log failed: {:?}", v.failed);
    let watermarks = (
        v.next_offset,
        v.written_offset,
        v.durable_offset,
        v.visible_offset,
        v.trim_offset,
    );
    assert_eq!(
        watermarks,
        (m.next(), m.written, m.durable, m.visible(), m.trim),
        "{ctx}: (next, written, durable, visible, trim)"
    );
    let bases: Vec<u64> = v.segments.keys().copied().collect();
    assert_eq!(bases, m.segments, "{ctx}: segment bases");
    for (i, seg) in v.segments.values().enumerate() {
        let (base, end) = m.segment(i);
        let arrivals = (end > base).then(|| (m.arrival(base), m.arrival(end - 1)));
        assert_eq!(seg.next_offset, end, "{ctx}: segment {base} next_offset");
        assert_eq!(
            seg.data_len,
            m.segment_bytes(i),
            "{ctx}: segment {base} data_len"
        );
        assert_eq!(
            seg.first_arrival_ms.zip(seg.last_arrival_ms),
            arrivals,
            "{ctx}: segment {base} (first, last) arrival"
        );
        assert_eq!(
            seg.sealed,
            i + 1 < m.segments.len(),
            "{ctx}: segment {base} sealed"
        );
    }
}

/// Segment files on disk: one `.seg` per retained segment, one `.idx` per sealed one.
async fn check_files<S: crate::Storage>(storage: &S, dir: &Path, m: &Model, ctx: &str) {
    let got: BTreeSet<String> = file_names(storage, dir).await.into_iter().collect();
    let mut want = BTreeSet::new();
    for (i, base) in m.segments.iter().enumerate() {
        want.insert(format!("{base:020}.seg"));
        if i + 1 < m.segments.len() {
            want.insert(format!("{base:020}.idx"));
        }
    }
    assert_eq!(got, want, "{ctx}: files in the shard directory");
}

/// Runs `ops` random operations of seed `seed` on a log in `dir` on a machine
/// booted with the seed, then flushes, restarts and reads everything back.
/// Panics at the first difference from the model, with the seed, the operation
/// and the last operations before it.
pub async fn run<M: Machine>(dir: &Path, seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let config = config_for(&mut rng);
    // Some seeds append many small batches: more batch boundaries per block.
    let tiny_batches = rng.chance(40);
    // Encryption draws from its own generator: a seed's operations are the
    // same whether it encrypts or not.
    let mut crypt_rng = Rng::new(seed ^ 0xC1F3_E2D7);
    let encrypts = crypt_rng.chance(40);
    let keys = TestKeys::new();
    let mut machine = M::boot(seed);
    wipe(&machine.storage(), dir).await;
    let mut log = ShardLog::open(machine.storage(), dir, config.clone())
        .await
        .unwrap();
    let mut m = Model::new(config.clone());
    let mut clock = Clock {
        now_ms: CLOCK_START_MS,
    };
    let mut history: Vec<String> = Vec::new();
    for op in 0..ops {
        let ctx = format!("seed {seed} op {op} ({config:?})");
        let roll = rng.range(0, 99);
        match roll {
            // Append a batch, rolling first when the log says so.
            0..=39 => {
                let big_max = if rng.chance(30) { 200 << 10 } else { 20_000 };
                let recs = if tiny_batches {
                    gen_records(&mut rng, 3, 300, 1, 20_000)
                } else {
                    gen_records(&mut rng, 50, 3000, 4, big_max)
                };
                let batch = encode(&recs);
                let key_ref = match encrypts && crypt_rng.chance(50) {
                    true => crypt_rng.range(1, 2) as u32,
                    false => 0,
                };
                let key = (key_ref != 0).then(|| (key_ref, keys.get(key_ref)));
                let batch_len = batch.len() + key.map_or(0, |_| ENCRYPTION_OVERHEAD);
                let now = clock.tick(&mut rng);
                let want_roll = m.needs_roll(batch_len, now);
                assert_eq!(
                    log.needs_roll(batch_len, now),
                    want_roll,
                    "{ctx}: needs_roll"
                );
                if want_roll {
                    log.roll()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: roll: {e}"));
                    m.roll();
                }
                // `append_owned` keeps the batch in the recent cache (when the
                // config has one), so reads below are also served from memory.
                let got = log
                    .append_owned_under(batch, now, key)
                    .unwrap_or_else(|e| panic!("{ctx}: append: {e}"));
                let want = m.append(recs, batch_len, now);
                assert_eq!(got, want, "{ctx}: append");
                history.push(format!(
                    "append {} records ({} bytes, key {key_ref}) roll={want_roll}",
                    want.record_count, batch_len
                ));
            }
            // Perform some of the pending write jobs, without syncing (the engine's
            // pipeline between a write and its sync).
            40..=43 => {
                let jobs = rng.range(1, 3);
                // Reserving ahead, as the engine's pump does before its writes.
                log.reserve_ahead()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: reserve: {e}"));
                for _ in 0..jobs {
                    let Some(w) = log.take_write() else { break };
                    let end = w.job.end;
                    w.file
                        .write_at(w.job.buf, w.job.pos)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: write: {e}"));
                    let written = log.write_done(end);
                    assert_eq!(
                        written,
                        m.write_done(end),
                        "{ctx}: written offset after a write ending at {end}"
                    );
                }
                history.push(format!("write {jobs} jobs"));
            }
            44..=49 => {
                let durable = log
                    .flush()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
                m.flush();
                assert_eq!(durable, m.durable, "{ctx}: flush result");
                history.push("flush".into());
            }
            // An explicit roll of a non-empty active segment.
            50..=52 => {
                let (base, end) = m.segment(m.segments.len() - 1);
                if end > base {
                    log.roll()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: roll: {e}"));
                    m.roll();
                    history.push("roll".into());
                }
            }
            53..=72 => {
                let from = match rng.range(0, 9) {
                    0..=2 => m.trim + rng.range(0, 3),
                    3..=4 => m.visible().saturating_sub(rng.range(0, 3)),
                    5 => rng.range(0, m.trim + 1),
                    _ => rng.range(m.trim.saturating_sub(2), m.next() + 2),
                };
                let count_max = match rng.range(0, 3) {
                    0 => rng.range(0, 3) as u32,
                    1 => rng.range(1, 60) as u32,
                    _ => 10_000,
                };
                let bytes_max = match rng.range(0, 3) {
                    0 => rng.range(0, 300),
                    1 => rng.range(1, 100_000),
                    _ => 10 << 20,
                };
                let read_size = if rng.chance(50) {
                    config.read_size
                } else {
                    *rng.pick(&[4096usize, 8192, 65536])
                };
                let what = format!(
                    "read(from {from}, count_max {count_max}, bytes_max {bytes_max}, read_size {read_size})"
                );
                let out = log::read_with(
                    log.view(),
                    from,
                    count_max,
                    bytes_max,
                    read_size,
                    Some(&keys),
                )
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {what}: {e}\nhistory: {:?}", last(&history)));
                let (range, next, bytes) = m.read(from, count_max, bytes_max);
                let got = served(&out);
                assert_same(&got, &m.expect_served(range), &format!("{ctx}: {what}"));
                assert_eq!(
                    (out.next_offset, out.byte_count, out.visible_offset),
                    (next, bytes, m.visible()),
                    "{ctx}: {what}: (next_offset, byte_count, visible_offset)"
                );
                // A following reader (a delivery task) holds what it has
                // not read yet: reads still see exactly the model's records.
                if rng.chance(30) {
                    let clock_ms = clock.now_ms;
                    log.view().borrow_mut().recent.follow(
                        rng.range(0, 6),
                        out.next_offset,
                        clock_ms,
                    );
                }
                history.push(what);
            }
            73..=80 => {
                let time_ms = match rng.range(0, 5) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => m.last_arrival_ms.saturating_add(rng.range(0, 2) as i64),
                    _ if m.next() > m.trim => {
                        let o = rng.range(m.trim, m.next() - 1);
                        m.arrival(o) + rng.range(0, 2) as i64 - 1
                    }
                    _ => clock.now_ms,
                };
                let what = format!(
                    "offset_at_time({time_ms}) with visible {} next {}",
                    m.visible(),
                    m.next()
                );
                let got = log::offset_at_time(log.view(), time_ms)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{ctx}: {what}: {e}\nhistory: {:?}", last(&history))
                    });
                assert_eq!(got, m.offset_at_time(time_ms), "{ctx}: {what}");
                history.push(what);
            }
            81..=84 => {
                let read_size = *rng.pick(&[config.read_size, 4096, 8192]);
                let got = read_all(log.view(), 0, read_size)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: read_all(read_size {read_size}): {e}"));
                assert_same(
                    &got,
                    &m.expect_served(m.trim..m.visible()),
                    &format!("{ctx}: read_all from 0"),
                );
                history.push(format!("read_all(read_size {read_size})"));
            }
            // Reopen on the same disk, after a flush or losing what was not flushed.
            85..=87 => {
                let flushed = rng.chance(70);
                if flushed {
                    log.flush()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
                    m.flush();
                } else {
                    m.lose_pending();
                }
                log = reopen(&mut machine, Some(log), dir, &config, false)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                m.reopened();
                history.push(format!("reopen flushed={flushed}"));
            }
            // Restart the machine (only durable bytes survive), then reopen.
            88..=89 => {
                log.flush()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
                m.flush();
                log = reopen(&mut machine, Some(log), dir, &config, true)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: open after restart: {e}"));
                m.reopened();
                history.push("restart".into());
            }
            90..=91 => {
                let now = clock.now_ms.max(m.last_arrival_ms);
                let cutoff = if m.next() > m.trim && rng.chance(85) {
                    // Mostly expire the older part of what is retained.
                    let o = rng.range(m.trim, m.trim + (m.next() - 1 - m.trim) / 3);
                    m.arrival(o) + rng.range(0, 1) as i64
                } else {
                    now - rng.range(0, 100) as i64
                };
                let retention_ms = now - cutoff;
                let want = m.retention(now, retention_ms);
                let got = log
                    .apply_retention(now, retention_ms)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{ctx}: apply_retention({now}, {retention_ms}): {e}")
                    });
                assert_eq!(
                    got, want,
                    "{ctx}: segments deleted by retention (cutoff {cutoff})"
                );
                check_files(&machine.storage(), dir, &m, &ctx).await;
                history.push(format!("retention cutoff {cutoff} deleted {got}"));
            }
            _ => {
                clock.now_ms += rng.range(1_000, 20_000) as i64;
            }
        }
        check_view(
            &log,
            &m,
            &format!("{ctx}\nlast operations: {:?}", last(&history)),
        );
    }
    // Finish: everything flushed reads back, on this log and after a restart.
    log.flush().await.unwrap();
    m.flush();
    check_files(&machine.storage(), dir, &m, &format!("seed {seed} end")).await;
    let log = reopen(&mut machine, Some(log), dir, &config, true)
        .await
        .unwrap();
    m.reopened();
    check_view(&log, &m, &format!("seed {seed} final reopen"));
    let got = read_all(log.view(), 0, config.read_size).await.unwrap();
    assert_same(
        &got,
        &m.expect_served(m.trim..m.visible()),
        &format!("seed {seed}: final read_all"),
    );
}

fn last(history: &[String]) -> &[String] {
    &history[history.len().saturating_sub(8)..]
}
