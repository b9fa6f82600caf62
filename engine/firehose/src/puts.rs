//! PutRecord and PutRecordBatch: a Direct PUT delivery stream's records are
//! appended to its internal stream (the same group commit as any Kinesis put)
//! and acknowledged only once durable there; delivery reads them back.
//!
//! A call's records go to one shard of the internal stream (in order, one hop),
//! calls taking the shards in turn. A RecordId names where the record is
//! stored: base64 of (shard, offset, delivery stream incarnation).

use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::PutRecordsEntry;
use riffle_protocol::Error;
use serde_json::{Value, json};

use crate::service::{Shared, internal_stream};
use crate::state::SourceKind;

/// AWS's limit on a PutRecordBatch's records' data together.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

type Answer = Result<Value, Refusal>;

fn record_id(id: u64, shard: u32, offset: u64) -> String {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&shard.to_be_bytes());
    b[4..12].copy_from_slice(&offset.to_be_bytes());
    b[12..].copy_from_slice(&id.to_be_bytes());
    BASE64.encode(b)
}

/// The delivery stream's incarnation and whether it is encrypted, or AWS's
/// refusal for a stream that does not take puts.
fn target(s: &Shared, name: &str) -> Result<(u64, bool), Error> {
    let state = s.meta.state();
    let d = state.streams.get(name).ok_or_else(|| s.not_found(name))?;
    if d.source != SourceKind::DirectPut {
        return Err(Error::invalid(
            "This operation is not permitted on KinesisStreamAsSource delivery stream type.",
        ));
    }
    Ok((d.id, d.encryption.is_some()))
}

/// Appends `data` (one entry per record) to one shard of the internal stream.
async fn append(
    s: &Shared,
    name: &str,
    data: &[Vec<u8>],
) -> Result<Vec<Result<(u32, u64), Error>>, Error> {
    let internal = internal_stream(name);
    let shards = s
        .engine
        .list_shards(&internal)
        .map_err(|_| s.not_found(name))?;
    let open: Vec<_> = shards.iter().filter(|sh| sh.is_open()).collect();
    if open.is_empty() {
        return Err(Error::internal(format!(
            "delivery stream {name} has no open shard"
        )));
    }
    let pick = s.next_shard.fetch_add(1, Ordering::Relaxed) as usize % open.len();
    let hash = open[pick].hash_key_start.to_string();
    let entries: Vec<PutRecordsEntry<'_>> = data
        .iter()
        .map(|d| PutRecordsEntry {
            partition_key: "firehose",
            explicit_hash_key: Some(&hash),
            data: d,
        })
        .collect();
    let results = s
        .engine
        .put_records(&internal, &entries)
        .await
        .map_err(|e| match e.code {
            riffle_protocol::ErrorCode::ResourceNotFound => s.not_found(name),
            _ => e,
        })?;
    Ok(results
        .into_iter()
        .map(|r| r.map(|p| (p.shard_index, p.offset)))
        .collect())
}

fn data_of(record: &Value) -> Result<Vec<u8>, Refusal> {
    let text = record
        .get("Data")
        .and_then(Value::as_str)
        .unwrap_or_default();
    BASE64
        .decode(text)
        .map_err(|_| Refusal::serialization("Data is not valid base64"))
}

pub(crate) async fn put_record(s: &Shared, input: Input<'_>) -> Answer {
    let name = input.required_str("DeliveryStreamName")?;
    let (id, encrypted) = target(s, name)?;
    let data = vec![data_of(input.get("Record").unwrap_or(&Value::Null))?];
    let mut results = append(s, name, &data).await?;
    let (shard, offset) = results.remove(0)?;
    Ok(json!({"RecordId": record_id(id, shard, offset), "Encrypted": encrypted}))
}

pub(crate) async fn put_record_batch(s: &Shared, input: Input<'_>) -> Answer {
    let name = input.required_str("DeliveryStreamName")?;
    let (id, encrypted) = target(s, name)?;
    let records = input
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let data = records.iter().map(data_of).collect::<Result<Vec<_>, _>>()?;
    let total: usize = data.iter().map(Vec::len).sum();
    if total > BATCH_BYTES_MAX {
        return Err(Error::invalid(format!(
            "Records size exceeds {BATCH_BYTES_MAX} bytes limit; the request's records hold {total} bytes."
        ))
        .into());
    }
    let results = append(s, name, &data).await?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let responses: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok((shard, offset)) => json!({"RecordId": record_id(id, shard, offset)}),
            // AWS's per-record failure: the service could not take it now.
            Err(e) => json!({
                "ErrorCode": "ServiceUnavailableException",
                "ErrorMessage": e.message,
            }),
        })
        .collect();
    Ok(json!({
        "FailedPutCount": failed,
        "Encrypted": encrypted,
        "RequestResponses": responses,
    }))
}
