//! AWS's eight examples (aws-services.md §2.8, verbatim) with their
//! streams, pumps and the rewritten forms as the planner sees them; names;
//! OR REPLACE; empty code.

use sqlparser::ast::{self, Expr};

use super::*;

pub(crate) const E1: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"
           (ticker_symbol VARCHAR(4),
            sector        VARCHAR(12),
            change        DOUBLE,
            price         DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM ticker_symbol, sector, change, price
      FROM   "SOURCE_SQL_STREAM_001"
      WHERE  (ABS(Change / (Price - Change)) * 100) > 1;
"#;

pub(crate) const E2: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (TICKER VARCHAR(4), MIN_PRICE REAL, MAX_PRICE REAL);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM TICKER, MIN(PRICE), MAX(PRICE)
        FROM "SOURCE_SQL_STREAM_001"
        GROUP BY TICKER,
            STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);
"#;

pub(crate) const E3: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (EVENT_TIME timestamp, TICKER VARCHAR(4), min_price REAL, max_price REAL);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
  INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM STEP("SOURCE_SQL_STREAM_001".EVENT_TIME BY INTERVAL '60' SECOND),
        TICKER,
         MIN(PRICE) AS MIN_PRICE,
         MAX(PRICE) AS MAX_PRICE
    FROM    "SOURCE_SQL_STREAM_001"
    GROUP BY TICKER,
             STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
             STEP("SOURCE_SQL_STREAM_001".EVENT_TIME BY INTERVAL '60' SECOND);
"#;

pub(crate) const E4: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
                         ticker_symbol VARCHAR(10),
                         Min_Price     double,
                         Max_Price     double,
                         Avg_Price     double);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
     SELECT STREAM ticker_symbol,
                   MIN(Price) OVER W1 AS Min_Price,
                   MAX(Price) OVER W1 AS Max_Price,
                   AVG(Price) OVER W1 AS Avg_Price
     FROM   "SOURCE_SQL_STREAM_001"
     WINDOW W1 AS (
        PARTITION BY ticker_symbol
        RANGE INTERVAL '1' MINUTE PRECEDING);
"#;

pub(crate) const E5: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    ticker_symbol    VARCHAR(4),
    event_time       TIMESTAMP,
    ticker_count     DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
  INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM
        TICKER_SYMBOL,
        FLOOR(EVENT_TIME TO MINUTE),
        COUNT(TICKER_SYMBOL) AS ticker_count
    FROM "SOURCE_SQL_STREAM_001"
    WINDOWED BY STAGGER (
            PARTITION BY FLOOR(EVENT_TIME TO MINUTE), TICKER_SYMBOL RANGE INTERVAL '1' MINUTE);
"#;

pub(crate) const E6: &str = r#"CREATE OR REPLACE STREAM DESTINATION_SQL_STREAM (
  "TICKER" VARCHAR(4),
  "MOST_FREQUENT_VALUES" BIGINT
);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
    INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM *
        FROM TABLE (TOP_K_ITEMS_TUMBLING(
            CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"),
            'TICKER',         -- name of column in single quotes
            5,                       -- number of the most frequently occurring values
            60                       -- tumbling window size in seconds
            )
        );
"#;

pub(crate) const E7: &str = "--Creates a temporary stream.
CREATE OR REPLACE STREAM \"TEMP_STREAM\" (
\t        \"heartRate\"        INTEGER,
\t        \"rateType\"         varchar(20),
\t        \"ANOMALY_SCORE\"    DOUBLE);

--Creates another stream for application output.
CREATE OR REPLACE STREAM \"DESTINATION_SQL_STREAM\" (
\t        \"heartRate\"        INTEGER,
\t        \"rateType\"         varchar(20),
\t        \"ANOMALY_SCORE\"    DOUBLE);

-- Compute an anomaly score for each record in the input stream
-- using Random Cut Forest
CREATE OR REPLACE PUMP \"STREAM_PUMP\" AS
   INSERT INTO \"TEMP_STREAM\"
      SELECT STREAM \"heartRate\", \"rateType\", ANOMALY_SCORE
      FROM TABLE(RANDOM_CUT_FOREST(
              CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\")));

-- Sort records by descending anomaly score, insert into output stream
CREATE OR REPLACE PUMP \"OUTPUT_PUMP\" AS
   INSERT INTO \"DESTINATION_SQL_STREAM\"
      SELECT STREAM * FROM \"TEMP_STREAM\"
      ORDER BY FLOOR(\"TEMP_STREAM\".ROWTIME TO SECOND), ANOMALY_SCORE DESC;
";

pub(crate) const E8: &str = r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), "Company" varchar(20), sector VARCHAR(12), change DOUBLE, price DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
   SELECT STREAM ticker_symbol, "c"."Company", sector, change, price
   FROM "SOURCE_SQL_STREAM_001" LEFT JOIN "CompanyName" as "c"
   ON "SOURCE_SQL_STREAM_001".ticker_symbol = "c"."Ticker";
"#;

#[test]
fn e1_filter() {
    let script = ok(E1);
    assert_eq!(script.streams.len(), 1);
    let stream = &script.streams[0];
    assert_eq!(stream.name, name("DESTINATION_SQL_STREAM", true));
    assert!(stream.or_replace);
    assert_eq!(stream.at, pos_of(E1, "\"DESTINATION_SQL_STREAM\"", 0));
    assert_eq!(
        columns(stream),
        [
            ("TICKER_SYMBOL", VARCHAR4),
            ("SECTOR", SqlType::Varchar { len: 12 }),
            ("CHANGE", SqlType::Double),
            ("PRICE", SqlType::Double),
        ]
    );
    assert!(stream.columns.iter().all(|c| !c.name.quoted && !c.not_null));
    assert_eq!(stream.columns[2].at, pos_of(E1, "change", 0));
    let pump = &script.pumps[0];
    assert_eq!(pump.name, name("STREAM_PUMP", true));
    assert_eq!(pump.target, name("DESTINATION_SQL_STREAM", true));
    assert_eq!(pump.target_at, pos_of(E1, "\"DESTINATION_SQL_STREAM\"", 1));
    assert_eq!(pump.columns, None);
    let select = select_of(&pump.query);
    assert!(pump.is_stream_select(select));
    assert_eq!(select.projection.len(), 4, "STREAM is not read as a column");
    assert!(select.selection.is_some());
}

#[test]
fn e2_step_arrives_as_a_two_argument_function() {
    let script = ok(E2);
    assert_eq!(
        columns(&script.streams[0]),
        [
            ("TICKER", VARCHAR4),
            ("MIN_PRICE", SqlType::Real),
            ("MAX_PRICE", SqlType::Real)
        ]
    );
    let pump = &script.pumps[0];
    let keys = group_by(select_of(&pump.query));
    assert_eq!(keys.len(), 2);
    let (step, args) = function(&keys[1]);
    assert_eq!(step.name.to_string(), "STEP");
    assert_eq!(args.len(), 2);
    assert_eq!(args[0].to_string(), "\"SOURCE_SQL_STREAM_001\".ROWTIME");
    assert!(matches!(args[1], Expr::Interval(_)), "{}", args[1]);
    assert!(!pump.is_stagger(step));
}

#[test]
fn e3_two_time_group_by() {
    let script = ok(E3);
    assert_eq!(
        columns(&script.streams[0]),
        [
            ("EVENT_TIME", SqlType::Timestamp),
            ("TICKER", VARCHAR4),
            ("MIN_PRICE", SqlType::Real),
            ("MAX_PRICE", SqlType::Real)
        ]
    );
    let select = select_of(&script.pumps[0].query);
    assert_eq!(select.projection.len(), 4);
    let keys = group_by(select);
    assert_eq!(keys.len(), 3);
    for key in &keys[1..] {
        assert_eq!(function(key).1.len(), 2);
    }
    assert_eq!(
        function(&keys[2]).1[0].to_string(),
        "\"SOURCE_SQL_STREAM_001\".EVENT_TIME"
    );
}

#[test]
fn e4_sliding_window() {
    let script = ok(E4);
    assert_eq!(
        columns(&script.streams[0]),
        [
            ("TICKER_SYMBOL", SqlType::Varchar { len: 10 }),
            ("MIN_PRICE", SqlType::Double),
            ("MAX_PRICE", SqlType::Double),
            ("AVG_PRICE", SqlType::Double)
        ]
    );
    let select = select_of(&script.pumps[0].query);
    assert_eq!(select.projection.len(), 4);
    assert_eq!(select.named_window.len(), 1);
    assert_eq!(select.named_window[0].0.value, "W1");
}

#[test]
fn e5_stagger_arrives_as_a_group_by_stagger() {
    let script = ok(E5);
    assert_eq!(
        columns(&script.streams[0]),
        [
            ("TICKER_SYMBOL", VARCHAR4),
            ("EVENT_TIME", SqlType::Timestamp),
            ("TICKER_COUNT", SqlType::Double)
        ]
    );
    let pump = &script.pumps[0];
    let keys = group_by(select_of(&pump.query));
    assert_eq!(keys.len(), 1);
    let (stagger, args) = function(&keys[0]);
    assert!(pump.is_stagger(stagger));
    assert_eq!(pump.marks.staggers, [pos_of(E5, "STAGGER", 0)]);
    assert_eq!(args.len(), 3);
    assert!(matches!(args[0], Expr::Floor { .. }), "{}", args[0]);
    assert_eq!(args[1].to_string(), "TICKER_SYMBOL");
    assert!(matches!(args[2], Expr::Interval(_)), "{}", args[2]);
}

#[test]
fn stagger_without_partition_has_the_interval_only() {
    let code = "CREATE STREAM s (a INT);
CREATE PUMP p AS INSERT INTO s SELECT STREAM COUNT(*) FROM source_sql_stream_001
WINDOWED BY STAGGER (RANGE INTERVAL '1' MINUTE);";
    let script = ok(code);
    let pump = &script.pumps[0];
    let keys = group_by(select_of(&pump.query));
    let (stagger, args) = function(&keys[0]);
    assert!(pump.is_stagger(stagger));
    assert_eq!(args.len(), 1);
}

#[test]
fn e6_top_k_with_a_cursor_over_a_subquery() {
    let script = ok(E6);
    let stream = &script.streams[0];
    assert_eq!(stream.name, name("DESTINATION_SQL_STREAM", false));
    assert_eq!(
        columns(stream),
        [
            ("TICKER", VARCHAR4),
            ("MOST_FREQUENT_VALUES", SqlType::BigInt)
        ]
    );
    assert!(stream.columns.iter().all(|c| c.name.quoted));
    let pump = &script.pumps[0];
    assert_eq!(pump.target, name("DESTINATION_SQL_STREAM", true));
    let select = select_of(&pump.query);
    let ast::TableFactor::TableFunction { expr, .. } = &select.from[0].relation else {
        panic!("not TABLE(fn): {}", select.from[0]);
    };
    let (top_k, args) = function(expr);
    assert_eq!(top_k.name.to_string(), "TOP_K_ITEMS_TUMBLING");
    assert_eq!(args.len(), 4);
    let (cursor, cursor_args) = function(args[0]);
    assert_eq!(cursor.name.to_string(), "CURSOR");
    let [Expr::Subquery(inner)] = cursor_args.as_slice() else {
        panic!("CURSOR's argument is not a subquery: {}", args[0]);
    };
    assert!(
        pump.is_stream_select(select_of(inner)),
        "inner SELECT STREAM recorded"
    );
    assert_eq!(pump.marks.stream_selects.len(), 2);
}

#[test]
fn e7_random_cut_forest_is_refused_at_the_function() {
    let e = refused(E7);
    let at = pos_of(E7, "RANDOM_CUT_FOREST(", 0);
    assert_eq!(e.at, Some(at));
    assert_eq!(
        e.to_string(),
        format!(
            "Function RANDOM_CUT_FOREST is not supported at line {}, column {}",
            at.line, at.column
        )
    );
}

#[test]
fn e7_with_a_passthrough_instead_of_the_forest_parses() {
    let code = E7.replace(
        "SELECT STREAM \"heartRate\", \"rateType\", ANOMALY_SCORE
      FROM TABLE(RANDOM_CUT_FOREST(
              CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\")));",
        "SELECT STREAM \"heartRate\", \"rateType\", 0.0 FROM \"SOURCE_SQL_STREAM_001\";",
    );
    let script = ok(&code);
    let names: Vec<&str> = script
        .streams
        .iter()
        .map(|s| s.name.text.as_str())
        .collect();
    assert_eq!(names, ["TEMP_STREAM", "DESTINATION_SQL_STREAM"]);
    assert_eq!(
        columns(&script.streams[1]),
        [
            ("heartRate", SqlType::Integer),
            ("rateType", SqlType::Varchar { len: 20 }),
            ("ANOMALY_SCORE", SqlType::Double)
        ]
    );
    let pumps: Vec<(&str, &str)> = script
        .pumps
        .iter()
        .map(|p| (p.name.text.as_str(), p.target.text.as_str()))
        .collect();
    assert_eq!(
        pumps,
        [
            ("STREAM_PUMP", "TEMP_STREAM"),
            ("OUTPUT_PUMP", "DESTINATION_SQL_STREAM")
        ]
    );
    let order_by = script.pumps[1]
        .query
        .order_by
        .as_ref()
        .map(|o| o.to_string());
    assert_eq!(
        order_by.as_deref(),
        Some("ORDER BY FLOOR(\"TEMP_STREAM\".ROWTIME TO SECOND), ANOMALY_SCORE DESC")
    );
}

#[test]
fn e8_reference_join() {
    let script = ok(E8);
    let stream = &script.streams[0];
    assert_eq!(
        columns(stream),
        [
            ("TICKER_SYMBOL", VARCHAR4),
            ("Company", SqlType::Varchar { len: 20 }),
            ("SECTOR", SqlType::Varchar { len: 12 }),
            ("CHANGE", SqlType::Double),
            ("PRICE", SqlType::Double)
        ]
    );
    assert!(stream.columns[1].name.quoted);
    let select = select_of(&script.pumps[0].query);
    assert_eq!(select.from[0].joins.len(), 1);
    assert!(matches!(
        select.from[0].joins[0].join_operator,
        ast::JoinOperator::Left(_)
    ));
}

#[test]
fn every_example_statement_keeps_original_positions() {
    // The AST's spans point into the user's text (no offset from rewrites).
    let script = ok(E3);
    let select = select_of(&script.pumps[0].query);
    let at = Pos::of(select.select_token.0.span.start);
    assert_eq!(at, pos_of(E3, "SELECT STREAM", 0));
    assert_eq!(script.pumps[0].marks.stream_selects, [at]);
}

#[test]
fn names_unquoted_are_upper_cased_quoted_kept() {
    let code = r#"CREATE STREAM "mySink" ("Col" INT, col INT NOT NULL, "COL2" INT NULL);
CREATE PUMP pump_1 AS INSERT INTO "mySink" ("Col", col, "COL2")
  SELECT STREAM a, b, c FROM "mySource_001";
CREATE PUMP "pump_1" AS INSERT INTO "mySink" SELECT STREAM * FROM source_sql_stream_001;"#;
    let script = parse_with(
        code,
        &Context {
            inputs: &["mySource_001", "SOURCE_SQL_STREAM_001"],
            reference_tables: &[],
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stream = &script.streams[0];
    assert_eq!(stream.name, name("mySink", true));
    let cols: Vec<(&Name, bool)> = stream
        .columns
        .iter()
        .map(|c| (&c.name, c.not_null))
        .collect();
    assert_eq!(
        cols,
        [
            (&name("Col", true), false),
            (&name("COL", false), true),
            (&name("COL2", true), false)
        ]
    );
    let pumps: Vec<&Name> = script.pumps.iter().map(|p| &p.name).collect();
    assert_eq!(pumps, [&name("PUMP_1", false), &name("pump_1", true)]);
    assert_eq!(
        script.pumps[0].columns,
        Some(vec![
            name("Col", true),
            name("COL", false),
            name("COL2", true)
        ])
    );
    // `"mySource_001"` is read as written; the planner resolves it.
    let ast::TableFactor::Table { name: from, .. } =
        &select_of(&script.pumps[0].query).from[0].relation
    else {
        panic!("not a table");
    };
    let ast::ObjectNamePart::Identifier(ident) = &from.0[0] else {
        panic!("not an identifier");
    };
    assert_eq!(Name::of_ident(ident), name("mySource_001", true));
    let ast::TableFactor::Table { name: from, .. } =
        &select_of(&script.pumps[1].query).from[0].relation
    else {
        panic!("not a table");
    };
    let ast::ObjectNamePart::Identifier(ident) = &from.0[0] else {
        panic!("not an identifier");
    };
    assert_eq!(Name::of_ident(ident), name("SOURCE_SQL_STREAM_001", false));
    assert_eq!(name("my\"x", true).to_string(), "\"my\"\"x\"");
}

#[test]
fn empty_code_comments_and_semicolons() {
    for code in [
        "",
        "   \n",
        "-- nothing\n/* at all */",
        ";;",
        "\n;\n-- x\n;",
    ] {
        assert_eq!(ok(code), Script::default(), "{code:?}");
    }
    // The last `;` is optional.
    let script = ok("CREATE STREAM s (a INT); CREATE STREAM t (b INT)");
    assert_eq!(script.streams.len(), 2);
}

#[test]
fn or_replace_replaces_in_place() {
    let code = "CREATE STREAM a (x INT);
CREATE STREAM b (x INT);
CREATE PUMP p AS INSERT INTO a SELECT STREAM x FROM source_sql_stream_001;
CREATE OR REPLACE STREAM a (y BIGINT NOT NULL);
CREATE OR REPLACE PUMP p AS INSERT INTO b SELECT STREAM x FROM source_sql_stream_001;";
    let script = ok(code);
    let names: Vec<&str> = script
        .streams
        .iter()
        .map(|s| s.name.text.as_str())
        .collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(columns(&script.streams[0]), [("Y", SqlType::BigInt)]);
    assert!(script.streams[0].columns[0].not_null);
    assert_eq!(script.pumps.len(), 1);
    assert_eq!(script.pumps[0].target.text, "B");
    // A replaced pump's edges are gone: A → P → B, then B → Q → A is no cycle
    // once P writes elsewhere.
    let code = "CREATE STREAM a (x INT);
CREATE STREAM b (x INT);
CREATE STREAM c (x INT);
CREATE PUMP p AS INSERT INTO b SELECT STREAM x FROM a;
CREATE OR REPLACE PUMP p AS INSERT INTO c SELECT STREAM x FROM a;
CREATE PUMP q AS INSERT INTO a SELECT STREAM x FROM b;";
    assert_eq!(ok(code).pumps.len(), 2);
}

#[test]
fn pumps_may_chain_and_share_streams() {
    let code = "CREATE STREAM a (x INT);
CREATE STREAM b (x INT);
CREATE PUMP p1 AS INSERT INTO a SELECT STREAM x FROM source_sql_stream_001;
CREATE PUMP p2 AS INSERT INTO b SELECT STREAM x FROM a;
CREATE PUMP p3 AS INSERT INTO b SELECT STREAM x FROM a
  WHERE x IN (SELECT STREAM x FROM source_sql_stream_001);
CREATE PUMP p4 AS INSERT INTO b
  WITH b AS (SELECT STREAM x FROM a) SELECT STREAM x FROM b;";
    let script = ok(code);
    assert_eq!(script.pumps.len(), 4);
}
