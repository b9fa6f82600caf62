//! The S3 prefix expression language of `Prefix` and `ErrorOutputPrefix`:
//! literal text with `!{namespace:value}` expressions, validated with AWS's
//! rules at CreateDeliveryStream / UpdateDestination and evaluated per object.
//!
//! Namespaces: `timestamp` (a Java `DateTimeFormatter` pattern applied to the
//! arrival time of the object's oldest record, every occurrence the same
//! instant), `firehose` (`random-string`: 11 random characters, new per
//! occurrence; `error-output-type`: only in `ErrorOutputPrefix`),
//! `partitionKeyFromQuery` / `partitionKeyFromLambda` (dynamic partitioning;
//! not in `ErrorOutputPrefix`). Rules (AWS's "Custom Prefixes for Amazon S3
//! Objects"): a `Prefix` without a `timestamp` expression gets
//! `!{timestamp:yyyy/MM/dd/HH/}` appended; `ErrorOutputPrefix` may be absent
//! only when `Prefix` has no expressions (it is then `<Prefix><type>/yyyy/MM/dd/HH/`),
//! and when given must name the error output type; an evaluated prefix is at
//! most 512 characters.

use riffle_protocol::Error;

use crate::time::{Civil, civil_of_ms};

/// The longest evaluated prefix AWS writes.
pub const EVALUATED_CHARS_MAX: usize = 512;

/// The timestamp pattern appended to a prefix without one.
const DEFAULT_TIME: &str = "yyyy/MM/dd/HH/";

/// One piece of a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Timestamp(Vec<TimePart>),
    RandomString,
    ErrorOutputType,
    PartitionKeyFromQuery(String),
    PartitionKeyFromLambda(String),
}

/// One piece of a `DateTimeFormatter` pattern (the letters Firehose's
/// documentation uses, and literal text).
#[derive(Clone, Debug, PartialEq, Eq)]
enum TimePart {
    Literal(String),
    /// `y` (`yy`: two digits), `M`, `d`, `H`, `m`, `s`, `S` (fraction), `D` (day of year):
    /// the letter and how many times it repeats.
    Field(char, usize),
}

/// A validated prefix, ready to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    parts: Vec<Part>,
}

/// Which of the two fields a prefix is (their rules differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Prefix,
    ErrorOutputPrefix,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Prefix => "Prefix",
            Field::ErrorOutputPrefix => "ErrorOutputPrefix",
        }
    }
}

/// What an object's prefix depends on besides the prefix itself.
pub struct Context<'a> {
    /// Arrival of the object's oldest record (ms since the epoch, UTC).
    pub oldest_arrival_ms: i64,
    /// `processing-failed`, `http-endpoint-failed`, ... (error prefixes only).
    pub error_output_type: &'a str,
    /// Gives `random-string`'s characters (11 per occurrence).
    pub random: &'a mut dyn FnMut() -> u64,
    /// Partition keys by name and whether the function gave them
    /// (`partitionKeyFromLambda`) or the query (dynamic partitioning).
    pub partition_keys: &'a dyn Fn(&str, bool) -> Option<String>,
}

fn invalid(field: Field, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{} is invalid: {why}", field.name()))
}

fn parse(field: Field, text: &str) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("!{") {
        if at > 0 {
            parts.push(Part::Literal(rest[..at].to_string()));
        }
        let inner_start = at + 2;
        let Some(close) = rest[inner_start..].find('}') else {
            return Err(invalid(
                field,
                "'!{' must start an expression of the form !{namespace:value}",
            ));
        };
        let inner = &rest[inner_start..inner_start + close];
        let Some((namespace, value)) = inner.split_once(':') else {
            return Err(invalid(
                field,
                format!("the expression !{{{inner}}} is not of the form !{{namespace:value}}"),
            ));
        };
        parts.push(match namespace {
            "timestamp" => Part::Timestamp(parse_time(field, value)?),
            "firehose" => match value {
                "random-string" => Part::RandomString,
                "error-output-type" => Part::ErrorOutputType,
                _ => {
                    return Err(invalid(
                        field,
                        format!("unknown firehose expression !{{firehose:{value}}}"),
                    ));
                }
            },
            "partitionKeyFromQuery" if !value.is_empty() => {
                Part::PartitionKeyFromQuery(value.to_string())
            }
            "partitionKeyFromLambda" if !value.is_empty() => {
                Part::PartitionKeyFromLambda(value.to_string())
            }
            _ => {
                return Err(invalid(
                    field,
                    format!("unknown expression !{{{inner}}}: the namespaces are timestamp, firehose, partitionKeyFromQuery and partitionKeyFromLambda"),
                ));
            }
        });
        rest = &rest[inner_start + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(parts)
}

fn parse_time(field: Field, pattern: &str) -> Result<Vec<TimePart>, Error> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    let mut literal = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Quoted text; '' is a quote.
            if chars.peek() == Some(&'\'') {
                chars.next();
                literal.push('\'');
                continue;
            }
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        literal.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => literal.push(c),
                    None => {
                        return Err(invalid(
                            field,
                            format!("unterminated quote in !{{timestamp:{pattern}}}"),
                        ));
                    }
                }
            }
        } else if c.is_ascii_alphabetic() {
            if !matches!(c, 'y' | 'u' | 'M' | 'd' | 'H' | 'm' | 's' | 'S' | 'D') {
                return Err(invalid(
                    field,
                    format!("unsupported pattern letter '{c}' in !{{timestamp:{pattern}}}"),
                ));
            }
            let mut n = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                n += 1;
            }
            if !literal.is_empty() {
                out.push(TimePart::Literal(std::mem::take(&mut literal)));
            }
            out.push(TimePart::Field(if c == 'u' { 'y' } else { c }, n));
        } else {
            literal.push(c);
        }
    }
    if !literal.is_empty() {
        out.push(TimePart::Literal(literal));
    }
    if out.is_empty() {
        return Err(invalid(field, "an empty !{timestamp:} expression"));
    }
    Ok(out)
}

fn has_expressions(parts: &[Part]) -> bool {
    parts.iter().any(|p| !matches!(p, Part::Literal(_)))
}

/// The validated `Prefix` and `ErrorOutputPrefix` of an S3 destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefixes {
    pub prefix: Prefix,
    pub error: Prefix,
}

/// Validates a destination's prefixes with AWS's rules; `dynamic_partitioning`:
/// whether the destination has it enabled.
pub fn validate(
    prefix: Option<&str>,
    error_prefix: Option<&str>,
    dynamic_partitioning: bool,
) -> Result<Prefixes, Error> {
    let raw = prefix.unwrap_or("");
    let mut parts = parse(Field::Prefix, raw)?;
    if parts.iter().any(|p| matches!(p, Part::ErrorOutputType)) {
        return Err(invalid(
            Field::Prefix,
            "!{firehose:error-output-type} is only allowed in ErrorOutputPrefix",
        ));
    }
    let keys = parts.iter().any(|p| {
        matches!(
            p,
            Part::PartitionKeyFromQuery(_) | Part::PartitionKeyFromLambda(_)
        )
    });
    if keys && !dynamic_partitioning {
        return Err(invalid(
            Field::Prefix,
            "partitionKeyFromQuery and partitionKeyFromLambda expressions need dynamic partitioning enabled",
        ));
    }
    if dynamic_partitioning && !keys {
        return Err(invalid(
            Field::Prefix,
            "with dynamic partitioning enabled, the prefix must use at least one partitionKeyFromQuery or partitionKeyFromLambda expression",
        ));
    }
    let error = match error_prefix {
        Some(e) => {
            let error = parse(Field::ErrorOutputPrefix, e)?;
            if !error.iter().any(|p| matches!(p, Part::ErrorOutputType)) {
                return Err(invalid(
                    Field::ErrorOutputPrefix,
                    "it must contain !{firehose:error-output-type}",
                ));
            }
            if error.iter().any(|p| {
                matches!(
                    p,
                    Part::PartitionKeyFromQuery(_) | Part::PartitionKeyFromLambda(_)
                )
            }) {
                return Err(invalid(
                    Field::ErrorOutputPrefix,
                    "partitionKeyFromQuery and partitionKeyFromLambda are not allowed in ErrorOutputPrefix",
                ));
            }
            error
        }
        None if has_expressions(&parts) => {
            return Err(invalid(
                Field::ErrorOutputPrefix,
                "ErrorOutputPrefix must be specified when Prefix contains expressions",
            ));
        }
        None if dynamic_partitioning => {
            return Err(invalid(
                Field::ErrorOutputPrefix,
                "ErrorOutputPrefix must be specified when dynamic partitioning is enabled",
            ));
        }
        // `<prefix><type>/yyyy/MM/dd/HH/`.
        None => {
            let mut e = parts.clone();
            e.push(Part::ErrorOutputType);
            e.push(Part::Literal("/".into()));
            e.push(Part::Timestamp(parse_time(
                Field::ErrorOutputPrefix,
                DEFAULT_TIME,
            )?));
            e
        }
    };
    // A prefix without a timestamp gets the default one (not with dynamic
    // partitioning, whose keys name the objects' place).
    if !dynamic_partitioning && !parts.iter().any(|p| matches!(p, Part::Timestamp(_))) {
        parts.push(Part::Timestamp(parse_time(Field::Prefix, DEFAULT_TIME)?));
    }
    Ok(Prefixes {
        prefix: Prefix { parts },
        error: Prefix { parts: error },
    })
}

/// Characters of `random-string`.
const RANDOM_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl Prefix {
    /// The prefix for one object. Refuses (InvalidArgument) a result over 512
    /// characters or a partition key the record did not have.
    pub fn evaluate(&self, cx: &mut Context<'_>) -> Result<String, Error> {
        let civil = civil_of_ms(cx.oldest_arrival_ms);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Timestamp(pattern) => format_time(&mut out, pattern, &civil),
                Part::RandomString => {
                    let mut bits = (cx.random)();
                    for _ in 0..11 {
                        out.push(RANDOM_ALPHABET[(bits % 36) as usize] as char);
                        bits /= 36;
                    }
                }
                Part::ErrorOutputType => out.push_str(cx.error_output_type),
                Part::PartitionKeyFromQuery(k) | Part::PartitionKeyFromLambda(k) => {
                    let from_lambda = matches!(part, Part::PartitionKeyFromLambda(_));
                    match (cx.partition_keys)(k, from_lambda) {
                        Some(v) => out.push_str(&v),
                        None => {
                            return Err(Error::invalid(format!("partition key {k} is missing")));
                        }
                    }
                }
            }
        }
        if out.chars().count() > EVALUATED_CHARS_MAX {
            return Err(Error::invalid(format!(
                "the evaluated prefix is longer than {EVALUATED_CHARS_MAX} characters"
            )));
        }
        Ok(out)
    }
}

fn format_time(out: &mut String, pattern: &[TimePart], t: &Civil) {
    use std::fmt::Write as _;
    for part in pattern {
        let _ = match *part {
            TimePart::Literal(ref s) => {
                out.push_str(s);
                Ok(())
            }
            TimePart::Field('y', 2) => write!(out, "{:02}", t.year.rem_euclid(100)),
            TimePart::Field('y', n) => write!(out, "{:0n$}", t.year),
            TimePart::Field('M', n) => write!(out, "{:0n$}", t.month),
            TimePart::Field('d', n) => write!(out, "{:0n$}", t.day),
            TimePart::Field('H', n) => write!(out, "{:0n$}", t.hour),
            TimePart::Field('m', n) => write!(out, "{:0n$}", t.minute),
            TimePart::Field('s', n) => write!(out, "{:0n$}", t.second),
            TimePart::Field('D', n) => write!(out, "{:0n$}", t.day_of_year),
            // Fractions of a second: the first n digits of the milliseconds.
            TimePart::Field('S', n) => {
                let ms = format!("{:03}", t.millis);
                let digits: String = ms.chars().chain(std::iter::repeat('0')).take(n).collect();
                out.push_str(&digits);
                Ok(())
            }
            TimePart::Field(..) => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2018-08-27 10:30 UTC, the instant of AWS's worked examples.
    const AT: i64 = 1_535_365_800_000;

    fn eval(p: &Prefix, kind: &str) -> String {
        let mut n = 0u64;
        let mut random = || {
            n += 1;
            n * 1_000_003
        };
        let keys = |k: &str, _: bool| (k == "customer").then(|| "42".to_string());
        p.evaluate(&mut Context {
            oldest_arrival_ms: AT,
            error_output_type: kind,
            random: &mut random,
            partition_keys: &keys,
        })
        .unwrap()
    }

    #[test]
    fn aws_worked_examples() {
        // Prefix unspecified, an error prefix.
        let p = validate(
            None,
            Some("myFirehoseFailures/!{firehose:error-output-type}/"),
            false,
        )
        .unwrap();
        assert_eq!(eval(&p.prefix, ""), "2018/08/27/10/");
        assert_eq!(
            eval(&p.error, "processing-failed"),
            "myFirehoseFailures/processing-failed/"
        );
        // Expressions in Prefix need an ErrorOutputPrefix.
        let e = validate(Some("!{timestamp:yyyy/MM/dd}"), None, false).unwrap_err();
        assert!(
            e.message.contains("ErrorOutputPrefix must be specified"),
            "{}",
            e.message
        );
        // Timestamps, random strings, literal parts.
        let p = validate(
            Some("myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}"),
            Some("myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}"),
            false,
        )
        .unwrap();
        let got = eval(&p.prefix, "");
        assert!(
            got.starts_with("myFirehose/DeliveredYear=2018/anyMonth/rand="),
            "{got}"
        );
        assert_eq!(
            got.len(),
            "myFirehose/DeliveredYear=2018/anyMonth/rand=".len() + 11
        );
        assert_eq!(
            eval(&p.error, "processing-failed"),
            "myFirehoseFailures/processing-failed/2018/anyMonth/27"
        );
        // A plain prefix: the default time, and the default error prefix.
        let p = validate(Some("myFirehosePrefix/"), None, false).unwrap();
        assert_eq!(eval(&p.prefix, ""), "myFirehosePrefix/2018/08/27/10/");
        assert_eq!(
            eval(&p.error, "processing-failed"),
            "myFirehosePrefix/processing-failed/2018/08/27/10/"
        );
    }

    #[test]
    fn aws_rules_are_enforced() {
        let bad = [
            (
                Some("a/!{firehose:error-output-type}/"),
                Some("e/!{firehose:error-output-type}"),
            ),
            (Some("a/!{"), Some("e/!{firehose:error-output-type}")),
            (Some("a/!{nope}/"), Some("e/!{firehose:error-output-type}")),
            (
                Some("a/!{other:x}/"),
                Some("e/!{firehose:error-output-type}"),
            ),
            (
                Some("a/!{firehose:other}/"),
                Some("e/!{firehose:error-output-type}"),
            ),
            (
                Some("a/!{timestamp:yyyy-QQ}/"),
                Some("e/!{firehose:error-output-type}"),
            ),
            (Some("a/"), Some("e/")),
            (
                Some("a/!{partitionKeyFromQuery:customer}/"),
                Some("e/!{firehose:error-output-type}"),
            ),
        ];
        for (p, e) in bad {
            assert!(validate(p, e, false).is_err(), "{p:?} {e:?}");
        }
        // Partition keys: only with dynamic partitioning, never in the error prefix.
        let p = validate(
            Some("c=!{partitionKeyFromQuery:customer}/"),
            Some("e/!{firehose:error-output-type}/"),
            true,
        )
        .unwrap();
        assert_eq!(eval(&p.prefix, ""), "c=42/");
        assert!(validate(Some("c=!{partitionKeyFromQuery:customer}/"), None, true).is_err());
        assert!(
            validate(
                Some("c=!{partitionKeyFromQuery:customer}/"),
                Some("e/!{firehose:error-output-type}/!{partitionKeyFromQuery:customer}"),
                true
            )
            .is_err()
        );
        assert!(
            validate(
                Some("plain/"),
                Some("e/!{firehose:error-output-type}/"),
                true
            )
            .is_err()
        );
    }

    #[test]
    fn time_patterns_quote_and_pad() {
        let p = validate(
            Some("!{timestamp:yy-M-d 'at' HH:mm:ss.SSS 'o''clock' D}"),
            Some("e/!{firehose:error-output-type}"),
            false,
        )
        .unwrap();
        assert_eq!(eval(&p.prefix, ""), "18-8-27 at 10:30:00.000 o'clock 239");
    }

    #[test]
    fn evaluated_prefixes_are_bounded() {
        let long = "x".repeat(EVALUATED_CHARS_MAX);
        let p = validate(Some(&long), None, false).unwrap();
        let mut random = || 0;
        let keys = |_: &str, _: bool| None;
        let e = p
            .prefix
            .evaluate(&mut Context {
                oldest_arrival_ms: AT,
                error_output_type: "",
                random: &mut random,
                partition_keys: &keys,
            })
            .unwrap_err();
        assert!(e.message.contains("512"));
    }
}
