//! Stream catalog: which streams exist, their shards and retention, durable
//! across restarts.
//!
//! Owns the catalog's in-memory state ([`CatalogState`]) and the validation of
//! every catalog change ([`CatalogState::check`], AWS-style errors). It is one
//! instance of the metadata log ([`crate::metalog`]): [`CatalogState`] is the
//! [`StateMachine`], [`Catalog`] the [`MetaLog`] plus the checks against
//! `Limits` that only a client's request needs (replay must not depend on
//! limits). It does not know about segments or records, and never reads a
//! clock: creation times come in with the events. Lives on the one core that
//! owns the catalog; not shared.
//!
//! Files in `dir` (`<data-dir>/catalog/`, where the catalog was before metadata
//! logs were generic; the format is unchanged): `catalog.snapshot` (JSON of
//! [`CatalogState`] with `last_seq` as its last field) and `catalog.log`
//! (`{"seq": u64, "event": CatalogEvent}` frames), as described in
//! [`crate::metalog`].

use std::collections::BTreeMap;
use std::path::Path;

use riffle_protocol::{Error, ErrorCode, Limits};
use serde::{Deserialize, Serialize};

use crate::metalog::{EVENT_SIZE_MAX, MetaLog, MetaLogError, StateMachine};
use crate::storage::Storage;
use riffle_protocol::routing;

/// The catalog's metadata log name: its files are `catalog.snapshot` and
/// `catalog.log`.
pub const CATALOG_LOG_NAME: &str = "catalog";

/// Why a catalog could not be opened.
pub type CatalogError = MetaLogError;

/// The account id error messages name when none is configured (`riffle server
/// --account`): the placeholder AWS-compatible local emulators use, so clients
/// matching on messages still work.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// One shard of a stream: its index (the shard id is [`routing::shard_id`] of it),
/// its inclusive hash-key range and, once resharding is involved, its lineage and
/// whether it is closed. Indexes are never reused: a split or merge adds shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: u32,
    #[serde(with = "u128_decimal")]
    pub hash_key_start: u128,
    #[serde(with = "u128_decimal")]
    pub hash_key_end: u128,
    /// The shard this one was split from, or the first of the two merged into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// The second shard of a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent: Option<u32>,
    /// When resharding opened it; `None` for the stream's first shards (opened
    /// with the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_ms: Option<i64>,
    /// Set when resharding closed it: it takes no more records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<ShardEnd>,
}

/// Where and when a closed shard ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEnd {
    /// The offset after its last record (its length: offsets start at 0).
    pub end_offset: u64,
    pub closed_ms: i64,
}

impl ShardMeta {
    /// One of a stream's first shards: no parents, open.
    pub fn initial(index: u32, hash_key_start: u128, hash_key_end: u128) -> ShardMeta {
        ShardMeta {
            index,
            hash_key_start,
            hash_key_end,
            parent: None,
            adjacent_parent: None,
            opened_ms: None,
            closed: None,
        }
    }

    /// The AWS shard id, `shardId-000000000000` style.
    pub fn shard_id(&self) -> String {
        routing::shard_id(self.index)
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

/// A shard a [`CatalogEvent::Reshard`] adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShard {
    pub parent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent: Option<u32>,
    #[serde(with = "u128_decimal")]
    pub hash_key_start: u128,
    #[serde(with = "u128_decimal")]
    pub hash_key_end: u128,
    /// Created closed and empty: an intermediate step of UpdateShardCount, as AWS
    /// makes when a uniform scaling needs several splits and merges.
    pub closed: bool,
}

/// An open shard a [`CatalogEvent::Reshard`] closes, and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedShard {
    pub index: u32,
    pub end_offset: u64,
}

/// A stream as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Unique, assigned from [`CatalogState::next_stream_id`], never reused even
    /// after the stream is deleted (a recreated stream gets a new id, so old
    /// segment files can never be mistaken for the new stream's).
    pub id: u64,
    pub name: String,
    pub shards: Vec<ShardMeta>,
    pub retention_hours: u32,
    pub created_ms: i64,
    /// Tags (key → value); absent in catalogs written before tags existed.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Settings the AWS API stores and reports; defaults in older catalogs.
    #[serde(default)]
    pub settings: StreamSettings,
}

/// Stream settings the AWS API stores and reports, and the stream's data keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// The KMS key id, as the caller gave it, while server-side encryption is on.
    pub encryption_key: Option<String>,
    /// Every data key the stream's batches were written under, oldest first:
    /// `data_keys[i]` is key reference `i + 1` (`cipher`). While encryption is
    /// on, new batches use the last one. Never removed (history stays readable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_keys: Vec<StreamDataKey>,
    /// Enhanced monitoring's shard-level metrics.
    pub shard_level_metrics: std::collections::BTreeSet<String>,
    /// The stream's resource policy (a JSON document), if any.
    pub resource_policy: Option<String>,
    /// ON_DEMAND capacity mode (else PROVISIONED).
    pub on_demand: bool,
    /// Registered enhanced fan-out consumers: name → creation time (ms).
    #[serde(default)]
    pub consumers: BTreeMap<String, i64>,
    /// UpdateMaxRecordSize's value (KiB), when set.
    #[serde(default)]
    pub max_record_size_kib: Option<u32>,
    /// UpdateStreamWarmThroughput's target (MiB/s), when set.
    #[serde(default)]
    pub warm_throughput_mibps: Option<u32>,
}

/// A stream's data key as the catalog keeps it: wrapped by a KMS key, never in
/// the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDataKey {
    /// The ARN of the KMS key that wrapped it.
    pub kms_key: String,
    /// The wrapped data key (base64), as the KMS returned it.
    pub wrapped: String,
}

impl StreamSettings {
    /// The key reference and data key new batches are written under, while
    /// encryption is on.
    pub fn sealing_key(&self) -> Option<(u32, &StreamDataKey)> {
        self.encryption_key.as_ref()?;
        let last = self.data_keys.last()?;
        Some((self.data_keys.len() as u32, last))
    }

    /// The data key a batch's `key_ref` names.
    pub fn data_key(&self, key_ref: u32) -> Option<&StreamDataKey> {
        self.data_keys.get((key_ref as usize).checked_sub(1)?)
    }
}

/// Account-wide settings the AWS API stores and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Since when the minimum throughput billing commitment is on (ms), if it is.
    pub billing_commitment_since_ms: Option<i64>,
}

/// AWS: at most 20 registered consumers per stream.
pub const CONSUMERS_PER_STREAM_MAX: usize = 20;

/// One change to a stream's [`StreamSettings`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingsChange {
    /// Encryption on (`key`, the KMS key id as given) or off; a `data_key`
    /// joins the stream's data keys and is used from then on.
    Encryption {
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_key: Option<StreamDataKey>,
    },
    EnableMetrics {
        metrics: Vec<String>,
    },
    DisableMetrics {
        metrics: Vec<String>,
    },
    ResourcePolicy {
        policy: Option<String>,
    },
    Mode {
        on_demand: bool,
    },
    RegisterConsumer {
        consumer: String,
        created_ms: i64,
    },
    DeregisterConsumer {
        consumer: String,
    },
    MaxRecordSize {
        kib: u32,
    },
    WarmThroughput {
        mibps: u32,
    },
}

impl StreamSettings {
    /// The settings after `change`.
    pub fn apply(&mut self, change: &SettingsChange) {
        match change {
            SettingsChange::Encryption { key, data_key } => {
                self.encryption_key = key.clone();
                self.data_keys.extend(data_key.iter().cloned());
            }
            SettingsChange::EnableMetrics { metrics } => {
                self.shard_level_metrics.extend(metrics.iter().cloned())
            }
            SettingsChange::DisableMetrics { metrics } => {
                for m in metrics {
                    self.shard_level_metrics.remove(m);
                }
            }
            SettingsChange::ResourcePolicy { policy } => self.resource_policy = policy.clone(),
            SettingsChange::Mode { on_demand } => self.on_demand = *on_demand,
            SettingsChange::RegisterConsumer {
                consumer,
                created_ms,
            } => {
                self.consumers.insert(consumer.clone(), *created_ms);
            }
            SettingsChange::DeregisterConsumer { consumer } => {
                self.consumers.remove(consumer);
            }
            SettingsChange::MaxRecordSize { kib } => self.max_record_size_kib = Some(*kib),
            SettingsChange::WarmThroughput { mibps } => self.warm_throughput_mibps = Some(*mibps),
        }
    }
}

/// A change to the catalog. The unit of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CatalogEvent {
    CreateStream {
        name: String,
        shard_count: u32,
        retention_hours: u32,
        created_ms: i64,
    },
    DeleteStream {
        name: String,
    },
    SetRetention {
        name: String,
        retention_hours: u32,
    },
    /// Adds tags, replacing the values of keys already there.
    AddTags {
        name: String,
        tags: BTreeMap<String, String>,
    },
    /// Removes tags (keys that are not there are ignored, as AWS does).
    RemoveTags {
        name: String,
        keys: Vec<String>,
    },
    /// Changes one of the stream's settings.
    ChangeSettings {
        name: String,
        change: SettingsChange,
    },
    /// Turns the account's minimum throughput billing commitment on (since
    /// `at_ms`) or off. About no stream: its name is empty.
    SetBillingCommitment {
        enabled: bool,
        at_ms: i64,
    },
    /// Closes open shards and adds shards (split, merge, uniform scaling). New
    /// shards get the indexes after the stream's last one, in order. Afterwards the
    /// open shards still cover the hash-key space exactly once.
    Reshard {
        name: String,
        closes: Vec<ClosedShard>,
        opens: Vec<NewShard>,
        at_ms: i64,
    },
}

impl CatalogEvent {
    /// The stream the event is about.
    pub fn name(&self) -> &str {
        match self {
            CatalogEvent::CreateStream { name, .. }
            | CatalogEvent::DeleteStream { name }
            | CatalogEvent::SetRetention { name, .. }
            | CatalogEvent::AddTags { name, .. }
            | CatalogEvent::RemoveTags { name, .. }
            | CatalogEvent::ChangeSettings { name, .. }
            | CatalogEvent::Reshard { name, .. } => name,
            CatalogEvent::SetBillingCommitment { .. } => "",
        }
    }
}

/// The catalog's content. Changed only through [`StateMachine::apply`].
///
/// Serialized (in the snapshot) as its fields in this order, then the log's
/// `last_seq`: `{"streams":..,"account":..,"next_stream_id":..,"last_seq":..}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    streams: BTreeMap<String, StreamMeta>,
    /// Absent in catalogs written before account settings existed.
    #[serde(default)]
    account: AccountSettings,
    /// The id the next created stream gets; only ever grows.
    next_stream_id: u64,
}

impl Default for CatalogState {
    fn default() -> CatalogState {
        CatalogState {
            streams: BTreeMap::new(),
            account: AccountSettings::default(),
            next_stream_id: 1,
        }
    }
}

impl CatalogState {
    pub fn get(&self, name: &str) -> Option<&StreamMeta> {
        self.streams.get(name)
    }

    /// All streams in name order.
    pub fn list(&self) -> impl Iterator<Item = &StreamMeta> {
        self.streams.values()
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub fn account(&self) -> &AccountSettings {
        &self.account
    }

    pub fn next_stream_id(&self) -> u64 {
        self.next_stream_id
    }

    /// Whether `event` may be applied: parameters first (as AWS validates them
    /// before looking anything up), then existence. No side effects. Messages
    /// name `account` as AWS's do.
    pub fn check(&self, event: &CatalogEvent, limits: &Limits, account: &str) -> Result<(), Error> {
        match event {
            CatalogEvent::CreateStream {
                name,
                shard_count,
                retention_hours,
                ..
            } => {
                check_name(name, limits)?;
                check_shard_count(*shard_count, limits)?;
                check_retention(*retention_hours, limits)?;
            }
            CatalogEvent::DeleteStream { name } => check_name(name, limits)?,
            CatalogEvent::SetRetention {
                name,
                retention_hours,
            } => {
                check_name(name, limits)?;
                check_retention(*retention_hours, limits)?;
            }
            CatalogEvent::AddTags { name, tags } => {
                check_name(name, limits)?;
                for (k, v) in tags {
                    check_tag(k, v, limits)?;
                }
                if let Some(meta) = self.streams.get(name) {
                    let total = meta
                        .tags
                        .keys()
                        .chain(tags.keys().filter(|k| !meta.tags.contains_key(*k)))
                        .count();
                    if total > limits.tags_per_stream_max as usize {
                        return Err(Error::new(
                            ErrorCode::LimitExceeded,
                            format!(
                                "Failed to add tags to stream {name} under account {account} because a given stream cannot have more than {} tags.",
                                limits.tags_per_stream_max
                            ),
                        ));
                    }
                }
            }
            CatalogEvent::RemoveTags { name, .. } | CatalogEvent::ChangeSettings { name, .. } => {
                check_name(name, limits)?
            }
            CatalogEvent::SetBillingCommitment { .. } => {}
            CatalogEvent::Reshard {
                name,
                closes,
                opens,
                ..
            } => {
                check_name(name, limits)?;
                if let Some(meta) = self.streams.get(name) {
                    let open = meta.shards.iter().filter(|s| s.is_open()).count();
                    let after = (open + opens.iter().filter(|n| !n.closed).count())
                        .saturating_sub(closes.len());
                    if after > limits.stream_shard_count_max as usize {
                        return Err(Error::new(
                            ErrorCode::LimitExceeded,
                            format!(
                                "This request would exceed the shard limit for the stream. Requested shard count: {after}. Limit: {}.",
                                limits.stream_shard_count_max
                            ),
                        ));
                    }
                }
            }
        }
        let size = serde_json::to_vec(event).map_or(usize::MAX, |v| v.len());
        if size > EVENT_SIZE_MAX {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the change is too large to record ({size} bytes of catalog event, at most {EVENT_SIZE_MAX})"
                ),
            ));
        }
        self.check_applicable(event, account)
    }

    /// The part of [`CatalogState::check`] that depends on the content alone: the
    /// metadata log's [`StateMachine::check`]. Replay uses only this: limits may
    /// have changed since an event was logged, but history must still replay.
    fn check_applicable(&self, event: &CatalogEvent, account: &str) -> Result<(), Error> {
        let name = event.name();
        let exists = self.streams.contains_key(name);
        match event {
            CatalogEvent::CreateStream { .. } if exists => Err(Error::in_use(format!(
                "Stream {name} under account {account} already exists."
            ))),
            CatalogEvent::ChangeSettings { change, .. } if exists => {
                let consumers = &self.streams[name].settings.consumers;
                match change {
                    SettingsChange::RegisterConsumer { consumer, .. } => {
                        if consumers.contains_key(consumer) {
                            return Err(Error::in_use(format!(
                                "Consumer {consumer} under stream {name} already exists."
                            )));
                        }
                        if consumers.len() >= CONSUMERS_PER_STREAM_MAX {
                            return Err(Error::new(
                                ErrorCode::LimitExceeded,
                                format!(
                                    "Stream {name} already has {CONSUMERS_PER_STREAM_MAX} registered consumers."
                                ),
                            ));
                        }
                        Ok(())
                    }
                    SettingsChange::DeregisterConsumer { consumer }
                        if !consumers.contains_key(consumer) =>
                    {
                        Err(Error::not_found(format!(
                            "Consumer {consumer} under stream {name} not found."
                        )))
                    }
                    _ => Ok(()),
                }
            }
            CatalogEvent::Reshard { closes, opens, .. } if exists => {
                check_reshard(&self.streams[name], closes, opens)
                    .map_err(|why| Error::invalid(format!("Cannot reshard stream {name}: {why}")))
            }
            CatalogEvent::DeleteStream { .. }
            | CatalogEvent::Reshard { .. }
            | CatalogEvent::SetRetention { .. }
            | CatalogEvent::AddTags { .. }
            | CatalogEvent::RemoveTags { .. }
            | CatalogEvent::ChangeSettings { .. }
                if !exists =>
            {
                Err(Error::not_found(format!(
                    "Stream {name} under account {account} not found."
                )))
            }
            _ => Ok(()),
        }
    }

    /// Applies an event that passed [`CatalogState::check`] (or at least its
    /// content part). Panics on an unchecked event: that is our bug.
    fn apply_event(&mut self, event: &CatalogEvent) {
        if let Err(e) = self.check_applicable(event, DEFAULT_ACCOUNT_ID) {
            panic!("applying an unchecked catalog event {event:?}: {e}");
        }
        match event {
            CatalogEvent::CreateStream {
                name,
                shard_count,
                retention_hours,
                created_ms,
            } => {
                let shards: Vec<ShardMeta> = routing::even_split(*shard_count)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (start, end))| ShardMeta::initial(i as u32, start, end))
                    .collect();
                assert_eq!(shards.len(), *shard_count as usize);
                let meta = StreamMeta {
                    id: self.next_stream_id,
                    name: name.clone(),
                    shards,
                    retention_hours: *retention_hours,
                    created_ms: *created_ms,
                    tags: BTreeMap::new(),
                    settings: StreamSettings::default(),
                };
                self.next_stream_id += 1;
                self.streams.insert(name.clone(), meta);
            }
            CatalogEvent::DeleteStream { name } => {
                self.streams.remove(name);
            }
            CatalogEvent::SetRetention {
                name,
                retention_hours,
            } => {
                self.streams.get_mut(name).expect("checked").retention_hours = *retention_hours;
            }
            CatalogEvent::AddTags { name, tags } => {
                let meta = self.streams.get_mut(name).expect("checked");
                meta.tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            CatalogEvent::RemoveTags { name, keys } => {
                let meta = self.streams.get_mut(name).expect("checked");
                for k in keys {
                    meta.tags.remove(k);
                }
            }
            CatalogEvent::ChangeSettings { name, change } => {
                self.streams
                    .get_mut(name)
                    .expect("checked")
                    .settings
                    .apply(change);
            }
            CatalogEvent::Reshard {
                name,
                closes,
                opens,
                at_ms,
            } => {
                let meta = self.streams.get_mut(name).expect("checked");
                for c in closes {
                    meta.shards[c.index as usize].closed = Some(ShardEnd {
                        end_offset: c.end_offset,
                        closed_ms: *at_ms,
                    });
                }
                for n in opens {
                    let index = meta.shards.len() as u32;
                    meta.shards.push(ShardMeta {
                        index,
                        hash_key_start: n.hash_key_start,
                        hash_key_end: n.hash_key_end,
                        parent: Some(n.parent),
                        adjacent_parent: n.adjacent_parent,
                        opened_ms: Some(*at_ms),
                        closed: n.closed.then_some(ShardEnd {
                            end_offset: 0,
                            closed_ms: *at_ms,
                        }),
                    });
                }
            }
            CatalogEvent::SetBillingCommitment { enabled, at_ms } => {
                self.account.billing_commitment_since_ms =
                    match (enabled, self.account.billing_commitment_since_ms) {
                        (true, Some(since)) => Some(since),
                        (true, None) => Some(*at_ms),
                        (false, _) => None,
                    };
            }
        }
    }

    /// Re-verifies, after reading a snapshot, what `apply` guarantees when
    /// writing it (the read side of a pair assertion across the disk).
    fn verify_state(&self) -> Result<(), String> {
        if self.next_stream_id == 0 {
            return Err("next_stream_id is 0".to_string());
        }
        let mut ids = std::collections::BTreeSet::new();
        for (name, meta) in &self.streams {
            if *name != meta.name {
                return Err(format!("stream keyed {name:?} is named {:?}", meta.name));
            }
            if meta.id == 0 || meta.id >= self.next_stream_id || !ids.insert(meta.id) {
                return Err(format!(
                    "stream {name} has id {} (next is {})",
                    meta.id, self.next_stream_id
                ));
            }
            if meta.shards.is_empty() {
                return Err(format!("stream {name} has no shards"));
            }
            for (i, shard) in meta.shards.iter().enumerate() {
                let parent_ok = |p: Option<u32>| p.is_none_or(|p| (p as usize) < i);
                if shard.index as usize != i
                    || shard.hash_key_start > shard.hash_key_end
                    || !parent_ok(shard.parent)
                    || !parent_ok(shard.adjacent_parent)
                {
                    return Err(format!(
                        "stream {name} has a bad shard at position {i}: {shard:?}"
                    ));
                }
            }
            if !open_shards_tile(&meta.shards) {
                return Err(format!(
                    "the open shards of stream {name} do not cover the hash-key space once"
                ));
            }
        }
        Ok(())
    }
}

/// The catalog as the metadata log's state machine. `check` is the content part
/// of [`CatalogState::check`] only: [`Catalog::apply`] runs the whole of it first.
impl StateMachine for CatalogState {
    type Event = CatalogEvent;

    /// Replay's check (its messages reach no client: [`Catalog::apply`] checks
    /// first, naming the configured account).
    fn check(&self, event: &CatalogEvent) -> Result<(), Error> {
        self.check_applicable(event, DEFAULT_ACCOUNT_ID)
    }

    fn apply(&mut self, event: CatalogEvent) {
        self.apply_event(&event)
    }

    fn verify(&self) -> Result<(), String> {
        self.verify_state()
    }
}

/// Whether the open shards' ranges, sorted, cover `0..=HASH_KEY_MAX` exactly once.
pub fn open_shards_tile(shards: &[ShardMeta]) -> bool {
    let mut open: Vec<(u128, u128)> = shards
        .iter()
        .filter(|s| s.is_open())
        .map(|s| (s.hash_key_start, s.hash_key_end))
        .collect();
    open.sort_unstable();
    let mut next = Some(0u128);
    for (start, end) in open {
        if Some(start) != next || start > end {
            return false;
        }
        next = end.checked_add(1);
    }
    next.is_none()
}

/// Whether a reshard of `meta` is consistent: it closes distinct open shards,
/// every new shard's parents are shards closed by the end of the event and come
/// before it, every shard it closes is a parent of a new one, and the open shards
/// afterwards cover the hash-key space exactly once. Says what is wrong if not.
fn check_reshard(
    meta: &StreamMeta,
    closes: &[ClosedShard],
    opens: &[NewShard],
) -> Result<(), String> {
    let count = meta.shards.len();
    let mut after = meta.shards.clone();
    for c in closes {
        match after.get_mut(c.index as usize) {
            Some(s) if s.is_open() => {
                s.closed = Some(ShardEnd {
                    end_offset: c.end_offset,
                    closed_ms: 0,
                })
            }
            Some(_) => return Err(format!("shard {} is not open", routing::shard_id(c.index))),
            None => return Err(format!("no shard {}", routing::shard_id(c.index))),
        }
    }
    for (k, n) in opens.iter().enumerate() {
        let index = count + k;
        for p in std::iter::once(n.parent).chain(n.adjacent_parent) {
            if p as usize >= index || after[p as usize].is_open() {
                return Err(format!(
                    "new shard {} has parent {}, which is not a shard this event closes",
                    routing::shard_id(index as u32),
                    routing::shard_id(p)
                ));
            }
        }
        if n.hash_key_start > n.hash_key_end {
            return Err(format!(
                "new shard {} has an empty range",
                routing::shard_id(index as u32)
            ));
        }
        after.push(ShardMeta {
            index: index as u32,
            hash_key_start: n.hash_key_start,
            hash_key_end: n.hash_key_end,
            parent: Some(n.parent),
            adjacent_parent: n.adjacent_parent,
            opened_ms: Some(0),
            closed: n.closed.then_some(ShardEnd {
                end_offset: 0,
                closed_ms: 0,
            }),
        });
    }
    for c in closes {
        let is_parent = opens
            .iter()
            .any(|n| n.parent == c.index || n.adjacent_parent == Some(c.index));
        if !is_parent {
            return Err(format!(
                "closed shard {} has no child",
                routing::shard_id(c.index)
            ));
        }
    }
    if !open_shards_tile(&after) {
        return Err("the open shards would not cover the hash-key space once".to_string());
    }
    Ok(())
}

fn validation_error(value: &str, field: &str, constraint: &str) -> Error {
    Error::invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// Separates an internal stream's owner from its name (`firehose:orders`).
pub const INTERNAL_STREAM_SEPARATOR: char = ':';

/// Whether `name` is an internal stream: one a service owns (Firehose's Direct
/// PUT streams), named `<owner>:<name>` with a lowercase owner. AWS's stream
/// name pattern has no `:`, so no Kinesis client can name one; listings leave
/// them out.
pub fn is_internal_stream(name: &str) -> bool {
    name.contains(INTERNAL_STREAM_SEPARATOR)
}

fn check_name(name: &str, limits: &Limits) -> Result<(), Error> {
    // An internal stream: a lowercase owner, then a name as AWS allows it.
    if let Some((owner, rest)) = name.split_once(INTERNAL_STREAM_SEPARATOR)
        && !owner.is_empty()
        && owner.len() <= 16
        && owner.bytes().all(|b| b.is_ascii_lowercase())
        && !rest.is_empty()
        && !is_internal_stream(rest)
        && name.len() <= limits.stream_name_chars_max as usize
    {
        return check_name(rest, limits);
    }
    if name.is_empty() {
        return Err(validation_error(
            name,
            "streamName",
            "Member must have length greater than or equal to 1",
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !name.chars().all(allowed) {
        return Err(validation_error(
            name,
            "streamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    // All allowed characters are ASCII: bytes and characters agree from here on.
    if name.len() > limits.stream_name_chars_max as usize {
        let constraint = format!(
            "Member must have length less than or equal to {}",
            limits.stream_name_chars_max
        );
        return Err(validation_error(name, "streamName", &constraint));
    }
    Ok(())
}

fn check_shard_count(shard_count: u32, limits: &Limits) -> Result<(), Error> {
    if shard_count == 0 {
        return Err(validation_error(
            "0",
            "shardCount",
            "Member must have value greater than or equal to 1",
        ));
    }
    if shard_count > limits.stream_shard_count_max {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "This request would exceed the shard limit for the stream. Requested shard count: \
                 {shard_count}. Limit: {}.",
                limits.stream_shard_count_max
            ),
        ));
    }
    Ok(())
}

fn check_tag(key: &str, value: &str, limits: &Limits) -> Result<(), Error> {
    let key_chars = key.chars().count();
    if key_chars == 0 || key_chars > limits.tag_key_chars_max as usize {
        return Err(Error::invalid(format!(
            "Tag key must be 1 to {} characters, got {key_chars}",
            limits.tag_key_chars_max
        )));
    }
    let value_chars = value.chars().count();
    if value_chars > limits.tag_value_chars_max as usize {
        return Err(Error::invalid(format!(
            "Tag value of key {key} must be at most {} characters, got {value_chars}",
            limits.tag_value_chars_max
        )));
    }
    Ok(())
}

fn check_retention(hours: u32, limits: &Limits) -> Result<(), Error> {
    if hours < limits.retention_hours_min {
        return Err(Error::invalid(format!(
            "Minimum allowed retention period is {} hours. Requested retention \
             period ({hours} hours) is too short.",
            limits.retention_hours_min
        )));
    }
    if hours > limits.retention_hours_max {
        return Err(Error::invalid(format!(
            "Maximum allowed retention period is {} hours. Requested retention \
             period ({hours} hours) is too long.",
            limits.retention_hours_max
        )));
    }
    Ok(())
}

/// The durable catalog: [`CatalogState`] in its metadata log, plus the checks
/// against `Limits` a client's change must pass first. Lives on the core that
/// owns the catalog; one `apply` at a time (`&mut self`).
pub struct Catalog<F: Storage> {
    log: MetaLog<CatalogState, F>,
    /// The account id refusals name ([`DEFAULT_ACCOUNT_ID`] unless set).
    account: String,
}

impl<F: Storage> Catalog<F> {
    /// Opens (or creates) the catalog in `dir`: loads the snapshot, then replays
    /// the log. `snapshot_every` (at least 1) is how many events go to the log
    /// between snapshots.
    pub async fn open(
        storage: F,
        dir: &Path,
        snapshot_every: u32,
    ) -> Result<Catalog<F>, CatalogError> {
        let log = MetaLog::open(storage, dir, CATALOG_LOG_NAME, snapshot_every).await?;
        Ok(Catalog {
            log,
            account: DEFAULT_ACCOUNT_ID.to_string(),
        })
    }

    /// The account id refusals name (AWS's messages say "under account ...").
    pub fn with_account(self, account: impl Into<String>) -> Catalog<F> {
        Catalog {
            account: account.into(),
            ..self
        }
    }

    pub fn state(&self) -> &CatalogState {
        self.log.state()
    }

    /// The metadata log under the catalog (sequence numbers, files).
    pub fn log(&self) -> &MetaLog<CatalogState, F> {
        &self.log
    }

    /// Why the catalog refuses changes, if an I/O failure poisoned it.
    pub fn poisoned(&self) -> Option<&str> {
        self.log.poisoned()
    }

    /// Checks `event` against `limits` and the state, makes it durable, then
    /// applies it. Returns the stream as it is after the event (`None` after a
    /// delete). Errors as [`MetaLog::apply`]; a poisoned catalog answers
    /// `Internal` before looking at the event.
    pub async fn apply(
        &mut self,
        event: CatalogEvent,
        limits: &Limits,
    ) -> Result<Option<&StreamMeta>, Error> {
        self.log.available()?;
        self.log.state().check(&event, limits, &self.account)?;
        let name = event.name().to_string();
        self.log.apply(event).await?;
        Ok(self.log.state().get(&name))
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
        text.parse()
            .map_err(|e| D::Error::custom(format!("bad u128 {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use futures_lite::future::block_on;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const DIR: &str = "/data/catalog";

    fn dir() -> &'static Path {
        Path::new(DIR)
    }

    fn create(name: &str, shard_count: u32, retention_hours: u32, created_ms: i64) -> CatalogEvent {
        CatalogEvent::CreateStream {
            name: name.to_string(),
            shard_count,
            retention_hours,
            created_ms,
        }
    }

    fn delete(name: &str) -> CatalogEvent {
        CatalogEvent::DeleteStream {
            name: name.to_string(),
        }
    }

    fn set_retention(name: &str, retention_hours: u32) -> CatalogEvent {
        CatalogEvent::SetRetention {
            name: name.to_string(),
            retention_hours,
        }
    }

    async fn open(storage: &SimStorage, snapshot_every: u32) -> Catalog<SimStorage> {
        Catalog::open(storage.clone(), dir(), snapshot_every)
            .await
            .expect("open catalog")
    }

    /// Seeds for randomized tests: `RIFFLE_SEED` replays one, else a fixed set.
    /// The set is spread over all 64 bits: `SimStorage`'s xorshift gives the
    /// same first coin flip (old block survives) for every small seed, which
    /// would hide the crashes where the unsynced frame does reach the disk.
    fn seeds(count: u64) -> Vec<u64> {
        match std::env::var("RIFFLE_SEED") {
            Ok(seed) => vec![seed.parse().expect("RIFFLE_SEED is a u64")],
            Err(_) => (1..=count).map(splitmix64).collect(),
        }
    }

    fn splitmix64(i: u64) -> u64 {
        let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    type ModelStream = (u64, u32, u32, i64, BTreeMap<String, String>, ModelSettings);

    /// The model's settings: (encryption key, metrics, policy, on demand, consumers).
    type ModelSettings = (
        Option<String>,
        std::collections::BTreeSet<String>,
        Option<String>,
        bool,
        BTreeMap<String, i64>,
        usize,
    );

    /// An independent model of the catalog's rules, to compare the real one with.
    #[derive(Clone, Debug)]
    struct Model {
        /// name -> (id, shard count, retention hours, created ms, tags)
        streams: BTreeMap<String, ModelStream>,
        next_id: u64,
    }

    impl Model {
        fn new() -> Model {
            Model {
                streams: BTreeMap::new(),
                next_id: 1,
            }
        }

        fn apply(&mut self, event: &CatalogEvent, limits: &Limits) -> Result<(), ErrorCode> {
            let name_ok = |n: &str| {
                !n.is_empty()
                    && n.len() <= limits.stream_name_chars_max as usize
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            };
            let retention_ok = |h: u32| (1..=8760).contains(&h);
            if let CatalogEvent::SetBillingCommitment { .. } = event {
                return Ok(()); // account-wide; the model tracks streams only
            }
            if !name_ok(event.name()) {
                return Err(ErrorCode::InvalidArgument);
            }
            match event {
                CatalogEvent::CreateStream {
                    name,
                    shard_count,
                    retention_hours,
                    created_ms,
                } => {
                    if *shard_count == 0 {
                        return Err(ErrorCode::InvalidArgument);
                    }
                    if *shard_count > limits.stream_shard_count_max {
                        return Err(ErrorCode::LimitExceeded);
                    }
                    if !retention_ok(*retention_hours) {
                        return Err(ErrorCode::InvalidArgument);
                    }
                    if self.streams.contains_key(name) {
                        return Err(ErrorCode::ResourceInUse);
                    }
                    let stream = (
                        self.next_id,
                        *shard_count,
                        *retention_hours,
                        *created_ms,
                        BTreeMap::new(),
                        (None, Default::default(), None, false, BTreeMap::new(), 0),
                    );
                    self.streams.insert(name.clone(), stream);
                    self.next_id += 1;
                }
                CatalogEvent::DeleteStream { name } => {
                    self.streams
                        .remove(name)
                        .ok_or(ErrorCode::ResourceNotFound)?;
                }
                CatalogEvent::SetRetention {
                    name,
                    retention_hours,
                } => {
                    if !retention_ok(*retention_hours) {
                        return Err(ErrorCode::InvalidArgument);
                    }
                    self.streams
                        .get_mut(name)
                        .ok_or(ErrorCode::ResourceNotFound)?
                        .2 = *retention_hours;
                }
                CatalogEvent::AddTags { name, tags } => {
                    if tags.keys().any(|k| k.is_empty()) {
                        return Err(ErrorCode::InvalidArgument);
                    }
                    let stream = self
                        .streams
                        .get_mut(name)
                        .ok_or(ErrorCode::ResourceNotFound)?;
                    let mut after = stream.4.clone();
                    after.extend(tags.clone());
                    if after.len() > limits.tags_per_stream_max as usize {
                        return Err(ErrorCode::LimitExceeded);
                    }
                    stream.4 = after;
                }
                CatalogEvent::RemoveTags { name, keys } => {
                    let stream = self
                        .streams
                        .get_mut(name)
                        .ok_or(ErrorCode::ResourceNotFound)?;
                    for k in keys {
                        stream.4.remove(k);
                    }
                }
                CatalogEvent::ChangeSettings { name, change } => {
                    let s = &mut self
                        .streams
                        .get_mut(name)
                        .ok_or(ErrorCode::ResourceNotFound)?
                        .5;
                    match change {
                        SettingsChange::Encryption { key, data_key } => {
                            s.0 = key.clone();
                            s.5 += data_key.is_some() as usize;
                        }
                        SettingsChange::EnableMetrics { metrics } => {
                            s.1.extend(metrics.iter().cloned())
                        }
                        SettingsChange::DisableMetrics { metrics } => {
                            s.1.retain(|m| !metrics.contains(m))
                        }
                        SettingsChange::ResourcePolicy { policy } => s.2 = policy.clone(),
                        SettingsChange::Mode { on_demand } => s.3 = *on_demand,
                        SettingsChange::RegisterConsumer {
                            consumer,
                            created_ms,
                        } => {
                            if s.4.contains_key(consumer) {
                                return Err(ErrorCode::ResourceInUse);
                            }
                            if s.4.len() >= CONSUMERS_PER_STREAM_MAX {
                                return Err(ErrorCode::LimitExceeded);
                            }
                            s.4.insert(consumer.clone(), *created_ms);
                        }
                        SettingsChange::DeregisterConsumer { consumer } => {
                            s.4.remove(consumer).ok_or(ErrorCode::ResourceNotFound)?;
                        }
                        // Not generated by `random_event`.
                        SettingsChange::MaxRecordSize { .. }
                        | SettingsChange::WarmThroughput { .. } => {}
                    }
                }
                CatalogEvent::SetBillingCommitment { .. } => unreachable!("returned above"),
                CatalogEvent::Reshard { .. } => unreachable!("not generated"),
            }
            Ok(())
        }

        fn matches(&self, state: &CatalogState) -> bool {
            let got: BTreeMap<String, ModelStream> = state
                .list()
                .map(|s| {
                    (
                        s.name.clone(),
                        (
                            s.id,
                            s.shards.len() as u32,
                            s.retention_hours,
                            s.created_ms,
                            s.tags.clone(),
                            (
                                s.settings.encryption_key.clone(),
                                s.settings.shard_level_metrics.clone(),
                                s.settings.resource_policy.clone(),
                                s.settings.on_demand,
                                s.settings.consumers.clone(),
                                s.settings.data_keys.len(),
                            ),
                        ),
                    )
                })
                .collect();
            let shards_ok = state.list().all(|s| {
                let expected: Vec<ShardMeta> = routing::even_split(s.shards.len() as u32)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (start, end))| ShardMeta::initial(i as u32, start, end))
                    .collect();
                s.shards == expected
            });
            got == self.streams && shards_ok && state.next_stream_id() == self.next_id
        }
    }

    #[test]
    fn create_delete_list_and_retention_survive_reopen() {
        for snapshot_every in [1, 2, 3, 100] {
            block_on(async {
                let storage = SimStorage::new(7);
                let limits = Limits::default();
                let mut catalog = open(&storage, snapshot_every).await;
                assert!(catalog.state().is_empty());

                let orders = catalog
                    .apply(create("orders", 3, 24, 1_000), &limits)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    (orders.id, orders.name.as_str(), orders.retention_hours),
                    (1, "orders", 24)
                );
                assert_eq!(orders.shards.len(), 3);
                assert_eq!(orders.shards[2].shard_id(), routing::shard_id(2));
                let split = routing::even_split(3);
                for (shard, (start, end)) in orders.shards.iter().zip(split) {
                    assert_eq!((shard.hash_key_start, shard.hash_key_end), (start, end));
                }
                catalog
                    .apply(create("clicks", 1, 48, 2_000), &limits)
                    .await
                    .unwrap();
                let orders = catalog
                    .apply(set_retention("orders", 168), &limits)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(orders.retention_hours, 168);
                assert_eq!(
                    catalog.apply(delete("clicks"), &limits).await.unwrap(),
                    None
                );
                catalog
                    .apply(create("audit", 2, 8760, 3_000), &limits)
                    .await
                    .unwrap();
                let before = catalog.state().clone();
                drop(catalog);

                let catalog = open(&storage, snapshot_every).await;
                assert_eq!(catalog.state(), &before, "snapshot_every {snapshot_every}");
                let names: Vec<&str> = catalog.state().list().map(|s| s.name.as_str()).collect();
                assert_eq!(names, ["audit", "orders"]);
                assert_eq!(catalog.state().len(), 2);
                assert_eq!(catalog.state().get("orders").unwrap().retention_hours, 168);
                assert_eq!(catalog.state().get("audit").unwrap().id, 3);
                assert!(catalog.state().get("clicks").is_none());
                assert_eq!(catalog.log().last_seq(), 5);
            });
        }
    }

    #[test]
    fn account_settings_survive_a_reopen() {
        for snapshot_every in [1, 100] {
            block_on(async {
                let storage = SimStorage::new(5);
                let limits = Limits::default();
                let mut catalog = open(&storage, snapshot_every).await;
                assert_eq!(catalog.state().account().billing_commitment_since_ms, None);
                let on = CatalogEvent::SetBillingCommitment {
                    enabled: true,
                    at_ms: 1_000,
                };
                catalog.apply(on, &limits).await.unwrap();
                // Enabling again keeps the original start.
                let again = CatalogEvent::SetBillingCommitment {
                    enabled: true,
                    at_ms: 2_000,
                };
                catalog.apply(again, &limits).await.unwrap();
                drop(catalog);
                let mut catalog = open(&storage, snapshot_every).await;
                assert_eq!(
                    catalog.state().account().billing_commitment_since_ms,
                    Some(1_000)
                );
                let off = CatalogEvent::SetBillingCommitment {
                    enabled: false,
                    at_ms: 3_000,
                };
                catalog.apply(off, &limits).await.unwrap();
                drop(catalog);
                let catalog = open(&storage, snapshot_every).await;
                assert_eq!(catalog.state().account().billing_commitment_since_ms, None);
            });
        }
    }

    #[test]
    fn stream_ids_are_monotonic_and_never_reused() {
        for snapshot_every in [1, 2, 100] {
            block_on(async {
                let storage = SimStorage::new(3);
                let limits = Limits::default();
                let mut catalog = open(&storage, snapshot_every).await;
                let mut ids = Vec::new();
                for name in ["a", "b"] {
                    ids.push(
                        catalog
                            .apply(create(name, 1, 24, 0), &limits)
                            .await
                            .unwrap()
                            .unwrap()
                            .id,
                    );
                }
                catalog.apply(delete("a"), &limits).await.unwrap();
                ids.push(
                    catalog
                        .apply(create("a", 1, 24, 0), &limits)
                        .await
                        .unwrap()
                        .unwrap()
                        .id,
                );
                // Empty the catalog, so only next_stream_id remembers the ids.
                catalog.apply(delete("a"), &limits).await.unwrap();
                catalog.apply(delete("b"), &limits).await.unwrap();
                drop(catalog);
                let mut catalog = open(&storage, snapshot_every).await;
                assert!(catalog.state().is_empty());
                ids.push(
                    catalog
                        .apply(create("b", 1, 24, 0), &limits)
                        .await
                        .unwrap()
                        .unwrap()
                        .id,
                );
                assert_eq!(ids, [1, 2, 3, 4], "snapshot_every {snapshot_every}");
            });
        }
    }

    fn random_event(rng: &mut SmallRng, created_ms: i64) -> CatalogEvent {
        const NAMES: [&str; 6] = ["a", "b.b", "c_c-1", "D9", "", "bad name"];
        let name = if rng.random_bool(0.9) {
            NAMES[rng.random_range(0..4)]
        } else {
            NAMES[rng.random_range(4..6)]
        };
        let retention = [0, 1, 24, 25, 8760, 8761][rng.random_range(0..6)];
        // Tags from a small key space, so adds replace, removes hit, and the
        // 50-tag limit (lowered by the caller's limits) is reached.
        let key =
            |rng: &mut SmallRng| ["k0", "k1", "k2", "k3", ""][rng.random_range(0..5)].to_owned();
        let metric = |rng: &mut SmallRng| {
            ["IncomingBytes", "OutgoingRecords"][rng.random_range(0..2)].to_owned()
        };
        let consumer = |rng: &mut SmallRng| ["c1", "c2"][rng.random_range(0..2)].to_owned();
        let setting = |rng: &mut SmallRng| match rng.random_range(0..7) {
            5 => SettingsChange::RegisterConsumer {
                consumer: consumer(rng),
                created_ms: 7,
            },
            6 => SettingsChange::DeregisterConsumer {
                consumer: consumer(rng),
            },
            0 => {
                let key = rng.random_bool(0.5).then(|| "alias/k".to_owned());
                SettingsChange::Encryption {
                    data_key: key.as_ref().filter(|_| rng.random_bool(0.5)).map(|_| {
                        StreamDataKey {
                            kms_key: "arn:aws:kms:us-east-1:1:key/k".to_owned(),
                            wrapped: "d3JhcHBlZA==".to_owned(),
                        }
                    }),
                    key,
                }
            }
            1 => SettingsChange::EnableMetrics {
                metrics: vec![metric(rng)],
            },
            2 => SettingsChange::DisableMetrics {
                metrics: vec![metric(rng)],
            },
            3 => SettingsChange::ResourcePolicy {
                policy: rng.random_bool(0.5).then(|| "{}".to_owned()),
            },
            _ => SettingsChange::Mode {
                on_demand: rng.random_bool(0.5),
            },
        };
        if rng.random_range(0..14) >= 12 {
            return CatalogEvent::ChangeSettings {
                name: name.into(),
                change: setting(rng),
            };
        }
        match rng.random_range(0..12) {
            0..5 => create(name, rng.random_range(0..=6), retention, created_ms),
            5..8 => delete(name),
            8..10 => set_retention(name, retention),
            10 => CatalogEvent::AddTags {
                name: name.into(),
                tags: (0..rng.random_range(1..=3))
                    .map(|i| (key(rng), format!("v{i}")))
                    .collect(),
            },
            _ => CatalogEvent::RemoveTags {
                name: name.into(),
                keys: (0..rng.random_range(0..=2)).map(|_| key(rng)).collect(),
            },
        }
    }

    #[test]
    fn snapshot_and_log_replay_match_a_model_after_every_step() {
        let limits = Limits {
            stream_shard_count_max: 5,
            tags_per_stream_max: 3,
            ..Limits::default()
        };
        for seed in seeds(16) {
            block_on(async {
                let mut rng = SmallRng::seed_from_u64(seed);
                let snapshot_every = rng.random_range(1..=6);
                let storage = SimStorage::new(seed);
                let mut model = Model::new();
                let mut catalog = open(&storage, snapshot_every).await;
                for step in 0..80 {
                    let event = random_event(&mut rng, step);
                    let expected = model.apply(&event, &limits);
                    let got = catalog
                        .apply(event.clone(), &limits)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.code);
                    assert_eq!(got, expected, "seed {seed} step {step}: {event:?}");
                    assert!(
                        model.matches(catalog.state()),
                        "seed {seed} step {step}: {:?}",
                        catalog.state()
                    );
                    let before = catalog.state().clone();
                    drop(catalog);
                    catalog = open(&storage, snapshot_every).await;
                    assert_eq!(
                        catalog.state(),
                        &before,
                        "seed {seed} step {step}: reopen differs"
                    );
                }
            });
        }
    }

    /// Random splits, merges and uniform scalings (planned from the current state,
    /// as the engine does), plus refused ones: after every step the open shards
    /// cover the key space once, lineage points back, and a reopen from the
    /// snapshot and log gives the same state.
    #[test]
    fn reshards_keep_the_key_space_and_replay_after_every_step() {
        use crate::reshard;
        let limits = Limits {
            stream_shard_count_max: 12,
            ..Limits::default()
        };
        for seed in seeds(8) {
            block_on(async {
                let mut rng = SmallRng::seed_from_u64(seed);
                let snapshot_every = rng.random_range(1..=5);
                let storage = SimStorage::new(seed);
                let mut catalog = open(&storage, snapshot_every).await;
                catalog
                    .apply(create("r", rng.random_range(1..=4), 24, 0), &limits)
                    .await
                    .unwrap();
                for step in 0..40 {
                    let meta = catalog.state().get("r").unwrap().clone();
                    let open_shards: Vec<&ShardMeta> =
                        meta.shards.iter().filter(|s| s.is_open()).collect();
                    let pick = |rng: &mut SmallRng| {
                        open_shards[rng.random_range(0..open_shards.len())].index
                    };
                    let plan = match rng.random_range(0..3) {
                        0 => {
                            let s = &meta.shards[pick(&mut rng) as usize];
                            let span = s.hash_key_end - s.hash_key_start;
                            let at = s.hash_key_start + span / rng.random_range(1..=8);
                            reshard::split(&meta, s.index, at, DEFAULT_ACCOUNT_ID)
                        }
                        1 => reshard::merge(
                            &meta,
                            pick(&mut rng),
                            pick(&mut rng),
                            DEFAULT_ACCOUNT_ID,
                        ),
                        _ => reshard::uniform(&meta, rng.random_range(1..=12)),
                    };
                    let Ok(plan) = plan else { continue };
                    let event = plan.event("r", step, |_| rng.random_range(0..1000));
                    // Refused only for going over the shard limit.
                    if let Err(e) = catalog.apply(event, &limits).await {
                        assert_eq!(
                            e.code,
                            ErrorCode::LimitExceeded,
                            "seed {seed} step {step}: {e}"
                        );
                    }
                    let state = catalog.state();
                    assert!(
                        state.verify_state().is_ok(),
                        "seed {seed} step {step}: {:?}",
                        state.verify_state()
                    );
                    let before = state.clone();
                    drop(catalog);
                    catalog = open(&storage, snapshot_every).await;
                    assert_eq!(
                        catalog.state(),
                        &before,
                        "seed {seed} step {step}: reopen differs"
                    );
                }
                let shards = &catalog.state().get("r").unwrap().shards;
                assert!(shards.len() > 4, "seed {seed}: some reshards happened");
            });
        }
    }

    fn check(event: CatalogEvent, expected: Result<(), ErrorCode>) {
        let limits = Limits::default();
        let mut state = CatalogState::default();
        state.apply(create("exists", 1, 24, 0));
        let got = state
            .check(&event, &limits, DEFAULT_ACCOUNT_ID)
            .map_err(|e| e.code);
        assert_eq!(got, expected, "{event:?}");
    }

    #[test]
    fn validation_errors() {
        use ErrorCode::*;
        let max_name = "x".repeat(128);
        let long_name = "x".repeat(129);
        check(create("new", 1, 24, 0), Ok(()));
        check(create("A-z_0.9", 1, 24, 0), Ok(()));
        check(create(&max_name, 1, 24, 0), Ok(()));
        check(create(&long_name, 1, 24, 0), Err(InvalidArgument));
        check(create("", 1, 24, 0), Err(InvalidArgument));
        check(create("a b", 1, 24, 0), Err(InvalidArgument));
        check(create("a/b", 1, 24, 0), Err(InvalidArgument));
        check(create("ü", 1, 24, 0), Err(InvalidArgument));
        check(create("new", 0, 24, 0), Err(InvalidArgument));
        check(create("new", 500, 24, 0), Ok(()));
        check(create("new", 501, 24, 0), Err(LimitExceeded));
        check(create("new", u32::MAX, 24, 0), Err(LimitExceeded));
        check(create("new", 1, 0, 0), Err(InvalidArgument));
        check(create("new", 1, 1, 0), Ok(()));
        check(create("new", 1, 8760, 0), Ok(()));
        check(create("new", 1, 8761, 0), Err(InvalidArgument));
        check(create("exists", 1, 24, 0), Err(ResourceInUse));
        check(create("exists", 0, 24, 0), Err(InvalidArgument));
        check(delete("exists"), Ok(()));
        check(delete("missing"), Err(ResourceNotFound));
        check(delete("bad name"), Err(InvalidArgument));
        check(set_retention("exists", 48), Ok(()));
        check(set_retention("exists", 8761), Err(InvalidArgument));
        check(set_retention("exists", 0), Err(InvalidArgument));
        check(set_retention("missing", 48), Err(ResourceNotFound));

        let mut state = CatalogState::default();
        state.apply(create("exists", 1, 24, 0));
        let limits = Limits::default();
        let in_use = state
            .check(&create("exists", 1, 24, 0), &limits, DEFAULT_ACCOUNT_ID)
            .unwrap_err()
            .message;
        assert_eq!(
            in_use,
            "Stream exists under account 000000000000 already exists."
        );
        let missing = |account| {
            state
                .check(&delete("gone"), &limits, account)
                .unwrap_err()
                .message
        };
        assert_eq!(
            missing(DEFAULT_ACCOUNT_ID),
            "Stream gone under account 000000000000 not found."
        );
        assert_eq!(
            missing("123456789012"),
            "Stream gone under account 123456789012 not found."
        );
    }

    #[test]
    fn u128_hash_keys_are_decimal_strings_in_json() {
        let shard = ShardMeta::initial(1, 0, u128::MAX);
        let json = serde_json::to_string(&shard).unwrap();
        assert_eq!(
            json,
            r#"{"index":1,"hash_key_start":"0","hash_key_end":"340282366920938463463374607431768211455"}"#
        );
        assert_eq!(serde_json::from_str::<ShardMeta>(&json).unwrap(), shard);
        assert!(
            serde_json::from_str::<ShardMeta>(
                r#"{"index":1,"hash_key_start":"-1","hash_key_end":"0"}"#
            )
            .is_err()
        );
    }
}
