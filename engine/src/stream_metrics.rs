//! A data stream's CloudWatch metrics (namespace `AWS/Kinesis`, dimension
//! `StreamName`), counted where the operations run: puts and reads by the
//! engine's API (`api/records.rs`, both the HTTP API and the native
//! protocol go through it), enhanced fan-out by the subscription
//! (`kinesis/subscribe.rs`). Each stream's set lives in its `StreamInfo`
//! and is carried over when the catalog is published again (a reshard or a
//! settings change keeps the counts; a stream created again starts at
//! zero). Recording is atomic adds: no lock, no allocation. Written at a
//! scrape by `kinesis::metrics`.

use crate::metrics::{Count, Durations, Level, Peak};

/// How an operation went, as CloudWatch counts it: `<Op>.Success` is the
/// share of calls that succeeded (two counters here), `<Op>.Latency` their
/// durations.
#[derive(Debug, Default)]
pub struct Calls {
    pub attempts: Count,
    pub successes: Count,
    pub latency: Durations,
}

impl Calls {
    /// A call, and how long it took (µs).
    pub fn record(&self, ok: bool, took: std::time::Duration) {
        self.attempts.add(1);
        if ok {
            self.successes.add(1);
        }
        self.latency
            .observe_us(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }
}

/// One stream's metrics (see the module's header).
#[derive(Debug, Default)]
pub struct StreamMetrics {
    /// `IncomingBytes`, `IncomingRecords`: what every put stored (data bytes).
    pub incoming_bytes: Count,
    pub incoming_records: Count,
    /// `PutRecord.*`.
    pub put_record: Calls,
    pub put_record_bytes: Count,
    /// `PutRecords.*` (native puts count here too).
    pub put_records: Calls,
    pub put_records_bytes: Count,
    pub put_records_total: Count,
    pub put_records_successful: Count,
    pub put_records_failed: Count,
    pub put_records_throttled: Count,
    /// `GetRecords.*`; the iterator age is the last call's (ms), and the
    /// most since the last minute closed.
    pub get_records: Calls,
    pub get_records_bytes: Count,
    pub get_records_records: Count,
    pub get_records_iterator_age_ms: Level,
    pub get_records_iterator_age_peak: Peak,
    /// `SubscribeToShard.Success`, `SubscribeToShard.RateExceeded`.
    pub subscribe_attempts: Count,
    pub subscribe_successes: Count,
    pub subscribe_rate_exceeded: Count,
    /// `SubscribeToShardEvent.*`; millis behind is the last event's.
    pub event_attempts: Count,
    pub event_successes: Count,
    pub event_bytes: Count,
    pub event_records: Count,
    pub event_millis_behind: Level,
    pub event_millis_behind_peak: Peak,
    /// Each enhanced fan-out consumer's own (`ConsumerName` dimension), by name.
    consumers: std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<ConsumerLag>>>,
}

/// One enhanced fan-out consumer's `SubscribeToShardEvent.MillisBehindLatest`:
/// its last event's, and the most since the last minute closed.
#[derive(Debug, Default)]
pub struct ConsumerLag {
    /// The registration it belongs to (its creation, ms): a consumer
    /// registered again under the name starts from nothing.
    pub registered_ms: i64,
    pub events: Count,
    pub millis_behind: Level,
    pub millis_behind_peak: Peak,
}

impl ConsumerLag {
    /// An event pushed to the consumer, `millis_behind` the tip.
    pub fn event(&self, millis_behind: u64) {
        self.millis_behind_peak.raise(millis_behind);
        self.millis_behind.set(millis_behind);
        self.events.add(1);
    }
}

/// What one put call did, for [`StreamMetrics::put`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PutOutcome {
    /// The call succeeded (records may still have failed one by one).
    pub ok: bool,
    pub records: u64,
    pub stored_records: u64,
    pub stored_bytes: u64,
    /// Records refused by the shard limits.
    pub throttled: u64,
}

impl StreamMetrics {
    /// A PutRecord (`single`) or PutRecords call.
    pub fn put(&self, single: bool, o: PutOutcome, took: std::time::Duration) {
        self.incoming_bytes.add(o.stored_bytes);
        self.incoming_records.add(o.stored_records);
        if single {
            self.put_record.record(o.ok && o.stored_records == 1, took);
            self.put_record_bytes.add(o.stored_bytes);
        } else {
            self.put_records.record(o.ok, took);
            self.put_records_bytes.add(o.stored_bytes);
            if o.ok {
                self.put_records_total.add(o.records);
                self.put_records_successful.add(o.stored_records);
                self.put_records_throttled.add(o.throttled);
                self.put_records_failed
                    .add(o.records - o.stored_records - o.throttled);
            }
        }
    }

    /// A GetRecords call: what it returned, and how old its last record
    /// was (ms; 0 at the tip).
    pub fn get(&self, ok: bool, records: u64, bytes: u64, age_ms: u64, took: std::time::Duration) {
        // The peak before the call is counted (CloudWatch's sampler reads
        // the peak first).
        if ok {
            self.get_records_iterator_age_peak.raise(age_ms);
            self.get_records_iterator_age_ms.set(age_ms);
        }
        self.get_records.record(ok, took);
        if ok {
            self.get_records_bytes.add(bytes);
            self.get_records_records.add(records);
        }
    }

    /// The lag of consumer `name` registered at `registered_ms` (made on its
    /// first subscription; a subscription takes it once, its events touch
    /// atomics only).
    pub fn consumer(&self, name: &str, registered_ms: i64) -> std::sync::Arc<ConsumerLag> {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = || {
            std::sync::Arc::new(ConsumerLag {
                registered_ms,
                ..ConsumerLag::default()
            })
        };
        let entry = consumers.entry(name.to_string()).or_insert_with(fresh);
        match entry.registered_ms.cmp(&registered_ms) {
            std::cmp::Ordering::Equal => entry.clone(),
            // A newer registration: it starts from nothing.
            std::cmp::Ordering::Less => {
                *entry = fresh();
                entry.clone()
            }
            // An older one (deregistered meanwhile): counted apart, not kept.
            std::cmp::Ordering::Greater => fresh(),
        }
    }

    /// The lags of the consumers registered now (`registered`: name →
    /// creation ms); those of deregistered ones are dropped.
    pub fn consumer_lags(
        &self,
        registered: &std::collections::BTreeMap<String, i64>,
    ) -> Vec<(String, std::sync::Arc<ConsumerLag>)> {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        // Registered as the map says, or since it was read.
        consumers.retain(|name, lag| {
            registered
                .get(name)
                .is_some_and(|ms| lag.registered_ms >= *ms)
        });
        consumers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// An event pushed to a subscriber (or a read that failed).
    pub fn event(&self, ok: bool, records: u64, bytes: u64, millis_behind: u64) {
        if ok {
            self.event_millis_behind_peak.raise(millis_behind);
            self.event_millis_behind.set(millis_behind);
        }
        self.event_attempts.add(1);
        if ok {
            self.event_successes.add(1);
            self.event_records.add(records);
            self.event_bytes.add(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_records_call_counts_each_outcome() {
        let m = StreamMetrics::default();
        m.put(
            false,
            PutOutcome {
                ok: true,
                records: 10,
                stored_records: 7,
                stored_bytes: 700,
                throttled: 2,
            },
            std::time::Duration::from_micros(3),
        );
        m.put(
            true,
            PutOutcome {
                ok: true,
                records: 1,
                stored_records: 1,
                stored_bytes: 5,
                throttled: 0,
            },
            std::time::Duration::from_micros(1),
        );
        m.put(
            true,
            PutOutcome {
                ok: false,
                records: 1,
                ..PutOutcome::default()
            },
            std::time::Duration::from_micros(1),
        );
        assert_eq!(m.incoming_records.get(), 8);
        assert_eq!(m.incoming_bytes.get(), 705);
        assert_eq!(m.put_records_failed.get(), 1);
        assert_eq!(m.put_records_throttled.get(), 2);
        assert_eq!(m.put_records_successful.get(), 7);
        assert_eq!(
            (m.put_record.attempts.get(), m.put_record.successes.get()),
            (2, 1)
        );
        assert_eq!(m.put_record.latency.count(), 2);
        assert_eq!(m.put_record_bytes.get(), 5);
    }
}
