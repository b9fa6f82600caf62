//! The shard pump on the simulated disk: group commit and the watermark each
//! acknowledgement waits for, poison on a failed write or sync, close, rolls and
//! backpressure under pipelined load.
//!
//! Every test body runs on its own glommio executor, with the `SimStorage` made
//! inside it (the simulated disk is `Rc`-based, single-threaded). One driver,
//! [`run`], sends a [`Case`]'s appends without waiting for replies, collects the
//! replies in a second task as they arrive (noting the watermarks at that
//! moment), and checks what must hold for every case:
//! - every append is answered: Ok for a prefix, `StorageFailed` (caused by the
//!   injected fault) for the rest, and the shard refuses appends from then on;
//! - acknowledged offsets are dense and in send order;
//! - no ack arrives before its watermark (`durable` with fsync, `written` without)
//!   and, with fsync, `visible` never passes `durable`;
//! - the live view serves exactly the sent records up to the visible offset;
//! - after a crash the log reopens and holds a prefix of the sent records that
//!   covers everything the log called durable and, with fsync, every
//!   acknowledged record.
//!
//! Each test then checks its own point on the returned [`Outcome`].
//!
//! The disk is [`Disk`]: `SimStorage` whose syncs give up the executor a seeded
//! number of times before taking effect, as a real fdatasync completes later, so
//! the pump forms new groups while syncs are in flight and syncs complete out of
//! order; a test can also hold every sync until it releases them. Runs are
//! deterministic: the executor is single-threaded, the simulated disk suspends
//! only there, and sync delays and crash coin flips come from the case's seed.
//! Seeded sweeps take `RIFFLE_SEED` (comma-separated, decimal or 0x-hex) to
//! replay the seed a failure message names.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::rc::Rc;

use futures_lite::future::yield_now;
use riffle_engine::pump::{self, PumpConfig, PumpMsg};
use riffle_engine::{Durability, EngineConfig};
use riffle_protocol::batch::ValidBatch;
use riffle_protocol::{Error, ErrorCode};
use riffle_store::log::{self, Appended, LogConfig, LogView, ShardLog};
use riffle_store::sim::{SimBuf, SimFile, SimOp, SimReadBuf, SimStorage};
use riffle_store::testkit::{Rec, encode};
use riffle_store::{Storage, StorageFile};

type View = Rc<RefCell<LogView<DiskFile>>>;
type Answer<T> = flume::Receiver<Result<T, Error>>;

fn dir() -> &'static Path {
    Path::new("/data/stream-a/shard-0")
}

/// Seeds for a sweep: `RIFFLE_SEED` when set, otherwise `defaults`.
fn seeds(defaults: &[u64]) -> Vec<u64> {
    let Ok(s) = std::env::var("RIFFLE_SEED") else {
        return defaults.to_vec();
    };
    s.split(',')
        .map(|x| {
            let x = x.trim();
            match x.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => x.parse(),
            }
            .unwrap_or_else(|_| panic!("RIFFLE_SEED={s}: {x:?} is not a u64"))
        })
        .collect()
}

/// Runs a test body on a fresh glommio executor and waits for it.
fn on_executor<G, F>(body: G)
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap();
}

/// `SimStorage` whose file syncs take a seeded 1 to 8 turns of the executor
/// before they take effect (so syncs in flight complete in any order), and wait
/// while the gate is held; whose writes take 0 to 3 turns (so a group's
/// writes are still in flight while the pump takes the next group, and
/// writes issued together land in any order).
#[derive(Clone)]
struct Disk {
    sim: SimStorage,
    gate: Rc<Gate>,
}

/// Delays syncs; holds them when asked: a held sync waits on a channel whose
/// sender [`Gate::release`] drops.
struct Gate {
    rng: Cell<u64>,
    held: RefCell<Option<(flume::Sender<()>, flume::Receiver<()>)>>,
    waiting_count: Cell<usize>,
}

impl Gate {
    fn hold(&self) {
        *self.held.borrow_mut() = Some(flume::bounded(1));
    }

    fn release(&self) {
        self.held.borrow_mut().take();
    }

    /// Turns of the executor the next sync takes: 1 to 8 (xorshift).
    fn next_turn_count(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        1 + x % 8
    }
}

impl Disk {
    fn new(sim: SimStorage, seed: u64) -> Disk {
        Disk {
            sim,
            gate: Rc::new(Gate {
                rng: Cell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
                held: RefCell::default(),
                waiting_count: Cell::new(0),
            }),
        }
    }
}

struct DiskFile {
    file: SimFile,
    gate: Rc<Gate>,
}

impl StorageFile for DiskFile {
    type Buf = SimBuf;
    type ReadBuf = SimReadBuf;

    fn alloc(&self, len: usize) -> SimBuf {
        self.file.alloc(len)
    }
    async fn write_at(&self, buf: SimBuf, pos: u64) -> io::Result<()> {
        for _ in 0..self.gate.next_turn_count() % 4 {
            yield_now().await;
        }
        self.file.write_at(buf, pos).await
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<SimReadBuf> {
        self.file.read_at(pos, len).await
    }
    async fn sync(&self) -> io::Result<()> {
        for _ in 0..self.gate.next_turn_count() {
            yield_now().await;
        }
        let held = self.gate.held.borrow().as_ref().map(|(_, rx)| rx.clone());
        if let Some(rx) = held {
            let waiting = &self.gate.waiting_count;
            waiting.set(waiting.get() + 1);
            let _ = rx.recv_async().await;
            waiting.set(waiting.get() - 1);
        }
        self.file.sync().await
    }
    async fn len(&self) -> io::Result<u64> {
        self.file.len().await
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await
    }
    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.file.allocate(len).await
    }
    async fn data_end(&self) -> io::Result<u64> {
        self.file.data_end().await
    }
}

impl Storage for Disk {
    type File = DiskFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<DiskFile> {
        Ok(DiskFile {
            file: self.sim.open(path, create).await?,
            gate: self.gate.clone(),
        })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.create_dir_all(path).await
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.sim.list_dir(dir).await
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_file(path).await
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_dir_all(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename(from, to).await
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.sync_dir(dir).await
    }
    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.sim.exists(path).await
    }
}

/// One run of the pump: its settings, the load, and an optional fault.
#[derive(Clone, Debug)]
struct Case {
    log: LogConfig,
    pump: PumpConfig,
    batch_count: usize,
    batch_record_count: usize,
    record_size: usize,
    /// Messages the pump's queue holds before the sender waits.
    queue_max: usize,
    /// Injected once the log is open: the n-th next operation of this kind fails.
    fault: Option<(SimOp, u64)>,
    /// End with `PumpMsg::Close` (otherwise the sender is dropped).
    close: bool,
    /// Hold every sync until the pump stops at `syncs_in_flight_max`, note the
    /// state, then release them. Needs room in the queue for every append.
    hold_syncs: bool,
    /// Drives how long each sync takes and which unsynced blocks survive the crash.
    seed: u64,
}

impl Case {
    fn new(durability: Durability) -> Case {
        Case {
            log: LogConfig {
                // Small enough that the simulated disk's preallocated segment stays cheap.
                segment_size_max: 8 << 20,
                write_size: 64 << 10,
                read_size: 64 << 10,
                durable_acks: durability == Durability::Fsync,
                ..LogConfig::default()
            },
            pump: PumpConfig::new(durability, 4 << 20, 4, 1 << 20),
            batch_count: 200,
            batch_record_count: 3,
            record_size: 100,
            queue_max: 64,
            fault: None,
            close: false,
            hold_syncs: false,
            seed: 0x5eed,
        }
    }

    /// Small segments, groups and writes so one run rolls, commits many groups
    /// and issues many writes and syncs: the load for fault sweeps.
    fn busy() -> Case {
        let mut case = Case::new(Durability::Fsync);
        case.log.segment_size_max = 32 << 10;
        case.log.write_size = 8192;
        case.pump = PumpConfig::new(Durability::Fsync, 8 << 10, 2, 8 << 10);
        case.batch_count = 120;
        case.record_size = 300;
        case.queue_max = 16;
        case
    }

    fn ctx(&self) -> String {
        let mut s = format!(
            "{:?}, seed {:#x}, {} batches x {} records x {} bytes",
            self.pump.durability,
            self.seed,
            self.batch_count,
            self.batch_record_count,
            self.record_size
        );
        if let Some((op, n)) = self.fault {
            let _ = write!(s, ", fault {op:?} #{n}");
        }
        s
    }
}

/// A reply as the collector saw it, with the watermarks at that moment.
struct Receipt {
    /// `None`: the reply channel was dropped unanswered.
    result: Option<Result<Appended, Error>>,
    written_offset: u64,
    durable_offset: u64,
    visible_offset: u64,
}

/// What a run did, for the test's own checks (the common ones already passed).
struct Outcome {
    receipts: Vec<Receipt>,
    /// Appends answered Ok (the first `ok_count` sent).
    ok_count: usize,
    /// Records sent in all.
    record_count: u64,
    /// Bytes of all batches sent.
    sent_bytes: u64,
    /// Syncs and writes called after the log was opened.
    sync_count: u64,
    write_count: u64,
    segment_count: usize,
    close: Option<Result<(), Error>>,
    /// With `hold_syncs`: the state while the syncs were held.
    held: Option<Held>,
    /// Records the log held after the crash and reopen.
    recovered_count: u64,
}

/// The pump's state while every sync was held.
struct Held {
    written_offset: u64,
    durable_offset: u64,
    visible_offset: u64,
    /// Appends answered by then.
    answered_count: usize,
}

/// A record as a reader got it.
#[derive(Debug)]
struct Served {
    offset: u64,
    rec: Rec,
    arrival_ms: i64,
}

/// Batch `i`: records with distinct keys and data, so any mix-up shows.
fn make_batch(i: usize, record_count: usize, record_size: usize) -> (ValidBatch, Vec<Rec>) {
    let recs: Vec<Rec> = (0..record_count)
        .map(|j| Rec {
            key: format!("k{i}-{j}"),
            data: (0..record_size)
                .map(|n| (i * 131 + j * 17 + n) as u8)
                .collect(),
        })
        .collect();
    (encode(&recs), recs)
}

/// Every visible record, in order.
async fn read_all(view: &View, read_size: usize, ctx: &str) -> Vec<Served> {
    let mut all = Vec::new();
    let mut next = 0;
    loop {
        let out = log::read(view, next, 1000, 64 << 20, read_size)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read from {next}: {e:?}"));
        if out.record_count == 0 {
            return all;
        }
        for span in &out.spans {
            let first = span.first_offset();
            for (i, r) in span.records().iter().enumerate() {
                all.push(Served {
                    offset: first + i as u64,
                    rec: Rec {
                        key: r.partition_key().to_string(),
                        data: r.data().to_vec(),
                    },
                    arrival_ms: r.arrival_ms(),
                });
            }
        }
        next = out.next_offset;
    }
}

/// Asserts that `got` is a prefix of `sent` at offsets from 0, with the arrival
/// time of every acknowledged record.
fn assert_prefix(got: &[Served], sent: &[Rec], arrivals: &[i64], ctx: &str) {
    assert!(
        got.len() <= sent.len(),
        "{ctx}: {} records served, only {} sent",
        got.len(),
        sent.len()
    );
    for (k, g) in got.iter().enumerate() {
        assert!(
            g.offset == k as u64 && g.rec == sent[k],
            "{ctx}: record at offset {k} differs: got {g:?}, sent {:?}",
            sent[k]
        );
        if let Some(&t) = arrivals.get(k) {
            assert_eq!(g.arrival_ms, t, "{ctx}: arrival time of offset {k}");
        }
    }
}

/// Runs one case (see the module docs for what it checks).
async fn run(case: Case) -> Outcome {
    let ctx = case.ctx();
    let durable_acks = case.pump.durability == Durability::Fsync;
    let storage = SimStorage::new(case.seed);
    let disk = Disk::new(storage.clone(), case.seed);
    let log = ShardLog::open(disk.clone(), dir(), case.log.clone())
        .await
        .unwrap();
    let view = log.view().clone();
    let syncs_at_open = storage.sync_count();
    let writes_at_open = storage.op_count(SimOp::Write);
    if let Some((op, n)) = case.fault {
        storage.fail_nth(op, n);
    }
    if case.hold_syncs {
        assert!(
            case.queue_max >= case.batch_count,
            "{ctx}: the sender would wait"
        );
        disk.gate.hold();
    }
    let (tx, rx) = flume::bounded(case.queue_max);
    glommio::spawn_local(pump::run(
        log,
        rx,
        case.pump,
        Default::default(),
        false,
        None,
    ))
    .detach();

    // Collect replies while appends are still being sent.
    let receipts: Rc<RefCell<Vec<Receipt>>> = Rc::default();
    let (pending_tx, pending_rx) = flume::unbounded::<Answer<Appended>>();
    let collector = glommio::spawn_local({
        let (view, receipts) = (view.clone(), receipts.clone());
        async move {
            while let Ok(answer) = pending_rx.recv_async().await {
                let result = answer.recv_async().await.ok();
                let v = view.borrow();
                receipts.borrow_mut().push(Receipt {
                    result,
                    written_offset: v.written_offset,
                    durable_offset: v.durable_offset,
                    visible_offset: v.visible_offset,
                });
            }
        }
    });

    let mut sent = Vec::new();
    let mut answers = Vec::new();
    let mut sent_bytes = 0u64;
    for i in 0..case.batch_count {
        let (batch, recs) = make_batch(i, case.batch_record_count, case.record_size);
        sent_bytes += batch.len() as u64;
        sent.extend(recs);
        let (reply, answer) = flume::bounded(1);
        pending_tx.send(answer.clone()).unwrap();
        answers.push(answer);
        tx.send_async(PumpMsg::Append {
            batch,
            seal: None,
            reply,
        })
        .await
        .unwrap_or_else(|_| panic!("{ctx}: the pump stopped before append #{i}"));
    }
    // Answered: taken by the collector or waiting in its reply channel.
    let answered_count = || {
        let taken = receipts.borrow().len();
        taken + answers[taken..].iter().filter(|a| !a.is_empty()).count()
    };
    let held = if case.hold_syncs {
        // Let the pump run until every sync slot holds a waiting sync.
        let mut turn_count = 0;
        while disk.gate.waiting_count.get() < case.pump.syncs_in_flight_max {
            turn_count += 1;
            assert!(
                turn_count < 100_000,
                "{ctx}: only {} syncs in flight",
                disk.gate.waiting_count.get()
            );
            yield_now().await;
        }
        let held = {
            let v = view.borrow();
            Held {
                written_offset: v.written_offset,
                durable_offset: v.durable_offset,
                visible_offset: v.visible_offset,
                answered_count: answered_count(),
            }
        };
        disk.gate.release();
        Some(held)
    } else {
        None
    };
    let close = if case.close {
        let (reply, answer) = flume::bounded(1);
        tx.send_async(PumpMsg::Close { reply }).await.unwrap();
        let result = answer.recv_async().await.expect("close answered");
        assert_eq!(
            answered_count(),
            case.batch_count,
            "{ctx}: appends answered when the close reply came"
        );
        Some(result)
    } else {
        None
    };
    drop(pending_tx);
    collector.await;
    let receipts = receipts.take();
    let record_count = sent.len() as u64;

    // Replies: Ok for a prefix, dense offsets in send order, each after its watermark.
    let mut ok_count = 0;
    let mut arrivals: Vec<i64> = Vec::new();
    for (i, r) in receipts.iter().enumerate() {
        match &r.result {
            None => panic!("{ctx}: append #{i} was never answered"),
            Some(Ok(a)) => {
                assert_eq!(ok_count, i, "{ctx}: append #{i} Ok after a failed one");
                let base = arrivals.len() as u64;
                let n = case.batch_record_count as u64;
                assert_eq!(
                    (a.base_offset, a.record_count as u64, a.end_offset),
                    (base, n, base + n),
                    "{ctx}: append #{i} landed elsewhere"
                );
                assert!(
                    arrivals.last().is_none_or(|&t| t <= a.arrival_ms),
                    "{ctx}: append #{i}: arrival time went back"
                );
                let watermark = if durable_acks {
                    r.durable_offset
                } else {
                    r.written_offset
                };
                assert!(
                    watermark >= a.end_offset,
                    "{ctx}: append #{i} acknowledged at watermark {watermark} before its end {}",
                    a.end_offset
                );
                arrivals.extend(std::iter::repeat_n(a.arrival_ms, n as usize));
                ok_count += 1;
            }
            Some(Err(e)) => {
                assert!(
                    case.fault.is_some(),
                    "{ctx}: append #{i} failed without a fault: {e:?}"
                );
                assert!(
                    e.code == ErrorCode::StorageFailed && e.message.contains("injected"),
                    "{ctx}: append #{i} failed with {e:?}"
                );
            }
        }
        if durable_acks {
            assert!(
                r.visible_offset <= r.durable_offset,
                "{ctx}: at reply #{i} visible {} passed durable {}",
                r.visible_offset,
                r.durable_offset
            );
        }
    }
    assert_eq!(receipts.len(), case.batch_count, "{ctx}: replies");
    let acked = arrivals.len() as u64;

    // A failed shard stays failed: later appends are refused.
    if ok_count < case.batch_count && !case.close {
        for i in 0..3 {
            let (batch, _) = make_batch(case.batch_count + i, 1, 10);
            let (reply, answer) = flume::bounded(1);
            tx.send_async(PumpMsg::Append {
                batch,
                seal: None,
                reply,
            })
            .await
            .unwrap();
            let e = answer.recv_async().await.unwrap().unwrap_err();
            assert!(
                e.code == ErrorCode::StorageFailed && e.message.contains("injected"),
                "{ctx}: late append #{i}: {e:?}"
            );
        }
    }
    drop(tx);

    // Watermarks where the pump left them.
    let (visible, durable, failed, segment_count) = {
        let v = view.borrow();
        (
            v.visible_offset,
            v.durable_offset,
            v.failed.clone(),
            v.segments.len(),
        )
    };
    assert_eq!(
        failed.is_some(),
        ok_count < case.batch_count,
        "{ctx}: poisoned ({failed:?}) with {ok_count} Ok replies"
    );
    assert!(
        visible >= acked,
        "{ctx}: visible {visible} below acked {acked}"
    );
    if ok_count == case.batch_count {
        assert_eq!(visible, record_count, "{ctx}: visible after every ack");
    }
    if durable_acks {
        assert!(
            visible <= durable,
            "{ctx}: visible {visible} passed durable {durable}"
        );
    }

    // The live view serves the sent records up to the visible offset.
    let live = read_all(&view, case.log.read_size, &ctx).await;
    assert_prefix(&live, &sent, &arrivals, &format!("{ctx}, live view"));
    assert_eq!(live.len() as u64, visible, "{ctx}: live view length");

    // After a crash: a prefix of the sent records, covering every ack.
    let sync_count = storage.sync_count() - syncs_at_open;
    let write_count = storage.op_count(SimOp::Write) - writes_at_open;
    let restarted = storage.restart();
    let reopened = ShardLog::open(Disk::new(restarted, case.seed), dir(), case.log.clone())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: reopen after the crash failed: {e:?}"));
    let recovered = read_all(reopened.view(), case.log.read_size, &ctx).await;
    let ctx_after = format!("{ctx}, after the crash");
    assert_prefix(&recovered, &sent, &arrivals, &ctx_after);
    let recovered_count = recovered.len() as u64;
    // Without fsync acks, acknowledged records may be lost; durable ones never.
    let kept = if durable_acks {
        acked.max(durable)
    } else {
        durable
    };
    assert!(
        recovered_count >= kept,
        "{ctx_after}: {recovered_count} records, acked {acked}, durable {durable}"
    );

    Outcome {
        receipts,
        ok_count,
        record_count,
        sent_bytes,
        sync_count,
        write_count,
        segment_count,
        close,
        held,
        recovered_count,
    }
}

#[test]
fn group_commit_acks_after_fsync() {
    on_executor(|| async {
        // Groups of about 8 KiB: about ten for the whole load.
        let mut case = Case::new(Durability::Fsync);
        case.pump = PumpConfig::new(Durability::Fsync, 8 << 10, 4, 8 << 10);
        let ctx = case.ctx();
        let out = run(case.clone()).await;
        assert_eq!(out.ok_count, 200, "{ctx}");
        assert!(
            (2..=20).contains(&out.sync_count),
            "{ctx}: {} syncs for 200 pipelined appends",
            out.sync_count
        );
        assert_eq!(out.recovered_count, out.record_count, "{ctx}");

        // With every sync held, the pump starts a sync per slot and keeps writing
        // groups until the unsynced bytes reach its bound (4 x 16 KiB here), then
        // waits; nothing is acknowledged or visible until syncs end.
        case.queue_max = case.batch_count;
        case.hold_syncs = true;
        let out = run(case).await;
        let held = out.held.unwrap();
        assert!(
            held.written_offset > 0 && held.written_offset < out.record_count,
            "{ctx}: written {} of {} while syncs were held",
            held.written_offset,
            out.record_count
        );
        assert_eq!(
            (
                held.durable_offset,
                held.visible_offset,
                held.answered_count
            ),
            (0, 0, 0),
            "{ctx}: durable, visible, answered while syncs were held"
        );
        assert_eq!(out.ok_count, 200, "{ctx}");
    });
}

#[test]
fn durability_none_acks_once_written() {
    on_executor(|| async {
        let case = Case::new(Durability::None);
        let ctx = case.ctx();
        let out = run(case).await;
        assert_eq!(out.ok_count, 200, "{ctx}");
        // Acks did not wait for fsync: some arrived before their batch was durable.
        // The pump still syncs in the background to bound the unsynced bytes.
        assert!(
            out.receipts.iter().any(|r| match &r.result {
                Some(Ok(a)) => r.durable_offset < a.end_offset,
                _ => false,
            }),
            "{ctx}: every ack waited for its fsync"
        );
    });
}

/// With durability none, written but unsynced bytes must stay below
/// `unsynced_bytes_max`, which is also recovery's torn-tail window: otherwise a crash
/// may leave a hole followed by valid batches beyond the window, and reopening
/// refuses the segment as corrupt. The settings pass `EngineConfig::validate`.
/// (Regression: the pump used to sync only at rolls in this mode.)
#[test]
fn durability_none_crash_leaves_an_openable_log() {
    on_executor(|| async {
        let mut engine = EngineConfig::new("/unused");
        engine.durability = Durability::None;
        engine.limits.request_size_max = 1 << 20;
        engine.commit_bytes_max = 64 << 10;
        engine.syncs_in_flight_max = 1;
        let unsynced = (engine.syncs_in_flight_max as u64 + 2)
            * (engine.commit_bytes_max + engine.limits.batch_size_max()) as u64;
        engine.log.unsynced_bytes_max = unsynced;
        engine.log.durable_acks = false;
        engine.log.write_size = 64 << 10;
        engine.log.read_size = 64 << 10;
        engine.validate().unwrap();

        let mut case = Case::new(Durability::None);
        case.log = engine.log.clone();
        case.pump = PumpConfig::new(
            engine.durability,
            engine.commit_bytes_max,
            engine.syncs_in_flight_max,
            engine.limits.batch_size_max(),
        );
        case.batch_record_count = 4;
        case.record_size = 4000;
        // Twice the window, all within the first segment.
        case.batch_count = (2 * unsynced / 16_000) as usize;
        let out = run(case).await;
        assert!(out.sent_bytes > 2 * unsynced - (64 << 10));
    });
}

#[test]
fn failed_sync_poisons_without_losing_acks() {
    on_executor(|| async { fault_sweep(SimOp::Sync).await });
}

#[test]
fn failed_write_poisons_without_losing_acks() {
    on_executor(|| async { fault_sweep(SimOp::Write).await });
}

/// For each seed, runs the busy case once cleanly, then once with the k-th
/// operation of `op` failing, for every k the clean run reached.
async fn fault_sweep(op: SimOp) {
    for seed in seeds(&[0x5eed, 1, 2, 3]) {
        let mut case = Case::busy();
        case.seed = seed;
        let ctx = case.ctx();
        let clean = run(case.clone()).await;
        assert_eq!(clean.ok_count, case.batch_count, "{ctx}");
        assert!(clean.segment_count >= 3, "{ctx}: the sweep covers rolls");
        let op_count = match op {
            SimOp::Sync => clean.sync_count,
            SimOp::Write => clean.write_count,
            _ => unreachable!(),
        };
        assert!(op_count >= 10, "{ctx}: only {op_count} {op:?} calls");
        let mut midway_count = 0;
        for k in 1..=op_count {
            case.fault = Some((op, k));
            let ctx = case.ctx();
            let out = run(case.clone()).await;
            assert!(
                out.ok_count < out.receipts.len(),
                "{ctx}: the fault failed no append"
            );
            if out.ok_count > 0 {
                midway_count += 1;
            }
        }
        assert!(
            midway_count * 2 >= op_count,
            "{ctx}: only {midway_count} of {op_count} faults came after some acks"
        );
    }
}

#[test]
fn close_answers_every_append_first_and_leaves_data_durable() {
    on_executor(|| async {
        // Seeds vary which sync in flight completes last: the close's own or a group's.
        for (durability, seed) in [Durability::Fsync, Durability::None]
            .into_iter()
            .flat_map(|d| {
                seeds(&[1, 2, 3, 4, 5, 6, 7, 8])
                    .into_iter()
                    .map(move |s| (d, s))
            })
        {
            let mut case = Case::new(durability);
            case.pump.commit_bytes_max = 8 << 10;
            case.close = true;
            case.seed = seed;
            let ctx = case.ctx();
            let out = run(case).await;
            assert_eq!(out.ok_count, 200, "{ctx}");
            assert!(
                matches!(out.close, Some(Ok(()))),
                "{ctx}: close replied {:?}",
                out.close
            );
            assert_eq!(out.recovered_count, out.record_count, "{ctx}");
        }
    });
}

#[test]
fn rolls_during_group_commit() {
    on_executor(|| async {
        let mut case = Case::new(Durability::Fsync);
        case.log.segment_size_max = 64 << 10;
        case.log.write_size = 8192;
        case.batch_count = 400;
        case.batch_record_count = 1;
        case.record_size = 1024;
        let ctx = case.ctx();
        let out = run(case).await;
        assert_eq!(out.ok_count, 400, "{ctx}");
        assert!(
            out.segment_count >= 5,
            "{ctx}: rolled into {} segments",
            out.segment_count
        );
        assert_eq!(out.recovered_count, out.record_count, "{ctx}");
    });
}

#[test]
fn small_commit_groups_under_backpressure() {
    on_executor(|| async {
        // A full pump queue makes the sender wait too.
        for queue_max in [4, 256] {
            let mut case = Case::new(Durability::Fsync);
            case.pump = PumpConfig::new(Durability::Fsync, 16 << 10, 1, 16 << 10);
            case.queue_max = queue_max;
            case.batch_count = 1000;
            case.record_size = 200;
            let ctx = format!("{}, queue {queue_max}", case.ctx());
            let (batch, _) = make_batch(0, case.batch_record_count, case.record_size);
            let group_bytes_max = (case.pump.commit_bytes_max + batch.len()) as u64;
            let out = run(case).await;
            assert_eq!(out.ok_count, 1000, "{ctx}");
            // A group holds at most commit_bytes_max plus one batch and is written
            // on its own; a sync covers every group written before it starts, so
            // groups written while one runs share the next (never more syncs than
            // groups).
            assert!(
                out.write_count >= out.sent_bytes / group_bytes_max,
                "{ctx}: {} writes for {} bytes",
                out.write_count,
                out.sent_bytes
            );
            assert!(
                out.sync_count <= out.write_count,
                "{ctx}: {} syncs for {} writes",
                out.sync_count,
                out.write_count
            );
            assert!(out.sync_count < 1000, "{ctx}: no coalescing");
            assert_eq!(out.recovered_count, out.record_count, "{ctx}");
        }
    });
}

/// With durability none the pump still bounds the bytes written but not durable:
/// while the only sync slot is held it stops writing at its bound, and it goes on
/// once syncs complete (the one it waits for is urgent, so it does not wait for
/// the lazy delay).
#[test]
fn durability_none_stops_at_the_unsynced_bound_and_resumes() {
    on_executor(|| async {
        let mut case = Case::new(Durability::None);
        case.pump = PumpConfig::new(Durability::None, 8 << 10, 1, 8 << 10);
        case.queue_max = case.batch_count;
        case.hold_syncs = true;
        // Without fsync acks only a close makes the last groups durable
        // before the crash (their lazy sync may still be waiting).
        case.close = true;
        let ctx = case.ctx();
        let out = run(case).await;
        let held = out.held.unwrap();
        assert!(
            held.written_offset > 0 && held.written_offset < out.record_count,
            "{ctx}: written {} of {} while the sync was held",
            held.written_offset,
            out.record_count
        );
        assert_eq!(out.ok_count, 200, "{ctx}");
        assert_eq!(out.recovered_count, out.record_count, "{ctx}");
        // Several bound-sized stretches, each ended by a sync.
        assert!(out.sync_count >= 3, "{ctx}: {} syncs", out.sync_count);
    });
}
