//! The planner: AWS's examples planned (or refused by construct and
//! position, until their slices land), the plans' shapes, and every refusal
//! of docs/analytics-design.md §3.6 the planner makes, at its position.

use super::*;
use crate::expr::{ExprKind, Func};
use crate::sql::tests::examples::{E1, E2, E3, E4, E5, E6, E7, E8};
use crate::sql::{Context, Pos, SqlError, on_parser_stack, parse_on_this_stack};

pub(crate) fn column(name: &str, ty: &str) -> ColumnPlan {
    ColumnPlan {
        name: name.to_string(),
        ty: SqlType::parse(ty).unwrap(),
        not_null: false,
    }
}

/// The demo stream's schema (aws-services.md §2.8), plus EVENT_TIME for E3.
pub(crate) fn demo() -> Catalog {
    Catalog {
        inputs: vec![(
            "SOURCE_SQL_STREAM_001".to_string(),
            vec![
                column("TICKER_SYMBOL", "VARCHAR(4)"),
                column("SECTOR", "VARCHAR(16)"),
                column("CHANGE", "REAL"),
                column("PRICE", "REAL"),
                column("TICKER", "VARCHAR(4)"),
                column("EVENT_TIME", "TIMESTAMP"),
            ],
        )],
        reference_tables: vec![(
            "CompanyName".to_string(),
            vec![
                column("Ticker", "VARCHAR(4)"),
                column("Company", "VARCHAR(20)"),
            ],
        )],
    }
}

/// Parses and plans `code` on the parser's stack.
pub(crate) fn planned(code: &str, catalog: &Catalog) -> Result<AppPlan, SqlError> {
    on_parser_stack(|| {
        let inputs: Vec<&str> = catalog.inputs.iter().map(|(n, _)| n.as_str()).collect();
        let tables: Vec<&str> = catalog
            .reference_tables
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let context = Context {
            inputs: &inputs,
            reference_tables: &tables,
        };
        let script = parse_on_this_stack(code, &context)?;
        plan(&script, catalog)
    })?
}

fn ok(code: &str) -> AppPlan {
    planned(code, &demo()).unwrap_or_else(|e| panic!("refused: {e}\n{code}"))
}

fn refused(code: &str) -> SqlError {
    match planned(code, &demo()) {
        Ok(plan) => panic!("accepted: {plan:?}\n{code}"),
        Err(e) => e,
    }
}

/// The 1-based position of the `nth` occurrence of `needle`.
fn pos_of(code: &str, needle: &str, nth: usize) -> Pos {
    let (byte, _) = code
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in the code"));
    let before = &code[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = code[line_start..byte].chars().count() as u64 + 1;
    Pos { line, column }
}

/// Asserts a refusal whose message contains `words`, at `needle`.
fn refused_at(code: &str, words: &str, needle: &str, nth: usize) {
    let e = refused(code);
    assert!(e.message.contains(words), "{e} lacks {words:?}");
    assert_eq!(e.at, Some(pos_of(code, needle, nth)), "{e}");
}

const DEST: &str = r#"CREATE STREAM "D" (a VARCHAR(4), b DOUBLE);
"#;

/// A pump into `"D" (a VARCHAR(4), b DOUBLE)` with `select`.
fn pump(select: &str) -> String {
    format!("{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" {select};\n")
}

#[test]
fn e1_plans_a_filter_and_the_columns() {
    let plan = ok(E1);
    assert_eq!(plan.streams.len(), 2);
    assert_eq!(plan.streams[1].name, "DESTINATION_SQL_STREAM");
    assert_eq!(plan.streams[1].kind, StreamKind::Code);
    let [p] = plan.pumps.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!((p.input, p.target), (0, 1));
    assert_eq!(p.fills, vec![Some(0), Some(1), Some(2), Some(3)]);
    let PumpKind::Map { items } = &p.kind else {
        panic!("{:?}", p.kind)
    };
    let columns: Vec<_> = items
        .iter()
        .map(|i| (i.expr.kind.clone(), i.column_type))
        .collect();
    assert_eq!(
        columns,
        vec![
            (ExprKind::Column(0), Some(SqlType::Varchar { len: 4 })),
            (ExprKind::Column(1), Some(SqlType::Varchar { len: 16 })),
            (ExprKind::Column(2), Some(SqlType::Real)),
            (ExprKind::Column(3), Some(SqlType::Real)),
        ]
    );
    let filter = p.filter.as_ref().expect("WHERE");
    assert_eq!(filter.ty, crate::expr::Ty::Bool);
}

#[test]
fn e2_plans_a_sixty_second_tumbling_window() {
    let plan = ok(E2);
    let PumpKind::Tumbling(t) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    assert_eq!(t.width_ms, 60_000);
    assert_eq!(t.rowtime, 6);
    assert_eq!(t.keys, vec![Expr::column(4, Ty::Text)]);
    let funcs: Vec<_> = t.aggs.iter().map(|a| (a.func, a.arg.clone())).collect();
    assert_eq!(
        funcs,
        vec![
            (AggFunc::Min, Some(Expr::column(3, Ty::Float))),
            (AggFunc::Max, Some(Expr::column(3, Ty::Float))),
        ]
    );
    // Group rows: window start, TICKER, MIN, MAX.
    let items: Vec<_> = t.items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(
        items,
        vec![
            ExprKind::Column(1),
            ExprKind::Column(2),
            ExprKind::Column(3)
        ]
    );
    assert_eq!(t.items[0].column_type, Some(SqlType::Varchar { len: 4 }));
    assert_eq!(
        t.group_row_types(),
        vec![Ty::Time, Ty::Text, Ty::Float, Ty::Float]
    );
}

#[test]
fn e3_two_time_form_selects_the_event_time_key() {
    let plan = ok(E3);
    let PumpKind::Tumbling(t) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    assert_eq!(t.width_ms, 60_000);
    assert_eq!(t.keys.len(), 2);
    assert_eq!(
        t.keys[1].kind,
        ExprKind::Call(Func::Step(60_000), vec![Expr::column(5, Ty::Time)])
    );
    // STEP(EVENT_TIME …) is the second key: group row column 2.
    assert_eq!(t.items[0].expr.kind, ExprKind::Column(2));
}

#[test]
fn the_examples_not_served_yet_are_refused_by_construct() {
    refused_at(
        E7,
        "Function RANDOM_CUT_FOREST is not supported",
        "RANDOM_CUT_FOREST",
        0,
    );
}

#[test]
fn e6_plans_a_top_k_count_per_value() {
    let plan = ok(E6);
    let PumpKind::Tumbling(t) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    assert_eq!(t.width_ms, 60_000);
    assert_eq!(t.keys, vec![Expr::column(4, Ty::Text)]);
    assert_eq!(t.top, Some(TopItems::MostFrequent { k: 5 }));
    // `*` over (TICKER, MOST_FREQUENT_VALUES), after the window's start.
    let items: Vec<_> = t.items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(items, vec![ExprKind::Column(1), ExprKind::Column(2)]);
    let code = E6.replace("'TICKER'", "'ticker'");
    refused_at(&code, "Column \"ticker\" not found", "'ticker'", 0);
    let code = E6.replace("            5,", "            0,");
    refused_at(&code, "K is a whole number from 1 to 100000", "0,", 0);
    let code = E6.replace("            60 ", "            3601 ");
    refused_at(
        &code,
        "window size (seconds) is a whole number from 1 to 3600",
        "3601",
        0,
    );
}

#[test]
fn count_distinct_items_and_a_filtered_cursor() {
    let code = r#"CREATE STREAM "D" (n BIGINT, t TIMESTAMP);
CREATE PUMP "P" AS INSERT INTO "D"
  SELECT STREAM NUMBER_OF_DISTINCT_ITEMS, ROWTIME
  FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
    CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001" WHERE price > 1), 'TICKER', 10));
"#;
    let plan = ok(code);
    let p = &plan.pumps[0];
    assert!(p.filter.is_some());
    let PumpKind::Tumbling(t) = &p.kind else {
        panic!()
    };
    assert_eq!(t.top, Some(TopItems::DistinctCount));
    let items: Vec<_> = t.items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(items, vec![ExprKind::Column(1), ExprKind::Column(2)]);
    let code = code.replace("COUNT_DISTINCT_ITEMS_TUMBLING", "SOMETHING_ELSE");
    refused_at(
        &code,
        "FROM TABLE(SOMETHING_ELSE(…)) is not supported",
        "SOMETHING_ELSE",
        0,
    );
}

#[test]
fn e8_plans_a_left_join_with_the_reference_table() {
    let plan = ok(E8);
    let p = &plan.pumps[0];
    let join = p.join.as_ref().expect("a join");
    assert_eq!(join.table, "CompanyName");
    assert!(join.left);
    assert_eq!(join.keys, vec![(Expr::column(0, Ty::Text), 0)]);
    // Joined rows: the input's 6 columns, ROWTIME, the arrival time, then
    // Ticker (8) and Company (9).
    let PumpKind::Map { items } = &p.kind else {
        panic!()
    };
    let columns: Vec<_> = items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(
        columns,
        vec![
            ExprKind::Column(0),
            ExprKind::Column(9),
            ExprKind::Column(1),
            ExprKind::Column(2),
            ExprKind::Column(3)
        ]
    );
}

#[test]
fn join_refusals() {
    let join = |on: &str, kind: &str| {
        pump(&format!(
            r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" AS s {kind} JOIN "CompanyName" AS c ON {on}"#
        ))
    };
    ok(&join("s.ticker = c.\"Ticker\"", ""));
    ok(&join("c.\"Ticker\" = UPPER(s.ticker)", "INNER"));
    refused_at(
        &join("s.ticker = c.\"Ticker\"", "RIGHT"),
        "This kind of JOIN",
        "\"CompanyName\"",
        0,
    );
    refused_at(
        &join("s.ticker > c.\"Ticker\"", "LEFT"),
        "equalities joined by AND",
        "s.ticker >",
        0,
    );
    refused_at(
        &join("s.price = c.\"Ticker\"", "LEFT"),
        "Cannot compare a DOUBLE value with the VARCHAR(4) column",
        "s.price",
        0,
    );
    refused_at(
        &join("s.ticker = s.sector", "LEFT"),
        "compares a stream expression with a column of the table",
        "s.ticker",
        0,
    );
    let code = pump(
        r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" JOIN "Nope" ON ticker = "Nope".x"#,
    );
    refused_at(
        &code,
        "Reference table \"Nope\" not found",
        "\"Nope\" ON",
        0,
    );
    // A column in both the stream and the table must be qualified.
    let catalog = Catalog {
        inputs: demo().inputs,
        reference_tables: vec![(
            "T".to_string(),
            vec![column("TICKER", "VARCHAR(4)"), column("NAME", "VARCHAR(9)")],
        )],
    };
    let code = pump(
        r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" AS s JOIN "T" AS t ON s.ticker = t.ticker"#,
    );
    let e = planned(&code, &catalog).unwrap_err();
    assert!(e.message.contains("Column \"TICKER\" is in both"), "{e}");
    let code = code.replace("SELECT STREAM ticker,", "SELECT STREAM s.ticker,");
    planned(&code, &catalog).unwrap();
}

#[test]
fn e4_plans_a_sliding_window_shared_by_three_aggregates() {
    let plan = ok(E4);
    let PumpKind::Sliding(s) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    assert_eq!(
        s.windows,
        vec![WindowSpec {
            partition: vec![Expr::column(0, Ty::Text)],
            frame: Frame::Range { ms: 60_000 },
        }]
    );
    let funcs: Vec<_> = s.aggs.iter().map(|(w, a)| (*w, a.func)).collect();
    assert_eq!(
        funcs,
        vec![(0, AggFunc::Min), (0, AggFunc::Max), (0, AggFunc::Avg)]
    );
    // Extended rows: the input's 6 columns, ROWTIME, the arrival time, then
    // the aggregates.
    let items: Vec<_> = s.items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(
        items,
        vec![
            ExprKind::Column(0),
            ExprKind::Column(8),
            ExprKind::Column(9),
            ExprKind::Column(10)
        ]
    );
    assert!(plan.pumps[0].kind.ordered());
}

#[test]
fn e5_plans_a_stagger_window() {
    let plan = ok(E5);
    let PumpKind::Stagger(s) = &plan.pumps[0].kind else {
        panic!("{:?}", plan.pumps[0].kind)
    };
    assert_eq!(s.width_ms, 60_000);
    assert_eq!(
        s.keys,
        vec![
            Expr::new(
                ExprKind::Call(Func::Step(60_000), vec![Expr::column(5, Ty::Time)]),
                Ty::Time
            ),
            Expr::column(0, Ty::Text),
        ]
    );
    // TICKER_SYMBOL is key 2, FLOOR(EVENT_TIME TO MINUTE) key 1, the count
    // the aggregate after them.
    let items: Vec<_> = s.items.iter().map(|i| i.expr.kind.clone()).collect();
    assert_eq!(
        items,
        vec![
            ExprKind::Column(2),
            ExprKind::Column(1),
            ExprKind::Column(3)
        ]
    );
}

#[test]
fn sliding_windows_inline_rows_frames_and_their_refusals() {
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (PARTITION BY ticker ROWS 2 PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    let plan = ok(&code);
    let PumpKind::Sliding(s) = &plan.pumps[0].kind else {
        panic!()
    };
    assert_eq!(s.windows[0].frame, Frame::Rows { preceding: 2 });
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER w FROM "SOURCE_SQL_STREAM_001" WINDOW v AS (ROWS 2 PRECEDING)"#,
    );
    refused_at(&code, "Window W is not defined", "AVG(", 0);
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (PARTITION BY ticker) FROM "SOURCE_SQL_STREAM_001""#,
    );
    refused_at(&code, "A window needs a frame", "AVG(", 0);
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (ORDER BY price ROWS 2 PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    refused_at(&code, "ORDER BY in a window other than ROWTIME", "AVG(", 0);
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (RANGE UNBOUNDED PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    refused_at(&code, "This window frame", "AVG(", 0);
    let code = pump(
        r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" WHERE AVG(price) OVER (ROWS 2 PRECEDING) > 1"#,
    );
    let e = refused(&code);
    assert!(e.message.contains("OVER (a sliding window)"), "{e}");
}

#[test]
fn unknown_columns_and_streams_are_named_at_their_place() {
    let code = pump(r#"SELECT STREAM ticker_symbol, volume FROM "SOURCE_SQL_STREAM_001""#);
    let e = refused(&code);
    assert!(
        e.message.starts_with(
            r#"Column "VOLUME" not found in "SOURCE_SQL_STREAM_001" (columns: "TICKER_SYMBOL", "SECTOR""#
        ),
        "{e}"
    );
    assert_eq!(e.at, Some(pos_of(&code, "volume", 0)));
    let code = pump(r#"SELECT STREAM ticker_symbol, price FROM "SOURCE_SQL_STREAM_002""#);
    refused_at(
        &code,
        r#"Stream "SOURCE_SQL_STREAM_002" not found (streams: "SOURCE_SQL_STREAM_001", "D")"#,
        "\"SOURCE_SQL_STREAM_002\"",
        0,
    );
    let code = pump(r#"SELECT STREAM x.ticker_symbol, price FROM "SOURCE_SQL_STREAM_001""#);
    refused_at(&code, "X is not a stream of this query", "x.", 0);
    let code = pump(r#"SELECT STREAM s.ticker_symbol, s.price FROM "SOURCE_SQL_STREAM_001" AS s"#);
    ok(&code);
    let code = pump(
        r#"SELECT STREAM "SOURCE_SQL_STREAM_001".ticker_symbol, price FROM "SOURCE_SQL_STREAM_001" AS s"#,
    );
    refused_at(
        &code,
        "is not a stream of this query",
        "\"SOURCE_SQL_STREAM_001\".",
        0,
    );
}

#[test]
fn a_pump_reading_a_reference_table_or_error_stream_is_refused() {
    let code = pump(r#"SELECT STREAM a, b FROM "CompanyName""#);
    refused_at(&code, "reference table", "\"CompanyName\"", 0);
    let code = pump(r#"SELECT STREAM a, b FROM error_stream"#);
    refused_at(&code, "can only be an output", "error_stream", 0);
}

#[test]
fn aggregates_need_a_group_by_with_one_rowtime_window() {
    let code = pump(r#"SELECT STREAM ticker, MIN(price) FROM "SOURCE_SQL_STREAM_001""#);
    refused_at(&code, "MIN is an aggregate", "MIN(", 0);
    let code =
        pump(r#"SELECT STREAM ticker, MIN(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker"#);
    refused_at(&code, "A GROUP BY needs a ROWTIME window", "ticker;", 0);
    let code = pump(
        r#"SELECT STREAM ticker, MIN(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, STEP(ROWTIME BY INTERVAL '1' MINUTE), FLOOR(ROWTIME TO HOUR)"#,
    );
    refused_at(&code, "one ROWTIME window, not two", "ROWTIME TO HOUR", 0);
    let code = pump(
        r#"SELECT STREAM sector, MIN(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, FLOOR(ROWTIME TO MINUTE)"#,
    );
    refused_at(
        &code,
        "Column \"SECTOR\" is neither in the GROUP BY nor in an aggregate",
        "sector,",
        0,
    );
    let code = pump(
        r#"SELECT STREAM ticker, SUM(ticker) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, FLOOR(ROWTIME TO MINUTE)"#,
    );
    refused_at(&code, "SUM needs a number, not a VARCHAR value", "SUM(", 0);
    let code = pump(r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" HAVING price > 1"#);
    refused_at(&code, "HAVING needs a GROUP BY", "price > 1", 0);
}

#[test]
fn floor_to_a_unit_is_a_window_and_having_filters_groups() {
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE) HAVING COUNT(*) > 2 AND MAX(price) < 100"#,
    );
    let plan = ok(&code);
    let PumpKind::Tumbling(t) = &plan.pumps[0].kind else {
        panic!()
    };
    assert_eq!(t.width_ms, 60_000);
    let funcs: Vec<_> = t.aggs.iter().map(|a| a.func).collect();
    assert_eq!(funcs, vec![AggFunc::Avg, AggFunc::CountRows, AggFunc::Max]);
    assert!(t.having.is_some());
}

#[test]
fn step_widths_must_be_positive_intervals() {
    for (window, needle) in [
        ("STEP(ROWTIME BY INTERVAL '0' SECOND)", "'0'"),
        ("STEP(ROWTIME BY INTERVAL '-5' SECOND)", "'-5'"),
    ] {
        let code = pump(&format!(
            r#"SELECT STREAM ticker, MIN(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, {window}"#
        ));
        refused_at(&code, "STEP's width must be more than zero", needle, 0);
    }
    let code = pump(
        r#"SELECT STREAM ticker, MIN(price) FROM "SOURCE_SQL_STREAM_001" GROUP BY ticker, STEP(ROWTIME BY INTERVAL '1' MONTH)"#,
    );
    refused_at(&code, "This INTERVAL", "'1' MONTH", 0);
}

#[test]
fn select_lists_must_fit_the_target() {
    let code = pump(r#"SELECT STREAM ticker FROM "SOURCE_SQL_STREAM_001""#);
    let e = refused(&code);
    assert!(
        e.message.contains("selects 1 value for the 2 columns of"),
        "{e}"
    );
    let code = pump(r#"SELECT STREAM price, ticker FROM "SOURCE_SQL_STREAM_001""#);
    refused_at(
        &code,
        r#"Cannot insert a REAL value into column "A" VARCHAR(4) of "D""#,
        "price,",
        0,
    );
    let code = pump(r#"SELECT STREAM ticker, sector FROM "SOURCE_SQL_STREAM_001""#);
    refused_at(
        &code,
        "Cannot insert a VARCHAR(16) value into column \"B\"",
        "sector",
        0,
    );
    let code = format!(
        "{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" (b, a) SELECT STREAM price, ticker FROM \"SOURCE_SQL_STREAM_001\";"
    );
    let plan = ok(&code);
    assert_eq!(plan.pumps[0].fills, vec![Some(1), Some(0)]);
    let code = format!(
        "{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" (b) SELECT STREAM price FROM \"SOURCE_SQL_STREAM_001\";"
    );
    assert_eq!(ok(&code).pumps[0].fills, vec![None, Some(0)]);
    let code = format!(
        "{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" (b, c) SELECT STREAM price, price FROM \"SOURCE_SQL_STREAM_001\";"
    );
    assert!(
        refused(&code)
            .message
            .contains("Column C not found in \"D\"")
    );
    let code = format!(
        "{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" (b, b) SELECT STREAM price, price FROM \"SOURCE_SQL_STREAM_001\";"
    );
    assert!(refused(&code).message.contains("named twice"));
}

#[test]
fn an_empty_select_list_is_refused() {
    let code = pump(r#"SELECT STREAM FROM "SOURCE_SQL_STREAM_001""#);
    match planned(&code, &demo()) {
        Ok(plan) => panic!("accepted {plan:?}"),
        Err(e) => assert!(
            e.message.contains("at least one item") || e.message.contains("Expected"),
            "{e}"
        ),
    }
}

#[test]
fn type_errors_are_refused_where_written() {
    let cases = [
        (
            "ticker + 1",
            "Cannot do arithmetic on a VARCHAR value and a BIGINT value",
            "ticker + 1",
        ),
        (
            "NOT price",
            "NOT needs a BOOLEAN, not a DOUBLE value",
            "price) IS",
        ),
        (
            "UPPER(price)",
            "UPPER needs a VARCHAR, not a DOUBLE value",
            "UPPER(",
        ),
        (
            "CAST(event_time AS BOOLEAN)",
            "Cannot CAST a TIMESTAMP value to BOOLEAN",
            "event_time AS",
        ),
        ("LAG(price)", "LAG needs a sliding window", "LAG("),
        ("FOO(price)", "Function FOO is not supported", "FOO("),
        ("ABS(price, 1)", "ABS takes 1 argument, not 2", "ABS("),
        (
            "price - INTERVAL '1' SECOND",
            "An INTERVAL is added to a TIMESTAMP, not a DOUBLE value",
            "price -",
        ),
        (
            "INTERVAL '1' SECOND - event_time",
            "This INTERVAL arithmetic",
            "'1' SECOND -",
        ),
    ];
    for (expr, words, needle) in cases {
        let code = pump(&format!(
            r#"SELECT STREAM ticker, 1.0 FROM "SOURCE_SQL_STREAM_001" WHERE ({expr}) IS NOT NULL"#
        ));
        refused_at(&code, words, needle, 0);
    }
    let code = pump(r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" WHERE price"#);
    refused_at(
        &code,
        "WHERE needs a BOOLEAN, not a DOUBLE value",
        "price;",
        0,
    );
}

#[test]
fn expressions_get_sql_s_implicit_casts() {
    let code = pump(
        r#"SELECT STREAM COALESCE(ticker, 'none'), CASE WHEN price > 10 THEN 1 ELSE price END FROM "SOURCE_SQL_STREAM_001" WHERE event_time > '2026-01-01 00:00:00' AND price BETWEEN 1 AND 2 AND ticker IN ('A', 'B') AND NULLIF(sector, '') IS NOT NULL"#,
    );
    let plan = ok(&code);
    let PumpKind::Map { items } = &plan.pumps[0].kind else {
        panic!()
    };
    assert_eq!(items[0].expr.ty, Ty::Text);
    assert_eq!(items[1].expr.ty, Ty::Float);
    assert_eq!(items[0].column_type, None);
}

#[test]
fn pumps_are_ordered_by_the_flow_of_their_streams() {
    let code = r#"CREATE STREAM "A" (x DOUBLE);
CREATE STREAM "B" (x DOUBLE);
CREATE STREAM "C" (x DOUBLE);
CREATE PUMP "P3" AS INSERT INTO "C" SELECT STREAM x FROM "B";
CREATE PUMP "P2" AS INSERT INTO "B" SELECT STREAM x FROM "A";
CREATE PUMP "P1" AS INSERT INTO "A" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001";
CREATE PUMP "P4" AS INSERT INTO "C" SELECT STREAM x * 2 FROM "A";
"#;
    let plan = ok(code);
    let names: Vec<&str> = plan.pumps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["P1", "P2", "P4", "P3"]);
}

#[test]
fn wildcards_expand_to_the_declared_columns() {
    let code = r#"CREATE STREAM "T" (a VARCHAR(4), b DOUBLE);
CREATE STREAM "U" (a VARCHAR(4), b DOUBLE);
CREATE PUMP "P1" AS INSERT INTO "T" SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001";
CREATE PUMP "P2" AS INSERT INTO "U" SELECT STREAM * FROM "T";
CREATE PUMP "P3" AS INSERT INTO "U" SELECT STREAM "T".* FROM "T";
"#;
    let plan = ok(code);
    let PumpKind::Map { items } = &plan.pumps[1].kind else {
        panic!()
    };
    assert_eq!(items.len(), 2);
    let code = code.replace("\"T\".*", "\"U\".*");
    let e = refused(&code);
    assert!(e.message.contains("does not name a stream or table"), "{e}");
}

#[test]
fn writing_rowtime_is_refused() {
    let code = format!(
        "{DEST}CREATE PUMP \"P\" AS INSERT INTO \"D\" (ROWTIME, b) SELECT STREAM event_time, price FROM \"SOURCE_SQL_STREAM_001\";"
    );
    let e = refused(&code);
    assert!(e.message.contains("ROWTIME"), "{e}");
}

#[test]
fn rowtime_and_arrival_time_are_readable_columns() {
    let code = r#"CREATE STREAM "T" (t TIMESTAMP, u TIMESTAMP);
CREATE STREAM "U" (t TIMESTAMP);
CREATE PUMP "P1" AS INSERT INTO "T" SELECT STREAM ROWTIME, APPROXIMATE_ARRIVAL_TIME FROM "SOURCE_SQL_STREAM_001";
CREATE PUMP "P2" AS INSERT INTO "U" SELECT STREAM "T".ROWTIME FROM "T";
"#;
    let plan = ok(code);
    let PumpKind::Map { items } = &plan.pumps[0].kind else {
        panic!()
    };
    assert_eq!(items[0].expr.kind, ExprKind::Column(6));
    assert_eq!(items[1].expr.kind, ExprKind::Column(7));
    let code = code.replace(
        "SELECT STREAM \"T\".ROWTIME",
        "SELECT STREAM APPROXIMATE_ARRIVAL_TIME",
    );
    let e = refused(&code);
    assert!(
        e.message
            .contains("Column \"APPROXIMATE_ARRIVAL_TIME\" not found in \"T\""),
        "{e}"
    );
}

#[test]
fn not_yet_served_select_forms_are_refused() {
    for (select, words, needle) in [
        (
            r#"SELECT STREAM DISTINCT ticker, price FROM "SOURCE_SQL_STREAM_001""#,
            "SELECT DISTINCT",
            "SELECT",
        ),
        (
            r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" ORDER BY price, FLOOR(ROWTIME TO SECOND)"#,
            "An ORDER BY not led by a ROWTIME step",
            "price, FLOOR",
        ),
        (
            r#"SELECT STREAM ticker, price FROM (SELECT STREAM * FROM "SOURCE_SQL_STREAM_001") AS s"#,
            "A sub-select in FROM",
            "(SELECT",
        ),
    ] {
        let code = pump(select);
        let e = refused(&code);
        assert!(e.message.contains(words), "{e}");
        let at = e.at.expect("a position");
        let expected = pos_of(&code, needle, 0);
        assert_eq!(at.line, expected.line, "{e}");
    }
}

#[test]
fn date_and_decimal_columns_are_copied_as_they_are() {
    let catalog = Catalog {
        inputs: vec![(
            "SOURCE_SQL_STREAM_001".to_string(),
            vec![column("D", "DATE"), column("AMOUNT", "DECIMAL(10,2)")],
        )],
        reference_tables: vec![],
    };
    let code = r#"CREATE STREAM "T" (d DATE, amount DECIMAL(10,2), half DOUBLE);
CREATE PUMP "P" AS INSERT INTO "T" SELECT STREAM d, amount, amount / 2 FROM "SOURCE_SQL_STREAM_001";
"#;
    let plan = planned(code, &catalog).unwrap();
    let PumpKind::Map { items } = &plan.pumps[0].kind else {
        panic!()
    };
    assert_eq!(items[0].column_type, Some(SqlType::Date));
    let code = code.replace("amount / 2", "d");
    let e = planned(&code, &catalog).unwrap_err();
    assert!(
        e.message
            .contains("Cannot insert a DATE value into column \"HALF\""),
        "{e}"
    );
    let code = r#"CREATE STREAM "T" (d DATE);
CREATE PUMP "P" AS INSERT INTO "T" SELECT STREAM d FROM "SOURCE_SQL_STREAM_001" WHERE d IS NOT NULL;
"#;
    let e = planned(code, &catalog).unwrap_err();
    assert!(
        e.message
            .contains("Using a DATE column in an expression is not supported"),
        "{e}"
    );
}

#[test]
fn star_over_a_join_is_the_streams_columns_then_the_tables() {
    let code = r#"CREATE STREAM "D" (a VARCHAR(4), b VARCHAR(16), c REAL, d REAL, e VARCHAR(4), f TIMESTAMP, g VARCHAR(4), h VARCHAR(20));
CREATE STREAM "T" (g VARCHAR(4), h VARCHAR(20));
CREATE PUMP "P" AS INSERT INTO "D" SELECT STREAM * FROM "SOURCE_SQL_STREAM_001" AS s LEFT JOIN "CompanyName" AS c ON s.ticker = c."Ticker";
CREATE PUMP "Q" AS INSERT INTO "T" SELECT STREAM c.* FROM "SOURCE_SQL_STREAM_001" AS s LEFT JOIN "CompanyName" AS c ON s.ticker = c."Ticker";
"#;
    let plan = ok(code);
    let PumpKind::Map { items } = &plan.pumps[0].kind else {
        panic!()
    };
    let columns: Vec<_> = items.iter().map(|i| i.expr.kind.clone()).collect();
    let expected: Vec<_> = [0, 1, 2, 3, 4, 5, 8, 9].map(ExprKind::Column).to_vec();
    assert_eq!(columns, expected);
    let PumpKind::Map { items } = &plan.pumps[1].kind else {
        panic!()
    };
    assert_eq!(items.len(), 2);
}

#[test]
fn windows_held_in_memory_are_bounded() {
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (ROWS 100001 PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    assert!(
        refused(&code)
            .message
            .contains("ROWS n PRECEDING takes n up to 100000")
    );
    let code = pump(
        r#"SELECT STREAM ticker, AVG(price) OVER (RANGE INTERVAL '2' DAY PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    assert!(
        refused(&code)
            .message
            .contains("A RANGE is from 0 to 24 hours")
    );
    let code = pump(
        r#"SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" ORDER BY STEP(ROWTIME BY INTERVAL '2' HOUR), price"#,
    );
    assert!(refused(&code).message.contains("steps of at most 1 hour"));
}

/// `SELECT STREAM <items> FROM "SOURCE_SQL_STREAM_001" <rest>` into
/// `"D" (a VARCHAR(4), b DOUBLE)`.
fn sliding_pump(items: &str, rest: &str) -> String {
    pump(&format!(
        r#"SELECT STREAM {items} FROM "SOURCE_SQL_STREAM_001" {rest}"#
    ))
}

fn sliding_of(plan: &AppPlan) -> &Sliding {
    match &plan.pumps[0].kind {
        PumpKind::Sliding(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lag_plans_as_a_sliding_aggregate_with_its_default_in_its_type() {
    // PRICE is input column 3; the extended rows' first aggregate is column
    // 8 (6 columns, ROWTIME, the arrival time).
    let code = sliding_pump(
        "ticker, price - LAG(price, 1, 0) OVER w",
        "WINDOW w AS (PARTITION BY ticker ROWS 5 PRECEDING)",
    );
    let plan = ok(&code);
    let s = sliding_of(&plan);
    assert_eq!(
        s.windows,
        vec![WindowSpec {
            partition: vec![Expr::column(4, Ty::Text)],
            frame: Frame::Rows { preceding: 5 },
        }]
    );
    let price = Expr::column(3, Ty::Float);
    let zero = Expr::new(
        ExprKind::Cast(Box::new(Expr::literal(
            crate::expr::Literal::Int(0),
            Ty::Int,
        ))),
        Ty::Float,
    );
    assert_eq!(
        s.aggs,
        vec![(
            0,
            Agg {
                func: AggFunc::Lag {
                    offset: 1,
                    ignore_nulls: false,
                },
                arg: Some(price.clone()),
                ty: Ty::Float,
                default: Some(zero),
            }
        )]
    );
    assert_eq!(
        s.items[1].expr.kind,
        ExprKind::Arith(
            crate::expr::ArithOp::Sub,
            Box::new(price),
            Box::new(Expr::column(8, Ty::Float))
        )
    );
}

#[test]
fn lag_forms_ignore_nulls_and_exp_avg_plan_with_their_parameters() {
    let code = sliding_pump(
        "LAG(ticker, 2) IGNORE NULLS OVER w, EXP_AVG(price, INTERVAL '10' SECOND) OVER w",
        "WINDOW w AS (PARTITION BY ticker RANGE INTERVAL '30' SECOND PRECEDING)",
    );
    let plan = ok(&code);
    let s = sliding_of(&plan);
    assert_eq!(s.windows[0].frame, Frame::Range { ms: 30_000 });
    assert_eq!(
        s.aggs,
        vec![
            (
                0,
                Agg {
                    func: AggFunc::Lag {
                        offset: 2,
                        ignore_nulls: true,
                    },
                    arg: Some(Expr::column(4, Ty::Text)),
                    ty: Ty::Text,
                    default: None,
                }
            ),
            (
                0,
                Agg {
                    func: AggFunc::ExpAvg {
                        half_life_ms: 10_000,
                    },
                    arg: Some(Expr::column(3, Ty::Float)),
                    ty: Ty::Float,
                    default: None,
                }
            ),
        ]
    );
    // LAG is of its value's type, EXP_AVG a DOUBLE (of an integer too).
    assert_eq!(s.aggs[0].1.ty, Ty::Text);
    assert_eq!(s.aggs[1].1.ty, Ty::Float);
    let code = pump(
        r#"SELECT STREAM ticker, EXP_AVG(CHAR_LENGTH(ticker), INTERVAL '1' MINUTE) OVER (ROWS 3 PRECEDING) FROM "SOURCE_SQL_STREAM_001""#,
    );
    let plan = ok(&code);
    let s = sliding_of(&plan);
    let exp_avg = &s.aggs[0].1;
    assert_eq!(
        exp_avg.func,
        AggFunc::ExpAvg {
            half_life_ms: 60_000
        }
    );
    let value = exp_avg.arg.as_ref().expect("EXP_AVG's argument");
    assert_eq!(value.ty, Ty::Float);
    assert!(matches!(value.kind, ExprKind::Cast(_)));

    // RESPECT NULLS is the default; IGNORE NULLS may also be written
    // inside the parentheses; equal calls share one column.
    let code = sliding_pump(
        "LAG(ticker) RESPECT NULLS OVER w, CAST(LAG(price IGNORE NULLS) OVER w AS DOUBLE) + LAG(price, 1) IGNORE NULLS OVER w",
        "WINDOW w AS (ROWS 1 PRECEDING)",
    );
    let plan = ok(&code);
    let s = sliding_of(&plan);
    let funcs: Vec<_> = s.aggs.iter().map(|(_, a)| a.func).collect();
    assert_eq!(
        funcs,
        vec![
            AggFunc::Lag {
                offset: 1,
                ignore_nulls: false
            },
            AggFunc::Lag {
                offset: 1,
                ignore_nulls: true
            },
        ]
    );
    // A text default of a TIMESTAMP is read as one.
    let code = "CREATE STREAM \"T\" (t TIMESTAMP);\nCREATE PUMP \"P\" AS INSERT INTO \"T\" SELECT STREAM LAG(event_time, 1, '2026-01-01 00:00:00') OVER (ROWS 1 PRECEDING) FROM \"SOURCE_SQL_STREAM_001\";\n";
    let plan = ok(code);
    let default = sliding_of(&plan).aggs[0].1.default.clone();
    assert!(
        matches!(
            default,
            Some(Expr {
                kind: ExprKind::Literal(crate::expr::Literal::Time(_)),
                ty: Ty::Time
            })
        ),
        "{default:?}"
    );
}

#[test]
fn lag_and_exp_avg_outside_a_sliding_window_are_refused_where_written() {
    // Without OVER.
    let code = sliding_pump("ticker, LAG(price)", "");
    refused_at(
        &code,
        "LAG needs a sliding window: LAG(…) OVER w",
        "LAG(",
        0,
    );
    let code = sliding_pump(
        "ticker, AVG(price) OVER w + EXP_AVG(price, INTERVAL '1' SECOND)",
        "WINDOW w AS (ROWS 2 PRECEDING)",
    );
    refused_at(&code, "EXP_AVG needs a sliding window", "EXP_AVG(", 0);
    // In a GROUP BY (tumbling) query, with or without OVER.
    let code = sliding_pump(
        "ticker, LAG(price) OVER (ROWS 1 PRECEDING)",
        r#"GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)"#,
    );
    refused_at(
        &code,
        "LAG … OVER (a sliding window) in a GROUP BY query is not supported",
        "LAG(",
        0,
    );
    let code = sliding_pump(
        "ticker, EXP_AVG(price, INTERVAL '1' SECOND)",
        r#"GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)"#,
    );
    refused_at(&code, "EXP_AVG needs a sliding window", "EXP_AVG(", 0);
    // In WHERE, and as a GROUP BY key.
    let code = sliding_pump(
        "ticker, price",
        "WHERE LAG(price) OVER (ROWS 1 PRECEDING) > 1",
    );
    refused_at(
        &code,
        "LAG … OVER (a sliding window) here is not supported",
        "LAG(",
        0,
    );
    let code = sliding_pump(
        "ticker, 1.0",
        r#"GROUP BY LAG(price), STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)"#,
    );
    refused_at(&code, "GROUP BY of an aggregate", "LAG(", 0);
}

#[test]
fn lag_and_exp_avg_arguments_are_checked_where_written() {
    let w = "WINDOW w AS (PARTITION BY ticker RANGE INTERVAL '1' MINUTE PRECEDING)";
    let cases = [
        (
            "LAG(price, 0) OVER w",
            "LAG's offset is a whole number of rows, 1 or more",
            "0)",
        ),
        // sqlparser's spans: a negation starts at its operand, an INTERVAL at
        // its value.
        (
            "LAG(price, -1) OVER w",
            "LAG's offset is a whole number",
            "1) OVER",
        ),
        (
            "LAG(price, 1.5) OVER w",
            "LAG's offset is a whole number",
            "1.5",
        ),
        (
            "LAG(price, change) OVER w",
            "LAG's offset is a whole number",
            "change)",
        ),
        (
            "LAG(price, 1, 'x') OVER w",
            "LAG's default must be a DOUBLE value like its first argument, not a VARCHAR value",
            "'x'",
        ),
        (
            "LAG(price, 1, 2, 3) OVER w",
            "LAG is written LAG(x [, n [, default]])",
            "LAG(",
        ),
        ("LAG() OVER w", "LAG is written", "LAG("),
        (
            "LAG(AVG(price) OVER w) OVER w",
            "LAG of an aggregate",
            "AVG(",
        ),
        (
            "LAG(DISTINCT price) OVER w",
            "This form of LAG is not supported",
            "LAG(",
        ),
        (
            "LAG(volume) OVER w",
            "Column \"VOLUME\" not found",
            "volume",
        ),
        (
            "EXP_AVG(price) OVER w",
            "EXP_AVG is written EXP_AVG(x, INTERVAL 'n' SECOND|MINUTE|HOUR|DAY)",
            "EXP_AVG(",
        ),
        ("EXP_AVG(price, 10) OVER w", "EXP_AVG is written", "10)"),
        (
            "EXP_AVG(price, INTERVAL '0' SECOND) OVER w",
            "EXP_AVG's half-life must be more than zero",
            "'0'",
        ),
        (
            "EXP_AVG(price, INTERVAL '1' MONTH) OVER w",
            "This INTERVAL",
            "'1' MONTH",
        ),
        (
            "EXP_AVG(ticker, INTERVAL '1' SECOND) OVER w",
            "EXP_AVG needs a number, not a VARCHAR value",
            "EXP_AVG(",
        ),
        (
            "EXP_AVG(price, INTERVAL '1' SECOND) IGNORE NULLS OVER w",
            "IGNORE NULLS or RESPECT NULLS on EXP_AVG",
            "EXP_AVG(",
        ),
        (
            "AVG(EXP_AVG(price, INTERVAL '1' SECOND) OVER w) OVER w",
            "AVG of an aggregate",
            "EXP_AVG(",
        ),
        ("LAG(price) OVER v", "Window V is not defined", "LAG("),
        (
            "LAG(price) OVER (PARTITION BY ticker)",
            "A window needs a frame",
            "LAG(",
        ),
    ];
    for (item, words, needle) in cases {
        let code = sliding_pump(&format!("ticker, {item}"), w);
        refused_at(&code, words, needle, 0);
    }
    // A LAG of a text into a DOUBLE column is the pump's type error.
    let code = sliding_pump("ticker, LAG(ticker) OVER w", w);
    refused_at(
        &code,
        "Cannot insert a VARCHAR value into column \"B\"",
        "LAG(",
        0,
    );
}

/// AWS's stream-join example (stream-joins-concepts.md), on two streams
/// the code makes.
const ORDERS_AND_TRADES: &str = r#"CREATE STREAM "OrderStream" ("orderId" INTEGER, ticker VARCHAR(4), amount DOUBLE);
CREATE STREAM "TradeStream" ("tradeId" INTEGER, "orderId" INTEGER, ticker VARCHAR(4), amount DOUBLE);
CREATE STREAM "OUT" ("orderId" INTEGER, ticker VARCHAR(4), "orderAmount" DOUBLE, "tradeAmount" DOUBLE);
CREATE PUMP "O" AS INSERT INTO "OrderStream" SELECT STREAM 1, ticker, price FROM "SOURCE_SQL_STREAM_001";
CREATE PUMP "T" AS INSERT INTO "TradeStream" SELECT STREAM 2, 1, ticker, price FROM "SOURCE_SQL_STREAM_001";
"#;

fn join_of(plan: &AppPlan, name: &str) -> crate::plan::StreamJoin {
    let p = plan
        .pumps
        .iter()
        .find(|p| p.name == name)
        .expect("the pump");
    assert!(p.join.is_none(), "a stream join is not a reference join");
    match &p.kind {
        PumpKind::StreamJoin(j) => j.clone(),
        other => panic!("not a stream join: {other:?}"),
    }
}

#[test]
fn a_stream_to_stream_join_plans_with_its_windows_inline_or_named() {
    let inline = format!(
        r#"{ORDERS_AND_TRADES}CREATE PUMP "J" AS INSERT INTO "OUT"
SELECT STREAM o."orderId", o.ticker, o.amount AS "orderAmount", t.amount AS "tradeAmount"
FROM "OrderStream" AS o
JOIN "TradeStream" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t
ON o."orderId" = t."orderId";"#
    );
    let plan = ok(&inline);
    let j = join_of(&plan, "J");
    let trades = plan
        .streams
        .iter()
        .position(|s| s.name == "TradeStream")
        .unwrap();
    assert_eq!(
        (j.right, j.left_window_ms, j.right_window_ms),
        (trades, 0, 60_000)
    );
    assert!(!j.left_outer);
    assert_eq!(j.keys.len(), 1);
    assert_eq!(j.keys[0].1, 1, "the other stream's \"orderId\"");
    // The join comes after both pumps writing its streams.
    let at = |n: &str| plan.pumps.iter().position(|p| p.name == n).unwrap();
    assert!(at("J") > at("O") && at("J") > at("T"));
    let named = format!(
        r#"{ORDERS_AND_TRADES}CREATE PUMP "J" AS INSERT INTO "OUT"
SELECT STREAM o."orderId", o.ticker, o.amount, t.amount
FROM "OrderStream" OVER (RANGE INTERVAL '5' SECOND PRECEDING) AS o
LEFT OUTER JOIN "TradeStream" OVER t
ON o."orderId" = t."orderId"
WINDOW t AS (RANGE INTERVAL '2' MINUTE PRECEDING);"#
    );
    let j = join_of(&ok(&named), "J");
    assert_eq!((j.left_window_ms, j.right_window_ms), (5_000, 120_000));
    assert!(j.left_outer);
    // One named window on both sides: the joined stream takes its name.
    let shared = format!(
        r#"{ORDERS_AND_TRADES}CREATE PUMP "J" AS INSERT INTO "OUT"
SELECT STREAM "OrderStream"."orderId", "OrderStream".ticker, "OrderStream".amount, w.amount
FROM "OrderStream" OVER w JOIN "TradeStream" OVER w
ON "OrderStream"."orderId" = w."orderId"
WINDOW w AS (RANGE INTERVAL '10' SECOND PRECEDING);"#
    );
    let j = join_of(&ok(&shared), "J");
    assert_eq!((j.left_window_ms, j.right_window_ms), (10_000, 10_000));
    // No window: CURRENT ROW on both sides.
    let plain = format!(
        r#"{ORDERS_AND_TRADES}CREATE PUMP "J" AS INSERT INTO "OUT"
SELECT STREAM o."orderId", o.ticker, o.amount, t.amount
FROM "OrderStream" AS o JOIN "TradeStream" AS t ON o."orderId" = t."orderId";"#
    );
    let j = join_of(&ok(&plain), "J");
    assert_eq!((j.left_window_ms, j.right_window_ms), (0, 0));
}

#[test]
fn stream_join_windows_not_served_are_refused_where_written() {
    let join = |window: &str, tail: &str| {
        format!(
            r#"{ORDERS_AND_TRADES}CREATE PUMP "J" AS INSERT INTO "OUT"
SELECT STREAM o."orderId", o.ticker, o.amount, t.amount
FROM "OrderStream" AS o JOIN "TradeStream" OVER {window} AS t ON o."orderId" = t."orderId"{tail};"#
        )
    };
    let rows = join("(ROWS 3 PRECEDING)", "");
    let e = refused(&rows);
    assert!(
        e.message.contains("A ROWS window of a joined stream"),
        "{e}"
    );
    assert_eq!(e.at, Some(pos_of(&rows, "(ROWS", 0)));
    let e = refused(&join("w", ""));
    assert!(e.message.contains("Window \"W\" is not defined"), "{e}");
    let grouped = join(
        "(RANGE INTERVAL '1' MINUTE PRECEDING)",
        r#" GROUP BY o."orderId", o.ticker, o.amount, t.amount, STEP(o.ROWTIME BY INTERVAL '1' MINUTE)"#,
    );
    let e = refused(&grouped);
    assert!(e.message.contains("GROUP BY"), "{e}");
}
