//! A subset of Amazon CloudWatch's API on the HTTP port, over the metrics
//! the services keep (`ring.rs`): `ListMetrics`, `GetMetricStatistics` and
//! `GetMetricData` (metric statistics, not math expressions), AWS JSON 1.0
//! with `X-Amz-Target: GraniteServiceVersion20100801.<Operation>` (what
//! botocore, boto3 and the AWS CLI send), signed for `monitoring`. Inputs
//! are checked against CloudWatch's model; errors carry CloudWatch's codes
//! (`InvalidParameterValue`, `MissingParameter`,
//! `InvalidParameterCombination`) in the `x-amzn-query-error` header the
//! SDKs read for this query-compatible service.

mod query;
pub mod ring;

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::service::{Call, HttpBody, LocalFuture, Route, Service, whole};
use ring::{Ring, SeriesKey, Stat};

/// The target prefix of CloudWatch's JSON protocol.
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Datapoints one GetMetricStatistics answers at most (CloudWatch's limit).
const DATAPOINTS_MAX: i64 = 1_440;
/// Queries one GetMetricData takes (CloudWatch's limit).
const QUERIES_MAX: usize = 500;
/// Timestamps are taken from 1970 to this (seconds; the year 5138).
const TIME_S_MAX: f64 = 1e11;
/// The longest period (seconds): a year.
const PERIOD_S_MAX: i64 = 365 * 86_400;
/// Metrics one ListMetrics page holds (CloudWatch's page size).
const LIST_PAGE: usize = 500;
const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// CloudWatch's API over `ring`.
pub struct CloudWatchService {
    ring: Arc<Ring>,
}

impl CloudWatchService {
    pub fn new(ring: Arc<Ring>) -> CloudWatchService {
        CloudWatchService { ring }
    }
}

/// A refusal in CloudWatch's words.
#[derive(Debug)]
struct CwError {
    code: &'static str,
    message: String,
}

/// The model's checks, in CloudWatch's codes.
fn model_refusal(r: riffle_aws::error::Refusal) -> CwError {
    let code = match r.kind.as_str() {
        "SerializationException" => "InvalidParameterValue",
        _ if r.message.contains("null") || r.message.contains("required") => "MissingParameter",
        _ => "InvalidParameterValue",
    };
    CwError {
        code,
        message: r.message,
    }
}

fn invalid(message: impl Into<String>) -> CwError {
    CwError {
        code: "InvalidParameterValue",
        message: message.into(),
    }
}

fn missing(member: &str) -> CwError {
    CwError {
        code: "MissingParameter",
        message: format!("The parameter {member} is required."),
    }
}

impl CwError {
    fn response(&self) -> Response<HttpBody> {
        let status = match self.code {
            "InternalServiceError" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({
            "__type": format!("com.amazonaws.cloudwatch#{}Exception", self.code),
            "message": self.message,
        });
        whole(
            Response::builder()
                .status(status)
                .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                .header("x-amzn-query-error", format!("{};Sender", self.code))
                .header("x-amzn-ErrorType", format!("{}Exception", self.code))
                .body(Bytes::from(body.to_string()))
                .expect("a valid response"),
        )
    }
}

impl Service for CloudWatchService {
    fn name(&self) -> &'static str {
        "monitoring"
    }

    fn routes(&self) -> Vec<Route> {
        vec![
            Route::Target {
                prefix: TARGET_PREFIX,
                signing_name: "monitoring",
            },
            Route::Query {
                signing_name: "monitoring",
            },
        ]
    }

    /// A query request's operation is its `Action` (in the form, or a GET's query).
    fn operation_of_call<'a>(
        &self,
        parts: &'a http::request::Parts,
        body: &'a [u8],
    ) -> Option<crate::http::Operation<'a>> {
        if parts.headers.contains_key("x-amz-target") {
            return self.operation(parts);
        }
        let params = query_params(parts, body);
        let op = riffle_aws::model::monitoring().operation(params.get("Action")?)?;
        Some(crate::http::Operation {
            name: op.name.as_str(),
            data: false,
            label: None,
        })
    }

    fn refusal(
        &self,
        parts: &http::request::Parts,
        r: &riffle_aws::error::Refusal,
    ) -> Option<Response<HttpBody>> {
        if parts.headers.contains_key("x-amz-target") {
            return None;
        }
        let code = query::gateway_code(&r.kind);
        // The query protocol's statuses: a refused identity or access is 403.
        let status = match code {
            "AccessDenied"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationToken" => StatusCode::FORBIDDEN,
            _ => r.status,
        };
        Some(xml_answer(
            status,
            &query::error(code, &r.message, status.as_u16() < 500, &request_id()),
        ))
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(async move { self.dispatch(&call) })
    }

    fn has_operation(&self, operation: &str) -> bool {
        riffle_aws::model::monitoring()
            .operation(operation)
            .is_some()
    }

    fn speaks_json_1_0(&self) -> bool {
        true
    }
}

/// A query request's parameters: a GET's query, and a POST's form body.
fn query_params(
    parts: &http::request::Parts,
    body: &[u8],
) -> std::collections::BTreeMap<String, String> {
    let mut params = query::form(parts.uri.query().unwrap_or(""));
    params.extend(query::form(&String::from_utf8_lossy(body)));
    params
}

fn request_id() -> String {
    crate::http::request_id()
}

fn xml_answer(status: StatusCode, body: &str) -> Response<HttpBody> {
    // The request id of the body, in the header too (as AWS sends it).
    let text = |tag: &str| {
        body.split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut builder = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/xml")
        .header("x-amzn-RequestId", text("RequestId"));
    // An error's code, for the audit trail's errorCode (as the JSON protocol's).
    if !status.is_success() {
        builder = builder.header("x-amzn-ErrorType", text("Code"));
    }
    whole(
        builder
            .body(Bytes::from(body.to_string()))
            .expect("a valid response"),
    )
}

impl CloudWatchService {
    /// A query-protocol call: the form read as the JSON protocol's input,
    /// the same handlers, the answer (or refusal) in XML.
    fn dispatch_query(&self, call: &Call) -> Response<HttpBody> {
        let model = riffle_aws::model::monitoring();
        let params = query_params(&call.parts, call.body.whole());
        let id = request_id();
        let refuse = |e: CwError| {
            let status = match e.code {
                "InternalServiceError" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            xml_answer(
                status,
                &query::error(e.code, &e.message, status.as_u16() < 500, &id),
            )
        };
        let Some(action) = params.get("Action") else {
            return refuse(CwError {
                code: "MissingAction",
                message: "The request must contain the parameter Action.".into(),
            });
        };
        if params.get("Version").is_some_and(|v| v != "2010-08-01") {
            return refuse(invalid("The parameter Version must be 2010-08-01."));
        }
        let Some(shape) = model.input(action) else {
            return refuse(CwError {
                code: "InvalidAction",
                message: format!("The action {action} is not valid for this web service."),
            });
        };
        let input = query::input(model, shape, &params);
        let checked = model.check_input_with(
            action,
            &Value::Object(input.clone()),
            &riffle_aws::model::Rules {
                required: &[],
                unpatterned: &[],
            },
        );
        if let Err(e) = checked {
            return refuse(model_refusal(riffle_aws::error::Refusal::from(e)));
        }
        match self.run(action, &input) {
            Ok(v) => xml_answer(StatusCode::OK, &query::response(model, action, &v, &id)),
            Err(e) => refuse(e),
        }
    }

    /// One operation of the served ones on its checked input.
    fn run(&self, op: &str, input: &Map<String, Value>) -> Result<Value, CwError> {
        match op {
            "ListMetrics" => self.list_metrics(input),
            "GetMetricStatistics" => self.get_metric_statistics(input),
            "GetMetricData" => self.get_metric_data(input),
            _ => Err(CwError {
                code: "InvalidAction",
                message: format!("The action {op} is not served by Riffle's CloudWatch."),
            }),
        }
    }

    fn dispatch(&self, call: &Call) -> Response<HttpBody> {
        if !call.parts.headers.contains_key("x-amz-target") {
            return self.dispatch_query(call);
        }
        let (_, op, input) = crate::http::service::json_operation(
            call,
            TARGET_PREFIX,
            riffle_aws::model::monitoring(),
            &riffle_aws::model::Rules {
                required: &[],
                unpatterned: &[],
            },
        );
        let input = match input {
            Ok(m) => m,
            Err(r) => return model_refusal(r).response(),
        };
        let result = self.run(&op, &input);
        match result {
            Ok(v) => whole(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(Bytes::from(v.to_string()))
                    .expect("a valid response"),
            ),
            Err(e) => e.response(),
        }
    }

    fn list_metrics(&self, input: &Map<String, Value>) -> Result<Value, CwError> {
        let namespace = input.get("Namespace").and_then(Value::as_str);
        let name = input.get("MetricName").and_then(Value::as_str);
        let filters = dimension_filters(input.get("Dimensions"))?;
        let from: usize = match input.get("NextToken").and_then(Value::as_str) {
            Some(t) => t
                .parse()
                .map_err(|_| invalid(format!("Invalid NextToken {t}")))?,
            None => 0,
        };
        let matching: Vec<SeriesKey> = self
            .ring
            .series()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| namespace.is_none_or(|n| k.namespace == n))
            .filter(|k| name.is_none_or(|n| k.name == n))
            .filter(|k| {
                filters.iter().all(|(fname, fvalue)| {
                    k.dimensions
                        .iter()
                        .any(|(n, v)| n == fname && fvalue.as_ref().is_none_or(|fv| fv == v))
                })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(from)
            .take(LIST_PAGE)
            .map(|k| {
                json!({
                    "Namespace": k.namespace,
                    "MetricName": k.name,
                    "Dimensions": k.dimensions.iter()
                        .map(|(n, v)| json!({"Name": n, "Value": v}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = json!({ "Metrics": page });
        if from + LIST_PAGE < matching.len() {
            out["NextToken"] = json!((from + LIST_PAGE).to_string());
        }
        Ok(out)
    }

    fn get_metric_statistics(&self, input: &Map<String, Value>) -> Result<Value, CwError> {
        let namespace = required_str(input, "Namespace")?;
        let name = required_str(input, "MetricName")?;
        let dimensions = exact_dimensions(input.get("Dimensions"))?;
        let (start, end) = range(input)?;
        let period = period_ms(input.get("Period"), "Period")?;
        let statistics: Vec<&str> = input
            .get("Statistics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if input.get("ExtendedStatistics").is_some() {
            return Err(invalid(
                "ExtendedStatistics (percentiles) are not served by Riffle.",
            ));
        }
        if statistics.is_empty() {
            return Err(CwError {
                code: "InvalidParameterCombination",
                message: "Must specify either Statistics or ExtendedStatistics".into(),
            });
        }
        if (end - start) / period > DATAPOINTS_MAX {
            return Err(CwError {
                code: "InvalidParameterCombination",
                message: format!(
                    "You have requested up to {} datapoints, which exceeds the limit of {DATAPOINTS_MAX}. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
                    (end - start) / period
                ),
            });
        }
        let key = SeriesKey {
            namespace: known_namespace(namespace),
            name: name.to_string(),
            dimensions,
        };
        let (unit, mut points) = self
            .ring
            .stats(&key, start, end, period, &self.ring.snapshot())
            .unwrap_or((ring::Unit::Count, Vec::new()));
        // A Unit asked for that the metric is not in: no datapoints.
        if input
            .get("Unit")
            .and_then(Value::as_str)
            .is_some_and(|u| u != unit.as_str())
        {
            points.clear();
        }
        let datapoints: Vec<Value> = points
            .iter()
            .map(|(t, stat)| {
                let mut p = Map::new();
                p.insert("Timestamp".into(), json!(*t as f64 / 1000.0));
                for s in &statistics {
                    if let Some(v) = stat.get(s) {
                        p.insert((*s).into(), json!(v));
                    }
                }
                p.insert("Unit".into(), json!(unit.as_str()));
                Value::Object(p)
            })
            .collect();
        Ok(json!({ "Label": name, "Datapoints": datapoints }))
    }

    fn get_metric_data(&self, input: &Map<String, Value>) -> Result<Value, CwError> {
        let (start, end) = range(input)?;
        let queries = input
            .get("MetricDataQueries")
            .and_then(Value::as_array)
            .ok_or_else(|| missing("MetricDataQueries"))?;
        let newest_first =
            input.get("ScanBy").and_then(Value::as_str) != Some("TimestampAscending");
        if queries.len() > QUERIES_MAX {
            return Err(invalid(format!(
                "The collection MetricDataQueries must not have a size greater than {QUERIES_MAX}."
            )));
        }
        // The sources are read once for every query.
        let snapshot = self.ring.snapshot();
        let mut ids = std::collections::HashSet::new();
        let mut results = Vec::new();
        for q in queries {
            let q = q
                .as_object()
                .ok_or_else(|| invalid("a query must be an object"))?;
            let id = required_str(q, "Id")?;
            let mut chars = id.chars();
            if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
                || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(invalid(format!(
                    "The value {id} for parameter MetricDataQueries.member.Id is not valid: it starts with a lower-case letter and holds letters, digits and underscores."
                )));
            }
            if !ids.insert(id) {
                return Err(invalid(format!(
                    "The Id {id} is used by more than one query."
                )));
            }
            if q.get("Expression").is_some() {
                return Err(invalid(format!(
                    "The query {id} has an Expression: metric math is not served by Riffle."
                )));
            }
            let stat_of = q
                .get("MetricStat")
                .and_then(Value::as_object)
                .ok_or_else(|| missing(&format!("MetricDataQueries.{id}.MetricStat")))?;
            let metric = stat_of
                .get("Metric")
                .and_then(Value::as_object)
                .ok_or_else(|| missing(&format!("MetricDataQueries.{id}.MetricStat.Metric")))?;
            let statistic = required_str(stat_of, "Stat")?;
            if !STATISTICS.contains(&statistic) {
                return Err(invalid(format!(
                    "The statistic {statistic} of query {id} is not served by Riffle (one of {}).",
                    STATISTICS.join(", ")
                )));
            }
            let period = period_ms(stat_of.get("Period"), "Period")?;
            let key = SeriesKey {
                namespace: known_namespace(required_str(metric, "Namespace")?),
                name: required_str(metric, "MetricName")?.to_string(),
                dimensions: exact_dimensions(metric.get("Dimensions"))?,
            };
            if q.get("ReturnData").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let unit = stat_of.get("Unit").and_then(Value::as_str);
            let mut points: Vec<(i64, Stat)> = self
                .ring
                .stats(&key, start, end, period, &snapshot)
                // A Unit asked for that the metric is not in: no values.
                .filter(|(u, _)| unit.is_none_or(|want| want == u.as_str()))
                .map(|(_, p)| p)
                .unwrap_or_default();
            if newest_first {
                points.reverse();
            }
            let label = q
                .get("Label")
                .and_then(Value::as_str)
                .unwrap_or(&key.name)
                .to_string();
            results.push(json!({
                "Id": id,
                "Label": label,
                "Timestamps": points.iter().map(|(t, _)| *t as f64 / 1000.0).collect::<Vec<_>>(),
                "Values": points.iter().map(|(_, s)| s.get(statistic).unwrap_or(0.0)).collect::<Vec<_>>(),
                "StatusCode": "Complete",
            }));
        }
        Ok(json!({ "MetricDataResults": results, "Messages": [] }))
    }
}

/// A namespace the sources report (a series' namespace is `'static`), or
/// "" (which names no series).
fn known_namespace(namespace: &str) -> &'static str {
    [
        "AWS/Kinesis",
        "AWS/Firehose",
        "AWS/KinesisAnalytics",
        "AWS/KinesisVideo",
    ]
    .into_iter()
    .find(|n| *n == namespace)
    .unwrap_or("")
}

fn required_str<'a>(m: &'a Map<String, Value>, member: &str) -> Result<&'a str, CwError> {
    m.get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(member))
}

/// `Dimensions` naming one series: every name with its value, sorted by name.
fn exact_dimensions(v: Option<&Value>) -> Result<Vec<(String, String)>, CwError> {
    let mut out = Vec::new();
    for d in v.and_then(Value::as_array).into_iter().flatten() {
        let name = d.get("Name").and_then(Value::as_str);
        let value = d.get("Value").and_then(Value::as_str);
        match (name, value) {
            (Some(n), Some(v)) => out.push((n.to_string(), v.to_string())),
            _ => return Err(missing("Dimensions.member.Value")),
        }
    }
    out.sort();
    Ok(out)
}

/// ListMetrics' `Dimensions` filters: a name, and a value when given.
fn dimension_filters(v: Option<&Value>) -> Result<Vec<(String, Option<String>)>, CwError> {
    let mut out = Vec::new();
    for d in v.and_then(Value::as_array).into_iter().flatten() {
        let name = d
            .get("Name")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("Dimensions.member.Name"))?;
        let value = d.get("Value").and_then(Value::as_str).map(String::from);
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// `StartTime` and `EndTime` (epoch seconds in JSON 1.0), in ms; the start
/// rounded down to its minute, as CloudWatch does.
fn range(input: &Map<String, Value>) -> Result<(i64, i64), CwError> {
    let time = |member: &str| -> Result<i64, CwError> {
        let v = input.get(member).ok_or_else(|| missing(member))?;
        v.as_f64()
            .filter(|s| (0.0..=TIME_S_MAX).contains(s))
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| invalid(format!("{member} must be a timestamp from 1970 on")))
    };
    let (start, end) = (time("StartTime")?, time("EndTime")?);
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok((start - start.rem_euclid(ring::MINUTE_MS), end))
}

/// A `Period` in ms: whole minutes (the ring's resolution).
fn period_ms(v: Option<&Value>, member: &str) -> Result<i64, CwError> {
    let v = v.ok_or_else(|| missing(member))?;
    // A whole number, however written (`60`, `60.0`).
    let s = v
        .as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| {
            invalid(format!(
                "The parameter {member} must be a whole number of seconds."
            ))
        })?;
    if s > PERIOD_S_MAX {
        return Err(invalid(format!(
            "The parameter {member} must be at most {PERIOD_S_MAX} seconds (a year), not {s}."
        )));
    }
    if s <= 0 || s % 60 != 0 {
        return Err(invalid(format!(
            "The parameter {member} must be a multiple of 60 (Riffle keeps one-minute points), not {s}."
        )));
    }
    Ok(s * 1000)
}
