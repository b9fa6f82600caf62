//! The AWS-compatible HTTP gateway (Kinesis Data Streams over JSON 1.1): every
//! core accepts on the same port (SO_REUSEPORT), hyper serves HTTP/1.1 and h2c
//! (prior knowledge) on each connection, and `kinesis` turns each
//! `X-Amz-Target: Kinesis_20131202.<Operation>` request into engine calls, with
//! bodies in JSON 1.1 or CBOR 1.1 (`cbor`), answered in the request's format.
//!
//! The request body is bounded before it is buffered (`HttpConfig::body_bytes_max`);
//! nothing a client sends reaches the engine unchecked. Lives on the accepting
//! core; never mutates a shard.

mod cbor;
pub mod eventstream;
mod guard;
mod kinesis;
mod puts;
mod reads;
mod sigv4;
mod subscribe;
mod tls;
mod upgrade;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;

use crate::Engine;
use crate::notify::Notify;
use crate::rt::{self, net::Listener};

/// Settings of the HTTP gateway.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted (AWS: PutRecords up to 10 MiB of records,
    /// base64 in JSON makes that about 14 MiB).
    pub body_bytes_max: usize,
    /// Region and account that stream ARNs carry.
    pub region: String,
    pub account: String,
    /// Serve TLS (ALPN h2, http/1.1) with this certificate chain and key (PEM).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// SigV4 verification with these access keys (id → secret); `None`: any
    /// request, signed or not, is accepted.
    pub sigv4_keys: Option<std::collections::BTreeMap<String, String>>,
    /// How long a SubscribeToShard subscription lasts (AWS: five minutes).
    pub subscription_ms: u64,
    /// Connections one core serves at once; further ones are closed on accept.
    pub connections_per_core_max: usize,
    /// Bytes of request bodies one core reads and handles at once; a request
    /// waits for its share before its body is read.
    pub core_body_bytes_max: u64,
    /// A connection that moves no byte for this long is closed.
    pub idle_ms: u64,
}

impl HttpConfig {
    pub fn new(listen: SocketAddr) -> HttpConfig {
        HttpConfig {
            listen,
            body_bytes_max: 16 << 20,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            tls: None,
            sigv4_keys: None,
            subscription_ms: 300_000,
            connections_per_core_max: 4096,
            core_body_bytes_max: 256 << 20,
            idle_ms: 300_000,
        }
    }
}

/// The running gateway: one accept loop per core.
pub struct HttpServer {
    addr: SocketAddr,
    stops: Vec<Arc<Mutex<Option<flume::Sender<()>>>>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// hyper's executor: tasks on the current core.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F: Future<Output = ()> + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        rt::spawn(fut);
    }
}

impl HttpServer {
    /// Binds `config.listen` on every core of `engine` and starts serving.
    pub fn start(engine: &Engine, config: HttpConfig) -> std::io::Result<HttpServer> {
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        let addr = rt::net::reserve(config.listen)?;
        let config = Arc::new(Gateway {
            config: HttpConfig {
                listen: addr,
                ..config
            },
            subscriptions: subscribe::Registry::default(),
        });
        let mut stops = Vec::new();
        let (bound_tx, bound_rx) = flume::unbounded::<std::io::Result<()>>();
        for core in 0..engine.core_count() {
            let (stop_tx, stop_rx) = flume::bounded::<()>(1);
            stops.push(Arc::new(Mutex::new(Some(stop_tx))));
            let (engine, config, bound_tx, tls) = (
                engine.clone(),
                config.clone(),
                bound_tx.clone(),
                tls.clone(),
            );
            engine
                .clone()
                .run_on_core(core, move || {
                    let listener = match Listener::bind(addr) {
                        Ok(l) => {
                            let _ = bound_tx.send(Ok(()));
                            l
                        }
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    rt::spawn(accept_loop(engine, config, tls, listener, stop_rx));
                })
                .map_err(|e| std::io::Error::other(e.message))?;
        }
        drop(bound_tx);
        for _ in 0..engine.core_count() {
            match bound_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::Error::other("a core stopped while binding")),
            }
        }
        Ok(HttpServer { addr, stops })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections (open ones finish their requests).
    pub fn shutdown(&self) {
        for s in &self.stops {
            s.lock().expect("not poisoned").take();
        }
    }
}

async fn accept_loop(
    engine: Engine,
    config: Arc<Gateway>,
    tls: Option<futures_rustls::TlsAcceptor>,
    listener: Listener,
    stop: flume::Receiver<()>,
) {
    let guard = guard::CoreGuard::new(
        config.config.connections_per_core_max,
        config.config.core_body_bytes_max,
    );
    let idle = std::time::Duration::from_millis(config.config.idle_ms);
    let stopping = Rc::new(Notify::new());
    let stopped = Rc::new(Cell::new(false));
    {
        let (stopping, stopped) = (stopping.clone(), stopped.clone());
        rt::spawn(async move {
            let _ = stop.recv_async().await;
            stopped.set(true);
            stopping.notify();
        });
    }
    loop {
        let seen = stopping.version();
        if stopped.get() {
            return;
        }
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stopping.changed(seen).await;
            None
        })
        .await;
        let Some(accepted) = accepted else { return };
        let (conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                rt::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = guard.admit() else {
            tracing::warn!(?peer, "too many HTTP connections on this core; closing");
            continue;
        };
        let (engine, config, tls, guard) =
            (engine.clone(), config.clone(), tls.clone(), guard.clone());
        rt::spawn(async move {
            let _admitted = admitted;
            let (conn, last) = guard::Watched::new(conn);
            let served = async move {
                match tls {
                    None => match upgrade::sniff(conn).await {
                        Ok(conn) => serve(engine, config, guard, conn).await,
                        Err(e) => tracing::debug!(error = %e, "h2c upgrade failed"),
                    },
                    Some(acceptor) => match acceptor.accept(conn).await {
                        Ok(stream) => serve(engine, config, guard, stream).await,
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    },
                }
            };
            futures_lite::future::or(served, async {
                guard::idle(last, idle).await;
                tracing::debug!(?peer, "idle HTTP connection closed");
            })
            .await;
        });
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by the client's preface) on one connection.
async fn serve<S>(engine: Engine, config: Arc<Gateway>, guard: Rc<guard::CoreGuard>, io: S)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (engine, config, guard) = (engine.clone(), config.clone(), guard.clone());
        async move { Ok::<_, std::convert::Infallible>(handle(&engine, &config, &guard, req).await) }
    });
    let io = smol_hyper::rt::FuturesIo::new(io);
    let builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(error = %e, "http connection ended");
    }
}

/// What every connection of a server shares: its settings and the recent
/// SubscribeToShard calls (AWS refuses a second one within 5 s).
struct Gateway {
    config: HttpConfig,
    subscriptions: subscribe::Registry,
}

/// A response body: whole, or streamed from a channel (SubscribeToShard's events).
pub(crate) type HttpBody = Either<Full<Bytes>, StreamBody<BodyStream>>;
pub(crate) type BodyStream = flume::r#async::RecvStream<'static, Result<Frame<Bytes>, Infallible>>;

/// One HTTP request: once the core's body budget has room for it, the body is
/// read within the limit, then handed to the Kinesis dispatcher.
async fn handle(
    engine: &Engine,
    gateway: &Gateway,
    guard: &guard::CoreGuard,
    req: Request<Incoming>,
) -> Response<HttpBody> {
    let config = &gateway.config;
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > config.body_bytes_max as u64
    {
        return kinesis::error_response(
            kinesis::Format::of(&parts),
            StatusCode::PAYLOAD_TOO_LARGE,
            "SerializationException",
            &format!(
                "the request body of {len} bytes exceeds {} bytes",
                config.body_bytes_max
            ),
        )
        .map(Either::Left);
    }
    // The body's size when declared (HTTP/2 may not), else the most it may be.
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(config.body_bytes_max as u64);
    let _permit = guard.body_permit(declared).await;
    let body = match Limited::new(body, config.body_bytes_max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return kinesis::error_response(
                kinesis::Format::of(&parts),
                StatusCode::PAYLOAD_TOO_LARGE,
                "SerializationException",
                &format!("cannot read the request body: {e}"),
            )
            .map(Either::Left);
        }
    };
    if let Some(keys) = &config.sigv4_keys {
        let now_s = rt::now_ms() / 1000;
        if let Err(e) = sigv4::verify(&parts, &body, keys, now_s) {
            let status = match e.kind {
                "MissingAuthenticationTokenException" => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            return kinesis::error_response(
                kinesis::Format::of(&parts),
                status,
                e.kind,
                &e.message,
            )
            .map(Either::Left);
        }
    }
    kinesis::dispatch(engine, gateway, &parts, &body).await
}
