//! Kinesis Data Streams over the AWS JSON protocol (`X-Amz-Target:
//! Kinesis_20131202.<Operation>`, JSON 1.1 or CBOR 1.1 bodies, answered in the
//! request's format): the first [`Service`] of the HTTP gateway, and the pattern
//! the other services follow.
//!
//! A request goes: the gateway (bounds, front door, SigV4) →
//! [`KinesisService::call`] → the JSON fast path for PutRecords (`puts`, which
//! checks each member against the model and leaves anything odd to the generic
//! path) → the input decoded (`riffle_aws::json`) and validated against AWS's
//! service model (`riffle_aws::model`, ValidationException/SerializationException
//! in AWS's words) → the JSON GetRecords fast path (`reads`) or the operation's
//! handler, found in [`OPERATIONS`] and written in the
//! file of its concern: `streams`, `records`, `shards`, `consumers` (+
//! `subscribe`: SubscribeToShard's event stream), `tags`, `settings`. Shared
//! answer shapes live in `shapes`, names/ARNs/paging tokens in `names`,
//! sequence numbers and shard iterators in AWS's forms in `sequence`. An
//! operation the model gives no output answers an empty body, as AWS does.
//! Handlers call the [`Engine`] API only.

mod consumers;
pub mod metrics;
mod names;
pub use names::{ArnNames, names_of_arn, stream_arn};
mod puts;
mod reads;
mod records;
mod sequence;
mod settings;
pub use settings::SHARD_LEVEL_METRICS;
mod shapes;
mod shards;
mod streams;
mod subscribe;
mod tags;

use hyper::Response;
use riffle_aws::cbor::Members;
use riffle_aws::error::{Refusal, ok_response};
use riffle_aws::input::Input;
use riffle_aws::json::Format;
use riffle_aws::model::{Required, Rules};
use serde_json::Value;

use crate::Engine;
use crate::http::service::{Call, HttpBody, LocalFuture, Route, Service, whole};
use riffle_protocol::seqno;

/// What every handler file imports.
mod prelude {
    pub(super) use super::names::*;
    pub(super) use super::shapes::*;
    pub(super) use super::{Ctx, KinesisConfig, checked_by_the_model};
    pub(super) use crate::rt;
    pub(super) use crate::{Engine, PutRecordsEntry};
    pub(super) use base64::Engine as _;
    pub(super) use base64::engine::general_purpose::STANDARD as BASE64;
    pub(super) use riffle_aws::error::Refusal;
    pub(super) use riffle_aws::input::{Input, null_member};
    pub(super) use riffle_protocol::Error;
    pub(super) use riffle_store::catalog::{SettingsChange, StreamSettings};
    pub(super) use riffle_store::iterator::IteratorType;
    pub(super) use serde_json::{Map, Value, json};
}

const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The sequence number AWS clients see for the record at `offset` of shard
/// `shard_index` (as GetRecords answers it), for other services that name
/// Kinesis records (Firehose's `kinesisRecordMetadata`).
pub fn sequence_number(
    shard_index: u32,
    opened: crate::ShardOpened,
    offset: u64,
    arrival_ms: i64,
) -> String {
    sequence::record(shard_index, opened, offset, arrival_ms).to_string()
}

/// [`sequence_number`] appended to `out` (no allocation of its own: a
/// reader of many records keeps them in one buffer).
pub fn push_sequence_number(
    out: &mut String,
    shard_index: u32,
    opened: crate::ShardOpened,
    offset: u64,
    arrival_ms: i64,
) {
    out.push_str(&sequence::record(shard_index, opened, offset, arrival_ms));
}

/// The (shard index, offset) of a record's sequence number as
/// [`sequence_number`] writes it; None for another number (a shard's starting
/// or ending number, another version, not a number).
pub fn record_of_sequence_number(s: &str) -> Option<(u32, u64)> {
    let parsed = sequence::parse(s)?;
    // The 32-bit field, which AWS reads as signed.
    let shard = parsed.shard as u32;
    match (parsed.version, parsed.seq_ix) {
        (2, ix) if ix > 0 => seqno::decode(parsed.engine_number(shard, false)).ok(),
        _ => None,
    }
}

/// What AWS requires beyond the published model: a stream named by
/// `StreamName` unless `StreamARN` is given (the model made both optional when
/// it added ARNs, yet AWS answers "Member must not be null" for neither), and
/// a record's `PartitionKey`.
const RULES: Rules<'static> = Rules {
    required: &[
        Required {
            shape: "*",
            member: "StreamName",
            unless_present: &["StreamARN"],
        },
        Required {
            shape: "PutRecordInput",
            member: "PartitionKey",
            unless_present: &[],
        },
        Required {
            shape: "PutRecordsRequestEntry",
            member: "PartitionKey",
            unless_present: &[],
        },
    ],
    unpatterned: &[],
};

/// The rules of `op`: ListShards may name its stream by `NextToken` instead,
/// and AWS answers a request with neither with InvalidArgumentException (the
/// handler's check).
fn rules(op: &str) -> &'static Rules<'static> {
    if op == "ListShards" {
        &Rules::NONE
    } else {
        &RULES
    }
}

/// The members of Kinesis answers that CBOR encodes as byte strings or tag 1.
const CBOR_MEMBERS: Members = Members {
    blobs: &["Data"],
    timestamps: &[
        "ApproximateArrivalTimestamp",
        "StreamCreationTimestamp",
        "ConsumerCreationTimestamp",
        "StartedAt",
        "EndedAt",
        "EarliestAllowedEndAt",
    ],
};

/// Settings of the Kinesis API.
#[derive(Clone, Debug)]
pub struct KinesisConfig {
    /// Region and account that ARNs and messages carry.
    pub region: String,
    pub account: String,
    /// How long a SubscribeToShard subscription lasts (AWS: five minutes).
    pub subscription_ms: u64,
}

impl Default for KinesisConfig {
    fn default() -> KinesisConfig {
        KinesisConfig {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            subscription_ms: 300_000,
        }
    }
}

/// Kinesis Data Streams on the gateway.
pub struct KinesisService {
    engine: Engine,
    config: KinesisConfig,
    /// Recent SubscribeToShard calls (AWS refuses a second one within 5 s).
    subscriptions: subscribe::Registry,
}

impl KinesisService {
    pub fn new(engine: Engine, config: KinesisConfig) -> KinesisService {
        KinesisService {
            engine,
            config,
            subscriptions: subscribe::Registry::default(),
        }
    }
}

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) config: &'a KinesisConfig,
}

type Handler =
    for<'a> fn(&'a Ctx<'a>, &'a str, Input<'a>) -> LocalFuture<'a, Result<Value, Refusal>>;

macro_rules! op {
    ($name:literal, $f:path) => {
        ($name, |cx, op, input| Box::pin($f(cx, op, input)))
    };
}

/// Every operation but SubscribeToShard (an event stream, `subscribe`), by name.
static OPERATIONS: &[(&str, Handler)] = &[
    op!("CreateStream", streams::create_stream),
    op!("DeleteStream", streams::delete_stream),
    op!("ListStreams", streams::list_streams),
    op!("DescribeStream", streams::describe_stream),
    op!("DescribeStreamSummary", streams::describe_stream_summary),
    op!("ListShards", shards::list_shards),
    op!(
        "IncreaseStreamRetentionPeriod",
        streams::increase_stream_retention_period
    ),
    op!(
        "DecreaseStreamRetentionPeriod",
        streams::increase_stream_retention_period
    ),
    op!("StartStreamEncryption", settings::start_stream_encryption),
    op!("StopStreamEncryption", settings::start_stream_encryption),
    op!(
        "EnableEnhancedMonitoring",
        settings::enable_enhanced_monitoring
    ),
    op!(
        "DisableEnhancedMonitoring",
        settings::enable_enhanced_monitoring
    ),
    op!("PutResourcePolicy", settings::put_resource_policy),
    op!("GetResourcePolicy", settings::get_resource_policy),
    op!("DeleteResourcePolicy", settings::delete_resource_policy),
    op!("UpdateStreamMode", streams::update_stream_mode),
    op!(
        "RegisterStreamConsumer",
        consumers::register_stream_consumer
    ),
    op!(
        "DescribeStreamConsumer",
        consumers::describe_stream_consumer
    ),
    op!(
        "DeregisterStreamConsumer",
        consumers::describe_stream_consumer
    ),
    op!("ListStreamConsumers", consumers::list_stream_consumers),
    op!("UpdateMaxRecordSize", settings::update_max_record_size),
    op!(
        "UpdateStreamWarmThroughput",
        settings::update_stream_warm_throughput
    ),
    op!(
        "DescribeAccountSettings",
        settings::describe_account_settings
    ),
    op!("UpdateAccountSettings", settings::update_account_settings),
    op!("AddTagsToStream", tags::add_tags_to_stream),
    op!("TagResource", tags::add_tags_to_stream),
    op!("RemoveTagsFromStream", tags::remove_tags_from_stream),
    op!("UntagResource", tags::remove_tags_from_stream),
    op!("ListTagsForStream", tags::list_tags_for_stream),
    op!("ListTagsForResource", tags::list_tags_for_resource),
    op!("DescribeLimits", streams::describe_limits),
    op!("PutRecord", records::put_record),
    op!("PutRecords", records::put_records),
    op!("GetShardIterator", records::get_shard_iterator),
    op!("GetRecords", records::get_records),
    op!("SplitShard", shards::split_shard),
    op!("MergeShards", shards::merge_shards),
    op!("UpdateShardCount", shards::update_shard_count),
];

impl Service for KinesisService {
    fn name(&self) -> &'static str {
        "kinesis"
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route::Target {
            prefix: TARGET_PREFIX,
            signing_name: "kinesis",
        }]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    fn has_operation(&self, operation: &str) -> bool {
        riffle_aws::model::kinesis().operation(operation).is_some()
    }

    /// Every stream, consumer or resource ARN a call names, with a
    /// stream's resource policy and tags.
    fn resources(
        &self,
        operation: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Vec<crate::http::authz::ResourceRef>, String> {
        resources_of(&self.engine, &self.config, operation, parts, body)
    }

    fn operation<'a>(&self, parts: &'a http::request::Parts) -> Option<crate::http::Operation<'a>> {
        let name = crate::http::service::target_operation(parts)?;
        self.has_operation(name).then_some(crate::http::Operation {
            name,
            // CloudTrail's data events of Kinesis Data Streams.
            data: matches!(
                name,
                "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "SubscribeToShard"
            ),
            label: None,
        })
    }
}

impl KinesisService {
    /// Decodes the operation and its input, runs it, answers in AWS form.
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let (engine, config) = (&self.engine, &self.config);
        let format = Format::of(&call.parts.headers);
        let body = call.body.whole();
        let target = call.parts.headers.get("x-amz-target").map(|v| v.as_bytes());
        if format == Format::Json
            && target == Some(b"Kinesis_20131202.PutRecords")
            && let Some(result) = puts::put_records(engine, config, body).await
        {
            return encoded_response(format, result);
        }
        let op = target
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .unwrap_or("");
        let input = match riffle_aws::input::decode_checked(
            riffle_aws::model::kinesis(),
            format,
            op,
            body,
            rules(op),
        ) {
            Ok(m) => m,
            Err(r) => return refused(format, r),
        };
        let input = Input(&input);
        let cx = Ctx { engine, config };
        let result = match op {
            "SubscribeToShard" => {
                match subscribe::start(&cx, &self.subscriptions, format, &input).await {
                    Ok(events) => return events,
                    Err(r) => Err(r),
                }
            }
            "GetRecords" if format == Format::Json => {
                return encoded_response(format, reads::get_records(engine, &input).await);
            }
            op => match OPERATIONS.iter().find(|(name, _)| *name == op) {
                Some((_, handler)) => handler(&cx, op, input).await,
                None => Err(Refusal::unknown_operation()),
            },
        };
        match result {
            // An operation without output is answered with an empty body, as AWS does.
            Ok(_) if !has_output(op) => whole(ok_response(format, bytes::Bytes::new())),
            Ok(v) => whole(ok_response(format, format.encode(&v, &CBOR_MEMBERS))),
            Err(r) => refused(format, r),
        }
    }
}

/// The answer to a member the model's validation has already refused (a
/// handler's last line of defence; never reached through `dispatch`).
pub(crate) fn checked_by_the_model(member: &str) -> Refusal {
    Refusal::from(riffle_protocol::Error::invalid(format!(
        "{member} is not valid"
    )))
}

/// Whether the model gives `op` an output shape.
fn has_output(op: &str) -> bool {
    riffle_aws::model::kinesis()
        .operation(op)
        .is_some_and(|o| o.output.is_some())
}

fn refused(format: Format, r: Refusal) -> Response<HttpBody> {
    whole(r.to_response(format))
}

/// The answer to an operation answered as encoded bytes (the JSON hot paths).
fn encoded_response(format: Format, result: Result<bytes::Bytes, Refusal>) -> Response<HttpBody> {
    match result {
        Ok(body) => whole(ok_response(format, body)),
        Err(r) => refused(format, r),
    }
}

/// Every resource a Kinesis call names, by any member (the service reads
/// one of them, per operation: all must allow the call, so no member can
/// name a resource other than the one checked); `Err` when the body does
/// not decode, or a naming member is not a string (the call is refused).
/// Read with the decoder the service reads its input with.
fn resources_of(
    engine: &Engine,
    config: &KinesisConfig,
    operation: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Vec<crate::http::authz::ResourceRef>, String> {
    let named = crate::http::authz::members(
        parts,
        body,
        &[
            "StreamName",
            "StreamARN",
            "ConsumerARN",
            "ResourceARN",
            "ShardIterator",
            "NextToken",
        ],
    )?;
    let mut arns: Vec<String> = Vec::new();
    for (member, value) in named {
        match member {
            "StreamName" => arns.push(names::arn(config, &value)),
            // One that does not read names nothing the service will read.
            "ShardIterator" => arns.extend(
                sequence::unwrap_iterator(&value)
                    .and_then(|t| engine.iterator_stream(&t))
                    .map(|stream| names::arn(config, &stream)),
            ),
            // ListShards' token carries its stream.
            "NextToken" => {
                if operation == "ListShards"
                    && let Ok(t) = names::decode_token(&value)
                    && let Some((stream, _)) = t.split_once('\n')
                {
                    arns.push(names::arn(config, stream));
                }
            }
            _ => arns.push(value),
        }
    }
    arns.sort();
    arns.dedup();
    if arns.is_empty() {
        arns.push("*".into());
    }
    Ok(arns
        .into_iter()
        .map(|arn| {
            // A stream's policy and tags.
            let stream = match names_of_arn(&arn, &config.region, &config.account) {
                Some(ArnNames::Stream(name)) => Some(name.to_string()),
                _ => None,
            };
            let (policy, tags) = match stream {
                Some(name) => (
                    engine.settings(&name).ok().and_then(|s| s.resource_policy),
                    engine.tags(&name).unwrap_or_default(),
                ),
                None => (None, Default::default()),
            };
            crate::http::authz::ResourceRef { arn, policy, tags }
        })
        .collect())
}
