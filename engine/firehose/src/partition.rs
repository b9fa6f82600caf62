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
/// S3's limit on a key, in bytes.
const KEY_BYTES_MAX: usize = 1024;
/// Records nested deeper are refused before jq reads them (its parser
/// recurses once per level: a deep record must not exhaust a thread's stack).
pub const JSON_DEPTH_MAX: usize = 128;
/// What a query may not use: definitions (recursion without end), generators
/// and loops without a bound, regular expressions, and what is not a function
/// of the record (the clock, the environment, other inputs), so that a query
/// always ends, in time about proportional to its record, and gives the same
/// keys when a batch is rebuilt after a crash.
const FORBIDDEN: &[&str] = &[
    "def",
    "recurse",
    "recurse_down",
    "range",
    "repeat",
    "while",
    "until",
    "limit",
    "input",
    "inputs",
    "now",
    "env",
    "halt",
    "halt_error",
    "input_filename",
    "debug",
    "stderr",
    "getpath",
    "splits",
    "test",
    "match",
    "capture",
    "scan",
    "sub",
    "gsub",
];

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
        check_subset(source)?;
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
        if !depth_at_most(record, JSON_DEPTH_MAX) {
            return Err(format!(
                "the record is nested deeper than {JSON_DEPTH_MAX} levels"
            ));
        }
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

/// Every record's keys by `query` (compiled here: jq's values cannot cross
/// threads, so a worker thread compiles and runs it).
pub fn keys_of_all<'a>(
    query: &str,
    records: impl Iterator<Item = &'a [u8]>,
) -> Vec<Result<Vec<(String, String)>, String>> {
    match Query::compile(query) {
        Ok(q) => records.map(|r| q.keys(r)).collect(),
        Err(why) => records.map(|_| Err(why.clone())).collect(),
    }
}

/// Refuses a query that uses what `FORBIDDEN` names, or `..` (recursion).
fn check_subset(source: &str) -> Result<(), String> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // A string literal, skipped; an interpolation in it (`\(...)`)
                // would be code inside a string: refused.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'(') {
                        return Err(format!(
                            "MetadataExtractionQuery {source:?} uses string interpolation, which Riffle does not run"
                        ));
                    }
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                return Err(format!(
                    "MetadataExtractionQuery {source:?} uses `..` (recursive descent), which Riffle does not run"
                ));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let start = i;
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &source[start..i];
                // `.name` is a field, not a function.
                let field = start > 0 && bytes[start - 1] == b'.';
                if !field && FORBIDDEN.contains(&word) {
                    return Err(format!(
                        "MetadataExtractionQuery {source:?} uses `{word}`; Riffle runs queries without definitions, unbounded generators, regular expressions, the clock or other inputs"
                    ));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether `json` nests arrays and objects at most `max` deep (strings
/// skipped; malformed JSON is left to the parser).
fn depth_at_most(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
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
    if out.len() > KEY_BYTES_MAX {
        return Err(format!(
            "the object key is {} bytes, over S3's {KEY_BYTES_MAX}",
            out.len()
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
        // A record nested too deep for jq's recursive parser fails alone.
        let deep = "[".repeat(100_000);
        assert!(
            q.keys(deep.as_bytes())
                .unwrap_err()
                .contains("nested deeper")
        );
        let ok = format!("{{\"customer\": {}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(q.keys(ok.as_bytes()).unwrap_err().contains("not a string"));
    }

    #[test]
    fn queries_that_may_not_end_or_repeat_are_refused() {
        for bad in [
            "def f: 1 + f; {a: f}",
            "{a: (last(range(1e8))|tostring)}",
            "{a: [..] | length}",
            "{a: now|tostring}",
            "{a: (.x | until(. > 9; . + 1))}",
            "{a: .s | test(\"(a+)+$\")}",
            "{a: input}",
            "{a: \"\\(now)\"}",
        ] {
            assert!(Query::compile(bad).is_err(), "{bad}");
        }
        // Fields named like them are fields; strings are strings.
        for good in [
            "{a: .range, b: .def, c: \"now\"}",
            "{a: .x | ascii_downcase, b: (.y|tostring)}",
            "{year: .ts|strftime(\"%Y\")}",
        ] {
            Query::compile(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn keys_of_all_runs_a_query_over_records() {
        let records: Vec<&[u8]> = vec![br#"{"c": "a"}"#, b"nope"];
        let out = keys_of_all("{c: .c}", records.into_iter());
        assert_eq!(out[0], Ok(vec![("c".to_string(), "a".to_string())]));
        assert!(out[1].is_err());
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
