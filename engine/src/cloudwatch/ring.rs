//! The metrics CloudWatch's API reads: every source's series (a metric of a
//! namespace with its dimensions) sampled each minute into a bounded ring of
//! one-minute points, and the statistics of a time range computed from them.
//!
//! A source reports cumulative values (a sum over calls and the number of
//! calls, a histogram's sum and count, successes over attempts) or a peak
//! (the most since the last minute closed, with the calls so far); a
//! minute's point is what changed in that minute. The minute under way is
//! read from the sources when asked (a query sees what happened a moment
//! ago). Statistics per point: `Sum`, `SampleCount`, `Minimum`, `Maximum`
//! (and `Average` = Sum / SampleCount), by kind:
//! - a sum (bytes, records): a sample per call (Sum and SampleCount exact;
//!   Minimum and Maximum are the minute's average per call);
//! - durations: a sample per call (likewise);
//! - a success ratio: a sample per call, 1 or 0 (all exact);
//! - a peak (an iterator's age): one sample a minute, the minute's most.
//!
//! A minute without calls has no point. A reading below the last one (a
//! stream deleted and made again) starts its series again. Pure but for
//! [`Ring::run`], the sampling thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A series' identity: namespace, metric name, dimensions (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub namespace: &'static str,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
}

/// What a source reports of a series now (cumulative but `Peak::max`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    Sum {
        sum: u64,
        calls: u64,
    },
    Durations {
        sum_ms: f64,
        count: u64,
    },
    Ratio {
        successes: u64,
        attempts: u64,
    },
    /// The most since the last minute closed (a closing read starts it again).
    Peak {
        max: f64,
        calls: u64,
    },
}

/// CloudWatch's unit of a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One series as a source reports it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub key: SeriesKey,
    pub unit: Unit,
    pub reading: Reading,
}

impl Sample {
    /// A reading of `namespace`'s metric `name` with `dimensions` (sorted
    /// here by name, as a series' identity has them).
    pub fn new(
        namespace: &'static str,
        name: &str,
        mut dimensions: Vec<(String, String)>,
        unit: Unit,
        reading: Reading,
    ) -> Sample {
        dimensions.sort();
        Sample {
            key: SeriesKey {
                namespace,
                name: name.to_string(),
                dimensions,
            },
            unit,
            reading,
        }
    }
}

/// What pushes `namespace`'s readings with the one dimension `dimension`
/// = `value` into `out` (a service's per-resource series).
pub fn one_dimension<'a>(
    out: &'a mut Vec<Sample>,
    namespace: &'static str,
    dimension: &'static str,
    value: &'a str,
) -> impl FnMut(&str, Unit, Reading) + 'a {
    move |name, unit, reading| {
        let dimensions = vec![(dimension.to_string(), value.to_string())];
        out.push(Sample::new(namespace, name, dimensions, unit, reading))
    }
}

/// A service's metrics, as CloudWatch's API reads them.
pub trait Source: Send + Sync {
    /// Its series now. `closing`: this reading closes a minute, so peaks
    /// start again as they are read (read a peak before its calls).
    fn sample(&self, out: &mut Vec<Sample>, closing: bool);
}

/// The sources read for one request, and the minute that was under way.
pub struct Snapshot {
    minute_ms: i64,
    samples: HashMap<SeriesKey, Sample>,
}

/// One point's statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub sum: f64,
    pub count: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    fn merge(&mut self, o: &Stat) {
        self.sum += o.sum;
        self.count += o.count;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// A CloudWatch statistic's value (`Sum`, `SampleCount`, `Average`,
    /// `Minimum`, `Maximum`).
    pub fn get(&self, statistic: &str) -> Option<f64> {
        match statistic {
            "Sum" => Some(self.sum),
            "SampleCount" => Some(self.count),
            "Average" => Some(if self.count > 0.0 {
                self.sum / self.count
            } else {
                0.0
            }),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            _ => None,
        }
    }
}

/// What changed between two readings of a series (none when no call was
/// made). A reading below the last (a counter that started again) counts
/// from zero.
fn delta(before: Option<Reading>, now: Reading) -> Option<Stat> {
    // (now - before), or now when it went back.
    let since = |now: u64, before: u64, back: bool| if back { now } else { now - before };
    match now {
        Reading::Sum { sum, calls } => {
            let (s0, c0) = match before {
                Some(Reading::Sum { sum, calls }) => (sum, calls),
                _ => (0, 0),
            };
            let back = sum < s0 || calls < c0;
            let (s, c) = (since(sum, s0, back), since(calls, c0, back));
            (c > 0).then(|| {
                let avg = s as f64 / c as f64;
                Stat {
                    sum: s as f64,
                    count: c as f64,
                    min: avg,
                    max: avg,
                }
            })
        }
        Reading::Durations { sum_ms, count } => {
            let (s0, c0) = match before {
                Some(Reading::Durations { sum_ms, count }) => (sum_ms, count),
                _ => (0.0, 0),
            };
            let back = count < c0 || sum_ms < s0;
            let n = since(count, c0, back);
            let sum = if back { sum_ms } else { sum_ms - s0 };
            (n > 0).then(|| {
                let avg = sum / n as f64;
                Stat {
                    sum,
                    count: n as f64,
                    min: avg,
                    max: avg,
                }
            })
        }
        Reading::Ratio {
            successes,
            attempts,
        } => {
            let (s0, a0) = match before {
                Some(Reading::Ratio {
                    successes,
                    attempts,
                }) => (successes, attempts),
                _ => (0, 0),
            };
            let back = successes < s0 || attempts < a0;
            let s = since(successes, s0, back);
            let a = since(attempts, a0, back);
            (a > 0).then_some(Stat {
                sum: s as f64,
                count: a as f64,
                min: if s == a { 1.0 } else { 0.0 },
                max: if s > 0 { 1.0 } else { 0.0 },
            })
        }
        Reading::Peak { max, calls } => {
            let c0 = match before {
                Some(Reading::Peak { calls, .. }) => calls,
                _ => 0,
            };
            let c = since(calls, c0, calls < c0);
            (c > 0).then_some(Stat {
                sum: max,
                count: 1.0,
                min: max,
                max,
            })
        }
    }
}

struct Series {
    unit: Unit,
    /// The reading at the start of the minute under way.
    base: Option<Reading>,
    /// Closed minutes (ms since the epoch of their start), oldest first.
    points: VecDeque<(i64, Stat)>,
}

/// The ring of one-minute points of every series (see the module's header).
pub struct Ring {
    sources: Vec<Arc<dyn Source>>,
    /// Minutes kept.
    minutes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    series: BTreeMap<SeriesKey, Series>,
    /// When the minute under way began (ms since the epoch).
    minute_ms: i64,
}

pub const MINUTE_MS: i64 = 60_000;

impl Ring {
    pub fn new(sources: Vec<Arc<dyn Source>>, minutes: usize, now_ms: i64) -> Ring {
        let ring = Ring {
            sources,
            minutes: minutes.max(1),
            state: Mutex::new(State::default()),
        };
        // The series as they are now are the first minute's base.
        let now = ring.read(true);
        let mut state = ring.state.lock().expect("not poisoned");
        state.minute_ms = now_ms - now_ms.rem_euclid(MINUTE_MS);
        for s in now {
            state.series.insert(
                s.key,
                Series {
                    unit: s.unit,
                    base: Some(s.reading),
                    points: VecDeque::new(),
                },
            );
        }
        drop(state);
        ring
    }

    /// Every source's series now, by key (read once per request).
    pub fn snapshot(&self) -> Snapshot {
        let minute_ms = self.state.lock().expect("not poisoned").minute_ms;
        Snapshot {
            minute_ms,
            samples: self
                .read(false)
                .into_iter()
                .map(|s| (s.key.clone(), s))
                .collect(),
        }
    }

    fn read(&self, closing: bool) -> Vec<Sample> {
        let mut out = Vec::new();
        for s in &self.sources {
            s.sample(&mut out, closing);
        }
        out
    }

    /// Closes the minute under way when `now_ms` is past it: each series'
    /// change becomes its point. Series no source reports any more go once
    /// their points have aged out.
    pub fn tick(&self, now_ms: i64) {
        {
            let mut state = self.state.lock().expect("not poisoned");
            if now_ms < state.minute_ms {
                // The clock went back: the minute under way is now's, and
                // points stamped from then on go.
                let minute_ms = now_ms - now_ms.rem_euclid(MINUTE_MS);
                state.minute_ms = minute_ms;
                for series in state.series.values_mut() {
                    series.points.retain(|(t, _)| *t < minute_ms);
                }
                return;
            }
            if now_ms < state.minute_ms + MINUTE_MS {
                return;
            }
        }
        // Only this thread closes minutes: read (the peaks start again),
        // then close.
        let now = self.read(true);
        let mut state = self.state.lock().expect("not poisoned");
        let closed = state.minute_ms;
        let oldest = now_ms - now_ms.rem_euclid(MINUTE_MS) - self.minutes as i64 * MINUTE_MS;
        let mut reported: HashMap<&SeriesKey, ()> = HashMap::with_capacity(now.len());
        for s in &now {
            reported.insert(&s.key, ());
            let series = state.series.entry(s.key.clone()).or_insert(Series {
                unit: s.unit,
                base: None,
                points: VecDeque::new(),
            });
            if let Some(stat) = delta(series.base, s.reading) {
                series.points.push_back((closed, stat));
            }
            // A sum that grew before its call was counted stays for the
            // minute that counts the call.
            let early = matches!(
                (series.base, s.reading),
                (Some(Reading::Sum { sum: s0, calls: c0 }), Reading::Sum { sum, calls })
                    if calls == c0 && sum > s0
            );
            if !early {
                series.base = Some(s.reading);
            }
            series.unit = s.unit;
        }
        for (key, series) in state.series.iter_mut() {
            while series.points.front().is_some_and(|(t, _)| *t < oldest) {
                series.points.pop_front();
            }
            if !reported.contains_key(key) {
                series.base = None;
            }
        }
        state
            .series
            .retain(|_, s| s.base.is_some() || !s.points.is_empty());
        state.minute_ms = now_ms - now_ms.rem_euclid(MINUTE_MS);
    }

    /// The series there are (with points or reported now), each with its unit.
    pub fn series(&self) -> Vec<(SeriesKey, Unit)> {
        let now = self.read(false);
        let state = self.state.lock().expect("not poisoned");
        let mut all: BTreeMap<SeriesKey, Unit> = state
            .series
            .iter()
            .map(|(k, s)| (k.clone(), s.unit))
            .collect();
        drop(state);
        all.extend(now.into_iter().map(|s| (s.key, s.unit)));
        all.into_iter().collect()
    }

    /// A series' statistics per `period_ms` from `start_ms` (inclusive) to
    /// `end_ms` (exclusive), the minute under way included: (period start,
    /// its statistics), oldest first; periods without a point are left out.
    /// `now`: the sources read once for the request ([`Ring::snapshot`]).
    pub fn stats(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        end_ms: i64,
        period_ms: i64,
        now: &Snapshot,
    ) -> Option<(Unit, Vec<(i64, Stat)>)> {
        let snapshot_minute = now.minute_ms;
        let now = now.samples.get(key).cloned();
        let state = self.state.lock().expect("not poisoned");
        let series = state.series.get(key);
        // Reported now, perhaps not yet in the ring.
        let unit = series.map(|s| s.unit).or(now.as_ref().map(|s| s.unit))?;
        let now = now.map(|s| s.reading);
        let mut points: Vec<(i64, Stat)> = series
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default();
        // The minute under way, unless a minute closed since the sources
        // were read (the closed one holds it).
        if let Some(reading) = now
            && snapshot_minute == state.minute_ms
            && let Some(stat) = delta(series.and_then(|s| s.base), reading)
        {
            points.push((state.minute_ms, stat));
        }
        drop(state);
        let mut periods: BTreeMap<i64, Stat> = BTreeMap::new();
        for (t, stat) in points {
            if t < start_ms || t >= end_ms {
                continue;
            }
            let period = start_ms + (t - start_ms) / period_ms.max(1) * period_ms.max(1);
            periods
                .entry(period)
                .and_modify(|s| s.merge(&stat))
                .or_insert(stat);
        }
        Some((unit, periods.into_iter().collect()))
    }

    /// Closes a minute at each minute's end until `stop` says so (a thread
    /// of its own).
    pub fn run(self: Arc<Self>, stop: flume::Receiver<()>) {
        loop {
            let now = crate::rt::now_ms();
            let next = now - now.rem_euclid(MINUTE_MS) + MINUTE_MS;
            let wait = std::time::Duration::from_millis((next - now).max(1) as u64);
            match stop.recv_timeout(wait) {
                Err(flume::RecvTimeoutError::Timeout) => self.tick(crate::rt::now_ms()),
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Records put in `calls` calls, 1 or 0 for each, and a peak.
    #[derive(Default)]
    struct Fake {
        records: AtomicU64,
        calls: AtomicU64,
        ok: AtomicU64,
        peak: AtomicU64,
    }

    impl Source for Fake {
        fn sample(&self, out: &mut Vec<Sample>, closing: bool) {
            let peak = if closing {
                self.peak.swap(0, Ordering::Relaxed)
            } else {
                self.peak.load(Ordering::Relaxed)
            };
            let calls = self.calls.load(Ordering::Relaxed);
            for (name, unit, reading) in [
                (
                    "IncomingRecords",
                    Unit::Count,
                    Reading::Sum {
                        sum: self.records.load(Ordering::Relaxed),
                        calls,
                    },
                ),
                (
                    "Put.Latency",
                    Unit::Milliseconds,
                    Reading::Durations {
                        sum_ms: calls as f64 * 4.0,
                        count: calls,
                    },
                ),
                (
                    "Put.Success",
                    Unit::Count,
                    Reading::Ratio {
                        successes: self.ok.load(Ordering::Relaxed),
                        attempts: calls,
                    },
                ),
                (
                    "Age",
                    Unit::Milliseconds,
                    Reading::Peak {
                        max: peak as f64,
                        calls,
                    },
                ),
            ] {
                out.push(Sample {
                    key: key(name),
                    unit,
                    reading,
                });
            }
        }
    }

    fn key(name: &str) -> SeriesKey {
        SeriesKey {
            namespace: "AWS/Test",
            name: name.into(),
            dimensions: vec![("StreamName".into(), "s".into())],
        }
    }

    fn calls(f: &Fake, records: u64, calls: u64, ok: u64, peak: u64) {
        f.records.fetch_add(records, Ordering::Relaxed);
        f.calls.fetch_add(calls, Ordering::Relaxed);
        f.ok.fetch_add(ok, Ordering::Relaxed);
        f.peak.fetch_max(peak, Ordering::Relaxed);
    }

    #[test]
    fn minutes_become_points_and_periods_add_them_up() {
        let fake = Arc::new(Fake::default());
        calls(&fake, 5, 1, 1, 0); // before the ring: not counted
        let t0 = 1_000 * MINUTE_MS;
        let ring = Ring::new(vec![fake.clone()], 60, t0 + 10);
        // Minute 0: 7 records in 2 calls, 1 of them fine, ages up to 900.
        calls(&fake, 7, 2, 1, 900);
        ring.tick(t0 + 30_000); // not yet the minute's end: nothing closed
        ring.tick(t0 + MINUTE_MS + 5);
        // Minute 1: 3 records in 2 calls, both fine, age 100; minute 2 is
        // under way (1 record in 1 call).
        calls(&fake, 3, 2, 2, 100);
        ring.tick(t0 + 2 * MINUTE_MS + 5);
        calls(&fake, 1, 1, 1, 50);
        let stats = |name: &str, period: i64| {
            ring.stats(
                &key(name),
                t0,
                t0 + 10 * MINUTE_MS,
                period,
                &ring.snapshot(),
            )
            .unwrap()
        };
        let (unit, per_minute) = stats("IncomingRecords", MINUTE_MS);
        assert_eq!(unit, Unit::Count);
        let got: Vec<(i64, f64, f64)> = per_minute
            .iter()
            .map(|(t, s)| (*t, s.sum, s.count))
            .collect();
        assert_eq!(
            got,
            vec![
                (t0, 7.0, 2.0),
                (t0 + MINUTE_MS, 3.0, 2.0),
                (t0 + 2 * MINUTE_MS, 1.0, 1.0)
            ]
        );
        // Five minutes at once: one period; SampleCount counts calls.
        let (_, five) = stats("IncomingRecords", 5 * MINUTE_MS);
        assert_eq!(five.len(), 1);
        assert_eq!(
            (five[0].1.sum, five[0].1.count, five[0].1.max),
            (11.0, 5.0, 3.5)
        );
        let (_, ok) = stats("Put.Success", 5 * MINUTE_MS);
        let s = ok[0].1;
        assert_eq!((s.sum, s.count, s.min, s.max), (4.0, 5.0, 0.0, 1.0));
        assert_eq!(s.get("Average"), Some(0.8));
        let (unit, lat) = stats("Put.Latency", 5 * MINUTE_MS);
        assert_eq!(unit, Unit::Milliseconds);
        assert_eq!(lat[0].1.get("Average"), Some(4.0));
        assert_eq!(lat[0].1.get("SampleCount"), Some(5.0));
        // A peak: each minute's most.
        let (_, age) = stats("Age", MINUTE_MS);
        let maxima: Vec<f64> = age.iter().map(|(_, s)| s.max).collect();
        assert_eq!(maxima, vec![900.0, 100.0, 50.0]);
        // The range's end is exclusive; an unknown series has none.
        let (_, first) = ring
            .stats(
                &key("IncomingRecords"),
                t0,
                t0 + MINUTE_MS,
                MINUTE_MS,
                &ring.snapshot(),
            )
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            ring.stats(
                &key("Nothing"),
                t0,
                t0 + MINUTE_MS,
                MINUTE_MS,
                &ring.snapshot()
            )
            .is_none()
        );
    }

    #[test]
    fn quiet_minutes_have_no_point_and_old_ones_age_out() {
        let fake = Arc::new(Fake::default());
        let t0 = 1_000 * MINUTE_MS;
        let ring = Ring::new(vec![fake.clone()], 2, t0);
        for m in 1..=5 {
            if m != 4 {
                calls(&fake, 1, 1, 1, 7);
            }
            ring.tick(t0 + m * MINUTE_MS);
        }
        let (_, points) = ring
            .stats(&key("Age"), 0, i64::MAX, MINUTE_MS, &ring.snapshot())
            .unwrap();
        // Two minutes kept, the quiet one (minute 3) without a point.
        let at: Vec<i64> = points.iter().map(|(t, _)| (t - t0) / MINUTE_MS).collect();
        assert_eq!(at, vec![4]);
    }

    #[test]
    fn a_counter_that_starts_again_and_a_clock_that_goes_back() {
        let fake = Arc::new(Fake::default());
        let t0 = 1_000 * MINUTE_MS;
        let ring = Ring::new(vec![fake.clone()], 60, t0);
        calls(&fake, 10, 2, 2, 0);
        ring.tick(t0 + MINUTE_MS);
        // The stream is made again: its counts start from zero.
        fake.records.store(3, Ordering::Relaxed);
        fake.calls.store(1, Ordering::Relaxed);
        fake.ok.store(1, Ordering::Relaxed);
        ring.tick(t0 + 2 * MINUTE_MS);
        let (_, points) = ring
            .stats(
                &key("IncomingRecords"),
                t0,
                t0 + 3 * MINUTE_MS,
                MINUTE_MS,
                &ring.snapshot(),
            )
            .unwrap();
        let sums: Vec<f64> = points.iter().map(|(_, s)| s.sum).collect();
        assert_eq!(sums, vec![10.0, 3.0]);
        // Back an hour: the minute under way is now's, nothing is closed.
        ring.tick(t0 - 60 * MINUTE_MS + 5);
        calls(&fake, 1, 1, 1, 0);
        let (_, now) = ring
            .stats(
                &key("IncomingRecords"),
                t0 - 61 * MINUTE_MS,
                t0,
                MINUTE_MS,
                &ring.snapshot(),
            )
            .unwrap();
        assert_eq!(
            now.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![t0 - 60 * MINUTE_MS]
        );
    }
}
