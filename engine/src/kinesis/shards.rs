//! Shards: ListShards and resharding (SplitShard, MergeShards, UpdateShardCount).

use super::prelude::*;

/// ListShards.
pub(super) async fn list_shards(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// SplitShard.
pub(super) async fn split_shard(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let shard = input.required_str("ShardToSplit")?;
    let new_start = hash_key(&input, "NewStartingHashKey", "newStartingHashKey")?;
    engine.split_shard(&name, shard, new_start).await?;
    Ok(json!({}))
}

/// MergeShards.
pub(super) async fn merge_shards(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let shard = input.required_str("ShardToMerge")?;
    let adjacent = input.required_str("AdjacentShardToMerge")?;
    engine.merge_shards(&name, shard, adjacent).await?;
    Ok(json!({}))
}

/// UpdateShardCount.
pub(super) async fn update_shard_count(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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
