//! The blocking client against the scripted server (pipelining, out-of-order
//! replies, timeouts, lost connections, reconnects, protocol violations) and
//! against the fake Kinesis (every operation, routing, partial failure,
//! subscriptions).

mod common;

use std::time::{Duration, Instant};

use common::{Fake, Received, Script, ScriptConn};
use riffle_client::{Client, ClientConfig, ClientError, ErrorCode, PutRecordsEntry, StartPosition};
use riffle_protocol::native::{Records, Request, Response, Span, StreamInfo, encode_response};
use riffle_protocol::{Error, RecordIn};
use riffle_protocol::{routing, seqno};

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(5),
        reconnect_backoff_initial: Duration::from_millis(5),
        reconnect_backoff_max: Duration::from_millis(50),
        ..ClientConfig::default()
    }
}

fn stream_info(name: &str, created_ms: i64) -> Response<'_> {
    Response::Stream(StreamInfo {
        name,
        status: "ACTIVE",
        retention_hours: 24,
        created_ms,
        shards: vec![],
    })
}

#[test]
fn pipelined_calls_get_their_own_out_of_order_replies() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let names: [&'static str; 5] = ["a", "b", "c", "d", "e"];
    let callers: Vec<_> = names
        .iter()
        .map(|&name| {
            let client = client.clone();
            std::thread::spawn(move || client.describe_stream(name))
        })
        .collect();
    // Every request is on the wire before any reply: they are pipelined.
    let requests = conn.recv_n(names.len());
    for r in requests.iter().rev() {
        let Request::DescribeStream { stream } = r.request() else {
            panic!("unexpected {:?}", r.request());
        };
        conn.reply(r, &stream_info(stream, r.id() as i64));
    }
    for (caller, name) in callers.into_iter().zip(names) {
        assert_eq!(caller.join().unwrap().unwrap().name, name);
    }
    assert!(
        !script.has_pending_connection(),
        "all calls share one connection"
    );
}

#[test]
fn a_timed_out_call_leaves_the_connection_usable() {
    let script = Script::bind();
    let client = Client::connect(
        script.addr(),
        ClientConfig {
            request_timeout: Duration::from_millis(100),
            ..config()
        },
    )
    .unwrap();
    let mut conn = script.accept();
    let started = Instant::now();
    let err = client.list_streams().unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert!(err.is_outcome_unknown());
    assert!(started.elapsed() >= Duration::from_millis(100));
    // The late reply is dropped; the next call gets its own.
    let late = conn.recv();
    conn.reply(&late, &Response::StreamNames(vec!["late"]));
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.list_streams())
    };
    let next = conn.recv();
    conn.reply(&next, &Response::StreamNames(vec!["fresh"]));
    assert_eq!(caller.join().unwrap().unwrap(), ["fresh"]);
    assert!(!script.has_pending_connection());
}

#[test]
fn server_errors_keep_their_code() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let caller = std::thread::spawn(move || client.delete_stream("nope"));
    let r = conn.recv();
    conn.error(&r, Error::not_found("Stream nope not found"));
    let err = caller.join().unwrap().unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ResourceNotFound), "{err}");
    assert!(!err.is_retryable());
}

#[test]
fn a_lost_reply_fails_non_idempotent_calls_and_retries_idempotent_ones() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();

    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.create_stream("s", 1))
    };
    let r = conn.recv();
    assert_eq!(r.api(), riffle_protocol::native::Api::CreateStream);
    conn.close();
    match caller.join().unwrap() {
        Err(ClientError::ConnectionLost {
            request_sent: true, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!script.has_pending_connection(), "CreateStream was resent");

    // An idempotent call lost with its connection is resent on a new one.
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.list_streams())
    };
    let mut conn = script.accept();
    conn.recv();
    conn.close();
    let mut conn = script.accept();
    let r = conn.recv();
    conn.reply(&r, &Response::StreamNames(vec!["s"]));
    assert_eq!(caller.join().unwrap().unwrap(), ["s"]);
}

#[test]
fn connect_attempts_back_off_exponentially() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let started = Instant::now();
    let err = Client::connect(
        addr,
        ClientConfig {
            reconnect_attempts_max: 4,
            reconnect_backoff_initial: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(1),
            ..config()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err}");
    assert!(err.is_retryable(), "nothing was sent");
    // Waits of 20, 40 and 80 ms between the four attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "{:?}",
        started.elapsed()
    );
}

/// Runs one call against a server that answers with `bad`, and checks the
/// call's error. A frame size out of bounds loses the byte stream, so the client
/// closes the connection; any other bad frame concerns its call only, and the
/// connection serves the next call.
fn check(what: &str, bad: impl FnOnce(&mut ScriptConn, &Received), expected: &str, closes: bool) {
    let script = Script::bind();
    let client = Client::connect(
        script.addr(),
        ClientConfig {
            idempotent_retries_max: 0,
            ..config()
        },
    )
    .unwrap();
    let mut conn = script.accept();
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.get_records("it", None).map(|_| ()))
    };
    let r = conn.recv();
    bad(&mut conn, &r);
    let err = caller.join().unwrap().unwrap_err();
    assert!(err.to_string().contains(expected), "{what}: {err}");
    if closes {
        assert!(conn.wait_closed(), "{what}: connection left open");
        return;
    }
    let caller = std::thread::spawn(move || client.ping());
    let r = conn.recv();
    let Request::Ping { nonce } = r.request() else {
        panic!("{what}: unexpected {:?}", r.request());
    };
    conn.reply(&r, &Response::Pong { nonce });
    assert!(caller.join().unwrap().is_ok(), "{what}");
    assert!(!script.has_pending_connection(), "{what}: reconnected");
}

#[test]
fn protocol_violations_are_errors_not_panics() {
    check(
        "bad crc",
        |conn, r| {
            let mut out = Vec::new();
            encode_response(&mut out, r.api(), r.id(), &Response::Done);
            out[4] ^= 1;
            conn.raw(&out);
        },
        "crc",
        false,
    );
    check(
        "answer of another operation",
        |conn, r| {
            let mut out = Vec::new();
            let api = riffle_protocol::native::Api::Ping;
            encode_response(&mut out, api, r.id(), &Response::Pong { nonce: 1 });
            conn.raw(&out);
        },
        "protocol violation",
        false,
    );
    check(
        "oversized frame",
        |conn, _| {
            let mut header = [0u8; 24];
            header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
            conn.raw(&header);
        },
        "frame size",
        true,
    );
    check(
        "push for a plain request",
        |conn, r| {
            let records = Records {
                shard_index: 0,
                millis_behind_latest: 0,
                next_offset: 0,
                next_iterator: None,
                spans: vec![],
            };
            conn.push(r.id(), &records, false);
        },
        "push frame",
        false,
    );
    check(
        "corrupt served batch",
        |conn, r| {
            let mut batch = riffle_protocol::BatchBuilder::new().encode(&[RecordIn {
                partition_key: "k",
                explicit_hash_key: None,
                data: b"data",
                arrival_ms: 0,
            }]);
            let last = batch.len() - 1;
            batch[last] ^= 0xff;
            let records = Records {
                shard_index: 0,
                millis_behind_latest: 0,
                next_offset: 1,
                next_iterator: Some("next"),
                spans: vec![Span {
                    skip: 0,
                    take: 1,
                    batch: &batch,
                }],
            };
            conn.reply(r, &Response::Records(records));
        },
        "served batch",
        false,
    );
}

#[test]
fn every_operation_against_the_fake() {
    let fake = Fake::start();
    let client = Client::connect(fake.addr(), config()).unwrap();
    assert!(client.ping().is_ok());
    client.create_stream("s", 4).unwrap();
    let err = client.create_stream("s", 4).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ResourceInUse));
    assert_eq!(client.list_streams().unwrap(), ["s"]);
    let description = client.describe_stream("s").unwrap();
    assert_eq!(description.shards.len(), 4);
    assert_eq!(client.list_shards("s").unwrap(), description.shards);

    let put = client.put_record("s", "key", None, b"one").unwrap();
    let ranges: Vec<_> = routing::even_split(4);
    let expected_shard = routing::route(&ranges, routing::hash_key_of("key")) as u32;
    assert_eq!(put.shard_index, expected_shard);
    assert_eq!(
        seqno::decode(put.sequence_number).unwrap(),
        (expected_shard, 0)
    );
    let put = client
        .put_record("s", "key", Some(u128::MAX), b"two")
        .unwrap();
    assert_eq!(put.shard_index, 3, "explicit hash key routes");

    let it = client
        .get_shard_iterator("s", expected_shard, StartPosition::TrimHorizon)
        .unwrap();
    let out = client.get_records(&it, None).unwrap();
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].data, b"one");
    assert_eq!(out.records[0].partition_key, "key");
    assert_eq!(out.records[0].position(), (expected_shard, 0));
    assert_eq!(out.millis_behind_latest, 0);
    assert!(out.next_iterator.is_some());

    let err = client.put_record("s", "", None, b"x").unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    client.delete_stream("s").unwrap();
    assert!(client.list_streams().unwrap().is_empty());
}

#[test]
fn put_records_routes_on_the_client_and_reports_in_input_order() {
    let fake = Fake::start();
    fake.create_stream("s", 4);
    let client = Client::connect(fake.addr(), config()).unwrap();
    let failing_shard = 2;
    fake.faults(|f| {
        f.batch_errors
            .entry(failing_shard)
            .or_default()
            .push_back(ErrorCode::ProvisionedThroughputExceeded)
    });
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    let entries: Vec<PutRecordsEntry<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| PutRecordsEntry {
            partition_key: k,
            explicit_hash_key: (i == 7).then_some(0),
            data: k.as_bytes(),
        })
        .collect();
    let results = client.put_records("s", &entries).unwrap();
    assert_eq!(results.len(), entries.len());
    let table = client.routing_table("s").unwrap();
    let mut next_offset = [0u64; 4];
    for (e, r) in entries.iter().zip(&results) {
        let shard = table.shard_for(e.partition_key, e.explicit_hash_key);
        if shard == failing_shard {
            let err = r.as_ref().unwrap_err();
            assert_eq!(err.code, ErrorCode::ProvisionedThroughputExceeded);
            continue;
        }
        let put = r.as_ref().unwrap();
        assert_eq!(put.shard_index, shard);
        // Within a shard, offsets follow input order.
        assert_eq!(
            seqno::decode(put.sequence_number).unwrap(),
            (shard, next_offset[shard as usize])
        );
        next_offset[shard as usize] += 1;
    }
    assert_eq!(results[7].as_ref().unwrap().shard_index, 0);
    assert_eq!(fake.put_log().len(), 1, "one request, one batch per shard");
    assert_eq!(fake.put_log()[0].len(), 4);

    let err = client.put_records("s", &[]).unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)));
}

#[test]
fn subscriptions_receive_pushes_until_unsubscribed() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    fake.append("s", 0, &[("k", b"old")]);
    let client = Client::connect(fake.addr(), config()).unwrap();
    let mut sub = client
        .subscribe("s", 0, StartPosition::TrimHorizon)
        .unwrap();
    let event = sub.recv().unwrap();
    assert_eq!(event.records.len(), 1);
    assert_eq!(event.records[0].data, b"old");
    assert_eq!(event.next_offset, 1);
    assert_eq!(
        event.continuation(),
        StartPosition::AtSequenceNumber(seqno::encode(0, 1))
    );
    assert!(
        sub.recv_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    fake.append("s", 0, &[("k", b"new1"), ("k", b"new2")]);
    let event = sub.recv().unwrap();
    let data: Vec<_> = event.records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(data, [b"new1".to_vec(), b"new2".to_vec()]);
    assert_eq!(event.records[1].position(), (0, 2));
    // Other calls share the connection meanwhile.
    assert_eq!(client.list_streams().unwrap(), ["s"]);
    sub.unsubscribe().unwrap();
    fake.wait_subscribers(|n| n == 0);

    // Dropping a subscription unsubscribes too.
    let sub = client.subscribe("s", 0, StartPosition::Latest).unwrap();
    fake.wait_subscribers(|n| n == 1);
    drop(sub);
    fake.wait_subscribers(|n| n == 0);

    // A subscription dies with its connection.
    let mut sub = client.subscribe("s", 0, StartPosition::Latest).unwrap();
    fake.wait_subscribers(|n| n == 1);
    fake.kill_connections();
    let err = sub.recv().unwrap_err();
    assert!(matches!(err, ClientError::ConnectionLost { .. }), "{err}");
    assert!(sub.is_ended());
    assert!(client.ping().is_ok(), "the next call reconnects");
}

#[test]
fn subscribe_errors_come_back_typed() {
    let fake = Fake::start();
    let client = Client::connect(fake.addr(), config()).unwrap();
    let err = client
        .subscribe("missing", 0, StartPosition::Latest)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ResourceNotFound), "{err}");
}

#[test]
fn a_subscription_ends_with_its_end_frame_or_a_bad_push() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let empty = |next_offset| Records {
        shard_index: 0,
        millis_behind_latest: 0,
        next_offset,
        next_iterator: None,
        spans: vec![],
    };

    let subscriber = {
        let client = client.clone();
        std::thread::spawn(move || {
            let sub = client.subscribe("s", 0, StartPosition::Latest).unwrap();
            sub.collect::<Vec<_>>()
        })
    };
    let r = conn.recv();
    conn.reply(&r, &Response::Done);
    conn.push(r.id(), &empty(3), false);
    conn.push(r.id(), &empty(5), true);
    let events = subscriber.join().unwrap();
    assert_eq!(events.len(), 2);
    let last = events[1].as_ref().unwrap();
    assert!(last.end);
    assert_eq!(
        last.continuation(),
        StartPosition::AtSequenceNumber(seqno::encode(0, 5))
    );

    // A push that does not decode ends the subscription with an error, and the
    // client unsubscribes.
    let subscriber = {
        let client = client.clone();
        std::thread::spawn(move || {
            let mut sub = client.subscribe("s", 0, StartPosition::Latest).unwrap();
            let err = sub.recv().unwrap_err();
            (err, sub.is_ended())
        })
    };
    let r = conn.recv();
    conn.reply(&r, &Response::Done);
    let mut out = Vec::new();
    riffle_protocol::native::encode_push(&mut out, r.id(), &empty(1), false);
    out[30] ^= 1; // inside the body: the crc no longer matches
    conn.raw(&out);
    let (err, ended) = subscriber.join().unwrap();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    assert!(ended);
    let unsubscribe = conn.recv();
    assert_eq!(
        unsubscribe.request(),
        Request::Unsubscribe {
            subscription_id: r.id()
        }
    );
}

#[test]
fn firehose_calls_send_their_records_and_convert_the_answers() {
    use riffle_client::{FirehosePutBatchResult, FirehoseRecordError};
    use riffle_protocol::native::{FirehosePutBatch, FirehoseRecordResult};
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let c = client.clone();
    let put = std::thread::spawn(move || c.firehose_put_record_batch("fh", &[&b"a"[..], b"bb"]));
    let mut conn = script.accept();
    let r = conn.recv();
    assert_eq!(
        r.request(),
        Request::FirehosePutRecordBatch {
            delivery_stream: "fh",
            records: vec![b"a", b"bb"],
        }
    );
    conn.reply(
        &r,
        &Response::FirehosePutBatch(FirehosePutBatch {
            encrypted: true,
            results: vec![
                FirehoseRecordResult::Stored { record_id: "id0" },
                FirehoseRecordResult::Failed {
                    error_code: "ServiceUnavailableException",
                    message: "busy",
                },
            ],
        }),
    );
    assert_eq!(
        put.join().unwrap().unwrap(),
        FirehosePutBatchResult {
            failed_put_count: 1,
            encrypted: true,
            records: vec![
                Ok("id0".to_string()),
                Err(FirehoseRecordError {
                    error_code: "ServiceUnavailableException".into(),
                    message: "busy".into(),
                }),
            ],
        }
    );
    // An answer for fewer records than were sent breaks the protocol.
    let c = client.clone();
    let put = std::thread::spawn(move || c.firehose_put_record_batch("fh", &[&b"a"[..], b"bb"]));
    let r = conn.recv();
    conn.reply(
        &r,
        &Response::FirehosePutBatch(FirehosePutBatch {
            encrypted: false,
            results: vec![FirehoseRecordResult::Stored { record_id: "id0" }],
        }),
    );
    let e = put.join().unwrap().unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("sent 2 records, got 1 results")),
        "{e:?}"
    );
    let c = client.clone();
    let described = std::thread::spawn(move || c.firehose_describe("fh"));
    let r = conn.recv();
    assert_eq!(
        r.request(),
        Request::FirehoseDescribe {
            delivery_stream: "fh"
        }
    );
    conn.reply(&r, &Response::FirehoseDescription("{\"x\":1}"));
    assert_eq!(described.join().unwrap().unwrap().json, "{\"x\":1}");
    // Nothing is sent for a call over AWS's limits.
    let e = client
        .firehose_put_record_batch("fh", &[] as &[&[u8]])
        .unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
}

#[test]
fn firehose_calls_to_a_server_without_firehose_fail_with_its_error() {
    let fake = Fake::start();
    let client = Client::connect(fake.addr(), config()).unwrap();
    let e = client.firehose_describe("fh").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
    client.create_stream("s", 1).unwrap();
}
