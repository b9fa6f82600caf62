//! The engine's Rust API end to end on real direct-I/O storage in a temp dir:
//! streams, puts, all five iterator types, GetRecords limits, restart.

use futures_lite::future::block_on;
use riffle_engine::{Durability, Engine, EngineConfig, PutRecordsEntry};
use riffle_protocol::ErrorCode;
use riffle_store::iterator::IteratorType;

fn config(dir: &std::path::Path, durability: Durability) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.cores = 2;
    c.durability = durability;
    c.iterator_secret = Some([7; 32]);
    c.log.segment_size_max = 1 << 20;
    c
}

fn read_all(
    engine: &Engine,
    stream: &str,
    shard: &str,
    kind: IteratorType,
) -> Vec<(String, Vec<u8>, String)> {
    block_on(async {
        let mut it = engine
            .get_shard_iterator(stream, shard, kind)
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let r = engine.get_records(&it, Some(1000)).await.unwrap();
            if r.record_count == 0 {
                assert_eq!(r.millis_behind_latest, 0);
                return out;
            }
            for rec in r.records() {
                out.push((
                    rec.partition_key().to_string(),
                    rec.data().to_vec(),
                    rec.sequence_number(),
                ));
            }
            it = r.next_shard_iterator.unwrap();
        }
    })
}

#[test]
fn put_get_every_iterator_type_and_restart() {
    for durability in [Durability::Fsync, Durability::None] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let engine = Engine::start(config(dir.path(), durability)).unwrap();
        block_on(engine.create_stream("orders", 4)).unwrap();
        assert_eq!(
            block_on(engine.create_stream("orders", 4))
                .unwrap_err()
                .code,
            ErrorCode::ResourceInUse
        );
        let shards = engine.list_shards("orders").unwrap();
        assert_eq!(shards.len(), 4);
        assert_eq!(
            shards[1].hash_key_start,
            85070591730234615865843651857942052864
        );

        // 2,000 records in PutRecords calls of 100 plus single puts.
        let keys: Vec<String> = (0..2000).map(|i| format!("key-{}", i % 37)).collect();
        let datas: Vec<Vec<u8>> = (0..2000)
            .map(|i| format!("payload {i}").into_bytes())
            .collect();
        let mut placed = Vec::new();
        for chunk in (0..2000).collect::<Vec<_>>().chunks(100) {
            let entries: Vec<PutRecordsEntry<'_>> = chunk
                .iter()
                .map(|&i| PutRecordsEntry {
                    partition_key: &keys[i],
                    explicit_hash_key: None,
                    data: &datas[i],
                })
                .collect();
            let results = block_on(engine.put_records("orders", &entries)).unwrap();
            for (&i, r) in chunk.iter().zip(results) {
                placed.push((i, r.unwrap()));
            }
        }
        let explicit =
            block_on(engine.put_record("orders", "x", Some("0"), b"to shard 0")).unwrap();
        assert_eq!(explicit.shard_id(), "shardId-000000000000");

        let mut total = 0;
        for shard in &shards {
            let got = read_all(
                &engine,
                "orders",
                &shard.shard_id,
                IteratorType::TrimHorizon,
            );
            let expected: Vec<&(usize, riffle_engine::PutResult)> = placed
                .iter()
                .filter(|(_, r)| r.shard_id() == shard.shard_id)
                .collect();
            let got_without_explicit: Vec<_> = got.iter().filter(|g| g.0 != "x").collect();
            assert_eq!(got_without_explicit.len(), expected.len());
            for ((k, d, seq), (i, r)) in got_without_explicit.iter().zip(expected) {
                assert_eq!(
                    (k, d, seq),
                    (
                        &keys[*i],
                        &datas[*i],
                        &riffle_protocol::seqno::to_string(r.sequence_number())
                    )
                );
            }
            total += got.len();
            // LATEST at the tip returns nothing, AT/AFTER_SEQUENCE_NUMBER start where asked.
            assert!(read_all(&engine, "orders", &shard.shard_id, IteratorType::Latest).is_empty());
            if got.len() > 2 {
                let seq: u128 = got[1].2.parse().unwrap();
                let at = read_all(
                    &engine,
                    "orders",
                    &shard.shard_id,
                    IteratorType::AtSequenceNumber(seq),
                );
                assert_eq!(at.len(), got.len() - 1);
                let after = read_all(
                    &engine,
                    "orders",
                    &shard.shard_id,
                    IteratorType::AfterSequenceNumber(seq),
                );
                assert_eq!(after.len(), got.len() - 2);
                // A sequence number of another shard is refused.
                let other = if shard.shard_id == shards[0].shard_id {
                    &shards[1]
                } else {
                    &shards[0]
                };
                let err = block_on(engine.get_shard_iterator(
                    "orders",
                    &other.shard_id,
                    IteratorType::AtSequenceNumber(seq),
                ))
                .unwrap_err();
                assert_eq!(err.code, ErrorCode::InvalidArgument);
            }
            assert_eq!(
                read_all(
                    &engine,
                    "orders",
                    &shard.shard_id,
                    IteratorType::AtTimestamp(0)
                )
                .len(),
                got.len()
            );
            assert!(
                read_all(
                    &engine,
                    "orders",
                    &shard.shard_id,
                    IteratorType::AtTimestamp(i64::MAX / 2)
                )
                .is_empty()
            );
        }
        assert_eq!(total, 2001);

        // Limits and bad input.
        let it = block_on(engine.get_shard_iterator(
            "orders",
            &shards[0].shard_id,
            IteratorType::TrimHorizon,
        ))
        .unwrap();
        let r = block_on(engine.get_records(&it, Some(3))).unwrap();
        assert_eq!(r.record_count, 3);
        assert!(block_on(engine.get_records(&it, Some(10_001))).is_err());
        let mut bad = it.clone().into_bytes();
        bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            block_on(engine.get_records(std::str::from_utf8(&bad).unwrap(), None))
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            block_on(engine.put_record("nope", "k", None, b""))
                .unwrap_err()
                .code,
            ErrorCode::ResourceNotFound
        );
        assert_eq!(
            block_on(engine.put_record("orders", "", None, b""))
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        let big = vec![0u8; (1 << 20) + 1];
        assert_eq!(
            block_on(engine.put_record("orders", "k", None, &big))
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );

        // Restart: the catalog and every acknowledged record come back.
        engine.shutdown().unwrap();
        let engine = Engine::start(config(dir.path(), durability)).unwrap();
        assert_eq!(engine.list_streams(), vec!["orders".to_string()]);
        let mut again = 0;
        for shard in &shards {
            again += read_all(
                &engine,
                "orders",
                &shard.shard_id,
                IteratorType::TrimHorizon,
            )
            .len();
        }
        assert_eq!(again, 2001);
        // The old iterator still decodes (same secret) and reads the same stream.
        assert_eq!(
            block_on(engine.get_records(&it, Some(3)))
                .unwrap()
                .record_count,
            3
        );
        block_on(engine.delete_stream("orders")).unwrap();
        assert!(engine.list_streams().is_empty());
        assert_eq!(
            block_on(engine.get_records(&it, None)).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        block_on(engine.create_stream("orders", 1)).unwrap();
        assert_eq!(
            block_on(engine.get_records(&it, None)).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        engine.shutdown().unwrap();
    }
}

#[test]
fn restart_removes_data_of_streams_the_catalog_no_longer_has() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path(), Durability::Fsync)).unwrap();
    block_on(engine.create_stream("kept", 1)).unwrap();
    block_on(engine.put_record("kept", "k", None, b"still here")).unwrap();
    engine.shutdown().unwrap();
    // A crash between the catalog's delete and the removal of the files leaves
    // the data of a stream the catalog does not know.
    let orphan = dir
        .path()
        .join("streams")
        .join("999")
        .join("shardId-000000000000");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("00000000000000000000.seg"), b"stale").unwrap();

    let engine = Engine::start(config(dir.path(), Durability::Fsync)).unwrap();
    assert!(!dir.path().join("streams").join("999").exists());
    let shard = &engine.list_shards("kept").unwrap()[0].shard_id;
    let got = read_all(&engine, "kept", shard, IteratorType::TrimHorizon);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"still here");
    engine.shutdown().unwrap();
}

#[test]
fn a_stream_max_record_size_bounds_puts_and_native_batches() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path(), Durability::Fsync)).unwrap();
    block_on(engine.create_stream("big", 1)).unwrap();
    let record = |len: usize| vec![7u8; len];
    let batch_of = |data: &[u8]| {
        riffle_protocol::batch::BatchBuilder::new().encode(&[riffle_protocol::batch::RecordIn {
            partition_key: "k",
            explicit_hash_key: None,
            data,
            arrival_ms: 0,
        }])
    };
    let over = record((1 << 20) + 1);
    let refused = block_on(engine.put_record("big", "k", None, &over)).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    let refused = block_on(engine.append_batch("big", None, 0, batch_of(&over))).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);

    block_on(engine.change_settings(
        "big",
        riffle_store::catalog::SettingsChange::MaxRecordSize { kib: 4096 },
    ))
    .unwrap();
    block_on(engine.put_record("big", "k", None, &over)).unwrap();
    block_on(engine.append_batch("big", None, 0, batch_of(&record(4 << 20)))).unwrap();
    let refused = block_on(engine.append_batch("big", None, 0, batch_of(&record((4 << 20) + 1))))
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    let got = read_all(
        &engine,
        "big",
        "shardId-000000000000",
        IteratorType::TrimHorizon,
    );
    assert_eq!(
        got.iter().map(|r| r.1.len()).collect::<Vec<_>>(),
        [(1 << 20) + 1, 4 << 20]
    );
    engine.shutdown().unwrap();
}

#[test]
fn append_records_spreads_batches_over_open_shards() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path(), Durability::Fsync)).unwrap();
    block_on(engine.create_stream("spread", 2)).unwrap();
    // The spread picks the open shard (modulo their count); records land in
    // order at base_offset + i.
    let (first, a) =
        block_on(engine.append_records("spread", 0, &[&b"a0"[..], b"a1"], "pk")).unwrap();
    let (second, b) = block_on(engine.append_records("spread", 1, &[&b"b0"[..]], "pk")).unwrap();
    let (third, c) = block_on(engine.append_records("spread", 2, &[&b"c0"[..]], "pk")).unwrap();
    assert_eq!((first, second, third), (0, 1, 0));
    assert_eq!((a.base_offset, a.record_count), (0, 2));
    assert_eq!((b.base_offset, c.base_offset), (0, 2));
    let shards = engine.list_shards("spread").unwrap();
    let got = read_all(
        &engine,
        "spread",
        &shards[0].shard_id,
        IteratorType::TrimHorizon,
    );
    let data: Vec<&[u8]> = got.iter().map(|r| &r.1[..]).collect();
    assert_eq!(data, [&b"a0"[..], b"a1", b"c0"]);
    assert!(got.iter().all(|r| r.0 == "pk"));
    // Refusals: no records, a record past the stream's limit, no such stream.
    let none: &[&[u8]] = &[];
    assert_eq!(
        block_on(engine.append_records("spread", 0, none, "pk"))
            .unwrap_err()
            .code,
        ErrorCode::InvalidArgument
    );
    let big = vec![0u8; (1 << 20) + 1];
    assert_eq!(
        block_on(engine.append_records("spread", 0, &[&big[..]], "pk"))
            .unwrap_err()
            .code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        block_on(engine.append_records("nope", 0, &[&b"x"[..]], "pk"))
            .unwrap_err()
            .code,
        ErrorCode::ResourceNotFound
    );
    engine.shutdown().unwrap();
}

#[test]
fn keyed_and_built_appends_keep_their_keys_and_go_round_the_open_shards() {
    use riffle_protocol::batch::{BatchBuilder, RecordIn};
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let engine = Engine::start(config(dir.path(), Durability::Fsync)).unwrap();
    block_on(engine.create_stream("rows", 2)).unwrap();
    // Keys are stored as given, not used to route: spread 1 is shard 1.
    let (shard, a) =
        block_on(engine.append_keyed("rows", 1, &[("k-a", &b"a"[..]), ("k-b", b"b")])).unwrap();
    assert_eq!((shard, a.base_offset, a.record_count), (1, 0, 2));
    let built = |key: &'static str, data: &'static [u8]| {
        BatchBuilder::new().build_to_append(&[RecordIn {
            partition_key: key,
            explicit_hash_key: None,
            data,
            arrival_ms: 0,
        }])
    };
    let (shard, c) = block_on(engine.append_built("rows", 2, built("k-c", b"c"))).unwrap();
    assert_eq!((shard, c.base_offset), (0, 0));
    let (shard, d) = block_on(engine.append_built("rows", 3, built("k-d", b"d"))).unwrap();
    assert_eq!((shard, d.base_offset), (1, 2));
    let shards = engine.list_shards("rows").unwrap();
    let read = |i: usize| -> Vec<(String, Vec<u8>)> {
        read_all(
            &engine,
            "rows",
            &shards[i].shard_id,
            IteratorType::TrimHorizon,
        )
        .into_iter()
        .map(|(key, data, _)| (key, data))
        .collect()
    };
    assert_eq!(read(0), [("k-c".to_string(), b"c".to_vec())]);
    assert_eq!(
        read(1),
        [
            ("k-a".to_string(), b"a".to_vec()),
            ("k-b".to_string(), b"b".to_vec()),
            ("k-d".to_string(), b"d".to_vec()),
        ]
    );
    // After a split the sealed parent is no longer among the open shards:
    // spreads go round the two children and shard 1.
    let (lo, hi) = (shards[0].hash_key_start, shards[0].hash_key_end);
    block_on(engine.split_shard("rows", &shards[0].shard_id, lo / 2 + hi / 2)).unwrap();
    let mut landed: Vec<u32> = (0..3)
        .map(|s| {
            block_on(engine.append_built("rows", s, built("k", b"x")))
                .unwrap()
                .0
        })
        .collect();
    landed.sort();
    assert_eq!(landed, [1, 2, 3]);
    // The limits a service checks its records against are the stream's.
    assert_eq!(engine.limits_of("rows").record_data_size_max, 1 << 20);
    block_on(engine.change_settings(
        "rows",
        riffle_store::catalog::SettingsChange::MaxRecordSize { kib: 2048 },
    ))
    .unwrap();
    assert_eq!(engine.limits_of("rows").record_data_size_max, 2 << 20);
    assert_eq!(
        block_on(engine.append_built("nope", 0, built("k", b"x")))
            .unwrap_err()
            .code,
        ErrorCode::ResourceNotFound
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_follower_reads_every_record_once_in_order_while_the_shard_grows() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut c = config(dir.path(), Durability::Fsync);
    // A small cache, and room for the follower's unread batches: reads go
    // through the eviction that keeps them.
    c.log.recent_bytes_max = 4 << 10;
    c.log.follow_bytes_max = 64 << 10;
    let engine = Engine::start(c).unwrap();
    block_on(engine.create_stream("followed", 1)).unwrap();
    let record = |i: usize| format!("{i:05}-{}", "x".repeat(500)).into_bytes();
    let mut cursor =
        block_on(engine.shard_cursor("followed", 0, IteratorType::TrimHorizon)).unwrap();
    let mut got = Vec::new();
    let mut next = 0;
    // Appends run ahead of the reader (past the plain cache, then past the
    // follower's budget too): every record comes back once, in order.
    for round in 0..12 {
        let batch: Vec<Vec<u8>> = (next..next + 40).map(record).collect();
        next += 40;
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        block_on(engine.append_records("followed", 0, &refs, "pk")).unwrap();
        let reads = if round % 4 == 3 { 0 } else { 1 };
        for _ in 0..reads {
            let r = block_on(engine.follow_at(&cursor, Some(25), 0, 7)).unwrap();
            got.extend(r.records().map(|rec| rec.data().to_vec()));
            cursor.offset = r.next_offset();
        }
    }
    loop {
        let r = block_on(engine.follow_at(&cursor, Some(1000), 0, 7)).unwrap();
        if r.record_count == 0 {
            break;
        }
        got.extend(r.records().map(|rec| rec.data().to_vec()));
        cursor.offset = r.next_offset();
    }
    let want: Vec<Vec<u8>> = (0..next).map(record).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "records out of order or repeated");
    engine.shutdown().unwrap();
}
