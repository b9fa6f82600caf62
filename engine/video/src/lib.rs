//! riffle-video: Kinesis Video Streams (docs/video.md says what is served).
//!
//! Pure parts (no runtime, unit-tested):
//! - `mkv`: a streaming Matroska (EBML) splitter: an upload's header and its
//!   clusters (fragments), with the facts PutMedia's acks and errors need;
//! - `state`: the durable video streams (the metadata log's state machine);
//! - `record`: how fragments and session headers are stored as records;
//! - `index`: a stream's fragments by number and time, rebuilt from them;
//! - `chunk`: GetMedia's chunks (header, AWS's tags, the cluster);
//! - `playlist`: HLS playlists and DASH manifests of a playback session;
//! - `mp4`: ISO BMFF from stored fragments (fMP4 init and media segments
//!   for HLS/DASH, a whole MP4 for GetClip), without re-encoding.
//!
//! Runtime parts on `riffle_engine::rt`: `service` (the gateway's `Service`
//! and startup), `streams` and `tags` (the control plane's operations),
//! `put_media` (uploads and their acknowledgements), `get_media` (chunks
//! from a start, following live), `archived` (ListFragments,
//! GetMediaForFragmentList), `media` (each stream's index at run time),
//! `read` (stored fragments and headers read back), `images` (GetImages,
//! by the `ffmpeg` program), `playback` (HLS and DASH sessions and what
//! players fetch), `clip` (GetClip), `generator` (the inference hook: images
//! POSTed to an endpoint, its answers written to a data stream).

mod archived;
pub mod chunk;
mod clip;
mod generator;
mod get_media;
mod images;
pub mod index;
mod media;
pub mod metrics;
pub mod mkv;
pub mod mp4;
mod page;
mod places;
mod playback;
pub mod playlist;
mod put_media;
mod read;
pub mod record;
pub mod service;
pub mod state;
#[cfg(test)]
mod state_tests;
mod streams;
mod tags;
mod timeline;

pub use service::{VideoConfig, VideoService};
