//! Consumer groups against the real `riffle server`: workers of one group
//! (`riffle_client::ConsumerGroup`, in this process) share a stream's shards
//! through the server's leases: every record processed at least once, each
//! shard in order by one worker at a time, leases balanced and handed over
//! when a worker leaves, checkpoints refused from a worker that no longer
//! holds the lease. (Worker processes killed with SIGKILL and reshards under
//! load: tests/python/test_groups.py, through `riffle consume`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use riffle_client::{
    Checkpointer, Client, ClientConfig, ConsumerConfig, ConsumerGroup, ErrorCode, GroupConfig,
    InitialPosition, LeaseCheckpoint, PutRecordsEntry, Record, RecordProcessor, ShardStart,
};
use riffle_tests::{Server, data_dir};

const STEP: Duration = Duration::from_secs(20);

/// One processed record: (run, shard, sequence number, sub-sequence number,
/// key, data); a run is one processor: one lease taken by one worker.
type Processed = (usize, u32, u128, Option<u32>, String, Vec<u8>);

/// What every processor of a test saw, in processing order.
#[derive(Default)]
struct Log {
    processed: Vec<Processed>,
    /// Lifecycle calls: (worker, shard, what).
    calls: Vec<(String, u32, &'static str)>,
}

#[derive(Default)]
struct Shared {
    log: Mutex<Log>,
    changed: Condvar,
}

impl Shared {
    /// Waits until `cond` holds for the log.
    fn wait_for(&self, what: &str, cond: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + STEP;
        let mut log = self.log.lock().unwrap();
        while !cond(&log) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "never happened: {what}");
            log = self.changed.wait_timeout(log, left).unwrap().0;
        }
    }

    fn distinct(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.processed
            .iter()
            .map(|p| (p.1, p.2, p.3))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

struct Recorder {
    worker: String,
    run: usize,
    shard: u32,
    shared: Arc<Shared>,
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Recorder {
    fn call(&self, what: &'static str) {
        self.shared
            .log
            .lock()
            .unwrap()
            .calls
            .push((self.worker.clone(), self.shard, what));
        self.shared.changed.notify_all();
    }
}

impl RecordProcessor for Recorder {
    fn initialize(&mut self, start: &ShardStart) {
        assert_eq!(start.shard_index, self.shard);
        self.call("initialize");
    }

    fn process_records(&mut self, records: &[Record], checkpointer: &mut Checkpointer) {
        {
            let mut log = self.shared.log.lock().unwrap();
            for r in records {
                log.processed.push((
                    self.run,
                    self.shard,
                    r.sequence_number,
                    r.sub_sequence_number,
                    r.partition_key.clone(),
                    r.data.clone(),
                ));
            }
        }
        let _ = checkpointer.checkpoint();
        self.shared.changed.notify_all();
    }

    fn lease_lost(&mut self) {
        self.call("lease_lost");
    }

    fn shard_ended(&mut self, checkpointer: &mut Checkpointer) {
        checkpointer.checkpoint().unwrap();
        self.call("shard_ended");
    }

    fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        let _ = checkpointer.checkpoint();
        self.call("shutdown_requested");
    }
}

fn client(server: &Server) -> Client {
    Client::connect(
        server.addr,
        ClientConfig {
            request_timeout: STEP,
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

fn worker(server: &Server, stream: &str, id: &str, shared: &Arc<Shared>) -> ConsumerGroup {
    worker_with(server, stream, id, shared, true)
}

/// A worker taking pushes at the tip (`follow`) or polling with GetRecords.
fn worker_with(
    server: &Server,
    stream: &str,
    id: &str,
    shared: &Arc<Shared>,
    follow: bool,
) -> ConsumerGroup {
    let mut config = GroupConfig::new("g");
    config.worker_id = id.to_owned();
    config.failover = Duration::from_millis(1500);
    config.initial = InitialPosition::TrimHorizon;
    config.consumer = ConsumerConfig {
        poll_interval: Duration::from_millis(20),
        follow,
        ..ConsumerConfig::default()
    };
    let (shared, id) = (shared.clone(), id.to_owned());
    ConsumerGroup::start(client(server), stream, config, move |shard| {
        Box::new(Recorder {
            worker: id.clone(),
            run: RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            shard,
            shared: shared.clone(),
        })
    })
    .unwrap()
}

/// Puts `n` records from `from` with 40 keys; returns (key, data) of each.
fn put(client: &Client, stream: &str, from: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let records: Vec<(String, Vec<u8>)> = (from..from + n)
        .map(|i| {
            (
                format!("key-{}", i % 40),
                format!("record-{i}").into_bytes(),
            )
        })
        .collect();
    for chunk in records.chunks(500) {
        let entries: Vec<PutRecordsEntry<'_>> = chunk
            .iter()
            .map(|(k, d)| PutRecordsEntry {
                partition_key: k,
                explicit_hash_key: None,
                data: d,
            })
            .collect();
        for r in client.put_records(stream, &entries).unwrap() {
            r.unwrap();
        }
    }
    records
}

/// Each run processes its shard in order (so each key in order), and a
/// shard's runs follow one another: once another run of the shard started,
/// an earlier one processes nothing more.
fn check_order(log: &Log) {
    let mut last: BTreeMap<usize, (u128, Option<u32>)> = BTreeMap::new();
    let mut runs_of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (run, shard, seq, sub, _, _) in &log.processed {
        let at = (*seq, *sub);
        if let Some(prev) = last.insert(*run, at) {
            assert!(
                prev < at,
                "run {run} of shard {shard}: {prev:?} then {at:?}"
            );
        }
        let runs = runs_of.entry(*shard).or_default();
        if runs.last() != Some(run) {
            assert!(
                !runs.contains(run),
                "shard {shard}: run {run} came back after {runs:?}"
            );
            runs.push(*run);
        }
    }
}

#[test]
fn three_workers_share_eight_shards_and_hand_over_when_one_leaves() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &[]);
    let admin = client(&server);
    admin.create_stream("orders", 8).unwrap();
    let mut sent = put(&admin, "orders", 0, 4000);
    let shared = Arc::new(Shared::default());
    let a = worker(&server, "orders", "a", &shared);
    let b = worker(&server, "orders", "b", &shared);
    let c = worker(&server, "orders", "c", &shared);
    let deadline = Instant::now() + STEP;
    while shared.distinct() < 4000 {
        assert!(
            Instant::now() < deadline,
            "only {} processed",
            shared.distinct()
        );
        shared.wait_for("more records", |l| !l.processed.is_empty());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Balanced: 3, 3 and 2 shards, each held by one worker.
    let deadline = Instant::now() + STEP;
    loop {
        let mut counts: Vec<usize> = [&a, &b, &c].iter().map(|w| w.held().len()).collect();
        counts.sort();
        let all: BTreeSet<u32> = [&a, &b, &c].iter().flat_map(|w| w.held()).collect();
        if counts == [2, 3, 3] && all.len() == 8 {
            break;
        }
        assert!(Instant::now() < deadline, "never balanced: {counts:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let table = admin.group_describe("orders", "g").unwrap();
    assert_eq!(table.leases.len(), 8);
    assert!(table.leases.iter().all(|l| l.owner.is_some()));
    assert_eq!(table.workers, ["a", "b", "c"]);

    // c leaves: its shards go to a and b, from c's checkpoints.
    let c_shards = c.held();
    c.shutdown().unwrap();
    let deadline = Instant::now() + STEP;
    while a.held().len() + b.held().len() < 8 {
        assert!(Instant::now() < deadline, "c's shards were not taken over");
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let log = shared.log.lock().unwrap();
        for s in &c_shards {
            assert!(log.calls.contains(&("c".into(), *s, "shutdown_requested")));
        }
    }
    sent.extend(put(&admin, "orders", 4000, 1000));
    let deadline = Instant::now() + STEP;
    while shared.distinct() < 5000 {
        assert!(
            Instant::now() < deadline,
            "only {} processed",
            shared.distinct()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();

    let log = shared.log.lock().unwrap();
    // Every record at least once, with its key and data.
    let seen: BTreeSet<(String, Vec<u8>)> = log
        .processed
        .iter()
        .map(|p| (p.4.clone(), p.5.clone()))
        .collect();
    let sent: BTreeSet<(String, Vec<u8>)> = sent.into_iter().collect();
    assert_eq!(seen, sent);
    check_order(&log);
    // The table after everyone left: no owners, checkpoints past the records.
    let table = admin.group_describe("orders", "g").unwrap();
    assert!(table.leases.iter().all(|l| l.owner.is_none()));
    assert!(
        table
            .leases
            .iter()
            .all(|l| matches!(l.checkpoint, LeaseCheckpoint::After { .. }))
    );
}

#[test]
fn polling_workers_process_records_put_while_they_run() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &[]);
    let admin = client(&server);
    admin.create_stream("polled", 3).unwrap();
    let shared = Arc::new(Shared::default());
    let a = worker_with(&server, "polled", "a", &shared, false);
    let b = worker_with(&server, "polled", "b", &shared, false);
    // Records put while the workers run (polling at the tip) all arrive.
    let mut sent = BTreeSet::new();
    for round in 0..5 {
        sent.extend(put(&admin, "polled", round * 300, 300));
        std::thread::sleep(Duration::from_millis(30));
    }
    let deadline = Instant::now() + STEP;
    while shared.distinct() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "only {} processed",
            shared.distinct()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    let log = shared.log.lock().unwrap();
    let seen: BTreeSet<(String, Vec<u8>)> = log
        .processed
        .iter()
        .map(|p| (p.4.clone(), p.5.clone()))
        .collect();
    assert_eq!(seen, sent);
    check_order(&log);
}

#[test]
fn a_checkpoint_from_a_worker_without_the_lease_is_refused() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &[]);
    let c = client(&server);
    c.create_stream("s", 1).unwrap();
    let leases = c
        .group_heartbeat("s", "g", "w1", 1000, InitialPosition::TrimHorizon, &[])
        .unwrap();
    assert_eq!(leases.len(), 1);
    let lease = &leases[0];
    let at = LeaseCheckpoint::After {
        sequence_number: riffle_protocol::seqno::encode(0, 3),
        sub_sequence_number: Some(1),
    };
    c.group_checkpoint("s", "g", "w1", 0, lease.counter, at)
        .unwrap();
    // w1 goes silent; w2 takes the lease after the failover time.
    let deadline = Instant::now() + STEP;
    let taken = loop {
        let l = c
            .group_heartbeat("s", "g", "w2", 1000, InitialPosition::TrimHorizon, &[])
            .unwrap();
        if !l.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline, "w2 never got the lease");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(taken[0].checkpoint, at, "from w1's checkpoint");
    assert!(taken[0].counter > lease.counter);
    let err = c
        .group_checkpoint("s", "g", "w1", 0, lease.counter, at)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ConcurrentModification));
    // Bad input: clear errors, nothing changes.
    let err = c
        .group_heartbeat("s", "g", "w 1", 1000, InitialPosition::Latest, &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidArgument));
    let err = c
        .group_heartbeat("nope", "g", "w1", 1000, InitialPosition::Latest, &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ResourceNotFound));
    let err = c
        .group_heartbeat("s", "g", "w1", 10, InitialPosition::Latest, &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidArgument));
    // The lease survives a restart of the server with its checkpoint.
    drop(c);
    let mut server = server;
    server.terminate();
    server.restart();
    let c = client(&server);
    let table = c.group_describe("s", "g").unwrap();
    assert_eq!(table.leases[0].owner.as_deref(), Some("w2"));
    assert_eq!(table.leases[0].checkpoint, at);
}
