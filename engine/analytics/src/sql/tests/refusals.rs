//! Each refusal with its message and its position, computed from the
//! text; sqlparser's errors placed in the original code.

use super::*;

#[test]
fn a_syntax_error_is_placed_in_the_original_text() {
    // A typo on line 5: FORM for FROM, after a rewritten STEP(… BY …) and a
    // removed STREAM, which must not shift positions.
    let code = "CREATE OR REPLACE STREAM \"D\" (a VARCHAR(4), b REAL);
CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"D\"
    SELECT STREAM ticker,
        STEP(s.ROWTIME BY INTERVAL '60' SECOND)
        FORM \"SOURCE_SQL_STREAM_001\" s;";
    let e = refused(code);
    let at = pos_of(code, "\"SOURCE_SQL_STREAM_001\"", 0);
    assert_eq!(at.line, 5);
    assert_eq!(e.at, Some(at));
    assert!(
        !e.message.contains("Line:"),
        "sqlparser's suffix kept: {}",
        e.message
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Expected: end of statement, found: \"SOURCE_SQL_STREAM_001\" at line 5, column {}",
            at.column
        )
    );
    // A missing `)` at the end of the code points at the end, not at 0:0.
    let e = refused("CREATE STREAM s (a INT,\n b INT");
    assert_eq!(e.at.map(|p| p.line), Some(2));
    // A tokenizer error (an unterminated string) has its position too.
    let code =
        "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM 'abc FROM x;";
    let e = refused(code);
    assert_eq!(e.at, Some(pos_of(code, "'abc", 0)));
}

/// One refusal case: the code, the text at which the error must point
/// (its `nth` occurrence), and the start of the message.
struct Refusal {
    code: &'static str,
    at: (&'static str, usize),
    message: &'static str,
}

#[test]
fn refusals_name_the_construct_at_its_position() {
    let cases = [
        Refusal {
            code: "CREATE TABLE t (a INT);",
            at: ("CREATE", 0),
            message: "CREATE TABLE is not supported",
        },
        Refusal {
            code: "CREATE OR REPLACE VIEW v AS SELECT 1;",
            at: ("CREATE", 0),
            message: "CREATE OR REPLACE VIEW is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\n  SELECT STREAM * FROM source_sql_stream_001;",
            at: ("SELECT", 0),
            message: "SELECT outside a pump is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nINSERT INTO s SELECT STREAM a FROM source_sql_stream_001;",
            at: ("INSERT", 0),
            message: "INSERT outside a pump is not supported",
        },
        Refusal {
            code: "DROP STREAM s;",
            at: ("DROP", 0),
            message: "DROP is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s\n  SELECT a FROM source_sql_stream_001;",
            at: ("SELECT", 0),
            message: "SELECT without STREAM in a pump",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s\n  SELECT STREAM a FROM source_sql_stream_001 UNION ALL SELECT b FROM source_sql_stream_001;",
            at: ("SELECT", 1),
            message: "SELECT without STREAM in a pump",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s VALUES (1);",
            at: ("VALUES", 0),
            message: "A pump query that is not SELECT STREAM is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM * FROM TABLE(HOTSPOTS(\n  CURSOR(SELECT STREAM * FROM source_sql_stream_001), 1000, 0.2, 17));",
            at: ("HOTSPOTS", 0),
            message: "Function HOTSPOTS is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM ANOMALY_SCORE FROM TABLE(\n  random_cut_forest_with_explanation(CURSOR(SELECT STREAM * FROM source_sql_stream_001), 100, 256, 100000, 1, true));",
            at: ("random_cut_forest_with_explanation", 0),
            message: "Function RANDOM_CUT_FOREST_WITH_EXPLANATION is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM T.REC.COLUMN1 FROM\n  (SELECT STREAM LOGENTRY, REGEX_LOG_PARSE(LOGENTRY, '(\\w.+) (\\d.+)') AS REC FROM SOURCE_SQL_STREAM_001) AS T;",
            at: ("REGEX_LOG_PARSE", 0),
            message: "Function REGEX_LOG_PARSE is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM\n  NTH_VALUE(a, 2) OVER w FROM source_sql_stream_001 WINDOW w AS (ROWS 3 PRECEDING);",
            at: ("NTH_VALUE", 0),
            message: "Function NTH_VALUE is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM MONOTONIC(a) FROM source_sql_stream_001;",
            at: ("MONOTONIC", 0),
            message: "Function MONOTONIC is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT, b INT);\nCREATE PUMP p AS INSERT INTO s (a, rowtime)\n  SELECT STREAM a, ROWTIME FROM source_sql_stream_001;",
            at: ("rowtime", 0),
            message: "Writing ROWTIME is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE STREAM s (b INT);",
            at: ("s (b", 0),
            message: "Stream S already exists (created at line 1, column 15; CREATE OR REPLACE replaces it)",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM a FROM source_sql_stream_001;\nCREATE PUMP p AS INSERT INTO s SELECT STREAM a FROM source_sql_stream_001;",
            at: ("p AS", 1),
            message: "Pump P already exists (created at line 2, column 13;",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE OR REPLACE PUMP s AS INSERT INTO s SELECT STREAM a FROM source_sql_stream_001;",
            at: ("s AS", 0),
            message: "S is already a stream (created at line 1, column 15)",
        },
        Refusal {
            code: "CREATE STREAM \"SOURCE_SQL_STREAM_001\" (a INT);",
            at: ("\"SOURCE", 0),
            message: "Stream \"SOURCE_SQL_STREAM_001\" cannot be created: it is an input stream",
        },
        Refusal {
            code: "CREATE OR REPLACE STREAM \"error_stream\" (a INT);",
            at: ("\"error", 0),
            message: "Stream \"error_stream\" cannot be created: error_stream is",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO source_sql_stream_001 SELECT STREAM a FROM s;",
            at: ("source_sql_stream_001", 0),
            message: "Pump P cannot write SOURCE_SQL_STREAM_001: it is an input stream",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO \"error_stream\" SELECT STREAM a FROM s;",
            at: ("\"error_stream\"", 0),
            message: "Pump P cannot write \"error_stream\": only the application writes error_stream",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO \"CompanyName\" SELECT STREAM a FROM s;",
            at: ("\"CompanyName\"", 0),
            message: "Pump P cannot write \"CompanyName\": it is a reference table",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO t SELECT STREAM a FROM s;\nCREATE STREAM t (a INT);",
            at: ("t SELECT", 0),
            message: "Pump P cannot write T: no stream of that name is created before this pump",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM a FROM source_sql_stream_001;\nCREATE PUMP q AS INSERT INTO p SELECT STREAM a FROM s;",
            at: ("p SELECT", 0),
            message: "Pump Q cannot write P: it is a pump, not a stream",
        },
        Refusal {
            code: "CREATE STREAM a (x INT);\nCREATE STREAM b (x INT);\nCREATE PUMP p1 AS INSERT INTO b SELECT STREAM x FROM a;\nCREATE PUMP p2 AS INSERT INTO a\n  SELECT STREAM x FROM b;",
            at: ("p2", 0),
            message: "A pump cycle (A → P1 → B → P2 → A) is not supported",
        },
        Refusal {
            code: "CREATE STREAM a (x INT);\nCREATE PUMP p AS INSERT INTO a SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(\n  CURSOR(SELECT STREAM * FROM a), 'x', 5, 60));",
            at: ("p AS", 0),
            message: "A pump cycle (A → P → A) is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT, a INT);",
            at: ("a", 1),
            message: "Column A is declared twice in stream S",
        },
        Refusal {
            code: "CREATE STREAM s (a VARCHAR(MAX));",
            at: ("VARCHAR", 0),
            message: "VARCHAR(MAX) is not a KDA type",
        },
        Refusal {
            code: "CREATE STREAM x.s (a INT);",
            at: ("x", 0),
            message: "A qualified name is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM U&'d!0061t!+000061' UESCAPE '!' FROM source_sql_stream_001;",
            at: ("UESCAPE", 0),
            message: "UESCAPE is not supported",
        },
        Refusal {
            code: "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s\n  SELECT STREAM a FROM source_sql_stream_001 WINDOWED BY STAGGER (PARTITION BY a RANGE INTERVAL '1' MINUTE) GROUP BY a;",
            at: ("GROUP", 0),
            message: "Expected: end of statement, found: GROUP",
        },
    ];
    for case in cases {
        let e = refused(case.code);
        let at = pos_of(case.code, case.at.0, case.at.1);
        assert_eq!(e.at, Some(at), "{}\n{}", e, case.code);
        assert!(
            e.message.starts_with(case.message),
            "{:?} does not start with {:?}",
            e.message,
            case.message
        );
        let shown = e.to_string();
        let position = format!(" at line {}, column {}", at.line, at.column);
        assert!(shown.contains(&position), "{shown}");
        if e.message.ends_with("is not supported")
            && !e.message.starts_with("Function ")
            && !e.message.starts_with("A pump cycle")
        {
            // `<construct> is not supported at line L, column C: <excerpt>`.
            let excerpt = e.excerpt.as_deref().unwrap_or_default();
            assert!(!excerpt.is_empty(), "{shown}");
            assert!(case.code.contains(excerpt.trim_end_matches('…')), "{shown}");
            assert!(
                shown.ends_with(&format!("{position}: {excerpt}")),
                "{shown}"
            );
        }
    }
}

#[test]
fn code_longer_than_the_limit_is_refused() {
    let filler = format!("-- {}\n", "x".repeat(CODE_CHARS_MAX));
    let e = refused(&filler);
    assert_eq!(e.at, None);
    assert!(e.message.contains("102400"), "{e}");
    // At the limit exactly, in characters (not bytes).
    let at_limit = format!("--{}", "é".repeat(CODE_CHARS_MAX - 2));
    assert_eq!(ok(&at_limit), Script::default());
}

/// The review's hostile shape: streams S1..S200, then pumps from the last
/// down, pump k writing Sk and reading every stream below it (about 20,000
/// flows). Found acyclic in one pass (it took 10 s with a search per pump);
/// closing a cycle with one more pump names that pump and its cycle.
#[test]
fn many_layered_pumps_are_checked_in_one_pass() {
    let n = 200;
    let mut code = String::new();
    for k in 1..=n {
        code.push_str(&format!("CREATE STREAM s{k} (x INT);\n"));
    }
    for k in (2..=n).rev() {
        let from: Vec<String> = (1..k).map(|j| format!("s{j}")).collect();
        code.push_str(&format!(
            "CREATE PUMP p{k} AS INSERT INTO s{k} SELECT STREAM s1.x FROM {};\n",
            from.join(",")
        ));
    }
    assert_eq!(ok(&code).pumps.len(), n - 1);
    code.push_str("CREATE PUMP back AS INSERT INTO s1 SELECT STREAM x FROM s2;\n");
    let e = refused(&code);
    assert_eq!(
        e.message,
        "A pump cycle (S1 → P2 → S2 → BACK → S1) is not supported"
    );
    assert_eq!(e.at.map(|p| p.line), Some(2 * n as u64));
}
