//! riffle-protocol: the formats Riffle shares between disk and wire.
//!
//! A pure codec crate: no I/O, no async, no clock reads. It owns the record batch
//! layout (the same bytes live in segment files and travel on the native wire), the
//! [`Limits`] every input is checked against before allocation, and the error codes
//! named after the AWS Kinesis exceptions, and the native binary protocol's frames
//! and messages ([`native`]).

pub mod batch;
pub mod error;
pub mod kpl;
pub mod le;
pub mod limits;
pub mod native;
pub mod routing;
pub mod seqno;
pub mod time;

pub use batch::{BatchBuilder, BatchError, BatchHeader, BatchView, RecordIn};
pub use error::{Error, ErrorCode};
pub use limits::Limits;
