//! [`GroupsState`] through the metadata log's crash, fault and corruption
//! suite ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`Event`] (groups made and deleted, leases added, owners moved, checkpoints
//! by current and stale owners), crashes at every sync, torn and corrupt
//! frames, corrupt snapshots, injected I/O failures.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-groups --lib state_tests`.

use std::collections::BTreeMap;

use riffle_store::metalog::FRAME_PAYLOAD_SIZE_MAX;
use riffle_store::metalog::testkit::Subject;
use riffle_store::testkit::Rng;

use crate::state::{Assignment, Checkpoint, Event, GroupsState, Lease, group_key};

riffle_store::metalog_suite!(groups: GroupsState);

const STREAMS: &[&str] = &["orders", "clicks"];
const GROUPS: &[&str] = &["billing", "audit.v2"];
const WORKERS: &[&str] = &["w-1", "w-2", "host:7"];
const FRESH: &str = "after";

/// Mostly valid for `shard`; sometimes a start position or another shard's
/// sequence number (refused).
fn checkpoint(rng: &mut Rng, shard: u32) -> Checkpoint {
    let seq = riffle_protocol::seqno::encode;
    match rng.range(0, 7) {
        0 => Checkpoint::ShardEnd,
        1 => Checkpoint::TrimHorizon,
        2 => Checkpoint::After {
            sequence_number: seq(shard + 1, rng.next_u64()),
            sub: None,
        },
        3 => Checkpoint::After {
            sequence_number: seq(shard, rng.next_u64()),
            sub: None,
        },
        _ => Checkpoint::After {
            sequence_number: seq(shard, rng.range(0, 1 << 40)),
            sub: Some(rng.range(0, 5000) as u32),
        },
    }
}

fn leases(rng: &mut Rng, from: u32, count: u32) -> BTreeMap<u32, Lease> {
    (from..from + count)
        .map(|s| {
            let parents = match (s, rng.range(0, 3)) {
                (0, _) | (_, 0) => vec![],
                (_, 1) => vec![s - 1],
                _ => vec![s.saturating_sub(2), s - 1],
            };
            let start = if rng.chance(50) {
                Checkpoint::TrimHorizon
            } else {
                Checkpoint::Latest
            };
            (s, Lease::new(parents, start))
        })
        .collect()
}

impl Subject for GroupsState {
    const NAME: &'static str = "groups";

    fn random_event(state: &GroupsState, rng: &mut Rng, step: u64) -> Event {
        let stream = rng.pick(STREAMS).to_string();
        let name = rng.pick(GROUPS).to_string();
        let key = group_key(&stream, &name);
        let Some(g) = state.groups.get(&key) else {
            return match rng.range(0, 6) {
                0 => Event::Delete { key },
                _ => Event::Create {
                    stream,
                    stream_id: rng.next_u64(),
                    name,
                    created_ms: 1_700_000_000_000 + step as i64,
                    leases: {
                        let n = rng.range(1, 8) as u32;
                        leases(rng, 0, n)
                    },
                },
            };
        };
        let shards: Vec<u32> = g.leases.keys().copied().collect();
        let next = shards.last().map_or(0, |s| s + 1);
        match rng.range(0, 19) {
            // Refused: it exists.
            0 => Event::Create {
                stream,
                stream_id: 1,
                name,
                created_ms: 0,
                leases: BTreeMap::new(),
            },
            1 => Event::Delete { key },
            2 | 3 => {
                // Mostly new shards; sometimes one already leased (refused).
                let from = if rng.chance(80) { next } else { 0 };
                let n = rng.range(1, 3) as u32;
                Event::AddLeases {
                    key,
                    leases: leases(rng, from, n),
                }
            }
            4..=10 => {
                let n = rng.range(1, 4);
                let changes = (0..n)
                    .map(|_| {
                        let shard = *rng.pick(&shards);
                        let current = g.leases[&shard].counter;
                        Assignment {
                            shard,
                            // Mostly current; sometimes stale (refused).
                            counter: if rng.chance(85) { current } else { current + 1 },
                            owner: rng.chance(80).then(|| rng.pick(WORKERS).to_string()),
                            failover_ms: rng.range(1_000, 3_600_000) as u32,
                        }
                    })
                    .collect();
                Event::Assign { key, changes }
            }
            _ => {
                let shard = *rng.pick(&shards);
                let lease = &g.leases[&shard];
                // Mostly the holder at its counter; sometimes another worker.
                let owner = match (&lease.owner, rng.chance(80)) {
                    (Some(o), true) => o.clone(),
                    _ => rng.pick(WORKERS).to_string(),
                };
                Event::Checkpoint {
                    key,
                    shard,
                    owner,
                    counter: lease.counter,
                    checkpoint: checkpoint(rng, shard),
                }
            }
        }
    }

    fn fresh_event() -> Event {
        Event::Create {
            stream: FRESH.into(),
            stream_id: 1,
            name: FRESH.into(),
            created_ms: 0,
            leases: BTreeMap::new(),
        }
    }

    fn oversized_event() -> Event {
        Event::Create {
            stream: "big".into(),
            stream_id: 1,
            name: "g".repeat(FRAME_PAYLOAD_SIZE_MAX),
            created_ms: 0,
            leases: BTreeMap::new(),
        }
    }
}
