//! The home task of a running application (docs/analytics-design.md §5.6):
//! on the application's home core, it takes what the source tasks send,
//! keeps each shard's watermark, merges the tumbling windows' partial groups
//! and closes a window once the smallest watermark passed its end, runs the
//! pumps that read the streams the code creates, and writes every output's
//! rows (error_stream's too) through its sink. Windows close in plan order
//! (a pump after those feeding it), so a window's rows reach the pumps
//! downstream before those close theirs.
//!
//! Once a second, after everything the messages so far made is written, it
//! writes a checkpoint (progress.rs) from the shards' marks, its
//! watermark and its error rows' counts; a resumed run does so only once
//! it caught up with the checkpoint it resumed from.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;

use super::ids::{self, RowIds};
use super::sink::{PATH_SEPARATOR, Rows, Sink};
use super::{Mark, Msg, Run};
use crate::encode::{self, ErrorRow};
use crate::exec::join::row_keys;
use crate::exec::order::Ordered;
use crate::exec::pump::{
    PumpError, filter_rows, map_rows_from, project_rows, sliding_rows, stagger_rows, window_rows,
};
use crate::exec::sliding::SlidingState;
use crate::exec::sort::SortState;
use crate::exec::stagger::StaggerState;
use crate::exec::stream_join::{StreamJoinSpec, StreamJoinState};
use crate::exec::tumbling::TumblingState;
use crate::limits::CHECKPOINT_INTERVAL_MS;
use crate::progress::{Progress, ShardProgress};

/// The origin of rows the home task makes (closed windows, home pumps):
/// after every shard's rows of the same ROWTIME, less the index of the
/// pump whose closed output they are (so rows of equal ROWTIME from two
/// pumps come in one order however the watermark moved).
const HOME_ORIGIN: u64 = u64::MAX;

/// Where rows being delivered come from, and the pumps that made them
/// (`sink::Rows`'s path).
#[derive(Clone, Debug)]
enum Source {
    /// A shard's rows (per-row output; `quiet`: written before, progress.rs),
    /// each named by its record.
    Shard {
        shard: u32,
        quiet: bool,
        path: String,
        ids: RowIds,
    },
    /// Pump `origin`'s closed output, or rows made from it.
    Closed { origin: usize, path: String },
}

impl Source {
    fn closed(plan: &AppPlan, origin: usize) -> Source {
        Source::Closed {
            origin,
            path: plan.pumps[origin].name.clone(),
        }
    }

    /// The order of rows of equal ROWTIME from different sources.
    fn origin(&self) -> u64 {
        match self {
            Source::Shard { shard, .. } => u64::from(*shard),
            Source::Closed { origin, .. } => HOME_ORIGIN - *origin as u64,
        }
    }

    /// The same rows once pump `pump` (its name) made rows of them, row
    /// `i` from row `from[i]` (None: each from its own).
    fn then(&self, pump: &str, from: Option<&[u32]>) -> Source {
        let longer = |path: &str| match path {
            "" => pump.to_string(),
            _ => format!("{path}{PATH_SEPARATOR}{pump}"),
        };
        match self {
            Source::Shard {
                shard,
                quiet,
                path,
                ids,
            } => Source::Shard {
                shard: *shard,
                quiet: *quiet,
                path: longer(path),
                ids: ids::taken(ids, from),
            },
            Source::Closed { origin, path } => Source::Closed {
                origin: *origin,
                path: longer(path),
            },
        }
    }

    /// The same rows through a reference join, row `i` from row
    /// `left[i]` (None: no join).
    fn joined(&self, left: Option<&[u32]>) -> Source {
        match (self, left) {
            (Source::Shard { ids: row_ids, .. }, Some(left)) => {
                let mut out = self.clone();
                if let Source::Shard { ids: out_ids, .. } = &mut out {
                    *out_ids = ids::joined(row_ids, left);
                }
                out
            }
            _ => self.clone(),
        }
    }

    /// How the rows are named at an output (None: not written, a
    /// replay's).
    fn rows(&self) -> Option<Rows> {
        match self {
            Source::Shard { quiet: true, .. } => None,
            Source::Shard {
                shard, path, ids, ..
            } => Some(Rows::Shard {
                shard: *shard,
                path: path.clone(),
                ids: ids.clone(),
            }),
            Source::Closed { origin, path } => Some(Rows::Closed {
                origin: *origin,
                path: path.clone(),
            }),
        }
    }
}
use crate::limits::ERROR_STREAM;
use crate::plan::{AppPlan, PumpKind, StreamKind};

pub(super) struct Home {
    run: Arc<Run>,
    rx: flume::Receiver<Msg>,
    /// Each shard read now, with its watermark (None until it reports).
    watermarks: BTreeMap<u32, Option<i64>>,
    /// Shards read to their end (or that cannot be read).
    ended: std::collections::HashSet<u32>,
    /// The tumbling pumps' windows: merged partials (pumps reading an
    /// input stream) or the groups themselves (the others).
    windows: HashMap<usize, TumblingState>,
    /// The streams read by sliding or stagger pumps: their rows held until
    /// the watermark puts them in ROWTIME order.
    ordered: HashMap<usize, Ordered>,
    staggers: HashMap<usize, StaggerState>,
    slidings: HashMap<usize, SlidingState>,
    sorts: HashMap<usize, SortState>,
    /// The stream-to-stream joins' windows, with the types their keys
    /// compare as (the other stream's key columns').
    joins: HashMap<usize, (StreamJoinState, Vec<arrow_schema::DataType>)>,
    /// Per in-application stream (plan index), the outputs writing it.
    sinks: HashMap<usize, Vec<usize>>,
    error_sinks: Vec<usize>,
    outputs: Vec<Sink>,
    /// Per shard, the furthest mark (the run's checkpoint's until a later
    /// one comes) and its `sent_ms` (when the appends of its read began).
    marks: BTreeMap<u32, (ShardProgress, i64)>,
    /// Per shard, where its task's reading is now.
    read: BTreeMap<u32, u64>,
    /// Children named by an ended shard that have not reported: rows they
    /// wrote may be older than any mark (the parent's end time bounds them).
    awaiting: BTreeMap<u32, i64>,
    /// The run caught up with the checkpoint it started from.
    caught_up: bool,
    last_checkpoint_ms: i64,
    /// The watermark of the last checkpoint (the run's checkpoint's first).
    last_watermark: i64,
}

impl Home {
    pub(super) fn new(run: Arc<Run>, rx: flume::Receiver<Msg>, shards: &[u32]) -> Home {
        let plan = run.plan.clone();
        let windows = plan
            .pumps
            .iter()
            .enumerate()
            .filter_map(|(p, pump)| match &pump.kind {
                PumpKind::Tumbling(t) => Some((p, TumblingState::new(Arc::new(t.clone())))),
                _ => None,
            })
            .collect();
        let mut ordered = HashMap::new();
        let mut staggers = HashMap::new();
        let mut slidings = HashMap::new();
        let mut sorts = HashMap::new();
        let mut joins = HashMap::new();
        for (p, pump) in plan.pumps.iter().enumerate() {
            match &pump.kind {
                PumpKind::Stagger(t) => {
                    staggers.insert(p, StaggerState::new(Arc::new(t.clone())));
                }
                PumpKind::Sliding(t) => {
                    slidings.insert(p, SlidingState::new(Arc::new(t.clone())));
                }
                PumpKind::Sort(t) => {
                    sorts.insert(p, SortState::new(Arc::new(t.clone())));
                }
                PumpKind::StreamJoin(j) => {
                    let right = &plan.streams[j.right];
                    let right_schema = match right.kind {
                        StreamKind::Input => crate::decode::schema_of(&run.format),
                        _ => crate::exec::pump::stream_schema(right),
                    };
                    let like = (j.keys.iter())
                        .map(|(_, c)| right_schema.field(*c).data_type().clone())
                        .collect();
                    let spec = StreamJoinSpec {
                        left_window_ms: j.left_window_ms,
                        right_window_ms: j.right_window_ms,
                        left_outer: j.left_outer,
                        left_rowtime: plan.streams[pump.input].rowtime(),
                        right_rowtime: right.rowtime(),
                        right_columns: (0..right.columns.len()).collect(),
                        right_schema,
                    };
                    joins.insert(p, (StreamJoinState::new(Arc::new(spec)), like));
                    ordered
                        .entry(j.right)
                        .or_insert_with(|| Ordered::new(right.rowtime()));
                }
                _ => continue,
            }
            let input = &plan.streams[pump.input];
            ordered
                .entry(pump.input)
                .or_insert_with(|| Ordered::new(input.rowtime()));
        }
        let mut sinks: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut error_sinks = Vec::new();
        let mut outputs = Vec::new();
        for o in &run.outputs {
            let i = outputs.len();
            if o.name == ERROR_STREAM {
                error_sinks.push(i);
            } else if let Some(s) = plan.streams.iter().position(|s| s.name == o.name) {
                sinks.entry(s).or_default().push(i);
            }
            outputs.push(Sink::new(&run, o));
        }
        let now = riffle_engine::rt::now_ms();
        Home {
            marks: (run.base.shards.iter())
                .map(|(&s, p)| (s, (p.clone(), now)))
                .collect(),
            read: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            caught_up: false,
            last_checkpoint_ms: now,
            last_watermark: run.base.watermark_ms,
            watermarks: shards.iter().map(|&s| (s, None)).collect(),
            ended: Default::default(),
            run,
            rx,
            windows,
            ordered,
            staggers,
            slidings,
            sorts,
            joins,
            sinks,
            error_sinks,
            outputs,
        }
    }

    /// The smallest watermark of the shards read now (all shards ended:
    /// every window can close).
    fn watermark(&self) -> Option<i64> {
        let mut w = i64::MAX;
        for m in self.watermarks.values() {
            w = w.min((*m)?);
        }
        Some(w)
    }

    pub(super) async fn run(mut self) {
        // Ends when every source task has ended (their senders dropped).
        while let Ok(msg) = self.rx.recv_async().await {
            if !self.run.live() {
                return;
            }
            // The pumps never panic on what clients give them; if one did,
            // this application stops (logged) rather than its core.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut out = Out::default();
                self.take(msg, &mut out);
                out
            }));
            let Ok(out) = done else {
                tracing::error!(
                    "analytics application {}: an internal error stopped it",
                    self.run.name
                );
                return;
            };
            self.write(out).await;
            self.checkpoint().await;
        }
    }

    /// Takes a checkpoint if one is due: everything the messages so far
    /// made is written (a writer stops only when the run does).
    async fn checkpoint(&mut self) {
        let now = riffle_engine::rt::now_ms();
        if now - self.last_checkpoint_ms < CHECKPOINT_INTERVAL_MS || !self.run.live() {
            return;
        }
        // Every shard ended (the input is gone): nothing to resume from.
        let Some(watermark) = self.watermark().filter(|&w| w != i64::MAX) else {
            return;
        };
        if !self.caught_up {
            self.caught_up = self.run.base.caught_up(watermark, &self.read);
            if !self.caught_up {
                return;
            }
        }
        // A child shard may report a watermark below its parent's last:
        // what closed before stays closed.
        let watermark = watermark.max(self.last_watermark);
        self.last_checkpoint_ms = now;
        self.last_watermark = watermark;
        let progress = self.progress(now, watermark);
        let applied = self
            .run
            .shared
            .meta
            .apply(crate::state::AnalyticsEvent::Checkpoint {
                name: self.run.name.clone(),
                id: self.run.app_id,
                progress: Box::new(progress),
            })
            .await;
        if let Err(e) = applied {
            tracing::debug!(
                "analytics application {}: checkpoint not kept: {}",
                self.run.name,
                e.message
            );
        }
    }

    /// The checkpoint of now: the marks, the watermark and the counts.
    fn progress(&self, now: i64, watermark: i64) -> Progress {
        let mut scan_from = now;
        for (p, sent) in self.marks.values() {
            if !p.ended {
                scan_from = scan_from.min(*sent);
            }
        }
        for &sent in self.awaiting.values() {
            scan_from = scan_from.min(sent);
        }
        let mut error_rows = BTreeMap::new();
        for o in &self.outputs {
            if o.errors > 0 {
                error_rows.insert(o.id.clone(), o.errors);
            }
        }
        Progress {
            run: self.run.run,
            epoch: self.run.base.epoch,
            stream_id: self.run.base.stream_id,
            taken_ms: now,
            scan_from_ms: scan_from,
            watermark_ms: watermark,
            shards: (self.marks.iter())
                .map(|(&s, (p, _))| (s, p.clone()))
                .collect(),
            error_rows,
        }
    }

    /// A shard's mark: kept when it is past the one held.
    fn mark(&mut self, shard: u32, mark: Mark, ended: bool) {
        self.read.insert(shard, mark.next);
        self.awaiting.remove(&shard);
        let held = self.marks.get(&shard).map(|(p, _)| p.next);
        if held.is_some_and(|n| n > mark.next) {
            return;
        }
        let progress = ShardProgress {
            from: mark.from,
            next: mark.next,
            ended,
        };
        self.marks.insert(shard, (progress, mark.sent_ms));
    }

    /// One message: its rows delivered, partials merged, watermark kept,
    /// then the windows the watermark closes.
    fn take(&mut self, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Rows {
                stream,
                batch,
                ids,
                origin,
                by,
                quiet,
            } => {
                let errors = out.pump_errors.len();
                let from = Source::Shard {
                    shard: origin,
                    quiet,
                    path: (by.and_then(|p| self.run.plan.pumps.get(p)))
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    ids,
                };
                self.deliver(stream, batch, &from, out);
                // A replay's per-row errors were written before.
                if quiet {
                    out.pump_errors.truncate(errors);
                }
            }
            Msg::Partial {
                pump,
                start,
                partial,
            } => {
                if let Some(w) = self.windows.get_mut(&pump) {
                    w.merge(start, partial);
                }
            }
            Msg::Errors(rows) => out.errors.extend(rows),
            Msg::Watermark { shard, ms, mark } => {
                let w = self.watermarks.entry(shard).or_insert(None);
                *w = Some(w.map_or(ms, |old| old.max(ms)));
                self.mark(shard, mark, false);
            }
            Msg::Ended {
                shard,
                children,
                mark,
            } => {
                let sent = mark.as_ref().map(|m| m.sent_ms);
                match mark {
                    Some(mark) => self.mark(shard, mark, true),
                    // It cannot be read: nothing more of it is waited for.
                    None => {
                        self.read.insert(shard, u64::MAX);
                        if let Some((p, _)) = self.marks.get_mut(&shard) {
                            p.ended = true;
                        }
                    }
                }
                for &c in &children {
                    if !self.read.contains_key(&c) {
                        let at = sent.unwrap_or_else(riffle_engine::rt::now_ms);
                        self.awaiting.insert(c, at);
                    }
                }
                // A child's records may have arrived before the
                // parent's last watermark (the parent was read while
                // being sealed): windows wait for the child's own.
                self.watermarks.remove(&shard);
                self.ended.insert(shard);
                // A merged child is named by both parents; one read to its
                // end is never waited for again.
                for c in children {
                    if !self.ended.contains(&c) {
                        self.watermarks.entry(c).or_insert(None);
                    }
                }
            }
        }
        if let Some(w) = self.watermark() {
            self.close_windows(w, out);
        }
    }

    /// Closes every window whose end the watermark passed, and runs the
    /// sliding and stagger pumps on the rows the watermark released, pump
    /// by pump in plan order.
    fn close_windows(&mut self, watermark: i64, out: &mut Out) {
        let plan = self.run.plan.clone();
        // Each ordered stream's rows released at this watermark, once.
        let mut released: HashMap<usize, Option<RecordBatch>> = HashMap::new();
        for (p, pump) in plan.pumps.iter().enumerate() {
            if let PumpKind::StreamJoin(j) = &pump.kind {
                let mut release = |s: usize| {
                    released
                        .entry(s)
                        .or_insert_with(|| {
                            self.ordered.get_mut(&s).and_then(|o| o.release(watermark))
                        })
                        .clone()
                };
                let (left, right) = (release(pump.input), release(j.right));
                self.run_join(p, left, right, watermark, out);
                continue;
            }
            if pump.kind.ordered() {
                let rows = released
                    .entry(pump.input)
                    .or_insert_with(|| {
                        self.ordered
                            .get_mut(&pump.input)
                            .and_then(|o| o.release(watermark))
                    })
                    .clone();
                self.run_ordered(p, rows, watermark, out);
                continue;
            }
            let PumpKind::Tumbling(t) = &pump.kind else {
                continue;
            };
            let Some(state) = self.windows.get_mut(&p) else {
                continue;
            };
            let closed = state.close(watermark);
            for (start, groups) in closed {
                let rows = window_rows(
                    pump,
                    t,
                    start,
                    &plan.streams[pump.target],
                    &groups,
                    &mut out.pump_errors,
                );
                if rows.num_rows() > 0 {
                    self.deliver(pump.target, rows, &Source::closed(&plan, p), out);
                }
            }
        }
    }

    /// A stream-to-stream join on both streams' rows the watermark released
    /// (each in ROWTIME order): the pairs it matched (and a LEFT join's
    /// unmatched rows), through the pump's filter and select list.
    fn run_join(
        &mut self,
        p: usize,
        left: Option<RecordBatch>,
        right: Option<RecordBatch>,
        watermark: i64,
        out: &mut Out,
    ) {
        let plan = self.run.plan.clone();
        let pump = &plan.pumps[p];
        let PumpKind::StreamJoin(j) = &pump.kind else {
            return;
        };
        let Some((state, like)) = self.joins.get_mut(&p) else {
            return;
        };
        let mut ignored = Vec::new();
        let left_keys = left.as_ref().map(|b| {
            let keys: Vec<arrow_array::ArrayRef> = (j.keys.iter())
                .map(|(e, _)| crate::expr::eval::evaluate(e, b, &mut ignored))
                .collect();
            row_keys(&keys, like)
        });
        let right_keys = right.as_ref().map(|b| {
            let keys: Vec<arrow_array::ArrayRef> =
                j.keys.iter().map(|(_, c)| b.column(*c).clone()).collect();
            row_keys(&keys, like)
        });
        let joined = state.advance(
            left.as_ref().zip(left_keys.as_deref()),
            right.as_ref().zip(right_keys.as_deref()),
            watermark,
        );
        let Some(joined) = joined else {
            return;
        };
        let input = &plan.streams[pump.input];
        let target = &plan.streams[pump.target];
        let kept = filter_rows(pump, input, &joined, &mut out.pump_errors);
        let rows = project_rows(pump, &j.items, input, target, &kept, &mut out.pump_errors);
        if rows.num_rows() > 0 {
            self.deliver(pump.target, rows, &Source::closed(&plan, p), out);
        }
    }

    /// A sliding or stagger pump on its input's rows in ROWTIME order
    /// (None: none released at this watermark).
    fn run_ordered(&mut self, p: usize, rows: Option<RecordBatch>, watermark: i64, out: &mut Out) {
        let plan = self.run.plan.clone();
        let pump = &plan.pumps[p];
        let input = &plan.streams[pump.input];
        let target = &plan.streams[pump.target];
        let kept = rows.map(|b| {
            let b = self.run.joined(p, &b);
            filter_rows(pump, input, &b, &mut out.pump_errors)
        });
        match &pump.kind {
            PumpKind::Stagger(t) => {
                let Some(state) = self.staggers.get_mut(&p) else {
                    return;
                };
                if let Some(kept) = &kept {
                    let mut failed = Vec::new();
                    state.push(kept, &mut failed);
                    out.pump_errors
                        .extend(failed.into_iter().map(|e| PumpError {
                            pump: pump.name.clone(),
                            name: e.kind.error_name(),
                            message: e.message,
                            rowtime_ms: 0,
                            row: String::new(),
                        }));
                }
                if let Some((groups, ends)) = state.close(watermark) {
                    let rows = stagger_rows(pump, t, target, &groups, &ends, &mut out.pump_errors);
                    if rows.num_rows() > 0 {
                        self.deliver(pump.target, rows, &Source::closed(&plan, p), out);
                    }
                }
            }
            PumpKind::Sliding(t) => {
                let Some(state) = self.slidings.get_mut(&p) else {
                    return;
                };
                let aggs = kept.filter(|k| k.num_rows() > 0).map(|kept| {
                    let mut failed = Vec::new();
                    let aggs = state.push(&kept, &mut failed);
                    // Every row below the watermark is in: partitions no
                    // later row can see go.
                    state.forget_before(watermark);
                    (kept, aggs, failed)
                });
                if aggs.is_none() {
                    state.forget_before(watermark);
                }
                if let Some((kept, aggs, failed)) = aggs {
                    let rows =
                        sliding_rows(pump, t, target, &kept, aggs, &failed, &mut out.pump_errors);
                    if rows.num_rows() > 0 {
                        self.deliver(pump.target, rows, &Source::closed(&plan, p), out);
                    }
                }
            }
            PumpKind::Sort(t) => {
                let Some(state) = self.sorts.get_mut(&p) else {
                    return;
                };
                if let Some(kept) = &kept {
                    state.push(kept);
                }
                if let Some(sorted) = state.release(watermark) {
                    let rows =
                        project_rows(pump, &t.items, input, target, &sorted, &mut out.pump_errors);
                    if rows.num_rows() > 0 {
                        self.deliver(pump.target, rows, &Source::closed(&plan, p), out);
                    }
                }
            }
            _ => {}
        }
    }

    /// Rows written into stream `stream`: to its outputs, and to the home
    /// pumps reading it (the sliding and stagger ones once the watermark
    /// orders them).
    fn deliver(&mut self, stream: usize, batch: RecordBatch, from: &Source, out: &mut Out) {
        let plan = self.run.plan.clone();
        if let (Some(sinks), Some(rows)) = (self.sinks.get(&stream), from.rows()) {
            for &s in sinks {
                out.rows.push((s, batch.clone(), rows.clone()));
            }
        }
        if let Some(o) = self.ordered.get_mut(&stream) {
            o.push(batch.clone(), from.origin());
        }
        if plan.streams[stream].kind == StreamKind::Input {
            return;
        }
        let input = &plan.streams[stream];
        for (p, pump) in plan.pumps.iter().enumerate() {
            if pump.input != stream || pump.kind.ordered() {
                continue;
            }
            let (batch, left) = self.run.joined_from(p, &batch);
            match &pump.kind {
                PumpKind::Map { .. } => {
                    let (rows, kept) = map_rows_from(
                        pump,
                        input,
                        &plan.streams[pump.target],
                        &batch,
                        &mut out.pump_errors,
                    );
                    if rows.num_rows() > 0 {
                        let made = from
                            .joined(left.as_deref())
                            .then(&pump.name, kept.as_deref());
                        self.deliver(pump.target, rows, &made, out);
                    }
                }
                PumpKind::Stagger(_)
                | PumpKind::Sliding(_)
                | PumpKind::Sort(_)
                | PumpKind::StreamJoin(_) => {}
                PumpKind::Tumbling(_) => {
                    let kept = filter_rows(pump, input, &batch, &mut out.pump_errors);
                    let mut failed = Vec::new();
                    if let Some(w) = self.windows.get_mut(&p) {
                        w.push(&kept, from.origin(), &mut failed);
                    }
                    out.pump_errors
                        .extend(failed.into_iter().map(|e| PumpError {
                            pump: pump.name.clone(),
                            name: e.kind.error_name(),
                            message: e.message,
                            rowtime_ms: 0,
                            row: String::new(),
                        }));
                }
            }
        }
    }

    /// Writes what a message made: rows to their outputs, then errors to
    /// error_stream's.
    async fn write(&mut self, out: Out) {
        for (s, batch, rows) in out.rows {
            self.outputs[s].write(&self.run, &batch, &rows).await;
        }
        if self.error_sinks.is_empty() || (out.errors.is_empty() && out.pump_errors.is_empty()) {
            return;
        }
        let now = riffle_engine::rt::now_ms();
        let mut rows = out.errors;
        rows.extend(out.pump_errors.iter().map(|e| ErrorRow::of_pump(e, now)));
        let batch = encode::error_batch(&rows);
        for &s in &self.error_sinks {
            self.outputs[s]
                .write(&self.run, &batch, &Rows::Errors)
                .await;
        }
    }
}

/// What one message made: rows per output, and errors.
#[derive(Default)]
struct Out {
    rows: Vec<(usize, RecordBatch, Rows)>,
    errors: Vec<ErrorRow>,
    pump_errors: Vec<PumpError>,
}
