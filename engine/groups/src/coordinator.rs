//! Who holds which lease: the coordinator's decisions, pure. Given a group's
//! lease table, the workers alive and what one worker reports in its
//! heartbeat, [`decide`] says which owners change (leases of dead workers
//! freed, a lease handed back given to the worker that asked for it, free
//! eligible leases taken up to the worker's share) and which lease to ask back
//! from the busiest worker; [`sync`] says which leases the stream's shards
//! need. The runtime (`service`) applies the changes through the metadata log
//! and keeps liveness and handovers.
//!
//! Balance: shares differ by at most one. A worker two or more below the
//! busiest asks one lease back from it; the holder hands it back at its next
//! heartbeat and it goes to the asker, never back to the holder (no lease
//! moves twice for one imbalance).

use std::collections::BTreeMap;

use crate::state::{Assignment, Checkpoint, Event, Group, Lease};

/// A shard of the stream as the coordinator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamShard {
    pub index: u32,
    pub parents: Vec<u32>,
    pub open: bool,
}

/// Where a new group's leases start (KCL's `initialPositionInStream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial {
    TrimHorizon,
    Latest,
}

/// The leases the stream's shards need: a new group's (all shards from
/// TRIM_HORIZON, or the open ones from their tip now: `tips` has each open
/// shard's length, and a record put after the group was made is never missed,
/// whoever holds the lease when), or an existing group's for shards made since
/// (children: from TRIM_HORIZON, after their parents). Shards below the
/// group's largest leased index without a lease were left out on purpose
/// (LATEST) and stay out.
pub fn sync(
    group: Option<&Group>,
    (stream, stream_id, name): (&str, u64, &str),
    shards: &[StreamShard],
    (initial, tips): (Initial, &BTreeMap<u32, u64>),
    now_ms: i64,
) -> Option<Event> {
    match group {
        None => {
            let leases = shards
                .iter()
                .filter(|s| initial == Initial::TrimHorizon || s.open)
                .map(|s| {
                    let tip = tips.get(&s.index).copied().unwrap_or(0);
                    let start = match initial {
                        Initial::Latest if tip > 0 => Checkpoint::After {
                            sequence_number: riffle_protocol::seqno::encode(s.index, tip - 1),
                            sub: None,
                        },
                        _ => Checkpoint::TrimHorizon,
                    };
                    (s.index, Lease::new(s.parents.clone(), start))
                })
                .collect();
            Some(Event::Create {
                stream: stream.to_owned(),
                stream_id,
                name: name.to_owned(),
                created_ms: now_ms,
                leases,
            })
        }
        Some(g) => {
            let newest = g.leases.keys().next_back().copied();
            let leases: BTreeMap<u32, Lease> = shards
                .iter()
                .filter(|s| newest.is_none_or(|n| s.index > n))
                .map(|s| {
                    (
                        s.index,
                        Lease::new(s.parents.clone(), Checkpoint::TrimHorizon),
                    )
                })
                .collect();
            (!leases.is_empty()).then(|| Event::AddLeases {
                key: crate::state::group_key(&g.stream, &g.name),
                leases,
            })
        }
    }
}

/// A lease being asked back: from its holder, for the taker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub holder: String,
    pub taker: String,
}

/// What one heartbeat changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Owner changes, at most one per lease.
    pub changes: Vec<Assignment>,
    /// A lease to ask back from its holder for the heartbeating worker.
    pub revoke: Option<(u32, Handover)>,
}

/// Worker `worker`'s heartbeat. `live`: the workers alive and their failover
/// times (including `worker`); `revoking`: the leases being asked back.
/// - Leases of owners not alive are freed.
/// - Leases the worker hands back (`released`) go to the worker that asked
///   for them, if it is alive, else are freed; the worker does not take them
///   again in this heartbeat.
/// - The worker takes free eligible leases (lowest shards first) up to its
///   share, ⌈eligible / live⌉.
/// - Short of free ones, it asks one back from the worker holding the most,
///   when that one holds at least two more than it does and has none being
///   asked back already.
pub fn decide(
    group: &Group,
    worker: &str,
    live: &BTreeMap<String, u32>,
    released: &[u32],
    revoking: &BTreeMap<u32, Handover>,
) -> Decision {
    // Owners as they will be, and the changes that make them so.
    let mut owners: BTreeMap<u32, Option<&str>> = group
        .leases
        .iter()
        .map(|(s, l)| (*s, l.owner.as_deref()))
        .collect();
    for (shard, lease) in &group.leases {
        if lease
            .owner
            .as_deref()
            .is_some_and(|o| !live.contains_key(o))
        {
            owners.insert(*shard, None);
        }
    }
    for shard in released {
        if owners.get(shard).copied().flatten() == Some(worker) {
            let taker = revoking
                .get(shard)
                .filter(|h| h.holder == worker && live.contains_key(&h.taker))
                .map(|h| h.taker.as_str());
            owners.insert(*shard, taker);
        }
    }
    let eligible: Vec<u32> = group
        .leases
        .keys()
        .copied()
        .filter(|s| group.eligible(*s))
        .collect();
    let target = eligible.len().div_ceil(live.len().max(1));
    let mut held: BTreeMap<&str, usize> = live.keys().map(|w| (w.as_str(), 0)).collect();
    for s in &eligible {
        if let Some(Some(o)) = owners.get(s) {
            *held.entry(o).or_default() += 1;
        }
    }
    let mut mine = held.get(worker).copied().unwrap_or(0);
    for s in &eligible {
        if mine >= target {
            break;
        }
        if owners.get(s).copied().flatten().is_none() && !released.contains(s) {
            owners.insert(*s, Some(worker));
            mine += 1;
        }
    }
    let mut revoke = None;
    if mine < target {
        let busiest = held
            .iter()
            .filter(|(w, n)| **w != worker && **n >= mine + 2)
            .filter(|(w, _)| !revoking.values().any(|h| h.holder == **w))
            .max_by_key(|(w, n)| (**n, std::cmp::Reverse(**w)));
        if let Some((victim, _)) = busiest {
            // Its highest eligible shard.
            revoke = eligible
                .iter()
                .rev()
                .find(|s| owners.get(s).copied().flatten() == Some(*victim))
                .map(|s| {
                    let handover = Handover {
                        holder: victim.to_string(),
                        taker: worker.to_string(),
                    };
                    (*s, handover)
                });
        }
    }
    Decision {
        changes: owners
            .into_iter()
            .filter(|(s, o)| group.leases[s].owner.as_deref() != *o)
            .map(|(shard, owner)| Assignment {
                shard,
                counter: group.leases[&shard].counter,
                failover_ms: owner
                    .and_then(|o| live.get(o))
                    .copied()
                    .unwrap_or(crate::state::DEFAULT_FAILOVER_MS),
                owner: owner.map(str::to_owned),
            })
            .collect(),
        revoke,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{GroupsState, group_key};
    use riffle_store::metalog::StateMachine;

    fn shards(open: &[u32], closed: &[(u32, &[u32])]) -> Vec<StreamShard> {
        let mut v: Vec<StreamShard> = open
            .iter()
            .map(|i| StreamShard {
                index: *i,
                parents: vec![],
                open: true,
            })
            .collect();
        v.extend(closed.iter().map(|(i, p)| StreamShard {
            index: *i,
            parents: p.to_vec(),
            open: false,
        }));
        v.sort_by_key(|s| s.index);
        v
    }

    fn group_of(shards: &[StreamShard], initial: Initial) -> (GroupsState, String) {
        let mut st = GroupsState::default();
        let e = sync(None, ("s", 7, "g"), shards, (initial, &BTreeMap::new()), 0).unwrap();
        st.check(&e).unwrap();
        st.apply(e);
        (st, group_key("s", "g"))
    }

    fn live(ws: &[&str]) -> BTreeMap<String, u32> {
        ws.iter().map(|w| (w.to_string(), 3000)).collect()
    }

    /// Workers heartbeating in turn as the runtime drives them: a worker
    /// hands back what it was asked for at its next heartbeat.
    struct Sim {
        st: GroupsState,
        key: String,
        revoking: BTreeMap<u32, Handover>,
        /// Lease moves so far.
        moves: usize,
    }

    impl Sim {
        fn beat(&mut self, worker: &str, alive: &[&str]) {
            let g = &self.st.groups[&self.key];
            // What the runtime's answer told this worker to hand back.
            let released: Vec<u32> = self
                .revoking
                .iter()
                .filter(|(s, h)| h.holder == worker && g.leases[s].owner.as_deref() == Some(worker))
                .map(|(s, _)| *s)
                .collect();
            let d = decide(g, worker, &live(alive), &released, &self.revoking);
            self.revoking
                .retain(|s, h| !(h.holder == worker && released.contains(s)));
            if let Some((s, h)) = d.revoke {
                self.revoking.insert(s, h);
            }
            if !d.changes.is_empty() {
                self.moves += d.changes.len();
                let e = Event::Assign {
                    key: self.key.clone(),
                    changes: d.changes,
                };
                self.st.check(&e).expect("a decision always applies");
                self.st.apply(e);
            }
        }
    }

    /// Applies a heartbeat's decision (no handovers: see [`Sim`]); returns
    /// its revocation.
    fn beat(
        st: &mut GroupsState,
        key: &str,
        worker: &str,
        alive: &[&str],
        released: &[u32],
    ) -> Option<(u32, Handover)> {
        let d = decide(
            &st.groups[key],
            worker,
            &live(alive),
            released,
            &BTreeMap::new(),
        );
        if !d.changes.is_empty() {
            let e = Event::Assign {
                key: key.into(),
                changes: d.changes,
            };
            st.check(&e).expect("a decision always applies");
            st.apply(e);
        }
        d.revoke
    }

    fn held(st: &GroupsState, key: &str, worker: &str) -> Vec<u32> {
        st.groups[key]
            .leases
            .iter()
            .filter(|(_, l)| l.owner.as_deref() == Some(worker))
            .map(|(s, _)| *s)
            .collect()
    }

    #[test]
    fn eight_shards_spread_over_three_workers() {
        let (mut st, key) = group_of(
            &shards(&[0, 1, 2, 3, 4, 5, 6, 7], &[]),
            Initial::TrimHorizon,
        );
        let all = ["a", "b", "c"];
        for w in all {
            beat(&mut st, &key, w, &all, &[]);
        }
        let counts: Vec<usize> = all.iter().map(|w| held(&st, &key, w).len()).collect();
        assert_eq!(counts, [3, 3, 2]);
        // Steady: heartbeats change nothing.
        for w in all {
            assert_eq!(beat(&mut st, &key, w, &all, &[]), None);
        }
        assert_eq!(
            all.iter()
                .map(|w| held(&st, &key, w).len())
                .collect::<Vec<_>>(),
            [3, 3, 2]
        );
    }

    #[test]
    fn a_dead_workers_leases_are_taken_by_the_living() {
        let (mut st, key) = group_of(&shards(&[0, 1, 2, 3], &[]), Initial::TrimHorizon);
        beat(&mut st, &key, "a", &["a", "b"], &[]);
        beat(&mut st, &key, "b", &["a", "b"], &[]);
        assert_eq!(held(&st, &key, "b"), [2, 3]);
        let before = st.groups[&key].leases[&2].counter;
        // b stops heartbeating: a's next heartbeat frees and takes its leases.
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [0, 1, 2, 3]);
        assert_eq!(st.groups[&key].leases[&2].counter, before + 1, "one move");
    }

    #[test]
    fn a_new_worker_gets_leases_handed_over() {
        let (st, key) = group_of(&shards(&[0, 1, 2, 3], &[]), Initial::TrimHorizon);
        let mut sim = Sim {
            st,
            key: key.clone(),
            revoking: BTreeMap::new(),
            moves: 0,
        };
        sim.beat("a", &["a"]);
        assert_eq!(held(&sim.st, &key, "a"), [0, 1, 2, 3]);
        // b joins: nothing free, so one of a's leases is asked back, not taken.
        sim.beat("b", &["a", "b"]);
        assert_eq!(sim.revoking.keys().copied().collect::<Vec<_>>(), [3]);
        assert_eq!(held(&sim.st, &key, "b"), Vec::<u32>::new());
        // a hands it back: it goes to b at once, not back to a.
        sim.beat("a", &["a", "b"]);
        assert_eq!(held(&sim.st, &key, "a"), [0, 1, 2]);
        assert_eq!(held(&sim.st, &key, "b"), [3]);
    }

    /// Joins in every order, for several shard counts: shares end within one
    /// of each other and then nothing moves.
    #[test]
    fn balance_converges_and_stays() {
        for n in 1..=12u32 {
            let all: Vec<u32> = (0..n).collect();
            let (st, key) = group_of(&shards(&all, &[]), Initial::TrimHorizon);
            let mut sim = Sim {
                st,
                key: key.clone(),
                revoking: BTreeMap::new(),
                moves: 0,
            };
            let workers = ["a", "b", "c"];
            for joined in 1..=3 {
                for _ in 0..3 * n {
                    for w in &workers[..joined] {
                        sim.beat(w, &workers[..joined]);
                    }
                }
            }
            let counts: Vec<usize> = workers
                .iter()
                .map(|w| held(&sim.st, &key, w).len())
                .collect();
            let (max, min) = (counts.iter().max().unwrap(), counts.iter().min().unwrap());
            assert!(max - min <= 1, "{n} shards: {counts:?}");
            assert_eq!(counts.iter().sum::<usize>(), n as usize);
            let settled = sim.moves;
            for _ in 0..10 {
                for w in workers {
                    sim.beat(w, &workers);
                }
            }
            assert_eq!(sim.moves, settled, "{n} shards: leases kept moving");
        }
    }

    #[test]
    fn children_wait_for_their_parents_to_end() {
        // 0 split into 1 and 2; 1 and 2 merged into 3.
        let all = shards(&[3], &[(0, &[]), (1, &[0]), (2, &[0])]);
        let mut all = all;
        all.iter_mut().find(|s| s.index == 3).unwrap().parents = vec![1, 2];
        let (mut st, key) = group_of(&all, Initial::TrimHorizon);
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [0]);
        let end = |st: &mut GroupsState, shard: u32| {
            let counter = st.groups[&key].leases[&shard].counter;
            let e = Event::Checkpoint {
                key: key.clone(),
                shard,
                owner: "a".into(),
                counter,
                checkpoint: Checkpoint::ShardEnd,
            };
            st.check(&e).unwrap();
            st.apply(e);
        };
        end(&mut st, 0);
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [1, 2]);
        end(&mut st, 1);
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [2], "3 waits for 2 as well");
        end(&mut st, 2);
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [3]);
    }

    #[test]
    fn latest_leases_only_the_open_shards_and_later_children() {
        let (mut st, key) = group_of(&shards(&[1, 2], &[(0, &[])]), Initial::Latest);
        let g = &st.groups[&key];
        assert_eq!(g.leases.keys().copied().collect::<Vec<_>>(), [1, 2]);
        // Empty shards start at TRIM_HORIZON; a shard with records after its tip.
        assert!(
            g.leases
                .values()
                .all(|l| l.checkpoint == Checkpoint::TrimHorizon)
        );
        let tips = BTreeMap::from([(1, 0), (2, 5)]);
        let e = sync(
            None,
            ("s", 7, "g2"),
            &shards(&[1, 2], &[(0, &[])]),
            (Initial::Latest, &tips),
            0,
        );
        let Some(Event::Create { leases, .. }) = e else {
            panic!("{e:?}")
        };
        assert_eq!(leases[&1].checkpoint, Checkpoint::TrimHorizon);
        assert_eq!(
            leases[&2].checkpoint,
            Checkpoint::After {
                sequence_number: riffle_protocol::seqno::encode(2, 4),
                sub: None
            }
        );
        let tips = BTreeMap::new();
        // 2 splits into 3 and 4: their leases come from TRIM_HORIZON; 0 stays out.
        let now = shards(&[1, 3, 4], &[(0, &[]), (2, &[])]);
        let now: Vec<StreamShard> = now
            .into_iter()
            .map(|mut s| {
                if s.index >= 3 {
                    s.parents = vec![2];
                }
                s
            })
            .collect();
        let e = sync(
            Some(&st.groups[&key]),
            ("s", 7, "g"),
            &now,
            (Initial::Latest, &tips),
            5,
        )
        .unwrap();
        st.check(&e).unwrap();
        st.apply(e);
        let g = &st.groups[&key];
        assert_eq!(g.leases.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(g.leases[&3].checkpoint, Checkpoint::TrimHorizon);
        assert_eq!(g.leases[&3].parents, [2]);
        assert!(!g.eligible(3) && g.eligible(2));
        assert_eq!(
            sync(Some(g), ("s", 7, "g"), &now, (Initial::Latest, &tips), 6),
            None
        );
    }

    #[test]
    fn checkpoints_need_the_current_owner_and_counter() {
        let (mut st, key) = group_of(&shards(&[0], &[]), Initial::TrimHorizon);
        beat(&mut st, &key, "a", &["a"], &[]);
        let counter = st.groups[&key].leases[&0].counter;
        let at = |owner: &str, counter| Event::Checkpoint {
            key: key.clone(),
            shard: 0,
            owner: owner.into(),
            counter,
            checkpoint: Checkpoint::After {
                sequence_number: riffle_protocol::seqno::encode(0, 5),
                sub: Some(2),
            },
        };
        assert!(st.check(&at("a", counter)).is_ok());
        assert_eq!(
            st.check(&at("b", counter)).unwrap_err().code,
            riffle_protocol::ErrorCode::ConcurrentModification
        );
        assert!(st.check(&at("a", counter + 1)).is_err());
        // Taken over by b after a died: a's checkpoint is refused.
        beat(&mut st, &key, "b", &["b"], &[]);
        assert!(st.check(&at("a", counter)).is_err());
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<GroupsState>(&json).unwrap(), st);
    }
}
