//! Running a plan: the pumps' operators, pure (no runtime): the per-core
//! and home-core tasks feed them batches and watermarks.

mod analytic;
pub mod join;
pub mod order;
pub mod pump;
pub mod sliding;
pub mod sort;
pub mod stagger;
pub mod stream_join;
pub mod tumbling;

#[cfg(test)]
mod golden;
