//! `Producer`: batching, ordered, retrying puts on top of the blocking client.
//!
//! `send` routes a record to its shard (cached ListShards, MD5 or explicit hash
//! key) and queues it for the producer's one worker thread; it returns a
//! [`RecordHandle`] that later holds the record's own result. The worker keeps a
//! queue per shard and cuts a batch from it when the batch is full
//! (`batch_records_max`, `batch_bytes_max`), when its oldest record has waited
//! `linger`, or on `flush`/`close`. Batches of several shards ready together go
//! in one PutRecords request (pipelined on the client's connection, so requests
//! do not wait for each other).
//!
//! Order: each shard has at most one batch in flight, and a failed batch is
//! retried before anything behind it is sent, so records of one partition key
//! are stored in `send` order. Retried: throttling and internal errors, and
//! requests that certainly were not sent (connection loss before the write,
//! connect failures), with exponential backoff, up to `retries_max` times.
//! Requests whose outcome is unknown (sent, then timed out or the connection
//! broke) are not resent unless `retry_unknown_outcome` (which may store records
//! twice); their records fail with that error.
//!
//! Memory is bounded: `send` blocks while `buffer_bytes_max` bytes of records
//! are unresolved.
//!
//! The Kinesis Producer Library's features, each off or at the KPL's default:
//! - Aggregation (`aggregate`): a shard's user records are packed, in order,
//!   into aggregated records (KPL format, `riffle_protocol::kpl`) of at most
//!   `aggregate_bytes_max`, so a shard takes many small records per Kinesis
//!   record; each user record's result names the aggregated record and its
//!   sub-sequence number. Consumers de-aggregate (`Consumer`, the KCL,
//!   `aws-kinesis-agg`).
//! - Per-shard rate limiting (`shard_rate`, module `rate`): a batch waits until
//!   its shard's byte and record budget holds it (AWS: 1 MiB/s, 1,000 records/s),
//!   so a producer does not run into a server's shard limits.
//! - Time to live (`record_ttl`): a record not sent within it fails with
//!   [`ClientError::Expired`] instead of being sent (again).
//! - Retries back off exponentially with jitter, so producers refused together
//!   do not come back together.
//! - Metrics ([`Producer::metrics`], module `metrics`).
//!
//! Modules: `batch` (records and how a batch is cut and aggregated), `worker`
//! (the thread that owns the queues), `rate`, `metrics`, `keyhash` (partition
//! keys' MD5 remembered per sending thread).

mod batch;
mod keyhash;
mod metrics;
mod rate;
mod worker;

pub use metrics::ProducerMetrics;
pub use rate::ShardRate;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use riffle_protocol::batch::check_record;

use crate::client::{Client, lock};
use crate::error::ClientError;
use crate::frames::Frame;
use crate::ops::RoutingTable;
use crate::types::Put;

use batch::{Sent, record_size};
use metrics::Counters;
use worker::Worker;

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How long a record may wait for its batch to fill. 10 ms adds little
    /// latency next to an fsync and lets a busy shard fill batches.
    pub linger: Duration,
    /// Kinesis records per batch; AWS's per-request maximum (500) by default.
    pub batch_records_max: u32,
    /// Bytes (data + partition keys of the Kinesis records) per batch. 1 MiB is
    /// what one AWS shard ingests per second.
    pub batch_bytes_max: usize,
    /// Pack each shard's user records into aggregated records (KPL format).
    pub aggregate: bool,
    /// An aggregated record's size at most (encoded, plus its partition key):
    /// the KPL's default, 51,200 bytes; at most the record limit (1 MiB).
    pub aggregate_bytes_max: usize,
    /// User records per aggregated record at most.
    pub aggregate_records_max: u32,
    /// Pace each shard's sends to this rate (None: no pacing).
    pub shard_rate: Option<ShardRate>,
    /// A record not sent within this long after `send` fails with
    /// `Expired` (None: no limit). The KPL's default, 30 s. Checked whenever
    /// its batch would be sent or sent again; a request in flight is waited for.
    pub record_ttl: Option<Duration>,
    /// `send` blocks while this many bytes of records have no result yet.
    pub buffer_bytes_max: usize,
    /// Attempts after the first, per batch, for retryable failures.
    pub retries_max: u32,
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    /// Also resend batches whose request was sent but got no reply (timeout,
    /// connection lost). Off: such records fail instead of risking duplicates.
    pub retry_unknown_outcome: bool,
}

/// The KPL's default `AggregationMaxSize`.
pub const AGGREGATE_BYTES_MAX_DEFAULT: usize = 51_200;

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            linger: Duration::from_millis(10),
            batch_records_max: 500,
            batch_bytes_max: 1 << 20,
            aggregate: false,
            aggregate_bytes_max: AGGREGATE_BYTES_MAX_DEFAULT,
            aggregate_records_max: u32::MAX,
            shard_rate: None,
            record_ttl: Some(Duration::from_secs(30)),
            buffer_bytes_max: 64 << 20,
            retries_max: 10,
            retry_backoff_initial: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
            retry_unknown_outcome: false,
        }
    }
}

/// The future result of one record. Dropping it is fine: the record is still
/// sent; its result is then unobserved.
#[derive(Debug)]
pub struct RecordHandle {
    rx: Receiver<Result<Put, ClientError>>,
}

impl RecordHandle {
    /// Waits for the record's result.
    pub fn wait(self) -> Result<Put, ClientError> {
        self.rx.recv().unwrap_or(Err(ClientError::Closed))
    }

    /// The result, if it arrives within `wait`.
    pub fn wait_timeout(&self, wait: Duration) -> Option<Result<Put, ClientError>> {
        match self.rx.recv_timeout(wait) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(ClientError::Closed)),
        }
    }

    /// The result, if it is already there.
    pub fn try_result(&self) -> Option<Result<Put, ClientError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(ClientError::Closed)),
        }
    }
}

enum Cmd {
    /// Records are waiting in the intake.
    Wake,
    /// Answer once every record numbered below `.0` has its result.
    Flush(u64, Sender<()>),
    Close,
    Reply {
        token: u64,
        result: Result<Frame, ClientError>,
    },
}

/// What `send` and the worker share, under one lock (one lock per record
/// sent): the records sent since the worker last took them, the budget
/// `send` waits on, record numbers, and the routing table.
struct Intake {
    state: Mutex<IntakeState>,
    /// Signalled when the worker gives bytes back to the budget.
    freed: Condvar,
    counters: Counters,
}

struct IntakeState {
    records: Vec<Sent>,
    /// The partition keys and data of `records`.
    round: Vec<u8>,
    /// Bytes of records sent and not yet resolved.
    bytes: usize,
    /// The next record's number: numbers reach the worker in order, and a
    /// flush waits for exactly the records numbered before it.
    next_number: u64,
    /// The routing the producer uses; the worker replaces it when the stream
    /// was resharded.
    table: Arc<RoutingTable>,
    /// A wake-up is on its way to the worker (sent with the first record
    /// since the worker last took them: one per round, not per record).
    woken: bool,
    closed: bool,
}

/// Batches records per shard and puts them in order, with retries. See the
/// module docs.
pub struct Producer {
    stream: String,
    limits: riffle_protocol::Limits,
    config: ProducerConfig,
    intake: Arc<Intake>,
    inbox: Sender<Cmd>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for `stream` (its shard list is fetched now).
    pub fn new(
        client: Client,
        stream: &str,
        config: ProducerConfig,
    ) -> Result<Producer, ClientError> {
        let limits = client.config().limits.clone();
        // A batch must fit in one request.
        if !(1..=limits.put_records_count_max).contains(&config.batch_records_max)
            || !(1..=limits.request_size_max as usize).contains(&config.batch_bytes_max)
        {
            return Err(ClientError::InvalidArgument(format!(
                "batch_records_max must be 1 to {} and batch_bytes_max 1 to {}",
                limits.put_records_count_max, limits.request_size_max
            )));
        }
        if config.aggregate
            && (!(1..=limits.record_data_size_max as usize).contains(&config.aggregate_bytes_max)
                || config.aggregate_records_max == 0)
        {
            return Err(ClientError::InvalidArgument(format!(
                "aggregate_bytes_max must be 1 to {} and aggregate_records_max at least 1",
                limits.record_data_size_max
            )));
        }
        if config
            .shard_rate
            .is_some_and(|r| r.bytes_per_second == 0 || r.records_per_second == 0)
        {
            return Err(ClientError::InvalidArgument(
                "shard_rate must allow at least one byte and one record per second".into(),
            ));
        }
        let table = client.routing_table(stream)?;
        let (tx, rx) = mpsc::channel();
        let intake = Arc::new(Intake {
            state: Mutex::new(IntakeState {
                records: Vec::new(),
                round: Vec::new(),
                bytes: 0,
                next_number: 0,
                table,
                woken: false,
                closed: false,
            }),
            freed: Condvar::new(),
            counters: Counters::default(),
        });
        let mut worker = Worker::new(
            client,
            stream,
            config.clone(),
            (tx.clone(), rx),
            intake.clone(),
        );
        let worker = std::thread::Builder::new()
            .name("riffle-producer".into())
            .spawn(move || worker.run())
            .map_err(|e| ClientError::Io(Arc::new(e)))?;
        Ok(Producer {
            stream: stream.to_owned(),
            limits,
            config,
            intake,
            inbox: tx,
            worker: Some(worker),
        })
    }

    /// Queues a record; blocks while `buffer_bytes_max` bytes are unresolved.
    /// Fails at once on a record the server would refuse.
    pub fn send(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: impl AsRef<[u8]>,
    ) -> Result<RecordHandle, ClientError> {
        let (result, rx) = mpsc::sync_channel(1);
        self.queue(
            partition_key,
            explicit_hash_key,
            data.as_ref(),
            Some(result),
        )?;
        Ok(RecordHandle { rx })
    }

    /// [`Producer::send`] without a handle: the record's result is only
    /// counted ([`Producer::metrics`]), which saves a channel per record (the
    /// KPL's fire-and-forget use). `flush` still waits for it.
    pub fn put(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        self.queue(partition_key, explicit_hash_key, data.as_ref(), None)
    }

    fn queue(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: &[u8],
        result: Option<mpsc::SyncSender<Result<Put, ClientError>>>,
    ) -> Result<(), ClientError> {
        check_record(partition_key, data.len(), &self.limits)
            .map_err(ClientError::InvalidArgument)?;
        let size = record_size(partition_key, data);
        // Hashed before taking the lock.
        let hash_key = explicit_hash_key.unwrap_or_else(|| keyhash::hash_key_of(partition_key));
        let sent = Instant::now();
        let wake = {
            let mut st = lock(&self.intake.state);
            while !st.closed && st.bytes > 0 && st.bytes + size > self.config.buffer_bytes_max {
                st = self
                    .intake
                    .freed
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if st.closed {
                return Err(ClientError::Closed);
            }
            st.bytes += size;
            let record = Sent {
                number: st.next_number,
                shard_index: st.table.shard_for_hash(hash_key),
                explicit_hash_key,
                start: st.round.len(),
                key_len: partition_key.len() as u32,
                data_len: data.len() as u32,
                sent,
                result,
            };
            st.round.extend_from_slice(partition_key.as_bytes());
            st.round.extend_from_slice(data);
            st.next_number += 1;
            st.records.push(record);
            Counters::add(&self.intake.counters.buffered_records, 1);
            !std::mem::replace(&mut st.woken, true)
        };
        if wake && self.inbox.send(Cmd::Wake).is_err() {
            // The worker is gone (it never stops before `closed` is set).
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    /// Sends everything queued now, without waiting for the linger time, and
    /// waits until every record sent before this call has its result (success or
    /// failure: check the handles).
    pub fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::channel();
        let upto = lock(&self.intake.state).next_number;
        self.inbox
            .send(Cmd::Flush(upto, tx))
            .map_err(|_| ClientError::Closed)?;
        rx.recv().map_err(|_| ClientError::Closed)
    }

    /// The producer's counters and levels now (see [`ProducerMetrics`]).
    pub fn metrics(&self) -> ProducerMetrics {
        let buffered = lock(&self.intake.state).bytes as u64;
        self.intake.counters.snapshot(buffered)
    }

    /// Flushes, then stops the worker.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ClientError> {
        let Some(worker) = self.worker.take() else {
            return Ok(());
        };
        lock(&self.intake.state).closed = true;
        self.intake.freed.notify_all();
        let _ = self.inbox.send(Cmd::Close);
        worker.join().map_err(|_| ClientError::Closed)
    }
}

impl Drop for Producer {
    /// Dropping a producer closes it: queued records are still sent.
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
