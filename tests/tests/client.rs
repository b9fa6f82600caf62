//! riffle-client against the real `riffle server`: every operation of the
//! blocking [`Client`], the same flow through [`AsyncClient`] (with concurrent
//! calls on one connection), the [`Producer`] and the [`Consumer`], and what a
//! client sees when the server restarts or dies. Assertions are on outcomes:
//! the bytes read back, sequence numbers, error codes.
//!
//! Owns only this file. The client's unit tests (protocol/client/tests) run
//! against scripted and fake servers; these run against the engine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::{self, block_on};
use futures_lite::io::{AsyncRead, AsyncWrite};
use riffle_client::{
    AsyncClient, AsyncClientConfig, Client, ClientConfig, ClientError, Consumer, ConsumerConfig,
    ErrorCode, Producer, ProducerConfig, Put, PutRecordsEntry, Record, RoutingTable, StartPosition,
};
use riffle_protocol::{routing, seqno};
use riffle_tests::{Server, data_dir};

/// The longest any single wait in these tests may take before the test fails
/// instead of hanging.
const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: STEP,
        ..ClientConfig::default()
    }
}

fn connect(server: &Server) -> Client {
    Client::connect(server.addr, config()).expect("connect to the server")
}

/// A fresh server (two cores) and a client connected to it.
fn setup() -> (tempfile::TempDir, Server, Client) {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let client = connect(&server);
    (dir, server, client)
}

/// What a refused call must come back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// The server answered with this code.
    Server(ErrorCode),
    /// The client refused the input before sending anything.
    Client,
}

fn refusal(result: Result<(), ClientError>) -> Option<Refused> {
    match result {
        Ok(()) => None,
        Err(ClientError::Server(e)) => Some(Refused::Server(e.code)),
        Err(ClientError::InvalidArgument(_)) => Some(Refused::Client),
        Err(e) => panic!("neither a server error nor a client refusal: {e:?}"),
    }
}

/// The server error code of a failed call.
fn server_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Every record from `position` to the tip, following GetRecords until a read
/// returns nothing.
fn read_from(client: &Client, stream: &str, shard: u32, position: StartPosition) -> Vec<Record> {
    let mut iterator = client
        .get_shard_iterator(stream, shard, position)
        .unwrap_or_else(|e| panic!("iterator for {position:?}: {e}"));
    let mut out = Vec::new();
    loop {
        let got = client.get_records(&iterator, None).unwrap();
        if got.records.is_empty() {
            assert_eq!(got.millis_behind_latest, 0, "an empty read is at the tip");
            return out;
        }
        out.extend(got.records);
        iterator = got
            .next_iterator
            .expect("an open shard has a next iterator");
    }
}

fn read_shard(client: &Client, stream: &str, shard: u32) -> Vec<Record> {
    read_from(client, stream, shard, StartPosition::TrimHorizon)
}

fn datas(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.data.clone()).collect()
}

fn seqs(records: &[Record]) -> Vec<u128> {
    records.iter().map(|r| r.sequence_number).collect()
}

/// The explicit hash key that routes a record to `shard` (the start of its range).
fn key_of_shard(client: &Client, stream: &str, shard: u32) -> u128 {
    client
        .list_shards(stream)
        .unwrap()
        .iter()
        .find(|s| s.shard_index == shard)
        .expect("the shard exists")
        .hash_key_start
}

/// Puts `count` records into `shard` one at a time, data `{tag}-{i}`.
fn put_into(client: &Client, stream: &str, shard: u32, tag: &str, count: usize) -> Vec<Put> {
    let hash_key = key_of_shard(client, stream, shard);
    (0..count)
        .map(|i| {
            let data = format!("{tag}-{i}");
            let put = client
                .put_record(stream, tag, Some(hash_key), data.as_bytes())
                .unwrap();
            assert_eq!(put.shard_index, shard);
            put
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until the wall clock is past `ms`, so that records put afterwards
/// arrive strictly later (arrival times have millisecond resolution).
fn wait_past(ms: i64) {
    while now_ms() <= ms {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A TCP proxy in front of the server that reports each chunk of client bytes
/// it has passed on: the event "the request left the client" that a test of a
/// call in flight waits for. Each connection it accepts gets its own to the
/// server (waiting up to [`STEP`] for a restarting server); when either side
/// closes, both are closed.
struct Proxy {
    addr: std::net::SocketAddr,
    forwarded: mpsc::Receiver<usize>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, forwarded) = mpsc::channel();
        std::thread::spawn(move || {
            for downstream in listener.incoming() {
                let Ok(downstream) = downstream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let deadline = Instant::now() + STEP;
                    let upstream = loop {
                        match TcpStream::connect(upstream) {
                            Ok(s) => break s,
                            Err(_) if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(5))
                            }
                            Err(_) => return,
                        }
                    };
                    let (up, down) = (
                        upstream.try_clone().unwrap(),
                        downstream.try_clone().unwrap(),
                    );
                    std::thread::spawn(move || pump(up, down, None));
                    pump(downstream, upstream, Some(tx));
                });
            }
        });
        Proxy { addr, forwarded }
    }

    /// Forgets what was forwarded so far.
    fn drain(&self) {
        while self.forwarded.try_recv().is_ok() {}
    }

    /// Waits until client bytes were forwarded to the server.
    fn wait_forwarded(&self) {
        self.forwarded
            .recv_timeout(STEP)
            .expect("the request never reached the proxy");
    }
}

/// Copies `from` to `to` until either fails, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, report: Option<mpsc::Sender<usize>>) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(tx) = &report {
            let _ = tx.send(n);
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Blocking client: every operation
// ---------------------------------------------------------------------------

#[test]
fn ping_and_the_stream_lifecycle() {
    let (_dir, _server, client) = setup();
    assert!(client.ping().unwrap() < STEP);
    assert_eq!(client.list_streams().unwrap(), Vec::<String>::new());

    let before = now_ms();
    for (name, shards) in [("orders", 3), ("clicks", 1), ("a.b_c-9", 2)] {
        client.create_stream(name, shards).unwrap();
    }
    let mut names = client.list_streams().unwrap();
    names.sort();
    assert_eq!(names, ["a.b_c-9", "clicks", "orders"]);

    let d = client.describe_stream("orders").unwrap();
    assert_eq!(d.name, "orders");
    assert_eq!(d.status, "ACTIVE");
    assert_eq!(d.retention_hours, 24);
    assert!(
        (before - 1000..=now_ms()).contains(&d.created_ms),
        "created_ms {} is not around now ({before})",
        d.created_ms
    );
    assert_eq!(d.shards, client.list_shards("orders").unwrap());
    assert_eq!(d.shards.len(), 3);

    client.delete_stream("clicks").unwrap();
    assert_eq!(
        server_code(client.describe_stream("clicks")),
        ErrorCode::ResourceNotFound
    );
    let mut names = client.list_streams().unwrap();
    names.sort();
    assert_eq!(names, ["a.b_c-9", "orders"]);
    // The name is free again, with a different shard count and no old records.
    client.create_stream("clicks", 2).unwrap();
    assert_eq!(client.list_shards("clicks").unwrap().len(), 2);
    assert!(read_shard(&client, "clicks", 0).is_empty());
}

/// Every refusal has its documented code, leaves the connection usable, and has
/// no effect.
#[test]
fn refused_calls_come_back_with_their_error_code() {
    let (_dir, _server, client) = setup();
    client.create_stream("s", 2).unwrap();
    let s0 = put_into(&client, "s", 0, "k", 1)[0].sequence_number;
    let it = client
        .get_shard_iterator("s", 0, StartPosition::TrimHorizon)
        .unwrap();
    let c = &client;
    let producer = |config| unit(Producer::new(client.clone(), "s", config));
    let nope = |config| unit(Producer::new(client.clone(), "nope", config));
    use ErrorCode::*;
    use Refused::{Client as C, Server as S};
    use StartPosition::*;
    // (expected, what, outcome), the outcome evaluated here, in order.
    let cases: Vec<(Refused, &str, Result<(), ClientError>)> = vec![
        (
            S(ResourceInUse),
            "create an existing stream",
            c.create_stream("s", 1),
        ),
        (
            S(InvalidArgument),
            "create 0 shards",
            c.create_stream("zero", 0),
        ),
        // AWS answers more shards than the limit with LimitExceeded too.
        (
            S(LimitExceeded),
            "create 501 shards",
            c.create_stream("many", 501),
        ),
        (
            S(InvalidArgument),
            "create an empty name",
            c.create_stream("", 1),
        ),
        (
            S(InvalidArgument),
            "create a name with a space",
            c.create_stream("a b", 1),
        ),
        (
            S(InvalidArgument),
            "create a non-ASCII name",
            c.create_stream("é", 1),
        ),
        (
            C,
            "create a 129-character name",
            c.create_stream(&"n".repeat(129), 1),
        ),
        (
            S(ResourceNotFound),
            "describe unknown",
            unit(c.describe_stream("nope")),
        ),
        (
            S(ResourceNotFound),
            "delete unknown",
            c.delete_stream("nope"),
        ),
        (
            S(ResourceNotFound),
            "list shards of unknown",
            unit(c.list_shards("nope")),
        ),
        (
            S(ResourceNotFound),
            "put to unknown",
            unit(c.put_record("nope", "k", None, b"x")),
        ),
        (
            C,
            "put an empty key",
            unit(c.put_record("s", "", None, b"x")),
        ),
        (
            C,
            "put a 257-char key",
            unit(c.put_record("s", &"k".repeat(257), None, b"x")),
        ),
        (
            C,
            "put 1 MiB + 1",
            unit(c.put_record("s", "k", None, &vec![0; (1 << 20) + 1])),
        ),
        (
            S(ResourceNotFound),
            "put_records to unknown",
            unit(c.put_records("nope", &[entry("k", b"x")])),
        ),
        (
            S(ResourceNotFound),
            "iterator of unknown",
            unit(c.get_shard_iterator("nope", 0, Latest)),
        ),
        (
            S(ResourceNotFound),
            "iterator of shard 2 of 2",
            unit(c.get_shard_iterator("s", 2, Latest)),
        ),
        (
            S(InvalidArgument),
            "at a seqno of shard 0 in 1",
            unit(c.get_shard_iterator("s", 1, AtSequenceNumber(s0))),
        ),
        (
            S(InvalidArgument),
            "after a seqno of shard 0 in 1",
            unit(c.get_shard_iterator("s", 1, AfterSequenceNumber(s0))),
        ),
        (
            S(InvalidArgument),
            "a seqno Riffle never issues",
            unit(c.get_shard_iterator("s", 0, AtSequenceNumber(5))),
        ),
        (
            S(InvalidArgument),
            "a seqno past the tip",
            unit(c.get_shard_iterator("s", 0, AtSequenceNumber(s0 + 2))),
        ),
        (
            S(InvalidArgument),
            "get 10,001 records",
            unit(c.get_records(&it, Some(10_001))),
        ),
        (
            S(InvalidArgument),
            "a forged iterator",
            unit(c.get_records("not-an-iterator", None)),
        ),
        (
            C,
            "a 1025-char iterator",
            unit(c.get_records(&"i".repeat(1025), None)),
        ),
        (
            S(ResourceNotFound),
            "subscribe to unknown",
            unit(c.subscribe("nope", 0, Latest)),
        ),
        (
            S(ResourceNotFound),
            "subscribe to shard 9 of 2",
            unit(c.subscribe("s", 9, Latest)),
        ),
        (
            S(ResourceNotFound),
            "a producer for unknown",
            nope(ProducerConfig::default()),
        ),
        (
            C,
            "a producer of empty batches",
            producer(ProducerConfig {
                batch_records_max: 0,
                ..Default::default()
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (expected, what, result) in cases {
        let got = refusal(result);
        if got != Some(expected) {
            failures.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing took effect and the connection is fine.
    client.ping().unwrap();
    assert_eq!(client.list_streams().unwrap(), ["s"]);
    assert_eq!(seqs(&read_shard(&client, "s", 0)), [s0]);
    assert!(read_shard(&client, "s", 1).is_empty());
}

/// A call's outcome without its value, for tables of refusals.
fn unit<T>(result: Result<T, ClientError>) -> Result<(), ClientError> {
    result.map(drop)
}

fn entry<'a>(partition_key: &'a str, data: &'a [u8]) -> PutRecordsEntry<'a> {
    PutRecordsEntry {
        partition_key,
        explicit_hash_key: None,
        data,
    }
}

#[test]
fn list_shards_cover_the_hash_key_space_evenly() {
    let (_dir, _server, client) = setup();
    // Each shard preallocates a 256 MiB segment: few shards, each stream
    // deleted when checked.
    for shard_count in [1u32, 2, 3, 7, 10] {
        let stream = format!("split-{shard_count}");
        client.create_stream(&stream, shard_count).unwrap();
        let shards = client.list_shards(&stream).unwrap();
        let ranges: Vec<(u128, u128)> = shards
            .iter()
            .map(|s| (s.hash_key_start, s.hash_key_end))
            .collect();
        let indexes: Vec<u32> = shards.iter().map(|s| s.shard_index).collect();
        assert_eq!(indexes, (0..shard_count).collect::<Vec<_>>(), "{stream}");
        assert_eq!(ranges, routing::even_split(shard_count), "{stream}");
        // Contiguous from 0 to 2^128 - 1, so the client can build its table.
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u128::MAX);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0, "{stream}: ranges touch");
        }
        RoutingTable::new(1, &shards).unwrap();
        assert_eq!(client.describe_stream(&stream).unwrap().shards, shards);
        client.delete_stream(&stream).unwrap();
    }
}

#[test]
fn put_record_is_routed_by_the_md5_of_its_key_or_its_explicit_hash_key() {
    let (_dir, _server, client) = setup();
    client.create_stream("routed", 8).unwrap();
    let table = client.routing_table("routed").unwrap();
    let ranges = routing::even_split(8);
    let mut next_offset = [0u64; 8];
    type Stored = (String, Option<u128>, Vec<u8>);
    let mut expected: BTreeMap<u32, Vec<Stored>> = BTreeMap::new();
    let mut put = |key: &str, hash_key: Option<u128>, shard: u32| {
        let data = format!("{key}/{hash_key:?}").into_bytes();
        let p = client.put_record("routed", key, hash_key, &data).unwrap();
        assert_eq!(p.shard_index, shard, "key {key:?}, hash key {hash_key:?}");
        let offset = &mut next_offset[shard as usize];
        assert_eq!(p.sequence_number, seqno::encode(shard, *offset));
        *offset += 1;
        expected
            .entry(shard)
            .or_default()
            .push((key.to_owned(), hash_key, data));
    };
    for i in 0..200 {
        let key = format!("user-{i}");
        let shard = routing::route(&ranges, routing::hash_key_of(&key)) as u32;
        assert_eq!(table.shard_for(&key, None), shard);
        put(&key, None, shard);
    }
    // Explicit hash keys at both ends of every range win over the key's MD5.
    for (shard, &(start, end)) in ranges.iter().enumerate() {
        put("ignored", Some(start), shard as u32);
        put("ignored", Some(end), shard as u32);
    }
    assert!(next_offset.iter().all(|&n| n > 2), "every shard got keys");
    for shard in 0..8 {
        let got: Vec<_> = read_shard(&client, "routed", shard)
            .into_iter()
            .map(|r| (r.partition_key, r.explicit_hash_key, r.data))
            .collect();
        assert_eq!(got, expected[&shard], "shard {shard}");
    }
}

#[test]
fn put_records_spans_many_shards_with_results_in_input_order() {
    let (_dir, _server, client) = setup();
    client.create_stream("batch", 4).unwrap();
    let table = client.routing_table("batch").unwrap();
    let ranges = routing::even_split(4);
    // 300 records, the last 4 pinned to shards 3, 2, 1, 0 by explicit hash key.
    let keys: Vec<String> = (0..300).map(|i| format!("key-{}", i % 37)).collect();
    let payloads: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("record-{i}").into_bytes())
        .collect();
    let mut entries: Vec<PutRecordsEntry<'_>> = keys
        .iter()
        .zip(&payloads)
        .map(|(k, d)| entry(k, d))
        .collect();
    for (i, e) in entries.iter_mut().rev().take(4).enumerate() {
        e.explicit_hash_key = Some(ranges[3 - i].1);
    }
    let results = client.put_records("batch", &entries).unwrap();
    assert_eq!(results.len(), entries.len());
    let mut expected: BTreeMap<u32, Vec<u128>> = BTreeMap::new();
    for (e, r) in entries.iter().zip(&results) {
        let put = r.as_ref().expect("every record is stored");
        let shard = table.shard_for(e.partition_key, e.explicit_hash_key);
        assert_eq!(put.shard_index, shard);
        expected.entry(shard).or_default().push(put.sequence_number);
    }
    assert_eq!(expected.len(), 4, "the records spread over every shard");
    for (&shard, seq) in &expected {
        // Input order within a shard is offset order, from 0, without gaps.
        let dense: Vec<u128> = (0..seq.len() as u64)
            .map(|o| seqno::encode(shard, o))
            .collect();
        assert_eq!(seq, &dense, "shard {shard}");
        let records = read_shard(&client, "batch", shard);
        assert_eq!(&seqs(&records), seq);
        let want: Vec<&[u8]> = entries
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.as_ref().unwrap().shard_index == shard)
            .map(|(e, _)| e.data)
            .collect();
        assert_eq!(
            records
                .iter()
                .map(|r| r.data.as_slice())
                .collect::<Vec<_>>(),
            want
        );
    }

    // Invalid input is refused before anything is sent (the client documents it).
    let stored = |c: &Client| {
        (0..4)
            .map(|s| read_shard(c, "batch", s).len())
            .sum::<usize>()
    };
    let before = stored(&client);
    let big = vec![0u8; (1 << 20) + 1];
    let many: Vec<_> = (0..501).map(|_| entry("k", b"x")).collect();
    for (what, input, message) in [
        (
            "an empty key",
            vec![entry("a", b"1"), entry("b", b"2"), entry("", b"3")],
            "record 2",
        ),
        (
            "an oversized record",
            vec![entry("a", b"1"), entry("b", &big)],
            "record 1",
        ),
        ("no records", vec![], "1 to 500"),
        ("501 records", many, "1 to 500"),
    ] {
        match client.put_records("batch", &input) {
            Err(ClientError::InvalidArgument(m)) => assert!(m.contains(message), "{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(stored(&client), before, "nothing was stored");
}

/// A client whose cached shard list went stale (the stream was deleted and
/// created again with fewer shards behind its back) never stores a record in
/// the wrong shard: the server refuses the stale request as a whole before
/// appending anything, and the client routes again with a fresh list and resends.
#[test]
fn put_records_with_a_stale_routing_table_is_rerouted_not_misplaced() {
    let (_dir, server, client) = setup();
    let other = connect(&server);
    client.create_stream("stale", 4).unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let entries: Vec<_> = keys.iter().map(|k| entry(k, b"v")).collect();
    assert!(
        client
            .put_records("stale", &entries)
            .unwrap()
            .iter()
            .all(Result::is_ok)
    );
    let stale_id = client.routing_table("stale").unwrap().stream_id();
    other.delete_stream("stale").unwrap();
    other.create_stream("stale", 2).unwrap();

    let results = client.put_records("stale", &entries).unwrap();
    let table = client.routing_table("stale").unwrap();
    assert_ne!(
        table.stream_id(),
        stale_id,
        "the client listed the shards again"
    );
    let new = RoutingTable::new(table.stream_id(), &routing_shards(2)).unwrap();
    for (e, r) in entries.iter().zip(&results) {
        assert_eq!(
            r.as_ref().unwrap().shard_index,
            new.shard_for(e.partition_key, None),
            "{} is in the shard its key routes to",
            e.partition_key
        );
    }
    // Every stored record is in the shard its key routes to, exactly once.
    for shard in 0..2 {
        let it = client
            .get_shard_iterator("stale", shard, StartPosition::TrimHorizon)
            .unwrap();
        let got = client.get_records(&it, None).unwrap();
        for r in &got.records {
            assert_eq!(new.shard_for(&r.partition_key, None), shard);
        }
        let expected = keys
            .iter()
            .filter(|k| new.shard_for(k, None) == shard)
            .count();
        assert_eq!(got.records.len(), expected);
    }
}

fn routing_shards(shard_count: u32) -> Vec<riffle_client::ShardInfo> {
    routing::even_split(shard_count)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| riffle_client::ShardInfo {
            shard_index: i as u32,
            hash_key_start: start,
            hash_key_end: end,
        })
        .collect()
}

#[test]
fn every_iterator_type_returns_exactly_its_records() {
    let (_dir, _server, client) = setup();
    client.create_stream("it", 2).unwrap();
    // Shard 1, so sequence numbers carry a shard index; shard 0 gets a record
    // that no read of shard 1 may return.
    put_into(&client, "it", 0, "other", 1);
    let early = put_into(&client, "it", 1, "early", 5);
    let early_records = read_shard(&client, "it", 1);
    let latest_before_late = client
        .get_shard_iterator("it", 1, StartPosition::Latest)
        .unwrap();
    wait_past(early_records.last().unwrap().arrival_ms);
    let late = put_into(&client, "it", 1, "late", 5);
    let all = read_shard(&client, "it", 1);
    assert_eq!(
        seqs(&all),
        early
            .iter()
            .chain(&late)
            .map(|p| p.sequence_number)
            .collect::<Vec<_>>()
    );
    let late_arrival = all[5].arrival_ms;
    assert!(late_arrival > all[4].arrival_ms);
    assert!(all.windows(2).all(|w| w[0].arrival_ms <= w[1].arrival_ms));

    let s = |i: usize| all[i].sequence_number;
    let tail = |from: usize| datas(&all[from..]);
    let cases: Vec<(&str, StartPosition, Vec<Vec<u8>>)> = vec![
        ("TRIM_HORIZON", StartPosition::TrimHorizon, tail(0)),
        ("LATEST", StartPosition::Latest, vec![]),
        (
            "AT_SEQUENCE_NUMBER first",
            StartPosition::AtSequenceNumber(s(0)),
            tail(0),
        ),
        (
            "AT_SEQUENCE_NUMBER 3",
            StartPosition::AtSequenceNumber(s(3)),
            tail(3),
        ),
        (
            "AT_SEQUENCE_NUMBER last",
            StartPosition::AtSequenceNumber(s(9)),
            tail(9),
        ),
        (
            "AFTER_SEQUENCE_NUMBER 3",
            StartPosition::AfterSequenceNumber(s(3)),
            tail(4),
        ),
        (
            "AFTER_SEQUENCE_NUMBER last",
            StartPosition::AfterSequenceNumber(s(9)),
            vec![],
        ),
        (
            "AT_SEQUENCE_NUMBER tip",
            StartPosition::AtSequenceNumber(s(9) + 1),
            vec![],
        ),
        ("AT_TIMESTAMP 0", StartPosition::AtTimestamp(0), tail(0)),
        (
            "AT_TIMESTAMP of the late records",
            StartPosition::AtTimestamp(late_arrival),
            tail(5),
        ),
        (
            "AT_TIMESTAMP future",
            StartPosition::AtTimestamp(now_ms() + 3_600_000),
            vec![],
        ),
    ];
    for (what, position, expected) in cases {
        let got = read_from(&client, "it", 1, position);
        assert_eq!(datas(&got), expected, "{what}");
        for r in &got {
            assert_eq!(r.position().0, 1, "{what}");
        }
    }
    // LATEST is the tip when the iterator is taken: it sees what came after.
    let got = client.get_records(&latest_before_late, None).unwrap();
    assert_eq!(datas(&got.records), tail(5));
}

#[test]
fn get_records_pages_by_its_limit() {
    let (_dir, _server, client) = setup();
    client.create_stream("pages", 1).unwrap();
    // Five PutRecords calls of five: pages cut through stored batches.
    let mut written = Vec::new();
    for b in 0..5 {
        let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("b{b}-r{i}").into_bytes()).collect();
        let entries: Vec<_> = payloads.iter().map(|d| entry("k", d)).collect();
        for r in client.put_records("pages", &entries).unwrap() {
            written.push(r.unwrap().sequence_number);
        }
    }
    for limit in [1u32, 3, 7, 10, 25, 100, 10_000] {
        let mut iterator = client
            .get_shard_iterator("pages", 0, StartPosition::TrimHorizon)
            .unwrap();
        let mut pages = Vec::new();
        let mut read = Vec::new();
        loop {
            let got = client.get_records(&iterator, Some(limit)).unwrap();
            if got.records.is_empty() {
                assert_eq!(got.next_offset, 25, "limit {limit}");
                break;
            }
            assert_eq!(
                got.next_offset,
                got.records.last().unwrap().position().1 + 1,
                "limit {limit}"
            );
            pages.push(got.records.len());
            read.extend(seqs(&got.records));
            iterator = got.next_iterator.unwrap();
        }
        assert_eq!(read, written, "limit {limit}");
        // Full pages of `limit` records, then the rest.
        let full = 25 / limit as usize;
        let mut expected = vec![limit as usize; full];
        if 25 % limit as usize != 0 {
            expected.push(25 % limit as usize);
        }
        assert_eq!(pages, expected, "limit {limit}");
    }
}

/// Reads subscription events until `count` records arrived.
fn recv_records(sub: &mut riffle_client::Subscription, count: usize) -> Vec<Record> {
    let mut out = Vec::new();
    while out.len() < count {
        let event = sub
            .recv_timeout(STEP)
            .unwrap()
            .unwrap_or_else(|| panic!("no push within {STEP:?} ({} of {count})", out.len()));
        assert!(!event.end, "the subscription ended early");
        assert!(!event.records.is_empty(), "pushes are never empty");
        assert_eq!(
            event.next_offset,
            event.records.last().unwrap().position().1 + 1
        );
        out.extend(event.records);
    }
    assert_eq!(out.len(), count, "no more records than written");
    out
}

#[test]
fn subscriptions_push_the_backlog_then_live_records() {
    let (_dir, server, client) = setup();
    client.create_stream("live", 2).unwrap();
    let backlog = put_into(&client, "live", 1, "backlog", 10);
    // Subscriptions get a client of their own (see `Subscription`).
    let subscriber = connect(&server);
    let mut from_start = subscriber
        .subscribe("live", 1, StartPosition::TrimHorizon)
        .unwrap();
    let mut from_latest = subscriber
        .subscribe("live", 1, StartPosition::Latest)
        .unwrap();
    let mut from_middle = subscriber
        .subscribe(
            "live",
            1,
            StartPosition::AfterSequenceNumber(backlog[6].sequence_number),
        )
        .unwrap();
    let got = recv_records(&mut from_start, 10);
    assert_eq!(
        seqs(&got),
        backlog
            .iter()
            .map(|p| p.sequence_number)
            .collect::<Vec<_>>()
    );
    assert_eq!(datas(&recv_records(&mut from_middle, 3)), datas(&got[7..]));
    // Live: each record is pushed to every subscriber as it commits.
    let hash_key = key_of_shard(&client, "live", 1);
    for i in 0..5 {
        let data = format!("live-{i}");
        let put = client
            .put_record("live", "k", Some(hash_key), data.as_bytes())
            .unwrap();
        for sub in [&mut from_start, &mut from_latest, &mut from_middle] {
            let r = recv_records(sub, 1);
            assert_eq!(r[0].sequence_number, put.sequence_number);
            assert_eq!(r[0].data, data.as_bytes());
        }
    }
    // A record in shard 0 is not theirs: `from_middle`'s next push below is
    // the next record of shard 1.
    put_into(&client, "live", 0, "elsewhere", 1);
    let ids = [from_start.id(), from_latest.id(), from_middle.id()];
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    from_start.unsubscribe().unwrap();
    from_latest.unsubscribe().unwrap();
    // The connection carries on after unsubscribing; the last one still gets pushes.
    subscriber.ping().unwrap();
    let put = put_into(&client, "live", 1, "after", 1)[0];
    assert_eq!(
        recv_records(&mut from_middle, 1)[0].sequence_number,
        put.sequence_number
    );
    drop(from_middle);
    subscriber.ping().unwrap();
}

#[test]
fn server_shutdown_ends_a_subscription_with_its_end_frame() {
    let (_dir, mut server, client) = setup();
    client.create_stream("bye", 1).unwrap();
    let puts = put_into(&client, "bye", 0, "r", 3);
    let mut sub = client
        .subscribe("bye", 0, StartPosition::TrimHorizon)
        .unwrap();
    assert_eq!(
        recv_records(&mut sub, 3)[2].sequence_number,
        puts[2].sequence_number
    );
    let (status, logs) = server.terminate();
    assert!(status.success(), "{logs}");
    let end = sub.recv_timeout(STEP).unwrap().expect("the END push");
    assert!(end.end && end.records.is_empty(), "{end:?}");
    assert_eq!(end.next_offset, 3, "where it would have continued");
    assert_eq!(
        end.continuation(),
        StartPosition::AtSequenceNumber(seqno::encode(0, 3))
    );
    assert!(sub.is_ended());
    assert!(matches!(sub.recv(), Err(ClientError::Closed)));
}

#[test]
fn deleting_the_stream_ends_a_subscription_with_an_error() {
    let (_dir, server, client) = setup();
    client.create_stream("doomed", 1).unwrap();
    let subscriber = connect(&server);
    let mut sub = subscriber
        .subscribe("doomed", 0, StartPosition::TrimHorizon)
        .unwrap();
    let put = put_into(&client, "doomed", 0, "r", 1)[0];
    assert_eq!(
        recv_records(&mut sub, 1)[0].sequence_number,
        put.sequence_number
    );
    client.delete_stream("doomed").unwrap();
    assert_eq!(
        server_code(sub.recv_timeout(STEP)),
        ErrorCode::ResourceNotFound
    );
    assert!(sub.is_ended());
    assert!(matches!(sub.recv(), Err(ClientError::Closed)));
    // Only that subscription ended; the connection goes on.
    subscriber.ping().unwrap();
}

// ---------------------------------------------------------------------------
// Async client
// ---------------------------------------------------------------------------

/// A TCP socket as a futures-io stream without a runtime: a thread reads the
/// socket into a buffer and wakes the task waiting for bytes (an event, no
/// polling); writes go straight to the socket (blocking, which the loopback
/// socket buffers absorb).
struct ThreadedSocket {
    socket: TcpStream,
    inbox: Arc<Mutex<Inbox>>,
}

#[derive(Default)]
struct Inbox {
    bytes: VecDeque<u8>,
    /// The read side ended: `Ok` at EOF, or the read error's text.
    closed: Option<Result<(), String>>,
    waker: Option<Waker>,
}

impl ThreadedSocket {
    fn connect(server: &Server) -> ThreadedSocket {
        let socket = TcpStream::connect(server.addr).unwrap();
        socket.set_nodelay(true).unwrap();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let (mut reader, to) = (socket.try_clone().unwrap(), inbox.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let r = reader.read(&mut buf);
                let mut inbox = to.lock().unwrap();
                match r {
                    Ok(0) => inbox.closed = Some(Ok(())),
                    Ok(n) => inbox.bytes.extend(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => inbox.closed = Some(Err(e.to_string())),
                }
                if let Some(w) = inbox.waker.take() {
                    w.wake();
                }
                if inbox.closed.is_some() {
                    return;
                }
            }
        });
        ThreadedSocket { socket, inbox }
    }
}

impl Drop for ThreadedSocket {
    fn drop(&mut self) {
        // Ends the reader thread.
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

impl AsyncRead for ThreadedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut inbox = self.inbox.lock().unwrap();
        if !inbox.bytes.is_empty() {
            let n = buf.len().min(inbox.bytes.len());
            for (dst, src) in buf.iter_mut().zip(inbox.bytes.drain(..n)) {
                *dst = src;
            }
            return Poll::Ready(Ok(n));
        }
        match &inbox.closed {
            Some(Ok(())) => Poll::Ready(Ok(0)),
            Some(Err(e)) => Poll::Ready(Err(std::io::Error::other(e.clone()))),
            None => {
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for ThreadedSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.socket.write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.socket.shutdown(Shutdown::Write))
    }
}

type Async = AsyncClient<ThreadedSocket>;

fn async_client(server: &Server) -> Async {
    AsyncClient::new(
        ThreadedSocket::connect(server),
        AsyncClientConfig::default(),
    )
}

type Call<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs futures concurrently on the current task; outputs in input order.
async fn join_all<T>(futures: Vec<Call<'_, T>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot
                && let Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *out = Some(v);
                *slot = None;
            }
        }
        if futures.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

async fn async_read_shard(client: &Async, stream: &str, shard: u32) -> Vec<Record> {
    let mut iterator = client
        .get_shard_iterator(stream, shard, StartPosition::TrimHorizon)
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let got = client.get_records(&iterator, Some(7)).await.unwrap();
        if got.records.is_empty() {
            return out;
        }
        out.extend(got.records);
        iterator = got.next_iterator.unwrap();
    }
}

#[test]
fn async_client_runs_every_operation_with_concurrent_calls_on_one_connection() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let client = async_client(&server);
    block_on(async {
        client.ping().await.unwrap();
        client.create_stream("async", 4).await.unwrap();
        assert_eq!(
            server_code(client.create_stream("async", 4).await),
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            server_code(client.describe_stream("nope").await),
            ErrorCode::ResourceNotFound
        );
        assert_eq!(client.list_streams().await.unwrap(), ["async"]);
        let shards = client.list_shards("async").await.unwrap();
        assert_eq!(
            client.describe_stream("async").await.unwrap().shards,
            shards
        );
        let table = RoutingTable::new(1, &shards).unwrap();

        // 60 PutRecord and 4 PutRecords calls, a ping, a describe and a
        // refused call, all in flight on the one connection at once.
        let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
        let batches: Vec<Vec<Vec<u8>>> = (0..4)
            .map(|b| {
                (0..25)
                    .map(|i| format!("batch{b}-{i}").into_bytes())
                    .collect()
            })
            .collect();
        let mut calls: Vec<Call<'_, Vec<Result<Put, ClientError>>>> = Vec::new();
        for key in &keys {
            let c = &client;
            calls.push(Box::pin(async move {
                vec![c.put_record("async", key, None, key.as_bytes()).await]
            }));
        }
        for (b, payloads) in batches.iter().enumerate() {
            let (c, shards) = (&client, &shards);
            calls.push(Box::pin(async move {
                let entries: Vec<_> = payloads
                    .iter()
                    .enumerate()
                    .map(|(i, d)| PutRecordsEntry {
                        partition_key: "batch",
                        explicit_hash_key: Some(shards[(b + i) % 4].hash_key_start),
                        data: d,
                    })
                    .collect();
                c.put_records("async", &entries)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.map_err(ClientError::Server))
                    .collect()
            }));
        }
        let c = &client;
        calls.push(Box::pin(async move {
            c.ping().await.unwrap();
            assert_eq!(c.describe_stream("async").await.unwrap().shards.len(), 4);
            assert_eq!(
                server_code(
                    c.get_shard_iterator("async", 9, StartPosition::Latest)
                        .await
                ),
                ErrorCode::ResourceNotFound
            );
            vec![]
        }));
        let results = join_all(calls).await;
        let mut by_shard: BTreeMap<u32, Vec<(u128, Vec<u8>)>> = BTreeMap::new();
        for (key, r) in keys.iter().zip(&results) {
            let put = r[0].as_ref().unwrap();
            assert_eq!(put.shard_index, table.shard_for(key, None));
            by_shard
                .entry(put.shard_index)
                .or_default()
                .push((put.sequence_number, key.clone().into_bytes()));
        }
        for (payloads, r) in batches.iter().zip(&results[60..64]) {
            for (d, put) in payloads.iter().zip(r) {
                let put = put.as_ref().unwrap();
                by_shard
                    .entry(put.shard_index)
                    .or_default()
                    .push((put.sequence_number, d.clone()));
            }
        }
        // Every record is where its reply said, and nothing else is there.
        for shard in 0..4 {
            let mut expected = by_shard.remove(&shard).unwrap_or_default();
            expected.sort();
            let got: Vec<_> = async_read_shard(&client, "async", shard)
                .await
                .into_iter()
                .map(|r| (r.sequence_number, r.data))
                .collect();
            assert_eq!(got, expected, "shard {shard}");
        }

        // A subscription: its backlog, then a record put concurrently by a call
        // on the same connection.
        let backlog = async_read_shard(&client, "async", 2).await;
        let mut sub = client
            .subscribe("async", 2, StartPosition::TrimHorizon)
            .await
            .unwrap();
        let mut pushed = Vec::new();
        while pushed.len() < backlog.len() {
            let event = sub.next().await.unwrap().unwrap();
            assert!(!event.end);
            pushed.extend(event.records);
        }
        assert_eq!(pushed, backlog);
        let (put, event) = future::zip(
            client.put_record("async", "k", Some(shards[2].hash_key_end), b"live"),
            sub.next(),
        )
        .await;
        let event = event.unwrap().unwrap();
        assert_eq!(event.records.len(), 1);
        assert_eq!(
            event.records[0].sequence_number,
            put.unwrap().sequence_number
        );
        assert_eq!(event.records[0].data, b"live");
        sub.unsubscribe().await.unwrap();

        client.delete_stream("async").await.unwrap();
        assert_eq!(client.list_streams().await.unwrap(), Vec::<String>::new());
    });
    assert_eq!(client.failure(), None);
}

/// A call whose request reached the server, which then dies, fails with
/// ConnectionLost (outcome unknown) instead of hanging; later calls fail too.
#[test]
fn async_calls_in_flight_when_the_server_dies_report_connection_lost() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let client = async_client(&server);
    block_on(client.create_stream("s", 1)).unwrap();
    // Stopped, the server accepts bytes into its socket but never answers.
    server.stop();
    let mut put = std::pin::pin!(client.put_record("s", "k", None, b"lost"));
    // One poll writes the whole request and leaves the call waiting.
    assert!(block_on(future::poll_once(&mut put)).is_none());
    server.kill9();
    match block_on(put) {
        Err(
            e @ ClientError::ConnectionLost {
                request_sent: true, ..
            },
        ) => {
            assert!(e.is_outcome_unknown());
            assert!(!e.is_retryable());
        }
        other => panic!("expected ConnectionLost with the request sent: {other:?}"),
    }
    assert!(client.failure().is_some());
    assert!(matches!(
        block_on(client.ping()),
        Err(ClientError::ConnectionLost {
            request_sent: false,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------

#[test]
fn producer_reports_every_record_and_keeps_each_keys_order() {
    let (_dir, _server, client) = setup();
    client.create_stream("produced", 8).unwrap();
    let table = client.routing_table("produced").unwrap();
    let producer = Producer::new(
        client.clone(),
        "produced",
        ProducerConfig {
            batch_records_max: 100,
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    const RECORDS: usize = 3000;
    const KEYS: usize = 64;
    let mut sent = Vec::with_capacity(RECORDS);
    let mut next_of_key = vec![0usize; KEYS];
    for i in 0..RECORDS {
        let k = (i * 7 + i / 13) % KEYS;
        let key = format!("key-{k}");
        let data = format!("{key}/{}", next_of_key[k]);
        next_of_key[k] += 1;
        let handle = producer.send(&key, None, data.clone()).unwrap();
        sent.push((key, data, handle));
    }
    producer.flush().unwrap();
    // After flush every record has its result.
    let mut at: HashMap<u128, (String, String)> = HashMap::new();
    for (key, data, handle) in &sent {
        let put = handle
            .try_result()
            .expect("flush waits for every record")
            .unwrap();
        assert_eq!(put.shard_index, table.shard_for(key, None));
        let clash = at.insert(put.sequence_number, (key.clone(), data.clone()));
        assert!(clash.is_none(), "two records at {}", put.sequence_number);
    }
    producer.close().unwrap();

    let mut per_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut read = 0;
    for shard in 0..8 {
        for r in read_shard(&client, "produced", shard) {
            let (key, data) = &at[&r.sequence_number];
            assert_eq!(
                (&r.partition_key, r.data.as_slice()),
                (key, data.as_bytes())
            );
            let n = data.rsplit('/').next().unwrap().parse().unwrap();
            per_key.entry(key.clone()).or_default().push(n);
            read += 1;
        }
    }
    assert_eq!(read, RECORDS, "nothing lost, nothing stored twice");
    for (k, ns) in per_key {
        assert_eq!(ns, (0..ns.len()).collect::<Vec<_>>(), "{k} is out of order");
    }
}

#[test]
fn producer_flush_close_and_drop_send_what_is_queued() {
    let (_dir, _server, client) = setup();
    client.create_stream("linger", 2).unwrap();
    // A linger longer than the test: only flush, close and drop send anything.
    let lazy = ProducerConfig {
        linger: Duration::from_secs(600),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), "linger", lazy.clone()).unwrap();
    let send = |p: &Producer, data: &str| p.send(data, None, data).unwrap();
    let flushed: Vec<_> = ["a", "b", "c"].iter().map(|d| send(&producer, d)).collect();
    assert!(
        flushed.iter().all(|h| h.try_result().is_none()),
        "still lingering"
    );
    let start = Instant::now();
    producer.flush().unwrap();
    assert!(start.elapsed() < STEP);
    let closed: Vec<_> = ["d", "e"].iter().map(|d| send(&producer, d)).collect();
    producer.close().unwrap();
    let dropped_producer = Producer::new(client.clone(), "linger", lazy).unwrap();
    let dropped = send(&dropped_producer, "f");
    drop(dropped_producer);

    let mut at = BTreeMap::new();
    for (data, handle) in ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .zip(flushed.into_iter().chain(closed).chain([dropped]))
    {
        let put = handle.wait().unwrap();
        at.insert(put.sequence_number, data.as_bytes().to_vec());
    }
    let mut stored = BTreeMap::new();
    for shard in 0..2 {
        for r in read_shard(&client, "linger", shard) {
            stored.insert(r.sequence_number, r.data);
        }
    }
    assert_eq!(stored, at);
}

// ---------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------

fn consumer_config(follow: bool) -> ConsumerConfig {
    ConsumerConfig {
        follow,
        poll_interval: Duration::from_millis(5),
        ..ConsumerConfig::default()
    }
}

/// Takes `count` records from a consumer.
fn take(consumer: &mut Consumer, count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| {
            consumer
                .next_record(STEP)
                .unwrap()
                .unwrap_or_else(|| panic!("record {i} of {count} did not come within {STEP:?}"))
        })
        .collect()
}

#[test]
fn consumer_reads_from_every_start_position_then_follows_the_tip() {
    let (_dir, _server, client) = setup();
    type Start = fn(&[Record]) -> (StartPosition, usize);
    let cases: [(&str, Start); 6] = [
        ("TRIM_HORIZON", |_| (StartPosition::TrimHorizon, 0)),
        ("LATEST", |r| (StartPosition::Latest, r.len())),
        ("AT_SEQUENCE_NUMBER", |r| {
            (StartPosition::AtSequenceNumber(r[3].sequence_number), 3)
        }),
        ("AFTER_SEQUENCE_NUMBER", |r| {
            (StartPosition::AfterSequenceNumber(r[3].sequence_number), 4)
        }),
        ("AFTER_SEQUENCE_NUMBER last", |r| {
            (StartPosition::AfterSequenceNumber(r[9].sequence_number), 10)
        }),
        ("AT_TIMESTAMP", |r| {
            let t = r[6].arrival_ms;
            (
                StartPosition::AtTimestamp(t),
                r.iter().position(|x| x.arrival_ms >= t).unwrap(),
            )
        }),
    ];
    for (i, (what, start)) in cases.iter().enumerate() {
        for follow in [true, false] {
            let stream = format!("c{i}-{follow}");
            client.create_stream(&stream, 2).unwrap();
            put_into(&client, &stream, 1, "old", 10);
            let written = read_shard(&client, &stream, 1);
            let (position, first) = start(&written);
            let mut consumer = Consumer::new(
                client.clone(),
                &stream,
                1,
                position,
                consumer_config(follow),
            );
            let got = take(&mut consumer, written.len() - first);
            assert_eq!(got, written[first..], "{what}, follow {follow}");
            // Nothing else is there; the next record is the next one written.
            assert_eq!(consumer.next_record(Duration::ZERO).unwrap(), None);
            let new = put_into(&client, &stream, 1, "new", 2);
            let got = take(&mut consumer, 2);
            assert_eq!(
                seqs(&got),
                new.iter().map(|p| p.sequence_number).collect::<Vec<_>>(),
                "{what}, follow {follow}"
            );
            assert_eq!(consumer.is_following(), follow, "{what}");
            assert_eq!(
                consumer.last_sequence_number(),
                Some(new[1].sequence_number)
            );
            assert!(!consumer.is_ended());
        }
    }
}

/// One consumer per shard follows the tip while a producer writes: each sees
/// exactly the records the producer stored in its shard, in order.
#[test]
fn consumers_follow_the_tip_while_a_producer_writes() {
    let (_dir, server, client) = setup();
    client.create_stream("tip", 2).unwrap();
    let end_keys: Vec<u128> = (0..2).map(|s| key_of_shard(&client, "tip", s)).collect();
    let consumers: Vec<_> = (0..2)
        .map(|shard| {
            let mut consumer = Consumer::new(
                connect(&server),
                "tip",
                shard,
                StartPosition::TrimHorizon,
                consumer_config(true),
            );
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut followed = false;
                loop {
                    let r = consumer
                        .next_record(STEP)
                        .unwrap()
                        .expect("records keep coming");
                    followed |= consumer.is_following();
                    if r.data == b"end" {
                        return (got, followed);
                    }
                    got.push(r);
                }
            })
        })
        .collect();
    let producer = Producer::new(client.clone(), "tip", ProducerConfig::default()).unwrap();
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let key = format!("k{}", i % 17);
            producer.send(&key, None, format!("{key}/{i}")).unwrap()
        })
        .collect();
    producer.flush().unwrap();
    for (shard, &hash_key) in end_keys.iter().enumerate() {
        let end = producer.send("end", Some(hash_key), "end").unwrap();
        assert_eq!(end.wait().unwrap().shard_index, shard as u32);
    }
    producer.close().unwrap();
    let mut expected: BTreeMap<u32, Vec<u128>> = BTreeMap::new();
    for h in handles {
        let put = h.wait().unwrap();
        expected
            .entry(put.shard_index)
            .or_default()
            .push(put.sequence_number);
    }
    for (shard, consumer) in consumers.into_iter().enumerate() {
        let (got, followed) = consumer.join().unwrap();
        let mut want = expected.remove(&(shard as u32)).unwrap();
        want.sort();
        assert_eq!(seqs(&got), want, "shard {shard}");
        assert!(followed, "shard {shard} was read through a subscription");
    }
}

/// Takes `count` records from a consumer across a server restart.
fn take_across_restart(consumer: &mut Consumer, count: usize) -> Vec<Record> {
    // The server keeps its iterator secret in the data directory, so the
    // consumer's iterator stays valid across the restart: no error to absorb.
    let mut out = Vec::new();
    while out.len() < count {
        match consumer.next_record(STEP) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => panic!(
                "record {} of {count} did not come within {STEP:?}",
                out.len()
            ),
            Err(e) => panic!("the consumer failed: {e}"),
        }
    }
    out
}

/// A consumer keeps going across graceful restarts of the server, whether it
/// is catching up or following the tip: every record once, in order.
#[test]
fn a_consumer_resumes_after_a_server_restart_without_loss_or_duplicates() {
    let (_dir, mut server, client) = setup();
    client.create_stream("resume", 1).unwrap();
    let mut written = put_into(&client, "resume", 0, "before", 40);
    let mut consumer = Consumer::new(
        connect(&server),
        "resume",
        0,
        StartPosition::TrimHorizon,
        ConsumerConfig {
            // Small reads: after 12 records it has read 15 and holds an
            // iterator for the 16th.
            get_records_limit: Some(5),
            ..consumer_config(true)
        },
    );
    // Restart 1: in the middle of catching up.
    let mut got = take(&mut consumer, 12);
    let (status, logs) = server.terminate();
    assert!(status.success(), "{logs}");
    server.restart();
    got.extend(take_across_restart(&mut consumer, 28));
    // Restart 2: following the tip, the consumer waiting for records (in
    // another thread) while the server is down and comes back.
    assert_eq!(consumer.next_record(Duration::ZERO).unwrap(), None);
    assert!(consumer.is_following());
    let (status, logs) = server.terminate();
    assert!(status.success(), "{logs}");
    std::thread::scope(|s| {
        let reader = s.spawn(|| take_across_restart(&mut consumer, 40));
        server.restart();
        written.extend(put_into(&client, "resume", 0, "after", 40));
        got.extend(reader.join().unwrap());
    });
    assert_eq!(
        seqs(&got),
        written
            .iter()
            .map(|p| p.sequence_number)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        datas(&got),
        datas(&read_shard(&client, "resume", 0)),
        "the bytes too"
    );
    // And nothing more: the next record is the next one written.
    let last = put_into(&client, "resume", 0, "last", 1)[0];
    assert_eq!(
        take(&mut consumer, 1)[0].sequence_number,
        last.sequence_number
    );
}

// ---------------------------------------------------------------------------
// Reconnect
// ---------------------------------------------------------------------------

#[test]
fn an_idle_client_reconnects_after_the_server_is_killed_and_restarted() {
    let (_dir, mut server, client) = setup();
    client.create_stream("k", 2).unwrap();
    let before = put_into(&client, "k", 1, "before", 3);
    // One attempt, no backoff: a call while the server is down fails at once,
    // unsent.
    let impatient = Client::connect(
        server.addr,
        ClientConfig {
            reconnect_attempts_max: 1,
            ..config()
        },
    )
    .unwrap();
    server.kill9();
    match impatient.ping() {
        Err(e @ ClientError::Io(_)) => assert!(e.is_retryable() && !e.is_outcome_unknown()),
        other => panic!("expected a connect failure, got {other:?}"),
    }
    // The patient client's next call waits through its backoff while the
    // server comes back.
    let restarted = std::thread::scope(|s| {
        let call = s.spawn(|| client.ping());
        server.restart();
        call.join().unwrap()
    });
    restarted.unwrap();
    impatient.ping().unwrap();
    // Acknowledged records survived the SIGKILL; the stream takes new ones.
    let after = put_into(&client, "k", 1, "after", 2);
    assert_eq!(
        seqs(&read_shard(&client, "k", 1)),
        before
            .iter()
            .chain(&after)
            .map(|p| p.sequence_number)
            .collect::<Vec<_>>()
    );
    assert_eq!(after[0].sequence_number, seqno::encode(1, 3));
}

/// A put whose request reached the server, which then dies before answering,
/// reports ConnectionLost with the request sent (outcome unknown), not a hang
/// and not a silent resend; the client then reconnects.
#[test]
fn a_call_in_flight_when_the_server_is_killed_reports_connection_lost() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let proxy = Proxy::start(server.addr);
    let client = Client::connect(proxy.addr, config()).unwrap();
    client.create_stream("k", 1).unwrap();
    // Stopped, the server takes the request in but never answers it.
    server.stop();
    proxy.drain();
    let outcome = std::thread::scope(|s| {
        let call = s.spawn(|| client.put_record("k", "key", None, b"in flight"));
        proxy.wait_forwarded();
        server.kill9();
        call.join().unwrap()
    });
    match outcome {
        Err(
            e @ ClientError::ConnectionLost {
                request_sent: true, ..
            },
        ) => {
            assert!(e.is_outcome_unknown() && !e.is_retryable());
        }
        other => panic!("expected ConnectionLost with the request sent: {other:?}"),
    }
    server.restart();
    // The stopped server never acted on it; the client reconnects and goes on.
    assert!(read_shard(&client, "k", 0).is_empty());
    let put = client.put_record("k", "key", None, b"next").unwrap();
    assert_eq!(put.sequence_number, seqno::encode(0, 0));
}

/// An idempotent call in flight when the server dies is resent on a new
/// connection once the server is back.
#[test]
fn an_idempotent_call_in_flight_is_resent_after_a_reconnect() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let proxy = Proxy::start(server.addr);
    let client = Client::connect(proxy.addr, config()).unwrap();
    client.create_stream("k", 3).unwrap();
    server.stop();
    proxy.drain();
    let listed = std::thread::scope(|s| {
        let call = s.spawn(|| client.list_shards("k"));
        proxy.wait_forwarded();
        server.kill9();
        server.restart();
        call.join().unwrap()
    });
    assert_eq!(listed.unwrap(), routing_shards(3));
}

/// One request to the server's AWS HTTP API (for what the native protocol does
/// not have, e.g. resharding); panics unless it answers 200.
fn http_ok(server: &Server, op: &str, body: &str) {
    let mut conn = TcpStream::connect(server.http_addr).unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.{op}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{op}: {answer}");
}

#[test]
fn a_subscription_to_a_resharded_shard_ends_after_its_last_record() {
    let (_dir, server, client) = setup();
    client.create_stream("split", 1).unwrap();
    let puts = put_into(&client, "split", 0, "r", 3);
    let subscriber = connect(&server);
    let mut live = subscriber
        .subscribe("split", 0, StartPosition::Latest)
        .unwrap();
    http_ok(
        &server,
        "SplitShard",
        &format!(
            r#"{{"StreamName":"split","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"{}"}}"#,
            1u128 << 127
        ),
    );
    // Subscribed at the tip before the split: nothing more, then the end.
    let end = live.recv_timeout(STEP).unwrap().expect("the END push");
    assert!(end.end && end.records.is_empty(), "{end:?}");
    // From the start after the split: the three records, then the end.
    let mut sub = subscriber
        .subscribe("split", 0, StartPosition::TrimHorizon)
        .unwrap();
    let mut got = Vec::new();
    loop {
        let event = sub.recv_timeout(STEP).unwrap().expect("a push");
        got.extend(event.records.iter().map(|r| r.sequence_number));
        if event.end {
            break;
        }
    }
    assert_eq!(
        got,
        puts.iter().map(|p| p.sequence_number).collect::<Vec<_>>()
    );
    assert!(sub.is_ended());
    // The native client lists the open shards only: the two children.
    let shards = client.list_shards("split").unwrap();
    assert_eq!(
        shards.iter().map(|s| s.shard_index).collect::<Vec<_>>(),
        [1, 2]
    );
    subscriber.ping().unwrap();
}

/// Every record of shard `shard` (open or closed) from TRIM_HORIZON to its tip
/// or its end.
fn read_to_end(client: &Client, stream: &str, shard: u32) -> Vec<Record> {
    let mut iterator = client
        .get_shard_iterator(stream, shard, StartPosition::TrimHorizon)
        .unwrap();
    let mut out = Vec::new();
    loop {
        let got = client.get_records(&iterator, None).unwrap();
        let empty = got.records.is_empty();
        out.extend(got.records);
        match got.next_iterator {
            Some(next) if !empty => iterator = next,
            _ => return out,
        }
    }
}

#[test]
fn the_producer_routes_around_resharding_losing_and_reordering_nothing() {
    let (_dir, server, client) = setup();
    client.create_stream("moving", 2).unwrap();
    let producer = Arc::new(
        Producer::new(
            client.clone(),
            "moving",
            ProducerConfig {
                linger: Duration::from_millis(2),
                ..ProducerConfig::default()
            },
        )
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (producer, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut handles = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 50 {
                for k in 0..16 {
                    let data = format!("key-{k}:{n}");
                    handles.push(producer.send(&format!("key-{k}"), None, data).unwrap());
                }
                n += 1;
                if n.is_multiple_of(10) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            producer.flush().unwrap();
            (n, handles)
        })
    };
    // Split shard 0, then scale the three open shards down to two.
    http_ok(
        &server,
        "SplitShard",
        &format!(
            r#"{{"StreamName":"moving","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"{}"}}"#,
            1u128 << 126
        ),
    );
    http_ok(
        &server,
        "UpdateShardCount",
        r#"{"StreamName":"moving","TargetShardCount":2,"ScalingType":"UNIFORM_SCALING"}"#,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (rounds, handles) = sender.join().unwrap();
    for h in handles {
        h.wait().expect("no record fails across resharding");
    }
    // Every shard ever made, in index order: a key's records are in order when
    // taken shard by shard (children have higher indexes than their parents).
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut shard = 0;
    while client
        .get_shard_iterator("moving", shard, StartPosition::TrimHorizon)
        .is_ok()
    {
        for r in read_to_end(&client, "moving", shard) {
            let text = String::from_utf8(r.data).unwrap();
            let (key, n) = text.split_once(':').unwrap();
            per_key
                .entry(key.to_owned())
                .or_default()
                .push(n.parse().unwrap());
        }
        shard += 1;
    }
    assert!(shard > 4, "the stream was resharded ({shard} shards)");
    assert_eq!(per_key.len(), 16);
    for (key, got) in per_key {
        assert_eq!(
            got,
            (0..rounds).collect::<Vec<_>>(),
            "{key}: each record once, in order"
        );
    }
}
