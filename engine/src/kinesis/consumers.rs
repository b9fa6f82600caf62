//! Enhanced fan-out consumers: register, describe, list, deregister
//! (SubscribeToShard is `subscribe`).

use super::prelude::*;

/// RegisterStreamConsumer.
pub(super) async fn register_stream_consumer(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let stream = stream_of_arn(input.required_str("StreamARN")?, config)?;
    let consumer = input.required_str("ConsumerName")?;
    let created_ms = crate::rt::now_ms();
    engine
        .change_settings(
            &stream,
            SettingsChange::RegisterConsumer {
                consumer: consumer.to_owned(),
                created_ms,
            },
        )
        .await?;
    Ok(json!({"Consumer": consumer_json(config, &stream, consumer, created_ms)}))
}

/// DescribeStreamConsumer and DeregisterStreamConsumer.
pub(super) async fn describe_stream_consumer(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let (stream, consumer) = match input.str("ConsumerARN")? {
        Some(arn_str) => consumer_of_arn(arn_str, config)?,
        None => {
            let Some(stream_arn) = input.str("StreamARN")? else {
                return Err(Refusal::from(Error::invalid(
                    "Either ConsumerARN or both StreamARN and ConsumerName must be provided",
                )));
            };
            let Some(name) = input.str("ConsumerName")? else {
                return Err(Refusal::from(Error::invalid(
                    "Either ConsumerARN or both StreamARN and ConsumerName must be provided",
                )));
            };
            (stream_of_arn(stream_arn, config)?, name.to_owned())
        }
    };
    let consumers = engine.settings(&stream)?.consumers;
    let Some(&created_ms) = consumers.get(&consumer) else {
        return Err(Refusal::from(Error::not_found(format!(
            "Consumer {consumer} under stream {stream} not found."
        ))));
    };
    if op == "DeregisterStreamConsumer" {
        engine
            .change_settings(&stream, SettingsChange::DeregisterConsumer { consumer })
            .await?;
        return Ok(json!({}));
    }
    let mut d = consumer_json(config, &stream, &consumer, created_ms);
    d["StreamARN"] = json!(arn(config, &stream));
    Ok(json!({ "ConsumerDescription": d }))
}

/// ListStreamConsumers.
pub(super) async fn list_stream_consumers(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let stream = stream_of_arn(input.required_str("StreamARN")?, config)?;
    let max = input.int("MaxResults")?.unwrap_or(100).clamp(1, 10_000) as usize;
    let after = input.str("NextToken")?.map(decode_token).transpose()?;
    let all: Vec<(String, i64)> = engine
        .settings(&stream)?
        .consumers
        .into_iter()
        .filter(|(n, _)| after.as_deref().is_none_or(|a| n.as_str() > a))
        .collect();
    let more = all.len() > max;
    let page: Vec<Value> = all
        .iter()
        .take(max)
        .map(|(n, t)| consumer_json(config, &stream, n, *t))
        .collect();
    let mut out = json!({ "Consumers": page });
    if more {
        out["NextToken"] = json!(encode_token(&all[max - 1].0));
    }
    Ok(out)
}
