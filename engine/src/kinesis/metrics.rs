//! Kinesis Data Streams' CloudWatch metrics (namespace `AWS/Kinesis`,
//! dimension `StreamName`) that Riffle keeps, written at each scrape as
//! `riffle_kinesis_<name>{stream=".."}` (names by `metrics::snake_name`):
//!
//! | CloudWatch | Prometheus | counts |
//! |---|---|---|
//! | `WriteProvisionedThroughputExceeded` | `riffle_kinesis_write_provisioned_throughput_exceeded_total` | records the shard limits refused (PutRecord, PutRecords, native puts) |
//! | `ReadProvisionedThroughputExceeded` | `riffle_kinesis_read_provisioned_throughput_exceeded_total` | GetRecords calls the shard limits refused |
//!
//! Both exist only while the engine enforces shard limits
//! (`EngineConfig::shard_limits`); then every stream has its series (0 until
//! something is refused), and a deleted stream's series go. The counts are
//! kept by the cores (`throttle::Refusals`, by stream id: a stream created
//! again starts from zero); this collector only reads them.

use crate::Engine;
use crate::metrics::{Collector, DescriptorEncoder, Values, encode, snake_name};

/// Kinesis's collector for the server's metrics registry (register it under
/// the prefix `kinesis`).
#[derive(Clone, Debug)]
pub struct KinesisMetrics {
    engine: Engine,
}

impl KinesisMetrics {
    pub fn new(engine: Engine) -> KinesisMetrics {
        KinesisMetrics { engine }
    }
}

impl Collector for KinesisMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(limits) = &self.engine.config().shard_limits else {
            return Ok(());
        };
        // The streams that exist now, with their incarnation's id.
        let live: Vec<(String, u64)> = self
            .engine
            .list_streams()
            .into_iter()
            .filter_map(|name| self.engine.stream_id(&name).ok().map(|id| (name, id)))
            .collect();
        let ids: Vec<u64> = live.iter().map(|(_, id)| *id).collect();
        let counts = limits.refused.counts(&ids);
        let series = |pick: fn(&(u64, u64)) -> u64| -> Vec<([(&str, &str); 1], u64)> {
            live.iter()
                .zip(&counts)
                .map(|((name, _), c)| ([("stream", name.as_str())], pick(c)))
                .collect()
        };
        for (cw, values) in [
            ("WriteProvisionedThroughputExceeded", series(|c| c.0)),
            ("ReadProvisionedThroughputExceeded", series(|c| c.1)),
        ] {
            encode(
                &mut encoder,
                &snake_name(cw),
                &format!("CloudWatch AWS/Kinesis {cw} (dimension StreamName)"),
                Values::Counter(values),
            )?;
        }
        Ok(())
    }
}
