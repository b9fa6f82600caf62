//! A source task: one shard of a running application's input, read on the
//! shard's owning core (docs/analytics-design.md §5.5). Per read: records
//! (KPL aggregates opened) decoded into one batch of the shard's
//! in-application input stream with ROWTIME = arrival; the pumps reading
//! that stream run here (a per-row pump's rows go home; a tumbling pump's
//! groups grow here, and a window's partial groups go home once this
//! shard's watermark passed its end); then the watermark, with the mark of
//! how far the shard was processed (progress.rs). At a closed shard's end
//! the task ships every open window, tells home which children take its
//! place, and starts their tasks.
//!
//! A resumed run reads the records its checkpoint covers *quietly*: they
//! feed the windows, but their per-row output and errors, written before,
//! are not made again. A read never spans the checkpoint's offset.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use riffle_engine::rt;
use riffle_engine::{GetRecordsOutput, ShardDescription};
use riffle_protocol::{Error, ErrorCode, routing};
use riffle_store::iterator::{IteratorToken, IteratorType};

use super::ids::{self, RowId, RowIds};
use super::preprocess::Outcome;
use super::sink::{Rows, Sink};
use super::{IDLE_WAIT_MS, Mark, Mode, Msg, READ_RECORDS_MAX, Run};
use crate::decode::Decoder;
use crate::encode::ErrorRow;
use crate::exec::pump::{PumpError, filter_rows, map_rows_from};
use crate::exec::tumbling::TumblingState;
use crate::plan::{AppPlan, PumpKind};

/// Reads whose work waits for the writer: the source decodes ahead of it
/// by at most this many reads and one.
const WORK_QUEUED_MAX: usize = 1;
/// Reads whose rows a shard's writer has in flight at once: their appends
/// wait on durable group commits, which take longer than making the next
/// read's records (docs/benchmarks.md, "Writes in flight").
const WRITES_IN_FLIGHT: usize = 3;

/// Reads of fewer records than this that reached the shard's tip are
/// followed by a pause of `LINGER` before the next read.
const LINGER_BELOW: u32 = READ_RECORDS_MAX / 10;
/// How long a shard that keeps up waits between its reads: its rows come
/// out this much later, in reads this many times larger.
const LINGER: Duration = Duration::from_millis(20);

/// After a read error, the task waits this long before reading again.
const PAUSE: Duration = Duration::from_secs(1);

/// The shards to read first: those not ended whose parents are ended or
/// not listed (trimmed away), and whose task has not started.
pub(super) fn ready_shards(run: &Run, shards: &[ShardDescription]) -> Vec<u32> {
    let ended = run.ended.lock().unwrap();
    let started = run.started.lock().unwrap();
    let done = |parent: Option<&String>| {
        parent
            .and_then(|p| routing::parse_shard_id(p))
            .is_none_or(|i| ended.contains(&i) || !shards.iter().any(|s| s.shard_index == i))
    };
    shards
        .iter()
        .filter(|s| {
            !ended.contains(&s.shard_index)
                && !started.contains(&s.shard_index)
                && done(s.parent_shard_id.as_ref())
                && done(s.adjacent_parent_shard_id.as_ref())
        })
        .map(|s| s.shard_index)
        .collect()
}

/// Starts the tasks of `shards`, each on its shard's owning core.
pub(super) async fn spawn(run: &Arc<Run>, home: &flume::Sender<Msg>, shards: &[u32]) {
    let cores = run.shared.engine.core_count();
    for &shard in shards {
        if !run.started.lock().unwrap().insert(shard) {
            continue;
        }
        let feed = run.feeds.lock().unwrap().get(&shard).copied().unwrap_or(0);
        let task = Source {
            run: run.clone(),
            home: home.clone(),
            shard,
            feed,
        };
        let core = riffle_engine::control::owner((run.stream_id, shard), cores);
        if run
            .shared
            .engine
            .run_on_core_async(core, move || rt::spawn_background(task.read()))
            .await
            .is_err()
        {
            return;
        }
    }
}

struct Source {
    run: Arc<Run>,
    home: flume::Sender<Msg>,
    shard: u32,
    /// The in-application input stream (plan index) this shard feeds.
    feed: usize,
}

impl Source {
    fn follower(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        ("analytics", self.run.app_id, self.run.run, self.shard).hash(&mut h);
        h.finish()
    }

    /// Where reading starts: the run's position for the shards open at
    /// Start, a child's first record for shards that came later.
    async fn first_offset(&self) -> Option<u64> {
        if let Some(&offset) = self.run.start_offsets.get(&self.shard) {
            return Some(offset);
        }
        let kind = match (self.run.start, self.is_child()) {
            (Mode::Now, false) => IteratorType::Latest,
            _ => IteratorType::TrimHorizon,
        };
        loop {
            if !self.run.live() {
                return None;
            }
            match self
                .run
                .shared
                .engine
                .shard_cursor(&self.run.stream, self.shard, kind)
                .await
            {
                Ok(c) if c.stream_id == self.run.stream_id => return Some(c.offset),
                Ok(_) => return None,
                Err(e) if e.code == ErrorCode::ResourceNotFound => return None,
                Err(e) => {
                    tracing::warn!(
                        "analytics application {} shard {}: {}",
                        self.run.name,
                        self.shard,
                        e.message
                    );
                    rt::sleep(PAUSE).await;
                }
            }
        }
    }

    /// The read of up to `limit` records at `offset` (waiting a little at
    /// the tip), owning what it needs so that it can run as a task.
    fn read_at(
        &self,
        offset: u64,
        limit: u32,
    ) -> impl Future<Output = Result<GetRecordsOutput, Error>> + 'static {
        let run = self.run.clone();
        let follower = self.follower();
        let cursor = IteratorToken {
            stream_id: run.stream_id,
            stream_name: run.stream.clone(),
            shard_index: self.shard,
            offset,
            issued_ms: rt::now_ms(),
        };
        async move {
            (run.shared.engine)
                .follow_at(&cursor, Some(limit), IDLE_WAIT_MS, follower)
                .await
        }
    }

    /// Whether this shard was made by resharding after the run started.
    fn is_child(&self) -> bool {
        self.run
            .children_started
            .lock()
            .unwrap()
            .contains(&self.shard)
    }

    async fn read(self) {
        let exit = self.follow().await;
        // A shard that can no longer be read holds no window open.
        if exit == Exit::Gone && self.run.live() {
            let _ = self
                .home
                .send_async(Msg::Ended {
                    shard: self.shard,
                    children: Vec::new(),
                    mark: None,
                })
                .await;
        }
    }

    /// Reads until the run stops, the shard ends, or it cannot be read.
    async fn follow(&self) -> Exit {
        let Some(mut offset) = self.first_offset().await else {
            return Exit::Gone;
        };
        // What the run's checkpoint says of this shard: where its line of
        // runs began, and the records whose per-row output was written.
        let (from, quiet_until) = match self.run.base.shards.get(&self.shard) {
            Some(p) => (p.from, p.next),
            None => (offset, 0),
        };
        let plan = self.run.plan.clone();
        let pumps: Vec<usize> = (0..plan.pumps.len())
            .filter(|&p| plan.pumps[p].input == self.feed)
            .collect();
        let mut shard = Shard {
            decoder: Decoder::new(self.run.format.clone()),
            windows: pumps
                .iter()
                .filter_map(|&p| match &plan.pumps[p].kind {
                    PumpKind::Tumbling(t) => Some((p, TumblingState::new(Arc::new(t.clone())))),
                    _ => None,
                })
                .collect(),
            // Sliding, stagger and sorting pumps run at home, on every
            // shard's rows.
            ship_input: pumps.iter().any(|&p| plan.pumps[p].kind.ordered())
                || (plan.pumps.iter())
                    .any(|p| matches!(&p.kind, PumpKind::StreamJoin(j) if j.right == self.feed)),
            pumps,
            watermark: i64::MIN,
        };
        // Writers of the streams only outputs read (`Run::direct`).
        let sinks: Vec<(usize, Sink)> = self
            .run
            .outputs
            .iter()
            .filter_map(|o| {
                let s = plan.streams.iter().position(|s| s.name == o.name)?;
                self.run.direct.contains(&s).then(|| {
                    let mut sink = Sink::new(&self.run, o);
                    // The shards' sinks start their rounds apart.
                    sink.spread = u64::from(self.shard);
                    (s, sink)
                })
            })
            .collect();
        // Each read's work goes to the writer, which writes its rows while
        // the next reads are made and decoded (the writes wait on durable
        // appends), then sends its messages, in the order of the reads.
        let writer = Writer {
            run: self.run.clone(),
            home: self.home.clone(),
            shard: self.shard,
            sinks,
            from,
        };
        let (work, works) = flume::bounded(WORK_QUEUED_MAX);
        let (exit_tx, exit_rx) = flume::bounded(1);
        rt::spawn_background(async move {
            let _ = exit_tx.send(writer.run(works).await);
        });
        // After the writer wrote everything sent to it: how it ended.
        let written = |work: flume::Sender<Pending>| {
            drop(work);
            async { exit_rx.recv_async().await.unwrap_or(Exit::Stopped) }
        };
        // The next read, started before this one's records are processed.
        let mut ahead: Option<flume::Receiver<Result<GetRecordsOutput, Error>>> = None;
        loop {
            if !self.run.live() {
                return Exit::Stopped;
            }
            let quiet = offset < quiet_until;
            let limit = read_limit(offset, quiet_until);
            let read = match ahead.take() {
                Some(next) => next.recv_async().await.unwrap_or_else(|_| Err(stopped())),
                None => self.read_at(offset, limit).await,
            };
            let read = match read {
                Ok(r) => r,
                Err(e) if e.code == ErrorCode::ResourceNotFound => {
                    written(work).await;
                    return Exit::Gone;
                }
                Err(e) => {
                    tracing::warn!(
                        "analytics application {} shard {}: read: {}",
                        self.run.name,
                        self.shard,
                        e.message
                    );
                    rt::sleep(PAUSE).await;
                    continue;
                }
            };
            offset = read.next_offset();
            // Counted once: a resumed run's replay of what it read before is not.
            if !quiet {
                let bytes: u64 = read.records().map(|r| r.data().len() as u64).sum();
                let behind = read.millis_behind_latest.max(0) as u64;
                (self.run.metrics.input).read(u64::from(read.record_count), bytes, behind);
            }
            // A small read (the shard keeps up): the next waits a little so
            // that it takes more records. Each read costs about the same
            // whatever its size (the read, the batch, the messages, the
            // writer's calls): a shard taking 25,000 records a second in
            // reads of one put each cost q0 5.7 us a record, against 1 us in
            // full reads (docs/benchmarks.md).
            let linger =
                !read.behind() && read.record_count > 0 && read.record_count < LINGER_BELOW;
            // A shard with more to read (a backlog): the next read starts
            // now and runs while this one is processed (sources waited on
            // their reads about half their time, docs/benchmarks.md). Each
            // read is a whole number of records, so where it ends is where
            // the next begins.
            if read.behind() && read.child_shards.is_none() && self.run.live() {
                let (tx, rx) = flume::bounded(1);
                let next = self.read_at(offset, read_limit(offset, quiet_until));
                // Spawned into this task's queue, it runs at once up to its
                // request to the core; the core's task (another queue) then
                // gets to start the disk reads before this one decodes.
                rt::spawn(async move {
                    let _ = tx.send(next.await);
                });
                ahead = Some(rx);
                rt::yield_queue().await;
            }
            // The input preprocessor's answers, when there is one.
            let processed = match &self.run.preprocessor {
                Some(pre) if read.record_count > 0 => {
                    let what = format!(
                        "analytics application {} shard {}",
                        self.run.name, self.shard
                    );
                    let metrics = &self.run.metrics;
                    let on_call = |answered: bool, took: std::time::Duration| {
                        if !quiet {
                            metrics.invoked(answered, took)
                        }
                    };
                    match pre
                        .process(&read, || self.run.live(), &what, &on_call)
                        .await
                    {
                        Some(outcomes) => {
                            if !quiet {
                                metrics.preprocessed(&outcomes);
                            }
                            Some(outcomes)
                        }
                        None => return Exit::Stopped,
                    }
                }
                _ => None,
            };
            // The pumps never panic on what clients give them; if one did,
            // this shard stops (logged) rather than its core.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.process(&plan, &read, processed.as_deref(), &mut shard, quiet)
            }));
            let (messages, direct, children) = match done {
                Ok(done) => done,
                Err(_) => {
                    tracing::error!(
                        "analytics application {} shard {}: an internal error stopped reading this shard",
                        self.run.name,
                        self.shard
                    );
                    // Its children, if it is ever resharded, are not held
                    // back by it.
                    self.run.ended.lock().unwrap().insert(self.shard);
                    written(work).await;
                    return Exit::Gone;
                }
            };
            let ended = children.is_some();
            let p = Pending {
                direct,
                messages,
                children,
                next: offset,
            };
            // A writer that stopped taking work has ended the task.
            if work.send_async(p).await.is_err() || ended {
                return written(work).await;
            }
            if linger {
                rt::sleep(LINGER).await;
            }
        }
    }
}

/// How many records the read at `offset` takes: a full read, or up to the
/// checkpoint's offset while reading quietly (offsets are dense, so the
/// read ends there).
fn read_limit(offset: u64, quiet_until: u64) -> u32 {
    match offset < quiet_until {
        true => (quiet_until - offset).min(u64::from(READ_RECORDS_MAX)) as u32,
        false => READ_RECORDS_MAX,
    }
}

/// What a read ahead gives when its task was dropped unanswered (the
/// engine shutting down).
fn stopped() -> Error {
    Error::internal("the read was dropped")
}

/// A source task's writer: each read's rows named and encoded, their
/// appends in flight (several reads' at once), and once a read's rows are
/// stored, its messages sent home with the mark of everything before its
/// end, in the order of the reads.
struct Writer {
    run: Arc<Run>,
    home: flume::Sender<Msg>,
    shard: u32,
    sinks: Vec<(usize, Sink)>,
    /// Where the shard's line of runs began (the marks say it).
    from: u64,
}

/// What the writer waits for next.
enum Event {
    /// A read's work from the source (Err: the source sends no more).
    Work(Result<Pending, flume::RecvError>),
    /// The oldest read's rows are stored (or the run stopped).
    Written,
}

impl Writer {
    /// Finishes the reads' work in order until the source sends no more,
    /// the run stops, or the shard ended and its children started.
    async fn run(mut self, works: flume::Receiver<Pending>) -> Exit {
        // Reads whose rows are being appended, oldest first, each with the
        // signal that they are stored.
        let mut flight: VecDeque<(flume::Receiver<()>, i64, Pending)> = VecDeque::new();
        let mut open = true;
        loop {
            let event = match flight.front() {
                None if !open => return Exit::Gone,
                None => Event::Work(works.recv_async().await),
                Some((written, ..)) if !open || flight.len() >= WRITES_IN_FLIGHT => {
                    let _ = written.recv_async().await;
                    Event::Written
                }
                Some((written, ..)) => {
                    let work = async { Event::Work(works.recv_async().await) };
                    let done = async {
                        let _ = written.recv_async().await;
                        Event::Written
                    };
                    futures_lite::future::or(done, work).await
                }
            };
            if !self.run.live() {
                return Exit::Stopped;
            }
            match event {
                Event::Work(Ok(p)) => {
                    // Stamped before its appends begin (the mark's
                    // `sent_ms`): the rows of later reads come after.
                    let began = rt::now_ms();
                    let written = self.start(&p.direct);
                    flight.push_back((written, began, p));
                }
                Event::Work(Err(_)) => open = false,
                Event::Written => {
                    let (_, began, p) = flight.pop_front().expect("a read is in flight");
                    if let Some(exit) = self.finish(p, began).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// Starts writing `direct` (rows by stream, with the pump that made
    /// them) through the sinks of their streams: named and encoded now,
    /// appended by a task of their own. Returns the signal that they are
    /// stored (or the run stopped).
    fn start(&mut self, direct: &[Direct]) -> flume::Receiver<()> {
        let mut writes = Vec::new();
        for (stream, pump, batch, ids) in direct {
            let rows = Rows::Shard {
                shard: self.shard,
                path: self.run.plan.pumps[*pump].name.clone(),
                ids: ids.clone(),
            };
            for (s, sink) in self.sinks.iter_mut() {
                if s == stream {
                    writes.extend(sink.prepare(&self.run, batch, &rows));
                }
            }
        }
        let (done, written) = flume::bounded(1);
        let run = self.run.clone();
        rt::spawn_background(async move {
            for write in writes {
                write.finish(&run).await;
            }
            let _ = done.send(());
        });
        written
    }

    /// Finishes a read whose rows are stored: its messages sent with the
    /// mark of everything before its end, stamped `began` (when its appends
    /// began). Some exit when the task is over
    /// (the run stopped, or the shard ended and its children started).
    async fn finish(&mut self, p: Pending, began: i64) -> Option<Exit> {
        let mut messages = p.messages;
        let mark = Mark {
            from: self.from,
            next: p.next,
            sent_ms: began,
        };
        match messages.last_mut() {
            Some(Msg::Watermark { mark: m, .. }) => *m = mark,
            Some(Msg::Ended { mark: m, .. }) => *m = Some(mark),
            _ => {}
        }
        for m in messages {
            if self.home.send_async(m).await.is_err() {
                return Some(Exit::Stopped);
            }
        }
        if p.children.is_some() {
            // The children whose parents are all done start now.
            if let Ok(shards) = self.run.shared.engine.list_shards(&self.run.stream) {
                let ready = ready_shards(&self.run, &shards);
                spawn(&self.run, &self.home, &ready).await;
            }
            return Some(Exit::Ended);
        }
        None
    }
}

impl Source {
    /// One read's records through the decoder and the pumps on this core:
    /// what to send home, and the children when the shard ended.
    /// `quiet`: the records' per-row output and errors were written before
    /// (a resumed run's replay): only windows and ordered rows are made.
    fn process(
        &self,
        plan: &AppPlan,
        read: &GetRecordsOutput,
        processed: Option<&[Outcome]>,
        shard: &mut Shard,
        quiet: bool,
    ) -> Processed {
        let input = &plan.streams[self.feed];
        let origin = u64::from(self.shard);
        let mut last_arrival = None;
        // Each row's record, and its number among the record's rows.
        let mut row_ids: Vec<RowId> = Vec::with_capacity(read.record_count as usize);
        for (i, r) in read.records().enumerate() {
            let arrival = r.arrival_ms();
            last_arrival = Some(arrival);
            // Each row's part: its place in the record (a KPL user
            // record's index in the high half).
            let mut name = |decoder: &Decoder, rows: usize, user: u64| {
                let slots = decoder.slots();
                row_ids.extend(slots[slots.len() - rows..].iter().map(|&s| RowId {
                    offset: r.offset,
                    part: user << 32 | u64::from(s),
                }));
            };
            // A preprocessor's answer replaces the record (the function
            // opens KPL aggregates, as on AWS).
            let outcome = processed.map(|p| p.get(i).unwrap_or(&Outcome::Dropped));
            match (outcome, riffle_protocol::kpl::deaggregate(r.data())) {
                (Some(Outcome::Ok(data)), _) => {
                    let rows = shard.decoder.push_documents(data, arrival, arrival);
                    name(&shard.decoder, rows, 0);
                }
                (Some(Outcome::Dropped), _) => {}
                (Some(Outcome::Failed), _) => shard.decoder.processing_failed(r.data(), arrival),
                (None, Some(users)) => {
                    for (u, user) in users.into_iter().enumerate() {
                        let rows = shard.decoder.push(user.data, arrival, arrival);
                        name(&shard.decoder, rows, u as u64);
                    }
                }
                (None, None) => {
                    let rows = shard.decoder.push(r.data(), arrival, arrival);
                    name(&shard.decoder, rows, 0);
                }
            }
        }
        let row_ids: RowIds = row_ids.into();
        let ended = read.child_shards.is_some();
        // No later record of this shard arrives before this.
        if let Some(b) = read.arrival_watermark_ms().or(last_arrival) {
            shard.watermark = shard.watermark.max(b);
        }
        if ended {
            shard.watermark = i64::MAX;
        }
        let now = rt::now_ms();
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut messages: Vec<Msg> = Vec::new();
        let mut direct: Vec<Direct> = Vec::new();
        if shard.decoder.row_count() > 0 || read.record_count > 0 {
            let (batch, decode_errors) = shard.decoder.finish();
            errors.extend(decode_errors.iter().map(|e| ErrorRow::of_decode(e, now)));
            let mut pump_errors: Vec<PumpError> = Vec::new();
            if batch.num_rows() > 0 && shard.ship_input {
                messages.push(Msg::Rows {
                    stream: self.feed,
                    batch: batch.clone(),
                    ids: row_ids.clone(),
                    origin: self.shard,
                    by: None,
                    quiet,
                });
            }
            if batch.num_rows() > 0 {
                for &p in &shard.pumps {
                    let pump = &plan.pumps[p];
                    let joined;
                    let (batch, ids) = if pump.join.is_some() {
                        let (rows, left) = self.run.joined_from(p, &batch);
                        joined = rows;
                        let ids = match left {
                            Some(left) => ids::joined(&row_ids, &left),
                            None => row_ids.clone(),
                        };
                        (&joined, ids)
                    } else {
                        (&batch, row_ids.clone())
                    };
                    match &pump.kind {
                        PumpKind::Map { .. } => {
                            let (rows, from) = map_rows_from(
                                pump,
                                input,
                                &plan.streams[pump.target],
                                batch,
                                &mut pump_errors,
                            );
                            let ids = ids::taken(&ids, from.as_deref());
                            if self.run.direct.contains(&pump.target) {
                                if !quiet {
                                    direct.push((pump.target, p, rows, ids));
                                }
                            } else if rows.num_rows() > 0 {
                                messages.push(Msg::Rows {
                                    stream: pump.target,
                                    batch: rows,
                                    ids,
                                    origin: self.shard,
                                    by: Some(p),
                                    quiet,
                                });
                            }
                        }
                        PumpKind::Tumbling(_) => {
                            let kept = filter_rows(pump, input, batch, &mut pump_errors);
                            let mut failed = Vec::new();
                            if let Some(w) = shard.windows.get_mut(&p) {
                                w.push(&kept, origin, &mut failed);
                            }
                            pump_errors.extend(failed.into_iter().map(|e| PumpError {
                                pump: pump.name.clone(),
                                name: e.kind.error_name(),
                                message: e.message,
                                rowtime_ms: row_time(&kept, input.rowtime(), e.row),
                                row: String::new(),
                            }));
                        }
                        PumpKind::Stagger(_)
                        | PumpKind::Sliding(_)
                        | PumpKind::Sort(_)
                        | PumpKind::StreamJoin(_) => {}
                    }
                }
            }
            errors.extend(pump_errors.iter().map(|e| ErrorRow::of_pump(e, now)));
        }
        for (&p, w) in shard.windows.iter_mut() {
            for (start, partial) in w.take_closed(shard.watermark) {
                messages.push(Msg::Partial {
                    pump: p,
                    start,
                    partial,
                });
            }
        }
        if !errors.is_empty() && !quiet {
            messages.push(Msg::Errors(errors));
        }
        // The marks are set once the rows are written (`follow`).
        if !ended {
            messages.push(Msg::Watermark {
                shard: self.shard,
                ms: shard.watermark,
                mark: Mark::default(),
            });
            return (messages, direct, None);
        }
        let children: Vec<u32> = read
            .child_shards
            .iter()
            .flatten()
            .filter_map(|c| routing::parse_shard_id(&c.shard_id))
            .collect();
        self.run.ended.lock().unwrap().insert(self.shard);
        {
            let mut feeds = self.run.feeds.lock().unwrap();
            let mut new = self.run.children_started.lock().unwrap();
            for c in &children {
                feeds.entry(*c).or_insert(self.feed);
                new.insert(*c);
            }
        }
        messages.push(Msg::Ended {
            shard: self.shard,
            children: children.clone(),
            mark: None,
        });
        (messages, direct, Some(children))
    }
}

/// Rows to write from the shard's core: (stream, pump, rows, their ids).
type Direct = (usize, usize, arrow_array::RecordBatch, RowIds);

/// A read's work not finished yet.
struct Pending {
    direct: Vec<Direct>,
    messages: Vec<Msg>,
    children: Option<Vec<u32>>,
    /// Where the read ended.
    next: u64,
}

/// What one read made: messages for home, rows to write from here (by
/// stream), and the children when the shard ended.
type Processed = (Vec<Msg>, Vec<Direct>, Option<Vec<u32>>);

/// How a source task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// The run stopped.
    Stopped,
    /// The shard was read to its end.
    Ended,
    /// The shard cannot be read (its stream is gone, or an internal error).
    Gone,
}

/// A source task's state between reads.
struct Shard {
    decoder: Decoder,
    /// The pumps reading this shard's stream (plan indexes).
    pumps: Vec<usize>,
    /// The tumbling ones' windows.
    windows: HashMap<usize, TumblingState>,
    /// Whether home needs the stream's rows themselves.
    ship_input: bool,
    /// No later record of this shard has an earlier arrival.
    watermark: i64,
}

/// The ROWTIME of row `row` of `batch` (0 when out of range).
fn row_time(batch: &arrow_array::RecordBatch, rowtime: usize, row: usize) -> i64 {
    use arrow_array::Array;
    let c = crate::expr::eval::widen(batch.column(rowtime), crate::expr::Ty::Time);
    let t = crate::expr::eval::times(&c);
    if row < t.len() && t.is_valid(row) {
        t.value(row)
    } else {
        0
    }
}
