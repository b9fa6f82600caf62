//! The streams catalog's files keep their place and their bytes now that the
//! catalog is one instance of the generic metadata log: a data dir written before
//! (the bytes below are what that code wrote for these five events) opens
//! unchanged, and the same events written now give the same bytes.
//!
//! Events, with `snapshot_every` 3: create `a` (2 shards), tag it, turn the
//! billing commitment on (snapshot after these three), create `b`, register a
//! consumer on `b` (the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_lite::future::block_on;
use riffle_protocol::Limits;
use riffle_store::catalog::{Catalog, CatalogEvent, SettingsChange};
use riffle_store::sim::SimStorage;
use riffle_store::storage::{IoBuf, Storage, StorageFile};

const DIR: &str = "/data/catalog";
const SNAPSHOT_EVERY: u32 = 3;

/// `catalog.snapshot` content (inside the atomic-file wrapper), after event 3.
const SNAPSHOT_JSON: &str = concat!(
    r#"{"streams":{"a":{"id":1,"name":"a","shards":[{"index":0,"hash_key_start":"0","#,
    r#""hash_key_end":"170141183460469231731687303715884105727"},{"index":1,"#,
    r#""hash_key_start":"170141183460469231731687303715884105728","#,
    r#""hash_key_end":"340282366920938463463374607431768211455"}],"retention_hours":24,"#,
    r#""created_ms":1000,"tags":{"k":"v"},"settings":{"encryption_key":null,"#,
    r#""shard_level_metrics":[],"resource_policy":null,"on_demand":false,"consumers":{},"#,
    r#""max_record_size_kib":null,"warm_throughput_mibps":null}}},"#,
    r#""account":{"billing_commitment_since_ms":5},"next_stream_id":2,"last_seq":3}"#
);

/// `catalog.log` frames after the snapshot: `[len u32][crc32c u32]` as written,
/// then the payload.
const FRAMES: [([u8; 8], &str); 2] = [
    (
        [0x6b, 0, 0, 0, 0xfb, 0x70, 0x91, 0xad],
        r#"{"seq":4,"event":{"type":"CreateStream","name":"b","shard_count":1,"retention_hours":48,"created_ms":2000}}"#,
    ),
    (
        [0x78, 0, 0, 0, 0x20, 0x20, 0xa4, 0x89],
        r#"{"seq":5,"event":{"type":"ChangeSettings","name":"b","change":{"RegisterConsumer":{"consumer":"c1","created_ms":3000}}}}"#,
    ),
];

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn snapshot_path() -> PathBuf {
    dir().join("catalog.snapshot")
}

fn log_path() -> PathBuf {
    dir().join("catalog.log")
}

/// The snapshot file: `[len: u32 LE][crc32c(JSON) ^ 0xa282ead8: u32 LE][JSON][zeros to 4 KiB]`.
fn snapshot_bytes() -> Vec<u8> {
    let mut bytes = (SNAPSHOT_JSON.len() as u32).to_le_bytes().to_vec();
    bytes
        .extend_from_slice(&(crc32c::crc32c(SNAPSHOT_JSON.as_bytes()) ^ 0xa282_ead8).to_le_bytes());
    bytes.extend_from_slice(SNAPSHOT_JSON.as_bytes());
    bytes.resize(4096, 0);
    bytes
}

/// The snapshot file as written before it carried a crc: `[len: u64 LE][JSON][zeros]`.
fn legacy_snapshot_bytes() -> Vec<u8> {
    let mut bytes = (SNAPSHOT_JSON.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(SNAPSHOT_JSON.as_bytes());
    bytes.resize(4096, 0);
    bytes
}

/// The log file: each frame zero-padded to a multiple of 8, then zeros to 4 KiB.
fn log_bytes() -> Vec<u8> {
    let mut bytes = Vec::new();
    for (header, payload) in FRAMES {
        assert_eq!(header[..4], (payload.len() as u32).to_le_bytes());
        assert_eq!(
            header[4..],
            crc32c::crc32c(payload.as_bytes()).to_le_bytes()
        );
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(payload.as_bytes());
        bytes.resize(bytes.len().next_multiple_of(8), 0);
    }
    assert_eq!(bytes.len(), 248);
    bytes.resize(4096, 0);
    bytes
}

fn events() -> Vec<CatalogEvent> {
    vec![
        CatalogEvent::CreateStream {
            name: "a".into(),
            shard_count: 2,
            retention_hours: 24,
            created_ms: 1000,
        },
        CatalogEvent::AddTags {
            name: "a".into(),
            tags: BTreeMap::from([("k".to_string(), "v".to_string())]),
        },
        CatalogEvent::SetBillingCommitment {
            enabled: true,
            at_ms: 5,
        },
        CatalogEvent::CreateStream {
            name: "b".into(),
            shard_count: 1,
            retention_hours: 48,
            created_ms: 2000,
        },
        CatalogEvent::ChangeSettings {
            name: "b".into(),
            change: SettingsChange::RegisterConsumer {
                consumer: "c1".into(),
                created_ms: 3000,
            },
        },
    ]
}

async fn write(storage: &SimStorage, path: &Path, bytes: &[u8]) {
    let file = storage.open(path, true).await.unwrap();
    let mut buf = file.alloc(bytes.len());
    buf.as_bytes_mut().copy_from_slice(bytes);
    file.write_at(buf, 0).await.unwrap();
    file.sync().await.unwrap();
}

async fn read(storage: &SimStorage, path: &Path) -> Vec<u8> {
    let file = storage.open(path, false).await.unwrap();
    let len = file.len().await.unwrap();
    file.read_at(0, len as usize).await.unwrap().to_vec()
}

#[test]
fn a_catalog_written_before_opens_unchanged() {
    // Snapshots with their crc, and as written before snapshots carried one.
    for snapshot in [snapshot_bytes(), legacy_snapshot_bytes()] {
        a_catalog_opens_unchanged(&snapshot);
    }
}

#[test]
fn a_snapshot_with_a_flipped_bit_is_corrupt() {
    block_on(async {
        let storage = SimStorage::new(1);
        storage.create_dir_all(dir()).await.unwrap();
        let mut snapshot = snapshot_bytes();
        // `{"streams"...` -> `{"rtreams"...`: still JSON, and fields default.
        snapshot[8 + 2] ^= 0x01;
        write(&storage, &snapshot_path(), &snapshot).await;
        write(&storage, &log_path(), &log_bytes()).await;
        let e = Catalog::open(storage.clone(), dir(), 10)
            .await
            .err()
            .expect("a corrupt snapshot is refused");
        assert!(format!("{e}").contains("crc"), "{e}");
    });
}

fn a_catalog_opens_unchanged(snapshot: &[u8]) {
    block_on(async {
        let storage = SimStorage::new(1);
        storage.create_dir_all(dir()).await.unwrap();
        write(&storage, &snapshot_path(), snapshot).await;
        write(&storage, &log_path(), &log_bytes()).await;

        // Snapshots rarer than when written: the next event goes to the log.
        let mut catalog = Catalog::open(storage.clone(), dir(), 10).await.unwrap();
        let state = catalog.state();
        assert_eq!(catalog.log().last_seq(), 5);
        assert_eq!(state.next_stream_id(), 3);
        assert_eq!(state.account().billing_commitment_since_ms, Some(5));
        let a = state.get("a").unwrap();
        assert_eq!((a.id, a.shards.len(), a.retention_hours), (1, 2, 24));
        assert_eq!(a.tags["k"], "v");
        let b = state.get("b").unwrap();
        assert_eq!((b.id, b.shards.len(), b.retention_hours), (2, 1, 48));
        assert_eq!(b.settings.consumers["c1"], 3000);

        // Later events go after the old frames and replay with them.
        catalog
            .apply(
                CatalogEvent::DeleteStream { name: "a".into() },
                &Limits::default(),
            )
            .await
            .unwrap();
        assert_eq!(catalog.log().log_end(), 248 + 64);
        let expected = catalog.state().clone();
        drop(catalog);
        let catalog = Catalog::open(storage.restart(), dir(), 10).await.unwrap();
        assert_eq!(catalog.state(), &expected);
        assert_eq!(catalog.log().last_seq(), 6);
    });
}

#[test]
fn the_same_events_write_the_same_bytes() {
    block_on(async {
        let storage = SimStorage::new(1);
        let mut catalog = Catalog::open(storage.clone(), dir(), SNAPSHOT_EVERY)
            .await
            .unwrap();
        for event in events() {
            catalog.apply(event, &Limits::default()).await.unwrap();
        }
        assert_eq!(catalog.log().snapshot_path(), snapshot_path());
        assert_eq!(catalog.log().log_path(), log_path());
        let snapshot = read(&storage, &snapshot_path()).await;
        assert_eq!(
            String::from_utf8_lossy(&snapshot[8..8 + SNAPSHOT_JSON.len()]),
            SNAPSHOT_JSON
        );
        assert_eq!(snapshot, snapshot_bytes());
        assert_eq!(read(&storage, &log_path()).await, log_bytes());
        let mut names: Vec<PathBuf> = storage.files();
        names.sort();
        assert_eq!(names, [log_path(), snapshot_path()]);
    });
}
