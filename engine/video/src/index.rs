//! A video stream's fragment index: every whole fragment stored in its
//! internal stream, by fragment number, with where its records start and
//! its facts (producer and server timestamps, duration, size). Pure: the
//! runtime (`media.rs`) keeps one per stream, fills it as PutMedia stores
//! fragments, and rebuilds it from the stored records at startup
//! ([`Rebuild`]).
//!
//! Numbers are given when a fragment's first byte arrives (its BUFFERING
//! ack names it), so with several PutMedia sessions a later number can be
//! stored before an earlier one. Readers that follow the stream live stop
//! before the smallest number still being received ([`FragmentIndex::settled_below`]),
//! so none is skipped; a number whose fragment is never stored (an error,
//! a disconnect) is given up ([`FragmentIndex::abandon`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::record::{self, FragmentFacts, Stored};

/// One whole stored fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub facts: FragmentFacts,
    /// The shard offset of its first part.
    pub offset: u64,
    pub part_count: u16,
}

/// Which timestamp a range selects on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    Producer,
    Server,
}

impl Entry {
    pub fn time_ms(&self, kind: TimeKind) -> i64 {
        match kind {
            TimeKind::Producer => self.facts.producer_ms,
            TimeKind::Server => self.facts.server_ms,
        }
    }
}

/// The fragments of one video stream.
#[derive(Debug, Default)]
pub struct FragmentIndex {
    fragments: BTreeMap<u128, Entry>,
    /// The last number given (stored or not).
    last_number: u128,
    /// Numbers given whose fragments are still being received or stored.
    in_flight: BTreeSet<u128>,
}

impl FragmentIndex {
    /// A number for a fragment whose first byte arrived at `now_ms`.
    pub fn assign(&mut self, now_ms: i64) -> u128 {
        let n = record::next_number(self.last_number, now_ms);
        self.last_number = n;
        self.in_flight.insert(n);
        n
    }

    /// A fragment is durable: readers may see it.
    pub fn stored(&mut self, entry: Entry) {
        let n = entry.facts.number;
        self.in_flight.remove(&n);
        self.last_number = self.last_number.max(n);
        self.fragments.insert(n, entry);
    }

    /// A number whose fragment will never be stored.
    pub fn abandon(&mut self, number: u128) {
        self.in_flight.remove(&number);
    }

    /// Readers following live may serve numbers below this (all of them
    /// when nothing is in flight).
    pub fn settled_below(&self) -> u128 {
        self.in_flight.first().copied().unwrap_or(u128::MAX)
    }

    /// Forgets fragments whose first record is before `offset` (the
    /// internal stream's trim horizon: retention removed them).
    pub fn drop_before(&mut self, offset: u64) {
        self.fragments.retain(|_, e| e.offset >= offset);
    }

    pub fn len(&self) -> usize {
        self.fragments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    pub fn get(&self, number: u128) -> Option<&Entry> {
        self.fragments.get(&number)
    }

    /// The first settled fragment after `number` (`None`: from the first).
    pub fn next_after(&self, number: Option<u128>) -> Option<&Entry> {
        let from = match number {
            Some(n) => Bound::Excluded(n),
            None => Bound::Unbounded,
        };
        let below = self.settled_below();
        self.fragments
            .range((from, Bound::Unbounded))
            .next()
            .map(|(_, e)| e)
            .filter(|e| e.facts.number < below)
    }

    /// The newest `count` fragments numbered below `below`, oldest first
    /// (read from the newest end: a long index is not walked).
    pub fn newest(&self, count: usize, below: u128) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .fragments
            .range(..below)
            .rev()
            .take(count)
            .map(|(_, e)| *e)
            .collect();
        out.reverse();
        out
    }

    /// The newest stored fragment.
    pub fn last(&self) -> Option<&Entry> {
        self.fragments.values().next_back()
    }

    /// Where a reader starting at `ms` starts, in number order (which is
    /// server-time order and, within a session, producer-time order): by
    /// producer time, the fragment whose media holds `ms` (its timestamp
    /// plus its duration), or else the first after it; by server time, the
    /// first fragment that began arriving at or after `ms`.
    pub fn at_time(&self, kind: TimeKind, ms: i64) -> Option<&Entry> {
        self.fragments.values().find(|e| match kind {
            TimeKind::Producer => {
                let end = e
                    .facts
                    .producer_ms
                    .saturating_add(i64::from(e.facts.duration_ms).max(1));
                ms < end
            }
            TimeKind::Server => e.facts.server_ms >= ms,
        })
    }

    /// Fragments whose timestamp (by `kind`) is in `[start, end]`, in
    /// number order, after `after` (a page's last number).
    pub fn in_range(
        &self,
        kind: TimeKind,
        start_ms: i64,
        end_ms: i64,
        after: Option<u128>,
    ) -> impl Iterator<Item = &Entry> {
        let from = match after {
            Some(n) => Bound::Excluded(n),
            None => Bound::Unbounded,
        };
        self.fragments
            .range((from, Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(move |e| (start_ms..=end_ms).contains(&e.time_ms(kind)))
    }
}

/// Rebuilds an index from a stream's stored records, fed in offset order
/// (a recovery scan): whole fragments are indexed; a fragment whose parts
/// stop short (a crash between two appends of one fragment) is not. A
/// large fragment's parts go in several appends, so another session's
/// records may come between them: parts are matched by fragment number.
#[derive(Debug, Default)]
pub struct Rebuild {
    index: FragmentIndex,
    /// Fragments whose parts are being read: the entry and the next part.
    partial: BTreeMap<u128, (Entry, u16)>,
}

impl Rebuild {
    /// One record read back: its offset, partition key and data.
    pub fn record(&mut self, offset: u64, key: &str, data: &[u8]) {
        let Some(Stored::Part {
            facts,
            part,
            part_count,
            ..
        }) = record::parse(key, data)
        else {
            return;
        };
        let n = facts.number;
        // The number counts as given even when the fragment is not whole.
        self.index.last_number = self.index.last_number.max(n);
        if part == 0 {
            let entry = Entry {
                facts,
                offset,
                part_count,
            };
            self.partial.insert(n, (entry, 0));
        }
        let Some((entry, next)) = self.partial.get_mut(&n) else {
            return;
        };
        if entry.facts != facts || entry.part_count != part_count || *next != part {
            // Out of place: the fragment is not whole.
            self.partial.remove(&n);
            return;
        }
        *next += 1;
        if *next == part_count {
            let entry = *entry;
            self.partial.remove(&n);
            self.index.fragments.insert(n, entry);
        }
    }

    pub fn finish(self) -> FragmentIndex {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::fragment_parts;

    fn facts(number: u128, producer_ms: i64, server_ms: i64) -> FragmentFacts {
        FragmentFacts {
            number,
            header_offset: 0,
            producer_ms,
            server_ms,
            duration_ms: 1000,
            size: 10,
            timecode: 0,
        }
    }

    fn entry(number: u128, offset: u64) -> Entry {
        Entry {
            facts: facts(number, number as i64 * 1000, number as i64 * 1000 + 5),
            offset,
            part_count: 1,
        }
    }

    #[test]
    fn readers_never_pass_a_number_still_in_flight() {
        let mut ix = FragmentIndex::default();
        let a = ix.assign(1_000);
        let b = ix.assign(1_000);
        assert!(a < b);
        // b is stored first (another session), a is still arriving.
        ix.stored(Entry {
            facts: facts(b, 0, 0),
            offset: 5,
            part_count: 1,
        });
        assert_eq!(ix.next_after(None), None);
        ix.stored(Entry {
            facts: facts(a, 0, 0),
            offset: 9,
            part_count: 1,
        });
        assert_eq!(ix.next_after(None).map(|e| e.facts.number), Some(a));
        assert_eq!(ix.next_after(Some(a)).map(|e| e.facts.number), Some(b));
        // An abandoned number holds nothing back.
        let c = ix.assign(1_000);
        let d = ix.assign(1_000);
        ix.stored(Entry {
            facts: facts(d, 0, 0),
            offset: 12,
            part_count: 1,
        });
        assert_eq!(ix.next_after(Some(b)), None);
        ix.abandon(c);
        assert_eq!(ix.next_after(Some(b)).map(|e| e.facts.number), Some(d));
        assert_eq!(ix.settled_below(), u128::MAX);
    }

    #[test]
    fn time_lookups_and_ranges() {
        let mut ix = FragmentIndex::default();
        for n in 1..=5u128 {
            ix.stored(entry(n, n as u64 * 10));
        }
        // Producer times 1000..5000, each 1000 ms long.
        let at = |ms| ix.at_time(TimeKind::Producer, ms).map(|e| e.facts.number);
        assert_eq!(at(0), Some(1));
        assert_eq!(at(2_500), Some(2));
        assert_eq!(at(3_000), Some(3));
        assert_eq!(at(9_000), None);
        // By server time (1005, 2005, ...): the first that began at or after.
        let by_server = |ms| ix.at_time(TimeKind::Server, ms).map(|e| e.facts.number);
        assert_eq!(by_server(2_005), Some(2));
        assert_eq!(by_server(2_006), Some(3));
        assert_eq!(by_server(0), Some(1));
        assert_eq!(by_server(5_006), None);
        let range = |ix: &FragmentIndex, s, e, after| {
            ix.in_range(TimeKind::Server, s, e, after)
                .map(|e| e.facts.number)
                .collect::<Vec<_>>()
        };
        assert_eq!(range(&ix, 2_005, 4_005, None), vec![2, 3, 4]);
        assert_eq!(range(&ix, 2_005, 4_005, Some(2)), vec![3, 4]);
        assert_eq!(range(&ix, 2_006, 2_007, None), Vec::<u128>::new());
        let numbers = |v: Vec<Entry>| v.iter().map(|e| e.facts.number).collect::<Vec<_>>();
        assert_eq!(numbers(ix.newest(2, u128::MAX)), vec![4, 5]);
        assert_eq!(numbers(ix.newest(2, 5)), vec![3, 4]);
        ix.drop_before(30);
        assert_eq!(range(&ix, 0, 10_000, None), vec![3, 4, 5]);
        assert_eq!(ix.last().map(|e| e.facts.number), Some(5));
    }

    /// A fragment's records: (key, data).
    fn parts(facts: &FragmentFacts, cluster: &[u8], max: usize) -> Vec<(String, Vec<u8>)> {
        fragment_parts(facts, cluster.len(), max)
            .into_iter()
            .map(|(key, range)| (key, cluster[range].to_vec()))
            .collect()
    }

    fn header(mkv: &[u8]) -> (String, Vec<u8>) {
        (
            crate::record::HEADER_KEY.to_string(),
            crate::record::header_record(1_000_000, mkv),
        )
    }

    #[test]
    fn a_rebuild_indexes_whole_fragments_only() {
        let mut records = vec![header(b"mkv")];
        records.extend(parts(&facts(10, 1, 1), b"abcdef", 2)); // 3 parts
        records.extend(parts(&facts(11, 2, 2), b"abcdef", 2)[..2].to_vec()); // cut short
        records.push(header(b"mkv2"));
        // 13's parts with 12 (another session) between them.
        let thirteen = parts(&facts(13, 4, 4), b"abcd", 2);
        records.push(thirteen[0].clone());
        records.extend(parts(&facts(12, 3, 3), b"abc", 8));
        records.push(thirteen[1].clone());
        records.push(("k".to_string(), b"not ours".to_vec()));
        let mut rebuild = Rebuild::default();
        for (offset, (key, data)) in records.iter().enumerate() {
            rebuild.record(offset as u64 + 100, key, data);
        }
        let mut ix = rebuild.finish();
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.get(10).map(|e| (e.offset, e.part_count)), Some((101, 3)));
        assert_eq!(ix.get(11), None);
        assert_eq!(ix.get(12).map(|e| (e.offset, e.part_count)), Some((108, 1)));
        assert_eq!(ix.get(13).map(|e| (e.offset, e.part_count)), Some((107, 2)));
        // New numbers go on after every number seen, whole or not.
        assert!(ix.assign(0) > 12);
    }

    #[test]
    fn a_part_out_of_place_ends_its_fragment() {
        let p = parts(&facts(20, 1, 1), b"abcdef", 2);
        let mut rebuild = Rebuild::default();
        // Part 0, then part 2: part 1 is missing.
        rebuild.record(0, &p[0].0, &p[0].1);
        rebuild.record(1, &p[2].0, &p[2].1);
        // Part 1 and 2 without part 0.
        rebuild.record(2, &p[1].0, &p[1].1);
        rebuild.record(3, &p[2].0, &p[2].1);
        assert!(rebuild.finish().is_empty());
    }
}
