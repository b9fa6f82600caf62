//! JSON numbers are read from their source text, as Hive's OpenX SerDe reads them:
//! decimals and big integers keep every digit (never through an f64), and values that
//! do not fit are refused rather than rounded.

mod common;

use common::{converter, roundtrip};
use riffle_columnar::Deserializer;
use serde_json::json;

#[test]
fn decimals_and_integers_keep_every_digit() {
    let columns = [
        ("d19", "decimal(19,9)"),
        ("d38", "decimal(38,0)"),
        ("i64", "bigint"),
        ("s", "string"),
        ("f", "float"),
        ("dbl", "double"),
        ("list", "array<decimal(38,0)>"),
    ];
    let rows = roundtrip(
        &columns,
        Deserializer::default(),
        &[
            r#"{"d19":1234567890.123456789,"d38":123456789012345678901,"i64":9007199254740993.0,
                "s":1.50,"f":16777217,"dbl":0.1,"list":[123456789012345678901,-1e37]}"#,
            r#"{"d19":-0.0000000005,"d38":99999999999999999999999999999999999999,
                "i64":-9223372036854775808,"s":1e400,"list":[]}"#,
            r#"{"i64":9223372036854775807,"d38":"123456789012345678901","s":{"b":1,"a":2.50}}"#,
            r#"{"i64":1.5e3,"dbl":"1e308"}"#,
        ],
    );
    assert_eq!(
        rows,
        vec![
            json!({
                "d19": "1234567890.123456789",
                "d38": "123456789012345678901",
                "i64": 9_007_199_254_740_993_i64,
                "s": "1.50",
                "f": 16_777_216.0,
                "dbl": 0.1,
                "list": ["123456789012345678901", "-10000000000000000000000000000000000000"],
            }),
            json!({
                "d19": "-0.000000001",
                "d38": "99999999999999999999999999999999999999",
                "i64": i64::MIN,
                "s": "1e400",
                "f": null,
                "dbl": null,
                "list": [],
            }),
            json!({
                "d19": null,
                "d38": "123456789012345678901",
                "i64": i64::MAX,
                "s": r#"{"b":1,"a":2.50}"#,
                "f": null,
                "dbl": null,
                "list": null,
            }),
            json!({
                "d19": null,
                "d38": null,
                "i64": 1500,
                "s": null,
                "f": null,
                "dbl": 1e308,
                "list": null,
            }),
        ]
    );
}

#[test]
fn numbers_that_do_not_fit_are_refused() {
    let columns = [
        ("d38", "decimal(38,0)"),
        ("d5", "decimal(5,2)"),
        ("i64", "bigint"),
        ("f", "float"),
        ("dbl", "double"),
    ];
    for (record, expected) in [
        (
            r#"{"d38":999999999999999999999999999999999999999}"#,
            "column \"d38\": 999999999999999999999999999999999999999 does not fit decimal(38,0): more than 38 digits before the point",
        ),
        (
            r#"{"d5":999.995}"#,
            "column \"d5\": 999.995 does not fit decimal(5,2): more than 3 digits before the point",
        ),
        (
            r#"{"i64":9223372036854775808}"#,
            "column \"i64\": 9223372036854775808 is out of range for bigint",
        ),
        (
            r#"{"i64":-9223372036854775809}"#,
            "column \"i64\": -9223372036854775809 is out of range for bigint",
        ),
        (
            r#"{"i64":9007199254740993.5}"#,
            "column \"i64\": 9007199254740993.5 is not an integer (bigint)",
        ),
        (
            r#"{"i64":1e19}"#,
            "column \"i64\": 1e19 is out of range for bigint",
        ),
        (
            r#"{"f":1e39}"#,
            "column \"f\": 1e39 is out of range for float",
        ),
        (
            r#"{"dbl":1e400}"#,
            "column \"dbl\": 1e400 is out of range for double",
        ),
        (
            r#"{"dbl":"1e400"}"#,
            "column \"dbl\": expected double, found \"1e400\"",
        ),
        (
            &format!(r#"{{"i64":1{}}}"#, "0".repeat(100)),
            &format!(
                "column \"i64\": 1{}... is out of range for bigint",
                "0".repeat(63)
            ),
        ),
    ] {
        let mut c = converter(&columns, Deserializer::default());
        assert_eq!(c.push(record.as_bytes()).unwrap_err(), expected, "{record}");
        assert_eq!(c.rows(), 0);
    }
}
