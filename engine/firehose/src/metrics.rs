//! Firehose's CloudWatch metrics (namespace `AWS/Firehose`, dimension
//! `DeliveryStreamName`), kept per delivery stream incarnation in atomics
//! and written at each scrape as `riffle_firehose_<name>{delivery_stream=".."}`
//! (names by `riffle_engine::metrics::snake_name`; docs/firehose.md has the
//! table). The delivery metrics take their destination's CloudWatch prefix
//! (`DeliveryToS3`, `DeliveryToHttpEndpoint`, ...) when written, from the
//! delivery stream's destination then.
//!
//! `DataFreshness` is computed at the scrape: the age of the oldest record a
//! delivery task holds and has not delivered (each task notes its oldest one
//! when it buffers it and clears it once delivered).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use riffle_engine::metrics::{
    Collector, Count, DescriptorEncoder, Durations, Level, Values, encode, snake_name,
};
use riffle_engine::rt;

use crate::service::Shared;
use crate::state::SourceKind;

/// A put operation's own metrics (`PutRecord.*`, `PutRecordBatch.*`).
#[derive(Debug, Default)]
pub(crate) struct ApiMetrics {
    pub(crate) requests: Count,
    pub(crate) records: Count,
    pub(crate) bytes: Count,
    pub(crate) latency: Durations,
}

/// Deliveries to one place: bytes and records delivered, attempts and the
/// successful ones (CloudWatch's `.Success` is their ratio).
#[derive(Debug, Default)]
pub(crate) struct Channel {
    pub(crate) bytes: Count,
    pub(crate) records: Count,
    pub(crate) attempts: Count,
    pub(crate) successes: Count,
}

impl Channel {
    /// `records` of `bytes` delivered.
    pub(crate) fn delivered(&self, records: usize, bytes: usize) {
        self.records.add(records as u64);
        self.bytes.add(bytes as u64);
    }

    pub(crate) fn attempt(&self, ok: bool) {
        self.attempts.add(1);
        if ok {
            self.successes.add(1);
        }
    }
}

/// Which put operation a put came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PutApi {
    PutRecord,
    PutRecordBatch,
}

/// One delivery stream incarnation's metrics.
#[derive(Debug, Default)]
pub(crate) struct StreamMetrics {
    id: u64,
    pub(crate) incoming_bytes: Count,
    pub(crate) incoming_records: Count,
    pub(crate) incoming_put_requests: Count,
    pub(crate) put_record: ApiMetrics,
    pub(crate) put_record_batch: ApiMetrics,
    /// `DataReadFromKinesisStream.*` and `KinesisMillisBehindLatest` (stream sources).
    pub(crate) read_bytes: Count,
    pub(crate) read_records: Count,
    /// Per source shard, how far its last read was behind the tip (ms).
    millis_behind: Mutex<BTreeMap<u32, u64>>,
    /// To the destination (`DeliveryTo<destination>.*`).
    pub(crate) delivery: Channel,
    /// Objects written to S3 (`DeliveryToS3.ObjectCount`), S3 destinations.
    pub(crate) objects: Count,
    /// A Redshift destination's intermediate objects (`DeliveryToS3.*`).
    pub(crate) staging: Channel,
    /// The S3 backup (`BackupToS3.*`): S3BackupMode Enabled, or AllData.
    pub(crate) backup: Channel,
    /// `ExecuteProcessing.*` and `SucceedProcessing.*`.
    pub(crate) processing: Channel,
    pub(crate) processing_duration: Durations,
    /// `SucceedConversion.*` and `FailedConversion.*`.
    pub(crate) converted: Channel,
    pub(crate) not_converted: Channel,
    /// `PartitionCount`: the partitions of the last partitioned delivery.
    pub(crate) partitions: Level,
    /// Per source shard, the arrival (ms) of the oldest record its task
    /// holds undelivered.
    oldest: Mutex<BTreeMap<u32, i64>>,
    /// The most since CloudWatch's last closed minute: ms behind, and the
    /// age (ms) a record reached before it was delivered.
    millis_behind_peak: riffle_engine::metrics::Peak,
    freshness_peak_ms: riffle_engine::metrics::Peak,
}

impl StreamMetrics {
    pub(crate) fn api(&self, api: PutApi) -> &ApiMetrics {
        match api {
            PutApi::PutRecord => &self.put_record,
            PutApi::PutRecordBatch => &self.put_record_batch,
        }
    }

    /// Shard `shard`'s last read was `ms` behind its tip.
    pub(crate) fn behind(&self, shard: u32, ms: u64) {
        let mut behind = self.millis_behind.lock().unwrap_or_else(|e| e.into_inner());
        behind.insert(shard, ms);
        self.millis_behind_peak.raise(ms);
    }

    /// The most any shard is behind (`KinesisMillisBehindLatest`).
    fn millis_behind_max(&self) -> u64 {
        let behind = self.millis_behind.lock().unwrap_or_else(|e| e.into_inner());
        behind.values().copied().max().unwrap_or(0)
    }

    /// Shard `shard`'s task holds a record that arrived at `arrival_ms`
    /// (None: nothing); an older one it noted before stays until delivered.
    pub(crate) fn holding(&self, shard: u32, arrival_ms: Option<i64>) {
        if let Some(ms) = arrival_ms {
            let mut oldest = self.oldest.lock().unwrap_or_else(|e| e.into_inner());
            oldest.entry(shard).or_insert(ms);
        }
    }

    /// Shard `shard` delivered what it held; `next`: the arrival of the
    /// oldest record it gathered meanwhile (None: none).
    pub(crate) fn delivered(&self, shard: u32, next: Option<i64>) {
        let mut oldest = self.oldest.lock().unwrap_or_else(|e| e.into_inner());
        // How old the oldest record got before it went.
        if let Some(&ms) = oldest.get(&shard) {
            self.freshness_peak_ms
                .raise((rt::now_ms() - ms).max(0) as u64);
        }
        match next {
            Some(ms) => oldest.insert(shard, ms),
            None => oldest.remove(&shard),
        };
    }

    /// The age in seconds of the oldest record held undelivered (0: none).
    fn freshness_s(&self, now_ms: i64) -> f64 {
        let oldest = self.oldest.lock().unwrap_or_else(|e| e.into_inner());
        oldest
            .values()
            .min()
            .map_or(0.0, |&ms| (now_ms - ms).max(0) as f64 / 1000.0)
    }
}

/// Every delivery stream's metrics, by name.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    streams: RwLock<BTreeMap<String, Arc<StreamMetrics>>>,
}

impl Metrics {
    /// The metrics of incarnation `id` of delivery stream `name` (a new
    /// incarnation starts from zero).
    pub(crate) fn of(&self, name: &str, id: u64) -> Arc<StreamMetrics> {
        if let Some(m) = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .filter(|m| m.id == id)
        {
            return m.clone();
        }
        let fresh = || {
            Arc::new(StreamMetrics {
                id,
                ..StreamMetrics::default()
            })
        };
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        match streams.get(name) {
            Some(m) if m.id == id => m.clone(),
            // A call of an older incarnation (deleted and created again
            // since) counts nowhere: the newer one's series stay.
            Some(m) if m.id > id => fresh(),
            _ => {
                let m = fresh();
                streams.insert(name.to_string(), m.clone());
                m
            }
        }
    }
}

/// The CloudWatch prefix of a destination kind's delivery metrics.
fn delivery_prefix(kind: &str) -> &'static str {
    match kind {
        "HttpEndpoint" => "DeliveryToHttpEndpoint",
        "Redshift" => "DeliveryToRedshift",
        "Splunk" => "DeliveryToSplunk",
        "Amazonopensearchservice" => "DeliveryToAmazonOpenSearchService",
        "Elasticsearch" => "DeliveryToElasticsearch",
        "AmazonOpenSearchServerless" => "DeliveryToAmazonOpenSearchServerless",
        _ => "DeliveryToS3",
    }
}

type Labels<'a> = [(&'static str, &'a str); 1];

/// One scrape's series, by CloudWatch name (a name gathers series from
/// several places: `DeliveryToS3.*` from S3 destinations and Redshift's
/// intermediate objects).
#[derive(Default)]
struct Scrape<'a> {
    counters: BTreeMap<String, Vec<(Labels<'a>, u64)>>,
    gauges: BTreeMap<String, Vec<(Labels<'a>, u64)>>,
    ages: BTreeMap<String, Vec<(Labels<'a>, f64)>>,
    durations: BTreeMap<String, Vec<(Labels<'a>, &'a Durations)>>,
}

impl<'a> Scrape<'a> {
    fn counter(&mut self, name: String, labels: Labels<'a>, v: &Count) {
        self.counters
            .entry(name)
            .or_default()
            .push((labels, v.get()));
    }

    fn channel(&mut self, prefix: &str, labels: Labels<'a>, c: &Channel, success: &str) {
        self.counter(format!("{prefix}.Bytes"), labels, &c.bytes);
        self.counter(format!("{prefix}.Records"), labels, &c.records);
        self.counter(format!("{prefix}.{success}"), labels, &c.successes);
        self.counter(format!("{prefix}.Attempts"), labels, &c.attempts);
    }
}

/// Firehose's collector for the server's metrics registry.
#[derive(Clone)]
pub struct FirehoseMetrics(pub(crate) Arc<Shared>);

impl std::fmt::Debug for FirehoseMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirehoseMetrics")
    }
}

impl Collector for FirehoseMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The live incarnations only; those of deleted streams are dropped.
        // The state is read under the lock: an incarnation made between the
        // two would be dropped from the map while its task keeps counting.
        let mut streams = self
            .0
            .metrics
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let state = self.0.meta.state();
        let live: Vec<(&str, &crate::state::DeliveryStream, Arc<StreamMetrics>)> = {
            streams.retain(|name, m| state.streams.get(name).is_some_and(|d| d.id == m.id));
            state
                .streams
                .values()
                .filter_map(|d| {
                    streams
                        .get(&d.name)
                        .map(|m| (d.name.as_str(), d, m.clone()))
                })
                .collect()
        };
        drop(streams);
        let now = rt::now_ms();
        let mut s = Scrape::default();
        for (name, d, m) in &live {
            let l = [("delivery_stream", *name)];
            match d.source {
                SourceKind::DirectPut => {
                    s.counter("IncomingBytes".into(), l, &m.incoming_bytes);
                    s.counter("IncomingRecords".into(), l, &m.incoming_records);
                    s.counter("IncomingPutRequests".into(), l, &m.incoming_put_requests);
                    for (api, a) in [
                        ("PutRecord", &m.put_record),
                        ("PutRecordBatch", &m.put_record_batch),
                    ] {
                        s.counter(format!("{api}.Requests"), l, &a.requests);
                        s.counter(format!("{api}.Bytes"), l, &a.bytes);
                        if api == "PutRecordBatch" {
                            s.counter(format!("{api}.Records"), l, &a.records);
                        }
                        s.durations
                            .entry(format!("{api}.Latency"))
                            .or_default()
                            .push((l, &a.latency));
                    }
                }
                SourceKind::KinesisStreamAsSource { .. } => {
                    s.counter("DataReadFromKinesisStream.Bytes".into(), l, &m.read_bytes);
                    s.counter(
                        "DataReadFromKinesisStream.Records".into(),
                        l,
                        &m.read_records,
                    );
                    s.gauges
                        .entry("KinesisMillisBehindLatest".into())
                        .or_default()
                        .push((l, m.millis_behind_max()));
                }
            }
            let prefix = delivery_prefix(&d.destination.kind);
            s.channel(prefix, l, &m.delivery, "Success");
            s.ages
                .entry(format!("{prefix}.DataFreshness"))
                .or_default()
                .push((l, m.freshness_s(now)));
            match d.destination.kind.as_str() {
                "ExtendedS3" => {
                    s.counter("DeliveryToS3.ObjectCount".into(), l, &m.objects);
                    s.gauges
                        .entry("PartitionCount".into())
                        .or_default()
                        .push((l, m.partitions.get()));
                    s.counter("SucceedConversion.Records".into(), l, &m.converted.records);
                    s.counter("SucceedConversion.Bytes".into(), l, &m.converted.bytes);
                    s.counter(
                        "FailedConversion.Records".into(),
                        l,
                        &m.not_converted.records,
                    );
                    s.counter("FailedConversion.Bytes".into(), l, &m.not_converted.bytes);
                }
                "Redshift" => {
                    s.channel("DeliveryToS3", l, &m.staging, "Success");
                    s.counter("DeliveryToS3.ObjectCount".into(), l, &m.objects);
                }
                _ => {}
            }
            s.channel("BackupToS3", l, &m.backup, "Success");
            s.counter(
                "ExecuteProcessing.Success".into(),
                l,
                &m.processing.successes,
            );
            s.counter(
                "ExecuteProcessing.Attempts".into(),
                l,
                &m.processing.attempts,
            );
            s.counter("SucceedProcessing.Records".into(), l, &m.processing.records);
            s.counter("SucceedProcessing.Bytes".into(), l, &m.processing.bytes);
            s.durations
                .entry("ExecuteProcessing.Duration".into())
                .or_default()
                .push((l, &m.processing_duration));
        }
        let help =
            |cw: &str| format!("CloudWatch AWS/Firehose {cw} (dimension DeliveryStreamName)");
        for (cw, series) in s.counters {
            let help = match cw.strip_suffix(".Attempts") {
                Some(p) => format!(
                    "The attempts behind CloudWatch AWS/Firehose {p}.Success (its ratio is {p}.Success over these)"
                ),
                None => help(&cw),
            };
            encode(
                &mut encoder,
                &snake_name(&cw),
                &help,
                Values::Counter(series),
            )?;
        }
        for (cw, series) in s.gauges {
            encode(
                &mut encoder,
                &snake_name(&cw),
                &help(&cw),
                Values::Gauge(series),
            )?;
        }
        for (cw, series) in s.ages {
            encode(
                &mut encoder,
                &snake_name(&cw),
                &help(&cw),
                Values::GaugeSeconds(series),
            )?;
        }
        for (cw, series) in s.durations {
            encode(
                &mut encoder,
                &snake_name(&cw),
                &help(&cw),
                Values::Durations(series),
            )?;
        }
        Ok(())
    }
}

impl riffle_engine::cloudwatch::ring::Source for FirehoseMetrics {
    /// The same metrics for CloudWatch's API (namespace `AWS/Firehose`,
    /// dimension `DeliveryStreamName`): puts a sample per request, reads
    /// from a Kinesis source a sample per record (reads are not counted),
    /// deliveries a sample per attempt, `.Success` as the attempts' ratio,
    /// `DataFreshness` and `KinesisMillisBehindLatest` as the minute's most.
    fn sample(&self, out: &mut Vec<riffle_engine::cloudwatch::ring::Sample>, closing: bool) {
        use riffle_engine::cloudwatch::ring::{Reading, Unit};
        let state = self.0.meta.state();
        let live: Vec<(String, crate::state::SourceKind, String, Arc<StreamMetrics>)> = {
            let streams = self
                .0
                .metrics
                .streams
                .read()
                .unwrap_or_else(|e| e.into_inner());
            state
                .streams
                .values()
                .filter_map(|d| {
                    let m = streams.get(&d.name).filter(|m| m.id == d.id)?;
                    Some((
                        d.name.clone(),
                        d.source.clone(),
                        d.destination.kind.clone(),
                        m.clone(),
                    ))
                })
                .collect()
        };
        let now = rt::now_ms();
        // The gauges have a point every minute (a "call" each second).
        let every_minute = (now / 1000).max(0) as u64;
        // A peak is read (and, closing a minute, started again) before the
        // value it is compared with.
        let peak = |p: &riffle_engine::metrics::Peak| if closing { p.take() } else { p.get() };
        for (name, source, destination, m) in live {
            let mut push = riffle_engine::cloudwatch::ring::one_dimension(
                out,
                "AWS/Firehose",
                "DeliveryStreamName",
                &name,
            );
            let sum = |c: &Count, calls: u64| Reading::Sum {
                sum: c.get(),
                calls,
            };
            let durations = |d: &Durations| Reading::Durations {
                sum_ms: d.sum_s() * 1000.0,
                count: d.count(),
            };
            let ratio = |c: &Channel| Reading::Ratio {
                successes: c.successes.get(),
                attempts: c.attempts.get(),
            };
            match source {
                SourceKind::DirectPut => {
                    // Records from an Analytics output count as incoming
                    // puts too: a sample per incoming put request.
                    let requests = m.incoming_put_requests.get();
                    push(
                        "IncomingBytes",
                        Unit::Bytes,
                        sum(&m.incoming_bytes, requests),
                    );
                    push(
                        "IncomingRecords",
                        Unit::Count,
                        sum(&m.incoming_records, requests),
                    );
                    push(
                        "IncomingPutRequests",
                        Unit::Count,
                        sum(&m.incoming_put_requests, requests),
                    );
                    for (api, a) in [
                        ("PutRecord", &m.put_record),
                        ("PutRecordBatch", &m.put_record_batch),
                    ] {
                        let calls = a.requests.get();
                        push(
                            &format!("{api}.Requests"),
                            Unit::Count,
                            sum(&a.requests, calls),
                        );
                        push(&format!("{api}.Bytes"), Unit::Bytes, sum(&a.bytes, calls));
                        if api == "PutRecordBatch" {
                            push(
                                &format!("{api}.Records"),
                                Unit::Count,
                                sum(&a.records, calls),
                            );
                        }
                        push(
                            &format!("{api}.Latency"),
                            Unit::Milliseconds,
                            durations(&a.latency),
                        );
                    }
                }
                SourceKind::KinesisStreamAsSource { .. } => {
                    let records = m.read_records.get();
                    push(
                        "DataReadFromKinesisStream.Bytes",
                        Unit::Bytes,
                        sum(&m.read_bytes, records),
                    );
                    push(
                        "DataReadFromKinesisStream.Records",
                        Unit::Count,
                        sum(&m.read_records, records),
                    );
                    push(
                        "KinesisMillisBehindLatest",
                        Unit::Milliseconds,
                        Reading::Peak {
                            max: peak(&m.millis_behind_peak).max(m.millis_behind_max()) as f64,
                            calls: every_minute,
                        },
                    );
                }
            }
            let prefix = delivery_prefix(&destination);
            let mut channel = |prefix: &str, c: &Channel| {
                let attempts = c.attempts.get();
                push(
                    &format!("{prefix}.Bytes"),
                    Unit::Bytes,
                    sum(&c.bytes, attempts),
                );
                push(
                    &format!("{prefix}.Records"),
                    Unit::Count,
                    sum(&c.records, attempts),
                );
                push(&format!("{prefix}.Success"), Unit::Count, ratio(c));
            };
            channel(prefix, &m.delivery);
            channel("BackupToS3", &m.backup);
            if destination == "Redshift" {
                channel("DeliveryToS3", &m.staging);
            }
            let attempts = m.delivery.attempts.get();
            push(
                &format!("{prefix}.DataFreshness"),
                Unit::Seconds,
                Reading::Peak {
                    max: (peak(&m.freshness_peak_ms) as f64 / 1000.0).max(m.freshness_s(now)),
                    calls: every_minute,
                },
            );
            if destination == "ExtendedS3" || destination == "Redshift" {
                push(
                    "DeliveryToS3.ObjectCount",
                    Unit::Count,
                    sum(&m.objects, attempts),
                );
            }
            if destination == "ExtendedS3" {
                for (metric, c) in [
                    ("SucceedConversion", &m.converted),
                    ("FailedConversion", &m.not_converted),
                ] {
                    push(
                        &format!("{metric}.Records"),
                        Unit::Count,
                        sum(&c.records, attempts),
                    );
                    push(
                        &format!("{metric}.Bytes"),
                        Unit::Bytes,
                        sum(&c.bytes, attempts),
                    );
                }
            }
            push(
                "ExecuteProcessing.Success",
                Unit::Count,
                ratio(&m.processing),
            );
            let runs = m.processing.attempts.get();
            push(
                "SucceedProcessing.Records",
                Unit::Count,
                sum(&m.processing.records, runs),
            );
            push(
                "SucceedProcessing.Bytes",
                Unit::Bytes,
                sum(&m.processing.bytes, runs),
            );
            push(
                "ExecuteProcessing.Duration",
                Unit::Milliseconds,
                durations(&m.processing_duration),
            );
        }
    }
}
