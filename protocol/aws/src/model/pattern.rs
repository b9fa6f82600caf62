//! `pattern` constraints: AWS's models state Java regular expressions, matched
//! against the whole value (`String.matches`). This module translates the Java
//! dialect to Rust's, anchors it, and compiles it once with `regex`; the few
//! patterns that need look-around (the Rust `regex` crate has none) fall back to
//! `fancy-regex`. A pattern neither can compile is reported by the parser and
//! skipped, never guessed at.
//!
//! Java differences handled here: `\w \d \s` (and negations) are ASCII-only in
//! Java, `.` excludes every Java line terminator, `\uXXXX` surrogate pairs name
//! one code point, POSIX `\p{Alpha}`-style classes, `\Q...\E` quoting, and a `-`
//! in a class that cannot be a range operator is a literal.

use std::fmt;

/// A compiled whole-string pattern.
#[derive(Clone)]
pub struct Pattern {
    /// As the model states it: AWS's message quotes this text.
    source: String,
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Regex(regex::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl Pattern {
    /// Compiles a Java pattern for whole-string matching.
    pub fn compile(java: &str) -> Result<Pattern, String> {
        let translated = java_to_rust(java)?;
        let anchored = format!(r"\A(?:{translated})\z");
        let engine = match regex::Regex::new(&anchored) {
            Ok(re) => Engine::Regex(re),
            Err(plain) => match fancy_regex::Regex::new(&anchored) {
                Ok(re) => Engine::Fancy(Box::new(re)),
                Err(fancy) => return Err(format!("regex: {plain}; fancy-regex: {fancy}")),
            },
        };
        Ok(Pattern {
            source: java.to_string(),
            engine,
        })
    }

    /// The pattern as the model states it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches. A look-around pattern that hits
    /// fancy-regex's backtracking limit counts as a match: our engine's limit is
    /// not the client's error.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.engine {
            Engine::Regex(re) => re.is_match(value),
            Engine::Fancy(re) => re.is_match(value).unwrap_or(true),
        }
    }

    /// Whether the pattern needed the look-around engine.
    pub fn uses_lookaround(&self) -> bool {
        matches!(self.engine, Engine::Fancy(_))
    }
}

const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";
const SPACE: &str = r"\t\n\x0B\x0C\r ";
/// Java's line terminators, which `.` does not match.
const NOT_LINE_END: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";

/// Translates Java regex syntax to the syntax `regex` and `fancy-regex` share.
pub(crate) fn java_to_rust(java: &str) -> Result<String, String> {
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::with_capacity(java.len() + 16);
    let mut i = 0;
    // Depth of nested character classes; 0 outside.
    let mut depth = 0usize;
    // In a class: whether the previous item is one character that a `-` may
    // extend into a range, and whether we are right after `[` or `[^`.
    let mut range_start_ok = false;
    let mut class_start = false;
    // Outside a class: whether the last item was a quantifier, and whether it
    // was a fixed count (`{n}`).
    let mut after_quantifier: Option<bool> = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '\\' {
            let Some(&e) = chars.get(i) else {
                return Err("trailing backslash".into());
            };
            i += 1;
            let single = match e {
                'u' => {
                    let cp = unicode_escape(&chars, &mut i)?;
                    out.push_str(&format!("\\x{{{cp:X}}}"));
                    true
                }
                'w' | 'd' | 's' | 'W' | 'D' | 'S' => {
                    let set = match e.to_ascii_lowercase() {
                        'w' => WORD,
                        'd' => DIGIT,
                        _ => SPACE,
                    };
                    let negate = if e.is_ascii_uppercase() { "^" } else { "" };
                    out.push_str(&format!("[{negate}{set}]"));
                    false
                }
                'p' | 'P' => {
                    let (name, end) = property_name(&chars, i)?;
                    i = end;
                    match posix_class(&name) {
                        Some(posix) => {
                            let negate = if e == 'P' { "^" } else { "" };
                            out.push_str(&format!("[{negate}[:{posix}:]]"));
                        }
                        None => out.push_str(&format!("\\{e}{{{name}}}")),
                    }
                    false
                }
                'Q' => {
                    let rest: String = chars[i..].iter().collect();
                    let (literal, skip) = match rest.find("\\E") {
                        Some(end) => (&rest[..end], end + 2),
                        None => (rest.as_str(), rest.len()),
                    };
                    i += rest[..skip].chars().count();
                    out.push_str(&regex::escape(literal));
                    depth > 0 && literal.chars().count() == 1
                }
                _ => {
                    out.push('\\');
                    out.push(e);
                    true
                }
            };
            if depth > 0 {
                class_start = false;
                range_start_ok = single;
            }
            after_quantifier = None;
            continue;
        }
        if depth == 0 {
            let quantified = after_quantifier.take();
            match c {
                // A possessive quantifier: exact for a fixed count, where it
                // cannot change what matches; refused otherwise.
                '+' if quantified == Some(true) => {}
                '+' if quantified == Some(false) => {
                    return Err("possessive quantifier".into());
                }
                '*' | '+' | '?' => {
                    out.push(c);
                    // `?` after a quantifier makes it lazy and ends it.
                    if !(c == '?' && quantified.is_some()) {
                        after_quantifier = Some(false);
                    }
                }
                '{' => {
                    let rest: String = chars[i..].iter().collect();
                    let counted = rest.find('}').map(|end| &rest[..end]).filter(|body| {
                        !body.is_empty() && body.chars().all(|b| b.is_ascii_digit() || b == ',')
                    });
                    match counted {
                        Some(body) => {
                            out.push('{');
                            out.push_str(body);
                            out.push('}');
                            i += body.len() + 1;
                            after_quantifier = Some(!body.contains(','));
                        }
                        None => out.push_str("\\{"),
                    }
                }
                '[' => {
                    depth = 1;
                    out.push('[');
                    if chars.get(i) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    class_start = true;
                    range_start_ok = false;
                }
                '.' => out.push_str(NOT_LINE_END),
                _ => out.push(c),
            }
            continue;
        }
        // Inside a class.
        match c {
            '[' => {
                depth += 1;
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = true;
                range_start_ok = false;
                continue;
            }
            ']' => {
                depth -= 1;
                out.push(']');
                range_start_ok = false;
                class_start = false;
                continue;
            }
            '&' if chars.get(i) == Some(&'&') => {
                out.push_str("&&");
                i += 1;
                range_start_ok = false;
                class_start = false;
                continue;
            }
            '-' => {
                let next = chars.get(i).copied();
                let is_range = !class_start && range_start_ok && next.is_some_and(|n| n != ']');
                if is_range {
                    out.push('-');
                    // Copy the range's end; a `\uXXXX` end is translated.
                    if next == Some('\\') && chars.get(i + 1) == Some(&'u') {
                        i += 2;
                        let cp = unicode_escape(&chars, &mut i)?;
                        out.push_str(&format!("\\x{{{cp:X}}}"));
                    } else if next == Some('\\') {
                        out.push('\\');
                        out.push(chars.get(i + 1).copied().ok_or("trailing backslash")?);
                        i += 2;
                    } else {
                        push_class_char(&mut out, chars[i]);
                        i += 1;
                    }
                    range_start_ok = false;
                } else {
                    out.push_str("\\-");
                    range_start_ok = true;
                }
                class_start = false;
                continue;
            }
            _ => push_class_char(&mut out, c),
        }
        class_start = false;
        range_start_ok = true;
    }
    if depth > 0 {
        return Err("unclosed character class".into());
    }
    Ok(out)
}

/// A literal character inside a class; Rust gives `&`, `~` and `-` meanings
/// there that Java does not.
fn push_class_char(out: &mut String, c: char) {
    if matches!(c, '&' | '~' | '-') {
        out.push('\\');
    }
    out.push(c);
}

/// Reads the 4 hex digits after `\u` (at `*i`), joining a surrogate pair
/// written as two escapes into one code point.
fn unicode_escape(chars: &[char], i: &mut usize) -> Result<u32, String> {
    let unit = hex4(chars, *i)?;
    *i += 4;
    if (0xD800..0xDC00).contains(&unit) {
        if chars.get(*i) == Some(&'\\') && chars.get(*i + 1) == Some(&'u') {
            let low = hex4(chars, *i + 2)?;
            if (0xDC00..0xE000).contains(&low) {
                *i += 6;
                return Ok(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
            }
        }
        return Err(format!("lone surrogate \\u{unit:04X}"));
    }
    if (0xDC00..0xE000).contains(&unit) {
        return Err(format!("lone surrogate \\u{unit:04X}"));
    }
    Ok(unit)
}

fn hex4(chars: &[char], at: usize) -> Result<u32, String> {
    let digits: String = chars
        .get(at..at + 4)
        .ok_or("short \\u escape")?
        .iter()
        .collect();
    u32::from_str_radix(&digits, 16).map_err(|_| format!("bad \\u escape {digits}"))
}

/// The name of `\p{Name}` or `\pL` starting at `at`; returns it and the index
/// after it.
fn property_name(chars: &[char], at: usize) -> Result<(String, usize), String> {
    match chars.get(at) {
        Some('{') => {
            let end = chars[at..]
                .iter()
                .position(|c| *c == '}')
                .ok_or("unclosed \\p{")?;
            Ok((chars[at + 1..at + end].iter().collect(), at + end + 1))
        }
        Some(c) => Ok((c.to_string(), at + 1)),
        None => Err("trailing \\p".into()),
    }
}

/// Java's POSIX property classes (ASCII-only, as in Java's default mode).
fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "lower",
        "Upper" => "upper",
        "ASCII" => "ascii",
        "Alpha" => "alpha",
        "Digit" => "digit",
        "Alnum" => "alnum",
        "Punct" => "punct",
        "Graph" => "graph",
        "Print" => "print",
        "Blank" => "blank",
        "Cntrl" => "cntrl",
        "XDigit" => "xdigit",
        "Space" => "space",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(pattern, value, matches)`.
    fn check(cases: &[(&str, &str, bool)]) {
        for (pattern, value, expected) in cases {
            let p = Pattern::compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(p.is_match(value), *expected, "{pattern} on {value:?}");
        }
    }

    #[test]
    fn whole_string_java_semantics() {
        check(&[
            ("[a-zA-Z0-9_.-]+", "my-stream_1.x", true),
            ("[a-zA-Z0-9_.-]+", "", false),
            ("[a-zA-Z0-9_.-]+", "a b", false),
            ("0|([1-9]\\d{0,38})", "0", true),
            ("0|([1-9]\\d{0,38})", "01", false),
            (
                "0|([1-9]\\d{0,38})",
                "340282366920938463463374607431768211455",
                true,
            ),
            // Java's \d is ASCII only.
            ("\\d+", "\u{0663}", false),
            // `.` stops at any Java line terminator.
            (".*", "a\u{2028}b", false),
            // A `-` after a range is a literal.
            ("[a-zA-Z0-9-_]+", "a-_", true),
            ("[\\w-.]+", "a-.", true),
            // A surrogate pair names one code point.
            (
                "[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF]*",
                "a\u{1F600}",
                true,
            ),
            ("[\\u0020-\\uD7FF]*", "\u{1F600}", false),
            ("\\p{Alnum}+", "aZ9", true),
            ("\\p{Alnum}+", "é", false),
            ("[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*", "Grüße 1", true),
            ("a\\Q.*\\E", "a.*", true),
            ("a\\Q.*\\E", "ab", false),
            // A possessive fixed count is that count.
            ("\\d{1}+:\\d{12}+", "1:123456789012", true),
            ("\\d{1}+:\\d{12}+", "1:123456789012123456789012", false),
            ("a{2,}?b+?", "aaab", true),
            ("[a{}]+", "{a}", true),
            // Look-around falls back to fancy-regex.
            (
                "^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$",
                "aws:x",
                false,
            ),
            ("^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$", "awsx", true),
            ("[0-9A-Za-z\\.\\-_]*(?<!\\.)", "bucket.", false),
            ("[0-9A-Za-z\\.\\-_]*(?<!\\.)", "bucket", true),
        ]);
    }

    #[test]
    fn refuses_lone_surrogates() {
        assert!(java_to_rust("[\\uD800]").is_err());
        assert!(java_to_rust("[a-").is_err());
        assert!(java_to_rust("a*+b").is_err());
    }
}
