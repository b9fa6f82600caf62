//! Evaluation on batches checked value by value: nulls, row errors and
//! where they count, three-valued logic, casts, STEP.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow_schema::{Field, Schema};

use super::eval::{bools, evaluate, floats, format_time, ints, parse_time, texts, times};
use super::*;

fn batch(columns: Vec<ArrayRef>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn col(i: usize, ty: Ty) -> Expr {
    Expr::column(i, ty)
}

fn b(kind: ExprKind, ty: Ty) -> Box<Expr> {
    Box::new(Expr::new(kind, ty))
}

fn arith(op: ArithOp, l: Expr, r: Expr) -> Expr {
    let ty = l.ty;
    Expr::new(ExprKind::Arith(op, Box::new(l), Box::new(r)), ty)
}

fn int(v: i64) -> Expr {
    Expr::literal(Literal::Int(v), Ty::Int)
}

fn run(e: &Expr, batch: &RecordBatch) -> (ArrayRef, Vec<(usize, RowErrorKind)>) {
    let mut errors = Vec::new();
    let out = evaluate(e, batch, &mut errors);
    assert_eq!(out.len(), batch.num_rows());
    (out, errors.iter().map(|e| (e.row, e.kind)).collect())
}

#[test]
fn narrow_columns_are_widened_and_nulls_pass_through() {
    let data = batch(vec![
        Arc::new(Int32Array::from(vec![Some(1), None, Some(-7)])),
        Arc::new(Float32Array::from(vec![Some(0.5), Some(2.0), None])),
    ]);
    let (out, errs) = run(&arith(ArithOp::Add, col(0, Ty::Int), int(10)), &data);
    assert!(errs.is_empty());
    assert_eq!(
        ints(&out).iter().collect::<Vec<_>>(),
        vec![Some(11), None, Some(3)]
    );
    let (out, _) = run(
        &arith(
            ArithOp::Mul,
            col(1, Ty::Float),
            Expr::literal(Literal::Float(4.0), Ty::Float),
        ),
        &data,
    );
    assert_eq!(
        floats(&out).iter().collect::<Vec<_>>(),
        vec![Some(2.0), Some(8.0), None]
    );
}

#[test]
fn division_by_zero_and_overflow_are_row_errors_not_batch_failures() {
    let data = batch(vec![
        Arc::new(Int64Array::from(vec![10, 7, i64::MAX, -9])),
        Arc::new(Int64Array::from(vec![2, 0, 1, 4])),
    ]);
    let (out, errs) = run(
        &arith(ArithOp::Div, col(0, Ty::Int), col(1, Ty::Int)),
        &data,
    );
    assert_eq!(
        ints(&out).iter().collect::<Vec<_>>(),
        vec![Some(5), None, Some(i64::MAX), Some(-2)]
    );
    assert_eq!(errs, vec![(1, RowErrorKind::DivisionByZero)]);
    let (out, errs) = run(
        &arith(ArithOp::Add, col(0, Ty::Int), col(1, Ty::Int)),
        &data,
    );
    assert_eq!(ints(&out).value(0), 12);
    assert!(out.is_null(2));
    assert_eq!(errs, vec![(2, RowErrorKind::DataException)]);
    let (_, errs) = run(
        &arith(ArithOp::Mod, col(0, Ty::Int), col(1, Ty::Int)),
        &data,
    );
    assert_eq!(errs, vec![(1, RowErrorKind::DivisionByZero)]);
    // REALs too (AWS's error-stream example divides a REAL by zero).
    let reals = batch(vec![
        Arc::new(Float64Array::from(vec![1.0, 2.0])),
        Arc::new(Float64Array::from(vec![0.0, 4.0])),
    ]);
    let (out, errs) = run(
        &arith(ArithOp::Div, col(0, Ty::Float), col(1, Ty::Float)),
        &reals,
    );
    assert_eq!(
        floats(&out).iter().collect::<Vec<_>>(),
        vec![None, Some(0.5)]
    );
    assert_eq!(errs, vec![(0, RowErrorKind::DivisionByZero)]);
}

#[test]
fn and_or_are_three_valued_and_a_decided_row_never_errs() {
    let data = batch(vec![Arc::new(Int64Array::from(vec![
        Some(0),
        Some(5),
        None,
        Some(20),
    ]))]);
    let x = || col(0, Ty::Int);
    let cmp =
        |op, l: Expr, r: Expr| Expr::new(ExprKind::Compare(op, Box::new(l), Box::new(r)), Ty::Bool);
    // x <> 0 AND 10 / x > 1
    let guarded = Expr::new(
        ExprKind::And(
            Box::new(cmp(CmpOp::NotEq, x(), int(0))),
            Box::new(cmp(CmpOp::Gt, arith(ArithOp::Div, int(10), x()), int(1))),
        ),
        Ty::Bool,
    );
    let (out, errs) = run(&guarded, &data);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        bools(&out).iter().collect::<Vec<_>>(),
        vec![Some(false), Some(true), None, Some(false)]
    );
    // x = 0 OR 10 / x > 1: row 0 is decided by the left side.
    let or = Expr::new(
        ExprKind::Or(
            Box::new(cmp(CmpOp::Eq, x(), int(0))),
            Box::new(cmp(CmpOp::Gt, arith(ArithOp::Div, int(10), x()), int(1))),
        ),
        Ty::Bool,
    );
    let (out, errs) = run(&or, &data);
    assert!(errs.is_empty());
    assert_eq!(
        bools(&out).iter().collect::<Vec<_>>(),
        vec![Some(true), Some(true), None, Some(false)]
    );
    // Unguarded, row 0 errs.
    let (_, errs) = run(
        &cmp(CmpOp::Gt, arith(ArithOp::Div, int(10), x()), int(1)),
        &data,
    );
    assert_eq!(errs, vec![(0, RowErrorKind::DivisionByZero)]);
    // NULL AND FALSE is FALSE; NULL OR TRUE is TRUE.
    let nulls = batch(vec![Arc::new(BooleanArray::from(vec![None, None]))]);
    let lit = |v| Expr::literal(Literal::Bool(v), Ty::Bool);
    let and = Expr::new(
        ExprKind::And(Box::new(col(0, Ty::Bool)), Box::new(lit(false))),
        Ty::Bool,
    );
    assert_eq!(
        bools(&run(&and, &nulls).0).iter().collect::<Vec<_>>(),
        vec![Some(false); 2]
    );
    let or = Expr::new(
        ExprKind::Or(Box::new(col(0, Ty::Bool)), Box::new(lit(true))),
        Ty::Bool,
    );
    assert_eq!(
        bools(&run(&or, &nulls).0).iter().collect::<Vec<_>>(),
        vec![Some(true); 2]
    );
}

#[test]
fn case_counts_a_branch_errors_only_for_rows_that_take_it() {
    let data = batch(vec![Arc::new(Int64Array::from(vec![0, 4, -2]))]);
    let x = || col(0, Ty::Int);
    // CASE WHEN x = 0 THEN -1 WHEN x > 0 THEN 100 / x END
    let e = Expr::new(
        ExprKind::Case {
            whens: vec![
                (
                    Expr::new(
                        ExprKind::Compare(CmpOp::Eq, Box::new(x()), Box::new(int(0))),
                        Ty::Bool,
                    ),
                    int(-1),
                ),
                (
                    Expr::new(
                        ExprKind::Compare(CmpOp::Gt, Box::new(x()), Box::new(int(0))),
                        Ty::Bool,
                    ),
                    arith(ArithOp::Div, int(100), x()),
                ),
            ],
            otherwise: None,
        },
        Ty::Int,
    );
    let (out, errs) = run(&e, &data);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        ints(&out).iter().collect::<Vec<_>>(),
        vec![Some(-1), Some(25), None]
    );
}

#[test]
fn casts_convert_or_report_the_row() {
    let data = batch(vec![Arc::new(StringArray::from(vec![
        Some("42"),
        Some("x"),
        None,
        Some(" 7 "),
    ]))]);
    let cast = |to| Expr::new(ExprKind::Cast(Box::new(col(0, Ty::Text))), to);
    let (out, errs) = run(&cast(Ty::Int), &data);
    assert_eq!(
        ints(&out).iter().collect::<Vec<_>>(),
        vec![Some(42), None, None, Some(7)]
    );
    assert_eq!(errs, vec![(1, RowErrorKind::DataException)]);
    let (out, _) = run(
        &Expr::new(
            ExprKind::Cast(Box::new(Expr::literal(Literal::Float(-2.75), Ty::Float))),
            Ty::Int,
        ),
        &data,
    );
    assert_eq!(ints(&out).value(0), -2);
    let (out, errs) = run(
        &Expr::new(
            ExprKind::Cast(Box::new(Expr::literal(Literal::Float(1e300), Ty::Float))),
            Ty::Int,
        ),
        &data,
    );
    assert!(out.is_null(0));
    assert_eq!(errs.len(), 4);
    let t = parse_time("2026-12-03 10:00:05.250").unwrap();
    assert_eq!(format_time(t), "2026-12-03 10:00:05.250");
    assert_eq!(parse_time("1992-02-14"), parse_time("1992-02-14 00:00:00"));
    let (out, _) = run(
        &Expr::new(
            ExprKind::Cast(Box::new(Expr::literal(Literal::Time(t), Ty::Time))),
            Ty::Text,
        ),
        &data,
    );
    assert_eq!(texts(&out).value(0), "2026-12-03 10:00:05.250");
}

#[test]
fn step_rounds_down_to_multiples_counted_from_the_epoch() {
    // The SQL reference's examples: STEP(23 BY 5) = 20, STEP(30 BY 10) = 30.
    let data = batch(vec![Arc::new(Int64Array::from(vec![23, 30, -1]))]);
    let step = |w| {
        Expr::new(
            ExprKind::Call(Func::Step(w), vec![col(0, Ty::Int)]),
            Ty::Int,
        )
    };
    assert_eq!(
        ints(&run(&step(5), &data).0).iter().collect::<Vec<_>>(),
        vec![Some(20), Some(30), Some(-5)]
    );
    assert_eq!(ints(&run(&step(10), &data).0).value(1), 30);
    let t0 = parse_time("2026-12-03 10:00:59.999").unwrap();
    let rowtimes = batch(vec![Arc::new(TimestampMillisecondArray::from(vec![
        t0,
        t0 + 1,
    ]))]);
    let e = Expr::new(
        ExprKind::Call(Func::Step(60_000), vec![col(0, Ty::Time)]),
        Ty::Time,
    );
    let out = run(&e, &rowtimes).0;
    assert_eq!(format_time(times(&out).value(0)), "2026-12-03 10:00:00.000");
    assert_eq!(format_time(times(&out).value(1)), "2026-12-03 10:01:00.000");
}

#[test]
fn functions_on_text_and_coalesce() {
    let data = batch(vec![
        Arc::new(StringArray::from(vec![Some("Ab"), None, Some("é")])),
        Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
    ]);
    let call = |f, args, ty| Expr::new(ExprKind::Call(f, args), ty);
    let up = run(&call(Func::Upper, vec![col(0, Ty::Text)], Ty::Text), &data).0;
    assert_eq!(
        texts(&up).iter().collect::<Vec<_>>(),
        vec![Some("AB"), None, Some("É")]
    );
    let len = run(
        &call(Func::CharLength, vec![col(0, Ty::Text)], Ty::Int),
        &data,
    )
    .0;
    assert_eq!(
        ints(&len).iter().collect::<Vec<_>>(),
        vec![Some(2), None, Some(1)]
    );
    let first = run(
        &call(
            Func::Coalesce,
            vec![col(0, Ty::Text), col(1, Ty::Text)],
            Ty::Text,
        ),
        &data,
    )
    .0;
    assert_eq!(
        texts(&first).iter().collect::<Vec<_>>(),
        vec![Some("Ab"), Some("y"), Some("é")]
    );
    let cat = Expr::new(
        ExprKind::Concat(Box::new(col(0, Ty::Text)), Box::new(col(1, Ty::Text))),
        Ty::Text,
    );
    assert_eq!(
        texts(&run(&cat, &data).0).iter().collect::<Vec<_>>(),
        vec![Some("Abx"), None, None]
    );
    let abs = Expr::new(ExprKind::Call(Func::Abs, vec![int(i64::MIN)]), Ty::Int);
    assert_eq!(
        run(&abs, &data).1,
        vec![
            (0, RowErrorKind::DataException),
            (1, RowErrorKind::DataException),
            (2, RowErrorKind::DataException)
        ]
    );
    let neg = Expr::new(
        ExprKind::Neg(b(ExprKind::Literal(Literal::Int(3)), Ty::Int)),
        Ty::Int,
    );
    assert_eq!(ints(&run(&neg, &data).0).value(0), -3);
}

#[test]
fn step_overflow_is_a_row_error_and_coalesce_errors_only_where_reached() {
    let data = batch(vec![
        Arc::new(Int64Array::from(vec![i64::MIN, 7])),
        Arc::new(Int64Array::from(vec![Some(1), None])),
        Arc::new(Int64Array::from(vec![0, 2])),
    ]);
    let step = Expr::new(
        ExprKind::Call(Func::Step(1000), vec![col(0, Ty::Int)]),
        Ty::Int,
    );
    let (out, errs) = run(&step, &data);
    assert!(out.is_null(0));
    assert_eq!(ints(&out).value(1), 0);
    assert_eq!(errs, vec![(0, RowErrorKind::DataException)]);
    let zero_width = Expr::new(
        ExprKind::Call(Func::Step(0), vec![col(0, Ty::Int)]),
        Ty::Int,
    );
    assert_eq!(run(&zero_width, &data).1.len(), 2);
    // COALESCE(b, 10 / c): row 0 has b, so 10 / 0 is never needed there.
    let coalesce = Expr::new(
        ExprKind::Call(
            Func::Coalesce,
            vec![
                col(1, Ty::Int),
                arith(ArithOp::Div, int(10), col(2, Ty::Int)),
            ],
        ),
        Ty::Int,
    );
    let (out, errs) = run(&coalesce, &data);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        ints(&out).iter().collect::<Vec<_>>(),
        vec![Some(1), Some(5)]
    );
}

#[test]
fn mod_of_the_smallest_integer_by_minus_one_is_zero() {
    use arrow_array::Int64Array;
    use arrow_schema::DataType;
    let schema = Arc::new(Schema::new(vec![Field::new("X", DataType::Int64, true)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![i64::MIN, 7]))]).unwrap();
    let e = Expr::new(
        ExprKind::Arith(
            ArithOp::Mod,
            Box::new(Expr::column(0, Ty::Int)),
            Box::new(Expr::literal(Literal::Int(-1), Ty::Int)),
        ),
        Ty::Int,
    );
    let mut errors = super::eval::Errors::new();
    let out = evaluate(&e, &batch, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ints(&out).values().to_vec(), vec![0, 0]);
}

#[test]
fn times_past_year_9999_are_written_whole() {
    assert_eq!(format_time(253_402_300_800_000), "10000-01-01 00:00:00.000");
    assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
}
