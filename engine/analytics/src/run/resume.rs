//! What a resumed run looks for before it writes (progress.rs): the rows its
//! outputs were given after the checkpoint it resumes from, before the run
//! stopped or the server died. They are found by their partition keys
//! (sink.rs) in each output's destination stream, read from the
//! checkpoint's `scan_from_ms` on (less a second, for the clocks of other
//! cores), at most `RESUME_SCAN_RECORDS_MAX` records per output.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use riffle_store::iterator::IteratorType;

use crate::limits::RESUME_SCAN_RECORDS_MAX;
use crate::progress::Progress;
use crate::service::Shared;
use crate::state::App;

/// Records read per call.
const READ_MAX: u32 = 10_000;
/// Arrival times are each core's clock: a row written just after the
/// checkpoint on another core may be stamped a little before it.
const CLOCK_SLACK_MS: i64 = 1000;

/// Per output id, the partition keys of this line of runs' rows written
/// since `base` was taken.
pub(super) async fn written_since(
    shared: &Arc<Shared>,
    app: &App,
    base: &Progress,
) -> HashMap<String, HashSet<String>> {
    let mut out = HashMap::new();
    let from = base.scan_from_ms.saturating_sub(CLOCK_SLACK_MS);
    for o in &app.outputs {
        let Some((stream, true)) = super::records_of_arn(shared, &o.destination.resource_arn)
        else {
            continue;
        };
        let prefix = format!("{}:{}:{}:", app.id, o.id, base.epoch);
        let (keys, whole) = scan(shared, &stream, &prefix, from).await;
        if !whole {
            tracing::warn!(
                "analytics application {}: output {}: more than {RESUME_SCAN_RECORDS_MAX} records \
                 since the checkpoint; rows past them may be written again",
                app.name,
                o.name
            );
        }
        out.insert(o.id.clone(), keys);
    }
    out
}

/// The keys starting with `prefix` of the records of `stream` (every shard)
/// that arrived at or after `from_ms`; false when the records read reached
/// the bound before the end.
async fn scan(
    shared: &Shared,
    stream: &str,
    prefix: &str,
    from_ms: i64,
) -> (HashSet<String>, bool) {
    let mut keys = HashSet::new();
    let mut read = 0usize;
    let Ok(shards) = shared.engine.list_shards(stream) else {
        return (keys, true);
    };
    for s in shards {
        let Ok(mut cursor) = shared
            .engine
            .shard_cursor(stream, s.shard_index, IteratorType::AtTimestamp(from_ms))
            .await
        else {
            continue;
        };
        loop {
            if read >= RESUME_SCAN_RECORDS_MAX {
                return (keys, false);
            }
            let Ok(got) = shared.engine.read_at(&cursor, Some(READ_MAX), 0).await else {
                break;
            };
            read += got.record_count as usize;
            for r in got.records() {
                if r.partition_key().starts_with(prefix) {
                    keys.insert(r.partition_key().to_string());
                }
            }
            if got.record_count == 0 || got.child_shards.is_some() {
                break;
            }
            cursor.offset = got.next_offset();
        }
    }
    (keys, true)
}
