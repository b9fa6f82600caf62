//! The metadata log's storage-generic workload
//! (`riffle_store::metalog::testkit::replay_matches_state`) on the real glommio
//! direct-I/O storage, for both test subjects: the streams catalog and the
//! `Versions` state machine. Random events go to the log and to an in-memory
//! reference; after every event the log is reopened from its snapshot and log
//! files and must equal the reference. Crash and fault tests stay on the
//! simulated disk (`engine/store/tests/metalog_crash.rs`).
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-engine --test metalog_on_dma`.

use riffle_engine::rt::block_on_local;
use riffle_engine::rt::dma::DmaStorage;
use riffle_store::catalog::CatalogState;
use riffle_store::metalog::testkit::{Subject, Versions, replay_matches_state};
use riffle_store::testkit::{NoRestart, for_each_seed};

/// Every event is a real fdatasync (and every few a snapshot): few seeds.
const SEEDS: &[u64] = &[1, 2];
const STEPS: u64 = 40;

fn run<S: Subject + 'static>() {
    for_each_seed(SEEDS, S::NAME, "riffle-engine", "metalog_on_dma", |seed| {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().to_path_buf();
        block_on_local(move || async move {
            DmaStorage::probe_device(&root).await.unwrap();
            let dir = root.join("meta").join(S::NAME);
            replay_matches_state::<NoRestart<DmaStorage>, S>(&dir, seed, STEPS).await;
        })
        .unwrap();
    });
}

#[test]
fn catalog_replays_to_its_state() {
    run::<CatalogState>();
}

#[test]
fn versions_replays_to_its_state() {
    run::<Versions>();
}
