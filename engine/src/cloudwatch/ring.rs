//! The metrics CloudWatch's API reads: every source's series (a metric of a
//! namespace with its dimensions) sampled each minute into a bounded ring of
//! one-minute points, and the statistics of a time range computed from them.
//!
//! A source reports cumulative values (counts since the series began, a
//! histogram's sum and count, successes over attempts) or a level; a
//! minute's point is what changed in that minute. The minute under way is
//! read from the sources when asked (a query sees what happened a moment
//! ago). Statistics per point: `Sum`, `SampleCount`, `Minimum`, `Maximum`
//! (and `Average` = Sum / SampleCount), by kind:
//! - a count: one sample a minute (Sum = the count, Average = per minute);
//! - durations: a sample per call (Sum and SampleCount exact; Minimum and
//!   Maximum are the minute's average: the histogram keeps no extremes);
//! - a success ratio: a sample per call, 1 or 0 (all exact);
//! - a level: one sample a minute, its value.
//!
//! A minute without activity has no point (a level's always has one).
//! Pure but for [`Ring::run`], the sampling thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A series' identity: namespace, metric name, dimensions (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub namespace: &'static str,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
}

/// What a source reports of a series now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    Count(u64),
    Durations { sum_ms: f64, count: u64 },
    Ratio { successes: u64, attempts: u64 },
    Level(f64),
}

/// CloudWatch's unit of a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
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

/// A service's metrics, as CloudWatch's API reads them.
pub trait Source: Send + Sync {
    fn sample(&self, out: &mut Vec<Sample>);
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

/// What changed between two readings of a series (none when nothing did).
fn delta(before: Option<Reading>, now: Reading) -> Option<Stat> {
    let one = |v: f64| Stat {
        sum: v,
        count: 1.0,
        min: v,
        max: v,
    };
    match (before, now) {
        (Some(Reading::Count(a)), Reading::Count(b)) => {
            let d = b.saturating_sub(a);
            (d > 0).then(|| one(d as f64))
        }
        (None, Reading::Count(b)) => (b > 0).then(|| one(b as f64)),
        (before, Reading::Durations { sum_ms, count }) => {
            let (s0, c0) = match before {
                Some(Reading::Durations { sum_ms, count }) => (sum_ms, count),
                _ => (0.0, 0),
            };
            let n = count.saturating_sub(c0);
            let sum = (sum_ms - s0).max(0.0);
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
        (
            before,
            Reading::Ratio {
                successes,
                attempts,
            },
        ) => {
            let (s0, a0) = match before {
                Some(Reading::Ratio {
                    successes,
                    attempts,
                }) => (successes, attempts),
                _ => (0, 0),
            };
            let s = successes.saturating_sub(s0);
            let a = attempts.saturating_sub(a0);
            (a > 0).then_some(Stat {
                sum: s as f64,
                count: a as f64,
                min: if s == a { 1.0 } else { 0.0 },
                max: if s > 0 { 1.0 } else { 0.0 },
            })
        }
        (_, Reading::Level(v)) => Some(one(v)),
        // A series whose kind changed: start again from this reading.
        (Some(_), Reading::Count(b)) => (b > 0).then(|| one(b as f64)),
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
        let now = ring.read();
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

    fn read(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for s in &self.sources {
            s.sample(&mut out);
        }
        out
    }

    /// Closes the minute under way when `now_ms` is past it: each series'
    /// change becomes its point. Series no source reports any more go once
    /// their points have aged out.
    pub fn tick(&self, now_ms: i64) {
        let now = self.read();
        let mut state = self.state.lock().expect("not poisoned");
        if now_ms < state.minute_ms + MINUTE_MS {
            return;
        }
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
            series.base = Some(s.reading);
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
        let now = self.read();
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
    pub fn stats(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        end_ms: i64,
        period_ms: i64,
    ) -> Option<(Unit, Vec<(i64, Stat)>)> {
        let now = self.read().into_iter().find(|s| s.key == *key);
        let state = self.state.lock().expect("not poisoned");
        let series = state.series.get(key);
        // Reported now, perhaps not yet in the ring.
        let unit = series.map(|s| s.unit).or(now.as_ref().map(|s| s.unit))?;
        let now = now.map(|s| s.reading);
        let mut points: Vec<(i64, Stat)> = series
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default();
        if let Some(reading) = now
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
            let period = start_ms + (t - start_ms) / period_ms * period_ms;
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

    /// One count, one set of durations and one ratio, set by the test.
    #[derive(Default)]
    struct Fake {
        count: AtomicU64,
        calls: AtomicU64,
        ok: AtomicU64,
    }

    impl Source for Fake {
        fn sample(&self, out: &mut Vec<Sample>) {
            let key = |name: &str| SeriesKey {
                namespace: "AWS/Test",
                name: name.into(),
                dimensions: vec![("StreamName".into(), "s".into())],
            };
            let calls = self.calls.load(Ordering::Relaxed);
            out.push(Sample {
                key: key("IncomingRecords"),
                unit: Unit::Count,
                reading: Reading::Count(self.count.load(Ordering::Relaxed)),
            });
            out.push(Sample {
                key: key("Put.Latency"),
                unit: Unit::Milliseconds,
                reading: Reading::Durations {
                    sum_ms: calls as f64 * 4.0,
                    count: calls,
                },
            });
            out.push(Sample {
                key: key("Put.Success"),
                unit: Unit::Count,
                reading: Reading::Ratio {
                    successes: self.ok.load(Ordering::Relaxed),
                    attempts: calls,
                },
            });
        }
    }

    fn key(name: &str) -> SeriesKey {
        SeriesKey {
            namespace: "AWS/Test",
            name: name.into(),
            dimensions: vec![("StreamName".into(), "s".into())],
        }
    }

    #[test]
    fn minutes_become_points_and_periods_add_them_up() {
        let fake = Arc::new(Fake::default());
        fake.count.store(5, Ordering::Relaxed); // before the ring: not counted
        let t0 = 1_000 * MINUTE_MS;
        let ring = Ring::new(vec![fake.clone()], 60, t0 + 10);
        // Minute 0: 7 records, 2 calls of which 1 succeeded.
        fake.count.store(12, Ordering::Relaxed);
        fake.calls.store(2, Ordering::Relaxed);
        fake.ok.store(1, Ordering::Relaxed);
        ring.tick(t0 + 30_000); // not yet the minute's end: nothing closed
        ring.tick(t0 + MINUTE_MS + 5);
        // Minute 1: 3 records, 2 calls, both fine; minute 2 is under way.
        fake.count.store(15, Ordering::Relaxed);
        fake.calls.store(4, Ordering::Relaxed);
        fake.ok.store(3, Ordering::Relaxed);
        ring.tick(t0 + 2 * MINUTE_MS + 5);
        fake.count.store(16, Ordering::Relaxed);

        let (unit, per_minute) = ring
            .stats(&key("IncomingRecords"), t0, t0 + 10 * MINUTE_MS, MINUTE_MS)
            .unwrap();
        assert_eq!(unit, Unit::Count);
        let sums: Vec<(i64, f64)> = per_minute.iter().map(|(t, s)| (*t, s.sum)).collect();
        assert_eq!(
            sums,
            vec![(t0, 7.0), (t0 + MINUTE_MS, 3.0), (t0 + 2 * MINUTE_MS, 1.0)]
        );
        // Five minutes at once: one period.
        let (_, five) = ring
            .stats(
                &key("IncomingRecords"),
                t0,
                t0 + 5 * MINUTE_MS,
                5 * MINUTE_MS,
            )
            .unwrap();
        assert_eq!(five.len(), 1);
        assert_eq!(
            (five[0].1.sum, five[0].1.count, five[0].1.max),
            (11.0, 3.0, 7.0)
        );
        // Success: a sample per call.
        let (_, ok) = ring
            .stats(&key("Put.Success"), t0, t0 + 5 * MINUTE_MS, 5 * MINUTE_MS)
            .unwrap();
        let s = ok[0].1;
        assert_eq!((s.sum, s.count, s.min, s.max), (3.0, 4.0, 0.0, 1.0));
        assert_eq!(s.get("Average"), Some(0.75));
        let (unit, lat) = ring
            .stats(&key("Put.Latency"), t0, t0 + 5 * MINUTE_MS, 5 * MINUTE_MS)
            .unwrap();
        assert_eq!(unit, Unit::Milliseconds);
        assert_eq!(lat[0].1.get("Average"), Some(4.0));
        assert_eq!(lat[0].1.get("SampleCount"), Some(4.0));
        // The range's end is exclusive; an unknown series has none.
        let (_, first) = ring
            .stats(&key("IncomingRecords"), t0, t0 + MINUTE_MS, MINUTE_MS)
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            ring.stats(&key("Nothing"), t0, t0 + MINUTE_MS, MINUTE_MS)
                .is_none()
        );
    }

    #[test]
    fn old_points_age_out() {
        let fake = Arc::new(Fake::default());
        let t0 = 1_000 * MINUTE_MS;
        let ring = Ring::new(vec![fake.clone()], 2, t0);
        for m in 1..=5 {
            fake.count.store(m as u64, Ordering::Relaxed);
            ring.tick(t0 + m * MINUTE_MS);
        }
        let (_, points) = ring
            .stats(&key("IncomingRecords"), 0, i64::MAX, MINUTE_MS)
            .unwrap();
        // Two minutes kept.
        assert_eq!(points.len(), 2, "{points:?}");
    }
}
