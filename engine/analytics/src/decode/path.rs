//! The JSONPaths Riffle serves (docs/analytics-design.md §2.1), parsed once
//! at compile time into a plan: the keys leading to the row array (from
//! `RecordRowPath`) and a trie of the columns' `Mapping`s from the row, so
//! the scanner (`json.rs`) descends only into mapped keys.
//!
//! Served: `$`, `$.name`, `$.a.b.c`, `$['key with.dots']`, `$.arr[0:]` (the
//! whole array as one value) and `$.arr[0:].x` (flattening: one row per
//! element). Everything else (filters, wildcards, recursive descent, other
//! indexes or slices) is refused with the reason.

/// One step of a parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// `.name` or `['name']`.
    Key(Box<str>),
    /// `[0:]`: every element of an array.
    All,
}

/// What a path may be made of, said in refusals.
const SERVED: &str = "served: $, $.name, $.a.b, $['key'], $.arr[0:], $.arr[0:].x";

/// Parses a JSONPath of the served forms into its steps.
pub(super) fn parse(path: &str) -> Result<Vec<Step>, String> {
    let refuse = |why: &str| Err(format!("{why} ({SERVED})"));
    let Some(mut rest) = path.strip_prefix('$') else {
        return refuse("a path starts with $");
    };
    let mut steps = Vec::new();
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                rest = &rest[1..];
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let name = &rest[..end];
                if name.is_empty() {
                    return refuse(if rest.starts_with('.') {
                        "recursive descent (..) is not served"
                    } else {
                        "a key name is empty"
                    });
                }
                if name == "*" {
                    return refuse("wildcards are not served");
                }
                if let Some(bad) = name.chars().find(|c| {
                    c.is_whitespace() || matches!(c, '*' | ']' | '\'' | '"' | '(' | ')' | '?')
                }) {
                    return refuse(&format!(
                        "the key {name:?} has {bad:?}; quote it as ['...']"
                    ));
                }
                steps.push(Step::Key(name.into()));
                rest = &rest[end..];
            }
            '[' => {
                rest = &rest[1..];
                if let Some(after) = rest.strip_prefix("0:]") {
                    steps.push(Step::All);
                    rest = after;
                } else if let Some(quote) = rest.chars().next().filter(|q| *q == '\'' || *q == '"')
                {
                    // A backslash takes the next character as it is (`\'`, `\\`),
                    // as DiscoverInputSchema writes keys holding quotes.
                    let body = &rest[1..];
                    let mut key = String::new();
                    let mut chars = body.char_indices();
                    let close = loop {
                        match chars.next() {
                            None => return refuse("a quoted key is not closed"),
                            Some((_, '\\')) => match chars.next() {
                                Some((_, c)) => key.push(c),
                                None => return refuse("a quoted key is not closed"),
                            },
                            Some((i, c)) if c == quote => break i,
                            Some((_, c)) => key.push(c),
                        }
                    };
                    let Some(after) = body[close + 1..].strip_prefix(']') else {
                        return refuse("a quoted key is not followed by ]");
                    };
                    steps.push(Step::Key(key.into()));
                    rest = after;
                } else {
                    let inside = rest.split(']').next().unwrap_or(rest);
                    return refuse(&if inside.starts_with('?') || inside.starts_with('(') {
                        "filters and expressions are not served".to_string()
                    } else if inside == "*" {
                        "wildcards are not served".to_string()
                    } else if inside.starts_with('-') {
                        "negative indexes are not served".to_string()
                    } else {
                        format!("the index [{inside}] is not served; only [0:] is")
                    });
                }
            }
            _ => return refuse(&format!("{c:?} is not expected here")),
        }
    }
    Ok(steps)
}

/// Where a column's value is captured while a row is scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// One value per row of the record (the same for every flattened row).
    Plain(usize),
    /// One value per element of the flattened array.
    Flat(usize),
}

/// An object key of the trie and the node it leads to.
#[derive(Clone, Debug)]
pub(super) struct Key {
    pub name: Box<[u8]>,
    pub node: usize,
    /// The key with its quotes, as a record writes it when it needs no
    /// escape (no `"`, `\` or control character): those bytes at a key's
    /// opening quote are that key, whatever follows.
    pub quoted: Option<Box<[u8]>>,
}

/// A trie node: the value at one path from the row.
#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    /// Child nodes by object key (few; looked up linearly).
    pub keys: Vec<Key>,
    /// The node for each element, when this array is flattened.
    pub elements: Option<usize>,
    /// The slots this value fills.
    pub slots: Vec<Slot>,
}

/// The compiled JSON mapping.
#[derive(Clone, Debug)]
pub(super) struct JsonPlan {
    /// Keys from the record to the row array; `None` for `$` (the record is
    /// the row).
    pub row_keys: Option<Vec<Box<[u8]>>>,
    /// The trie; node 0 is the row.
    pub nodes: Vec<Node>,
    /// Each column's slot, by column index.
    pub slots: Vec<Slot>,
    pub plain_count: usize,
    pub flat_count: usize,
}

impl JsonPlan {
    /// Builds the plan from the row path and each column's (name, mapping).
    pub fn build(row_path: &str, mappings: &[(&str, &str)]) -> Result<JsonPlan, String> {
        let row_steps = parse(row_path)
            .map_err(|e| format!("RecordRowPath {row_path:?} is not served: {e}"))?;
        let row_keys = match row_steps.split_last() {
            None => None,
            Some((Step::All, keys)) if keys.iter().all(|s| matches!(s, Step::Key(_))) => Some(
                keys.iter()
                    .map(|s| match s {
                        Step::Key(k) => k.as_bytes().into(),
                        Step::All => Box::from(&b""[..]),
                    })
                    .collect(),
            ),
            Some(_) => {
                return Err(format!(
                    "RecordRowPath {row_path:?} is not served: a row path is $ or the path of \
                     an array ending in [0:], like $.rows[0:]"
                ));
            }
        };
        let mut plan = JsonPlan {
            row_keys,
            nodes: vec![Node::default()],
            slots: Vec::with_capacity(mappings.len()),
            plain_count: 0,
            flat_count: 0,
        };
        // The keys of the one flattened array, once a column names it.
        let mut flattened: Option<Vec<Box<str>>> = None;
        for (name, mapping) in mappings {
            let refuse =
                |why: String| format!("column {name:?}: Mapping {mapping:?} is not served: {why}");
            let mut steps = parse(mapping).map_err(refuse)?;
            if steps.last() == Some(&Step::All) {
                // `$.arr[0:]` as the last step: the whole array, one value.
                steps.pop();
            }
            let all_at = steps.iter().position(|s| *s == Step::All);
            let (prefix, suffix) = match all_at {
                None => (&steps[..], None),
                Some(i) => (&steps[..i], Some(&steps[i + 1..])),
            };
            let mut node = 0;
            for step in prefix {
                let Step::Key(k) = step else {
                    unreachable!("prefix holds keys only")
                };
                node = plan.child(node, k);
            }
            let slot = match suffix {
                None => {
                    plan.plain_count += 1;
                    Slot::Plain(plan.plain_count - 1)
                }
                Some(suffix) => {
                    if suffix.contains(&Step::All) {
                        return Err(refuse(
                            "only one array level may be flattened ([0:] once before a key)".into(),
                        ));
                    }
                    let keys: Vec<Box<str>> = prefix
                        .iter()
                        .map(|s| match s {
                            Step::Key(k) => k.clone(),
                            Step::All => "".into(),
                        })
                        .collect();
                    match &flattened {
                        Some(f) if *f != keys => {
                            return Err(refuse(
                                "only one array per schema may be flattened; \
                                 another column flattens a different one"
                                    .into(),
                            ));
                        }
                        _ => flattened = Some(keys),
                    }
                    node = match plan.nodes[node].elements {
                        Some(e) => e,
                        None => {
                            plan.nodes.push(Node::default());
                            let e = plan.nodes.len() - 1;
                            plan.nodes[node].elements = Some(e);
                            e
                        }
                    };
                    for step in suffix {
                        let Step::Key(k) = step else {
                            unreachable!("checked above")
                        };
                        node = plan.child(node, k);
                    }
                    plan.flat_count += 1;
                    Slot::Flat(plan.flat_count - 1)
                }
            };
            plan.nodes[node].slots.push(slot);
            plan.slots.push(slot);
        }
        Ok(plan)
    }

    /// The child of `node` at `key`, created if new.
    fn child(&mut self, node: usize, key: &str) -> usize {
        if let Some(k) = self.nodes[node]
            .keys
            .iter()
            .find(|k| *k.name == *key.as_bytes())
        {
            return k.node;
        }
        self.nodes.push(Node::default());
        let c = self.nodes.len() - 1;
        let quoted = (crate::plain::plain_len(key.as_bytes()) == key.len())
            .then(|| format!("\"{key}\"").into_bytes().into_boxed_slice());
        self.nodes[node].keys.push(Key {
            name: key.as_bytes().into(),
            node: c,
            quoted,
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn served_paths_parse_into_steps() {
        let cases: &[(&str, Vec<Step>)] = &[
            ("$", vec![]),
            ("$.name", vec![key("name")]),
            ("$.a.b.c", vec![key("a"), key("b"), key("c")]),
            ("$['key with.dots']", vec![key("key with.dots")]),
            ("$[\"k\"].x", vec![key("k"), key("x")]),
            ("$.arr[0:]", vec![key("arr"), Step::All]),
            ("$.arr[0:].x", vec![key("arr"), Step::All, key("x")]),
            ("$.@timestamp", vec![key("@timestamp")]),
            ("$['it\\'s']", vec![key("it's")]),
            ("$['back\\\\slash'].x", vec![key("back\\slash"), key("x")]),
            ("$.Ünïcode", vec![key("Ünïcode")]),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path).as_ref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn other_paths_are_refused_with_the_reason() {
        let cases = [
            ("name", "starts with $"),
            ("$..a", "recursive descent"),
            ("$.*", "wildcards"),
            ("$.a[*]", "wildcards"),
            ("$.a[?(@.x>1)]", "filters"),
            ("$.a[-1]", "negative"),
            ("$.a[1]", "[1] is not served"),
            ("$.a[0:2]", "[0:2] is not served"),
            ("$.a.", "empty"),
            ("$.a b", "quote it"),
            ("$['a", "not closed"),
            ("$['a'", "followed by ]"),
            ("$['a'x]", "followed by ]"),
            ("$x", "not expected"),
        ];
        for (path, why) in cases {
            let err = parse(path).expect_err(path);
            assert!(err.contains(why), "{path}: {err}");
        }
    }

    #[test]
    fn plans_refuse_what_the_scanner_cannot_do() {
        let cases = [
            ("$", vec![("A", "$.a[0:].b[0:].c")], "only one array level"),
            (
                "$",
                vec![("A", "$.a[0:].x"), ("B", "$.b[0:].y")],
                "only one array per schema",
            ),
            ("$.a", vec![("A", "$.x")], "RecordRowPath"),
            ("$.a[0:].b", vec![("A", "$.x")], "RecordRowPath"),
            (
                "$",
                vec![("A", "$.x[3]")],
                "column \"A\": Mapping \"$.x[3]\"",
            ),
        ];
        for (row, cols, why) in cases {
            let err = JsonPlan::build(row, &cols).expect_err(row);
            assert!(err.contains(why), "{err}");
        }
        let plan = JsonPlan::build(
            "$.rows[0:]",
            &[("A", "$.a[0:].x"), ("B", "$.a[0:].y"), ("C", "$.a")],
        )
        .unwrap();
        assert_eq!(
            plan.slots,
            vec![Slot::Flat(0), Slot::Flat(1), Slot::Plain(0)]
        );
        assert_eq!(plan.row_keys, Some(vec![Box::from(&b"rows"[..])]));
    }
}
