//! The operations that add or delete one part of an application (an
//! input, its preprocessor, an output, a reference data source, a
//! CloudWatch logging option), and the checks of a part's resources: the
//! source stream or delivery stream exists, a function resolves.

use std::sync::Arc;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::kinesis::{ArnNames, names_of_arn};
use riffle_protocol::Error;
use serde_json::{Value, json};

use crate::config::{self, DestinationKind, OutputConf, Processing, ResourceRole, SourceKind};
use crate::limits;
use crate::ops::{Answer, Code, change, invalid, part};
use crate::service::Shared;
use crate::state::App;

/// The data stream a Kinesis ARN of this server names, if it exists.
fn check_stream(s: &Shared, arn: &str) -> Result<(), Refusal> {
    let (region, account) = (&s.config.region, &s.config.account);
    match names_of_arn(arn, region, account) {
        Some(ArnNames::Stream(name)) => match s.engine.stream_id(name) {
            Ok(_) => Ok(()),
            Err(_) => Err(invalid(format!(
                "Stream {name} under account {account} not found."
            ))),
        },
        _ => Err(invalid(format!(
            "{arn} is not a Kinesis data stream ARN of region {region} and account {account}."
        ))),
    }
}

/// The delivery stream name in a Firehose ARN of `region` and `account`.
pub(crate) fn delivery_stream_of_arn<'a>(
    arn: &'a str,
    region: &str,
    account: &str,
) -> Option<&'a str> {
    arn.strip_prefix("arn:aws:firehose:")
        .and_then(|r| r.strip_prefix(region))
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.strip_prefix(account))
        .and_then(|r| r.strip_prefix(":deliverystream/"))
        .filter(|n| !n.is_empty())
}

/// The delivery stream a Firehose ARN of this server names, if it exists.
fn check_delivery_stream(s: &Shared, arn: &str) -> Result<(), Refusal> {
    let (region, account) = (&s.config.region, &s.config.account);
    let name = delivery_stream_of_arn(arn, region, account).ok_or_else(|| {
        invalid(format!(
            "{arn} is not a Firehose delivery stream ARN of region {region} and account {account}."
        ))
    })?;
    match s
        .config
        .delivery_streams
        .as_ref()
        .is_some_and(|f| f(name).is_some())
    {
        true => Ok(()),
        false => Err(invalid(format!(
            "Firehose {name} under account {account} not found."
        ))),
    }
}

/// A function `ResourceARN`: an http(s) URL, or a name or ARN the server's
/// `[functions]` table maps to one.
fn check_function(s: &Shared, r: &ResourceRole) -> Result<(), Refusal> {
    riffle_lambda::function::resolve(
        &r.resource_arn,
        &s.config.functions,
        &s.config.region,
        &s.config.account,
    )
    .map(|_| ())
    .map_err(invalid)
}

pub(crate) fn check_input(s: &Shared, input: &config::InputConf) -> Result<(), Refusal> {
    match input.source_kind {
        SourceKind::KinesisStreams => check_stream(s, &input.source.resource_arn)?,
        SourceKind::KinesisFirehose => check_delivery_stream(s, &input.source.resource_arn)?,
    }
    if let Some(p) = &input.processing {
        check_function(s, &p.lambda)?;
    }
    Ok(())
}

pub(crate) fn check_output(s: &Shared, output: &OutputConf) -> Result<(), Refusal> {
    if output.name.eq_ignore_ascii_case(limits::ERROR_STREAM) && output.name != limits::ERROR_STREAM
    {
        return Err(invalid(format!(
            "Output {}: the error stream is named {} exactly (names are case-sensitive).",
            output.name,
            limits::ERROR_STREAM
        )));
    }
    match output.kind {
        DestinationKind::KinesisStreams => check_stream(s, &output.destination.resource_arn),
        DestinationKind::KinesisFirehose => {
            check_delivery_stream(s, &output.destination.resource_arn)
        }
        DestinationKind::Lambda => check_function(s, &output.destination),
    }
}

/// Reference table names are unique and differ from the input's streams.
pub(crate) fn check_reference_names(app: &App) -> Result<(), Refusal> {
    let inputs = app
        .input
        .iter()
        .flat_map(|i| i.stream_names())
        .collect::<Vec<_>>();
    for (i, r) in app.references.iter().enumerate() {
        if app.references[..i]
            .iter()
            .any(|o| o.table_name == r.table_name)
            || inputs.contains(&r.table_name)
        {
            return Err(invalid(format!(
                "The in-application name {} is already used by the application.",
                r.table_name
            )));
        }
    }
    Ok(())
}

fn name_and_version<'a>(input: &Input<'a>) -> Result<(&'a str, u64), Refusal> {
    Ok((
        input.required_str("ApplicationName")?,
        input.int("CurrentApplicationVersionId")?.unwrap_or(0) as u64,
    ))
}

fn done(_: App) -> Value {
    json!({})
}

pub(crate) async fn add_input(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let v = input.get("Input").cloned().unwrap_or(Value::Null);
    change(s, name, Some(version), Code::Check, |app| {
        if app.input.is_some() {
            return Err(invalid(format!(
                "Application {name} already has an input: an application reads at most {} source.",
                limits::INPUTS_MAX
            )));
        }
        let id = app.take_part_id();
        let conf = config::input_of(&v, id).map_err(invalid)?;
        check_input(s, &conf)?;
        app.input = Some(conf);
        check_reference_names(app)
    })
    .await
    .map(done)
}

/// The application's input with id `id`.
fn the_input<'a>(app: &'a mut App, id: &str) -> Result<&'a mut config::InputConf, Refusal> {
    app.input.as_mut().filter(|i| i.id == id).ok_or_else(|| {
        Error::not_found(format!("The application has no input with id {id}.")).into()
    })
}

pub(crate) async fn add_processing(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let id = input.required_str("InputId")?;
    let v = input
        .get("InputProcessingConfiguration")
        .cloned()
        .unwrap_or(Value::Null);
    let processing: Processing = serde_json::from_value(v)
        .map_err(|e| invalid(format!("InputProcessingConfiguration is not valid: {e}")))?;
    check_function(s, &processing.lambda)?;
    change(s, name, Some(version), Code::Unchanged, |app| {
        let i = the_input(app, id)?;
        if i.processing.is_some() {
            return Err(invalid(format!(
                "Input {id} already has an input processing configuration."
            )));
        }
        i.processing = Some(processing);
        Ok(())
    })
    .await
    .map(done)
}

pub(crate) async fn delete_processing(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let id = input.required_str("InputId")?;
    change(s, name, Some(version), Code::Unchanged, |app| {
        let i = the_input(app, id)?;
        match i.processing.take() {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!(
                "Input {id} has no input processing configuration."
            ))
            .into()),
        }
    })
    .await
    .map(done)
}

pub(crate) async fn add_output(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let v = input.get("Output").cloned().unwrap_or(Value::Null);
    change(s, name, Some(version), Code::Unchanged, |app| {
        if app.outputs.len() >= limits::OUTPUTS_MAX {
            return Err(invalid(format!(
                "Application {name} already has {} outputs, the most an application may have.",
                limits::OUTPUTS_MAX
            )));
        }
        let id = app.take_part_id();
        let conf = config::output_of(&v, id).map_err(invalid)?;
        check_output(s, &conf)?;
        app.outputs.push(conf);
        Ok(())
    })
    .await
    .map(done)
}

pub(crate) async fn delete_output(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let id = input.required_str("OutputId")?;
    change(s, name, Some(version), Code::Unchanged, |app| {
        part(&mut app.outputs, id, |o| &o.id, "output")?;
        app.outputs.retain(|o| o.id != id);
        Ok(())
    })
    .await
    .map(done)
}

pub(crate) async fn add_reference(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let v = input
        .get("ReferenceDataSource")
        .cloned()
        .unwrap_or(Value::Null);
    change(s, name, Some(version), Code::Check, |app| {
        if app.references.len() >= limits::REFERENCE_SOURCES_MAX {
            return Err(invalid(format!(
                "Application {name} already has a reference data source: an application has at most {}.",
                limits::REFERENCE_SOURCES_MAX
            )));
        }
        let id = app.take_part_id();
        app.references
            .push(config::reference_of(&v, id).map_err(invalid)?);
        check_reference_names(app)
    })
    .await
    .map(done)
}

pub(crate) async fn delete_reference(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let id = input.required_str("ReferenceId")?;
    change(s, name, Some(version), Code::Unchanged, |app| {
        part(&mut app.references, id, |r| &r.id, "reference data source")?;
        app.references.retain(|r| r.id != id);
        Ok(())
    })
    .await
    .map(done)
}

pub(crate) async fn add_logging(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let v = input
        .get("CloudWatchLoggingOption")
        .cloned()
        .unwrap_or(Value::Null);
    change(s, name, Some(version), Code::Unchanged, |app| {
        let id = app.take_part_id();
        app.logging.push(config::logging_of(&v, id));
        Ok(())
    })
    .await
    .map(done)
}

pub(crate) async fn delete_logging(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let (name, version) = name_and_version(&input)?;
    let id = input.required_str("CloudWatchLoggingOptionId")?;
    change(s, name, Some(version), Code::Unchanged, |app| {
        part(&mut app.logging, id, |l| &l.id, "CloudWatch logging option")?;
        app.logging.retain(|l| l.id != id);
        Ok(())
    })
    .await
    .map(done)
}
