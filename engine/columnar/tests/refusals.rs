//! Records refused whole, with a message naming the object, column and reason, and no
//! row of them left in the file; configurations refused at construction.

mod common;

use common::{converter, read_rows, schema};
use riffle_columnar::{Converter, Deserializer, ParquetOptions};
use serde_json::json;

const COLUMNS: &[(&str, &str)] = &[
    ("id", "int"),
    ("small", "tinyint"),
    ("flag", "boolean"),
    ("price", "decimal(5,2)"),
    ("day", "date"),
    ("ts", "timestamp"),
    ("bin", "binary"),
    ("tags", "array<int>"),
    ("attrs", "map<int,string>"),
    (
        "who",
        "struct<name:string,age:smallint,pets:array<struct<kind:string,legs:int>>>",
    ),
];

fn check(record: &str, expected: &str) {
    let mut c = converter(COLUMNS, Deserializer::default());
    let err = c.push(record.as_bytes()).expect_err(record);
    assert_eq!(err, expected, "record {record}");
    assert_eq!(c.rows(), 0);
}

#[test]
fn refusals_name_the_column_and_reason() {
    for (record, expected) in [
        (
            r#"{"id":"abc"}"#,
            r#"column "id": expected int, found "abc""#,
        ),
        (
            r#"{"id":2147483648}"#,
            "column \"id\": 2147483648 is out of range for int (-2147483648..=2147483647)",
        ),
        (
            r#"{"id":18446744073709551615}"#,
            "column \"id\": 18446744073709551615 is out of range for int",
        ),
        (
            r#"{"id":1.5}"#,
            "column \"id\": 1.5 is not an integer (int)",
        ),
        (
            r#"{"id":" 12"}"#,
            r#"column "id": expected int, found " 12""#,
        ),
        (r#"{"id":true}"#, "column \"id\": expected int, found true"),
        (r#"{"id":[1]}"#, "column \"id\": expected int, found [1]"),
        (
            r#"{"small":"200"}"#,
            "column \"small\": 200 is out of range for tinyint (-128..=127)",
        ),
        (
            r#"{"flag":"yes"}"#,
            r#"column "flag": expected boolean, found "yes""#,
        ),
        (
            r#"{"flag":1}"#,
            "column \"flag\": expected boolean, found 1",
        ),
        (
            r#"{"price":1000}"#,
            "column \"price\": 1000 does not fit decimal(5,2): more than 3 digits before the point",
        ),
        (
            r#"{"price":"1,5"}"#,
            r#"column "price": "1,5" is not a decimal number"#,
        ),
        (
            r#"{"day":"2023-02-29"}"#,
            r#"column "day": "2023-02-29" is not a date (yyyy-MM-dd)"#,
        ),
        (
            r#"{"day":20230101}"#,
            "column \"day\": expected date, found 20230101",
        ),
        (
            r#"{"ts":"04/02/2017"}"#,
            "column \"ts\": \"04/02/2017\" is not a timestamp in any of the formats \
             (yyyy-MM-dd'T'HH:mm:ss[.S]'Z', yyyy-[M]M-[d]d HH:mm:ss[.S], epoch seconds or milliseconds)",
        ),
        (r#"{"bin":12}"#, "column \"bin\": expected binary, found 12"),
        (
            r#"{"tags":"1,2"}"#,
            r#"column "tags": expected a JSON array, found "1,2""#,
        ),
        (
            r#"{"tags":[1,"x"]}"#,
            r#"column "tags[1]": expected int, found "x""#,
        ),
        (
            r#"{"attrs":[1]}"#,
            "column \"attrs\": expected a JSON object (a map), found [1]",
        ),
        (
            r#"{"attrs":{"one":"x"}}"#,
            r#"column "attrs["one"]": map key: expected int, found "one""#,
        ),
        (
            r#"{"who":"ann"}"#,
            r#"column "who": expected a JSON object (a struct), found "ann""#,
        ),
        (
            r#"{"who":{"age":70000}}"#,
            "column \"who.age\": 70000 is out of range for smallint (-32768..=32767)",
        ),
        (
            r#"{"who":{"pets":[{"legs":4},{"legs":"four"}]}}"#,
            r#"column "who.pets[1].legs": expected int, found "four""#,
        ),
        (
            r#"{"id":1}{"id":"x"}"#,
            r#"JSON object 2 of the record: column "id": expected int, found "x""#,
        ),
        (
            &format!(r#"{{"id":"{}"}}"#, "z".repeat(100)),
            &format!(r#"column "id": expected int, found "{}..."#, "z".repeat(63)),
        ),
    ] {
        check(record, expected);
    }
}

#[test]
fn records_that_are_not_json_objects() {
    for (record, expected) in [
        ("", "the record holds no JSON object"),
        (" \n ", "the record holds no JSON object"),
        (
            r#"[{"id":1}]"#,
            r#"the record holds an array where a JSON object was expected; records must be JSON objects, concatenated if several ({"a":1}{"a":2})"#,
        ),
        (
            r#"{"id":1} 5"#,
            r#"the record holds a number where a JSON object was expected; records must be JSON objects, concatenated if several ({"a":1}{"a":2})"#,
        ),
        (
            r#"{"id":1"#,
            "the record is not valid JSON: EOF while parsing an object at line 1 column 8",
        ),
        (
            r#"{"id":1}}"#,
            "the record is not valid JSON: expected value at line 1 column 9",
        ),
        (
            "id=1",
            "the record is not valid JSON: expected value at line 1 column 1",
        ),
    ] {
        check(record, expected);
    }
    let mut c = converter(COLUMNS, Deserializer::default());
    let err = c.push(&[0xff, 0xfe]).unwrap_err();
    assert!(err.starts_with("the record is not valid JSON"), "{err}");
}

#[test]
fn a_refused_record_leaves_no_rows_and_its_neighbours_stay() {
    let mut c = converter(COLUMNS, Deserializer::default());
    c.push(br#"{"id":1}"#).unwrap();
    // The first two objects are fine; the third spoils the whole record.
    let err = c
        .push(br#"{"id":2,"tags":[1,2]}{"id":3,"who":{"name":"x"}}{"id":4,"tags":[5,"six"]}"#)
        .unwrap_err();
    assert_eq!(
        err,
        r#"JSON object 3 of the record: column "tags[1]": expected int, found "six""#
    );
    assert_eq!(c.rows(), 1);
    c.push(br#"{"id":5}{"id":6}"#).unwrap();
    assert_eq!(c.rows(), 3);
    let ids: Vec<_> = read_rows(c.finish().unwrap())
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!(5), json!(6)]);
}

#[test]
fn bad_configurations_are_refused_at_construction() {
    let s = schema(&[("ts", "timestamp")]);
    let hive = |f: &str| Deserializer::Hive {
        timestamp_formats: vec![f.to_owned()],
    };
    let err = Converter::new(
        &s,
        hive("yyyy-MM-dd HH:mm:ss.SSS zzz"),
        ParquetOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "timestamp format \"yyyy-MM-dd HH:mm:ss.SSS zzz\": unsupported Joda pattern letter 'z' \
         (supported: y M d H h a m s S Z E, 'quoted text')"
    );
    let err = Converter::new(&s, hive("yyyy-MM-dd'T"), ParquetOptions::default()).unwrap_err();
    assert_eq!(
        err,
        "timestamp format \"yyyy-MM-dd'T\": unterminated quoted literal"
    );
    let zero_block = ParquetOptions {
        block_size_bytes: 0,
        ..ParquetOptions::default()
    };
    assert_eq!(
        Converter::new(&s, Deserializer::default(), zero_block).unwrap_err(),
        "BlockSizeBytes must be greater than 0"
    );
    let zero_page = ParquetOptions {
        page_size_bytes: 0,
        ..ParquetOptions::default()
    };
    assert_eq!(
        Converter::new(&s, Deserializer::default(), zero_page).unwrap_err(),
        "PageSizeBytes must be greater than 0"
    );
}

#[test]
fn an_oversized_record_is_refused() {
    let mut c = converter(&[("s", "string")], Deserializer::default());
    let huge = format!(
        r#"{{"s":"{}"}}"#,
        "x".repeat(riffle_columnar::BATCH_INPUT_BYTES_MAX)
    );
    let err = c.push(huge.as_bytes()).unwrap_err();
    assert!(
        err.contains("more than the 33554432 a conversion accepts"),
        "{err}"
    );
    assert_eq!(c.rows(), 0);
}
