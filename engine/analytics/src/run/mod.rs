//! Running applications (docs/analytics-design.md §5.5, §5.6, §5.9): a
//! started application is a **source task** per shard of its input stream,
//! on the core that owns the shard, and one **home task** on the
//! application's home core.
//!
//! - A source task (`source.rs`) reads its shard through the engine
//!   (`Engine::follow_at`, woken by each commit), decodes the records into
//!   Arrow batches of its in-application input stream (ROWTIME = the
//!   record's arrival), runs the pumps reading that stream (a per-row pump's
//!   rows, a tumbling window's partial groups) and ships what it made to
//!   the home task with its shard's arrival watermark.
//! - The home task (`home.rs`) merges the partial groups, closes each
//!   window once every shard's watermark passed its end, runs the pumps
//!   reading the streams the code creates, and writes the rows of each
//!   output's stream to its destination (`sink.rs`), error_stream included.
//!
//! A run is one Start of one application incarnation: its tasks stop when
//! the application stops, is deleted, or starts again (`App::runs`), each
//! checking before every read. Shards are followed parents first: a
//! closed shard's task, at its end, starts its children's (a child feeds
//! its first parent's in-application stream).
//!
//! Checkpoints (progress.rs): every second the home task writes, in the
//! application's metadata, how far each shard was processed and written
//! (the shards' marks it got) and its watermark. A run resumed from one
//! (`StartAt::Resume`: LAST_STOPPED_POINT, or a RUNNING application after a
//! server restart) reads each shard again from the replay horizon, quietly
//! up to the checkpoint, and first looks in its outputs' destinations for
//! the rows written after the checkpoint (`resume.rs`), so nothing is lost
//! or written twice.

mod home;
mod ids;
mod lambda_out;
pub(crate) mod preprocess;
mod reference;
mod resume;
mod sink;
mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use riffle_engine::kinesis::{ArnNames, names_of_arn};
use riffle_engine::rt;
use riffle_protocol::routing;

use crate::decode::InputFormat;
use crate::encode::ErrorRow;
use crate::exec::join::{JoinKind, RefTable, join_from};
use crate::exec::tumbling::Partial;
use crate::plan::AppPlan;
use crate::progress::Progress;
use crate::service::Shared;
use crate::state::App;

/// Records per read.
const READ_RECORDS_MAX: u32 = 10_000;
/// How long a read waits for records before the task looks at its
/// application again (and reports its watermark).
const IDLE_WAIT_MS: u64 = 1000;
/// Messages from the source tasks to the home task in flight at most: a
/// slow home (or destination) stalls the readers, never the shards.
const HOME_QUEUE: usize = 64;

/// Where a run starts reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StartAt {
    TrimHorizon,
    Now,
    /// Where the checkpoint of an earlier run left off.
    Resume(Box<Progress>),
}

/// How a run's shards begin (StartAt without its checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    TrimHorizon,
    Now,
    Resume,
}

/// What the tasks of one run share (immutable but for `ended`).
pub(crate) struct Run {
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: String,
    pub(crate) app_id: u64,
    pub(crate) run: u64,
    pub(crate) plan: Arc<AppPlan>,
    pub(crate) format: Arc<InputFormat>,
    pub(crate) stream: String,
    pub(crate) stream_id: u64,
    pub(crate) start: Mode,
    /// The checkpoint this run starts from (a fresh one for NOW and
    /// TRIM_HORIZON): its counts, and what it covers.
    pub(crate) base: Progress,
    /// Per output id, the partition keys of the rows written after `base`
    /// (found in the destination when resuming).
    pub(crate) seen: HashMap<String, HashSet<String>>,
    /// Which in-application input stream (index in the plan) each shard
    /// feeds.
    pub(crate) feeds: Mutex<BTreeMap<u32, usize>>,
    /// Shards read to their end (closed by resharding).
    pub(crate) ended: Mutex<HashSet<u32>>,
    /// Shards whose task was started.
    pub(crate) started: Mutex<HashSet<u32>>,
    /// Where the shards listed at Start begin (NOW's taken before Start
    /// answers, so a record put after the answer is read).
    pub(crate) start_offsets: HashMap<u32, u64>,
    /// Shards made by resharding while the run went on (read from their
    /// first record whatever the start position).
    pub(crate) children_started: Mutex<HashSet<u32>>,
    pub(crate) outputs: Vec<crate::config::OutputConf>,
    /// Per pump joining a reference table, the table (loaded at Start).
    pub(crate) joins: HashMap<usize, Arc<RefTable>>,
    /// The code's streams that only outputs read: the rows per-core pumps
    /// write there go out from the source task's core, not through home.
    pub(crate) direct: HashSet<usize>,
    /// The input's Lambda preprocessor.
    pub(crate) preprocessor: Option<preprocess::Preprocessor>,
    /// Its incarnation's AWS/KinesisAnalytics metrics.
    pub(crate) metrics: Arc<crate::metrics::AppMetrics>,
    /// Told when the run is over (dropped with its last task).
    over: flume::Sender<()>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.over.try_send(());
    }
}

/// How long a resumed run waits for the run before it to end (its tasks
/// see the stop at their next read, within `IDLE_WAIT_MS`, and its writers
/// before their next call).
const PREVIOUS_RUN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Registers run `run` of application `app_id` and, when `wait`, waits
/// until the run before it is over (or `PREVIOUS_RUN_WAIT` passed, logged):
/// its writers may still be putting rows the new run must find. Refused
/// when a later run registered already (two changes racing: the later
/// one's run is the one to keep).
async fn follow_previous(
    shared: &Shared,
    app_id: u64,
    run: u64,
    wait: bool,
) -> Result<flume::Sender<()>, riffle_protocol::Error> {
    let (tx, rx) = flume::unbounded();
    let previous = {
        let mut runs = shared.runs_over.lock().unwrap();
        if runs.get(&app_id).is_some_and(|(r, ..)| *r > run) {
            return Err(riffle_protocol::Error::in_use(format!(
                "run {run} was replaced by a later one"
            )));
        }
        runs.insert(app_id, (run, tx.clone(), rx))
    };
    if let (true, Some((_, timer, over))) = (wait, previous) {
        rt::spawn(async move {
            rt::sleep(PREVIOUS_RUN_WAIT).await;
            let _ = timer.send(());
        });
        let _ = over.recv_async().await;
    }
    Ok(tx)
}

/// What a source task sends its home task.
pub(crate) enum Msg {
    /// Rows of stream `stream` (plan index): what a per-core pump wrote,
    /// or the input's own rows when a home pump needs them in ROWTIME
    /// order (`origin`: the shard, for that order's ties).
    Rows {
        stream: usize,
        batch: RecordBatch,
        /// Which record each row came from.
        ids: ids::RowIds,
        origin: u32,
        /// The pump that made them (None: the input's own rows).
        by: Option<usize>,
        /// Rows of records a checkpoint covers: their per-row output was
        /// written before.
        quiet: bool,
    },
    /// A window's partial groups of pump `pump`, whose source's watermark
    /// passed its end.
    Partial {
        pump: usize,
        start: i64,
        partial: Partial,
    },
    /// error_stream rows.
    Errors(Vec<ErrorRow>),
    /// No later row of shard `shard` will have a ROWTIME below `ms`; what
    /// was read before `mark` was processed and written.
    Watermark { shard: u32, ms: i64, mark: Mark },
    /// Shard `shard` was read to its end (or can no longer be read: no
    /// children and no mark then); its children take its place, holding
    /// windows open until they report their watermarks.
    Ended {
        shard: u32,
        children: Vec<u32>,
        mark: Option<Mark>,
    },
}

/// A source task's progress, sent home after every read.
#[derive(Default)]
pub(crate) struct Mark {
    /// Where its line of runs began in the shard.
    pub(crate) from: u64,
    /// Every record before it was processed, and its per-row output written.
    pub(crate) next: u64,
    /// When the appends of the read it ends began: every row of the task's
    /// later reads is written after (their appends begin later).
    pub(crate) sent_ms: i64,
}

impl Run {
    /// Whether this run goes on: the application is RUNNING this run.
    pub(crate) fn live(&self) -> bool {
        let state = self.shared.meta.state();
        state
            .live(&self.name)
            .is_ok_and(|a| a.id == self.app_id && a.running && a.runs == self.run)
    }

    /// The rows pump `p` reads: `batch` (rows of its input), joined to its
    /// reference table if it has one. A key that fails to evaluate matches
    /// nothing.
    pub(crate) fn joined(&self, p: usize, batch: &RecordBatch) -> RecordBatch {
        self.joined_from(p, batch).0
    }

    /// [`Run::joined`], and the row of `batch` each row was made from
    /// (None: no join, the rows themselves).
    pub(crate) fn joined_from(
        &self,
        p: usize,
        batch: &RecordBatch,
    ) -> (RecordBatch, Option<Vec<u32>>) {
        let pump = &self.plan.pumps[p];
        let (Some(j), Some(table)) = (&pump.join, self.joins.get(&p)) else {
            return (batch.clone(), None);
        };
        let mut ignored = Vec::new();
        let keys: Vec<arrow_array::ArrayRef> = j
            .keys
            .iter()
            .map(|(e, _)| crate::expr::eval::evaluate(e, batch, &mut ignored))
            .collect();
        let kind = if j.left {
            JoinKind::Left
        } else {
            JoinKind::Inner
        };
        let (rows, left) = join_from(table, batch, &keys, kind);
        (rows, Some(left))
    }

    /// The core of the home task.
    fn home_core(&self) -> usize {
        (self.app_id as usize) % self.shared.engine.core_count().max(1)
    }
}

/// The reference tables the plan's joins read, loaded from the embedded
/// object store on a thread of their own (a blocking read of up to
/// `reference::REFERENCE_BYTES_MAX`), each indexed by its pump's keys.
async fn load_tables(
    shared: &Arc<Shared>,
    app: &App,
    plan: &AppPlan,
) -> Result<HashMap<usize, Arc<RefTable>>, riffle_protocol::Error> {
    let mut out = HashMap::new();
    for (p, pump) in plan.pumps.iter().enumerate() {
        let Some(j) = &pump.join else { continue };
        let Some(r) = app.references.iter().find(|r| r.table_name == j.table) else {
            return Err(riffle_protocol::Error::invalid(format!(
                "reference table {} has no data source",
                j.table
            )));
        };
        // From an S3-compatible server: read here (async), decoded on the
        // thread below.
        let fetched = match &shared.config.objects {
            Some(reader) => Some(fetch_reference(reader, r).await.map_err(|e| {
                riffle_protocol::Error::invalid(format!("reference table {}: {e}", j.table))
            })?),
            None => None,
        };
        let (data_dir, r) = (shared.engine.config().data_dir.clone(), r.clone());
        let (done, answer) = flume::bounded(1);
        std::thread::Builder::new()
            .name("riffle-reference".into())
            .spawn(move || {
                let loaded = match fetched {
                    Some(data) => reference::load_bytes(&r, &data),
                    None => reference::load(&data_dir, &r),
                };
                let _ = done.send(loaded);
            })
            .map_err(|e| riffle_protocol::Error::internal(format!("cannot load: {e}")))?;
        let loaded = answer
            .recv_async()
            .await
            .map_err(|_| riffle_protocol::Error::internal("the reference loader failed"))?
            .map_err(|e| {
                riffle_protocol::Error::invalid(format!("reference table {}: {e}", j.table))
            })?;
        if loaded.bad_rows > 0 {
            tracing::warn!(
                "analytics application {}: reference table {}: {} rows skipped ({})",
                app.name,
                j.table,
                loaded.bad_rows,
                loaded.first_error.as_deref().unwrap_or("")
            );
        }
        let keys = j.keys.iter().map(|(_, c)| *c).collect();
        out.insert(p, Arc::new(RefTable::build(loaded.batch, keys)));
    }
    Ok(out)
}

/// A reference data source's object from the S3-compatible server, at
/// most `reference::REFERENCE_BYTES_MAX`.
async fn fetch_reference(
    reader: &crate::service::ObjectReader,
    r: &crate::config::ReferenceConf,
) -> Result<bytes::Bytes, String> {
    let bucket = crate::objects::bucket_of_arn(&r.bucket_arn)?;
    let key = &r.file_key;
    let max = reference::REFERENCE_BYTES_MAX as usize;
    match reader(bucket.to_string(), key.clone(), max, true).await {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(format!("Object {key} in bucket {bucket} not found.")),
        Err(e) => Err(format!(
            "Object {key} in bucket {bucket} cannot be read (this server loads reference objects of at most {max} bytes; AWS allows 1 GB): {e}"
        )),
    }
}

/// The data stream holding the records an input or output ARN of this
/// server names, and whether an output may write it: a data stream itself,
/// or a delivery stream's records (Firehose's `records_stream`: a Direct
/// PUT one's internal stream, which takes the rows as its PutRecordBatch
/// would; otherwise its source data stream, which an application reads
/// but does not write).
pub(crate) fn records_of_arn(s: &Shared, arn: &str) -> Option<(String, bool)> {
    let (region, account) = (&s.config.region, &s.config.account);
    match names_of_arn(arn, region, account) {
        Some(ArnNames::Stream(name)) => Some((name.to_string(), true)),
        _ => {
            let name = crate::ops_parts::delivery_stream_of_arn(arn, region, account)?;
            (s.config.delivery_streams.as_ref()?)(name)
        }
    }
}

/// The input's Lambda preprocessor, if it has one whose function resolves
/// (StartApplication checked it does).
fn preprocessor_of(
    shared: &Arc<Shared>,
    app: &App,
    input: &crate::config::InputConf,
) -> Option<preprocess::Preprocessor> {
    let processing = input.processing.as_ref()?;
    let c = &shared.config;
    let f = riffle_lambda::function::resolve(
        &processing.lambda.resource_arn,
        &c.functions,
        &c.region,
        &c.account,
    )
    .ok()?;
    Some(preprocess::Preprocessor::new(
        f.url,
        shared.arn(&app.name),
        input.source.resource_arn.clone(),
        input.source_kind == crate::config::SourceKind::KinesisFirehose,
        shared.tls.clone(),
    ))
}

/// Starts run `app.runs` of `app` with its `plan`: its first checkpoint
/// written, then the home task, then a source task per shard to read first
/// (parents before children; with NOW, the open shards only). Errors are
/// the caller's to answer.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    app: &App,
    plan: AppPlan,
    start: StartAt,
) -> Result<(), riffle_protocol::Error> {
    let input = app
        .input
        .as_ref()
        .ok_or_else(|| riffle_protocol::Error::invalid("the application has no input"))?;
    let (stream, _) = records_of_arn(shared, &input.source.resource_arn).ok_or_else(|| {
        riffle_protocol::Error::invalid("the input is neither a data stream nor a delivery stream")
    })?;
    let stream_id = shared.engine.stream_id(&stream)?;
    // A checkpoint of another stream of the same name (deleted and made
    // again) says nothing of this one.
    let start = match start {
        StartAt::Resume(p) if p.stream_id != 0 && p.stream_id != stream_id => {
            tracing::warn!(
                "analytics application {}: its input stream {stream} was made again since the \
                 checkpoint; it starts from NOW",
                app.name
            );
            StartAt::Now
        }
        start => start,
    };
    let format = InputFormat::compile(&input.schema).map_err(riffle_protocol::Error::invalid)?;
    let shards = shared.engine.list_shards(&stream)?;
    let parallelism = input.parallelism.max(1) as usize;
    // Shard i (index order) of those without a listed parent feeds input
    // stream i mod N; a child feeds its first parent's.
    let mut feeds = BTreeMap::new();
    let mut roots = 0usize;
    let mut sorted = shards.clone();
    sorted.sort_by_key(|s| s.shard_index);
    for s in &sorted {
        let parent = s
            .parent_shard_id
            .as_deref()
            .and_then(routing::parse_shard_id)
            .and_then(|p| feeds.get(&p).copied());
        let feed = parent.unwrap_or_else(|| {
            let f = roots % parallelism;
            roots += 1;
            f
        });
        feeds.insert(s.shard_index, feed);
    }
    let ended: HashSet<u32> = match start {
        // NOW reads what comes: closed shards have nothing more.
        StartAt::Now => sorted
            .iter()
            .filter(|s| s.ending_sequence_number.is_some())
            .map(|s| s.shard_index)
            .collect(),
        // Every shard again, parents first: a closed one's rows may be in
        // a window to rebuild.
        StartAt::TrimHorizon | StartAt::Resume(_) => HashSet::new(),
    };
    let joins = load_tables(shared, app, &plan).await?;
    // A Lambda output is written from home only: one call at a time.
    let lambda = |s: usize| {
        (app.outputs.iter()).any(|o| {
            o.name == plan.streams[s].name && o.kind == crate::config::DestinationKind::Lambda
        })
    };
    // A stream a join reads as its other side goes home too.
    let read = |s: usize| {
        (plan.pumps.iter()).any(|p| {
            p.input == s || matches!(&p.kind, crate::plan::PumpKind::StreamJoin(j) if j.right == s)
        })
    };
    let direct: HashSet<usize> = (0..plan.streams.len())
        .filter(|&s| {
            plan.streams[s].kind == crate::plan::StreamKind::Code
                && !read(s)
                && app.outputs.iter().any(|o| o.name == plan.streams[s].name)
                && !lambda(s)
        })
        .collect();
    let mut start_offsets = HashMap::new();
    let replay_from = match &start {
        StartAt::Resume(p) => p.replay_from_ms(&plan),
        _ => i64::MIN,
    };
    for s in sorted.iter().filter(|s| !ended.contains(&s.shard_index)) {
        use riffle_store::iterator::IteratorType;
        let at = |kind| shared.engine.shard_cursor(&stream, s.shard_index, kind);
        let offset = match &start {
            StartAt::Now => at(IteratorType::Latest).await?.offset,
            StartAt::TrimHorizon => at(IteratorType::TrimHorizon).await?.offset,
            StartAt::Resume(p) => match p.shards.get(&s.shard_index) {
                // From the replay horizon, but never past what was not
                // processed, nor before the line of runs began.
                Some(sp) => {
                    let horizon = match replay_from {
                        i64::MIN => at(IteratorType::TrimHorizon).await?.offset,
                        t => at(IteratorType::AtTimestamp(t)).await?.offset,
                    };
                    horizon.min(sp.next).max(sp.from)
                }
                // Made after the checkpoint: all of it.
                None => at(IteratorType::TrimHorizon).await?.offset,
            },
        };
        start_offsets.insert(s.shard_index, offset);
    }
    let now = riffle_engine::rt::now_ms();
    let (mode, mut base) = match start {
        StartAt::Now => (
            Mode::Now,
            Progress::fresh(app.runs, now, start_offsets.clone()),
        ),
        StartAt::TrimHorizon => (
            Mode::TrimHorizon,
            Progress::fresh(app.runs, now, start_offsets.clone()),
        ),
        StartAt::Resume(mut p) => {
            p.run = app.runs;
            (Mode::Resume, *p)
        }
    };
    base.stream_id = stream_id;
    match mode {
        // The shards closed at a NOW start are over for this line of runs:
        // a resumed run does not read them either.
        Mode::Now => {
            for &s in &ended {
                use riffle_store::iterator::IteratorType;
                let end = shared
                    .engine
                    .shard_cursor(&stream, s, IteratorType::Latest)
                    .await?
                    .offset;
                let done = crate::progress::ShardProgress {
                    from: end,
                    next: end,
                    ended: true,
                };
                base.shards.insert(s, done);
            }
        }
        // A shard of the checkpoint no longer listed (trimmed away) is not
        // waited for.
        Mode::Resume => {
            for (s, p) in base.shards.iter_mut() {
                if !sorted.iter().any(|d| d.shard_index == *s) {
                    p.ended = true;
                }
            }
        }
        Mode::TrimHorizon => {}
    }
    // A crash from here on resumes this run from this checkpoint.
    shared
        .meta
        .apply(crate::state::AnalyticsEvent::Checkpoint {
            name: app.name.clone(),
            id: app.id,
            progress: Box::new(base.clone()),
        })
        .await?;
    let over = follow_previous(shared, app.id, app.runs, mode == Mode::Resume).await?;
    let seen = match mode {
        Mode::Resume => resume::written_since(shared, app, &base).await,
        _ => HashMap::new(),
    };
    let run = Arc::new(Run {
        shared: shared.clone(),
        name: app.name.clone(),
        app_id: app.id,
        run: app.runs,
        plan: Arc::new(plan),
        format: Arc::new(format),
        stream,
        stream_id,
        start: mode,
        base,
        seen,
        feeds: Mutex::new(feeds),
        ended: Mutex::new(ended),
        started: Mutex::new(HashSet::new()),
        children_started: Mutex::new(HashSet::new()),
        start_offsets,
        joins,
        direct,
        outputs: app.outputs.clone(),
        preprocessor: preprocessor_of(shared, app, input),
        metrics: shared.metrics.app(&app.name, app.id, &input.id),
        over,
    });
    let (tx, rx) = flume::bounded(HOME_QUEUE);
    let first = source::ready_shards(&run, &shards);
    let home = home::Home::new(run.clone(), rx, &first);
    shared
        .engine
        .run_on_core_async(run.home_core(), move || rt::spawn_background(home.run()))
        .await?;
    source::spawn(&run, &tx, &first).await;
    Ok(())
}
