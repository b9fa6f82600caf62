//! Tests of the splitter. This file owns the shared driver: feed an upload
//! in a given chunking, collect events, result and the most bytes held.
//! - `fixtures`: real ffmpeg/GStreamer uploads (tests/data), every chunking;
//! - `synthetic`: streams built with `writer`, checked event by event;
//! - `errors`: one table of refused uploads, each with its exact error;
//! - `writer`: a tiny test-only EBML writer.
//!
//! Randomized chunkings print their seed; `RIFFLE_SEED=<n>` replays one.

mod errors;
mod fixtures;
mod synthetic;
mod writer;

use super::{Event, SplitError, SplitLimits, Splitter};

/// How an upload is cut into `push` calls.
#[derive(Debug, Clone, Copy)]
pub enum Chunks {
    /// One push with everything.
    Whole,
    /// Pushes of this many bytes (the last may be shorter).
    Every(usize),
    /// Two pushes: the first `n` bytes (maybe none), then the rest.
    SplitAt(usize),
    /// Pushes of pseudo-random lengths (1 to 4096, mostly small) from this seed.
    Random(u64),
}

/// What one upload gave.
#[derive(Debug)]
pub struct Run {
    pub events: Vec<Event>,
    pub result: Result<(), SplitError>,
    /// The largest `buffered()` seen after any call.
    pub buffered_seen_max: usize,
}

/// Feeds `input` in `chunks`, then finishes (unless a push failed). Checks
/// on the way that `buffered()` stays within the limits' bound and that a
/// dead splitter answers every later call with its error and no events.
pub fn run(input: &[u8], limits: SplitLimits, chunks: Chunks) -> Run {
    let mut splitter = Splitter::new(limits);
    let mut events = Vec::new();
    let mut buffered_seen_max = 0;
    let mut rng = Rng(match chunks {
        Chunks::Random(seed) => seed | 1,
        _ => 1,
    });
    let mut rest = input;
    let mut first = true;
    let result = loop {
        let n = match chunks {
            Chunks::Whole => rest.len(),
            Chunks::Every(n) => n.max(1),
            Chunks::SplitAt(n) if first => n,
            Chunks::SplitAt(_) => rest.len(),
            Chunks::Random(_) => rng.chunk_len(),
        }
        .min(rest.len());
        if rest.is_empty() && !first {
            break splitter.finish(&mut events);
        }
        first = false;
        let (now, later) = rest.split_at(n);
        let pushed = splitter.push(now, &mut events);
        buffered_seen_max = buffered_seen_max.max(splitter.buffered());
        assert!(splitter.buffered() <= limits.buffered_max());
        if let Err(error) = pushed {
            break Err(error);
        }
        rest = later;
    };
    if let Err(error) = &result {
        let mut more = Vec::new();
        assert_eq!(splitter.push(b"\x1A\x45", &mut more).as_ref(), Err(error));
        assert_eq!(splitter.finish(&mut more).as_ref(), Err(error));
        assert!(more.is_empty(), "a dead splitter emits nothing");
        assert_eq!(splitter.buffered(), 0, "a dead splitter holds nothing");
    }
    Run {
        events,
        result,
        buffered_seen_max,
    }
}

/// The seed for randomized tests: `RIFFLE_SEED` or the clock, printed.
pub fn seed() -> u64 {
    let seed = std::env::var("RIFFLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("RIFFLE_SEED={seed}");
    seed
}

/// xorshift64: reproducible chunk lengths, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// 1 to 4096, half of them 16 or less.
    fn chunk_len(&mut self) -> usize {
        let r = self.next();
        let max = if r & 1 == 0 { 16 } else { 4096 };
        (r >> 1) as usize % max + 1
    }
}

/// One line per event, for tables of expected events.
pub fn summarize(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Header(h) => format!(
                "header scale={} tracks={:?}",
                h.timecode_scale_ns,
                h.tracks.iter().map(|t| t.number).collect::<Vec<_>>()
            ),
            Event::FragmentStarted { timecode } => format!("started {timecode}"),
            Event::Fragment(f) => format!(
                "fragment {} frames={}..{} n={} key={} tracks={:?}",
                f.timecode,
                f.first_frame,
                f.last_frame,
                f.frame_count,
                f.key_frame_first,
                f.tracks_with_frames
            ),
        })
        .collect()
}
