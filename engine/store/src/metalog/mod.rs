//! Metadata log: a durable state machine. A service's metadata (the streams
//! catalog, Firehose delivery streams, Analytics applications, video streams,
//! event-source mappings) is a [`StateMachine`] whose changes are events; a
//! [`MetaLog`] checks each event, makes it durable, then applies it, and rebuilds
//! the state at open from a snapshot plus the events logged after it.
//!
//! Runtime-free: all I/O goes through [`Storage`], it never reads a clock (time
//! comes in with the events) and never spawns. Lives on the one core that owns
//! the service's metadata; not shared, one `apply` at a time (`&mut self`).
//!
//! Files in the log's directory, for a log named `<name>`:
//! - `<name>.snapshot`: JSON of the state with `"last_seq"` (the sequence number
//!   of the last event it holds) appended as its last field, written with
//!   [`write_file_atomic`] (temp file `<name>.tmp`, sync, rename, sync dir).
//! - `<name>.log`: the events after the snapshot, one crc frame each (layout and
//!   recovery rules in [`frame`]); payload = JSON `{"seq": u64, "event": Event}`.
//! - `<name>.log.tmp`: a fresh, empty log being prepared before it is renamed
//!   over `<name>.log`.
//!
//! The streams catalog is one instance: `<data-dir>/catalog/catalog.*`
//! (`catalog::Catalog`). Every other service gets `<data-dir>/meta/<service>/`
//! with files named after the service ([`MetaLog::open_service`]).
//!
//! Durability contract: [`MetaLog::apply`] checks the event, appends its frame,
//! syncs, and only then applies it in memory (durable before visible). Every
//! `snapshot_every` events the state is snapshotted, then the log is reset; log
//! events with `seq <= snapshot.last_seq` are skipped on replay, so a crash
//! between the two steps is harmless. Replay re-runs [`StateMachine::check`] on
//! every event and [`StateMachine::verify`] on the snapshot: a log that does not
//! apply is reported as corrupt, never skipped.

pub mod frame;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::io;
use std::path::{Path, PathBuf};

use riffle_protocol::{Error, ErrorCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::appender::Appender;
use crate::storage::{
    DMA_ALIGNMENT, Storage, StorageFile, align_down, read_file_atomic, write_file_atomic,
};
use frame::{FRAME_ALIGNMENT, encode_frame, frame_pad, scan_log};

pub use frame::FRAME_PAYLOAD_SIZE_MAX;

/// The directory under the data dir that holds every service's metadata log
/// (except the streams catalog, which predates it and keeps `catalog/`).
pub const META_DIR: &str = "meta";

/// Room for the frame's `{"seq":N,"event":...}` wrapping around an event: 37
/// bytes with a 20-digit seq.
pub const LOG_RECORD_OVERHEAD: usize = 64;
/// An event whose JSON is at most this long always fits in a frame. Services
/// that want to refuse a too-large change with their own message check against
/// it; [`MetaLog::apply`] refuses larger frames anyway, before writing anything.
pub const EVENT_SIZE_MAX: usize = FRAME_PAYLOAD_SIZE_MAX - LOG_RECORD_OVERHEAD;

/// Appender buffer size: metadata events are small and rare, one block is plenty.
const LOG_WRITE_SIZE: usize = DMA_ALIGNMENT;
/// Longest name of a log (and of a service directory).
const NAME_CHARS_MAX: usize = 64;

const _: () = assert!(r#"{"seq":18446744073709551615,"event":}"#.len() <= LOG_RECORD_OVERHEAD);

/// A service's metadata as a deterministic state machine over events.
///
/// `check` and `apply` must depend on the state and the event alone (no clock,
/// no configuration): replay re-runs them on events logged under another
/// configuration, possibly years ago. Validate client input against limits
/// before handing the event to [`MetaLog::apply`].
///
/// The state must serialize as a JSON object (a struct with named fields or a
/// map with string keys) without a `last_seq` key: the snapshot is that object
/// with `last_seq` appended. Fields added later should default when absent
/// (`#[serde(default)]`) so older snapshots and logs still read.
pub trait StateMachine: Default + Serialize + DeserializeOwned {
    /// A change; the unit of the log.
    type Event: Serialize + DeserializeOwned;

    /// Whether `event` applies to this state (existence, versions, the state's
    /// own invariants). No side effects. An error here is the caller's answer.
    fn check(&self, event: &Self::Event) -> Result<(), Error>;

    /// Applies an event that passed [`StateMachine::check`]. May panic on an
    /// unchecked one: that is a bug.
    fn apply(&mut self, event: Self::Event);

    /// Re-verifies, after reading a snapshot, what `apply` guarantees (the read
    /// side of a pair assertion across the disk). Also asserted before every
    /// snapshot is written.
    fn verify(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Why a metadata log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MetaLogError {
    #[error("metadata I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata file {path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MetaLogError + '_ {
    move |source| MetaLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A log payload. Generic so writing can borrow the event and reading own it.
#[derive(Serialize, Deserialize)]
struct LogRecord<E> {
    seq: u64,
    event: E,
}

/// The snapshot file's content, as written: the state's fields, then `last_seq`.
#[derive(Serialize)]
#[serde(bound(serialize = "S: Serialize"))]
struct SnapshotOut<'a, S> {
    #[serde(flatten)]
    state: &'a S,
    last_seq: u64,
}

/// Where a service's metadata log lives: `<data_dir>/meta/<service>/`.
pub fn service_dir(data_dir: &Path, service: &str) -> PathBuf {
    assert_name(service);
    data_dir.join(META_DIR).join(service)
}

/// Log and service names are ours (constants), never a client's: a bad one is a bug.
fn assert_name(name: &str) {
    let ok = !name.is_empty()
        && name.len() <= NAME_CHARS_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    assert!(ok, "bad metadata log name {name:?}: [a-z0-9-]{{1,64}}");
}

/// A state machine made durable in one directory: its snapshot and its log.
/// Lives on the core that owns the service's metadata; one `apply` at a time.
pub struct MetaLog<S: StateMachine, F: Storage> {
    storage: F,
    dir: PathBuf,
    snapshot_path: PathBuf,
    log_path: PathBuf,
    log_tmp_path: PathBuf,
    log: F::File,
    appender: Appender<<F::File as StorageFile>::Buf>,
    state: S,
    /// Sequence number of the last applied event (0: none yet).
    last_seq: u64,
    snapshot_every: u32,
    /// Events applied since the last snapshot (or in the log at open).
    events_since_snapshot: u32,
    /// Set by the first I/O failure; the files may no longer match `state`.
    poisoned: Option<String>,
}

impl<S: StateMachine, F: Storage> MetaLog<S, F> {
    /// Opens (or creates) a service's log in [`service_dir`]`(data_dir, service)`,
    /// its files named after the service.
    pub async fn open_service(
        storage: F,
        data_dir: &Path,
        service: &str,
        snapshot_every: u32,
    ) -> Result<MetaLog<S, F>, MetaLogError> {
        let dir = service_dir(data_dir, service);
        MetaLog::open(storage, &dir, service, snapshot_every).await
    }

    /// Opens (or creates) the log named `name` in `dir`: loads `<name>.snapshot`,
    /// then replays `<name>.log`. `snapshot_every` (at least 1) is how many events
    /// go to the log between snapshots.
    pub async fn open(
        storage: F,
        dir: &Path,
        name: &str,
        snapshot_every: u32,
    ) -> Result<MetaLog<S, F>, MetaLogError> {
        assert!(snapshot_every >= 1, "snapshot_every must be at least 1");
        assert_name(name);
        create_dir_durably(&storage, dir)
            .await
            .map_err(io_error(dir))?;

        let snapshot_path = dir.join(format!("{name}.snapshot"));
        let snapshot = match read_file_atomic(&storage, &snapshot_path).await {
            Ok(snapshot) => snapshot,
            // Truncated, or its crc does not match: corruption, not an I/O error.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(MetaLogError::Corrupt {
                    path: snapshot_path.clone(),
                    offset: 0,
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(io_error(&snapshot_path)(e)),
        };
        let (mut state, mut last_seq) = match snapshot {
            None => (S::default(), 0),
            Some(bytes) => {
                let corrupt = |reason: String| MetaLogError::Corrupt {
                    path: snapshot_path.clone(),
                    offset: 0,
                    reason,
                };
                // Through a map, not `#[serde(flatten)]`: flatten buffers the
                // fields and then cannot read map keys that are numbers
                // (`{"0": ...}` for a `BTreeMap<u32, _>`).
                let mut fields: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&bytes)
                        .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
                let last_seq = fields
                    .remove("last_seq")
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| corrupt("the snapshot has no last_seq".to_string()))?;
                let state: S = serde_json::from_value(serde_json::Value::Object(fields))
                    .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
                state.verify().map_err(corrupt)?;
                (state, last_seq)
            }
        };

        let log_path = dir.join(format!("{name}.log"));
        let existed = storage
            .exists(&log_path)
            .await
            .map_err(io_error(&log_path))?;
        let log = storage
            .open(&log_path, true)
            .await
            .map_err(io_error(&log_path))?;
        if !existed {
            storage.sync_dir(dir).await.map_err(io_error(dir))?;
        }
        let len = log.len().await.map_err(io_error(&log_path))?;
        let bytes = log
            .read_at(0, len as usize)
            .await
            .map_err(io_error(&log_path))?;
        let scan = scan_log(&bytes).map_err(|(offset, reason)| MetaLogError::Corrupt {
            path: log_path.clone(),
            offset,
            reason,
        })?;
        let events_since_snapshot = replay(&mut state, &mut last_seq, &scan, &log_path)?;

        // Appends continue right after the last good frame; a torn tail after it
        // is overwritten block by block (its leftovers beyond the new end are the
        // rest of one ASCII JSON payload, which cannot pass as a frame header).
        let end = scan.end;
        let appender = Appender::new(
            &log,
            end,
            &bytes[align_down(end) as usize..end as usize],
            LOG_WRITE_SIZE,
        );
        Ok(MetaLog {
            storage,
            dir: dir.to_path_buf(),
            snapshot_path,
            log_path,
            log_tmp_path: dir.join(format!("{name}.log.tmp")),
            log,
            appender,
            state,
            last_seq,
            snapshot_every,
            events_since_snapshot,
            poisoned: None,
        })
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    /// Sequence number of the last applied event (0: none yet). Never decreases.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Why the log refuses changes, if an I/O failure poisoned it.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// `Ok` unless an I/O failure poisoned the log: then the `Internal` error every
    /// [`MetaLog::apply`] answers.
    pub fn available(&self) -> Result<(), Error> {
        match &self.poisoned {
            None => Ok(()),
            Some(reason) => Err(Error::internal(format!(
                "the metadata in {} is unavailable after a storage failure: {reason}",
                self.dir.display()
            ))),
        }
    }

    /// Where the next frame goes: the log's length in bytes, without padding.
    pub fn log_end(&self) -> u64 {
        self.appender.end()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn snapshot_path(&self) -> &Path {
        &self.snapshot_path
    }

    /// Checks `event`, makes it durable, then applies it.
    ///
    /// On a refused event (its check, or a frame over [`FRAME_PAYLOAD_SIZE_MAX`])
    /// nothing is written and nothing changes. On an I/O error writing the log
    /// the state stays as before, the log is poisoned (every later call fails
    /// with `Internal`), and after a restart the event may or may not be there.
    /// If only the snapshot that follows a durable event fails, the event is
    /// reported `Ok` (it is durable and visible) and the log is poisoned.
    pub async fn apply(&mut self, event: S::Event) -> Result<(), Error> {
        self.available()?;
        self.state.check(&event)?;

        let seq = self.last_seq + 1;
        let payload =
            serde_json::to_vec(&LogRecord { seq, event: &event }).expect("events always encode");
        if payload.len() > FRAME_PAYLOAD_SIZE_MAX {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the change is too large to record ({} bytes, at most {FRAME_PAYLOAD_SIZE_MAX})",
                    payload.len()
                ),
            ));
        }
        if let Err(e) = self
            .append_durably(&encode_frame(&payload), frame_pad(payload.len()))
            .await
        {
            let reason = format!("writing {}: {e}", self.log_path.display());
            self.poisoned = Some(reason.clone());
            return Err(Error::internal(reason));
        }

        self.state.apply(event);
        self.last_seq = seq;
        self.events_since_snapshot += 1;
        if self.events_since_snapshot >= self.snapshot_every
            && let Err(e) = self.snapshot().await
        {
            self.poisoned = Some(format!(
                "snapshotting {}: {e}",
                self.snapshot_path.display()
            ));
        }
        Ok(())
    }

    /// Appends one frame, writes every job in order, syncs.
    async fn append_durably(&mut self, frame: &[u8], pad: usize) -> io::Result<()> {
        let at = self.appender.append(&self.log, frame, pad);
        assert_eq!(
            at % FRAME_ALIGNMENT as u64,
            0,
            "metadata frames are aligned"
        );
        while let Some(job) = self.appender.take_write(&self.log) {
            self.log.write_at(job.buf, job.pos).await?;
        }
        assert_eq!(self.appender.pending_bytes(), 0);
        self.log.sync().await
    }

    /// Writes the snapshot, then starts an empty log.
    ///
    /// Order: the snapshot is durable before the log is touched, so at every
    /// instant the snapshot plus the log hold every acknowledged event (a crash
    /// in between leaves old events in the log, which replay skips by seq).
    /// The log is reset by renaming a synced empty file over it rather than by
    /// truncating in place: the rename is atomic, so the log is either the old
    /// one or empty, and the new log can never hold stale frames from the old
    /// one (a truncate that is not yet durable, followed by new frames at byte 0,
    /// could come back after a crash as new frames + old frames, which recovery
    /// would rightly call corruption).
    async fn snapshot(&mut self) -> io::Result<()> {
        if let Err(why) = self.state.verify() {
            panic!(
                "metadata state in {} broke its invariants after seq {}: {why}",
                self.dir.display(),
                self.last_seq
            );
        }
        let bytes = serde_json::to_vec(&SnapshotOut {
            state: &self.state,
            last_seq: self.last_seq,
        })
        .expect("the state serializes as a JSON object (see StateMachine)");
        write_file_atomic(&self.storage, &self.snapshot_path, &bytes).await?;

        {
            let fresh = self.storage.open(&self.log_tmp_path, true).await?;
            fresh.truncate(0).await?;
            fresh.sync().await?;
        }
        self.storage
            .rename(&self.log_tmp_path, &self.log_path)
            .await?;
        self.storage.sync_dir(&self.dir).await?;
        self.log = self.storage.open(&self.log_path, false).await?;
        self.appender = Appender::new(&self.log, 0, &[], LOG_WRITE_SIZE);
        self.events_since_snapshot = 0;
        Ok(())
    }
}

/// Creates `dir` and whichever of its parents are missing, and makes each new
/// directory's entry durable (syncs its parent).
async fn create_dir_durably<F: Storage>(storage: &F, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() || storage.exists(ancestor).await? {
            break;
        }
        missing.push(ancestor);
    }
    if missing.is_empty() {
        return Ok(());
    }
    storage.create_dir_all(dir).await?;
    for created in missing.iter().rev() {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        storage.sync_dir(parent).await?;
    }
    Ok(())
}

/// Applies the log's frames to the snapshot's state. Returns how many were
/// applied (not skipped as already in the snapshot).
fn replay<S: StateMachine>(
    state: &mut S,
    last_seq: &mut u64,
    scan: &frame::LogScan<'_>,
    path: &Path,
) -> Result<u32, MetaLogError> {
    let corrupt = |offset: u64, reason: String| MetaLogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let snapshot_seq = *last_seq;
    let mut previous_seq: Option<u64> = None;
    let mut applied = 0;
    for &(offset, payload) in &scan.frames {
        // The crc matched, so these are the bytes we wrote: failing to decode
        // them is corruption (or a bug), never a torn write.
        let record: LogRecord<S::Event> = serde_json::from_slice(payload)
            .map_err(|e| corrupt(offset, format!("undecodable event: {e}")))?;
        if let Some(previous) = previous_seq
            && record.seq != previous + 1
        {
            return Err(corrupt(
                offset,
                format!("event seq {} follows seq {previous}", record.seq),
            ));
        }
        previous_seq = Some(record.seq);
        if record.seq <= snapshot_seq {
            continue;
        }
        if record.seq != *last_seq + 1 {
            let reason = format!("event seq {} does not follow seq {}", record.seq, *last_seq);
            return Err(corrupt(offset, reason));
        }
        state.check(&record.event).map_err(|e| {
            corrupt(
                offset,
                format!("event seq {} does not apply: {e}", record.seq),
            )
        })?;
        state.apply(record.event);
        *last_seq = record.seq;
        applied += 1;
    }
    Ok(applied)
}
