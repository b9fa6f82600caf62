//! The consumer against the fake Kinesis: catch-up over several GetRecords
//! pages, following the tip through a subscription, and resuming after the
//! connection breaks without losing or repeating a record.

mod common;

use std::time::{Duration, Instant};

use common::{Fake, STEP_TIMEOUT};
use riffle_client::{Client, ClientConfig, Consumer, ConsumerConfig, Record, StartPosition};
use riffle_protocol::seqno;

fn client(fake: &Fake) -> Client {
    Client::connect(
        fake.addr(),
        ClientConfig {
            reconnect_backoff_initial: Duration::from_millis(5),
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        get_records_limit: Some(7),
        poll_interval: Duration::from_millis(5),
        retry_backoff_initial: Duration::from_millis(5),
        ..ConsumerConfig::default()
    }
}

/// Appends records `from..to` ("r{i}") to shard 0 in one batch.
fn append(fake: &Fake, from: usize, to: usize) {
    let data: Vec<String> = (from..to).map(|i| format!("r{i}")).collect();
    let records: Vec<(&str, &[u8])> = data.iter().map(|d| ("k", d.as_bytes())).collect();
    fake.append("s", 0, &records);
}

/// Takes `n` records, failing the test if they do not come in time.
fn take(consumer: &mut Consumer, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records came",
            out.len()
        );
        if let Some(r) = consumer.next_record(Duration::from_millis(20)).unwrap() {
            out.push(r);
        }
    }
    out
}

/// Reads until the consumer follows the tip (nothing new may arrive meanwhile).
fn reach_tip(consumer: &mut Consumer) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !consumer.is_following() {
        assert!(Instant::now() < deadline, "never reached the tip");
        assert_eq!(
            consumer.next_record(Duration::from_millis(5)).unwrap(),
            None
        );
    }
}

/// Checks that `records` are "r{from}".. at offsets from.. of shard 0.
fn check(records: &[Record], from: usize) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.data, format!("r{}", from + i).into_bytes());
        assert_eq!(r.position(), (0, (from + i) as u64));
    }
}

#[test]
fn catches_up_follows_and_resumes_after_a_broken_connection() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    for b in 0..5 {
        append(&fake, b * 5, b * 5 + 5);
    }
    let mut consumer = Consumer::new(client(&fake), "s", 0, StartPosition::TrimHorizon, config());
    // 25 records in pages of 7, served from batches of 5.
    check(&take(&mut consumer, 25), 0);
    reach_tip(&mut consumer);
    fake.wait_subscribers(|n| n == 1);
    append(&fake, 25, 28);
    check(&take(&mut consumer, 3), 25);
    assert_eq!(consumer.last_sequence_number(), Some(seqno::encode(0, 27)));
    assert_eq!(
        consumer.position(),
        StartPosition::AtSequenceNumber(seqno::encode(0, 28))
    );

    // The connection breaks; records arrive while the consumer is away.
    fake.kill_connections();
    append(&fake, 28, 30);
    check(&take(&mut consumer, 2), 28);
    reach_tip(&mut consumer);
    fake.wait_subscribers(|n| n == 1);
    append(&fake, 30, 31);
    check(&take(&mut consumer, 1), 30);
    assert_eq!(
        consumer.next_record(Duration::from_millis(20)).unwrap(),
        None
    );
}

#[test]
fn starts_from_any_position_and_polls_without_follow() {
    let fake = Fake::start();
    fake.create_stream("s", 1);
    append(&fake, 0, 10);
    let config = ConsumerConfig {
        follow: false,
        ..config()
    };
    let at = |p| Consumer::new(client(&fake), "s", 0, p, config.clone());
    check(
        &take(
            &mut at(StartPosition::AtSequenceNumber(seqno::encode(0, 4))),
            6,
        ),
        4,
    );
    check(
        &take(
            &mut at(StartPosition::AfterSequenceNumber(seqno::encode(0, 4))),
            5,
        ),
        5,
    );

    let mut latest = at(StartPosition::Latest);
    assert_eq!(latest.next_record(Duration::from_millis(20)).unwrap(), None);
    assert!(!latest.is_following());
    append(&fake, 10, 12);
    check(&take(&mut latest, 2), 10);
    assert!(!latest.is_following());
}

#[test]
fn unrecoverable_errors_are_returned() {
    let fake = Fake::start();
    let mut consumer = Consumer::new(
        client(&fake),
        "missing",
        0,
        StartPosition::TrimHorizon,
        config(),
    );
    let err = consumer.next_record(Duration::from_millis(20)).unwrap_err();
    assert_eq!(
        err.code(),
        Some(riffle_client::ErrorCode::ResourceNotFound),
        "{err}"
    );
}
