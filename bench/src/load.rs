//! The load: producer and consumer tasks on client executor threads, each
//! with its own connection (the async client over the runtime's TCP stream).
//!
//! Producers route their keys once (the stream's routing table) and send one
//! PutRecords per request with one batch per shard. Closed loop: `inflight`
//! requests back to back per producer. Open loop: requests leave on a fixed
//! schedule whatever the replies do, and latency is taken from the *intended*
//! send time, so a stalled server shows up in the percentiles instead of
//! slowing the load down (no coordinated omission).
//!
//! When consumers measure delivery, every record carries its request's intended
//! send time (ns since the run's epoch, 8 bytes little-endian at the start of its
//! data) and batches are encoded per request; otherwise each producer encodes its
//! requests once and sends them again (the server stores every one; records/s is
//! the server's ingest, not the client's encoder).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_lite::future;
use hdrhistogram::Histogram;
use riffle_client::{AsyncClient, AsyncClientConfig, RecordsView, RoutingTable, StartPosition};
use riffle_engine::rt::{self, Semaphore, net::Connection};
use riffle_protocol::batch::{BatchBuilder, RecordIn};
use rkyv::util::AlignedVec;

use crate::report::histogram;

/// Where consumers start and when they stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeMode {
    /// GetRecords from TRIM_HORIZON until each shard's backlog is read.
    CatchUp,
    /// Subscribe at `start` and take pushes until the run stops.
    Follow(Start),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Latest,
    TrimHorizon,
}

/// Everything a client thread needs; `Send`, built by the main thread.
#[derive(Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub streams: Vec<String>,
    pub record_size: usize,
    pub batch: usize,
    pub keys_per_producer: usize,
    pub inflight: usize,
    /// Open loop: requests per second for each producer.
    pub request_rate: Option<f64>,
    /// Records carry their send time (consumers measure delivery).
    pub stamp: bool,
    /// Producer ids and their stream index, for this thread.
    pub producers: Vec<(usize, usize)>,
    /// Consumers of this thread: (stream index, shards).
    pub consumers: Vec<(usize, Vec<u32>)>,
    pub consume: ConsumeMode,
    /// CatchUp: per (stream index, shard), the offset the backlog ends at.
    pub until: HashMap<(usize, u32), u64>,
    /// Producers over all threads (open-loop schedules are spread over them).
    pub producers_total: usize,
    /// The Kinesis-HTTP target instead of the native protocol.
    pub http: Option<HttpPlan>,
    /// Stop each producer after this many records (backlog fill), if set.
    pub records_per_producer: Option<u64>,
}

/// Where the Kinesis-HTTP target sends its requests.
#[derive(Clone)]
pub struct HttpPlan {
    pub addr: SocketAddr,
    /// Per stream, its shard ids.
    pub shard_ids: Vec<Vec<String>>,
}

/// State all threads and the main thread share.
pub struct Shared {
    pub epoch: Instant,
    /// The measured window, in nanoseconds since `epoch`: requests intended and
    /// records sent within it are measured, however late they are answered or
    /// delivered. `measure_until` is u64::MAX until the window closes.
    pub measure_from: AtomicU64,
    pub measure_until: AtomicU64,
    /// Producers send nothing more (they wait for what they sent).
    pub stop_producing: AtomicBool,
    /// Everything stops (consumers too).
    pub stop: AtomicBool,
    /// Running totals for the progress line.
    pub produced: AtomicU64,
    pub consumed: AtomicU64,
    pub consumers_done: AtomicUsize,
    pub producers_done: AtomicUsize,
    /// When the last catch-up consumer finished (ns since `epoch`).
    pub last_done: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            measure_from: AtomicU64::new(u64::MAX),
            measure_until: AtomicU64::new(u64::MAX),
            stop_producing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            produced: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            consumers_done: AtomicUsize::new(0),
            producers_done: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether `at_ns` falls in the measured window.
    pub fn measuring(&self, at_ns: u64) -> bool {
        at_ns >= self.measure_from.load(Ordering::Relaxed)
            && at_ns < self.measure_until.load(Ordering::Relaxed)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn producing(&self) -> bool {
        !self.stop_producing.load(Ordering::Relaxed) && !self.stopped()
    }
}

/// What one client thread measured (within the measured window only).
pub struct Tally {
    pub ack: Histogram<u64>,
    pub e2e: Histogram<u64>,
    pub read: Histogram<u64>,
    pub produced_records: u64,
    pub produced_bytes: u64,
    pub consumed_records: u64,
    pub consumed_bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Acknowledged records the consumers had not received when the run ended.
    pub undelivered: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            ack: histogram(),
            e2e: histogram(),
            read: histogram(),
            produced_records: 0,
            produced_bytes: 0,
            consumed_records: 0,
            consumed_bytes: 0,
            errors: 0,
            first_error: None,
            undelivered: 0,
        }
    }

    pub fn add(&mut self, o: Tally) {
        self.ack.add(o.ack).expect("same bounds");
        self.e2e.add(o.e2e).expect("same bounds");
        self.read.add(o.read).expect("same bounds");
        self.produced_records += o.produced_records;
        self.produced_bytes += o.produced_bytes;
        self.consumed_records += o.consumed_records;
        self.consumed_bytes += o.consumed_bytes;
        self.errors += o.errors;
        self.undelivered += o.undelivered;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    pub fn error(&mut self, what: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.to_string());
        }
    }
}

/// A latency in nanoseconds as histogram microseconds (at least 1).
pub fn micros(ns: u64) -> u64 {
    (ns / 1000).max(1)
}

/// Concurrent open-loop requests one producer may have outstanding; past this
/// the schedule waits (and the latency from the intended time shows it).
const OUTSTANDING_MAX: u64 = 4096;

/// Records GetRecords asks for per call in catch-up mode (AWS's maximum).
const READ_LIMIT: u32 = 10_000;

type Task<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A client thread: connects, tells `ready` once set up (iterators taken,
/// subscriptions confirmed), waits for `go` to be dropped, runs its tasks
/// until the run stops.
/// Waits until each of `threads` client threads has said it is set up; the
/// first failure (and stops the others through `shared.stop`).
pub fn wait_ready(
    ready: &flume::Receiver<anyhow::Result<()>>,
    threads: usize,
    shared: &Shared,
) -> anyhow::Result<()> {
    let mut setup = Ok(());
    for _ in 0..threads {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                setup = Err(e);
                break;
            }
            Err(_) => {
                setup = Err(anyhow::anyhow!("a client thread ended during setup"));
                break;
            }
        }
    }
    if setup.is_err() {
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    setup
}

pub fn run_thread(
    plan: Plan,
    shared: Arc<Shared>,
    ready: flume::Sender<anyhow::Result<()>>,
    go: flume::Receiver<()>,
) -> std::thread::JoinHandle<anyhow::Result<Tally>> {
    std::thread::spawn(move || {
        rt::block_on_local(move || async move {
            let tally = Rc::new(RefCell::new(Tally::new()));
            if let Some(http) = plan.http.clone() {
                return run_http(&plan, &http, shared, tally, ready, go).await;
            }
            let (set_tx, set_rx) = flume::unbounded::<anyhow::Result<()>>();
            let mut tasks: Vec<Task<'_>> = Vec::new();
            let mut expected = 0;
            for &(id, stream) in &plan.producers {
                expected += 1;
                let (set_tx, go) = (set_tx.clone(), go.clone());
                let (shared, tally) = (shared.clone(), tally.clone());
                let plan = &plan;
                tasks.push(Box::pin(async move {
                    let p = match Producer::connect(plan, id, stream).await {
                        Ok(p) => {
                            let _ = set_tx.send(Ok(()));
                            Rc::new(p)
                        }
                        Err(e) => {
                            let _ = set_tx.send(Err(e));
                            return;
                        }
                    };
                    drop(set_tx);
                    let _ = go.recv_async().await;
                    produce(p, plan.inflight, plan.request_rate, shared.clone(), tally).await;
                    shared.producers_done.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for (stream, shards) in &plan.consumers {
                let client = match connect(plan.addr).await {
                    Ok(c) => Rc::new(c),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return Ok(Tally::new());
                    }
                };
                for &shard in shards {
                    expected += 1;
                    let c = Consumer {
                        client: client.clone(),
                        stream: plan.streams[*stream].clone(),
                        shard,
                        until: plan.until.get(&(*stream, shard)).copied(),
                        stamp: plan.stamp,
                    };
                    let (set_tx, go) = (set_tx.clone(), go.clone());
                    let (shared, tally) = (shared.clone(), tally.clone());
                    tasks.push(Box::pin(consume(
                        c,
                        plan.consume,
                        set_tx,
                        go,
                        shared,
                        tally,
                    )));
                }
            }
            drop(set_tx);
            let report_ready = async move {
                let mut result = Ok(());
                for _ in 0..expected {
                    match set_rx.recv_async().await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            result = Err(e);
                            break;
                        }
                        Err(_) => {
                            result = Err(anyhow::anyhow!("a client task ended during setup"));
                            break;
                        }
                    }
                }
                let _ = ready.send(result);
            };
            tasks.push(Box::pin(report_ready));
            riffle_engine::join_all(tasks).await;
            let tally = Rc::try_unwrap(tally)
                .map_err(|_| anyhow::anyhow!("tasks still hold the tally"))?
                .into_inner();
            Ok(tally)
        })
        .context("client executor")?
    })
}

/// A client thread's tasks over the Kinesis-HTTP target (connections are made
/// after `go`; setup has nothing to confirm).
async fn run_http(
    plan: &Plan,
    http: &HttpPlan,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    ready: flume::Sender<anyhow::Result<()>>,
    go: flume::Receiver<()>,
) -> anyhow::Result<Tally> {
    let _ = ready.send(Ok(()));
    let _ = go.recv_async().await;
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for &(id, stream) in &plan.producers {
        let bodies = Rc::new(crate::http_target::put_records_bodies(
            &plan.streams[stream],
            id,
            plan.keys_per_producer,
            plan.batch,
            plan.record_size,
        ));
        let lanes = plan.inflight.max(1);
        let records_max = plan.records_per_producer;
        let done = Rc::new(Cell::new(0usize));
        let sent = Rc::new(Cell::new(0u64));
        for _ in 0..lanes {
            let (bodies, shared, tally, done, sent) = (
                bodies.clone(),
                shared.clone(),
                tally.clone(),
                done.clone(),
                sent.clone(),
            );
            let (addr, batch, size) = (http.addr, plan.batch, plan.record_size);
            tasks.push(Box::pin(async move {
                crate::http_target::produce(
                    addr,
                    bodies,
                    batch,
                    size,
                    sent,
                    records_max,
                    shared.clone(),
                    tally,
                )
                .await;
                done.set(done.get() + 1);
                if done.get() == lanes {
                    shared.producers_done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for (stream, shards) in &plan.consumers {
        for &shard in shards {
            let Some(shard_id) = http.shard_ids[*stream].get(shard as usize).cloned() else {
                continue;
            };
            tasks.push(Box::pin(crate::http_target::consume(
                http.addr,
                plan.streams[*stream].clone(),
                shard_id,
                READ_LIMIT,
                shared.clone(),
                tally.clone(),
            )));
        }
    }
    riffle_engine::join_all(tasks).await;
    Rc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("tasks still hold the tally"))
        .map(RefCell::into_inner)
}

/// The access key every native connection proves (`--auth`).
static CREDENTIALS: std::sync::OnceLock<riffle_client::Credentials> = std::sync::OnceLock::new();

/// Authenticates every later native connection with `credentials`.
pub fn authenticate_with(credentials: riffle_client::Credentials) {
    let _ = CREDENTIALS.set(credentials);
}

/// The credentials of `authenticate_with`, for the blocking clients.
pub fn credentials() -> Option<riffle_client::Credentials> {
    CREDENTIALS.get().cloned()
}

async fn connect(addr: SocketAddr) -> anyhow::Result<AsyncClient<Connection>> {
    let conn = rt::net::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let client = AsyncClient::new(conn, AsyncClientConfig::default());
    if let Some(c) = CREDENTIALS.get() {
        client
            .authenticate(c)
            .await
            .with_context(|| format!("cannot authenticate to {addr}"))?;
    }
    Ok(client)
}

/// One producer: its connection, its keys (routed once) and its requests.
struct Producer {
    client: AsyncClient<Connection>,
    stream: String,
    stream_id: u64,
    /// Partition keys and the shard each routes to.
    keys: Vec<(String, u32)>,
    /// Record data; the first 8 bytes are the send time when stamping, else 0.
    data: Vec<u8>,
    batch: usize,
    record_size: usize,
    stamp: bool,
    /// Unstamped runs: the distinct requests of the key rotation, encoded once.
    prebuilt: Vec<Vec<(u32, AlignedVec<16>)>>,
    /// Requests started.
    started: Cell<u64>,
    records_max: Option<u64>,
    /// Spreads producers' open-loop schedules over one interval.
    phase: f64,
}

impl Producer {
    async fn connect(plan: &Plan, id: usize, stream: usize) -> anyhow::Result<Producer> {
        let client = connect(plan.addr).await?;
        let name = plan.streams[stream].clone();
        let table: Rc<RoutingTable> = client
            .routing_table(&name)
            .await
            .with_context(|| format!("ListShards {name}"))?;
        let keys: Vec<(String, u32)> = (0..plan.keys_per_producer.max(1))
            .map(|k| {
                let key = format!("p{id}-k{k}");
                let shard = table.shard_for(&key, None);
                (key, shard)
            })
            .collect();
        let mut data: Vec<u8> = (0..plan.record_size)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9).wrapping_add(id as u64) as u8)
            .collect();
        data.iter_mut().take(8).for_each(|b| *b = 0);
        let mut p = Producer {
            client,
            stream: name,
            stream_id: table.stream_id(),
            keys,
            data,
            batch: plan.batch.max(1),
            record_size: plan.record_size,
            stamp: plan.stamp,
            prebuilt: Vec::new(),
            started: Cell::new(0),
            records_max: plan.records_per_producer,
            phase: id as f64 / plan.producers_total.max(1) as f64,
        };
        if !p.stamp {
            let k = p.keys.len();
            let patterns = (k / gcd(k, p.batch)).min(64);
            p.prebuilt = (0..patterns as u64).map(|j| p.encode(j, &p.data)).collect();
        }
        Ok(p)
    }

    /// Request `j`: the next `batch` keys of the rotation, one batch per shard.
    fn encode(&self, j: u64, data: &[u8]) -> Vec<(u32, AlignedVec<16>)> {
        let mut groups: Vec<(u32, Vec<RecordIn<'_>>)> = Vec::new();
        let first = (j as usize).wrapping_mul(self.batch);
        for i in 0..self.batch {
            let (key, shard) = &self.keys[(first + i) % self.keys.len()];
            let record = RecordIn {
                partition_key: key,
                explicit_hash_key: None,
                data,
                arrival_ms: 0,
            };
            match groups.iter_mut().find(|g| g.0 == *shard) {
                Some(g) => g.1.push(record),
                None => groups.push((*shard, vec![record])),
            }
        }
        let mut builder = BatchBuilder::new();
        groups
            .into_iter()
            .map(|(shard, records)| (shard, builder.encode(&records)))
            .collect()
    }

    fn exhausted(&self) -> bool {
        self.records_max
            .is_some_and(|m| self.started.get() * self.batch as u64 >= m)
    }

    /// Sends request number `started` stamped with `intended_ns`; false when the
    /// connection is gone.
    async fn send(&self, intended_ns: u64, shared: &Shared, tally: &RefCell<Tally>) -> bool {
        let j = self.started.get();
        self.started.set(j + 1);
        let owned;
        let batches: &[(u32, AlignedVec<16>)] = if self.stamp {
            let mut data = self.data.clone();
            if data.len() >= 8 {
                data[..8].copy_from_slice(&intended_ns.to_le_bytes());
            }
            owned = self.encode(j, &data);
            &owned
        } else {
            &self.prebuilt[j as usize % self.prebuilt.len()]
        };
        let refs: Vec<(u32, &[u8])> = batches.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        let result = self
            .client
            .put_batches(&self.stream, self.stream_id, &refs)
            .await;
        let done = shared.now_ns();
        let mut t = tally.borrow_mut();
        let mut stored = 0u64;
        let alive = match result {
            Ok(results) => {
                for r in results {
                    match r.outcome {
                        Ok((_, n)) => stored += n as u64,
                        Err(e) => t.error(format!("PutRecords batch refused: {e}")),
                    }
                }
                true
            }
            Err(e) => {
                t.error(format!("PutRecords: {e}"));
                !matches!(e, riffle_client::ClientError::ConnectionLost { .. })
            }
        };
        shared.produced.fetch_add(stored, Ordering::Relaxed);
        if shared.measuring(done) {
            t.produced_records += stored;
            t.produced_bytes += stored * self.record_size as u64;
        }
        // By intended send time: a request answered late still counts.
        if shared.measuring(intended_ns) {
            t.ack.record(micros(done.saturating_sub(intended_ns))).ok();
        }
        alive
    }
}

pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// Runs one producer: `inflight` closed-loop lanes, or an open-loop schedule of
/// `request_rate` requests per second.
async fn produce(
    p: Rc<Producer>,
    inflight: usize,
    request_rate: Option<f64>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
) {
    let Some(rate) = request_rate else {
        let lanes = (0..inflight.max(1)).map(|_| async {
            while shared.producing() && !p.exhausted() {
                if !p.send(shared.now_ns(), &shared, &tally).await {
                    break;
                }
            }
        });
        riffle_engine::join_all(lanes.collect()).await;
        return;
    };
    let interval = 1e9 / rate;
    let start = shared.now_ns() as f64 + interval * p.phase;
    let outstanding = Rc::new(Semaphore::new(OUTSTANDING_MAX));
    let mut n = 0u64;
    while shared.producing() && !p.exhausted() {
        let intended = (start + interval * n as f64) as u64;
        n += 1;
        let now = shared.now_ns();
        if intended > now {
            rt::sleep(Duration::from_nanos(intended - now)).await;
        }
        let Some(permit) = outstanding.acquire(1).await else {
            break;
        };
        let (p, shared, tally) = (p.clone(), shared.clone(), tally.clone());
        rt::spawn(async move {
            p.send(intended, &shared, &tally).await;
            drop(permit);
        });
    }
    // Every request sent is answered before the tally is handed back.
    let _all = outstanding.acquire(OUTSTANDING_MAX).await;
}

/// One shard read by a consumer connection.
struct Consumer {
    client: Rc<AsyncClient<Connection>>,
    stream: String,
    shard: u32,
    until: Option<u64>,
    stamp: bool,
}

/// Counts a reply's records; with stamps, records their delivery latency.
fn take_records(
    view: &RecordsView<'_>,
    stamp: bool,
    shared: &Shared,
    tally: &RefCell<Tally>,
) -> u64 {
    let now = shared.now_ns();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut t = tally.borrow_mut();
    for (_, r) in view.records() {
        let data = r.data();
        records += 1;
        bytes += data.len() as u64;
        if stamp && data.len() >= 8 {
            let sent = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            if sent != 0 && shared.measuring(sent) {
                t.e2e.record(micros(now.saturating_sub(sent))).ok();
            }
        }
    }
    shared.consumed.fetch_add(records, Ordering::Relaxed);
    if shared.measuring(now) {
        t.consumed_records += records;
        t.consumed_bytes += bytes;
    }
    records
}

async fn consume(
    c: Consumer,
    mode: ConsumeMode,
    set: flume::Sender<anyhow::Result<()>>,
    go: flume::Receiver<()>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
) {
    let client = &*c.client;
    match mode {
        ConsumeMode::CatchUp => {
            let it = client
                .get_shard_iterator(&c.stream, c.shard, StartPosition::TrimHorizon)
                .await;
            let mut it = match it {
                Ok(it) => {
                    let _ = set.send(Ok(()));
                    it
                }
                Err(e) => {
                    let _ = set.send(Err(anyhow::anyhow!("GetShardIterator: {e}")));
                    return;
                }
            };
            drop(set);
            let _ = go.recv_async().await;
            let until = c.until.unwrap_or(0);
            let mut next_offset = 0;
            while next_offset < until && !shared.stopped() {
                let t0 = shared.now_ns();
                let r = client
                    .get_records_view(&it, Some(READ_LIMIT), |v| {
                        take_records(&v, c.stamp, &shared, &tally);
                        (v.next_offset, v.next_iterator.map(str::to_owned))
                    })
                    .await;
                let t1 = shared.now_ns();
                match r {
                    Ok((next, Some(next_it))) => {
                        tally.borrow_mut().read.record(micros(t1 - t0)).ok();
                        next_offset = next;
                        it = next_it;
                    }
                    Ok((_, None)) => break,
                    Err(e) => {
                        tally.borrow_mut().error(format!("GetRecords: {e}"));
                        break;
                    }
                }
            }
            shared.consumers_done.fetch_add(1, Ordering::Relaxed);
            shared
                .last_done
                .fetch_max(shared.now_ns(), Ordering::Relaxed);
        }
        ConsumeMode::Follow(start) => {
            let position = match start {
                Start::Latest => StartPosition::Latest,
                Start::TrimHorizon => StartPosition::TrimHorizon,
            };
            let mut sub = match client.subscribe(&c.stream, c.shard, position).await {
                Ok(sub) => {
                    let _ = set.send(Ok(()));
                    sub
                }
                Err(e) => {
                    let _ = set.send(Err(anyhow::anyhow!("Subscribe: {e}")));
                    return;
                }
            };
            drop(set);
            let _ = go.recv_async().await;
            while !shared.stopped() {
                // Wake up now and then to notice the end of the run.
                let next = future::or(
                    async {
                        Some(
                            sub.next_view(|v| take_records(&v, c.stamp, &shared, &tally))
                                .await,
                        )
                    },
                    async {
                        rt::sleep(Duration::from_millis(50)).await;
                        None
                    },
                )
                .await;
                match next {
                    None => {}
                    Some(None) => break,
                    Some(Some(Ok(_))) => {}
                    Some(Some(Err(e))) => {
                        tally.borrow_mut().error(format!("subscription: {e}"));
                        break;
                    }
                }
            }
            let _ = sub.unsubscribe().await;
        }
    }
}
