//! The engine's Rust API: what the network gateways (and tests, benches) call.
//!
//! [`Engine`] is `Send + Sync`; its methods validate input against `Limits`,
//! route by hash key to the owning core, and await the reply. AWS semantics:
//! routing by MD5 of the partition key or by ExplicitHashKey, sequence numbers as
//! decimal strings, shard iterators as authenticated tokens that expire after five
//! minutes, GetRecords limits of 10,000 records / 10 MiB.

use std::sync::Arc;

use arc_swap::ArcSwap;
use riffle_protocol::batch::{self, ArchivedRecord, BatchBuilder, RecordIn, ValidBatch};
use riffle_protocol::{Error, ErrorCode, Limits};
use riffle_protocol::{routing, seqno};
use riffle_store::iterator::{IteratorKey, IteratorToken, IteratorType};
use riffle_store::log::Appended;
use rkyv::util::AlignedVec;

use crate::config::EngineConfig;
use crate::control::{
    CatalogView, Control, ControlMsg, ReshardChange, StreamInfo, ViewWatch, owner,
};
use crate::core::{self, CoreMsg, OwnedRead, Position, ShardKey};
use crate::pump::Reply;
use crate::rt::{self, CoreId, CoreThread};

/// One record of a PutRecords call.
#[derive(Clone, Debug)]
pub struct PutRecordsEntry<'a> {
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// Where a record was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub shard_id: String,
    pub sequence_number: String,
    pub shard_index: u32,
    pub offset: u64,
    /// When the record arrived (its batch's arrival time).
    pub arrival_ms: i64,
    /// When its shard opened (AWS's sequence numbers carry it).
    pub shard_opened: ShardOpened,
}

/// When a shard opened: with its stream, or later, by resharding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardOpened {
    pub at_ms: i64,
    pub by_reshard: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardDescription {
    /// The shard's index in its stream (what the native protocol names it by).
    pub shard_index: u32,
    /// Its AWS name, `routing::shard_id(shard_index)` (`shardId-000000000000`).
    pub shard_id: String,
    pub hash_key_start: u128,
    pub hash_key_end: u128,
    pub starting_sequence_number: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// Set once resharding closed the shard: its last record's sequence number
    /// (the starting one when it holds none).
    pub ending_sequence_number: Option<String>,
    /// When the shard opened (the stream's creation for its first shards).
    pub opened_ms: i64,
    /// When resharding closed it.
    pub closed_ms: Option<i64>,
}

impl ShardDescription {
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }
}

/// A shard a closed shard's records continue in (GetRecords' ChildShards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shard_ids: Vec<String>,
    pub hash_key_start: u128,
    pub hash_key_end: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDescription {
    pub name: String,
    pub status: &'static str,
    pub shards: Vec<ShardDescription>,
    pub retention_hours: u32,
    pub created_ms: i64,
}

/// A record returned by GetRecords (borrowed from the output's batches).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub offset: u64,
    pub shard_index: u32,
    pub record: &'a ArchivedRecord,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("partition_key", &self.partition_key())
            .finish()
    }
}

impl Record<'_> {
    pub fn sequence_number(&self) -> String {
        seqno::to_string(seqno::encode(self.shard_index, self.offset))
    }
    pub fn data(&self) -> &[u8] {
        self.record.data()
    }
    pub fn partition_key(&self) -> &str {
        self.record.partition_key()
    }
    pub fn arrival_ms(&self) -> i64 {
        self.record.arrival_ms()
    }
}

/// The answer to GetRecords.
#[derive(Debug)]
pub struct GetRecordsOutput {
    shard_index: u32,
    read: OwnedRead,
    pub record_count: u32,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
    /// Set when the read reached the end of a shard closed by resharding: where
    /// its records continue. There is no next iterator then.
    pub child_shards: Option<Vec<ChildShard>>,
    /// The stream has server-side encryption on (records report EncryptionType KMS).
    pub encrypted: bool,
    /// When the shard opened (AWS's sequence numbers carry it).
    pub shard_opened: ShardOpened,
}

impl GetRecordsOutput {
    pub fn shard_index(&self) -> u32 {
        self.shard_index
    }

    /// Where the next read starts.
    pub fn next_offset(&self) -> u64 {
        self.read.next_offset
    }

    /// The stored batches the records come from, as (batch bytes, skip, take):
    /// records `skip .. skip + take` of each batch. Served as stored, never re-encoded.
    pub fn spans(&self) -> impl Iterator<Item = (&[u8], u32, u32)> {
        self.read
            .spans
            .iter()
            .map(|s| (s.bytes(), s.skip(), s.take()))
    }

    /// The records, in order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.read.spans.iter().flat_map(move |s| {
            let view = s.batch();
            let base = view.header.base_offset;
            let (skip, take) = (s.skip(), s.take());
            let records = &view.records()[skip as usize..(skip + take) as usize];
            records.iter().enumerate().map(move |(i, record)| Record {
                offset: base + skip as u64 + i as u64,
                shard_index: self.shard_index,
                record,
            })
        })
    }
}

struct Shared {
    config: Arc<EngineConfig>,
    cores: Vec<flume::Sender<CoreMsg>>,
    control: flume::Sender<ControlMsg>,
    view: Arc<ArcSwap<CatalogView>>,
    watch: Arc<ViewWatch>,
    key: IteratorKey,
    threads: std::sync::Mutex<Vec<CoreThread>>,
    /// Holds the data directory's lock until shutdown.
    lock: std::sync::Mutex<Option<DataDirLock>>,
}

/// An exclusive `flock` on `<data_dir>/LOCK`, held while the engine runs, so a
/// second engine on the same directory is refused instead of corrupting it. The
/// kernel drops the lock when the process dies, so a crash never leaves it stale.
struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    fn acquire(dir: &std::path::Path) -> Result<DataDirLock, Error> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        let path = dir.join("LOCK");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(Error::in_use(format!(
                "data directory {} is in use by another riffle process (pid {}); stop it or choose another --data-dir",
                dir.display(),
                holder.trim()
            )));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(DataDirLock { _file: file })
    }
}

/// A running engine. Cheap to clone; shut down with [`Engine::shutdown`].
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

fn check_incarnation(s: &StreamInfo, stream_id: Option<u64>) -> Result<(), Error> {
    match stream_id {
        Some(id) if id != s.meta.id => Err(Error::not_found(format!(
            "Stream {} was deleted and created again since its shards were listed; list them again",
            s.meta.name
        ))),
        _ => Ok(()),
    }
}

/// The shards whose parent or adjacent parent is `index`.
fn children(s: &StreamInfo, index: u32) -> Vec<ChildShard> {
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

/// How many times `put_records` routes records again after shards they were
/// routed to were sealed by resharding.
const RESEAL_ROUNDS_MAX: usize = 8;

async fn recv<T>(rx: flume::Receiver<Result<T, Error>>) -> Result<T, Error> {
    rx.recv_async()
        .await
        .map_err(|_| Error::internal("the engine is shutting down"))?
}

impl Engine {
    /// Starts one executor per core, opens the catalog and every shard.
    pub fn start(config: EngineConfig) -> Result<Engine, Error> {
        config.validate().map_err(Error::invalid)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::internal(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let secret = match config.iterator_secret {
            Some(s) => s,
            None => crate::secret::stored_secret(&config.data_dir)?,
        };
        let config = Arc::new(config);
        let view = Arc::new(ArcSwap::from_pointee(CatalogView::default()));
        let watch = Arc::new(ViewWatch::default());
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.cores)
            .map(|_| flume::bounded(config.core_inbox_max))
            .unzip();
        let (control_tx, control_rx) = flume::bounded(64);
        let (ready_tx, ready_rx) = flume::bounded(1);
        let mut control = Some(Control {
            config: config.clone(),
            rx: control_rx,
            cores: senders.clone(),
            view: view.clone(),
            watch: watch.clone(),
            ready: ready_tx,
            states: Default::default(),
        });
        let mut threads = Vec::new();
        let cpus = rt::available_cores();
        for (i, inbox) in receivers.into_iter().enumerate() {
            let config = config.clone();
            let control = control.take();
            let cpu = config.pin.then_some(i % cpus);
            let thread = CoreThread::start(CoreId(i), cpu, move || {
                core::run(CoreId(i), config, inbox, control)
            })
            .map_err(|e| Error::internal(e.to_string()))?;
            threads.push(thread);
        }
        ready_rx
            .recv()
            .map_err(|_| Error::internal("core 0 stopped while starting"))?
            .map_err(Error::internal)?;
        let key = IteratorKey::new(secret);
        Ok(Engine {
            shared: Arc::new(Shared {
                config,
                cores: senders,
                control: control_tx,
                view,
                watch,
                key,
                threads: std::sync::Mutex::new(threads),
                lock: std::sync::Mutex::new(Some(lock)),
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.config.limits
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Flushes every shard, stops every core and waits for them.
    pub fn shutdown(&self) -> Result<(), Error> {
        for core in &self.shared.cores {
            let (tx, rx) = flume::bounded(1);
            if core.send(CoreMsg::Shutdown { reply: tx }).is_ok() {
                let _ = rx.recv();
            }
        }
        let threads: Vec<CoreThread> = std::mem::take(&mut *self.shared.threads.lock().unwrap());
        for t in threads {
            t.join().map_err(|e| Error::internal(e.to_string()))?;
        }
        self.shared.lock.lock().unwrap().take();
        Ok(())
    }

    fn stream(&self, name: &str) -> Result<Arc<StreamInfo>, Error> {
        self.shared
            .view
            .load()
            .streams
            .get(name)
            .cloned()
            .ok_or_else(|| self.stream_not_found(name))
    }

    /// AWS's ResourceNotFoundException for a stream, naming the account.
    fn stream_not_found(&self, name: &str) -> Error {
        Error::not_found(format!(
            "Stream {name} under account {} not found.",
            self.shared.config.account
        ))
    }

    async fn ask<T>(
        &self,
        key: ShardKey,
        make: impl FnOnce(Reply<T>) -> CoreMsg,
    ) -> Result<T, Error> {
        let (tx, rx) = flume::bounded(1);
        let core = owner(key, self.shared.cores.len());
        self.shared.cores[core]
            .send_async(make(tx))
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?;
        recv(rx).await
    }

    async fn control(&self, make: impl FnOnce(Reply<()>) -> ControlMsg) -> Result<(), Error> {
        let (tx, rx) = flume::bounded(1);
        self.shared
            .control
            .send_async(make(tx))
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?;
        recv(rx).await
    }

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
    fn stream_limits(&self, stream: Option<&StreamInfo>) -> Limits {
        let kib = stream.and_then(|s| s.meta.settings.max_record_size_kib);
        Limits {
            record_data_size_max: kib.map_or(self.limits().record_data_size_max, |k| {
                k.saturating_mul(1024)
            }),
            ..self.limits().clone()
        }
    }

    /// A stream to describe and its status: also a stream being deleted (see
    /// `EngineConfig::state_delay_ms`), which takes no other operation.
    fn described(&self, name: &str) -> Result<(Arc<StreamInfo>, &'static str), Error> {
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
    fn data_stream(&self, name: &str) -> Result<Arc<StreamInfo>, Error> {
        self.data_stream_in(&self.shared.view.load(), name)
    }

    /// [`Engine::data_stream`] in a given view.
    fn data_stream_in(&self, view: &CatalogView, name: &str) -> Result<Arc<StreamInfo>, Error> {
        let s = view
            .streams
            .get(name)
            .cloned()
            .ok_or_else(|| self.stream_not_found(name))?;
        if s.status(rt::now_ms(), self.shared.config.state_delay_ms) == "CREATING" {
            return Err(self.stream_not_found(name));
        }
        Ok(s)
    }

    /// A stream's stored settings.
    pub fn settings(&self, name: &str) -> Result<riffle_store::catalog::StreamSettings, Error> {
        Ok(self.described(name)?.0.meta.settings.clone())
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

    /// Every stream's name, sorted, including streams still DELETING.
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
            .cloned()
            .collect();
        names.sort();
        names.dedup();
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
fn shard_opened(s: &StreamInfo, index: u32) -> ShardOpened {
    let shard = s.meta.shards.get(index as usize);
    ShardOpened {
        at_ms: shard
            .and_then(|sh| sh.opened_ms)
            .unwrap_or(s.meta.created_ms),
        by_reshard: shard.is_some_and(|sh| sh.parent.is_some()),
    }
}

fn shard_descriptions(s: &StreamInfo) -> Vec<ShardDescription> {
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
    async fn reshard(&self, name: &str, change: ReshardChange) -> Result<(), Error> {
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

    fn shard_of(
        s: &StreamInfo,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
    ) -> Result<(u32, Option<u128>), Error> {
        let explicit = explicit_hash_key
            .map(routing::parse_explicit_hash_key)
            .transpose()?;
        let hash = explicit.unwrap_or_else(|| routing::hash_key_of(partition_key));
        Ok((s.route(hash), explicit))
    }

    pub async fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> Result<PutResult, Error> {
        let entry = PutRecordsEntry {
            partition_key,
            explicit_hash_key,
            data,
        };
        let mut results = self
            .put_records(stream, std::slice::from_ref(&entry))
            .await?;
        results.pop().expect("one result per record")
    }

    /// Puts records; each gets its own result (AWS partial failure semantics).
    /// Records with the same partition key keep their order.
    pub async fn put_records(
        &self,
        stream: &str,
        records: &[PutRecordsEntry<'_>],
    ) -> Result<Vec<Result<PutResult, Error>>, Error> {
        let limits = self.limits();
        if records.is_empty() || records.len() > limits.put_records_count_max as usize {
            return Err(Error::invalid(format!(
                "Records must contain 1 to {} entries, got {}",
                limits.put_records_count_max,
                records.len()
            )));
        }
        let total: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        if total > limits.request_size_max as usize {
            return Err(Error::invalid(format!(
                "request of {total} bytes exceeds {}",
                limits.request_size_max
            )));
        }
        let limits = &self.stream_limits(self.shared.view.load().streams.get(stream).map(|s| &**s));
        for r in records {
            batch::check_record(r.partition_key, r.data.len(), limits).map_err(Error::invalid)?;
            if let Some(key) = r.explicit_hash_key {
                routing::parse_explicit_hash_key(key)?;
            }
        }
        let mut results: Vec<Option<Result<PutResult, Error>>> =
            (0..records.len()).map(|_| None).collect();
        // Indexes to put again (none yet: the first round puts every record).
        let mut todo: Option<Vec<usize>> = None;
        // A shard sealed for resharding refuses its records while the new view
        // is being published: wait for it and route them again (a few rounds at
        // most; each is a published reshard).
        for _round in 0..RESEAL_ROUNDS_MAX {
            let view = self.shared.view.load();
            let version = view.version;
            let s = match (self.data_stream_in(&view, stream), &todo) {
                (Ok(s), _) => s,
                (Err(e), None) => return Err(e),
                // Records of the first round landed: the rest fail one by one
                // (failing the whole request would have the client put them twice).
                (Err(e), Some(t)) => {
                    for &i in t {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            drop(view);
            let refused = match &todo {
                None => {
                    self.put_routed(&s, records, 0..records.len(), &mut results)
                        .await
                }
                Some(t) => {
                    self.put_routed(&s, records, t.iter().copied(), &mut results)
                        .await
                }
            };
            if refused.is_empty() {
                break;
            }
            todo = Some(refused);
            // Subscribe, then look: a view published in between is not missed.
            let watch = self.shared.watch.subscribe();
            if self.shared.view.load().version == version {
                let _ = watch.recv_async().await;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record has a result after its last round"))
            .collect())
    }

    /// Puts `records[todo]` with `s`'s routing into `results`; returns the
    /// indexes refused by a sealed shard (their results are that refusal).
    async fn put_routed(
        &self,
        s: &StreamInfo,
        records: &[PutRecordsEntry<'_>],
        todo: impl Iterator<Item = usize>,
        results: &mut [Option<Result<PutResult, Error>>],
    ) -> Vec<usize> {
        // Route every record, then group by shard in arrival order.
        let mut groups: Vec<(u32, Vec<usize>, Vec<RecordIn<'_>>)> = Vec::new();
        let mut refused = Vec::new();
        for i in todo {
            let r = &records[i];
            let (shard, explicit) = Self::shard_of(s, r.partition_key, r.explicit_hash_key)
                .expect("explicit hash keys were checked");
            let rec = RecordIn {
                partition_key: r.partition_key,
                explicit_hash_key: explicit.map(u128::to_le_bytes),
                data: r.data,
                arrival_ms: 0,
            };
            match groups.iter_mut().find(|g| g.0 == shard) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(rec);
                }
                None => groups.push((shard, vec![i], vec![rec])),
            }
        }
        let mut builder = BatchBuilder::new();
        let mut pending = Vec::with_capacity(groups.len());
        for (shard, indexes, recs) in &groups {
            let bytes = builder.build(recs);
            let key = (s.meta.id, *shard);
            let (tx, rx) = flume::bounded(1);
            let core = owner(key, self.shared.cores.len());
            let sent = self.shared.cores[core]
                .send_async(CoreMsg::Append {
                    key,
                    batch: bytes,
                    reply: tx,
                })
                .await;
            pending.push((*shard, indexes, sent.map(|_| rx)));
        }
        for (shard, indexes, rx) in pending {
            let outcome = match rx {
                Ok(rx) => recv(rx).await,
                Err(_) => Err(Error::internal("the engine is shutting down")),
            };
            if matches!(&outcome, Err(e) if crate::pump::is_sealed_error(e)) {
                refused.extend_from_slice(indexes);
            }
            for (j, &i) in indexes.iter().enumerate() {
                results[i] = Some(match &outcome {
                    Ok(a) => Ok(PutResult {
                        shard_id: routing::shard_id(shard),
                        sequence_number: seqno::to_string(seqno::encode(
                            shard,
                            a.base_offset + j as u64,
                        )),
                        shard_index: shard,
                        offset: a.base_offset + j as u64,
                        arrival_ms: a.arrival_ms,
                        shard_opened: shard_opened(s, shard),
                    }),
                    Err(e) => Err(e.clone()),
                });
            }
        }
        refused
    }

    /// Appends a batch built by a client (the native protocol's path): validated
    /// here, then appended as is to the given shard.
    /// `stream_id`, when given, must name the stream's current incarnation (see
    /// [`Engine::check_incarnation`]); otherwise nothing lands.
    pub async fn append_batch(
        &self,
        stream: &str,
        stream_id: Option<u64>,
        shard_index: u32,
        batch: AlignedVec<16>,
    ) -> Result<Appended, Error> {
        // Parameters are checked before existence, as AWS does.
        let s = self.data_stream(stream);
        let batch = ValidBatch::validate(batch, &self.stream_limits(s.as_deref().ok()))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let s = s?;
        check_incarnation(&s, stream_id)?;
        self.append_validated(&s, shard_index, batch).await
    }

    /// Appends a client-built batch of one record to the shard its partition key
    /// (or explicit hash key) routes to; returns that shard and the append.
    /// Validated once, like [`Engine::append_batch`].
    pub async fn append_routed(
        &self,
        stream: &str,
        batch: AlignedVec<16>,
    ) -> Result<(u32, Appended), Error> {
        let s = self.data_stream(stream);
        let batch = ValidBatch::validate(batch, &self.stream_limits(s.as_deref().ok()))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let view = batch.view();
        if view.len() != 1 {
            return Err(Error::invalid(format!(
                "a routed batch holds one record, this one {}",
                view.len()
            )));
        }
        let record = &view.records()[0];
        let hash = record
            .explicit_hash_key()
            .unwrap_or_else(|| routing::hash_key_of(record.partition_key()));
        let s = s?;
        let shard = s.route(hash);
        Ok((shard, self.append_validated(&s, shard, batch).await?))
    }

    async fn append_validated(
        &self,
        s: &StreamInfo,
        shard_index: u32,
        batch: ValidBatch,
    ) -> Result<Appended, Error> {
        self.check_shard(s, shard_index)?;
        if !s.meta.shards[shard_index as usize].is_open() {
            return Err(crate::pump::sealed_error());
        }
        let key = (s.meta.id, shard_index);
        self.ask(key, |reply| CoreMsg::Append { key, batch, reply })
            .await
    }

    /// The index of the shard a client named `shard_id` (`shardId-000000000000`),
    /// or AWS's ResourceNotFoundException.
    fn shard_index(&self, s: &StreamInfo, shard_id: &str) -> Result<u32, Error> {
        match routing::parse_shard_id(shard_id) {
            Some(index) => self.check_shard(s, index),
            None => Err(self.shard_not_found(s, shard_id)),
        }
    }

    /// `index` when `s` has that shard (open or closed), else AWS's
    /// ResourceNotFoundException.
    fn check_shard(&self, s: &StreamInfo, index: u32) -> Result<u32, Error> {
        if (index as usize) < s.meta.shards.len() {
            Ok(index)
        } else {
            Err(self.shard_not_found(s, &routing::shard_id(index)))
        }
    }

    fn shard_not_found(&self, s: &StreamInfo, shard_id: &str) -> Error {
        Error::not_found(format!(
            "Shard {shard_id} in stream {} under account {} does not exist",
            s.meta.name, self.shared.config.account
        ))
    }

    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        kind: IteratorType,
    ) -> Result<String, Error> {
        let cursor = self.shard_cursor_by_id(stream, shard_id, kind).await?;
        Ok(cursor.encode(&self.shared.key))
    }

    /// [`Engine::get_shard_iterator`] of the shard with index `shard_index` (the
    /// native protocol's name for it).
    pub async fn get_shard_iterator_at(
        &self,
        stream: &str,
        shard_index: u32,
        kind: IteratorType,
    ) -> Result<String, Error> {
        let cursor = self.shard_cursor(stream, shard_index, kind).await?;
        Ok(cursor.encode(&self.shared.key))
    }

    /// [`Engine::shard_cursor`] of the shard named `shard_id`
    /// (`shardId-000000000000`).
    pub async fn shard_cursor_by_id(
        &self,
        stream: &str,
        shard_id: &str,
        kind: IteratorType,
    ) -> Result<IteratorToken, Error> {
        let shard = self.shard_index(&*self.stream(stream)?, shard_id)?;
        self.shard_cursor(stream, shard, kind).await
    }

    /// Resolves `kind` to a position in shard `shard_index` of `stream`: the
    /// un-encoded form of a shard iterator (subscriptions keep it as their cursor).
    pub async fn shard_cursor(
        &self,
        stream: &str,
        shard_index: u32,
        kind: IteratorType,
    ) -> Result<IteratorToken, Error> {
        let s = self.data_stream(stream)?;
        let shard = self.check_shard(&s, shard_index)?;
        let key = (s.meta.id, shard);
        let position = match kind {
            IteratorType::TrimHorizon => Position::TrimHorizon,
            IteratorType::Latest => Position::Latest,
            IteratorType::AtTimestamp(t) => Position::AtTimestamp(t),
            IteratorType::AtSequenceNumber(seq) | IteratorType::AfterSequenceNumber(seq) => {
                let (seq_shard, offset) = seqno::decode(seq)?;
                if seq_shard != shard {
                    return Err(Error::invalid(format!(
                        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                        routing::shard_id(seq_shard),
                        routing::shard_id(shard)
                    )));
                }
                let after = matches!(kind, IteratorType::AfterSequenceNumber(_));
                // Offset u64::MAX is no record's: AFTER it is offset 0, the
                // sequence number "before the shard's first record"
                // (`seqno::before_first`, SubscribeToShard's continuation on a
                // shard nothing was read from yet).
                Position::Offset(offset.wrapping_add(after as u64))
            }
        };
        let offset = self
            .ask(key, |reply| CoreMsg::Position {
                key,
                position,
                reply,
            })
            .await?;
        Ok(IteratorToken {
            stream_id: s.meta.id,
            stream_name: s.meta.name.clone(),
            shard_index: shard,
            offset,
            issued_ms: rt::now_ms(),
        })
    }

    /// Reads from a shard iterator: at most `limit` records (default and maximum
    /// 10,000) and 10 MiB; an empty result at the tip still has a next iterator.
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<u32>,
    ) -> Result<GetRecordsOutput, Error> {
        let limits = self.limits();
        let token = IteratorToken::decode(
            iterator,
            &self.shared.key,
            rt::now_ms(),
            limits.iterator_age_ms_max,
        )?;
        let mut out = self.read_at(&token, limit, 0).await?;
        if out.child_shards.is_some() {
            return Ok(out);
        }
        out.next_shard_iterator = Some(
            IteratorToken {
                offset: out.read.next_offset,
                issued_ms: rt::now_ms(),
                ..token
            }
            .encode(&self.shared.key),
        );
        Ok(out)
    }

    /// Reads at `cursor` (see [`Engine::shard_cursor`]); when nothing is there yet,
    /// waits up to `wait_ms` for records to commit. The output has no next
    /// iterator: continue at [`GetRecordsOutput::next_offset`].
    pub async fn read_at(
        &self,
        cursor: &IteratorToken,
        limit: Option<u32>,
        wait_ms: u64,
    ) -> Result<GetRecordsOutput, Error> {
        let limits = self.limits();
        let count_max = limit.unwrap_or(limits.get_records_count_max);
        if count_max == 0 || count_max > limits.get_records_count_max {
            return Err(Error::invalid(format!(
                "Limit must be between 1 and {}",
                limits.get_records_count_max
            )));
        }
        // A stream deleted since (or deleted and created again) has no such
        // shard any more: AWS's words.
        let gone = || {
            Error::not_found(format!(
                "Shard {} in stream {} under account {} does not exist",
                routing::shard_id(cursor.shard_index),
                cursor.stream_name,
                self.shared.config.account
            ))
        };
        let s = self.stream(&cursor.stream_name).map_err(|e| match e.code {
            ErrorCode::ResourceNotFound => gone(),
            _ => e,
        })?;
        if s.meta.id != cursor.stream_id {
            return Err(gone());
        }
        let key = (cursor.stream_id, cursor.shard_index);
        let bytes_max = limits.get_records_bytes_max as u64;
        // A closed shard gets no more records: never wait on it.
        let end = s
            .meta
            .shards
            .get(cursor.shard_index as usize)
            .and_then(|sh| sh.closed)
            .map(|c| c.end_offset);
        let wait_ms = if end.is_some() { 0 } else { wait_ms };
        let read = self
            .ask(key, |reply| CoreMsg::Read {
                key,
                from: cursor.offset,
                count_max,
                bytes_max,
                wait_ms,
                reply,
            })
            .await?;
        let now = rt::now_ms();
        let mut out = GetRecordsOutput {
            shard_index: cursor.shard_index,
            record_count: read.spans.iter().map(|s| s.take()).sum(),
            next_shard_iterator: None,
            millis_behind_latest: 0,
            child_shards: None,
            encrypted: s.meta.settings.encryption_key.is_some(),
            shard_opened: shard_opened(&s, cursor.shard_index),
            read,
        };
        if end.is_some_and(|end| out.read.next_offset >= end) {
            out.child_shards = Some(children(&s, cursor.shard_index));
            return Ok(out);
        }
        if out.read.next_offset < out.read.visible_offset {
            let last = out
                .records()
                .last()
                .map(|r| r.arrival_ms())
                .or(out.read.tip_arrival_ms)
                .unwrap_or(now);
            out.millis_behind_latest = (now - last).max(0);
        }
        Ok(out)
    }

    /// Number of cores (executors) the engine runs.
    pub fn core_count(&self) -> usize {
        self.shared.cores.len()
    }

    /// Runs `task` on core `core` (it may spawn local tasks there, e.g. an accept
    /// loop). Errors when the engine is shutting down.
    pub fn run_on_core(
        &self,
        core: usize,
        task: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        self.shared.cores[core]
            .send(CoreMsg::Spawn(Box::new(task)))
            .map_err(|_| Error::internal("the engine is shutting down"))
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cores", &self.shared.cores.len())
            .finish()
    }
}
