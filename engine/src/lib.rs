//! riffle-engine: the Riffle server engine.
//!
//! One executor per core ([`rt`], the only module that names glommio). Every
//! Kinesis shard is owned by one core; only that core's pump ([`pump`]) appends to
//! it. The control plane ([`control`]) runs on core 0 and persists the catalog.
//! [`Engine`] is the Rust API the network gateways and the services call; it is
//! `Send + Sync` and reaches cores over bounded channels. The HTTP gateway
//! ([`http`]) serves AWS-shaped services ([`http::Service`]); Kinesis Data
//! Streams' is [`kinesis::KinesisService`].

pub mod allow;
pub mod api;
pub mod audit;
pub mod cloudwatch;
pub mod config;
pub mod control;
pub mod core;
pub mod engine_metrics;
pub mod http;
pub mod join;
pub mod kinesis;
pub mod kms;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod pump;
pub mod rt;
pub mod secret;
pub mod stream_metrics;
pub mod syncer;
pub mod throttle;

pub use api::{
    ChildShard, Engine, GetRecordsOutput, PutRecordsEntry, PutResult, Record, ShardDescription,
    ShardOpened, StreamDescription,
};
pub use config::{Durability, EngineConfig};
pub use join::join_all;
