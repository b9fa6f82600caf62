//! Tests of encode.rs: records in JSON and CSV, value text, error rows.

use super::*;
use crate::decode::ErrorKind;
use crate::expr::eval::format_time;

/// A stream batch of `columns` (name, SQL type, values) and a ROWTIME.
fn stream(columns: Vec<(&str, SqlType, ArrayRef)>) -> RecordBatch {
    let rows = columns.first().map_or(0, |c| c.2.len());
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|(name, ty, _)| Field::new(*name, ty.arrow(), true))
        .collect();
    fields.push(Field::new(ROWTIME, SqlType::Timestamp.arrow(), false));
    let mut arrays: Vec<ArrayRef> = columns.into_iter().map(|c| c.2).collect();
    arrays.push(Arc::new(TimestampMillisecondArray::from_iter_values(
        (0..rows as i64).map(|r| 1_000 + r),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("a valid batch")
}

fn texts(records: &[Vec<u8>]) -> Vec<&str> {
    records
        .iter()
        .map(|r| std::str::from_utf8(r).expect("UTF-8"))
        .collect()
}

/// The records of `batch` in JSON and in CSV are exactly these (and the
/// JSON ones are JSON objects).
fn check(batch: &RecordBatch, json: &[&str], csv: &[&str]) {
    let records = encode_rows(batch, RecordFormat::Json);
    assert_eq!(texts(&records), json);
    for record in &records {
        let read: serde_json::Value = serde_json::from_slice(record).expect("valid JSON");
        assert!(read.is_object());
    }
    assert_eq!(texts(&encode_rows(batch, RecordFormat::Csv)), csv);
}

fn decimal(values: Vec<Option<i128>>, precision: u8, scale: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values)
            .with_precision_and_scale(precision, scale)
            .expect("a valid decimal type"),
    )
}

#[test]
fn floats_read_back_exactly_and_are_displays_text_but_for_ties() {
    let mut rng = riffle_store::testkit::Rng::new(0x5eed_f10a7);
    // Display's text, but for ties at 16 or more significant digits
    // (7 for REAL), where both read back as the value.
    fn check<F>(f: F)
    where
        F: ryu::Float + fmt::Display + std::str::FromStr + PartialEq + fmt::LowerExp,
        <F as std::str::FromStr>::Err: fmt::Debug,
    {
        let mut out = String::new();
        push_float(&mut out, f);
        let display = f.to_string();
        let digits = out.trim_start_matches(['-', '0', '.']).replace('.', "");
        if out != display {
            // Ties need digits finer than the float's precision.
            let fine = if std::mem::size_of::<F>() == 8 { 16 } else { 7 };
            assert!(digits.len() >= fine, "{f:e}: {out} against {display}");
            assert_eq!(out.len(), display.len(), "{f:e}");
        }
        assert!(!out.contains('e'), "{f:e}: {out}");
        assert!(out.parse::<F>().unwrap() == f, "{f:e}: {out}");
    }
    let check64 = |f: f64| {
        if f.is_finite() {
            check(f)
        }
    };
    for f in [
        0.0, -0.0, 1.0, 0.1, 0.908, 1e15, 1e16, 1e17, 1e20, 1e-5, 1e-7, 123.456,
    ] {
        check64(f);
        check64(-f);
    }
    for _ in 0..50_000 {
        // Any bits, and prices as q1 makes them.
        check64(f64::from_bits(rng.next_u64()));
        check64(0.908 * (rng.next_u64() % 100_000_000) as f64);
    }
    for _ in 0..50_000 {
        let f = f32::from_bits(rng.next_u64() as u32);
        if f.is_finite() {
            check(f);
        }
    }
}

#[test]
fn times_of_alternating_days_are_written_each_with_its_own_date() {
    // The last day's text is kept: days that alternate, and days out of
    // four-digit years, must each get theirs.
    let day = 86_400_000i64;
    let times = [
        0,
        day + 3_723_004,
        1,
        -1,
        day + 86_399_999,
        253_402_300_800_000,
        day,
        -62_135_596_800_001,
    ];
    let batch = stream(vec![(
        "T",
        SqlType::Timestamp,
        Arc::new(TimestampMillisecondArray::from_iter_values(times)) as ArrayRef,
    )]);
    assert_eq!(
        texts(&encode_rows(&batch, RecordFormat::Csv)),
        vec![
            "1970-01-01 00:00:00.000\n",
            "1970-01-02 01:02:03.004\n",
            "1970-01-01 00:00:00.001\n",
            "1969-12-31 23:59:59.999\n",
            "1970-01-02 23:59:59.999\n",
            "10000-01-01 00:00:00.000\n",
            "1970-01-02 00:00:00.000\n",
            "0000-12-31 23:59:59.999\n",
        ]
    );
}

#[test]
fn record_format_types_are_the_models_names() {
    assert_eq!(RecordFormat::of("JSON"), Some(RecordFormat::Json));
    assert_eq!(RecordFormat::of("CSV"), Some(RecordFormat::Csv));
    assert_eq!(RecordFormat::of("json"), None);
    assert_eq!(RecordFormat::of("PARQUET"), None);
}

#[test]
fn every_type_in_json_and_csv_with_nulls() {
    let batch = stream(vec![
        (
            "B",
            SqlType::Boolean,
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        (
            "T8",
            SqlType::TinyInt,
            Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(7), None])),
        ),
        (
            "S16",
            SqlType::SmallInt,
            Arc::new(Int16Array::from(vec![Some(i16::MAX), Some(-7), None])),
        ),
        (
            "I32",
            SqlType::Integer,
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(0), None])),
        ),
        (
            "B64",
            SqlType::BigInt,
            Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        ),
        (
            "R",
            SqlType::Real,
            Arc::new(Float32Array::from(vec![Some(0.1), Some(1e20), None])),
        ),
        (
            "D",
            SqlType::Double,
            Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(-2.5), None])),
        ),
        (
            "N",
            SqlType::Decimal {
                precision: 5,
                scale: 2,
            },
            decimal(vec![Some(500), Some(-5), None], 5, 2),
        ),
        (
            "V",
            SqlType::Varchar { len: 20 },
            Arc::new(StringArray::from(vec![Some("plain"), Some(""), None])),
        ),
        (
            "TS",
            SqlType::Timestamp,
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_700_000_000_123),
                Some(-1),
                None,
            ])),
        ),
        (
            "DT",
            SqlType::Date,
            Arc::new(Date32Array::from(vec![Some(0), Some(-1), None])),
        ),
        (
            "TM",
            SqlType::Time,
            Arc::new(Time32MillisecondArray::from(vec![
                Some(0),
                Some(86_399_999),
                None,
            ])),
        ),
        (
            "BIN",
            SqlType::Varbinary { len: 4 },
            Arc::new(BinaryArray::from(vec![
                Some(&[0xde_u8, 0x0f, 0x00][..]),
                Some(&[][..]),
                None,
            ])),
        ),
    ]);
    check(
        &batch,
        &[
            concat!(
                r#"{"B":true,"T8":-128,"S16":32767,"I32":-2147483648,"#,
                r#""B64":-9223372036854775808,"R":0.1,"D":0.30000000000000004,"#,
                r#""N":5.00,"V":"plain","TS":"2023-11-14 22:13:20.123","#,
                r#""DT":"1970-01-01","TM":"00:00:00.000","BIN":"de0f00"}"#
            ),
            concat!(
                r#"{"B":false,"T8":7,"S16":-7,"I32":0,"#,
                r#""B64":9223372036854775807,"R":100000000000000000000,"D":-2.5,"#,
                r#""N":-0.05,"V":"","TS":"1969-12-31 23:59:59.999","#,
                r#""DT":"1969-12-31","TM":"23:59:59.999","BIN":""}"#
            ),
            concat!(
                r#"{"B":null,"T8":null,"S16":null,"I32":null,"B64":null,"R":null,"#,
                r#""D":null,"N":null,"V":null,"TS":null,"DT":null,"TM":null,"BIN":null}"#
            ),
        ],
        &[
            "true,-128,32767,-2147483648,-9223372036854775808,0.1,0.30000000000000004,\
             5.00,plain,2023-11-14 22:13:20.123,1970-01-01,00:00:00.000,de0f00\n",
            "false,7,-7,0,9223372036854775807,100000000000000000000,-2.5,\
             -0.05,,1969-12-31 23:59:59.999,1969-12-31,23:59:59.999,\n",
            ",,,,,,,,,,,,\n",
        ],
    );
}

#[test]
fn reals_are_written_shortest_for_their_width_and_non_finite_as_null() {
    let reals = [
        0.1_f32,
        1e20,
        1e-7,
        3.4028235e38,
        1.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
    ];
    let doubles = [
        0.1_f64,
        1e20,
        1e-7,
        1.0 / 3.0,
        1.0,
        -0.0,
        f64::NAN,
        f64::NEG_INFINITY,
    ];
    let batch = stream(vec![
        (
            "R",
            SqlType::Real,
            Arc::new(Float32Array::from(reals.to_vec())),
        ),
        (
            "D",
            SqlType::Double,
            Arc::new(Float64Array::from(doubles.to_vec())),
        ),
    ]);
    check(
        &batch,
        &[
            r#"{"R":0.1,"D":0.1}"#,
            r#"{"R":100000000000000000000,"D":100000000000000000000}"#,
            r#"{"R":0.0000001,"D":0.0000001}"#,
            r#"{"R":340282350000000000000000000000000000000,"D":0.3333333333333333}"#,
            r#"{"R":1,"D":1}"#,
            r#"{"R":-0,"D":-0}"#,
            r#"{"R":null,"D":null}"#,
            r#"{"R":null,"D":null}"#,
        ],
        &[
            "0.1,0.1\n",
            "100000000000000000000,100000000000000000000\n",
            "0.0000001,0.0000001\n",
            "340282350000000000000000000000000000000,0.3333333333333333\n",
            "1,1\n",
            "-0,-0\n",
            ",\n",
            ",\n",
        ],
    );
}

#[test]
fn decimals_are_their_exact_digits_as_arrow_writes_them() {
    let values = [
        500_i128,
        -5,
        0,
        -1,
        12_345,
        -12_345,
        99_999_999_999_999_999,
        i128::MAX,
        i128::MIN,
    ];
    for scale in [0_i8, 1, 2, 5, 38] {
        let array = Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(38, scale)
            .expect("a valid decimal type");
        for (row, &v) in values.iter().enumerate() {
            let mut out = String::new();
            push_decimal(&mut out, v, scale);
            assert_eq!(out, array.value_as_string(row), "{v} at scale {scale}");
        }
    }
    let batch = stream(vec![(
        "P",
        SqlType::Decimal {
            precision: 10,
            scale: 4,
        },
        decimal(vec![Some(1), Some(-123_456_789)], 10, 4),
    )]);
    check(
        &batch,
        &[r#"{"P":0.0001}"#, r#"{"P":-12345.6789}"#],
        &["0.0001\n", "-12345.6789\n"],
    );
}

#[test]
fn text_is_escaped_in_json_and_quoted_in_csv_only_when_needed() {
    let values = [
        r#"say "hi""#,
        r"back\slash",
        "tab\tnew\nline\rret",
        "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
        "é€😀 \u{2028}",
        "a,b",
        "plain text; no quotes",
        "\"",
    ];
    let batch = stream(vec![(
        "X",
        SqlType::Varchar { len: 100 },
        Arc::new(StringArray::from(values.to_vec())),
    )]);
    check(
        &batch,
        &[
            r#"{"X":"say \"hi\""}"#,
            r#"{"X":"back\\slash"}"#,
            r#"{"X":"tab\tnew\nline\rret"}"#,
            "{\"X\":\"\\u0000\\u0001\\b\\f\\u001f\u{7f}\"}",
            "{\"X\":\"é€😀 \u{2028}\"}",
            r#"{"X":"a,b"}"#,
            r#"{"X":"plain text; no quotes"}"#,
            r#"{"X":"\""}"#,
        ],
        &[
            "\"say \"\"hi\"\"\"\n",
            "back\\slash\n",
            "\"tab\tnew\nline\rret\"\n",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}\n",
            "é€😀 \u{2028}\n",
            "\"a,b\"\n",
            "plain text; no quotes\n",
            "\"\"\"\"\n",
        ],
    );
    // Every JSON record reads back as the text it was made from.
    for (record, value) in encode_rows(&batch, RecordFormat::Json).iter().zip(values) {
        let read: serde_json::Value = serde_json::from_slice(record).expect("valid JSON");
        assert_eq!(read["X"], value);
    }
}

#[test]
fn keys_are_the_declared_names_in_order_escaped() {
    let batch = stream(vec![
        (
            "zeta",
            SqlType::Integer,
            Arc::new(Int32Array::from(vec![1])),
        ),
        (
            "Mixed \"Case\"",
            SqlType::Integer,
            Arc::new(Int32Array::from(vec![2])),
        ),
        (
            "ALPHA",
            SqlType::Integer,
            Arc::new(Int32Array::from(vec![3])),
        ),
    ]);
    check(
        &batch,
        &[r#"{"zeta":1,"Mixed \"Case\"":2,"ALPHA":3}"#],
        &["1,2,3\n"],
    );
}

#[test]
fn rowtime_is_not_written_wherever_it_is() {
    // A stream's batch: ROWTIME last (`stream` adds it).
    let batch = stream(vec![(
        "A",
        SqlType::Integer,
        Arc::new(Int32Array::from(vec![1])),
    )]);
    assert_eq!(batch.num_columns(), 2);
    check(&batch, &[r#"{"A":1}"#], &["1\n"]);
    // An input stream's batch: ROWTIME, then APPROXIMATE_ARRIVAL_TIME.
    let ts = || Field::new(ROWTIME, SqlType::Timestamp.arrow(), false);
    let schema = Schema::new(vec![
        Field::new("A", DataType::Int32, true),
        ts(),
        Field::new(
            "APPROXIMATE_ARRIVAL_TIME",
            SqlType::Timestamp.arrow(),
            false,
        ),
    ]);
    let time: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0]));
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int32Array::from(vec![1])), time.clone(), time],
    )
    .expect("a valid batch");
    check(
        &batch,
        &[r#"{"A":1,"APPROXIMATE_ARRIVAL_TIME":"1970-01-01 00:00:00.000"}"#],
        &["1,1970-01-01 00:00:00.000\n"],
    );
}

#[test]
fn an_empty_batch_gives_no_records() {
    let batch = stream(vec![(
        "A",
        SqlType::Integer,
        Arc::new(Int32Array::from(Vec::<i32>::new())),
    )]);
    check(&batch, &[], &[]);
    check(&error_batch(&[]), &[], &[]);
}

#[test]
fn times_are_written_as_format_time_does() {
    let cases = [
        0_i64,
        -1,
        -86_400_000,
        -62_135_596_800_000, // 0001-01-01
        951_782_400_000,     // 2000-02-29
        253_402_300_799_999, // 9999-12-31 23:59:59.999
        1_700_000_000_123,
    ];
    for ms in cases {
        let mut out = String::new();
        push_timestamp(&mut out, ms);
        assert_eq!(out, format_time(ms), "{ms}");
    }
    let mut out = String::new();
    push_timestamp(&mut out, -62_135_596_800_000);
    assert_eq!(out, "0001-01-01 00:00:00.000");
    // Beyond year 9999 the year grows, the rest stays in place.
    let mut out = String::new();
    push_timestamp(&mut out, 253_402_300_800_000);
    assert_eq!(out, "10000-01-01 00:00:00.000");
}

fn decode_error(message: &str, data: &[u8]) -> DecodeError {
    DecodeError {
        kind: ErrorKind::Coercion,
        message: message.to_string(),
        data: data.to_vec(),
        rowtime_ms: 1_000,
    }
}

fn pump_error(pump: &str, row: &str) -> PumpError {
    PumpError {
        pump: pump.to_string(),
        name: "Division_by_zero",
        message: "division by zero".to_string(),
        rowtime_ms: 2_000,
        row: row.to_string(),
    }
}

#[test]
fn error_rows_of_decode_and_pump_errors() {
    let e = ErrorRow::of_decode(&decode_error("bad", b"{\"a\":1}"), 5_000);
    assert_eq!(
        e,
        ErrorRow {
            error_time_ms: 5_000,
            name: "Coercion_error",
            message: "bad".to_string(),
            data_rowtime_ms: 1_000,
            data_row: "7b2261223a317d".to_string(),
            pump: String::new(),
        }
    );
    let e = ErrorRow::of_pump(&pump_error("P1", r#"{"é":1}"#), 6_000);
    assert_eq!(
        e,
        ErrorRow {
            error_time_ms: 6_000,
            name: "Division_by_zero",
            message: "division by zero".to_string(),
            data_rowtime_ms: 2_000,
            data_row: "7b22c3a9223a317d".to_string(),
            pump: "P1".to_string(),
        }
    );
    let parse = DecodeError {
        kind: ErrorKind::Parse,
        ..decode_error("not JSON", b"\xff")
    };
    assert_eq!(ErrorRow::of_decode(&parse, 0).name, "Parse_error");
}

#[test]
fn error_batch_cuts_at_the_column_lengths_on_char_boundaries() {
    // 4095 ASCII then two multi-byte chars: the cut keeps one of them.
    let message = format!("{}é€", "m".repeat(MESSAGE_CHARS_MAX - 1));
    let decode = ErrorRow::of_decode(&decode_error(&message, &[0xab; ERROR_DATA_MAX]), 7_000);
    // A row longer than DATA_ROW holds: only its first bytes, as hex.
    let long_row = format!("{{\"A\":\"{}\"}}", "ü".repeat(20_000));
    let pump = ErrorRow::of_pump(&pump_error(&"ß".repeat(200), &long_row), 8_000);
    assert_eq!(pump.data_row.len(), DATA_ROW_CHARS_MAX);
    let named = ErrorRow {
        name: "Ärger_über_einen_sehr_langen_Fehlernamen",
        data_row: "x".repeat(DATA_ROW_CHARS_MAX + 1),
        ..pump.clone()
    };
    let batch = error_batch(&[decode, pump, named]);
    assert_eq!(batch.schema(), error_stream_schema());
    let column = |name: &str| -> Vec<String> {
        let c = batch.column_by_name(name).expect("a column");
        match c.data_type() {
            DataType::Utf8 => c
                .as_string::<i32>()
                .iter()
                .map(|s| s.expect("no NULL").to_string())
                .collect(),
            _ => c
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .map(|v| v.to_string())
                .collect(),
        }
    };
    assert_eq!(column("ERROR_TIME"), ["7000", "8000", "8000"]);
    assert_eq!(column("ROWTIME"), ["7000", "8000", "8000"]);
    assert_eq!(column("DATA_ROWTIME"), ["1000", "2000", "2000"]);
    assert_eq!(column("ERROR_LEVEL"), ["ERROR"; 3]);
    assert_eq!(
        column("ERROR_NAME"),
        [
            "Coercion_error",
            "Division_by_zero",
            "Ärger_über_einen_sehr_langen_Feh"
        ]
    );
    let messages = column("MESSAGE");
    assert_eq!(
        messages[0],
        format!("{}é", "m".repeat(MESSAGE_CHARS_MAX - 1))
    );
    assert_eq!(messages[0].chars().count(), MESSAGE_CHARS_MAX);
    let data = column("DATA_ROW");
    assert_eq!(data[0], "ab".repeat(ERROR_DATA_MAX));
    let row_hex = hex(long_row.as_bytes());
    assert_eq!(data[1], row_hex[..DATA_ROW_CHARS_MAX]);
    assert_eq!(data[2], "x".repeat(DATA_ROW_CHARS_MAX));
    assert_eq!(
        column("PUMP_NAME"),
        [
            String::new(),
            "ß".repeat(PUMP_NAME_CHARS_MAX),
            "ß".repeat(PUMP_NAME_CHARS_MAX)
        ]
    );
}

#[test]
fn error_stream_schema_is_the_documented_columns() {
    let schema = error_stream_schema();
    let described: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = f.metadata().get(SQL_TYPE_METADATA).expect("a SQL type");
            format!("{} {ty}", f.name())
        })
        .collect();
    assert_eq!(
        described,
        [
            "ERROR_TIME TIMESTAMP",
            "ERROR_LEVEL VARCHAR(10)",
            "ERROR_NAME VARCHAR(32)",
            "MESSAGE VARCHAR(4096)",
            "DATA_ROWTIME TIMESTAMP",
            "DATA_ROW VARCHAR(49152)",
            "PUMP_NAME VARCHAR(128)",
            "ROWTIME TIMESTAMP",
        ]
    );
}

#[test]
fn an_output_named_error_stream_sends_its_rows_as_json() {
    let rows = [
        ErrorRow::of_decode(
            &DecodeError {
                kind: ErrorKind::Parse,
                message: "not JSON: \"x".to_string(),
                data: b"x\n".to_vec(),
                rowtime_ms: -1,
            },
            1_700_000_000_000,
        ),
        ErrorRow::of_pump(&pump_error("P", r#"{"A":0}"#), 1_700_000_000_001),
    ];
    check(
        &error_batch(&rows),
        &[
            concat!(
                r#"{"ERROR_TIME":"2023-11-14 22:13:20.000","ERROR_LEVEL":"ERROR","#,
                r#""ERROR_NAME":"Parse_error","MESSAGE":"not JSON: \"x","#,
                r#""DATA_ROWTIME":"1969-12-31 23:59:59.999","DATA_ROW":"780a","#,
                r#""PUMP_NAME":""}"#
            ),
            concat!(
                r#"{"ERROR_TIME":"2023-11-14 22:13:20.001","ERROR_LEVEL":"ERROR","#,
                r#""ERROR_NAME":"Division_by_zero","MESSAGE":"division by zero","#,
                r#""DATA_ROWTIME":"1970-01-01 00:00:02.000","DATA_ROW":"7b2241223a307d","#,
                r#""PUMP_NAME":"P"}"#
            ),
        ],
        &[
            "2023-11-14 22:13:20.000,ERROR,Parse_error,\"not JSON: \"\"x\",\
             1969-12-31 23:59:59.999,780a,\n",
            "2023-11-14 22:13:20.001,ERROR,Division_by_zero,division by zero,\
             1970-01-01 00:00:02.000,7b2241223a307d,P\n",
        ],
    );
}
