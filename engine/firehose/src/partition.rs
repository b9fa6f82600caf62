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
/// The functions a query may call: AWS's documented ones (`strftime` on an
/// event time) and other pure functions of one value that take time about
/// proportional to it. Everything else (definitions, `reduce`, generators,
/// iteration, arithmetic, regular expressions, the clock, `tonumber` and
/// `fromjson` (which parse strings as JSON)) is refused when configured, so a
/// query always ends, in time and memory about proportional to its record, and
/// gives the same keys when a batch is rebuilt after a crash.
const FUNCTIONS: &[&str] = &[
    "strftime",
    "strptime",
    "mktime",
    "gmtime",
    "todate",
    "fromdate",
    "todateiso8601",
    "fromdateiso8601",
    "tostring",
    "ascii_downcase",
    "ascii_upcase",
    "ltrimstr",
    "rtrimstr",
    "floor",
    "ceil",
    "round",
    "length",
    "type",
    "null",
    "true",
    "false",
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
        // Standard JSON nested at most 128 deep (serde_json's limit) before
        // jq reads it: jq's reader recurses per level and also takes comments.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(record) {
            return Err(format!("the record is not one JSON value: {e}"));
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
        // A record that makes jq panic fails alone.
        Ok(q) => records
            .map(|r| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.keys(r)))
                    .unwrap_or_else(|_| Err("the query failed on this record".to_string()))
            })
            .collect(),
        Err(why) => records.map(|_| Err(why.clone())).collect(),
    }
}

/// Checks a query against the subset Riffle runs: paths (`.a.b`, `."k"`,
/// `.["k"]`, `.[0]`), object construction, pipes, literals, `//`, `?`, and
/// calls of [`FUNCTIONS`].
fn check_subset(source: &str) -> Result<(), String> {
    let refuse = |what: &str| {
        Err(format!(
            "MetadataExtractionQuery {source:?} uses {what}; Riffle runs a subset of jq: paths (.a.b, .[\"k\"], .[0]), object construction, pipes, literals, //, and the functions {}",
            FUNCTIONS.join(", ")
        ))
    };
    let bytes = source.as_bytes();
    let next_significant = |from: usize| {
        bytes[from..]
            .iter()
            .copied()
            .find(|b| !b.is_ascii_whitespace())
    };
    let mut i = 0;
    // The last significant byte before the current token.
    let mut previous = 0u8;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'(') {
                        return refuse("string interpolation");
                    }
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                previous = b'"';
                continue;
            }
            b'.' if bytes.get(i + 1) == Some(&b'.') => return refuse("`..`"),
            b'[' => {
                // Only an index or a key: `[` literal `]`, after a path.
                if !matches!(previous, b'.' | b']' | b')' | b'"' | b'_')
                    && !previous.is_ascii_alphanumeric()
                {
                    return refuse("array construction");
                }
                let rest = source[i + 1..].trim_start();
                let literal = match rest.as_bytes().first() {
                    Some(b'"') => rest[1..].find('"').map(|end| &rest[end + 2..]),
                    Some(c) if c.is_ascii_digit() => {
                        Some(rest.trim_start_matches(|c: char| c.is_ascii_digit()))
                    }
                    _ => None,
                };
                match literal.map(str::trim_start) {
                    Some(after) if after.starts_with(']') => {
                        i = source.len() - after.len() + 1;
                        previous = b']';
                        continue;
                    }
                    _ => return refuse("iteration (`.[]`) or a computed index"),
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i += 2;
                previous = b'/';
                continue;
            }
            b'{' | b'}' | b'(' | b')' | b':' | b',' | b'|' | b'.' | b'?' | b']' => {}
            c if c.is_ascii_digit()
                || (c == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                previous = b'0';
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &source[start..i];
                let field = previous == b'.';
                let key = next_significant(i) == Some(b':');
                if !field && !key && !FUNCTIONS.contains(&word) {
                    return refuse(&format!("`{word}`"));
                }
                previous = b'_';
                continue;
            }
            b'#' => return refuse("a comment"),
            b'$' => return refuse("variables"),
            other => return refuse(&format!("`{}`", other as char)),
        }
        previous = b;
        i += 1;
    }
    Ok(())
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
        // Records jq's recursive reader must not see fail alone: nested too
        // deep, or hiding depth behind a comment jq would skip.
        for hostile in ["[".repeat(100_000), format!("#\"\n{}", "[".repeat(100_000))] {
            assert!(
                q.keys(hostile.as_bytes())
                    .unwrap_err()
                    .contains("not one JSON value")
            );
        }
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
            "[.[] as $a|.[] as $b|0]|{a: length}",
            "{a: (reduce .[] as $x (0;[.]))}",
            "{a: [combinations]}",
            "{a: (\"x\"*1e12)}",
            "{a: (.+.|.+.)}",
            "{a: setpath([.[]|tostring];1)}",
            "{n: .s|tonumber}",
            "{n: .s|fromjson}",
            "{a: .[]}",
            "# c\n{a: .a}",
            "{a: .x|localtime}",
            "{a: [.a, .b]}",
        ] {
            assert!(Query::compile(bad).is_err(), "{bad}");
        }
        // Fields named like them are fields; strings are strings.
        for good in [
            "{a: .range, b: .def, c: \"now\"}",
            "{a: .x | ascii_downcase, b: (.y|tostring)}",
            "{year: .ts|strftime(\"%Y\")}",
            "{customer_id: .customer_id}",
            "{device: .type.device}",
            "{env: .env, test: .t, input: .x}",
            "{a: .x // \"none\", b: .[\"b c\"], c: .arr[0], d: .\"e f\"?}",
            "{h: .ts|strftime(\"%H\"), d: (.when|fromdateiso8601|strftime(\"%d\"))}",
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
