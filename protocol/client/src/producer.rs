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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use riffle_protocol::batch::{self, BatchBuilder};
use riffle_protocol::native::{Api, Response};
use riffle_protocol::{ErrorCode, RecordIn};
use rkyv::util::AlignedVec;

use crate::client::{Client, Submitted, lock};
use crate::config::Backoff;
use crate::error::{ClientError, is_retryable_code};
use crate::frames::Frame;
use crate::ops::{self, RoutingTable};
use crate::types::Put;

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How long a record may wait for its batch to fill. 10 ms adds little
    /// latency next to an fsync and lets a busy shard fill batches.
    pub linger: Duration,
    /// Records per batch; AWS's per-request maximum (500) by default.
    pub batch_records_max: u32,
    /// Bytes (data + partition keys) per batch. 1 MiB is what one AWS shard
    /// ingests per second.
    pub batch_bytes_max: usize,
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

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            linger: Duration::from_millis(10),
            batch_records_max: 500,
            batch_bytes_max: 1 << 20,
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

/// A record waiting for its result.
struct Pending {
    number: u64,
    shard_index: u32,
    partition_key: String,
    explicit_hash_key: Option<u128>,
    data: Vec<u8>,
    result: SyncSender<Result<Put, ClientError>>,
}

impl Pending {
    fn size(&self) -> usize {
        record_size(&self.partition_key, &self.data)
    }
}

fn record_size(partition_key: &str, data: &[u8]) -> usize {
    partition_key.len() + data.len()
}

enum Cmd {
    Record(Pending),
    /// Answer once every record numbered below `.0` has its result.
    Flush(u64, Sender<()>),
    Close,
    Reply {
        token: u64,
        result: Result<Frame, ClientError>,
    },
}

/// Bytes of records sent and not yet resolved; `send` waits on it.
struct Budget {
    bytes: Mutex<usize>,
    freed: Condvar,
}

/// Batches records per shard and puts them in order, with retries. See the
/// module docs.
pub struct Producer {
    stream: String,
    /// The routing the producer uses; the worker replaces it when the stream
    /// was resharded.
    table: Arc<Mutex<Arc<RoutingTable>>>,
    limits: riffle_protocol::Limits,
    config: ProducerConfig,
    /// The next record number and the worker's inbox, under one lock so that
    /// numbers reach the worker in order (a flush waits for exactly the records
    /// numbered before it).
    inbox: Mutex<(u64, Sender<Cmd>)>,
    budget: Arc<Budget>,
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
        let table = client.routing_table(stream)?;
        let stream_id = table.stream_id();
        let table = Arc::new(Mutex::new(table));
        let (tx, rx) = mpsc::channel();
        let budget = Arc::new(Budget {
            bytes: Mutex::new(0),
            freed: Condvar::new(),
        });
        let mut worker = Worker {
            client,
            stream: stream.to_owned(),
            stream_id,
            table: table.clone(),
            config: config.clone(),
            tx: tx.clone(),
            rx,
            shards: BTreeMap::new(),
            requests: HashMap::new(),
            next_token: 0,
            outstanding: BTreeSet::new(),
            flushes: Vec::new(),
            closing: false,
            budget: budget.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("riffle-producer".into())
            .spawn(move || worker.run())
            .map_err(|e| ClientError::Io(Arc::new(e)))?;
        Ok(Producer {
            stream: stream.to_owned(),
            table,
            limits,
            config,
            inbox: Mutex::new((0, tx)),
            budget,
            worker: Some(worker),
        })
    }

    /// Queues a record; blocks while `buffer_bytes_max` bytes are unresolved.
    /// Fails at once on a record the server would refuse.
    pub fn send(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: impl Into<Vec<u8>>,
    ) -> Result<RecordHandle, ClientError> {
        let data = data.into();
        batch::check_record(partition_key, data.len(), &self.limits)
            .map_err(ClientError::InvalidArgument)?;
        let size = record_size(partition_key, &data);
        {
            let mut bytes = lock(&self.budget.bytes);
            while *bytes > 0 && *bytes + size > self.config.buffer_bytes_max {
                bytes = self
                    .budget
                    .freed
                    .wait(bytes)
                    .unwrap_or_else(|e| e.into_inner());
            }
            *bytes += size;
        }
        let (result, rx) = mpsc::sync_channel(1);
        let shard_index = lock(&self.table).shard_for(partition_key, explicit_hash_key);
        let mut inbox = lock(&self.inbox);
        let pending = Pending {
            number: inbox.0,
            shard_index,
            partition_key: partition_key.to_owned(),
            explicit_hash_key,
            data,
            result,
        };
        if inbox.1.send(Cmd::Record(pending)).is_err() {
            drop(inbox);
            *lock(&self.budget.bytes) -= size;
            return Err(ClientError::Closed);
        }
        inbox.0 += 1;
        Ok(RecordHandle { rx })
    }

    /// Sends everything queued now, without waiting for the linger time, and
    /// waits until every record sent before this call has its result (success or
    /// failure: check the handles).
    pub fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::channel();
        {
            let inbox = lock(&self.inbox);
            inbox
                .1
                .send(Cmd::Flush(inbox.0, tx))
                .map_err(|_| ClientError::Closed)?;
        }
        rx.recv().map_err(|_| ClientError::Closed)
    }

    /// Flushes, then stops the worker.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ClientError> {
        let Some(worker) = self.worker.take() else {
            return Ok(());
        };
        let _ = lock(&self.inbox).1.send(Cmd::Close);
        worker.join().map_err(|_| ClientError::Closed)
    }
}

impl Drop for Producer {
    /// Dropping a producer closes it: queued records are still sent.
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// What re-listing the shards after a batch was refused as not found found.
enum Reroute {
    /// The shard is closed: its records were routed to the open shards.
    Done,
    /// The shard is still listed (sealed, its reshard not published yet).
    StillListed,
    /// The stream is gone, or is another incarnation.
    Gone,
}

/// Where a shard's in-flight batch is.
enum BatchState {
    /// To be sent now.
    Ready,
    /// To be sent again at this time.
    RetryAt(Instant),
    /// Sent; waiting for the reply.
    Sent,
}

struct Batch {
    records: Vec<Pending>,
    bytes: usize,
    retries: u32,
    backoff: Backoff,
    state: BatchState,
}

#[derive(Default)]
struct ShardQueue {
    queued: VecDeque<Pending>,
    queued_bytes: usize,
    /// When the oldest queued record arrived.
    oldest: Option<Instant>,
    in_flight: Option<Batch>,
}

struct Request {
    submitted: Submitted,
    deadline: Instant,
    /// The shards whose batches it carries, in request order.
    shards: Vec<u32>,
}

/// The producer's thread: owns every queue; the only one that touches them.
struct Worker {
    client: Client,
    stream: String,
    /// The stream incarnation the producer routes for (its table's).
    stream_id: u64,
    /// Shared with `Producer::send`; replaced after a reshard.
    table: Arc<Mutex<Arc<RoutingTable>>>,
    config: ProducerConfig,
    tx: Sender<Cmd>,
    rx: Receiver<Cmd>,
    shards: BTreeMap<u32, ShardQueue>,
    requests: HashMap<u64, Request>,
    next_token: u64,
    /// Numbers of the records without a result yet.
    outstanding: BTreeSet<u64>,
    flushes: Vec<(u64, Sender<()>)>,
    closing: bool,
    budget: Arc<Budget>,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let cmd = match self.next_deadline() {
                Some(at) => match self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => return,
                },
            };
            if let Some(cmd) = cmd {
                self.handle(cmd);
            }
            // Take everything already queued before deciding what to send.
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd);
            }
            let now = Instant::now();
            self.expire(now);
            self.dispatch(now);
            self.answer_flushes();
            if self.closing && self.outstanding.is_empty() {
                return;
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Record(mut p) => {
                self.outstanding.insert(p.number);
                // Routed before the table was replaced: route it again, so it
                // queues behind the records re-routed from its closed shard.
                let table = lock(&self.table).clone();
                if !table.has_shard(p.shard_index) {
                    p.shard_index = table.shard_for(&p.partition_key, p.explicit_hash_key);
                }
                let q = self.shards.entry(p.shard_index).or_default();
                q.oldest.get_or_insert_with(Instant::now);
                q.queued_bytes += p.size();
                q.queued.push_back(p);
            }
            Cmd::Flush(upto, tx) => self.flushes.push((upto, tx)),
            Cmd::Close => self.closing = true,
            Cmd::Reply { token, result } => {
                if let Some(request) = self.requests.remove(&token) {
                    self.resolve(request, result);
                }
            }
        }
    }

    /// The earliest time something must happen without a command arriving.
    fn next_deadline(&self) -> Option<Instant> {
        let lingers = self
            .shards
            .values()
            .filter(|q| q.in_flight.is_none())
            .filter_map(|q| q.oldest.map(|t| t + self.config.linger));
        let retries = self.shards.values().filter_map(|q| match q.in_flight {
            Some(Batch {
                state: BatchState::RetryAt(t),
                ..
            }) => Some(t),
            _ => None,
        });
        let timeouts = self.requests.values().map(|r| r.deadline);
        lingers.chain(retries).chain(timeouts).min()
    }

    /// Requests without a reply in time: their outcome is unknown.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            if let Some(request) = self.requests.remove(&token) {
                request.submitted.conn.cancel(request.submitted.id);
                let timeout = self.client.config().request_timeout;
                self.fail_batches(&request.shards, ClientError::Timeout(timeout), now);
            }
        }
    }

    /// Cuts new batches, then sends every batch that is due, packed into
    /// requests within the request limits.
    fn dispatch(&mut self, now: Instant) {
        let urgent = self.closing || !self.flushes.is_empty();
        let (records_max, bytes_max) = (
            self.config.batch_records_max as usize,
            self.config.batch_bytes_max,
        );
        // While a shard closed by resharding still has a batch in flight, its
        // records may yet be re-routed ahead of newer ones: cut no new batch.
        let table = lock(&self.table).clone();
        let draining = self
            .shards
            .iter()
            .any(|(s, q)| q.in_flight.is_some() && !table.has_shard(*s));
        for q in self.shards.values_mut().filter(|_| !draining) {
            if q.in_flight.is_some() || q.queued.is_empty() {
                continue;
            }
            let due = urgent
                || q.queued.len() >= records_max
                || q.queued_bytes >= bytes_max
                || q.oldest.is_some_and(|t| t + self.config.linger <= now);
            if !due {
                continue;
            }
            let mut records = Vec::new();
            let mut bytes = 0;
            while let Some(p) = q.queued.front() {
                let size = p.size();
                if !records.is_empty() && (records.len() >= records_max || bytes + size > bytes_max)
                {
                    break;
                }
                bytes += size;
                records.extend(q.queued.pop_front());
            }
            q.queued_bytes -= bytes;
            q.oldest = if q.queued.is_empty() { None } else { Some(now) };
            q.in_flight = Some(Batch {
                records,
                bytes,
                retries: 0,
                backoff: Backoff::new(
                    self.config.retry_backoff_initial,
                    self.config.retry_backoff_max,
                ),
                state: BatchState::Ready,
            });
        }
        let limits = &self.client.config().limits;
        let (request_records_max, request_bytes_max) = (
            limits.put_records_count_max as usize,
            limits.request_size_max as usize,
        );
        let mut due: Vec<u32> = self
            .shards
            .iter()
            .filter(|(_, q)| match &q.in_flight {
                Some(b) => match b.state {
                    BatchState::Ready => true,
                    BatchState::RetryAt(t) => t <= now,
                    BatchState::Sent => false,
                },
                None => false,
            })
            .map(|(&s, _)| s)
            .collect();
        while !due.is_empty() {
            let mut shards = Vec::new();
            let (mut records, mut bytes) = (0, 0);
            due.retain(|s| {
                let Some(b) = self.shards.get(s).and_then(|q| q.in_flight.as_ref()) else {
                    return false;
                };
                let fits = shards.is_empty()
                    || (records + b.records.len() <= request_records_max
                        && bytes + b.bytes <= request_bytes_max);
                if fits {
                    records += b.records.len();
                    bytes += b.bytes;
                    shards.push(*s);
                }
                !fits
            });
            self.send_request(shards, now);
        }
    }

    fn send_request(&mut self, shards: Vec<u32>, now: Instant) {
        let mut builder = BatchBuilder::new();
        let mut batches: Vec<(u32, AlignedVec<16>, Vec<usize>)> = Vec::with_capacity(shards.len());
        let mut record_count = 0;
        for s in &shards {
            let Some(b) = self.shards.get(s).and_then(|q| q.in_flight.as_ref()) else {
                continue;
            };
            let records: Vec<RecordIn<'_>> = b
                .records
                .iter()
                .map(|p| RecordIn {
                    partition_key: &p.partition_key,
                    explicit_hash_key: p.explicit_hash_key.map(u128::to_le_bytes),
                    data: &p.data,
                    arrival_ms: 0,
                })
                .collect();
            let indexes = (record_count..record_count + records.len()).collect();
            record_count += records.len();
            batches.push((*s, builder.encode(&records), indexes));
        }
        let op = ops::PutRecords {
            stream: &self.stream,
            stream_id: self.stream_id,
            batches,
            record_count,
        };
        let token = self.next_token;
        self.next_token += 1;
        let tx = self.tx.clone();
        let submitted = self.client.submit(
            &op,
            Box::new(move |result| {
                let _ = tx.send(Cmd::Reply { token, result });
            }),
        );
        match submitted {
            Ok(submitted) => {
                for s in &shards {
                    if let Some(b) = self.shards.get_mut(s).and_then(|q| q.in_flight.as_mut()) {
                        b.state = BatchState::Sent;
                    }
                }
                let deadline = now + self.client.config().request_timeout;
                self.requests.insert(
                    token,
                    Request {
                        submitted,
                        deadline,
                        shards,
                    },
                );
            }
            Err(e) => self.fail_batches(&shards, e, now),
        }
    }

    /// A request's reply arrived (or its connection failed).
    fn resolve(&mut self, request: Request, result: Result<Frame, ClientError>) {
        let now = Instant::now();
        let frame = match result {
            Ok(frame) => frame,
            Err(e) => return self.fail_batches(&request.shards, e, now),
        };
        let limits = &self.client.config().limits;
        let sent: Vec<(u32, (), Vec<usize>)> = request
            .shards
            .iter()
            .map(|s| {
                let n = self
                    .shards
                    .get(s)
                    .and_then(|q| q.in_flight.as_ref())
                    .map_or(0, |b| b.records.len());
                (*s, (), (0..n).collect())
            })
            .collect();
        let outcomes =
            ops::decode_response(&frame, Api::PutRecords, limits).and_then(|r| match r {
                Response::PutBatches(results) => ops::batch_outcomes(&sent, results),
                r => Err(ClientError::protocol(format!(
                    "PutRecords answered with {r:?}"
                ))),
            });
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => return self.fail_batches(&request.shards, e, now),
        };
        for (s, results) in request.shards.iter().zip(outcomes) {
            let first_error = results.iter().find_map(|r| r.as_ref().err()).cloned();
            match first_error {
                None => {
                    let Some(batch) = self.shards.get_mut(s).and_then(|q| q.in_flight.take())
                    else {
                        continue;
                    };
                    for (p, r) in batch.records.into_iter().zip(results) {
                        let r = r.map_err(ClientError::Server);
                        self.complete(p, r);
                    }
                }
                Some(e) if e.code == ErrorCode::ResourceNotFound => match self.reroute(*s, now) {
                    Reroute::Done => {}
                    // Sealed, but the new shard list is not published yet: the
                    // same shard again, after a backoff.
                    Reroute::StillListed => self.retry_batch(*s, ClientError::Server(e), now),
                    Reroute::Gone => self.fail_batch(*s, ClientError::Server(e), now),
                },
                Some(e) => self.fail_batch(*s, ClientError::Server(e), now),
            }
        }
    }

    /// Shard `shard` refused its batch as not found: if a fresh shard list of
    /// the same stream no longer has it (resharding closed it), the list
    /// replaces the producer's and the records of every shard it no longer has
    /// are routed again: that batch and their queues (batches still in flight
    /// wait for their outcome), ahead of what is queued for their new shards,
    /// which is newer.
    fn reroute(&mut self, shard: u32, now: Instant) -> Reroute {
        self.client.forget_routing(&self.stream);
        let Ok(table) = self.client.routing_table(&self.stream) else {
            return Reroute::Gone;
        };
        if table.stream_id() != self.stream_id {
            return Reroute::Gone;
        }
        if table.has_shard(shard) {
            return Reroute::StillListed;
        }
        *lock(&self.table) = table.clone();
        let closed: Vec<u32> = self
            .shards
            .keys()
            .copied()
            .filter(|s| !table.has_shard(*s))
            .collect();
        let mut moved = Vec::new();
        for s in closed {
            let Some(q) = self.shards.get_mut(&s) else {
                continue;
            };
            if s == shard {
                moved.extend(q.in_flight.take().map(|b| b.records).unwrap_or_default());
            }
            moved.extend(q.queued.drain(..));
            q.queued_bytes = 0;
            q.oldest = None;
            if q.in_flight.is_none() {
                self.shards.remove(&s);
            }
        }
        tracing::debug!(
            shard,
            records = moved.len(),
            "riffle producer re-routes records of closed shards"
        );
        for mut p in moved.into_iter().rev() {
            p.shard_index = table.shard_for(&p.partition_key, p.explicit_hash_key);
            let q = self.shards.entry(p.shard_index).or_default();
            q.oldest = Some(q.oldest.map_or(now, |t| t.min(now)));
            q.queued_bytes += p.size();
            q.queued.push_front(p);
        }
        Reroute::Done
    }

    fn fail_batches(&mut self, shards: &[u32], error: ClientError, now: Instant) {
        for s in shards {
            self.fail_batch(*s, error.clone(), now);
        }
    }

    /// A batch failed as a whole: retried later when that is safe and allowed,
    /// otherwise its records get the error.
    fn fail_batch(&mut self, shard: u32, error: ClientError, now: Instant) {
        let retryable = match &error {
            ClientError::Server(e) => is_retryable_code(e.code),
            e => e.is_retryable() || (self.config.retry_unknown_outcome && e.is_outcome_unknown()),
        };
        self.end_batch(shard, error, retryable, now);
    }

    /// A batch that nothing of was stored, to send again after a backoff while
    /// retries are left.
    fn retry_batch(&mut self, shard: u32, error: ClientError, now: Instant) {
        self.end_batch(shard, error, true, now);
    }

    fn end_batch(&mut self, shard: u32, error: ClientError, retryable: bool, now: Instant) {
        let retries_max = self.config.retries_max;
        let Some(q) = self.shards.get_mut(&shard) else {
            return;
        };
        let Some(batch) = q.in_flight.as_mut() else {
            return;
        };
        if retryable && batch.retries < retries_max {
            batch.retries += 1;
            let delay = batch.backoff.next_delay();
            tracing::debug!(shard, retries = batch.retries, ?delay, %error, "riffle producer retries a batch");
            batch.state = BatchState::RetryAt(now + delay);
            return;
        }
        if let Some(batch) = q.in_flight.take() {
            for p in batch.records {
                self.complete(p, Err(error.clone()));
            }
        }
    }

    fn complete(&mut self, p: Pending, result: Result<Put, ClientError>) {
        self.outstanding.remove(&p.number);
        let _ = p.result.try_send(result);
        let mut bytes = lock(&self.budget.bytes);
        *bytes = bytes.saturating_sub(p.size());
        self.budget.freed.notify_all();
    }

    fn answer_flushes(&mut self) {
        let done_below = self.outstanding.first().copied().unwrap_or(u64::MAX);
        self.flushes.retain(|(upto, tx)| {
            let done = *upto <= done_below;
            if done {
                let _ = tx.send(());
            }
            !done
        });
    }
}
