//! The JSON shapes of Kinesis answers shared by several operations: shards,
//! records, consumers, settings.

use super::prelude::*;
use super::sequence;

pub(super) fn metrics_json(s: &StreamSettings) -> Value {
    json!(s.shard_level_metrics.iter().collect::<Vec<_>>())
}

pub(super) fn mode_name(s: &StreamSettings) -> &'static str {
    if s.on_demand {
        "ON_DEMAND"
    } else {
        "PROVISIONED"
    }
}

pub(super) fn add_encryption(out: &mut Value, s: &StreamSettings) {
    match &s.encryption_key {
        Some(key) => {
            out["EncryptionType"] = json!("KMS");
            out["KeyId"] = json!(key);
        }
        None => out["EncryptionType"] = json!("NONE"),
    }
}

pub(super) fn account_json(a: &riffle_store::catalog::AccountSettings) -> Value {
    match a.billing_commitment_since_ms {
        Some(since) => json!({"MinimumThroughputBillingCommitment": {
            "Status": "ENABLED",
            "StartedAt": since as f64 / 1000.0,
        }}),
        None => json!({"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}}),
    }
}

/// A consumer as AWS describes it; its ARN carries the creation time in seconds.
pub(super) fn consumer_json(
    config: &KinesisConfig,
    stream: &str,
    consumer: &str,
    created_ms: i64,
) -> Value {
    json!({
        "ConsumerName": consumer,
        "ConsumerARN": format!("{}/consumer/{consumer}:{}", arn(config, stream), created_ms / 1000),
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": created_ms as f64 / 1000.0,
    })
}

pub(super) fn shard_json(s: &crate::ShardDescription) -> Value {
    let mut out = json!({
        "ShardId": s.shard_id,
        "HashKeyRange": hash_key_range(s.hash_key_start, s.hash_key_end),
        "SequenceNumberRange": {
            "StartingSequenceNumber": sequence::starting(s.shard_index, shard_opened(s)),
        },
    });
    if let Some(p) = &s.parent_shard_id {
        out["ParentShardId"] = json!(p);
    }
    if let Some(p) = &s.adjacent_parent_shard_id {
        out["AdjacentParentShardId"] = json!(p);
    }
    if let Some(closed_ms) = s.closed_ms {
        out["SequenceNumberRange"]["EndingSequenceNumber"] =
            json!(sequence::ending(s.shard_index, shard_opened(s), closed_ms));
    }
    out
}

/// When a described shard opened.
pub(super) fn shard_opened(s: &crate::ShardDescription) -> crate::ShardOpened {
    crate::ShardOpened {
        at_ms: s.opened_ms,
        by_reshard: s.parent_shard_id.is_some(),
    }
}

pub(super) fn hash_key_range(start: u128, end: u128) -> Value {
    json!({"StartingHashKey": start.to_string(), "EndingHashKey": end.to_string()})
}

/// The records of a read in AWS form (EncryptionType only when it is KMS).
pub(super) fn records_json(got: &crate::GetRecordsOutput) -> Vec<Value> {
    got.records()
        .map(|r| {
            let mut v = json!({
                "SequenceNumber": sequence::record(
                    r.shard_index,
                    got.shard_opened,
                    r.offset,
                    r.arrival_ms(),
                ),
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
