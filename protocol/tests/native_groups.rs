//! Consumer groups' native messages (api keys 14-17, `native/groups.rs`):
//! golden bytes, round trips of every request and response at edge values,
//! truncation of every encoded frame at every byte, and refusals (unknown
//! kinds and tags, counts past the bytes present or over their bounds, names
//! over their bounds), each with its specific error.

use riffle_protocol::native::groups::heartbeat_request_size_max;
use riffle_protocol::native::{
    Api, GROUP_NAME_CHARS_MAX, HeldLease, InitialPosition, LeaseCheckpoint, LeaseRow, Reply,
    Request, Response, decode_reply, decode_request, encode_error, encode_request, encode_response,
    request_frame_size_max,
};
use riffle_protocol::{Error, ErrorCode, Limits};

fn request_frame(request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, 7, request);
    out
}

fn response_frame(api: Api, response: &Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(&mut out, api, 7, response);
    out
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: String = s
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<String>()
        .split_whitespace()
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Compares a frame with its golden bytes, crc aside (the decoders check it).
fn check_golden(frame: &[u8], golden: &str) {
    let mut expected = unhex(golden);
    expected[4..8].copy_from_slice(&frame[4..8]);
    assert_eq!(frame, expected.as_slice());
}

/// Patches bytes of a frame at `at` and re-seals its crc.
fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&f[8..]);
    f[4..8].copy_from_slice(&crc.to_le_bytes());
    f
}

/// Decodes, compares, and checks that every shorter prefix is refused.
fn round_trip_request(request: Request<'_>) {
    let limits = Limits::default();
    let frame = request_frame(&request);
    let (header, decoded) = decode_request(&frame, &limits).unwrap();
    assert_eq!(
        (header.request_id, header.api_key),
        (7, request.api() as u16)
    );
    assert_eq!(decoded, request);
    for len in 0..frame.len() {
        assert!(decode_request(&frame[..len], &limits).is_err(), "{len}");
        // The same prefix sealed as a whole frame: the body ends early.
        if len >= 24 {
            let mut short = frame[..len].to_vec();
            short[0..4].copy_from_slice(&(len as u32).to_le_bytes());
            let short = patched(&short, 0, &[]);
            assert!(decode_request(&short, &limits).is_err(), "sealed {len}");
        }
    }
}

fn round_trip_response(api: Api, response: Response<'_>) {
    let limits = Limits::default();
    let frame = response_frame(api, &response);
    let (header, decoded) = decode_reply(&frame, &limits).unwrap();
    assert_eq!((header.request_id, header.api_key), (7, api as u16));
    assert_eq!(decoded, Reply::Response(response));
    for len in 0..frame.len() {
        assert!(decode_reply(&frame[..len], &limits).is_err(), "{len}");
        if len >= 24 {
            let mut short = frame[..len].to_vec();
            short[0..4].copy_from_slice(&(len as u32).to_le_bytes());
            let short = patched(&short, 0, &[]);
            assert!(decode_reply(&short, &limits).is_err(), "sealed {len}");
        }
    }
}

const AFTER_MAX: LeaseCheckpoint = LeaseCheckpoint::After {
    sequence_number: u128::MAX,
    sub_sequence_number: Some(u32::MAX),
};
const AFTER_NO_SUB: LeaseCheckpoint = LeaseCheckpoint::After {
    sequence_number: 0,
    sub_sequence_number: None,
};
const EVERY_CHECKPOINT: [LeaseCheckpoint; 5] = [
    LeaseCheckpoint::TrimHorizon,
    LeaseCheckpoint::Latest,
    AFTER_MAX,
    AFTER_NO_SUB,
    LeaseCheckpoint::ShardEnd,
];

#[test]
fn api_keys_are_14_to_17() {
    for (api, key) in [
        (Api::GroupHeartbeat, 14),
        (Api::GroupCheckpoint, 15),
        (Api::GroupDescribe, 16),
        (Api::GroupLeave, 17),
    ] {
        assert_eq!(api as u16, key);
        assert_eq!(Api::from_u16(key), Some(api));
    }
    // After them: authentication's (18, 19), then nothing yet.
    assert_eq!(Api::from_u16(18), Some(Api::AuthChallenge));
    assert_eq!(Api::from_u16(19), Some(Api::Authenticate));
    assert_eq!(Api::from_u16(20), None);
}

#[test]
fn heartbeat_golden() {
    let request = Request::GroupHeartbeat {
        stream: "s",
        group: "g",
        worker: "w",
        failover_ms: 10_000,
        initial: InitialPosition::Latest,
        released: vec![3, 0x0102_0304],
    };
    check_golden(
        &request_frame(&request),
        "32000000 00000000 0e00 0100 0000 0000 0700000000000000  # size 50, api 14, v1, id 7
         0100 73  0100 67  0100 77                                # stream, group, worker
         10270000                                                 # failover_ms 10,000
         01                                                       # initial LATEST
         02000000 03000000 04030201                               # released [3, 0x01020304]",
    );
    let response = Response::GroupLeases(vec![HeldLease {
        shard_index: 5,
        counter: 9,
        revoked: true,
        checkpoint: LeaseCheckpoint::After {
            sequence_number: 0x11,
            sub_sequence_number: Some(2),
        },
        parents: vec![1],
    }]);
    check_golden(
        &response_frame(Api::GroupHeartbeat, &response),
        "47000000 00000000 0e00 0100 0100 0000 0700000000000000  # size 71, response
         01000000                                                 # 1 lease
         05000000 0900000000000000 01                             # shard 5, counter 9, revoked
         02 11000000000000000000000000000000 01 02000000          # AFTER 0x11, sub 2
         01000000 01000000                                        # parents [1]",
    );
}

#[test]
fn describe_golden() {
    let response = Response::GroupTable {
        rows: vec![
            LeaseRow {
                shard_index: 0,
                owner: Some("w"),
                counter: 1,
                checkpoint: LeaseCheckpoint::ShardEnd,
                parents: vec![],
            },
            LeaseRow {
                shard_index: 2,
                owner: None,
                counter: 0,
                checkpoint: LeaseCheckpoint::TrimHorizon,
                parents: vec![0, 1],
            },
        ],
        workers: vec!["w"],
    };
    check_golden(
        &response_frame(Api::GroupDescribe, &response),
        "52000000 00000000 1000 0100 0100 0000 0700000000000000  # size 82, api 16, response
         02000000                                                 # 2 rows
         00000000 01 0100 77 0100000000000000 03 00000000         # shard 0, owner w, SHARD_END
         02000000 00 0000000000000000 00 02000000 00000000 01000000  # shard 2, no owner, [0, 1]
         01000000 0100 77                                         # workers [w]",
    );
}

#[test]
fn every_request_round_trips() {
    let name = "é".repeat(GROUP_NAME_CHARS_MAX as usize);
    let stream = "ß".repeat(128);
    for initial in [InitialPosition::TrimHorizon, InitialPosition::Latest] {
        for released in [vec![], vec![0], vec![u32::MAX, 0, 7]] {
            round_trip_request(Request::GroupHeartbeat {
                stream: "orders",
                group: "billing",
                worker: "host-1:4242",
                failover_ms: 10_000,
                initial,
                released,
            });
        }
    }
    round_trip_request(Request::GroupHeartbeat {
        stream: &stream,
        group: &name,
        worker: &name,
        failover_ms: u32::MAX,
        initial: InitialPosition::TrimHorizon,
        released: (0..500).collect(),
    });
    for checkpoint in EVERY_CHECKPOINT {
        round_trip_request(Request::GroupCheckpoint {
            stream: "orders",
            group: "billing",
            worker: "w",
            shard_index: u32::MAX,
            counter: u64::MAX,
            checkpoint,
        });
    }
    round_trip_request(Request::GroupDescribe {
        stream: &stream,
        group: &name,
    });
    round_trip_request(Request::GroupLeave {
        stream: "orders",
        group: "billing",
        worker: &name,
    });
    // Empty names are the server's to refuse (the pattern needs a character).
    round_trip_request(Request::GroupLeave {
        stream: "",
        group: "",
        worker: "",
    });
}

#[test]
fn every_response_round_trips() {
    let name = "é".repeat(GROUP_NAME_CHARS_MAX as usize);
    round_trip_response(Api::GroupHeartbeat, Response::GroupLeases(vec![]));
    let leases = EVERY_CHECKPOINT
        .iter()
        .enumerate()
        .map(|(i, &checkpoint)| HeldLease {
            shard_index: i as u32,
            counter: u64::MAX - i as u64,
            revoked: i % 2 == 0,
            checkpoint,
            parents: (0..i as u32 % 3).collect(),
        })
        .collect();
    round_trip_response(Api::GroupHeartbeat, Response::GroupLeases(leases));
    round_trip_response(
        Api::GroupDescribe,
        Response::GroupTable {
            rows: vec![],
            workers: vec![],
        },
    );
    let rows = EVERY_CHECKPOINT
        .iter()
        .enumerate()
        .map(|(i, &checkpoint)| LeaseRow {
            shard_index: u32::MAX - i as u32,
            owner: [None, Some("w"), Some(name.as_str())][i % 3],
            counter: i as u64,
            checkpoint,
            parents: (0..i as u32 % 3).map(|p| u32::MAX - p).collect(),
        })
        .collect();
    round_trip_response(
        Api::GroupDescribe,
        Response::GroupTable {
            rows,
            workers: vec!["w", &name, ""],
        },
    );
    round_trip_response(Api::GroupCheckpoint, Response::GroupDone);
    round_trip_response(Api::GroupLeave, Response::GroupDone);
}

#[test]
fn a_concurrent_modification_error_answers_a_checkpoint() {
    let mut frame = Vec::new();
    let error = Error::new(ErrorCode::ConcurrentModification, "lease 3 moved");
    encode_error(&mut frame, Api::GroupCheckpoint as u16, 9, &error);
    let (header, reply) = decode_reply(&frame, &Limits::default()).unwrap();
    assert_eq!((header.api_key, header.request_id), (15, 9));
    assert_eq!(reply, Reply::Error(error));
}

fn request_error(frame: &[u8]) -> String {
    decode_request(frame, &Limits::default())
        .unwrap_err()
        .1
        .to_string()
}

fn reply_error(frame: &[u8]) -> String {
    decode_reply(frame, &Limits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn request_refusals() {
    // Names "s", "g", "w": failover_ms at 33, initial at 37, released at 38.
    let heartbeat = request_frame(&Request::GroupHeartbeat {
        stream: "s",
        group: "g",
        worker: "w",
        failover_ms: 1000,
        initial: InitialPosition::TrimHorizon,
        released: vec![1],
    });
    // shard at 33, counter at 37, checkpoint kind at 45, sub tag at 62.
    let checkpoint = request_frame(&Request::GroupCheckpoint {
        stream: "s",
        group: "g",
        worker: "w",
        shard_index: 1,
        counter: 1,
        checkpoint: AFTER_NO_SUB,
    });
    let long = "n".repeat(GROUP_NAME_CHARS_MAX as usize + 1);
    let many: Vec<u32> = (0..501).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "initial position 2",
            patched(&heartbeat, 37, &[2]),
            "malformed GroupHeartbeat: unknown initial position 2",
        ),
        (
            "released count past the bytes present",
            patched(&heartbeat, 38, &2u32.to_le_bytes()),
            "released claims 2 entries but only 4 bytes follow",
        ),
        (
            "released count u32::MAX",
            patched(&heartbeat, 38, &u32::MAX.to_le_bytes()),
            "released has 4294967295 entries, more than 500",
        ),
        (
            "501 released shards",
            request_frame(&Request::GroupHeartbeat {
                stream: "s",
                group: "g",
                worker: "w",
                failover_ms: 1000,
                initial: InitialPosition::Latest,
                released: many,
            }),
            "released has 501 entries, more than 500",
        ),
        (
            "a trailing byte",
            {
                let mut f = heartbeat.clone();
                f.push(0);
                let size = f.len() as u32;
                f[0..4].copy_from_slice(&size.to_le_bytes());
                patched(&f, 0, &[])
            },
            "1 trailing bytes",
        ),
        (
            "checkpoint kind 4",
            patched(&checkpoint, 45, &[4]),
            "malformed LeaseCheckpoint: unknown kind 4",
        ),
        (
            "checkpoint kind 255",
            patched(&checkpoint, 45, &[255]),
            "unknown kind 255",
        ),
        (
            "sub-sequence option tag 2",
            patched(&checkpoint, 62, &[2]),
            "bad sub_sequence_number option tag 2",
        ),
        (
            "a group name of 129 characters",
            request_frame(&Request::GroupDescribe {
                stream: "s",
                group: &long,
            }),
            "group is longer than 128 characters",
        ),
        (
            "a worker name of 129 characters",
            request_frame(&Request::GroupLeave {
                stream: "s",
                group: "g",
                worker: &long,
            }),
            "worker is longer than 128 characters",
        ),
        (
            "a stream name of 129 characters",
            request_frame(&Request::GroupLeave {
                stream: &long,
                group: "g",
                worker: "w",
            }),
            "stream is longer than 128 characters",
        ),
        (
            "a group name that is not UTF-8",
            patched(
                &request_frame(&Request::GroupDescribe {
                    stream: "s",
                    group: "g",
                }),
                29,
                &[0xff],
            ),
            "group is not UTF-8",
        ),
    ];
    for (what, frame, expected) in cases {
        let e = request_error(&frame);
        assert!(e.contains(expected), "{what}: {e}");
    }
}

#[test]
fn response_refusals() {
    let lease = |checkpoint, parents: Vec<u32>| {
        response_frame(
            Api::GroupHeartbeat,
            &Response::GroupLeases(vec![HeldLease {
                shard_index: 1,
                counter: 2,
                revoked: false,
                checkpoint,
                parents,
            }]),
        )
    };
    // Count at 24; shard 28, counter 32, revoked 40, kind 41, parents count 42.
    let shard_end = lease(LeaseCheckpoint::ShardEnd, vec![7]);
    // Kind 41, seq 42, sub tag 58, sub 59, parents count 63.
    let after = lease(AFTER_MAX, vec![]);
    let table = response_frame(
        Api::GroupDescribe,
        &Response::GroupTable {
            rows: vec![LeaseRow {
                shard_index: 1,
                owner: Some("w"),
                counter: 2,
                checkpoint: LeaseCheckpoint::Latest,
                parents: vec![],
            }],
            workers: vec!["w"],
        },
    );
    // Rows count 24; shard 28, owner tag 32, owner 33..36, counter 36, kind 44,
    // parents count 45; workers count 49, first worker 53.
    let long = "n".repeat(GROUP_NAME_CHARS_MAX as usize + 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "revoked 2",
            patched(&shard_end, 40, &[2]),
            "revoked is 2, not 0 or 1",
        ),
        (
            "checkpoint kind 4",
            patched(&shard_end, 41, &[4]),
            "unknown kind 4",
        ),
        (
            "sub-sequence option tag 7",
            patched(&after, 58, &[7]),
            "bad sub_sequence_number option tag 7",
        ),
        (
            "three parents",
            lease(LeaseCheckpoint::ShardEnd, vec![1, 2, 3]),
            "parents has 3 entries, more than 2",
        ),
        (
            "parents count past the bytes present",
            patched(&shard_end, 42, &2u32.to_le_bytes()),
            "parents claims 2 entries but only 4 bytes follow",
        ),
        (
            "leases count past the bytes present",
            patched(&shard_end, 24, &2u32.to_le_bytes()),
            "leases claims 2 entries but only 22 bytes follow",
        ),
        (
            "501 leases",
            response_frame(
                Api::GroupHeartbeat,
                &Response::GroupLeases(
                    (0..501)
                        .map(|i| HeldLease {
                            shard_index: i,
                            counter: 0,
                            revoked: false,
                            checkpoint: LeaseCheckpoint::TrimHorizon,
                            parents: vec![],
                        })
                        .collect(),
                ),
            ),
            "leases has 501 entries, more than 500",
        ),
        (
            "owner option tag 2",
            patched(&table, 32, &[2]),
            "bad owner option tag 2",
        ),
        (
            "rows count past the bytes present",
            patched(&table, 24, &u32::MAX.to_le_bytes()),
            "rows claims 4294967295 entries but only 28 bytes follow",
        ),
        (
            "workers count past the bytes present",
            patched(&table, 49, &3u32.to_le_bytes()),
            "workers claims 3 entries but only 3 bytes follow",
        ),
        (
            "row checkpoint kind 9",
            patched(&table, 44, &[9]),
            "unknown kind 9",
        ),
        (
            "an owner of 129 characters",
            response_frame(
                Api::GroupDescribe,
                &Response::GroupTable {
                    rows: vec![LeaseRow {
                        shard_index: 1,
                        owner: Some(&long),
                        counter: 2,
                        checkpoint: LeaseCheckpoint::Latest,
                        parents: vec![],
                    }],
                    workers: vec![],
                },
            ),
            "owner is longer than 128 characters",
        ),
        (
            "a worker of 129 characters",
            response_frame(
                Api::GroupDescribe,
                &Response::GroupTable {
                    rows: vec![],
                    workers: vec![&long],
                },
            ),
            "worker is longer than 128 characters",
        ),
        (
            "a body on GroupDone",
            response_frame(Api::GroupLeave, &Response::Pong { nonce: 0 }),
            "8 trailing bytes",
        ),
    ];
    for (what, frame, expected) in cases {
        let e = reply_error(&frame);
        assert!(e.contains(expected), "{what}: {e}");
    }
}

#[test]
fn a_lease_table_may_outgrow_the_open_shard_limit() {
    // Closed shards keep their rows after a reshard: the table is bounded by
    // the frame, not by `stream_shard_count_max`.
    let rows: Vec<LeaseRow<'_>> = (0..1500)
        .map(|i| LeaseRow {
            shard_index: i,
            owner: None,
            counter: 0,
            checkpoint: LeaseCheckpoint::ShardEnd,
            parents: vec![i / 2, i / 2 + 1],
        })
        .collect();
    let response = Response::GroupTable {
        rows,
        workers: vec![],
    };
    let frame = response_frame(Api::GroupDescribe, &response);
    let decoded = decode_reply(&frame, &Limits::default()).unwrap().1;
    assert_eq!(decoded, Reply::Response(response));
}

#[test]
fn the_largest_heartbeat_fits_the_request_frame_bound() {
    let limits = Limits::default();
    let name = "😀".repeat(GROUP_NAME_CHARS_MAX as usize);
    let stream = "😀".repeat(limits.stream_name_chars_max as usize);
    let request = Request::GroupHeartbeat {
        stream: &stream,
        group: &name,
        worker: &name,
        failover_ms: u32::MAX,
        initial: InitialPosition::Latest,
        released: (0..limits.stream_shard_count_max).collect(),
    };
    let frame = request_frame(&request);
    assert_eq!(frame.len() as u64, heartbeat_request_size_max(&limits));
    assert!(heartbeat_request_size_max(&limits) <= request_frame_size_max(&limits) as u64);
    assert_eq!(decode_request(&frame, &limits).unwrap().1, request);
    // A server configured for more shards still holds the heartbeat: the
    // request bound grows with PutRecords' limits, not with the shard count,
    // so check the margin at a large shard limit too.
    let many = Limits {
        stream_shard_count_max: 100_000,
        ..Limits::default()
    };
    assert!(heartbeat_request_size_max(&many) <= request_frame_size_max(&many) as u64);
}
