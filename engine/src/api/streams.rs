//! The engine's control plane: streams created, deleted, described and
//! listed, their retention, tags and settings, and resharding, each a message
//! to the control task that applies it to the catalog.

use std::sync::Arc;

use riffle_protocol::{Error, ErrorCode, Limits};
use riffle_protocol::{routing, seqno};

use super::Engine;
use super::types::*;
use crate::control::{CatalogView, ControlMsg, ReshardChange, StreamInfo};
use crate::rt::{self};

impl Engine {
    pub async fn create_stream(&self, name: &str, shard_count: u32) -> Result<(), Error> {
        let name = name.to_string();
        self.control(|reply| ControlMsg::CreateStream {
            name,
            shard_count,
            created_ms: rt::now_ms(),
            reply,
        })
        .await
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.control(|reply| ControlMsg::DeleteStream { name, reply })
            .await
    }

    pub async fn set_retention_hours(&self, name: &str, retention_hours: u32) -> Result<(), Error> {
        let name = name.to_string();
        self.control(|reply| ControlMsg::SetRetention {
            name,
            retention_hours,
            reply,
        })
        .await
    }

    /// Adds tags to a stream (replacing values of keys it has); AWS limits apply.
    pub async fn add_tags(
        &self,
        name: &str,
        tags: std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let event = riffle_store::catalog::CatalogEvent::AddTags {
            name: name.to_string(),
            tags,
        };
        self.control(|reply| ControlMsg::Metadata { event, reply })
            .await
    }

    /// Removes tags from a stream; keys it does not have are ignored.
    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<(), Error> {
        let event = riffle_store::catalog::CatalogEvent::RemoveTags {
            name: name.to_string(),
            keys,
        };
        self.control(|reply| ControlMsg::Metadata { event, reply })
            .await
    }

    /// Changes one of a stream's stored settings (encryption, enhanced
    /// monitoring, resource policy, capacity mode).
    pub async fn change_settings(
        &self,
        name: &str,
        change: riffle_store::catalog::SettingsChange,
    ) -> Result<(), Error> {
        let event = riffle_store::catalog::CatalogEvent::ChangeSettings {
            name: name.to_string(),
            change,
        };
        self.control(|reply| ControlMsg::Metadata { event, reply })
            .await
    }

    /// Turns the account's minimum throughput billing commitment on or off
    /// (stored and reported; Riffle bills nothing).
    pub async fn set_billing_commitment(&self, enabled: bool) -> Result<(), Error> {
        let event = riffle_store::catalog::CatalogEvent::SetBillingCommitment {
            enabled,
            at_ms: rt::now_ms(),
        };
        self.control(|reply| ControlMsg::Metadata { event, reply })
            .await
    }

    /// The account-wide settings.
    pub fn account_settings(&self) -> riffle_store::catalog::AccountSettings {
        self.shared.view.load().account.clone()
    }

    /// The limits records of `stream` are checked against: the engine's, with
    /// the stream's UpdateMaxRecordSize value (1-10 MiB) as the record size
    /// bound when it has one (the engine's when the stream does not exist yet:
    /// its absence is reported later).
    pub(super) fn stream_limits(&self, stream: Option<&StreamInfo>) -> Limits {
        let kib = stream.and_then(|s| s.meta.settings.max_record_size_kib);
        Limits {
            record_data_size_max: kib.map_or(self.limits().record_data_size_max, |k| {
                k.saturating_mul(1024)
            }),
            ..self.limits().clone()
        }
    }

    /// [`Engine::stream_limits`] of the stream named `stream`: what a service
    /// appending its own batches ([`Engine::append_built`]) checks each of
    /// its records against.
    pub fn limits_of(&self, stream: &str) -> Limits {
        self.stream_limits(self.shared.view.load().streams.get(stream).map(|s| &**s))
    }

    /// A stream to describe and its status: also a stream being deleted (see
    /// `EngineConfig::state_delay_ms`), which takes no other operation.
    pub(super) fn described(&self, name: &str) -> Result<(Arc<StreamInfo>, &'static str), Error> {
        let now = rt::now_ms();
        let view = self.shared.view.load();
        if let Some(s) = view.streams.get(name) {
            return Ok((s.clone(), s.status(now, self.shared.config.state_delay_ms)));
        }
        match view.deleting.get(name) {
            Some((s, until)) if *until > now => Ok((s.clone(), "DELETING")),
            _ => Err(self.stream_not_found(name)),
        }
    }

    /// A stream records can be written to and read from: not CREATING (AWS
    /// answers ResourceNotFound then).
    pub(super) fn data_stream(&self, name: &str) -> Result<Arc<StreamInfo>, Error> {
        self.data_stream_in(&self.shared.view.load(), name)
    }

    /// [`Engine::data_stream`] in a given view.
    pub(super) fn data_stream_in(
        &self,
        view: &CatalogView,
        name: &str,
    ) -> Result<Arc<StreamInfo>, Error> {
        let s = view
            .streams
            .get(name)
            .cloned()
            .ok_or_else(|| self.stream_not_found(name))?;
        // A service's internal stream takes records as soon as it exists.
        if s.status(rt::now_ms(), self.shared.config.state_delay_ms) == "CREATING"
            && !riffle_store::catalog::is_internal_stream(name)
        {
            return Err(self.stream_not_found(name));
        }
        Ok(s)
    }

    /// A stream's stored settings.
    pub fn settings(&self, name: &str) -> Result<riffle_store::catalog::StreamSettings, Error> {
        Ok(self.described(name)?.0.meta.settings.clone())
    }

    /// Turns server-side encryption on with the KMS key `key_id` (any of AWS's
    /// forms): a new data key, wrapped by that key, is recorded with the
    /// setting and used for every batch written from then on (earlier batches
    /// keep theirs: only data written after is encrypted, as on AWS); the
    /// stream's last data key is used again when that KMS key wrapped it.
    /// AWS's KMS errors when the key is missing or disabled.
    pub async fn start_encryption(&self, name: &str, key_id: &str) -> Result<(), Error> {
        let s = self.stream(name)?;
        let kms = &self.shared.kms;
        let arn = kms.describe(key_id)?;
        let data_key = match s.meta.settings.data_keys.last() {
            Some(last) if last.kms_key == arn => None,
            _ => Some(kms.generate_data_key(key_id, &crate::kms::context(&s.meta))?),
        };
        self.change_settings(
            name,
            riffle_store::catalog::SettingsChange::Encryption {
                key: Some(key_id.to_owned()),
                data_key,
            },
        )
        .await
    }

    /// Gives a data key to every stream a catalog written before Riffle
    /// encrypted at rest records as encrypted (its key id, no data key), so
    /// that its puts are encrypted from now on; a stream whose key the KMS
    /// refuses is logged, and its puts answer that refusal until
    /// StartStreamEncryption succeeds. Blocks: call it from outside the cores.
    pub fn upgrade_encryption(&self) {
        let legacy: Vec<(String, String)> = self
            .shared
            .view
            .load()
            .streams
            .values()
            .filter(|s| s.meta.settings.data_keys.is_empty())
            .filter_map(|s| Some((s.meta.name.clone(), s.meta.settings.encryption_key.clone()?)))
            .collect();
        for (name, key) in legacy {
            match futures_lite::future::block_on(self.start_encryption(&name, &key)) {
                Ok(()) => {
                    tracing::info!(stream = %name, key = %key, "encryption at rest started for a stream encrypted before it existed")
                }
                Err(e) => {
                    tracing::warn!(stream = %name, key = %key, error = %e, "a stream records encryption but its key cannot be used; its puts are refused until StartStreamEncryption succeeds")
                }
            }
        }
    }

    /// Turns server-side encryption off: later batches are written in the
    /// clear; earlier ones stay encrypted and readable while their key is.
    pub async fn stop_encryption(&self, name: &str) -> Result<(), Error> {
        self.change_settings(
            name,
            riffle_store::catalog::SettingsChange::Encryption {
                key: None,
                data_key: None,
            },
        )
        .await
    }

    /// Whether the server has a KMS keyring (`--kms-keyring`): without one,
    /// every KMS key is missing.
    pub fn has_keyring(&self) -> bool {
        self.shared.kms.has_keyring()
    }

    /// The data key new batches of `s` are written under, when it is encrypted;
    /// the KMS's error when its key cannot be used now.
    pub(crate) fn sealing_key(&self, s: &StreamInfo) -> Result<crate::core::SealingKey, Error> {
        let settings = &s.meta.settings;
        let Some(key_id) = &settings.encryption_key else {
            return Ok(None);
        };
        let Some((key_ref, stored)) = settings.sealing_key() else {
            // Encryption recorded before Riffle encrypted (an older catalog),
            // and `upgrade_encryption` could not give it a data key.
            return Err(Error::new(
                ErrorCode::KmsNotFound,
                format!(
                    "stream {} has encryption on with {key_id} but no data key: call StartStreamEncryption again",
                    s.meta.name
                ),
            ));
        };
        let key = self
            .shared
            .kms
            .data_key(stored, || crate::kms::context(&s.meta))?;
        Ok(Some((key_ref, key)))
    }

    /// What reads of `s` decrypt with: its data keys as the catalog has them
    /// when a batch needs one (a batch written under a key added while the
    /// read waits is read too).
    pub(crate) fn read_keys(&self, s: &Arc<StreamInfo>) -> crate::core::ReadKeys {
        Some(Arc::new(crate::kms::StreamKeys {
            kms: self.shared.kms.clone(),
            view: self.shared.view.clone(),
            stream: s.clone(),
        }))
    }

    /// Whether the stream has server-side encryption on (false if it does not exist).
    pub fn is_encrypted(&self, name: &str) -> bool {
        self.shared
            .view
            .load()
            .streams
            .get(name)
            .is_some_and(|s| s.meta.settings.encryption_key.is_some())
    }

    /// A stream's tags, sorted by key.
    pub fn tags(&self, name: &str) -> Result<std::collections::BTreeMap<String, String>, Error> {
        Ok(self.stream(name)?.meta.tags.clone())
    }

    /// Every stream's name, sorted, including streams still DELETING; not the
    /// internal streams services own (`catalog::is_internal_stream`).
    pub fn list_streams(&self) -> Vec<String> {
        let view = self.shared.view.load();
        let now = rt::now_ms();
        let mut names: Vec<String> = view
            .streams
            .keys()
            .chain(
                view.deleting
                    .iter()
                    .filter(|(_, (_, until))| *until > now)
                    .map(|(name, _)| name),
            )
            .filter(|name| !riffle_store::catalog::is_internal_stream(name))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The internal streams `owner` owns (`<owner>:<name>`), sorted: what a
    /// service reconciles with its own metadata at start.
    pub fn internal_streams(&self, owner: &str) -> Vec<String> {
        let prefix = format!(
            "{owner}{}",
            riffle_store::catalog::INTERNAL_STREAM_SEPARATOR
        );
        let mut names: Vec<String> = self
            .shared
            .view
            .load()
            .streams
            .keys()
            .filter(|n| n.starts_with(&prefix))
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn describe_stream(&self, name: &str) -> Result<StreamDescription, Error> {
        let (s, status) = self.described(name)?;
        Ok(StreamDescription {
            name: s.meta.name.clone(),
            status,
            shards: shard_descriptions(&s),
            retention_hours: s.meta.retention_hours,
            created_ms: s.meta.created_ms,
        })
    }

    /// Every shard of the stream, open and closed, in index order.
    pub fn list_shards(&self, name: &str) -> Result<Vec<ShardDescription>, Error> {
        let s = self.stream(name)?;
        Ok(shard_descriptions(&s))
    }
}

/// When shard `index` of `s` opened (the stream's creation for its first shards).
pub(super) fn shard_opened(s: &StreamInfo, index: u32) -> ShardOpened {
    let shard = s.meta.shards.get(index as usize);
    ShardOpened {
        at_ms: shard
            .and_then(|sh| sh.opened_ms)
            .unwrap_or(s.meta.created_ms),
        by_reshard: shard.is_some_and(|sh| sh.parent.is_some()),
    }
}

pub(super) fn shard_descriptions(s: &StreamInfo) -> Vec<ShardDescription> {
    s.meta
        .shards
        .iter()
        .map(|sh| ShardDescription {
            shard_index: sh.index,
            shard_id: sh.shard_id(),
            hash_key_start: sh.hash_key_start,
            hash_key_end: sh.hash_key_end,
            starting_sequence_number: seqno::to_string(seqno::encode(sh.index, 0)),
            parent_shard_id: sh.parent.map(routing::shard_id),
            adjacent_parent_shard_id: sh.adjacent_parent.map(routing::shard_id),
            ending_sequence_number: sh.closed.map(|end| {
                seqno::to_string(seqno::encode(sh.index, end.end_offset.saturating_sub(1)))
            }),
            opened_ms: sh.opened_ms.unwrap_or(s.meta.created_ms),
            closed_ms: sh.closed.map(|end| end.closed_ms),
        })
        .collect()
}

impl Engine {
    pub(super) async fn reshard(&self, name: &str, change: ReshardChange) -> Result<(), Error> {
        let name = name.to_string();
        self.control(|reply| ControlMsg::Reshard {
            name,
            change,
            reply,
        })
        .await
    }

    /// SplitShard: the open shard `shard_id` is closed and two children take its
    /// hash keys below and from `new_starting_hash_key`.
    pub async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
        new_starting_hash_key: u128,
    ) -> Result<(), Error> {
        let s = self.stream(name)?;
        let shard = self.shard_index(&s, shard_id)?;
        self.reshard(
            name,
            ReshardChange::Split {
                shard,
                new_start: new_starting_hash_key,
            },
        )
        .await
    }

    /// MergeShards: two open shards with adjacent hash-key ranges are closed and
    /// one child takes both ranges.
    pub async fn merge_shards(
        &self,
        name: &str,
        shard_id: &str,
        adjacent: &str,
    ) -> Result<(), Error> {
        let s = self.stream(name)?;
        let shard = self.shard_index(&s, shard_id)?;
        let adjacent = self.shard_index(&s, adjacent)?;
        self.reshard(name, ReshardChange::Merge { shard, adjacent })
            .await
    }

    /// UpdateShardCount with UNIFORM_SCALING: `target` open shards of equal size.
    pub async fn update_shard_count(&self, name: &str, target: u32) -> Result<(), Error> {
        self.reshard(name, ReshardChange::Uniform { target }).await
    }

    /// The id of the stream's current incarnation (ids are never reused, so a
    /// stream deleted and created again has a new one).
    pub fn stream_id(&self, stream: &str) -> Result<u64, Error> {
        Ok(self.stream(stream)?.meta.id)
    }

    /// Ok when `stream` exists and, if `stream_id` is given, is that incarnation
    /// (see [`Engine::stream_id`]); ResourceNotFound otherwise: a client that
    /// listed the shards of a stream since deleted and created again must list
    /// them again before it routes.
    pub fn check_incarnation(&self, stream: &str, stream_id: Option<u64>) -> Result<(), Error> {
        let s = self.stream(stream)?;
        check_incarnation(&s, stream_id)
    }
}

pub(super) fn check_incarnation(s: &StreamInfo, stream_id: Option<u64>) -> Result<(), Error> {
    match stream_id {
        Some(id) if id != s.meta.id => Err(Error::not_found(format!(
            "Stream {} was deleted and created again since its shards were listed; list them again",
            s.meta.name
        ))),
        _ => Ok(()),
    }
}

/// The shards whose parent or adjacent parent is `index`.
pub(super) fn children(s: &StreamInfo, index: u32) -> Vec<ChildShard> {
    s.meta
        .shards
        .iter()
        .filter(|c| c.parent == Some(index) || c.adjacent_parent == Some(index))
        .map(|c| ChildShard {
            shard_id: c.shard_id(),
            parent_shard_ids: c
                .parent
                .into_iter()
                .chain(c.adjacent_parent)
                .map(routing::shard_id)
                .collect(),
            hash_key_start: c.hash_key_start,
            hash_key_end: c.hash_key_end,
        })
        .collect()
}
