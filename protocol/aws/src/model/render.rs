//! How AWS's Java front end (coral) prints things in its messages: values as
//! Java's `toString` shows them, numbers after coral's truncating conversion,
//! enum value sets in `HashSet` order, member names in lowerCamel case.
//! Everything here only runs when a message is being written.

use std::fmt;

use serde_json::{Number, Value};

use super::shape::{ServiceModel, ShapeId, ShapeKind};

/// What coral prints for a structure inside a list (`Object.toString`). The
/// hash is the one AWS printed for the recorded PutRecords entries
/// (kinesalite's putRecords.js); a Java identity hash cannot be reproduced, so
/// every structure shows this one.
pub(crate) const STRUCTURE_HASH: &str = "c965e310";

/// `Member` -> `member`, as AWS names members in paths (`KMSKeyArn` becomes
/// `kMSKeyArn`, as AWS Lambda answers; not Java bean decapitalisation).
pub(crate) fn write_lower_first<W: fmt::Write + ?Sized>(out: &mut W, name: &str) -> fmt::Result {
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        out.write_char(first.to_ascii_lowercase())?;
        out.write_str(chars.as_str())?;
    }
    Ok(())
}

/// Java's `String.hashCode`.
pub(crate) fn java_string_hash(s: &str) -> u32 {
    s.encode_utf16().fold(0u32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(u32::from(unit))
    })
}

/// The order in which AWS lists an enum's values: a Java hash set's iteration
/// order, by bucket `hashCode & (capacity - 1)` (capacity 16, or the power of
/// two holding the values at load factor 0.75), ties in model order. This
/// reproduces every AWS-recorded list at hand: Kinesis' ShardIteratorType
/// (`[AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER,
/// TRIM_HORIZON]`, whose model order differs), DynamoDB's ReturnConsumedCapacity
/// and Cognito's MFA configuration. (A Lambda message seen in the wild follows
/// Java 8's spread hash instead; services on another front end may differ.)
pub(crate) fn java_hash_order(values: &[String]) -> Vec<&str> {
    let mut capacity = 16usize;
    while (capacity * 3) / 4 < values.len() + 1 {
        capacity *= 2;
    }
    let mask = (capacity - 1) as u32;
    let mut ordered: Vec<(u32, usize, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (java_string_hash(v) & mask, i, v.as_str()))
        .collect();
    ordered.sort_unstable();
    ordered.into_iter().map(|(_, _, v)| v).collect()
}

/// `Member must satisfy enum value set: [A, B]`.
pub(crate) fn enum_message(values: &[String]) -> String {
    format!(
        "Member must satisfy enum value set: [{}]",
        java_hash_order(values).join(", ")
    )
}

/// An integer member's value as coral reads a JSON number: the fraction
/// dropped (toward zero), then clamped to the type's range (AWS answered
/// `ShardCount: 100000000000` with `Value '2147483647'`).
pub(crate) fn truncating_i64(n: &Number, min: i64, max: i64) -> i64 {
    if let Some(i) = n.as_i64() {
        i.clamp(min, max)
    } else if n.as_u64().is_some() {
        max
    } else {
        // `as` truncates toward zero and saturates, as Java's narrowing does.
        (n.as_f64().unwrap_or(0.0) as i64).clamp(min, max)
    }
}

/// Java's `Double.toString` for the values a model can bound: `1.0`, `0.5`,
/// `1.0E10`.
pub(crate) fn write_java_double<W: fmt::Write + ?Sized>(out: &mut W, v: f64) -> fmt::Result {
    if v.is_nan() {
        return out.write_str("NaN");
    }
    if v.is_infinite() {
        return out.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    let magnitude = v.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let s = v.to_string();
        out.write_str(&s)?;
        if !s.contains('.') {
            out.write_str(".0")?;
        }
        return Ok(());
    }
    let s = format!("{v:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    out.write_str(mantissa)?;
    if !mantissa.contains('.') {
        out.write_str(".0")?;
    }
    write!(out, "E{exponent}")
}

/// A structure as coral's `toString` shows it:
/// `com.amazonaws.<service>.v<version>.<Shape>@<hash>`.
pub(crate) fn write_structure<W: fmt::Write + ?Sized>(
    out: &mut W,
    model: &ServiceModel,
    shape_name: &str,
) -> fmt::Result {
    out.write_str("com.amazonaws.")?;
    out.write_str(model.metadata.signing_name())?;
    out.write_str(".v")?;
    for c in model.metadata.api_version.chars().filter(|c| *c != '-') {
        out.write_char(c)?;
    }
    write!(out, ".{shape_name}@{STRUCTURE_HASH}")
}

/// Writes `value` (of shape `id`) the way coral's message shows it, without
/// the quotes: strings as they are, numbers after conversion, blobs as the
/// `ByteBuffer` coral holds, lists as `[a, b]`, maps as `{k=v}`, structures as
/// `com.amazonaws.<service>.v<version>.<Shape>@<hash>`.
pub(crate) fn write_value<W: fmt::Write + ?Sized>(
    out: &mut W,
    model: &ServiceModel,
    id: ShapeId,
    value: &Value,
) -> fmt::Result {
    let shape = model.get(id);
    match (&shape.kind, value) {
        (_, Value::Null) => out.write_str("null"),
        (
            ShapeKind::Structure {
                document: false, ..
            },
            _,
        ) => write_structure(out, model, &shape.name),
        (ShapeKind::Blob { .. }, Value::String(s)) => {
            let len = super::serialization::base64_decoded_len(s).unwrap_or(0);
            write!(out, "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]")
        }
        (ShapeKind::Integer, Value::Number(n)) => {
            write!(
                out,
                "{}",
                truncating_i64(n, i32::MIN.into(), i32::MAX.into())
            )
        }
        (ShapeKind::Long, Value::Number(n)) => {
            write!(out, "{}", truncating_i64(n, i64::MIN, i64::MAX))
        }
        (ShapeKind::Float | ShapeKind::Double, Value::Number(n)) => {
            write_java_double(out, n.as_f64().unwrap_or(0.0))
        }
        (ShapeKind::List { member }, Value::Array(items)) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_value(out, model, *member, item)?;
            }
            out.write_char(']')?;
            Ok(())
        }
        (
            ShapeKind::Map {
                value: value_shape, ..
            },
            Value::Object(entries),
        ) => {
            out.write_char('{')?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                out.write_str(k)?;
                out.write_char('=')?;
                write_value(out, model, *value_shape, v)?;
            }
            out.write_char('}')?;
            Ok(())
        }
        (_, Value::String(s)) => out.write_str(s),
        (_, other) => write!(out, "{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str], expected: &str) {
        let owned: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        assert_eq!(enum_message(&owned), expected);
    }

    #[test]
    fn enum_sets_in_aws_order() {
        check(
            &[
                "AT_SEQUENCE_NUMBER",
                "AFTER_SEQUENCE_NUMBER",
                "TRIM_HORIZON",
                "LATEST",
                "AT_TIMESTAMP",
            ],
            "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
        );
        check(
            &["INDEXES", "TOTAL", "NONE"],
            "Member must satisfy enum value set: [INDEXES, TOTAL, NONE]",
        );
        check(
            &["OFF", "ON", "OPTIONAL"],
            "Member must satisfy enum value set: [OPTIONAL, OFF, ON]",
        );
    }

    #[test]
    fn numbers_as_java_shows_them() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.0, "0.0"),
            (1e10, "1.0E10"),
            (-2.5e-5, "-2.5E-5"),
        ];
        for (v, expected) in cases {
            let mut s = String::new();
            write_java_double(&mut s, *v).unwrap();
            assert_eq!(&s, expected);
        }
        let n: Number = serde_json::from_str("100000000000").unwrap();
        assert_eq!(
            truncating_i64(&n, i32::MIN.into(), i32::MAX.into()),
            2147483647
        );
        let n: Number = serde_json::from_str("-1.9").unwrap();
        assert_eq!(truncating_i64(&n, i32::MIN.into(), i32::MAX.into()), -1);
        let n: Number = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(truncating_i64(&n, i64::MIN, i64::MAX), i64::MAX);
    }
}
