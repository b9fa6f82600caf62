//! riffle-lambda: Lambda event-source mappings, stream records delivered to
//! HTTP functions as AWS Lambda delivers them to a Kinesis-triggered
//! function (docs/lambda-design.md has the design).
//!
//! In progress: this crate so far holds the invocation contract, pure and
//! tested, which the mapping service (API, durable state, shard tasks; not
//! built yet, not wired into the server) will use:
//! - `event`: the body POSTed to a function: AWS's Kinesis event.
//! - `answer`: what a function's answer means: success, a function error
//!   (Lambda's error shape, the emulator's answers), or a partial batch
//!   failure (`ReportBatchItemFailures`) and where to resume.
//! - `filter`: FilterCriteria's patterns, compiled and matched.

pub mod answer;
pub mod event;
pub mod filter;
