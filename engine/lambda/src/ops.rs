//! The five operations: CreateEventSourceMapping, GetEventSourceMapping,
//! ListEventSourceMappings, UpdateEventSourceMapping and
//! DeleteEventSourceMapping, with AWS's answers (202 for the three that
//! change a mapping), states and refusals (docs/lambda-design.md §1).

use std::sync::Arc;

use http::StatusCode;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::kinesis::{self, ArnNames};
use riffle_engine::rt;
use riffle_protocol::ErrorCode;
use riffle_store::iterator::IteratorType;
use serde_json::{Map, Value, json};

use crate::config::{Config, StartingPosition};
use crate::function;
use crate::service::{Shared, shown_state};
use crate::state::{LambdaEvent, Mapping, NOT_FOUND, Transition};

/// List answers at most this many mappings (AWS's page size).
const PAGE_MAX: usize = 100;

pub(crate) type Answer = Result<(StatusCode, Value), Refusal>;

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::client("InvalidParameterValueException", message)
}

fn not_found() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        NOT_FOUND,
    )
}

/// The metadata's refusal as Lambda words it.
fn refusal(e: riffle_protocol::Error) -> Refusal {
    match e.code {
        ErrorCode::ResourceNotFound => not_found(),
        ErrorCode::ResourceInUse => {
            Refusal::new(StatusCode::CONFLICT, "ResourceConflictException", e.message)
        }
        ErrorCode::Internal | ErrorCode::StorageFailed => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            e.message,
        ),
        _ => invalid(e.message),
    }
}

/// A mapping as AWS answers it (`EventSourceMappingConfiguration`).
pub(crate) fn answer(s: &Shared, m: &Mapping, state: &str) -> Value {
    let mut out = Map::new();
    out.insert("UUID".into(), json!(m.uuid));
    m.config.answer_members(&mut out);
    out.insert("EventSourceArn".into(), json!(m.source_arn));
    out.insert(
        "EventSourceMappingArn".into(),
        json!(format!(
            "arn:aws:lambda:{}:{}:event-source-mapping:{}",
            s.config.region, s.config.account, m.uuid
        )),
    );
    out.insert("FunctionArn".into(), json!(m.function_arn));
    out.insert(
        "LastModified".into(),
        json!(m.last_modified_ms as f64 / 1000.0),
    );
    out.insert("LastProcessingResult".into(), json!(s.result_of(m.id)));
    out.insert("State".into(), json!(state));
    out.insert("StateTransitionReason".into(), json!("User action"));
    Value::Object(out)
}

/// The stream (and its incarnation) an `EventSourceArn` names: a stream ARN
/// or a registered stream consumer's ARN of this server.
fn source_of(s: &Shared, arn: &str) -> Result<(String, u64), Refusal> {
    let (region, account) = (&s.config.region, &s.config.account);
    let (stream, consumer) = match kinesis::names_of_arn(arn, region, account) {
        Some(ArnNames::Stream(stream)) => (stream, None),
        Some(ArnNames::Consumer {
            stream,
            consumer,
            epoch,
        }) => (stream, Some((consumer, epoch))),
        None => {
            return Err(invalid(format!(
                "Unsupported event source type: {arn} is not a Kinesis stream or stream consumer \
                 ARN of this server ({}...)",
                kinesis::stream_arn(region, account, "")
            )));
        }
    };
    let stream_id = s
        .engine
        .stream_id(stream)
        .map_err(|_| invalid(format!("Stream not found: {arn}")))?;
    if let Some((name, epoch)) = consumer {
        let registered = s.engine.settings(stream).ok().is_some_and(|settings| {
            settings
                .consumers
                .get(name)
                .is_some_and(|created_ms| (created_ms / 1000).to_string() == epoch)
        });
        if !registered {
            return Err(invalid(format!("Stream consumer not found: {arn}")));
        }
    }
    Ok((stream.to_string(), stream_id))
}

/// The OnFailure destination must be a stream of this server, and not the
/// source (each failure record would be delivered, fail, and make another).
fn check_destination(s: &Shared, config: &Config, source: &str) -> Result<(), Refusal> {
    let Some(arn) = &config.on_failure else {
        return Ok(());
    };
    let (region, account) = (&s.config.region, &s.config.account);
    match kinesis::names_of_arn(arn, region, account) {
        Some(ArnNames::Stream(stream)) if stream == source => Err(invalid(format!(
            "OnFailure destination {arn} is the event source's stream: its failure records \
             would be delivered to the function again"
        ))),
        Some(ArnNames::Stream(stream)) => s
            .engine
            .stream_id(stream)
            .map(|_| ())
            .map_err(|_| invalid(format!("Stream not found: {arn}"))),
        _ => Err(invalid(format!(
            "OnFailure destination {arn} is not a Kinesis stream of this server ({}<name>)",
            kinesis::stream_arn(region, account, "")
        ))),
    }
}

fn resolve(s: &Shared, name: &str) -> Result<function::Function, Refusal> {
    function::resolve(
        name,
        &s.config.functions,
        &s.config.region,
        &s.config.account,
    )
    .map_err(|e| {
        // AWS's words start the message; ours say why.
        invalid(e)
    })
}

pub(crate) async fn create(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let source_arn = input
        .str("EventSourceArn")?
        .ok_or_else(|| invalid("Unrecognized event source."))?
        .to_string();
    let (stream, stream_id) = source_of(s, &source_arn)?;
    let now = rt::now_ms();
    let config = Config::of_create(&input, now)?;
    check_destination(s, &config, &stream)?;
    let function = resolve(s, &config.function_name)?;
    let tags = match input.get("Tags") {
        Some(_) => input.string_map("Tags").unwrap_or_default(),
        None => Default::default(),
    };
    let state = s.meta.state();
    if let Some(existing) = state.same(&source_arn, &function.arn) {
        return Err(refusal(crate::state::conflict(existing)));
    }
    // LATEST: each shard's tip now, so no record put after this answer is
    // skipped, however late delivery starts.
    let mut start_offsets = std::collections::BTreeMap::new();
    if config.starting_position == StartingPosition::Latest {
        for shard in s.engine.list_shards(&stream).map_err(Refusal::from)? {
            let cursor = s
                .engine
                .shard_cursor(&stream, shard.shard_index, IteratorType::Latest)
                .await
                .map_err(Refusal::from)?;
            if cursor.stream_id != stream_id {
                return Err(invalid(format!("Stream not found: {source_arn}")));
            }
            start_offsets.insert(shard.shard_index, cursor.offset);
        }
    }
    let mut mapping = Mapping {
        uuid: riffle_engine::http::random_uuid(),
        // Given by the metadata log.
        id: 0,
        enabled: input.bool("Enabled")?.unwrap_or(true),
        config,
        function_arn: function.arn,
        source_arn,
        stream,
        stream_id,
        start_offsets,
        transition: Some((Transition::Creating, now)),
        last_modified_ms: now,
        tags,
        shards: Default::default(),
    };
    s.meta
        .apply(LambdaEvent::Create {
            mapping: Box::new(mapping.clone()),
        })
        .await
        .map_err(refusal)?;
    if let Some(made) = s.meta.state().mappings.get(&mapping.uuid) {
        mapping.id = made.id;
    }
    crate::task::start(s, &mapping.uuid, mapping.id).await;
    Ok((StatusCode::ACCEPTED, answer(s, &mapping, "Creating")))
}

pub(crate) fn get(s: &Shared, input: Input<'_>) -> Answer {
    let uuid = input.required_str("UUID")?;
    let m = s.visible(uuid).ok_or_else(not_found)?;
    let state = shown_state(&m, rt::now_ms(), s.config.state_delay_ms).unwrap_or("Deleting");
    Ok((StatusCode::OK, answer(s, &m, state)))
}

pub(crate) fn list(s: &Shared, input: Input<'_>) -> Answer {
    let source = input.str("EventSourceArn")?;
    let function_arn = match input.str("FunctionName")? {
        Some(name) => match resolve(s, name) {
            Ok(f) => Some(f.arn),
            // No mapping can name a function that does not resolve.
            Err(_) => return Ok((StatusCode::OK, json!({ "EventSourceMappings": [] }))),
        },
        None => None,
    };
    let max = input
        .int("MaxItems")?
        .map_or(PAGE_MAX, |n| (n.max(1) as usize).min(PAGE_MAX));
    let marker = input.str("Marker")?;
    let state = s.meta.state();
    let now = rt::now_ms();
    let delay = s.config.state_delay_ms;
    // Markers are the last UUID answered: mappings are listed in UUID order.
    if let Some(marker) = marker
        && marker.len() != 36
    {
        return Err(invalid(format!("Invalid marker: {marker}")));
    }
    let mut shown: Vec<Value> = Vec::new();
    let mut next = None;
    let after = state
        .mappings
        .values()
        .filter(|m| marker.is_none_or(|k| m.uuid.as_str() > k));
    for m in after {
        if source.is_some_and(|a| a != m.source_arn)
            || function_arn.as_ref().is_some_and(|f| *f != m.function_arn)
        {
            continue;
        }
        let Some(st) = shown_state(m, now, delay) else {
            continue;
        };
        if shown.len() == max {
            next = shown
                .last()
                .and_then(|v| v["UUID"].as_str())
                .map(str::to_owned);
            break;
        }
        shown.push(answer(s, m, st));
    }
    let mut out = json!({ "EventSourceMappings": shown });
    if let Some(next) = next {
        out["NextMarker"] = json!(next);
    }
    Ok((StatusCode::OK, out))
}

/// ResourceInUseException while a transition is shown.
fn settled(s: &Shared, m: &Mapping) -> Result<(), Refusal> {
    match shown_state(m, rt::now_ms(), s.config.state_delay_ms) {
        Some("Enabled" | "Disabled") => Ok(()),
        Some(st) => Err(Refusal::client(
            "ResourceInUseException",
            format!(
                "The event source mapping is in state {st}; try again when it is Enabled or \
                 Disabled."
            ),
        )),
        None => Err(not_found()),
    }
}

pub(crate) async fn update(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let uuid = input.required_str("UUID")?;
    let m = s.visible(uuid).ok_or_else(not_found)?;
    settled(s, &m)?;
    let config = m.config.updated(&input)?;
    check_destination(s, &config, &m.stream)?;
    let function = resolve(s, &config.function_name)?;
    let enabled = input.bool("Enabled")?.unwrap_or(m.enabled);
    let transition = match (m.enabled, enabled) {
        (false, true) => Transition::Enabling,
        (true, false) => Transition::Disabling,
        _ => Transition::Updating,
    };
    let now = rt::now_ms();
    s.meta
        .apply(LambdaEvent::Update {
            uuid: m.uuid.clone(),
            id: m.id,
            config: Box::new(config),
            function_arn: function.arn,
            enabled,
            transition,
            now_ms: now,
        })
        .await
        .map_err(refusal)?;
    crate::task::start(s, &m.uuid, m.id).await;
    let updated = s.visible(uuid).ok_or_else(not_found)?;
    Ok((
        StatusCode::ACCEPTED,
        answer(s, &updated, transition.aws_name()),
    ))
}

pub(crate) async fn delete(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let uuid = input.required_str("UUID")?;
    let m = s.visible(uuid).ok_or_else(not_found)?;
    settled(s, &m)?;
    let now = rt::now_ms();
    s.meta
        .apply(LambdaEvent::Delete {
            uuid: m.uuid.clone(),
            id: m.id,
            now_ms: now,
        })
        .await
        .map_err(refusal)?;
    let mut shown = m.clone();
    shown.enabled = false;
    let body = answer(s, &shown, "Deleting");
    let (uuid, id) = (m.uuid.clone(), m.id);
    if s.config.state_delay_ms == 0 {
        // Gone before the answer: a Create of the same pair right after it
        // (Get answers 404 by then) must not conflict with it.
        s.purge_later(uuid, id, now).await;
    } else {
        let shared = s.clone();
        rt::spawn(async move { shared.purge_later(uuid, id, now).await });
    }
    Ok((StatusCode::ACCEPTED, body))
}
