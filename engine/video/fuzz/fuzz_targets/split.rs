//! Fuzz target: the PutMedia MKV splitter (`riffle_video::mkv`). Byte 0
//! picks the limits (AWS's, or small ones so the size refusals are reached)
//! and byte 1 seeds the chunk lengths; the rest is the upload. It is split
//! three ways: whole, in pseudo-random chunks, and byte by byte. No way may
//! panic; `buffered()` stays within `SplitLimits::buffered_max()` after every
//! call; the events are well-formed (one Header first, each Fragment after
//! its FragmentStarted, sizes within the limits); a dead splitter repeats
//! its error; and all three ways give the same events and the same result.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The module alone (it needs only bytes, thiserror and tracing); see Cargo.toml.
#[allow(dead_code, unused_imports)]
#[path = "../../src/mkv/mod.rs"]
mod mkv;

use mkv::{Event, SplitError, SplitLimits, Splitter};

fuzz_target!(|data: &[u8]| {
    let [control, seed, upload @ ..] = data else {
        return;
    };
    let limits = if control & 1 == 0 {
        SplitLimits::AWS
    } else {
        SplitLimits {
            fragment_bytes_max: 16 + usize::from(control >> 1) * 8,
            header_bytes_max: 32 + usize::from(*seed) * 4,
            tracks_max: 1 + usize::from(control >> 6),
        }
    };
    let whole = split(upload, limits, &mut |rest| rest);
    let mut state = (u64::from(*control) << 8 | u64::from(*seed)) | 0x9E37_79B9_0000_0000;
    let chunked = split(upload, limits, &mut |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 64) as usize + 1
    });
    let bytewise = split(upload, limits, &mut |_| 1);
    // Compared as Debug text, not with `==`: a NaN float would never equal
    // itself (the splitter refuses a NaN SamplingFrequency, but this check
    // should not depend on that).
    assert_eq!(whole, chunked, "pseudo-random chunks differ from one push");
    assert_eq!(whole, bytewise, "byte-by-byte pushes differ from one push");
});

/// Splits `upload` in chunks of `next(bytes left)` bytes, checking the
/// invariants on the way; returns the outcome as text.
fn split(upload: &[u8], limits: SplitLimits, next: &mut dyn FnMut(usize) -> usize) -> String {
    let mut splitter = Splitter::new(limits);
    let mut events = Vec::new();
    let mut rest = upload;
    let result = loop {
        if rest.is_empty() {
            break splitter.finish(&mut events);
        }
        let n = next(rest.len()).clamp(1, rest.len());
        let (now, later) = rest.split_at(n);
        rest = later;
        let pushed = splitter.push(now, &mut events);
        assert!(
            splitter.buffered() <= limits.buffered_max(),
            "buffered over the bound"
        );
        if pushed.is_err() {
            break pushed;
        }
    };
    if let Err(error) = &result {
        let mut more = Vec::new();
        assert_eq!(splitter.push(b"\x1F", &mut more).as_ref(), Err(error));
        assert_eq!(splitter.finish(&mut more).as_ref(), Err(error));
        assert!(more.is_empty());
    }
    check_events(&events, &result, limits);
    format!("{events:?} {result:?}")
}

fn check_events(events: &[Event], result: &Result<(), SplitError>, limits: SplitLimits) {
    let mut started = None;
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Header(header) => {
                assert_eq!(i, 0, "the Header comes first, once");
                assert!(header.bytes.len() <= limits.header_bytes_max);
                assert!((1..=limits.tracks_max).contains(&header.tracks.len()));
            }
            Event::FragmentStarted { timecode } => {
                assert!(
                    i > 0 && started.is_none(),
                    "FragmentStarted after the Header, once per fragment"
                );
                started = Some(*timecode);
            }
            Event::Fragment(fragment) => {
                assert_eq!(
                    started.take(),
                    Some(fragment.timecode),
                    "Fragment after its FragmentStarted"
                );
                let bytes = &fragment.bytes;
                assert!(bytes.len() <= limits.fragment_bytes_max + 7);
                assert_eq!(bytes.get(..5), Some(&[0x1F, 0x43, 0xB6, 0x75, 0x01][..]));
                assert!(fragment.first_frame <= fragment.last_frame);
                assert!(fragment.frame_count >= 1);
                assert!(fragment.tracks_with_frames.windows(2).all(|w| w[0] < w[1]));
                // What the read paths do with a stored fragment: a fragment
                // the splitter made is a Cluster they can re-time.
                let retimed = mkv::with_timecode(bytes, u64::MAX);
                assert!(retimed.is_some(), "a fragment re-times");
                let _ = mkv::blocks(bytes);
            }
        }
    }
    if result.is_ok() {
        assert!(started.is_none(), "a started fragment ends by finish");
    }
}
