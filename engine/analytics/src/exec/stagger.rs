//! The stagger-window operator (docs/analytics-design.md §3.4): a pump's
//! `WINDOWED BY STAGGER (PARTITION BY … RANGE INTERVAL …)` state. Per
//! partition key, a window opens at the ROWTIME `t0` of the first row with
//! that key while none is open for it, and holds the key's rows with
//! ROWTIME in `[t0, t0 + width)`; it gives one group row when it closes.
//! Pure: no runtime, no I/O. Lives on the home core; never shared.
//!
//! Rows come in ROWTIME order (not decreasing across pushes: the home core
//! merges the input's shards by watermark before this operator), already
//! filtered by WHERE. So a row of a key at or past its window's end proves
//! that window complete: the window is closed there and the row opens the
//! key's next one. A closed window still waits for the watermark to reach
//! its end before [`StaggerState::close`] gives it, so that group rows
//! leave in the order of their ROWTIME (the window's end). Since windows
//! open in ROWTIME order and all have one width, the order they opened in is
//! the order of their ends: one queue holds them all, open or closed.
//!
//! Keys, aggregates and row errors follow the tumbling operator
//! (`super::tumbling`): the keys compare as GROUP BY's do (NULL is a value),
//! the aggregates have its results (VAR_* / STDDEV_* from exact sums, see
//! `super::sliding::Moments`), FIRST_VALUE / LAST_VALUE follow the
//! push order, and a row whose key or argument evaluation failed, whose
//! ROWTIME is NULL or which would take its window's integer SUM past BIGINT
//! is left out with one [`RowError`] (its first).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{Field, Schema, SchemaRef};

use super::tumbling::{Acc, Column, Place, encode_key, row_error};
use crate::expr::eval::{self, Errors};
use crate::expr::{Expr, RowError, Ty};
use crate::plan::Stagger;

/// A stagger pump's windows. Lives on the home core; never shared.
#[derive(Debug)]
pub struct StaggerState {
    plan: Arc<Stagger>,
    /// The window width, at least 1 ms (the planner never makes less).
    width_ms: i64,
    /// The group rows' schema (`WINDOW_START`, `KEY_n`…, `AGG_n`…).
    schema: SchemaRef,
    /// Every window not yet given by `close`, open or closed, in the order
    /// they opened in; the front's number is `first_number`.
    windows: VecDeque<Window>,
    /// The number of `windows`' front window (windows are numbered in the
    /// order they open, from 0).
    first_number: u64,
    /// Each key with an open window → that window's number.
    open: HashMap<Box<[u8]>, u64>,
    /// How many rows were pushed: the next row's arrival.
    arrivals: u64,
    /// The current row's key bytes (reused across rows).
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Window {
    /// The ROWTIME of its first row.
    start: i64,
    /// Its key's bytes (see `tumbling::encode_key`).
    key: Box<[u8]>,
    /// One per aggregate of the plan, in order.
    accs: Vec<Acc>,
}

/// The arrays of `exprs` evaluated over `batch`, each with its type, and
/// each row's first evaluation error (empty when no row failed).
pub(super) fn evaluate_rows<'e>(
    exprs: impl Iterator<Item = &'e Expr>,
    batch: &RecordBatch,
) -> (Vec<(ArrayRef, Ty)>, Vec<Option<RowError>>) {
    let mut failures = Errors::new();
    let arrays = exprs
        .map(|e| (eval::evaluate(e, batch, &mut failures), e.ty))
        .collect();
    let mut failed: Vec<Option<RowError>> = Vec::new();
    if !failures.is_empty() {
        failed.resize(batch.num_rows(), None);
        for e in failures {
            if let Some(slot @ None) = failed.get_mut(e.row) {
                *slot = Some(e);
            }
        }
    }
    (arrays, failed)
}

/// The ROWTIME column of a batch, `None` when it is not one (never with a
/// planned batch: every row's ROWTIME is then NULL).
pub(super) fn rowtimes(batch: &RecordBatch, index: usize) -> Option<&TimestampMillisecondArray> {
    (batch.columns().get(index))
        .filter(|a| a.len() == batch.num_rows())
        .and_then(|a| a.as_primitive_opt::<TimestampMillisecondType>())
}

impl StaggerState {
    pub fn new(plan: Arc<Stagger>) -> StaggerState {
        let keys = (1..=plan.keys.len()).map(|i| format!("KEY_{i}"));
        let aggs = (1..=plan.aggs.len()).map(|i| format!("AGG_{i}"));
        let names = std::iter::once("WINDOW_START".to_owned())
            .chain(keys)
            .chain(aggs);
        let fields: Vec<Field> = names
            .zip(plan.group_row_types())
            .map(|(name, ty)| Field::new(name, ty.arrow(), true))
            .collect();
        StaggerState {
            width_ms: plan.width_ms.max(1),
            schema: Arc::new(Schema::new(fields)),
            plan,
            windows: VecDeque::new(),
            first_number: 0,
            open: HashMap::new(),
            arrivals: 0,
            scratch: Vec::new(),
        }
    }

    /// The group rows' schema: `WINDOW_START` (a TIMESTAMP), `KEY_1`…,
    /// `AGG_1`…, in the types of [`Stagger::group_row_types`], all nullable.
    pub fn group_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Adds the rows of `batch` (the pump's input rows, filtered by WHERE,
    /// after every row pushed before in ROWTIME order). A row that
    /// contributes nothing (see the module doc) gets one error in `errors`,
    /// `row` its index in `batch`.
    pub fn push(&mut self, batch: &RecordBatch, errors: &mut Errors) {
        let rows = batch.num_rows();
        if rows == 0 {
            return;
        }
        let first_arrival = self.arrivals;
        self.arrivals = self.arrivals.saturating_add(rows as u64);
        let plan = self.plan.clone();
        let exprs = (plan.keys.iter()).chain(plan.aggs.iter().filter_map(|a| a.arg.as_ref()));
        let (arrays, mut failed) = evaluate_rows(exprs, batch);
        let (keys, args) = arrays.split_at(plan.keys.len().min(arrays.len()));
        let keys: Vec<Column> = (keys.iter())
            .map(|(a, ty)| Column::of(a, *ty, rows))
            .collect();
        let mut args = args.iter();
        let args: Vec<Column> = (plan.aggs.iter())
            .map(|a| match a.arg.as_ref().and_then(|_| args.next()) {
                Some((array, ty)) => Column::of(array, *ty, rows),
                None => Column::Missing,
            })
            .collect();
        let rowtimes = rowtimes(batch, plan.rowtime);

        for row in 0..rows {
            if let Some(e) = failed.get_mut(row).and_then(Option::take) {
                errors.push(e);
                continue;
            }
            let Some(rowtime) = rowtimes.filter(|t| t.is_valid(row)).map(|t| t.value(row)) else {
                errors.push(row_error(row, "ROWTIME is NULL"));
                continue;
            };
            let place = Place {
                rowtime,
                origin: 0,
                arrival: first_arrival.saturating_add(row as u64),
            };
            self.scratch.clear();
            for k in &keys {
                encode_key(k.value(row), &mut self.scratch);
            }
            let window = self.window_for(rowtime);
            if (window.accs.iter())
                .zip(&args)
                .any(|(acc, arg)| acc.overflows(arg.value(row)))
            {
                errors.push(row_error(row, "Numeric overflow in SUM"));
                continue;
            }
            for (acc, arg) in window.accs.iter_mut().zip(&args) {
                acc.add(place, arg.value(row));
            }
        }
    }

    /// The window a row of the key in `scratch` at `rowtime` goes to: the
    /// key's open window when the row falls in it, else a new one (closing
    /// the key's open window, which no later row can reach).
    fn window_for(&mut self, rowtime: i64) -> &mut Window {
        let current = (self.open.get(self.scratch.as_slice()))
            .and_then(|&n| n.checked_sub(self.first_number))
            .and_then(|at| usize::try_from(at).ok())
            .filter(|&at| {
                self.windows
                    .get(at)
                    .is_some_and(|w| rowtime < w.start.saturating_add(self.width_ms))
            });
        let at = match current {
            Some(at) => at,
            None => {
                let number = self.first_number + self.windows.len() as u64;
                // Replaces the key's open window, if any: that one is closed.
                self.open.insert(self.scratch.as_slice().into(), number);
                self.windows.push_back(Window {
                    start: rowtime,
                    key: self.scratch.as_slice().into(),
                    accs: self.plan.aggs.iter().map(Acc::empty).collect(),
                });
                self.windows.len() - 1
            }
        };
        &mut self.windows[at]
    }

    /// Closes every window whose end (its first row's ROWTIME + width) is
    /// ≤ `watermark_ms` and returns their group rows (in
    /// [`StaggerState::group_schema`]) in one batch, ordered by end, then by
    /// the order the windows opened in, with each row's window end. `None`
    /// when no window closed.
    pub fn close(&mut self, watermark_ms: i64) -> Option<(RecordBatch, Vec<i64>)> {
        let mut closed = Vec::new();
        while let Some(front) = self.windows.front() {
            if front.start.saturating_add(self.width_ms) > watermark_ms {
                break;
            }
            let Some(window) = self.windows.pop_front() else {
                break;
            };
            if self.open.get(&window.key) == Some(&self.first_number) {
                self.open.remove(&window.key);
            }
            self.first_number += 1;
            closed.push(window);
        }
        if closed.is_empty() {
            return None;
        }
        let ends = (closed.iter())
            .map(|w| w.start.saturating_add(self.width_ms))
            .collect();
        Some((self.group_rows(&closed)?, ends))
    }

    fn group_rows(&self, closed: &[Window]) -> Option<RecordBatch> {
        let rows = closed
            .iter()
            .map(|w| (w.start, &w.key[..], w.accs.as_slice()));
        super::tumbling::group_rows(
            &self.schema,
            &self.plan.keys,
            &self.plan.aggs,
            closed.len(),
            rows,
        )
    }

    /// How many windows are open (closed windows waiting for the watermark
    /// are not counted).
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// How many windows, open or closed, wait for the watermark.
    pub fn pending_windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
#[path = "stagger_tests.rs"]
mod tests;
