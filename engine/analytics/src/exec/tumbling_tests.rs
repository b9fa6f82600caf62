//! Tests of the tumbling-window operator: windows and their closing, every
//! aggregate's values, keys, row errors, the row order across origins, and
//! the property that partials merged on a home state equal one state that
//! saw every row (seeded: `RIFFLE_SEED=… cargo test -p riffle-analytics
//! tumbling`).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::DataType;
use riffle_store::testkit::{Rng, seeds};

use super::{ExactSum, TumblingState};
use crate::expr::eval::Errors;
use crate::expr::{ArithOp, Expr, ExprKind, Literal, RowErrorKind, Ty};
use crate::plan::{Agg, AggFunc, Tumbling};

use Literal::{Null, Time};

fn plan(width_ms: i64, rowtime: usize, keys: Vec<Expr>, aggs: Vec<Agg>) -> Arc<Tumbling> {
    Arc::new(Tumbling {
        width_ms,
        rowtime,
        keys,
        aggs,
        items: vec![],
        having: None,
        top: None,
    })
}

/// `func(arg)`, its type the counts', the variances' or the argument's.
fn agg(func: AggFunc, arg: Option<Expr>) -> Agg {
    let ty = match func {
        AggFunc::CountRows | AggFunc::Count => Ty::Int,
        AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp => Ty::Float,
        _ => arg.as_ref().map_or(Ty::Int, |a| a.ty),
    };
    Agg {
        func,
        arg,
        ty,
        default: None,
    }
}

fn col(i: usize, ty: Ty) -> Expr {
    Expr::column(i, ty)
}

fn batch(columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_from_iter((columns.into_iter().enumerate()).map(|(i, c)| (format!("C{i}"), c)))
        .expect("test batch")
}

fn times(ms: &[i64]) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(ms.to_vec()))
}

fn texts(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn floats(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn text(s: &str) -> Literal {
    Literal::Text(s.into())
}

/// A group-row batch as literals, row by row.
fn rows_of(batch: &RecordBatch) -> Vec<Vec<Literal>> {
    (0..batch.num_rows())
        .map(|row| {
            (batch.columns().iter())
                .map(|c| cell(c, row))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn cell(c: &ArrayRef, row: usize) -> Literal {
    if c.is_null(row) {
        return Null;
    }
    match c.data_type() {
        DataType::Boolean => Literal::Bool(c.as_boolean().value(row)),
        DataType::Int64 => Literal::Int(c.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Literal::Float(c.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Literal::Text(c.as_string::<i32>().value(row).into()),
        DataType::Timestamp(..) => Time(c.as_primitive::<TimestampMillisecondType>().value(row)),
        other => panic!("unexpected group-row type {other}"),
    }
}

fn close(state: &mut TumblingState, watermark_ms: i64) -> Vec<(i64, Vec<Vec<Literal>>)> {
    (state.close(watermark_ms).iter())
        .map(|(start, b)| (*start, rows_of(b)))
        .collect()
}

fn push(state: &mut TumblingState, b: &RecordBatch, origin: u64) {
    let mut errors = Errors::new();
    state.push(b, origin, &mut errors);
    assert_eq!(errors, vec![], "no row errors expected");
}

#[test]
fn e2_min_max_per_ticker_close_at_the_window_end() {
    // TICKER, PRICE, ROWTIME.
    let p = plan(
        60_000,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::Min, Some(col(1, Ty::Float))),
            agg(AggFunc::Max, Some(col(1, Ty::Float))),
        ],
    );
    let mut state = TumblingState::new(p);
    let rows = batch(vec![
        texts(&[
            Some("AMZN"),
            Some("MSFT"),
            Some("AMZN"),
            Some("MSFT"),
            Some("AMZN"),
            Some("AMZN"),
            Some("MSFT"),
        ]),
        floats(&[
            Some(10.5),
            Some(50.0),
            Some(9.25),
            Some(51.5),
            Some(11.0),
            Some(12.0),
            Some(49.0),
        ]),
        times(&[10_000, 20_000, 20_000, 59_999, 59_999, 60_000, 60_000]),
    ]);
    push(&mut state, &rows, 0);
    assert_eq!((state.open_windows(), state.open_groups()), (2, 4));
    assert_eq!(close(&mut state, 59_999), vec![]);
    let amzn = text("AMZN");
    let msft = text("MSFT");
    assert_eq!(
        close(&mut state, 60_000),
        vec![(
            0,
            vec![
                vec![
                    Time(0),
                    amzn.clone(),
                    Literal::Float(9.25),
                    Literal::Float(11.0)
                ],
                vec![
                    Time(0),
                    msft.clone(),
                    Literal::Float(50.0),
                    Literal::Float(51.5)
                ],
            ]
        )]
    );
    assert_eq!((state.open_windows(), state.open_groups()), (1, 2));
    assert_eq!(close(&mut state, 119_999), vec![]);
    assert_eq!(
        close(&mut state, 120_000),
        vec![(
            60_000,
            vec![
                vec![
                    Time(60_000),
                    amzn,
                    Literal::Float(12.0),
                    Literal::Float(12.0)
                ],
                vec![
                    Time(60_000),
                    msft,
                    Literal::Float(49.0),
                    Literal::Float(49.0)
                ],
            ]
        )]
    );
    assert_eq!((state.open_windows(), state.open_groups()), (0, 0));
}

#[test]
fn group_rows_are_named_and_typed_by_the_plan() {
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text), col(1, Ty::Bool)],
        vec![
            agg(AggFunc::CountRows, None),
            agg(AggFunc::Max, Some(col(2, Ty::Time))),
        ],
    );
    let state = TumblingState::new(p.clone());
    let schema = state.group_schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["WINDOW_START", "KEY_1", "KEY_2", "AGG_1", "AGG_2"]);
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let expected: Vec<DataType> = p.group_row_types().iter().map(|t| t.arrow()).collect();
    assert_eq!(types, expected);
    assert!(schema.fields().iter().all(|f| f.is_nullable()));
}

/// Keys for [`check_every_aggregate`]'s nine rows: groups a (5 rows),
/// b (2), c (2).
const GROUPS: [&str; 9] = ["a", "a", "a", "a", "a", "b", "b", "c", "c"];

/// Runs `funcs` over `values` (nine rows, grouped by [`GROUPS`]) and checks
/// each group's aggregates.
fn check_every_aggregate(ty: Ty, values: ArrayRef, funcs: &[AggFunc], expected: [Vec<Literal>; 3]) {
    let aggs = (funcs.iter())
        .map(|&f| {
            let arg = (f != AggFunc::CountRows).then(|| col(1, ty));
            agg(f, arg)
        })
        .collect();
    let mut state = TumblingState::new(plan(1_000, 2, vec![col(0, Ty::Text)], aggs));
    let keys: Vec<Option<&str>> = GROUPS.iter().map(|g| Some(*g)).collect();
    let rowtimes: Vec<i64> = (1..=9).collect();
    push(
        &mut state,
        &batch(vec![texts(&keys), values, times(&rowtimes)]),
        0,
    );
    let want: Vec<Vec<Literal>> = (["a", "b", "c"].iter())
        .zip(expected)
        .map(|(g, aggs)| [vec![Time(0), text(g)], aggs].concat())
        .collect();
    assert_eq!(close(&mut state, 1_000), vec![(0, want)], "{ty:?}");
}

const ALL: [AggFunc; 8] = [
    AggFunc::CountRows,
    AggFunc::Count,
    AggFunc::Sum,
    AggFunc::Min,
    AggFunc::Max,
    AggFunc::Avg,
    AggFunc::FirstValue,
    AggFunc::LastValue,
];

/// The aggregates that take any type.
const ANY: [AggFunc; 6] = [
    AggFunc::CountRows,
    AggFunc::Count,
    AggFunc::Min,
    AggFunc::Max,
    AggFunc::FirstValue,
    AggFunc::LastValue,
];

#[test]
fn every_aggregate_over_ints() {
    use Literal::Int;
    check_every_aggregate(
        Ty::Int,
        ints(&[
            None,
            Some(5),
            Some(-3),
            Some(10),
            None,
            None,
            None,
            Some(7),
            None,
        ]),
        &ALL,
        [
            vec![
                Int(5),
                Int(3),
                Int(12),
                Int(-3),
                Int(10),
                Int(4),
                Null,
                Null,
            ],
            vec![Int(2), Int(0), Null, Null, Null, Null, Null, Null],
            vec![Int(2), Int(1), Int(7), Int(7), Int(7), Int(7), Int(7), Null],
        ],
    );
}

#[test]
fn every_aggregate_over_floats() {
    use Literal::{Float, Int};
    check_every_aggregate(
        Ty::Float,
        floats(&[
            None,
            Some(1.5),
            Some(-2.25),
            Some(4.0),
            None,
            None,
            None,
            Some(7.5),
            None,
        ]),
        &ALL,
        [
            vec![
                Int(5),
                Int(3),
                Float(3.25),
                Float(-2.25),
                Float(4.0),
                Float(3.25 / 3.0),
                Null,
                Null,
            ],
            vec![Int(2), Int(0), Null, Null, Null, Null, Null, Null],
            vec![
                Int(2),
                Int(1),
                Float(7.5),
                Float(7.5),
                Float(7.5),
                Float(7.5),
                Float(7.5),
                Null,
            ],
        ],
    );
}

/// VAR_POP, VAR_SAMP, STDDEV_POP, STDDEV_SAMP.
const SPREADS: [AggFunc; 4] = [
    AggFunc::VarPop,
    AggFunc::VarSamp,
    AggFunc::StddevPop,
    AggFunc::StddevSamp,
];

/// Group a holds three values, b none (all NULL), c one: the SAMP ones are
/// NULL with fewer than two values, the POP ones only without values.
#[test]
fn variances_over_ints_and_floats() {
    use Literal::Float;
    // 5, -3, 10: n·Σx² − (Σx)² = 3·134 − 144 = 258.
    check_every_aggregate(
        Ty::Int,
        ints(&[
            None,
            Some(5),
            Some(-3),
            Some(10),
            None,
            None,
            None,
            Some(7),
            None,
        ]),
        &SPREADS,
        [
            vec![
                Float(258.0 / 9.0),
                Float(43.0),
                Float((258.0f64 / 9.0).sqrt()),
                Float(43f64.sqrt()),
            ],
            vec![Null, Null, Null, Null],
            vec![Float(0.0), Null, Float(0.0), Null],
        ],
    );
    // 1.5, -2.25, 4.0: 3·23.3125 − 3.25² = 59.375.
    check_every_aggregate(
        Ty::Float,
        floats(&[
            None,
            Some(1.5),
            Some(-2.25),
            Some(4.0),
            None,
            None,
            None,
            Some(7.5),
            None,
        ]),
        &SPREADS,
        [
            vec![
                Float(59.375 / 9.0),
                Float(59.375 / 6.0),
                Float((59.375f64 / 9.0).sqrt()),
                Float((59.375f64 / 6.0).sqrt()),
            ],
            vec![Null, Null, Null, Null],
            vec![Float(0.0), Null, Float(0.0), Null],
        ],
    );
}

/// The four variances of `values` (of type `ty`) in one group, the values
/// split between three states whose partials merge on a home state, at
/// every pair of cut points: the same bits as one state.
fn spreads(ty: Ty, values: ArrayRef) -> Vec<Literal> {
    let p = plan(
        1_000,
        1,
        vec![],
        SPREADS.iter().map(|&f| agg(f, Some(col(0, ty)))).collect(),
    );
    let rows = values.len();
    let one_state = |cuts: [usize; 2]| {
        let mut home = TumblingState::new(p.clone());
        let bounds = [0, cuts[0], cuts[1], rows];
        for origin in 0..3 {
            let part = values.slice(bounds[origin], bounds[origin + 1] - bounds[origin]);
            let mut state = TumblingState::new(p.clone());
            push(
                &mut state,
                &batch(vec![part.clone(), times(&vec![1; part.len()])]),
                origin as u64,
            );
            for (start, partial) in state.take_closed(1_000) {
                home.merge(start, partial);
            }
        }
        let mut closed = home.close(1_000);
        assert_eq!(closed.len(), 1);
        closed.remove(0).1
    };
    let mut single = TumblingState::new(p.clone());
    push(
        &mut single,
        &batch(vec![values.clone(), times(&vec![1; rows])]),
        0,
    );
    let mut single = single.close(1_000);
    assert_eq!(single.len(), 1);
    let single = single.remove(0).1;
    for a in 0..=rows {
        for b in a..=rows {
            assert_eq!(one_state([a, b]), single, "cut at {a} and {b}");
        }
    }
    let mut row = rows_of(&single).remove(0);
    row.remove(0);
    row
}

/// 2, 4, 4, 4, 5, 5, 7, 9 (mean 5): VAR_POP 4, STDDEV_POP 2, VAR_SAMP 32/7;
/// values whose mean is far larger than their spread (the naive formula
/// cancels to nothing there); extremes of BIGINT and DOUBLE; NaN and
/// infinities.
#[test]
fn variances_are_exact_whatever_the_split() {
    use Literal::Float;
    let known = [2, 4, 4, 4, 5, 5, 7, 9];
    let expected = vec![
        Float(4.0),
        Float(32.0 / 7.0),
        Float(2.0),
        Float((32.0f64 / 7.0).sqrt()),
    ];
    let int_values = |v: &[i64]| ints(&v.iter().map(|&x| Some(x)).collect::<Vec<_>>());
    let float_values = |v: &[f64]| floats(&v.iter().map(|&x| Some(x)).collect::<Vec<_>>());
    assert_eq!(spreads(Ty::Int, int_values(&known)), expected);
    let known: Vec<f64> = known.iter().map(|&x| x as f64).collect();
    assert_eq!(spreads(Ty::Float, float_values(&known)), expected);
    // NULLs are skipped.
    let with_nulls = [None, Some(2), Some(4), None, Some(4), Some(4)];
    let with_nulls = [&with_nulls[..], &[Some(5), Some(5), Some(7), None, Some(9)]].concat();
    assert_eq!(spreads(Ty::Int, ints(&with_nulls)), expected);

    // 1e15 + 1, + 2, + 3 (and the same shifted into BIGINT's top): the
    // exact 2/3 and 1, where Σx² − (Σx)²/n in doubles gives noise.
    let two_thirds = vec![
        Float(2.0 / 3.0),
        Float(1.0),
        Float((2.0f64 / 3.0).sqrt()),
        Float(1.0),
    ];
    assert_eq!(
        spreads(
            Ty::Float,
            float_values(&[1e15 + 1.0, 1e15 + 2.0, 1e15 + 3.0])
        ),
        two_thirds
    );
    assert_eq!(
        spreads(Ty::Int, int_values(&[i64::MAX - 2, i64::MAX, i64::MAX - 1])),
        two_thirds
    );
    // BIGINT's ends: deviations ±(2^63 − 1/2), squares past 2^126 (the
    // values are not rounded to doubles first).
    let p126 = 2f64.powi(126);
    assert_eq!(
        spreads(Ty::Int, int_values(&[i64::MIN, i64::MAX])),
        vec![
            Float(p126),
            Float(2.0 * p126),
            Float(2f64.powi(63)),
            Float((2.0 * p126).sqrt()),
        ]
    );
    // Squares past f64's range are still exact: equal huge values have no
    // spread;
    let zeros = vec![Float(0.0), Float(0.0), Float(0.0), Float(0.0)];
    assert_eq!(spreads(Ty::Float, float_values(&[f64::MAX; 3])), zeros);
    assert_eq!(spreads(Ty::Float, float_values(&[-0.0, 0.0])), zeros);
    // opposite ones a variance past f64's range, and a standard deviation
    // within it.
    let huge = spreads(Ty::Float, float_values(&[1e200, -1e200]));
    assert_eq!(
        huge[..3],
        [Float(f64::INFINITY), Float(f64::INFINITY), Float(1e200)]
    );
    let Float(root) = huge[3] else {
        panic!("{huge:?}")
    };
    assert!((root / (1e200 * 2f64.sqrt()) - 1.0).abs() < 1e-15, "{root}");
    // A variance below f64's range is 0, its standard deviation is not;
    // tiny values keep an exact spread.
    assert_eq!(
        spreads(Ty::Float, float_values(&[1e-300, -1e-300]))[..3],
        [Float(0.0), Float(0.0), Float(1e-300)]
    );
    assert_eq!(
        spreads(Ty::Float, float_values(&[3e-150, -3e-150, 3e-150, -3e-150]))[0],
        Float(3e-150 * 3e-150)
    );
    // A NaN or an infinity makes every result NaN, except a SAMP one over
    // a single value, which is NULL.
    let nan = |v: &[f64]| {
        (spreads(Ty::Float, float_values(v)).iter())
            .map(|c| match c {
                Float(x) if x.is_nan() => "NaN",
                Null => "NULL",
                _ => "number",
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(nan(&[1.0, f64::NAN, 3.0]), ["NaN"; 4]);
    assert_eq!(nan(&[f64::INFINITY, 1.0]), ["NaN"; 4]);
    assert_eq!(nan(&[f64::NEG_INFINITY]), ["NaN", "NULL", "NaN", "NULL"]);
}

#[test]
fn every_aggregate_over_texts() {
    use Literal::Int;
    check_every_aggregate(
        Ty::Text,
        texts(&[
            None,
            Some("pear"),
            Some("apple"),
            Some("éclair"),
            Some("zoo"),
            None,
            None,
            Some(""),
            None,
        ]),
        &ANY,
        [
            // By code point: "é" (U+00E9) sorts after "z".
            vec![
                Int(5),
                Int(4),
                text("apple"),
                text("éclair"),
                Null,
                text("zoo"),
            ],
            vec![Int(2), Int(0), Null, Null, Null, Null],
            vec![Int(2), Int(1), text(""), text(""), text(""), Null],
        ],
    );
}

#[test]
fn every_aggregate_over_times() {
    use Literal::Int;
    check_every_aggregate(
        Ty::Time,
        Arc::new(TimestampMillisecondArray::from(vec![
            None,
            Some(5_000),
            Some(-3_000),
            Some(10_000),
            Some(0),
            None,
            None,
            Some(7),
            None,
        ])),
        &ANY,
        [
            vec![Int(5), Int(4), Time(-3_000), Time(10_000), Null, Time(0)],
            vec![Int(2), Int(0), Null, Null, Null, Null],
            vec![Int(2), Int(1), Time(7), Time(7), Time(7), Null],
        ],
    );
}

#[test]
fn every_aggregate_over_bools() {
    use Literal::{Bool, Int};
    check_every_aggregate(
        Ty::Bool,
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            None,
            None,
            None,
            Some(true),
            Some(true),
        ])),
        &ANY,
        [
            vec![Int(5), Int(3), Bool(false), Bool(true), Bool(true), Null],
            vec![Int(2), Int(0), Null, Null, Null, Null],
            vec![
                Int(2),
                Int(2),
                Bool(true),
                Bool(true),
                Bool(true),
                Bool(true),
            ],
        ],
    );
}

#[test]
fn float_min_max_order_nans_and_zeros() {
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::Min, Some(col(1, Ty::Float))),
            agg(AggFunc::Max, Some(col(1, Ty::Float))),
        ],
    );
    let mut state = TumblingState::new(p);
    let negative_nan = f64::from_bits(f64::NAN.to_bits() | (1 << 63));
    push(
        &mut state,
        &batch(vec![
            texts(&[
                Some("a"),
                Some("a"),
                Some("a"),
                Some("a"),
                Some("n"),
                Some("n"),
            ]),
            floats(&[
                Some(0.0),
                Some(f64::NAN),
                Some(-0.0),
                Some(f64::NEG_INFINITY),
                Some(negative_nan),
                Some(f64::NAN),
            ]),
            times(&[1, 2, 3, 4, 5, 6]),
        ]),
        0,
    );
    let out = state.close(1_000);
    let b = &out[0].1;
    let (min, max) = (
        b.column(2).as_primitive::<Float64Type>(),
        b.column(3).as_primitive::<Float64Type>(),
    );
    // a: NaN is above every number; -inf the least.
    assert_eq!(min.value(0), f64::NEG_INFINITY);
    assert!(max.value(0).is_nan());
    // n: only NaNs, of either sign: one NaN.
    assert_eq!(min.value(1).to_bits(), f64::NAN.to_bits());
    assert_eq!(max.value(1).to_bits(), f64::NAN.to_bits());

    // Without -inf and NaN: -0.0 is below 0.0.
    let p = plan(
        1_000,
        1,
        vec![],
        vec![
            agg(AggFunc::Min, Some(col(0, Ty::Float))),
            agg(AggFunc::Max, Some(col(0, Ty::Float))),
        ],
    );
    let mut state = TumblingState::new(p);
    push(
        &mut state,
        &batch(vec![
            floats(&[Some(0.0), Some(-0.0), Some(0.0)]),
            times(&[1, 2, 3]),
        ]),
        0,
    );
    let out = state.close(1_000);
    let b = &out[0].1;
    assert_eq!(
        b.column(1).as_primitive::<Float64Type>().value(0).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(
        b.column(2).as_primitive::<Float64Type>().value(0).to_bits(),
        0.0f64.to_bits()
    );
}

#[test]
fn null_keys_group_together() {
    use Literal::Int;
    // Composite text keys: NULL and "" differ; ("ab", "c") and ("a", "bc") differ.
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text), col(1, Ty::Text)],
        vec![agg(AggFunc::CountRows, None)],
    );
    let mut state = TumblingState::new(p);
    push(
        &mut state,
        &batch(vec![
            texts(&[Some("ab"), Some("a"), None, Some(""), None, Some("ab")]),
            texts(&[
                Some("c"),
                Some("bc"),
                Some("x"),
                Some("x"),
                Some("x"),
                Some("c"),
            ]),
            times(&[1, 2, 3, 4, 5, 6]),
        ]),
        0,
    );
    assert_eq!(
        close(&mut state, 1_000),
        vec![(
            0,
            vec![
                vec![Time(0), text("ab"), text("c"), Int(2)],
                vec![Time(0), text("a"), text("bc"), Int(1)],
                vec![Time(0), Null, text("x"), Int(2)],
                vec![Time(0), text(""), text("x"), Int(1)],
            ]
        )]
    );

    // Int and Float keys: NULLs together; -0.0 with 0.0; every NaN one NaN.
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Int), col(1, Ty::Float)],
        vec![agg(AggFunc::CountRows, None)],
    );
    let mut state = TumblingState::new(p);
    let negative_nan = f64::from_bits(f64::NAN.to_bits() | (1 << 63));
    push(
        &mut state,
        &batch(vec![
            ints(&[None, Some(1), None, Some(1), Some(1), Some(1), None]),
            floats(&[
                Some(2.0),
                Some(-0.0),
                Some(2.0),
                Some(0.0),
                Some(f64::NAN),
                Some(negative_nan),
                None,
            ]),
            times(&[1, 2, 3, 4, 5, 6, 7]),
        ]),
        0,
    );
    let out = close(&mut state, 1_000);
    let rows = &out[0].1;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], vec![Time(0), Null, Literal::Float(2.0), Int(2)]);
    assert_eq!(rows[1], vec![Time(0), Int(1), Literal::Float(0.0), Int(2)]);
    assert!(matches!(rows[1][2], Literal::Float(z) if z.to_bits() == 0));
    assert!(matches!(rows[2][2], Literal::Float(n) if n.is_nan()));
    assert_eq!(rows[2][3], Int(2));
    assert_eq!(rows[3], vec![Time(0), Null, Null, Int(1)]);
}

#[test]
fn avg_of_ints_truncates_toward_zero() {
    use Literal::Int;
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text)],
        vec![agg(AggFunc::Avg, Some(col(1, Ty::Int)))],
    );
    let mut state = TumblingState::new(p);
    push(
        &mut state,
        &batch(vec![
            texts(&[
                Some("n"),
                Some("n"),
                Some("p"),
                Some("p"),
                Some("m"),
                Some("m"),
                Some("big"),
                Some("big"),
            ]),
            ints(&[
                Some(-7),
                Some(0),
                Some(7),
                Some(0),
                Some(-1),
                Some(-2),
                Some(i64::MAX),
                Some(i64::MAX - 2),
            ]),
            times(&[1, 2, 3, 4, 5, 6, 7, 8]),
        ]),
        0,
    );
    assert_eq!(
        close(&mut state, 1_000),
        vec![(
            0,
            vec![
                vec![Time(0), text("n"), Int(-3)],
                vec![Time(0), text("p"), Int(3)],
                vec![Time(0), text("m"), Int(-1)],
                // The sum passes BIGINT; the average does not.
                vec![Time(0), text("big"), Int(i64::MAX - 1)],
            ]
        )]
    );
}

#[test]
fn sum_overflow_leaves_the_row_out_of_its_group() {
    use Literal::Int;
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::CountRows, None),
            agg(AggFunc::Sum, Some(col(1, Ty::Int))),
            agg(AggFunc::Max, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = TumblingState::new(p);
    let mut errors = Errors::new();
    state.push(
        &batch(vec![
            texts(&[Some("a"), Some("a"), Some("a"), Some("b"), Some("b")]),
            ints(&[
                Some(i64::MAX - 10),
                Some(20),
                Some(5),
                Some(i64::MIN + 1),
                Some(-2),
            ]),
            times(&[1, 2, 3, 4, 5]),
        ]),
        0,
        &mut errors,
    );
    let rows: Vec<usize> = errors.iter().map(|e| e.row).collect();
    assert_eq!(rows, [1, 4]);
    assert!(
        errors.iter().all(
            |e| e.kind == RowErrorKind::DataException && e.message == "Numeric overflow in SUM"
        )
    );
    assert_eq!(
        close(&mut state, 1_000),
        vec![(
            0,
            vec![
                vec![
                    Time(0),
                    text("a"),
                    Int(2),
                    Int(i64::MAX - 5),
                    Int(i64::MAX - 10)
                ],
                vec![
                    Time(0),
                    text("b"),
                    Int(1),
                    Int(i64::MIN + 1),
                    Int(i64::MIN + 1)
                ],
            ]
        )]
    );
}

#[test]
fn a_row_whose_evaluation_fails_is_left_out_with_one_error() {
    use Literal::Int;
    // Key and argument both `10 / x`: x = 0 fails in both, reported once.
    let ten_over_x = Expr::new(
        ExprKind::Arith(
            ArithOp::Div,
            Box::new(Expr::literal(Literal::Int(10), Ty::Int)),
            Box::new(col(0, Ty::Int)),
        ),
        Ty::Int,
    );
    let p = plan(
        1_000,
        1,
        vec![ten_over_x.clone()],
        vec![
            agg(AggFunc::CountRows, None),
            agg(AggFunc::Sum, Some(ten_over_x)),
        ],
    );
    let mut state = TumblingState::new(p);
    let mut errors = Errors::new();
    state.push(
        &batch(vec![
            ints(&[Some(2), Some(0), Some(5), Some(2)]),
            times(&[1, 2, 3, 4]),
        ]),
        0,
        &mut errors,
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].row, errors[0].kind),
        (1, RowErrorKind::DivisionByZero)
    );
    assert_eq!(
        close(&mut state, 1_000),
        vec![(
            0,
            vec![
                vec![Time(0), Int(5), Int(2), Int(10)],
                vec![Time(0), Int(2), Int(1), Int(2)],
            ]
        )]
    );
}

#[test]
fn null_rowtime_is_a_row_error_and_zoned_rowtimes_are_read() {
    use Literal::Int;
    let p = plan(1_000, 0, vec![], vec![agg(AggFunc::CountRows, None)]);
    let mut state = TumblingState::new(p.clone());
    let mut errors = Errors::new();
    let rowtime: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
        Some(5),
        None,
        Some(1_500),
    ]));
    state.push(&batch(vec![rowtime]), 0, &mut errors);
    assert_eq!(errors.iter().map(|e| e.row).collect::<Vec<_>>(), [1]);
    assert_eq!(
        close(&mut state, 2_000),
        vec![
            (0, vec![vec![Time(0), Int(1)]]),
            (1_000, vec![vec![Time(1_000), Int(1)]]),
        ]
    );

    let mut state = TumblingState::new(p);
    let zoned: ArrayRef =
        Arc::new(TimestampMillisecondArray::from(vec![5, 1_500]).with_timezone("+00:00"));
    push(&mut state, &batch(vec![zoned]), 0);
    assert_eq!(state.open_windows(), 2);
    // An empty batch changes nothing.
    push(&mut state, &batch(vec![times(&[])]), 0);
    assert_eq!((state.open_windows(), state.open_groups()), (2, 2));
}

/// Rows at one ROWTIME from two origins: origin 1 pushes b1, b2 first, then
/// origin 0 pushes a1, a2 and later a3. The order is a1 a2 a3 b1 b2.
fn order_batches() -> [(RecordBatch, u64); 3] {
    let rows = |groups: &[&str], values: &[&str]| {
        let g: Vec<Option<&str>> = groups.iter().map(|s| Some(*s)).collect();
        let v: Vec<Option<&str>> = values.iter().map(|s| Some(*s)).collect();
        batch(vec![texts(&g), texts(&v), times(&vec![5; values.len()])])
    };
    [
        (rows(&["X", "Y"], &["b1", "b2"]), 1),
        (rows(&["Y", "Y"], &["a1", "a2"]), 0),
        (rows(&["X"], &["a3"]), 0),
    ]
}

fn order_plan() -> Arc<Tumbling> {
    plan(
        1_000,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::FirstValue, Some(col(1, Ty::Text))),
            agg(AggFunc::LastValue, Some(col(1, Ty::Text))),
        ],
    )
}

fn order_expected() -> Vec<(i64, Vec<Vec<Literal>>)> {
    // Y's first row is a1, X's is a3: Y comes first.
    vec![(
        0,
        vec![
            vec![Time(0), text("Y"), text("a1"), text("b2")],
            vec![Time(0), text("X"), text("a3"), text("b1")],
        ],
    )]
}

#[test]
fn first_and_last_value_follow_rowtime_then_origin_then_arrival() {
    let mut state = TumblingState::new(order_plan());
    for (b, origin) in &order_batches() {
        push(&mut state, b, *origin);
    }
    assert_eq!(close(&mut state, 1_000), order_expected());

    // The same rows seen by one state per origin, merged on a third.
    let mut per_origin = [
        TumblingState::new(order_plan()),
        TumblingState::new(order_plan()),
    ];
    for (b, origin) in &order_batches() {
        push(&mut per_origin[*origin as usize], b, *origin);
    }
    let mut home = TumblingState::new(order_plan());
    for state in per_origin.iter_mut().rev() {
        for (start, partial) in state.take_closed(1_000) {
            home.merge(start, partial);
        }
    }
    assert_eq!(close(&mut home, 1_000), order_expected());
}

#[test]
fn negative_rowtimes_and_a_width_that_does_not_divide_them() {
    use Literal::Int;
    let p = plan(7, 0, vec![], vec![agg(AggFunc::CountRows, None)]);
    let mut state = TumblingState::new(p);
    // Windows: -15 → [-21, -14); -14, -8 → [-14, -7); -7, -1 → [-7, 0);
    // 0, 6 → [0, 7); 7 → [7, 14).
    push(
        &mut state,
        &batch(vec![times(&[-15, -14, -8, -7, -1, 0, 6, 7])]),
        0,
    );
    assert_eq!(state.open_windows(), 5);
    assert_eq!(close(&mut state, -15), vec![]);
    assert_eq!(
        close(&mut state, -7),
        vec![
            (-21, vec![vec![Time(-21), Int(1)]]),
            (-14, vec![vec![Time(-14), Int(2)]]),
        ]
    );
    assert_eq!(
        close(&mut state, 13),
        vec![
            (-7, vec![vec![Time(-7), Int(2)]]),
            (0, vec![vec![Time(0), Int(2)]]),
        ]
    );
    assert_eq!(
        close(&mut state, i64::MAX),
        vec![(7, vec![vec![Time(7), Int(1)]])]
    );

    // Near the ends of time: no panic; a window before i64::MIN is an error.
    let p = plan(1_000, 0, vec![], vec![agg(AggFunc::CountRows, None)]);
    let mut state = TumblingState::new(p);
    let mut errors = Errors::new();
    state.push(&batch(vec![times(&[i64::MIN, i64::MAX])]), 0, &mut errors);
    assert_eq!(errors.iter().map(|e| e.row).collect::<Vec<_>>(), [0]);
    assert_eq!(state.open_windows(), 1);
    assert_eq!(state.close(i64::MAX).len(), 1);
}

#[test]
fn float_sums_are_exact_whatever_the_order_or_split() {
    let p = plan(
        1_000,
        1,
        vec![],
        vec![
            agg(AggFunc::Sum, Some(col(0, Ty::Float))),
            agg(AggFunc::Avg, Some(col(0, Ty::Float))),
        ],
    );
    let sums = |values: &[f64], split: usize| {
        let mut home = TumblingState::new(p.clone());
        for (origin, part) in [&values[..split], &values[split..]].iter().enumerate() {
            let mut state = TumblingState::new(p.clone());
            let v: Vec<Option<f64>> = part.iter().map(|x| Some(*x)).collect();
            push(
                &mut state,
                &batch(vec![floats(&v), times(&vec![1; v.len()])]),
                origin as u64,
            );
            for (start, partial) in state.take_closed(1_000) {
                home.merge(start, partial);
            }
        }
        close(&mut home, 1_000).remove(0).1.remove(0)
    };
    use Literal::Float;
    for split in 0..=3 {
        assert_eq!(
            sums(&[1e16, 1.0, -1e16], split)[1..],
            [Float(1.0), Float(1.0 / 3.0)]
        );
        assert_eq!(
            sums(&[-1e16, 1e16, 1.0], split)[1..],
            [Float(1.0), Float(1.0 / 3.0)]
        );
    }
    // Ten tenths make one (naive addition gives 0.9999999999999999).
    assert_eq!(sums(&[0.1; 10], 4)[1], Float(1.0));
    // Small parts are not lost; a halfway case rounds to even, unless
    // something lies beyond it.
    let half_ulp = f64::EPSILON / 2.0;
    assert_eq!(sums(&[1.0, 1e-16, 1e-16], 1)[1], Float(1.0 + f64::EPSILON));
    assert_eq!(sums(&[1.0, half_ulp], 1)[1], Float(1.0));
    assert_eq!(
        sums(&[1.0, half_ulp, 1e-30], 2)[1],
        Float(1.0 + f64::EPSILON)
    );
    assert_eq!(
        sums(&[1e-30, half_ulp, 1.0], 1)[1],
        Float(1.0 + f64::EPSILON)
    );
    // Infinities and overflow.
    assert_eq!(sums(&[f64::INFINITY, 1.0], 1)[1], Float(f64::INFINITY));
    assert!(matches!(sums(&[f64::INFINITY, f64::NEG_INFINITY], 1)[1], Float(x) if x.is_nan()));
    assert_eq!(sums(&[f64::MAX, f64::MAX], 1)[1], Float(f64::INFINITY));

    let mut s = ExactSum::default();
    for x in [0.5, -0.25, 3e300, -3e300, 0.125] {
        s.add(x);
    }
    assert_eq!(s.value(), 0.375);
}

/// One state per origin, their partials taken at random safe watermarks and
/// merged on a home state, closed at random watermarks: the home state's
/// group rows equal one state's that pushed every row.
#[test]
fn partials_merged_on_a_home_state_equal_one_state() {
    for seed in seeds(&[0x7A11_0001, 0x7A11_0002, 0x7A11_0003]) {
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        let mut windows = 0;
        for _ in 0..25 {
            windows += merge_case(&mut rng);
        }
        assert!(windows > 50, "only {windows} windows closed");
    }
}

/// Columns: K BIGINT, S text, I BIGINT, F DOUBLE, ROWTIME.
fn property_plan(width_ms: i64) -> Arc<Tumbling> {
    let (k, s, i, f, t) = (
        col(0, Ty::Int),
        col(1, Ty::Text),
        col(2, Ty::Int),
        col(3, Ty::Float),
        col(4, Ty::Time),
    );
    use AggFunc::*;
    plan(
        width_ms,
        4,
        vec![k, s.clone()],
        vec![
            agg(CountRows, None),
            agg(Count, Some(f.clone())),
            agg(Sum, Some(i.clone())),
            agg(Sum, Some(f.clone())),
            agg(Avg, Some(i.clone())),
            agg(Avg, Some(f.clone())),
            agg(Min, Some(f.clone())),
            agg(Max, Some(f.clone())),
            agg(Min, Some(s.clone())),
            agg(Max, Some(i.clone())),
            agg(FirstValue, Some(f.clone())),
            agg(LastValue, Some(s)),
            agg(FirstValue, Some(i.clone())),
            agg(LastValue, Some(f.clone())),
            agg(Min, Some(t.clone())),
            agg(LastValue, Some(t)),
            agg(VarPop, Some(i.clone())),
            agg(VarSamp, Some(f.clone())),
            agg(StddevPop, Some(f)),
            agg(StddevSamp, Some(i)),
        ],
    )
}

/// A value in `lo..=hi`.
fn between(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
    (i128::from(lo) + (u128::from(rng.next_u64()) % span) as i128) as i64
}

/// One origin's rows, in batches, rowtimes not decreasing.
fn origin_batches(rng: &mut Rng) -> Vec<RecordBatch> {
    let rows = rng.below(120);
    let mut t = between(rng, -20_000, 20_000);
    let (mut k, mut s, mut i, mut f, mut ts) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rows {
        if !rng.chance(30) {
            t += between(rng, 0, 1_500);
        }
        ts.push(t);
        k.push((!rng.chance(10)).then(|| between(rng, 0, 2)));
        s.push(*rng.pick(&[None, Some("x"), Some("y"), Some("zz")]));
        i.push((!rng.chance(10)).then(|| between(rng, -1_000_000, 1_000_000)));
        f.push(match rng.below(10) {
            0 => None,
            1 => Some(-0.0),
            2 => Some(between(rng, -1_000, 1_000) as f64 * 1e15),
            _ => Some(between(rng, -1_000, 1_000) as f64 * 0.1),
        });
    }
    let mut batches = Vec::new();
    let mut at = 0;
    while at < rows {
        let n = (1 + rng.below(8)).min(rows - at);
        let range = at..at + n;
        batches.push(batch(vec![
            ints(&k[range.clone()]),
            texts(&s[range.clone()]),
            ints(&i[range.clone()]),
            floats(&f[range.clone()]),
            times(&ts[range]),
        ]));
        at += n;
    }
    batches
}

fn first_rowtime(b: &RecordBatch) -> i64 {
    b.column(4)
        .as_primitive::<TimestampMillisecondType>()
        .value(0)
}

/// The home state's group rows are the single state's: readably first,
/// then exactly (bits of floats, nulls, types).
fn assert_same(home: &[(i64, RecordBatch)], single: &[(i64, RecordBatch)], watermark_ms: i64) {
    let readable = |closed: &[(i64, RecordBatch)]| {
        (closed.iter())
            .map(|(start, b)| (*start, rows_of(b)))
            .collect::<Vec<_>>()
    };
    assert_eq!(readable(home), readable(single), "close({watermark_ms})");
    assert_eq!(home, single, "close({watermark_ms})");
}

/// Returns how many windows closed.
fn merge_case(rng: &mut Rng) -> usize {
    let width_ms = *rng.pick(&[1_000, 3_000, 7_000]);
    let p = property_plan(width_ms);
    let mut pending: Vec<std::collections::VecDeque<RecordBatch>> =
        (0..3).map(|_| origin_batches(rng).into()).collect();
    let mut states: Vec<TumblingState> = (0..3).map(|_| TumblingState::new(p.clone())).collect();
    let mut home = TumblingState::new(p.clone());
    let mut single = TumblingState::new(p);
    let mut taken = [i64::MIN; 3];
    let mut closed = i64::MIN;
    let mut windows = 0;
    let mut errors = Errors::new();
    loop {
        let ready: Vec<usize> = (0..3).filter(|&o| !pending[o].is_empty()).collect();
        if ready.is_empty() {
            break;
        }
        let origin = *rng.pick(&ready);
        let b = pending[origin].pop_front().expect("a pending batch");
        states[origin].push(&b, origin as u64, &mut errors);
        single.push(&b, origin as u64, &mut errors);
        if !rng.chance(30) {
            continue;
        }
        // Safe: no later row has a ROWTIME below it.
        let watermark = (pending.iter())
            .filter_map(|q| q.front().map(first_rowtime))
            .min()
            .unwrap_or(i64::MAX);
        for (o, state) in states.iter_mut().enumerate() {
            if rng.chance(60) && taken[o] < watermark {
                taken[o] = between(rng, taken[o].max(-40_000), watermark);
                for (start, partial) in state.take_closed(taken[o]) {
                    assert!(partial.groups() > 0);
                    home.merge(start, partial);
                }
            }
        }
        let ready_to_close = taken.iter().copied().min().unwrap_or(i64::MIN);
        if closed < ready_to_close {
            closed = between(rng, closed.max(-40_000), ready_to_close);
            let (a, b) = (home.close(closed), single.close(closed));
            windows += b.len();
            assert_same(&a, &b, closed);
        }
    }
    for state in &mut states {
        for (start, partial) in state.take_closed(i64::MAX) {
            home.merge(start, partial);
        }
        assert_eq!(state.open_windows(), 0);
    }
    let (a, b) = (home.close(i64::MAX), single.close(i64::MAX));
    windows += b.len();
    assert_same(&a, &b, i64::MAX);
    assert_eq!(errors, vec![]);
    assert_eq!((home.open_windows(), single.open_windows()), (0, 0));
    windows
}
