//! The video streams' durable state, kept in the service's metadata log
//! (`<data-dir>/meta/video/`): each stream's name, incarnation, ARN, device
//! name, media type, key, retention, version and tags. Pure: `check` looks
//! at the state and the event only (times and versions come in the events;
//! the handlers in `streams.rs` and `tags.rs` make them).
//!
//! A stream's fragments live in its internal stream (`VideoStream::internal`,
//! [`internal_stream`]), named apart from the video stream's name so that a
//! stream deleted and made again under the same name never sees the old
//! one's fragments, and so that AWS's 256-character names fit.

use std::collections::BTreeMap;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};

/// The owner part of the internal streams' names (`video:<token>`).
pub const INTERNAL_OWNER: &str = "video";

/// The internal stream of a video stream made at `created_ms`, told apart
/// from others made in the same millisecond by `nonce` (random): unique
/// without reading the state, so the engine's stream can be made before
/// the metadata names it.
pub fn internal_stream(created_ms: i64, nonce: u32) -> String {
    format!("{INTERNAL_OWNER}:{created_ms}-{nonce:08x}")
}

/// One video stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoStream {
    pub name: String,
    /// This incarnation (`next_id` when it was made).
    pub id: u64,
    pub arn: String,
    /// The engine stream holding its fragments ([`internal_stream`]).
    pub internal: String,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    pub kms_key_id: String,
    pub retention_hours: u32,
    /// Changes with every UpdateStream and UpdateDataRetention; callers
    /// name it as `CurrentVersion`.
    pub version: String,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// StreamStorageConfiguration's DefaultStorageTier, when given.
    #[serde(default)]
    pub storage_tier: Option<String>,
    /// UpdateImageGenerationConfiguration's ImageGenerationConfiguration
    /// (AWS's shape, as given and checked): images sampled and POSTed to its
    /// DestinationConfig.Uri (generator.rs).
    #[serde(default)]
    pub image_generation: Option<serde_json::Value>,
    /// UpdateNotificationConfiguration's NotificationConfiguration: where
    /// the image endpoint's answers are written (a data stream's ARN).
    #[serde(default)]
    pub notification: Option<serde_json::Value>,
}

/// Every video stream by name, and the next incarnation number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoState {
    pub streams: BTreeMap<String, VideoStream>,
    #[serde(default)]
    pub next_id: u64,
}

/// A change to the video streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoEvent {
    /// A new stream; its `id` is set from `next_id` when applied.
    Create { stream: Box<VideoStream> },
    /// Removes incarnation `id` of `name`.
    Delete { name: String, id: u64 },
    /// UpdateStream: members not given are kept.
    Update {
        name: String,
        id: u64,
        current_version: String,
        device_name: Option<String>,
        media_type: Option<String>,
        version: String,
    },
    /// UpdateDataRetention, as the resulting hours.
    Retention {
        name: String,
        id: u64,
        current_version: String,
        retention_hours: u32,
        version: String,
    },
    /// Adds tags, replacing the values of keys the stream has.
    Tag {
        name: String,
        id: u64,
        tags: BTreeMap<String, String>,
    },
    /// Removes tags; keys the stream does not have are ignored.
    Untag {
        name: String,
        id: u64,
        keys: Vec<String>,
    },
    /// Sets (or, with none, removes) the image generation configuration.
    ImageGeneration {
        name: String,
        id: u64,
        config: Option<serde_json::Value>,
    },
    /// Sets (or removes) the notification configuration.
    Notification {
        name: String,
        id: u64,
        config: Option<serde_json::Value>,
    },
}

/// AWS's tag bound per stream (LimitExceeded here; the service answers it
/// as TagsPerResourceExceededLimitException).
pub const TAGS_PER_STREAM_MAX: usize = 50;

/// The refusal of a stream that does not exist (or is another incarnation).
pub fn not_found(name: &str) -> Error {
    Error::new(
        ErrorCode::ResourceNotFound,
        format!("The requested stream {name} was not found."),
    )
}

/// The refusal of a `CurrentVersion` that is not the stream's (the service
/// answers ConcurrentModification as AWS's VersionMismatchException).
pub fn version_mismatch(name: &str) -> Error {
    Error::new(
        ErrorCode::ConcurrentModification,
        format!("The version of stream {name} does not match the CurrentVersion given."),
    )
}

impl VideoState {
    /// Incarnation `id` of `name`.
    pub fn live(&self, name: &str, id: u64) -> Result<&VideoStream, Error> {
        match self.streams.get(name) {
            Some(s) if s.id == id => Ok(s),
            _ => Err(not_found(name)),
        }
    }

    /// The stream an ARN names (name and creation time both match).
    pub fn by_arn(&self, arn: &str) -> Option<&VideoStream> {
        let name = name_of_arn(arn)?;
        self.streams.get(name).filter(|s| s.arn == arn)
    }
}

/// The stream name in a video stream ARN
/// (`arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/CREATED_MS`).
pub fn name_of_arn(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("stream"), Some(name), Some(_), None) if !name.is_empty() => Some(name),
        _ => None,
    }
}

impl StateMachine for VideoState {
    type Event = VideoEvent;

    fn check(&self, event: &VideoEvent) -> Result<(), Error> {
        match event {
            VideoEvent::Create { stream } => match self.streams.contains_key(&stream.name) {
                true => Err(Error::new(
                    ErrorCode::ResourceInUse,
                    format!("The stream {} already exists.", stream.name),
                )),
                false => Ok(()),
            },
            VideoEvent::Delete { name, id } => self.live(name, *id).map(|_| ()),
            VideoEvent::Update {
                name,
                id,
                current_version,
                ..
            }
            | VideoEvent::Retention {
                name,
                id,
                current_version,
                ..
            } => match self.live(name, *id)? {
                s if s.version != *current_version => Err(version_mismatch(name)),
                _ => Ok(()),
            },
            VideoEvent::Tag { name, id, tags } => {
                let s = self.live(name, *id)?;
                let added = tags.keys().filter(|k| !s.tags.contains_key(*k)).count();
                if s.tags.len() + added > TAGS_PER_STREAM_MAX {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("The stream {name} can have at most {TAGS_PER_STREAM_MAX} tags."),
                    ));
                }
                Ok(())
            }
            VideoEvent::Untag { name, id, .. }
            | VideoEvent::ImageGeneration { name, id, .. }
            | VideoEvent::Notification { name, id, .. } => self.live(name, *id).map(|_| ()),
        }
    }

    fn apply(&mut self, event: VideoEvent) {
        match event {
            VideoEvent::Create { mut stream } => {
                stream.id = self.next_id;
                self.next_id += 1;
                self.streams.insert(stream.name.clone(), *stream);
            }
            VideoEvent::Delete { name, .. } => {
                self.streams.remove(&name);
            }
            VideoEvent::Update {
                name,
                device_name,
                media_type,
                version,
                ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                if device_name.is_some() {
                    s.device_name = device_name;
                }
                if media_type.is_some() {
                    s.media_type = media_type;
                }
                s.version = version;
            }
            VideoEvent::Retention {
                name,
                retention_hours,
                version,
                ..
            } => {
                let s = self.streams.get_mut(&name).expect("checked");
                s.retention_hours = retention_hours;
                s.version = version;
            }
            VideoEvent::Tag { name, tags, .. } => {
                let s = self.streams.get_mut(&name).expect("checked");
                s.tags.extend(tags);
            }
            VideoEvent::Untag { name, keys, .. } => {
                let s = self.streams.get_mut(&name).expect("checked");
                for k in keys {
                    s.tags.remove(&k);
                }
            }
            VideoEvent::ImageGeneration { name, config, .. } => {
                self.streams
                    .get_mut(&name)
                    .expect("checked")
                    .image_generation = config;
            }
            VideoEvent::Notification { name, config, .. } => {
                self.streams.get_mut(&name).expect("checked").notification = config;
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        for (name, s) in &self.streams {
            if *name != s.name {
                return Err(format!("stream {} kept under {name}", s.name));
            }
            if s.id >= self.next_id {
                return Err(format!(
                    "stream {name} has id {} ≥ next {}",
                    s.id, self.next_id
                ));
            }
            if s.tags.len() > TAGS_PER_STREAM_MAX {
                return Err(format!("stream {name} has {} tags", s.tags.len()));
            }
        }
        Ok(())
    }
}
