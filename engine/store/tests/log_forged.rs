//! Forged batches inside record data, through crashes and recovery.
//!
//! A crc proves bytes were not damaged, not that the server made them: a client can
//! put a valid-crc "batch" inside its record data, and recovery (`segment::scan`)
//! tries `batch::verify` at every 8-aligned offset past a torn tail, record data
//! included. These tests append records whose data holds such forgeries at 8-aligned
//! segment offsets: a header-only batch (length 48, nothing for the archive), a
//! batch whose payload is garbage (its record count matching the garbage root), and a
//! well-formed batch with the offsets that would come next. Then the disk crashes
//! and the log reopens. Every acknowledged record must read back byte for byte,
//! nothing forged may be served, and recovery must neither fail nor panic.
//!
//! - `crash_at_every_sync`: the log_crash workload shape, crashing at every sync.
//!   With the window kept, recovery never looks inside written data.
//! - `torn_tail_longer_than_the_window`: one big batch full of header-only and
//!   garbage forgeries is written but not synced, the disk crashes, and the log
//!   reopens with a recovery window (`unsynced_bytes_max`) smaller than that batch
//!   (the setting was lowered across the crash). The scan past the window then
//!   reads the forgeries; a header-only one used to reach `access_unchecked` on an
//!   empty slice. (A well-formed forgery there would be reported as corruption,
//!   like any valid batch past the window, and never served: not planted here.)
//!
//! Replay a failure: `RIFFLE_SEED=<seed> cargo test -p riffle-store --test log_forged`.

mod common;

use common::{Rec, Rng, Served, assert_same, dir, encode, gen_key, read_all, replay_hint, seeds};
use futures_lite::future::block_on;
use riffle_protocol::batch::{self, BATCH_MAGIC, BatchBuilder, BatchHeader, RecordIn, padded};
use riffle_protocol::limits::{BATCH_ALIGNMENT, BATCH_HEADER_SIZE};
use riffle_store::log::{LogConfig, ShardLog};
use riffle_store::sim::SimStorage;
use riffle_store::{Storage, StorageFile};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forgery {
    /// Length 48: the archive would be an empty slice.
    HeaderOnly,
    /// A payload that is an archived `Vec` root pointing out of the batch.
    Garbage,
    /// A batch rkyv built, sealed with the offset that would come next.
    WellFormed,
}

/// A batch header and `payload`, with a right length and crc.
fn forge(base_offset: u64, record_count: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; BATCH_HEADER_SIZE];
    out.extend_from_slice(payload);
    let header = BatchHeader {
        flags: 0,
        length: out.len() as u32,
        crc: 0,
        base_offset,
        record_count,
        key_ref: 0,
        first_arrival_ms: 5,
        last_arrival_ms: 5,
    };
    header.write(&mut out);
    let crc = batch::batch_crc(&out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The bytes of one forgery, zero-padded to a multiple of 8.
fn forgery(kind: Forgery, base_offset: u64) -> Vec<u8> {
    let mut out = match kind {
        Forgery::HeaderOnly => forge(base_offset, 1, &[]),
        Forgery::Garbage => {
            // An archived Vec root: relative offset -4096, 3 records.
            let mut root = (-4096i32).to_le_bytes().to_vec();
            root.extend_from_slice(&3u32.to_le_bytes());
            forge(base_offset, 3, &root)
        }
        Forgery::WellFormed => {
            let mut b = BatchBuilder::new().build(&[RecordIn {
                partition_key: "forged",
                explicit_hash_key: None,
                data: b"not from the server",
                arrival_ms: 0,
            }]);
            b.seal(base_offset, 5);
            b.to_vec()
        }
    };
    out.resize(padded(out.len()), 0);
    out
}

/// Record data of `len` bytes: `shift` filler bytes, then copies of the forgeries
/// of `kinds` in turn, then filler. When the data starts `8 - shift` bytes past a
/// multiple of 8, every copy starts at a multiple of 8.
fn planted(len: usize, shift: usize, kinds: &[Forgery], base_offset: u64) -> Vec<u8> {
    let mut out = vec![0x5a; shift];
    for kind in kinds.iter().cycle() {
        let f = forgery(*kind, base_offset);
        if out.len() + f.len() > len {
            break;
        }
        out.extend_from_slice(&f);
    }
    out.resize(len, 0x5a);
    out
}

/// Records of the given keys and data lengths whose data holds forgeries at
/// 8-aligned batch offsets (hence segment offsets: batches start at multiples of
/// 8), with `base_offset` as the forgeries' offset. rkyv's layout depends on the
/// lengths only, so one encoding with zeros tells where each record's data lands.
fn records_with_forgeries(
    keys: Vec<String>,
    lens: &[usize],
    kinds: &[Forgery],
    base_offset: u64,
) -> Vec<Rec> {
    let blank: Vec<Rec> = keys
        .iter()
        .zip(lens)
        .map(|(key, &len)| Rec {
            key: key.clone(),
            data: vec![0; len],
        })
        .collect();
    let data_at = |recs: &[Rec]| -> Vec<usize> {
        let b = encode(recs);
        let start = b.as_ptr() as usize;
        b.view()
            .records()
            .iter()
            .map(|r| r.data().as_ptr() as usize - start)
            .collect()
    };
    let at = data_at(&blank);
    let recs: Vec<Rec> = blank
        .into_iter()
        .zip(&at)
        .map(|(r, &at)| Rec {
            data: planted(
                r.data.len(),
                (BATCH_ALIGNMENT - at % BATCH_ALIGNMENT) % BATCH_ALIGNMENT,
                kinds,
                base_offset,
            ),
            key: r.key,
        })
        .collect();
    assert_eq!(data_at(&recs), at, "the layout depends on lengths only");
    recs
}

/// The forgeries at 8-aligned offsets of a segment image, by kind: positions off
/// the chain of real batches where a valid-crc header starts.
fn forgeries_in(image: &[u8], from: usize) -> Vec<(usize, Forgery)> {
    let mut real = std::collections::BTreeSet::new();
    let mut p = 0;
    while let Ok(view) = batch::verify(image.get(p..).unwrap_or(&[])) {
        real.insert(p);
        p += view.header.padded_length();
    }
    let mut out = Vec::new();
    let mut q = from.next_multiple_of(BATCH_ALIGNMENT);
    while q + BATCH_HEADER_SIZE <= image.len() {
        let rest = &image[q..];
        if rest[..4] == BATCH_MAGIC
            && !real.contains(&q)
            && let Ok(h) = BatchHeader::parse(rest)
            && h.length as usize <= rest.len()
            && batch::batch_crc(rest) == h.crc
        {
            let kind = if h.length as usize == BATCH_HEADER_SIZE {
                Forgery::HeaderOnly
            } else if batch::verify(rest).is_ok() {
                Forgery::WellFormed
            } else {
                Forgery::Garbage
            };
            out.push((q, kind));
        }
        q += BATCH_ALIGNMENT;
    }
    out
}

async fn segment_image(storage: &SimStorage, base: u64) -> Vec<u8> {
    let file = storage.open(&common::seg_path(base), false).await.unwrap();
    let len = file.len().await.unwrap();
    file.read_at(0, len as usize).await.unwrap().to_vec()
}

/// Records served as the expected ones: offsets from 0, one arrival per batch.
fn served(batches: &[(Vec<Rec>, i64)]) -> Vec<Served> {
    let mut out = Vec::new();
    for (recs, arrival_ms) in batches {
        for r in recs {
            out.push(Served {
                offset: out.len() as u64,
                key: r.key.clone(),
                data: r.data.clone(),
                arrival_ms: *arrival_ms,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------

struct Step {
    recs: Vec<Rec>,
    now_ms: i64,
    flush_after: bool,
}

/// 40 appends of 1 to 4 records, most holding forgeries of every kind.
fn workload(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed ^ 0xf0f0);
    let mut next_offset = 0u64;
    (0..40)
        .map(|i| {
            let n = rng.range(1, 4) as usize;
            let keys = (0..n).map(|_| gen_key(&mut rng)).collect();
            let lens: Vec<usize> = (0..n).map(|_| rng.range(200, 3000) as usize).collect();
            let kinds = [Forgery::HeaderOnly, Forgery::WellFormed, Forgery::Garbage];
            // The forgeries claim the offsets right after this batch.
            next_offset += n as u64;
            let recs = records_with_forgeries(keys, &lens, &kinds, next_offset);
            Step {
                recs,
                now_ms: 1_000 + 3 * i as i64,
                flush_after: rng.chance(35) || i == 39,
            }
        })
        .collect()
}

fn config() -> LogConfig {
    LogConfig {
        segment_size_max: 24 << 10,
        ..common::small_config()
    }
}

#[derive(Default)]
struct Outcome {
    /// Each appended batch: its step and arrival time.
    appended: Vec<(usize, u64, i64)>,
    acked: u64,
    failed: bool,
}

async fn run(storage: &SimStorage, steps: &[Step]) -> Outcome {
    let mut out = Outcome::default();
    let Ok(mut log) = ShardLog::open(storage.clone(), dir(), config()).await else {
        out.failed = true;
        return out;
    };
    for (i, step) in steps.iter().enumerate() {
        let mut batch = encode(&step.recs);
        if log.needs_roll(batch.len(), step.now_ms) {
            match log.flush().await {
                Ok(d) => out.acked = d,
                Err(_) => {
                    out.failed = true;
                    return out;
                }
            }
            if log.roll().await.is_err() {
                out.failed = true;
                return out;
            }
        }
        let a = log.append(&mut batch, step.now_ms).unwrap();
        out.appended.push((i, a.end_offset, a.arrival_ms));
        if step.flush_after {
            match log.flush().await {
                Ok(d) => out.acked = d,
                Err(_) => {
                    out.failed = true;
                    return out;
                }
            }
        }
    }
    out
}

/// Reopens on `storage` and checks: the recovered end is a batch boundary in
/// `[acked, appended]`, and the records up to it are the appended ones, exactly.
async fn check_recovered(
    storage: SimStorage,
    config: LogConfig,
    steps: &[Step],
    run: &Outcome,
    ctx: &str,
) {
    let log = ShardLog::open(storage, dir(), config.clone())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let next = log.next_offset();
    let appended_end = run.appended.last().map_or(0, |a| a.1);
    assert!(
        run.acked <= next && next <= appended_end,
        "{ctx}: recovered next offset {next} outside [acked {}, appended {appended_end}]",
        run.acked
    );
    let kept: Vec<(Vec<Rec>, i64)> = run
        .appended
        .iter()
        .take_while(|a| a.1 <= next)
        .map(|&(step, _, arrival)| (steps[step].recs.clone(), arrival))
        .collect();
    let expected = served(&kept);
    assert_eq!(
        expected.len() as u64,
        next,
        "{ctx}: recovered end is a batch boundary"
    );
    for read_size in [config.read_size, 65536] {
        let got = read_all(log.view(), 0, read_size)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read failed (read_size {read_size}): {e}"));
        assert_same(
            &got,
            &expected,
            &format!("{ctx}: records (read_size {read_size})"),
        );
    }
}

#[test]
fn crash_at_every_sync() {
    for seed in seeds(DEFAULT_SEEDS) {
        eprintln!(
            "crash_at_every_sync seed {seed}: replay with {}",
            replay_hint("log_forged", seed)
        );
        block_on(async {
            let steps = workload(seed);
            let clean = SimStorage::new(seed);
            let full = run(&clean, &steps).await;
            assert!(!full.failed, "seed {seed}: the run without a crash failed");
            // The forgeries really sit at 8-aligned segment offsets, every kind.
            let image = segment_image(&clean, 0).await;
            let found = forgeries_in(&image, 0);
            for kind in [Forgery::HeaderOnly, Forgery::Garbage, Forgery::WellFormed] {
                assert!(
                    found.iter().any(|f| f.1 == kind),
                    "seed {seed}: no {kind:?} forgery at an 8-aligned offset of segment 0"
                );
            }
            check_recovered(
                clean.restart(),
                config(),
                &steps,
                &full,
                &format!("seed {seed}, no crash"),
            )
            .await;
            let sync_count = clean.sync_count();
            for n in 1..=sync_count {
                let storage = SimStorage::new(seed.wrapping_mul(1000).wrapping_add(n));
                storage.crash_at_sync(n);
                let out = run(&storage, &steps).await;
                assert!(out.failed, "seed {seed}, crash at sync {n}: the run fails");
                storage.crash();
                let ctx = format!("seed {seed}, crash at sync {n} of {sync_count}");
                check_recovered(storage.restart(), config(), &steps, &out, &ctx).await;
            }
        });
    }
}

#[test]
fn torn_tail_longer_than_the_window() {
    const WINDOW: u64 = 4096;
    let write_config = LogConfig {
        segment_size_max: 1 << 20,
        ..common::small_config()
    };
    let recover_config = LogConfig {
        unsynced_bytes_max: WINDOW,
        ..write_config.clone()
    };
    // Seeds whose crash tore the big batch and left forgeries past the window.
    let mut exercised = 0;
    let default_seeds: Vec<u64> = (1..=24).collect();
    for seed in seeds(&default_seeds) {
        eprintln!(
            "torn_tail_longer_than_the_window seed {seed}: replay with {}",
            replay_hint("log_forged", seed)
        );
        block_on(async {
            let mut rng = Rng::new(seed);
            let storage = SimStorage::new(seed);
            let mut log = ShardLog::open(storage.clone(), dir(), write_config.clone())
                .await
                .unwrap();
            let mut steps = Vec::new();
            let mut out = Outcome::default();
            // Acknowledged batches, every kind of forgery in their data.
            let all = [Forgery::HeaderOnly, Forgery::WellFormed, Forgery::Garbage];
            for i in 0..3 {
                let keys = vec![gen_key(&mut rng), gen_key(&mut rng)];
                let recs = records_with_forgeries(keys, &[700, 1500], &all, log.next_offset() + 2);
                let a = log.append(&mut encode(&recs), 1_000 + i).unwrap();
                out.appended.push((steps.len(), a.end_offset, a.arrival_ms));
                steps.push(Step {
                    recs,
                    now_ms: 0,
                    flush_after: true,
                });
            }
            out.acked = log.flush().await.unwrap();
            let big_at = log.view().borrow().segments[&0].data_len as usize;
            // One big batch, written but never synced.
            let keys = vec![gen_key(&mut rng), gen_key(&mut rng), gen_key(&mut rng)];
            let kinds = [Forgery::HeaderOnly, Forgery::Garbage];
            let recs = records_with_forgeries(keys, &[9000, 9000, 9000], &kinds, out.acked + 3);
            let a = log.append(&mut encode(&recs), 2_000).unwrap();
            out.appended.push((steps.len(), a.end_offset, a.arrival_ms));
            steps.push(Step {
                recs,
                now_ms: 0,
                flush_after: false,
            });
            while let Some(w) = log.take_write() {
                let end = w.job.end;
                w.file.write_at(w.job.buf, w.job.pos).await.unwrap();
                log.write_done(end);
            }
            drop(log);
            storage.crash();
            let restarted = storage.restart();

            let image = segment_image(&restarted, 0).await;
            let torn = batch::verify(image.get(big_at..).unwrap_or(&[])).is_err();
            let past_window = forgeries_in(&image, big_at + WINDOW as usize + 1);
            if torn && !past_window.is_empty() {
                exercised += 1;
            }
            let ctx = format!(
                "seed {seed}: big batch torn {torn}, {} forgeries past the window",
                past_window.len()
            );
            check_recovered(restarted, recover_config.clone(), &steps, &out, &ctx).await;
        });
    }
    eprintln!("{exercised} seeds tore the big batch and kept forgeries past the window");
    assert!(
        exercised > 0 || std::env::var("RIFFLE_SEED").is_ok(),
        "no seed tore the big batch and kept forgeries past the window"
    );
}
