//! Running a plan: the pumps' operators, pure (no runtime): the per-core
//! and home-core tasks feed them batches and watermarks.

pub mod pump;
pub mod tumbling;

#[cfg(test)]
mod golden;
