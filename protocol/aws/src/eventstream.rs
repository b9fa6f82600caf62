//! AWS event-stream framing (`application/vnd.amazon.eventstream`), what
//! SubscribeToShard answers with: a sequence of binary messages, each
//!
//! ```text
//! [total length: u32 BE][headers length: u32 BE][crc32(prelude 8 bytes): u32 BE]
//! [headers][payload][crc32(everything before): u32 BE]
//! header = [name length: u8][name][type: u8 = 7, string][value length: u16 BE][value]
//! ```
//!
//! CRC32 is the IEEE polynomial (not the crc32c of Riffle's own formats). Owns
//! encoding, and a decoder used by tests; knows nothing of Kinesis shapes.

use bytes::{BufMut, Bytes, BytesMut};

/// Header value type 7: a UTF-8 string.
const STRING_TYPE: u8 = 7;
/// Prelude (two lengths and their crc) before the headers.
const PRELUDE_SIZE: usize = 12;
/// The message crc after the payload.
const TRAILER_SIZE: usize = 4;

/// One message with string headers.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    let total = PRELUDE_SIZE + headers_len + payload.len() + TRAILER_SIZE;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(headers_len as u32);
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    for (name, value) in headers {
        debug_assert!(name.len() <= u8::MAX as usize && value.len() <= u16::MAX as usize);
        out.put_u8(name.len() as u8);
        out.put_slice(name.as_bytes());
        out.put_u8(STRING_TYPE);
        out.put_u16(value.len() as u16);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

/// An event message (`:message-type` `event`).
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// An exception message (`:message-type` `exception`), e.g. the stream was
/// deleted while subscribed.
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":exception-type", exception_type),
            (":content-type", content_type),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// A decoded message: its headers and payload.
pub type Decoded = (Vec<(String, String)>, Vec<u8>);

/// Decodes the first message of `buf`, checking both crcs; returns it and the
/// bytes it used. `Ok(None)` when `buf` does not hold a whole message yet.
pub fn decode(buf: &[u8]) -> Result<Option<(Decoded, usize)>, String> {
    if buf.len() < PRELUDE_SIZE {
        return Ok(None);
    }
    let be32 = |at: usize| u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let (total, headers_len) = (be32(0) as usize, be32(4) as usize);
    if be32(8) != crc32fast::hash(&buf[..8]) {
        return Err("prelude crc mismatch".into());
    }
    if total < PRELUDE_SIZE + headers_len + TRAILER_SIZE {
        return Err(format!("total length {total} is too small"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    if be32(total - TRAILER_SIZE) != crc32fast::hash(&buf[..total - TRAILER_SIZE]) {
        return Err("message crc mismatch".into());
    }
    let mut headers = Vec::new();
    let end = PRELUDE_SIZE + headers_len;
    let mut h = &buf[PRELUDE_SIZE..end];
    let short = || "a header runs past the headers".to_string();
    while let Some((&name_len, rest)) = h.split_first() {
        let name = rest.get(..name_len as usize).ok_or_else(short)?;
        let rest = &rest[name.len()..];
        let (&kind, rest) = rest.split_first().ok_or_else(short)?;
        let name = String::from_utf8_lossy(name).into_owned();
        if kind != STRING_TYPE {
            return Err(format!("header {name} has type {kind}"));
        }
        let len = rest.get(..2).ok_or_else(short)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let value = rest.get(2..2 + len).ok_or_else(short)?;
        headers.push((name, String::from_utf8_lossy(value).into_owned()));
        h = &rest[2 + len..];
    }
    let payload = buf[end..total - TRAILER_SIZE].to_vec();
    Ok(Some(((headers, payload), total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_corruption_is_caught() {
        let a = event("initial-response", "application/x-amz-json-1.1", b"{}");
        let b = exception(
            "ResourceNotFoundException",
            "application/json",
            b"{\"message\":\"x\"}",
        );
        let mut stream = a.to_vec();
        stream.extend_from_slice(&b);
        let ((headers, payload), used) = decode(&stream).unwrap().unwrap();
        assert_eq!(used, a.len());
        assert_eq!(payload, b"{}");
        assert_eq!(
            headers[0],
            (":event-type".into(), "initial-response".into())
        );
        assert_eq!(headers[2], (":message-type".into(), "event".into()));
        let ((headers, _), _) = decode(&stream[used..]).unwrap().unwrap();
        assert_eq!(headers[0].1, "ResourceNotFoundException");
        // Headers that claim more than they hold are refused, not a panic.
        let mut bad = message(&[("n", "v")], b"");
        let mut raw = bad.to_vec();
        raw[12] = 200; // the name's length
        let crc = crc32fast::hash(&raw[..raw.len() - 4]);
        let at = raw.len() - 4;
        raw[at..].copy_from_slice(&crc.to_be_bytes());
        bad = Bytes::from(raw);
        assert!(decode(&bad).is_err());
        // A message cut short waits for more; a flipped bit is refused.
        assert_eq!(decode(&a[..a.len() - 1]).unwrap(), None);
        for at in [0, 9, 20, a.len() - 1] {
            let mut bad = a.to_vec();
            bad[at] ^= 1;
            assert!(
                decode(&bad).is_err() || decode(&bad).unwrap().is_none(),
                "bit at {at}"
            );
        }
    }

    /// The known-answer vector: an empty message is 16 bytes, total length 16,
    /// headers 0, and the prelude crc of `00 00 00 10 00 00 00 00`.
    #[test]
    fn an_empty_message_matches_the_format() {
        let m = message(&[], b"");
        assert_eq!(&m[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&m[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(m.len(), 16);
    }
}
