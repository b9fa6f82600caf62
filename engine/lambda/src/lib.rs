//! riffle-lambda: Lambda event-source mappings, stream records delivered to
//! HTTP functions as AWS Lambda delivers them to a Kinesis-triggered
//! function (docs/lambda.md says what is served; docs/lambda-design.md has
//! the design and its sources).
//!
//! Pure parts (no runtime, unit-tested):
//! - `config`: a mapping's members, defaults and the checks beyond the model;
//! - `function`: FunctionName → the URL invoked and the FunctionArn shown;
//! - `state`: the durable mappings and checkpoints (the metadata log's state machine);
//! - `event`: the body POSTed to a function: AWS's Kinesis event;
//! - `answer`: what a function's answer means: success, a function error
//!   (Lambda's error shape, the emulator's answers), or a partial batch
//!   failure (`ReportBatchItemFailures`) and where to resume;
//! - `batch`: one batch's retries, bisection, record age and discards;
//! - `failure`: the OnFailure invocation record;
//! - `filter`: FilterCriteria's patterns, compiled and matched.
//!
//! Runtime parts on `riffle_engine::rt`: `service` (the gateway's
//! `Service` and startup), `ops` (the five operations), `task` (per-shard
//! readers and invokers on the shards' owning cores), `metrics`.

pub mod answer;
pub mod batch;
pub mod config;
pub mod event;
pub mod failure;
pub mod filter;
pub mod function;
pub mod metrics;
mod ops;
pub mod service;
pub mod state;
#[cfg(test)]
mod state_tests;
mod task;

pub use service::{LambdaConfig, LambdaService};
