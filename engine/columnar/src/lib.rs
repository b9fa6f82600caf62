//! JSON records to Arrow and Parquet by a Hive/Glue schema: the pure part of
//! Firehose's record format conversion (`DataFormatConversionConfiguration`).
//!
//! No runtime and no I/O: Firehose calls it from a worker thread, one `Converter` per
//! object it builds.
//!
//! - `types`: `HiveType`, `parse_type` (Glue's type strings), `Schema` (→ Arrow).
//! - `deserializer`: `Deserializer::OpenX` / `Deserializer::Hive` and how JSON values
//!   become column values (the rules are listed there).
//! - `time`: the timestamp and date formats of both SerDes, a Joda-Time subset.
//! - `options`: `ParquetOptions` (AWS's `ParquetSerDe` and defaults) → parquet's
//!   `WriterProperties`; which settings do not map is said there.
//! - `json`: the record reader, which keeps every number's source text;
//!   `number`: exact decimal and integer values from that text (never through f64).
//! - `builder`: Arrow column builders; `converter`: `Converter`.
//!
//! ```
//! use riffle_columnar::{Converter, Deserializer, ParquetOptions, Schema};
//! let schema = Schema::new(&[("id".into(), "int".into()), ("name".into(), "string".into())])?;
//! let mut converter = Converter::new(&schema, Deserializer::default(), ParquetOptions::default())?;
//! converter.push(br#"{"id": 1, "Name": "a"} {"id": "2"}"#)?;
//! assert!(converter.push(br#"{"id": "two"}"#).is_err()); // refused whole
//! assert_eq!(converter.rows(), 2);
//! let parquet_file: Vec<u8> = converter.finish()?;
//! assert_eq!(&parquet_file[..4], b"PAR1");
//! # Ok::<(), String>(())
//! ```
//!
//! Physical types written (parquet's Arrow writer chooses them from the Arrow types):
//! string/char/varchar → BYTE_ARRAY (UTF8), binary → BYTE_ARRAY, boolean → BOOLEAN,
//! tinyint/smallint/int → INT32 (INT(8/16/32)), bigint → INT64, float → FLOAT,
//! double → DOUBLE, decimal(p,s) → INT32/INT64/FIXED_LEN_BYTE_ARRAY by precision
//! (DECIMAL(p,s)), date → INT32 (DATE), array → LIST (`element`), map → MAP
//! (`key_value`/`key`/`value`), struct → group.
//!
//! **Timestamps** are INT64 `TIMESTAMP(MICROS, isAdjustedToUTC=false)`, the UTC wall
//! clock in microseconds. Hive's own Parquet writer (and so AWS) writes INT96; parquet's
//! Arrow writer cannot write INT96, so this deviates: Athena/Trino, Spark and Hive 3+
//! read INT64 timestamps, Hive 2 does not. Digits below a microsecond are cut.

mod builder;
mod converter;
mod deserializer;
mod json;
mod number;
mod options;
mod time;
mod types;

pub use converter::{BATCH_INPUT_BYTES_MAX, BATCH_ROWS_MAX, Converter};
pub use deserializer::Deserializer;
pub use options::{
    BLOCK_SIZE_BYTES_DEFAULT, BLOCK_SIZE_BYTES_MIN, PAGE_SIZE_BYTES_DEFAULT, PAGE_SIZE_BYTES_MIN,
    ParquetCompression, ParquetOptions, WriterVersion,
};
pub use time::JODA_LETTERS;
pub use types::{
    CHAR_LENGTH_MAX, Column, DECIMAL_PRECISION_MAX, HiveType, Schema, TYPE_DEPTH_MAX,
    VARCHAR_LENGTH_MAX, parse_type,
};
