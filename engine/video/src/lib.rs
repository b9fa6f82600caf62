//! riffle-video: Kinesis Video Streams (docs/video.md says what is served).
//!
//! Pure parts (no runtime, unit-tested):
//! - `state`: the durable video streams (the metadata log's state machine).
//!
//! Runtime parts on `riffle_engine::rt`: `service` (the gateway's `Service`
//! and startup), `streams` and `tags` (the control plane's operations).

pub mod service;
pub mod state;
#[cfg(test)]
mod state_tests;
mod streams;
mod tags;

pub use service::{VideoConfig, VideoService};
