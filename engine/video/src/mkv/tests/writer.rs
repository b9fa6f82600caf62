//! A tiny EBML writer for the tests: just enough to build Matroska streams
//! (well-formed or broken on purpose) element by element. Test-only.

use crate::mkv::ebml::id;

/// An element ID's bytes (its length marker is part of the value).
pub fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    bytes[skip..].to_vec()
}

/// A size field: the shortest vint whose value bits are not all ones.
pub fn size_bytes(size: u64) -> Vec<u8> {
    let len = (1..=8)
        .find(|&len| size < (1u64 << (7 * len)) - 1)
        .expect("size below 2^56 - 1");
    let marked = size | (1u64 << (7 * len));
    marked.to_be_bytes()[8 - len..].to_vec()
}

/// An element head with a declared size (the body may be given apart, or not at all).
pub fn head(id: u32, size: u64) -> Vec<u8> {
    cat(&[id_bytes(id), size_bytes(size)])
}

/// An element head with the unknown size (8-byte all-ones size field).
pub fn head_unknown(id: u32) -> Vec<u8> {
    cat(&[
        id_bytes(id),
        vec![0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    ])
}

/// A whole element.
pub fn el(id: u32, body: &[u8]) -> Vec<u8> {
    cat(&[head(id, body.len() as u64), body.to_vec()])
}

/// An unsigned integer element (shortest big-endian form).
pub fn uint(id: u32, value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    el(id, &bytes[skip..])
}

pub fn string(id: u32, value: &str) -> Vec<u8> {
    el(id, value.as_bytes())
}

pub fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

pub fn ebml_header(doc_type: &str) -> Vec<u8> {
    el(
        id::EBML,
        &cat(&[
            uint(id::EBML_READ_VERSION, 1),
            string(id::DOC_TYPE, doc_type),
        ]),
    )
}

pub fn info() -> Vec<u8> {
    el(id::INFO, &uint(id::TIMECODE_SCALE, 1_000_000))
}

/// A TrackEntry: video `V_TEST` with a 2-byte CodecPrivate.
pub fn track_entry(number: u64) -> Vec<u8> {
    el(
        id::TRACK_ENTRY,
        &cat(&[
            uint(id::TRACK_NUMBER, number),
            uint(id::TRACK_UID, 100 + number),
            uint(id::TRACK_TYPE, 1),
            string(id::CODEC_ID, "V_TEST"),
            el(id::CODEC_PRIVATE, &[0xC0, 0xDE]),
            el(
                id::VIDEO,
                &cat(&[uint(id::PIXEL_WIDTH, 64), uint(id::PIXEL_HEIGHT, 48)]),
            ),
        ]),
    )
}

pub fn tracks(numbers: &[u64]) -> Vec<u8> {
    el(
        id::TRACKS,
        &numbers
            .iter()
            .map(|&n| track_entry(n))
            .collect::<Vec<_>>()
            .concat(),
    )
}

/// EBML header, unknown-size Segment head, Info, Tracks declaring `numbers`.
pub fn prologue(numbers: &[u64]) -> Vec<u8> {
    cat(&[
        ebml_header("matroska"),
        head_unknown(id::SEGMENT),
        info(),
        tracks(numbers),
    ])
}

/// A SimpleBlock with a 3-byte frame.
pub fn simple_block(track: u64, relative: i16, key: bool) -> Vec<u8> {
    let flags = if key { 0x80 } else { 0x00 };
    let body = cat(&[
        size_bytes(track),
        relative.to_be_bytes().to_vec(),
        vec![flags, 1, 2, 3],
    ]);
    el(id::SIMPLE_BLOCK, &body)
}

/// A BlockGroup with a Block, and a ReferenceBlock when not a key frame.
pub fn block_group(track: u64, relative: i16, key: bool) -> Vec<u8> {
    let block = el(
        id::BLOCK,
        &cat(&[
            size_bytes(track),
            relative.to_be_bytes().to_vec(),
            vec![0, 1, 2, 3],
        ]),
    );
    let reference = if key {
        vec![]
    } else {
        uint(id::REFERENCE_BLOCK, 1)
    };
    el(id::BLOCK_GROUP, &cat(&[block, reference]))
}

/// A known-size Cluster: Timecode, then the children given.
pub fn cluster(timecode: u64, children: &[Vec<u8>]) -> Vec<u8> {
    el(
        id::CLUSTER,
        &cat(&[vec![uint(id::TIMECODE, timecode)], children.to_vec()].concat()),
    )
}

/// An unknown-size Cluster: Timecode, then the children given.
pub fn cluster_unknown(timecode: u64, children: &[Vec<u8>]) -> Vec<u8> {
    cat(&[
        vec![head_unknown(id::CLUSTER), uint(id::TIMECODE, timecode)],
        children.to_vec(),
    ]
    .concat())
}

#[test]
fn writer_matches_hand_encoded_bytes() {
    assert_eq!(size_bytes(0), [0x80]);
    assert_eq!(size_bytes(126), [0xFE]);
    assert_eq!(size_bytes(127), [0x40, 0x7F]); // 0xFF would be the unknown size
    assert_eq!(head(id::CLUSTER, 5), [0x1F, 0x43, 0xB6, 0x75, 0x85]);
    assert_eq!(uint(id::TIMECODE, 1000), [0xE7, 0x82, 0x03, 0xE8]);
    assert_eq!(uint(id::TIMECODE, 0), [0xE7, 0x81, 0x00]);
    assert_eq!(
        simple_block(1, -2, true),
        [0xA3, 0x87, 0x81, 0xFF, 0xFE, 0x80, 1, 2, 3]
    );
}
