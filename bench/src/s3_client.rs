//! The bench's minimal blocking S3 client, shared by the `firehose` scenario
//! (make the bucket, list and read the delivered objects, clean up) and
//! `s3-put` (the measured PutObject and multipart uploads): path-style
//! requests, SigV4 with an unsigned payload (`riffle_aws::sign`, Firehose's
//! signer), one `TcpStream` connection per request with `Connection: close`
//! (as Firehose does), answers read to the end, chunked bodies included.
//! Also the small helpers around it: status checks, the text of an XML
//! element, query encoding, S3's timestamps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use riffle_aws::sign::{Signer, encode_key, encode_query};

/// A credential from its flag, or else from the environment variable `env`.
pub fn credential(flag: &Option<String>, env: &str) -> Option<String> {
    flag.clone().or_else(|| std::env::var(env).ok())
}

/// An HTTP answer: status, headers (names lower-cased), body.
pub struct Answer {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The answer if 2xx and not an `<Error>` (CompleteMultipartUpload may
    /// fail after answering 200), else an error naming `what`.
    pub fn ok(self, what: &str) -> anyhow::Result<Answer> {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(4096)]);
        if (200..300).contains(&self.status) && !text.contains("<Error>") {
            return Ok(self);
        }
        bail!("S3 {what}: HTTP {}: {text}", self.status)
    }
}

/// An object of a listing.
pub struct Listed {
    pub key: String,
    /// The object's time on the wall clock, µs since the Unix epoch.
    pub time_us: i64,
}

/// A blocking path-style S3 client, one connection per request.
pub struct S3 {
    addr: SocketAddr,
    host: String,
    signer: Signer,
}

impl S3 {
    /// A client of `endpoint` (`http://HOST[:PORT]`) signing with the keys.
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> anyhow::Result<S3> {
        let Some(host) = endpoint.trim_end_matches('/').strip_prefix("http://") else {
            bail!("--s3-endpoint {endpoint} must be http://HOST:PORT");
        };
        let with_port = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("--s3-endpoint {endpoint}"))?
            .next()
            .with_context(|| format!("--s3-endpoint {endpoint} resolves to nothing"))?;
        Ok(S3 {
            addr,
            host: host.to_string(),
            signer: Signer {
                access_key: access_key.into(),
                secret_key: secret_key.into(),
                region: "us-east-1".into(),
                service: "s3".into(),
            },
        })
    }

    /// The endpoint's `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The access key and the secret key.
    pub fn keys(&self) -> (&str, &str) {
        (&self.signer.access_key, &self.signer.secret_key)
    }

    /// One signed request with `body` (empty for none).
    pub fn call(&self, method: &str, uri: &str, body: &[u8]) -> anyhow::Result<Answer> {
        let signed = self
            .signer
            .sign(method, uri, &[("host", &self.host)], SystemTime::now())
            .map_err(anyhow::Error::msg)?;
        let mut head = format!(
            "{method} {uri} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.host,
            body.len()
        );
        for (k, v) in signed {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut conn = TcpStream::connect(self.addr)
            .with_context(|| format!("cannot reach the S3 server at {}", self.addr))?;
        conn.set_read_timeout(Some(Duration::from_secs(120)))?;
        conn.set_nodelay(true)?;
        conn.write_all(head.as_bytes())?;
        conn.write_all(body)?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        parse_answer(&raw)
    }

    /// CreateBucket; a bucket that is already there (409) will do.
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let answer = self.call("PUT", &format!("/{bucket}"), &[])?;
        if answer.status != 409 {
            answer.ok(&format!("CreateBucket {bucket}"))?;
        }
        Ok(())
    }

    /// DeleteBucket.
    pub fn delete_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.call("DELETE", &format!("/{bucket}"), &[])?
            .ok(&format!("DeleteBucket {bucket}"))?;
        Ok(())
    }

    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) -> anyhow::Result<()> {
        let uri = format!("/{bucket}/{}", encode_key(key));
        self.call("PUT", &uri, body)?
            .ok(&format!("PutObject {uri}"))?;
        Ok(())
    }

    /// GetObject: the object's bytes (any body of a 200, even one that
    /// holds `<Error>`).
    pub fn get_object(&self, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
        let answer = self.call("GET", &format!("/{bucket}/{}", encode_key(key)), &[])?;
        if answer.status != 200 {
            bail!(
                "S3 GetObject {key}: HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(answer.body)
    }

    /// DeleteObject; an object that is not there (404) will do.
    pub fn delete_object(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        let uri = format!("/{bucket}/{}", encode_key(key));
        let answer = self.call("DELETE", &uri, &[])?;
        if answer.status != 404 {
            answer.ok(&format!("DeleteObject {uri}"))?;
        }
        Ok(())
    }

    /// ListObjectsV2, every page; no bucket (404) lists nothing.
    pub fn list_objects(&self, bucket: &str) -> anyhow::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut uri = format!("/{bucket}?list-type=2");
            if let Some(t) = &token {
                uri.push_str(&format!("&continuation-token={}", encode_query(t)));
            }
            let answer = self.call("GET", &uri, &[])?;
            if answer.status == 404 {
                return Ok(out);
            }
            let answer = answer.ok(&format!("ListObjectsV2 {bucket}"))?;
            let xml = String::from_utf8_lossy(&answer.body);
            for contents in xml.split("<Contents>").skip(1) {
                let key = xml_field(contents, "Key").context("S3: an object without a Key")?;
                let time = xml_field(contents, "LastModified")
                    .and_then(|t| parse_time_us(&t))
                    .with_context(|| format!("S3: no LastModified for {key}"))?;
                out.push(Listed { key, time_us: time });
            }
            match (
                xml_field(&xml, "IsTruncated").as_deref(),
                xml_field(&xml, "NextContinuationToken"),
            ) {
                (Some("true"), Some(next)) => token = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

/// Reads an HTTP/1.1 answer from a connection the server closes after it.
pub fn parse_answer(raw: &[u8]) -> anyhow::Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("S3: no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).context("S3: non-UTF-8 headers")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("S3: no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        match headers.iter().find(|(k, _)| k == "content-length") {
            Some((_, n)) => {
                let n: usize = n.parse().context("S3: bad Content-Length")?;
                rest.get(..n).context("S3: short body")?.to_vec()
            }
            None => rest.to_vec(),
        }
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A chunked body's data.
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("S3: bad chunk")?;
        let size = std::str::from_utf8(&rest[..eol])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("S3: bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).context("S3: short chunk")?);
        rest = rest.get(size + 2..).context("S3: short chunk")?;
    }
}

/// The text of the first `<name>` element in `xml`, entities decoded.
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `2026-12-03T04:07:29.123Z` (fraction optional) as µs since the Unix epoch.
fn parse_time_us(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let micros = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        digits.parse::<i64>().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn answers_parse_with_length_or_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 3\r\n\r\nxyzextra";
        let a = parse_answer(raw).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"xyz"[..]));
        assert_eq!(a.header("etag"), Some("\"abc\""));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<Er\r\n5\r\nror>x\r\n0\r\n\r\n";
        let a = parse_answer(raw).unwrap();
        assert_eq!(a.body, b"<Error>x");
        assert!(a.ok("CompleteMultipartUpload").is_err());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_err());
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nabc").is_err());
    }

    #[test]
    fn s3_times_parse() {
        assert_eq!(parse_time_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time_us("2018-08-27T10:30:00.250Z"),
            Some(1_535_365_800_250_000)
        );
        assert_eq!(parse_time_us("2018-08-27 10:30:00"), None);
    }

    #[test]
    fn fields_and_queries_encode() {
        let xml = "<R><UploadId>a&amp;b</UploadId><Key>x&lt;y</Key></R>";
        assert_eq!(xml_field(xml, "UploadId").as_deref(), Some("a&b"));
        assert_eq!(xml_field(xml, "Key").as_deref(), Some("x<y"));
        assert_eq!(xml_field(xml, "ETag"), None);
        assert_eq!(encode_query("a b/~"), "a%20b%2F~");
    }

    /// A server on loopback that answers each of `answers` to one request
    /// and hands back the requests it read.
    fn serve(answers: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as many bytes as Content-Length says.
                loop {
                    let n = conn.read(&mut buf).unwrap();
                    raw.extend_from_slice(&buf[..n]);
                    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if raw.len() >= end + 4 + len || n == 0 {
                        break;
                    }
                }
                conn.write_all(answer).unwrap();
                requests.push(raw);
            }
            requests
        });
        (endpoint, server)
    }

    #[test]
    fn requests_are_signed_and_listings_page() {
        let (endpoint, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              4c\r\n<R><Contents><Key>a/1</Key><LastModified>1970-01-01T00:00:01Z</LastModified>\r\n\
              60\r\n</Contents><IsTruncated>true</IsTruncated><NextContinuationToken>t+1</NextContinuationToken></R>\r\n\
              0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 91\r\n\r\n\
              <R><Contents><Key>b</Key><LastModified>1970-01-01T00:00:02.5Z</LastModified></Contents></R>",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnokey",
        ]);
        let s3 = S3::new(&endpoint, "AK", "SK").unwrap();
        s3.put_object("bkt", "k 1", b"hello").unwrap();
        let listed = s3.list_objects("bkt").unwrap();
        let got: Vec<_> = listed.iter().map(|o| (o.key.as_str(), o.time_us)).collect();
        assert_eq!(got, [("a/1", 1_000_000), ("b", 2_500_000)]);
        let e = s3.get_object("bkt", "gone").unwrap_err().to_string();
        assert!(e.contains("GetObject gone: HTTP 404: nokey"), "{e}");
        let requests: Vec<String> = server
            .join()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert!(requests[0].starts_with("PUT /bkt/k%201 HTTP/1.1\r\n"));
        assert!(requests[0].contains("Content-Length: 5\r\n"));
        assert!(
            requests[0]
                .to_ascii_lowercase()
                .contains("authorization: aws4-hmac-sha256 credential=ak/")
        );
        assert!(requests[0].ends_with("\r\n\r\nhello"));
        assert!(requests[1].starts_with("GET /bkt?list-type=2 HTTP/1.1\r\n"));
        assert!(requests[2].starts_with("GET /bkt?list-type=2&continuation-token=t%2B1 HTTP/1.1"));
    }
}
