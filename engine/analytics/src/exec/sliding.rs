//! The sliding-window operator (docs/analytics-design.md §3.4): a pump's
//! aggregates `OVER (PARTITION BY … RANGE INTERVAL … PRECEDING | ROWS n
//! PRECEDING)`. Every input row gets, at once, the value of each aggregate
//! over its frame: the row itself and the rows of its partition before it
//! with ROWTIME ≥ its ROWTIME − the range (RANGE), or the `n` rows of its
//! partition before it (ROWS). Pure: no runtime, no I/O. Lives on the home
//! core; never shared.
//!
//! Rows come in ROWTIME order (not decreasing across pushes: the home core
//! merges the input's shards by watermark first), already filtered by WHERE;
//! "before" is push order. The windows of a plan share nothing; one pass
//! over a batch serves them all.
//!
//! State and cost. Per window and partition: a ring of the frame's rows
//! (ROWTIME, and the argument values the aggregates need to take a row back
//! out), with running aggregates: counts, integer sums in 128 bits, float
//! sums in a [`WideSum`] (exact, so a row leaves the sum exactly as it came
//! in), for the variances exact sums of values and squares ([`Moments`]),
//! and for MIN / MAX a monotonic deque of the frame's candidates. A
//! row enters once and leaves once, so each row costs O(1) amortised per
//! aggregate (a float sum's add, removal and rounding touch at most its 35
//! 64-bit limbs). Memory: a partition holds the rows of its frame; a RANGE
//! window forgets a partition whose newest row is older than the watermark
//! minus the range ([`SlidingState::forget_before`]); a ROWS window keeps
//! each partition's last `n` rows.
//!
//! Aggregate results are the tumbling operator's (`super::tumbling`) over
//! the frame's rows: COUNT(*) and COUNT(x) count (0 over no value), the
//! others are NULL over no non-NULL value; AVG of integers truncates; MIN /
//! MAX order NaN above every number; FIRST_VALUE is the frame's oldest row's
//! value, LAST_VALUE the row's own (NULL included). Float SUM / AVG are the
//! exactly rounded sum (then / count), as the tumbling operator's, except
//! that no intermediate overflow exists here: the sum is ±inf only when the
//! exact sum rounds past f64's range.
//!
//! VAR_POP / VAR_SAMP / STDDEV_POP / STDDEV_SAMP keep the frame's count,
//! Σx and Σx² exactly in a [`Moments`] (values leave it exactly): the same
//! bits as the tumbling operator over the frame's rows (the SAMP ones are
//! NULL over fewer than two values, NaN with a NaN or infinity). Their result costs
//! more than an add (it squares Σx's occupied limbs and divides a 70-limb
//! numerator), still independent of the frame's length.
//!
//! LAG and EXP_AVG, the analytic functions a plan carries as aggregates
//! ([`AggFunc::Lag`], [`AggFunc::ExpAvg`]), run beside them in the same
//! frames (`super::analytic`): LAG reads the frame's kept values (and its
//! default, [`crate::plan::Agg::default`], evaluated on the current row like
//! an argument), EXP_AVG keeps exact decayed sums; both O(1) per row.
//!
//! A row whose partition, argument or LAG default evaluation failed, whose
//! ROWTIME is NULL, or which would take an integer SUM of its frame past
//! BIGINT in any window gets NULL aggregates and one [`crate::expr::RowError`] (its
//! first); the caller drops it, and it is in no later row's frame.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};

use super::analytic::{Decayed, Lag};
use super::stagger::{evaluate_rows, rowtimes};
use super::tumbling::{Builder, Column, Value, ValueRef, as_float, compare, encode_key, row_error};
use crate::expr::eval::Errors;
use crate::expr::{RowError, Ty};
use crate::plan::{AggFunc, Frame, Sliding};

/// No partition (the ends of a window's list of partitions).
const NIL: usize = usize::MAX;

/// A sliding pump's frames. Lives on the home core; never shared.
#[derive(Debug)]
pub struct SlidingState {
    plan: Arc<Sliding>,
    /// One per window of the plan, in order.
    windows: Vec<WindowState>,
    /// The aggregates over no window of the plan (never): always NULL.
    orphans: Vec<usize>,
    /// The current row's partition key bytes (reused across rows).
    scratch: Vec<u8>,
    /// The current row's partition in each window (reused across rows).
    slots: Vec<usize>,
}

/// One window's partitions.
#[derive(Debug)]
struct WindowState {
    frame: Frame,
    /// Where this window's PARTITION BY values are among the evaluated keys.
    keys: Range<usize>,
    /// This window's aggregates: their index in the plan's, function, type.
    aggs: Vec<(usize, AggFunc, Ty)>,
    /// Each partition's key bytes → its slot in `partitions`.
    index: HashMap<Box<[u8]>, usize>,
    /// Live partitions, and free slots (listed in `free`).
    partitions: Vec<Partition>,
    free: Vec<usize>,
    /// RANGE frames: the live partitions in a list from the one touched
    /// longest ago (`oldest`) to the last one touched (`newest`). Rows come
    /// in ROWTIME order, so this is also the order of their newest rows.
    oldest: usize,
    newest: usize,
}

#[derive(Debug)]
struct Partition {
    key: Box<[u8]>,
    /// The frame's rows' ROWTIMEs, oldest first.
    rowtimes: VecDeque<i64>,
    /// What each frame row keeps for each aggregate (`Running::kept`), one
    /// row after another.
    values: VecDeque<Option<Value>>,
    /// The number of the frame's oldest row (a partition numbers its rows
    /// from 0 in push order).
    first_number: u64,
    /// One per aggregate of the window, in order.
    running: Vec<Running>,
    /// The ROWTIME of the last row that reached the partition.
    touched: i64,
    /// Neighbours in the window's list (`NIL`: none).
    older: usize,
    newer: usize,
}

/// One aggregate's running value over a frame.
#[derive(Debug)]
enum Running {
    /// `COUNT(*)`: the frame's length.
    Rows,
    /// `COUNT(x)`.
    Count(i64),
    /// `SUM` / `AVG` of integers, over `count` non-NULL values.
    Int { sum: i128, count: i64, avg: bool },
    /// `SUM` / `AVG` of floats.
    Float {
        sum: Box<WideSum>,
        count: i64,
        avg: bool,
    },
    /// `MIN` (`wanted` Less) or `MAX` (Greater): the frame rows that may
    /// still become the extreme, as (row number, value); the front is the
    /// extreme, each value is strictly further in `wanted` than the next.
    Extreme {
        kept: VecDeque<(u64, Value)>,
        wanted: Ordering,
    },
    /// `VAR_POP`, `VAR_SAMP`, `STDDEV_POP`, `STDDEV_SAMP` (`func`): the
    /// frame's values' exact sums.
    Spread {
        moments: Box<Moments>,
        func: AggFunc,
    },
    /// `FIRST_VALUE`: the oldest row's kept value.
    First,
    /// `LAST_VALUE`: the row's own value.
    Last,
    /// `LAG`: the frame's rows keep their values (`kept`).
    Lag(Lag),
    /// `EXP_AVG`: the frame's rows keep their values, to leave the sums.
    Decayed(Box<Decayed>),
    /// SUM or AVG of a non-number (the planner refuses those): NULL.
    Null,
}

impl Running {
    fn new(func: AggFunc, ty: Ty) -> Running {
        match (func, ty) {
            (AggFunc::CountRows, _) => Running::Rows,
            (AggFunc::Count, _) => Running::Count(0),
            (AggFunc::Sum | AggFunc::Avg, Ty::Int) => Running::Int {
                sum: 0,
                count: 0,
                avg: func == AggFunc::Avg,
            },
            (AggFunc::Sum | AggFunc::Avg, Ty::Float) => Running::Float {
                sum: Box::new(WideSum::new()),
                count: 0,
                avg: func == AggFunc::Avg,
            },
            (AggFunc::Sum | AggFunc::Avg, _) => Running::Null,
            (AggFunc::Min, _) => Running::Extreme {
                kept: VecDeque::new(),
                wanted: Ordering::Less,
            },
            (AggFunc::Max, _) => Running::Extreme {
                kept: VecDeque::new(),
                wanted: Ordering::Greater,
            },
            (AggFunc::FirstValue, _) => Running::First,
            (AggFunc::LastValue, _) => Running::Last,
            (AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp, _) => {
                Running::Spread {
                    moments: Box::new(Moments::new()),
                    func,
                }
            }
            (
                AggFunc::Lag {
                    offset,
                    ignore_nulls,
                },
                _,
            ) => Running::Lag(Lag::new(offset, ignore_nulls)),
            (AggFunc::ExpAvg { half_life_ms }, _) => {
                Running::Decayed(Box::new(Decayed::new(half_life_ms)))
            }
        }
    }

    /// What a frame row keeps of its value `v` for this aggregate: what
    /// taking it back out, or FIRST_VALUE, needs.
    fn kept(&self, v: Option<ValueRef<'_>>) -> Option<Value> {
        match self {
            Running::Count(_) => v.map(|_| Value::Bool(true)),
            Running::Int { .. }
            | Running::Float { .. }
            | Running::Spread { .. }
            | Running::First
            | Running::Lag(_)
            | Running::Decayed(_) => v.map(ValueRef::to_owned),
            _ => None,
        }
    }

    /// Would adding `v` take an integer SUM past BIGINT?
    fn overflows(&self, v: Option<ValueRef<'_>>) -> bool {
        match (self, v) {
            (
                Running::Int {
                    sum, avg: false, ..
                },
                Some(ValueRef::Int(x)),
            ) => i64::try_from(sum + i128::from(x)).is_err(),
            _ => false,
        }
    }

    /// Adds the value `v` of the row numbered `number`, at `rowtime`.
    fn add(&mut self, number: u64, rowtime: i64, v: Option<ValueRef<'_>>) {
        match self {
            Running::Count(n) => {
                if v.is_some() {
                    *n += 1;
                }
            }
            Running::Int { sum, count, .. } => {
                if let Some(ValueRef::Int(x)) = v {
                    *sum += i128::from(x);
                    *count += 1;
                }
            }
            Running::Float { sum, count, .. } => {
                if let Some(x) = v.and_then(as_float) {
                    sum.add(x);
                    *count += 1;
                }
            }
            Running::Extreme { kept, wanted } => {
                let Some(v) = v.map(ValueRef::nan_as_one) else {
                    return;
                };
                // A kept value no further than `v` can never be the
                // extreme again: `v` stays in the frame longer.
                while kept
                    .back()
                    .is_some_and(|(_, b)| compare(b.as_ref(), v) != Some(*wanted))
                {
                    kept.pop_back();
                }
                kept.push_back((number, v.to_owned()));
            }
            Running::Spread { moments, .. } => {
                if let Some(v) = v {
                    moments.add(v);
                }
            }
            Running::Lag(lag) => lag.add(number, v.is_some()),
            Running::Decayed(decayed) => {
                if let Some(x) = v.and_then(as_float) {
                    decayed.add(rowtime, x);
                }
            }
            Running::Rows | Running::First | Running::Last | Running::Null => {}
        }
    }

    /// Takes out the frame's oldest row, numbered `number`, at `rowtime`,
    /// which kept `v`.
    fn remove(&mut self, number: u64, rowtime: i64, v: Option<&Value>) {
        match self {
            Running::Count(n) => {
                if v.is_some() {
                    *n -= 1;
                }
            }
            Running::Int { sum, count, .. } => {
                if let Some(Value::Int(x)) = v {
                    *sum -= i128::from(*x);
                    *count -= 1;
                }
            }
            Running::Float { sum, count, .. } => {
                if let Some(x) = v.map(Value::as_ref).and_then(as_float) {
                    sum.remove(x);
                    *count -= 1;
                }
            }
            Running::Extreme { kept, .. } => {
                if kept.front().is_some_and(|(n, _)| *n <= number) {
                    kept.pop_front();
                }
            }
            Running::Spread { moments, .. } => {
                if let Some(v) = v {
                    moments.remove(v.as_ref());
                }
            }
            Running::Lag(lag) => lag.remove(number),
            Running::Decayed(decayed) => {
                if let Some(x) = v.map(Value::as_ref).and_then(as_float) {
                    decayed.remove(rowtime, x);
                }
            }
            Running::Rows | Running::First | Running::Last | Running::Null => {}
        }
    }

    /// The aggregate over `p`'s frame, this being its `j`th; `current` is
    /// the row's own value, `default` its LAG default's.
    fn result<'a>(
        &'a self,
        p: &'a Partition,
        j: usize,
        current: Option<ValueRef<'a>>,
        default: Option<ValueRef<'a>>,
    ) -> Option<ValueRef<'a>> {
        match self {
            Running::Rows => Some(ValueRef::Int(i64::try_from(p.rowtimes.len()).ok()?)),
            Running::Count(n) => Some(ValueRef::Int(*n)),
            Running::Int { count: 0, .. } | Running::Float { count: 0, .. } => None,
            Running::Int {
                sum, avg: false, ..
            } => i64::try_from(*sum).ok().map(ValueRef::Int),
            // An average of BIGINTs is a BIGINT; division truncates.
            Running::Int {
                sum,
                count,
                avg: true,
            } => i64::try_from(sum / i128::from(*count))
                .ok()
                .map(ValueRef::Int),
            Running::Float {
                sum, avg: false, ..
            } => Some(ValueRef::Float(sum.value())),
            Running::Float {
                sum,
                count,
                avg: true,
            } => Some(ValueRef::Float(sum.value() / *count as f64)),
            Running::Extreme { kept, .. } => kept.front().map(|(_, v)| v.as_ref()),
            Running::Spread { moments, func } => moments.result(*func).map(ValueRef::Float),
            Running::First => p.values.get(j).and_then(Option::as_ref).map(Value::as_ref),
            Running::Last => current,
            Running::Lag(lag) => {
                let len = p.rowtimes.len() as u64;
                match lag.place(p.first_number, len) {
                    Some(row) => {
                        let at = usize::try_from(row).ok()? * p.running.len() + j;
                        p.values.get(at).and_then(Option::as_ref).map(Value::as_ref)
                    }
                    None => default,
                }
            }
            Running::Decayed(decayed) => decayed.result().map(ValueRef::Float),
            Running::Null => None,
        }
    }
}

impl Partition {
    fn new(key: Box<[u8]>, aggs: &[(usize, AggFunc, Ty)]) -> Partition {
        Partition {
            key,
            rowtimes: VecDeque::new(),
            values: VecDeque::new(),
            first_number: 0,
            running: (aggs.iter())
                .map(|&(_, func, ty)| Running::new(func, ty))
                .collect(),
            touched: i64::MIN,
            older: NIL,
            newer: NIL,
        }
    }

    /// Takes the frame's oldest row out.
    fn pop_oldest(&mut self) {
        let Some(rowtime) = self.rowtimes.pop_front() else {
            return;
        };
        let number = self.first_number;
        self.first_number += 1;
        for running in &mut self.running {
            let v = self.values.pop_front().flatten();
            running.remove(number, rowtime, v.as_ref());
        }
    }
}

impl WindowState {
    /// The partition of the key `key`, made if new, touched at `rowtime`.
    fn partition(&mut self, key: &[u8], rowtime: i64) -> usize {
        let slot = match self.index.get(key) {
            Some(&slot) => slot,
            None => {
                let p = Partition::new(key.into(), &self.aggs);
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.partitions[slot] = p;
                        slot
                    }
                    None => {
                        self.partitions.push(p);
                        self.partitions.len() - 1
                    }
                };
                self.index.insert(key.into(), slot);
                slot
            }
        };
        if matches!(self.frame, Frame::Range { .. }) && self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
        self.partitions[slot].touched = rowtime;
        slot
    }

    /// Takes out of `slot`'s frame the rows no row at `rowtime` or later
    /// (with one more row) can see.
    fn evict(&mut self, slot: usize, rowtime: i64) {
        let p = &mut self.partitions[slot];
        match self.frame {
            Frame::Range { ms } => {
                let from = rowtime.saturating_sub(ms);
                while p.rowtimes.front().is_some_and(|&t| t < from) {
                    p.pop_oldest();
                }
            }
            Frame::Rows { preceding } => {
                let keep = usize::try_from(preceding).unwrap_or(usize::MAX);
                while p.rowtimes.len() > keep {
                    p.pop_oldest();
                }
            }
        }
    }

    fn overflows(&self, slot: usize, args: &[Column<'_>], row: usize) -> bool {
        let p = &self.partitions[slot];
        (self.aggs.iter())
            .zip(&p.running)
            .any(|(&(g, ..), running)| running.overflows(args[g].value(row)))
    }

    /// Adds the row to `slot`'s frame.
    fn add(&mut self, slot: usize, rowtime: i64, args: &[Column<'_>], row: usize) {
        let p = &mut self.partitions[slot];
        let number = p.first_number + p.rowtimes.len() as u64;
        p.rowtimes.push_back(rowtime);
        for (&(g, ..), running) in self.aggs.iter().zip(&mut p.running) {
            let v = args[g].value(row);
            p.values.push_back(running.kept(v));
            running.add(number, rowtime, v);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let (older, newer) = (self.partitions[slot].older, self.partitions[slot].newer);
        if older != NIL {
            self.partitions[older].newer = newer;
        } else if self.oldest == slot {
            self.oldest = newer;
        } else {
            // Not in the list.
            return;
        }
        if newer != NIL {
            self.partitions[newer].older = older;
        } else {
            self.newest = older;
        }
        self.partitions[slot].older = NIL;
        self.partitions[slot].newer = NIL;
    }

    fn link_newest(&mut self, slot: usize) {
        self.partitions[slot].older = self.newest;
        self.partitions[slot].newer = NIL;
        match self.newest {
            NIL => self.oldest = slot,
            newest => self.partitions[newest].newer = slot,
        }
        self.newest = slot;
    }

    /// Forgets the partitions last touched before `rowtime` (RANGE frames).
    fn forget_before(&mut self, rowtime: i64) {
        while self.oldest != NIL && self.partitions[self.oldest].touched < rowtime {
            let slot = self.oldest;
            self.unlink(slot);
            let p = std::mem::replace(&mut self.partitions[slot], Partition::new([].into(), &[]));
            self.index.remove(&p.key);
            self.free.push(slot);
        }
    }
}

impl SlidingState {
    pub fn new(plan: Arc<Sliding>) -> SlidingState {
        let mut at = 0;
        let windows: Vec<WindowState> = (plan.windows.iter().enumerate())
            .map(|(w, spec)| {
                let keys = at..at + spec.partition.len();
                at = keys.end;
                WindowState {
                    frame: spec.frame,
                    keys,
                    aggs: (plan.aggs.iter().enumerate())
                        .filter(|(_, (over, _))| *over == w)
                        .map(|(g, (_, agg))| (g, agg.func, agg.ty))
                        .collect(),
                    index: HashMap::new(),
                    partitions: Vec::new(),
                    free: Vec::new(),
                    oldest: NIL,
                    newest: NIL,
                }
            })
            .collect();
        let orphans = (plan.aggs.iter().enumerate())
            .filter(|(_, (over, _))| *over >= windows.len())
            .map(|(g, _)| g)
            .collect();
        SlidingState {
            plan,
            windows,
            orphans,
            scratch: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// The value of every aggregate (the plan's order, each in its type's
    /// Arrow type, nullable) for each row of `batch` (the pump's input rows,
    /// filtered by WHERE, after every row pushed before in ROWTIME order):
    /// the columns that make the batch's rows extended rows. A row that
    /// failed (see the module doc) is NULL there and has one error in
    /// `errors`, `row` its index in `batch`; the caller drops it.
    pub fn push(&mut self, batch: &RecordBatch, errors: &mut Errors) -> Vec<ArrayRef> {
        let rows = batch.num_rows();
        let plan = self.plan.clone();
        let mut columns: Vec<Builder> = (plan.aggs.iter())
            .map(|(_, agg)| Builder::new(agg.ty, rows))
            .collect();
        let partitions = plan.windows.iter().flat_map(|w| w.partition.iter());
        // Each aggregate's argument, then each LAG's default.
        let arguments = plan.aggs.iter().filter_map(|(_, a)| a.arg.as_ref());
        let defaults = plan.aggs.iter().filter_map(|(_, a)| a.default.as_ref());
        let (arrays, mut failed) =
            evaluate_rows(partitions.chain(arguments).chain(defaults), batch);
        let key_count: usize = plan.windows.iter().map(|w| w.partition.len()).sum();
        let (keys, rest) = arrays.split_at(key_count.min(arrays.len()));
        let keys: Vec<Column> = (keys.iter())
            .map(|(a, ty)| Column::of(a, *ty, rows))
            .collect();
        let mut rest = rest.iter();
        let mut next = |present: bool| match present.then(|| rest.next()).flatten() {
            Some((array, ty)) => Column::of(array, *ty, rows),
            None => Column::Missing,
        };
        let args: Vec<Column> = (plan.aggs.iter())
            .map(|(_, a)| next(a.arg.is_some()))
            .collect();
        let defaults: Vec<Column> = (plan.aggs.iter())
            .map(|(_, a)| next(a.default.is_some()))
            .collect();
        let rowtimes = rowtimes(batch, plan.rowtime);

        for row in 0..rows {
            let done = match failed.get_mut(row).and_then(Option::take) {
                Some(e) => Err(e),
                None => match rowtimes.filter(|t| t.is_valid(row)) {
                    None => Err(row_error(row, "ROWTIME is NULL")),
                    Some(t) => {
                        let inputs = Inputs {
                            keys: &keys,
                            args: &args,
                            defaults: &defaults,
                        };
                        self.add_row(row, t.value(row), inputs, &mut columns)
                    }
                },
            };
            if let Err(e) = done {
                errors.push(e);
                for column in &mut columns {
                    column.push(None);
                }
            }
        }
        columns.into_iter().map(Builder::finish).collect()
    }

    /// Adds one row to every window and appends its aggregates to
    /// `columns`; on an error, touches no frame (but may forget rows no
    /// later row can see) and appends nothing.
    fn add_row(
        &mut self,
        row: usize,
        rowtime: i64,
        inputs: Inputs<'_, '_>,
        columns: &mut [Builder],
    ) -> Result<(), RowError> {
        let Inputs {
            keys,
            args,
            defaults,
        } = inputs;
        self.slots.clear();
        let mut overflows = false;
        for window in &mut self.windows {
            self.scratch.clear();
            for k in keys.get(window.keys.clone()).unwrap_or_default() {
                encode_key(k.value(row), &mut self.scratch);
            }
            let slot = window.partition(&self.scratch, rowtime);
            window.evict(slot, rowtime);
            overflows |= window.overflows(slot, args, row);
            self.slots.push(slot);
        }
        if overflows {
            return Err(row_error(row, "Numeric overflow in SUM"));
        }
        for (window, &slot) in self.windows.iter_mut().zip(&self.slots) {
            window.add(slot, rowtime, args, row);
            let p = &window.partitions[slot];
            for (j, (&(g, ..), running)) in window.aggs.iter().zip(&p.running).enumerate() {
                let default = defaults[g].value(row);
                columns[g].push(running.result(p, j, args[g].value(row), default));
            }
        }
        for &g in &self.orphans {
            columns[g].push(None);
        }
        Ok(())
    }

    /// Forgets the partitions of RANGE windows whose newest row is older
    /// than `watermark_ms` − the range: no row to come (ROWTIME ≥ the
    /// watermark) can see them. Bounds memory; costs O(1) per partition
    /// forgotten.
    pub fn forget_before(&mut self, watermark_ms: i64) {
        for window in &mut self.windows {
            if let Frame::Range { ms } = window.frame {
                window.forget_before(watermark_ms.saturating_sub(ms));
            }
        }
    }

    /// How many partitions the windows hold, summed over the windows.
    pub fn partitions(&self) -> usize {
        self.windows.iter().map(|w| w.index.len()).sum()
    }

    /// How many rows the windows' frames hold, summed over the windows.
    pub fn frame_rows(&self) -> usize {
        (self.windows.iter())
            .map(|w| w.partitions.iter().map(|p| p.rowtimes.len()).sum::<usize>())
            .sum()
    }
}

/// A batch's evaluated inputs, one column per partition key (all windows'),
/// per aggregate (its argument) and per aggregate again (a LAG's default;
/// `Missing`, so NULL, for the others).
#[derive(Clone, Copy)]
struct Inputs<'c, 'a> {
    keys: &'c [Column<'a>],
    args: &'c [Column<'a>],
    defaults: &'c [Column<'a>],
}

/// The number of 64-bit limbs of a [`WideSum`]: bit 0 is 2^-1074 (f64's
/// least subnormal) and the largest finite f64 ends at bit 2097; 2240 bits
/// leave room for the sum of 2^64 values of any size, and the sign.
const WIDE_LIMBS: usize = 35;

/// An exact sum of floats that values can also leave exactly: a
/// fixed-point integer wide enough for every finite f64 (a Kulisch
/// accumulator), in two's complement, with the infinities and NaNs
/// counted apart. Its value is the exact sum rounded once (to nearest, ties
/// to even), whatever the order of the values; +0.0 for no value or a sum
/// of zeros; with infinities or NaNs, what IEEE addition of those gives.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WideSum {
    limbs: [u64; WIDE_LIMBS],
    /// How many +inf, -inf and NaN values the sum holds.
    positive_infinities: u64,
    negative_infinities: u64,
    nans: u64,
}

impl WideSum {
    pub(crate) fn new() -> WideSum {
        WideSum {
            limbs: [0; WIDE_LIMBS],
            positive_infinities: 0,
            negative_infinities: 0,
            nans: 0,
        }
    }

    pub(crate) fn add(&mut self, x: f64) {
        self.change(x, false);
    }

    /// Takes out `x`, which was added before.
    pub(crate) fn remove(&mut self, x: f64) {
        self.change(x, true);
    }

    fn change(&mut self, x: f64, removing: bool) {
        let count = if x.is_nan() {
            &mut self.nans
        } else if x == f64::INFINITY {
            &mut self.positive_infinities
        } else if x == f64::NEG_INFINITY {
            &mut self.negative_infinities
        } else {
            self.change_finite(x, removing);
            return;
        };
        *count = if removing {
            count.saturating_sub(1)
        } else {
            count.saturating_add(1)
        };
    }

    fn change_finite(&mut self, x: f64, removing: bool) {
        let (mantissa, shift, negative) = decompose(x);
        change_at(
            &mut self.limbs,
            u128::from(mantissa),
            shift,
            negative != removing,
        );
    }

    /// The sum, rounded to nearest, ties to even.
    pub(crate) fn value(&self) -> f64 {
        match (
            self.positive_infinities > 0,
            self.negative_infinities > 0,
            self.nans > 0,
        ) {
            (_, _, true) | (true, true, _) => return f64::NAN,
            (true, false, false) => return f64::INFINITY,
            (false, true, false) => return f64::NEG_INFINITY,
            (false, false, false) => {}
        }
        let (negative, magnitude) = sign_and_magnitude(&self.limbs);
        let (significand, exponent) = rounded(&magnitude, false);
        // Exact: a multiple of 2^-1074 (subnormal or normal), or ±inf.
        let value = times_power_of_two(significand, exponent - 1074);
        if negative { -value } else { value }
    }
}

/// The number of 64-bit limbs of a [`Moments`]' sum of squares. A finite
/// f64's square is m² × 2^(2·shift − 2148) (m < 2^53, shift ≤ 2045): in
/// units of 2^-2148 it ends below bit 4196, and the sum of 2^64 of them
/// below bit 4260. The variance's numerator n·Σx² − (Σx)² is computed in
/// the same units and width: (Σx)², Σx under 2^2239 units of 2^-1074, ends
/// below bit 4478; n·Σx² below bit 4324.
const SQUARE_LIMBS: usize = 70;

/// What VAR_POP, VAR_SAMP, STDDEV_POP and STDDEV_SAMP need of a set of
/// numbers, exactly: their count, Σx as a [`WideSum`]-like fixed-point
/// integer in units of 2^-1074, Σx² in units of 2^-2148, and how many were
/// NaN or infinite. Values can be added, taken back out and sets merged, all
/// exactly, so the result depends only on the set, never on the order or
/// split (the same bits). A BIGINT enters as its exact integer (its square
/// in 128 bits), not rounded to a DOUBLE first.
///
/// The variance is the exact n·Σx² − (Σx)² (never negative, by
/// Cauchy–Schwarz; no cancellation can occur), divided exactly by n·n (POP)
/// or n·(n−1) (SAMP) and rounded once to nearest (to 53 bits, then once
/// more if the result is subnormal); past f64's range it is +inf. The
/// standard deviation is the square root of that rounded variance (within
/// one unit in the last place of the exact one), taken before scaling, so
/// it is finite and non-zero even when the variance is not representable.
/// Any NaN or infinity among the values makes the result NaN.
///
/// Memory: about 850 bytes, kept behind a `Box` by the operators. Cost: an
/// add or removal touches a few limbs (a carry may run through them all); a
/// result squares the occupied limbs of Σx (O(k²), k the limbs between the
/// values' smallest and largest bits, a handful for everyday data) and
/// divides the 70-limb numerator twice.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Moments {
    /// The values (NaN and infinities included).
    count: u64,
    /// How many of them are NaN or ±inf.
    non_finite: u64,
    /// Σx of the finite values, two's complement.
    sum: [u64; WIDE_LIMBS],
    /// Σx² of the finite values (never negative).
    squares: [u64; SQUARE_LIMBS],
}

impl Moments {
    pub(crate) fn new() -> Moments {
        Moments {
            count: 0,
            non_finite: 0,
            sum: [0; WIDE_LIMBS],
            squares: [0; SQUARE_LIMBS],
        }
    }

    /// Adds the value `v`; a value that is not a number (never: the planner
    /// refuses those arguments) is not counted.
    pub(crate) fn add(&mut self, v: ValueRef<'_>) {
        self.change(v, false);
    }

    /// Takes out `v`, which was added before.
    pub(crate) fn remove(&mut self, v: ValueRef<'_>) {
        self.change(v, true);
    }

    fn change(&mut self, v: ValueRef<'_>, removing: bool) {
        let step = |n: &mut u64| {
            *n = if removing {
                n.saturating_sub(1)
            } else {
                n.saturating_add(1)
            }
        };
        match v {
            ValueRef::Int(x) => {
                // |x| × 2^0 is |x| × 2^1074 units of 2^-1074; its square
                // 2^2148 units of 2^-2148.
                let magnitude = u128::from(x.unsigned_abs());
                change_at(&mut self.sum, magnitude, 1074, (x < 0) != removing);
                change_at(&mut self.squares, magnitude * magnitude, 2148, removing);
            }
            ValueRef::Float(x) if x.is_finite() => {
                let (mantissa, shift, negative) = decompose(x);
                let mantissa = u128::from(mantissa);
                change_at(&mut self.sum, mantissa, shift, negative != removing);
                change_at(&mut self.squares, mantissa * mantissa, 2 * shift, removing);
            }
            ValueRef::Float(_) => step(&mut self.non_finite),
            _ => return,
        }
        step(&mut self.count);
    }

    /// Adds the values of `other`.
    pub(crate) fn merge(&mut self, other: &Moments) {
        self.count = self.count.saturating_add(other.count);
        self.non_finite = self.non_finite.saturating_add(other.non_finite);
        add_limbs(&mut self.sum, &other.sum);
        add_limbs(&mut self.squares, &other.squares);
    }

    /// The value of `func` (one of the four; any other: NULL) over the
    /// values: NULL without values (POP) or with fewer than two (SAMP).
    pub(crate) fn result(&self, func: AggFunc) -> Option<f64> {
        let (sample, root) = match func {
            AggFunc::VarPop => (false, false),
            AggFunc::VarSamp => (true, false),
            AggFunc::StddevPop => (false, true),
            AggFunc::StddevSamp => (true, true),
            _ => return None,
        };
        if self.count < 1 + u64::from(sample) {
            return None;
        }
        if self.non_finite > 0 {
            return Some(f64::NAN);
        }
        let (significand, exponent) = self.variance(sample);
        Some(if root {
            // √(s × 2^e) = √(s × 2^(e mod 2)) × 2^(e div 2): the root of a
            // variance past f64's range (or below it) can still be shown.
            let odd = exponent.rem_euclid(2);
            let root = (significand * f64::from(1 + odd as i32)).sqrt();
            times_power_of_two(root, (exponent - odd) / 2)
        } else {
            times_power_of_two(significand, exponent)
        })
    }

    /// (n·Σx² − (Σx)²) / (n·n) or / (n·(n−1)), for n ≥ 1 (≥ 2 for a sample)
    /// finite values, rounded once to 53 significant bits, as
    /// `(significand, exponent)`: the variance is significand × 2^exponent.
    fn variance(&self, sample: bool) -> (f64, i64) {
        let n = self.count - self.non_finite;
        // n·Σx², in units of 2^-2148.
        let mut numerator = [0u64; SQUARE_LIMBS];
        let mut carry = 0u128;
        for (out, &limb) in numerator.iter_mut().zip(&self.squares) {
            let t = u128::from(limb) * u128::from(n) + carry;
            *out = t as u64;
            carry = t >> 64;
        }
        // − (Σx)², in the same units.
        let (_, magnitude) = sign_and_magnitude(&self.sum);
        let square = square_of(&magnitude);
        let mut borrow = false;
        for (out, &limb) in numerator.iter_mut().zip(&square) {
            let (v, b1) = out.overflowing_sub(limb);
            let (v, b2) = v.overflowing_sub(u64::from(borrow));
            *out = v;
            borrow = b1 || b2;
        }
        debug_assert!(!borrow, "n·Σx² ≥ (Σx)²");
        if borrow {
            return (0.0, 0);
        }
        let inexact = divide_in_place(&mut numerator, n)
            | divide_in_place(&mut numerator, if sample { n - 1 } else { n });
        let (significand, exponent) = rounded(&numerator, inexact);
        (significand, exponent - 2148)
    }
}

/// The square of the unsigned integer `limbs`.
fn square_of(limbs: &[u64; WIDE_LIMBS]) -> [u64; SQUARE_LIMBS] {
    let mut out = [0u64; SQUARE_LIMBS];
    let Some(top) = limbs.iter().rposition(|&l| l != 0) else {
        return out;
    };
    let bottom = limbs.iter().position(|&l| l != 0).unwrap_or(top);
    for i in bottom..=top {
        let mut carry = 0u128;
        for j in bottom..=top {
            // At most (2^64 − 1)² + 2·(2^64 − 1) = 2^128 − 1.
            let t = u128::from(out[i + j]) + u128::from(limbs[i]) * u128::from(limbs[j]) + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        for limb in out.iter_mut().skip(i + top + 1) {
            if carry == 0 {
                break;
            }
            let t = u128::from(*limb) + carry;
            *limb = t as u64;
            carry = t >> 64;
        }
    }
    out
}

/// Divides the unsigned integer `limbs` by `divisor` (≥ 1), truncating;
/// whether a remainder was left.
fn divide_in_place(limbs: &mut [u64], divisor: u64) -> bool {
    let divisor = u128::from(divisor.max(1));
    let Some(top) = limbs.iter().rposition(|&l| l != 0) else {
        return false;
    };
    let mut remainder = 0u128;
    for limb in limbs[..=top].iter_mut().rev() {
        let current = remainder << 64 | u128::from(*limb);
        *limb = (current / divisor) as u64;
        remainder = current % divisor;
    }
    remainder != 0
}

/// A finite `x` as `(mantissa, shift, negative)`: |x| = mantissa ×
/// 2^(shift − 1074), the mantissa under 2^53, the shift at most 2045.
fn decompose(x: f64) -> (u64, usize, bool) {
    let bits = x.to_bits();
    let exponent = (bits >> 52) & 0x7ff;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, shift) = match exponent {
        0 => (fraction, 0),
        e => (fraction | 1 << 52, e - 1),
    };
    (mantissa, shift as usize, bits >> 63 == 1)
}

/// Adds `magnitude × 2^bit` to the two's-complement integer `limbs` (least
/// significant limb first), or subtracts it when `negative`. The caller
/// leaves room above: a carry past the last limb is dropped.
fn change_at(limbs: &mut [u64], magnitude: u128, bit: usize, negative: bool) {
    if magnitude == 0 {
        return;
    }
    let offset = bit % 64;
    let shifted = magnitude << offset;
    let parts = [
        shifted as u64,
        (shifted >> 64) as u64,
        match offset {
            0 => 0,
            _ => (magnitude >> (128 - offset)) as u64,
        },
    ];
    let mut carry = false;
    for (i, limb) in limbs.iter_mut().skip(bit / 64).enumerate() {
        let part = parts.get(i).copied().unwrap_or(0);
        if i >= parts.len() && !carry {
            break;
        }
        let (value, c1, c2) = if negative {
            let (v, c1) = limb.overflowing_sub(part);
            let (v, c2) = v.overflowing_sub(u64::from(carry));
            (v, c1, c2)
        } else {
            let (v, c1) = limb.overflowing_add(part);
            let (v, c2) = v.overflowing_add(u64::from(carry));
            (v, c1, c2)
        };
        *limb = value;
        carry = c1 || c2;
    }
}

/// Adds the two's-complement integer `other` to `limbs` (of one length).
fn add_limbs(limbs: &mut [u64], other: &[u64]) {
    let mut carry = false;
    for (limb, &part) in limbs.iter_mut().zip(other) {
        let (v, c1) = limb.overflowing_add(part);
        let (v, c2) = v.overflowing_add(u64::from(carry));
        *limb = v;
        carry = c1 || c2;
    }
}

/// Whether the two's-complement integer `limbs` is negative, and its
/// magnitude.
fn sign_and_magnitude<const N: usize>(limbs: &[u64; N]) -> (bool, [u64; N]) {
    let negative = limbs.last().is_some_and(|&l| l >> 63 == 1);
    let mut magnitude = *limbs;
    if negative {
        let mut carry = true;
        for limb in &mut magnitude {
            let (v, c) = (!*limb).overflowing_add(u64::from(carry));
            *limb = v;
            carry = c;
        }
    }
    (negative, magnitude)
}

/// The unsigned integer `limbs` rounded to 53 significant bits (to
/// nearest, ties to even) as `(significand, exponent)`: the integer is
/// about significand × 2^exponent. `inexact` says that a nonzero fraction
/// (less than one) was cut off the integer. Exact below 2^53.
fn rounded(limbs: &[u64], inexact: bool) -> (f64, i64) {
    let Some(top) = limbs.iter().rposition(|&l| l != 0) else {
        return (0.0, 0);
    };
    let high_bit = top * 64 + 63 - limbs[top].leading_zeros() as usize;
    if high_bit < 53 {
        // A cut-off fraction is far below what the callers' results can
        // show (their unit is 2^-1074 or less).
        return (limbs[0] as f64, 0);
    }
    // The 53 bits from the highest, rounded by the bits below.
    let below = high_bit - 52;
    let mut kept = bits_at(limbs, below);
    let half = bits_at(limbs, below - 1) & 1 == 1;
    let sticky = inexact || any_below(limbs, below - 1);
    if half && (sticky || kept & 1 == 1) {
        kept += 1;
    }
    (kept as f64, below as i64)
}

/// The 53 bits of `limbs` from bit `at` up.
fn bits_at(limbs: &[u64], at: usize) -> u64 {
    let (limb, offset) = (at / 64, at % 64);
    let low = limbs[limb] >> offset;
    let high = match (offset, limbs.get(limb + 1)) {
        (1.., Some(next)) => next << (64 - offset),
        _ => 0,
    };
    (low | high) & ((1 << 53) - 1)
}

/// Whether any bit of `limbs` under bit `at` is set.
fn any_below(limbs: &[u64], at: usize) -> bool {
    let (limb, offset) = (at / 64, at % 64);
    limbs[..limb].iter().any(|&l| l != 0) || limbs[limb] & ((1 << offset) - 1) != 0
}

/// `x × 2^exponent` for an `x` of at most 53 significant bits whose result
/// is 0, normal or past f64's range: exact, or ±inf.
pub(super) fn times_power_of_two(mut x: f64, mut exponent: i64) -> f64 {
    // 2^e for e in [-1022, 1023].
    let power = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    while exponent > 1000 {
        x *= power(1000);
        exponent -= 1000;
    }
    while exponent < -1000 {
        x *= power(-1000);
        exponent += 1000;
    }
    x * power(exponent)
}

#[cfg(test)]
#[path = "sliding_tests.rs"]
mod tests;
