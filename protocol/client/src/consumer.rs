//! `Consumer`: reads one shard in order, from any start position, on top of
//! the blocking client.
//!
//! It catches up with GetShardIterator + GetRecords until a read reports the
//! tip (`millis_behind_latest == 0`), then (with `follow`) subscribes from the
//! next offset and takes pushes; without `follow` it keeps polling GetRecords.
//! It remembers where the next read starts, so after a broken connection, an
//! expired iterator or the end of a subscription it starts again from there:
//! GetRecords to catch up, then a new subscription. Records at or below the last
//! sequence number handed out are skipped, so none is yielded twice.
//! Transient failures (connection, timeout, throttling, internal errors) are
//! retried with backoff; `retries_max` of them in a row end in an error.
//!
//! Aggregated records (the KPL's format) are de-aggregated by default: the
//! consumer yields their user records, each with the stored record's sequence
//! number and its own sub-sequence number, so [`Consumer::checkpoint`] can stand
//! inside an aggregated record and [`Consumer::resume`] continues right after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use riffle_protocol::ErrorCode;
use riffle_protocol::native::StartPosition;

use crate::client::{Client, Subscription};
use crate::config::Backoff;
use crate::error::{ClientError, is_retryable_code};
use crate::types::{Checkpoint, Record, continuation};

/// Consumer settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Records per GetRecords (None: the server's default, 10,000).
    pub get_records_limit: Option<u32>,
    /// At the tip, subscribe and take pushes (true) or keep polling (false).
    pub follow: bool,
    /// Polling mode: the pause between reads that found nothing. AWS allows five
    /// reads per second per shard; Riffle has no such limit.
    pub poll_interval: Duration,
    /// Transient failures in a row before `next_record` returns the error.
    pub retries_max: u32,
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    /// Yield the user records of aggregated records (KPL format) instead of
    /// the records as stored.
    pub deaggregate: bool,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            get_records_limit: None,
            follow: true,
            poll_interval: Duration::from_millis(200),
            retries_max: 10,
            retry_backoff_initial: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
            deaggregate: true,
        }
    }
}

enum Mode {
    /// Reading with GetRecords (no iterator: get one for `position`).
    CatchUp { iterator: Option<String> },
    /// Taking pushes.
    Follow(Subscription),
    /// The shard is closed and fully read.
    Ended,
}

/// Reads one shard in order. See the module docs.
pub struct Consumer {
    client: Client,
    stream: String,
    shard_index: u32,
    config: ConsumerConfig,
    position: StartPosition,
    last_sequence_number: Option<u128>,
    /// Records (or user records) at or before it are not yielded: set by
    /// `resume`, so a checkpoint inside an aggregated record is honoured.
    skip_through: Option<Checkpoint>,
    /// The last record handed out.
    handed_out: Option<Checkpoint>,
    buffered: VecDeque<Record>,
    mode: Mode,
    failures: u32,
    backoff: Backoff,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream)
            .field("shard_index", &self.shard_index)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub fn new(
        client: Client,
        stream: &str,
        shard_index: u32,
        position: StartPosition,
        config: ConsumerConfig,
    ) -> Consumer {
        let backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
        Consumer {
            client,
            stream: stream.to_owned(),
            shard_index,
            config,
            position,
            last_sequence_number: None,
            skip_through: None,
            handed_out: None,
            buffered: VecDeque::new(),
            mode: Mode::CatchUp { iterator: None },
            failures: 0,
            backoff,
        }
    }

    /// A consumer that continues right after `checkpoint` (one taken from
    /// [`Consumer::checkpoint`] or [`Record::checkpoint`] earlier): after the
    /// record, or after the user record inside an aggregated record.
    pub fn resume(
        client: Client,
        stream: &str,
        shard_index: u32,
        checkpoint: Checkpoint,
        config: ConsumerConfig,
    ) -> Consumer {
        let mut consumer = Consumer::new(
            client,
            stream,
            shard_index,
            checkpoint.resume_position(),
            config,
        );
        consumer.skip_through = Some(checkpoint);
        consumer
    }

    /// The last record (or user record) handed out: a reader that has
    /// processed it checkpoints here. None until one was.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.handed_out
    }

    /// Where reading continues: the start position until something was read,
    /// then the offset after the last record read.
    pub fn position(&self) -> StartPosition {
        self.position
    }

    pub fn last_sequence_number(&self) -> Option<u128> {
        self.last_sequence_number
    }

    /// Whether it is following the tip through a subscription.
    pub fn is_following(&self) -> bool {
        matches!(self.mode, Mode::Follow(_))
    }

    /// Whether the shard is closed and every record was handed out.
    pub fn is_ended(&self) -> bool {
        matches!(self.mode, Mode::Ended) && self.buffered.is_empty()
    }

    /// The next record, waiting at most about `wait` for one (`None`: nothing
    /// new in that time, or the shard ended).
    pub fn next_record(&mut self, wait: Duration) -> Result<Option<Record>, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(record) = self.buffered.pop_front() {
                self.handed_out = Some(record.checkpoint());
                return Ok(Some(record));
            }
            if matches!(self.mode, Mode::Ended) {
                return Ok(None);
            }
            match self.step(deadline) {
                Ok(()) => {
                    self.failures = 0;
                    self.backoff = Backoff::new(
                        self.config.retry_backoff_initial,
                        self.config.retry_backoff_max,
                    );
                }
                Err(e) => {
                    // Start again from `position` whatever failed.
                    self.mode = Mode::CatchUp { iterator: None };
                    if e.code() == Some(ErrorCode::ExpiredIterator) {
                        continue;
                    }
                    if !is_transient(&e) || self.failures >= self.config.retries_max {
                        return Err(e);
                    }
                    self.failures += 1;
                    let delay = self.backoff.next_delay();
                    tracing::debug!(%e, ?delay, failures = self.failures, "riffle consumer retries");
                    std::thread::sleep(
                        delay.min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
            }
            if self.buffered.is_empty() && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// The next records: waits at most about `wait` for the first one, then
    /// takes what is already read, up to `max` in all (never an extra read).
    pub fn next_batch(&mut self, wait: Duration, max: usize) -> Result<Vec<Record>, ClientError> {
        let mut out = Vec::new();
        if let Some(first) = self.next_record(wait)? {
            out.push(first);
        }
        while out.len() < max {
            let Some(record) = self.buffered.pop_front() else {
                break;
            };
            self.handed_out = Some(record.checkpoint());
            out.push(record);
        }
        Ok(out)
    }

    /// One read (GetRecords or one push), waiting until `deadline` at most.
    fn step(&mut self, deadline: Instant) -> Result<(), ClientError> {
        match &mut self.mode {
            Mode::Ended => Ok(()),
            Mode::Follow(subscription) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                let Some(event) = subscription.recv_timeout(wait)? else {
                    return Ok(());
                };
                if event.shard_index != self.shard_index {
                    return Err(ClientError::protocol(format!(
                        "a push for shard {} reached the subscription of shard {}",
                        event.shard_index, self.shard_index
                    )));
                }
                if event.end {
                    // The server ended it (maybe the shard closed): read on with
                    // GetRecords, which knows whether more is to come.
                    self.mode = Mode::CatchUp { iterator: None };
                }
                self.accept(event.records, event.next_offset);
                Ok(())
            }
            Mode::CatchUp { iterator } => {
                let it = match iterator.take() {
                    Some(it) => it,
                    None => self.client.get_shard_iterator(
                        &self.stream,
                        self.shard_index,
                        self.position,
                    )?,
                };
                let out = self
                    .client
                    .get_records(&it, self.config.get_records_limit)?;
                let (empty, at_tip) = (out.records.is_empty(), out.millis_behind_latest == 0);
                self.accept(out.records, out.next_offset);
                let Some(next) = out.next_iterator else {
                    self.mode = Mode::Ended;
                    return Ok(());
                };
                if at_tip && self.config.follow {
                    let subscription =
                        self.client
                            .subscribe(&self.stream, self.shard_index, self.position)?;
                    self.mode = Mode::Follow(subscription);
                    return Ok(());
                }
                self.mode = Mode::CatchUp {
                    iterator: Some(next),
                };
                if empty && at_tip {
                    let pause = self
                        .config
                        .poll_interval
                        .min(deadline.saturating_duration_since(Instant::now()));
                    std::thread::sleep(pause);
                }
                Ok(())
            }
        }
    }

    /// Takes records in order, skipping any already handed out, and moves the
    /// position to `next_offset`.
    fn accept(&mut self, records: Vec<Record>, next_offset: u64) {
        for r in records {
            if self
                .last_sequence_number
                .is_some_and(|last| r.sequence_number <= last)
            {
                continue;
            }
            self.last_sequence_number = Some(r.sequence_number);
            let skip = self.skip_through;
            let keep = |r: &Record| !skip.is_some_and(|c| c.covers(r));
            // Only a record with the KPL's magic can be aggregated: others
            // go as they are, without a list each.
            if self.config.deaggregate && r.data.starts_with(&riffle_protocol::kpl::MAGIC) {
                self.buffered
                    .extend(r.user_records().into_iter().filter(keep));
            } else if keep(&r) {
                self.buffered.push_back(r);
            }
        }
        self.position = continuation(self.shard_index, next_offset);
    }
}

/// Failures that go away by themselves: try again from the last position.
fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Server(e) => is_retryable_code(e.code),
        ClientError::Io(_)
        | ClientError::Timeout(_)
        | ClientError::ConnectionLost { .. }
        | ClientError::Lagged { .. } => true,
        ClientError::Protocol(_)
        | ClientError::InvalidArgument(_)
        | ClientError::Expired { .. }
        | ClientError::Closed => false,
    }
}
