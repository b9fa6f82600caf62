//! Pinned read and time-seek cases of the shard log on the simulated disk. The
//! workloads are [`riffle_store::testkit::reads`]; the engine runs them on real
//! direct-I/O storage too (`engine/tests/store_on_dma.rs`).

mod common;

use common::dir;
use futures_lite::future::block_on;
use riffle_store::sim::SimStorage;
use riffle_store::testkit::reads;

#[test]
fn batch_header_across_the_end_of_a_read() {
    block_on(reads::batch_header_across_the_end_of_a_read::<SimStorage>(
        dir(),
    ));
}

#[test]
fn time_seek_with_written_unsynced_records() {
    block_on(reads::time_seek_with_written_unsynced_records::<SimStorage>(dir()));
}

#[test]
fn time_seek_with_unwritten_records() {
    block_on(reads::time_seek_with_unwritten_records::<SimStorage>(dir()));
}

#[test]
fn time_seek_with_unwritten_records_in_a_new_segment() {
    block_on(reads::time_seek_with_unwritten_records_in_a_new_segment::<
        SimStorage,
    >(dir()));
}
