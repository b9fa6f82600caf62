//! The shard pump: the only task that appends to a shard's log.
//!
//! Lives on the shard's owning core. Group commit: the pump takes every append
//! queued for the shard (up to `commit_bytes_max`), applies them synchronously
//! (offsets, sequence numbers, arrival times), performs the resulting writes one
//! after the other, then issues an fdatasync as a separate task and goes on with
//! the next group while up to `syncs_in_flight_max` syncs run. A put is answered
//! when the watermark it waits for passes its end offset: `durable` with
//! `durability = fsync`, `written` with `durability = none`.
//!
//! On a failed write or sync the log is poisoned: every waiting and later append
//! gets `StorageFailed` (see `riffle_store::log` for the policy).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::log::{Appended, ShardLog};
use riffle_store::{Storage, StorageFile};
use rkyv::util::AlignedVec;

use crate::config::Durability;
use crate::notify::Notify;
use crate::rt;

/// A reply channel (one message).
pub type Reply<T> = flume::Sender<Result<T, Error>>;

/// What a pump is asked to do.
pub enum PumpMsg {
    /// Append a validated batch.
    Append {
        batch: AlignedVec<16>,
        reply: Reply<Appended>,
    },
    /// Delete segments older than the retention.
    Retention { retention_ms: i64 },
    /// Flush, sync and stop.
    Close { reply: Reply<()> },
}

/// Settings a pump needs.
#[derive(Clone, Copy, Debug)]
pub struct PumpConfig {
    pub durability: Durability,
    pub commit_bytes_max: usize,
    pub syncs_in_flight_max: usize,
}

type Waiters = Rc<RefCell<VecDeque<(Appended, Reply<Appended>)>>>;

/// Answers every waiter whose batch is below `visible` and tells tailing readers.
fn complete(waiters: &Waiters, tip: &Notify, visible: u64) {
    tip.notify();
    let mut w = waiters.borrow_mut();
    while let Some((a, _)) = w.front() {
        if a.end_offset > visible {
            break;
        }
        let (a, reply) = w.pop_front().unwrap();
        let _ = reply.send(Ok(a));
    }
}

fn fail_all(waiters: &Waiters, why: &str) {
    for (_, reply) in waiters.borrow_mut().drain(..) {
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
) {
    let waiters: Waiters = Rc::new(RefCell::new(VecDeque::new()));
    // A token per sync in flight: sending waits when `syncs_in_flight_max` run.
    let (slot_tx, slot_rx) = flume::bounded::<()>(config.syncs_in_flight_max.max(1));
    let mut sync_requested = log.view().borrow().durable_offset;
    let view = log.view().clone();
    while let Ok(first) = rx.recv_async().await {
        let mut next = Some(first);
        let mut group_bytes = 0usize;
        let mut close = None;
        while let Some(msg) = next.take() {
            match msg {
                PumpMsg::Append { mut batch, reply } => {
                    let now = rt::now_ms();
                    if log.needs_roll(batch.len(), now) {
                        // Roll writes and syncs everything appended so far.
                        if let Err(e) = log.roll().await {
                            // Answer what the roll's own flush made visible first.
                            complete(&waiters, &tip, view.borrow().visible_offset);
                            fail_all(&waiters, &e.message);
                        }
                        complete(&waiters, &tip, view.borrow().visible_offset);
                    }
                    group_bytes += batch.len();
                    match log.append(&mut batch, now) {
                        Ok(a) => waiters.borrow_mut().push_back((a, reply)),
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
            }
            if close.is_some() || group_bytes >= config.commit_bytes_max {
                break;
            }
            next = rx.try_recv().ok();
        }
        // Write the group, one write after the other.
        let mut synced_file = None;
        // Write the group: its jobs do not overlap one another (see `appender`), so
        // they are submitted together and completed in order. A poisoned log writes
        // nothing more: jobs must never be skipped.
        if let Err(e) = log.reserve_ahead().await {
            tracing::warn!(error = %e, "cannot reserve segment space ahead; writes extend the file");
        }
        let mut writes = Vec::new();
        while view.borrow().failed.is_none() {
            let Some(w) = log.take_write() else { break };
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
        if let Some(why) = failure {
            tracing::error!(error = %why, "shard write failed; the shard stops acknowledging");
            view.borrow_mut().poison(why.clone());
            fail_all(&waiters, &why);
        }
        if config.durability == Durability::None {
            complete(&waiters, &tip, view.borrow().visible_offset);
        }
        // Sync in both modes: with `durability = none` acks do not wait for it, but it
        // keeps the unsynced bytes (the recovery window) bounded by the sync slots.
        {
            {
                let covered = view.borrow().written_offset;
                if let Some(file) = synced_file.filter(|_| covered > sync_requested) {
                    sync_requested = covered;
                    let _ = slot_tx.send_async(()).await;
                    let (view, waiters, slot_rx, tip) =
                        (view.clone(), waiters.clone(), slot_rx.clone(), tip.clone());
                    rt::spawn(async move {
                        let result = file.sync().await;
                        let _ = slot_rx.try_recv();
                        match result {
                            Ok(()) => {
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
                    });
                }
            }
        }
        if let Some(reply) = close {
            let result = log.flush().await.map(|_| ());
            // Wait for syncs in flight: each holds a slot.
            for _ in 0..config.syncs_in_flight_max.max(1) {
                let _ = slot_tx.send_async(()).await;
            }
            complete(&waiters, &tip, view.borrow().visible_offset);
            if let Err(e) = &result {
                fail_all(&waiters, &e.message);
            }
            let _ = reply.send(result);
            return;
        }
    }
}
