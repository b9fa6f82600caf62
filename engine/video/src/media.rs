//! Each video stream's fragment index at run time, by internal stream
//! name: made empty on first use, rebuilt from the stored records when the
//! server starts ([`Media::rebuild`]), pruned to the stream's retention as
//! fragments are stored and before it is listed ([`prune`]), dropped when
//! the stream is deleted.
//!
//! Shared by every core: PutMedia sessions (on whichever core took the
//! connection) give numbers and add fragments, readers look them up. A
//! lock per stream, never held across an await: for a map operation, or a
//! scan of the index (a time lookup, a ListFragments page: a stream holds
//! some thousands of fragments an hour). Readers waiting for
//! the next fragment each hold a channel the sessions signal on a change
//! (flume: it wakes a task on another core).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use riffle_engine::Engine;
use riffle_protocol::Error;
use riffle_store::iterator::IteratorType;

use crate::index::{FragmentIndex, Rebuild};

/// Records read per call of a rebuild scan.
const REBUILD_READ_MAX: u32 = 1_000;

/// Which of a stream's connection limits a reader counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReaderKind {
    /// GetMedia: AWS allows 3 connections per stream.
    Media,
    /// GetMediaForFragmentList: AWS allows 5.
    FragmentList,
}

impl ReaderKind {
    pub(crate) fn max(self) -> usize {
        match self {
            ReaderKind::Media => 3,
            ReaderKind::FragmentList => 5,
        }
    }
}

/// One stream's index, its waiting readers and its reader counts.
#[derive(Default)]
pub(crate) struct StreamMedia {
    pub(crate) index: Mutex<FragmentIndex>,
    waiters: Mutex<Vec<flume::Sender<()>>>,
    readers: [AtomicUsize; 2],
}

/// A reading connection's place among a stream's readers, given back
/// when dropped.
pub(crate) struct ReaderPlace(Arc<StreamMedia>, ReaderKind);

impl Drop for ReaderPlace {
    fn drop(&mut self) {
        self.0.readers[self.1 as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl StreamMedia {
    /// Wakes every waiting reader (a fragment stored or given up).
    pub(crate) fn changed(&self) {
        self.waiters
            .lock()
            .unwrap()
            .retain(|w| !matches!(w.try_send(()), Err(flume::TrySendError::Disconnected(_))));
    }

    /// A channel that gets a message after each change from now on (the
    /// channels of readers gone are dropped here too).
    pub(crate) fn watch(&self) -> flume::Receiver<()> {
        let (tx, rx) = flume::bounded(1);
        let mut waiters = self.waiters.lock().unwrap();
        waiters.retain(|w| !w.is_disconnected());
        waiters.push(tx);
        rx
    }

    /// A reader's place, if fewer than `kind.max()` read now.
    pub(crate) fn reader(self: &Arc<Self>, kind: ReaderKind) -> Option<ReaderPlace> {
        let n = self.readers[kind as usize].fetch_add(1, Ordering::Relaxed);
        let place = ReaderPlace(self.clone(), kind);
        (n < kind.max()).then_some(place)
    }
}

/// One stream's media, shared.
pub(crate) type SharedIndex = Arc<StreamMedia>;

/// Every video stream's index.
#[derive(Default)]
pub(crate) struct Media {
    streams: Mutex<HashMap<String, SharedIndex>>,
}

/// Forgets the fragments of `media` that retention removed from `internal`
/// (before its trim horizon).
pub(crate) async fn prune(engine: &Engine, media: &StreamMedia, internal: &str) {
    if let Ok(cursor) = engine
        .shard_cursor(internal, 0, IteratorType::TrimHorizon)
        .await
    {
        media.index.lock().unwrap().drop_before(cursor.offset);
    }
}

impl Media {
    /// The media of the stream stored in `internal` (empty if none yet).
    pub(crate) fn index(&self, internal: &str) -> SharedIndex {
        self.streams
            .lock()
            .unwrap()
            .entry(internal.to_string())
            .or_default()
            .clone()
    }

    pub(crate) fn forget(&self, internal: &str) {
        self.streams.lock().unwrap().remove(internal);
    }

    /// Rebuilds the index of `internal` from its records (every one from
    /// the trim horizon to the tip). Runs on a core.
    pub(crate) async fn rebuild(&self, engine: &Engine, internal: &str) -> Result<usize, Error> {
        let mut rebuild = Rebuild::default();
        let mut cursor = engine
            .shard_cursor(internal, 0, IteratorType::TrimHorizon)
            .await?;
        loop {
            let got = engine.read_at(&cursor, Some(REBUILD_READ_MAX), 0).await?;
            for r in got.records() {
                rebuild.record(r.offset, r.partition_key(), r.data());
            }
            if got.record_count == 0 || !got.behind() {
                break;
            }
            cursor.offset = got.next_offset();
        }
        let index = rebuild.finish();
        let count = index.len();
        *self.index(internal).index.lock().unwrap() = index;
        Ok(count)
    }
}
