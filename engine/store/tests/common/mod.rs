//! Helpers shared by the store's integration tests on the simulated disk: the
//! shard directory they use and the replay command of their seeds. Everything
//! else (seeds, the PRNG, batch building, reading records back) comes from
//! [`riffle_store::testkit`], shared with the engine's runs on real storage.
//!
//! Every randomized test takes its seeds from [`seeds`], prints the replay command
//! with [`replay_hint`] and puts the seed in every assertion message.
#![allow(dead_code, unused_imports)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

pub use riffle_store::testkit::{
    Expected, Rec, Rng, Served, assert_records, assert_same, encode, gen_key, gen_records,
    read_all, seeds, served, short, small_config,
};

/// The package of these tests, for replay commands.
pub const PACKAGE: &str = "riffle-store";

/// The shard directory every test uses.
pub fn dir() -> &'static Path {
    Path::new("/data/stream-a/shard-0")
}

pub fn seg_path(base: u64) -> PathBuf {
    dir().join(format!("{base:020}.seg"))
}

pub fn idx_path(base: u64) -> PathBuf {
    dir().join(format!("{base:020}.idx"))
}

/// The command that replays one seed of a test binary.
pub fn replay_hint(test: &str, seed: u64) -> String {
    riffle_store::testkit::replay_hint(PACKAGE, test, seed)
}
