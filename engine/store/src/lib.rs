//! riffle-store: everything a shard's data goes through, without a runtime.
//!
//! Owns the segment log (append, group-commit write jobs, recovery, indexes, reads,
//! retention), shard iterator tokens and the stream catalog (routing and sequence
//! numbers live in riffle-protocol). All I/O goes through the [`storage::Storage`]
//! trait; time is always passed in (`now_ms`), never read from a clock. The engine drives these
//! types from its per-core pumps; tests drive them with [`sim::SimStorage`].
#![allow(async_fn_in_trait)]

pub mod appender;
pub mod catalog;
pub mod cipher;
pub mod index;
pub mod iterator;
pub mod log;
pub mod metalog;
pub mod recent;
pub mod reshard;
pub mod segment;
pub mod sim;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use storage::{Storage, StorageFile};
