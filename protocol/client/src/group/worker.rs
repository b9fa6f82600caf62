//! A consumer group worker's threads: one heartbeats (every third of the
//! failover time, and at once when a shard was handed back), starts a thread
//! for each lease the answer gives it, and tells a shard's thread to stop when
//! its lease is gone or asked back; each shard thread reads its shard with a
//! `Consumer` and drives its `RecordProcessor` through the KCL's lifecycle.
//!
//! Fencing: after each successful heartbeat, leases are valid until the
//! heartbeat's send time plus the failover time (the server counts from its
//! arrival, later). A shard thread checks that before every `process_records`
//! and stops with `lease_lost` past it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use riffle_protocol::native::{HeldLease, LeaseCheckpoint, StartPosition};

use super::{Checkpointer, GroupConfig, RecordProcessor, ShardStart};
use crate::client::{Client, lock};
use crate::consumer::Consumer;
use crate::error::ClientError;
use crate::types::Checkpoint;

/// What a shard thread is told.
const RUN: u8 = 0;
const LEASE_LOST: u8 = 1;
const SHUTDOWN: u8 = 2;

/// How long a shard thread waits for records before looking at its signal.
const READ_WAIT: Duration = Duration::from_millis(100);

type Factory = Box<dyn Fn(u32) -> Box<dyn RecordProcessor> + Send + Sync>;

struct ShardTask {
    counter: u64,
    signal: Arc<AtomicU8>,
    thread: JoinHandle<()>,
    /// Told to stop; not yet handed back.
    stopping: bool,
}

pub(super) struct Worker {
    client: Client,
    stream: String,
    config: GroupConfig,
    factory: Arc<Factory>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<u32>>>,
    shards: BTreeMap<u32, ShardTask>,
    released_tx: Sender<u32>,
    released_rx: Receiver<u32>,
    /// Shards handed back, to report in the next heartbeat.
    released: Vec<u32>,
    /// Leases are valid until this many ms after `epoch`.
    valid_until: Arc<AtomicU64>,
    epoch: Instant,
    /// When the last heartbeat failed (None: it succeeded).
    failed_at: Option<Instant>,
}

/// After a failed heartbeat, the next one waits at least this long, even with
/// shards to hand back.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

impl Worker {
    pub(super) fn new(
        client: Client,
        stream: &str,
        config: GroupConfig,
        factory: Factory,
        (stop, held): (Arc<AtomicBool>, Arc<Mutex<Vec<u32>>>),
        first_sent_at: Instant,
    ) -> Worker {
        let (released_tx, released_rx) = mpsc::channel();
        Worker {
            client,
            stream: stream.to_owned(),
            config,
            factory: Arc::new(factory),
            stop,
            held,
            shards: BTreeMap::new(),
            released_tx,
            released_rx,
            released: Vec::new(),
            valid_until: Arc::new(AtomicU64::new(0)),
            epoch: first_sent_at,
            failed_at: None,
        }
    }

    fn failover_ms(&self) -> u32 {
        u32::try_from(self.config.failover.as_millis()).unwrap_or(u32::MAX)
    }

    /// Runs until told to stop. `first` is the answer to the heartbeat
    /// `ConsumerGroup::start` made (sent at about `self.epoch`).
    pub(super) fn run(&mut self, first: Vec<HeldLease>) -> Result<(), ClientError> {
        self.renewed(self.epoch);
        self.apply(first);
        let interval = self.config.failover / 3;
        let mut next_beat = Instant::now() + interval;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return self.shut_down();
            }
            let wait = next_beat
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            match self.released_rx.recv_timeout(wait) {
                Ok(shard) => self.handed_back(shard),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while let Ok(shard) = self.released_rx.try_recv() {
                self.handed_back(shard);
            }
            let may_retry = self.failed_at.is_none_or(|t| t.elapsed() >= RETRY_PAUSE);
            if Instant::now() >= next_beat || (!self.released.is_empty() && may_retry) {
                self.heartbeat();
                next_beat = Instant::now() + interval;
            }
        }
    }

    fn renewed(&self, sent_at: Instant) {
        let until = sent_at.saturating_duration_since(self.epoch) + self.config.failover;
        self.valid_until
            .store(until.as_millis() as u64, Ordering::SeqCst);
    }

    fn heartbeat(&mut self) {
        let sent_at = Instant::now();
        let answer = self.client.group_heartbeat(
            &self.stream,
            &self.config.group,
            &self.config.worker_id,
            self.failover_ms(),
            self.config.initial,
            &self.released,
        );
        match answer {
            Ok(leases) => {
                self.released.clear();
                self.failed_at = None;
                // Lost leases are told to stop before the others' deadline moves
                // on, so none of them looks valid again meanwhile.
                self.apply(leases);
                self.renewed(sent_at);
            }
            Err(e) => {
                self.failed_at = Some(Instant::now());
                tracing::warn!(error = %e, group = %self.config.group, "consumer group heartbeat failed");
            }
        }
    }

    /// A shard thread finished: its lease is handed back at the next heartbeat.
    fn handed_back(&mut self, shard: u32) {
        if let Some(task) = self.shards.remove(&shard) {
            let _ = task.thread.join();
        }
        self.released.push(shard);
        self.publish_held();
    }

    /// The leases the server says this worker holds now.
    fn apply(&mut self, leases: Vec<HeldLease>) {
        let answered: BTreeMap<u32, &HeldLease> =
            leases.iter().map(|l| (l.shard_index, l)).collect();
        for (shard, task) in self.shards.iter_mut().filter(|(_, t)| !t.stopping) {
            let signal = match answered.get(shard) {
                None => LEASE_LOST,
                Some(l) if l.counter != task.counter => LEASE_LOST,
                Some(l) if l.revoked => SHUTDOWN,
                Some(_) => continue,
            };
            task.signal.store(signal, Ordering::SeqCst);
            task.stopping = true;
        }
        for lease in leases {
            if self.shards.contains_key(&lease.shard_index) {
                continue;
            }
            if lease.revoked {
                // Asked back before it started: hand it back at once.
                self.released.push(lease.shard_index);
                continue;
            }
            self.spawn(lease);
        }
        self.publish_held();
    }

    fn publish_held(&self) {
        *lock(&self.held) = self
            .shards
            .iter()
            .filter(|(_, t)| !t.stopping)
            .map(|(s, _)| *s)
            .collect();
    }

    fn spawn(&mut self, lease: HeldLease) {
        let shard = lease.shard_index;
        let signal = Arc::new(AtomicU8::new(RUN));
        let mut run = ShardRun {
            client: self.client.clone(),
            stream: self.stream.clone(),
            config: self.config.clone(),
            lease: lease.clone(),
            processor: (self.factory)(shard),
            signal: signal.clone(),
            valid_until: self.valid_until.clone(),
            epoch: self.epoch,
        };
        let released = self.released_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("riffle-group-{shard}"))
            .spawn(move || {
                run.run();
                let _ = released.send(shard);
            });
        match thread {
            Ok(thread) => {
                self.shards.insert(
                    shard,
                    ShardTask {
                        counter: lease.counter,
                        signal,
                        thread,
                        stopping: false,
                    },
                );
            }
            Err(e) => {
                tracing::error!(shard, error = %e, "cannot start a shard's thread: handing it back");
                self.released.push(shard);
            }
        }
    }

    /// Every processor gets `shutdown_requested`, then the worker leaves.
    fn shut_down(&mut self) -> Result<(), ClientError> {
        for task in self.shards.values_mut().filter(|t| !t.stopping) {
            task.signal.store(SHUTDOWN, Ordering::SeqCst);
            task.stopping = true;
        }
        for (_, task) in std::mem::take(&mut self.shards) {
            let _ = task.thread.join();
        }
        self.publish_held();
        self.client
            .group_leave(&self.stream, &self.config.group, &self.config.worker_id)
    }
}

/// One shard's processing, on its own thread.
struct ShardRun {
    client: Client,
    stream: String,
    config: GroupConfig,
    lease: HeldLease,
    processor: Box<dyn RecordProcessor>,
    signal: Arc<AtomicU8>,
    valid_until: Arc<AtomicU64>,
    epoch: Instant,
}

impl ShardRun {
    fn valid(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.valid_until.load(Ordering::SeqCst)
    }

    fn run(&mut self) {
        let shard = self.lease.shard_index;
        let start = ShardStart {
            shard_index: shard,
            checkpoint: self.lease.checkpoint,
        };
        self.processor.initialize(&start);
        let config = self.config.consumer.clone();
        let client = self.client.clone();
        let mut consumer = match self.lease.checkpoint {
            LeaseCheckpoint::TrimHorizon | LeaseCheckpoint::ShardEnd => Consumer::new(
                client,
                &self.stream,
                shard,
                StartPosition::TrimHorizon,
                config,
            ),
            LeaseCheckpoint::Latest => {
                Consumer::new(client, &self.stream, shard, StartPosition::Latest, config)
            }
            LeaseCheckpoint::After {
                sequence_number,
                sub_sequence_number,
            } => Consumer::resume(
                client,
                &self.stream,
                shard,
                Checkpoint {
                    sequence_number,
                    sub_sequence_number,
                },
                config,
            ),
        };
        let mut cp = Checkpointer {
            client: self.client.clone(),
            stream: self.stream.clone(),
            group: self.config.group.clone(),
            worker: self.config.worker_id.clone(),
            shard,
            counter: self.lease.counter,
            last: None,
            ended: false,
            valid_until: self.valid_until.clone(),
            epoch: self.epoch,
            lost: false,
            end_recorded: false,
        };
        loop {
            match self.signal.load(Ordering::SeqCst) {
                LEASE_LOST => return self.processor.lease_lost(),
                SHUTDOWN => return self.processor.shutdown_requested(&mut cp),
                _ => {}
            }
            if cp.lost || !self.valid() {
                return self.processor.lease_lost();
            }
            let batch = match consumer.next_batch(READ_WAIT, self.config.batch_max) {
                Ok(batch) => batch,
                Err(e) => {
                    // The consumer already retried what is transient (the
                    // stream is gone, say): give the shard back.
                    tracing::warn!(shard, error = %e, "consumer group shard read failed");
                    return self.processor.shutdown_requested(&mut cp);
                }
            };
            if let Some(last) = batch.last() {
                // Fenced again right before the processor runs.
                if !self.valid() || self.signal.load(Ordering::SeqCst) == LEASE_LOST {
                    return self.processor.lease_lost();
                }
                cp.last = Some(last.checkpoint());
                self.processor.process_records(&batch, &mut cp);
                continue;
            }
            if consumer.is_ended() {
                cp.ended = true;
                self.processor.shard_ended(&mut cp);
                if !cp.end_recorded
                    && !cp.lost
                    && let Err(e) = cp.checkpoint()
                {
                    tracing::warn!(shard, error = %e, "cannot record SHARD_END");
                }
                return;
            }
        }
    }
}
