//! The first pass over an input: is every member's JSON value of a type its
//! shape can take? This is where AWS's JSON 1.1 front end (coral) answers
//! SerializationException, with the Java wording recorded by the kinesalite
//! suite (helpers.js `assertType`). The first mismatch found ends the pass.
//! Members the model does not know are ignored; JSON null is an absent member.

use serde_json::Value;

use super::shape::{ServiceModel, ShapeId, ShapeKind};

const LIST_NOT_EXPECTED: &str = "Start of list found where not expected";
const STRUCTURE_NOT_EXPECTED: &str = "Start of structure or map found where not expected.";
/// Any JSON number as coral holds it.
const NUMBER_CLASS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

/// Checks `value` against shape `id`; `Err` holds the SerializationException
/// message.
pub(crate) fn check(model: &ServiceModel, id: ShapeId, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let shape = model.get(id);
    match &shape.kind {
        ShapeKind::Structure { document: true, .. } => Ok(()),
        ShapeKind::Structure { members, .. } => match value {
            Value::Object(entries) => {
                for (key, v) in entries {
                    if let Some(member) = members.iter().find(|m| m.json_key() == key) {
                        check(model, member.shape, v)?;
                    }
                }
                Ok(())
            }
            Value::Array(_) => Err(LIST_NOT_EXPECTED.into()),
            _ => Err("Expected null".into()),
        },
        ShapeKind::List { member } => match value {
            Value::Array(items) => items.iter().try_for_each(|v| check(model, *member, v)),
            Value::Object(_) => Err(STRUCTURE_NOT_EXPECTED.into()),
            _ => Err("Expected list or null".into()),
        },
        ShapeKind::Map {
            value: value_shape, ..
        } => match value {
            Value::Object(entries) => entries
                .values()
                .try_for_each(|v| check(model, *value_shape, v)),
            Value::Array(_) => Err(LIST_NOT_EXPECTED.into()),
            _ => Err("Expected map or null".into()),
        },
        ShapeKind::String => match value {
            Value::String(_) => Ok(()),
            Value::Bool(_) => {
                Err("class java.lang.Boolean can not be converted to an String".into())
            }
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to an String")),
            other => container(other),
        },
        ShapeKind::Boolean => match value {
            Value::Bool(_) => Ok(()),
            // AWS takes a JSON number with a fraction or exponent here
            // (kinesalite's helpers.js: "for some reason, doubles are fine"),
            // but not an integer.
            Value::Number(n) if n.is_f64() => Ok(()),
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to an Boolean")),
            // Coral reads these words as booleans and shows anything else upper-cased.
            Value::String(s) => {
                let upper = s.to_uppercase();
                match upper.as_str() {
                    "TRUE" | "FALSE" | "YES" | "NO" | "1" | "0" => Ok(()),
                    _ => Err(format!("'{upper}' can not be converted to an Boolean")),
                }
            }
            other => container(other),
        },
        ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double => {
            let java = match shape.kind {
                ShapeKind::Integer => "Integer",
                ShapeKind::Long => "Long",
                ShapeKind::Float => "Float",
                _ => "Double",
            };
            match value {
                Value::Number(_) => Ok(()),
                Value::Bool(_) => Err(format!(
                    "class java.lang.Boolean can not be converted to an {java}"
                )),
                Value::String(_) => Err(format!(
                    "class java.lang.String can not be converted to an {java}"
                )),
                other => container(other),
            }
        }
        ShapeKind::Blob { .. } => match value {
            Value::String(s) => base64_decoded_len(s)
                .map(|_| ())
                .map_err(|why| format!("'{s}' can not be converted to a Blob: {why}")),
            Value::Bool(_) => Err("class java.lang.Boolean can not be converted to a Blob".into()),
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to a Blob")),
            other => container(other),
        },
        ShapeKind::Timestamp { iso8601 } => match value {
            Value::Number(_) => Ok(()),
            Value::String(_) if *iso8601 => Ok(()),
            Value::String(_) => Err(
                "class java.lang.String can not be converted to milliseconds since epoch".into(),
            ),
            Value::Bool(_) => Err(
                "class java.lang.Boolean can not be converted to milliseconds since epoch".into(),
            ),
            other => container(other),
        },
    }
}

/// A list or an object where a scalar belongs.
fn container(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(_) => Err(LIST_NOT_EXPECTED.into()),
        Value::Object(_) => Err(STRUCTURE_NOT_EXPECTED.into()),
        _ => unreachable!("callers match scalars first"),
    }
}

/// The decoded length of a base64 blob member, or why AWS refuses it (the part
/// of the message after `'<value>' can not be converted to a Blob: `). AWS
/// takes the standard alphabet with padding, and no bits set past the data.
pub fn base64_decoded_len(s: &str) -> Result<usize, String> {
    // The common case, byte by byte over a table: only the alphabet, then at
    // most two pads, a multiple of 4 long (records' data: megabytes per call).
    let bytes = s.as_bytes();
    let pads = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pads <= 2
        && bytes.len().is_multiple_of(4)
        && bytes[..bytes.len() - pads]
            .iter()
            .all(|&b| BASE64_ALPHABET[b as usize])
    {
        let unused_ok = pads == 0 || {
            let last = sextet(bytes[bytes.len() - pads - 1]);
            last & if pads == 1 { 0b11 } else { 0b1111 } == 0
        };
        if unused_ok {
            return Ok(bytes.len() / 4 * 3 - pads);
        }
    }
    // Anything else: character by character, for AWS's exact message.
    base64_decoded_len_by_char(s)
}

/// [`base64_decoded_len`] one character at a time (its messages; and the
/// reference its fast path is tested against).
fn base64_decoded_len_by_char(s: &str) -> Result<usize, String> {
    let len = super::check::java_length(s);
    if !len.is_multiple_of(4) {
        return Err(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {len}"
        ));
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let valid = c.is_ascii_alphanumeric() || c == '+' || c == '/';
        // Padding is only allowed at the end.
        let pad_ok = c == '=' && chars.peek().is_none_or(|next| *next == '=');
        if !valid && !pad_ok {
            return Err(format!("Invalid Base64 character: '{c}'"));
        }
    }
    // Every character is now ASCII.
    let bytes = s.as_bytes();
    let pads = bytes.iter().rev().take_while(|b| **b == b'=').count();
    let invalid_last = || Err("Invalid last non-pad Base64 character dectected".to_string());
    if pads > 2 {
        return invalid_last();
    }
    if pads > 0 {
        let last = sextet(bytes[bytes.len() - pads - 1]);
        // One pad: 2 unused bits; two pads: 4.
        let unused_mask = if pads == 1 { 0b11 } else { 0b1111 };
        if last & unused_mask != 0 {
            return invalid_last();
        }
    }
    Ok(len / 4 * 3 - pads)
}

/// The bytes of the base64 alphabet (without the pad).
const BASE64_ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    t
};

fn sextet(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::{InputError, kinesis};

    /// Every value in `values` put at `path` (`Records.0.Data`: `0` is a list
    /// element) of `operation`'s input must be refused with `expected`.
    fn check(operation: &str, path: &str, values: &[serde_json::Value], expected: &str) {
        for value in values {
            let mut input = value.clone();
            for piece in path.split('.').rev() {
                input = if piece == "0" {
                    json!([input])
                } else {
                    json!({ piece: input })
                };
            }
            let got = kinesis().check_input(operation, &input);
            assert_eq!(
                got,
                Err(InputError::Serialization(expected.to_string())),
                "{operation} {input}"
            );
        }
    }

    const NUMBERS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String";

    #[test]
    fn strings() {
        for (op, path) in [
            ("PutRecord", "StreamName"),
            ("PutRecord", "PartitionKey"),
            ("PutRecords", "Records.0.PartitionKey"),
            ("GetShardIterator", "ShardIteratorType"),
            ("AddTagsToStream", "Tags.a"),
            ("RemoveTagsFromStream", "TagKeys.0"),
        ] {
            check(
                op,
                path,
                &[json!(true)],
                "class java.lang.Boolean can not be converted to an String",
            );
            check(
                op,
                path,
                &[
                    json!(23),
                    json!(-2147483648),
                    json!(2147483648u64),
                    json!(34.56),
                ],
                NUMBERS,
            );
            check(
                op,
                path,
                &[json!([])],
                "Start of list found where not expected",
            );
            check(
                op,
                path,
                &[json!({})],
                "Start of structure or map found where not expected.",
            );
        }
    }

    #[test]
    fn numbers_and_booleans() {
        for (op, path, java) in [
            ("CreateStream", "ShardCount", "Integer"),
            ("GetRecords", "Limit", "Integer"),
            ("ListShards", "MaxResults", "Integer"),
        ] {
            check(
                op,
                path,
                &[json!("23")],
                &format!("class java.lang.String can not be converted to an {java}"),
            );
            check(
                op,
                path,
                &[json!(true)],
                &format!("class java.lang.Boolean can not be converted to an {java}"),
            );
            check(
                op,
                path,
                &[json!([])],
                "Start of list found where not expected",
            );
            check(
                op,
                path,
                &[json!({})],
                "Start of structure or map found where not expected.",
            );
        }
        check(
            "PutRecord",
            "DryRun",
            &[json!("23")],
            "'23' can not be converted to an Boolean",
        );
        check(
            "PutRecord",
            "DryRun",
            &[json!("yes please")],
            "'YES PLEASE' can not be converted to an Boolean",
        );
        check(
            "PutRecord",
            "DryRun",
            &[json!(23), json!(2147483648u64)],
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean",
        );
        for ok in [
            json!({"DryRun": 34.56}),
            json!({"DryRun": "true"}),
            json!({"DryRun": false}),
        ] {
            let mut input = ok;
            input["StreamName"] = json!("s");
            input["PartitionKey"] = json!("k");
            input["Data"] = json!("");
            assert_eq!(
                kinesis().check_input("PutRecord", &input),
                Ok(()),
                "{input}"
            );
        }
    }

    #[test]
    fn timestamps_lists_maps_structures() {
        let ts = "can not be converted to milliseconds since epoch";
        check(
            "ListShards",
            "StreamCreationTimestamp",
            &[json!("23")],
            &format!("class java.lang.String {ts}"),
        );
        check(
            "GetShardIterator",
            "Timestamp",
            &[json!(true)],
            &format!("class java.lang.Boolean {ts}"),
        );
        check(
            "GetShardIterator",
            "Timestamp",
            &[json!([])],
            "Start of list found where not expected",
        );
        let scalars = [
            json!("23"),
            json!(true),
            json!(23),
            json!(-2147483648),
            json!(34.56),
        ];
        check("PutRecords", "Records", &scalars, "Expected list or null");
        check(
            "PutRecords",
            "Records",
            &[json!({})],
            "Start of structure or map found where not expected.",
        );
        check("AddTagsToStream", "Tags", &scalars, "Expected map or null");
        check(
            "AddTagsToStream",
            "Tags",
            &[json!([])],
            "Start of list found where not expected",
        );
        check("PutRecords", "Records.0", &scalars, "Expected null");
        check(
            "PutRecords",
            "Records.0",
            &[json!([])],
            "Start of list found where not expected",
        );
        check("ListShards", "ShardFilter", &scalars, "Expected null");
    }

    #[test]
    fn blobs() {
        let blob = |what: &str| format!("{what} can not be converted to a Blob");
        for path in ["Data", "Records.0.Data"] {
            let op = if path == "Data" {
                "PutRecord"
            } else {
                "PutRecords"
            };
            check(op, path, &[json!(true)], &blob("class java.lang.Boolean"));
            check(
                op,
                path,
                &[json!(23), json!(34.56)],
                &blob("class com.amazon.coral.value.json.numbers.TruncatingBigNumber"),
            );
            check(
                op,
                path,
                &[json!([])],
                "Start of list found where not expected",
            );
            check(
                op,
                path,
                &[json!({})],
                "Start of structure or map found where not expected.",
            );
            check(
                op,
                path,
                &[json!("23456")],
                "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5",
            );
            check(
                op,
                path,
                &[json!("=+/=")],
                "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='",
            );
            check(
                op,
                path,
                &[json!("ab-_")],
                "'ab-_' can not be converted to a Blob: Invalid Base64 character: '-'",
            );
            check(
                op,
                path,
                &[json!("+/+=")],
                "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected",
            );
        }
        assert_eq!(super::base64_decoded_len(""), Ok(0));
        assert_eq!(super::base64_decoded_len("YQ=="), Ok(1));
        assert_eq!(super::base64_decoded_len("YWI="), Ok(2));
        assert_eq!(super::base64_decoded_len("YWJj"), Ok(3));
    }

    #[test]
    fn unknown_members_and_nulls_are_ignored() {
        let input = json!({"StreamName": "s", "Bogus": {"x": [1]}, "ExclusiveStartShardId": null});
        assert_eq!(kinesis().check_input("DescribeStream", &input), Ok(()));
    }
}

#[cfg(test)]
mod base64_tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_character_by_character_check() {
        let alphabet = ['A', 'Q', 'g', 'z', '0', '9', '+', '/', '=', '-', 'é', ' '];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 60) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((x >> (i * 5 % 59)) % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                base64_decoded_len(&s),
                base64_decoded_len_by_char(&s),
                "{s:?}"
            );
        }
        for s in [
            "", "QQ==", "QR==", "QUE=", "QUF=", "QUFB", "Q===", "=QUF", "QU=F",
        ] {
            assert_eq!(
                base64_decoded_len(s),
                base64_decoded_len_by_char(s),
                "{s:?}"
            );
        }
    }
}
