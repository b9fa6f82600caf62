//! The producer against the fake Kinesis: batching by count, bytes and linger,
//! per-key order across retries, per-record results, retry limits, unknown
//! outcomes, refused connects, flush and close.

mod common;

use std::time::{Duration, Instant};

use common::Fake;
use riffle_client::{Client, ClientConfig, ClientError, ErrorCode, Producer, ProducerConfig};
use riffle_protocol::native::Api;
use riffle_protocol::seqno;

fn client(fake: &Fake) -> Client {
    Client::connect(
        fake.addr(),
        ClientConfig {
            request_timeout: Duration::from_secs(5),
            reconnect_attempts_max: 2,
            reconnect_backoff_initial: Duration::from_millis(5),
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

/// Linger so long that only full batches, flush and close send anything.
fn no_linger_sends() -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_secs(60),
        retry_backoff_initial: Duration::from_millis(1),
        retry_backoff_max: Duration::from_millis(4),
        ..ProducerConfig::default()
    }
}

fn data(i: usize) -> Vec<u8> {
    format!("record-{i}").into_bytes()
}

#[test]
fn batches_fill_by_count_then_flush_sends_the_rest() {
    let fake = Fake::start();
    fake.create_stream("s", 2);
    let client = client(&fake);
    let shard = client.routing_table("s").unwrap().shard_for("k", None);
    let producer = Producer::new(
        client,
        "s",
        ProducerConfig {
            batch_records_max: 10,
            ..no_linger_sends()
        },
    )
    .unwrap();
    let handles: Vec<_> = (0..25)
        .map(|i| producer.send("k", None, data(i)).unwrap())
        .collect();
    producer.flush().unwrap();
    let log = fake.put_log();
    assert_eq!(
        log,
        [vec![(shard, 10)], vec![(shard, 10)], vec![(shard, 5)]]
    );
    for (i, h) in handles.into_iter().enumerate() {
        let put = h.try_result().expect("flushed").unwrap();
        assert_eq!(put.shard_index, shard);
        assert_eq!(
            seqno::decode(put.sequence_number).unwrap(),
            (shard, i as u64)
        );
    }
    producer.close().unwrap();
}

#[test]
fn batches_are_cut_by_bytes() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            batch_bytes_max: 1000,
            ..no_linger_sends()
        },
    )
    .unwrap();
    // 1 byte of key + 299 of data: three records make a full batch.
    for _ in 0..7 {
        producer.send("k", None, vec![7u8; 299]).unwrap();
    }
    producer.flush().unwrap();
    let counts: Vec<u32> = fake.put_log().iter().map(|r| r[0].1).collect();
    assert_eq!(counts, [3, 3, 1]);
}

#[test]
fn a_lone_record_waits_for_the_linger_time() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let linger = Duration::from_millis(50);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            linger,
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    let put = producer.send("k", None, b"x").unwrap().wait().unwrap();
    assert!(started.elapsed() >= linger, "{:?}", started.elapsed());
    assert_eq!(put.shard_index, 0);
}

#[test]
fn ready_batches_of_several_shards_share_a_request() {
    let fake = Fake::start();
    fake.create_stream("s", 4);
    let producer = Producer::new(client(&fake), "s", no_linger_sends()).unwrap();
    let handles: Vec<_> = (0..40)
        .map(|i| producer.send(&format!("key-{i}"), None, data(i)).unwrap())
        .collect();
    producer.flush().unwrap();
    let log = fake.put_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].len(), 4);
    assert!(handles.iter().all(|h| h.try_result().unwrap().is_ok()));
}

#[test]
fn order_per_key_survives_retries() {
    let fake = Fake::start();
    fake.create_stream("s", 2);
    let client = client(&fake);
    let shard = client.routing_table("s").unwrap().shard_for("k", None);
    fake.faults(|f| {
        f.batch_errors.entry(shard).or_default().extend([
            ErrorCode::ProvisionedThroughputExceeded,
            ErrorCode::Internal,
            ErrorCode::ProvisionedThroughputExceeded,
        ])
    });
    let producer = Producer::new(
        client,
        "s",
        ProducerConfig {
            batch_records_max: 3,
            linger: Duration::from_millis(1),
            ..no_linger_sends()
        },
    )
    .unwrap();
    let handles: Vec<_> = (0..20)
        .map(|i| producer.send("k", None, data(i)).unwrap())
        .collect();
    let mut last = None;
    for h in handles {
        let put = h.wait().unwrap();
        assert!(
            last < Some(put.sequence_number),
            "sequence numbers follow send order"
        );
        last = Some(put.sequence_number);
    }
    let stored: Vec<Vec<u8>> = fake
        .records("s", shard)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(stored, (0..20).map(data).collect::<Vec<_>>());
    producer.close().unwrap();
}

#[test]
fn failures_are_reported_per_record() {
    let fake = Fake::start();
    fake.create_stream("s", 2);
    let client = client(&fake);
    let table = client.routing_table("s").unwrap();
    let (bad, good) = (
        "k",
        (0..)
            .map(|i| format!("o{i}"))
            .find(|k| table.shard_for(k, None) != table.shard_for("k", None))
            .unwrap(),
    );
    let bad_shard = table.shard_for(bad, None);
    // A permanent error fails its batch only; retryable ones run out of retries.
    fake.faults(|f| {
        f.batch_errors.entry(bad_shard).or_default().extend([
            ErrorCode::InvalidArgument,
            ErrorCode::Internal,
            ErrorCode::Internal,
            ErrorCode::Internal,
        ])
    });
    let producer = Producer::new(
        client,
        "s",
        ProducerConfig {
            retries_max: 2,
            ..no_linger_sends()
        },
    )
    .unwrap();
    let first_bad = producer.send(bad, None, b"1").unwrap();
    let first_good = producer.send(&good, None, b"1").unwrap();
    producer.flush().unwrap();
    let second_bad = producer.send(bad, None, b"2").unwrap();
    producer.flush().unwrap();
    let third_bad = producer.send(bad, None, b"3").unwrap();
    producer.flush().unwrap();

    assert_eq!(
        first_bad.wait().unwrap_err().code(),
        Some(ErrorCode::InvalidArgument)
    );
    assert!(first_good.wait().is_ok());
    assert_eq!(
        second_bad.wait().unwrap_err().code(),
        Some(ErrorCode::Internal),
        "3 attempts, all failed"
    );
    assert_eq!(
        seqno::decode(third_bad.wait().unwrap().sequence_number).unwrap(),
        (bad_shard, 0)
    );

    let err = producer.send("", None, b"x").unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)));
}

#[test]
fn a_request_without_reply_is_not_resent() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    fake.faults(|f| f.mute.push(Api::PutRecords));
    let client = Client::connect(
        fake.addr(),
        ClientConfig {
            request_timeout: Duration::from_millis(100),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let producer = Producer::new(client, "s", no_linger_sends()).unwrap();
    let handle = producer.send("k", None, b"x").unwrap();
    producer.flush().unwrap();
    let err = handle.wait().unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert_eq!(fake.faults(|f| f.muted), 1, "sent once");
}

#[test]
fn records_wait_out_refused_connects() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            linger: Duration::from_millis(1),
            retry_backoff_initial: Duration::from_millis(20),
            // The connection the producer had is killed: a request written to
            // it before the client saw it die is "sent, outcome unknown", and
            // this fake stored nothing from it.
            retry_unknown_outcome: true,
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    fake.stop_listening();
    let handle = producer.send("k", None, b"x").unwrap();
    // Connects are refused meanwhile; the batch is retried, not failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while producer.metrics().retries < 2 {
        assert!(
            Instant::now() < deadline,
            "no retries: {:?}",
            producer.metrics()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(handle.try_result().is_none());
    fake.resume_listening();
    assert!(handle.wait().is_ok());
    assert_eq!(fake.records("s", 0).len(), 1);
}

#[test]
fn close_sends_what_is_queued() {
    let fake = Fake::start();
    fake.create_stream("s", 3);
    let producer = Producer::new(client(&fake), "s", no_linger_sends()).unwrap();
    let handles: Vec<_> = (0..9)
        .map(|i| producer.send(&format!("key-{i}"), None, data(i)).unwrap())
        .collect();
    producer.close().unwrap();
    assert!(handles.into_iter().all(|h| h.wait().is_ok()));
}
