//! [`FirehoseState`] through the metadata log's crash, fault and corruption
//! suite ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`Event`], crashes at every sync, torn and corrupt frames, corrupt snapshots,
//! injected I/O failures.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-firehose --lib state_tests`.

use std::collections::BTreeMap;

use riffle_store::metalog::FRAME_PAYLOAD_SIZE_MAX;
use riffle_store::metalog::testkit::Subject;
use riffle_store::testkit::Rng;
use serde_json::{Value, json};

use crate::state::{Destination, Encryption, Event, FirehoseState, Plan, SourceKind, TAGS_MAX};

// One test per check: `state_tests::<check>::firehose`.
riffle_store::metalog_suite!(firehose: FirehoseState);

/// The delivery streams of the workload (never [`FRESH`] nor [`BIG`]).
const NAMES: &[&str] = &["orders", "click-stream", "audit_log", "metrics.v2"];
/// The source shards delivery progresses on.
const SHARDS: u64 = 3;
/// Tag keys are drawn from this many, so enough AddTags go over [`TAGS_MAX`].
const TAG_KEYS: u64 = 60;
const FRESH: &str = "after";
const BIG: &str = "big";
const DESTINATION_ID: &str = "destinationId-000000000001";
const ROLE: &str = "arn:aws:iam::000000000000:role/firehose";

/// Mostly short, sometimes as long as AWS allows (Prefix: 1024, tag value: 256).
fn text(rng: &mut Rng, long: usize) -> String {
    let len = match rng.range(0, 7) {
        0 => rng.range(long as u64 / 2, long as u64),
        _ => rng.range(0, 12),
    };
    (0..len)
        .map(|_| *rng.pick(&['a', 'z', '0', '-', '/', '_', 'é', '"']))
        .collect()
}

fn tags(rng: &mut Rng, count: u64) -> BTreeMap<String, String> {
    (0..count)
        .map(|_| (format!("k{}", rng.range(0, TAG_KEYS - 1)), text(rng, 256)))
        .collect()
}

fn encryption(rng: &mut Rng) -> Option<Encryption> {
    match rng.range(0, 3) {
        0 => Some(Encryption {
            key_type: "AWS_OWNED_CMK".into(),
            key_arn: None,
        }),
        1 => Some(Encryption {
            key_type: "CUSTOMER_MANAGED_CMK".into(),
            key_arn: Some(format!(
                "arn:aws:kms:us-east-1:000000000000:key/{:016x}",
                rng.next_u64()
            )),
        }),
        _ => None,
    }
}

/// An ExtendedS3 destination as `destination::from_create` stores it.
fn s3_destination(rng: &mut Rng) -> Destination {
    let mut prefix = text(rng, 1024);
    if rng.chance(30) {
        prefix.push_str("!{timestamp:yyyy/MM/dd}/");
    }
    Destination {
        kind: "ExtendedS3".into(),
        config: json!({
            "RoleARN": ROLE,
            "BucketARN": format!("arn:aws:s3:::bucket-{}", rng.range(0, 3)),
            "Prefix": prefix,
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {
                "SizeInMBs": rng.range(1, 128),
                "IntervalInSeconds": rng.range(0, 900),
            },
            "CompressionFormat": *rng.pick(&["UNCOMPRESSED", "GZIP"]),
            "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
            "CloudWatchLoggingOptions": {"Enabled": false},
            "S3BackupMode": "Disabled",
        }),
    }
}

fn create(rng: &mut Rng, name: String, at_ms: i64) -> Event {
    let (source, source_config) = match rng.range(0, 4) {
        0 => (
            SourceKind::KinesisStreamAsSource {
                stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/source".into(),
                stream: "source".into(),
                stream_id: rng.range(0, 9),
                start_ms: at_ms,
            },
            Value::Null,
        ),
        1 => (
            SourceKind::DirectPut,
            json!({"ThroughputHintInMBs": rng.range(1, 100)}),
        ),
        _ => (SourceKind::DirectPut, Value::Null),
    };
    let tag_count = match rng.range(0, 19) {
        0 => TAGS_MAX as u64 + 1 + rng.range(0, 3), // refused: over the limit
        1..=9 => rng.range(1, 6),
        _ => 0,
    };
    let tags = match tag_count > TAGS_MAX as u64 {
        // Distinct keys, so the map really is over the limit.
        true => (0..tag_count)
            .map(|i| (format!("k{i}"), String::new()))
            .collect(),
        false => tags(rng, tag_count),
    };
    Event::Create {
        name,
        source,
        source_config,
        destination: s3_destination(rng),
        tags,
        encryption: encryption(rng),
        at_ms,
    }
}

fn plan(rng: &mut Rng, name: &str, version: u64, start: u64) -> Plan {
    let end = start + rng.range(1, 500);
    let prefix = match rng.chance(10) {
        true => "p/".repeat(rng.range(100, 500) as usize),
        false => "data/".to_string(),
    };
    Plan {
        key: format!(
            "{prefix}2024/05/17/09/{name}-{version}-2024-05-17-09-{:02}-{:02}-{:016x}",
            rng.range(0, 59),
            rng.range(0, 59),
            rng.next_u64()
        ),
        start,
        end,
        bucket: "bucket".into(),
        compression: "GZIP".into(),
        error_key: "errors/processing-failed/x".into(),
        destination_error_key: String::new(),
        // Sometimes a partitioned plan with a backup and another error key.
        partitioned: rng.chance(4),
        error_keys: match rng.chance(4) {
            true => [(
                "partitioning-failed".to_string(),
                format!("errors/partitioning-failed/{:x}", rng.next_u64()),
            )]
            .into(),
            false => Default::default(),
        },
        backup: rng.chance(4).then(|| crate::state::PlannedBackup {
            bucket: "backup".into(),
            key: format!("source/{:x}", rng.next_u64()),
            compression: "GZIP".into(),
        }),
    }
}

/// Plan and Delivered for one shard of a stream, mostly following the rules:
/// a plan from the checkpoint (sometimes after a gap), then its delivery.
fn delivery(rng: &mut Rng, state: &FirehoseState, name: String) -> Event {
    let s = &state.streams[&name];
    let shard = rng.range(0, SHARDS - 1) as u32;
    let p = s.progress.get(&shard).cloned().unwrap_or_default();
    // Sometimes an earlier incarnation's delivery task: refused.
    let id = match rng.range(0, 19) {
        0 => rng.range(0, state.next_id),
        _ => s.id,
    };
    let delivered = |end| Event::Delivered {
        name: name.clone(),
        id,
        shard,
        end,
    };
    let plan_from = |rng: &mut Rng, start| Event::Plan {
        name: name.clone(),
        id,
        shard,
        plan: plan(rng, &name, s.version, start),
    };
    match &p.planned {
        Some(planned) => match rng.range(0, 9) {
            // Not the planned end: refused.
            0 => delivered(match rng.chance(50) {
                true => planned.end + 1,
                false => planned.end - 1,
            }),
            // Planned again while one is pending: refused.
            1 => plan_from(rng, planned.start),
            _ => delivered(planned.end),
        },
        None => match rng.range(0, 9) {
            // Nothing planned: refused.
            0 => delivered(p.delivered + rng.range(0, 5)),
            // Before the checkpoint or empty: refused.
            1 => {
                let start = p.delivered.saturating_sub(rng.range(0, 3));
                match start < p.delivered {
                    true => plan_from(rng, start),
                    false => Event::Plan {
                        name: name.clone(),
                        id,
                        shard,
                        plan: Plan {
                            key: "empty".into(),
                            start,
                            end: start,
                            bucket: "bucket".into(),
                            compression: "GZIP".into(),
                            ..Plan::default()
                        },
                    },
                }
            }
            // Records expired before delivery: a gap.
            2 => {
                let gap = rng.range(1, 100);
                plan_from(rng, p.delivered + gap)
            }
            // The shard ended (resharding): at the checkpoint or after it;
            // before it, or ending twice, is refused.
            3 => Event::ShardEnded {
                name: name.clone(),
                id,
                shard,
                end: match rng.range(0, 4) {
                    0 => p.delivered.saturating_sub(1),
                    1 => p.delivered + rng.range(1, 10),
                    _ => p.delivered,
                },
            },
            _ => plan_from(rng, p.delivered),
        },
    }
}

impl Subject for FirehoseState {
    const NAME: &'static str = "firehose";

    fn random_event(state: &FirehoseState, rng: &mut Rng, step: u64) -> Event {
        let at_ms = 1_700_000_000_000 + step as i64 * 1000;
        let name = rng.pick(NAMES).to_string();
        let Some(s) = state.streams.get(&name) else {
            // Mostly a create; sometimes a change of a stream that is not there.
            return match rng.range(0, 9) {
                0 => Event::Delete { name },
                1 => Event::AddTags {
                    name,
                    tags: tags(rng, 1),
                },
                2 => Event::Plan {
                    plan: plan(rng, &name, 1, 0),
                    name,
                    id: state.next_id,
                    shard: 0,
                },
                _ => create(rng, name, at_ms),
            };
        };
        match rng.range(0, 19) {
            // Refused: the name exists.
            0 => create(rng, name, at_ms),
            1 => Event::Delete { name },
            2 | 3 => {
                // Mostly the current version; sometimes a stale or a future one.
                let current_version = match rng.range(0, 5) {
                    0 => s.version - 1,
                    1 => s.version + 1,
                    _ => s.version,
                };
                let mut destination = s3_destination(rng);
                let destination_id = match rng.range(0, 9) {
                    0 => "destinationId-000000000002".to_string(),
                    1 => {
                        destination.kind = "HttpEndpoint".into();
                        DESTINATION_ID.to_string()
                    }
                    _ => DESTINATION_ID.to_string(),
                };
                Event::UpdateDestination {
                    name,
                    current_version,
                    destination_id,
                    destination,
                    at_ms,
                }
            }
            4 | 5 => {
                // Sometimes many at once: some go over the limit.
                let count = match rng.range(0, 3) {
                    0 => rng.range(20, 60),
                    _ => rng.range(1, 4),
                };
                Event::AddTags {
                    name,
                    tags: tags(rng, count),
                }
            }
            6 => Event::RemoveTags {
                name,
                keys: (0..rng.range(0, 10))
                    .map(|_| format!("k{}", rng.range(0, TAG_KEYS - 1)))
                    .collect(),
            },
            7 => Event::SetEncryption {
                name,
                encryption: encryption(rng),
                at_ms,
            },
            _ => delivery(rng, state, name),
        }
    }

    fn fresh_event() -> Event {
        Event::Create {
            name: FRESH.into(),
            source: SourceKind::DirectPut,
            source_config: Value::Null,
            destination: Destination {
                kind: "ExtendedS3".into(),
                config: json!({"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::after"}),
            },
            tags: BTreeMap::new(),
            encryption: None,
            at_ms: 0,
        }
    }

    fn oversized_event() -> Event {
        Event::Create {
            name: BIG.into(),
            source: SourceKind::DirectPut,
            source_config: Value::Null,
            destination: Destination {
                kind: "ExtendedS3".into(),
                config: json!({
                    "RoleARN": ROLE,
                    "BucketARN": "arn:aws:s3:::big",
                    "Prefix": "p".repeat(FRAME_PAYLOAD_SIZE_MAX),
                }),
            },
            tags: BTreeMap::new(),
            encryption: None,
            at_ms: 0,
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
    for seed in 1..=8 {
        let mut rng = Rng::new(seed);
        let mut memory = Memory::<FirehoseState>::default();
        for step in 0..400 {
            let event = FirehoseState::random_event(&memory.state, &mut rng, step);
            let variant = match &event {
                Event::Create { .. } => "Create",
                Event::Delete { .. } => "Delete",
                Event::UpdateDestination { .. } => "UpdateDestination",
                Event::AddTags { .. } => "AddTags",
                Event::RemoveTags { .. } => "RemoveTags",
                Event::SetEncryption { .. } => "SetEncryption",
                Event::Plan { .. } => "Plan",
                Event::Delivered { .. } => "Delivered",
                Event::ShardEnded { .. } => "ShardEnded",
            };
            if serde_json::to_vec(&event).unwrap().len() > 1024 {
                large += 1;
            }
            let outcome = memory.apply(event);
            *outcomes.entry((variant, outcome)).or_default() += 1;
            memory.state.verify().unwrap();
        }
    }
    let expected = [
        ("Create", Ok(())),
        ("Create", Err(ErrorCode::ResourceInUse)),
        ("Create", Err(ErrorCode::LimitExceeded)),
        ("Delete", Ok(())),
        ("Delete", Err(ErrorCode::ResourceNotFound)),
        ("UpdateDestination", Ok(())),
        ("UpdateDestination", Err(ErrorCode::ConcurrentModification)),
        ("UpdateDestination", Err(ErrorCode::InvalidArgument)),
        ("AddTags", Ok(())),
        ("AddTags", Err(ErrorCode::LimitExceeded)),
        ("AddTags", Err(ErrorCode::ResourceNotFound)),
        ("RemoveTags", Ok(())),
        ("SetEncryption", Ok(())),
        ("Plan", Ok(())),
        ("Plan", Err(ErrorCode::Internal)),
        ("Plan", Err(ErrorCode::ResourceNotFound)),
        ("Delivered", Ok(())),
        ("Delivered", Err(ErrorCode::Internal)),
        ("Delivered", Err(ErrorCode::ResourceNotFound)),
        ("ShardEnded", Ok(())),
        ("ShardEnded", Err(ErrorCode::Internal)),
    ];
    for outcome in expected {
        assert!(
            outcomes.contains_key(&outcome),
            "{outcome:?} never happened: {outcomes:#?}"
        );
    }
    assert!(large >= 20, "{large} large events: {outcomes:#?}");
}
