//! The shard pump: the only task that appends to a shard's log.
//!
//! Lives on the shard's owning core. Group commit: the pump takes every append
//! queued for the shard (up to `commit_bytes_max`), applies them synchronously
//! (offsets, sequence numbers, arrival times), submits the resulting writes
//! together (they never overlap) and completes them in order, then asks the
//! shard's `Syncer` for an fdatasync covering them and goes on with the next
//! group while no more than `unsynced_bytes_bound` is written but not durable
//! (syncs are coalesced: at most
//! `syncs_in_flight_max` run, each covering every group written before it; lazy
//! with `durability = none`). A put is answered
//! when the watermark it waits for passes its end offset: `durable` with
//! `durability = fsync`, `written` with `durability = none`. Each sealed batch
//! then joins the shard's recent-batches cache (readers near the tip).
//!
//! Resharding seals a shard through its pump (`PumpMsg::Seal`): everything
//! appended is flushed and synced, the shard's length answered, and later
//! appends refused.
//!
//! On a failed write or sync the log is poisoned: every waiting and later append
//! gets `StorageFailed` (see `riffle_store::log` for the policy).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use riffle_protocol::batch::ValidBatch;
use riffle_protocol::{Error, ErrorCode};
use riffle_store::log::{Appended, ShardLog};
use riffle_store::{Storage, StorageFile};

use crate::config::Durability;
use crate::notify::Notify;
use crate::rt;
use crate::syncer::Syncer;

/// A reply channel (one message).
pub type Reply<T> = flume::Sender<Result<T, Error>>;

/// What a pump is asked to do.
pub enum PumpMsg {
    /// Append a batch (validated, or built by the server: the type says so).
    Append {
        batch: ValidBatch,
        /// The stream's data key when it is encrypted.
        seal: crate::core::SealingKey,
        reply: Reply<Appended>,
    },
    /// Delete segments older than the retention.
    Retention { retention_ms: i64 },
    /// Flush, sync and stop.
    Close { reply: Reply<()> },
    /// Resharding: flush and sync everything appended so far, then refuse every
    /// later append; answers the shard's length (the offset after its last record).
    Seal { reply: Reply<u64> },
    /// Undoes a seal (the reshard it was for failed).
    Unseal,
}

/// What an append to a sealed (resharded) shard gets: ResourceNotFound, so a
/// client that routes by itself lists the shards again.
pub fn sealed_error() -> Error {
    Error::not_found(SEALED_MESSAGE)
}

const SEALED_MESSAGE: &str = "The shard is closed: the stream was resharded; list the shards again and route to the open ones";

/// Whether `e` is [`sealed_error`] (the put may be routed again).
pub fn is_sealed_error(e: &Error) -> bool {
    e.code == ErrorCode::ResourceNotFound && e.message == SEALED_MESSAGE
}

/// Settings a pump needs.
#[derive(Clone, Copy, Debug)]
pub struct PumpConfig {
    pub durability: Durability,
    pub commit_bytes_max: usize,
    pub syncs_in_flight_max: usize,
    /// The pump stops taking appends while more bytes than this are written but
    /// not durable (one more group must still fit the log's recovery window).
    pub unsynced_bytes_bound: usize,
}

impl PumpConfig {
    /// Settings whose unsynced-bytes bound is `syncs_in_flight_max` groups of at
    /// most `commit_bytes_max` plus one batch (`EngineConfig::validate` checks
    /// that this and one more group fit the log's recovery window).
    pub fn new(
        durability: Durability,
        commit_bytes_max: usize,
        syncs_in_flight_max: usize,
        batch_size_max: usize,
    ) -> PumpConfig {
        PumpConfig {
            durability,
            commit_bytes_max,
            syncs_in_flight_max,
            unsynced_bytes_bound: syncs_in_flight_max.max(1) * (commit_bytes_max + batch_size_max),
        }
    }
}

/// With `durability = none`, how long written data may wait for a sync when
/// less than `commit_bytes_max` of it is unsynced.
pub const LAZY_SYNC_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// An append's waiter, and what the shard's counters get once it is answered.
type Waiter = (Appended, Reply<Appended>, Option<Counted>);
/// The shard's counters and the append's data bytes (shard-level metrics).
type Counted = (Arc<crate::engine_metrics::ShardCounters>, u64);
type Waiters = Rc<RefCell<VecDeque<Waiter>>>;

/// Answers every waiter whose batch is below `visible` and tells tailing readers.
fn complete(waiters: &Waiters, tip: &Notify, visible: u64) {
    tip.notify();
    let mut w = waiters.borrow_mut();
    while let Some((a, _, _)) = w.front() {
        if a.end_offset > visible {
            break;
        }
        let (a, reply, counted) = w.pop_front().unwrap();
        if let Some((c, bytes)) = counted {
            // Bytes first: CloudWatch's sampler reads the records as the calls.
            c.incoming_bytes.add(bytes);
            c.incoming_records.add(u64::from(a.record_count));
        }
        let _ = reply.send(Ok(a));
    }
}

fn fail_all(waiters: &Waiters, why: &str) {
    for (_, reply, _) in waiters.borrow_mut().drain(..) {
        let _ = reply.send(Err(Error::new(
            ErrorCode::StorageFailed,
            format!("shard storage failed: {why}"),
        )));
    }
}

/// Runs the pump until it is closed or its channel is dropped.
pub async fn run<S: Storage>(
    mut log: ShardLog<S>,
    rx: flume::Receiver<PumpMsg>,
    config: PumpConfig,
    tip: Rc<Notify>,
    mut sealed: bool,
    counters: Option<Arc<crate::engine_metrics::ShardCounters>>,
) {
    let waiters: Waiters = Rc::new(RefCell::new(VecDeque::new()));
    let metrics = crate::engine_metrics::current();
    let mut sync_requested = log.view().borrow().durable_offset;
    let view = log.view().clone();
    let syncer = {
        let (view, waiters, tip) = (view.clone(), waiters.clone(), tip.clone());
        let lazy = (config.durability == Durability::None).then_some(LAZY_SYNC_DELAY);
        let durable = {
            let view = view.clone();
            move || view.borrow().durable_offset
        };
        Syncer::<S::File>::new(config.syncs_in_flight_max, lazy, durable, move |outcome| {
            match outcome {
                Ok(covered) => {
                    let visible = {
                        let mut v = view.borrow_mut();
                        v.mark_durable(covered);
                        v.visible_offset
                    };
                    complete(&waiters, &tip, visible);
                }
                Err(e) => {
                    let why = format!("fdatasync failed: {e}");
                    tracing::error!(error = %why, "shard sync failed; the shard stops acknowledging");
                    view.borrow_mut().poison(why.clone());
                    fail_all(&waiters, &why);
                }
            }
        })
    };
    // Groups written but not yet durable: (end offset, bytes), oldest first.
    let mut unsynced: VecDeque<(u64, usize)> = VecDeque::new();
    let mut unsynced_bytes = 0usize;
    while let Ok(first) = rx.recv_async().await {
        let mut next = Some(first);
        let mut group_bytes = 0usize;
        let mut close = None;
        let mut seal = None;
        while let Some(msg) = next.take() {
            match msg {
                PumpMsg::Append { reply, .. } if sealed => {
                    let _ = reply.send(Err(sealed_error()));
                }
                PumpMsg::Append { batch, seal, reply } => {
                    let mut now = rt::now_ms();
                    let stored_len = batch.len()
                        + seal
                            .as_ref()
                            .map_or(0, |_| riffle_protocol::batch::ENCRYPTION_OVERHEAD);
                    if log.needs_roll(stored_len, now) {
                        // Roll writes and syncs everything appended so far.
                        if let Err(e) = log.roll().await {
                            // Answer what the roll's own flush made visible first.
                            complete(&waiters, &tip, view.borrow().visible_offset);
                            fail_all(&waiters, &e.message);
                        }
                        complete(&waiters, &tip, view.borrow().visible_offset);
                        // The roll awaited: a reader may have been told the
                        // shard's watermark (`OwnedRead::caught_up_at_ms`) since
                        // the clock was read; stamp with a clock read after it.
                        now = rt::now_ms();
                    }
                    group_bytes += stored_len;
                    // Counted for the shard once acknowledged (stored).
                    let counted = counters.as_ref().map(|c| {
                        let view = batch.view();
                        let bytes = view.records().iter().map(|r| r.data().len() as u64).sum();
                        (c.clone(), bytes)
                    });
                    let key = seal.as_ref().map(|(key_ref, key)| (*key_ref, &**key));
                    match log.append_owned_under(batch, now, key) {
                        Ok(a) => waiters.borrow_mut().push_back((a, reply, counted)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                PumpMsg::Retention { retention_ms } => {
                    if let Err(e) = log.apply_retention(rt::now_ms(), retention_ms).await {
                        tracing::error!(error = %e, "retention failed");
                    }
                    complete(&waiters, &tip, view.borrow().visible_offset);
                }
                PumpMsg::Close { reply } => close = Some(reply),
                PumpMsg::Seal { reply } => {
                    sealed = true;
                    seal = Some(reply);
                }
                PumpMsg::Unseal => sealed = false,
            }
            if close.is_some() || seal.is_some() || group_bytes >= config.commit_bytes_max {
                break;
            }
            next = rx.try_recv().ok();
        }
        let mut synced_file = None;
        // Write the group: its jobs do not overlap one another (see `appender`), so
        // they are submitted together and completed in order. A poisoned log writes
        // nothing more: jobs must never be skipped.
        if let Err(e) = log.reserve_ahead().await {
            tracing::warn!(error = %e, "cannot reserve segment space ahead; writes extend the file");
        }
        let mut writes = Vec::new();
        let mut written_bytes = 0u64;
        while view.borrow().failed.is_none() {
            let Some(w) = log.take_write() else { break };
            written_bytes += w.job.end.saturating_sub(w.job.pos);
            let (end, file) = (w.job.end, w.file.clone());
            writes.push((
                end,
                file,
                Box::pin(async move { w.file.write_at(w.job.buf, w.job.pos).await }),
            ));
        }
        let mut submitted = Vec::with_capacity(writes.len());
        for (_, _, write) in writes.iter_mut() {
            submitted.push(futures_lite::future::poll_once(write.as_mut()).await);
        }
        let mut failure = None;
        for ((end, file, write), ready) in writes.iter_mut().zip(submitted) {
            let result = match ready {
                Some(result) => result,
                None => write.as_mut().await,
            };
            match result {
                Ok(()) if failure.is_none() => {
                    log.write_done(*end);
                    synced_file = Some(file.clone());
                }
                Ok(()) => {}
                Err(e) => {
                    failure.get_or_insert_with(|| format!("write failed: {e}"));
                }
            }
        }
        if let Some(m) = metrics.as_ref().filter(|_| !writes.is_empty()) {
            m.bytes_written.add(written_bytes);
            m.groups.add(1);
        }
        if let Some(why) = failure {
            tracing::error!(error = %why, "shard write failed; the shard stops acknowledging");
            view.borrow_mut().poison(why.clone());
            fail_all(&waiters, &why);
        }
        if config.durability == Durability::None {
            complete(&waiters, &tip, view.borrow().visible_offset);
        }
        // Sync in both modes: with `durability = none` acks do not wait for it, but
        // it bounds the recovery window (see `syncer`).
        let covered = view.borrow().written_offset;
        if let Some(file) = synced_file.filter(|_| covered > sync_requested) {
            sync_requested = covered;
            unsynced.push_back((covered, group_bytes));
            unsynced_bytes += group_bytes;
            syncer.request(file, covered, unsynced_bytes >= config.commit_bytes_max);
        }
        // Bound the bytes written but not durable: wait for syncs to catch up.
        loop {
            let seen = syncer.done.version();
            {
                let v = view.borrow();
                while unsynced
                    .front()
                    .is_some_and(|&(end, _)| end <= v.durable_offset)
                {
                    unsynced_bytes -= unsynced.pop_front().expect("not empty").1;
                }
                if v.failed.is_some() || unsynced_bytes <= config.unsynced_bytes_bound {
                    break;
                }
            }
            syncer.done.changed(seen).await;
        }
        if seal.is_none() && close.is_none() {
            continue;
        }
        // Seal or close: everything appended so far is written and durable
        // first (a seal reports the shard's length, then logged in the catalog).
        let result = log.flush().await;
        syncer.drain().await;
        complete(&waiters, &tip, view.borrow().visible_offset);
        if let Err(e) = &result {
            fail_all(&waiters, &e.message);
        }
        if let Some(reply) = seal {
            match &result {
                Err(_) => sealed = false,
                // A closed shard's readers drain it once: its newest batches
                // need not stay in memory (reads go to the segments).
                Ok(_) => view.borrow_mut().recent.clear(),
            }
            let _ = reply.send(result.clone().map(|_| view.borrow().next_offset));
        }
        if let Some(reply) = close {
            let _ = reply.send(result.map(|_| ()));
            return;
        }
    }
}
