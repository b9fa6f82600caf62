//! CloudTrail records of the gateway's calls: what a request was (its
//! service's `eventSource`, the operation, who sent it from where, its
//! parameters) and how it ended (the answer's elements or its error), in
//! CloudTrail's record shape, handed to the audit log (`crate::audit`).
//!
//! Every operation of every service is a management event, but those a
//! service calls data events (`Service::operation`: PutRecord, GetRecords,
//! PutMedia, ...), which are recorded only when the server is asked to.
//! Parameters are the request's input with its member names in lower camel
//! case (`StreamName` → `streamName`, as CloudTrail writes them), secrets
//! blanked (`""`; their values are also masked in an error's message, which
//! may quote them) and record data left out; a request or answer over
//! `ELEMENTS_BYTES_MAX` is not decoded (`additionalEventData` says so).
//! Answers of read-only calls (Describe*, List*, Get*, ...) are not
//! recorded, as on AWS. A call whose client went away before its answer
//! (it may still have changed something) is recorded with the errorCode
//! `RequestCanceled`.

use std::net::IpAddr;
use std::sync::Arc;

/// Requests and answers larger than this are not decoded into the record.
const ELEMENTS_BYTES_MAX: usize = 64 << 10;

use serde_json::{Map, Value, json};

use crate::audit::AuditLog;

/// What the gateway records, and for whom.
#[derive(Clone, Debug)]
pub struct Trail {
    pub log: Arc<AuditLog>,
    /// Record data events too.
    pub data_events: bool,
    pub account: String,
    pub region: String,
    /// User names by access key id (the key id itself when none is named).
    pub users: std::collections::BTreeMap<String, String>,
    /// The account of each access key's user, where it is not `account`
    /// (a user of another account, from the identities file).
    pub accounts: std::collections::BTreeMap<String, String>,
}

/// A request's side of its record, taken before the service answers.
pub(crate) struct Draft {
    time_ms: i64,
    source: &'static str,
    name: String,
    data: bool,
    access_key: Option<String>,
    /// Empty when not known.
    source_ip: String,
    user_agent: Option<String>,
    parameters: Value,
    /// The values of the secret members blanked (masked wherever else they
    /// show: an error's message).
    secrets: Vec<String>,
    /// The request's body was too large to decode: its size.
    omitted: Option<usize>,
}

/// A drafted record waiting for its answer: recorded as canceled when it is
/// dropped without one (the client went away mid-call).
pub(crate) struct Pending {
    trail: Arc<Trail>,
    draft: Option<Draft>,
}

impl Pending {
    pub(crate) fn new(trail: Arc<Trail>, draft: Draft) -> Pending {
        Pending {
            trail,
            draft: Some(draft),
        }
    }

    /// Completes the record with the answer (`body`: the whole answer,
    /// empty when streamed) and hands it to the log.
    pub(crate) fn finish(mut self, answer: &http::response::Parts, body: &[u8]) {
        if let Some(d) = self.draft.take() {
            let record = self.trail.record(d, answer, body, &event_id());
            self.trail.log.record(record.to_string());
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(d) = self.draft.take() {
            let mut record = self.trail.record(d, &canceled(), &[], &event_id());
            record["errorMessage"] =
                Value::String("The client closed the connection before the answer.".into());
            self.trail.log.record(record.to_string());
        }
    }
}

/// The answer a canceled call is recorded with.
fn canceled() -> http::response::Parts {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = http::StatusCode::from_u16(499).expect("a valid status");
    parts.headers.insert(
        "x-amzn-ErrorType",
        http::HeaderValue::from_static("RequestCanceled"),
    );
    parts
}

/// An operation of a service, as the audit trail names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation<'a> {
    /// Its name in the service's model (`CreateStream`).
    pub name: &'a str,
    /// CloudTrail calls it a data event (recorded only when asked).
    pub data: bool,
    /// A parameter the request's path carries (`UUID` of
    /// `/2015-03-31/event-source-mappings/{UUID}`).
    pub label: Option<(&'static str, &'a str)>,
}

impl Trail {
    /// The draft of a request's record, or none when it is not recorded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn draft(
        &self,
        signing_name: &'static str,
        operation: Operation<'_>,
        parts: &http::request::Parts,
        body: &[u8],
        access_key: Option<&str>,
        peer: Option<IpAddr>,
        time_ms: i64,
    ) -> Option<Draft> {
        if operation.data && !self.data_events {
            return None;
        }
        let omitted = (body.len() > ELEMENTS_BYTES_MAX).then_some(body.len());
        let mut parameters = match decode(&parts.headers, body).filter(|_| omitted.is_none()) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some((name, value)) = operation.label {
            parameters.insert(name.into(), Value::String(value.into()));
        }
        let mut secrets = Vec::new();
        let parameters = if parameters.is_empty() {
            Value::Null
        } else {
            cloudtrail_case(Value::Object(parameters), &mut secrets)
        };
        Some(Draft {
            time_ms,
            source: signing_name,
            name: operation.name.to_string(),
            data: operation.data,
            access_key: access_key.map(String::from),
            source_ip: peer.map(|p| p.to_string()).unwrap_or_default(),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            parameters,
            secrets,
            omitted,
        })
    }

    fn record(
        &self,
        d: Draft,
        answer: &http::response::Parts,
        body: &[u8],
        event_id: &str,
    ) -> Value {
        let read_only = ["Describe", "List", "Get", "Discover", "Subscribe"]
            .iter()
            .any(|p| d.name.starts_with(p));
        let identity = match &d.access_key {
            Some(key) => {
                let user = self.users.get(key).map_or(key.as_str(), String::as_str);
                let account = self.accounts.get(key).unwrap_or(&self.account);
                json!({
                    "type": "IAMUser",
                    "principalId": key,
                    "arn": format!("arn:aws:iam::{account}:user/{user}"),
                    "accountId": account,
                    "accessKeyId": key,
                    "userName": user,
                })
            }
            // No signature asked for: CloudTrail's anonymous caller.
            None => json!({
                "type": "AWSAccount",
                "principalId": "",
                "accountId": "ANONYMOUS_PRINCIPAL",
            }),
        };
        let request_id = ["x-amzn-RequestId", "x-amz-request-id"]
            .iter()
            .find_map(|h| answer.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut record = json!({
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": event_time(d.time_ms),
            "eventSource": format!("{}.amazonaws.com", d.source),
            "eventName": d.name,
            "awsRegion": self.region,
            "sourceIPAddress": d.source_ip,
            "userAgent": d.user_agent,
            "requestParameters": d.parameters,
            "responseElements": Value::Null,
            "requestID": request_id,
            "eventID": event_id,
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": !d.data,
            "recipientAccountId": self.account,
            "eventCategory": if d.data { "Data" } else { "Management" },
        });
        if let Some(n) = d.omitted {
            record["additionalEventData"] = json!({ "requestParametersOmittedBytes": n });
        }
        if answer.status.is_success() {
            if !read_only
                && body.len() <= ELEMENTS_BYTES_MAX
                && let Some(v) = decode(&answer.headers, body)
                && v.as_object().is_some_and(|m| !m.is_empty())
            {
                record["responseElements"] = cloudtrail_case(v, &mut Vec::new());
            }
        } else {
            let code = answer
                .headers
                .get("x-amzn-ErrorType")
                .and_then(|v| v.to_str().ok())
                // `Code:https://...` in some REST answers.
                .map(|c| c.split(':').next().unwrap_or(c).to_string())
                .unwrap_or_else(|| answer.status.as_u16().to_string());
            record["errorCode"] = Value::String(code);
            // Not when the request was not read: its secrets are not known.
            if d.omitted.is_none()
                && body.len() <= ELEMENTS_BYTES_MAX
                && let Some(Value::Object(m)) = decode(&answer.headers, body)
                && let Some(Value::String(message)) = m.get("message").or_else(|| m.get("Message"))
            {
                // A validation message may quote a secret it refused.
                let mut message = message.clone();
                for s in &d.secrets {
                    message = message.replace(s.as_str(), "***");
                }
                record["errorMessage"] = Value::String(message);
            }
        }
        record
    }
}

/// A JSON or CBOR body (by its Content-Type), if it is one.
fn decode(headers: &http::HeaderMap, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let cbor = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("cbor"));
    if cbor {
        riffle_aws::cbor::to_json(body).ok()
    } else {
        serde_json::from_slice(body).ok()
    }
}

/// Member names as CloudTrail writes them (the first letter lower case:
/// `StreamName` → `streamName`, `KMSKeyId` → `kMSKeyId`), secrets blanked
/// (their string values kept in `secrets`), record data left out.
fn cloudtrail_case(v: Value, secrets: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| k != "Data")
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        collect_strings(&v, secrets);
                        Value::String(String::new())
                    } else {
                        cloudtrail_case(v, secrets)
                    };
                    (lower_first(&k), v)
                })
                .collect(),
        ),
        Value::Array(a) => {
            Value::Array(a.into_iter().map(|v| cloudtrail_case(v, secrets)).collect())
        }
        v => v,
    }
}

/// Every non-empty string in `v`.
fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn lower_first(k: &str) -> String {
    let mut chars = k.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A member whose value is a credential: blanked, as CloudTrail blanks
/// Firehose's `password`.
fn secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "user"
        || [
            "password",
            "passphrase",
            "secret",
            "token",
            "accesskey",
            "privatekey",
            "credential",
            "authorization",
            "username",
            "accounturl",
            "attributevalue",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// CloudTrail's `eventTime`: UTC to the second.
fn event_time(ms: i64) -> String {
    let t = riffle_protocol::time::format_rfc3339_ms(ms);
    // 2026-12-05T00:40:00.123Z -> 2026-12-05T00:40:00Z
    format!("{}Z", &t[..19])
}

fn event_id() -> String {
    super::random_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(dir: &std::path::Path) -> Trail {
        let log = AuditLog::open(crate::audit::AuditConfig::new(
            dir.to_path_buf(),
            "123456789012",
            "us-east-1",
        ))
        .unwrap();
        Trail {
            log: Arc::new(log),
            data_events: false,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            users: [("AKIDALICE".to_string(), "alice".to_string())].into(),
            accounts: Default::default(),
        }
    }

    fn request(body_type: &str) -> http::request::Parts {
        http::Request::post("/")
            .header("content-type", body_type)
            .header("user-agent", "aws-cli/2.15")
            .header("x-amz-target", "Firehose_20150804.CreateDeliveryStream")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn answer(status: u16, error: Option<&str>) -> http::response::Parts {
        let mut b = http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-RequestId", "req-1");
        if let Some(e) = error {
            b = b.header("x-amzn-ErrorType", e);
        }
        b.body(()).unwrap().into_parts().0
    }

    const CREATE: Operation<'static> = Operation {
        name: "CreateDeliveryStream",
        data: false,
        label: None,
    };

    #[test]
    fn a_call_becomes_cloudtrails_record() {
        let dir = tempfile::tempdir().unwrap();
        let t = trail(dir.path());
        let body = br#"{"DeliveryStreamName":"s","HttpEndpointDestinationConfiguration":{"EndpointConfiguration":{"Url":"https://x","AccessKey":"k3y"},"RetryOptions":{"DurationInSeconds":60}}}"#;
        let d = t
            .draft(
                "firehose",
                CREATE,
                &request("application/x-amz-json-1.1"),
                body,
                Some("AKIDALICE"),
                Some("10.1.2.3".parse().unwrap()),
                1_764_895_231_123,
            )
            .unwrap();
        let r = t.record(
            d,
            &answer(200, None),
            br#"{"DeliveryStreamARN":"arn:aws:firehose:us-east-1:123456789012:deliverystream/s"}"#,
            "ev-1",
        );
        assert_eq!(
            r,
            json!({
                "eventVersion": "1.08",
                "userIdentity": {"type": "IAMUser", "principalId": "AKIDALICE",
                    "arn": "arn:aws:iam::123456789012:user/alice", "accountId": "123456789012",
                    "accessKeyId": "AKIDALICE", "userName": "alice"},
                "eventTime": "2025-12-05T00:40:31Z",
                "eventSource": "firehose.amazonaws.com",
                "eventName": "CreateDeliveryStream",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "10.1.2.3",
                "userAgent": "aws-cli/2.15",
                "requestParameters": {"deliveryStreamName": "s", "httpEndpointDestinationConfiguration": {
                    "endpointConfiguration": {"url": "https://x", "accessKey": ""},
                    "retryOptions": {"durationInSeconds": 60}}},
                "responseElements": {"deliveryStreamARN": "arn:aws:firehose:us-east-1:123456789012:deliverystream/s"},
                "requestID": "req-1",
                "eventID": "ev-1",
                "readOnly": false,
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "recipientAccountId": "123456789012",
                "eventCategory": "Management",
            })
        );
    }

    #[test]
    fn a_failure_has_its_code_and_message_and_no_elements() {
        let dir = tempfile::tempdir().unwrap();
        let t = trail(dir.path());
        let d = t
            .draft(
                "firehose",
                CREATE,
                &request("application/x-amz-json-1.1"),
                b"{}",
                None,
                Some("::1".parse().unwrap()),
                0,
            )
            .unwrap();
        let r = t.record(
            d,
            &answer(400, Some("ResourceInUseException")),
            br#"{"__type":"ResourceInUseException","message":"in use"}"#,
            "e",
        );
        assert_eq!(r["errorCode"], "ResourceInUseException");
        assert_eq!(r["errorMessage"], "in use");
        assert_eq!(r["responseElements"], Value::Null);
        assert_eq!(r["requestParameters"], Value::Null);
        assert_eq!(r["userIdentity"]["accountId"], "ANONYMOUS_PRINCIPAL");
        assert_eq!(r["sourceIPAddress"], "::1");
    }

    #[test]
    fn cbor_inputs_are_read_and_record_data_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = trail(dir.path());
        let put = Operation {
            name: "PutRecord",
            data: true,
            label: None,
        };
        let body = riffle_aws::cbor::from_json(
            &json!({"StreamName": "s", "PartitionKey": "k", "Data": "aGVsbG8="}),
            &riffle_aws::cbor::Members {
                blobs: &["Data"],
                timestamps: &[],
            },
        );
        let parts = request("application/x-amz-cbor-1.1");
        assert!(
            t.draft(
                "kinesis",
                put,
                &parts,
                &body,
                None,
                Some("127.0.0.1".parse().unwrap()),
                0
            )
            .is_none(),
            "data events are off"
        );
        t.data_events = true;
        let d = t
            .draft(
                "kinesis",
                put,
                &parts,
                &body,
                None,
                Some("127.0.0.1".parse().unwrap()),
                0,
            )
            .unwrap();
        let r = t.record(d, &answer(200, None), b"", "e");
        assert_eq!(
            r["requestParameters"],
            json!({"streamName": "s", "partitionKey": "k"})
        );
        assert_eq!(r["eventCategory"], "Data");
        assert_eq!(r["managementEvent"], false);
    }

    #[test]
    fn read_only_answers_are_not_recorded_and_labels_are_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let t = trail(dir.path());
        let get = Operation {
            name: "GetEventSourceMapping",
            data: false,
            label: Some(("UUID", "u-1")),
        };
        let d = t
            .draft(
                "lambda",
                get,
                &request("application/json"),
                b"",
                None,
                Some("127.0.0.1".parse().unwrap()),
                0,
            )
            .unwrap();
        let r = t.record(
            d,
            &answer(200, None),
            br#"{"UUID":"u-1","State":"Enabled"}"#,
            "e",
        );
        assert_eq!(r["requestParameters"], json!({"uUID": "u-1"}));
        assert_eq!(r["responseElements"], Value::Null);
        assert_eq!(r["readOnly"], true);
    }

    #[test]
    fn a_secret_quoted_by_an_error_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let t = trail(dir.path());
        let body = br#"{"DeliveryStreamName":"s","RedshiftDestinationConfiguration":{"Username":"bob","Password":"hunt3"}}"#;
        let d = t
            .draft(
                "firehose",
                CREATE,
                &request("application/x-amz-json-1.1"),
                body,
                None,
                None,
                0,
            )
            .unwrap();
        let r = t.record(
            d,
            &answer(400, Some("ValidationException")),
            br#"{"message":"Value 'hunt3' at 'redshiftDestinationConfiguration.password' failed to satisfy constraint"}"#,
            "e",
        );
        let text = r.to_string();
        assert!(!text.contains("hunt3") && !text.contains("bob"), "{text}");
        assert_eq!(
            r["errorMessage"],
            "Value '***' at 'redshiftDestinationConfiguration.password' failed to satisfy constraint"
        );
        assert_eq!(
            r["requestParameters"]["redshiftDestinationConfiguration"],
            json!({"username": "", "password": ""})
        );
    }

    #[test]
    fn a_large_request_is_not_decoded_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let t = trail(dir.path());
        let body = format!(
            r#"{{"StreamName":"x","Pad":"{}"}}"#,
            "p".repeat(ELEMENTS_BYTES_MAX)
        );
        let d = t
            .draft(
                "kinesis",
                CREATE,
                &request("application/x-amz-json-1.1"),
                body.as_bytes(),
                None,
                None,
                0,
            )
            .unwrap();
        let r = t.record(d, &answer(200, None), b"{}", "e");
        assert_eq!(r["requestParameters"], Value::Null);
        assert_eq!(
            r["additionalEventData"]["requestParametersOmittedBytes"],
            body.len()
        );
    }

    #[test]
    fn a_call_whose_client_went_away_is_recorded_as_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(trail(dir.path()));
        let d = t
            .draft(
                "firehose",
                CREATE,
                &request("application/x-amz-json-1.1"),
                b"{}",
                None,
                None,
                0,
            )
            .unwrap();
        drop(Pending::new(t.clone(), d));
        let d = t
            .draft(
                "firehose",
                CREATE,
                &request("application/x-amz-json-1.1"),
                b"{}",
                None,
                None,
                0,
            )
            .unwrap();
        Pending::new(t.clone(), d).finish(&answer(200, None), b"{}");
        t.log.close();
        let lines: Vec<Value> = crate::audit::files(dir.path())
            .unwrap()
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<Value>>()
            })
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["errorCode"], "RequestCanceled");
        assert!(lines[1].get("errorCode").is_none());
    }
}
