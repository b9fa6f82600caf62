//! Smoke workload of the shard log: append, flush, read back, roll, reopen.

use std::path::Path;

use riffle_protocol::batch::{BatchBuilder, RecordIn, ValidBatch};

use super::{Machine, reopen, wipe};
use crate::log::{self, LogConfig, ShardLog};

fn batch(i: u64, n: usize) -> ValidBatch {
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
    BatchBuilder::new().build(&recs)
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

/// Length of the segment file with base offset `base`.
async fn segment_len<S: crate::storage::Storage>(storage: &S, dir: &Path, base: u64) -> u64 {
    use crate::storage::StorageFile;
    let path = dir.join(crate::segment::segment_file_name(base));
    storage
        .open(&path, false)
        .await
        .unwrap()
        .len()
        .await
        .unwrap()
}

/// The active segment's space is reserved a step at a time ahead of its data,
/// never past the segment size; a sealed segment gives the rest back; a reopen
/// reserves again from where the data ends. Records read back intact throughout.
pub async fn reservation_grows_in_steps<M: Machine>(dir: &Path) {
    const STEP: u64 = 64 << 10;
    let mut machine = M::boot(11);
    wipe(&machine.storage(), dir).await;
    let config = LogConfig {
        segment_size_max: 512 << 10,
        preallocate: true,
        preallocate_step: STEP,
        write_size: 4096,
        index_interval_bytes: 4096,
        read_size: 64 << 10,
        ..LogConfig::default()
    };
    let storage = machine.storage();
    let mut log = ShardLog::open(machine.storage(), dir, config.clone())
        .await
        .unwrap();
    assert_eq!(
        segment_len(&storage, dir, 0).await,
        STEP,
        "one step up front"
    );
    let mut bases = vec![0u64];
    let mut appended = 0u64;
    for i in 0..400u64 {
        let mut b = batch(i, 40);
        if log.needs_roll(b.len(), 1000 + i as i64) {
            log.roll().await.unwrap();
            let base = log.next_offset();
            bases.push(base);
            assert_eq!(
                segment_len(&storage, dir, base).await,
                STEP,
                "a new segment starts with one step"
            );
        }
        log.append(&mut b, 1000 + i as i64).unwrap();
        appended += 40;
        log.reserve_ahead().await.unwrap();
        log.flush().await.unwrap();
        let base = *bases.last().unwrap();
        let data_len = log.view().borrow().segments[&base].data_len;
        let len = segment_len(&storage, dir, base).await;
        assert!(
            len <= config.segment_size_max,
            "never past the segment size"
        );
        assert!(len >= data_len, "the data fits in the file");
        assert!(
            len == config.segment_size_max || (len % STEP == 0 && len >= data_len + STEP / 2),
            "reserved in whole steps, at least half a step ahead: {len} for {data_len}"
        );
    }
    assert!(bases.len() >= 3, "the workload spans several segments");
    for w in bases.windows(2) {
        let sealed = segment_len(&storage, dir, w[0]).await;
        let data_len = log.view().borrow().segments[&w[0]].data_len;
        assert_eq!(
            sealed,
            crate::storage::align_up(data_len),
            "a sealed segment gave back its unused space"
        );
    }
    let active = *bases.last().unwrap();
    let log = reopen(&mut machine, Some(log), dir, &config, true)
        .await
        .unwrap();
    let data_len = log.view().borrow().segments[&active].data_len;
    let len = segment_len(&machine.storage(), dir, active).await;
    assert!(len >= data_len && len % STEP == 0 || len == config.segment_size_max);
    let out = log::read(log.view(), 0, 100_000, 64 << 20, 64 << 10)
        .await
        .unwrap();
    assert_eq!(out.record_count as u64, appended);
    let mut n = 0u64;
    for span in &out.spans {
        for r in span.records() {
            assert_eq!(r.data(), format!("record {}/{}", n / 40, n % 40).as_bytes());
            n += 1;
        }
    }
}
