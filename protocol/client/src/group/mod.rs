//! `ConsumerGroup`: a worker of a consumer group, as the Kinesis Client
//! Library runs one. The server keeps the group's leases (one per shard:
//! owner, counter, checkpoint, parents; docs/consumers.md); the worker
//! heartbeats, runs a [`RecordProcessor`] for each shard it holds, with the
//! KCL's lifecycle (`initialize`, `process_records` with a [`Checkpointer`],
//! `lease_lost`, `shard_ended`, `shutdown_requested`), and hands shards back
//! when asked.
//!
//! Processing is at least once: a shard's next holder starts after its last
//! checkpoint. A shard is processed by one worker at a time, in order, and a
//! child shard only after its parents were processed to their end. A worker
//! fences itself: when no heartbeat has succeeded for the failover time, it
//! treats every lease as lost and stops processing before the server can
//! hand them to anyone else.
//!
//! Modules: this one (the API), `worker` (the heartbeat thread and one thread
//! per shard).

mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use riffle_protocol::ErrorCode;
use riffle_protocol::native::{InitialPosition, LeaseCheckpoint};

use crate::client::Client;
use crate::consumer::ConsumerConfig;
use crate::error::ClientError;
use crate::types::{Checkpoint, Record};

/// A consumer group worker's settings.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The group's name (1 to 128 characters of `[a-zA-Z0-9_.:-]`).
    pub group: String,
    /// This worker's id, unique in the group (default: host name and pid).
    pub worker_id: String,
    /// A worker silent this long loses its leases (KCL's `failoverTimeMillis`,
    /// 10 s). Heartbeats go every third of it.
    pub failover: Duration,
    /// Where a new group starts reading (KCL's default: LATEST).
    pub initial: InitialPosition,
    /// How each shard is read: `follow: true` takes pushes at the tip (as
    /// enhanced fan-out does), `false` polls with GetRecords.
    pub consumer: ConsumerConfig,
    /// Records handed to `process_records` at most at once.
    pub batch_max: usize,
}

impl GroupConfig {
    pub fn new(group: &str) -> GroupConfig {
        GroupConfig {
            group: group.to_owned(),
            worker_id: default_worker_id(),
            failover: Duration::from_secs(10),
            initial: InitialPosition::Latest,
            consumer: ConsumerConfig::default(),
            batch_max: 10_000,
        }
    }
}

/// `<host>:<pid>`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .take(100)
        .collect();
    let host = if host.is_empty() {
        "worker".into()
    } else {
        host
    };
    format!("{host}:{}", std::process::id())
}

/// Where a shard's processing starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStart {
    pub shard_index: u32,
    /// The lease's checkpoint when this worker took it.
    pub checkpoint: LeaseCheckpoint,
}

/// One shard's processing, with the KCL's lifecycle. Calls come from the
/// shard's own thread, in this order: `initialize`, `process_records` any
/// number of times, then exactly one of `lease_lost`, `shard_ended` or
/// `shutdown_requested`.
pub trait RecordProcessor: Send {
    /// The worker took the shard's lease; records after `start.checkpoint` follow.
    fn initialize(&mut self, start: &ShardStart);

    /// The next records of the shard, in order (user records of aggregated
    /// records, with sub-sequence numbers). Checkpoint through `checkpointer`
    /// to record progress. Return well within the failover time: past
    /// [`Checkpointer::lease_deadline`], another worker may hold the shard.
    fn process_records(&mut self, records: &[Record], checkpointer: &mut Checkpointer);

    /// The lease was lost (taken over after this worker was silent, or a
    /// checkpoint was refused): stop; checkpointing is no longer possible.
    fn lease_lost(&mut self);

    /// Every record of the closed shard was processed: checkpoint
    /// (`checkpointer.checkpoint()` records SHARD_END, after which its
    /// children are processed). If the processor does not, the worker does.
    fn shard_ended(&mut self, checkpointer: &mut Checkpointer);

    /// The worker shuts down, or hands the shard to another worker: a last
    /// chance to checkpoint.
    fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer);
}

/// Records a shard's progress in the group's lease (the KCL's
/// `RecordProcessorCheckpointer`).
pub struct Checkpointer {
    client: Client,
    stream: String,
    group: String,
    worker: String,
    shard: u32,
    counter: u64,
    /// The last record handed to the processor.
    last: Option<Checkpoint>,
    /// At the shard's end: `checkpoint` records SHARD_END.
    ended: bool,
    /// The worker's leases are valid until this many ms after `epoch`.
    valid_until: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
    /// The lease was lost (a checkpoint was refused).
    lost: bool,
    /// SHARD_END was recorded.
    end_recorded: bool,
}

impl Checkpointer {
    /// Until when this worker's lease is valid as of its last heartbeat: work
    /// on the records handed out must be done (and checkpointed) before it;
    /// past it another worker may hold the shard. Later heartbeats move it on.
    pub fn lease_deadline(&self) -> std::time::Instant {
        self.epoch + Duration::from_millis(self.valid_until.load(Ordering::SeqCst))
    }

    /// Whether the lease was lost (a checkpoint was refused).
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Checkpoints after the last record handed to `process_records` (or
    /// SHARD_END in `shard_ended`).
    pub fn checkpoint(&mut self) -> Result<(), ClientError> {
        if self.ended {
            return self.send(LeaseCheckpoint::ShardEnd);
        }
        match self.last {
            Some(c) => self.checkpoint_at(c),
            None => Ok(()),
        }
    }

    /// Checkpoints after `at` (a record this processor was handed).
    pub fn checkpoint_at(&mut self, at: Checkpoint) -> Result<(), ClientError> {
        self.send(LeaseCheckpoint::After {
            sequence_number: at.sequence_number,
            sub_sequence_number: at.sub_sequence_number,
        })
    }

    fn send(&mut self, checkpoint: LeaseCheckpoint) -> Result<(), ClientError> {
        if self.lost {
            return Err(lease_lost_error(self.shard));
        }
        let r = self.client.group_checkpoint(
            &self.stream,
            &self.group,
            &self.worker,
            self.shard,
            self.counter,
            checkpoint,
        );
        match &r {
            Err(e) if e.code() == Some(ErrorCode::ConcurrentModification) => self.lost = true,
            Ok(()) if checkpoint == LeaseCheckpoint::ShardEnd => self.end_recorded = true,
            _ => {}
        }
        r
    }
}

fn lease_lost_error(shard: u32) -> ClientError {
    ClientError::Server(riffle_protocol::Error::new(
        ErrorCode::ConcurrentModification,
        format!(
            "Lease of {} is no longer held by this worker.",
            riffle_protocol::routing::shard_id(shard)
        ),
    ))
}

/// A running consumer group worker. Dropping it shuts it down as
/// [`ConsumerGroup::shutdown`] does.
pub struct ConsumerGroup {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ClientError>>>,
    held: Arc<std::sync::Mutex<Vec<u32>>>,
}

impl std::fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroup").finish_non_exhaustive()
    }
}

impl ConsumerGroup {
    /// Starts a worker of `config.group` on `stream`: its first heartbeat is
    /// made now (an unknown stream or bad names fail here), then it runs on
    /// its own threads. `processor` makes a processor for each shard taken.
    pub fn start(
        client: Client,
        stream: &str,
        config: GroupConfig,
        processor: impl Fn(u32) -> Box<dyn RecordProcessor> + Send + Sync + 'static,
    ) -> Result<ConsumerGroup, ClientError> {
        let failover_ms = u32::try_from(config.failover.as_millis()).unwrap_or(u32::MAX);
        // The first heartbeat here, so that its errors are the caller's. Its
        // leases are valid from when it was sent.
        let sent_at = std::time::Instant::now();
        let first = client.group_heartbeat(
            stream,
            &config.group,
            &config.worker_id,
            failover_ms,
            config.initial,
            &[],
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = worker::Worker::new(
            client,
            stream,
            config,
            Box::new(processor),
            (stop.clone(), held.clone()),
            sent_at,
        );
        let thread = std::thread::Builder::new()
            .name("riffle-group".into())
            .spawn(move || w.run(first))
            .map_err(|e| ClientError::Io(Arc::new(e)))?;
        Ok(ConsumerGroup {
            stop,
            thread: Some(thread),
            held,
        })
    }

    /// The shards this worker processes now.
    pub fn held(&self) -> Vec<u32> {
        crate::client::lock(&self.held).clone()
    }

    /// Whether the worker stopped by itself (an error it could not get past).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops: each processor gets `shutdown_requested` (and may checkpoint),
    /// then the worker leaves the group so its leases go to others at once.
    pub fn shutdown(mut self) -> Result<(), ClientError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ClientError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        thread.join().map_err(|_| ClientError::Closed)?
    }
}

impl Drop for ConsumerGroup {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
