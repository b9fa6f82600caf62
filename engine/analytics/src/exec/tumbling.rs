//! The tumbling-window operator (docs/analytics-design.md §3.4, §5.6): a
//! pump's `GROUP BY …, STEP(ROWTIME BY …)` state. Rows go into the window
//! `[STEP(ROWTIME), STEP(ROWTIME) + width)` and, inside it, into the group
//! of their key values; a window closes when the watermark reaches its end
//! and gives one group row per group. Pure: no runtime, no I/O.
//!
//! The same state serves both sides of the per-core / home-core split: a
//! per-core state `push`es its shards' rows and ships each finished window
//! with [`TumblingState::take_closed`]; the home core [`TumblingState::merge`]s
//! those partials and [`TumblingState::close`]s. Partials merge exactly: the
//! home core's group rows are the ones a single state seeing every row would
//! give, in the same order, with the same values (floating-point sums are
//! exact, see `ExactSum`).
//!
//! Row order. Rows are ordered by (ROWTIME, origin, arrival): `origin` is
//! the caller's number for where a row came from (a shard, an input); within
//! one origin, rows come in push order (the state counts each origin's rows
//! across pushes). One origin must feed exactly one state, so that the
//! counts agree with a single state's. The order decides FIRST_VALUE,
//! LAST_VALUE and the order of a window's groups (by their first row).
//!
//! What a row contributes, and when it contributes nothing: a row whose key
//! or aggregate-argument evaluation failed, whose ROWTIME is NULL or whose
//! window would start before the earliest time, or which would overflow an
//! integer SUM of its group, is left out of every group and reported once
//! (its first error) as a [`RowError`].
//!
//! Aggregate results (SQL semantics; the counts are 0 over no rows, every
//! other aggregate over no non-NULL value is NULL):
//! - `COUNT(*)` counts rows, `COUNT(x)` non-NULL x;
//! - `SUM` of integers: a row that would take its group's running sum past
//!   BIGINT is a row error "Numeric overflow in SUM" and left out. Partials
//!   merged on the home core add in 128 bits; a merged sum past BIGINT (each
//!   part fitting, only when rows went to several states) is NULL;
//! - `SUM` / `AVG` of floats are exactly rounded sums (then / count): the
//!   result does not depend on the rows' order or on how they were split.
//!   A sum of zeros is +0.0. An intermediate overflow past ±f64::MAX makes
//!   the result ±inf (order-dependent only in that case); a NaN or an
//!   infinity among the values gives what IEEE addition of those gives;
//! - `AVG` of integers: a 128-bit sum over the count, truncated toward zero;
//! - `MIN` / `MAX`: false < true; texts by code point; floats by
//!   `f64::total_cmp` (so -0.0 < 0.0), except that every NaN is one NaN,
//!   greater than every number: MAX is NaN when a NaN is present, MIN skips
//!   NaNs unless all values are NaN;
//! - `FIRST_VALUE` / `LAST_VALUE`: the value (NULL included) of the group's
//!   first / last row by the order above.
//! - `VAR_POP` / `VAR_SAMP` / `STDDEV_POP` / `STDDEV_SAMP` (DOUBLE, of
//!   BIGINT or DOUBLE values): from the exact count, Σx and Σx² of the
//!   non-NULL values (`super::sliding::Moments`), so partials merge
//!   exactly and the result has the same bits however rows were split:
//!   the exact n·Σx² − (Σx)² over n·n (POP) or n·(n−1) (SAMP), rounded
//!   once; STDDEV the square root of that. NULL without values (POP) or with
//!   fewer than two (SAMP); NaN when a value is NaN or infinite.
//!
//! Group keys compare as SQL's GROUP BY does: NULLs group together, and
//! floats group by value with -0.0 as 0.0 and every NaN as one NaN (the
//! group row shows the key as 0.0 / NaN).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::sliding::Moments;
use crate::expr::eval::{self, Errors};
use crate::expr::{RowError, RowErrorKind, Ty};
use crate::plan::{Agg, AggFunc, Tumbling};

/// A tumbling pump's open windows. Lives on one core; never shared.
#[derive(Debug)]
pub struct TumblingState {
    plan: Arc<Tumbling>,
    /// The window width, at least 1 ms (the planner never makes less).
    width_ms: i64,
    /// The group rows' schema (`WINDOW_START`, `KEY_n`…, `AGG_n`…).
    schema: SchemaRef,
    /// Open windows by start.
    windows: BTreeMap<i64, Partial>,
    /// How many rows each origin has pushed: the next row's arrival.
    arrivals: HashMap<u64, u64>,
    /// The current row's key bytes (reused across rows).
    scratch: Vec<u8>,
}

/// The mergeable state of one window's groups: what a per-core state ships
/// to the home core. Equality is of the representation (two partials of the
/// same rows pushed in another order may differ and still close alike).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    /// Each group's key bytes (see `encode_key`) → its index in `groups`.
    index: HashMap<Box<[u8]>, usize>,
    groups: Vec<Group>,
}

/// Where a row stands in the order rows are aggregated in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    pub(crate) rowtime: i64,
    pub(crate) origin: u64,
    /// The row's position among its origin's rows.
    pub(crate) arrival: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Group {
    /// The group's first row.
    first: Place,
    /// One per aggregate of the plan, in order.
    accs: Vec<Acc>,
}

/// One aggregate's running state in one group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Acc {
    /// `COUNT(*)`.
    Rows(i64),
    /// `COUNT(x)`.
    Count(i64),
    /// `SUM` of integers (`None`: no non-NULL value yet).
    SumInt(Option<i128>),
    /// `SUM` of floats.
    SumFloat(Option<ExactSum>),
    AvgInt {
        sum: i128,
        count: i64,
    },
    AvgFloat {
        sum: ExactSum,
        count: i64,
    },
    Min(Option<Value>),
    Max(Option<Value>),
    /// `VAR_POP`, `VAR_SAMP`, `STDDEV_POP`, `STDDEV_SAMP` (`func`): the
    /// values' exact sums (boxed: about 850 bytes).
    Spread {
        moments: Box<Moments>,
        func: AggFunc,
    },
    /// `FIRST_VALUE`: the first row's place and value.
    First(Option<(Place, Option<Value>)>),
    Last(Option<(Place, Option<Value>)>),
    /// An aggregate without a value for its type (SUM or AVG of a
    /// non-number), or LAG or EXP_AVG in a group (the planner refuses
    /// those): always NULL.
    Null,
}

/// An owned value of an aggregate.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Time(i64),
}

/// A borrowed value: of a batch's row, of a key's bytes, of an aggregate.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValueRef<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    Time(i64),
}

impl PartialEq for Value {
    /// Floats by bits: a partial holding a NaN equals its clone.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Time(a), Value::Time(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(x) => ValueRef::Int(*x),
            Value::Float(x) => ValueRef::Float(*x),
            Value::Text(s) => ValueRef::Text(s),
            Value::Time(t) => ValueRef::Time(*t),
        }
    }

    /// Becomes `v`, reusing a text's buffer.
    fn set(&mut self, v: ValueRef<'_>) {
        match (self, v) {
            (Value::Text(s), ValueRef::Text(t)) => {
                s.clear();
                s.push_str(t);
            }
            (this, v) => *this = v.to_owned(),
        }
    }
}

impl ValueRef<'_> {
    pub(crate) fn to_owned(self) -> Value {
        match self {
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(x) => Value::Int(x),
            ValueRef::Float(x) => Value::Float(x),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Time(t) => Value::Time(t),
        }
    }

    /// For MIN / MAX: every NaN one NaN.
    pub(crate) fn nan_as_one(self) -> Self {
        match self {
            ValueRef::Float(x) if x.is_nan() => ValueRef::Float(f64::NAN),
            v => v,
        }
    }
}

/// MIN / MAX's order (see the module doc); `None` for values of different
/// types (never in one aggregate).
pub(crate) fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<Ordering> {
    match (a, b) {
        (ValueRef::Bool(a), ValueRef::Bool(b)) => Some(a.cmp(&b)),
        (ValueRef::Int(a), ValueRef::Int(b)) | (ValueRef::Time(a), ValueRef::Time(b)) => {
            Some(a.cmp(&b))
        }
        (ValueRef::Text(a), ValueRef::Text(b)) => Some(a.cmp(b)),
        (ValueRef::Float(a), ValueRef::Float(b)) => Some(match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.total_cmp(&b),
        }),
        _ => None,
    }
}

/// An exactly rounded sum of floats (Shewchuk's algorithm, as in Python's
/// `math.fsum`): the finite values are kept as a few non-overlapping
/// partial sums whose exact total is the exact sum, so the result, rounded
/// once at the end, does not depend on the order of the values or on how
/// they were split between states. Non-finite values add up apart.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExactSum {
    /// Non-overlapping, non-zero, by increasing magnitude.
    partials: Vec<f64>,
    /// The sum of the non-finite values (and of an intermediate overflow):
    /// 0.0 while there is none.
    special: f64,
}

impl PartialEq for ExactSum {
    fn eq(&self, other: &ExactSum) -> bool {
        self.special.to_bits() == other.special.to_bits()
            && self.partials.len() == other.partials.len()
            && (self.partials.iter())
                .zip(&other.partials)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl ExactSum {
    fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.special += x;
            return;
        }
        if !self.special.is_finite() {
            // The result is already the special sum.
            return;
        }
        let mut x = x;
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                // Past f64's range: the sum is ±inf from now on.
                self.special += hi;
                self.partials.clear();
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        if x != 0.0 {
            self.partials.push(x);
        }
    }

    fn merge(&mut self, other: &ExactSum) {
        self.special += other.special;
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The exact sum rounded to nearest, ties to even.
    fn value(&self) -> f64 {
        if !self.special.is_finite() {
            return self.special;
        }
        let p = &self.partials;
        let Some(&top) = p.last() else {
            return 0.0;
        };
        let mut n = p.len() - 1;
        let mut hi = top;
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Half-way cases: round by the sign of what lies below.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

impl Acc {
    pub(crate) fn empty(agg: &Agg) -> Acc {
        match (agg.func, agg.ty) {
            (AggFunc::CountRows, _) => Acc::Rows(0),
            (AggFunc::Count, _) => Acc::Count(0),
            (AggFunc::Sum, Ty::Int) => Acc::SumInt(None),
            (AggFunc::Sum, Ty::Float) => Acc::SumFloat(None),
            (AggFunc::Avg, Ty::Int) => Acc::AvgInt { sum: 0, count: 0 },
            (AggFunc::Avg, Ty::Float) => Acc::AvgFloat {
                sum: ExactSum::default(),
                count: 0,
            },
            (AggFunc::Sum | AggFunc::Avg, _) => Acc::Null,
            (AggFunc::Min, _) => Acc::Min(None),
            (AggFunc::Max, _) => Acc::Max(None),
            (AggFunc::FirstValue, _) => Acc::First(None),
            (AggFunc::LastValue, _) => Acc::Last(None),
            (AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp, _) => {
                Acc::Spread {
                    moments: Box::new(Moments::new()),
                    func: agg.func,
                }
            }
            // LAG and EXP_AVG read rows' places in a sliding window's frame;
            // the planner refuses them in GROUP BY (tumbling and stagger
            // windows), so a group never holds one: NULL if it did.
            (AggFunc::Lag { .. } | AggFunc::ExpAvg { .. }, _) => Acc::Null,
        }
    }

    /// Would adding `v` take an integer SUM past BIGINT?
    pub(crate) fn overflows(&self, v: Option<ValueRef<'_>>) -> bool {
        match (self, v) {
            (Acc::SumInt(Some(sum)), Some(ValueRef::Int(x))) => {
                i64::try_from(sum + i128::from(x)).is_err()
            }
            _ => false,
        }
    }

    pub(crate) fn add(&mut self, place: Place, v: Option<ValueRef<'_>>) {
        match self {
            Acc::Rows(n) => *n = n.saturating_add(1),
            Acc::Count(n) => {
                if v.is_some() {
                    *n = n.saturating_add(1);
                }
            }
            Acc::SumInt(sum) => {
                if let Some(ValueRef::Int(x)) = v {
                    *sum = Some(sum.unwrap_or(0).saturating_add(i128::from(x)));
                }
            }
            Acc::SumFloat(sum) => {
                if let Some(x) = v.and_then(as_float) {
                    sum.get_or_insert_with(ExactSum::default).add(x);
                }
            }
            Acc::AvgInt { sum, count } => {
                if let Some(ValueRef::Int(x)) = v {
                    *sum = sum.saturating_add(i128::from(x));
                    *count = count.saturating_add(1);
                }
            }
            Acc::AvgFloat { sum, count } => {
                if let Some(x) = v.and_then(as_float) {
                    sum.add(x);
                    *count = count.saturating_add(1);
                }
            }
            Acc::Min(best) => keep_extreme(best, v, Ordering::Less),
            Acc::Max(best) => keep_extreme(best, v, Ordering::Greater),
            Acc::First(at) => keep_row(at, place, v, Ordering::Less),
            Acc::Last(at) => keep_row(at, place, v, Ordering::Greater),
            Acc::Spread { moments, .. } => {
                if let Some(v) = v {
                    moments.add(v);
                }
            }
            Acc::Null => {}
        }
    }

    fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Rows(a), Acc::Rows(b)) | (Acc::Count(a), Acc::Count(b)) => {
                *a = a.saturating_add(b);
            }
            (Acc::SumInt(a), Acc::SumInt(Some(b))) => {
                *a = Some(a.unwrap_or(0).saturating_add(b));
            }
            (Acc::SumFloat(a), Acc::SumFloat(b)) => match (a.as_mut(), b) {
                (Some(a), Some(b)) => a.merge(&b),
                (None, b) => *a = b,
                (Some(_), None) => {}
            },
            (Acc::AvgInt { sum, count }, Acc::AvgInt { sum: s, count: c }) => {
                *sum = sum.saturating_add(s);
                *count = count.saturating_add(c);
            }
            (Acc::AvgFloat { sum, count }, Acc::AvgFloat { sum: s, count: c }) => {
                sum.merge(&s);
                *count = count.saturating_add(c);
            }
            (Acc::Min(a), Acc::Min(b)) => {
                keep_extreme(a, b.as_ref().map(Value::as_ref), Ordering::Less)
            }
            (Acc::Max(a), Acc::Max(b)) => {
                keep_extreme(a, b.as_ref().map(Value::as_ref), Ordering::Greater)
            }
            (Acc::First(a), Acc::First(Some(b))) if a.as_ref().is_none_or(|(p, _)| b.0 < *p) => {
                *a = Some(b);
            }
            (Acc::Last(a), Acc::Last(Some(b))) if a.as_ref().is_none_or(|(p, _)| b.0 > *p) => {
                *a = Some(b);
            }
            (Acc::Spread { moments: a, .. }, Acc::Spread { moments: b, .. }) => a.merge(&b),
            // Nothing to add (or another plan's state: never).
            _ => {}
        }
    }

    pub(crate) fn result(&self) -> Option<ValueRef<'_>> {
        match self {
            Acc::Rows(n) | Acc::Count(n) => Some(ValueRef::Int(*n)),
            Acc::SumInt(sum) => sum.and_then(|s| i64::try_from(s).ok()).map(ValueRef::Int),
            Acc::SumFloat(sum) => sum.as_ref().map(|s| ValueRef::Float(s.value())),
            Acc::AvgInt { sum, count } => match *count {
                0 => None,
                // An average of BIGINTs is a BIGINT; division truncates.
                n => i64::try_from(sum / i128::from(n)).ok().map(ValueRef::Int),
            },
            Acc::AvgFloat { sum, count } => match *count {
                0 => None,
                n => Some(ValueRef::Float(sum.value() / n as f64)),
            },
            Acc::Min(v) | Acc::Max(v) => v.as_ref().map(Value::as_ref),
            Acc::First(at) | Acc::Last(at) => {
                at.as_ref().and_then(|(_, v)| v.as_ref()).map(Value::as_ref)
            }
            Acc::Spread { moments, func } => moments.result(*func).map(ValueRef::Float),
            Acc::Null => None,
        }
    }
}

pub(crate) fn as_float(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Float(x) => Some(x),
        ValueRef::Int(x) => Some(x as f64),
        _ => None,
    }
}

/// Replaces FIRST_VALUE's / LAST_VALUE's row by the row at `place` with
/// value `v` when `place` is further in the direction `wanted`.
fn keep_row(
    at: &mut Option<(Place, Option<Value>)>,
    place: Place,
    v: Option<ValueRef<'_>>,
    wanted: Ordering,
) {
    match at {
        None => *at = Some((place, v.map(ValueRef::to_owned))),
        Some((p, value)) => {
            if place.cmp(p) == wanted {
                *p = place;
                match (value.as_mut(), v) {
                    (Some(value), Some(v)) => value.set(v),
                    (_, v) => *value = v.map(ValueRef::to_owned),
                }
            }
        }
    }
}

/// Replaces `best` by `v` when `v` is further in the direction `wanted`.
fn keep_extreme(best: &mut Option<Value>, v: Option<ValueRef<'_>>, wanted: Ordering) {
    let Some(v) = v.map(ValueRef::nan_as_one) else {
        return;
    };
    match best {
        None => *best = Some(v.to_owned()),
        Some(b) => {
            if compare(v, b.as_ref()) == Some(wanted) {
                b.set(v);
            }
        }
    }
}

impl Group {
    fn new(first: Place, aggs: &[Agg]) -> Group {
        Group {
            first,
            accs: aggs.iter().map(Acc::empty).collect(),
        }
    }

    fn merge(&mut self, other: Group) {
        self.first = self.first.min(other.first);
        for (acc, o) in self.accs.iter_mut().zip(other.accs) {
            acc.merge(o);
        }
    }
}

impl Partial {
    /// How many groups the window has.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    fn absorb(&mut self, other: Partial) {
        let mut keys: Vec<(usize, Box<[u8]>)> =
            other.index.into_iter().map(|(k, g)| (g, k)).collect();
        keys.sort_unstable_by_key(|(g, _)| *g);
        for ((_, key), group) in keys.into_iter().zip(other.groups) {
            match self.index.get(&key) {
                Some(&g) => self.groups[g].merge(group),
                None => {
                    self.index.insert(key, self.groups.len());
                    self.groups.push(group);
                }
            }
        }
    }
}

/// A batch's array seen in its evaluation type; `Missing` when it is not
/// of the type the plan says (never with a planned batch): all NULL.
#[derive(Clone, Copy)]
pub(crate) enum Column<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Float(&'a Float64Array),
    Text(&'a StringArray),
    Time(&'a TimestampMillisecondArray),
    Missing,
}

impl<'a> Column<'a> {
    pub(crate) fn of(a: &'a ArrayRef, ty: Ty, rows: usize) -> Column<'a> {
        if a.len() != rows {
            return Column::Missing;
        }
        let column = match (ty, a.data_type()) {
            (Ty::Bool, DataType::Boolean) => a.as_boolean_opt().map(Column::Bool),
            (Ty::Int, DataType::Int64) => a.as_primitive_opt::<Int64Type>().map(Column::Int),
            (Ty::Float, DataType::Float64) => {
                a.as_primitive_opt::<Float64Type>().map(Column::Float)
            }
            (Ty::Text, DataType::Utf8) => a.as_string_opt::<i32>().map(Column::Text),
            (Ty::Time, DataType::Timestamp(TimeUnit::Millisecond, _)) => a
                .as_primitive_opt::<TimestampMillisecondType>()
                .map(Column::Time),
            _ => None,
        };
        column.unwrap_or(Column::Missing)
    }

    pub(crate) fn value(self, row: usize) -> Option<ValueRef<'a>> {
        match self {
            Column::Bool(a) => a.is_valid(row).then(|| ValueRef::Bool(a.value(row))),
            Column::Int(a) => a.is_valid(row).then(|| ValueRef::Int(a.value(row))),
            Column::Float(a) => a.is_valid(row).then(|| ValueRef::Float(a.value(row))),
            Column::Text(a) => a.is_valid(row).then(|| ValueRef::Text(a.value(row))),
            Column::Time(a) => a.is_valid(row).then(|| ValueRef::Time(a.value(row))),
            Column::Missing => None,
        }
    }
}

/// Appends one key value's bytes: `0` for NULL, else `1` then the value —
/// a BOOLEAN as one byte, a BIGINT or a TIMESTAMP as 8 bytes little-endian,
/// a DOUBLE as its 8 bytes of bits after -0.0 → 0.0 and NaN → one NaN, a
/// text as its length (8 bytes) then its UTF-8 bytes. The keys' types are
/// the plan's, so equal bytes are equal keys.
pub(crate) fn encode_key(v: Option<ValueRef<'_>>, out: &mut Vec<u8>) {
    let Some(v) = v else {
        out.push(0);
        return;
    };
    out.push(1);
    match v {
        ValueRef::Bool(b) => out.push(u8::from(b)),
        ValueRef::Int(x) | ValueRef::Time(x) => out.extend_from_slice(&x.to_le_bytes()),
        ValueRef::Float(x) => {
            let x = if x.is_nan() {
                f64::NAN
            } else if x == 0.0 {
                0.0
            } else {
                x
            };
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        ValueRef::Text(s) => {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Reads back the values [`encode_key`] wrote, one `ty` at a time; `None`
/// (NULL) past what was written.
pub(crate) struct KeyReader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> KeyReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            self.bytes = &[];
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    pub(crate) fn next(&mut self, ty: Ty) -> Option<ValueRef<'a>> {
        if self.take(1)? != [1] {
            return None;
        }
        Some(match ty {
            Ty::Bool => ValueRef::Bool(self.take(1)? == [1]),
            Ty::Int => ValueRef::Int(i64::from_le_bytes(self.eight()?)),
            Ty::Time => ValueRef::Time(i64::from_le_bytes(self.eight()?)),
            Ty::Float => ValueRef::Float(f64::from_bits(u64::from_le_bytes(self.eight()?))),
            Ty::Text => {
                let len = usize::try_from(u64::from_le_bytes(self.eight()?)).ok()?;
                ValueRef::Text(std::str::from_utf8(self.take(len)?).ok()?)
            }
        })
    }
}

/// A group-row column being built.
pub(crate) enum Builder {
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Text(StringBuilder),
    Time(Vec<Option<i64>>),
}

impl Builder {
    pub(crate) fn new(ty: Ty, rows: usize) -> Builder {
        match ty {
            Ty::Bool => Builder::Bool(Vec::with_capacity(rows)),
            Ty::Int => Builder::Int(Vec::with_capacity(rows)),
            Ty::Float => Builder::Float(Vec::with_capacity(rows)),
            Ty::Text => Builder::Text(StringBuilder::with_capacity(rows, rows * 8)),
            Ty::Time => Builder::Time(Vec::with_capacity(rows)),
        }
    }

    /// Appends `v`; a value of another type (never) is NULL.
    pub(crate) fn push(&mut self, v: Option<ValueRef<'_>>) {
        match self {
            Builder::Bool(b) => b.push(match v {
                Some(ValueRef::Bool(x)) => Some(x),
                _ => None,
            }),
            Builder::Int(b) => b.push(match v {
                Some(ValueRef::Int(x)) => Some(x),
                _ => None,
            }),
            Builder::Float(b) => b.push(v.and_then(as_float)),
            Builder::Text(b) => match v {
                Some(ValueRef::Text(s)) => b.append_value(s),
                _ => b.append_null(),
            },
            Builder::Time(b) => b.push(match v {
                Some(ValueRef::Time(x)) => Some(x),
                _ => None,
            }),
        }
    }

    pub(crate) fn finish(self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(BooleanArray::from(b)),
            Builder::Int(b) => Arc::new(Int64Array::from(b)),
            Builder::Float(b) => Arc::new(Float64Array::from(b)),
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(TimestampMillisecondArray::from(b)),
        }
    }
}

pub(crate) fn row_error(row: usize, message: &str) -> RowError {
    RowError {
        row,
        kind: RowErrorKind::DataException,
        message: message.to_owned(),
    }
}

impl TumblingState {
    pub fn new(plan: Arc<Tumbling>) -> TumblingState {
        let keys = (1..=plan.keys.len()).map(|i| format!("KEY_{i}"));
        let aggs = (1..=plan.aggs.len()).map(|i| format!("AGG_{i}"));
        let names = std::iter::once("WINDOW_START".to_owned())
            .chain(keys)
            .chain(aggs);
        let fields: Vec<Field> = names
            .zip(plan.group_row_types())
            .map(|(name, ty)| Field::new(name, ty.arrow(), true))
            .collect();
        TumblingState {
            width_ms: plan.width_ms.max(1),
            schema: Arc::new(Schema::new(fields)),
            plan,
            windows: BTreeMap::new(),
            arrivals: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The group rows' schema: `WINDOW_START` (a TIMESTAMP), `KEY_1`…,
    /// `AGG_1`…, each in its [`Ty::arrow`] type, all nullable.
    pub fn group_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Adds the rows of `batch` (the pump's input rows, already filtered by
    /// WHERE). The rows come after every row `origin` pushed before, and in
    /// the batch's order. A row that contributes nothing (see the module
    /// doc) gets one error in `errors`, `row` its index in `batch`.
    pub fn push(&mut self, batch: &RecordBatch, origin: u64, errors: &mut Errors) {
        let rows = batch.num_rows();
        if rows == 0 {
            return;
        }
        let arrival = self.arrivals.entry(origin).or_insert(0);
        let first_arrival = *arrival;
        *arrival = arrival.saturating_add(rows as u64);

        let TumblingState {
            plan,
            width_ms,
            windows,
            scratch,
            ..
        } = self;
        let mut failures = Errors::new();
        let keys: Vec<(ArrayRef, Ty)> = (plan.keys.iter())
            .map(|k| (eval::evaluate(k, batch, &mut failures), k.ty))
            .collect();
        let args: Vec<Option<(ArrayRef, Ty)>> = (plan.aggs.iter())
            .map(|a| (a.arg.as_ref()).map(|e| (eval::evaluate(e, batch, &mut failures), e.ty)))
            .collect();
        let keys: Vec<Column> = keys
            .iter()
            .map(|(a, ty)| Column::of(a, *ty, rows))
            .collect();
        let args: Vec<Column> = (args.iter())
            .map(|a| match a {
                Some((a, ty)) => Column::of(a, *ty, rows),
                None => Column::Missing,
            })
            .collect();
        // Each failed row's first error.
        let mut failed: Vec<Option<RowError>> = Vec::new();
        if !failures.is_empty() {
            failed.resize(rows, None);
            for e in failures {
                if let Some(slot @ None) = failed.get_mut(e.row) {
                    *slot = Some(e);
                }
            }
        }
        let rowtimes = (batch.columns().get(plan.rowtime))
            .filter(|a| a.len() == rows)
            .and_then(|a| a.as_primitive_opt::<TimestampMillisecondType>());

        for row in 0..rows {
            if let Some(e) = failed.get_mut(row).and_then(Option::take) {
                errors.push(e);
                continue;
            }
            let Some(rowtime) = rowtimes.filter(|t| t.is_valid(row)).map(|t| t.value(row)) else {
                errors.push(row_error(row, "ROWTIME is NULL"));
                continue;
            };
            let Some(start) = rowtime.checked_sub(rowtime.rem_euclid(*width_ms)) else {
                errors.push(row_error(row, "ROWTIME out of range"));
                continue;
            };
            let place = Place {
                rowtime,
                origin,
                arrival: first_arrival.saturating_add(row as u64),
            };
            scratch.clear();
            for k in &keys {
                encode_key(k.value(row), scratch);
            }
            let window = windows.entry(start).or_default();
            let group = match window.index.get(scratch.as_slice()) {
                Some(&g) => {
                    let group = &mut window.groups[g];
                    let overflows = (group.accs.iter())
                        .zip(&args)
                        .any(|(acc, arg)| acc.overflows(arg.value(row)));
                    if overflows {
                        errors.push(row_error(row, "Numeric overflow in SUM"));
                        continue;
                    }
                    group
                }
                None => {
                    let g = window.groups.len();
                    window.index.insert(scratch.as_slice().into(), g);
                    window.groups.push(Group::new(place, &plan.aggs));
                    &mut window.groups[g]
                }
            };
            group.first = group.first.min(place);
            for (acc, arg) in group.accs.iter_mut().zip(&args) {
                acc.add(place, arg.value(row));
            }
        }
    }

    /// Removes and returns every open window whose end (start + width) is
    /// ≤ `watermark_ms`, oldest first, as (start, partial): what a per-core
    /// state ships to the home core.
    pub fn take_closed(&mut self, watermark_ms: i64) -> Vec<(i64, Partial)> {
        let mut closed = Vec::new();
        while let Some(window) = self.windows.first_entry() {
            if window.key().saturating_add(self.width_ms) > watermark_ms {
                break;
            }
            let (start, partial) = window.remove_entry();
            if !partial.groups.is_empty() {
                closed.push((start, partial));
            }
        }
        closed
    }

    /// Merges a partial taken from another state of the same plan into the
    /// window starting at `start` (opening it if needed: a window already
    /// closed here opens again, to be given by the next `close`).
    pub fn merge(&mut self, start: i64, partial: Partial) {
        if partial.groups.is_empty() {
            return;
        }
        match self.windows.entry(start) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(partial);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().absorb(partial),
        }
    }

    /// Removes every window whose end is ≤ `watermark_ms` and returns its
    /// group rows (in [`TumblingState::group_schema`]), oldest window first,
    /// one batch per window, groups in the order of their first row.
    pub fn close(&mut self, watermark_ms: i64) -> Vec<(i64, RecordBatch)> {
        (self.take_closed(watermark_ms).into_iter())
            .filter_map(|(start, partial)| Some((start, self.group_rows(start, &partial)?)))
            .collect()
    }

    fn group_rows(&self, start: i64, partial: &Partial) -> Option<RecordBatch> {
        let count = partial.groups.len();
        let mut keys: Vec<&[u8]> = vec![&[]; count];
        for (key, &g) in &partial.index {
            if let Some(slot) = keys.get_mut(g) {
                *slot = key;
            }
        }
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_unstable_by_key(|&g| partial.groups[g].first);

        let rows = order
            .iter()
            .map(|&g| (start, keys[g], partial.groups[g].accs.as_slice()));
        group_rows(&self.schema, &self.plan.keys, &self.plan.aggs, count, rows)
    }

    /// How many windows are open.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// How many groups the open windows hold in all.
    pub fn open_groups(&self) -> usize {
        self.windows.values().map(|w| w.groups.len()).sum()
    }
}

/// Group rows (`WINDOW_START`, the keys, the aggregates; `schema`) of
/// `count` groups, each its window's start, its row-encoded key and its
/// accumulators: what a tumbling or stagger window gives when it closes.
pub(crate) fn group_rows<'a>(
    schema: &SchemaRef,
    keys: &[crate::expr::Expr],
    aggs: &[crate::plan::Agg],
    count: usize,
    rows: impl Iterator<Item = (i64, &'a [u8], &'a [Acc])>,
) -> Option<RecordBatch> {
    let key_types: Vec<Ty> = keys.iter().map(|k| k.ty).collect();
    let mut key_columns: Vec<Builder> = key_types
        .iter()
        .map(|&ty| Builder::new(ty, count))
        .collect();
    let mut agg_columns: Vec<Builder> = aggs.iter().map(|a| Builder::new(a.ty, count)).collect();
    let mut starts = Vec::with_capacity(count);
    for (start, key, accs) in rows {
        starts.push(start);
        let mut reader = KeyReader { bytes: key };
        for (column, &ty) in key_columns.iter_mut().zip(&key_types) {
            column.push(reader.next(ty));
        }
        for (j, column) in agg_columns.iter_mut().enumerate() {
            column.push(accs.get(j).and_then(Acc::result));
        }
    }
    let starts: ArrayRef = Arc::new(TimestampMillisecondArray::from(starts));
    let columns: Vec<ArrayRef> = std::iter::once(starts)
        .chain(key_columns.into_iter().map(Builder::finish))
        .chain(agg_columns.into_iter().map(Builder::finish))
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns);
    debug_assert!(batch.is_ok(), "group rows match their schema: {batch:?}");
    batch.ok()
}

#[cfg(test)]
#[path = "tumbling_tests.rs"]
mod tests;
