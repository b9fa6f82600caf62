//! Test support for metadata logs (feature `testkit`): a tiny second state machine
//! ([`Versions`]), the [`Subject`] interface every generic metadata-log test runs
//! on (implemented for it and for the streams catalog), an in-memory reference
//! ([`Memory`]) and the storage-generic replay workload.
//!
//! The crash, fault and corruption checks that need the simulated disk are the
//! [`suite`], generic over the subject: the store's `tests/metalog_crash.rs` runs
//! it for the subjects here, and a service crate for its own state machine with
//! [`metalog_suite!`](crate::metalog_suite). [`replay_matches_state`] runs in
//! the suite on `SimStorage` and in `engine/tests/metalog_on_dma.rs` on direct-I/O
//! files.

pub mod suite;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use riffle_protocol::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

use super::{FRAME_PAYLOAD_SIZE_MAX, MetaLog, StateMachine};
use crate::catalog::{CatalogEvent, CatalogState, SettingsChange};
use crate::reshard;
use crate::testkit::{Machine, Rng, wipe};

/// A state machine the generic metadata-log tests run on.
pub trait Subject: StateMachine<Event: Clone + Debug> + Clone + Debug + PartialEq {
    /// The log's name (its files' stem).
    const NAME: &'static str;

    /// A random event for `state`: mostly ones that apply, some that `check`
    /// refuses, some large enough that a few of them fill a 4 KiB block.
    fn random_event(state: &Self, rng: &mut Rng, step: u64) -> Self::Event;

    /// An event that applies to any state `random_event` leads to.
    fn fresh_event() -> Self::Event;

    /// An event that `check` accepts but whose frame is over the size bound.
    fn oversized_event() -> Self::Event;
}

/// The in-memory reference: the same state machine, no disk.
#[derive(Clone, Debug, Default)]
pub struct Memory<S> {
    pub state: S,
    pub last_seq: u64,
}

impl<S: StateMachine> Memory<S> {
    /// Checks and applies `event` as [`MetaLog::apply`] does, without the disk.
    pub fn apply(&mut self, event: S::Event) -> Result<(), ErrorCode> {
        self.state.check(&event).map_err(|e| e.code)?;
        self.state.apply(event);
        self.last_seq += 1;
        Ok(())
    }
}

/// `count` events generated against a reference that applies the ones it accepts
/// (the refused ones stay in the list: a log must refuse them too).
pub fn workload<S: Subject>(seed: u64, count: u64) -> Vec<S::Event> {
    let mut rng = Rng::new(seed);
    let mut memory = Memory::<S>::default();
    (0..count)
        .map(|step| {
            let event = S::random_event(&memory.state, &mut rng, step);
            let _ = memory.apply(event.clone());
            event
        })
        .collect()
}

/// Random events applied to a log and to the in-memory reference; after every
/// event the answers, the states and `last_seq` agree, and after a restart (a
/// reopen on storage that cannot restart) the replayed snapshot + log equals the
/// state before it. `snapshot_every` is drawn from the seed (1 to 6).
pub async fn replay_matches_state<M: Machine, S: Subject>(dir: &Path, seed: u64, steps: u64) {
    let mut machine = M::boot(seed);
    wipe(&machine.storage(), dir).await;
    let mut rng = Rng::new(seed);
    let snapshot_every = rng.range(1, 6) as u32;
    let open = |storage: M::Storage| async move {
        MetaLog::<S, M::Storage>::open(storage, dir, S::NAME, snapshot_every)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: open: {e}"))
    };
    let mut memory = Memory::<S>::default();
    let mut log = open(machine.storage()).await;
    for step in 0..steps {
        let context = format!("seed {seed} snapshot_every {snapshot_every} step {step}");
        let event = S::random_event(&memory.state, &mut rng, step);
        let expected = memory.apply(event.clone());
        let got = log.apply(event.clone()).await.map_err(|e| e.code);
        assert_eq!(got, expected, "{context}: {event:?}");
        assert_eq!(log.state(), &memory.state, "{context}");
        assert_eq!(log.last_seq(), memory.last_seq, "{context}");

        drop(log);
        machine.restart();
        log = open(machine.storage()).await;
        assert_eq!(log.state(), &memory.state, "{context}: replay differs");
        assert_eq!(log.last_seq(), memory.last_seq, "{context}: replay differs");
    }
}

/// A map of names to versions: the second state machine of the generic tests.
/// Updates and deletes name the version they expect; a stale one is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    items: BTreeMap<String, Item>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub version: u64,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VersionEvent {
    Create {
        name: String,
        note: String,
    },
    /// Sets the note; `version` is the version the writer saw.
    Update {
        name: String,
        version: u64,
        note: String,
    },
    Delete {
        name: String,
        version: u64,
    },
}

impl Versions {
    pub fn get(&self, name: &str) -> Option<&Item> {
        self.items.get(name)
    }
}

impl StateMachine for Versions {
    type Event = VersionEvent;

    fn check(&self, event: &VersionEvent) -> Result<(), Error> {
        match event {
            VersionEvent::Create { name, .. } => match self.items.contains_key(name) {
                true => Err(Error::in_use(format!("{name} exists"))),
                false => Ok(()),
            },
            VersionEvent::Update { name, version, .. } | VersionEvent::Delete { name, version } => {
                match self.items.get(name) {
                    None => Err(Error::not_found(format!("no {name}"))),
                    Some(item) if item.version != *version => Err(Error::invalid(format!(
                        "stale version {version} of {name} (it is at {})",
                        item.version
                    ))),
                    Some(_) => Ok(()),
                }
            }
        }
    }

    fn apply(&mut self, event: VersionEvent) {
        match event {
            VersionEvent::Create { name, note } => {
                let before = self.items.insert(name, Item { version: 1, note });
                assert!(before.is_none(), "unchecked create");
            }
            VersionEvent::Update {
                name,
                version,
                note,
            } => {
                let item = self.items.get_mut(&name).expect("checked");
                assert_eq!(item.version, version, "unchecked update");
                *item = Item {
                    version: version + 1,
                    note,
                };
            }
            VersionEvent::Delete { name, .. } => {
                self.items.remove(&name).expect("checked");
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        match self.items.iter().find(|(_, item)| item.version == 0) {
            Some((name, _)) => Err(format!("{name} has version 0")),
            None => Ok(()),
        }
    }
}

impl Subject for Versions {
    const NAME: &'static str = "versions";

    fn random_event(state: &Versions, rng: &mut Rng, _step: u64) -> VersionEvent {
        let name = rng.pick(&["a", "b", "c", "d"]).to_string();
        let note = "n".repeat(match rng.range(0, 9) {
            0 => rng.range(500, 2000),
            _ => rng.range(0, 20),
        } as usize);
        let Some(current) = state.items.get(&name).map(|i| i.version) else {
            // Mostly a create; sometimes an update or delete of nothing.
            return match rng.range(0, 9) {
                0 => VersionEvent::Delete { name, version: 1 },
                1 => VersionEvent::Update {
                    name,
                    version: 1,
                    note,
                },
                _ => VersionEvent::Create { name, note },
            };
        };
        // Mostly the current version; sometimes a stale or a future one.
        let version = match rng.range(0, 9) {
            0 => current - 1,
            1 => current + 1,
            _ => current,
        };
        match rng.range(0, 9) {
            0 => VersionEvent::Create { name, note },
            1 | 2 => VersionEvent::Delete { name, version },
            _ => VersionEvent::Update {
                name,
                version,
                note,
            },
        }
    }

    fn fresh_event() -> VersionEvent {
        VersionEvent::Create {
            name: "after".into(),
            note: String::new(),
        }
    }

    fn oversized_event() -> VersionEvent {
        VersionEvent::Create {
            name: "big".into(),
            note: "x".repeat(FRAME_PAYLOAD_SIZE_MAX),
        }
    }
}

/// The streams catalog as a subject: the content-only `check` is what the log
/// runs, so events here are always valid parameters (limits are the engine's
/// business, before the log).
impl Subject for CatalogState {
    const NAME: &'static str = "catalog";

    fn random_event(state: &CatalogState, rng: &mut Rng, step: u64) -> CatalogEvent {
        let name = rng.pick(&["a", "b.b", "c_c-1"]).to_string();
        let key = |rng: &mut Rng| rng.pick(&["k0", "k1", "k2"]).to_string();
        let consumer = |rng: &mut Rng| rng.pick(&["c1", "c2"]).to_string();
        match rng.range(0, 11) {
            0 | 1 => CatalogEvent::CreateStream {
                name,
                shard_count: rng.range(1, 4) as u32,
                retention_hours: *rng.pick(&[24, 48, 8760]),
                created_ms: step as i64,
            },
            2 => CatalogEvent::DeleteStream { name },
            3 => CatalogEvent::SetRetention {
                name,
                retention_hours: *rng.pick(&[24, 100, 8760]),
            },
            4 => CatalogEvent::AddTags {
                name,
                tags: (0..rng.range(1, 3))
                    .map(|_| (key(rng), "v".repeat(rng.range(0, 600) as usize)))
                    .collect(),
            },
            5 => CatalogEvent::RemoveTags {
                name,
                keys: (0..rng.range(0, 2)).map(|_| key(rng)).collect(),
            },
            6 => CatalogEvent::ChangeSettings {
                name,
                change: match rng.range(0, 2) {
                    0 => SettingsChange::RegisterConsumer {
                        consumer: consumer(rng),
                        created_ms: step as i64,
                    },
                    1 => SettingsChange::DeregisterConsumer {
                        consumer: consumer(rng),
                    },
                    _ => SettingsChange::Encryption {
                        key: rng.chance(50).then(|| "alias/k".to_string()),
                        data_key: None,
                    },
                },
            },
            7 => CatalogEvent::SetBillingCommitment {
                enabled: rng.chance(50),
                at_ms: step as i64,
            },
            _ => {
                // A reshard planned from the state, as the engine does.
                let Some(meta) = state.get(&name) else {
                    return CatalogEvent::DeleteStream { name };
                };
                let plan = match rng.range(0, 2) {
                    0 => {
                        let open: Vec<_> = meta.shards.iter().filter(|s| s.is_open()).collect();
                        let s = *rng.pick(&open);
                        let span = s.hash_key_end - s.hash_key_start;
                        reshard::split(
                            meta,
                            s.index,
                            s.hash_key_start + span.div_ceil(2),
                            crate::catalog::DEFAULT_ACCOUNT_ID,
                        )
                    }
                    _ => reshard::uniform(meta, rng.range(1, 6) as u32),
                };
                match plan {
                    Ok(plan) if !plan.is_empty() => plan.event(&name, step as i64, |i| i as u64),
                    _ => CatalogEvent::SetRetention {
                        name,
                        retention_hours: 24,
                    },
                }
            }
        }
    }

    fn fresh_event() -> CatalogEvent {
        CatalogEvent::CreateStream {
            name: "after".into(),
            shard_count: 2,
            retention_hours: 24,
            created_ms: 0,
        }
    }

    fn oversized_event() -> CatalogEvent {
        CatalogEvent::CreateStream {
            name: "x".repeat(FRAME_PAYLOAD_SIZE_MAX),
            shard_count: 1,
            retention_hours: 24,
            created_ms: 0,
        }
    }
}
