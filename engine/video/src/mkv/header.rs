//! The header the splitter keeps until the first Cluster: the EBML header
//! (is this Matroska?), Info (TimecodeScale) and Tracks (the TrackEntry
//! list), held as received within `header_bytes_max`, each read once
//! complete, then assembled into the `Header` event.
//!
//! ```text
//! EBML   { EBMLReadVersion (must be 1) · DocType "matroska" | "webm" · ... }
//! Info   { TimecodeScale (ns per tick, default 1_000_000, non-zero) · ... }
//! Tracks { TrackEntry { TrackNumber · TrackUID · TrackType · CodecID ·
//!          CodecPrivate? · Video { PixelWidth PixelHeight }? ·
//!          Audio { SamplingFrequency Channels }? · ... } ... }
//! Header : EBML · 18 53 80 67 01 FF FF FF FF FF FF FF · Info · Tracks
//! ```
//! The readers get an element's body and the upload offset of that body,
//! so errors name the byte where the fault is.

use super::ebml::{self, Child, SEGMENT_HEAD_UNKNOWN, id};
use super::{Header, SplitError, Track};

/// Which kept header element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Ebml,
    Info,
    Tracks,
}

/// The header elements kept so far, each as received (head included).
#[derive(Debug, Default)]
pub(super) struct HeaderParts {
    ebml: Vec<u8>,
    info: Option<Vec<u8>>,
    tracks: Option<Vec<u8>>,
    /// The element being received (`begin` .. `done`).
    pending: Vec<u8>,
    timecode_scale_ns: u64,
    track_list: Vec<Track>,
}

impl HeaderParts {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.kept_len() + self.pending.len()
    }

    fn kept_len(&self) -> usize {
        self.ebml.len()
            + self.info.as_ref().map_or(0, Vec::len)
            + self.tracks.as_ref().map_or(0, Vec::len)
    }

    /// Whether `part` was received already.
    pub fn has(&self, part: Part) -> bool {
        match part {
            Part::Ebml => !self.ebml.is_empty(),
            Part::Info => self.info.is_some(),
            Part::Tracks => self.tracks.is_some(),
        }
    }

    /// Starts receiving `part`, whose head is `head` and body `size` bytes,
    /// at upload offset `start`, if the Header would stay within
    /// `header_bytes_max` (its 12-byte Segment head counted).
    pub fn begin(
        &mut self,
        head: &[u8],
        size: u64,
        start: u64,
        header_bytes_max: usize,
    ) -> Result<(), SplitError> {
        assert!(self.pending.is_empty(), "one header element at a time");
        let header_size = ((self.kept_len() + SEGMENT_HEAD_UNKNOWN.len() + head.len()) as u64)
            .saturating_add(size);
        if header_size > header_bytes_max as u64 {
            return Err(SplitError::HeaderTooLarge {
                offset: start,
                size: header_size,
            });
        }
        self.pending.extend_from_slice(head);
        Ok(())
    }

    /// More body bytes of the element being received.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The element being received is complete: reads and stores it. Returns
    /// the declared track numbers when it was Tracks.
    pub fn done(
        &mut self,
        part: Part,
        start: u64,
        head_len: usize,
        tracks_max: usize,
    ) -> Result<Option<Vec<u64>>, SplitError> {
        let element = std::mem::take(&mut self.pending);
        let body = element.get(head_len..).unwrap_or_default();
        let body_offset = start + head_len as u64;
        match part {
            Part::Ebml => {
                check_ebml_header(body, body_offset)?;
                self.ebml = element;
            }
            Part::Info => {
                self.timecode_scale_ns = parse_info(body, body_offset)?;
                self.info = Some(element);
            }
            Part::Tracks => {
                self.track_list = parse_tracks(body, body_offset, tracks_max)?;
                self.tracks = Some(element);
                return Ok(Some(self.track_list.iter().map(|t| t.number).collect()));
            }
        }
        Ok(None)
    }

    /// At the first Cluster (upload offset `start`): the `Header`, leaving
    /// nothing held. Info and Tracks must have come.
    pub fn take_header(&mut self, start: u64) -> Result<Header, SplitError> {
        let (Some(info), Some(tracks)) = (&self.info, &self.tracks) else {
            let missing = if self.tracks.is_none() {
                "Tracks"
            } else {
                "Info"
            };
            return Err(SplitError::invalid(
                start,
                format!("Cluster before {missing}"),
            ));
        };
        let mut bytes = Vec::with_capacity(self.kept_len() + SEGMENT_HEAD_UNKNOWN.len());
        bytes.extend_from_slice(&self.ebml);
        bytes.extend_from_slice(&SEGMENT_HEAD_UNKNOWN);
        bytes.extend_from_slice(info);
        bytes.extend_from_slice(tracks);
        let header = Header {
            bytes: bytes.into(),
            timecode_scale_ns: self.timecode_scale_ns,
            tracks: std::mem::take(&mut self.track_list),
        };
        *self = HeaderParts::default();
        Ok(header)
    }
}

/// TimecodeScale when Info does not say (Matroska's default: milliseconds).
const TIMECODE_SCALE_NS_DEFAULT: u64 = 1_000_000;

/// Children of `body`, with malformed ones turned into `SplitError::Invalid`.
fn children_at(
    body: &[u8],
    body_offset: u64,
) -> impl Iterator<Item = Result<(Child<'_>, u64), SplitError>> {
    ebml::children(body).map(move |child| match child {
        Ok(child) => Ok((child, body_offset + child.at as u64)),
        Err((at, what)) => Err(SplitError::invalid(body_offset + at as u64, what)),
    })
}

fn uint(child: &Child<'_>, offset: u64) -> Result<u64, SplitError> {
    ebml::read_uint(child.body).map_err(|what| SplitError::invalid(offset, what))
}

fn string(child: &Child<'_>, offset: u64) -> Result<String, SplitError> {
    ebml::read_string(child.body)
        .map(str::to_owned)
        .map_err(|what| SplitError::invalid(offset, what))
}

/// Checks the EBML header's body: a DocType of `matroska` or `webm`, and an
/// EBMLReadVersion (if given) of 1.
fn check_ebml_header(body: &[u8], body_offset: u64) -> Result<(), SplitError> {
    let mut doc_type = None;
    for child in children_at(body, body_offset) {
        let (child, offset) = child?;
        match child.id {
            id::DOC_TYPE => doc_type = Some((string(&child, offset)?, offset)),
            id::EBML_READ_VERSION => {
                let version = uint(&child, offset)?;
                if version != 1 {
                    return Err(SplitError::invalid(
                        offset,
                        format!("EBMLReadVersion {version}, only 1 is readable"),
                    ));
                }
            }
            _ => {}
        }
    }
    match doc_type {
        Some((doc_type, _)) if doc_type == "matroska" || doc_type == "webm" => Ok(()),
        Some((doc_type, offset)) => Err(SplitError::invalid(
            offset,
            format!("DocType {doc_type:?}, not \"matroska\" or \"webm\""),
        )),
        None => Err(SplitError::invalid(
            body_offset,
            "EBML header without a DocType",
        )),
    }
}

/// Reads Info's TimecodeScale (nanoseconds per tick).
fn parse_info(body: &[u8], body_offset: u64) -> Result<u64, SplitError> {
    let mut scale = TIMECODE_SCALE_NS_DEFAULT;
    for child in children_at(body, body_offset) {
        let (child, offset) = child?;
        if child.id == id::TIMECODE_SCALE {
            scale = uint(&child, offset)?;
            if scale == 0 {
                return Err(SplitError::invalid(offset, "TimecodeScale 0"));
            }
        }
    }
    Ok(scale)
}

/// Reads Tracks: 1 ..= `tracks_max` TrackEntry elements with unique,
/// non-zero TrackNumbers and the mandatory TrackUID, TrackType and CodecID.
fn parse_tracks(
    body: &[u8],
    body_offset: u64,
    tracks_max: usize,
) -> Result<Vec<Track>, SplitError> {
    // Count first: too many tracks is its own error, whatever else is wrong.
    let mut count = 0usize;
    for child in children_at(body, body_offset) {
        if child?.0.id == id::TRACK_ENTRY {
            count += 1;
        }
    }
    if count > tracks_max {
        return Err(SplitError::TooManyTracks { count });
    }
    if count == 0 {
        return Err(SplitError::invalid(
            body_offset,
            "Tracks without a TrackEntry",
        ));
    }
    let mut tracks: Vec<Track> = Vec::with_capacity(count);
    for child in children_at(body, body_offset) {
        let (child, offset) = child?;
        if child.id != id::TRACK_ENTRY {
            continue;
        }
        let track = parse_track_entry(child.body, body_offset + child.body_at as u64)?;
        if tracks.iter().any(|t| t.number == track.number) {
            return Err(SplitError::invalid(
                offset,
                format!("TrackNumber {} declared twice", track.number),
            ));
        }
        tracks.push(track);
    }
    Ok(tracks)
}

fn parse_track_entry(body: &[u8], body_offset: u64) -> Result<Track, SplitError> {
    let (mut number, mut uid, mut track_type, mut codec_id) = (None, None, None, None);
    let mut track = Track {
        number: 0,
        uid: 0,
        track_type: 0,
        codec_id: String::new(),
        codec_private: None,
        pixel_width: None,
        pixel_height: None,
        sampling_frequency: None,
        channels: None,
    };
    for child in children_at(body, body_offset) {
        let (child, offset) = child?;
        match child.id {
            id::TRACK_NUMBER => number = Some((uint(&child, offset)?, offset)),
            id::TRACK_UID => uid = Some(uint(&child, offset)?),
            id::TRACK_TYPE => track_type = Some(uint(&child, offset)?),
            id::CODEC_ID => codec_id = Some(string(&child, offset)?),
            id::CODEC_PRIVATE => {
                track.codec_private = Some(bytes::Bytes::copy_from_slice(child.body));
            }
            id::VIDEO => {
                let video_offset = body_offset + child.body_at as u64;
                for grandchild in children_at(child.body, video_offset) {
                    let (grandchild, offset) = grandchild?;
                    match grandchild.id {
                        id::PIXEL_WIDTH => track.pixel_width = Some(uint(&grandchild, offset)?),
                        id::PIXEL_HEIGHT => track.pixel_height = Some(uint(&grandchild, offset)?),
                        _ => {}
                    }
                }
            }
            id::AUDIO => {
                let audio_offset = body_offset + child.body_at as u64;
                for grandchild in children_at(child.body, audio_offset) {
                    let (grandchild, offset) = grandchild?;
                    match grandchild.id {
                        id::SAMPLING_FREQUENCY => {
                            let hz = ebml::read_float(grandchild.body)
                                .map_err(|what| SplitError::invalid(offset, what))?;
                            // Matroska: > 0. NaN or infinities would also
                            // break whatever reports the track (JSON).
                            if !(hz.is_finite() && hz > 0.0) {
                                return Err(SplitError::invalid(
                                    offset,
                                    format!("SamplingFrequency {hz}"),
                                ));
                            }
                            track.sampling_frequency = Some(hz);
                        }
                        id::CHANNELS => track.channels = Some(uint(&grandchild, offset)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let missing =
        |what: &str| SplitError::invalid(body_offset, format!("TrackEntry without {what}"));
    let (number, number_offset) = number.ok_or_else(|| missing("TrackNumber"))?;
    if number == 0 {
        return Err(SplitError::invalid(number_offset, "TrackNumber 0"));
    }
    track.number = number;
    track.uid = uid.ok_or_else(|| missing("TrackUID"))?;
    track.track_type = track_type.ok_or_else(|| missing("TrackType"))?;
    track.codec_id = codec_id.ok_or_else(|| missing("CodecID"))?;
    Ok(track)
}
