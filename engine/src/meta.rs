//! A service's metadata on the running engine: its [`MetaLog`] lives on core 0
//! (one writer, as the streams catalog), changes arrive from any core as
//! messages, and every core reads the last published state without a lock.
//!
//! [`MetaHandle::open`] opens (replays) `<data-dir>/meta/<service>/` on core 0;
//! [`MetaHandle::apply`] sends an event there, where the log checks it, makes it
//! durable (fdatasync) and applies it, then publishes the new state before the
//! caller hears Ok: a change is visible to every core once acknowledged, and
//! never before it is on disk. A service keeps its own runtime state (buffers,
//! tasks) beside this; only what must survive a restart goes through the log.

use std::sync::Arc;

use arc_swap::ArcSwap;
use riffle_protocol::Error;
use riffle_store::metalog::{MetaLog, StateMachine};

use crate::Engine;
use crate::rt::{self, dma::DmaStorage};

/// Changes waiting for core 0; a full inbox makes senders wait.
pub const META_INBOX_MAX: usize = 256;

/// Events between snapshots of a service's metadata log.
pub const META_SNAPSHOT_EVERY: u32 = 256;

struct Change<S: StateMachine> {
    event: S::Event,
    reply: flume::Sender<Result<(), Error>>,
}

/// A handle on one service's durable metadata. Cheap to clone; `Send + Sync`.
pub struct MetaHandle<S: StateMachine> {
    inbox: flume::Sender<Change<S>>,
    view: Arc<ArcSwap<S>>,
}

impl<S: StateMachine> Clone for MetaHandle<S> {
    fn clone(&self) -> Self {
        MetaHandle {
            inbox: self.inbox.clone(),
            view: self.view.clone(),
        }
    }
}

impl<S> MetaHandle<S>
where
    S: StateMachine + Clone + Send + Sync + 'static,
    S::Event: Send + 'static,
{
    /// Opens the service's metadata log on core 0 and waits until it has been
    /// replayed. Blocks: call it while wiring the server, not on a core.
    pub fn open(engine: &Engine, service: &'static str) -> Result<MetaHandle<S>, Error> {
        let (inbox, rx) = flume::bounded::<Change<S>>(META_INBOX_MAX);
        let view = Arc::new(ArcSwap::from_pointee(S::default()));
        let (ready_tx, ready_rx) = flume::bounded(1);
        let data_dir = engine.config().data_dir.clone();
        let published = view.clone();
        engine.run_on_core(0, move || {
            rt::spawn(async move {
                let opened = MetaLog::<S, DmaStorage>::open_service(
                    DmaStorage,
                    &data_dir,
                    service,
                    META_SNAPSHOT_EVERY,
                )
                .await;
                let mut log = match opened {
                    Ok(log) => log,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::internal(format!(
                            "cannot open the {service} metadata log: {e}"
                        ))));
                        return;
                    }
                };
                published.store(Arc::new(log.state().clone()));
                let _ = ready_tx.send(Ok(()));
                // Ends when every handle is gone (or with the core).
                while let Ok(change) = rx.recv_async().await {
                    let result = log.apply(change.event).await;
                    if result.is_ok() {
                        published.store(Arc::new(log.state().clone()));
                    }
                    let _ = change.reply.send(result);
                }
            })
        })?;
        ready_rx.recv().map_err(|_| {
            Error::internal(format!("core 0 stopped opening {service}'s metadata"))
        })??;
        Ok(MetaHandle { inbox, view })
    }

    /// The state as of the last acknowledged change.
    pub fn state(&self) -> Arc<S> {
        self.view.load_full()
    }

    /// Checks `event` against the current state, makes it durable and applies
    /// it; the state's own refusal (`StateMachine::check`) is the error.
    pub async fn apply(&self, event: S::Event) -> Result<(), Error> {
        let (reply, answer) = flume::bounded(1);
        self.inbox
            .send_async(Change { event, reply })
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?;
        answer
            .recv_async()
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?
    }
}
