//! The planner: a parsed [`Script`] and the application's [`Catalog`] into
//! an [`AppPlan`] (docs/analytics-design.md §5.2), refusing what cannot run
//! (§3.6) with the construct and its position. Per pump: the FROM stream
//! (an input or a stream of the code) and its JOIN, WHERE, the select list
//! and the pump's kind, and how the select items fill the target's columns;
//! then the pumps in an order where each comes after those feeding its
//! input. Expressions are resolved and typed by `super::resolve`.
//!
//! Planned: per-row pumps (filter and project), with a streaming `ORDER BY`
//! led by a ROWTIME step (`FLOOR(s.ROWTIME TO unit)`, `STEP(s.ROWTIME BY
//! …)`); tumbling windows (GROUP BY with one ROWTIME window, HAVING);
//! `WINDOWED BY STAGGER (PARTITION BY … RANGE INTERVAL …)`; sliding windows
//! (aggregates, LAG and EXP_AVG `OVER` a window named in `WINDOW` or written
//! inline, with a bounded frame: `RANGE INTERVAL … PRECEDING` or `ROWS n
//! PRECEDING`); `TOP_K_ITEMS_TUMBLING` and `COUNT_DISTINCT_ITEMS_TUMBLING`
//! over a `CURSOR(SELECT STREAM * FROM s [WHERE …])`; one `[INNER | LEFT]
//! JOIN` of a reference table `ON` equalities joined by AND.
//!
//! Refused here, by name: `WITH`, `LIMIT` / `OFFSET` / `FETCH`, set
//! operations (`UNION`, …), `SELECT DISTINCT`, reading several streams,
//! sub-selects in FROM, other table functions (`RANDOM_CUT_FOREST`,
//! `HOTSPOTS`, …), a second JOIN, RIGHT, FULL and CROSS joins, joins of
//! streams (stream-to-stream) or without ON, `ORDER BY` of a windowed query
//! or not led by a ROWTIME step, a window defined as another window,
//! writing ROWTIME. `resolve` refuses, in expressions: LAG and EXP_AVG
//! outside a sliding window's select list, an aggregate without its window,
//! unbounded or non-ROWTIME window frames, subqueries, and the functions
//! and operators not served.

use std::collections::{HashMap, VecDeque};

use sqlparser::ast::{self, Spanned};

use super::resolve::{
    Found, Grouping, Resolver, RowScope, Windowed, has_aggregate, has_over, ty_name, ty_of,
};
use super::{
    AppPlan, Catalog, ColumnPlan, Item, JoinPlan, PumpKind, PumpPlan, Sliding, Stagger, StreamKind,
    StreamPlan, TopItems, Tumbling,
};
use crate::expr::{Expr, ExprKind, Func, Literal, Ty};
use crate::limits::ERROR_STREAM;
use crate::schema::SqlType;
use crate::sql::{Name, Pos, PumpDef, Script, SqlError};

/// Plans `script` against the application's inputs and reference tables.
/// Deep expressions recurse: call it on the parser's stack
/// (`sql::on_parser_stack`), as the code check does.
pub fn plan(script: &Script, catalog: &Catalog) -> Result<AppPlan, SqlError> {
    let mut streams: Vec<StreamPlan> = catalog
        .inputs
        .iter()
        .map(|(name, columns)| StreamPlan {
            name: name.clone(),
            kind: StreamKind::Input,
            columns: columns.clone(),
        })
        .collect();
    for s in &script.streams {
        streams.push(StreamPlan {
            name: s.name.text.clone(),
            kind: StreamKind::Code,
            columns: s
                .columns
                .iter()
                .map(|c| ColumnPlan {
                    name: c.name.text.clone(),
                    ty: c.ty,
                    not_null: c.not_null,
                })
                .collect(),
        });
    }
    let by_name: HashMap<&str, usize> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let planner = Planner {
        streams: &streams,
        by_name: &by_name,
        catalog,
    };
    let mut pumps = Vec::with_capacity(script.pumps.len());
    for pump in &script.pumps {
        pumps.push(planner.pump(pump)?);
    }
    let pumps = in_flow_order(pumps, streams.len());
    Ok(AppPlan { streams, pumps })
}

/// The pumps ordered so that every pump comes after the pumps writing its
/// input (Kahn's order; the parser refused cycles, and a pump left over by
/// one would keep its place at the end).
fn in_flow_order(pumps: Vec<PumpPlan>, streams: usize) -> Vec<PumpPlan> {
    // A join reads a second stream.
    let inputs = |p: &PumpPlan| -> Vec<usize> {
        match &p.kind {
            PumpKind::StreamJoin(j) if j.right != p.input => vec![p.input, j.right],
            _ => vec![p.input],
        }
    };
    let mut writers = vec![0usize; streams];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); streams];
    for (i, p) in pumps.iter().enumerate() {
        writers[p.target] += 1;
        for s in inputs(p) {
            readers[s].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..pumps.len())
        .filter(|&i| inputs(&pumps[i]).iter().all(|&s| writers[s] == 0))
        .collect();
    let mut order = Vec::with_capacity(pumps.len());
    let mut placed = vec![false; pumps.len()];
    let mut queued = vec![false; pumps.len()];
    for &i in &ready {
        queued[i] = true;
    }
    while let Some(i) = ready.pop_front() {
        placed[i] = true;
        order.push(i);
        let target = pumps[i].target;
        writers[target] -= 1;
        if writers[target] == 0 {
            for &r in &readers[target] {
                if !queued[r] && inputs(&pumps[r]).iter().all(|&s| writers[s] == 0) {
                    queued[r] = true;
                    ready.push_back(r);
                }
            }
        }
    }
    order.extend((0..pumps.len()).filter(|&i| !placed[i]));
    let mut slots: Vec<Option<PumpPlan>> = pumps.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// What a `*` select item expands to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wildcard {
    All,
    Stream,
    Table,
}

/// A grouped query's select items, where each is written, and its HAVING.
type GroupedSelect = (Vec<Item>, Vec<Pos>, Option<Expr>);

struct Planner<'a> {
    streams: &'a [StreamPlan],
    by_name: &'a HashMap<&'a str, usize>,
    catalog: &'a Catalog,
}

fn pos_of(node: &impl Spanned, fallback: Pos) -> Pos {
    let start = node.span().start;
    if start.line == 0 {
        fallback
    } else {
        Pos::of(start)
    }
}

fn unsupported(what: impl std::fmt::Display, at: Pos) -> SqlError {
    SqlError::at(format!("{what} is not supported"), at)
}

impl Planner<'_> {
    fn pump(&self, pump: &PumpDef) -> Result<PumpPlan, SqlError> {
        let query = &pump.query;
        let at = pump.query_at;
        if let Some(with) = &query.with {
            return Err(unsupported("WITH", pos_of(&with.with_token.0, at)));
        }
        if query.limit_clause.is_some() || query.fetch.is_some() {
            return Err(unsupported("LIMIT, OFFSET or FETCH on a stream", at));
        }
        if !query.locks.is_empty()
            || query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            return Err(unsupported("This clause of a query", at));
        }
        let select = match query.body.as_ref() {
            ast::SetExpr::Select(select) => select,
            ast::SetExpr::SetOperation { op, .. } => {
                return Err(unsupported(format!("{op} of queries"), at));
            }
            _ => return Err(unsupported("This query form", at)),
        };
        let select_at = Pos::of(select.select_token.0.span.start);
        self.refuse_clauses(select, select_at)?;
        if let [from] = select.from.as_slice()
            && from.joins.is_empty()
            && let ast::TableFactor::TableFunction {
                expr: ast::Expr::Function(f),
                alias,
            } = &from.relation
        {
            return self.table_function(pump, select, f, alias.as_ref(), select_at);
        }
        let (input, alias) = self.from(select, select_at, true)?;
        let input_stream = &self.streams[input];
        let (table, join, joined_stream) = match select.from[0].joins.first() {
            Some(j) => {
                let (scope, plan, stream) = self.join(j, input_stream, alias.clone(), select_at)?;
                (
                    Some(scope),
                    Some(plan),
                    stream.map(|s| (s, pos_of(&j.relation, select_at))),
                )
            }
            None => (None, None, None),
        };
        // The windows of a stream-to-stream join (named ones are the
        // join's, not a sliding window's).
        let join_windows = match joined_stream {
            Some((_, right_at)) => {
                let left_at = pos_of(&select.from[0].relation, select_at);
                Some((
                    self.join_window(pump, select, input_stream, left_at)?,
                    self.join_window(pump, select, input_stream, right_at)?,
                ))
            }
            None => {
                if let Some((at, _)) = pump.marks.join_windows.first() {
                    return Err(unsupported("A window on a stream that is not joined", *at));
                }
                None
            }
        };
        let rows = RowScope {
            stream: input_stream,
            alias,
            table,
        };
        let filter = select
            .selection
            .as_ref()
            .map(|e| condition("WHERE", e, &rows, None, select_at))
            .transpose()?;
        if select.projection.is_empty() {
            return Err(SqlError::at("A SELECT needs at least one item", select_at));
        }
        let group_by = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs,
            _ => return Err(unsupported("This GROUP BY form", select_at)),
        };
        let (kind, items_at) = if group_by.is_empty() {
            if let Some(having) = &select.having {
                return Err(SqlError::at(
                    "HAVING needs a GROUP BY",
                    pos_of(having, select_at),
                ));
            }
            let sliding = (!select.named_window.is_empty() && join_windows.is_none())
                || select.projection.iter().any(|i| match i {
                    ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. } => has_over(e),
                    _ => false,
                });
            if sliding {
                self.sliding(select, &rows, select_at)?
            } else {
                let (items, at) = self.items(select, &rows, None, None, select_at)?;
                (PumpKind::Map { items }, at)
            }
        } else {
            self.tumbling(pump, select, &rows, group_by, select_at)?
        };
        let (kind, join) = match (joined_stream, join_windows, join, kind) {
            (Some((right, _)), Some((left_w, right_w)), Some(j), PumpKind::Map { items }) => (
                PumpKind::StreamJoin(crate::plan::StreamJoin {
                    right,
                    left_window_ms: left_w,
                    right_window_ms: right_w,
                    left_outer: j.left,
                    keys: j.keys,
                    items,
                }),
                None,
            ),
            (Some((_, right_at)), ..) => {
                return Err(unsupported(
                    "A stream-to-stream join with GROUP BY or windowed aggregates",
                    right_at,
                ));
            }
            (None, _, join, kind) => (kind, join),
        };
        let kind = match (&query.order_by, kind) {
            (None, kind) => kind,
            (Some(order_by), PumpKind::Map { items }) => {
                self.sort(order_by, &rows, items, select_at)?
            }
            (Some(order_by), _) => {
                return Err(unsupported(
                    "ORDER BY of a windowed query",
                    pos_of(order_by, select_at),
                ));
            }
        };
        let target = self.by_name[pump.target.text.as_str()];
        let items = match &kind {
            PumpKind::Map { items } => items,
            PumpKind::Sort(t) => &t.items,
            PumpKind::Tumbling(t) => &t.items,
            PumpKind::Stagger(t) => &t.items,
            PumpKind::Sliding(t) => &t.items,
            PumpKind::StreamJoin(t) => &t.items,
        };
        let fills = self.fills(pump, target, items, &items_at)?;
        Ok(PumpPlan {
            name: pump.name.text.clone(),
            input,
            target,
            filter,
            kind,
            fills,
            join,
        })
    }

    /// The RANGE in ms of the window the stream named at `at` is joined
    /// over (0, CURRENT ROW, without one).
    fn join_window(
        &self,
        pump: &PumpDef,
        s: &ast::Select,
        stream: &StreamPlan,
        at: Pos,
    ) -> Result<i64, SqlError> {
        use crate::sql::JoinWindow;
        let own = RowScope {
            stream,
            alias: None,
            table: None,
        };
        let named = |name: &str| -> Result<i64, SqlError> {
            let spec = s
                .named_window
                .iter()
                .find(|w| Name::of_ident(&w.0).text == name);
            let Some(w) = spec else {
                return Err(SqlError::at(
                    format!("Window {} is not defined", quote(name)),
                    at,
                ));
            };
            let w_at = Pos::of(w.0.span.start);
            let ast::NamedWindowExpr::WindowSpec(spec) = &w.1 else {
                return Err(unsupported("A window defined as another window", w_at));
            };
            let form = "RANGE INTERVAL 'n' unit PRECEDING";
            if !spec.partition_by.is_empty() || !spec.order_by.is_empty() {
                return Err(unsupported(
                    format!("PARTITION BY or ORDER BY in a joined stream's window (write {form})"),
                    w_at,
                ));
            }
            match &spec.window_frame {
                Some(ast::WindowFrame {
                    units: ast::WindowFrameUnits::Range,
                    start_bound: ast::WindowFrameBound::Preceding(Some(e)),
                    end_bound: None,
                }) => match e.as_ref() {
                    ast::Expr::Interval(i) => {
                        let r = Resolver {
                            rows: &own,
                            grouping: None,
                            windowed: None,
                            fallback: w_at,
                        };
                        r.interval_ms(i, e)
                    }
                    _ => Err(unsupported(format!("This window (write {form})"), w_at)),
                },
                Some(ast::WindowFrame {
                    units: ast::WindowFrameUnits::Range,
                    start_bound: ast::WindowFrameBound::CurrentRow,
                    end_bound: None,
                }) => Ok(0),
                _ => Err(unsupported(
                    format!("This window of a joined stream (write {form})"),
                    w_at,
                )),
            }
        };
        match pump.join_window(at) {
            None => Ok(0),
            Some(JoinWindow::Range(ms)) => Ok(*ms),
            Some(JoinWindow::Named(name)) => named(name),
            Some(JoinWindow::Refused(what, at)) => Err(unsupported(what, *at)),
        }
    }

    /// Refuses the SELECT clauses no slice serves.
    fn refuse_clauses(&self, s: &ast::Select, at: Pos) -> Result<(), SqlError> {
        if s.distinct.is_some() {
            return Err(unsupported("SELECT DISTINCT on a stream", at));
        }
        if s.top.is_some()
            || s.into.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
            || s.exclude.is_some()
            || s.select_modifiers.is_some()
            || !s.optimizer_hints.is_empty()
        {
            return Err(unsupported("This SELECT clause", at));
        }
        Ok(())
    }

    /// The one stream the SELECT reads, and its alias.
    fn from(
        &self,
        s: &ast::Select,
        at: Pos,
        join_allowed: bool,
    ) -> Result<(usize, Option<String>), SqlError> {
        let from = match s.from.as_slice() {
            [one] => one,
            [] => return Err(SqlError::at("A pump's SELECT needs a FROM stream", at)),
            [_, second, ..] => {
                return Err(unsupported(
                    "Reading several streams (FROM a, b)",
                    pos_of(&second.relation, at),
                ));
            }
        };
        match from.joins.as_slice() {
            [] => {}
            [_] if join_allowed => {}
            [join, ..] if !join_allowed => {
                return Err(unsupported("A JOIN here", pos_of(&join.relation, at)));
            }
            [join] => {
                return Err(unsupported("A JOIN here", pos_of(&join.relation, at)));
            }
            [_, second, ..] => {
                return Err(unsupported(
                    "More than one JOIN",
                    pos_of(&second.relation, at),
                ));
            }
        }
        let (name, alias) = match &from.relation {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                with_hints,
                version: None,
                with_ordinality: false,
                partitions,
                json_path: None,
                ..
            } if with_hints.is_empty() && partitions.is_empty() => (name, alias),
            ast::TableFactor::TableFunction { .. } | ast::TableFactor::Function { .. } => {
                return Err(unsupported(
                    "FROM TABLE(…) (TOP_K_ITEMS_TUMBLING and the other table functions)",
                    pos_of(&from.relation, at),
                ));
            }
            ast::TableFactor::Table { args: Some(_), .. } => {
                return Err(unsupported(
                    "FROM TABLE(…) (TOP_K_ITEMS_TUMBLING and the other table functions)",
                    pos_of(&from.relation, at),
                ));
            }
            ast::TableFactor::Derived { .. } => {
                return Err(unsupported(
                    "A sub-select in FROM",
                    pos_of(&from.relation, at),
                ));
            }
            other => {
                return Err(unsupported("This FROM form", pos_of(other, at)));
            }
        };
        let name_at = pos_of(name, at);
        let ident = match name.0.as_slice() {
            [ast::ObjectNamePart::Identifier(ident)] => ident,
            _ => {
                return Err(SqlError::at(
                    format!("{name} is not a stream name (write one name, without a schema)"),
                    name_at,
                ));
            }
        };
        let stream = Name::of_ident(ident);
        let alias = match alias {
            Some(a) if !a.columns.is_empty() => {
                return Err(unsupported("Renaming columns in FROM … AS", name_at));
            }
            Some(a) => Some(Name::of_ident(&a.name).text),
            None => None,
        };
        if let Some(&i) = self.by_name.get(stream.text.as_str()) {
            return Ok((i, alias));
        }
        let why = if stream.text.eq_ignore_ascii_case(ERROR_STREAM) {
            format!("{stream} cannot be read by the code (it can only be an output)")
        } else if self
            .catalog
            .reference_tables
            .iter()
            .any(|(n, _)| *n == stream.text)
        {
            format!(
                "Reading the reference table {stream} in FROM is not supported (joins come in a later release)"
            )
        } else {
            let names: Vec<String> = self.streams.iter().map(|s| quote(&s.name)).collect();
            format!(
                "Stream {} not found (streams: {})",
                quote(&stream.text),
                names.join(", ")
            )
        };
        Err(SqlError::at(why, name_at))
    }

    /// The select list: items, and where each is written.
    fn items(
        &self,
        s: &ast::Select,
        rows: &RowScope<'_>,
        mut grouping: Option<&mut Grouping>,
        mut windowed: Option<&mut Windowed<'_>>,
        at: Pos,
    ) -> Result<(Vec<Item>, Vec<Pos>), SqlError> {
        let mut items = Vec::with_capacity(s.projection.len());
        let mut positions = Vec::with_capacity(s.projection.len());
        for item in &s.projection {
            let item_at = pos_of(item, at);
            match item {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    items.push(self.item(
                        e,
                        rows,
                        grouping.as_deref_mut(),
                        windowed.as_deref_mut(),
                        at,
                    )?);
                    positions.push(item_at);
                }
                ast::SelectItem::Wildcard(options)
                | ast::SelectItem::QualifiedWildcard(_, options)
                    if options.opt_exclude.is_none()
                        && options.opt_except.is_none()
                        && options.opt_replace.is_none()
                        && options.opt_rename.is_none()
                        && options.opt_ilike.is_none() =>
                {
                    // `*`: the stream's columns, then a joined table's;
                    // `s.*` or `t.*`: one of them.
                    let which = match item {
                        ast::SelectItem::QualifiedWildcard(kind, _) => {
                            self.wildcard_qualifier(kind, rows, item_at)?
                        }
                        _ => Wildcard::All,
                    };
                    let mut found: Vec<Found> = Vec::new();
                    if which != Wildcard::Table {
                        found.extend(
                            rows.stream
                                .columns
                                .iter()
                                .enumerate()
                                .map(|(i, c)| Found { index: i, ty: c.ty }),
                        );
                    }
                    if which != Wildcard::Stream
                        && let Some(t) = &rows.table
                    {
                        found.extend(t.columns.iter().enumerate().map(|(i, c)| Found {
                            index: t.base + i,
                            ty: c.ty,
                        }));
                    }
                    for f in found {
                        items.push(self.column_item(rows, f, grouping.as_deref(), item_at)?);
                        positions.push(item_at);
                    }
                }
                _ => return Err(unsupported("This select item", item_at)),
            }
        }
        Ok((items, positions))
    }

    /// Which relation `q.*` names.
    fn wildcard_qualifier(
        &self,
        kind: &ast::SelectItemQualifiedWildcardKind,
        rows: &RowScope<'_>,
        at: Pos,
    ) -> Result<Wildcard, SqlError> {
        if let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind
            && let [ast::ObjectNamePart::Identifier(q)] = name.0.as_slice()
        {
            let q = Name::of_ident(q).text;
            let stream = match &rows.alias {
                Some(alias) => q == *alias,
                None => q == rows.stream.name,
            };
            if stream {
                return Ok(Wildcard::Stream);
            }
            if let Some(t) = &rows.table
                && q == *t.alias.as_ref().unwrap_or(&t.name)
            {
                return Ok(Wildcard::Table);
            }
        }
        Err(SqlError::at(
            format!("{kind} does not name a stream or table this query reads"),
            at,
        ))
    }

    /// An item that is a bare column of the input.
    fn column_item(
        &self,
        rows: &RowScope<'_>,
        found: Found,
        grouping: Option<&Grouping>,
        at: Pos,
    ) -> Result<Item, SqlError> {
        let ty = ty_of(found.ty);
        match grouping {
            None => Ok(Item {
                // A type only copied keeps a placeholder evaluation type,
                // never evaluated: `fills` accepts it only for its own type.
                expr: Expr::column(found.index, ty.unwrap_or(Ty::Text)),
                column_type: Some(found.ty),
            }),
            Some(g) => {
                let ty = ty
                    .ok_or_else(|| unsupported(format!("Grouping by a {} column", found.ty), at))?;
                let expr = Expr::column(found.index, ty);
                match g.keys.iter().position(|k| *k == expr) {
                    Some(k) => Ok(Item {
                        expr: Expr::column(k, ty),
                        column_type: g.key_columns[k],
                    }),
                    None => Err(SqlError::at(
                        format!(
                            "Column {} is neither in the GROUP BY nor in an aggregate",
                            quote(rows.column_name(found.index))
                        ),
                        at,
                    )),
                }
            }
        }
    }

    fn item(
        &self,
        e: &ast::Expr,
        rows: &RowScope<'_>,
        grouping: Option<&mut Grouping>,
        windowed: Option<&mut Windowed<'_>>,
        at: Pos,
    ) -> Result<Item, SqlError> {
        if let ast::Expr::Identifier(ident) = e {
            let found = rows.lookup(std::slice::from_ref(ident))?;
            return self.column_item(rows, found, grouping.as_deref(), pos_of(e, at));
        }
        if let ast::Expr::CompoundIdentifier(parts) = e {
            let found = rows.lookup(parts)?;
            return self.column_item(rows, found, grouping.as_deref(), pos_of(e, at));
        }
        let mut r = Resolver {
            rows,
            grouping,
            windowed,
            fallback: at,
        };
        let expr = r.resolve(e)?;
        // A group key that is a bare column keeps its column's type.
        let column_type = match (&r.grouping, &expr.kind) {
            (Some(g), ExprKind::Column(k)) => g.key_columns.get(*k).copied().flatten(),
            _ => None,
        };
        Ok(Item { expr, column_type })
    }

    /// A tumbling window's plan, and where its select items are written.
    fn tumbling(
        &self,
        pump: &PumpDef,
        s: &ast::Select,
        rows: &RowScope<'_>,
        group_by: &[ast::Expr],
        at: Pos,
    ) -> Result<(PumpKind, Vec<Pos>), SqlError> {
        if let [ast::Expr::Function(f)] = group_by
            && pump.is_stagger(f)
        {
            return self.stagger(s, rows, f, at);
        }
        let rowtime = rows.stream.rowtime();
        let mut window: Option<(Expr, i64)> = None;
        let mut keys = Vec::new();
        let mut key_columns = Vec::new();
        for g in group_by {
            let g_at = pos_of(g, at);
            if let ast::Expr::Function(f) = g
                && pump.is_stagger(f)
            {
                return Err(unsupported("WINDOWED BY STAGGER", g_at));
            }
            if has_aggregate(g) {
                return Err(SqlError::at("GROUP BY of an aggregate", g_at));
            }
            let mut r = Resolver {
                rows,
                grouping: None,
                windowed: None,
                fallback: at,
            };
            let key = r.resolve(g)?;
            let width = match &key.kind {
                ExprKind::Call(Func::Step(w), args) if matches!(args.as_slice(), [Expr { kind: ExprKind::Column(c), .. }] if *c == rowtime) => {
                    Some(*w)
                }
                _ => None,
            };
            match (width, &window) {
                (Some(_), Some(_)) => {
                    return Err(SqlError::at(
                        "A GROUP BY may have one ROWTIME window, not two",
                        g_at,
                    ));
                }
                (Some(w), None) => window = Some((key, w)),
                (None, _) => {
                    let column = match g {
                        ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                            match &key.kind {
                                ExprKind::Column(i) => column_type(rows.stream, *i),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    keys.push(key);
                    key_columns.push(column);
                }
            }
        }
        let Some((window, width_ms)) = window else {
            return Err(SqlError::at(
                "A GROUP BY needs a ROWTIME window: STEP(<stream>.ROWTIME BY INTERVAL 'n' SECOND) or FLOOR(<stream>.ROWTIME TO MINUTE) (without one no row is ever emitted)",
                pos_of(&group_by[0], at),
            ));
        };
        let mut grouping = Grouping {
            keys: std::iter::once(window).chain(keys).collect(),
            key_columns: std::iter::once(None).chain(key_columns).collect(),
            aggs: Vec::new(),
        };
        let (items, positions, having) = self.grouped_select(s, rows, &mut grouping, at)?;
        let Grouping { keys, aggs, .. } = grouping;
        Ok((
            PumpKind::Tumbling(Tumbling {
                width_ms,
                rowtime,
                keys: keys.into_iter().skip(1).collect(),
                aggs,
                items,
                having,
                top: None,
            }),
            positions,
        ))
    }

    /// `SELECT STREAM … FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(…), 'column',
    /// K, seconds))`, the cursor `SELECT STREAM * FROM s [WHERE …]`, or
    /// `COUNT_DISTINCT_ITEMS_TUMBLING(cursor, 'column', seconds)`: a
    /// tumbling count per value of the column (exact: **Riffle**; AWS
    /// approximates), then the top K or the number of values. The outer
    /// select list reads the function's columns (`column`,
    /// `MOST_FREQUENT_VALUES` / `NUMBER_OF_DISTINCT_ITEMS`) and ROWTIME (the
    /// window's end).
    fn table_function(
        &self,
        pump: &PumpDef,
        s: &ast::Select,
        f: &ast::Function,
        alias: Option<&ast::TableAlias>,
        at: Pos,
    ) -> Result<PumpPlan, SqlError> {
        let f_at = pos_of(f, at);
        let name = crate::plan::resolve::function_name(f);
        let top = match name.as_str() {
            "TOP_K_ITEMS_TUMBLING" => true,
            "COUNT_DISTINCT_ITEMS_TUMBLING" => false,
            other => {
                return Err(unsupported(format!("FROM TABLE({other}(…))"), f_at));
            }
        };
        if s.selection.is_some() || s.having.is_some() {
            return Err(unsupported(
                format!("WHERE or HAVING over {name} (filter inside its CURSOR)"),
                at,
            ));
        }
        if !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty()) {
            return Err(unsupported(format!("GROUP BY over {name}"), at));
        }
        let args = unnamed_args(f);
        let arity = if top { 4 } else { 3 };
        let form = if top {
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM s), 'column', K, seconds)"
        } else {
            "COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM s), 'column', seconds)"
        };
        if args.len() != arity {
            return Err(SqlError::at(format!("{name} is written {form}"), f_at));
        }
        // The cursor: the input's rows, maybe filtered.
        let inner = match args[0] {
            ast::Expr::Function(c) if crate::plan::resolve::function_name(c) == "CURSOR" => {
                match &c.args {
                    ast::FunctionArguments::List(l) => match l.args.as_slice() {
                        [
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                                ast::Expr::Subquery(q),
                            )),
                        ] => q,
                        _ => return Err(SqlError::at(format!("{name} is written {form}"), f_at)),
                    },
                    _ => return Err(SqlError::at(format!("{name} is written {form}"), f_at)),
                }
            }
            _ => return Err(SqlError::at(format!("{name} is written {form}"), f_at)),
        };
        let ast::SetExpr::Select(cursor) = inner.body.as_ref() else {
            return Err(unsupported("This CURSOR query", f_at));
        };
        let cursor_at = Pos::of(cursor.select_token.0.span.start);
        self.refuse_clauses(cursor, cursor_at)?;
        if inner.with.is_some()
            || inner.order_by.is_some()
            || inner.limit_clause.is_some()
            || !matches!(cursor.projection.as_slice(), [ast::SelectItem::Wildcard(_)])
            || !matches!(&cursor.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || cursor.having.is_some()
            || !cursor.named_window.is_empty()
        {
            return Err(unsupported(
                "A CURSOR query other than SELECT STREAM * FROM s [WHERE …]",
                cursor_at,
            ));
        }
        let (input, cursor_alias) = self.from(cursor, cursor_at, false)?;
        let stream = &self.streams[input];
        let rows = RowScope {
            stream,
            alias: cursor_alias,
            table: None,
        };
        let filter = cursor
            .selection
            .as_ref()
            .map(|e| condition("WHERE", e, &rows, None, cursor_at))
            .transpose()?;
        // The column, named as a quoted identifier would be.
        let column_name = match args[1] {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(n) => n.clone(),
                _ => {
                    return Err(SqlError::at(
                        format!("{name}'s column is a quoted name: {form}"),
                        pos_of(args[1], at),
                    ));
                }
            },
            _ => {
                return Err(SqlError::at(
                    format!("{name}'s column is a quoted name: {form}"),
                    pos_of(args[1], at),
                ));
            }
        };
        let Some(c) = stream.columns.iter().position(|c| c.name == column_name) else {
            return Err(SqlError::at(
                format!(
                    "Column {} not found in {} (names are case-sensitive here)",
                    quote(&column_name),
                    quote(&stream.name)
                ),
                pos_of(args[1], at),
            ));
        };
        let column = &stream.columns[c];
        let ty = ty_of(column.ty).ok_or_else(|| {
            unsupported(
                format!("{name} over a {} column", column.ty),
                pos_of(args[1], at),
            )
        })?;
        let whole = |e: &ast::Expr, what: &str, lo: i64, hi: i64| -> Result<i64, SqlError> {
            let n = match e {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<i64>().ok(),
                    _ => None,
                },
                _ => None,
            };
            n.filter(|n| (lo..=hi).contains(n)).ok_or_else(|| {
                SqlError::at(
                    format!("{name}'s {what} is a whole number from {lo} to {hi}"),
                    pos_of(e, at),
                )
            })
        };
        let (k, seconds) = if top {
            (
                Some(whole(args[2], "K", 1, 100_000)? as usize),
                whole(args[3], "window size (seconds)", 1, 3600)?,
            )
        } else {
            (None, whole(args[2], "window size (seconds)", 1, 3600)?)
        };
        // The function's result, which the outer select list reads.
        let count = |n: &str| ColumnPlan {
            name: n.to_string(),
            ty: SqlType::BigInt,
            not_null: false,
        };
        let result = StreamPlan {
            name: name.clone(),
            kind: StreamKind::Code,
            columns: match k {
                Some(_) => vec![column.clone(), count("MOST_FREQUENT_VALUES")],
                None => vec![count("NUMBER_OF_DISTINCT_ITEMS")],
            },
        };
        let result_rows = RowScope {
            stream: &result,
            alias: alias.map(|a| Name::of_ident(&a.name).text),
            table: None,
        };
        let (items, items_at) = self.items(s, &result_rows, None, None, at)?;
        // Over the rows a closed window becomes: its start, then the
        // function's columns, then ROWTIME (the window's end).
        let items: Vec<Item> = items
            .into_iter()
            .map(|i| Item {
                expr: shifted(&i.expr, 1),
                column_type: i.column_type,
            })
            .collect();
        let target = self.by_name[pump.target.text.as_str()];
        let fills = self.fills(pump, target, &items, &items_at)?;
        let top = match k {
            Some(k) => TopItems::MostFrequent { k },
            None => TopItems::DistinctCount,
        };
        Ok(PumpPlan {
            name: pump.name.text.clone(),
            input,
            target,
            filter,
            kind: PumpKind::Tumbling(Tumbling {
                width_ms: seconds * 1000,
                rowtime: stream.rowtime(),
                keys: vec![Expr::column(c, ty)],
                aggs: vec![crate::plan::Agg {
                    func: crate::plan::AggFunc::CountRows,
                    arg: None,
                    ty: Ty::Int,
                    default: None,
                }],
                items,
                having: None,
                top: Some(top),
            }),
            fills,
            join: None,
        })
    }

    /// A streaming `ORDER BY`: led by a ROWTIME step (`FLOOR(s.ROWTIME TO
    /// SECOND)`), whose buckets bound what is held; the other keys over the
    /// input's rows.
    fn sort(
        &self,
        order_by: &ast::OrderBy,
        rows: &RowScope<'_>,
        items: Vec<Item>,
        at: Pos,
    ) -> Result<PumpKind, SqlError> {
        let at = pos_of(order_by, at);
        let ast::OrderByKind::Expressions(exprs) = &order_by.kind else {
            return Err(unsupported("ORDER BY ALL", at));
        };
        let rowtime = rows.stream.rowtime();
        let mut r = Resolver {
            rows,
            grouping: None,
            windowed: None,
            fallback: at,
        };
        let mut bucket_ms = None;
        let mut keys = Vec::new();
        for (i, o) in exprs.iter().enumerate() {
            let o_at = pos_of(&o.expr, at);
            if o.with_fill.is_some() || o.options.nulls_first.is_some() {
                return Err(unsupported("This ORDER BY option", o_at));
            }
            let desc = match &o.options.sort {
                None | Some(ast::OrderBySort::Asc) => false,
                Some(ast::OrderBySort::Desc) => true,
                Some(_) => return Err(unsupported("ORDER BY … USING", o_at)),
            };
            let key = r.resolve(&o.expr)?;
            if i == 0 {
                match &key.kind {
                    ExprKind::Call(Func::Step(w), args)
                        if !desc
                            && matches!(args.as_slice(), [Expr { kind: ExprKind::Column(c), .. }] if *c == rowtime) =>
                    {
                        bucket_ms = Some(*w);
                    }
                    _ => {
                        return Err(unsupported(
                            "An ORDER BY not led by a ROWTIME step (write ORDER BY FLOOR(s.ROWTIME TO SECOND), …)",
                            o_at,
                        ));
                    }
                }
            } else {
                keys.push((key, desc));
            }
        }
        let Some(bucket_ms) = bucket_ms else {
            return Err(SqlError::at("ORDER BY needs a key", at));
        };
        if bucket_ms > crate::limits::SORT_BUCKET_MS_MAX {
            return Err(SqlError::at(
                "A streaming ORDER BY sorts within steps of at most 1 hour (this server holds a step's rows in memory)",
                at,
            ));
        }
        Ok(PumpKind::Sort(crate::plan::Sort {
            bucket_ms,
            rowtime,
            keys,
            items,
        }))
    }

    /// `[LEFT [OUTER] | INNER] JOIN <reference table> [AS t] ON s.x = t.y
    /// [AND …]`: the table's columns in the joined rows, and the keys.
    fn join<'c>(
        &'c self,
        j: &ast::Join,
        stream: &StreamPlan,
        alias: Option<String>,
        at: Pos,
    ) -> Result<
        (
            crate::plan::resolve::TableScope<'c>,
            JoinPlan,
            Option<usize>,
        ),
        SqlError,
    > {
        let j_at = pos_of(&j.relation, at);
        let (left, constraint) = match &j.join_operator {
            ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => (false, c),
            ast::JoinOperator::Left(c) | ast::JoinOperator::LeftOuter(c) => (true, c),
            _ => return Err(unsupported("This kind of JOIN (only INNER and LEFT)", j_at)),
        };
        let ast::JoinConstraint::On(on) = constraint else {
            return Err(unsupported("A JOIN without ON", j_at));
        };
        let (name, table_alias) = match &j.relation {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => (name, alias),
            _ => return Err(unsupported("JOIN of something but a reference table", j_at)),
        };
        let table_name = match name.0.as_slice() {
            [ast::ObjectNamePart::Identifier(i)] => Name::of_ident(i),
            _ => return Err(SqlError::at(format!("{name} is not a table name"), j_at)),
        };
        // A stream of the code (or an input stream): a stream-to-stream join.
        let other = self.by_name.get(table_name.text.as_str()).copied();
        let found = match other {
            Some(s) => Some((&self.streams[s].name, &self.streams[s].columns)),
            None => (self.catalog.reference_tables.iter())
                .find(|(n, _)| *n == table_name.text)
                .map(|(n, c)| (n, c)),
        };
        let Some((table, columns)) = found else {
            let names: Vec<String> = self
                .catalog
                .reference_tables
                .iter()
                .map(|(n, _)| quote(n))
                .collect();
            return Err(SqlError::at(
                format!(
                    "Reference table {} not found (tables: {})",
                    quote(&table_name.text),
                    names.join(", ")
                ),
                j_at,
            ));
        };
        let scope = crate::plan::resolve::TableScope {
            name: table.clone(),
            alias: table_alias.as_ref().map(|a| Name::of_ident(&a.name).text),
            columns,
            base: width(stream),
        };
        let joined = RowScope {
            stream,
            alias: alias.clone(),
            table: Some(crate::plan::resolve::TableScope {
                name: scope.name.clone(),
                alias: scope.alias.clone(),
                columns,
                base: scope.base,
            }),
        };
        let own = RowScope {
            stream,
            alias,
            table: None,
        };
        let mut pairs = Vec::new();
        conjuncts(on, &mut pairs, at)?;
        let mut keys = Vec::with_capacity(pairs.len());
        for (a, b, e_at) in pairs {
            let table_column = |e: &ast::Expr| -> Option<usize> {
                let found = match e {
                    ast::Expr::Identifier(i) => joined.lookup(std::slice::from_ref(i)).ok()?,
                    ast::Expr::CompoundIdentifier(p) => joined.lookup(p).ok()?,
                    _ => return None,
                };
                found.index.checked_sub(scope.base)
            };
            let (side, column) = match (table_column(&a), table_column(&b)) {
                (None, Some(c)) => (a, c),
                (Some(c), None) => (b, c),
                _ => {
                    return Err(SqlError::at(
                        "Each ON equality compares a stream expression with a column of the table",
                        e_at,
                    ));
                }
            };
            let mut r = Resolver {
                rows: &own,
                grouping: None,
                windowed: None,
                fallback: at,
            };
            let key = r.resolve(&side)?;
            let column_ty = ty_of(columns[column].ty);
            let fits = match (key.ty, column_ty) {
                (x, Some(y)) if x == y => true,
                (x, Some(y)) => x.is_numeric() && y.is_numeric(),
                (_, None) => false,
            };
            if !fits {
                return Err(SqlError::at(
                    format!(
                        "Cannot compare a {} value with the {} column {} of {}",
                        ty_name(key.ty),
                        columns[column].ty,
                        quote(&columns[column].name),
                        quote(table)
                    ),
                    e_at,
                ));
            }
            keys.push((key, column));
        }
        Ok((
            scope,
            JoinPlan {
                table: table.clone(),
                left,
                keys,
            },
            other,
        ))
    }

    /// A grouped query's select list and HAVING, over group rows.
    fn grouped_select(
        &self,
        s: &ast::Select,
        rows: &RowScope<'_>,
        grouping: &mut Grouping,
        at: Pos,
    ) -> Result<GroupedSelect, SqlError> {
        let (items, positions) = self.items(s, rows, Some(grouping), None, at)?;
        let having = s
            .having
            .as_ref()
            .map(|h| condition("HAVING", h, rows, Some(grouping), at))
            .transpose()?;
        Ok((items, positions, having))
    }

    /// `WINDOWED BY STAGGER (PARTITION BY … RANGE INTERVAL …)`, which the
    /// parser hands over as the GROUP BY item `STAGGER(keys…, interval)`.
    fn stagger(
        &self,
        s: &ast::Select,
        rows: &RowScope<'_>,
        f: &ast::Function,
        at: Pos,
    ) -> Result<(PumpKind, Vec<Pos>), SqlError> {
        let f_at = pos_of(f, at);
        let args = unnamed_args(f);
        let Some((ast::Expr::Interval(interval), keys_ast)) =
            args.split_last().map(|(l, k)| (*l, k))
        else {
            return Err(SqlError::at(
                "WINDOWED BY STAGGER needs RANGE INTERVAL 'n' SECOND|MINUTE|HOUR|DAY",
                f_at,
            ));
        };
        let mut r = Resolver {
            rows,
            grouping: None,
            windowed: None,
            fallback: at,
        };
        let last = args[args.len() - 1];
        let width_ms = r.interval_ms(interval, last)?;
        if width_ms <= 0 {
            return Err(SqlError::at(
                "STAGGER's RANGE must be more than zero",
                pos_of(last, at),
            ));
        }
        let mut keys = Vec::with_capacity(keys_ast.len());
        let mut key_columns = Vec::with_capacity(keys_ast.len());
        for k in keys_ast {
            if has_aggregate(k) {
                return Err(SqlError::at("PARTITION BY of an aggregate", pos_of(*k, at)));
            }
            let key = r.resolve(k)?;
            let column = match (k, &key.kind) {
                (
                    ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_),
                    ExprKind::Column(i),
                ) => column_type(rows.stream, *i),
                _ => None,
            };
            keys.push(key);
            key_columns.push(column);
        }
        // Group row column 0 is the window's start, which no expression
        // names (a column index no row has).
        let mut grouping = Grouping {
            keys: std::iter::once(Expr::column(usize::MAX, Ty::Time))
                .chain(keys)
                .collect(),
            key_columns: std::iter::once(None).chain(key_columns).collect(),
            aggs: Vec::new(),
        };
        let (items, positions, having) = self.grouped_select(s, rows, &mut grouping, at)?;
        let Grouping { keys, aggs, .. } = grouping;
        Ok((
            PumpKind::Stagger(Stagger {
                width_ms,
                rowtime: rows.stream.rowtime(),
                keys: keys.into_iter().skip(1).collect(),
                aggs,
                items,
                having,
            }),
            positions,
        ))
    }

    /// A sliding pump: aggregates `OVER` windows (named in the WINDOW
    /// clause or written inline), one row out per input row.
    fn sliding(
        &self,
        s: &ast::Select,
        rows: &RowScope<'_>,
        at: Pos,
    ) -> Result<(PumpKind, Vec<Pos>), SqlError> {
        let mut named = Vec::with_capacity(s.named_window.len());
        for w in &s.named_window {
            match &w.1 {
                ast::NamedWindowExpr::WindowSpec(spec) => {
                    named.push((Name::of_ident(&w.0).text, spec));
                }
                ast::NamedWindowExpr::NamedWindow(_) => {
                    return Err(unsupported(
                        "A window defined as another window",
                        Pos::of(w.0.span.start),
                    ));
                }
            }
        }
        let base = width(rows.stream) + rows.table.as_ref().map_or(0, |t| t.columns.len());
        let mut windowed = Windowed {
            named,
            windows: Vec::new(),
            aggs: Vec::new(),
            base,
        };
        let (items, positions) = self.items(s, rows, None, Some(&mut windowed), at)?;
        Ok((
            PumpKind::Sliding(Sliding {
                rowtime: rows.stream.rowtime(),
                windows: windowed.windows,
                aggs: windowed.aggs,
                items,
            }),
            positions,
        ))
    }

    /// Which select item fills each target column, with the types checked.
    fn fills(
        &self,
        pump: &PumpDef,
        target: usize,
        items: &[Item],
        items_at: &[Pos],
    ) -> Result<Vec<Option<usize>>, SqlError> {
        let stream = &self.streams[target];
        let mut fills = vec![None; stream.columns.len()];
        match &pump.columns {
            None => {
                if items.len() != stream.columns.len() {
                    return Err(SqlError::at(
                        format!(
                            "Pump {} selects {} value{} for the {} columns of {}",
                            pump.name,
                            items.len(),
                            if items.len() == 1 { "" } else { "s" },
                            stream.columns.len(),
                            pump.target
                        ),
                        pump.query_at,
                    ));
                }
                for (i, fill) in fills.iter_mut().enumerate() {
                    *fill = Some(i);
                }
            }
            Some(names) => {
                if names.len() != items.len() {
                    return Err(SqlError::at(
                        format!(
                            "Pump {} names {} column{} of {} but selects {} value{}",
                            pump.name,
                            names.len(),
                            if names.len() == 1 { "" } else { "s" },
                            pump.target,
                            items.len(),
                            if items.len() == 1 { "" } else { "s" },
                        ),
                        pump.query_at,
                    ));
                }
                for (k, name) in names.iter().enumerate() {
                    if name.text == crate::decode::ROWTIME
                        || (!name.quoted && name.text.eq_ignore_ascii_case("ROWTIME"))
                    {
                        return Err(unsupported("Writing ROWTIME", pump.target_at));
                    }
                    let Some(c) = stream.columns.iter().position(|c| c.name == name.text) else {
                        return Err(SqlError::at(
                            format!("Column {name} not found in {}", pump.target),
                            pump.target_at,
                        ));
                    };
                    if fills[c].is_some() {
                        return Err(SqlError::at(
                            format!("Column {name} is named twice"),
                            pump.target_at,
                        ));
                    }
                    fills[c] = Some(k);
                }
            }
        }
        for (c, fill) in fills.iter().enumerate() {
            let Some(k) = *fill else { continue };
            let column = &stream.columns[c];
            if !assignable(&items[k], column.ty) {
                let from = match items[k].column_type {
                    Some(t) => t.to_string(),
                    _ => ty_name(items[k].expr.ty).to_string(),
                };
                return Err(SqlError::at(
                    format!(
                        "Cannot insert a {from} value into column {} {} of {} (CAST it)",
                        quote(&column.name),
                        column.ty,
                        pump.target
                    ),
                    items_at[k],
                ));
            }
        }
        Ok(fills)
    }
}

/// Whether a value of `item` may go into a column of type `to`: its own
/// column type is copied; otherwise by SQL's assignment rules (an integer
/// into any number, a DOUBLE into REAL, DOUBLE or DECIMAL, text into text);
/// a value that does not fit is the row's error at run time.
fn assignable(item: &Item, to: SqlType) -> bool {
    if item.column_type == Some(to) {
        return true;
    }
    if let Some(t) = item.column_type
        && ty_of(t).is_none()
    {
        return false;
    }
    if matches!(item.expr.kind, ExprKind::Literal(Literal::Null)) {
        return true;
    }
    match item.expr.ty {
        Ty::Int => to.is_numeric(),
        Ty::Float => matches!(
            to,
            SqlType::Real | SqlType::Double | SqlType::Decimal { .. }
        ),
        Ty::Text => to.is_text(),
        Ty::Bool => to == SqlType::Boolean,
        Ty::Time => to == SqlType::Timestamp,
    }
}

/// A function's unnamed expression arguments (others are left out: a
/// caller counting them refuses the call).
fn unnamed_args(f: &ast::Function) -> Vec<&ast::Expr> {
    match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A WHERE or HAVING condition (`clause`): BOOLEAN, or a NULL literal
/// (which keeps no row).
fn condition(
    clause: &str,
    e: &ast::Expr,
    rows: &RowScope<'_>,
    grouping: Option<&mut Grouping>,
    at: Pos,
) -> Result<Expr, SqlError> {
    let mut r = Resolver {
        rows,
        grouping,
        windowed: None,
        fallback: at,
    };
    let c = r.resolve(e)?;
    if c.ty != Ty::Bool && !matches!(c.kind, ExprKind::Literal(Literal::Null)) {
        return Err(SqlError::at(
            format!("{clause} needs a BOOLEAN, not a {} value", ty_name(c.ty)),
            pos_of(e, at),
        ));
    }
    Ok(Expr { ty: Ty::Bool, ..c })
}

/// How many columns a stream's batches have: its own, then ROWTIME (and
/// the arrival time for an input stream).
fn width(stream: &StreamPlan) -> usize {
    stream.columns.len()
        + match stream.kind {
            StreamKind::Input => 2,
            StreamKind::Code => 1,
        }
}

/// The equalities of an ON condition (`a = b AND c = d`).
fn conjuncts(
    e: &ast::Expr,
    out: &mut Vec<(ast::Expr, ast::Expr, Pos)>,
    at: Pos,
) -> Result<(), SqlError> {
    match e {
        ast::Expr::Nested(inner) => conjuncts(inner, out, at),
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out, at)?;
            conjuncts(right, out, at)
        }
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } => {
            out.push(((**left).clone(), (**right).clone(), pos_of(e, at)));
            Ok(())
        }
        other => Err(unsupported(
            "An ON condition other than equalities joined by AND",
            pos_of(other, at),
        )),
    }
}

/// `e` with every column index moved up by `by`.
fn shifted(e: &Expr, by: usize) -> Expr {
    let s = |x: &Expr| Box::new(shifted(x, by));
    let kind = match &e.kind {
        ExprKind::Column(i) => ExprKind::Column(i + by),
        ExprKind::Literal(l) => ExprKind::Literal(l.clone()),
        ExprKind::Neg(a) => ExprKind::Neg(s(a)),
        ExprKind::Not(a) => ExprKind::Not(s(a)),
        ExprKind::Arith(op, a, b) => ExprKind::Arith(*op, s(a), s(b)),
        ExprKind::Compare(op, a, b) => ExprKind::Compare(*op, s(a), s(b)),
        ExprKind::And(a, b) => ExprKind::And(s(a), s(b)),
        ExprKind::Or(a, b) => ExprKind::Or(s(a), s(b)),
        ExprKind::Concat(a, b) => ExprKind::Concat(s(a), s(b)),
        ExprKind::IsNull(a, n) => ExprKind::IsNull(s(a), *n),
        ExprKind::Case { whens, otherwise } => ExprKind::Case {
            whens: whens
                .iter()
                .map(|(c, v)| (shifted(c, by), shifted(v, by)))
                .collect(),
            otherwise: otherwise.as_ref().map(|o| s(o)),
        },
        ExprKind::Cast(a) => ExprKind::Cast(s(a)),
        ExprKind::Call(f, args) => {
            ExprKind::Call(*f, args.iter().map(|a| shifted(a, by)).collect())
        }
    };
    Expr { kind, ty: e.ty }
}

fn column_type(stream: &StreamPlan, index: usize) -> Option<SqlType> {
    stream.columns.get(index).map(|c| c.ty)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
