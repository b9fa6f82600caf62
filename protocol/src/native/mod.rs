//! The native binary protocol: length-prefixed, crc-checked frames carrying
//! pipelined requests, out-of-order replies and subscription pushes. A pure
//! codec: the server (`engine/src/net/`) and the client (`riffle-client`) do the I/O.
//! docs/protocol.md describes every byte.

pub mod auth;
pub mod firehose;
pub mod frame;
pub mod groups;
pub mod messages;

pub use firehose::{FirehosePutBatch, FirehoseRecordResult};
pub use frame::{
    API_VERSION, Api, FRAME_HEADER_SIZE, FrameError, FrameHeader, flags, request_frame_size_max,
    response_frame_size_max,
};
pub use groups::{GROUP_NAME_CHARS_MAX, HeldLease, InitialPosition, LeaseCheckpoint, LeaseRow};
pub use messages::{
    BatchResult, Records, Reply, Request, Response, ShardBatch, ShardInfo, Span, StartPosition,
    StreamInfo, decode_reply, decode_request, encode_error, encode_push, encode_request,
    encode_response, frame_size,
};
