//! The native protocol server in process, driven by riffle-client's async
//! client on a glommio executor (the same futures-io path a glommio
//! application uses): every core accepts, requests run concurrently on one
//! connection, subscriptions push as records commit, and shutdown ends
//! subscriptions with END and finishes in-flight requests.

use std::net::SocketAddr;
use std::time::Duration;

use riffle_client::{AsyncClient, AsyncClientConfig, ClientError, PutRecordsEntry, StartPosition};
use riffle_engine::net::{NativeServer, NetConfig};
use riffle_engine::rt;
use riffle_engine::{Engine, EngineConfig, join_all};
use riffle_protocol::ErrorCode;

fn start(dir: &std::path::Path) -> (Engine, NativeServer) {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    config.pin = false;
    let engine = Engine::start(config).unwrap();
    let server =
        NativeServer::start(&engine, NetConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    (engine, server)
}

fn client_on_executor<T: Send + 'static, F: Future<Output = T> + 'static>(
    addr: SocketAddr,
    body: impl FnOnce(AsyncClient<rt::net::Connection>) -> F + Send + 'static,
) -> T {
    rt::block_on_local(move || async move {
        let conn = rt::net::connect(addr).await.expect("connect");
        body(AsyncClient::new(conn, AsyncClientConfig::default())).await
    })
    .unwrap()
}

#[test]
fn async_client_on_glommio_runs_every_operation() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (engine, server) = start(dir.path());
    let addr = server.local_addr();
    let (records, subscribed) = client_on_executor(addr, |c| async move {
        c.ping().await.unwrap();
        c.create_stream("g", 4).await.unwrap();
        assert_eq!(c.list_streams().await.unwrap(), vec!["g".to_string()]);
        assert_eq!(c.describe_stream("g").await.unwrap().shards.len(), 4);
        let err = c.create_stream("g", 1).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ResourceInUse));
        // Several calls in flight on one connection at once.
        let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
        let puts = join_all(
            keys.iter()
                .map(|k| c.put_record("g", k, None, k.as_bytes()))
                .collect(),
        )
        .await;
        assert!(puts.iter().all(|p| p.is_ok()), "{puts:?}");
        let entries: Vec<PutRecordsEntry<'_>> = keys
            .iter()
            .map(|k| PutRecordsEntry {
                partition_key: k,
                explicit_hash_key: None,
                data: b"batched",
            })
            .collect();
        let batched = c.put_records("g", &entries).await.unwrap();
        assert!(batched.iter().all(|r| r.is_ok()));
        let mut total = 0;
        for shard in 0..4 {
            let it = c
                .get_shard_iterator("g", shard, StartPosition::TrimHorizon)
                .await
                .unwrap();
            let got = c.get_records(&it, None).await.unwrap();
            for r in &got.records {
                assert_eq!(r.position().0, shard);
            }
            total += got.records.len();
        }
        // A subscription from LATEST gets a record put after it started.
        let mut sub = c.subscribe("g", 0, StartPosition::Latest).await.unwrap();
        let put = c.put_record("g", "any", Some(0), b"pushed").await.unwrap();
        assert_eq!(put.shard_index, 0);
        let event = sub.next().await.unwrap().unwrap();
        let pushed = event
            .records
            .iter()
            .map(|r| r.data.clone())
            .collect::<Vec<_>>();
        (total, pushed)
    });
    assert_eq!(records, 80);
    assert_eq!(subscribed, vec![b"pushed".to_vec()]);
    server.shutdown(Duration::from_secs(5));
    engine.shutdown().unwrap();
}

#[test]
fn shutdown_ends_subscriptions_and_stops_accepting() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (engine, server) = start(dir.path());
    let addr = server.local_addr();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let subscriber = std::thread::spawn(move || {
        client_on_executor(addr, move |c| async move {
            c.create_stream("s", 1).await.unwrap();
            c.put_record("s", "k", None, b"old").await.unwrap();
            let mut sub = c
                .subscribe("s", 0, StartPosition::TrimHorizon)
                .await
                .unwrap();
            let first = sub.next().await.unwrap().unwrap();
            assert_eq!(first.records[0].data, b"old");
            ready_tx.send(()).unwrap();
            // The server stops: the subscription ends with an END push.
            loop {
                match sub.next().await {
                    Some(Ok(e)) if e.end => return Ok(e.next_offset),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e),
                    None => return Err(ClientError::Closed),
                }
            }
        })
    });
    ready_rx.recv().unwrap();
    server.shutdown(Duration::from_secs(10));
    assert_eq!(
        subscriber.join().unwrap().unwrap(),
        1,
        "END carries the continuation"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no core accepts any more"
    );
    engine.shutdown().unwrap();
}
