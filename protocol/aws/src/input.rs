//! Typed access to an operation's input object (the JSON form of a JSON 1.1 or
//! CBOR body), with AWS's refusals for a member of the wrong type or a missing
//! required one. The service model's validation (`model`) runs first and catches
//! most of these with AWS's exact wording; these checks keep handlers safe on
//! their own.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::error::Refusal;

/// An operation's body decoded (`format`) and checked against `model` (with
/// the service's `rules`): the input object every handler of a JSON-protocol
/// service starts from, or AWS's SerializationException / ValidationException
/// / UnknownOperationException.
pub fn decode_checked(
    model: &crate::model::ServiceModel,
    format: crate::json::Format,
    operation: &str,
    body: &[u8],
    rules: &crate::model::Rules<'_>,
) -> Result<Map<String, Value>, Refusal> {
    let input = Value::Object(format.decode_object(body).map_err(Refusal::serialization)?);
    model.check_input_with(operation, &input, rules)?;
    match input {
        Value::Object(map) => Ok(map),
        _ => unreachable!("decode_object gives an object"),
    }
}

/// Base64 blobs (records' data on a hot path) decoded into one buffer, with
/// each blob's place in it; None when one is not base64 or breaks `check`
/// (the generic path then words the refusal as AWS does).
pub fn decode_blobs<'b>(
    blobs: impl ExactSizeIterator<Item = &'b str> + Clone,
    check: &crate::model::BlobCheck<'_>,
) -> Option<(Vec<u8>, Vec<std::ops::Range<usize>>)> {
    let estimate: usize = blobs.clone().map(|b| b.len() / 4 * 3).sum();
    let mut data = Vec::with_capacity(estimate);
    let mut spans = Vec::with_capacity(blobs.len());
    for b in blobs {
        let start = data.len();
        BASE64.decode_vec(b.as_bytes(), &mut data).ok()?;
        if !check.is_valid(data.len() - start) {
            return None;
        }
        spans.push(start..data.len());
    }
    Some((data, spans))
}

/// An operation's input object.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a>(pub &'a Map<String, Value>);

impl<'a> Input<'a> {
    /// A member's value; JSON null counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a string"))),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<&'a str, Refusal> {
        self.str(key)?.ok_or_else(|| null_member(key))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            // As AWS reads an integer member: a fraction is truncated
            // (`10.0` and `1e3` are 10 and 1000), as the model's checks read it.
            Some(Value::Number(n)) => Ok(Some(crate::model::render::truncating_i64(
                n,
                i64::MIN,
                i64::MAX,
            ))),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a number"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a boolean"))),
        }
    }

    /// A timestamp in epoch seconds (JSON 1.1 and, after conversion, CBOR).
    pub fn timestamp_ms(&self, key: &str) -> Result<Option<i64>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64().map(|s| (s * 1000.0) as i64)),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a timestamp"))),
        }
    }

    /// A nested structure.
    pub fn object(&self, key: &str) -> Result<Option<Input<'a>>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Input(m))),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a structure"))),
        }
    }

    /// A map of strings (tags): required, at least one entry.
    pub fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, Refusal> {
        match self.get(key) {
            None => Err(null_member(key)),
            Some(Value::Object(m)) if m.is_empty() => Err(empty_member("{}", key)),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    _ => Err(Refusal::serialization(format!(
                        "{key}.{k} must be a string"
                    ))),
                })
                .collect(),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a map"))),
        }
    }

    /// A list of strings: required, at least one entry.
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, Refusal> {
        match self.get(key) {
            None => Err(null_member(key)),
            Some(Value::Array(a)) if a.is_empty() => Err(empty_member("[]", key)),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Refusal::serialization(format!("{key} must hold strings"))),
                })
                .collect(),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a list"))),
        }
    }

    /// A required blob (base64 in the JSON form).
    pub fn blob(&self, key: &str) -> Result<Vec<u8>, Refusal> {
        let s = self.required_str(key)?;
        BASE64
            .decode(s)
            .map_err(|e| Refusal::serialization(format!("{key} is not valid base64: {e}")))
    }
}

/// AWS's ValidationException for a missing required member.
pub fn null_member(key: &str) -> Refusal {
    Refusal::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        lower_first(key)
    ))
}

/// AWS's ValidationException for an empty map or list where one entry is needed.
pub fn empty_member(shown: &str, key: &str) -> Refusal {
    Refusal::validation(format!(
        "1 validation error detected: Value '{shown}' at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
        lower_first(key)
    ))
}

/// A member's name as AWS's messages show it (`StreamName` → `streamName`).
pub fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_read_as_aws_reads_them() {
        let v = json!({"a": 10, "b": 10.0, "c": 1e3, "d": 2.9, "e": "x"});
        let input = Input(v.as_object().unwrap());
        assert_eq!(input.int("a").unwrap(), Some(10));
        assert_eq!(input.int("b").unwrap(), Some(10));
        assert_eq!(input.int("c").unwrap(), Some(1000));
        assert_eq!(input.int("d").unwrap(), Some(2));
        assert!(input.int("e").is_err());
        assert_eq!(input.int("missing").unwrap(), None);
    }
}
