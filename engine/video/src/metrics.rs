//! Kinesis Video's CloudWatch metrics (namespace `AWS/KinesisVideo`,
//! dimension `StreamName`), kept per stream in atomics and written at each
//! scrape as `riffle_kinesisvideo_<name>{stream=".."}` (names by
//! `riffle_engine::metrics::snake_name`; docs/video.md has the table).
//! Recorded where the work happens: an upload's fragments as they arrive
//! and are persisted, a media reader's chunks as they are sent, a clip as it
//! is answered. A stream's metrics go with it when it is deleted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use riffle_engine::metrics::{
    Collector, Count, DescriptorEncoder, Durations, Values, encode, snake_name,
};

/// One stream's metrics.
#[derive(Debug, Default)]
pub(crate) struct StreamMetrics {
    pub(crate) put_media_requests: Count,
    /// Uploads that ended, for `PutMedia.ActiveConnections` (requests less these).
    pub(crate) put_media_ended: Count,
    pub(crate) incoming_bytes: Count,
    pub(crate) incoming_fragments: Count,
    pub(crate) incoming_frames: Count,
    pub(crate) error_acks: Count,
    /// From a fragment's last byte received to its PERSISTED ack.
    pub(crate) persisted_ack_latency: Durations,
    pub(crate) get_media_requests: Count,
    pub(crate) outgoing_bytes: Count,
    pub(crate) outgoing_fragments: Count,
    pub(crate) get_clip_requests: Count,
    pub(crate) get_clip_bytes: Count,
}

/// Every stream's metrics, by name.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    streams: Mutex<BTreeMap<String, Arc<StreamMetrics>>>,
}

impl Metrics {
    /// The metrics of stream `name` (made on first use).
    pub(crate) fn of(&self, name: &str) -> Arc<StreamMetrics> {
        let mut m = self.streams.lock().unwrap();
        if let Some(s) = m.get(name) {
            return s.clone();
        }
        m.entry(name.to_string()).or_default().clone()
    }

    /// Forgets a deleted stream's metrics.
    pub(crate) fn forget(&self, name: &str) {
        self.streams.lock().unwrap().remove(name);
    }
}

/// `GET /metrics`' collector of Kinesis Video's metrics.
#[derive(Clone)]
pub struct VideoMetrics(pub(crate) Arc<Metrics>);

impl std::fmt::Debug for VideoMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoMetrics")
    }
}

type Labels<'a> = [(&'static str, &'a str); 1];
/// A counter: its CloudWatch name and field.
type Counter = (&'static str, fn(&StreamMetrics) -> &Count);

impl Collector for VideoMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let streams: Vec<(String, Arc<StreamMetrics>)> = self
            .0
            .streams
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let help = |cw: &str| format!("CloudWatch AWS/KinesisVideo {cw} (dimension StreamName)");
        let counters: [Counter; 10] = [
            ("PutMedia.Requests", |m| &m.put_media_requests),
            ("PutMedia.IncomingBytes", |m| &m.incoming_bytes),
            ("PutMedia.IncomingFragments", |m| &m.incoming_fragments),
            ("PutMedia.IncomingFrames", |m| &m.incoming_frames),
            ("PutMedia.ErrorAckCount", |m| &m.error_acks),
            ("GetMedia.Requests", |m| &m.get_media_requests),
            ("GetMedia.OutgoingBytes", |m| &m.outgoing_bytes),
            ("GetMedia.OutgoingFragments", |m| &m.outgoing_fragments),
            ("GetClip.Requests", |m| &m.get_clip_requests),
            ("GetClip.OutgoingBytes", |m| &m.get_clip_bytes),
        ];
        for (cw, pick) in counters {
            let series: Vec<(Labels<'_>, u64)> = streams
                .iter()
                .map(|(n, m)| ([("stream", n.as_str())], pick(m).get()))
                .collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(series),
            )?;
        }
        let active: Vec<(Labels<'_>, u64)> = streams
            .iter()
            .map(|(n, m)| {
                let open = m
                    .put_media_requests
                    .get()
                    .saturating_sub(m.put_media_ended.get());
                ([("stream", n.as_str())], open)
            })
            .collect();
        encode(
            &mut encoder,
            &snake_name("PutMedia.ActiveConnections"),
            &help("PutMedia.ActiveConnections"),
            Values::Gauge(active),
        )?;
        let latency: Vec<(Labels<'_>, &Durations)> = streams
            .iter()
            .map(|(n, m)| ([("stream", n.as_str())], &m.persisted_ack_latency))
            .collect();
        encode(
            &mut encoder,
            &snake_name("PutMedia.PersistedAckLatency"),
            &help("PutMedia.PersistedAckLatency"),
            Values::Durations(latency),
        )
    }
}

impl riffle_engine::cloudwatch::ring::Source for VideoMetrics {
    /// The same metrics for CloudWatch's API (namespace `AWS/KinesisVideo`,
    /// dimension `StreamName`): a sample per fragment for what uploads and
    /// readers carry, per request for the requests, the persisted-ack
    /// latencies as durations.
    fn sample(&self, out: &mut Vec<riffle_engine::cloudwatch::ring::Sample>, _closing: bool) {
        use riffle_engine::cloudwatch::ring::{Reading, Unit};
        let streams: Vec<(String, Arc<StreamMetrics>)> = self
            .0
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, m) in streams {
            let mut push = riffle_engine::cloudwatch::ring::one_dimension(
                out,
                "AWS/KinesisVideo",
                "StreamName",
                &name,
            );
            let sum = |c: &Count, calls: &Count| Reading::Sum {
                sum: c.get(),
                calls: calls.get(),
            };
            let (fragments_in, fragments_out) = (&m.incoming_fragments, &m.outgoing_fragments);
            push(
                "PutMedia.Requests",
                Unit::Count,
                sum(&m.put_media_requests, &m.put_media_requests),
            );
            push(
                "PutMedia.IncomingBytes",
                Unit::Bytes,
                sum(&m.incoming_bytes, fragments_in),
            );
            push(
                "PutMedia.IncomingFragments",
                Unit::Count,
                sum(fragments_in, fragments_in),
            );
            push(
                "PutMedia.IncomingFrames",
                Unit::Count,
                sum(&m.incoming_frames, fragments_in),
            );
            push(
                "PutMedia.ErrorAckCount",
                Unit::Count,
                sum(&m.error_acks, &m.error_acks),
            );
            push(
                "PutMedia.PersistedAckLatency",
                Unit::Milliseconds,
                Reading::Durations {
                    sum_ms: m.persisted_ack_latency.sum_s() * 1000.0,
                    count: m.persisted_ack_latency.count(),
                },
            );
            push(
                "GetMedia.Requests",
                Unit::Count,
                sum(&m.get_media_requests, &m.get_media_requests),
            );
            push(
                "GetMedia.OutgoingBytes",
                Unit::Bytes,
                sum(&m.outgoing_bytes, fragments_out),
            );
            push(
                "GetMedia.OutgoingFragments",
                Unit::Count,
                sum(fragments_out, fragments_out),
            );
            push(
                "GetClip.Requests",
                Unit::Count,
                sum(&m.get_clip_requests, &m.get_clip_requests),
            );
            push(
                "GetClip.OutgoingBytes",
                Unit::Bytes,
                sum(&m.get_clip_bytes, &m.get_clip_requests),
            );
        }
    }
}
