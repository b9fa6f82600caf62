//! Pinned read and time-seek cases of the shard log, found by the model workload
//! (`model.rs`) and kept here as small deterministic tables.

use std::path::Path;

use riffle_protocol::batch::padded;

use super::{Machine, Rec, Served, assert_same, encode, read_all, small_config, wipe};
use crate::StorageFile;
use crate::log::{self, LogConfig, ShardLog};

/// A one-record batch whose padded length is exactly `len`.
fn record_with_padded_len(len: usize, fill: u8) -> Rec {
    let mut rec = Rec {
        key: "k".into(),
        data: Vec::new(),
    };
    while padded(encode(std::slice::from_ref(&rec)).len()) < len {
        rec.data.push(fill);
    }
    assert_eq!(
        padded(encode(std::slice::from_ref(&rec)).len()),
        len,
        "no record pads to exactly {len}"
    );
    rec
}

/// Two batches, the second starting at byte `second_at` of the segment; reads
/// with `read_size` from offset 0 and 1 serve both records.
async fn check_second_batch_at<M: Machine>(dir: &Path, second_at: usize, read_size: usize) {
    let ctx = format!("second batch at byte {second_at}, read_size {read_size}");
    let config = LogConfig {
        read_size,
        ..small_config()
    };
    let machine = M::boot(1);
    wipe(&machine.storage(), dir).await;
    let mut log = ShardLog::open(machine.storage(), dir, config)
        .await
        .unwrap();
    let recs = [
        record_with_padded_len(second_at, 1),
        Rec {
            key: "k2".into(),
            data: vec![2; 500],
        },
    ];
    let mut want = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let a = log
            .append(&mut encode(std::slice::from_ref(r)), 1_000)
            .unwrap();
        want.push(Served {
            offset: i as u64,
            key: r.key.clone(),
            data: r.data.clone(),
            arrival_ms: a.arrival_ms,
        });
    }
    log.flush().await.unwrap();
    for from in [0, 1] {
        let out = log::read(log.view(), from, 100, 1 << 20, read_size)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read from {from}: {e}"));
        assert_same(
            &super::served(&out),
            &want[from as usize..],
            &format!("{ctx}: read from {from}"),
        );
    }
}

/// A batch header that starts in the last 48 bytes of a 4 KiB block does not fit
/// in a 4 KiB read buffer; the reader must still serve it.
pub async fn batch_header_across_the_end_of_a_read<M: Machine>(dir: &Path) {
    for second_at in [4000, 4048, 4056, 4088] {
        for read_size in [8192, 4096] {
            check_second_batch_at::<M>(dir, second_at, read_size).await;
        }
    }
}

/// Where the records of a time seek are when it runs.
#[derive(Clone, Copy, Debug)]
enum Later {
    /// Appended, not yet written.
    Appended,
    /// Appended to a new segment (rolled just before), not yet written.
    AppendedAfterRoll,
    /// Written, not yet synced.
    Written,
}

/// One flushed batch that arrived at 1000 and a later batch at 2000 that readers
/// cannot see yet: a seek to any time after 1000 answers the tip (the visible
/// offset), never an error.
async fn check_seek_with_invisible_records<M: Machine>(dir: &Path, later: Later) {
    let ctx = format!("{later:?}");
    let machine = M::boot(1);
    wipe(&machine.storage(), dir).await;
    let mut log = ShardLog::open(machine.storage(), dir, small_config())
        .await
        .unwrap();
    let recs = vec![
        Rec {
            key: "a".into(),
            data: vec![1; 100]
        };
        3
    ];
    log.append(&mut encode(&recs), 1_000).unwrap();
    log.flush().await.unwrap();
    if let Later::AppendedAfterRoll = later {
        log.roll().await.unwrap();
    }
    log.append(&mut encode(&recs), 2_000).unwrap();
    if let Later::Written = later {
        while let Some(w) = log.take_write() {
            let end = w.job.end;
            w.file.write_at(w.job.buf, w.job.pos).await.unwrap();
            log.write_done(end);
        }
    }
    assert_eq!(log.view().borrow().visible_offset, 3);
    for (time_ms, want) in [(0, 0), (1_000, 0), (1_001, 3), (2_000, 3), (i64::MAX, 3)] {
        let got = log::offset_at_time(log.view(), time_ms)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: offset_at_time({time_ms}): {e}"));
        assert_eq!(got, want, "{ctx}: offset_at_time({time_ms})");
    }
    log.flush().await.unwrap();
    assert_eq!(
        log::offset_at_time(log.view(), 1_001).await.unwrap(),
        3,
        "{ctx}: after the flush"
    );
    assert_eq!(
        read_all(log.view(), 0, 8192).await.unwrap().len(),
        6,
        "{ctx}"
    );
}

pub async fn time_seek_with_written_unsynced_records<M: Machine>(dir: &Path) {
    check_seek_with_invisible_records::<M>(dir, Later::Written).await;
}

pub async fn time_seek_with_unwritten_records<M: Machine>(dir: &Path) {
    check_seek_with_invisible_records::<M>(dir, Later::Appended).await;
}

pub async fn time_seek_with_unwritten_records_in_a_new_segment<M: Machine>(dir: &Path) {
    check_seek_with_invisible_records::<M>(dir, Later::AppendedAfterRoll).await;
}
