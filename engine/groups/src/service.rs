//! Consumer groups at runtime: the coordinator (one task on core 0, so every
//! decision sees the one lease table and every change is made in order) and
//! the native operations it serves (`GroupHeartbeat`, `GroupCheckpoint`,
//! `GroupDescribe`, `GroupLeave`: `riffle_protocol::native::groups`) as a
//! `riffle_engine::net::Extension` the binary registers. Calls arrive on any
//! core and are handed to the coordinator, except checkpoints: they go to the
//! metadata log directly (which checks owner and counter as it applies them
//! in order with the coordinator's changes), so that heartbeats never wait
//! behind checkpoints' fsyncs.
//!
//! Kept here, not in the metadata log: when each worker last heartbeated (a
//! worker is alive for its failover time after that; after a restart, every
//! lease owner is alive for the failover time it took the lease with, from
//! the start) and which leases are being asked back from their holders.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use riffle_engine::Engine;
use riffle_engine::meta::MetaHandle;
use riffle_engine::net::{Answer, Extension, LocalFuture};
use riffle_engine::rt;
use riffle_protocol::native::{
    Api, HeldLease, InitialPosition, LeaseCheckpoint, LeaseRow, Request, Response,
};
use riffle_protocol::{Error, routing};

use crate::coordinator::{self, Handover, Initial, StreamShard};
use crate::state::{Checkpoint, Event, Group, GroupsState, group_key};

/// Failover times allowed, ms (KCL's default is 10 s).
pub const FAILOVER_MS_MIN: u32 = 1_000;
pub const FAILOVER_MS_MAX: u32 = 3_600_000;
/// Group and worker names: 1 to this many characters of `[a-zA-Z0-9_.:-]`.
pub const NAME_CHARS_MAX: usize = 128;

type Reply<T> = flume::Sender<Result<T, Error>>;

enum Call {
    Heartbeat {
        stream: String,
        group: String,
        worker: String,
        failover_ms: u32,
        initial: Initial,
        released: Vec<u32>,
        reply: Reply<Vec<HeldLease>>,
    },
    Describe {
        stream: String,
        group: String,
        /// The group as stored, and its live workers.
        reply: Reply<(Group, Vec<String>)>,
    },
    Leave {
        stream: String,
        group: String,
        worker: String,
        reply: Reply<()>,
    },
}

/// The consumer groups service: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct GroupsService {
    inbox: flume::Sender<Call>,
    /// Checkpoints go to the metadata log directly, beside the coordinator:
    /// they never wait behind heartbeats, nor heartbeats behind their fsyncs.
    meta: MetaHandle<GroupsState>,
    engine: Engine,
}

impl GroupsService {
    /// Opens the groups' metadata log and starts the coordinator on core 0.
    /// Blocks: call it while wiring the server.
    pub fn start(engine: &Engine) -> Result<GroupsService, Error> {
        let meta = MetaHandle::<GroupsState>::open(engine, "groups")?;
        let (inbox, calls) = flume::bounded::<Call>(1024);
        let (engine_c, meta_c) = (engine.clone(), meta.clone());
        engine.run_on_core(0, move || {
            rt::spawn(async move {
                let mut c = Coordinator {
                    engine: engine_c,
                    meta: meta_c,
                    seen: HashMap::new(),
                    revoking: HashMap::new(),
                    started: Instant::now(),
                };
                while let Ok(call) = calls.recv_async().await {
                    c.serve(call).await;
                }
            })
        })?;
        Ok(GroupsService {
            inbox,
            meta,
            engine: engine.clone(),
        })
    }

    async fn ask<T>(&self, call: impl FnOnce(Reply<T>) -> Call) -> Result<T, Error> {
        let (tx, rx) = flume::bounded(1);
        self.inbox
            .send_async(call(tx))
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?;
        rx.recv_async()
            .await
            .map_err(|_| Error::internal("the engine is shutting down"))?
    }
}

impl Extension for GroupsService {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn apis(&self) -> Vec<Api> {
        vec![
            Api::GroupHeartbeat,
            Api::GroupCheckpoint,
            Api::GroupDescribe,
            Api::GroupLeave,
        ]
    }

    fn call<'a>(
        &'a self,
        request: &'a Request<'a>,
        answer: Answer<'a>,
    ) -> LocalFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match request {
                Request::GroupHeartbeat {
                    stream,
                    group,
                    worker,
                    failover_ms,
                    initial,
                    released,
                } => {
                    check_names(stream, group, Some(worker))?;
                    if !(FAILOVER_MS_MIN..=FAILOVER_MS_MAX).contains(failover_ms) {
                        return Err(Error::invalid(format!(
                            "Failover time must be {FAILOVER_MS_MIN} to {FAILOVER_MS_MAX} ms, got {failover_ms}."
                        )));
                    }
                    let initial = match initial {
                        InitialPosition::TrimHorizon => Initial::TrimHorizon,
                        InitialPosition::Latest => Initial::Latest,
                    };
                    let leases = self
                        .ask(|reply| Call::Heartbeat {
                            stream: stream.to_string(),
                            group: group.to_string(),
                            worker: worker.to_string(),
                            failover_ms: *failover_ms,
                            initial,
                            released: released.clone(),
                            reply,
                        })
                        .await?;
                    answer.respond(&Response::GroupLeases(leases));
                }
                Request::GroupCheckpoint {
                    stream,
                    group,
                    worker,
                    shard_index,
                    counter,
                    checkpoint,
                } => {
                    check_names(stream, group, Some(worker))?;
                    let checkpoint = match *checkpoint {
                        LeaseCheckpoint::After {
                            sequence_number,
                            sub_sequence_number,
                        } => Checkpoint::After {
                            sequence_number,
                            sub: sub_sequence_number,
                        },
                        LeaseCheckpoint::ShardEnd => Checkpoint::ShardEnd,
                        LeaseCheckpoint::TrimHorizon | LeaseCheckpoint::Latest => {
                            return Err(Error::invalid(
                                "A checkpoint is after a sequence number, or SHARD_END.",
                            ));
                        }
                    };
                    // Only for the stream's current incarnation (a group of a
                    // stream deleted and made again starts over). The log
                    // checks the owner and counter when it applies it.
                    let key = group_key(stream, group);
                    let stream_id = self.engine.stream_id(stream)?;
                    let current = self
                        .meta
                        .state()
                        .groups
                        .get(&key)
                        .is_some_and(|g| g.stream_id == stream_id);
                    if !current {
                        return Err(Error::not_found(format!(
                            "Consumer group {group} of stream {stream} not found."
                        )));
                    }
                    self.meta
                        .apply(Event::Checkpoint {
                            key,
                            shard: *shard_index,
                            owner: worker.to_string(),
                            counter: *counter,
                            checkpoint,
                        })
                        .await?;
                    answer.respond(&Response::GroupDone);
                }
                Request::GroupDescribe { stream, group } => {
                    check_names(stream, group, None)?;
                    let (g, workers) = self
                        .ask(|reply| Call::Describe {
                            stream: stream.to_string(),
                            group: group.to_string(),
                            reply,
                        })
                        .await?;
                    let rows = g
                        .leases
                        .iter()
                        .map(|(shard, l)| LeaseRow {
                            shard_index: *shard,
                            owner: l.owner.as_deref(),
                            counter: l.counter,
                            checkpoint: wire(l.checkpoint),
                            parents: l.parents.clone(),
                        })
                        .collect();
                    let workers = workers.iter().map(String::as_str).collect();
                    answer.respond(&Response::GroupTable { rows, workers });
                }
                Request::GroupLeave {
                    stream,
                    group,
                    worker,
                } => {
                    check_names(stream, group, Some(worker))?;
                    self.ask(|reply| Call::Leave {
                        stream: stream.to_string(),
                        group: group.to_string(),
                        worker: worker.to_string(),
                        reply,
                    })
                    .await?;
                    answer.respond(&Response::GroupDone);
                }
                other => {
                    return Err(Error::internal(format!(
                        "the groups extension was handed {:?}",
                        other.api()
                    )));
                }
            }
            Ok(())
        })
    }
}

fn wire(c: Checkpoint) -> LeaseCheckpoint {
    match c {
        Checkpoint::TrimHorizon => LeaseCheckpoint::TrimHorizon,
        Checkpoint::Latest => LeaseCheckpoint::Latest,
        Checkpoint::After {
            sequence_number,
            sub,
        } => LeaseCheckpoint::After {
            sequence_number,
            sub_sequence_number: sub,
        },
        Checkpoint::ShardEnd => LeaseCheckpoint::ShardEnd,
    }
}

/// Stream names as Kinesis allows them (so no internal stream); group and
/// worker names of `[a-zA-Z0-9_.:-]`, 1 to [`NAME_CHARS_MAX`].
fn check_names(stream: &str, group: &str, worker: Option<&str>) -> Result<(), Error> {
    let stream_ok = !stream.is_empty()
        && stream.len() <= 128
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !stream_ok {
        return Err(Error::invalid(format!(
            "Invalid stream name {stream:?}: 1 to 128 characters of [a-zA-Z0-9_.-]."
        )));
    }
    for (what, name) in [("group", Some(group)), ("worker", worker)] {
        let Some(name) = name else { continue };
        let ok = !name.is_empty()
            && name.len() <= NAME_CHARS_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !ok {
            return Err(Error::invalid(format!(
                "Invalid {what} name {name:?}: 1 to {NAME_CHARS_MAX} characters of [a-zA-Z0-9_.:-]."
            )));
        }
    }
    Ok(())
}

struct Coordinator {
    engine: Engine,
    meta: MetaHandle<GroupsState>,
    /// Per group: each worker's last heartbeat and its failover time.
    seen: HashMap<String, BTreeMap<String, (Instant, Duration)>>,
    /// Per group: leases asked back, by shard.
    revoking: HashMap<String, BTreeMap<u32, Handover>>,
    started: Instant,
}

impl Coordinator {
    async fn serve(&mut self, call: Call) {
        match call {
            Call::Heartbeat {
                stream,
                group,
                worker,
                failover_ms,
                initial,
                released,
                reply,
            } => {
                let r = self
                    .heartbeat(&stream, &group, &worker, failover_ms, initial, &released)
                    .await;
                let _ = reply.send(r);
            }
            Call::Describe {
                stream,
                group,
                reply,
            } => {
                let _ = reply.send(self.describe(&stream, &group));
            }
            Call::Leave {
                stream,
                group,
                worker,
                reply,
            } => {
                let _ = reply.send(self.leave(&stream, &group, &worker).await);
            }
        }
    }

    /// The group as stored now, if it reads this incarnation of `stream`.
    fn group(&self, stream: &str, group: &str, stream_id: u64) -> Option<Group> {
        let state = self.meta.state();
        state
            .groups
            .get(&group_key(stream, group))
            .filter(|g| g.stream_id == stream_id)
            .cloned()
    }

    /// The workers alive in group `key` now, with their failover times:
    /// heartbeated within their failover time, and lease owners not seen since
    /// the server started, for the failover time they took their leases with.
    fn live(&self, key: &str, g: &Group, now: Instant) -> BTreeMap<String, u32> {
        let seen = self.seen.get(key);
        let mut live: BTreeMap<String, u32> = seen
            .into_iter()
            .flatten()
            .filter(|(_, (at, failover))| now.saturating_duration_since(*at) <= *failover)
            .map(|(w, (_, failover))| (w.clone(), failover.as_millis() as u32))
            .collect();
        let since_start = now.saturating_duration_since(self.started);
        for lease in g.leases.values() {
            let Some(owner) = &lease.owner else { continue };
            let grace = Duration::from_millis(lease.failover_ms as u64);
            if !seen.is_some_and(|s| s.contains_key(owner)) && since_start <= grace {
                let f = live.entry(owner.clone()).or_insert(lease.failover_ms);
                *f = (*f).max(lease.failover_ms);
            }
        }
        live
    }

    async fn heartbeat(
        &mut self,
        stream: &str,
        group: &str,
        worker: &str,
        failover_ms: u32,
        initial: Initial,
        released: &[u32],
    ) -> Result<Vec<HeldLease>, Error> {
        let stream_id = self.engine.stream_id(stream)?;
        let shards: Vec<StreamShard> = self
            .engine
            .list_shards(stream)?
            .into_iter()
            .map(|s| StreamShard {
                index: s.shard_index,
                parents: [&s.parent_shard_id, &s.adjacent_parent_shard_id]
                    .into_iter()
                    .flatten()
                    .filter_map(|id| routing::parse_shard_id(id))
                    .collect(),
                open: s.ending_sequence_number.is_none(),
            })
            .collect();
        let key = group_key(stream, group);
        // The stream was deleted and created again: the group starts over.
        let stale = self
            .meta
            .state()
            .groups
            .get(&key)
            .is_some_and(|g| g.stream_id != stream_id);
        if stale {
            self.meta.apply(Event::Delete { key: key.clone() }).await?;
            self.seen.remove(&key);
            self.revoking.remove(&key);
        }
        let existing = self.group(stream, group, stream_id);
        // A new group from LATEST starts after each open shard's records now.
        let mut tips = BTreeMap::new();
        if existing.is_none() && initial == Initial::Latest {
            for s in shards.iter().filter(|s| s.open) {
                let tip = self
                    .engine
                    .shard_cursor(
                        stream,
                        s.index,
                        riffle_store::iterator::IteratorType::Latest,
                    )
                    .await?;
                tips.insert(s.index, tip.offset);
            }
        }
        if let Some(event) = coordinator::sync(
            existing.as_ref(),
            (stream, stream_id, group),
            &shards,
            (initial, &tips),
            rt::now_ms(),
        ) {
            self.meta.apply(event).await?;
        }
        let g = self
            .group(stream, group, stream_id)
            .ok_or_else(|| Error::internal(format!("consumer group {key} vanished")))?;
        let now = Instant::now();
        let seen = self.seen.entry(key.clone()).or_default();
        seen.insert(
            worker.to_string(),
            (now, Duration::from_millis(failover_ms as u64)),
        );
        // Workers silent past their failover time are gone (ids such as
        // host:pid are new after each restart of a worker).
        seen.retain(|_, (at, failover)| now.saturating_duration_since(*at) <= *failover);
        let live = self.live(&key, &g, now);
        let revoking = self.revoking.entry(key.clone()).or_default();
        // Handovers still under way: the holder still holds the lease.
        revoking.retain(|shard, h| {
            g.leases
                .get(shard)
                .is_some_and(|l| l.owner.as_deref() == Some(h.holder.as_str()))
        });
        let decision = coordinator::decide(&g, worker, &live, released, revoking);
        // Those the worker hands back now are done (given to their takers).
        revoking.retain(|shard, h| !(h.holder == worker && released.contains(shard)));
        if let Some((shard, handover)) = decision.revoke {
            revoking.insert(shard, handover);
        }
        if !decision.changes.is_empty() {
            self.meta
                .apply(Event::Assign {
                    key: key.clone(),
                    changes: decision.changes,
                })
                .await?;
        }
        let state = self.meta.state();
        let revoking = self.revoking.get(&key);
        Ok(state
            .groups
            .get(&key)
            .map(|g| {
                g.leases
                    .iter()
                    .filter(|(_, l)| l.owner.as_deref() == Some(worker))
                    .map(|(shard, l)| HeldLease {
                        shard_index: *shard,
                        counter: l.counter,
                        revoked: revoking.is_some_and(|r| r.contains_key(shard)),
                        checkpoint: wire(l.checkpoint),
                        parents: l.parents.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn describe(&self, stream: &str, group: &str) -> Result<(Group, Vec<String>), Error> {
        let stream_id = self.engine.stream_id(stream)?;
        let key = group_key(stream, group);
        let g = self.group(stream, group, stream_id).ok_or_else(|| {
            Error::not_found(format!(
                "Consumer group {group} of stream {stream} not found."
            ))
        })?;
        let live = self.live(&key, &g, Instant::now()).into_keys().collect();
        Ok((g, live))
    }

    async fn leave(&mut self, stream: &str, group: &str, worker: &str) -> Result<(), Error> {
        let stream_id = self.engine.stream_id(stream)?;
        let key = group_key(stream, group);
        if let Some(seen) = self.seen.get_mut(&key) {
            seen.remove(worker);
        }
        if let Some(r) = self.revoking.get_mut(&key) {
            r.retain(|_, h| h.holder != worker && h.taker != worker);
        }
        let Some(g) = self.group(stream, group, stream_id) else {
            return Ok(());
        };
        let changes: Vec<crate::state::Assignment> = g
            .leases
            .iter()
            .filter(|(_, l)| l.owner.as_deref() == Some(worker))
            .map(|(shard, l)| crate::state::Assignment {
                shard: *shard,
                counter: l.counter,
                owner: None,
                failover_ms: l.failover_ms,
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        self.meta.apply(Event::Assign { key, changes }).await
    }
}
