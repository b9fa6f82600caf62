//! One SQL expression of a pump resolved into a typed [`Expr`]: names to
//! column indexes, literals to constants, operators and functions to the
//! evaluator's, with the implicit casts SQL's rules ask for
//! (docs/analytics-design.md §3.5, §3.6). Every refusal names the construct
//! and its position.
//!
//! Two scopes: the rows of the pump's input (a filter, a per-row select
//! item, a GROUP BY key, an aggregate's argument), and a tumbling window's
//! group rows (its select items and HAVING): there a subexpression equal to
//! a GROUP BY key is that key's column, an aggregate call is registered and
//! becomes its column, and any other column of the input is an error.

use sqlparser::ast::{self, Spanned};

use super::{Agg, AggFunc, ColumnPlan, Frame, StreamKind, StreamPlan, WindowSpec};
use crate::decode::{APPROXIMATE_ARRIVAL_TIME, ROWTIME};
use crate::expr::{ArithOp, CmpOp, Expr, ExprKind, Func, Literal, TimeUnitOf, Ty};
use crate::schema::SqlType;
use crate::sql::{Name, Pos, SqlError};

/// The evaluation type of a column type; `None` for the types values are
/// only copied in (DATE, TIME, BINARY, VARBINARY). DECIMAL is evaluated as
/// a DOUBLE (**Riffle**: exact only when copied as it is).
pub(crate) fn ty_of(ty: SqlType) -> Option<Ty> {
    Some(match ty {
        SqlType::Boolean => Ty::Bool,
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Integer | SqlType::BigInt => Ty::Int,
        SqlType::Real | SqlType::Double | SqlType::Decimal { .. } => Ty::Float,
        SqlType::Char { .. } | SqlType::Varchar { .. } => Ty::Text,
        SqlType::Timestamp => Ty::Time,
        SqlType::Date | SqlType::Time | SqlType::Binary { .. } | SqlType::Varbinary { .. } => {
            return None;
        }
    })
}

/// The SQL name of an evaluation type, for messages.
pub(crate) fn ty_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Bool => "BOOLEAN",
        Ty::Int => "BIGINT",
        Ty::Float => "DOUBLE",
        Ty::Text => "VARCHAR",
        Ty::Time => "TIMESTAMP",
    }
}

/// The rows a pump reads: its FROM stream, under its name or alias, and
/// the reference table joined to it, if any.
pub(crate) struct RowScope<'a> {
    pub stream: &'a StreamPlan,
    /// The alias (`FROM s AS x`), which then replaces the name as qualifier.
    pub alias: Option<String>,
    pub table: Option<TableScope<'a>>,
}

/// A reference table joined to the pump's stream: its columns follow the
/// stream's row (system columns included) in the joined rows.
pub(crate) struct TableScope<'a> {
    pub name: String,
    pub alias: Option<String>,
    pub columns: &'a [ColumnPlan],
    /// The index of the table's first column in the joined rows.
    pub base: usize,
}

impl TableScope<'_> {
    fn named(&self, q: &Name) -> bool {
        match &self.alias {
            Some(alias) => q.text == *alias,
            None => q.text == self.name,
        }
    }

    fn column(&self, name: &Name) -> Option<Found> {
        let i = self.columns.iter().position(|c| c.name == name.text)?;
        Some(Found {
            index: self.base + i,
            ty: self.columns[i].ty,
        })
    }
}

/// A column of the scope: its index in the row and its type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub index: usize,
    pub ty: SqlType,
}

impl RowScope<'_> {
    fn qualifier_matches(&self, q: &Name) -> bool {
        match &self.alias {
            Some(alias) => q.text == *alias,
            None => q.text == self.stream.name,
        }
    }

    fn column(&self, name: &Name) -> Option<Found> {
        if let Some(i) = self.stream.columns.iter().position(|c| c.name == name.text) {
            return Some(Found {
                index: i,
                ty: self.stream.columns[i].ty,
            });
        }
        // Unquoted, `rowtime` was upper-cased; quoted, it must be written so.
        let system = |n: &str| name.text == n;
        if system(ROWTIME) {
            return Some(Found {
                index: self.stream.rowtime(),
                ty: SqlType::Timestamp,
            });
        }
        if self.stream.kind == StreamKind::Input && system(APPROXIMATE_ARRIVAL_TIME) {
            return Some(Found {
                index: self.stream.rowtime() + 1,
                ty: SqlType::Timestamp,
            });
        }
        None
    }

    fn columns_list(&self) -> String {
        let names: Vec<String> = self
            .stream
            .columns
            .iter()
            .map(|c: &ColumnPlan| quoted(&c.name))
            .collect();
        names.join(", ")
    }

    /// The column an identifier (`x`, `s.x`, `t.x` of the joined table)
    /// names.
    pub(crate) fn lookup(&self, parts: &[ast::Ident]) -> Result<Found, SqlError> {
        let Some(table) = &self.table else {
            return self.lookup_stream(parts);
        };
        let at = Pos::of(parts[parts.len() - 1].span.start);
        match parts {
            [q, name] if table.named(&Name::of_ident(q)) => {
                let name = Name::of_ident(name);
                table.column(&name).ok_or_else(|| {
                    let names: Vec<String> =
                        table.columns.iter().map(|c| quoted(&c.name)).collect();
                    SqlError::at(
                        format!(
                            "Column {} not found in {} (columns: {})",
                            quoted(&name.text),
                            quoted(&table.name),
                            names.join(", ")
                        ),
                        at,
                    )
                })
            }
            [name] => {
                let name = Name::of_ident(name);
                match (self.column(&name), table.column(&name)) {
                    (Some(_), Some(_)) => Err(SqlError::at(
                        format!(
                            "Column {} is in both {} and {} (qualify it)",
                            quoted(&name.text),
                            quoted(&self.stream.name),
                            quoted(&table.name)
                        ),
                        at,
                    )),
                    (None, Some(found)) => Ok(found),
                    _ => self.lookup_stream(parts),
                }
            }
            _ => self.lookup_stream(parts),
        }
    }

    /// [`lookup`](Self::lookup) in the stream's columns only.
    fn lookup_stream(&self, parts: &[ast::Ident]) -> Result<Found, SqlError> {
        let at = Pos::of(parts[0].span.start);
        let (qualifier, name) = match parts {
            [name] => (None, name),
            [q, name] => (Some(Name::of_ident(q)), name),
            _ => {
                return Err(SqlError::at(
                    format!(
                        "{} names nothing a pump can read (write stream.column)",
                        join_idents(parts)
                    ),
                    at,
                ));
            }
        };
        if let Some(q) = &qualifier
            && !self.qualifier_matches(q)
        {
            return Err(SqlError::at(
                format!(
                    "{q} is not a stream of this query (it reads {})",
                    self.shown_name()
                ),
                at,
            ));
        }
        let name = Name::of_ident(name);
        self.column(&name).ok_or_else(|| {
            SqlError::at(
                format!(
                    "Column {} not found in {} (columns: {})",
                    quoted(&name.text),
                    quoted(&self.stream.name),
                    self.columns_list()
                ),
                Pos::of(parts[parts.len() - 1].span.start),
            )
        })
    }

    /// The name of the column at `index` of the scope's rows.
    pub(crate) fn column_name(&self, index: usize) -> &str {
        if let Some(t) = &self.table
            && index >= t.base
        {
            return t
                .columns
                .get(index - t.base)
                .map_or("?", |c| c.name.as_str());
        }
        match self.stream.columns.get(index) {
            Some(c) => &c.name,
            None if index == self.stream.rowtime() => ROWTIME,
            None => APPROXIMATE_ARRIVAL_TIME,
        }
    }

    fn shown_name(&self) -> String {
        match &self.alias {
            Some(alias) => format!("{} AS {}", quoted(&self.stream.name), quoted(alias)),
            None => quoted(&self.stream.name),
        }
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn join_idents(parts: &[ast::Ident]) -> String {
    let names: Vec<String> = parts
        .iter()
        .map(|p| Name::of_ident(p).to_string())
        .collect();
    names.join(".")
}

/// A tumbling window's grouping, filled while its select list and HAVING
/// are resolved.
pub(crate) struct Grouping {
    /// The window's start (`STEP(ROWTIME …)`), then the other keys, over
    /// the input's rows.
    pub keys: Vec<Expr>,
    /// For each key that is a bare column, its SQL type.
    pub key_columns: Vec<Option<SqlType>>,
    pub aggs: Vec<Agg>,
}

/// A sliding pump's windows and aggregates, filled while its select list
/// is resolved.
pub(crate) struct Windowed<'a> {
    /// The WINDOW clause's windows, by name.
    pub named: Vec<(String, &'a ast::WindowSpec)>,
    pub windows: Vec<WindowSpec>,
    pub aggs: Vec<(usize, Agg)>,
    /// The column of the first aggregate in the extended rows (the input's
    /// column count).
    pub base: usize,
}

/// Resolves expressions in a scope.
pub(crate) struct Resolver<'a, 'w> {
    pub rows: &'a RowScope<'a>,
    /// Set: expressions are over group rows.
    pub grouping: Option<&'a mut Grouping>,
    /// Set: a sliding pump's select list (aggregates `OVER` windows).
    pub windowed: Option<&'a mut Windowed<'w>>,
    /// Where the statement starts: the position for nodes without a span.
    pub fallback: Pos,
}

/// An aggregate function's name.
fn aggregate_of(name: &str) -> Option<AggFunc> {
    Some(match name {
        "COUNT" => AggFunc::Count,
        "SUM" => AggFunc::Sum,
        "MIN" => AggFunc::Min,
        "MAX" => AggFunc::Max,
        "AVG" => AggFunc::Avg,
        "FIRST_VALUE" => AggFunc::FirstValue,
        "LAST_VALUE" => AggFunc::LastValue,
        "VAR_POP" => AggFunc::VarPop,
        "VAR_SAMP" => AggFunc::VarSamp,
        "STDDEV_POP" => AggFunc::StddevPop,
        "STDDEV_SAMP" | "STD_DEV" | "STDDEV" => AggFunc::StddevSamp,
        _ => return None,
    })
}

/// Whether `name` is an analytic function of a sliding window (LAG,
/// EXP_AVG): served only `OVER` a window in a sliding pump's select list.
fn is_analytic(name: &str) -> bool {
    matches!(name, "LAG" | "EXP_AVG")
}

/// The upper-cased last part of a function's name.
pub(crate) fn function_name(f: &ast::Function) -> String {
    match f.name.0.last() {
        Some(ast::ObjectNamePart::Identifier(ident)) => ident.value.to_uppercase(),
        _ => f.name.to_string().to_uppercase(),
    }
}

/// Whether `e` calls an aggregate or an analytic function anywhere (not
/// looking into subqueries, which the planner refuses).
pub(crate) fn has_aggregate(e: &ast::Expr) -> bool {
    let mut found = false;
    visit(e, &mut |e| {
        if let ast::Expr::Function(f) = e {
            let name = function_name(f);
            found |= aggregate_of(&name).is_some() || is_analytic(&name);
        }
    });
    found
}

/// Whether `e` calls a function `OVER` a window anywhere.
pub(crate) fn has_over(e: &ast::Expr) -> bool {
    let mut found = false;
    visit(e, &mut |e| {
        if let ast::Expr::Function(f) = e
            && f.over.is_some()
        {
            found = true;
        }
    });
    found
}

/// Calls `f` on `e` and every expression below it.
fn visit(e: &ast::Expr, f: &mut dyn FnMut(&ast::Expr)) {
    use ast::Expr as E;
    f(e);
    match e {
        E::BinaryOp { left, right, .. } => {
            visit(left, f);
            visit(right, f);
        }
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::Cast { expr, .. }
        | E::Floor { expr, .. }
        | E::Ceil { expr, .. } => visit(expr, f),
        E::Between {
            expr, low, high, ..
        } => {
            visit(expr, f);
            visit(low, f);
            visit(high, f);
        }
        E::In {
            expr,
            target: ast::InTarget::List(list),
            ..
        } => {
            visit(expr, f);
            list.iter().for_each(|e| visit(e, f));
        }
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.iter().for_each(|e| visit(e, f));
            for c in conditions {
                visit(&c.condition, f);
                visit(&c.result, f);
            }
            else_result.iter().for_each(|e| visit(e, f));
        }
        E::Function(func) => {
            for arg in list_args(func) {
                if let Some(e) = arg_expr(arg) {
                    visit(e, f);
                }
            }
        }
        _ => {}
    }
}

fn list_args(f: &ast::Function) -> &[ast::FunctionArg] {
    match &f.args {
        ast::FunctionArguments::List(list) => &list.args,
        _ => &[],
    }
}

fn arg_expr(arg: &ast::FunctionArg) -> Option<&ast::Expr> {
    match arg {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))
        | ast::FunctionArg::Named {
            arg: ast::FunctionArgExpr::Expr(e),
            ..
        }
        | ast::FunctionArg::ExprNamed {
            arg: ast::FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    }
}

fn is_null(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Literal(Literal::Null))
}

/// `e` converted to `ty` (a NULL literal just takes the type).
fn cast_to(e: Expr, ty: Ty) -> Expr {
    if e.ty == ty {
        e
    } else if is_null(&e) {
        Expr::literal(Literal::Null, ty)
    } else {
        Expr::new(ExprKind::Cast(Box::new(e)), ty)
    }
}

/// Whether the evaluator converts `from` into `to`.
pub(crate) fn castable(from: Ty, to: Ty) -> bool {
    from == to
        || matches!(
            (from, to),
            (Ty::Int, Ty::Float)
                | (Ty::Float, Ty::Int)
                | (_, Ty::Text)
                | (Ty::Text, _)
                | (Ty::Time, Ty::Int)
                | (Ty::Int, Ty::Time)
        )
}

/// A time unit KDA rounds and steps by.
fn unit_of(field: &ast::DateTimeField) -> Option<TimeUnitOf> {
    use ast::DateTimeField as F;
    Some(match field {
        F::Second | F::Seconds => TimeUnitOf::Second,
        F::Minute | F::Minutes => TimeUnitOf::Minute,
        F::Hour | F::Hours => TimeUnitOf::Hour,
        F::Day | F::Days => TimeUnitOf::Day,
        _ => return None,
    })
}

impl Resolver<'_, '_> {
    fn pos(&self, e: &impl Spanned) -> Pos {
        let span = e.span();
        if span.start.line == 0 {
            self.fallback
        } else {
            Pos::of(span.start)
        }
    }

    fn error(&self, message: impl Into<String>, e: &impl Spanned) -> SqlError {
        SqlError::at(message, self.pos(e))
    }

    fn unsupported(&self, what: impl std::fmt::Display, e: &impl Spanned) -> SqlError {
        self.error(format!("{what} is not supported"), e)
    }

    /// Resolves `e` in the resolver's scope.
    pub(crate) fn resolve(&mut self, e: &ast::Expr) -> Result<Expr, SqlError> {
        if self.grouping.is_none() {
            return self.node(e);
        }
        if let ast::Expr::Function(f) = e
            && let Some(func) = aggregate_of(&function_name(f))
        {
            return self.aggregate(func, f);
        }
        if !has_aggregate(e) {
            // A subexpression equal to a key is that key.
            let mut rows = Resolver {
                rows: self.rows,
                grouping: None,
                windowed: None,
                fallback: self.fallback,
            };
            let resolved = rows.node(e);
            let grouping = self.grouping.as_deref().expect("grouped");
            if let Ok(expr) = &resolved
                && let Some(k) = grouping.keys.iter().position(|key| key == expr)
            {
                return Ok(Expr::column(k, expr.ty));
            }
            if let ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) = e {
                resolved?;
                return Err(self.error(
                    format!("{e} is neither in the GROUP BY nor in an aggregate"),
                    e,
                ));
            }
        }
        self.node(e)
    }

    /// An aggregate call in a grouped scope: registered, then its column.
    fn aggregate(&mut self, func: AggFunc, f: &ast::Function) -> Result<Expr, SqlError> {
        let name = function_name(f);
        if f.over.is_some() {
            return Err(self.unsupported(
                format!("{name} … OVER (a sliding window) in a GROUP BY query"),
                f,
            ));
        }
        let agg = self.aggregate_call(func, f)?;
        let ty = agg.ty;
        let grouping = self.grouping.as_deref_mut().expect("grouped");
        let at = match grouping.aggs.iter().position(|a| *a == agg) {
            Some(i) => i,
            None => {
                grouping.aggs.push(agg);
                grouping.aggs.len() - 1
            }
        };
        Ok(Expr::column(grouping.keys.len() + at, ty))
    }

    /// An aggregate call `OVER` a window in a sliding pump: its window
    /// planned (shared with equal ones), the aggregate registered, then its
    /// column in the extended rows.
    /// `func` is `None` for an analytic function (LAG, EXP_AVG).
    fn window_aggregate(
        &mut self,
        func: Option<AggFunc>,
        f: &ast::Function,
    ) -> Result<Expr, SqlError> {
        let spec = match &f.over {
            Some(ast::WindowType::NamedWindow(ident)) => {
                let wanted = Name::of_ident(ident).text;
                let windowed = self.windowed.as_deref().expect("sliding");
                match windowed.named.iter().find(|(n, _)| *n == wanted) {
                    Some((_, spec)) => *spec,
                    None => {
                        return Err(self.error(
                            format!(
                                "Window {} is not defined in the WINDOW clause",
                                Name::of_ident(ident)
                            ),
                            f,
                        ));
                    }
                }
            }
            Some(ast::WindowType::WindowSpec(spec)) => spec,
            None => unreachable!("called for OVER"),
        };
        let window = self.window(spec, f)?;
        let agg = match func {
            Some(func) => self.aggregate_call(func, f)?,
            None => self.analytic_call(f)?,
        };
        let ty = agg.ty;
        let windowed = self.windowed.as_deref_mut().expect("sliding");
        let w = match windowed.windows.iter().position(|x| *x == window) {
            Some(w) => w,
            None => {
                windowed.windows.push(window);
                windowed.windows.len() - 1
            }
        };
        let entry = (w, agg);
        let at = match windowed.aggs.iter().position(|a| *a == entry) {
            Some(i) => i,
            None => {
                windowed.aggs.push(entry);
                windowed.aggs.len() - 1
            }
        };
        Ok(Expr::column(windowed.base + at, ty))
    }

    /// A window specification: PARTITION BY over the input's rows and a
    /// bounded frame (`RANGE INTERVAL … PRECEDING` or `ROWS n PRECEDING`).
    fn window(
        &mut self,
        spec: &ast::WindowSpec,
        f: &ast::Function,
    ) -> Result<WindowSpec, SqlError> {
        if spec.window_name.is_some() {
            return Err(self.unsupported("A window that refines a named window", f));
        }
        let rowtime_only = spec.order_by.iter().all(|o| {
            matches!(&o.expr, ast::Expr::Identifier(i) if Name::of_ident(i).text == ROWTIME)
                && matches!(o.options.sort, None | Some(ast::OrderBySort::Asc))
        });
        if !rowtime_only || spec.order_by.len() > 1 {
            return Err(self.unsupported(
                "ORDER BY in a window other than ROWTIME (windows are in ROWTIME order)",
                f,
            ));
        }
        let mut partition = Vec::with_capacity(spec.partition_by.len());
        for p in &spec.partition_by {
            if has_aggregate(p) {
                return Err(self.error("PARTITION BY of an aggregate", p));
            }
            let mut rows = Resolver {
                rows: self.rows,
                grouping: None,
                windowed: None,
                fallback: self.fallback,
            };
            partition.push(rows.node(p)?);
        }
        let form = "RANGE INTERVAL 'n' SECOND|MINUTE|HOUR|DAY PRECEDING or ROWS n PRECEDING";
        let Some(frame) = &spec.window_frame else {
            return Err(self.error(format!("A window needs a frame: {form}"), f));
        };
        let current = matches!(
            frame.end_bound,
            None | Some(ast::WindowFrameBound::CurrentRow)
        );
        let frame = match (&frame.units, &frame.start_bound) {
            (ast::WindowFrameUnits::Range, ast::WindowFrameBound::Preceding(Some(e)))
                if current =>
            {
                match e.as_ref() {
                    ast::Expr::Interval(interval) => Frame::Range {
                        ms: self.interval_ms(interval, e)?,
                    },
                    _ => return Err(self.error(format!("A window's frame is {form}"), e.as_ref())),
                }
            }
            (ast::WindowFrameUnits::Rows, ast::WindowFrameBound::Preceding(Some(e))) if current => {
                match e.as_ref() {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::Number(n, _) => Frame::Rows {
                            preceding: n.parse::<u64>().map_err(|_| {
                                self.error(
                                    format!("ROWS {n} PRECEDING needs a whole number"),
                                    e.as_ref(),
                                )
                            })?,
                        },
                        _ => {
                            return Err(
                                self.error(format!("A window's frame is {form}"), e.as_ref())
                            );
                        }
                    },
                    _ => return Err(self.error(format!("A window's frame is {form}"), e.as_ref())),
                }
            }
            _ => return Err(self.unsupported(format!("This window frame (write {form})"), f)),
        };
        match frame {
            Frame::Range { ms } if !(0..=crate::limits::SLIDING_RANGE_MS_MAX).contains(&ms) => {
                return Err(self.error(
                    "A RANGE is from 0 to 24 hours (this server keeps a window's rows in memory)",
                    f,
                ));
            }
            Frame::Rows { preceding } if preceding > crate::limits::SLIDING_ROWS_MAX => {
                return Err(self.error(
                    format!(
                        "ROWS n PRECEDING takes n up to {} (this server keeps a window's rows in memory)",
                        crate::limits::SLIDING_ROWS_MAX
                    ),
                    f,
                ));
            }
            _ => {}
        }
        Ok(WindowSpec { partition, frame })
    }

    /// An aggregate's function and argument, checked.
    fn aggregate_call(&mut self, func: AggFunc, f: &ast::Function) -> Result<Agg, SqlError> {
        let name = function_name(f);
        if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(self.unsupported(format!("This form of {name}"), f));
        }
        let list = match &f.args {
            ast::FunctionArguments::List(list) => list,
            _ => return Err(self.error(format!("{name} takes one argument"), f)),
        };
        if list.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct) {
            return Err(self.unsupported(format!("{name}(DISTINCT …)"), f));
        }
        if !list.clauses.is_empty() {
            return Err(self.unsupported(format!("This form of {name}"), f));
        }
        let (func, arg) = match list.args.as_slice() {
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]
                if func == AggFunc::Count =>
            {
                (AggFunc::CountRows, None)
            }
            [arg] => match arg_expr(arg) {
                Some(e) => {
                    if has_aggregate(e) {
                        return Err(self.error(format!("{name} of an aggregate"), e));
                    }
                    let mut rows = Resolver {
                        rows: self.rows,
                        grouping: None,
                        windowed: None,
                        fallback: self.fallback,
                    };
                    (func, Some(rows.node(e)?))
                }
                None => return Err(self.error(format!("{name} takes one expression"), f)),
            },
            _ => return Err(self.error(format!("{name} takes one argument"), f)),
        };
        let ty = match (func, &arg) {
            (AggFunc::CountRows | AggFunc::Count, _) => Ty::Int,
            (AggFunc::Sum | AggFunc::Avg, Some(a)) if !a.ty.is_numeric() => {
                return Err(self.error(
                    format!("{name} needs a number, not a {} value", ty_name(a.ty)),
                    f,
                ));
            }
            (
                AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp,
                Some(a),
            ) => {
                if !a.ty.is_numeric() {
                    return Err(self.error(
                        format!("{name} needs a number, not a {} value", ty_name(a.ty)),
                        f,
                    ));
                }
                Ty::Float
            }
            (_, Some(a)) => a.ty,
            (_, None) => Ty::Int,
        };
        Ok(Agg {
            func,
            arg,
            ty,
            default: None,
        })
    }

    /// An analytic function's call (`LAG(x [, n [, default]]) [IGNORE NULLS
    /// | RESPECT NULLS]`, `EXP_AVG(x, INTERVAL 'n' unit)`), checked, as its
    /// aggregate ([`AggFunc::Lag`], [`AggFunc::ExpAvg`]).
    fn analytic_call(&mut self, f: &ast::Function) -> Result<Agg, SqlError> {
        let name = function_name(f);
        let list = match &f.args {
            ast::FunctionArguments::List(list) => list,
            _ => return Err(self.error(format!("{name} needs its arguments in parentheses"), f)),
        };
        if f.filter.is_some() || !f.within_group.is_empty() || list.duplicate_treatment.is_some() {
            return Err(self.unsupported(format!("This form of {name}"), f));
        }
        // IGNORE NULLS / RESPECT NULLS after the call, or (sqlparser also
        // reads it there) inside its parentheses.
        let mut ignore_nulls = f
            .null_treatment
            .map(|t| t == ast::NullTreatment::IgnoreNulls);
        for clause in &list.clauses {
            match clause {
                ast::FunctionArgumentClause::IgnoreOrRespectNulls(t) if ignore_nulls.is_none() => {
                    ignore_nulls = Some(*t == ast::NullTreatment::IgnoreNulls);
                }
                _ => return Err(self.unsupported(format!("This form of {name}"), f)),
            }
        }
        let mut args: Vec<&ast::Expr> = Vec::with_capacity(list.args.len());
        for arg in &list.args {
            match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => args.push(x),
                _ => return Err(self.unsupported(format!("This argument of {name}"), f)),
            }
        }
        for a in &args {
            if has_aggregate(a) {
                return Err(self.error(format!("{name} of an aggregate"), *a));
            }
        }
        let mut rows = Resolver {
            rows: self.rows,
            grouping: None,
            windowed: None,
            fallback: self.fallback,
        };
        if name == "EXP_AVG" {
            let form = "EXP_AVG(x, INTERVAL 'n' SECOND|MINUTE|HOUR|DAY)";
            if ignore_nulls.is_some() {
                return Err(self.unsupported(
                    "IGNORE NULLS or RESPECT NULLS on EXP_AVG (it always leaves NULLs out)",
                    f,
                ));
            }
            let [value, half_life] = args.as_slice() else {
                return Err(self.error(format!("EXP_AVG is written {form}"), f));
            };
            let value = rows.node(value)?;
            if !value.ty.is_numeric() && !is_null(&value) {
                return Err(self.error(
                    format!("EXP_AVG needs a number, not a {} value", ty_name(value.ty)),
                    f,
                ));
            }
            let ast::Expr::Interval(interval) = half_life else {
                return Err(self.error(format!("EXP_AVG is written {form}"), *half_life));
            };
            let half_life_ms = self.interval_ms(interval, half_life)?;
            if half_life_ms <= 0 {
                return Err(self.error("EXP_AVG's half-life must be more than zero", *half_life));
            }
            return Ok(Agg {
                func: AggFunc::ExpAvg { half_life_ms },
                arg: Some(cast_to(value, Ty::Float)),
                ty: Ty::Float,
                default: None,
            });
        }
        let form = "LAG(x [, n [, default]]) [IGNORE NULLS | RESPECT NULLS]";
        let (value, offset, default) = match args.as_slice() {
            [value] => (*value, None, None),
            [value, offset] => (*value, Some(*offset), None),
            [value, offset, default] => (*value, Some(*offset), Some(*default)),
            _ => return Err(self.error(format!("LAG is written {form}"), f)),
        };
        let value = rows.node(value)?;
        let offset = match offset {
            None => 1,
            Some(n) => {
                let whole = match n {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::Number(text, _) => text.parse::<u64>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                whole.filter(|&n| n >= 1).ok_or_else(|| {
                    self.error("LAG's offset is a whole number of rows, 1 or more", n)
                })?
            }
        };
        let default = match default {
            None => None,
            Some(d) => {
                let resolved = rows.node(d)?;
                Some(self.lag_default(resolved, value.ty, d)?)
            }
        };
        Ok(Agg {
            func: AggFunc::Lag {
                offset,
                ignore_nulls: ignore_nulls.unwrap_or(false),
            },
            ty: value.ty,
            arg: Some(value),
            default,
        })
    }

    /// LAG's default in its value's type `ty`: a NULL, a value of that
    /// type, an integer for a DOUBLE, a text literal for a TIMESTAMP.
    fn lag_default(&self, d: Expr, ty: Ty, at: &ast::Expr) -> Result<Expr, SqlError> {
        if is_null(&d) || d.ty == ty {
            return Ok(cast_to(d, ty));
        }
        match (d.ty, ty) {
            (Ty::Int, Ty::Float) => Ok(cast_to(d, ty)),
            (Ty::Text, Ty::Time) if matches!(d.kind, ExprKind::Literal(_)) => {
                self.time_literal(d, at)
            }
            (from, to) => Err(self.error(
                format!(
                    "LAG's default must be a {} value like its first argument, not a {} value (CAST it)",
                    ty_name(to),
                    ty_name(from)
                ),
                at,
            )),
        }
    }

    /// A child of a node, in the same scope.
    fn sub(&mut self, e: &ast::Expr) -> Result<Expr, SqlError> {
        self.resolve(e)
    }

    fn node(&mut self, e: &ast::Expr) -> Result<Expr, SqlError> {
        use ast::Expr as E;
        match e {
            E::Identifier(ident) => self.column(std::slice::from_ref(ident), e),
            E::CompoundIdentifier(parts) => self.column(parts, e),
            E::Value(v) => self.value(&v.value, e),
            E::Nested(inner) => self.sub(inner),
            E::UnaryOp { op, expr } => {
                let a = self.sub(expr)?;
                match op {
                    ast::UnaryOperator::Minus if a.ty.is_numeric() => {
                        let ty = a.ty;
                        Ok(Expr::new(ExprKind::Neg(Box::new(a)), ty))
                    }
                    ast::UnaryOperator::Plus if a.ty.is_numeric() => Ok(a),
                    ast::UnaryOperator::Not if a.ty == Ty::Bool || is_null(&a) => Ok(Expr::new(
                        ExprKind::Not(Box::new(cast_to(a, Ty::Bool))),
                        Ty::Bool,
                    )),
                    ast::UnaryOperator::Minus | ast::UnaryOperator::Plus => Err(self.error(
                        format!("{op} needs a number, not a {} value", ty_name(a.ty)),
                        e,
                    )),
                    ast::UnaryOperator::Not => Err(self.error(
                        format!("NOT needs a BOOLEAN, not a {} value", ty_name(a.ty)),
                        e,
                    )),
                    other => Err(self.unsupported(format!("The operator {other}"), e)),
                }
            }
            E::BinaryOp { left, op, right } => self.binary(left, op, right, e),
            E::IsNull(a) | E::IsNotNull(a) => {
                let a = self.sub(a)?;
                Ok(Expr::new(
                    ExprKind::IsNull(Box::new(a), matches!(e, E::IsNull(_))),
                    Ty::Bool,
                ))
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.sub(expr)?;
                let (lo, hi) = (self.sub(low)?, self.sub(high)?);
                let ge = self.compare(CmpOp::GtEq, x.clone(), lo, e)?;
                let le = self.compare(CmpOp::LtEq, x, hi, e)?;
                let both = Expr::new(ExprKind::And(Box::new(ge), Box::new(le)), Ty::Bool);
                Ok(match negated {
                    true => Expr::new(ExprKind::Not(Box::new(both)), Ty::Bool),
                    false => both,
                })
            }
            E::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let x = self.sub(expr)?;
                let mut any: Option<Expr> = None;
                for item in list {
                    let v = self.sub(item)?;
                    let eq = self.compare(CmpOp::Eq, x.clone(), v, e)?;
                    any = Some(match any {
                        None => eq,
                        Some(a) => Expr::new(ExprKind::Or(Box::new(a), Box::new(eq)), Ty::Bool),
                    });
                }
                let any = any.ok_or_else(|| self.error("IN needs at least one value", e))?;
                Ok(match negated {
                    true => Expr::new(ExprKind::Not(Box::new(any)), Ty::Bool),
                    false => any,
                })
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref(), e),
            E::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(kind, ast::CastKind::Cast) || format.is_some() {
                    return Err(self.unsupported("This form of CAST", e));
                }
                let target = SqlType::of_ast(data_type)
                    .map_err(|why| self.error(format!("CAST to {data_type}: {why}"), e))?;
                let to = ty_of(target)
                    .ok_or_else(|| self.unsupported(format!("CAST to {target}"), e))?;
                let a = self.sub(expr)?;
                if !castable(a.ty, to) {
                    return Err(self.error(
                        format!("Cannot CAST a {} value to {target}", ty_name(a.ty)),
                        e,
                    ));
                }
                Ok(cast_to(a, to))
            }
            E::Floor { expr, field } | E::Ceil { expr, field } => {
                let floor = matches!(e, E::Floor { .. });
                let word = if floor { "FLOOR" } else { "CEIL" };
                let a = self.sub(expr)?;
                match field {
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) => {
                        match a.ty {
                            Ty::Int => Ok(a),
                            Ty::Float => Ok(Expr::new(
                                ExprKind::Call(
                                    if floor { Func::Floor } else { Func::Ceil },
                                    vec![a],
                                ),
                                Ty::Float,
                            )),
                            other => Err(self.error(
                                format!("{word} needs a number, not a {} value", ty_name(other)),
                                e,
                            )),
                        }
                    }
                    ast::CeilFloorKind::DateTimeField(unit) if floor => {
                        let unit = unit_of(unit)
                            .ok_or_else(|| self.unsupported(format!("FLOOR(… TO {unit})"), e))?;
                        if a.ty != Ty::Time {
                            return Err(self.error(
                                format!(
                                    "FLOOR(… TO {unit:?}) needs a TIMESTAMP, not a {} value",
                                    ty_name(a.ty)
                                ),
                                e,
                            ));
                        }
                        Ok(Expr::new(
                            ExprKind::Call(Func::Step(unit.ms()), vec![a]),
                            Ty::Time,
                        ))
                    }
                    _ => Err(self.unsupported(format!("This form of {word}"), e)),
                }
            }
            E::Function(f) => self.function(f, e),
            E::Interval(_) => {
                Err(self.unsupported("An INTERVAL outside STEP, a window or RANGE", e))
            }
            E::TypedString(ts) => {
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s,
                    _ => return Err(self.unsupported("This literal", e)),
                };
                match SqlType::of_ast(&ts.data_type) {
                    Ok(SqlType::Timestamp) => crate::decode::parse_timestamp(text.trim())
                        .map(|t| Expr::literal(Literal::Time(t), Ty::Time))
                        .ok_or_else(|| self.error(format!("{text:?} is not a TIMESTAMP"), e)),
                    _ => Err(self.unsupported(format!("A {} literal", ts.data_type), e)),
                }
            }
            E::Subquery(_) | E::Exists { .. } | E::In { .. } => {
                Err(self.unsupported("A subquery in an expression", e))
            }
            other => Err(self.unsupported(format!("The expression {other}"), e)),
        }
    }

    fn column(&mut self, parts: &[ast::Ident], e: &ast::Expr) -> Result<Expr, SqlError> {
        let found = self.rows.lookup(parts)?;
        let ty = ty_of(found.ty).ok_or_else(|| {
            self.unsupported(format!("Using a {} column in an expression", found.ty), e)
        })?;
        Ok(Expr::column(found.index, ty))
    }

    fn value(&self, v: &ast::Value, e: &ast::Expr) -> Result<Expr, SqlError> {
        match v {
            ast::Value::Number(text, _) => {
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Expr::literal(Literal::Int(i), Ty::Int))
                } else {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Ok(Expr::literal(Literal::Float(f), Ty::Float)),
                        _ => Err(self.error(format!("{text} is out of range"), e)),
                    }
                }
            }
            ast::Value::SingleQuotedString(s) => {
                Ok(Expr::literal(Literal::Text(s.clone()), Ty::Text))
            }
            ast::Value::Boolean(b) => Ok(Expr::literal(Literal::Bool(*b), Ty::Bool)),
            ast::Value::Null => Ok(Expr::literal(Literal::Null, Ty::Text)),
            other => Err(self.unsupported(format!("The literal {other}"), e)),
        }
    }

    /// Both sides in one type: a NULL takes the other's, an integer next to
    /// a DOUBLE becomes one, a text literal next to a TIMESTAMP is read as one.
    fn unify(&self, a: Expr, b: Expr, e: &ast::Expr, what: &str) -> Result<(Expr, Expr), SqlError> {
        if is_null(&a) {
            let ty = b.ty;
            return Ok((cast_to(a, ty), b));
        }
        if is_null(&b) {
            let ty = a.ty;
            return Ok((a, cast_to(b, ty)));
        }
        match (a.ty, b.ty) {
            (x, y) if x == y => Ok((a, b)),
            (Ty::Int, Ty::Float) => Ok((cast_to(a, Ty::Float), b)),
            (Ty::Float, Ty::Int) => Ok((a, cast_to(b, Ty::Float))),
            (Ty::Time, Ty::Text) if matches!(b.kind, ExprKind::Literal(_)) => {
                let b = self.time_literal(b, e)?;
                Ok((a, b))
            }
            (Ty::Text, Ty::Time) if matches!(a.kind, ExprKind::Literal(_)) => {
                let a = self.time_literal(a, e)?;
                Ok((a, b))
            }
            (x, y) => Err(self.error(
                format!(
                    "Cannot {what} a {} value and a {} value",
                    ty_name(x),
                    ty_name(y)
                ),
                e,
            )),
        }
    }

    fn time_literal(&self, text: Expr, e: &ast::Expr) -> Result<Expr, SqlError> {
        match &text.kind {
            ExprKind::Literal(Literal::Text(s)) => crate::decode::parse_timestamp(s.trim())
                .map(|t| Expr::literal(Literal::Time(t), Ty::Time))
                .ok_or_else(|| self.error(format!("{s:?} is not a TIMESTAMP"), e)),
            _ => Ok(text),
        }
    }

    fn compare(&self, op: CmpOp, a: Expr, b: Expr, e: &ast::Expr) -> Result<Expr, SqlError> {
        let (a, b) = self.unify(a, b, e, "compare")?;
        Ok(Expr::new(
            ExprKind::Compare(op, Box::new(a), Box::new(b)),
            Ty::Bool,
        ))
    }

    fn binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        e: &ast::Expr,
    ) -> Result<Expr, SqlError> {
        use ast::BinaryOperator as B;
        // `t ± INTERVAL 'n' unit` and `INTERVAL 'n' unit + t`: ms added to
        // the TIMESTAMP (an overflow is the row's error).
        let interval = match (left, op, right) {
            (t, B::Plus | B::Minus, ast::Expr::Interval(i)) => Some((t, i, *op == B::Minus)),
            (ast::Expr::Interval(i), B::Plus, t) => Some((t, i, false)),
            (ast::Expr::Interval(_), _, _) | (_, _, ast::Expr::Interval(_)) => {
                return Err(self.unsupported(
                    "This INTERVAL arithmetic (write t + INTERVAL or t - INTERVAL)",
                    e,
                ));
            }
            _ => None,
        };
        if let Some((t, i, minus)) = interval {
            let ms = self.interval_ms(i, e)?;
            let t = self.sub(t)?;
            if t.ty != Ty::Time {
                return Err(self.error(
                    format!(
                        "An INTERVAL is added to a TIMESTAMP, not a {} value",
                        ty_name(t.ty)
                    ),
                    e,
                ));
            }
            let millis = cast_to(t, Ty::Int);
            let op = if minus { ArithOp::Sub } else { ArithOp::Add };
            let sum = Expr::new(
                ExprKind::Arith(
                    op,
                    Box::new(millis),
                    Box::new(Expr::literal(Literal::Int(ms), Ty::Int)),
                ),
                Ty::Int,
            );
            return Ok(cast_to(sum, Ty::Time));
        }
        let (a, b) = (self.sub(left)?, self.sub(right)?);
        let arith = |op| -> Result<Expr, SqlError> {
            let (a, b) = self.unify(a.clone(), b.clone(), e, "do arithmetic on")?;
            if a.ty == Ty::Time {
                return Err(self.unsupported("TIMESTAMP arithmetic", e));
            }
            if !a.ty.is_numeric() {
                return Err(self.error(
                    format!("Arithmetic needs numbers, not {} values", ty_name(a.ty)),
                    e,
                ));
            }
            let ty = a.ty;
            Ok(Expr::new(ExprKind::Arith(op, Box::new(a), Box::new(b)), ty))
        };
        match op {
            B::Plus => arith(ArithOp::Add),
            B::Minus => arith(ArithOp::Sub),
            B::Multiply => arith(ArithOp::Mul),
            B::Divide => arith(ArithOp::Div),
            B::Modulo => arith(ArithOp::Mod),
            B::Eq => self.compare(CmpOp::Eq, a, b, e),
            B::NotEq => self.compare(CmpOp::NotEq, a, b, e),
            B::Lt => self.compare(CmpOp::Lt, a, b, e),
            B::LtEq => self.compare(CmpOp::LtEq, a, b, e),
            B::Gt => self.compare(CmpOp::Gt, a, b, e),
            B::GtEq => self.compare(CmpOp::GtEq, a, b, e),
            B::And | B::Or => {
                for side in [&a, &b] {
                    if side.ty != Ty::Bool && !is_null(side) {
                        return Err(self.error(
                            format!("{op} needs BOOLEANs, not a {} value", ty_name(side.ty)),
                            e,
                        ));
                    }
                }
                let (a, b) = (cast_to(a, Ty::Bool), cast_to(b, Ty::Bool));
                let kind = match op {
                    B::And => ExprKind::And(Box::new(a), Box::new(b)),
                    _ => ExprKind::Or(Box::new(a), Box::new(b)),
                };
                Ok(Expr::new(kind, Ty::Bool))
            }
            B::StringConcat => {
                let (a, b) = (cast_to(a, Ty::Text), cast_to(b, Ty::Text));
                Ok(Expr::new(
                    ExprKind::Concat(Box::new(a), Box::new(b)),
                    Ty::Text,
                ))
            }
            other => Err(self.unsupported(format!("The operator {other}"), e)),
        }
    }

    fn case(
        &mut self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        e: &ast::Expr,
    ) -> Result<Expr, SqlError> {
        let operand = operand.map(|o| self.sub(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        for c in conditions {
            let cond = self.sub(&c.condition)?;
            let cond = match &operand {
                Some(x) => self.compare(CmpOp::Eq, x.clone(), cond, e)?,
                None if cond.ty == Ty::Bool || is_null(&cond) => cast_to(cond, Ty::Bool),
                None => {
                    return Err(self.error(
                        format!("WHEN needs a BOOLEAN, not a {} value", ty_name(cond.ty)),
                        &c.condition,
                    ));
                }
            };
            whens.push((cond, self.sub(&c.result)?));
        }
        let otherwise = else_result.map(|x| self.sub(x)).transpose()?;
        // The result type: the first value that is not a NULL literal;
        // integers widen to DOUBLE when any value is one.
        let values = whens.iter().map(|(_, v)| v).chain(otherwise.iter());
        let typed: Vec<Ty> = values.filter(|v| !is_null(v)).map(|v| v.ty).collect();
        let ty = match typed.as_slice() {
            [] => Ty::Text,
            [first, ..] if typed.iter().all(|t| t == first) => *first,
            _ if typed.iter().all(|t| t.is_numeric()) => Ty::Float,
            _ => {
                return Err(self.error("CASE's values have different types (CAST them to one)", e));
            }
        };
        Ok(Expr::new(
            ExprKind::Case {
                whens: whens
                    .into_iter()
                    .map(|(c, v)| (c, cast_to(v, ty)))
                    .collect(),
                otherwise: otherwise.map(|o| Box::new(cast_to(o, ty))),
            },
            ty,
        ))
    }

    fn function(&mut self, f: &ast::Function, e: &ast::Expr) -> Result<Expr, SqlError> {
        let name = function_name(f);
        if let Some(func) = aggregate_of(&name)
            && f.over.is_some()
            && self.windowed.is_some()
        {
            return self.window_aggregate(Some(func), f);
        }
        if is_analytic(&name) {
            return match (&f.over, self.windowed.is_some()) {
                (Some(_), true) => self.window_aggregate(None, f),
                (Some(_), false) if self.grouping.is_some() => Err(self.unsupported(
                    format!("{name} … OVER (a sliding window) in a GROUP BY query"),
                    e,
                )),
                (Some(_), false) => {
                    Err(self.unsupported(format!("{name} … OVER (a sliding window) here"), e))
                }
                (None, _) => Err(self.error(
                    format!(
                        "{name} needs a sliding window: {name}(…) OVER w, with WINDOW w AS (PARTITION BY … RANGE INTERVAL 'n' SECOND PRECEDING | ROWS n PRECEDING)"
                    ),
                    e,
                )),
            };
        }
        if aggregate_of(&name).is_some() {
            return Err(match f.over {
                Some(_) => self.unsupported(format!("{name} … OVER (a sliding window)"), e),
                None => self.error(
                    format!(
                        "{name} is an aggregate: the query needs a GROUP BY with a ROWTIME window"
                    ),
                    e,
                ),
            });
        }
        if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
            return Err(self.unsupported(format!("This form of {name}"), e));
        }
        let list = match &f.args {
            ast::FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                &list.args
            }
            ast::FunctionArguments::None => &Vec::new(),
            _ => return Err(self.unsupported(format!("This form of {name}"), e)),
        };
        let mut args: Vec<&ast::Expr> = Vec::with_capacity(list.len());
        for arg in list {
            match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => args.push(x),
                _ => return Err(self.unsupported(format!("This argument of {name}"), e)),
            }
        }
        let arity = |n: usize| -> Result<(), SqlError> {
            match args.len() == n {
                true => Ok(()),
                false => Err(self.error(
                    format!(
                        "{name} takes {n} argument{}, not {}",
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                    e,
                )),
            }
        };
        match name.as_str() {
            "ABS" => {
                arity(1)?;
                let a = self.sub(args[0])?;
                if !a.ty.is_numeric() {
                    return Err(self.error(
                        format!("ABS needs a number, not a {} value", ty_name(a.ty)),
                        e,
                    ));
                }
                let ty = a.ty;
                Ok(Expr::new(ExprKind::Call(Func::Abs, vec![a]), ty))
            }
            "UPPER" | "LOWER" | "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
                arity(1)?;
                let a = self.sub(args[0])?;
                if a.ty != Ty::Text && !is_null(&a) {
                    return Err(self.error(
                        format!("{name} needs a VARCHAR, not a {} value", ty_name(a.ty)),
                        e,
                    ));
                }
                let a = cast_to(a, Ty::Text);
                Ok(match name.as_str() {
                    "UPPER" => Expr::new(ExprKind::Call(Func::Upper, vec![a]), Ty::Text),
                    "LOWER" => Expr::new(ExprKind::Call(Func::Lower, vec![a]), Ty::Text),
                    _ => Expr::new(ExprKind::Call(Func::CharLength, vec![a]), Ty::Int),
                })
            }
            "COALESCE" => {
                if args.is_empty() {
                    return Err(self.error("COALESCE needs at least one argument", e));
                }
                let mut values = Vec::with_capacity(args.len());
                for a in &args {
                    values.push(self.sub(a)?);
                }
                let typed: Vec<Ty> = values
                    .iter()
                    .filter(|v| !is_null(v))
                    .map(|v| v.ty)
                    .collect();
                let ty = match typed.as_slice() {
                    [] => Ty::Text,
                    [first, ..] if typed.iter().all(|t| t == first) => *first,
                    _ if typed.iter().all(|t| t.is_numeric()) => Ty::Float,
                    _ => {
                        return Err(self.error(
                            "COALESCE's arguments have different types (CAST them to one)",
                            e,
                        ));
                    }
                };
                let values = values.into_iter().map(|v| cast_to(v, ty)).collect();
                Ok(Expr::new(ExprKind::Call(Func::Coalesce, values), ty))
            }
            "NULLIF" => {
                arity(2)?;
                let (a, b) = (self.sub(args[0])?, self.sub(args[1])?);
                let (a, b) = self.unify(a, b, e, "compare")?;
                let ty = a.ty;
                let eq = Expr::new(
                    ExprKind::Compare(CmpOp::Eq, Box::new(a.clone()), Box::new(b)),
                    Ty::Bool,
                );
                Ok(Expr::new(
                    ExprKind::Case {
                        whens: vec![(eq, Expr::literal(Literal::Null, ty))],
                        otherwise: Some(Box::new(a)),
                    },
                    ty,
                ))
            }
            "MOD" => {
                arity(2)?;
                let (a, b) = (self.sub(args[0])?, self.sub(args[1])?);
                let (a, b) = self.unify(a, b, e, "take MOD of")?;
                if !a.ty.is_numeric() {
                    return Err(self.error(
                        format!("MOD needs numbers, not {} values", ty_name(a.ty)),
                        e,
                    ));
                }
                let ty = a.ty;
                Ok(Expr::new(
                    ExprKind::Arith(ArithOp::Mod, Box::new(a), Box::new(b)),
                    ty,
                ))
            }
            "STEP" => {
                arity(2)?;
                let a = self.sub(args[0])?;
                let width = self.step_width(args[1], a.ty, e)?;
                let ty = a.ty;
                Ok(Expr::new(ExprKind::Call(Func::Step(width), vec![a]), ty))
            }
            _ => Err(self.unsupported(format!("Function {name}"), e)),
        }
    }

    /// `STEP`'s width: an INTERVAL in ms for a TIMESTAMP, an integer for an
    /// integer; more than zero.
    fn step_width(&self, width: &ast::Expr, of: Ty, e: &ast::Expr) -> Result<i64, SqlError> {
        let ms = match (of, width) {
            (Ty::Time, ast::Expr::Interval(interval)) => self.interval_ms(interval, width)?,
            (Ty::Int, ast::Expr::Value(v)) => match &v.value {
                ast::Value::Number(n, _) => n.parse::<i64>().map_err(|_| {
                    self.error(format!("STEP's width {n} is not an integer"), width)
                })?,
                _ => return Err(self.error("STEP's width must be an integer", width)),
            },
            (Ty::Time, _) => {
                return Err(self.error(
                    "STEP of a TIMESTAMP takes BY INTERVAL 'n' SECOND|MINUTE|HOUR|DAY",
                    width,
                ));
            }
            (Ty::Int, _) => return Err(self.error("STEP's width must be an integer", width)),
            (other, _) => {
                return Err(self.error(
                    format!(
                        "STEP needs a TIMESTAMP or an integer, not a {} value",
                        ty_name(other)
                    ),
                    e,
                ));
            }
        };
        if ms <= 0 {
            return Err(self.error("STEP's width must be more than zero", width));
        }
        Ok(ms)
    }

    /// `INTERVAL 'n' unit` in ms.
    pub(crate) fn interval_ms(
        &self,
        interval: &ast::Interval,
        at: &ast::Expr,
    ) -> Result<i64, SqlError> {
        let form = "INTERVAL 'n' SECOND|MINUTE|HOUR|DAY";
        if interval.last_field.is_some() || interval.fractional_seconds_precision.is_some() {
            return Err(self.unsupported(format!("This INTERVAL (write {form})"), at));
        }
        let unit = interval
            .leading_field
            .as_ref()
            .and_then(unit_of)
            .ok_or_else(|| self.unsupported(format!("This INTERVAL (write {form})"), at))?;
        let n = match interval.value.as_ref() {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => {
                    s.trim().parse::<i64>().ok()
                }
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| self.error(format!("An INTERVAL needs a whole number: {form}"), at))?;
        n.checked_mul(unit.ms())
            .ok_or_else(|| self.error("The INTERVAL is too long", at))
    }
}
