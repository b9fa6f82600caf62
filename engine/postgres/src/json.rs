//! A small JSON reader for `JSON 'auto'`: concatenated top-level objects,
//! each read into its keys and values, keeping numbers and nested values as
//! their exact source text (a `DECIMAL(38,10)` must not pass through an f64).
//!
//! Validates everything it reads (RFC 8259 grammar); nesting is bounded by
//! [`NESTING_DEPTH_MAX`] so hostile input cannot exhaust the stack.

/// The deepest nesting of objects and arrays accepted inside a record.
pub const NESTING_DEPTH_MAX: usize = 128;

/// One top-level value of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    /// A string, unescaped.
    Str(String),
    /// A number, `true`/`false`, or a nested object/array: its source text.
    Raw(&'a str),
}

/// One record: its keys and values in source order.
pub type Object<'a> = Vec<(String, Value<'a>)>;

/// Reads the top-level objects of `text` one at a time; an error names the
/// byte offset and ends the iteration.
pub struct Objects<'a> {
    text: &'a str,
    pos: usize,
    failed: bool,
}

impl<'a> Objects<'a> {
    pub fn new(text: &'a str) -> Objects<'a> {
        Objects {
            text,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for Objects<'a> {
    type Item = Result<Object<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut r = Reader {
            text: self.text,
            bytes: self.text.as_bytes(),
            pos: self.pos,
        };
        r.skip_ws();
        if r.pos >= r.bytes.len() {
            return None;
        }
        let result = r.object();
        self.pos = r.pos;
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> String {
        format!("invalid JSON at byte {}: {what}", self.pos)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len()
            && matches!(self.bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", b as char)))
        }
    }

    /// A top-level object with its values kept for column matching.
    fn object(&mut self) -> Result<Object<'a>, String> {
        match self.peek() {
            Some(b'{') => {}
            Some(b'[') => {
                return Err(self.error(
                    "JSON 'auto' needs an object for each record, found an array (arrays need a JSONPaths file)",
                ));
            }
            _ => return Err(self.error("expected an object '{'")),
        }
        self.pos += 1;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(fields);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key string"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = match self.peek() {
                Some(b'"') => Value::Str(self.string()?),
                Some(b'n') => {
                    self.literal("null")?;
                    Value::Null
                }
                _ => {
                    let start = self.pos;
                    self.skip_value(1)?;
                    Value::Raw(&self.text[start..self.pos])
                }
            };
            fields.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(fields);
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    /// Skips (and checks) any value; `depth` counts enclosing containers.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') | Some(b'[') => {
                if depth > NESTING_DEPTH_MAX {
                    return Err(
                        self.error(&format!("nested deeper than {NESTING_DEPTH_MAX} levels"))
                    );
                }
                let close = if self.peek() == Some(b'{') {
                    b'}'
                } else {
                    b']'
                };
                let is_object = close == b'}';
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if is_object {
                        if self.peek() != Some(b'"') {
                            return Err(self.error("expected a key string"));
                        }
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                        self.skip_ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => {
                            return Err(self.error(&format!("expected ',' or '{}'", close as char)));
                        }
                    }
                }
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("bad number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("bad number: no digits after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("bad number: no digits in the exponent"));
            }
        }
        Ok(())
    }

    /// A string at `pos` (which is `"`), unescaped.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self.pos < self.bytes.len()
                && !matches!(self.bytes[self.pos], b'"' | b'\\' | 0..=0x1f)
            {
                self.pos += 1;
            }
            // Stopped on an ASCII byte (or the end): a char boundary.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
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
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.error("bad escape in a string")),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("string not closed")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("bad \\u escape"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    /// After `\u`: one code point, joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("unpaired surrogate in \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Object<'_>>, String> {
        Objects::new(text).collect()
    }

    #[test]
    fn objects_and_values() {
        let got = read(
            " {\"a\": 1.50, \"b\":\"x\\ty\\u00e9\\ud83d\\ude00\", \"c\": null, \"d\": {\"e\": [1, true]}}\n{}{\"z\":-0e+3}",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                vec![
                    ("a".to_string(), Value::Raw("1.50")),
                    ("b".to_string(), Value::Str("x\ty\u{e9}\u{1f600}".into())),
                    ("c".to_string(), Value::Null),
                    ("d".to_string(), Value::Raw("{\"e\": [1, true]}")),
                ],
                vec![],
                vec![("z".to_string(), Value::Raw("-0e+3"))],
            ]
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            ("[1,2]", "found an array"),
            ("{\"a\":1", "expected ',' or '}'"),
            ("{\"a\":01}", "expected ',' or '}'"),
            ("{\"a\":1.}", "no digits after"),
            ("{\"a\":tru}", "expected a value"),
            ("{\"a\":\"x\ny\"}", "control character"),
            ("{\"a\":\"\\ud800\"}", "unpaired surrogate"),
            ("{\"a\":\"\\q\"}", "bad escape"),
            ("{a:1}", "expected a key"),
            ("{} x", "expected an object"),
            ("{\"a\":\"open", "not closed"),
        ];
        for (text, part) in cases {
            let e = read(text).expect_err(text);
            assert!(e.contains(part), "{text}: {e}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(read(&deep).unwrap_err().contains("nested deeper"));
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(read(&ok).unwrap().len(), 1);
    }
}
