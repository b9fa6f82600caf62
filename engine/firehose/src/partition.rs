//! Dynamic partitioning, the pure half: the `MetadataExtraction` processor's
//! jq query (AWS runs JQ 1.6; Riffle runs it with jaq, compiled once per
//! object's processing), the partition keys of one record, and the key of the
//! object a partition's records go to.
//!
//! A delivery plans one key for all the objects of a gathered range: the
//! prefix evaluated except for its `partitionKeyFrom*` expressions, which stay
//! in the key as written (`!{partitionKeyFromQuery:customer}`); each
//! partition's object key substitutes them ([`object_key`]). The same records
//! give the same partitions, so an object rebuilt after a crash goes to the
//! key it was first written under.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

/// AWS's limit on the active partitions of a delivery stream's buffer: the
/// records of further partitions go to the error output.
pub const PARTITIONS_MAX: usize = 500;
/// AWS's limit on an evaluated prefix.
const PREFIX_CHARS_MAX: usize = 512;

/// A record's partition keys: `(from Lambda?, name, value)`, sorted, each
/// name once per source.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Keys(pub Vec<(bool, String, String)>);

impl Keys {
    /// Adds keys of one source (a later value of a name replaces an earlier).
    pub fn add(&mut self, from_lambda: bool, pairs: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in pairs {
            match self
                .0
                .iter_mut()
                .find(|(l, n, _)| *l == from_lambda && *n == name)
            {
                Some(entry) => entry.2 = value,
                None => self.0.push((from_lambda, name, value)),
            }
        }
        self.0.sort();
    }

    fn get(&self, from_lambda: bool, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(l, n, _)| *l == from_lambda && n == name)
            .map(|(_, _, v)| v.as_str())
    }
}

/// A compiled `MetadataExtractionQuery`.
pub struct Query {
    filter: jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Query")
    }
}

impl Query {
    /// Compiles a jq query; the error says where it does not parse or what
    /// it names that does not exist.
    pub fn compile(source: &str) -> Result<Query, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: source,
                    path: (),
                },
            )
            .map_err(|errors| {
                format!(
                    "MetadataExtractionQuery {source:?} does not parse as jq ({} error{})",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                )
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                let names: Vec<String> = errors
                    .into_iter()
                    .flat_map(|(_, errs)| errs.into_iter().map(|(name, _)| name.to_string()))
                    .collect();
                format!(
                    "MetadataExtractionQuery {source:?} does not compile: undefined {}",
                    names.join(", ")
                )
            })?;
        Ok(Query { filter })
    }

    /// The partition keys the query gives for one JSON record: it must give
    /// one object whose values are strings, numbers or booleans.
    pub fn keys(&self, record: &[u8]) -> Result<Vec<(String, String)>, String> {
        let input = jaq_json::read::parse_single(record)
            .map_err(|e| format!("the record is not one JSON value: {e}"))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, input)).map(unwrap_valr);
        let value = match out.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("the query failed: {e}")),
            None => return Err("the query gave no value".into()),
        };
        if out.next().is_some() {
            return Err("the query gave more than one value".into());
        }
        let Val::Obj(map) = value else {
            return Err(format!("the query gave {value}, not an object"));
        };
        let mut keys = Vec::with_capacity(map.len());
        for (k, v) in map.iter() {
            let Val::TStr(name) = k else {
                return Err(format!(
                    "the query's object has a key {k} that is not a string"
                ));
            };
            let name = String::from_utf8_lossy(name).into_owned();
            let value = match v {
                Val::TStr(s) => String::from_utf8_lossy(s).into_owned(),
                Val::Num(_) | Val::Bool(_) => v.to_string(),
                Val::Null => return Err(format!("partition key {name} is null")),
                _ => {
                    return Err(format!(
                        "partition key {name} is {v}, not a string, number or boolean"
                    ));
                }
            };
            keys.push((name, value));
        }
        Ok(keys)
    }
}

/// The expression a planned key keeps for a partition key.
fn expression(from_lambda: bool, name: &str) -> String {
    let namespace = if from_lambda {
        "partitionKeyFromLambda"
    } else {
        "partitionKeyFromQuery"
    };
    format!("!{{{namespace}:{name}}}")
}

/// What a prefix evaluation puts where a partition key goes, for a planned
/// key ([`object_key`] replaces it).
pub fn placeholder(from_lambda: bool, name: &str) -> String {
    expression(from_lambda, name)
}

/// The key of the object of the partition `keys` within the planned key
/// `planned`: each `!{partitionKeyFrom...:name}` replaced by the record's
/// value. Refuses a key the record lacks, or a prefix (the part before the
/// object name) over AWS's 512 characters.
pub fn object_key(planned: &str, keys: &Keys) -> Result<String, String> {
    let mut out = String::with_capacity(planned.len());
    let mut rest = planned;
    while let Some(at) = rest.find("!{partitionKeyFrom") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(close) = tail.find('}') else {
            break;
        };
        let inner = &tail[..close];
        let (from_lambda, name) = match inner.split_once(':') {
            Some(("partitionKeyFromQuery", name)) => (false, name),
            Some(("partitionKeyFromLambda", name)) => (true, name),
            _ => {
                out.push_str(&rest[at..at + 2 + close + 1]);
                rest = &tail[close + 1..];
                continue;
            }
        };
        let value = keys.get(from_lambda, name).ok_or_else(|| {
            format!(
                "the record has no partition key {name} ({})",
                expression(from_lambda, name)
            )
        })?;
        out.push_str(value);
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    let prefix_chars = out
        .rsplit_once('/')
        .map_or(0, |(p, _)| p.chars().count() + 1);
    if prefix_chars > PREFIX_CHARS_MAX {
        return Err(format!(
            "the evaluated prefix is {prefix_chars} characters, over {PREFIX_CHARS_MAX}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(bool, &str, &str)]) -> Keys {
        let mut k = Keys::default();
        for (l, n, v) in pairs {
            k.add(*l, [(n.to_string(), v.to_string())]);
        }
        k
    }

    #[test]
    fn queries_give_keys_as_aws_documents_them() {
        let q = Query::compile("{customer_id: .customer_id, device: .type.device}").unwrap();
        assert_eq!(
            q.keys(br#"{"customer_id": "c-1", "type": {"device": "mobile"}}"#)
                .unwrap(),
            vec![
                ("customer_id".to_string(), "c-1".to_string()),
                ("device".to_string(), "mobile".to_string())
            ]
        );
        // Numbers and booleans as jq prints them.
        let n = Query::compile("{n: .n, b: .b}").unwrap();
        assert_eq!(
            n.keys(br#"{"n": 42, "b": true}"#).unwrap(),
            vec![
                ("n".to_string(), "42".to_string()),
                ("b".to_string(), "true".to_string())
            ]
        );
        // AWS's documented time mappings.
        let t = Query::compile(
            r#"{year: .event_timestamp|strftime("%Y"), hour: .event_timestamp|strftime("%H")}"#,
        )
        .unwrap();
        assert_eq!(
            t.keys(br#"{"event_timestamp": 1535365800}"#).unwrap(),
            vec![
                ("year".to_string(), "2018".to_string()),
                ("hour".to_string(), "10".to_string())
            ]
        );
    }

    #[test]
    fn records_the_query_cannot_key_are_refused_with_why() {
        let q = Query::compile("{c: .customer}").unwrap();
        for (record, says) in [
            (&b"not json"[..], "not one JSON value"),
            (br#"{"other": 1}"#, "null"),
            (br#"{"customer": [1]}"#, "not a string"),
        ] {
            let e = q.keys(record).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
        let not_object = Query::compile(".customer").unwrap();
        assert!(
            not_object
                .keys(br#"{"customer": "x"}"#)
                .unwrap_err()
                .contains("not an object")
        );
        assert!(Query::compile("{c: .customer").is_err());
        assert!(Query::compile("{c: nosuchfn(.x)}").is_err());
    }

    #[test]
    fn object_keys_substitute_each_partition() {
        let planned =
            "c=!{partitionKeyFromQuery:c}/d=!{partitionKeyFromLambda:d}/s-1-2024-01-02-03-04-05-u";
        let k = keys(&[(false, "c", "acme"), (true, "d", "phone")]);
        assert_eq!(
            object_key(planned, &k).unwrap(),
            "c=acme/d=phone/s-1-2024-01-02-03-04-05-u"
        );
        // A query key is not a Lambda key.
        let wrong = keys(&[(false, "c", "acme"), (false, "d", "phone")]);
        assert!(
            object_key(planned, &wrong)
                .unwrap_err()
                .contains("partitionKeyFromLambda:d")
        );
        let long = keys(&[(false, "c", &"x".repeat(600)), (true, "d", "p")]);
        assert!(object_key(planned, &long).unwrap_err().contains("512"));
        assert_eq!(placeholder(false, "c"), "!{partitionKeyFromQuery:c}");
    }
}
