//! The HTTP endpoint destination (`HttpEndpointDestinationConfiguration`), the
//! pure half: its configuration with AWS's defaults, its description, and
//! AWS's HTTP endpoint delivery request and response specification (v1.0).
//!
//! Request: `POST <Url>` with `X-Amz-Firehose-Protocol-Version: 1.0`,
//! `X-Amz-Firehose-Request-Id` (the same across retries),
//! `X-Amz-Firehose-Source-Arn`, `X-Amz-Firehose-Access-Key` (when configured),
//! `X-Amz-Firehose-Common-Attributes` (`{"commonAttributes":{...}}`), JSON body
//! `{"requestId","timestamp","records":[{"data":"<base64>"}]}`, gzip-encoded when
//! `ContentEncoding` is GZIP. Answer: only 200 with a JSON body naming the same
//! `requestId` is success; 413 is a permanent failure (AWS does not back the
//! records up then); anything else is retried until `RetryOptions` runs out,
//! then the records go to the S3 backup under the error prefix
//! (`http-endpoint-failed`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_protocol::Error;
use serde_json::{Map, Value, json};

use crate::destination::S3Destination;
use crate::members::{backup, buffering, retry_ms, with_backup_defaults};

/// AWS's HTTP endpoint defaults: 5 MiB or 300 s, retried for 300 s.
const SIZE_MIB_DEFAULT: u64 = 5;
const INTERVAL_S_DEFAULT: u64 = 300;
const RETRY_S_DEFAULT: u64 = 300;
/// Records per request (AWS's limit).
pub const RECORDS_PER_REQUEST_MAX: usize = 10_000;

/// An HTTP endpoint destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpDestination {
    pub url: String,
    pub name: Option<String>,
    pub access_key: Option<String>,
    pub gzip: bool,
    /// `CommonAttributes`, in order.
    pub common_attributes: Vec<(String, String)>,
    pub size_bytes: u64,
    pub interval_ms: u64,
    /// How long failed requests are retried (`RetryOptions.DurationInSeconds`).
    pub retry_ms: u64,
    /// `S3BackupMode` AllData: every record also goes to the backup bucket.
    pub backup_all: bool,
    /// The backup bucket (`S3Configuration`): failed records, or all of them.
    pub backup: S3Destination,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// The stored configuration: as given, with AWS's defaults filled in.
pub fn with_defaults(mut config: Map<String, Value>) -> Map<String, Value> {
    config.entry("BufferingHints").or_insert_with(
        || json!({"SizeInMBs": SIZE_MIB_DEFAULT, "IntervalInSeconds": INTERVAL_S_DEFAULT}),
    );
    config
        .entry("RequestConfiguration")
        .or_insert_with(|| json!({"ContentEncoding": "NONE"}));
    config
        .entry("RetryOptions")
        .or_insert_with(|| json!({"DurationInSeconds": RETRY_S_DEFAULT}));
    config
        .entry("S3BackupMode")
        .or_insert_with(|| json!("FailedDataOnly"));
    config
        .entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    with_backup_defaults(config)
}

/// Reads (and so checks) a stored HTTP endpoint destination.
pub fn of_config(config: &Map<String, Value>) -> Result<HttpDestination, Error> {
    crate::members::refuse_secrets_manager(config, "EndpointConfiguration.AccessKey")?;
    let endpoint = config
        .get("EndpointConfiguration")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("EndpointConfiguration is required"))?;
    let url = endpoint
        .get("Url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("EndpointConfiguration.Url is required"))?;
    crate::http_client::HttpUrl::parse(url).map_err(invalid)?;
    let (size_bytes, interval_ms) = buffering(config, SIZE_MIB_DEFAULT, INTERVAL_S_DEFAULT)?;
    let request = config.get("RequestConfiguration");
    let gzip = match request
        .and_then(|r| r.get("ContentEncoding"))
        .and_then(Value::as_str)
    {
        None | Some("NONE") => false,
        Some("GZIP") => true,
        Some(other) => {
            return Err(invalid(format!(
                "ContentEncoding {other} is not NONE or GZIP."
            )));
        }
    };
    let common_attributes = request
        .and_then(|r| r.get("CommonAttributes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a.get("AttributeName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                a.get("AttributeValue")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let backup_all = match config.get("S3BackupMode").and_then(Value::as_str) {
        None | Some("FailedDataOnly") => false,
        Some("AllData") => true,
        Some(other) => {
            return Err(invalid(format!(
                "S3BackupMode {other} is not FailedDataOnly or AllData."
            )));
        }
    };
    let backup = backup(config)?;
    Ok(HttpDestination {
        url: url.to_string(),
        name: endpoint
            .get("Name")
            .and_then(Value::as_str)
            .map(str::to_string),
        access_key: endpoint
            .get("AccessKey")
            .and_then(Value::as_str)
            .map(str::to_string),
        gzip,
        common_attributes,
        size_bytes,
        interval_ms,
        retry_ms: retry_ms(config, RETRY_S_DEFAULT),
        backup_all,
        backup,
    })
}

/// `HttpEndpointDestinationDescription`: the configuration without the access
/// key (AWS never shows it), the backup as an `S3DestinationDescription`.
pub fn describe(config: &Map<String, Value>) -> Value {
    let mut out = config.clone();
    if let Some(Value::Object(endpoint)) = out.get_mut("EndpointConfiguration") {
        endpoint.remove("AccessKey");
    }
    if let Some(s3) = out.remove("S3Configuration") {
        out.insert("S3DestinationDescription".into(), s3);
    }
    Value::Object(out)
}

/// The longest request body AWS sends (before compression).
pub const REQUEST_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The records of each request, in order: at most 10,000 records and 64 MiB of
/// body each (base64 data and its JSON), a record alone when it is larger.
pub fn request_ranges(records: &[&[u8]]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 128);
    for (i, r) in records.iter().enumerate() {
        let encoded = r.len().div_ceil(3) * 4 + 16;
        if i > start
            && (i - start == RECORDS_PER_REQUEST_MAX || bytes + encoded > REQUEST_BYTES_MAX)
        {
            out.push(start..i);
            start = i;
            bytes = 128;
        }
        bytes += encoded;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// The request body: `{"requestId","timestamp","records":[{"data"}]}`.
pub fn request_body<'a>(
    request_id: &str,
    timestamp_ms: i64,
    records: impl Iterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let records: Vec<Value> = records.map(|r| json!({"data": BASE64.encode(r)})).collect();
    serde_json::to_vec(&json!({
        "requestId": request_id,
        "timestamp": timestamp_ms,
        "records": records,
    }))
    .expect("JSON serializes")
}

/// The `X-Amz-Firehose-Common-Attributes` header value, if any attributes.
pub fn common_attributes_header(attributes: &[(String, String)]) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let map: Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Some(json!({ "commonAttributes": map }).to_string())
}

/// Why a delivery attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptFailed {
    /// 413: not retried, not backed up.
    pub permanent: bool,
    pub message: String,
}

/// Reads the endpoint's answer to request `request_id`.
pub fn check_answer(status: u16, body: &[u8], request_id: &str) -> Result<(), AttemptFailed> {
    let message = |m: String| AttemptFailed {
        permanent: status == 413,
        message: m,
    };
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("errorMessage"))
        .and_then(Value::as_str)
        .map(|m| m.chars().take(8192).collect::<String>());
    if status != 200 {
        return Err(message(match error {
            Some(e) => format!("The endpoint answered {status}: {e}"),
            None => format!("The endpoint answered {status}"),
        }));
    }
    match parsed
        .as_ref()
        .and_then(|v| v.get("requestId"))
        .and_then(Value::as_str)
    {
        Some(id) if id == request_id => Ok(()),
        Some(id) => Err(message(format!(
            "The endpoint answered requestId {id}, not {request_id}"
        ))),
        None => Err(message(
            "The endpoint's answer is not JSON with the request's requestId".into(),
        )),
    }
}

/// One line of an `http-endpoint-failed` error object, as AWS writes it.
/// `data_id` names the record (the same after a restart); `subsequenceNumber`
/// is 0: records reach the endpoint whole (KPL user records already split).
pub fn error_record(
    attempts: u32,
    arrival_ms: i64,
    message: &str,
    ended_ms: i64,
    raw: &[u8],
    data_id: &str,
) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "attemptsMade": attempts,
        "arrivalTimestamp": arrival_ms,
        "errorCode": "HttpEndpoint.DestinationException",
        "errorMessage": message,
        "attemptEndingTimestamp": ended_ms,
        "rawData": BASE64.encode(raw),
        "subsequenceNumber": 0,
        "dataId": data_id,
    }))
    .expect("JSON serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Map<String, Value> {
        with_defaults(
            json!({
                "EndpointConfiguration": {"Url": "https://example.com/in", "Name": "ex", "AccessKey": "secret"},
                "RequestConfiguration": {"ContentEncoding": "GZIP",
                    "CommonAttributes": [{"AttributeName": "env", "AttributeValue": "dev"}]},
                "S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::backup"}
            })
            .as_object()
            .unwrap()
            .clone(),
        )
    }

    #[test]
    fn configurations_get_aws_defaults_and_hide_the_key() {
        let c = config();
        let d = of_config(&c).unwrap();
        assert_eq!(
            (d.size_bytes, d.interval_ms, d.retry_ms),
            (5 << 20, 300_000, 300_000)
        );
        assert!(d.gzip && !d.backup_all);
        assert_eq!(d.backup.bucket, "backup");
        assert_eq!(d.access_key.as_deref(), Some("secret"));
        let described = describe(&c);
        assert_eq!(
            described["EndpointConfiguration"],
            json!({"Url": "https://example.com/in", "Name": "ex"})
        );
        assert_eq!(
            described["S3DestinationDescription"]["BucketARN"],
            "arn:aws:s3:::backup"
        );
        assert_eq!(described["S3BackupMode"], "FailedDataOnly");
        assert!(
            described["S3DestinationDescription"]
                .get("S3BackupMode")
                .is_none()
        );
        let mut no_backup = c.clone();
        no_backup.remove("S3Configuration");
        assert!(of_config(&no_backup).is_err());
    }

    #[test]
    fn requests_hold_at_most_10000_records_and_64_mib() {
        let small = vec![&b"x"[..]; 25_000];
        assert_eq!(
            request_ranges(&small),
            vec![0..10_000, 10_000..20_000, 20_000..25_000]
        );
        let big = vec![0u8; 30 << 20];
        let records = vec![&big[..]; 3];
        // 40 MiB of base64 each: one per request.
        assert_eq!(request_ranges(&records), vec![0..1, 1..2, 2..3]);
        assert!(request_ranges(&[]).is_empty());
    }

    #[test]
    fn requests_and_answers_follow_the_spec() {
        let body: Value =
            serde_json::from_slice(&request_body("id-1", 7, [&b"ab"[..]].into_iter())).unwrap();
        assert_eq!(
            body,
            json!({"requestId": "id-1", "timestamp": 7, "records": [{"data": "YWI="}]})
        );
        assert_eq!(
            common_attributes_header(&[("env".into(), "dev".into())]).unwrap(),
            r#"{"commonAttributes":{"env":"dev"}}"#
        );
        assert_eq!(common_attributes_header(&[]), None);
        assert!(check_answer(200, br#"{"requestId":"id-1","timestamp":8}"#, "id-1").is_ok());
        assert!(
            !check_answer(200, br#"{"requestId":"other"}"#, "id-1")
                .unwrap_err()
                .permanent
        );
        assert!(check_answer(200, b"ok", "id-1").is_err());
        let e = check_answer(
            500,
            br#"{"requestId":"id-1","errorMessage":"disk full"}"#,
            "id-1",
        )
        .unwrap_err();
        assert!(!e.permanent && e.message.contains("disk full"));
        assert!(check_answer(413, b"", "id-1").unwrap_err().permanent);
    }

    #[test]
    fn error_lines_have_aws_fields() {
        let line: Value =
            serde_json::from_slice(&error_record(3, 5, "boom", 9, b"hi", "obj.7")).unwrap();
        assert_eq!(
            line,
            json!({"attemptsMade": 3, "arrivalTimestamp": 5,
                   "errorCode": "HttpEndpoint.DestinationException", "errorMessage": "boom",
                   "attemptEndingTimestamp": 9, "rawData": "aGk=", "subsequenceNumber": 0,
                   "dataId": "obj.7"})
        );
    }
}
