//! Data transformation (`ProcessingConfiguration`): what AWS's processors do
//! to records before they are delivered, the pure half. In AWS's order:
//!
//! - `Decompression` (`CompressionFormat` GZIP): each record is a gzip member
//!   (CloudWatch Logs subscription payloads), delivered decompressed.
//! - `CloudWatchLogProcessing`: CloudWatch Logs envelopes; control messages
//!   are dropped, and with `DataMessageExtraction` each log event's message
//!   becomes a record of its own.
//! - `RecordDeAggregation` (`SubRecordType` JSON or DELIMITED with a base64
//!   `Delimiter`): a record of several JSON objects or delimited parts becomes
//!   one record per part (at most 500). Riffle also splits KPL aggregated
//!   records here for Direct PUT (stream sources always are).
//! - `Lambda`: the records are sent to a function in batches (the invocation
//!   event of AWS's contract) and replaced by what it answers: `Ok` records
//!   with their new data (and `metadata.partitionKeys`), `Dropped` ones left
//!   out, `ProcessingFailed` ones (and records the answer does not name, or
//!   names twice) written under the error prefix (`processing-failed`) as
//!   AWS's JSON lines. The function is an HTTP endpoint speaking the Lambda
//!   invocation contract: `LambdaArn` is its URL (`http://HOST:PORT/PATH`,
//!   e.g. the Runtime Interface Emulator's
//!   `/2015-03-31/functions/function/invocations`), or a function name or ARN
//!   that the server's `[functions]` table maps to one.
//! - `MetadataExtraction` (`MetadataExtractionQuery`, `JsonParsingEngine`
//!   JQ-1.6): partition keys from each record (`partition.rs`).
//! - `AppendDelimiterToRecord`: the delimiter (`Delimiter`, e.g. `\n`) after
//!   every record.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_protocol::Error;
use serde_json::{Map, Value, json};

/// AWS's Lambda payload limit (request and answer).
pub const INVOCATION_BYTES_MAX: usize = 6 * 1024 * 1024;

/// How records are processed before delivery.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Processing {
    /// Records are gzip members, delivered decompressed.
    pub decompress: bool,
    /// CloudWatch Logs envelopes: `Some(extract each message)`.
    pub cloudwatch_logs: Option<bool>,
    /// Records are split into their parts.
    pub deaggregation: Option<SubRecords>,
    pub lambda: Option<Lambda>,
    /// The `MetadataExtractionQuery` (checked to compile).
    pub metadata_query: Option<String>,
    /// Appended to every record (after the transformation).
    pub delimiter: Option<Vec<u8>>,
}

/// How `RecordDeAggregation` splits a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubRecords {
    /// Concatenated (or newline-separated) JSON objects.
    Json,
    /// Parts between occurrences of these bytes.
    Delimited(Vec<u8>),
}

/// A `Lambda` processor.
#[derive(Clone, Debug, PartialEq)]
pub struct Lambda {
    /// `LambdaArn` as configured (error records name it).
    pub arn: String,
    /// The function's URL.
    pub url: String,
    /// Retries of a failed invocation (`NumberOfRetries`, default 3).
    pub retries: u32,
    /// Raw data per invocation (`BufferSizeInMBs`, default 1 MB).
    pub batch_bytes: usize,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// Reads a destination's `ProcessingConfiguration`; `functions` maps
/// function names and ARNs to URLs.
pub fn of_config(
    config: &Map<String, Value>,
    functions: &BTreeMap<String, String>,
) -> Result<Processing, Error> {
    let Some(p) = config.get("ProcessingConfiguration") else {
        return Ok(Processing::default());
    };
    if !p.get("Enabled").and_then(Value::as_bool).unwrap_or(false) {
        return Ok(Processing::default());
    }
    let mut out = Processing::default();
    for processor in p
        .get("Processors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = processor.get("Type").and_then(Value::as_str).unwrap_or("");
        let params: HashMap<&str, &str> = processor
            .get("Parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("ParameterName")?.as_str()?,
                    p.get("ParameterValue")?.as_str()?,
                ))
            })
            .collect();
        match kind {
            "Lambda" => {
                let arn = params
                    .get("LambdaArn")
                    .ok_or_else(|| invalid("A Lambda processor needs a LambdaArn parameter."))?;
                let retries = match params.get("NumberOfRetries") {
                    None => 3,
                    Some(n) => n.parse::<u32>().ok().filter(|n| *n <= 300).ok_or_else(|| {
                        invalid(format!(
                            "NumberOfRetries {n} is not a number from 0 to 300."
                        ))
                    })?,
                };
                let batch_bytes = match params.get("BufferSizeInMBs") {
                    None => 1_000_000,
                    Some(mb) => mb
                        .parse::<f64>()
                        .ok()
                        .filter(|mb| (0.2..=3.0).contains(mb))
                        .map(|mb| (mb * 1_000_000.0) as usize)
                        .ok_or_else(|| {
                            invalid(format!("BufferSizeInMBs {mb} is not from 0.2 to 3."))
                        })?,
                };
                out.lambda = Some(Lambda {
                    arn: arn.to_string(),
                    url: function_url(arn, functions)?,
                    retries,
                    batch_bytes,
                });
            }
            "AppendDelimiterToRecord" => {
                let d = params.get("Delimiter").copied().unwrap_or("\\n");
                out.delimiter = Some(unescape(d));
            }
            "MetadataExtraction" => {
                match params.get("JsonParsingEngine").copied() {
                    None | Some("JQ-1.6") => {}
                    Some(other) => {
                        return Err(invalid(format!(
                            "JsonParsingEngine {other} is not supported; the supported engine is JQ-1.6."
                        )));
                    }
                }
                let query = params.get("MetadataExtractionQuery").ok_or_else(|| {
                    invalid(
                        "A MetadataExtraction processor needs a MetadataExtractionQuery parameter.",
                    )
                })?;
                crate::partition::Query::compile(query).map_err(invalid)?;
                out.metadata_query = Some(query.to_string());
            }
            "RecordDeAggregation" => {
                out.deaggregation = Some(match params.get("SubRecordType").copied() {
                    None | Some("JSON") => SubRecords::Json,
                    Some("DELIMITED") => {
                        let d = params.get("Delimiter").ok_or_else(|| {
                            invalid("SubRecordType DELIMITED needs a Delimiter parameter (base64).")
                        })?;
                        let bytes = BASE64.decode(d).ok().filter(|b| !b.is_empty()).ok_or_else(
                            || {
                                invalid(format!(
                                    "Delimiter {d} is not a base64-encoded, non-empty delimiter."
                                ))
                            },
                        )?;
                        SubRecords::Delimited(bytes)
                    }
                    Some(other) => {
                        return Err(invalid(format!(
                            "SubRecordType {other} is not one of JSON, DELIMITED."
                        )));
                    }
                });
            }
            "Decompression" => match params.get("CompressionFormat").copied() {
                None | Some("GZIP") => out.decompress = true,
                Some(other) => {
                    return Err(invalid(format!(
                        "Decompression CompressionFormat {other} is not supported; GZIP is."
                    )));
                }
            },
            "CloudWatchLogProcessing" => {
                let extract = match params.get("DataMessageExtraction").copied() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(invalid(format!(
                            "DataMessageExtraction {other} is not true or false."
                        )));
                    }
                };
                out.cloudwatch_logs = Some(extract);
            }
            other => {
                return Err(invalid(format!(
                    "Unknown processor type {other}: the types are RecordDeAggregation, Decompression, CloudWatchLogProcessing, Lambda, MetadataExtraction and AppendDelimiterToRecord."
                )));
            }
        }
    }
    if out.cloudwatch_logs.is_some() && !out.decompress {
        return Err(invalid(
            "CloudWatchLogProcessing needs a Decompression processor (CloudWatch Logs payloads are gzip-compressed).",
        ));
    }
    Ok(out)
}

/// `\n`, `\t`, `\r`, `\\` as the bytes they name; the rest as it is.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                chars.next();
                out.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push(b'\t');
            }
            ('\\', Some('r')) => {
                chars.next();
                out.push(b'\r');
            }
            ('\\', Some('\\')) => {
                chars.next();
                out.push(b'\\');
            }
            (c, _) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The URL of the function `arn` names: itself when it is an http URL, else
/// what `functions` maps its ARN (with or without a qualifier) or its name to.
fn function_url(arn: &str, functions: &BTreeMap<String, String>) -> Result<String, Error> {
    if arn.starts_with("http://") || arn.starts_with("https://") {
        return Ok(arn.to_string());
    }
    // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    let name = match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => *name,
        _ => arn,
    };
    let unqualified = arn.splitn(8, ':').take(7).collect::<Vec<_>>().join(":");
    [arn, unqualified.as_str(), name]
        .iter()
        .find_map(|k| functions.get(*k))
        .cloned()
        .ok_or_else(|| {
            invalid(format!(
                "LambdaArn {arn} is not an http(s):// URL, and the server's [functions] table does not map it (NAME = \"http://...\")"
            ))
        })
}

/// Where a record of a Kinesis stream source was (the invocation event's
/// `kinesisRecordMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisMeta {
    pub partition_key: String,
    pub sequence_number: String,
    /// The user record's index in its KPL aggregated record (0 otherwise).
    pub subsequence_number: u32,
}

/// One record handed to the function.
pub struct InRecord<'a> {
    pub record_id: String,
    pub arrival_ms: i64,
    pub data: &'a [u8],
    /// For stream sources: the source shard's id and where the record was.
    pub kinesis: Option<(&'a str, &'a KinesisMeta)>,
}

/// The invocation event of AWS's contract.
pub fn invocation_event(
    invocation_id: &str,
    delivery_stream_arn: &str,
    source_stream_arn: Option<&str>,
    region: &str,
    records: &[InRecord<'_>],
) -> Vec<u8> {
    let mut event = json!({
        "invocationId": invocation_id,
        "deliveryStreamArn": delivery_stream_arn,
        "region": region,
        "records": records.iter().map(|r| {
            let mut record = json!({
                "recordId": r.record_id,
                "approximateArrivalTimestamp": r.arrival_ms,
                "data": BASE64.encode(r.data),
            });
            if let Some((shard_id, m)) = r.kinesis {
                record["kinesisRecordMetadata"] = json!({
                    "shardId": shard_id,
                    "partitionKey": m.partition_key,
                    "approximateArrivalTimestamp": r.arrival_ms,
                    "sequenceNumber": m.sequence_number,
                    "subsequenceNumber": m.subsequence_number,
                });
            }
            record
        }).collect::<Vec<_>>(),
    });
    if let Some(arn) = source_stream_arn {
        event["sourceKinesisStreamArn"] = json!(arn);
    }
    serde_json::to_vec(&event).expect("JSON serializes")
}

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new data and the partition keys the function gave
    /// (`metadata.partitionKeys`).
    Ok(Vec<u8>, Result<Vec<(String, String)>, String>),
    Dropped,
    /// AWS's `errorCode` and message.
    Failed(&'static str, String),
}

/// The outcome of every record of an invocation (in `ids` order) from the
/// function's answer; a malformed answer fails them all.
pub fn outcomes(answer: &[u8], ids: &[String]) -> Vec<Outcome> {
    let fail_all = |code: &'static str, why: String| {
        ids.iter()
            .map(|_| Outcome::Failed(code, why.clone()))
            .collect()
    };
    let parsed: Value = match serde_json::from_slice(answer) {
        Ok(v) => v,
        Err(e) => {
            return fail_all(
                "Lambda.JsonProcessingException",
                format!("The function's answer is not JSON: {e}"),
            );
        }
    };
    let Some(records) = parsed.get("records").and_then(Value::as_array) else {
        return fail_all(
            "Lambda.JsonProcessingException",
            "The function's answer has no records array.".into(),
        );
    };
    let mut by_id: HashMap<&str, Result<Outcome, (&'static str, String)>> = HashMap::new();
    for r in records {
        let Some(id) = r.get("recordId").and_then(Value::as_str) else {
            continue;
        };
        let outcome = match r.get("result").and_then(Value::as_str) {
            Some("Ok") => match r
                .get("data")
                .and_then(Value::as_str)
                .map(|d| BASE64.decode(d))
            {
                Some(Ok(data)) => Ok(Outcome::Ok(
                    data,
                    partition_keys(r).map_err(|why| format!("record {id}: {why}")),
                )),
                _ => Err((
                    "Lambda.InvalidData",
                    format!("record {id}: data is missing or not base64"),
                )),
            },
            Some("Dropped") => Ok(Outcome::Dropped),
            Some("ProcessingFailed") => Err((
                "Lambda.ProcessingFailed",
                format!("The function failed record {id}"),
            )),
            other => Err((
                "Lambda.InvalidResult",
                format!("record {id}: result {other:?} is not Ok, Dropped or ProcessingFailed"),
            )),
        };
        if by_id.insert(id, outcome).is_some() {
            by_id.insert(
                id,
                Err((
                    "Lambda.DuplicatedRecordId",
                    format!("The function answered record {id} more than once"),
                )),
            );
        }
    }
    ids.iter()
        .map(|id| match by_id.remove(id.as_str()) {
            Some(Ok(o)) => o,
            Some(Err((code, why))) => Outcome::Failed(code, why),
            None => Outcome::Failed(
                "Lambda.MissingRecordId",
                format!("The function's answer does not name record {id}"),
            ),
        })
        .collect()
}

/// A record's `metadata.partitionKeys` (string values), if it has them.
fn partition_keys(record: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(keys) = record.get("metadata").and_then(|m| m.get("partitionKeys")) else {
        return Ok(Vec::new());
    };
    let Some(keys) = keys.as_object() else {
        return Err("metadata.partitionKeys is not an object".into());
    };
    keys.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            _ => Err(format!("partition key {k} is {v}, not a string")),
        })
        .collect()
}

/// One line of a `processing-failed` (or `partitioning-failed`) error
/// object, as AWS writes it; `lambda_arn` when a function failed it.
pub fn error_record(
    attempts: u32,
    arrival_ms: i64,
    code: &str,
    message: &str,
    ended_ms: i64,
    raw: &[u8],
    lambda_arn: Option<&str>,
) -> Vec<u8> {
    let mut line = json!({
        "attemptsMade": attempts,
        "arrivalTimestamp": arrival_ms,
        "errorCode": code,
        "errorMessage": message,
        "attemptEndingTimestamp": ended_ms,
        "rawData": BASE64.encode(raw),
    });
    if let Some(arn) = lambda_arn {
        line["lambdaArn"] = json!(arn);
    }
    let mut line = serde_json::to_vec(&line).expect("JSON serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(processors: Value) -> Map<String, Value> {
        json!({"ProcessingConfiguration": {"Enabled": true, "Processors": processors}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn processors_are_read_or_refused() {
        let functions = BTreeMap::from([("upper".to_string(), "http://127.0.0.1:9/f".to_string())]);
        let p = of_config(
            &config(json!([
                {"Type": "Lambda", "Parameters": [
                    {"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:123456789012:function:upper:$LATEST"},
                    {"ParameterName": "NumberOfRetries", "ParameterValue": "1"},
                    {"ParameterName": "BufferSizeInMBs", "ParameterValue": "0.5"}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": [
                    {"ParameterName": "Delimiter", "ParameterValue": "\\n"}]}
            ])),
            &functions,
        )
        .unwrap();
        let l = p.lambda.unwrap();
        assert_eq!(
            (l.url.as_str(), l.retries, l.batch_bytes),
            ("http://127.0.0.1:9/f", 1, 500_000)
        );
        assert_eq!(p.delimiter.as_deref(), Some(&b"\n"[..]));
        let url = of_config(
            &config(json!([{"Type": "Lambda", "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": "http://10.0.0.1:8080/2015-03-31/functions/function/invocations"}]}])),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(url.lambda.unwrap().retries, 3);
        for (bad, says) in [
            (
                json!([{"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": "unmapped"}]}]),
                "[functions]",
            ),
            (json!([{"Type": "Lambda", "Parameters": []}]), "LambdaArn"),
            (
                json!([{"Type": "MetadataExtraction", "Parameters": []}]),
                "MetadataExtractionQuery",
            ),
            (
                json!([{"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{a: .a"}]}]),
                "does not parse",
            ),
            (
                json!([{"Type": "RecordDeAggregation", "Parameters": [
                    {"ParameterName": "SubRecordType", "ParameterValue": "DELIMITED"}]}]),
                "Delimiter",
            ),
            (
                json!([{"Type": "CloudWatchLogProcessing", "Parameters": [
                    {"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}]}]),
                "Decompression",
            ),
            (json!([{"Type": "Nope"}]), "Unknown processor type Nope"),
            (
                json!([{"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": "http://h/f"},
                {"ParameterName": "BufferSizeInMBs", "ParameterValue": "9"}]}]),
                "BufferSizeInMBs",
            ),
        ] {
            let e = of_config(&config(bad), &functions).unwrap_err();
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
        // Not enabled: nothing to do.
        let off = json!({"ProcessingConfiguration": {"Enabled": false, "Processors": [{"Type": "Nope"}]}});
        assert_eq!(
            of_config(off.as_object().unwrap(), &functions).unwrap(),
            Processing::default()
        );
    }

    #[test]
    fn answers_give_each_record_an_outcome() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let answer = json!({"records": [
            {"recordId": "a", "result": "Ok", "data": BASE64.encode("A")},
            {"recordId": "b", "result": "Dropped"},
            {"recordId": "c", "result": "ProcessingFailed"},
            {"recordId": "d", "result": "Ok", "data": "!!"},
            {"recordId": "x", "result": "Ok", "data": ""}
        ]});
        let got = outcomes(answer.to_string().as_bytes(), &ids);
        assert_eq!(got[0], Outcome::Ok(b"A".to_vec(), Ok(Vec::new())));
        assert_eq!(got[1], Outcome::Dropped);
        assert!(matches!(
            got[2],
            Outcome::Failed("Lambda.ProcessingFailed", _)
        ));
        assert!(matches!(got[3], Outcome::Failed("Lambda.InvalidData", _)));
        assert!(matches!(
            got[4],
            Outcome::Failed("Lambda.MissingRecordId", _)
        ));
        let twice = json!({"records": [
            {"recordId": "a", "result": "Dropped"}, {"recordId": "a", "result": "Dropped"}]});
        assert!(matches!(
            outcomes(twice.to_string().as_bytes(), &ids[..1])[0],
            Outcome::Failed("Lambda.DuplicatedRecordId", _)
        ));
        for garbage in [&b"not json"[..], b"{}", b"[]"] {
            assert!(
                outcomes(garbage, &ids)
                    .iter()
                    .all(|o| matches!(o, Outcome::Failed("Lambda.JsonProcessingException", _)))
            );
        }
    }

    #[test]
    fn events_and_error_lines_have_aws_shapes() {
        let meta = KinesisMeta {
            partition_key: "pk".into(),
            sequence_number: "4960".into(),
            subsequence_number: 2,
        };
        let records = [
            InRecord {
                record_id: "r1".into(),
                arrival_ms: 5,
                data: b"hi",
                kinesis: None,
            },
            InRecord {
                record_id: "r2".into(),
                arrival_ms: 6,
                data: b"",
                kinesis: Some(("shardId-000000000001", &meta)),
            },
        ];
        let event: Value = serde_json::from_slice(&invocation_event(
            "inv",
            "arn:f",
            Some("arn:k"),
            "us-east-1",
            &records,
        ))
        .unwrap();
        assert_eq!(
            event["records"][0],
            json!({"recordId": "r1", "approximateArrivalTimestamp": 5, "data": "aGk="})
        );
        assert_eq!(event["sourceKinesisStreamArn"], "arn:k");
        assert_eq!(
            event["records"][1]["kinesisRecordMetadata"],
            json!({"shardId": "shardId-000000000001", "partitionKey": "pk",
                   "approximateArrivalTimestamp": 6, "sequenceNumber": "4960", "subsequenceNumber": 2})
        );
        let line = error_record(
            4,
            5,
            "Lambda.ProcessingFailed",
            "why",
            9,
            b"hi",
            Some("arn:l"),
        );
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["rawData"], "aGk=");
        assert_eq!(v["attemptsMade"], 4);
        assert_eq!(v["lambdaArn"], "arn:l");
        assert!(line.ends_with(b"\n"));
        let plain: Value =
            serde_json::from_slice(&error_record(1, 5, "X", "why", 9, b"hi", None)).unwrap();
        assert!(plain.get("lambdaArn").is_none());
    }

    #[test]
    fn every_processor_is_read() {
        let p = of_config(
            &config(json!([
                {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
                {"Type": "CloudWatchLogProcessing", "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}]},
                {"Type": "RecordDeAggregation", "Parameters": [
                    {"ParameterName": "SubRecordType", "ParameterValue": "DELIMITED"},
                    {"ParameterName": "Delimiter", "ParameterValue": "IyMjIw=="}]},
                {"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{c: .c}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}
            ])),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(p.decompress);
        assert_eq!(p.cloudwatch_logs, Some(true));
        assert_eq!(
            p.deaggregation,
            Some(SubRecords::Delimited(b"####".to_vec()))
        );
        assert_eq!(p.metadata_query.as_deref(), Some("{c: .c}"));
    }

    #[test]
    fn functions_may_give_partition_keys() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let answer = json!({"records": [
            {"recordId": "a", "result": "Ok", "data": "", "metadata": {"partitionKeys": {"k": "v", "n": 3}}},
            {"recordId": "b", "result": "Ok", "data": "", "metadata": {"partitionKeys": {"k": ["x"]}}}
        ]});
        let got = outcomes(answer.to_string().as_bytes(), &ids);
        assert_eq!(
            got[0],
            Outcome::Ok(
                Vec::new(),
                Ok(vec![("k".into(), "v".into()), ("n".into(), "3".into())])
            )
        );
        // Bad keys fail the record only with dynamic partitioning (the
        // transformation decides).
        assert!(matches!(&got[1], Outcome::Ok(_, Err(why)) if why.contains("not a string")));
    }
}
