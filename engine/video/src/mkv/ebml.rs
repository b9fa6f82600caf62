//! EBML primitives for the splitter: the element IDs it knows, element heads
//! (ID + size variable-length integers), and typed reads of complete bodies.
//! Owns no state; every function takes client bytes and never panics on them.
//!
//! Byte layout (RFC 8794):
//! ```text
//! element : ID (1-4 bytes, length marker kept in the value)
//!           size (1-8 bytes, length marker stripped; all value bits 1 = unknown)
//!           body (size bytes)
//! vint    : first byte 1xxxxxxx → 1 byte, 01xxxxxx → 2 bytes, ..., 00000001 → 8
//! ```

/// Element IDs (Matroska names; "Timecode" is today's "Timestamp").
pub(super) mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const REFERENCE_BLOCK: u32 = 0xFB;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const TAGS: u32 = 0x1254_C367;
    pub const CHAPTERS: u32 = 0x1043_A770;
    pub const ATTACHMENTS: u32 = 0x1941_A469;
    pub const VOID: u32 = 0xEC;
    pub const CRC32: u32 = 0xBF;
    /// Cluster children dropped like any other but those kept (named for tests).
    #[cfg(test)]
    pub const POSITION: u32 = 0xA7;
    #[cfg(test)]
    pub const PREV_SIZE: u32 = 0xAB;
}

/// Longest element ID Matroska allows (its EBMLMaxIDLength).
pub(super) const ID_LEN_MAX: usize = 4;
/// Longest size field Matroska allows (its EBMLMaxSizeLength).
pub(super) const SIZE_LEN_MAX: usize = 8;
/// Longest element head: ID + size field.
pub(super) const HEAD_LEN_MAX: usize = ID_LEN_MAX + SIZE_LEN_MAX;
/// The unknown size in an 8-byte size field (2^56 - 1); known sizes are below.
pub(super) const SIZE_UNKNOWN_8: u64 = (1 << 56) - 1;
/// A Segment head with the unknown size, as a `Header` carries it.
pub(super) const SEGMENT_HEAD_UNKNOWN: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// Level-1 elements (children of Segment) plus the EBML header: in an
/// unknown-size Cluster, the first of these ends the Cluster.
pub(super) fn ends_unknown_cluster(id: u32) -> bool {
    matches!(
        id,
        id::CLUSTER
            | id::CUES
            | id::TAGS
            | id::SEEK_HEAD
            | id::INFO
            | id::TRACKS
            | id::CHAPTERS
            | id::ATTACHMENTS
            | id::EBML
            | id::SEGMENT
    )
}

/// A name for error messages.
pub(super) fn name(id: u32) -> String {
    let known = match id {
        id::EBML => "EBML header",
        id::SEGMENT => "Segment",
        id::SEEK_HEAD => "SeekHead",
        id::INFO => "Info",
        id::TRACKS => "Tracks",
        id::TRACK_ENTRY => "TrackEntry",
        id::CLUSTER => "Cluster",
        id::TIMECODE => "Timecode",
        id::SIMPLE_BLOCK => "SimpleBlock",
        id::BLOCK_GROUP => "BlockGroup",
        id::BLOCK => "Block",
        id::CUES => "Cues",
        id::TAGS => "Tags",
        id::CHAPTERS => "Chapters",
        id::ATTACHMENTS => "Attachments",
        id::VOID => "Void",
        id::CRC32 => "CRC-32",
        _ => return format!("element 0x{id:X}"),
    };
    format!("{known} (0x{id:X})")
}

/// An element's ID and size, and how many bytes they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub id: u32,
    /// `None`: the unknown size (all value bits set).
    pub size: Option<u64>,
    /// Bytes of ID + size field (2 ..= 12).
    pub len: usize,
}

/// Reads an element head at the start of `bytes`. `Ok(None)`: more bytes are
/// needed (never once 12 are given). `Err`: what is wrong with it.
pub(super) fn parse_head(bytes: &[u8]) -> Result<Option<Head>, &'static str> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > ID_LEN_MAX {
        return Err("element ID longer than 4 bytes (not EBML here)");
    }
    let Some(id_bytes) = bytes.get(..id_len) else {
        return Ok(None);
    };
    let id = id_bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b));
    let value_mask = (1u32 << (7 * id_len)) - 1;
    if id & value_mask == value_mask || id & value_mask == 0 {
        return Err("reserved element ID (all value bits 0 or 1)");
    }
    let Some(rest) = bytes.get(id_len..) else {
        return Ok(None);
    };
    match parse_vint(rest)? {
        None => Ok(None),
        Some((value, size_len)) => {
            let size = if value == (1u64 << (7 * size_len)) - 1 {
                None
            } else {
                Some(value)
            };
            Ok(Some(Head {
                id,
                size,
                len: id_len + size_len,
            }))
        }
    }
}

/// Reads a variable-length integer (length marker stripped) at the start of
/// `bytes`: `(value, length)`, or `Ok(None)` when more bytes are needed.
pub(super) fn parse_vint(bytes: &[u8]) -> Result<Option<(u64, usize)>, &'static str> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err("variable-length integer longer than 8 bytes");
    }
    let len = first.leading_zeros() as usize + 1;
    let Some(all) = bytes.get(..len) else {
        return Ok(None);
    };
    // The first byte keeps the bits after its length marker (none for 8).
    let first_value = u64::from(first) & (0xFF >> len);
    let value = all
        .iter()
        .skip(1)
        .fold(first_value, |v, &b| (v << 8) | u64::from(b));
    Ok(Some((value, len)))
}

/// An unsigned integer body (0 to 8 bytes, big-endian; empty is 0).
pub(super) fn read_uint(body: &[u8]) -> Result<u64, &'static str> {
    if body.len() > 8 {
        return Err("unsigned integer longer than 8 bytes");
    }
    Ok(body.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// A float body: 0 (meaning 0.0), 4 or 8 bytes, big-endian IEEE 754.
pub(super) fn read_float(body: &[u8]) -> Result<f64, &'static str> {
    if let Ok(b) = <[u8; 4]>::try_from(body) {
        Ok(f64::from(f32::from_be_bytes(b)))
    } else if let Ok(b) = <[u8; 8]>::try_from(body) {
        Ok(f64::from_be_bytes(b))
    } else if body.is_empty() {
        Ok(0.0)
    } else {
        Err("float not 0, 4 or 8 bytes long")
    }
}

/// A string body: UTF-8 (ASCII is UTF-8), trailing NUL padding removed
/// (GStreamer writes `matroska\0`).
pub(super) fn read_string(body: &[u8]) -> Result<&str, &'static str> {
    let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let text = body.get(..end).unwrap_or_default();
    std::str::from_utf8(text).map_err(|_| "string not UTF-8")
}

/// One child read by `Children`: its ID, where its head and its body start
/// in the parent's body, and its body.
#[derive(Debug, Clone, Copy)]
pub(super) struct Child<'a> {
    pub id: u32,
    pub at: usize,
    pub body_at: usize,
    pub body: &'a [u8],
}

/// The children of a complete (buffered) element body, in order. Yields
/// `Err((at, what))` once for a child that is malformed, has the unknown
/// size or overruns the parent, then stops.
pub(super) struct Children<'a> {
    body: &'a [u8],
    pos: usize,
}

pub(super) fn children(body: &[u8]) -> Children<'_> {
    Children { body, pos: 0 }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, (usize, &'static str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let rest = self.body.get(at..).filter(|r| !r.is_empty())?;
        let what = match parse_head(rest) {
            Err(what) => what,
            Ok(None) => "element head overruns its parent",
            Ok(Some(Head { size: None, .. })) => "unknown size inside a sized element",
            Ok(Some(Head {
                id,
                size: Some(size),
                len,
            })) => {
                let end = usize::try_from(size)
                    .ok()
                    .and_then(|size| len.checked_add(size));
                match end.and_then(|end| Some((end, rest.get(len..end)?))) {
                    Some((end, body)) => {
                        self.pos = at + end;
                        return Some(Ok(Child {
                            id,
                            at,
                            body_at: at + len,
                            body,
                        }));
                    }
                    None => "element overruns its parent",
                }
            }
        };
        self.pos = self.body.len();
        Some(Err((at, what)))
    }
}
