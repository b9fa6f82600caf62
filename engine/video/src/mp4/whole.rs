//! One non-fragmented MP4 for GetClip: every sample in moov's tables, moov
//! before mdat ("faststart": playable while it downloads).
//!
//! ```text
//! ftyp(isom 512; isom iso6 mp41)
//! moov{ mvhd(duration) · trak{ tkhd · edts{elst}? · mdia{ ... stbl{ stsd
//!       · stts (count u32 · delta u32)*          run-length durations
//!       · ctts v0 (count u32 · offset u32)*      only if some offset ≠ 0
//!       · stss (sample number u32)*              only if some sample is not sync
//!       · stsc (first_chunk · samples_per_chunk · 1)*   run-length
//!       · stsz (size 0 · count · size u32*) or (size · count) when all equal
//!       · stco (offset u32)* | co64 (offset u64)*  when an offset passes 4 GiB } } }* }
//! mdat{ the blocks in the order given }
//! ```
//! A chunk is a run of consecutive blocks of one track in the input (for
//! Matroska, the producer's interleaving). Each track's media timeline
//! starts at its first decode time; a track that starts after the clip's
//! first frame gets an empty edit of the difference (elst), which keeps
//! audio and video in sync. With reordered frames (B-frames) the signed
//! composition offsets are raised by the most negative one's magnitude
//! (ctts version 0, what every player reads) and the edit starts the media
//! there, so the first frame still shows at the track's start.

use super::boxes::{self, TrakSpec, Writer};
use super::codec::{self, Entry};
use super::fragmented::track_id;
use super::samples::{self, Clock, Sample};
use super::{MOVIE_TIMESCALE, Mp4Error};
use crate::mkv::{Block, Track};

/// A non-fragmented MP4 of `blocks` (the blocks of consecutive fragments,
/// in order) for `tracks`. Tracks without a block are left out; the clip
/// starts at the earliest block.
pub fn whole_mp4(
    tracks: &[Track],
    blocks: &[Block],
    timecode_scale_ns: u64,
) -> Result<Vec<u8>, Mp4Error> {
    whole_mp4_with(tracks, blocks, timecode_scale_ns, u64::from(u32::MAX))
}

/// One track's part of the file.
struct Plan<'a> {
    track_id: u32,
    entry: &'a Entry,
    samples: Vec<Sample<'a>>,
    /// (samples in the chunk, its offset from mdat's payload start).
    chunks: Vec<(u32, u64)>,
    delay_movie: u64,
    /// How much the composition offsets are raised so none is negative
    /// (ctts version 0); the edit starts the media there.
    media_time: u64,
    duration_media: u64,
    duration_movie: u64,
}

/// `whole_mp4` switching to co64 when a chunk offset passes `offset32_max`
/// (the tests lower it to reach co64 with small files).
pub(super) fn whole_mp4_with(
    tracks: &[Track],
    blocks: &[Block],
    timecode_scale_ns: u64,
    offset32_max: u64,
) -> Result<Vec<u8>, Mp4Error> {
    let entries = codec::entries(tracks)?;
    samples::check_blocks(tracks, blocks)?;
    let Some(start) = blocks.iter().map(|b| b.time).min() else {
        return Err(Mp4Error::NoFrames);
    };
    let mut plans = Vec::new();
    for (i, (track, entry)) in tracks.iter().zip(&entries).enumerate() {
        let clock = Clock {
            track: track.number,
            timecode_scale_ns,
            timescale: entry.timescale,
        };
        let samples = samples::track_samples(blocks, clock, None, entry.duration_fallback)?;
        let Some(first) = blocks
            .iter()
            .filter(|b| b.track == track.number)
            .map(|b| b.time)
            .min()
        else {
            continue;
        };
        let movie = Clock {
            timescale: MOVIE_TIMESCALE,
            ..clock
        };
        let delay_movie =
            u64::try_from(i128::from(movie.convert(first)?) - i128::from(movie.convert(start)?))
                .expect("first >= start, and convert is monotonic");
        let duration_media: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        // Rounded to the nearest ms.
        let media_movie = (u128::from(duration_media) * u128::from(MOVIE_TIMESCALE)
            + u128::from(entry.timescale / 2))
            / u128::from(entry.timescale);
        let duration_movie = u64::try_from(media_movie)
            .ok()
            .and_then(|d| d.checked_add(delay_movie))
            .ok_or(Mp4Error::TimeOutOfRange {
                track: track.number,
            })?;
        let lowest = samples
            .iter()
            .map(|s| s.composition_offset)
            .min()
            .unwrap_or(0);
        let media_time = u64::from(lowest.min(0).unsigned_abs());
        plans.push(Plan {
            track_id: track_id(i),
            entry,
            samples,
            chunks: Vec::new(),
            delay_movie,
            media_time,
            duration_media,
            duration_movie,
        });
    }

    // Chunks: runs of one track's consecutive blocks, in input order.
    let mut payload_len = 0u64;
    let mut previous: Option<u64> = None;
    for block in blocks {
        let i = tracks
            .iter()
            .position(|t| t.number == block.track)
            .expect("check_blocks");
        let plan = plans
            .iter_mut()
            .find(|p| p.track_id == track_id(i))
            .expect("a track with a block has a plan");
        match plan.chunks.last_mut() {
            Some((count, _)) if previous == Some(block.track) => *count += 1,
            _ => plan.chunks.push((1, payload_len)),
        }
        previous = Some(block.track);
        payload_len += u64::try_from(block.data.len()).expect("usize fits u64");
    }
    for plan in &plans {
        for sample in &plan.samples {
            samples::size_of(sample)?;
        }
    }

    let mut ftyp = Writer::new();
    boxes::ftyp(&mut ftyp, b"isom", 0x200, &[b"isom", b"iso6", b"mp41"]);
    let mdat_head = boxes::mdat_head(payload_len);
    let last_chunk = plans
        .iter()
        .filter_map(|p| p.chunks.last())
        .map(|&(_, at)| at)
        .max()
        .unwrap_or(0);
    let head_len = |moov_len: usize| (ftyp.len() + moov_len + mdat_head.len()) as u64;
    let co64 = head_len(moov(&plans, 0, false).len()) + last_chunk > offset32_max;
    let base = head_len(moov(&plans, 0, co64).len());
    let moov = moov(&plans, base, co64);

    let total = base as usize + payload_len as usize;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&ftyp.buf);
    out.extend_from_slice(&moov.buf);
    out.extend_from_slice(&mdat_head);
    for block in blocks {
        out.extend_from_slice(&block.data);
    }
    assert_eq!(out.len(), total, "the chunk offsets point into this mdat");
    Ok(out)
}

/// The moov for `plans` with chunk offsets counted from `base` (the file
/// offset of mdat's payload).
fn moov(plans: &[Plan<'_>], base: u64, co64: bool) -> Writer {
    let mut w = Writer::new();
    let duration = plans.iter().map(|p| p.duration_movie).max().unwrap_or(0);
    let next_id = plans.iter().map(|p| p.track_id).max().unwrap_or(0) + 1;
    w.boxed(b"moov", |w| {
        boxes::mvhd(w, duration, next_id);
        for plan in plans {
            let spec = TrakSpec {
                track_id: plan.track_id,
                entry: plan.entry,
                duration_movie: plan.duration_movie,
                duration_media: plan.duration_media,
                delay_movie: plan.delay_movie,
                media_time: plan.media_time,
            };
            boxes::trak(w, &spec, |w| tables(w, plan, base, co64));
        }
    });
    w
}

/// stts, ctts?, stss?, stsc, stsz, stco|co64.
fn tables(w: &mut Writer, plan: &Plan<'_>, base: u64, co64: bool) {
    let samples = &plan.samples;
    let stts = runs(samples.iter().map(|s| s.duration));
    w.full(b"stts", 0, 0, |w| {
        w.u32(stts.len() as u32);
        for (count, duration) in &stts {
            w.u32(*count);
            w.u32(*duration);
        }
    });
    if samples.iter().any(|s| s.composition_offset != 0) {
        // Raised by `media_time`, so all are >= 0: version 0, which every
        // player reads (negative offsets in a file with an edit list are
        // read shifted by some, ffmpeg among them).
        let shifted = samples.iter().map(|s| {
            u32::try_from(i64::from(s.composition_offset) + plan.media_time as i64)
                .expect("media_time is the lowest offset's magnitude")
        });
        let ctts = runs(shifted);
        w.full(b"ctts", 0, 0, |w| {
            w.u32(ctts.len() as u32);
            for (count, offset) in &ctts {
                w.u32(*count);
                w.u32(*offset);
            }
        });
    }
    if samples.iter().any(|s| !s.sync) {
        let sync: Vec<u32> = (1u32..)
            .zip(samples)
            .filter(|(_, s)| s.sync)
            .map(|(n, _)| n)
            .collect();
        w.full(b"stss", 0, 0, |w| {
            w.u32(sync.len() as u32);
            for n in sync {
                w.u32(n);
            }
        });
    }
    let stsc = runs(plan.chunks.iter().map(|&(count, _)| count));
    w.full(b"stsc", 0, 0, |w| {
        w.u32(stsc.len() as u32);
        let mut first_chunk = 1u32;
        for (chunks, per_chunk) in &stsc {
            w.u32(first_chunk);
            w.u32(*per_chunk);
            w.u32(1); // sample_description_index
            first_chunk += chunks;
        }
    });
    let sizes: Vec<u32> = samples.iter().map(|s| s.data.len() as u32).collect();
    w.full(b"stsz", 0, 0, |w| match sizes.first() {
        Some(&size) if sizes.iter().all(|&s| s == size) => {
            w.u32(size);
            w.u32(sizes.len() as u32);
        }
        _ => {
            w.u32(0);
            w.u32(sizes.len() as u32);
            for size in &sizes {
                w.u32(*size);
            }
        }
    });
    let kind = if co64 { b"co64" } else { b"stco" };
    w.full(kind, 0, 0, |w| {
        w.u32(plan.chunks.len() as u32);
        for &(_, at) in &plan.chunks {
            if co64 {
                w.u64(base + at);
            } else {
                w.u32(u32::try_from(base + at).expect("co64 when an offset passes 32 bits"));
            }
        }
    });
}

/// Run-length encoding: (how many in a row, value).
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((count, last)) if *last == v => *count += 1,
            _ => out.push((1, v)),
        }
    }
    out
}
