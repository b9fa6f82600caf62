//! The mappings' durable state, kept in the service's metadata log
//! (`<data-dir>/meta/lambda/`): every mapping's configuration, its source
//! (the stream's incarnation), where each shard starts, its state
//! transition, and each shard's checkpoint. Pure: `check` looks at the state
//! and the event only (the clock comes in the events).

use std::collections::BTreeMap;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What a mapping is doing (AWS's transitional states; none: Enabled or
/// Disabled, by `enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    Creating,
    Enabling,
    Disabling,
    Updating,
    Deleting,
}

impl Transition {
    pub fn aws_name(self) -> &'static str {
        match self {
            Transition::Creating => "Creating",
            Transition::Enabling => "Enabling",
            Transition::Disabling => "Disabling",
            Transition::Updating => "Updating",
            Transition::Deleting => "Deleting",
        }
    }
}

/// Where a shard's delivery stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Reading resumes here: every record before it is done.
    pub next_offset: u64,
    /// The shard is closed and all of it is done (its children may start).
    pub ended: bool,
    /// The open tumbling window and its state, when the mapping has windows.
    #[serde(default)]
    pub window: Option<WindowState>,
}

/// A tumbling window under way: where it starts and the state the
/// function answered last (a JSON object's text; shared, since the state is
/// cloned with every metadata change and may be 1 MB).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    pub start_ms: i64,
    pub state: std::sync::Arc<str>,
}

/// One event-source mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub uuid: String,
    /// This incarnation (a task of an older one never matches).
    pub id: u64,
    pub config: Config,
    pub function_arn: String,
    /// `EventSourceArn` as given (a stream or a stream consumer ARN).
    pub source_arn: String,
    pub stream: String,
    /// The stream's incarnation when the mapping was made.
    pub stream_id: u64,
    /// LATEST: each shard's tip when the mapping was made (shards not named
    /// start at their first record).
    #[serde(default)]
    pub start_offsets: BTreeMap<u32, u64>,
    pub enabled: bool,
    /// The transition under way and when it began (ms).
    pub transition: Option<(Transition, i64)>,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Each shard's checkpoint.
    #[serde(default)]
    pub shards: BTreeMap<u32, Progress>,
}

impl Mapping {
    /// The name of the function, as AWS's conflict message shows it.
    pub fn function_name(&self) -> &str {
        self.function_arn
            .split_once(":function:")
            .map_or(&*self.function_arn, |(_, n)| n)
    }

    /// Where shard `shard`'s reading starts when it has no checkpoint.
    pub fn start_of(&self, shard: u32) -> Option<u64> {
        self.start_offsets.get(&shard).copied()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LambdaState {
    /// By UUID.
    pub mappings: BTreeMap<String, Mapping>,
    /// The next incarnation id.
    pub next_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LambdaEvent {
    /// A new mapping; it gets `next_id` as its id (whatever `mapping.id` says).
    Create { mapping: Box<Mapping> },
    /// A new configuration, function or enabled flag.
    Update {
        uuid: String,
        id: u64,
        config: Box<Config>,
        function_arn: String,
        enabled: bool,
        transition: Transition,
        now_ms: i64,
    },
    /// Deleting begins: the mapping stops; it is purged after its delay.
    Delete { uuid: String, id: u64, now_ms: i64 },
    /// The mapping is gone.
    Purge { uuid: String, id: u64 },
    /// Shards' checkpoints.
    Checkpoint {
        uuid: String,
        id: u64,
        at: Vec<(u32, Progress)>,
    },
}

/// AWS's ResourceNotFoundException text.
pub const NOT_FOUND: &str = "The resource you requested does not exist.";

impl LambdaState {
    /// The mapping `uuid`, while it is incarnation `id`.
    pub fn mapping(&self, uuid: &str, id: u64) -> Result<&Mapping, Error> {
        self.mappings
            .get(uuid)
            .filter(|m| m.id == id)
            .ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    /// The mapping `uuid` of incarnation `id`, unless it is being deleted.
    pub fn live(&self, uuid: &str, id: u64) -> Result<&Mapping, Error> {
        self.mapping(uuid, id)
            .ok()
            .filter(|m| !matches!(m.transition, Some((Transition::Deleting, _))))
            .ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    /// The mapping of this source and function, if any.
    pub fn same(&self, source_arn: &str, function_arn: &str) -> Option<&Mapping> {
        self.mappings
            .values()
            .find(|m| m.source_arn == source_arn && m.function_arn == function_arn)
    }
}

/// AWS's ResourceConflictException for a second mapping of a pair (its
/// spacing inside the quotes is AWS's).
pub fn conflict(existing: &Mapping) -> Error {
    Error::new(
        ErrorCode::ResourceInUse,
        format!(
            "The event source arn (\" {} \") and function (\" {} \") provided mapping already \
             exists. Please update or delete the existing mapping with UUID {}",
            existing.source_arn,
            existing.function_name(),
            existing.uuid
        ),
    )
}

impl StateMachine for LambdaState {
    type Event = LambdaEvent;

    fn check(&self, event: &LambdaEvent) -> Result<(), Error> {
        match event {
            LambdaEvent::Create { mapping } => {
                if self.mappings.contains_key(&mapping.uuid) {
                    return Err(Error::internal("a mapping of that UUID exists"));
                }
                match self.same(&mapping.source_arn, &mapping.function_arn) {
                    Some(existing) => Err(conflict(existing)),
                    None => Ok(()),
                }
            }
            LambdaEvent::Update {
                uuid,
                id,
                function_arn,
                ..
            } => {
                let m = self.live(uuid, *id)?;
                match self.same(&m.source_arn, function_arn) {
                    Some(other) if other.uuid != *uuid => Err(conflict(other)),
                    _ => Ok(()),
                }
            }
            LambdaEvent::Delete { uuid, id, .. } => self.live(uuid, *id).map(|_| ()),
            LambdaEvent::Purge { uuid, id } => match self.mapping(uuid, *id)?.transition {
                Some((Transition::Deleting, _)) => Ok(()),
                _ => Err(Error::invalid(format!(
                    "mapping {uuid} is not being deleted"
                ))),
            },
            LambdaEvent::Checkpoint { uuid, id, at } => {
                let m = self.mapping(uuid, *id)?;
                let mut seen: BTreeMap<u32, &Progress> = BTreeMap::new();
                for (shard, p) in at {
                    let old = seen.get(shard).copied().or_else(|| m.shards.get(shard));
                    if old.is_some_and(|old| old.next_offset > p.next_offset || old.ended) {
                        return Err(Error::invalid(format!(
                            "checkpoint of shard {shard} would go back"
                        )));
                    }
                    seen.insert(*shard, p);
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: LambdaEvent) {
        match event {
            LambdaEvent::Create { mut mapping } => {
                mapping.id = self.next_id;
                self.next_id += 1;
                self.mappings.insert(mapping.uuid.clone(), *mapping);
            }
            LambdaEvent::Update {
                uuid,
                config,
                function_arn,
                enabled,
                transition,
                now_ms,
                ..
            } => {
                let m = self.mappings.get_mut(&uuid).expect("checked");
                m.config = *config;
                m.function_arn = function_arn;
                m.enabled = enabled;
                m.transition = Some((transition, now_ms));
                m.last_modified_ms = now_ms;
            }
            LambdaEvent::Delete { uuid, now_ms, .. } => {
                let m = self.mappings.get_mut(&uuid).expect("checked");
                m.enabled = false;
                m.transition = Some((Transition::Deleting, now_ms));
            }
            LambdaEvent::Purge { uuid, .. } => {
                self.mappings.remove(&uuid);
            }
            LambdaEvent::Checkpoint { uuid, at, .. } => {
                let m = self.mappings.get_mut(&uuid).expect("checked");
                for (shard, p) in at {
                    m.shards.insert(shard, p);
                }
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        match self.mappings.values().find(|m| m.id >= self.next_id) {
            Some(m) => Err(format!(
                "mapping {} has id {} at or past next_id {}",
                m.uuid, m.id, self.next_id
            )),
            None => Ok(()),
        }
    }
}
