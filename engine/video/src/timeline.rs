//! A live DASH session's timeline: where each fragment sits, decided the
//! first time a listing holds it and never moved after, so that a player
//! reloading a dynamic manifest finds every segment where it was.
//!
//! The timeline is a row of Periods that never overlap. A Period holds a
//! run of fragments of one producer session (told apart by their MKV
//! header's content: a session's header written again is the same session)
//! whose producer times go on without a gap; inside it a fragment sits at
//! its producer time (its `tfdt`) from the Period's first producer time
//! (its presentationTimeOffset). Anything else starts a new Period where
//! the server's clock is (a camera back after a pause, or with its clock
//! reset, is live again), never before what was listed ends.
//!
//! The server's clock decides availability, not a camera's: the timeline's
//! zero (availabilityStartTime) is set by the session's first manifest (its
//! newest fragment just available, or now when it had none), and no
//! fragment is placed to become available more than `LEAD_MS_MAX` after
//! now (a camera's clock running fast, a backlog sent faster than real
//! time): such a fragment, and those after it in the listing, wait for a
//! later listing. While the producer session shown is live, another one's
//! fragments (uploads that interleave) wait too: a DASH timeline shows one
//! at a time.

use std::collections::BTreeMap;

use crate::index::Entry;

/// No fragment becomes available later than this after it is placed.
const LEAD_MS_MAX: i64 = 2_000;
/// A gap in producer time up to this stays inside the Period.
const JOIN_GAP_MS_MAX: i64 = 2_000;
/// The session shown is live while what was placed ends within this of now.
const LIVE_GAP_MS: i64 = 3_000;

/// One Period of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    /// Its number in the session, in the order of starts (the MPD's id).
    pub id: u32,
    /// Its start on the timeline (ms from availabilityStartTime).
    pub start_ms: i64,
    /// The producer time its start shows (presentationTimeOffset, ms).
    pub anchor_ms: i64,
}

impl Period {
    /// Where a fragment of this Period starts on the timeline.
    pub fn at(&self, producer_ms: i64) -> i64 {
        self.start_ms
            .saturating_add(producer_ms.saturating_sub(self.anchor_ms))
    }
}

#[derive(Clone, Copy, Debug)]
struct Placed {
    period: Period,
    /// Its producer session's header, by content.
    content: u64,
    /// The producer time of its last fragment.
    last_producer_ms: i64,
}

/// The timeline of one session (see the module's header).
#[derive(Debug, Default)]
pub struct Timeline {
    /// availabilityStartTime (ms since the epoch, the server's clock).
    available_ms: Option<i64>,
    periods: Vec<Placed>,
    /// Each fragment placed so far (by number): its Period's index.
    fragments: BTreeMap<u128, u32>,
    /// Where the last fragment placed ends on the timeline.
    end_ms: i64,
}

impl Timeline {
    /// availabilityStartTime, once a manifest was made.
    pub fn available_ms(&self) -> Option<i64> {
        self.available_ms
    }

    /// The Period of each of a listing's fragments (in the listing's order),
    /// placing those not placed before; `None` for one that waits (see the
    /// module's header). `content`: a fragment's producer session, by its
    /// header's content (`None`: not known yet, it waits); `now_ms`: the
    /// server's clock.
    pub fn place(
        &mut self,
        listing: &[Entry],
        content: impl Fn(&Entry) -> Option<u64>,
        now_ms: i64,
    ) -> Vec<Option<Period>> {
        let first = self.available_ms.is_none();
        let live = self.available_ms.map(|a| now_ms.saturating_sub(a));
        // The first manifest shows the producer session of its newest
        // fragment (the one live).
        let shown = if first {
            listing.last().and_then(&content)
        } else {
            None
        };
        let mut periods = Vec::with_capacity(listing.len());
        // A fragment waits: so do those after it (they would be placed
        // before it).
        let mut waiting = false;
        for (i, e) in listing.iter().enumerate() {
            let facts = &e.facts;
            if let Some(&index) = self.fragments.get(&facts.number) {
                periods.push(Some(self.periods[index as usize].period));
                continue;
            }
            let Some(c) = content(e).filter(|_| !waiting) else {
                waiting = true;
                periods.push(None);
                continue;
            };
            if shown.is_some_and(|s| s != c) {
                periods.push(None);
                continue;
            }
            let d = i64::from(facts.duration_ms);
            let fits = |at: i64| {
                live.is_none_or(|l| at.saturating_add(d) <= l.saturating_add(LEAD_MS_MAX))
            };
            let last = self.periods.last();
            let continues = last.and_then(|l| {
                let at = l.period.at(facts.producer_ms);
                (l.content == c
                    && facts.producer_ms > l.last_producer_ms
                    && at <= self.end_ms.saturating_add(JOIN_GAP_MS_MAX))
                .then_some(at)
            });
            if continues.is_some_and(|at| !fits(at)) {
                // The session goes on ahead of now: it waits, in its Period.
                waiting = true;
                periods.push(None);
                continue;
            }
            let joined = continues;
            let index = match joined {
                Some(_) => self.periods.len() - 1,
                None => {
                    // Another producer session waits while the one shown is live.
                    if let (Some(l), Some(now)) = (last, live)
                        && l.content != c
                        && self.end_ms >= now.saturating_sub(LIVE_GAP_MS)
                    {
                        periods.push(None);
                        continue;
                    }
                    // Placed so that the newest of this run of the listing
                    // is available now.
                    let run_end = listing[i..]
                        .iter()
                        .take_while(|x| content(x) == Some(c))
                        .map(ends_at)
                        .max()
                        .unwrap_or(facts.producer_ms);
                    let span = run_end.saturating_sub(facts.producer_ms);
                    let start_ms = match live {
                        Some(now) => self.end_ms.max(now.saturating_sub(span)),
                        None => self.end_ms,
                    };
                    if !fits(start_ms) {
                        waiting = true;
                        periods.push(None);
                        continue;
                    }
                    self.periods.push(Placed {
                        period: Period {
                            id: u32::try_from(self.periods.len()).unwrap_or(u32::MAX),
                            start_ms,
                            anchor_ms: facts.producer_ms,
                        },
                        content: c,
                        last_producer_ms: facts.producer_ms,
                    });
                    self.periods.len() - 1
                }
            };
            let placed = &mut self.periods[index];
            placed.last_producer_ms = facts.producer_ms;
            let period = placed.period;
            self.end_ms = self
                .end_ms
                .max(period.at(facts.producer_ms).saturating_add(d));
            self.fragments
                .insert(facts.number, u32::try_from(index).unwrap_or(u32::MAX));
            periods.push(Some(period));
        }
        if first {
            // The first manifest: its newest fragment just available (now,
            // when it had none).
            self.available_ms = Some(now_ms.saturating_sub(self.end_ms));
        }
        periods
    }

    /// Forgets the fragments numbered below `number` (a live listing never
    /// shows them again: it goes on by number).
    pub fn forget_below(&mut self, number: u128) {
        self.fragments = self.fragments.split_off(&number);
    }
}

/// Where a fragment ends, in producer time.
fn ends_at(e: &Entry) -> i64 {
    e.facts
        .producer_ms
        .saturating_add(i64::from(e.facts.duration_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FragmentFacts;

    /// Fragment `n` of producer session `header`, at producer time `at` s,
    /// one second long.
    fn frag(n: u128, header: u64, at: i64) -> Entry {
        Entry {
            facts: FragmentFacts {
                number: n,
                header_offset: header,
                producer_ms: at * 1000,
                server_ms: 0,
                duration_ms: 1000,
                size: 1,
                timecode: 0,
            },
            offset: 0,
            part_count: 1,
        }
    }

    /// Every header its own content.
    fn by_header(e: &Entry) -> Option<u64> {
        Some(e.facts.header_offset)
    }

    fn period(id: u32, start_ms: i64, anchor_ms: i64) -> Option<Period> {
        Some(Period {
            id,
            start_ms,
            anchor_ms,
        })
    }

    #[test]
    fn the_first_listing_makes_its_newest_fragment_just_available() {
        // A camera whose clock is an hour behind the server's.
        let mut t = Timeline::default();
        let listing = [frag(1, 0, 100), frag(2, 0, 101), frag(3, 0, 102)];
        let p = t.place(&listing, by_header, 3_600_000);
        assert_eq!(p, vec![period(0, 0, 100_000); 3]);
        assert_eq!(t.available_ms(), Some(3_600_000 - 3_000));
    }

    #[test]
    fn an_empty_first_manifest_fixes_the_origin_at_now() {
        let mut t = Timeline::default();
        assert_eq!(t.place(&[], by_header, 5_000), vec![]);
        assert_eq!(t.available_ms(), Some(5_000));
        // The first fragment, 7 s later, is available as it is listed.
        let p = t.place(&[frag(1, 0, 50)], by_header, 12_000);
        assert_eq!(p, vec![period(0, 6_000, 50_000)]);
        assert_eq!(t.available_ms(), Some(5_000));
    }

    #[test]
    fn a_fragment_keeps_its_place_as_the_window_slides() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], by_header, 60_000);
        let later = t.place(&[frag(2, 0, 11), frag(3, 0, 12)], by_header, 61_000);
        assert_eq!(later, vec![period(0, 0, 10_000); 2]);
        assert_eq!(t.available_ms(), Some(58_000));
        assert_eq!(t.end_ms, 3_000);
        // Forgotten below the window: what is left keeps its place.
        t.forget_below(2);
        assert_eq!(t.fragments.len(), 2);
        assert_eq!(
            t.place(&[frag(3, 0, 12)], by_header, 61_000),
            vec![period(0, 0, 10_000)]
        );
    }

    #[test]
    fn a_session_header_written_again_is_the_same_period() {
        let mut t = Timeline::default();
        // Headers 0 and 7 hold the same bytes (PutMedia writes its header
        // again every 10 minutes).
        let same = |_: &Entry| Some(42);
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], same, 60_000);
        let p = t.place(&[frag(3, 7, 12)], same, 61_000);
        assert_eq!(p, vec![period(0, 0, 10_000)]);
    }

    #[test]
    fn a_new_producer_session_starts_where_the_server_clock_is() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], by_header, 60_000);
        // The camera restarts 30 s later with its clock reset to 0: its
        // Period starts so that its first fragment is available now (32 s
        // from the origin at 58 s, less its second).
        let p = t.place(&[frag(2, 0, 11), frag(3, 9, 0)], by_header, 90_000);
        assert_eq!(p[1], period(1, 31_000, 0));
        // A pause within one session: the same, once the gap passes 2 s.
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], by_header, 60_000);
        let p = t.place(&[frag(3, 0, 40)], by_header, 90_000);
        assert_eq!(p, vec![period(1, 31_000, 40_000)]);
    }

    #[test]
    fn nothing_is_placed_to_become_available_more_than_two_seconds_ahead() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], by_header, 60_000);
        // A backlog sent faster than real time: 12..=16 s by 61 s (3 s on
        // the timeline). What becomes available within 2 s is placed, the
        // rest waits.
        let burst = [
            frag(3, 0, 12),
            frag(4, 0, 13),
            frag(5, 0, 14),
            frag(6, 0, 15),
            frag(7, 0, 16),
        ];
        let p = t.place(&burst, by_header, 61_000);
        assert_eq!(p[..3], [period(0, 0, 10_000); 3]);
        assert_eq!(p[3..], [None, None]);
        assert_eq!(t.end_ms, 5_000);
        // A second later, the next one.
        let p = t.place(&burst, by_header, 62_000);
        assert_eq!(p[3], period(0, 0, 10_000));
        assert_eq!(p[4], None);
        // A clock stepping an hour ahead within the session: a new Period
        // where the server's clock is, not an hour out.
        let p = t.place(&[frag(8, 0, 3_600)], by_header, 70_000);
        assert_eq!(p, vec![period(1, 11_000, 3_600_000)]);
    }

    #[test]
    fn interleaved_uploads_show_one_session_while_it_is_live() {
        let mut t = Timeline::default();
        // Two cameras into one stream, their fragments alternating: the
        // first manifest shows the newest fragment's session.
        let p = t.place(
            &[frag(1, 0, 0), frag(2, 7, 0), frag(3, 0, 1), frag(4, 7, 1)],
            by_header,
            10_000,
        );
        assert_eq!(p, vec![None, period(0, 0, 0), None, period(0, 0, 0)]);
        // While camera 7 goes on, camera 0's fragments wait; the timeline
        // runs at the server's pace.
        let p = t.place(
            &[frag(5, 0, 2), frag(6, 7, 2), frag(7, 0, 3), frag(8, 7, 3)],
            by_header,
            12_000,
        );
        assert_eq!(p, vec![None, period(0, 0, 0), None, period(0, 0, 0)]);
        assert_eq!(t.end_ms, 4_000);
        // Camera 7 stops: camera 0 is shown once 7 is no longer live.
        let p = t.place(&[frag(9, 0, 4)], by_header, 14_000);
        assert_eq!(p, vec![None]);
        let p = t.place(&[frag(10, 0, 8)], by_header, 18_000);
        assert_eq!(p, vec![period(1, 9_000, 8_000)]);
    }

    #[test]
    fn a_fragment_of_an_unknown_header_waits_with_those_after_it() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10)], by_header, 60_000);
        let unknown = |e: &Entry| (e.facts.number != 2).then_some(0);
        let p = t.place(&[frag(2, 0, 11), frag(3, 0, 12)], unknown, 61_000);
        assert_eq!(p, vec![None, None]);
        let p = t.place(&[frag(2, 0, 11), frag(3, 0, 12)], by_header, 62_000);
        assert_eq!(p, vec![period(0, 0, 10_000); 2]);
    }

    #[test]
    fn a_rounding_overlap_stays_in_the_period() {
        let mut t = Timeline::default();
        let mut second = frag(2, 0, 11);
        second.facts.producer_ms -= 300;
        let p = t.place(&[frag(1, 0, 10), second], by_header, 60_000);
        assert_eq!(p, vec![period(0, 0, 10_000); 2]);
    }
}
