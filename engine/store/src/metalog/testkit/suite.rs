//! The metadata log's crash, fault and corruption suite on the simulated disk,
//! generic over the state machine: every service with a [`Subject`] runs it.
//!
//! Run all of it with [`metalog_suite!`](crate::metalog_suite), one `#[test]` per
//! check and subject:
//!
//! ```ignore
//! riffle_store::metalog_suite!(firehose: crate::state::FirehoseState);
//! ```
//!
//! expands to `mod <check> { #[test] fn firehose() { ... } }` for every check
//! below (tests named `<check>::firehose`). The checks, each a `pub fn` here:
//!
//! - [`replay_equals_state_after_random_events`]
//! - [`crash_at_every_sync_keeps_every_acknowledged_event`]
//! - [`bad_last_frame_is_a_torn_tail_and_appends_continue`]
//! - [`corrupt_frame_before_valid_frames_is_an_error_naming_the_offset`]
//! - [`corrupt_snapshot_is_an_error`]
//! - [`crash_between_snapshot_and_log_reset_replays_once`]
//! - [`oversized_event_is_refused_before_anything_is_written`]
//! - [`injected_io_failure_poisons_and_leaves_state_unchanged`]
//!
//! An event is acknowledged when `MetaLog::apply` returned `Ok`. After a crash the
//! recovered state must equal the in-memory reference with every acknowledged
//! event, plus at most the one in flight, and the log must take new events.
//!
//! Randomized checks take their seeds from [`seeds`] (`RIFFLE_SEED` replays one)
//! and print the command that replays each seed, worked out from the [`Origin`].

use std::path::{Path, PathBuf};

use futures_lite::future::block_on;
use riffle_protocol::ErrorCode;

use super::{Memory, Subject, replay_matches_state, workload};
use crate::metalog::{MetaLog, MetaLogError};
use crate::sim::{SimOp, SimStorage};
use crate::testkit::{Rng, for_each_seed, seeds};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];
const CRASH_SEEDS: &[u64] = &[1, 2, 3];
/// Events per crash run: with `snapshot_every` 1000 they span several blocks.
const CRASH_EVENT_COUNT: u64 = 60;

/// Runs every check of the suite for each subject, one `#[test]` per check and
/// subject, named `<check>::<subject>`: `metalog_suite!(name: Type, ...)`.
///
/// Each check is a module named after it, so invoke this once per scope. Types
/// resolve as in the scope of the invocation.
#[macro_export]
macro_rules! metalog_suite {
    ($($subject:ident : $ty:ty),+ $(,)?) => {
        $crate::metalog_suite!(@checks [$($subject : $ty),+]
            replay_equals_state_after_random_events,
            crash_at_every_sync_keeps_every_acknowledged_event,
            bad_last_frame_is_a_torn_tail_and_appends_continue,
            corrupt_frame_before_valid_frames_is_an_error_naming_the_offset,
            corrupt_snapshot_is_an_error,
            crash_between_snapshot_and_log_reset_replays_once,
            oversized_event_is_refused_before_anything_is_written,
            injected_io_failure_poisons_and_leaves_state_unchanged,
        );
    };
    (@checks $subjects:tt $($check:ident),+ $(,)?) => {
        $($crate::metalog_suite!(@check $check $subjects);)+
    };
    (@check $check:ident [$($subject:ident : $ty:ty),+]) => {
        mod $check {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $subject() {
                    $crate::metalog::testkit::suite::$check::<$ty>(
                        $crate::metalog::testkit::suite::Origin {
                            package: env!("CARGO_PKG_NAME"),
                            module: module_path!(),
                        },
                    )
                }
            )+
        }
    };
}

/// Where a check runs, for the command that replays one of its seeds: the
/// package (`env!("CARGO_PKG_NAME")`) and the test's `module_path!()`.
///
/// A module under the package's library (`riffle_firehose::state_tests::...`)
/// is a unit test, replayed with `cargo test -p <package> --lib <module>`; any
/// other root is an integration test (`tests/<root>.rs`), replayed with
/// `cargo test -p <package> --test <root>`.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub package: &'static str,
    pub module: &'static str,
}

impl Origin {
    /// Runs `run` for every seed of [`seeds`]`(defaults)`, printing first how to
    /// replay it (through [`for_each_seed`] for an integration test).
    fn for_each_seed(self, defaults: &[u64], what: &str, mut run: impl FnMut(u64)) {
        let (root, rest) = self.module.split_once("::").unwrap_or((self.module, ""));
        if root != self.package.replace('-', "_") {
            return for_each_seed(defaults, what, self.package, root, run);
        }
        for seed in seeds(defaults) {
            eprintln!(
                "{what} seed {seed}: replay with RIFFLE_SEED={seed} cargo test -p {} --lib {rest}",
                self.package
            );
            run(seed);
        }
    }
}

/// The directory of every check's log.
pub fn dir() -> &'static Path {
    Path::new("/data/meta/subject")
}

/// The log file of `S` in [`dir`].
pub fn log_path<S: Subject>() -> PathBuf {
    dir().join(format!("{}.log", S::NAME))
}

pub async fn try_open<S: Subject>(
    storage: &SimStorage,
    snapshot_every: u32,
) -> Result<MetaLog<S, SimStorage>, MetaLogError> {
    MetaLog::open(storage.clone(), dir(), S::NAME, snapshot_every).await
}

pub async fn open<S: Subject>(storage: &SimStorage, snapshot_every: u32) -> MetaLog<S, SimStorage> {
    try_open(storage, snapshot_every)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

/// `count` random events that all apply, one after the other, from the start.
pub fn accepted<S: Subject>(seed: u64, count: usize) -> Vec<S::Event> {
    let mut rng = Rng::new(seed);
    let mut memory = Memory::<S>::default();
    let mut events = Vec::new();
    let mut step = 0;
    while events.len() < count {
        let event = S::random_event(&memory.state, &mut rng, step);
        step += 1;
        if memory.apply(event.clone()).is_ok() {
            events.push(event);
        }
    }
    events
}

/// The reference after `events`, which must all apply.
pub fn memory_after<S: Subject>(events: &[S::Event]) -> Memory<S> {
    let mut memory = Memory::<S>::default();
    for e in events {
        memory.apply(e.clone()).expect("accepted events apply");
    }
    memory
}

/// The log's state and `last_seq` are the reference's.
pub fn assert_same<S: Subject>(log: &MetaLog<S, SimStorage>, memory: &Memory<S>, context: &str) {
    assert_eq!(log.state(), &memory.state, "{context}");
    assert_eq!(log.last_seq(), memory.last_seq, "{context}");
}

/// [`replay_matches_state`] on the simulated disk, restarted after every event.
pub fn replay_equals_state_after_random_events<S: Subject>(origin: Origin) {
    origin.for_each_seed(DEFAULT_SEEDS, S::NAME, |seed| {
        block_on(replay_matches_state::<SimStorage, S>(dir(), seed, 80));
    });
}

/// Applies `events`; returns the reference of the acknowledged ones and the first
/// that failed with an I/O error (the one in flight at the crash). An I/O error
/// is told from a refusal by the log being poisoned, not by its code: a state
/// machine may refuse with `Internal` too.
async fn run<S: Subject>(
    storage: &SimStorage,
    events: &[S::Event],
    snapshot_every: u32,
) -> (Memory<S>, Option<S::Event>) {
    let mut acked = Memory::<S>::default();
    let mut in_flight = None;
    let Ok(mut log) = try_open::<S>(storage, snapshot_every).await else {
        return (acked, None);
    };
    for event in events {
        match log.apply(event.clone()).await {
            Ok(()) => acked.apply(event.clone()).expect("acked events apply"),
            Err(e) if log.poisoned().is_some() => {
                assert_eq!(e.code, ErrorCode::Internal, "{event:?}: {e:?}");
                in_flight.get_or_insert_with(|| event.clone());
            }
            Err(e) => assert_eq!(
                Some(e.code),
                acked.state.check(event).err().map(|e| e.code),
                "{event:?}"
            ),
        }
    }
    (acked, in_flight)
}

/// A random workload crashed at each of its syncs in turn, with and without
/// snapshots: the recovered state holds every acknowledged event (and at most
/// the one in flight), and appends continue and survive a reopen.
pub fn crash_at_every_sync_keeps_every_acknowledged_event<S: Subject>(origin: Origin) {
    for snapshot_every in [4, 1000] {
        origin.for_each_seed(CRASH_SEEDS, S::NAME, |seed| {
            let events = workload::<S>(seed, CRASH_EVENT_COUNT);
            let total_syncs = block_on(async {
                let storage = SimStorage::new(seed);
                let (acked, in_flight) = run::<S>(&storage, &events, snapshot_every).await;
                assert!(in_flight.is_none(), "seed {seed}");
                // Most events apply; the rest are refused by `check`.
                assert!(acked.last_seq >= CRASH_EVENT_COUNT / 3, "seed {seed}");
                if snapshot_every == 1000 {
                    let log = open::<S>(&storage, snapshot_every).await;
                    assert!(log.log_end() > 4096, "seed {seed}: the log spans blocks");
                }
                storage.sync_count()
            });
            for n in 1..=total_syncs {
                block_on(async {
                    let context =
                        format!("seed {seed} snapshot_every {snapshot_every} crash at sync {n}");
                    let storage = SimStorage::new(seed);
                    storage.crash_at_sync(n);
                    let (acked, in_flight) = run::<S>(&storage, &events, snapshot_every).await;
                    assert!(storage.is_crashed(), "{context}");

                    let storage = storage.restart();
                    let mut log = try_open::<S>(&storage, snapshot_every)
                        .await
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    let mut with_in_flight = acked.clone();
                    if let Some(event) = &in_flight {
                        let _ = with_in_flight.apply(event.clone());
                    }
                    let same =
                        |m: &Memory<S>| log.state() == &m.state && log.last_seq() == m.last_seq;
                    assert!(
                        same(&acked) || same(&with_in_flight),
                        "{context}: recovered {:?} at seq {}\nacked {acked:?}\nin flight {in_flight:?}",
                        log.state(),
                        log.last_seq()
                    );

                    // Appends continue after the recovered end, and survive a reopen.
                    log.apply(S::fresh_event())
                        .await
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    let (state, seq) = (log.state().clone(), log.last_seq());
                    drop(log);
                    let log = open::<S>(&storage.restart(), snapshot_every).await;
                    assert_eq!((log.state(), log.last_seq()), (&state, seq), "{context}");
                });
            }
        });
    }
}

/// A log of six frames with snapshots off; returns the storage, the events and
/// each frame's offset.
async fn six_frame_log<S: Subject>() -> (SimStorage, Vec<S::Event>, Vec<u64>) {
    let storage = SimStorage::new(9);
    let events = accepted::<S>(9, 6);
    let mut log = open::<S>(&storage, 1000).await;
    let mut offsets = Vec::new();
    for event in &events {
        offsets.push(log.log_end());
        log.apply(event.clone()).await.unwrap();
    }
    (storage, events, offsets)
}

/// A bad last frame is a torn write: the log opens before it, and the next
/// event goes where it was.
pub fn bad_last_frame_is_a_torn_tail_and_appends_continue<S: Subject>(_origin: Origin) {
    block_on(async {
        let (storage, events, offsets) = six_frame_log::<S>().await;
        storage.corrupt(&log_path::<S>(), offsets[5] as usize + 12);
        let storage = storage.restart();
        let mut log = open::<S>(&storage, 1000).await;
        assert_same(&log, &memory_after(&events[..5]), "after a torn tail");
        assert_eq!(log.log_end(), offsets[5]);
        log.apply(events[5].clone()).await.unwrap();
        let expected = memory_after(&events);
        assert_same(&log, &expected, "appended again");
        drop(log);
        assert_same(&open::<S>(&storage, 1000).await, &expected, "reopened");
    });
}

/// A bad frame (length, crc or payload) followed by good ones is corruption,
/// reported with the log's path and the frame's offset.
pub fn corrupt_frame_before_valid_frames_is_an_error_naming_the_offset<S: Subject>(
    _origin: Origin,
) {
    let log_path = log_path::<S>();
    for frame in [0, 2, 4] {
        // Length, crc, payload.
        for byte in [0, 3, 5, 20] {
            block_on(async {
                let context = format!("frame {frame} byte {byte}");
                let (storage, _, offsets) = six_frame_log::<S>().await;
                storage.corrupt(&log_path, offsets[frame] as usize + byte);
                let err = try_open::<S>(&storage.restart(), 1000)
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{context}: corruption not detected"));
                match &err {
                    MetaLogError::Corrupt { path, offset, .. } => assert_eq!(
                        (path.as_path(), *offset),
                        (log_path.as_path(), offsets[frame]),
                        "{context}"
                    ),
                    other => panic!("{context}: {other}"),
                }
                let message = err.to_string();
                assert!(
                    message.contains(&log_path.display().to_string())
                        && message.contains(&format!("byte {}", offsets[frame])),
                    "{context}: {message}"
                );
            });
        }
    }
}

/// A damaged snapshot is corruption naming the snapshot.
pub fn corrupt_snapshot_is_an_error<S: Subject>(_origin: Origin) {
    block_on(async {
        let storage = SimStorage::new(2);
        let mut log = open::<S>(&storage, 1).await;
        log.apply(accepted::<S>(2, 1).remove(0)).await.unwrap();
        let snapshot_path = log.snapshot_path().to_path_buf();
        drop(log);
        storage.corrupt(&snapshot_path, 8 + 2);
        let err = try_open::<S>(&storage, 1)
            .await
            .err()
            .expect("corruption detected");
        assert!(
            matches!(&err, MetaLogError::Corrupt { path, .. } if *path == snapshot_path),
            "{err}"
        );
    });
}

/// A crash after the snapshot is durable but before the log is reset: the log
/// still holds the snapshotted events, which replay skips by seq.
pub fn crash_between_snapshot_and_log_reset_replays_once<S: Subject>(_origin: Origin) {
    block_on(async {
        let storage = SimStorage::new(4);
        let events = accepted::<S>(4, 7);
        let mut log = open::<S>(&storage, 3).await;
        for event in &events[..5] {
            log.apply(event.clone()).await.unwrap();
        }
        assert!(log.log_end() > 0, "events 4 and 5 are in the log");
        // Event 6: its frame's sync, the snapshot's sync, then the fresh log's.
        storage.crash_at_sync(storage.sync_count() + 3);
        log.apply(events[5].clone())
            .await
            .expect("the event is durable");
        assert!(log.poisoned().is_some());
        drop(log);

        let storage = storage.restart();
        let mut log = open::<S>(&storage, 3).await;
        assert!(log.log_end() > 0, "the old log is still there");
        assert_same(&log, &memory_after(&events[..6]), "replayed once");
        log.apply(events[6].clone()).await.unwrap();
        let expected = memory_after(&events);
        assert_same(&log, &expected, "appended after");
        drop(log);
        assert_same(&open::<S>(&storage, 3).await, &expected, "reopened");
    });
}

/// [`Subject::oversized_event`] is refused with `LimitExceeded` before any I/O,
/// and uses up nothing.
pub fn oversized_event_is_refused_before_anything_is_written<S: Subject>(_origin: Origin) {
    block_on(async {
        let storage = SimStorage::new(6);
        let mut log = open::<S>(&storage, 2).await;
        let events = accepted::<S>(6, 3);
        log.apply(events[0].clone()).await.unwrap();
        let ops = [SimOp::Write, SimOp::Sync, SimOp::Open];
        let before: Vec<u64> = ops.iter().map(|&op| storage.op_count(op)).collect();
        let end = log.log_end();

        let big = S::oversized_event();
        assert!(log.state().check(&big).is_ok(), "only its size is wrong");
        let err = log.apply(big).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded, "{err:?}");

        let after: Vec<u64> = ops.iter().map(|&op| storage.op_count(op)).collect();
        assert_eq!(after, before, "no I/O at all");
        assert_eq!(log.log_end(), end);
        assert!(log.poisoned().is_none());
        assert_same(&log, &memory_after(&events[..1]), "unchanged");

        // Nothing was used up: the next events get the next seqs.
        log.apply(events[1].clone()).await.unwrap();
        log.apply(events[2].clone()).await.unwrap();
        drop(log);
        assert_same(
            &open::<S>(&storage.restart(), 2).await,
            &memory_after(&events),
            "reopened",
        );
    });
}

/// Every write, sync, open and read of an event and the snapshot after it,
/// failed in turn: the log is poisoned, the state is the one before the event
/// (or after it, if only the snapshot failed), and a restart recovers one of them.
pub fn injected_io_failure_poisons_and_leaves_state_unchanged<S: Subject>(_origin: Origin) {
    let events = accepted::<S>(5, 3);
    // snapshot_every 2: the second event is logged, then snapshotted, so the
    // faults hit the log write, the log sync and every snapshot step.
    let setup = || async {
        let storage = SimStorage::new(5);
        let mut log = open::<S>(&storage, 2).await;
        log.apply(events[0].clone()).await.unwrap();
        (storage, log)
    };
    let ops = [SimOp::Write, SimOp::Sync, SimOp::Open, SimOp::Read];
    let op_counts: Vec<(SimOp, u64)> = block_on(async {
        let (storage, mut log) = setup().await;
        let before: Vec<u64> = ops.iter().map(|&op| storage.op_count(op)).collect();
        log.apply(events[1].clone()).await.unwrap();
        ops.iter()
            .zip(before)
            .map(|(&op, b)| (op, storage.op_count(op) - b))
            .collect()
    });
    assert!(
        op_counts
            .iter()
            .any(|&(op, n)| op == SimOp::Write && n >= 2),
        "{op_counts:?}"
    );
    let one = memory_after::<S>(&events[..1]);
    let two = memory_after::<S>(&events[..2]);
    for (op, count) in op_counts {
        for n in 1..=count {
            block_on(async {
                let context = format!("{op:?} failure #{n}");
                let (storage, mut log) = setup().await;
                storage.fail_nth(op, n);
                let result = log.apply(events[1].clone()).await;
                assert!(log.poisoned().is_some(), "{context}");
                match &result {
                    Ok(()) => assert_same(&log, &two, &context),
                    Err(e) => {
                        assert_eq!(e.code, ErrorCode::Internal, "{context}");
                        assert_same(&log, &one, &context);
                    }
                }
                // The log write and its sync come first and must report failure.
                if n == 1 && matches!(op, SimOp::Write | SimOp::Sync) {
                    assert!(result.is_err(), "{context}");
                }
                let (state, seq) = (log.state().clone(), log.last_seq());
                let err = log.apply(events[2].clone()).await.unwrap_err();
                assert_eq!(err.code, ErrorCode::Internal, "{context}");
                assert_eq!((log.state(), log.last_seq()), (&state, seq), "{context}");

                let reopened = open::<S>(&storage.restart(), 2).await;
                let recovered = (reopened.state(), reopened.last_seq());
                if result.is_ok() {
                    assert_eq!(recovered, (&two.state, two.last_seq), "{context}");
                } else {
                    assert!(
                        recovered == (&one.state, one.last_seq)
                            || recovered == (&two.state, two.last_seq),
                        "{context}: {recovered:?}"
                    );
                }
            });
        }
    }
}
