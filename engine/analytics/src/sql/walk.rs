//! The relations a query reads, at any depth: the names in FROM and JOIN,
//! in derived tables, in `TABLE(fn(CURSOR(SELECT …)))`, and in subqueries
//! inside expressions. sqlparser's `visit_relations` needs its `visitor`
//! feature, so this is the crate's own walk over the parts of the AST a KDA
//! query can use; a node it does not enter (JSON tables, PIVOT, lambdas,
//! …) is one the planner refuses anyway. Recursion is bounded by the
//! tree's depth, which `prepass::STATEMENT_OPERATORS_MAX` and sqlparser's
//! recursion limit bound.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, InTarget, ObjectName,
    OrderByKind, Query, SelectItem, SetExpr, TableFactor, TableWithJoins,
};

/// Every relation name `query` reads, in the order written, and the names
/// its `WITH` clauses define (which are not streams).
#[derive(Default)]
pub(super) struct Relations<'q> {
    pub read: Vec<&'q ObjectName>,
    pub defined: Vec<&'q sqlparser::ast::Ident>,
}

pub(super) fn relations(query: &Query) -> Relations<'_> {
    let mut out = Relations::default();
    out.query(query);
    out
}

impl<'q> Relations<'q> {
    fn query(&mut self, query: &'q Query) {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.defined.push(&cte.alias.name);
                self.query(&cte.query);
            }
        }
        self.set_expr(&query.body);
        if let Some(order_by) = &query.order_by
            && let OrderByKind::Expressions(exprs) = &order_by.kind
        {
            for e in exprs {
                self.expr(&e.expr);
            }
        }
    }

    fn set_expr(&mut self, body: &'q SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in &select.projection {
                    match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            self.expr(e)
                        }
                        _ => {}
                    }
                }
                for from in &select.from {
                    self.table_with_joins(from);
                }
                self.exprs(select.selection.iter());
                if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
                    self.exprs(exprs.iter());
                }
                self.exprs(select.having.iter());
            }
            SetExpr::Query(query) => self.query(query),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            _ => {}
        }
    }

    fn table_with_joins(&mut self, from: &'q TableWithJoins) {
        self.table_factor(&from.relation);
        for join in &from.joins {
            self.table_factor(&join.relation);
            use sqlparser::ast::{JoinConstraint as C, JoinOperator as J};
            let constraint = match &join.join_operator {
                J::Join(c)
                | J::Inner(c)
                | J::Left(c)
                | J::LeftOuter(c)
                | J::Right(c)
                | J::RightOuter(c)
                | J::FullOuter(c)
                | J::CrossJoin(c) => Some(c),
                _ => None,
            };
            if let Some(C::On(e)) = constraint {
                self.expr(e);
            }
        }
    }

    fn table_factor(&mut self, factor: &'q TableFactor) {
        match factor {
            TableFactor::Table { name, .. } => self.read.push(name),
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::TableFunction { expr, .. } => self.expr(expr),
            TableFactor::Function { args, .. } => self.function_args(args),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins),
            _ => {}
        }
    }

    fn function_args(&mut self, args: &'q [FunctionArg]) {
        for arg in args {
            let (FunctionArg::Named { arg, .. }
            | FunctionArg::ExprNamed { arg, .. }
            | FunctionArg::Unnamed(arg)) = arg;
            if let FunctionArgExpr::Expr(e) = arg {
                self.expr(e);
            }
        }
    }

    fn exprs(&mut self, exprs: impl Iterator<Item = &'q Expr>) {
        for e in exprs {
            self.expr(e);
        }
    }

    fn expr(&mut self, expr: &'q Expr) {
        match expr {
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q),
            Expr::In { expr, target, .. } => {
                self.expr(expr);
                match target {
                    InTarget::List(list) => self.exprs(list.iter()),
                    InTarget::Subquery(q) => self.query(q),
                    InTarget::Unnest(e) => self.expr(e),
                    InTarget::Table { name, args } => {
                        self.read.push(name);
                        if let Some(args) = args {
                            self.function_args(args);
                        }
                    }
                }
            }
            Expr::Function(f) => match &f.args {
                FunctionArguments::Subquery(q) => self.query(q),
                FunctionArguments::List(list) => self.function_args(&list.args),
                FunctionArguments::None => {}
            },
            Expr::BinaryOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. } => {
                self.expr(left);
                self.expr(right);
            }
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. }
            | Expr::RLike { expr, pattern, .. } => {
                self.expr(expr);
                self.expr(pattern);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr);
                self.expr(low);
                self.expr(high);
            }
            Expr::IsFalse(e)
            | Expr::IsNotFalse(e)
            | Expr::IsTrue(e)
            | Expr::IsNotTrue(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotUnknown(e)
            | Expr::Nested(e)
            | Expr::UnaryOp { expr: e, .. }
            | Expr::Cast { expr: e, .. }
            | Expr::Extract { expr: e, .. }
            | Expr::Ceil { expr: e, .. }
            | Expr::Floor { expr: e, .. }
            | Expr::Collate { expr: e, .. }
            | Expr::Named { expr: e, .. } => self.expr(e),
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                self.expr(timestamp);
                self.expr(time_zone);
            }
            Expr::Position { expr, r#in } => {
                self.expr(expr);
                self.expr(r#in);
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.expr(expr);
                self.exprs(substring_from.iter().map(|e| &**e));
                self.exprs(substring_for.iter().map(|e| &**e));
            }
            Expr::Trim {
                expr, trim_what, ..
            } => {
                self.expr(expr);
                self.exprs(trim_what.iter().map(|e| &**e));
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                self.expr(expr);
                self.expr(overlay_what);
                self.expr(overlay_from);
                self.exprs(overlay_for.iter().map(|e| &**e));
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                self.exprs(operand.iter().map(|e| &**e));
                for when in conditions {
                    self.expr(&when.condition);
                    self.expr(&when.result);
                }
                self.exprs(else_result.iter().map(|e| &**e));
            }
            Expr::Tuple(list) => self.exprs(list.iter()),
            _ => {}
        }
    }
}
