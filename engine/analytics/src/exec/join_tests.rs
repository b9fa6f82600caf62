//! The reference join's cases: E8's rows (LEFT and INNER), a key with two
//! table rows, NULL keys, narrow table keys (INTEGER, REAL, DECIMAL)
//! against evaluated keys, integers against doubles, two keys, and empty
//! tables and batches. Values are read back out of the output arrays.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema};

use super::{JoinKind, RefTable, join};

fn batch(fields: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Schema::new(
        fields
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let columns = fields.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(schema), columns).expect("test batch")
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// A cell as text: `NULL`, or the value as Rust prints it.
fn cell(b: &RecordBatch, col: usize, row: usize) -> String {
    let a = b.column(col);
    if a.is_null(row) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Float32 => a
            .as_primitive::<arrow_array::types::Float32Type>()
            .value(row)
            .to_string(),
        other => format!("{other}?"),
    }
}

fn rows(b: &RecordBatch) -> Vec<Vec<String>> {
    (0..b.num_rows())
        .map(|r| (0..b.num_columns()).map(|c| cell(b, c, r)).collect())
        .collect()
}

fn strings(row: &[&str]) -> Vec<String> {
    row.iter().map(|s| s.to_string()).collect()
}

/// E8's stream: four tickers, two of them in the company table.
fn e8_stream() -> RecordBatch {
    batch(vec![
        (
            "TICKER_SYMBOL",
            texts(&[Some("AMZN"), Some("QXZ"), Some("ASD"), Some("WSB")]),
        ),
        (
            "PRICE",
            Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5, 4.5])),
        ),
    ])
}

/// E8's reference table (`Ticker`, `Company`).
fn e8_table() -> RefTable {
    let t = batch(vec![
        ("Ticker", texts(&[Some("AMZN"), Some("ASD"), Some("MMB")])),
        (
            "Company",
            texts(&[Some("Amazon"), Some("SomeCompanyA"), Some("SomeCompanyB")]),
        ),
    ]);
    RefTable::build(t, vec![0])
}

#[test]
fn e8_left_join_keeps_every_stream_row() {
    let table = e8_table();
    assert_eq!(table.rows(), 3);
    let stream = e8_stream();
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(
        rows(&out),
        vec![
            strings(&["AMZN", "1.5", "AMZN", "Amazon"]),
            strings(&["QXZ", "2.5", "NULL", "NULL"]),
            strings(&["ASD", "3.5", "ASD", "SomeCompanyA"]),
            strings(&["WSB", "4.5", "NULL", "NULL"]),
        ]
    );
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        names,
        [
            ("TICKER_SYMBOL".to_string(), true),
            ("PRICE".to_string(), true),
            ("Ticker".to_string(), true),
            ("Company".to_string(), true),
        ]
    );
}

#[test]
fn e8_inner_join_keeps_matched_rows() {
    let stream = e8_stream();
    let keys = [stream.column(0).clone()];
    let out = join(&e8_table(), &stream, &keys, JoinKind::Inner);
    assert_eq!(
        rows(&out),
        vec![
            strings(&["AMZN", "1.5", "AMZN", "Amazon"]),
            strings(&["ASD", "3.5", "ASD", "SomeCompanyA"]),
        ]
    );
}

#[test]
fn a_key_of_two_table_rows_gives_two_rows_in_table_order() {
    let t = batch(vec![
        ("K", texts(&[Some("a"), Some("b"), Some("a")])),
        ("V", Arc::new(Int32Array::from(vec![1, 2, 3]))),
    ]);
    let table = RefTable::build(t, vec![0]);
    let stream = batch(vec![("S", texts(&[Some("a"), Some("c"), Some("b")]))]);
    let keys = [stream.column(0).clone()];
    let left = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(
        rows(&left),
        vec![
            strings(&["a", "a", "1"]),
            strings(&["a", "a", "3"]),
            strings(&["c", "NULL", "NULL"]),
            strings(&["b", "b", "2"]),
        ]
    );
    let inner = join(&table, &stream, &keys, JoinKind::Inner);
    assert_eq!(
        rows(&inner),
        vec![
            strings(&["a", "a", "1"]),
            strings(&["a", "a", "3"]),
            strings(&["b", "b", "2"]),
        ]
    );
}

#[test]
fn null_keys_never_match() {
    let t = batch(vec![
        ("K", texts(&[None, Some("x")])),
        ("V", texts(&[Some("null-row"), Some("x-row")])),
    ]);
    let table = RefTable::build(t, vec![0]);
    assert_eq!(table.rows(), 2);
    let stream = batch(vec![("S", texts(&[None, Some("x")]))]);
    let keys = [stream.column(0).clone()];
    assert_eq!(
        rows(&join(&table, &stream, &keys, JoinKind::Left)),
        vec![
            strings(&["NULL", "NULL", "NULL"]),
            strings(&["x", "x", "x-row"]),
        ]
    );
    assert_eq!(
        rows(&join(&table, &stream, &keys, JoinKind::Inner)),
        vec![strings(&["x", "x", "x-row"])]
    );
}

#[test]
fn bigint_keys_meet_an_integer_column() {
    let t = batch(vec![
        (
            "ID",
            Arc::new(Int32Array::from(vec![Some(7), Some(-1), None])),
        ),
        (
            "NAME",
            texts(&[Some("seven"), Some("minus one"), Some("none")]),
        ),
    ]);
    let table = RefTable::build(t, vec![0]);
    let stream = batch(vec![(
        "ID",
        Arc::new(Int64Array::from(vec![
            Some(-1),
            Some(7),
            Some(i64::from(i32::MAX) + 8),
            None,
        ])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    assert_eq!(
        rows(&join(&table, &stream, &keys, JoinKind::Left)),
        vec![
            strings(&["-1", "-1", "minus one"]),
            strings(&["7", "7", "seven"]),
            strings(&["2147483655", "NULL", "NULL"]),
            strings(&["NULL", "NULL", "NULL"]),
        ]
    );
}

#[test]
fn double_keys_meet_a_real_column_by_value() {
    let t = batch(vec![
        (
            "R",
            Arc::new(Float32Array::from(vec![1.5f32, 0.1, -0.0, f32::NAN])) as ArrayRef,
        ),
        (
            "N",
            texts(&[
                Some("one and a half"),
                Some("a tenth"),
                Some("zero"),
                Some("nan"),
            ]),
        ),
    ]);
    let table = RefTable::build(t, vec![0]);
    // 0.1f32 widened is 0.10000000149011612: the REAL's own value matches,
    // the DOUBLE 0.1 does not; 0.0 = -0.0; NaN equals nothing.
    let stream = batch(vec![(
        "K",
        Arc::new(Float64Array::from(vec![
            1.5,
            f64::from(0.1f32),
            0.1,
            0.0,
            f64::NAN,
        ])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    let names: Vec<String> = (0..out.num_rows()).map(|r| cell(&out, 2, r)).collect();
    assert_eq!(names, ["one and a half", "a tenth", "NULL", "zero", "NULL"]);
}

#[test]
fn integers_and_doubles_meet_by_value() {
    let ints = batch(vec![(
        "I",
        Arc::new(Int64Array::from(vec![2, 3])) as ArrayRef,
    )]);
    let table = RefTable::build(ints, vec![0]);
    let stream = batch(vec![(
        "F",
        Arc::new(Float64Array::from(vec![2.0, 2.5, 3.0, 1e300])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Inner);
    assert_eq!(rows(&out), vec![strings(&["2", "2"]), strings(&["3", "3"])]);

    let floats = batch(vec![(
        "F",
        Arc::new(Float64Array::from(vec![2.0, 2.5])) as ArrayRef,
    )]);
    let table = RefTable::build(floats, vec![0]);
    let stream = batch(vec![(
        "I",
        Arc::new(Int64Array::from(vec![2, 3])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(
        rows(&out),
        vec![strings(&["2", "2"]), strings(&["3", "NULL"])]
    );
}

#[test]
fn decimal_columns_meet_double_keys() {
    let d = Decimal128Array::from(vec![Some(1250), None])
        .with_precision_and_scale(6, 2)
        .expect("valid decimal");
    let t = batch(vec![
        ("D", Arc::new(d) as ArrayRef),
        ("N", texts(&[Some("12.50"), Some("none")])),
    ]);
    let table = RefTable::build(t, vec![0]);
    let stream = batch(vec![(
        "K",
        Arc::new(Float64Array::from(vec![12.5, 12.0])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Inner);
    assert_eq!(out.num_rows(), 1);
    assert_eq!(cell(&out, 2, 0), "12.50");
}

#[test]
fn two_keys_match_together_only() {
    let t = batch(vec![
        ("A", texts(&[Some("ab"), Some("a")])),
        ("B", texts(&[Some("c"), Some("bc")])),
        ("V", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
    ]);
    // Keys in ON's order need not be the table's column order.
    let table = RefTable::build(t, vec![1, 0]);
    let stream = batch(vec![
        ("X", texts(&[Some("bc"), Some("c"), Some("c")])),
        ("Y", texts(&[Some("a"), Some("ab"), Some("a")])),
    ]);
    let keys = [stream.column(0).clone(), stream.column(1).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    let v: Vec<String> = (0..out.num_rows()).map(|r| cell(&out, 4, r)).collect();
    assert_eq!(v, ["2", "1", "NULL"]);
}

#[test]
fn timestamp_keys_match_whatever_the_time_zone_tag() {
    let t = batch(vec![
        (
            "T",
            Arc::new(TimestampMillisecondArray::from(vec![1000, 2000]).with_timezone("UTC"))
                as ArrayRef,
        ),
        ("N", texts(&[Some("one"), Some("two")])),
    ]);
    let table = RefTable::build(t, vec![0]);
    let stream = batch(vec![(
        "K",
        Arc::new(TimestampMillisecondArray::from(vec![2000, 3000])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    let v: Vec<String> = (0..out.num_rows()).map(|r| cell(&out, 2, r)).collect();
    assert_eq!(v, ["two", "NULL"]);
}

#[test]
fn different_key_types_match_nothing() {
    let table = e8_table();
    let stream = batch(vec![(
        "I",
        Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
    )]);
    let keys = [stream.column(0).clone()];
    assert_eq!(join(&table, &stream, &keys, JoinKind::Inner).num_rows(), 0);
    let left = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(
        rows(&left),
        vec![
            strings(&["1", "NULL", "NULL"]),
            strings(&["2", "NULL", "NULL"])
        ]
    );
}

#[test]
fn an_empty_table_matches_nothing() {
    let t = batch(vec![("Ticker", texts(&[])), ("Company", texts(&[]))]);
    let table = RefTable::build(t, vec![0]);
    assert_eq!(table.rows(), 0);
    let stream = e8_stream();
    let keys = [stream.column(0).clone()];
    let left = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(left.num_rows(), 4);
    assert_eq!(left.num_columns(), 4);
    assert_eq!(left.column(3).null_count(), 4);
    assert_eq!(left.column(3).data_type(), &DataType::Utf8);
    let inner = join(&table, &stream, &keys, JoinKind::Inner);
    assert_eq!(inner.num_rows(), 0);
    assert_eq!(inner.num_columns(), 4);
}

#[test]
fn an_empty_batch_gives_an_empty_batch_of_the_output_schema() {
    let table = e8_table();
    let stream = e8_stream().slice(0, 0);
    let keys = [stream.column(0).clone()];
    for kind in [JoinKind::Inner, JoinKind::Left] {
        let out = join(&table, &stream, &keys, kind);
        assert_eq!(out.num_rows(), 0);
        assert_eq!(out.schema(), table.output_schema(&stream.schema()));
        assert_eq!(out.num_columns(), 4);
    }
}

#[test]
fn a_sliced_batch_joins_its_own_rows() {
    let table = e8_table();
    let stream = e8_stream().slice(2, 2);
    let keys = [stream.column(0).clone()];
    let out = join(&table, &stream, &keys, JoinKind::Left);
    assert_eq!(
        rows(&out),
        vec![
            strings(&["ASD", "3.5", "ASD", "SomeCompanyA"]),
            strings(&["WSB", "4.5", "NULL", "NULL"]),
        ]
    );
}

#[test]
fn a_table_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<RefTable>();
    let table = Arc::new(e8_table());
    let joined = std::thread::scope(|s| {
        let t = table.clone();
        s.spawn(move || {
            let stream = e8_stream();
            let keys = [stream.column(0).clone()];
            join(&t, &stream, &keys, JoinKind::Inner).num_rows()
        })
        .join()
    });
    assert_eq!(joined.ok(), Some(2));
}
