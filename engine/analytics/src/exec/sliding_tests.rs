//! Tests of the sliding-window operator: E4's golden values (RANGE and
//! ROWS), partitions, NULL arguments, several windows, equal ROWTIMEs, row
//! errors, forgetting, the exact float sum, and a seeded check against a
//! naive O(n²) evaluation (`RIFFLE_SEED=… cargo test -p riffle-analytics
//! sliding`).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::DataType;
use riffle_store::testkit::{Rng, seeds};

use super::{Moments, SlidingState, WideSum};
use crate::exec::tumbling::{Acc, Place, ValueRef};
use crate::expr::eval::Errors;
use crate::expr::{ArithOp, Expr, ExprKind, RowErrorKind, Ty};
use crate::plan::{Agg, AggFunc, Frame, Sliding, WindowSpec};

fn col(i: usize, ty: Ty) -> Expr {
    Expr::column(i, ty)
}

/// `func(arg)` over window `w`, its type the counts', the variances' or
/// the argument's.
fn agg(w: usize, func: AggFunc, arg: Option<Expr>) -> (usize, Agg) {
    let ty = match func {
        AggFunc::CountRows | AggFunc::Count => Ty::Int,
        AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp => Ty::Float,
        _ => arg.as_ref().map_or(Ty::Int, |a| a.ty),
    };
    (
        w,
        Agg {
            func,
            arg,
            ty,
            default: None,
        },
    )
}

fn window(partition: Vec<Expr>, frame: Frame) -> WindowSpec {
    WindowSpec { partition, frame }
}

fn plan(rowtime: usize, windows: Vec<WindowSpec>, aggs: Vec<(usize, Agg)>) -> Arc<Sliding> {
    Arc::new(Sliding {
        rowtime,
        windows,
        aggs,
        items: vec![],
    })
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

/// A cell as text: `-` for NULL, floats with `{:?}` (so -0.0 and NaN show).
fn cell(c: &ArrayRef, row: usize) -> String {
    if c.is_null(row) {
        return "-".into();
    }
    match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => format!("{:?}", c.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => c.as_string::<i32>().value(row).to_owned(),
        DataType::Timestamp(..) => {
            format!(
                "t{}",
                c.as_primitive::<TimestampMillisecondType>().value(row)
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

/// The aggregate columns, row by row, each row's cells joined by ` `.
fn rows_of(columns: &[ArrayRef], rows: usize) -> Vec<String> {
    (0..rows)
        .map(|row| {
            (columns.iter())
                .map(|c| cell(c, row))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn push(state: &mut SlidingState, b: &RecordBatch) -> Vec<String> {
    let mut errors = Errors::new();
    let columns = state.push(b, &mut errors);
    assert_eq!(errors, vec![], "no row errors expected");
    assert_eq!(columns.len(), state.plan.aggs.len());
    for (c, (_, a)) in columns.iter().zip(&state.plan.aggs) {
        assert_eq!((c.len(), c.data_type()), (b.num_rows(), &a.ty.arrow()));
    }
    rows_of(&columns, b.num_rows())
}

const RANGE_MINUTE: Frame = Frame::Range { ms: 60_000 };

/// E4: one ticker at 0, 20, 40, 61, 62 s priced 10…50; MIN, MAX, AVG over
/// the last minute (RANGE) and over the last three rows (ROWS 2), pushed
/// row by row and all at once.
#[test]
fn e4_min_max_avg_over_a_minute_and_over_three_rows() {
    // TICKER, PRICE, ROWTIME.
    let price = || Some(col(1, Ty::Float));
    let aggs = |w| {
        vec![
            agg(w, AggFunc::Min, price()),
            agg(w, AggFunc::Max, price()),
            agg(w, AggFunc::Avg, price()),
        ]
    };
    let ticker = vec![col(0, Ty::Text)];
    let cases = [
        (
            RANGE_MINUTE,
            [
                "10.0 10.0 10.0",
                "10.0 20.0 15.0",
                "10.0 30.0 20.0",
                "20.0 40.0 30.0",
                "20.0 50.0 35.0",
            ],
        ),
        (
            Frame::Rows { preceding: 2 },
            [
                "10.0 10.0 10.0",
                "10.0 20.0 15.0",
                "10.0 30.0 20.0",
                "20.0 40.0 30.0",
                "30.0 50.0 40.0",
            ],
        ),
    ];
    let rowtimes = [0, 20_000, 40_000, 61_000, 62_000];
    let prices = [10.0, 20.0, 30.0, 40.0, 50.0];
    for (frame, expected) in cases {
        let p = plan(2, vec![window(ticker.clone(), frame)], aggs(0));
        let mut one_by_one = SlidingState::new(p.clone());
        let mut got = Vec::new();
        for (&t, &price) in rowtimes.iter().zip(&prices) {
            let b = batch(vec![
                texts(&[Some("AMZN")]),
                floats(&[Some(price)]),
                times(&[t]),
            ]);
            got.extend(push(&mut one_by_one, &b));
        }
        assert_eq!(got, expected, "{frame:?}, row by row");
        let mut at_once = SlidingState::new(p);
        let b = batch(vec![
            texts(&[Some("AMZN"); 5]),
            floats(&prices.map(Some)),
            times(&rowtimes),
        ]);
        assert_eq!(push(&mut at_once, &b), expected, "{frame:?}, at once");
        assert_eq!(at_once.partitions(), 1);
    }
}

/// Two tickers interleaved: each row sees only its own ticker's rows.
#[test]
fn partitions_interleaved_see_only_their_own_rows() {
    let p = plan(
        2,
        vec![window(vec![col(0, Ty::Text)], RANGE_MINUTE)],
        vec![
            agg(0, AggFunc::CountRows, None),
            agg(0, AggFunc::Sum, Some(col(1, Ty::Int))),
            agg(0, AggFunc::FirstValue, Some(col(1, Ty::Int))),
            agg(0, AggFunc::LastValue, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = SlidingState::new(p);
    let (a, b) = (Some("A"), Some("B"));
    let got = push(
        &mut state,
        &batch(vec![
            texts(&[a, b, a, b, a, b]),
            ints(&[Some(1), Some(10), Some(2), Some(20), Some(3), Some(30)]),
            times(&[0, 1_000, 30_000, 61_000, 61_000, 62_000]),
        ]),
    );
    assert_eq!(
        got,
        vec![
            "1 1 1 1",
            "1 10 10 10",
            "2 3 1 2",
            // B at 61 s: B's row at 1 s is exactly 60 s before, in the frame.
            "2 30 10 20",
            // A at 61 s: A's row at 0 s has left.
            "2 5 2 3",
            // B at 62 s: B's row at 1 s has left.
            "2 50 20 30",
        ]
    );
    assert_eq!(state.partitions(), 2);
}

/// NULL arguments: counted by COUNT(*) only, skipped by SUM / AVG / MIN /
/// MAX (NULL over no value), kept by FIRST_VALUE / LAST_VALUE; a NULL
/// partition value is a partition.
#[test]
fn null_arguments_and_null_partitions() {
    let v = || Some(col(1, Ty::Int));
    let p = plan(
        2,
        vec![window(vec![col(0, Ty::Text)], Frame::Rows { preceding: 1 })],
        vec![
            agg(0, AggFunc::CountRows, None),
            agg(0, AggFunc::Count, v()),
            agg(0, AggFunc::Sum, v()),
            agg(0, AggFunc::Avg, v()),
            agg(0, AggFunc::Min, v()),
            agg(0, AggFunc::Max, v()),
            agg(0, AggFunc::FirstValue, v()),
            agg(0, AggFunc::LastValue, v()),
        ],
    );
    let mut state = SlidingState::new(p);
    let got = push(
        &mut state,
        &batch(vec![
            texts(&[None, None, None, Some("x"), None]),
            ints(&[None, Some(-3), Some(4), None, None]),
            times(&[0, 1, 2, 3, 4]),
        ]),
    );
    assert_eq!(
        got,
        vec![
            "1 0 - - - - - -",
            "2 1 -3 -3 -3 -3 - -3",
            // AVG of integers truncates toward zero: (-3 + 4) / 2 = 0.
            "2 2 1 0 -3 4 -3 4",
            "1 0 - - - - - -",
            "2 1 4 4 4 4 4 -",
        ]
    );
    assert_eq!(state.partitions(), 2);
}

/// Several windows in one plan, their aggregates interleaved in the
/// plan's order: each aggregate over its own window's frame.
#[test]
fn several_windows_each_over_its_own_frame() {
    // K, V, ROWTIME.
    let v = || Some(col(1, Ty::Int));
    let p = plan(
        2,
        vec![
            window(vec![col(0, Ty::Text)], Frame::Range { ms: 10 }),
            window(vec![], Frame::Rows { preceding: 1 }),
            window(vec![], Frame::Range { ms: 0 }),
        ],
        vec![
            agg(1, AggFunc::Sum, v()),
            agg(0, AggFunc::Sum, v()),
            agg(2, AggFunc::CountRows, None),
            agg(0, AggFunc::CountRows, None),
        ],
    );
    let mut state = SlidingState::new(p);
    let got = push(
        &mut state,
        &batch(vec![
            texts(&[Some("a"), Some("b"), Some("a"), Some("a")]),
            ints(&[Some(1), Some(10), Some(100), Some(1000)]),
            times(&[0, 5, 5, 15]),
        ]),
    );
    assert_eq!(
        got,
        vec!["1 1 1 1", "11 10 1 1", "110 101 2 2", "1100 1100 1 2"]
    );
    // Windows 0 and 2 are RANGE; window 1 one partition.
    assert_eq!(state.partitions(), 4);
}

/// Rows with one ROWTIME: each sees the ones pushed before it, not after,
/// across batches too.
#[test]
fn equal_rowtimes_see_the_rows_pushed_before_them() {
    let p = plan(
        1,
        vec![window(vec![], Frame::Range { ms: 0 })],
        vec![
            agg(0, AggFunc::CountRows, None),
            agg(0, AggFunc::FirstValue, Some(col(0, Ty::Int))),
            agg(0, AggFunc::Max, Some(col(0, Ty::Int))),
        ],
    );
    let mut state = SlidingState::new(p);
    let b = |v: &[i64], t: &[i64]| {
        batch(vec![
            ints(&v.iter().map(|&x| Some(x)).collect::<Vec<_>>()),
            times(t),
        ])
    };
    assert_eq!(
        push(&mut state, &b(&[5, 3, 7], &[100, 100, 100])),
        vec!["1 5 5", "2 5 5", "3 5 7"]
    );
    assert_eq!(
        push(&mut state, &b(&[1, 2], &[100, 101])),
        vec!["4 5 7", "1 2 2"]
    );
}

/// A row whose partition or argument fails, whose ROWTIME is NULL, or which
/// would overflow a SUM in any window is NULL everywhere, has one error,
/// and is in no later frame.
#[test]
fn failed_rows_are_null_and_in_no_later_frame() {
    // K, V, ROWTIME; window 0 over K / V (division by zero when V = 0).
    let key = Expr::new(
        ExprKind::Arith(
            ArithOp::Div,
            Box::new(col(0, Ty::Int)),
            Box::new(col(1, Ty::Int)),
        ),
        Ty::Int,
    );
    let p = plan(
        2,
        vec![
            window(vec![key], Frame::Rows { preceding: 10 }),
            window(vec![], Frame::Rows { preceding: 10 }),
        ],
        vec![
            agg(0, AggFunc::CountRows, None),
            agg(1, AggFunc::CountRows, None),
            agg(1, AggFunc::Sum, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = SlidingState::new(p);
    let mut errors = Errors::new();
    let b = batch(vec![
        ints(&[Some(0), Some(1), Some(2), Some(0), Some(0)]),
        ints(&[Some(i64::MAX), Some(0), Some(1), Some(1), Some(-1)]),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(0),
            Some(1),
            Some(2),
            None,
            Some(4),
        ])),
    ]);
    let columns = state.push(&b, &mut errors);
    let failed: Vec<(usize, RowErrorKind, &str)> = (errors.iter())
        .map(|e| (e.row, e.kind, e.message.as_str()))
        .collect();
    assert_eq!(failed[0].0, 1);
    assert_eq!(failed[0].1, RowErrorKind::DivisionByZero);
    assert_eq!(
        failed[1..],
        [
            (2, RowErrorKind::DataException, "Numeric overflow in SUM"),
            (3, RowErrorKind::DataException, "ROWTIME is NULL"),
        ]
    );
    assert_eq!(
        rows_of(&columns, 5),
        vec![
            "1 1 9223372036854775807",
            "- - -",
            "- - -",
            "- - -",
            "2 2 9223372036854775806",
        ]
    );
}

/// `forget_before` drops RANGE partitions whose newest row is older than
/// the watermark minus the range, and only those; ROWS partitions stay.
#[test]
fn forget_before_drops_partitions_no_later_row_can_see() {
    let p = plan(
        2,
        vec![
            window(vec![col(0, Ty::Text)], Frame::Range { ms: 100 }),
            window(vec![col(0, Ty::Text)], Frame::Rows { preceding: 3 }),
        ],
        vec![
            agg(0, AggFunc::CountRows, None),
            agg(1, AggFunc::CountRows, None),
            agg(0, AggFunc::Sum, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = SlidingState::new(p);
    let keys = [Some("a"), Some("b"), Some("c"), Some("a")];
    push(
        &mut state,
        &batch(vec![
            texts(&keys),
            ints(&[Some(1), Some(2), Some(3), Some(4)]),
            times(&[0, 10, 20, 30]),
        ]),
    );
    assert_eq!(state.partitions(), 6);
    // b's newest row (10) is the oldest: kept while 10 ≥ watermark − 100.
    state.forget_before(110);
    assert_eq!(state.partitions(), 6);
    state.forget_before(111);
    assert_eq!(state.partitions(), 5);
    state.forget_before(130);
    assert_eq!(state.partitions(), 4);
    state.forget_before(131);
    assert_eq!(state.partitions(), 3);
    assert_eq!(state.frame_rows(), 4);
    // A forgotten partition comes back empty, in a reused slot; a row of
    // the ROWS window still sees its partition's rows.
    let got = push(
        &mut state,
        &batch(vec![
            texts(&[Some("b"), Some("a")]),
            ints(&[Some(5), Some(6)]),
            times(&[131, 140]),
        ]),
    );
    assert_eq!(got, vec!["1 2 5", "1 3 6"]);
    assert_eq!(state.partitions(), 5);
    state.forget_before(i64::MAX);
    assert_eq!(state.partitions(), 3);
    state.forget_before(i64::MIN);
    assert_eq!(state.partitions(), 3);
}

#[test]
fn wide_sum_takes_values_back_out_exactly() {
    let mut s = WideSum::new();
    assert_eq!(s.value().to_bits(), 0.0_f64.to_bits());
    for x in [1e300, 0.1, -1e300, 1e-320] {
        s.add(x);
    }
    assert_eq!(s.value(), 0.1);
    s.remove(0.1);
    assert_eq!(s.value(), 1e-320);
    s.remove(1e-320);
    s.add(-0.0);
    assert_eq!(s.value().to_bits(), 0.0_f64.to_bits());
    // Past f64's range on the way, back inside at the end.
    for x in [f64::MAX, f64::MAX, -f64::MAX] {
        s.add(x);
    }
    assert_eq!(s.value(), f64::MAX);
    s.add(f64::MAX);
    assert_eq!(s.value(), f64::INFINITY);
    s.remove(f64::MAX);
    s.remove(f64::MAX);
    s.add(-f64::MAX);
    s.add(-f64::MAX);
    assert_eq!(s.value(), f64::NEG_INFINITY);
    s.remove(-f64::MAX);
    s.remove(-f64::MAX);
    assert_eq!(s.value(), 0.0);
    // Infinities and NaN counted apart.
    s.add(5.0);
    s.add(f64::INFINITY);
    assert_eq!(s.value(), f64::INFINITY);
    s.add(f64::NEG_INFINITY);
    assert!(s.value().is_nan());
    s.remove(f64::INFINITY);
    assert_eq!(s.value(), f64::NEG_INFINITY);
    s.remove(f64::NEG_INFINITY);
    s.add(f64::NAN);
    assert!(s.value().is_nan());
    s.remove(f64::NAN);
    assert_eq!(s.value(), 5.0);
    // Ties round to even: 2^53 + 1 is half-way between 2^53 and 2^53 + 2.
    let mut t = WideSum::new();
    t.add(9007199254740992.0);
    t.add(1.0);
    assert_eq!(t.value(), 9007199254740992.0);
    t.add(1e-300);
    assert_eq!(t.value(), 9007199254740994.0);
    t.remove(1e-300);
    t.add(2.0);
    assert_eq!(t.value(), 9007199254740996.0);
    assert_eq!(
        {
            let mut n = WideSum::new();
            n.add(-1.5);
            n.add(-f64::MIN_POSITIVE / 4.0);
            n.value()
        },
        -1.5
    );
    let mut sub = WideSum::new();
    sub.add(f64::from_bits(1));
    sub.add(f64::from_bits(3));
    assert_eq!(sub.value(), f64::from_bits(4));
    sub.remove(f64::from_bits(3));
    sub.add(-f64::from_bits(2));
    assert_eq!(sub.value(), -f64::from_bits(1));
}

/// Random values added and removed in random order: the value is the
/// exactly rounded sum of what remains (the tumbling operator's sum).
#[test]
fn wide_sum_equals_an_exact_sum_of_what_remains() {
    for seed in seeds(&[0x511D_0001, 0x511D_0002]) {
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            let mut s = WideSum::new();
            let mut held: Vec<f64> = Vec::new();
            for _ in 0..rng.below(40) {
                if !held.is_empty() && rng.chance(35) {
                    let x = held.remove(rng.below(held.len()));
                    s.remove(x);
                } else {
                    let x = random_float(&mut rng);
                    held.push(x);
                    s.add(x);
                }
                let mut exact = Acc::empty(&Agg {
                    func: AggFunc::Sum,
                    arg: None,
                    ty: Ty::Float,
                    default: None,
                });
                for (i, &x) in held.iter().enumerate() {
                    exact.add(place(i, 0), Some(ValueRef::Float(x)));
                }
                let want = match exact.result() {
                    Some(ValueRef::Float(x)) => x,
                    _ => 0.0,
                };
                assert_eq!(s.value().to_bits(), want.to_bits(), "{held:?}");
            }
        }
    }
}

/// The variances of a few small integers (|x| < 2^20, at most 64 of
/// them) by integer arithmetic: n·Σx² − (Σx)² and the divisor are exact in
/// doubles, so one division rounds them as `Moments` must. `None`: NULL.
fn variance_reference(values: &[i64], sample: bool) -> Option<f64> {
    let n = values.len() as i128;
    if n < 1 + i128::from(sample) {
        return None;
    }
    let sum: i128 = values.iter().map(|&x| i128::from(x)).sum();
    let squares: i128 = values.iter().map(|&x| i128::from(x) * i128::from(x)).sum();
    let numerator = n * squares - sum * sum;
    assert!(numerator < 1 << 53);
    Some(numerator as f64 / (n * (n - i128::from(sample))) as f64)
}

/// The four results as `rows_of` writes them, by [`variance_reference`].
fn spreads_reference(values: &[i64]) -> String {
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:?}"));
    let (pop, samp) = (
        variance_reference(values, false),
        variance_reference(values, true),
    );
    [pop, samp, pop.map(f64::sqrt), samp.map(f64::sqrt)]
        .map(show)
        .join(" ")
}

/// 2, 4, 4, 4, 5, 5, 7, 9, a NULL row after each, over six rows (ROWS 5)
/// and over the last 2 seconds (RANGE), both three values, as BIGINTs and
/// DOUBLEs: each row's
/// VAR_POP, VAR_SAMP, STDDEV_POP, STDDEV_SAMP over the values still in
/// its frame (values leave), and the known totals over the whole set.
#[test]
fn variances_over_frames_that_values_leave() {
    let values = [2, 4, 4, 4, 5, 5, 7, 9];
    let rowtimes: Vec<i64> = (0..values.len() as i64).map(|t| t * 1_000).collect();
    use AggFunc::*;
    let funcs = [VarPop, VarSamp, StddevPop, StddevSamp];
    for (frame, width) in [
        (Frame::Rows { preceding: 5 }, 3),
        (Frame::Range { ms: 2_000 }, 3),
        (Frame::Rows { preceding: 100 }, 8),
    ] {
        for ty in [Ty::Int, Ty::Float] {
            let aggs = funcs.map(|f| agg(0, f, Some(col(0, ty)))).to_vec();
            let mut state = SlidingState::new(plan(1, vec![window(vec![], frame)], aggs));
            // A value's NULL row sees the same values as the value's row.
            let (mut column, mut times_ms, mut expected) = (vec![], vec![], vec![]);
            for (at, &t) in rowtimes.iter().enumerate() {
                let frame = &values[(at + 1).saturating_sub(width)..=at];
                for v in [Some(values[at]), None] {
                    column.push(v);
                    times_ms.push(t);
                    expected.push(spreads_reference(frame));
                }
            }
            let column: ArrayRef = match ty {
                Ty::Int => ints(&column),
                _ => floats(
                    &column
                        .iter()
                        .map(|v| v.map(|x| x as f64))
                        .collect::<Vec<_>>(),
                ),
            };
            let got = push(&mut state, &batch(vec![column, times(&times_ms)]));
            assert_eq!(got, expected, "{frame:?} {ty:?}");
            if width == 8 {
                let all = (32f64 / 7.0).sqrt();
                assert_eq!(got[15], format!("4.0 {:?} 2.0 {all:?}", 32.0 / 7.0));
            }
        }
    }
    // A frame of one value: 0 for POP, NULL for SAMP; of NULLs only: NULL.
    let aggs = funcs.map(|f| agg(0, f, Some(col(0, Ty::Int)))).to_vec();
    let rows0 = window(vec![], Frame::Rows { preceding: 0 });
    let mut state = SlidingState::new(plan(1, vec![rows0], aggs));
    let got = push(
        &mut state,
        &batch(vec![ints(&[Some(3), None]), times(&[0, 1])]),
    );
    assert_eq!(got, ["0.0 - 0.0 -", "- - - -"]);
}

/// Random small integers, and the same scaled by powers of two as doubles,
/// added, some added and taken back out, or merged from two sets: the
/// results are [`variance_reference`]'s, bit for bit.
#[test]
fn moments_equal_an_integer_reference() {
    for seed in seeds(&[0x511D_2001, 0x511D_2002]) {
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..300 {
            let n = rng.below(65);
            let values: Vec<i64> = (0..n)
                .map(|_| rng.range(0, 1 << 21) as i64 - (1 << 20))
                .collect();
            // 2^k scales a variance by 2^2k exactly (while it stays normal).
            let k = rng.range(0, 800) as i32 - 400;
            let scale = 2f64.powi(k);
            let mut ints = Moments::new();
            let mut floats = Moments::new();
            let (mut left, mut right) = (Moments::new(), Moments::new());
            for &x in &values {
                let noise = rng.range(0, 1 << 40) as i64 - (1 << 39);
                ints.add(ValueRef::Int(noise));
                ints.add(ValueRef::Int(x));
                ints.remove(ValueRef::Int(noise));
                floats.add(ValueRef::Float(x as f64 * scale));
                let half = if rng.chance(50) {
                    &mut left
                } else {
                    &mut right
                };
                half.add(ValueRef::Float(x as f64 * scale));
            }
            left.merge(&right);
            assert_eq!(left, floats);
            for (func, sample, root) in [
                (AggFunc::VarPop, false, false),
                (AggFunc::VarSamp, true, false),
                (AggFunc::StddevPop, false, true),
                (AggFunc::StddevSamp, true, true),
            ] {
                let want = variance_reference(&values, sample);
                let scaled = want.map(|v| v * scale * scale);
                let (want, scaled) = match root {
                    true => (want.map(f64::sqrt), scaled.map(f64::sqrt)),
                    false => (want, scaled),
                };
                let bits = |v: Option<f64>| v.map(f64::to_bits);
                assert_eq!(bits(ints.result(func)), bits(want), "{func:?} {values:?}");
                assert_eq!(
                    bits(floats.result(func)),
                    bits(scaled),
                    "{func:?} 2^{k} × {values:?}"
                );
            }
        }
    }
}

fn random_float(rng: &mut Rng) -> f64 {
    let n = rng.range(0, 2_001) as f64 - 1_000.0;
    match rng.below(8) {
        0 => n * 1e15,
        1 => n * 1e-310,
        2 => n * 1e290,
        3 => -0.0,
        _ => n * 0.1,
    }
}

fn place(arrival: usize, rowtime: i64) -> Place {
    Place {
        rowtime,
        origin: 0,
        arrival: arrival as u64,
    }
}

/// Random rows over three windows, in random batches with random
/// `forget_before` calls, against a naive evaluation that scans every
/// earlier row for each row.
#[test]
fn random_rows_match_a_naive_evaluation() {
    for seed in seeds(&[0x511D_1001, 0x511D_1002, 0x511D_1003]) {
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        let failed: usize = (0..20).map(|_| random_case(&mut rng)).sum();
        assert!(failed > 0, "no row overflowed a SUM");
    }
}

/// One input row of the random cases.
#[derive(Clone, Debug)]
struct Row {
    k: Option<i64>,
    s: Option<&'static str>,
    i: Option<i64>,
    f: Option<f64>,
    t: i64,
}

/// Returns how many rows failed.
fn random_case(rng: &mut Rng) -> usize {
    // K BIGINT, S text, I BIGINT, F DOUBLE, ROWTIME.
    let (k, s, i, f) = (
        col(0, Ty::Int),
        col(1, Ty::Text),
        col(2, Ty::Int),
        col(3, Ty::Float),
    );
    let frames = [
        Frame::Range {
            ms: *rng.pick(&[0, 3, 20]),
        },
        Frame::Rows {
            preceding: *rng.pick(&[0, 1, 4]),
        },
        Frame::Range {
            ms: *rng.pick(&[5, 50]),
        },
    ];
    let windows = vec![
        window(vec![k.clone()], frames[0]),
        window(vec![s.clone()], frames[1]),
        window(vec![k, s.clone()], frames[2]),
    ];
    use AggFunc::*;
    let aggs = vec![
        agg(0, CountRows, None),
        agg(1, Sum, Some(i.clone())),
        agg(2, Avg, Some(f.clone())),
        agg(0, Min, Some(f.clone())),
        agg(1, Max, Some(f.clone())),
        agg(2, Min, Some(s.clone())),
        agg(0, Sum, Some(f.clone())),
        agg(1, Count, Some(i.clone())),
        agg(2, Avg, Some(i.clone())),
        agg(0, FirstValue, Some(s.clone())),
        agg(1, LastValue, Some(f.clone())),
        agg(2, FirstValue, Some(i.clone())),
        agg(0, Max, Some(i.clone())),
        agg(2, Sum, Some(i.clone())),
        agg(1, FirstValue, Some(f.clone())),
        agg(0, LastValue, Some(s)),
        agg(0, VarPop, Some(f.clone())),
        agg(1, VarSamp, Some(i.clone())),
        agg(2, StddevPop, Some(i.clone())),
        agg(0, StddevSamp, Some(i)),
        agg(1, StddevPop, Some(f.clone())),
        agg(2, VarSamp, Some(f)),
    ];
    let p = plan(4, windows, aggs.clone());
    let mut state = SlidingState::new(p.clone());

    let n = rng.below(120);
    let mut t = rng.range(0, 100) as i64 - 50;
    let rows: Vec<Row> = (0..n)
        .map(|_| {
            t += rng.range(0, 4) as i64 * rng.range(0, 3) as i64;
            Row {
                k: (!rng.chance(10)).then(|| rng.range(0, 3) as i64),
                s: *rng.pick(&[None, Some("x"), Some("y"), Some("zz")]),
                i: match rng.below(12) {
                    0 => None,
                    1 => Some(i64::MAX - rng.range(0, 3) as i64),
                    2 => Some(i64::MIN + rng.range(0, 3) as i64),
                    _ => Some(rng.range(0, 2_001) as i64 - 1_000),
                },
                f: match rng.below(40) {
                    0 => Some(f64::NAN),
                    1 => Some(f64::INFINITY),
                    2 => Some(f64::NEG_INFINITY),
                    3..=6 => None,
                    _ => Some(random_float(rng)),
                },
                t,
            }
        })
        .collect();

    let expected = naive(&p, &rows);
    let mut got = Vec::new();
    let mut at = 0;
    let mut forgotten = i64::MIN;
    while at < n {
        let count = (1 + rng.below(9)).min(n - at);
        let part = &rows[at..at + count];
        let b = batch(vec![
            ints(&part.iter().map(|r| r.k).collect::<Vec<_>>()),
            texts(&part.iter().map(|r| r.s).collect::<Vec<_>>()),
            ints(&part.iter().map(|r| r.i).collect::<Vec<_>>()),
            floats(&part.iter().map(|r| r.f).collect::<Vec<_>>()),
            times(&part.iter().map(|r| r.t).collect::<Vec<_>>()),
        ]);
        let mut errors = Errors::new();
        let columns = state.push(&b, &mut errors);
        let mut failed = errors.iter().map(|e| e.row).peekable();
        for (row, line) in rows_of(&columns, count).into_iter().enumerate() {
            if failed.next_if_eq(&row).is_some() {
                assert!(line.split(' ').all(|c| c == "-"), "{line}");
                got.push(None);
            } else {
                got.push(Some(line));
            }
        }
        assert_eq!(failed.next(), None, "one error per failed row");
        at += count;
        // Safe: no later row has a ROWTIME below it.
        let safe = rows.get(at).map_or(i64::MAX, |r| r.t);
        if rng.chance(40) {
            forgotten = forgotten.max(safe.min(rows[at - 1].t + rng.range(0, 60) as i64));
            state.forget_before(forgotten);
        }
    }
    assert_eq!(got, expected);
    state.forget_before(i64::MAX);
    // Only the ROWS window's partitions are left.
    let s_values: std::collections::HashSet<_> = rows.iter().map(|r| r.s).collect();
    assert!(state.partitions() <= s_values.len());
    got.iter().filter(|row| row.is_none()).count()
}

/// Each row's aggregates as `rows_of` writes them (None: the row failed),
/// by scanning every earlier kept row for each window.
fn naive(p: &Sliding, rows: &[Row]) -> Vec<Option<String>> {
    let value = |r: &Row, e: &Expr| -> Option<ValueRef<'static>> {
        match e.kind {
            ExprKind::Column(0) => r.k.map(ValueRef::Int),
            ExprKind::Column(1) => r.s.map(ValueRef::Text),
            ExprKind::Column(2) => r.i.map(ValueRef::Int),
            ExprKind::Column(3) => r.f.map(ValueRef::Float),
            _ => panic!("unexpected expression {e:?}"),
        }
    };
    let partition = |r: &Row, w: usize| -> Vec<String> {
        (p.windows[w].partition.iter())
            .map(|e| format!("{:?}", value(r, e)))
            .collect()
    };
    let mut kept: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (x, r) in rows.iter().enumerate() {
        let mut accs: Vec<Acc> = p.aggs.iter().map(|(_, a)| Acc::empty(a)).collect();
        for (g, (w, a)) in p.aggs.iter().enumerate() {
            let same: Vec<usize> = (kept.iter().copied())
                .filter(|&y| partition(&rows[y], *w) == partition(r, *w))
                .collect();
            let frame: Vec<usize> = match p.windows[*w].frame {
                Frame::Range { ms } => same
                    .into_iter()
                    .filter(|&y| rows[y].t >= r.t - ms)
                    .collect(),
                Frame::Rows { preceding } => {
                    let from = same.len().saturating_sub(preceding as usize);
                    same[from..].to_vec()
                }
            };
            for y in frame {
                let v = a.arg.as_ref().and_then(|e| value(&rows[y], e));
                accs[g].add(place(y, rows[y].t), v);
            }
        }
        let overflows = (accs.iter().zip(&p.aggs))
            .any(|(acc, (_, a))| acc.overflows(a.arg.as_ref().and_then(|e| value(r, e))));
        if overflows {
            out.push(None);
            continue;
        }
        for (acc, (_, a)) in accs.iter_mut().zip(&p.aggs) {
            acc.add(place(x, r.t), a.arg.as_ref().and_then(|e| value(r, e)));
        }
        kept.push(x);
        let cells: Vec<String> = (accs.iter())
            .map(|acc| match acc.result() {
                None => "-".to_owned(),
                Some(ValueRef::Int(v)) => v.to_string(),
                Some(ValueRef::Float(v)) => format!("{v:?}"),
                Some(ValueRef::Text(v)) => v.to_owned(),
                Some(other) => panic!("unexpected {other:?}"),
            })
            .collect();
        out.push(Some(cells.join(" ")));
    }
    out
}
