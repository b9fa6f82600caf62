//! Tests of the SQL stage, with the helpers they share: AWS's eight
//! examples and names (`examples`), each refusal at its position computed
//! from the text (`refusals`), and never a panic or a stack overflow
//! (`robust`).

use sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SetExpr};

use super::*;

pub(crate) mod examples;
mod refusals;
mod robust;

pub(super) const INPUTS: &[&str] = &["SOURCE_SQL_STREAM_001"];
pub(super) const TABLES: &[&str] = &["CompanyName"];

pub(super) fn context() -> Context<'static> {
    Context {
        inputs: INPUTS,
        reference_tables: TABLES,
    }
}

pub(super) fn ok(code: &str) -> Script {
    match parse_with(code, &context()) {
        Ok(script) => script,
        Err(e) => panic!("refused: {e}\n{code}"),
    }
}

pub(super) fn refused(code: &str) -> SqlError {
    match parse_with(code, &context()) {
        Ok(script) => panic!("accepted: {script:?}\n{code}"),
        Err(e) => e,
    }
}

/// The 1-based position of the `nth` (0-based) occurrence of `needle`, in
/// characters as the tokenizer counts them.
pub(super) fn pos_of(code: &str, needle: &str, nth: usize) -> Pos {
    let (byte, _) = code
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in the code"));
    let before = &code[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = code[line_start..byte].chars().count() as u64 + 1;
    Pos { line, column }
}

pub(super) fn name(text: &str, quoted: bool) -> Name {
    Name {
        text: text.to_string(),
        quoted,
    }
}

/// (name text, type) of a stream's columns.
pub(super) fn columns(stream: &StreamDef) -> Vec<(&str, SqlType)> {
    stream
        .columns
        .iter()
        .map(|c| (c.name.text.as_str(), c.ty))
        .collect()
}

pub(super) fn select_of(query: &ast::Query) -> &ast::Select {
    match query.body.as_ref() {
        SetExpr::Select(select) => select,
        other => panic!("not a SELECT: {other}"),
    }
}

pub(super) fn function(expr: &Expr) -> (&ast::Function, Vec<&Expr>) {
    let Expr::Function(f) = expr else {
        panic!("not a function: {expr}");
    };
    let FunctionArguments::List(list) = &f.args else {
        panic!("no argument list: {expr}");
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
            other => panic!("unexpected argument {other}"),
        })
        .collect();
    (f, args)
}

pub(super) fn group_by(select: &ast::Select) -> &[Expr] {
    match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => exprs,
        other => panic!("unexpected GROUP BY {other}"),
    }
}

pub(super) const VARCHAR4: SqlType = SqlType::Varchar { len: 4 };
