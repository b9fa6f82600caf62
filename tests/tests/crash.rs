//! Crash safety of the real binary: producers put records under `durability =
//! fsync`, the server is SIGKILLed at a random moment, restarted on the same
//! data directory, and every acknowledged record must be readable,
//! byte-identical, at the offset it was acknowledged with, in order per shard.
//! Records that were sent but not acknowledged may or may not be there; nothing
//! else may be. Seeded (`RIFFLE_SEED`); `tools/crash-soak.sh` runs it longer
//! (`RIFFLE_CRASH_ROUNDS`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::SmallRng};
use riffle_protocol::native::{Reply, Request, Response};
use riffle_protocol::{BatchBuilder, RecordIn};
use riffle_tests::{RawConn, Server, data_dir, read_shard, reply, seed};

const STREAM: &str = "crash";
const SHARDS: u32 = 4;
const PRODUCERS: usize = 4;

/// What a producer knows: records acknowledged (shard, offset) → (key, data),
/// and every record it ever sent (acked or not).
#[derive(Default)]
struct Ledger {
    acked: HashMap<(u32, u64), (String, Vec<u8>)>,
    sent: HashMap<Vec<u8>, String>,
}

/// Puts records until the server goes away. Each record's data is unique
/// (round, producer, counter) and its size varies up to a few KiB.
fn produce(
    addr: std::net::SocketAddr,
    round: u32,
    producer: usize,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ (producer as u64) << 32 ^ round as u64);
    let Some(mut conn) = RawConn::try_connect(addr) else {
        return;
    };
    let mut builder = BatchBuilder::new();
    for n in 0u64.. {
        let key = format!("key-{}", rng.random_range(0..64));
        let size = rng.random_range(16..4096);
        let mut data = format!("r{round}-p{producer}-n{n}-").into_bytes();
        data.resize(size, b'a' + (n % 26) as u8);
        let batch = builder.encode(&[RecordIn {
            partition_key: &key,
            explicit_hash_key: None,
            data: &data,
            arrival_ms: 0,
        }]);
        ledger
            .lock()
            .unwrap()
            .sent
            .insert(data.clone(), key.clone());
        let mut out = Vec::new();
        riffle_protocol::native::encode_request(
            &mut out,
            n,
            &Request::PutRecord {
                stream: STREAM,
                batch: &batch,
            },
        );
        if std::io::Write::write_all(&mut conn.stream, &out).is_err() {
            return;
        }
        let Some(frame) = conn.recv_frame() else {
            return;
        };
        match reply(&frame) {
            Reply::Response(Response::Put {
                shard_index,
                offset,
            }) => {
                ledger
                    .lock()
                    .unwrap()
                    .acked
                    .insert((shard_index, offset), (key, data));
            }
            Reply::Error(e) => panic!("put failed before the kill: {e}"),
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

fn verify(server: &Server, ledger: &Ledger, round: u32) -> usize {
    let mut conn = RawConn::connect(server.addr);
    let mut found = 0;
    for shard in 0..SHARDS {
        let records = read_shard(&mut conn, STREAM, shard);
        // Offsets are dense from 0 (nothing was trimmed) and strictly increasing.
        for (i, (offset, _, _)) in records.iter().enumerate() {
            assert_eq!(*offset, i as u64, "round {round}: shard {shard} has a gap");
        }
        for (offset, key, data) in &records {
            match ledger.acked.get(&(shard, *offset)) {
                Some((k, d)) => {
                    assert_eq!(
                        (k, d),
                        (key, data),
                        "round {round}: shard {shard} offset {offset} differs from what was acknowledged"
                    );
                    found += 1;
                }
                // Sent but never acknowledged: allowed to have survived.
                None => assert_eq!(
                    ledger.sent.get(data),
                    Some(key),
                    "round {round}: shard {shard} offset {offset} holds a record nobody sent"
                ),
            }
        }
        let shard_acked = ledger.acked.keys().filter(|(s, _)| *s == shard).count();
        let shard_found = records
            .iter()
            .filter(|(o, _, _)| ledger.acked.contains_key(&(shard, *o)))
            .count();
        assert_eq!(
            shard_found, shard_acked,
            "round {round}: shard {shard} lost acknowledged records"
        );
    }
    found
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    let seed = seed("every_acknowledged_record_survives_sigkill");
    let rounds: u32 = std::env::var("RIFFLE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    let created = conn.call(
        1,
        &Request::CreateStream {
            stream: STREAM,
            shard_count: SHARDS,
        },
    );
    assert_eq!(reply(&created), Reply::Response(Response::Done));
    drop(conn);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..rounds {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (addr, ledger) = (server.addr, ledger.clone());
                std::thread::spawn(move || produce(addr, round, p, seed, ledger))
            })
            .collect();
        // The kill lands at a random moment of the load (choosing the moment is
        // the point of this sleep; nothing waits on it for correctness).
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        server.kill9();
        for p in producers {
            p.join().expect("producer thread");
        }
        server.restart();
        let found = verify(&server, &ledger.lock().unwrap(), round);
        eprintln!("round {round}: {found} acknowledged records verified");
    }
    let (status, logs) = server.terminate();
    assert!(status.success(), "graceful stop failed: {status}\n{logs}");
    assert!(
        ledger.lock().unwrap().acked.len() > rounds as usize,
        "the producers made progress"
    );
}
