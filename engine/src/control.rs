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
use riffle_store::catalog::{Catalog, CatalogEvent, StreamMeta};
use riffle_store::routing;

use crate::config::EngineConfig;
use crate::core::{CoreMsg, ShardKey};
use crate::pump::Reply;
use crate::rt::dma::DmaStorage;

/// A stream as the data plane sees it.
#[derive(Debug)]
pub struct StreamInfo {
    pub meta: StreamMeta,
    /// Inclusive hash-key range of each shard, by shard index.
    pub ranges: Vec<(u128, u128)>,
}

/// A published, immutable version of the catalog.
#[derive(Debug, Default)]
pub struct CatalogView {
    pub version: u64,
    pub streams: BTreeMap<String, Arc<StreamInfo>>,
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
}

/// The control task's state.
pub struct Control {
    pub config: Arc<EngineConfig>,
    pub rx: flume::Receiver<ControlMsg>,
    pub cores: Vec<flume::Sender<CoreMsg>>,
    pub view: Arc<ArcSwap<CatalogView>>,
    pub ready: flume::Sender<Result<(), String>>,
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
            let key = (meta.id, shard.index);
            let dir = shard_dir(&self.config.data_dir, meta.id, shard.index);
            let retention_ms = meta.retention_hours as i64 * 3_600_000;
            self.ask(owner(key, self.cores.len()), |reply| CoreMsg::OpenShard {
                key,
                dir,
                retention_ms,
                reply,
            })
            .await?;
        }
        Ok(())
    }

    fn publish(&self, catalog: &Catalog<DmaStorage>) {
        let streams = catalog
            .state()
            .list()
            .map(|m| {
                let ranges = m
                    .shards
                    .iter()
                    .map(|s| (s.hash_key_start, s.hash_key_end))
                    .collect();
                (
                    m.name.clone(),
                    Arc::new(StreamInfo {
                        meta: m.clone(),
                        ranges,
                    }),
                )
            })
            .collect();
        let version = self.view.load().version + 1;
        self.view.store(Arc::new(CatalogView {
            version,
            streams,
            account: catalog.state().account().clone(),
        }));
    }

    /// Opens the catalog and every shard, signals ready, then serves requests.
    pub async fn run(self) {
        let dir = self.config.data_dir.join("catalog");
        let mut catalog =
            match Catalog::open(DmaStorage, &dir, self.config.catalog_snapshot_every).await {
                Ok(c) => c,
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
                    let result = match catalog.apply(event, &self.config.limits).await {
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
                    let result = match catalog
                        .apply(CatalogEvent::DeleteStream { name }, &self.config.limits)
                        .await
                    {
                        Ok(_) => {
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
                ControlMsg::Metadata { event, reply } => {
                    let result = catalog.apply(event, &self.config.limits).await.map(|_| ());
                    if result.is_ok() {
                        self.publish(&catalog);
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }
}
