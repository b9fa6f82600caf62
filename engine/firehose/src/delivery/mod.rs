//! Delivery: one task per shard of a delivery stream's source, on the core
//! that owns the shard, in its background task queue (fewer shares than the
//! requests: a busy core serves requests first). The source is the delivery stream's internal stream
//! (Direct PUT) or a Kinesis data stream (`KinesisStreamAsSource`). A task
//! reads its shard from the delivered checkpoint through the engine API (as a
//! client would), buffers records until the destination's size hint (before
//! compression) or interval (from the oldest buffered record's arrival) is
//! reached (the interval only once the reads caught up with the shard: a task
//! behind fills objects to the size hint), and delivers one object (to an HTTP
//! endpoint: its requests; see `write.rs`), reading the next records meanwhile:
//!
//! 1. `Event::Plan` records the object's bucket, key, compression, error key
//!    and source records (durable),
//! 2. the object is written under that key (requests carry ids derived from it),
//! 3. `Event::Delivered` moves the checkpoint past those records.
//!
//! A task that starts with a plan (a crash between 1 and 3) writes the planned
//! records under the planned key again before reading on: every acknowledged
//! record ends up in exactly one object. A failed write is retried with
//! backoff (AWS retries S3 for up to 24 hours) and reported by
//! DescribeDeliveryStream until a delivery succeeds.
//!
//! Stream sources: records are KPL-de-aggregated (as AWS does); a shard with
//! no checkpoint yet starts at the first record that arrived at or after the
//! delivery stream's creation; resharding is followed parents first: a closed
//! shard, once all of it is delivered, is recorded as ended
//! (`Event::ShardEnded`) and its children's tasks start once all their
//! parents have ended. A task ends when its shard has ended or its delivery
//! stream (that incarnation) is gone.

mod buffer;
mod load;
mod search;
mod write;

use std::sync::Arc;
use std::time::Duration;

use riffle_engine::rt;
use riffle_engine::{GetRecordsOutput, ShardDescription};
use riffle_protocol::{Error, ErrorCode, routing};
use riffle_store::iterator::{IteratorToken, IteratorType};

use crate::destination::{Configured, S3Destination};
use crate::object::{self, Origin};
use crate::service::{Failure, Shared, Side, internal_stream};
use crate::state::{DeliveryStream, Event, Plan, PlannedBackup, SourceKind};
use buffer::Buffer;

/// An object buffer this large is kept for the next object (`Task::reuse`).
const REUSE_BYTES_MIN: usize = 16 << 20;
/// Records per read of a source shard.
const READ_RECORDS_MAX: u32 = 10_000;
/// The longest a read waits for records before the task looks at its
/// delivery stream again (deleted? configuration changed?).
const IDLE_WAIT_MS: u64 = 1000;
/// Retries of a failed delivery back off from this to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// An HTTP endpoint's retries back off from this to `HTTP_RETRY_MAX` (AWS's).
const HTTP_RETRY_FIRST: Duration = Duration::from_secs(1);
const HTTP_RETRY_MAX: Duration = Duration::from_secs(120);
/// AWS waits this long for an HTTP endpoint's answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(180);
/// The error output type of records dynamic partitioning could not place.
const PARTITIONING_FAILED: &str = "partitioning-failed";
/// Every error output type a delivery may write (each plan names a key for
/// each of its destination's, so no failed record is without a place).
pub(crate) const ERROR_OUTPUT_TYPES: [&str; 6] = [
    "processing-failed",
    "http-endpoint-failed",
    PARTITIONING_FAILED,
    crate::conversion::FORMAT_CONVERSION_FAILED,
    crate::opensearch::ERROR_OUTPUT_TYPE,
    crate::splunk::ERROR_OUTPUT_TYPE,
];

/// Where a delivery stream's records are read from.
#[derive(Clone, Debug)]
struct Source {
    stream: String,
    stream_id: u64,
    /// KPL aggregated records are split into their user records.
    deaggregate: bool,
    /// A shard without a checkpoint starts at records that arrived then or later.
    start_ms: Option<i64>,
}

fn source_of(shared: &Shared, d: &DeliveryStream) -> Result<Source, Error> {
    match &d.source {
        SourceKind::DirectPut => {
            let stream = internal_stream(&d.name);
            let stream_id = shared.engine.stream_id(&stream)?;
            Ok(Source {
                stream,
                stream_id,
                deaggregate: false,
                start_ms: None,
            })
        }
        SourceKind::KinesisStreamAsSource {
            stream,
            stream_id,
            start_ms,
            ..
        } => {
            if shared.engine.stream_id(stream).ok() != Some(*stream_id) {
                return Err(Error::not_found(format!(
                    "the source stream {stream} was deleted"
                )));
            }
            Ok(Source {
                stream: stream.clone(),
                stream_id: *stream_id,
                deaggregate: d.source.deaggregates(),
                start_ms: Some(*start_ms),
            })
        }
    }
}

/// The index of a shard named `shardId-...`.
fn index_of(shard_id: &str) -> Option<u32> {
    routing::parse_shard_id(shard_id)
}

/// A delivery task to run, and the core to run it on.
pub(crate) type Spawn = (usize, Box<dyn FnOnce() + Send + 'static>);

/// Starts the delivery tasks of incarnation `id` of delivery stream `name`
/// (see [`tasks`]), from a task on a core.
pub(crate) async fn start(shared: &Arc<Shared>, name: &str, id: u64) {
    for (core, task) in tasks(shared, name, id) {
        if shared.engine.run_on_core_async(core, task).await.is_err() {
            return;
        }
    }
}

/// The delivery tasks to start for incarnation `id` of delivery stream
/// `name`: one per shard of its source that has not ended and whose parents
/// have (a parent closed before delivery started counts as ended), each for
/// the shard's owning core; a task already running is not started twice.
pub(crate) fn tasks(shared: &Arc<Shared>, name: &str, id: u64) -> Vec<Spawn> {
    let mut out: Vec<Spawn> = Vec::new();
    let state = shared.meta.state();
    let Some(d) = state.streams.get(name).filter(|d| d.id == id) else {
        return out;
    };
    let source = match source_of(shared, d) {
        Ok(s) => s,
        Err(e) => {
            shared.fail(
                name,
                id,
                0,
                Failure {
                    kind: "Kinesis.Source",
                    details: e.message,
                },
            );
            return out;
        }
    };
    let Ok(shards) = shared.engine.list_shards(&source.stream) else {
        return out;
    };
    let cores = shared.engine.core_count();
    let ended = |index: u32| d.progress.get(&index).is_some_and(|p| p.ended);
    let done = |parent: Option<&String>| {
        let Some(index) = parent.and_then(|p| index_of(p)) else {
            return true;
        };
        let before_start = shards.iter().any(|s: &ShardDescription| {
            s.shard_index == index
                && s.closed_ms
                    .zip(source.start_ms)
                    .is_some_and(|(closed, start)| closed <= start)
        });
        ended(index) || before_start
    };
    for shard in &shards {
        if ended(shard.shard_index)
            || !done(shard.parent_shard_id.as_ref())
            || !done(shard.adjacent_parent_shard_id.as_ref())
        {
            continue;
        }
        // A shard closed before delivery started holds nothing to deliver.
        if shard
            .closed_ms
            .zip(source.start_ms)
            .is_some_and(|(closed, start)| closed <= start)
        {
            continue;
        }
        let key = (name.to_string(), id, shard.shard_index);
        if !shared.running.lock().unwrap().insert(key) {
            continue;
        }
        let core = riffle_engine::control::owner((source.stream_id, shard.shard_index), cores);
        let task = Task {
            shared: shared.clone(),
            name: name.to_string(),
            id,
            source: source.clone(),
            shard: shard.shard_index,
            metrics: shared.metrics.of(name, id),
            spare: Default::default(),
        };
        out.push((core, Box::new(move || rt::spawn_background(task.run()))));
    }
    out
}

/// What gathering gave.
enum Gathered {
    /// Records for an object.
    Object(Buffer),
    /// The shard is closed and everything before this offset is delivered.
    Ended(u64),
    /// The delivery stream (or its source) is gone.
    Gone,
}

struct Task {
    shared: Arc<Shared>,
    name: String,
    id: u64,
    source: Source,
    shard: u32,
    metrics: Arc<crate::metrics::StreamMetrics>,
    /// The last object's buffer, emptied, for the next one (see `reuse`).
    spare: std::cell::RefCell<Vec<u8>>,
}

impl Task {
    /// The delivery stream, while it is this incarnation.
    fn stream(&self) -> Option<DeliveryStream> {
        let state = self.shared.meta.state();
        state
            .streams
            .get(&self.name)
            .filter(|d| d.id == self.id)
            .cloned()
    }

    async fn run(self) {
        let ended = self.deliver().await;
        // A task stopped by a failure leaves its records waiting: their
        // age still shows.
        if ended || self.stream().is_none() {
            self.metrics.delivered(self.shard, None);
        }
        self.shared
            .running
            .lock()
            .unwrap()
            .remove(&(self.name.clone(), self.id, self.shard));
        // Children wait for their parents: start those that can go now.
        if ended {
            start(&self.shared, &self.name, self.id).await;
        }
    }

    /// Delivers until the shard has ended (true) or the delivery stream is gone.
    async fn deliver(&self) -> bool {
        // Records gathered ahead, and where they start.
        let mut ahead: Option<(u64, Gathered)> = None;
        loop {
            let Some(d) = self.stream() else {
                return false;
            };
            let progress = d.progress.get(&self.shard).cloned().unwrap_or_default();
            if progress.ended {
                return true;
            }
            // A plan left by a crash: the same records to the same key, in
            // the planned bucket and compression.
            if let Some(plan) = progress.planned {
                let Some((buffer, complete)) = self.read_range(plan.start, plan.end).await else {
                    return false;
                };
                let target = match Target::of_plan(&plan) {
                    Some(t) => t,
                    // Planned before plans named their bucket: today's.
                    None => match self.destination(&d) {
                        Some(dest) => Target::of(dest.objects()),
                        None => {
                            rt::sleep(RETRY_MAX).await;
                            continue;
                        }
                    },
                };
                // Some of its records expired (retention) since it was planned:
                // the object, if it was written, holds them; never overwrite it
                // with less.
                if complete {
                    self.store(&d, &target, &plan, buffer).await;
                }
                if !self.delivered(plan.end).await {
                    return false;
                }
                self.metrics.delivered(self.shard, None);
                continue;
            }
            let from = match self
                .first_offset(progress.delivered, progress.objects)
                .await
            {
                Some(offset) => offset,
                None => return false,
            };
            // The next records were gathered while the last object was
            // written (they start where it ended: the checkpoint now).
            let gathered = match ahead.take() {
                Some((start, g)) if start == from => g,
                _ => self.gather(from).await,
            };
            let buffer = match gathered {
                Gathered::Object(b) => b,
                Gathered::Ended(end) => {
                    let ended = self
                        .shared
                        .meta
                        .apply(Event::ShardEnded {
                            name: self.name.clone(),
                            id: self.id,
                            shard: self.shard,
                            end,
                        })
                        .await;
                    return ended.is_ok();
                }
                Gathered::Gone => return false,
            };
            let Some(d) = self.stream() else {
                return false;
            };
            let Some(configured) = self.destination(&d) else {
                return false;
            };
            let dest = configured.objects();
            let oldest = buffer.oldest_ms.unwrap_or_else(rt::now_ms);
            let origin = Origin {
                stream: &self.name,
                id: self.id,
                shard: self.shard,
                start: buffer.start,
            };
            let key = match object::key(dest, origin, d.version, oldest) {
                Ok(k) => k,
                Err(e) => {
                    self.fail("S3.InvalidPrefix", e.message);
                    rt::sleep(RETRY_MAX).await;
                    continue;
                }
            };
            // Every failure has a key, or nothing is planned (checked when
            // configured: this waits out what cannot happen).
            let error_key =
                |error_type| object::error_key(dest, origin, d.version, oldest, error_type);
            let error_keys: Result<std::collections::BTreeMap<String, String>, Error> = [
                PARTITIONING_FAILED,
                crate::conversion::FORMAT_CONVERSION_FAILED,
                "processing-failed",
                configured.error_output_type(),
            ]
            .into_iter()
            .filter(|kind| !kind.is_empty())
            .map(|kind| Ok((kind.to_string(), error_key(kind)?)))
            .collect();
            let mut error_keys = match error_keys {
                Ok(keys) => keys,
                Err(e) => {
                    self.fail("S3.InvalidPrefix", e.message);
                    rt::sleep(RETRY_MAX).await;
                    continue;
                }
            };
            let destination_error_key = error_keys
                .remove(configured.error_output_type())
                .unwrap_or_default();
            let error_key = error_keys.remove("processing-failed").unwrap_or_default();
            let backup = match &dest.backup {
                None => None,
                Some(b) => match object::backup_key(b, origin, d.version, oldest) {
                    Ok(key) => Some(PlannedBackup {
                        bucket: b.bucket.clone(),
                        key,
                        compression: b.compression.aws_name().to_string(),
                    }),
                    Err(e) => {
                        self.fail("S3.InvalidPrefix", e.message);
                        rt::sleep(RETRY_MAX).await;
                        continue;
                    }
                },
            };
            let plan = Plan {
                key,
                start: buffer.start,
                end: buffer.end(),
                bucket: dest.bucket.clone(),
                compression: dest.compression.aws_name().to_string(),
                error_key,
                destination_error_key,
                error_keys,
                partitioned: dest.dynamic_partitioning,
                backup,
            };
            let planned = self
                .shared
                .meta
                .apply(Event::Plan {
                    name: self.name.clone(),
                    id: self.id,
                    shard: self.shard,
                    plan: plan.clone(),
                })
                .await;
            if let Err(e) = planned {
                // The delivery stream is gone (or the metadata cannot be
                // written): nothing is lost, the records stay in the shard.
                if self.stream().is_some() {
                    self.fail("Firehose.Metadata", e.message);
                }
                return false;
            }
            // Reading on while the object is written keeps the reads in
            // the shard's recent batches (in memory) instead of on disk; the
            // next plan waits for this one's Delivered.
            let target = Target::of(dest);
            let stored = async {
                self.store(&d, &target, &plan, buffer).await;
                let delivered = self.delivered(plan.end).await;
                if delivered {
                    // What the read-ahead holds is noted again at its next
                    // read (it may wait for records long after this).
                    self.metrics.delivered(self.shard, None);
                }
                delivered
            };
            let (delivered, next) = futures_lite::future::zip(stored, self.gather(plan.end)).await;
            if !delivered {
                return false;
            }
            let oldest = match &next {
                Gathered::Object(b) => b.oldest_ms,
                _ => None,
            };
            self.metrics.delivered(self.shard, oldest);
            ahead = Some((plan.end, next));
        }
    }

    /// Where reading continues: the checkpoint, or for a stream source's shard
    /// that has delivered nothing yet, the first record that arrived at or
    /// after delivery started (resolved again after a restart: the same
    /// records, the same offset). None when the source is gone.
    async fn first_offset(&self, delivered: u64, objects: u64) -> Option<u64> {
        let (Some(start_ms), 0, 0) = (self.source.start_ms, delivered, objects) else {
            return Some(delivered);
        };
        loop {
            self.stream()?;
            match self
                .shared
                .engine
                .shard_cursor(
                    &self.source.stream,
                    self.shard,
                    IteratorType::AtTimestamp(start_ms),
                )
                .await
            {
                Ok(cursor) if cursor.stream_id == self.source.stream_id => {
                    return Some(cursor.offset);
                }
                Ok(_) => {
                    self.fail("Kinesis.Source", "the source stream was deleted".into());
                    return None;
                }
                Err(e) if e.code == ErrorCode::ResourceNotFound => {
                    self.fail("Kinesis.Source", e.message);
                    return None;
                }
                Err(e) => {
                    self.fail("Kinesis.Read", e.message);
                    rt::sleep(RETRY_FIRST).await;
                }
            }
        }
    }

    /// The destination as configured now, or None (and a failure reported)
    /// when it cannot be delivered to.
    fn destination(&self, d: &DeliveryStream) -> Option<Configured> {
        match Configured::of(&d.destination) {
            Ok(dest) => Some(dest),
            Err(e) => {
                self.fail("Destination.Configuration", e.message);
                None
            }
        }
    }

    fn fail(&self, kind: &'static str, details: String) {
        self.shared
            .fail(&self.name, self.id, self.shard, Failure { kind, details });
    }

    async fn delivered(&self, end: u64) -> bool {
        let applied = self
            .shared
            .meta
            .apply(Event::Delivered {
                name: self.name.clone(),
                id: self.id,
                shard: self.shard,
                end,
            })
            .await;
        match applied {
            Ok(()) => true,
            Err(e) => {
                // Not a deleted stream: the metadata log failed; the task
                // stops (the records stay in the shard) and says why.
                if self.stream().is_some() {
                    self.fail("Firehose.Metadata", e.message);
                }
                false
            }
        }
    }

    /// This task's id as a follower of its source shard (unique among the
    /// delivery streams that may read it).
    fn follower(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        ("firehose", &self.name, self.id).hash(&mut h);
        h.finish()
    }

    fn cursor(&self, offset: u64) -> IteratorToken {
        IteratorToken {
            stream_id: self.source.stream_id,
            stream_name: self.source.stream.clone(),
            shard_index: self.shard,
            offset,
            issued_ms: rt::now_ms(),
        }
    }

    /// One read at `offset`; None when the source is gone (a read error is
    /// reported and retried).
    async fn read(&self, offset: u64, wait_ms: u64) -> Option<GetRecordsOutput> {
        loop {
            self.stream()?;
            match self
                .shared
                .engine
                .follow_at(
                    &self.cursor(offset),
                    Some(READ_RECORDS_MAX),
                    wait_ms,
                    self.follower(),
                )
                .await
            {
                Ok(r) => {
                    self.shared
                        .recovered(&self.name, self.id, self.shard, Side::Source);
                    return Some(r);
                }
                Err(e) if e.code == ErrorCode::ResourceNotFound => {
                    if self.source.start_ms.is_some() {
                        self.fail("Kinesis.Source", e.message);
                    }
                    return None;
                }
                Err(e) => {
                    self.fail("Kinesis.Read", e.message);
                    rt::sleep(RETRY_FIRST).await;
                }
            }
        }
    }

    /// Keeps an object's data buffer for the next object once nothing else
    /// holds it, when it is large: buffers past the allocator's mmap threshold
    /// (`rt::keep_freed_memory`) would otherwise be mapped afresh for every
    /// object, each page faulted and zeroed again (a fifth of the server's
    /// CPU at 300 MB/s). Smaller ones come from the heap, which keeps them.
    fn reuse(&self, data: bytes::Bytes) {
        if data.len() < REUSE_BYTES_MIN {
            return;
        }
        if let Ok(data) = data.try_into_mut() {
            let mut data = Vec::from(data);
            data.clear();
            *self.spare.borrow_mut() = data;
        }
    }

    /// Counts a stream source's read in its metrics
    /// (`DataReadFromKinesisStream.*`, `KinesisMillisBehindLatest`).
    fn count_read(&self, read: &GetRecordsOutput) {
        if self.source.start_ms.is_none() {
            return;
        }
        let m = &self.metrics;
        let bytes: usize = read.records().map(|r| r.data().len()).sum();
        m.read_records.add(u64::from(read.record_count));
        m.read_bytes.add(bytes as u64);
        m.behind(
            self.shard,
            u64::try_from(read.millis_behind_latest).unwrap_or(0),
        );
    }

    /// Reads records from `offset` on until the destination's size or
    /// interval is reached.
    async fn gather(&self, offset: u64) -> Gathered {
        let mut buffer = Buffer::new(offset, self.spare.take());
        // Records wait past the last read: the interval alone does not end
        // the buffer then (behind, after an outage or a slow write, objects
        // keep the size hint instead of shrinking to one read each).
        let mut behind = false;
        loop {
            let Some(d) = self.stream() else {
                return Gathered::Gone;
            };
            let dest = match Configured::of(&d.destination) {
                Ok(dest) => dest,
                Err(e) => {
                    self.fail("Destination.Configuration", e.message);
                    rt::sleep(RETRY_MAX).await;
                    continue;
                }
            };
            let now = rt::now_ms();
            let wait = match buffer.oldest_ms {
                Some(oldest) => {
                    let due = oldest.saturating_add(dest.interval_ms() as i64);
                    if (due <= now && !behind)
                        || buffer.bytes().len() as u64 >= dest.size_bytes()
                        || buffer.ends.len() >= dest.records_max()
                    {
                        return Gathered::Object(buffer);
                    }
                    (due - now).clamp(0, IDLE_WAIT_MS as i64) as u64
                }
                None => IDLE_WAIT_MS,
            };
            let Some(read) = self.read(buffer.end(), wait).await else {
                return Gathered::Gone;
            };
            self.count_read(&read);
            behind = read.behind();
            let count = u64::from(read.record_count);
            // Idle: the buffers kept for busy times go back to the system.
            if count == 0 && buffer.count == 0 && buffer.holds_memory() {
                buffer = Buffer::new(buffer.start, Vec::new());
                drop(self.spare.take());
            }
            if count == 0 && read.child_shards.is_some() {
                // The end of a closed shard: deliver what is buffered first.
                return match buffer.count {
                    0 => Gathered::Ended(read.next_offset()),
                    _ => Gathered::Object(buffer),
                };
            }
            for r in read.records() {
                if r.offset != buffer.end() {
                    // Records before this one expired (retention) before
                    // delivery: an object never spans the gap.
                    if buffer.count > 0 {
                        return Gathered::Object(buffer);
                    }
                    buffer.start = r.offset;
                }
                buffer.take_read(&read, &r, &self.source);
            }
            self.metrics.holding(self.shard, buffer.oldest_ms);
            // Zero buffering: deliver what one read gave.
            if dest.interval_ms() == 0 && buffer.count > 0 {
                return Gathered::Object(buffer);
            }
        }
    }

    /// Reads the records `start..end` (a plan's) and whether they were all
    /// there (some may have expired since); None when the delivery stream or
    /// its source is gone.
    async fn read_range(&self, start: u64, end: u64) -> Option<(Buffer, bool)> {
        let mut buffer = Buffer::new(start, Vec::new());
        while buffer.end() < end {
            let read = self.read(buffer.end(), IDLE_WAIT_MS).await?;
            // Nothing at the position but the shard went on: the rest of the
            // planned records expired (the first one returned is past them).
            let expired = read.record_count == 0 && read.next_offset() > buffer.end();
            if expired {
                self.fail(
                    "Kinesis.Expired",
                    format!(
                        "records {}..{end} of shard {} expired before their planned object was rebuilt",
                        buffer.end(),
                        self.shard
                    ),
                );
                return Some((buffer, false));
            }
            for r in read.records() {
                // The gap check first: a record past `end` after a gap means
                // the planned ones in between expired.
                if r.offset != buffer.end() {
                    self.fail(
                        "Kinesis.Expired",
                        format!(
                            "records {}..{} of shard {} expired before their planned object was rebuilt",
                            buffer.end(),
                            r.offset.min(end),
                            self.shard
                        ),
                    );
                    return Some((buffer, false));
                }
                if r.offset >= end {
                    break;
                }
                buffer.take_read(&read, &r, &self.source);
            }
            self.metrics.holding(self.shard, buffer.oldest_ms);
            if read.record_count == 0 && read.child_shards.is_some() {
                // A closed shard ends before the plan does: cannot happen for
                // a plan made from its records; stop rather than spin.
                return Some((buffer, false));
            }
        }
        Some((buffer, true))
    }
}

/// Where an object goes and how it is compressed.
struct Target {
    bucket: String,
    compression: crate::destination::Compression,
}

impl Target {
    fn of(dest: &S3Destination) -> Target {
        Target {
            bucket: dest.bucket.clone(),
            compression: dest.compression,
        }
    }

    /// The plan's own, when it names them (plans made before they did: None).
    fn of_plan(plan: &Plan) -> Option<Target> {
        if plan.bucket.is_empty() {
            return None;
        }
        Some(Target {
            bucket: plan.bucket.clone(),
            compression: crate::destination::Compression::of_aws_name(&plan.compression)?,
        })
    }
}
