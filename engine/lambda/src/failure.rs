//! The OnFailure invocation record (docs/lambda-design.md §3): what a
//! mapping puts into its OnFailure destination stream for records it
//! discards, in AWS's shape for Kinesis sources (`requestContext`,
//! `responseContext` (not for expired records), `version`, `timestamp`,
//! `KinesisBatchInfo`). Pure.

use riffle_protocol::routing;
use riffle_protocol::time::format_rfc3339_ms;
use serde_json::{Value, json};

use crate::batch::Condition;

/// The last answer the discarded records got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastAnswer {
    /// The HTTP status (200 when there was no answer: AWS reports a timed
    /// out function so).
    pub status: u16,
    /// `X-Amz-Function-Error`, `Unhandled`, or None (a valid partial answer).
    pub function_error: Option<String>,
}

/// The discarded records.
#[derive(Clone, Debug)]
pub struct Discarded<'a> {
    pub shard_index: u32,
    pub first_sequence_number: &'a str,
    pub last_sequence_number: &'a str,
    pub first_arrival_ms: i64,
    pub last_arrival_ms: i64,
    pub count: usize,
    pub stream_arn: &'a str,
}

/// The record's JSON.
#[allow(clippy::too_many_arguments)]
pub fn record(
    request_id: &str,
    function_arn: &str,
    executed_version: &str,
    condition: Condition,
    invoke_count: u32,
    last: Option<&LastAnswer>,
    discarded: &Discarded<'_>,
    now_ms: i64,
) -> Vec<u8> {
    let mut out = json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition.aws_name(),
            "approximateInvokeCount": invoke_count.max(1),
        },
        "version": "1.0",
        "timestamp": format_rfc3339_ms(now_ms),
        "KinesisBatchInfo": {
            "shardId": routing::shard_id(discarded.shard_index),
            "startSequenceNumber": discarded.first_sequence_number,
            "endSequenceNumber": discarded.last_sequence_number,
            "approximateArrivalOfFirstRecord": format_rfc3339_ms(discarded.first_arrival_ms),
            "approximateArrivalOfLastRecord": format_rfc3339_ms(discarded.last_arrival_ms),
            "batchSize": discarded.count,
            "streamArn": discarded.stream_arn,
        },
    });
    if condition == Condition::RetryAttemptsExhausted
        && let Some(last) = last
    {
        out["responseContext"] = json!({
            "statusCode": last.status,
            "executedVersion": executed_version,
            "functionError": last.function_error.as_deref().map_or(Value::Null, |e| json!(e)),
        });
    }
    serde_json::to_vec(&out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_has_awss_shape() {
        let d = Discarded {
            shard_index: 2,
            first_sequence_number: "1001",
            last_sequence_number: "1002",
            first_arrival_ms: 1_796_292_004_835,
            last_arrival_ms: 1_796_292_005_580,
            count: 2,
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
        };
        let last = LastAnswer {
            status: 200,
            function_error: Some("Unhandled".into()),
        };
        let fa = "arn:aws:lambda:us-east-1:000000000000:function:billing";
        let r = record(
            "req",
            fa,
            "$LATEST",
            Condition::RetryAttemptsExhausted,
            4,
            Some(&last),
            &d,
            1_796_292_006_021,
        );
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(
            v,
            json!({
                "requestContext": {"requestId": "req", "functionArn": fa,
                    "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                    "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": "2026-12-03T10:00:06.021Z",
                "KinesisBatchInfo": {"shardId": "shardId-000000000002",
                    "startSequenceNumber": "1001", "endSequenceNumber": "1002",
                    "approximateArrivalOfFirstRecord": "2026-12-03T10:00:04.835Z",
                    "approximateArrivalOfLastRecord": "2026-12-03T10:00:05.580Z",
                    "batchSize": 2,
                    "streamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/orders"},
            })
        );
        // Expired records: no responseContext; the count is at least 1.
        let r = record(
            "req",
            fa,
            "$LATEST",
            Condition::RecordAgeExceeded,
            0,
            Some(&last),
            &d,
            0,
        );
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert!(v.get("responseContext").is_none());
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 1);
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
