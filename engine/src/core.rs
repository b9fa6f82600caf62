//! A core: its inbox, the shards it owns, their pumps, reads and retention.
//!
//! Lives on one executor. Messages from any thread arrive on the core's bounded
//! inbox; appends are forwarded to the owning shard's pump (the only writer),
//! reads run as local tasks on the shard's shared log view.
//!
//! With `EngineConfig::shard_limits`, the core also meters its shards
//! (`crate::throttle`): an append is admitted or refused here as a whole (a
//! PutRecords request's records for one shard are one batch: they land or
//! are refused together), a metered read (GetRecords) before it runs, its
//! served bytes charged after; refusals are counted per stream. AWS's
//! refusal messages name the stream: `OpenShard` carries its name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use riffle_protocol::batch::{self, ValidBatch};
use riffle_protocol::{Error, ErrorCode, routing};
use riffle_store::log::{self, Appended, LogView, ShardLog};
use rkyv::util::AlignedVec;

use crate::config::EngineConfig;
use crate::notify::Notify;
use crate::pump::{self, PumpConfig, PumpMsg, Reply};
use crate::rt::{self, dma::DmaStorage, dma::DmaStorageFile};
use crate::throttle::{ShardThrottle, StreamRefusals};

/// A shard, globally: stream id (never reused) and shard index.
pub type ShardKey = (u64, u32);

/// Where a read or an iterator should start.
#[derive(Clone, Copy, Debug)]
pub enum Position {
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
    /// An explicit offset; checked against the shard's range.
    Offset(u64),
}

/// Records read from a shard, owned: shared with the recent-batches cache,
/// or copied out of the core's read buffers.
#[derive(Debug)]
pub struct OwnedRead {
    pub spans: Vec<OwnedSpan>,
    pub next_offset: u64,
    pub visible_offset: u64,
    pub tip_arrival_ms: Option<i64>,
    /// Set when the read had every record appended to the shard as the
    /// owning core answered it (`next_offset` reached the log's next offset,
    /// so nothing was left unread or appended but not yet visible): the
    /// core's clock then. Any record appended later is stamped at or after
    /// it (the pump stamps `max(now, last arrival)` on this core), so it is
    /// the shard's arrival watermark at `next_offset`. `None` otherwise.
    pub caught_up_at_ms: Option<i64>,
}

/// A run of records in one batch. Made only from a [`log::ReadSpan`] (a
/// batch that passed a checked access), so its fields are private: `batch()`
/// re-opens a copy without checking it again.
#[derive(Debug)]
pub struct OwnedSpan {
    batch: SpanBatch,
    skip: u32,
    take: u32,
}

/// The batch a span's records are in.
#[derive(Debug)]
enum SpanBatch {
    /// Shared with the recent-batches cache (no copy).
    Shared(Arc<ValidBatch>),
    /// Copied out of a read buffer (an `AlignedVec<16>` keeps the payload 8-aligned).
    Copied(AlignedVec<16>),
}

impl OwnedSpan {
    /// The batch of `span`: shared when it is a cached batch, else copied.
    fn of<R: std::ops::Deref<Target = [u8]>>(
        span: &log::ReadSpan<riffle_store::recent::SpanBuf<R>>,
    ) -> OwnedSpan {
        let batch = match span.buf() {
            riffle_store::recent::SpanBuf::Memory(cached) if span.start() == 0 => {
                SpanBatch::Shared(cached.clone())
            }
            _ => {
                let bytes = span.batch().bytes();
                let mut batch = AlignedVec::<16>::with_capacity(bytes.len());
                batch.extend_from_slice(bytes);
                SpanBatch::Copied(batch)
            }
        };
        OwnedSpan {
            batch,
            skip: span.skip(),
            take: span.take(),
        }
    }

    /// The batch, as stored.
    pub fn bytes(&self) -> &[u8] {
        self.batch().bytes()
    }

    pub fn batch(&self) -> batch::BatchView<'_> {
        match &self.batch {
            SpanBatch::Shared(cached) => cached.view(),
            // SAFETY: `of` is the only constructor: a copy is a byte-identical,
            // 16-aligned copy of a batch that passed `batch::verify` (a
            // `ReadSpan`'s), never modified since.
            SpanBatch::Copied(copy) => unsafe { batch::reopen_verified(copy) },
        }
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

/// Messages a core takes.
pub enum CoreMsg {
    OpenShard {
        key: ShardKey,
        /// The stream's name (AWS's throughput refusals name it).
        stream: Arc<str>,
        dir: PathBuf,
        retention_ms: i64,
        /// Closed by resharding: reads only, appends are refused.
        sealed: bool,
        reply: Reply<()>,
    },
    /// Seals (or, with `seal == false`, unseals) a shard for resharding; see
    /// `PumpMsg::Seal`. Answers the shard's length.
    Seal {
        key: ShardKey,
        seal: bool,
        reply: Reply<u64>,
    },
    CloseShard {
        key: ShardKey,
        reply: Reply<()>,
    },
    Append {
        key: ShardKey,
        batch: ValidBatch,
        /// The data key of an encrypted stream (`Engine::sealing_key`).
        seal: SealingKey,
        reply: Reply<Appended>,
    },
    Read {
        key: ShardKey,
        /// The stream's data keys when it has any (`Engine::read_keys`).
        keys: ReadKeys,
        from: u64,
        count_max: u32,
        bytes_max: u64,
        /// When nothing is visible at `from`, wait up to this long for records to
        /// commit before answering (0: answer at once). Tailing reads and
        /// subscriptions use it.
        wait_ms: u64,
        /// The reader follows the shard (a delivery task), under this id:
        /// what it has not read yet is kept in memory (`recent`).
        follow: Option<u64>,
        /// A client's GetRecords call: subject to the shard's read limits
        /// (`EngineConfig::shard_limits`). Subscriptions and the engine's own
        /// readers are not.
        metered: bool,
        reply: Reply<OwnedRead>,
    },
    Position {
        key: ShardKey,
        position: Position,
        reply: Reply<u64>,
    },
    SetRetention {
        key: ShardKey,
        retention_ms: i64,
    },
    Shutdown {
        reply: Reply<()>,
    },
    /// Run a task on this core (the network server's accept loops).
    Spawn(Box<dyn FnOnce() + Send>),
}

/// The data key (and its reference) an encrypted stream's batches are
/// written under; `None` for a stream in the clear.
pub type SealingKey = Option<(u32, Arc<riffle_store::cipher::DataKey>)>;

/// What reads of a stream that is or was encrypted decrypt with.
pub type ReadKeys = Option<Arc<dyn riffle_store::cipher::BatchKeys + Send + Sync>>;

struct ShardEntry {
    pump: flume::Sender<PumpMsg>,
    view: Rc<RefCell<LogView<DmaStorageFile>>>,
    /// Bumped by the pump whenever records become visible.
    tip: Rc<Notify>,
    retention_ms: i64,
    meter: Meter,
    /// The shard's own counters (shard-level metrics).
    counters: Arc<crate::engine_metrics::ShardCounters>,
}

/// A shard's throughput limits, when the engine enforces them and the
/// shard is not an internal stream's.
type Meter = Option<Box<Metered>>;

struct Metered {
    throttle: ShardThrottle,
    refused: Arc<StreamRefusals>,
    /// AWS's refusals, worded once: PutRecord(s)' and GetRecords'.
    write_refusal: Box<str>,
    read_refusal: Box<str>,
}

/// The limits of shard `key` of stream `stream`, set up when it opens.
fn meter_of(config: &EngineConfig, key: ShardKey, stream: &str) -> Meter {
    let limits = config.shard_limits.as_ref()?;
    if riffle_store::catalog::is_internal_stream(stream) {
        return None;
    }
    let shard = routing::shard_id(key.1);
    let account = &config.account;
    Some(Box::new(Metered {
        throttle: ShardThrottle::new(limits, Instant::now()),
        refused: limits.refused.of(key.0),
        write_refusal: format!(
            "Rate exceeded for shard {shard} in stream {stream} under account {account}."
        )
        .into(),
        read_refusal: format!("Rate exceeded for Shard - {account}/{stream}/{shard}").into(),
    }))
}

/// Admits an append under the shard's limits (and charges it), or refuses
/// it with AWS's ProvisionedThroughputExceeded (and counts its records).
fn admit_write(entry: &mut ShardEntry, batch: &ValidBatch) -> Result<(), Error> {
    let Some(m) = &mut entry.meter else {
        return Ok(());
    };
    let view = batch.view();
    let records = view.len() as u64;
    let bytes = record_bytes(view.records().iter());
    if m.throttle.admit_write(records, bytes, Instant::now()) {
        return Ok(());
    }
    m.refused.records_refused.add(records);
    Err(Error::new(
        ErrorCode::ProvisionedThroughputExceeded,
        &*m.write_refusal,
    ))
}

/// Admits a GetRecords call under the shard's limits (one call charged;
/// `Ok(true)`: charge the bytes it serves), `Ok(false)` when the shard is
/// not metered, or AWS's refusal (counted).
fn admit_read(entry: &mut ShardEntry) -> Result<bool, Error> {
    let Some(m) = &mut entry.meter else {
        return Ok(false);
    };
    if m.throttle.admit_read(Instant::now()) {
        return Ok(true);
    }
    m.refused.reads_refused.add(1);
    Err(Error::new(
        ErrorCode::ProvisionedThroughputExceeded,
        &*m.read_refusal,
    ))
}

/// Bytes of a batch's records as the limits count them: data and partition keys.
fn record_bytes<'a>(records: impl Iterator<Item = &'a batch::ArchivedRecord>) -> u64 {
    records
        .map(|r| (r.partition_key().len() + r.data().len()) as u64)
        .sum()
}

/// A read's records, their data bytes and the age of its last record in the
/// shard's counters (shard-level metrics).
fn count_read(c: &crate::engine_metrics::ShardCounters, read: &OwnedRead) {
    let (mut records, mut bytes, mut last_ms) = (0u64, 0u64, None);
    for s in &read.spans {
        let all = s.batch().records();
        let from = (s.skip() as usize).min(all.len());
        let to = (from + s.take() as usize).min(all.len());
        for r in &all[from..to] {
            records += 1;
            bytes += r.data().len() as u64;
            last_ms = Some(r.arrival_ms());
        }
    }
    // Bytes first: CloudWatch's sampler reads the records as the calls.
    c.outgoing_bytes.add(bytes);
    c.outgoing_records.add(records);
    if let Some(at) = last_ms {
        c.iterator_age_ms.set((rt::now_ms() - at).max(0) as u64);
    }
}

/// Bytes a read serves (data and partition keys of the records in its spans).
fn served_bytes(read: &OwnedRead) -> u64 {
    read.spans
        .iter()
        .map(|s| {
            let records = s.batch().records();
            let from = (s.skip() as usize).min(records.len());
            let to = (from + s.take() as usize).min(records.len());
            record_bytes(records[from..to].iter())
        })
        .sum()
}

type Shards = Rc<RefCell<HashMap<ShardKey, ShardEntry>>>;

fn missing(key: ShardKey) -> Error {
    Error::not_found(format!(
        "shard {} of stream id {} is not open on this core",
        key.1, key.0
    ))
}

/// The shard's log view, or a ResourceNotFound reply when this core has no such shard.
fn shard_view<T>(
    shards: &Shards,
    key: ShardKey,
    reply: &Reply<T>,
) -> Option<Rc<RefCell<LogView<DmaStorageFile>>>> {
    let view = shards.borrow().get(&key).map(|e| e.view.clone());
    if view.is_none() {
        let _ = reply.send(Err(missing(key)));
    }
    view
}

/// Asks a pump to flush, sync and stop; waits for it. A pump already gone is closed.
async fn close_pump(pump: &flume::Sender<PumpMsg>) -> Result<(), Error> {
    let (tx, rx) = flume::bounded(1);
    if pump.send_async(PumpMsg::Close { reply: tx }).await.is_err() {
        return Ok(());
    }
    rx.recv_async().await.unwrap_or(Ok(()))
}

/// Reads visible records and copies them out of the core's buffers.
async fn read_owned(
    view: &Rc<RefCell<LogView<DmaStorageFile>>>,
    from: u64,
    count_max: u32,
    bytes_max: u64,
    read_size: usize,
    keys: Option<&dyn riffle_store::cipher::BatchKeys>,
) -> Result<OwnedRead, Error> {
    let out = log::read_with(view, from, count_max, bytes_max, read_size, keys).await?;
    let spans = out.spans.iter().map(OwnedSpan::of).collect();
    Ok(OwnedRead {
        spans,
        next_offset: out.next_offset,
        visible_offset: out.visible_offset,
        tip_arrival_ms: view.borrow().tip_arrival_ms(),
        // Decided when the reply is made (`caught_up_at`), not here: a read
        // may wait, and only the last moment before the answer counts.
        caught_up_at_ms: None,
    })
}

/// [`OwnedRead::caught_up_at_ms`] for a read that ends at `read_to`, decided
/// now: call it with no await between it and the reply.
fn caught_up_at(view: &LogView<DmaStorageFile>, read_to: u64) -> Option<i64> {
    (read_to >= view.next_offset).then(rt::now_ms)
}

/// The core's main task.
pub async fn run(
    core: rt::CoreId,
    config: Arc<EngineConfig>,
    inbox: flume::Receiver<CoreMsg>,
    control: Option<crate::control::Control>,
) {
    let shards: Shards = Rc::new(RefCell::new(HashMap::new()));
    if let Err(e) = DmaStorage::probe_device(&config.data_dir).await {
        tracing::warn!(error = %e, "cannot probe the data directory's device");
    }
    if let Some(control) = control {
        rt::spawn(control.run());
    }
    // What the core holds, counted each second for its metrics.
    if let Some(metrics) = crate::engine_metrics::current() {
        let shards = shards.clone();
        rt::spawn(async move {
            loop {
                let (mut segments, mut queued) = (0u64, 0u64);
                for entry in shards.borrow().values() {
                    segments += entry.view.borrow().segments.len() as u64;
                    queued += entry.pump.len() as u64;
                }
                metrics.shards.set(shards.borrow().len() as u64);
                metrics.segments.set(segments);
                metrics.pump_queued.set(queued);
                rt::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
    {
        let shards = shards.clone();
        let interval = config.retention_interval_ms;
        rt::spawn(async move {
            loop {
                rt::sleep(std::time::Duration::from_millis(interval)).await;
                for entry in shards.borrow().values() {
                    let _ = entry.pump.try_send(PumpMsg::Retention {
                        retention_ms: entry.retention_ms,
                    });
                }
            }
        });
    }
    let pump_config = PumpConfig::new(
        config.durability,
        config.commit_bytes_max,
        config.syncs_in_flight_max,
        config.limits.batch_size_max(),
    );
    while let Ok(msg) = inbox.recv_async().await {
        match msg {
            CoreMsg::OpenShard {
                key,
                stream,
                dir,
                retention_ms,
                sealed,
                reply,
            } => {
                if shards.borrow().contains_key(&key) {
                    let _ = reply.send(Ok(()));
                    continue;
                }
                let mut log_config = config.log.clone();
                log_config.durable_acks = config.durability == crate::config::Durability::Fsync;
                match ShardLog::open(DmaStorage, &dir, log_config).await {
                    Ok(log) => {
                        let (tx, rx) = flume::bounded(config.shard_queue_max);
                        let view = log.view().clone();
                        let tip = Rc::new(Notify::new());
                        let counters = Arc::<crate::engine_metrics::ShardCounters>::default();
                        rt::spawn(pump::run(
                            log,
                            rx,
                            pump_config,
                            tip.clone(),
                            sealed,
                            Some(counters.clone()),
                        ));
                        if let Some(m) = crate::engine_metrics::current() {
                            m.shard_counters
                                .lock()
                                .unwrap()
                                .insert(key, counters.clone());
                        }
                        shards.borrow_mut().insert(
                            key,
                            ShardEntry {
                                pump: tx,
                                view,
                                tip,
                                retention_ms,
                                meter: meter_of(&config, key, &stream),
                                counters,
                            },
                        );
                        tracing::debug!(
                            core = core.0,
                            stream_id = key.0,
                            shard = key.1,
                            "shard open"
                        );
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open shard");
                        let _ = reply.send(Err(e));
                    }
                }
            }
            CoreMsg::CloseShard { key, reply } => {
                let entry = shards.borrow_mut().remove(&key);
                if let Some(m) = crate::engine_metrics::current() {
                    m.shard_counters.lock().unwrap().remove(&key);
                }
                match entry {
                    Some(entry) => rt::spawn(async move {
                        let _ = reply.send(close_pump(&entry.pump).await);
                    }),
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            CoreMsg::Seal { key, seal, reply } => {
                let pump = shards.borrow().get(&key).map(|e| e.pump.clone());
                let Some(pump) = pump else {
                    let _ = reply.send(Err(missing(key)));
                    continue;
                };
                rt::spawn(async move {
                    if !seal {
                        let _ = pump.send_async(PumpMsg::Unseal).await;
                        let _ = reply.send(Ok(0));
                    } else if let Err(flume::SendError(PumpMsg::Seal { reply })) =
                        pump.send_async(PumpMsg::Seal { reply }).await
                    {
                        let _ = reply.send(Err(Error::internal("shard is closing")));
                    }
                });
            }
            CoreMsg::Append {
                key,
                batch,
                seal,
                reply,
            } => {
                let pump = match shards.borrow_mut().get_mut(&key) {
                    None => Err(missing(key)),
                    Some(e) => {
                        // Admitted records are counted once stored (the pump).
                        let admitted = admit_write(e, &batch);
                        if admitted.is_err() {
                            e.counters.write_exceeded.add(batch.view().len() as u64);
                        }
                        admitted.map(|()| e.pump.clone())
                    }
                };
                match pump {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(pump) => match pump.try_send(PumpMsg::Append { batch, seal, reply }) {
                        Ok(()) => {}
                        Err(flume::TrySendError::Full(msg)) => rt::spawn(async move {
                            // Backpressure: wait for room without blocking the inbox.
                            let _ = pump.send_async(msg).await;
                        }),
                        Err(flume::TrySendError::Disconnected(PumpMsg::Append {
                            reply, ..
                        })) => {
                            let _ = reply
                                .send(Err(Error::new(ErrorCode::Internal, "shard is closing")));
                        }
                        Err(flume::TrySendError::Disconnected(_)) => {}
                    },
                }
            }
            CoreMsg::Read {
                key,
                keys,
                from,
                count_max,
                bytes_max,
                wait_ms,
                follow,
                metered,
                reply,
            } => {
                let Some(view) = shard_view(&shards, key, &reply) else {
                    continue;
                };
                // A metered read is admitted (one call charged) or refused
                // here; the bytes it serves are charged once it has read.
                let mut charge_to = None;
                let counters = shards.borrow().get(&key).map(|e| e.counters.clone());
                if metered {
                    let admitted = match shards.borrow_mut().get_mut(&key) {
                        Some(e) => admit_read(e).inspect_err(|_| e.counters.read_exceeded.add(1)),
                        None => Ok(false),
                    };
                    match admitted {
                        Ok(true) => charge_to = Some(shards.clone()),
                        Ok(false) => {}
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    }
                }
                let tip = shards.borrow().get(&key).map(|e| e.tip.clone());
                let read_size = config.log.read_size;
                // Followers mark where they read next; any read lets the
                // batches no fresh follower needs go.
                let followed = move |view: &Rc<RefCell<LogView<DmaStorageFile>>>, at: u64| {
                    let recent = &mut view.borrow_mut().recent;
                    match follow {
                        Some(id) => recent.follow(id, at, rt::now_ms()),
                        None => recent.evict(rt::now_ms()),
                    }
                };
                rt::spawn(async move {
                    followed(&view, from);
                    let seen = tip.as_ref().map_or(0, |t| t.version());
                    let keys = keys
                        .as_deref()
                        .map(|k| k as &dyn riffle_store::cipher::BatchKeys);
                    let mut result =
                        read_owned(&view, from, count_max, bytes_max, read_size, keys).await;
                    let empty = matches!(&result, Ok(r) if r.spans.is_empty());
                    if let (true, Some(tip)) = (empty && wait_ms > 0, tip) {
                        let wait = std::time::Duration::from_millis(wait_ms);
                        futures_lite::future::or(tip.changed(seen), rt::sleep(wait)).await;
                        result =
                            read_owned(&view, from, count_max, bytes_max, read_size, keys).await;
                    }
                    if let Ok(read) = &mut result {
                        followed(&view, read.next_offset);
                        // A delivery task's reads are the service's, not a client's.
                        if let (Some(c), None) = (&counters, follow) {
                            count_read(c, read);
                        }
                        if let Some(shards) = charge_to {
                            let bytes = served_bytes(read);
                            if let Some(ShardEntry { meter: Some(m), .. }) =
                                shards.borrow_mut().get_mut(&key)
                            {
                                m.throttle.charge_read(bytes, Instant::now());
                            }
                        }
                        // Last, with no await before the reply: nothing can be
                        // appended between this check and the answer.
                        read.caught_up_at_ms = caught_up_at(&view.borrow(), read.next_offset);
                    }
                    let _ = reply.send(result);
                });
            }
            CoreMsg::Position {
                key,
                position,
                reply,
            } => {
                let Some(view) = shard_view(&shards, key, &reply) else {
                    continue;
                };
                rt::spawn(async move {
                    let result = match position {
                        Position::TrimHorizon => Ok(view.borrow().trim_offset),
                        Position::Latest => Ok(view.borrow().visible_offset),
                        Position::AtTimestamp(t) => log::offset_at_time(&view, t).await,
                        Position::Offset(o) => {
                            let v = view.borrow();
                            if o > v.next_offset {
                                Err(Error::invalid(format!(
                                    "sequence number for offset {o} is beyond the end of the shard (next offset {})",
                                    v.next_offset
                                )))
                            } else {
                                Ok(o.max(v.trim_offset))
                            }
                        }
                    };
                    let _ = reply.send(result);
                });
            }
            CoreMsg::SetRetention { key, retention_ms } => {
                if let Some(e) = shards.borrow_mut().get_mut(&key) {
                    e.retention_ms = retention_ms;
                }
            }
            CoreMsg::Spawn(task) => task(),
            CoreMsg::Shutdown { reply } => {
                let entries: Vec<ShardEntry> =
                    shards.borrow_mut().drain().map(|(_, e)| e).collect();
                for entry in entries {
                    let _ = close_pump(&entry.pump).await;
                }
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }
}
