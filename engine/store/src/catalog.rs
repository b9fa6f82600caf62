//! Stream catalog: which streams exist, their shards and retention, durable
//! across restarts.
//!
//! Owns the catalog's in-memory state ([`CatalogState`]), the validation of every
//! catalog change ([`CatalogState::check`], AWS-style errors), and its persistence
//! in `dir`: a crc-framed metadata log plus a periodic snapshot. It does not know
//! about segments or records, and never reads a clock: creation times come in with
//! the events. Lives on the one core that owns the catalog; not shared.
//!
//! Files in `dir`:
//! - `catalog.snapshot`: JSON of [`CatalogState`] (including `last_seq`), written
//!   with [`write_file_atomic`] (temp file, sync, rename, sync dir).
//! - `catalog.log`: the events after the snapshot, one frame each:
//!
//!   ```text
//!   [len: u32 LE][crc32c(payload): u32 LE][payload: len bytes][zero pad to a multiple of 8]
//!   payload = JSON {"seq": u64, "event": CatalogEvent}
//!   ```
//!
//!   Frames follow each other without gaps from byte 0. Recovery reads frames
//!   until the first one that is zero, short or fails its crc: that is a torn tail
//!   (the one write in flight at a crash) and is dropped; appends continue after
//!   the last good frame. A bad frame with a valid frame somewhere after it cannot
//!   come from a crash (only one frame is ever unsynced), so it is corruption and
//!   opening fails, naming the file and byte offset.
//!
//! Durability contract: [`Catalog::apply`] checks the event, appends its frame,
//! syncs, and only then applies it in memory (durable before visible). Every
//! `snapshot_every` events the state is snapshotted, then the log is reset;
//! log events with `seq <= snapshot.last_seq` are skipped on replay, so a crash
//! between the two steps is harmless.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use riffle_protocol::{Error, ErrorCode, Limits};
use serde::{Deserialize, Serialize};

use crate::appender::Appender;
use riffle_protocol::routing;
use crate::storage::{
    DMA_ALIGNMENT, Storage, StorageFile, align_down, read_file_atomic, write_file_atomic,
};

/// Name of the snapshot file inside the catalog directory.
pub const SNAPSHOT_FILE: &str = "catalog.snapshot";
/// Name of the metadata log inside the catalog directory.
pub const LOG_FILE: &str = "catalog.log";
/// Temp file a fresh, empty log is prepared in before it is renamed over the log.
/// Not `catalog.tmp`: that is the snapshot's temp file (see [`write_file_atomic`]).
const LOG_TMP_FILE: &str = "catalog.log.tmp";

/// `[len: u32][crc: u32]` before each payload.
const FRAME_HEADER_SIZE: usize = 8;
/// Frames start on this boundary, like batches in segments.
const FRAME_ALIGNMENT: usize = 8;
/// The largest events are reshards: UpdateShardCount to 500 shards adds 500 or
/// more shards of about 130 bytes of JSON each (plus closed intermediate ones when
/// the layouts do not align), well over AddTags with 50 tags of AWS's longest keys
/// and values (about 20 KiB) or a resource policy (AWS allows 20 KiB). 1 MiB holds
/// them while any larger length in a header marks it as torn or garbage before we
/// look at the payload. (Logs written with the former 16 and 64 KiB bounds read
/// the same.)
const FRAME_PAYLOAD_SIZE_MAX: usize = 1 << 20;
/// Room for the frame's `{"seq":N,"event":...}` wrapping around an event.
const LOG_RECORD_OVERHEAD: usize = 64;
/// Appender buffer size: catalog events are tiny and rare, one block is plenty.
const LOG_WRITE_SIZE: usize = DMA_ALIGNMENT;

/// Riffle has no accounts; error messages use the placeholder account id that
/// AWS-compatible local emulators use, so clients matching on messages still work.
pub(crate) const ACCOUNT_ID: &str = "000000000000";

const _: () = assert!(FRAME_HEADER_SIZE.is_multiple_of(FRAME_ALIGNMENT));
const _: () = assert!(DMA_ALIGNMENT.is_multiple_of(FRAME_ALIGNMENT));
const _: () = assert!(FRAME_PAYLOAD_SIZE_MAX <= u32::MAX as usize);

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

/// Stream settings the AWS API stores and reports. Encryption is recorded, not
/// applied (records are not encrypted at rest yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// The KMS key id while server-side encryption is on.
    pub encryption_key: Option<String>,
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
    Encryption { key: Option<String> },
    EnableMetrics { metrics: Vec<String> },
    DisableMetrics { metrics: Vec<String> },
    ResourcePolicy { policy: Option<String> },
    Mode { on_demand: bool },
    RegisterConsumer { consumer: String, created_ms: i64 },
    DeregisterConsumer { consumer: String },
    MaxRecordSize { kib: u32 },
    WarmThroughput { mibps: u32 },
}

impl StreamSettings {
    /// The settings after `change`.
    pub fn apply(&mut self, change: &SettingsChange) {
        match change {
            SettingsChange::Encryption { key } => self.encryption_key = key.clone(),
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

/// The catalog's content. Changed only through [`CatalogState::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    streams: BTreeMap<String, StreamMeta>,
    /// Absent in catalogs written before account settings existed.
    #[serde(default)]
    account: AccountSettings,
    /// The id the next created stream gets; only ever grows.
    next_stream_id: u64,
    /// Sequence number of the last applied event (0: none yet).
    last_seq: u64,
}

impl Default for CatalogState {
    fn default() -> CatalogState {
        CatalogState {
            streams: BTreeMap::new(),
            account: AccountSettings::default(),
            next_stream_id: 1,
            last_seq: 0,
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

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether `event` may be applied: parameters first (as AWS validates them
    /// before looking anything up), then existence. No side effects.
    pub fn check(&self, event: &CatalogEvent, limits: &Limits) -> Result<(), Error> {
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
                                "Failed to add tags to stream {name} under account {ACCOUNT_ID} because a given stream cannot have more than {} tags.",
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
        if size + LOG_RECORD_OVERHEAD > FRAME_PAYLOAD_SIZE_MAX {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the change is too large to record ({size} bytes of catalog event, at most {})",
                    FRAME_PAYLOAD_SIZE_MAX - LOG_RECORD_OVERHEAD
                ),
            ));
        }
        self.check_applicable(event)
    }

    /// The part of [`CatalogState::check`] that depends on the content alone.
    /// Replay uses only this: limits may have changed since an event was logged,
    /// but history must still replay.
    fn check_applicable(&self, event: &CatalogEvent) -> Result<(), Error> {
        let name = event.name();
        let exists = self.streams.contains_key(name);
        match event {
            CatalogEvent::CreateStream { .. } if exists => Err(Error::in_use(format!(
                "Stream {name} under account {ACCOUNT_ID} already exists."
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
                    "Stream {name} under account {ACCOUNT_ID} not found."
                )))
            }
            _ => Ok(()),
        }
    }

    /// Applies an event that passed [`CatalogState::check`] as number `seq`
    /// (`last_seq + 1`). Panics on an unchecked event: that is our bug.
    pub fn apply(&mut self, seq: u64, event: &CatalogEvent) {
        assert_eq!(seq, self.last_seq + 1, "catalog events apply in sequence");
        if let Err(e) = self.check_applicable(event) {
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
        self.last_seq = seq;
    }

    /// Re-verifies, after reading a snapshot, what `apply` guarantees when
    /// writing it (the read side of a pair assertion across the disk).
    fn verify(&self) -> Result<(), String> {
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

fn check_name(name: &str, limits: &Limits) -> Result<(), Error> {
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

/// Why a catalog could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("catalog file {path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CatalogError + '_ {
    move |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A log payload. Generic so writing can borrow the event and reading own it.
#[derive(Serialize, Deserialize)]
struct LogRecord<E> {
    seq: u64,
    event: E,
}

/// Zero bytes after a payload of `len` bytes so the next frame starts aligned.
fn frame_pad(payload_len: usize) -> usize {
    let end = FRAME_HEADER_SIZE + payload_len;
    end.next_multiple_of(FRAME_ALIGNMENT) - end
}

/// Header and payload of one frame (the pad is left to the appender).
fn encode_frame(payload: &[u8]) -> Vec<u8> {
    assert!(!payload.is_empty() && payload.len() <= FRAME_PAYLOAD_SIZE_MAX);
    let mut frame = Vec::with_capacity(FRAME_HEADER_SIZE + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The payload of a valid frame at `pos` and where the next frame starts, or
/// `None` when there is no valid frame there (zero, short, too long, bad crc or
/// non-zero pad).
fn frame_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(pos..pos.checked_add(FRAME_HEADER_SIZE)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    if len == 0 || len > FRAME_PAYLOAD_SIZE_MAX {
        return None;
    }
    let start = pos + FRAME_HEADER_SIZE;
    let payload = bytes.get(start..start + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let next = start + len + frame_pad(len);
    if !bytes.get(start + len..next)?.iter().all(|&b| b == 0) {
        return None;
    }
    Some((payload, next))
}

/// The valid frames of a log (offset, payload) and the logical end after them.
#[derive(Debug, PartialEq)]
struct LogScan<'a> {
    frames: Vec<(u64, &'a [u8])>,
    end: u64,
}

/// Splits a log into frames; see the module docs for torn tail vs. corruption.
/// `Err((offset, reason))` names the first bad frame.
fn scan_log(bytes: &[u8]) -> Result<LogScan<'_>, (u64, String)> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some((payload, next)) = frame_at(bytes, pos) {
        frames.push((pos as u64, payload));
        pos = next;
    }
    let mut later = pos + FRAME_ALIGNMENT;
    while later + FRAME_HEADER_SIZE <= bytes.len() {
        if frame_at(bytes, later).is_some() {
            return Err((
                pos as u64,
                format!("invalid frame followed by a valid frame at byte {later}"),
            ));
        }
        later += FRAME_ALIGNMENT;
    }
    Ok(LogScan {
        frames,
        end: pos as u64,
    })
}

/// Applies the log's frames to the snapshot's state. Returns how many were
/// applied (not skipped as already in the snapshot).
fn replay(state: &mut CatalogState, scan: &LogScan<'_>, path: &Path) -> Result<u32, CatalogError> {
    let corrupt = |offset: u64, reason: String| CatalogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let snapshot_seq = state.last_seq;
    let mut previous_seq: Option<u64> = None;
    let mut applied = 0;
    for &(offset, payload) in &scan.frames {
        // The crc matched, so these are the bytes we wrote: failing to decode
        // them is corruption (or a bug), never a torn write.
        let record: LogRecord<CatalogEvent> = serde_json::from_slice(payload)
            .map_err(|e| corrupt(offset, format!("undecodable event: {e}")))?;
        if let Some(previous) = previous_seq
            && record.seq != previous + 1
        {
            return Err(corrupt(
                offset,
                format!("event seq {} follows seq {previous}", record.seq),
            ));
        }
        previous_seq = Some(record.seq);
        if record.seq <= snapshot_seq {
            continue;
        }
        if record.seq != state.last_seq + 1 {
            let reason = format!(
                "event seq {} does not follow seq {}",
                record.seq, state.last_seq
            );
            return Err(corrupt(offset, reason));
        }
        state.check_applicable(&record.event).map_err(|e| {
            corrupt(
                offset,
                format!("event seq {} does not apply: {e}", record.seq),
            )
        })?;
        state.apply(record.seq, &record.event);
        applied += 1;
    }
    Ok(applied)
}

/// The durable catalog: [`CatalogState`] plus its snapshot and log in one directory.
/// Lives on the core that owns the catalog; one `apply` at a time (`&mut self`).
pub struct Catalog<S: Storage> {
    storage: S,
    dir: PathBuf,
    log: S::File,
    appender: Appender<<S::File as StorageFile>::Buf>,
    state: CatalogState,
    snapshot_every: u32,
    /// Events applied since the last snapshot (or in the log at open).
    events_since_snapshot: u32,
    /// Set by the first I/O failure; the files may no longer match `state`.
    poisoned: Option<String>,
}

impl<S: Storage> Catalog<S> {
    /// Opens (or creates) the catalog in `dir`: loads the snapshot, then replays
    /// the log. `snapshot_every` (at least 1) is how many events go to the log
    /// between snapshots.
    pub async fn open(
        storage: S,
        dir: &Path,
        snapshot_every: u32,
    ) -> Result<Catalog<S>, CatalogError> {
        assert!(snapshot_every >= 1, "snapshot_every must be at least 1");
        storage.create_dir_all(dir).await.map_err(io_error(dir))?;

        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let mut state = match read_file_atomic(&storage, &snapshot_path)
            .await
            .map_err(io_error(&snapshot_path))?
        {
            None => CatalogState::default(),
            Some(bytes) => {
                let corrupt = |reason: String| CatalogError::Corrupt {
                    path: snapshot_path.clone(),
                    offset: 0,
                    reason,
                };
                let state: CatalogState = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
                state.verify().map_err(corrupt)?;
                state
            }
        };

        let log_path = dir.join(LOG_FILE);
        let existed = storage
            .exists(&log_path)
            .await
            .map_err(io_error(&log_path))?;
        let log = storage
            .open(&log_path, true)
            .await
            .map_err(io_error(&log_path))?;
        if !existed {
            storage.sync_dir(dir).await.map_err(io_error(dir))?;
        }
        let len = log.len().await.map_err(io_error(&log_path))?;
        let bytes = log
            .read_at(0, len as usize)
            .await
            .map_err(io_error(&log_path))?;
        let scan = scan_log(&bytes).map_err(|(offset, reason)| CatalogError::Corrupt {
            path: log_path.clone(),
            offset,
            reason,
        })?;
        let events_since_snapshot = replay(&mut state, &scan, &log_path)?;

        // Appends continue right after the last good frame; a torn tail after it
        // is overwritten block by block (its leftovers beyond the new end are the
        // rest of one ASCII JSON payload, which cannot pass as a frame header).
        let end = scan.end;
        let appender = Appender::new(
            &log,
            end,
            &bytes[align_down(end) as usize..end as usize],
            LOG_WRITE_SIZE,
        );
        Ok(Catalog {
            storage,
            dir: dir.to_path_buf(),
            log,
            appender,
            state,
            snapshot_every,
            events_since_snapshot,
            poisoned: None,
        })
    }

    pub fn state(&self) -> &CatalogState {
        &self.state
    }

    /// Why the catalog refuses changes, if an I/O failure poisoned it.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Checks `event`, makes it durable, then applies it. Returns the stream as
    /// it is after the event (`None` after a delete).
    ///
    /// On a validation error nothing happens. On an I/O error writing the log the
    /// state stays as before, the catalog is poisoned (every later call fails
    /// with `Internal`), and after a restart the event may or may not be there.
    /// If only the snapshot that follows a durable event fails, the event is
    /// reported `Ok` (it is durable and visible) and the catalog is poisoned.
    pub async fn apply(
        &mut self,
        event: CatalogEvent,
        limits: &Limits,
    ) -> Result<Option<&StreamMeta>, Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::internal(format!(
                "the catalog is unavailable after a storage failure: {reason}"
            )));
        }
        self.state.check(&event, limits)?;

        let seq = self.state.last_seq + 1;
        let payload =
            serde_json::to_vec(&LogRecord { seq, event: &event }).expect("events always encode");
        if payload.len() > FRAME_PAYLOAD_SIZE_MAX {
            // Only reachable with limits configured far above AWS's.
            return Err(Error::invalid(format!(
                "catalog event of {} bytes is too large",
                payload.len()
            )));
        }
        if let Err(e) = self
            .append_durably(&encode_frame(&payload), frame_pad(payload.len()))
            .await
        {
            let reason = format!("writing {}: {e}", self.dir.join(LOG_FILE).display());
            self.poisoned = Some(reason.clone());
            return Err(Error::internal(reason));
        }

        self.state.apply(seq, &event);
        self.events_since_snapshot += 1;
        if self.events_since_snapshot >= self.snapshot_every
            && let Err(e) = self.snapshot().await
        {
            self.poisoned = Some(format!(
                "snapshotting the catalog in {}: {e}",
                self.dir.display()
            ));
        }
        Ok(self.state.get(event.name()))
    }

    /// Appends one frame, writes every job in order, syncs.
    async fn append_durably(&mut self, frame: &[u8], pad: usize) -> io::Result<()> {
        let at = self.appender.append(&self.log, frame, pad);
        assert_eq!(at % FRAME_ALIGNMENT as u64, 0, "catalog frames are aligned");
        while let Some(job) = self.appender.take_write(&self.log) {
            self.log.write_at(job.buf, job.pos).await?;
        }
        assert_eq!(self.appender.pending_bytes(), 0);
        self.log.sync().await
    }

    /// Writes the snapshot, then starts an empty log.
    ///
    /// Order: the snapshot is durable before the log is touched, so at every
    /// instant the snapshot plus the log hold every acknowledged event (a crash
    /// in between leaves old events in the log, which replay skips by seq).
    /// The log is reset by renaming a synced empty file over it rather than by
    /// truncating in place: the rename is atomic, so the log is either the old
    /// one or empty, and the new log can never hold stale frames from the old
    /// one (a truncate that is not yet durable, followed by new frames at byte 0,
    /// could come back after a crash as new frames + old frames, which recovery
    /// would rightly call corruption).
    async fn snapshot(&mut self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).expect("the catalog state always encodes");
        write_file_atomic(&self.storage, &self.dir.join(SNAPSHOT_FILE), &bytes).await?;

        let tmp = self.dir.join(LOG_TMP_FILE);
        let log_path = self.dir.join(LOG_FILE);
        {
            let fresh = self.storage.open(&tmp, true).await?;
            fresh.truncate(0).await?;
            fresh.sync().await?;
        }
        self.storage.rename(&tmp, &log_path).await?;
        self.storage.sync_dir(&self.dir).await?;
        self.log = self.storage.open(&log_path, false).await?;
        self.appender = Appender::new(&self.log, 0, &[], LOG_WRITE_SIZE);
        self.events_since_snapshot = 0;
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
        text.parse()
            .map_err(|e| D::Error::custom(format!("bad u128 {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimOp, SimStorage};
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
                        (None, Default::default(), None, false, BTreeMap::new()),
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
                        SettingsChange::Encryption { key } => s.0 = key.clone(),
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
                assert_eq!(catalog.state().last_seq(), 5);
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
            0 => SettingsChange::Encryption {
                key: rng.random_bool(0.5).then(|| "alias/k".to_owned()),
            },
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
                            reshard::split(&meta, s.index, at)
                        }
                        1 => reshard::merge(&meta, pick(&mut rng), pick(&mut rng)),
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
                        state.verify().is_ok(),
                        "seed {seed} step {step}: {:?}",
                        state.verify()
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

    /// Events for the crash test: valid and invalid ones, long names so that the
    /// log spans several blocks when snapshots are rare.
    fn crash_workload() -> Vec<CatalogEvent> {
        let long = |i: usize| format!("{i}-{}", "x".repeat(100));
        let mut events = Vec::new();
        for i in 0..30 {
            events.push(create(&long(i), 1 + i as u32 % 4, 24 + i as u32, i as i64));
            match i % 5 {
                1 => events.push(delete(&long(i - 1))),
                2 => events.push(set_retention(&long(i), 100)),
                3 => events.push(create(&long(i), 1, 24, 0)), // in use
                4 => events.push(delete("missing")),
                _ => events.push(create("bad name", 1, 24, 0)),
            }
        }
        events
    }

    /// Runs the workload; returns the model of acknowledged events and the
    /// first event that failed with an I/O error (the one in flight).
    async fn run_workload(
        storage: &SimStorage,
        snapshot_every: u32,
        limits: &Limits,
    ) -> (Model, Option<CatalogEvent>) {
        let mut acked = Model::new();
        let mut in_flight = None;
        let Ok(mut catalog) = Catalog::open(storage.clone(), dir(), snapshot_every).await else {
            return (acked, None);
        };
        for event in crash_workload() {
            match catalog.apply(event.clone(), limits).await {
                Ok(_) => acked.apply(&event, limits).expect("acked events are valid"),
                Err(e) if e.code == ErrorCode::Internal => {
                    if in_flight.is_none() {
                        in_flight = Some(event);
                    }
                }
                Err(e) => assert_eq!(Err(e.code), acked.clone().apply(&event, limits)),
            }
        }
        (acked, in_flight)
    }

    #[test]
    fn crash_at_every_sync_keeps_every_acknowledged_event() {
        let limits = Limits::default();
        for snapshot_every in [4, 1000] {
            let total_syncs = block_on(async {
                let storage = SimStorage::new(1);
                let (acked, in_flight) = run_workload(&storage, snapshot_every, &limits).await;
                assert!(in_flight.is_none());
                assert!(acked.streams.len() > 10);
                storage.sync_count()
            });
            for seed in seeds(4) {
                for n in 1..=total_syncs {
                    block_on(async {
                        let context = format!(
                            "seed {seed} snapshot_every {snapshot_every} crash at sync {n}"
                        );
                        let storage = SimStorage::new(seed);
                        storage.crash_at_sync(n);
                        let (acked, in_flight) =
                            run_workload(&storage, snapshot_every, &limits).await;
                        assert!(storage.is_crashed(), "{context}");

                        let storage = storage.restart();
                        let mut catalog = Catalog::open(storage.clone(), dir(), snapshot_every)
                            .await
                            .unwrap_or_else(|e| panic!("{context}: {e}"));
                        let mut with_in_flight = acked.clone();
                        if let Some(event) = &in_flight {
                            let _ = with_in_flight.apply(event, &limits);
                        }
                        let state = catalog.state().clone();
                        assert!(
                            acked.matches(&state) || with_in_flight.matches(&state),
                            "{context}: recovered {state:?}\nacked {acked:?}\nin flight {in_flight:?}"
                        );

                        // Appends continue after the recovered end, and survive a reopen.
                        catalog
                            .apply(create("after-crash", 2, 24, 0), &limits)
                            .await
                            .unwrap();
                        let expected = catalog.state().clone();
                        drop(catalog);
                        let catalog = open(&storage, snapshot_every).await;
                        assert_eq!(catalog.state(), &expected, "{context}");
                    });
                }
            }
        }
    }

    #[test]
    fn injected_io_failure_poisons_and_leaves_state_unchanged() {
        let limits = Limits::default();
        // snapshot_every 2: the second event is logged, then snapshotted, so the
        // faults hit the log write, the log sync and every snapshot step.
        async fn setup() -> (SimStorage, Catalog<SimStorage>) {
            let storage = SimStorage::new(5);
            let mut catalog = open(&storage, 2).await;
            catalog
                .apply(create("first", 1, 24, 0), &Limits::default())
                .await
                .unwrap();
            (storage, catalog)
        }
        let event = create("second", 2, 48, 1);
        let op_counts: Vec<(SimOp, u64)> = block_on(async {
            let (storage, mut catalog) = setup().await;
            let ops = [SimOp::Write, SimOp::Sync, SimOp::Open, SimOp::Read];
            let before: Vec<u64> = ops.iter().map(|&op| storage.op_count(op)).collect();
            catalog.apply(event.clone(), &limits).await.unwrap();
            ops.iter()
                .zip(before)
                .map(|(&op, b)| (op, storage.op_count(op) - b))
                .collect()
        });
        assert!(
            op_counts
                .iter()
                .any(|&(op, n)| op == SimOp::Write && n >= 2),
            "{op_counts:?}"
        );

        for (op, count) in op_counts {
            for n in 1..=count {
                block_on(async {
                    let context = format!("{op:?} failure #{n}");
                    let (storage, mut catalog) = setup().await;
                    let before = catalog.state().clone();
                    storage.fail_nth(op, n);
                    let result = catalog
                        .apply(event.clone(), &limits)
                        .await
                        .map(|s| s.cloned());
                    assert!(catalog.poisoned().is_some(), "{context}");
                    let ok = match result {
                        Ok(stream) => {
                            assert_eq!(stream.unwrap().name, "second", "{context}");
                            true
                        }
                        Err(e) => {
                            assert_eq!(e.code, ErrorCode::Internal, "{context}");
                            assert_eq!(catalog.state(), &before, "{context}");
                            false
                        }
                    };
                    // The log write and its sync come first and must report failure.
                    if n == 1 && matches!(op, SimOp::Write | SimOp::Sync) {
                        assert!(!ok, "{context}");
                    }
                    let after = catalog.state().clone();
                    let err = catalog
                        .apply(create("third", 1, 24, 2), &limits)
                        .await
                        .unwrap_err();
                    assert_eq!(err.code, ErrorCode::Internal, "{context}");
                    assert_eq!(catalog.state(), &after, "{context}");

                    let reopened = open(&storage.restart(), 2).await;
                    let got = reopened.state();
                    assert!(got.get("third").is_none(), "{context}");
                    assert!(got.get("first").is_some(), "{context}");
                    if ok {
                        assert_eq!(got.get("second"), after.get("second"), "{context}");
                    }
                });
            }
        }
    }

    /// A log of six frames with snapshots off; returns the storage and each
    /// frame's offset.
    async fn six_frame_log() -> (SimStorage, Vec<u64>) {
        let storage = SimStorage::new(9);
        let mut catalog = open(&storage, 1000).await;
        let mut offsets = Vec::new();
        for i in 0..6 {
            offsets.push(catalog.appender.end());
            catalog
                .apply(create(&format!("s{i}"), 1, 24, i), &Limits::default())
                .await
                .unwrap();
        }
        (storage, offsets)
    }

    #[test]
    fn corrupt_byte_before_valid_frames_is_an_error_naming_the_offset() {
        let log_path = dir().join(LOG_FILE);
        for frame in [0, 2, 4] {
            // Length, crc, payload.
            for byte in [0, 3, 5, 20] {
                block_on(async {
                    let (storage, offsets) = six_frame_log().await;
                    storage.corrupt(&log_path, offsets[frame] as usize + byte);
                    let err = Catalog::open(storage.restart(), dir(), 1000)
                        .await
                        .err()
                        .expect("corruption detected");
                    match &err {
                        CatalogError::Corrupt { path, offset, .. } => {
                            assert_eq!(
                                (path.as_path(), *offset),
                                (log_path.as_path(), offsets[frame])
                            )
                        }
                        other => panic!("frame {frame} byte {byte}: {other}"),
                    }
                    let message = err.to_string();
                    assert!(
                        message.contains(&format!("{}", log_path.display())),
                        "{message}"
                    );
                    assert!(
                        message.contains(&format!("byte {}", offsets[frame])),
                        "{message}"
                    );
                });
            }
        }
    }

    #[test]
    fn bad_last_frame_is_a_torn_tail_and_appends_continue() {
        block_on(async {
            let (storage, offsets) = six_frame_log().await;
            storage.corrupt(&dir().join(LOG_FILE), offsets[5] as usize + 12);
            let storage = storage.restart();
            let mut catalog = open(&storage, 1000).await;
            assert_eq!(catalog.state().len(), 5);
            assert!(catalog.state().get("s5").is_none());
            assert_eq!(catalog.appender.end(), offsets[5]);
            let again = catalog
                .apply(create("s5", 3, 24, 5), &Limits::default())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((again.id, again.shards.len()), (6, 3));
            let expected = catalog.state().clone();
            drop(catalog);
            assert_eq!(open(&storage, 1000).await.state(), &expected);
        });
    }

    #[test]
    fn corrupt_snapshot_is_an_error() {
        block_on(async {
            let storage = SimStorage::new(2);
            let mut catalog = open(&storage, 1).await;
            catalog
                .apply(create("a", 1, 24, 0), &Limits::default())
                .await
                .unwrap();
            drop(catalog);
            storage.corrupt(&dir().join(SNAPSHOT_FILE), 8 + 2);
            let err = Catalog::open(storage, dir(), 1)
                .await
                .err()
                .expect("corruption detected");
            assert!(matches!(err, CatalogError::Corrupt { .. }), "{err}");
        });
    }

    fn check(event: CatalogEvent, expected: Result<(), ErrorCode>) {
        let limits = Limits::default();
        let mut state = CatalogState::default();
        state.apply(1, &create("exists", 1, 24, 0));
        let got = state.check(&event, &limits).map_err(|e| e.code);
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
        state.apply(1, &create("exists", 1, 24, 0));
        let limits = Limits::default();
        let in_use = state
            .check(&create("exists", 1, 24, 0), &limits)
            .unwrap_err()
            .message;
        assert_eq!(
            in_use,
            "Stream exists under account 000000000000 already exists."
        );
        let missing = state.check(&delete("gone"), &limits).unwrap_err().message;
        assert_eq!(missing, "Stream gone under account 000000000000 not found.");
    }

    #[test]
    fn frame_bytes_are_pinned() {
        let payload = serde_json::to_vec(&LogRecord {
            seq: 7,
            event: &delete("a"),
        })
        .unwrap();
        assert_eq!(
            payload,
            br#"{"seq":7,"event":{"type":"DeleteStream","name":"a"}}"#
        );
        let frame = encode_frame(&payload);
        // len 52, crc32c 0x921a8998, both little-endian; then 4 bytes of pad.
        assert_eq!(frame[..8], [52, 0, 0, 0, 0x98, 0x89, 0x1a, 0x92]);
        assert_eq!(frame[8..], payload[..]);
        assert_eq!(frame_pad(payload.len()), 4);

        let mut log = frame.clone();
        log.resize(DMA_ALIGNMENT, 0);
        let scan = scan_log(&log).unwrap();
        assert_eq!(
            scan,
            LogScan {
                frames: vec![(0, &payload[..])],
                end: 64
            }
        );
    }

    #[test]
    fn every_prefix_of_a_log_scans_to_its_whole_frames() {
        let mut log = Vec::new();
        // (end of payload, end of pad) of each frame.
        let mut ends = Vec::new();
        for seq in 1..=3 {
            let payload = serde_json::to_vec(&LogRecord {
                seq,
                event: &create("abc", seq as u32, 24, 0),
            })
            .unwrap();
            log.extend_from_slice(&encode_frame(&payload));
            let payload_end = log.len();
            log.resize(log.len() + frame_pad(payload.len()), 0);
            ends.push((payload_end, log.len()));
        }
        for len in 0..=log.len() {
            // The rest of the block reads as zeros, as on disk: a frame is whole
            // once its payload is in.
            let mut prefix = log[..len].to_vec();
            prefix.resize(len.next_multiple_of(64) + 64, 0);
            let scan = scan_log(&prefix).unwrap_or_else(|e| panic!("prefix {len}: {e:?}"));
            let whole = ends
                .iter()
                .filter(|&&(payload_end, _)| payload_end <= len)
                .count();
            assert_eq!(scan.frames.len(), whole, "prefix {len}");
            assert_eq!(
                scan.end,
                if whole == 0 {
                    0
                } else {
                    ends[whole - 1].1 as u64
                },
                "prefix {len}"
            );
        }
        assert!(scan_log(&[]).unwrap().frames.is_empty());
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
