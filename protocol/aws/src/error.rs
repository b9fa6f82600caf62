//! AWS error answers: a `Refusal` (HTTP status, AWS's exception name, message) and
//! its encodings, for JSON-protocol services (`__type` and `message` in the body,
//! in the request's format) and REST-JSON services (`x-amzn-ErrorType` header and
//! `message` in a JSON body). Both carry `x-amzn-ErrorType`, which every SDK reads.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::cbor::Members;
use crate::json::Format;

/// A refusal in AWS form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    /// AWS's exception name (`__type`), e.g. `ResourceNotFoundException`.
    pub kind: String,
    /// Empty: the answer carries no message (AWS's UnknownOperationException).
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// 400 with `kind`.
    pub fn client(kind: &str, message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, kind, message)
    }

    pub fn validation(message: impl Into<String>) -> Refusal {
        Refusal::client("ValidationException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Refusal {
        Refusal::client("SerializationException", message)
    }

    /// AWS answers an operation it does not know with no message.
    pub fn unknown_operation() -> Refusal {
        Refusal::client("UnknownOperationException", "")
    }

    /// The JSON form of the body: `__type` and the message (AWS spells it
    /// `Message` in SerializationException, `message` elsewhere).
    pub fn body_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("__type".into(), Value::String(self.kind.clone()));
        if !self.message.is_empty() {
            let key = if self.kind == "SerializationException" {
                "Message"
            } else {
                "message"
            };
            m.insert(key.into(), Value::String(self.message.clone()));
        }
        Value::Object(m)
    }

    /// The answer of a JSON-protocol service, in the request's format.
    pub fn to_response(&self, format: Format) -> http::Response<Bytes> {
        let body = format.encode(&self.body_json(), &Members::default());
        http::Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, format.content_type())
            .header("x-amzn-ErrorType", self.kind.as_str())
            .body(body)
            .expect("a valid response")
    }

    /// The answer of a REST-JSON service (Video, Lambda).
    pub fn to_rest_response(&self) -> http::Response<Bytes> {
        let mut m = Map::new();
        m.insert("message".into(), Value::String(self.message.clone()));
        http::Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-amzn-ErrorType", self.kind.as_str())
            .body(Bytes::from(Value::Object(m).to_string()))
            .expect("a valid response")
    }
}

/// A 200 answer of a JSON-protocol service whose body is encoded in `format`.
pub fn ok_response(format: Format, body: Bytes) -> http::Response<Bytes> {
    http::Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, format.content_type())
        .body(body)
        .expect("a valid response")
}

impl From<riffle_protocol::Error> for Refusal {
    fn from(e: riffle_protocol::Error) -> Refusal {
        use riffle_protocol::ErrorCode;
        let status = match e.code {
            ErrorCode::Internal | ErrorCode::StorageFailed => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Refusal::new(status, e.code.aws_name(), e.message)
    }
}

impl From<crate::model::InputError> for Refusal {
    /// AWS's answer to an input its model refuses: the exception and its
    /// message (none for an unknown operation).
    fn from(e: crate::model::InputError) -> Refusal {
        match e {
            crate::model::InputError::UnknownOperation(_) => Refusal::unknown_operation(),
            other => Refusal::client(other.kind(), other.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_exception_and_carry_the_message_as_aws_spells_it() {
        let check = |r: Refusal, body: &str| {
            let resp = r.to_response(Format::Json);
            assert_eq!(resp.headers()["x-amzn-ErrorType"], r.kind.as_str());
            assert_eq!(std::str::from_utf8(resp.body()).unwrap(), body);
        };
        check(
            Refusal::client("ResourceNotFoundException", "Stream s not found."),
            r#"{"__type":"ResourceNotFoundException","message":"Stream s not found."}"#,
        );
        check(
            Refusal::serialization("Expected null"),
            r#"{"Message":"Expected null","__type":"SerializationException"}"#,
        );
        check(
            Refusal::unknown_operation(),
            r#"{"__type":"UnknownOperationException"}"#,
        );
        check(
            Refusal::from(crate::model::InputError::UnknownOperation("X".into())),
            r#"{"__type":"UnknownOperationException"}"#,
        );
        check(
            Refusal::from(crate::model::InputError::Validation(
                "1 validation error detected: V".into(),
            )),
            r#"{"__type":"ValidationException","message":"1 validation error detected: V"}"#,
        );
    }
}
