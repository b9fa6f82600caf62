//! riffle-client's async client from tokio, through tokio-util's compat adapter
//! (futures-io over tokio's TcpStream), against the real server: the client
//! names no runtime, so a tokio application uses it unchanged.

use riffle_client::{AsyncClient, AsyncClientConfig, PutRecordsEntry, StartPosition};
use riffle_tests::{Server, data_dir};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[test]
fn the_async_client_runs_on_tokio() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let read = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let client = AsyncClient::new(tcp.compat(), AsyncClientConfig::default());
        client.ping().await.unwrap();
        client.create_stream("t", 2).await.unwrap();
        let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
        let entries: Vec<PutRecordsEntry<'_>> = keys
            .iter()
            .map(|k| PutRecordsEntry {
                partition_key: k,
                explicit_hash_key: None,
                data: k.as_bytes(),
            })
            .collect();
        let puts = client.put_records("t", &entries).await.unwrap();
        assert!(puts.iter().all(|p| p.is_ok()));
        let mut read = Vec::new();
        for shard in 0..2 {
            let it = client
                .get_shard_iterator("t", shard, StartPosition::TrimHorizon)
                .await
                .unwrap();
            let got = client.get_records(&it, None).await.unwrap();
            read.extend(got.records.into_iter().map(|r| r.data));
        }
        // A subscription pushes a record put after it started.
        let mut sub = client
            .subscribe("t", 0, StartPosition::Latest)
            .await
            .unwrap();
        client
            .put_record("t", "late", Some(0), b"pushed")
            .await
            .unwrap();
        let event = sub.next().await.unwrap().unwrap();
        read.push(event.records[0].data.clone());
        read
    });
    let mut expected: Vec<Vec<u8>> = (0..20).map(|i| format!("key-{i}").into_bytes()).collect();
    expected.push(b"pushed".to_vec());
    let mut got = read.clone();
    got[..20].sort();
    expected[..20].sort();
    assert_eq!(got, expected);
}
