//! The metadata log on the simulated disk: replay equals the state, crash at every
//! sync, torn tail, corruption, a snapshot mid-way, an oversized event, injected
//! I/O failures. The generic checks are
//! [`riffle_store::metalog::testkit::suite`], run here on two state machines: the
//! streams catalog (`CatalogState`) and `Versions` (names to versions, stale
//! versions refused), through [`riffle_store::metalog::testkit::Subject`]. The
//! tests below them need a particular state machine.
//!
//! An event is acknowledged when `MetaLog::apply` returned `Ok`. After a crash the
//! recovered state must equal the in-memory reference with every acknowledged
//! event, plus at most the one in flight, and the log must take new events.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-store --test metalog_crash`.

use std::path::{Path, PathBuf};

use futures_lite::future::block_on;
use riffle_store::catalog::CatalogState;
use riffle_store::metalog::testkit::suite::{dir, log_path, try_open};
use riffle_store::metalog::testkit::{Subject, Versions};
use riffle_store::metalog::{MetaLog, MetaLogError};
use riffle_store::sim::SimStorage;
use riffle_store::storage::{IoBuf, Storage, StorageFile};

// One test per check and subject: `<check>::catalog`, `<check>::versions`.
riffle_store::metalog_suite!(catalog: CatalogState, versions: Versions);

/// Logs that pass their crcs but are not a history: each is an error naming the
/// frame, never skipped. Frames written by hand (an independent encoder).
#[test]
fn replay_refuses_logs_that_are_not_a_history() {
    let create = |seq: u64, name: &str| {
        format!(r#"{{"seq":{seq},"event":{{"type":"Create","name":"{name}","note":""}}}}"#)
    };
    let cases: Vec<(Vec<String>, Result<usize, usize>)> = vec![
        (vec![create(1, "a"), create(2, "b")], Ok(2)),
        (vec![create(1, "a"), create(3, "b")], Err(1)),
        (vec![create(2, "a")], Err(0)),
        (vec![create(1, "a"), create(2, "a")], Err(1)),
        (
            vec![
                create(1, "a"),
                r#"{"seq":2,"event":{"type":"Nope"}}"#.into(),
            ],
            Err(1),
        ),
        (vec![r#"{"seq":1}"#.into()], Err(0)),
    ];
    for (payloads, expected) in cases {
        block_on(async {
            let storage = SimStorage::new(1);
            storage.create_dir_all(dir()).await.unwrap();
            let mut bytes = Vec::new();
            let mut offsets = Vec::new();
            for p in &payloads {
                offsets.push(bytes.len() as u64);
                bytes.extend_from_slice(&(p.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&crc32c::crc32c(p.as_bytes()).to_le_bytes());
                bytes.extend_from_slice(p.as_bytes());
                bytes.resize(bytes.len().next_multiple_of(8), 0);
            }
            bytes.resize(bytes.len().next_multiple_of(4096), 0);
            let file = storage.open(&log_path::<Versions>(), true).await.unwrap();
            let mut buf = file.alloc(bytes.len());
            buf.as_bytes_mut().copy_from_slice(&bytes);
            file.write_at(buf, 0).await.unwrap();
            file.sync().await.unwrap();

            let got = match try_open::<Versions>(&storage, 1000).await {
                Ok(log) => Ok(log.last_seq() as usize),
                Err(MetaLogError::Corrupt { offset, .. }) => {
                    Err(offsets.iter().position(|&o| o == offset).unwrap())
                }
                Err(e) => panic!("{payloads:?}: {e}"),
            };
            assert_eq!(got, expected, "{payloads:?}");
        });
    }
}

/// A snapshot that decodes but breaks the state's invariants is corruption.
#[test]
fn snapshot_failing_verify_is_an_error() {
    async fn check<S: Subject>(json: &str) {
        let storage = SimStorage::new(1);
        storage.create_dir_all(dir()).await.unwrap();
        let path = dir().join(format!("{}.snapshot", S::NAME));
        riffle_store::storage::write_file_atomic(&storage, &path, json.as_bytes())
            .await
            .unwrap();
        match try_open::<S>(&storage, 10).await {
            Err(MetaLogError::Corrupt { path: p, .. }) => assert_eq!(p, path, "{json}"),
            Err(e) => panic!("{json}: {e}"),
            Ok(_) => panic!("{json}: opened"),
        }
    }
    block_on(async {
        check::<Versions>(r#"{"items":{"a":{"version":0,"note":""}},"last_seq":1}"#).await;
        check::<Versions>(r#"{"items":{}}"#).await; // no last_seq
        check::<CatalogState>(r#"{"streams":{},"account":{},"next_stream_id":0,"last_seq":1}"#)
            .await;
    });
}

/// Opening a service's log creates `meta/<service>/` and names its files after it.
#[test]
fn a_service_log_lives_in_its_own_directory() {
    block_on(async {
        let storage = SimStorage::new(1);
        let data = Path::new("/data");
        let mut log =
            MetaLog::<Versions, SimStorage>::open_service(storage.clone(), data, "firehose", 1)
                .await
                .unwrap();
        log.apply(Versions::fresh_event()).await.unwrap();
        assert_eq!(
            storage.files(),
            [
                PathBuf::from("/data/meta/firehose/firehose.log"),
                PathBuf::from("/data/meta/firehose/firehose.snapshot"),
            ]
        );
        assert_eq!(
            riffle_store::metalog::service_dir(data, "firehose"),
            Path::new("/data/meta/firehose")
        );
        drop(log);
        let log = MetaLog::<Versions, SimStorage>::open_service(storage, data, "firehose", 1)
            .await
            .unwrap();
        assert_eq!(log.last_seq(), 1);
    });
}
