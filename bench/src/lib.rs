//! riffle-bench: helpers shared by the criterion benches and the load generator.

use riffle_protocol::batch::{BatchBuilder, RecordIn};
use rkyv::util::AlignedVec;

/// Concurrent join (shared with the engine).
pub use riffle_engine::join_all;

pub mod nexmark;

/// The partition keys and the data of [`make_batch`]'s records.
pub fn batch_inputs(count: usize, size: usize, seed: u64) -> (Vec<String>, Vec<u8>) {
    let keys = (0..count).map(|i| format!("pk-{seed}-{i}")).collect();
    let data = (0..size).map(|i| (i as u64 ^ seed) as u8).collect();
    (keys, data)
}

/// The encoder's input for `keys` and `data` (from [`batch_inputs`]): one record
/// per key, each with `data`.
pub fn records_of<'a>(keys: &'a [String], data: &'a [u8]) -> Vec<RecordIn<'a>> {
    keys.iter()
        .map(|k| RecordIn {
            partition_key: k,
            explicit_hash_key: None,
            data,
            arrival_ms: 0,
        })
        .collect()
}

/// A batch of `count` records of `size` bytes with distinct partition keys.
pub fn make_batch(count: usize, size: usize, seed: u64) -> AlignedVec<16> {
    let (keys, data) = batch_inputs(count, size, seed);
    BatchBuilder::new().encode(&records_of(&keys, &data))
}
