//! A Matroska track's codec as an MP4 sample entry: CodecPrivate checked
//! (structure only: lengths and counts, never the parameter sets' contents)
//! and boxed as is. The one place that knows codec IDs.
//!
//! ```text
//! V_MPEG4/ISO/AVC  : CodecPrivate = AVCDecoderConfigurationRecord (14496-15 5.3.3)
//!   1 · profile · compat · level · 111111 lenSizeMinus1(2) · 111 numSPS(5)
//!   · (len u16 · SPS)* · numPPS · (len u16 · PPS)* · [high-profile extension]
//!   → avc1 (VisualSampleEntry) { avcC = CodecPrivate }
//! V_MPEGH/ISO/HEVC : CodecPrivate = HEVCDecoderConfigurationRecord (14496-15 8.3.3)
//!   22 bytes of profile/level/format fields (byte 21: ... lenSizeMinus1(2))
//!   · numArrays · (type · numNalus u16 · (len u16 · NAL)*)*
//!   → hvc1 (VisualSampleEntry) { hvcC = CodecPrivate }
//! A_AAC            : CodecPrivate = AudioSpecificConfig (14496-3 1.6.2.1)
//!   objectType(5, 31 → 32 + 6 more) · freqIndex(4, 15 → 24-bit rate) · channels(4) · ...
//!   → mp4a (AudioSampleEntry) { esds { ES_Descriptor { DecoderConfigDescriptor
//!     { DecoderSpecificInfo = CodecPrivate } SLConfigDescriptor } } }
//! ```

use super::boxes::Writer;
use super::{CODEC_PRIVATE_LEN_MAX, Mp4Error, VIDEO_TIMESCALE};
use crate::mkv::Track;

pub(super) const CODEC_AVC: &str = "V_MPEG4/ISO/AVC";
pub(super) const CODEC_HEVC: &str = "V_MPEGH/ISO/HEVC";
pub(super) const CODEC_AAC: &str = "A_AAC";

/// Samples per AAC frame (AAC-LC and the core of HE-AAC).
const AAC_FRAME_SAMPLES: u32 = 1024;
/// A lone video frame's duration when nothing else tells it: 1/30 s.
const VIDEO_DURATION_FALLBACK: u32 = VIDEO_TIMESCALE / 30;
/// Highest audio sampling frequency taken from the track as a timescale
/// (AAC's highest rate is 96 kHz; this leaves room, and keeps it sane).
const AUDIO_RATE_MAX: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Video,
    Audio,
}

/// Everything the writers need to know about one track's codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub kind: Kind,
    pub timescale: u32,
    /// tkhd's width and height (0 for audio, or when the track has none).
    pub width: u16,
    pub height: u16,
    /// A sample's duration when nothing else says it (timescale units).
    pub duration_fallback: u32,
    /// The whole avc1/hvc1/mp4a box for stsd.
    pub sample_entry: Vec<u8>,
}

/// Checks `track`'s codec and CodecPrivate and builds its sample entry.
pub(super) fn entry(track: &Track) -> Result<Entry, Mp4Error> {
    let codec_id = track.codec_id.as_str();
    if ![CODEC_AVC, CODEC_HEVC, CODEC_AAC].contains(&codec_id) {
        return Err(Mp4Error::UnsupportedCodec(track.codec_id.clone()));
    }
    let private = match &track.codec_private {
        Some(private) if !private.is_empty() => private.as_ref(),
        _ => return Err(Mp4Error::MissingCodecPrivate(track.number)),
    };
    let invalid = || Mp4Error::InvalidCodecPrivate(track.number);
    if private.len() > CODEC_PRIVATE_LEN_MAX {
        return Err(invalid());
    }
    let mut w = Writer::new();
    if codec_id == CODEC_AAC {
        let config = audio_specific_config(private).ok_or_else(invalid)?;
        let timescale = match track.sampling_frequency {
            Some(rate) if (1.0..=AUDIO_RATE_MAX).contains(&rate) => rate.round() as u32,
            _ => config.rate,
        };
        let channels = track
            .channels
            .and_then(|c| u16::try_from(c).ok())
            .filter(|&c| c > 0)
            .unwrap_or(u16::from(config.channels));
        mp4a(&mut w, channels, timescale, private);
        return Ok(Entry {
            kind: Kind::Audio,
            timescale,
            width: 0,
            height: 0,
            duration_fallback: AAC_FRAME_SAMPLES,
            sample_entry: w.buf,
        });
    }
    let (sample_entry, config_box) = if codec_id == CODEC_AVC {
        check_avcc(private).ok_or_else(invalid)?;
        (b"avc1", b"avcC")
    } else {
        check_hvcc(private).ok_or_else(invalid)?;
        (b"hvc1", b"hvcC")
    };
    // Absent (or absurd) sizes are written as 0: decoders read the SPS.
    let width = track
        .pixel_width
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0);
    let height = track
        .pixel_height
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0);
    w.boxed(sample_entry, |w| {
        w.zeros(6); // reserved
        w.u16(1); // data_reference_index
        w.zeros(16); // pre_defined, reserved, pre_defined[3]
        w.u16(width);
        w.u16(height);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0); // reserved
        w.u16(1); // frame_count
        w.zeros(32); // compressorname (empty)
        w.u16(0x0018); // depth
        w.u16(0xFFFF); // pre_defined = -1
        w.boxed(config_box, |w| w.bytes(private));
    });
    Ok(Entry {
        kind: Kind::Video,
        timescale: VIDEO_TIMESCALE,
        width,
        height,
        duration_fallback: VIDEO_DURATION_FALLBACK,
        sample_entry: w.buf,
    })
}

/// A big-endian u16 at `at`.
fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    let pair = b.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([pair[0], pair[1]])))
}

/// Skips `count` (u16 length · bytes) units from `at`; where they end.
fn skip_units(b: &[u8], mut at: usize, count: usize) -> Option<usize> {
    for _ in 0..count {
        let len = u16_at(b, at)?;
        at = at + 2 + len;
        if at > b.len() {
            return None;
        }
    }
    Some(at)
}

/// Length fields of 1, 2 or 4 bytes (lengthSizeMinusOne 2 is not allowed).
fn length_size_ok(byte: u8) -> bool {
    byte & 0x3 != 2
}

/// An AVCDecoderConfigurationRecord: version 1, at least one SPS, and
/// every SPS and PPS within the record.
fn check_avcc(b: &[u8]) -> Option<()> {
    if *b.first()? != 1 || !length_size_ok(*b.get(4)?) {
        return None;
    }
    let sps_count = usize::from(b.get(5)? & 0x1F);
    if sps_count == 0 {
        return None;
    }
    let at = skip_units(b, 6, sps_count)?;
    let pps_count = usize::from(*b.get(at)?);
    skip_units(b, at + 1, pps_count)?;
    Some(())
}

/// The fixed part of an HEVCDecoderConfigurationRecord before numOfArrays.
const HVCC_FIXED_LEN: usize = 22;

/// An HEVCDecoderConfigurationRecord: version 1 and every NAL unit array
/// within the record.
fn check_hvcc(b: &[u8]) -> Option<()> {
    if *b.first()? != 1 || !length_size_ok(*b.get(HVCC_FIXED_LEN - 1)?) {
        return None;
    }
    let arrays = usize::from(*b.get(HVCC_FIXED_LEN)?);
    let mut at = HVCC_FIXED_LEN + 1;
    for _ in 0..arrays {
        let nalus = u16_at(b, at + 1)?;
        at = skip_units(b, at + 3, nalus)?;
    }
    Some(())
}

/// What an AudioSpecificConfig says that the sample entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AudioConfig {
    pub object_type: u8,
    pub rate: u32,
    pub channels: u8,
}

/// AAC's sampling frequency table (14496-3 1.6.3.4); 13 and 14 are reserved.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Reads an AudioSpecificConfig's object type, rate and channels.
pub(super) fn audio_specific_config(b: &[u8]) -> Option<AudioConfig> {
    let mut bits = Bits { b, at: 0 };
    let mut object_type = bits.read(5)?;
    if object_type == 31 {
        object_type = 32 + bits.read(6)?;
    }
    if object_type == 0 {
        return None;
    }
    let rate = match bits.read(4)? {
        15 => bits.read(24)?,
        index => *AAC_RATES.get(index as usize)?,
    };
    let channels = bits.read(4)?;
    if rate == 0 {
        return None;
    }
    Some(AudioConfig {
        object_type: object_type as u8,
        rate,
        channels: channels as u8,
    })
}

/// A big-endian bit reader.
struct Bits<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.b.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }
}

/// ES descriptor tags (14496-1 7.2.2.1) and the values mp4a needs.
const TAG_ES: u8 = 0x03;
const TAG_DECODER_CONFIG: u8 = 0x04;
const TAG_DECODER_SPECIFIC: u8 = 0x05;
const TAG_SL_CONFIG: u8 = 0x06;
/// objectTypeIndication: Audio ISO/IEC 14496-3.
const OBJECT_TYPE_AAC: u8 = 0x40;
/// streamType 5 (audio) << 2 | upStream 0 << 1 | reserved 1.
const STREAM_TYPE_AUDIO: u8 = 0x15;
/// SLConfigDescriptor predefined 2: reserved for MP4 files.
const SL_PREDEFINED_MP4: u8 = 0x02;

/// mp4a (AudioSampleEntry) { esds }.
fn mp4a(w: &mut Writer, channels: u16, rate: u32, config: &[u8]) {
    w.boxed(b"mp4a", |w| {
        w.zeros(6); // reserved
        w.u16(1); // data_reference_index
        w.zeros(8); // reserved
        w.u16(channels);
        w.u16(16); // samplesize
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        // 16.16; rates above 65535 do not fit (decoders read the ASC).
        w.u32(u16::try_from(rate).map_or(0, |r| u32::from(r) << 16));
        w.full(b"esds", 0, 0, |w| {
            let mut decoder_config = Writer::new();
            decoder_config.u8(OBJECT_TYPE_AAC);
            decoder_config.u8(STREAM_TYPE_AUDIO);
            decoder_config.u24(0); // bufferSizeDB
            decoder_config.u32(0); // maxBitrate
            decoder_config.u32(0); // avgBitrate
            descriptor(&mut decoder_config, TAG_DECODER_SPECIFIC, config);
            let mut es = Writer::new();
            es.u16(0); // ES_ID
            es.u8(0); // no dependsOn, URL, OCR
            descriptor(&mut es, TAG_DECODER_CONFIG, &decoder_config.buf);
            descriptor(&mut es, TAG_SL_CONFIG, &[SL_PREDEFINED_MP4]);
            descriptor(w, TAG_ES, &es.buf);
        });
    });
}

/// A descriptor: tag · size (7 bits a byte, high bit = more follow) · body.
/// Bodies are below 2^28 bytes (`CODEC_PRIVATE_LEN_MAX`): at most 4 bytes.
pub(super) fn descriptor(w: &mut Writer, tag: u8, body: &[u8]) {
    w.u8(tag);
    let len = body.len();
    assert!(
        len < 1 << 28,
        "CODEC_PRIVATE_LEN_MAX bounds descriptor sizes"
    );
    let groups = (1..4).rev().find(|&i| len >> (7 * i) != 0).unwrap_or(0);
    for i in (1..=groups).rev() {
        w.u8(0x80 | ((len >> (7 * i)) & 0x7F) as u8);
    }
    w.u8((len & 0x7F) as u8);
    w.bytes(body);
}

/// Every track's entry, in order; 1 ..= `TRACK_COUNT_MAX` tracks.
pub(super) fn entries(tracks: &[Track]) -> Result<Vec<Entry>, Mp4Error> {
    if tracks.is_empty() {
        return Err(Mp4Error::NoFrames);
    }
    if tracks.len() > super::TRACK_COUNT_MAX {
        return Err(Mp4Error::TooLarge("tracks"));
    }
    tracks.iter().map(entry).collect()
}
