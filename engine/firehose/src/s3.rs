//! Delivery to an S3-compatible server (`--s3-endpoint http(s)://HOST:PORT`):
//! PutObject, path-style (`/<bucket>/<key>`), signed with SigV4
//! (`riffle_aws::sign`), over HTTP/1.1 on the core's own runtime (hyper's
//! client on `riffle_engine::rt::net`). One connection per request: objects
//! are large and few, and a failed connection never poisons the next one.
//!
//! Objects of `MULTIPART_MIN` bytes or more go up as a multipart upload:
//! `PARTS_IN_FLIGHT` parts at a time, each a quarter of the object (at least
//! S3's 5 MiB, at most `PART_BYTES_MAX`) (one PutObject stream per
//! object cannot fill a server that writes in parallel), then
//! CompleteMultipartUpload. Before starting, unfinished uploads of the same
//! key (left by a crash or a failed attempt: the key is the delivery's own,
//! see `object.rs`) are aborted (best effort: a store that cannot list them
//! still gets the object), and a failed upload aborts itself, so no orphaned
//! parts pile up.
//!
//! S3's refusals (`NoSuchBucket`, `AccessDenied`, `SignatureDoesNotMatch`,
//! ...) come back as errors naming S3's code and message; the delivery retries
//! and reports them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use riffle_aws::sign::{Signer, encode_key, encode_query};

use crate::http_client::{HttpUrl, Peer};
use riffle_protocol::Error;

/// The longest a PutObject may take before it is given up and retried:
/// this, plus a second per 8 MiB of body.
const PUT_TIMEOUT_BASE: Duration = Duration::from_secs(30);
/// A GET reads an object this much at a time (below the HTTP client's
/// answer bound).
const GET_RANGE_BYTES: usize = 4 << 20;
/// Objects this large or larger are uploaded in parts.
pub const MULTIPART_MIN: usize = 10 << 20;
/// The smallest part but the last (S3's minimum).
pub const PART_BYTES_MIN: usize = 5 << 20;
/// The largest part.
pub const PART_BYTES_MAX: usize = 64 << 20;
/// Parts uploaded at once.
pub const PARTS_IN_FLIGHT: usize = 4;

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

    /// `body` under `bucket`/`key`, replacing what was there: PutObject, or a
    /// multipart upload for large bodies.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), Error> {
        if body.len() >= MULTIPART_MIN {
            return self.put_in_parts(bucket, key, body).await;
        }
        let failed = |e: String| Error::internal(format!("PutObject s3://{bucket}/{key}: {e}"));
        let path = format!("/{bucket}/{}", encode_key(key));
        self.request("PUT", &path, body)
            .await
            .map(|_| ())
            .map_err(failed)
    }

    /// The object `bucket`/`key` (None: there is none), read in ranges of
    /// `GET_RANGE_BYTES` (an answer is read up to the HTTP client's bound):
    /// with `whole`, all of it, refused when it is larger than `max` bytes;
    /// otherwise its first `max` bytes at most.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        max: usize,
        whole: bool,
    ) -> Result<Option<Bytes>, String> {
        let path = format!("/{bucket}/{}", encode_key(key));
        let mut out = bytes::BytesMut::new();
        loop {
            let start = out.len();
            let want = match whole {
                true => GET_RANGE_BYTES,
                false => GET_RANGE_BYTES.min(max - start),
            };
            if want == 0 {
                return Ok(Some(out.freeze()));
            }
            let range = format!("bytes={start}-{}", start + want - 1);
            let (status, headers, body) = self
                .exchange("GET", &path, Bytes::new(), &[("range", range)])
                .await?;
            let total = match status.as_u16() {
                404 => return Ok(None),
                // An empty object has no byte to give.
                416 if start == 0 => return Ok(Some(Bytes::new())),
                206 => (headers.get(hyper::header::CONTENT_RANGE))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit_once('/'))
                    .and_then(|(_, total)| total.parse::<usize>().ok())
                    .ok_or("a ranged answer without its Content-Range total")?,
                // The whole object (the range was not used).
                200 if start == 0 => body.len(),
                _ => {
                    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
                    return Err(format!("{status}: {}", s3_error(&text)));
                }
            };
            let total = match whole {
                true if total > max => {
                    return Err(format!("the object is {total} bytes, over {max}"));
                }
                true => total,
                false => total.min(max),
            };
            if body.is_empty() && out.len() < total {
                return Err("the object ended early".into());
            }
            out.extend_from_slice(&body);
            if out.len() >= total {
                out.truncate(total);
                return Ok(Some(out.freeze()));
            }
        }
    }

    /// One signed request; the answer's headers and body when S3 says 2xx.
    async fn request(
        &self,
        method: &str,
        uri: &str,
        body: Bytes,
    ) -> Result<(hyper::HeaderMap, Bytes), String> {
        let (status, headers, answer) = self.exchange(method, uri, body, &[]).await?;
        // CompleteMultipartUpload may fail after answering 200: its body says so.
        let text = String::from_utf8_lossy(&answer[..answer.len().min(4096)]);
        if status.is_success() && !text.contains("<Error>") {
            return Ok((headers, answer));
        }
        Err(format!("{status}: {}", s3_error(&text)))
    }

    /// One signed request (`extra` headers unsigned) and its answer.
    async fn exchange(
        &self,
        method: &str,
        uri: &str,
        body: Bytes,
        extra: &[(&str, String)],
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
        let timeout = PUT_TIMEOUT_BASE + Duration::from_secs((body.len() >> 23) as u64);
        let signed = self.signer.sign(
            method,
            uri,
            &[("host", &self.url.authority)],
            SystemTime::now(),
        )?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, &self.url.authority)
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (k, v) in &signed {
            request = request.header(k, v);
        }
        for (k, v) in extra {
            request = request.header(*k, v);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let peer = Peer {
            addr: self.addr,
            tls: self.url.secure.then(|| (self.url.host(), &self.tls)),
        };
        crate::http_client::send_with_headers(peer, request, timeout).await
    }

    /// A multipart upload of `body`: stale uploads of the key aborted, the
    /// parts sent `PARTS_IN_FLIGHT` at a time, then completed (or aborted).
    async fn put_in_parts(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), Error> {
        let failed =
            |e: String| Error::internal(format!("multipart upload s3://{bucket}/{key}: {e}"));
        let path = format!("/{bucket}/{}", encode_key(key));
        // Best effort: a store that cannot list uploads still takes objects
        // (its leftover parts, if any, are its own to expire).
        if let Err(e) = self.abort_unfinished(bucket, key).await {
            tracing::debug!("s3://{bucket}/{key}: unfinished uploads not cleaned up: {e}");
        }
        let (_, created) = self
            .request("POST", &format!("{path}?uploads="), Bytes::new())
            .await
            .map_err(failed)?;
        let upload_id = xml_field(&String::from_utf8_lossy(&created), "UploadId")
            .ok_or_else(|| failed("CreateMultipartUpload answered no UploadId".into()))?;
        let id = encode_query(&xml_unescape(&upload_id));
        let result = self.send_parts(&path, &id, &body).await;
        let result = match result {
            Ok(etags) => {
                self.request(
                    "POST",
                    &format!("{path}?uploadId={id}"),
                    Bytes::from(complete_body(&etags)),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                // Best effort: a later attempt aborts it again first.
                let _ = self
                    .request("DELETE", &format!("{path}?uploadId={id}"), Bytes::new())
                    .await;
                Err(failed(e))
            }
        }
    }

    /// Uploads the parts; their ETags in order.
    async fn send_parts(&self, path: &str, id: &str, body: &Bytes) -> Result<Vec<String>, String> {
        let parts: Vec<Bytes> = (0..body.len())
            .step_by(part_bytes(body.len()))
            .map(|at| body.slice(at..(at + part_bytes(body.len())).min(body.len())))
            .collect();
        let mut etags = Vec::with_capacity(parts.len());
        for (wave, chunk) in parts.chunks(PARTS_IN_FLIGHT).enumerate() {
            let sends = chunk.iter().enumerate().map(|(i, part)| {
                let number = wave * PARTS_IN_FLIGHT + i + 1;
                let uri = format!("{path}?partNumber={number}&uploadId={id}");
                async move { self.request("PUT", &uri, part.clone()).await }
            });
            for answer in riffle_engine::join_all(sends.collect()).await {
                let (headers, _) = answer?;
                let etag = headers
                    .get(hyper::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .ok_or("UploadPart answered no ETag")?;
                etags.push(etag.to_string());
            }
        }
        Ok(etags)
    }

    /// Aborts the unfinished multipart uploads of exactly `key`.
    async fn abort_unfinished(&self, bucket: &str, key: &str) -> Result<(), String> {
        let (_, listed) = self
            .request(
                "GET",
                &format!("/{bucket}?prefix={}&uploads=", encode_query(key)),
                Bytes::new(),
            )
            .await?;
        let listed = String::from_utf8_lossy(&listed);
        for upload in listed.split("<Upload>").skip(1) {
            let (Some(k), Some(id)) = (xml_field(upload, "Key"), xml_field(upload, "UploadId"))
            else {
                continue;
            };
            if xml_unescape(&k) == key {
                let uri = format!(
                    "/{bucket}/{}?uploadId={}",
                    encode_key(key),
                    encode_query(&xml_unescape(&id))
                );
                self.request("DELETE", &uri, Bytes::new()).await?;
            }
        }
        Ok(())
    }
}

/// The size of an object's parts: enough parts to keep `PARTS_IN_FLIGHT`
/// busy, none smaller than S3 allows.
fn part_bytes(len: usize) -> usize {
    len.div_ceil(PARTS_IN_FLIGHT)
        .clamp(PART_BYTES_MIN, PART_BYTES_MAX)
}

/// CompleteMultipartUpload's body.
fn complete_body(etags: &[String]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            xml_escape(etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<name>` element.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_string())
}

/// S3's error answer (`<Error><Code>NoSuchBucket</Code><Message>...`) in one
/// line: `NoSuchBucket: The specified bucket does not exist`.
pub fn s3_error(xml: &str) -> String {
    let field = |name: &str| xml_field(xml, name);
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

    #[test]
    fn parts_keep_every_upload_busy_within_s3s_sizes() {
        assert_eq!(part_bytes(MULTIPART_MIN), PART_BYTES_MIN);
        assert_eq!(part_bytes(40 << 20), 10 << 20);
        assert_eq!(part_bytes(1 << 30), PART_BYTES_MAX);
    }

    #[test]
    fn multipart_bodies_and_queries_are_well_formed() {
        assert_eq!(
            complete_body(&["\"a\"".into(), "\"b\"".into()]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(encode_query("a b/c~_.-+"), "a%20b%2Fc~_.-%2B");
        assert_eq!(xml_unescape("a&amp;b&lt;"), "a&b<");
        let listed = "<ListMultipartUploadsResult><Upload><Key>k/1</Key><UploadId>x</UploadId></Upload></ListMultipartUploadsResult>";
        assert_eq!(xml_field(listed, "UploadId").as_deref(), Some("x"));
    }
}
