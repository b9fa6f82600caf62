//! Resharding through the engine's Rust API on real storage: SplitShard,
//! MergeShards and UpdateShardCount close parents with their length, open
//! children with lineage, keep every record readable where it was written, end
//! reads of a closed shard with its children, survive a restart, and lose or
//! duplicate nothing that was put while a reshard ran.

use futures_lite::future::block_on;
use riffle_engine::{Durability, Engine, EngineConfig, PutRecordsEntry};
use riffle_protocol::ErrorCode;
use riffle_store::iterator::IteratorType;

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.cores = 2;
    c.durability = Durability::Fsync;
    c.iterator_secret = Some([7; 32]);
    c.log.segment_size_max = 1 << 20;
    c
}

fn put(engine: &Engine, stream: &str, key: &str, data: &[u8]) -> String {
    block_on(engine.put_record(stream, key, None, data))
        .unwrap()
        .shard_id()
}

/// A batch of one record, as a native client builds it.
fn late_batch() -> rkyv::util::AlignedVec<16> {
    riffle_protocol::batch::BatchBuilder::new().encode(&[riffle_protocol::batch::RecordIn {
        partition_key: "k",
        explicit_hash_key: None,
        data: b"late",
        arrival_ms: 0,
    }])
}

/// Every record of a shard from TRIM_HORIZON to its end, and the children the
/// last read named (None while the shard is open).
fn drain(engine: &Engine, stream: &str, shard: &str) -> (Vec<Vec<u8>>, Option<Vec<String>>) {
    block_on(async {
        let mut it = engine
            .get_shard_iterator(stream, shard, IteratorType::TrimHorizon)
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let r = engine.get_records(&it, Some(1000)).await.unwrap();
            out.extend(r.records().map(|rec| rec.data().to_vec()));
            if let Some(children) = r.child_shards {
                assert!(r.next_shard_iterator.is_none());
                return (
                    out,
                    Some(children.into_iter().map(|c| c.shard_id).collect()),
                );
            }
            if r.record_count == 0 {
                return (out, None);
            }
            it = r.next_shard_iterator.unwrap();
        }
    })
}

#[test]
fn split_then_merge_keeps_records_where_they_were_written() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 1)).unwrap();
    for i in 0..5u8 {
        assert_eq!(
            put(&engine, "s", &format!("k{i}"), &[i]),
            "shardId-000000000000"
        );
    }
    let mid = 1u128 << 127;
    block_on(engine.split_shard("s", "shardId-000000000000", mid)).unwrap();
    let shards = engine.list_shards("s").unwrap();
    assert_eq!(shards.len(), 3);
    let parent = &shards[0];
    assert!(!parent.is_open());
    // The ending sequence number is the last record's (offset 4).
    let seq = |shard: u32, offset: u64| {
        riffle_protocol::seqno::to_string(riffle_protocol::seqno::encode(shard, offset))
    };
    assert_eq!(parent.ending_sequence_number, Some(seq(0, 4)));
    for (child, (start, end)) in shards[1..].iter().zip([(0, mid - 1), (mid, u128::MAX)]) {
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert_eq!((child.hash_key_start, child.hash_key_end), (start, end));
        assert!(child.is_open() && child.adjacent_parent_shard_id.is_none());
    }
    // Records before the split stay in the parent, which then names its children.
    let (records, children) = drain(&engine, "s", "shardId-000000000000");
    assert_eq!(records, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(
        children.unwrap(),
        ["shardId-000000000001", "shardId-000000000002"]
    );
    // New records go to the children, by hash key.
    let low = engine.list_shards("s").unwrap()[1].clone();
    let got = block_on(engine.put_record("s", "x", Some("1"), b"low")).unwrap();
    assert_eq!(got.shard_id(), low.shard_id);
    let got = block_on(engine.put_record("s", "x", Some(&mid.to_string()), b"high")).unwrap();
    assert_eq!(got.shard_id(), "shardId-000000000002");
    // The parent refuses direct appends (the native protocol's path).
    let batch = late_batch();
    let e = block_on(engine.append_batch("s", None, 0, batch)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFound);
    // Splitting it again is refused.
    let e = block_on(engine.split_shard("s", "shardId-000000000000", 5)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceInUse);

    block_on(engine.merge_shards("s", "shardId-000000000001", "shardId-000000000002")).unwrap();
    let shards = engine.list_shards("s").unwrap();
    let merged = &shards[3];
    assert_eq!(
        (
            merged.parent_shard_id.as_deref(),
            merged.adjacent_parent_shard_id.as_deref()
        ),
        (Some("shardId-000000000001"), Some("shardId-000000000002"))
    );
    assert_eq!((merged.hash_key_start, merged.hash_key_end), (0, u128::MAX));
    let (records, children) = drain(&engine, "s", "shardId-000000000002");
    assert_eq!(records, vec![b"high".to_vec()]);
    assert_eq!(children.unwrap(), ["shardId-000000000003"]);
    assert_eq!(put(&engine, "s", "any", b"z"), "shardId-000000000003");

    // A LATEST iterator on a closed shard reads nothing and ends at once.
    block_on(async {
        let it = engine
            .get_shard_iterator("s", "shardId-000000000001", IteratorType::Latest)
            .await
            .unwrap();
        let r = engine.get_records(&it, None).await.unwrap();
        assert_eq!(r.record_count, 0);
        assert_eq!(r.child_shards.unwrap()[0].parent_shard_ids.len(), 2);
    });

    // Everything survives a restart: lineage, lengths, sealing, routing.
    engine.shutdown().unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    assert_eq!(engine.list_shards("s").unwrap(), shards);
    let (records, children) = drain(&engine, "s", "shardId-000000000000");
    assert_eq!(records.len(), 5);
    assert!(children.is_some());
    let batch = late_batch();
    assert_eq!(
        block_on(engine.append_batch("s", None, 1, batch))
            .unwrap_err()
            .code,
        ErrorCode::ResourceNotFound
    );
    assert_eq!(put(&engine, "s", "any", b"z2"), "shardId-000000000003");
    assert_eq!(
        drain(&engine, "s", "shardId-000000000003").0,
        vec![b"z".to_vec(), b"z2".to_vec()]
    );
    engine.shutdown().unwrap();
}

#[test]
fn update_shard_count_scales_uniformly_and_puts_during_it_land_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path())).unwrap();
    block_on(engine.create_stream("s", 3)).unwrap();
    // Writers keep putting while the stream is resharded twice.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                    let data: Vec<Vec<u8>> = (0..5)
                        .map(|j| format!("{w}-{n}-{j}").into_bytes())
                        .collect();
                    let keys: Vec<String> = (0..5).map(|j| format!("key-{n}-{j}")).collect();
                    let entries: Vec<PutRecordsEntry> = data
                        .iter()
                        .zip(&keys)
                        .map(|(d, k)| PutRecordsEntry {
                            partition_key: k,
                            explicit_hash_key: None,
                            data: d,
                        })
                        .collect();
                    for r in block_on(engine.put_records("s", &entries)).unwrap() {
                        r.expect("no record is refused while resharding");
                    }
                    sent.extend(data);
                    n += 1;
                }
                sent
            })
        })
        .collect();
    block_on(engine.update_shard_count("s", 5)).unwrap();
    block_on(engine.update_shard_count("s", 3)).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent: Vec<Vec<u8>> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    let shards = engine.list_shards("s").unwrap();
    let open: Vec<_> = shards.iter().filter(|s| s.is_open()).collect();
    let even = riffle_protocol::routing::even_split(3);
    assert_eq!(
        open.iter()
            .map(|s| (s.hash_key_start, s.hash_key_end))
            .collect::<Vec<_>>(),
        even
    );
    // Every shard, open or closed, read to its end: each record exactly once.
    let mut got: Vec<Vec<u8>> = shards
        .iter()
        .flat_map(|s| drain(&engine, "s", &s.shard_id).0)
        .collect();
    sent.sort();
    got.sort();
    assert_eq!(got.len(), sent.len());
    assert_eq!(got, sent);
    // Every closed shard names its children; each child's parents are closed.
    for s in shards.iter().filter(|s| !s.is_open()) {
        let children = drain(&engine, "s", &s.shard_id)
            .1
            .expect("closed shard ends");
        assert!(!children.is_empty());
    }
    // Out of AWS's bounds: more than double, less than half.
    let e = block_on(engine.update_shard_count("s", 7)).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    let e = block_on(engine.update_shard_count("s", 1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    let e = block_on(engine.update_shard_count("nope", 2)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFound);
    engine.shutdown().unwrap();
}
