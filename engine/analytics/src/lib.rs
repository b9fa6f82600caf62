//! riffle-analytics: Kinesis Data Analytics for SQL applications run on
//! Riffle's own streams (docs/analytics.md says what is served;
//! docs/analytics-design.md has the design and its sources).
//!
//! Pure parts (no runtime, unit-tested):
//! - `sql`: the KDA dialect parsed (a token pre-pass, then sqlparser) into
//!   streams and pumps, with every error at its line and column;
//! - `schema`: the SQL column types and their Arrow forms;
//! - `config`: an application's parts in AWS's member names, and the checks
//!   AWS makes beyond its model;
//! - `state`: the durable applications (the metadata log's state machine);
//! - `progress`: a running application's checkpoint and the rules a
//!   resumed run follows;
//! - `limits`: the bounds, each with its source;
//! - `discover`: DiscoverInputSchema's inference from sample records;
//! - `expr`: typed expressions and their evaluation on Arrow arrays, with
//!   row errors instead of failed batches;
//! - `decode`: source records (JSON, CSV) into Arrow batches by the input
//!   schema, with KDA's coercion rules and a row-level error per bad row.
//!
//! Runtime parts on `riffle_engine::rt`: `service` (the gateway's `Service`
//! and startup), `ops` and `ops_parts` (the operations), `ops_discover`
//! (DiscoverInputSchema's samples).

pub mod config;
pub mod decode;
pub mod discover;
pub mod encode;
pub mod exec;
pub mod expr;
pub mod limits;
pub mod metrics;
pub(crate) mod objects;
mod ops;
mod ops_discover;
mod ops_parts;
mod plain;
pub mod plan;
pub mod progress;
mod run;
pub mod schema;
pub mod service;
pub mod sql;
pub mod state;
#[cfg(test)]
mod state_tests;

pub use service::{AnalyticsConfig, AnalyticsService, DeliveryPuts, ObjectReader};
