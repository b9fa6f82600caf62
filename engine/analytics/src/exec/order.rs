//! One in-application stream's rows from several sources put in ROWTIME
//! order (docs/analytics-design.md §5.6): what the sliding and stagger
//! windows read on the home core. Each source's rows come in ROWTIME order
//! (a shard's arrivals never decrease), but sources interleave; rows are
//! held until the watermark (no later row can have an earlier ROWTIME) has
//! passed them, then released sorted by (ROWTIME, source, arrival). Memory
//! is bounded by how far the slowest source's watermark lags (an idle
//! shard reports the engine's clock every second).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};

use crate::expr::Ty;
use crate::expr::eval;

/// Rows waiting for the watermark.
#[derive(Debug)]
pub struct Ordered {
    rowtime: usize,
    /// Batches in the order pushed, each with its source and its ROWTIMEs.
    pending: Vec<Pending>,
    /// Rows held.
    rows: usize,
}

#[derive(Debug)]
struct Pending {
    batch: RecordBatch,
    times: Arc<[i64]>,
    origin: u64,
    /// Push order, for ties between batches of one source.
    seq: u64,
}

impl Ordered {
    /// `rowtime`: the index of ROWTIME in the stream's rows.
    pub fn new(rowtime: usize) -> Ordered {
        Ordered {
            rowtime,
            pending: Vec::new(),
            rows: 0,
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Holds `batch`, rows of source `origin` in ROWTIME order.
    pub fn push(&mut self, batch: RecordBatch, origin: u64) {
        if batch.num_rows() == 0 {
            return;
        }
        let column = eval::widen(batch.column(self.rowtime), Ty::Time);
        let t = eval::times(&column);
        // ROWTIME is never NULL in a stream's rows; a NULL sorts first.
        let times: Arc<[i64]> = (0..t.len())
            .map(|i| if t.is_valid(i) { t.value(i) } else { i64::MIN })
            .collect();
        self.rows += batch.num_rows();
        let seq = self.pending.last().map_or(0, |p| p.seq + 1);
        self.pending.push(Pending {
            batch,
            times,
            origin,
            seq,
        });
    }

    /// The rows with ROWTIME below `watermark`, sorted by (ROWTIME, source,
    /// push order, row), as one batch; None when there are none.
    pub fn release(&mut self, watermark: i64) -> Option<RecordBatch> {
        // A source's rows are in ROWTIME order, so those below the
        // watermark are a prefix of each batch.
        let mut picked: Vec<(i64, u64, u64, usize, usize)> = Vec::new();
        for (b, p) in self.pending.iter().enumerate() {
            let n = p.times.partition_point(|&t| t < watermark);
            picked.extend((0..n).map(|row| (p.times[row], p.origin, p.seq, b, row)));
        }
        if picked.is_empty() {
            return None;
        }
        picked.sort_unstable();
        let schema = self.pending[0].batch.schema();
        let indices: Vec<(usize, usize)> = picked.iter().map(|&(.., b, row)| (b, row)).collect();
        let columns: Vec<ArrayRef> = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = self
                    .pending
                    .iter()
                    .map(|p| p.batch.column(c).as_ref())
                    .collect();
                arrow_select::interleave::interleave(&arrays, &indices)
                    .expect("the batches of one stream share its schema")
            })
            .collect();
        let out = RecordBatch::try_new(schema, columns).expect("the stream's schema");
        // Keep what is left of each batch.
        let mut kept = Vec::with_capacity(self.pending.len());
        for p in self.pending.drain(..) {
            let n = p.times.partition_point(|&t| t < watermark);
            if n < p.batch.num_rows() {
                let rest = p.batch.num_rows() - n;
                kept.push(Pending {
                    batch: p.batch.slice(n, rest),
                    times: p.times[n..].into(),
                    origin: p.origin,
                    seq: p.seq,
                });
            }
        }
        self.pending = kept;
        self.rows -= out.num_rows();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("V", DataType::Int64, true),
            Field::new(
                "ROWTIME",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
            ],
        )
        .unwrap()
    }

    fn values(b: &RecordBatch) -> Vec<i64> {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn rows_come_out_in_rowtime_then_source_order_once_the_watermark_passes() {
        let mut o = Ordered::new(1);
        o.push(batch(&[(10, 1), (20, 2), (30, 3)]), 1);
        o.push(batch(&[(5, 4), (20, 5), (40, 6)]), 0);
        o.push(batch(&[(20, 7)]), 1);
        assert_eq!(o.rows(), 7);
        assert!(o.release(5).is_none());
        // ROWTIME 20 ties: source 0 first, then source 1's in push order.
        assert_eq!(values(&o.release(21).unwrap()), vec![4, 1, 5, 2, 7]);
        assert_eq!(o.rows(), 2);
        assert!(o.release(21).is_none());
        assert_eq!(values(&o.release(i64::MAX).unwrap()), vec![3, 6]);
        assert_eq!(o.rows(), 0);
        assert!(o.release(i64::MAX).is_none());
    }

    #[test]
    fn a_row_at_the_watermark_waits() {
        let mut o = Ordered::new(1);
        o.push(batch(&[(10, 1), (10, 2)]), 0);
        assert!(o.release(10).is_none());
        assert_eq!(values(&o.release(11).unwrap()), vec![1, 2]);
    }
}
