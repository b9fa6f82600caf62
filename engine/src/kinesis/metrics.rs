//! Kinesis Data Streams' CloudWatch metrics (namespace `AWS/Kinesis`,
//! dimension `StreamName`), written at each scrape as
//! `riffle_kinesis_<name>{stream=".."}` (names by `metrics::snake_name`;
//! counters end in `_total`, latencies are histograms in seconds). Every
//! stream has its series from its creation (zeros until used); a deleted
//! stream's go; a stream created again starts from zero.
//!
//! | CloudWatch (`AWS/Kinesis`) | Prometheus (`riffle_kinesis_...`) | counts |
//! |---|---|---|
//! | `IncomingBytes`, `IncomingRecords` | `incoming_bytes_total`, `incoming_records_total` | data bytes and records stored by every put (HTTP and native) |
//! | `PutRecord.Bytes`, `.Latency`, `.Success` | `put_record_bytes_total`, `put_record_latency_seconds`, `put_record_success_total` / `put_record_attempts_total` | PutRecord calls |
//! | `PutRecords.Bytes`, `.Latency`, `.Success` | `put_records_bytes_total`, `put_records_latency_seconds`, `put_records_success_total` / `put_records_attempts_total` | PutRecords calls (a native PutRecords counts once, its batches' records below) |
//! | `PutRecords.TotalRecords`, `.SuccessfulRecords`, `.FailedRecords`, `.ThrottledRecords` | `put_records_total_records_total`, `put_records_successful_records_total`, `put_records_failed_records_total`, `put_records_throttled_records_total` | records of PutRecords calls by outcome |
//! | `GetRecords.Bytes`, `.Records`, `.Latency`, `.Success` | `get_records_bytes_total`, `get_records_records_total`, `get_records_latency_seconds`, `get_records_success_total` / `get_records_attempts_total` | GetRecords calls (HTTP and native) |
//! | `GetRecords.IteratorAgeMilliseconds` | `get_records_iterator_age_milliseconds` (gauge) | the last call's last record's age (0 at the tip) |
//! | `SubscribeToShard.Success`, `.RateExceeded` | `subscribe_to_shard_success_total` / `subscribe_to_shard_attempts_total`, `subscribe_to_shard_rate_exceeded_total` | SubscribeToShard calls |
//! | `SubscribeToShardEvent.Bytes`, `.Records`, `.Success`, `.MillisBehindLatest` | `subscribe_to_shard_event_bytes_total`, `..._records_total`, `..._success_total` / `..._attempts_total`, `subscribe_to_shard_event_millis_behind_latest` (gauge) | events pushed to subscribers |
//! | `WriteProvisionedThroughputExceeded` | `write_provisioned_throughput_exceeded_total` | records the shard limits refused (only with `--shard-limits aws`) |
//! | `ReadProvisionedThroughputExceeded` | `read_provisioned_throughput_exceeded_total` | GetRecords calls the shard limits refused (likewise) |
//!
//! The counts live in each stream's `StreamInfo` (`stream_metrics`) and the
//! cores' throttle refusals (`throttle::Refusals`); this collector only
//! reads them.

use crate::Engine;
use crate::engine_metrics::ShardCounters;
use crate::metrics::{Collector, Count, DescriptorEncoder, Durations, Values, encode, snake_name};
use crate::stream_metrics::StreamMetrics;

/// Kinesis's collector for the server's metrics registry (register it under
/// the prefix `kinesis`).
#[derive(Clone, Debug)]
pub struct KinesisMetrics {
    engine: Engine,
}

impl KinesisMetrics {
    /// The consumers registered on `stream` now (name → creation ms).
    fn registered(&self, stream: &str) -> std::collections::BTreeMap<String, i64> {
        self.engine
            .settings(stream)
            .map(|s| s.consumers)
            .unwrap_or_default()
    }

    pub fn new(engine: Engine) -> KinesisMetrics {
        KinesisMetrics { engine }
    }

    /// Per stream that exists now: (records, reads) the shard limits
    /// refused; `None` when no limits are enforced.
    fn refused(&self) -> Option<Vec<(String, (u64, u64))>> {
        let limits = self.engine.config().shard_limits.as_ref()?;
        // The streams that exist now, with their incarnation's id.
        let live: Vec<(String, u64)> = self
            .engine
            .list_streams()
            .into_iter()
            .filter_map(|name| self.engine.stream_id(&name).ok().map(|id| (name, id)))
            .collect();
        let ids: Vec<u64> = live.iter().map(|(_, id)| *id).collect();
        let counts = limits.refused.counts(&ids);
        Some(live.into_iter().map(|(n, _)| n).zip(counts).collect())
    }
}

type Labels<'a> = [(&'static str, &'a str); 1];
/// A shard-level metric: its CloudWatch name and its counter.
type ShardPick = (&'static str, fn(&ShardCounters) -> u64);

impl KinesisMetrics {
    /// The shard-level series of the streams that enabled them
    /// (EnableEnhancedMonitoring), for CloudWatch's API (dimensions
    /// `ShardId`, `StreamName`): the counts a sample per record (the shard
    /// counts no calls), the iterator's age as the last read's.
    fn sample_shards(&self, out: &mut Vec<crate::cloudwatch::ring::Sample>) {
        use crate::cloudwatch::ring::{Reading, Sample, Unit};
        let counters = self.engine.shard_counters();
        for name in self.engine.list_streams() {
            let (Ok(id), Ok(settings)) =
                (self.engine.stream_id(&name), self.engine.settings(&name))
            else {
                continue;
            };
            let enabled = settings.shard_level_metrics;
            if enabled.is_empty() {
                continue;
            }
            for ((stream_id, index), c) in &counters {
                if *stream_id != id {
                    continue;
                }
                let dimensions = vec![
                    (
                        "ShardId".to_string(),
                        riffle_protocol::routing::shard_id(*index),
                    ),
                    ("StreamName".to_string(), name.clone()),
                ];
                // Each counter read once, the calls (records) before the
                // sums their writers add first; the throttles' calls are
                // the attempts (records taken or refused).
                let records_in = c.incoming_records.get();
                let records_out = c.outgoing_records.get();
                let (write_exceeded, read_exceeded) =
                    (c.write_exceeded.get(), c.read_exceeded.get());
                let (bytes_in, bytes_out) = (c.incoming_bytes.get(), c.outgoing_bytes.get());
                let series = [
                    ("IncomingBytes", Unit::Bytes, bytes_in, records_in),
                    ("IncomingRecords", Unit::Count, records_in, records_in),
                    ("OutgoingBytes", Unit::Bytes, bytes_out, records_out),
                    ("OutgoingRecords", Unit::Count, records_out, records_out),
                    (
                        "WriteProvisionedThroughputExceeded",
                        Unit::Count,
                        write_exceeded,
                        records_in + write_exceeded,
                    ),
                    (
                        "ReadProvisionedThroughputExceeded",
                        Unit::Count,
                        read_exceeded,
                        records_out + read_exceeded,
                    ),
                ];
                for (metric, unit, sum, calls) in series {
                    if enabled.contains(metric) {
                        let reading = Reading::Sum { sum, calls };
                        let d = dimensions.clone();
                        out.push(Sample::new("AWS/Kinesis", metric, d, unit, reading));
                    }
                }
                if enabled.contains("IteratorAgeMilliseconds") {
                    let reading = Reading::Peak {
                        max: c.iterator_age_ms.get() as f64,
                        calls: records_out,
                    };
                    let metric = "IteratorAgeMilliseconds";
                    out.push(Sample::new(
                        "AWS/Kinesis",
                        metric,
                        dimensions,
                        Unit::Milliseconds,
                        reading,
                    ));
                }
            }
        }
    }

    /// The shard-level metrics EnableEnhancedMonitoring turned on, per shard
    /// of each stream (labels `stream` and `shard`): a metric a stream did
    /// not enable is not written for it.
    fn encode_shards(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.engine.shard_counters();
        // (name, its incarnation, the metrics it enabled).
        let streams: Vec<(String, u64, std::collections::BTreeSet<String>)> = self
            .engine
            .list_streams()
            .into_iter()
            .filter_map(|name| {
                let id = self.engine.stream_id(&name).ok()?;
                let enabled = self.engine.settings(&name).ok()?.shard_level_metrics;
                (!enabled.is_empty()).then_some((name, id, enabled))
            })
            .collect();
        if streams.is_empty() {
            return Ok(());
        }
        let shard_ids: Vec<String> = counters
            .iter()
            .map(|((_, i), _)| riffle_protocol::routing::shard_id(*i))
            .collect();
        let picks: [ShardPick; 7] = [
            ("IncomingBytes", |c| c.incoming_bytes.get()),
            ("IncomingRecords", |c| c.incoming_records.get()),
            ("OutgoingBytes", |c| c.outgoing_bytes.get()),
            ("OutgoingRecords", |c| c.outgoing_records.get()),
            ("WriteProvisionedThroughputExceeded", |c| {
                c.write_exceeded.get()
            }),
            ("ReadProvisionedThroughputExceeded", |c| {
                c.read_exceeded.get()
            }),
            ("IteratorAgeMilliseconds", |c| c.iterator_age_ms.get()),
        ];
        for (cw, pick) in picks {
            let mut series: Vec<([(&str, &str); 2], u64)> = Vec::new();
            for (name, id, enabled) in &streams {
                if !enabled.contains(cw) {
                    continue;
                }
                for (i, ((stream_id, _), c)) in counters.iter().enumerate() {
                    if stream_id == id {
                        series.push((
                            [("stream", name.as_str()), ("shard", &shard_ids[i])],
                            pick(c),
                        ));
                    }
                }
            }
            let help = format!("CloudWatch AWS/Kinesis {cw} (dimensions StreamName, ShardId)");
            let name = format!("shard_{}", snake_name(cw));
            let values = if cw == "IteratorAgeMilliseconds" {
                Values::Gauge(series)
            } else {
                Values::Counter(series)
            };
            encode(encoder, &name, &help, values)?;
        }
        Ok(())
    }
}
/// Which count of a stream's metrics a series shows.
type PickCount = fn(&StreamMetrics) -> &Count;

impl Collector for KinesisMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let streams = self.engine.stream_metrics();
        let help = |cw: &str| format!("CloudWatch AWS/Kinesis {cw} (dimension StreamName)");
        let counters: [(&str, PickCount); 20] = [
            ("IncomingBytes", |m| &m.incoming_bytes),
            ("IncomingRecords", |m| &m.incoming_records),
            ("PutRecord.Bytes", |m| &m.put_record_bytes),
            ("PutRecord.Success", |m| &m.put_record.successes),
            ("PutRecord.Attempts", |m| &m.put_record.attempts),
            ("PutRecords.Bytes", |m| &m.put_records_bytes),
            ("PutRecords.Success", |m| &m.put_records.successes),
            ("PutRecords.Attempts", |m| &m.put_records.attempts),
            ("PutRecords.TotalRecords", |m| &m.put_records_total),
            ("PutRecords.SuccessfulRecords", |m| {
                &m.put_records_successful
            }),
            ("PutRecords.FailedRecords", |m| &m.put_records_failed),
            ("PutRecords.ThrottledRecords", |m| &m.put_records_throttled),
            ("GetRecords.Bytes", |m| &m.get_records_bytes),
            ("GetRecords.Records", |m| &m.get_records_records),
            ("GetRecords.Success", |m| &m.get_records.successes),
            ("GetRecords.Attempts", |m| &m.get_records.attempts),
            ("SubscribeToShard.Success", |m| &m.subscribe_successes),
            ("SubscribeToShard.Attempts", |m| &m.subscribe_attempts),
            ("SubscribeToShard.RateExceeded", |m| {
                &m.subscribe_rate_exceeded
            }),
            ("SubscribeToShardEvent.Bytes", |m| &m.event_bytes),
        ];
        let more: [(&str, PickCount); 3] = [
            ("SubscribeToShardEvent.Records", |m| &m.event_records),
            ("SubscribeToShardEvent.Success", |m| &m.event_successes),
            ("SubscribeToShardEvent.Attempts", |m| &m.event_attempts),
        ];
        for (cw, pick) in counters.iter().chain(&more) {
            let series: Vec<(Labels<'_>, u64)> = streams
                .iter()
                .map(|(name, m)| ([("stream", name.as_str())], pick(m).get()))
                .collect();
            // `.Attempts` is not CloudWatch's: the denominator of `.Success`.
            let help = match cw.strip_suffix(".Attempts") {
                Some(op) => format!(
                    "Calls of {op} (the denominator of CloudWatch AWS/Kinesis {op}.Success)"
                ),
                None => help(cw),
            };
            encode(
                &mut encoder,
                &snake_name(cw),
                &help,
                Values::Counter(series),
            )?;
        }
        for (cw, pick) in [
            (
                "PutRecord.Latency",
                (|m| &m.put_record.latency) as fn(&StreamMetrics) -> &Durations,
            ),
            ("PutRecords.Latency", |m| &m.put_records.latency),
            ("GetRecords.Latency", |m| &m.get_records.latency),
        ] {
            let series: Vec<(Labels<'_>, _)> = streams
                .iter()
                .map(|(name, m)| ([("stream", name.as_str())], pick(m)))
                .collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Durations(series),
            )?;
        }
        for (cw, pick) in [
            (
                "GetRecords.IteratorAgeMilliseconds",
                (|m| m.get_records_iterator_age_ms.get()) as fn(&StreamMetrics) -> u64,
            ),
            ("SubscribeToShardEvent.MillisBehindLatest", |m| {
                m.event_millis_behind.get()
            }),
        ] {
            let series: Vec<(Labels<'_>, u64)> = streams
                .iter()
                .map(|(name, m)| ([("stream", name.as_str())], pick(m)))
                .collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Gauge(series),
            )?;
        }
        let raw: Vec<(&str, String, u64)> = streams
            .iter()
            .flat_map(|(name, m)| {
                m.consumer_lags(&self.registered(name))
                    .into_iter()
                    .map(move |(c, lag)| (name.as_str(), c, lag.millis_behind.get()))
            })
            .collect();
        let lags: Vec<([(&str, &str); 2], u64)> = raw
            .iter()
            .map(|(name, c, v)| ([("stream", *name), ("consumer", c.as_str())], *v))
            .collect();
        encode(
            &mut encoder,
            "subscribe_to_shard_event_consumer_millis_behind_latest",
            "CloudWatch AWS/Kinesis SubscribeToShardEvent.MillisBehindLatest (dimensions StreamName, ConsumerName): the consumer's last event's",
            Values::Gauge(lags),
        )?;
        self.encode_shards(&mut encoder)?;
        let Some(refused) = self.refused() else {
            return Ok(());
        };
        let series = |pick: fn(&(u64, u64)) -> u64| -> Vec<([(&str, &str); 1], u64)> {
            refused
                .iter()
                .map(|(name, c)| ([("stream", name.as_str())], pick(c)))
                .collect()
        };
        for (cw, values) in [
            ("WriteProvisionedThroughputExceeded", series(|c| c.0)),
            ("ReadProvisionedThroughputExceeded", series(|c| c.1)),
        ] {
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(values),
            )?;
        }
        Ok(())
    }
}

impl crate::cloudwatch::ring::Source for KinesisMetrics {
    /// The same metrics for CloudWatch's API (dimension `StreamName`):
    /// sums with the calls they came in, durations, success ratios, and the
    /// iterator ages' most per minute.
    fn sample(&self, out: &mut Vec<crate::cloudwatch::ring::Sample>, closing: bool) {
        use crate::cloudwatch::ring::{Reading, Sample, Unit};
        use crate::stream_metrics::Calls;
        for (name, m) in self.engine.stream_metrics() {
            let mut push =
                crate::cloudwatch::ring::one_dimension(out, "AWS/Kinesis", "StreamName", &name);
            let sum = |c: &Count, calls: u64| Reading::Sum {
                sum: c.get(),
                calls,
            };
            let latency = |c: &Calls| Reading::Durations {
                sum_ms: c.latency.sum_s() * 1000.0,
                count: c.latency.count(),
            };
            let success = |c: &Calls| Reading::Ratio {
                successes: c.successes.get(),
                attempts: c.attempts.get(),
            };
            // Peaks before their calls (a call raises its peak first).
            let peak = |p: &crate::metrics::Peak| if closing { p.take() } else { p.get() } as f64;
            let age_max = peak(&m.get_records_iterator_age_peak);
            let behind_max = peak(&m.event_millis_behind_peak);
            let put_one = m.put_record.attempts.get();
            let put_many = m.put_records.attempts.get();
            let gets = m.get_records.attempts.get();
            let events = m.event_attempts.get();
            push(
                "IncomingBytes",
                Unit::Bytes,
                sum(&m.incoming_bytes, put_one + put_many),
            );
            push(
                "IncomingRecords",
                Unit::Count,
                sum(&m.incoming_records, put_one + put_many),
            );
            push(
                "PutRecord.Bytes",
                Unit::Bytes,
                sum(&m.put_record_bytes, put_one),
            );
            push(
                "PutRecord.Latency",
                Unit::Milliseconds,
                latency(&m.put_record),
            );
            push("PutRecord.Success", Unit::Count, success(&m.put_record));
            push(
                "PutRecords.Bytes",
                Unit::Bytes,
                sum(&m.put_records_bytes, put_many),
            );
            push(
                "PutRecords.Latency",
                Unit::Milliseconds,
                latency(&m.put_records),
            );
            push("PutRecords.Success", Unit::Count, success(&m.put_records));
            for (metric, c) in [
                ("PutRecords.TotalRecords", &m.put_records_total),
                ("PutRecords.SuccessfulRecords", &m.put_records_successful),
                ("PutRecords.FailedRecords", &m.put_records_failed),
                ("PutRecords.ThrottledRecords", &m.put_records_throttled),
            ] {
                push(metric, Unit::Count, sum(c, put_many));
            }
            push(
                "GetRecords.Bytes",
                Unit::Bytes,
                sum(&m.get_records_bytes, gets),
            );
            push(
                "GetRecords.Records",
                Unit::Count,
                sum(&m.get_records_records, gets),
            );
            push(
                "GetRecords.Latency",
                Unit::Milliseconds,
                latency(&m.get_records),
            );
            push("GetRecords.Success", Unit::Count, success(&m.get_records));
            push(
                "GetRecords.IteratorAgeMilliseconds",
                Unit::Milliseconds,
                Reading::Peak {
                    max: age_max,
                    calls: m.get_records.successes.get(),
                },
            );
            push(
                "SubscribeToShard.Success",
                Unit::Count,
                Reading::Ratio {
                    successes: m.subscribe_successes.get(),
                    attempts: m.subscribe_attempts.get(),
                },
            );
            push(
                "SubscribeToShard.RateExceeded",
                Unit::Count,
                sum(&m.subscribe_rate_exceeded, m.subscribe_attempts.get()),
            );
            push(
                "SubscribeToShardEvent.Bytes",
                Unit::Bytes,
                sum(&m.event_bytes, events),
            );
            push(
                "SubscribeToShardEvent.Records",
                Unit::Count,
                sum(&m.event_records, events),
            );
            push(
                "SubscribeToShardEvent.Success",
                Unit::Count,
                Reading::Ratio {
                    successes: m.event_successes.get(),
                    attempts: events,
                },
            );
            push(
                "SubscribeToShardEvent.MillisBehindLatest",
                Unit::Milliseconds,
                Reading::Peak {
                    max: behind_max,
                    calls: m.event_successes.get(),
                },
            );
            drop(push);
            // Each consumer's, with the ConsumerName dimension as AWS publishes it.
            for (consumer, lag) in m.consumer_lags(&self.registered(&name)) {
                let max = if closing {
                    lag.millis_behind_peak.take()
                } else {
                    lag.millis_behind_peak.get()
                } as f64;
                let dimensions = vec![
                    ("ConsumerName".to_string(), consumer),
                    ("StreamName".to_string(), name.clone()),
                ];
                let reading = Reading::Peak {
                    max,
                    calls: lag.events.get(),
                };
                let metric = "SubscribeToShardEvent.MillisBehindLatest";
                out.push(Sample::new(
                    "AWS/Kinesis",
                    metric,
                    dimensions,
                    Unit::Milliseconds,
                    reading,
                ));
            }
        }
        self.sample_shards(out);
        if let Some(refused) = self.refused() {
            let metrics: std::collections::HashMap<String, _> =
                self.engine.stream_metrics().into_iter().collect();
            for (name, (writes, reads)) in refused {
                let Some(m) = metrics.get(&name) else {
                    continue;
                };
                // Per call of the operations they refuse.
                let puts = m.put_record.attempts.get() + m.put_records.attempts.get();
                for (metric, v, calls) in [
                    ("WriteProvisionedThroughputExceeded", writes, puts),
                    (
                        "ReadProvisionedThroughputExceeded",
                        reads,
                        m.get_records.attempts.get(),
                    ),
                ] {
                    let dimensions = vec![("StreamName".to_string(), name.clone())];
                    let reading = Reading::Sum { sum: v, calls };
                    out.push(Sample::new(
                        "AWS/Kinesis",
                        metric,
                        dimensions,
                        Unit::Count,
                        reading,
                    ));
                }
            }
        }
    }
}
