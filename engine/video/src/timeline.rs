//! A live DASH session's timeline: where each fragment sits, decided the
//! first time a listing holds it and never moved after, so that a player
//! reloading a dynamic manifest finds every segment where it was.
//!
//! The timeline is a row of Periods, one per run of consecutive fragments
//! of one producer session (one MKV header), as a static manifest's and an
//! HLS playlist's discontinuities cut it. Inside a Period a fragment sits
//! at its producer time (its `tfdt`) from the Period's first producer time
//! (its presentationTimeOffset); Periods never overlap. A new Period starts
//! where the server's clock says it is (a camera that paused comes back
//! live), never before what was listed already ends. The timeline's zero,
//! availabilityStartTime, is set by the first listing that holds a
//! fragment so that its newest fragment has just become available: the
//! server's clock decides availability, not a camera's.

use std::collections::BTreeMap;

use crate::index::Entry;

/// Fragments of one producer session this much before what the timeline
/// already holds still join its Period (a fragment's duration is its
/// frames' average, so neighbours may overlap by a rounding).
const OVERLAP_MS_MAX: i64 = 50;

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

#[derive(Clone, Copy, Debug)]
struct Placed {
    period: Period,
    header_offset: u64,
}

/// The timeline of one session (see the module's header).
#[derive(Debug, Default)]
pub struct Timeline {
    /// availabilityStartTime (ms since the epoch, the server's clock).
    available_ms: Option<i64>,
    periods: Vec<Placed>,
    /// Each fragment listed so far (by number): its Period's index.
    fragments: BTreeMap<u128, u32>,
    /// Where the last fragment placed ends on the timeline.
    end_ms: i64,
}

impl Timeline {
    /// availabilityStartTime, once a listing held a fragment.
    pub fn available_ms(&self) -> Option<i64> {
        self.available_ms
    }

    /// The Period of each of a listing's fragments (in the listing's order),
    /// placing those not listed before; `now_ms`: the server's clock.
    pub fn place(&mut self, listing: &[Entry], now_ms: i64) -> Vec<Period> {
        let mut periods = Vec::with_capacity(listing.len());
        for (i, e) in listing.iter().enumerate() {
            let facts = &e.facts;
            if let Some(&index) = self.fragments.get(&facts.number) {
                periods.push(self.periods[index as usize].period);
                continue;
            }
            let at_in = |p: &Period| {
                p.start_ms
                    .saturating_add(facts.producer_ms.saturating_sub(p.anchor_ms))
            };
            let joins = self.periods.last().is_some_and(|last| {
                last.header_offset == facts.header_offset
                    && at_in(&last.period) >= self.end_ms.saturating_sub(OVERLAP_MS_MAX)
            });
            if !joins {
                // Where this run of the listing ends, from its start: placed
                // so that its newest fragment is available now.
                let run_end = listing[i..]
                    .iter()
                    .take_while(|x| x.facts.header_offset == facts.header_offset)
                    .map(ends_at)
                    .max()
                    .unwrap_or(facts.producer_ms);
                let span = run_end.saturating_sub(facts.producer_ms);
                let start_ms = match self.available_ms {
                    Some(available) => self
                        .end_ms
                        .max(now_ms.saturating_sub(available).saturating_sub(span)),
                    None => self.end_ms,
                };
                self.periods.push(Placed {
                    period: Period {
                        id: u32::try_from(self.periods.len()).unwrap_or(u32::MAX),
                        start_ms,
                        anchor_ms: facts.producer_ms,
                    },
                    header_offset: facts.header_offset,
                });
            }
            let index = self.periods.len() - 1;
            let period = self.periods[index].period;
            self.end_ms = self
                .end_ms
                .max(at_in(&period).saturating_add(ends_at(e).saturating_sub(facts.producer_ms)));
            self.fragments
                .insert(facts.number, u32::try_from(index).unwrap_or(u32::MAX));
            periods.push(period);
        }
        if self.available_ms.is_none() && !listing.is_empty() {
            self.available_ms = Some(now_ms.saturating_sub(self.end_ms));
        }
        periods
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

    fn period(id: u32, start_ms: i64, anchor_ms: i64) -> Period {
        Period {
            id,
            start_ms,
            anchor_ms,
        }
    }

    #[test]
    fn the_first_listing_makes_its_newest_fragment_just_available() {
        let mut t = Timeline::default();
        assert_eq!(t.place(&[], 5_000), vec![]);
        assert_eq!(t.available_ms(), None, "no fragment, no origin yet");
        // A camera whose clock is an hour behind the server's.
        let listing = [frag(1, 0, 100), frag(2, 0, 101), frag(3, 0, 102)];
        let p = t.place(&listing, 3_600_000);
        assert_eq!(p, vec![period(0, 0, 100_000); 3]);
        assert_eq!(t.available_ms(), Some(3_600_000 - 3_000));
    }

    #[test]
    fn a_fragment_keeps_its_place_as_the_window_slides() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], 60_000);
        let later = t.place(&[frag(2, 0, 11), frag(3, 0, 12)], 61_000);
        assert_eq!(later, vec![period(0, 0, 10_000); 2]);
        assert_eq!(t.available_ms(), Some(58_000));
        assert_eq!(t.end_ms, 3_000);
    }

    #[test]
    fn a_new_producer_session_starts_where_the_server_clock_is() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], 60_000);
        // The camera restarts 30 s later with its clock reset to 0: its
        // Period starts so that its first fragment is available now (at
        // 32 s from the origin at 58 s, minus its second).
        let p = t.place(&[frag(2, 0, 11), frag(3, 9, 0)], 90_000);
        assert_eq!(p[1], period(1, 31_000, 0));
        // Back to back when the server's clock is behind the timeline.
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], 60_000);
        let p = t.place(&[frag(3, 9, 500), frag(4, 9, 501)], 60_500);
        assert_eq!(p, vec![period(1, 2_000, 500_000); 2]);
        assert_eq!(t.end_ms, 4_000);
    }

    #[test]
    fn the_origin_counts_every_run_of_the_first_listing() {
        let mut t = Timeline::default();
        let p = t.place(&[frag(1, 0, 10), frag(2, 7, 3), frag(3, 7, 4)], 100_000);
        assert_eq!(
            p,
            vec![
                period(0, 0, 10_000),
                period(1, 1_000, 3_000),
                period(1, 1_000, 3_000)
            ]
        );
        assert_eq!(t.available_ms(), Some(97_000));
    }

    #[test]
    fn interleaved_uploads_take_turns_in_periods_that_never_overlap() {
        let mut t = Timeline::default();
        // Two cameras into one stream, their fragments alternating.
        let listing = [frag(1, 0, 0), frag(2, 7, 0), frag(3, 0, 1), frag(4, 7, 1)];
        let p = t.place(&listing, 10_000);
        let ids: Vec<u32> = p.iter().map(|p| p.id).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        for w in p.windows(2) {
            assert!(w[1].start_ms >= w[0].start_ms + 1_000, "{p:?}");
        }
        // Reloaded, the same places.
        assert_eq!(t.place(&listing[1..], 10_500), p[1..].to_vec());
    }

    #[test]
    fn a_step_back_in_producer_time_starts_a_new_period() {
        let mut t = Timeline::default();
        t.place(&[frag(1, 0, 10), frag(2, 0, 11)], 60_000);
        // A fragment whose time is before what is placed: a Period of its
        // own after it, not an overlap.
        let p = t.place(&[frag(3, 0, 5)], 60_000);
        assert_eq!(p, vec![period(1, 2_000, 5_000)]);
        // A rounding's overlap stays in the Period.
        let mut t = Timeline::default();
        let mut second = frag(2, 0, 11);
        second.facts.producer_ms -= 20;
        let p = t.place(&[frag(1, 0, 10), second], 60_000);
        assert_eq!(p, vec![period(0, 0, 10_000); 2]);
    }
}
