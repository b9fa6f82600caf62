//! h2c by upgrade (RFC 7540 §3.2): an HTTP/1.1 request with `Upgrade: h2c`
//! on a cleartext connection is answered `101 Switching Protocols`, and the
//! connection continues as HTTP/2 with that request as stream 1.
//!
//! hyper serves h2c only with prior knowledge, so the upgrade happens before
//! hyper sees the connection: [`sniff`] reads the first request head. Anything
//! that is not an upgrade (HTTP/1.1, the HTTP/2 preface) is handed to hyper
//! untouched through [`Rewound`]. For an upgrade, the server reads the request's
//! body, sends the 101, reads the client's preface and SETTINGS frame, and
//! hands hyper the preface, that SETTINGS frame, then the upgraded request
//! re-encoded as HTTP/2 frames on stream 1 (HPACK literals, no compression),
//! then the rest of the connection. hyper answers stream 1 like any other.
//!
//! The upgrade is declined (the request is served over HTTP/1.1, as RFC 7540
//! allows) when the request lacks `HTTP2-Settings`, has a chunked body, or
//! does not fit the HTTP/2 defaults the client has not yet agreed to raise: a
//! header block over one 16 KiB frame or a body over the 64 KiB initial window.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The HTTP/2 connection preface a client sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first request's head must fit in this; a longer one goes to hyper as is.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE.
const FRAME_SIZE_MAX: usize = 16 * 1024;
/// HTTP/2's default initial flow-control window: the body must fit in it.
const WINDOW_BYTES: usize = 65_535;
/// A frame header: length (24 bits), type, flags, stream id.
const FRAME_HEADER_SIZE: usize = 9;

const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_SETTINGS: u8 = 0x4;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;

/// A connection with bytes already read from it in front.
pub struct Rewound<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewound<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewound<S> {
        Rewound {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.at < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.at);
            buf[..n].copy_from_slice(&self.prefix[self.at..self.at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Reads the connection's first request head and, if it asks for h2c, performs
/// the upgrade. Either way returns the connection for hyper, with every byte
/// read so far in front of it.
pub async fn sniff<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> io::Result<Rewound<S>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        // HTTP/2 with prior knowledge, or not HTTP at all: hyper's business.
        if buf.len() >= 4 && (buf.starts_with(b"PRI ") || !is_token_start(&buf)) {
            return Ok(Rewound::new(buf, io));
        }
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() >= HEAD_BYTES_MAX {
            return Ok(Rewound::new(buf, io));
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Rewound::new(buf, io));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Some(request) = UpgradeRequest::parse(&buf[..head_end]) else {
        return Ok(Rewound::new(buf, io));
    };
    // The body (Content-Length only; checked to fit the window).
    while buf.len() < head_end + request.body_len {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Rewound::new(buf, io));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + request.body_len].to_vec();
    // Bytes after the body would be a pipelined HTTP/1.1 request; a client
    // asking to upgrade waits for the 101 first, so there are none.
    if buf.len() > head_end + request.body_len {
        return Ok(Rewound::new(buf, io));
    }
    io.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await?;
    io.flush().await?;
    // The client's preface and SETTINGS frame come first; stream 1 goes after.
    let mut rest = Vec::new();
    let settings_end = loop {
        if rest.len() >= PREFACE.len() + FRAME_HEADER_SIZE {
            if !rest.starts_with(PREFACE) || rest[PREFACE.len() + 3] != FRAME_SETTINGS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "h2c upgrade: the client did not send the HTTP/2 preface and SETTINGS",
                ));
            }
            let h = &rest[PREFACE.len()..];
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            // A SETTINGS payload is 6 bytes per setting, within the default
            // frame size: this bounds what is buffered here.
            if len > FRAME_SIZE_MAX || !len.is_multiple_of(6) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("h2c upgrade: a SETTINGS frame of {len} bytes"),
                ));
            }
            let end = PREFACE.len() + FRAME_HEADER_SIZE + len;
            if rest.len() >= end {
                break end;
            }
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        rest.extend_from_slice(&chunk[..n]);
    };
    let mut replay = rest[..settings_end].to_vec();
    replay.extend_from_slice(&request.stream_one(&body));
    replay.extend_from_slice(&rest[settings_end..]);
    Ok(Rewound::new(replay, io))
}

/// Whether `buf` may start an HTTP/1.1 request line (a method token, e.g.
/// `GET ` or `POST`).
fn is_token_start(buf: &[u8]) -> bool {
    buf.iter()
        .take(4)
        .take_while(|&&b| b != b' ')
        .all(u8::is_ascii_alphabetic)
        && buf[0] != b' '
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 request that asks for h2c and can be upgraded.
#[derive(Debug, PartialEq, Eq)]
struct UpgradeRequest {
    method: String,
    path: String,
    authority: String,
    /// Lowercase names; connection-specific headers removed.
    headers: Vec<(String, Vec<u8>)>,
    body_len: usize,
}

impl UpgradeRequest {
    /// The request in `head` if it asks for h2c (Upgrade: h2c, Connection naming
    /// Upgrade and HTTP2-Settings, one HTTP2-Settings) and can be upgraded.
    fn parse(head: &[u8]) -> Option<UpgradeRequest> {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) || req.version != Some(1) {
            return None;
        }
        let values = |name: &str| {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect::<Vec<_>>()
        };
        let get = |name: &str| {
            values(name)
                .into_iter()
                .map(|v| v.to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let tokens = |values: Vec<String>| {
            values
                .iter()
                .flat_map(|v| {
                    v.split(',')
                        .map(|t| t.trim().to_owned())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let upgrade = tokens(get("upgrade"));
        let connection = tokens(get("connection"));
        if !upgrade.iter().any(|t| t == "h2c")
            || !connection.iter().any(|t| t == "upgrade")
            || !connection.iter().any(|t| t == "http2-settings")
            || get("http2-settings").len() != 1
            || !get("transfer-encoding").is_empty()
            // The client would wait for a 100 before sending the body.
            || !get("expect").is_empty()
            // Only origin-form targets become an HTTP/2 `:path`.
            || !req.path.is_some_and(|p| p.starts_with('/'))
        {
            return None;
        }
        let body_len = match get("content-length").as_slice() {
            [] => 0,
            [len] => len.parse().ok()?,
            _ => return None,
        };
        if body_len > WINDOW_BYTES {
            return None;
        }
        const HOP_BY_HOP: [&str; 8] = [
            "connection",
            "upgrade",
            "http2-settings",
            "host",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
        ];
        let request = UpgradeRequest {
            method: req.method?.to_owned(),
            path: req.path?.to_owned(),
            authority: values("host").into_iter().next().unwrap_or_default(),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
                .collect(),
            body_len,
        };
        (request.header_block().len() <= FRAME_SIZE_MAX).then_some(request)
    }

    /// The HPACK block: every field a literal without indexing, new name, no
    /// Huffman coding (RFC 7541 §6.2.2).
    fn header_block(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |name: &[u8], value: &[u8]| {
            out.push(0x00);
            hpack_int(&mut out, name.len());
            out.extend_from_slice(name);
            hpack_int(&mut out, value.len());
            out.extend_from_slice(value);
        };
        field(b":method", self.method.as_bytes());
        field(b":scheme", b"http");
        field(b":path", self.path.as_bytes());
        if !self.authority.is_empty() {
            field(b":authority", self.authority.as_bytes());
        }
        for (name, value) in &self.headers {
            field(name.as_bytes(), value);
        }
        out
    }

    /// Stream 1: one HEADERS frame, then the body in DATA frames.
    fn stream_one(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let block = self.header_block();
        let end = if body.is_empty() { FLAG_END_STREAM } else { 0 };
        frame(&mut out, FRAME_HEADERS, FLAG_END_HEADERS | end, &block);
        let chunks: Vec<&[u8]> = body.chunks(FRAME_SIZE_MAX).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            frame(
                &mut out,
                FRAME_DATA,
                if last { FLAG_END_STREAM } else { 0 },
                chunk,
            );
        }
        out
    }
}

/// An HPACK integer with a 7-bit prefix and the H (Huffman) bit clear.
fn hpack_int(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// One frame on stream 1.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: h:1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nX-Amz-Target: K.ListStreams\r\nContent-Length: 2\r\n\r\n";

    #[test]
    fn an_upgrade_request_becomes_stream_one() {
        let r = UpgradeRequest::parse(HEAD).unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.authority.as_str()),
            ("POST", "/", "h:1")
        );
        assert_eq!(
            r.headers,
            [
                ("x-amz-target".into(), b"K.ListStreams".to_vec()),
                ("content-length".into(), b"2".to_vec())
            ]
        );
        let frames = r.stream_one(b"{}");
        // HEADERS (END_HEADERS) on stream 1, then DATA (END_STREAM) with the body.
        let len = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
        assert_eq!(
            (frames[3], frames[4], &frames[5..9]),
            (FRAME_HEADERS, FLAG_END_HEADERS, &[0, 0, 0, 1][..])
        );
        let data = &frames[9 + len..];
        assert_eq!(
            (data[3], data[4], &data[9..]),
            (FRAME_DATA, FLAG_END_STREAM, &b"{}"[..])
        );
        // The block starts with the literal `:method: POST`.
        assert_eq!(&frames[9..9 + 14], b"\x00\x07:method\x04POST");
    }

    #[test]
    fn requests_that_cannot_upgrade_are_left_alone() {
        let without = |what: &str| {
            let head = String::from_utf8(HEAD.to_vec()).unwrap();
            head.lines()
                .filter(|l| !l.starts_with(what))
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n"
        };
        assert!(UpgradeRequest::parse(without("HTTP2-Settings").as_bytes()).is_none());
        assert!(UpgradeRequest::parse(without("Upgrade").as_bytes()).is_none());
        let big = String::from_utf8(HEAD.to_vec())
            .unwrap()
            .replace("Length: 2", "Length: 70000");
        assert!(UpgradeRequest::parse(big.as_bytes()).is_none());
        let chunked = String::from_utf8(HEAD.to_vec())
            .unwrap()
            .replace("Content-Length: 2", "Transfer-Encoding: chunked");
        assert!(UpgradeRequest::parse(chunked.as_bytes()).is_none());
        assert!(UpgradeRequest::parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").is_none());
        let expect = String::from_utf8(HEAD.to_vec()).unwrap().replace(
            "Content-Length: 2",
            "Content-Length: 2\r\nExpect: 100-continue",
        );
        assert!(UpgradeRequest::parse(expect.as_bytes()).is_none());
        let absolute = String::from_utf8(HEAD.to_vec())
            .unwrap()
            .replace("POST / ", "POST http://h:1/ ");
        assert!(UpgradeRequest::parse(absolute.as_bytes()).is_none());
    }

    #[test]
    fn the_host_keeps_its_case_and_short_methods_are_sniffed() {
        let head = String::from_utf8(HEAD.to_vec())
            .unwrap()
            .replace("Host: h:1", "Host: Kinesis.Local");
        assert_eq!(
            UpgradeRequest::parse(head.as_bytes()).unwrap().authority,
            "Kinesis.Local"
        );
        assert!(is_token_start(b"GET /"));
        assert!(is_token_start(b"POST"));
        assert!(!is_token_start(b"PRI\x00"));
        assert!(!is_token_start(b" GET"));
        assert!(!is_token_start(b"\x16\x03\x01\x02"));
    }

    #[test]
    fn hpack_integers_use_the_seven_bit_prefix() {
        let enc = |n| {
            let mut v = Vec::new();
            hpack_int(&mut v, n);
            v
        };
        assert_eq!(enc(10), [10]);
        assert_eq!(enc(126), [126]);
        assert_eq!(enc(127), [127, 0]);
        // RFC 7541 C.1.2 uses a 5-bit prefix; with 7 bits, 1337 = 127 + 1210.
        assert_eq!(enc(1337), [127, 0xba, 0x09]);
    }
}
