//! The HTTP/1.1 client Firehose's deliveries use (S3 PutObject, function
//! invocations): hyper's client on the core's own runtime
//! (`riffle_engine::rt::net`), one connection per request, with a timeout.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use riffle_engine::rt;

/// An `http://HOST[:PORT]/PATH` URL, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `HOST[:PORT]`, as the Host header.
    pub authority: String,
    /// The path and query (`/` when none).
    pub path: String,
}

impl HttpUrl {
    /// Only `http://` (https is not served yet).
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(format!("{url}: https is not served yet; use http://"));
            }
            _ => return Err(format!("{url} is not an http:// URL")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url} has no host"));
        }
        Ok(HttpUrl {
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The address to connect to (port 80 by default). Resolving a host name
    /// may block briefly (the system resolver); IP addresses do not.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        let with_port = if self
            .authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        };
        with_port
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority))
    }
}

/// Sends one request to `addr` and reads the whole answer, within `timeout`.
pub async fn send(
    addr: SocketAddr,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let exchange = async {
        let conn = rt::net::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let (mut send, connection) =
            hyper::client::conn::http1::handshake(smol_hyper::rt::FuturesIo::new(conn))
                .await
                .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        rt::spawn(async move {
            let _ = connection.await;
        });
        let answer = send
            .send_request(request)
            .await
            .map_err(|e| format!("request to {addr}: {e}"))?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer from {addr}: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    let expired = async {
        rt::sleep(timeout).await;
        Err(format!("{addr} did not answer within {timeout:?}"))
    };
    futures_lite::future::or(exchange, expired).await
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
        for bad in ["https://h/x", "ftp://h", "http:///x", "h:1/x"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
