//! Bad input on the native protocol, against the real binary: every kind of
//! broken frame gets an error reply or a closed connection, the server keeps
//! serving everyone else, and records acknowledged before are still there.

use std::io::Write;

use rand::{Rng, SeedableRng, rngs::SmallRng};
use riffle_protocol::native::{
    FRAME_HEADER_SIZE, Reply, Request, Response, ShardBatch, encode_request,
};
use riffle_protocol::{BatchBuilder, ErrorCode, RecordIn};
use riffle_tests::{RawConn, Server, data_dir, read_shard, reply, seed};

fn record(key: &str, data: &[u8]) -> rkyv::util::AlignedVec<16> {
    BatchBuilder::new().encode(&[RecordIn {
        partition_key: key,
        explicit_hash_key: None,
        data,
        arrival_ms: 0,
    }])
}

fn expect_error(frame: &[u8], code: ErrorCode, contains: &str) {
    match reply(frame) {
        Reply::Error(e) => {
            assert_eq!(e.code, code, "{e}");
            assert!(e.message.contains(contains), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

fn ping(conn: &mut RawConn, nonce: u64) {
    let frame = conn.call(nonce, &Request::Ping { nonce });
    assert_eq!(
        reply(&frame),
        Reply::Response(Response::Pong { nonce }),
        "the server still answers"
    );
}

/// Every record's data in shard 0 of `stream`.
fn read_all(conn: &mut RawConn, stream: &str) -> Vec<Vec<u8>> {
    read_shard(conn, stream, 0)
        .into_iter()
        .map(|r| r.2)
        .collect()
}

fn setup() -> (tempfile::TempDir, Server, RawConn) {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    let frame = conn.call(
        1,
        &Request::CreateStream {
            stream: "s",
            shard_count: 1,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    let batch = record("k", b"before");
    let frame = conn.call(
        2,
        &Request::PutRecord {
            stream: "s",
            batch: &batch,
        },
    );
    assert!(matches!(
        reply(&frame),
        Reply::Response(Response::Put { .. })
    ));
    (dir, server, conn)
}

fn valid_frame(request_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, request_id, &Request::Ping { nonce: 5 });
    out
}

#[test]
fn wrong_crc_unknown_api_and_version_get_errors_and_the_connection_goes_on() {
    let (_dir, _server, mut conn) = setup();

    let mut bad_crc = valid_frame(10);
    bad_crc[4] ^= 0xff;
    conn.send_bytes(&bad_crc);
    let (id, frame) = conn.recv().unwrap();
    assert_eq!(id, 10);
    expect_error(&frame, ErrorCode::InvalidArgument, "crc");
    ping(&mut conn, 11);

    let mut unknown = valid_frame(12);
    unknown[8..10].copy_from_slice(&999u16.to_le_bytes());
    let crc = crc32c::crc32c(&unknown[8..]);
    unknown[4..8].copy_from_slice(&crc.to_le_bytes());
    conn.send_bytes(&unknown);
    let (id, frame) = conn.recv().unwrap();
    assert_eq!(id, 12);
    expect_error(&frame, ErrorCode::InvalidArgument, "unknown api key 999");
    ping(&mut conn, 13);

    let mut version = valid_frame(14);
    version[10..12].copy_from_slice(&7u16.to_le_bytes());
    let crc = crc32c::crc32c(&version[8..]);
    version[4..8].copy_from_slice(&crc.to_le_bytes());
    conn.send_bytes(&version);
    let (id, frame) = conn.recv().unwrap();
    assert_eq!(id, 14);
    expect_error(&frame, ErrorCode::InvalidArgument, "version");
    ping(&mut conn, 15);

    assert_eq!(read_all(&mut conn, "s"), vec![b"before".to_vec()]);
}

#[test]
fn an_oversized_length_gets_an_error_then_a_closed_connection() {
    let (_dir, server, mut conn) = setup();
    let mut huge = valid_frame(20);
    huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    conn.send_bytes(&huge);
    let (id, frame) = conn.recv().unwrap();
    assert_eq!(id, 20);
    expect_error(&frame, ErrorCode::InvalidArgument, "frame size");
    assert!(conn.is_closed());

    let mut tiny = valid_frame(21);
    tiny[0..4].copy_from_slice(&3u32.to_le_bytes());
    let mut conn = RawConn::connect(server.addr);
    conn.send_bytes(&tiny);
    let (_, frame) = conn.recv().unwrap();
    expect_error(&frame, ErrorCode::InvalidArgument, "frame size");
    assert!(conn.is_closed());

    let mut other = RawConn::connect(server.addr);
    ping(&mut other, 22);
    assert_eq!(read_all(&mut other, "s"), vec![b"before".to_vec()]);
}

#[test]
fn truncated_frames_and_mid_frame_disconnects_leave_the_server_serving() {
    let (_dir, server, mut conn) = setup();
    let batch = record("k", b"never-acked");
    let mut put = Vec::new();
    encode_request(
        &mut put,
        30,
        &Request::PutRecord {
            stream: "s",
            batch: &batch,
        },
    );
    // Every truncation point of a PutRecord, each on its own connection that
    // then disconnects: nothing half-received is ever appended.
    for cut in (1..put.len()).step_by(7) {
        let mut c = RawConn::connect(server.addr);
        c.send_bytes(&put[..cut]);
        drop(c);
    }
    // One connection stays open mid-frame while others work.
    let mut stalled = RawConn::connect(server.addr);
    stalled.send_bytes(&put[..FRAME_HEADER_SIZE + 3]);
    ping(&mut conn, 31);
    let mut other = RawConn::connect(server.addr);
    ping(&mut other, 32);
    assert_eq!(read_all(&mut other, "s"), vec![b"before".to_vec()]);
    drop(stalled);
    ping(&mut other, 33);
}

#[test]
fn random_bytes_never_break_the_server() {
    let (_dir, server, mut conn) = setup();
    let mut rng = SmallRng::seed_from_u64(seed("random_bytes_never_break_the_server"));
    for round in 0..200 {
        let mut c = RawConn::connect(server.addr);
        let len = rng.random_range(1..4096);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            // A plausible size so the server reads a whole frame and checks it.
            let size = (len as u32).max(FRAME_HEADER_SIZE as u32);
            junk[0..4.min(len)].copy_from_slice(&size.to_le_bytes()[..4.min(len)]);
        }
        // The server may close first (a size out of bounds): writes may fail.
        let _ = c.stream.write_all(&junk);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        // Whatever comes back must be well-formed frames, then EOF.
        while let Some(frame) = c.recv_frame() {
            assert!(matches!(reply(&frame), Reply::Error(_)));
        }
    }
    ping(&mut conn, 40);
    assert_eq!(read_all(&mut conn, "s"), vec![b"before".to_vec()]);
}

#[test]
fn corrupt_batches_are_refused_and_nothing_is_appended() {
    let (_dir, _server, mut conn) = setup();
    // A frame with a valid crc carrying a batch whose own crc is wrong.
    let mut bad = record("k", b"corrupt");
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let frame = conn.call(
        50,
        &Request::PutRecord {
            stream: "s",
            batch: &bad,
        },
    );
    expect_error(&frame, ErrorCode::InvalidArgument, "crc");

    // PutRecords: the good batch lands, the bad one gets its own error.
    let good = record("k", b"good");
    let frame = conn.call(
        51,
        &Request::PutRecords {
            stream: "s",
            stream_id: 0,
            batches: vec![
                ShardBatch {
                    shard_index: 0,
                    batch: &good,
                },
                ShardBatch {
                    shard_index: 0,
                    batch: &bad,
                },
                ShardBatch {
                    shard_index: 7,
                    batch: &good,
                },
            ],
        },
    );
    let Reply::Response(Response::PutBatches(results)) = reply(&frame) else {
        panic!("{:?}", reply(&frame));
    };
    assert!(results[0].outcome.is_ok());
    assert_eq!(
        results[1].outcome.as_ref().unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        results[2].outcome.as_ref().unwrap_err().code,
        ErrorCode::ResourceNotFound
    );

    // Routed for another incarnation of the stream: refused whole, nothing lands.
    let frame = conn.call(
        53,
        &Request::PutRecords {
            stream: "s",
            stream_id: 12345,
            batches: vec![ShardBatch {
                shard_index: 0,
                batch: &good,
            }],
        },
    );
    expect_error(&frame, ErrorCode::ResourceNotFound, "created again");

    // Unknown stream: the whole request fails.
    let frame = conn.call(
        52,
        &Request::PutRecord {
            stream: "nope",
            batch: &good,
        },
    );
    expect_error(&frame, ErrorCode::ResourceNotFound, "nope");
    assert_eq!(
        read_all(&mut conn, "s"),
        vec![b"before".to_vec(), b"good".to_vec()]
    );
}
