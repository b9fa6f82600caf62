//! Encryption at rest through `Engine` on real storage, for what the
//! end-to-end tests (tests/python/test_encryption.py) cannot time: a read
//! that waits for records while encryption starts gets the records
//! encrypted meanwhile (its stream's data keys are looked up when a batch
//! needs one); a key is used again when StartStreamEncryption names it again;
//! a key refused mid-read serves what was read before it; malformed key ARNs
//! are refused, never looped on.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::block_on;
use riffle_engine::kms::Kms;
use riffle_engine::kms::keyring::{KeyState, Keyring};
use riffle_engine::{Engine, EngineConfig, PutRecordsEntry};
use riffle_protocol::ErrorCode;
use riffle_store::iterator::IteratorType;

fn start(dir: &std::path::Path, kms: Arc<Kms>) -> Engine {
    let mut c = EngineConfig::new(dir.join("data"));
    c.cores = 2;
    c.pin = false;
    c.iterator_secret = Some([7; 32]);
    c.kms = Some(kms);
    Engine::start(c).unwrap()
}

fn keyring(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("keyring.json");
    Keyring::update(&path, None, true, |k| {
        k.create_key(Some("a"), "")?;
        Ok(((), true))
    })
    .unwrap();
    path
}

fn put(engine: &Engine, stream: &str, data: &[u8]) -> Result<u64, riffle_protocol::Error> {
    let entry = PutRecordsEntry {
        partition_key: "pk",
        explicit_hash_key: None,
        data,
    };
    block_on(engine.put_records(stream, std::slice::from_ref(&entry)))?
        .pop()
        .unwrap()
        .map(|p| p.offset)
}

fn data_key_count(engine: &Engine, stream: &str) -> usize {
    engine.settings(stream).unwrap().data_keys.len()
}

#[test]
fn a_waiting_read_gets_what_was_encrypted_while_it_waited() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Kms::open(&keyring(dir.path()), None, "111122223333", "us-east-1").unwrap();
    let engine = start(dir.path(), kms);
    block_on(engine.create_stream("s", 1)).unwrap();
    let cursor = block_on(engine.shard_cursor("s", 0, IteratorType::Latest)).unwrap();
    // The read begins while the stream has no data key at all.
    let reader = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.read_at(&cursor, None, 20_000)))
    };
    // Give the read time to reach its wait (it would also pass if the put
    // came first: the point is the usual order).
    std::thread::sleep(Duration::from_millis(200));
    block_on(engine.start_encryption("s", "alias/a")).unwrap();
    put(&engine, "s", b"encrypted while a reader waited").unwrap();
    let got = reader.join().unwrap().unwrap();
    let data: Vec<Vec<u8>> = got.records().map(|r| r.data().to_vec()).collect();
    assert_eq!(data, [b"encrypted while a reader waited".to_vec()]);
    engine.shutdown().unwrap();
}

#[test]
fn the_same_key_named_again_keeps_its_data_key_and_a_new_key_adds_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring(dir.path());
    let kms = Kms::open(&path, None, "111122223333", "us-east-1").unwrap();
    let engine = start(dir.path(), kms);
    block_on(engine.create_stream("s", 1)).unwrap();
    block_on(engine.start_encryption("s", "alias/a")).unwrap();
    assert_eq!(data_key_count(&engine, "s"), 1);
    block_on(engine.start_encryption("s", "alias/a")).unwrap();
    block_on(engine.stop_encryption("s")).unwrap();
    block_on(engine.start_encryption("s", "alias/a")).unwrap();
    assert_eq!(data_key_count(&engine, "s"), 1, "one KMS key, one data key");
    block_on(engine.start_encryption("s", "alias/aws/kinesis")).unwrap();
    assert_eq!(data_key_count(&engine, "s"), 2);
    // Malformed ARNs of the managed alias are missing keys, at once.
    for bad in [
        "arn:aws:kms:alias/aws/kinesis",
        "arn:a:b:c:d:e:alias/aws/kinesis",
        "arn:aws:s3:us-east-1:1:alias/aws/kinesis",
    ] {
        let e = block_on(engine.start_encryption("s", bad)).unwrap_err();
        assert_eq!(e.code, ErrorCode::KmsNotFound, "{bad}: {e}");
    }
    engine.shutdown().unwrap();
}

#[test]
fn a_key_refused_mid_read_serves_what_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring(dir.path());
    let kms = Kms::open(&path, None, "111122223333", "us-east-1").unwrap();
    let engine = start(dir.path(), kms.clone());
    block_on(engine.create_stream("s", 1)).unwrap();
    put(&engine, "s", b"clear").unwrap();
    block_on(engine.start_encryption("s", "alias/a")).unwrap();
    put(&engine, "s", b"sealed").unwrap();
    Keyring::update(&path, None, true, |k| {
        k.set_state("alias/a", KeyState::Disabled)?;
        Ok(((), true))
    })
    .unwrap();
    // The watcher reads the file within RELOAD_EVERY; wait for its effect.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while put(&engine, "s", b"probe").is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the key never read as disabled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cursor = block_on(engine.shard_cursor("s", 0, IteratorType::TrimHorizon)).unwrap();
    let got = block_on(engine.read_at(&cursor, None, 0)).unwrap();
    let data: Vec<Vec<u8>> = got.records().map(|r| r.data().to_vec()).collect();
    assert_eq!(data, [b"clear".to_vec()], "the clear record, then a stop");
    let cursor = riffle_store::iterator::IteratorToken {
        offset: got.next_offset(),
        ..cursor
    };
    let e = block_on(engine.read_at(&cursor, None, 0)).unwrap_err();
    assert_eq!(e.code, ErrorCode::KmsDisabled, "{e}");
    engine.shutdown().unwrap();
}
