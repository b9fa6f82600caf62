//! The control plane's stream operations: CreateStream, DescribeStream,
//! ListStreams, DeleteStream, UpdateStream, UpdateDataRetention and
//! GetDataEndpoint, as AWS answers them. Each checks what the model cannot,
//! makes the change durable through the metadata log, and answers.
//!
//! The engine's internal stream is made before the metadata names it and
//! removed after the metadata forgets it: a crash between the two leaves an
//! orphan that the next start removes (`VideoService::start`).

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::rt;
use serde_json::{Value, json};

use crate::service::{Shared, invalid, refusal};
use crate::state::{VideoEvent, VideoStream, internal_stream};

/// The retention the engine keeps for a stream that asks for none (AWS
/// keeps such fragments in a host buffer for a few minutes, readable by
/// GetMedia only; the store's smallest retention is an hour).
const RETENTION_HOURS_STORED_MIN: u32 = 1;

/// AWS's longest retention: ten years.
const RETENTION_HOURS_MAX: i64 = 87_600;

/// ListStreams' page when MaxResults is not given (AWS's default).
const LIST_STREAMS_PAGE_DEFAULT: usize = 10_000;

/// The key AWS uses when CreateStream names none.
fn default_kms_key(s: &Shared) -> String {
    format!(
        "arn:aws:kms:{}:{}:alias/aws/kinesisvideo",
        s.config.region, s.config.account
    )
}

/// A new version: 20 random letters and digits (the model's
/// `[a-zA-Z0-9]+`, at most 64).
fn new_version() -> String {
    riffle_engine::http::random_uuid()
        .replace('-', "")
        .chars()
        .take(20)
        .collect()
}

/// The hours the engine keeps for `retention_hours` (0: the smallest; over
/// the store's bound: its bound).
pub(crate) fn stored_hours(engine: &riffle_engine::Engine, retention_hours: u32) -> u32 {
    let max = engine.limits().retention_hours_max;
    retention_hours.clamp(RETENTION_HOURS_STORED_MIN, max)
}

pub(crate) async fn create(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let name = input.required_str("StreamName")?;
    let retention = input.int("DataRetentionInHours")?.unwrap_or(0);
    if retention > RETENTION_HOURS_MAX {
        return Err(invalid(format!(
            "DataRetentionInHours {retention} is more than {RETENTION_HOURS_MAX}."
        )));
    }
    let retention_hours = retention as u32;
    let tags = match input.get("Tags") {
        Some(_) => input.string_map("Tags")?,
        None => Default::default(),
    };
    if tags.len() > crate::state::TAGS_PER_STREAM_MAX {
        return Err(refusal(riffle_protocol::Error::new(
            riffle_protocol::ErrorCode::LimitExceeded,
            format!(
                "A stream can have at most {} tags.",
                crate::state::TAGS_PER_STREAM_MAX
            ),
        )));
    }
    let storage_tier = match input.object("StreamStorageConfiguration")? {
        Some(c) => Some(c.required_str("DefaultStorageTier")?.to_string()),
        None => None,
    };
    let state = s.meta.state();
    if state.streams.contains_key(name) {
        return Err(refusal(riffle_protocol::Error::in_use(format!(
            "The stream {name} already exists."
        ))));
    }
    if state.streams.len() >= s.config.streams_max {
        return Err(Refusal::client(
            "AccountStreamLimitExceededException",
            format!(
                "The account has {} video streams, its limit.",
                s.config.streams_max
            ),
        ));
    }
    let explicit_key = input.str("KmsKeyId")?;
    let kms_key_id = explicit_key.map_or_else(|| default_kms_key(s), str::to_string);
    let created_ms = rt::now_ms();
    // A UUID's first 8 hex digits: 32 random bits.
    let uuid = riffle_engine::http::random_uuid();
    let nonce = u32::from_str_radix(uuid.get(..8).unwrap_or(""), 16).unwrap_or(0);
    let internal = internal_stream(created_ms, nonce);
    s.engine
        .create_stream(&internal, 1)
        .await
        .map_err(refusal)?;
    if let Err(e) = s
        .engine
        .set_retention_hours(&internal, stored_hours(&s.engine, retention_hours))
        .await
    {
        let _ = s.engine.delete_stream(&internal).await;
        return Err(refusal(e));
    }
    // Always encrypted, as on AWS, under the stream's key (the AWS-managed
    // one by default) when the server has a keyring; a key named without
    // one is refused (KMSNotFoundException's words).
    if (explicit_key.is_some() || s.engine.has_keyring())
        && let Err(e) = s.engine.start_encryption(&internal, &kms_key_id).await
    {
        let _ = s.engine.delete_stream(&internal).await;
        return Err(refusal(e));
    }
    let arn = s.arn(name, created_ms);
    let stream = VideoStream {
        name: name.to_string(),
        id: 0,
        arn: arn.clone(),
        internal: internal.clone(),
        device_name: input.str("DeviceName")?.map(str::to_string),
        media_type: input.str("MediaType")?.map(str::to_string),
        kms_key_id,
        retention_hours,
        version: new_version(),
        created_ms,
        tags,
        storage_tier,
        image_generation: None,
        notification: None,
    };
    if let Err(e) = s
        .meta
        .apply(VideoEvent::Create {
            stream: Box::new(stream),
        })
        .await
    {
        let _ = s.engine.delete_stream(&internal).await;
        return Err(refusal(e));
    }
    Ok(json!({ "StreamARN": arn }))
}

/// A stream as DescribeStream and ListStreams show it.
fn info(s: &Shared, v: &VideoStream) -> Value {
    let mut o = json!({
        "StreamName": v.name,
        "StreamARN": v.arn,
        "KmsKeyId": v.kms_key_id,
        "Version": v.version,
        "Status": s.status(v),
        "CreationTime": v.created_ms as f64 / 1000.0,
        "DataRetentionInHours": v.retention_hours,
    });
    if let Some(d) = &v.device_name {
        o["DeviceName"] = json!(d);
    }
    if let Some(m) = &v.media_type {
        o["MediaType"] = json!(m);
    }
    o
}

pub(crate) fn describe(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    Ok(json!({ "StreamInfo": info(s, &v) }))
}

pub(crate) fn list(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let page = input
        .int("MaxResults")?
        .map_or(LIST_STREAMS_PAGE_DEFAULT, |n| n as usize);
    let prefix = match input.object("StreamNameCondition")? {
        Some(c) => c.str("ComparisonValue")?.unwrap_or("").to_string(),
        None => String::new(),
    };
    // The token is the last name of the page before.
    let after = crate::page::next(input, |name| Some(name.to_string()))?;
    let state = s.meta.state();
    let mut out = Vec::new();
    let mut next = None;
    let names = state
        .streams
        .values()
        .filter(|v| v.name.starts_with(&prefix))
        .filter(|v| after.as_ref().is_none_or(|a| v.name > *a));
    for v in names {
        if out.len() == page {
            next = out
                .last()
                .and_then(|o: &Value| o["StreamName"].as_str())
                .map(crate::page::token);
            break;
        }
        out.push(info(s, v));
    }
    let mut answer = json!({ "StreamInfoList": out });
    if let Some(t) = next {
        answer["NextToken"] = json!(t);
    }
    Ok(answer)
}

/// `CurrentVersion` when given must be the stream's.
fn check_version(v: &VideoStream, current: Option<&str>) -> Result<(), Refusal> {
    match current {
        Some(c) if c != v.version => Err(refusal(crate::state::version_mismatch(&v.name))),
        _ => Ok(()),
    }
}

pub(crate) async fn delete(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    check_version(&v, input.str("CurrentVersion")?)?;
    s.meta
        .apply(VideoEvent::Delete {
            name: v.name.clone(),
            id: v.id,
        })
        .await
        .map_err(refusal)?;
    s.media.forget(&v.internal);
    s.metrics.forget(&v.name);
    if let Err(e) = s.engine.delete_stream(&v.internal).await {
        // The next start removes it (an orphan).
        tracing::warn!(
            "video stream {}: cannot delete its internal stream {}: {e}",
            v.name,
            v.internal
        );
    }
    Ok(json!({}))
}

pub(crate) async fn update(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    let current = input.required_str("CurrentVersion")?;
    check_version(&v, Some(current))?;
    s.meta
        .apply(VideoEvent::Update {
            name: v.name.clone(),
            id: v.id,
            current_version: current.to_string(),
            device_name: input.str("DeviceName")?.map(str::to_string),
            media_type: input.str("MediaType")?.map(str::to_string),
            version: new_version(),
        })
        .await
        .map_err(refusal)?;
    Ok(json!({}))
}

pub(crate) async fn update_retention(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    let current = input.required_str("CurrentVersion")?;
    check_version(&v, Some(current))?;
    let change = input.int("DataRetentionChangeInHours")?.unwrap_or(0);
    let hours = match input.required_str("Operation")? {
        "INCREASE_DATA_RETENTION" => i64::from(v.retention_hours).checked_add(change),
        _ => i64::from(v.retention_hours).checked_sub(change),
    };
    let hours = match hours {
        Some(h) if (0..=RETENTION_HOURS_MAX).contains(&h) => h as u32,
        _ => {
            return Err(invalid(format!(
                "The retention of stream {} would leave 0 to {RETENTION_HOURS_MAX} hours.",
                v.name
            )));
        }
    };
    // The metadata first (it checks the version: of two racing calls one
    // passes), then the engine; a crash between them is mended at start.
    s.meta
        .apply(VideoEvent::Retention {
            name: v.name.clone(),
            id: v.id,
            current_version: current.to_string(),
            retention_hours: hours,
            version: new_version(),
        })
        .await
        .map_err(refusal)?;
    s.engine
        .set_retention_hours(&v.internal, stored_hours(&s.engine, hours))
        .await
        .map_err(refusal)?;
    Ok(json!({}))
}

/// Every API's endpoint is this server: the scheme it serves and the host
/// the caller reached it by (the request's `Host`, or its URI's authority
/// over HTTP/2).
pub(crate) fn data_endpoint(
    s: &Shared,
    input: Input<'_>,
    parts: &http::request::Parts,
) -> Result<Value, Refusal> {
    s.named(input)?;
    Ok(json!({ "DataEndpoint": own_url(s, parts)? }))
}

/// This server's base URL as the caller reached it: the scheme it serves
/// and the request's `Host` (or its URI's authority over HTTP/2).
pub(crate) fn own_url(s: &Shared, parts: &http::request::Parts) -> Result<String, Refusal> {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .ok_or_else(|| invalid("The request names no host to answer with."))?;
    let scheme = if s.config.tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}
