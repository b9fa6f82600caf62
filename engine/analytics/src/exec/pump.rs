//! What a pump writes into its target stream (docs/analytics-design.md
//! §3.2, §3.4): the rows of a per-row pump (WHERE, then the select list),
//! and the rows of a closed tumbling window (HAVING, then the select list
//! over its group rows). Either way the select items are inserted into the
//! target's columns by SQL's assignment rules: an integer narrowed with a
//! range check, a number into a DECIMAL rounded to its scale, text cut to
//! its VARCHAR length, NULL refused by a NOT NULL column. A row that fails
//! anywhere is left out and becomes one [`PumpError`] (for error_stream);
//! the others go on.

use std::sync::Arc;

use arrow_array::builder::Decimal128Builder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int16Type, Int32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, PrimitiveArray, RecordBatch,
    StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::decode::ROWTIME;
use crate::expr::eval::{self, Errors, evaluate, floats, ints, texts};
use crate::expr::{Expr, RowError, RowErrorKind, Ty};
use crate::plan::{Item, PumpKind, PumpPlan, Sliding, Stagger, StreamPlan, TopItems, Tumbling};
use crate::schema::SqlType;

/// A row a pump left out, as error_stream reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct PumpError {
    pub pump: String,
    /// `Division_by_zero` or `Data_exception` (error_stream's ERROR_NAME).
    pub name: &'static str,
    pub message: String,
    /// The failed row's ROWTIME (a window's end for a window's row).
    pub rowtime_ms: i64,
    /// The failed row as `{"COLUMN":value,…}` (error_stream's DATA_ROW).
    pub row: String,
}

/// The Arrow schema of a stream the code creates: its columns (nullable,
/// SQL types as [`SqlType::arrow`]) then `ROWTIME`.
pub fn stream_schema(stream: &StreamPlan) -> SchemaRef {
    let mut fields: Vec<Field> = stream
        .columns
        .iter()
        .map(|c| Field::new(&c.name, c.ty.arrow(), true))
        .collect();
    fields.push(Field::new(ROWTIME, SqlType::Timestamp.arrow(), false));
    Arc::new(Schema::new(fields))
}

/// The rows a per-row pump writes for `batch` (rows of its input), with
/// the input rows' ROWTIMEs. Panics if `pump` is not a per-row pump.
pub fn map_rows(
    pump: &PumpPlan,
    input: &StreamPlan,
    target: &StreamPlan,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    map_rows_from(pump, input, target, batch, errors).0
}

/// [`map_rows`], and the input row each output row was made from (None:
/// row `i` from row `i`, every row kept).
pub fn map_rows_from(
    pump: &PumpPlan,
    input: &StreamPlan,
    target: &StreamPlan,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> (RecordBatch, Option<Vec<u32>>) {
    let PumpKind::Map { items } = &pump.kind else {
        panic!("map_rows of a windowed pump");
    };
    let (batch, kept) = filter_traced(pump, pump.filter.as_ref(), input, batch, errors, true);
    let rowtime = batch.column(input.rowtime()).clone();
    let (rows, inserted) = insert_from(pump, items, target, &batch, input, rowtime, errors);
    let from = match (kept, inserted) {
        (k, None) => k,
        (None, i) => i,
        (Some(k), Some(i)) => Some(i.iter().map(|&r| k[r as usize]).collect()),
    };
    (rows, from)
}

/// `items` of `batch`'s rows (already filtered) inserted into `target`,
/// each with its own ROWTIME.
pub fn project_rows(
    pump: &PumpPlan,
    items: &[Item],
    input: &StreamPlan,
    target: &StreamPlan,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    let rowtime = batch.column(input.rowtime()).clone();
    insert(pump, items, target, batch, input, rowtime, errors)
}

/// The rows of `batch` a pump's WHERE keeps (what a window's groups take).
pub fn filter_rows(
    pump: &PumpPlan,
    input: &StreamPlan,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    filtered(pump, pump.filter.as_ref(), input, batch, errors)
}

/// The rows a tumbling pump writes for one closed window: `groups` are the
/// window's group rows (`Tumbling::group_row_types`), ROWTIME is the
/// window's end.
pub fn window_rows(
    pump: &PumpPlan,
    window: &Tumbling,
    window_start: i64,
    target: &StreamPlan,
    groups: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    let end = window_start.saturating_add(window.width_ms);
    let scope = GroupRows;
    let top;
    let groups = match window.top {
        Some(t) => {
            top = top_items(groups, t, window_start, end);
            &top
        }
        None => groups,
    };
    let groups = filtered_groups(pump, window.having.as_ref(), &scope, groups, end, errors);
    let rowtime: ArrayRef = Arc::new(TimestampMillisecondArray::from_value(
        end,
        groups.num_rows(),
    ));
    insert(
        pump,
        &window.items,
        target,
        &groups,
        &scope,
        rowtime,
        errors,
    )
}

/// What a table function's window becomes (`TopItems`): its rows as the
/// function gives them, with the window's start first and its end (the
/// rows' ROWTIME) last. `groups` are `[start, value, count]`.
fn top_items(groups: &RecordBatch, top: TopItems, start: i64, end: i64) -> RecordBatch {
    let n = groups.num_rows();
    let (columns, rows): (Vec<(String, ArrayRef)>, usize) = match top {
        TopItems::MostFrequent { k } => {
            let counts = ints(groups.column(2));
            let mut order: Vec<u32> = (0..n as u32).collect();
            // Stable: ties keep the order of their first row.
            order.sort_by_key(|&i| std::cmp::Reverse(counts.value(i as usize)));
            order.truncate(k);
            let take = UInt32Array::from(order);
            let columns = ["WINDOW_START", "VALUE", "COUNT"]
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    let a = arrow_select::take::take(groups.column(c), &take, None)
                        .expect("indices in range");
                    (name.to_string(), a)
                })
                .collect();
            (columns, take.len())
        }
        TopItems::DistinctCount => (
            vec![
                (
                    "WINDOW_START".to_string(),
                    Arc::new(TimestampMillisecondArray::from_value(start, 1)) as ArrayRef,
                ),
                (
                    "COUNT".to_string(),
                    Arc::new(arrow_array::Int64Array::from_value(n as i64, 1)) as ArrayRef,
                ),
            ],
            1,
        ),
    };
    let mut fields = Vec::with_capacity(columns.len() + 1);
    let mut arrays = Vec::with_capacity(columns.len() + 1);
    for (name, a) in columns {
        fields.push(Field::new(name, a.data_type().clone(), true));
        arrays.push(a);
    }
    fields.push(Field::new(ROWTIME, SqlType::Timestamp.arrow(), false));
    arrays.push(Arc::new(TimestampMillisecondArray::from_value(end, rows)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}

/// The rows a stagger pump writes for the windows that closed: `groups`
/// (`Stagger::group_row_types`), each with its window's end (`ends`) as
/// ROWTIME.
pub fn stagger_rows(
    pump: &PumpPlan,
    stagger: &Stagger,
    target: &StreamPlan,
    groups: &RecordBatch,
    ends: &[i64],
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    // The ends ride along as a last column, so HAVING keeps them aligned.
    let end = groups.num_columns();
    let groups = with_columns(
        groups,
        vec![(
            "WINDOW_END".to_string(),
            Arc::new(TimestampMillisecondArray::from(ends.to_vec())) as ArrayRef,
        )],
    );
    let scope = AtColumn(end);
    let groups = filtered(pump, stagger.having.as_ref(), &scope, &groups, errors);
    let rowtime = groups.column(end).clone();
    insert(
        pump,
        &stagger.items,
        target,
        &groups,
        &scope,
        rowtime,
        errors,
    )
}

/// The rows a sliding pump writes for `batch` (its input's rows, filtered,
/// in ROWTIME order): `aggs` are the aggregates' values per row
/// (`SlidingState::push`), `failed` the rows whose aggregates failed (left
/// out, reported). ROWTIME is the input row's.
pub fn sliding_rows(
    pump: &PumpPlan,
    sliding: &Sliding,
    target: &StreamPlan,
    batch: &RecordBatch,
    aggs: Vec<ArrayRef>,
    failed: &[RowError],
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    let named = aggs
        .into_iter()
        .enumerate()
        .map(|(i, a)| (format!("AGG_{}", i + 1), a))
        .collect();
    let mut extended = with_columns(batch, named);
    let scope = AtColumn(sliding.rowtime);
    if !failed.is_empty() {
        report(pump, &scope, &extended, failed, None, errors);
        let mut bad = vec![false; extended.num_rows()];
        for e in failed {
            if let Some(b) = bad.get_mut(e.row) {
                *b = true;
            }
        }
        let keep: BooleanArray = bad.iter().map(|b| Some(!b)).collect();
        extended = arrow_select::filter::filter_record_batch(&extended, &keep)
            .expect("mask and batch agree");
    }
    let rowtime = extended.column(sliding.rowtime).clone();
    insert(
        pump,
        &sliding.items,
        target,
        &extended,
        &scope,
        rowtime,
        errors,
    )
}

/// `batch` with `columns` appended (nullable).
fn with_columns(batch: &RecordBatch, columns: Vec<(String, ArrayRef)>) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, a) in columns {
        fields.push(Field::new(name, a.data_type().clone(), true));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .expect("appended columns have the batch's length")
}

/// How to find a row's ROWTIME, for error rows.
trait Rows {
    fn rowtime(&self, batch: &RecordBatch, row: usize) -> Option<i64>;
}

impl Rows for StreamPlan {
    fn rowtime(&self, batch: &RecordBatch, row: usize) -> Option<i64> {
        let c = batch.column(self.rowtime());
        Some(eval::times(&eval::widen(c, Ty::Time)).value(row))
    }
}

/// Rows whose ROWTIME is their column `.0`.
struct AtColumn(usize);

impl Rows for AtColumn {
    fn rowtime(&self, batch: &RecordBatch, row: usize) -> Option<i64> {
        let c = batch.column(self.0);
        Some(eval::times(&eval::widen(c, Ty::Time)).value(row))
    }
}

/// The group rows of a window (their ROWTIME is the window's end, set by
/// the caller).
struct GroupRows;

impl Rows for GroupRows {
    fn rowtime(&self, _: &RecordBatch, _: usize) -> Option<i64> {
        None
    }
}

/// The rows of `batch` `filter` keeps (all without a filter); a row whose
/// filter failed becomes an error.
fn filtered(
    pump: &PumpPlan,
    filter: Option<&Expr>,
    rows: &dyn Rows,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    filter_traced(pump, filter, rows, batch, errors, false).0
}

/// [`filtered`], and with `trace` the rows kept (None: all of them, no
/// filter, or no `trace`).
fn filter_traced(
    pump: &PumpPlan,
    filter: Option<&Expr>,
    rows: &dyn Rows,
    batch: &RecordBatch,
    errors: &mut Vec<PumpError>,
    trace: bool,
) -> (RecordBatch, Option<Vec<u32>>) {
    let Some(filter) = filter else {
        return (batch.clone(), None);
    };
    let mut failed = Errors::new();
    let keep = evaluate(filter, batch, &mut failed);
    report(pump, rows, batch, &failed, None, errors);
    let keep = keep.as_boolean();
    // NULL (unknown, or a failed row) does not pass.
    let keep = match keep.nulls() {
        Some(nulls) => BooleanArray::new(keep.values() & nulls.inner(), None),
        None => keep.clone(),
    };
    let kept = trace.then(|| keep.values().set_indices().map(|r| r as u32).collect());
    let out =
        arrow_select::filter::filter_record_batch(batch, &keep).expect("mask and batch agree");
    (out, kept)
}

fn filtered_groups(
    pump: &PumpPlan,
    having: Option<&Expr>,
    rows: &GroupRows,
    groups: &RecordBatch,
    end: i64,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    let before = errors.len();
    let out = filtered(pump, having, rows, groups, errors);
    for e in &mut errors[before..] {
        e.rowtime_ms = end;
    }
    out
}

/// The select items of `batch`'s rows inserted into `target`'s columns,
/// with `rowtime`; failed rows left out and reported.
fn insert(
    pump: &PumpPlan,
    items: &[Item],
    target: &StreamPlan,
    batch: &RecordBatch,
    rows: &dyn Rows,
    rowtime: ArrayRef,
    errors: &mut Vec<PumpError>,
) -> RecordBatch {
    insert_from(pump, items, target, batch, rows, rowtime, errors).0
}

/// [`insert`], and the rows kept (None: all of them).
fn insert_from(
    pump: &PumpPlan,
    items: &[Item],
    target: &StreamPlan,
    batch: &RecordBatch,
    rows: &dyn Rows,
    rowtime: ArrayRef,
    errors: &mut Vec<PumpError>,
) -> (RecordBatch, Option<Vec<u32>>) {
    let n = batch.num_rows();
    let mut failed = Errors::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.columns.len() + 1);
    for (c, fill) in pump.fills.iter().enumerate() {
        let column = &target.columns[c];
        let to = column.ty;
        let value = match fill {
            None => arrow_array::new_null_array(&to.arrow(), n),
            Some(k) => {
                let item = &items[*k];
                match (&item.expr.kind, item.column_type) {
                    // A column of the target's own type, stored as the
                    // target stores it, is copied (a group row holds keys
                    // in their evaluation type, so a REAL key is not).
                    (crate::expr::ExprKind::Column(i), Some(t))
                        if t == to && batch.column(*i).data_type() == &to.arrow() =>
                    {
                        batch.column(*i).clone()
                    }
                    _ => {
                        let v = evaluate(&item.expr, batch, &mut failed);
                        assign(&v, item.expr.ty, to, &column.name, &mut failed)
                    }
                }
            }
        };
        if column.not_null {
            for row in 0..n {
                if value.is_null(row) && !failed.iter().any(|e| e.row == row) {
                    failed.push(RowError {
                        row,
                        kind: RowErrorKind::DataException,
                        message: format!("NULL into the NOT NULL column \"{}\"", column.name),
                    });
                }
            }
        }
        columns.push(value);
    }
    columns.push(as_timestamp(&rowtime));
    let schema = stream_schema(target);
    let out = RecordBatch::try_new(schema, columns).expect("columns follow the target's schema");
    if failed.is_empty() {
        return (out, None);
    }
    let rowtimes: Vec<Option<i64>> = (0..n).map(|row| eval_rowtime(&rowtime, row)).collect();
    report(pump, rows, batch, &failed, Some(&rowtimes), errors);
    let mut bad = vec![false; n];
    for e in &failed {
        bad[e.row] = true;
    }
    let keep: UInt32Array = (0..n as u32).filter(|&r| !bad[r as usize]).collect();
    let columns = out
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &keep, None).expect("indices in range"))
        .collect();
    let out = RecordBatch::try_new(out.schema(), columns).expect("same schema");
    (out, Some(keep.values().to_vec()))
}

fn eval_rowtime(rowtime: &ArrayRef, row: usize) -> Option<i64> {
    let t = as_timestamp(rowtime);
    Some(eval::times(&t).value(row))
}

/// A ROWTIME array as Timestamp(ms) without a zone.
fn as_timestamp(a: &ArrayRef) -> ArrayRef {
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => a.clone(),
        _ => eval::widen(a, Ty::Time),
    }
}

/// One error per failed row, in row order.
fn report(
    pump: &PumpPlan,
    rows: &dyn Rows,
    batch: &RecordBatch,
    failed: &[RowError],
    rowtimes: Option<&[Option<i64>]>,
    errors: &mut Vec<PumpError>,
) {
    let mut seen: Vec<usize> = Vec::new();
    let mut sorted: Vec<&RowError> = failed.iter().collect();
    sorted.sort_by_key(|e| e.row);
    for e in sorted {
        if seen.last() == Some(&e.row) {
            continue;
        }
        seen.push(e.row);
        let rowtime = rowtimes
            .and_then(|r| r[e.row])
            .or_else(|| rows.rowtime(batch, e.row))
            .unwrap_or(0);
        errors.push(PumpError {
            pump: pump.name.clone(),
            name: e.kind.error_name(),
            message: e.message.clone(),
            rowtime_ms: rowtime,
            row: render_row(rows, batch, e.row),
        });
    }
}

/// A row as a JSON object of its columns in order (the system columns
/// but ROWTIME included), written as an output writes JSON, for
/// error_stream's DATA_ROW.
fn render_row(_: &dyn Rows, batch: &RecordBatch, row: usize) -> String {
    let one = batch.slice(row, 1);
    let mut records = crate::encode::encode_rows(&one, crate::encode::RecordFormat::Json);
    String::from_utf8(records.pop().unwrap_or_default()).unwrap_or_default()
}

/// Evaluated values of type `from` as a column of type `to` (the planner
/// allowed the pair); a value that does not fit is its row's error.
fn assign(v: &ArrayRef, from: Ty, to: SqlType, column: &str, failed: &mut Errors) -> ArrayRef {
    let out_of_range = |row: usize, value: String| RowError {
        row,
        kind: RowErrorKind::DataException,
        message: format!("{value} is out of range for the {to} column \"{column}\""),
    };
    if v.null_count() == v.len() {
        return arrow_array::new_null_array(&to.arrow(), v.len());
    }
    match (from, to) {
        (Ty::Int, SqlType::BigInt) => v.clone(),
        (Ty::Int, SqlType::TinyInt) => Arc::new(narrow::<Int8Type>(ints(v), failed, out_of_range)),
        (Ty::Int, SqlType::SmallInt) => {
            Arc::new(narrow::<Int16Type>(ints(v), failed, out_of_range))
        }
        (Ty::Int, SqlType::Integer) => Arc::new(narrow::<Int32Type>(ints(v), failed, out_of_range)),
        (Ty::Int, SqlType::Real) => Arc::new(
            ints(v)
                .iter()
                .map(|x| x.map(|x| x as f32))
                .collect::<Float32Array>(),
        ),
        (Ty::Int, SqlType::Double) => Arc::new(
            ints(v)
                .iter()
                .map(|x| x.map(|x| x as f64))
                .collect::<Float64Array>(),
        ),
        (Ty::Float, SqlType::Double) => v.clone(),
        (Ty::Float, SqlType::Real) => Arc::new(
            floats(v)
                .iter()
                .enumerate()
                .map(|(row, x)| {
                    let x = x?;
                    let f = x as f32;
                    match f.is_finite() || !x.is_finite() {
                        true => Some(f),
                        false => {
                            failed.push(out_of_range(row, x.to_string()));
                            None
                        }
                    }
                })
                .collect::<Float32Array>(),
        ),
        (Ty::Int | Ty::Float, SqlType::Decimal { precision, scale }) => {
            let mut b = Decimal128Builder::with_capacity(v.len());
            for row in 0..v.len() {
                if v.is_null(row) {
                    b.append_null();
                    continue;
                }
                let scaled = match from {
                    Ty::Int => decimal_of_int(ints(v).value(row), precision, scale),
                    _ => decimal_of_float(floats(v).value(row), precision, scale),
                };
                match scaled {
                    Some(d) => b.append_value(d),
                    None => {
                        let shown = match from {
                            Ty::Int => ints(v).value(row).to_string(),
                            _ => floats(v).value(row).to_string(),
                        };
                        failed.push(out_of_range(row, shown));
                        b.append_null();
                    }
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(precision, scale)
                    .expect("the schema's precision and scale"),
            )
        }
        (Ty::Text, SqlType::Varchar { len } | SqlType::Char { len }) => {
            let len = len as usize;
            let t = texts(v);
            if t.iter().all(|s| s.is_none_or(|s| s.len() <= len)) {
                return v.clone();
            }
            Arc::new(
                t.iter()
                    .map(|s| s.map(|s| cut(s, len)))
                    .collect::<StringArray>(),
            )
        }
        (Ty::Bool, SqlType::Boolean) => v.clone(),
        (Ty::Time, SqlType::Timestamp) => as_timestamp(v),
        (from, to) => unreachable!("the planner refuses inserting {from:?} into {to}"),
    }
}

/// `s` cut to `len` characters.
fn cut(s: &str, len: usize) -> &str {
    match s.char_indices().nth(len) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn narrow<T>(
    v: &arrow_array::Int64Array,
    failed: &mut Errors,
    out_of_range: impl Fn(usize, String) -> RowError,
) -> PrimitiveArray<T>
where
    T: arrow_array::ArrowPrimitiveType,
    T::Native: TryFrom<i64>,
{
    v.iter()
        .enumerate()
        .map(|(row, x)| {
            let x = x?;
            match T::Native::try_from(x) {
                Ok(n) => Some(n),
                Err(_) => {
                    failed.push(out_of_range(row, x.to_string()));
                    None
                }
            }
        })
        .collect()
}

/// 10^n for the scales a DECIMAL has.
fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn fits(d: i128, precision: u8) -> bool {
    pow10(u32::from(precision)).is_some_and(|limit| d.abs() < limit)
}

fn decimal_of_int(x: i64, precision: u8, scale: i8) -> Option<i128> {
    let d = if scale >= 0 {
        i128::from(x).checked_mul(pow10(scale as u32)?)?
    } else {
        let div = pow10(scale.unsigned_abs() as u32)?;
        round_div(i128::from(x), div)
    };
    fits(d, precision).then_some(d)
}

fn decimal_of_float(x: f64, precision: u8, scale: i8) -> Option<i128> {
    if !x.is_finite() {
        return None;
    }
    let scaled = x * 10f64.powi(i32::from(scale));
    // Half away from zero, as SQL rounds on assignment.
    let rounded = scaled.round();
    if rounded.abs() >= 1e38 {
        return None;
    }
    let d = rounded as i128;
    fits(d, precision).then_some(d)
}

/// `a / b` rounded half away from zero (b > 0).
fn round_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b { q + a.signum() } else { q }
}
