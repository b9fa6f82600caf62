//! The control plane: the stream catalog, on core 0.
//!
//! Creates and deletes streams: persists the event in the catalog's metadata log
//! (durable before visible), opens or closes the shards on their owning cores, then
//! publishes a new read-only [`CatalogView`] that every core and the [`Engine`]
//! handle read without locks. Never blocks the data plane: it only sends messages.
//!
//! [`Engine`]: crate::Engine

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use riffle_protocol::Error;
use riffle_protocol::routing;
use riffle_store::catalog::{Catalog, CatalogEvent, SettingsChange, ShardMeta, StreamMeta};
use riffle_store::reshard;

use crate::config::EngineConfig;
use crate::core::{CoreMsg, ShardKey};
use crate::pump::Reply;
use crate::rt::dma::DmaStorage;

/// A stream as the data plane sees it.
#[derive(Debug)]
pub struct StreamInfo {
    pub meta: StreamMeta,
    /// Inclusive hash-key ranges of the open shards, sorted (they cover the key
    /// space once); `route_shards[i]` is the index of the shard owning `routes[i]`.
    pub routes: Vec<(u128, u128)>,
    pub route_shards: Vec<u32>,
    /// The stream reports UPDATING until then (see `EngineConfig::state_delay_ms`).
    pub updating_until_ms: i64,
    /// Its CloudWatch metrics (kept across publications of the catalog).
    pub metrics: Arc<crate::stream_metrics::StreamMetrics>,
}

impl StreamInfo {
    pub fn new(meta: StreamMeta) -> StreamInfo {
        let mut open: Vec<&riffle_store::catalog::ShardMeta> =
            meta.shards.iter().filter(|s| s.is_open()).collect();
        open.sort_by_key(|s| s.hash_key_start);
        StreamInfo {
            routes: open
                .iter()
                .map(|s| (s.hash_key_start, s.hash_key_end))
                .collect(),
            route_shards: open.iter().map(|s| s.index).collect(),
            updating_until_ms: 0,
            metrics: Arc::default(),
            meta,
        }
    }

    /// CREATING for `delay_ms` after creation, UPDATING until
    /// `updating_until_ms`, else ACTIVE.
    pub fn status(&self, now_ms: i64, delay_ms: u64) -> &'static str {
        if now_ms < self.meta.created_ms.saturating_add(delay_ms as i64) {
            "CREATING"
        } else if now_ms < self.updating_until_ms {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }

    /// The open shard a hash key routes to.
    pub fn route(&self, hash_key: u128) -> u32 {
        self.route_shards[routing::route(&self.routes, hash_key)]
    }
}

/// Wakes whoever waits for the next [`CatalogView`] publication (a put refused by
/// a shard sealed for resharding waits for the view that routes around it).
#[derive(Debug, Default)]
pub struct ViewWatch {
    waiters: std::sync::Mutex<Vec<flume::Sender<()>>>,
}

impl ViewWatch {
    /// A receiver that gets a message at the next publication. Subscribe, then
    /// check the version, then wait: no publication is missed.
    pub fn subscribe(&self) -> flume::Receiver<()> {
        let (tx, rx) = flume::bounded(1);
        self.waiters.lock().expect("not poisoned").push(tx);
        rx
    }

    fn published(&self) {
        for tx in std::mem::take(&mut *self.waiters.lock().expect("not poisoned")) {
            let _ = tx.try_send(());
        }
    }
}

/// How a reshard changes a stream's shards.
#[derive(Clone, Copy, Debug)]
pub enum ReshardChange {
    Split { shard: u32, new_start: u128 },
    Merge { shard: u32, adjacent: u32 },
    Uniform { target: u32 },
}

/// A published, immutable version of the catalog.
#[derive(Debug, Default)]
pub struct CatalogView {
    pub version: u64,
    pub streams: BTreeMap<String, Arc<StreamInfo>>,
    /// Streams deleted less than `EngineConfig::state_delay_ms` ago: described
    /// and listed as DELETING until the time given, otherwise gone.
    pub deleting: BTreeMap<String, (Arc<StreamInfo>, i64)>,
    pub account: riffle_store::catalog::AccountSettings,
}

/// The core that owns a shard.
pub fn owner(key: ShardKey, cores: usize) -> usize {
    ((key.0 as usize).wrapping_add(key.1 as usize)) % cores
}

pub fn stream_dir(data_dir: &Path, stream_id: u64) -> PathBuf {
    data_dir.join("streams").join(stream_id.to_string())
}

pub fn shard_dir(data_dir: &Path, stream_id: u64, shard_index: u32) -> PathBuf {
    stream_dir(data_dir, stream_id).join(routing::shard_id(shard_index))
}

/// Control-plane requests.
pub enum ControlMsg {
    CreateStream {
        name: String,
        shard_count: u32,
        created_ms: i64,
        reply: Reply<()>,
    },
    DeleteStream {
        name: String,
        reply: Reply<()>,
    },
    SetRetention {
        name: String,
        retention_hours: u32,
        reply: Reply<()>,
    },
    /// A catalog event that only changes stream metadata (tags, settings):
    /// applied atomically, then published; no core is involved.
    Metadata {
        event: CatalogEvent,
        reply: Reply<()>,
    },
    /// SplitShard, MergeShards, UpdateShardCount.
    Reshard {
        name: String,
        change: ReshardChange,
        reply: Reply<()>,
    },
}

/// The control task's state.
pub struct Control {
    pub config: Arc<EngineConfig>,
    pub rx: flume::Receiver<ControlMsg>,
    pub cores: Vec<flume::Sender<CoreMsg>>,
    pub view: Arc<ArcSwap<CatalogView>>,
    pub watch: Arc<ViewWatch>,
    pub ready: flume::Sender<Result<(), String>>,
    /// Transient states (not in the catalog: a restart makes every stream ACTIVE).
    pub states: std::cell::RefCell<TransientStates>,
}

/// Streams UPDATING (until when) and DELETING (their last view, until when).
#[derive(Default)]
pub struct TransientStates {
    updating: BTreeMap<String, i64>,
    deleting: BTreeMap<String, (Arc<StreamInfo>, i64)>,
}

impl Control {
    async fn ask<T>(
        &self,
        core: usize,
        make: impl FnOnce(Reply<T>) -> CoreMsg,
    ) -> Result<T, Error> {
        let (tx, rx) = flume::bounded(1);
        self.cores[core]
            .send_async(make(tx))
            .await
            .map_err(|_| Error::internal("core stopped"))?;
        rx.recv_async()
            .await
            .map_err(|_| Error::internal("core stopped"))?
    }

    async fn open_stream(&self, meta: &StreamMeta) -> Result<(), Error> {
        for shard in &meta.shards {
            self.open_shard(meta, shard).await?;
        }
        Ok(())
    }

    async fn open_shard(&self, meta: &StreamMeta, shard: &ShardMeta) -> Result<(), Error> {
        let key = (meta.id, shard.index);
        let dir = shard_dir(&self.config.data_dir, meta.id, shard.index);
        let retention_ms = meta.retention_hours as i64 * 3_600_000;
        self.ask(owner(key, self.cores.len()), |reply| CoreMsg::OpenShard {
            key,
            stream: meta.name.as_str().into(),
            dir,
            retention_ms,
            sealed: !shard.is_open(),
            reply,
        })
        .await
    }

    fn delay_ms(&self) -> i64 {
        self.config.state_delay_ms as i64
    }

    /// The stream's status in the published view (None: no such stream).
    fn status(&self, name: &str) -> Option<&'static str> {
        let view = self.view.load();
        let now = crate::rt::now_ms();
        if let Some(s) = view.streams.get(name) {
            return Some(s.status(now, self.config.state_delay_ms));
        }
        view.deleting
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|_| "DELETING")
    }

    fn mark_updating(&self, name: &str) {
        if self.delay_ms() > 0 {
            let until = crate::rt::now_ms() + self.delay_ms();
            self.states
                .borrow_mut()
                .updating
                .insert(name.to_string(), until);
        }
    }

    async fn seal(&self, stream_id: u64, index: u32, seal: bool) -> Result<u64, Error> {
        let key = (stream_id, index);
        self.ask(owner(key, self.cores.len()), |reply| CoreMsg::Seal {
            key,
            seal,
            reply,
        })
        .await
    }

    /// Plans the reshard, seals the shards it closes (everything appended to them
    /// is durable and later appends are refused), logs the event with their
    /// lengths, then opens the new shards. The caller publishes the new view
    /// either way: puts refused by a seal wait for it.
    async fn reshard(
        &self,
        catalog: &mut Catalog<DmaStorage>,
        name: &str,
        change: ReshardChange,
    ) -> Result<(), Error> {
        let meta = catalog.state().get(name).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "Stream {name} under account {} not found.",
                self.config.account
            ))
        })?;
        let plan = match change {
            ReshardChange::Split { shard, new_start } => {
                reshard::split(&meta, shard, new_start, &self.config.account)
            }
            ReshardChange::Merge { shard, adjacent } => {
                reshard::merge(&meta, shard, adjacent, &self.config.account)
            }
            ReshardChange::Uniform { target } => reshard::uniform(&meta, target),
        }?;
        match self.status(name) {
            Some("ACTIVE") | None => {}
            Some(status) => {
                return Err(Error::in_use(format!(
                    "Stream {name} under account {} not ACTIVE, instead in state {status}",
                    self.config.account
                )));
            }
        }
        if plan.is_empty() {
            return Ok(());
        }
        let at_ms = crate::rt::now_ms();
        // Validity does not depend on the lengths: check before sealing anything
        // (with the longest lengths, so the event's size is checked too).
        catalog.state().check(
            &plan.event(name, at_ms, |_| u64::MAX),
            &self.config.limits,
            &self.config.account,
        )?;
        // The sealed shards' lengths, in plan order.
        let mut lengths = Vec::with_capacity(plan.closes.len());
        let mut result = Ok(());
        for &index in &plan.closes {
            match self.seal(meta.id, index, true).await {
                Ok(end_offset) => lengths.push(end_offset),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            let mut lengths = lengths.iter();
            let event = plan.event(name, at_ms, |_| *lengths.next().expect("one per seal"));
            result = catalog.apply(event, &self.config.limits).await.map(|_| ());
        }
        if let Err(e) = result {
            // A catalog that failed while writing may hold the event: its parents
            // stay sealed (a restart replays it and they are closed at these
            // lengths). Otherwise nothing was recorded: they take appends again.
            if catalog.poisoned().is_none() {
                for &index in &plan.closes[..lengths.len()] {
                    let _ = self.seal(meta.id, index, false).await;
                }
            }
            return Err(e);
        }
        self.mark_updating(name);
        let after = catalog.state().get(name).cloned().expect("just resharded");
        // Open every child even if one fails (a restart opens what failed here).
        let mut opened = Ok(());
        for shard in &after.shards[meta.shards.len()..] {
            if let Err(e) = self.open_shard(&after, shard).await {
                tracing::error!(error = %e, shard = shard.index, "cannot open a new shard");
                opened = Err(e);
            }
        }
        opened
    }

    fn publish(&self, catalog: &Catalog<DmaStorage>) {
        let now = crate::rt::now_ms();
        let mut states = self.states.borrow_mut();
        states.updating.retain(|_, until| *until > now);
        states.deleting.retain(|_, (_, until)| *until > now);
        let before = self.view.load();
        let streams = catalog
            .state()
            .list()
            .map(|m| {
                let mut info = StreamInfo::new(m.clone());
                info.updating_until_ms = states.updating.get(&m.name).copied().unwrap_or(0);
                // The same incarnation keeps its counts.
                if let Some(was) = before.streams.get(&m.name).filter(|s| s.meta.id == m.id) {
                    info.metrics = was.metrics.clone();
                }
                (m.name.clone(), Arc::new(info))
            })
            .collect();
        let version = before.version + 1;
        self.view.store(Arc::new(CatalogView {
            version,
            streams,
            deleting: states.deleting.clone(),
            account: catalog.state().account().clone(),
        }));
        self.watch.published();
    }

    /// Opens the catalog and every shard, signals ready, then serves requests.
    pub async fn run(self) {
        let dir = self.config.data_dir.join("catalog");
        let mut catalog =
            match Catalog::open(DmaStorage, &dir, self.config.catalog_snapshot_every).await {
                Ok(c) => c.with_account(self.config.account.clone()),
                Err(e) => {
                    let _ = self
                        .ready
                        .send(Err(format!("cannot open the catalog: {e}")));
                    return;
                }
            };
        let metas: Vec<StreamMeta> = catalog.state().list().cloned().collect();
        for meta in &metas {
            if let Err(e) = self.open_stream(meta).await {
                let _ = self
                    .ready
                    .send(Err(format!("cannot open stream {}: {e}", meta.name)));
                return;
            }
        }
        // Remove the data of streams deleted before a crash finished removing it.
        let live: Vec<String> = metas.iter().map(|m| m.id.to_string()).collect();
        if let Ok(entries) = std::fs::read_dir(self.config.data_dir.join("streams")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !live.contains(&name) {
                    tracing::info!(stream_id = %name, "removing data of a deleted stream");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.publish(&catalog);
        let _ = self.ready.send(Ok(()));
        while let Ok(msg) = self.rx.recv_async().await {
            match msg {
                ControlMsg::CreateStream {
                    name,
                    shard_count,
                    created_ms,
                    reply,
                } => {
                    let event = CatalogEvent::CreateStream {
                        name: name.clone(),
                        shard_count,
                        retention_hours: self.config.limits.retention_hours_default,
                        created_ms,
                    };
                    let applied = match self.status(&name) {
                        Some("DELETING") => Err(Error::in_use(format!(
                            "Stream {name} under account {} is being deleted; create it again once it is gone",
                            self.config.account
                        ))),
                        _ => catalog.apply(event, &self.config.limits).await,
                    };
                    let result = match applied {
                        Ok(_) => {
                            let meta = catalog.state().get(&name).cloned().expect("just created");
                            let r = self.open_stream(&meta).await;
                            self.publish(&catalog);
                            r
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                ControlMsg::DeleteStream { name, reply } => {
                    let meta = catalog.state().get(&name).cloned();
                    // AWS deletes a stream in any state, CREATING included
                    // (recorded by kinesalite's suite: 200, then DELETING).
                    let applied = catalog
                        .apply(
                            CatalogEvent::DeleteStream { name: name.clone() },
                            &self.config.limits,
                        )
                        .await;
                    let result = match applied {
                        Ok(_) => {
                            if self.delay_ms() > 0
                                && let Some(info) = self.view.load().streams.get(&name)
                            {
                                let until = crate::rt::now_ms() + self.delay_ms();
                                self.states
                                    .borrow_mut()
                                    .deleting
                                    .insert(name.clone(), (info.clone(), until));
                            }
                            self.states.borrow_mut().updating.remove(&name);
                            self.publish(&catalog);
                            let meta = meta.expect("deleted stream existed");
                            let mut result = Ok(());
                            for shard in &meta.shards {
                                let key = (meta.id, shard.index);
                                if let Err(e) = self
                                    .ask(owner(key, self.cores.len()), |reply| {
                                        CoreMsg::CloseShard { key, reply }
                                    })
                                    .await
                                {
                                    result = Err(e);
                                }
                            }
                            let _ =
                                std::fs::remove_dir_all(stream_dir(&self.config.data_dir, meta.id));
                            result
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                ControlMsg::SetRetention {
                    name,
                    retention_hours,
                    reply,
                } => {
                    let event = CatalogEvent::SetRetention {
                        name: name.clone(),
                        retention_hours,
                    };
                    let result = catalog.apply(event, &self.config.limits).await.map(|_| ());
                    if result.is_ok() {
                        let meta = catalog.state().get(&name).cloned().expect("exists");
                        for shard in &meta.shards {
                            let key = (meta.id, shard.index);
                            let retention_ms = retention_hours as i64 * 3_600_000;
                            let _ = self.cores[owner(key, self.cores.len())]
                                .send_async(CoreMsg::SetRetention { key, retention_ms })
                                .await;
                        }
                        self.publish(&catalog);
                    }
                    let _ = reply.send(result);
                }
                ControlMsg::Reshard {
                    name,
                    change,
                    reply,
                } => {
                    let result = self.reshard(&mut catalog, &name, change).await;
                    self.publish(&catalog);
                    let _ = reply.send(result);
                }
                ControlMsg::Metadata { event, reply } => {
                    // AWS reports these as UPDATING for a while.
                    let updates = matches!(
                        &event,
                        CatalogEvent::ChangeSettings {
                            change: SettingsChange::Encryption { .. } | SettingsChange::Mode { .. },
                            ..
                        }
                    );
                    let name = event.name().to_string();
                    let result = catalog.apply(event, &self.config.limits).await.map(|_| ());
                    if result.is_ok() {
                        if updates {
                            self.mark_updating(&name);
                        }
                        self.publish(&catalog);
                    }
                    let _ = reply.send(result);
                }
            }
        }
        // Nothing will be published any more: wake whoever still waits.
        self.watch.published();
    }
}
