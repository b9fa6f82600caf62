//! Golden tests of AWS's examples run by the pure executor
//! (docs/analytics-design.md §6.1): records decoded with the demo schema,
//! ROWTIMEs given by the test, the plan's pumps run, and the exact rows
//! out (ROWTIME included) and the exact error_stream rows. Windowed
//! examples run twice: on one state, and split over three simulated shards
//! whose partials merge on a home state, which must give the same rows.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use super::pump::{PumpError, map_rows, window_rows};
use super::tumbling::TumblingState;
use crate::decode::{Column, Decoder, Format, InputFormat};
use crate::expr::Ty;
use crate::expr::eval::{self, Errors};
use crate::plan::tests::{demo, planned};
use crate::plan::{AppPlan, PumpKind};
use crate::sql::tests::examples::{E1, E2};
use riffle_store::testkit::{Rng, seeds};

/// Decodes demo-schema JSON records, each with its ROWTIME.
fn decode(records: &[(i64, &str)]) -> RecordBatch {
    let catalog = demo();
    let columns = catalog.inputs[0]
        .1
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            ty: c.ty,
            mapping: Some(format!("$.{}", c.name)),
        })
        .collect();
    let format = InputFormat::new(
        Format::Json {
            row_path: "$".into(),
        },
        columns,
    )
    .unwrap();
    let mut decoder = Decoder::new(Arc::new(format));
    for (rowtime, json) in records {
        decoder.push(json.as_bytes(), *rowtime, *rowtime);
    }
    let (batch, errors) = decoder.finish();
    assert!(errors.is_empty(), "{errors:?}");
    batch
}

/// A row as `ROWTIME | v1 | v2 …`, timestamps as KDA writes them.
fn rows_of(batch: &RecordBatch) -> Vec<String> {
    let rowtime = batch.num_columns() - 1;
    (0..batch.num_rows())
        .map(|row| {
            let mut parts = vec![value(batch.column(rowtime), row)];
            parts.extend((0..rowtime).map(|c| value(batch.column(c), row)));
            parts.join(" | ")
        })
        .collect()
}

fn value(a: &Arc<dyn Array>, row: usize) -> String {
    if a.is_null(row) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(row).to_string(),
        DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8 => {
            eval::ints(&eval::widen(a, Ty::Int)).value(row).to_string()
        }
        DataType::Timestamp(..) => {
            eval::format_time(eval::times(&eval::widen(a, Ty::Time)).value(row))
        }
        other => format!("<{other}>"),
    }
}

fn plan_of(code: &str) -> AppPlan {
    planned(code, &demo()).unwrap_or_else(|e| panic!("refused: {e}"))
}

const T0: i64 = 1_700_000_040_000; // 2023-11-14 22:14:00.000, a whole minute

#[test]
fn e1_keeps_the_rows_that_moved_more_than_one_percent() {
    let plan = plan_of(E1);
    let pump = &plan.pumps[0];
    let input = decode(&[
        (
            T0,
            r#"{"TICKER_SYMBOL":"AMZN","SECTOR":"TECHNOLOGY","CHANGE":5,"PRICE":100}"#,
        ),
        (
            T0 + 1,
            r#"{"TICKER_SYMBOL":"QXZ","SECTOR":"RETAIL","CHANGE":0.5,"PRICE":100}"#,
        ),
        (
            T0 + 2,
            r#"{"TICKER_SYMBOL":"WAS","SECTOR":"TECHNOLOGY_HARDWARE","CHANGE":-3,"PRICE":50}"#,
        ),
        (
            T0 + 3,
            r#"{"TICKER_SYMBOL":"BAD","SECTOR":"ENERGY","CHANGE":10,"PRICE":10}"#,
        ),
        (
            T0 + 4,
            r#"{"TICKER_SYMBOL":"NFS","SECTOR":"ENERGY","CHANGE":0.1,"PRICE":20}"#,
        ),
        (
            T0 + 5,
            r#"{"TICKER_SYMBOL":"JKL","SECTOR":"FINANCIAL","CHANGE":2,"PRICE":101}"#,
        ),
    ]);
    let mut errors = Vec::new();
    let out = map_rows(
        pump,
        &plan.streams[pump.input],
        &plan.streams[pump.target],
        &input,
        &mut errors,
    );
    assert_eq!(
        rows_of(&out),
        vec![
            "2023-11-14 22:14:00.000 | AMZN | TECHNOLOGY | 5 | 100",
            // The input's VARCHAR(16) cut to the output's VARCHAR(12).
            "2023-11-14 22:14:00.002 | WAS | TECHNOLOGY_H | -3 | 50",
            "2023-11-14 22:14:00.005 | JKL | FINANCIAL | 2 | 101",
        ]
    );
    assert_eq!(
        errors,
        vec![PumpError {
            pump: "STREAM_PUMP".into(),
            name: "Division_by_zero",
            message: "Division by zero".into(),
            rowtime_ms: T0 + 3,
            row: r#"{"TICKER_SYMBOL":"BAD","SECTOR":"ENERGY","CHANGE":10,"PRICE":10,"TICKER":null,"EVENT_TIME":null,"APPROXIMATE_ARRIVAL_TIME":"2023-11-14 22:14:00.003"}"#.into(),
        }]
    );
}

/// E2's input: two tickers over two windows.
fn e2_records() -> Vec<(i64, &'static str)> {
    vec![
        (T0 + 10_000, r#"{"TICKER":"AMZN","PRICE":10.0}"#),
        (T0 + 20_000, r#"{"TICKER":"MSFT","PRICE":50.0}"#),
        (T0 + 20_000, r#"{"TICKER":"AMZN","PRICE":12.5}"#),
        (T0 + 59_999, r#"{"TICKER":"AMZN","PRICE":9.5}"#),
        (T0 + 59_999, r#"{"TICKER":"MSFT","PRICE":51.0}"#),
        (T0 + 60_000, r#"{"TICKER":"AMZN","PRICE":11.0}"#),
    ]
}

const E2_WINDOW_0: [&str; 2] = [
    "2023-11-14 22:15:00.000 | AMZN | 9.5 | 12.5",
    "2023-11-14 22:15:00.000 | MSFT | 50 | 51",
];
const E2_WINDOW_1: [&str; 1] = ["2023-11-14 22:16:00.000 | AMZN | 11 | 11"];

/// The rows E2's pump writes when the watermark reaches `watermark`.
fn e2_emit(plan: &AppPlan, state: &mut TumblingState, watermark: i64) -> Vec<String> {
    let pump = &plan.pumps[0];
    let PumpKind::Tumbling(window) = &pump.kind else {
        panic!()
    };
    let mut out = Vec::new();
    for (start, groups) in state.close(watermark) {
        let mut errors = Vec::new();
        let rows = window_rows(
            pump,
            window,
            start,
            &plan.streams[pump.target],
            &groups,
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        out.extend(rows_of(&rows));
    }
    out
}

#[test]
fn e2_emits_each_window_once_the_watermark_passes_its_end() {
    let plan = plan_of(E2);
    let PumpKind::Tumbling(window) = &plan.pumps[0].kind else {
        panic!()
    };
    let mut state = TumblingState::new(Arc::new(window.clone()));
    let mut errors = Errors::new();
    state.push(&decode(&e2_records()), 0, &mut errors);
    assert!(errors.is_empty());
    assert!(e2_emit(&plan, &mut state, T0 + 59_999).is_empty());
    assert_eq!(e2_emit(&plan, &mut state, T0 + 60_000), E2_WINDOW_0);
    assert!(e2_emit(&plan, &mut state, T0 + 119_999).is_empty());
    assert_eq!(e2_emit(&plan, &mut state, T0 + 120_000), E2_WINDOW_1);
    assert_eq!(state.open_windows(), 0);
}

#[test]
fn e2_split_over_three_shards_merges_to_the_same_rows() {
    let plan = plan_of(E2);
    let PumpKind::Tumbling(window) = &plan.pumps[0].kind else {
        panic!()
    };
    let window = Arc::new(window.clone());
    for seed in seeds(&[0x5EED_00E2, 7, 0xabc]) {
        let mut rng = Rng::new(seed);
        for _ in 0..20 {
            // Each record goes to one of three shards, in order within each.
            let mut shards: Vec<Vec<(i64, &str)>> = vec![Vec::new(); 3];
            for r in e2_records() {
                shards[rng.below(3)].push(r);
            }
            let mut home = TumblingState::new(window.clone());
            let mut cores: Vec<TumblingState> =
                (0..3).map(|_| TumblingState::new(window.clone())).collect();
            let mut out = Vec::new();
            for (origin, (core, records)) in cores.iter_mut().zip(&shards).enumerate() {
                if !records.is_empty() {
                    let mut errors = Errors::new();
                    core.push(&decode(records), origin as u64, &mut errors);
                    assert!(errors.is_empty());
                }
            }
            for watermark in [T0 + 59_999, T0 + 60_000, T0 + 120_000] {
                for core in &mut cores {
                    for (start, partial) in core.take_closed(watermark) {
                        home.merge(start, partial);
                    }
                }
                out.extend(e2_emit(&plan, &mut home, watermark));
            }
            let expected: Vec<&str> = E2_WINDOW_0.iter().chain(&E2_WINDOW_1).copied().collect();
            assert_eq!(out, expected, "seed {seed:#x}, shards {shards:?}");
        }
    }
}

#[test]
fn window_keys_and_aggregates_of_any_type_go_into_their_columns() {
    let code = r#"CREATE STREAM "D" (p REAL, n INTEGER, big TINYINT, total DECIMAL(6,2), t TIMESTAMP);
CREATE PUMP "P" AS INSERT INTO "D"
  SELECT STREAM price, COUNT(*), SUM(CAST(price AS INTEGER)) * 10, SUM(price), MIN(ROWTIME)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY price, FLOOR(ROWTIME TO MINUTE)
  HAVING COUNT(*) > 1;
"#;
    let plan = plan_of(code);
    let pump = &plan.pumps[0];
    let PumpKind::Tumbling(window) = &pump.kind else {
        panic!()
    };
    let mut state = TumblingState::new(Arc::new(window.clone()));
    let mut errors = Errors::new();
    state.push(
        &decode(&[
            (T0 + 1, r#"{"PRICE":2.5}"#),
            (T0 + 2, r#"{"PRICE":7.25}"#),
            (T0 + 3, r#"{"PRICE":2.5}"#),
            (T0 + 4, r#"{"PRICE":7.25}"#),
            (T0 + 5, r#"{"PRICE":1}"#),
        ]),
        0,
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let closed = state.close(T0 + 60_000);
    let [(start, groups)] = closed.as_slice() else {
        panic!("{closed:?}")
    };
    let mut failed = Vec::new();
    let out = window_rows(
        pump,
        window,
        *start,
        &plan.streams[pump.target],
        groups,
        &mut failed,
    );
    // 2.5: 2 rows, SUM(CAST) = 4 → 40; 7.25: SUM(CAST) = 14 → 140 does not
    // fit a TINYINT: that row goes to error_stream. 1.0 has one row: HAVING.
    let schema = out.schema();
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(types[0], DataType::Float32);
    assert_eq!(types[1], DataType::Int32);
    assert_eq!(types[2], DataType::Int8);
    assert_eq!(types[3], DataType::Decimal128(6, 2));
    assert_eq!(out.num_rows(), 1);
    assert_eq!(value(out.column(0), 0), "2.5");
    assert_eq!(
        out.column(3)
            .as_primitive::<arrow_array::types::Decimal128Type>()
            .value_as_string(0),
        "5.00"
    );
    assert_eq!(value(out.column(4), 0), "2023-11-14 22:14:00.001");
    assert_eq!(value(out.column(5), 0), "2023-11-14 22:15:00.000");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].name, "Data_exception");
    assert_eq!(failed[0].rowtime_ms, T0 + 60_000);
    assert!(
        failed[0]
            .message
            .contains("140 is out of range for the TINYINT column \"BIG\""),
        "{failed:?}"
    );
}

/// 2023-11-14 00:00:00 UTC.
const DAY: i64 = 1_699_920_000_000;

fn at(h: i64, m: i64, s: i64) -> i64 {
    DAY + ((h * 60 + m) * 60 + s) * 1000
}

/// Sliding pump `p`'s rows for the input rows `rows` (in ROWTIME order),
/// through its WHERE and its frames; no row may fail.
fn sliding_pass(
    plan: &AppPlan,
    p: usize,
    state: &mut super::sliding::SlidingState,
    rows: &RecordBatch,
) -> Vec<String> {
    use super::pump::{filter_rows, sliding_rows};
    let pump = &plan.pumps[p];
    let PumpKind::Sliding(sliding) = &pump.kind else {
        panic!("{:?}", pump.kind)
    };
    let mut errors = Vec::new();
    let kept = filter_rows(pump, &plan.streams[pump.input], rows, &mut errors);
    let mut failed = Errors::new();
    let aggs = state.push(&kept, &mut failed);
    let written = sliding_rows(
        pump,
        sliding,
        &plan.streams[pump.target],
        &kept,
        aggs,
        &failed,
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    rows_of(&written)
}

#[test]
fn e4_emits_one_row_per_row_over_the_last_minute() {
    use super::order::Ordered;

    use super::sliding::SlidingState;
    let plan = plan_of(crate::sql::tests::examples::E4);
    let pump = &plan.pumps[0];
    let PumpKind::Sliding(sliding) = &pump.kind else {
        panic!()
    };
    let input = &plan.streams[pump.input];
    let records: Vec<(i64, String)> = [(0, 10), (20, 20), (40, 30), (61, 40), (62, 50)]
        .iter()
        .map(|(s, p)| {
            (
                at(11, 0, *s),
                format!(r#"{{"TICKER_SYMBOL":"AMZN","PRICE":{p}}}"#),
            )
        })
        .collect();
    let records: Vec<(i64, &str)> = records.iter().map(|(t, r)| (*t, r.as_str())).collect();
    // Two shards' worth, put back in order by the watermark.
    let mut ordered = Ordered::new(input.rowtime());
    ordered.push(decode(&records[..2]), 0);
    ordered.push(decode(&records[2..]), 1);
    let mut state = SlidingState::new(Arc::new(sliding.clone()));
    let mut out = Vec::new();
    for watermark in [at(11, 0, 30), i64::MAX] {
        let Some(rows) = ordered.release(watermark) else {
            continue;
        };
        out.extend(sliding_pass(&plan, 0, &mut state, &rows));
    }
    assert_eq!(
        out,
        vec![
            "2023-11-14 11:00:00.000 | AMZN | 10 | 10 | 10",
            "2023-11-14 11:00:20.000 | AMZN | 10 | 20 | 15",
            "2023-11-14 11:00:40.000 | AMZN | 10 | 30 | 20",
            // 61 s: the row at 0 s has left the minute.
            "2023-11-14 11:01:01.000 | AMZN | 20 | 40 | 30",
            "2023-11-14 11:01:02.000 | AMZN | 20 | 50 | 35",
        ]
    );
}

/// LAG and EXP_AVG over one sliding window, in the spirit of AWS's LAG
/// examples ([SR] `sql-reference-lag`): the change since the ticker's
/// previous row (`price - LAG(price, 1, price)`: 0 on its first row), the
/// previous price that is not NULL, and the prices' average with a 10 s
/// half-life ([SR] `sql-reference-exp-avg`), over the last 30 s.
const LAG_AND_EXP_AVG: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    ticker_symbol VARCHAR(4),
    price DOUBLE,
    change_since_last DOUBLE,
    previous_price DOUBLE,
    avg_price DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
  INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ticker_symbol, price,
           price - LAG(price, 1, price) OVER w,
           LAG(price) IGNORE NULLS OVER w,
           EXP_AVG(price, INTERVAL '10' SECOND) OVER w
    FROM "SOURCE_SQL_STREAM_001"
    WINDOW w AS (PARTITION BY ticker_symbol RANGE INTERVAL '30' SECOND PRECEDING);
"#;

#[test]
fn lag_gives_the_change_since_the_previous_row_and_exp_avg_a_decaying_average() {
    use super::sliding::SlidingState;
    let plan = plan_of(LAG_AND_EXP_AVG);
    let PumpKind::Sliding(sliding) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    let records: Vec<(i64, String)> = [
        (0, "AMZN", Some(10)),
        (10, "AMZN", Some(20)),
        (20, "AMZN", None),
        (20, "MSFT", Some(100)),
        (30, "AMZN", Some(40)),
        (50, "MSFT", Some(90)),
        (60, "AMZN", Some(80)),
    ]
    .iter()
    .map(|(s, ticker, price)| {
        let price = price.map_or(String::new(), |p| format!(r#","PRICE":{p}"#));
        (
            at(11, 0, *s),
            format!(r#"{{"TICKER_SYMBOL":"{ticker}"{price}}}"#),
        )
    })
    .collect();
    let records: Vec<(i64, &str)> = records.iter().map(|(t, r)| (*t, r.as_str())).collect();
    let mut state = SlidingState::new(Arc::new(sliding.clone()));
    let mut out = Vec::new();
    for chunk in records.chunks(2) {
        out.extend(sliding_pass(&plan, 0, &mut state, &decode(chunk)));
    }
    // Weights 1, 1/2, 1/4, 1/8 for rows 0, 10, 20, 30 s back.
    let avg = |weighted: f64, weights: f64| (weighted / weights).to_string();
    assert_eq!(
        out,
        vec![
            "2023-11-14 11:00:00.000 | AMZN | 10 | 0 | NULL | 10".to_string(),
            format!(
                "2023-11-14 11:00:10.000 | AMZN | 20 | 10 | 10 | {}",
                avg(10.0 / 2.0 + 20.0, 1.5)
            ),
            // No price: no change; the weights still count from 20 s.
            format!(
                "2023-11-14 11:00:20.000 | AMZN | NULL | NULL | 20 | {}",
                avg(10.0 / 4.0 + 20.0 / 2.0, 0.75)
            ),
            "2023-11-14 11:00:20.000 | MSFT | 100 | 0 | NULL | 100".to_string(),
            // LAG reads the NULL of the row before (a default replaces no
            // NULL); IGNORE NULLS reads past it.
            format!(
                "2023-11-14 11:00:30.000 | AMZN | 40 | NULL | 20 | {}",
                avg(10.0 / 8.0 + 20.0 / 4.0 + 40.0, 1.375)
            ),
            // 20 s is 30 s back: still in the frame.
            format!(
                "2023-11-14 11:00:50.000 | MSFT | 90 | -10 | 100 | {}",
                avg(100.0 / 8.0 + 90.0, 1.125)
            ),
            // The frame [30 s, 60 s]: the rows at 0, 10 and 20 s are gone.
            format!(
                "2023-11-14 11:01:00.000 | AMZN | 80 | 40 | 40 | {}",
                avg(40.0 / 8.0 + 80.0, 1.125)
            ),
        ]
    );
}

#[test]
fn e5_stagger_windows_open_at_each_keys_first_row() {
    use super::pump::{filter_rows, stagger_rows};
    use super::stagger::StaggerState;
    let plan = plan_of(crate::sql::tests::examples::E5);
    let pump = &plan.pumps[0];
    let PumpKind::Stagger(stagger) = &pump.kind else {
        panic!()
    };
    let input = &plan.streams[pump.input];
    // AWS's developer guide, stagger-window-concepts: (ROWTIME, EVENT_TIME).
    let rows: Vec<(i64, String)> = [
        (at(11, 0, 20), "11:00:10"),
        (at(11, 0, 30), "11:00:20"),
        (at(11, 1, 5), "11:00:55"),
        (at(11, 1, 15), "11:01:05"),
    ]
    .iter()
    .map(|(t, e)| {
        (
            *t,
            format!(r#"{{"TICKER_SYMBOL":"AMZN","EVENT_TIME":"2023-11-14 {e}"}}"#),
        )
    })
    .collect();
    let records: Vec<(i64, &str)> = rows.iter().map(|(t, r)| (*t, r.as_str())).collect();
    let mut state = StaggerState::new(Arc::new(stagger.clone()));
    let mut errors = Vec::new();
    let kept = filter_rows(pump, input, &decode(&records), &mut errors);
    let mut failed = Errors::new();
    state.push(&kept, &mut failed);
    assert!(failed.is_empty());
    let mut out = Vec::new();
    for watermark in [at(11, 1, 20), at(11, 2, 15)] {
        if let Some((groups, ends)) = state.close(watermark) {
            let written = stagger_rows(
                pump,
                stagger,
                &plan.streams[pump.target],
                &groups,
                &ends,
                &mut errors,
            );
            out.extend(rows_of(&written));
        }
        out.push(format!("-- {}", eval::format_time(watermark)));
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        out,
        vec![
            "2023-11-14 11:01:20.000 | AMZN | 2023-11-14 11:00:00.000 | 3",
            "-- 2023-11-14 11:01:20.000",
            "2023-11-14 11:02:15.000 | AMZN | 2023-11-14 11:01:00.000 | 1",
            "-- 2023-11-14 11:02:15.000",
        ]
    );
}

#[test]
fn e6_top_k_gives_the_five_most_frequent_ties_by_first_appearance() {
    let plan = plan_of(crate::sql::tests::examples::E6);
    let pump = &plan.pumps[0];
    let PumpKind::Tumbling(window) = &pump.kind else {
        panic!()
    };
    // Counts B 7, A 9, C 7, D 3, E 2, F 1, first seen in that order.
    let mut tickers = Vec::new();
    for (t, n) in [("B", 7), ("A", 9), ("C", 7), ("D", 3), ("E", 2), ("F", 1)] {
        tickers.extend(std::iter::repeat_n(t, n));
    }
    let seen_first: Vec<&str> = vec!["B", "A", "C", "D", "E", "F"];
    let rest: Vec<&str> = {
        let mut rest = tickers.clone();
        for t in &seen_first {
            let i = rest.iter().position(|x| x == t).unwrap();
            rest.remove(i);
        }
        rest
    };
    let order: Vec<&str> = seen_first
        .iter()
        .chain(rest.iter().rev())
        .copied()
        .collect();
    let records: Vec<(i64, String)> = order
        .iter()
        .enumerate()
        .map(|(i, t)| (T0 + 1_000 * i as i64, format!(r#"{{"TICKER":"{t}"}}"#)))
        .collect();
    let records: Vec<(i64, &str)> = records.iter().map(|(t, r)| (*t, r.as_str())).collect();
    let mut state = TumblingState::new(Arc::new(window.clone()));
    let mut errors = Errors::new();
    state.push(&decode(&records), 0, &mut errors);
    let mut out = Vec::new();
    for (start, groups) in state.close(T0 + 60_000) {
        let mut failed = Vec::new();
        let rows = window_rows(
            pump,
            window,
            start,
            &plan.streams[pump.target],
            &groups,
            &mut failed,
        );
        assert!(failed.is_empty(), "{failed:?}");
        out.extend(rows_of(&rows));
    }
    assert_eq!(
        out,
        vec![
            "2023-11-14 22:15:00.000 | A | 9",
            "2023-11-14 22:15:00.000 | B | 7",
            "2023-11-14 22:15:00.000 | C | 7",
            "2023-11-14 22:15:00.000 | D | 3",
            "2023-11-14 22:15:00.000 | E | 2",
        ]
    );
}

#[test]
fn e7_with_a_passthrough_sorts_each_second_by_the_score() {
    use super::order::Ordered;
    use super::pump::{filter_rows, project_rows};
    use super::sort::SortState;
    use crate::plan::tests::column;
    let code = crate::sql::tests::examples::E7.replace(
        "SELECT STREAM \"heartRate\", \"rateType\", ANOMALY_SCORE
      FROM TABLE(RANDOM_CUT_FOREST(
              CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\")));",
        "SELECT STREAM \"heartRate\", \"rateType\", \"heartRate\" / 10.0 FROM \"SOURCE_SQL_STREAM_001\";",
    );
    let catalog = crate::plan::Catalog {
        inputs: vec![(
            "SOURCE_SQL_STREAM_001".to_string(),
            vec![
                column("heartRate", "INTEGER"),
                column("rateType", "VARCHAR(20)"),
            ],
        )],
        reference_tables: vec![],
    };
    let plan = planned(&code, &catalog).unwrap_or_else(|e| panic!("{e}"));
    let [first, second] = plan.pumps.as_slice() else {
        panic!()
    };
    let PumpKind::Sort(sort) = &second.kind else {
        panic!("{:?}", second.kind)
    };
    assert_eq!(sort.bucket_ms, 1000);
    let format = InputFormat::new(
        Format::Json {
            row_path: "$".into(),
        },
        catalog.inputs[0]
            .1
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty,
                mapping: Some(format!("$.{}", c.name)),
            })
            .collect(),
    )
    .unwrap();
    let mut decoder = Decoder::new(Arc::new(format));
    for (t, rate) in [(0, 60), (100, 90), (200, 75), (1000, 100), (1500, 50)] {
        let json = format!(r#"{{"heartRate":{rate},"rateType":"r{rate}"}}"#);
        decoder.push(json.as_bytes(), T0 + t, T0 + t);
    }
    let (input, _) = decoder.finish();
    let mut errors = Vec::new();
    let temp = map_rows(
        first,
        &plan.streams[first.input],
        &plan.streams[first.target],
        &input,
        &mut errors,
    );
    let temp_stream = &plan.streams[second.input];
    let mut ordered = Ordered::new(temp_stream.rowtime());
    ordered.push(temp, 0);
    let mut state = SortState::new(Arc::new(sort.clone()));
    let mut out = Vec::new();
    for watermark in [T0 + 999, T0 + 1000, T0 + 2000] {
        if let Some(rows) = ordered.release(watermark) {
            state.push(&filter_rows(second, temp_stream, &rows, &mut errors));
        }
        if let Some(sorted) = state.release(watermark) {
            let rows = project_rows(
                second,
                &sort.items,
                temp_stream,
                &plan.streams[second.target],
                &sorted,
                &mut errors,
            );
            out.extend(rows_of(&rows));
        }
        out.push(format!("-- {}", watermark - T0));
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        out,
        vec![
            "-- 999",
            "2023-11-14 22:14:00.100 | 90 | r90 | 9",
            "2023-11-14 22:14:00.200 | 75 | r75 | 7.5",
            "2023-11-14 22:14:00.000 | 60 | r60 | 6",
            "-- 1000",
            "2023-11-14 22:14:01.000 | 100 | r100 | 10",
            "2023-11-14 22:14:01.500 | 50 | r50 | 5",
            "-- 2000",
        ]
    );
}

#[test]
fn decimal_columns_in_expressions_windows_and_copies() {
    use crate::plan::tests::column;
    let catalog = crate::plan::Catalog {
        inputs: vec![(
            "SOURCE_SQL_STREAM_001".to_string(),
            vec![column("T", "VARCHAR(4)"), column("P", "DECIMAL(10,2)")],
        )],
        reference_tables: vec![],
    };
    let code = r#"CREATE STREAM "D" (p DECIMAL(10,2), d DOUBLE, q DECIMAL(12,3));
CREATE PUMP "P" AS INSERT INTO "D" SELECT STREAM P, P * 2, P FROM "SOURCE_SQL_STREAM_001" WHERE P > 10;
CREATE STREAM "W" (t VARCHAR(4), s DOUBLE, m DECIMAL(10,2));
CREATE PUMP "Q" AS INSERT INTO "W" SELECT STREAM T, SUM(P), MIN(P) FROM "SOURCE_SQL_STREAM_001"
  GROUP BY T, FLOOR(ROWTIME TO MINUTE);
"#;
    let plan = planned(code, &catalog).unwrap_or_else(|e| panic!("{e}"));
    let format = InputFormat::new(
        Format::Json {
            row_path: "$".into(),
        },
        catalog.inputs[0]
            .1
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty,
                mapping: Some(format!("$.{}", c.name)),
            })
            .collect(),
    )
    .unwrap();
    let mut decoder = Decoder::new(Arc::new(format));
    for (i, p) in ["12.50", "3.25", "20.10"].iter().enumerate() {
        let json = format!(r#"{{"T":"A","P":{p}}}"#);
        decoder.push(json.as_bytes(), T0 + i as i64, T0 + i as i64);
    }
    let (input, _) = decoder.finish();
    let mut errors = Vec::new();
    let map = &plan.pumps[0];
    let rows = map_rows(
        map,
        &plan.streams[0],
        &plan.streams[map.target],
        &input,
        &mut errors,
    );
    let decimals = |c: usize| -> Vec<String> {
        let a = rows
            .column(c)
            .as_primitive::<arrow_array::types::Decimal128Type>();
        (0..a.len()).map(|i| a.value_as_string(i)).collect()
    };
    assert_eq!(decimals(0), vec!["12.50", "20.10"]);
    assert_eq!(value(rows.column(1), 0), "25");
    assert_eq!(decimals(2), vec!["12.500", "20.100"]);
    let window = &plan.pumps[1];
    let PumpKind::Tumbling(t) = &window.kind else {
        panic!()
    };
    let mut state = TumblingState::new(Arc::new(t.clone()));
    let mut failed = Errors::new();
    state.push(&input, 0, &mut failed);
    let closed = state.close(T0 + 60_000);
    let (start, groups) = &closed[0];
    let out = window_rows(
        window,
        t,
        *start,
        &plan.streams[window.target],
        groups,
        &mut errors,
    );
    assert!(
        errors.is_empty() && failed.is_empty(),
        "{errors:?} {failed:?}"
    );
    assert_eq!(value(out.column(1), 0), "35.85");
    assert_eq!(
        out.column(2)
            .as_primitive::<arrow_array::types::Decimal128Type>()
            .value_as_string(0),
        "3.25"
    );
}

#[test]
fn e8_joins_each_row_with_its_company_or_null() {
    use super::join::{JoinKind, RefTable, join};
    use crate::plan::tests::column;
    let plan = plan_of(crate::sql::tests::examples::E8);
    let pump = &plan.pumps[0];
    let j = pump.join.as_ref().unwrap();
    // The reference table: 2 of the 4 tickers.
    let table_format = InputFormat::new(
        Format::Csv {
            row_delimiter: "\n".into(),
            column_delimiter: ",".into(),
        },
        [
            column("Ticker", "VARCHAR(4)"),
            column("Company", "VARCHAR(20)"),
        ]
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            ty: c.ty,
            mapping: None,
        })
        .collect(),
    )
    .unwrap();
    let mut decoder = Decoder::new(Arc::new(table_format));
    decoder.push(b"AMZN,Amazon", 0, 0);
    decoder.push(b"WAS,Washington Co", 0, 0);
    let (rows, _) = decoder.finish();
    let columns = vec![rows.column(0).clone(), rows.column(1).clone()];
    let schema = Arc::new(arrow_schema::Schema::new(
        rows.schema().fields()[..2].to_vec(),
    ));
    let table = RefTable::build(
        RecordBatch::try_new(schema, columns).unwrap(),
        vec![j.keys[0].1],
    );
    let input = decode(&[
        (
            T0,
            r#"{"TICKER_SYMBOL":"AMZN","SECTOR":"TECHNOLOGY","CHANGE":1,"PRICE":100}"#,
        ),
        (
            T0 + 1,
            r#"{"TICKER_SYMBOL":"QXZ","SECTOR":"RETAIL","CHANGE":2,"PRICE":10}"#,
        ),
        (
            T0 + 2,
            r#"{"TICKER_SYMBOL":"WAS","SECTOR":"ENERGY","CHANGE":3,"PRICE":20}"#,
        ),
        (
            T0 + 3,
            r#"{"TICKER_SYMBOL":"NFS","SECTOR":"FINANCIAL","CHANGE":4,"PRICE":30}"#,
        ),
    ]);
    let mut ignored = Errors::new();
    let keys: Vec<_> = j
        .keys
        .iter()
        .map(|(e, _)| eval::evaluate(e, &input, &mut ignored))
        .collect();
    let joined = join(&table, &input, &keys, JoinKind::Left);
    let mut errors = Vec::new();
    let out = map_rows(
        pump,
        &plan.streams[pump.input],
        &plan.streams[pump.target],
        &joined,
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        rows_of(&out),
        vec![
            "2023-11-14 22:14:00.000 | AMZN | Amazon | TECHNOLOGY | 1 | 100",
            "2023-11-14 22:14:00.001 | QXZ | NULL | RETAIL | 2 | 10",
            "2023-11-14 22:14:00.002 | WAS | Washington Co | ENERGY | 3 | 20",
            "2023-11-14 22:14:00.003 | NFS | NULL | FINANCIAL | 4 | 30",
        ]
    );
    let inner = join(&table, &input, &keys, JoinKind::Inner);
    assert_eq!(inner.num_rows(), 2);
}

#[test]
fn mod_and_timestamp_plus_interval() {
    let code = r#"CREATE STREAM "D" (m BIGINT, later TIMESTAMP, earlier TIMESTAMP);
CREATE PUMP "P" AS INSERT INTO "D"
  SELECT STREAM MOD(CAST(PRICE AS BIGINT), 7), ROWTIME + INTERVAL '90' SECOND, ROWTIME - INTERVAL '1' DAY
  FROM "SOURCE_SQL_STREAM_001" WHERE ROWTIME > ROWTIME - INTERVAL '1' MINUTE;
"#;
    let plan = plan_of(code);
    let pump = &plan.pumps[0];
    let input = decode(&[(T0, r#"{"PRICE":100}"#), (T0 + 1, r#"{"PRICE":20}"#)]);
    let mut errors = Vec::new();
    let out = map_rows(
        pump,
        &plan.streams[pump.input],
        &plan.streams[pump.target],
        &input,
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        rows_of(&out),
        vec![
            "2023-11-14 22:14:00.000 | 2 | 2023-11-14 22:15:30.000 | 2023-11-13 22:14:00.000",
            "2023-11-14 22:14:00.001 | 6 | 2023-11-14 22:15:30.001 | 2023-11-13 22:14:00.001",
        ]
    );
}
