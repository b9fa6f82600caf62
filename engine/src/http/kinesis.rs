//! Kinesis Data Streams operations over JSON 1.1: `X-Amz-Target` dispatch,
//! AWS request and response shapes, and errors in AWS form (`__type`,
//! `message`, HTTP status). Streams are addressed by `StreamName` or
//! `StreamARN` (`arn:aws:kinesis:<region>:<account>:stream/<name>`).
//!
//! Operations so far: CreateStream, DeleteStream, ListStreams (paged),
//! DescribeStream, DescribeStreamSummary, ListShards (paged), PutRecord,
//! PutRecords, GetShardIterator, GetRecords, Increase/DecreaseStreamRetentionPeriod,
//! DescribeLimits, and tags (AddTagsToStream, RemoveTagsFromStream,
//! ListTagsForStream, TagResource, UntagResource, ListTagsForResource). Anything else is answered with `UnknownOperationException`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{Response, StatusCode, http::request::Parts};
use riffle_protocol::{Error, ErrorCode};
use riffle_store::catalog::{SettingsChange, StreamSettings};
use riffle_store::iterator::IteratorType;
use riffle_protocol::seqno;
use serde_json::{Map, Value, json};

use super::{Gateway, HttpBody, HttpConfig, cbor, puts, reads, subscribe};
use crate::{Engine, PutRecordsEntry, rt};

const TARGET_PREFIX: &str = "Kinesis_20131202.";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// The body format of a request, and so of its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Cbor,
}

impl Format {
    pub(super) fn of(parts: &Parts) -> Format {
        let cbor = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("cbor"));
        if cbor { Format::Cbor } else { Format::Json }
    }

    pub(super) fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_CONTENT_TYPE,
            Format::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    pub(super) fn encode(self, v: &Value) -> Bytes {
        match self {
            Format::Json => Bytes::from(v.to_string()),
            Format::Cbor => Bytes::from(cbor::from_json(v)),
        }
    }
}

/// AWS's API refuses retention periods under 24 hours; the engine itself allows
/// down to `Limits::retention_hours_min` for the native interfaces (tests).
const RETENTION_HOURS_MIN: i64 = 24;

/// What DescribeLimits reports as the account's shard limit (AWS's default).
const SHARD_LIMIT: u32 = 500;

/// A refusal in AWS form.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) kind: String,
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }

    pub(super) fn validation(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    pub(super) fn serialization(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        let status = match e.code {
            ErrorCode::Internal | ErrorCode::StorageFailed => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Refusal::new(status, e.code.aws_name(), e.message)
    }
}

/// An error response in AWS form, in the request's format.
pub(super) fn error_response(
    format: Format,
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body = format.encode(&json!({ "__type": kind, "message": message }));
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, format.content_type())
        .header("x-amzn-ErrorType", kind)
        .body(Full::new(body))
        .expect("a valid response")
}

fn ok_response(format: Format, value: &Value) -> Response<Full<Bytes>> {
    ok_encoded(format, format.encode(value))
}

/// A 200 answer whose body is already encoded in `format`.
fn ok_encoded(format: Format, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, format.content_type())
        .body(Full::new(body))
        .expect("a valid response")
}

/// The answer to an operation answered as encoded bytes (the JSON hot paths).
fn encoded_response(format: Format, result: Result<Bytes, Refusal>) -> Response<HttpBody> {
    match result {
        Ok(body) => ok_encoded(format, body),
        Err(r) => error_response(format, r.status, &r.kind, &r.message),
    }
    .map(Either::Left)
}

/// Decodes the operation and its input, runs it, answers in AWS form.
pub(super) async fn dispatch(
    engine: &Engine,
    gateway: &Gateway,
    parts: &Parts,
    body: &[u8],
) -> Response<HttpBody> {
    let config = &gateway.config;
    let format = Format::of(parts);
    let target = parts.headers.get("x-amz-target").map(|v| v.as_bytes());
    if format == Format::Json
        && target == Some(b"Kinesis_20131202.PutRecords")
        && let Some(result) = puts::put_records(engine, config, body).await
    {
        return encoded_response(format, result);
    }
    let result = match decode(parts, format, body) {
        Ok(("SubscribeToShard", input)) => {
            match subscribe::start(engine, gateway, format, &Input(&input)).await {
                Ok(events) => return events,
                Err(r) => Err(r),
            }
        }
        Ok(("GetRecords", input)) if format == Format::Json => {
            return encoded_response(format, reads::get_records(engine, &Input(&input)).await);
        }
        Ok((op, input)) => run(engine, config, op, &Input(&input)).await,
        Err(r) => Err(r),
    };
    match result {
        Ok(v) => ok_response(format, &v),
        Err(r) => error_response(format, r.status, &r.kind, &r.message),
    }
    .map(Either::Left)
}

/// The operation a request names and its input object.
fn decode<'a>(
    parts: &'a Parts,
    format: Format,
    body: &[u8],
) -> Result<(&'a str, Map<String, Value>), Refusal> {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("no operation for X-Amz-Target {target:?}"),
        ));
    };
    let decoded = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Object(Map::new()))
    } else {
        match format {
            Format::Json => {
                serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
            }
            Format::Cbor => cbor::to_json(body),
        }
    };
    match decoded {
        Ok(Value::Object(m)) => Ok((op, m)),
        Ok(_) => Err(Refusal::serialization("the request body is not an object")),
        Err(e) => Err(Refusal::serialization(e)),
    }
}

async fn run(
    engine: &Engine,
    config: &HttpConfig,
    op: &str,
    input: &Input<'_>,
) -> Result<Value, Refusal> {
    let input = *input;
    match op {
        "CreateStream" => {
            let name = input.required_str("StreamName")?;
            let on_demand = stream_mode(&input)?.unwrap_or(false);
            let count = match input.int("ShardCount")? {
                Some(c) => c,
                None if on_demand => ON_DEMAND_SHARDS,
                None => {
                    return Err(Refusal::from(Error::invalid(
                        "ShardCount is required for a PROVISIONED stream",
                    )));
                }
            };
            if !(1..=100_000).contains(&count) {
                return Err(Refusal::validation(format!(
                    "1 validation error detected: Value '{count}' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
                )));
            }
            let tags = match input.0.get("Tags") {
                None | Some(Value::Null) => None,
                Some(_) => Some(input.string_map("Tags")?),
            };
            engine.create_stream(name, count as u32).await?;
            if on_demand {
                engine
                    .change_settings(name, SettingsChange::Mode { on_demand })
                    .await?;
            }
            if let Some(tags) = tags {
                engine.add_tags(name, tags).await?;
            }
            Ok(json!({}))
        }
        "DeleteStream" => {
            let name = stream_name(&input, config)?;
            engine.delete_stream(&name).await?;
            Ok(json!({}))
        }
        "ListStreams" => {
            let limit = input.int("Limit")?.unwrap_or(100).clamp(1, 100) as usize;
            // The token is the last name listed, like ExclusiveStartStreamName.
            let token = input.str("NextToken")?.map(decode_token).transpose()?;
            let start = match token {
                Some(t) => Some(t),
                None => input.str("ExclusiveStartStreamName")?.map(str::to_owned),
            };
            let mut names = engine.list_streams();
            names.sort();
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| start.as_deref().is_none_or(|s| n.as_str() > s))
                .collect();
            let more = names.len() > limit;
            let names: Vec<String> = names.into_iter().take(limit).collect();
            let summaries: Vec<Value> = names
                .iter()
                .filter_map(|n| engine.describe_stream(n).ok())
                .map(|d| {
                    json!({
                        "StreamName": d.name,
                        "StreamARN": arn(config, &d.name),
                        "StreamStatus": d.status,
                        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                        "StreamCreationTimestamp": d.created_ms as f64 / 1000.0,
                    })
                })
                .collect();
            let mut out =
                json!({"StreamNames": names, "HasMoreStreams": more, "StreamSummaries": summaries});
            if more && let Some(last) = names.last() {
                out["NextToken"] = json!(encode_token(last));
            }
            Ok(out)
        }
        "DescribeStream" => {
            let name = stream_name(&input, config)?;
            let d = engine.describe_stream(&name)?;
            let settings = engine.settings(&name)?;
            let limit = input.int("Limit")?.unwrap_or(100).clamp(1, 10_000) as usize;
            let start = input.str("ExclusiveStartShardId")?;
            let shards: Vec<Value> = d
                .shards
                .iter()
                .filter(|s| start.is_none_or(|x| s.shard_id.as_str() > x))
                .map(shard_json)
                .collect();
            let more = shards.len() > limit;
            let shards: Vec<Value> = shards.into_iter().take(limit).collect();
            let mut out = json!({
                "StreamName": d.name,
                "StreamARN": arn(config, &d.name),
                "StreamStatus": d.status,
                "StreamModeDetails": {"StreamMode": mode_name(&settings)},
                "Shards": shards,
                "HasMoreShards": more,
                "RetentionPeriodHours": d.retention_hours,
                "StreamCreationTimestamp": d.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{"ShardLevelMetrics": metrics_json(&settings)}],
            });
            add_encryption(&mut out, &settings);
            Ok(json!({ "StreamDescription": out }))
        }
        "DescribeStreamSummary" => {
            let name = stream_name(&input, config)?;
            let d = engine.describe_stream(&name)?;
            let settings = engine.settings(&name)?;
            let mut out = json!({
                "StreamName": d.name,
                "StreamARN": arn(config, &d.name),
                "StreamStatus": d.status,
                "StreamModeDetails": {"StreamMode": mode_name(&settings)},
                "RetentionPeriodHours": d.retention_hours,
                "StreamCreationTimestamp": d.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{"ShardLevelMetrics": metrics_json(&settings)}],
                "OpenShardCount": d.shards.iter().filter(|s| s.is_open()).count(),
                "ConsumerCount": settings.consumers.len(),
                "MaxRecordSizeInKiB": settings.max_record_size_kib.unwrap_or(1024),
            });
            if let Some(m) = settings.warm_throughput_mibps {
                out["WarmThroughput"] = json!({"TargetMiBps": m, "CurrentMiBps": m});
            }
            add_encryption(&mut out, &settings);
            Ok(json!({ "StreamDescriptionSummary": out }))
        }
        "ListShards" => {
            // The token carries the stream and the last shard listed.
            let (name, after) = match input.str("NextToken")? {
                Some(token) => {
                    for other in ["StreamName", "StreamARN", "ExclusiveStartShardId"] {
                        if input.0.get(other).is_some_and(|v| !v.is_null()) {
                            return Err(Refusal::from(Error::invalid(format!(
                                "NextToken and {other} cannot be provided together."
                            ))));
                        }
                    }
                    let t = decode_token(token)?;
                    let Some((name, last)) = t.split_once('\n') else {
                        return Err(Refusal::from(Error::invalid("invalid NextToken")));
                    };
                    (name.to_owned(), Some(last.to_owned()))
                }
                None => (
                    stream_name(&input, config)?,
                    input.str("ExclusiveStartShardId")?.map(str::to_owned),
                ),
            };
            let max = match input.int("MaxResults")? {
                None => 1000,
                Some(m) if (1..=10_000).contains(&m) => m as usize,
                Some(m) => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{m}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 10000"
                    )));
                }
            };
            let d = engine.describe_stream(&name)?;
            let filter = match input.0.get("ShardFilter") {
                None | Some(Value::Null) => None,
                Some(Value::Object(f)) => Some(shard_filter(f, rt::now_ms(), &d)?),
                Some(_) => return Err(Refusal::serialization("ShardFilter must be an object")),
            };
            let shards: Vec<_> = d
                .shards
                .into_iter()
                .filter(|s| after.as_deref().is_none_or(|a| s.shard_id.as_str() > a))
                .filter(|s| filter.as_ref().is_none_or(|f| f(s)))
                .collect();
            let more = shards.len() > max;
            let page: Vec<Value> = shards.iter().take(max).map(shard_json).collect();
            let mut out = json!({"Shards": page});
            if more {
                let last = &shards[max - 1].shard_id;
                out["NextToken"] = json!(encode_token(&format!("{name}\n{last}")));
            }
            Ok(out)
        }
        "IncreaseStreamRetentionPeriod" | "DecreaseStreamRetentionPeriod" => {
            let name = stream_name(&input, config)?;
            let Some(hours) = input.int("RetentionPeriodHours")? else {
                return Err(null_member("RetentionPeriodHours"));
            };
            if hours < RETENTION_HOURS_MIN {
                return Err(Refusal::from(Error::invalid(format!(
                    "Minimum allowed retention period is {RETENTION_HOURS_MIN} hours. Requested retention period ({hours} hours) is too short."
                ))));
            }
            // The maximum is the engine's (`Limits::retention_hours_max`, AWS's 8760):
            // set_retention_hours refuses beyond it with AWS's message.
            let current = engine.describe_stream(&name)?.retention_hours as i64;
            if op == "IncreaseStreamRetentionPeriod" && hours < current {
                return Err(Refusal::from(Error::invalid(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
                ))));
            }
            if op == "DecreaseStreamRetentionPeriod" && hours > current {
                return Err(Refusal::from(Error::invalid(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
                ))));
            }
            engine
                .set_retention_hours(&name, u32::try_from(hours).unwrap_or(u32::MAX))
                .await?;
            Ok(json!({}))
        }
        "StartStreamEncryption" | "StopStreamEncryption" => {
            let name = stream_name(&input, config)?;
            match input.required_str("EncryptionType")? {
                "KMS" => {}
                other => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{other}' at 'encryptionType' failed to satisfy constraint: Member must satisfy enum value set: [KMS, NONE]"
                    )));
                }
            }
            let key = input.required_str("KeyId")?;
            let change = if op == "StartStreamEncryption" {
                SettingsChange::Encryption {
                    key: Some(key.to_owned()),
                }
            } else {
                SettingsChange::Encryption { key: None }
            };
            engine.change_settings(&name, change).await?;
            Ok(json!({}))
        }
        "EnableEnhancedMonitoring" | "DisableEnhancedMonitoring" => {
            let name = stream_name(&input, config)?;
            let mut metrics = Vec::new();
            for m in input.string_list("ShardLevelMetrics")? {
                match m.as_str() {
                    "ALL" => metrics.extend(SHARD_LEVEL_METRICS.iter().map(|m| m.to_string())),
                    m if SHARD_LEVEL_METRICS.contains(&m) => metrics.push(m.to_owned()),
                    other => {
                        return Err(Refusal::validation(format!(
                            "1 validation error detected: Value '[{other}]' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes, OutgoingRecords, IteratorAgeMilliseconds, IncomingRecords, ReadProvisionedThroughputExceeded, WriteProvisionedThroughputExceeded, OutgoingBytes, ALL]]"
                        )));
                    }
                }
            }
            let current = metrics_json(&engine.settings(&name)?);
            let change = if op == "EnableEnhancedMonitoring" {
                SettingsChange::EnableMetrics { metrics }
            } else {
                SettingsChange::DisableMetrics { metrics }
            };
            engine.change_settings(&name, change).await?;
            Ok(json!({
                "StreamName": name,
                "StreamARN": arn(config, &name),
                "CurrentShardLevelMetrics": current,
                "DesiredShardLevelMetrics": metrics_json(&engine.settings(&name)?),
            }))
        }
        "PutResourcePolicy" => {
            let name = resource_stream(&input, config)?;
            let policy = input.required_str("Policy")?;
            if !serde_json::from_str::<Value>(policy).is_ok_and(|v| v.is_object()) {
                return Err(Refusal::from(Error::invalid(
                    "Policy must be a JSON document",
                )));
            }
            engine
                .change_settings(
                    &name,
                    SettingsChange::ResourcePolicy {
                        policy: Some(policy.to_owned()),
                    },
                )
                .await?;
            Ok(json!({}))
        }
        "GetResourcePolicy" => {
            let name = resource_stream(&input, config)?;
            let policy = engine.settings(&name)?.resource_policy;
            Ok(json!({"Policy": policy.unwrap_or_else(|| "{}".into())}))
        }
        "DeleteResourcePolicy" => {
            let name = resource_stream(&input, config)?;
            if engine.settings(&name)?.resource_policy.is_none() {
                return Err(Refusal::from(Error::not_found(format!(
                    "No resource policy found for resource ARN {}.",
                    arn(config, &name)
                ))));
            }
            engine
                .change_settings(&name, SettingsChange::ResourcePolicy { policy: None })
                .await?;
            Ok(json!({}))
        }
        "UpdateStreamMode" => {
            let name = stream_of_arn(input.required_str("StreamARN")?, config)?;
            let on_demand = stream_mode(&input)?.ok_or_else(|| null_member("StreamModeDetails"))?;
            engine
                .change_settings(&name, SettingsChange::Mode { on_demand })
                .await?;
            Ok(json!({}))
        }
        "RegisterStreamConsumer" => {
            let stream = stream_of_arn(input.required_str("StreamARN")?, config)?;
            let consumer = input.required_str("ConsumerName")?;
            check_consumer_name(consumer)?;
            let created_ms = crate::rt::now_ms();
            engine
                .change_settings(
                    &stream,
                    SettingsChange::RegisterConsumer {
                        consumer: consumer.to_owned(),
                        created_ms,
                    },
                )
                .await?;
            Ok(json!({"Consumer": consumer_json(config, &stream, consumer, created_ms)}))
        }
        "DescribeStreamConsumer" | "DeregisterStreamConsumer" => {
            let (stream, consumer) = match input.str("ConsumerARN")? {
                Some(arn_str) => consumer_of_arn(arn_str, config)?,
                None => {
                    let Some(stream_arn) = input.str("StreamARN")? else {
                        return Err(Refusal::from(Error::invalid(
                            "Either ConsumerARN or both StreamARN and ConsumerName must be provided",
                        )));
                    };
                    let Some(name) = input.str("ConsumerName")? else {
                        return Err(Refusal::from(Error::invalid(
                            "Either ConsumerARN or both StreamARN and ConsumerName must be provided",
                        )));
                    };
                    (stream_of_arn(stream_arn, config)?, name.to_owned())
                }
            };
            let consumers = engine.settings(&stream)?.consumers;
            let Some(&created_ms) = consumers.get(&consumer) else {
                return Err(Refusal::from(Error::not_found(format!(
                    "Consumer {consumer} under stream {stream} not found."
                ))));
            };
            if op == "DeregisterStreamConsumer" {
                engine
                    .change_settings(&stream, SettingsChange::DeregisterConsumer { consumer })
                    .await?;
                return Ok(json!({}));
            }
            let mut d = consumer_json(config, &stream, &consumer, created_ms);
            d["StreamARN"] = json!(arn(config, &stream));
            Ok(json!({ "ConsumerDescription": d }))
        }
        "ListStreamConsumers" => {
            let stream = stream_of_arn(input.required_str("StreamARN")?, config)?;
            let max = input.int("MaxResults")?.unwrap_or(100).clamp(1, 10_000) as usize;
            let after = input.str("NextToken")?.map(decode_token).transpose()?;
            let all: Vec<(String, i64)> = engine
                .settings(&stream)?
                .consumers
                .into_iter()
                .filter(|(n, _)| after.as_deref().is_none_or(|a| n.as_str() > a))
                .collect();
            let more = all.len() > max;
            let page: Vec<Value> = all
                .iter()
                .take(max)
                .map(|(n, t)| consumer_json(config, &stream, n, *t))
                .collect();
            let mut out = json!({ "Consumers": page });
            if more {
                out["NextToken"] = json!(encode_token(&all[max - 1].0));
            }
            Ok(out)
        }
        "UpdateMaxRecordSize" => {
            let name = stream_of_arn(input.required_str("StreamARN")?, config)?;
            let kib = match input.int("MaxRecordSizeInKiB")? {
                Some(k) if (1024..=10_240).contains(&k) => k as u32,
                Some(k) => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{k}' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between 1024 and 10240"
                    )));
                }
                None => return Err(null_member("MaxRecordSizeInKiB")),
            };
            engine
                .change_settings(&name, SettingsChange::MaxRecordSize { kib })
                .await?;
            Ok(json!({}))
        }
        "UpdateStreamWarmThroughput" => {
            let name = stream_name(&input, config)?;
            let mibps = match input.int("WarmThroughputMiBps")? {
                Some(m) if m >= 0 && m <= u32::MAX as i64 => m as u32,
                _ => {
                    return Err(Refusal::validation(
                        "1 validation error detected: Value at 'warmThroughputMiBps' failed to satisfy constraint: Member must be a natural number",
                    ));
                }
            };
            engine
                .change_settings(&name, SettingsChange::WarmThroughput { mibps })
                .await?;
            Ok(json!({
                "StreamARN": arn(config, &name),
                "StreamName": name,
                "WarmThroughput": {"TargetMiBps": mibps, "CurrentMiBps": mibps},
            }))
        }
        "DescribeAccountSettings" => Ok(account_json(&engine.account_settings())),
        "UpdateAccountSettings" => {
            let status = match input.0.get("MinimumThroughputBillingCommitment") {
                Some(Value::Object(m)) => m.get("Status").and_then(Value::as_str),
                _ => None,
            };
            let enabled = match status {
                Some("ENABLED") => true,
                Some("DISABLED") => false,
                other => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{}' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]",
                        other.unwrap_or("null")
                    )));
                }
            };
            engine.set_billing_commitment(enabled).await?;
            Ok(account_json(&engine.account_settings()))
        }
        "AddTagsToStream" | "TagResource" => {
            let name = tagged_stream(op, &input, config)?;
            let tags = input.string_map("Tags")?;
            engine.add_tags(&name, tags).await?;
            Ok(json!({}))
        }
        "RemoveTagsFromStream" | "UntagResource" => {
            let name = tagged_stream(op, &input, config)?;
            let keys = input.string_list("TagKeys")?;
            engine.remove_tags(&name, keys).await?;
            Ok(json!({}))
        }
        "ListTagsForStream" => {
            let name = stream_name(&input, config)?;
            let start = input.str("ExclusiveStartTagKey")?;
            let limit = input.int("Limit")?.unwrap_or(50).clamp(1, 50) as usize;
            let tags: Vec<(String, String)> = engine
                .tags(&name)?
                .into_iter()
                .filter(|(k, _)| start.is_none_or(|s| k.as_str() > s))
                .collect();
            let more = tags.len() > limit;
            let tags: Vec<Value> = tags
                .into_iter()
                .take(limit)
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            Ok(json!({"Tags": tags, "HasMoreTags": more}))
        }
        "ListTagsForResource" => {
            let name = resource_stream(&input, config)?;
            let tags: Vec<Value> = engine
                .tags(&name)?
                .into_iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            Ok(json!({"Tags": tags}))
        }
        "DescribeLimits" => {
            let open: usize = engine
                .list_streams()
                .iter()
                .filter_map(|n| engine.describe_stream(n).ok())
                .filter(|d| d.status != "DELETING")
                .map(|d| d.shards.iter().filter(|s| s.is_open()).count())
                .sum();
            let on_demand = engine
                .list_streams()
                .iter()
                .filter(|n| engine.settings(n).is_ok_and(|s| s.on_demand))
                .count();
            Ok(json!({
                "ShardLimit": SHARD_LIMIT,
                "OpenShardCount": open,
                "OnDemandStreamCount": on_demand,
                "OnDemandStreamCountLimit": 50,
            }))
        }
        "PutRecord" => {
            let name = stream_name(&input, config)?;
            let key = input.required_str("PartitionKey")?;
            let data = input.blob("Data")?;
            let hash = input.str("ExplicitHashKey")?;
            let put = engine.put_record(&name, key, hash, &data).await?;
            Ok(json!({
                "ShardId": put.shard_id,
                "SequenceNumber": put.sequence_number,
                "EncryptionType": encryption_type(engine, &name),
            }))
        }
        "PutRecords" => {
            let name = stream_name(&input, config)?;
            let records = match input.0.get("Records") {
                Some(Value::Array(a)) => a,
                Some(_) => return Err(Refusal::serialization("Records must be a list")),
                None => return Err(null_member("Records")),
            };
            let mut decoded = Vec::with_capacity(records.len());
            for r in records {
                let Value::Object(m) = r else {
                    return Err(Refusal::serialization("each record must be an object"));
                };
                let r = Input(m);
                decoded.push((
                    r.required_str("PartitionKey")?,
                    r.str("ExplicitHashKey")?,
                    r.blob("Data")?,
                ));
            }
            let entries: Vec<PutRecordsEntry<'_>> = decoded
                .iter()
                .map(|(k, h, d)| PutRecordsEntry {
                    partition_key: k,
                    explicit_hash_key: *h,
                    data: d,
                })
                .collect();
            let results = engine.put_records(&name, &entries).await?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            let out: Vec<Value> = results
                .into_iter()
                .map(|r| match r {
                    Ok(p) => json!({"ShardId": p.shard_id, "SequenceNumber": p.sequence_number}),
                    Err(e) => json!({
                        "ErrorCode": e.code.aws_name(),
                        "ErrorMessage": e.message,
                    }),
                })
                .collect();
            Ok(
                json!({"FailedRecordCount": failed, "Records": out, "EncryptionType": encryption_type(engine, &name)}),
            )
        }
        "GetShardIterator" => {
            let name = stream_name(&input, config)?;
            let shard = input.required_str("ShardId")?;
            let kind = match input.required_str("ShardIteratorType")? {
                "TRIM_HORIZON" => IteratorType::TrimHorizon,
                "LATEST" => IteratorType::Latest,
                "AT_SEQUENCE_NUMBER" => IteratorType::AtSequenceNumber(sequence(&input)?),
                "AFTER_SEQUENCE_NUMBER" => IteratorType::AfterSequenceNumber(sequence(&input)?),
                "AT_TIMESTAMP" => {
                    let Some(t) = input.0.get("Timestamp").and_then(Value::as_f64) else {
                        return Err(Refusal::from(Error::invalid(
                            "Timestamp is required for AT_TIMESTAMP",
                        )));
                    };
                    IteratorType::AtTimestamp((t * 1000.0) as i64)
                }
                other => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
                    )));
                }
            };
            let it = engine.get_shard_iterator(&name, shard, kind).await?;
            Ok(json!({"ShardIterator": it}))
        }
        "GetRecords" => {
            let (it, limit) = get_records_input(&input)?;
            let got = engine.get_records(it, limit).await?;
            let mut out = json!({
                "Records": records_json(&got),
                "MillisBehindLatest": got.millis_behind_latest,
            });
            if let Some(it) = &got.next_shard_iterator {
                out["NextShardIterator"] = json!(it);
            }
            if let Some(children) = &got.child_shards {
                out["ChildShards"] = child_shards_json(children);
            }
            Ok(out)
        }
        "SplitShard" => {
            let name = stream_name(&input, config)?;
            let shard = input.required_str("ShardToSplit")?;
            let new_start = hash_key(&input, "NewStartingHashKey", "newStartingHashKey")?;
            engine.split_shard(&name, shard, new_start).await?;
            Ok(json!({}))
        }
        "MergeShards" => {
            let name = stream_name(&input, config)?;
            let shard = input.required_str("ShardToMerge")?;
            let adjacent = input.required_str("AdjacentShardToMerge")?;
            engine.merge_shards(&name, shard, adjacent).await?;
            Ok(json!({}))
        }
        "UpdateShardCount" => {
            let name = stream_name(&input, config)?;
            let Some(target) = input.int("TargetShardCount")? else {
                return Err(null_member("TargetShardCount"));
            };
            if !(1..=100_000).contains(&target) {
                return Err(Refusal::validation(format!(
                    "1 validation error detected: Value '{target}' at 'targetShardCount' failed to satisfy constraint: Member must have value between 1 and 100000"
                )));
            }
            match input.required_str("ScalingType")? {
                "UNIFORM_SCALING" => {}
                other => {
                    return Err(Refusal::validation(format!(
                        "1 validation error detected: Value '{other}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]"
                    )));
                }
            }
            let current = engine
                .describe_stream(&name)?
                .shards
                .iter()
                .filter(|s| s.is_open())
                .count();
            engine.update_shard_count(&name, target as u32).await?;
            Ok(json!({
                "StreamName": name,
                "StreamARN": arn(config, &name),
                "CurrentShardCount": current,
                "TargetShardCount": target,
            }))
        }
        other => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("operation {other} is not supported"),
        )),
    }
}

/// Enhanced monitoring's shard-level metrics ("ALL" stands for all of them).
const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

/// Shards of an ON_DEMAND stream created without a ShardCount (AWS starts
/// on-demand streams at 4 shards).
const ON_DEMAND_SHARDS: i64 = 4;

fn metrics_json(s: &StreamSettings) -> Value {
    json!(s.shard_level_metrics.iter().collect::<Vec<_>>())
}

fn mode_name(s: &StreamSettings) -> &'static str {
    if s.on_demand {
        "ON_DEMAND"
    } else {
        "PROVISIONED"
    }
}

fn add_encryption(out: &mut Value, s: &StreamSettings) {
    match &s.encryption_key {
        Some(key) => {
            out["EncryptionType"] = json!("KMS");
            out["KeyId"] = json!(key);
        }
        None => out["EncryptionType"] = json!("NONE"),
    }
}

fn account_json(a: &riffle_store::catalog::AccountSettings) -> Value {
    match a.billing_commitment_since_ms {
        Some(since) => json!({"MinimumThroughputBillingCommitment": {
            "Status": "ENABLED",
            "StartedAt": since as f64 / 1000.0,
        }}),
        None => json!({"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}}),
    }
}

/// A consumer as AWS describes it; its ARN carries the creation time in seconds.
fn consumer_json(config: &HttpConfig, stream: &str, consumer: &str, created_ms: i64) -> Value {
    json!({
        "ConsumerName": consumer,
        "ConsumerARN": format!("{}/consumer/{consumer}:{}", arn(config, stream), created_ms / 1000),
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": created_ms as f64 / 1000.0,
    })
}

/// AWS: consumer names are 1-128 characters of [a-zA-Z0-9_.-].
fn check_consumer_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Refusal::validation(format!(
            "1 validation error detected: Value '{name}' at 'consumerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

/// The stream a stream ARN names.
pub(super) fn stream_of_arn(arn_str: &str, config: &HttpConfig) -> Result<String, Refusal> {
    let prefix = arn_prefix(config);
    match arn_str.strip_prefix(&prefix) {
        Some(name) if !name.is_empty() && !name.contains('/') => Ok(name.to_owned()),
        _ => Err(Refusal::from(Error::invalid(format!(
            "{arn_str} is not a stream ARN of this server ({prefix}<name>)"
        )))),
    }
}

/// The stream and consumer a consumer ARN names (`.../stream/S/consumer/C:EPOCH`).
pub(super) fn consumer_of_arn(
    arn_str: &str,
    config: &HttpConfig,
) -> Result<(String, String), Refusal> {
    let prefix = arn_prefix(config);
    let parsed = arn_str.strip_prefix(&prefix).and_then(|rest| {
        let (stream, rest) = rest.split_once("/consumer/")?;
        let (consumer, _epoch) = rest.rsplit_once(':')?;
        (!stream.is_empty() && !consumer.is_empty())
            .then(|| (stream.to_owned(), consumer.to_owned()))
    });
    parsed.ok_or_else(|| {
        Refusal::from(Error::invalid(format!(
            "{arn_str} is not a consumer ARN of this server"
        )))
    })
}

/// `StreamModeDetails.StreamMode`: Some(true) for ON_DEMAND.
fn stream_mode(input: &Input<'_>) -> Result<Option<bool>, Refusal> {
    match input.0.get("StreamModeDetails") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match m.get("StreamMode").and_then(Value::as_str) {
            Some("ON_DEMAND") => Ok(Some(true)),
            Some("PROVISIONED") => Ok(Some(false)),
            other => Err(Refusal::validation(format!(
                "1 validation error detected: Value '{}' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]",
                other.unwrap_or("null")
            ))),
        },
        Some(_) => Err(Refusal::serialization(
            "StreamModeDetails must be an object",
        )),
    }
}

pub(super) fn shard_json(s: &crate::ShardDescription) -> Value {
    let mut out = json!({
        "ShardId": s.shard_id,
        "HashKeyRange": hash_key_range(s.hash_key_start, s.hash_key_end),
        "SequenceNumberRange": {"StartingSequenceNumber": s.starting_sequence_number},
    });
    if let Some(p) = &s.parent_shard_id {
        out["ParentShardId"] = json!(p);
    }
    if let Some(p) = &s.adjacent_parent_shard_id {
        out["AdjacentParentShardId"] = json!(p);
    }
    if let Some(end) = &s.ending_sequence_number {
        out["SequenceNumberRange"]["EndingSequenceNumber"] = json!(end);
    }
    out
}

fn hash_key_range(start: u128, end: u128) -> Value {
    json!({"StartingHashKey": start.to_string(), "EndingHashKey": end.to_string()})
}

type ShardPredicate = Box<dyn Fn(&crate::ShardDescription) -> bool>;

/// ListShards' ShardFilter as a predicate on shards (AWS semantics; the trim
/// horizon is now minus the retention, and no earlier than the stream's creation).
fn shard_filter(
    filter: &Map<String, Value>,
    now_ms: i64,
    d: &crate::StreamDescription,
) -> Result<ShardPredicate, Refusal> {
    let f = Input(filter);
    let kind = f.str("Type")?;
    let timestamp = || -> Result<i64, Refusal> {
        match filter.get("Timestamp").and_then(Value::as_f64) {
            Some(t) => Ok((t * 1000.0) as i64),
            None => Err(Refusal::from(Error::invalid(format!(
                "Timestamp must be provided for the {} ShardFilter type.",
                kind.unwrap_or("")
            )))),
        }
    };
    let open_at = |t: i64| {
        let t = t.max(d.created_ms);
        move |s: &crate::ShardDescription| s.opened_ms <= t && s.closed_ms.is_none_or(|c| c >= t)
    };
    let open_after = |t: i64| move |s: &crate::ShardDescription| s.closed_ms.is_none_or(|c| c >= t);
    let trim_horizon = now_ms - i64::from(d.retention_hours) * 3_600_000;
    Ok(match kind {
        Some("AT_LATEST") => Box::new(|s: &crate::ShardDescription| s.is_open()),
        Some("AFTER_SHARD_ID") => {
            let Some(id) = f.str("ShardId")? else {
                return Err(Refusal::from(Error::invalid(
                    "ShardId must be provided for the AFTER_SHARD_ID ShardFilter type.",
                )));
            };
            let id = id.to_owned();
            Box::new(move |s: &crate::ShardDescription| s.shard_id > id)
        }
        Some("AT_TRIM_HORIZON") => Box::new(open_at(trim_horizon)),
        Some("FROM_TRIM_HORIZON") => Box::new(open_after(trim_horizon)),
        Some("AT_TIMESTAMP") => Box::new(open_at(timestamp()?)),
        Some("FROM_TIMESTAMP") => Box::new(open_after(timestamp()?)),
        other => {
            return Err(Refusal::validation(format!(
                "1 validation error detected: Value '{}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                other.unwrap_or("null")
            )));
        }
    })
}

/// A hash key named by `field` (SplitShard's NewStartingHashKey): AWS's pattern
/// `0|([1-9]\d{0,38})`, at most 2^128 - 1.
fn hash_key(input: &Input<'_>, key: &str, field: &str) -> Result<u128, Refusal> {
    let s = input.required_str(key)?;
    let canonical = s == "0"
        || (!s.is_empty()
            && s.len() <= 39
            && !s.starts_with('0')
            && s.bytes().all(|b| b.is_ascii_digit()));
    match s.parse::<u128>() {
        Ok(v) if canonical => Ok(v),
        _ => Err(Refusal::validation(format!(
            "1 validation error detected: Value '{s}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})"
        ))),
    }
}

/// GetRecords' input: the iterator and the limit (1-10,000; none: the default).
pub(super) fn get_records_input<'a>(input: &Input<'a>) -> Result<(&'a str, Option<u32>), Refusal> {
    let it = input.required_str("ShardIterator")?;
    let limit = match input.int("Limit")? {
        None => None,
        Some(l) if (1..=10_000).contains(&l) => Some(l as u32),
        Some(l) => {
            return Err(Refusal::validation(format!(
                "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000"
            )));
        }
    };
    Ok((it, limit))
}

/// The stream a tag operation names: by `ResourceARN` for the *Resource ones
/// (TagResource, UntagResource, ListTagsForResource), else by name or ARN.
fn tagged_stream(op: &str, input: &Input<'_>, config: &HttpConfig) -> Result<String, Refusal> {
    if op.ends_with("Resource") {
        resource_stream(input, config)
    } else {
        stream_name(input, config)
    }
}

/// What PutRecord(s) report: KMS while server-side encryption is on.
pub(super) fn encryption_type(engine: &Engine, stream: &str) -> &'static str {
    if engine.is_encrypted(stream) {
        "KMS"
    } else {
        "NONE"
    }
}

/// The records of a read in AWS form (EncryptionType only when it is KMS).
pub(super) fn records_json(got: &crate::GetRecordsOutput) -> Vec<Value> {
    got.records()
        .map(|r| {
            let mut v = json!({
                "SequenceNumber": r.sequence_number(),
                "ApproximateArrivalTimestamp": r.arrival_ms() as f64 / 1000.0,
                "Data": BASE64.encode(r.data()),
                "PartitionKey": r.partition_key(),
            });
            if got.encrypted {
                v["EncryptionType"] = json!("KMS");
            }
            v
        })
        .collect()
}

pub(super) fn child_shards_json(children: &[crate::ChildShard]) -> Value {
    children
        .iter()
        .map(|c| {
            json!({
                "ShardId": c.shard_id,
                "ParentShards": c.parent_shard_ids,
                "HashKeyRange": hash_key_range(c.hash_key_start, c.hash_key_end),
            })
        })
        .collect()
}

/// What every stream ARN of this server starts with.
fn arn_prefix(config: &HttpConfig) -> String {
    format!(
        "arn:aws:kinesis:{}:{}:stream/",
        config.region, config.account
    )
}

fn arn(config: &HttpConfig, name: &str) -> String {
    format!("{}{name}", arn_prefix(config))
}

/// The stream an operation names, by `StreamName` or `StreamARN`.
pub(super) fn stream_name(input: &Input<'_>, config: &HttpConfig) -> Result<String, Refusal> {
    if let Some(name) = input.str("StreamName")? {
        return Ok(name.to_owned());
    }
    match input.str("StreamARN")? {
        Some(arn_str) => stream_of_arn(arn_str, config),
        None => Err(Refusal::validation(
            "Either StreamName or StreamARN must be provided",
        )),
    }
}

/// Paging tokens: opaque to clients (base64 of what the next page continues after).
fn encode_token(s: &str) -> String {
    BASE64.encode(s)
}

fn decode_token(token: &str) -> Result<String, Refusal> {
    BASE64
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Refusal::from(Error::invalid("invalid NextToken")))
}

/// The stream a tagging or policy operation's `ResourceARN` names.
fn resource_stream(input: &Input<'_>, config: &HttpConfig) -> Result<String, Refusal> {
    stream_of_arn(input.required_str("ResourceARN")?, config)
}

fn sequence(input: &Input<'_>) -> Result<u128, Refusal> {
    let s = input.required_str("StartingSequenceNumber")?;
    Ok(seqno::parse(s)?)
}

/// An operation's input object, with AWS-style type checks.
#[derive(Clone, Copy)]
pub(super) struct Input<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Input<'a> {
    pub(super) fn str(&self, key: &str) -> Result<Option<&'a str>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a string"))),
        }
    }

    pub(super) fn required_str(&self, key: &str) -> Result<&'a str, Refusal> {
        self.str(key)?.ok_or_else(|| null_member(key))
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Refusal::serialization(format!("{key} must be an integer"))),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a number"))),
        }
    }

    /// A map of strings (tags): required, at least one entry.
    fn string_map(&self, key: &str) -> Result<std::collections::BTreeMap<String, String>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Err(null_member(key)),
            Some(Value::Object(m)) if m.is_empty() => Err(empty_member("{}", key)),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    _ => Err(Refusal::serialization(format!(
                        "{key}.{k} must be a string"
                    ))),
                })
                .collect(),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a map"))),
        }
    }

    /// A list of strings: required, at least one entry.
    fn string_list(&self, key: &str) -> Result<Vec<String>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Err(null_member(key)),
            Some(Value::Array(a)) if a.is_empty() => Err(empty_member("[]", key)),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Refusal::serialization(format!("{key} must hold strings"))),
                })
                .collect(),
            Some(_) => Err(Refusal::serialization(format!("{key} must be a list"))),
        }
    }

    fn blob(&self, key: &str) -> Result<Vec<u8>, Refusal> {
        let s = self.required_str(key)?;
        BASE64
            .decode(s)
            .map_err(|e| Refusal::serialization(format!("{key} is not valid base64: {e}")))
    }
}

/// AWS's ValidationException for a missing required member.
pub(super) fn null_member(key: &str) -> Refusal {
    Refusal::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        lower_first(key)
    ))
}

/// AWS's ValidationException for an empty map or list where one entry is needed.
fn empty_member(shown: &str, key: &str) -> Refusal {
    Refusal::validation(format!(
        "1 validation error detected: Value '{shown}' at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
        lower_first(key)
    ))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
