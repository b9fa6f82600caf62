//! Consumer groups' calls (`group_heartbeat`, `group_checkpoint`,
//! `group_describe`, `group_leave`) against the scripted server: each request
//! as the server received it, each answer as the caller gets it, server errors
//! with their code, resends after a lost connection, wrong answers refused, and
//! the same calls on the async client.

mod common;

use std::thread::JoinHandle;
use std::time::Duration;

use common::{Fake, Received, Script, ScriptConn, Spin, within_timeout};
use futures_lite::future::block_on;
use riffle_client::{
    AsyncClient, AsyncClientConfig, Client, ClientConfig, ClientError, ErrorCode, GroupDescription,
    GroupLease, HeldLease, InitialPosition, LeaseCheckpoint,
};
use riffle_protocol::Error;
use riffle_protocol::native::{LeaseRow, Request, Response};

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(5),
        reconnect_backoff_initial: Duration::from_millis(5),
        reconnect_backoff_max: Duration::from_millis(50),
        ..ClientConfig::default()
    }
}

fn spawn<T: Send + 'static>(
    client: &Client,
    f: impl FnOnce(Client) -> T + Send + 'static,
) -> JoinHandle<T> {
    let client = client.clone();
    std::thread::spawn(move || f(client))
}

const AFTER: LeaseCheckpoint = LeaseCheckpoint::After {
    sequence_number: u128::MAX,
    sub_sequence_number: Some(3),
};

fn held_leases() -> Vec<HeldLease> {
    vec![
        HeldLease {
            shard_index: 0,
            counter: 4,
            revoked: false,
            checkpoint: AFTER,
            parents: vec![],
        },
        HeldLease {
            shard_index: 3,
            counter: u64::MAX,
            revoked: true,
            checkpoint: LeaseCheckpoint::TrimHorizon,
            parents: vec![1, 2],
        },
    ]
}

fn table() -> Response<'static> {
    Response::GroupTable {
        rows: vec![
            LeaseRow {
                shard_index: 1,
                owner: None,
                counter: 2,
                checkpoint: LeaseCheckpoint::ShardEnd,
                parents: vec![],
            },
            LeaseRow {
                shard_index: 2,
                owner: Some("w1"),
                counter: 7,
                checkpoint: AFTER,
                parents: vec![1],
            },
        ],
        workers: vec!["w1", "w2"],
    }
}

fn description() -> GroupDescription {
    GroupDescription {
        leases: vec![
            GroupLease {
                shard_index: 1,
                owner: None,
                counter: 2,
                checkpoint: LeaseCheckpoint::ShardEnd,
                parents: vec![],
            },
            GroupLease {
                shard_index: 2,
                owner: Some("w1".into()),
                counter: 7,
                checkpoint: AFTER,
                parents: vec![1],
            },
        ],
        workers: vec!["w1".into(), "w2".into()],
    }
}

/// The request every call below sends, in order.
fn expected_requests() -> Vec<Request<'static>> {
    vec![
        Request::GroupHeartbeat {
            stream: "orders",
            group: "billing",
            worker: "host-1:99",
            failover_ms: 10_000,
            initial: InitialPosition::Latest,
            released: vec![3, 5],
        },
        Request::GroupCheckpoint {
            stream: "orders",
            group: "billing",
            worker: "host-1:99",
            shard_index: 0,
            counter: 4,
            checkpoint: AFTER,
        },
        Request::GroupDescribe {
            stream: "orders",
            group: "billing",
        },
        Request::GroupLeave {
            stream: "orders",
            group: "billing",
            worker: "host-1:99",
        },
    ]
}

/// The answer to each request of `expected_requests`.
fn answer(conn: &mut ScriptConn, r: &Received) {
    match r.request() {
        Request::GroupHeartbeat { .. } => conn.reply(r, &Response::GroupLeases(held_leases())),
        Request::GroupCheckpoint { .. } | Request::GroupLeave { .. } => {
            conn.reply(r, &Response::GroupDone)
        }
        Request::GroupDescribe { .. } => conn.reply(r, &table()),
        other => panic!("unexpected {other:?}"),
    }
}

/// Makes call `i` of `expected_requests` and checks its result.
fn call(client: &Client, i: usize) {
    match i {
        0 => assert_eq!(
            client
                .group_heartbeat(
                    "orders",
                    "billing",
                    "host-1:99",
                    10_000,
                    InitialPosition::Latest,
                    &[3, 5],
                )
                .unwrap(),
            held_leases()
        ),
        1 => client
            .group_checkpoint("orders", "billing", "host-1:99", 0, 4, AFTER)
            .unwrap(),
        2 => assert_eq!(
            client.group_describe("orders", "billing").unwrap(),
            description()
        ),
        _ => client
            .group_leave("orders", "billing", "host-1:99")
            .unwrap(),
    }
}

#[test]
fn each_call_sends_its_request_and_gets_its_answer() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    for (i, expected) in expected_requests().into_iter().enumerate() {
        let caller = spawn(&client, move |c| call(&c, i));
        let r = conn.recv();
        assert_eq!(r.request(), expected);
        answer(&mut conn, &r);
        caller.join().unwrap();
    }
}

#[test]
fn a_refused_checkpoint_keeps_the_server_error_code() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let caller = spawn(&client, |c| {
        c.group_checkpoint("orders", "billing", "w", 3, 8, LeaseCheckpoint::ShardEnd)
    });
    let r = conn.recv();
    conn.error(
        &r,
        Error::new(
            ErrorCode::ConcurrentModification,
            "worker w does not hold the lease of shard 3 with counter 8",
        ),
    );
    let e = caller.join().unwrap().unwrap_err();
    match &e {
        ClientError::Server(error) => {
            assert_eq!(error.code, ErrorCode::ConcurrentModification);
            assert!(error.message.contains("does not hold the lease"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
}

#[test]
fn every_call_is_resent_after_a_lost_connection() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    for (i, expected) in expected_requests().into_iter().enumerate() {
        let caller = spawn(&client, move |c| call(&c, i));
        assert_eq!(conn.recv().request(), expected);
        // The request was sent; its reply is lost with the connection.
        conn.close();
        conn = script.accept();
        let r = conn.recv();
        assert_eq!(r.request(), expected, "call {i} resent as it was");
        answer(&mut conn, &r);
        caller.join().unwrap();
    }
}

#[test]
fn wrong_answers_are_protocol_errors() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let heartbeat =
        |c: Client| c.group_heartbeat("s", "g", "w", 10_000, InitialPosition::TrimHorizon, &[]);

    let caller = spawn(&client, heartbeat);
    let r = conn.recv();
    conn.reply(&r, &Response::GroupDone);
    let e = caller.join().unwrap().unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("malformed GroupHeartbeat: body ends at byte 24")),
        "{e:?}"
    );

    let caller = spawn(&client, heartbeat);
    let r = conn.recv();
    let mut twice = held_leases();
    twice[1].shard_index = 0;
    conn.reply(&r, &Response::GroupLeases(twice));
    let e = caller.join().unwrap().unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("listed shard 0 twice among its leases")),
        "{e:?}"
    );

    let caller = spawn(&client, |c| c.group_describe("s", "g"));
    let r = conn.recv();
    conn.reply(&r, &Response::GroupLeases(vec![]));
    let e = caller.join().unwrap().unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e:?}");

    // The connection is still good for the next call.
    let caller = spawn(&client, |c| c.group_leave("s", "g", "w"));
    let r = conn.recv();
    conn.reply(&r, &Response::GroupDone);
    caller.join().unwrap().unwrap();
}

#[test]
fn refused_input_sends_nothing() {
    let script = Script::bind();
    let client = Client::connect(script.addr(), config()).unwrap();
    let mut conn = script.accept();
    let e = client
        .group_checkpoint("s", "g", "w", 0, 1, LeaseCheckpoint::TrimHorizon)
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains("not TrimHorizon")),
        "{e:?}"
    );
    let released: Vec<u32> = (0..501).collect();
    let e = client
        .group_heartbeat("s", "g", "w", 1000, InitialPosition::Latest, &released)
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains("at most 500 shards, got 501")),
        "{e:?}"
    );
    let e = client.group_leave("s", "g", &"w".repeat(129)).unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
    // The first request the server sees is the next valid call.
    let caller = spawn(&client, |c| c.group_describe("s", "g"));
    let r = conn.recv();
    assert_eq!(
        r.request(),
        Request::GroupDescribe {
            stream: "s",
            group: "g"
        }
    );
    conn.reply(
        &r,
        &Response::GroupTable {
            rows: vec![],
            workers: vec![],
        },
    );
    assert_eq!(
        caller.join().unwrap().unwrap(),
        GroupDescription {
            leases: vec![],
            workers: vec![],
        }
    );
}

#[test]
fn a_server_without_consumer_groups_refuses_them() {
    let fake = Fake::start();
    let client = Client::connect(fake.addr(), config()).unwrap();
    let e = client.group_describe("s", "g").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
}

#[test]
fn the_async_client_makes_the_same_calls() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        for expected in expected_requests() {
            let r = conn.recv();
            assert_eq!(r.request(), expected);
            answer(&mut conn, &r);
        }
        let r = conn.recv();
        conn.error(
            &r,
            Error::new(ErrorCode::ConcurrentModification, "lease moved"),
        );
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        block_on(async {
            let leases = client
                .group_heartbeat(
                    "orders",
                    "billing",
                    "host-1:99",
                    10_000,
                    InitialPosition::Latest,
                    &[3, 5],
                )
                .await
                .unwrap();
            assert_eq!(leases, held_leases());
            client
                .group_checkpoint("orders", "billing", "host-1:99", 0, 4, AFTER)
                .await
                .unwrap();
            assert_eq!(
                client.group_describe("orders", "billing").await.unwrap(),
                description()
            );
            client
                .group_leave("orders", "billing", "host-1:99")
                .await
                .unwrap();
            let e = client
                .group_checkpoint("orders", "billing", "w", 0, 4, LeaseCheckpoint::ShardEnd)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::ConcurrentModification), "{e}");
        });
    });
    server.join().unwrap();
}
