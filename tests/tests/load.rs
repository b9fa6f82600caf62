//! Concurrency on the real binary: pipelined requests across shards owned by
//! different cores with out-of-order replies, a thousand connections producing
//! and consuming at once, and a subscriber that never reads, all with bounded
//! server memory.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use riffle_protocol::native::{
    Reply, Request, Response, ShardBatch, StartPosition, encode_request,
};
use riffle_protocol::{BatchBuilder, RecordIn};
use riffle_tests::{RawConn, Server, data_dir, read_shard, reply};

fn batch(key: &str, data: &[u8]) -> rkyv::util::AlignedVec<16> {
    BatchBuilder::new().encode(&[RecordIn {
        partition_key: key,
        explicit_hash_key: None,
        data,
        arrival_ms: 0,
    }])
}

fn create(conn: &mut RawConn, stream: &str, shard_count: u32) {
    let frame = conn.call(
        1,
        &Request::CreateStream {
            stream,
            shard_count,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
}

/// Lets this process (and the server it starts) open a few thousand sockets.
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn pipelined_requests_across_cores_complete_out_of_order() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    const SHARDS: u32 = 8;
    create(&mut conn, "p", SHARDS);

    // 400 requests written back to back, none read: PutRecords to every shard
    // (shards live on both cores), each followed by a Ping that needs no disk.
    let mut out = Vec::new();
    let mut expected: HashMap<u64, (u32, Vec<u8>)> = HashMap::new();
    let mut pings = HashSet::new();
    let batches: Vec<_> = (0..200u32)
        .map(|i| batch(&format!("k{i}"), format!("record {i}").as_bytes()))
        .collect();
    for (i, b) in batches.iter().enumerate() {
        let id = 100 + 2 * i as u64;
        let shard_index = i as u32 % SHARDS;
        encode_request(
            &mut out,
            id,
            &Request::PutRecords {
                stream: "p",
                stream_id: 0,
                batches: vec![ShardBatch {
                    shard_index,
                    batch: b,
                }],
            },
        );
        expected.insert(id, (shard_index, format!("record {i}").into_bytes()));
        encode_request(&mut out, id + 1, &Request::Ping { nonce: id + 1 });
        pings.insert(id + 1);
    }
    conn.stream.write_all(&out).unwrap();

    let mut order = Vec::new();
    let mut acked: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
    for _ in 0..400 {
        let (id, frame) = conn.recv().expect("every request is answered");
        order.push(id);
        match reply(&frame) {
            Reply::Response(Response::Pong { nonce }) => {
                assert_eq!(nonce, id);
                assert!(pings.remove(&id), "one pong per ping");
            }
            Reply::Response(Response::PutBatches(results)) => {
                let (shard, data) = expected.remove(&id).expect("one reply per put");
                assert_eq!(results.len(), 1);
                assert_eq!(results[0].shard_index, shard);
                let (offset, count) = results[0].outcome.clone().expect("put succeeded");
                assert_eq!(count, 1);
                acked.insert((shard, offset), data);
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(expected.is_empty() && pings.is_empty());
    let in_order: Vec<u64> = {
        let mut o = order.clone();
        o.sort();
        o
    };
    assert_ne!(
        order, in_order,
        "pings (no I/O) overtake fsync-bound puts sent before them"
    );
    // Everything acknowledged is where its reply said, byte-identical.
    let mut read = 0;
    for shard in 0..SHARDS {
        for (offset, _, data) in read_shard(&mut conn, "p", shard) {
            assert_eq!(acked.get(&(shard, offset)), Some(&data));
            read += 1;
        }
    }
    assert_eq!(read, 200);
}

#[test]
fn a_thousand_connections_produce_and_consume_with_bounded_memory() {
    raise_fd_limit();
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let mut admin = RawConn::connect(server.addr);
    const SHARDS: u32 = 16;
    create(&mut admin, "many", SHARDS);
    let rss_idle = server.rss_bytes();

    const THREADS: usize = 20;
    const CONNS_PER_THREAD: usize = 50;
    const PUTS_PER_CONN: u64 = 4;
    let addr = server.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut conns: Vec<RawConn> = (0..CONNS_PER_THREAD)
                    .map(|_| RawConn::connect(addr))
                    .collect();
                // Every connection pipelines its puts, then reads the acks.
                for (c, conn) in conns.iter_mut().enumerate() {
                    let mut out = Vec::new();
                    for n in 0..PUTS_PER_CONN {
                        let data = format!("t{t}-c{c}-n{n}");
                        let b = batch(&data, &[7u8; 512]);
                        encode_request(
                            &mut out,
                            n,
                            &Request::PutRecord {
                                stream: "many",
                                batch: &b,
                            },
                        );
                    }
                    conn.stream.write_all(&out).unwrap();
                }
                let mut acked = 0;
                for conn in conns.iter_mut() {
                    for _ in 0..PUTS_PER_CONN {
                        let (_, frame) = conn.recv().expect("ack");
                        assert!(matches!(
                            reply(&frame),
                            Reply::Response(Response::Put { .. })
                        ));
                        acked += 1;
                    }
                }
                // And every connection consumes: a shard from the trim horizon.
                for (c, conn) in conns.iter_mut().enumerate() {
                    let shard_index = (t * CONNS_PER_THREAD + c) as u32 % SHARDS;
                    let frame = conn.call(
                        1000,
                        &Request::GetShardIterator {
                            stream: "many",
                            shard_index,
                            position: StartPosition::TrimHorizon,
                        },
                    );
                    let Reply::Response(Response::Iterator(it)) = reply(&frame) else {
                        panic!("iterator: {:?}", reply(&frame));
                    };
                    let it = it.to_string();
                    let frame = conn.call(
                        1001,
                        &Request::GetRecords {
                            iterator: &it,
                            limit: 100,
                        },
                    );
                    assert!(matches!(
                        reply(&frame),
                        Reply::Response(Response::Records(_))
                    ));
                }
                (acked, conns)
            })
        })
        .collect();
    let mut total = 0;
    let mut all_conns = Vec::new();
    for t in threads {
        let (acked, conns) = t.join().expect("client thread");
        total += acked;
        all_conns.extend(conns);
    }
    assert_eq!(total, THREADS * CONNS_PER_THREAD * PUTS_PER_CONN as usize);
    // All 1,000 connections are still open and served.
    assert_eq!(all_conns.len(), 1000);
    for (i, conn) in all_conns.iter_mut().enumerate().step_by(97) {
        let frame = conn.call(5000 + i as u64, &Request::Ping { nonce: 9 });
        assert_eq!(reply(&frame), Reply::Response(Response::Pong { nonce: 9 }));
    }
    let rss_loaded = server.rss_bytes();
    eprintln!(
        "server RSS: idle {} MiB, with 1,000 connections {} MiB",
        rss_idle >> 20,
        rss_loaded >> 20
    );
    assert!(
        rss_loaded < rss_idle + (256 << 20),
        "1,000 connections cost {} MiB",
        (rss_loaded - rss_idle) >> 20
    );
    let stored: usize = (0..SHARDS)
        .map(|s| read_shard(&mut admin, "many", s).len())
        .sum();
    assert_eq!(stored, total);
}

#[test]
fn a_subscriber_that_never_reads_does_not_grow_server_memory() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2", "--durability", "none"]);
    let mut admin = RawConn::connect(server.addr);
    create(&mut admin, "slow", 1);
    let mut sleepy = RawConn::connect(server.addr);
    sleepy
        .stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let frame = sleepy.call(
        1,
        &Request::Subscribe {
            stream: "slow",
            shard_index: 0,
            position: StartPosition::TrimHorizon,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    let rss_start = server.rss_bytes();
    // 200 MiB of records go into the shard while the subscriber reads nothing.
    let data = vec![0x5au8; 256 * 1024];
    let mut puts = 0;
    for n in 0..800u64 {
        let b = batch("k", &data);
        let frame = admin.call(
            10 + n,
            &Request::PutRecord {
                stream: "slow",
                batch: &b,
            },
        );
        assert!(matches!(
            reply(&frame),
            Reply::Response(Response::Put { .. })
        ));
        puts += 1;
    }
    let rss_end = server.rss_bytes();
    eprintln!(
        "server RSS: {} MiB before, {} MiB after {puts} x 256 KiB with a stalled subscriber",
        rss_start >> 20,
        rss_end >> 20
    );
    assert!(
        rss_end < rss_start + (100 << 20),
        "a stalled subscriber grew the server by {} MiB",
        (rss_end - rss_start) >> 20
    );
    // The subscriber then gets every record, in order, when it finally reads.
    let mut next_offset = 0;
    while next_offset < puts {
        let (id, frame) = sleepy.recv().expect("push");
        assert_eq!(id, 1);
        let Reply::Push { records, end } = reply(&frame) else {
            panic!("{:?}", reply(&frame));
        };
        assert!(!end);
        for span in &records.spans {
            let view = riffle_protocol::batch::verify(span.batch).unwrap();
            assert_eq!(view.header.base_offset + span.skip as u64, next_offset);
            next_offset += span.take as u64;
        }
        assert_eq!(records.next_offset, next_offset);
    }
    assert_eq!(next_offset, puts);
}

#[test]
fn unsubscribe_is_answered_and_the_subscription_ends_with_end() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    create(&mut conn, "u", 1);
    let b = batch("k", b"one");
    let frame = conn.call(
        2,
        &Request::PutRecord {
            stream: "u",
            batch: &b,
        },
    );
    assert!(matches!(
        reply(&frame),
        Reply::Response(Response::Put { .. })
    ));
    let frame = conn.call(
        7,
        &Request::Subscribe {
            stream: "u",
            shard_index: 0,
            position: StartPosition::TrimHorizon,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    let (id, frame) = conn.recv().unwrap();
    assert_eq!(id, 7);
    let Reply::Push { records, end } = reply(&frame) else {
        panic!("{:?}", reply(&frame));
    };
    assert!(!end);
    assert_eq!(records.next_offset, 1);
    // A second Subscribe with the same id while it is open is refused.
    let frame = conn.call(
        7,
        &Request::Subscribe {
            stream: "u",
            shard_index: 0,
            position: StartPosition::Latest,
        },
    );
    assert!(
        matches!(reply(&frame), Reply::Error(e) if e.code == riffle_protocol::ErrorCode::ResourceInUse)
    );
    conn.send(8, &Request::Unsubscribe { subscription_id: 7 });
    // Both the Unsubscribe's answer and the END push arrive (in either order).
    let mut done = false;
    let mut ended = false;
    while !(done && ended) {
        let (id, frame) = conn.recv().unwrap();
        match (id, reply(&frame)) {
            (8, Reply::Response(Response::Done)) => done = true,
            (7, Reply::Push { records, end: true }) => {
                assert_eq!(records.next_offset, 1, "END carries the continuation");
                ended = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let frame = conn.call(9, &Request::Unsubscribe { subscription_id: 7 });
    assert!(
        matches!(reply(&frame), Reply::Error(e) if e.code == riffle_protocol::ErrorCode::ResourceNotFound)
    );
}
