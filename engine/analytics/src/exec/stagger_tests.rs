//! Tests of the stagger-window operator: [DG]'s golden rows (E5), windows
//! closed by a row of their key and given at the watermark, the order of
//! group rows, NULL keys, row errors, and a seeded check against a naive
//! evaluation (`RIFFLE_SEED=… cargo test -p riffle-analytics stagger`).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::DataType;
use riffle_store::testkit::{Rng, seeds};

use super::StaggerState;
use crate::exec::tumbling::{Acc, ValueRef};
use crate::expr::eval::{Errors, parse_time};
use crate::expr::{ArithOp, Expr, ExprKind, Func, Literal, RowErrorKind, Ty};
use crate::plan::{Agg, AggFunc, Stagger};

use Literal::{Int, Null, Time};

fn plan(width_ms: i64, rowtime: usize, keys: Vec<Expr>, aggs: Vec<Agg>) -> Arc<Stagger> {
    Arc::new(Stagger {
        width_ms,
        rowtime,
        keys,
        aggs,
        items: vec![],
        having: None,
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

fn times(ms: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(ms.to_vec()))
}

fn texts(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn text(s: &str) -> Literal {
    Literal::Text(s.into())
}

fn at(s: &str) -> i64 {
    parse_time(s).expect("a test time")
}

fn rows_of(batch: &RecordBatch) -> Vec<Vec<Literal>> {
    (0..batch.num_rows())
        .map(|row| (batch.columns().iter()).map(|c| cell(c, row)).collect())
        .collect()
}

fn cell(c: &ArrayRef, row: usize) -> Literal {
    if c.is_null(row) {
        return Null;
    }
    match c.data_type() {
        DataType::Boolean => Literal::Bool(c.as_boolean().value(row)),
        DataType::Int64 => Int(c.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Literal::Float(c.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Literal::Text(c.as_string::<i32>().value(row).into()),
        DataType::Timestamp(..) => Time(c.as_primitive::<TimestampMillisecondType>().value(row)),
        other => panic!("unexpected group-row type {other}"),
    }
}

/// The closed windows as (end, group row).
fn close(state: &mut StaggerState, watermark_ms: i64) -> Vec<(i64, Vec<Literal>)> {
    match state.close(watermark_ms) {
        None => vec![],
        Some((b, ends)) => {
            assert_eq!(ends.len(), b.num_rows());
            assert_eq!(b.schema(), state.group_schema());
            ends.into_iter().zip(rows_of(&b)).collect()
        }
    }
}

fn push(state: &mut StaggerState, b: &RecordBatch) {
    let mut errors = Errors::new();
    state.push(b, &mut errors);
    assert_eq!(errors, vec![], "no row errors expected");
}

/// E5: [DG]'s stagger page, its four AMZN rows and its two output rows.
#[test]
fn e5_golden_rows_of_the_developer_guide() {
    // EVENT_TIME, TICKER_SYMBOL, ROWTIME.
    let minute = Expr::new(
        ExprKind::Call(Func::Step(60_000), vec![col(0, Ty::Time)]),
        Ty::Time,
    );
    let p = plan(
        60_000,
        2,
        vec![minute, col(1, Ty::Text)],
        vec![agg(AggFunc::Count, Some(col(1, Ty::Text)))],
    );
    let mut state = StaggerState::new(p);
    let day = "2018-03-11 ";
    let t = |hms: &str| at(&format!("{day}{hms}"));
    let rows: [(&str, &str); 4] = [
        ("11:00:20", "11:00:10"),
        ("11:00:30", "11:00:20"),
        ("11:01:05", "11:00:55"),
        ("11:01:15", "11:01:05"),
    ];
    // Pushed one row at a time and all at once: the same rows out.
    for one_by_one in [true, false] {
        let mut state_here = StaggerState::new(state.plan.clone());
        let make = |rows: &[(&str, &str)]| {
            batch(vec![
                times(&rows.iter().map(|r| Some(t(r.1))).collect::<Vec<_>>()),
                texts(&vec![Some("AMZN"); rows.len()]),
                times(&rows.iter().map(|r| Some(t(r.0))).collect::<Vec<_>>()),
            ])
        };
        if one_by_one {
            for r in &rows {
                push(&mut state_here, &make(std::slice::from_ref(r)));
            }
        } else {
            push(&mut state_here, &make(&rows));
        }
        assert_eq!(state_here.open_windows(), 2);
        assert_eq!(close(&mut state_here, t("11:01:19.999")), vec![]);
        assert_eq!(
            close(&mut state_here, t("11:01:20")),
            vec![(
                t("11:01:20"),
                vec![
                    Time(t("11:00:20")),
                    Time(t("11:00:00")),
                    text("AMZN"),
                    Int(3)
                ]
            )]
        );
        assert_eq!(state_here.open_windows(), 1);
        assert_eq!(close(&mut state_here, t("11:02:14.999")), vec![]);
        assert_eq!(
            close(&mut state_here, t("11:02:15")),
            vec![(
                t("11:02:15"),
                vec![
                    Time(t("11:01:15")),
                    Time(t("11:01:00")),
                    text("AMZN"),
                    Int(1)
                ]
            )]
        );
        assert_eq!(state_here.open_windows(), 0);
        assert_eq!(close(&mut state_here, i64::MAX), vec![]);
    }
    state.push(
        &batch(vec![times(&[]), texts(&[]), times(&[])]),
        &mut vec![],
    );
    assert_eq!(state.pending_windows(), 0);
}

#[test]
fn group_rows_are_named_and_typed_by_the_plan() {
    let p = plan(
        1_000,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::CountRows, None),
            agg(AggFunc::Avg, Some(col(1, Ty::Float))),
        ],
    );
    let state = StaggerState::new(p);
    let schema = state.group_schema();
    let fields: Vec<(&str, DataType)> = (schema.fields().iter())
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("WINDOW_START", Ty::Time.arrow()),
            ("KEY_1", DataType::Utf8),
            ("AGG_1", DataType::Int64),
            ("AGG_2", DataType::Float64),
        ]
    );
    assert!(schema.fields().iter().all(|f| f.is_nullable()));
}

/// A window ends at `t0 + width` exclusive: a row at the end opens the
/// key's next window, which closes the first one; both wait for the
/// watermark; group rows leave by end, then by opening order, and a
/// closed window never holds a later row.
#[test]
fn windows_open_per_key_and_leave_by_end_then_opening_order() {
    // K, V, ROWTIME.
    let p = plan(
        10,
        2,
        vec![col(0, Ty::Text)],
        vec![
            agg(AggFunc::Sum, Some(col(1, Ty::Int))),
            agg(AggFunc::FirstValue, Some(col(1, Ty::Int))),
            agg(AggFunc::LastValue, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = StaggerState::new(p);
    let (a, b, c) = (Some("a"), Some("b"), Some("c"));
    push(
        &mut state,
        &batch(vec![
            texts(&[a, b, c, a, b, a, c]),
            ints(&[
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                Some(7),
            ]),
            times(&[
                Some(0),
                Some(0),
                Some(0),
                Some(9),
                Some(9),
                Some(10),
                Some(12),
            ]),
        ]),
    );
    // a: [0, 10) closed by the row at 10, [10, 20) open; b: [0, 10) open;
    // c: [0, 10) closed by the row at 12, [12, 22) open.
    assert_eq!((state.open_windows(), state.pending_windows()), (3, 5));
    assert_eq!(close(&mut state, 9), vec![]);
    let row = |start, key: &str, sum, first, last| {
        vec![Time(start), text(key), Int(sum), Int(first), Int(last)]
    };
    assert_eq!(
        close(&mut state, 10),
        vec![
            (10, row(0, "a", 5, 1, 4)),
            (10, row(0, "b", 7, 2, 5)),
            (10, row(0, "c", 3, 3, 3)),
        ]
    );
    // b's next row opens a new window; a's row at 19 joins a's open one.
    push(
        &mut state,
        &batch(vec![
            texts(&[b, a]),
            ints(&[Some(8), Some(9)]),
            times(&[Some(19), Some(19)]),
        ]),
    );
    assert_eq!((state.open_windows(), state.pending_windows()), (3, 3));
    assert_eq!(close(&mut state, 21), vec![(20, row(10, "a", 15, 6, 9))]);
    assert_eq!(
        close(&mut state, 30),
        vec![(22, row(12, "c", 7, 7, 7)), (29, row(19, "b", 8, 8, 8))]
    );
    assert_eq!(close(&mut state, 35), vec![]);
    assert_eq!((state.open_windows(), state.pending_windows()), (0, 0));
}

/// NULL keys are one key; a row whose key evaluation fails, whose ROWTIME
/// is NULL or which would overflow its window's SUM is left out with one
/// error naming its row.
#[test]
fn null_keys_group_and_failed_rows_are_left_out() {
    // K, V, ROWTIME; key K / V (division by zero when V = 0).
    let key = Expr::new(
        ExprKind::Arith(
            ArithOp::Div,
            Box::new(col(0, Ty::Int)),
            Box::new(col(1, Ty::Int)),
        ),
        Ty::Int,
    );
    let p = plan(
        100,
        2,
        vec![key],
        vec![
            agg(AggFunc::CountRows, None),
            agg(AggFunc::Sum, Some(col(1, Ty::Int))),
        ],
    );
    let mut state = StaggerState::new(p);
    let mut errors = Errors::new();
    state.push(
        &batch(vec![
            ints(&[None, Some(4), Some(4), None, Some(1), Some(0)]),
            ints(&[
                Some(1),
                Some(0),
                Some(2),
                Some(3),
                Some(i64::MAX),
                Some(i64::MAX),
            ]),
            times(&[Some(0), Some(1), Some(2), None, Some(4), Some(5)]),
        ]),
        &mut errors,
    );
    let failed: Vec<(usize, RowErrorKind)> = errors.iter().map(|e| (e.row, e.kind)).collect();
    assert_eq!(
        failed,
        vec![
            (1, RowErrorKind::DivisionByZero),
            (3, RowErrorKind::DataException),
            (5, RowErrorKind::DataException),
        ]
    );
    assert_eq!(errors[1].message, "ROWTIME is NULL");
    assert_eq!(errors[2].message, "Numeric overflow in SUM");
    // Keys: NULL (row 0), 2 (row 2), 0 (row 4; row 5, key 0 too,
    // overflowed its SUM).
    assert_eq!(
        close(&mut state, 105),
        vec![
            (100, vec![Time(0), Null, Int(1), Int(1)]),
            (102, vec![Time(2), Int(2), Int(1), Int(2)]),
            (104, vec![Time(4), Int(0), Int(1), Int(i64::MAX)]),
        ]
    );
}

/// Per key: 2, 4, 4, 4, 5, 5, 7, 9 with NULLs (VAR_POP 4, STDDEV_POP 2,
/// VAR_SAMP 32/7), one value (0 for POP, NULL for SAMP), NULLs only (all
/// NULL); over BIGINTs and DOUBLEs, pushed in batches of every size.
#[test]
fn variances_per_window() {
    use AggFunc::*;
    let known = [2, 4, 4, 4, 5, 5, 7, 9];
    let mut keys = vec![];
    let mut values = vec![];
    for (i, &x) in known.iter().enumerate() {
        keys.extend([Some("a"), Some("a")]);
        values.extend([Some(x), None]);
        if i < 2 {
            keys.extend([Some("b"), Some("c")]);
            values.extend([(i == 0).then_some(-7), None]);
        }
    }
    let rowtimes: Vec<Option<i64>> = (0..keys.len() as i64).map(Some).collect();
    let all = (32f64 / 7.0).sqrt();
    let float = Literal::Float;
    let expected = vec![
        (
            1_000,
            vec![
                Time(0),
                text("a"),
                float(4.0),
                float(32.0 / 7.0),
                float(2.0),
                float(all),
            ],
        ),
        (
            1_002,
            vec![Time(2), text("b"), float(0.0), Null, float(0.0), Null],
        ),
        (1_003, vec![Time(3), text("c"), Null, Null, Null, Null]),
    ];
    for ty in [Ty::Int, Ty::Float] {
        let aggs = [VarPop, VarSamp, StddevPop, StddevSamp].map(|f| agg(f, Some(col(1, ty))));
        let p = plan(1_000, 2, vec![col(0, Ty::Text)], aggs.to_vec());
        let column: ArrayRef = match ty {
            Ty::Int => ints(&values),
            _ => Arc::new(Float64Array::from(
                values
                    .iter()
                    .map(|v| v.map(|x| x as f64))
                    .collect::<Vec<_>>(),
            )),
        };
        for size in 1..=keys.len() {
            let mut state = StaggerState::new(p.clone());
            let mut at = 0;
            while at < keys.len() {
                let count = size.min(keys.len() - at);
                push(
                    &mut state,
                    &batch(vec![
                        texts(&keys[at..at + count]),
                        column.slice(at, count),
                        times(&rowtimes[at..at + count]),
                    ]),
                );
                at += count;
            }
            assert_eq!(close(&mut state, i64::MAX), expected, "{ty:?} {size}");
        }
    }
}

/// Random ordered rows in random batches, closed at random watermarks,
/// against a naive evaluation: each key's rows cut into windows by a scan.
#[test]
fn random_rows_match_a_naive_evaluation() {
    for seed in seeds(&[0x57A6_0001, 0x57A6_0002, 0x57A6_0003]) {
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..30 {
            random_case(&mut rng);
        }
    }
}

fn between(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + rng.range(0, (hi - lo) as u64) as i64
}

fn random_case(rng: &mut Rng) {
    let width_ms = *rng.pick(&[1, 5, 40]);
    // K BIGINT, V BIGINT, F DOUBLE, ROWTIME.
    let (k, v, f) = (col(0, Ty::Int), col(1, Ty::Int), col(2, Ty::Float));
    use AggFunc::*;
    let aggs = vec![
        agg(CountRows, None),
        agg(Count, Some(v.clone())),
        agg(Sum, Some(v.clone())),
        agg(Avg, Some(f.clone())),
        agg(Min, Some(f.clone())),
        agg(Max, Some(v.clone())),
        agg(FirstValue, Some(v.clone())),
        agg(LastValue, Some(f.clone())),
        agg(VarPop, Some(v.clone())),
        agg(VarSamp, Some(f.clone())),
        agg(StddevPop, Some(f)),
        agg(StddevSamp, Some(v)),
    ];
    let p = plan(width_ms, 3, vec![k], aggs.clone());
    let mut state = StaggerState::new(p);
    let n = rng.below(150);
    let mut t = between(rng, -100, 100);
    let (mut ks, mut vs, mut fs, mut ts) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        t += between(rng, 0, 4) * between(rng, 0, 3);
        ts.push(t);
        ks.push((!rng.chance(15)).then(|| between(rng, 0, 3)));
        vs.push((!rng.chance(15)).then(|| between(rng, -50, 50)));
        fs.push((!rng.chance(15)).then(|| between(rng, -50, 50) as f64 * 0.25));
    }
    // Naive: (end, opening row, key, rows) per window.
    let mut naive: Vec<(i64, usize, Option<i64>, Vec<usize>)> = Vec::new();
    let mut open: Vec<(Option<i64>, usize)> = Vec::new();
    for row in 0..n {
        let current = (open.iter())
            .find(|(key, w)| *key == ks[row] && ts[row] < naive[*w].0)
            .map(|(_, w)| *w);
        match current {
            Some(w) => naive[w].3.push(row),
            None => {
                open.retain(|(key, _)| *key != ks[row]);
                open.push((ks[row], naive.len()));
                naive.push((ts[row] + width_ms, row, ks[row], vec![row]));
            }
        }
    }
    let expected_row = |(end, first, key, rows): &(i64, usize, Option<i64>, Vec<usize>)| {
        let mut accs: Vec<Acc> = aggs.iter().map(Acc::empty).collect();
        for &r in rows {
            let place = crate::exec::tumbling::Place {
                rowtime: ts[r],
                origin: 0,
                arrival: r as u64,
            };
            let values = [
                None,
                vs[r].map(ValueRef::Int),
                vs[r].map(ValueRef::Int),
                fs[r].map(ValueRef::Float),
                fs[r].map(ValueRef::Float),
                vs[r].map(ValueRef::Int),
                vs[r].map(ValueRef::Int),
                fs[r].map(ValueRef::Float),
                vs[r].map(ValueRef::Int),
                fs[r].map(ValueRef::Float),
                fs[r].map(ValueRef::Float),
                vs[r].map(ValueRef::Int),
            ];
            for (acc, v) in accs.iter_mut().zip(values) {
                acc.add(place, v);
            }
        }
        let literal = |v: Option<ValueRef<'_>>| match v {
            None => Null,
            Some(ValueRef::Int(x)) => Int(x),
            Some(ValueRef::Float(x)) => Literal::Float(x),
            Some(other) => panic!("unexpected {other:?}"),
        };
        let mut cells = vec![Time(ts[*first]), key.map_or(Null, Int)];
        cells.extend(accs.iter().map(|a| literal(a.result())));
        (*end, cells)
    };
    let mut got = Vec::new();
    let mut at = 0;
    let mut watermark = i64::MIN;
    while at < n {
        let count = (1 + rng.below(10)).min(n - at);
        let range = at..at + count;
        push(
            &mut state,
            &batch(vec![
                ints(&ks[range.clone()]),
                ints(&vs[range.clone()]),
                Arc::new(Float64Array::from(fs[range.clone()].to_vec())),
                times(&ts[range].iter().map(|&t| Some(t)).collect::<Vec<_>>()),
            ]),
        );
        at += count;
        // Safe: no later row has a ROWTIME below it.
        let safe = ts.get(at).copied().unwrap_or(i64::MAX);
        if rng.chance(50) && watermark < safe {
            let last = ts[at - 1];
            watermark = between(rng, watermark.max(last - 50), safe.min(last + 50));
            got.extend(close(&mut state, watermark));
        }
    }
    got.extend(close(&mut state, i64::MAX));
    assert_eq!(state.pending_windows(), 0);
    // Ordered by end, then opening order.
    naive.sort_by_key(|w| (w.0, w.1));
    let expected: Vec<(i64, Vec<Literal>)> = naive.iter().map(expected_row).collect();
    assert_eq!(got, expected);
}
