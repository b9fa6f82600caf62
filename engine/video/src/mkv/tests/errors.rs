//! Refused uploads, one table: each case's exact error (variant, offset,
//! AWS ErrorId; for `Invalid` a phrase of its message), the same whether
//! the upload comes whole, byte by byte or in 7-byte chunks.

use super::writer::*;
use super::{Chunks, run};
use crate::mkv::ebml::id;
use crate::mkv::{SplitError, SplitLimits};

/// What a case must be refused with. `Invalid`'s message need only contain
/// the phrase.
enum Want {
    Invalid(u64, &'static str),
    Exactly(SplitError),
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    limits: SplitLimits,
    want: Want,
    error_id: u16,
}

fn check(case: &Case) {
    let name = case.name;
    for chunks in [Chunks::Whole, Chunks::Every(1), Chunks::Every(7)] {
        let run = run(&case.input, case.limits, chunks);
        let Err(error) = run.result else {
            panic!("{name} {chunks:?}: accepted, events {:?}", run.events);
        };
        match &case.want {
            Want::Exactly(want) => assert_eq!(&error, want, "{name} {chunks:?}"),
            Want::Invalid(offset, phrase) => match &error {
                SplitError::Invalid { offset: at, what } => {
                    assert_eq!(at, offset, "{name} {chunks:?}: {what}");
                    assert!(
                        what.contains(phrase),
                        "{name} {chunks:?}: {what:?} lacks {phrase:?}"
                    );
                }
                other => panic!("{name} {chunks:?}: {other:?}, not Invalid"),
            },
        }
        assert_eq!(error.error_id(), case.error_id, "{name}");
        assert!(!error.to_string().is_empty());
    }
}

fn invalid(name: &'static str, input: Vec<u8>, offset: usize, phrase: &'static str) -> Case {
    Case {
        name,
        input,
        limits: SplitLimits::AWS,
        want: Want::Invalid(offset as u64, phrase),
        error_id: 4006,
    }
}

fn exactly(
    name: &'static str,
    input: Vec<u8>,
    limits: SplitLimits,
    want: SplitError,
    error_id: u16,
) -> Case {
    Case {
        name,
        input,
        limits,
        want: Want::Exactly(want),
        error_id,
    }
}

#[test]
fn refused_uploads() {
    let aws = SplitLimits::AWS;
    let p1 = prologue(&[1]);
    let at = |parts: &[&Vec<u8>]| parts.iter().map(|p| p.len()).sum::<usize>();
    let key = simple_block(1, 0, true);
    let ok_cluster = cluster(0, std::slice::from_ref(&key));
    let segment_at = ebml_header("matroska").len();
    let cluster_head = head(id::CLUSTER, 0).len();
    let timecode0 = uint(id::TIMECODE, 0);
    let cases = vec![
        // Not Matroska at all.
        invalid(
            "HTTP text",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            0,
            "not EBML",
        ),
        invalid("zero bytes", vec![0; 64], 0, "longer than 4 bytes"),
        invalid(
            "reserved ID 0xFF",
            vec![0xFF, 0x81, 0],
            0,
            "reserved element ID",
        ),
        invalid(
            "DocType mp4",
            cat(&[ebml_header("mp4"), head_unknown(id::SEGMENT)]),
            9,
            "DocType",
        ),
        invalid(
            "EBMLReadVersion 2",
            el(id::EBML, &uint(id::EBML_READ_VERSION, 2)),
            5,
            "EBMLReadVersion",
        ),
        invalid(
            "EBML header without DocType",
            el(id::EBML, &[]),
            5,
            "without a DocType",
        ),
        invalid(
            "EBML header of unknown size",
            head_unknown(id::EBML),
            0,
            "unknown size",
        ),
        invalid(
            "Info where the Segment should be",
            cat(&[ebml_header("matroska"), info()]),
            segment_at,
            "where the Segment should start",
        ),
        // Heads.
        invalid(
            "5-byte element ID",
            cat(&[p1.clone(), vec![0x08, 1, 2, 3, 4, 0x81, 0]]),
            p1.len(),
            "longer than 4 bytes",
        ),
        invalid(
            "9-byte size",
            cat(&[p1.clone(), vec![0xEC, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]]),
            p1.len(),
            "longer than 8 bytes",
        ),
        // Second header / Segment.
        invalid(
            "second EBML header",
            cat(&[p1.clone(), ok_cluster.clone(), ebml_header("matroska")]),
            at(&[&p1, &ok_cluster]),
            "second EBML header",
        ),
        invalid(
            "second EBML header ends an unknown-size cluster",
            cat(&[
                p1.clone(),
                cluster_unknown(0, std::slice::from_ref(&key)),
                ebml_header("matroska"),
            ]),
            at(&[&p1, &cluster_unknown(0, std::slice::from_ref(&key))]),
            "second EBML header",
        ),
        invalid(
            "second Segment",
            cat(&[p1.clone(), ok_cluster.clone(), head_unknown(id::SEGMENT)]),
            at(&[&p1, &ok_cluster]),
            "second Segment",
        ),
        invalid(
            "bytes after a known-size Segment",
            cat(&[
                ebml_header("matroska"),
                el(id::SEGMENT, &cat(&[info(), tracks(&[1])])),
                vec![0xEC],
            ]),
            at(&[
                &ebml_header("matroska"),
                &el(id::SEGMENT, &cat(&[info(), tracks(&[1])])),
            ]),
            "after the end of the Segment",
        ),
        // Header elements.
        invalid(
            "Info of unknown size",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                head_unknown(id::INFO),
            ]),
            segment_at + 12,
            "Info (0x1549A966) of unknown size",
        ),
        invalid(
            "Tags of unknown size",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                head_unknown(id::TAGS),
            ]),
            segment_at + 12,
            "of unknown size",
        ),
        invalid(
            "TrackEntry overruns Tracks",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                el(
                    id::TRACKS,
                    &cat(&[head(id::TRACK_ENTRY, 10), vec![0xD7, 0x81]]),
                ),
            ]),
            segment_at + 12 + 5,
            "overruns its parent",
        ),
        invalid(
            "TrackEntry without CodecID",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                el(
                    id::TRACKS,
                    &el(
                        id::TRACK_ENTRY,
                        &cat(&[
                            uint(id::TRACK_NUMBER, 1),
                            uint(id::TRACK_UID, 1),
                            uint(id::TRACK_TYPE, 1),
                        ]),
                    ),
                ),
            ]),
            segment_at + 12 + 5 + 2,
            "without CodecID",
        ),
        invalid(
            "TrackNumber declared twice",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                tracks(&[1, 1]),
            ]),
            segment_at + 12 + 5 + track_entry(1).len(),
            "declared twice",
        ),
        invalid(
            "second Tracks",
            cat(&[p1.clone(), tracks(&[1])]),
            p1.len(),
            "second Tracks",
        ),
        invalid(
            "Tracks after the first Cluster",
            cat(&[p1.clone(), ok_cluster.clone(), tracks(&[1])]),
            at(&[&p1, &ok_cluster]),
            "after the first Cluster",
        ),
        invalid(
            "Cluster before Tracks",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                info(),
                ok_cluster.clone(),
            ]),
            segment_at + 12 + info().len(),
            "Cluster before Tracks",
        ),
        invalid(
            "Cluster before Info",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                tracks(&[1]),
                ok_cluster.clone(),
            ]),
            segment_at + 12 + tracks(&[1]).len(),
            "Cluster before Info",
        ),
        exactly(
            "4 tracks",
            prologue(&[1, 2, 3, 4]),
            aws,
            SplitError::TooManyTracks { count: 4 },
            4012,
        ),
        exactly(
            "header over header_bytes_max",
            cat(&[p1.clone(), ok_cluster.clone()]),
            SplitLimits {
                header_bytes_max: p1.len() - 1,
                ..aws
            },
            SplitError::HeaderTooLarge {
                offset: (p1.len() - tracks(&[1]).len()) as u64,
                size: p1.len() as u64,
            },
            4006,
        ),
        exactly(
            "huge Info",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                head(id::INFO, (1 << 56) - 2),
            ]),
            aws,
            SplitError::HeaderTooLarge {
                offset: segment_at as u64 + 12,
                size: segment_at as u64 + 12 + 4 + 8 + (1 << 56) - 2,
            },
            4006,
        ),
        // Clusters.
        exactly(
            "huge known-size Cluster",
            cat(&[p1.clone(), head(id::CLUSTER, 1 << 50)]),
            aws,
            SplitError::FragmentTooLarge {
                offset: p1.len() as u64,
                size: (1 << 50) + 4 + 8,
            },
            4001,
        ),
        exactly(
            "huge SimpleBlock in an unknown-size Cluster",
            cat(&[
                p1.clone(),
                head_unknown(id::CLUSTER),
                timecode0.clone(),
                head(id::SIMPLE_BLOCK, 1 << 40),
            ]),
            aws,
            SplitError::FragmentTooLarge {
                offset: p1.len() as u64,
                size: (12 + timecode0.len() + head(id::SIMPLE_BLOCK, 1 << 40).len()) as u64
                    + (1 << 40),
            },
            4001,
        ),
        exactly(
            "known-size Cluster over a small fragment_bytes_max",
            cat(&[
                p1.clone(),
                cluster(0, &[key.clone(), key.clone(), key.clone()]),
            ]),
            SplitLimits {
                fragment_bytes_max: 30,
                ..aws
            },
            SplitError::FragmentTooLarge {
                offset: p1.len() as u64,
                size: cluster(0, &[key.clone(), key.clone(), key.clone()]).len() as u64,
            },
            4001,
        ),
        exactly(
            "unknown-size Cluster growing over a small fragment_bytes_max",
            cat(&[
                p1.clone(),
                cluster_unknown(0, &[key.clone(), key.clone(), key.clone()]),
            ]),
            SplitLimits {
                fragment_bytes_max: 30,
                ..aws
            },
            SplitError::FragmentTooLarge {
                offset: p1.len() as u64,
                size: (12 + timecode0.len() + 2 * key.len()) as u64,
            },
            4001,
        ),
        exactly(
            "block naming an undeclared track",
            cat(&[
                p1.clone(),
                cluster(0, &[key.clone(), simple_block(5, 1, false)]),
            ]),
            aws,
            SplitError::TrackNumberMismatch {
                offset: (p1.len() + cluster_head + timecode0.len() + key.len()) as u64,
                track: 5,
            },
            4010,
        ),
        exactly(
            "BlockGroup naming an undeclared track",
            cat(&[p1.clone(), cluster(0, &[block_group(3, 0, true)])]),
            aws,
            SplitError::TrackNumberMismatch {
                offset: (p1.len() + cluster_head + timecode0.len() + 2) as u64,
                track: 3,
            },
            4010,
        ),
        exactly(
            "cluster lacking frames for track 2",
            cat(&[prologue(&[1, 2]), cluster(0, std::slice::from_ref(&key))]),
            aws,
            SplitError::MissingTrackFrames { track: 2 },
            4011,
        ),
        exactly(
            "unknown-size cluster lacking frames, ended by finish",
            cat(&[
                prologue(&[1, 2]),
                cluster_unknown(0, &[simple_block(2, 0, true)]),
            ]),
            aws,
            SplitError::MissingTrackFrames { track: 1 },
            4011,
        ),
        invalid(
            "Cluster without a Timecode",
            cat(&[p1.clone(), el(id::CLUSTER, &[])]),
            p1.len(),
            "without a Timecode",
        ),
        invalid(
            "block before the Timecode",
            cat(&[
                p1.clone(),
                el(id::CLUSTER, &cat(&[key.clone(), timecode0.clone()])),
            ]),
            p1.len() + cluster_head,
            "before its Cluster's Timecode",
        ),
        invalid(
            "second Timecode",
            cat(&[p1.clone(), cluster(0, &[timecode0.clone(), key.clone()])]),
            p1.len() + cluster_head + timecode0.len(),
            "second Timecode",
        ),
        invalid(
            "SimpleBlock overruns its Cluster",
            cat(&[
                p1.clone(),
                head(id::CLUSTER, 6),
                timecode0.clone(),
                key.clone(),
            ]),
            p1.len() + cluster_head + timecode0.len(),
            "SimpleBlock (0xA3) overruns its Cluster",
        ),
        invalid(
            "SimpleBlock shorter than its header",
            cat(&[p1.clone(), cluster(0, &[el(id::SIMPLE_BLOCK, &[0x81, 0])])]),
            p1.len() + cluster_head + timecode0.len(),
            "shorter than its header",
        ),
        invalid(
            "BlockGroup without a Block",
            cat(&[
                p1.clone(),
                cluster(0, &[el(id::BLOCK_GROUP, &uint(id::REFERENCE_BLOCK, 1))]),
            ]),
            p1.len() + cluster_head + timecode0.len(),
            "without a Block",
        ),
        invalid(
            "Cluster inside a known-size Cluster",
            cat(&[
                p1.clone(),
                el(id::CLUSTER, &cat(&[timecode0.clone(), ok_cluster.clone()])),
            ]),
            p1.len() + cluster_head + timecode0.len(),
            "Cluster (0x1F43B675) inside a Cluster",
        ),
        invalid(
            "Cluster overruns a known-size Segment",
            cat(&[
                ebml_header("matroska"),
                head(id::SEGMENT, (info().len() + tracks(&[1]).len() + 5) as u64),
                info(),
                tracks(&[1]),
                ok_cluster.clone(),
            ]),
            segment_at + 5 + info().len() + tracks(&[1]).len(),
            "overruns its Segment",
        ),
        invalid(
            "unknown-size Cluster head straddles the Segment's end",
            cat(&[
                ebml_header("matroska"),
                head(id::SEGMENT, (info().len() + tracks(&[1]).len() + 2) as u64),
                info(),
                tracks(&[1]),
                head_unknown(id::CLUSTER),
            ]),
            segment_at + 5 + info().len() + tracks(&[1]).len(),
            "overruns its Segment",
        ),
        invalid(
            "SamplingFrequency NaN",
            cat(&[
                ebml_header("matroska"),
                head_unknown(id::SEGMENT),
                el(
                    id::TRACKS,
                    &el(
                        id::TRACK_ENTRY,
                        &el(
                            id::AUDIO,
                            &el(id::SAMPLING_FREQUENCY, &f64::NAN.to_be_bytes()),
                        ),
                    ),
                ),
            ]),
            segment_at + 12 + 5 + 2 + 2,
            "SamplingFrequency NaN",
        ),
        // Cut short.
        exactly(
            "cut inside a SimpleBlock",
            cat(&[p1.clone(), ok_cluster.clone()])[..p1.len() + ok_cluster.len() - 2].to_vec(),
            aws,
            SplitError::Truncated {
                offset: (p1.len() + cluster_head + timecode0.len()) as u64,
            },
            4006,
        ),
        exactly(
            "cut inside an element head",
            cat(&[p1.clone(), vec![0x1F, 0x43, 0xB6]]),
            aws,
            SplitError::Truncated {
                offset: p1.len() as u64,
            },
            4006,
        ),
        exactly(
            "cut between the children of a known-size Cluster",
            cat(&[
                p1.clone(),
                head(id::CLUSTER, 50),
                timecode0.clone(),
                key.clone(),
            ]),
            aws,
            SplitError::Truncated {
                offset: p1.len() as u64,
            },
            4006,
        ),
        exactly(
            "cut inside the EBML header",
            ebml_header("matroska")[..10].to_vec(),
            aws,
            SplitError::Truncated { offset: 0 },
            4006,
        ),
        exactly(
            "cut inside a known-size Segment",
            cat(&[ebml_header("matroska"), head(id::SEGMENT, 1000), info()]),
            aws,
            SplitError::Truncated {
                offset: segment_at as u64,
            },
            4006,
        ),
    ];
    for case in &cases {
        check(case);
    }
}
