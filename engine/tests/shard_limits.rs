//! The shard limits (`EngineConfig::shard_limits`) end to end through
//! `Engine` on real storage: puts past a shard's write rate are refused
//! whole with AWS's code and message and store nothing, admitted again once
//! the debt is paid; GetRecords past the call rate, or after a read that
//! served more than the byte rate, is refused; subscriptions' and
//! followers' reads never are; internal streams are not limited; the
//! refusals are counted at `GET /metrics`' collector; with no limits
//! nothing is refused.

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use riffle_engine::config::ShardLimits;
use riffle_engine::kinesis::metrics::KinesisMetrics;
use riffle_engine::{Engine, EngineConfig, PutRecordsEntry};
use riffle_protocol::{Error, ErrorCode};
use riffle_store::iterator::IteratorType;

const WRITE_RECORDS_PER_S: u64 = 10;
const READ_BYTES_PER_S: u64 = 1000;

fn start(dir: &std::path::Path, limits: Option<ShardLimits>) -> Engine {
    let mut c = EngineConfig::new(dir);
    c.cores = 2;
    c.pin = false;
    c.iterator_secret = Some([7; 32]);
    c.shard_limits = limits;
    Engine::start(c).unwrap()
}

/// Small limits: 10 records a second (bytes plenty) for writes, AWS's 5
/// calls a second and 1000 bytes a second for reads.
fn small() -> ShardLimits {
    ShardLimits {
        write_records_per_s: WRITE_RECORDS_PER_S,
        read_bytes_per_s: READ_BYTES_PER_S,
        ..ShardLimits::aws()
    }
}

fn put(engine: &Engine, stream: &str, data: &[Vec<u8>]) -> Vec<Result<u64, Error>> {
    let entries: Vec<PutRecordsEntry<'_>> = data
        .iter()
        .map(|d| PutRecordsEntry {
            partition_key: "pk",
            explicit_hash_key: None,
            data: d,
        })
        .collect();
    block_on(engine.put_records(stream, &entries))
        .unwrap()
        .into_iter()
        .map(|r| r.map(|p| p.offset))
        .collect()
}

fn records(from: usize, n: usize) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|i| format!("record-{i}").into_bytes())
        .collect()
}

/// Every record of shard 0, read as a subscription reads (unmetered).
fn stored(engine: &Engine, stream: &str) -> Vec<Vec<u8>> {
    let mut cursor = block_on(engine.shard_cursor(stream, 0, IteratorType::TrimHorizon)).unwrap();
    let mut out = Vec::new();
    loop {
        let r = block_on(engine.read_at(&cursor, None, 0)).unwrap();
        if r.record_count == 0 {
            return out;
        }
        out.extend(r.records().map(|rec| rec.data().to_vec()));
        cursor.offset = r.next_offset();
    }
}

/// The series of `metric` in `text`, as (stream, value).
fn series(text: &str, metric: &str) -> Vec<(String, u64)> {
    let prefix = format!("riffle_kinesis_{metric}_total{{stream=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (stream, value) = rest.split_once("\"} ").expect("a labelled sample");
            (stream.to_string(), value.parse().expect("a count"))
        })
        .collect()
}

fn scrape(engine: &Engine) -> String {
    let mut registry = riffle_engine::metrics::registry();
    registry
        .sub_registry_with_prefix("kinesis")
        .register_collector(Box::new(KinesisMetrics::new(engine.clone())));
    riffle_engine::metrics::text(&registry).0
}

fn throttled(code: ErrorCode) -> bool {
    code == ErrorCode::ProvisionedThroughputExceeded
}

#[test]
fn puts_past_the_write_rate_are_refused_whole_and_store_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = start(dir.path(), Some(small()));
    block_on(engine.create_stream("limited", 1)).unwrap();
    block_on(engine.create_stream("other", 1)).unwrap();
    let refusal = "Rate exceeded for shard shardId-000000000000 in stream limited under account 000000000000.";

    // 30 records at 10 a second: more than the burst, admitted whole into an
    // idle shard, which then owes 3 s (it takes puts again under 1 s owed:
    // 2 s after the charge, which is before this call returned).
    let big = put(&engine, "limited", &records(0, 30));
    let charged_by = Instant::now();
    assert!(big.iter().all(Result::is_ok), "{big:?}");
    // While in debt: PutRecords' records for the shard are refused together...
    let refused = put(&engine, "limited", &records(30, 5));
    assert_eq!(refused.len(), 5);
    for r in &refused {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.code, ErrorCode::ProvisionedThroughputExceeded);
        assert_eq!(e.code.aws_name(), "ProvisionedThroughputExceededException");
        assert_eq!(e.message, refusal);
    }
    // ...PutRecord is refused...
    let e = block_on(engine.put_record("limited", "pk", None, b"one")).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::ProvisionedThroughputExceeded, refusal)
    );
    // ...and so is a batch put as the native protocol and Firehose do.
    let e =
        block_on(engine.append_records("limited", 0, &[b"native".as_slice()], "pk")).unwrap_err();
    assert_eq!(e.message, refusal);
    // Another stream's shard has its own budget.
    assert!(
        put(&engine, "other", &records(0, 20))
            .iter()
            .all(Result::is_ok)
    );
    assert!(
        put(&engine, "other", &records(20, 1))[0]
            .as_ref()
            .is_err_and(|e| throttled(e.code))
    );

    // Once the debt is under a second, puts are admitted again.
    let paid = charged_by + Duration::from_secs(2) + Duration::from_millis(50);
    std::thread::sleep(paid.saturating_duration_since(Instant::now()));
    let after = put(&engine, "limited", &records(100, 1));
    assert_eq!(after, vec![Ok(30)]);

    // Nothing refused was stored.
    let mut want = records(0, 30);
    want.extend(records(100, 1));
    assert_eq!(stored(&engine, "limited"), want);

    // Refused records are counted per stream; reads refused none.
    let text = scrape(&engine);
    assert_eq!(
        series(&text, "write_provisioned_throughput_exceeded"),
        vec![("limited".to_string(), 7), ("other".to_string(), 1)],
        "{text}"
    );
    assert_eq!(
        series(&text, "read_provisioned_throughput_exceeded"),
        vec![("limited".to_string(), 0), ("other".to_string(), 0)]
    );
    assert!(
        text.contains("# TYPE riffle_kinesis_write_provisioned_throughput_exceeded_total counter")
    );

    // A deleted stream's series go; created again, it starts from zero.
    block_on(engine.delete_stream("limited")).unwrap();
    let text = scrape(&engine);
    assert_eq!(
        series(&text, "write_provisioned_throughput_exceeded"),
        vec![("other".to_string(), 1)]
    );
    block_on(engine.create_stream("limited", 1)).unwrap();
    let text = scrape(&engine);
    assert_eq!(
        series(&text, "write_provisioned_throughput_exceeded"),
        vec![("limited".to_string(), 0), ("other".to_string(), 1)]
    );
    engine.shutdown().unwrap();
}

#[test]
fn internal_streams_are_not_limited() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = start(dir.path(), Some(small()));
    block_on(engine.create_stream("svc:own", 1)).unwrap();
    let data = records(0, 30);
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    for round in 0..4 {
        block_on(engine.append_records("svc:own", 0, &refs, "pk"))
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    assert_eq!(stored(&engine, "svc:own").len(), 120);
    // Not a Kinesis stream: no series.
    assert!(!scrape(&engine).contains("svc:own"));
    engine.shutdown().unwrap();
}

#[test]
fn get_records_past_the_read_rate_is_refused_and_other_readers_are_not() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = start(dir.path(), Some(small()));
    block_on(engine.create_stream("reads", 1)).unwrap();
    let refusal = "Rate exceeded for Shard - 000000000000/reads/shardId-000000000000";
    let it = block_on(engine.get_shard_iterator(
        "reads",
        "shardId-000000000000",
        IteratorType::TrimHorizon,
    ))
    .unwrap();

    // Five calls a second: an idle shard takes five at once (and a sixth once
    // any time has passed, the debt being under a second again); quick calls
    // after those are refused.
    for i in 0..5 {
        block_on(engine.get_records(&it, None)).unwrap_or_else(|e| panic!("call {i}: {e:?}"));
    }
    let mut calls = 5;
    let e = loop {
        calls += 1;
        assert!(calls <= 10, "no call refused");
        if let Err(e) = block_on(engine.get_records(&it, None)) {
            break e;
        }
    };
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::ProvisionedThroughputExceeded, refusal)
    );
    assert_eq!(e.code.aws_name(), "ProvisionedThroughputExceededException");

    // The shard is in read debt: subscriptions (`read_at`) and followers
    // (`follow_at`, Firehose's delivery) read on regardless, as do writes.
    let cursor = block_on(engine.shard_cursor("reads", 0, IteratorType::TrimHorizon)).unwrap();
    assert!(
        put(&engine, "reads", &records(0, 10))
            .iter()
            .all(Result::is_ok)
    );
    for i in 0..20 {
        let r = block_on(engine.read_at(&cursor, None, 0))
            .unwrap_or_else(|e| panic!("read {i}: {e:?}"));
        assert_eq!(r.record_count, 10);
        let r = block_on(engine.follow_at(&cursor, None, 0, 1))
            .unwrap_or_else(|e| panic!("follow {i}: {e:?}"));
        assert_eq!(r.record_count, 10);
    }
    let text = scrape(&engine);
    assert_eq!(
        series(&text, "read_provisioned_throughput_exceeded"),
        vec![("reads".to_string(), 1)],
        "{text}"
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_read_that_served_more_than_the_byte_rate_puts_the_shard_in_debt() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = start(dir.path(), Some(small()));
    block_on(engine.create_stream("bytes", 1)).unwrap();
    // 10 records of 300 bytes (and a 2-byte key): 3020 bytes, 3 s of reads
    // at 1000 bytes a second.
    let data: Vec<Vec<u8>> = (0..10).map(|i| vec![b'a' + i as u8; 300]).collect();
    assert!(put(&engine, "bytes", &data).iter().all(Result::is_ok));
    let it = block_on(engine.get_shard_iterator(
        "bytes",
        "shardId-000000000000",
        IteratorType::TrimHorizon,
    ))
    .unwrap();
    let first = block_on(engine.get_records(&it, None)).unwrap();
    let served_by = Instant::now();
    assert_eq!(first.record_count, 10);
    // Only the second call in the shard's life, refused for the bytes served.
    let e = block_on(engine.get_records(first.next_shard_iterator.as_ref().unwrap(), None))
        .unwrap_err();
    assert!(throttled(e.code), "{e:?}");
    // Once less than a second of bytes is owed, calls are admitted again.
    let paid = served_by + Duration::from_millis(2020 + 50);
    std::thread::sleep(paid.saturating_duration_since(Instant::now()));
    let next =
        block_on(engine.get_records(first.next_shard_iterator.as_ref().unwrap(), None)).unwrap();
    assert_eq!(next.record_count, 0);
    engine.shutdown().unwrap();
}

#[test]
fn without_limits_nothing_is_refused() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = start(dir.path(), None);
    block_on(engine.create_stream("free", 1)).unwrap();
    for round in 0..4 {
        let got = put(&engine, "free", &records(round * 500, 500));
        assert!(got.iter().all(Result::is_ok), "round {round}");
    }
    let it = block_on(engine.get_shard_iterator(
        "free",
        "shardId-000000000000",
        IteratorType::TrimHorizon,
    ))
    .unwrap();
    for i in 0..20 {
        block_on(engine.get_records(&it, None)).unwrap_or_else(|e| panic!("call {i}: {e:?}"));
    }
    assert_eq!(stored(&engine, "free").len(), 2000);
    // No limits, no such metrics.
    assert!(!scrape(&engine).contains("provisioned_throughput_exceeded"));
    engine.shutdown().unwrap();
}

#[test]
fn limits_of_zero_are_refused_at_start() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut c = EngineConfig::new(dir.path());
    c.shard_limits = Some(ShardLimits {
        read_calls_per_s: 0,
        ..ShardLimits::aws()
    });
    let e = Engine::start(c).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(
        e.message,
        "shard_limits.read_calls_per_s must be at least 1"
    );
}
