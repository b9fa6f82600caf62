//! FilterCriteria: the EventBridge-style patterns a mapping drops records
//! with (docs/lambda-design.md §4.6), compiled once ([`Filters::compile`],
//! which refuses what AWS refuses at Create and Update) and matched against
//! a record's `kinesis` object with `data` parsed as JSON.
//!
//! A pattern is an object whose leaves are non-empty arrays of matchers; an
//! object node ANDs its keys, a leaf ORs its matchers, an event array matches
//! when any element does, and `$or` at any level takes any of its
//! sub-patterns. Matchers: a value (strings exactly, numbers by their text as
//! AWS compares them, `null`), `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but` (a value, a list, or a prefix), `numeric` (one or two
//! bounds), `exists`.

use serde_json::{Map, Value};

/// A mapping's filters: a record passes when any matches (no filters: all pass).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    patterns: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    /// Every key matches.
    And(Vec<(String, Node)>),
    /// Any sub-pattern matches.
    Or(Vec<Node>),
    /// Any matcher matches the value at this key.
    Leaf(Vec<Matcher>),
}

#[derive(Clone, Debug)]
enum Matcher {
    /// A JSON value; numbers as their text.
    Equals(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Numeric {
        lower: Option<(f64, bool)>,
        upper: Option<(f64, bool)>,
    },
    Exists(bool),
}

/// AWS's words for a pattern it refuses (LocalStack's; AWS's exact text unverified).
fn invalid(why: impl std::fmt::Display) -> String {
    format!("Invalid filter pattern definition. {why}")
}

impl Filters {
    /// The filters of FilterCriteria's `Pattern`s (JSON texts), or why one is refused.
    pub fn compile(patterns: &[&str]) -> Result<Filters, String> {
        let patterns = patterns
            .iter()
            .map(|p| match serde_json::from_str::<Value>(p) {
                Ok(Value::Object(o)) => {
                    if o.get("data").is_some_and(|d| !d.is_object()) {
                        return Err(invalid("data must be an object"));
                    }
                    node(&o)
                }
                Ok(_) => Err(invalid("a pattern is a JSON object")),
                Err(e) => Err(invalid(e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filters { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a record passes: `kinesis` is its `kinesis` object with `data`
    /// already parsed as JSON (absent when it is not JSON: then only patterns
    /// without a `data` key can match).
    pub fn passes(&self, kinesis: &Map<String, Value>) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| matches_object(p, kinesis))
    }
}

fn node(o: &Map<String, Value>) -> Result<Node, String> {
    let mut and = Vec::new();
    for (key, v) in o {
        if key == "$or" {
            let Value::Array(alts) = v else {
                return Err(invalid("$or takes a list of patterns"));
            };
            if alts.len() < 2 {
                return Err(invalid("$or takes at least two patterns"));
            }
            let alts = alts
                .iter()
                .map(|a| match a {
                    Value::Object(o) => node(o),
                    _ => Err(invalid("$or takes a list of patterns")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            and.push((String::new(), Node::Or(alts)));
            continue;
        }
        let child = match v {
            Value::Object(o) => node(o)?,
            Value::Array(items) if !items.is_empty() => {
                Node::Leaf(items.iter().map(matcher).collect::<Result<_, _>>()?)
            }
            Value::Array(_) => {
                return Err(invalid(format!("{key}: an empty list matches nothing")));
            }
            _ => return Err(invalid(format!("{key}: a leaf is a list of matchers"))),
        };
        and.push((key.clone(), child));
    }
    Ok(Node::And(and))
}

fn matcher(v: &Value) -> Result<Matcher, String> {
    let Value::Object(o) = v else {
        return Ok(Matcher::Equals(v.clone()));
    };
    if o.len() != 1 {
        return Err(invalid("a matcher object has one operator"));
    }
    let (op, arg) = o.iter().next().ok_or_else(|| invalid("an empty matcher"))?;
    let text = |arg: &Value| match arg {
        Value::String(s) => Ok(s.clone()),
        _ => Err(invalid(format!("{op} takes a string"))),
    };
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(text(arg)?),
        "suffix" => Matcher::Suffix(text(arg)?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(text(arg)?.to_lowercase()),
        "exists" => match arg {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return Err(invalid("exists takes true or false")),
        },
        "anything-but" => match arg {
            Value::Array(vs) if !vs.is_empty() && vs.iter().all(|v| !v.is_object()) => {
                Matcher::AnythingBut(vs.clone())
            }
            Value::Object(p) => match (p.len(), p.get("prefix")) {
                (1, Some(Value::String(s))) => Matcher::AnythingButPrefix(s.clone()),
                _ => return Err(invalid("anything-but takes a value, a list or a prefix")),
            },
            Value::Array(_) => {
                return Err(invalid("anything-but takes a non-empty list of values"));
            }
            v => Matcher::AnythingBut(vec![v.clone()]),
        },
        "numeric" => numeric(arg)?,
        other => return Err(invalid(format!("unknown operator {other}"))),
    })
}

fn numeric(arg: &Value) -> Result<Matcher, String> {
    let Value::Array(parts) = arg else {
        return Err(invalid("numeric takes a list"));
    };
    if parts.len() != 2 && parts.len() != 4 {
        return Err(invalid("numeric takes one or two comparisons"));
    }
    let (mut lower, mut upper) = (None, None);
    for pair in parts.chunks(2) {
        let (Value::String(op), Some(n)) = (&pair[0], pair[1].as_f64()) else {
            return Err(invalid("numeric takes an operator and a number"));
        };
        match op.as_str() {
            "=" if parts.len() == 2 => {
                lower = Some((n, true));
                upper = Some((n, true));
            }
            ">" | ">=" if lower.is_none() => lower = Some((n, op == ">=")),
            "<" | "<=" if upper.is_none() => upper = Some((n, op == "<=")),
            _ => return Err(invalid(format!("numeric: {op} here is not a range"))),
        }
    }
    Ok(Matcher::Numeric { lower, upper })
}

/// Whether `value` (None: the key is absent) matches `node`.
fn matches(node: &Node, value: Option<&Value>) -> bool {
    match node {
        Node::Or(alts) => alts.iter().any(|a| matches(a, value)),
        Node::And(_) => match value {
            Some(Value::Object(o)) => matches_object(node, o),
            _ => false,
        },
        Node::Leaf(matchers) => matchers.iter().any(|m| leaf(m, value)),
    }
}

/// Whether the object `o` matches `node` (an object node: every key matches).
fn matches_object(node: &Node, o: &Map<String, Value>) -> bool {
    match node {
        Node::And(keys) => keys.iter().all(|(k, child)| match child {
            Node::Or(alts) => alts.iter().any(|a| matches_object(a, o)),
            _ => matches(child, o.get(k)),
        }),
        Node::Or(alts) => alts.iter().any(|a| matches_object(a, o)),
        Node::Leaf(_) => false,
    }
}

fn leaf(m: &Matcher, value: Option<&Value>) -> bool {
    match (m, value) {
        (Matcher::Exists(want), v) => v.is_some() == *want,
        (_, None) => false,
        (_, Some(Value::Array(items))) => items.iter().any(|v| one(m, v)),
        (_, Some(v)) => one(m, v),
    }
}

fn one(m: &Matcher, v: &Value) -> bool {
    match m {
        Matcher::Equals(want) => same(want, v),
        Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => v.as_str().is_some_and(|s| s.to_lowercase() == *p),
        Matcher::AnythingBut(not) => !not.iter().any(|n| same(n, v)),
        Matcher::AnythingButPrefix(p) => v.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
        Matcher::Numeric { lower, upper } => v.as_f64().is_some_and(|n| {
            lower.is_none_or(|(b, incl)| if incl { n >= b } else { n > b })
                && upper.is_none_or(|(b, incl)| if incl { n <= b } else { n < b })
        }),
        Matcher::Exists(_) => true,
    }
}

/// Equality as AWS filters compare: numbers by their text.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_string() == y.to_string(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(data: Value) -> Map<String, Value> {
        let Value::Object(o) = json!({
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "user-1",
            "sequenceNumber": "1",
            "approximateArrivalTimestamp": 1.5,
            "data": data,
        }) else {
            unreachable!()
        };
        o
    }

    fn passes(pattern: &str, data: Value) -> bool {
        Filters::compile(&[pattern]).unwrap().passes(&record(data))
    }

    #[test]
    fn matchers() {
        let d = json!({"city": "Seattle", "temp": 72, "tags": ["a", "b"], "nothing": null, "cost": 3.0});
        let yes = [
            r#"{"data": {"city": ["Seattle"]}}"#,
            r#"{"data": {"city": ["Boston", "Seattle"]}}"#,
            r#"{"data": {"city": [{"prefix": "Sea"}]}}"#,
            r#"{"data": {"city": [{"suffix": "tle"}]}}"#,
            r#"{"data": {"city": [{"equals-ignore-case": "SEATTLE"}]}}"#,
            r#"{"data": {"city": [{"anything-but": ["Boston", "Denver"]}]}}"#,
            r#"{"data": {"city": [{"anything-but": {"prefix": "Bos"}}]}}"#,
            r#"{"data": {"temp": [{"numeric": [">", 70, "<=", 72]}]}}"#,
            r#"{"data": {"temp": [{"numeric": ["=", 72]}]}}"#,
            r#"{"data": {"temp": [72]}}"#,
            r#"{"data": {"tags": ["b"]}}"#,
            r#"{"data": {"nothing": [null]}}"#,
            r#"{"data": {"city": [{"exists": true}], "missing": [{"exists": false}]}}"#,
            r#"{"partitionKey": ["user-1"]}"#,
            r#"{"data": {"$or": [{"city": ["Boston"]}, {"temp": [{"numeric": [">=", 72]}]}]}}"#,
        ];
        for p in yes {
            assert!(passes(p, d.clone()), "{p}");
        }
        let no = [
            r#"{"data": {"city": ["seattle"]}}"#,
            r#"{"data": {"city": [{"anything-but": "Seattle"}]}}"#,
            r#"{"data": {"temp": [{"numeric": [">", 72]}]}}"#,
            r#"{"data": {"cost": [3]}}"#,
            r#"{"data": {"missing": [null]}}"#,
            r#"{"data": {"missing": [{"anything-but": "x"}]}}"#,
            r#"{"data": {"city": [{"exists": false}]}}"#,
            r#"{"data": {"city": ["Seattle"], "temp": [1]}}"#,
            r#"{"data": {"$or": [{"city": ["Boston"]}, {"temp": [1]}]}}"#,
        ];
        for p in no {
            assert!(!passes(p, d.clone()), "{p}");
        }
        // Data that is not JSON: only patterns without a data key match.
        let raw = Filters::compile(&[r#"{"data": {"city": [{"exists": true}]}}"#]).unwrap();
        let mut r = record(Value::Null);
        r.remove("data");
        assert!(!raw.passes(&r));
        assert!(
            Filters::compile(&[r#"{"partitionKey": ["user-1"]}"#])
                .unwrap()
                .passes(&r)
        );
        // Any filter; no filters at all pass everything.
        let two = Filters::compile(&[
            r#"{"data": {"city": ["X"]}}"#,
            r#"{"data": {"temp": [72]}}"#,
        ])
        .unwrap();
        assert!(two.passes(&record(d.clone())));
        assert!(Filters::compile(&[]).unwrap().passes(&record(d)));
    }

    #[test]
    fn bad_patterns_are_refused_when_compiled() {
        for p in [
            "not json",
            "[1]",
            r#"{"data": "x"}"#,
            r#"{"data": {"city": []}}"#,
            r#"{"data": {"city": "Seattle"}}"#,
            r#"{"data": {"city": [{"wildcard": "S*"}]}}"#,
            r#"{"data": {"temp": [{"numeric": [">", 1, ">", 2]}]}}"#,
            r#"{"data": {"temp": [{"numeric": [">", "one"]}]}}"#,
            r#"{"data": {"temp": [{"numeric": ["=", 1, "<", 2]}]}}"#,
            r#"{"data": {"city": [{"exists": "yes"}]}}"#,
            r#"{"data": {"city": [{"prefix": "a", "suffix": "b"}]}}"#,
            r#"{"data": {"city": [{"anything-but": []}]}}"#,
            r#"{"data": {"$or": [{"city": ["a"]}]}}"#,
        ] {
            let e = Filters::compile(&[p]).unwrap_err();
            assert!(
                e.starts_with("Invalid filter pattern definition."),
                "{p}: {e}"
            );
        }
    }
}
