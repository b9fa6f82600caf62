//! An application's code planned against its inputs (docs/analytics-design.md
//! §3, §5.2): every in-application stream with its columns, every pump with
//! its input, its typed expressions and its kind ([`PumpKind`]: a per-row
//! map, a sorted per-row pump, a tumbling, stagger or sliding window), in an
//! order where a pump comes after the pumps feeding its input.
//! The planner (`resolve`, `build`) refuses what cannot run, each refusal
//! naming the construct and its position (§3.6); the executor (`crate::exec`)
//! runs the plan.
//!
//! Row layouts:
//! - an input stream's batches are its columns, then `ROWTIME` and
//!   `APPROXIMATE_ARRIVAL_TIME` (the decoder's schema);
//! - a stream the code creates has its columns, then `ROWTIME`;
//! - a tumbling pump's group rows are the window's start (a TIMESTAMP), the
//!   other GROUP BY keys in order, then the aggregates in order
//!   ([`Tumbling::group_row_types`]); its select list and HAVING are
//!   expressions over group rows (a stagger pump's likewise);
//! - a sliding pump's extended rows are the rows it reads (with a join, the
//!   joined rows), then one column per aggregate ([`Sliding::items`]).

mod build;
mod resolve;
#[cfg(test)]
pub(crate) mod tests;

pub use build::plan;

use crate::expr::{Expr, Ty};
use crate::schema::SqlType;

/// The application's in-application streams and pumps, planned.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPlan {
    /// Inputs first (in the order of the catalog), then the code's streams
    /// in code order. A pump names its streams by index here.
    pub streams: Vec<StreamPlan>,
    /// In an order where every pump comes after those writing its input.
    pub pumps: Vec<PumpPlan>,
}

/// What an in-application stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// `SOURCE_SQL_STREAM_001`…: rows decoded from the application's input.
    Input,
    /// Created by the code with `CREATE STREAM`.
    Code,
}

/// An in-application stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPlan {
    pub name: String,
    pub kind: StreamKind,
    /// The declared columns, without the system columns.
    pub columns: Vec<ColumnPlan>,
}

impl StreamPlan {
    /// The index of `ROWTIME` in this stream's batches.
    pub fn rowtime(&self) -> usize {
        self.columns.len()
    }
}

/// A declared column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnPlan {
    pub name: String,
    pub ty: SqlType,
    pub not_null: bool,
}

/// A pump: `INSERT INTO target SELECT STREAM … FROM input …`.
#[derive(Clone, Debug, PartialEq)]
pub struct PumpPlan {
    pub name: String,
    /// Index into [`AppPlan::streams`].
    pub input: usize,
    /// Index into [`AppPlan::streams`]; always a [`StreamKind::Code`] stream.
    pub target: usize,
    /// `WHERE`, over the input's rows.
    pub filter: Option<Expr>,
    pub kind: PumpKind,
    /// For each target column, in the target's order: which select item
    /// fills it (`None`: NULL, for columns an INSERT column list leaves out).
    pub fills: Vec<Option<usize>>,
    /// A reference table joined to the input (`FROM s [LEFT] JOIN t ON
    /// …`): the pump then reads joined rows, the input's columns (system
    /// columns included) followed by the table's, and its filter, select
    /// list and windows are over those.
    pub join: Option<JoinPlan>,
}

/// A stream–reference-table join on equalities.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinPlan {
    /// The reference table's name.
    pub table: String,
    /// LEFT keeps input rows without a match (the table's columns NULL).
    pub left: bool,
    /// The ON equalities: each an expression over the input's rows and a
    /// column of the table (index among its columns).
    pub keys: Vec<(Expr, usize)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PumpKind {
    /// One row out per input row that passes the filter, with the input
    /// row's ROWTIME. `items` are over the input's rows.
    Map { items: Vec<Item> },
    /// A tumbling window (`GROUP BY …, STEP(ROWTIME BY …)`): one row out per
    /// group when the window closes, with ROWTIME the window's end.
    Tumbling(Tumbling),
    /// `WINDOWED BY STAGGER (PARTITION BY … RANGE INTERVAL …)`: a window per
    /// partition key opened by its first row; one row out per window when
    /// it closes, with ROWTIME the window's end.
    Stagger(Stagger),
    /// Aggregates `OVER` windows (sliding): one row out per input row, at
    /// once, with the input row's ROWTIME.
    Sliding(Sliding),
    /// A per-row pump with a streaming `ORDER BY`: its rows held per value
    /// of the leading ROWTIME expression and written sorted once the
    /// watermark passes that value's end.
    Sort(Sort),
    /// A windowed stream-to-stream join (`FROM a [OVER (…)] JOIN b OVER
    /// (RANGE … PRECEDING) ON …`): one row out per matching pair (and per
    /// unmatched input row for LEFT), with the later ROWTIME of the two.
    /// Its rows (and its filter and select list) are over the input's
    /// columns, then the other stream's declared columns.
    StreamJoin(StreamJoin),
}

/// A windowed stream-to-stream join's plan (exec/stream_join.rs has the
/// matching rule).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamJoin {
    /// The other stream (plan index), whose rows are joined.
    pub right: usize,
    /// The input's window (`RANGE … PRECEDING`) in ms; 0: CURRENT ROW.
    pub left_window_ms: i64,
    /// The other stream's window in ms; 0: CURRENT ROW.
    pub right_window_ms: i64,
    /// LEFT [OUTER] JOIN.
    pub left_outer: bool,
    /// The ON equalities: an expression over the input's rows and a column
    /// of the other stream (index among its declared columns).
    pub keys: Vec<(Expr, usize)>,
    /// The select list, over the joined rows.
    pub items: Vec<Item>,
}

/// A streaming `ORDER BY step(ROWTIME), key [DESC], …`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    /// The width of the leading `FLOOR(ROWTIME TO unit)` or
    /// `STEP(ROWTIME BY …)` in ms: rows sort within buckets of it.
    pub bucket_ms: i64,
    /// The index of ROWTIME in the input's rows.
    pub rowtime: usize,
    /// The other keys, over the input's rows, each descending or not.
    pub keys: Vec<(Expr, bool)>,
    /// The select list, over the input's rows.
    pub items: Vec<Item>,
}

impl PumpKind {
    /// Whether the pump needs every row of its input in ROWTIME order on
    /// one core (the home core): stagger and sliding windows, whose
    /// partitions are not the input's shards.
    pub fn ordered(&self) -> bool {
        matches!(
            self,
            PumpKind::Stagger(_)
                | PumpKind::Sliding(_)
                | PumpKind::Sort(_)
                | PumpKind::StreamJoin(_)
        )
    }
}

/// A stagger window's plan. Group rows are laid out as a tumbling window's:
/// the window's start (its first row's ROWTIME), the PARTITION BY keys,
/// the aggregates.
#[derive(Clone, Debug, PartialEq)]
pub struct Stagger {
    /// The window's length in ms: a window opened at `t0` holds the rows of
    /// its key with ROWTIME in `[t0, t0 + width)`.
    pub width_ms: i64,
    /// The index of ROWTIME in the input's rows.
    pub rowtime: usize,
    /// The PARTITION BY expressions, over the input's rows.
    pub keys: Vec<Expr>,
    /// The aggregates, over the input's rows.
    pub aggs: Vec<Agg>,
    /// The select list, over group rows.
    pub items: Vec<Item>,
    /// `HAVING`, over group rows.
    pub having: Option<Expr>,
}

impl Stagger {
    /// The types of a group row's columns: the window's start, the keys, the
    /// aggregates.
    pub fn group_row_types(&self) -> Vec<Ty> {
        std::iter::once(Ty::Time)
            .chain(self.keys.iter().map(|k| k.ty))
            .chain(self.aggs.iter().map(|a| a.ty))
            .collect()
    }
}

/// A sliding pump's plan: each input row (after WHERE) gets the value of
/// every aggregate over its window's frame, appended after the row's own
/// columns ("extended rows"); the select list is over extended rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Sliding {
    /// The index of ROWTIME in the input's rows.
    pub rowtime: usize,
    /// The windows the aggregates are over (named or written inline).
    pub windows: Vec<WindowSpec>,
    /// Each aggregate, with the window (index into `windows`) it is over;
    /// the analytic functions LAG and EXP_AVG among them (only here: the
    /// planner refuses them in tumbling and stagger windows).
    pub aggs: Vec<(usize, Agg)>,
    /// The select list, over extended rows: the input's columns (all of
    /// them, system columns included), then the aggregates in order.
    pub items: Vec<Item>,
}

/// `(PARTITION BY … RANGE INTERVAL … PRECEDING | ROWS n PRECEDING)`.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSpec {
    /// Over the input's rows; none: one partition.
    pub partition: Vec<Expr>,
    pub frame: Frame,
}

/// Which rows of its partition a row's aggregates see: always the row
/// itself and rows before it (in ROWTIME, then arrival order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `RANGE INTERVAL 'n' unit PRECEDING`: the rows with ROWTIME in
    /// `[ROWTIME - ms, ROWTIME]`.
    Range { ms: i64 },
    /// `ROWS n PRECEDING`: the row and the `n` rows before it.
    Rows { preceding: u64 },
}

/// A select item: its value and what it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub expr: Expr,
    /// When the item is a bare column of the input (or a group key that is
    /// one), its SQL type: a value of the target column's own type is then
    /// copied as it is (a DECIMAL stays exact, a DATE stays a DATE).
    pub column_type: Option<SqlType>,
}

/// A tumbling window's plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Tumbling {
    /// The window's width in ms: rows with ROWTIME in
    /// `[STEP(ROWTIME), STEP(ROWTIME) + width)` share a window.
    pub width_ms: i64,
    /// The index of ROWTIME in the input's rows.
    pub rowtime: usize,
    /// The GROUP BY keys other than the window, over the input's rows.
    pub keys: Vec<Expr>,
    /// The aggregates, over the input's rows.
    pub aggs: Vec<Agg>,
    /// The select list, over group rows.
    pub items: Vec<Item>,
    /// `HAVING`, over group rows.
    pub having: Option<Expr>,
    /// Set for the table functions made of a tumbling count per value:
    /// what a closed window's group rows become before the select list.
    pub top: Option<TopItems>,
}

/// `TOP_K_ITEMS_TUMBLING` and `COUNT_DISTINCT_ITEMS_TUMBLING`: a tumbling
/// window grouped by one column with `COUNT(*)` (group rows: start, value,
/// count), then, at close:
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopItems {
    /// the `k` groups with the highest counts, highest first, ties in the
    /// order of their first row (group rows kept as they are);
    MostFrequent { k: usize },
    /// one row: the window's start and its number of groups.
    DistinctCount,
}

impl Tumbling {
    /// The types of a group row's columns: the window's start, the keys, the
    /// aggregates.
    pub fn group_row_types(&self) -> Vec<Ty> {
        std::iter::once(Ty::Time)
            .chain(self.keys.iter().map(|k| k.ty))
            .chain(self.aggs.iter().map(|a| a.ty))
            .collect()
    }
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    /// `COUNT(*)`: the rows.
    CountRows,
    /// `COUNT(x)`: the rows where x is not NULL.
    Count,
    Sum,
    Min,
    Max,
    /// The sum over the count of the non-NULL values, in the argument's
    /// type (an integer average truncates toward zero).
    Avg,
    /// The value of the group's first row (by ROWTIME, then arrival order),
    /// NULL included.
    FirstValue,
    /// The value of the group's last row.
    LastValue,
    /// `VAR_POP(x)`: the population variance of the non-NULL values (a
    /// DOUBLE; NULL without values).
    VarPop,
    /// `VAR_SAMP(x)`: the sample variance (NULL with fewer than 2 values).
    VarSamp,
    /// `STDDEV_POP(x)`: the square root of VAR_POP.
    StddevPop,
    /// `STDDEV_SAMP(x)` (also `STD_DEV`, `STDDEV`): the square root of
    /// VAR_SAMP.
    StddevSamp,
    /// `LAG(x, offset [, default]) [IGNORE NULLS]`, sliding windows only:
    /// `x` of the `offset`-th row of the frame before the current row
    /// (counting only rows where `x` is not NULL when `ignore_nulls`); the
    /// aggregate's [`Agg::default`], else NULL, when the frame has no such
    /// row. A NULL read from that row stays NULL. Of `x`'s type.
    Lag {
        offset: u64,
        ignore_nulls: bool,
    },
    /// `EXP_AVG(x, INTERVAL …)`, sliding windows only: the average of the
    /// frame's non-NULL values weighted by `2^-(age / half_life_ms)`, age
    /// the current row's ROWTIME minus the value's row's. A DOUBLE (`x` cast
    /// to one); NULL without values.
    ExpAvg {
        half_life_ms: i64,
    },
}

/// An aggregate of a pump.
#[derive(Clone, Debug, PartialEq)]
pub struct Agg {
    pub func: AggFunc,
    /// The argument, over the input's rows (`None` for `COUNT(*)`).
    pub arg: Option<Expr>,
    /// The result's type: `Int` for the counts, `Float` for the variances,
    /// standard deviations and EXP_AVG, the argument's for the rest.
    pub ty: Ty,
    /// [`AggFunc::Lag`]'s default, over the input's rows (evaluated on the
    /// current row like the argument), in the aggregate's type; `None` for
    /// the other functions and a LAG without one.
    pub default: Option<Expr>,
}

/// What the planner knows of an input stream or a reference table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// The in-application input streams, by their exact names, with their
    /// columns as the input schema declares them.
    pub inputs: Vec<(String, Vec<ColumnPlan>)>,
    /// The reference tables, by their exact names, with their columns.
    pub reference_tables: Vec<(String, Vec<ColumnPlan>)>,
}

impl Catalog {
    /// What an application's configured input and reference tables give the
    /// planner: each in-application input stream (`<prefix>_001…`) with the
    /// input schema's columns. The schema was checked when it was stored.
    pub fn of(
        input: Option<&crate::config::InputConf>,
        references: &[crate::config::ReferenceConf],
    ) -> Catalog {
        let columns_of = |schema: &crate::config::SourceSchema| -> Vec<ColumnPlan> {
            schema
                .columns
                .iter()
                .filter_map(|c| {
                    Some(ColumnPlan {
                        name: c.name.clone(),
                        ty: SqlType::parse(&c.sql_type).ok()?,
                        not_null: false,
                    })
                })
                .collect()
        };
        let inputs = input
            .map(|i| {
                let columns = columns_of(&i.schema);
                i.stream_names()
                    .into_iter()
                    .map(|name| (name, columns.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Catalog {
            inputs,
            reference_tables: references
                .iter()
                .map(|r| (r.table_name.clone(), columns_of(&r.schema)))
                .collect(),
        }
    }
}
