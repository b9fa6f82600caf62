//! A streaming `ORDER BY step(ROWTIME), key [DESC], …` (docs/analytics-design.md
//! §3.4 "Streaming ORDER BY", E7's second pump): rows are held per bucket of
//! the leading ROWTIME step, and a bucket is written, sorted by the other
//! keys (ties in the order the rows came), once the watermark has passed its
//! end. Memory is one bucket's rows per open bucket. NULL sorts after every
//! value ascending, before every value descending (it is the largest).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};

use crate::expr::Ty;
use crate::expr::eval::{self, Errors, evaluate};
use crate::plan::Sort;

/// Rows waiting for their bucket to end.
#[derive(Debug)]
pub struct SortState {
    plan: Arc<Sort>,
    /// By bucket start: the rows, in the order they came.
    buckets: BTreeMap<i64, Vec<RecordBatch>>,
}

impl SortState {
    pub fn new(plan: Arc<Sort>) -> SortState {
        SortState {
            plan,
            buckets: BTreeMap::new(),
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.buckets
            .values()
            .flat_map(|b| b.iter())
            .map(|b| b.num_rows())
            .sum()
    }

    /// Holds the rows of `batch` (the pump's input rows, filtered, in
    /// ROWTIME order).
    pub fn push(&mut self, batch: &RecordBatch) {
        let column = eval::widen(batch.column(self.plan.rowtime), Ty::Time);
        let times = eval::times(&column);
        let width = self.plan.bucket_ms.max(1);
        let mut start = 0;
        while start < batch.num_rows() {
            let bucket = |i: usize| times.value(i).div_euclid(width).saturating_mul(width);
            let b = bucket(start);
            let mut end = start + 1;
            while end < batch.num_rows() && bucket(end) == b {
                end += 1;
            }
            self.buckets
                .entry(b)
                .or_default()
                .push(batch.slice(start, end - start));
            start = end;
        }
    }

    /// The rows of every bucket whose end is at or below `watermark`, in
    /// bucket order, each bucket sorted by the keys; None when none ended.
    pub fn release(&mut self, watermark: i64) -> Option<RecordBatch> {
        let width = self.plan.bucket_ms.max(1);
        let ended: Vec<i64> = self
            .buckets
            .keys()
            .copied()
            .take_while(|b| b.saturating_add(width) <= watermark)
            .collect();
        let mut out: Vec<RecordBatch> = Vec::new();
        for b in ended {
            let batches = self.buckets.remove(&b).unwrap_or_default();
            if batches.is_empty() {
                continue;
            }
            let schema = batches[0].schema();
            let rows = arrow_select::concat::concat_batches(&schema, &batches)
                .expect("the batches of one stream share its schema");
            out.push(self.sorted(&rows));
        }
        let first = out.first()?;
        let schema = first.schema();
        Some(arrow_select::concat::concat_batches(&schema, &out).expect("one schema"))
    }

    /// `rows` sorted by the keys, stably (a key that fails to evaluate
    /// sorts as NULL; the row is kept).
    fn sorted(&self, rows: &RecordBatch) -> RecordBatch {
        if self.plan.keys.is_empty() {
            return rows.clone();
        }
        let mut ignored = Errors::new();
        let keys: Vec<(ArrayRef, bool)> = self
            .plan
            .keys
            .iter()
            .map(|(k, desc)| (evaluate(k, rows, &mut ignored), *desc))
            .collect();
        let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
        order.sort_by(|&a, &b| {
            for (k, desc) in &keys {
                let o = compare(k, a as usize, b as usize);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        let take = UInt32Array::from(order);
        let columns = rows
            .columns()
            .iter()
            .map(|c| arrow_select::take::take(c, &take, None).expect("indices in range"))
            .collect();
        RecordBatch::try_new(rows.schema(), columns).expect("same schema")
    }
}

/// Rows `a` and `b` of an evaluated key: NULL is the largest value, floats
/// by their total order.
fn compare(k: &ArrayRef, a: usize, b: usize) -> Ordering {
    match (k.is_null(a), k.is_null(b)) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    use arrow_schema::DataType;
    match k.data_type() {
        DataType::Int64 => eval::ints(k).value(a).cmp(&eval::ints(k).value(b)),
        DataType::Float64 => eval::floats(k)
            .value(a)
            .total_cmp(&eval::floats(k).value(b)),
        DataType::Utf8 => eval::texts(k).value(a).cmp(eval::texts(k).value(b)),
        DataType::Boolean => eval::bools(k).value(a).cmp(&eval::bools(k).value(b)),
        DataType::Timestamp(..) => eval::times(k).value(a).cmp(&eval::times(k).value(b)),
        _ => Ordering::Equal,
    }
}
