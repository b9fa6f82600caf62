//! Delivery to an S3-compatible server (`--s3-endpoint http(s)://HOST:PORT`):
//! PutObject, path-style (`/<bucket>/<key>`), signed with SigV4
//! (`riffle_aws::sign`), over HTTP/1.1 on the core's own runtime (hyper's
//! client on `riffle_engine::rt::net`). One connection per object: objects
//! are large and few, and a failed connection never poisons the next object.
//!
//! S3's refusals (`NoSuchBucket`, `AccessDenied`, `SignatureDoesNotMatch`,
//! ...) come back as errors naming S3's code and message; the delivery retries
//! and reports them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use riffle_aws::sign::{Signer, encode_key};

use crate::http_client::{HttpUrl, Peer};
use riffle_protocol::Error;

/// The longest a PutObject may take before it is given up and retried:
/// this, plus a second per 8 MiB of body.
const PUT_TIMEOUT_BASE: Duration = Duration::from_secs(30);

/// How the server reaches its S3-compatible store.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `http(s)://host:port`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// A client of one S3-compatible endpoint.
#[derive(Clone)]
pub struct S3Client {
    url: HttpUrl,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    signer: Signer,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client").field("url", &self.url).finish()
    }
}

impl S3Client {
    /// Resolves the endpoint (blocking: call it while the server starts).
    pub fn new(config: &S3Config, tls: Arc<rustls::ClientConfig>) -> Result<S3Client, String> {
        let endpoint = config.endpoint.trim_end_matches('/');
        let url = HttpUrl::parse(endpoint).map_err(|e| format!("--s3-endpoint {e}"))?;
        if url.path != "/" {
            return Err(format!(
                "--s3-endpoint {endpoint} must be http(s)://HOST[:PORT] without a path"
            ));
        }
        let addr = url
            .addr()
            .map_err(|e| format!("--s3-endpoint {endpoint}: {e}"))?;
        Ok(S3Client {
            url,
            addr,
            tls,
            signer: Signer {
                access_key: config.access_key.clone(),
                secret_key: config.secret_key.clone(),
                region: config.region.clone(),
                service: "s3".into(),
            },
        })
    }

    /// PutObject: `body` under `bucket`/`key`, replacing what was there.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), Error> {
        let failed = |e: String| Error::internal(format!("PutObject s3://{bucket}/{key}: {e}"));
        let timeout = PUT_TIMEOUT_BASE + Duration::from_secs((body.len() >> 23) as u64);
        let path = format!("/{bucket}/{}", encode_key(key));
        let signed = self
            .signer
            .sign(
                "PUT",
                &path,
                &[("host", &self.url.authority)],
                SystemTime::now(),
            )
            .map_err(failed)?;
        let mut request = hyper::Request::put(&path)
            .header(hyper::header::HOST, &self.url.authority)
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (k, v) in &signed {
            request = request.header(k, v);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| failed(e.to_string()))?;
        let peer = Peer {
            addr: self.addr,
            tls: self.url.secure.then(|| (self.url.host(), &self.tls)),
        };
        let (status, answer) = crate::http_client::send(peer, request, timeout)
            .await
            .map_err(failed)?;
        if status.is_success() {
            return Ok(());
        }
        Err(failed(format!(
            "{status}: {}",
            s3_error(&String::from_utf8_lossy(&answer))
        )))
    }
}

/// S3's error answer (`<Error><Code>NoSuchBucket</Code><Message>...`) in one
/// line: `NoSuchBucket: The specified bucket does not exist`.
pub fn s3_error(xml: &str) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = xml.find(&open)? + open.len();
        let end = xml[start..].find(&close)? + start;
        Some(xml[start..end].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ if xml.trim().is_empty() => "no error body".to_string(),
        _ => xml.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            access_key: "a".into(),
            secret_key: "b".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn endpoints_are_host_port() {
        let tls = crate::http_client::tls_config(None).unwrap();
        let c = S3Client::new(&config("http://127.0.0.1:8333/"), tls.clone()).unwrap();
        assert_eq!(
            (c.addr.port(), c.url.authority.as_str()),
            (8333, "127.0.0.1:8333")
        );
        let c = S3Client::new(&config("http://127.0.0.1"), tls.clone()).unwrap();
        assert_eq!((c.addr.port(), c.url.authority.as_str()), (80, "127.0.0.1"));
        let c = S3Client::new(&config("https://127.0.0.1"), tls.clone()).unwrap();
        assert_eq!(c.addr.port(), 443);
        for bad in ["127.0.0.1:8333", "http://", "http://h/p"] {
            assert!(S3Client::new(&config(bad), tls.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_errors_read_as_one_line() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>";
        assert_eq!(
            s3_error(xml),
            "NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(s3_error(""), "no error body");
    }
}
