//! The windowed stream-to-stream join (SQLstream's semantics, as Kinesis
//! Data Analytics SQL documents them): `FROM L AS o [LEFT [OUTER]] JOIN R
//! OVER (RANGE INTERVAL … PRECEDING) AS t ON o.k = t.k`, each side with a
//! window of `W` ms (0 without one: CURRENT ROW). Pure: no runtime, no I/O.
//! Lives on the home core; never shared.
//!
//! Semantics. A left row at `Tl` and a right row at `Tr` with equal keys
//! match iff, at the later one's time, the earlier one is still inside its
//! own side's window: `Tr <= Tl && Tl - Tr <= Wr` or `Tl <= Tr && Tr - Tl
//! <= Wl`. Each matching pair comes out once, at ROWTIME `max(Tl, Tr)`. In
//! a LEFT join a left row that never matches comes out once, with NULL
//! right columns, at ROWTIME `Tl + Wl` (when no right row can match it any
//! more), once the watermark has passed that time. A NULL key matches
//! nothing. Outputs come in non-decreasing ROWTIME order.
//!
//! Algorithm. The caller gives the rows a watermark released, each side's
//! in ROWTIME order; they are processed merged by ROWTIME (left first on a
//! tie; the result does not depend on it). Each side keeps the rows still
//! inside its window, oldest first, indexed by key. Before a row at `T`,
//! rows whose window ended before `T` leave (`Tl + Wl < T`, `Tr + Wr < T`;
//! an unmatched left row of a LEFT join is then output); the row then
//! matches every held row of the other side with its key (all of them are
//! inside their window), and is held. At the end of a call the rows whose
//! window ended before the watermark leave too: every later row has a
//! ROWTIME at or after it.
//!
//! Memory. A held row refers to its batch, kept while one of its rows is
//! held (the right side keeps only the columns the output carries). Rows
//! leave oldest first, so only each side's oldest batch can hold rows
//! that left; it is copied down to its held rows once those that left are
//! as many as the rest. So memory is at most about twice the windows' rows.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
    new_null_array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::expr::Ty;
use crate::expr::eval;

/// What a join pump's plan says (built by the planner).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamJoinSpec {
    /// RANGE of the left side's window in ms (0: CURRENT ROW).
    pub left_window_ms: i64,
    /// RANGE of the right side's window in ms (0: CURRENT ROW).
    pub right_window_ms: i64,
    /// LEFT [OUTER] JOIN: left rows without a match are output too.
    pub left_outer: bool,
    /// Index of ROWTIME in the left side's batches.
    pub left_rowtime: usize,
    /// Index of ROWTIME in the right side's batches.
    pub right_rowtime: usize,
    /// The right side's columns the output carries, in order (indexes into
    /// its batches; ROWTIME is not among them).
    pub right_columns: Vec<usize>,
    /// The right stream's full schema (its batches have it): the output's
    /// right columns take their types from it, so the output schema is
    /// known before any right batch came.
    pub right_schema: SchemaRef,
}

/// Where a held row's values are: its side's batch (by number, counted
/// from 0 in the order stored) and its row in that batch as it came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RowRef {
    batch: u64,
    row: usize,
}

/// A row still inside its side's window.
#[derive(Debug)]
struct Held {
    /// Its ROWTIME.
    time: i64,
    /// Its encoded key (None: NULL, matches nothing).
    key: Option<Vec<u8>>,
    at: RowRef,
    /// A left row matched a right row (it is never output unmatched).
    matched: bool,
}

/// A batch some held rows refer to.
#[derive(Debug)]
struct Stored {
    batch: RecordBatch,
    /// Rows cut off its front (those that left): a row `r` as it came is
    /// at `r - cut` in `batch`.
    cut: usize,
}

/// One side's window: its rows oldest first, indexed by key, and the
/// batches holding their values.
#[derive(Debug, Default)]
struct Side {
    held: VecDeque<Held>,
    /// The sequence number of `held`'s front (a side numbers its held rows
    /// from 0 in the order held).
    first_seq: u64,
    /// Each key's held rows, by sequence number, oldest first.
    by_key: HashMap<Vec<u8>, VecDeque<u64>>,
    stored: VecDeque<Stored>,
    /// The number of `stored`'s front.
    first_batch: u64,
}

impl Side {
    /// Keeps `batch` for the rows about to be held; gives its number.
    fn store(&mut self, batch: RecordBatch) -> u64 {
        let number = self.first_batch + self.stored.len() as u64;
        self.stored.push_back(Stored { batch, cut: 0 });
        number
    }

    /// Holds a row (newer than every held one).
    fn hold(&mut self, time: i64, key: Option<&Vec<u8>>, at: RowRef) {
        let seq = self.first_seq + self.held.len() as u64;
        if let Some(key) = key {
            match self.by_key.get_mut(key) {
                Some(seqs) => seqs.push_back(seq),
                None => {
                    self.by_key.insert(key.clone(), VecDeque::from([seq]));
                }
            }
        }
        self.held.push_back(Held {
            time,
            key: key.cloned(),
            at,
            matched: false,
        });
    }

    /// Takes out the oldest held row if its window (`window` ms) ended
    /// before `time`.
    fn leave_before(&mut self, time: i64, window: i64) -> Option<Held> {
        if self.held.front()?.time.saturating_add(window) >= time {
            return None;
        }
        let gone = self.held.pop_front()?;
        if let Some(key) = &gone.key
            && let Some(seqs) = self.by_key.get_mut(key)
        {
            debug_assert_eq!(seqs.front(), Some(&self.first_seq));
            seqs.pop_front();
            if seqs.is_empty() {
                self.by_key.remove(key);
            }
        }
        self.first_seq += 1;
        Some(gone)
    }

    /// The positions in `held` of the held rows with `key`, oldest first.
    fn with_key(&self, key: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let first = self.first_seq;
        (self.by_key.get(key).into_iter())
            .flat_map(|seqs| seqs.iter())
            .map(move |&seq| (seq - first) as usize)
    }

    /// Where a row is among `stored`: (batch position, row in it).
    fn locate(&self, at: RowRef) -> (usize, usize) {
        let b = (at.batch - self.first_batch) as usize;
        (b, at.row - self.stored[b].cut)
    }

    /// Column `c` of every stored batch, in order.
    fn sources(&self, c: usize) -> Vec<&dyn Array> {
        (self.stored.iter())
            .map(|s| s.batch.column(c).as_ref())
            .collect()
    }

    /// Drops the batches no held row refers to, and copies the oldest one
    /// down to its held rows once more of its rows left than remain.
    fn release(&mut self) {
        let Some(oldest) = self.held.front().map(|h| h.at) else {
            self.first_batch += self.stored.len() as u64;
            self.stored.clear();
            return;
        };
        while self.first_batch < oldest.batch {
            self.stored.pop_front();
            self.first_batch += 1;
        }
        let Some(front) = self.stored.front_mut() else {
            return;
        };
        // Rows are held in the order they came: those of the oldest batch
        // still held are at or after `oldest`.
        let gone = oldest.row - front.cut;
        let rows = front.batch.num_rows();
        if gone > 0 && 2 * gone >= rows {
            let end = u32::try_from(rows).expect("a batch has fewer than 2^32 rows");
            let keep = UInt32Array::from_iter_values(gone as u32..end);
            front.batch = arrow_select::take::take_record_batch(&front.batch, &keep)
                .expect("indexes inside the batch");
            front.cut += gone;
        }
    }
}

/// One output row: its ROWTIME, its left row and its right row (None: an
/// unmatched left row, NULL right columns).
#[derive(Clone, Copy, Debug)]
struct Joined {
    time: i64,
    left: RowRef,
    right: Option<RowRef>,
}

/// A stream-to-stream join's windows. Lives on the home core; never shared.
#[derive(Debug)]
pub struct StreamJoinState {
    spec: Arc<StreamJoinSpec>,
    left: Side,
    right: Side,
    /// The output schema, known from the first left batch.
    schema: Option<SchemaRef>,
}

impl StreamJoinState {
    pub fn new(spec: Arc<StreamJoinSpec>) -> StreamJoinState {
        StreamJoinState {
            spec,
            left: Side::default(),
            right: Side::default(),
            schema: None,
        }
    }

    /// Rows held in both buffers (for tests and memory bounds).
    pub fn rows(&self) -> usize {
        self.left.held.len() + self.right.held.len()
    }

    /// Runs the rows a watermark released: each side's rows (ROWTIME <
    /// `watermark`, in ROWTIME order) with one encoded key per row (None:
    /// matches nothing; a missing one is None), either side possibly
    /// absent. Gives the joined rows in ROWTIME order (None if none): the
    /// left side's columns, its ROWTIME column holding the output ROWTIME
    /// (same data type as the left batch's ROWTIME column), then the right
    /// side's `right_columns` (nullable; NULL for an unmatched left row).
    /// The output schema is the left batch's fields followed by the right
    /// schema's chosen fields made nullable, names kept as they are.
    pub fn advance(
        &mut self,
        left: Option<(&RecordBatch, &[Option<Vec<u8>>])>,
        right: Option<(&RecordBatch, &[Option<Vec<u8>>])>,
        watermark: i64,
    ) -> Option<RecordBatch> {
        let left = left.filter(|(b, _)| b.num_rows() > 0);
        let right = right.filter(|(b, _)| b.num_rows() > 0);
        if let Some((batch, _)) = left
            && self.schema.is_none()
        {
            self.schema = Some(self.output_schema(&batch.schema()));
        }
        let left = left.map(|(batch, keys)| {
            let times = rowtimes(batch, self.spec.left_rowtime);
            (times, keys, self.left.store(batch.clone()))
        });
        let right = right.map(|(batch, keys)| {
            let times = rowtimes(batch, self.spec.right_rowtime);
            let carried = (batch.project(&self.spec.right_columns))
                .expect("right_columns index the right side's batches");
            (times, keys, self.right.store(carried))
        });
        let (left_times, left_keys, left_batch) = left.unwrap_or_default();
        let (right_times, right_keys, right_batch) = right.unwrap_or_default();

        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            let take_left = match (left_times.get(i), right_times.get(j)) {
                (Some(l), Some(r)) => l <= r,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_left {
                let time = left_times[i];
                let at = RowRef {
                    batch: left_batch,
                    row: i,
                };
                self.leave_before(time, &mut out);
                self.left_row(time, key_of(left_keys, i), at, &mut out);
                i += 1;
            } else {
                let time = right_times[j];
                let at = RowRef {
                    batch: right_batch,
                    row: j,
                };
                self.leave_before(time, &mut out);
                self.right_row(time, key_of(right_keys, j), at, &mut out);
                j += 1;
            }
        }
        self.leave_before(watermark, &mut out);

        let batch = self.output(&out);
        self.left.release();
        self.right.release();
        batch
    }

    /// The output schema for left batches of schema `left`.
    fn output_schema(&self, left: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = (left.fields().iter()).map(|f| f.as_ref().clone()).collect();
        if let Some(rowtime) = fields.get_mut(self.spec.left_rowtime)
            && !matches!(
                rowtime.data_type(),
                DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64
            )
        {
            // Not a ROWTIME type (never with a planned batch): the output
            // ROWTIME is a plain timestamp.
            let ty = DataType::Timestamp(TimeUnit::Millisecond, None);
            *rowtime = rowtime.clone().with_data_type(ty);
        }
        let right = &self.spec.right_schema;
        fields.extend(
            (self.spec.right_columns.iter()).map(|&c| right.field(c).clone().with_nullable(true)),
        );
        Arc::new(Schema::new(fields))
    }

    /// Takes out the rows whose window ended before `time`, the unmatched
    /// left ones of a LEFT join into `out` at the end of their window.
    fn leave_before(&mut self, time: i64, out: &mut Vec<Joined>) {
        let window = self.spec.left_window_ms.max(0);
        while let Some(gone) = self.left.leave_before(time, window) {
            if self.spec.left_outer && !gone.matched {
                out.push(Joined {
                    time: gone.time.saturating_add(window),
                    left: gone.at,
                    right: None,
                });
            }
        }
        let window = self.spec.right_window_ms.max(0);
        while self.right.leave_before(time, window).is_some() {}
    }

    /// A left row at `time`: joined with the held right rows of its key,
    /// then held (a NULL key is held only to be output unmatched).
    fn left_row(&mut self, time: i64, key: Option<&Vec<u8>>, at: RowRef, out: &mut Vec<Joined>) {
        let mut matched = false;
        if let Some(key) = key {
            for r in self.right.with_key(key) {
                matched = true;
                out.push(Joined {
                    time,
                    left: at,
                    right: Some(self.right.held[r].at),
                });
            }
        }
        if key.is_some() || self.spec.left_outer {
            self.left.hold(time, key, at);
            if let Some(held) = self.left.held.back_mut() {
                held.matched = matched;
            }
        }
    }

    /// A right row at `time`: joined with the held left rows of its key,
    /// then held (a NULL key matches nothing: not held).
    fn right_row(&mut self, time: i64, key: Option<&Vec<u8>>, at: RowRef, out: &mut Vec<Joined>) {
        let Some(key) = key else {
            return;
        };
        let found: Vec<usize> = self.left.with_key(key).collect();
        for l in found {
            let held = &mut self.left.held[l];
            held.matched = true;
            out.push(Joined {
                time,
                left: held.at,
                right: Some(at),
            });
        }
        self.right.hold(time, Some(key), at);
    }

    /// The batch of the joined rows `out` (in order), None when none.
    fn output(&self, out: &[Joined]) -> Option<RecordBatch> {
        if out.is_empty() {
            return None;
        }
        let schema = self.schema.clone().expect("a left batch came");
        let lefts: Vec<(usize, usize)> = out.iter().map(|o| self.left.locate(o.left)).collect();
        let nulls = self.right.stored.len();
        let rights: Vec<(usize, usize)> = (out.iter())
            .map(|o| o.right.map_or((nulls, 0), |r| self.right.locate(r)))
            .collect();
        let left_width = schema.fields().len() - self.spec.right_columns.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let column: ArrayRef = if c == self.spec.left_rowtime {
                let times = out.iter().map(|o| o.time);
                match field.data_type() {
                    DataType::Int64 => Arc::new(Int64Array::from_iter_values(times)),
                    DataType::Timestamp(_, zone) => Arc::new(
                        TimestampMillisecondArray::from_iter_values(times)
                            .with_timezone_opt(zone.clone()),
                    ),
                    _ => unreachable!("output_schema makes ROWTIME a timestamp"),
                }
            } else if c < left_width {
                arrow_select::interleave::interleave(&self.left.sources(c), &lefts)
                    .expect("a stream's batches share its schema")
            } else {
                let c = c - left_width;
                let null = new_null_array(field.data_type(), 1);
                let mut sources = self.right.sources(c);
                sources.push(null.as_ref());
                arrow_select::interleave::interleave(&sources, &rights)
                    .expect("the right batches have the right schema")
            };
            columns.push(column);
        }
        Some(RecordBatch::try_new(schema, columns).expect("the output schema"))
    }
}

/// Row `i`'s key (a missing one is NULL).
fn key_of(keys: &[Option<Vec<u8>>], i: usize) -> Option<&Vec<u8>> {
    keys.get(i).and_then(Option::as_ref)
}

/// The ROWTIMEs of `batch` (column `index`) in ms; NULL (never in a
/// stream's rows) or a column of another type reads as `i64::MIN`.
fn rowtimes(batch: &RecordBatch, index: usize) -> Vec<i64> {
    let unknown = || vec![i64::MIN; batch.num_rows()];
    let Some(column) = batch.columns().get(index) else {
        return unknown();
    };
    let read = |valid: bool, v: i64| if valid { v } else { i64::MIN };
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let widened = eval::widen(column, Ty::Time);
            let t = eval::times(&widened);
            (0..t.len())
                .map(|i| read(t.is_valid(i), t.value(i)))
                .collect()
        }
        DataType::Int64 => {
            let t = column.as_primitive::<Int64Type>();
            (0..t.len())
                .map(|i| read(t.is_valid(i), t.value(i)))
                .collect()
        }
        _ => unknown(),
    }
}

#[cfg(test)]
#[path = "stream_join_tests.rs"]
mod tests;
