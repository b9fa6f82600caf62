//! Tests of CopyOptions reading: a table of accepted options and their
//! plans, and a table of refusals with the words the message must contain.

use super::*;

fn plan(options: &str) -> Result<CopyPlan, String> {
    copy_plan("events", None, Some(options))
}

fn check_ok(options: &str, expected: impl Fn(&CopyPlan) -> bool) {
    let p = plan(options).unwrap_or_else(|e| panic!("{options}: {e}"));
    assert!(expected(&p), "{options}: {p:?}");
}

fn text(delimiter: &str, escape: bool) -> SourceFormat {
    SourceFormat::Text {
        delimiter: delimiter.into(),
        escape,
    }
}

#[test]
fn accepted_options() {
    check_ok("", |p| {
        p.format == text("|", false) && p.null_as == "\\N" && !p.gzip
    });
    check_ok("delimiter '\\t' escape", |p| p.format == text("\t", true));
    check_ok("DELIMITER AS '|~|'", |p| p.format == text("|~|", false));
    check_ok("delimiter '\\001'", |p| p.format == text("\u{1}", false));
    check_ok("delimiter ','  ;", |p| p.format == text(",", false));
    check_ok("CSV", |p| {
        p.format
            == SourceFormat::Csv {
                delimiter: ",".into(),
                quote: '"',
            }
    });
    check_ok("csv quote as '%' delimiter ';'", |p| {
        p.format
            == SourceFormat::Csv {
                delimiter: ";".into(),
                quote: '%',
            }
    });
    check_ok("FORMAT AS CSV QUOTE '''' ", |p| {
        p.format
            == SourceFormat::Csv {
                delimiter: ",".into(),
                quote: '\'',
            }
    });
    check_ok("format csv", |p| {
        matches!(p.format, SourceFormat::Csv { .. })
    });
    check_ok("JSON 'auto'", |p| {
        p.format == SourceFormat::JsonAuto { ignore_case: false }
    });
    check_ok("format as json 'auto ignorecase' gzip", |p| {
        p.format == SourceFormat::JsonAuto { ignore_case: true } && p.gzip
    });
    check_ok(
        "json as 'auto' timeformat 'auto' dateformat 'auto' maxerror 10",
        |p| p.max_error_count == 10,
    );
    check_ok(
        "NULL AS 'nil' IGNOREHEADER 2 EMPTYASNULL BLANKSASNULL",
        |p| p.null_as == "nil" && p.ignore_header_count == 2 && p.empty_as_null && p.blanks_as_null,
    );
    check_ok("null as '\\0'", |p| p.null_as == "\0");
    check_ok("ignoreheader as '1'", |p| p.ignore_header_count == 1);
    check_ok(
        "TRUNCATECOLUMNS TRIMBLANKS FILLRECORD IGNOREBLANKLINES",
        |p| p.truncate_columns && p.trim_blanks && p.fill_record && p.ignore_blank_lines,
    );
    check_ok("ACCEPTINVCHARS", |p| p.accept_invalid_chars == Some('?'));
    check_ok("acceptinvchars as '^'", |p| {
        p.accept_invalid_chars == Some('^')
    });
    check_ok(
        "COMPUPDATE OFF STATUPDATE ON ROUNDEC EXPLICIT_IDS ENCODING UTF8",
        |_| true,
    );
    check_ok("compupdate statupdate false", |_| true);
    check_ok(
        "timeformat 'YYYY-MM-DD HH:MI:SS' dateformat as 'yyyy-mm-dd'",
        |_| true,
    );
}

#[test]
fn refused_options() {
    let cases = [
        ("fixedwidth 'a:3,b:4'", "FIXEDWIDTH is not supported"),
        ("format as avro 'auto'", "AVRO is not supported"),
        ("FORMAT AS PARQUET", "PARQUET is not supported"),
        ("orc", "ORC is not supported"),
        ("json 's3://bucket/paths.json'", "JSONPaths"),
        ("json 'AUTO'", "case matters"),
        ("json", "needs an argument"),
        ("manifest", "MANIFEST is not supported"),
        ("region 'us-east-1'", "REGION is not supported"),
        ("encrypted", "ENCRYPTED is not supported"),
        ("lzop", "LZOP is not supported"),
        ("bzip2", "BZIP2"),
        ("zstd", "ZSTD"),
        ("removequotes", "REMOVEQUOTES is not supported"),
        (
            "frobnicate",
            "FROBNICATE is not supported: it is not a COPY option",
        ),
        (
            "timeformat 'epochsecs'",
            "TIMEFORMAT 'epochsecs' is not supported",
        ),
        ("dateformat 'MM/DD/YYYY'", "DATEFORMAT"),
        ("encoding utf16", "ENCODING utf16 is not supported"),
        ("csv escape", "ESCAPE cannot be used with CSV"),
        (
            "json 'auto' delimiter ','",
            "DELIMITER cannot be used with JSON",
        ),
        (
            "json 'auto' ignoreheader 1",
            "IGNOREHEADER cannot be used with JSON",
        ),
        ("json 'auto' csv", "more than once"),
        ("quote '%'", "QUOTE can only be used with CSV"),
        ("csv quote 'ab'", "one character"),
        ("csv quote ',' ", "cannot be part of the DELIMITER"),
        ("delimiter ''", "one or more characters"),
        ("delimiter '\\n'", "other than a newline"),
        ("delimiter '\\\\' escape", "backslash"),
        ("delimiter", "needs a quoted string"),
        ("delimiter 'a' delimiter 'b'", "more than once"),
        ("gzip gzip", "more than once"),
        ("ignoreheader 'x'", "whole number"),
        ("ignoreheader -1", "unexpected character '-'"),
        ("maxerror 100001", "at most 100000"),
        ("delimiter 'x", "not closed"),
        ("delimiter '\\q'", "unknown escape"),
        ("delimiter '\\777'", "not an ASCII"),
        ("gzip; drop table x", "text after ';'"),
        ("acceptinvchars 'é'", "ASCII"),
        ("'auto'", "expected an option name"),
        ("format", "FORMAT must be followed"),
    ];
    for (options, part) in cases {
        let e = plan(options).expect_err(options);
        assert!(e.contains(part), "{options}: {e}");
        assert!(e.starts_with("CopyOptions: "), "{options}: {e}");
    }
}

#[test]
fn names_are_checked_and_quoted() {
    let p = copy_plan("Sales.Events", Some("Id, \"Name\""), None).unwrap();
    assert_eq!(p.table.to_sql(), "\"sales\".\"events\"");
    assert_eq!(p.columns, Some(vec!["id".to_string(), "name".to_string()]));
    // Resolved as COPY resolves the name (the whole search_path when
    // unqualified); the real server checks the rest (tests/postgres.rs).
    assert!(
        p.columns_sql()
            .contains("a.attrelid = pg_catalog.to_regclass('\"sales\".\"events\"')"),
        "{}",
        p.columns_sql()
    );
    let p = copy_plan("o'brien", None, None).unwrap();
    assert!(
        p.columns_sql()
            .contains("pg_catalog.to_regclass('\"o''brien\"')"),
        "{}",
        p.columns_sql()
    );
    assert!(!p.columns_sql().contains("current_schema"));
    assert!(copy_plan("a;b c", None, None).is_ok_and(|p| p.table.to_sql() == "\"a;b c\""));
    assert!(copy_plan("", None, None).is_err());
    assert!(copy_plan("t", Some("a,,b"), None).is_err());
    assert_eq!(copy_plan("t", Some(""), None).unwrap().columns, None);
}
