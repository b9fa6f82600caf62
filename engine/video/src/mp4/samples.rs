//! One track's blocks as MP4 samples: times converted from Matroska ticks
//! to the track's timescale, decode order and times, durations, composition
//! offsets, sizes and sync flags. Shared by the fragmented and the whole
//! writer so both time a stream the same way.
//!
//! Times: `ticks × timecode_scale_ns × timescale / 10^9`, floored, in 128-bit
//! arithmetic. Block times are presentation times (PTS); the decode times
//! (DTS) are the PTS sorted, so sample `i` decodes at the `i`-th smallest PTS
//! and its composition offset is `PTS - DTS` (0 without reordering). A
//! duration is the next DTS minus this one; the last sample's comes from,
//! in order: the next fragment's start (`next`), its BlockDuration, the
//! previous sample's duration, the codec's fallback (`Entry`).

use super::Mp4Error;
use crate::mkv::Block;

const NS_PER_S: i128 = 1_000_000_000;

/// One frame as a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sample<'a> {
    /// Decode time (timescale units, the same origin as the blocks' ticks).
    pub dts: i64,
    pub duration: u32,
    /// Presentation minus decode time.
    pub composition_offset: i32,
    pub sync: bool,
    pub data: &'a [u8],
}

/// How one track's ticks become its timescale.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub track: u64,
    pub timecode_scale_ns: u64,
    pub timescale: u32,
}

impl Clock {
    /// `ticks` in the timescale, floored.
    pub fn convert(&self, ticks: i64) -> Result<i64, Mp4Error> {
        let out = || Mp4Error::TimeOutOfRange { track: self.track };
        if self.timecode_scale_ns == 0 {
            return Err(out());
        }
        let scaled = i128::from(ticks)
            .checked_mul(i128::from(self.timecode_scale_ns))
            .and_then(|ns| ns.checked_mul(i128::from(self.timescale)))
            .ok_or_else(out)?;
        i64::try_from(scaled.div_euclid(NS_PER_S)).map_err(|_| out())
    }
}

/// The samples of `clock.track` among `blocks`, in decode order. `next` is
/// where the track's next block (after these) starts, in ticks, if known.
/// Empty when the track has no block here.
pub(super) fn track_samples<'a>(
    blocks: &'a [Block],
    clock: Clock,
    next: Option<i64>,
    duration_fallback: u32,
) -> Result<Vec<Sample<'a>>, Mp4Error> {
    let mine: Vec<&Block> = blocks.iter().filter(|b| b.track == clock.track).collect();
    let Some(last) = mine.last() else {
        return Ok(Vec::new());
    };
    let pts = mine
        .iter()
        .map(|b| clock.convert(b.time))
        .collect::<Result<Vec<i64>, Mp4Error>>()?;
    let mut dts = pts.clone();
    dts.sort_unstable();
    let too_long = || Mp4Error::TooLarge("a sample's duration or composition offset");
    let mut durations = dts
        .windows(2)
        .map(|pair| u32::try_from(diff(pair[1], pair[0])).map_err(|_| too_long()))
        .collect::<Result<Vec<u32>, Mp4Error>>()?;
    let last_dts = *dts.last().expect("a block, so a time");
    let from_next = match next {
        Some(next) => Some(clock.convert(next)?).filter(|&n| n > last_dts),
        None => None,
    };
    let from_block = match last.duration {
        Some(ticks) => {
            let ticks = i64::try_from(ticks).map_err(|_| too_long())?;
            let end = last.time.checked_add(ticks).ok_or_else(too_long)?;
            Some(diff(clock.convert(end)?, clock.convert(last.time)?)).filter(|&d| d > 0)
        }
        None => None,
    };
    let last_duration = match (from_next, from_block, durations.last()) {
        (Some(next), _, _) => u32::try_from(diff(next, last_dts)).map_err(|_| too_long())?,
        (None, Some(duration), _) => u32::try_from(duration).map_err(|_| too_long())?,
        (None, None, Some(&previous)) => previous,
        (None, None, None) => duration_fallback,
    };
    durations.push(last_duration);
    let mut samples = Vec::with_capacity(mine.len());
    for (i, block) in mine.iter().enumerate() {
        let composition_offset = i32::try_from(diff(pts[i], dts[i])).map_err(|_| too_long())?;
        samples.push(Sample {
            dts: dts[i],
            duration: durations[i],
            composition_offset,
            sync: block.key,
            data: &block.data,
        });
    }
    Ok(samples)
}

/// `a - b` without overflow.
fn diff(a: i64, b: i64) -> i128 {
    i128::from(a) - i128::from(b)
}

/// Sample sizes fit 32 bits (stsz, trun).
pub(super) fn size_of(sample: &Sample<'_>) -> Result<u32, Mp4Error> {
    u32::try_from(sample.data.len()).map_err(|_| Mp4Error::TooLarge("a sample of 4 GiB or more"))
}

/// Every block names one of `tracks`, and there are at most
/// `SAMPLE_COUNT_MAX` (which bounds every box the writers make).
pub(super) fn check_blocks(tracks: &[crate::mkv::Track], blocks: &[Block]) -> Result<(), Mp4Error> {
    if blocks.len() > super::SAMPLE_COUNT_MAX {
        return Err(Mp4Error::TooLarge("frames in one call"));
    }
    match blocks
        .iter()
        .find(|b| !tracks.iter().any(|t| t.number == b.track))
    {
        Some(block) => Err(Mp4Error::UnknownTrack(block.track)),
        None => Ok(()),
    }
}
