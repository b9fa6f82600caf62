//! riffle-groups: consumer groups, as the Kinesis Client Library (KCL) keeps
//! them in DynamoDB, kept by the server instead: one lease per shard (owner,
//! counter, checkpoint, parents) in a metadata log, handed out by one
//! coordinator so that a shard is processed by one worker at a time, children
//! after their parents. docs/consumers.md has the design.
//!
//! Modules: `state` (the lease table, durable: a `StateMachine`),
//! `coordinator` (the decisions, pure: liveness, balance, handover),
//! `service` (the runtime on core 0 and the native operations' extension).

pub mod coordinator;
pub mod service;
pub mod state;

pub use service::GroupsService;

#[cfg(test)]
mod state_tests;
