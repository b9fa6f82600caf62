//! Firehose's durable metadata: the delivery streams and, per source shard,
//! how far delivery has gone. A [`StateMachine`] over [`Event`]s, kept in
//! `<data-dir>/meta/firehose/` by the engine's metadata log.
//!
//! Delivery is recorded in two steps so an object is written exactly once
//! under one key: [`Event::Plan`] records the object about to be written (its
//! key and the source records it holds) before anything is written, and
//! [`Event::Delivered`] moves the shard's checkpoint past those records once
//! the object is stored. After a crash between the two, the same records are
//! read again and written to the same key (an overwrite, never a second
//! object).
//!
//! Runtime-free and deterministic: times come in with the events.

use std::collections::BTreeMap;

use riffle_protocol::Error;
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// AWS's limit of tags per delivery stream.
pub const TAGS_MAX: usize = 50;

/// Where a delivery stream's records come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    /// PutRecord / PutRecordBatch into the delivery stream's own internal stream.
    DirectPut,
    /// A Kinesis data stream: its ARN, name and incarnation (a stream deleted
    /// and created again is not this source), and when delivery started (the
    /// first records delivered arrived at or after it).
    KinesisStreamAsSource {
        stream_arn: String,
        #[serde(default)]
        stream: String,
        #[serde(default)]
        stream_id: u64,
        #[serde(default)]
        start_ms: i64,
    },
}

impl SourceKind {
    pub fn aws_name(&self) -> &'static str {
        match self {
            SourceKind::DirectPut => "DirectPut",
            SourceKind::KinesisStreamAsSource { .. } => "KinesisStreamAsSource",
        }
    }

    /// Whether records are KPL-de-aggregated before delivery (AWS does it for
    /// stream sources).
    pub fn deaggregates(&self) -> bool {
        matches!(self, SourceKind::KinesisStreamAsSource { .. })
    }
}

/// Server-side encryption as configured (AWS_OWNED_CMK or CUSTOMER_MANAGED_CMK).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub key_type: String,
    #[serde(default)]
    pub key_arn: Option<String>,
}

/// An object planned for delivery: written under `key` in `bucket`, holding
/// the source shard's records `start..end` (offsets), compressed with
/// `compression` (AWS's `CompressionFormat` name). An object rebuilt after a
/// crash goes where it was planned, whatever the configuration says since.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub key: String,
    pub start: u64,
    pub end: u64,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub compression: String,
    /// Where records that fail processing go (their JSON lines).
    #[serde(default)]
    pub error_key: String,
    /// Where records the destination refused go (an HTTP endpoint's
    /// `http-endpoint-failed` lines); empty for S3.
    #[serde(default)]
    pub destination_error_key: String,
    /// The error keys of other error output types (`partitioning-failed`,
    /// `format-conversion-failed`), by type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_keys: BTreeMap<String, String>,
    /// Dynamic partitioning: `key` keeps the partition keys' expressions, and
    /// each partition's object fills them in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
    /// `S3BackupMode` Enabled: where the source records' backup goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PlannedBackup>,
}

/// The backup object of a plan's source records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBackup {
    pub bucket: String,
    pub key: String,
    /// AWS's `CompressionFormat` name.
    pub compression: String,
}

/// Delivery progress of one source shard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardProgress {
    /// Every record before this offset is delivered.
    pub delivered: u64,
    /// The object being written, if any (starts at `delivered`).
    #[serde(default)]
    pub planned: Option<Plan>,
    /// Objects delivered from this shard (names the next object's sequence).
    #[serde(default)]
    pub objects: u64,
    /// The shard is closed (resharding) and every record of it is delivered:
    /// its children may be read.
    #[serde(default)]
    pub ended: bool,
}

/// One delivery stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStream {
    pub name: String,
    /// This incarnation's id (a stream deleted and created again gets a new one).
    pub id: u64,
    pub source: SourceKind,
    /// The source configuration as given (`DirectPutSourceConfiguration`, ...).
    #[serde(default)]
    pub source_config: Value,
    /// `destinationId-000000000001`.
    pub destination_id: String,
    /// The destination's kind (`ExtendedS3`, `HttpEndpoint`, ...) and its
    /// configuration as stored (defaults filled in; see `destination`).
    pub destination: Destination,
    /// VersionId: 1 at creation, +1 per configuration change.
    pub version: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// Per source shard (index).
    #[serde(default)]
    pub progress: BTreeMap<u32, ShardProgress>,
}

/// A destination and its stored configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// `ExtendedS3` (also for the deprecated `S3DestinationConfiguration`),
    /// `HttpEndpoint`, ...
    pub kind: String,
    pub config: Value,
}

/// Firehose's whole metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FirehoseState {
    #[serde(default)]
    pub streams: BTreeMap<String, DeliveryStream>,
    /// The next delivery stream's id.
    #[serde(default)]
    pub next_id: u64,
}

/// A change to Firehose's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Create {
        name: String,
        source: SourceKind,
        source_config: Value,
        destination: Destination,
        tags: BTreeMap<String, String>,
        encryption: Option<Encryption>,
        at_ms: i64,
    },
    Delete {
        name: String,
    },
    /// UpdateDestination: `current_version` must be the stream's VersionId.
    UpdateDestination {
        name: String,
        current_version: u64,
        destination_id: String,
        destination: Destination,
        at_ms: i64,
    },
    AddTags {
        name: String,
        tags: BTreeMap<String, String>,
    },
    RemoveTags {
        name: String,
        keys: Vec<String>,
    },
    SetEncryption {
        name: String,
        encryption: Option<Encryption>,
        at_ms: i64,
    },
    /// An object about to be written from shard `shard` of incarnation `id`.
    Plan {
        name: String,
        id: u64,
        shard: u32,
        plan: Plan,
    },
    /// The planned object of `shard` is stored: its records are delivered.
    Delivered {
        name: String,
        id: u64,
        shard: u32,
        end: u64,
    },
    /// Source shard `shard` is closed and all of it delivered (`end`: its length).
    ShardEnded {
        name: String,
        id: u64,
        shard: u32,
        end: u64,
    },
}

/// AWS's ResourceNotFoundException for a delivery stream (`account` named by
/// the caller's message; the state does not know it).
pub fn not_found(name: &str) -> Error {
    Error::not_found(format!("Firehose {name} not found."))
}

impl FirehoseState {
    fn stream(&self, name: &str) -> Result<&DeliveryStream, Error> {
        self.streams.get(name).ok_or_else(|| not_found(name))
    }

    /// The stream `name` if it is incarnation `id`.
    fn incarnation(&self, name: &str, id: u64) -> Result<&DeliveryStream, Error> {
        match self.streams.get(name) {
            Some(s) if s.id == id => Ok(s),
            _ => Err(not_found(name)),
        }
    }
}

impl StateMachine for FirehoseState {
    type Event = Event;

    fn check(&self, event: &Event) -> Result<(), Error> {
        match event {
            Event::Create { name, tags, .. } => {
                if self.streams.contains_key(name) {
                    return Err(Error::in_use(format!(
                        "Firehose {name} under accountId already exists"
                    )));
                }
                if tags.len() > TAGS_MAX {
                    return Err(too_many_tags());
                }
                Ok(())
            }
            Event::Delete { name } => self.stream(name).map(|_| ()),
            Event::UpdateDestination {
                name,
                current_version,
                destination_id,
                destination,
                ..
            } => {
                let s = self.stream(name)?;
                if s.version != *current_version {
                    return Err(Error::new(
                        riffle_protocol::ErrorCode::ConcurrentModification,
                        format!(
                            "Cannot update firehose: {name} since the current version id: {} and the specified version id: {current_version} do not match",
                            s.version
                        ),
                    ));
                }
                if s.destination_id != *destination_id {
                    return Err(Error::invalid(format!(
                        "Destination Id {destination_id} not found for delivery stream {name}."
                    )));
                }
                if s.destination.kind != destination.kind {
                    return Err(Error::invalid(format!(
                        "Changing the destination type of {name} from {} to {} is not supported.",
                        s.destination.kind, destination.kind
                    )));
                }
                Ok(())
            }
            Event::AddTags { name, tags } => {
                let s = self.stream(name)?;
                let after = s
                    .tags
                    .keys()
                    .chain(tags.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                if after > TAGS_MAX {
                    return Err(too_many_tags());
                }
                Ok(())
            }
            Event::RemoveTags { name, .. } | Event::SetEncryption { name, .. } => {
                self.stream(name).map(|_| ())
            }
            Event::Plan {
                name,
                id,
                shard,
                plan,
            } => {
                let s = self.incarnation(name, *id)?;
                let p = s.progress.get(shard).cloned().unwrap_or_default();
                // Records between the checkpoint and the plan expired
                // (retention) before delivery. One plan at a time: a pending
                // one is delivered (or rebuilt) first.
                if p.planned.is_some() || plan.start < p.delivered || plan.end <= plan.start {
                    return Err(Error::internal(format!(
                        "a plan for records {}..{} of shard {shard} of {name}, delivered up to {}",
                        plan.start, plan.end, p.delivered
                    )));
                }
                Ok(())
            }
            Event::ShardEnded {
                name,
                id,
                shard,
                end,
            } => {
                let s = self.incarnation(name, *id)?;
                let p = s.progress.get(shard).cloned().unwrap_or_default();
                if p.planned.is_some() || p.ended || p.delivered > *end {
                    return Err(Error::internal(format!(
                        "shard {shard} of {name} ended at {end} with {p:?}"
                    )));
                }
                Ok(())
            }
            Event::Delivered {
                name,
                id,
                shard,
                end,
            } => {
                let s = self.incarnation(name, *id)?;
                match s.progress.get(shard).and_then(|p| p.planned.as_ref()) {
                    Some(plan) if plan.end == *end => Ok(()),
                    _ => Err(Error::internal(format!(
                        "records up to {end} of shard {shard} of {name} delivered without a plan"
                    ))),
                }
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Create {
                name,
                source,
                source_config,
                destination,
                tags,
                encryption,
                at_ms,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                self.streams.insert(
                    name.clone(),
                    DeliveryStream {
                        name,
                        id,
                        source,
                        source_config,
                        destination_id: "destinationId-000000000001".to_string(),
                        destination,
                        version: 1,
                        created_ms: at_ms,
                        updated_ms: at_ms,
                        tags,
                        encryption,
                        progress: BTreeMap::new(),
                    },
                );
            }
            Event::Delete { name } => {
                self.streams.remove(&name);
            }
            Event::UpdateDestination {
                name,
                destination,
                at_ms,
                ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                s.destination = destination;
                s.version += 1;
                s.updated_ms = at_ms;
            }
            Event::AddTags { name, tags } => {
                self.streams
                    .get_mut(&name)
                    .expect("checked")
                    .tags
                    .extend(tags);
            }
            Event::RemoveTags { name, keys } => {
                let s = self.streams.get_mut(&name).expect("checked");
                for k in keys {
                    s.tags.remove(&k);
                }
            }
            Event::SetEncryption {
                name,
                encryption,
                at_ms,
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                s.encryption = encryption;
                s.updated_ms = at_ms;
            }
            Event::Plan {
                name, shard, plan, ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                s.progress.entry(shard).or_default().planned = Some(plan);
            }
            Event::Delivered {
                name, shard, end, ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                let p = s.progress.entry(shard).or_default();
                p.delivered = end;
                p.planned = None;
                p.objects += 1;
            }
            Event::ShardEnded {
                name, shard, end, ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                let p = s.progress.entry(shard).or_default();
                p.delivered = end;
                p.ended = true;
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        for (name, s) in &self.streams {
            if &s.name != name {
                return Err(format!("delivery stream {name} is named {}", s.name));
            }
            if s.id >= self.next_id {
                return Err(format!(
                    "delivery stream {name} has id {} >= next {}",
                    s.id, self.next_id
                ));
            }
            for (shard, p) in &s.progress {
                if let Some(plan) = &p.planned
                    && (plan.start < p.delivered || plan.end <= plan.start)
                {
                    return Err(format!(
                        "shard {shard} of {name}: plan {plan:?} at {}",
                        p.delivered
                    ));
                }
            }
        }
        Ok(())
    }
}

fn too_many_tags() -> Error {
    Error::new(
        riffle_protocol::ErrorCode::LimitExceeded,
        format!("A delivery stream cannot have more than {TAGS_MAX} tags."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str) -> Event {
        Event::Create {
            name: name.into(),
            source: SourceKind::DirectPut,
            source_config: Value::Null,
            destination: Destination {
                kind: "ExtendedS3".into(),
                config: serde_json::json!({"BucketARN": "arn:aws:s3:::b"}),
            },
            tags: BTreeMap::new(),
            encryption: None,
            at_ms: 1,
        }
    }

    fn run(state: &mut FirehoseState, e: Event) -> Result<(), Error> {
        state.check(&e)?;
        state.apply(e);
        state.verify().map_err(Error::internal)
    }

    #[test]
    fn versions_grow_and_stale_updates_are_refused() {
        let mut st = FirehoseState::default();
        run(&mut st, create("a")).unwrap();
        assert!(run(&mut st, create("a")).is_err());
        let update = |v: u64| Event::UpdateDestination {
            name: "a".into(),
            current_version: v,
            destination_id: "destinationId-000000000001".into(),
            destination: Destination {
                kind: "ExtendedS3".into(),
                config: serde_json::json!({"BucketARN": "arn:aws:s3:::c"}),
            },
            at_ms: 2,
        };
        run(&mut st, update(1)).unwrap();
        assert_eq!(st.streams["a"].version, 2);
        let stale = run(&mut st, update(1)).unwrap_err();
        assert_eq!(
            stale.code,
            riffle_protocol::ErrorCode::ConcurrentModification
        );
        run(&mut st, update(2)).unwrap();
        assert_eq!(st.streams["a"].version, 3);
    }

    #[test]
    fn delivery_is_planned_then_delivered_in_order() {
        let mut st = FirehoseState::default();
        run(&mut st, create("a")).unwrap();
        let plan = |start, end| Event::Plan {
            name: "a".into(),
            id: 0,
            shard: 1,
            plan: Plan {
                key: format!("k{start}"),
                start,
                end,
                bucket: "b".into(),
                compression: "UNCOMPRESSED".into(),
                ..Plan::default()
            },
        };
        let delivered = |end| Event::Delivered {
            name: "a".into(),
            id: 0,
            shard: 1,
            end,
        };
        // Delivered without a plan, a plan before the checkpoint, an empty plan.
        assert!(run(&mut st, delivered(3)).is_err());
        assert!(run(&mut st, plan(0, 0)).is_err());
        run(&mut st, plan(0, 3)).unwrap();
        assert!(run(&mut st, delivered(2)).is_err());
        run(&mut st, delivered(3)).unwrap();
        let p = &st.streams["a"].progress[&1];
        assert_eq!((p.delivered, p.planned.clone(), p.objects), (3, None, 1));
        assert!(run(&mut st, plan(2, 4)).is_err());
        // Another incarnation's progress does not apply.
        run(&mut st, Event::Delete { name: "a".into() }).unwrap();
        run(&mut st, create("a")).unwrap();
        assert!(run(&mut st, plan(3, 5)).is_err());
        assert_eq!(st.streams["a"].id, 1);
    }

    #[test]
    fn tags_are_limited() {
        let mut st = FirehoseState::default();
        run(&mut st, create("a")).unwrap();
        let tags: BTreeMap<String, String> = (0..TAGS_MAX)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        run(
            &mut st,
            Event::AddTags {
                name: "a".into(),
                tags: tags.clone(),
            },
        )
        .unwrap();
        // The same keys again: still 50.
        run(
            &mut st,
            Event::AddTags {
                name: "a".into(),
                tags,
            },
        )
        .unwrap();
        let one_more = BTreeMap::from([("x".to_string(), String::new())]);
        let e = run(
            &mut st,
            Event::AddTags {
                name: "a".into(),
                tags: one_more,
            },
        )
        .unwrap_err();
        assert_eq!(e.code, riffle_protocol::ErrorCode::LimitExceeded);
    }
}
