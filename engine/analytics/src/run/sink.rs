//! An output's writer (docs/analytics-design.md §2.6, §5.9): its stream's
//! rows encoded as its `DestinationSchema` says (one record per row) and
//! put into its destination data stream with `Engine::put_records`, at most
//! 500 records a call, every record refused (throttled, a failed shard) put
//! again after a pause until it is stored, as AWS retries an output
//! indefinitely. A destination that is gone (deleted) loses the rows, with
//! a warning. The partition key is `<application id>:<output id>:<row
//! number>`: rows spread over the destination's shards, and a later slice
//! finds its own rows by it after a restart.
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
use crate::encode::{RecordFormat, encode_rows};
use crate::service::Shared;

/// Records per PutRecords call (AWS's limit).
const PUT_RECORDS_MAX: usize = 500;
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
    pub(super) fn new(run: &Run, output: &OutputConf) -> Sink {
        Sink {
            shared: run.shared.clone(),
            app: run.name.clone(),
            name: output.name.clone(),
            stream: super::stream_of_arn(&run.shared, &output.destination.resource_arn)
                .map(str::to_string),
            format: RecordFormat::of(&output.format).unwrap_or(RecordFormat::Json),
            key_prefix: format!("{}:{}:", run.app_id, output.id),
            rows: 0,
        }
    }

    /// Writes the rows of `batch` (a batch of the output's stream), every
    /// one until it is stored or the destination is gone.
    pub(super) async fn write(&mut self, batch: &RecordBatch) {
        let Some(stream) = self.stream.as_deref() else {
            return;
        };
        let records = encode_rows(batch, self.format);
        let keys: Vec<String> = (0..records.len() as u64)
            .map(|i| format!("{}{}", self.key_prefix, self.rows + i))
            .collect();
        self.rows += records.len() as u64;
        let mut pending: Vec<usize> = (0..records.len()).collect();
        while !pending.is_empty() {
            let mut refused = Vec::new();
            for chunk in pending.chunks(PUT_RECORDS_MAX) {
                let entries: Vec<PutRecordsEntry<'_>> = chunk
                    .iter()
                    .map(|&i| PutRecordsEntry {
                        partition_key: &keys[i],
                        explicit_hash_key: None,
                        data: &records[i],
                    })
                    .collect();
                match self.shared.engine.put_records(stream, &entries).await {
                    Ok(results) => {
                        refused.extend(
                            chunk
                                .iter()
                                .zip(&results)
                                .filter(|(_, r)| r.is_err())
                                .map(|(&i, _)| i),
                        );
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
                        refused.extend(chunk);
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
