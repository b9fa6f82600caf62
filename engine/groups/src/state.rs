//! The consumer groups' durable metadata: per group, the lease table (one
//! lease per shard: parents, owner, counter, checkpoint). A [`StateMachine`]
//! over [`Event`]s, kept in `<data-dir>/meta/groups/` by the engine's metadata
//! log. Who is alive and which handovers are under way is runtime state
//! (`coordinator`), not here: after a restart every owner gets a failover time
//! to come back.
//!
//! Runtime-free and deterministic: times come in with the events.

use std::collections::BTreeMap;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};

/// Where a lease's shard is processed from next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checkpoint {
    TrimHorizon,
    Latest,
    /// After the record with this sequence number (`riffle_protocol::seqno`),
    /// or after its user record `sub` inside an aggregated record.
    After {
        #[serde(with = "u128_decimal")]
        sequence_number: u128,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<u32>,
    },
    /// The shard is closed and was processed to its end.
    ShardEnd,
}

/// One shard's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The shards it was split or merged from (processed first).
    #[serde(default)]
    pub parents: Vec<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Moves every time the owner changes; a checkpoint names it.
    #[serde(default)]
    pub counter: u64,
    pub checkpoint: Checkpoint,
    /// The owner's failover time when it took the lease: after a restart of
    /// the server, the owner counts as alive that long.
    #[serde(default = "default_failover_ms")]
    pub failover_ms: u32,
}

/// KCL's default failover time.
pub const DEFAULT_FAILOVER_MS: u32 = 10_000;

fn default_failover_ms() -> u32 {
    DEFAULT_FAILOVER_MS
}

impl Lease {
    pub fn new(parents: Vec<u32>, checkpoint: Checkpoint) -> Lease {
        Lease {
            parents,
            owner: None,
            counter: 0,
            checkpoint,
            failover_ms: DEFAULT_FAILOVER_MS,
        }
    }
}

/// A consumer group of one stream incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub stream: String,
    /// The stream incarnation it reads (a stream deleted and created again is
    /// another stream: its group starts over).
    pub stream_id: u64,
    pub name: String,
    pub created_ms: i64,
    /// By shard index.
    pub leases: BTreeMap<u32, Lease>,
}

impl Group {
    /// Whether shard `shard`'s lease may be processed: not ended, and every
    /// parent still in the table ended.
    pub fn eligible(&self, shard: u32) -> bool {
        let Some(lease) = self.leases.get(&shard) else {
            return false;
        };
        lease.checkpoint != Checkpoint::ShardEnd
            && lease.parents.iter().all(|p| {
                self.leases
                    .get(p)
                    .is_none_or(|l| l.checkpoint == Checkpoint::ShardEnd)
            })
    }
}

/// The key of a group in [`GroupsState::groups`]: stream names have no `/`.
pub fn group_key(stream: &str, group: &str) -> String {
    format!("{stream}/{group}")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsState {
    /// By [`group_key`].
    pub groups: BTreeMap<String, Group>,
}

/// One owner change: the lease of `shard`, at `counter` now, goes to `owner`
/// (None: free), whose failover time is `failover_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub shard: u32,
    pub counter: u64,
    pub owner: Option<String>,
    #[serde(default = "default_failover_ms")]
    pub failover_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A group is first used: its leases for the stream's shards then.
    Create {
        stream: String,
        stream_id: u64,
        name: String,
        created_ms: i64,
        leases: BTreeMap<u32, Lease>,
    },
    /// A group goes (its stream was deleted, or created again).
    Delete { key: String },
    /// Shards resharding added since: their leases.
    AddLeases {
        key: String,
        leases: BTreeMap<u32, Lease>,
    },
    /// Owner changes, each applied to the counter it names (then moved on).
    Assign {
        key: String,
        changes: Vec<Assignment>,
    },
    /// The lease's owner, at its counter, moves its checkpoint. `ShardEnd`
    /// also frees the lease (its counter moves).
    Checkpoint {
        key: String,
        shard: u32,
        owner: String,
        counter: u64,
        checkpoint: Checkpoint,
    },
}

fn not_found(key: &str) -> Error {
    Error::not_found(format!("Consumer group {key} not found."))
}

fn lease_lost(shard: u32, owner: &str) -> Error {
    Error::new(
        ErrorCode::ConcurrentModification,
        format!(
            "Lease of {} is no longer held by {owner}.",
            riffle_protocol::routing::shard_id(shard)
        ),
    )
}

impl GroupsState {
    fn group(&self, key: &str) -> Result<&Group, Error> {
        self.groups.get(key).ok_or_else(|| not_found(key))
    }
}

impl StateMachine for GroupsState {
    type Event = Event;

    fn check(&self, event: &Event) -> Result<(), Error> {
        match event {
            Event::Create { stream, name, .. } => {
                let key = group_key(stream, name);
                if self.groups.contains_key(&key) {
                    return Err(Error::in_use(format!("Consumer group {key} exists.")));
                }
                Ok(())
            }
            Event::Delete { key } => self.group(key).map(|_| ()),
            Event::AddLeases { key, leases } => {
                let g = self.group(key)?;
                match leases.keys().find(|s| g.leases.contains_key(s)) {
                    Some(s) => Err(Error::in_use(format!(
                        "Consumer group {key} already has a lease of shard {s}."
                    ))),
                    None => Ok(()),
                }
            }
            Event::Assign { key, changes } => {
                let g = self.group(key)?;
                let mut seen = std::collections::BTreeSet::new();
                for c in changes {
                    let Some(lease) = g.leases.get(&c.shard) else {
                        return Err(Error::not_found(format!(
                            "Consumer group {key} has no lease of shard {}.",
                            c.shard
                        )));
                    };
                    if lease.counter != c.counter || !seen.insert(c.shard) {
                        return Err(Error::new(
                            ErrorCode::ConcurrentModification,
                            format!(
                                "Lease of shard {} in {key} is at counter {}, not {}.",
                                c.shard, lease.counter, c.counter
                            ),
                        ));
                    }
                    if c.owner.is_some() && lease.checkpoint == Checkpoint::ShardEnd {
                        return Err(Error::invalid(format!(
                            "Shard {} of {key} ended: its lease is not handed out.",
                            c.shard
                        )));
                    }
                }
                Ok(())
            }
            Event::Checkpoint {
                key,
                shard,
                owner,
                counter,
                checkpoint,
            } => {
                let g = self.group(key)?;
                let held = g
                    .leases
                    .get(shard)
                    .is_some_and(|l| l.owner.as_deref() == Some(owner) && l.counter == *counter);
                if !held {
                    return Err(lease_lost(*shard, owner));
                }
                match checkpoint {
                    Checkpoint::TrimHorizon | Checkpoint::Latest => Err(Error::invalid(
                        "A checkpoint is after a sequence number, or SHARD_END.",
                    )),
                    Checkpoint::After {
                        sequence_number, ..
                    } => match riffle_protocol::seqno::decode(*sequence_number) {
                        Ok((s, _)) if s == *shard => Ok(()),
                        _ => Err(Error::invalid(format!(
                            "Sequence number {sequence_number} is not one of {}.",
                            riffle_protocol::routing::shard_id(*shard)
                        ))),
                    },
                    Checkpoint::ShardEnd => Ok(()),
                }
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Create {
                stream,
                stream_id,
                name,
                created_ms,
                leases,
            } => {
                self.groups.insert(
                    group_key(&stream, &name),
                    Group {
                        stream,
                        stream_id,
                        name,
                        created_ms,
                        leases,
                    },
                );
            }
            Event::Delete { key } => {
                self.groups.remove(&key);
            }
            Event::AddLeases { key, leases } => {
                let g = self.groups.get_mut(&key).expect("checked");
                g.leases.extend(leases);
            }
            Event::Assign { key, changes } => {
                let g = self.groups.get_mut(&key).expect("checked");
                for c in changes {
                    let lease = g.leases.get_mut(&c.shard).expect("checked");
                    if c.owner.is_some() {
                        lease.failover_ms = c.failover_ms;
                    }
                    lease.owner = c.owner;
                    lease.counter += 1;
                }
            }
            Event::Checkpoint {
                key,
                shard,
                checkpoint,
                ..
            } => {
                let g = self.groups.get_mut(&key).expect("checked");
                let lease = g.leases.get_mut(&shard).expect("checked");
                lease.checkpoint = checkpoint;
                if checkpoint == Checkpoint::ShardEnd {
                    lease.owner = None;
                    lease.counter += 1;
                }
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        for (key, g) in &self.groups {
            if *key != group_key(&g.stream, &g.name) {
                return Err(format!("group {key} is filed under the wrong key"));
            }
            for (shard, lease) in &g.leases {
                if lease.checkpoint == Checkpoint::ShardEnd && lease.owner.is_some() {
                    return Err(format!("{key}: shard {shard} ended but is owned"));
                }
            }
        }
        Ok(())
    }
}

/// Serde for `u128` as a decimal string: JSON numbers cannot hold 128 bits.
mod u128_decimal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}
