//! Tests of batch conversion: `check(options, columns, input, expected CSV)`
//! over Redshift's formats and per-type rules, and the refusals.

use super::*;
use crate::plan::copy_plan;

fn col(name: &str, data_type: &str, length: Option<usize>) -> TableColumn {
    TableColumn {
        name: name.into(),
        data_type: data_type.into(),
        character_maximum_length: length,
    }
}

/// id integer, name varchar(5), note text.
fn table() -> Vec<TableColumn> {
    vec![
        col("id", "integer", None),
        col("name", "character varying", Some(5)),
        col("note", "text", None),
    ]
}

fn run(options: &str, input: &[u8]) -> Result<Batch, String> {
    copy_plan("t", None, Some(options))
        .unwrap()
        .prepare(input, &table())
}

fn check(options: &str, input: &str, expected: &str) {
    let batch =
        run(options, input.as_bytes()).unwrap_or_else(|e| panic!("{options} {input:?}: {e}"));
    assert_eq!(
        String::from_utf8(batch.body).unwrap(),
        expected,
        "{options} {input:?}"
    );
    assert_eq!(batch.row_count, csv_rows(expected), "{options} {input:?}");
    assert_eq!(
        batch.sql,
        "COPY \"t\" (\"id\", \"name\", \"note\") FROM STDIN WITH (FORMAT csv)"
    );
}

/// Rows of our CSV output: newlines outside quotes.
fn csv_rows(csv: &str) -> u64 {
    let mut quoted = false;
    let mut rows = 0;
    for c in csv.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => rows += 1,
            _ => {}
        }
    }
    rows
}

fn refuse(options: &str, input: &[u8], part: &str) {
    let e = run(options, input).expect_err(options);
    assert!(e.contains(part), "{options} {input:?}: {e}");
}

#[test]
fn text_format() {
    check(
        "",
        "1|ann|x\n2|bob|y",
        "\"1\",\"ann\",\"x\"\n\"2\",\"bob\",\"y\"\n",
    );
    // A backslash is data without ESCAPE; quotes are data too.
    check(
        "",
        "1|a\\b|say \"hi\"\n",
        "\"1\",\"a\\b\",\"say \"\"hi\"\"\"\n",
    );
    // \N is NULL; an empty int is NULL; an empty varchar is ''.
    check("", "\\N||\n", ",\"\",\"\"\n");
    check("", "  ||\\N\n", ",\"\",\n");
    check("EMPTYASNULL", "1||\n", "\"1\",,\n");
    check("BLANKSASNULL", "1| |  \n", "\"1\",,\n");
    check(
        "ESCAPE",
        "1|a\\|b|line\\\nbreak\n",
        "\"1\",\"a|b\",\"line\nbreak\"\n",
    );
    check("escape", "1|\\\\|\\N\n", "\"1\",\"\\\",\n");
    check("delimiter '|~|'", "1|~|a|b|~|c\n", "\"1\",\"a|b\",\"c\"\n");
    check(
        "delimiter '\\t' null as 'nil'",
        "1\tnil\t\n",
        "\"1\",,\"\"\n",
    );
    check(
        "ignoreheader 2",
        "id|name|note\nx|y|z\n1|a|b\n",
        "\"1\",\"a\",\"b\"\n",
    );
    check("IGNOREBLANKLINES", "\n1|a|b\n\n", "\"1\",\"a\",\"b\"\n");
    check(
        "FILLRECORD",
        "1\n2|b\n",
        "\"1\",\"\",\"\"\n\"2\",\"b\",\"\"\n",
    );
    check("FILLRECORD EMPTYASNULL", "1\n", "\"1\",,\n");
    check("TRIMBLANKS", "1|ab  |cd  \n", "\"1\",\"ab\",\"cd\"\n");
    check(
        "TRUNCATECOLUMNS",
        "1|abcdéfg|long note\n",
        "\"1\",\"abcdé\",\"long note\"\n",
    );
    check("", "", "");
    check("", "1|a|b\r\n", "\"1\",\"a\",\"b\r\"\n");
}

#[test]
fn csv_format() {
    check(
        "csv",
        "1,ann,x\r\n2,\"b,o\"\"b\",\"multi\nline\"\n",
        "\"1\",\"ann\",\"x\"\n\"2\",\"b,o\"\"b\",\"multi\nline\"\n",
    );
    check("csv", "1,\"\",\n", "\"1\",\"\",\"\"\n");
    check("csv emptyasnull", "1,\"\",\n", "\"1\",,\n");
    check("csv", "\\N,\"\\N\",\\N\n", ",\"\\N\",\n");
    check("csv null as ''", "1,,x\n", "\"1\",,\"x\"\n");
    check(
        "csv quote as '%' delimiter ';'",
        "1;%a;b%;%50%%%\n",
        "\"1\",\"a;b\",\"50%\"\n",
    );
    check("csv", "1, \"a\" ,b\n", "\"1\",\"a\",\"b\"\n");
    check(
        "csv ignoreheader 1",
        "id,name,note\n1,a,b",
        "\"1\",\"a\",\"b\"\n",
    );
    check(
        "csv delimiter '|~|'",
        "1|~|\"x|~|y\"|~|z\n",
        "\"1\",\"x|~|y\",\"z\"\n",
    );
}

/// A blank delimiter (tab, space) is never skipped as a blank around a
/// quoted field: every delimiter counts, quoted or not.
#[test]
fn csv_blank_delimiters() {
    for (delimiter, d) in [("'\\t'", "\t"), ("' '", " ")] {
        let options = format!("csv delimiter {delimiter}");
        let fill = format!("{options} fillrecord");
        let cases: [(&str, String, &str); 7] = [
            (
                &options,
                format!("\"1\"{d}\"y\"{d}\"z\"\n"),
                "\"1\",\"y\",\"z\"\n",
            ),
            (&options, format!("1{d}{d}\"z\"\n"), "\"1\",\"\",\"z\"\n"),
            (&options, format!("1{d}\"y\"{d}\n"), "\"1\",\"y\",\"\"\n"),
            (&options, format!("{d}\"y\"{d}z\n"), ",\"y\",\"z\"\n"),
            (&options, format!("\"1\"{d}{d}\r\n"), "\"1\",\"\",\"\"\n"),
            // Not a short record: the empty middle field is kept.
            (&fill, format!("1{d}{d}\"z\"\n"), "\"1\",\"\",\"z\"\n"),
            (&fill, format!("1{d}\"y\"\n"), "\"1\",\"y\",\"\"\n"),
        ];
        for (options, input, expected) in cases {
            check(options, &input, expected);
        }
        refuse(
            &options,
            format!("1{d}\"a\"x{d}b\n").as_bytes(),
            "text after a closing quote",
        );
    }
    // The other blank is still skipped around a quoted field.
    check(
        "csv delimiter '\\t'",
        "1\t \"a\" \tb\n",
        "\"1\",\"a\",\"b\"\n",
    );
    check(
        "csv delimiter ' '",
        "1 \t\"a\"\t b\n",
        "\"1\",\"a\",\"b\"\n",
    );
    // A multi-character delimiter starting with a blank.
    check(
        "csv delimiter ' |'",
        "1 | \"a\"  |b\n",
        "\"1\",\"a\",\"b\"\n",
    );
}

#[test]
fn json_auto() {
    check(
        "json 'auto'",
        "{\"id\": 1, \"name\": \"ann\", \"note\": {\"k\": [1, 2]}}\n{\"id\":2.50,\"extra\":true}{\"NAME\":\"x\",\"id\":null}",
        "\"1\",\"ann\",\"{\"\"k\"\": [1, 2]}\"\n\"2.50\",,\n,,\n",
    );
    check(
        "json 'auto ignorecase'",
        "{\"ID\": 3, \"Name\": \"a\\\"b\"}",
        "\"3\",\"a\"\"b\",\n",
    );
    check("json 'auto'", "{\"id\": 1, \"id\": 2}", "\"2\",,\n");
    check(
        "json 'auto' emptyasnull",
        "{\"id\": 1, \"name\": \"\", \"note\": true}",
        "\"1\",,\"true\"\n",
    );
    check(
        "json 'auto' truncatecolumns",
        "{\"name\": \"abcdefgh\"}",
        ",\"abcde\",\n",
    );
    check("json 'auto'", " \n ", "");
    refuse("json 'auto'", b"[1, \"a\"]", "found an array");
    refuse(
        "json 'auto'",
        b"{\"id\": 1} oops",
        "invalid JSON at byte 10",
    );
}

#[test]
fn column_list_and_unknown_columns() {
    let p = copy_plan("s.t", Some("note, id"), Some("csv")).unwrap();
    let b = p.prepare(b"hello,7\n", &table()).unwrap();
    assert_eq!(
        b.sql,
        "COPY \"s\".\"t\" (\"note\", \"id\") FROM STDIN WITH (FORMAT csv)"
    );
    assert_eq!(b.body, b"\"hello\",\"7\"\n");
    let p = copy_plan("t", None, None).unwrap();
    let e = p.prepare(b"1\n", &[]).unwrap_err();
    assert!(e.contains("no columns"), "{e}");
}

#[test]
fn refusals() {
    refuse(
        "",
        b"1|a|b|c\n",
        "line 1: Extra column(s) found (4 fields for 3 columns)",
    );
    refuse("", b"1|a|b\n2|a\n", "line 2: Delimiter not found");
    refuse("escape", b"1|a|b\\", "backslash (ESCAPE) ends the data");
    refuse(
        "csv",
        b"1,\"open,b\n",
        "line 1: a quoted field is not closed",
    );
    refuse("csv", b"1,\"a\"x,b\n", "text after a closing quote");
    refuse("", b"1|a\xff|b\n", "invalid UTF-8 at byte 3");
}

#[test]
fn invalid_utf8_replaced() {
    let b = run("acceptinvchars as '^'", b"1|a\xe2\x82|b\xff\n").unwrap();
    assert_eq!(b.body, b"\"1\",\"a^^\",\"b^\"\n");
}
