//! The engine's Rust API: what the network gateways (and tests, benches) call.
//!
//! [`Engine`] is `Send + Sync`; its methods validate input against `Limits`,
//! route by hash key to the owning core, and await the reply. AWS semantics:
//! routing by MD5 of the partition key or by ExplicitHashKey, sequence numbers as
//! decimal strings, shard iterators as authenticated tokens that expire after five
//! minutes, GetRecords limits of 10,000 records / 10 MiB.

mod records;
mod streams;
mod types;

pub use types::*;

use std::sync::Arc;

use arc_swap::ArcSwap;
use riffle_protocol::{Error, Limits};
use riffle_store::iterator::IteratorKey;

use crate::config::EngineConfig;
use crate::control::{CatalogView, Control, ControlMsg, StreamInfo, ViewWatch, owner};
use crate::core::{self, CoreMsg, ShardKey};
use crate::pump::Reply;
use crate::rt::{self, CoreId, CoreThread};

struct Shared {
    config: Arc<EngineConfig>,
    cores: Vec<flume::Sender<CoreMsg>>,
    control: flume::Sender<ControlMsg>,
    view: Arc<ArcSwap<CatalogView>>,
    watch: Arc<ViewWatch>,
    key: IteratorKey,
    /// Encryption at rest's KMS (`EngineConfig::kms`, else one without keys).
    kms: Arc<crate::kms::Kms>,
    /// Each core's own metrics (`engine_metrics`).
    core_metrics: Vec<Arc<crate::engine_metrics::CoreMetrics>>,
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

pub(super) async fn recv<T>(rx: flume::Receiver<Result<T, Error>>) -> Result<T, Error> {
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
        let core_metrics: Vec<Arc<crate::engine_metrics::CoreMetrics>> =
            (0..config.cores).map(|_| Arc::default()).collect();
        for (i, inbox) in receivers.into_iter().enumerate() {
            let config = config.clone();
            let control = control.take();
            let cpu = config.pin.then_some(i % cpus);
            let metrics = core_metrics[i].clone();
            let thread = CoreThread::start(CoreId(i), cpu, move || {
                crate::engine_metrics::set_current(metrics);
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
        let kms = config
            .kms
            .clone()
            .unwrap_or_else(|| crate::kms::Kms::unconfigured(&config.account, "us-east-1"));
        let engine = Engine {
            shared: Arc::new(Shared {
                config,
                cores: senders,
                control: control_tx,
                view,
                watch,
                key,
                kms,
                core_metrics,
                threads: std::sync::Mutex::new(threads),
                lock: std::sync::Mutex::new(Some(lock)),
            }),
        };
        engine.upgrade_encryption();
        Ok(engine)
    }

    /// Each core's own metrics.
    pub fn core_metrics(&self) -> &[Arc<crate::engine_metrics::CoreMetrics>] {
        &self.shared.core_metrics
    }

    /// Every open shard's own counters (shard-level metrics), by (stream id,
    /// shard index).
    pub fn shard_counters(&self) -> Vec<((u64, u32), Arc<crate::engine_metrics::ShardCounters>)> {
        let mut out: Vec<_> = self
            .shared
            .core_metrics
            .iter()
            .flat_map(|m| {
                m.shard_counters
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(k, c)| (*k, c.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Messages queued in each core's inbox now.
    pub fn inbox_depths(&self) -> Vec<usize> {
        self.shared.cores.iter().map(|c| c.len()).collect()
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

    /// Number of cores (executors) the engine runs.
    pub fn core_count(&self) -> usize {
        self.shared.cores.len()
    }

    /// [`Engine::run_on_core`] from a task on a core: waits for room in the
    /// target core's inbox without blocking this core (the blocking form could
    /// stall it, or deadlock when the target is this core and its inbox is full).
    pub async fn run_on_core_async(
        &self,
        core: usize,
        task: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        self.shared.cores[core]
            .send_async(CoreMsg::Spawn(Box::new(task)))
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))
    }

    /// Runs `task` on core `core` (it may spawn local tasks there, e.g. an accept
    /// loop). Errors when the engine is shutting down. Blocks while the core's
    /// inbox is full: call it off the cores (from a core: `run_on_core_async`).
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
