//! Redshift's COPY command read into a [`CopyPlan`]: what PostgreSQL is asked to
//! do with a batch, and how the batch's bytes are turned into what it reads.
//!
//! Firehose's `CopyCommand{DataTableName, DataTableColumns, CopyOptions}` is
//! read once per configuration; the plan is pure data. [`CopyPlan::prepare`]
//! (in `convert.rs`) then turns each batch, whatever its Redshift format, into
//! PostgreSQL CSV for one `COPY ... FROM STDIN WITH (FORMAT csv)`: that way
//! every Redshift rule the plan keeps (backslash literal unless ESCAPE,
//! multi-character delimiters, `\N`, EMPTYASNULL, BLANKSASNULL, FILLRECORD,
//! IGNOREHEADER of any count, JSON 'auto') is applied here, exactly, instead of
//! approximated by PostgreSQL's own text format, which differs.
//! The option table is in the crate docs (`lib.rs`).

use crate::sql::{TableName, parse_columns, quote_literal};

/// The largest MAXERROR Redshift accepts.
pub const MAX_ERROR_COUNT_MAX: u64 = 100_000;

/// How the batch's records are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// Redshift's default: fields split by `delimiter` (one or more
    /// characters, `|` by default), one record a line; a backslash is data
    /// unless `escape` (ESCAPE), which makes `\x` stand for `x`.
    Text { delimiter: String, escape: bool },
    /// CSV: `delimiter` (`,` by default) and `quote` (`"` by default; doubled
    /// inside a quoted field).
    Csv { delimiter: String, quote: char },
    /// `JSON 'auto'` / `JSON 'auto ignorecase'`: concatenated JSON objects
    /// whose top-level keys are matched to column names.
    JsonAuto { ignore_case: bool },
}

/// What to do with one Firehose batch: built by [`copy_plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    pub table: TableName,
    /// `DataTableColumns`, folded to lowercase; `None`: all of the table's.
    pub columns: Option<Vec<String>>,
    pub format: SourceFormat,
    /// NULL AS (text and CSV): an unquoted field equal to it is NULL.
    pub null_as: String,
    /// IGNOREHEADER: records skipped at the start of each batch.
    pub ignore_header_count: u64,
    /// GZIP: the batch is gzip-compressed; the caller gunzips it before
    /// [`CopyPlan::prepare`].
    pub gzip: bool,
    pub empty_as_null: bool,
    pub blanks_as_null: bool,
    pub truncate_columns: bool,
    pub trim_blanks: bool,
    pub fill_record: bool,
    pub ignore_blank_lines: bool,
    /// ACCEPTINVCHARS: each byte of invalid UTF-8 becomes this character.
    pub accept_invalid_chars: Option<char>,
    /// MAXERROR as given. Not honoured beyond 0: PostgreSQL's COPY cannot
    /// skip rows, so any bad row fails the whole batch (nothing is loaded).
    pub max_error_count: u64,
}

/// Reads Firehose's `CopyCommand` into a plan. `Err` names the option (or
/// name) that cannot be served and why.
pub fn copy_plan(
    table: &str,
    columns: Option<&str>,
    copy_options: Option<&str>,
) -> Result<CopyPlan, String> {
    let table = TableName::parse(table)?;
    let columns = match columns {
        Some(text) => parse_columns(text)?,
        None => None,
    };
    let tokens = tokenize(copy_options.unwrap_or(""))?;
    let mut o = Options::default();
    let mut p = Parser { tokens, pos: 0 };
    while let Some(token) = p.next() {
        let Token::Word(word) = token else {
            return Err(format!(
                "CopyOptions: expected an option name, found {}",
                token.describe()
            ));
        };
        let upper = word.to_ascii_uppercase();
        match upper.as_str() {
            "FORMAT" => {
                p.skip_as();
                match p.next() {
                    Some(Token::Word(w)) => {
                        let w = w.to_ascii_uppercase();
                        apply_format(&w, &mut p, &mut o)?;
                    }
                    other => {
                        return Err(format!(
                            "CopyOptions: FORMAT must be followed by CSV or JSON, found {}",
                            describe(&other)
                        ));
                    }
                }
            }
            "CSV" | "JSON" | "AVRO" | "PARQUET" | "ORC" | "SHAPEFILE" | "FIXEDWIDTH" => {
                apply_format(&upper, &mut p, &mut o)?;
            }
            "QUOTE" => {
                p.skip_as();
                let q = p.string("QUOTE")?;
                set_once(&mut o.quote, single_char(&q, "QUOTE")?, "QUOTE")?;
            }
            "DELIMITER" => {
                p.skip_as();
                let d = p.string("DELIMITER")?;
                if d.is_empty() || d.contains('\n') || d.contains('\r') {
                    return Err("CopyOptions: DELIMITER must be one or more characters other than a newline".into());
                }
                set_once(&mut o.delimiter, d, "DELIMITER")?;
            }
            "NULL" => {
                p.skip_as();
                let n = p.string("NULL AS")?;
                set_once(&mut o.null_as, n, "NULL AS")?;
            }
            "IGNOREHEADER" => {
                p.skip_as();
                let n = p.number("IGNOREHEADER")?;
                set_once(&mut o.ignore_header, n, "IGNOREHEADER")?;
            }
            "MAXERROR" => {
                p.skip_as();
                let n = p.number("MAXERROR")?;
                if n > MAX_ERROR_COUNT_MAX {
                    return Err(format!(
                        "CopyOptions: MAXERROR must be at most {MAX_ERROR_COUNT_MAX}"
                    ));
                }
                set_once(&mut o.max_error, n, "MAXERROR")?;
            }
            "ACCEPTINVCHARS" => {
                p.skip_as();
                let c = match p.peek() {
                    Some(Token::Str(_)) => {
                        let s = p.string("ACCEPTINVCHARS")?;
                        let c = single_char(&s, "ACCEPTINVCHARS")?;
                        if !c.is_ascii() || c == '\0' {
                            return Err("CopyOptions: the ACCEPTINVCHARS replacement must be an ASCII character other than NUL".into());
                        }
                        c
                    }
                    _ => '?',
                };
                set_once(&mut o.accept_invalid_chars, c, "ACCEPTINVCHARS")?;
            }
            "TIMEFORMAT" | "DATEFORMAT" => {
                p.skip_as();
                let f = p.string(&upper)?;
                let default = if upper == "TIMEFORMAT" {
                    "YYYY-MM-DD HH:MI:SS"
                } else {
                    "YYYY-MM-DD"
                };
                if f != "auto" && !f.eq_ignore_ascii_case(default) {
                    return Err(format!(
                        "CopyOptions: {upper} '{f}' is not supported: only 'auto' and '{default}' \
                         (PostgreSQL reads ISO dates and times itself)"
                    ));
                }
            }
            "ENCODING" => {
                p.skip_as();
                match p.next() {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("UTF8") => {}
                    other => {
                        return Err(format!(
                            "CopyOptions: ENCODING {} is not supported: only UTF8",
                            describe(&other)
                        ));
                    }
                }
            }
            "COMPUPDATE" | "STATUPDATE" => {
                if let Some(Token::Word(w)) = p.peek() {
                    let w = w.to_ascii_uppercase();
                    if matches!(w.as_str(), "ON" | "OFF" | "TRUE" | "FALSE" | "PRESET") {
                        p.next();
                    }
                }
            }
            "ESCAPE" => flag(&mut o.escape, "ESCAPE")?,
            "EMPTYASNULL" => flag(&mut o.empty_as_null, "EMPTYASNULL")?,
            "BLANKSASNULL" => flag(&mut o.blanks_as_null, "BLANKSASNULL")?,
            "TRUNCATECOLUMNS" => flag(&mut o.truncate_columns, "TRUNCATECOLUMNS")?,
            "TRIMBLANKS" => flag(&mut o.trim_blanks, "TRIMBLANKS")?,
            "FILLRECORD" => flag(&mut o.fill_record, "FILLRECORD")?,
            "IGNOREBLANKLINES" => flag(&mut o.ignore_blank_lines, "IGNOREBLANKLINES")?,
            "GZIP" => flag(&mut o.gzip, "GZIP")?,
            "ROUNDEC" | "EXPLICIT_IDS" => {}
            "LZOP" | "BZIP2" | "ZSTD" => {
                return Err(format!(
                    "CopyOptions: {upper} is not supported: Firehose sends Redshift GZIP or uncompressed data"
                ));
            }
            _ => return Err(refusal(&upper)),
        }
    }
    o.finish(table, columns)
}

/// The message for an option this destination does not serve.
fn refusal(option: &str) -> String {
    let why = match option {
        "MANIFEST"
        | "REGION"
        | "ENCRYPTED"
        | "MASTER_SYMMETRIC_KEY"
        | "CREDENTIALS"
        | "IAM_ROLE"
        | "ACCESS_KEY_ID"
        | "SECRET_ACCESS_KEY"
        | "SESSION_TOKEN"
        | "SSH"
        | "READRATIO" => {
            "it is about reading from S3, and Riffle streams the batch to PostgreSQL itself"
        }
        "REMOVEQUOTES" | "ACCEPTANYDATE" | "NOLOAD" | "COMPROWS" | "IGNOREALLERRORS" => {
            "Riffle's PostgreSQL destination does not implement it"
        }
        _ => "it is not a COPY option Riffle knows",
    };
    format!("CopyOptions: {option} is not supported: {why}")
}

fn apply_format(word: &str, p: &mut Parser, o: &mut Options) -> Result<(), String> {
    match word {
        "CSV" => {
            set_once(&mut o.format, Format::Csv, "the data format (CSV/JSON)")?;
            if let Some(Token::Word(w)) = p.peek()
                && w.eq_ignore_ascii_case("QUOTE")
            {
                p.next();
                p.skip_as();
                let q = p.string("QUOTE")?;
                set_once(&mut o.quote, single_char(&q, "QUOTE")?, "QUOTE")?;
            }
            Ok(())
        }
        "JSON" => {
            p.skip_as();
            let arg = match p.peek() {
                Some(Token::Str(_)) => p.string("JSON")?,
                _ => {
                    return Err(
                        "CopyOptions: JSON needs an argument: 'auto' or 'auto ignorecase'".into(),
                    );
                }
            };
            let format = match arg.as_str() {
                "auto" => Format::Json { ignore_case: false },
                "auto ignorecase" => Format::Json { ignore_case: true },
                a if a.starts_with("s3://") => {
                    return Err(format!(
                        "CopyOptions: JSON '{a}' is not supported: JSONPaths files are not; use JSON 'auto' or 'auto ignorecase'"
                    ));
                }
                a => {
                    return Err(format!(
                        "CopyOptions: JSON '{a}' is not supported: use 'auto' or 'auto ignorecase' (case matters)"
                    ));
                }
            };
            set_once(&mut o.format, format, "the data format (CSV/JSON)")
        }
        other => Err(format!(
            "CopyOptions: {other} is not supported: Riffle's PostgreSQL destination reads text, CSV and JSON 'auto'"
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Json { ignore_case: bool },
}

#[derive(Default)]
struct Options {
    format: Option<Format>,
    quote: Option<char>,
    delimiter: Option<String>,
    null_as: Option<String>,
    ignore_header: Option<u64>,
    max_error: Option<u64>,
    accept_invalid_chars: Option<char>,
    escape: bool,
    empty_as_null: bool,
    blanks_as_null: bool,
    truncate_columns: bool,
    trim_blanks: bool,
    fill_record: bool,
    ignore_blank_lines: bool,
    gzip: bool,
}

impl Options {
    fn finish(self, table: TableName, columns: Option<Vec<String>>) -> Result<CopyPlan, String> {
        let format = match self.format {
            Some(Format::Json { ignore_case }) => {
                let text_only = [
                    (self.delimiter.is_some(), "DELIMITER"),
                    (self.quote.is_some(), "QUOTE"),
                    (self.null_as.is_some(), "NULL AS"),
                    (self.escape, "ESCAPE"),
                    (self.ignore_header.is_some_and(|n| n > 0), "IGNOREHEADER"),
                    (self.fill_record, "FILLRECORD"),
                    (self.ignore_blank_lines, "IGNOREBLANKLINES"),
                ];
                if let Some((_, name)) = text_only.iter().find(|(given, _)| *given) {
                    return Err(format!("CopyOptions: {name} cannot be used with JSON"));
                }
                SourceFormat::JsonAuto { ignore_case }
            }
            Some(Format::Csv) => {
                if self.escape {
                    return Err("CopyOptions: ESCAPE cannot be used with CSV".into());
                }
                let delimiter = self.delimiter.unwrap_or_else(|| ",".into());
                let quote = self.quote.unwrap_or('"');
                if delimiter.contains(quote) {
                    return Err(
                        "CopyOptions: the CSV QUOTE character cannot be part of the DELIMITER"
                            .into(),
                    );
                }
                SourceFormat::Csv { delimiter, quote }
            }
            None => {
                if self.quote.is_some() {
                    return Err("CopyOptions: QUOTE can only be used with CSV".into());
                }
                let delimiter = self.delimiter.unwrap_or_else(|| "|".into());
                if self.escape && delimiter.contains('\\') {
                    return Err(
                        "CopyOptions: with ESCAPE the DELIMITER cannot contain a backslash".into(),
                    );
                }
                SourceFormat::Text {
                    delimiter,
                    escape: self.escape,
                }
            }
        };
        Ok(CopyPlan {
            table,
            columns,
            format,
            null_as: self.null_as.unwrap_or_else(|| "\\N".into()),
            ignore_header_count: self.ignore_header.unwrap_or(0),
            gzip: self.gzip,
            empty_as_null: self.empty_as_null,
            blanks_as_null: self.blanks_as_null,
            truncate_columns: self.truncate_columns,
            trim_blanks: self.trim_blanks,
            fill_record: self.fill_record,
            ignore_blank_lines: self.ignore_blank_lines,
            accept_invalid_chars: self.accept_invalid_chars,
            max_error_count: self.max_error.unwrap_or(0),
        })
    }
}

impl CopyPlan {
    /// The query listing the table's columns in order (name, type, declared
    /// length of `char(n)`/`varchar(n)`), with what [`CopyPlan::prepare`]
    /// needs to know of their types. The table is resolved as COPY resolves
    /// it: `to_regclass` of its quoted name, so an unqualified one is looked
    /// up along the whole `search_path` (with `"$user", public` and a schema
    /// named after the user, a table in `public` is found). Dropped and
    /// system columns are left out. No rows when no such table exists.
    pub fn columns_sql(&self) -> String {
        format!(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL), \
             CASE WHEN a.atttypid IN ('pg_catalog.varchar'::pg_catalog.regtype, \
             'pg_catalog.bpchar'::pg_catalog.regtype) AND a.atttypmod > 4 \
             THEN a.atttypmod - 4 END \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = pg_catalog.to_regclass({}) \
             AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            quote_literal(&self.table.to_sql())
        )
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("CopyOptions: {name} is given more than once"));
    }
    *slot = Some(value);
    Ok(())
}

fn flag(slot: &mut bool, name: &str) -> Result<(), String> {
    if *slot {
        return Err(format!("CopyOptions: {name} is given more than once"));
    }
    *slot = true;
    Ok(())
}

fn single_char(text: &str, name: &str) -> Result<char, String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '\n' && c != '\r' => Ok(c),
        _ => Err(format!(
            "CopyOptions: {name} must be one character, got '{text}'"
        )),
    }
}

fn describe(token: &Option<Token>) -> String {
    match token {
        Some(t) => t.describe(),
        None => "the end of the options".into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Number(u64),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Str(s) => format!("'{s}'"),
            Token::Number(n) => n.to_string(),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn skip_as(&mut self) {
        if let Some(Token::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case("AS")
        {
            self.pos += 1;
        }
    }

    fn string(&mut self, name: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!(
                "CopyOptions: {name} needs a quoted string, found {}",
                describe(&other)
            )),
        }
    }

    fn number(&mut self, name: &str) -> Result<u64, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(n),
            // Redshift also takes the count quoted: IGNOREHEADER '1'.
            Some(Token::Str(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().unwrap_or(0)),
            other => Err(format!(
                "CopyOptions: {name} needs a whole number, found {}",
                describe(&other)
            )),
        }
    }
}

/// Splits CopyOptions into words, numbers and string literals. Literals take
/// Redshift's escapes: `\t`, `\n`, `\r`, `\\`, `\'`, `\ddd` (octal) and `''`.
/// One trailing `;` (as in AWS's examples) is allowed.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ',' {
            chars.next();
        } else if c == ';' {
            chars.next();
            if chars.any(|c| !c.is_whitespace()) {
                return Err("CopyOptions: text after ';' (one COPY command only)".into());
            }
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("CopyOptions: a quoted string is not closed".into()),
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some('t') => s.push('\t'),
                        Some('n') => s.push('\n'),
                        Some('r') => s.push('\r'),
                        Some('\\') => s.push('\\'),
                        Some('\'') => s.push('\''),
                        Some(d @ '0'..='7') => {
                            let mut value = d.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match chars.peek().and_then(|c| c.to_digit(8)) {
                                    Some(v) => {
                                        value = value * 8 + v;
                                        chars.next();
                                    }
                                    None => break,
                                }
                            }
                            match char::from_u32(value).filter(|_| value < 0x80) {
                                Some(c) => s.push(c),
                                None => {
                                    return Err(format!(
                                        "CopyOptions: octal escape \\{value:o} is not an ASCII character"
                                    ));
                                }
                            }
                        }
                        Some(other) => {
                            return Err(format!(
                                "CopyOptions: unknown escape '\\{other}' in a quoted string"
                            ));
                        }
                        None => return Err("CopyOptions: a quoted string is not closed".into()),
                    },
                    Some(c) => s.push(c),
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek() {
                if !d.is_ascii_alphanumeric() {
                    break;
                }
                n.push(d);
                chars.next();
            }
            let value = n
                .parse::<u64>()
                .map_err(|_| format!("CopyOptions: '{n}' is not a whole number"))?;
            tokens.push(Token::Number(value));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if !(d.is_ascii_alphanumeric() || d == '_') {
                    break;
                }
                w.push(d);
                chars.next();
            }
            tokens.push(Token::Word(w));
        } else {
            return Err(format!("CopyOptions: unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
