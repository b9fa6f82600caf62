//! The splitter on real uploads from ffmpeg (live and non-live shapes, video
//! and video+AAC) and GStreamer (`matroskamux streamable=true`: unknown-size
//! Clusters). tests/data/README.md says how each file was made. Expected
//! values are what `mkvinfo -v -v` (MKVToolNix 74) and `ffprobe` reported
//! for each file, hard-coded here.

use super::{Chunks, Run, run, seed};
use crate::mkv::ebml::SEGMENT_HEAD_UNKNOWN;
use crate::mkv::{Event, Fragment, Header, SplitError, SplitLimits};

struct Fixture {
    name: &'static str,
    bytes: &'static [u8],
    /// Length of the EBML header element (the Segment starts here).
    ebml_len: usize,
    tracks: &'static [TrackExpect],
    clusters: &'static [ClusterExpect],
    /// `ffprobe -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0`.
    probe: &'static str,
}

struct TrackExpect {
    number: u64,
    codec_id: &'static str,
    codec_private_len: usize,
    pixels: Option<(u64, u64)>,
    audio: Option<(f64, u64)>,
}

/// Cluster timecode, first and last frame (ms: TimecodeScale is 1 ms in
/// all fixtures), frame count, tracks with frames.
struct ClusterExpect(u64, i64, i64, u32, &'static [u64]);

const AVC_160X120: TrackExpect = TrackExpect {
    number: 1,
    codec_id: "V_MPEG4/ISO/AVC",
    codec_private_len: 44,
    pixels: Some((160, 120)),
    audio: None,
};

/// 3 s of 10 fps video, a key frame every 10 frames: one cluster per second.
const VIDEO_CLUSTERS: &[ClusterExpect] = &[
    ClusterExpect(0, 0, 900, 10, &[1]),
    ClusterExpect(1000, 1000, 1900, 10, &[1]),
    ClusterExpect(2000, 2000, 2900, 10, &[1]),
];

const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "testsrc-3s.mkv",
        bytes: include_bytes!("../../../tests/data/testsrc-3s.mkv"),
        ebml_len: 40,
        tracks: &[AVC_160X120],
        clusters: VIDEO_CLUSTERS,
        probe: "h264,160,120,30\n",
    },
    Fixture {
        name: "testsrc-3s-nonlive.mkv",
        bytes: include_bytes!("../../../tests/data/testsrc-3s-nonlive.mkv"),
        ebml_len: 40,
        tracks: &[AVC_160X120],
        clusters: VIDEO_CLUSTERS,
        probe: "h264,160,120,30\n",
    },
    Fixture {
        name: "testsrc-aac-3s.mkv",
        bytes: include_bytes!("../../../tests/data/testsrc-aac-3s.mkv"),
        ebml_len: 40,
        tracks: &[
            AVC_160X120,
            TrackExpect {
                number: 2,
                codec_id: "A_AAC",
                codec_private_len: 5,
                pixels: None,
                audio: Some((16000.0, 1)),
            },
        ],
        // Audio leads: each cluster's first block is an AAC frame (a key
        // frame), video starts 64 ms in (the AAC priming delay).
        clusters: &[
            ClusterExpect(0, 0, 964, 26, &[1, 2]),
            ClusterExpect(1024, 1024, 1964, 25, &[1, 2]),
            ClusterExpect(1984, 1984, 2964, 24, &[1, 2]),
        ],
        probe: "h264,160,120,30\naac,45\n",
    },
    Fixture {
        name: "gst-streamable-3s.mkv",
        bytes: include_bytes!("../../../tests/data/gst-streamable-3s.mkv"),
        ebml_len: 32,
        tracks: &[TrackExpect {
            codec_private_len: 46,
            ..AVC_160X120
        }],
        clusters: VIDEO_CLUSTERS,
        probe: "h264,160,120,30\n",
    },
];

fn header_and_fragments(events: &[Event]) -> (&Header, Vec<&Fragment>) {
    let Some(Event::Header(header)) = events.first() else {
        panic!("first event is not the Header: {events:?}");
    };
    let fragments = events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f),
            _ => None,
        })
        .collect();
    (header, fragments)
}

/// Checks one fixture's events against what mkvinfo reported.
fn check_events(fixture: &Fixture, run: &Run) {
    let name = fixture.name;
    assert_eq!(run.result, Ok(()), "{name}");
    let (header, fragments) = header_and_fragments(&run.events);
    assert_eq!(header.timecode_scale_ns, 1_000_000, "{name}");
    assert_eq!(header.tracks.len(), fixture.tracks.len(), "{name}");
    for (track, want) in header.tracks.iter().zip(fixture.tracks) {
        assert_eq!(track.number, want.number, "{name}");
        assert_eq!(track.codec_id, want.codec_id, "{name}");
        assert_eq!(
            track.codec_private.as_ref().map(|b| b.len()),
            Some(want.codec_private_len),
            "{name}"
        );
        assert_eq!(
            track.pixel_width.zip(track.pixel_height),
            want.pixels,
            "{name}"
        );
        assert_eq!(
            track.sampling_frequency.zip(track.channels),
            want.audio,
            "{name}"
        );
        assert_ne!(track.uid, 0, "{name}");
    }
    // EBML header as received, then the Segment head with the unknown size.
    let ebml = &fixture.bytes[..fixture.ebml_len];
    assert!(header.bytes.starts_with(ebml), "{name}");
    assert_eq!(
        header.bytes[ebml.len()..ebml.len() + 12],
        SEGMENT_HEAD_UNKNOWN,
        "{name}"
    );

    // Header, then per cluster: FragmentStarted, Fragment.
    assert_eq!(run.events.len(), 1 + 2 * fixture.clusters.len(), "{name}");
    for (i, want) in fixture.clusters.iter().enumerate() {
        let ClusterExpect(timecode, first, last, count, tracks) = *want;
        assert_eq!(
            run.events[1 + 2 * i],
            Event::FragmentStarted { timecode },
            "{name} #{i}"
        );
        let fragment = fragments[i];
        assert_eq!(
            (
                fragment.timecode,
                fragment.first_frame,
                fragment.last_frame,
                fragment.frame_count
            ),
            (timecode, first, last, count),
            "{name} cluster {i}"
        );
        assert!(fragment.key_frame_first, "{name} cluster {i}");
        assert_eq!(fragment.tracks_with_frames, tracks, "{name} cluster {i}");
        // Cluster ID, 8-byte size field holding the rest's length, then the
        // Timecode first (ffmpeg's CRC-32 and GStreamer's PrevSize dropped).
        let bytes = &fragment.bytes;
        assert_eq!(
            bytes[..5],
            [0x1F, 0x43, 0xB6, 0x75, 0x01],
            "{name} cluster {i}"
        );
        let mut size = [0u8; 8];
        size[1..].copy_from_slice(&bytes[5..12]);
        assert_eq!(
            u64::from_be_bytes(size),
            bytes.len() as u64 - 12,
            "{name} cluster {i}"
        );
        assert_eq!(
            bytes[12], 0xE7,
            "{name} cluster {i}: first child is the Timecode"
        );
    }
}

#[test]
fn fixtures_split_the_same_in_any_chunking() {
    let seed = seed();
    for fixture in FIXTURES {
        let whole = run(fixture.bytes, SplitLimits::AWS, Chunks::Whole);
        check_events(fixture, &whole);
        let mut chunkings = vec![Chunks::Every(1), Chunks::Every(7), Chunks::Every(4096)];
        chunkings.extend((0..=2048.min(fixture.bytes.len())).map(Chunks::SplitAt));
        chunkings.extend((0..8).map(|i| Chunks::Random(seed.wrapping_add(i))));
        for chunks in chunkings {
            let other = run(fixture.bytes, SplitLimits::AWS, chunks);
            assert_eq!(other.result, whole.result, "{} {chunks:?}", fixture.name);
            assert!(
                other.events == whole.events,
                "{} {chunks:?}: events differ",
                fixture.name
            );
        }
    }
}

/// Header.bytes followed by the fragments is an MKV that splits into the
/// same events, and that ffprobe (when on PATH) decodes fully.
#[test]
fn fixtures_reassemble_into_playable_mkv() {
    for fixture in FIXTURES {
        let whole = run(fixture.bytes, SplitLimits::AWS, Chunks::Whole);
        let (header, fragments) = header_and_fragments(&whole.events);
        let mut mkv = header.bytes.to_vec();
        for fragment in &fragments {
            mkv.extend_from_slice(&fragment.bytes);
        }
        let again = run(&mkv, SplitLimits::AWS, Chunks::Every(1000));
        assert!(
            again.events == whole.events,
            "{}: re-split differs",
            fixture.name
        );
        probe(fixture, &mkv);
    }
}

fn probe(fixture: &Fixture, mkv: &[u8]) {
    let path = std::env::temp_dir().join(format!(
        "riffle-mkv-{}-{}",
        std::process::id(),
        fixture.name
    ));
    std::fs::write(&path, mkv).expect("write the re-assembled MKV");
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args([
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    match output {
        Err(error) => println!(
            "note: ffprobe not run ({error}); {} not probed",
            fixture.name
        ),
        Ok(output) => {
            assert!(
                output.status.success(),
                "ffprobe failed on {}: {output:?}",
                fixture.name
            );
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                fixture.probe,
                "{}",
                fixture.name
            );
            assert_eq!(
                String::from_utf8_lossy(&output.stderr),
                "",
                "{}",
                fixture.name
            );
        }
    }
}

/// Fed byte by byte, the splitter never holds more than its bound, and the
/// limits are exact: the smallest that pass are the Header's length and the
/// largest cluster as received; one byte less is refused.
#[test]
fn fixtures_stay_within_the_memory_bound() {
    for fixture in FIXTURES {
        let name = fixture.name;
        let whole = run(fixture.bytes, SplitLimits::AWS, Chunks::Whole);
        let (header, _) = header_and_fragments(&whole.events);
        let passes = |limits: SplitLimits| run(fixture.bytes, limits, Chunks::Whole).result.is_ok();
        // The smallest fragment limit that passes, by bisection.
        let (mut low, mut high) = (1, fixture.bytes.len());
        while low < high {
            let mid = (low + high) / 2;
            let limits = SplitLimits {
                fragment_bytes_max: mid,
                ..SplitLimits::AWS
            };
            if passes(limits) {
                high = mid
            } else {
                low = mid + 1
            }
        }
        let tight = SplitLimits {
            fragment_bytes_max: low,
            header_bytes_max: header.bytes.len(),
            tracks_max: fixture.tracks.len(),
        };
        let bytewise = run(fixture.bytes, tight, Chunks::Every(1));
        assert!(
            bytewise.events == whole.events,
            "{name}: tight limits change events"
        );
        assert!(bytewise.buffered_seen_max <= tight.buffered_max(), "{name}");
        let over = SplitLimits {
            fragment_bytes_max: low - 1,
            ..tight
        };
        assert!(matches!(
            run(fixture.bytes, over, Chunks::Every(1)).result,
            Err(SplitError::FragmentTooLarge { .. })
        ));
        let over = SplitLimits {
            header_bytes_max: header.bytes.len() - 1,
            ..tight
        };
        assert!(matches!(
            run(fixture.bytes, over, Chunks::Every(1)).result,
            Err(SplitError::HeaderTooLarge { .. })
        ));
        let over = SplitLimits {
            tracks_max: fixture.tracks.len() - 1,
            ..tight
        };
        assert_eq!(
            run(fixture.bytes, over, Chunks::Every(1)).result,
            Err(SplitError::TooManyTracks {
                count: fixture.tracks.len()
            })
        );
        println!(
            "{name}: {} bytes, header {}, largest cluster {low}, held at most {} (bound {})",
            fixture.bytes.len(),
            header.bytes.len(),
            bytewise.buffered_seen_max,
            tight.buffered_max()
        );
    }
}

/// The non-live file cut after its last Cluster (before Cues): all three
/// fragments come out, then its known-size Segment is cut short.
#[test]
fn fixture_cut_before_cues_is_truncated_after_its_fragments() {
    let fixture = &FIXTURES[1];
    let cues = 13682; // mkvinfo: "Cues at 13682" (the last 64 bytes)
    let cut = run(&fixture.bytes[..cues], SplitLimits::AWS, Chunks::Every(7));
    assert_eq!(cut.result, Err(SplitError::Truncated { offset: 40 }));
    let whole = run(fixture.bytes, SplitLimits::AWS, Chunks::Whole);
    assert!(cut.events == whole.events);
}
