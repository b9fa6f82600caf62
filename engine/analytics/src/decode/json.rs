//! The JSON scanner: one pass over a record's bytes that checks the syntax
//! of everything and captures only the values the plan maps, as spans into
//! the record (no tree, no allocation per value). Nesting is bounded at
//! `DEPTH_MAX`; any byte sequence ends in a capture or a `Fail`, never a
//! panic. The record was checked to be UTF-8 before it gets here.

use super::path::{JsonPlan, Node, Slot};

/// The deepest nesting of arrays and objects accepted.
pub(super) const DEPTH_MAX: u32 = 128;

/// Why a record is not JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fail {
    /// Not valid JSON at this byte offset.
    Syntax(usize),
    /// Nested deeper than `DEPTH_MAX`.
    TooDeep,
}

/// What a captured value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Missing,
    Null,
    True,
    False,
    Number,
    /// A string; the span excludes the quotes. `escaped` if it has `\`.
    String {
        escaped: bool,
    },
    Array,
    Object,
}

/// A captured value: its kind and its span in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Capture {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Capture {
    pub const MISSING: Capture = Capture {
        kind: Kind::Missing,
        start: 0,
        end: 0,
    };
}

/// The values of one row, reused from row to row.
#[derive(Debug, Default)]
pub(super) struct Captures {
    /// By plain slot.
    pub plain: Vec<Capture>,
    /// By element, then flat slot.
    pub flat: Vec<Capture>,
    /// Elements of the flattened array, if the row had it as an array.
    pub flat_len: Option<usize>,
    /// An escaped object key, unescaped to compare.
    key: String,
    /// By trie node, the place in its keys after the last key met (the
    /// first after its last): records of one producer list their keys in
    /// one order, so the next key is most often there. Kept from row to row.
    hints: Vec<usize>,
}

impl Captures {
    fn reset(&mut self, plan: &JsonPlan) {
        self.plain.clear();
        self.plain.resize(plan.plain_count, Capture::MISSING);
        self.flat.clear();
        self.flat_len = None;
    }

    /// The capture of a column's slot in flattened row `row`.
    pub fn get(&self, plan: &JsonPlan, slot: Slot, row: usize) -> Capture {
        match slot {
            Slot::Plain(i) => self.plain[i],
            Slot::Flat(i) => match self.flat_len {
                Some(n) if row < n => self.flat[row * plan.flat_count + i],
                _ => Capture::MISSING,
            },
        }
    }

    /// Rows this row's captures make: one per element of the flattened
    /// array, and one (of NULLs there) if it is empty or missing.
    pub fn row_count(&self) -> usize {
        self.flat_len.unwrap_or(0).max(1)
    }
}

/// A position in a record.
pub(super) struct Cursor<'a> {
    pub b: &'a [u8],
    pub i: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn fail<T>(&self) -> Result<T, Fail> {
        Err(Fail::Syntax(self.i))
    }

    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Whitespace then the end of the record.
    pub fn end(&mut self) -> Result<(), Fail> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            self.fail()
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Fail> {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            self.fail()
        }
    }

    fn literal(&mut self, text: &[u8]) -> Result<(), Fail> {
        if self.b[self.i..].starts_with(text) {
            self.i += text.len();
            Ok(())
        } else {
            self.fail()
        }
    }

    /// A string at its opening quote; leaves the cursor after the closing
    /// one. Returns whether it has escapes.
    fn string(&mut self) -> Result<bool, Fail> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.i += crate::plain::plain_len(self.b.get(self.i..).unwrap_or_default());
            let Some(&c) = self.b.get(self.i) else {
                return self.fail();
            };
            self.i += 1;
            match c {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.fail();
                            }
                            self.i += 5;
                        }
                        _ => return self.fail(),
                    }
                }
                0..=0x1f => {
                    self.i -= 1;
                    return self.fail();
                }
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Fail> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail(),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.fail();
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.fail();
            }
        }
        Ok(())
    }

    /// Skips one value (after whitespace), checking its syntax; `depth` is
    /// how many containers enclose it.
    pub fn skip(&mut self, depth: u32) -> Result<Kind, Fail> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.enter(depth)?;
                if self.after_ws_is(b'}') {
                    return Ok(Kind::Object);
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return self.fail();
                    }
                    self.string()?;
                    self.expect(b':')?;
                    self.skip(depth + 1)?;
                    if self.next_member(b'}')? {
                        return Ok(Kind::Object);
                    }
                }
            }
            Some(b'[') => {
                self.enter(depth)?;
                if self.after_ws_is(b']') {
                    return Ok(Kind::Array);
                }
                loop {
                    self.skip(depth + 1)?;
                    if self.next_member(b']')? {
                        return Ok(Kind::Array);
                    }
                }
            }
            _ => self.scalar(),
        }
    }

    /// A scalar at the cursor.
    fn scalar(&mut self) -> Result<Kind, Fail> {
        match self.peek() {
            Some(b'"') => Ok(Kind::String {
                escaped: self.string()?,
            }),
            Some(b't') => self.literal(b"true").map(|()| Kind::True),
            Some(b'f') => self.literal(b"false").map(|()| Kind::False),
            Some(b'n') => self.literal(b"null").map(|()| Kind::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Kind::Number),
            _ => self.fail(),
        }
    }

    /// Steps over a `{` or `[` entering one more level.
    fn enter(&mut self, depth: u32) -> Result<(), Fail> {
        if depth + 1 > DEPTH_MAX {
            return Err(Fail::TooDeep);
        }
        self.i += 1;
        Ok(())
    }

    /// After whitespace, consumes `byte` if it is next.
    fn after_ws_is(&mut self, byte: u8) -> bool {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// After a member: `,` (more follow: false) or `close` (true).
    fn next_member(&mut self, close: u8) -> Result<bool, Fail> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => self.fail(),
        }
    }

    /// An object key at its opening quote, the cursor left after the `:`.
    /// Returns the key's raw span and whether it has escapes.
    fn key(&mut self) -> Result<(usize, usize, bool), Fail> {
        self.ws();
        if self.peek() != Some(b'"') {
            return self.fail();
        }
        let start = self.i + 1;
        let escaped = self.string()?;
        let end = self.i - 1;
        self.expect(b':')?;
        Ok((start, end, escaped))
    }
}

/// Scans the value at the cursor as trie node `node`, capturing mapped
/// values. `row` is the element index inside the flattened array.
pub(super) fn scan(
    plan: &JsonPlan,
    caps: &mut Captures,
    cur: &mut Cursor<'_>,
    node: usize,
    depth: u32,
    row: Option<usize>,
) -> Result<(), Fail> {
    cur.ws();
    let start = cur.i;
    let n = &plan.nodes[node];
    let kind = match cur.peek() {
        Some(b'{') if !n.keys.is_empty() => {
            cur.enter(depth)?;
            if !cur.after_ws_is(b'}') {
                if caps.hints.len() < plan.nodes.len() {
                    caps.hints.resize(plan.nodes.len(), 0);
                }
                loop {
                    cur.ws();
                    let hint = caps.hints[node];
                    // The key the hint expects, as its bytes: no string scan.
                    let found = match n.keys.get(hint).and_then(|k| k.quoted.as_deref()) {
                        Some(quoted) if cur.b[cur.i..].starts_with(quoted) => {
                            cur.i += quoted.len();
                            cur.expect(b':')?;
                            Some(hint)
                        }
                        _ => {
                            let (ks, ke, escaped) = cur.key()?;
                            let key: &[u8] = if escaped {
                                unescape_key(&cur.b[ks..ke], &mut caps.key);
                                caps.key.as_bytes()
                            } else {
                                &cur.b[ks..ke]
                            };
                            n.keys.iter().position(|k| *k.name == *key)
                        }
                    };
                    match found {
                        Some(i) => {
                            // The next key, or the first for the next record.
                            caps.hints[node] = if i + 1 == n.keys.len() { 0 } else { i + 1 };
                            let child = n.keys[i].node;
                            let c = &plan.nodes[child];
                            if c.keys.is_empty() && c.elements.is_none() {
                                // A leaf: its value, captured.
                                cur.ws();
                                let start = cur.i;
                                let kind = cur.skip(depth + 1)?;
                                capture(plan, caps, c, kind, start, cur.i, row);
                            } else {
                                scan(plan, caps, cur, child, depth + 1, row)?;
                            }
                        }
                        None => {
                            cur.skip(depth + 1)?;
                        }
                    }
                    if cur.next_member(b'}')? {
                        break;
                    }
                }
            }
            Kind::Object
        }
        Some(b'[') if n.elements.is_some() && row.is_none() => {
            let elements = n.elements.unwrap_or(node);
            cur.enter(depth)?;
            caps.flat.clear();
            caps.flat_len = Some(0);
            if !cur.after_ws_is(b']') {
                for i in 0.. {
                    caps.flat
                        .extend(std::iter::repeat_n(Capture::MISSING, plan.flat_count));
                    caps.flat_len = Some(i + 1);
                    scan(plan, caps, cur, elements, depth + 1, Some(i))?;
                    if cur.next_member(b']')? {
                        break;
                    }
                }
            }
            Kind::Array
        }
        _ => cur.skip(depth)?,
    };
    capture(plan, caps, n, kind, start, cur.i, row);
    Ok(())
}

/// Fills `n`'s slots with the value of `kind` at `start..end` (a string's
/// capture leaves out its quotes).
fn capture(
    plan: &JsonPlan,
    caps: &mut Captures,
    n: &Node,
    kind: Kind,
    start: usize,
    end: usize,
    row: Option<usize>,
) {
    if n.slots.is_empty() {
        return;
    }
    let capture = match kind {
        Kind::String { .. } => Capture {
            kind,
            start: start + 1,
            end: end - 1,
        },
        _ => Capture { kind, start, end },
    };
    for slot in &n.slots {
        match (*slot, row) {
            (Slot::Plain(i), _) => caps.plain[i] = capture,
            (Slot::Flat(i), Some(r)) => caps.flat[r * plan.flat_count + i] = capture,
            // A flat slot is only ever under the elements node.
            (Slot::Flat(_), None) => {}
        }
    }
}

/// Scans a whole record whose row path is `$`: the captures of its one row.
pub(super) fn scan_record(plan: &JsonPlan, caps: &mut Captures, record: &[u8]) -> Result<(), Fail> {
    caps.reset(plan);
    let mut cur = Cursor::new(record);
    scan(plan, caps, &mut cur, 0, 0, None)?;
    cur.end()
}

/// Walks a record whose row path is `$.k…[0:]` (already checked to be
/// JSON) and calls `row` with each element's span and captures. A missing
/// or non-array value at the row path gives no rows.
pub(super) fn scan_rows(
    plan: &JsonPlan,
    caps: &mut Captures,
    record: &[u8],
    row: &mut dyn FnMut(&Captures, usize, usize),
) -> Result<(), Fail> {
    let keys = plan.row_keys.as_deref().unwrap_or(&[]);
    let mut cur = Cursor::new(record);
    walk(plan, caps, &mut cur, keys, 0, row)?;
    cur.end()
}

fn walk(
    plan: &JsonPlan,
    caps: &mut Captures,
    cur: &mut Cursor<'_>,
    keys: &[Box<[u8]>],
    depth: u32,
    row: &mut dyn FnMut(&Captures, usize, usize),
) -> Result<(), Fail> {
    cur.ws();
    match (keys.split_first(), cur.peek()) {
        (Some((first, rest)), Some(b'{')) => {
            cur.enter(depth)?;
            if cur.after_ws_is(b'}') {
                return Ok(());
            }
            loop {
                let (ks, ke, escaped) = cur.key()?;
                let matched = if escaped {
                    unescape_key(&cur.b[ks..ke], &mut caps.key);
                    *caps.key.as_bytes() == **first
                } else {
                    cur.b[ks..ke] == **first
                };
                if matched {
                    walk(plan, caps, cur, rest, depth + 1, row)?;
                } else {
                    cur.skip(depth + 1)?;
                }
                if cur.next_member(b'}')? {
                    return Ok(());
                }
            }
        }
        (None, Some(b'[')) => {
            cur.enter(depth)?;
            if cur.after_ws_is(b']') {
                return Ok(());
            }
            loop {
                caps.reset(plan);
                cur.ws();
                let start = cur.i;
                scan(plan, caps, cur, 0, depth + 1, None)?;
                row(caps, start, cur.i);
                if cur.next_member(b']')? {
                    return Ok(());
                }
            }
        }
        _ => cur.skip(depth).map(|_| ()),
    }
}

/// Appends a string's checked content (between its quotes), unescaped, to
/// `out`. A lone surrogate becomes U+FFFD.
pub(super) fn unescape_into(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes();
        let esc = b.get(at + 1).copied().unwrap_or(b'\\');
        let mut next = at + 2;
        let ch = match esc {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(b, next);
                next += 4;
                match hi {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        let lo = if b.get(next..next + 2) == Some(b"\\u") {
                            hex4(b, next + 2)
                        } else {
                            None
                        };
                        match lo {
                            Some(lo @ 0xDC00..=0xDFFF) => {
                                next += 6;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                    .unwrap_or('\u{FFFD}')
                            }
                            _ => '\u{FFFD}',
                        }
                    }
                    Some(cp) => char::from_u32(cp).unwrap_or('\u{FFFD}'),
                    None => '\u{FFFD}',
                }
            }
            other => other as char,
        };
        out.push(ch);
        rest = rest.get(next..).unwrap_or("");
    }
    out.push_str(rest);
}

/// An escaped object key, unescaped into `out` (cleared first).
fn unescape_key(raw: &[u8], out: &mut String) {
    out.clear();
    // The record was checked to be UTF-8 and the key's span starts and
    // ends at quotes, so this always succeeds.
    if let Ok(raw) = std::str::from_utf8(raw) {
        unescape_into(raw, out);
    }
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let h = raw.get(at..at + 4)?;
    let text = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_syntax(text: &str) -> Result<Kind, Fail> {
        let mut cur = Cursor::new(text.as_bytes());
        let kind = cur.skip(0)?;
        cur.end().map(|()| kind)
    }

    #[test]
    fn skipping_checks_json_syntax() {
        let good = [
            ("{}", Kind::Object),
            (
                " [ 1 , -2.5e+3 , true,false,null ,\"a\\u00e9\\n\" ] ",
                Kind::Array,
            ),
            ("{\"a\":{\"b\":[{}]}}", Kind::Object),
            ("0", Kind::Number),
            ("\"x\"", Kind::String { escaped: false }),
        ];
        for (text, kind) in good {
            assert_eq!(check_syntax(text), Ok(kind), "{text}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "nul",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\u{1}\"",
            "{} {}",
            "[1 2]",
            "{\"a\":1,}",
            "+1",
            ".5",
        ] {
            assert!(matches!(check_syntax(bad), Err(Fail::Syntax(_))), "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = "[".repeat(128) + &"]".repeat(128);
        assert_eq!(check_syntax(&ok), Ok(Kind::Array));
        let deep = "[".repeat(129) + &"]".repeat(129);
        assert_eq!(check_syntax(&deep), Err(Fail::TooDeep));
        let deep_open = "{\"a\":".repeat(100_000);
        assert_eq!(check_syntax(&deep_open), Err(Fail::TooDeep));
    }

    #[test]
    fn unescaping() {
        let cases = [
            (r#"plain"#, "plain"),
            (r#"a\"b\\c\/d"#, "a\"b\\c/d"),
            (r#"\b\f\n\r\t"#, "\u{8}\u{c}\n\r\t"),
            (r#"\u00e9\u20AC"#, "é€"),
            (r#"\ud83d\ude00"#, "😀"),
            (r#"\ud83dx"#, "\u{FFFD}x"),
            (r#"\ude00"#, "\u{FFFD}"),
        ];
        for (raw, want) in cases {
            let mut out = String::from(">");
            unescape_into(raw, &mut out);
            assert_eq!(out, format!(">{want}"), "{raw}");
        }
    }
}
