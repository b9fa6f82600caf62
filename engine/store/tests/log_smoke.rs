//! Smoke test of the shard log on the simulated disk: append, flush, read back,
//! roll, reopen.

use std::path::Path;

use futures_lite::future::block_on;
use riffle_protocol::batch::{BatchBuilder, RecordIn};
use riffle_store::log::{self, LogConfig, ShardLog};
use riffle_store::sim::SimStorage;

fn batch(i: u64, n: usize) -> rkyv::util::AlignedVec<16> {
    let keys: Vec<String> = (0..n).map(|j| format!("k{i}-{j}")).collect();
    let data: Vec<Vec<u8>> = (0..n)
        .map(|j| format!("record {i}/{j}").into_bytes())
        .collect();
    let recs: Vec<RecordIn<'_>> = (0..n)
        .map(|j| RecordIn {
            partition_key: &keys[j],
            explicit_hash_key: None,
            data: &data[j],
            arrival_ms: 0,
        })
        .collect();
    BatchBuilder::new().encode(&recs)
}

#[test]
fn append_read_roll_reopen() {
    block_on(async {
        let storage = SimStorage::new(7);
        let dir = Path::new("/data/s/0");
        let config = LogConfig {
            segment_size_max: 8192,
            write_size: 4096,
            index_interval_bytes: 1024,
            read_size: 4096,
            ..LogConfig::default()
        };
        let mut log = ShardLog::open(storage.clone(), dir, config.clone())
            .await
            .unwrap();
        for i in 0..100u64 {
            let mut b = batch(i, 3);
            if log.needs_roll(b.len(), 1000 + i as i64) {
                log.roll().await.unwrap();
            }
            let a = log.append(&mut b, 1000 + i as i64).unwrap();
            assert_eq!(a.base_offset, i * 3);
            if i % 7 == 0 {
                log.flush().await.unwrap();
            }
        }
        assert_eq!(log.flush().await.unwrap(), 300);
        let out = log::read(log.view(), 0, 10_000, 10 << 20, 4096)
            .await
            .unwrap();
        assert_eq!(out.record_count, 300);
        let mut n = 0u64;
        for span in &out.spans {
            for r in span.records() {
                assert_eq!(r.data(), format!("record {}/{}", n / 3, n % 3).as_bytes());
                n += 1;
            }
        }
        let segs = log.view().borrow().segments.len();
        assert!(segs > 3, "rolled into {segs} segments");
        drop(log);
        let storage = storage.restart();
        let log = ShardLog::open(storage, dir, config).await.unwrap();
        assert_eq!(log.next_offset(), 300);
        let out = log::read(log.view(), 150, 10, 10 << 20, 4096)
            .await
            .unwrap();
        assert_eq!(out.record_count, 10);
        assert_eq!(out.spans[0].records()[0].data(), b"record 50/0");
        assert_eq!(log::offset_at_time(log.view(), 1050).await.unwrap(), 150);
    })
}
