//! Native calls in the audit trail: each is recorded as the AWS call it is
//! (CloudTrail's record shape, `http::trail`), with the connection's access
//! key as its identity, its peer as `sourceIPAddress` and `riffle-native` as
//! its user agent. Puts, reads and subscriptions are data events (recorded
//! with `--audit-data-events`); record data is never in a record. Ping,
//! authentication and consumer groups' operations (no AWS twin) are not
//! recorded.

use std::net::IpAddr;
use std::sync::Arc;

use riffle_protocol::Error;
use riffle_protocol::native::Request;
use serde_json::{Value, json};

use crate::http::Operation;
use crate::http::trail::{Pending, Trail};

/// The AWS call a native request is: its service's signing name, name, data
/// event or not, and parameters.
fn call_of(request: &Request<'_>) -> Option<(&'static str, &'static str, bool, Value)> {
    let shard = |i: u32| riffle_protocol::routing::shard_id(i);
    Some(match *request {
        Request::CreateStream {
            stream,
            shard_count,
        } => (
            "kinesis",
            "CreateStream",
            false,
            json!({"StreamName": stream, "ShardCount": shard_count}),
        ),
        Request::DeleteStream { stream } => (
            "kinesis",
            "DeleteStream",
            false,
            json!({"StreamName": stream}),
        ),
        Request::DescribeStream { stream } => (
            "kinesis",
            "DescribeStream",
            false,
            json!({"StreamName": stream}),
        ),
        Request::ListStreams => ("kinesis", "ListStreams", false, json!({})),
        Request::ListShards { stream } => (
            "kinesis",
            "ListShards",
            false,
            json!({"StreamName": stream}),
        ),
        Request::PutRecord { stream, .. } => {
            ("kinesis", "PutRecord", true, json!({"StreamName": stream}))
        }
        Request::PutRecords { stream, .. } => {
            ("kinesis", "PutRecords", true, json!({"StreamName": stream}))
        }
        Request::GetShardIterator {
            stream,
            shard_index,
            ..
        } => (
            "kinesis",
            "GetShardIterator",
            true,
            json!({"StreamName": stream, "ShardId": shard(shard_index)}),
        ),
        Request::GetRecords { .. } => ("kinesis", "GetRecords", true, json!({})),
        Request::Subscribe {
            stream,
            shard_index,
            ..
        } => (
            "kinesis",
            "SubscribeToShard",
            true,
            json!({"StreamName": stream, "ShardId": shard(shard_index)}),
        ),
        Request::FirehosePutRecordBatch {
            delivery_stream, ..
        } => (
            "firehose",
            "PutRecordBatch",
            true,
            json!({"DeliveryStreamName": delivery_stream}),
        ),
        Request::FirehoseDescribe { delivery_stream } => (
            "firehose",
            "DescribeDeliveryStream",
            false,
            json!({"DeliveryStreamName": delivery_stream}),
        ),
        Request::Ping { .. }
        | Request::Unsubscribe { .. }
        | Request::AuthChallenge
        | Request::Authenticate { .. }
        | Request::GroupHeartbeat { .. }
        | Request::GroupCheckpoint { .. }
        | Request::GroupDescribe { .. }
        | Request::GroupLeave { .. } => return None,
    })
}

/// The draft of a native request's record, or none when it is not recorded.
pub(super) fn draft(
    trail: &Arc<Trail>,
    request: &Request<'_>,
    access_key: impl FnOnce() -> Option<String>,
    peer: Option<IpAddr>,
) -> Option<Pending> {
    // Data events cost nothing when they are not recorded.
    if !trail.data_events
        && matches!(
            request,
            Request::PutRecord { .. }
                | Request::PutRecords { .. }
                | Request::GetShardIterator { .. }
                | Request::GetRecords { .. }
                | Request::Subscribe { .. }
                | Request::FirehosePutRecordBatch { .. }
        )
    {
        return None;
    }
    let (source, name, data, parameters) = call_of(request)?;
    let parts = http::Request::post("/")
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header(http::header::USER_AGENT, "riffle-native")
        .body(())
        .ok()?
        .into_parts()
        .0;
    let body = parameters.to_string();
    let access_key = access_key();
    let draft = trail.draft(
        source,
        Operation {
            name,
            data,
            label: None,
        },
        &parts,
        body.as_bytes(),
        access_key.as_deref(),
        peer,
        crate::rt::now_ms(),
    )?;
    Some(Pending::new(trail.clone(), draft))
}

/// Completes a native call's record with its outcome.
pub(super) fn finish(pending: Option<Pending>, outcome: Result<(), &Error>) {
    let Some(pending) = pending else { return };
    let mut answer = http::Response::builder()
        .header("x-amzn-RequestId", crate::http::random_uuid())
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1");
    let body = match outcome {
        Ok(()) => Vec::new(),
        Err(e) => {
            answer = answer
                .status(if e.code == riffle_protocol::ErrorCode::Internal {
                    500
                } else {
                    400
                })
                .header("x-amzn-ErrorType", e.code.aws_name());
            json!({"message": e.message}).to_string().into_bytes()
        }
    };
    if let Ok(answer) = answer.body(()) {
        pending.finish(&answer.into_parts().0, &body);
    }
}
