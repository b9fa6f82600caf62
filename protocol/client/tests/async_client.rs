//! The async client over a non-blocking std socket (a minimal futures-io
//! adapter), driven by `futures_lite::future::block_on`: concurrent calls on one
//! connection with out-of-order replies, cancelled calls, subscriptions, and a
//! lost connection.

mod common;

use std::pin::Pin;
use std::task::Context;

use common::{Fake, Script, Spin, within_timeout};
use futures_lite::future::{self, block_on};
use riffle_client::{AsyncClient, AsyncClientConfig, ClientError, PutRecordsEntry, StartPosition};
use riffle_protocol::native::{Request, Response, StreamInfo};

/// A minimal single-threaded executor: each task is polled only when its own
/// waker fired. Unlike `zip`, which polls every branch whenever any is woken,
/// this catches a call left waiting with nobody to wake it.
fn run_tasks(tasks: Vec<Pin<Box<dyn std::future::Future<Output = ()> + '_>>>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    struct Flag(AtomicBool, std::thread::Thread);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref()
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
            self.1.unpark();
        }
    }
    let mut tasks: Vec<_> = tasks
        .into_iter()
        .map(|t| {
            let flag = Arc::new(Flag(AtomicBool::new(true), std::thread::current()));
            (Some(t), flag)
        })
        .collect();
    while tasks.iter().any(|(t, _)| t.is_some()) {
        let mut polled = false;
        for (task, flag) in tasks.iter_mut() {
            if task.is_none() || !flag.0.swap(false, Ordering::SeqCst) {
                continue;
            }
            polled = true;
            let waker = std::task::Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            if let Some(t) = task.as_mut()
                && t.as_mut().poll(&mut cx).is_ready()
            {
                *task = None;
            }
        }
        if !polled {
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn concurrent_calls_get_their_own_out_of_order_replies() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        let requests = conn.recv_n(4);
        for r in requests.iter().rev() {
            match r.request() {
                Request::DescribeStream { stream } => conn.reply(
                    r,
                    &Response::Stream(StreamInfo {
                        name: stream,
                        status: "ACTIVE",
                        retention_hours: 24,
                        created_ms: 0,
                        shards: vec![],
                    }),
                ),
                Request::Ping { nonce } => conn.reply(r, &Response::Pong { nonce }),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(!script.has_pending_connection());
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        let (a, (b, (c, ping))) = block_on(future::zip(
            client.describe_stream("a"),
            future::zip(
                client.describe_stream("b"),
                future::zip(client.describe_stream("c"), client.ping()),
            ),
        ));
        assert_eq!(a.unwrap().name, "a");
        assert_eq!(b.unwrap().name, "b");
        assert_eq!(c.unwrap().name, "c");
        assert!(ping.is_ok());
    });
    server.join().unwrap();
}

#[test]
fn calls_in_separate_tasks_hand_the_connection_over() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        let pong = |conn: &mut common::ScriptConn, r: &common::Received| {
            let Request::Ping { nonce } = r.request() else {
                panic!("unexpected {:?}", r.request());
            };
            conn.reply(r, &Response::Pong { nonce });
        };
        // Four tasks ping; only the first is answered. Its task pings again and
        // finishes; only then are the other three answered, so one of them
        // must have taken over reading when the first task left.
        let first = conn.recv_n(4);
        pong(&mut conn, &first[0]);
        let again = conn.recv();
        pong(&mut conn, &again);
        let _ = conn.recv(); // The first task's last call, sent as it finishes.
        for r in first[1..].iter().rev() {
            pong(&mut conn, r);
        }
        assert!(conn.wait_closed());
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        let client = &client;
        let mut tasks: Vec<Pin<Box<dyn std::future::Future<Output = ()>>>> =
            vec![Box::pin(async move {
                client.ping().await.unwrap();
                client.ping().await.unwrap();
                // Queued, then abandoned: dropping it must hand over as well.
                let mut last = Box::pin(client.ping());
                let r = future::poll_once(&mut last).await;
                assert!(r.is_none(), "{r:?}");
            })];
        for _ in 0..3 {
            tasks.push(Box::pin(async move {
                client.ping().await.unwrap();
            }));
        }
        run_tasks(tasks);
    });
    server.join().unwrap();
}

#[test]
fn a_dropped_call_does_not_disturb_the_others() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        let requests = conn.recv_n(2);
        // Answer the abandoned call too: its reply must be dropped.
        conn.reply(&requests[0], &Response::StreamNames(vec!["abandoned"]));
        conn.reply(&requests[1], &Response::StreamNames(vec!["kept"]));
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        block_on(async {
            let mut abandoned = Box::pin(client.list_streams());
            assert!(future::poll_once(&mut abandoned).await.is_none());
            drop(abandoned);
            assert_eq!(client.list_streams().await.unwrap(), ["kept"]);
        });
    });
    server.join().unwrap();
}

#[test]
fn every_operation_and_a_subscription_against_the_fake() {
    let fake = Fake::start();
    let addr = fake.addr();
    let fake = std::sync::Arc::new(fake);
    let fake2 = fake.clone();
    within_timeout(move || {
        let fake = fake2;
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        block_on(async {
            client.create_stream("s", 2).await.unwrap();
            assert_eq!(client.list_streams().await.unwrap(), ["s"]);
            assert_eq!(client.list_shards("s").await.unwrap().len(), 2);
            let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
            let entries: Vec<_> = keys
                .iter()
                .map(|k| PutRecordsEntry {
                    partition_key: k,
                    explicit_hash_key: None,
                    data: k.as_bytes(),
                })
                .collect();
            let results = client.put_records("s", &entries).await.unwrap();
            assert!(results.iter().all(|r| r.is_ok()));
            let put = client.put_record("s", "k0", None, b"last").await.unwrap();

            let it = client
                .get_shard_iterator("s", put.shard_index, StartPosition::TrimHorizon)
                .await
                .unwrap();
            let out = client.get_records(&it, None).await.unwrap();
            assert_eq!(out.records.last().unwrap().data, b"last");
            assert_eq!(
                out.records.last().unwrap().sequence_number,
                put.sequence_number
            );

            let mut sub = client
                .subscribe("s", put.shard_index, StartPosition::Latest)
                .await
                .unwrap();
            // A push arrives while another call is in flight on the connection.
            let (event, ping) = future::zip(sub.next(), async {
                let ping = client.ping().await;
                fake.append("s", put.shard_index, &[("k0", b"pushed")]);
                ping
            })
            .await;
            assert!(ping.is_ok());
            let event = event.unwrap().unwrap();
            assert_eq!(event.records.len(), 1);
            assert_eq!(event.records[0].data, b"pushed");
            sub.unsubscribe().await.unwrap();
            fake.wait_subscribers(|n| n == 0);
            client.delete_stream("s").await.unwrap();
        });
    });
}

#[test]
fn a_lost_connection_fails_pending_and_later_calls() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        conn.recv_n(2);
        conn.close();
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        let (a, b) = block_on(future::zip(
            client.create_stream("s", 1),
            client.list_streams(),
        ));
        for err in [a.unwrap_err(), b.unwrap_err()] {
            assert!(
                matches!(
                    err,
                    ClientError::ConnectionLost {
                        request_sent: true,
                        ..
                    }
                ),
                "{err}"
            );
        }
        let err = block_on(client.ping()).unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::ConnectionLost {
                    request_sent: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(client.failure().is_some());
    });
    server.join().unwrap();
}

#[test]
fn an_unread_subscription_that_overflows_fails_with_lagged() {
    let script = Script::bind();
    let addr = script.addr();
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        let subscribe = conn.recv();
        conn.reply(&subscribe, &Response::Done);
        let empty = riffle_protocol::native::Records {
            shard_index: 0,
            millis_behind_latest: 0,
            next_offset: 0,
            next_iterator: None,
            spans: vec![],
        };
        let ping = conn.recv();
        for _ in 0..3 {
            conn.push(subscribe.id(), &empty, false);
        }
        let Request::Ping { nonce } = ping.request() else {
            panic!("unexpected {:?}", ping.request());
        };
        conn.reply(&ping, &Response::Pong { nonce });
        // The client gives the subscription up.
        assert_eq!(
            conn.recv().request(),
            Request::Unsubscribe {
                subscription_id: subscribe.id()
            }
        );
    });
    within_timeout(move || {
        let config = AsyncClientConfig {
            subscription_frames_max: 2,
            ..AsyncClientConfig::default()
        };
        let client = AsyncClient::new(Spin::connect(addr), config);
        block_on(async {
            let mut sub = client
                .subscribe("s", 0, StartPosition::Latest)
                .await
                .unwrap();
            // The ping reads the three pushes; the subscription holds only two.
            client.ping().await.unwrap();
            let err = sub.next().await.unwrap().unwrap_err();
            assert!(
                matches!(err, ClientError::Lagged { frames_max: 2 }),
                "{err}"
            );
            assert!(sub.next().await.is_none());
            // The queued Unsubscribe goes out with the next call's write.
            let _ = future::poll_once(Box::pin(client.ping())).await;
        });
    });
    server.join().unwrap();
}

#[test]
fn authenticate_proves_the_secret_without_sending_it() {
    let script = Script::bind();
    let addr = script.addr();
    let nonce = [7u8; riffle_protocol::native::auth::NONCE_LEN];
    let server = std::thread::spawn(move || {
        let mut conn = script.accept();
        let challenge = conn.recv();
        assert!(matches!(challenge.request(), Request::AuthChallenge));
        conn.reply(&challenge, &Response::Challenge { nonce });
        let auth = conn.recv();
        let Request::Authenticate {
            access_key_id,
            proof,
        } = auth.request()
        else {
            panic!("expected Authenticate, got {:?}", auth.api());
        };
        assert_eq!(access_key_id, "AKIDASYNC");
        assert!(riffle_protocol::native::auth::proof_matches(
            "async-secret",
            &nonce,
            "AKIDASYNC",
            &proof
        ));
        conn.reply(
            &auth,
            &Response::Authenticated {
                principal: "arn:aws:iam::000000000000:user/async",
            },
        );
    });
    within_timeout(move || {
        let client = AsyncClient::new(Spin::connect(addr), AsyncClientConfig::default());
        let credentials = riffle_client::Credentials {
            access_key_id: "AKIDASYNC".into(),
            secret_access_key: "async-secret".into(),
        };
        let principal = block_on(client.authenticate(&credentials)).unwrap();
        assert_eq!(principal, "arn:aws:iam::000000000000:user/async");
    });
    server.join().unwrap();
}
