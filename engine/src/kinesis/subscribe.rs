//! SubscribeToShard (enhanced fan-out): a registered consumer's subscription to
//! one shard, answered as an AWS event stream.
//!
//! The response's body is a stream of [`eventstream`] messages: first
//! `initial-response` (AWS SDKs refuse a stream without it), then one
//! `SubscribeToShardEvent` each time records commit (Records,
//! ContinuationSequenceNumber, MillisBehindLatest), or after
//! [`EVENT_INTERVAL_MS`] without records (an empty event, as AWS sends). At the
//! end of a shard closed by resharding the last event carries ChildShards and the
//! stream ends; otherwise it ends after `KinesisConfig::subscription_ms` (AWS: five
//! minutes), and the client subscribes again from ContinuationSequenceNumber.
//! A failure while subscribed (e.g. the stream was deleted) is sent as an
//! exception message, then the stream ends.
//!
//! Events are pushed by a task on the connection's core through a two-message
//! channel: a slow reader holds back its own subscription, nothing else.

use std::time::Duration;

use hyper::{Response, StatusCode};
use riffle_aws::eventstream;
use riffle_aws::json::Format;
use riffle_protocol::routing;
use riffle_store::iterator::IteratorToken;

use super::prelude::*;
use super::records::aws_shard_index;
use super::sequence;
use super::{CBOR_MEMBERS, Ctx};
use crate::http::service::{HttpBody, StreamSender, streamed};
use crate::rt;

/// The longest a subscription goes without an event (AWS: about five seconds).
pub const EVENT_INTERVAL_MS: i64 = 5_000;

/// AWS refuses a SubscribeToShard for the same consumer and shard within this
/// long of a successful one (ResourceInUseException).
pub const RESUBSCRIBE_MS: i64 = 5_000;

/// The recent successful subscriptions, by consumer ARN and shard, on every
/// core of a server.
#[derive(Debug, Default)]
pub(super) struct Registry {
    started_ms: std::sync::Mutex<std::collections::HashMap<(String, u32), i64>>,
}

impl Registry {
    /// Records a subscription starting now, or refuses it like AWS when the
    /// same consumer subscribed to the same shard less than 5 s ago.
    fn admit(&self, consumer_arn: &str, shard: u32, now_ms: i64) -> Result<(), Refusal> {
        let mut started = self.started_ms.lock().expect("not poisoned");
        started.retain(|_, at| now_ms - *at < RESUBSCRIBE_MS);
        let key = (consumer_arn.to_owned(), shard);
        if started.contains_key(&key) {
            return Err(Refusal::from(riffle_protocol::Error::in_use(format!(
                "Another active subscription exists for consumer {consumer_arn} and shard {}; wait {} seconds between subscriptions.",
                routing::shard_id(shard),
                RESUBSCRIBE_MS / 1000
            ))));
        }
        started.insert(key, now_ms);
        Ok(())
    }
}

/// Checks the request, resolves the starting position, and answers with the
/// event stream (its first event already queued).
pub(super) async fn start(
    cx: &Ctx<'_>,
    subscriptions: &Registry,
    format: Format,
    input: &Input<'_>,
) -> Result<Response<HttpBody>, Refusal> {
    let (engine, config) = (cx.engine, cx.config);
    let arn = input.required_str("ConsumerARN")?;
    let shard_id = input.required_str("ShardId")?;
    let position = match input.0.get("StartingPosition") {
        None | Some(Value::Null) => return Err(null_member("StartingPosition")),
        Some(Value::Object(p)) => Input(p),
        Some(_) => {
            return Err(Refusal::serialization("StartingPosition must be an object"));
        }
    };
    // When the shard opened: a sequence number must come from it (a number
    // of another incarnation of the stream is refused, as GetShardIterator does).
    let opened = consumer_of_arn(arn, config)
        .ok()
        .and_then(|(stream, _)| engine.list_shards(&stream).ok())
        .and_then(|shards| {
            shards
                .iter()
                .find(|s| s.shard_id == shard_id)
                .map(super::shapes::shard_opened)
        });
    let kind = starting_position(&position, shard_id, opened)?;
    let (stream, consumer) = consumer_of_arn(arn, config)?;
    // The ARN names one registration: its creation time (seconds) must match.
    let registered = engine.settings(&stream)?.consumers.get(&consumer).copied();
    let epoch = arn.rsplit_once(':').map(|(_, e)| e);
    if registered.is_none_or(|ms| epoch != Some((ms / 1000).to_string().as_str())) {
        return Err(Refusal::from(riffle_protocol::Error::not_found(format!(
            "Consumer {arn} not found."
        ))));
    }
    let cursor = engine.shard_cursor_by_id(&stream, shard_id, kind).await?;
    let metrics = engine.metrics_of(&stream);
    let admitted = subscriptions.admit(arn, cursor.shard_index, rt::now_ms());
    if let Some(m) = &metrics {
        m.subscribe_attempts.add(1);
        match &admitted {
            Ok(()) => m.subscribe_successes.add(1),
            Err(_) => m.subscribe_rate_exceeded.add(1),
        }
    }
    admitted?;

    let (tx, resp) = streamed(StatusCode::OK, "application/vnd.amazon.eventstream", 2);
    let first = eventstream::event(
        "initial-response",
        format.content_type(),
        &format.encode(&json!({}), &CBOR_MEMBERS),
    );
    assert!(tx.try_send(first), "a new channel has room");
    let until_ms = rt::now_ms() + config.subscription_ms as i64;
    let lag = metrics
        .as_ref()
        .zip(registered)
        .map(|(m, ms)| m.consumer(&consumer, ms));
    rt::spawn(push(
        engine.clone(),
        format,
        cursor,
        tx,
        until_ms,
        metrics,
        lag,
    ));
    Ok(resp)
}

/// StartingPosition {Type, SequenceNumber, Timestamp} of shard `shard_id` as
/// an iterator type (sequence numbers in AWS's form, `sequence`).
fn starting_position(
    p: &Input<'_>,
    shard_id: &str,
    opened: Option<crate::ShardOpened>,
) -> Result<IteratorType, Refusal> {
    let sequence = |after: bool| -> Result<u128, Refusal> {
        let s = p.str("SequenceNumber")?.ok_or_else(|| {
            Refusal::from(riffle_protocol::Error::invalid(
                "SequenceNumber is required for AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER",
            ))
        })?;
        let index = aws_shard_index(shard_id);
        match (sequence::parse(s), index) {
            (Some(parsed), Some(index)) if parsed.shard == i64::from(index) => {
                if opened.is_some_and(|o| !parsed.is_of(o)) {
                    return Err(Refusal::from(riffle_protocol::Error::invalid(format!(
                        "StartingSequenceNumber {s} used in SubscribeToShard on shard {shard_id} is invalid because it did not come from this stream."
                    ))));
                }
                Ok(parsed.engine_number(index, after))
            }
            (Some(parsed), Some(index)) => {
                Err(Refusal::from(riffle_protocol::Error::invalid(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                    sequence::shard_name(parsed.shard),
                    riffle_protocol::routing::shard_id(index)
                ))))
            }
            _ => Err(Refusal::from(riffle_protocol::Error::invalid(format!(
                "StartingSequenceNumber {s} used in SubscribeToShard on shard {shard_id} is invalid."
            )))),
        }
    };
    Ok(match p.required_str("Type")? {
        "TRIM_HORIZON" => IteratorType::TrimHorizon,
        "LATEST" => IteratorType::Latest,
        "AT_SEQUENCE_NUMBER" => IteratorType::AtSequenceNumber(sequence(false)?),
        "AFTER_SEQUENCE_NUMBER" => IteratorType::AfterSequenceNumber(sequence(true)?),
        "AT_TIMESTAMP" => match p.0.get("Timestamp").and_then(Value::as_f64) {
            Some(t) => IteratorType::AtTimestamp((t * 1000.0) as i64),
            None => {
                return Err(Refusal::from(riffle_protocol::Error::invalid(
                    "Timestamp is required for AT_TIMESTAMP",
                )));
            }
        },
        _ => return Err(checked_by_the_model("StartingPosition.Type")),
    })
}

/// Reads at the cursor and sends events until the subscription's time is up,
/// the shard ends, reading fails or the client goes away.
async fn push(
    engine: Engine,
    format: Format,
    mut cursor: IteratorToken,
    events: StreamSender,
    until_ms: i64,
    metrics: Option<std::sync::Arc<crate::stream_metrics::StreamMetrics>>,
    lag: Option<std::sync::Arc<crate::stream_metrics::ConsumerLag>>,
) {
    let content_type = format.content_type();
    loop {
        let left = until_ms - rt::now_ms();
        if left <= 0 {
            return;
        }
        let wait = Duration::from_millis(left.min(EVENT_INTERVAL_MS) as u64);
        let read = engine.read_at(&cursor, None, wait.as_millis() as u64).await;
        if let Some(m) = &metrics {
            match &read {
                Ok(out) => {
                    let (mut records, mut bytes) = (0, 0);
                    for r in out.records() {
                        records += 1;
                        bytes += r.data().len() as u64;
                    }
                    let behind = out.millis_behind_latest.max(0) as u64;
                    m.event(true, records, bytes, behind);
                    if let Some(l) = &lag {
                        l.event(behind);
                    }
                }
                Err(_) => m.event(false, 0, 0, 0),
            }
        }
        let (message, last) = match read {
            Ok(out) => {
                let mut event = json!({
                    "Records": records_json(&out),
                    "MillisBehindLatest": out.millis_behind_latest,
                });
                match &out.child_shards {
                    Some(children) => event["ChildShards"] = child_shards_json(children),
                    None => {
                        // Where the client continues with AFTER_SEQUENCE_NUMBER:
                        // the last record read (the shard's start before any).
                        let time_ms = out
                            .records()
                            .last()
                            .map_or(rt::now_ms(), |r| r.arrival_ms());
                        event["ContinuationSequenceNumber"] = json!(sequence::continuation(
                            cursor.shard_index,
                            out.shard_opened,
                            out.next_offset(),
                            time_ms,
                        ))
                    }
                }
                cursor.offset = out.next_offset();
                let message = eventstream::event(
                    "SubscribeToShardEvent",
                    content_type,
                    &format.encode(&event, &CBOR_MEMBERS),
                );
                (message, out.child_shards.is_some())
            }
            Err(e) => {
                let payload = format.encode(&json!({ "message": e.message }), &CBOR_MEMBERS);
                (
                    eventstream::exception(e.code.aws_name(), content_type, &payload),
                    true,
                )
            }
        };
        // A client that stops reading holds the subscription no longer than
        // its time (plus one event interval).
        let deadline = (until_ms - rt::now_ms()).max(0) + EVENT_INTERVAL_MS;
        let sent = futures_lite::future::or(async { events.send(message).await }, async {
            rt::sleep(Duration::from_millis(deadline as u64)).await;
            false
        })
        .await;
        if !sent || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_resubscribes_to_a_shard_after_five_seconds() {
        let r = Registry::default();
        r.admit("arn:c", 0, 1_000).unwrap();
        // Another shard, another consumer: fine.
        r.admit("arn:c", 1, 1_000).unwrap();
        r.admit("arn:d", 0, 1_000).unwrap();
        let refused = r.admit("arn:c", 0, 5_999).expect_err("within 5 s");
        assert_eq!(refused.kind, "ResourceInUseException");
        r.admit("arn:c", 0, 6_000).unwrap();
        // Old entries are dropped as new ones come.
        assert_eq!(r.started_ms.lock().unwrap().len(), 1);
    }
}
