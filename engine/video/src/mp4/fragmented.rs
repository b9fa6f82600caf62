//! Fragmented MP4 (CMAF-style) for HLS and DASH: one init segment per
//! session header, one media segment per stored fragment.
//!
//! ```text
//! init  : ftyp(iso6 0; iso6 cmfc mp41)
//!         moov{ mvhd(duration 0) · trak*(empty stts stsc stsz stco) · mvex{ trex* } }
//! media : moof{ mfhd(sequence_number)
//!               traf{ tfhd(flags 0x020000 default-base-is-moof; track_ID)
//!                     tfdt(v1: baseMediaDecodeTime u64)
//!                     trun(v1, flags 0xF01: data_offset i32, then per sample
//!                          duration u32 · size u32 · flags u32 · composition offset i32) }* }
//!         mdat{ track 1's samples · track 2's samples · ... }   (traf order)
//! ```
//! A track without a block in the fragment has no traf. data_offset counts
//! from the moof's first byte to the track's first sample in mdat.

use super::Mp4Error;
use super::boxes::{self, TrakSpec, Writer};
use super::codec::{self, Entry};
use super::samples::{self, Clock, Sample};
use crate::mkv::{Block, Track};

/// tfhd flags: base data offset is the moof's first byte.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// trun flags: data_offset, and per sample duration, size, flags and
/// composition time offset.
const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;
/// Sample flags (14496-12 8.8.3.1): a sync sample depends on no other
/// (sample_depends_on 2); others depend on one (1) and are non-sync.
pub(super) const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
pub(super) const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// The init segment for `tracks` (a session's `Header.tracks`). Track IDs
/// are 1, 2, ... in this order; every track must be H.264, H.265 or AAC.
pub fn init_segment(tracks: &[Track]) -> Result<Vec<u8>, Mp4Error> {
    let entries = codec::entries(tracks)?;
    let mut w = Writer::new();
    boxes::ftyp(&mut w, b"iso6", 0, &[b"iso6", b"cmfc", b"mp41"]);
    w.boxed(b"moov", |w| {
        boxes::mvhd(w, 0, next_track_id(&entries));
        for (i, entry) in entries.iter().enumerate() {
            let spec = TrakSpec {
                track_id: track_id(i),
                entry,
                duration_movie: 0,
                duration_media: 0,
                delay_movie: 0,
                media_time: 0,
            };
            boxes::trak(w, &spec, |w| {
                w.full(b"stts", 0, 0, |w| w.u32(0));
                w.full(b"stsc", 0, 0, |w| w.u32(0));
                w.full(b"stsz", 0, 0, |w| w.zeros(8)); // sample_size, count
                w.full(b"stco", 0, 0, |w| w.u32(0));
            });
        }
        w.boxed(b"mvex", |w| {
            for i in 0..entries.len() {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(track_id(i));
                    w.u32(1); // default_sample_description_index
                    w.zeros(12); // default duration, size, flags
                });
            }
        });
    });
    Ok(w.buf)
}

/// Each track's earliest block time in `blocks` (ticks), in order of first
/// appearance: pass a fragment's to `media_segment` of the fragment before
/// it as `next_starts`, so its last samples end exactly where it begins.
pub fn track_starts(blocks: &[Block]) -> Vec<(u64, i64)> {
    let mut starts: Vec<(u64, i64)> = Vec::new();
    for block in blocks {
        match starts.iter_mut().find(|(track, _)| *track == block.track) {
            Some((_, start)) => *start = (*start).min(block.time),
            None => starts.push((block.track, block.time)),
        }
    }
    starts
}

/// One media segment: the `blocks` of one fragment (`mkv::blocks`) for the
/// init segment of the same `tracks`. `sequence_number` is mfhd's (1 and up
/// for DASH/HLS: the fragment's position in the session or playlist);
/// `next_starts` is `track_starts` of the next fragment, or empty (then a
/// track's last duration is its BlockDuration or its previous duration).
/// Decode times are absolute (the blocks' ticks converted), so they must be
/// non-negative.
pub fn media_segment(
    sequence_number: u32,
    tracks: &[Track],
    blocks: &[Block],
    timecode_scale_ns: u64,
    next_starts: &[(u64, i64)],
) -> Result<Vec<u8>, Mp4Error> {
    let entries = codec::entries(tracks)?;
    samples::check_blocks(tracks, blocks)?;
    let mut runs: Vec<(u32, Vec<Sample<'_>>)> = Vec::new();
    for (i, (track, entry)) in tracks.iter().zip(&entries).enumerate() {
        let clock = Clock {
            track: track.number,
            timecode_scale_ns,
            timescale: entry.timescale,
        };
        let next = next_starts
            .iter()
            .find(|(t, _)| *t == track.number)
            .map(|&(_, s)| s);
        let samples = samples::track_samples(blocks, clock, next, entry.duration_fallback)?;
        if let Some(first) = samples.first() {
            if first.dts < 0 {
                return Err(Mp4Error::TimeOutOfRange {
                    track: track.number,
                });
            }
            runs.push((track_id(i), samples));
        }
    }
    if runs.is_empty() {
        return Err(Mp4Error::NoFrames);
    }
    let mut payload_len = 0u64;
    for (_, samples) in &runs {
        for sample in samples {
            payload_len += u64::from(samples::size_of(sample)?);
        }
    }

    let mut w = Writer::new();
    let mut data_offset_at = Vec::with_capacity(runs.len());
    w.boxed(b"moof", |w| {
        mfhd(w, sequence_number);
        for (id, samples) in &runs {
            w.boxed(b"traf", |w| {
                w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |w| w.u32(*id));
                let first = samples.first().map_or(0, |s| s.dts);
                tfdt(w, u64::try_from(first).expect("checked non-negative"));
                data_offset_at.push(trun(w, samples));
            });
        }
    });
    let moof_len = w.len();
    let mdat_head = boxes::mdat_head(payload_len);
    let too_large = || Mp4Error::TooLarge("a fragment's media beyond trun's 32-bit data offsets");
    let mut offset = i32::try_from(moof_len + mdat_head.len()).map_err(|_| too_large())?;
    let total = u64::try_from(offset).expect("positive") + payload_len;
    i32::try_from(total).map_err(|_| too_large())?;
    for ((_, samples), at) in runs.iter().zip(data_offset_at) {
        w.patch_u32(at, offset as u32);
        for sample in samples {
            offset += sample.data.len() as i32; // within `total`, checked above
        }
    }
    w.buf.reserve_exact(mdat_head.len() + payload_len as usize);
    w.bytes(&mdat_head);
    for (_, samples) in &runs {
        for sample in samples {
            w.bytes(sample.data);
        }
    }
    Ok(w.buf)
}

/// Track IDs are positions + 1.
pub(super) fn track_id(index: usize) -> u32 {
    u32::try_from(index + 1).expect("TRACK_COUNT_MAX tracks at most")
}

pub(super) fn next_track_id(entries: &[Entry]) -> u32 {
    track_id(entries.len())
}

/// mfhd: the fragment's sequence number.
pub(super) fn mfhd(w: &mut Writer, sequence_number: u32) {
    w.full(b"mfhd", 0, 0, |w| w.u32(sequence_number));
}

/// tfdt version 1: the first sample's decode time (track timescale).
pub(super) fn tfdt(w: &mut Writer, base_media_decode_time: u64) {
    w.full(b"tfdt", 1, 0, |w| w.u64(base_media_decode_time));
}

/// trun version 1 (signed composition offsets); returns where its
/// data_offset placeholder is. Sample sizes were checked to fit 32 bits.
pub(super) fn trun(w: &mut Writer, samples: &[Sample<'_>]) -> usize {
    w.full(b"trun", 1, TRUN_FLAGS, |w| {
        w.u32(u32::try_from(samples.len()).expect("SAMPLE_COUNT_MAX"));
        let at = w.len();
        w.i32(0); // data_offset, patched
        for sample in samples {
            w.u32(sample.duration);
            w.u32(sample.data.len() as u32);
            w.u32(if sample.sync {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            });
            w.i32(sample.composition_offset);
        }
        at
    })
}
