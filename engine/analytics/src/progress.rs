//! A running application's checkpoint (docs/analytics.md, "Checkpoints and
//! restarts"): what a later run needs to go on where this one was, without
//! losing or repeating output. Pure: the durable shape (kept in the
//! application's metadata, `App::progress`) and the rules a resumed run
//! follows, unit-tested here; the runtime (`run/`) takes and uses them.
//!
//! A checkpoint is taken by the home task after it wrote everything the
//! messages before it made. It holds:
//! - per source shard, the offset up to which every record was processed and
//!   its per-row output written (`next`);
//! - the home watermark: every window (and every row a sliding or ORDER BY
//!   pump releases) that it closed was written;
//! - when the rows written after it began (`scan_from_ms`).
//!
//! A resumed run does not restore window state: it reads each shard again
//! from the replay horizon ([`Progress::replay_from_ms`], the watermark less
//! the spans of the code's windows), so the windows open at the checkpoint
//! are rebuilt from the same rows (ROWTIME is the stored arrival). Records
//! before `next` are read *quietly*: they feed windows, but their per-row
//! output, already written, is not written again. Closed-window rows the
//! checkpoint covers ([`Progress::closed_before`]) are not written again; the
//! rows written between the checkpoint and the stop are found by their
//! partition keys in the destination and skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::ROWS_REPLAY_MS;
use crate::plan::{AppPlan, Frame, PumpKind};

/// Where a run is, as its last checkpoint says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The run (`App::runs`) that wrote it.
    pub run: u64,
    /// The run whose Start (NOW or TRIM_HORIZON) began this line of runs:
    /// resumed runs keep it. It is part of every output partition key, so
    /// keys of another line never match.
    pub epoch: u64,
    /// The input stream's id (a stream deleted and made again under its
    /// name is another; 0: not known).
    #[serde(default)]
    pub stream_id: u64,

    pub taken_ms: i64,
    /// Every output row written after this checkpoint was written at or
    /// after this time (the destination is searched from there on resume).
    pub scan_from_ms: i64,
    /// The home watermark (`i64::MIN`: none yet).
    pub watermark_ms: i64,
    /// Per source shard (by index).
    pub shards: BTreeMap<u32, ShardProgress>,
    /// Per output id: error rows written.
    pub error_rows: BTreeMap<String, u64>,
}

/// One source shard's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardProgress {
    /// The first offset of the line of runs in this shard: a replay never
    /// reads before it (NOW's position at Start).
    pub from: u64,
    /// Every record before this offset was processed, and its per-row output
    /// written.
    pub next: u64,
    /// The shard was read to its end.
    pub ended: bool,
}

impl Progress {
    /// A new line of runs: nothing processed, `from` per shard.
    pub fn fresh(run: u64, now_ms: i64, from: impl IntoIterator<Item = (u32, u64)>) -> Progress {
        Progress {
            run,
            epoch: run,
            stream_id: 0,
            taken_ms: now_ms,
            scan_from_ms: now_ms,
            watermark_ms: i64::MIN,
            shards: from
                .into_iter()
                .map(|(s, from)| {
                    let p = ShardProgress {
                        from,
                        next: from,
                        ..ShardProgress::default()
                    };
                    (s, p)
                })
                .collect(),
            error_rows: BTreeMap::new(),
        }
    }

    /// Where a resumed run reads each shard again from (by arrival time):
    /// early enough that every window open at the checkpoint, and every
    /// window feeding one, is rebuilt whole. Each windowed pump adds its
    /// span (a chain of windows needs the sum); a `ROWS` frame, which has no
    /// span in time, adds [`ROWS_REPLAY_MS`].
    pub fn replay_from_ms(&self, plan: &AppPlan) -> i64 {
        if self.watermark_ms == i64::MIN {
            return i64::MIN;
        }
        let span: i64 = plan
            .pumps
            .iter()
            .map(|p| match &p.kind {
                PumpKind::Map { .. } => 0,
                PumpKind::Tumbling(t) => t.width_ms,
                PumpKind::Stagger(t) => t.width_ms,
                PumpKind::Sort(t) => t.bucket_ms,
                // A pair's earlier row is within the longer window of the
                // later; a LEFT row's match (which decides whether it is
                // written unmatched, after its own window) within both.
                PumpKind::StreamJoin(t) if t.left_outer => {
                    t.left_window_ms.saturating_add(t.right_window_ms)
                }
                PumpKind::StreamJoin(t) => t.left_window_ms.max(t.right_window_ms),
                PumpKind::Sliding(t) => (t.windows.iter())
                    .map(|w| match w.frame {
                        Frame::Range { ms } => ms,
                        Frame::Rows { .. } => ROWS_REPLAY_MS,
                    })
                    .max()
                    .unwrap_or(0),
            })
            .fold(0i64, |a, b| a.saturating_add(b.max(0)));
        self.watermark_ms.saturating_sub(span).saturating_sub(1)
    }

    /// Whether a row of pump `pump`'s closed output (a window's row, or a
    /// row a sliding or ORDER BY pump released, or a row made from one) with
    /// ROWTIME `rowtime_ms` was released before this checkpoint: each
    /// kind's own closing rule at the checkpoint's watermark.
    pub fn closed_before(&self, plan: &AppPlan, pump: usize, rowtime_ms: i64) -> bool {
        let w = self.watermark_ms;
        match plan.pumps.get(pump).map(|p| &p.kind) {
            // A window's row has its end as ROWTIME; it closes at end ≤ W.
            Some(PumpKind::Tumbling(_) | PumpKind::Stagger(_)) => rowtime_ms <= w,
            // A row is released once the watermark is past it (a join's
            // unmatched row once it is past the row's window's end).
            Some(PumpKind::Sliding(_) | PumpKind::StreamJoin(_)) => rowtime_ms < w,
            // A bucket is released once the watermark reaches its end.
            Some(PumpKind::Sort(t)) => {
                let width = t.bucket_ms.max(1);
                let start = rowtime_ms - rowtime_ms.rem_euclid(width);
                start.saturating_add(width) <= w
            }
            Some(PumpKind::Map { .. }) | None => false,
        }
    }

    /// Whether a resumed run has caught up with this checkpoint: its home
    /// watermark reached the checkpoint's and every shard here was read past
    /// its `next` (`read`: each shard's offset now). Until then, a new
    /// checkpoint would say less than this one.
    pub fn caught_up(&self, watermark_ms: i64, read: &BTreeMap<u32, u64>) -> bool {
        watermark_ms >= self.watermark_ms
            && self.shards.iter().all(|(s, p)| {
                p.ended || p.next == p.from || read.get(s).is_some_and(|&n| n >= p.next)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Catalog;
    use crate::plan::tests::{column, planned};

    fn plan(code: &str) -> AppPlan {
        let catalog = Catalog {
            inputs: vec![(
                "SOURCE_SQL_STREAM_001".to_string(),
                vec![column("k", "VARCHAR(8)"), column("v", "INTEGER")],
            )],
            reference_tables: Vec::new(),
        };
        planned(code, &catalog).expect("plans")
    }

    const TUMBLE: &str = r#"
        CREATE OR REPLACE STREAM "C" ("k" VARCHAR(8), "n" INTEGER);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "C"
          SELECT STREAM "k", COUNT(*) FROM "SOURCE_SQL_STREAM_001"
          GROUP BY "k", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);
        CREATE OR REPLACE STREAM "D" ("k" VARCHAR(8), "n" INTEGER);
        CREATE OR REPLACE PUMP "Q" AS INSERT INTO "D"
          SELECT STREAM "k", SUM("n") FROM "C"
          GROUP BY "k", STEP("C".ROWTIME BY INTERVAL '60' SECOND);
        CREATE OR REPLACE STREAM "S" ("k" VARCHAR(8), "n" INTEGER);
        CREATE OR REPLACE PUMP "R" AS INSERT INTO "S"
          SELECT STREAM "k", COUNT(*) OVER (PARTITION BY "k" RANGE INTERVAL '5' SECOND PRECEDING)
          FROM "SOURCE_SQL_STREAM_001";
    "#;

    #[test]
    fn the_replay_horizon_is_the_watermark_less_every_windows_span() {
        let plan = plan(TUMBLE);
        let mut p = Progress::fresh(1, 0, [(0, 0)]);
        assert_eq!(
            p.replay_from_ms(&plan),
            i64::MIN,
            "no watermark: from the start"
        );
        p.watermark_ms = 1_000_000;
        assert_eq!(p.replay_from_ms(&plan), 1_000_000 - 75_000 - 1);
    }

    #[test]
    fn closed_rows_follow_each_kinds_closing_rule() {
        let plan = plan(TUMBLE);
        let pump = |name: &str| plan.pumps.iter().position(|p| p.name == name).unwrap();
        let (tumbling, sliding) = (pump("P"), pump("R"));
        let mut p = Progress::fresh(1, 0, [(0, 0)]);
        p.watermark_ms = 20_000;
        // Tumbling: a window ending at the watermark was closed.
        assert!(p.closed_before(&plan, tumbling, 20_000));
        assert!(!p.closed_before(&plan, tumbling, 20_001));
        // Sliding: a row at the watermark was not yet released.
        assert!(p.closed_before(&plan, sliding, 19_999));
        assert!(!p.closed_before(&plan, sliding, 20_000));
        // Not a pump of the plan: never.
        assert!(!p.closed_before(&plan, 9, 0));
    }

    #[test]
    fn a_resumed_run_catches_up_once_past_every_shard_and_the_watermark() {
        let mut p = Progress::fresh(1, 0, [(0, 5), (1, 7)]);
        p.shards.get_mut(&0).unwrap().next = 50;
        p.shards.get_mut(&1).unwrap().ended = true;
        p.watermark_ms = 100;
        let read = |n| BTreeMap::from([(0u32, n)]);
        assert!(!p.caught_up(100, &read(49)));
        assert!(!p.caught_up(99, &read(50)));
        assert!(
            p.caught_up(100, &read(50)),
            "an ended shard is not waited for"
        );
        // Nor one of which nothing was processed.
        let untouched = ShardProgress {
            from: 9,
            next: 9,
            ..ShardProgress::default()
        };
        p.shards.insert(2, untouched);
        assert!(p.caught_up(100, &read(50)));
    }
}
