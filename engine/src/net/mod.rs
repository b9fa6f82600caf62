//! The native protocol server: every core binds the same port (SO_REUSEPORT)
//! and serves the connections it accepts; requests are decoded on the accepting
//! core and reach the owning cores through [`Engine`].
//!
//! - `conn.rs`: one connection: frame reader, reply writer, backpressure.
//! - `dispatch.rs`: one request → one engine call → one reply (and subscriptions).
//! - `extension.rs`: the operations of services beside Kinesis (Firehose), which
//!   the binary registers ([`Extension`], [`NativeServer::start_with`]).
//!
//! Bounds: `NetConfig::connection_inflight_max` requests per connection,
//! `core_memory_bytes_max` bytes of request and reply frames per core (a reader
//! waits for budget before it allocates a frame), `connection_out_frames_max`
//! replies and `connection_out_bytes_max` bytes queued per connection (a slow
//! reader stalls its own requests and subscriptions, never server memory),
//! `connections_per_core_max`.
//!
//! Shutdown ([`NativeServer::shutdown`]): stop accepting, stop reading new
//! requests, end subscriptions, finish in-flight requests and write their
//! replies, then close. The engine is shut down after that by its owner.

mod audit;
pub mod auth;
mod conn;
mod dispatch;
mod extension;

pub use extension::{Answer, EXTENSION_APIS, Extension, Extensions, LocalFuture};

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use riffle_protocol::native::response_frame_size_max;
use riffle_protocol::{Error, Limits};

use crate::Engine;
use crate::notify::Notify;
use crate::rt::{self, net::Listener};

/// Settings of the native protocol server.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub listen: SocketAddr,
    /// Requests one connection may have in flight; its reader waits beyond that.
    pub connection_inflight_max: u64,
    /// Subscriptions one connection may hold open.
    pub connection_subscriptions_max: usize,
    /// Reply frames queued for one connection's writer.
    pub connection_out_frames_max: usize,
    /// Reply bytes queued for one connection's writer (a frame larger than this
    /// waits until the queue is empty).
    pub connection_out_bytes_max: u64,
    /// Bytes of request and reply frames alive on one core.
    pub core_memory_bytes_max: u64,
    /// Connections one core serves at once; further ones are closed on accept.
    pub connections_per_core_max: usize,
    /// A subscription waits this long for new records before checking whether it
    /// was cancelled (and the server is stopping).
    pub subscription_wait_ms: u64,
    /// The addresses connections are taken from (`--allow`); `None`: any.
    pub allow: Option<crate::allow::AllowList>,
    /// Access keys and policies when the server checks signatures
    /// (`auth::NativeAuth`); `None`: connections need not authenticate.
    pub auth: Option<auth::NativeAuth>,
    /// TLS on the native port: a certificate chain and its key (PEM).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// With `tls`: clients must present a certificate signed by one of these.
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// The audit trail native calls are recorded in (as the HTTP API's).
    pub trail: Option<std::sync::Arc<crate::http::Trail>>,
}

impl NetConfig {
    pub fn new(listen: SocketAddr) -> NetConfig {
        NetConfig {
            listen,
            connection_inflight_max: 128,
            connection_subscriptions_max: 64,
            connection_out_frames_max: 64,
            connection_out_bytes_max: 16 << 20,
            core_memory_bytes_max: 512 << 20,
            connections_per_core_max: 16_384,
            subscription_wait_ms: 200,
            allow: None,
            auth: None,
            tls: None,
            tls_client_ca: None,
            trail: None,
        }
    }

    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        let reply_max = response_frame_size_max(limits) as u64;
        if self.core_memory_bytes_max < 2 * reply_max {
            return Err(format!(
                "core_memory_bytes_max ({}) must hold at least two of the largest replies ({reply_max} bytes each)",
                self.core_memory_bytes_max
            ));
        }
        if self.connection_inflight_max == 0 || self.connection_out_frames_max == 0 {
            return Err(
                "connection_inflight_max and connection_out_frames_max must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one core's server shares between its connections. Lives on that core.
struct CoreServer {
    engine: Engine,
    config: NetConfig,
    limits: Limits,
    /// Bytes of frames alive on this core.
    budget: rt::Semaphore,
    stopping: Cell<bool>,
    stop: Notify,
    connections: Cell<usize>,
    /// Bumped when a connection closes (shutdown waits for zero).
    closed: Notify,
    /// The registered extensions; replaced whole by `NativeServer::extend`
    /// (a call in flight keeps the set it started with).
    extensions: RefCell<Rc<Extensions>>,
    /// The TLS handshake of every connection, when the port serves TLS.
    tls: Option<futures_rustls::TlsAcceptor>,
}

thread_local! {
    static CORE_SERVER: RefCell<Option<Rc<CoreServer>>> = const { RefCell::new(None) };
}

/// A running native protocol server. Stop it with [`NativeServer::shutdown`]
/// before shutting the engine down.
pub struct NativeServer {
    engine: Engine,
    addr: SocketAddr,
}

impl NativeServer {
    /// Binds `config.listen` on every core and starts accepting.
    pub fn start(engine: &Engine, config: NetConfig) -> Result<NativeServer, Error> {
        NativeServer::start_with(engine, config, Extensions::new())
    }

    /// [`NativeServer::start`] with services' native operations.
    pub fn start_with(
        engine: &Engine,
        config: NetConfig,
        extensions: Extensions,
    ) -> Result<NativeServer, Error> {
        config.validate(engine.limits()).map_err(Error::invalid)?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(
                crate::http::tls::acceptor_for(cert, key, config.tls_client_ca.as_deref(), vec![])
                    .map_err(|e| Error::invalid(format!("native TLS: {e}")))?,
            ),
            None => None,
        };
        let addr = rt::net::reserve(config.listen)
            .map_err(|e| Error::in_use(format!("cannot listen on {}: {e}", config.listen)))?;
        for core in 0..engine.core_count() {
            let (tx, rx) = flume::bounded(1);
            let (engine2, config) = (engine.clone(), config.clone());
            let (extensions, tls) = (extensions.clone(), tls.clone());
            engine.run_on_core(core, move || {
                let _ = tx.send(start_core(engine2, config, addr, extensions, tls));
            })?;
            rx.recv()
                .map_err(|_| Error::internal(format!("core {core} stopped while starting")))?
                .map_err(|e| Error::in_use(format!("cannot listen on {addr}: {e}")))?;
        }
        tracing::info!(%addr, cores = engine.core_count(), "native protocol listening");
        Ok(NativeServer {
            engine: engine.clone(),
            addr,
        })
    }

    /// Registers an extension on a running server (for a service started after
    /// it). Until this returns, its apis are answered as unserved
    /// (InvalidArgument); prefer [`NativeServer::start_with`] when the service
    /// can start first. Panics as [`Extensions::register`] does.
    pub fn extend(&self, extension: std::sync::Arc<dyn Extension>) -> Result<(), Error> {
        for core in 0..self.engine.core_count() {
            let (tx, rx) = flume::bounded::<()>(1);
            let extension = extension.clone();
            self.engine.run_on_core(core, move || {
                CORE_SERVER.with(|s| {
                    if let Some(server) = s.borrow().as_ref() {
                        let mut next = Extensions::clone(&server.extensions.borrow());
                        next.register(extension);
                        *server.extensions.borrow_mut() = Rc::new(next);
                    }
                });
                let _ = tx.send(());
            })?;
            rx.recv()
                .map_err(|_| Error::internal(format!("core {core} stopped while extending")))?;
        }
        Ok(())
    }

    /// The address the server listens on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and reading, ends subscriptions, finishes in-flight
    /// requests and writes their replies; waits at most `grace` per core.
    pub fn shutdown(&self, grace: Duration) {
        let mut waits = Vec::new();
        for core in 0..self.engine.core_count() {
            let (tx, rx) = flume::bounded::<()>(1);
            let sent = self.engine.run_on_core(core, move || {
                let Some(server) = CORE_SERVER.with(|s| s.borrow_mut().take()) else {
                    return;
                };
                server.stopping.set(true);
                server.stop.notify();
                rt::spawn(async move {
                    while server.connections.get() > 0 {
                        server.closed.changed(server.closed.version()).await;
                    }
                    let _ = tx.send(());
                });
            });
            if sent.is_ok() {
                waits.push(rx);
            }
        }
        let deadline = std::time::Instant::now() + grace;
        for rx in waits {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rx.recv_timeout(left).is_err() {
                tracing::warn!("connections still open after the shutdown grace period");
            }
        }
        tracing::info!("native protocol server stopped");
    }
}

fn start_core(
    engine: Engine,
    config: NetConfig,
    addr: SocketAddr,
    extensions: Extensions,
    tls: Option<futures_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let listener = Listener::bind(addr)?;
    let limits = engine.limits().clone();
    let server = Rc::new(CoreServer {
        budget: rt::Semaphore::new(config.core_memory_bytes_max),
        engine,
        config,
        limits,
        stopping: Cell::new(false),
        stop: Notify::new(),
        connections: Cell::new(0),
        closed: Notify::new(),
        extensions: RefCell::new(Rc::new(extensions)),
        tls,
    });
    CORE_SERVER.with(|s| *s.borrow_mut() = Some(server.clone()));
    rt::spawn(accept_loop(server, listener));
    Ok(())
}

async fn accept_loop(server: Rc<CoreServer>, listener: Listener) {
    loop {
        let seen = server.stop.version();
        if server.stopping.get() {
            return;
        }
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            server.stop.changed(seen).await;
            None
        })
        .await;
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok((conn, peer)) => {
                if let Some(allow) = &server.config.allow
                    && !allow.allows(peer)
                {
                    tracing::debug!(?peer, "connection from outside --allow closed");
                    drop(conn);
                    continue;
                }
                if server.connections.get() >= server.config.connections_per_core_max {
                    tracing::warn!(?peer, "too many connections on this core; closing");
                    drop(conn);
                    continue;
                }
                server.connections.set(server.connections.get() + 1);
                tracing::debug!(?peer, "connection accepted");
                match server.tls.clone() {
                    None => {
                        rt::spawn(conn::serve(server.clone(), conn, peer));
                    }
                    Some(acceptor) => {
                        let server = server.clone();
                        rt::spawn(async move {
                            // A handshake that stalls is cut off like a silent peer.
                            let seen = server.stop.version();
                            let handshake = futures_lite::future::or(
                                async { Some(acceptor.accept(conn).await) },
                                futures_lite::future::or(
                                    async {
                                        rt::sleep(TLS_HANDSHAKE_TIMEOUT).await;
                                        None
                                    },
                                    async {
                                        server.stop.changed(seen).await;
                                        None
                                    },
                                ),
                            )
                            .await;
                            match handshake {
                                Some(Ok(stream)) => conn::serve(server, stream, peer).await,
                                other => {
                                    let why = match other {
                                        Some(Err(e)) => e.to_string(),
                                        _ => "timed out".to_string(),
                                    };
                                    tracing::debug!(?peer, %why, "native TLS handshake failed");
                                    server.connections.set(server.connections.get() - 1);
                                    server.closed.notify();
                                }
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                rt::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
