//! [`GlueState`] through the metadata log's crash, fault and corruption suite
//! ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`Event`], crashes at every sync, torn and corrupt frames, corrupt
//! snapshots, injected I/O failures.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-glue --lib state_tests`.

use riffle_store::metalog::FRAME_PAYLOAD_SIZE_MAX;
use riffle_store::metalog::testkit::Subject;
use riffle_store::testkit::Rng;
use serde_json::{Value, json};

use crate::state::{Event, GlueState};

// One test per check: `state_tests::<check>::glue`.
riffle_store::metalog_suite!(glue: GlueState);

/// The databases of the workload (never [`FRESH`] nor [`BIG`]).
const DATABASES: &[&str] = &["sales", "logs", "web_events"];
/// The tables of each database.
const TABLES: &[&str] = &["orders", "clicks", "t.v2", "audit_log"];
const FRESH: &str = "after";
const BIG: &str = "big";

/// Mostly short, sometimes long enough that a few events fill a 4 KiB block.
fn text(rng: &mut Rng) -> String {
    let len = match rng.range(0, 7) {
        0 => rng.range(1000, 3000),
        _ => rng.range(0, 12),
    };
    (0..len)
        .map(|_| *rng.pick(&['a', 'z', '0', ' ', '_', 'é', '"', '\n']))
        .collect()
}

fn table_input(rng: &mut Rng, name: &str) -> Value {
    let columns: Vec<Value> = (0..rng.range(1, 6))
        .map(|i| json!({"Name": format!("c{i}"), "Type": *rng.pick(&["int", "string", "array<bigint>"])}))
        .collect();
    json!({
        "Name": name,
        "Description": text(rng),
        "StorageDescriptor": {"Columns": columns, "Location": "s3://bucket/prefix/"},
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "Parameters": {"classification": "parquet"},
    })
}

impl Subject for GlueState {
    const NAME: &'static str = "glue";

    fn random_event(state: &GlueState, rng: &mut Rng, step: u64) -> Event {
        let at_ms = 1_700_000_000_000 + step as i64 * 1000;
        let database = rng.pick(DATABASES).to_string();
        let name = rng.pick(TABLES).to_string();
        let Some(d) = state.databases.get(&database) else {
            // Mostly a create; sometimes a change in a database that is not there.
            return match rng.range(0, 5) {
                0 => Event::DeleteDatabase { name: database },
                1 => Event::CreateTable {
                    input: table_input(rng, &name),
                    database,
                    name,
                    at_ms,
                },
                _ => Event::CreateDatabase {
                    name: database,
                    input: json!({"Description": text(rng), "LocationUri": "s3://bucket/"}),
                    at_ms,
                    tags: Default::default(),
                },
            };
        };
        let Some(t) = d.tables.get(&name) else {
            return match rng.range(0, 9) {
                // Refused: the database exists.
                0 => Event::CreateDatabase {
                    name: database,
                    input: json!({}),
                    at_ms,
                    tags: Default::default(),
                },
                1 => Event::DeleteTable { database, name },
                2 => Event::DeleteDatabase { name: database },
                _ => Event::CreateTable {
                    input: table_input(rng, &name),
                    database,
                    name,
                    at_ms,
                },
            };
        };
        let (current, _) = t.latest();
        match rng.range(0, 19) {
            // Refused: the table exists.
            0 => Event::CreateTable {
                input: table_input(rng, &name),
                database,
                name,
                at_ms,
            },
            1 => Event::DeleteTable { database, name },
            2 => Event::DeleteDatabase { name: database },
            _ => Event::UpdateTable {
                input: table_input(rng, &name),
                database,
                name,
                // Mostly the current version or none; sometimes a stale one.
                expected_version: match rng.range(0, 5) {
                    0 => Some(current.saturating_sub(1) + rng.range(0, 2) * 2),
                    1 | 2 => None,
                    _ => Some(current),
                },
                skip_archive: rng.chance(20),
                versions_max: rng.range(1, 6) as u32,
                at_ms,
            },
        }
    }

    fn fresh_event() -> Event {
        Event::CreateDatabase {
            name: FRESH.into(),
            input: json!({}),
            at_ms: 0,
            tags: Default::default(),
        }
    }

    fn oversized_event() -> Event {
        Event::CreateDatabase {
            name: BIG.into(),
            input: json!({"Description": "d".repeat(FRAME_PAYLOAD_SIZE_MAX)}),
            at_ms: 0,
            tags: Default::default(),
        }
    }
}

/// The workload is the mix the suite relies on: every event applies and is
/// refused somewhere, for each of the reasons the state has, and some events
/// are large.
#[test]
fn the_workload_covers_every_event_and_refusal() {
    use std::collections::HashMap;

    use riffle_protocol::ErrorCode;
    use riffle_store::metalog::StateMachine;
    use riffle_store::metalog::testkit::Memory;

    let mut outcomes: HashMap<(&str, Result<(), ErrorCode>), u64> = HashMap::new();
    let mut large = 0;
    let mut archived = 0;
    for seed in 1..=8 {
        let mut rng = Rng::new(seed);
        let mut memory = Memory::<GlueState>::default();
        for step in 0..400 {
            let event = GlueState::random_event(&memory.state, &mut rng, step);
            let variant = match &event {
                Event::CreateDatabase { .. } => "CreateDatabase",
                Event::DeleteDatabase { .. } => "DeleteDatabase",
                Event::CreateTable { .. } => "CreateTable",
                Event::UpdateTable { .. } => "UpdateTable",
                Event::DeleteTable { .. } => "DeleteTable",
            };
            if serde_json::to_vec(&event).unwrap().len() > 1024 {
                large += 1;
            }
            let outcome = memory.apply(event);
            *outcomes.entry((variant, outcome)).or_default() += 1;
            memory.state.verify().unwrap();
            archived += memory
                .state
                .databases
                .values()
                .flat_map(|d| d.tables.values())
                .filter(|t| t.versions.len() > 1)
                .count();
        }
    }
    let expected = [
        ("CreateDatabase", Ok(())),
        ("CreateDatabase", Err(ErrorCode::ResourceInUse)),
        ("DeleteDatabase", Ok(())),
        ("DeleteDatabase", Err(ErrorCode::ResourceNotFound)),
        ("CreateTable", Ok(())),
        ("CreateTable", Err(ErrorCode::ResourceInUse)),
        ("CreateTable", Err(ErrorCode::ResourceNotFound)),
        ("UpdateTable", Ok(())),
        ("UpdateTable", Err(ErrorCode::ConcurrentModification)),
        ("DeleteTable", Ok(())),
        ("DeleteTable", Err(ErrorCode::ResourceNotFound)),
    ];
    for outcome in expected {
        assert!(
            outcomes.contains_key(&outcome),
            "{outcome:?} never happened: {outcomes:#?}"
        );
    }
    assert!(large >= 20, "{large} large events: {outcomes:#?}");
    assert!(archived > 0, "no table ever kept an archived version");
}
