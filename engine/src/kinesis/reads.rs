//! GetRecords over JSON 1.1 answered as JSON text written straight from the
//! stored batches: no `serde_json::Value` per record (the consume hot path of
//! the HTTP API). The answer is the generic path's, member for member
//! (`shapes::records_json`, `child_shards_json`); CBOR requests take that path.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;

use super::records::get_records_input;
use super::sequence;
use super::shapes::child_shards_json;
use crate::Engine;

/// Runs a JSON GetRecords and writes its answer.
pub(super) async fn get_records(engine: &Engine, input: &Input<'_>) -> Result<Bytes, Refusal> {
    let (it, limit) = get_records_input(input)?;
    let got = engine.get_records(&it, limit).await?;
    let estimate: usize = got
        .records()
        .map(|r| r.data().len().div_ceil(3) * 4 + r.partition_key().len() + 120)
        .sum();
    let mut out: Vec<u8> = Vec::with_capacity(estimate + 1024);
    out.extend_from_slice(b"{\"Records\":[");
    for (i, r) in got.records().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Sequence numbers are decimal digits; timestamps are written as
        // serde_json writes an f64; keys are escaped by serde_json.
        let seq = sequence::record(r.shard_index, got.shard_opened, r.offset, r.arrival_ms());
        let _ = write!(out, "{{\"SequenceNumber\":\"{seq}\",");
        out.extend_from_slice(b"\"ApproximateArrivalTimestamp\":");
        push_json(&mut out, &(r.arrival_ms() as f64 / 1000.0));
        out.extend_from_slice(b",\"Data\":\"");
        let at = out.len();
        out.resize(at + r.data().len().div_ceil(3) * 4, 0);
        let n = BASE64
            .encode_slice(r.data(), &mut out[at..])
            .expect("room for the padded encoding");
        out.truncate(at + n);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        push_json(&mut out, r.partition_key());
        if got.encrypted {
            out.extend_from_slice(b",\"EncryptionType\":\"KMS\"");
        }
        out.push(b'}');
    }
    let _ = write!(out, "],\"MillisBehindLatest\":{}", got.millis_behind_latest);
    if let Some(next) = &got.next_shard_iterator {
        out.extend_from_slice(b",\"NextShardIterator\":");
        push_json(&mut out, &sequence::wrap_iterator(next));
    }
    if let Some(children) = &got.child_shards {
        out.extend_from_slice(b",\"ChildShards\":");
        push_json(&mut out, &child_shards_json(children));
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// Appends `value` as JSON.
fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("a plain value serializes");
}
