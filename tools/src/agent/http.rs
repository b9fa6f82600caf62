//! A small blocking HTTP/1.1 client for the agent's sender threads: POST a
//! body, read the answer; one kept-alive connection per client, plain TCP or
//! TLS (rustls with the system's CAs, `riffle_firehose::http_client::tls_config`).
//! A request on a reused connection that fails before any answer is retried
//! once on a new connection (the server may have closed an idle one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Answers are read up to this size (a PutRecords answer for 500 records is ~60 KB).
const ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Header lines are read up to this size each.
const HEADER_LINE_BYTES_MAX: usize = 16 * 1024;

/// Where requests go: `http(s)://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub secure: bool,
    /// The host, without the port.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses an endpoint URL (a bare `host[:port]` is https, as the AWS SDK reads it).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (secure, rest) = match url.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "endpoint {url}: scheme {scheme} is not http or https"
                ));
            }
            None => (true, url),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                match p.parse::<u16>() {
                    Ok(p) => (h, p),
                    Err(_) => return Err(format!("endpoint {url}: port {p:?} is not a number")),
                }
            }
            _ => (authority, if secure { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("endpoint {url} has no host"));
        }
        Ok(Endpoint {
            secure,
            host: host.to_string(),
            port,
        })
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        match (self.secure, self.port) {
            (true, 443) | (false, 80) => self.host.clone(),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<BufReader<Box<dyn Stream>>>,
    connect_timeout: Duration,
    socket_timeout: Duration,
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        connect_timeout: Duration,
        socket_timeout: Duration,
    ) -> Result<Client, String> {
        let tls = match endpoint.secure {
            true => Some(riffle_firehose::http_client::tls_config(None)?),
            false => None,
        };
        Ok(Client {
            endpoint,
            tls,
            conn: None,
            connect_timeout,
            socket_timeout,
        })
    }

    fn connect(&self) -> Result<BufReader<Box<dyn Stream>>, String> {
        let where_ = format!("{}:{}", self.endpoint.host, self.endpoint.port);
        let addr = where_
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {where_}: {e}"))?
            .next()
            .ok_or_else(|| format!("{where_} has no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, self.connect_timeout)
            .map_err(|e| format!("cannot connect to {where_}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(self.socket_timeout))
            .and_then(|_| tcp.set_write_timeout(Some(self.socket_timeout)))
            .map_err(|e| format!("{where_}: {e}"))?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|e| format!("{}: {e}", self.endpoint.host))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| format!("TLS with {where_}: {e}"))?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        };
        Ok(BufReader::with_capacity(64 * 1024, stream))
    }

    /// POSTs `body` to `/` with `headers` (Host, Content-Length and
    /// Connection are added).
    pub fn post(&mut self, headers: &[(String, String)], body: &[u8]) -> Result<Answer, String> {
        let reused = self.conn.is_some();
        match self.exchange(headers, body) {
            Ok(a) => Ok(a),
            Err((e, answered)) => {
                self.conn = None;
                if reused && !answered {
                    return self.exchange(headers, body).map_err(|(e, _)| {
                        self.conn = None;
                        e
                    });
                }
                Err(e)
            }
        }
    }

    /// One request; the error says whether any answer byte came.
    fn exchange(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Answer, (String, bool)> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().map_err(|e| (e, false))?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.endpoint.authority(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let sent = conn
            .get_mut()
            .write_all(head.as_bytes())
            .and_then(|_| conn.get_mut().write_all(body))
            .and_then(|_| conn.get_mut().flush());
        sent.map_err(|e| {
            (
                format!("sending to {}: {e}", self.endpoint.authority()),
                false,
            )
        })?;
        let authority = self.endpoint.authority();
        let (answer, keep) = read_answer(conn)
            .map_err(|(e, answered)| (format!("answer from {authority}: {e}"), answered))?;
        if !keep {
            self.conn = None;
        }
        Ok(answer)
    }
}

fn line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    let n = r
        .take(HEADER_LINE_BYTES_MAX as u64)
        .read_until(b'\n', buf)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the connection closed".into());
    }
    if buf.last() != Some(&b'\n') {
        return Err("a header line is too long".into());
    }
    Ok(())
}

/// Reads an answer: the body and whether the connection can be reused.
fn read_answer(r: &mut impl BufRead) -> Result<(Answer, bool), (String, bool)> {
    let mut buf = Vec::new();
    line(r, &mut buf).map_err(|e| (e, false))?;
    let status_line = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            (
                format!("not an HTTP answer: {:?}", status_line.trim_end()),
                true,
            )
        })?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = !status_line.starts_with("HTTP/1.0");
    loop {
        line(r, &mut buf).map_err(|e| (e, true))?;
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line(r, &mut buf).map_err(|e| (e, true))?;
            let size_text = String::from_utf8_lossy(&buf);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| ("a bad chunk size".to_string(), true))?;
            if body.len() + size > ANSWER_BYTES_MAX {
                return Err((format!("the answer is over {ANSWER_BYTES_MAX} bytes"), true));
            }
            if size == 0 {
                line(r, &mut buf).map_err(|e| (e, true))?;
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])
                .map_err(|e| (e.to_string(), true))?;
            line(r, &mut buf).map_err(|e| (e, true))?;
        }
    } else if let Some(n) = length {
        if n > ANSWER_BYTES_MAX {
            return Err((format!("the answer is over {ANSWER_BYTES_MAX} bytes"), true));
        }
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|e| (e.to_string(), true))?;
    } else {
        r.take(ANSWER_BYTES_MAX as u64)
            .read_to_end(&mut body)
            .map_err(|e| (e.to_string(), true))?;
        keep = false;
    }
    Ok((Answer { status, body }, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for (url, secure, host, port, authority) in [
            (
                "https://kinesis.us-west-2.amazonaws.com",
                true,
                "kinesis.us-west-2.amazonaws.com",
                443,
                "kinesis.us-west-2.amazonaws.com",
            ),
            (
                "http://127.0.0.1:4567/",
                false,
                "127.0.0.1",
                4567,
                "127.0.0.1:4567",
            ),
            (
                "firehose.eu-west-1.amazonaws.com",
                true,
                "firehose.eu-west-1.amazonaws.com",
                443,
                "firehose.eu-west-1.amazonaws.com",
            ),
            ("http://localhost", false, "localhost", 80, "localhost"),
        ] {
            let e = Endpoint::parse(url).unwrap();
            assert_eq!(
                (e.secure, e.host.as_str(), e.port),
                (secure, host, port),
                "{url}"
            );
            assert_eq!(e.authority(), authority);
        }
        assert!(
            Endpoint::parse("ftp://x")
                .unwrap_err()
                .contains("is not http or https")
        );
        assert!(
            Endpoint::parse("http://x:port")
                .unwrap_err()
                .contains("is not a number")
        );
    }

    #[test]
    fn answers_with_length_chunks_or_close() {
        let read = |raw: &str| {
            read_answer(&mut raw.as_bytes())
                .map(|(a, keep)| (a.status, String::from_utf8(a.body).unwrap(), keep))
        };
        assert_eq!(
            read("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap(),
            (200, "{}".into(), true)
        );
        assert_eq!(
            read("HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n1;x\r\nd\r\n0\r\n\r\n").unwrap(),
            (400, "abcd".into(), false)
        );
        assert_eq!(
            read("HTTP/1.0 503 x\r\n\r\nbusy").unwrap(),
            (503, "busy".into(), false)
        );
        assert_eq!(
            read("").unwrap_err(),
            ("the connection closed".into(), false)
        );
        assert!(
            read("garbage\r\n\r\n")
                .unwrap_err()
                .0
                .starts_with("not an HTTP answer")
        );
        assert!(
            read("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n")
                .unwrap_err()
                .0
                .contains("over")
        );
    }
}
