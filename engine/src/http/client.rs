//! The HTTP/1.1 client services use to reach the outside (Firehose's S3
//! PutObject, function invocations and HTTP endpoints; Lambda event-source
//! mappings' invocations): hyper's client on the core's own runtime
//! (`crate::rt::net`), over TLS for `https://` (rustls with the
//! system's CA bundle and an optional extra CA file), with a timeout: one
//! connection per request (`send`), or connections kept between requests
//! (`send_kept`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::rt;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Where systems keep their trusted CA certificates (Debian and Ubuntu;
/// Fedora and RHEL; Alpine and others): the first that exists is read.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// How long a host name's address is kept.
const RESOLVED_TTL: Duration = Duration::from_secs(60);
/// The longest a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers are read up to this (AWS's largest: a Lambda answer, 6 MB).
pub const ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The TLS client configuration: the system's CAs, plus those of `extra_ca`
/// (a PEM file: e.g. the certificate of a test endpoint).
pub fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut add = |path: &Path, required: bool| -> Result<(), String> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(_) if !required => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            // The system bundle may hold certificates rustls cannot use: skip them.
            let added = roots.add(cert);
            if required {
                added.map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    };
    match SYSTEM_CA_BUNDLES.iter().find(|p| Path::new(p).exists()) {
        Some(bundle) => add(Path::new(bundle), false)?,
        None => tracing::warn!(
            "no system CA bundle found ({}): https destinations need --ca-file",
            SYSTEM_CA_BUNDLES.join(", ")
        ),
    }
    if let Some(path) = extra_ca {
        add(path, true)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An `http(s)://HOST[:PORT]/PATH` URL, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`.
    pub secure: bool,
    /// `HOST[:PORT]`, as the Host header.
    pub authority: String,
    /// The path and query (`/` when none).
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (secure, rest) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => return Err(format!("{url} is not an http:// or https:// URL")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url} has no host"));
        }
        Ok(HttpUrl {
            secure,
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The host, without the port (the name TLS checks the certificate for).
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => &self.authority,
        }
    }

    /// The address to connect to, from a task on a core: an IP address at
    /// once; a host name by the system resolver on a thread of its own (it may
    /// block), kept for a minute.
    pub async fn resolve(&self) -> Result<SocketAddr, String> {
        if let Ok(addr) = self.addr_of_ip() {
            return Ok(addr);
        }
        static RESOLVED: std::sync::LazyLock<
            std::sync::Mutex<std::collections::HashMap<String, (SocketAddr, std::time::Instant)>>,
        > = std::sync::LazyLock::new(Default::default);
        if let Some((addr, at)) = RESOLVED.lock().unwrap().get(&self.authority)
            && at.elapsed() < RESOLVED_TTL
        {
            return Ok(*addr);
        }
        let (tx, rx) = flume::bounded(1);
        let url = self.clone();
        std::thread::Builder::new()
            .name("riffle-resolve".into())
            .spawn(move || {
                let _ = tx.send(url.addr());
            })
            .map_err(|e| format!("cannot resolve {}: {e}", self.authority))?;
        let answer = async {
            rx.recv_async()
                .await
                .map_err(|_| format!("cannot resolve {}", self.authority))?
        };
        let expired = async {
            rt::sleep(RESOLVE_TIMEOUT).await;
            Err(format!(
                "{} did not resolve within {RESOLVE_TIMEOUT:?}",
                self.authority
            ))
        };
        let addr = futures_lite::future::or(answer, expired).await?;
        RESOLVED
            .lock()
            .unwrap()
            .insert(self.authority.clone(), (addr, std::time::Instant::now()));
        Ok(addr)
    }

    /// The address when the host is an IP address (no resolver).
    fn addr_of_ip(&self) -> Result<SocketAddr, ()> {
        let ip: std::net::IpAddr = self
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| ())?;
        let port = match self.authority.rsplit_once(':') {
            Some((_, p)) if p.parse::<u16>().is_ok() && self.host() != self.authority => {
                p.parse().map_err(|_| ())?
            }
            _ => {
                if self.secure {
                    443
                } else {
                    80
                }
            }
        };
        Ok(SocketAddr::new(ip, port))
    }

    /// The address to connect to (port 80 or 443 by default), blocking on the
    /// system resolver for a host name: off the cores only (see `resolve`).
    pub fn addr(&self) -> Result<SocketAddr, String> {
        let with_port = if self
            .authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            self.authority.clone()
        } else {
            format!("{}:{}", self.authority, if self.secure { 443 } else { 80 })
        };
        with_port
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority))
    }
}

/// Where a request goes: the address, and for TLS the name to verify and the
/// client configuration.
pub struct Peer<'a> {
    pub addr: SocketAddr,
    pub tls: Option<(&'a str, &'a Arc<rustls::ClientConfig>)>,
}

impl<'a> Peer<'a> {
    /// The peer of `url` (TLS with `tls` for https), resolved off the core.
    pub async fn resolve(
        url: &'a HttpUrl,
        tls: &'a Arc<rustls::ClientConfig>,
    ) -> Result<Peer<'a>, String> {
        Ok(Peer {
            addr: url.resolve().await?,
            tls: url.secure.then(|| (url.host(), tls)),
        })
    }
}

/// POSTs the JSON `event` to the function at `url` (Lambda's contract over
/// HTTP: Firehose's transform, Kinesis Data Analytics' preprocessors and
/// outputs) and gives its answer's body when it answered 200 within
/// `timeout`; otherwise why not (its status and the start of its body).
pub async fn invoke(
    url: &str,
    event: Bytes,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Bytes, String> {
    let url = HttpUrl::parse(url)?;
    let request = hyper::Request::post(&url.path)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, event.len())
        .body(Full::new(event))
        .map_err(|e| e.to_string())?;
    let peer = Peer::resolve(&url, tls).await?;
    let (status, body) = send(peer, request, timeout).await?;
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "the function answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        ));
    }
    Ok(body)
}

/// Sends one request and reads the whole answer, within `timeout`.
pub async fn send(
    peer: Peer<'_>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(hyper::StatusCode, Bytes), String> {
    send_with_headers(peer, request, timeout)
        .await
        .map(|(status, _, body)| (status, body))
}

/// [`send`], with the answer's headers.
pub async fn send_with_headers(
    peer: Peer<'_>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
    let addr = peer.addr;
    let work = async {
        let mut conn = Connection::open(&peer).await?;
        conn.exchange(request).await
    };
    let expired = async {
        rt::sleep(timeout).await;
        Err(format!("{addr} did not answer within {timeout:?}"))
    };
    futures_lite::future::or(work, expired).await
}

/// A kept connection unused this long is closed rather than reused (a
/// peer may hold a handler per open connection).
const KEPT_IDLE_MS: i64 = 30_000;

/// [`send_with_headers`] over a connection kept from an earlier request to
/// the same peer (same address and, for TLS, the same verified name;
/// HTTP/1.1 keep-alive) when `kept` holds one that is still open and not
/// idle past `KEPT_IDLE_MS`, else over a new one; the connection goes back
/// into `kept` when the peer leaves it open. A request on a kept connection
/// that the peer had already closed is sent again on a new one only when it
/// was never written, or no answer had begun when the connection ended
/// (the peer closing an idle connection as the request went out).
pub async fn send_kept(
    kept: &mut Option<Connection>,
    peer: Peer<'_>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
    let addr = peer.addr;
    let name = peer.tls.map(|(host, _)| host.to_string());
    let work = async {
        let fresh = |c: &Connection| {
            c.addr == addr
                && c.name == name
                && rt::now_ms().saturating_sub(c.used_ms) < KEPT_IDLE_MS
        };
        let mut reused = match kept.take() {
            Some(mut c) if fresh(&c) => c.send.ready().await.is_ok().then_some(c),
            _ => None,
        };
        let mut request = Some(request);
        let mut answer = None;
        if let Some(c) = reused.as_mut() {
            match c.try_exchange(request.take().expect("a request")).await {
                Ok(a) => answer = Some(Ok(a)),
                Err(Failed::NotAnswered {
                    request: again,
                    why,
                }) => {
                    tracing::debug!("kept connection to {addr}: {why}; reconnecting");
                    request = Some(*again);
                    reused = None;
                }
                Err(Failed::Other(e)) => answer = Some(Err(e)),
            }
        }
        let (conn, answer) = match (reused, answer, request) {
            (Some(c), Some(answer), _) => (c, answer),
            (_, _, Some(request)) => {
                let mut c = Connection::open(&peer).await?;
                let answer = c.exchange(request).await;
                (c, answer)
            }
            // A request is either answered on the kept connection or
            // handed back to be sent on a new one.
            _ => return Err(format!("request to {addr}: lost")),
        };
        if answer.is_ok() && !conn.send.is_closed() {
            *kept = Some(conn);
        }
        answer
    };
    let expired = async {
        rt::sleep(timeout).await;
        Err(format!("{addr} did not answer within {timeout:?}"))
    };
    futures_lite::future::or(work, expired).await
}

/// Why an exchange on a kept connection failed.
enum Failed {
    /// The request did not reach the peer, or the connection ended before
    /// any answer began: it may go again on a new connection.
    NotAnswered {
        request: Box<hyper::Request<Full<Bytes>>>,
        why: String,
    },
    Other(String),
}

/// An HTTP/1.1 connection to a peer. Dropping it closes it (also while a
/// request is in flight: a request given up for its timeout does not leave
/// the connection open to a silent peer).
pub struct Connection {
    addr: SocketAddr,
    /// The name TLS verified (None: plain HTTP).
    name: Option<String>,
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// When it last carried a request (ms).
    used_ms: i64,
    /// The connection task ends when this is dropped.
    _alive: flume::Sender<()>,
}

impl Connection {
    /// Connects (and for TLS, handshakes) to `peer`.
    pub async fn open(peer: &Peer<'_>) -> Result<Connection, String> {
        let addr = peer.addr;
        let conn = rt::net::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        match peer.tls {
            None => Connection::handshake(smol_hyper::rt::FuturesIo::new(conn), addr, None).await,
            Some((host, config)) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{host}: {e}"))?;
                let tls = futures_rustls::TlsConnector::from(config.clone())
                    .connect(name, conn)
                    .await
                    .map_err(|e| format!("TLS with {host} ({addr}): {e}"))?;
                Connection::handshake(
                    smol_hyper::rt::FuturesIo::new(tls),
                    addr,
                    Some(host.to_string()),
                )
                .await
            }
        }
    }

    async fn handshake<IO>(
        io: IO,
        addr: SocketAddr,
        name: Option<String>,
    ) -> Result<Connection, String>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        let (send, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        let (alive, gone) = flume::bounded::<()>(1);
        rt::spawn(async move {
            let closed = async {
                let _ = gone.recv_async().await;
            };
            let served = async {
                let _ = connection.await;
            };
            futures_lite::future::or(served, closed).await;
        });
        Ok(Connection {
            addr,
            name,
            send,
            used_ms: rt::now_ms(),
            _alive: alive,
        })
    }

    /// Sends one request on this connection and reads the whole answer.
    pub async fn exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
        match self.try_exchange(request).await {
            Ok(answer) => Ok(answer),
            Err(Failed::NotAnswered { why, .. }) | Err(Failed::Other(why)) => Err(why),
        }
    }

    async fn try_exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), Failed> {
        let addr = self.addr;
        self.used_ms = rt::now_ms();
        // Kept to send again if the connection ends before an answer begins.
        let copy = {
            let mut again = hyper::Request::new(request.body().clone());
            *again.method_mut() = request.method().clone();
            *again.uri_mut() = request.uri().clone();
            *again.headers_mut() = request.headers().clone();
            again
        };
        let answer = match self.send.try_send_request(request).await {
            Ok(answer) => answer,
            Err(mut e) => {
                let why = format!("request to {addr}: {}", e.error());
                return Err(match e.take_message() {
                    Some(request) => Failed::NotAnswered {
                        request: Box::new(request),
                        why,
                    },
                    None if e.error().is_incomplete_message() => Failed::NotAnswered {
                        request: Box::new(copy),
                        why,
                    },
                    None => Failed::Other(why),
                });
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = http_body_util::Limited::new(answer.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| {
                Failed::Other(format!(
                    "answer from {addr} (at most {ANSWER_BYTES_MAX} bytes are read): {e}"
                ))
            })?
            .to_bytes();
        Ok((status, headers, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let u = HttpUrl::parse("http://127.0.0.1:9001/2015-03-31/functions/function/invocations")
            .unwrap();
        assert_eq!(u.authority, "127.0.0.1:9001");
        assert_eq!(u.path, "/2015-03-31/functions/function/invocations");
        assert_eq!(u.addr().unwrap().port(), 9001);
        let u = HttpUrl::parse("http://127.0.0.1").unwrap();
        assert_eq!((u.path.as_str(), u.addr().unwrap().port()), ("/", 80));
        let u = HttpUrl::parse("https://example.com/in").unwrap();
        assert_eq!(
            (u.secure, u.host(), u.path.as_str()),
            (true, "example.com", "/in")
        );
        assert_eq!(HttpUrl::parse("https://h:8443/").unwrap().host(), "h");
        for bad in ["ftp://h", "http:///x", "h:1/x"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
