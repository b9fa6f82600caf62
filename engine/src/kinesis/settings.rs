//! Stream settings (encryption, enhanced monitoring, resource policy, record
//! size, warm throughput) and the account's settings.

use super::prelude::*;

/// StartStreamEncryption and StopStreamEncryption.
pub(super) async fn start_stream_encryption(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    // The model allows KMS and NONE; only KMS encrypts.
    if input.required_str("EncryptionType")? != "KMS" {
        return Err(Refusal::from(Error::invalid(
            "EncryptionType must be KMS to start or stop server-side encryption.",
        )));
    }
    let key = input.required_str("KeyId")?;
    if op == "StartStreamEncryption" {
        engine.start_encryption(&name, key).await?;
    } else {
        engine.stop_encryption(&name).await?;
    }
    Ok(json!({}))
}

/// EnableEnhancedMonitoring and DisableEnhancedMonitoring.
pub(super) async fn enable_enhanced_monitoring(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let mut metrics = Vec::new();
    for m in input.string_list("ShardLevelMetrics")? {
        match m.as_str() {
            "ALL" => metrics.extend(SHARD_LEVEL_METRICS.iter().map(|m| m.to_string())),
            m if SHARD_LEVEL_METRICS.contains(&m) => metrics.push(m.to_owned()),
            _ => return Err(checked_by_the_model("ShardLevelMetrics")),
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

/// PutResourcePolicy.
pub(super) async fn put_resource_policy(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = resource_stream(&input, config)?;
    let policy = input.required_str("Policy")?;
    if !serde_json::from_str::<Value>(policy).is_ok_and(|v| v.is_object()) {
        return Err(Refusal::from(Error::invalid(
            "Policy must be a JSON document",
        )));
    }
    // Enforced when IAM is on: one that cannot be read is refused now.
    if let Err(e) = riffle_aws::iam::Policy::parse(policy, true) {
        return Err(Refusal::from(Error::invalid(e.to_string())));
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

/// GetResourcePolicy.
pub(super) async fn get_resource_policy(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = resource_stream(&input, config)?;
    let policy = engine.settings(&name)?.resource_policy;
    Ok(json!({"Policy": policy.unwrap_or_else(|| "{}".into())}))
}

/// DeleteResourcePolicy.
pub(super) async fn delete_resource_policy(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// UpdateMaxRecordSize.
pub(super) async fn update_max_record_size(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_of_arn(input.required_str("StreamARN")?, config)?;
    // The model bounds it to 1024-10240.
    let kib = match input.int("MaxRecordSizeInKiB")? {
        Some(k) => u32::try_from(k).map_err(|_| checked_by_the_model("MaxRecordSizeInKiB"))?,
        None => return Err(null_member("MaxRecordSizeInKiB")),
    };
    engine
        .change_settings(&name, SettingsChange::MaxRecordSize { kib })
        .await?;
    Ok(json!({}))
}

/// UpdateStreamWarmThroughput.
pub(super) async fn update_stream_warm_throughput(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    // The model requires it, at least 0.
    let mibps = match input.int("WarmThroughputMiBps")? {
        Some(m) => u32::try_from(m).map_err(|_| checked_by_the_model("WarmThroughputMiBps"))?,
        None => return Err(null_member("WarmThroughputMiBps")),
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

/// DescribeAccountSettings.
pub(super) async fn describe_account_settings(
    cx: &Ctx<'_>,
    _op: &str,
    _input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    Ok(account_json(&engine.account_settings()))
}

/// UpdateAccountSettings.
pub(super) async fn update_account_settings(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let status = match input.0.get("MinimumThroughputBillingCommitment") {
        Some(Value::Object(m)) => m.get("Status").and_then(Value::as_str),
        _ => None,
    };
    let enabled = match status {
        Some("ENABLED") => true,
        Some("DISABLED") => false,
        _ => return Err(checked_by_the_model("MinimumThroughputBillingCommitment")),
    };
    engine.set_billing_commitment(enabled).await?;
    Ok(account_json(&engine.account_settings()))
}

/// Enhanced monitoring's shard-level metrics ("ALL" stands for all of them).
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];
