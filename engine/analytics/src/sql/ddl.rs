//! One statement read: `CREATE [OR REPLACE] STREAM name (col type [NOT NULL], …)`
//! or `CREATE [OR REPLACE] PUMP name AS INSERT INTO name [(cols)] query`,
//! by hand with sqlparser's `Parser` methods (its `Statement` has no stream
//! or pump), the query by `Parser::parse_query` after the pre-pass's
//! rewrites. Any other statement is refused with its position. sqlparser's
//! errors become `SqlError`s with their position taken out of the message.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{IsOptional, Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::prepass::{self, is_word};
use super::{ColumnDef, Name, Pos, PumpDef, Source, SqlError, StreamDef};
use crate::schema::SqlType;

/// A statement of the code, as written.
#[derive(Debug)]
pub(super) enum Statement {
    Stream(StreamDef),
    Pump(PumpDef),
}

/// Reads one statement: its tokens end with an EOF token (`prepass::split`).
pub(super) fn parse_statement(
    tokens: Vec<TokenWithSpan>,
    source: &Source<'_>,
) -> Result<Statement, SqlError> {
    prepass::check_size(&tokens)?;
    let token = |i: usize| tokens.get(i).map(|t| &t.token).unwrap_or(&Token::EOF);
    let start = tokens
        .first()
        .map(|t| Pos::of(t.span.start))
        .unwrap_or(Pos { line: 1, column: 1 });
    if !is_word(token(0), "CREATE") {
        return Err(match token(0) {
            Token::Word(w) if w.quote_style.is_none() => {
                let word = w.value.to_uppercase();
                let construct = match word.as_str() {
                    "SELECT" | "WITH" | "VALUES" | "INSERT" => format!("{word} outside a pump"),
                    _ => word,
                };
                SqlError::unsupported(&construct, start, source)
            }
            other => SqlError::at(
                format!("Expected: CREATE STREAM or CREATE PUMP, found: {other}"),
                start,
            ),
        });
    }
    let or_replace = is_word(token(1), "OR") && is_word(token(2), "REPLACE");
    let kind = if or_replace { 3 } else { 1 };
    let rest = tokens.get(kind + 1..).unwrap_or_default();
    match token(kind) {
        t if is_word(t, "STREAM") => {
            parse_stream(rest, or_replace, start, source).map(Statement::Stream)
        }
        t if is_word(t, "PUMP") => parse_pump(rest, or_replace, start, source).map(Statement::Pump),
        Token::Word(w) if w.quote_style.is_none() => {
            let construct = format!(
                "CREATE {}{}",
                if or_replace { "OR REPLACE " } else { "" },
                w.value.to_uppercase()
            );
            Err(SqlError::unsupported(&construct, start, source))
        }
        other => {
            let at = tokens
                .get(kind)
                .map(|t| Pos::of(t.span.start))
                .unwrap_or(start);
            Err(SqlError::at(
                format!("Expected: STREAM or PUMP after CREATE, found: {other}"),
                at,
            ))
        }
    }
}

/// After `CREATE [OR REPLACE] STREAM`.
fn parse_stream(
    tokens: &[TokenWithSpan],
    or_replace: bool,
    start: Pos,
    source: &Source<'_>,
) -> Result<StreamDef, SqlError> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());
    let sql = |e| from_parser(e, start);
    let (name, at) = read_name(&mut p, source)?;
    p.expect_token(&Token::LParen).map_err(sql)?;
    let mut columns: Vec<ColumnDef> = Vec::new();
    loop {
        let (column, column_at) = read_name(&mut p, source)?;
        if let Some(first) = columns.iter().find(|c| c.name.text == column.text) {
            return Err(SqlError::at(
                format!(
                    "Column {column} is declared twice in stream {name} (first at line {}, column {})",
                    first.at.line, first.at.column
                ),
                column_at,
            ));
        }
        let type_at = Pos::of(p.peek_token_ref().span.start);
        let ty = p.parse_data_type().map_err(sql)?;
        let ty = SqlType::of_ast(&ty).map_err(|m| SqlError::at(m, type_at))?;
        let not_null = if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            true
        } else {
            let _null = p.parse_keyword(Keyword::NULL);
            false
        };
        columns.push(ColumnDef {
            name: column,
            ty,
            not_null,
            at: column_at,
        });
        if p.consume_token(&Token::Comma) {
            continue;
        }
        if p.consume_token(&Token::RParen) {
            break;
        }
        return p.expected(", or )", p.peek_token()).map_err(sql);
    }
    end(&mut p, start)?;
    Ok(StreamDef {
        name,
        or_replace,
        columns,
        at,
    })
}

/// After `CREATE [OR REPLACE] PUMP`.
fn parse_pump(
    tokens: &[TokenWithSpan],
    or_replace: bool,
    start: Pos,
    source: &Source<'_>,
) -> Result<PumpDef, SqlError> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());
    let sql = |e| from_parser(e, start);
    let (name, at) = read_name(&mut p, source)?;
    for keyword in [Keyword::AS, Keyword::INSERT, Keyword::INTO] {
        p.expect_keyword(keyword).map_err(sql)?;
    }
    let (target, target_at) = read_name(&mut p, source)?;
    // `INSERT INTO s (a, b) SELECT …` or `INSERT INTO s (SELECT …)`.
    let column_list = p.peek_token_ref().token == Token::LParen
        && !matches!(&p.peek_nth_token_ref(1).token,
            t if is_word(t, "SELECT") || is_word(t, "WITH") || *t == Token::LParen);
    let columns = if column_list {
        let idents = p
            .parse_parenthesized_column_list(IsOptional::Mandatory, false)
            .map_err(sql)?;
        let mut columns = Vec::with_capacity(idents.len());
        for ident in &idents {
            let column = Name::of_ident(ident);
            if column.text.eq_ignore_ascii_case("ROWTIME") {
                return Err(SqlError::unsupported(
                    "Writing ROWTIME",
                    Pos::of(ident.span.start),
                    source,
                ));
            }
            columns.push(column);
        }
        Some(columns)
    } else {
        None
    };
    let query_tokens = tokens.get(p.index()..).unwrap_or_default();
    let query_at = query_tokens
        .first()
        .map(|t| Pos::of(t.span.start))
        .unwrap_or(at);
    prepass::refuse_unsupported(query_tokens, source)?;
    let (query_tokens, marks) = prepass::rewrite(query_tokens);
    let mut q = Parser::new(&dialect).with_tokens_with_locations(query_tokens);
    let query = q.parse_query().map_err(|e| from_parser(e, at))?;
    end(&mut q, start)?;
    Ok(PumpDef {
        name,
        or_replace,
        target,
        target_at,
        columns,
        query,
        query_at,
        marks,
        at,
    })
}

/// A stream, pump or column name: one identifier.
fn read_name(p: &mut Parser<'_>, source: &Source<'_>) -> Result<(Name, Pos), SqlError> {
    let token = p.next_token();
    let at = Pos::of(token.span.start);
    let Token::Word(word) = token.token else {
        return Err(SqlError::at(
            format!("Expected: a name, found: {}", token.token),
            at,
        ));
    };
    if p.peek_token_ref().token == Token::Period {
        return Err(SqlError::unsupported("A qualified name", at, source));
    }
    let ident = word.into_ident(token.span);
    Ok((Name::of_ident(&ident), at))
}

/// Nothing may follow a statement but its `;`.
fn end(p: &mut Parser<'_>, start: Pos) -> Result<(), SqlError> {
    match p.peek_token_ref().token {
        Token::EOF => Ok(()),
        _ => p
            .expected("end of statement", p.peek_token())
            .map_err(|e| from_parser(e, start)),
    }
}

/// sqlparser's error as a `SqlError`: its " at Line: L, Column: C" suffix
/// becomes the position. `fallback` is used when it has none (the
/// recursion limit).
pub(super) fn from_parser(error: ParserError, fallback: Pos) -> SqlError {
    let text = match error {
        ParserError::ParserError(text) | ParserError::TokenizerError(text) => text,
        ParserError::RecursionLimitExceeded => {
            return SqlError::at(
                "The statement is nested too deeply (sqlparser's recursion limit)",
                fallback,
            );
        }
    };
    let located = text.rfind(" at Line: ").and_then(|i| {
        let (line, column) = text[i + " at Line: ".len()..].split_once(", Column: ")?;
        let at = Pos {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
        };
        Some((i, at))
    });
    match located {
        Some((i, at)) => SqlError::at(&text[..i], at),
        None => SqlError::at(text, fallback),
    }
}
