//! Shards: ListShards and resharding (SplitShard, MergeShards, UpdateShardCount).

use super::prelude::*;
use super::records::aws_shard_index;
use super::streams::SHARD_LIMIT;

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
        None if input.get("StreamName").is_none() && input.get("StreamARN").is_none() => {
            return Err(Refusal::from(Error::invalid(
                "Either NextToken or StreamName should be provided.",
            )));
        }
        None => (
            stream_name(&input, config)?,
            input.str("ExclusiveStartShardId")?.map(str::to_owned),
        ),
    };
    // The model bounds it to 1-10,000.
    let max = input.int("MaxResults")?.unwrap_or(1000).clamp(1, 10_000) as usize;
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

/// SplitShard, with AWS's checks in AWS's order: the shard id's form, the
/// stream and its state, the shard, the account's shard limit, the hash key.
pub(super) async fn split_shard(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let shards = [input.required_str("ShardToSplit")?];
    let (d, [shard]) = reshard_shards(cx, &name, shards)?;
    let open = open_shard_count(engine);
    if open + 1 > SHARD_LIMIT as usize {
        return Err(shard_limit_exceeded(config, open, 1));
    }
    let given = input.required_str("NewStartingHashKey")?;
    // The model's pattern allows 39 digits: a key past 2^128 - 1 is past the end.
    let new_start = given.parse::<u128>().ok();
    let s = &d.shards[shard as usize];
    if new_start.is_none_or(|h| h <= s.hash_key_start.saturating_add(1) || h >= s.hash_key_end) {
        return Err(Refusal::from(Error::invalid(format!(
            "NewStartingHashKey {given} used in SplitShard() on shard {} in stream {name} under account {} \
             is not both greater than one plus the shard's StartingHashKey {} and less than the shard's \
             EndingHashKey {}.",
            s.shard_id, config.account, s.hash_key_start, s.hash_key_end
        ))));
    }
    let new_start = new_start.expect("checked above");
    engine.split_shard(&name, &s.shard_id, new_start).await?;
    Ok(json!({}))
}

/// MergeShards, with AWS's checks in AWS's order: the shard ids' form, the
/// stream and its state, the shards, their adjacency.
pub(super) async fn merge_shards(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let shards = [
        input.required_str("ShardToMerge")?,
        input.required_str("AdjacentShardToMerge")?,
    ];
    let (d, [a, b]) = reshard_shards(cx, &name, shards)?;
    let (a, b) = (&d.shards[a as usize], &d.shards[b as usize]);
    if a.hash_key_end.checked_add(1) != Some(b.hash_key_start) {
        return Err(Refusal::from(Error::invalid(format!(
            "Shards {} and {} in stream {name} under account {} are not an adjacent pair of shards eligible for merging",
            a.shard_id, b.shard_id, config.account
        ))));
    }
    engine.merge_shards(&name, &a.shard_id, &b.shard_id).await?;
    Ok(json!({}))
}

/// The stream a reshard names and the indexes of the shards it names, or
/// AWS's refusals: a shard id of no form AWS reads, a stream that does not
/// exist or is not ACTIVE, a shard the stream does not have.
fn reshard_shards<const N: usize>(
    cx: &Ctx<'_>,
    name: &str,
    shards: [&str; N],
) -> Result<(crate::StreamDescription, [u32; N]), Refusal> {
    let account = &cx.config.account;
    let not_found = |shard: &str| {
        Refusal::from(Error::not_found(format!(
            "Could not find shard {shard} in stream {name} under account {account}."
        )))
    };
    let mut indexes = [0u32; N];
    for (i, shard) in shards.iter().enumerate() {
        indexes[i] = aws_shard_index(shard).ok_or_else(|| not_found(shard))?;
    }
    let d = cx.engine.describe_stream(name)?;
    if d.status != "ACTIVE" {
        return Err(Refusal::from(Error::in_use(format!(
            "Stream {name} under account {account} not ACTIVE, instead in state {}",
            d.status
        ))));
    }
    for &index in &indexes {
        if index as usize >= d.shards.len() {
            return Err(not_found(&riffle_protocol::routing::shard_id(index)));
        }
    }
    Ok((d, indexes))
}

/// Open shards of every stream but those being deleted (what the account's
/// shard limit counts).
pub(super) fn open_shard_count(engine: &Engine) -> usize {
    engine
        .list_streams()
        .iter()
        .filter_map(|n| engine.describe_stream(n).ok())
        .filter(|d| d.status != "DELETING")
        .map(|d| d.shards.iter().filter(|s| s.is_open()).count())
        .sum()
}

/// AWS's refusal of a request that would take the account past its shard limit.
pub(super) fn shard_limit_exceeded(config: &KinesisConfig, open: usize, more: u64) -> Refusal {
    Refusal::from(Error::new(
        riffle_protocol::ErrorCode::LimitExceeded,
        format!(
            "This request would exceed the shard limit for the account {} in {}. \
             Current shard count for the account: {open}. Limit: {SHARD_LIMIT}. \
             Number of additional shards that would have resulted from this request: {more}. \
             Refer to the AWS Service Limits page \
             (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) \
             for current limits and how to request higher limits.",
            config.account, config.region
        ),
    ))
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
    // The model requires both, the count at least 1 and the type UNIFORM_SCALING.
    let Some(target) = input.int("TargetShardCount")? else {
        return Err(null_member("TargetShardCount"));
    };
    let target = u32::try_from(target).map_err(|_| checked_by_the_model("TargetShardCount"))?;
    if input.required_str("ScalingType")? != "UNIFORM_SCALING" {
        return Err(checked_by_the_model("ScalingType"));
    }
    let current = engine
        .describe_stream(&name)?
        .shards
        .iter()
        .filter(|s| s.is_open())
        .count();
    engine.update_shard_count(&name, target).await?;
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
        _ => return Err(checked_by_the_model("ShardFilter.Type")),
    })
}
