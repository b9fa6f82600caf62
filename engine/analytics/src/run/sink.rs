//! An output's writer (docs/analytics-design.md §2.6, §5.9): its stream's
//! rows encoded as its `DestinationSchema` says (one record per row) and
//! put into its destination data stream with `Engine::put_records`, at most
//! 500 records a call, every record refused (throttled, a failed shard) put
//! again after a pause until it is stored, as AWS retries an output
//! indefinitely. A destination that is gone (deleted) loses the rows, with
//! a warning. The partition key is `<application id>:<output id>:<row
//! number>` (home's writer) or `<application id>:<output id>:<shard>:<row
//! number>` (a source task's): rows spread over the destination's shards.
//! Several calls are in flight, so a higher row number can be stored before
//! a lower one: a restart that looks for what was written (checkpoints, to
//! come) must look for the contiguous prefix of row numbers, not the
//! highest one.
//!
//! Delivery streams and Lambda outputs are refused at StartApplication
//! until their slice lands.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use riffle_engine::api::PutRecordsEntry;
use riffle_engine::rt;
use riffle_protocol::ErrorCode;

use super::Run;
use crate::config::OutputConf;
use crate::encode::{Pieces, RecordFormat, encode};
use crate::service::Shared;

/// Records per PutRecords call (AWS's limit).
const PUT_RECORDS_MAX: usize = 500;
/// PutRecords calls a sink has in flight at once.
const CALLS_IN_FLIGHT: usize = 8;
/// After a refused put, the sink waits this long before putting again.
const PAUSE: Duration = Duration::from_millis(200);

pub(super) struct Sink {
    shared: Arc<Shared>,
    /// The application, for warnings.
    app: String,
    /// The output's in-application stream, for warnings.
    name: String,
    /// The destination data stream (None: not a data stream of this server).
    stream: Option<String>,
    format: RecordFormat,
    /// The partition key's prefix, `<application id>:<output id>:`.
    key_prefix: String,
    /// Rows written so far (the next row's number).
    rows: u64,
}

impl Sink {
    /// `shard`: set for a source task's own writer (rows of that shard's
    /// per-row pumps), whose row numbers are counted per shard.
    pub(super) fn new(run: &Run, output: &OutputConf, shard: Option<u32>) -> Sink {
        Sink {
            shared: run.shared.clone(),
            app: run.name.clone(),
            name: output.name.clone(),
            stream: super::stream_of_arn(&run.shared, &output.destination.resource_arn)
                .map(str::to_string),
            format: RecordFormat::of(&output.format).unwrap_or(RecordFormat::Json),
            key_prefix: match shard {
                Some(s) => format!("{}:{}:{s}:", run.app_id, output.id),
                None => format!("{}:{}:", run.app_id, output.id),
            },
            rows: 0,
        }
    }

    /// Writes the rows of `batch` (a batch of the output's stream), every
    /// one until it is stored, the destination is gone, or the run stops. A
    /// row whose record is larger than a Kinesis record may be is dropped
    /// with a warning (it can never be stored).
    pub(super) async fn write(&mut self, run: &Run, batch: &RecordBatch) {
        let Some(stream) = self.stream.as_deref() else {
            return;
        };
        let limits = self.shared.engine.limits();
        let (record_max, request_max) = (
            limits.record_data_size_max as usize,
            limits.request_size_max as usize,
        );
        let records = encode(batch, self.format);
        let keys = numbered_keys(&self.key_prefix, self.rows, records.len());
        self.rows += records.len() as u64;
        let mut pending: Vec<usize> = Vec::with_capacity(records.len());
        for i in 0..records.len() {
            let r = records.get(i);
            if r.len() + keys.get(i).len() > record_max {
                tracing::warn!(
                    "analytics application {}: output {} dropped a row of {} bytes (a record holds at most {record_max})",
                    self.app,
                    self.name,
                    r.len()
                );
            } else {
                pending.push(i);
            }
        }
        while !pending.is_empty() {
            if !run.live() {
                return;
            }
            let mut refused = Vec::new();
            let all = chunks(&pending, &records, &keys, request_max);
            // Several calls in flight: each waits for its records to be
            // durable, and the shards' group commits take them together.
            for group in all.chunks(CALLS_IN_FLIGHT) {
                let calls: Vec<_> = group
                    .iter()
                    .map(|chunk| {
                        let entries: Vec<PutRecordsEntry<'_>> = chunk
                            .iter()
                            .map(|&i| PutRecordsEntry {
                                partition_key: keys.get(i),
                                explicit_hash_key: None,
                                data: records.get(i).as_bytes(),
                            })
                            .collect();
                        let engine = &self.shared.engine;
                        async move { engine.put_records(stream, &entries).await }
                    })
                    .collect();
                let answers = riffle_engine::join_all(calls).await;
                for (chunk, answer) in group.iter().zip(answers) {
                    match answer {
                        Ok(results) => {
                            for (&i, r) in chunk.iter().zip(&results) {
                                match r {
                                    Ok(_) => {}
                                    // Refused for what it is: never stored.
                                    Err(e) if e.code == ErrorCode::InvalidArgument => {
                                        tracing::warn!(
                                            "analytics application {}: output {} dropped a row: {}",
                                            self.app,
                                            self.name,
                                            e.message
                                        );
                                    }
                                    Err(_) => refused.push(i),
                                }
                            }
                        }
                        Err(e) if e.code == ErrorCode::ResourceNotFound => {
                            tracing::warn!(
                                "analytics application {}: output {} lost {} rows: {}",
                                self.app,
                                self.name,
                                pending.len(),
                                e.message
                            );
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(
                                "analytics application {}: output {}: {}",
                                self.app,
                                self.name,
                                e.message
                            );
                            refused.extend(chunk.iter());
                        }
                    }
                }
            }
            pending = refused;
            if !pending.is_empty() {
                rt::sleep(PAUSE).await;
            }
        }
    }
}

/// The partition keys of `count` rows numbered from `first`:
/// `<prefix><row number>`.
fn numbered_keys(prefix: &str, first: u64, count: usize) -> Pieces {
    use std::fmt::Write;
    let mut keys = Pieces::with_capacity(count, count * (prefix.len() + 8));
    for n in first..first + count as u64 {
        keys.text().push_str(prefix);
        let _ = write!(keys.text(), "{n}");
        keys.end();
    }
    keys
}

/// `pending` cut into PutRecords calls of at most `PUT_RECORDS_MAX`
/// records and `request_max` bytes of data and keys.
fn chunks<'a>(
    pending: &'a [usize],
    records: &Pieces,
    keys: &Pieces,
    request_max: usize,
) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (n, &i) in pending.iter().enumerate() {
        let size = records.get(i).len() + keys.get(i).len();
        if n > start && (n - start == PUT_RECORDS_MAX || bytes + size > request_max) {
            out.push(&pending[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_prefix_and_the_row_number() {
        let keys = numbered_keys("1:2.1:", 9, 3);
        let got: Vec<&str> = (0..3).map(|i| keys.get(i)).collect();
        assert_eq!(got, vec!["1:2.1:9", "1:2.1:10", "1:2.1:11"]);
    }

    #[test]
    fn calls_are_cut_by_count_and_by_bytes() {
        let mut records = Pieces::default();
        let mut keys = Pieces::default();
        for i in 0..1200 {
            let size = if i < 600 { 10 } else { 3000 };
            records.text().push_str(&"x".repeat(size));
            records.end();
            // One-byte keys (the sizes below count 1 per key).
            keys.text().push('k');
            keys.end();
        }
        let pending: Vec<usize> = (0..1200).collect();
        let sizes: Vec<usize> = chunks(&pending, &records, &keys, 1_000_000)
            .iter()
            .map(|c| c.len())
            .collect();
        // 500 small; 100 small and 232 large (333 in 1 MB); …
        assert_eq!(sizes.iter().sum::<usize>(), 1200);
        assert_eq!(sizes[0], 500);
        for c in chunks(&pending, &records, &keys, 1_000_000) {
            let bytes: usize = c.iter().map(|&i| records.get(i).len() + 1).sum();
            assert!(
                c.len() <= PUT_RECORDS_MAX && bytes <= 1_000_000,
                "{} {bytes}",
                c.len()
            );
        }
    }
}
