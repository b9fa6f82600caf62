//! Engine settings, with the bounds the engine itself adds to `Limits`.

use std::path::PathBuf;
use std::sync::Arc;

use riffle_protocol::Limits;
use riffle_store::log::LogConfig;

/// When a put is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// After the batch is durable (fdatasync completed). The default.
    Fsync,
    /// After the write completed; a crash may lose acknowledged records.
    None,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Executor count; default: every available CPU.
    pub cores: usize,
    /// Pin executor i to CPU i.
    pub pin: bool,
    pub durability: Durability,
    pub limits: Limits,
    pub log: LogConfig,
    /// Requests queued per shard before producers wait (backpressure).
    pub shard_queue_max: usize,
    /// Requests queued per core inbox.
    pub core_inbox_max: usize,
    /// Bytes one write of the pump coalesces at most (group commit size).
    pub commit_bytes_max: usize,
    /// fdatasyncs in flight per shard.
    pub syncs_in_flight_max: usize,
    /// Catalog events between snapshots.
    pub catalog_snapshot_every: u32,
    /// How often retention runs.
    pub retention_interval_ms: u64,
    /// Secret for shard iterator tokens; when `None`, the one kept in
    /// `<data_dir>/iterator-secret` (made on first start), so iterators survive a
    /// restart for the rest of their five minutes.
    pub iterator_secret: Option<[u8; 32]>,
    /// How long a stream reports CREATING after CreateStream, UPDATING after a
    /// reshard or an encryption or capacity-mode change, and DELETING after
    /// DeleteStream (AWS takes seconds to minutes; 0: changes are ACTIVE or gone
    /// at once). A CREATING or DELETING stream takes no reads or writes, and a
    /// stream that is not ACTIVE cannot be resharded.
    pub state_delay_ms: u64,
    /// The 12-digit account id AWS-style messages name ("Stream s under account
    /// 000000000000 not found."); `riffle server --account` sets it.
    pub account: String,
    /// Per-shard throughput limits, enforced when set (`riffle server
    /// --shard-limits aws`: [`ShardLimits::aws`]); `None` (the default): no
    /// limits. Internal streams (a service's own, `firehose:<name>`) are
    /// never limited.
    pub shard_limits: Option<ShardLimits>,
    /// The KMS encryption at rest uses (`riffle server --kms-keyring`); `None`:
    /// no keyring, every KMS key is missing.
    pub kms: Option<std::sync::Arc<crate::kms::Kms>>,
}

/// Per-shard throughput limits: a put is refused while its shard owes a
/// second or more of writes, a GetRecords call while its shard owes a second
/// or more of reads (`crate::throttle`), with AWS's
/// ProvisionedThroughputExceededException. SubscribeToShard and the engine's
/// own readers (`Engine::read_at`, `Engine::follow_at`) are not metered.
#[derive(Clone, Debug)]
pub struct ShardLimits {
    /// Bytes put per second per shard, data and partition keys (AWS: 1 MiB).
    pub write_bytes_per_s: u64,
    /// Records put per second per shard (AWS: 1,000).
    pub write_records_per_s: u64,
    /// GetRecords calls per second per shard (AWS: 5).
    pub read_calls_per_s: u64,
    /// Bytes GetRecords serves per second per shard, data and partition keys
    /// (AWS: 2 MiB).
    pub read_bytes_per_s: u64,
    /// Where refusals are counted per stream: the cores add to it, the Kinesis
    /// metrics (`kinesis::metrics::KinesisMetrics`) read it. Clones share it;
    /// [`ShardLimits::aws`] makes a new one.
    pub refused: Arc<crate::throttle::Refusals>,
}

impl ShardLimits {
    /// AWS's limits for a provisioned-mode shard ("Kinesis Data Streams quotas
    /// and limits": writes up to 1 MiB and 1,000 records per second, reads up
    /// to 5 GetRecords calls and 2 MiB per second).
    pub fn aws() -> ShardLimits {
        ShardLimits {
            write_bytes_per_s: 1 << 20,
            write_records_per_s: 1000,
            read_calls_per_s: 5,
            read_bytes_per_s: 2 << 20,
            refused: Arc::default(),
        }
    }
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            cores: crate::rt::available_cores(),
            pin: true,
            durability: Durability::Fsync,
            limits: Limits::default(),
            log: LogConfig::default(),
            shard_queue_max: 1024,
            core_inbox_max: 4096,
            commit_bytes_max: 4 << 20,
            syncs_in_flight_max: 4,
            catalog_snapshot_every: 256,
            retention_interval_ms: 60_000,
            iterator_secret: None,
            state_delay_ms: 0,
            account: riffle_store::catalog::DEFAULT_ACCOUNT_ID.to_string(),
            shard_limits: None,
            kms: None,
        }
    }

    /// Checks the relations between settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.cores == 0 {
            return Err("cores must be at least 1".into());
        }
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid account {:?}: expected 12 digits",
                self.account
            ));
        }
        if let Some(l) = &self.shard_limits {
            for (name, v) in [
                ("write_bytes_per_s", l.write_bytes_per_s),
                ("write_records_per_s", l.write_records_per_s),
                ("read_calls_per_s", l.read_calls_per_s),
                ("read_bytes_per_s", l.read_bytes_per_s),
            ] {
                if v == 0 {
                    return Err(format!("shard_limits.{name} must be at least 1"));
                }
            }
        }
        // Unsynced bytes: one write being prepared plus one per sync in flight.
        let unsynced = (self.syncs_in_flight_max as u64 + 2)
            * (self.commit_bytes_max + self.limits.batch_size_max()) as u64;
        if unsynced > self.log.unsynced_bytes_max {
            return Err(format!(
                "commit_bytes_max x syncs_in_flight_max ({unsynced} bytes) exceeds log.unsynced_bytes_max ({})",
                self.log.unsynced_bytes_max
            ));
        }
        Ok(())
    }
}
