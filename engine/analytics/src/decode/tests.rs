//! The decoder's tables: the AWS demo schema, every coercion cell, each
//! JSONPath form, CSV delimiters, the errors and their messages, and
//! never-panic runs over seeded random and truncated bytes. Values are read
//! back out of the batches' arrays.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time32MillisecondType, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use riffle_store::testkit::{Rng, seeds};

use super::*;

fn columns(cols: &[(&str, &str, &str)]) -> Vec<Column> {
    cols.iter()
        .map(|(name, ty, mapping)| Column {
            name: name.to_string(),
            ty: SqlType::parse(ty).expect("test types parse"),
            mapping: (!mapping.is_empty()).then(|| mapping.to_string()),
        })
        .collect()
}

fn json(row_path: &str, cols: &[(&str, &str, &str)]) -> Arc<InputFormat> {
    let format = Format::Json {
        row_path: row_path.into(),
    };
    Arc::new(InputFormat::new(format, columns(cols)).expect("test format compiles"))
}

fn csv(rows: &str, fields: &str, cols: &[(&str, &str)]) -> Arc<InputFormat> {
    let format = Format::Csv {
        row_delimiter: rows.into(),
        column_delimiter: fields.into(),
    };
    let cols: Vec<_> = cols.iter().map(|(n, t)| (*n, *t, "")).collect();
    Arc::new(InputFormat::new(format, columns(&cols)).expect("test format compiles"))
}

fn decode(format: &Arc<InputFormat>, records: &[&[u8]]) -> (RecordBatch, Vec<DecodeError>) {
    let mut d = Decoder::new(format.clone());
    let mut added = 0;
    for (i, r) in records.iter().enumerate() {
        added += d.push(r, 1000 + i as i64, 500 + i as i64);
    }
    assert_eq!(d.row_count(), added);
    let (batch, errors) = d.finish();
    assert_eq!(batch.num_rows(), added);
    (batch, errors)
}

/// A cell as text: `NULL`, numbers as Rust prints them, decimals with their
/// scale, text as is, binary as `X'..'`, dates, times and timestamps as
/// their integer (days, ms).
fn cell(batch: &RecordBatch, col: usize, row: usize) -> String {
    let a = batch.column(col);
    if a.is_null(row) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Boolean => a.as_boolean().value(row).to_string(),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(row).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value_as_string(row),
        DataType::Utf8 => a.as_string::<i32>().value(row).to_string(),
        DataType::Binary => {
            let hex: String = a
                .as_binary::<i32>()
                .value(row)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            format!("X'{hex}'")
        }
        DataType::Date32 => a.as_primitive::<Date32Type>().value(row).to_string(),
        DataType::Time32(_) => a
            .as_primitive::<Time32MillisecondType>()
            .value(row)
            .to_string(),
        DataType::Timestamp(..) => a
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .to_string(),
        other => panic!("no test rendering for {other}"),
    }
}

/// Every row's cells of the input columns (not ROWTIME and arrival).
fn rows(batch: &RecordBatch) -> Vec<Vec<String>> {
    let n = batch.num_columns() - 2;
    (0..batch.num_rows())
        .map(|r| (0..n).map(|c| cell(batch, c, r)).collect())
        .collect()
}

fn strings(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

#[test]
fn aws_demo_schema_decodes_the_demo_records() {
    let format = json(
        "$",
        &[
            ("TICKER_SYMBOL", "VARCHAR(4)", "$.TICKER_SYMBOL"),
            ("SECTOR", "VARCHAR(16)", "$.SECTOR"),
            ("CHANGE", "REAL", "$.CHANGE"),
            ("PRICE", "REAL", "$.PRICE"),
        ],
    );
    let records: [&[u8]; 3] = [
        br#"{"TICKER_SYMBOL":"QXZ","SECTOR":"HEALTHCARE","CHANGE":-0.05,"PRICE":84.51}"#,
        br#"{"TICKER_SYMBOL":"ASDFG","SECTOR":"TELECOMMUNICATIONS","CHANGE":1.5,"PRICE":4}"#,
        br#" { "PRICE" : 12 , "TICKER_SYMBOL" : "AB" , "EXTRA": {"x": [1, {"y": null}]} } "#,
    ];
    let (batch, errors) = decode(&format, &records);
    assert_eq!(errors, vec![]);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["QXZ", "HEALTHCARE", "-0.05", "84.51"]),
            strings(&["ASDF", "TELECOMMUNICATIO", "1.5", "4"]),
            strings(&["AB", "NULL", "NULL", "12"]),
        ]
    );
    let rowtime = batch.column(4).as_primitive::<TimestampMillisecondType>();
    let arrival = batch.column(5).as_primitive::<TimestampMillisecondType>();
    assert_eq!(rowtime.values().to_vec(), vec![1000, 1001, 1002]);
    assert_eq!(arrival.values().to_vec(), vec![500, 501, 502]);
}

#[test]
fn keys_in_any_order_from_record_to_record_find_their_columns() {
    // The scanner tries the key after the last one met first: records
    // whose keys come in other orders, or with other keys between, must
    // still fill each column from its own key.
    let format = json(
        "$",
        &[
            ("A", "INTEGER", "$.a"),
            ("B", "INTEGER", "$.b"),
            ("C", "VARCHAR(8)", "$.c"),
            ("D", "INTEGER", "$.n.d"),
        ],
    );
    let records: [&[u8]; 6] = [
        br#"{"a":1,"b":2,"c":"x","n":{"d":3}}"#,
        br#"{"c":"y","b":5,"a":4,"n":{"d":6}}"#,
        br#"{"a":7,"z":0,"b":8,"n":{"e":1,"d":9},"c":"w"}"#,
        br#"{"b":11,"b":12,"a":10}"#,
        br#"{"n":{"d":15},"c":"v","a":13,"b":14}"#,
        br#"{"a":16,"b":17,"c":"u","n":{"d":18}}"#,
    ];
    let (batch, errors) = decode(&format, &records);
    assert_eq!(errors, vec![]);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["1", "2", "x", "3"]),
            strings(&["4", "5", "y", "6"]),
            strings(&["7", "8", "w", "9"]),
            strings(&["10", "12", "NULL", "NULL"]),
            strings(&["13", "14", "v", "15"]),
            strings(&["16", "17", "u", "18"]),
        ]
    );
}

#[test]
fn schema_has_the_columns_then_rowtime_and_arrival() {
    let format = json(
        "$",
        &[
            ("ticker", "VARCHAR(4)", "$.t"),
            ("P", "DECIMAL(10,2)", "$.p"),
        ],
    );
    let schema = schema_of(&format);
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["ticker", "P", ROWTIME, APPROXIMATE_ARRIVAL_TIME]);
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(
        schema
            .field(0)
            .metadata()
            .get(SQL_TYPE_METADATA)
            .map(String::as_str),
        Some("VARCHAR(4)")
    );
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(10, 2));
    assert!(schema.field(1).is_nullable());
    assert_eq!(schema.field(2).data_type(), &SqlType::Timestamp.arrow());
    assert!(!schema.field(2).is_nullable());
    let (batch, _) = decode(&format, &[]);
    assert_eq!(batch.schema(), schema);
    assert_eq!(batch.num_rows(), 0);
}

/// One JSON value into one column of a type: the cell, or `Err` for a
/// coercion error (whose message is checked too).
fn check_json_coercion(value: &str, ty: &str, want: Result<&str, ()>) {
    let format = json("$", &[("C", ty, "$.v")]);
    let record = format!(r#"{{"v": {value}}}"#);
    let (batch, errors) = decode(&format, &[record.as_bytes()]);
    match want {
        Ok(cell_text) => {
            assert_eq!(errors, vec![], "{value} into {ty}");
            assert_eq!(
                rows(&batch),
                vec![vec![cell_text.to_string()]],
                "{value} into {ty}"
            );
        }
        Err(()) => {
            assert_eq!(batch.num_rows(), 0, "{value} into {ty}");
            assert_eq!(errors.len(), 1, "{value} into {ty}");
            assert_eq!(errors[0].kind, ErrorKind::Coercion);
            let shown = SqlType::parse(ty).expect("test type").to_string();
            assert_eq!(
                errors[0].message,
                format!("Cannot coerce {value} to {shown} for column \"C\"")
            );
            assert_eq!(errors[0].data, record.as_bytes());
            assert_eq!(errors[0].rowtime_ms, 1000);
        }
    }
}

#[test]
fn json_null_is_null_for_every_type() {
    for ty in [
        "BOOLEAN",
        "TINYINT",
        "INTEGER",
        "BIGINT",
        "REAL",
        "DOUBLE",
        "DECIMAL(5,2)",
        "CHAR(2)",
        "VARCHAR(4)",
        "BINARY(2)",
        "VARBINARY(4)",
        "DATE",
        "TIME",
        "TIMESTAMP",
    ] {
        check_json_coercion("null", ty, Ok("NULL"));
    }
}

#[test]
fn json_booleans_coerce_per_the_table() {
    let cases = [
        ("true", "INTEGER", Ok("1")),
        ("false", "BIGINT", Ok("0")),
        ("true", "TINYINT", Ok("1")),
        ("true", "REAL", Ok("1")),
        ("false", "DOUBLE", Ok("0")),
        ("true", "DECIMAL(5,2)", Ok("1.00")),
        ("true", "DECIMAL(2,2)", Err(())),
        ("true", "BOOLEAN", Ok("true")),
        ("false", "BOOLEAN", Ok("false")),
        ("true", "VARCHAR(8)", Ok("true")),
        ("false", "VARCHAR(2)", Ok("fa")),
        ("true", "CHAR(4)", Ok("true")),
        ("true", "VARBINARY(4)", Ok("X'01'")),
        ("false", "BINARY(1)", Ok("X'00'")),
        ("true", "DATE", Err(())),
        ("false", "TIME", Err(())),
        ("true", "TIMESTAMP", Err(())),
    ];
    for (value, ty, want) in cases {
        check_json_coercion(value, ty, want);
    }
}

#[test]
fn json_numbers_coerce_per_the_table() {
    let big = format!("15{}", "0".repeat(299));
    let cases = [
        ("123", "INTEGER", Ok("123")),
        ("-123", "INTEGER", Ok("-123")),
        ("123.4", "INTEGER", Err(())),
        ("123.0", "INTEGER", Ok("123")),
        ("1e2", "INTEGER", Ok("100")),
        ("1.5e1", "SMALLINT", Ok("15")),
        ("1e-2", "INTEGER", Err(())),
        ("127", "TINYINT", Ok("127")),
        ("128", "TINYINT", Err(())),
        ("-128", "TINYINT", Ok("-128")),
        ("-32768", "SMALLINT", Ok("-32768")),
        ("32768", "SMALLINT", Err(())),
        ("2147483647", "INTEGER", Ok("2147483647")),
        ("2147483648", "INTEGER", Err(())),
        ("9223372036854775807", "BIGINT", Ok("9223372036854775807")),
        ("-9223372036854775808", "BIGINT", Ok("-9223372036854775808")),
        ("9223372036854775808", "BIGINT", Err(())),
        ("1e400", "BIGINT", Err(())),
        ("84.51", "REAL", Ok("84.51")),
        ("-0.05", "REAL", Ok("-0.05")),
        ("1e39", "REAL", Err(())),
        ("-1e-5", "DOUBLE", Ok("-0.00001")),
        ("1.5e300", "DOUBLE", Ok(big.as_str())),
        ("1e309", "DOUBLE", Err(())),
        ("0.1", "DOUBLE", Ok("0.1")),
        ("123.45", "DECIMAL(5,2)", Ok("123.45")),
        ("-0.5", "DECIMAL(5,2)", Ok("-0.50")),
        ("123.456", "DECIMAL(5,2)", Err(())),
        ("1234.5", "DECIMAL(5,2)", Err(())),
        (
            "99999999999999999999.99",
            "DECIMAL(22,2)",
            Ok("99999999999999999999.99"),
        ),
        ("0", "BOOLEAN", Ok("false")),
        ("0.0", "BOOLEAN", Ok("false")),
        ("-0e5", "BOOLEAN", Ok("false")),
        ("-2.5", "BOOLEAN", Ok("true")),
        ("1.50", "VARCHAR(8)", Ok("1.50")),
        ("123456", "VARCHAR(3)", Ok("123")),
        ("1e2", "CHAR(5)", Ok("1e2")),
        ("5", "VARBINARY(4)", Err(())),
        ("5", "BINARY(1)", Err(())),
        ("5", "DATE", Err(())),
        ("5", "TIME", Err(())),
        ("5", "TIMESTAMP", Err(())),
    ];
    for (value, ty, want) in cases {
        check_json_coercion(value, ty, want);
    }
}

#[test]
fn json_strings_coerce_per_the_table() {
    let ts_1992 = (8079i64 * 86_400_000).to_string();
    let ts_1992_time = (8079i64 * 86_400_000 + 66_944_000).to_string();
    let ts_1992_ms = (8079i64 * 86_400_000 + 66_944_123).to_string();
    let cases = [
        (r#""42""#, "INTEGER", Ok("42")),
        (r#"" 42 ""#, "INTEGER", Ok("42")),
        (r#""+42""#, "BIGINT", Ok("42")),
        (r#""abc""#, "INTEGER", Err(())),
        (r#""""#, "INTEGER", Err(())),
        (r#""4.5""#, "INTEGER", Err(())),
        (r#""1e3""#, "BIGINT", Ok("1000")),
        (r#""300""#, "TINYINT", Err(())),
        (r#""4.5""#, "DOUBLE", Ok("4.5")),
        (r#"".5""#, "REAL", Ok("0.5")),
        (r#""NaN""#, "DOUBLE", Err(())),
        (r#""inf""#, "REAL", Err(())),
        (r#""12.5""#, "DECIMAL(4,1)", Ok("12.5")),
        (r#""12.55""#, "DECIMAL(4,1)", Err(())),
        (r#""TRUE""#, "BOOLEAN", Ok("true")),
        (r#""true""#, "BOOLEAN", Ok("true")),
        (r#""yes""#, "BOOLEAN", Ok("false")),
        (r#""1""#, "BOOLEAN", Ok("false")),
        (r#""""#, "BOOLEAN", Ok("false")),
        (r#""HEALTHCARE""#, "VARCHAR(4)", Ok("HEAL")),
        (r#""ééé""#, "CHAR(2)", Ok("éé")),
        (r#""日本語テキスト""#, "VARCHAR(3)", Ok("日本語")),
        (r#""""#, "VARCHAR(3)", Ok("")),
        (r#""a\"b\u00e9\n""#, "VARCHAR(8)", Ok("a\"bé\n")),
        (r#""\u00e9\u00e9\u00e9""#, "VARCHAR(2)", Ok("éé")),
        (r#""\u0034\u0032""#, "INTEGER", Ok("42")),
        (r#""X'3F67A23A'""#, "VARBINARY(8)", Ok("X'3F67A23A'")),
        (r#""X'3F67A23A'""#, "BINARY(2)", Ok("X'3F67'")),
        (r#""x''""#, "VARBINARY(8)", Ok("X''")),
        (r#""X'3F6'""#, "VARBINARY(8)", Err(())),
        (r#""3F67""#, "BINARY(2)", Err(())),
        (r#""1992-02-14""#, "DATE", Ok("8079")),
        (r#""1992-02-30""#, "DATE", Err(())),
        (r#""18:35:44""#, "TIME", Ok("66944000")),
        (r#""18:35""#, "TIME", Err(())),
        (r#""1992-02-14""#, "TIMESTAMP", Ok(ts_1992.as_str())),
        (
            r#""1992-02-14 18:35:44.0""#,
            "TIMESTAMP",
            Ok(ts_1992_time.as_str()),
        ),
        (
            r#""1992-02-14T18:35:44.123""#,
            "TIMESTAMP",
            Ok(ts_1992_ms.as_str()),
        ),
        (r#""yesterday""#, "TIMESTAMP", Err(())),
    ];
    for (value, ty, want) in cases {
        check_json_coercion(value, ty, want);
    }
}

#[test]
fn json_arrays_and_objects_are_text_or_errors() {
    let cases = [
        ("[1,2]", "VARCHAR(16)", Ok("[1,2]")),
        (
            r#"{"a": [1, "x"]}"#,
            "VARCHAR(32)",
            Ok(r#"{"a": [1, "x"]}"#),
        ),
        ("[1,2,3]", "VARCHAR(3)", Ok("[1,")),
        ("[]", "CHAR(4)", Ok("[]")),
        ("[1]", "INTEGER", Err(())),
        ("{}", "BOOLEAN", Err(())),
        ("[]", "VARBINARY(4)", Err(())),
        ("{}", "TIMESTAMP", Err(())),
        ("[1.5]", "DECIMAL(5,2)", Err(())),
    ];
    for (value, ty, want) in cases {
        check_json_coercion(value, ty, want);
    }
}

#[test]
fn each_jsonpath_form() {
    let format = json(
        "$",
        &[
            ("NAME", "VARCHAR(16)", "$.customerName"),
            ("CITY", "VARCHAR(16)", "$.address.city"),
            ("STREET", "VARCHAR(16)", "$.address['street.name']"),
            ("DEEP", "INTEGER", "$.a.b.c"),
            ("ORDER_ID", "VARCHAR(8)", "$.orders[0:].orderId"),
            ("PRICE", "DECIMAL(6,2)", "$.orders[0:].itemPrice"),
            ("TAGS", "VARCHAR(32)", "$.tags[0:]"),
            ("MISSING", "INTEGER", "$.nope"),
            ("CASED", "VARCHAR(16)", "$.CustomerName"),
        ],
    );
    let record = br#"{"customerName":"John Doe","address":{"city":"Anytown","street.name":"Main"},
        "a":{"b":{"c":7,"d":[{"c":8}]}},
        "orders":[{"orderId":"23284","itemPrice":"33.99"},{"orderId":"63122","itemPrice":22.5},{"orderId":"77284"}],
        "tags":["a", "b"]}"#;
    let (batch, errors) = decode(&format, &[record]);
    assert_eq!(errors, vec![]);
    let common = ["John Doe", "Anytown", "Main", "7"];
    let tail = [r#"["a", "b"]"#, "NULL", "NULL"];
    let row = |id: &str, price: &str| -> Vec<String> {
        common
            .iter()
            .copied()
            .chain([id, price])
            .chain(tail.iter().copied())
            .map(String::from)
            .collect()
    };
    assert_eq!(
        rows(&batch),
        vec![
            row("23284", "33.99"),
            row("63122", "22.50"),
            row("77284", "NULL")
        ]
    );

    // An empty array still gives one row, of NULLs where it flattens; so
    // does a missing one, or a value that is not an array.
    for orders in [
        r#""orders":[]"#,
        r#""other":1"#,
        r#""orders":{"orderId":"1"}"#,
    ] {
        let record = format!(r#"{{"customerName":"Jo",{orders}}}"#);
        let (batch, errors) = decode(&format, &[record.as_bytes()]);
        assert_eq!(errors, vec![], "{orders}");
        assert_eq!(
            rows(&batch),
            vec![strings(&[
                "Jo", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"
            ])]
        );
    }

    // A record that is not an object: every column NULL.
    let (batch, errors) = decode(&format, &[b"[1,2]", b"\"x\""]);
    assert_eq!(errors, vec![]);
    assert_eq!(batch.num_rows(), 2);
    assert!(rows(&batch).iter().flatten().all(|c| c == "NULL"));
}

#[test]
fn a_flattened_row_with_a_bad_element_loses_only_that_row() {
    let format = json(
        "$",
        &[
            ("ID", "VARCHAR(8)", "$.id"),
            ("Q", "INTEGER", "$.items[0:].q"),
        ],
    );
    let record = br#"{"id":"r1","items":[{"q":1},{"q":"many"},{"q":3}]}"#;
    let (batch, errors) = decode(&format, &[record]);
    assert_eq!(
        rows(&batch),
        vec![strings(&["r1", "1"]), strings(&["r1", "3"])]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        r#"Cannot coerce "many" to INTEGER for column "Q""#
    );
    assert_eq!(errors[0].data, record);
}

#[test]
fn a_key_is_taken_by_its_bytes_only_when_they_are_the_whole_key() {
    // The scanner compares the key it expects next with the record's bytes
    // (quotes included) before it scans a key: a longer key that starts the
    // same, the same key escaped, or spaces around the colon must all go the
    // slow way or the fast way and land in the same column.
    let format = json("$", &[("A", "INTEGER", "$.ab"), ("B", "INTEGER", "$.b")]);
    let records: [&[u8]; 5] = [
        br#"{"ab":1,"b":2}"#,
        br#"{"abc":9,"ab":3,"b":4}"#,
        br#"{"ab":5, "b" : 6}"#,
        br#"{ "ab"  :7,"b\\":0,"b":8}"#,
        br#"{"ab":"#,
    ];
    let (batch, errors) = decode(&format, &records);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["1", "2"]),
            strings(&["3", "4"]),
            strings(&["5", "6"]),
            strings(&["7", "8"]),
        ]
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].data, records[4]);
}

#[test]
fn keys_are_matched_after_unescaping_and_duplicates_take_the_last() {
    let format = json(
        "$",
        &[("A", "INTEGER", "$.a"), ("AB", "INTEGER", "$['a\"b']")],
    );
    let (batch, errors) = decode(&format, &[br#"{"\u0061":1,"a\"b":2}"#, br#"{"a":1,"a":5}"#]);
    assert_eq!(errors, vec![]);
    assert_eq!(
        rows(&batch),
        vec![strings(&["1", "2"]), strings(&["5", "NULL"])]
    );
}

#[test]
fn a_record_row_path_gives_one_row_per_element() {
    let format = json(
        "$.records[0:]",
        &[("A", "INTEGER", "$.a"), ("T", "VARCHAR(8)", "$.t[0:].x")],
    );
    let records: [&[u8]; 4] = [
        br#"{"meta":{"records":[9]},"records":[{"a":1},{"a":2,"t":[{"x":"p"},{"x":"q"}]},{"a":"x"}]}"#,
        br#"{"other":[{"a":1}]}"#,
        br#"{"records":"not an array"}"#,
        br#"{"records":[{"a":1}"#,
    ];
    let (batch, errors) = decode(&format, &records);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["1", "NULL"]),
            strings(&["2", "p"]),
            strings(&["2", "q"])
        ]
    );
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].kind, ErrorKind::Coercion);
    assert_eq!(
        errors[0].message,
        r#"Cannot coerce "x" to INTEGER for column "A""#
    );
    assert_eq!(errors[1].kind, ErrorKind::Parse);
    assert_eq!(errors[1].data, records[3]);
    assert_eq!(errors[1].rowtime_ms, 1003);

    let whole = json(
        "$[0:]",
        &[("A", "INTEGER", "$.a"), ("ROW", "VARCHAR(16)", "$")],
    );
    let (batch, errors) = decode(&whole, &[br#"[{"a":1},{"a":2}, 3]"#]);
    assert_eq!(errors, vec![]);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["1", r#"{"a":1}"#]),
            strings(&["2", r#"{"a":2}"#]),
            strings(&["NULL", "3"])
        ]
    );
}

#[test]
fn a_bad_row_is_rolled_back_whole() {
    let format = json(
        "$",
        &[
            ("A", "VARCHAR(4)", "$.a"),
            ("B", "INTEGER", "$.b"),
            ("C", "VARBINARY(4)", "$.c"),
        ],
    );
    let records: [&[u8]; 4] = [
        br#"{"a":"x","b":1,"c":"X'01'"}"#,
        br#"{"a":"y\u00e9","b":"bad","c":"X'02'"}"#,
        br#"{"a":"w","b":2,"c":"X'zz'"}"#,
        br#"{"a":"z","b":3,"c":"X'03'"}"#,
    ];
    let (batch, errors) = decode(&format, &records);
    assert_eq!(
        rows(&batch),
        vec![strings(&["x", "1", "X'01'"]), strings(&["z", "3", "X'03'"])]
    );
    let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            r#"Cannot coerce "bad" to INTEGER for column "B""#,
            r#"Cannot coerce "X'zz'" to VARBINARY(4) for column "C""#,
        ]
    );
    let rowtimes = batch.column(3).as_primitive::<TimestampMillisecondType>();
    assert_eq!(rowtimes.values().to_vec(), vec![1000, 1003]);
    assert_eq!(errors[0].rowtime_ms, 1001);
}

#[test]
fn parse_errors_carry_the_record() {
    let format = json("$", &[("A", "VARCHAR(4)", "$.a")]);
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(ROW_SIZE_MAX));
    let deep = "[".repeat(200) + &"]".repeat(200);
    let cases: [(&[u8], &str); 8] = [
        (b"\xff\xfe{}", "Record is not valid UTF-8 (at byte 0)"),
        (br#"{"a":"#, "Record is not valid JSON (it ends early)"),
        (br#"{"a":1} x"#, "Record is not valid JSON (at byte 8)"),
        (b"", "Record is not valid JSON (it ends early)"),
        (b"{'a':1}", "Record is not valid JSON (at byte 1)"),
        (
            br#"{"a":"x" "b":1}"#,
            "Record is not valid JSON (at byte 9)",
        ),
        (
            big.as_bytes(),
            "Row of 524296 bytes is over the 524288-byte limit",
        ),
        (
            deep.as_bytes(),
            "Record nests arrays and objects deeper than 128 levels",
        ),
    ];
    for (record, message) in cases {
        let (batch, errors) = decode(&format, &[record, br#"{"a":"ok"}"#]);
        assert_eq!(rows(&batch), vec![strings(&["ok"])], "{message}");
        assert_eq!(errors.len(), 1, "{message}");
        assert_eq!(errors[0].kind, ErrorKind::Parse);
        assert_eq!(errors[0].kind.name(), "Parse_error");
        assert_eq!(errors[0].message, message);
        assert_eq!(errors[0].data, &record[..record.len().min(ERROR_DATA_MAX)]);
        assert_eq!(errors[0].rowtime_ms, 1000);
    }
    assert_eq!(ErrorKind::Coercion.name(), "Coercion_error");
}

#[test]
fn csv_with_each_delimiter() {
    let cols = [("T", "VARCHAR(4)"), ("P", "DOUBLE"), ("N", "INTEGER")];
    let cases: [(&str, &str, &[u8]); 4] = [
        ("\n", ",", b"QXZ,84.5,1\nAB,1,2\n"),
        ("\r\n", ",", b"QXZ,84.5,1\r\nAB,1,2"),
        ("\n", "|", b"QXZ|84.5|1\n\nAB|1|2\n"),
        ("||", "::", b"QXZ::84.5::1||AB::1::2||"),
    ];
    for (rows_d, fields_d, record) in cases {
        let format = csv(rows_d, fields_d, &cols);
        let (batch, errors) = decode(&format, &[record]);
        assert_eq!(errors, vec![], "{rows_d:?} {fields_d:?}");
        assert_eq!(
            rows(&batch),
            vec![strings(&["QXZ", "84.5", "1"]), strings(&["AB", "1", "2"])]
        );
    }
}

#[test]
fn csv_fields_by_position() {
    let format = csv(
        "\n",
        ",",
        &[
            ("T", "VARCHAR(4)"),
            ("S", "VARCHAR(4)"),
            ("N", "INTEGER"),
            ("B", "BOOLEAN"),
        ],
    );
    let record = b"TOOLONG,x,1,TRUE,extra,more\nA,,,\nB\n\"q\",\" 2 \"\n\n,,,\nC,d,x,true";
    let (batch, errors) = decode(&format, &[record]);
    assert_eq!(
        rows(&batch),
        vec![
            strings(&["TOOL", "x", "1", "true"]),
            // Empty: NULL for other types, empty text for text.
            strings(&["A", "", "NULL", "NULL"]),
            // Missing trailing fields are NULL.
            strings(&["B", "NULL", "NULL", "NULL"]),
            // No quoting: quotes are part of the value.
            strings(&["\"q\"", "\" 2 ", "NULL", "NULL"]),
            strings(&["", "", "NULL", "NULL"]),
        ]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Coercion);
    assert_eq!(
        errors[0].message,
        r#"Cannot coerce "x" to INTEGER for column "N""#
    );
    assert_eq!(errors[0].data, b"C,d,x,true");
}

#[test]
fn csv_coercion_follows_the_string_row() {
    let cases = [
        ("42", "BIGINT", Ok("42")),
        ("4.5", "REAL", Ok("4.5")),
        ("12.50", "DECIMAL(4,2)", Ok("12.50")),
        ("yes", "BOOLEAN", Ok("false")),
        ("1992-02-14", "DATE", Ok("8079")),
        ("X'0A'", "VARBINARY(2)", Ok("X'0A'")),
        (
            "abc",
            "DOUBLE",
            Err(r#"Cannot coerce "abc" to DOUBLE for column "C""#),
        ),
        (
            "2015-02-30",
            "DATE",
            Err(r#"Cannot coerce "2015-02-30" to DATE for column "C""#),
        ),
    ];
    for (field, ty, want) in cases {
        let format = csv("\n", ",", &[("C", ty)]);
        let (batch, errors) = decode(&format, &[field.as_bytes()]);
        match want {
            Ok(c) => {
                assert_eq!(errors, vec![], "{field} {ty}");
                assert_eq!(rows(&batch), vec![strings(&[c])], "{field} {ty}");
            }
            Err(m) => {
                assert_eq!(batch.num_rows(), 0);
                assert_eq!(
                    errors
                        .iter()
                        .map(|e| e.message.as_str())
                        .collect::<Vec<_>>(),
                    [m]
                );
            }
        }
    }
    let format = csv("\n", ",", &[("C", "VARCHAR(4)")]);
    let (_, errors) = decode(&format, &[b"ok\n\xff"]);
    assert_eq!(errors[0].kind, ErrorKind::Parse);
    assert_eq!(errors[0].message, "Record is not valid UTF-8 (at byte 3)");
}

#[test]
fn finish_resets_for_the_next_batch() {
    let format = json(
        "$",
        &[("A", "INTEGER", "$.a"), ("D", "DECIMAL(4,1)", "$.d")],
    );
    let mut d = Decoder::new(format.clone());
    assert_eq!(d.push(br#"{"a":1,"d":1.5}"#, 10, 9), 1);
    assert_eq!(d.push(br#"{"a":"x"}"#, 11, 9), 0);
    let (first, errors) = d.finish();
    assert_eq!(rows(&first), vec![strings(&["1", "1.5"])]);
    assert_eq!(errors.len(), 1);
    assert_eq!(d.row_count(), 0);
    assert_eq!(d.push(br#"{"a":2,"d":"2"}"#, 12, 9), 1);
    assert_eq!(d.push(br#"{"a":3}"#, 13, 9), 1);
    let (second, errors) = d.finish();
    assert_eq!(errors, vec![]);
    assert_eq!(
        rows(&second),
        vec![strings(&["2", "2.0"]), strings(&["3", "NULL"])]
    );
    assert_eq!(second.column(1).data_type(), &DataType::Decimal128(4, 1));
    let rowtime = second.column(2).as_primitive::<TimestampMillisecondType>();
    assert_eq!(rowtime.values().to_vec(), vec![12, 13]);
    let (empty, errors) = d.finish();
    assert_eq!((empty.num_rows(), errors.len()), (0, 0));
}

#[test]
fn compile_refuses_with_the_column_and_path() {
    let cols = |mapping: &str| columns(&[("A", "INTEGER", "$.a"), ("B", "INTEGER", mapping)]);
    let json_format = Format::Json {
        row_path: "$".into(),
    };
    let cases = [
        (
            json_format.clone(),
            cols("$.b[*]"),
            r#"column "B": Mapping "$.b[*]" is not served: wildcards"#,
        ),
        (json_format.clone(), cols("$.b[-1]"), "negative indexes"),
        (json_format.clone(), cols("$.b[?(@.x)]"), "filters"),
        (
            json_format.clone(),
            cols(""),
            r#"column "B" needs a Mapping"#,
        ),
        (
            Format::Json {
                row_path: "$.x".into(),
            },
            cols("$.b"),
            r#"RecordRowPath "$.x" is not served"#,
        ),
        (
            json_format.clone(),
            columns(&[("ROWTIME", "INTEGER", "$.a")]),
            "system column",
        ),
        (
            json_format.clone(),
            columns(&[("A", "INTEGER", "$.a"), ("A", "INTEGER", "$.b")]),
            "appears twice",
        ),
        (json_format, vec![], "at least one column"),
        (
            Format::Csv {
                row_delimiter: "".into(),
                column_delimiter: ",".into(),
            },
            cols("$.b"),
            "must not be empty",
        ),
        (
            Format::Csv {
                row_delimiter: ",".into(),
                column_delimiter: ",".into(),
            },
            cols("$.b"),
            "must differ",
        ),
    ];
    for (format, columns, why) in cases {
        let err = InputFormat::new(format, columns).expect_err(why);
        assert!(err.contains(why), "{err} lacks {why}");
    }
}

#[test]
fn compile_reads_the_api_input_schema() {
    let parse =
        |v: serde_json::Value| -> SourceSchema { serde_json::from_value(v).expect("API shape") };
    let demo = parse(serde_json::json!({
        "RecordFormat": {"RecordFormatType": "JSON", "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
        "RecordEncoding": "UTF-8",
        "RecordColumns": [
            {"Name": "TICKER_SYMBOL", "SqlType": "VARCHAR(4)", "Mapping": "$.TICKER_SYMBOL"},
            {"Name": "PRICE", "SqlType": "REAL", "Mapping": "$.PRICE"}
        ]
    }));
    let format = InputFormat::compile(&demo).expect("the demo schema compiles");
    assert_eq!(
        format.format(),
        &Format::Json {
            row_path: "$".into()
        }
    );
    assert_eq!(format.columns()[0].ty, SqlType::Varchar { len: 4 });
    let csv_schema = parse(serde_json::json!({
        "RecordFormat": {"RecordFormatType": "CSV", "MappingParameters": {"CSVMappingParameters": {"RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}},
        "RecordColumns": [{"Name": "A", "SqlType": "INTEGER"}]
    }));
    let format = Arc::new(InputFormat::compile(&csv_schema).expect("CSV compiles"));
    let (batch, _) = decode(&format, &[b"7\n8"]);
    assert_eq!(rows(&batch), vec![strings(&["7"]), strings(&["8"])]);
    let bad_type = parse(serde_json::json!({
        "RecordFormat": {"RecordFormatType": "CSV", "MappingParameters": {"CSVMappingParameters": {"RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}},
        "RecordColumns": [{"Name": "A", "SqlType": "TEXT"}]
    }));
    assert!(
        InputFormat::compile(&bad_type)
            .expect_err("TEXT")
            .contains("column \"A\"")
    );
}

fn fuzz_formats() -> Vec<Arc<InputFormat>> {
    let cols = [
        ("A", "INTEGER", "$.a"),
        ("B", "VARCHAR(4)", "$.b.c"),
        ("C", "DECIMAL(5,2)", "$.arr[0:].x"),
        ("D", "VARCHAR(8)", "$.arr[0:]"),
        ("E", "TIMESTAMP", "$['k.k']"),
        ("F", "VARBINARY(2)", "$.f"),
        ("G", "BOOLEAN", "$.g"),
    ];
    vec![
        json("$", &cols),
        json("$.rows[0:]", &cols),
        csv(
            "\n",
            ",",
            &[
                ("A", "INTEGER"),
                ("B", "VARCHAR(2)"),
                ("C", "TIMESTAMP"),
                ("D", "DECIMAL(3,1)"),
            ],
        ),
        csv("\r\n", "::", &[("A", "VARCHAR(2)"), ("B", "DOUBLE")]),
    ]
}

/// Pushes `record` through every format, checking only that the decoder
/// keeps its counts straight (and, by returning, that it did not panic).
fn survive(formats: &[Arc<InputFormat>], decoders: &mut [Decoder], record: &[u8], seed: u64) {
    for (f, d) in formats.iter().zip(decoders.iter_mut()) {
        let before = d.row_count();
        let added = d.push(record, 1, 1);
        assert_eq!(d.row_count(), before + added, "seed {seed}");
        if d.row_count() > 10_000 {
            let (batch, _) = d.finish();
            assert_eq!(batch.schema(), schema_of(f));
        }
    }
}

#[test]
fn never_panics_on_random_bytes() {
    for seed in seeds(&[0x5EED_0001]) {
        println!("RIFFLE_SEED={seed}");
        random_bytes(seed);
    }
}

fn random_bytes(seed: u64) {
    let mut rng = Rng::new(seed);
    let formats = fuzz_formats();
    let mut decoders: Vec<_> = formats.iter().map(|f| Decoder::new(f.clone())).collect();
    let alphabet = b"{}[]:,\"\\.0123456789-+eEtrufalsn xX'abck\n\r:u\xc3\xa9\xff";
    let mut record = Vec::new();
    for _ in 0..20_000 {
        record.clear();
        let len = rng.below(80);
        let raw = rng.below(4) == 0;
        for _ in 0..len {
            let b = if raw {
                rng.next_u64() as u8
            } else {
                alphabet[rng.below(alphabet.len())]
            };
            record.push(b);
        }
        survive(&formats, &mut decoders, &record, seed);
    }
    for d in &mut decoders {
        let (batch, errors) = d.finish();
        assert!(batch.num_rows() + errors.len() > 0);
    }
}

#[test]
fn never_panics_on_truncated_or_deep_records() {
    let formats = fuzz_formats();
    let mut decoders: Vec<_> = formats.iter().map(|f| Decoder::new(f.clone())).collect();
    let valid = r#"{"rows":[{"a":1,"b":{"c":"héllo\u00e9\"x"},"arr":[{"x":1.25},{"x":"2"},[]],"k.k":"1992-02-14T18:35:44.5","f":"X'0102'","g":true}],"a":-7,"b":{"c":null},"arr":[],"f":true}"#;
    for cut in 0..=valid.len() {
        survive(
            &formats,
            &mut decoders,
            &valid.as_bytes()[..cut],
            cut as u64,
        );
    }
    let csv_record = "1,ab,1992-02-14 00:00:00,12.5\r\nx::1.5\r\n";
    for cut in 0..=csv_record.len() {
        survive(
            &formats,
            &mut decoders,
            &csv_record.as_bytes()[..cut],
            cut as u64,
        );
    }
    for depth in [127usize, 128, 129, 10_000] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}"), (r#"{"arr":[{"x":"#, "}]}")] {
            let record = open.repeat(depth) + "1" + &close.repeat(depth);
            survive(&formats, &mut decoders, record.as_bytes(), depth as u64);
        }
    }
    let (batch, errors) = decoders[0].finish();
    // The whole valid record decoded once (its `arr` is empty: one row).
    assert!(batch.num_rows() >= 1);
    assert!(errors.iter().any(|e| e.message.contains("deeper than 128")));
}

/// Throughput on Nexmark-like bids; prints records/s, asserts only results.
#[test]
fn bid_throughput() {
    let format = json(
        "$",
        &[
            ("AUCTION", "BIGINT", "$.auction"),
            ("BIDDER", "BIGINT", "$.bidder"),
            ("PRICE", "BIGINT", "$.price"),
            ("CHANNEL", "VARCHAR(16)", "$.channel"),
            ("URL", "VARCHAR(128)", "$.url"),
            ("DATE_TIME", "TIMESTAMP", "$.dateTime"),
            ("EXTRA", "VARCHAR(64)", "$.extra"),
        ],
    );
    let count = 200_000;
    let records: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"channel":"channel-{}","url":"https://www.nexmark.com/item.htm?query=1&channel_id={}","dateTime":"2015-07-15 00:00:{:02}.{:03}","extra":""}}"#,
                1000 + i % 997,
                2000 + i % 7919,
                100 + i % 10_000,
                i % 10_000,
                i % 5,
                i % 60,
                i % 1000
            )
        })
        .collect();
    let bytes: usize = records.iter().map(String::len).sum();
    let mut d = Decoder::new(format);
    let started = std::time::Instant::now();
    let mut rows = 0;
    let mut errors = 0;
    for chunk in records.chunks(10_000) {
        for r in chunk {
            d.push(r.as_bytes(), 0, 0);
        }
        let (batch, errs) = d.finish();
        rows += batch.num_rows();
        errors += errs.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "decode: {count} bids of {} bytes on average: {:.0} records/s, {:.0} MB/s",
        bytes / count,
        count as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    assert_eq!((rows, errors), (count, 0));
}

#[test]
fn each_row_keeps_its_place_in_its_record_failed_rows_counted() {
    let f = csv("\n", ",", &[("N", "INTEGER")]);
    let mut d = Decoder::new(f);
    assert_eq!(d.push(b"x\n1\ny\n2\n", 0, 0), 2);
    assert_eq!(d.push(b"3\n", 0, 0), 1);
    assert_eq!(d.slots(), [1, 3, 0]);
    let (batch, errors) = d.finish();
    assert_eq!((batch.num_rows(), errors.len()), (3, 2));
    assert!(d.slots().is_empty());
    // A preprocessor's answer of several JSON documents: one record, its
    // rows' places running on across the documents.
    let j = json("$", &[("N", "INTEGER", "$.N")]);
    let mut d = Decoder::new(j);
    let added = d.push_documents(b"{\"N\":1} {\"N\":\"a\"}\n{\"N\":3} nope", 0, 0);
    assert_eq!(added, 2);
    assert_eq!(d.slots(), [0, 2]);
    let (batch, errors) = d.finish();
    assert_eq!(
        rows(&batch)[..]
            .iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>(),
        ["1", "3"]
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
}
