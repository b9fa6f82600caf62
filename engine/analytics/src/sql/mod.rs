//! The KDA SQL dialect parsed into streams and pumps (docs/analytics-design.md
//! §3, §4): the stage `ApplicationCode` goes through at CreateApplication and
//! UpdateApplication, before the planner resolves columns and types.
//!
//! How (each step in its own file):
//! - `prepass`: sqlparser's tokenizer runs once over the whole code (with
//!   locations); whitespace and comments are dropped, statements are split at
//!   top-level `;`, and the dialect's forms sqlparser does not know are
//!   rewritten token by token, every token keeping its original span, so
//!   sqlparser's errors and every AST span point into the user's text;
//! - `ddl`: the statement loop: `CREATE [OR REPLACE] STREAM` and
//!   `CREATE [OR REPLACE] PUMP … AS INSERT INTO …` read by hand with
//!   sqlparser's `Parser` methods (ROWTIME refused in the column list), the
//!   pump's query by `Parser::parse_query`;
//! - `check`: the name-level checks against the application's inputs and
//!   reference tables ([`Context`]): one namespace, pump targets, a pump's
//!   top-level `SELECT STREAM`, no pump cycle;
//! - `walk`: the relations a query reads (sqlparser's `Visit` needs its
//!   `visitor` feature, which the crate does not enable).
//!
//! What the planner receives for the rewritten forms (the AST is sqlparser's):
//! - `SELECT STREAM …` arrives as a plain `Select`; [`PumpDef::is_stream_select`]
//!   says whether a given `Select` was written with `STREAM` (any depth);
//! - `STEP(x BY i)` arrives as `Expr::Function` `STEP` with two arguments `(x, i)`;
//! - `WINDOWED BY STAGGER(PARTITION BY a, b RANGE i)` arrives as the GROUP BY
//!   of its SELECT with one item, `Expr::Function` `STAGGER(a, b, i)` (the
//!   interval last; `STAGGER(i)` without PARTITION BY);
//!   [`PumpDef::is_stagger`] tells it from a function the user wrote;
//! - `CURSOR(SELECT …)` arrives as `Expr::Function` `CURSOR` whose one argument
//!   is `Expr::Subquery`;
//! - `FROM TABLE(fn(…))` is sqlparser's own `TableFactor::TableFunction`.
//!
//! Names: an unquoted identifier is upper-cased, a quoted one kept ([`Name`]);
//! the AST keeps sqlparser's `Ident`s as written, [`Name::of_ident`] gives
//! their KDA meaning.
//!
//! Refused here with their position (§3.6): any statement but the two
//! `CREATE`s; the functions of [`prepass::REFUSED_FUNCTIONS`]
//! (`RANDOM_CUT_FOREST`, `HOTSPOTS`, the row-valued log parsers, `NTH_VALUE`,
//! `MONOTONIC`); stream-to-stream joins (`JOIN s OVER (…)`); `UESCAPE`.
//! These are found in the pump's tokens before sqlparser runs (a function
//! call is a name followed by `(`), so a construct sqlparser cannot parse
//! (`JOIN s OVER`) is refused by name rather than as a syntax error. Also:
//! a statement with more than [`prepass::STATEMENT_OPERATORS_MAX`] operators
//! and keywords (it bounds the AST's depth, which sqlparser's recursion limit
//! does not: `a + a + …` is parsed by a loop); code longer than
//! [`CODE_CHARS_MAX`].
//!
//! Never a panic or a stack overflow, on any input: the parse runs on a
//! thread with a large stack ([`on_parser_stack`], [`PARSER_STACK_BYTES`]),
//! where sqlparser's recursion limit is reached with room to spare.

mod check;
mod ddl;
pub mod prepass;
mod walk;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use sqlparser::ast;

use crate::schema::SqlType;

/// `ApplicationCode` holds at most this many characters (the API model's
/// length bound for the member).
pub const CODE_CHARS_MAX: usize = 102_400;

/// A parsed application: its streams and pumps in code order. A
/// `CREATE OR REPLACE` of an earlier name takes that name's place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    pub streams: Vec<StreamDef>,
    pub pumps: Vec<PumpDef>,
}

/// `CREATE [OR REPLACE] STREAM name (col type [NOT NULL], …)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamDef {
    pub name: Name,
    pub or_replace: bool,
    pub columns: Vec<ColumnDef>,
    /// Where the stream's name is written.
    pub at: Pos,
}

/// One column of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: Name,
    pub ty: SqlType,
    pub not_null: bool,
    /// Where the column's name is written.
    pub at: Pos,
}

/// `CREATE [OR REPLACE] PUMP name AS INSERT INTO target [(cols)] SELECT STREAM …`.
#[derive(Clone, Debug, PartialEq)]
pub struct PumpDef {
    pub name: Name,
    pub or_replace: bool,
    pub target: Name,
    /// Where the INSERT's target is written.
    pub target_at: Pos,
    pub columns: Option<Vec<Name>>,
    pub query: Box<ast::Query>,
    /// Where the query starts (its first token).
    pub query_at: Pos,
    /// The rewrites the pre-pass made in this pump's query.
    pub marks: Marks,
    /// Where the pump's name is written.
    pub at: Pos,
}

/// Where the pre-pass rewrote a form sqlparser does not know, by the
/// original position of the token the AST keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// The `SELECT` tokens written `SELECT STREAM`.
    pub stream_selects: Vec<Pos>,
    /// The `STAGGER` words of `WINDOWED BY STAGGER (…)`.
    pub staggers: Vec<Pos>,
    /// The windows of streams joined (`FROM s OVER (…)`, `JOIN s OVER w`),
    /// removed from the query, by the position of the stream's name.
    pub join_windows: Vec<(Pos, JoinWindow)>,
}

/// The window a joined stream is read over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinWindow {
    /// `(RANGE INTERVAL 'n' unit PRECEDING)` in ms, or `(RANGE CURRENT ROW)`
    /// (0).
    Range(i64),
    /// `OVER w`: a window of the SELECT's WINDOW clause.
    Named(String),
    /// A window written some other way: why, and where.
    Refused(String, Pos),
}

impl PumpDef {
    /// The window the stream named at `at` is joined over, if one was
    /// written.
    pub fn join_window(&self, at: Pos) -> Option<&JoinWindow> {
        (self.marks.join_windows.iter())
            .find(|(p, _)| *p == at)
            .map(|(_, w)| w)
    }
}

impl PumpDef {
    /// Whether `select` (anywhere in this pump's query) was written
    /// `SELECT STREAM`.
    pub fn is_stream_select(&self, select: &ast::Select) -> bool {
        let at = Pos::of(select.select_token.0.span.start);
        self.marks.stream_selects.contains(&at)
    }

    /// Whether `function` is a `WINDOWED BY STAGGER (…)` the pre-pass
    /// rewrote (and not a `STAGGER(…)` the user wrote in a GROUP BY).
    pub fn is_stagger(&self, function: &ast::Function) -> bool {
        match function.name.0.last() {
            Some(ast::ObjectNamePart::Identifier(ident)) => {
                self.marks.staggers.contains(&Pos::of(ident.span.start))
            }
            _ => false,
        }
    }
}

/// A KDA name: an unquoted identifier upper-cased, a quoted one kept as
/// written. Two names are the same name when their `text`s are equal
/// (`source_sql_stream_001` is `"SOURCE_SQL_STREAM_001"`); the derived
/// equality also compares `quoted`, so compare `text` to match names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    pub text: String,
    pub quoted: bool,
}

impl Name {
    /// The KDA name of an identifier as sqlparser read it.
    pub fn of_ident(ident: &ast::Ident) -> Name {
        match ident.quote_style {
            Some(_) => Name {
                text: ident.value.clone(),
                quoted: true,
            },
            None => Name {
                text: ident.value.to_uppercase(),
                quoted: false,
            },
        }
    }
}

impl fmt::Display for Name {
    /// As it could be written back: quoted names in double quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            write!(f, "\"{}\"", self.text.replace('"', "\"\""))
        } else {
            f.write_str(&self.text)
        }
    }
}

/// A position in the original code: 1-based line and column (in
/// characters, a tab counting one), as sqlparser's tokenizer counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub fn of(location: sqlparser::tokenizer::Location) -> Pos {
        Pos {
            line: location.line,
            column: location.column,
        }
    }
}

/// Why the code was refused. Displayed as `<message> at line L, column C`,
/// followed by `: <excerpt>` when the refusal quotes the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    pub at: Option<Pos>,
    /// The start of the refused construct as written (one line, cut).
    pub excerpt: Option<String>,
}

impl SqlError {
    pub(crate) fn at(message: impl Into<String>, at: Pos) -> SqlError {
        SqlError {
            message: message.into(),
            at: Some(at),
            excerpt: None,
        }
    }

    /// `<construct> is not supported at line L, column C: <excerpt>`.
    pub(crate) fn unsupported(construct: &str, at: Pos, source: &Source<'_>) -> SqlError {
        SqlError {
            message: format!("{construct} is not supported"),
            at: Some(at),
            excerpt: Some(source.excerpt(at)),
        }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(at) = self.at {
            write!(f, " at line {}, column {}", at.line, at.column)?;
        }
        if let Some(excerpt) = &self.excerpt {
            write!(f, ": {excerpt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// What the code may read but not create or write: the application's
/// in-application input streams (`SOURCE_SQL_STREAM_001`, …) and reference
/// tables, by their exact names (AWS creates them quoted).
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    pub inputs: &'a [&'a str],
    pub reference_tables: &'a [&'a str],
}

/// Parses `code` for an application with no inputs or reference tables.
pub fn parse(code: &str) -> Result<Script, SqlError> {
    parse_with(code, &Context::default())
}

/// Parses `code` and makes the name-level checks against `context`, on a
/// thread of its own (`on_parser_stack`).
pub fn parse_with(code: &str, context: &Context<'_>) -> Result<Script, SqlError> {
    let chars = code.chars().count();
    if chars > CODE_CHARS_MAX {
        return Err(SqlError {
            message: format!(
                "ApplicationCode has {chars} characters, more than the {CODE_CHARS_MAX} allowed"
            ),
            at: None,
            excerpt: None,
        });
    }
    on_parser_stack(|| parse_here(code, context))?
}

/// [`parse_with`] on the calling thread, which must have a stack of
/// [`PARSER_STACK_BYTES`] (the server's code check runs it on a thread of
/// its own, awaited without blocking a core).
pub fn parse_on_this_stack(code: &str, context: &Context<'_>) -> Result<Script, SqlError> {
    let chars = code.chars().count();
    if chars > CODE_CHARS_MAX {
        return Err(SqlError {
            message: format!(
                "ApplicationCode has {chars} characters, more than the {CODE_CHARS_MAX} allowed"
            ),
            at: None,
            excerpt: None,
        });
    }
    parse_here(code, context)
}

fn parse_here(code: &str, context: &Context<'_>) -> Result<Script, SqlError> {
    let source = Source::new(code);
    let tokens = prepass::tokenize(code)?;
    let mut parsed = Vec::new();
    for statement in prepass::split(tokens) {
        parsed.push(ddl::parse_statement(statement, &source)?);
    }
    check::check(parsed, context, &source)
}

/// The stack of the thread the parser runs on. sqlparser recurses with
/// large frames: its recursion limit (50) is reached at about 1 MiB of stack
/// in release builds and between 4 and 8 MiB in debug builds (nested
/// subqueries, measured with sqlparser 0.64), more than a 2 MiB thread has.
/// The crate leaves out sqlparser's `recursive-protection` (which grows the
/// stack on demand), so the parse gets a thread with room to spare; the
/// memory is reserved, and only what is used is touched.
pub const PARSER_STACK_BYTES: usize = 32 << 20;

/// Runs `work` on a thread with a `PARSER_STACK_BYTES` stack and waits for
/// it: for the parse, and for walks over its AST as deep as sqlparser lets
/// it be (the planner's). A panic in `work` becomes an error rather than
/// reaching the caller.
pub fn on_parser_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, SqlError> {
    let internal = |message: String| SqlError {
        message,
        at: None,
        excerpt: None,
    };
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("riffle-sql".to_string())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| internal(format!("The SQL parser could not start: {e}")))?;
        handle.join().map_err(|_| {
            internal("The SQL parser failed on this code (an internal error)".to_string())
        })
    })
}

/// The original code, for excerpts in refusals.
pub(crate) struct Source<'a> {
    lines: Vec<&'a str>,
}

/// An excerpt shows at most this many characters.
const EXCERPT_CHARS_MAX: usize = 60;

impl<'a> Source<'a> {
    fn new(code: &'a str) -> Source<'a> {
        // The tokenizer counts a line at every '\n'.
        Source {
            lines: code.split('\n').collect(),
        }
    }

    /// The code from `at` to the end of its line, cut to
    /// `EXCERPT_CHARS_MAX` characters.
    pub(crate) fn excerpt(&self, at: Pos) -> String {
        let line = usize::try_from(at.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| self.lines.get(l))
            .copied()
            .unwrap_or("");
        let skip = usize::try_from(at.column.saturating_sub(1)).unwrap_or(usize::MAX);
        let rest: String = line.chars().skip(skip).collect();
        let rest = rest.trim_end();
        if rest.chars().count() > EXCERPT_CHARS_MAX {
            let cut: String = rest.chars().take(EXCERPT_CHARS_MAX).collect();
            format!("{cut}…")
        } else {
            rest.to_string()
        }
    }
}
