//! Consumer groups' operations over the native protocol
//! (`riffle_protocol::native::groups`, docs/consumers.md): a worker's
//! heartbeat, a lease's checkpoint, a group's lease table, a worker leaving;
//! on both clients. A server without consumer groups (or older than these api
//! keys) answers them with an InvalidArgument error ([`ClientError::Server`]).
//!
//! All four are safe to resend after a lost connection: a heartbeat resent
//! only refreshes the worker's liveness and reports the same releases again
//! (releasing a lease twice frees it once), a checkpoint resent writes the same
//! position under the same counter (or is refused with ConcurrentModification
//! when the lease moved meanwhile, which it would be anyway), a describe reads,
//! and a worker that has left can leave again.
//!
//! The client refuses locally only what the encoder or the decoder would
//! (names over their bounds, more released shards than the server decodes)
//! and checkpoints other than AFTER and SHARD_END; the server checks the rest
//! (names' pattern, the failover time, the stream) in AWS's words.

use futures_io::{AsyncRead, AsyncWrite};
use riffle_protocol::Limits;
use riffle_protocol::native::{
    Api, GROUP_NAME_CHARS_MAX, HeldLease, InitialPosition, LeaseCheckpoint, Request, Response,
};

use crate::error::ClientError;
use crate::ops::{Op, check_str, check_stream, unexpected};
use crate::{AsyncClient, Client};

/// A group's lease table as GroupDescribe answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// One per shard of the stream the group reads, in the server's order.
    pub leases: Vec<GroupLease>,
    /// The workers that heartbeated within their failover time.
    pub workers: Vec<String>,
}

/// A row of a group's lease table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLease {
    pub shard_index: u32,
    /// The worker holding the lease, or none.
    pub owner: Option<String>,
    /// Moves every time the lease changes hands; checkpoints name it.
    pub counter: u64,
    pub checkpoint: LeaseCheckpoint,
    /// The shard's parents (one after a split, two after a merge).
    pub parents: Vec<u32>,
}

fn check_names(
    stream: &str,
    group: &str,
    worker: Option<&str>,
    limits: &Limits,
) -> Result<(), ClientError> {
    check_stream(stream, limits)?;
    check_str("group name", group, GROUP_NAME_CHARS_MAX)?;
    match worker {
        Some(worker) => check_str("worker name", worker, GROUP_NAME_CHARS_MAX),
        None => Ok(()),
    }
}

/// A shard index listed twice in an answer is a server bug, not a lease table.
fn check_distinct(
    api: Api,
    what: &str,
    shards: impl Iterator<Item = u32>,
) -> Result<(), ClientError> {
    let mut seen: Vec<u32> = shards.collect();
    seen.sort_unstable();
    match seen.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(ClientError::protocol(format!(
            "{api:?} listed shard {} twice among its {what}",
            w[0]
        ))),
        None => Ok(()),
    }
}

pub(crate) struct GroupHeartbeat<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub worker: &'a str,
    pub failover_ms: u32,
    pub initial: InitialPosition,
    pub released: &'a [u32],
}

impl Op for GroupHeartbeat<'_> {
    type Output = Vec<HeldLease>;
    const API: Api = Api::GroupHeartbeat;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_names(self.stream, self.group, Some(self.worker), limits)?;
        if self.released.len() > limits.stream_shard_count_max as usize {
            return Err(ClientError::InvalidArgument(format!(
                "a heartbeat releases at most {} shards, got {}",
                limits.stream_shard_count_max,
                self.released.len()
            )));
        }
        Ok(())
    }
    fn request(&self) -> Request<'_> {
        Request::GroupHeartbeat {
            stream: self.stream,
            group: self.group,
            worker: self.worker,
            failover_ms: self.failover_ms,
            initial: self.initial,
            released: self.released.to_vec(),
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<Vec<HeldLease>, ClientError> {
        match response {
            Response::GroupLeases(leases) => {
                check_distinct(Self::API, "leases", leases.iter().map(|l| l.shard_index))?;
                Ok(leases)
            }
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct GroupCheckpoint<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub worker: &'a str,
    pub shard_index: u32,
    pub counter: u64,
    pub checkpoint: LeaseCheckpoint,
}

impl Op for GroupCheckpoint<'_> {
    type Output = ();
    const API: Api = Api::GroupCheckpoint;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_names(self.stream, self.group, Some(self.worker), limits)?;
        match self.checkpoint {
            LeaseCheckpoint::After { .. } | LeaseCheckpoint::ShardEnd => Ok(()),
            c => Err(ClientError::InvalidArgument(format!(
                "a checkpoint is after a record or at the shard's end, not {c:?}"
            ))),
        }
    }
    fn request(&self) -> Request<'_> {
        Request::GroupCheckpoint {
            stream: self.stream,
            group: self.group,
            worker: self.worker,
            shard_index: self.shard_index,
            counter: self.counter,
            checkpoint: self.checkpoint,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        match response {
            Response::GroupDone => Ok(()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct GroupDescribe<'a> {
    pub stream: &'a str,
    pub group: &'a str,
}

impl Op for GroupDescribe<'_> {
    type Output = GroupDescription;
    const API: Api = Api::GroupDescribe;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_names(self.stream, self.group, None, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::GroupDescribe {
            stream: self.stream,
            group: self.group,
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<GroupDescription, ClientError> {
        let Response::GroupTable { rows, workers } = response else {
            return Err(unexpected(Self::API, &response));
        };
        check_distinct(Self::API, "rows", rows.iter().map(|r| r.shard_index))?;
        Ok(GroupDescription {
            leases: rows
                .into_iter()
                .map(|r| GroupLease {
                    shard_index: r.shard_index,
                    owner: r.owner.map(str::to_owned),
                    counter: r.counter,
                    checkpoint: r.checkpoint,
                    parents: r.parents,
                })
                .collect(),
            workers: workers.into_iter().map(str::to_owned).collect(),
        })
    }
}

pub(crate) struct GroupLeave<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub worker: &'a str,
}

impl Op for GroupLeave<'_> {
    type Output = ();
    const API: Api = Api::GroupLeave;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_names(self.stream, self.group, Some(self.worker), limits)
    }
    fn request(&self) -> Request<'_> {
        Request::GroupLeave {
            stream: self.stream,
            group: self.group,
            worker: self.worker,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        match response {
            Response::GroupDone => Ok(()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

impl Client {
    /// A worker's heartbeat to consumer group `group` of `stream`, reporting
    /// the shards whose processing it stopped after a revocation (`released`).
    /// The group is made on first use, its leases starting at `initial`. Answers
    /// the leases the worker holds now; a revoked one is to be released.
    pub fn group_heartbeat(
        &self,
        stream: &str,
        group: &str,
        worker: &str,
        failover_ms: u32,
        initial: InitialPosition,
        released: &[u32],
    ) -> Result<Vec<HeldLease>, ClientError> {
        self.call(&GroupHeartbeat {
            stream,
            group,
            worker,
            failover_ms,
            initial,
            released,
        })
    }

    /// Moves the checkpoint of the lease on `shard_index` that `worker` holds
    /// with `counter` (AFTER a record, or SHARD_END). Refused with
    /// ConcurrentModification when the worker no longer holds that lease.
    pub fn group_checkpoint(
        &self,
        stream: &str,
        group: &str,
        worker: &str,
        shard_index: u32,
        counter: u64,
        checkpoint: LeaseCheckpoint,
    ) -> Result<(), ClientError> {
        self.call(&GroupCheckpoint {
            stream,
            group,
            worker,
            shard_index,
            counter,
            checkpoint,
        })
    }

    /// A group's lease table and its live workers.
    pub fn group_describe(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<GroupDescription, ClientError> {
        self.call(&GroupDescribe { stream, group })
    }

    /// `worker` leaves the group; its leases are freed at once.
    pub fn group_leave(&self, stream: &str, group: &str, worker: &str) -> Result<(), ClientError> {
        self.call(&GroupLeave {
            stream,
            group,
            worker,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncClient<S> {
    /// [`Client::group_heartbeat`].
    pub async fn group_heartbeat(
        &self,
        stream: &str,
        group: &str,
        worker: &str,
        failover_ms: u32,
        initial: InitialPosition,
        released: &[u32],
    ) -> Result<Vec<HeldLease>, ClientError> {
        self.call(&GroupHeartbeat {
            stream,
            group,
            worker,
            failover_ms,
            initial,
            released,
        })
        .await
    }

    /// [`Client::group_checkpoint`].
    pub async fn group_checkpoint(
        &self,
        stream: &str,
        group: &str,
        worker: &str,
        shard_index: u32,
        counter: u64,
        checkpoint: LeaseCheckpoint,
    ) -> Result<(), ClientError> {
        self.call(&GroupCheckpoint {
            stream,
            group,
            worker,
            shard_index,
            counter,
            checkpoint,
        })
        .await
    }

    /// [`Client::group_describe`].
    pub async fn group_describe(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<GroupDescription, ClientError> {
        self.call(&GroupDescribe { stream, group }).await
    }

    /// [`Client::group_leave`].
    pub async fn group_leave(
        &self,
        stream: &str,
        group: &str,
        worker: &str,
    ) -> Result<(), ClientError> {
        self.call(&GroupLeave {
            stream,
            group,
            worker,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(op: &impl Op, expected: &str) {
        match op.check(&Limits::default()) {
            Err(ClientError::InvalidArgument(m)) => assert!(m.contains(expected), "{m}"),
            other => panic!("{expected}: {other:?}"),
        }
    }

    #[test]
    fn refused_before_sending() {
        let long = "w".repeat(129);
        let long_stream = "s".repeat(129);
        let released = vec![0u32; 501];
        let heartbeat = |stream, group, worker, released| GroupHeartbeat {
            stream,
            group,
            worker,
            failover_ms: 10_000,
            initial: InitialPosition::Latest,
            released,
        };
        refused(
            &heartbeat(&long_stream, "g", "w", &[]),
            "stream name is longer than 128 characters",
        );
        refused(
            &heartbeat("s", &long, "w", &[]),
            "group name is longer than 128 characters",
        );
        refused(
            &heartbeat("s", "g", &long, &[]),
            "worker name is longer than 128 characters",
        );
        refused(
            &heartbeat("s", "g", "w", &released),
            "a heartbeat releases at most 500 shards, got 501",
        );
        assert!(
            heartbeat("s", "g", "w", &released[..500])
                .check(&Limits::default())
                .is_ok()
        );
        let checkpoint = |checkpoint| GroupCheckpoint {
            stream: "s",
            group: "g",
            worker: "w",
            shard_index: 0,
            counter: 1,
            checkpoint,
        };
        refused(&checkpoint(LeaseCheckpoint::TrimHorizon), "not TrimHorizon");
        refused(&checkpoint(LeaseCheckpoint::Latest), "not Latest");
        assert!(
            checkpoint(LeaseCheckpoint::ShardEnd)
                .check(&Limits::default())
                .is_ok()
        );
        refused(
            &GroupDescribe {
                stream: "s",
                group: &long,
            },
            "group name is longer than 128 characters",
        );
        refused(
            &GroupLeave {
                stream: "s",
                group: "g",
                worker: &long,
            },
            "worker name is longer than 128 characters",
        );
    }
}
