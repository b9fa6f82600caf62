//! Typed expressions of a plan, and their evaluation on Arrow arrays
//! (`eval`): the filters, projections, grouping keys and aggregate
//! arguments of pumps. The planner resolves names and types; here every
//! node already knows its type.
//!
//! Evaluation works on a few wide types ([`Ty`]): every integer type is
//! evaluated as `Int` (i64), REAL and DOUBLE as `Float` (f64), text as
//! `Text`, TIMESTAMP as `Time` (ms since the epoch, Arrow's
//! Timestamp(ms)). A value is narrowed to its stream column's type when a
//! row is inserted (an overflow is then a row error). A row whose
//! evaluation fails (division by zero, overflow, a bad cast) gets NULL in
//! the result and a [`RowError`]: the pump sends the row to `error_stream`
//! and drops it, and the application goes on (docs/analytics-design.md §2.4).

pub mod eval;
#[cfg(test)]
mod tests;

use arrow_schema::{DataType, TimeUnit};

/// An evaluation type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Bool,
    Int,
    Float,
    Text,
    /// A TIMESTAMP: ms since the epoch.
    Time,
}

impl Ty {
    /// The Arrow type arrays of this type are evaluated in.
    pub fn arrow(self) -> DataType {
        match self {
            Ty::Bool => DataType::Boolean,
            Ty::Int => DataType::Int64,
            Ty::Float => DataType::Float64,
            Ty::Text => DataType::Utf8,
            Ty::Time => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }
}

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Time(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// The units `FLOOR(t TO unit)` and `STEP(t BY INTERVAL ...)` round to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnitOf {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnitOf {
    pub fn ms(self) -> i64 {
        match self {
            TimeUnitOf::Second => 1_000,
            TimeUnitOf::Minute => 60_000,
            TimeUnitOf::Hour => 3_600_000,
            TimeUnitOf::Day => 86_400_000,
        }
    }
}

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Abs,
    /// `STEP(x BY width)`: the largest multiple of `width` ≤ x (times: ms
    /// since the epoch; integers: the value).
    Step(i64),
    /// `FLOOR(x)` of a number.
    Floor,
    /// `CEIL(x)` of a number.
    Ceil,
    Upper,
    Lower,
    CharLength,
    /// `COALESCE(a, b, ...)`: the first argument that is not NULL.
    Coalesce,
}

/// An expression with its type.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Ty,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A column of the input batch, by index.
    Column(usize),
    Literal(Literal),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    /// Both sides have the node's type (the planner inserts casts).
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// Both sides have one type (the planner inserts casts).
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `a || b` of texts.
    Concat(Box<Expr>, Box<Expr>),
    /// `x IS NULL` (false: `IS NOT NULL`).
    IsNull(Box<Expr>, bool),
    /// `CASE WHEN c THEN v ... ELSE e END`; every value has the node's type.
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// The argument converted to the node's type.
    Cast(Box<Expr>),
    Call(Func, Vec<Expr>),
}

impl Expr {
    pub fn column(index: usize, ty: Ty) -> Expr {
        Expr {
            kind: ExprKind::Column(index),
            ty,
        }
    }

    pub fn literal(value: Literal, ty: Ty) -> Expr {
        Expr {
            kind: ExprKind::Literal(value),
            ty,
        }
    }

    pub fn new(kind: ExprKind, ty: Ty) -> Expr {
        Expr { kind, ty }
    }
}

/// Why a row failed, as `error_stream`'s ERROR_NAME says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowErrorKind {
    DivisionByZero,
    DataException,
}

impl RowErrorKind {
    pub fn error_name(self) -> &'static str {
        match self {
            RowErrorKind::DivisionByZero => "Division_by_zero",
            RowErrorKind::DataException => "Data_exception",
        }
    }
}

/// A row whose evaluation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub kind: RowErrorKind,
    pub message: String,
}
