//! One flow at run time: a reader thread (this module's [`run`]) that tails
//! the files, converts and frames records, and gathers them into batches
//! (`maxBufferSizeRecords`, `maxBufferSizeBytes`, `maxBufferAgeMillis`); a
//! pool of sender threads, each with its own connection, that send batches;
//! and the checkpoint, advanced in batch order to the end of the last batch
//! whose predecessors are all acknowledged (at least once: a record is in
//! the checkpoint only once the destination has it).
//!
//! Memory is bounded: batches wait in a queue of twice the sender count, and
//! the reader blocks when it is full (back-pressure: a refusing server slows
//! reading, it does not grow the agent).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{RecvTimeoutError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoints, Position};
use super::config::{Destination, FIREHOSE_BATCH_BYTES_MAX, FlowConfig, KINESIS_BATCH_BYTES_MAX};
use super::framing::truncate;
use super::process::convert_all;
use super::send::{OutRecord, Rng, Sender, Stopping, Target, now_ms, partition_key};
use super::tail::{FileInfo, Step, TailSettings, Tailer};

/// How often checkpoints are written while records flow.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// What a flow did.
#[derive(Debug, Default, Clone)]
pub struct FlowStats {
    pub records_read: u64,
    pub records_sent: u64,
    pub records_skipped: u64,
    pub records_truncated: u64,
    pub conversion_errors: u64,
    pub bytes_read: u64,
}

struct Batch {
    seq: u64,
    records: Vec<OutRecord>,
}

/// The batch being filled.
struct Filling {
    records: Vec<OutRecord>,
    bytes: usize,
    since: Option<Instant>,
    /// The last record's file and end (a `Position` is made once per batch).
    end: Option<(Arc<FileInfo>, u64)>,
}

/// What the reader shares with its caller.
pub struct Shared {
    pub checkpoints: Mutex<Checkpoints>,
    pub stopping: Arc<Stopping>,
    pub once: bool,
    pub sending_threads: usize,
    pub shutdown_timeout: Duration,
}

/// Runs a flow until the agent stops (or, with `once`, until its files are
/// read to their end and sent).
pub fn run(flow: FlowConfig, target: Target, shared: Arc<Shared>) -> Result<FlowStats, String> {
    let target = Arc::new(target);
    let (kinesis, batch_bytes_max) = match &flow.destination {
        Destination::Kinesis { partition_key, .. } => {
            (Some(*partition_key), KINESIS_BATCH_BYTES_MAX)
        }
        Destination::Firehose { .. } => (None, FIREHOSE_BATCH_BYTES_MAX),
    };
    let (batch_tx, batch_rx) = sync_channel::<Batch>(shared.sending_threads * 2);
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    let (done_tx, done_rx) = channel::<(u64, bool)>();
    for i in 0..shared.sending_threads {
        let mut sender = Sender::new(target.clone(), shared.stopping.clone())?;
        let rx = batch_rx.clone();
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("agent-send-{i}"))
            .spawn(move || {
                loop {
                    let next = rx
                        .lock()
                        .expect("no sender panics holding the queue")
                        .recv();
                    let Ok(batch) = next else { return };
                    let ok = sender.send_all(batch.records).is_ok();
                    if done.send((batch.seq, ok)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start a sender thread: {e}"))?;
    }
    drop(done_tx);

    let restore = shared
        .checkpoints
        .lock()
        .expect("checkpoint lock")
        .get(&flow.id)
        .cloned();
    let mut tailer = Tailer::new(TailSettings::of(&flow, batch_bytes_max), &flow.id, restore);
    let mut stats = FlowStats::default();
    let mut rng = Rng::seeded();
    let mut filling = Filling {
        records: Vec::new(),
        bytes: 0,
        since: None,
        end: None,
    };
    let mut next_seq = 0u64;
    let mut ends: BTreeMap<u64, Option<Position>> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut committed = 0u64; // every batch below this is acknowledged
    let mut failed = false;
    let mut last_saved: Option<Position> = None;
    let mut last_save = Instant::now();
    let record_max = flow.record_bytes_max();
    let age_max = Duration::from_millis(flow.max_buffer_age_ms);

    let dispatch =
        |filling: &mut Filling, next_seq: &mut u64, ends: &mut BTreeMap<u64, Option<Position>>| {
            if filling.records.is_empty() {
                return;
            }
            let batch = Batch {
                seq: *next_seq,
                records: std::mem::take(&mut filling.records),
            };
            ends.insert(
                *next_seq,
                filling.end.take().map(|(info, end)| info.position(end)),
            );
            *next_seq += 1;
            filling.bytes = 0;
            filling.since = None;
            // Blocks while the queue is full: back-pressure on reading.
            batch_tx
                .send(batch)
                .expect("sender threads outlive the reader");
        };

    loop {
        // Acknowledgements: advance the checkpoint in batch order.
        let mut advanced = None;
        for (seq, ok) in done_rx.try_iter() {
            if ok {
                acked.insert(seq);
            } else {
                failed = true;
            }
        }
        while acked.remove(&committed) {
            if let Some(Some(p)) = ends.remove(&committed) {
                advanced = Some(p);
            }
            committed += 1;
        }
        let in_flight = next_seq - committed;
        if let Some(p) = advanced {
            shared
                .checkpoints
                .lock()
                .expect("checkpoint lock")
                .set(&flow.id, p);
        }
        let stopping = shared.stopping.stop.load(Ordering::Relaxed);
        if stopping {
            break;
        }
        let step = tailer
            .step(&mut |framed, info| {
                stats.records_read += 1;
                stats.bytes_read += framed.data.len() as u64;
                let now = now_ms() as i64;
                let mut data = if flow.converters.is_empty() {
                    framed.data
                } else {
                    match convert_all(&flow.converters, &framed.data, now) {
                        Ok(Some(d)) => d,
                        Ok(None) => {
                            stats.records_skipped += 1;
                            return;
                        }
                        Err(e) => {
                            stats.conversion_errors += 1;
                            tracing::debug!(error = %e, "cannot process input data; falling back to raw data");
                            framed.data
                        }
                    }
                };
                let key = match kinesis {
                    Some(option) => partition_key(option, &data, &mut rng),
                    None => String::new(),
                };
                if truncate(&mut data, record_max - key.len(), &flow.truncated_record_terminator) {
                    stats.records_truncated += 1;
                    tracing::warn!(file = %info.path.display(), "truncated a record over {record_max} bytes");
                }
                let size = data.len() + key.len();
                if filling.bytes + size > flow.max_buffer_size_bytes {
                    dispatch(&mut filling, &mut next_seq, &mut ends);
                }
                filling.since.get_or_insert_with(Instant::now);
                filling.bytes += size;
                filling.records.push(OutRecord {
                    data,
                    partition_key: key,
                });
                filling.end = Some((info.clone(), framed.end));
                stats.records_sent += 1;
                if filling.records.len() >= flow.max_buffer_size_records {
                    dispatch(&mut filling, &mut next_seq, &mut ends);
                }
            })
            .map_err(|e| format!("{}: {e}", flow.id))?;
        if filling.since.is_some_and(|t| t.elapsed() >= age_max)
            || (step == Step::Idle && shared.once)
        {
            dispatch(&mut filling, &mut next_seq, &mut ends);
        }
        // Idle with nothing in flight: what was read is all acknowledged or skipped.
        if step == Step::Idle
            && in_flight == 0
            && filling.records.is_empty()
            && !failed
            && let Some((info, offset)) = tailer.consumed()
        {
            let p = info.position(offset);
            let mut c = shared.checkpoints.lock().expect("checkpoint lock");
            if c.get(&flow.id) != Some(&p) {
                c.set(&flow.id, p);
            }
        }
        let current = shared
            .checkpoints
            .lock()
            .expect("checkpoint lock")
            .get(&flow.id)
            .cloned();
        if current != last_saved
            && (last_save.elapsed() >= CHECKPOINT_INTERVAL || step == Step::Idle)
        {
            shared.checkpoints.lock().expect("checkpoint lock").save()?;
            last_saved = current;
            last_save = Instant::now();
        }
        if step == Step::Idle {
            if shared.once && in_flight == 0 && filling.records.is_empty() {
                break;
            }
            if in_flight > 0 {
                // Wait for an acknowledgement rather than polling the files.
                match done_rx.recv_timeout(Duration::from_millis(
                    flow.min_time_between_file_polls_ms.max(1),
                )) {
                    Ok((seq, ok)) => {
                        if ok {
                            acked.insert(seq);
                        } else {
                            failed = true;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err("the sender threads ended".into());
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(flow.min_time_between_file_polls_ms));
            }
        }
    }

    // Stopping: send what is buffered, wait for the senders up to the shutdown time.
    dispatch(&mut filling, &mut next_seq, &mut ends);
    drop(batch_tx);
    let deadline = Instant::now() + shared.shutdown_timeout;
    while committed < next_seq {
        let wait = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok((seq, true)) => {
                acked.insert(seq);
                while acked.remove(&committed) {
                    if let Some(Some(p)) = ends.remove(&committed) {
                        shared
                            .checkpoints
                            .lock()
                            .expect("checkpoint lock")
                            .set(&flow.id, p);
                    }
                    committed += 1;
                }
            }
            Ok((_, false)) | Err(_) => break,
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    if committed < next_seq {
        tracing::warn!(flow = %flow.id, batches = next_seq - committed, "stopping with batches not acknowledged: they will be read and sent again at the next start");
    }
    shared.checkpoints.lock().expect("checkpoint lock").save()?;
    Ok(stats)
}
