//! Test helpers: build a converter from literal columns, push records, and read the
//! Parquet file back with parquet's own Arrow reader as JSON values per row.

#![allow(dead_code)]

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use riffle_columnar::{Converter, Deserializer, ParquetOptions, Schema};
use serde_json::{Map, Value, json};

pub fn schema(columns: &[(&str, &str)]) -> Schema {
    let owned: Vec<(String, String)> = columns
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Schema::new(&owned).unwrap()
}

pub fn converter(columns: &[(&str, &str)], deserializer: Deserializer) -> Converter {
    Converter::new(&schema(columns), deserializer, ParquetOptions::default()).unwrap()
}

/// Converts `records` (each must be accepted) and reads the rows back.
pub fn roundtrip(
    columns: &[(&str, &str)],
    deserializer: Deserializer,
    records: &[&str],
) -> Vec<Value> {
    let mut c = converter(columns, deserializer);
    for r in records {
        c.push(r.as_bytes())
            .unwrap_or_else(|e| panic!("record {r} refused: {e}"));
    }
    read_rows(c.finish().unwrap())
}

pub fn read_batches(file: Vec<u8>) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
        .unwrap()
        .with_batch_size(100_000)
        .build()
        .unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// Every row as a JSON object {column: value}.
pub fn read_rows(file: Vec<u8>) -> Vec<Value> {
    let mut rows = Vec::new();
    for batch in read_batches(file) {
        for i in 0..batch.num_rows() {
            let mut row = Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                row.insert(field.name().clone(), to_json(column.as_ref(), i));
            }
            rows.push(Value::Object(row));
        }
    }
    rows
}

/// One value as JSON: integers/dates(days)/timestamps(micros) as numbers, decimals as
/// strings with their scale, binary as its UTF-8 text, maps as objects.
pub fn to_json(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => json!(array.as_boolean().value(i)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => json!(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(i)),
        DataType::Date32 => json!(array.as_primitive::<Date32Type>().value(i)),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            json!(array.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(i);
            let scale = *scale as u32;
            let sign = if v < 0 { "-" } else { "" };
            let (int, frac) = (v.abs() / 10i128.pow(scale), v.abs() % 10i128.pow(scale));
            if scale == 0 {
                json!(format!("{sign}{int}"))
            } else {
                json!(format!(
                    "{sign}{int}.{frac:0width$}",
                    width = scale as usize
                ))
            }
        }
        DataType::Utf8 => json!(array.as_string::<i32>().value(i)),
        DataType::Binary => json!(String::from_utf8_lossy(array.as_binary::<i32>().value(i))),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(i);
            Value::Array(
                (0..values.len())
                    .map(|j| to_json(values.as_ref(), j))
                    .collect(),
            )
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let entries = map.value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut out = Map::new();
            for j in 0..entries.len() {
                let key = match to_json(keys.as_ref(), j) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(values.as_ref(), j));
            }
            Value::Object(out)
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut out = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                out.insert(field.name().clone(), to_json(column.as_ref(), i));
            }
            Value::Object(out)
        }
        other => panic!("test reader lacks {other}"),
    }
}

/// Microseconds of a UTC date-time.
pub fn micros(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    // Days from civil (the same algorithm as the crate, kept separate on purpose).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000
}
