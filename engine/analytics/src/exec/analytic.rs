//! The sliding operator's analytic functions (docs/analytics-design.md
//! §3.5), kept per window and partition beside its aggregates
//! (`super::sliding`): `LAG(x, n [, default]) [IGNORE NULLS]` ([`Lag`], for
//! [`crate::plan::AggFunc::Lag`]) and `EXP_AVG(x, INTERVAL …)`
//! ([`Decayed`], for [`crate::plan::AggFunc::ExpAvg`]). Both see only the
//! frame: a row that left the frame is gone for them as for the aggregates,
//! so memory stays the frame's and a checkpoint's replay of the frame
//! rebuilds them exactly.
//!
//! LAG (AWS: "the record that is N records before the current record in a
//! given window"; the default is "returned if the record queried … falls
//! outside the window"): the value of the `n`-th row of the frame before
//! the current one (rows with a NULL value not counted under IGNORE NULLS),
//! else the default (NULL without one). A NULL read from a row stays NULL
//! (AWS: the default "doesn't replace actual null values"). The frame's
//! values are the partition's kept values; with IGNORE NULLS, [`Lag`] also
//! keeps the numbers of the rows with a value. O(1) per row.
//!
//! EXP_AVG (AWS and SQLstream: the interval is "the half-life of the decay
//! function"): Σ wᵢ·xᵢ / Σ wᵢ over the frame's non-NULL values, with
//! wᵢ = 2^(−(t − tᵢ) / half-life), t the current row's ROWTIME, tᵢ the
//! value's row's; NULL without values. The factor 2^(−t / half-life)
//! cancels out, so each value is weighted once, when it arrives, by
//! 2^(tᵢ / half-life) — re-based so nothing overflows: time is cut into
//! epochs of [`EPOCH_HALF_LIVES`] half-lives, and a value's weight is taken
//! from the end of its epoch, 2^(−(end − tᵢ) / half-life), in
//! [2^−256, 1). Per epoch, the weights and the weighted values are summed
//! exactly ([`WideSum`]), so a row leaves its epoch's sums exactly as it
//! came in (its weight and product are recomputed, to the same bits, from
//! its ROWTIME and value); the result scales each epoch's two sums by
//! 2^(256 × (its number − the newest's)) and divides. An epoch more than
//! [`EPOCHS_KEPT`] epochs older than the newest holding a value weighs
//! under 2^−2560 against it: its share of the result is below the least
//! DOUBLE, so it is dropped at once (its rows then leave nothing). O(1) per
//! row; at most `EPOCHS_KEPT + 1` epochs of about 600 bytes per partition.
//! A weight is rounded to a DOUBLE (exact when its row is a whole number of
//! half-lives from its epoch's end), so a result may differ from the exact
//! weighted average in its last bits; it never depends on how the rows
//! came in batches.
//! A frame of values near DOUBLE's largest can overflow a sum: the result
//! is then ±inf or NaN, as AVG's is. A value under about 2^−766 (1e−230)
//! in magnitude can weigh as less than itself, down to 0 (its weighted
//! product is subnormal): an error below the value itself.

use std::collections::VecDeque;

use super::sliding::{WideSum, times_power_of_two};

/// LAG over one partition's frame.
#[derive(Debug)]
pub(super) struct Lag {
    offset: u64,
    ignore_nulls: bool,
    /// IGNORE NULLS: the numbers of the frame's rows whose value is not
    /// NULL, oldest first.
    present: VecDeque<u64>,
}

impl Lag {
    pub(super) fn new(offset: u64, ignore_nulls: bool) -> Lag {
        Lag {
            offset,
            ignore_nulls,
            present: VecDeque::new(),
        }
    }

    /// The row numbered `number` joins the frame.
    pub(super) fn add(&mut self, number: u64, has_value: bool) {
        if self.ignore_nulls && has_value {
            self.present.push_back(number);
        }
    }

    /// The frame's oldest row, numbered `number`, leaves it.
    pub(super) fn remove(&mut self, number: u64) {
        if self.present.front().is_some_and(|&n| n <= number) {
            self.present.pop_front();
        }
    }

    /// Where in the frame (0: its oldest row) the row LAG reads for the
    /// frame's newest row (the current one) is: the frame holds `len` rows
    /// numbered from `first_number`. `None`: the frame has no such row.
    pub(super) fn place(&self, first_number: u64, len: u64) -> Option<u64> {
        let current = len.checked_sub(1)?;
        if !self.ignore_nulls {
            return current.checked_sub(self.offset);
        }
        let current_number = first_number + current;
        let before = self.present.len() - usize::from(self.present.back() == Some(&current_number));
        let back = usize::try_from(self.offset).ok()?;
        let at = before.checked_sub(back)?;
        self.present.get(at).map(|n| n - first_number)
    }
}

/// The length of an EXP_AVG epoch, in half-lives: weights within an epoch
/// span 2^256, so a weighted value never overflows and a weight is never
/// subnormal.
pub(super) const EPOCH_HALF_LIVES: i64 = 256;

/// How many epochs before the newest one holding a value are kept (see the
/// module doc): 2^(256 × 11) against the newest's weights leaves any value's
/// share under 2^−1075 (the frame's values are under 2^1024, its rows under
/// 2^64).
pub(super) const EPOCHS_KEPT: i64 = 10;

/// EXP_AVG over one partition's frame.
#[derive(Debug)]
pub(super) struct Decayed {
    half_life_ms: i64,
    /// `EPOCH_HALF_LIVES` half-lives (saturated), at least 1 ms.
    epoch_ms: i64,
    /// The epochs holding the frame's values, oldest first, none empty.
    epochs: VecDeque<Epoch>,
}

/// The values of one epoch in the frame.
#[derive(Debug)]
struct Epoch {
    /// ROWTIME div the epoch length.
    number: i64,
    values: u64,
    /// Σ wᵢ·xᵢ and Σ wᵢ, exactly.
    weighted: WideSum,
    weights: WideSum,
}

impl Decayed {
    /// The planner refuses a half-life ≤ 0; one is then taken as 1 ms.
    pub(super) fn new(half_life_ms: i64) -> Decayed {
        let half_life_ms = half_life_ms.max(1);
        Decayed {
            half_life_ms,
            epoch_ms: half_life_ms.saturating_mul(EPOCH_HALF_LIVES),
            epochs: VecDeque::new(),
        }
    }

    /// The epoch of a row at `rowtime`, and the weight of its value there:
    /// 2^(−(the epoch's end − rowtime) / half-life). The same bits for the
    /// same row every time.
    fn weight(&self, rowtime: i64) -> (i64, f64) {
        let number = rowtime.div_euclid(self.epoch_ms);
        let to_end = self.epoch_ms - rowtime.rem_euclid(self.epoch_ms);
        let weight = (-(to_end as f64) / self.half_life_ms as f64).exp2();
        (number, weight)
    }

    /// Adds the value `x` of a row at `rowtime` (rows come in ROWTIME order).
    pub(super) fn add(&mut self, rowtime: i64, x: f64) {
        let (number, weight) = self.weight(rowtime);
        if self.epochs.back().is_none_or(|e| e.number < number) {
            while self
                .epochs
                .front()
                .is_some_and(|e| e.number < number.saturating_sub(EPOCHS_KEPT))
            {
                self.epochs.pop_front();
            }
            self.epochs.push_back(Epoch {
                number,
                values: 0,
                weighted: WideSum::new(),
                weights: WideSum::new(),
            });
        }
        let Some(epoch) = self.epochs.iter_mut().rev().find(|e| e.number == number) else {
            // An older epoch than the newest (never: rows come in order).
            return;
        };
        epoch.weighted.add(x * weight);
        epoch.weights.add(weight);
        epoch.values += 1;
    }

    /// Takes out the value `x` of a row at `rowtime` that was added (and
    /// not yet taken out); nothing when its epoch was dropped.
    pub(super) fn remove(&mut self, rowtime: i64, x: f64) {
        let (number, weight) = self.weight(rowtime);
        let Some(at) = self.epochs.iter().position(|e| e.number == number) else {
            return;
        };
        let epoch = &mut self.epochs[at];
        epoch.weighted.remove(x * weight);
        epoch.weights.remove(weight);
        epoch.values -= 1;
        if epoch.values == 0 {
            self.epochs.remove(at);
        }
    }

    /// The weighted average of the values; `None` without values.
    pub(super) fn result(&self) -> Option<f64> {
        let newest = self.epochs.back()?.number;
        let (mut weighted, mut weights) = (0.0, 0.0);
        for e in &self.epochs {
            let shift = e
                .number
                .saturating_sub(newest)
                .saturating_mul(EPOCH_HALF_LIVES);
            weighted += times_power_of_two(e.weighted.value(), shift);
            weights += times_power_of_two(e.weights.value(), shift);
        }
        Some(weighted / weights)
    }
}

#[cfg(test)]
mod tests {
    //! LAG and EXP_AVG through the sliding operator: exact values per
    //! partition, in RANGE and ROWS frames, with NULLs, IGNORE NULLS and
    //! defaults, whatever the batches' sizes; EXP_AVG's epochs.

    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{
        Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray,
        TimestampMillisecondArray,
    };
    use arrow_schema::DataType;

    use super::{Decayed, EPOCH_HALF_LIVES, Lag};
    use crate::exec::sliding::SlidingState;
    use crate::expr::eval::Errors;
    use crate::expr::{ArithOp, Expr, ExprKind, Literal, RowErrorKind, Ty};
    use crate::plan::{Agg, AggFunc, Frame, Sliding, WindowSpec};

    /// The test batches' columns: a key, a DOUBLE, a BIGINT, ROWTIME.
    const KEY: usize = 0;
    const X: usize = 1;
    const N: usize = 2;
    const ROWTIME: usize = 3;

    /// One input row: key, DOUBLE, BIGINT, ROWTIME (ms).
    type Row = (&'static str, Option<f64>, Option<i64>, i64);

    const S: i64 = 1_000;

    fn x() -> Expr {
        Expr::column(X, Ty::Float)
    }

    fn lag(offset: u64, ignore_nulls: bool, default: Option<Expr>) -> Agg {
        Agg {
            func: AggFunc::Lag {
                offset,
                ignore_nulls,
            },
            arg: Some(x()),
            ty: Ty::Float,
            default,
        }
    }

    fn exp_avg(half_life_ms: i64) -> Agg {
        Agg {
            func: AggFunc::ExpAvg { half_life_ms },
            arg: Some(x()),
            ty: Ty::Float,
            default: None,
        }
    }

    /// A sliding plan of one window over `aggs`, partitioned by the key or
    /// not.
    fn plan(frame: Frame, partitioned: bool, aggs: Vec<Agg>) -> Arc<Sliding> {
        let partition = match partitioned {
            true => vec![Expr::column(KEY, Ty::Text)],
            false => vec![],
        };
        Arc::new(Sliding {
            rowtime: ROWTIME,
            windows: vec![WindowSpec { partition, frame }],
            aggs: aggs.into_iter().map(|a| (0, a)).collect(),
            items: vec![],
        })
    }

    fn batch(rows: &[Row]) -> RecordBatch {
        let keys: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
        let xs: ArrayRef = Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.1)));
        let ns: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2)));
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.3),
        ));
        RecordBatch::try_from_iter([("K", keys), ("X", xs), ("N", ns), ("ROWTIME", times)])
            .expect("test batch")
    }

    /// A result: `-` for NULL, a DOUBLE with `{:?}`.
    fn cell(c: &ArrayRef, row: usize) -> String {
        if c.is_null(row) {
            return "-".into();
        }
        match c.data_type() {
            DataType::Int64 => c.as_primitive::<Int64Type>().value(row).to_string(),
            DataType::Float64 => format!("{:?}", c.as_primitive::<Float64Type>().value(row)),
            other => panic!("unexpected type {other}"),
        }
    }

    fn show(v: Option<f64>) -> String {
        v.map_or("-".into(), |v| format!("{v:?}"))
    }

    /// Each row's results, cells joined by ` `, and the rows that failed
    /// (dividing by zero), pushed in batches of `size` rows.
    fn run(plan: &Arc<Sliding>, rows: &[Row], size: usize) -> (Vec<String>, Vec<usize>) {
        let mut state = SlidingState::new(plan.clone());
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for (b, chunk) in rows.chunks(size).enumerate() {
            let mut errors = Errors::new();
            let columns = state.push(&batch(chunk), &mut errors);
            for e in &errors {
                assert_eq!(e.kind, RowErrorKind::DivisionByZero, "{e:?}");
                failed.push(b * size + e.row);
            }
            for row in 0..chunk.len() {
                let cells: Vec<String> = columns.iter().map(|c| cell(c, row)).collect();
                out.push(cells.join(" "));
            }
        }
        (out, failed)
    }

    /// The rows' results, the same whatever the batches' sizes.
    fn results(plan: &Arc<Sliding>, rows: &[Row]) -> Vec<String> {
        let (whole, failed) = run(plan, rows, rows.len().max(1));
        assert!(failed.is_empty(), "rows {failed:?} failed");
        for size in 1..rows.len() {
            assert_eq!(run(plan, rows, size).0, whole, "in batches of {size}");
        }
        whole
    }

    #[test]
    fn lag_reads_the_nth_row_before_in_its_partition_within_the_frame() {
        // Partition a: 1, 2, NULL, 4; partition b: 10, 20. The frame is the
        // row and the 2 rows before it in its partition.
        let rows: &[Row] = &[
            ("a", Some(1.0), Some(-1), 0),
            ("b", Some(10.0), Some(-2), S),
            ("a", Some(2.0), Some(-3), 2 * S),
            ("a", None, Some(-4), 3 * S),
            ("b", Some(20.0), Some(-5), 4 * S),
            ("a", Some(4.0), None, 5 * S),
        ];
        // The default: the current row's BIGINT, as a DOUBLE.
        let default = || {
            let n = Expr::column(N, Ty::Int);
            Some(Expr::new(ExprKind::Cast(Box::new(n)), Ty::Float))
        };
        let plan = plan(
            Frame::Rows { preceding: 2 },
            true,
            vec![
                lag(1, false, None),
                lag(1, false, default()),
                lag(2, false, None),
                // 3 rows back is past the frame's 2 rows before: always
                // the default.
                lag(3, false, default()),
                lag(1, true, None),
                lag(2, true, default()),
            ],
        );
        assert_eq!(
            results(&plan, rows),
            vec![
                "- -1.0 - -1.0 - -1.0",
                "- -2.0 - -2.0 - -2.0",
                "1.0 1.0 - -3.0 1.0 -3.0",
                // A row whose value is NULL still reads back.
                "2.0 2.0 1.0 -4.0 2.0 1.0",
                "10.0 10.0 - -5.0 10.0 -5.0",
                // The row before holds a NULL: LAG is NULL, not the
                // default; IGNORE NULLS reads past it, but the second value
                // before (1, at 0 s) has left the frame: the default (NULL).
                "- - 2.0 - 2.0 -",
            ]
        );
    }

    #[test]
    fn lag_in_a_range_frame_sees_only_the_rows_of_the_range() {
        // One partition; RANGE 10 s: at 20 s the row at 5 s has left.
        let rows: &[Row] = &[
            ("a", Some(1.0), None, 0),
            ("a", Some(2.0), None, 5 * S),
            ("a", Some(3.0), None, 20 * S),
            ("a", None, None, 25 * S),
            ("a", Some(5.0), None, 31 * S),
            ("a", None, None, 36 * S),
        ];
        let ninety_nine = || Some(Expr::literal(Literal::Float(99.0), Ty::Float));
        let plan = plan(
            Frame::Range { ms: 10 * S },
            false,
            vec![
                lag(1, false, ninety_nine()),
                lag(1, true, ninety_nine()),
                lag(2, false, ninety_nine()),
            ],
        );
        assert_eq!(
            results(&plan, rows),
            vec![
                "99.0 99.0 99.0",
                "1.0 1.0 99.0",
                "99.0 99.0 99.0",
                "3.0 3.0 99.0",
                // At 31 s the frame is 25 s (NULL) and 31 s: the row
                // before holds a NULL; no value before under IGNORE NULLS.
                "- 99.0 99.0",
                // At 36 s: 31 s holds 5; 25 s, two back, has left.
                "5.0 5.0 99.0",
            ]
        );
    }

    #[test]
    fn a_lag_default_that_fails_fails_its_row_only() {
        // The default 10 / N: N = 0 divides by zero.
        let quotient = Expr::new(
            ExprKind::Arith(
                ArithOp::Div,
                Box::new(Expr::literal(Literal::Int(10), Ty::Int)),
                Box::new(Expr::column(N, Ty::Int)),
            ),
            Ty::Int,
        );
        let default = Expr::new(ExprKind::Cast(Box::new(quotient)), Ty::Float);
        let rows: &[Row] = &[
            ("a", Some(1.0), Some(5), 0),
            ("a", Some(2.0), Some(0), S),
            ("a", Some(3.0), Some(2), 2 * S),
        ];
        let plan = plan(
            Frame::Rows { preceding: 5 },
            false,
            vec![lag(1, false, Some(default))],
        );
        let (out, failed) = run(&plan, rows, 3);
        assert_eq!(failed, vec![1]);
        // The failed row is NULL and in no later row's frame.
        assert_eq!(out, vec!["2.0", "-", "1.0"]);
    }

    #[test]
    fn exp_avg_halves_a_weight_every_half_life_back() {
        // Half-life 10 s, RANGE 30 s: weights 1, 1/2, 1/4, 1/8 (exact).
        let rows: &[Row] = &[
            ("a", Some(10.0), None, 0),
            ("a", Some(20.0), None, 10 * S),
            ("b", Some(1.0), None, 15 * S),
            ("a", None, None, 20 * S),
            ("b", Some(3.0), None, 25 * S),
            ("a", Some(40.0), None, 30 * S),
            ("a", Some(80.0), None, 60 * S),
            ("a", None, None, 95 * S),
        ];
        let plan = plan(Frame::Range { ms: 30 * S }, true, vec![exp_avg(10 * S)]);
        let expected = [
            Some(10.0),
            Some((10.0 / 2.0 + 20.0) / (1.0 / 2.0 + 1.0)),
            Some(1.0),
            // A NULL value weighs nothing; the others weigh from this
            // row's ROWTIME.
            Some((10.0 / 4.0 + 20.0 / 2.0) / (1.0 / 4.0 + 1.0 / 2.0)),
            Some((1.0 / 2.0 + 3.0) / (1.0 / 2.0 + 1.0)),
            Some((10.0 / 8.0 + 20.0 / 4.0 + 40.0) / (1.0 / 8.0 + 1.0 / 4.0 + 1.0)),
            // The rows at 0, 10 and 20 s have left the frame [30 s, 60 s].
            Some((40.0 / 8.0 + 80.0) / (1.0 / 8.0 + 1.0)),
            // No value in [65 s, 95 s].
            None,
        ];
        let expected: Vec<String> = expected.into_iter().map(show).collect();
        assert_eq!(results(&plan, rows), expected);
    }

    #[test]
    fn exp_avg_in_a_rows_frame_and_across_an_epoch() {
        // ROWS 1 PRECEDING, half-life 1 s: 4 at 0 s, 8 at 1 s, 16 at 3 s.
        let rows: &[Row] = &[
            ("a", Some(4.0), None, 0),
            ("a", Some(8.0), None, S),
            ("a", Some(16.0), None, 3 * S),
        ];
        let plan_rows = plan(Frame::Rows { preceding: 1 }, false, vec![exp_avg(S)]);
        assert_eq!(
            results(&plan_rows, rows),
            vec![
                show(Some(4.0)),
                show(Some((4.0 / 2.0 + 8.0) / 1.5)),
                show(Some((8.0 / 4.0 + 16.0) / 1.25)),
            ]
        );
        // Rows a half-life apart on both sides of an epoch's end weigh 1/2
        // and 1, as within one epoch.
        let epoch = EPOCH_HALF_LIVES * 10 * S;
        let rows: &[Row] = &[
            ("a", Some(10.0), None, epoch - 10 * S),
            ("a", Some(20.0), None, epoch),
            ("a", Some(40.0), None, epoch + 10 * S),
        ];
        let plan_range = plan(Frame::Range { ms: 60 * S }, false, vec![exp_avg(10 * S)]);
        assert_eq!(
            results(&plan_range, rows),
            vec![
                show(Some(10.0)),
                show(Some((10.0 / 2.0 + 20.0) / 1.5)),
                show(Some((10.0 / 4.0 + 20.0 / 2.0 + 40.0) / 1.75)),
            ]
        );
    }

    #[test]
    fn exp_avg_values_leave_exactly() {
        // Huge values leave the frame: what is left is exact, not the
        // rounding error of a float sum.
        let plan = plan(Frame::Range { ms: 10 * S }, false, vec![exp_avg(S)]);
        let rows: &[Row] = &[
            ("a", Some(1e300), None, 0),
            ("a", Some(-1e300), None, S),
            ("a", Some(3.0), None, 2 * S),
            ("a", Some(1e-200), None, 20 * S),
            ("a", Some(7.0), None, 40 * S),
        ];
        let out = results(&plan, rows);
        assert_eq!(&out[3..], ["1e-200", "7.0"]);
        // NaN and infinities as IEEE sums give them, until they leave.
        let rows: &[Row] = &[
            ("a", Some(f64::INFINITY), None, 0),
            ("a", Some(1.0), None, S),
            ("a", Some(f64::NAN), None, 2 * S),
            ("a", Some(2.0), None, 20 * S),
        ];
        assert_eq!(results(&plan, rows), ["inf", "inf", "NaN", "2.0"]);
    }

    #[test]
    fn exp_avg_forgets_epochs_that_weigh_nothing() {
        // A ROWS frame keeps a row from 12 epochs before: its weight is
        // under 2^-2816 against the new rows', and its epoch is dropped.
        let epoch = EPOCH_HALF_LIVES * S;
        let rows: &[Row] = &[
            ("a", Some(5.0), None, 0),
            ("a", Some(7.0), None, 12 * epoch),
            ("a", Some(9.0), None, 12 * epoch + S),
        ];
        let plan = plan(Frame::Rows { preceding: 2 }, false, vec![exp_avg(S)]);
        assert_eq!(
            results(&plan, rows),
            vec![
                show(Some(5.0)),
                show(Some(7.0)),
                show(Some((7.0 / 2.0 + 9.0) / 1.5)),
            ]
        );
        // Within ten epochs an old value still counts (a little), and
        // leaves exactly.
        let mut decayed = Decayed::new(S);
        decayed.add(0, 1e300);
        decayed.add(4 * epoch, 1.0);
        let v = decayed.result().unwrap();
        assert!(v > 1.0 && v < 2.0, "{v}");
        decayed.remove(0, 1e300);
        assert_eq!(decayed.result(), Some(1.0));
        decayed.remove(4 * epoch, 1.0);
        assert_eq!(decayed.result(), None);
    }

    #[test]
    fn lag_places_count_rows_or_values() {
        // Rows 10..=14 in the frame; values at 10, 12, 13 (11, 14 NULL).
        let mut respect = Lag::new(2, false);
        let mut ignore = Lag::new(2, true);
        for (n, value) in [(10, true), (11, false), (12, true), (13, true), (14, false)] {
            respect.add(n, value);
            ignore.add(n, value);
        }
        assert_eq!(respect.place(10, 5), Some(2));
        // The values before 14 are 10, 12, 13: the second back is 12.
        assert_eq!(ignore.place(10, 5), Some(2));
        respect.remove(10);
        ignore.remove(10);
        assert_eq!(respect.place(11, 4), Some(1));
        assert_eq!(ignore.place(11, 4), Some(1));
        ignore.remove(11);
        ignore.remove(12);
        assert_eq!(ignore.place(13, 2), None);
        assert_eq!(Lag::new(1, false).place(0, 0), None);
        assert_eq!(Lag::new(u64::MAX, true).place(0, 1), None);
    }
}
