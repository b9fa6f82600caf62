//! Streams: create, delete, list, describe, retention, capacity mode, account limits.

use super::prelude::*;

/// CreateStream.
pub(super) async fn create_stream(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
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
    // The model bounds ShardCount below (1); the account's limit bounds it above.
    let open = super::shards::open_shard_count(engine) as u64;
    let count = count.max(1) as u64;
    if open + count > u64::from(SHARD_LIMIT) {
        return Err(super::shards::shard_limit_exceeded(
            cx.config,
            open as usize,
            count,
        ));
    }
    let tags = match input.0.get("Tags") {
        None | Some(Value::Null) => None,
        Some(_) => Some(input.string_map("Tags")?),
    };
    // Checked before the stream exists: a refusal must leave nothing behind.
    if let Some(tags) = &tags {
        super::tags::check_characters(
            tags.iter().flat_map(|(k, v)| [k, v]),
            &format!(
                "Failed to create stream {name} under account {}",
                cx.config.account
            ),
        )?;
        let limit = engine.limits().tags_per_stream_max as usize;
        if tags.len() > limit {
            return Err(Refusal::from(Error::invalid(format!(
                "Failed to create stream {name} under account {} because a given stream cannot have more than {limit} tags associated with it.",
                cx.config.account
            ))));
        }
    }
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

/// DeleteStream.
pub(super) async fn delete_stream(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    engine.delete_stream(&name).await?;
    Ok(json!({}))
}

/// ListStreams.
pub(super) async fn list_streams(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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
        .filter_map(|n| Some((engine.describe_stream(n).ok()?, engine.settings(n).ok()?)))
        .map(|(d, settings)| {
            json!({
                "StreamName": d.name,
                "StreamARN": arn(config, &d.name),
                "StreamStatus": d.status,
                "StreamModeDetails": {"StreamMode": mode_name(&settings)},
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

/// DescribeStream.
pub(super) async fn describe_stream(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let d = engine.describe_stream(&name)?;
    let settings = engine.settings(&name)?;
    let limit = input.int("Limit")?.unwrap_or(100).clamp(1, 10_000) as usize;
    let start = input.str("ExclusiveStartShardId")?;
    // AWS lists no shards while a stream is being created or deleted.
    let listed: &[crate::ShardDescription] = match d.status {
        "CREATING" | "DELETING" => &[],
        _ => &d.shards,
    };
    let shards: Vec<Value> = listed
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

/// DescribeStreamSummary.
pub(super) async fn describe_stream_summary(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod.
pub(super) async fn increase_stream_retention_period(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// UpdateStreamMode.
pub(super) async fn update_stream_mode(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_of_arn(input.required_str("StreamARN")?, config)?;
    let on_demand = stream_mode(&input)?.ok_or_else(|| null_member("StreamModeDetails"))?;
    engine
        .change_settings(&name, SettingsChange::Mode { on_demand })
        .await?;
    Ok(json!({}))
}

/// DescribeLimits.
pub(super) async fn describe_limits(
    cx: &Ctx<'_>,
    _op: &str,
    _input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
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

/// AWS's API refuses retention periods under 24 hours; the engine itself allows
/// down to `Limits::retention_hours_min` for the native interfaces (tests).
const RETENTION_HOURS_MIN: i64 = 24;

/// The account's shard limit: what DescribeLimits reports, CreateStream and
/// SplitShard enforce (AWS's default).
pub(super) const SHARD_LIMIT: u32 = 500;

/// Shards of an ON_DEMAND stream created without a ShardCount (AWS starts
/// on-demand streams at 4 shards).
const ON_DEMAND_SHARDS: i64 = 4;

/// `StreamModeDetails.StreamMode`: Some(true) for ON_DEMAND.
fn stream_mode(input: &Input<'_>) -> Result<Option<bool>, Refusal> {
    match input.0.get("StreamModeDetails") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match m.get("StreamMode").and_then(Value::as_str) {
            Some("ON_DEMAND") => Ok(Some(true)),
            Some("PROVISIONED") => Ok(Some(false)),
            _ => Err(checked_by_the_model("StreamModeDetails.StreamMode")),
        },
        Some(_) => Err(Refusal::serialization(
            "StreamModeDetails must be an object",
        )),
    }
}
