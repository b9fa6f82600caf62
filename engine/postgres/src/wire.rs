//! PostgreSQL's frontend/backend protocol 3.0: the messages this client
//! sends, and reading the server's.
//!
//! Wire format: the startup message is `[len:i32][196608:i32]([name]\0[value]\0)*\0`;
//! every other message is `[tag:u8][len:i32][body]`, where `len` counts
//! itself and the body, big-endian. Strings are NUL-terminated.

use futures_lite::{AsyncRead, AsyncReadExt};

use crate::error::PgError;

/// The largest backend message accepted: rows of the small queries this
/// client runs, and error texts, are far below it; a bigger length means a
/// broken or hostile peer, refused before allocating.
pub const MESSAGE_SIZE_MAX: usize = 16 * 1024 * 1024;

/// The largest CopyData payload sent: PostgreSQL accepts any size, and 64 KiB
/// keeps each write small while costing 5 bytes of framing per 64 KiB.
pub const COPY_CHUNK_SIZE_MAX: usize = 64 * 1024;

/// The most a query's answer may hold, counted as its DataRow bodies plus
/// the room each value takes in [`crate::Rows`]: the queries this client
/// runs answer a few rows; a server sending more is broken or hostile, and
/// the rows are dropped (read on to ReadyForQuery, not kept).
pub const QUERY_ANSWER_SIZE_MAX: usize = 16 * 1024 * 1024;

/// The most distinct ParameterStatus names kept: PostgreSQL reports about
/// 15 (`server_version`, `client_encoding`, ...); more is a hostile server.
pub const PARAMETER_COUNT_MAX: usize = 64;

/// The most bytes of ParameterStatus names and values kept, all together.
pub const PARAMETERS_SIZE_MAX: usize = 64 * 1024;

const _: () = assert!(QUERY_ANSWER_SIZE_MAX >= MESSAGE_SIZE_MAX);
const _: () = assert!(PARAMETERS_SIZE_MAX < MESSAGE_SIZE_MAX);

/// Protocol version 3.0.
const PROTOCOL_VERSION: i32 = 196_608;

/// A message from the server: its tag and its body (without the length).
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// Reads one message. Refuses lengths below 4 or above [`MESSAGE_SIZE_MAX`].
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Message, PgError> {
    let mut header = [0u8; 5];
    reader.read_exact(&mut header).await?;
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let body_len = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_sub(4))
        .filter(|&l| l <= MESSAGE_SIZE_MAX)
        .ok_or_else(|| {
            PgError::Protocol(format!(
                "message '{}' has a bad length {len}",
                header[0].escape_ascii()
            ))
        })?;
    let mut body = vec![0u8; body_len];
    reader.read_exact(&mut body).await?;
    Ok(Message {
        tag: header[0],
        body,
    })
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[&[u8]]) {
    let len: usize = 4 + body.iter().map(|b| b.len()).sum::<usize>();
    out.push(tag);
    out.extend_from_slice(&(len as i32).to_be_bytes());
    for part in body {
        out.extend_from_slice(part);
    }
}

pub fn startup(out: &mut Vec<u8>, params: &[(&str, &str)]) {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    for (name, value) in params {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
}

/// PasswordMessage: a cleartext or MD5 password.
pub fn password(out: &mut Vec<u8>, password: &[u8]) {
    frame(out, b'p', &[password, b"\0"]);
}

pub fn sasl_initial_response(out: &mut Vec<u8>, mechanism: &str, data: &[u8]) {
    let len = (data.len() as i32).to_be_bytes();
    frame(out, b'p', &[mechanism.as_bytes(), b"\0", &len, data]);
}

pub fn sasl_response(out: &mut Vec<u8>, data: &[u8]) {
    frame(out, b'p', &[data]);
}

pub fn query(out: &mut Vec<u8>, sql: &str) {
    frame(out, b'Q', &[sql.as_bytes(), b"\0"]);
}

pub fn copy_data(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(data.len() <= COPY_CHUNK_SIZE_MAX);
    frame(out, b'd', &[data]);
}

pub fn copy_done(out: &mut Vec<u8>) {
    frame(out, b'c', &[]);
}

pub fn copy_fail(out: &mut Vec<u8>, reason: &str) {
    frame(out, b'f', &[reason.as_bytes(), b"\0"]);
}

pub fn terminate(out: &mut Vec<u8>) {
    frame(out, b'X', &[]);
}

/// Reads a message body field by field.
pub struct Body<'a> {
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    pub fn new(bytes: &'a [u8]) -> Body<'a> {
        Body { bytes }
    }

    pub fn i32(&mut self) -> Result<i32, PgError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| PgError::Protocol("message too short".into()))?;
        self.bytes = rest;
        Ok(i32::from_be_bytes(*head))
    }

    pub fn i16(&mut self) -> Result<i16, PgError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<2>()
            .ok_or_else(|| PgError::Protocol("message too short".into()))?;
        self.bytes = rest;
        Ok(i16::from_be_bytes(*head))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        if n > self.bytes.len() {
            return Err(PgError::Protocol("message too short".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn cstr(&mut self) -> Result<&'a str, PgError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| PgError::Protocol("string without NUL".into()))?;
        let s = std::str::from_utf8(&self.bytes[..end])
            .map_err(|_| PgError::Protocol("string is not UTF-8".into()))?;
        self.bytes = &self.bytes[end + 1..];
        Ok(s)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A DataRow's columns as text (NULL → `None`).
pub fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, PgError> {
    let mut b = Body::new(body);
    let count = b.i16()?;
    let mut row = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let len = b.i32()?;
        if len < 0 {
            row.push(None);
        } else {
            let bytes = b.bytes(len as usize)?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| PgError::Protocol("a column value is not UTF-8".into()))?;
            row.push(Some(text));
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_frontend_bytes() {
        let mut out = Vec::new();
        query(&mut out, "SELECT 1");
        assert_eq!(out, b"Q\0\0\0\x0dSELECT 1\0");
        out.clear();
        startup(&mut out, &[("user", "u")]);
        assert_eq!(out, b"\0\0\0\x10\0\x03\0\0user\0u\0\0");
        out.clear();
        sasl_initial_response(&mut out, "M", b"ab");
        assert_eq!(out, b"p\0\0\0\x0cM\0\0\0\0\x02ab");
        out.clear();
        copy_done(&mut out);
        copy_fail(&mut out, "x");
        terminate(&mut out);
        assert_eq!(out, b"c\0\0\0\x04f\0\0\0\x06x\0X\0\0\0\x04");
    }

    #[test]
    fn reads_messages_and_refuses_bad_lengths() {
        let bytes: &[u8] = b"Z\0\0\0\x05I";
        let m = futures_lite::future::block_on(read_message(&mut &bytes[..])).unwrap();
        assert_eq!(
            m,
            Message {
                tag: b'Z',
                body: b"I".to_vec()
            }
        );
        for bad in [
            &b"Z\0\0\0\x03"[..],
            b"D\x7f\xff\xff\xff",
            b"D\xff\xff\xff\xff",
        ] {
            let e = futures_lite::future::block_on(read_message(&mut &bad[..])).unwrap_err();
            assert!(e.to_string().contains("bad length"), "{e}");
        }
        let truncated: &[u8] = b"Z\0\0\0\x09ab";
        let e = futures_lite::future::block_on(read_message(&mut &truncated[..])).unwrap_err();
        assert!(matches!(e, PgError::Io(_)), "{e}");
    }

    #[test]
    fn data_rows() {
        let body = b"\0\x03\0\0\0\x01a\xff\xff\xff\xff\0\0\0\0";
        assert_eq!(
            data_row(body).unwrap(),
            vec![Some("a".into()), None, Some(String::new())]
        );
        assert!(data_row(b"\0\x01\0\0\0\x05ab").is_err());
    }
}
