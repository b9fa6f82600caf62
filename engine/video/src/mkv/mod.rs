//! Streaming Matroska (EBML) splitter for PutMedia: cuts a long-lived chunked
//! MKV upload into its header and its clusters (one cluster = one KVS
//! fragment) without ever holding the whole upload.
//!
//! This file owns the public API (limits, events, errors). The work is in:
//! - `ebml`: element IDs, variable-length integers, typed reads of bodies;
//! - `split`: the `Splitter` state machine (one byte in, at most one copy);
//! - `header`: the EBML header, Info and Tracks, kept until the first Cluster;
//! - `cluster`: one cluster being collected, its blocks and its facts;
//! - `blocks`: a stored cluster's frames (HLS, DASH, clips, images);
//! - `retime`: a stored cluster with another Timecode (GetMedia).
//!
//! Pure and synchronous: no runtime, no I/O. A `Splitter` belongs to one
//! upload and lives on the core that serves it; it is never shared.
//!
//! What goes in, what comes out:
//! ```text
//! upload : EBML · Segment(size known or unknown) { SeekHead Void Info Tracks Tags
//!          Cluster* Cues ... }            (level-1 elements in any order)
//! Header : EBML (as received) · 18 53 80 67 01 FF FF FF FF FF FF FF · Info · Tracks
//! Fragment: 1F 43 B6 75 · 01 xx xx xx xx xx xx xx (8-byte size) ·
//!           Timecode, SimpleBlock, BlockGroup children as received
//! ```
//! `Header.bytes` followed by any run of `Fragment.bytes` is a playable MKV.
//!
//! Memory: `Splitter::buffered()` is at most `SplitLimits::buffered_max()`
//! = `max(header_bytes_max, fragment_bytes_max) + BUFFERED_SLACK` (19 bytes:
//! an element head being read, and the 8-byte size field a fragment is
//! re-written with). Skipped elements (Void, SeekHead, Cues, Tags,
//! Attachments, ...) are counted past, never held. This bounds the lengths of
//! the buffers; a `Vec`'s capacity may be up to twice its length while it grows,
//! and a cluster's is first sized by its declared size or the last fragment's
//! (within `fragment_bytes_max`), then shrunk when it ends at under half of it.
//!
//! The fuzz target (`engine/video/fuzz`, target `split`) compiles this
//! directory on its own (`#[path]`), so nothing here may name the rest of the
//! crate: only `bytes`, `thiserror`, `tracing` and std.

mod blocks;
mod cluster;
mod ebml;
mod header;
mod retime;
mod split;

#[cfg(test)]
mod tests;

pub use blocks::{Block, blocks};
pub use retime::with_timecode;
pub use split::Splitter;

/// How much an upload may make the splitter hold, and how many tracks it may
/// declare. One home for these numbers; `AWS` is what Kinesis Video Streams
/// documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLimits {
    /// Largest cluster, counted as received (ID, size field and all
    /// children, dropped ones included). AWS: "50 MB" (ErrorId 4001); read
    /// as MiB, the more permissive reading.
    pub fragment_bytes_max: usize,
    /// Largest header kept: EBML header + Segment head (12 bytes) + Info +
    /// Tracks. AWS documents no number; 1 MiB holds any real header (ffmpeg's
    /// and GStreamer's are under 1 KB; CodecPrivate is the only large part).
    pub header_bytes_max: usize,
    /// Most TrackEntry elements in Tracks. AWS: 3 (ErrorId 4012).
    pub tracks_max: usize,
}

/// Bytes `buffered()` may exceed the larger limit by: an element head being
/// read (4-byte ID + 8-byte size) plus the growth of a cluster's head when
/// it is re-written with an 8-byte size (from at least 5 bytes to 12).
pub const BUFFERED_SLACK: usize = ebml::HEAD_LEN_MAX + (FRAGMENT_HEAD_LEN - CLUSTER_HEAD_LEN_MIN);

/// A fragment's head: the Cluster ID and an 8-byte size field.
const FRAGMENT_HEAD_LEN: usize = 12;
/// The shortest Cluster head in an upload: its 4-byte ID and a 1-byte size.
const CLUSTER_HEAD_LEN_MIN: usize = 5;

impl SplitLimits {
    /// Kinesis Video Streams' documented limits (PutMedia ErrorIds 4001, 4012).
    pub const AWS: SplitLimits = SplitLimits {
        fragment_bytes_max: 50 * 1024 * 1024,
        header_bytes_max: 1024 * 1024,
        tracks_max: 3,
    };

    /// The most `Splitter::buffered()` can ever return under these limits.
    pub const fn buffered_max(&self) -> usize {
        let larger = if self.header_bytes_max > self.fragment_bytes_max {
            self.header_bytes_max
        } else {
            self.fragment_bytes_max
        };
        larger.saturating_add(BUFFERED_SLACK)
    }
}

// A fragment's size must fit the 8-byte size field it is re-written with
// (2^56 - 2 is the largest known size), and the header must have room for
// the 12-byte Segment head it always carries.
const _: () = assert!((SplitLimits::AWS.fragment_bytes_max as u64) < ebml::SIZE_UNKNOWN_8);
const _: () = assert!(SplitLimits::AWS.header_bytes_max > ebml::SEGMENT_HEAD_UNKNOWN.len());
const _: () = assert!(SplitLimits::AWS.tracks_max >= 1);
const _: () = assert!(BUFFERED_SLACK == 19);

/// What a run of upload bytes completed, in upload order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Once, before the first fragment: everything needed to make the
    /// fragments playable again.
    Header(Header),
    /// A cluster's Timecode was read (KVS's BUFFERING ack is sent here).
    /// Timecode in TimecodeScale ticks.
    FragmentStarted { timecode: u64 },
    /// A whole cluster.
    Fragment(Fragment),
}

/// The part of an upload before its first cluster, made self-contained.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// A playable MKV prefix: the EBML header element as received, a Segment
    /// element ID with the *unknown* size (`01 FF FF FF FF FF FF FF`), Info,
    /// Tracks (both as received). SeekHead, Void, Cues, Tags, Chapters,
    /// Attachments and level-1 CRC-32 are not kept.
    pub bytes: bytes::Bytes,
    /// Info/TimecodeScale: nanoseconds per tick (Matroska's default 1_000_000).
    pub timecode_scale_ns: u64,
    /// The TrackEntry elements, in the order written (1 ..= `tracks_max`).
    pub tracks: Vec<Track>,
}

/// One TrackEntry. Optional fields are `None` when the element is absent
/// (Matroska's defaults then apply: 8000.0 Hz, 1 channel).
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// TrackNumber: what blocks name (non-zero, unique).
    pub number: u64,
    pub uid: u64,
    /// TrackType: 1 video, 2 audio, 17 subtitle, ...
    pub track_type: u64,
    /// CodecID, e.g. `V_MPEG4/ISO/AVC`, `A_AAC` (trailing NULs removed).
    pub codec_id: String,
    /// CodecPrivate (e.g. AVCDecoderConfigurationRecord, AudioSpecificConfig).
    pub codec_private: Option<bytes::Bytes>,
    pub pixel_width: Option<u64>,
    pub pixel_height: Option<u64>,
    pub sampling_frequency: Option<f64>,
    pub channels: Option<u64>,
}

/// One cluster, re-written to stand alone after a `Header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The Cluster element re-written with a known size (8-byte size field),
    /// holding its Timecode, SimpleBlock and BlockGroup children as received
    /// (Void, CRC-32, Position, PrevSize and unknown children dropped).
    pub bytes: bytes::Bytes,
    /// Cluster Timecode (ticks).
    pub timecode: u64,
    /// Smallest cluster timecode + block relative timecode (ticks).
    pub first_frame: i64,
    /// Largest cluster timecode + block relative timecode (ticks).
    pub last_frame: i64,
    /// SimpleBlocks plus BlockGroups. A laced block counts as one frame (as
    /// KVS producers never lace; its lace count is not read).
    pub frame_count: u32,
    /// The cluster's first block is a key frame: a SimpleBlock with flag
    /// 0x80, or a BlockGroup without ReferenceBlock.
    pub key_frame_first: bool,
    /// Track numbers with at least one block here, sorted. Always every
    /// declared track (else `MissingTrackFrames`).
    pub tracks_with_frames: Vec<u64>,
}

/// Why an upload was refused. Offsets are byte offsets in the upload of the
/// element at fault (its ID's first byte). After one, the splitter is dead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Not Matroska, or Matroska we refuse (ErrorId 4006).
    #[error("invalid MKV at byte {offset}: {what}")]
    Invalid { offset: u64, what: String },
    /// A cluster is known (declared size) or seen (bytes received) to exceed
    /// `fragment_bytes_max` (ErrorId 4001).
    #[error("fragment at byte {offset} is larger than the limit: {size} bytes or more")]
    FragmentTooLarge { offset: u64, size: u64 },
    /// EBML header + Info + Tracks exceed `header_bytes_max` (ErrorId 4006).
    #[error("MKV header grows past the limit at byte {offset}: {size} bytes")]
    HeaderTooLarge { offset: u64, size: u64 },
    /// Tracks declares more than `tracks_max` tracks (ErrorId 4012).
    #[error("MKV declares {count} tracks, more than allowed")]
    TooManyTracks { count: usize },
    /// A block names a track Tracks did not declare (ErrorId 4010).
    #[error("block at byte {offset} names track {track}, not declared in Tracks")]
    TrackNumberMismatch { offset: u64, track: u64 },
    /// A complete cluster has no block for a declared track (ErrorId 4011).
    #[error("fragment has no frame for track {track}")]
    MissingTrackFrames { track: u64 },
    /// The upload ended inside the element starting here (ErrorId 4006).
    #[error("upload ended inside the element at byte {offset}")]
    Truncated { offset: u64 },
}

impl SplitError {
    /// The PutMedia acknowledgement ErrorId AWS sends for this error.
    pub fn error_id(&self) -> u16 {
        match self {
            SplitError::Invalid { .. } => 4006,
            SplitError::FragmentTooLarge { .. } => 4001,
            SplitError::HeaderTooLarge { .. } => 4006,
            SplitError::TooManyTracks { .. } => 4012,
            SplitError::TrackNumberMismatch { .. } => 4010,
            SplitError::MissingTrackFrames { .. } => 4011,
            SplitError::Truncated { .. } => 4006,
        }
    }

    pub(crate) fn invalid(offset: u64, what: impl Into<String>) -> SplitError {
        SplitError::Invalid {
            offset,
            what: what.into(),
        }
    }
}
