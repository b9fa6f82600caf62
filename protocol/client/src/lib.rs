//! riffle-client: the client library of Riffle's native binary protocol
//! (`riffle_protocol::native`; docs/protocol.md).
//!
//! - [`Client`] — blocking, `std::net`: one pipelined connection shared by every
//!   clone and thread, per-request timeouts, lazy reconnect with backoff.
//! - [`AsyncClient`] — the same operations as `async fn`s over any
//!   `futures_io::AsyncRead + AsyncWrite` stream (glommio; tokio via
//!   tokio-util's compat), many concurrent calls from one thread, no runtime named.
//! - [`Producer`] — batching per shard, ordered retries, per-record results,
//!   and the KPL's features: aggregation, per-shard pacing, time to live, metrics.
//! - [`ConsumerGroup`] — a consumer group worker: shards shared with other
//!   workers through leases the server keeps (the KCL's model).
//! - [`Consumer`] — reads a shard from any position and follows its tip,
//!   de-aggregating aggregated records into user records; resumes from a
//!   [`Checkpoint`], also one inside an aggregated record.
//!
//! The client validates everything the server sends (frame bounds before
//! allocating, crc, every served batch) and answers a bad frame with
//! [`ClientError::Protocol`], never a panic. Sequence numbers are `u128`
//! (`riffle_protocol::seqno`); `riffle_protocol::seqno::to_string` gives the AWS form.
//!
//! Module map: `client` (blocking connection), `async_client`, `producer`,
//! `consumer`, `view` (in-place records, pre-encoded puts), `firehose` (Firehose's
//! PutRecordBatch and DescribeDeliveryStream on both clients), `group_ops`
//! (consumer groups' heartbeat, checkpoint, describe and leave on both
//! clients), `group` (`ConsumerGroup`: a worker with the KCL's record
//! processor lifecycle), `ops` (each operation's request and reply conversion,
//! shared by both clients), `frames` (cutting bytes into frames), `types`
//! (owned values), `error`, `config`.

mod async_client;
mod client;
mod config;
mod consumer;
mod error;
mod firehose;
mod frames;
mod group;
mod group_ops;
mod ops;
mod producer;
mod types;
mod view;

pub use async_client::{AsyncClient, AsyncSubscription};
pub use client::{Client, Subscription};
pub use config::{AsyncClientConfig, Backoff, ClientConfig, ClientTls, Credentials};
pub use consumer::{Consumer, ConsumerConfig};
pub use error::{ClientError, is_retryable_code};
pub use firehose::{FirehoseDescription, FirehosePutBatchResult, FirehoseRecordError};
pub use group::{
    Checkpointer, ConsumerGroup, GroupConfig, RecordProcessor, ShardStart, default_worker_id,
};
pub use group_ops::{GroupDescription, GroupLease};
pub use ops::RoutingTable;
pub use producer::{Producer, ProducerConfig, ProducerMetrics, RecordHandle, ShardRate};
pub use riffle_protocol::native::StartPosition;
pub use riffle_protocol::native::{HeldLease, InitialPosition, LeaseCheckpoint};
pub use riffle_protocol::{Error, ErrorCode};
pub use types::{
    Checkpoint, GetRecordsOutput, Put, PutRecordsEntry, PutRecordsResults, Record, ShardInfo,
    StreamDescription, SubscriptionEvent, continuation,
};
pub use view::RecordsView;

// The blocking types are shared across threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Client>();
    shared::<Producer>();
    shared::<ClientError>();
};
