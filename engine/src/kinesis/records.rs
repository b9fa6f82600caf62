//! Records: PutRecord and PutRecords (the generic path; JSON PutRecords has a
//! faster one in `puts`), GetShardIterator and GetRecords (JSON: `reads`).

use super::prelude::*;

/// PutRecord.
pub(super) async fn put_record(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// PutRecords.
pub(super) async fn put_records(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// GetShardIterator.
pub(super) async fn get_shard_iterator(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
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

/// GetRecords.
pub(super) async fn get_records(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
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

/// What PutRecord(s) report: KMS while server-side encryption is on.
pub(super) fn encryption_type(engine: &Engine, stream: &str) -> &'static str {
    if engine.is_encrypted(stream) {
        "KMS"
    } else {
        "NONE"
    }
}

fn sequence(input: &Input<'_>) -> Result<u128, Refusal> {
    let s = input.required_str("StartingSequenceNumber")?;
    Ok(seqno::parse(s)?)
}
