//! Never a panic, never a stack overflow: truncated examples, seeded token
//! soup, deep nesting, on a 2 MiB thread.

use super::examples::{E1, E2, E3, E4, E5, E6, E7, E8};
use super::*;

use riffle_store::testkit::Rng;

/// Runs `f` on a thread with a 2 MiB stack (a common server thread size),
/// so a stack overflow fails the test instead of depending on the runner.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .map(|h| h.join())
        .unwrap_or_else(|e| panic!("spawn: {e}"))
        .unwrap_or_else(|_| panic!("the parse panicked"));
}

#[test]
fn truncated_examples_never_panic() {
    on_small_stack(|| {
        for code in [E1, E2, E3, E4, E5, E6, E7, E8] {
            let cut_points: Vec<usize> = code.char_indices().map(|(i, _)| i).collect();
            for cut in cut_points {
                let _ = parse_with(&code[..cut], &context());
            }
        }
    });
}

#[test]
fn token_soup_never_panics() {
    on_small_stack(|| {
        let words = [
            "CREATE",
            "OR",
            "REPLACE",
            "STREAM",
            "PUMP",
            "AS",
            "INSERT",
            "INTO",
            "SELECT",
            "STREAM",
            "FROM",
            "WHERE",
            "GROUP",
            "BY",
            "STEP",
            "(",
            ")",
            "(",
            ")",
            ",",
            ";",
            "WINDOWED",
            "STAGGER",
            "PARTITION",
            "RANGE",
            "CURSOR",
            "TABLE",
            "JOIN",
            "OVER",
            "INTERVAL",
            "'60'",
            "SECOND",
            "ROWTIME",
            "\"s\"",
            "s",
            "a",
            "1",
            "2.5",
            "*",
            "+",
            "-",
            "/",
            ".",
            "INT",
            "VARCHAR",
            "NOT",
            "NULL",
            "WINDOW",
            "W",
            "ORDER",
            "DESC",
            "UNION",
            "ALL",
            "WITH",
            "CASE",
            "WHEN",
            "THEN",
            "END",
            "HOTSPOTS",
            "LEFT",
            "ON",
            "=",
            "--",
            "/*",
            "*/",
            "'",
            "\"",
            "\n",
            "UESCAPE",
            "VALUES",
            "FLOOR",
            "TO",
        ];
        let seed = riffle_store::testkit::seeds(&[0x5eed_5eed])[0];
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..3_000 {
            let len = rng.below(60);
            let mut code = String::new();
            for _ in 0..len {
                code.push_str(rng.pick::<&str>(&words));
                code.push(' ');
            }
            let _ = parse_with(&code, &context());
            // The same soup behind a valid prefix reaches the query parser.
            let _ = parse_with(
                &format!("CREATE STREAM s (a INT); CREATE PUMP p AS INSERT INTO s {code}"),
                &context(),
            );
        }
    });
}

#[test]
fn deep_nesting_is_an_error_not_an_overflow() {
    on_small_stack(|| {
        let pump = "CREATE STREAM s (a INT);\nCREATE PUMP p AS INSERT INTO s SELECT STREAM ";
        let from = " FROM source_sql_stream_001;";
        let deep = 20_000;
        let cases = [
            format!("{pump}{}1{}{from}", "(".repeat(deep), ")".repeat(deep)),
            format!("{pump}{}1{from}", "- ".repeat(deep)),
            format!("{pump}{}1{from}", "NOT ".repeat(deep)),
            format!("{pump}a{}{from}", " + a".repeat(deep)),
            format!("{pump}a FROM s WHERE a = 1{}", " OR a = 1".repeat(deep / 2)),
            format!(
                "{pump}a FROM s{}",
                " UNION ALL SELECT STREAM a FROM s".repeat(deep / 10)
            ),
            format!(
                "{pump}* FROM {}s{};",
                "(SELECT STREAM * FROM ".repeat(deep / 10),
                ")".repeat(deep / 10)
            ),
            format!("{pump}{}{from}", "CURSOR(SELECT STREAM ".repeat(deep / 10)),
            format!("CREATE STREAM s ({}", "(".repeat(deep)),
            // Under the operator bound, nested queries meet sqlparser's
            // recursion limit (its frames are large in debug builds).
            format!(
                "{pump}* FROM {}s{};",
                "(SELECT STREAM * FROM ".repeat(200),
                ")".repeat(200)
            ),
            format!("{pump}{}1{}{from}", "ABS(".repeat(300), ")".repeat(300)),
        ];
        for (i, code) in cases.iter().enumerate() {
            let e = parse_with(code, &context())
                .map(|_| format!("case {i} accepted"))
                .expect_err("deep code refused");
            assert!(e.at.is_some(), "{e}");
        }
        // Below the bounds, nested CASEs and a long chain still parse, and
        // their trees are dropped on this small stack.
        let cases = format!(
            "{pump}{}1{}{from}",
            "CASE WHEN a = 1 THEN ".repeat(20),
            " END".repeat(20)
        );
        if let Err(e) = parse_with(&cases, &context()) {
            panic!("{e}");
        }
        let ok_chain = format!("{pump}a{}{from}", " + a".repeat(400));
        assert!(parse_with(&ok_chain, &context()).is_ok());
    });
}
