//! `application/x-amz-cbor-1.1` bodies (the Java SDK's default), converted to
//! and from the JSON values the operations work on.
//!
//! On the wire, blobs are CBOR byte strings and timestamps are tag 1 (epoch
//! seconds). In the JSON form, blobs are base64 strings (as in JSON 1.1) and
//! timestamps are numbers. Requests convert every byte string and every tag 1
//! generically; answers know their blob and timestamp members by name, which
//! each service gives (`Members`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value};

/// The members of a service's answers that CBOR encodes apart from their JSON
/// form: blobs (byte strings) and timestamps (tag 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct Members {
    pub blobs: &'static [&'static str],
    pub timestamps: &'static [&'static str],
}

/// Nesting deeper than this is refused (no operation's input comes close).
const DEPTH_MAX: usize = 32;

/// Decodes a CBOR request body into the JSON form.
pub fn to_json(bytes: &[u8]) -> Result<Value, String> {
    let cbor: Cbor =
        ciborium::de::from_reader(bytes).map_err(|e| format!("malformed CBOR: {e}"))?;
    convert_in(cbor, 0)
}

fn convert_in(v: Cbor, depth: usize) -> Result<Value, String> {
    if depth > DEPTH_MAX {
        return Err("CBOR nested too deeply".into());
    }
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i: i128 = i.into();
            if let Ok(i) = i64::try_from(i) {
                Value::Number(i.into())
            } else if let Ok(u) = u64::try_from(i) {
                Value::Number(u.into())
            } else {
                return Err(format!("integer {i} out of range"));
            }
        }
        Cbor::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("number {f} is not finite"))?,
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(BASE64.encode(b)),
        // Tag 0: an RFC 3339 date/time, as epoch seconds like tag 1.
        Cbor::Tag(0, inner) => match *inner {
            Cbor::Text(s) => {
                let ms = riffle_protocol::time::parse_rfc3339_ms(&s)?;
                Number::from_f64(ms as f64 / 1000.0)
                    .map(Value::Number)
                    .ok_or("invalid date/time")?
            }
            _ => return Err("CBOR tag 0 must hold text".into()),
        },
        // Tag 1: epoch-based date/time; other tags carry no meaning here.
        Cbor::Tag(_, inner) => convert_in(*inner, depth + 1)?,
        Cbor::Array(a) => Value::Array(
            a.into_iter()
                .map(|v| convert_in(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Cbor::Text(k) = k else {
                    return Err("CBOR map keys must be text".into());
                };
                out.insert(k, convert_in(v, depth + 1)?);
            }
            Value::Object(out)
        }
        _ => return Err("unsupported CBOR value".into()),
    })
}

/// Encodes a response (or error) in CBOR.
pub fn from_json(v: &Value, members: &Members) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&convert_out(v, None, members), &mut out)
        .expect("writing to memory");
    out
}

fn convert_out(v: &Value, member: Option<&str>, members: &Members) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => {
            if member.is_some_and(|m| members.timestamps.contains(&m)) {
                return Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or(0.0))));
            }
            if let Some(i) = n.as_i64() {
                Cbor::Integer(Integer::from(i))
            } else if let Some(u) = n.as_u64() {
                Cbor::Integer(Integer::from(u))
            } else {
                Cbor::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => {
            if member.is_some_and(|m| members.blobs.contains(&m))
                && let Ok(b) = BASE64.decode(s)
            {
                return Cbor::Bytes(b);
            }
            Cbor::Text(s.clone())
        }
        Value::Array(a) => Cbor::Array(a.iter().map(|v| convert_out(v, member, members)).collect()),
        Value::Object(m) => Cbor::Map(
            m.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), convert_out(v, Some(k), members)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_turn_byte_strings_into_base64_and_tags_into_numbers() {
        let req = Cbor::Map(vec![
            (Cbor::Text("StreamName".into()), Cbor::Text("s".into())),
            (
                Cbor::Text("Data".into()),
                Cbor::Bytes(b"\x00\xffhi".to_vec()),
            ),
            (
                Cbor::Text("Timestamp".into()),
                Cbor::Tag(1, Box::new(Cbor::Float(1.5))),
            ),
            (Cbor::Text("Limit".into()), Cbor::Integer(7.into())),
        ]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&req, &mut bytes).unwrap();
        assert_eq!(
            to_json(&bytes).unwrap(),
            json!({"StreamName": "s", "Data": BASE64.encode(b"\x00\xffhi"), "Timestamp": 1.5, "Limit": 7})
        );
    }

    #[test]
    fn responses_carry_blobs_as_bytes_and_timestamps_as_tag_1() {
        let v = json!({"Records": [{"Data": BASE64.encode(b"ab"), "ApproximateArrivalTimestamp": 1.25,
                                    "SequenceNumber": "49"}], "MillisBehindLatest": 0});
        let members = Members {
            blobs: &["Data"],
            timestamps: &["ApproximateArrivalTimestamp"],
        };
        let back: Cbor = ciborium::de::from_reader(&from_json(&v, &members)[..]).unwrap();
        let Cbor::Map(top) = back else { panic!() };
        let Cbor::Array(records) = &top
            .iter()
            .find(|(k, _)| k == &Cbor::Text("Records".into()))
            .unwrap()
            .1
        else {
            panic!()
        };
        let Cbor::Map(r) = &records[0] else { panic!() };
        let get = |name: &str| {
            r.iter()
                .find(|(k, _)| k == &Cbor::Text(name.into()))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("Data"), Cbor::Bytes(b"ab".to_vec()));
        assert_eq!(
            get("ApproximateArrivalTimestamp"),
            Cbor::Tag(1, Box::new(Cbor::Float(1.25)))
        );
        assert_eq!(get("SequenceNumber"), Cbor::Text("49".into()));
    }

    #[test]
    fn malformed_and_hostile_input_is_an_error() {
        assert!(to_json(b"\xff\x00").is_err());
        assert!(to_json(&[0x9f; 10_000]).is_err(), "deep nesting");
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(
            &Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Null)]),
            &mut bytes,
        )
        .unwrap();
        assert!(to_json(&bytes).is_err(), "non-text key");
        // Declared lengths far beyond the bytes present: an error, not an allocation.
        assert!(
            to_json(&[0x5b, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2]).is_err(),
            "huge byte string"
        );
        assert!(
            to_json(&[0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 1]).is_err(),
            "huge array"
        );
        assert!(
            to_json(&[0xbb, 0, 0, 0, 1, 0, 0, 0, 0]).is_err(),
            "huge map"
        );
    }
}
