//! The application-level operations: create, describe, list, delete,
//! update, start, stop, tags, schema discovery. Inputs have passed the
//! model's checks; what is checked here is what AWS checks after them
//! (docs/analytics-design.md §1.3–1.4). `change` is how every operation
//! that edits an application writes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::rt;
use riffle_protocol::{Error, ErrorCode};
use serde_json::{Value, json};

use crate::config;
use crate::limits;
use crate::ops_parts::{check_input, check_output, check_reference_names};
use crate::run::StartAt;
use crate::service::Shared;
use crate::state::{AnalyticsEvent, App, Transition};

pub(crate) type Answer = Result<Value, Refusal>;

pub(crate) fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::client("InvalidArgumentException", message)
}

fn in_use(name: &str, status: &str) -> Refusal {
    Error::in_use(format!("Application {name} is in {status} state.")).into()
}

/// Seconds since the epoch, as JSON 1.1 timestamps are written.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn now() -> i64 {
    rt::now_ms()
}

/// A place among the code checks running, given back when dropped.
struct Place<'a>(&'a flume::Sender<()>);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// Checks the application's code against its inputs and reference tables:
/// CodeValidationException naming the construct and its position. The code
/// is parsed, and planned against the input's schema once the application
/// has an input (until then a pump's columns cannot be known: the plan is
/// made when the input is added). The parse and the plan run on a thread of
/// their own (a large stack; the core goes on serving meanwhile), at most
/// `Shared::parses` at once.
pub(crate) async fn check_code(s: &Shared, app: &App) -> Result<(), Refusal> {
    plan_code(s, app).await.map(|_| ())
}

/// [`check_code`]'s work: the plan, once the application has an input.
pub(crate) async fn plan_code(
    s: &Shared,
    app: &App,
) -> Result<Option<crate::plan::AppPlan>, Refusal> {
    let code = app.code.clone();
    let inputs: Vec<String> = app.input.iter().flat_map(|i| i.stream_names()).collect();
    let tables: Vec<String> = app
        .references
        .iter()
        .map(|r| r.table_name.clone())
        .collect();
    let catalog = app
        .input
        .is_some()
        .then(|| crate::plan::Catalog::of(app.input.as_ref(), &app.references));
    let failed = || {
        Refusal::from(Error::internal(
            "The SQL parser failed on this code (an internal error)",
        ))
    };
    // A place among the parses running, given back below.
    s.parses.1.recv_async().await.map_err(|_| failed())?;
    // Given back however this ends (a call dropped mid-way included).
    let _place = Place(&s.parses.0);
    let (done, answer) = flume::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("riffle-sql".into())
        .stack_size(crate::sql::PARSER_STACK_BYTES)
        .spawn(move || {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
            let context = crate::sql::Context {
                inputs: &inputs,
                reference_tables: &tables,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let script = crate::sql::parse_on_this_stack(&code, &context)?;
                match &catalog {
                    Some(catalog) => crate::plan::plan(&script, catalog).map(Some),
                    None => Ok(None),
                }
            }));
            let _ = done.send(result.ok());
        });
    let result = match spawned {
        Ok(_) => answer.recv_async().await.ok().flatten(),
        Err(_) => None,
    };
    match result {
        Some(Ok(plan)) => Ok(plan),
        Some(Err(e)) => Err(Refusal::client("CodeValidationException", e.to_string())),
        None => Err(failed()),
    }
}

/// Whether a change checks the application's code afterwards (it does
/// when the code, its inputs or its reference tables change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    Check,
    Unchanged,
}

/// Edits application `name` with `edit`, after checking that it exists, is
/// settled (READY or RUNNING), and, for a configuration change
/// (`version` given), that `version` is its `ApplicationVersionId`; a
/// configuration change bumps the version.
///
/// A configuration change of a RUNNING application is applied to it: the
/// changed application must be runnable (else the change is refused and
/// the run goes on), its run is replaced by one of the new configuration,
/// resumed from the last checkpoint (progress.rs; reference tables are
/// loaded again) — from NOW when the input stream changed.
pub(crate) async fn change(
    s: &Arc<Shared>,
    name: &str,
    version: Option<u64>,
    code: Code,
    edit: impl FnOnce(&mut App) -> Result<(), Refusal>,
) -> Result<App, Refusal> {
    let state = s.meta.state();
    let app = state.live(name)?;
    let now = now();
    let status = app
        .status(now, s.config.state_delay_ms)
        .unwrap_or("DELETING");
    if let Some(v) = version
        && v != app.version
    {
        return Err(Error::new(
            ErrorCode::ConcurrentModification,
            format!(
                "Provided CurrentApplicationVersionId {v} does not match the current version {} of application {name}.",
                app.version
            ),
        )
        .into());
    }
    if !matches!(status, "READY" | "RUNNING") {
        return Err(in_use(name, status));
    }
    let mut next = app.clone();
    edit(&mut next)?;
    // A running application's run is replaced by one of the new
    // configuration, which must be able to run.
    let restart = app.running && version.is_some();
    let plan = match (restart, code) {
        (true, _) => {
            let plan = plan_code(s, &next).await?.ok_or_else(|| {
                failed_config(format!("Application {name} would have no input to read."))
            })?;
            runnable(s, &next, &plan)?;
            Some(plan)
        }
        (false, Code::Check) => {
            check_code(s, &next).await?;
            None
        }
        (false, Code::Unchanged) => None,
    };
    if version.is_some() {
        next.version += 1;
        next.updated_ms = now;
        if next.running {
            next.transition = Some((Transition::Updating, now));
        }
    }
    if restart {
        // The run's tasks stop at their next read.
        next.runs += 1;
    }
    s.meta
        .apply(AnalyticsEvent::Change {
            name: name.to_string(),
            id: app.id,
            revision: app.revision,
            app: Box::new(next.clone()),
        })
        .await?;
    if let Some(plan) = plan {
        restart_run(s, app, &next, plan).await?;
    }
    Ok(next)
}

/// Starts run `next.runs` of a RUNNING application whose configuration
/// changed from `before`'s: from the last checkpoint of the run it replaces
/// (its last one: that run can no longer take any), or from NOW when the
/// input stream changed. When it cannot start, the application becomes
/// READY with its new configuration.
async fn restart_run(
    s: &Arc<Shared>,
    before: &App,
    next: &App,
    plan: crate::plan::AppPlan,
) -> Result<(), Refusal> {
    let state = s.meta.state();
    let progress = state
        .apps
        .get(&next.name)
        .filter(|a| a.id == next.id)
        .and_then(|a| a.progress.clone());
    let same_input = before.input.as_ref().map(|i| &i.source.resource_arn)
        == next.input.as_ref().map(|i| &i.source.resource_arn);
    let at = match progress {
        Some(p) if same_input => StartAt::Resume(p),
        _ => StartAt::Now,
    };
    if let Err(e) = crate::run::start(s, next, plan, at).await {
        // A later change replaced this run: its call answers for it.
        let state = s.meta.state();
        let replaced =
            (state.apps.get(&next.name)).is_some_and(|a| a.id == next.id && a.runs != next.runs);
        if replaced {
            return Ok(());
        }
        not_started(s, next).await;
        return Err(failed_config(format!(
            "The change to application {} was made, but it could not run with it and is READY: {}",
            next.name, e.message
        )));
    }
    Ok(())
}

fn tags_of(list: Option<&Value>) -> Result<BTreeMap<String, String>, Refusal> {
    let mut tags = BTreeMap::new();
    for t in list.and_then(Value::as_array).into_iter().flatten() {
        let key = t["Key"].as_str().unwrap_or_default();
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(invalid(format!(
                "Tag key {key} is reserved: keys starting with aws: are AWS's."
            )));
        }
        tags.insert(
            key.to_string(),
            t["Value"].as_str().unwrap_or_default().into(),
        );
    }
    Ok(tags)
}

fn too_many_tags() -> Refusal {
    Refusal::client(
        "TooManyTagsException",
        format!(
            "An application may have at most {} tags.",
            limits::TAGS_USER_MAX
        ),
    )
}

pub(crate) async fn create(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let state = s.meta.state();
    if state.apps.contains_key(name) {
        return Err(Error::in_use(format!("Application {name} already exists.")).into());
    }
    if state.apps.len() >= s.config.applications_max {
        // Checked again by the event (creates racing each other).
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "This server keeps at most {} applications.",
                s.config.applications_max
            ),
        )
        .into());
    }
    let now = now();
    let mut app = App {
        name: name.to_string(),
        id: 0,
        description: input.str("ApplicationDescription")?.map(str::to_string),
        version: 1,
        revision: 0,
        created_ms: now,
        updated_ms: now,
        running: false,
        transition: None,
        input: None,
        outputs: Vec::new(),
        references: Vec::new(),
        logging: Vec::new(),
        code: input.str("ApplicationCode")?.unwrap_or("").into(),
        tags: tags_of(input.get("Tags"))?,
        next_part: 0,
        start_position: None,
        runs: 0,
        progress: None,
    };
    if app.tags.len() > limits::TAGS_USER_MAX {
        return Err(too_many_tags());
    }
    let inputs = input.get("Inputs").and_then(Value::as_array);
    let outputs = input.get("Outputs").and_then(Value::as_array);
    let limit = |what: &str, n: usize, max: usize| -> Result<(), Refusal> {
        match n > max {
            true => Err(Error::new(
                ErrorCode::LimitExceeded,
                format!("An application may have at most {max} {what}; {n} were given."),
            )
            .into()),
            false => Ok(()),
        }
    };
    limit("inputs", inputs.map_or(0, Vec::len), limits::INPUTS_MAX)?;
    limit("outputs", outputs.map_or(0, Vec::len), limits::OUTPUTS_MAX)?;
    for v in inputs.into_iter().flatten() {
        let id = app.take_part_id();
        let conf = config::input_of(v, id).map_err(invalid)?;
        check_input(s, &conf)?;
        app.input = Some(conf);
    }
    for v in outputs.into_iter().flatten() {
        let id = app.take_part_id();
        let conf = config::output_of(v, id).map_err(invalid)?;
        check_output(s, &conf)?;
        app.outputs.push(conf);
    }
    for v in input
        .get("CloudWatchLoggingOptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = app.take_part_id();
        app.logging.push(config::logging_of(v, id));
    }
    check_code(s, &app).await?;
    let summary = summary(s, &app, now);
    s.meta
        .apply(AnalyticsEvent::Create {
            app: Box::new(app),
            max: Some(s.config.applications_max),
        })
        .await?;
    Ok(json!({ "ApplicationSummary": summary }))
}

fn summary(s: &Shared, app: &App, now: i64) -> Value {
    json!({
        "ApplicationName": app.name,
        "ApplicationARN": s.arn(&app.name),
        "ApplicationStatus": app.status(now, s.config.state_delay_ms).unwrap_or("DELETING"),
    })
}

/// `ApplicationDetail`.
fn detail(s: &Shared, app: &App, now: i64) -> Value {
    let mut d = summary(s, app, now);
    let start = app.start_position.as_deref();
    d["ApplicationVersionId"] = json!(app.version);
    d["CreateTimestamp"] = seconds(app.created_ms);
    d["LastUpdateTimestamp"] = seconds(app.updated_ms);
    d["ApplicationCode"] = json!(&*app.code);
    if let Some(desc) = &app.description {
        d["ApplicationDescription"] = json!(desc);
    }
    d["InputDescriptions"] = app.input.iter().map(|i| i.description(start)).collect();
    d["OutputDescriptions"] = app.outputs.iter().map(|o| o.description()).collect();
    d["ReferenceDataSourceDescriptions"] = app.references.iter().map(|r| r.description()).collect();
    d["CloudWatchLoggingOptionDescriptions"] =
        app.logging.iter().map(|l| l.description()).collect();
    d
}

pub(crate) fn describe(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let state = s.meta.state();
    let app = state.live(name)?;
    Ok(json!({ "ApplicationDetail": detail(s, app, now()) }))
}

pub(crate) fn list(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let limit = input
        .int("Limit")?
        .map_or(limits::LIST_LIMIT_DEFAULT, |n| n as usize);
    let after = input.str("ExclusiveStartApplicationName")?;
    let state = s.meta.state();
    let now = now();
    let mut shown = state
        .apps
        .values()
        .filter(|a| after.is_none_or(|after| a.name.as_str() > after))
        .filter(|a| a.status(now, s.config.state_delay_ms).is_some());
    let page: Vec<Value> = shown
        .by_ref()
        .take(limit)
        .map(|a| summary(s, a, now))
        .collect();
    Ok(json!({
        "ApplicationSummaries": page,
        "HasMoreApplications": shown.next().is_some(),
    }))
}

pub(crate) async fn delete(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let created_ms = input.timestamp_ms("CreateTimestamp")?.unwrap_or(i64::MIN);
    let state = s.meta.state();
    let app = state.live(name)?;
    // To the ms (boto3, the JS SDK), or to the second when whole seconds
    // are given (the AWS CLI v1 sends seconds).
    let same = created_ms.abs_diff(app.created_ms) <= 1
        || (created_ms.rem_euclid(1000) == 0
            && created_ms.div_euclid(1000) == app.created_ms.div_euclid(1000));
    if !same {
        return Err(Error::new(
            ErrorCode::ConcurrentModification,
            format!(
                "CreateTimestamp does not match application {name}'s: it was created at {}.",
                app.created_ms as f64 / 1000.0
            ),
        )
        .into());
    }
    let now = now();
    let mut next = app.clone();
    next.transition = Some((Transition::Deleting, now));
    s.meta
        .apply(AnalyticsEvent::Change {
            name: name.to_string(),
            id: app.id,
            revision: app.revision,
            app: Box::new(next),
        })
        .await?;
    let (name, id) = (name.to_string(), app.id);
    if s.config.state_delay_ms == 0 {
        // Gone before the answer: a Create of the same name right after it
        // must not find it.
        s.purge_later(name, id, now).await;
    } else {
        let shared = s.clone();
        rt::spawn(async move { shared.purge_later(name, id, now).await });
    }
    Ok(json!({}))
}

/// The part with id `id`, or ResourceNotFoundException.
pub(crate) fn part<'a, T>(
    parts: &'a mut [T],
    id: &str,
    id_of: impl Fn(&T) -> &str,
    what: &str,
) -> Result<&'a mut T, Refusal> {
    parts.iter_mut().find(|p| id_of(p) == id).ok_or_else(|| {
        Error::not_found(format!("The application has no {what} with id {id}.")).into()
    })
}

pub(crate) async fn update(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let version = input.int("CurrentApplicationVersionId")?.unwrap_or(0) as u64;
    let update = input
        .get("ApplicationUpdate")
        .cloned()
        .unwrap_or(Value::Null);
    let has = |k: &str| {
        update
            .get(k)
            .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
    };
    if ![
        "InputUpdates",
        "ApplicationCodeUpdate",
        "OutputUpdates",
        "ReferenceDataSourceUpdates",
        "CloudWatchLoggingOptionUpdates",
    ]
    .iter()
    .any(|k| has(k))
    {
        return Err(invalid(
            "ApplicationUpdate must contain at least one update.",
        ));
    }
    let list = |k: &str| update[k].as_array().cloned().unwrap_or_default();
    change(s, name, Some(version), Code::Check, |app| {
        for u in list("InputUpdates") {
            let id = u["InputId"].as_str().unwrap_or_default();
            let mut inputs: Vec<_> = app.input.iter_mut().collect();
            let current = part(&mut inputs, id, |i| &i.id, "input")?;
            let next = current.updated(&u).map_err(invalid)?;
            check_input(s, &next)?;
            **current = next;
        }
        if let Some(code) = update["ApplicationCodeUpdate"].as_str() {
            app.code = code.into();
        }
        for u in list("OutputUpdates") {
            let id = u["OutputId"].as_str().unwrap_or_default();
            let current = part(&mut app.outputs, id, |o| &o.id, "output")?;
            let next = current.updated(&u).map_err(invalid)?;
            check_output(s, &next)?;
            *current = next;
        }
        for u in list("ReferenceDataSourceUpdates") {
            let id = u["ReferenceId"].as_str().unwrap_or_default();
            let current = part(&mut app.references, id, |r| &r.id, "reference data source")?;
            *current = current.updated(&u).map_err(invalid)?;
        }
        for u in list("CloudWatchLoggingOptionUpdates") {
            let id = u["CloudWatchLoggingOptionId"].as_str().unwrap_or_default();
            let current = part(&mut app.logging, id, |l| &l.id, "CloudWatch logging option")?;
            *current = current.updated(&u);
        }
        check_reference_names(app)
    })
    .await?;
    Ok(json!({}))
}

pub(crate) async fn start(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let state = s.meta.state();
    let app = state.live(name)?;
    let status = app
        .status(now(), s.config.state_delay_ms)
        .unwrap_or("DELETING");
    if status != "READY" {
        return Err(in_use(name, status));
    }
    let Some(app_input) = &app.input else {
        return Err(Refusal::client(
            "InvalidApplicationConfigurationException",
            format!("Application {name} has no input to read."),
        ));
    };
    let configs = input
        .get("InputConfigurations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut position = "NOW".to_string();
    for c in &configs {
        let id = c["Id"].as_str().unwrap_or_default();
        if id != app_input.id {
            return Err(invalid(format!(
                "Application {name} has no input with id {id}."
            )));
        }
        if let Some(p) = c["InputStartingPositionConfiguration"]["InputStartingPosition"].as_str() {
            position = p.to_string();
        }
    }
    let at = match position.as_str() {
        "NOW" => StartAt::Now,
        "TRIM_HORIZON" => StartAt::TrimHorizon,
        // Where the last run's checkpoint left off; an application that
        // never ran starts at NOW.
        "LAST_STOPPED_POINT" => match &app.progress {
            Some(p) => StartAt::Resume(p.clone()),
            None => StartAt::Now,
        },
        other => {
            return Err(invalid(format!(
                "InputStartingPosition {other} is not one of NOW, TRIM_HORIZON, LAST_STOPPED_POINT."
            )));
        }
    };
    let plan = plan_code(s, app)
        .await?
        .ok_or_else(|| failed_config(format!("Application {name} has no input to read.")))?;
    runnable(s, app, &plan)?;
    let planned = app.clone();
    let started = change(s, name, None, Code::Unchanged, |next| {
        // Another Start came first.
        if next.running {
            return Err(in_use(name, "RUNNING"));
        }
        // The plan is of the application as it was read: its code, input,
        // outputs or reference data changed since (while the plan was
        // made), it is not the one to run. Tags and logging options may.
        if next.code != planned.code
            || next.input != planned.input
            || next.outputs != planned.outputs
            || next.references != planned.references
        {
            return Err(Error::in_use(format!(
                "Application {name} changed while it was starting; start it again."
            ))
            .into());
        }
        next.running = true;
        next.transition = Some((Transition::Starting, now()));
        next.start_position = Some(position.clone());
        next.runs += 1;
        Ok(())
    })
    .await?;
    if let Err(e) = crate::run::start(s, &started, plan, at).await {
        not_started(s, &started).await;
        return Err(failed_config(format!(
            "Application {name} cannot start: {}",
            e.message
        )));
    }
    Ok(json!({}))
}

/// Back to READY after a Start whose run could not begin: only if the
/// application is still in that run (a Stop and another Start may have
/// come since), whatever its transition shows.
async fn not_started(s: &Shared, started: &App) {
    // A change racing this one (a tag) moves the revision: read again.
    for _ in 0..8 {
        let state = s.meta.state();
        let Some(app) = state.apps.get(&started.name) else {
            return;
        };
        if app.id != started.id || app.runs != started.runs || !app.running {
            return;
        }
        let mut next = app.clone();
        next.running = false;
        next.transition = None;
        let applied = s
            .meta
            .apply(AnalyticsEvent::Change {
                name: app.name.clone(),
                id: app.id,
                revision: app.revision,
                app: Box::new(next),
            })
            .await;
        if applied.is_ok() {
            return;
        }
    }
    tracing::warn!(
        "analytics application {}: a failed start could not be undone; stop it",
        started.name
    );
}

fn failed_config(message: impl Into<String>) -> Refusal {
    Refusal::client("InvalidApplicationConfigurationException", message)
}

/// What StartApplication needs beyond READY: an input (a data stream, or a
/// delivery stream whose records are read) that exists, with a
/// preprocessing function that resolves if it has one, and outputs writing a stream the code creates, or
/// error_stream, into a data stream or a Direct PUT delivery stream that
/// exists, or to a function that resolves.
fn runnable(s: &Shared, app: &App, plan: &crate::plan::AppPlan) -> Result<(), Refusal> {
    let name = &app.name;
    let Some(input) = &app.input else {
        return Err(failed_config(format!(
            "Application {name} has no input to read."
        )));
    };
    if let Some(p) = &input.processing {
        let c = &s.config;
        riffle_lambda::function::resolve(
            &p.lambda.resource_arn,
            &c.functions,
            &c.region,
            &c.account,
        )
        .map_err(|e| failed_config(format!("The input preprocessor of application {name}: {e}")))?;
    }
    let records = |arn: &str| {
        crate::run::records_of_arn(s, arn).filter(|(stream, _)| s.engine.stream_id(stream).is_ok())
    };
    if records(&input.source.resource_arn).is_none() {
        return Err(failed_config(format!(
            "The input stream {} of application {name} does not exist.",
            input.source.resource_arn
        )));
    }
    for o in &app.outputs {
        let made = plan
            .streams
            .iter()
            .any(|st| st.kind == crate::plan::StreamKind::Code && st.name == o.name);
        if o.name != crate::limits::ERROR_STREAM && !made {
            return Err(failed_config(format!(
                "Output {} of application {name} names no in-application stream the code creates (names are case-sensitive).",
                o.name
            )));
        }
        if o.kind == crate::config::DestinationKind::Lambda {
            let c = &s.config;
            let arn = &o.destination.resource_arn;
            riffle_lambda::function::resolve(arn, &c.functions, &c.region, &c.account)
                .map_err(|e| failed_config(format!("Output {}: {e}", o.name)))?;
            continue;
        }
        match records(&o.destination.resource_arn) {
            Some((_, true)) => {}
            Some((_, false)) => {
                return Err(failed_config(format!(
                    "The output delivery stream {} of application {name} takes no puts: its \
                     source is a Kinesis stream (an application writes Direct PUT delivery \
                     streams).",
                    o.destination.resource_arn
                )));
            }
            None => {
                return Err(failed_config(format!(
                    "The output stream {} of application {name} does not exist.",
                    o.destination.resource_arn
                )));
            }
        }
    }
    Ok(())
}

pub(crate) async fn stop(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = input.required_str("ApplicationName")?;
    let state = s.meta.state();
    let app = state.live(name)?;
    let status = app
        .status(now(), s.config.state_delay_ms)
        .unwrap_or("DELETING");
    if status != "RUNNING" {
        return Err(in_use(name, status));
    }
    // The run's tasks see the change before their next read.
    change(s, name, None, Code::Unchanged, |next| {
        next.running = false;
        next.transition = Some((Transition::Stopping, now()));
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

/// The application a tag operation's `ResourceARN` names.
fn tagged<'a>(s: &Shared, input: &Input<'a>) -> Result<&'a str, Refusal> {
    let arn = input.required_str("ResourceARN")?;
    s.name_of_arn(arn)
        .ok_or_else(|| invalid(format!("{arn} is not an application ARN of this server.")))
}

pub(crate) async fn tag(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = tagged(s, &input)?;
    let tags = tags_of(input.get("Tags"))?;
    change(s, name, None, Code::Unchanged, |app| {
        app.tags.extend(tags);
        match app.tags.len() > limits::TAGS_USER_MAX {
            true => Err(too_many_tags()),
            false => Ok(()),
        }
    })
    .await?;
    Ok(json!({}))
}

pub(crate) async fn untag(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = tagged(s, &input)?;
    let keys = input.string_list("TagKeys")?;
    change(s, name, None, Code::Unchanged, |app| {
        for k in &keys {
            app.tags.remove(k);
        }
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

pub(crate) fn list_tags(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let name = tagged(s, &input)?;
    let state = s.meta.state();
    let app = state.live(name)?;
    let tags: Vec<Value> = app
        .tags
        .iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "Tags": tags }))
}
