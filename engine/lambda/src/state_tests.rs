//! [`LambdaState`] through the metadata log's crash, fault and corruption
//! suite ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`LambdaEvent`] (mappings created with differing members, updated,
//! enabled and disabled, moved to another function, checkpointed forward on
//! several shards up to their end, deleted, purged and made again under the
//! same UUID; conflicting creates and updates, stale incarnations and
//! backward checkpoints refused), crashes at every sync, torn and corrupt
//! frames, corrupt snapshots, injected I/O failures. Then `check`'s
//! refusals one by one, in AWS's words where AWS has them.
//!
//! The suite runs on [`Logged`], a test-only view of the state: see its doc
//! for the two things `LambdaState` lacks to be a `Subject` itself.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-lambda --lib state_tests`.

use std::collections::BTreeMap;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::testkit::Subject;
use riffle_store::metalog::{FRAME_PAYLOAD_SIZE_MAX, StateMachine};
use riffle_store::testkit::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Config, StartingPosition};
use crate::state::{
    LambdaEvent, LambdaState, Mapping, NOT_FOUND, Progress, Transition, WindowState, conflict,
};

// One test per check: `state_tests::<check>::lambda`.
riffle_store::metalog_suite!(lambda: Logged);

/// The mappings' UUIDs: few, so a purged UUID is made again (a new
/// incarnation) and stale incarnations' events come up.
const UUIDS: &[&str] = &[
    "a1b2c3d4-0000-4000-8000-000000000001",
    "a1b2c3d4-0000-4000-8000-000000000002",
    "a1b2c3d4-0000-4000-8000-000000000003",
    "a1b2c3d4-0000-4000-8000-000000000004",
];
/// (EventSourceArn, stream): two streams and a consumer of one of them.
const SOURCES: &[(&str, &str)] = &[
    (
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
        "orders",
    ),
    (
        "arn:aws:kinesis:us-east-1:000000000000:stream/click.stream",
        "click.stream",
    ),
    (
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/lambda:1700000000",
        "orders",
    ),
];
/// Functions as given (`FunctionName`): a name, a qualified name, another.
const FUNCTIONS: &[&str] = &["ingest", "ingest:live", "audit_v2"];
/// The shards mappings checkpoint on.
const SHARDS: u64 = 4;
/// The UUID of creates that repeat an existing pair (so never made).
const CONFLICTING: &str = "a1b2c3d4-0000-4000-8000-000000000009";
const FRESH: &str = "a1b2c3d4-0000-4000-8000-0000000000f0";
const BIG: &str = "a1b2c3d4-0000-4000-8000-0000000000b1";
const T0_MS: i64 = 1_700_000_000_000;

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
}

/// The test-only view of [`LambdaState`] the suite runs on, with
/// [`LambdaState`]'s own `check`, `apply`, `verify` and snapshot format
/// (`serde(transparent)`). It exists for two reasons:
/// - `Subject` needs `PartialEq`, which `LambdaState` does not derive;
/// - `Subject::fresh_event` must apply to any state, and no
///   [`LambdaEvent`] does: a `Create` carries the id it must have
///   (`next_id`), and every other event names an existing mapping. The
///   [`Step::CreateNext`] create is numbered by the state it meets, as
///   `ops::create` numbers it from the state it reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct Logged(LambdaState);

impl PartialEq for Logged {
    fn eq(&self, other: &Logged) -> bool {
        self.0.next_id == other.0.next_id && self.0.mappings == other.0.mappings
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Step {
    /// An event as the service logs it.
    Event(LambdaEvent),
    /// A create given the state's next id.
    CreateNext(Box<Mapping>),
}

impl Step {
    fn event(&self, state: &LambdaState) -> LambdaEvent {
        match self {
            Step::Event(e) => e.clone(),
            Step::CreateNext(m) => LambdaEvent::Create {
                mapping: Box::new(Mapping {
                    id: state.next_id,
                    ..(**m).clone()
                }),
            },
        }
    }
}

impl StateMachine for Logged {
    type Event = Step;

    fn check(&self, step: &Step) -> Result<(), Error> {
        self.0.check(&step.event(&self.0))
    }

    fn apply(&mut self, step: Step) {
        let event = step.event(&self.0);
        self.0.apply(event);
    }

    fn verify(&self) -> Result<(), String> {
        self.0.verify()
    }
}

/// Mostly short, sometimes long (a filter pattern's value, a tag's).
fn text(rng: &mut Rng, long: u64) -> String {
    let len = match rng.range(0, 6) {
        0 => rng.range(long / 2, long),
        _ => rng.range(1, 12),
    };
    (0..len)
        .map(|_| *rng.pick(&['a', 'z', '0', '-', '_', 'é', ' ']))
        .collect()
}

/// FilterCriteria's patterns: none, or up to five, sometimes long.
fn filters(rng: &mut Rng) -> Option<Vec<String>> {
    match rng.range(0, 3) {
        0 => Some(Vec::new()),
        1 => Some(
            (0..rng.range(1, 5))
                .map(|_| {
                    let value = serde_json::to_string(&text(rng, 1500)).unwrap();
                    format!(r#"{{"data": {{"kind": [{value}]}}}}"#)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// A configuration as `Config::of_create` fills it in, members varied.
fn config(rng: &mut Rng, function: &str) -> Config {
    // Tumbling windows take one lane (AWS refuses them with more).
    let (tumbling_window_s, parallelization_factor) = match rng.chance(25) {
        true => (rng.range(1, 900) as u32, 1),
        false => (0, rng.range(1, 10) as u32),
    };
    Config {
        function_name: function.to_string(),
        batch_size: *rng.pick(&[1, 100, 500, 10_000]),
        batching_window_s: rng.range(0, 300) as u32,
        parallelization_factor,
        starting_position: match rng.range(0, 2) {
            0 => StartingPosition::TrimHorizon,
            1 => StartingPosition::Latest,
            _ => StartingPosition::AtTimestamp(T0_MS - rng.range(0, 86_400_000) as i64),
        },
        on_failure: rng
            .chance(30)
            .then(|| "arn:aws:kinesis:us-east-1:000000000000:stream/failures".to_string()),
        maximum_record_age_s: *rng.pick(&[-1, 60, 604_800]),
        bisect_on_error: rng.chance(50),
        maximum_retry_attempts: *rng.pick(&[-1, 0, 3, 10_000]),
        tumbling_window_s,
        report_item_failures: rng.chance(50),
        filters: filters(rng),
        kms_key_arn: rng.chance(20).then(|| {
            format!(
                "arn:aws:kms:us-east-1:000000000000:key/{:016x}",
                rng.next_u64()
            )
        }),
        metrics: rng.chance(20).then(|| vec!["EventCount".to_string()]),
    }
}

/// A mapping as `ops::create` makes it.
fn mapping(
    rng: &mut Rng,
    uuid: &str,
    id: u64,
    source: usize,
    function: &str,
    now_ms: i64,
) -> Mapping {
    let (source_arn, stream) = SOURCES[source];
    let config = config(rng, function);
    let start_offsets = match config.starting_position {
        StartingPosition::Latest => (0..SHARDS as u32)
            .map(|s| (s, rng.range(0, 10_000)))
            .collect(),
        _ => BTreeMap::new(),
    };
    Mapping {
        uuid: uuid.to_string(),
        id,
        config,
        function_arn: function_arn(function),
        source_arn: source_arn.to_string(),
        stream: stream.to_string(),
        stream_id: rng.range(0, 3),
        start_offsets,
        enabled: rng.chance(80),
        transition: Some((Transition::Creating, now_ms)),
        last_modified_ms: now_ms,
        tags: (0..rng.range(0, 4))
            .map(|_| (format!("k{}", rng.range(0, 9)), text(rng, 256)))
            .collect(),
        shards: BTreeMap::new(),
    }
}

/// A create of `uuid`: mostly numbered right; sometimes with a number
/// already used or not yet due (refused: internal).
fn create(rng: &mut Rng, state: &LambdaState, uuid: &str, now_ms: i64) -> LambdaEvent {
    let id = match rng.range(0, 14) {
        0 => state.next_id + 1,
        1 => state.next_id.saturating_sub(1),
        _ => state.next_id,
    };
    let source = rng.range(0, SOURCES.len() as u64 - 1) as usize;
    let function = *rng.pick(FUNCTIONS);
    LambdaEvent::Create {
        mapping: Box::new(mapping(rng, uuid, id, source, function, now_ms)),
    }
}

/// Mostly the mapping's incarnation; sometimes an earlier one (another or
/// an earlier mapping of this UUID) or one not yet made: not found.
fn incarnation(rng: &mut Rng, state: &LambdaState, current: u64) -> u64 {
    match rng.range(0, 14) {
        0 => state.next_id,
        1 => match rng.range(0, state.next_id - 1) {
            id if id == current => state.next_id + 1,
            id => id,
        },
        _ => current,
    }
}

/// The open tumbling window a checkpoint keeps, as the shard task does: on
/// a mapping with windows, the one open (its state grown) or the next one;
/// none once the shard has ended (its last window was closed).
fn window(
    rng: &mut Rng,
    m: &Mapping,
    open: Option<&WindowState>,
    ended: bool,
) -> Option<WindowState> {
    let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
    if window_ms == 0 || ended || rng.chance(20) {
        return None;
    }
    let start_ms = match open {
        Some(w) if rng.chance(60) => w.start_ms,
        Some(w) => w.start_ms + window_ms,
        None => T0_MS.div_euclid(window_ms) * window_ms,
    };
    let state = serde_json::json!({ "count": rng.range(0, 1000), "last": text(rng, 3000) });
    Some(WindowState {
        start_ms,
        state: state.to_string().into(),
    })
}

/// Checkpoints of one to three distinct shards, as the shard tasks make
/// them: mostly forward from where the shard is (sometimes to its end);
/// sometimes backward, or after the shard ended (refused).
fn checkpoint(rng: &mut Rng, m: &Mapping, id: u64) -> LambdaEvent {
    let first = rng.range(0, SHARDS - 1);
    let at = (0..rng.range(1, 3))
        .map(|i| {
            let shard = ((first + i) % SHARDS) as u32;
            let now = m.shards.get(&shard).cloned().unwrap_or(Progress {
                next_offset: m.start_of(shard).unwrap_or(0),
                ..Progress::default()
            });
            let next_offset = match rng.range(0, 14) {
                0 => now.next_offset.saturating_sub(rng.range(1, 50)),
                1 => now.next_offset,
                _ => now.next_offset + rng.range(1, 500),
            };
            let ended = rng.chance(12);
            (
                shard,
                Progress {
                    next_offset,
                    ended,
                    window: window(rng, m, now.window.as_ref(), ended),
                },
            )
        })
        .collect();
    LambdaEvent::Checkpoint {
        uuid: m.uuid.clone(),
        id,
        at,
    }
}

fn random_event(state: &LambdaState, rng: &mut Rng, step: u64) -> LambdaEvent {
    let now_ms = T0_MS + step as i64 * 1000;
    let uuid = rng.pick(UUIDS).to_string();
    let Some(m) = state.mappings.get(&uuid) else {
        // Mostly a create; sometimes an event for a mapping not there (never
        // made, or purged): not found.
        let id = rng.range(0, state.next_id);
        return match rng.range(0, 11) {
            0 => LambdaEvent::Delete { uuid, id, now_ms },
            1 => LambdaEvent::Purge { uuid, id },
            2 => LambdaEvent::Checkpoint {
                uuid,
                id,
                at: vec![(0, Progress::default())],
            },
            _ => create(rng, state, &uuid, now_ms),
        };
    };
    let id = incarnation(rng, state, m.id);
    match rng.range(0, 19) {
        // Refused: the UUID exists (internal), or the pair does
        // (ResourceConflict) under another UUID.
        0 => create(rng, state, &uuid, now_ms),
        1 => {
            let mut again = mapping(rng, CONFLICTING, state.next_id, 0, "x", now_ms);
            again.source_arn.clone_from(&m.source_arn);
            again.stream.clone_from(&m.stream);
            again.function_arn.clone_from(&m.function_arn);
            again
                .config
                .function_name
                .clone_from(&m.config.function_name);
            LambdaEvent::Create {
                mapping: Box::new(again),
            }
        }
        2..=5 => {
            // As `ops::update` makes it: some members changed, sometimes
            // another function (which may make a pair that exists),
            // sometimes enabled or disabled.
            let mut config = m.config.clone();
            config.batch_size = *rng.pick(&[m.config.batch_size, 10, 1000]);
            config.bisect_on_error = rng.chance(50);
            if rng.chance(30) {
                config.filters = filters(rng);
            }
            if rng.chance(35) {
                config.function_name = rng.pick(FUNCTIONS).to_string();
            }
            let enabled = match rng.chance(30) {
                true => !m.enabled,
                false => m.enabled,
            };
            let transition = match (m.enabled, enabled) {
                (false, true) => Transition::Enabling,
                (true, false) => Transition::Disabling,
                _ => Transition::Updating,
            };
            LambdaEvent::Update {
                uuid,
                id,
                function_arn: function_arn(&config.function_name),
                config: Box::new(config),
                enabled,
                transition,
                now_ms,
            }
        }
        6 | 7 => LambdaEvent::Delete { uuid, id, now_ms },
        // Purged after Deleting was shown (and sometimes before).
        8 | 9 if matches!(m.transition, Some((Transition::Deleting, _))) || rng.chance(20) => {
            LambdaEvent::Purge { uuid, id }
        }
        _ => checkpoint(rng, m, id),
    }
}

impl Subject for Logged {
    const NAME: &'static str = "lambda";

    fn random_event(state: &Logged, rng: &mut Rng, step: u64) -> Step {
        Step::Event(random_event(&state.0, rng, step))
    }

    fn fresh_event() -> Step {
        let mut m = mapping(&mut Rng::new(7), FRESH, 0, 0, "fresh", T0_MS);
        m.source_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/after".into();
        m.stream = "after".into();
        Step::CreateNext(Box::new(m))
    }

    fn oversized_event() -> Step {
        let mut m = mapping(&mut Rng::new(8), BIG, 0, 1, "big", T0_MS);
        m.tags
            .insert("big".into(), "v".repeat(FRAME_PAYLOAD_SIZE_MAX));
        Step::CreateNext(Box::new(m))
    }
}

/// The workload is the mix the suite relies on: every event applies and is
/// refused somewhere, for each of the reasons the state has; UUIDs are made
/// again after a purge; shards end; some events are large.
#[test]
fn the_workload_covers_every_event_and_refusal() {
    use std::collections::{HashMap, HashSet};

    use riffle_store::metalog::testkit::Memory;

    let mut outcomes: HashMap<(&str, Result<(), ErrorCode>), u64> = HashMap::new();
    let (mut large, mut remade, mut ended, mut moved) = (0, 0, 0, 0);
    for seed in 1..=8 {
        let mut rng = Rng::new(seed);
        let mut memory = Memory::<Logged>::default();
        let mut made = HashSet::new();
        for step in 0..400 {
            let step = Logged::random_event(&memory.state, &mut rng, step);
            let Step::Event(event) = &step else {
                unreachable!("the workload logs service events")
            };
            let variant = match event {
                LambdaEvent::Create { .. } => "Create",
                LambdaEvent::Update { .. } => "Update",
                LambdaEvent::Delete { .. } => "Delete",
                LambdaEvent::Purge { .. } => "Purge",
                LambdaEvent::Checkpoint { .. } => "Checkpoint",
            };
            if serde_json::to_vec(&step).unwrap().len() > 1024 {
                large += 1;
            }
            let before = memory.state.0.clone();
            let outcome = memory.apply(step.clone());
            match (event, outcome) {
                (LambdaEvent::Create { mapping }, Ok(())) if !made.insert(mapping.uuid.clone()) => {
                    remade += 1
                }
                (
                    LambdaEvent::Update {
                        uuid, function_arn, ..
                    },
                    Ok(()),
                ) if before.mappings[uuid].function_arn != *function_arn => moved += 1,
                (LambdaEvent::Checkpoint { at, .. }, Ok(())) if at.iter().any(|(_, p)| p.ended) => {
                    ended += 1
                }
                _ => {}
            }
            *outcomes.entry((variant, outcome)).or_default() += 1;
            memory.state.verify().unwrap();
        }
    }
    let expected = [
        ("Create", Ok(())),
        ("Create", Err(ErrorCode::ResourceInUse)),
        ("Create", Err(ErrorCode::Internal)),
        ("Update", Ok(())),
        ("Update", Err(ErrorCode::ResourceInUse)),
        ("Update", Err(ErrorCode::ResourceNotFound)),
        ("Delete", Ok(())),
        ("Delete", Err(ErrorCode::ResourceNotFound)),
        ("Purge", Ok(())),
        ("Purge", Err(ErrorCode::ResourceNotFound)),
        ("Checkpoint", Ok(())),
        ("Checkpoint", Err(ErrorCode::InvalidArgument)),
        ("Checkpoint", Err(ErrorCode::ResourceNotFound)),
    ];
    for outcome in expected {
        assert!(
            outcomes.contains_key(&outcome),
            "{outcome:?} never happened: {outcomes:#?}"
        );
    }
    let counts = (large, remade, ended, moved);
    assert!(
        large >= 20 && remade >= 5 && ended >= 5 && moved >= 5,
        "large, remade, ended, moved: {counts:?}"
    );
}

// --- `check`, refusal by refusal ---------------------------------------

const ORDERS: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";
const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";
const U3: &str = "33333333-3333-4333-8333-333333333333";

/// A plain mapping of `ORDERS` to function `function`.
fn plain(uuid: &str, id: u64, function: &str) -> Mapping {
    let mut m = mapping(&mut Rng::new(1), uuid, id, 0, function, T0_MS);
    m.shards.clear();
    m
}

/// The state after `events`, each of which must apply.
fn after(events: Vec<LambdaEvent>) -> LambdaState {
    let mut state = LambdaState::default();
    for e in events {
        state
            .check(&e)
            .unwrap_or_else(|err| panic!("{e:?}: {err:?}"));
        state.apply(e);
        state.verify().unwrap();
    }
    state
}

fn made(uuid: &str, id: u64, function: &str) -> LambdaEvent {
    LambdaEvent::Create {
        mapping: Box::new(plain(uuid, id, function)),
    }
}

fn update(state: &LambdaState, uuid: &str, id: u64, function: &str) -> LambdaEvent {
    let mut config = state.mappings[uuid].config.clone();
    config.function_name = function.to_string();
    LambdaEvent::Update {
        uuid: uuid.to_string(),
        id,
        config: Box::new(config),
        function_arn: function_arn(function),
        enabled: false,
        transition: Transition::Disabling,
        now_ms: T0_MS + 1,
    }
}

fn at(uuid: &str, id: u64, shards: &[(u32, u64, bool)]) -> LambdaEvent {
    LambdaEvent::Checkpoint {
        uuid: uuid.to_string(),
        id,
        at: shards
            .iter()
            .map(|&(s, next_offset, ended)| {
                let window = None;
                (
                    s,
                    Progress {
                        next_offset,
                        ended,
                        window,
                    },
                )
            })
            .collect(),
    }
}

/// `check`'s answer, as (code, message).
fn answer(state: &LambdaState, event: &LambdaEvent) -> Result<(), (ErrorCode, String)> {
    state.check(event).map_err(|e| (e.code, e.message))
}

fn not_found() -> Result<(), (ErrorCode, String)> {
    Err((ErrorCode::ResourceNotFound, NOT_FOUND.to_string()))
}

#[test]
fn a_second_mapping_of_a_pair_is_refused_in_awss_words() {
    let state = after(vec![made(U1, 0, "ingest:live"), made(U2, 1, "audit_v2")]);
    let message = format!(
        "The event source arn (\" {ORDERS} \") and function (\" ingest:live \") provided mapping \
         already exists. Please update or delete the existing mapping with UUID {U1}"
    );
    assert_eq!(
        answer(&state, &made(U3, 2, "ingest:live")),
        Err((ErrorCode::ResourceInUse, message.clone()))
    );
    assert_eq!(conflict(&state.mappings[U1]).message, message);
    // Another function, or the same function on another source, is no conflict.
    assert_eq!(answer(&state, &made(U3, 2, "ingest")), Ok(()));
    let mut elsewhere = plain(U3, 2, "ingest:live");
    elsewhere.source_arn = format!("{ORDERS}/consumer/c:1");
    let elsewhere = LambdaEvent::Create {
        mapping: Box::new(elsewhere),
    };
    assert_eq!(answer(&state, &elsewhere), Ok(()));
    // A Deleting mapping still holds its pair until it is purged.
    let deleting = after(vec![
        made(U1, 0, "ingest:live"),
        LambdaEvent::Delete {
            uuid: U1.into(),
            id: 0,
            now_ms: T0_MS,
        },
    ]);
    assert_eq!(
        answer(&deleting, &made(U3, 1, "ingest:live")).map_err(|e| e.0),
        Err(ErrorCode::ResourceInUse)
    );
}

#[test]
fn a_create_is_numbered_by_the_log_and_a_uuid_in_use_is_internal() {
    // Whatever id the event carries (two creates may race), the log numbers it.
    let state = after(vec![made(U1, 7, "ingest"), made(U2, 7, "audit_v2")]);
    assert_eq!(
        (state.mappings[U1].id, state.mappings[U2].id, state.next_id),
        (0, 1, 2)
    );
    assert_eq!(
        answer(&state, &made(U1, 2, "audit_v2:live")),
        Err((ErrorCode::Internal, "a mapping of that UUID exists".into()))
    );
}

#[test]
fn a_mapping_being_deleted_takes_no_update_or_delete_and_only_deleted_ones_are_purged() {
    let state = after(vec![made(U1, 0, "ingest")]);
    assert_eq!(
        answer(
            &state,
            &LambdaEvent::Purge {
                uuid: U1.into(),
                id: 0
            }
        )
        .map_err(|e| e.0),
        Err(ErrorCode::InvalidArgument)
    );
    let deleting = after(vec![
        made(U1, 0, "ingest"),
        LambdaEvent::Delete {
            uuid: U1.into(),
            id: 0,
            now_ms: T0_MS,
        },
    ]);
    assert_eq!(
        answer(&deleting, &update(&deleting, U1, 0, "audit_v2")),
        not_found()
    );
    let again = LambdaEvent::Delete {
        uuid: U1.into(),
        id: 0,
        now_ms: T0_MS,
    };
    assert_eq!(answer(&deleting, &again), not_found());
}

#[test]
fn one_checkpoint_naming_a_shard_twice_cannot_go_back() {
    let state = after(vec![made(U1, 0, "ingest"), at(U1, 0, &[(0, 100, false)])]);
    assert_eq!(
        answer(&state, &at(U1, 0, &[(0, 200, true), (0, 150, false)])).map_err(|e| e.0),
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        answer(&state, &at(U1, 0, &[(0, 150, false), (0, 200, true)])),
        Ok(())
    );
}

#[test]
fn an_update_that_makes_an_existing_pair_is_refused() {
    let state = after(vec![made(U1, 0, "ingest"), made(U2, 1, "audit_v2")]);
    assert_eq!(
        answer(&state, &update(&state, U2, 1, "ingest")),
        Err(conflict(&state.mappings[U1])).map_err(|e| (e.code, e.message))
    );
    // Keeping its own function, or moving to a free one, applies.
    assert_eq!(answer(&state, &update(&state, U2, 1, "audit_v2")), Ok(()));
    let moved = after(vec![
        made(U1, 0, "ingest"),
        made(U2, 1, "audit_v2"),
        update(&state, U2, 1, "ingest:live"),
    ]);
    let m = &moved.mappings[U2];
    assert_eq!(
        (
            m.function_name(),
            m.enabled,
            m.transition,
            m.last_modified_ms
        ),
        (
            "ingest:live",
            false,
            Some((Transition::Disabling, T0_MS + 1)),
            T0_MS + 1
        )
    );
    // The freed pair can be mapped again.
    assert_eq!(answer(&moved, &made(U3, 2, "audit_v2")), Ok(()));
}

#[test]
fn checkpoints_only_move_forward_and_stop_at_the_end() {
    let state = after(vec![
        made(U1, 0, "ingest"),
        at(U1, 0, &[(0, 100, false), (1, 7, false)]),
        at(U1, 0, &[(2, 50, true)]),
    ]);
    // (shard, next_offset, ended) each; the shard refused, if any.
    type Case = (&'static [(u32, u64, bool)], Option<u32>);
    let cases: &[Case] = &[
        (&[(0, 100, false)], None), // where it is: nothing delivered
        (&[(0, 101, false), (1, 8, true)], None),
        (&[(3, 0, false)], None), // a shard not seen yet
        (&[(0, 99, false)], Some(0)),
        (&[(1, 9, false), (0, 0, true)], Some(0)),
        (&[(2, 50, true)], Some(2)), // ended: nothing follows
        (&[(2, 51, false)], Some(2)),
    ];
    for (shards, refused) in cases {
        let expected = match refused {
            None => Ok(()),
            Some(s) => Err((
                ErrorCode::InvalidArgument,
                format!("checkpoint of shard {s} would go back"),
            )),
        };
        assert_eq!(answer(&state, &at(U1, 0, shards)), expected, "{shards:?}");
    }
    // Each checkpoint replaces its shard's progress, its open tumbling
    // window with it; other shards keep theirs.
    let windowed = |next_offset, start_ms, state: &str| Progress {
        next_offset,
        ended: false,
        window: Some(WindowState {
            start_ms,
            state: state.into(),
        }),
    };
    let state = after(vec![
        made(U1, 0, "ingest"),
        at(U1, 0, &[(0, 100, false), (1, 7, false)]),
        LambdaEvent::Checkpoint {
            uuid: U1.into(),
            id: 0,
            at: vec![(1, windowed(9, T0_MS, r#"{"n":1}"#))],
        },
        LambdaEvent::Checkpoint {
            uuid: U1.into(),
            id: 0,
            at: vec![(1, windowed(12, T0_MS + 60_000, r#"{"n":0}"#))],
        },
        at(U1, 0, &[(0, 120, true)]),
    ]);
    let progress = |next_offset, ended| Progress {
        next_offset,
        ended,
        window: None,
    };
    assert_eq!(
        state.mappings[U1].shards,
        BTreeMap::from([
            (0, progress(120, true)),
            (1, windowed(12, T0_MS + 60_000, r#"{"n":0}"#)),
        ])
    );
}

#[test]
fn events_of_a_purged_or_earlier_incarnation_are_not_found() {
    let gone = after(vec![
        made(U1, 0, "ingest"),
        LambdaEvent::Delete {
            uuid: U1.into(),
            id: 0,
            now_ms: T0_MS,
        },
        LambdaEvent::Purge {
            uuid: U1.into(),
            id: 0,
        },
    ]);
    assert!(gone.mappings.is_empty());
    assert_eq!(gone.next_id, 1);
    // The same UUID made again is another incarnation.
    let again = after(vec![
        made(U1, 0, "ingest"),
        LambdaEvent::Delete {
            uuid: U1.into(),
            id: 0,
            now_ms: T0_MS,
        },
        LambdaEvent::Purge {
            uuid: U1.into(),
            id: 0,
        },
        made(U1, 1, "ingest"),
    ]);
    assert_eq!(again.mappings[U1].id, 1);
    let stale = |state: &LambdaState| {
        vec![
            update(state, U1, 0, "audit_v2"),
            LambdaEvent::Delete {
                uuid: U1.into(),
                id: 0,
                now_ms: T0_MS,
            },
            LambdaEvent::Purge {
                uuid: U1.into(),
                id: 0,
            },
            at(U1, 0, &[(0, 5, false)]),
        ]
    };
    let mut with_u1 = gone.clone();
    with_u1.mappings.insert(U1.into(), plain(U1, 0, "ingest"));
    for event in stale(&with_u1) {
        assert_eq!(answer(&gone, &event), not_found(), "purged: {event:?}");
        assert_eq!(answer(&again, &event), not_found(), "re-created: {event:?}");
    }
    // The current incarnation's events apply.
    assert_eq!(answer(&again, &at(U1, 1, &[(0, 5, false)])), Ok(()));
    assert_eq!(answer(&again, &update(&again, U1, 1, "audit_v2")), Ok(()));
}

#[test]
fn verify_catches_an_id_at_or_past_next_id() {
    let mut state = after(vec![made(U1, 0, "ingest"), made(U2, 1, "ingest:live")]);
    assert_eq!(state.verify(), Ok(()));
    state.next_id = 1;
    assert_eq!(
        state.verify(),
        Err(format!("mapping {U2} has id 1 at or past next_id 1"))
    );
    state.next_id = 0;
    let err = state.verify().unwrap_err();
    assert!(err.contains("at or past next_id 0"), "{err}");
}

/// `Logged`'s snapshot is `LambdaState`'s: the view adds nothing on disk.
#[test]
fn the_view_serializes_as_the_state() {
    let state = after(vec![made(U1, 0, "ingest"), at(U1, 0, &[(3, 9, true)])]);
    assert_eq!(
        serde_json::to_value(Logged(state.clone())).unwrap(),
        serde_json::to_value(&state).unwrap()
    );
}
