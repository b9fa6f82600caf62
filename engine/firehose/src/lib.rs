//! Riffle's Firehose (Amazon Data Firehose's API): delivery streams that take
//! records by Direct PUT or from a Kinesis stream, keep them durably in an
//! internal stream, process them, and deliver them exactly once per record to
//! an S3-shaped store, HTTP endpoints, OpenSearch, Splunk or PostgreSQL.
//!
//! Pure parts, runtime-free and unit-tested: `state` (the metadata's state
//! machine), `prefix` (the S3 prefix language), `destination` (configurations,
//! defaults, descriptions; `members`: what every kind shares), `object` (keys), `compress` (bodies in every
//! `CompressionFormat`), `conversion` (record format conversion to Parquet),
//! `processing` (the processors' configuration and the function contract),
//! `preprocess` (decompression, CloudWatch Logs, de-aggregation), `partition`
//! (dynamic partitioning: jq queries, partition keys, partitions' object
//! keys), `http_endpoint`, `opensearch`, `splunk`, `redshift` (those
//! destinations' configurations and wire contracts), `time` (calendar fields,
//! `CustomTimeZone`). Runtime parts on `riffle_engine::rt`: `service` (the
//! gateway's `Service`), `ops` and `puts` (the operations), `native` (the
//! native protocol's operations), `delivery` (per-shard delivery tasks),
//! `transform` (the processing run), `sink` (the embedded object store), `s3`
//! (an S3-compatible server), `workers` (threads for work off
//! the cores). docs/firehose.md says what is served.

pub mod compress;
pub mod conversion;
pub mod delivery;
pub mod destination;
/// The HTTP client (moved to the engine, shared with other services).
pub use riffle_engine::http::client as http_client;
pub mod http_endpoint;
mod members;
pub mod metrics;
pub mod native;
pub mod object;
pub mod opensearch;
mod ops;
pub mod partition;
pub mod prefix;
pub mod preprocess;
pub mod processing;
mod puts;
pub mod redshift;
pub mod s3;
pub mod service;
pub mod sink;
pub mod splunk;
pub mod state;
pub mod time;
pub mod transform;
pub mod workers;

#[cfg(test)]
mod state_tests;

pub use service::{FirehoseConfig, FirehoseService};
