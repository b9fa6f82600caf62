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
mod tests {
    use super::*;
    use arrow_array::StringArray;

    /// A left row: (ROWTIME, key, value).
    type L = (i64, Option<i64>, i64);
    /// A right row: (ROWTIME, key, text).
    type R = (i64, Option<i64>, &'static str);
    /// An output row: (ROWTIME, left value, right text).
    type Out = (i64, i64, Option<String>);

    fn right_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "ROWTIME",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("K", DataType::Int64, true),
            Field::new("W", DataType::Utf8, false),
        ]))
    }

    fn spec(left_ms: i64, right_ms: i64, left_outer: bool) -> Arc<StreamJoinSpec> {
        Arc::new(StreamJoinSpec {
            left_window_ms: left_ms,
            right_window_ms: right_ms,
            left_outer,
            left_rowtime: 1,
            right_rowtime: 0,
            right_columns: vec![2],
            right_schema: right_schema(),
        })
    }

    fn key(k: Option<i64>) -> Option<Vec<u8>> {
        k.map(|k| k.to_le_bytes().to_vec())
    }

    /// Left batch: K, ROWTIME, V.
    fn left(rows: &[L]) -> (RecordBatch, Vec<Option<Vec<u8>>>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Int64, true),
            Field::new(
                "ROWTIME",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("V", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        (batch, rows.iter().map(|r| key(r.1)).collect())
    }

    /// Right batch: ROWTIME, K, W.
    fn right(rows: &[R]) -> (RecordBatch, Vec<Option<Vec<u8>>>) {
        let batch = RecordBatch::try_new(
            right_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        (batch, rows.iter().map(|r| key(r.1)).collect())
    }

    /// The output's rows, checking its schema and ROWTIME order.
    fn rows_of(out: Option<RecordBatch>) -> Vec<Out> {
        let Some(b) = out else {
            return Vec::new();
        };
        let schema = b.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["K", "ROWTIME", "V", "W"]);
        assert!(b.schema().field(3).is_nullable());
        let times = b
            .column(1)
            .as_primitive::<arrow_array::types::TimestampMillisecondType>();
        let values = b.column(2).as_primitive::<Int64Type>();
        let texts = b.column(3).as_string::<i32>();
        let rows: Vec<Out> = (0..b.num_rows())
            .map(|i| {
                let text = texts.is_valid(i).then(|| texts.value(i).to_owned());
                (times.value(i), values.value(i), text)
            })
            .collect();
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{rows:?}");
        rows
    }

    /// Runs `calls` (left rows, right rows, watermark) in order.
    fn run(spec: Arc<StreamJoinSpec>, calls: &[(&[L], &[R], i64)]) -> (Vec<Out>, StreamJoinState) {
        let mut state = StreamJoinState::new(spec);
        let mut all = Vec::new();
        for (l, r, watermark) in calls {
            let (lb, lk) = left(l);
            let (rb, rk) = right(r);
            let l = (!l.is_empty()).then_some((&lb, lk.as_slice()));
            let r = (!r.is_empty()).then_some((&rb, rk.as_slice()));
            let rows = rows_of(state.advance(l, r, *watermark));
            if let (Some(last), Some(first)) = (all.last(), rows.first()) {
                let (last, first): (&Out, &Out) = (last, first);
                assert!(last.0 <= first.0, "order across calls");
            }
            all.extend(rows);
        }
        (all, state)
    }

    fn out(time: i64, v: i64, w: Option<&str>) -> Out {
        (time, v, w.map(str::to_owned))
    }

    /// The semantics, pair by pair: what `run` must give (sorted) after a
    /// final `watermark`.
    fn expected(spec: &StreamJoinSpec, l: &[L], r: &[R], watermark: i64) -> Vec<Out> {
        let mut want = Vec::new();
        for &(tl, kl, v) in l {
            let mut matched = false;
            for &(tr, kr, w) in r {
                let hit = kl.is_some()
                    && kl == kr
                    && ((tr <= tl && tl - tr <= spec.right_window_ms)
                        || (tl <= tr && tr - tl <= spec.left_window_ms));
                if hit {
                    matched = true;
                    want.push(out(tl.max(tr), v, Some(w)));
                }
            }
            let end = tl + spec.left_window_ms;
            if spec.left_outer && !matched && end < watermark {
                want.push(out(end, v, None));
            }
        }
        want.sort();
        want
    }

    fn sorted(mut rows: Vec<Out>) -> Vec<Out> {
        rows.sort();
        rows
    }

    #[test]
    fn a_right_window_matches_earlier_right_rows_inside_it_once() {
        let l: &[L] = &[(100, Some(1), 1), (200, Some(1), 2), (250, Some(2), 3)];
        let r: &[R] = &[(50, Some(1), "a"), (120, Some(1), "b"), (150, Some(2), "c")];
        let (rows, _) = run(spec(0, 100, false), &[(l, r, 1000)]);
        // 100 sees a (50) only (b is later, the left window is 0); 200 sees
        // b (120) but not a (150 ms back); 250 sees c (100 ms back).
        assert_eq!(
            rows,
            vec![
                out(100, 1, Some("a")),
                out(200, 2, Some("b")),
                out(250, 3, Some("c")),
            ]
        );
    }

    #[test]
    fn windows_on_both_sides_match_either_way_round_at_the_later_rowtime() {
        let l: &[L] = &[(100, Some(1), 1), (300, Some(1), 2)];
        let r: &[R] = &[
            (80, Some(1), "early"),
            (130, Some(1), "late"),
            (400, Some(1), "x"),
        ];
        let s = spec(50, 30, false);
        let (rows, _) = run(s.clone(), &[(l, r, 1000)]);
        // 100 ⋈ early: the right row is 20 ms back (≤ 30); 100 ⋈ late: the
        // left row is 30 ms back (≤ 50); 300 and 400 are 100 ms apart.
        assert_eq!(
            rows,
            vec![out(100, 1, Some("early")), out(130, 1, Some("late"))]
        );
        assert_eq!(sorted(rows), expected(&s, l, r, 1000));
        // Just outside either window.
        let l: &[L] = &[(100, Some(1), 1)];
        let r: &[R] = &[(69, Some(1), "a"), (151, Some(1), "b")];
        assert!(run(s, &[(l, r, 1000)]).0.is_empty());
    }

    #[test]
    fn equal_rowtimes_match_once_with_current_row_windows() {
        let l: &[L] = &[(10, Some(1), 1), (10, Some(1), 2), (11, Some(1), 3)];
        let r: &[R] = &[(10, Some(1), "a"), (11, Some(2), "b"), (12, Some(1), "c")];
        let (rows, state) = run(spec(0, 0, false), &[(l, r, 100)]);
        assert_eq!(
            sorted(rows),
            vec![out(10, 1, Some("a")), out(10, 2, Some("a"))]
        );
        assert_eq!(state.rows(), 0);
        // The right row at 10 coming in a call before the left ones changes
        // nothing.
        let calls: &[(&[L], &[R], i64)] = &[(&[], &r[..1], 10), (l, &r[1..], 100)];
        let (rows, _) = run(spec(0, 0, false), calls);
        assert_eq!(
            sorted(rows),
            vec![out(10, 1, Some("a")), out(10, 2, Some("a"))]
        );
    }

    #[test]
    fn rows_split_across_calls_join_as_in_one_call() {
        let l: &[L] = &[
            (0, Some(1), 1),
            (5, Some(2), 2),
            (10, Some(1), 3),
            (10, None, 4),
            (25, Some(2), 5),
            (40, Some(1), 6),
            (41, Some(3), 7),
        ];
        let r: &[R] = &[
            (2, Some(1), "a"),
            (10, Some(1), "b"),
            (12, Some(2), "c"),
            (30, None, "d"),
            (33, Some(1), "e"),
            (45, Some(3), "f"),
        ];
        for left_outer in [false, true] {
            let s = spec(8, 10, left_outer);
            let (whole, _) = run(s.clone(), &[(l, r, 100)]);
            assert_eq!(sorted(whole.clone()), expected(&s, l, r, 100));
            let calls: &[(&[L], &[R], i64)] = &[
                (&l[..2], &r[..1], 10),
                (&l[2..4], &r[1..3], 11),
                (&[], &[], 20),
                (&l[4..5], &r[3..4], 33),
                (&[], &r[4..5], 40),
                (&l[5..], &r[5..], 100),
            ];
            let (split, state) = run(s, calls);
            assert_eq!(sorted(split), sorted(whole));
            assert_eq!(state.rows(), 0);
        }
    }

    #[test]
    fn left_outer_gives_an_unmatched_row_once_at_its_window_end_after_the_watermark() {
        let s = spec(20, 0, true);
        let mut state = StreamJoinState::new(s);
        let (lb, lk) = left(&[(10, Some(1), 1), (12, Some(2), 2), (15, None, 3)]);
        // No right batch yet: nothing can come out before 30.
        assert!(state.advance(Some((&lb, &lk)), None, 16).is_none());
        let (rb, rk) = right(&[(25, Some(2), "b"), (29, None, "n")]);
        assert_eq!(
            rows_of(state.advance(None, Some((&rb, &rk)), 30)),
            vec![out(25, 2, Some("b"))]
        );
        // Row 1 ends at 30: out once the watermark passed 30.
        assert_eq!(
            rows_of(state.advance(None, None, 31)),
            vec![out(30, 1, None)]
        );
        assert!(state.advance(None, None, 31).is_none());
        // Row 2 matched: never unmatched; row 3 (NULL key) ends at 35.
        assert_eq!(
            rows_of(state.advance(None, None, 1000)),
            vec![out(35, 3, None)]
        );
        assert!(state.advance(None, None, 2000).is_none());
        assert_eq!(state.rows(), 0);
    }

    #[test]
    fn an_unmatched_left_row_before_any_right_batch_has_the_right_schema() {
        let mut state = StreamJoinState::new(spec(0, 0, true));
        let (lb, lk) = left(&[(10, Some(1), 7)]);
        let b = state.advance(Some((&lb, &lk)), None, 11).unwrap();
        assert_eq!(b.schema().field(3).data_type(), &DataType::Utf8);
        assert_eq!(rows_of(Some(b)), vec![out(10, 7, None)]);
    }

    #[test]
    fn null_keys_match_nothing() {
        let l: &[L] = &[(10, None, 1), (10, Some(1), 2)];
        let r: &[R] = &[(10, None, "n"), (10, Some(1), "a")];
        let (rows, _) = run(spec(5, 5, false), &[(l, r, 100)]);
        assert_eq!(rows, vec![out(10, 2, Some("a"))]);
        let (rows, _) = run(spec(5, 5, true), &[(l, r, 100)]);
        assert_eq!(sorted(rows), vec![out(10, 2, Some("a")), out(15, 1, None)]);
    }

    #[test]
    fn buffers_empty_once_the_watermark_is_past_every_window() {
        let mut state = StreamJoinState::new(spec(60_000, 60_000, true));
        let (lb, lk) = left(&[(1_000, Some(1), 1), (2_000, Some(2), 2)]);
        let (rb, rk) = right(&[(1_500, Some(1), "a"), (1_600, Some(3), "c")]);
        let rows = rows_of(state.advance(Some((&lb, &lk)), Some((&rb, &rk)), 3_000));
        assert_eq!(rows, vec![out(1_500, 1, Some("a"))]);
        assert_eq!(state.rows(), 4);
        // Past 61 600 the right rows' windows and the first left row's
        // (matched) ended, not the second left row's (62 000).
        assert!(state.advance(None, None, 61_601).is_none());
        assert_eq!(state.rows(), 1);
        let rows = rows_of(state.advance(None, None, 1_000_000));
        assert_eq!(rows, vec![out(62_000, 2, None)]);
        assert_eq!(state.rows(), 0);
        assert!(state.left.stored.is_empty() && state.right.stored.is_empty());
    }

    #[test]
    fn the_oldest_batch_is_copied_down_to_its_held_rows() {
        let mut state = StreamJoinState::new(spec(10, 10, false));
        let rows: Vec<L> = (0..100).map(|i| (i, Some(i % 3), i)).collect();
        let (lb, lk) = left(&rows);
        state.advance(Some((&lb, &lk)), None, 100);
        // Held: ROWTIME 90..99 of the 100 rows; the batch kept is theirs.
        assert_eq!(state.rows(), 10);
        assert_eq!(state.left.stored[0].batch.num_rows(), 10);
        let (rb, rk) = right(&[(105, Some(0), "z")]);
        let rows = rows_of(state.advance(None, Some((&rb, &rk)), 106));
        // 96 and 99 are within 10 ms of 105 with key 0.
        assert_eq!(rows, vec![out(105, 96, Some("z")), out(105, 99, Some("z"))]);
    }

    #[test]
    fn random_streams_join_as_the_semantics_say_however_split() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const TEXTS: [&str; 4] = ["a", "b", "c", "d"];
        for round in 0..200 {
            let (lw, rw) = (next(4) as i64 * 5, next(4) as i64 * 5);
            let s = spec(lw, rw, round % 2 == 0);
            let key = |k: u64| (k < 3).then_some(k as i64);
            let mut t = 0;
            let l: Vec<L> = (0..next(30))
                .map(|i| {
                    t += next(4) as i64;
                    (t, key(next(4)), i as i64)
                })
                .collect();
            t = 0;
            let r: Vec<R> = (0..next(30))
                .map(|_| {
                    t += next(4) as i64;
                    (t, key(next(4)), TEXTS[next(4) as usize])
                })
                .collect();
            // Watermarks cut both sides at the same times.
            let mut calls: Vec<(&[L], &[R], i64)> = Vec::new();
            let (mut li, mut ri, mut watermark) = (0, 0, 0);
            while li < l.len() || ri < r.len() {
                watermark += next(10) as i64;
                let le = li + l[li..].partition_point(|x| x.0 < watermark);
                let re = ri + r[ri..].partition_point(|x| x.0 < watermark);
                calls.push((&l[li..le], &r[ri..re], watermark));
                (li, ri) = (le, re);
            }
            let end = watermark + next(40) as i64;
            calls.push((&[], &[], end));
            let (rows, _) = run(s.clone(), &calls);
            assert_eq!(sorted(rows), expected(&s, &l, &r, end), "round {round}");
        }
    }
}
