//! Retention of the shard log on the simulated disk, with injected times. The
//! workloads are [`riffle_store::testkit::retention`]; the engine runs them on
//! real direct-I/O storage too (`engine/tests/store_on_dma.rs`).

mod common;

use common::dir;
use futures_lite::future::block_on;
use riffle_store::sim::SimStorage;
use riffle_store::testkit::retention;

#[test]
fn expired_sealed_segments_are_deleted_whole() {
    block_on(retention::expired_sealed_segments_are_deleted_whole::<
        SimStorage,
    >(dir()));
}

#[test]
fn expired_active_segment_is_rolled_and_deleted() {
    block_on(retention::expired_active_segment_is_rolled_and_deleted::<
        SimStorage,
    >(dir()));
}

#[test]
fn retention_in_steps_across_reopens() {
    block_on(retention::retention_in_steps_across_reopens::<SimStorage>(
        dir(),
    ));
}

#[test]
fn retention_of_an_empty_log() {
    block_on(retention::retention_of_an_empty_log::<SimStorage>(dir()));
}
