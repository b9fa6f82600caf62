//! Unit tests of the MP4 writer: golden bytes for small boxes and for a
//! whole tiny media segment, the box trees, sample timing, and one table of
//! refusals. Also the helpers `probe_tests` shares: tracks, blocks and a
//! box walker.

use super::boxes::{self, Writer};
use super::codec::{self, AudioConfig};
use super::fragmented::{self, init_segment, media_segment, track_starts};
use super::samples::{self, Clock};
use super::whole::whole_mp4_with;
use super::{Mp4Error, whole_mp4};
use crate::mkv::{Block, Track};

/// A minimal valid avcC: version 1, Baseline 3.0, 4-byte lengths, one
/// 4-byte SPS, one 2-byte PPS (contents are not checked).
pub(super) const AVCC: &[u8] = &[
    0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x42, 0xC0, 0x1E, 0x01, 0x00, 0x02, 0x68,
    0xCE,
];
/// AAC-LC, 16 kHz (index 8), mono: 00010 1000 0001 000.
pub(super) const ASC_16K_MONO: &[u8] = &[0x14, 0x08];

pub(super) fn track(number: u64, codec_id: &str, codec_private: Option<&[u8]>) -> Track {
    let audio = codec_id.starts_with("A_");
    Track {
        number,
        uid: number,
        track_type: if audio { 2 } else { 1 },
        codec_id: codec_id.to_string(),
        codec_private: codec_private.map(bytes::Bytes::copy_from_slice),
        pixel_width: (!audio).then_some(160),
        pixel_height: (!audio).then_some(120),
        sampling_frequency: audio.then_some(16000.0),
        channels: audio.then_some(1),
    }
}

pub(super) fn block(track: u64, time: i64, key: bool, data: &[u8]) -> Block {
    Block {
        track,
        time,
        key,
        duration: None,
        data: bytes::Bytes::copy_from_slice(data),
    }
}

/// Every box of an MP4, depth first: (path like "moov/trak/tkhd", body).
/// Descends into containers and into the sample entries it knows.
pub(super) fn boxes_of(bytes: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    walk(bytes, "", &mut out);
    out
}

fn walk<'a>(mut bytes: &'a [u8], prefix: &str, out: &mut Vec<(String, &'a [u8])>) {
    while bytes.len() >= 8 {
        let size32 = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[4..8]).to_string();
        let (head, size) = match size32 {
            1 => (
                16,
                u64::from_be_bytes(bytes[8..16].try_into().unwrap()) as usize,
            ),
            _ => (8, size32),
        };
        assert!(
            size >= head && size <= bytes.len(),
            "{prefix}{kind}: size {size}"
        );
        let body = &bytes[head..size];
        let path = format!("{prefix}{kind}");
        // Bytes before the children: full-box head + entry count, or the
        // sample entry's fixed fields.
        let skip = match kind.as_str() {
            "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf"
            | "edts" => Some(0),
            "stsd" | "dref" => Some(8),
            "avc1" | "hvc1" => Some(78),
            "mp4a" => Some(28),
            _ => None,
        };
        out.push((path.clone(), body));
        if let Some(skip) = skip {
            walk(&body[skip..], &format!("{path}/"), out);
        }
        bytes = &bytes[size..];
    }
    assert!(
        bytes.is_empty(),
        "{} bytes after the last box under {prefix:?}",
        bytes.len()
    );
}

pub(super) fn paths(bytes: &[u8]) -> Vec<String> {
    boxes_of(bytes).into_iter().map(|(path, _)| path).collect()
}

pub(super) fn body<'a>(bytes: &'a [u8], path: &str) -> &'a [u8] {
    boxes_of(bytes)
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .1
}

fn written(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.buf
}

/// Hex with spaces and `'abcd'` four-character codes, for golden bytes.
fn hex(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        if let Some(code) = word.strip_prefix('\'') {
            out.extend_from_slice(code.trim_end_matches('\'').as_bytes());
        } else {
            assert!(word.len() % 2 == 0, "{word}");
            for i in (0..word.len()).step_by(2) {
                out.push(u8::from_str_radix(&word[i..i + 2], 16).unwrap());
            }
        }
    }
    out
}

#[test]
fn golden_small_boxes() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "mfhd",
            written(|w| fragmented::mfhd(w, 7)),
            "00000010 'mfhd' 00 000000 00000007",
        ),
        (
            "tfdt",
            written(|w| fragmented::tfdt(w, 0x0102_0304_0506_0708)),
            "00000014 'tfdt' 01 000000 0102030405060708",
        ),
        (
            "ftyp",
            written(|w| boxes::ftyp(w, b"iso6", 0, &[b"iso6", b"cmfc"])),
            "00000018 'ftyp' 'iso6' 00000000 'iso6' 'cmfc'",
        ),
        ("mdat", boxes::mdat_head(3), "0000000B 'mdat'"),
        (
            "mdat 4 GiB",
            boxes::mdat_head(u64::from(u32::MAX)),
            "00000001 'mdat' 000000010000000F",
        ),
        (
            "descriptor 2",
            written(|w| codec::descriptor(w, 5, &[0x14, 0x08])),
            "05 02 1408",
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, hex(want), "{name}");
    }
    // A 200-byte descriptor body: its size takes two 7-bit groups.
    let long = written(|w| codec::descriptor(w, 4, &[0; 200]));
    assert_eq!(long[..3], [0x04, 0x81, 0x48]);
    assert_eq!(long.len(), 3 + 200);
}

/// One AAC track, two frames: the whole media segment, byte for byte.
#[test]
fn golden_media_segment() {
    let tracks = [track(2, "A_AAC", Some(ASC_16K_MONO))];
    let blocks = [
        block(2, 1000, true, &[0xAA, 0xBB]),
        block(2, 1064, true, &[0xCC]),
    ];
    let got = media_segment(5, &tracks, &blocks, 1_000_000, &[]).unwrap();
    let want = hex("00000078 'moof' \
           00000010 'mfhd' 00000000 00000005 \
           00000060 'traf' \
             00000010 'tfhd' 00020000 00000001 \
             00000014 'tfdt' 01000000 0000000000003E80 \
             00000034 'trun' 01000F01 00000002 00000080 \
               00000400 00000002 02000000 00000000 \
               00000400 00000001 02000000 00000000 \
         0000000B 'mdat' AABB CC");
    assert_eq!(got, want);
}

#[test]
fn init_segment_box_tree() {
    let tracks = [
        track(1, "V_MPEG4/ISO/AVC", Some(AVCC)),
        track(2, "A_AAC", Some(ASC_16K_MONO)),
    ];
    let init = init_segment(&tracks).unwrap();
    let stbl = |t: &str, entry: &str, config: &str| -> Vec<String> {
        let minf = "moov/trak/mdia/minf".to_string();
        let mut v = vec![
            "moov/trak".to_string(),
            "moov/trak/tkhd".into(),
            "moov/trak/mdia".into(),
            "moov/trak/mdia/mdhd".into(),
            "moov/trak/mdia/hdlr".into(),
            minf.clone(),
            format!("{minf}/{t}"),
            format!("{minf}/dinf"),
            format!("{minf}/dinf/dref"),
            format!("{minf}/dinf/dref/url "),
            format!("{minf}/stbl"),
            format!("{minf}/stbl/stsd"),
            format!("{minf}/stbl/stsd/{entry}"),
            format!("{minf}/stbl/stsd/{entry}/{config}"),
        ];
        v.extend(["stts", "stsc", "stsz", "stco"].map(|b| format!("{minf}/stbl/{b}")));
        v
    };
    let mut want = vec!["ftyp".to_string(), "moov".into(), "moov/mvhd".into()];
    want.extend(stbl("vmhd", "avc1", "avcC"));
    want.extend(stbl("smhd", "mp4a", "esds"));
    want.extend(["moov/mvex", "moov/mvex/trex", "moov/mvex/trex"].map(String::from));
    assert_eq!(paths(&init), want);
    // avcC is the CodecPrivate as is; tkhd carries 160x120 (16.16).
    assert_eq!(body(&init, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC"), AVCC);
    let tkhd = body(&init, "moov/trak/tkhd");
    assert_eq!(tkhd[tkhd.len() - 8..], hex("00A00000 00780000"));
    // mdhd: 90 kHz for video (timescale after version/flags and two times).
    assert_eq!(
        body(&init, "moov/trak/mdia/mdhd")[12..16],
        90_000u32.to_be_bytes()
    );
    // esds: ES_Descriptor{ ES_ID 0, DecoderConfig{ 0x40 audio, 0x15, ...,
    // DecoderSpecificInfo = ASC }, SLConfig{ 2 } }.
    assert_eq!(
        body(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a/esds"),
        hex("00000000 03 19 0000 00 04 11 40 15 000000 00000000 00000000 05 02 1408 06 01 02")
    );
}

#[test]
fn whole_mp4_box_tree_and_offsets() {
    let tracks = [
        track(1, "V_MPEG4/ISO/AVC", Some(AVCC)),
        track(2, "A_AAC", Some(ASC_16K_MONO)),
    ];
    let blocks = [
        block(2, 0, true, b"a0"),
        block(1, 64, true, b"v0v0"),
        block(1, 164, false, b"v1"),
        block(2, 64, true, b"a1"),
        block(2, 128, true, b"a2"),
    ];
    for (limit, offsets) in [(u64::from(u32::MAX), "stco"), (0, "co64")] {
        let mp4 = whole_mp4_with(&tracks, &blocks, 1_000_000, limit).unwrap();
        let all = paths(&mp4);
        assert_eq!(
            all.iter().filter(|p| !p.contains('/')).collect::<Vec<_>>(),
            ["ftyp", "moov", "mdat"]
        );
        assert!(
            all.contains(&format!("moov/trak/mdia/minf/stbl/{offsets}")),
            "{all:?}"
        );
        // Video starts 64 ms after the audio: an empty edit, then media time 0.
        assert!(all.contains(&"moov/trak/edts/elst".to_string()));
        assert_eq!(
            body(&mp4, "moov/trak/edts/elst"),
            hex("00000000 00000002 00000040 FFFFFFFF 00010000 000000C8 00000000 00010000")
        );
        // mdat holds the blocks in input order; each track's chunks point at its runs.
        assert!(mp4.ends_with(b"a0v0v0v1a1a2"));
        let mdat_at = (mp4.len() - 12) as u64;
        let boxes = boxes_of(&mp4);
        let tables: Vec<&[u8]> = boxes
            .iter()
            .filter(|(p, _)| p.ends_with(offsets))
            .map(|(_, b)| *b)
            .collect();
        let chunk_offsets = |b: &[u8]| -> Vec<u64> {
            let n = u32::from_be_bytes(b[4..8].try_into().unwrap()) as usize;
            (0..n)
                .map(|i| match offsets {
                    "co64" => u64::from_be_bytes(b[8 + 8 * i..16 + 8 * i].try_into().unwrap()),
                    _ => u64::from(u32::from_be_bytes(
                        b[8 + 4 * i..12 + 4 * i].try_into().unwrap(),
                    )),
                })
                .collect()
        };
        assert_eq!(chunk_offsets(tables[0]), [mdat_at + 2]);
        assert_eq!(chunk_offsets(tables[1]), [mdat_at, mdat_at + 8]);
        // Video: one non-sync sample, so stss lists sample 1 only;
        // stsc: one chunk of 2; stts: 100 ms twice (the last repeats it).
        let stbl = "moov/trak/mdia/minf/stbl";
        assert_eq!(
            body(&mp4, &format!("{stbl}/stss")),
            hex("00000000 00000001 00000001")
        );
        assert_eq!(
            body(&mp4, &format!("{stbl}/stts")),
            hex("00000000 00000001 00000002 00002328")
        );
        assert_eq!(
            body(&mp4, &format!("{stbl}/stsc")),
            hex("00000000 00000001 00000001 00000002 00000001")
        );
        assert_eq!(
            body(&mp4, &format!("{stbl}/stsz")),
            hex("00000000 00000000 00000002 00000004 00000002")
        );
    }
}

/// (PTS in ms, BlockDuration) in decode order → (DTS, duration, offset) at 90 kHz.
#[test]
fn sample_timing() {
    type Row = (i64, Option<u64>);
    let check = |blocks: &[Row], next: Option<i64>, want: &[(i64, u32, i32)]| {
        let blocks: Vec<Block> = blocks
            .iter()
            .map(|&(time, duration)| Block {
                duration,
                ..block(1, time, true, b"x")
            })
            .collect();
        let clock = Clock {
            track: 1,
            timecode_scale_ns: 1_000_000,
            timescale: 90_000,
        };
        let got: Vec<(i64, u32, i32)> = samples::track_samples(&blocks, clock, next, 3000)
            .unwrap()
            .iter()
            .map(|s| (s.dts, s.duration, s.composition_offset))
            .collect();
        assert_eq!(got, want, "{blocks:?} next {next:?}");
    };
    // Last duration: the previous one, the hint, BlockDuration, the fallback.
    check(
        &[(0, None), (100, None)],
        None,
        &[(0, 9000, 0), (9000, 9000, 0)],
    );
    check(
        &[(0, None), (100, None)],
        Some(140),
        &[(0, 9000, 0), (9000, 3600, 0)],
    );
    check(
        &[(0, None), (100, Some(20))],
        None,
        &[(0, 9000, 0), (9000, 1800, 0)],
    );
    check(
        &[(0, None), (100, Some(20))],
        Some(150),
        &[(0, 9000, 0), (9000, 4500, 0)],
    );
    check(&[(50, None)], None, &[(4500, 3000, 0)]);
    check(&[(50, None)], Some(50), &[(4500, 3000, 0)]); // a hint not after it: ignored
    // Reordered (I P B B): decode times are the sorted presentation times.
    check(
        &[(0, None), (300, None), (100, None), (200, None)],
        Some(400),
        &[
            (0, 9000, 0),
            (9000, 9000, 18000),
            (18000, 9000, -9000),
            (27000, 9000, -9000),
        ],
    );
    // Negative and odd times floor the same way everywhere.
    check(
        &[(-1, None), (1, None)],
        None,
        &[(-90, 180, 0), (90, 180, 0)],
    );
}

#[test]
fn audio_specific_config() {
    type Want = Option<(u8, u32, u8)>;
    let cases: &[(&[u8], Want)] = &[
        (ASC_16K_MONO, Some((2, 16000, 1))),
        (&[0x11, 0x90], Some((2, 48000, 2))),
        (&[0x12, 0x10, 0x56, 0xE5, 0x00], Some((2, 44100, 2))),
        (&[0xF8, 0x08, 0x00], Some((32, 44100, 0))), // escape: 32 + 0, index 4
        (&[0x17, 0x80, 0x01, 0xF4, 0x10], Some((2, 1000, 2))), // explicit 24-bit rate
        (&[0x14], None),
        (&[0x00, 0x08], None),       // object type 0
        (&[0x16, 0x88], None),       // rate index 13: reserved
        (&[0x17, 0x80, 0x00], None), // explicit rate cut short
    ];
    for (bytes, want) in cases {
        let got = codec::audio_specific_config(bytes)
            .map(|c: AudioConfig| (c.object_type, c.rate, c.channels));
        assert_eq!(got, *want, "{bytes:02X?}");
    }
}

/// Every refusal, through the public functions.
#[test]
fn refusals() {
    let avc = |cpd: Option<&[u8]>| track(1, "V_MPEG4/ISO/AVC", cpd);
    let hevc = |cpd: Option<&[u8]>| track(1, "V_MPEGH/ISO/HEVC", cpd);
    let aac = |cpd: Option<&[u8]>| track(1, "A_AAC", cpd);
    let mut hvcc = vec![0u8; 23];
    hvcc[0] = 1;
    hvcc[21] = 0x03;
    hvcc[22] = 1; // one array, cut short
    let avcc_two_byte = [&AVCC[..4], &[0xFE], &AVCC[5..]].concat();
    let invalid = Mp4Error::InvalidCodecPrivate(1);
    let codec_cases: Vec<(Track, Mp4Error)> = vec![
        (
            track(1, "V_VP9", Some(b"x")),
            Mp4Error::UnsupportedCodec("V_VP9".into()),
        ),
        (
            track(1, "A_OPUS", Some(b"x")),
            Mp4Error::UnsupportedCodec("A_OPUS".into()),
        ),
        (avc(None), Mp4Error::MissingCodecPrivate(1)),
        (avc(Some(&[])), Mp4Error::MissingCodecPrivate(1)),
        (aac(None), Mp4Error::MissingCodecPrivate(1)),
        (hevc(None), Mp4Error::MissingCodecPrivate(1)),
        (avc(Some(&AVCC[..AVCC.len() - 1])), invalid.clone()), // PPS cut short
        (avc(Some(&AVCC[..6])), invalid.clone()),              // SPS missing
        (avc(Some(&[&[0x00], &AVCC[1..]].concat())), invalid.clone()), // version 0
        (avc(Some(&[&AVCC[..5], &[0xE0]].concat())), invalid.clone()), // no SPS
        (avc(Some(&avcc_two_byte)), invalid.clone()),          // 3-byte lengths
        (hevc(Some(&hvcc)), invalid.clone()),
        (hevc(Some(&hvcc[..20])), invalid.clone()),
        (aac(Some(&[0x14])), invalid.clone()),
        (
            aac(Some(&vec![0x14; super::CODEC_PRIVATE_LEN_MAX + 1])),
            invalid.clone(),
        ),
    ];
    for (track, want) in codec_cases {
        assert_eq!(
            init_segment(std::slice::from_ref(&track)),
            Err(want.clone()),
            "{track:?}"
        );
        assert_eq!(super::timescale(&track), Err(want.clone()));
        let blocks = [block(1, 0, true, b"x")];
        assert_eq!(
            media_segment(1, std::slice::from_ref(&track), &blocks, 1_000_000, &[]),
            Err(want.clone())
        );
        assert_eq!(whole_mp4(&[track], &blocks, 1_000_000), Err(want));
    }
    let tracks = [aac(Some(ASC_16K_MONO))];
    let one = [block(1, 0, true, b"x")];
    let stranger = [block(1, 0, true, b"x"), block(9, 0, true, b"y")];
    let media = |blocks: &[Block], scale: u64| media_segment(1, &tracks, blocks, scale, &[]);
    assert_eq!(media(&stranger, 1_000_000), Err(Mp4Error::UnknownTrack(9)));
    assert_eq!(
        whole_mp4(&tracks, &stranger, 1_000_000),
        Err(Mp4Error::UnknownTrack(9))
    );
    assert_eq!(media(&[], 1_000_000), Err(Mp4Error::NoFrames));
    assert_eq!(whole_mp4(&tracks, &[], 1_000_000), Err(Mp4Error::NoFrames));
    assert_eq!(init_segment(&[]), Err(Mp4Error::NoFrames));
    let out_of_range = Err(Mp4Error::TimeOutOfRange { track: 1 });
    assert_eq!(media(&one, 0), out_of_range);
    assert_eq!(media(&[block(1, -1, true, b"x")], 1_000_000), out_of_range);
    assert_eq!(
        media(&[block(1, i64::MAX, true, b"x")], u64::MAX),
        out_of_range
    );
    let many: Vec<Track> = (1..=17)
        .map(|n| track(n, "A_AAC", Some(ASC_16K_MONO)))
        .collect();
    assert_eq!(init_segment(&many), Err(Mp4Error::TooLarge("tracks")));
    // A negative time is fine in a whole MP4: times count from the clip start.
    assert!(whole_mp4(&tracks, &[block(1, -5, true, b"x")], 1_000_000).is_ok());
    assert_eq!(
        Mp4Error::InvalidCodecPrivate(1).aws_exception(),
        Some("InvalidCodecPrivateDataException")
    );
}

#[test]
fn track_starts_are_each_tracks_earliest_time() {
    let blocks = [
        block(2, 5, true, b""),
        block(1, 9, true, b""),
        block(1, 7, false, b""),
        block(2, 6, true, b""),
    ];
    assert_eq!(track_starts(&blocks), [(2, 5), (1, 7)]);
    assert_eq!(track_starts(&[]), []);
}
