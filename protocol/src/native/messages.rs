//! Native protocol messages: every request, response and push body, with its
//! encoder and decoder. Decoded messages borrow from the frame (strings and
//! batches are never copied); every length and count is checked against `Limits`
//! and against the bytes present before anything is allocated.
//!
//! Field notation used in the docs below: `str` = u16 length + UTF-8 bytes,
//! `batch` = u32 length + zero padding to an 8-byte frame offset + a record batch
//! (`batch.rs` layout), `[T]` = u32 count + that many `T`, `opt T` = u8 0|1 + T.
//! docs/protocol.md has the byte diagrams.

use crate::error::{Error, ErrorCode};
use crate::limits::{BATCH_HEADER_SIZE, Limits};

use super::auth;
use super::firehose::{self, FirehosePutBatch};
use super::frame::{Api, FRAME_HEADER_SIZE, FrameError, FrameHeader, FrameReader, FrameWriter};
use super::frame::{flags, request_frame_size_max, response_frame_size_max};
use super::groups::{self, HeldLease, InitialPosition, LeaseCheckpoint, LeaseRow};

/// Where an iterator or a subscription starts.
/// Wire: u8 kind (0 trim horizon, 1 latest, 2 at seq, 3 after seq, 4 at time),
/// then u128 sequence number for kinds 2 and 3, i64 ms since the epoch for kind 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPosition {
    TrimHorizon,
    Latest,
    AtSequenceNumber(u128),
    AfterSequenceNumber(u128),
    AtTimestamp(i64),
}

/// The records for one shard inside a PutRecords request.
/// Wire: u32 shard_index, batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardBatch<'a> {
    pub shard_index: u32,
    pub batch: &'a [u8],
}

/// A request body. Wire layouts per variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// u64 nonce.
    Ping { nonce: u64 },
    /// str stream, u32 shard_count.
    CreateStream { stream: &'a str, shard_count: u32 },
    /// str stream.
    DeleteStream { stream: &'a str },
    /// str stream.
    DescribeStream { stream: &'a str },
    /// Empty body.
    ListStreams,
    /// str stream.
    ListShards { stream: &'a str },
    /// str stream, batch of exactly one record; the server routes it by its
    /// partition key (or explicit hash key).
    PutRecord { stream: &'a str, batch: &'a [u8] },
    /// str stream, u64 stream_id, [ShardBatch]: the client routed the records
    /// with the shard list of stream incarnation `stream_id` (from ListShards; 0:
    /// do not check); one batch per shard, at most `put_records_count_max` records
    /// in all. When the stream was deleted and created again since, nothing is
    /// appended and the request fails with ResourceNotFound.
    PutRecords {
        stream: &'a str,
        stream_id: u64,
        batches: Vec<ShardBatch<'a>>,
    },
    /// str stream, u32 shard_index, StartPosition.
    GetShardIterator {
        stream: &'a str,
        shard_index: u32,
        position: StartPosition,
    },
    /// str iterator, u32 limit (0 = the default, `get_records_count_max`).
    GetRecords { iterator: &'a str, limit: u32 },
    /// str stream, u32 shard_index, StartPosition. Answered by `Subscribed`, then
    /// push frames carrying this request's id until `END` or `Unsubscribe`.
    Subscribe {
        stream: &'a str,
        shard_index: u32,
        position: StartPosition,
    },
    /// u64 subscription_id (the Subscribe request's id).
    Unsubscribe { subscription_id: u64 },
    /// str delivery_stream, [bytes]: Firehose's PutRecordBatch (`firehose.rs`).
    FirehosePutRecordBatch {
        delivery_stream: &'a str,
        records: Vec<&'a [u8]>,
    },
    /// str delivery_stream: Firehose's DescribeDeliveryStream (`firehose.rs`).
    FirehoseDescribe { delivery_stream: &'a str },
    /// A worker's heartbeat: its leases now (`groups.rs` has every group layout).
    GroupHeartbeat {
        stream: &'a str,
        group: &'a str,
        worker: &'a str,
        failover_ms: u32,
        initial: InitialPosition,
        released: Vec<u32>,
    },
    /// Moves a held lease's checkpoint (`groups.rs`).
    GroupCheckpoint {
        stream: &'a str,
        group: &'a str,
        worker: &'a str,
        shard_index: u32,
        counter: u64,
        checkpoint: LeaseCheckpoint,
    },
    /// A group's lease table (`groups.rs`).
    GroupDescribe { stream: &'a str, group: &'a str },
    /// A worker leaves its group; its leases are freed (`groups.rs`).
    GroupLeave {
        stream: &'a str,
        group: &'a str,
        worker: &'a str,
    },
    /// Empty: asks for a nonce to authenticate with (`auth.rs`).
    AuthChallenge,
    /// str access_key_id, bytes proof: the answer to the last challenge (`auth.rs`).
    Authenticate {
        access_key_id: &'a str,
        proof: [u8; auth::PROOF_LEN],
    },
}

impl Request<'_> {
    pub fn api(&self) -> Api {
        match self {
            Request::Ping { .. } => Api::Ping,
            Request::CreateStream { .. } => Api::CreateStream,
            Request::DeleteStream { .. } => Api::DeleteStream,
            Request::DescribeStream { .. } => Api::DescribeStream,
            Request::ListStreams => Api::ListStreams,
            Request::ListShards { .. } => Api::ListShards,
            Request::PutRecord { .. } => Api::PutRecord,
            Request::PutRecords { .. } => Api::PutRecords,
            Request::GetShardIterator { .. } => Api::GetShardIterator,
            Request::GetRecords { .. } => Api::GetRecords,
            Request::Subscribe { .. } => Api::Subscribe,
            Request::Unsubscribe { .. } => Api::Unsubscribe,
            Request::FirehosePutRecordBatch { .. } => Api::FirehosePutRecordBatch,
            Request::FirehoseDescribe { .. } => Api::FirehoseDescribe,
            Request::GroupHeartbeat { .. } => Api::GroupHeartbeat,
            Request::GroupCheckpoint { .. } => Api::GroupCheckpoint,
            Request::GroupDescribe { .. } => Api::GroupDescribe,
            Request::GroupLeave { .. } => Api::GroupLeave,
            Request::AuthChallenge => Api::AuthChallenge,
            Request::Authenticate { .. } => Api::Authenticate,
        }
    }
}

/// A shard as ListShards and DescribeStream report it.
/// Wire: u32 shard_index, u128 hash_key_start, u128 hash_key_end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_index: u32,
    pub hash_key_start: u128,
    pub hash_key_end: u128,
}

/// A stream as DescribeStream reports it.
/// Wire: str name, str status, u32 retention_hours, i64 created_ms, [ShardInfo].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub retention_hours: u32,
    pub created_ms: i64,
    pub shards: Vec<ShardInfo>,
}

/// The outcome of one batch of a PutRecords request, in request order.
/// Wire: u32 shard_index, u16 error code (0 = appended), then either
/// u64 base_offset + u32 record_count, or str message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchResult {
    pub shard_index: u32,
    /// The batch's records got offsets `base_offset ..`.
    pub outcome: Result<(u64, u32), Error>,
}

/// Records served from one stored batch: records `skip .. skip + take` of it.
/// Wire: u32 skip, u32 take, batch. The batch is served as stored (its header's
/// base_offset gives each record's offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<'a> {
    pub skip: u32,
    pub take: u32,
    pub batch: &'a [u8],
}

/// Records for a reader. Wire: u32 shard_index, i64 millis_behind_latest,
/// u64 next_offset (where the next read starts), opt str next_iterator, [Span].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records<'a> {
    pub shard_index: u32,
    pub millis_behind_latest: i64,
    pub next_offset: u64,
    /// GetRecords only; a push frame leaves it out.
    pub next_iterator: Option<&'a str>,
    pub spans: Vec<Span<'a>>,
}

/// A response body (flags: RESPONSE). Wire layouts per variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// u64 nonce (Ping).
    Pong { nonce: u64 },
    /// Empty body (CreateStream, DeleteStream, Subscribe, Unsubscribe).
    Done,
    /// StreamInfo (DescribeStream).
    Stream(StreamInfo<'a>),
    /// [str] (ListStreams).
    StreamNames(Vec<&'a str>),
    /// u64 stream_id, [ShardInfo] (ListShards). `stream_id` names this
    /// incarnation of the stream (never reused after a delete); PutRecords
    /// passes it back.
    Shards {
        stream_id: u64,
        shards: Vec<ShardInfo>,
    },
    /// u32 shard_index, u64 offset (PutRecord).
    Put { shard_index: u32, offset: u64 },
    /// [BatchResult] (PutRecords).
    PutBatches(Vec<BatchResult>),
    /// str iterator (GetShardIterator).
    Iterator(&'a str),
    /// Records (GetRecords, and the body of every push frame).
    Records(Records<'a>),
    /// FirehosePutRecordBatch's answer (`firehose.rs`).
    FirehosePutBatch(FirehosePutBatch<'a>),
    /// text: DescribeDeliveryStream's JSON answer (FirehoseDescribe).
    FirehoseDescription(&'a str),
    /// The worker's leases (GroupHeartbeat; `groups.rs`).
    GroupLeases(Vec<HeldLease>),
    /// A group's lease table and live workers (GroupDescribe; `groups.rs`).
    GroupTable {
        rows: Vec<LeaseRow<'a>>,
        workers: Vec<&'a str>,
    },
    /// Empty body (GroupCheckpoint, GroupLeave).
    GroupDone,
    /// bytes nonce (AuthChallenge; `auth.rs`).
    Challenge { nonce: [u8; auth::NONCE_LEN] },
    /// str principal (Authenticate; `auth.rs`).
    Authenticated { principal: &'a str },
}

/// What a client can receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The answer to request `request_id`.
    Response(Response<'a>),
    /// The request failed. Wire: u16 code, str message.
    Error(Error),
    /// A subscription's records (flags: RESPONSE | PUSH, body: Records); `end`
    /// when it is the subscription's last frame.
    Push { records: Records<'a>, end: bool },
}

fn error_code(code: u16) -> Option<ErrorCode> {
    use ErrorCode::*;
    [
        ResourceNotFound,
        ResourceInUse,
        InvalidArgument,
        ExpiredIterator,
        ProvisionedThroughputExceeded,
        LimitExceeded,
        Internal,
        StorageFailed,
        ConcurrentModification,
        KmsDisabled,
        KmsNotFound,
        KmsInvalidState,
        KmsAccessDenied,
        AccessDenied,
    ]
    .into_iter()
    .find(|c| *c as u16 == code)
}

/// Error messages are bounded so a reply frame cannot be inflated by one.
pub const ERROR_MESSAGE_CHARS_MAX: u32 = 4096;
/// Iterator tokens are opaque to clients; the server's are far shorter.
pub const ITERATOR_CHARS_MAX: u32 = 1024;
/// Stream status strings (ACTIVE, CREATING, ...).
const STATUS_CHARS_MAX: u32 = 32;

fn put_position(w: &mut FrameWriter<'_>, p: &StartPosition) {
    match *p {
        StartPosition::TrimHorizon => w.u8(0),
        StartPosition::Latest => w.u8(1),
        StartPosition::AtSequenceNumber(s) => {
            w.u8(2);
            w.u128(s)
        }
        StartPosition::AfterSequenceNumber(s) => {
            w.u8(3);
            w.u128(s)
        }
        StartPosition::AtTimestamp(t) => {
            w.u8(4);
            w.i64(t)
        }
    }
}

fn get_position(r: &mut FrameReader<'_>) -> Result<StartPosition, FrameError> {
    Ok(match r.u8()? {
        0 => StartPosition::TrimHorizon,
        1 => StartPosition::Latest,
        2 => StartPosition::AtSequenceNumber(r.u128()?),
        3 => StartPosition::AfterSequenceNumber(r.u128()?),
        4 => StartPosition::AtTimestamp(r.i64()?),
        k => {
            return Err(FrameError::malformed(
                "StartPosition",
                format!("unknown kind {k}"),
            ));
        }
    })
}

/// Appends a request frame to `out`; returns its length.
pub fn encode_request(out: &mut Vec<u8>, request_id: u64, request: &Request<'_>) -> usize {
    let mut w = FrameWriter::begin(out, request.api(), 0, request_id);
    match request {
        Request::Ping { nonce } => w.u64(*nonce),
        Request::CreateStream {
            stream,
            shard_count,
        } => {
            w.str(stream);
            w.u32(*shard_count)
        }
        Request::DeleteStream { stream }
        | Request::DescribeStream { stream }
        | Request::ListShards { stream } => w.str(stream),
        Request::ListStreams => {}
        Request::PutRecord { stream, batch } => {
            w.str(stream);
            w.batch(batch)
        }
        Request::PutRecords {
            stream,
            stream_id,
            batches,
        } => {
            w.str(stream);
            w.u64(*stream_id);
            w.u32(batches.len() as u32);
            for b in batches {
                w.u32(b.shard_index);
                w.batch(b.batch);
            }
        }
        Request::GetShardIterator {
            stream,
            shard_index,
            position,
        }
        | Request::Subscribe {
            stream,
            shard_index,
            position,
        } => {
            w.str(stream);
            w.u32(*shard_index);
            put_position(&mut w, position)
        }
        Request::GetRecords { iterator, limit } => {
            w.str(iterator);
            w.u32(*limit)
        }
        Request::Unsubscribe { subscription_id } => w.u64(*subscription_id),
        Request::FirehosePutRecordBatch {
            delivery_stream,
            records,
        } => firehose::put_request(&mut w, delivery_stream, records),
        Request::FirehoseDescribe { delivery_stream } => w.str(delivery_stream),
        Request::GroupHeartbeat { .. }
        | Request::GroupCheckpoint { .. }
        | Request::GroupDescribe { .. }
        | Request::GroupLeave { .. } => groups::put_request(&mut w, request),
        Request::AuthChallenge => {}
        Request::Authenticate {
            access_key_id,
            proof,
        } => {
            w.str(access_key_id);
            w.bytes(proof)
        }
    }
    w.finish()
}

/// Record count in a batch's header, or 0 when it is too short to have one
/// (`validate` refuses it later with a precise error).
fn batch_record_count(batch: &[u8]) -> u32 {
    if batch.len() < BATCH_HEADER_SIZE {
        return 0;
    }
    crate::le::u32_at(batch, 24)
}

/// Decodes a request frame (header checked for size, crc, api, version, flags).
/// The frame must hold exactly one frame.
pub fn decode_request<'a>(
    frame: &'a [u8],
    limits: &Limits,
) -> Result<(FrameHeader, Request<'a>), (Option<FrameHeader>, FrameError)> {
    let header =
        FrameHeader::parse(frame, request_frame_size_max(limits)).map_err(|e| (None, e))?;
    let fail = |e| (Some(header), e);
    if frame.len() != header.frame_size as usize {
        return Err(fail(FrameError::malformed(
            "frame",
            format!(
                "buffer holds {} bytes, header says {}",
                frame.len(),
                header.frame_size
            ),
        )));
    }
    let api = header.check(frame).map_err(fail)?;
    if header.flags != 0 {
        return Err(fail(FrameError::BadFlags(header.flags)));
    }
    let request = decode_request_body(api, frame, limits).map_err(fail)?;
    Ok((header, request))
}

fn decode_request_body<'a>(
    api: Api,
    frame: &'a [u8],
    limits: &Limits,
) -> Result<Request<'a>, FrameError> {
    let name_max = limits.stream_name_chars_max;
    let mut r = FrameReader::new(frame, api_name(api));
    let request = match api {
        Api::Ping => Request::Ping { nonce: r.u64()? },
        Api::CreateStream => Request::CreateStream {
            stream: r.str("stream", name_max)?,
            shard_count: r.u32()?,
        },
        Api::DeleteStream => Request::DeleteStream {
            stream: r.str("stream", name_max)?,
        },
        Api::DescribeStream => Request::DescribeStream {
            stream: r.str("stream", name_max)?,
        },
        Api::ListStreams => Request::ListStreams,
        Api::ListShards => Request::ListShards {
            stream: r.str("stream", name_max)?,
        },
        Api::PutRecord => {
            let stream = r.str("stream", name_max)?;
            let batch = r.batch(limits.batch_size_max())?;
            if batch_record_count(batch) != 1 {
                return Err(FrameError::malformed(
                    "PutRecord",
                    "the batch must hold exactly one record",
                ));
            }
            Request::PutRecord { stream, batch }
        }
        Api::PutRecords => {
            let stream = r.str("stream", name_max)?;
            let stream_id = r.u64()?;
            let count = r.count(
                "batches",
                limits.put_records_count_max,
                4 + 4 + BATCH_HEADER_SIZE,
            )?;
            let mut batches = Vec::with_capacity(count);
            let mut records = 0u64;
            for _ in 0..count {
                let shard_index = r.u32()?;
                let batch = r.batch(limits.batch_size_max())?;
                records += batch_record_count(batch) as u64;
                if records > limits.put_records_count_max as u64 {
                    return Err(FrameError::malformed(
                        "PutRecords",
                        format!(
                            "more than {} records in one request",
                            limits.put_records_count_max
                        ),
                    ));
                }
                batches.push(ShardBatch { shard_index, batch });
            }
            Request::PutRecords {
                stream,
                stream_id,
                batches,
            }
        }
        Api::GetShardIterator => Request::GetShardIterator {
            stream: r.str("stream", name_max)?,
            shard_index: r.u32()?,
            position: get_position(&mut r)?,
        },
        Api::GetRecords => Request::GetRecords {
            iterator: r.str("iterator", ITERATOR_CHARS_MAX)?,
            limit: r.u32()?,
        },
        Api::Subscribe => Request::Subscribe {
            stream: r.str("stream", name_max)?,
            shard_index: r.u32()?,
            position: get_position(&mut r)?,
        },
        Api::Unsubscribe => Request::Unsubscribe {
            subscription_id: r.u64()?,
        },
        Api::FirehosePutRecordBatch => firehose::get_put_request(&mut r)?,
        Api::FirehoseDescribe => firehose::get_describe_request(&mut r)?,
        Api::GroupHeartbeat | Api::GroupCheckpoint | Api::GroupDescribe | Api::GroupLeave => {
            groups::get_request(api, &mut r, limits)?
        }
        Api::AuthChallenge => Request::AuthChallenge,
        Api::Authenticate => Request::Authenticate {
            access_key_id: r.str("access_key_id", auth::ACCESS_KEY_ID_CHARS_MAX)?,
            proof: auth::get_fixed::<{ auth::PROOF_LEN }>(&mut r, "proof")?,
        },
    };
    r.end()?;
    Ok(request)
}

pub fn api_name(api: Api) -> &'static str {
    match api {
        Api::Ping => "Ping",
        Api::CreateStream => "CreateStream",
        Api::DeleteStream => "DeleteStream",
        Api::DescribeStream => "DescribeStream",
        Api::ListStreams => "ListStreams",
        Api::ListShards => "ListShards",
        Api::PutRecord => "PutRecord",
        Api::PutRecords => "PutRecords",
        Api::GetShardIterator => "GetShardIterator",
        Api::GetRecords => "GetRecords",
        Api::Subscribe => "Subscribe",
        Api::Unsubscribe => "Unsubscribe",
        Api::FirehosePutRecordBatch => "FirehosePutRecordBatch",
        Api::FirehoseDescribe => "FirehoseDescribe",
        Api::GroupHeartbeat => "GroupHeartbeat",
        Api::GroupCheckpoint => "GroupCheckpoint",
        Api::GroupDescribe => "GroupDescribe",
        Api::GroupLeave => "GroupLeave",
        Api::AuthChallenge => "AuthChallenge",
        Api::Authenticate => "Authenticate",
    }
}

fn put_shard_info(w: &mut FrameWriter<'_>, s: &ShardInfo) {
    w.u32(s.shard_index);
    w.u128(s.hash_key_start);
    w.u128(s.hash_key_end);
}

fn get_shard_info(r: &mut FrameReader<'_>) -> Result<ShardInfo, FrameError> {
    Ok(ShardInfo {
        shard_index: r.u32()?,
        hash_key_start: r.u128()?,
        hash_key_end: r.u128()?,
    })
}
const SHARD_INFO_SIZE: usize = 4 + 16 + 16;

fn put_records(w: &mut FrameWriter<'_>, rec: &Records<'_>) {
    w.u32(rec.shard_index);
    w.i64(rec.millis_behind_latest);
    w.u64(rec.next_offset);
    match rec.next_iterator {
        Some(it) => {
            w.u8(1);
            w.str(it)
        }
        None => w.u8(0),
    }
    w.u32(rec.spans.len() as u32);
    for s in &rec.spans {
        w.u32(s.skip);
        w.u32(s.take);
        w.batch(s.batch);
    }
}

fn get_records<'a>(r: &mut FrameReader<'a>, limits: &Limits) -> Result<Records<'a>, FrameError> {
    let shard_index = r.u32()?;
    let millis_behind_latest = r.i64()?;
    let next_offset = r.u64()?;
    let next_iterator = match r.u8()? {
        0 => None,
        1 => Some(r.str("next_iterator", ITERATOR_CHARS_MAX)?),
        t => {
            return Err(FrameError::malformed(
                "Records",
                format!("bad option tag {t}"),
            ));
        }
    };
    let count = r.count(
        "spans",
        limits.get_records_count_max,
        4 + 4 + 4 + BATCH_HEADER_SIZE,
    )?;
    let mut spans = Vec::with_capacity(count);
    for _ in 0..count {
        let skip = r.u32()?;
        let take = r.u32()?;
        let batch = r.batch(response_frame_size_max(limits) as usize)?;
        if (skip as u64 + take as u64) > batch_record_count(batch) as u64 {
            return Err(FrameError::malformed(
                "Records",
                "span reaches past its batch's records",
            ));
        }
        spans.push(Span { skip, take, batch });
    }
    Ok(Records {
        shard_index,
        millis_behind_latest,
        next_offset,
        next_iterator,
        spans,
    })
}

/// Appends a response frame to `out`; returns its length.
pub fn encode_response(
    out: &mut Vec<u8>,
    api: Api,
    request_id: u64,
    response: &Response<'_>,
) -> usize {
    let mut w = FrameWriter::begin(out, api, flags::RESPONSE, request_id);
    match response {
        Response::Pong { nonce } => w.u64(*nonce),
        Response::Done => {}
        Response::Stream(s) => {
            w.str(s.name);
            w.str(s.status);
            w.u32(s.retention_hours);
            w.i64(s.created_ms);
            w.u32(s.shards.len() as u32);
            for sh in &s.shards {
                put_shard_info(&mut w, sh);
            }
        }
        Response::StreamNames(names) => {
            w.u32(names.len() as u32);
            for n in names {
                w.str(n);
            }
        }
        Response::Shards { stream_id, shards } => {
            w.u64(*stream_id);
            w.u32(shards.len() as u32);
            for sh in shards {
                put_shard_info(&mut w, sh);
            }
        }
        Response::Put {
            shard_index,
            offset,
        } => {
            w.u32(*shard_index);
            w.u64(*offset)
        }
        Response::PutBatches(results) => {
            w.u32(results.len() as u32);
            for res in results {
                w.u32(res.shard_index);
                match &res.outcome {
                    Ok((base, count)) => {
                        w.u16(0);
                        w.u64(*base);
                        w.u32(*count)
                    }
                    Err(e) => {
                        w.u16(e.code as u16);
                        w.str(truncated(&e.message))
                    }
                }
            }
        }
        Response::Iterator(it) => w.str(it),
        Response::Records(rec) => put_records(&mut w, rec),
        Response::FirehosePutBatch(batch) => firehose::put_put_batch(&mut w, batch),
        Response::FirehoseDescription(json) => w.bytes(json.as_bytes()),
        Response::GroupLeases(_) | Response::GroupTable { .. } | Response::GroupDone => {
            groups::put_response(&mut w, response)
        }
        Response::Challenge { nonce } => auth::put_nonce(&mut w, nonce),
        Response::Authenticated { principal } => w.str(principal),
    }
    w.finish()
}

/// Error messages longer than the bound are cut at a char boundary.
pub(super) fn truncated(message: &str) -> &str {
    let max = ERROR_MESSAGE_CHARS_MAX as usize;
    match message.char_indices().nth(max) {
        Some((i, _)) => &message[..i],
        None => message,
    }
}

/// Appends an error reply to `out`; returns its length. `api` is the request's
/// api key as received (it may be unknown to this server).
pub fn encode_error(out: &mut Vec<u8>, api_key: u16, request_id: u64, error: &Error) -> usize {
    let start = out.len();
    let mut w = FrameWriter::begin(out, Api::Ping, flags::RESPONSE | flags::ERROR, request_id);
    w.u16(error.code as u16);
    w.str(truncated(&error.message));
    let n = w.finish();
    // Echo the request's api key even when it is not one we know; re-seal the crc.
    out[start + 8..start + 10].copy_from_slice(&api_key.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 8..start + n]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    n
}

/// Appends a subscription push frame to `out`; returns its length.
pub fn encode_push(
    out: &mut Vec<u8>,
    subscription_id: u64,
    records: &Records<'_>,
    end: bool,
) -> usize {
    let f = flags::RESPONSE | flags::PUSH | if end { flags::END } else { 0 };
    let mut w = FrameWriter::begin(out, Api::Subscribe, f, subscription_id);
    put_records(&mut w, records);
    w.finish()
}

/// Decodes a frame sent by the server: a response, an error or a push. `api` of
/// the returned header says which request it answers; `Response` variants follow
/// the api.
pub fn decode_reply<'a>(
    frame: &'a [u8],
    limits: &Limits,
) -> Result<(FrameHeader, Reply<'a>), FrameError> {
    let header = FrameHeader::parse(frame, response_frame_size_max(limits))?;
    if frame.len() != header.frame_size as usize {
        return Err(FrameError::malformed(
            "frame",
            format!(
                "buffer holds {} bytes, header says {}",
                frame.len(),
                header.frame_size
            ),
        ));
    }
    if header.flags & flags::RESPONSE == 0 {
        return Err(FrameError::BadFlags(header.flags));
    }
    if header.flags & flags::ERROR != 0 {
        // Errors may answer api keys this client does not know: check only the crc.
        let computed = crc32c::crc32c(&frame[8..]);
        if computed != header.crc {
            return Err(FrameError::BadCrc {
                stored: header.crc,
                computed,
            });
        }
        // The rest of the header is checked as for any frame: only the two flag
        // bits, reserved 0, this version (else the frame has no canonical encoding).
        if header.flags != flags::RESPONSE | flags::ERROR || crate::le::u16_at(frame, 14) != 0 {
            return Err(FrameError::BadFlags(header.flags));
        }
        if header.api_version != super::frame::API_VERSION {
            return Err(FrameError::UnsupportedVersion {
                api_key: header.api_key,
                version: header.api_version,
            });
        }
        let mut r = FrameReader::new(frame, "Error");
        let raw = r.u16()?;
        let code = error_code(raw)
            .ok_or_else(|| FrameError::malformed("Error", format!("unknown error code {raw}")))?;
        let message = r.str("message", ERROR_MESSAGE_CHARS_MAX)?.to_string();
        r.end()?;
        return Ok((header, Reply::Error(Error::new(code, message))));
    }
    let api = header.check(frame)?;
    let name_max = limits.stream_name_chars_max;
    if header.flags & (flags::PUSH | flags::END) == flags::END {
        return Err(FrameError::BadFlags(header.flags));
    }
    if header.flags & flags::PUSH != 0 {
        if api != Api::Subscribe {
            return Err(FrameError::malformed(
                "Push",
                format!(
                    "push frames belong to Subscribe, not api key {}",
                    header.api_key
                ),
            ));
        }
        let mut r = FrameReader::new(frame, "Push");
        let records = get_records(&mut r, limits)?;
        r.end()?;
        let end = header.flags & flags::END != 0;
        return Ok((header, Reply::Push { records, end }));
    }
    let mut r = FrameReader::new(frame, api_name(api));
    let response = match api {
        Api::Ping => Response::Pong { nonce: r.u64()? },
        Api::CreateStream | Api::DeleteStream | Api::Subscribe | Api::Unsubscribe => Response::Done,
        Api::DescribeStream => {
            let name = r.str("name", name_max)?;
            let status = r.str("status", STATUS_CHARS_MAX)?;
            let retention_hours = r.u32()?;
            let created_ms = r.i64()?;
            let n = r.count("shards", u32::MAX, SHARD_INFO_SIZE)?;
            let mut shards = Vec::with_capacity(n);
            for _ in 0..n {
                shards.push(get_shard_info(&mut r)?);
            }
            Response::Stream(StreamInfo {
                name,
                status,
                retention_hours,
                created_ms,
                shards,
            })
        }
        Api::ListStreams => {
            let n = r.count("streams", u32::MAX, 2)?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(r.str("stream", name_max)?);
            }
            Response::StreamNames(names)
        }
        Api::ListShards => {
            let stream_id = r.u64()?;
            let n = r.count("shards", u32::MAX, SHARD_INFO_SIZE)?;
            let mut shards = Vec::with_capacity(n);
            for _ in 0..n {
                shards.push(get_shard_info(&mut r)?);
            }
            Response::Shards { stream_id, shards }
        }
        Api::PutRecord => Response::Put {
            shard_index: r.u32()?,
            offset: r.u64()?,
        },
        Api::PutRecords => {
            let n = r.count("results", limits.put_records_count_max, 4 + 2 + 2)?;
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                let shard_index = r.u32()?;
                let outcome = match r.u16()? {
                    0 => Ok((r.u64()?, r.u32()?)),
                    raw => {
                        let code = error_code(raw).ok_or_else(|| {
                            FrameError::malformed("PutRecords", format!("unknown error code {raw}"))
                        })?;
                        let message = r.str("message", ERROR_MESSAGE_CHARS_MAX)?;
                        Err(Error::new(code, message))
                    }
                };
                results.push(BatchResult {
                    shard_index,
                    outcome,
                });
            }
            Response::PutBatches(results)
        }
        Api::GetShardIterator => Response::Iterator(r.str("iterator", ITERATOR_CHARS_MAX)?),
        Api::GetRecords => Response::Records(get_records(&mut r, limits)?),
        Api::FirehosePutRecordBatch => Response::FirehosePutBatch(firehose::get_put_batch(&mut r)?),
        Api::FirehoseDescribe => Response::FirehoseDescription(firehose::get_description(
            &mut r,
            response_frame_size_max(limits),
        )?),
        Api::GroupHeartbeat | Api::GroupCheckpoint | Api::GroupDescribe | Api::GroupLeave => {
            groups::get_response(api, &mut r, limits)?
        }
        Api::AuthChallenge => Response::Challenge {
            nonce: auth::get_fixed::<{ auth::NONCE_LEN }>(&mut r, "nonce")?,
        },
        Api::Authenticate => Response::Authenticated {
            principal: r.str("principal", auth::PRINCIPAL_CHARS_MAX)?,
        },
    };
    r.end()?;
    Ok((header, Reply::Response(response)))
}

/// Total size of the frame that starts `bytes`, once its header is there:
/// `Ok(None)` until then. Errors when the size is out of bounds.
pub fn frame_size(bytes: &[u8], frame_size_max: u32) -> Result<Option<usize>, FrameError> {
    if bytes.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    Ok(Some(
        FrameHeader::parse(bytes, frame_size_max)?.frame_size as usize,
    ))
}
