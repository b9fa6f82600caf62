//! The KPL features against the fake Kinesis: the producer aggregates each
//! shard's user records into aggregated records (read back with the format's
//! own reader), paces shards, fails records past their time to live, counts
//! what it does; the consumer yields the user records of aggregated records
//! and resumes from a checkpoint inside one.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Fake, STEP_TIMEOUT};
use riffle_client::{
    Checkpoint, Client, ClientConfig, ClientError, Consumer, ConsumerConfig, ErrorCode, Producer,
    ProducerConfig, ShardRate, StartPosition,
};
use riffle_protocol::kpl::{self, Aggregator};
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

fn aggregating() -> ProducerConfig {
    ProducerConfig {
        aggregate: true,
        linger: Duration::from_secs(60),
        retry_backoff_initial: Duration::from_millis(1),
        retry_backoff_max: Duration::from_millis(4),
        ..ProducerConfig::default()
    }
}

/// The user records of every stored record of a shard, in order, with the
/// stored record's offset and whether it was aggregated.
fn stored_user_records(fake: &Fake, stream: &str, shard: u32) -> Vec<(u64, bool, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (offset, (key, data)) in fake.records(stream, shard).into_iter().enumerate() {
        match kpl::deaggregate(&data) {
            Some(users) => out.extend(users.into_iter().map(|u| {
                (
                    offset as u64,
                    true,
                    u.partition_key.to_owned(),
                    u.data.to_vec(),
                )
            })),
            None => out.push((offset as u64, false, key, data)),
        }
    }
    out
}

#[test]
fn user_records_are_aggregated_per_shard_in_order() {
    let fake = Fake::start();
    fake.create_stream("s", 3);
    let client = client(&fake);
    let table = client.routing_table("s").unwrap();
    let producer = Producer::new(
        client,
        "s",
        ProducerConfig {
            aggregate_bytes_max: 4000,
            ..aggregating()
        },
    )
    .unwrap();
    let sends: Vec<(String, Vec<u8>)> = (0..900)
        .map(|i| {
            (
                format!("key-{}", i % 37),
                format!("user-record-{i}").into_bytes(),
            )
        })
        .collect();
    let handles: Vec<_> = sends
        .iter()
        .map(|(k, d)| producer.send(k, None, d.clone()).unwrap())
        .collect();
    producer.flush().unwrap();
    let mut expected: BTreeMap<u32, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (k, d) in &sends {
        expected
            .entry(table.shard_for(k, None))
            .or_default()
            .push((k.clone(), d.clone()));
    }
    let mut stored_total = 0;
    let mut stored = BTreeMap::new();
    for (&shard, want) in &expected {
        let users = stored_user_records(&fake, "s", shard);
        stored_total += fake.records("s", shard).len();
        let got: Vec<(String, Vec<u8>)> =
            users.iter().map(|u| (u.2.clone(), u.3.clone())).collect();
        assert_eq!(
            &got, want,
            "shard {shard}: every user record once, in send order"
        );
        assert!(users.iter().all(|u| u.1), "all aggregated");
        for data in fake.records("s", shard).iter().map(|r| &r.1) {
            assert!(data.len() <= 4000, "{}", data.len());
        }
        stored.insert(shard, users);
    }
    assert!(
        stored_total < 60,
        "{stored_total} Kinesis records for 900 user records"
    );
    // Each result names the aggregated record and the place in it.
    let mut sub_of: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    for (h, (k, d)) in handles.into_iter().zip(&sends) {
        let put = h.wait().unwrap();
        let (shard, offset) = seqno::decode(put.sequence_number).unwrap();
        assert_eq!(put.shard_index, shard);
        let sub = put.sub_sequence_number.expect("aggregated");
        let users = &stored[&shard];
        let at: Vec<_> = users.iter().filter(|u| u.0 == offset).collect();
        assert_eq!((&at[sub as usize].2, &at[sub as usize].3), (k, d));
        let next = sub_of.entry((shard, offset)).or_default();
        assert_eq!(*next, sub, "sub-sequence numbers count up inside a record");
        *next += 1;
    }
    let m = producer.metrics();
    assert_eq!(m.user_records_put, 900);
    assert_eq!(m.kinesis_records_put as usize, stored_total);
    assert_eq!(
        (m.buffered_records, m.buffered_bytes, m.user_records_failed),
        (0, 0, 0)
    );
    assert!(m.latency_max > Duration::ZERO && m.latency_p50 <= m.latency_p99);
}

#[test]
fn a_lone_user_record_is_put_plain() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(client(&fake), "s", aggregating()).unwrap();
    let h = producer.send("k", None, b"alone").unwrap();
    producer.flush().unwrap();
    let put = h.wait().unwrap();
    assert_eq!(put.sub_sequence_number, None);
    assert_eq!(fake.records("s", 0), [("k".to_owned(), b"alone".to_vec())]);
}

#[test]
fn explicit_hash_keys_travel_inside_aggregates() {
    let fake = Fake::start();
    fake.create_stream("s", 2);
    let producer = Producer::new(client(&fake), "s", aggregating()).unwrap();
    let hash = u128::MAX / 4; // shard 0 of 2
    for i in 0..5 {
        producer
            .send(&format!("k{i}"), Some(hash), vec![i])
            .unwrap();
    }
    producer.flush().unwrap();
    let records = fake.records("s", 0);
    assert_eq!(records.len(), 1);
    let users = kpl::deaggregate(&records[0].1).unwrap();
    let hash = hash.to_string();
    assert!(
        users
            .iter()
            .all(|u| u.explicit_hash_key == Some(hash.as_str()))
    );
    assert_eq!(
        users.iter().map(|u| u.data[0]).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn batches_are_counted_in_aggregated_records() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            aggregate_records_max: 10,
            batch_records_max: 4,
            ..aggregating()
        },
    )
    .unwrap();
    for i in 0..100u8 {
        producer.send("k", None, vec![i]).unwrap();
    }
    producer.flush().unwrap();
    // 100 user records: 10 aggregated records of 10, sent in batches of 4.
    let batches: Vec<u32> = fake.put_log().concat().into_iter().map(|b| b.1).collect();
    assert_eq!(batches, [4, 4, 2]);
}

#[test]
fn a_shard_rate_paces_the_sends() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            shard_rate: Some(ShardRate {
                bytes_per_second: 1 << 30,
                records_per_second: 20,
            }),
            batch_records_max: 10,
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..50u8 {
        producer.send("k", None, vec![i]).unwrap();
    }
    producer.flush().unwrap();
    // A full second's budget (20) goes at once, the other 30 at 20/s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert_eq!(fake.records("s", 0).len(), 50);
    let m = producer.metrics();
    assert!(m.rate_limited >= 1, "{m:?}");
    assert_eq!(m.throttled, 0);
}

#[test]
fn throttling_is_retried_and_counted() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    fake.faults(|f| {
        f.batch_errors.entry(0).or_default().extend([
            ErrorCode::ProvisionedThroughputExceeded,
            ErrorCode::ProvisionedThroughputExceeded,
        ])
    });
    let producer = Producer::new(client(&fake), "s", aggregating()).unwrap();
    let handles: Vec<_> = (0..30u8)
        .map(|i| producer.send("k", None, vec![i]).unwrap())
        .collect();
    producer.flush().unwrap();
    assert!(handles.into_iter().all(|h| h.wait().is_ok()));
    let m = producer.metrics();
    assert_eq!((m.throttled, m.retries, m.user_records_put), (2, 2, 30));
    assert_eq!(m.kinesis_records_put, 1);
}

#[test]
fn records_past_their_time_to_live_fail_unsent() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let producer = Producer::new(
        client(&fake),
        "s",
        ProducerConfig {
            record_ttl: Some(Duration::from_millis(300)),
            linger: Duration::from_millis(1),
            retry_backoff_initial: Duration::from_millis(20),
            retry_backoff_max: Duration::from_millis(50),
            retries_max: 1000,
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    fake.stop_listening();
    let handle = producer.send("k", None, b"late").unwrap();
    let err = handle.wait().unwrap_err();
    match err {
        ClientError::Expired { waited } => assert!(waited >= Duration::from_millis(300)),
        e => panic!("{e}"),
    }
    fake.resume_listening();
    let fresh = producer.send("k", None, b"fresh").unwrap();
    fresh.wait().unwrap();
    assert_eq!(fake.records("s", 0), [("k".to_owned(), b"fresh".to_vec())]);
    let m = producer.metrics();
    assert_eq!(
        (
            m.user_records_expired,
            m.user_records_failed,
            m.user_records_put
        ),
        (1, 1, 1)
    );
}

#[test]
fn aggregation_settings_are_checked() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let too_big = ProducerConfig {
        aggregate_bytes_max: 2 << 20,
        ..aggregating()
    };
    assert!(matches!(
        Producer::new(client(&fake), "s", too_big),
        Err(ClientError::InvalidArgument(_))
    ));
    let no_rate = ProducerConfig {
        shard_rate: Some(ShardRate {
            bytes_per_second: 0,
            records_per_second: 1,
        }),
        ..ProducerConfig::default()
    };
    assert!(matches!(
        Producer::new(client(&fake), "s", no_rate),
        Err(ClientError::InvalidArgument(_))
    ));
}

fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut agg = Aggregator::new();
    for (k, d) in records {
        agg.add(k, None, d);
    }
    agg.finish()
}

fn consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        follow: false,
        poll_interval: Duration::from_millis(5),
        retry_backoff_initial: Duration::from_millis(5),
        ..ConsumerConfig::default()
    }
}

/// Reads `n` records.
fn read(consumer: &mut Consumer, n: usize) -> Vec<(u64, Option<u32>, String, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = consumer
            .next_record(STEP_TIMEOUT)
            .unwrap()
            .expect("a record in time");
        let (_, offset) = r.position();
        out.push((offset, r.sub_sequence_number, r.partition_key, r.data));
    }
    out
}

#[test]
fn the_consumer_yields_user_records_and_resumes_inside_an_aggregate() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    let first = aggregate(&[("a", b"a0"), ("b", b"b0"), ("a", b"a1")]);
    let not_aggregated = b"plain".to_vec();
    let mut broken = aggregate(&[("c", b"c0"), ("c", b"c1")]);
    let last = broken.len() - 1;
    broken[last] ^= 1; // a bad digest: delivered as stored
    fake.append(
        "s",
        0,
        &[("outer", &first), ("p", &not_aggregated), ("x", &broken)],
    );
    let client = client(&fake);
    let mut consumer = Consumer::new(
        client.clone(),
        "s",
        0,
        StartPosition::TrimHorizon,
        consumer_config(),
    );
    let got = read(&mut consumer, 5);
    let s = |v: &str| v.to_owned();
    assert_eq!(
        got,
        [
            (0, Some(0), s("a"), b"a0".to_vec()),
            (0, Some(1), s("b"), b"b0".to_vec()),
            (0, Some(2), s("a"), b"a1".to_vec()),
            (1, None, s("p"), b"plain".to_vec()),
            (2, None, s("x"), broken.clone()),
        ]
    );
    // Resume after user record 1 of the first aggregate: user record 2 next.
    let inside = Checkpoint {
        sequence_number: seqno::encode(0, 0),
        sub_sequence_number: Some(1),
    };
    let mut resumed = Consumer::resume(client.clone(), "s", 0, inside, consumer_config());
    let got = read(&mut resumed, 2);
    assert_eq!(got[0], (0, Some(2), s("a"), b"a1".to_vec()));
    assert_eq!(got[1].0, 1);
    assert_eq!(
        resumed.checkpoint(),
        Some(Checkpoint {
            sequence_number: seqno::encode(0, 1),
            sub_sequence_number: None,
        })
    );
    // Without de-aggregation: records as stored, and a checkpoint inside an
    // aggregate reads that aggregate again (never lost).
    let raw = ConsumerConfig {
        deaggregate: false,
        ..consumer_config()
    };
    let mut as_stored = Consumer::resume(client, "s", 0, inside, raw);
    let got = read(&mut as_stored, 2);
    assert_eq!(got[0], (0, None, s("outer"), first));
    assert_eq!(got[1].0, 1);
}

#[test]
fn records_put_without_a_handle_are_flushed_and_counted() {
    let fake = Fake::start();
    fake.create_stream("s", 2);
    let producer = Producer::new(client(&fake), "s", aggregating()).unwrap();
    for i in 0..500u32 {
        producer
            .put(&format!("k{}", i % 9), None, i.to_be_bytes())
            .unwrap();
    }
    producer.flush().unwrap();
    let users: usize = (0..2)
        .map(|s| stored_user_records(&fake, "s", s).len())
        .sum();
    assert_eq!(users, 500, "flush waited for every record put");
    let m = producer.metrics();
    assert_eq!((m.user_records_put, m.buffered_records), (500, 0));
    assert!(m.kinesis_records_put <= 4, "{m:?}");
}
