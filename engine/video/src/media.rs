//! Each video stream's fragment index at run time, by internal stream
//! name: made empty when a stream is created, rebuilt from the stored
//! records when the server starts ([`Media::rebuild`]), dropped when the
//! stream is deleted.
//!
//! Shared by every core: PutMedia sessions (on whichever core took the
//! connection) give numbers and add fragments, readers look them up. A
//! lock per stream, held for a map operation only (a stream takes at most
//! a few fragments a second), never across an await. Readers waiting for
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

/// AWS: at most 3 GetMedia connections per stream.
pub(crate) const READERS_MAX: usize = 3;

/// One stream's index, its waiting readers and its reader count.
#[derive(Default)]
pub(crate) struct StreamMedia {
    pub(crate) index: Mutex<FragmentIndex>,
    waiters: Mutex<Vec<flume::Sender<()>>>,
    readers: AtomicUsize,
}

/// A GetMedia connection's place among a stream's readers, given back
/// when dropped.
pub(crate) struct ReaderPlace(Arc<StreamMedia>);

impl Drop for ReaderPlace {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::Relaxed);
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

    /// A channel that gets a message after each change from now on.
    pub(crate) fn watch(&self) -> flume::Receiver<()> {
        let (tx, rx) = flume::bounded(1);
        self.waiters.lock().unwrap().push(tx);
        rx
    }

    /// A reader's place, if fewer than `READERS_MAX` read now.
    pub(crate) fn reader(self: &Arc<Self>) -> Option<ReaderPlace> {
        let n = self.readers.fetch_add(1, Ordering::Relaxed);
        let place = ReaderPlace(self.clone());
        (n < READERS_MAX).then_some(place)
    }
}

/// One stream's media, shared.
pub(crate) type SharedIndex = Arc<StreamMedia>;

/// Every video stream's index.
#[derive(Default)]
pub(crate) struct Media {
    streams: Mutex<HashMap<String, SharedIndex>>,
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
                rebuild.record(r.offset, r.data());
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
