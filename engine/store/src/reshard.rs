//! Resharding plans: which open shards SplitShard, MergeShards and
//! UpdateShardCount close and which shards they add, with AWS's validation and
//! messages.
//!
//! Pure: a plan is computed from a [`StreamMeta`] and becomes a
//! [`CatalogEvent::Reshard`](crate::catalog::CatalogEvent::Reshard) once the
//! engine has sealed the shards it closes (and so knows their lengths). New shards
//! take the indexes after the stream's last one, in plan order.
//!
//! UpdateShardCount (`UNIFORM_SCALING`) ends with shards of equal size, like
//! AWS, and like AWS gets there through splits and merges so that every shard has
//! at most two parents: an open shard that straddles a boundary of the new layout
//! is split there (repeatedly if it straddles several), then the pieces inside each
//! new range are merged left to right. The shards made in between are created
//! closed and empty. An open shard whose range already is a new range is kept.

use riffle_protocol::{Error, ErrorCode};

use crate::catalog::{CatalogEvent, ClosedShard, NewShard, ShardMeta, StreamMeta};
use riffle_protocol::routing;

/// What a reshard does: the open shards it closes and the shards it adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub closes: Vec<u32>,
    pub opens: Vec<NewShard>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.closes.is_empty() && self.opens.is_empty()
    }

    /// The catalog event carrying out the plan on stream `name`, each closed
    /// shard with the length `end_offset` gives it.
    pub fn event(
        &self,
        name: &str,
        at_ms: i64,
        mut end_offset: impl FnMut(u32) -> u64,
    ) -> CatalogEvent {
        CatalogEvent::Reshard {
            name: name.to_string(),
            closes: self
                .closes
                .iter()
                .map(|&index| ClosedShard {
                    index,
                    end_offset: end_offset(index),
                })
                .collect(),
            opens: self.opens.clone(),
            at_ms,
        }
    }
}

/// Builds a plan: new shards are numbered from the stream's shard count.
struct Builder {
    count: u32,
    plan: Plan,
}

impl Builder {
    fn new(meta: &StreamMeta) -> Builder {
        Builder {
            count: meta.shards.len() as u32,
            plan: Plan::default(),
        }
    }

    fn add(&mut self, parent: u32, adjacent: Option<u32>, start: u128, end: u128) -> u32 {
        let index = self.count + self.plan.opens.len() as u32;
        self.plan.opens.push(NewShard {
            parent,
            adjacent_parent: adjacent,
            hash_key_start: start,
            hash_key_end: end,
            closed: false,
        });
        index
    }

    fn close(&mut self, index: u32) {
        match index.checked_sub(self.count) {
            Some(k) => self.plan.opens[k as usize].closed = true,
            None => self.plan.closes.push(index),
        }
    }
}

/// The open shard `index` of `meta`, or AWS's error (naming `account`).
fn open_shard<'a>(meta: &'a StreamMeta, index: u32, account: &str) -> Result<&'a ShardMeta, Error> {
    let shard = meta.shards.get(index as usize).ok_or_else(|| {
        Error::not_found(format!(
            "Could not find shard {} in stream {} under account {account}.",
            routing::shard_id(index),
            meta.name
        ))
    })?;
    if !shard.is_open() {
        return Err(Error::in_use(format!(
            "Shard {} in stream {} under account {account} has already been merged or split, and thus is not eligible for merging or splitting.",
            shard.shard_id(),
            meta.name
        )));
    }
    Ok(shard)
}

/// SplitShard: shard `index` becomes `[start, new_start - 1]` and
/// `[new_start, end]`. AWS requires `start + 1 < new_start < end`. Refusals
/// name `account`.
pub fn split(meta: &StreamMeta, index: u32, new_start: u128, account: &str) -> Result<Plan, Error> {
    let shard = open_shard(meta, index, account)?;
    let (start, end) = (shard.hash_key_start, shard.hash_key_end);
    if new_start <= start.saturating_add(1) || new_start >= end {
        return Err(Error::invalid(format!(
            "NewStartingHashKey {new_start} used in SplitShard() on shard {} in stream {} under account {account} is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
            shard.shard_id(),
            meta.name
        )));
    }
    let mut b = Builder::new(meta);
    b.add(index, None, start, new_start - 1);
    b.add(index, None, new_start, end);
    b.close(index);
    Ok(b.plan)
}

/// MergeShards: two open shards with adjacent ranges become one; the child's
/// parent is `index`, its adjacent parent `adjacent`. Refusals name `account`.
pub fn merge(meta: &StreamMeta, index: u32, adjacent: u32, account: &str) -> Result<Plan, Error> {
    let a = open_shard(meta, index, account)?;
    let b = open_shard(meta, adjacent, account)?;
    let touching =
        |x: &ShardMeta, y: &ShardMeta| x.hash_key_end.checked_add(1) == Some(y.hash_key_start);
    if index == adjacent || !(touching(a, b) || touching(b, a)) {
        return Err(Error::invalid(format!(
            "Shards {} and {} in stream {} under account {account} are not an adjacent pair of shards eligible for merging",
            a.shard_id(),
            b.shard_id(),
            meta.name
        )));
    }
    let mut plan = Builder::new(meta);
    plan.add(
        index,
        Some(adjacent),
        a.hash_key_start.min(b.hash_key_start),
        a.hash_key_end.max(b.hash_key_end),
    );
    plan.close(index);
    plan.close(adjacent);
    Ok(plan.plan)
}

/// UpdateShardCount with UNIFORM_SCALING: `target` open shards of equal size.
/// AWS allows at most double and at least half the current open shard count.
pub fn uniform(meta: &StreamMeta, target: u32) -> Result<Plan, Error> {
    let mut open: Vec<&ShardMeta> = meta.shards.iter().filter(|s| s.is_open()).collect();
    open.sort_by_key(|s| s.hash_key_start);
    let current = open.len() as u64;
    if target == 0 {
        return Err(Error::invalid(
            "1 validation error detected: Value '0' at 'targetShardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    if u64::from(target) > 2 * current {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}"
            ),
        ));
    }
    if 2 * u64::from(target) < current {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}"
            ),
        ));
    }
    let targets = routing::even_split(target);
    let bounds: Vec<u128> = targets[1..].iter().map(|&(start, _)| start).collect();
    let mut b = Builder::new(meta);
    // Split every open shard at the new boundaries inside it: (shard, start, end).
    let mut pieces: Vec<(u32, u128, u128)> = Vec::new();
    for s in open {
        let (mut cur, mut start) = (s.index, s.hash_key_start);
        for &cut in bounds
            .iter()
            .filter(|&&cut| cut > s.hash_key_start && cut <= s.hash_key_end)
        {
            let left = b.add(cur, None, start, cut - 1);
            let right = b.add(cur, None, cut, s.hash_key_end);
            b.close(cur);
            pieces.push((left, start, cut - 1));
            (cur, start) = (right, cut);
        }
        pieces.push((cur, start, s.hash_key_end));
    }
    // Merge the pieces of each new range, left to right.
    let mut pieces = pieces.into_iter();
    for (start, end) in targets {
        let mut acc = pieces.next().expect("pieces cover the key space");
        debug_assert_eq!(acc.1, start);
        while acc.2 < end {
            let next = pieces.next().expect("pieces cover the key space");
            let merged = b.add(acc.0, Some(next.0), acc.1, next.2);
            b.close(acc.0);
            b.close(next.0);
            acc = (merged, acc.1, next.2);
        }
        debug_assert_eq!(acc.2, end);
    }
    Ok(b.plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogState;
    use crate::metalog::StateMachine;
    use riffle_protocol::Limits;

    /// Not the default, so messages are seen to name the configured one.
    const ACCOUNT: &str = "123456789012";

    fn stream_with(shards: u32) -> CatalogState {
        let mut state = CatalogState::default();
        state.apply(CatalogEvent::CreateStream {
            name: "s".into(),
            shard_count: shards,
            retention_hours: 24,
            created_ms: 0,
        });
        state
    }

    /// Applies `plan` as the engine does (every closed shard got `7` records).
    fn apply(state: &mut CatalogState, plan: Plan) {
        let event = plan.event("s", 10, |_| 7);
        state.check(&event, &Limits::default(), ACCOUNT).unwrap();
        state.apply(event);
    }

    fn open_ranges(state: &CatalogState) -> Vec<(u128, u128)> {
        let mut r: Vec<_> = state
            .get("s")
            .unwrap()
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| (s.hash_key_start, s.hash_key_end))
            .collect();
        r.sort();
        r
    }

    #[test]
    fn split_then_merge_keeps_lineage_and_the_key_space() {
        let mut state = stream_with(1);
        let mid = 1u128 << 127;
        let plan = split(state.get("s").unwrap(), 0, mid, ACCOUNT).unwrap();
        apply(&mut state, plan);
        let s = state.get("s").unwrap();
        assert_eq!(s.shards.len(), 3);
        assert_eq!(s.shards[0].closed.unwrap().end_offset, 7);
        assert_eq!(
            (s.shards[1].parent, s.shards[1].hash_key_end),
            (Some(0), mid - 1)
        );
        assert_eq!(
            (s.shards[2].parent, s.shards[2].hash_key_start),
            (Some(0), mid)
        );
        assert_eq!(open_ranges(&state), vec![(0, mid - 1), (mid, u128::MAX)]);

        let plan = merge(state.get("s").unwrap(), 2, 1, ACCOUNT).unwrap();
        apply(&mut state, plan);
        let s = state.get("s").unwrap();
        assert_eq!(
            (s.shards[3].parent, s.shards[3].adjacent_parent),
            (Some(2), Some(1))
        );
        assert_eq!(open_ranges(&state), vec![(0, u128::MAX)]);
    }

    #[test]
    fn split_and_merge_refusals_are_aws_errors() {
        let mut state = stream_with(3);
        let meta = state.get("s").unwrap().clone();
        let (start, end) = (meta.shards[1].hash_key_start, meta.shards[1].hash_key_end);
        for bad in [start, start + 1, end, end + 1, 0] {
            let e = split(&meta, 1, bad, ACCOUNT).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message.contains("NewStartingHashKey"), "{e}");
            assert!(e.message.contains("under account 123456789012"), "{e}");
        }
        assert_eq!(
            split(&meta, 9, start + 5, ACCOUNT).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        let e = merge(&meta, 0, 2, ACCOUNT).unwrap_err();
        assert!(e.message.contains("not an adjacent pair"), "{e}");
        assert_eq!(
            merge(&meta, 1, 1, ACCOUNT).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        apply(&mut state, merge(&meta, 1, 0, ACCOUNT).unwrap());
        let meta = state.get("s").unwrap();
        let e = split(meta, 0, 5, ACCOUNT).unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceInUse);
        assert!(e.message.contains("already been merged or split"), "{e}");
        assert_eq!(
            merge(meta, 3, 1, ACCOUNT).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
    }

    #[test]
    fn uniform_scaling_ends_even_with_at_most_two_parents() {
        for (from, to) in [
            (1, 2),
            (2, 1),
            (3, 5),
            (5, 3),
            (4, 8),
            (8, 4),
            (5, 5),
            (7, 13),
            (6, 3),
        ] {
            let mut state = stream_with(from);
            let plan = uniform(state.get("s").unwrap(), to).unwrap();
            apply(&mut state, plan);
            assert_eq!(
                open_ranges(&state),
                routing::even_split(to),
                "{from} -> {to}"
            );
            let s = state.get("s").unwrap();
            // Closed shards made on the way are empty; every new shard's parents
            // are closed and together cover exactly its range.
            for shard in &s.shards[from as usize..] {
                let parents: Vec<&ShardMeta> = std::iter::once(shard.parent.unwrap())
                    .chain(shard.adjacent_parent)
                    .map(|p| &s.shards[p as usize])
                    .collect();
                assert!(parents.iter().all(|p| !p.is_open()));
                let lo = parents.iter().map(|p| p.hash_key_start).min().unwrap();
                let hi = parents.iter().map(|p| p.hash_key_end).max().unwrap();
                assert!(
                    lo <= shard.hash_key_start && shard.hash_key_end <= hi,
                    "{from} -> {to}"
                );
                if let Some(end) = shard.closed {
                    assert_eq!(end.end_offset, 0);
                }
            }
        }
        let state = stream_with(4);
        assert!(uniform(state.get("s").unwrap(), 4).unwrap().is_empty());
        assert_eq!(
            uniform(state.get("s").unwrap(), 9).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
        assert_eq!(
            uniform(state.get("s").unwrap(), 1).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
    }

    /// The largest uniform scalings AWS's 500-shard limit allows fit in one
    /// catalog event, even with the longest lengths.
    #[test]
    fn the_largest_scalings_fit_in_a_catalog_event() {
        for (from, to) in [(250, 500), (333, 500), (499, 500), (500, 250), (500, 499)] {
            let state = stream_with(from);
            let plan = uniform(state.get("s").unwrap(), to).unwrap();
            let event = plan.event("s", i64::MAX, |_| u64::MAX);
            state.check(&event, &Limits::default(), ACCOUNT).unwrap();
        }
    }

    #[test]
    fn inconsistent_reshard_events_are_refused() {
        let state = stream_with(2);
        let bad = |closes: Vec<ClosedShard>, opens: Vec<NewShard>| {
            let event = CatalogEvent::Reshard {
                name: "s".into(),
                closes,
                opens,
                at_ms: 0,
            };
            state
                .check(&event, &Limits::default(), ACCOUNT)
                .unwrap_err()
        };
        let whole = |parent| NewShard {
            parent,
            adjacent_parent: None,
            hash_key_start: 0,
            hash_key_end: u128::MAX,
            closed: false,
        };
        // A gap: shard 0 closed, nothing opened in its place.
        let c0 = ClosedShard {
            index: 0,
            end_offset: 1,
        };
        bad(vec![c0], vec![]);
        // Overlap: a new whole-space shard while shard 1 stays open.
        bad(vec![c0], vec![whole(0)]);
        // A parent the event does not close.
        bad(vec![], vec![whole(1)]);
        // A shard closed twice.
        bad(vec![c0, c0], vec![whole(0)]);
    }
}
