//! Accepted streams built with the test writer, one table: each case's
//! events (summarized one line each) must be the same for every chunking.
//! Plus the byte-exact fragment check and the skip-without-holding check.

use super::writer::*;
use super::{Chunks, run, summarize};
use crate::mkv::ebml::id;
use crate::mkv::{Event, SplitError, SplitLimits, Splitter};

/// Splits `input` whole, byte by byte, in 5s and at every split point, and
/// checks each gives `expected` (one line per event) and `Ok`.
fn check(name: &str, input: &[u8], expected: &[&str]) {
    let mut chunkings = vec![Chunks::Whole, Chunks::Every(1), Chunks::Every(5)];
    chunkings.extend((0..=input.len()).map(Chunks::SplitAt));
    for chunks in chunkings {
        let run = run(input, SplitLimits::AWS, chunks);
        assert_eq!(run.result, Ok(()), "{name} {chunks:?}");
        assert_eq!(summarize(&run.events), expected, "{name} {chunks:?}");
    }
}

#[test]
fn accepted_streams() {
    let header1 = "header scale=1000000 tracks=[1]";
    let header12 = "header scale=1000000 tracks=[1, 2]";
    let cases: &[(&str, Vec<u8>, &[&str])] = &[
        ("empty upload", vec![], &[]),
        ("header only: no events", prologue(&[1]), &[]),
        (
            "known-size clusters",
            cat(&[
                prologue(&[1]),
                cluster(0, &[simple_block(1, 0, true), simple_block(1, 40, false)]),
                cluster(80, &[simple_block(1, 0, true)]),
            ]),
            &[
                header1,
                "started 0",
                "fragment 0 frames=0..40 n=2 key=true tracks=[1]",
                "started 80",
                "fragment 80 frames=80..80 n=1 key=true tracks=[1]",
            ],
        ),
        (
            "unknown-size clusters end at the next Cluster, at Cues, at finish",
            cat(&[
                prologue(&[1]),
                cluster_unknown(0, &[simple_block(1, 0, true)]),
                cluster_unknown(10, &[simple_block(1, 0, true)]),
                el(id::CUES, &[0xEC, 0x80]),
                cluster_unknown(20, &[simple_block(1, 0, true)]),
            ]),
            &[
                header1,
                "started 0",
                "fragment 0 frames=0..0 n=1 key=true tracks=[1]",
                "started 10",
                "fragment 10 frames=10..10 n=1 key=true tracks=[1]",
                "started 20",
                "fragment 20 frames=20..20 n=1 key=true tracks=[1]",
            ],
        ),
        (
            "an unknown-size cluster ends where its known-size Segment does",
            cat(&[ebml_header("webm"), {
                let body = cat(&[
                    info(),
                    tracks(&[1]),
                    cluster_unknown(7, &[simple_block(1, 0, true)]),
                ]);
                cat(&[head(id::SEGMENT, body.len() as u64), body])
            }]),
            &[
                header1,
                "started 7",
                "fragment 7 frames=7..7 n=1 key=true tracks=[1]",
            ],
        ),
        (
            "negative relative timecodes, non-key first, two tracks, BlockGroups",
            cat(&[
                prologue(&[2, 1]),
                cluster(
                    100,
                    &[
                        simple_block(2, 5, false),
                        block_group(1, -5, true),
                        block_group(1, 20, false),
                    ],
                ),
                cluster(200, &[block_group(1, 0, true), simple_block(2, 0, false)]),
            ]),
            &[
                "header scale=1000000 tracks=[2, 1]",
                "started 100",
                "fragment 100 frames=95..120 n=3 key=false tracks=[1, 2]",
                "started 200",
                "fragment 200 frames=200..200 n=2 key=true tracks=[1, 2]",
            ],
        ),
        (
            "skipped: level-0 Void, SeekHead, Tags, Chapters, Attachments, unknown elements",
            cat(&[
                ebml_header("matroska"),
                el(id::VOID, &[0; 3]),
                head_unknown(id::SEGMENT),
                el(id::SEEK_HEAD, &[0xEC, 0x81, 0]),
                el(id::VOID, &[0; 200]),
                el(id::TAGS, &[]),
                tracks(&[1, 2]),
                el(0x4DBB, &[1, 2]),
                info(),
                el(id::CHAPTERS, &[0; 9]),
                el(id::ATTACHMENTS, &[0; 300]),
                cluster(0, &[simple_block(1, 0, true), simple_block(2, 0, true)]),
                el(id::TAGS, &[0; 4]),
            ]),
            &[
                header12,
                "started 0",
                "fragment 0 frames=0..0 n=2 key=true tracks=[1, 2]",
            ],
        ),
        (
            "zero-size Timecode is 0",
            cat(&[
                prologue(&[1]),
                el(
                    id::CLUSTER,
                    &cat(&[el(id::TIMECODE, &[]), simple_block(1, 3, true)]),
                ),
            ]),
            &[
                header1,
                "started 0",
                "fragment 0 frames=3..3 n=1 key=true tracks=[1]",
            ],
        ),
    ];
    for (name, input, expected) in cases {
        check(name, input, expected);
    }
}

/// A fragment keeps Timecode, SimpleBlock and BlockGroup as received and
/// drops Void, CRC-32, Position, PrevSize and unknown children; the Header
/// keeps the EBML header, Info and Tracks as received.
#[test]
fn fragment_and_header_bytes_are_exact() {
    let (timecode, block, group) = (
        uint(id::TIMECODE, 300),
        simple_block(1, 1, true),
        block_group(1, 2, false),
    );
    let upload = cat(&[
        prologue(&[1]),
        el(
            id::CLUSTER,
            &cat(&[
                el(id::CRC32, &[1, 2, 3, 4]),
                timecode.clone(),
                uint(id::POSITION, 9),
                uint(id::PREV_SIZE, 9),
                block.clone(),
                el(id::VOID, &[0; 5]),
                el(0x75A1, &[7]), // BlockAdditions-like unknown child
                group.clone(),
            ]),
        ),
    ]);
    let run = run(&upload, SplitLimits::AWS, Chunks::Every(3));
    assert_eq!(run.result, Ok(()));
    let Event::Header(header) = &run.events[0] else {
        panic!("{:?}", run.events)
    };
    assert_eq!(header.bytes, prologue(&[1]));
    let track = &header.tracks[0];
    assert_eq!(
        (
            track.number,
            track.uid,
            track.track_type,
            track.codec_id.as_str()
        ),
        (1, 101, 1, "V_TEST")
    );
    assert_eq!(track.codec_private.as_deref(), Some(&[0xC0, 0xDE][..]));
    assert_eq!(
        (track.pixel_width, track.pixel_height),
        (Some(64), Some(48))
    );
    let Event::Fragment(fragment) = &run.events[2] else {
        panic!("{:?}", run.events)
    };
    let body = cat(&[timecode, block, group]);
    let size = (body.len() as u64).to_be_bytes();
    let expected = cat(&[vec![0x1F, 0x43, 0xB6, 0x75, 0x01], size[1..].to_vec(), body]);
    assert_eq!(fragment.bytes, expected);
}

/// Huge skipped elements are counted past: the splitter holds only the
/// head being read, however much arrives.
#[test]
fn skipping_holds_nothing() {
    for (name, element) in [
        ("Void", head(id::VOID, (1 << 56) - 2)),
        ("Attachments", head(id::ATTACHMENTS, 1 << 40)),
        ("Cues", head(id::CUES, 1 << 30)),
    ] {
        let mut splitter = Splitter::new(SplitLimits::AWS);
        let mut events = Vec::new();
        let start = prologue(&[1]);
        splitter.push(&start, &mut events).unwrap();
        splitter.push(&element, &mut events).unwrap();
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..160 {
            splitter.push(&zeros, &mut events).unwrap();
            // The EBML header, Info and Tracks (not the Segment head: the
            // Header gets its own).
            assert_eq!(
                splitter.buffered(),
                start.len() - 12,
                "{name}: the header parts only"
            );
        }
        assert!(events.is_empty());
        assert_eq!(
            splitter.finish(&mut events),
            Err(SplitError::Truncated {
                offset: start.len() as u64
            }),
            "{name}"
        );
    }
}
