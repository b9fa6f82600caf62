//! Who holds which lease: the coordinator's decisions, pure. Given a group's
//! lease table, the workers alive and what one worker reports in its
//! heartbeat, [`decide`] says which owners change (leases of dead workers
//! freed, released ones freed, free eligible leases taken up to the worker's
//! share) and which lease to ask back from the busiest worker; [`sync`] says
//! which leases the stream's shards need. The runtime (`service`) applies the
//! changes through the metadata log and keeps liveness and handovers.

use std::collections::{BTreeMap, BTreeSet};

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
/// TRIM_HORIZON, or the open ones from LATEST), or an existing group's for
/// shards made since (children: from TRIM_HORIZON, after their parents).
/// Shards below the group's largest leased index without a lease were left out
/// on purpose (LATEST) and stay out.
pub fn sync(
    group: Option<&Group>,
    (stream, stream_id, name): (&str, u64, &str),
    shards: &[StreamShard],
    initial: Initial,
    now_ms: i64,
) -> Option<Event> {
    match group {
        None => {
            let leases = shards
                .iter()
                .filter(|s| initial == Initial::TrimHorizon || s.open)
                .map(|s| {
                    let start = match initial {
                        Initial::TrimHorizon => Checkpoint::TrimHorizon,
                        Initial::Latest => Checkpoint::Latest,
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

/// What one heartbeat changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Owner changes, at most one per lease.
    pub changes: Vec<Assignment>,
    /// A lease to ask back from its holder (for the heartbeating worker):
    /// (shard, holder).
    pub revoke: Option<(u32, String)>,
}

/// Worker `worker`'s heartbeat: leases of owners not in `live` are freed, the
/// worker's `released` ones are freed, then the worker takes free eligible
/// leases (lowest shards first) up to its share, ⌈eligible / live⌉. Short of
/// free ones, it asks one back from the worker holding the most, when that
/// one holds at least two more than it does and has none being asked back
/// already (`revoking`: shard → holder). `live` includes `worker`.
pub fn decide(
    group: &Group,
    worker: &str,
    live: &BTreeSet<String>,
    released: &[u32],
    revoking: &BTreeMap<u32, String>,
) -> Decision {
    // Owners as they will be, and the changes that make them so.
    let mut owners: BTreeMap<u32, Option<&str>> = group
        .leases
        .iter()
        .map(|(s, l)| (*s, l.owner.as_deref()))
        .collect();
    for (shard, lease) in &group.leases {
        if lease.owner.as_deref().is_some_and(|o| !live.contains(o)) {
            owners.insert(*shard, None);
        }
    }
    for shard in released {
        if owners.get(shard).copied().flatten() == Some(worker) {
            owners.insert(*shard, None);
        }
    }
    let eligible: Vec<u32> = group
        .leases
        .keys()
        .copied()
        .filter(|s| group.eligible(*s))
        .collect();
    let target = eligible.len().div_ceil(live.len().max(1));
    let mut held: BTreeMap<&str, usize> = live.iter().map(|w| (w.as_str(), 0)).collect();
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
        if owners.get(s).copied().flatten().is_none() {
            owners.insert(*s, Some(worker));
            mine += 1;
        }
    }
    let mut revoke = None;
    if mine < target {
        let busiest = held
            .iter()
            .filter(|(w, n)| **w != worker && **n >= mine + 2)
            .filter(|(w, _)| !revoking.values().any(|h| h == *w))
            .max_by_key(|(w, n)| (**n, std::cmp::Reverse(**w)));
        if let Some((victim, _)) = busiest {
            // Its highest eligible shard.
            revoke = eligible
                .iter()
                .rev()
                .find(|s| owners.get(s).copied().flatten() == Some(*victim))
                .map(|s| (*s, victim.to_string()));
        }
    }
    Decision {
        changes: owners
            .into_iter()
            .filter(|(s, o)| group.leases[s].owner.as_deref() != *o)
            .map(|(shard, owner)| Assignment {
                shard,
                counter: group.leases[&shard].counter,
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
        let e = sync(None, ("s", 7, "g"), shards, initial, 0).unwrap();
        st.check(&e).unwrap();
        st.apply(e);
        (st, group_key("s", "g"))
    }

    fn live(ws: &[&str]) -> BTreeSet<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    /// Applies a heartbeat's decision; returns its revocation.
    fn beat(
        st: &mut GroupsState,
        key: &str,
        worker: &str,
        alive: &[&str],
        released: &[u32],
    ) -> Option<(u32, String)> {
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
        let (mut st, key) = group_of(&shards(&[0, 1, 2, 3], &[]), Initial::TrimHorizon);
        beat(&mut st, &key, "a", &["a"], &[]);
        assert_eq!(held(&st, &key, "a"), [0, 1, 2, 3]);
        // b joins: nothing free, so one of a's leases is asked back, not taken.
        let ask = beat(&mut st, &key, "b", &["a", "b"], &[]);
        assert_eq!(ask, Some((3, "a".to_string())));
        assert_eq!(held(&st, &key, "b"), Vec::<u32>::new());
        // a releases it; b takes it at its next heartbeat.
        beat(&mut st, &key, "a", &["a", "b"], &[3]);
        assert_eq!(held(&st, &key, "a"), [0, 1, 2]);
        beat(&mut st, &key, "b", &["a", "b"], &[]);
        assert_eq!(held(&st, &key, "b"), [3]);
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
        assert!(
            g.leases
                .values()
                .all(|l| l.checkpoint == Checkpoint::Latest)
        );
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
            Initial::Latest,
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
        assert_eq!(sync(Some(g), ("s", 7, "g"), &now, Initial::Latest, 6), None);
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
                sequence_number: 5,
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
