//! The token pre-pass (docs/analytics-design.md §4.3): the code tokenized
//! once with sqlparser's tokenizer, statements split at top-level `;`, the
//! dialect's forms sqlparser does not parse rewritten token by token, and the
//! constructs refused before parsing. Only tokens are removed, replaced or
//! inserted, and each keeps (or borrows) an original span, so positions in
//! errors and in the AST stay those of the user's text.
//!
//! The rewrites (in a pump's query only):
//! - `SELECT STREAM` → `SELECT` (the `SELECT`'s position recorded);
//! - `STEP(x BY i)` → `STEP(x, i)` (a `BY` directly inside `STEP(`);
//! - `CURSOR(SELECT …)` → `CURSOR((SELECT …))` (the inserted parentheses
//!   borrow the spans of the ones written);
//! - `WINDOWED BY STAGGER(PARTITION BY a, b RANGE i)` →
//!   `GROUP BY STAGGER(a, b, i)` (the `STAGGER`'s position recorded).

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use super::{JoinWindow, Marks, Pos, Source, SqlError};

/// Functions refused at Create/Update until their slices land (§3.6):
/// Random Cut Forest and HOTSPOTS (slice 8), the row-valued log parsers,
/// `NTH_VALUE`, `MONOTONIC`.
pub const REFUSED_FUNCTIONS: &[&str] = &[
    "RANDOM_CUT_FOREST",
    "RANDOM_CUT_FOREST_WITH_EXPLANATION",
    "HOTSPOTS",
    "REGEX_LOG_PARSE",
    "FAST_REGEX_LOG_PARSE",
    "FIXED_COLUMN_LOG_PARSE",
    "SYS_LOG_PARSE",
    "VARIABLE_COLUMN_LOG_PARSE",
    "W3C_LOG_PARSE",
    "NTH_VALUE",
    "MONOTONIC",
];

/// Operators and keywords one statement may hold. sqlparser parses an
/// operator chain (`a + a + …`, `x OR y OR …`, `… UNION …`) in a loop, so its
/// recursion limit does not bound the depth of the tree it builds, and
/// dropping or walking a tree tens of thousands deep overflows the stack.
/// Each such operator adds at most one level, so this bounds the depth; the
/// largest statement of AWS's examples has under 60.
pub const STATEMENT_OPERATORS_MAX: usize = 1_000;

/// The code as tokens with their spans, without whitespace and comments.
pub(crate) fn tokenize(code: &str) -> Result<Vec<TokenWithSpan>, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, code)
        .tokenize_with_location()
        .map_err(|e| SqlError {
            message: e.message,
            at: (e.location.line > 0).then(|| Pos::of(e.location)),
            excerpt: None,
        })?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect())
}

/// The statements, split at `;` outside parentheses; each ends with an EOF
/// token placed at its `;` (or just after its last token), so "found: EOF"
/// errors point somewhere real. Empty statements are skipped.
pub(crate) fn split(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut depth = 0usize;
    for token in tokens {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => {
                if !current.is_empty() {
                    current.push(eof_at(token.span.start));
                    statements.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(token);
    }
    if let Some(last) = current.last() {
        let end = last.span.end;
        current.push(eof_at(end));
        statements.push(current);
    }
    statements
}

fn eof_at(at: Location) -> TokenWithSpan {
    TokenWithSpan {
        token: Token::EOF,
        span: Span::new(at, at),
    }
}

/// Whether `token` is the unquoted word `text` (any case).
pub(crate) fn is_word(token: &Token, text: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text))
}

fn pos(token: &TokenWithSpan) -> Pos {
    Pos::of(token.span.start)
}

/// Refuses a statement with more than `STATEMENT_OPERATORS_MAX` operators
/// and keywords.
pub(crate) fn check_size(statement: &[TokenWithSpan]) -> Result<(), SqlError> {
    let operators = statement
        .iter()
        .filter(|t| match &t.token {
            Token::Word(w) => w.quote_style.is_none() && w.keyword != Keyword::NoKeyword,
            Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::EOF
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_) => false,
            _ => true,
        })
        .count();
    match (operators > STATEMENT_OPERATORS_MAX, statement.first()) {
        (true, Some(first)) => Err(SqlError::at(
            format!(
                "The statement has {operators} operators and keywords, more than the \
                 {STATEMENT_OPERATORS_MAX} allowed"
            ),
            pos(first),
        )),
        _ => Ok(()),
    }
}

/// Refuses, in a pump's query (before the rewrites), the functions of
/// `REFUSED_FUNCTIONS` and `UESCAPE`.
pub(crate) fn refuse_unsupported(
    query: &[TokenWithSpan],
    source: &Source<'_>,
) -> Result<(), SqlError> {
    for (i, token) in query.iter().enumerate() {
        let next = query.get(i + 1).map(|t| &t.token);
        match &token.token {
            Token::Word(w) if next == Some(&Token::LParen) => {
                let name = match w.quote_style {
                    Some(_) => w.value.clone(),
                    None => w.value.to_uppercase(),
                };
                if REFUSED_FUNCTIONS.contains(&name.as_str()) {
                    return Err(SqlError::at(
                        format!("Function {name} is not supported"),
                        pos(token),
                    ));
                }
            }
            t if is_word(t, "UESCAPE") => {
                return Err(SqlError::unsupported("UESCAPE", pos(token), source));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where `OVER` is (an index into `after`) when the tokens after a
/// `FROM` or `JOIN` are a stream's name followed by `OVER`.
fn relation_then_over(after: &[TokenWithSpan]) -> Option<usize> {
    let mut i;
    match after.first().map(|t| &t.token) {
        Some(Token::Word(_)) => {
            i = 1;
            while matches!(after.get(i).map(|t| &t.token), Some(Token::Period))
                && matches!(after.get(i + 1).map(|t| &t.token), Some(Token::Word(_)))
            {
                i += 2;
            }
        }
        _ => return None,
    }
    after
        .get(i)
        .is_some_and(|t| is_word(&t.token, "OVER"))
        .then_some(i)
}

/// The window after an `OVER` at `query[start..]`: `(RANGE INTERVAL 'n'
/// unit PRECEDING)`, `(RANGE CURRENT ROW)` or a window's name; and where
/// the query goes on after it.
fn join_window(query: &[TokenWithSpan], start: usize) -> (JoinWindow, usize) {
    let form = "RANGE INTERVAL 'n' SECOND|MINUTE|HOUR|DAY PRECEDING";
    let Some(first) = query.get(start) else {
        let at = pos(&query[start - 1]);
        return (JoinWindow::Refused(format!("A window ({form})"), at), start);
    };
    let open = match &first.token {
        Token::Word(w) => return (JoinWindow::Named(name_text(w)), start + 1),
        Token::LParen => pos(first),
        _ => {
            return (
                JoinWindow::Refused(format!("This window (write ({form}))"), pos(first)),
                start,
            );
        }
    };
    // The tokens up to the matching `)`, whitespace left out.
    let mut depth = 0usize;
    let mut inside = Vec::new();
    let mut end = query.len();
    for (j, t) in query.iter().enumerate().skip(start) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    end = j + 1;
                    break;
                }
            }
            Token::Whitespace(_) => continue,
            _ => {}
        }
        if depth >= 1 && j > start {
            inside.push(&t.token);
        }
    }
    let refused = |what: &str| JoinWindow::Refused(format!("{what} (write ({form}))"), open);
    let window = match inside.as_slice() {
        [r, c, w] if is_word(r, "RANGE") && is_word(c, "CURRENT") && is_word(w, "ROW") => {
            JoinWindow::Range(0)
        }
        [r, i, Token::SingleQuotedString(n), unit, p]
            if is_word(r, "RANGE") && is_word(i, "INTERVAL") && is_word(p, "PRECEDING") =>
        {
            let ms = match unit {
                Token::Word(u) => match u.value.to_uppercase().as_str() {
                    "SECOND" | "SECONDS" => Some(1_000),
                    "MINUTE" | "MINUTES" => Some(60_000),
                    "HOUR" | "HOURS" => Some(3_600_000),
                    "DAY" | "DAYS" => Some(86_400_000),
                    _ => None,
                },
                _ => None,
            };
            match (ms, n.trim().parse::<i64>()) {
                (Some(ms), Ok(n)) if n >= 0 => match n.checked_mul(ms) {
                    Some(ms) => JoinWindow::Range(ms),
                    None => refused("A window this long"),
                },
                _ => refused("This window's INTERVAL"),
            }
        }
        [r, ..] if is_word(r, "ROWS") => refused("A ROWS window of a joined stream"),
        _ => refused("This window of a joined stream"),
    };
    (window, end)
}

/// A word's text as a name: quoted as written, unquoted upper-cased.
fn name_text(w: &sqlparser::tokenizer::Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        None => w.value.to_uppercase(),
    }
}

/// What a parenthesis opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `STEP(`: a `BY` directly inside becomes a comma.
    Step,
    /// `CURSOR(SELECT`: closed with an extra `)`.
    Cursor,
    /// `STAGGER(` of `WINDOWED BY`: `RANGE` becomes a comma after
    /// partition expressions and goes away without them.
    Stagger {
        partitioned: bool,
    },
    Other,
}

/// Rewrites a pump's query (see the module header) and records where.
pub(crate) fn rewrite(query: &[TokenWithSpan]) -> (Vec<TokenWithSpan>, Marks) {
    let mut out = Vec::with_capacity(query.len() + 4);
    let mut marks = Marks::default();
    let mut frames: Vec<Frame> = Vec::new();
    let token_at = |i: usize| query.get(i).map(|t| &t.token);
    let mut i = 0;
    while let Some(token) = query.get(i) {
        let t = &token.token;
        if is_word(t, "SELECT") && token_at(i + 1).is_some_and(|n| is_word(n, "STREAM")) {
            marks.stream_selects.push(pos(token));
            out.push(token.clone());
            i += 2;
            continue;
        }
        if is_word(t, "WINDOWED")
            && token_at(i + 1).is_some_and(|n| is_word(n, "BY"))
            && token_at(i + 2).is_some_and(|n| is_word(n, "STAGGER"))
            && token_at(i + 3) == Some(&Token::LParen)
        {
            out.push(TokenWithSpan {
                token: Token::make_keyword("GROUP"),
                span: token.span,
            });
            out.extend(query[i + 1..i + 4].iter().cloned());
            marks.staggers.push(pos(&query[i + 2]));
            i += 4;
            let partitioned = token_at(i).is_some_and(|n| is_word(n, "PARTITION"))
                && token_at(i + 1).is_some_and(|n| is_word(n, "BY"));
            if partitioned {
                i += 2;
            }
            frames.push(Frame::Stagger { partitioned });
            continue;
        }
        // A stream read over a window: `FROM s OVER (…)`, `JOIN s OVER w`.
        if (is_word(t, "FROM") || is_word(t, "JOIN"))
            && let Some(over) = relation_then_over(&query[i + 1..])
        {
            let over = i + 1 + over;
            out.extend(query[i..over].iter().cloned());
            let (window, end) = join_window(query, over + 1);
            // `JOIN s OVER t` without an alias: the window's name is the
            // joined stream's (AWS's example writes `t.column` in ON).
            let aliased = token_at(end).is_some_and(|n| {
                is_word(n, "AS") || matches!(n, Token::Word(w) if w.keyword == Keyword::NoKeyword)
            });
            if is_word(t, "JOIN") && matches!(window, JoinWindow::Named(_)) && !aliased {
                out.push(TokenWithSpan {
                    token: Token::make_keyword("AS"),
                    span: query[over].span,
                });
                out.push(query[over + 1].clone());
            }
            marks.join_windows.push((pos(&query[i + 1]), window));
            i = end;
            continue;
        }
        match t {
            Token::LParen => {
                let before = i.checked_sub(1).and_then(token_at);
                let frame = if before.is_some_and(|b| is_word(b, "STEP")) {
                    Frame::Step
                } else if before.is_some_and(|b| is_word(b, "CURSOR"))
                    && token_at(i + 1).is_some_and(|n| is_word(n, "SELECT") || is_word(n, "WITH"))
                {
                    Frame::Cursor
                } else {
                    Frame::Other
                };
                out.push(token.clone());
                if frame == Frame::Cursor {
                    out.push(token.clone());
                }
                frames.push(frame);
            }
            Token::RParen => {
                if frames.pop() == Some(Frame::Cursor) {
                    out.push(token.clone());
                }
                out.push(token.clone());
            }
            t if is_word(t, "BY") && frames.last() == Some(&Frame::Step) => {
                out.push(TokenWithSpan {
                    token: Token::Comma,
                    span: token.span,
                });
            }
            t if is_word(t, "RANGE") && matches!(frames.last(), Some(Frame::Stagger { .. })) => {
                if frames.last() == Some(&Frame::Stagger { partitioned: true }) {
                    out.push(TokenWithSpan {
                        token: Token::Comma,
                        span: token.span,
                    });
                }
            }
            _ => out.push(token.clone()),
        }
        i += 1;
    }
    (out, marks)
}
