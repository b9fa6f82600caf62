//! The invocation event: the JSON body AWS Lambda POSTs to a function for a
//! batch of Kinesis records (docs/lambda-design.md §2.1), written directly
//! (no JSON tree): `Records[].kinesis{kinesisSchemaVersion, partitionKey,
//! sequenceNumber, data, approximateArrivalTimestamp}`, `eventSource`,
//! `eventVersion`, `eventID` (`shardId-...:SEQ`), `eventName`,
//! `invokeIdentityArn`, `awsRegion`, `eventSourceARN`. Records are passed as
//! stored: aggregated records are not de-aggregated (Lambda does not either).

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_protocol::routing;

/// Where the records come from, as every record of the event names it.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The stream's ARN (also when the mapping reads through a consumer).
    pub stream_arn: &'a str,
    pub region: &'a str,
    pub account: &'a str,
}

/// One record of a batch.
#[derive(Clone, Copy, Debug)]
pub struct EventRecord<'a> {
    pub shard_index: u32,
    /// As the Kinesis API shows it (`riffle_engine::kinesis::sequence_number`).
    pub sequence_number: &'a str,
    pub partition_key: &'a str,
    pub data: &'a [u8],
    /// Arrival at the server, ms since the epoch.
    pub arrival_ms: i64,
}

/// The event body for `records` (in shard order).
pub fn event_json(source: &Source<'_>, records: &[EventRecord<'_>]) -> Vec<u8> {
    let data_len: usize = records.iter().map(|r| r.data.len()).sum();
    let mut out = Vec::with_capacity(64 + records.len() * 480 + data_len * 4 / 3);
    out.extend_from_slice(b"{\"Records\":[");
    // What every record ends with, escaped once per event.
    let mut tail = Vec::with_capacity(256);
    tail.extend_from_slice(b"\",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":");
    json_string(
        &mut tail,
        &format!(
            "arn:aws:iam::{}:role/riffle-event-source-mapping",
            source.account
        ),
    );
    tail.extend_from_slice(b",\"awsRegion\":");
    json_string(&mut tail, source.region);
    tail.extend_from_slice(b",\"eventSourceARN\":");
    json_string(&mut tail, source.stream_arn);
    tail.push(b'}');
    // The shard's id, made again only when it changes.
    let mut shard: Option<(u32, String)> = None;
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let seq = r.sequence_number;
        out.extend_from_slice(b"{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":");
        json_string(&mut out, r.partition_key);
        out.extend_from_slice(b",\"sequenceNumber\":\"");
        out.extend_from_slice(seq.as_bytes());
        out.extend_from_slice(b"\",\"data\":\"");
        let at = out.len();
        out.resize(at + base64::encoded_len(r.data.len(), true).unwrap_or(0), 0);
        let written = BASE64
            .encode_slice(r.data, &mut out[at..])
            .unwrap_or_default();
        out.truncate(at + written);
        out.extend_from_slice(b"\",\"approximateArrivalTimestamp\":");
        // Seconds with millisecond precision, as AWS prints them.
        let ms = r.arrival_ms.max(0);
        let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
        out.extend_from_slice(
            b"},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\"",
        );
        if shard
            .as_ref()
            .is_none_or(|(index, _)| *index != r.shard_index)
        {
            shard = Some((r.shard_index, routing::shard_id(r.shard_index)));
        }
        if let Some((_, id)) = &shard {
            out.extend_from_slice(id.as_bytes());
        }
        out.push(b':');
        out.extend_from_slice(seq.as_bytes());
        out.extend_from_slice(&tail);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A tumbling window's part of an event (docs/lambda-design.md §4.7).
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The state so far (a JSON object's text).
    pub state: &'a str,
    pub shard_index: u32,
    pub is_final: bool,
    pub terminated_early: bool,
}

/// [`event_json`] with a tumbling window's members: `window`, `state`,
/// `shardId`, `eventSourceARN`, `isFinalInvokeForWindow`,
/// `isWindowTerminatedEarly`.
pub fn window_event_json(
    source: &Source<'_>,
    records: &[EventRecord<'_>],
    window: &Window<'_>,
) -> Vec<u8> {
    let mut out = event_json(source, records);
    out.pop();
    out.extend_from_slice(b",\"window\":{\"start\":");
    json_string(&mut out, &iso_s(window.start_ms));
    out.extend_from_slice(b",\"end\":");
    json_string(&mut out, &iso_s(window.end_ms));
    out.extend_from_slice(b"},\"state\":");
    out.extend_from_slice(window.state.as_bytes());
    out.extend_from_slice(b",\"shardId\":");
    json_string(&mut out, &routing::shard_id(window.shard_index));
    out.extend_from_slice(b",\"eventSourceARN\":");
    json_string(&mut out, source.stream_arn);
    let _ = write!(
        out,
        ",\"isFinalInvokeForWindow\":{},\"isWindowTerminatedEarly\":{}}}",
        window.is_final, window.terminated_early
    );
    out
}

/// ISO-8601 UTC in whole seconds (`2026-12-03T10:04:00Z`), as AWS shows windows.
fn iso_s(ms: i64) -> String {
    let with_ms = riffle_protocol::time::format_rfc3339_ms(ms);
    format!("{}Z", &with_ms[..with_ms.len() - 5])
}

/// A JSON string literal (serde_json's escaping).
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_event_is_awss_kinesis_event() {
        let source = Source {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
            region: "us-east-1",
            account: "000000000000",
        };
        let records = [
            EventRecord {
                shard_index: 2,
                sequence_number: "49680804264310409375951159706277510965266321910047703042",
                partition_key: "user-1",
                data: br#"{"amount":12}"#,
                arrival_ms: 1_796_306_000_123,
            },
            EventRecord {
                shard_index: 2,
                sequence_number: "49680804264310409375951159706277510965266321910047703043",
                partition_key: "quote \" and \u{1} é",
                data: &[0, 255, 7],
                arrival_ms: 1_796_306_000_987,
            },
        ];
        let body = event_json(&source, &records);
        let got: Value = serde_json::from_slice(&body).expect("valid JSON");
        let seq0 = records[0].sequence_number;
        let seq1 = records[1].sequence_number;
        let record = |key: &str, seq: &str, data: &str, at: f64| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": key,
                    "sequenceNumber": seq,
                    "data": data,
                    "approximateArrivalTimestamp": at,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000002:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/riffle-event-source-mapping",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
            })
        };
        assert_eq!(
            got,
            json!({"Records": [
                record("user-1", seq0, "eyJhbW91bnQiOjEyfQ==", 1796306000.123),
                record("quote \" and \u{1} é", seq1, "AP8H", 1796306000.987),
            ]})
        );
        // Timestamps keep three decimals as written (not a float's shortest form).
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("\"approximateArrivalTimestamp\":1796306000.123}"),
            "{text}"
        );
        assert_eq!(event_json(&source, &[]), b"{\"Records\":[]}");
        let window = Window {
            start_ms: 1_796_292_240_000,
            end_ms: 1_796_292_360_000,
            state: "{\"user-1\":12}",
            shard_index: 2,
            is_final: true,
            terminated_early: false,
        };
        let got: Value =
            serde_json::from_slice(&window_event_json(&source, &records[..1], &window)).unwrap();
        assert_eq!(
            got,
            json!({
                "Records": [record("user-1", seq0, "eyJhbW91bnQiOjEyfQ==", 1796306000.123)],
                "window": {"start": "2026-12-03T10:04:00Z", "end": "2026-12-03T10:06:00Z"},
                "state": {"user-1": 12},
                "shardId": "shardId-000000000002",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
                "isFinalInvokeForWindow": true,
                "isWindowTerminatedEarly": false,
            })
        );
    }
}
