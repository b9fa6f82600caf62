//! riffle-client's zero-copy side against the real server: `put_batches` of
//! batches the caller encoded and routed, `get_records_view` and
//! `AsyncSubscription::next_view` reading records in place.

use riffle_client::{AsyncClient, AsyncClientConfig, ClientError, ErrorCode, StartPosition};
use riffle_engine::rt;
use riffle_protocol::batch::{BatchBuilder, RecordIn};
use riffle_tests::{Server, data_dir};

fn encode(keys: &[&str], data: &[&[u8]]) -> rkyv::util::AlignedVec<16> {
    let records: Vec<RecordIn<'_>> = keys
        .iter()
        .zip(data)
        .map(|(k, d)| RecordIn {
            partition_key: k,
            explicit_hash_key: None,
            data: d,
            arrival_ms: 0,
        })
        .collect();
    BatchBuilder::new().encode(&records)
}

#[test]
fn batches_put_as_encoded_are_read_back_in_place() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let addr = server.addr;
    rt::block_on_local(move || async move {
        let conn = rt::net::connect(addr).await.unwrap();
        let client = AsyncClient::new(conn, AsyncClientConfig::default());
        client.create_stream("v", 2).await.unwrap();
        let table = client.routing_table("v").await.unwrap();

        // Shard 1 gets a subscription before anything is written.
        let mut sub = client
            .subscribe("v", 1, StartPosition::TrimHorizon)
            .await
            .unwrap();

        let first = encode(&["a", "b", "c"], &[b"one", b"two", b"three"]);
        let second = encode(&["d"], &[b"four"]);
        let results = client
            .put_batches("v", table.stream_id(), &[(0, &first), (1, &second)])
            .await
            .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(
            (results[0].shard_index, results[0].outcome.clone().unwrap()),
            (0, (0, 3))
        );
        assert_eq!(
            (results[1].shard_index, results[1].outcome.clone().unwrap()),
            (1, (0, 1))
        );
        // Appended again: offsets continue.
        let again = client
            .put_batches("v", table.stream_id(), &[(0, &second)])
            .await
            .unwrap();
        assert_eq!(again[0].outcome.clone().unwrap(), (3, 1));

        // Read shard 0 from offset 1 in place: records 1..4, with their offsets.
        let it = client
            .get_shard_iterator("v", 0, riffle_client::continuation(0, 1))
            .await
            .unwrap();
        let (read, next_offset, has_next) = client
            .get_records_view(&it, None, |v| {
                let read: Vec<(u64, String, Vec<u8>)> = v
                    .records()
                    .map(|(o, r)| (o, r.partition_key().to_owned(), r.data().to_vec()))
                    .collect();
                assert_eq!(v.len(), read.len());
                assert!(!v.is_empty());
                (read, v.next_offset, v.next_iterator.is_some())
            })
            .await
            .unwrap();
        assert_eq!(
            read,
            vec![
                (1, "b".to_owned(), b"two".to_vec()),
                (2, "c".to_owned(), b"three".to_vec()),
                (3, "d".to_owned(), b"four".to_vec()),
            ]
        );
        assert_eq!((next_offset, has_next), (4, true));

        // The subscription got shard 1's record in place.
        let pushed = sub
            .next_view(|v| {
                v.records()
                    .map(|(o, r)| (o, r.data().to_vec()))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pushed, vec![(0, b"four".to_vec())]);

        // Refusals: a limit of 0, no batches, a stale incarnation, a corrupt batch.
        let e = client
            .get_records_view(&it, Some(0), |_| ())
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
        let e = client.put_batches("v", 0, &[]).await.unwrap_err();
        assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
        let e = client
            .put_batches("v", table.stream_id() + 1, &[(0, &first)])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::ResourceNotFound), "{e:?}");
        let mut corrupt = first.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let refused = client
            .put_batches("v", table.stream_id(), &[(0, &corrupt)])
            .await
            .unwrap();
        assert!(refused[0].outcome.is_err(), "{refused:?}");
        // Nothing of the refused requests landed.
        let it = client
            .get_shard_iterator("v", 0, StartPosition::TrimHorizon)
            .await
            .unwrap();
        let count = client
            .get_records_view(&it, None, |v| v.len())
            .await
            .unwrap();
        assert_eq!(count, 4);
    })
    .unwrap();
}
