//! [`VideoState`] through the metadata log's crash, fault and corruption
//! suite ([`riffle_store::metalog::testkit::suite`]): a random mix of every
//! [`VideoEvent`] (streams made with differing members, updated and their
//! retention changed under current and stale versions, tagged up to and
//! past the bound, untagged, deleted and made again under the same name),
//! crashes at every sync, torn and corrupt frames, corrupt snapshots,
//! injected I/O failures. Then `check`'s refusals one by one.
//!
//! Replay a seed: `RIFFLE_SEED=<seed> cargo test -p riffle-video --lib state_tests`.

use std::collections::BTreeMap;

use riffle_protocol::ErrorCode;
use riffle_store::metalog::testkit::Subject;
use riffle_store::metalog::{FRAME_PAYLOAD_SIZE_MAX, StateMachine};
use riffle_store::testkit::Rng;

use crate::state::{TAGS_PER_STREAM_MAX, VideoEvent, VideoState, VideoStream, internal_stream};

riffle_store::metalog_suite!(video: VideoState);

/// Few names, so a deleted name is made again (a new incarnation) and
/// stale incarnations' events come up.
const NAMES: &[&str] = &["cam-1", "door.front", "lobby_2"];
const T0_MS: i64 = 1_700_000_000_000;

fn stream(name: &str, rng: &mut Rng, step: u64) -> VideoStream {
    let created_ms = T0_MS + step as i64;
    VideoStream {
        name: name.to_string(),
        id: 0,
        arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/{created_ms}"),
        internal: internal_stream(created_ms, rng.next_u64() as u32),
        device_name: rng.chance(50).then(|| "dev-1".to_string()),
        media_type: rng.chance(50).then(|| "video/h264".to_string()),
        kms_key_id: "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo".into(),
        retention_hours: rng.range(0, 100) as u32,
        version: format!("v{step}"),
        created_ms,
        tags: tags(rng, 3),
        storage_tier: rng.chance(30).then(|| "HOT".to_string()),
        image_generation: None,
        notification: None,
    }
}

fn tags(rng: &mut Rng, max: u64) -> BTreeMap<String, String> {
    (0..rng.range(0, max + 1))
        .map(|_| {
            (
                format!("k{}", rng.range(0, 60)),
                format!("v{}", rng.next_u64()),
            )
        })
        .collect()
}

impl Subject for VideoState {
    const NAME: &'static str = "video";

    fn random_event(state: &VideoState, rng: &mut Rng, step: u64) -> VideoEvent {
        let name = rng.pick(NAMES).to_string();
        let Some(s) = state.streams.get(&name) else {
            return match rng.range(0, 6) {
                // Refused: no such stream.
                0 => VideoEvent::Delete { name, id: 0 },
                _ => VideoEvent::Create {
                    stream: Box::new(stream(&name, rng, step)),
                },
            };
        };
        // Mostly this incarnation; sometimes a stale one (refused).
        let id = if rng.chance(90) { s.id } else { s.id + 1 };
        // Mostly the current version; sometimes a stale one (refused).
        let current_version = if rng.chance(85) {
            s.version.clone()
        } else {
            "stale".to_string()
        };
        match rng.range(0, 12) {
            // Refused: the name is taken.
            0 => VideoEvent::Create {
                stream: Box::new(stream(&name, rng, step)),
            },
            1 => VideoEvent::Delete { name, id },
            2 | 3 => VideoEvent::Update {
                name,
                id,
                current_version,
                device_name: rng.chance(50).then(|| format!("dev-{step}")),
                media_type: rng.chance(50).then(|| "video/h265".to_string()),
                version: format!("v{step}"),
            },
            4 | 5 => VideoEvent::Retention {
                name,
                id,
                current_version,
                retention_hours: rng.range(0, 87_600) as u32,
                version: format!("v{step}"),
            },
            6..=8 => {
                // Now and then enough to pass the bound (refused).
                let max = if rng.chance(10) { 55 } else { 4 };
                VideoEvent::Tag {
                    name,
                    id,
                    tags: tags(rng, max),
                }
            }
            10 if rng.chance(50) => VideoEvent::ImageGeneration {
                name,
                id,
                config: rng
                    .chance(70)
                    .then(|| serde_json::json!({"Status": "ENABLED", "SamplingInterval": step})),
            },
            10 => VideoEvent::Notification {
                name,
                id,
                config: rng
                    .chance(70)
                    .then(|| serde_json::json!({"Status": "ENABLED"})),
            },
            9 => VideoEvent::Tag {
                name,
                id,
                // Large enough that a few fill a block.
                tags: (0..20)
                    .map(|i| (format!("k{i}"), "x".repeat(200)))
                    .collect(),
            },
            _ => VideoEvent::Untag {
                name,
                id,
                keys: (0..rng.range(1, 5))
                    .map(|_| format!("k{}", rng.range(0, 60)))
                    .collect(),
            },
        }
    }

    fn fresh_event() -> VideoEvent {
        let mut rng = Rng::new(1);
        VideoEvent::Create {
            stream: Box::new(stream("fresh", &mut rng, 0)),
        }
    }

    fn oversized_event() -> VideoEvent {
        let mut rng = Rng::new(2);
        let mut s = stream("big", &mut rng, 0);
        s.device_name = Some("d".repeat(FRAME_PAYLOAD_SIZE_MAX));
        VideoEvent::Create {
            stream: Box::new(s),
        }
    }
}

/// A state with one stream, `cam`, and its event log's outcome.
fn one() -> VideoState {
    let mut state = VideoState::default();
    let mut rng = Rng::new(7);
    let mut s = stream("cam", &mut rng, 0);
    s.tags = BTreeMap::new();
    s.version = "v1".into();
    state.apply(VideoEvent::Create {
        stream: Box::new(s),
    });
    state
}

#[test]
fn refusals_name_the_stream_and_say_why() {
    let state = one();
    let id = state.streams["cam"].id;
    let check = |event: VideoEvent, code: ErrorCode, words: &str| {
        let e = state.check(&event).expect_err("refused");
        assert_eq!(e.code, code, "{event:?}");
        assert!(e.message.contains(words), "{}: {words}", e.message);
    };
    let mut rng = Rng::new(3);
    check(
        VideoEvent::Create {
            stream: Box::new(stream("cam", &mut rng, 1)),
        },
        ErrorCode::ResourceInUse,
        "cam already exists",
    );
    check(
        VideoEvent::Delete {
            name: "cam".into(),
            id: id + 1,
        },
        ErrorCode::ResourceNotFound,
        "cam was not found",
    );
    check(
        VideoEvent::Update {
            name: "cam".into(),
            id,
            current_version: "v0".into(),
            device_name: None,
            media_type: None,
            version: "v2".into(),
        },
        ErrorCode::ConcurrentModification,
        "cam does not match",
    );
    check(
        VideoEvent::Retention {
            name: "gone".into(),
            id,
            current_version: "v1".into(),
            retention_hours: 1,
            version: "v2".into(),
        },
        ErrorCode::ResourceNotFound,
        "gone was not found",
    );
    let full: BTreeMap<String, String> = (0..=TAGS_PER_STREAM_MAX)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    check(
        VideoEvent::Tag {
            name: "cam".into(),
            id,
            tags: full,
        },
        ErrorCode::LimitExceeded,
        "at most 50 tags",
    );
}

#[test]
fn changes_apply_as_aws_describes_them() {
    let mut state = one();
    let id = state.streams["cam"].id;
    let event = VideoEvent::Update {
        name: "cam".into(),
        id,
        current_version: "v1".into(),
        device_name: Some("dev-9".into()),
        media_type: None,
        version: "v2".into(),
    };
    state.check(&event).expect("current version");
    state.apply(event);
    let s = &state.streams["cam"];
    // A member not given is kept; the version moves on.
    assert_eq!(s.device_name.as_deref(), Some("dev-9"));
    assert_eq!(s.version, "v2");
    let tag = |tags: &[(&str, &str)]| VideoEvent::Tag {
        name: "cam".into(),
        id,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    // Exactly 50 tags fit; a 51st does not, but replacing a value does.
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "a".into())).collect();
    let fifty: Vec<(&str, &str)> = fifty
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    state.check(&tag(&fifty)).expect("50 tags");
    state.apply(tag(&fifty));
    assert!(state.check(&tag(&[("k50", "b")])).is_err());
    state.check(&tag(&[("k3", "b")])).expect("a value replaced");
    state.apply(tag(&[("k3", "b")]));
    assert_eq!(state.streams["cam"].tags["k3"], "b");
    // A deleted name made again is a new incarnation.
    state.apply(VideoEvent::Delete {
        name: "cam".into(),
        id,
    });
    let mut rng = Rng::new(5);
    state.apply(VideoEvent::Create {
        stream: Box::new(stream("cam", &mut rng, 9)),
    });
    assert_ne!(state.streams["cam"].id, id);
    state.verify().expect("verified");
}
