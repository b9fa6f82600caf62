//! The Kinesis-HTTP target: the same load over AWS's JSON 1.1 API, so the bench
//! can drive any Kinesis-compatible endpoint (Riffle's `--http`, or another
//! implementation). Producers send PutRecords of pre-encoded JSON bodies (one
//! HTTP/1.1 keep-alive connection per request in flight); consumers read a
//! backlog with GetShardIterator and GetRecords. Records are not stamped, so
//! the scenarios are `produce` and `consume`.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use riffle_engine::rt::{self, net::Connection};
use serde_json::{Value, json};

use crate::load::{Shared, Tally, gcd, micros};

/// The `X-Amz-Target` prefix of Kinesis's operations.
pub const KINESIS: &str = "Kinesis_20131202.";

/// Headers of an AWS-style request. The signature is not computed (Riffle
/// accepts unsigned and signed requests alike by default); endpoints that insist
/// on the presence of SigV4 headers (e.g. ferrokinesis) accept these.
const AUTH_HEADERS: &str = "X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n";

/// The signer of every request when the bench runs with `--auth` (its server
/// then verifies SigV4 and decides each call by IAM policies); without it the
/// requests carry [`AUTH_HEADERS`].
static SIGNER: std::sync::OnceLock<riffle_aws::sign::Signer> = std::sync::OnceLock::new();

/// Signs every later request with `signer` (SigV4, the body hashed in, as
/// AWS's SDKs sign Kinesis's requests).
pub fn sign_with(signer: riffle_aws::sign::Signer) {
    let _ = SIGNER.set(signer);
}

/// The authentication headers of a request (each ends with CRLF).
fn auth_headers(addr: SocketAddr, target: &str, op: &str, body: &[u8]) -> anyhow::Result<String> {
    let Some(signer) = SIGNER.get() else {
        return Ok(AUTH_HEADERS.to_string());
    };
    let host = addr.to_string();
    let target = format!("{target}{op}");
    let headers = [
        ("host", host.as_str()),
        ("x-amz-target", target.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
    ];
    let signed = signer
        .sign_payload("POST", "/", &headers, body, std::time::SystemTime::now())
        .map_err(anyhow::Error::msg)?;
    Ok(signed
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect())
}

/// One keep-alive HTTP/1.1 connection on a client executor, to one AWS JSON
/// 1.1 service (its `X-Amz-Target` prefix: [`KINESIS`], Firehose's, ...).
pub struct HttpConn {
    addr: SocketAddr,
    target_prefix: &'static str,
    conn: Connection,
    buf: Vec<u8>,
}

impl HttpConn {
    /// A connection to Kinesis.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<HttpConn> {
        HttpConn::connect_to(addr, KINESIS).await
    }

    /// A connection to the service whose operations `target_prefix` names.
    pub async fn connect_to(
        addr: SocketAddr,
        target_prefix: &'static str,
    ) -> anyhow::Result<HttpConn> {
        let conn = rt::net::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        Ok(HttpConn {
            addr,
            target_prefix,
            conn,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// POSTs one operation; returns the status and the body.
    pub async fn call(&mut self, op: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let auth = auth_headers(self.addr, self.target_prefix, op, body)?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: {}{op}\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: {}\r\n\r\n",
            self.addr,
            self.target_prefix,
            body.len()
        );
        self.conn.write_all(head.as_bytes()).await?;
        self.conn.write_all(body).await?;
        self.conn.flush().await?;
        // Headers, then a Content-Length body.
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let (status, length) = parse_head(&self.buf[..header_end])?;
        while self.buf.len() < header_end + length {
            self.fill().await?;
        }
        let body = self.buf[header_end..header_end + length].to_vec();
        self.buf.drain(..header_end + length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let at = self.buf.len();
        self.buf.resize(at + (64 << 10), 0);
        let n = self.conn.read(&mut self.buf[at..]).await?;
        self.buf.truncate(at + n);
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response's status and Content-Length, from its head (status line and headers).
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let head = std::str::from_utf8(head).context("non-UTF-8 headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .context("no Content-Length in the response")?;
    Ok((status, length))
}

/// A blocking Kinesis call from the main thread (setup and teardown): the JSON
/// answer, or the AWS error as an error.
pub fn admin_call(addr: SocketAddr, op: &str, input: Value) -> anyhow::Result<Value> {
    admin_call_to(addr, KINESIS, op, input)
}

/// [`admin_call`] to the service whose operations `target_prefix` names.
pub fn admin_call_to(
    addr: SocketAddr,
    target_prefix: &str,
    op: &str,
    input: Value,
) -> anyhow::Result<Value> {
    let body = input.to_string();
    let mut conn =
        std::net::TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = auth_headers(addr, target_prefix, op, body.as_bytes())?;
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: {target_prefix}{op}\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(conn);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if reader.read_until(b'\n', &mut head)? == 0 {
            bail!("{op}: the server closed the connection");
        }
    }
    let (code, length) = parse_head(&head)?;
    let mut out = vec![0; length];
    reader.read_exact(&mut out)?;
    let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    if code != 200 {
        bail!("{op}: HTTP {code}: {v}");
    }
    Ok(v)
}

/// Creates a stream and waits until it is ACTIVE; returns its shard ids.
pub fn create_stream(addr: SocketAddr, name: &str, shards: u32) -> anyhow::Result<Vec<String>> {
    admin_call(
        addr,
        "CreateStream",
        json!({"StreamName": name, "ShardCount": shards}),
    )?;
    for _ in 0..600 {
        let d = admin_call(addr, "DescribeStreamSummary", json!({"StreamName": name}))?;
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            let listed = admin_call(addr, "ListShards", json!({"StreamName": name}))?;
            return Ok(listed["Shards"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("stream {name} did not become ACTIVE within 60 s")
}

/// The PutRecords bodies a producer cycles through: `batch` records of
/// `record_size` bytes with its keys, encoded once.
pub fn put_records_bodies(
    stream: &str,
    producer: usize,
    keys: usize,
    batch: usize,
    record_size: usize,
) -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..record_size)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(producer as u64) as u8)
        .collect();
    let data = BASE64.encode(&data);
    let keys = keys.max(1);
    let patterns = (keys / gcd(keys, batch)).min(16);
    (0..patterns)
        .map(|j| {
            let records: Vec<Value> = (0..batch)
                .map(|i| json!({"PartitionKey": format!("p{producer}-k{}", (j * batch + i) % keys), "Data": data}))
                .collect();
            json!({"StreamName": stream, "Records": records}).to_string().into_bytes()
        })
        .collect()
}

/// A closed-loop producer lane over HTTP. Lanes of one producer share `sent`
/// (records whose request started) and stop at `records_max`.
#[allow(clippy::too_many_arguments)]
pub async fn produce(
    addr: SocketAddr,
    bodies: Rc<Vec<Vec<u8>>>,
    batch: usize,
    record_size: usize,
    sent: Rc<std::cell::Cell<u64>>,
    records_max: Option<u64>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
) {
    let mut conn = match HttpConn::connect(addr).await {
        Ok(c) => c,
        Err(e) => return tally.borrow_mut().error(e),
    };
    while shared.producing() && records_max.is_none_or(|m| sent.get() < m) {
        let j = (sent.get() / batch as u64) as usize;
        sent.set(sent.get() + batch as u64);
        let intended = shared.now_ns();
        let result = conn.call("PutRecords", &bodies[j % bodies.len()]).await;
        let done = shared.now_ns();
        let stored = match result {
            Ok((200, body)) => {
                let failed = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["FailedRecordCount"].as_u64())
                    .unwrap_or(batch as u64);
                if failed > 0 {
                    tally
                        .borrow_mut()
                        .error(format!("{failed} records failed in PutRecords"));
                }
                batch as u64 - failed.min(batch as u64)
            }
            Ok((status, body)) => {
                tally.borrow_mut().error(format!(
                    "PutRecords: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
                0
            }
            Err(e) => {
                tally.borrow_mut().error(format!("PutRecords: {e}"));
                break;
            }
        };
        shared.produced.fetch_add(stored, Ordering::Relaxed);
        let mut t = tally.borrow_mut();
        if shared.measuring(done) {
            t.produced_records += stored;
            t.produced_bytes += stored * record_size as u64;
        }
        if shared.measuring(intended) {
            t.ack.record(micros(done - intended)).ok();
        }
    }
}

/// Reads one shard from TRIM_HORIZON until it is caught up (an empty read at
/// the tip).
pub async fn consume(
    addr: SocketAddr,
    stream: String,
    shard_id: String,
    limit: u32,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
) {
    let run = async {
        let mut conn = HttpConn::connect(addr).await?;
        let input =
            json!({"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"});
        let (status, body) = conn
            .call("GetShardIterator", input.to_string().as_bytes())
            .await?;
        if status != 200 {
            bail!(
                "GetShardIterator: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let v: Value = serde_json::from_slice(&body)?;
        let mut it = v["ShardIterator"]
            .as_str()
            .context("no ShardIterator")?
            .to_owned();
        while !shared.stopped() {
            let t0 = shared.now_ns();
            let input = json!({"ShardIterator": it, "Limit": limit});
            let (status, body) = conn
                .call("GetRecords", input.to_string().as_bytes())
                .await?;
            if status != 200 {
                bail!(
                    "GetRecords: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let t1 = shared.now_ns();
            let v: Value = serde_json::from_slice(&body)?;
            let records = v["Records"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut bytes = 0u64;
            for r in records {
                let data = r["Data"].as_str().unwrap_or("");
                bytes += BASE64.decode(data).map(|d| d.len() as u64).unwrap_or(0);
            }
            let n = records.len() as u64;
            shared.consumed.fetch_add(n, Ordering::Relaxed);
            {
                let mut t = tally.borrow_mut();
                t.read.record(micros(t1 - t0)).ok();
                if shared.measuring(t1) {
                    t.consumed_records += n;
                    t.consumed_bytes += bytes;
                }
            }
            let behind = v["MillisBehindLatest"].as_i64().unwrap_or(0);
            match v["NextShardIterator"].as_str() {
                Some(next) if n > 0 || behind > 0 => it = next.to_owned(),
                _ => break,
            }
        }
        Ok(())
    };
    if let Err(e) = run.await {
        tally.borrow_mut().error(e);
    }
    shared.consumers_done.fetch_add(1, Ordering::Relaxed);
    shared
        .last_done
        .fetch_max(shared.now_ns(), Ordering::Relaxed);
}
