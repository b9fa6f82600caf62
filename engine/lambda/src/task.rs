//! Shard tasks: one per shard of an enabled mapping's stream, on the core
//! that owns the shard (as Firehose's deliveries), reading in order from the
//! shard's checkpoint through the engine (`Engine::follow_at`, woken by each
//! commit) and invoking the function (docs/lambda-design.md §4).
//!
//! A task works in rounds. It gathers up to BatchSize × ParallelizationFactor
//! records (with a batching window of 0, whatever one read gives as soon as
//! there is any; otherwise until the count or the window's end), drops those
//! the filters refuse, splits the rest into lanes by partition key (so each
//! key's records stay in order, one invocation at a time), cuts each lane
//! into batches of at most BatchSize records and 6 MB of event, and runs the
//! lanes concurrently, each batch until done ([`crate::batch`]: retries,
//! bisection, partial failures, record age, OnFailure). Then the round's end
//! is the shard's checkpoint (durable, in the metadata log); a restart
//! resumes there (at least once: a round cut short is invoked again).
//!
//! Reshards are followed parents first: a closed shard, once done, is
//! recorded as ended and its children's tasks start once all their parents
//! have ended. A task stops when its mapping is disabled, deleted or
//! re-created (it checks before each read and each invocation).
//!
//! `calls.rs` holds the calls out: invocations and OnFailure records.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use riffle_engine::http::client;
use riffle_engine::rt;
use riffle_protocol::{ErrorCode, routing};
use riffle_store::iterator::{IteratorToken, IteratorType};

use crate::answer::Outcome;
use crate::batch::{Policy, Retrier, Step};
use crate::config::StartingPosition;
use crate::event;
use crate::failure::LastAnswer;
use crate::function::{self, Function};
use crate::metrics::MappingMetrics;
use crate::service::Shared;
use crate::state::{LambdaEvent, Mapping, Progress, Transition, WindowState};

/// Records per read.
const READ_RECORDS_MAX: u32 = 10_000;
/// The longest a read waits for records before the task looks at its
/// mapping again.
const IDLE_WAIT_MS: u64 = 1000;
/// AWS's invocation payload limit.
pub const EVENT_BYTES_MAX: usize = 6 * 1024 * 1024;
/// A round stops gathering past this many bytes of records per lane.
const LANE_BYTES_MAX: usize = 12 << 20;
/// After a failure the task cannot act on (a function that does not
/// resolve, a read or checkpoint error), it waits this long.
const PAUSE: Duration = Duration::from_secs(1);
const PROBLEM: &str = "PROBLEM: Function call failed";
/// A shard's checkpoint is written at most this often while records flow
/// (each write is an fdatasync of the metadata log), at once when the shard
/// ends or its task stops, and within this long when it goes idle.
const CHECKPOINT_EVERY_MS: i64 = 250;
/// A window's state past this ends the window early. AWS's limit is 1 MB;
/// Riffle's is lower because the state is kept in the shard's checkpoint, a
/// metadata-log record of at most 1 MiB, as an escaped JSON string (which can
/// double its size).
const WINDOW_STATE_BYTES_MAX: usize = 400 * 1024;

mod calls;

use calls::state_of;

/// A task to run, and the core to run it on.
pub(crate) type Spawn = (usize, Box<dyn FnOnce() + Send + 'static>);

/// Starts the shard tasks of incarnation `id` of mapping `uuid` that are
/// not running (see [`tasks`]), from a task on a core.
pub(crate) async fn start(shared: &Arc<Shared>, uuid: &str, id: u64) {
    for (core, task) in tasks(shared, uuid, id) {
        if shared.engine.run_on_core_async(core, task).await.is_err() {
            return;
        }
    }
}

/// Whether the mapping runs (enabled, not being deleted).
fn runs(m: &Mapping) -> bool {
    m.enabled && !matches!(m.transition, Some((Transition::Deleting, _)))
}

/// The tasks to start for incarnation `id` of mapping `uuid`: one per shard
/// of its stream that has not ended and whose parents have, each on the
/// shard's owning core; none while the mapping is disabled.
pub(crate) fn tasks(shared: &Arc<Shared>, uuid: &str, id: u64) -> Vec<Spawn> {
    let mut out: Vec<Spawn> = Vec::new();
    let state = shared.meta.state();
    let Ok(m) = state.mapping(uuid, id) else {
        return out;
    };
    if shared.stopping.load(std::sync::atomic::Ordering::Relaxed)
        || !runs(m)
        || shared.engine.stream_id(&m.stream).ok() != Some(m.stream_id)
    {
        return out;
    }
    let Ok(shards) = shared.engine.list_shards(&m.stream) else {
        return out;
    };
    let ended = |index: u32| m.shards.get(&index).is_some_and(|p| p.ended);
    // A parent no longer listed (trimmed away) has nothing left to give.
    let done = |parent: Option<&String>| {
        parent
            .and_then(|p| routing::parse_shard_id(p))
            .is_none_or(|i| ended(i) || !shards.iter().any(|s| s.shard_index == i))
    };
    let cores = shared.engine.core_count();
    for shard in &shards {
        if ended(shard.shard_index)
            || !done(shard.parent_shard_id.as_ref())
            || !done(shard.adjacent_parent_shard_id.as_ref())
        {
            continue;
        }
        let key = (uuid.to_string(), id, shard.shard_index);
        if !shared.running.lock().unwrap().insert(key) {
            continue;
        }
        let core = riffle_engine::control::owner((m.stream_id, shard.shard_index), cores);
        let task = Task {
            shared: shared.clone(),
            uuid: uuid.to_string(),
            id,
            stream: m.stream.clone(),
            stream_id: m.stream_id,
            stream_arn: shared.stream_arn(&m.stream),
            shard: shard.shard_index,
            metrics: shared.metrics.of(uuid, id),
            connections: Default::default(),
            pending: Default::default(),
            written_ms: Default::default(),
        };
        out.push((core, Box::new(move || rt::spawn_background(task.run()))));
    }
    out
}

/// A record read, owned for the round. Its text and data are slices of
/// buffers shared by the records of its read (no allocation per record).
struct Rec {
    /// The read's partition keys and sequence numbers, one after another.
    text: Arc<str>,
    key: std::ops::Range<usize>,
    seq: std::ops::Range<usize>,
    data: Bytes,
    arrival_ms: i64,
}

impl Rec {
    fn partition_key(&self) -> &str {
        &self.text[self.key.clone()]
    }

    /// As the Kinesis API shows it (functions echo it back).
    fn sequence_number(&self) -> &str {
        &self.text[self.seq.clone()]
    }

    /// An upper bound of its share of an event's bytes.
    fn event_bytes(&self, arn_len: usize) -> usize {
        600 + 2 * arn_len + 6 * self.key.len() + self.data.len().div_ceil(3) * 4
    }
}

/// What a round gathered.
struct Round {
    records: Vec<Rec>,
    /// Where the next round starts.
    end: u64,
    /// The shard is closed and `end` is its end.
    ended: bool,
    /// The last read reached the shard's tip (nothing more was visible).
    at_tip: bool,
}

struct Task {
    shared: Arc<Shared>,
    uuid: String,
    id: u64,
    stream: String,
    stream_id: u64,
    stream_arn: String,
    shard: u32,
    metrics: Arc<MappingMetrics>,
    /// Connections to the function kept open between invocations.
    connections: std::cell::RefCell<Vec<client::Connection>>,
    /// Progress not yet written, and when the last was.
    pending: std::cell::RefCell<Option<Progress>>,
    written_ms: std::cell::Cell<i64>,
}

impl Task {
    /// The mapping, while this incarnation runs.
    fn mapping(&self) -> Option<Mapping> {
        if self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let state = self.shared.meta.state();
        state
            .mapping(&self.uuid, self.id)
            .ok()
            .filter(|m| runs(m))
            .cloned()
    }

    async fn run(self) {
        let ended = self.deliver().await;
        // A stop (Disable, Update, Delete) keeps what was done.
        self.flush().await;
        self.shared
            .running
            .lock()
            .unwrap()
            .remove(&(self.uuid.clone(), self.id, self.shard));
        if ended {
            start(&self.shared, &self.uuid, self.id).await;
        } else if self.mapping().is_some() {
            // Enabled again while this task was stopping, or its shard was
            // not readable (still opening): start afresh, after a pause.
            rt::sleep(PAUSE).await;
            start(&self.shared, &self.uuid, self.id).await;
        }
    }

    /// Delivers until the shard has ended (true) or the mapping stops.
    async fn deliver(&self) -> bool {
        let Some((mut offset, mut window)) = self.first_offset().await else {
            return false;
        };
        let mut window_from = rt::now_ms();
        loop {
            let Some(m) = self.mapping() else {
                return false;
            };
            let flush_by = self.flush_by();
            if flush_by.is_some_and(|by| by <= rt::now_ms()) && !self.flush().await {
                return false;
            }
            let flush_by = self.flush_by();
            let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
            // A tumbling window whose time is over gets its final invoke
            // once reading has caught up (none of its records left unread),
            // even when no record follows it.
            let due = window
                .as_ref()
                .map(|w| w.start_ms.saturating_add(window_ms));
            let wake = match (due, flush_by) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(round) = self.gather(&m, offset, &mut window_from, wake).await else {
                return false;
            };
            // An Update while the read waited applies to these records.
            let Some(m) = self.mapping() else {
                return false;
            };
            let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
            let due = window
                .as_ref()
                .map(|w| w.start_ms.saturating_add(window_ms));
            let window_over = round.at_tip && due.is_some_and(|due| due <= rt::now_ms());
            if round.records.is_empty() && !round.ended && round.end == offset && !window_over {
                continue;
            }
            let Some(function) = self.function(&m).await else {
                return false;
            };
            if !self.process(&m, &function, &round, &mut window).await {
                return false;
            }
            // The shard's end, or the window's time once reading caught up,
            // closes the window (a record of a later window closed it already).
            let over = round.at_tip
                && window
                    .as_ref()
                    .is_some_and(|w| w.start_ms.saturating_add(window_ms) <= rt::now_ms());
            if (round.ended || over)
                && let Some(w) = window.take()
                && !self.final_invoke(&m, &function, w, false).await
            {
                return false;
            }
            *self.pending.borrow_mut() = Some(Progress {
                next_offset: round.end,
                ended: round.ended,
                window: window.clone(),
            });
            let due = self.written_ms.get().saturating_add(CHECKPOINT_EVERY_MS);
            if (round.ended || due <= rt::now_ms()) && !self.flush().await {
                return false;
            }
            if round.ended {
                return true;
            }
            offset = round.end;
            window_from = rt::now_ms();
        }
    }

    /// When the pending checkpoint must be written (None: nothing pending).
    fn flush_by(&self) -> Option<i64> {
        self.pending
            .borrow()
            .as_ref()
            .map(|_| self.written_ms.get().saturating_add(CHECKPOINT_EVERY_MS))
    }

    /// Writes the pending checkpoint, retrying while the mapping runs; false
    /// when it could not be written (the mapping is gone or stopped).
    async fn flush(&self) -> bool {
        let Some(progress) = self.pending.borrow_mut().take() else {
            return true;
        };
        loop {
            let applied = self
                .shared
                .meta
                .apply(LambdaEvent::Checkpoint {
                    uuid: self.uuid.clone(),
                    id: self.id,
                    at: vec![(self.shard, progress.clone())],
                })
                .await;
            match applied {
                Ok(()) => {
                    self.written_ms.set(rt::now_ms());
                    return true;
                }
                Err(_) if self.mapping().is_none() => return false,
                Err(e) => {
                    tracing::warn!(
                        "event-source mapping {} shard {}: checkpoint: {}",
                        self.uuid,
                        self.shard,
                        e.message
                    );
                    rt::sleep(PAUSE).await;
                }
            }
        }
    }

    /// Where reading starts, and the open tumbling window: the checkpoint,
    /// else the mapping's starting position (shards that appeared after it
    /// was made: their first record).
    async fn first_offset(&self) -> Option<(u64, Option<WindowState>)> {
        loop {
            let m = self.mapping()?;
            if let Some(p) = m.shards.get(&self.shard) {
                return Some((p.next_offset, p.window.clone()));
            }
            let at = match m.config.starting_position {
                StartingPosition::TrimHorizon => return Some((0, None)),
                StartingPosition::Latest => {
                    return Some((m.start_of(self.shard).unwrap_or(0), None));
                }
                StartingPosition::AtTimestamp(t) => t,
            };
            match self
                .shared
                .engine
                .shard_cursor(&self.stream, self.shard, IteratorType::AtTimestamp(at))
                .await
            {
                Ok(c) if c.stream_id == self.stream_id => return Some((c.offset, None)),
                Ok(_) => return None,
                Err(e) if e.code == ErrorCode::ResourceNotFound => return None,
                Err(e) => {
                    tracing::warn!("event-source mapping {}: {}", self.uuid, e.message);
                    rt::sleep(PAUSE).await;
                }
            }
        }
    }

    fn follower(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        ("lambda", &self.uuid, self.id).hash(&mut h);
        h.finish()
    }

    /// Reads a round's records from `offset` (None: the mapping stopped or
    /// its stream is gone).
    /// `due`: when the caller has something to do without records (an open
    /// tumbling window's end, a checkpoint to write): once past it, an empty
    /// read ends the round.
    async fn gather(
        &self,
        m: &Mapping,
        offset: u64,
        window_from: &mut i64,
        due: Option<i64>,
    ) -> Option<Round> {
        let lanes = m.config.parallelization_factor.max(1) as usize;
        let count_max = m.config.batch_size.max(1) as usize * lanes;
        let window_ms = i64::from(m.config.batching_window_s) * 1000;
        let mut round = Round {
            records: Vec::new(),
            end: offset,
            ended: false,
            at_tip: false,
        };
        let mut bytes = 0usize;
        loop {
            let now = rt::now_ms();
            let wait = match (round.records.is_empty(), window_ms) {
                (true, _) => match due {
                    Some(due) => (due.saturating_sub(now).max(0) as u64).min(IDLE_WAIT_MS),
                    None => IDLE_WAIT_MS,
                },
                (false, 0) => return Some(round),
                (false, w) => {
                    let due = window_from.saturating_add(w);
                    if due <= now {
                        return Some(round);
                    }
                    ((due - now) as u64).min(IDLE_WAIT_MS)
                }
            };
            let limit = (count_max - round.records.len()).min(READ_RECORDS_MAX as usize) as u32;
            let cursor = IteratorToken {
                stream_id: self.stream_id,
                stream_name: self.stream.clone(),
                shard_index: self.shard,
                offset: round.end,
                issued_ms: now,
            };
            let read = match self
                .shared
                .engine
                .follow_at(&cursor, Some(limit), wait, self.follower())
                .await
            {
                Ok(r) => r,
                Err(e) if e.code == ErrorCode::ResourceNotFound => return None,
                Err(e) => {
                    tracing::warn!(
                        "event-source mapping {} shard {}: read: {}",
                        self.uuid,
                        self.shard,
                        e.message
                    );
                    rt::sleep(PAUSE).await;
                    self.mapping()?;
                    continue;
                }
            };
            self.metrics.polled.add(u64::from(read.record_count));
            round.at_tip = !read.behind();
            if read.record_count == 0 && read.child_shards.is_some() {
                round.end = read.next_offset();
                round.ended = true;
                return Some(round);
            }
            // A window starts with its first record when it ran out empty
            // (the read may have waited for it).
            let read_at = rt::now_ms();
            if round.records.is_empty()
                && read.record_count > 0
                && window_from.saturating_add(window_ms) <= read_at
            {
                *window_from = read_at;
            }
            // The read's data in one buffer and its keys and sequence numbers
            // in another, each record slices of them (not allocations per record).
            let mut data =
                bytes::BytesMut::with_capacity(read.records().map(|r| r.data().len()).sum());
            let mut text = String::new();
            let mut spans = Vec::with_capacity(read.record_count as usize);
            for r in read.records() {
                let at = data.len();
                data.extend_from_slice(r.data());
                let key_at = text.len();
                text.push_str(r.partition_key());
                let seq_at = text.len();
                riffle_engine::kinesis::push_sequence_number(
                    &mut text,
                    r.shard_index,
                    read.shard_opened,
                    r.offset,
                    r.arrival_ms(),
                );
                spans.push((at..data.len(), key_at..seq_at, seq_at..text.len()));
            }
            let (data, text): (Bytes, Arc<str>) = (data.freeze(), text.into());
            for (r, (data_span, key, seq)) in read.records().zip(spans) {
                bytes += data_span.len() + key.len();
                round.records.push(Rec {
                    text: text.clone(),
                    key,
                    seq,
                    data: data.slice(data_span),
                    arrival_ms: r.arrival_ms(),
                });
            }
            round.end = read.next_offset();
            if round.records.len() >= count_max || bytes >= LANE_BYTES_MAX * lanes {
                return Some(round);
            }
            if round.records.is_empty() {
                // Idle: look at the mapping again (disabled? deleted?
                // updated: the next round goes by its new configuration).
                let now_m = self.mapping()?;
                if round.end != offset
                    || due.is_some_and(|due| due <= rt::now_ms())
                    || now_m.last_modified_ms != m.last_modified_ms
                {
                    return Some(round);
                }
            }
        }
    }

    /// Invokes the function with a round's records; false when the mapping
    /// stopped meanwhile (the round is not done).
    async fn process(
        &self,
        m: &Mapping,
        function: &Function,
        round: &Round,
        window: &mut Option<WindowState>,
    ) -> bool {
        let filters = m.config.filters().unwrap_or_default();
        let passed: Vec<&Rec> = round
            .records
            .iter()
            .filter(|r| filters.is_empty() || passes(&filters, r))
            .collect();
        self.metrics
            .filtered_out
            .add((round.records.len() - passed.len()) as u64);
        if m.config.tumbling_window_s > 0 {
            return self.windows(m, function, &passed, window).await;
        }
        let n = m.config.parallelization_factor.max(1) as usize;
        let mut lanes: Vec<Vec<&Rec>> = (0..n).map(|_| Vec::new()).collect();
        for r in passed {
            let lane = match n {
                1 => 0,
                _ => (routing::hash_key_of(r.partition_key()) % n as u128) as usize,
            };
            lanes[lane].push(r);
        }
        let runs: Vec<_> = lanes
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| self.lane(m, function, l))
            .collect();
        riffle_engine::join_all(runs)
            .await
            .into_iter()
            .all(|done| done)
    }

    /// The function, resolved again each round (the config file's
    /// `[functions]` may have changed); None when the mapping stopped.
    async fn function(&self, m: &Mapping) -> Option<Function> {
        loop {
            match function::resolve(
                &m.config.function_name,
                &self.shared.config.functions,
                &self.shared.config.region,
                &self.shared.config.account,
            ) {
                Ok(f) => return Some(f),
                Err(e) => {
                    tracing::warn!("event-source mapping {}: {e}", self.uuid);
                    self.shared.set_result(self.id, PROBLEM);
                    rt::sleep(PAUSE).await;
                    self.mapping()?;
                }
            }
        }
    }

    /// `records` cut into batches of at most BatchSize records and 6 MB of
    /// event (a record larger than that on its own goes alone).
    fn batches(&self, m: &Mapping, records: &[&Rec]) -> Vec<std::ops::Range<usize>> {
        let arn_len = self.stream_arn.len();
        let batch_max = m.config.batch_size.max(1) as usize;
        let mut out = Vec::new();
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            // The event's own members, and a window's state.
            let mut bytes = match m.config.tumbling_window_s {
                0 => 2048,
                _ => 2048 + WINDOW_STATE_BYTES_MAX,
            };
            while end < records.len() && end - start < batch_max {
                let b = records[end].event_bytes(arn_len);
                if end > start && bytes + b > EVENT_BYTES_MAX {
                    break;
                }
                bytes += b;
                end += 1;
            }
            out.push(start..end);
            start = end;
        }
        out
    }

    /// One lane's records, batch after batch.
    async fn lane(&self, m: &Mapping, function: &Function, records: &[&Rec]) -> bool {
        for batch in self.batches(m, records) {
            if !self.batch(m, function, &records[batch], &mut None).await {
                return false;
            }
        }
        true
    }

    /// A tumbling-window mapping's records (one lane): each window's
    /// records in batches carrying its state, the window closed by a final
    /// invoke once a record of a later window comes.
    async fn windows(
        &self,
        m: &Mapping,
        function: &Function,
        records: &[&Rec],
        window: &mut Option<WindowState>,
    ) -> bool {
        let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
        let mut i = 0;
        while i < records.len() {
            let aligned = |r: &Rec| r.arrival_ms.div_euclid(window_ms) * window_ms;
            // A record arriving out of order joins the open window.
            let start = match window.as_ref() {
                Some(w) => aligned(records[i]).max(w.start_ms),
                None => aligned(records[i]),
            };
            if let Some(w) = window.take_if(|w| w.start_ms < start)
                && !self.final_invoke(m, function, w, false).await
            {
                return false;
            }
            window.get_or_insert_with(|| WindowState {
                start_ms: start,
                state: "{}".into(),
            });
            let mut end = i;
            while end < records.len() && aligned(records[end]) <= start {
                end += 1;
            }
            let segment = &records[i..end];
            for batch in self.batches(m, segment) {
                if !self.batch(m, function, &segment[batch], window).await {
                    return false;
                }
            }
            i = end;
        }
        true
    }

    /// The final invoke of a window (no records, its state), retried until it
    /// succeeds ("Lambda suspends further processing until a successful
    /// invocation"); false when the mapping stopped.
    async fn final_invoke(
        &self,
        m: &Mapping,
        function: &Function,
        w: WindowState,
        terminated_early: bool,
    ) -> bool {
        let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
        let mut wait = crate::batch::RETRY_FIRST;
        loop {
            let ctx = event::Window {
                start_ms: w.start_ms,
                end_ms: w.start_ms.saturating_add(window_ms),
                state: &w.state,
                shard_index: self.shard,
                is_final: true,
                terminated_early,
            };
            let (outcome, _, _) = self.invoke(function, &[], false, Some(&ctx)).await;
            self.count(&[], &outcome);
            if outcome == Outcome::Success {
                return true;
            }
            rt::sleep(wait).await;
            wait = (wait * 2).min(crate::batch::RETRY_MAX);
            if self.mapping().is_none() {
                return false;
            }
        }
    }

    /// One batch until every record of it is done. `window`: the tumbling
    /// window it belongs to (None: no windows), whose state each successful
    /// answer replaces.
    async fn batch(
        &self,
        m: &Mapping,
        function: &Function,
        batch: &[&Rec],
        window: &mut Option<WindowState>,
    ) -> bool {
        let window_ms = i64::from(m.config.tumbling_window_s) * 1000;
        let policy = Policy {
            bisect: m.config.bisect_on_error,
            maximum_retry_attempts: m.config.maximum_retry_attempts,
            maximum_record_age_ms: (m.config.maximum_record_age_s >= 0)
                .then(|| m.config.maximum_record_age_s.saturating_mul(1000)),
        };
        let mut retrier = Retrier::new(batch.len(), policy);
        let mut last: Option<LastAnswer> = None;
        let mut request_id = riffle_engine::http::random_uuid();
        loop {
            match retrier.next(rt::now_ms(), |i| batch[i].arrival_ms) {
                Step::Done => return true,
                Step::Wait(d) => {
                    // Earlier rounds' progress is not held back by a batch
                    // retried for long.
                    if self.flush_by().is_some_and(|by| by <= rt::now_ms()) {
                        self.flush().await;
                    }
                    rt::sleep(d).await;
                    if self.mapping().is_none() {
                        return false;
                    }
                }
                Step::Invoke(range) => {
                    if self.mapping().is_none() {
                        return false;
                    }
                    let records = &batch[range];
                    request_id = riffle_engine::http::random_uuid();
                    let ctx = window.as_ref().map(|w| event::Window {
                        start_ms: w.start_ms,
                        end_ms: w.start_ms.saturating_add(window_ms),
                        state: &w.state,
                        shard_index: self.shard,
                        is_final: false,
                        terminated_early: false,
                    });
                    let (mut outcome, answer, body) = self
                        .invoke(
                            function,
                            records,
                            m.config.report_item_failures,
                            ctx.as_ref(),
                        )
                        .await;
                    // A window's state comes with every answer that is not
                    // an error (a partial failure's records before the failed
                    // one were processed with it).
                    if window.is_some() && !matches!(outcome, Outcome::FunctionError { .. }) {
                        match state_of(&body) {
                            Some(state) => {
                                let w = window.as_mut().expect("a window");
                                if state.len() > WINDOW_STATE_BYTES_MAX {
                                    // Terminated early: its state goes in a
                                    // final invoke; the window goes on afresh.
                                    let full = WindowState {
                                        start_ms: w.start_ms,
                                        state: state.into(),
                                    };
                                    if !self.final_invoke(m, function, full, true).await {
                                        return false;
                                    }
                                    w.state = "{}".into();
                                } else {
                                    w.state = state.into();
                                }
                            }
                            None => {
                                outcome = Outcome::FunctionError {
                                    function_error: None,
                                    reason: "the answer has no state object (tumbling window)"
                                        .into(),
                                }
                            }
                        }
                    }
                    self.count(records, &outcome);
                    retrier.answered(&outcome);
                    last = Some(answer);
                }
                Step::Discard {
                    records,
                    condition,
                    invoke_count,
                } => {
                    let records = &batch[records];
                    self.metrics.dropped.add(records.len() as u64);
                    // Records that expired before any invocation of them
                    // get a request id of their own.
                    let request_id = match condition {
                        crate::batch::Condition::RecordAgeExceeded if last.is_none() => {
                            riffle_engine::http::random_uuid()
                        }
                        _ => request_id.clone(),
                    };
                    if !self
                        .discard(
                            m,
                            function,
                            &request_id,
                            condition,
                            invoke_count,
                            last.as_ref(),
                            records,
                        )
                        .await
                    {
                        return false;
                    }
                }
            }
        }
    }
}

/// Whether a record passes the mapping's filters (matched against its
/// `kinesis` object, `data` parsed as JSON when it is JSON).
fn passes(filters: &crate::filter::Filters, r: &Rec) -> bool {
    use serde_json::{Map, Value, json};
    let mut kinesis = Map::new();
    kinesis.insert("kinesisSchemaVersion".into(), json!("1.0"));
    kinesis.insert("partitionKey".into(), json!(r.partition_key()));
    kinesis.insert("sequenceNumber".into(), json!(r.sequence_number()));
    kinesis.insert(
        "approximateArrivalTimestamp".into(),
        json!(r.arrival_ms as f64 / 1000.0),
    );
    if let Ok(data) = serde_json::from_slice::<Value>(&r.data) {
        kinesis.insert("data".into(), data);
    }
    filters.passes(&kinesis)
}
