//! Reading a stored fragment back into its frames: the one Cluster a
//! `Fragment` holds (as `Splitter` wrote it, or any Cluster with a known
//! size) becomes a list of `Block`s, in stored order, for the ISO BMFF
//! writer (`crate::mp4`). Pure; never panics on any bytes.
//!
//! ```text
//! Cluster    : 1F 43 B6 75 · size (known; 8 bytes as stored) · children
//! children   : Timecode (E7, uint, once, before any block)
//!              SimpleBlock (A3): block
//!              BlockGroup (A0) { Block (A1): block · ReferenceBlock (FB)*
//!                                · BlockDuration (9B, uint)? · ... }
//!              anything else (Void, CRC-32, ...): skipped
//! block      : track (vint, marker stripped) · relative timecode (i16 BE)
//!              · flags (SimpleBlock 0x80 = key frame; 0x06 = lacing)
//!              · the frame
//! ```
//! A SimpleBlock is a key frame when its flag 0x80 is set; a BlockGroup's
//! Block when the group has no ReferenceBlock. Laced blocks (several frames
//! in one block) are refused: KVS producers never lace and the MP4 writer
//! needs one frame per block.

use super::SplitError;
use super::ebml::{self, id};

/// BlockGroup child: the block's duration in ticks (not in `ebml::id`,
/// which names only what the splitter reads).
const BLOCK_DURATION: u32 = 0x9B;
/// Block flags: the frame is a key frame (SimpleBlock only).
const FLAG_KEY_FRAME: u8 = 0x80;
/// Block flags: lacing (00 none, 01 Xiph, 11 EBML, 10 fixed-size).
const FLAG_LACING: u8 = 0x06;
/// A block's head after its track number: relative timecode (2) + flags (1).
const BLOCK_HEAD_REST_LEN: usize = 3;

/// One frame of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// TrackNumber the block names (not checked against any Tracks here).
    pub track: u64,
    /// Cluster Timecode + the block's relative timecode, in TimecodeScale
    /// ticks. Matroska block times are presentation times.
    pub time: i64,
    /// SimpleBlock flag 0x80, or a BlockGroup without ReferenceBlock.
    pub key: bool,
    /// A BlockGroup's BlockDuration (ticks), when present.
    pub duration: Option<u64>,
    /// The frame: the block's body after its head (for H.264/H.265 in
    /// Matroska, length-prefixed NAL units).
    pub data: bytes::Bytes,
}

/// Reads the blocks of one Cluster element (`cluster` is the whole element,
/// head included, and nothing after it). Errors are `SplitError::Invalid`
/// with offsets into `cluster`.
pub fn blocks(cluster: &[u8]) -> Result<Vec<Block>, SplitError> {
    let head = match ebml::parse_head(cluster) {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Err(SplitError::invalid(
                0,
                "fragment shorter than a Cluster head",
            ));
        }
        Err(what) => return Err(SplitError::invalid(0, what)),
    };
    if head.id != id::CLUSTER {
        return Err(SplitError::invalid(
            0,
            format!("{} where a Cluster was expected", ebml::name(head.id)),
        ));
    }
    let Some(size) = head.size else {
        return Err(SplitError::invalid(
            0,
            "stored Cluster with the unknown size",
        ));
    };
    let body = cluster.get(head.len..).unwrap_or_default();
    if u64::try_from(body.len()).ok() != Some(size) {
        return Err(SplitError::invalid(
            0,
            format!(
                "Cluster declares {size} body bytes, {} are stored",
                body.len()
            ),
        ));
    }
    // One copy of the whole cluster; every block's data is a slice of it.
    let whole = bytes::Bytes::copy_from_slice(cluster);
    let mut timecode: Option<i64> = None;
    let mut out = Vec::new();
    for child in ebml::children(body) {
        let child =
            child.map_err(|(at, what)| SplitError::invalid((head.len + at) as u64, what))?;
        let offset = head.len + child.at;
        match child.id {
            id::TIMECODE => {
                if timecode.is_some() {
                    return Err(SplitError::invalid(
                        offset as u64,
                        "second Timecode in a Cluster",
                    ));
                }
                let value = ebml::read_uint(child.body)
                    .map_err(|what| SplitError::invalid(offset as u64, what))?;
                let value = i64::try_from(value).map_err(|_| {
                    SplitError::invalid(offset as u64, "Cluster Timecode beyond 2^63 - 1")
                })?;
                timecode = Some(value);
            }
            id::SIMPLE_BLOCK => {
                let found = read_block(child.body, head.len + child.body_at, offset)?;
                let key = found.flags & FLAG_KEY_FRAME != 0;
                out.push(found.into_block(&whole, timecode, offset, key, None)?);
            }
            id::BLOCK_GROUP => {
                let group_body_at = head.len + child.body_at;
                let mut found = None;
                let mut referenced = false;
                let mut duration = None;
                for inner in ebml::children(child.body) {
                    let inner = inner.map_err(|(at, what)| {
                        SplitError::invalid((group_body_at + at) as u64, what)
                    })?;
                    let inner_offset = group_body_at + inner.at;
                    match inner.id {
                        id::BLOCK if found.is_some() => {
                            return Err(SplitError::invalid(
                                inner_offset as u64,
                                "second Block in a BlockGroup",
                            ));
                        }
                        id::BLOCK => {
                            found = Some((
                                read_block(
                                    inner.body,
                                    group_body_at + inner.body_at,
                                    inner_offset,
                                )?,
                                inner_offset,
                            ));
                        }
                        id::REFERENCE_BLOCK => referenced = true,
                        BLOCK_DURATION => {
                            let value = ebml::read_uint(inner.body)
                                .map_err(|what| SplitError::invalid(inner_offset as u64, what))?;
                            duration = Some(value);
                        }
                        _ => {}
                    }
                }
                let Some((found, block_offset)) = found else {
                    return Err(SplitError::invalid(
                        offset as u64,
                        "BlockGroup without a Block",
                    ));
                };
                out.push(found.into_block(
                    &whole,
                    timecode,
                    block_offset,
                    !referenced,
                    duration,
                )?);
            }
            _ => {}
        }
    }
    if timecode.is_none() {
        return Err(SplitError::invalid(0, "Cluster without a Timecode"));
    }
    Ok(out)
}

/// A block's head, read; the frame is `frame_at..frame_end` in the cluster.
struct BlockHead {
    track: u64,
    relative: i16,
    flags: u8,
    frame_at: usize,
    frame_end: usize,
}

/// Reads a (Simple)Block body that starts at `body_at` in the cluster; the
/// element itself starts at `offset` (for errors).
fn read_block(body: &[u8], body_at: usize, offset: usize) -> Result<BlockHead, SplitError> {
    let short = || SplitError::invalid(offset as u64, "block shorter than its header");
    let (track, len) = ebml::parse_vint(body)
        .map_err(|what| SplitError::invalid(offset as u64, what))?
        .ok_or_else(short)?;
    let rest = body.get(len..len + BLOCK_HEAD_REST_LEN).ok_or_else(short)?;
    let Ok([high, low, flags]) = <[u8; BLOCK_HEAD_REST_LEN]>::try_from(rest) else {
        return Err(short());
    };
    if flags & FLAG_LACING != 0 {
        return Err(SplitError::invalid(
            offset as u64,
            "laced block (not supported)",
        ));
    }
    Ok(BlockHead {
        track,
        relative: i16::from_be_bytes([high, low]),
        flags,
        frame_at: body_at + len + BLOCK_HEAD_REST_LEN,
        frame_end: body_at + body.len(),
    })
}

impl BlockHead {
    fn into_block(
        self,
        whole: &bytes::Bytes,
        timecode: Option<i64>,
        offset: usize,
        key: bool,
        duration: Option<u64>,
    ) -> Result<Block, SplitError> {
        let Some(timecode) = timecode else {
            return Err(SplitError::invalid(
                offset as u64,
                "block before its Cluster's Timecode",
            ));
        };
        let time = timecode
            .checked_add(i64::from(self.relative))
            .ok_or_else(|| SplitError::invalid(offset as u64, "block time beyond 2^63 - 1"))?;
        // The frame range lies inside the cluster: `read_block` took it from
        // a child body `Children` found within `cluster`.
        assert!(self.frame_at <= self.frame_end && self.frame_end <= whole.len());
        Ok(Block {
            track: self.track,
            time,
            key,
            duration,
            data: whole.slice(self.frame_at..self.frame_end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMECODE: u8 = 0xE7;
    const SIMPLE: u8 = 0xA3;
    const GROUP: u8 = 0xA0;
    const BLOCK: u8 = 0xA1;
    const REFERENCE: u8 = 0xFB;

    /// A child with a 1-byte ID and a 1-byte size (bodies < 127 bytes).
    fn el(id: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 127);
        [&[id, 0x80 | body.len() as u8][..], body].concat()
    }

    /// A block body: track 1-byte vint, relative time, flags, frame.
    fn block(track: u8, relative: i16, flags: u8, frame: &[u8]) -> Vec<u8> {
        let [high, low] = relative.to_be_bytes();
        [&[0x80 | track, high, low, flags][..], frame].concat()
    }

    /// A Cluster as stored: ID, 8-byte size field, children.
    fn cluster(children: &[Vec<u8>]) -> Vec<u8> {
        let body = children.concat();
        let size = (body.len() as u64).to_be_bytes();
        [&[0x1F, 0x43, 0xB6, 0x75, 0x01][..], &size[1..], &body].concat()
    }

    fn b(track: u64, time: i64, key: bool, duration: Option<u64>, data: &[u8]) -> Block {
        Block {
            track,
            time,
            key,
            duration,
            data: bytes::Bytes::copy_from_slice(data),
        }
    }

    /// What `blocks` gives for a cluster of these children.
    fn check(children: &[Vec<u8>], expected: Result<Vec<Block>, &str>) {
        let got = blocks(&cluster(children));
        match (&got, &expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected),
            (Err(SplitError::Invalid { what, .. }), Err(expected)) => {
                assert!(
                    what.contains(expected),
                    "{what:?} does not say {expected:?}"
                )
            }
            _ => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn simple_blocks_and_block_groups() {
        check(
            &[
                el(TIMECODE, &[0x03, 0xE8]),
                el(SIMPLE, &block(1, 0, 0x80, b"key")),
                el(SIMPLE, &block(2, -5, 0x00, b"aac")),
                el(0xEC, &[0, 0]), // Void: skipped
                el(
                    GROUP,
                    &[
                        el(BLOCK, &block(1, 100, 0, b"delta")),
                        el(REFERENCE, &[0x9C]),
                        el(0x9B, &[0x64]),
                    ]
                    .concat(),
                ),
                el(GROUP, &el(BLOCK, &block(1, 200, 0, b"intra"))),
                el(SIMPLE, &block(1, 300, 0x80, b"")),
            ],
            Ok(vec![
                b(1, 1000, true, None, b"key"),
                b(2, 995, false, None, b"aac"),
                b(1, 1100, false, Some(100), b"delta"),
                b(1, 1200, true, None, b"intra"),
                b(1, 1300, true, None, b""),
            ]),
        );
    }

    #[test]
    fn refusals() {
        let tc = || el(TIMECODE, &[0x00]);
        let cases: &[(&[Vec<u8>], &str)] = &[
            (
                &[el(SIMPLE, &block(1, 0, 0x80, b"x"))],
                "before its Cluster's Timecode",
            ),
            (&[], "without a Timecode"),
            (&[tc(), tc()], "second Timecode"),
            (&[tc(), el(SIMPLE, &block(1, 0, 0x82, b"x"))], "laced"),
            (&[tc(), el(SIMPLE, &block(1, 0, 0x86, b"x"))], "laced"),
            (
                &[tc(), el(SIMPLE, &[0x81, 0x00])],
                "shorter than its header",
            ),
            (&[tc(), el(SIMPLE, &[0x00, 0, 0, 0])], "longer than 8 bytes"),
            (&[tc(), el(GROUP, &el(REFERENCE, &[1]))], "without a Block"),
            (
                &[
                    tc(),
                    el(
                        GROUP,
                        &[
                            el(BLOCK, &block(1, 0, 0, b"")),
                            el(BLOCK, &block(1, 0, 0, b"")),
                        ]
                        .concat(),
                    ),
                ],
                "second Block",
            ),
            (
                &[tc(), el(GROUP, &[0xA1, 0x85, 0x81])],
                "overruns its parent",
            ),
            (&[tc(), vec![0xA3, 0x90, 0x81]], "overruns its parent"),
            (&[el(TIMECODE, &[1; 9])], "longer than 8 bytes"),
            (
                &[el(TIMECODE, &[0x80, 0, 0, 0, 0, 0, 0, 0])],
                "beyond 2^63 - 1",
            ),
        ];
        for (children, what) in cases {
            check(children, Err(what));
        }
    }

    #[test]
    fn refuses_what_is_not_a_whole_cluster() {
        let good = cluster(&[el(TIMECODE, &[0]), el(SIMPLE, &block(1, 0, 0x80, b"abc"))]);
        assert!(blocks(&good).is_ok());
        let mut long = good.clone();
        long.push(0);
        let mut unknown = good.clone();
        unknown[5..12].copy_from_slice(&[0xFF; 7]);
        let mut not_cluster = good.clone();
        not_cluster[..4].copy_from_slice(&[0x1A, 0x45, 0xDF, 0xA3]);
        let cases: &[(&[u8], &str)] = &[
            (&good[..good.len() - 1], "are stored"),
            (&long, "are stored"),
            (&unknown, "unknown size"),
            (&not_cluster, "where a Cluster was expected"),
            (&[], "shorter than a Cluster head"),
            (&good[..7], "shorter than a Cluster head"),
            (&[0x00, 0x01], "longer than 4 bytes"),
        ];
        for (bytes, what) in cases {
            match blocks(bytes) {
                Err(SplitError::Invalid { what: got, .. }) => {
                    assert!(got.contains(what), "{got:?} vs {what:?}")
                }
                other => panic!("{what}: got {other:?}"),
            }
        }
    }

    /// Every prefix and every single-byte change of a real cluster: an
    /// answer, never a panic (the fuzz target covers more).
    #[test]
    fn never_panics_on_damaged_clusters() {
        let good = cluster(&[
            el(TIMECODE, &[0x10]),
            el(SIMPLE, &block(1, 0, 0x80, b"frame")),
            el(
                GROUP,
                &[el(BLOCK, &block(2, 1, 0, b"f")), el(0x9B, &[1])].concat(),
            ),
        ]);
        for n in 0..good.len() {
            assert!(blocks(&good[..n]).is_err(), "prefix {n}");
        }
        for i in 0..good.len() {
            for value in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[i] = value;
                let _ = blocks(&bad);
            }
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let garbage: Vec<u8> = (0..(seed % 64) as usize)
                .map(|i| (seed >> (i % 8 * 8)) as u8)
                .collect();
            assert!(blocks(&garbage).is_err() || garbage.starts_with(&[0x1F, 0x43, 0xB6, 0x75]));
        }
    }

    #[test]
    fn fixture_blocks_match_the_fragment_facts() {
        use crate::mkv::{Event, SplitLimits, Splitter};
        let upload = include_bytes!("../../tests/data/testsrc-aac-3s.mkv");
        let mut splitter = Splitter::new(SplitLimits::AWS);
        let mut events = Vec::new();
        splitter.push(upload, &mut events).expect("push");
        splitter.finish(&mut events).expect("finish");
        let mut count = 0;
        for event in &events {
            let Event::Fragment(fragment) = event else {
                continue;
            };
            let found = blocks(&fragment.bytes).expect("blocks");
            assert_eq!(found.len(), fragment.frame_count as usize);
            assert_eq!(found.first().map(|b| b.key), Some(fragment.key_frame_first));
            assert_eq!(
                found.iter().map(|b| b.time).min(),
                Some(fragment.first_frame)
            );
            assert_eq!(
                found.iter().map(|b| b.time).max(),
                Some(fragment.last_frame)
            );
            assert!(found.iter().all(|b| b.track == 1 || b.track == 2 && b.key));
            assert!(found.iter().all(|b| !b.data.is_empty()));
            count += found.len();
        }
        // ffprobe: 30 H.264 frames + 45 AAC frames.
        assert_eq!(count, 75);
    }
}
