//! Records: PutRecord and PutRecords (the generic path; JSON PutRecords has a
//! faster one in `puts`), GetShardIterator and GetRecords (JSON: `reads`).
//! Sequence numbers and iterators cross in AWS's form (`sequence`).

use super::prelude::*;
use super::sequence;

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
    if let Some(seq) = input.str("SequenceNumberForOrdering")?
        && sequence::parse(seq).is_none_or(|p| p.time_s as i64 * 1000 > rt::now_ms())
    {
        // The stream's existence is checked first.
        engine.describe_stream(&name)?;
        return Err(Refusal::from(Error::invalid(format!(
            "ExclusiveMinimumSequenceNumber {seq} used in PutRecord on stream {name} under account {} is invalid.",
            config.account
        ))));
    }
    let put = engine.put_record(&name, key, hash, &data).await?;
    let mut out = json!({
        "ShardId": put.shard_id(),
        "SequenceNumber": put_sequence_number(&put),
    });
    add_put_encryption(&mut out, engine, &name);
    Ok(out)
}

/// A put record's sequence number in AWS's form.
pub(super) fn put_sequence_number(put: &crate::PutResult) -> sequence::Digits {
    sequence::record(
        put.shard_index,
        put.shard_opened,
        put.offset,
        put.arrival_ms,
    )
}

/// AWS reports a put's EncryptionType only when the stream is encrypted.
fn add_put_encryption(out: &mut Value, engine: &Engine, stream: &str) {
    if engine.is_encrypted(stream) {
        out["EncryptionType"] = json!("KMS");
    }
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
            Ok(p) => json!({"ShardId": p.shard_id(), "SequenceNumber": put_sequence_number(&p)}),
            Err(e) => json!({
                "ErrorCode": e.code.aws_name(),
                "ErrorMessage": e.message,
            }),
        })
        .collect();
    let mut out = json!({"FailedRecordCount": failed, "Records": out});
    add_put_encryption(&mut out, engine, &name);
    Ok(out)
}

/// GetShardIterator, with AWS's checks in AWS's order: the shard id's form,
/// the stream, the shard, then the iterator type's arguments.
pub(super) async fn get_shard_iterator(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let account = &config.account;
    let shard_given = input.required_str("ShardId")?;
    let Some(index) = aws_shard_index(shard_given) else {
        return Err(Refusal::from(Error::not_found(format!(
            "Could not find shard {shard_given} in stream {name} under account {account}."
        ))));
    };
    let shard_id = riffle_protocol::routing::shard_id(index);
    let shard_missing = || {
        Refusal::from(Error::not_found(format!(
            "Shard {shard_id} in stream {name} under account {account} does not exist"
        )))
    };
    let d = engine.describe_stream(&name).map_err(|e| match e.code {
        riffle_protocol::ErrorCode::ResourceNotFound => shard_missing(),
        _ => Refusal::from(e),
    })?;
    // A stream being created has no shards yet.
    let shard = d.shards.iter().find(|s| s.shard_index == index);
    let Some(shard) = shard.filter(|_| d.status != "CREATING") else {
        return Err(shard_missing());
    };
    let kind_name = input.required_str("ShardIteratorType")?;
    let starting = input.str("StartingSequenceNumber")?;
    let sequence_rule = |specified: &str| {
        Refusal::from(Error::invalid(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or \
             (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified {kind_name} and {specified} StartingSequenceNumber."
        )))
    };
    let kind = match (kind_name, starting) {
        ("TRIM_HORIZON" | "LATEST", Some(_)) => return Err(sequence_rule("also a")),
        ("TRIM_HORIZON", None) => IteratorType::TrimHorizon,
        ("LATEST", None) => IteratorType::Latest,
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => return Err(sequence_rule("no")),
        (at_or_after, Some(seq)) => {
            let invalid = |why: &str| {
                Refusal::from(Error::invalid(format!(
                    "StartingSequenceNumber {seq} used in GetShardIterator on shard {shard_id} \
                     in stream {name} under account {account} is invalid{why}."
                )))
            };
            let Some(parsed) = sequence::parse(seq) else {
                return Err(invalid(""));
            };
            if parsed.shard != i64::from(index) {
                return Err(Refusal::from(Error::invalid(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {shard_id}",
                    sequence::shard_name(parsed.shard)
                ))));
            }
            if !parsed.is_of(shard_opened(shard)) {
                if parsed.version == 0 {
                    // What AWS answers to its oldest numbers.
                    return Err(Refusal::new(
                        hyper::StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalFailure",
                        "",
                    ));
                }
                return Err(invalid(" because it did not come from this stream"));
            }
            let after = at_or_after == "AFTER_SEQUENCE_NUMBER";
            let number = parsed.engine_number(index, after);
            if after {
                IteratorType::AfterSequenceNumber(number)
            } else {
                IteratorType::AtSequenceNumber(number)
            }
        }
        ("AT_TIMESTAMP", None) => {
            let Some(t) = input.0.get("Timestamp").and_then(Value::as_f64) else {
                return Err(Refusal::from(Error::invalid(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
                     Current request has no timestamp parameter.",
                )));
            };
            let (millis, now) = (t * 1000.0, rt::now_ms());
            if millis > now as f64 {
                return Err(Refusal::from(Error::invalid(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
                     timestampInMillis: {millis}, currentTimestampInMillis: {now}"
                ))));
            }
            IteratorType::AtTimestamp(millis as i64)
        }
        // The model allows no other type.
        (other, None) => return Err(sequence_rule(&format!("{other} and no"))),
    };
    let it = engine.get_shard_iterator(&name, &shard_id, kind).await?;
    Ok(json!({"ShardIterator": sequence::wrap_iterator(&it)}))
}

/// A shard named as AWS accepts it: `shardId-000000000001`, `shard-1`, `1`,
/// anything up to the first `-` followed by the index (at most 2^31 - 1).
pub(super) fn aws_shard_index(shard_id: &str) -> Option<u32> {
    let digits = match shard_id.split('-').nth(1) {
        Some(d) if !d.is_empty() => d,
        _ => shard_id,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are allowed; the value must fit in an i32.
    let value = digits.trim_start_matches('0');
    if value.len() > 10 {
        return None;
    }
    let index: u64 = if value.is_empty() {
        0
    } else {
        value.parse().ok()?
    };
    u32::try_from(index).ok().filter(|&i| i <= i32::MAX as u32)
}

/// GetRecords.
pub(super) async fn get_records(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let (it, limit) = get_records_input(&input)?;
    let got = engine.get_records(&it, limit).await?;
    let mut out = json!({
        "Records": records_json(&got),
        "MillisBehindLatest": got.millis_behind_latest,
    });
    if let Some(it) = &got.next_shard_iterator {
        out["NextShardIterator"] = json!(sequence::wrap_iterator(it));
    }
    if let Some(children) = &got.child_shards {
        out["ChildShards"] = child_shards_json(children);
    }
    Ok(out)
}

/// GetRecords' input: the engine's iterator token and the limit (the model
/// bounds it to 1-10,000; none: the default).
pub(super) fn get_records_input(input: &Input<'_>) -> Result<(String, Option<u32>), Refusal> {
    let it = input.required_str("ShardIterator")?;
    let Some(token) = sequence::unwrap_iterator(it) else {
        return Err(Refusal::from(Error::invalid("Invalid ShardIterator.")));
    };
    let limit = input.int("Limit")?.map(|l| l.clamp(1, 10_000) as u32);
    Ok((token, limit))
}
