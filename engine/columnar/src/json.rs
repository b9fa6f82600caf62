//! The JSON reader for records: concatenated JSON values read into a borrowed tree
//! (`Value`) that keeps every number as its exact source text, so a `decimal(38,0)` or
//! a `bigint` never passes through an f64 (Hive's OpenX SerDe reads the text too).
//!
//! Strict RFC 8259 grammar on UTF-8 input; nesting is bounded by `NESTING_DEPTH_MAX`
//! so hostile input cannot exhaust the stack. Object members stay in source order,
//! duplicates included (the reader of a row lets the last one win). Errors name the
//! line and column (1-based; the column counts bytes), like serde_json's.
//!
//! serde_json is not used here: without its `arbitrary_precision` feature (which would
//! change every crate's serde_json in the workspace) it turns numbers into f64.

use std::borrow::Cow;
use std::fmt;

/// The deepest nesting of arrays and objects accepted in a record (serde_json's limit).
pub(crate) const NESTING_DEPTH_MAX: usize = 128;

/// A JSON value borrowed from the record it was read from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's source text, checked against JSON's number grammar.
    Number(&'a str),
    /// Unescaped; borrowed when the source had no escapes.
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in source order.
    Object(Vec<Member<'a>>),
}

/// An object's member: its key (unescaped) and value.
pub(crate) type Member<'a> = (Cow<'a, str>, Value<'a>);

impl Value<'_> {
    /// How the value's kind reads in an error ("an array").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Compact JSON (no spaces), numbers as their source text, strings escaped as serde_json
/// escapes them (`"`, `\`, control characters).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(text) => f.write_str(text),
            Value::String(s) => write_string(f, s),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Object(members) => {
                f.write_str("{")?;
                for (i, (key, item)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_string(f, key)?;
                    write!(f, ":{item}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A string as a JSON string literal.
fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        f.write_str(&s[start..i])?;
        if escape.is_empty() {
            write!(f, "\\u{b:04x}")?;
        } else {
            f.write_str(escape)?;
        }
        start = i + 1;
    }
    f.write_str(&s[start..])?;
    f.write_char('"')
}

/// Every value in `record` (JSON values one after another, whitespace between them
/// allowed), or the first error.
pub(crate) fn read_all(record: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let text = std::str::from_utf8(record).map_err(|e| {
        let at = e.valid_up_to();
        let (line, column) = line_column(record, at);
        format!("invalid UTF-8 at line {line} column {column}")
    })?;
    let mut reader = Reader {
        text,
        bytes: record,
        pos: 0,
    };
    let mut values = Vec::new();
    loop {
        reader.skip_whitespace();
        if reader.pos == reader.bytes.len() {
            return Ok(values);
        }
        values.push(reader.value(0)?);
    }
}

/// 1-based line and column (in bytes) of byte `pos`, where an error points.
fn line_column(bytes: &[u8], pos: usize) -> (usize, usize) {
    let before = &bytes[..pos.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    (line, column + 1)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// An error at the current byte.
    fn error(&self, what: &str) -> String {
        let (line, column) = line_column(self.bytes, self.pos);
        format!("{what} at line {line} column {column}")
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A value at `pos` (whitespace skipped); `depth` counts the containers around it.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => Err(self.error("expected value")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), String> {
        if depth > NESTING_DEPTH_MAX {
            return Err(self.error(&format!(
                "nested deeper than {NESTING_DEPTH_MAX} arrays and objects"
            )));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, String> {
        self.enter(depth)?;
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected a key string")),
            }
            let key = self.string()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected ':'")),
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, String> {
        self.enter(depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as its text.
    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digit in the exponent"));
            }
        }
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            // `01`: a leading zero.
            return Err(self.error("invalid number: a leading zero"));
        }
        Ok(&self.text[start..self.pos])
    }

    /// A string at `pos` (which is `"`), unescaped.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            let run = self.pos;
            while self
                .peek()
                .is_some_and(|b| !matches!(b, b'"' | b'\\' | 0..=0x1f))
            {
                self.pos += 1;
            }
            // Stopped at an ASCII byte or the end: a char boundary.
            let piece = &self.text[run..self.pos];
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(&self.text[start..self.pos - 1]),
                        Some(mut s) => {
                            s.push_str(piece);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(piece);
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            owned.get_or_insert_with(String::new).push(c);
                            continue;
                        }
                        None => return Err(self.error("EOF while parsing a string")),
                        Some(_) => return Err(self.error("invalid escape")),
                    };
                    self.pos += 1;
                    s.push(c);
                }
                Some(_) => {
                    return Err(self.error("control character (\\u0000-\\u001F) in a string"));
                }
                None => return Err(self.error("EOF while parsing a string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    /// After `\u`: one code point, joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(self.error("lone leading surrogate in a \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("lone leading surrogate in a \\u escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate in a \\u escape")),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(record: &str, expected: &str) {
        let got = read_all(record.as_bytes()).map(|values| {
            values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        });
        assert_eq!(got.as_deref(), Ok(expected), "{record:?}");
    }

    #[test]
    fn values_keep_number_text_and_member_order() {
        for (record, expected) in [
            (
                r#" {"b": 1.50, "a": [1e400, -0.0E+3, 123456789012345678901234567890]} "#,
                r#"{"b":1.50,"a":[1e400,-0.0E+3,123456789012345678901234567890]}"#,
            ),
            (r#"{"a":1,"a":2}"#, r#"{"a":1,"a":2}"#),
            (
                r#"{}{"x":null}  [true,false]"#,
                r#"{} {"x":null} [true,false]"#,
            ),
            (
                r#"{"s":"x\ty\u00e9\ud83d\ude00\/\"\\\u0001"}"#,
                "{\"s\":\"x\\ty\u{e9}\u{1f600}/\\\"\\\\\\u0001\"}",
            ),
            ("", ""),
            ("5 \"s\"", "5 \"s\""),
        ] {
            check(record, expected);
        }
        let values = read_all(br#"{"plain":"text","esc":"a\nb"}"#).unwrap();
        let Value::Object(members) = &values[0] else {
            panic!("not an object")
        };
        assert!(matches!(members[0].1, Value::String(Cow::Borrowed("text"))));
        assert!(matches!(&members[1].1, Value::String(Cow::Owned(s)) if s == "a\nb"));
    }

    #[test]
    fn refusals_name_the_place() {
        for (record, expected) in [
            (
                r#"{"id":1"#,
                "EOF while parsing an object at line 1 column 8",
            ),
            (r#"{"id":1}}"#, "expected value at line 1 column 9"),
            ("id=1", "expected value at line 1 column 1"),
            (
                "{\n\"a\":01}",
                "invalid number: a leading zero at line 2 column 6",
            ),
            (
                r#"{"a":1.}"#,
                "no digit after the decimal point at line 1 column 8",
            ),
            (r#"{"a":1e}"#, "no digit in the exponent at line 1 column 8"),
            (r#"{"a":-}"#, "invalid number at line 1 column 7"),
            (r#"{"a":tru}"#, "expected value at line 1 column 6"),
            (r#"{"a" 1}"#, "expected ':' at line 1 column 6"),
            (r#"{a:1}"#, "expected a key string at line 1 column 2"),
            (r#"[1 2]"#, "expected ',' or ']' at line 1 column 4"),
            (r#"[1,"#, "EOF while parsing a value at line 1 column 4"),
            ("{\"a\":\"x\ny\"}", "control character"),
            (r#"{"a":"\ud800"}"#, "lone leading surrogate"),
            (r#"{"a":"\udc00"}"#, "lone trailing surrogate"),
            (r#"{"a":"\q"}"#, "invalid escape at line 1 column 8"),
            (r#"{"a":"\u12"}"#, "invalid \\u escape"),
            (
                r#"{"a":"open"#,
                "EOF while parsing a string at line 1 column 11",
            ),
        ] {
            let err = read_all(record.as_bytes()).expect_err(record);
            assert!(
                err.ends_with(expected) || err.starts_with(expected),
                "{record}: {err}"
            );
        }
        assert_eq!(
            read_all(b"{\"a\":\"\xff\"}").unwrap_err(),
            "invalid UTF-8 at line 1 column 7"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(
            read_all(deep(NESTING_DEPTH_MAX).as_bytes()).unwrap().len(),
            1
        );
        let err = read_all(deep(NESTING_DEPTH_MAX + 1).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            "nested deeper than 128 arrays and objects at line 1 column 129"
        );
        let err = read_all(format!("{}1", "[".repeat(100_000)).as_bytes()).unwrap_err();
        assert!(err.starts_with("nested deeper than 128"), "{err}");
    }
}
