//! The AWS-compatible HTTP gateway: every core accepts on the same port
//! (SO_REUSEPORT); a connection is sniffed for an h2c upgrade (`upgrade`) or
//! wrapped in TLS (`tls`), then hyper serves HTTP/1.1 or HTTP/2 on it within the
//! core's bounds (`guard`). Each request is routed to the registered [`Service`]
//! that claims it (`service`: by `X-Amz-Target` prefix, or REST path and signing
//! name), after the gateway's own checks: the body limit and budget, SigV4
//! (`riffle_aws::sigv4`), CORS preflight, and AWS's answers to requests no service claims.
//!
//! The gateway knows no service: the binary registers them (`Services`). The
//! request body is bounded before it is buffered (`HttpConfig::body_bytes_max`);
//! nothing a client sends reaches a service unchecked. Lives on the accepting
//! core; never mutates a shard.

pub mod authz;
pub mod client;
pub mod console;
mod front;
mod guard;
pub mod health;
pub mod metrics;
pub mod service;
pub(crate) mod tls;
pub mod trail;
mod upgrade;

pub use service::{Call, HttpBody, RequestBody, Route, Service, Services};
pub use trail::{Operation, Trail};

/// A random version 4 UUID, from the generator request ids come from (for
/// the ids services hand out: Lambda's mapping UUIDs, invocation ids).
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    front::fill(&mut bytes);
    riffle_aws::ids::uuid_v4(bytes)
}

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use riffle_aws::error::Refusal;
use riffle_aws::json::Format;
use riffle_aws::sigv4;

use crate::Engine;
use crate::notify::Notify;
use crate::rt::{self, net::Listener};

/// Settings of the HTTP gateway.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body read whole (AWS: PutRecords up to 10 MiB of records,
    /// base64 in JSON makes that about 14 MiB).
    pub body_bytes_max: usize,
    /// Serve TLS (ALPN h2, http/1.1) with this certificate chain and key (PEM).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// SigV4 verification with these access keys (id → secret); `None`: any
    /// request is accepted, but a signature it carries must be well formed.
    pub sigv4_keys: Option<std::collections::BTreeMap<String, String>>,
    /// The region a signature's credential scope must name.
    pub region: String,
    /// Connections one core serves at once; further ones are closed on accept.
    pub connections_per_core_max: usize,
    /// Bytes of request bodies one core reads and handles at once; a request
    /// waits for its share before its body is read.
    pub core_body_bytes_max: u64,
    /// A connection that moves no byte for this long is closed.
    pub idle_ms: u64,
    /// Streamed request bodies (long uploads such as PutMedia) one core reads
    /// at once; a further one waits for one to end.
    pub streamed_bodies_per_core_max: u64,
    /// The audit trail every call is recorded in; `None`: none.
    pub trail: Option<Arc<Trail>>,
    /// IAM's decisions on signed calls; `None`: every signed call is allowed.
    pub authorizer: Option<Arc<authz::Authorizer>>,
    /// The addresses connections are taken from (`--allow`); `None`: any.
    pub allow: Option<crate::allow::AllowList>,
    /// With `tls`: clients must present a certificate signed by one of these
    /// (PEM; mutual TLS).
    pub tls_client_ca: Option<std::path::PathBuf>,
}

impl HttpConfig {
    pub fn new(listen: SocketAddr) -> HttpConfig {
        HttpConfig {
            listen,
            body_bytes_max: 16 << 20,
            tls: None,
            sigv4_keys: None,
            region: "us-east-1".into(),
            connections_per_core_max: 4096,
            core_body_bytes_max: 256 << 20,
            idle_ms: 300_000,
            streamed_bodies_per_core_max: 256,
            trail: None,
            authorizer: None,
            allow: None,
            tls_client_ca: None,
        }
    }
}

/// The running gateway: one accept loop per core.
pub struct HttpServer {
    addr: SocketAddr,
    stops: Vec<Arc<Mutex<Option<flume::Sender<()>>>>>,
    /// Per core: dropped to shut its open connections down gracefully.
    closes: Vec<Arc<Mutex<Option<flume::Sender<()>>>>>,
    gateway: Arc<Gateway>,
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
    /// Binds `config.listen` on every core of `engine` and starts serving
    /// `services`.
    pub fn start(
        engine: &Engine,
        config: HttpConfig,
        services: Services,
    ) -> std::io::Result<HttpServer> {
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls::acceptor_for(
                cert,
                key,
                config.tls_client_ca.as_deref(),
                vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            )?),
            None => None,
        };
        let addr = rt::net::reserve(config.listen)?;
        let config = Arc::new(Gateway {
            config: HttpConfig {
                listen: addr,
                ..config
            },
            engine: engine.clone(),
            services,
            in_flight: InFlight::default(),
            connections: InFlight::default(),
        });
        let mut stops = Vec::new();
        let mut closes = Vec::new();
        let (bound_tx, bound_rx) = flume::unbounded::<std::io::Result<()>>();
        for core in 0..engine.core_count() {
            let (stop_tx, stop_rx) = flume::bounded::<()>(1);
            stops.push(Arc::new(Mutex::new(Some(stop_tx))));
            let (close_tx, close_rx) = flume::bounded::<()>(1);
            closes.push(Arc::new(Mutex::new(Some(close_tx))));
            let (config, bound_tx, tls) = (config.clone(), bound_tx.clone(), tls.clone());
            engine
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
                    rt::spawn(accept_loop(config, tls, listener, stop_rx, close_rx));
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
        Ok(HttpServer {
            addr,
            stops,
            closes,
            gateway: config,
        })
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

    /// Lets the requests in flight finish (blocking; call it off the cores,
    /// after `shutdown`), at most `timeout`; answers the number still in flight.
    /// First waits, at most a quarter of `timeout` (and 2 s), until no request
    /// is being handled or answered (a request counts until its whole answer
    /// was handed to its connection; streamed answers such as event streams are
    /// not counted: they end when the engine stops): a burst ends on open
    /// connections, so clients are not cut off between requests. Then shuts
    /// every connection down gracefully (an idle one closes, a busy one after
    /// its answer: clients that never pause are stopped here) and waits for the
    /// rest of `timeout`.
    pub fn drain(&self, timeout: std::time::Duration) -> usize {
        let start = std::time::Instant::now();
        self.gateway
            .in_flight
            .wait_idle((timeout / 4).min(std::time::Duration::from_secs(2)));
        for c in &self.closes {
            c.lock().expect("not poisoned").take();
        }
        // Every connection closes after its answer in flight: until then a
        // keep-alive client may start another request (the engine would be
        // stopping under it), even at an instant with none in flight.
        self.gateway
            .connections
            .wait_idle(timeout.saturating_sub(start.elapsed()));
        self.gateway
            .in_flight
            .wait_idle(timeout.saturating_sub(start.elapsed()))
    }
}

async fn accept_loop(
    config: Arc<Gateway>,
    tls: Option<futures_rustls::TlsAcceptor>,
    listener: Listener,
    stop: flume::Receiver<()>,
    close: flume::Receiver<()>,
) {
    let guard = guard::CoreGuard::new(
        config.config.connections_per_core_max,
        config.config.core_body_bytes_max,
        config.config.streamed_bodies_per_core_max,
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
    // Connections close once told to (after the requests in flight finished).
    let closing = Rc::new(Notify::new());
    let closed = Rc::new(Cell::new(false));
    {
        let (closing, closed) = (closing.clone(), closed.clone());
        rt::spawn(async move {
            let _ = close.recv_async().await;
            closed.set(true);
            closing.notify();
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
        if let Some(allow) = &config.config.allow
            && !allow.allows(peer)
        {
            tracing::debug!(?peer, "HTTP connection from outside --allow closed");
            continue;
        }
        let Some(admitted) = guard.admit() else {
            tracing::warn!(?peer, "too many HTTP connections on this core; closing");
            continue;
        };
        let (config, tls, guard) = (config.clone(), tls.clone(), guard.clone());
        let (closing, closed) = (closing.clone(), closed.clone());
        let open = OpenConnection::enter(&config);
        rt::spawn(async move {
            let _admitted = admitted;
            let _open = open;
            let (conn, last) = guard::Watched::new(conn);
            let served = async move {
                match tls {
                    None => match upgrade::sniff(conn).await {
                        Ok(conn) => serve(config, guard, closing, closed, conn, peer).await,
                        Err(e) => tracing::debug!(error = %e, "h2c upgrade failed"),
                    },
                    Some(acceptor) => match acceptor.accept(conn).await {
                        Ok(stream) => serve(config, guard, closing, closed, stream, peer).await,
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
/// When the server drains (`HttpServer::drain`), the connection is shut down
/// gracefully: the request in flight is answered, then it closes (HTTP/1.1)
/// or sends GOAWAY (HTTP/2), so keep-alive clients do not start new requests
/// on a stopping server.
async fn serve<S>(
    config: Arc<Gateway>,
    guard: Rc<guard::CoreGuard>,
    closing: Rc<Notify>,
    closed: Rc<Cell<bool>>,
    io: S,
    peer: Option<SocketAddr>,
) where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (config, guard) = (config.clone(), guard.clone());
        async move {
            let counted = InFlight::enter(&config);
            let resp = handle(&config, &guard, req, peer).await;
            Ok::<_, std::convert::Infallible>(resp.map(|body| CountedBody::new(body, counted)))
        }
    });
    let io = smol_hyper::rt::FuturesIo::new(io);
    let builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service));
    let seen = closing.version();
    let served = if closed.get() {
        None
    } else {
        futures_lite::future::or(async { Some(conn.as_mut().await) }, async {
            closing.changed(seen).await;
            None
        })
        .await
    };
    let served = match served {
        Some(served) => served,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "http connection ended");
    }
}

/// An answer's body that keeps its request counted in flight until hyper has
/// written it and let it go. Streamed answers (event streams, media) are not
/// counted: they end when the engine stops.
struct CountedBody {
    inner: HttpBody,
    _counted: Option<Counted>,
}

impl CountedBody {
    fn new(inner: HttpBody, counted: Counted) -> CountedBody {
        let counted = matches!(inner, http_body_util::Either::Left(_)).then_some(counted);
        CountedBody {
            inner,
            _counted: counted,
        }
    }
}

impl hyper::body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = <HttpBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What every connection of a server shares: its settings, its services and
/// the count of requests being handled (shutdown waits for them).
struct Gateway {
    config: HttpConfig,
    /// The streams IAM's delegated checks read policies and tags of.
    engine: Engine,
    services: Services,
    in_flight: InFlight,
    /// Connections being served (counted like requests: `HttpServer::drain`
    /// waits for them to close, so no request starts after it returns).
    connections: InFlight,
}

/// Requests being handled on every core; `HttpServer::drain` waits for zero.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    zero: std::sync::Condvar,
}

/// One request counted in `InFlight` while it lives.
struct Counted(Arc<Gateway>);

impl InFlight {
    fn enter(gateway: &Arc<Gateway>) -> Counted {
        *gateway.in_flight.count.lock().expect("not poisoned") += 1;
        Counted(gateway.clone())
    }

    /// Waits (blocking: called off the cores) until no request is being
    /// handled or `timeout` passed; the requests still in flight.
    fn wait_idle(&self, timeout: std::time::Duration) -> usize {
        let count = self.count.lock().expect("not poisoned");
        let (count, _) = self
            .zero
            .wait_timeout_while(count, timeout, |c| *c > 0)
            .expect("not poisoned");
        *count
    }
}

/// One connection counted in `Gateway::connections` while it is served.
struct OpenConnection(Arc<Gateway>);

impl OpenConnection {
    fn enter(gateway: &Arc<Gateway>) -> OpenConnection {
        *gateway.connections.count.lock().expect("not poisoned") += 1;
        OpenConnection(gateway.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = &self.0.connections;
        let mut count = open.count.lock().expect("not poisoned");
        *count -= 1;
        if *count == 0 {
            open.zero.notify_all();
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let in_flight = &self.0.in_flight;
        let mut count = in_flight.count.lock().expect("not poisoned");
        *count -= 1;
        if *count == 0 {
            in_flight.zero.notify_all();
        }
    }
}

/// One HTTP request: AWS's front door (`front`) answers what no service
/// should see and adds the headers every answer carries.
async fn handle(
    gateway: &Gateway,
    guard: &guard::CoreGuard,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<HttpBody> {
    let (mut parts, body) = req.into_parts();
    // The web console's calls: an AWS call under /console/api, made with
    // Basic credentials (the browser's) instead of a signature.
    // (Its origin is checked on the request as it came: HTTP/2 names its
    // host in the URI, which the unwrapping replaces.)
    if console::is_api_call(&parts)
        && let Some(refusal) = console::cross_site(&parts)
    {
        return refusal;
    }
    let console = console::unwrap_api_call(&mut parts);
    let front = front::Front::of(&parts, &gateway.services);
    if let Some(answer) = front.before_body(&parts) {
        return front.finish(answer);
    }
    let (resp, pending) = answer(gateway, guard, &front, parts, body, peer, console).await;
    let resp = front.finish(resp);
    match pending {
        Some(pending) => recorded(pending, resp).await,
        None => resp,
    }
}

/// Hands a call's record to the audit trail, with its answer (a whole
/// answer is read for its elements; a streamed one is recorded as it starts).
async fn recorded(pending: trail::Pending, resp: Response<HttpBody>) -> Response<HttpBody> {
    let (mut parts, body) = resp.into_parts();
    // REST answers get their request id here (the front door gives JSON ones theirs).
    if !parts.headers.contains_key("x-amzn-RequestId")
        && !parts.headers.contains_key("x-amz-request-id")
        && let Ok(id) = random_uuid().parse()
    {
        parts.headers.insert("x-amzn-RequestId", id);
    }
    let body = match body {
        http_body_util::Either::Left(full) => {
            // A Full body is ready at once.
            let bytes = match full.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            pending.finish(&parts, &bytes);
            http_body_util::Either::Left(http_body_util::Full::new(bytes))
        }
        streamed => {
            pending.finish(&parts, &[]);
            streamed
        }
    };
    Response::from_parts(parts, body)
}

/// A request past the front door: routed to its service; once the core's
/// body budget has room for it, the body is read within the limit (or handed
/// over to be streamed), its shape checked at the front door, its signature
/// checked, and the service answers.
async fn answer(
    gateway: &Gateway,
    guard: &guard::CoreGuard,
    front: &front::Front,
    parts: http::request::Parts,
    body: Incoming,
    peer: Option<SocketAddr>,
    console: bool,
) -> (Response<HttpBody>, Option<trail::Pending>) {
    let config = &gateway.config;
    let (routed, streaming_body, bearer) = match gateway.services.route(&parts) {
        service::Routed::Service {
            service,
            signing_name,
            streaming_body,
            bearer,
        } => (Some((service, signing_name)), streaming_body, bearer),
        service::Routed::UnknownTarget | service::Routed::Nothing => (None, false, false),
    };
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The whole body's share of the core's budget, held until the service answered.
    let mut _permit = None;
    let body = if streaming_body {
        // An upload of any length: it counts among the core's streamed bodies,
        // not against the budget of whole bodies.
        let permit = guard.stream_permit().await;
        RequestBody::Streaming(service::StreamingBody {
            body,
            _permit: permit,
        })
    } else {
        if let Some(len) = declared
            && len > config.body_bytes_max as u64
        {
            let r = Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SerializationException",
                format!(
                    "the request body of {len} bytes exceeds {} bytes",
                    config.body_bytes_max
                ),
            );
            return (refused_for(routed.map(|(s, _)| s), &parts, r), None);
        }
        // The body's size when declared (HTTP/2 may not), else the most it may be.
        _permit = guard
            .body_permit(declared.unwrap_or(config.body_bytes_max as u64))
            .await;
        match Limited::new(body, config.body_bytes_max).collect().await {
            Ok(b) => RequestBody::Whole(b.to_bytes()),
            Err(e) => {
                let r = Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "SerializationException",
                    format!("cannot read the request body: {e}"),
                );
                return (refused_for(routed.map(|(s, _)| s), &parts, r), None);
            }
        }
    };
    if let Some(answer) = front.after_body(&parts, body.whole(), routed.map(|(s, _)| s)) {
        return (answer, None);
    }
    let Some((service, signing_name)) = routed else {
        return (refused(&parts, Refusal::unknown_operation()), None);
    };
    // Signatures: verified when keys are configured (the body is bound by its
    // hash; a streamed body must be sent as UNSIGNED-PAYLOAD); otherwise a
    // request that carries a signature must still be well formed, as on AWS.
    let auth = match &config.sigv4_keys {
        // The service checks the request's own credential (a session token).
        _ if bearer => Ok(None),
        // The console's user: its Basic credentials name the access key.
        Some(keys) if console => match metrics::basic_key(&parts, keys) {
            Some(key) => Ok(Some(key)),
            None => return (metrics::basic_challenge("the console's calls"), None),
        },
        Some(keys) => {
            let expect = sigv4::Expect {
                service: signing_name,
                region: Some(&config.region),
                payload: if streaming_body {
                    sigv4::Payload::Streamed
                } else {
                    sigv4::Payload::Signed
                },
                // It chose the service and the operation: it must be signed
                // when present (routing reads it before anything else).
                signed_headers: &["x-amz-target"],
            };
            let now_s = u64::try_from(rt::now_ms() / 1000).unwrap_or(0);
            sigv4::verify(&parts, body.whole(), keys, now_s, &expect).map(|p| Some(p.access_key_id))
        }
        None if sigv4::carries_auth(&parts) => sigv4::check_shape(&parts).map(|()| None),
        None => Ok(None),
    };
    let access_key = match auth {
        Ok(key) => key,
        Err(e) => return (refused_for(Some(service), &parts, Refusal::from(e)), None),
    };
    // The call's record, drafted before the service takes the request.
    let operation = service.operation_of_call(&parts, body.whole());
    // Recorded as canceled if the client goes away before the answer.
    let pending = config.trail.as_ref().and_then(|trail| {
        let operation = operation?;
        let draft = trail.draft(
            signing_name,
            operation,
            &parts,
            body.whole(),
            access_key.as_deref(),
            peer.map(|p| p.ip()),
            rt::now_ms(),
        )?;
        Some(trail::Pending::new(trail.clone(), draft))
    });
    // IAM: the signer's policies and the resource's on what the call does.
    if let (Some(authz), Some(key), Some(op)) =
        (&config.authorizer, access_key.as_deref(), operation)
    {
        // CloudWatch signs as `monitoring`; its actions are `cloudwatch:`.
        let prefix = match signing_name {
            "monitoring" => "cloudwatch",
            other => other,
        };
        let action = format!("{prefix}:{}", op.name);
        // Every resource the call names must allow it (with the tags it
        // sets), and so must every resource it makes the service use on the
        // caller's behalf, as if the caller used it (with that resource's
        // own policy and tags).
        let decided = (|| {
            let request_tags = authz::RequestTags::of(signing_name, op.name, &parts, body.whole())
                .map_err(|why| authz.unnamed(key, &action, &why))?;
            let resources = service
                .resources(op.name, &parts, body.whole())
                .map_err(|why| authz.unnamed(key, &action, &why))?;
            for resource in &resources {
                authz.authorize(
                    key,
                    &action,
                    resource,
                    &request_tags,
                    peer.map(|p| p.ip()),
                    config.tls.is_some(),
                )?;
            }
            let delegated = authz::delegated(signing_name, op.name, &parts, body.whole())
                .map_err(|why| authz.unnamed(key, &action, &why))?;
            for (used, arn) in delegated {
                let resource =
                    authz::resource_of_arn(&gateway.engine, &config.region, &authz.account, arn);
                authz.authorize(
                    key,
                    used,
                    &resource,
                    &authz::RequestTags::default(),
                    peer.map(|p| p.ip()),
                    config.tls.is_some(),
                )?;
            }
            Ok::<(), Refusal>(())
        })();
        if let Err(r) = decided {
            let answer = if let Some(own) = service.refusal(&parts, &r) {
                own
            } else if parts.headers.contains_key("x-amz-target") {
                refused(&parts, r)
            } else {
                service::whole(r.to_rest_response())
            };
            return (answer, pending);
        }
    }
    let resp = service
        .call(Call {
            parts,
            body,
            access_key,
            peer,
            secure: config.tls.is_some(),
        })
        .await;
    (resp, pending)
}

/// A new request id (a version 4 UUID), for answers a service writes itself.
pub(crate) fn request_id() -> String {
    front::request_id()
}

/// The gateway's own refusals, in the request's format.
fn refused(parts: &http::request::Parts, r: Refusal) -> Response<HttpBody> {
    service::whole(r.to_response(Format::of(&parts.headers)))
}

/// The gateway's refusal of a request routed to `service`: in its protocol
/// when it has its own (the query protocol's XML), else as [`refused`].
fn refused_for(
    service: Option<&dyn service::Service>,
    parts: &http::request::Parts,
    r: Refusal,
) -> Response<HttpBody> {
    match service.and_then(|s| s.refusal(parts, &r)) {
        Some(answer) => answer,
        None => refused(parts, r),
    }
}
