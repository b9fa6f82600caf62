//! The store's storage-independent workloads (`riffle_store::testkit`) on the real
//! glommio direct-I/O storage: the same test bodies as the store's tests on the
//! simulated disk, here on O_DIRECT files in a temp dir on the target's file
//! system (ext4; tmpfs has no O_DIRECT).
//!
//! Real storage cannot be power-cycled in-process, so the workloads' restarts are
//! reopens here (drop the log, open it again on the same directory). Crash and
//! fault tests stay on the simulated disk (`engine/store/tests/log_crash.rs`,
//! `log_faults.rs`).
//!
//! Replay a model seed: `RIFFLE_SEED=<seed> cargo test -p riffle-engine --test store_on_dma`.

use std::future::Future;
use std::path::PathBuf;

use riffle_engine::rt::block_on_local;
use riffle_engine::rt::dma::DmaStorage;
use riffle_store::testkit::{NoRestart, for_each_seed, model, reads, retention, smoke};

/// DmaStorage as a workload's machine: restarts are reopens.
type Dma = NoRestart<DmaStorage>;

/// Fewer seeds than on the simulated disk: every flush here is a real fdatasync
/// (about 0.8 s a seed in a debug build).
const MODEL_SEEDS: &[u64] = &[1, 2, 3, 4];
const MODEL_OPS_PER_SEED: usize = 500;

/// Runs `workload` on a fresh executor with the shard directory in a new temp dir,
/// after settling the device probe (`DmaStorage::probe_device`).
fn on_dma<G, F>(workload: G)
where
    G: FnOnce(PathBuf) -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = tmp.path().to_path_buf();
    block_on_local(move || async move {
        DmaStorage::probe_device(&root).await.unwrap();
        workload(root.join("stream-a").join("shard-0")).await;
    })
    .unwrap();
}

#[test]
fn log_matches_model() {
    for_each_seed(
        MODEL_SEEDS,
        "store_on_dma model",
        "riffle-engine",
        "store_on_dma",
        |seed| {
            on_dma(move |dir| async move {
                model::run::<Dma>(&dir, seed, MODEL_OPS_PER_SEED).await;
            })
        },
    );
}

#[test]
fn append_read_roll_reopen() {
    on_dma(|dir| async move { smoke::append_read_roll_reopen::<Dma>(&dir).await });
}

#[test]
fn reservation_grows_in_steps() {
    on_dma(|dir| async move { smoke::reservation_grows_in_steps::<Dma>(&dir).await });
}

#[test]
fn retention() {
    on_dma(|dir| async move {
        retention::expired_sealed_segments_are_deleted_whole::<Dma>(&dir).await;
        retention::expired_active_segment_is_rolled_and_deleted::<Dma>(&dir).await;
        retention::retention_in_steps_across_reopens::<Dma>(&dir).await;
        retention::retention_of_an_empty_log::<Dma>(&dir).await;
    });
}

#[test]
fn pinned_reads_and_time_seeks() {
    on_dma(|dir| async move {
        reads::batch_header_across_the_end_of_a_read::<Dma>(&dir).await;
        reads::time_seek_with_written_unsynced_records::<Dma>(&dir).await;
        reads::time_seek_with_unwritten_records::<Dma>(&dir).await;
        reads::time_seek_with_unwritten_records_in_a_new_segment::<Dma>(&dir).await;
    });
}

/// A failed assertion inside a workload fails its test, with its message: the
/// executor thread's panic is not lost on the way back.
#[test]
#[should_panic(expected = "workload assertion 42")]
fn a_failing_workload_fails_its_test() {
    on_dma(|dir| async move {
        assert!(dir.ends_with("shard-0"), "{}", dir.display());
        assert_eq!(1, 2, "workload assertion {}", 42);
    });
}
