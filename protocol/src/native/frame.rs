//! Native protocol frames: the fixed header, crc, size bounds, and the cursor types
//! message codecs read and write fields with.
//!
//! Frame layout (all integers little-endian; offsets in bytes):
//! ```text
//!  0  frame_size   u32   whole frame, header included (24 ..= frame_size_max)
//!  4  crc32c       u32   over bytes [8, frame_size)
//!  8  api_key      u16   which operation (`Api`)
//! 10  api_version  u16   1
//! 12  flags        u16   bit 0 response, bit 1 error, bit 2 push, bit 3 end
//! 14  reserved     u16   0
//! 16  request_id   u64   chosen by the client; echoed by replies and pushes
//! 24  body         the message (see `messages.rs`)
//! ```
//! Batch blobs inside a body start on an 8-byte boundary counted from the frame's
//! first byte (zero padding before them), so a frame read into an 8-aligned buffer
//! serves its batches in place.

use crate::le::{u16_at, u32_at, u64_at};
use crate::limits::{BATCH_ALIGNMENT, Limits};

pub const FRAME_HEADER_SIZE: usize = 24;
pub const API_VERSION: u16 = 1;

/// Bits of the header's `flags`.
pub mod flags {
    /// Sent by the server in answer to a request.
    pub const RESPONSE: u16 = 1;
    /// The body is an error (code + message) instead of the operation's response.
    pub const ERROR: u16 = 2;
    /// A server-push frame of a subscription (request id = the Subscribe request's).
    pub const PUSH: u16 = 4;
    /// The last frame of a subscription.
    pub const END: u16 = 8;
    pub const KNOWN: u16 = RESPONSE | ERROR | PUSH | END;
}

/// The operations. The numbers are the wire format: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Api {
    Ping = 0,
    CreateStream = 1,
    DeleteStream = 2,
    DescribeStream = 3,
    ListStreams = 4,
    ListShards = 5,
    PutRecord = 6,
    PutRecords = 7,
    GetShardIterator = 8,
    GetRecords = 9,
    Subscribe = 10,
    Unsubscribe = 11,
    /// Firehose's PutRecordBatch (`firehose.rs`), served by a registered extension.
    FirehosePutRecordBatch = 12,
    /// Firehose's DescribeDeliveryStream (`firehose.rs`), served by a registered extension.
    FirehoseDescribe = 13,
    /// A consumer group's worker heartbeat (`groups.rs`), served by a registered extension.
    GroupHeartbeat = 14,
    /// A consumer group's checkpoint (`groups.rs`), served by a registered extension.
    GroupCheckpoint = 15,
    /// A consumer group's lease table (`groups.rs`), served by a registered extension.
    GroupDescribe = 16,
    /// A consumer group's worker leaving (`groups.rs`), served by a registered extension.
    GroupLeave = 17,
    /// A challenge to authenticate with (`auth.rs`).
    AuthChallenge = 18,
    /// The answer to a challenge: the connection's identity (`auth.rs`).
    Authenticate = 19,
}

impl Api {
    pub const ALL: [Api; 20] = [
        Api::Ping,
        Api::CreateStream,
        Api::DeleteStream,
        Api::DescribeStream,
        Api::ListStreams,
        Api::ListShards,
        Api::PutRecord,
        Api::PutRecords,
        Api::GetShardIterator,
        Api::GetRecords,
        Api::Subscribe,
        Api::Unsubscribe,
        Api::FirehosePutRecordBatch,
        Api::FirehoseDescribe,
        Api::GroupHeartbeat,
        Api::GroupCheckpoint,
        Api::GroupDescribe,
        Api::GroupLeave,
        Api::AuthChallenge,
        Api::Authenticate,
    ];

    pub fn from_u16(key: u16) -> Option<Api> {
        Api::ALL.get(key as usize).copied()
    }
}

/// The fixed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_size: u32,
    pub crc: u32,
    pub api_key: u16,
    pub api_version: u16,
    pub flags: u16,
    pub request_id: u64,
}

/// Why a frame was refused. `Incomplete` is not an error of the peer: read more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is incomplete: {have} bytes, need {need}")]
    Incomplete { have: usize, need: usize },
    #[error("frame size {size} is outside {min}..={max}")]
    BadSize { size: u32, min: u32, max: u32 },
    #[error("frame crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("unknown api key {0}")]
    UnknownApi(u16),
    #[error("unsupported api version {version} for api key {api_key} (supported: {API_VERSION})")]
    UnsupportedVersion { api_key: u16, version: u16 },
    #[error("bad frame flags {0:#06x}")]
    BadFlags(u16),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
}

impl FrameError {
    pub(crate) fn malformed(what: &'static str, why: impl Into<String>) -> FrameError {
        FrameError::Malformed {
            what,
            why: why.into(),
        }
    }
}

/// Largest request frame a server accepts: a PutRecords of `request_size_max`
/// bytes split into one batch per record (per-batch and per-record overhead).
/// With AWS's limits (the default) it also holds the largest FirehosePutRecordBatch
/// (`firehose::REQUEST_FRAME_SIZE_MAX`); a server configured below them
/// refuses Firehose calls past its bound too. It also holds a GroupHeartbeat
/// releasing `stream_shard_count_max` shards (`groups::heartbeat_request_size_max`).
pub fn request_frame_size_max(limits: &Limits) -> u32 {
    let size = (FRAME_HEADER_SIZE + 1024 + limits.batch_size_max()) as u64
        + limits.put_records_count_max as u64 * (crate::limits::BATCH_HEADER_SIZE as u64 + 32);
    size.min(u32::MAX as u64) as u32
}

/// Largest response frame a client accepts: GetRecords returns up to
/// `get_records_bytes_max` bytes of records, served as whole batches, so its first
/// and last batches may carry records outside the range (at most one batch each).
pub fn response_frame_size_max(limits: &Limits) -> u32 {
    let size = (FRAME_HEADER_SIZE + 64 * 1024) as u64
        + limits.get_records_bytes_max as u64
        + 2 * limits.batch_size_max() as u64
        + limits.get_records_count_max.min(1 << 16) as u64 * 32;
    size.min(u32::MAX as u64) as u32
}

impl FrameHeader {
    /// Parses the first [`FRAME_HEADER_SIZE`] bytes and checks the size against
    /// `frame_size_max`, before any buffer for the body exists.
    pub fn parse(bytes: &[u8], frame_size_max: u32) -> Result<FrameHeader, FrameError> {
        if bytes.len() < FRAME_HEADER_SIZE {
            return Err(FrameError::Incomplete {
                have: bytes.len(),
                need: FRAME_HEADER_SIZE,
            });
        }
        let header = FrameHeader {
            frame_size: u32_at(bytes, 0),
            crc: u32_at(bytes, 4),
            api_key: u16_at(bytes, 8),
            api_version: u16_at(bytes, 10),
            flags: u16_at(bytes, 12),
            request_id: u64_at(bytes, 16),
        };
        if header.frame_size < FRAME_HEADER_SIZE as u32 || header.frame_size > frame_size_max {
            return Err(FrameError::BadSize {
                size: header.frame_size,
                min: FRAME_HEADER_SIZE as u32,
                max: frame_size_max,
            });
        }
        Ok(header)
    }

    /// Checks what the crc, api key, version and flags say about a whole frame.
    /// The frame's boundaries are known, so a reader may answer with an error
    /// and carry on with the next frame.
    pub fn check(&self, frame: &[u8]) -> Result<Api, FrameError> {
        let size = self.frame_size as usize;
        if frame.len() < size {
            return Err(FrameError::Incomplete {
                have: frame.len(),
                need: size,
            });
        }
        let computed = crc32c::crc32c(&frame[8..size]);
        if computed != self.crc {
            return Err(FrameError::BadCrc {
                stored: self.crc,
                computed,
            });
        }
        if self.flags & !flags::KNOWN != 0 || u16_at(frame, 14) != 0 {
            return Err(FrameError::BadFlags(self.flags));
        }
        let api = Api::from_u16(self.api_key).ok_or(FrameError::UnknownApi(self.api_key))?;
        if self.api_version != API_VERSION {
            return Err(FrameError::UnsupportedVersion {
                api_key: self.api_key,
                version: self.api_version,
            });
        }
        Ok(api)
    }
}

/// Writes a frame: reserve the header, append the body, then [`FrameWriter::finish`]
/// fills size and crc. Appends to any `Vec<u8>`-like buffer.
pub struct FrameWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
}

impl<'o> FrameWriter<'o> {
    /// Starts a frame at the end of `out`. `out`'s length must be a multiple of
    /// 8 so that batch padding (counted from the frame's start) holds in memory.
    pub fn begin(out: &'o mut Vec<u8>, api: Api, flags: u16, request_id: u64) -> FrameWriter<'o> {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(api as u16).to_le_bytes());
        out.extend_from_slice(&API_VERSION.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&request_id.to_le_bytes());
        FrameWriter { out, start }
    }

    fn pos(&self) -> usize {
        self.out.len() - self.start
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    /// A string: u16 byte length, UTF-8 bytes. Panics over 65,535 bytes (every
    /// string the protocol carries is bounded far below by `Limits`).
    pub fn str(&mut self, s: &str) {
        self.u16(u16::try_from(s.len()).expect("protocol strings are < 64 KiB"));
        self.out.extend_from_slice(s.as_bytes());
    }
    /// A byte string: u32 length, the bytes (no padding).
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.u32(u32::try_from(bytes.len()).expect("frames are < 4 GiB"));
        self.out.extend_from_slice(bytes);
    }
    /// A batch blob: u32 length, zero padding to an 8-byte frame offset, the bytes.
    pub fn batch(&mut self, bytes: &[u8]) {
        self.u32(bytes.len() as u32);
        let pad = self.pos().next_multiple_of(BATCH_ALIGNMENT) - self.pos();
        self.out.extend_from_slice(&[0; BATCH_ALIGNMENT][..pad]);
        self.out.extend_from_slice(bytes);
    }

    /// Fills in size and crc; returns the frame's length.
    pub fn finish(self) -> usize {
        let size = self.pos();
        let frame = &mut self.out[self.start..];
        frame[0..4].copy_from_slice(&(size as u32).to_le_bytes());
        let crc = crc32c::crc32c(&frame[8..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        size
    }
}

/// Reads a body's fields, each bounds-checked; counts are checked against the
/// bytes left before anything is allocated for them.
pub struct FrameReader<'a> {
    frame: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> FrameReader<'a> {
    /// Reads the body of `frame` (a whole frame, header included, already checked).
    pub fn new(frame: &'a [u8], what: &'static str) -> FrameReader<'a> {
        FrameReader {
            frame,
            pos: FRAME_HEADER_SIZE,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.frame.len() - self.pos < n {
            return Err(FrameError::malformed(
                self.what,
                format!(
                    "body ends at byte {} but a field needs {n} bytes at {}",
                    self.frame.len(),
                    self.pos
                ),
            ));
        }
        let s = &self.frame[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16_at(self.take(2)?, 0))
    }
    pub fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32_at(self.take(4)?, 0))
    }
    pub fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64_at(self.take(8)?, 0))
    }
    pub fn i64(&mut self) -> Result<i64, FrameError> {
        Ok(self.u64()? as i64)
    }
    pub fn u128(&mut self) -> Result<u128, FrameError> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().unwrap()))
    }
    /// A string of at most `chars_max` characters.
    pub fn str(&mut self, field: &str, chars_max: u32) -> Result<&'a str, FrameError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| FrameError::malformed(self.what, format!("{field} is not UTF-8")))?;
        // A char is at most 4 bytes: check the cheap bound before counting.
        if len > chars_max as usize * 4 || s.chars().count() > chars_max as usize {
            return Err(FrameError::malformed(
                self.what,
                format!("{field} is longer than {chars_max} characters"),
            ));
        }
        Ok(s)
    }
    /// A byte string (u32 length, the bytes) of at most `size_max` bytes.
    pub fn bytes(&mut self, field: &str, size_max: usize) -> Result<&'a [u8], FrameError> {
        let len = self.u32()? as usize;
        if len > size_max {
            return Err(FrameError::malformed(
                self.what,
                format!("{field} of {len} bytes exceeds {size_max}"),
            ));
        }
        self.take(len)
    }
    /// Text as a byte string (u32 length, UTF-8) of at most `size_max` bytes.
    pub fn text(&mut self, field: &str, size_max: usize) -> Result<&'a str, FrameError> {
        let bytes = self.bytes(field, size_max)?;
        std::str::from_utf8(bytes)
            .map_err(|_| FrameError::malformed(self.what, format!("{field} is not UTF-8")))
    }
    /// A batch blob of at most `size_max` bytes.
    pub fn batch(&mut self, size_max: usize) -> Result<&'a [u8], FrameError> {
        let len = self.u32()? as usize;
        if len > size_max {
            return Err(FrameError::malformed(
                self.what,
                format!("batch of {len} bytes exceeds {size_max}"),
            ));
        }
        let pad = self.pos.next_multiple_of(BATCH_ALIGNMENT) - self.pos;
        if self.take(pad)?.iter().any(|&b| b != 0) {
            return Err(FrameError::malformed(self.what, "nonzero batch padding"));
        }
        self.take(len)
    }
    /// A u32 element count, at most `count_max`, each element at least
    /// `element_size_min` bytes (so a count can never promise more than the body has).
    pub fn count(
        &mut self,
        field: &str,
        count_max: u32,
        element_size_min: usize,
    ) -> Result<usize, FrameError> {
        let count = self.u32()?;
        if count > count_max {
            return Err(FrameError::malformed(
                self.what,
                format!("{field} has {count} entries, more than {count_max}"),
            ));
        }
        let left = self.frame.len() - self.pos;
        if count as usize * element_size_min > left {
            return Err(FrameError::malformed(
                self.what,
                format!("{field} claims {count} entries but only {left} bytes follow"),
            ));
        }
        Ok(count as usize)
    }
    /// Fails unless every byte of the body was read.
    pub fn end(self) -> Result<(), FrameError> {
        if self.pos != self.frame.len() {
            return Err(FrameError::malformed(
                self.what,
                format!("{} trailing bytes", self.frame.len() - self.pos),
            ));
        }
        Ok(())
    }
}
