//! The producer's thread: owns every shard queue and batch; the only one that
//! touches them. It cuts batches (aggregated or not, `batch::plan`), paces them
//! per shard (`rate`), packs due batches into PutRecords requests, resolves
//! replies into per-record results, retries, re-routes after a reshard, and
//! fails records whose time to live ran out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use riffle_protocol::batch::BatchBuilder;
use riffle_protocol::kpl::Aggregator;
use riffle_protocol::native::{Api, Response};
use riffle_protocol::{ErrorCode, RecordIn};
use rkyv::util::AlignedVec;

use super::batch::{AggregateShape, Entry, Pending, Sent, Shape, plan};
use super::metrics::Counters;
use super::rate::RateLimiter;
use super::{Cmd, Intake, ProducerConfig};
use crate::client::{Client, Submitted, lock};
use crate::config::Backoff;
use crate::error::{ClientError, is_retryable_code};
use crate::frames::Frame;
use crate::ops;
use crate::types::Put;

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
    /// To be sent again at this time (after a failure).
    RetryAt(Instant),
    /// Held back by the shard's rate limit until this time.
    PacedUntil(Instant),
    /// Sent; waiting for the reply.
    Sent,
}

struct Batch {
    /// The user records, in order.
    records: Vec<Pending>,
    /// The Kinesis records they make.
    entries: Vec<Entry>,
    /// Bytes of the Kinesis records.
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
    /// Present when the producer paces shards (`shard_rate`).
    rate: Option<RateLimiter>,
}

struct Request {
    submitted: Submitted,
    deadline: Instant,
    /// The shards whose batches it carries, in request order.
    shards: Vec<u32>,
}

/// The numbers of the records without a result yet. Records arrive numbered
/// in order and resolve in any order: a window from the oldest unresolved one,
/// O(1) per record.
#[derive(Default)]
struct Outstanding {
    /// The number of `resolved[0]`.
    base: u64,
    resolved: VecDeque<bool>,
    count: usize,
}

impl Outstanding {
    fn add(&mut self, number: u64) {
        if self.resolved.is_empty() {
            self.base = number;
        }
        // Numbers come in order; a gap (never expected) counts as resolved.
        while self.base + (self.resolved.len() as u64) < number {
            self.resolved.push_back(true);
        }
        self.resolved.push_back(false);
        self.count += 1;
    }

    fn resolve(&mut self, number: u64) {
        let Some(i) = number.checked_sub(self.base) else {
            return;
        };
        if let Some(r) = self.resolved.get_mut(i as usize)
            && !*r
        {
            *r = true;
            self.count -= 1;
        }
        while self.resolved.front() == Some(&true) {
            self.resolved.pop_front();
            self.base += 1;
        }
    }

    /// The oldest unresolved number.
    fn first(&self) -> Option<u64> {
        (!self.resolved.is_empty()).then_some(self.base)
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

pub(super) struct Worker {
    client: Client,
    stream: String,
    /// The stream incarnation the producer routes for (its table's).
    stream_id: u64,
    config: ProducerConfig,
    shape: Shape,
    aggregator: Aggregator,
    tx: Sender<Cmd>,
    rx: Receiver<Cmd>,
    shards: BTreeMap<u32, ShardQueue>,
    requests: HashMap<u64, Request>,
    next_token: u64,
    /// Numbers of the records without a result yet.
    outstanding: Outstanding,
    flushes: Vec<(u64, Sender<()>)>,
    closing: bool,
    /// Shared with `Producer::send`: new records, the budget, the routing table.
    intake: Arc<Intake>,
    /// The intake's record list, kept between rounds for its capacity.
    spare: Vec<Sent>,
    /// Jitter of retry delays.
    rng: u64,
    /// Bytes of records resolved and not yet given back to the budget.
    freed: usize,
    /// The size of the last round's bytes.
    round_bytes: usize,
}

impl Worker {
    pub(super) fn new(
        client: Client,
        stream: &str,
        config: ProducerConfig,
        (tx, rx): (Sender<Cmd>, Receiver<Cmd>),
        intake: Arc<Intake>,
    ) -> Worker {
        let stream_id = lock(&intake.state).table.stream_id();
        let shape = Shape {
            records_max: config.batch_records_max as usize,
            bytes_max: config.batch_bytes_max,
            aggregate: config.aggregate.then_some(AggregateShape {
                bytes_max: config.aggregate_bytes_max,
                records_max: config.aggregate_records_max as usize,
            }),
        };
        Worker {
            client,
            stream: stream.to_owned(),
            stream_id,
            config,
            shape,
            aggregator: Aggregator::new(),
            tx,
            rx,
            shards: BTreeMap::new(),
            requests: HashMap::new(),
            next_token: 0,
            outstanding: Outstanding::default(),
            flushes: Vec::new(),
            closing: false,
            intake,
            spare: Vec::new(),
            rng: RandomState::new().hash_one(Instant::now()) | 1,
            freed: 0,
            round_bytes: 0,
        }
    }

    pub(super) fn run(&mut self) {
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
            // Take everything already queued before deciding what to send:
            // commands, then the records sent before them.
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd);
            }
            self.take_intake();
            let now = Instant::now();
            self.expire(now);
            self.dispatch(now);
            self.release_budget();
            self.answer_flushes();
            if self.closing && self.outstanding.is_empty() {
                return;
            }
        }
    }

    /// Takes the records `send` left in the intake, in number order, into
    /// their shards' queues.
    fn take_intake(&mut self) {
        let mut taken = std::mem::take(&mut self.spare);
        // The next round's bytes, sized like the last one's (allocated here,
        // not under the lock).
        let mut bytes = Vec::with_capacity(self.round_bytes);
        let table = {
            let mut st = lock(&self.intake.state);
            if st.records.is_empty() {
                self.spare = taken;
                return;
            }
            std::mem::swap(&mut st.records, &mut taken);
            std::mem::swap(&mut st.round, &mut bytes);
            st.woken = false;
            st.table.clone()
        };
        self.round_bytes = bytes.len();
        let bytes = Arc::new(bytes);
        let now = Instant::now();
        for sent in taken.drain(..) {
            let mut p = Pending::new(sent, &bytes);
            self.outstanding.add(p.number);
            // Routed before the table was replaced: route it again, so it
            // queues behind the records re-routed from its closed shard.
            if !table.has_shard(p.shard_index) {
                p.shard_index = table.shard_for(p.partition_key(), p.explicit_hash_key);
            }
            let q = self.queue(p.shard_index);
            q.oldest.get_or_insert(now);
            q.queued_bytes += p.size();
            q.queued.push_back(p);
        }
        self.spare = taken;
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Wake => {}
            Cmd::Flush(upto, tx) => self.flushes.push((upto, tx)),
            Cmd::Close => self.closing = true,
            Cmd::Reply { token, result } => {
                if let Some(request) = self.requests.remove(&token) {
                    self.resolve(request, result);
                }
            }
        }
    }

    /// A shard's queue, made with a full rate budget when new.
    fn queue(&mut self, shard: u32) -> &mut ShardQueue {
        let rate = self.config.shard_rate;
        self.shards.entry(shard).or_insert_with(|| ShardQueue {
            rate: rate.map(|r| RateLimiter::new(r, Instant::now())),
            ..ShardQueue::default()
        })
    }

    /// The earliest time something must happen without a command arriving.
    fn next_deadline(&self) -> Option<Instant> {
        let lingers = self
            .shards
            .values()
            .filter(|q| q.in_flight.is_none())
            .filter_map(|q| q.oldest.map(|t| t + self.config.linger));
        let waits = self.shards.values().filter_map(|q| match q.in_flight {
            Some(Batch {
                state: BatchState::RetryAt(t) | BatchState::PacedUntil(t),
                ..
            }) => Some(t),
            _ => None,
        });
        let timeouts = self.requests.values().map(|r| r.deadline);
        lingers.chain(waits).chain(timeouts).min()
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

    /// Fails the records of shard `shard` that were not sent within their
    /// time to live: queued ones, and those of a batch not in flight (the
    /// batch is planned again from the others).
    fn drop_expired(&mut self, shard: u32, now: Instant) {
        let Some(ttl) = self.config.record_ttl else {
            return;
        };
        let expired = |p: &Pending| now.saturating_duration_since(p.sent) >= ttl;
        let Some(q) = self.shards.get_mut(&shard) else {
            return;
        };
        // Records wait in `send` order (re-routed ones, older, go first), so
        // the first of a batch or queue is its oldest: only it is looked at
        // unless it expired.
        let mut failed = Vec::new();
        if let Some(b) = &mut q.in_flight
            && !matches!(b.state, BatchState::Sent)
            && b.records.first().is_some_and(expired)
        {
            let (gone, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut b.records)
                .into_iter()
                .partition(expired);
            failed.extend(gone);
            if kept.is_empty() {
                q.in_flight = None;
            } else {
                let mut kept = kept;
                let (taken, entries, bytes) = plan(&kept, &self.shape, &mut self.aggregator);
                // Fewer records can need more room (another first record's
                // longer partition key): what no longer fits queues first.
                for p in kept.drain(taken..).rev() {
                    q.queued_bytes += p.size();
                    q.queued.push_front(p);
                    q.oldest.get_or_insert(now);
                }
                b.records = kept;
                b.entries = entries;
                b.bytes = bytes;
            }
        }
        if q.queued.front().is_some_and(expired) {
            let (gone, kept): (VecDeque<Pending>, VecDeque<Pending>) =
                std::mem::take(&mut q.queued).into_iter().partition(expired);
            q.queued_bytes -= gone.iter().map(Pending::size).sum::<usize>();
            q.queued = kept;
            if q.queued.is_empty() {
                q.oldest = None;
            }
            failed.extend(gone);
        }
        for p in failed {
            let waited = now.saturating_duration_since(p.sent);
            Counters::add(&self.intake.counters.user_records_expired, 1);
            self.complete(p, Err(ClientError::Expired { waited }), now);
        }
    }

    /// Cuts new batches, then sends every batch that is due (and its shard's
    /// rate allows), packed into requests within the request limits.
    fn dispatch(&mut self, now: Instant) {
        if self.config.record_ttl.is_some() {
            let shards: Vec<u32> = self.shards.keys().copied().collect();
            for s in shards {
                self.drop_expired(s, now);
            }
        }
        let urgent = self.closing || !self.flushes.is_empty();
        // While a shard closed by resharding still has a batch in flight, its
        // records may yet be re-routed ahead of newer ones: cut no new batch.
        let table = lock(&self.intake.state).table.clone();
        let draining = self
            .shards
            .iter()
            .any(|(s, q)| q.in_flight.is_some() && !table.has_shard(*s));
        for q in self.shards.values_mut().filter(|_| !draining) {
            if q.in_flight.is_some() || q.queued.is_empty() {
                continue;
            }
            // Full: enough user records for a batch's Kinesis records (many
            // per aggregated record), or its bytes (aggregation only shrinks
            // the keys, so this is close).
            let full_count = match self.shape.aggregate {
                Some(a) => self.shape.records_max.saturating_mul(a.records_max),
                None => self.shape.records_max,
            };
            let due = urgent
                || q.queued.len() >= full_count
                || q.queued_bytes >= self.shape.bytes_max
                || q.oldest.is_some_and(|t| t + self.config.linger <= now);
            if !due {
                continue;
            }
            let (taken, entries, bytes) = plan(&q.queued, &self.shape, &mut self.aggregator);
            let records: Vec<Pending> = q.queued.drain(..taken).collect();
            q.queued_bytes -= records.iter().map(Pending::size).sum::<usize>();
            q.oldest = if q.queued.is_empty() { None } else { Some(now) };
            q.in_flight = Some(Batch {
                records,
                entries,
                bytes,
                retries: 0,
                backoff: Backoff::new(
                    self.config.retry_backoff_initial,
                    self.config.retry_backoff_max,
                ),
                state: BatchState::Ready,
            });
        }
        // Due batches, held back while their shard's rate does not allow them.
        let mut due = Vec::new();
        for (&s, q) in self.shards.iter_mut() {
            let Some(b) = q.in_flight.as_mut() else {
                continue;
            };
            let ready = match b.state {
                BatchState::Ready => true,
                BatchState::RetryAt(t) | BatchState::PacedUntil(t) => t <= now,
                BatchState::Sent => false,
            };
            if !ready {
                continue;
            }
            if let Some(rate) = &mut q.rate
                && let Some(at) = rate.ready_at(now, b.entries.len(), b.bytes)
            {
                if !matches!(b.state, BatchState::PacedUntil(_)) {
                    Counters::add(&self.intake.counters.rate_limited, 1);
                }
                b.state = BatchState::PacedUntil(at);
                continue;
            }
            due.push(s);
        }
        let limits = &self.client.config().limits;
        let (request_records_max, request_bytes_max) = (
            limits.put_records_count_max as usize,
            limits.request_size_max as usize,
        );
        while !due.is_empty() {
            let mut shards = Vec::new();
            let (mut records, mut bytes) = (0, 0);
            due.retain(|s| {
                let Some(b) = self.shards.get(s).and_then(|q| q.in_flight.as_ref()) else {
                    return false;
                };
                let fits = shards.is_empty()
                    || (records + b.entries.len() <= request_records_max
                        && bytes + b.bytes <= request_bytes_max);
                if fits {
                    records += b.entries.len();
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
                .entries
                .iter()
                .map(|e| {
                    let first = &b.records[e.users.start];
                    RecordIn {
                        partition_key: first.partition_key(),
                        explicit_hash_key: first.explicit_hash_key.map(u128::to_le_bytes),
                        data: e.aggregated.as_deref().unwrap_or(first.data()),
                        arrival_ms: 0,
                    }
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
                Counters::add(&self.intake.counters.requests, 1);
                for s in &shards {
                    let Some(q) = self.shards.get_mut(s) else {
                        continue;
                    };
                    if let Some(b) = q.in_flight.as_mut() {
                        b.state = BatchState::Sent;
                        if let Some(rate) = &mut q.rate {
                            rate.take(now, b.entries.len(), b.bytes);
                        }
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
                    .map_or(0, |b| b.entries.len());
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
                    self.complete_batch(batch, results, now);
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

    /// A batch stored whole: each user record gets its Kinesis record's place
    /// (and its own place inside an aggregated record).
    fn complete_batch(
        &mut self,
        batch: Batch,
        results: Vec<Result<Put, riffle_protocol::Error>>,
        now: Instant,
    ) {
        let counters = &self.intake.counters;
        Counters::add(&counters.kinesis_records_put, batch.entries.len() as u64);
        Counters::add(&counters.bytes_put, batch.bytes as u64);
        let mut records = batch.records.into_iter();
        for (entry, result) in batch.entries.iter().zip(results) {
            let aggregated = entry.aggregated.is_some();
            for (i, p) in records.by_ref().take(entry.users.len()).enumerate() {
                let r = match &result {
                    Ok(put) => Ok(Put {
                        sub_sequence_number: aggregated.then_some(i as u32),
                        ..*put
                    }),
                    Err(e) => Err(ClientError::Server(e.clone())),
                };
                self.complete(p, r, now);
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
        lock(&self.intake.state).table = table.clone();
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
            p.shard_index = table.shard_for(p.partition_key(), p.explicit_hash_key);
            let q = self.queue(p.shard_index);
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
        if error.code() == Some(ErrorCode::ProvisionedThroughputExceeded) {
            Counters::add(&self.intake.counters.throttled, 1);
        }
        if retryable && batch.retries < retries_max {
            batch.retries += 1;
            let delay = batch.backoff.next_delay_jittered(&mut self.rng);
            tracing::debug!(shard, retries = batch.retries, ?delay, %error, "riffle producer retries a batch");
            batch.state = BatchState::RetryAt(now + delay);
            Counters::add(&self.intake.counters.retries, 1);
            return;
        }
        if let Some(batch) = q.in_flight.take() {
            for p in batch.records {
                self.complete(p, Err(error.clone()), now);
            }
        }
    }

    fn complete(&mut self, p: Pending, result: Result<Put, ClientError>, now: Instant) {
        let counters = &self.intake.counters;
        match &result {
            Ok(_) => Counters::add(&counters.user_records_put, 1),
            Err(_) => Counters::add(&counters.user_records_failed, 1),
        }
        counters.record_latency(now.saturating_duration_since(p.sent));
        counters
            .buffered_records
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.outstanding.resolve(p.number);
        self.freed += p.size();
        if let Some(tx) = p.result {
            let _ = tx.try_send(result);
        }
    }

    /// Gives the bytes of the records resolved since the last call back to
    /// `send`'s budget: once per round of commands, not per record (a wake-up
    /// is a system call).
    fn release_budget(&mut self) {
        if self.freed == 0 {
            return;
        }
        let mut st = lock(&self.intake.state);
        st.bytes = st.bytes.saturating_sub(std::mem::take(&mut self.freed));
        self.intake.freed.notify_all();
    }

    fn answer_flushes(&mut self) {
        let done_below = self.outstanding.first().unwrap_or(u64::MAX);
        self.flushes.retain(|(upto, tx)| {
            let done = *upto <= done_below;
            if done {
                let _ = tx.send(());
            }
            !done
        });
    }
}
