//! One Cluster being collected into a `Fragment`: the kept children's bytes
//! behind a re-written head, and the facts PutMedia needs (timecode, frame
//! span and count, key frame, tracks seen). Owned by the `Splitter`; it
//! decides which children come here, this file reads them once complete.
//!
//! ```text
//! bytes  : 1F 43 B6 75 · 01 s6 s5 s4 s3 s2 s1 s0 (size, written by `finish`)
//!          · Timecode · SimpleBlock | BlockGroup ...        (heads as received)
//! Block  : track (vint, marker stripped) · timecode (i16 BE, relative to
//!          the cluster's) · flags (SimpleBlock: 0x80 key frame) · frames
//! BlockGroup { Block · ReferenceBlock* (present: not a key frame) · ... }
//! ```

use super::ebml::{self, id};
use super::{FRAGMENT_HEAD_LEN, Fragment, SplitError};

/// A fragment's head before its size is known: the Cluster ID, then an
/// 8-byte size field (length marker 0x01) filled in by `finish`.
const FRAGMENT_HEAD: [u8; FRAGMENT_HEAD_LEN] = [0x1F, 0x43, 0xB6, 0x75, 0x01, 0, 0, 0, 0, 0, 0, 0];

/// SimpleBlock flag: the frame is a key frame.
const FLAG_KEY_FRAME: u8 = 0x80;

/// A Cluster read so far.
#[derive(Debug)]
pub(super) struct Cluster {
    /// Upload offset of the Cluster's ID.
    pub start: u64,
    /// Upload offset just past its body, when its size is known.
    pub end: Option<u64>,
    /// Bytes of the Cluster received: its head, then each child in full
    /// (kept or dropped) as soon as the child's head is read.
    pub received: u64,
    /// `FRAGMENT_HEAD` and the kept children.
    bytes: Vec<u8>,
    timecode: Option<u64>,
    /// Smallest and largest frame timecode (ticks).
    span: Option<(i64, i64)>,
    frame_count: u32,
    key_frame_first: bool,
    /// Sorted, no duplicates; at most the declared tracks.
    tracks_with_frames: Vec<u64>,
}

impl Cluster {
    /// A Cluster whose head (`head_len` bytes) starts at upload offset
    /// `start`; `expected` bytes of children are likely to be kept (so the
    /// held bytes are not copied again as they grow).
    pub fn new(start: u64, head_len: usize, end: Option<u64>, expected: usize) -> Cluster {
        let mut bytes = Vec::with_capacity(FRAGMENT_HEAD_LEN + expected);
        bytes.extend_from_slice(&FRAGMENT_HEAD);
        Cluster {
            start,
            end,
            received: head_len as u64,
            bytes,
            timecode: None,
            span: None,
            frame_count: 0,
            key_frame_first: false,
            tracks_with_frames: Vec::new(),
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends bytes of a kept child (its head, then its body as it comes).
    /// A cluster of known size grows by doubling but never past what it
    /// can hold, so an honest one ends with no spare room.
    pub fn keep(&mut self, bytes: &[u8]) {
        let need = self.bytes.len() + bytes.len();
        if need > self.bytes.capacity()
            && let Some(end) = self.end
        {
            let most =
                usize::try_from(end - self.start).map_or(usize::MAX, |n| n + FRAGMENT_HEAD_LEN);
            let target = self.bytes.capacity().saturating_mul(2).min(most).max(need);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// A kept child is complete: its head starts at `index` in the held
    /// bytes and is `head_len` long; `offset` is where it starts in the
    /// upload; `tracks` are the declared track numbers. Returns the
    /// cluster's timecode when the child was the Timecode.
    pub fn child_done(
        &mut self,
        id: u32,
        index: usize,
        head_len: usize,
        offset: u64,
        tracks: &[u64],
    ) -> Result<Option<u64>, SplitError> {
        let body = self.bytes.get(index + head_len..).unwrap_or_default();
        match id {
            id::TIMECODE => {
                if self.timecode.is_some() {
                    return Err(SplitError::invalid(offset, "second Timecode in a Cluster"));
                }
                let timecode =
                    ebml::read_uint(body).map_err(|what| SplitError::invalid(offset, what))?;
                self.timecode = Some(timecode);
                Ok(Some(timecode))
            }
            id::SIMPLE_BLOCK => {
                let (track, relative, flags) = block_head(body, offset)?;
                self.frame(track, relative, flags & FLAG_KEY_FRAME != 0, offset, tracks)?;
                Ok(None)
            }
            id::BLOCK_GROUP => {
                let body_offset = offset + head_len as u64;
                let mut block = None;
                let mut referenced = false;
                for child in ebml::children(body) {
                    let child = child
                        .map_err(|(at, what)| SplitError::invalid(body_offset + at as u64, what))?;
                    let child_offset = body_offset + child.at as u64;
                    match child.id {
                        id::BLOCK if block.is_some() => {
                            return Err(SplitError::invalid(
                                child_offset,
                                "second Block in a BlockGroup",
                            ));
                        }
                        id::BLOCK => {
                            block = Some((block_head(child.body, child_offset)?, child_offset))
                        }
                        id::REFERENCE_BLOCK => referenced = true,
                        _ => {}
                    }
                }
                let Some(((track, relative, _flags), block_offset)) = block else {
                    return Err(SplitError::invalid(offset, "BlockGroup without a Block"));
                };
                self.frame(track, relative, !referenced, block_offset, tracks)?;
                Ok(None)
            }
            _ => unreachable!("the splitter keeps only Timecode, SimpleBlock and BlockGroup"),
        }
    }

    fn frame(
        &mut self,
        track: u64,
        relative: i16,
        key: bool,
        offset: u64,
        tracks: &[u64],
    ) -> Result<(), SplitError> {
        let Some(timecode) = self.timecode else {
            return Err(SplitError::invalid(
                offset,
                "block before its Cluster's Timecode",
            ));
        };
        if !tracks.contains(&track) {
            return Err(SplitError::TrackNumberMismatch { offset, track });
        }
        let at = i64::try_from(timecode)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(relative));
        self.span = Some(match self.span {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
        if self.frame_count == 0 {
            self.key_frame_first = key;
        }
        self.frame_count = self.frame_count.saturating_add(1);
        if let Err(i) = self.tracks_with_frames.binary_search(&track) {
            self.tracks_with_frames.insert(i, track);
        }
        Ok(())
    }

    /// The Cluster ended: checks it has a Timecode and a frame for every
    /// declared track, writes its size and hands it over.
    pub fn finish(mut self, tracks: &[u64]) -> Result<Fragment, SplitError> {
        let Some(timecode) = self.timecode else {
            return Err(SplitError::invalid(
                self.start,
                "Cluster without a Timecode",
            ));
        };
        if let Some(&track) = tracks
            .iter()
            .find(|t| self.tracks_with_frames.binary_search(t).is_err())
        {
            return Err(SplitError::MissingTrackFrames { track });
        }
        let Some((first_frame, last_frame)) = self.span else {
            return Err(SplitError::invalid(self.start, "Cluster without a block"));
        };
        let body_len = (self.bytes.len() - FRAGMENT_HEAD_LEN) as u64;
        assert!(
            body_len < ebml::SIZE_UNKNOWN_8,
            "fragment_bytes_max keeps sizes below 2^56 - 1"
        );
        let size = body_len.to_be_bytes();
        // Byte 4 keeps the length marker 0x01; the 7 value bytes follow.
        if let (Some(field), Some(value)) =
            (self.bytes.get_mut(5..FRAGMENT_HEAD_LEN), size.get(1..))
        {
            field.copy_from_slice(value);
        }
        // A cluster that kept much less than it was given room for does not
        // hold on to that room while it is stored.
        if self.bytes.capacity() > 2 * self.bytes.len() {
            self.bytes.shrink_to_fit();
        }
        Ok(Fragment {
            bytes: bytes::Bytes::from(self.bytes),
            timecode,
            first_frame,
            last_frame,
            frame_count: self.frame_count,
            key_frame_first: self.key_frame_first,
            tracks_with_frames: self.tracks_with_frames,
        })
    }
}

/// A Block's or SimpleBlock's header: (track number, relative timecode, flags).
fn block_head(body: &[u8], offset: u64) -> Result<(u64, i16, u8), SplitError> {
    let short = || SplitError::invalid(offset, "block shorter than its header");
    let (track, len) = ebml::parse_vint(body)
        .map_err(|what| SplitError::invalid(offset, what))?
        .ok_or_else(short)?;
    let rest = body.get(len..len + 3).ok_or_else(short)?;
    let Ok([high, low, flags]) = <[u8; 3]>::try_from(rest) else {
        return Err(short());
    };
    Ok((track, i16::from_be_bytes([high, low]), flags))
}
