//! [`AnalyticsState`] through the metadata log's crash, fault and corruption
//! suite ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`AnalyticsEvent`] (applications created with differing parts, code of a
//! few bytes or a few KB, tags; changed as the operations change them:
//! configuration updates bumping the version, starts and stops, parts added
//! and removed, tags; marked Deleting, purged, and their names made again as
//! new incarnations; creates of a name in use, changes from a stale revision,
//! of a stale incarnation or renaming, purges of an application not being
//! deleted, all refused), crashes at every sync, torn and corrupt frames,
//! corrupt snapshots, injected I/O failures. Then `check`'s refusals one by
//! one with their codes and messages, what `apply` guarantees and `verify`
//! catches, [`App::status`] and [`App::take_part_id`].
//!
//! The suite runs on `AnalyticsState` itself. Lambda's suite needs a
//! test-only view (`engine/lambda/src/state_tests.rs`, `Logged`) for two
//! reasons that do not hold here: `AnalyticsState` derives `PartialEq`, and
//! a `Create` is numbered by `apply` (it gets `next_id` whatever id it
//! carries), so a `Create` of a name the workload never uses applies to any
//! state it leads to (`Subject::fresh_event`).
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-analytics --lib state_tests`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use riffle_protocol::ErrorCode;
use riffle_store::metalog::testkit::{Memory, Subject, workload};
use riffle_store::metalog::{EVENT_SIZE_MAX, FRAME_PAYLOAD_SIZE_MAX, StateMachine};
use riffle_store::testkit::{Rng, seeds};

use crate::config::{
    CsvMapping, DestinationKind, InputConf, JsonMapping, LoggingConf, MappingParameters,
    OutputConf, Processing, RecordColumn, RecordFormat, ReferenceConf, ResourceRole, SourceKind,
    SourceSchema, check_schema,
};
use crate::limits::{OUTPUTS_MAX, REFERENCE_SOURCES_MAX};
use crate::state::{AnalyticsEvent, AnalyticsState, App, Transition, not_found};

// One test per check: `state_tests::<check>::analytics`.
riffle_store::metalog_suite!(analytics: AnalyticsState);

/// The applications' names: few, so a purged name is made again (a new
/// incarnation) and stale incarnations' events come up.
const NAMES: &[&str] = &["orders_app", "clicks.v2", "fraud-score", "A1"];
/// The name of `fresh_event`'s and `oversized_event`'s creates: never in the
/// workload, so they apply to any state it leads to.
const FRESH: &str = "after";
const BIG: &str = "big";
/// Tag keys: few, so tags are replaced and removed.
const TAG_KEYS: &[&str] = &["team", "env", "cost-center", "k3", "k4", "k5"];
/// Logging options an application gets at most here (AWS sets no lower
/// bound we rely on; this keeps an application's size bounded).
const LOGGING_MAX: usize = 3;
const T0_MS: i64 = 1_700_000_000_000;
const ACCOUNT: &str = "000000000000";

fn role_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/kinesis-analytics")
}

/// Mostly short, sometimes long (a tag's value, a description).
fn text(rng: &mut Rng, long: u64) -> String {
    let len = match rng.range(0, 6) {
        0 => rng.range(long / 2, long),
        _ => rng.range(1, 12),
    };
    (0..len)
        .map(|_| *rng.pick(&['a', 'Z', '0', '-', '_', 'é', ' ', '"', '\n']))
        .collect()
}

/// `ApplicationCode`: mostly a pump or two, sometimes a few KB of them.
fn code(rng: &mut Rng) -> Arc<str> {
    let len = match rng.range(0, 4) {
        0 => rng.range(2000, 6000) as usize,
        1 => 0,
        _ => 1,
    };
    let mut sql = String::new();
    let mut n = 0;
    while sql.len() < len {
        n += 1;
        sql.push_str(&format!(
            "CREATE OR REPLACE STREAM \"DEST_{n}\" (ticker VARCHAR(4), price DOUBLE);\n\
             CREATE OR REPLACE PUMP \"PUMP_{n}\" AS INSERT INTO \"DEST_{n}\"\n  \
             SELECT STREAM ticker, price FROM \"SOURCE_SQL_STREAM_001\" WHERE price > {n};\n"
        ));
    }
    sql.into()
}

/// A `SourceSchema` that passes `check_schema`: JSON or CSV, one to four
/// columns.
fn schema(rng: &mut Rng) -> SourceSchema {
    let json = rng.chance(60);
    let columns = (0..rng.range(1, 4))
        .map(|i| RecordColumn {
            name: format!("COL_{i}"),
            mapping: json.then(|| format!("$.c{i}")),
            sql_type: rng
                .pick(&["VARCHAR(64)", "INTEGER", "DOUBLE", "TIMESTAMP", "BOOLEAN"])
                .to_string(),
        })
        .collect();
    let (kind, mapping) = match json {
        true => (
            "JSON",
            MappingParameters {
                json: Some(JsonMapping {
                    row_path: "$".into(),
                }),
                csv: None,
            },
        ),
        false => (
            "CSV",
            MappingParameters {
                json: None,
                csv: Some(CsvMapping {
                    row_delimiter: "\n".into(),
                    column_delimiter: ",".into(),
                }),
            },
        ),
    };
    SourceSchema {
        format: RecordFormat {
            kind: kind.into(),
            mapping: Some(mapping),
        },
        encoding: rng.chance(50).then(|| "UTF-8".to_string()),
        columns,
    }
}

/// An input of one to three in-application streams.
fn input(rng: &mut Rng, id: String) -> InputConf {
    let (source_kind, source) = match rng.chance(70) {
        true => (
            SourceKind::KinesisStreams,
            format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/ticks"),
        ),
        false => (
            SourceKind::KinesisFirehose,
            format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/ticks"),
        ),
    };
    InputConf {
        id,
        name_prefix: "SOURCE_SQL_STREAM".into(),
        source_kind,
        source: ResourceRole {
            resource_arn: source,
            role_arn: role_arn(),
        },
        processing: rng.chance(25).then(|| Processing {
            lambda: ResourceRole {
                resource_arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:pre"),
                role_arn: role_arn(),
            },
        }),
        schema: schema(rng),
        parallelism: rng.range(1, 3) as u32,
    }
}

fn output(rng: &mut Rng, id: String) -> OutputConf {
    let (kind, destination) = match rng.range(0, 2) {
        0 => (
            DestinationKind::KinesisStreams,
            format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/out"),
        ),
        1 => (
            DestinationKind::KinesisFirehose,
            format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/out"),
        ),
        _ => (
            DestinationKind::Lambda,
            format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:sink"),
        ),
    };
    OutputConf {
        id,
        name: format!("DEST_{}", rng.range(1, 3)),
        kind,
        destination: ResourceRole {
            resource_arn: destination,
            role_arn: role_arn(),
        },
        format: rng.pick(&["JSON", "CSV"]).to_string(),
    }
}

fn reference(rng: &mut Rng, id: String) -> ReferenceConf {
    ReferenceConf {
        id,
        table_name: "COMPANIES".into(),
        bucket_arn: "arn:aws:s3:::reference-bucket".into(),
        file_key: format!("companies/{}.csv", text(rng, 200)),
        role_arn: role_arn(),
        schema: schema(rng),
    }
}

fn logging(rng: &mut Rng, id: String) -> LoggingConf {
    LoggingConf {
        id,
        log_stream_arn: format!(
            "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:kda:log-stream:s{}",
            rng.range(0, 9)
        ),
        role_arn: role_arn(),
    }
}

fn tags(rng: &mut Rng) -> BTreeMap<String, String> {
    (0..rng.range(0, 3))
        .map(|_| (rng.pick(TAG_KEYS).to_string(), text(rng, 256)))
        .collect()
}

/// An application as `ops::create` makes it (references too, which the
/// operations add by a change: the state takes them either way). The id
/// it carries is whatever the caller read; `apply` numbers it.
fn app(rng: &mut Rng, name: &str, now_ms: i64) -> App {
    let mut app = App {
        name: name.to_string(),
        id: rng.range(0, 20),
        description: rng.chance(40).then(|| text(rng, 1000)),
        version: 1,
        revision: 0,
        created_ms: now_ms,
        updated_ms: now_ms,
        running: false,
        transition: None,
        input: None,
        outputs: Vec::new(),
        references: Vec::new(),
        logging: Vec::new(),
        code: code(rng),
        tags: tags(rng),
        next_part: 0,
        start_position: None,
        runs: 0,
        progress: None,
    };
    if rng.chance(60) {
        let id = app.take_part_id();
        app.input = Some(input(rng, id));
    }
    for _ in 0..rng.range(0, OUTPUTS_MAX as u64) {
        let id = app.take_part_id();
        app.outputs.push(output(rng, id));
    }
    if rng.chance(30) {
        let id = app.take_part_id();
        app.references.push(reference(rng, id));
    }
    for _ in 0..rng.range(0, 1) {
        let id = app.take_part_id();
        app.logging.push(logging(rng, id));
    }
    app
}

/// Adds a part the application has room for (an input, an output, a
/// reference data source or a logging option).
fn add_part(rng: &mut Rng, next: &mut App) {
    let mut room = Vec::new();
    if next.input.is_none() {
        room.push(0);
    }
    if next.outputs.len() < OUTPUTS_MAX {
        room.push(1);
    }
    if next.references.len() < REFERENCE_SOURCES_MAX {
        room.push(2);
    }
    if next.logging.len() < LOGGING_MAX {
        room.push(3);
    }
    let Some(&kind) = (!room.is_empty()).then(|| rng.pick(&room)) else {
        return;
    };
    let id = next.take_part_id();
    match kind {
        0 => next.input = Some(input(rng, id)),
        1 => next.outputs.push(output(rng, id)),
        2 => next.references.push(reference(rng, id)),
        _ => next.logging.push(logging(rng, id)),
    }
}

/// Removes an output, a reference data source, a logging option or the
/// input's preprocessor, if the application has one; else adds a part.
fn remove_part(rng: &mut Rng, next: &mut App) {
    let mut present = Vec::new();
    if !next.outputs.is_empty() {
        present.push(0);
    }
    if !next.references.is_empty() {
        present.push(1);
    }
    if !next.logging.is_empty() {
        present.push(2);
    }
    if next.input.as_ref().is_some_and(|i| i.processing.is_some()) {
        present.push(3);
    }
    let Some(&kind) = (!present.is_empty()).then(|| rng.pick(&present)) else {
        return add_part(rng, next);
    };
    match kind {
        0 => {
            let i = rng.range(0, next.outputs.len() as u64 - 1) as usize;
            next.outputs.remove(i);
        }
        1 => next.references.clear(),
        2 => {
            let i = rng.range(0, next.logging.len() as u64 - 1) as usize;
            next.logging.remove(i);
        }
        _ => {
            if let Some(i) = next.input.as_mut() {
                i.processing = None;
            }
        }
    }
}

/// Application `a` as one of the operations makes it from the state it
/// read: a configuration change bumps the version (and shows UPDATING on a
/// running application); starts, stops and tags do not.
fn edited(rng: &mut Rng, a: &App, now_ms: i64) -> App {
    let mut next = a.clone();
    let configuration = match rng.range(0, 7) {
        0 => {
            next.running = !a.running;
            let transition = match next.running {
                true => Transition::Starting,
                false => Transition::Stopping,
            };
            next.transition = Some((transition, now_ms));
            if next.running {
                next.start_position = Some(
                    rng.pick(&["NOW", "TRIM_HORIZON", "LAST_STOPPED_POINT"])
                        .to_string(),
                );
            }
            false
        }
        1 => {
            next.code = code(rng);
            true
        }
        2 => {
            add_part(rng, &mut next);
            true
        }
        3 => {
            remove_part(rng, &mut next);
            true
        }
        4 => {
            next.tags.extend(tags(rng));
            false
        }
        5 => {
            for _ in 0..rng.range(1, 2) {
                next.tags.remove(*rng.pick(TAG_KEYS));
            }
            false
        }
        _ => {
            match next.outputs.first_mut() {
                Some(o) => o.format = rng.pick(&["JSON", "CSV"]).to_string(),
                None => next.description = Some(text(rng, 1000)),
            }
            if let Some(i) = next.input.as_mut() {
                i.parallelism = rng.range(1, 3) as u32;
            }
            true
        }
    };
    if configuration {
        next.version += 1;
        next.updated_ms = now_ms;
        if next.running {
            next.transition = Some((Transition::Updating, now_ms));
        }
    }
    next
}

fn change(a: &App, next: App) -> AnalyticsEvent {
    AnalyticsEvent::Change {
        name: a.name.clone(),
        id: a.id,
        revision: a.revision,
        app: Box::new(next),
    }
}

fn is_deleting(a: &App) -> bool {
    matches!(a.transition, Some((Transition::Deleting, _)))
}

/// An incarnation that is not `current`: one not yet made, or an earlier
/// one (of this name or another).
fn stale_id(rng: &mut Rng, state: &AnalyticsState, current: u64) -> u64 {
    match current {
        0 => state.next_id + rng.range(0, 1),
        _ if rng.chance(50) => state.next_id,
        _ => rng.range(0, current - 1),
    }
}

fn random_event(state: &AnalyticsState, rng: &mut Rng, step: u64) -> AnalyticsEvent {
    let now_ms = T0_MS + step as i64 * 1000;
    let name = *rng.pick(NAMES);
    let Some(a) = state.apps.get(name) else {
        // Mostly a create; sometimes a change or a purge of an application
        // not there (never made, or purged): refused.
        let id = rng.range(0, state.next_id);
        return match rng.range(0, 11) {
            0 => {
                let mut gone = app(rng, name, now_ms);
                gone.id = id;
                AnalyticsEvent::Change {
                    name: name.to_string(),
                    id,
                    revision: rng.range(0, 3),
                    app: Box::new(gone),
                }
            }
            1 => AnalyticsEvent::Purge {
                name: name.to_string(),
                id,
            },
            _ => AnalyticsEvent::Create {
                max: None,
                app: Box::new(app(rng, name, now_ms)),
            },
        };
    };
    if is_deleting(a) {
        // Mostly purged (the service's purge once DELETING was shown);
        // sometimes a create of its name or a purge of another incarnation.
        return match rng.range(0, 9) {
            0 => AnalyticsEvent::Create {
                max: None,
                app: Box::new(app(rng, name, now_ms)),
            },
            1 => AnalyticsEvent::Purge {
                name: name.to_string(),
                id: stale_id(rng, state, a.id),
            },
            _ => AnalyticsEvent::Purge {
                name: name.to_string(),
                id: a.id,
            },
        };
    }
    match rng.range(0, 21) {
        // A checkpoint of its current run (refused unless it runs) or of
        // another (refused).
        19 | 20 => {
            let run = match rng.chance(30) {
                true => a.runs + 1,
                false => a.runs,
            };
            let mut progress = crate::progress::Progress::fresh(run, now_ms, [(0, step)]);
            progress.watermark_ms = now_ms;
            AnalyticsEvent::Checkpoint {
                name: name.to_string(),
                id: a.id,
                progress: Box::new(progress),
            }
        }
        // Refused: the name is in use.
        0 => AnalyticsEvent::Create {
            max: None,
            app: Box::new(app(rng, name, now_ms)),
        },
        // Refused: another call changed it since (ConcurrentModification).
        1 => {
            let next = edited(rng, a, now_ms);
            let revision = match a.revision {
                0 => 1 + rng.range(0, 2),
                r if rng.chance(70) => r - 1,
                r => r + 1,
            };
            change_to(name, a.id, revision, next)
        }
        // Refused: a stale incarnation (not found).
        2 => {
            let id = stale_id(rng, state, a.id);
            let mut next = edited(rng, a, now_ms);
            next.id = id;
            change_to(name, id, a.revision, next)
        }
        // Refused: a change naming another application inside (internal).
        3 => {
            let mut next = edited(rng, a, now_ms);
            match rng.chance(70) {
                true => next.name = rng.pick(&[FRESH, "orders_app2", "A1 "]).to_string(),
                false => next.id = a.id + 1,
            }
            change(a, next)
        }
        // Refused: not being deleted.
        4 => AnalyticsEvent::Purge {
            name: name.to_string(),
            id: a.id,
        },
        // DeleteApplication.
        5 | 6 => {
            let mut next = a.clone();
            next.transition = Some((Transition::Deleting, now_ms));
            change(a, next)
        }
        _ => change(a, edited(rng, a, now_ms)),
    }
}

impl Subject for AnalyticsState {
    const NAME: &'static str = "analytics";

    fn random_event(state: &AnalyticsState, rng: &mut Rng, step: u64) -> AnalyticsEvent {
        random_event(state, rng, step)
    }

    fn fresh_event() -> AnalyticsEvent {
        AnalyticsEvent::Create {
            max: None,
            app: Box::new(app(&mut Rng::new(7), FRESH, T0_MS)),
        }
    }

    fn oversized_event() -> AnalyticsEvent {
        let mut big = app(&mut Rng::new(8), BIG, T0_MS);
        big.code = "x".repeat(FRAME_PAYLOAD_SIZE_MAX).into();
        AnalyticsEvent::Create {
            app: Box::new(big),
            max: None,
        }
    }
}

fn variant(event: &AnalyticsEvent) -> &'static str {
    match event {
        AnalyticsEvent::Create { .. } => "Create",
        AnalyticsEvent::Change { .. } => "Change",
        AnalyticsEvent::Purge { .. } => "Purge",
        AnalyticsEvent::Checkpoint { .. } => "Checkpoint",
    }
}

/// Every part id of `a`, in no particular order.
fn part_ids(a: &App) -> Vec<&str> {
    let input = a.input.iter().map(|i| i.id.as_str());
    let outputs = a.outputs.iter().map(|o| o.id.as_str());
    let references = a.references.iter().map(|r| r.id.as_str());
    let logging = a.logging.iter().map(|l| l.id.as_str());
    input
        .chain(outputs)
        .chain(references)
        .chain(logging)
        .collect()
}

/// The workload is the mix the suite relies on: every event applies and is
/// refused somewhere, for each of the reasons `check` has; names are made
/// again after a purge; applications start, stop, gain and lose parts;
/// some events are large, none over the frame's bound; part ids are unique
/// and below `next_part`; schemas pass AWS's checks.
#[test]
fn the_workload_covers_every_event_and_refusal() {
    use std::collections::HashMap;

    let mut outcomes: HashMap<(&str, Result<(), ErrorCode>), u64> = HashMap::new();
    let (mut large, mut remade, mut started, mut added, mut removed) = (0, 0, 0, 0, 0);
    let mut largest = 0;
    for seed in 1..=8 {
        let mut rng = Rng::new(seed);
        let mut memory = Memory::<AnalyticsState>::default();
        let mut made = BTreeSet::new();
        for step in 0..400 {
            let event = random_event(&memory.state, &mut rng, step);
            let size = serde_json::to_vec(&event).unwrap().len();
            largest = largest.max(size);
            if size > 1024 {
                large += 1;
            }
            let before = memory.state.clone();
            let outcome = memory.apply(event.clone());
            match (&event, outcome) {
                (AnalyticsEvent::Create { app, .. }, Ok(())) if !made.insert(app.name.clone()) => {
                    remade += 1
                }
                (AnalyticsEvent::Change { name, app, .. }, Ok(())) => {
                    let was = &before.apps[name];
                    started += u64::from(app.running && !was.running);
                    added += u64::from(part_ids(app).len() > part_ids(was).len());
                    removed += u64::from(part_ids(app).len() < part_ids(was).len());
                }
                _ => {}
            }
            *outcomes.entry((variant(&event), outcome)).or_default() += 1;
            memory.state.verify().unwrap();
            for a in memory.state.apps.values() {
                let ids = part_ids(a);
                let distinct: BTreeSet<_> = ids.iter().collect();
                assert_eq!(distinct.len(), ids.len(), "seed {seed}: {ids:?}");
                for id in ids {
                    let n: u32 = id.strip_suffix(".1").unwrap().parse().unwrap();
                    assert!((1..=a.next_part).contains(&n), "{id} of {}", a.next_part);
                }
                let schemas = a.input.iter().map(|i| &i.schema);
                for s in schemas.chain(a.references.iter().map(|r| &r.schema)) {
                    check_schema(s, "schema").unwrap();
                }
            }
        }
    }
    let expected = [
        ("Create", Ok(())),
        ("Create", Err(ErrorCode::ResourceInUse)),
        ("Change", Ok(())),
        ("Change", Err(ErrorCode::ConcurrentModification)),
        ("Change", Err(ErrorCode::ResourceNotFound)),
        ("Change", Err(ErrorCode::Internal)),
        ("Purge", Ok(())),
        ("Purge", Err(ErrorCode::InvalidArgument)),
        ("Checkpoint", Ok(())),
        ("Checkpoint", Err(ErrorCode::InvalidArgument)),
    ];
    for outcome in expected {
        assert!(
            outcomes.contains_key(&outcome),
            "{outcome:?} never happened: {outcomes:#?}"
        );
    }
    assert_eq!(outcomes.len(), expected.len(), "{outcomes:#?}");
    let counts = (large, remade, started, added, removed);
    assert!(
        large >= 20 && remade >= 5 && started >= 5 && added >= 5 && removed >= 5,
        "large, remade, started, added, removed: {counts:?}"
    );
    assert!(largest <= EVENT_SIZE_MAX, "{largest} bytes");
}

/// A seed is a workload: the same seed gives the same events (so
/// `RIFFLE_SEED` replays a failure), another seed other events.
#[test]
fn a_seed_replays_the_same_workload() {
    let bytes = |seed| serde_json::to_vec(&workload::<AnalyticsState>(seed, 300)).unwrap();
    for seed in seeds(&[1, 2, 3]) {
        eprintln!("workload seed {seed}: replay with RIFFLE_SEED={seed}");
        assert_eq!(bytes(seed), bytes(seed), "seed {seed}");
        assert_ne!(bytes(seed), bytes(seed ^ 0x5eed), "seed {seed}");
    }
}

// --- `check`, refusal by refusal ---------------------------------------

/// A plain application: version 1, no parts, no code.
fn plain(name: &str) -> App {
    App {
        name: name.to_string(),
        id: 0,
        description: None,
        version: 1,
        revision: 0,
        created_ms: T0_MS,
        updated_ms: T0_MS,
        running: false,
        transition: None,
        input: None,
        outputs: Vec::new(),
        references: Vec::new(),
        logging: Vec::new(),
        code: "".into(),
        tags: BTreeMap::new(),
        next_part: 0,
        start_position: None,
        runs: 0,
        progress: None,
    }
}

fn create(name: &str) -> AnalyticsEvent {
    AnalyticsEvent::Create {
        max: None,
        app: Box::new(plain(name)),
    }
}

/// A change of `name` (incarnation `id`, from `revision`) to `app`.
fn change_to(name: &str, id: u64, revision: u64, app: App) -> AnalyticsEvent {
    AnalyticsEvent::Change {
        name: name.to_string(),
        id,
        revision,
        app: Box::new(app),
    }
}

/// `state`'s application `name` with `edit` applied, as a change from the
/// state it is in.
fn edit(state: &AnalyticsState, name: &str, edit: impl FnOnce(&mut App)) -> AnalyticsEvent {
    let a = &state.apps[name];
    let mut next = a.clone();
    edit(&mut next);
    change(a, next)
}

fn mark_deleting(state: &AnalyticsState, name: &str, now_ms: i64) -> AnalyticsEvent {
    edit(state, name, |a| {
        a.transition = Some((Transition::Deleting, now_ms))
    })
}

fn purge(name: &str, id: u64) -> AnalyticsEvent {
    AnalyticsEvent::Purge {
        name: name.to_string(),
        id,
    }
}

/// `state` with `event` checked and applied; it must apply.
fn then(mut state: AnalyticsState, event: AnalyticsEvent) -> AnalyticsState {
    state
        .check(&event)
        .unwrap_or_else(|err| panic!("{event:?}: {err:?}"));
    state.apply(event);
    state.verify().unwrap();
    state
}

/// `orders_app` (id 0, changed once: revision 1), `clicks.v2` (id 1,
/// Deleting), and `fraud-score` made, deleted, purged (id 2) and made again
/// (id 3).
fn fixture() -> AnalyticsState {
    let mut s = AnalyticsState::default();
    for name in ["orders_app", "clicks.v2", "fraud-score"] {
        s = then(s, create(name));
    }
    let tagged = edit(&s, "orders_app", |a| {
        a.tags.insert("team".into(), "risk".into());
    });
    s = then(s, tagged);
    let deleting = mark_deleting(&s, "clicks.v2", T0_MS + 5);
    s = then(s, deleting);
    let deleting = mark_deleting(&s, "fraud-score", T0_MS + 6);
    s = then(s, deleting);
    s = then(s, purge("fraud-score", 2));
    s = then(s, create("fraud-score"));
    let ids: Vec<_> = s.apps.values().map(|a| (a.id, a.revision)).collect();
    assert_eq!(
        ids,
        [(1, 1), (3, 0), (0, 1)],
        "clicks.v2, fraud-score, orders_app"
    );
    assert_eq!(s.next_id, 4);
    s
}

type Answer = Result<(), (ErrorCode, String)>;

fn refused(code: ErrorCode, message: &str) -> Answer {
    Err((code, message.to_string()))
}

/// Every refusal of `check`, with its code and message, beside the events
/// that pass it.
#[test]
fn check_refuses_each_event_with_its_code_and_message() {
    let s = fixture();
    let orders = s.apps["orders_app"].clone();
    let renamed = App {
        name: "orders".into(),
        ..orders.clone()
    };
    let renumbered = App {
        id: 1,
        ..orders.clone()
    };
    let earlier_fraud = App {
        id: 2,
        ..s.apps["fraud-score"].clone()
    };
    let concurrent = |name: &str| {
        refused(
            ErrorCode::ConcurrentModification,
            &format!("Application {name} was changed by another call at the same time; try again."),
        )
    };
    let missing = |name: &str| {
        refused(
            ErrorCode::ResourceNotFound,
            &format!("Application {name} is not found."),
        )
    };
    let in_use = |name: &str| {
        refused(
            ErrorCode::ResourceInUse,
            &format!("Application {name} already exists."),
        )
    };
    let internal = refused(
        ErrorCode::Internal,
        "a change may not give an application another name or id",
    );
    let not_deleting = |name: &str| {
        refused(
            ErrorCode::InvalidArgument,
            &format!("application {name} is not being deleted"),
        )
    };
    let cases: Vec<(&str, AnalyticsEvent, Answer)> = vec![
        ("create of a new name", create("new"), Ok(())),
        (
            "create of a live name",
            create("orders_app"),
            in_use("orders_app"),
        ),
        (
            "create of a name being deleted",
            create("clicks.v2"),
            in_use("clicks.v2"),
        ),
        (
            "create of a name made again",
            create("fraud-score"),
            in_use("fraud-score"),
        ),
        (
            "change at the current revision",
            change_to("orders_app", 0, 1, orders.clone()),
            Ok(()),
        ),
        (
            "change from an earlier revision",
            change_to("orders_app", 0, 0, orders.clone()),
            concurrent("orders_app"),
        ),
        (
            "change from a revision not yet made",
            change_to("orders_app", 0, 2, orders.clone()),
            concurrent("orders_app"),
        ),
        (
            "change of a purged incarnation",
            change_to("fraud-score", 2, 0, earlier_fraud.clone()),
            missing("fraud-score"),
        ),
        (
            "change of an incarnation not yet made",
            change_to(
                "orders_app",
                4,
                1,
                App {
                    id: 4,
                    ..orders.clone()
                },
            ),
            missing("orders_app"),
        ),
        (
            "change of another application's incarnation",
            change_to("orders_app", 1, 1, renumbered.clone()),
            missing("orders_app"),
        ),
        (
            "change of a name never made",
            change_to("nobody", 0, 0, plain("nobody")),
            missing("nobody"),
        ),
        (
            "change renaming",
            change_to("orders_app", 0, 1, renamed.clone()),
            internal.clone(),
        ),
        (
            "change renumbering",
            change_to("orders_app", 0, 1, renumbered),
            internal.clone(),
        ),
        // The order of the checks: incarnation, then name and id, then revision.
        (
            "change renaming from an earlier revision",
            change_to("orders_app", 0, 0, renamed.clone()),
            internal,
        ),
        (
            "change renaming a stale incarnation",
            change_to("orders_app", 9, 1, renamed),
            missing("orders_app"),
        ),
        (
            "purge of an application being deleted",
            purge("clicks.v2", 1),
            Ok(()),
        ),
        (
            "purge of a live application",
            purge("orders_app", 0),
            not_deleting("orders_app"),
        ),
        (
            "purge of another incarnation of one being deleted",
            purge("clicks.v2", 0),
            not_deleting("clicks.v2"),
        ),
        (
            "purge of a purged incarnation",
            purge("fraud-score", 2),
            not_deleting("fraud-score"),
        ),
        (
            "purge of a name never made",
            purge("nobody", 0),
            not_deleting("nobody"),
        ),
    ];
    for (what, event, expected) in cases {
        let got = s.check(&event).map_err(|e| (e.code, e.message));
        assert_eq!(got, expected, "{what}: {event:?}");
    }
    assert_eq!(
        Err(not_found("orders_app")),
        missing("orders_app").map_err(|(code, message)| riffle_protocol::Error { code, message })
    );
}

/// `live` hides an application being deleted, as if it were gone.
#[test]
fn live_hides_an_application_being_deleted() {
    let s = fixture();
    assert_eq!(s.live("orders_app").map(|a| a.id), Ok(0));
    assert_eq!(s.live("fraud-score").map(|a| a.id), Ok(3));
    assert_eq!(s.live("clicks.v2"), Err(not_found("clicks.v2")));
    assert_eq!(s.live("nobody"), Err(not_found("nobody")));
}

// --- `apply` and `verify` ------------------------------------------------

#[test]
fn a_create_gets_next_id_and_revision_0_whatever_it_carries() {
    let carried = App {
        id: 42,
        revision: 7,
        ..app(&mut Rng::new(3), "orders_app", T0_MS)
    };
    let s = then(
        AnalyticsState::default(),
        AnalyticsEvent::Create {
            max: None,
            app: Box::new(carried.clone()),
        },
    );
    let s = then(
        s,
        AnalyticsEvent::Create {
            max: None,
            app: Box::new(App {
                name: "A1".into(),
                ..carried.clone()
            }),
        },
    );
    assert_eq!(s.next_id, 2);
    assert_eq!(
        s.apps["orders_app"],
        App {
            id: 0,
            revision: 0,
            ..carried.clone()
        }
    );
    assert_eq!((s.apps["A1"].id, s.apps["A1"].revision), (1, 0));
}

#[test]
fn a_change_becomes_the_application_at_revision_plus_one() {
    let s = fixture();
    let before = s.clone();
    let a = &s.apps["orders_app"];
    let mut next = edited(&mut Rng::new(4), a, T0_MS + 60_000);
    next.revision = 99;
    next.version = 5;
    let s = then(s.clone(), change_to("orders_app", 0, 1, next.clone()));
    assert_eq!(
        s.apps["orders_app"],
        App {
            revision: 2,
            ..next.clone()
        }
    );
    assert_eq!(s.next_id, before.next_id);
    for name in ["clicks.v2", "fraud-score"] {
        assert_eq!(s.apps[name], before.apps[name], "{name} untouched");
    }
    // The next change names revision 2 and makes 3; one from 1 is refused.
    let again = edit(&s, "orders_app", |a| a.running = true);
    assert_eq!(
        s.check(&change_to("orders_app", 0, 1, next))
            .map_err(|e| e.code),
        Err(ErrorCode::ConcurrentModification)
    );
    assert_eq!(then(s, again).apps["orders_app"].revision, 3);
}

#[test]
fn a_purge_removes_one_incarnation_and_ids_are_never_reused() {
    let s = fixture();
    let s = then(s, purge("clicks.v2", 1));
    assert_eq!(
        s.apps.keys().collect::<Vec<_>>(),
        ["fraud-score", "orders_app"]
    );
    assert_eq!(s.next_id, 4);
    let s = then(s, create("clicks.v2"));
    assert_eq!((s.apps["clicks.v2"].id, s.next_id), (4, 5));
}

/// `verify` finds each invariant broken by hand, with what and where.
#[test]
fn verify_catches_a_hand_broken_state() {
    let fine = fixture();
    assert_eq!(fine.verify(), Ok(()));
    type Break = fn(&mut AnalyticsState);
    let cases: &[(&str, Break, &str)] = &[
        (
            "next_id below an id",
            |s| s.next_id = 3,
            "application fraud-score has id 3 at or past next_id 3",
        ),
        (
            "next_id at 0",
            |s| s.next_id = 0,
            "application clicks.v2 has id 1 at or past next_id 0",
        ),
        (
            "version 0",
            |s| s.apps.get_mut("orders_app").unwrap().version = 0,
            "application orders_app has version 0",
        ),
        (
            "misfiled",
            |s| {
                let a = s.apps.remove("orders_app").unwrap();
                s.apps.insert("other".into(), a);
            },
            "application orders_app is filed under other",
        ),
    ];
    for (what, break_it, expected) in cases {
        let mut s = fine.clone();
        break_it(&mut s);
        assert_eq!(s.verify(), Err(expected.to_string()), "{what}");
    }
}

// --- `App::status` and `App::take_part_id` -------------------------------

/// The status at every transition, settled READY or RUNNING, with no delay
/// and with one: the transition shows from its start until `delay_ms` after
/// it, then the settled state (none once Deleting is over).
#[test]
fn status_shows_each_transition_for_its_delay() {
    let since = T0_MS;
    let transitions = [
        (Transition::Starting, "STARTING"),
        (Transition::Stopping, "STOPPING"),
        (Transition::Updating, "UPDATING"),
        (Transition::Deleting, "DELETING"),
    ];
    for (t, shown) in transitions {
        assert_eq!(t.aws_name(), shown);
        for running in [false, true] {
            let a = App {
                running,
                transition: Some((t, since)),
                ..plain("orders_app")
            };
            let settled = match (t, running) {
                (Transition::Deleting, _) => None,
                (_, true) => Some("RUNNING"),
                (_, false) => Some("READY"),
            };
            // (now_ms, delay_ms, status)
            let cases = [
                (since, 0, settled),
                (since + 1, 0, settled),
                (since, 5000, Some(shown)),
                (since + 4999, 5000, Some(shown)),
                (since + 5000, 5000, settled),
                (since + 86_400_000, 5000, settled),
                (since + 1, 1, settled),
            ];
            for (now_ms, delay_ms, expected) in cases {
                assert_eq!(
                    a.status(now_ms, delay_ms),
                    expected,
                    "{t:?} running {running} at +{} delay {delay_ms}",
                    now_ms - since
                );
            }
        }
    }
    // No transition: the settled state, whatever the time and delay.
    for (running, shown) in [(false, "READY"), (true, "RUNNING")] {
        let a = App {
            running,
            ..plain("orders_app")
        };
        for (now_ms, delay_ms) in [(T0_MS, 0), (T0_MS, 5000), (0, u64::MAX)] {
            assert_eq!(a.status(now_ms, delay_ms), Some(shown));
        }
    }
    // A transition begun at the end of time does not overflow.
    let late = App {
        transition: Some((Transition::Updating, i64::MAX)),
        ..plain("orders_app")
    };
    assert_eq!(late.status(i64::MAX - 1, 5000), Some("UPDATING"));
    assert_eq!(late.status(i64::MAX, 5000), Some("READY"));
}

#[test]
fn part_ids_count_up_and_never_repeat() {
    let mut a = plain("orders_app");
    let first: Vec<String> = (0..4).map(|_| a.take_part_id()).collect();
    assert_eq!(first, ["1.1", "2.1", "3.1", "4.1"]);
    assert_eq!(a.next_part, 4);
    // Removing parts gives nothing back; a copy (the next change) goes on.
    let mut next = a.clone();
    assert_eq!(next.take_part_id(), "5.1");
    let mut seen: BTreeSet<String> = first.into_iter().chain(["5.1".to_string()]).collect();
    for _ in 0..10_000 {
        let id = next.take_part_id();
        assert!(seen.insert(id.clone()), "{id} repeated");
    }
    assert_eq!(next.next_part, 10_005);
    // The counter is part of the durable application.
    let s = then(
        AnalyticsState::default(),
        AnalyticsEvent::Create {
            max: None,
            app: Box::new(next.clone()),
        },
    );
    let bytes = serde_json::to_vec(&s).unwrap();
    let back: AnalyticsState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back.apps["orders_app"].clone().take_part_id(), "10006.1");
}

#[test]
fn a_delay_past_i64_max_keeps_the_transition() {
    let a = App {
        transition: Some((Transition::Starting, T0_MS)),
        ..plain("x")
    };
    assert_eq!(a.status(T0_MS, u64::MAX), Some("STARTING"));
    assert_eq!(a.status(T0_MS, 1 << 63), Some("STARTING"));
}

#[test]
fn check_refuses_what_verify_would_reject() {
    let s = AnalyticsState::default();
    let zero = AnalyticsEvent::Create {
        max: None,
        app: Box::new(App {
            version: 0,
            ..plain("x")
        }),
    };
    assert_eq!(s.check(&zero).map_err(|e| e.code), Err(ErrorCode::Internal));
}

#[test]
fn a_create_past_the_limit_it_carries_is_refused() {
    let mut s = AnalyticsState::default();
    let create = |name: &str| AnalyticsEvent::Create {
        app: Box::new(plain(name)),
        max: Some(2),
    };
    for name in ["a", "b"] {
        s.check(&create(name)).unwrap();
        s.apply(create(name));
    }
    let refused = s.check(&create("c")).unwrap_err();
    assert_eq!(refused.code, ErrorCode::LimitExceeded);
    assert_eq!(refused.message, "This server keeps at most 2 applications.");
}

#[test]
fn a_checkpoint_is_kept_for_the_running_run_only_and_changes_keep_it() {
    use crate::progress::Progress;
    let s = fixture();
    let checkpoint = |run: u64, next: u64| AnalyticsEvent::Checkpoint {
        name: "orders_app".to_string(),
        id: 0,
        progress: Box::new(Progress::fresh(run, T0_MS, [(0, next)])),
    };
    // Not running: refused.
    assert!(s.check(&checkpoint(0, 5)).is_err());
    let s = then(
        s.clone(),
        edit(&s, "orders_app", |a| {
            a.running = true;
            a.runs = 3;
        }),
    );
    assert!(s.check(&checkpoint(2, 5)).is_err(), "an earlier run's");
    let s = then(s, checkpoint(3, 5));
    let kept = s.apps["orders_app"].progress.clone();
    assert_eq!(kept.as_ref().map(|p| p.shards[&0].next), Some(5));
    // A change made from the application as it was before the checkpoint
    // keeps the checkpoint.
    let mut stale = s.apps["orders_app"].clone();
    stale.progress = None;
    stale.running = false;
    let s = then(s.clone(), change(&s.apps["orders_app"], stale));
    assert_eq!(s.apps["orders_app"].progress, kept);
    assert!(!s.apps["orders_app"].running);
    // Stopped: a late checkpoint of the run is refused.
    assert!(s.check(&checkpoint(3, 9)).is_err());
}
