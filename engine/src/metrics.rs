//! Metrics under CloudWatch's names, written as Prometheus series.
//!
//! Every service keeps the metrics AWS publishes for it (namespace
//! `AWS/Kinesis`, `AWS/Firehose`, ...) in its own atomics, one set per
//! dimension value (a stream, a delivery stream), and writes them at each
//! scrape through a [`Collector`] the binary registers in one [`Registry`]
//! (prefix `riffle`; a service adds its own, e.g. `firehose`). The gateway
//! serves that registry at `GET /metrics` (`http::metrics`).
//!
//! Names: a CloudWatch name maps to one Prometheus name by [`snake_name`]
//! (`DeliveryToS3.Records` → `delivery_to_s3_records`): counters get
//! `_total` from the encoder, durations are histograms in seconds
//! (`..._seconds`), ages are gauges in seconds. CloudWatch's ratio metrics
//! (`*.Success`: successes over attempts) are two counters,
//! `..._success_total` and `..._attempts_total`. Each service's table of
//! names is in its docs.
//!
//! Recording is an atomic add (no lock, no allocation): fit for the paths
//! that serve requests.

use std::sync::atomic::{AtomicU64, Ordering};

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
pub use prometheus_client::registry::Registry;

use prometheus_client::encoding::{EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The registry every service's collector goes into (`riffle_...` names).
pub fn registry() -> Registry {
    Registry::with_prefix("riffle")
}

/// The Prometheus text (format 0.0.4) of `registry`, and its Content-Type.
pub fn text(registry: &Registry) -> (String, &'static str) {
    let mut out = String::new();
    // Writing into a String cannot fail; a collector's own error would
    // leave a partial text, which a scraper refuses as a whole.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    (
        out,
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
    )
}

/// A CloudWatch metric name (`PutRecordBatch.Latency`, `JQProcessing.Duration`)
/// in Prometheus's style (`put_record_batch_latency`, `jq_processing_duration`):
/// words split at case changes, dots become underscores, lower case.
pub fn snake_name(cloudwatch: &str) -> String {
    let mut out = String::with_capacity(cloudwatch.len() + 8);
    for part in cloudwatch.split('.') {
        if !out.is_empty() {
            out.push('_');
        }
        let chars: Vec<char> = part.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                if prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower)
                {
                    out.push('_');
                }
            }
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (set, not added).
#[derive(Debug, Default)]
pub struct Level(AtomicU64);

impl Level {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The most a value reached since it was last taken (a minute's maximum).
#[derive(Debug, Default)]
pub struct Peak(AtomicU64);

impl Peak {
    pub fn raise(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The maximum so far, starting again from 0.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of [`Durations`]' buckets: 1 ms to 5 minutes.
pub const DURATION_BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// How long something took, as a histogram over [`DURATION_BUCKETS_S`]
/// (CloudWatch's `*.Latency` and `*.Duration`, which it reports in ms).
#[derive(Debug, Default)]
pub struct Durations {
    /// Per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; DURATION_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Durations {
    pub fn observe_ms(&self, ms: i64) {
        self.observe_us(ms.max(0) as u64 * 1000);
    }

    pub fn observe_us(&self, us: u64) {
        let s = us as f64 / 1e6;
        let i = DURATION_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(DURATION_BUCKETS_S.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of what was observed, in seconds.
    pub fn sum_s(&self) -> f64 {
        self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// What a scrape writes of one metric: its kind, and per series the labels
/// and value.
pub enum Values<'a, L> {
    Counter(Vec<(L, u64)>),
    Gauge(Vec<(L, u64)>),
    /// An age or duration in seconds.
    GaugeSeconds(Vec<(L, f64)>),
    Durations(Vec<(L, &'a Durations)>),
}

/// Writes one metric (`name` as [`snake_name`] makes it, without a unit
/// suffix: `_seconds` is added for durations and ages) with its series.
/// A metric without series is not written.
pub fn encode<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: Values<'_, L>,
) -> Result<(), std::fmt::Error> {
    let seconds = format!("{name}_seconds");
    match values {
        Values::Counter(series) if !series.is_empty() => {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, v) in &series {
                m.encode_family(labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
            }
        }
        Values::Gauge(series) if !series.is_empty() => {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, v) in &series {
                m.encode_family(labels)?.encode_gauge(&(*v as i64))?;
            }
        }
        Values::GaugeSeconds(series) if !series.is_empty() => {
            let mut m = encoder.encode_descriptor(&seconds, help, None, MetricType::Gauge)?;
            for (labels, v) in &series {
                m.encode_family(labels)?.encode_gauge(v)?;
            }
        }
        Values::Durations(series) if !series.is_empty() => {
            let mut m = encoder.encode_descriptor(&seconds, help, None, MetricType::Histogram)?;
            for (labels, d) in &series {
                let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS_S
                    .iter()
                    .zip(&d.buckets)
                    .map(|(&b, n)| (b, n.load(Ordering::Relaxed)))
                    .collect();
                buckets.push((
                    f64::INFINITY,
                    d.buckets[DURATION_BUCKETS_S.len()].load(Ordering::Relaxed),
                ));
                // The count is the buckets' sum, read with them: a scrape
                // never shows a count its buckets do not add up to.
                let count = buckets.iter().map(|(_, n)| n).sum();
                m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                    d.sum_s(),
                    count,
                    &buckets,
                    None,
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudwatch_names_become_prometheus_names() {
        for (cw, prom) in [
            ("IncomingBytes", "incoming_bytes"),
            (
                "DeliveryToS3.DataFreshness",
                "delivery_to_s3_data_freshness",
            ),
            ("PutRecordBatch.Latency", "put_record_batch_latency"),
            ("JQProcessing.Duration", "jq_processing_duration"),
            (
                "DeliveryToAmazonOpenSearchService.Records",
                "delivery_to_amazon_open_search_service_records",
            ),
            (
                "DataReadFromKinesisStream.Bytes",
                "data_read_from_kinesis_stream_bytes",
            ),
            ("KMSKeyNotFound", "kms_key_not_found"),
            (
                "GetRecords.IteratorAgeMilliseconds",
                "get_records_iterator_age_milliseconds",
            ),
        ] {
            assert_eq!(snake_name(cw), prom, "{cw}");
        }
    }

    #[derive(Debug)]
    struct Two {
        count: Count,
        took: Durations,
    }

    impl Collector for Two {
        fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let label = [("stream", "s1")];
            encode(
                &mut e,
                "incoming_records",
                "Records put.",
                Values::Counter(vec![(label, self.count.get())]),
            )?;
            encode(
                &mut e,
                "put_latency",
                "How long puts took.",
                Values::Durations(vec![(label, &self.took)]),
            )?;
            encode::<[(&str, &str); 1]>(&mut e, "empty", "Nothing.", Values::Gauge(vec![]))
        }
    }

    #[test]
    fn a_scrape_writes_counters_and_histograms_with_their_labels() {
        let two = std::sync::Arc::new(Two {
            count: Count::default(),
            took: Durations::default(),
        });
        let mut registry = registry();
        registry
            .sub_registry_with_prefix("svc")
            .register_collector(Box::new(two.clone()));
        two.count.add(3);
        two.count.add(4);
        two.took.observe_ms(3);
        two.took.observe_ms(700);
        two.took.observe_ms(400_000);
        let (text, content_type) = text(&registry);
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(
            text.contains("# TYPE riffle_svc_incoming_records_total counter\n"),
            "{text}"
        );
        assert!(text.contains("riffle_svc_incoming_records_total{stream=\"s1\"} 7\n"));
        assert!(text.contains("# TYPE riffle_svc_put_latency_seconds histogram\n"));
        // Cumulative buckets: 3 ms under 5 ms, 700 ms under 1 s, 400 s above all.
        assert!(
            text.contains("riffle_svc_put_latency_seconds_bucket{stream=\"s1\",le=\"0.005\"} 1\n")
        );
        assert!(
            text.contains("riffle_svc_put_latency_seconds_bucket{stream=\"s1\",le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("riffle_svc_put_latency_seconds_bucket{stream=\"s1\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("riffle_svc_put_latency_seconds_count{stream=\"s1\"} 3\n"));
        assert!(text.contains("riffle_svc_put_latency_seconds_sum{stream=\"s1\"} 400.703\n"));
        assert!(
            !text.contains("empty"),
            "a metric without series is left out"
        );
    }
}
