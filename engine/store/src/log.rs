//! The per-shard log: segments on disk, group-commit write jobs, reads, retention.
//!
//! Lives on the shard's owning core. [`ShardLog`] is owned by the shard's pump,
//! the only place that appends, rolls or deletes segments. Readers and in-flight
//! sync tasks share the [`LogView`] (`Rc<RefCell<_>>`, borrowed only between
//! awaits, never across one): the segment list with file handles and indexes, and
//! the watermarks.
//!
//! Offsets: every record has an offset, from 0, dense within a shard. Watermarks,
//! each "all records below this offset are ...": `next` (assigned), `written` (write
//! completed), `durable` (covered by a completed sync), `visible` (readable: equals
//! `durable` when acknowledgement waits for fsync, `written` otherwise).
//!
//! Failure policy: any failed write or sync poisons the log. It stops accepting
//! appends (they fail with `StorageFailed`), nothing is acknowledged past the last
//! durable offset, and reads of visible data keep working. A failed fsync leaves
//! the page cache in an unknown state, so the only way back is to reopen the log,
//! which recovers from what is on disk.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use riffle_protocol::batch::{self, BatchHeader, ValidBatch};
use riffle_protocol::{Error, ErrorCode};

use crate::appender::{Appender, WriteJob};
use crate::cipher::{self, BatchKeys, DataKey};
use crate::index::{SealedIndexMeta, SegmentIndex};
use crate::recent::{RecentBatches, SpanBuf};
use crate::segment::{self, index_file_name, parse_segment_name, segment_file_name};
use crate::storage::{
    DMA_ALIGNMENT, IoBuf, Storage, StorageFile, align_down, align_up, read_file_atomic,
    write_file_atomic,
};

/// How a shard's log is laid out and flushed.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll to a new segment before one would exceed this many bytes.
    pub segment_size_max: u64,
    /// Roll a non-empty segment whose first record is older than this.
    pub segment_age_ms_max: i64,
    /// Size of an appender buffer: the usual size of one write.
    pub write_size: usize,
    /// One index entry per this many segment bytes.
    pub index_interval_bytes: u32,
    /// Bound on bytes written but not yet synced; the pump stops taking appends
    /// beyond it. It is also the torn-tail window of recovery (see `segment`).
    pub unsynced_bytes_max: u64,
    /// Bytes read from a segment at a time.
    pub read_size: usize,
    /// Acknowledge (make visible) only durable records.
    pub durable_acks: bool,
    /// Reserve space ahead of the active segment's data, so its writes do not
    /// extend the file (ext4 serializes extending direct writes per file).
    pub preallocate: bool,
    /// How far ahead: space is reserved in steps of this many bytes (up to
    /// `segment_size_max`), so an idle shard holds one step, not a whole segment
    /// (500 shards x 256 MiB would be 125 GiB of reserved disk).
    pub preallocate_step: u64,
    /// Bytes of recently appended batches each shard keeps in memory for readers
    /// near the tip (see `recent`); 0 turns the cache off.
    pub recent_bytes_max: usize,
    /// Bytes a shard keeps for the readers following it (delivery tasks)
    /// that they have not read yet (see `recent`), at least
    /// `recent_bytes_max`; nothing when the cache is off (`recent_bytes_max` 0).
    /// Per shard: a node's most is this times its followed shards.
    pub follow_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_size_max: 256 << 20,
            segment_age_ms_max: 24 * 3600 * 1000,
            write_size: 1 << 20,
            index_interval_bytes: 64 << 10,
            unsynced_bytes_max: 128 << 20,
            read_size: 1 << 20,
            durable_acks: true,
            preallocate: true,
            preallocate_step: 16 << 20,
            recent_bytes_max: 8 << 20,
            follow_bytes_max: 64 << 20,
        }
    }
}

const _: () = assert!((64u64 << 10).is_multiple_of(DMA_ALIGNMENT as u64));

/// One segment as readers see it.
pub struct SegmentView<F> {
    pub base_offset: u64,
    pub file: Rc<F>,
    pub path: PathBuf,
    pub index: SegmentIndex,
    /// Offset after the last record appended to this segment.
    pub next_offset: u64,
    pub data_len: u64,
    pub first_arrival_ms: Option<i64>,
    pub last_arrival_ms: Option<i64>,
    pub sealed: bool,
}

/// State shared by the pump, readers and sync tasks of one shard.
pub struct LogView<F> {
    pub segments: BTreeMap<u64, SegmentView<F>>,
    pub next_offset: u64,
    pub written_offset: u64,
    pub durable_offset: u64,
    pub visible_offset: u64,
    /// First offset still retained.
    pub trim_offset: u64,
    durable_acks: bool,
    pub failed: Option<String>,
    /// The newest appended batches, for reads near the tip.
    pub recent: RecentBatches,
}

impl<F> LogView<F> {
    /// Records a completed sync that covered every record below `offset`.
    pub fn mark_durable(&mut self, offset: u64) {
        if self.failed.is_none() && offset > self.durable_offset {
            assert!(offset <= self.written_offset, "durable past written");
            self.durable_offset = offset;
            if self.durable_acks {
                self.visible_offset = offset;
            }
        }
    }

    /// Records a failed write or sync: the log stops acknowledging.
    pub fn poison(&mut self, why: String) {
        if self.failed.is_none() {
            self.failed = Some(why);
        }
    }

    /// Arrival time of the newest visible record's segment, for MillisBehindLatest.
    pub fn tip_arrival_ms(&self) -> Option<i64> {
        self.segments.values().rev().find_map(|s| s.last_arrival_ms)
    }

    fn segment_for(&self, offset: u64) -> Option<&SegmentView<F>> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
    }
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub record_count: u32,
    /// Offset after the batch: the batch is durable once `durable_offset >= end_offset`.
    pub end_offset: u64,
    pub arrival_ms: i64,
}

/// A write for the pump to perform, then report with [`ShardLog::write_done`].
pub struct LogWrite<F: StorageFile> {
    pub file: Rc<F>,
    pub job: WriteJob<F::Buf>,
}

/// A shard's log, owned by its pump.
pub struct ShardLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    config: LogConfig,
    view: Rc<RefCell<LogView<S::File>>>,
    active_base: u64,
    appender: Appender<<S::File as StorageFile>::Buf>,
    /// (end position, next offset) of appended batches not yet written.
    unwritten: VecDeque<(u64, u64)>,
    last_arrival_ms: i64,
    /// Bytes of the active segment reserved so far (`preallocate`).
    reserved: u64,
    /// The frame of the last batch encrypted (reused: no allocation per batch).
    frame: Vec<u8>,
}

/// The reservation for an active segment holding `data_len` bytes: one step
/// past the data, whole steps, at most the segment size.
fn reservation(config: &LogConfig, data_len: u64) -> u64 {
    let step = config.preallocate_step.max(DMA_ALIGNMENT as u64);
    ((data_len / step + 1) * step).min(config.segment_size_max.max(align_up(data_len)))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::StorageFailed,
        format!("{what} {}: {e}", path.display()),
    )
}

impl<S: Storage> ShardLog<S> {
    /// Opens (or creates) the log in `dir`: loads sealed segments' indexes
    /// (rebuilding missing or stale ones), scans the last segment, cuts a torn tail.
    pub async fn open(storage: S, dir: &Path, config: LogConfig) -> Result<ShardLog<S>, Error> {
        storage
            .create_dir_all(dir)
            .await
            .map_err(|e| io_error("create", dir, e))?;
        let names = storage
            .list_dir(dir)
            .await
            .map_err(|e| io_error("list", dir, e))?;
        let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        bases.sort_unstable();
        if bases.is_empty() {
            let path = dir.join(segment_file_name(0));
            storage
                .open(&path, true)
                .await
                .map_err(|e| io_error("create", &path, e))?;
            storage
                .sync_dir(dir)
                .await
                .map_err(|e| io_error("sync", dir, e))?;
            bases.push(0);
        }
        let mut segments = BTreeMap::new();
        let last = *bases.last().unwrap();
        let mut tail = Vec::new();
        let mut next_offset = bases[0];
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(segment_file_name(base));
            if base != next_offset {
                return Err(Error::internal(format!(
                    "{}: segment starts at offset {base} but the previous one ends at {next_offset}",
                    path.display()
                )));
            }
            let file = storage
                .open(&path, false)
                .await
                .map_err(|e| io_error("open", &path, e))?;
            let sealed = base != last;
            let seg = if sealed {
                let index_path = dir.join(index_file_name(base));
                let loaded = match read_file_atomic(&storage, &index_path).await {
                    Ok(Some(bytes)) => SegmentIndex::decode(&bytes, base)
                        .filter(|ix| bases.get(i + 1) == Some(&ix.next_offset)),
                    _ => None,
                };
                match loaded {
                    Some(ix) => SegmentView {
                        base_offset: base,
                        file: Rc::new(file),
                        path,
                        index: ix.index,
                        next_offset: ix.next_offset,
                        data_len: ix.data_len,
                        first_arrival_ms: Some(ix.first_arrival_ms),
                        last_arrival_ms: Some(ix.last_arrival_ms),
                        sealed: true,
                    },
                    None => {
                        let seg = Self::scan_file(file, path, base, &config, None).await?.0;
                        write_index(&storage, dir, &seg).await?;
                        seg
                    }
                }
            } else {
                let (seg, torn_at, bytes) =
                    Self::scan_file(file, path, base, &config, Some(config.unsynced_bytes_max))
                        .await?;
                if torn_at.is_some() {
                    // Cut the torn tail for good: zero the rest of the last block and
                    // drop later blocks, so stale bytes can never pass for batches.
                    let keep = align_up(seg.data_len);
                    seg.file
                        .truncate(keep)
                        .await
                        .map_err(|e| io_error("truncate", &seg.path, e))?;
                    let mut buf = seg.file.alloc(DMA_ALIGNMENT.max(1));
                    let block = align_down(seg.data_len);
                    if keep > block {
                        let n = (seg.data_len - block) as usize;
                        buf.as_bytes_mut()[..n]
                            .copy_from_slice(&bytes[block as usize..seg.data_len as usize]);
                        buf.as_bytes_mut()[n..].fill(0);
                        seg.file
                            .write_at(buf, block)
                            .await
                            .map_err(|e| io_error("write", &seg.path, e))?;
                    }
                }
                seg.file
                    .sync()
                    .await
                    .map_err(|e| io_error("sync", &seg.path, e))?;
                tail = bytes[align_down(seg.data_len) as usize..seg.data_len as usize].to_vec();
                seg
            };
            next_offset = seg.next_offset;
            segments.insert(base, seg);
        }
        let active = segments.get(&last).unwrap();
        let mut reserved = 0;
        if config.preallocate {
            reserved = reservation(&config, active.data_len);
            active
                .file
                .allocate(reserved)
                .await
                .map_err(|e| io_error("allocate", &active.path, e))?;
        }
        let appender = Appender::new(&*active.file, active.data_len, &tail, config.write_size);
        let last_arrival_ms = segments
            .values()
            .rev()
            .find_map(|s| s.last_arrival_ms)
            .unwrap_or(i64::MIN);
        let trim_offset = bases[0];
        let view = LogView {
            segments,
            next_offset,
            written_offset: next_offset,
            durable_offset: next_offset,
            visible_offset: next_offset,
            trim_offset,
            durable_acks: config.durable_acks,
            failed: None,
            recent: RecentBatches::new(config.recent_bytes_max, config.follow_bytes_max),
        };
        Ok(ShardLog {
            reserved,
            frame: Vec::new(),
            storage,
            dir: dir.to_path_buf(),
            config,
            view: Rc::new(RefCell::new(view)),
            active_base: last,
            appender,
            unwritten: VecDeque::new(),
            last_arrival_ms,
        })
    }

    async fn scan_file(
        file: S::File,
        path: PathBuf,
        base: u64,
        config: &LogConfig,
        tail_window: Option<u64>,
    ) -> Result<
        (
            SegmentView<S::File>,
            Option<u64>,
            <S::File as StorageFile>::ReadBuf,
        ),
        Error,
    > {
        // Reserved space past the written data reads as zeros: skip it.
        let len = file
            .data_end()
            .await
            .map_err(|e| io_error("stat", &path, e))?;
        let bytes = file
            .read_at(0, len as usize)
            .await
            .map_err(|e| io_error("read", &path, e))?;
        let out = segment::scan(&bytes, base, config.index_interval_bytes, tail_window)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        let seg = SegmentView {
            base_offset: base,
            file: Rc::new(file),
            path,
            index: out.index,
            next_offset: out.next_offset,
            data_len: out.end,
            first_arrival_ms: out.first_arrival_ms,
            last_arrival_ms: out.last_arrival_ms,
            sealed: tail_window.is_none(),
        };
        Ok((seg, out.torn_at, bytes))
    }

    /// The view shared with readers and sync tasks.
    pub fn view(&self) -> &Rc<RefCell<LogView<S::File>>> {
        &self.view
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn next_offset(&self) -> u64 {
        self.view.borrow().next_offset
    }

    /// Bytes appended but not yet covered by a completed sync (admission control).
    pub fn unsynced_bytes(&self) -> u64 {
        let v = self.view.borrow();
        let active = &v.segments[&self.active_base];
        // Approximation in bytes: everything after the durable point in the active segment.
        if v.durable_offset >= active.next_offset {
            0
        } else {
            let from = active.index.seek_offset(v.durable_offset).0 as u64;
            self.appender.end() - from
        }
    }

    /// Whether a batch of `batch_len` bytes must go to a new segment first.
    pub fn needs_roll(&self, batch_len: usize, now_ms: i64) -> bool {
        let v = self.view.borrow();
        let active = &v.segments[&self.active_base];
        if active.next_offset == active.base_offset {
            return false; // never roll an empty segment
        }
        self.appender.end() + batch::padded(batch_len) as u64 > self.config.segment_size_max
            || active
                .first_arrival_ms
                .is_some_and(|t| now_ms - t >= self.config.segment_age_ms_max)
    }

    /// Appends a batch that passed `batch::validate` or was built by the server
    /// (the type says so): assigns offsets and arrival time (never earlier than the
    /// previous batch's), seals it, and buffers it for the next write. Synchronous:
    /// no I/O.
    pub fn append(&mut self, batch: &mut ValidBatch, now_ms: i64) -> Result<Appended, Error> {
        self.append_under(batch, now_ms, None)
    }

    /// [`ShardLog::append`] of a batch of an encrypted stream when `key` is
    /// given: the batch carries the data key's reference (`key_ref`, not 0)
    /// and is written to its segment encrypted under it (`cipher`).
    pub fn append_under(
        &mut self,
        batch: &mut ValidBatch,
        now_ms: i64,
        key: Option<(u32, &DataKey)>,
    ) -> Result<Appended, Error> {
        let mut v = self.view.borrow_mut();
        if let Some(why) = &v.failed {
            return Err(Error::new(
                ErrorCode::StorageFailed,
                format!("shard storage failed: {why}"),
            ));
        }
        let header = batch.view().header;
        let arrival_ms = now_ms.max(self.last_arrival_ms);
        let base_offset = v.next_offset;
        batch.set_key_ref(key.map_or(0, |(key_ref, _)| key_ref));
        batch.seal(base_offset, arrival_ms);
        let bytes = match key {
            Some((_, key)) => {
                key.encrypt(batch.as_slice(), &mut self.frame)?;
                &self.frame[..]
            }
            None => &batch.as_slice()[..header.length as usize],
        };
        let length = bytes.len();
        let file = v.segments[&self.active_base].file.clone();
        let pos = self
            .appender
            .append(&*file, bytes, batch::padded(length) - length);
        let end_offset = base_offset + header.record_count as u64;
        let seg = v.segments.get_mut(&self.active_base).unwrap();
        seg.index.observe(
            base_offset,
            pos as u32,
            arrival_ms,
            self.config.index_interval_bytes,
        );
        seg.first_arrival_ms.get_or_insert(arrival_ms);
        seg.last_arrival_ms = Some(arrival_ms);
        seg.next_offset = end_offset;
        seg.data_len = self.appender.end();
        v.next_offset = end_offset;
        self.last_arrival_ms = arrival_ms;
        self.unwritten.push_back((self.appender.end(), end_offset));
        Ok(Appended {
            base_offset,
            record_count: header.record_count,
            end_offset,
            arrival_ms,
        })
    }

    /// [`ShardLog::append`], then keeps the sealed batch in the recent-batches
    /// cache for readers near the tip (the buffer is kept, not copied).
    pub fn append_owned(&mut self, batch: ValidBatch, now_ms: i64) -> Result<Appended, Error> {
        self.append_owned_under(batch, now_ms, None)
    }

    /// [`ShardLog::append_owned`] under a data key ([`ShardLog::append_under`]):
    /// the cache keeps the batch in the clear, with its key reference.
    pub fn append_owned_under(
        &mut self,
        mut batch: ValidBatch,
        now_ms: i64,
        key: Option<(u32, &DataKey)>,
    ) -> Result<Appended, Error> {
        let appended = self.append_under(&mut batch, now_ms, key)?;
        self.view.borrow_mut().recent.push(
            appended.base_offset,
            appended.end_offset,
            batch,
            now_ms,
        );
        Ok(appended)
    }

    /// Extends the active segment's reservation by a step when the appended data
    /// comes within half a step of its end. Call before performing writes. A
    /// failed reservation (returned for the caller to log) does not poison the
    /// log: the writes then extend the file, and fail on their own if the disk is
    /// full. It is not retried within the same step.
    pub async fn reserve_ahead(&mut self) -> Result<(), Error> {
        if !self.config.preallocate {
            return Ok(());
        }
        let (file, path, data_len) = {
            let v = self.view.borrow();
            let seg = &v.segments[&self.active_base];
            (seg.file.clone(), seg.path.clone(), seg.data_len)
        };
        let step = self.config.preallocate_step;
        if data_len + step / 2 < self.reserved || self.reserved >= self.config.segment_size_max {
            return Ok(());
        }
        let len = reservation(&self.config, data_len + step / 2);
        if len <= self.reserved {
            return Ok(());
        }
        let result = file.allocate(len).await;
        self.reserved = len;
        result.map_err(|e| io_error("allocate", &path, e))
    }

    /// The next write to perform. Writes must be performed one at a time, in order.
    pub fn take_write(&mut self) -> Option<LogWrite<S::File>> {
        let file = self.view.borrow().segments[&self.active_base].file.clone();
        let job = self.appender.take_write(&*file)?;
        Some(LogWrite { file, job })
    }

    /// Reports a completed write ending at position `end`; returns the written
    /// offset, which a sync issued now will make durable.
    pub fn write_done(&mut self, end: u64) -> u64 {
        let mut v = self.view.borrow_mut();
        if v.failed.is_some() {
            return v.written_offset;
        }
        while let Some(&(pos, offset)) = self.unwritten.front() {
            if pos > end {
                break;
            }
            self.unwritten.pop_front();
            v.written_offset = offset;
            if !v.durable_acks {
                v.visible_offset = offset;
            }
        }
        v.written_offset
    }

    /// Writes everything appended and syncs it; returns the durable offset. The
    /// simple, serial form of the pipeline the engine runs.
    pub async fn flush(&mut self) -> Result<u64, Error> {
        self.check_failed()?;
        while let Some(w) = self.take_write() {
            let end = w.job.end;
            if let Err(e) = w.file.write_at(w.job.buf, w.job.pos).await {
                let err = io_error("write", &self.dir, e);
                self.view.borrow_mut().poison(err.message.clone());
                return Err(err);
            }
            self.write_done(end);
        }
        let (file, covered) = {
            let v = self.view.borrow();
            (v.segments[&self.active_base].file.clone(), v.written_offset)
        };
        if covered > self.view.borrow().durable_offset {
            if let Err(e) = file.sync().await {
                let err = io_error("sync", &self.dir, e);
                self.view.borrow_mut().poison(err.message.clone());
                return Err(err);
            }
            self.view.borrow_mut().mark_durable(covered);
        }
        self.check_failed()?;
        Ok(self.view.borrow().durable_offset)
    }

    fn check_failed(&self) -> Result<(), Error> {
        match &self.view.borrow().failed {
            Some(why) => Err(Error::new(
                ErrorCode::StorageFailed,
                format!("shard storage failed: {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Seals the active segment (flushes it, writes its index file) and starts a
    /// new one at the next offset. The caller must have no writes or syncs of the
    /// active segment in flight.
    pub async fn roll(&mut self) -> Result<(), Error> {
        self.flush().await?;
        let result = self.roll_inner().await;
        if let Err(e) = &result {
            self.view.borrow_mut().poison(e.message.clone());
        }
        result
    }

    async fn roll_inner(&mut self) -> Result<(), Error> {
        let (sealed_file, sealed_path, sealed_len) = {
            let mut v = self.view.borrow_mut();
            let seg = v.segments.get_mut(&self.active_base).unwrap();
            seg.sealed = true;
            (seg.file.clone(), seg.path.clone(), seg.data_len)
        };
        if self.config.preallocate {
            // Give back the reserved space the sealed segment did not use.
            sealed_file
                .truncate(align_up(sealed_len))
                .await
                .map_err(|e| io_error("truncate", &sealed_path, e))?;
        }
        // Encode under a short borrow: readers and sync tasks share the view.
        let (path, bytes) =
            index_file_bytes(&self.dir, &self.view.borrow().segments[&self.active_base]);
        write_file_atomic(&self.storage, &path, &bytes)
            .await
            .map_err(|e| io_error("write", &path, e))?;
        let base = self.next_offset();
        let path = self.dir.join(segment_file_name(base));
        let file = self
            .storage
            .open(&path, true)
            .await
            .map_err(|e| io_error("create", &path, e))?;
        file.truncate(0)
            .await
            .map_err(|e| io_error("truncate", &path, e))?;
        self.reserved = 0;
        if self.config.preallocate {
            let len = reservation(&self.config, 0);
            file.allocate(len)
                .await
                .map_err(|e| io_error("allocate", &path, e))?;
            self.reserved = len;
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(|e| io_error("sync", &self.dir, e))?;
        self.appender = Appender::new(&file, 0, &[], self.config.write_size);
        self.view.borrow_mut().segments.insert(
            base,
            SegmentView {
                base_offset: base,
                file: Rc::new(file),
                path,
                index: SegmentIndex::default(),
                next_offset: base,
                data_len: 0,
                first_arrival_ms: None,
                last_arrival_ms: None,
                sealed: false,
            },
        );
        self.active_base = base;
        Ok(())
    }

    /// Deletes whole segments whose newest record arrived before `now_ms -
    /// retention_ms`. An expired active segment is rolled first. Returns how many
    /// segments were deleted. The caller must have no writes in flight.
    pub async fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<usize, Error> {
        let cutoff = now_ms.saturating_sub(retention_ms);
        let active_expired = {
            let v = self.view.borrow();
            let a = &v.segments[&self.active_base];
            a.last_arrival_ms.is_some_and(|t| t < cutoff)
        };
        if active_expired {
            self.roll().await?;
        }
        let mut deleted = 0;
        loop {
            let victim = {
                let v = self.view.borrow();
                let (&base, seg) = v.segments.iter().next().unwrap();
                (base != self.active_base && seg.last_arrival_ms.is_none_or(|t| t < cutoff))
                    .then(|| (base, seg.path.clone()))
            };
            let Some((base, path)) = victim else { break };
            // Remove the segment file first: if that fails nothing changed; once
            // it is gone the trim horizon moves forward for readers and on reopen.
            self.storage
                .remove_file(&path)
                .await
                .map_err(|e| io_error("remove", &path, e))?;
            {
                let mut v = self.view.borrow_mut();
                v.segments.remove(&base);
                v.trim_offset = *v.segments.keys().next().unwrap();
            }
            let index_path = self.dir.join(index_file_name(base));
            if self.storage.exists(&index_path).await.unwrap_or(false) {
                self.storage
                    .remove_file(&index_path)
                    .await
                    .map_err(|e| io_error("remove", &index_path, e))?;
            }
            deleted += 1;
        }
        if deleted > 0 {
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(|e| io_error("sync", &self.dir, e))?;
        }
        Ok(deleted)
    }
}

fn index_file_bytes<F>(dir: &Path, seg: &SegmentView<F>) -> (PathBuf, Vec<u8>) {
    let meta = SealedIndexMeta {
        next_offset: seg.next_offset,
        data_len: seg.data_len,
        first_arrival_ms: seg.first_arrival_ms.unwrap_or(0),
        last_arrival_ms: seg.last_arrival_ms.unwrap_or(0),
    };
    (
        dir.join(index_file_name(seg.base_offset)),
        seg.index.encode(seg.base_offset, &meta),
    )
}

async fn write_index<S: Storage>(
    storage: &S,
    dir: &Path,
    seg: &SegmentView<S::File>,
) -> Result<(), Error> {
    let (path, bytes) = index_file_bytes(dir, seg);
    write_file_atomic(storage, &path, &bytes)
        .await
        .map_err(|e| io_error("write", &path, e))
}

/// A run of records inside one batch, read from disk or from the recent cache.
/// Made only by [`read`], after the batch passed a checked access: its fields are
/// private so that a span always names a batch that did.
#[derive(Clone)]
pub struct ReadSpan<B> {
    buf: B,
    /// Where the batch starts in `buf`.
    start: usize,
    /// The address of the batch when it was checked: `buf` must still deref there.
    checked_at: usize,
    /// Records of the batch to skip, then to take.
    skip: u32,
    take: u32,
}

impl<B: std::ops::Deref<Target = [u8]>> ReadSpan<B> {
    /// A span of the batch at `start` in `buf`; `batch` is that batch, checked.
    fn new(buf: B, start: usize, batch: &batch::BatchView<'_>, skip: u32, take: u32) -> Self {
        let checked_at = batch.bytes().as_ptr() as usize;
        assert_eq!(
            buf[start..].as_ptr() as usize,
            checked_at,
            "span of another batch"
        );
        ReadSpan {
            buf,
            start,
            checked_at,
            skip,
            take,
        }
    }

    /// The batch these records belong to (checked when it was read).
    pub fn batch(&self) -> batch::BatchView<'_> {
        let bytes = &self.buf[self.start..];
        // Read buffers share their bytes (an `Rc` or `Arc`) and never change them; a `Deref`
        // that gave other bytes (a deep copy) is refused rather than trusted.
        assert_eq!(
            bytes.as_ptr() as usize,
            self.checked_at,
            "a read span's buffer moved"
        );
        // SAFETY: `new` took a `BatchView` of the bytes at `checked_at`, and a
        // `BatchView` exists only for bytes that passed a checked access
        // (`batch::verify` on what `read` read from disk) or that a `ValidBatch`
        // vouches for (the recent cache, or a batch decrypted from its frame). `buf` keeps those bytes alive, and a
        // `Deref` to `[u8]` cannot hand out bytes that change behind it without
        // unsafe code of its own, so they are the bytes that were checked.
        unsafe { batch::reopen_verified(bytes) }
    }
    pub fn records(&self) -> &[batch::ArchivedRecord] {
        let all = self.batch().records();
        &all[self.skip as usize..(self.skip + self.take) as usize]
    }
    pub fn first_offset(&self) -> u64 {
        self.batch().header.base_offset + self.skip as u64
    }
    /// The buffer the batch lives in, and where it starts there.
    pub fn buf(&self) -> &B {
        &self.buf
    }
    pub fn start(&self) -> usize {
        self.start
    }
    /// Records of the batch before the span.
    pub fn skip(&self) -> u32 {
        self.skip
    }
    /// Records in the span.
    pub fn take(&self) -> u32 {
        self.take
    }
}

/// The result of a read.
pub struct ReadOutput<B> {
    pub spans: Vec<ReadSpan<B>>,
    /// The offset to continue from.
    pub next_offset: u64,
    pub record_count: u32,
    /// Data plus partition key bytes, as AWS counts them.
    pub byte_count: u64,
    /// The visible offset at the time of the read (the tip).
    pub visible_offset: u64,
}

/// Where to start reading from for `time_ms`: the offset of the first visible
/// record that arrived at or after it (the tip when there is none).
pub async fn offset_at_time<F: StorageFile>(
    view: &Rc<RefCell<LogView<F>>>,
    time_ms: i64,
) -> Result<u64, Error> {
    let (file, path, pos, stop, visible) = {
        let v = view.borrow();
        let Some(seg) = v.segments.values().find(|s| {
            s.base_offset < v.visible_offset && s.last_arrival_ms.is_some_and(|t| t >= time_ms)
        }) else {
            return Ok(v.visible_offset);
        };
        let entries = seg.index.entries();
        let i = entries.partition_point(|e| e.arrival_ms < time_ms);
        if i > 0 && entries[i - 1].offset >= v.visible_offset {
            return Ok(v.visible_offset);
        }
        let (pos, next) = seg.index.seek_time(time_ms);
        (
            seg.file.clone(),
            seg.path.clone(),
            pos as u64,
            next.map(|n| n as u64),
            v.visible_offset,
        )
    };
    let mut cursor = pos;
    loop {
        let (buf, at) = read_batch_at(&*file, &path, cursor).await?;
        // The header is enough: a sealed batch's records share its arrival
        // time (`batch::seal`), and an encrypted frame has only its header in
        // the clear.
        let h = batch::verify_stored(&buf[at..]).map_err(|e| corrupt(&path, cursor, e))?;
        if h.base_offset >= visible {
            return Ok(visible);
        }
        if h.last_arrival_ms >= time_ms {
            return Ok(h.base_offset);
        }
        cursor += h.padded_length() as u64;
        if h.next_offset() >= visible {
            return Ok(visible);
        }
        if stop.is_some_and(|s| cursor > s) {
            return Ok(h.next_offset());
        }
    }
}

fn corrupt(path: &Path, pos: u64, e: impl std::fmt::Display) -> Error {
    Error::internal(format!(
        "{}: corrupt batch at byte {pos}: {e}",
        path.display()
    ))
}

/// Reads the batch at `pos`: returns a buffer and where the batch starts in it.
async fn read_batch_at<F: StorageFile>(
    file: &F,
    path: &Path,
    pos: u64,
) -> Result<(F::ReadBuf, usize), Error> {
    let aligned = align_down(pos);
    let at = (pos - aligned) as usize;
    let buf = file
        .read_at(aligned, at + DMA_ALIGNMENT * 16)
        .await
        .map_err(|e| io_error("read", path, e))?;
    let header =
        BatchHeader::parse(buf.get(at..).unwrap_or(&[])).map_err(|e| corrupt(path, pos, e))?;
    if at + header.length as usize <= buf.len() {
        return Ok((buf, at));
    }
    let buf = file
        .read_at(aligned, at + header.length as usize)
        .await
        .map_err(|e| io_error("read", path, e))?;
    Ok((buf, at))
}

/// Adds the records of one verified batch to `out` within the limits. Returns
/// false when a limit or the visible offset stopped it inside or at this batch.
fn take_records<B: Clone + std::ops::Deref<Target = [u8]>>(
    out: &mut ReadOutput<B>,
    batch: &batch::BatchView<'_>,
    buf: &B,
    start: usize,
    count_max: u32,
    bytes_max: u64,
    visible: u64,
) -> bool {
    let h = batch.header;
    if h.next_offset() <= out.next_offset {
        return true; // entirely before the start position
    }
    let skip = (out.next_offset - h.base_offset) as u32;
    let mut take = 0u32;
    for r in &batch.records()[skip as usize..] {
        let size = (r.data().len() + r.partition_key().len()) as u64;
        if out.record_count >= count_max
            || (out.record_count > 0 && out.byte_count + size > bytes_max)
            || out.next_offset + take as u64 >= visible
        {
            break;
        }
        out.record_count += 1;
        out.byte_count += size;
        take += 1;
    }
    if take > 0 {
        out.spans
            .push(ReadSpan::new(buf.clone(), start, batch, skip, take));
        out.next_offset += take as u64;
    }
    out.next_offset == h.next_offset()
}

/// Reads visible records from `from` (clamped to the trim horizon): at most
/// `count_max` records and `bytes_max` bytes (always at least one record when
/// one is available). Every batch's crc is verified before it is served.
///
/// The segment's sparse index plans the read: it starts at the index entry at or
/// before `from`, ends at the first entry past what the limits can use, and is cut
/// at index entries (batch starts) into chunks of about `read_size` bytes that are
/// read concurrently. No batch straddles two chunks.
pub async fn read<F: StorageFile>(
    view: &Rc<RefCell<LogView<F>>>,
    from: u64,
    count_max: u32,
    bytes_max: u64,
    read_size: usize,
) -> Result<ReadOutput<SpanBuf<F::ReadBuf>>, Error> {
    read_with(view, from, count_max, bytes_max, read_size, None).await
}

/// [`read`] of a stream that is or was encrypted: a batch written under a
/// data key is decrypted with it (and served from memory, `SpanBuf::Memory`),
/// and one from the cache is served only while `keys` still gives its key
/// (a disabled KMS key refuses both). Without `keys`, such a batch is
/// refused with `KmsNotFound`.
pub async fn read_with<F: StorageFile>(
    view: &Rc<RefCell<LogView<F>>>,
    from: u64,
    count_max: u32,
    bytes_max: u64,
    read_size: usize,
    keys: Option<&dyn BatchKeys>,
) -> Result<ReadOutput<SpanBuf<F::ReadBuf>>, Error> {
    let mut out = ReadOutput {
        spans: Vec::new(),
        next_offset: from,
        record_count: 0,
        byte_count: 0,
        visible_offset: 0,
    };
    loop {
        // Plan under a short borrow, then read without holding it.
        let (file, path, chunks, visible) = {
            let v = view.borrow();
            out.next_offset = out.next_offset.max(v.trim_offset);
            out.visible_offset = v.visible_offset;
            if out.next_offset >= v.visible_offset || out.record_count >= count_max {
                return Ok(out);
            }
            if v.recent.covers(out.next_offset) {
                let visible = v.visible_offset;
                for cached in v.recent.from(out.next_offset) {
                    let batch = cached.view();
                    if batch.header.next_offset() > out.next_offset
                        && let Err(e) = cipher::check(keys, batch.header.key_ref)
                    {
                        // What was read is served; the next read stops here.
                        return if out.record_count > 0 {
                            Ok(out)
                        } else {
                            Err(e)
                        };
                    }
                    let buf = SpanBuf::Memory(cached.clone());
                    if !take_records(&mut out, &batch, &buf, 0, count_max, bytes_max, visible)
                        || out.record_count >= count_max
                    {
                        break;
                    }
                }
                return Ok(out);
            }
            let seg = v
                .segment_for(out.next_offset)
                .expect("offset within the retained range");
            let plan = plan_chunks(
                seg,
                out.next_offset,
                v.visible_offset,
                count_max - out.record_count,
                bytes_max.saturating_sub(out.byte_count),
                read_size as u64,
            );
            (seg.file.clone(), seg.path.clone(), plan, v.visible_offset)
        };
        // Submit every chunk read, then take them in order.
        let mut reads: Vec<_> = chunks
            .iter()
            .map(|c| {
                let aligned = align_down(c.start);
                Box::pin(file.read_at(aligned, (align_up(c.end) - aligned) as usize))
            })
            .collect();
        let mut done = Vec::with_capacity(reads.len());
        for r in reads.iter_mut() {
            done.push(futures_lite::future::poll_once(r.as_mut()).await);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let buf = match done[i].take() {
                Some(result) => result,
                None => reads[i].as_mut().await,
            }
            .map_err(|e| io_error("read", &path, e))?;
            let buf = SpanBuf::Disk(buf);
            let aligned = align_down(chunk.start);
            let mut at = (chunk.start - aligned) as usize;
            let mut expected = chunk.first_offset;
            while (aligned + at as u64) < chunk.end && expected < visible {
                let pos = aligned + at as u64;
                let bytes = buf.get(at..).unwrap_or(&[]);
                let stored = batch::verify_stored(bytes).map_err(|e| corrupt(&path, pos, e))?;
                if stored.is_encrypted() {
                    // Entirely before the start: not decrypted (nor its key asked).
                    if stored.base_offset == expected && stored.next_offset() <= out.next_offset {
                        expected = stored.next_offset();
                        at += stored.padded_length();
                        continue;
                    }
                    if stored.base_offset != expected {
                        return Err(corrupt(
                            &path,
                            pos,
                            format!(
                                "base offset {} where {expected} was expected",
                                stored.base_offset
                            ),
                        ));
                    }
                    let clear = match cipher::open(keys, bytes) {
                        Ok(b) => std::sync::Arc::new(b),
                        Err(e) if e.code == ErrorCode::Internal => {
                            return Err(corrupt(&path, pos, e.message));
                        }
                        // A key refused: what was read is served; the next
                        // read stops here.
                        Err(_) if out.record_count > 0 => return Ok(out),
                        Err(e) => return Err(e),
                    };
                    let batch = clear.view();
                    let buf = SpanBuf::Memory(clear.clone());
                    if !take_records(&mut out, &batch, &buf, 0, count_max, bytes_max, visible)
                        || out.record_count >= count_max
                    {
                        return Ok(out);
                    }
                    expected = stored.next_offset();
                    at += stored.padded_length();
                    continue;
                }
                let batch = batch::verify(bytes).map_err(|e| corrupt(&path, pos, e))?;
                let h = batch.header;
                if h.base_offset != expected {
                    return Err(corrupt(
                        &path,
                        pos,
                        format!(
                            "base offset {} where {expected} was expected",
                            h.base_offset
                        ),
                    ));
                }
                if !take_records(&mut out, &batch, &buf, at, count_max, bytes_max, visible)
                    || out.record_count >= count_max
                {
                    return Ok(out);
                }
                expected = h.next_offset();
                at += h.padded_length();
            }
            if expected >= visible {
                return Ok(out);
            }
        }
    }
}

/// A range of a segment holding whole batches: `[start, end)`, the first batch's offset.
struct Chunk {
    start: u64,
    end: u64,
    first_offset: u64,
}

fn plan_chunks<F>(
    seg: &SegmentView<F>,
    from: u64,
    visible: u64,
    count_left: u32,
    bytes_left: u64,
    read_size: u64,
) -> Vec<Chunk> {
    let entries = seg.index.entries();
    let i0 = entries
        .partition_point(|e| e.offset <= from)
        .saturating_sub(1);
    let (start, first_offset) = entries
        .get(i0)
        .map_or((0, seg.base_offset), |e| (e.position as u64, e.offset));
    let mut chunks = Vec::new();
    let mut chunk = Chunk {
        start,
        end: seg.data_len,
        first_offset,
    };
    for e in entries.iter().skip(i0 + 1) {
        let p = e.position as u64;
        let enough = e.offset >= visible
            || e.offset >= from + count_left as u64
            || p - start >= bytes_left.saturating_add(read_size);
        if enough {
            chunk.end = p;
            break;
        }
        if p - chunk.start >= read_size {
            chunks.push(Chunk { end: p, ..chunk });
            chunk = Chunk {
                start: p,
                end: seg.data_len,
                first_offset: e.offset,
            };
        }
    }
    chunks.push(chunk);
    chunks
}
