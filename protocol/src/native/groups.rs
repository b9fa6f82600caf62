//! Consumer groups' operations on the native protocol (api keys 14-17):
//! `GroupHeartbeat`, `GroupCheckpoint`, `GroupDescribe` and `GroupLeave`.
//! Their bodies' codecs live here; `messages.rs` routes to them. The server
//! side is an extension the binary registers (`riffle_engine::net::Extension`,
//! implemented by the groups crate), so a server without consumer groups
//! answers them with an error, as a server older than these api keys does.
//! docs/consumers.md ("Consumer groups") says what the operations mean.
//!
//! Wire layouts (notation of `messages.rs`):
//! ```text
//! checkpoint                u8 kind: 0 TRIM_HORIZON, 1 LATEST, 2 AFTER, 3 SHARD_END;
//!                           kind 2 only: u128 sequence_number, opt u32 sub_sequence_number
//! GroupHeartbeat request    str stream, str group, str worker, u32 failover_ms,
//!                           u8 initial (0 TRIM_HORIZON, 1 LATEST), [u32 released shard]
//! GroupHeartbeat response   [lease: u32 shard, u64 counter, u8 revoked (0|1),
//!                                   checkpoint, [u32 parent]]
//! GroupCheckpoint request   str stream, str group, str worker, u32 shard, u64 counter,
//!                           checkpoint
//! GroupCheckpoint response  empty
//! GroupDescribe request     str stream, str group
//! GroupDescribe response    [row: u32 shard, opt str owner, u64 counter, checkpoint,
//!                                 [u32 parent]], [str live worker]
//! GroupLeave request        str stream, str group, str worker
//! GroupLeave response       empty
//! ```
//!
//! Bounds: the decoder enforces what bounds allocation and reading: stream
//! names of at most `Limits::stream_name_chars_max` characters, group and
//! worker names of at most [`GROUP_NAME_CHARS_MAX`], at most
//! `Limits::stream_shard_count_max` released shards and held leases (a
//! contract of the server: a worker never holds more leases than a stream may
//! have open shards), at most [`LEASE_PARENT_COUNT_MAX`] parents per lease,
//! every count against the bytes left. A lease table's rows are bounded by the
//! bytes of the frame only: the table keeps a row for every shard still in the
//! stream, closed ones included, so after a reshard it may have more rows than
//! a stream may have open shards (ListShards' shard list is bounded the same
//! way). Names' pattern and the checkpoint kinds a GroupCheckpoint may carry
//! (AFTER, SHARD_END) are the server's to check, in AWS's words.
//!
//! Every encoding is canonical (option tags and `revoked` are 0 or 1, kinds
//! carry exactly their fields), so whatever decodes re-encodes to the same
//! bytes.

use crate::limits::Limits;

use super::frame::{Api, FRAME_HEADER_SIZE, FrameError, FrameReader, FrameWriter};
use super::messages::{Request, Response};

/// Group and worker names: 1 to 128 characters of `[a-zA-Z0-9_.:-]` (the
/// decoder bounds the length; the server checks the pattern).
pub const GROUP_NAME_CHARS_MAX: u32 = 128;
/// A shard has one parent after a split, two after a merge.
pub const LEASE_PARENT_COUNT_MAX: u32 = 2;

/// Where a new group's leases start (KCL's `initialPositionInStream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
}

/// Where processing of a lease's shard resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseCheckpoint {
    TrimHorizon,
    Latest,
    /// After this record (and, inside an aggregated record, after this user record).
    After {
        sequence_number: u128,
        sub_sequence_number: Option<u32>,
    },
    /// The shard is closed and every record of it was processed.
    ShardEnd,
}

/// A lease the heartbeating worker holds (GroupHeartbeat's answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLease {
    pub shard_index: u32,
    /// Checkpoints for this lease must name it.
    pub counter: u64,
    /// Another worker is taking the lease: stop processing the shard and
    /// report it as released in the next heartbeat.
    pub revoked: bool,
    pub checkpoint: LeaseCheckpoint,
    /// The shard's parents (at most [`LEASE_PARENT_COUNT_MAX`]).
    pub parents: Vec<u32>,
}

/// A row of a group's lease table (GroupDescribe's answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow<'a> {
    pub shard_index: u32,
    /// The worker holding the lease, or none.
    pub owner: Option<&'a str>,
    pub counter: u64,
    pub checkpoint: LeaseCheckpoint,
    /// The shard's parents (at most [`LEASE_PARENT_COUNT_MAX`]).
    pub parents: Vec<u32>,
}

/// Smallest encodings, so counts are checked against the bytes left.
const CHECKPOINT_SIZE_MIN: usize = 1;
const LEASE_SIZE_MIN: usize = 4 + 8 + 1 + CHECKPOINT_SIZE_MIN + 4;
const ROW_SIZE_MIN: usize = 4 + 1 + 8 + CHECKPOINT_SIZE_MIN + 4;
const NAME_SIZE_MIN: usize = 2;

/// The largest GroupHeartbeat request frame under `limits`: the header, three
/// names of four-byte characters, and `stream_shard_count_max` released shards.
/// The server's request frame bound (`frame::request_frame_size_max`) holds it
/// with the default `Limits` (a test checks it).
pub fn heartbeat_request_size_max(limits: &Limits) -> u64 {
    (FRAME_HEADER_SIZE + 3 * 2 + 4 + 1 + 4) as u64
        + 4 * (limits.stream_name_chars_max as u64 + 2 * GROUP_NAME_CHARS_MAX as u64)
        + 4 * limits.stream_shard_count_max as u64
}

fn put_checkpoint(w: &mut FrameWriter<'_>, c: &LeaseCheckpoint) {
    match *c {
        LeaseCheckpoint::TrimHorizon => w.u8(0),
        LeaseCheckpoint::Latest => w.u8(1),
        LeaseCheckpoint::After {
            sequence_number,
            sub_sequence_number,
        } => {
            w.u8(2);
            w.u128(sequence_number);
            match sub_sequence_number {
                Some(sub) => {
                    w.u8(1);
                    w.u32(sub)
                }
                None => w.u8(0),
            }
        }
        LeaseCheckpoint::ShardEnd => w.u8(3),
    }
}

fn get_checkpoint(r: &mut FrameReader<'_>) -> Result<LeaseCheckpoint, FrameError> {
    Ok(match r.u8()? {
        0 => LeaseCheckpoint::TrimHorizon,
        1 => LeaseCheckpoint::Latest,
        2 => LeaseCheckpoint::After {
            sequence_number: r.u128()?,
            sub_sequence_number: match r.u8()? {
                0 => None,
                1 => Some(r.u32()?),
                t => {
                    return Err(FrameError::malformed(
                        "LeaseCheckpoint",
                        format!("bad sub_sequence_number option tag {t}"),
                    ));
                }
            },
        },
        3 => LeaseCheckpoint::ShardEnd,
        k => {
            return Err(FrameError::malformed(
                "LeaseCheckpoint",
                format!("unknown kind {k}"),
            ));
        }
    })
}

fn put_shards(w: &mut FrameWriter<'_>, shards: &[u32]) {
    w.u32(shards.len() as u32);
    for &s in shards {
        w.u32(s);
    }
}

fn get_shards(
    r: &mut FrameReader<'_>,
    field: &str,
    count_max: u32,
) -> Result<Vec<u32>, FrameError> {
    let count = r.count(field, count_max, 4)?;
    (0..count).map(|_| r.u32()).collect()
}

fn get_name<'a>(r: &mut FrameReader<'a>, field: &str) -> Result<&'a str, FrameError> {
    r.str(field, GROUP_NAME_CHARS_MAX)
}

/// Encodes the body of one of the four group requests.
pub(super) fn put_request(w: &mut FrameWriter<'_>, request: &Request<'_>) {
    match request {
        Request::GroupHeartbeat {
            stream,
            group,
            worker,
            failover_ms,
            initial,
            released,
        } => {
            w.str(stream);
            w.str(group);
            w.str(worker);
            w.u32(*failover_ms);
            w.u8(match initial {
                InitialPosition::TrimHorizon => 0,
                InitialPosition::Latest => 1,
            });
            put_shards(w, released)
        }
        Request::GroupCheckpoint {
            stream,
            group,
            worker,
            shard_index,
            counter,
            checkpoint,
        } => {
            w.str(stream);
            w.str(group);
            w.str(worker);
            w.u32(*shard_index);
            w.u64(*counter);
            put_checkpoint(w, checkpoint)
        }
        Request::GroupDescribe { stream, group } => {
            w.str(stream);
            w.str(group)
        }
        Request::GroupLeave {
            stream,
            group,
            worker,
        } => {
            w.str(stream);
            w.str(group);
            w.str(worker)
        }
        other => unreachable!("{:?} is not a group request", other.api()),
    }
}

/// Decodes the body of a request of `api` (one of the four group apis).
pub(super) fn get_request<'a>(
    api: Api,
    r: &mut FrameReader<'a>,
    limits: &Limits,
) -> Result<Request<'a>, FrameError> {
    let stream = r.str("stream", limits.stream_name_chars_max)?;
    let group = get_name(r, "group")?;
    Ok(match api {
        Api::GroupHeartbeat => Request::GroupHeartbeat {
            stream,
            group,
            worker: get_name(r, "worker")?,
            failover_ms: r.u32()?,
            initial: match r.u8()? {
                0 => InitialPosition::TrimHorizon,
                1 => InitialPosition::Latest,
                b => {
                    return Err(FrameError::malformed(
                        "GroupHeartbeat",
                        format!("unknown initial position {b}"),
                    ));
                }
            },
            released: get_shards(r, "released", limits.stream_shard_count_max)?,
        },
        Api::GroupCheckpoint => Request::GroupCheckpoint {
            stream,
            group,
            worker: get_name(r, "worker")?,
            shard_index: r.u32()?,
            counter: r.u64()?,
            checkpoint: get_checkpoint(r)?,
        },
        Api::GroupDescribe => Request::GroupDescribe { stream, group },
        Api::GroupLeave => Request::GroupLeave {
            stream,
            group,
            worker: get_name(r, "worker")?,
        },
        other => unreachable!("{other:?} is not a group api"),
    })
}

/// Encodes the body of one of the group responses.
pub(super) fn put_response(w: &mut FrameWriter<'_>, response: &Response<'_>) {
    match response {
        Response::GroupLeases(leases) => {
            w.u32(leases.len() as u32);
            for l in leases {
                w.u32(l.shard_index);
                w.u64(l.counter);
                w.u8(l.revoked as u8);
                put_checkpoint(w, &l.checkpoint);
                put_shards(w, &l.parents)
            }
        }
        Response::GroupTable { rows, workers } => {
            w.u32(rows.len() as u32);
            for row in rows {
                w.u32(row.shard_index);
                match row.owner {
                    Some(owner) => {
                        w.u8(1);
                        w.str(owner)
                    }
                    None => w.u8(0),
                }
                w.u64(row.counter);
                put_checkpoint(w, &row.checkpoint);
                put_shards(w, &row.parents)
            }
            w.u32(workers.len() as u32);
            for worker in workers {
                w.str(worker)
            }
        }
        Response::GroupDone => {}
        other => unreachable!("{other:?} is not a group response"),
    }
}

/// Decodes the body of a response to `api` (one of the four group apis).
pub(super) fn get_response<'a>(
    api: Api,
    r: &mut FrameReader<'a>,
    limits: &Limits,
) -> Result<Response<'a>, FrameError> {
    Ok(match api {
        Api::GroupHeartbeat => {
            let count = r.count("leases", limits.stream_shard_count_max, LEASE_SIZE_MIN)?;
            let mut leases = Vec::with_capacity(count);
            for _ in 0..count {
                leases.push(HeldLease {
                    shard_index: r.u32()?,
                    counter: r.u64()?,
                    revoked: match r.u8()? {
                        0 => false,
                        1 => true,
                        b => {
                            return Err(FrameError::malformed(
                                "GroupHeartbeat",
                                format!("revoked is {b}, not 0 or 1"),
                            ));
                        }
                    },
                    checkpoint: get_checkpoint(r)?,
                    parents: get_shards(r, "parents", LEASE_PARENT_COUNT_MAX)?,
                });
            }
            Response::GroupLeases(leases)
        }
        Api::GroupDescribe => {
            // Bounded by the frame only: see the module doc.
            let count = r.count("rows", u32::MAX, ROW_SIZE_MIN)?;
            let mut rows = Vec::with_capacity(count);
            for _ in 0..count {
                rows.push(LeaseRow {
                    shard_index: r.u32()?,
                    owner: match r.u8()? {
                        0 => None,
                        1 => Some(get_name(r, "owner")?),
                        t => {
                            return Err(FrameError::malformed(
                                "GroupDescribe",
                                format!("bad owner option tag {t}"),
                            ));
                        }
                    },
                    counter: r.u64()?,
                    checkpoint: get_checkpoint(r)?,
                    parents: get_shards(r, "parents", LEASE_PARENT_COUNT_MAX)?,
                });
            }
            let count = r.count("workers", u32::MAX, NAME_SIZE_MIN)?;
            let mut workers = Vec::with_capacity(count);
            for _ in 0..count {
                workers.push(get_name(r, "worker")?);
            }
            Response::GroupTable { rows, workers }
        }
        Api::GroupCheckpoint | Api::GroupLeave => Response::GroupDone,
        other => unreachable!("{other:?} is not a group api"),
    })
}
