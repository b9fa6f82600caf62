//! The body format of an AWS JSON-protocol request (`X-Amz-Target` services:
//! Kinesis, Firehose, Analytics) and so of its answer: JSON 1.1, or CBOR 1.1 when
//! the request's Content-Type says so (the Java SDK's default for Kinesis).

use bytes::Bytes;
use serde_json::Value;

use crate::cbor;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// The body format of a request, and so of its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    /// The format a request's headers name (JSON unless the Content-Type says CBOR).
    pub fn of(headers: &http::HeaderMap) -> Format {
        let cbor = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("cbor"));
        if cbor { Format::Cbor } else { Format::Json }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_CONTENT_TYPE,
            Format::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// Encodes an answer; `members` names the blob and timestamp members that
    /// CBOR encodes apart from their JSON form.
    pub fn encode(self, v: &Value, members: &cbor::Members) -> Bytes {
        match self {
            Format::Json => Bytes::from(v.to_string()),
            Format::Cbor => Bytes::from(cbor::from_json(v, members)),
        }
    }

    /// Decodes a request body into its JSON form: an object (an empty or
    /// all-whitespace body is `{}`), or AWS's SerializationException text.
    pub fn decode_object(self, body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        let decoded = match self {
            Format::Json => {
                serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
            }
            Format::Cbor => cbor::to_json(body),
        };
        match decoded? {
            Value::Object(m) => Ok(m),
            _ => Err("Start of structure or map expected".into()),
        }
    }
}
