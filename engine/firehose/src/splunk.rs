//! The Splunk destination (`SplunkDestinationConfiguration`), the pure half:
//! its configuration with AWS's defaults, its description, the HTTP Event
//! Collector (HEC) requests with indexer acknowledgement, their answers, and
//! the failed-event lines AWS writes. The requests are sent by
//! `delivery/search.rs`.
//!
//! Requests: `POST <HECEndpoint>/services/collector/raw` (`HECEndpointType`
//! Raw: the records' bytes concatenated as given; AWS adds no delimiter) or
//! `/services/collector/event` (Event: AWS expects records already shaped as
//! HEC events, "preprocessed with Lambda"; a record that is a JSON object
//! with an `event` member is sent as it is, any other record is wrapped as
//! `{"event": <the record>}`, as JSON when it is JSON and as a string
//! otherwise: Riffle's choice, so plain records index instead of failing),
//! with `Authorization: Splunk <HECToken>` and `X-Splunk-Request-Channel:
//! <channel>`, a GUID per delivery stream incarnation. HEC answers
//! `{"text":"Success","code":0,"ackId":N}`; Firehose then polls `POST
//! /services/collector/ack` with `{"acks":[N]}` until `{"acks":{"N":true}}`
//! or `HECAcknowledgmentTimeoutInSeconds` (`Splunk.AckTimeout`: the data may
//! be indexed all the same, and is backed up). An answer without an `ackId`
//! means acknowledgement is off (`Splunk.DisabledAck`): AWS requires it.
//!
//! Every failure is retried: `RetryOptions` counts from the first failure and
//! leaves out the time spent waiting for acknowledgements. Then the records go
//! to the backup bucket under the `splunk-failed` error output type as
//! `{"attemptsMade","arrivalTimestamp","errorCode","errorMessage",
//! "attemptEndingTimestamp","rawData","EventId"}`; `EventId` is
//! `<object id>.<record index>` (AWS's is the record's sequence number and
//! subsequence).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_protocol::Error;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::destination::S3Destination;
use crate::members::{S3_UPDATE, backup, buffering, retry_ms, with_backup_defaults};
use crate::opensearch::{answer_text, capped};

/// AWS's Splunk defaults: 5 MiB or 60 s, retried for an hour, acknowledged
/// within 180 s (180-600).
pub const SIZE_MIB_DEFAULT: u64 = 5;
pub const INTERVAL_S_DEFAULT: u64 = 60;
pub const RETRY_S_DEFAULT: u64 = 3600;
pub const ACK_TIMEOUT_S_DEFAULT: u64 = 180;
const ACK_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u64> = 180..=600;
/// Request bodies are cut at this many bytes: the buffer's largest (5 MB),
/// well under HEC's default `max_content_length` (800 MB).
pub const REQUEST_BYTES_MAX: usize = 5 * 1024 * 1024;
/// The error output type of failed events (`!{firehose:error-output-type}`).
pub const ERROR_OUTPUT_TYPE: &str = "splunk-failed";
/// HEC's paths.
pub const RAW_PATH: &str = "/services/collector/raw";
pub const EVENT_PATH: &str = "/services/collector/event";
pub const ACK_PATH: &str = "/services/collector/ack";
/// AWS's message for an acknowledgement that did not come in time.
pub const ACK_TIMEOUT_MESSAGE: &str = "Did not receive an acknowledgement from HEC before the HEC acknowledgement timeout expired. Despite the acknowledgement timeout, it's possible the data was indexed successfully in Splunk. Amazon Data Firehose backs up in Amazon S3 data for which the acknowledgement timeout expired.";

/// `HECEndpointType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointType {
    Raw,
    Event,
}

/// A Splunk destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplunkDestination {
    /// `HECEndpoint` without a trailing `/`.
    pub endpoint: String,
    pub endpoint_type: EndpointType,
    pub token: String,
    pub ack_timeout_ms: u64,
    pub size_bytes: u64,
    pub interval_ms: u64,
    pub retry_ms: u64,
    /// `AllEvents`: every record also goes to the backup bucket.
    pub backup_all: bool,
    pub backup: S3Destination,
}

impl SplunkDestination {
    /// The URL records are posted to.
    pub fn events_url(&self) -> String {
        let path = match self.endpoint_type {
            EndpointType::Raw => RAW_PATH,
            EndpointType::Event => EVENT_PATH,
        };
        format!("{}{path}", self.endpoint)
    }

    pub fn ack_url(&self) -> String {
        format!("{}{ACK_PATH}", self.endpoint)
    }

    /// The `Authorization` header.
    pub fn authorization(&self) -> String {
        format!("Splunk {}", self.token)
    }
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
        .entry("HECAcknowledgmentTimeoutInSeconds")
        .or_insert_with(|| json!(ACK_TIMEOUT_S_DEFAULT));
    config
        .entry("RetryOptions")
        .or_insert_with(|| json!({"DurationInSeconds": RETRY_S_DEFAULT}));
    config
        .entry("S3BackupMode")
        .or_insert_with(|| json!("FailedEventsOnly"));
    config
        .entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    with_backup_defaults(config)
}

/// Reads (and so checks) a stored Splunk destination.
pub fn of_config(config: &Map<String, Value>) -> Result<SplunkDestination, Error> {
    crate::members::refuse_secrets_manager(config, "HECToken")?;
    let endpoint = config
        .get("HECEndpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("HECEndpoint is required"))?;
    let url = crate::http_client::HttpUrl::parse(endpoint)
        .map_err(|e| invalid(format!("HECEndpoint: {e}")))?;
    if url.path != "/" || endpoint.contains(['?', '#']) {
        return Err(invalid(format!(
            "HECEndpoint {endpoint} must be the collector's base URL (https://HOST:PORT): Riffle appends /services/collector/..."
        )));
    }
    let endpoint_type = match config.get("HECEndpointType").and_then(Value::as_str) {
        Some("Raw") => EndpointType::Raw,
        Some("Event") => EndpointType::Event,
        Some(other) => {
            return Err(invalid(format!(
                "HECEndpointType {other} is not Raw or Event."
            )));
        }
        None => return Err(invalid("HECEndpointType is required")),
    };
    let token = config
        .get("HECToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("HECToken is required: HEC refuses requests without a token"))?;
    if token.bytes().any(|b| b.is_ascii_control()) {
        return Err(invalid("HECToken must not contain control characters"));
    }
    let ack_timeout_s = config
        .get("HECAcknowledgmentTimeoutInSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(ACK_TIMEOUT_S_DEFAULT);
    if !ACK_TIMEOUT_S_RANGE.contains(&ack_timeout_s) {
        return Err(invalid(format!(
            "HECAcknowledgmentTimeoutInSeconds {ack_timeout_s} is not within 180-600."
        )));
    }
    let backup_all = match config.get("S3BackupMode").and_then(Value::as_str) {
        None | Some("FailedEventsOnly") => false,
        Some("AllEvents") => true,
        Some(other) => {
            return Err(invalid(format!(
                "S3BackupMode {other} is not FailedEventsOnly or AllEvents."
            )));
        }
    };
    let (size_bytes, interval_ms) = buffering(config, SIZE_MIB_DEFAULT, INTERVAL_S_DEFAULT)?;
    Ok(SplunkDestination {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        endpoint_type,
        token: token.to_string(),
        ack_timeout_ms: ack_timeout_s * 1000,
        size_bytes,
        interval_ms,
        retry_ms: retry_ms(config, RETRY_S_DEFAULT),
        backup_all,
        backup: backup(config)?,
    })
}

/// The stored configuration after an update (AWS's rule: the backup mode may
/// go from FailedEventsOnly to AllEvents, not back).
pub fn updated(
    current: &Map<String, Value>,
    update: &Map<String, Value>,
) -> Result<Map<String, Value>, Error> {
    let mode = |c: &Map<String, Value>| {
        c.get("S3BackupMode")
            .and_then(Value::as_str)
            .unwrap_or("FailedEventsOnly")
            .to_string()
    };
    let config = crate::members::updated(current, update, &[S3_UPDATE]);
    if mode(current) == "AllEvents" && mode(&config) != "AllEvents" {
        return Err(invalid(
            "S3BackupMode cannot be changed from AllEvents to FailedEventsOnly.",
        ));
    }
    of_config(&config)?;
    Ok(config)
}

/// `SplunkDestinationDescription`: the configuration with the backup as an
/// `S3DestinationDescription` (the model's description has `HECToken`).
pub fn describe(config: &Map<String, Value>) -> Value {
    crate::opensearch::describe(config)
}

/// The `X-Splunk-Request-Channel` of a delivery stream incarnation: a GUID
/// derived from its ARN and incarnation, the same on every request and
/// after a restart (acknowledgement ids belong to a channel).
pub fn channel(delivery_stream_arn: &str, incarnation: u64) -> String {
    let mut h = Sha256::new();
    h.update(delivery_stream_arn.as_bytes());
    h.update(b"splunk-channel");
    h.update(incarnation.to_le_bytes());
    let digest: [u8; 32] = h.finalize().into();
    riffle_aws::ids::uuid_v4(digest[..16].try_into().expect("16 bytes"))
}

/// A record as one HEC event (see the module doc).
pub fn event_of(record: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(record).ok();
    match parsed {
        Some(Value::Object(o)) if o.contains_key("event") => record.to_vec(),
        Some(v) => serde_json::to_vec(&json!({ "event": v })).expect("JSON serializes"),
        None => serde_json::to_vec(&json!({ "event": String::from_utf8_lossy(record) }))
            .expect("JSON serializes"),
    }
}

/// The bytes record `record` adds to a request body.
pub fn body_part(endpoint_type: EndpointType, record: &[u8]) -> Vec<u8> {
    match endpoint_type {
        EndpointType::Raw => record.to_vec(),
        EndpointType::Event => event_of(record),
    }
}

/// `{"acks":[N]}`.
pub fn ack_body(ack_id: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({ "acks": [ack_id] })).expect("JSON serializes")
}

/// Why an attempt failed, in AWS's error codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

/// AWS's error code for HEC's answer code (HEC's documented status codes).
fn code_of(status: u16, hec_code: Option<u64>) -> &'static str {
    match (hec_code, status) {
        (Some(1), _) => "Splunk.DisabledToken",
        (Some(2..=4), _) | (_, 401) => "Splunk.InvalidToken",
        (Some(5 | 6 | 12 | 13 | 15), _) => "Splunk.InvalidDataFormat",
        (Some(7), _) => "Splunk.InvalidIndex",
        (Some(10 | 11), _) => "Splunk.ProxyWithoutStickySessions",
        (Some(14), _) => "Splunk.DisabledAck",
        (_, 403) => "Splunk.InvalidToken",
        (_, 404) => "Splunk.URLNotFound",
        _ => "Splunk.ServerError",
    }
}

fn failure(status: u16, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let hec_code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64);
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("text"))
        .and_then(Value::as_str)
        .map(Cow::Borrowed)
        .unwrap_or_else(|| answer_text(body));
    Failure {
        code: code_of(status, hec_code),
        message: capped(format!("HEC answered {status}: {text}")),
    }
}

/// Reads HEC's answer to posted events: the acknowledgement id to poll.
pub fn read_post_answer(status: u16, body: &[u8]) -> Result<u64, Failure> {
    if status != 200 {
        return Err(failure(status, body));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|_| Failure {
        code: "Splunk.ServerError",
        message: capped(format!("HEC's answer is not JSON: {}", answer_text(body))),
    })?;
    match (parsed.get("code").and_then(Value::as_u64), parsed.get("ackId").and_then(Value::as_u64)) {
        (Some(0), Some(ack)) => Ok(ack),
        (Some(0), None) => Err(Failure {
            code: "Splunk.DisabledAck",
            message: "HEC answered without an ackId: indexer acknowledgement is disabled for the HEC token. Enable it: Firehose requires it.".into(),
        }),
        _ => Err(failure(status, body)),
    }
}

/// Reads HEC's answer to an acknowledgement poll for `ack_id`: whether it is
/// indexed.
pub fn read_ack_answer(status: u16, body: &[u8], ack_id: u64) -> Result<bool, Failure> {
    if status != 200 {
        return Err(failure(status, body));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|_| failure(status, body))?;
    parsed
        .get("acks")
        .and_then(|a| a.get(ack_id.to_string()))
        .and_then(Value::as_bool)
        .ok_or_else(|| Failure {
            code: "Splunk.ServerError",
            message: capped(format!(
                "HEC's acknowledgement answer does not name ackId {ack_id}: {}",
                answer_text(body)
            )),
        })
}

/// The `EventId` of record `index` of the object `object_id` names.
pub fn event_id(object_id: &str, index: usize) -> String {
    format!("{object_id}.{index}")
}

/// One line of a `splunk-failed` error object, as AWS writes it.
pub fn error_record(
    attempts: u32,
    arrival_ms: i64,
    failure: &Failure,
    ended_ms: i64,
    raw: &[u8],
    event_id: &str,
) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "attemptsMade": attempts,
        "arrivalTimestamp": arrival_ms,
        "errorCode": failure.code,
        "errorMessage": failure.message,
        "attemptEndingTimestamp": ended_ms,
        "rawData": BASE64.encode(raw),
        "EventId": event_id,
    }))
    .expect("JSON serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "HECEndpoint": "https://splunk.local:8088",
            "HECEndpointType": "Raw",
            "HECToken": "11111111-2222-3333-4444-555555555555",
            "S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::backup"},
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        with_defaults(c.as_object().unwrap().clone())
    }

    #[test]
    fn defaults_are_aws_and_described() {
        let c = config(json!({}));
        let d = of_config(&c).unwrap();
        assert_eq!(
            (d.size_bytes, d.interval_ms, d.retry_ms, d.ack_timeout_ms),
            (5 << 20, 60_000, 3_600_000, 180_000)
        );
        assert!(!d.backup_all);
        assert_eq!(
            d.events_url(),
            "https://splunk.local:8088/services/collector/raw"
        );
        assert_eq!(
            d.ack_url(),
            "https://splunk.local:8088/services/collector/ack"
        );
        assert_eq!(
            d.authorization(),
            "Splunk 11111111-2222-3333-4444-555555555555"
        );
        let described = describe(&c);
        assert_eq!(described["S3BackupMode"], "FailedEventsOnly");
        assert_eq!(described["HECAcknowledgmentTimeoutInSeconds"], 180);
        assert_eq!(
            described["BufferingHints"],
            json!({"SizeInMBs": 5, "IntervalInSeconds": 60})
        );
        assert_eq!(
            described["S3DestinationDescription"]["BucketARN"],
            "arn:aws:s3:::backup"
        );
        let e = of_config(&config(
            json!({"HECEndpointType": "Event", "HECEndpoint": "http://h:1/"}),
        ))
        .unwrap();
        assert_eq!(e.events_url(), "http://h:1/services/collector/event");
    }

    #[test]
    fn refusals_and_updates() {
        for (extra, says) in [
            (json!({"HECEndpoint": "splunk:8088"}), "HECEndpoint"),
            (
                json!({"HECEndpoint": "https://h/services/collector"}),
                "base URL",
            ),
            (json!({"HECEndpointType": "Json"}), "Json"),
            (json!({"HECToken": ""}), "HECToken is required"),
            (json!({"HECAcknowledgmentTimeoutInSeconds": 60}), "180-600"),
            (json!({"S3BackupMode": "AllData"}), "AllData"),
            (
                json!({"SecretsManagerConfiguration": {"Enabled": true}}),
                "Secrets Manager",
            ),
            (json!({"BufferingHints": {"IntervalInSeconds": 5}}), "both"),
        ] {
            let e = of_config(&config(extra)).unwrap_err();
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
        let c = config(json!({}));
        let all = updated(
            &c,
            json!({"S3BackupMode": "AllEvents"}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(all["S3BackupMode"], "AllEvents");
        let back = updated(
            &all,
            json!({"S3BackupMode": "FailedEventsOnly"})
                .as_object()
                .unwrap(),
        );
        assert!(back.unwrap_err().message.contains("AllEvents"));
        let u = updated(
            &c,
            json!({"S3Update": {"Prefix": "p/"}}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(u["S3Configuration"]["Prefix"], "p/");
    }

    #[test]
    fn events_and_channels() {
        assert_eq!(
            event_of(br#"{"event":"x","sourcetype":"s"}"#),
            br#"{"event":"x","sourcetype":"s"}"#
        );
        assert_eq!(event_of(br#"{"a":1}"#), br#"{"event":{"a":1}}"#);
        assert_eq!(event_of(b"plain line\n"), br#"{"event":"plain line\n"}"#);
        assert_eq!(event_of(b"42"), br#"{"event":42}"#);
        assert_eq!(body_part(EndpointType::Raw, b"a\n"), b"a\n");
        let arn = "arn:aws:firehose:us-east-1:000000000000:deliverystream/s";
        assert_eq!(channel(arn, 1), channel(arn, 1));
        assert_ne!(channel(arn, 1), channel(arn, 2));
        assert_eq!(channel(arn, 1).len(), 36);
        assert_eq!(ack_body(7), br#"{"acks":[7]}"#);
    }

    #[test]
    fn answers_map_to_aws_error_codes() {
        assert_eq!(
            read_post_answer(200, br#"{"text":"Success","code":0,"ackId":3}"#),
            Ok(3)
        );
        for (status, body, code) in [
            (
                200,
                &br#"{"text":"Success","code":0}"#[..],
                "Splunk.DisabledAck",
            ),
            (
                403,
                br#"{"text":"Invalid token","code":4}"#,
                "Splunk.InvalidToken",
            ),
            (
                401,
                br#"{"text":"Token is required","code":2}"#,
                "Splunk.InvalidToken",
            ),
            (
                403,
                br#"{"text":"Token disabled","code":1}"#,
                "Splunk.DisabledToken",
            ),
            (
                400,
                br#"{"text":"Invalid data format","code":6}"#,
                "Splunk.InvalidDataFormat",
            ),
            (
                400,
                br#"{"text":"Incorrect index","code":7,"invalid-event-number":0}"#,
                "Splunk.InvalidIndex",
            ),
            (
                400,
                br#"{"text":"ACK is disabled","code":14}"#,
                "Splunk.DisabledAck",
            ),
            (
                400,
                br#"{"text":"Invalid data channel","code":11}"#,
                "Splunk.ProxyWithoutStickySessions",
            ),
            (
                503,
                br#"{"text":"Server is busy","code":9}"#,
                "Splunk.ServerError",
            ),
            (404, b"not here", "Splunk.URLNotFound"),
            (200, b"<html>", "Splunk.ServerError"),
        ] {
            let f = read_post_answer(status, body).unwrap_err();
            assert_eq!(f.code, code, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(read_ack_answer(200, br#"{"acks":{"3":true}}"#, 3), Ok(true));
        assert_eq!(
            read_ack_answer(200, br#"{"acks":{"3":false}}"#, 3),
            Ok(false)
        );
        assert!(read_ack_answer(200, br#"{"acks":{}}"#, 3).is_err());
        assert_eq!(
            read_ack_answer(400, br#"{"text":"ACK is disabled","code":14}"#, 3)
                .unwrap_err()
                .code,
            "Splunk.DisabledAck"
        );
    }

    #[test]
    fn failure_messages_are_cut_whatever_hec_answers() {
        use crate::opensearch::FAILURE_MESSAGE_BYTES_MAX;
        // A 200 whose body is not JSON (a proxy's page, say), as large as an
        // answer is read; a long `text`; a long acknowledgement answer.
        let page = vec![b'<'; 8 << 20];
        let text = json!({"text": "t".repeat(100_000), "code": 9}).to_string();
        let acks = json!({"acks": {"4": true}, "pad": "p".repeat(100_000)}).to_string();
        let failures = [
            read_post_answer(200, &page).unwrap_err(),
            read_post_answer(503, &page).unwrap_err(),
            read_post_answer(503, text.as_bytes()).unwrap_err(),
            read_ack_answer(200, &page, 3).unwrap_err(),
            read_ack_answer(200, acks.as_bytes(), 3).unwrap_err(),
        ];
        for f in &failures {
            assert!(
                f.message.len() <= FAILURE_MESSAGE_BYTES_MAX && f.message.ends_with("..."),
                "{}: {} bytes",
                f.code,
                f.message.len()
            );
        }
        assert_eq!(failures[0].code, "Splunk.ServerError");
        assert!(
            failures[0]
                .message
                .starts_with("HEC's answer is not JSON: <<<")
        );
        // So each record's error line stays small.
        let line = error_record(1, 5, &failures[0], 9, b"ab", "e.0");
        assert!(line.len() < 1024, "{} bytes", line.len());
    }

    #[test]
    fn failed_event_lines_are_aws_json() {
        let f = Failure {
            code: "Splunk.AckTimeout",
            message: ACK_TIMEOUT_MESSAGE.into(),
        };
        let line: Value =
            serde_json::from_slice(&error_record(1, 5, &f, 9, b"ab", &event_id("s-1-0-7", 2)))
                .unwrap();
        assert_eq!(
            line,
            json!({"attemptsMade": 1, "arrivalTimestamp": 5, "errorCode": "Splunk.AckTimeout",
            "errorMessage": ACK_TIMEOUT_MESSAGE, "attemptEndingTimestamp": 9, "rawData": "YWI=",
            "EventId": "s-1-0-7.2"})
        );
    }
}
