//! The `Splitter` state machine: upload bytes in, `Event`s out, with a bound
//! on what it holds. It reads element heads (ID + size, at most 12 bytes) one
//! byte at a time, then copies, skips or hands on each body in as few steps
//! as the chunks allow; every upload byte is copied at most once and read
//! again at most once (when its complete element is parsed).
//!
//! Where an element may be, by phase:
//! ```text
//! Start          EBML header                       → BeforeSegment
//! BeforeSegment  Void | CRC-32 (skipped), Segment   → Prologue
//! Prologue       Info, Tracks (kept), Cluster (emits Header first) → Clusters,
//!                anything else with a known size (skipped)
//! Clusters       Cluster, anything else with a known size (skipped)
//! in a Cluster   Timecode, SimpleBlock, BlockGroup (kept), any other child
//!                (skipped); an unknown-size Cluster ends at the next level-1
//!                element or EBML header, at the Segment's end or at finish
//! AfterSegment   nothing (a known-size Segment ended)
//! ```
//! Only Segment and Cluster may have the unknown size.

use super::cluster::Cluster;
use super::ebml::{self, HEAD_LEN_MAX, Head, id};
use super::header::{HeaderParts, Part};
use super::{Event, FRAGMENT_HEAD_LEN, SplitError, SplitLimits};

/// Children bytes a cluster of known size is first given room for when no
/// fragment came before it.
const EXPECTED_FIRST: usize = 1 << 20;

/// Splits one upload. Feed it with `push`, end it with `finish`.
///
/// Memory: `buffered()` never exceeds `limits.buffered_max()` (asserted
/// after every call): `max(header_bytes_max, fragment_bytes_max) + 19`.
/// Time: amortized O(1) per byte, whatever the chunk sizes.
#[derive(Debug)]
pub struct Splitter {
    limits: SplitLimits,
    /// Upload bytes consumed so far: the offset of the next byte.
    offset: u64,
    /// The element head being read.
    head: [u8; HEAD_LEN_MAX],
    head_len: usize,
    /// The element whose body is coming, if any (none while a head is read).
    body: Option<Body>,
    phase: Phase,
    /// Upload offset of the Segment's ID, and the offset past its body when
    /// its size is known.
    segment_start: u64,
    segment_end: Option<u64>,
    /// Until the first Cluster: EBML header, Info, Tracks.
    header: HeaderParts,
    /// Declared track numbers, for checking blocks.
    track_numbers: Vec<u64>,
    cluster: Option<Cluster>,
    /// Children bytes of the last fragment: what an unknown-size Cluster
    /// likely holds.
    last_children_len: usize,
    /// Set by the first error; returned again by every later call.
    error: Option<SplitError>,
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    BeforeSegment,
    Prologue,
    Clusters,
    AfterSegment,
}

/// An element's body being received: `start` is the upload offset of its
/// head, `remaining` the body bytes still to come, `into` where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Body {
    start: u64,
    remaining: u64,
    into: Dest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Counted past, not held.
    Skip,
    /// A header element, into `header` (its head is there already).
    Header { part: Part, head_len: usize },
    /// A cluster child, into the cluster from `index` (its head is there already).
    Child {
        id: u32,
        index: usize,
        head_len: usize,
    },
}

impl Splitter {
    pub fn new(limits: SplitLimits) -> Splitter {
        assert!(
            (limits.fragment_bytes_max as u64) < ebml::SIZE_UNKNOWN_8,
            "a fragment's size must fit its 8-byte size field"
        );
        Splitter {
            limits,
            offset: 0,
            head: [0; HEAD_LEN_MAX],
            head_len: 0,
            body: None,
            phase: Phase::Start,
            segment_start: 0,
            segment_end: None,
            header: HeaderParts::default(),
            track_numbers: Vec::new(),
            cluster: None,
            last_children_len: 0,
            error: None,
            finished: false,
        }
    }

    /// Feeds the next bytes of the upload; appends to `out` the events they
    /// complete, in order. After an error the splitter is dead: later calls
    /// return the same error again. Events appended before an error stand
    /// (e.g. an unknown-size cluster ended by a second EBML header).
    ///
    /// Panics if called after `finish` (the caller's bug, not the client's).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), SplitError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        assert!(!self.finished, "Splitter::push after finish");
        let result = self.run(bytes, out);
        self.settle(result)
    }

    /// The upload ended: a cluster of unknown size ends here and is emitted;
    /// an element cut short (including a known-size Cluster or Segment) is
    /// `SplitError::Truncated`. An upload that ends between elements is
    /// fine, even before its first Cluster (no events then). Calling it
    /// again returns what the first call returned, with no events.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), SplitError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let result = self.end(out);
        self.settle(result)
    }

    /// Bytes currently held: the head being read, the header elements kept
    /// so far, and the cluster being collected. At most
    /// `SplitLimits::buffered_max()`.
    pub fn buffered(&self) -> usize {
        self.head_len + self.header.len() + self.cluster.as_ref().map_or(0, Cluster::len)
    }

    /// Records an error (dropping what is held) and checks the memory bound.
    fn settle(&mut self, result: Result<(), SplitError>) -> Result<(), SplitError> {
        if let Err(error) = &result {
            tracing::debug!(%error, "mkv split refused");
            self.error = Some(error.clone());
            self.body = None;
            self.head_len = 0;
            self.header = HeaderParts::default();
            self.cluster = None;
        }
        assert!(
            self.buffered() <= self.limits.buffered_max(),
            "buffered {} over the bound {}",
            self.buffered(),
            self.limits.buffered_max()
        );
        result
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<Event>) -> Result<(), SplitError> {
        while !input.is_empty() {
            let Some(Body {
                start,
                remaining,
                into,
            }) = self.body
            else {
                input = self.read_head(input, out)?;
                if self.body.is_none() && self.head_len == 0 {
                    self.close_ended(out)?;
                }
                continue;
            };
            let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
            let (now, rest) = input.split_at(n);
            input = rest;
            self.offset += n as u64;
            match into {
                Dest::Skip => {}
                Dest::Header { .. } => self.header.extend(now),
                Dest::Child { .. } => self
                    .cluster
                    .as_mut()
                    .expect("a child has its cluster")
                    .keep(now),
            }
            let remaining = remaining - n as u64;
            if remaining > 0 {
                self.body = Some(Body {
                    start,
                    remaining,
                    into,
                });
            } else {
                self.body = None;
                self.body_done(start, into, out)?;
                self.close_ended(out)?;
            }
        }
        Ok(())
    }

    /// An element's body is complete (or it had none).
    fn body_done(
        &mut self,
        start: u64,
        into: Dest,
        out: &mut Vec<Event>,
    ) -> Result<(), SplitError> {
        match into {
            Dest::Skip => {}
            Dest::Header { part, head_len } => {
                let done = self
                    .header
                    .done(part, start, head_len, self.limits.tracks_max)?;
                if let Some(numbers) = done {
                    self.track_numbers = numbers;
                }
            }
            Dest::Child {
                id,
                index,
                head_len,
            } => {
                let cluster = self.cluster.as_mut().expect("a child has its cluster");
                let timecode =
                    cluster.child_done(id, index, head_len, start, &self.track_numbers)?;
                if let Some(timecode) = timecode {
                    out.push(Event::FragmentStarted { timecode });
                }
            }
        }
        Ok(())
    }

    /// Expects a body of `size` bytes for the element whose head starts at
    /// `start` (completing it at once when empty).
    fn expect_body(
        &mut self,
        start: u64,
        size: u64,
        into: Dest,
        out: &mut Vec<Event>,
    ) -> Result<(), SplitError> {
        if size == 0 {
            return self.body_done(start, into, out);
        }
        self.body = Some(Body {
            start,
            remaining: size,
            into,
        });
        Ok(())
    }

    /// Takes one byte into the head; once the head is whole, acts on it.
    fn read_head<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<Event>,
    ) -> Result<&'a [u8], SplitError> {
        let Some((&byte, rest)) = input.split_first() else {
            return Ok(input);
        };
        if self.phase == Phase::AfterSegment {
            return Err(SplitError::invalid(
                self.offset,
                "bytes after the end of the Segment",
            ));
        }
        assert!(self.head_len < HEAD_LEN_MAX, "a 12-byte head always parses");
        self.head[self.head_len] = byte;
        self.head_len += 1;
        self.offset += 1;
        let start = self.offset - self.head_len as u64;
        match ebml::parse_head(&self.head[..self.head_len]) {
            Err(what) => Err(SplitError::invalid(start, what)),
            Ok(None) => Ok(rest),
            Ok(Some(head)) => {
                assert_eq!(
                    head.len, self.head_len,
                    "a head parses as soon as it is whole"
                );
                self.on_head(head, start, out)?;
                self.head_len = 0;
                Ok(rest)
            }
        }
    }

    /// An element's head was read; `start` is its upload offset.
    fn on_head(&mut self, head: Head, start: u64, out: &mut Vec<Event>) -> Result<(), SplitError> {
        if let Some(cluster) = &self.cluster {
            if !ebml::ends_unknown_cluster(head.id) {
                return self.on_child(head, start, out);
            }
            if cluster.end.is_some() {
                let what = format!("{} inside a Cluster", ebml::name(head.id));
                return Err(SplitError::invalid(start, what));
            }
            self.close_cluster(out)?;
        }
        let invalid = |what: &str| Err(SplitError::invalid(start, what));
        let name = ebml::name(head.id);
        match (self.phase, head.id) {
            (Phase::Start, id::EBML) => {
                self.phase = Phase::BeforeSegment;
                self.keep_header(Part::Ebml, head, start, out)
            }
            (Phase::Start, _) => invalid(&format!("not EBML: the upload starts with {name}")),
            (Phase::BeforeSegment, id::SEGMENT) => {
                self.segment_start = start;
                self.segment_end = head.size.map(|size| self.offset + size);
                self.phase = Phase::Prologue;
                Ok(())
            }
            (Phase::BeforeSegment, id::VOID | id::CRC32) => self.skip(head, start),
            (Phase::BeforeSegment, id::EBML) => invalid("second EBML header"),
            (Phase::BeforeSegment, _) => invalid(&format!("{name} where the Segment should start")),
            (Phase::Prologue | Phase::Clusters, _) => {
                // An unknown-size element (a Cluster) must at least start
                // inside a known-size Segment: it then ends where that does.
                let extent = head.size.unwrap_or(0) + head.len as u64;
                if let Some(end) = self.segment_end
                    && start + extent > end
                {
                    return invalid(&format!("{name} overruns its Segment"));
                }
                let part = match head.id {
                    id::INFO => Part::Info,
                    id::TRACKS => Part::Tracks,
                    id::EBML => return invalid("second EBML header"),
                    id::SEGMENT => return invalid("second Segment"),
                    id::CLUSTER => return self.open_cluster(head, start, out),
                    _ => return self.skip(head, start),
                };
                if self.phase == Phase::Clusters {
                    invalid(&format!("{name} after the first Cluster"))
                } else if self.header.has(part) {
                    invalid(&format!("second {name}"))
                } else {
                    self.keep_header(part, head, start, out)
                }
            }
            (Phase::AfterSegment, _) => unreachable!("read_head refuses bytes after the Segment"),
        }
    }

    /// A child of the open Cluster: kept (Timecode, SimpleBlock, BlockGroup)
    /// or skipped, after the size checks.
    fn on_child(&mut self, head: Head, start: u64, out: &mut Vec<Event>) -> Result<(), SplitError> {
        let cluster = self.cluster.as_mut().expect("on_child runs in a cluster");
        let name = ebml::name(head.id);
        let Some(size) = head.size else {
            return Err(SplitError::invalid(
                start,
                format!("{name} of unknown size in a Cluster"),
            ));
        };
        let total = size + head.len as u64;
        if cluster.end.is_some_and(|end| start + total > end) {
            return Err(SplitError::invalid(
                start,
                format!("{name} overruns its Cluster"),
            ));
        }
        if self.segment_end.is_some_and(|end| start + total > end) {
            return Err(SplitError::invalid(
                start,
                format!("{name} overruns its Segment"),
            ));
        }
        cluster.received += total;
        if cluster.received > self.limits.fragment_bytes_max as u64 {
            let (offset, size) = (cluster.start, cluster.received);
            return Err(SplitError::FragmentTooLarge { offset, size });
        }
        match head.id {
            id::TIMECODE if size > 8 => {
                Err(SplitError::invalid(start, "Timecode longer than 8 bytes"))
            }
            id::TIMECODE | id::SIMPLE_BLOCK | id::BLOCK_GROUP => {
                let index = cluster.len();
                cluster.keep(self.head.get(..head.len).unwrap_or_default());
                let into = Dest::Child {
                    id: head.id,
                    index,
                    head_len: head.len,
                };
                self.expect_body(start, size, into, out)
            }
            _ => self.skip(head, start),
        }
    }

    /// A header element: kept whole (within `header_bytes_max`), read once complete.
    fn keep_header(
        &mut self,
        part: Part,
        head: Head,
        start: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), SplitError> {
        let Some(size) = head.size else {
            let what = format!("{} of unknown size", ebml::name(head.id));
            return Err(SplitError::invalid(start, what));
        };
        let head_bytes = self.head.get(..head.len).unwrap_or_default();
        self.header
            .begin(head_bytes, size, start, self.limits.header_bytes_max)?;
        self.expect_body(
            start,
            size,
            Dest::Header {
                part,
                head_len: head.len,
            },
            out,
        )
    }

    /// A Cluster head at Segment level: emits the Header before the first
    /// one, then opens it within `fragment_bytes_max`.
    fn open_cluster(
        &mut self,
        head: Head,
        start: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), SplitError> {
        if self.phase == Phase::Prologue {
            out.push(Event::Header(self.header.take_header(start)?));
            self.phase = Phase::Clusters;
        }
        let size_seen = head.size.unwrap_or(0) + head.len as u64;
        if size_seen > self.limits.fragment_bytes_max as u64 {
            return Err(SplitError::FragmentTooLarge {
                offset: start,
                size: size_seen,
            });
        }
        let end = head.size.map(|size| self.offset + size);
        // The last fragment's size is the best guess (with room to grow by an
        // eighth); a known size bounds it (it is within the limit, above),
        // but is only taken up to twice the last (or 1 MiB): a cluster may
        // declare 50 MB and send little, or drop most of it (Void, CRC-32).
        let last = self.last_children_len;
        let expected = match head.size {
            Some(size) => (size as usize).min((2 * last).max(EXPECTED_FIRST)),
            None => last + last / 8,
        };
        self.cluster = Some(Cluster::new(start, head.len, end, expected));
        Ok(())
    }

    /// Skips an element's body (known size only).
    fn skip(&mut self, head: Head, start: u64) -> Result<(), SplitError> {
        let Some(size) = head.size else {
            let what = format!("{} of unknown size", ebml::name(head.id));
            return Err(SplitError::invalid(start, what));
        };
        if size > 0 {
            self.body = Some(Body {
                start,
                remaining: size,
                into: Dest::Skip,
            });
        }
        Ok(())
    }

    /// Between elements: ends the Cluster and the Segment whose known ends
    /// are reached (a Segment's end also ends an unknown-size Cluster).
    fn close_ended(&mut self, out: &mut Vec<Event>) -> Result<(), SplitError> {
        if self
            .cluster
            .as_ref()
            .is_some_and(|c| c.end == Some(self.offset))
        {
            self.close_cluster(out)?;
        }
        if self.segment_end == Some(self.offset)
            && matches!(self.phase, Phase::Prologue | Phase::Clusters)
        {
            if self.cluster.is_some() {
                self.close_cluster(out)?;
            }
            self.phase = Phase::AfterSegment;
        }
        Ok(())
    }

    fn close_cluster(&mut self, out: &mut Vec<Event>) -> Result<(), SplitError> {
        let cluster = self.cluster.take().expect("close_cluster has a cluster");
        let fragment = cluster.finish(&self.track_numbers)?;
        self.last_children_len = fragment.bytes.len() - FRAGMENT_HEAD_LEN;
        out.push(Event::Fragment(fragment));
        Ok(())
    }

    /// The upload ended.
    fn end(&mut self, out: &mut Vec<Event>) -> Result<(), SplitError> {
        if self.head_len > 0 {
            let offset = self.offset - self.head_len as u64;
            return Err(SplitError::Truncated { offset });
        }
        if let Some(body) = self.body {
            return Err(SplitError::Truncated { offset: body.start });
        }
        if let Some(cluster) = &self.cluster {
            if cluster.end.is_some() {
                return Err(SplitError::Truncated {
                    offset: cluster.start,
                });
            }
            self.close_cluster(out)?;
        }
        if self.segment_end.is_some() && matches!(self.phase, Phase::Prologue | Phase::Clusters) {
            return Err(SplitError::Truncated {
                offset: self.segment_start,
            });
        }
        Ok(())
    }
}
