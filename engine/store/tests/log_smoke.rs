//! Smoke test of the shard log on the simulated disk: append, flush, read back,
//! roll, restart. The workload is [`riffle_store::testkit::smoke`]; the engine
//! runs it on real direct-I/O storage too (`engine/tests/store_on_dma.rs`).

use std::path::Path;

use futures_lite::future::block_on;
use riffle_store::sim::SimStorage;
use riffle_store::testkit::smoke;

#[test]
fn append_read_roll_reopen() {
    block_on(smoke::append_read_roll_reopen::<SimStorage>(Path::new(
        "/data/s/0",
    )));
}

#[test]
fn reservation_grows_in_steps() {
    block_on(smoke::reservation_grows_in_steps::<SimStorage>(Path::new(
        "/data/s/1",
    )));
}
