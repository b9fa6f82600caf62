//! Model-based test of the shard log on the simulated disk: seeded random
//! operations (appends, flushes, rolls, reads, time seeks, reopens, restarts,
//! retention) against an in-memory model of what the log promises. The workload
//! is [`riffle_store::testkit::model`]; the engine runs it on real direct-I/O
//! storage too (`engine/tests/store_on_dma.rs`).
//!
//! Replay a failure: `RIFFLE_SEED=<seed> cargo test -p riffle-store --test log_model`.

mod common;

use common::{PACKAGE, dir};
use futures_lite::future::block_on;
use riffle_store::sim::SimStorage;
use riffle_store::testkit::{for_each_seed, model};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const OPS_PER_SEED: usize = 500;

#[test]
fn log_matches_model() {
    for_each_seed(DEFAULT_SEEDS, "log_model", PACKAGE, "log_model", |seed| {
        block_on(model::run::<SimStorage>(dir(), seed, OPS_PER_SEED));
    });
}
