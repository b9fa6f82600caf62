//! Record format conversion (`DataFormatConversionConfiguration`), the pure
//! half: the configuration read and checked (JSON in through the OpenX or
//! Hive JSON SerDe, Parquet out; ORC refused), and one object's records
//! converted with `riffle_columnar` against the Glue table's columns. The
//! schema is read from Riffle's Glue Data Catalog (`riffle_glue`) when the
//! object is written, as AWS reads it from Glue.
//!
//! Records that do not fit the schema go to the error output
//! (`format-conversion-failed`) as AWS's JSON lines; the others make one
//! Parquet file.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_columnar::{
    BLOCK_SIZE_BYTES_MIN, Converter, Deserializer, PAGE_SIZE_BYTES_MIN, ParquetCompression,
    ParquetOptions, Schema, WriterVersion,
};
use riffle_protocol::Error;
use serde_json::{Map, Value, json};

/// The error output type of records that could not be converted.
pub const FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";
/// AWS's smallest buffer with conversion enabled, and its default.
pub const SIZE_MIB_MIN: u64 = 64;
pub const SIZE_MIB_DEFAULT: u64 = 128;

/// Where the schema is: a Glue table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaSource {
    pub database: String,
    pub table: String,
    /// None: the latest version.
    pub version_id: Option<String>,
}

/// A destination's conversion, as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub schema: SchemaSource,
    pub deserializer: Deserializer,
    pub parquet: ParquetOptions,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// Whether the configuration enables conversion (AWS: `Enabled` defaults to
/// true when the member is given).
pub fn enabled(config: &Map<String, Value>) -> bool {
    config
        .get("DataFormatConversionConfiguration")
        .is_some_and(|c| c.get("Enabled").and_then(Value::as_bool).unwrap_or(true))
}

/// Reads a destination's `DataFormatConversionConfiguration`; None when it
/// is absent or disabled.
pub fn of_config(config: &Map<String, Value>) -> Result<Option<Conversion>, Error> {
    if !enabled(config) {
        return Ok(None);
    }
    let c = &config["DataFormatConversionConfiguration"];
    let schema = c.get("SchemaConfiguration").ok_or_else(|| {
        invalid("DataFormatConversionConfiguration needs a SchemaConfiguration (a Glue table).")
    })?;
    let member = |name: &str| schema.get(name).and_then(Value::as_str);
    let (Some(database), Some(table)) = (member("DatabaseName"), member("TableName")) else {
        return Err(invalid(
            "SchemaConfiguration needs a DatabaseName and a TableName.",
        ));
    };
    let version_id = member("VersionId")
        .filter(|v| *v != "LATEST")
        .map(str::to_string);
    let deserializer = deserializer(
        c.get("InputFormatConfiguration")
            .and_then(|i| i.get("Deserializer")),
    )?;
    let parquet = serializer(
        c.get("OutputFormatConfiguration")
            .and_then(|o| o.get("Serializer")),
    )?;
    match config.get("CompressionFormat").and_then(Value::as_str) {
        None | Some("UNCOMPRESSED") => {}
        Some(other) => {
            return Err(invalid(format!(
                "CompressionFormat must be UNCOMPRESSED when record format conversion is enabled (the serializer compresses), not {other}."
            )));
        }
    }
    if let Some(size) = config
        .get("BufferingHints")
        .and_then(|h| h.get("SizeInMBs"))
        .and_then(Value::as_u64)
        && size < SIZE_MIB_MIN
    {
        return Err(invalid(format!(
            "BufferingHints.SizeInMBs must be at least {SIZE_MIB_MIN} when record format conversion is enabled, not {size}."
        )));
    }
    Ok(Some(Conversion {
        schema: SchemaSource {
            database: database.to_string(),
            table: table.to_string(),
            version_id,
        },
        deserializer,
        parquet,
    }))
}

fn deserializer(d: Option<&Value>) -> Result<Deserializer, Error> {
    let Some(d) = d else {
        return Err(invalid(
            "InputFormatConfiguration.Deserializer is required: OpenXJsonSerDe or HiveJsonSerDe.",
        ));
    };
    let out = match (d.get("OpenXJsonSerDe"), d.get("HiveJsonSerDe")) {
        (Some(o), None) => Deserializer::OpenX {
            case_insensitive: o
                .get("CaseInsensitive")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            convert_dots_in_json_keys_to_underscores: o
                .get("ConvertDotsInJsonKeysToUnderscores")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            column_to_json_key_mappings: o
                .get("ColumnToJsonKeyMappings")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default(),
        },
        (None, Some(h)) => Deserializer::Hive {
            timestamp_formats: h
                .get("TimestampFormats")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
        },
        _ => {
            return Err(invalid(
                "The Deserializer must be exactly one of OpenXJsonSerDe and HiveJsonSerDe.",
            ));
        }
    };
    out.validate()
        .map_err(|e| invalid(format!("The Deserializer is invalid: {e}")))?;
    Ok(out)
}

fn serializer(s: Option<&Value>) -> Result<ParquetOptions, Error> {
    let Some(s) = s else {
        return Err(invalid(
            "OutputFormatConfiguration.Serializer is required: ParquetSerDe.",
        ));
    };
    if s.get("OrcSerDe").is_some() {
        return Err(invalid(
            "Riffle does not write ORC (no maintained Rust ORC writer); use ParquetSerDe.",
        ));
    }
    let Some(p) = s.get("ParquetSerDe") else {
        return Err(invalid("The Serializer must be ParquetSerDe."));
    };
    let mut out = ParquetOptions::default();
    if let Some(c) = p.get("Compression").and_then(Value::as_str) {
        out.compression = match c {
            "UNCOMPRESSED" => ParquetCompression::Uncompressed,
            "GZIP" => ParquetCompression::Gzip,
            "SNAPPY" => ParquetCompression::Snappy,
            other => {
                return Err(invalid(format!(
                    "ParquetSerDe.Compression {other} is not one of UNCOMPRESSED, GZIP, SNAPPY."
                )));
            }
        };
    }
    let size = |name: &str, min: usize| -> Result<Option<usize>, Error> {
        match p.get(name).and_then(Value::as_u64) {
            None => Ok(None),
            Some(n) if n as usize >= min => Ok(Some(n as usize)),
            Some(n) => Err(invalid(format!(
                "ParquetSerDe.{name} must be at least {min}, not {n}."
            ))),
        }
    };
    if let Some(n) = size("BlockSizeBytes", BLOCK_SIZE_BYTES_MIN)? {
        out.block_size_bytes = n;
    }
    if let Some(n) = size("PageSizeBytes", PAGE_SIZE_BYTES_MIN)? {
        out.page_size_bytes = n;
    }
    if let Some(n) = size("MaxPaddingBytes", 0)? {
        out.max_padding_bytes = n;
    }
    if let Some(d) = p
        .get("EnableDictionaryCompression")
        .and_then(Value::as_bool)
    {
        out.enable_dictionary = d;
    }
    if let Some(v) = p.get("WriterVersion").and_then(Value::as_str) {
        out.writer_version = match v {
            "V1" => WriterVersion::V1,
            "V2" => WriterVersion::V2,
            other => {
                return Err(invalid(format!(
                    "ParquetSerDe.WriterVersion {other} is not one of V1, V2."
                )));
            }
        };
    }
    Ok(out)
}

/// One object's conversion: the Parquet file (None when no record fit) and
/// the error lines of the records that did not.
#[derive(Debug)]
pub struct Converted {
    pub parquet: Option<Vec<u8>>,
    pub errors: Vec<u8>,
    pub rows: u64,
    /// The records that became rows, and those that did not: their bytes.
    pub converted_bytes: u64,
    pub failed_bytes: u64,
}

/// Why a conversion did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum NotConverted {
    /// The table cannot be used (its types): the batch waits for it to be
    /// fixed.
    Schema(String),
    /// The batch could not be written: its records go to the error output.
    Failed(String),
}

/// Converts `records` (with their arrival times) by `columns` (a Glue
/// table's, as (name, Hive type)).
pub fn convert(
    conversion: &Conversion,
    columns: &[(String, String)],
    records: &[(&[u8], i64)],
    now_ms: i64,
) -> Result<Converted, NotConverted> {
    let schema = Schema::new(columns).map_err(|e| {
        NotConverted::Schema(format!(
            "the Glue table {}.{} cannot be used: {e}",
            conversion.schema.database, conversion.schema.table
        ))
    })?;
    let mut converter = Converter::new(
        &schema,
        conversion.deserializer.clone(),
        conversion.parquet.clone(),
    )
    .map_err(NotConverted::Schema)?;
    let mut errors = Vec::new();
    let (mut converted_bytes, mut failed_bytes) = (0, 0);
    for (data, arrival_ms) in records {
        match converter.push(data) {
            Ok(()) => converted_bytes += data.len() as u64,
            Err(why) => {
                failed_bytes += data.len() as u64;
                errors.extend(error_record(*arrival_ms, &why, now_ms, data));
            }
        }
    }
    let rows = converter.rows();
    let parquet = match rows {
        0 => None,
        _ => Some(converter.finish().map_err(NotConverted::Failed)?),
    };
    Ok(Converted {
        parquet,
        errors,
        rows,
        converted_bytes,
        failed_bytes,
    })
}

/// One line of a `format-conversion-failed` error object.
pub fn error_record(arrival_ms: i64, message: &str, ended_ms: i64, raw: &[u8]) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "attemptsMade": 1,
        "arrivalTimestamp": arrival_ms,
        "lastErrorCode": "DataFormatConversion.MalformedData",
        "lastErrorMessage": message,
        "attemptEndingTimestamp": ended_ms,
        "rawData": BASE64.encode(raw),
    }))
    .expect("JSON serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(c: Value) -> Map<String, Value> {
        c.as_object().unwrap().clone()
    }

    fn enabled_config(input: Value, output: Value) -> Map<String, Value> {
        config(json!({"DataFormatConversionConfiguration": {
            "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t", "RoleARN": "r"},
            "InputFormatConfiguration": {"Deserializer": input},
            "OutputFormatConfiguration": {"Serializer": output},
            "Enabled": true}}))
    }

    #[test]
    fn configurations_are_read_with_aws_defaults() {
        let c = of_config(&enabled_config(
            json!({"OpenXJsonSerDe": {}}),
            json!({"ParquetSerDe": {}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.schema.database, "db");
        assert_eq!(c.schema.version_id, None);
        assert_eq!(c.parquet, ParquetOptions::default());
        assert_eq!(c.deserializer, Deserializer::default());
        let hive = of_config(&enabled_config(
            json!({"HiveJsonSerDe": {"TimestampFormats": ["yyyy-MM-dd'T'HH:mm:ss", "millis"]}}),
            json!({"ParquetSerDe": {"Compression": "GZIP", "WriterVersion": "V2"}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(hive.parquet.compression, ParquetCompression::Gzip);
        assert!(matches!(hive.deserializer, Deserializer::Hive { .. }));
        assert!(
            of_config(&config(
                json!({"DataFormatConversionConfiguration": {"Enabled": false}})
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn refusals_say_why() {
        for (c, says) in [
            (
                enabled_config(json!({"OpenXJsonSerDe": {}}), json!({"OrcSerDe": {}})),
                "ORC",
            ),
            (
                enabled_config(json!({}), json!({"ParquetSerDe": {}})),
                "exactly one",
            ),
            (
                enabled_config(
                    json!({"OpenXJsonSerDe": {}}),
                    json!({"ParquetSerDe": {"Compression": "LZO"}}),
                ),
                "LZO",
            ),
            (
                enabled_config(
                    json!({"OpenXJsonSerDe": {}}),
                    json!({"ParquetSerDe": {"PageSizeBytes": 10}}),
                ),
                "PageSizeBytes",
            ),
        ] {
            let e = of_config(&c).unwrap_err();
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
        let mut gz = enabled_config(json!({"OpenXJsonSerDe": {}}), json!({"ParquetSerDe": {}}));
        gz.insert("CompressionFormat".into(), json!("GZIP"));
        assert!(of_config(&gz).unwrap_err().message.contains("UNCOMPRESSED"));
        let mut small = enabled_config(json!({"OpenXJsonSerDe": {}}), json!({"ParquetSerDe": {}}));
        small.insert(
            "BufferingHints".into(),
            json!({"SizeInMBs": 5, "IntervalInSeconds": 60}),
        );
        assert!(of_config(&small).unwrap_err().message.contains("64"));
    }

    #[test]
    fn records_convert_or_fail_alone() {
        let c = of_config(&enabled_config(
            json!({"OpenXJsonSerDe": {}}),
            json!({"ParquetSerDe": {}}),
        ))
        .unwrap()
        .unwrap();
        let columns = vec![
            ("id".to_string(), "int".to_string()),
            ("name".to_string(), "string".to_string()),
        ];
        let records: Vec<(&[u8], i64)> = vec![
            (br#"{"id": 1, "name": "a"}"#, 1),
            (br#"{"id": "not a number", "name": "b"}"#, 2),
            (br#"{"ID": 3}"#, 3),
        ];
        let out = convert(&c, &columns, &records, 9).unwrap();
        assert_eq!(out.rows, 2);
        let parquet = out.parquet.unwrap();
        assert_eq!(&parquet[..4], b"PAR1");
        let line: Value = serde_json::from_slice(&out.errors).unwrap();
        assert_eq!(line["lastErrorCode"], "DataFormatConversion.MalformedData");
        assert_eq!(line["arrivalTimestamp"], 2);
        assert!(
            matches!(convert(&c, &[], &records, 9), Err(NotConverted::Schema(e)) if e.contains("db.t"))
        );
    }
}
