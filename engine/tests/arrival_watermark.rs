//! A shard read's arrival watermark (`GetRecordsOutput::arrival_watermark_ms`)
//! through the engine's Rust API on real storage: given at the tip of an idle,
//! empty or closed shard, a lower bound for every later put's arrival, and
//! withheld from a reader that is behind.

use futures_lite::future::block_on;
use riffle_engine::{Durability, Engine, EngineConfig, GetRecordsOutput};
use riffle_store::iterator::IteratorType;

const SHARD: &str = "shardId-000000000000";

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.cores = 2;
    c.durability = Durability::Fsync;
    c.iterator_secret = Some([7; 32]);
    c.log.segment_size_max = 1 << 20;
    c
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An iterator at `kind` on `stream`'s first shard.
fn iterator(engine: &Engine, stream: &str, kind: IteratorType) -> String {
    block_on(engine.get_shard_iterator(stream, SHARD, kind)).unwrap()
}

fn read(engine: &Engine, iterator: &str, limit: u32) -> GetRecordsOutput {
    block_on(engine.get_records(iterator, Some(limit))).unwrap()
}

fn put(engine: &Engine, stream: &str, data: &[u8]) -> i64 {
    block_on(engine.put_record(stream, "k", None, data))
        .unwrap()
        .arrival_ms
}

#[test]
fn an_idle_shard_read_at_its_tip_bounds_every_later_arrival() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    let arrivals: Vec<i64> = (0..3u8).map(|i| put(&engine, "s", &[i])).collect();

    let all = read(
        &engine,
        &iterator(&engine, "s", IteratorType::TrimHorizon),
        100,
    );
    let after = wall_ms();
    assert_eq!(all.record_count, 3);
    let last = all.records().last().unwrap().arrival_ms();
    assert_eq!(last, arrivals[2]);
    let t = all.arrival_watermark_ms().expect("caught up: a watermark");
    assert!(last <= t && t <= after, "{last} <= {t} <= {after}");

    // A put after that read arrives at or after the watermark.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let arrival = put(&engine, "s", b"later");
    assert!(arrival >= t, "{arrival} >= {t}");
    let next = read(&engine, all.next_shard_iterator.as_deref().unwrap(), 100);
    let got: Vec<(Vec<u8>, i64)> = next
        .records()
        .map(|r| (r.data().to_vec(), r.arrival_ms()))
        .collect();
    assert_eq!(got, [(b"later".to_vec(), arrival)]);
    assert!(next.arrival_watermark_ms().is_some_and(|t2| t2 >= arrival));
}

#[test]
fn a_reader_behind_the_tip_gets_no_watermark() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    for i in 0..5u8 {
        put(&engine, "s", &[i]);
    }
    let first = read(
        &engine,
        &iterator(&engine, "s", IteratorType::TrimHorizon),
        2,
    );
    assert_eq!((first.record_count, first.behind()), (2, true));
    assert_eq!(first.arrival_watermark_ms(), None);
    // The rest of the shard, to its end: caught up.
    let rest = read(&engine, first.next_shard_iterator.as_deref().unwrap(), 3);
    assert_eq!(rest.record_count, 3);
    assert!(rest.arrival_watermark_ms().is_some());
}

#[test]
fn an_empty_shard_read_gets_a_watermark() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    let before = wall_ms();
    let out = read(&engine, &iterator(&engine, "s", IteratorType::Latest), 100);
    let after = wall_ms();
    assert_eq!(out.record_count, 0);
    let t = out
        .arrival_watermark_ms()
        .expect("an empty shard is caught up");
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
    assert!(put(&engine, "s", b"first") >= t);
}

#[test]
fn a_closed_shard_read_to_its_end_gets_a_watermark() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    for i in 0..3u8 {
        put(&engine, "s", &[i]);
    }
    block_on(engine.split_shard("s", SHARD, 1u128 << 127)).unwrap();
    let it = iterator(&engine, "s", IteratorType::TrimHorizon);
    let behind = read(&engine, &it, 1);
    assert!(behind.child_shards.is_none());
    assert_eq!(behind.arrival_watermark_ms(), None);
    let end = read(&engine, &it, 100);
    assert_eq!(end.record_count, 3);
    assert!(end.child_shards.is_some());
    let last = end.records().last().unwrap().arrival_ms();
    assert!(end.arrival_watermark_ms().is_some_and(|t| t >= last));
}

/// Every watermark a tailing reader sees while a writer puts (each put rolling
/// to a new segment first, so the pump awaits between reading its clock and
/// stamping the batch) bounds the arrivals of the records after it.
#[test]
fn watermarks_hold_while_segments_roll() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut c = config(dir.path());
    c.log.segment_age_ms_max = 0; // roll before every append to a non-empty segment
    let engine = Engine::start(c).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    let puts = 60;
    let start = iterator(&engine, "s", IteratorType::TrimHorizon);
    // (next offset, watermark) of every caught-up read.
    let marks = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for i in 0..puts {
                put(&engine, "s", &[i]);
            }
        });
        let mut marks = Vec::new();
        let mut it = start.clone();
        while !writer.is_finished() {
            let out = read(&engine, &it, 10_000);
            if let Some(t) = out.arrival_watermark_ms() {
                marks.push((out.next_offset(), t));
            }
            it = out.next_shard_iterator.unwrap();
        }
        marks
    });
    assert!(!marks.is_empty());
    let all = read(&engine, &start, 10_000);
    let arrivals: Vec<i64> = all.records().map(|r| r.arrival_ms()).collect();
    assert_eq!(arrivals.len(), puts as usize);
    for (offset, t) in marks {
        if let Some(&a) = arrivals.get(offset as usize) {
            assert!(
                a >= t,
                "record {offset} arrived at {a}, before watermark {t}"
            );
        }
    }
}
