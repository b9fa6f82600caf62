//! Smoke workload of the shard log: append, flush, read back, roll, reopen.

use std::path::Path;

use riffle_protocol::batch::{BatchBuilder, RecordIn};

use super::{Machine, reopen, wipe};
use crate::log::{self, LogConfig, ShardLog};

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

/// 100 batches of 3 records over several segments, flushed now and then; all read
/// back; then after a restart (a reopen where the machine cannot restart) the next
/// offset, a read from the middle and a time seek.
pub async fn append_read_roll_reopen<M: Machine>(dir: &Path) {
    let mut machine = M::boot(7);
    wipe(&machine.storage(), dir).await;
    let config = LogConfig {
        segment_size_max: 8192,
        write_size: 4096,
        index_interval_bytes: 1024,
        read_size: 4096,
        ..LogConfig::default()
    };
    let mut log = ShardLog::open(machine.storage(), dir, config.clone())
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
    let log = reopen(&mut machine, Some(log), dir, &config, true)
        .await
        .unwrap();
    assert_eq!(log.next_offset(), 300);
    let out = log::read(log.view(), 150, 10, 10 << 20, 4096)
        .await
        .unwrap();
    assert_eq!(out.record_count, 10);
    assert_eq!(out.spans[0].records()[0].data(), b"record 50/0");
    assert_eq!(log::offset_at_time(log.view(), 1050).await.unwrap(), 150);
}
