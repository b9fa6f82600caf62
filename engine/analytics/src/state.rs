//! The applications' durable state, kept in the service's metadata log
//! (`<data-dir>/meta/analytics/`): every application's configuration, code,
//! versions, tags and status. Pure: `check` looks at the state and the
//! event only (the clock comes in the events).
//!
//! Every change but a creation replaces an application whole and names the
//! `revision` it was made from, so two calls racing on one application
//! cannot both pass `check` (the loser answers
//! ConcurrentModificationException). `ApplicationVersionId` is the version
//! AWS shows, bumped by the operations that change the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};

use crate::config::{InputConf, LoggingConf, OutputConf, ReferenceConf};
use crate::progress::Progress;

/// What an application is doing between its settled states (READY and
/// RUNNING, by `running`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    Starting,
    Stopping,
    Updating,
    Deleting,
}

impl Transition {
    pub fn aws_name(self) -> &'static str {
        match self {
            Transition::Starting => "STARTING",
            Transition::Stopping => "STOPPING",
            Transition::Updating => "UPDATING",
            Transition::Deleting => "DELETING",
        }
    }
}

/// One application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    /// This incarnation (a task of an older one never matches).
    pub id: u64,
    pub description: Option<String>,
    /// `ApplicationVersionId`: 1 at creation, +1 per configuration change.
    pub version: u64,
    /// Every change, configuration or not (the guard against races).
    pub revision: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// RUNNING once its transition is over (else READY).
    pub running: bool,
    /// The transition under way and when it began (ms).
    pub transition: Option<(Transition, i64)>,
    pub input: Option<InputConf>,
    pub outputs: Vec<OutputConf>,
    pub references: Vec<ReferenceConf>,
    pub logging: Vec<LoggingConf>,
    /// `ApplicationCode` (shared: the state is cloned with every change).
    pub code: Arc<str>,
    pub tags: BTreeMap<String, String>,
    /// The number of the next id given to an input, output, reference data
    /// source or logging option (`"<n>.1"`; never reused).
    pub next_part: u32,
    /// The `InputStartingPosition` of the last start.
    pub start_position: Option<String>,
    /// How many times the application was started: a run's tasks stop when
    /// the application stops or starts again.
    #[serde(default)]
    pub runs: u64,
    /// The last checkpoint of its runs (progress.rs). Written only by
    /// [`AnalyticsEvent::Checkpoint`]: other changes keep it.
    #[serde(default)]
    pub progress: Option<Box<Progress>>,
}

impl App {
    /// The next part id, `"<n>.1"` (AWS's ids look like `1.1`, `2.1`).
    pub fn take_part_id(&mut self) -> String {
        self.next_part += 1;
        format!("{}.1", self.next_part)
    }

    /// The status shown at `now_ms`; None once deleted.
    pub fn status(&self, now_ms: i64, delay_ms: u64) -> Option<&'static str> {
        match self.transition {
            Some((t, since))
                if now_ms < since.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)) =>
            {
                Some(t.aws_name())
            }
            Some((Transition::Deleting, _)) => None,
            _ => Some(if self.running { "RUNNING" } else { "READY" }),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsState {
    /// By name.
    pub apps: BTreeMap<String, App>,
    /// The next incarnation id.
    pub next_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AnalyticsEvent {
    /// A new application; it gets `next_id` as its id and revision 0. Refused
    /// when `max` applications exist already (the server's limit: checked
    /// here, so creates racing each other cannot pass it together).
    Create {
        app: Box<App>,
        #[serde(default)]
        max: Option<usize>,
    },
    /// Application `name` (incarnation `id`, at `revision`) becomes `app`
    /// (its name and id unchanged; its revision becomes `revision + 1`).
    Change {
        name: String,
        id: u64,
        revision: u64,
        app: Box<App>,
    },
    /// The application is gone (after it was marked Deleting).
    Purge { name: String, id: u64 },
    /// Run `progress.run` of application `name` (incarnation `id`) took a
    /// checkpoint. Refused unless that run is the application's current
    /// one and it is running (a late checkpoint of a stopped run is never
    /// kept).
    Checkpoint {
        name: String,
        id: u64,
        progress: Box<Progress>,
    },
}

/// ResourceNotFoundException's text (**unverified**: AWS's exact words are
/// not published).
pub fn not_found(name: &str) -> Error {
    Error::not_found(format!("Application {name} is not found."))
}

impl AnalyticsState {
    /// Application `name`, unless it is being deleted.
    pub fn live(&self, name: &str) -> Result<&App, Error> {
        self.apps
            .get(name)
            .filter(|a| !matches!(a.transition, Some((Transition::Deleting, _))))
            .ok_or_else(|| not_found(name))
    }
}

/// What `verify` asserts of an application, checked before it is applied.
fn versioned(app: &App) -> Result<(), Error> {
    match app.version {
        0 => Err(Error::internal(format!(
            "application {} would have version 0",
            app.name
        ))),
        _ => Ok(()),
    }
}

impl StateMachine for AnalyticsState {
    type Event = AnalyticsEvent;

    fn check(&self, event: &AnalyticsEvent) -> Result<(), Error> {
        match event {
            AnalyticsEvent::Create { app, max } => {
                if self.apps.contains_key(&app.name) {
                    return Err(Error::in_use(format!(
                        "Application {} already exists.",
                        app.name
                    )));
                }
                if let Some(max) = max
                    && self.apps.len() >= *max
                {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("This server keeps at most {max} applications."),
                    ));
                }
                versioned(app)
            }
            AnalyticsEvent::Change {
                name,
                id,
                revision,
                app,
            } => {
                let current = self
                    .apps
                    .get(name)
                    .filter(|a| a.id == *id)
                    .ok_or_else(|| not_found(name))?;
                if app.name != *name || app.id != *id {
                    return Err(Error::internal(
                        "a change may not give an application another name or id",
                    ));
                }
                match current.revision == *revision {
                    true => versioned(app),
                    false => Err(Error::new(
                        ErrorCode::ConcurrentModification,
                        format!(
                            "Application {name} was changed by another call at the same time; try again."
                        ),
                    )),
                }
            }
            AnalyticsEvent::Purge { name, id } => match self.apps.get(name) {
                Some(a)
                    if a.id == *id && matches!(a.transition, Some((Transition::Deleting, _))) =>
                {
                    Ok(())
                }
                _ => Err(Error::invalid(format!(
                    "application {name} is not being deleted"
                ))),
            },
            AnalyticsEvent::Checkpoint { name, id, progress } => match self.apps.get(name) {
                Some(a) if a.id == *id && a.running && a.runs == progress.run => Ok(()),
                _ => Err(Error::invalid(format!(
                    "run {} of application {name} is not running",
                    progress.run
                ))),
            },
        }
    }

    fn apply(&mut self, event: AnalyticsEvent) {
        match event {
            AnalyticsEvent::Create { mut app, .. } => {
                app.id = self.next_id;
                app.revision = 0;
                self.next_id += 1;
                self.apps.insert(app.name.clone(), *app);
            }
            AnalyticsEvent::Change {
                name,
                revision,
                mut app,
                ..
            } => {
                app.revision = revision + 1;
                // A checkpoint taken since the change read the application
                // stays.
                app.progress = self.apps.get(&name).and_then(|a| a.progress.clone());
                self.apps.insert(name, *app);
            }
            AnalyticsEvent::Purge { name, .. } => {
                self.apps.remove(&name);
            }
            AnalyticsEvent::Checkpoint { name, progress, .. } => {
                if let Some(a) = self.apps.get_mut(&name) {
                    a.progress = Some(progress);
                }
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        for (name, a) in &self.apps {
            if a.name != *name {
                return Err(format!("application {} is filed under {name}", a.name));
            }
            if a.id >= self.next_id {
                return Err(format!(
                    "application {name} has id {} at or past next_id {}",
                    a.id, self.next_id
                ));
            }
            if a.version == 0 {
                return Err(format!("application {name} has version 0"));
            }
        }
        Ok(())
    }
}
