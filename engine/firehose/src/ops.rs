//! Firehose's control-plane operations: create, delete, describe and list
//! delivery streams, UpdateDestination, encryption and tags. Inputs have
//! passed the model's checks; what is checked here is what AWS checks after
//! them (InvalidArgumentException and the state's own refusals).

use std::collections::BTreeMap;
use std::sync::Arc;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::rt;
use riffle_protocol::Error;
use serde_json::{Map, Value, json};

use crate::delivery;
use crate::destination;
use crate::service::{Shared, internal_stream};
use crate::state::{Encryption, Event, SourceKind};

type Answer = Result<Value, Refusal>;

fn name<'a>(input: &Input<'a>) -> Result<&'a str, Refusal> {
    input.required_str("DeliveryStreamName")
}

/// Seconds since the epoch, as JSON 1.1 timestamps are written.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

pub(crate) async fn create(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let kind = input.str("DeliveryStreamType")?.unwrap_or("DirectPut");
    let source = match kind {
        "DirectPut" => {
            if input.get("KinesisStreamSourceConfiguration").is_some() {
                return Err(Error::invalid(
                    "KinesisStreamSourceConfiguration is only allowed with DeliveryStreamType KinesisStreamAsSource.",
                )
                .into());
            }
            SourceKind::DirectPut
        }
        "KinesisStreamAsSource" => {
            let Some(config) = input.object("KinesisStreamSourceConfiguration")? else {
                return Err(Error::invalid(
                    "KinesisStreamSourceConfiguration is required for DeliveryStreamType KinesisStreamAsSource.",
                )
                .into());
            };
            let arn = config.required_str("KinesisStreamARN")?;
            let stream = source_stream(s, arn)?;
            let stream_id = s.engine.stream_id(&stream).map_err(|_| {
                Error::invalid(format!(
                    "The Kinesis stream {arn} does not exist under account {}.",
                    s.config.account
                ))
            })?;
            SourceKind::KinesisStreamAsSource {
                stream_arn: arn.to_string(),
                stream,
                stream_id,
                start_ms: rt::now_ms(),
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "Riffle does not serve {other} delivery streams; DirectPut is served."
            ))
            .into());
        }
    };
    let destination = destination::from_create(input.0)?;
    check_keys(s, &destination, name)?;
    let mut tags = BTreeMap::new();
    if let Some(list) = input.get("Tags").and_then(Value::as_array) {
        for t in list {
            let key = t.get("Key").and_then(Value::as_str).unwrap_or_default();
            let value = t.get("Value").and_then(Value::as_str).unwrap_or_default();
            tags.insert(key.to_string(), value.to_string());
        }
    }
    let encryption = match input.object("DeliveryStreamEncryptionConfigurationInput")? {
        Some(e) => Some(encryption_of(&e)?),
        None => None,
    };
    if encryption.is_some() && source != SourceKind::DirectPut {
        return Err(Error::invalid(
            "Server-side encryption is not supported for a KinesisStreamAsSource delivery stream: encrypt its source stream.",
        )
        .into());
    }
    let state = s.meta.state();
    if state.streams.contains_key(name) {
        return Err(in_use(s, name).into());
    }
    // Direct PUT: the internal stream first; a crash before the metadata
    // records the delivery stream leaves an orphan that the next start removes.
    let internal = internal_stream(name);
    let direct = source == SourceKind::DirectPut;
    if direct {
        let shards = s.engine.core_count() as u32;
        s.engine
            .create_stream(&internal, shards)
            .await
            .map_err(|e| match e.code {
                riffle_protocol::ErrorCode::ResourceInUse => in_use(s, name),
                _ => e,
            })?;
        // Server-side encryption is the internal stream's: its records are
        // written under the delivery stream's key.
        if let Some(key) = encryption.as_ref().and_then(|e| kms_key(s, e))
            && let Err(e) = s.engine.start_encryption(&internal, key).await
        {
            let _ = s.engine.delete_stream(&internal).await;
            return Err(e.into());
        }
    }
    let source_config = match &source {
        SourceKind::DirectPut => input.get("DirectPutSourceConfiguration"),
        SourceKind::KinesisStreamAsSource { .. } => input.get("KinesisStreamSourceConfiguration"),
    }
    .cloned()
    .unwrap_or(Value::Null);
    let event = Event::Create {
        name: name.to_string(),
        source,
        source_config,
        destination,
        tags,
        encryption,
        at_ms: rt::now_ms(),
    };
    if let Err(e) = s.meta.apply(event).await {
        if direct {
            let _ = s.engine.delete_stream(&internal).await;
        }
        return Err(s.worded(e).into());
    }
    // A DeleteDeliveryStream may already have removed it.
    if let Some(id) = s.meta.state().streams.get(name).map(|d| d.id) {
        delivery::start(s, name, id).await;
    }
    Ok(json!({ "DeliveryStreamARN": s.arn(name) }))
}

/// The stream a `KinesisStreamARN` names (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`),
/// when it is this server's region and account.
fn source_stream(s: &Shared, arn: &str) -> Result<String, Error> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "kinesis", region, account, resource]
            if *region == s.config.region && *account == s.config.account =>
        {
            resource
                .strip_prefix("stream/")
                .filter(|n| !n.is_empty() && !n.contains(':'))
                .map(str::to_string)
                .ok_or_else(|| Error::invalid(format!("{arn} is not a Kinesis stream ARN.")))
        }
        ["arn", _, "kinesis", ..] => Err(Error::invalid(format!(
            "The Kinesis stream {arn} is not in region {} of account {}.",
            s.config.region, s.config.account
        ))),
        _ => Err(Error::invalid(format!(
            "{arn} is not a Kinesis stream ARN."
        ))),
    }
}

/// Refuses a destination whose objects' keys the store cannot write (the
/// embedded store's files: no empty, `.` or `..` path segment, no name over
/// 255 bytes), trying the keys its prefixes give now.
fn check_keys(s: &Shared, d: &crate::state::Destination, name: &str) -> Result<(), Error> {
    let Some(config) = d.config.as_object() else {
        return Ok(());
    };
    let configured = destination::Configured::of(d)?;
    let dest = configured.objects();
    let processing = crate::processing::of_config(config, &s.config.functions)?;
    // Keys from a query only mean something to dynamic partitioning, which
    // only S3 destinations have.
    if processing.metadata_query.is_some() && !dest.dynamic_partitioning {
        return Err(Error::invalid(
            "The MetadataExtraction processor needs dynamic partitioning, which only Extended S3 destinations have.",
        ));
    }
    let origin = crate::object::Origin {
        stream: name,
        id: 0,
        shard: 0,
        start: 0,
    };
    let now = rt::now_ms();
    let key = crate::object::key(dest, origin, 1, now)?;
    s.store.check_key(&dest.bucket, &key).map_err(|why| {
        Error::invalid(format!(
            "The prefix gives object keys this server cannot store: {why}"
        ))
    })?;
    // The error objects' keys too: a failed record must have somewhere to go.
    for error_type in crate::delivery::ERROR_OUTPUT_TYPES {
        let key = crate::object::error_key(dest, origin, 1, now, error_type)?;
        s.store.check_key(&dest.bucket, &key).map_err(|why| {
            Error::invalid(format!(
                "The error output prefix gives object keys this server cannot store: {why}"
            ))
        })?;
    }
    // And the source records' backup.
    if let Some(backup) = &dest.backup {
        let key = crate::object::backup_key(backup, origin, 1, now)?;
        s.store.check_key(&backup.bucket, &key).map_err(|why| {
            Error::invalid(format!(
                "The backup's prefix gives object keys this server cannot store: {why}"
            ))
        })?;
    }
    Ok(())
}

fn in_use(s: &Shared, name: &str) -> Error {
    Error::in_use(format!(
        "Firehose {name} under accountId {} already exists",
        s.config.account
    ))
}

fn encryption_of(e: &Input<'_>) -> Result<Encryption, Refusal> {
    let key_type = e.str("KeyType")?.unwrap_or("AWS_OWNED_CMK");
    let key_arn = e.str("KeyARN")?;
    match (key_type, key_arn) {
        ("CUSTOMER_MANAGED_CMK", None) => {
            Err(Error::invalid("KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK.").into())
        }
        ("AWS_OWNED_CMK", Some(_)) => Err(Error::invalid(
            "KeyARN must not be specified when KeyType is AWS_OWNED_CMK.",
        )
        .into()),
        _ => Ok(Encryption {
            key_type: key_type.to_string(),
            key_arn: key_arn.map(str::to_string),
        }),
    }
}

pub(crate) async fn delete(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let direct = s
        .meta
        .state()
        .streams
        .get(name)
        .is_none_or(|d| d.source == SourceKind::DirectPut);
    s.meta
        .apply(Event::Delete {
            name: name.to_string(),
        })
        .await
        .map_err(|e| s.worded(e))?;
    s.failures.lock().unwrap().remove(name);
    // The metadata first: delivery stops when it sees the stream gone; a crash
    // before the internal stream is deleted leaves an orphan the next start removes.
    if direct && let Err(e) = s.engine.delete_stream(&internal_stream(name)).await {
        tracing::warn!("cannot delete the internal stream of {name}: {e:?}");
    }
    Ok(json!({}))
}

fn status(s: &Shared, created_ms: i64) -> &'static str {
    if rt::now_ms() < created_ms.saturating_add(s.config.state_delay_ms as i64) {
        "CREATING"
    } else {
        "ACTIVE"
    }
}

pub(crate) fn describe(s: &Shared, input: Input<'_>) -> Answer {
    Ok(description(s, name(&input)?)?)
}

/// DescribeDeliveryStream's answer for `name` (the JSON API's and the native
/// protocol's, `native.rs`).
pub(crate) fn description(s: &Shared, name: &str) -> Result<Value, Error> {
    let state = s.meta.state();
    let d = state.streams.get(name).ok_or_else(|| s.not_found(name))?;
    let mut destination = Map::new();
    destination.insert("DestinationId".into(), json!(d.destination_id));
    destination.extend(destination::describe(&d.destination));
    let encryption = match &d.encryption {
        Some(e) => {
            let mut v = json!({"KeyType": e.key_type, "Status": "ENABLED"});
            if let Some(arn) = &e.key_arn {
                v["KeyARN"] = json!(arn);
            }
            v
        }
        None => json!({"Status": "DISABLED"}),
    };
    let mut out = json!({
        "DeliveryStreamName": d.name,
        "DeliveryStreamARN": s.arn(name),
        "DeliveryStreamStatus": status(s, d.created_ms),
        "DeliveryStreamEncryptionConfiguration": encryption,
        "DeliveryStreamType": d.source.aws_name(),
        "VersionId": d.version.to_string(),
        "CreateTimestamp": seconds(d.created_ms),
        "Destinations": [Value::Object(destination)],
        "HasMoreDestinations": false,
    });
    if d.version > 1 || d.updated_ms != d.created_ms {
        out["LastUpdateTimestamp"] = seconds(d.updated_ms);
    }
    match &d.source {
        SourceKind::DirectPut => {
            if let Some(hint) = d.source_config.get("ThroughputHintInMBs") {
                out["Source"] =
                    json!({"DirectPutSourceDescription": {"ThroughputHintInMBs": hint}});
            }
        }
        SourceKind::KinesisStreamAsSource {
            stream_arn,
            start_ms,
            ..
        } => {
            let mut description = json!({
                "KinesisStreamARN": stream_arn,
                "DeliveryStartTimestamp": seconds(*start_ms),
            });
            if let Some(role) = d.source_config.get("RoleARN") {
                description["RoleARN"] = role.clone();
            }
            out["Source"] = json!({ "KinesisStreamSourceDescription": description });
        }
    }
    // AWS's failure types name KMS and VPC troubles; a destination's is
    // UNKNOWN_ERROR with the details (`S3.PutObject: ... NoSuchBucket: ...`).
    if let Some(f) = s.failure(name, d.id) {
        out["FailureDescription"] =
            json!({"Type": "UNKNOWN_ERROR", "Details": format!("{}: {}", f.kind, f.details)});
    }
    Ok(json!({ "DeliveryStreamDescription": out }))
}

pub(crate) fn list(s: &Shared, input: Input<'_>) -> Answer {
    let limit = input.int("Limit")?.unwrap_or(10).max(1) as usize;
    let kind = input.str("DeliveryStreamType")?;
    let start = input.str("ExclusiveStartDeliveryStreamName")?;
    let state = s.meta.state();
    let names: Vec<&str> = state
        .streams
        .values()
        .filter(|d| kind.is_none_or(|k| d.source.aws_name() == k))
        .filter(|d| start.is_none_or(|st| d.name.as_str() > st))
        .map(|d| d.name.as_str())
        .collect();
    Ok(json!({
        "DeliveryStreamNames": names.iter().take(limit).collect::<Vec<_>>(),
        "HasMoreDeliveryStreams": names.len() > limit,
    }))
}

pub(crate) async fn update_destination(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let current_version = input.required_str("CurrentDeliveryStreamVersionId")?;
    let destination_id = input.required_str("DestinationId")?;
    let current_version: u64 = current_version.parse().map_err(|_| {
        Error::invalid(format!(
            "CurrentDeliveryStreamVersionId {current_version} is not a version id."
        ))
    })?;
    let state = s.meta.state();
    let d = state.streams.get(name).ok_or_else(|| s.not_found(name))?;
    let destination = destination::from_update(&d.destination, input.0)?;
    check_keys(s, &destination, name)?;
    s.meta
        .apply(Event::UpdateDestination {
            name: name.to_string(),
            current_version,
            destination_id: destination_id.to_string(),
            destination,
            at_ms: rt::now_ms(),
        })
        .await
        .map_err(|e| s.worded(e))?;
    Ok(json!({}))
}

/// AWS refuses encryption changes of a delivery stream fed by a Kinesis stream.
fn direct_put_only(s: &Shared, name: &str, op: &str) -> Result<(), Refusal> {
    let state = s.meta.state();
    let d = state.streams.get(name).ok_or_else(|| s.not_found(name))?;
    if d.source != SourceKind::DirectPut {
        return Err(Error::invalid(format!(
            "{op} is not supported for a KinesisStreamAsSource delivery stream: encrypt its source stream."
        ))
        .into());
    }
    Ok(())
}

/// The KMS key a delivery stream's records are encrypted under: its
/// customer-managed key, else Firehose's AWS-owned one, which is the
/// keyring's `alias/aws/firehose` (without a keyring there is none: an
/// AWS-owned key is recorded and reported, the records stay in the clear).
fn kms_key<'e>(s: &Shared, e: &'e Encryption) -> Option<&'e str> {
    match e.key_arn.as_deref() {
        Some(arn) => Some(arn),
        None => s.engine.has_keyring().then_some("alias/aws/firehose"),
    }
}

pub(crate) async fn start_encryption(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    direct_put_only(s, name, "StartDeliveryStreamEncryption")?;
    let encryption = match input.object("DeliveryStreamEncryptionConfigurationInput")? {
        Some(e) => encryption_of(&e)?,
        None => Encryption {
            key_type: "AWS_OWNED_CMK".into(),
            key_arn: None,
        },
    };
    let internal = internal_stream(name);
    if let Some(key) = kms_key(s, &encryption) {
        s.engine.start_encryption(&internal, key).await?;
    }
    let was_on = s
        .meta
        .state()
        .streams
        .get(name)
        .is_some_and(|d| d.encryption.is_some());
    let recorded = s
        .meta
        .apply(Event::SetEncryption {
            name: name.to_string(),
            encryption: Some(encryption),
            at_ms: rt::now_ms(),
        })
        .await;
    if let Err(e) = recorded {
        // Not recorded: the records are not encrypted either (unless they
        // were before, under the key they keep using).
        if !was_on {
            let _ = s.engine.stop_encryption(&internal).await;
        }
        return Err(s.worded(e).into());
    }
    Ok(json!({}))
}

pub(crate) async fn stop_encryption(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    direct_put_only(s, name, "StopDeliveryStreamEncryption")?;
    s.engine.stop_encryption(&internal_stream(name)).await?;
    s.meta
        .apply(Event::SetEncryption {
            name: name.to_string(),
            encryption: None,
            at_ms: rt::now_ms(),
        })
        .await
        .map_err(|e| s.worded(e))?;
    Ok(json!({}))
}

pub(crate) async fn tag(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let mut tags = BTreeMap::new();
    for t in input
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = t.get("Key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("Value").and_then(Value::as_str).unwrap_or_default();
        tags.insert(key.to_string(), value.to_string());
    }
    s.meta
        .apply(Event::AddTags {
            name: name.to_string(),
            tags,
        })
        .await
        .map_err(|e| s.worded(e))?;
    Ok(json!({}))
}

pub(crate) async fn untag(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let keys = input.string_list("TagKeys")?;
    s.meta
        .apply(Event::RemoveTags {
            name: name.to_string(),
            keys,
        })
        .await
        .map_err(|e| s.worded(e))?;
    Ok(json!({}))
}

pub(crate) fn list_tags(s: &Shared, input: Input<'_>) -> Answer {
    let name = name(&input)?;
    let limit = input.int("Limit")?.unwrap_or(50).max(1) as usize;
    let start = input.str("ExclusiveStartTagKey")?;
    let state = s.meta.state();
    let d = state.streams.get(name).ok_or_else(|| s.not_found(name))?;
    let tags: Vec<Value> = d
        .tags
        .iter()
        .filter(|(k, _)| start.is_none_or(|st| k.as_str() > st))
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({
        "Tags": tags.iter().take(limit).collect::<Vec<_>>(),
        "HasMoreTags": tags.len() > limit,
    }))
}
