//! Listing: GetTables' `Expression` filter and the `NextToken` paging tokens of
//! GetDatabases, GetTables and GetTableVersions. Pure.
//!
//! Glue documents `Expression` as "a regular expression pattern"; in practice
//! it takes Hive's table patterns too (`sales*`, `a*|b*`), so a `*` that does
//! not follow something it could repeat means "any characters". The pattern
//! must match the whole name, ignoring case (names are lowercase).
//!
//! A token is the position after the last item of a page (a name or a version
//! id), hex-encoded behind a tag, so a page resumes after that item even if it
//! was deleted meanwhile.

use riffle_protocol::Error;

/// Items in a page when the client gives no MaxResults (the model's maximum).
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// The compiled program of one Expression is bounded (the regex crate's
/// size limit, in bytes of its automata): 2048 characters of pattern fit
/// easily unless they nest repetitions, which is refused.
const EXPRESSION_PROGRAM_SIZE_MAX: usize = 1 << 20;

const TOKEN_TAG: &str = "rg1";

/// A compiled `Expression`.
#[derive(Clone, Debug)]
pub struct NameFilter(regex::Regex);

impl NameFilter {
    /// Compiles an Expression; InvalidInputException (as a riffle error) when
    /// it is not a pattern.
    pub fn compile(expression: &str) -> Result<NameFilter, Error> {
        let translated = hive_stars(expression);
        regex::RegexBuilder::new(&format!(r"\A(?:{translated})\z"))
            .case_insensitive(true)
            .size_limit(EXPRESSION_PROGRAM_SIZE_MAX)
            .build()
            .map(NameFilter)
            .map_err(|e| {
                Error::invalid(format!(
                    "Expression {expression:?} is not a valid pattern: {}",
                    last_line(&e.to_string())
                ))
            })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim_start_matches("error: ")
}

/// `*` where nothing before it can be repeated (the start, after `|` or `(`,
/// or after a plain character that is not `.`, `)`, `]`, `}`, `?`, `+`, `*`) is
/// Hive's "any characters": `.*`. Escaped characters, and character classes
/// (`[*]`, `[^]*]`, nested `[a[*]]` as the regex crate reads them), stay as
/// they are.
fn hive_stars(expression: &str) -> String {
    let mut out = String::with_capacity(expression.len() + 8);
    let mut prev: Option<char> = None;
    let mut escaped = false;
    let mut hive_star = false;
    // Inside a character class: how deeply nested, and whether a `]` now
    // would be the class's first character (a literal `]`, not its end).
    let mut class_depth = 0usize;
    let mut class_opened = false;
    for c in expression.chars() {
        if c != '*' {
            hive_star = false;
        }
        if escaped {
            out.push(c);
            escaped = false;
            class_opened = false;
            // An escaped character can be repeated: a `*` after it is regex's.
            prev = Some(')');
            continue;
        }
        if class_depth > 0 {
            out.push(c);
            match c {
                '\\' => escaped = true,
                '[' => {
                    class_depth += 1;
                    class_opened = true;
                    continue;
                }
                '^' if class_opened => continue,
                ']' if !class_opened => {
                    class_depth -= 1;
                    // A closed class can be repeated: a `*` after it is regex's.
                    prev = Some(']');
                }
                _ => {}
            }
            class_opened = false;
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                escaped = true;
            }
            '[' => {
                out.push(c);
                class_depth = 1;
                class_opened = true;
            }
            // Hive's `**` is one `*`.
            '*' if hive_star => continue,
            '*' if !matches!(prev, Some('.' | ')' | ']' | '}' | '?' | '+' | '*')) => {
                out.push_str(".*");
                prev = Some('*');
                hive_star = true;
                continue;
            }
            _ => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// The token that resumes a listing after `position`.
pub fn token(position: &str) -> String {
    let hex: String = position.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{TOKEN_TAG}{hex}")
}

/// The position a token resumes after; InvalidInputException for a token we
/// did not make.
pub fn position(token: &str) -> Result<String, Error> {
    let invalid = || Error::invalid(format!("Invalid NextToken: {token}"));
    let hex = token.strip_prefix(TOKEN_TAG).ok_or_else(invalid)?;
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// One page of `items`, which start after the token's position (the caller
/// ranges its map from there): the page and the next token, if more follow.
/// `key` gives an item's position.
pub fn page<T>(
    mut items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> String,
    page_size: usize,
) -> (Vec<T>, Option<String>) {
    let page: Vec<T> = items.by_ref().take(page_size).collect();
    let next = match (items.next(), page.last()) {
        (Some(_), Some(last)) => Some(token(&key(last))),
        _ => None,
    };
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_match_whole_names_as_glue_and_hive_read_them() {
        let check = |expression: &str, matching: &[&str], not: &[&str]| {
            let f = NameFilter::compile(expression).unwrap();
            for name in matching {
                assert!(f.matches(name), "{expression} should match {name}");
            }
            for name in not {
                assert!(!f.matches(name), "{expression} should not match {name}");
            }
        };
        check("sales", &["sales", "SALES"], &["sales2", "presales"]);
        check("sales*", &["sales", "sales_2024"], &["presales"]);
        check("*sales*", &["presales_x", "sales"], &["sale"]);
        check("sales.*", &["sales", "sales_x"], &["xsales"]);
        check("a*|b*", &["a1", "b2"], &["c3"]);
        check("t_[0-9]+", &["t_12"], &["t_", "t_1a"]);
        check(r"a\*", &["a*"], &["ab"]);
        check("", &[""], &["a"]);
        check("a**", &["a", "abc"], &["ba"]);
        check("ab*", &["ab", "abb", "abc"], &["a"]);
        // A `*` inside a character class is the class's character.
        check("[*]", &["*"], &["", "a", "**"]);
        check("a[*]b", &["a*b"], &["ab", "axb"]);
        check("[]*]+", &["*]", "]"], &["a"]);
        check("[^]*]x", &["ax"], &["*x", "]x"]);
        check(r"[\]*]", &["]", "*"], &["\\"]);
        check("[a[*]]", &["a", "*"], &["b"]);
        check("[[:digit:]*]", &["7", "*"], &["a"]);
        // After a class, `*` repeats it; after the class, Hive's `*` again.
        check("[ab]*", &["", "abba"], &["c"]);
        check("[*]|t*", &["*", "t", "tx"], &["x"]);
    }

    #[test]
    fn stars_are_rewritten_outside_character_classes_only() {
        let check = |expression: &str, translated: &str| {
            assert_eq!(hive_stars(expression), translated, "{expression}");
        };
        check("[*]", "[*]");
        check("*[*]*", ".*[*]*");
        check("[]*]", "[]*]");
        check("[^]*]", "[^]*]");
        check(r"[\]*]*", r"[\]*]*");
        check("[a[*]]x*", "[a[*]]x.*");
        check("(*|[*])", "(.*|[*])");
    }

    #[test]
    fn a_bad_expression_is_invalid_input_naming_it() {
        let e = NameFilter::compile("(unclosed").unwrap_err();
        assert_eq!(e.code, riffle_protocol::ErrorCode::InvalidArgument);
        assert!(
            e.message
                .starts_with("Expression \"(unclosed\" is not a valid pattern")
        );
        // Nested repetition past the program bound.
        let e = NameFilter::compile("((a{100}){100}){100}").unwrap_err();
        assert!(e.message.contains("not a valid pattern"), "{}", e.message);
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        for p in ["", "orders", "é/ü", "12"] {
            assert_eq!(position(&token(p)).unwrap(), p);
        }
        for bad in ["", "x", "rg1z", "rg1a", "rg1ff", "abc"] {
            let e = position(bad).unwrap_err();
            assert_eq!(e.message, format!("Invalid NextToken: {bad}"));
        }
    }

    #[test]
    fn pages_end_with_a_token_only_when_more_follow() {
        let names = ["a", "b", "c", "d", "e"];
        let list = |skip, size| page(names.iter().skip(skip), |n| n.to_string(), size);
        assert_eq!(list(0, 2), (vec![&"a", &"b"], Some(token("b"))));
        assert_eq!(list(2, 2), (vec![&"c", &"d"], Some(token("d"))));
        assert_eq!(list(4, 2), (vec![&"e"], None));
        // A page that ends exactly at the end has no token.
        assert_eq!(list(3, 2), (vec![&"d", &"e"], None));
        assert_eq!(list(5, 2), (vec![], None));
    }
}
