//! Expressions evaluated a batch at a time on Arrow arrays: one typed loop
//! per operator and type, nulls combined with `NullBuffer::union`'s rule
//! (NULL in, NULL out), SQL's three-valued AND/OR, and row errors
//! collected instead of failing the batch.
//!
//! Errors follow the rows that reach them: in `CASE`, a branch's errors
//! count only for rows that take it; in `a AND b` / `a OR b`, `b`'s errors
//! count only for rows `a` does not decide (so `x <> 0 AND 10 / x > 1`
//! never divides by zero), which is what users of a row-at-a-time engine
//! expect.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, TimeUnit};

use super::{ArithOp, CmpOp, Expr, ExprKind, Func, Literal, RowError, RowErrorKind, Ty};

/// Row errors found while evaluating, by row (several per row possible).
pub type Errors = Vec<RowError>;

/// Evaluates `expr` on every row of `batch`. Rows that fail are NULL in
/// the result and listed in `errors`.
pub fn evaluate(expr: &Expr, batch: &RecordBatch, errors: &mut Errors) -> ArrayRef {
    eval(expr, batch, errors)
}

fn eval(expr: &Expr, batch: &RecordBatch, errors: &mut Errors) -> ArrayRef {
    let n = batch.num_rows();
    match &expr.kind {
        ExprKind::Column(i) => widen(batch.column(*i), expr.ty),
        ExprKind::Literal(l) => repeat(l, expr.ty, n),
        ExprKind::Neg(a) => {
            let a = eval(a, batch, errors);
            match expr.ty {
                Ty::Int => Arc::new(int_unary(ints(&a), errors, |x| {
                    x.checked_neg().ok_or_else(|| overflow("-", x))
                })),
                _ => Arc::new(floats(&a).unary::<_, Float64Type>(|x| -x)),
            }
        }
        ExprKind::Not(a) => {
            let a = eval(a, batch, errors);
            Arc::new(
                bools(&a)
                    .iter()
                    .map(|v| v.map(|b| !b))
                    .collect::<BooleanArray>(),
            )
        }
        ExprKind::Arith(op, l, r) => {
            let (l, r) = (eval(l, batch, errors), eval(r, batch, errors));
            match expr.ty {
                Ty::Int => Arc::new(int_arith(*op, ints(&l), ints(&r), errors)),
                _ => Arc::new(float_arith(*op, floats(&l), floats(&r), errors)),
            }
        }
        ExprKind::Compare(op, l, r) => {
            let ty = l.ty;
            let (l, r) = (eval(l, batch, errors), eval(r, batch, errors));
            Arc::new(compare(*op, ty, &l, &r))
        }
        ExprKind::And(l, r) | ExprKind::Or(l, r) => {
            let and = matches!(expr.kind, ExprKind::And(..));
            let l = eval(l, batch, errors);
            let mut right_errors = Errors::new();
            let r = eval(r, batch, &mut right_errors);
            let (l, r) = (bools(&l), bools(&r));
            // Rows the left side decides: false for AND, true for OR.
            errors.extend(
                right_errors
                    .into_iter()
                    .filter(|e| !(l.is_valid(e.row) && l.value(e.row) != and)),
            );
            Arc::new(
                l.iter()
                    .zip(r.iter())
                    .map(|(a, b)| match and {
                        true => match (a, b) {
                            (Some(false), _) | (_, Some(false)) => Some(false),
                            (Some(true), Some(true)) => Some(true),
                            _ => None,
                        },
                        false => match (a, b) {
                            (Some(true), _) | (_, Some(true)) => Some(true),
                            (Some(false), Some(false)) => Some(false),
                            _ => None,
                        },
                    })
                    .collect::<BooleanArray>(),
            )
        }
        ExprKind::Concat(l, r) => {
            let (l, r) = (eval(l, batch, errors), eval(r, batch, errors));
            let (l, r) = (texts(&l), texts(&r));
            Arc::new(
                l.iter()
                    .zip(r.iter())
                    .map(|(a, b)| Some(format!("{}{}", a?, b?)))
                    .collect::<StringArray>(),
            )
        }
        ExprKind::IsNull(a, is_null) => {
            let a = eval(a, batch, errors);
            Arc::new(
                (0..n)
                    .map(|i| Some(a.is_null(i) == *is_null))
                    .collect::<BooleanArray>(),
            )
        }
        ExprKind::Case { whens, otherwise } => {
            case(expr.ty, whens, otherwise.as_deref(), batch, errors)
        }
        ExprKind::Cast(a) => {
            let from = a.ty;
            let a = eval(a, batch, errors);
            cast(&a, from, expr.ty, errors)
        }
        ExprKind::Call(f, args) => call(*f, expr.ty, args, batch, errors),
    }
}

fn overflow(op: &str, x: impl std::fmt::Display) -> RowError {
    RowError {
        row: 0,
        kind: RowErrorKind::DataException,
        message: format!("Numeric overflow in {op} of {x}"),
    }
}

fn div_zero() -> RowError {
    RowError {
        row: 0,
        kind: RowErrorKind::DivisionByZero,
        message: "Division by zero".into(),
    }
}

pub(crate) fn ints(a: &ArrayRef) -> &Int64Array {
    a.as_primitive::<Int64Type>()
}

pub(crate) fn floats(a: &ArrayRef) -> &Float64Array {
    a.as_primitive::<Float64Type>()
}

pub(crate) fn bools(a: &ArrayRef) -> &BooleanArray {
    a.as_boolean()
}

pub(crate) fn texts(a: &ArrayRef) -> &StringArray {
    a.as_string::<i32>()
}

pub(crate) fn times(a: &ArrayRef) -> &TimestampMillisecondArray {
    a.as_primitive::<arrow_array::types::TimestampMillisecondType>()
}

/// A column in its evaluation type: narrow integers and REALs widened.
pub fn widen(a: &ArrayRef, ty: Ty) -> ArrayRef {
    match (a.data_type(), ty) {
        (DataType::Int8, Ty::Int) => Arc::new(
            a.as_primitive::<Int8Type>()
                .unary::<_, Int64Type>(i64::from),
        ),
        (DataType::Int16, Ty::Int) => Arc::new(
            a.as_primitive::<Int16Type>()
                .unary::<_, Int64Type>(i64::from),
        ),
        (DataType::Int32, Ty::Int) => Arc::new(
            a.as_primitive::<Int32Type>()
                .unary::<_, Int64Type>(i64::from),
        ),
        (DataType::Float32, Ty::Float) => Arc::new(
            a.as_primitive::<Float32Type>()
                .unary::<_, Float64Type>(f64::from),
        ),
        (DataType::Timestamp(TimeUnit::Millisecond, Some(_)), Ty::Time) => {
            Arc::new(times_of_any(a))
        }
        // DECIMAL is evaluated as DOUBLE (docs/analytics.md says so).
        (DataType::Decimal128(_, scale), Ty::Float) => {
            let unit = 10f64.powi(i32::from(*scale));
            Arc::new(
                a.as_primitive::<arrow_array::types::Decimal128Type>()
                    .unary::<_, Float64Type>(|v| v as f64 / unit),
            )
        }
        _ => a.clone(),
    }
}

fn times_of_any(a: &ArrayRef) -> TimestampMillisecondArray {
    let t = a.as_primitive::<arrow_array::types::TimestampMillisecondType>();
    TimestampMillisecondArray::new(t.values().clone(), t.nulls().cloned())
}

fn repeat(l: &Literal, ty: Ty, n: usize) -> ArrayRef {
    match (l, ty) {
        (Literal::Bool(b), _) => Arc::new(BooleanArray::from(vec![*b; n])),
        (Literal::Int(v), Ty::Int) => Arc::new(Int64Array::from_value(*v, n)),
        (Literal::Int(v), Ty::Float) => Arc::new(Float64Array::from_value(*v as f64, n)),
        (Literal::Float(v), _) => Arc::new(Float64Array::from_value(*v, n)),
        (Literal::Text(s), _) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n))),
        (Literal::Time(t), _) | (Literal::Int(t), Ty::Time) => {
            Arc::new(TimestampMillisecondArray::from_value(*t, n))
        }
        (Literal::Null, _) | (Literal::Int(_), _) => arrow_array::new_null_array(&ty.arrow(), n),
    }
}

/// `op` on every non-null value; a failure nulls the row and is recorded.
fn int_unary(
    a: &Int64Array,
    errors: &mut Errors,
    op: impl Fn(i64) -> Result<i64, RowError>,
) -> Int64Array {
    a.iter()
        .enumerate()
        .map(|(row, v)| match op(v?) {
            Ok(x) => Some(x),
            Err(e) => {
                errors.push(RowError { row, ..e });
                None
            }
        })
        .collect()
}

fn int_arith(op: ArithOp, l: &Int64Array, r: &Int64Array, errors: &mut Errors) -> Int64Array {
    l.iter()
        .zip(r.iter())
        .enumerate()
        .map(|(row, (a, b))| {
            let (a, b) = (a?, b?);
            let out = match op {
                ArithOp::Add => a.checked_add(b).ok_or_else(|| overflow("+", a)),
                ArithOp::Sub => a.checked_sub(b).ok_or_else(|| overflow("-", a)),
                ArithOp::Mul => a.checked_mul(b).ok_or_else(|| overflow("*", a)),
                ArithOp::Div if b == 0 => Err(div_zero()),
                ArithOp::Div => a.checked_div(b).ok_or_else(|| overflow("/", a)),
                ArithOp::Mod if b == 0 => Err(div_zero()),
                // i64::MIN % -1 is 0 (SQL's and Java's answer), not an overflow.
                ArithOp::Mod => Ok(a.wrapping_rem(b)),
            };
            match out {
                Ok(x) => Some(x),
                Err(e) => {
                    errors.push(RowError { row, ..e });
                    None
                }
            }
        })
        .collect()
}

fn float_arith(
    op: ArithOp,
    l: &Float64Array,
    r: &Float64Array,
    errors: &mut Errors,
) -> Float64Array {
    l.iter()
        .zip(r.iter())
        .enumerate()
        .map(|(row, (a, b))| {
            let (a, b) = (a?, b?);
            match op {
                ArithOp::Add => Some(a + b),
                ArithOp::Sub => Some(a - b),
                ArithOp::Mul => Some(a * b),
                ArithOp::Div | ArithOp::Mod if b == 0.0 => {
                    errors.push(RowError { row, ..div_zero() });
                    None
                }
                ArithOp::Div => Some(a / b),
                ArithOp::Mod => Some(a % b),
            }
        })
        .collect()
}

fn ordering_holds(op: CmpOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => o == Equal,
        CmpOp::NotEq => o != Equal,
        CmpOp::Lt => o == Less,
        CmpOp::LtEq => o != Greater,
        CmpOp::Gt => o == Greater,
        CmpOp::GtEq => o != Less,
    }
}

fn compare(op: CmpOp, ty: Ty, l: &ArrayRef, r: &ArrayRef) -> BooleanArray {
    fn zip<T: PartialOrd>(
        op: CmpOp,
        l: impl Iterator<Item = Option<T>>,
        r: impl Iterator<Item = Option<T>>,
    ) -> BooleanArray {
        l.zip(r)
            .map(|(a, b)| Some(ordering_holds(op, a?.partial_cmp(&b?)?)))
            .collect()
    }
    match ty {
        Ty::Int => zip(op, ints(l).iter(), ints(r).iter()),
        Ty::Float => zip(op, floats(l).iter(), floats(r).iter()),
        Ty::Text => zip(op, texts(l).iter(), texts(r).iter()),
        Ty::Bool => zip(op, bools(l).iter(), bools(r).iter()),
        Ty::Time => zip(op, times(l).iter(), times(r).iter()),
    }
}

fn case(
    ty: Ty,
    whens: &[(Expr, Expr)],
    otherwise: Option<&Expr>,
    batch: &RecordBatch,
    errors: &mut Errors,
) -> ArrayRef {
    let n = batch.num_rows();
    // Which branch each row takes (whens.len(): the ELSE).
    let mut taken = vec![whens.len(); n];
    let mut open = vec![true; n];
    let mut values = Vec::with_capacity(whens.len() + 1);
    for (k, (cond, value)) in whens.iter().enumerate() {
        let mut cond_errors = Errors::new();
        let c = eval(cond, batch, &mut cond_errors);
        errors.extend(cond_errors.into_iter().filter(|e| open[e.row]));
        let c = bools(&c);
        for row in 0..n {
            if open[row] && c.is_valid(row) && c.value(row) {
                taken[row] = k;
                open[row] = false;
            }
        }
        let mut value_errors = Errors::new();
        values.push(eval(value, batch, &mut value_errors));
        errors.extend(
            value_errors
                .into_iter()
                .filter(|e| taken[e.row] == k && !open[e.row]),
        );
    }
    let else_value = match otherwise {
        Some(e) => {
            let mut else_errors = Errors::new();
            let v = eval(e, batch, &mut else_errors);
            errors.extend(else_errors.into_iter().filter(|e| open[e.row]));
            v
        }
        None => arrow_array::new_null_array(&ty.arrow(), n),
    };
    values.push(else_value);
    let refs: Vec<&dyn Array> = values.iter().map(|v| v.as_ref()).collect();
    let indices: Vec<(usize, usize)> = taken.iter().enumerate().map(|(row, k)| (*k, row)).collect();
    arrow_select::interleave::interleave(&refs, &indices).expect("branches share the CASE's type")
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, as KDA writes a TIMESTAMP.
pub fn format_time(ms: i64) -> String {
    let mut out = String::with_capacity(23);
    crate::encode::push_timestamp(&mut out, ms);
    out
}

/// `yyyy-MM-dd[ HH:mm:ss[.S...]]` (or with `T`), UTC: the decoder's reading
/// (`decode::parse_timestamp`), around blanks.
pub fn parse_time(s: &str) -> Option<i64> {
    crate::decode::parse_timestamp(s.trim())
}

fn cast(a: &ArrayRef, from: Ty, to: Ty, errors: &mut Errors) -> ArrayRef {
    let bad = |row: usize, what: String| RowError {
        row,
        kind: RowErrorKind::DataException,
        message: what,
    };
    match (from, to) {
        (f, t) if f == t => a.clone(),
        (Ty::Int, Ty::Float) => Arc::new(ints(a).unary::<_, Float64Type>(|x| x as f64)),
        (Ty::Float, Ty::Int) => Arc::new(
            floats(a)
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    let v = v?.trunc();
                    // i64::MAX as f64 rounds up to 2^63, itself out of range.
                    match v >= -(2f64.powi(63)) && v < 2f64.powi(63) {
                        true => Some(v as i64),
                        false => {
                            errors
                                .push(bad(row, format!("Cannot cast {v} to BIGINT: out of range")));
                            None
                        }
                    }
                })
                .collect::<Int64Array>(),
        ),
        (_, Ty::Text) => {
            let n = a.len();
            let text = |row: usize| -> Option<String> {
                if a.is_null(row) {
                    return None;
                }
                Some(match from {
                    Ty::Int => ints(a).value(row).to_string(),
                    Ty::Float => match floats(a).value(row) {
                        f if f.is_finite() => {
                            let mut text = String::new();
                            crate::encode::push_float(&mut text, f);
                            text
                        }
                        f => f.to_string(),
                    },
                    Ty::Bool => match bools(a).value(row) {
                        true => "TRUE".into(),
                        false => "FALSE".into(),
                    },
                    Ty::Time => format_time(times(a).value(row)),
                    Ty::Text => texts(a).value(row).to_string(),
                })
            };
            Arc::new((0..n).map(text).collect::<StringArray>())
        }
        (Ty::Text, Ty::Int) => Arc::new(
            texts(a)
                .iter()
                .enumerate()
                .map(|(row, v)| match v?.trim().parse::<i64>() {
                    Ok(x) => Some(x),
                    Err(_) => {
                        errors.push(bad(row, format!("Cannot cast {:?} to BIGINT", v?)));
                        None
                    }
                })
                .collect::<Int64Array>(),
        ),
        (Ty::Text, Ty::Float) => Arc::new(
            texts(a)
                .iter()
                .enumerate()
                .map(|(row, v)| match v?.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => Some(x),
                    _ => {
                        errors.push(bad(row, format!("Cannot cast {:?} to DOUBLE", v?)));
                        None
                    }
                })
                .collect::<Float64Array>(),
        ),
        (Ty::Text, Ty::Bool) => Arc::new(
            texts(a)
                .iter()
                .enumerate()
                .map(|(row, v)| match v?.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        errors.push(bad(row, format!("Cannot cast {:?} to BOOLEAN", v?)));
                        None
                    }
                })
                .collect::<BooleanArray>(),
        ),
        (Ty::Text, Ty::Time) => Arc::new(
            texts(a)
                .iter()
                .enumerate()
                .map(|(row, v)| match parse_time(v?) {
                    Some(t) => Some(t),
                    None => {
                        errors.push(bad(row, format!("Cannot cast {:?} to TIMESTAMP", v?)));
                        None
                    }
                })
                .collect::<TimestampMillisecondArray>(),
        ),
        (Ty::Time, Ty::Int) => Arc::new(times(a).unary::<_, Int64Type>(|t| t)),
        (Ty::Int, Ty::Time) => {
            Arc::new(ints(a).unary::<_, arrow_array::types::TimestampMillisecondType>(|t| t))
        }
        (from, to) => unreachable!("the planner refuses CAST from {from:?} to {to:?}"),
    }
}

fn call(f: Func, ty: Ty, args: &[Expr], batch: &RecordBatch, errors: &mut Errors) -> ArrayRef {
    let arg = |i: usize, errors: &mut Errors| eval(&args[i], batch, errors);
    match f {
        Func::Abs => {
            let a = arg(0, errors);
            match ty {
                Ty::Int => Arc::new(int_unary(ints(&a), errors, |x| {
                    x.checked_abs().ok_or_else(|| overflow("ABS", x))
                })),
                _ => Arc::new(floats(&a).unary::<_, Float64Type>(f64::abs)),
            }
        }
        Func::Step(width) => {
            let a = arg(0, errors);
            // The planner refuses a width ≤ 0; an overflow is the row's error.
            let step = move |x: i64| {
                x.checked_rem_euclid(width)
                    .filter(|_| width > 0)
                    .and_then(|r| x.checked_sub(r))
                    .ok_or_else(|| overflow("STEP", x))
            };
            let stepped = match ty {
                Ty::Time => int_unary(&times(&a).unary::<_, Int64Type>(|t| t), errors, step),
                _ => int_unary(ints(&a), errors, step),
            };
            match ty {
                Ty::Time => Arc::new(
                    stepped.unary::<_, arrow_array::types::TimestampMillisecondType>(|t| t),
                ),
                _ => Arc::new(stepped),
            }
        }
        Func::Floor => Arc::new(floats(&arg(0, errors)).unary::<_, Float64Type>(f64::floor)),
        Func::Ceil => Arc::new(floats(&arg(0, errors)).unary::<_, Float64Type>(f64::ceil)),
        Func::Upper | Func::Lower => {
            let a = arg(0, errors);
            let upper = f == Func::Upper;
            Arc::new(
                texts(&a)
                    .iter()
                    .map(|v| {
                        v.map(|s| match upper {
                            true => s.to_uppercase(),
                            false => s.to_lowercase(),
                        })
                    })
                    .collect::<StringArray>(),
            )
        }
        Func::CharLength => {
            let a = arg(0, errors);
            Arc::new(
                texts(&a)
                    .iter()
                    .map(|v| v.map(|s| s.chars().count() as i64))
                    .collect::<Int64Array>(),
            )
        }
        Func::Coalesce => {
            // An argument's errors count for the rows no earlier argument
            // decided.
            let n = batch.num_rows();
            let mut open = vec![true; n];
            let mut values: Vec<ArrayRef> = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                let mut arg_errors = Errors::new();
                let v = arg(i, &mut arg_errors);
                errors.extend(arg_errors.into_iter().filter(|e| open[e.row]));
                for (row, open) in open.iter_mut().enumerate() {
                    *open = *open && v.is_null(row);
                }
                values.push(v);
            }
            let refs: Vec<&dyn Array> = values.iter().map(|v| v.as_ref()).collect();
            let indices: Vec<(usize, usize)> = (0..n)
                .map(|row| {
                    let k = values.iter().position(|v| v.is_valid(row)).unwrap_or(0);
                    (k, row)
                })
                .collect();
            arrow_select::interleave::interleave(&refs, &indices)
                .expect("COALESCE's arguments share its type")
        }
    }
}
