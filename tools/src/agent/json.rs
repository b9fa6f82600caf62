//! JSON as the Kinesis Agent reads and writes it. Reading: `agent.json` with
//! Jackson's `ALLOW_COMMENTS` (`//` and `/* */` comments), objects kept in
//! file order (Jackson reads nested objects into a `LinkedHashMap`, which
//! ADDMETADATA's `metadata` writes back in that order). Writing: the bytes of
//! Jackson's `ObjectMapper` (compact) and its default pretty printer, which the
//! agent's converters use: `\uXXXX` escapes with upper-case hex, numbers as
//! Java prints them (`Double.toString`).
//!
//! Owns no I/O; pure functions over strings.

use std::fmt::Write as _;

/// A JSON value, objects in file order (a repeated key: the last value wins,
/// at the first key's place, as `LinkedHashMap.put`).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text as written in the file.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// What the value is called in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "a list",
            Json::Obj(_) => "an object",
        }
    }

    /// The value as the agent's `readString` converts it (`toString` of a
    /// number or boolean).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Json::Str(s) => Some(s.clone()),
            Json::Num(n) => Some(n.clone()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Parses a whole document (comments allowed); the error names the line and
/// column.
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let value = p.value(0)?;
    p.space()?;
    if p.at < p.s.len() {
        return Err(p.error("unexpected text after the JSON value"));
    }
    Ok(value)
}

/// Nesting deeper than this is refused (a hostile file cannot overflow the stack).
const DEPTH_MAX: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        let before = &self.s[..self.at.min(self.s.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("{what} at line {line}, column {column}")
    }

    fn space(&mut self) -> Result<(), String> {
        loop {
            match self.s.get(self.at..self.at + 2) {
                Some(b"//") => {
                    while self.at < self.s.len() && self.s[self.at] != b'\n' {
                        self.at += 1;
                    }
                    continue;
                }
                Some(b"/*") => {
                    let start = self.at;
                    self.at += 2;
                    loop {
                        match self.s.get(self.at..self.at + 2) {
                            Some(b"*/") => {
                                self.at += 2;
                                break;
                            }
                            Some(_) => self.at += 1,
                            None => {
                                self.at = start;
                                return Err(self.error("unclosed comment"));
                            }
                        }
                    }
                    continue;
                }
                _ => {}
            }
            match self.s.get(self.at) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.at += 1,
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > DEPTH_MAX {
            return Err(self.error("JSON nested too deeply"));
        }
        self.space()?;
        match self.s.get(self.at) {
            None => Err(self.error("unexpected end of the file")),
            Some(b'{') => {
                self.at += 1;
                let mut members: Vec<(String, Json)> = Vec::new();
                self.space()?;
                if self.s.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.space()?;
                    if self.s.get(self.at) != Some(&b'"') {
                        return Err(self.error("expected a quoted key"));
                    }
                    let key = self.string()?;
                    self.space()?;
                    if self.s.get(self.at) != Some(&b':') {
                        return Err(self.error("expected ':'"));
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => members.push((key, value)),
                    }
                    self.space()?;
                    match self.s.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => return Err(self.error("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space()?;
                if self.s.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space()?;
                    match self.s.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                if self.s[self.at] == b'-' {
                    self.at += 1;
                }
                let digits = |p: &mut Self| {
                    let from = p.at;
                    while p.s.get(p.at).is_some_and(u8::is_ascii_digit) {
                        p.at += 1;
                    }
                    p.at > from
                };
                if !digits(self) {
                    return Err(self.error("invalid number"));
                }
                if self.s.get(self.at) == Some(&b'.') {
                    self.at += 1;
                    if !digits(self) {
                        return Err(self.error("invalid number"));
                    }
                }
                if matches!(self.s.get(self.at), Some(b'e' | b'E')) {
                    self.at += 1;
                    if matches!(self.s.get(self.at), Some(b'+' | b'-')) {
                        self.at += 1;
                    }
                    if !digits(self) {
                        return Err(self.error("invalid number"));
                    }
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).expect("ASCII digits");
                Ok(Json::Num(text.to_string()))
            }
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn word(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("unexpected word"))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err(self.error("unclosed string"));
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(self.error("unclosed string"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.at..self.at + 2) == Some(b"\\u")
                            {
                                self.at += 2;
                                let lo = self.hex4()?;
                                let code =
                                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                                char::from_u32(code).unwrap_or('\u{FFFD}')
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => {
                            self.at -= 1;
                            return Err(self.error("invalid escape in a string"));
                        }
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..0x20 => {
                    self.at -= 1;
                    return Err(self.error("control character in a string"));
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("a string is not UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(digits)
    }
}

/// A value the converters write: a JSON value, or a string field (`None`: null).
pub enum Out<'a> {
    Str(Option<&'a str>),
    Json(&'a Json),
}

/// Writes an object of `(key, value)` fields as Jackson does: compact, or
/// with its default pretty printer (`jsonFormat: PRETTYPRINT`).
pub fn write_object(out: &mut String, fields: &[(&str, Out<'_>)], pretty: bool) {
    if fields.is_empty() {
        out.push_str(if pretty { "{ }" } else { "{}" });
        return;
    }
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if pretty {
            out.push_str("\n  ");
        }
        write_string(out, key);
        out.push_str(if pretty { " : " } else { ":" });
        match value {
            Out::Str(Some(s)) => write_string(out, s),
            Out::Str(None) => out.push_str("null"),
            Out::Json(v) => write_value(out, v, pretty, 1),
        }
    }
    out.push_str(if pretty { "\n}" } else { "}" });
}

fn write_value(out: &mut String, v: &Json, pretty: bool, depth: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(&java_number(n)),
        Json::Str(s) => write_string(out, s),
        Json::Arr(items) => {
            if items.is_empty() {
                out.push_str(if pretty { "[ ]" } else { "[]" });
                return;
            }
            out.push_str(if pretty { "[ " } else { "[" });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if pretty { ", " } else { "," });
                }
                write_value(out, item, pretty, depth + 1);
            }
            out.push_str(if pretty { " ]" } else { "]" });
        }
        Json::Obj(members) => {
            if members.is_empty() {
                out.push_str(if pretty { "{ }" } else { "{}" });
                return;
            }
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(depth + 1));
                }
                write_string(out, k);
                out.push_str(if pretty { " : " } else { ":" });
                write_value(out, item, pretty, depth + 1);
            }
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
            out.push('}');
        }
    }
}

/// A string as Jackson writes it: `"` and `\` escaped, the control characters
/// as `\b \t \n \f \r` or `\u00XX` (upper-case hex); everything else as is.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0C => "\\f",
            b'\r' => "\\r",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04X}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A number from the config as Jackson writes it back: integers as written,
/// others as Java's `Double.toString`.
fn java_number(text: &str) -> String {
    if !text.contains(['.', 'e', 'E']) {
        let t = text.trim_start_matches('-');
        return if t.bytes().all(|b| b == b'0') {
            "0".into()
        } else {
            text.into()
        };
    }
    java_double(text.parse().unwrap_or(f64::NAN))
}

/// Java's `Double.toString`: shortest digits; plain notation with at least
/// one decimal for 10^-3 <= |x| < 10^7, else `d.dddE±n`.
pub fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{:e}", x.abs()); // "d.ddde±n" with the shortest digits
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if (-3..7).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let (int, frac) = if point <= 0 {
            (
                "0".to_string(),
                format!("{}{}", "0".repeat((-point) as usize), digits),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{}{}", digits, "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_string(),
                digits[point as usize..].to_string(),
            )
        };
        let frac = if frac.is_empty() { "0".into() } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let frac = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{frac}E{exp}", &digits[..1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_comments_and_keeps_order() {
        let v =
            parse("// agent\n{ \"b\": 1, /* c */ \"a\": [true, null, \"x\\u00e9\"], \"b\": 2 }")
                .unwrap();
        assert_eq!(
            v,
            Json::Obj(vec![
                ("b".into(), Json::Num("2".into())),
                (
                    "a".into(),
                    Json::Arr(vec![Json::Bool(true), Json::Null, Json::Str("xé".into())])
                ),
            ])
        );
    }

    #[test]
    fn errors_name_the_place() {
        for (text, expected) in [
            ("{\n \"a\" 1}", "expected ':' at line 2, column 6"),
            ("{\"a\": tru}", "unexpected word at line 1, column 7"),
            (
                "{} x",
                "unexpected text after the JSON value at line 1, column 4",
            ),
            ("/* never closed", "unclosed comment at line 1, column 1"),
            ("", "unexpected end of the file at line 1, column 1"),
        ] {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
        let deep = "[".repeat(1000);
        assert!(
            parse(&deep)
                .unwrap_err()
                .starts_with("JSON nested too deeply")
        );
    }

    #[test]
    fn strings_are_escaped_as_jackson_does() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\n\t\u{1}\u{1f}/é\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001F/é\u{7f}\"");
    }

    #[test]
    fn doubles_print_as_java_does() {
        for (x, s) in [
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (123456.789, "123456.789"),
            (1e7, "1.0E7"),
            (12345678.9, "1.23456789E7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
        ] {
            assert_eq!(java_double(x), s, "{x}");
        }
        assert_eq!(java_number("1e2"), "100.0");
        assert_eq!(java_number("-0"), "0");
        assert_eq!(java_number("42"), "42");
    }

    #[test]
    fn pretty_printing_is_jacksons_default() {
        let meta = parse("{\"k\": {\"x\": [1, 2]}, \"e\": {}}").unwrap();
        let mut out = String::new();
        write_object(
            &mut out,
            &[("metadata", Out::Json(&meta)), ("data", Out::Str(None))],
            true,
        );
        assert_eq!(
            out,
            "{\n  \"metadata\" : {\n    \"k\" : {\n      \"x\" : [ 1, 2 ]\n    },\n    \"e\" : { }\n  },\n  \"data\" : null\n}"
        );
    }
}
