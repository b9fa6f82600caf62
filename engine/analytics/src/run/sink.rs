//! An output's writer (docs/analytics-design.md §2.6, §5.9): its stream's
//! rows encoded as its `DestinationSchema` says (one record per row) and
//! appended to its destination data stream with `Engine::append_keyed`, at
//! most 500 records a call, every call refused (throttled, a failed or
//! sealed shard) made again after a pause until it is stored, as AWS
//! retries an output indefinitely. A destination that is gone (deleted)
//! loses the rows, with a warning.
//!
//! Every row's partition key names it, so a resumed run can tell which rows
//! were written (progress.rs): `<application id>:<output id>:<epoch>:`
//! then
//! - `r<shard>:<path>:<offset>.<part>`: a per-row row of a shard, made
//!   from the record at `offset` (its row `part`, ids.rs) by the pumps of
//!   `path` (`Rows`), whichever task (the shard's, or home) writes it;
//! - `w<path>:<ROWTIME ms>:<k>`: the k-th row with that ROWTIME of the
//!   closed output of `path`'s first pump (a window's rows, rows a sliding
//!   or ORDER BY pump released), through the rest of `path`;
//! - `e<n>`: the n-th error_stream row.
//!
//! The calls go round the destination's open shards (a sink's
//! `spread`): keys name rows, they are not hashed to route them, which
//! spares an MD5 per row and sends each shard whole calls. A closed row
//! the run's checkpoint covers, or a row whose key a resumed run found
//! written (`Run::seen`), is not written.
//!
//! A delivery stream output (Direct PUT) is written the same way into the
//! data stream holding the delivery stream's records (`run::records_of_arn`),
//! which Firehose delivers. A Lambda output's records go to its function
//! (lambda_out.rs), each named by its key.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use arrow_array::RecordBatch;
use riffle_engine::rt;
use riffle_protocol::ErrorCode;
use riffle_protocol::batch::{BatchBuilder, RecordIn, ValidBatch};

use super::Run;
use super::ids::RowIds;
use super::lambda_out::LambdaOut;
use crate::config::OutputConf;
use crate::encode::{Pieces, RecordFormat, encode};
use crate::service::Shared;

/// Records per call (a batch the engine takes: PutRecords' limit).
const PUT_RECORDS_MAX: usize = 500;
/// Calls a write has in flight at once: a source task's whole read
/// (`READ_RECORDS_MAX` rows, 20 calls of 500) goes out together, so its
/// rows wait for one round of durable appends, not three (q0 drained 578 k
/// bids/s with 8, about 780–960 k with 32 or 64: docs/benchmarks.md).
const CALLS_IN_FLIGHT: usize = 64;
/// After a refused call, the write waits this long before making it again.
const PAUSE: Duration = Duration::from_millis(200);

pub(super) struct Sink {
    shared: Arc<Shared>,
    /// The application, for warnings.
    app: String,
    /// The output's in-application stream, for warnings.
    name: String,
    /// The destination data stream (None: not a data stream of this server).
    stream: Option<String>,
    /// A Lambda output's function.
    lambda: Option<LambdaOut>,
    /// A delivery stream output's delivery stream (its metrics count the
    /// records written).
    delivery: Option<String>,
    format: RecordFormat,
    /// The output's id.
    pub(super) id: String,
    /// The partition key's prefix, `<application id>:<output id>:<epoch>:`.
    key_prefix: String,
    /// error_stream rows written.
    pub(super) errors: u64,
    /// Which of the destination's open shards the next call goes to
    /// (modulo their count): the calls go round the shards.
    pub(super) spread: u64,
}

/// Which rows a write gives: how they are named. A path is the names of
/// the pumps the rows went through, from the first, joined by
/// [`PATH_SEPARATOR`]: a pump keeps its name when the code around it
/// changes. In a key the path is its hash ([`path_id`]), so keys stay
/// short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Rows {
    /// Per-row rows of a shard, each named by its record (`ids`, one per
    /// row of the batch).
    Shard {
        shard: u32,
        path: String,
        ids: RowIds,
    },
    /// Rows of pump `origin`'s closed output (their path starts with it).
    Closed { origin: usize, path: String },
    /// error_stream rows.
    Errors,
}

/// Between the pump names of a path (no name holds it: names are SQL
/// identifiers of printable characters).
pub(super) const PATH_SEPARATOR: char = '\u{1f}';

/// A path's name in partition keys: 16 hex digits of its FNV-1a hash (64
/// bits; stable across builds, since checkpoints and keys outlive them).
fn path_id(path: &str) -> String {
    let h = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

impl Sink {
    /// The writer of `output`, its error rows counted on from the run's
    /// checkpoint.
    pub(super) fn new(run: &Run, output: &OutputConf) -> Sink {
        let base = &run.base;
        let lambda = (output.kind == crate::config::DestinationKind::Lambda)
            .then(|| {
                let c = &run.shared.config;
                let arn = &output.destination.resource_arn;
                riffle_lambda::function::resolve(arn, &c.functions, &c.region, &c.account)
                    .inspect_err(|e| {
                        tracing::warn!(
                            "analytics application {}: output {}: {e}",
                            run.name,
                            output.name
                        )
                    })
                    .ok()
            })
            .flatten()
            .map(|f| LambdaOut::new(f.url, run.shared.arn(&run.name), run.shared.tls.clone()));
        let delivery = (output.kind == crate::config::DestinationKind::KinesisFirehose)
            .then(|| {
                let c = &run.shared.config;
                let arn = &output.destination.resource_arn;
                crate::ops_parts::delivery_stream_of_arn(arn, &c.region, &c.account)
                    .map(str::to_string)
            })
            .flatten();
        Sink {
            lambda,
            delivery,
            shared: run.shared.clone(),
            app: run.name.clone(),
            name: output.name.clone(),
            stream: super::records_of_arn(&run.shared, &output.destination.resource_arn)
                .and_then(|(stream, takes_puts)| takes_puts.then_some(stream)),
            format: RecordFormat::of(&output.format).unwrap_or(RecordFormat::Json),
            id: output.id.clone(),
            key_prefix: format!("{}:{}:{}:", run.app_id, output.id, base.epoch),
            errors: base.error_rows.get(&output.id).copied().unwrap_or(0),
            spread: 0,
        }
    }

    /// The partition keys of `batch`'s rows, and which of them are not to
    /// be written: closed rows the run's checkpoint covers, and rows a
    /// resumed run found written.
    fn number(&mut self, run: &Run, batch: &RecordBatch, rows: &Rows) -> (Pieces, Vec<bool>) {
        use std::fmt::Write;
        let count = batch.num_rows();
        let mut keys = Pieces::with_capacity(count, count * (self.key_prefix.len() + 48));
        let mut skip = vec![false; count];
        match rows {
            Rows::Shard { shard, path, ids } => {
                debug_assert_eq!(ids.len(), count, "one id per row");
                // `<prefix>r<shard>:<path>:`, the same for every row.
                let head = format!("{}r{shard}:{}:", self.key_prefix, path_id(path));
                let mut digits = itoa::Buffer::new();
                for i in 0..count {
                    match ids.get(i) {
                        Some(id) => {
                            let key = keys.text();
                            key.push_str(&head);
                            key.push_str(digits.format(id.offset));
                            key.push('.');
                            key.push_str(digits.format(id.part));
                        }
                        // Never (one id per row): a key no other row has.
                        None => {
                            let _ = write!(keys.text(), "{head}?{i}");
                        }
                    }
                    keys.end();
                }
            }
            Rows::Errors => {
                for _ in 0..count {
                    keys.text().push_str(&self.key_prefix);
                    let _ = write!(keys.text(), "e{}", self.errors);
                    keys.end();
                    self.errors += 1;
                }
            }
            Rows::Closed { origin, path } => {
                // All of a path's rows of one ROWTIME come in one batch (a
                // window, or what one watermark released): they are
                // numbered within it.
                let mut at: HashMap<i64, u64> = HashMap::new();
                let id = path_id(path);
                for (i, t) in rowtimes(batch).into_iter().enumerate() {
                    let k = at.entry(t).or_insert(0);
                    keys.text().push_str(&self.key_prefix);
                    let _ = write!(keys.text(), "w{id}:{t}:{k}");
                    keys.end();
                    *k += 1;
                    skip[i] = run.base.closed_before(&run.plan, *origin, t);
                }
            }
        }
        // Error rows are numbered as they come (their order is not the
        // same again): they are never taken for written ones.
        let seen = run.seen.get(&self.id).filter(|_| *rows != Rows::Errors);
        if let Some(seen) = seen.filter(|s| !s.is_empty()) {
            for (i, s) in skip.iter_mut().enumerate() {
                *s = *s || seen.contains(keys.get(i));
            }
        }
        (keys, skip)
    }

    /// Writes the rows of `batch` (a batch of the output's stream), every
    /// one until it is stored, the destination is gone, or the run stops. A
    /// row whose record is larger than a Kinesis record may be is dropped
    /// with a warning (it can never be stored).
    pub(super) async fn write(&mut self, run: &Run, batch: &RecordBatch, rows: &Rows) {
        if self.lambda.is_some() {
            let (keys, skip) = self.number(run, batch, rows);
            let records = encode(batch, self.format);
            let Some(lambda) = self.lambda.as_mut() else {
                return;
            };
            let pending = (0..records.len()).filter(|&i| !skip[i]).collect();
            let what = format!("analytics application {} output {}", self.app, self.name);
            let flow = run.metrics.output(&self.id);
            (lambda.deliver(&records, &keys, pending, || run.live(), &what, &flow)).await;
            return;
        }
        if let Some(write) = self.prepare(run, batch, rows) {
            write.finish(run).await;
        }
    }

    /// The write of `batch`'s rows to a data stream, named, encoded and
    /// built into batches (the work on this core), to be finished on its
    /// own ([`Write::finish`]): several can be in flight. None when there is
    /// nothing to write, or the output is not a data stream (a Lambda
    /// output is [`Sink::write`]n).
    pub(super) fn prepare(&mut self, run: &Run, batch: &RecordBatch, rows: &Rows) -> Option<Write> {
        let stream = self.stream.clone()?;
        let (keys, skip) = self.number(run, batch, rows);
        let limits = self.shared.engine.limits_of(&stream);
        let request_max = limits.request_size_max as usize;
        let mut calls = Vec::new();
        // A call's rows at a time: encoded and built while they are in
        // the cache.
        for first in (0..batch.num_rows()).step_by(PUT_RECORDS_MAX) {
            let count = PUT_RECORDS_MAX.min(batch.num_rows() - first);
            let records = Rc::new(encode(&batch.slice(first, count), self.format));
            let mut kept = Vec::with_capacity(count);
            for j in 0..count {
                if skip.get(first + j) == Some(&true) {
                    continue;
                }
                // A record that can never be stored (too large) is dropped.
                let key = keys.get(first + j);
                match riffle_protocol::batch::check_record(key, records.get(j).len(), &limits) {
                    Ok(()) => kept.push(j),
                    Err(e) => tracing::warn!(
                        "analytics application {}: output {} dropped a row: {e}",
                        self.app,
                        self.name,
                    ),
                }
            }
            for rows in chunks(&kept, &records, &keys, first, request_max) {
                let mut call = Call {
                    first,
                    records: records.clone(),
                    rows: rows.to_vec(),
                    batch: None,
                };
                call.batch = Some(call.build(&keys));
                calls.push(call);
            }
        }
        if calls.is_empty() {
            return None;
        }
        // The calls of this write go round the shards from here.
        let spread = self.spread;
        self.spread = self.spread.wrapping_add(calls.len() as u64);
        Some(Write {
            output: run.metrics.output(&self.id),
            shared: self.shared.clone(),
            what: format!("analytics application {}: output {}", self.app, self.name),
            stream,
            delivery: self.delivery.clone(),
            keys,
            calls,
            spread,
        })
    }
}

/// Rows of an output named, encoded and built, being appended to its data
/// stream.
pub(super) struct Write {
    /// The output's AWS/KinesisAnalytics metrics.
    output: std::sync::Arc<crate::metrics::Flow>,
    shared: Arc<Shared>,
    /// The application and output, for warnings.
    what: String,
    stream: String,
    /// A delivery stream output's delivery stream (its metrics count the
    /// records written).
    delivery: Option<String>,
    /// Every row's partition key.
    keys: Pieces,
    /// The appends, none stored yet.
    calls: Vec<Call>,
    /// Which open shard the next call goes to (modulo their count).
    spread: u64,
}

/// One append: rows of a slice of the written batch.
struct Call {
    /// The slice's first row in the batch (its keys are the write's).
    first: usize,
    /// The slice's records.
    records: Rc<Pieces>,
    /// The rows of the slice this call appends.
    rows: Vec<usize>,
    /// The built batch, until it is first appended.
    batch: Option<ValidBatch>,
}

impl Call {
    fn build(&self, keys: &Pieces) -> ValidBatch {
        let records: Vec<RecordIn<'_>> = (self.rows.iter())
            .map(|&j| RecordIn {
                partition_key: keys.get(self.first + j),
                explicit_hash_key: None,
                data: self.records.get(j).as_bytes(),
                arrival_ms: 0,
            })
            .collect();
        BatchBuilder::new().build_to_append(&records)
    }

    /// The bytes of the call's records (as Firehose's IncomingBytes counts).
    fn data_bytes(&self) -> u64 {
        (self.rows.iter())
            .map(|&j| self.records.get(j).len() as u64)
            .sum()
    }
}

impl Write {
    /// Appends the rows until each is stored, the destination is gone, or
    /// the run stops. A refused call (throttled, a failed or sealed shard)
    /// is made again, to the next shard, after a pause.
    pub(super) async fn finish(mut self, run: &Run) {
        let mut pending = std::mem::take(&mut self.calls);
        while !pending.is_empty() {
            let mut refused = Vec::new();
            let mut rest = pending.into_iter();
            loop {
                // A stopped run writes no more: the run after it looks for
                // what this one wrote once it is over.
                if !run.live() {
                    return;
                }
                let mut group: Vec<Call> = rest.by_ref().take(CALLS_IN_FLIGHT).collect();
                if group.is_empty() {
                    break;
                }
                // Several calls in flight: each waits for its records to be
                // durable, and the shards' group commits take them together.
                let appends: Vec<_> = (group.iter_mut())
                    .map(|call| {
                        let batch = call.batch.take().unwrap_or_else(|| call.build(&self.keys));
                        let (engine, stream) = (&self.shared.engine, self.stream.as_str());
                        let spread = self.spread;
                        self.spread = self.spread.wrapping_add(1);
                        async move { engine.append_built(stream, spread, batch).await }
                    })
                    .collect();
                let answers = riffle_engine::join_all(appends).await;
                let mut gone = None;
                for (call, answer) in group.into_iter().zip(answers) {
                    self.output
                        .wrote(answer.is_ok(), call.rows.len() as u64, call.data_bytes());
                    match answer {
                        Ok(_) => {
                            if let (Some(name), Some(count)) =
                                (&self.delivery, &self.shared.config.delivery_puts)
                            {
                                count(name, call.rows.len() as u64, call.data_bytes());
                            }
                        }
                        // Every record was checked: a refusal of what the
                        // call holds would come again.
                        Err(e) if e.code == ErrorCode::InvalidArgument => {
                            tracing::warn!(
                                "{} dropped {} rows: {}",
                                self.what,
                                call.rows.len(),
                                e.message
                            );
                        }
                        // The destination is gone (a shard sealed by a
                        // reshard whose new view is not out yet answers
                        // this code too: its call goes again, below).
                        Err(e)
                            if e.code == ErrorCode::ResourceNotFound
                                && !riffle_engine::pump::is_sealed_error(&e) =>
                        {
                            gone = Some(e)
                        }
                        Err(e) => {
                            tracing::debug!("{}: {}", self.what, e.message);
                            refused.push(call);
                        }
                    }
                }
                if let Some(e) = gone {
                    tracing::warn!("{} lost rows: {}", self.what, e.message);
                    return;
                }
            }
            pending = refused;
            if !pending.is_empty() {
                rt::sleep(PAUSE).await;
            }
        }
    }
}

/// The ROWTIME of each row of `batch` (0 where it has none).
fn rowtimes(batch: &RecordBatch) -> Vec<i64> {
    use arrow_array::Array;
    let count = batch.num_rows();
    let Ok(c) = batch.schema().index_of(crate::decode::ROWTIME) else {
        return vec![0; count];
    };
    let c = crate::expr::eval::widen(batch.column(c), crate::expr::Ty::Time);
    let t = crate::expr::eval::times(&c);
    (0..count)
        .map(|i| if t.is_valid(i) { t.value(i) } else { 0 })
        .collect()
}

/// `rows` (of `records`, whose keys are `keys` from `first` on) cut into
/// calls of at most `PUT_RECORDS_MAX` records and `request_max` bytes of
/// data and keys.
fn chunks<'a>(
    rows: &'a [usize],
    records: &Pieces,
    keys: &Pieces,
    first: usize,
    request_max: usize,
) -> Vec<&'a [usize]> {
    cut(rows, PUT_RECORDS_MAX, request_max, |&j| {
        records.get(j).len() + keys.get(first + j).len()
    })
}

/// `items` cut, in order, into runs of at most `count_max` items whose
/// `size`s add up to at most `bytes_max` (an item larger than that alone):
/// the calls of an output's or a preprocessor's records.
pub(super) fn cut<T>(
    items: &[T],
    count_max: usize,
    bytes_max: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (n, item) in items.iter().enumerate() {
        let size = size(item);
        if n > start && (n - start == count_max || bytes + size > bytes_max) {
            out.push(&items[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_named_by_its_fnv_1a_hash() {
        // FNV-1a's published test values: the names must not change
        // between builds (checkpoints and keys outlive them).
        assert_eq!(path_id(""), "cbf29ce484222325");
        assert_eq!(path_id("a"), "af63dc4c8601ec8c");
        assert_eq!(path_id("foobar"), "85944171f73967e8");
        let chain = format!("A{PATH_SEPARATOR}B");
        assert_ne!(path_id(&chain), path_id("AB"));
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
        let sizes: Vec<usize> = chunks(&pending, &records, &keys, 0, 1_000_000)
            .iter()
            .map(|c| c.len())
            .collect();
        // 500 small; 100 small and 232 large (333 in 1 MB); …
        assert_eq!(sizes.iter().sum::<usize>(), 1200);
        assert_eq!(sizes[0], 500);
        for c in chunks(&pending, &records, &keys, 0, 1_000_000) {
            let bytes: usize = c.iter().map(|&i| records.get(i).len() + 1).sum();
            assert!(
                c.len() <= PUT_RECORDS_MAX && bytes <= 1_000_000,
                "{} {bytes}",
                c.len()
            );
        }
    }
}
