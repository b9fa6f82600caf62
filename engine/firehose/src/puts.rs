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
use riffle_protocol::Error;
use serde_json::{Value, json};

use crate::metrics::PutApi;
use crate::service::{Shared, internal_stream};
use crate::state::SourceKind;

/// The partition key of the internal streams' records (nothing routes by it).
const PARTITION_KEY: &str = "firehose";

/// AWS's limit on a PutRecordBatch's records' data together.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

type Answer = Result<Value, Refusal>;

fn record_id(id: u64, shard: u32, offset: u64) -> String {
    let mut out = String::with_capacity(RECORD_ID_LEN);
    write_record_id(id, shard, offset, &mut out);
    out
}

/// The length of a RecordId (base64 of 20 bytes).
const RECORD_ID_LEN: usize = 28;

/// Appends the RecordId of a record to `out`.
fn write_record_id(id: u64, shard: u32, offset: u64, out: &mut String) {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&shard.to_be_bytes());
    b[4..12].copy_from_slice(&offset.to_be_bytes());
    b[12..].copy_from_slice(&id.to_be_bytes());
    BASE64.encode_string(b, out);
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

/// Appends `data` (one entry per record) to one shard of the internal stream
/// of incarnation `id` of delivery stream `name`, and counts the put in its
/// metrics (`api`'s and the `Incoming*` ones: the records stored).
async fn append(
    s: &Shared,
    name: &str,
    id: u64,
    api: PutApi,
    data: &[&[u8]],
) -> Result<Vec<Result<(u32, u64), Error>>, Error> {
    let started = riffle_engine::rt::now_ms();
    let spread = s.next_shard.fetch_add(1, Ordering::Relaxed);
    let appended = s
        .engine
        .append_records(&internal_stream(name), spread, data, PARTITION_KEY)
        .await;
    let results: Vec<Result<(u32, u64), Error>> = match appended {
        Ok((shard, a)) => (0..data.len() as u64)
            .map(|i| Ok((shard, a.base_offset + i)))
            .collect(),
        // A sealed shard (never for internal streams, which are not
        // resharded) is a storage refusal, not a missing stream.
        Err(e) if riffle_engine::pump::is_sealed_error(&e) => {
            data.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => match e.code {
            riffle_protocol::ErrorCode::ResourceNotFound => return Err(s.not_found(name)),
            riffle_protocol::ErrorCode::InvalidArgument => return Err(e),
            // The delivery stream's KMS key refused: the whole call fails
            // (InvalidKMSResourceException, `service::kms_worded`).
            riffle_protocol::ErrorCode::KmsDisabled
            | riffle_protocol::ErrorCode::KmsNotFound
            | riffle_protocol::ErrorCode::KmsInvalidState
            | riffle_protocol::ErrorCode::KmsAccessDenied => return Err(e),
            // Storage refused the append: each record fails (AWS answers
            // ServiceUnavailableException per record).
            _ => data.iter().map(|_| Err(e.clone())).collect(),
        },
    };
    let m = s.metrics.of(name, id);
    let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
    if results.first().is_some_and(Result::is_ok) {
        // The request last: CloudWatch's sampler reads it as the calls.
        m.incoming_records.add(data.len() as u64);
        m.incoming_bytes.add(bytes);
        m.incoming_put_requests.add(1);
    }
    let a = m.api(api);
    a.requests.add(1);
    a.records.add(data.len() as u64);
    a.bytes.add(bytes);
    a.latency
        .observe_ms(riffle_engine::rt::now_ms().saturating_sub(started));
    Ok(results)
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
    let data = data_of(input.get("Record").unwrap_or(&Value::Null))?;
    let mut results = append(s, name, id, PutApi::PutRecord, &[&data]).await?;
    // Not stored (the storage refused it): AWS's answer for that.
    let (shard, offset) = results.remove(0).map_err(|e| {
        Refusal::new(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            e.message,
        )
    })?;
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
    let slices: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let results = append(s, name, id, PutApi::PutRecordBatch, &slices).await?;
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

/// PutRecordBatch over JSON without a `serde_json::Value` tree (the ingest hot
/// path): the body is read into borrowed structs, every member checked with
/// the model's hot-path checks, the records decoded into one buffer and the
/// answer written as text. `None` when the body is not a well-formed, valid
/// PutRecordBatch: the generic path then words the refusal as AWS does.
pub(crate) async fn put_record_batch_fast(
    s: &Shared,
    body: &[u8],
) -> Option<Result<bytes::Bytes, Refusal>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch<'a> {
        #[serde(rename = "DeliveryStreamName", borrow)]
        name: std::borrow::Cow<'a, str>,
        #[serde(rename = "Records", borrow)]
        records: Vec<Entry<'a>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry<'a> {
        #[serde(rename = "Data", borrow)]
        data: std::borrow::Cow<'a, str>,
    }
    let input: Batch<'_> = serde_json::from_slice(body).ok()?;
    let checks = &*CHECKS;
    if !checks.name.is_valid(&input.name) || !checks.records.is_valid(input.records.len()) {
        return None;
    }
    let (data, spans) =
        riffle_aws::input::decode_blobs(input.records.iter().map(|r| &*r.data), &checks.data)?;
    Some(batch_answer(s, &input.name, &data, &spans).await)
}

/// The model's constraints on PutRecordBatch's members, made once.
pub(crate) struct Checks {
    pub(crate) name: riffle_aws::model::StringCheck<'static>,
    pub(crate) records: riffle_aws::model::StructureListCheck<'static>,
    pub(crate) data: riffle_aws::model::BlobCheck<'static>,
}

pub(crate) static CHECKS: std::sync::LazyLock<Checks> = std::sync::LazyLock::new(|| {
    let m = riffle_aws::model::firehose();
    let member = |structure: &str, name: &str| {
        m.member_shape(structure, name)
            .unwrap_or_else(|| panic!("the Firehose model has {structure}.{name}"))
    };
    Checks {
        name: member("PutRecordBatchInput", "DeliveryStreamName")
            .string_check()
            .expect("a string member"),
        records: member("PutRecordBatchInput", "Records")
            .structure_list_check(m)
            .expect("a list of structures"),
        data: member("Record", "Data")
            .blob_check()
            .expect("a blob member"),
    }
});

/// A PutRecordBatch's records, put: the delivery stream's incarnation, whether
/// it is encrypted, and per record where it is stored or why it is not (AWS
/// answers that as ServiceUnavailableException).
pub(crate) struct BatchPut {
    id: u64,
    pub(crate) encrypted: bool,
    pub(crate) results: Vec<Result<(u32, u64), Error>>,
}

impl BatchPut {
    /// Every stored record's RecordId, written one after the other into one
    /// string (no allocation per record), and per record where its id is in
    /// it, or why it was not stored.
    pub(crate) fn record_ids(&self) -> (String, Vec<Result<std::ops::Range<usize>, &Error>>) {
        let mut text = String::with_capacity(self.results.len() * RECORD_ID_LEN);
        let ranges = self
            .results
            .iter()
            .map(|r| {
                let &(shard, offset) = r.as_ref()?;
                let start = text.len();
                write_record_id(self.id, shard, offset, &mut text);
                Ok(start..text.len())
            })
            .collect();
        (text, ranges)
    }
}

/// PutRecordBatch after its input's checks, for the JSON API and the native
/// protocol (`native.rs`): the delivery stream must take puts and the records
/// fit AWS's size limit; they are acknowledged once durable.
pub(crate) async fn put_batch(
    s: &Shared,
    name: &str,
    records: &[&[u8]],
) -> Result<BatchPut, Error> {
    let (id, encrypted) = target(s, name)?;
    let total: usize = records.iter().map(|r| r.len()).sum();
    if total > BATCH_BYTES_MAX {
        return Err(Error::invalid(format!(
            "Records size exceeds {BATCH_BYTES_MAX} bytes limit; the request's records hold {total} bytes."
        )));
    }
    let results = append(s, name, id, PutApi::PutRecordBatch, records).await?;
    Ok(BatchPut {
        id,
        encrypted,
        results,
    })
}

/// Puts the decoded records (`data[span]` each) and writes the answer's JSON text.
async fn batch_answer(
    s: &Shared,
    name: &str,
    data: &[u8],
    spans: &[std::ops::Range<usize>],
) -> Result<bytes::Bytes, Refusal> {
    use std::fmt::Write as _;
    let slices: Vec<&[u8]> = spans.iter().map(|r| &data[r.clone()]).collect();
    let put = put_batch(s, name, &slices).await?;
    let (encrypted, results) = (put.encrypted, &put.results);
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut out = String::with_capacity(64 + results.len() * 48);
    let _ = write!(
        out,
        "{{\"FailedPutCount\":{failed},\"Encrypted\":{encrypted},\"RequestResponses\":["
    );
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match r {
            // Record ids are base64: no character needs escaping.
            Ok((shard, offset)) => {
                out.push_str("{\"RecordId\":\"");
                write_record_id(put.id, *shard, *offset, &mut out);
                out.push_str("\"}");
            }
            Err(e) => {
                let message = serde_json::to_string(&e.message).expect("a string serializes");
                let _ = write!(
                    out,
                    "{{\"ErrorCode\":\"ServiceUnavailableException\",\"ErrorMessage\":{message}}}"
                );
            }
        }
    }
    out.push_str("]}");
    Ok(bytes::Bytes::from(out))
}
