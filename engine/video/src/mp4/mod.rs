//! ISO BMFF (MP4) from stored Matroska: the same frames, re-boxed without
//! re-encoding, for HLS and DASH (fragmented MP4: one init segment, one
//! media segment per fragment) and GetClip (one non-fragmented MP4).
//!
//! This file owns the public API (errors, limits, timescales). The work is in:
//! - `boxes`: the box writer and the boxes every output shares (ftyp, mvhd,
//!   trak and its headers down to stbl);
//! - `codec`: CodecPrivate checked and turned into a sample entry
//!   (avc1+avcC, hvc1+hvcC, mp4a+esds);
//! - `samples`: one track's blocks as samples (decode times, durations,
//!   composition offsets, sizes, sync flags) in its timescale;
//! - `fragmented`: `init_segment` and `media_segment` (moof + mdat);
//! - `whole`: `whole_mp4` (moov with full sample tables before mdat).
//!
//! Pure and synchronous: bytes in, bytes out, no I/O. Inputs come from
//! `mkv` (`Header.tracks`, `mkv::blocks` of stored fragments); nothing here
//! trusts them: every malformed input is an `Mp4Error`, never a panic.
//!
//! Outputs:
//! ```text
//! init segment : ftyp(iso6; iso6 cmfc mp41) · moov{ mvhd · trak* · mvex{ trex* } }
//! media segment: moof{ mfhd · traf{ tfhd · tfdt · trun }* } · mdat
//! whole MP4    : ftyp(isom; isom iso6 mp41) · moov{ mvhd · trak{ ... stbl with
//!                stts ctts? stss? stsc stsz stco|co64 }* } · mdat
//! trak         : tkhd · edts{elst}? · mdia{ mdhd · hdlr · minf{ vmhd|smhd ·
//!                dinf{dref{url }} · stbl{ stsd{avc1|hvc1|mp4a} · ... } } }
//! ```
//! Track IDs are 1, 2, ... in the order of `tracks` (Matroska numbers may
//! not fit 32 bits, and need not be dense).
//!
//! Times: Matroska block times are presentation times in TimecodeScale
//! ticks. Each track's timescale is `VIDEO_TIMESCALE` (90 kHz) for video
//! and its sampling frequency for audio (so an AAC frame is exactly 1024).
//! Decode times are the track's presentation times sorted (equal to them
//! when frames are not reordered, as with the fixtures' `-bf 0`), and each
//! sample's composition offset is its presentation minus decode time, so
//! B-frame streams come out right too: signed in fragments (trun version
//! 1, as CMAF and ffmpeg's `negative_cts_offsets`), raised to be
//! non-negative with an edit list in a whole MP4 (`whole`).

mod boxes;
mod codec;
mod fragmented;
mod samples;
mod whole;

#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod tests;

pub use fragmented::{init_segment, media_segment, track_starts};
pub use whole::whole_mp4;

use crate::mkv::Track;

/// Video tracks' timescale: 90 kHz, MPEG's clock, exact for every common
/// frame rate (24, 25, 30, 50, 60 and the 1000/1001 ones) and for ms ticks.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// The movie timescale (mvhd, tkhd, elst): milliseconds; only durations
/// and edit offsets are written in it.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// Most samples (frames, all tracks together) in one call. A whole MP4
/// writes at most 44 bytes of sample tables per sample (stts 8, ctts 8,
/// stss 4, stsz 4, stsc 12, co64 8), a fragment 16 (trun), so 2^24 samples
/// keep every box under 4 GiB (its 32-bit size) with room for 16 tracks'
/// headers; it is 77 hours of 60 fps video, far above GetClip's limits.
pub const SAMPLE_COUNT_MAX: usize = 1 << 24;
/// Largest CodecPrivate accepted: the splitter's whole-header limit
/// (`SplitLimits::AWS.header_bytes_max`); real avcC/hvcC/ASC are < 1 KB.
pub const CODEC_PRIVATE_LEN_MAX: usize = 1024 * 1024;
/// Most tracks in one output (Matroska from PutMedia has at most 3).
pub const TRACK_COUNT_MAX: usize = 16;

const _: () = assert!(
    SAMPLE_COUNT_MAX as u64 * 44 + TRACK_COUNT_MAX as u64 * (CODEC_PRIVATE_LEN_MAX as u64 + 4096)
        < u32::MAX as u64
);
const _: () = assert!(CODEC_PRIVATE_LEN_MAX < (1 << 28)); // esds descriptor sizes
const _: () = assert!(VIDEO_TIMESCALE.is_multiple_of(MOVIE_TIMESCALE));

/// Why media could not be re-boxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// A track's CodecID is not H.264, H.265 or AAC (`V_MPEG4/ISO/AVC`,
    /// `V_MPEGH/ISO/HEVC`, `A_AAC`).
    #[error("codec {0:?} cannot be put in MP4 here (H.264, H.265 and AAC can)")]
    UnsupportedCodec(String),
    /// The track (its Matroska number) has no CodecPrivate.
    #[error("track {0} has no CodecPrivate")]
    MissingCodecPrivate(u64),
    /// The track's CodecPrivate is not a valid decoder configuration.
    #[error("track {0} has an invalid CodecPrivate")]
    InvalidCodecPrivate(u64),
    /// A block names a track that `tracks` does not declare.
    #[error("a block names track {0}, which the tracks do not declare")]
    UnknownTrack(u64),
    /// No block at all (or no track) to write.
    #[error("no frames to write")]
    NoFrames,
    /// A time does not fit: negative where MP4 needs it non-negative (a
    /// fragment's decode time), or beyond 64 bits, or TimecodeScale 0.
    #[error("track {track}: a time is out of range for MP4")]
    TimeOutOfRange { track: u64 },
    /// More than a limit: samples, tracks, bytes behind 32-bit fields.
    #[error("too large for MP4: {0}")]
    TooLarge(&'static str),
}

impl Mp4Error {
    /// The exception Kinesis Video Archived Media answers with, for the
    /// errors AWS names; `None` for the others (the caller's own failures).
    pub fn aws_exception(&self) -> Option<&'static str> {
        match self {
            Mp4Error::UnsupportedCodec(_) => Some("UnsupportedStreamMediaTypeException"),
            Mp4Error::MissingCodecPrivate(_) => Some("MissingCodecPrivateDataException"),
            Mp4Error::InvalidCodecPrivate(_) => Some("InvalidCodecPrivateDataException"),
            Mp4Error::UnknownTrack(_)
            | Mp4Error::NoFrames
            | Mp4Error::TimeOutOfRange { .. }
            | Mp4Error::TooLarge(_) => None,
        }
    }
}

/// The timescale a track's samples are written in (`VIDEO_TIMESCALE`, or
/// an AAC track's sampling frequency). Also checks the track can be
/// written at all (codec and CodecPrivate).
pub fn timescale(track: &Track) -> Result<u32, Mp4Error> {
    Ok(codec::entry(track)?.timescale)
}
