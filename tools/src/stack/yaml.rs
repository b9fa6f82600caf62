//! A template's text read into JSON values: JSON as it is (a repeated key
//! refused), YAML through `yaml-rust2`'s events with CloudFormation's
//! reading of it: the short forms of intrinsic functions (`!Ref X`, `!GetAtt
//! A.B`, `!Sub '...'`, `!Join [...]`) become their long forms (`{"Ref":
//! "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, ...), plain scalars are typed by YAML
//! 1.2's core schema (`true`, `12`, `1.5`, `null`; a number whose text would
//! not survive, such as `007` or `1.10`, stays text), quoted ones and `!!str`
//! stay strings, a repeated key, a second document and aliases expanding past
//! a bound are refused, and every refusal names its line.

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Nodes aliases may copy in all (a "billion laughs" file is refused).
const ALIASED_NODES_MAX: usize = 100_000;

/// The template's text as a JSON value (JSON when it starts with `{` and
/// reads as JSON; YAML otherwise, flow style included).
pub fn parse(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        match strict_json(text) {
            Ok(v) => return Ok(v),
            Err(json_error) => {
                return yaml(text).map_err(|_| format!("not valid JSON: {json_error}"));
            }
        }
    }
    yaml(text)
}

fn yaml(text: &str) -> Result<Value, String> {
    let mut reader = Reader::default();
    Parser::new_from_str(text)
        .load(&mut reader, true)
        .map_err(|e| format!("not valid YAML: {e}"))?;
    if let Some(e) = reader.error {
        return Err(e);
    }
    Ok(reader.done.unwrap_or(Value::Null))
}

/// JSON with every object's keys distinct (serde_json keeps the last of a
/// repeated key; CloudFormation refuses it).
fn strict_json(text: &str) -> Result<Value, String> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict;
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Seed)? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!(
                        "the key {k} appears twice in one object"
                    )));
                }
                let v = map.next_value_seed(Seed)?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
    }
    struct Seed;
    impl<'de> serde::de::DeserializeSeed<'de> for Seed {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde::de::DeserializeSeed::deserialize(Seed, &mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

/// A node being read: a sequence, or a mapping and its pending key.
enum Open {
    Sequence(Vec<Value>, Option<Tag>, usize),
    Mapping(Map<String, Value>, Option<String>, Option<Tag>, usize),
}

#[derive(Default)]
struct Reader {
    open: Vec<Open>,
    anchors: Vec<(usize, Value)>,
    done: Option<Value>,
    error: Option<String>,
    /// Nodes copied by aliases so far.
    aliased: usize,
}

/// The nodes of a value.
fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

impl Reader {
    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(format!("line {}: {message}", mark.line()));
        }
    }

    /// A finished node: into its parent, or the document.
    fn place(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor != 0 {
            self.anchors.push((anchor, value.clone()));
        }
        match self.open.last_mut() {
            None if self.done.is_some() => self.fail(
                mark,
                "a second YAML document: a template is one document".into(),
            ),
            None => self.done = Some(value),
            Some(Open::Sequence(items, ..)) => items.push(value),
            Some(Open::Mapping(map, key, ..)) => match key.take() {
                None => match value {
                    Value::String(k) if map.contains_key(&k) => {
                        self.fail(mark, format!("the key {k} appears twice in one mapping"))
                    }
                    Value::String(k) => *key = Some(k),
                    other => self.fail(
                        mark,
                        format!("a mapping's key must be a string, not {other}"),
                    ),
                },
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

impl MarkedEventReceiver for Reader {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let key = matches!(self.open.last(), Some(Open::Mapping(_, None, ..)));
                let string = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
                let value = match (style, key || string) {
                    (TScalarStyle::Plain, false) => plain(text),
                    _ => Value::String(text),
                };
                match tagged(value, tag) {
                    Ok(v) => self.place(v, anchor, mark),
                    Err(e) => self.fail(mark, e),
                }
            }
            Event::SequenceStart(anchor, tag) => {
                self.open.push(Open::Sequence(Vec::new(), tag, anchor))
            }
            Event::MappingStart(anchor, tag) => {
                self.open.push(Open::Mapping(Map::new(), None, tag, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, tag, anchor) = match self.open.pop() {
                    Some(Open::Sequence(items, tag, anchor)) => (Value::Array(items), tag, anchor),
                    Some(Open::Mapping(map, _, tag, anchor)) => (Value::Object(map), tag, anchor),
                    None => return,
                };
                match tagged(value, tag) {
                    Ok(v) => self.place(v, anchor, mark),
                    Err(e) => self.fail(mark, e),
                }
            }
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _)| *a == id) {
                Some((_, v)) => {
                    self.aliased += nodes(v);
                    if self.aliased > ALIASED_NODES_MAX {
                        return self.fail(
                            mark,
                            format!("aliases copy more than {ALIASED_NODES_MAX} nodes"),
                        );
                    }
                    let v = v.clone();
                    self.place(v, 0, mark)
                }
                None => self.fail(mark, "an alias of no anchor".into()),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// A plain scalar by YAML 1.2's core schema; a number only when its text
/// is the number's own (`12`, `-3`, `1.5`), so that where a string is
/// expected the text comes through as written (`007`, `1.10`, `1e3`).
fn plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        if n.to_string() == text {
            return Value::Number(n.into());
        }
    } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
        && n.to_string() == text
    {
        return Value::Number(n);
    }
    Value::String(text)
}

/// The long form of a short-form intrinsic function (`!Name value`).
fn tagged(value: Value, tag: Option<Tag>) -> Result<Value, String> {
    let Some(tag) = tag else { return Ok(value) };
    if tag.handle != "!" {
        // `!!str` and the like: YAML's own tags, the value as read.
        return match (tag.handle.as_str(), tag.suffix.as_str()) {
            ("tag:yaml.org,2002:", "str") => Ok(Value::String(match value {
                Value::String(s) => s,
                other => other.to_string(),
            })),
            _ => Ok(value),
        };
    }
    let name = tag.suffix.as_str();
    let long = match name {
        "Ref" | "Condition" => name.to_string(),
        "GetAtt" => {
            let value = match value {
                Value::String(s) => match s.split_once('.') {
                    Some((resource, attribute)) => {
                        Value::Array(vec![resource.into(), attribute.into()])
                    }
                    None => return Err(format!("!GetAtt {s}: expected Resource.Attribute")),
                },
                other => other,
            };
            return Ok(Value::Object(Map::from_iter([(
                "Fn::GetAtt".into(),
                value,
            )])));
        }
        "Sub" | "Join" | "Select" | "Split" | "Base64" | "GetAZs" | "ImportValue" | "FindInMap"
        | "If" | "Equals" | "Not" | "And" | "Or" | "Cidr" | "Transform" | "Length"
        | "ToJsonString" => {
            format!("Fn::{name}")
        }
        _ => return Err(format!("unknown tag !{name}")),
    };
    Ok(Value::Object(Map::from_iter([(long, value)])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let v = parse(
            "A: !Ref Name\nB: !GetAtt Stream.Arn\nC: !Sub '${AWS::StackName}-x'\nD: !Join [',', [a, !Ref B]]\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"A": {"Ref": "Name"}, "B": {"Fn::GetAtt": ["Stream", "Arn"]},
                   "C": {"Fn::Sub": "${AWS::StackName}-x"},
                   "D": {"Fn::Join": [",", ["a", {"Ref": "B"}]]}})
        );
    }

    #[test]
    fn scalars_are_typed_as_yaml_1_2_and_quotes_keep_strings() {
        let v = parse("a: 12\nb: '12'\nc: true\nd: 1.5\ne: ~\nf: 0x1\ng: -3\n").unwrap();
        assert_eq!(
            v,
            json!({"a": 12, "b": "12", "c": true, "d": 1.5, "e": null, "f": "0x1", "g": -3})
        );
    }

    #[test]
    fn refusals_name_their_line() {
        assert_eq!(
            parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err(),
            "line 4: the key c appears twice in one mapping"
        );
        assert_eq!(
            parse("a: 1\nb: !Nope x\n").unwrap_err(),
            "line 2: unknown tag !Nope"
        );
        assert!(parse("a: [1\n").unwrap_err().starts_with("not valid YAML"));
        assert_eq!(parse("{\"a\": [1]}").unwrap(), json!({"a": [1]}));
    }

    #[test]
    fn one_document_one_meaning() {
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .contains("a second YAML document")
        );
        assert_eq!(parse("---\na: 1\n").unwrap(), json!({"a": 1}));
        assert!(
            parse("{\"a\": 1, \"a\": 2}")
                .unwrap_err()
                .contains("the key a appears twice")
        );
        assert_eq!(
            parse("{a: 1, b: [x]}\n").unwrap(),
            json!({"a": 1, "b": ["x"]})
        );
        let laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
        assert!(
            parse(laughs)
                .unwrap_err()
                .contains("aliases copy more than")
        );
    }

    #[test]
    fn anchors_and_aliases() {
        assert_eq!(
            parse("a: &x {b: 1}\nc: *x\n").unwrap(),
            json!({"a": {"b": 1}, "c": {"b": 1}})
        );
    }
}
