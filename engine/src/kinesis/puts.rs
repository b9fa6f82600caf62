//! PutRecords over JSON 1.1 without the generic `serde_json::Value` tree: the
//! ingest hot path of the HTTP API.
//!
//! The body is deserialized into borrowed structs (the strings stay in the
//! request body), every record's base64 is decoded into one buffer, and the
//! answer is written as JSON text directly. Every member is checked against
//! the service model's constraints with its hot-path checks (`Checks`), which
//! allocate nothing for valid input. A body that does not parse as a
//! well-formed PutRecords (wrong types, missing members, bad JSON, bad base64)
//! or breaks a constraint goes to the generic dispatcher instead, which
//! validates the whole input and so words the refusal exactly as AWS does.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use bytes::Bytes;
use serde::Deserialize;

use super::KinesisConfig;
use riffle_aws::error::Refusal;
use riffle_aws::model::{self, BlobCheck, StringCheck, StructureListCheck};
use riffle_protocol::routing::ShardName;

use super::names::stream_of_arn;
use super::records::put_sequence_number;
use crate::{Engine, PutRecordsEntry};

/// Unknown members send the body to the generic path, which parses (and so
/// checks) all of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRecordsBody<'a> {
    #[serde(rename = "StreamName", borrow, default)]
    stream_name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow, default)]
    stream_arn: Option<Cow<'a, str>>,
    #[serde(rename = "Records", borrow)]
    records: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow, default)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

/// The model's constraints on PutRecords' members, made once.
struct Checks {
    stream_name: StringCheck<'static>,
    stream_arn: StringCheck<'static>,
    records: StructureListCheck<'static>,
    data: BlobCheck<'static>,
    partition_key: StringCheck<'static>,
    explicit_hash_key: StringCheck<'static>,
}

static CHECKS: LazyLock<Checks> = LazyLock::new(|| {
    let m = model::kinesis();
    let member = |structure: &str, name: &str| {
        m.member_shape(structure, name)
            .unwrap_or_else(|| panic!("the Kinesis model has {structure}.{name}"))
    };
    let string = |structure: &str, name: &str| {
        member(structure, name)
            .string_check()
            .expect("a string member")
    };
    Checks {
        stream_name: string("PutRecordsInput", "StreamName"),
        stream_arn: string("PutRecordsInput", "StreamARN"),
        records: member("PutRecordsInput", "Records")
            .structure_list_check(m)
            .expect("a list of structures"),
        data: member("PutRecordsRequestEntry", "Data")
            .blob_check()
            .expect("a blob member"),
        partition_key: string("PutRecordsRequestEntry", "PartitionKey"),
        explicit_hash_key: string("PutRecordsRequestEntry", "ExplicitHashKey"),
    }
});

impl Checks {
    /// Whether every member but the records' data satisfies the model.
    fn is_valid(&self, input: &PutRecordsBody<'_>) -> bool {
        input
            .stream_name
            .as_deref()
            .is_none_or(|n| self.stream_name.is_valid(n))
            && input
                .stream_arn
                .as_deref()
                .is_none_or(|a| self.stream_arn.is_valid(a))
            && self.records.is_valid(input.records.len())
            && input.records.iter().all(|r| {
                self.partition_key.is_valid(&r.partition_key)
                    && r.explicit_hash_key
                        .as_deref()
                        .is_none_or(|h| self.explicit_hash_key.is_valid(h))
            })
    }
}

/// Runs a JSON PutRecords: `None` when the body is not a well-formed, valid
/// PutRecords (the caller falls back to the generic path), else the answer's
/// JSON text or the refusal.
pub(super) async fn put_records(
    engine: &Engine,
    config: &KinesisConfig,
    body: &[u8],
) -> Option<Result<Bytes, Refusal>> {
    let input: PutRecordsBody<'_> = serde_json::from_slice(body).ok()?;
    let checks = &*CHECKS;
    if !checks.is_valid(&input) {
        return None;
    }
    let name = match (&input.stream_name, &input.stream_arn) {
        (Some(name), _) => name.to_string(),
        (None, Some(arn)) => match stream_of_arn(arn, config) {
            Ok(name) => name,
            Err(r) => return Some(Err(r)),
        },
        // Let the generic path word the refusal.
        (None, None) => return None,
    };
    // Every record's data, decoded into one buffer (not base64, or too long:
    // the generic path words the refusal).
    let (data, spans) =
        riffle_aws::input::decode_blobs(input.records.iter().map(|r| &*r.data), &checks.data)?;
    let entries: Vec<PutRecordsEntry<'_>> = input
        .records
        .iter()
        .zip(&spans)
        .map(|(r, span)| PutRecordsEntry {
            partition_key: &r.partition_key,
            explicit_hash_key: r.explicit_hash_key.as_deref(),
            data: &data[span.clone()],
        })
        .collect();
    let results = match engine.put_records(&name, &entries).await {
        Ok(results) => results,
        Err(e) => return Some(Err(Refusal::from(e))),
    };
    let failed = results.iter().filter(|r| r.is_err()).count();
    let encrypted = engine.is_encrypted(&name);
    // About 100 bytes per record's answer.
    let mut out = String::with_capacity(64 + results.len() * 100);
    let _ = write!(out, "{{\"FailedRecordCount\":{failed},\"Records\":[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match r {
            // Shard ids and sequence numbers are ASCII letters, digits and '-'.
            Ok(p) => {
                let _ = write!(
                    out,
                    "{{\"SequenceNumber\":\"{}\",\"ShardId\":\"{}\"}}",
                    put_sequence_number(p),
                    ShardName(p.shard_index)
                );
            }
            Err(e) => {
                let message = serde_json::to_string(&e.message).expect("a string serializes");
                let _ = write!(
                    out,
                    "{{\"ErrorCode\":\"{}\",\"ErrorMessage\":{message}}}",
                    e.code.aws_name()
                );
            }
        }
    }
    out.push(']');
    // AWS reports EncryptionType only for an encrypted stream.
    if encrypted {
        out.push_str(",\"EncryptionType\":\"KMS\"");
    }
    out.push('}');
    Some(Ok(Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_borrow_from_the_request() {
        let body = br#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k"},{"Data":"","PartitionKey":"k2","ExplicitHashKey":"5"}]}"#;
        let parsed: PutRecordsBody<'_> = serde_json::from_slice(body).unwrap();
        assert!(matches!(parsed.records[0].data, Cow::Borrowed("aGk=")));
        assert_eq!(parsed.records[1].explicit_hash_key.as_deref(), Some("5"));
        // Not a well-formed PutRecords: left to the generic path.
        for bad in [
            &br#"{"StreamName":"s"}"#[..],
            br#"{"StreamName":"s","Records":[{"Data":1,"PartitionKey":"k"}]}"#,
            br#"{"StreamName":"s","Records":[{"Data":"aGk="}]}"#,
            br#"{"StreamName":"s","Records":[{"Data":null,"PartitionKey":"k"}]}"#,
            br#"{"StreamName":"s","Records":[{"Data":"","PartitionKey":"k","X":1e400}]}"#,
            br#"{"StreamName":"s","Other":"\ud800","Records":[]}"#,
            b"{",
        ] {
            assert!(serde_json::from_slice::<PutRecordsBody<'_>>(bad).is_err());
        }
    }
}
