//! The engine's own metrics, per core (`riffle_engine_*` at `GET /metrics`):
//! what is queued (the core's inbox, its shards' pumps), how long
//! fdatasyncs take, the bytes the pumps write, and how many shards and
//! segments the core holds.
//!
//! Counters and the sync histogram are atomic adds where the work happens
//! (a pump after a group's writes, a syncer after a sync: the core's
//! [`current`] set); the gauges of what a core holds are counted by the core
//! itself once a second ([`CoreMetrics::recount`]), and the inbox's depth is
//! read from its channel when scraped.

use std::cell::RefCell;
use std::sync::Arc;

use crate::Engine;
use crate::metrics::{Collector, Count, DescriptorEncoder, Durations, Level, Values, encode};

/// One core's metrics.
#[derive(Debug, Default)]
pub struct CoreMetrics {
    /// Each fdatasync of a shard's segment.
    pub fsync: Durations,
    /// Bytes the core's pumps wrote to segments (frames and padding; the
    /// last block of a group, rewritten by the next group, counts again).
    pub bytes_written: Count,
    /// Group commits the core's pumps wrote.
    pub groups: Count,
    /// Shards the core holds (open and closed), counted each second.
    pub shards: Level,
    /// Segments of those shards, counted each second.
    pub segments: Level,
    /// Appends queued to the core's pumps, counted each second.
    pub pump_queued: Level,
    /// The core's shards' own counters (Kinesis's shard-level metrics), by
    /// (stream id, shard index); registered when a shard opens here.
    pub shard_counters:
        std::sync::Mutex<std::collections::BTreeMap<(u64, u32), Arc<ShardCounters>>>,
}

/// One shard's counters, CloudWatch's shard-level metrics (written only for
/// the metrics EnableEnhancedMonitoring names). Updated by the owning core.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Records admitted to the shard and their data bytes.
    pub incoming_records: Count,
    pub incoming_bytes: Count,
    /// Records served by reads and their data bytes.
    pub outgoing_records: Count,
    pub outgoing_bytes: Count,
    /// Records and reads the shard limits refused.
    pub write_exceeded: Count,
    pub read_exceeded: Count,
    /// The age of the last record of the last read that served any, in ms.
    pub iterator_age_ms: Level,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<CoreMetrics>>> = const { RefCell::new(None) };
}

/// Makes `metrics` the running core's (its pumps and syncers record there).
pub fn set_current(metrics: Arc<CoreMetrics>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(metrics));
}

/// The running core's metrics, if it has any (an engine's core does; a test
/// running a pump alone does not).
pub fn current() -> Option<Arc<CoreMetrics>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `GET /metrics`' collector of the engine's metrics.
#[derive(Debug)]
pub struct EngineMetrics {
    engine: Engine,
}

impl EngineMetrics {
    pub fn new(engine: Engine) -> EngineMetrics {
        EngineMetrics { engine }
    }
}

type Core<'a> = [(&'static str, &'a str); 1];
/// A gauge of [`CoreMetrics`]: its name, help and field.
type Gauge = (&'static str, &'static str, fn(&CoreMetrics) -> &Level);

impl Collector for EngineMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cores = self.engine.core_metrics();
        let names: Vec<String> = (0..cores.len()).map(|i| i.to_string()).collect();
        let label = |i: usize| -> Core<'_> { [("core", names[i].as_str())] };
        let inbox = self.engine.inbox_depths();
        encode(
            &mut encoder,
            "inbox_depth",
            "Messages queued in the core's inbox",
            Values::Gauge(
                inbox
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (label(i), *n as u64))
                    .collect(),
            ),
        )?;
        let gauges: [Gauge; 3] = [
            (
                "pump_queue_depth",
                "Appends queued to the core's shard pumps",
                |m| &m.pump_queued,
            ),
            ("shards", "Shards the core holds", |m| &m.shards),
            ("segments", "Segment files of the core's shards", |m| {
                &m.segments
            }),
        ];
        for (name, help, pick) in gauges {
            encode(
                &mut encoder,
                name,
                help,
                Values::Gauge(
                    cores
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (label(i), pick(m).get()))
                        .collect(),
                ),
            )?;
        }
        encode(
            &mut encoder,
            "bytes_written",
            "Bytes the core's pumps wrote to segments",
            Values::Counter(
                cores
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (label(i), m.bytes_written.get()))
                    .collect(),
            ),
        )?;
        encode(
            &mut encoder,
            "group_commits",
            "Group commits the core's pumps wrote",
            Values::Counter(
                cores
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (label(i), m.groups.get()))
                    .collect(),
            ),
        )?;
        encode(
            &mut encoder,
            "fsync",
            "How long each fdatasync of a segment took",
            Values::Durations(
                cores
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (label(i), &m.fsync))
                    .collect(),
            ),
        )?;
        Ok(())
    }
}
