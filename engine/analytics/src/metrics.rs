//! Kinesis Data Analytics' CloudWatch metrics (namespace
//! `AWS/KinesisAnalytics`, dimensions `Application`, `Flow` — `Input` or
//! `Output` — and `Id`, the input's or output's id): per application
//! incarnation, what its input read (`Records`, `Bytes`,
//! `MillisBehindLatest`) and what each output wrote (`Records`, `Bytes`,
//! `Success`: the writes that stored their rows over those tried), and
//! `KPUs` (one while the application runs). Kept in atomics, counted where
//! the work happens (a source task's read that is not a replay, a sink's
//! append); written at each scrape as `riffle_kinesisanalytics_<name>` with
//! labels `application`, `flow`, `id`, and offered to CloudWatch's API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use riffle_engine::cloudwatch::ring::{Reading, Sample, Unit};
use riffle_engine::metrics::{
    Collector, Count, DescriptorEncoder, Durations, Level, Peak, Values, encode, snake_name,
};

use crate::service::Shared;

/// One flow's metrics: an input's reads, or an output's writes.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub(crate) records: Count,
    pub(crate) bytes: Count,
    /// Reads (input) or writes tried (output).
    pub(crate) attempts: Count,
    /// Writes that stored their rows (output).
    pub(crate) successes: Count,
    /// The last read's distance from the shard's tip, and the most since
    /// CloudWatch's last closed minute (input).
    millis_behind: Level,
    millis_behind_peak: Peak,
    /// A Lambda output's deliveries (`LambdaDelivery.*`).
    lambda_ok: Count,
    lambda_failed: Count,
    lambda_duration: Durations,
}

impl Flow {
    /// A Lambda output's delivery of a batch: records answered `Ok`, failed
    /// deliveries (retried), and how long it took.
    pub(crate) fn lambda_delivered(&self, ok: u64, failed: u64, took: std::time::Duration) {
        self.lambda_ok.add(ok);
        self.lambda_failed.add(failed);
        self.lambda_duration.observe_us(took.as_micros() as u64);
    }

    /// A read of `records` records of `bytes` bytes, `behind` ms from the tip.
    pub(crate) fn read(&self, records: u64, bytes: u64, behind: u64) {
        self.records.add(records);
        self.bytes.add(bytes);
        self.millis_behind.set(behind);
        self.millis_behind_peak.raise(behind);
        // The call last: CloudWatch's sampler reads it as the calls.
        self.attempts.add(1);
    }

    /// A write of `records` rows of `bytes` bytes, stored or not.
    pub(crate) fn wrote(&self, ok: bool, records: u64, bytes: u64) {
        if ok {
            self.records.add(records);
            self.bytes.add(bytes);
            self.successes.add(1);
        }
        self.attempts.add(1);
    }
}

/// One application incarnation's metrics.
#[derive(Debug)]
pub(crate) struct AppMetrics {
    app_id: u64,
    input_id: String,
    pub(crate) input: Flow,
    outputs: Mutex<BTreeMap<String, Arc<Flow>>>,
    /// The input's Lambda preprocessor (`InputProcessing.*`).
    processing: Processing,
}

/// An input preprocessor's invocations and outcomes.
#[derive(Debug, Default)]
struct Processing {
    ok_records: Count,
    ok_bytes: Count,
    dropped: Count,
    failed: Count,
    /// Invocations whose answer was read, of those made.
    answered: Count,
    duration: Durations,
}

impl AppMetrics {
    /// An invocation of the input's preprocessor: answered or not, and its time.
    pub(crate) fn invoked(&self, answered: bool, took: std::time::Duration) {
        if answered {
            self.processing.answered.add(1);
        }
        // Last: CloudWatch's sampler reads its count as the calls.
        self.processing.duration.observe_us(took.as_micros() as u64);
    }

    /// A read's records through the input's preprocessor: their outcomes.
    pub(crate) fn preprocessed(&self, outcomes: &[crate::run::preprocess::Outcome]) {
        use crate::run::preprocess::Outcome;
        let p = &self.processing;
        for o in outcomes {
            match o {
                Outcome::Ok(data) => {
                    p.ok_records.add(1);
                    p.ok_bytes.add(data.len() as u64);
                }
                Outcome::Dropped => p.dropped.add(1),
                Outcome::Failed => p.failed.add(1),
            }
        }
    }

    /// Output `id`'s metrics (made on its first write).
    pub(crate) fn output(&self, id: &str) -> Arc<Flow> {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        outputs.entry(id.to_string()).or_default().clone()
    }

    /// Every output's metrics, by output id.
    fn outputs(&self) -> Outputs {
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        outputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Every application's metrics, by name.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    apps: Mutex<BTreeMap<String, Arc<AppMetrics>>>,
}

impl Metrics {
    /// The metrics of incarnation `app_id` of application `name`, whose
    /// input is `input_id` (another incarnation or input starts from zero).
    pub(crate) fn app(&self, name: &str, app_id: u64, input_id: &str) -> Arc<AppMetrics> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        match apps.get(name) {
            Some(m) if m.app_id == app_id && m.input_id == input_id => m.clone(),
            _ => {
                let m = Arc::new(AppMetrics {
                    app_id,
                    input_id: input_id.to_string(),
                    input: Flow::default(),
                    outputs: Mutex::new(BTreeMap::new()),
                    processing: Processing::default(),
                });
                apps.insert(name.to_string(), m.clone());
                m
            }
        }
    }
}

/// Analytics' metrics for the server's registry and CloudWatch's API.
#[derive(Clone)]
pub struct AnalyticsMetrics(pub(crate) Arc<Shared>);

impl std::fmt::Debug for AnalyticsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnalyticsMetrics")
    }
}

/// An application's live metrics: (name, running, its metrics).
type Live = (String, bool, Arc<AppMetrics>);

impl AnalyticsMetrics {
    /// The applications that exist, with the metrics of their incarnation;
    /// those of deleted ones are dropped (under the lock, so that a run
    /// starting meanwhile keeps its own).
    fn live(&self) -> Vec<Live> {
        let mut apps = self
            .0
            .metrics
            .apps
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let state = self.0.meta.state();
        apps.retain(|name, m| state.apps.get(name).is_some_and(|a| a.id == m.app_id));
        apps.iter()
            .filter_map(|(name, m)| {
                let app = state.apps.get(name)?;
                Some((name.clone(), app.running, m.clone()))
            })
            .collect()
    }
}

type Labels<'a> = [(&'static str, &'a str); 3];

/// An application's outputs' metrics, by output id.
type Outputs = Vec<(String, Arc<Flow>)>;

impl Collector for AnalyticsMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = self.live();
        let outputs: Vec<(String, Outputs)> = live
            .iter()
            .map(|(name, _, m)| (name.clone(), m.outputs()))
            .collect();
        let flows: Vec<(Labels<'_>, &Flow)> = live
            .iter()
            .map(|(name, _, m)| {
                let l: Labels<'_> = [
                    ("application", name),
                    ("flow", "Input"),
                    ("id", &m.input_id),
                ];
                (l, &m.input)
            })
            .chain(outputs.iter().flat_map(|(name, outs)| {
                outs.iter().map(move |(id, f)| {
                    let l: Labels<'_> = [("application", name), ("flow", "Output"), ("id", id)];
                    (l, &**f)
                })
            }))
            .collect();
        let help = |cw: &str| {
            format!("CloudWatch AWS/KinesisAnalytics {cw} (dimensions Application, Flow, Id)")
        };
        for (cw, pick) in [
            ("Records", (|f| f.records.get()) as fn(&Flow) -> u64),
            ("Bytes", |f| f.bytes.get()),
        ] {
            let series = flows.iter().map(|(l, f)| (*l, pick(f))).collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(series),
            )?;
        }
        let outs: Vec<&(Labels<'_>, &Flow)> =
            flows.iter().filter(|(l, _)| l[1].1 == "Output").collect();
        let success = outs.iter().map(|(l, f)| (*l, f.successes.get())).collect();
        encode(
            &mut encoder,
            "success",
            &help("Success"),
            Values::Counter(success),
        )?;
        let attempts = outs.iter().map(|(l, f)| (*l, f.attempts.get())).collect();
        encode(
            &mut encoder,
            "success_attempts",
            "The writes behind CloudWatch AWS/KinesisAnalytics Success (its ratio is Success over these)",
            Values::Counter(attempts),
        )?;
        let behind = flows
            .iter()
            .filter(|(l, _)| l[1].1 == "Input")
            .map(|(l, f)| (*l, f.millis_behind.get()))
            .collect();
        encode(
            &mut encoder,
            &snake_name("MillisBehindLatest"),
            &help("MillisBehindLatest"),
            Values::Gauge(behind),
        )?;
        // Lambda outputs' deliveries and the input's preprocessing.
        let lambda_outs: Vec<&(Labels<'_>, &Flow)> = outs
            .iter()
            .copied()
            .filter(|(_, f)| f.lambda_duration.count() > 0)
            .collect();
        for (cw, pick) in [
            (
                "LambdaDelivery.OkRecords",
                (|f| f.lambda_ok.get()) as fn(&Flow) -> u64,
            ),
            ("LambdaDelivery.DeliveryFailedRecords", |f| {
                f.lambda_failed.get()
            }),
        ] {
            let series = lambda_outs.iter().map(|(l, f)| (*l, pick(f))).collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(series),
            )?;
        }
        let durations = lambda_outs
            .iter()
            .map(|(l, f)| (*l, &f.lambda_duration))
            .collect();
        let cw = "LambdaDelivery.Duration";
        encode(
            &mut encoder,
            &snake_name(cw),
            &help(cw),
            Values::Durations(durations),
        )?;
        let processed: Vec<(Labels<'_>, &Processing)> = live
            .iter()
            .filter(|(_, _, m)| m.processing.duration.count() > 0)
            .map(|(name, _, m)| {
                let l: Labels<'_> = [
                    ("application", name),
                    ("flow", "Input"),
                    ("id", &m.input_id),
                ];
                (l, &m.processing)
            })
            .collect();
        for (cw, pick) in [
            (
                "InputProcessing.OkRecords",
                (|p| p.ok_records.get()) as fn(&Processing) -> u64,
            ),
            ("InputProcessing.OkBytes", |p| p.ok_bytes.get()),
            ("InputProcessing.DroppedRecords", |p| p.dropped.get()),
            ("InputProcessing.ProcessingFailedRecords", |p| {
                p.failed.get()
            }),
        ] {
            let series = processed.iter().map(|(l, p)| (*l, pick(p))).collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(series),
            )?;
        }
        let durations = processed.iter().map(|(l, p)| (*l, &p.duration)).collect();
        let cw = "InputProcessing.Duration";
        encode(
            &mut encoder,
            &snake_name(cw),
            &help(cw),
            Values::Durations(durations),
        )?;
        let kpus: Vec<([(&str, &str); 1], u64)> = live
            .iter()
            .map(|(name, running, _)| ([("application", name.as_str())], u64::from(*running)))
            .collect();
        encode(
            &mut encoder,
            "kpus",
            "CloudWatch AWS/KinesisAnalytics KPUs (dimension Application): 1 while it runs",
            Values::Gauge(kpus),
        )
    }
}

impl riffle_engine::cloudwatch::ring::Source for AnalyticsMetrics {
    /// The same for CloudWatch's API: a sample per read or write,
    /// `Success` as the writes' ratio, `MillisBehindLatest` and `KPUs` as
    /// the minute's most, with a point every minute while there is one.
    fn sample(&self, out: &mut Vec<Sample>, closing: bool) {
        let every_minute = (riffle_engine::rt::now_ms() / 1000).max(0) as u64;
        for (name, running, m) in self.live() {
            let mut push =
                |metric: &str, flow: Option<(&str, &str)>, unit: Unit, reading: Reading| {
                    let mut dimensions = vec![("Application".to_string(), name.clone())];
                    if let Some((flow, id)) = flow {
                        dimensions.push(("Flow".to_string(), flow.to_string()));
                        dimensions.push(("Id".to_string(), id.to_string()));
                    }
                    out.push(Sample::new(
                        "AWS/KinesisAnalytics",
                        metric,
                        dimensions,
                        unit,
                        reading,
                    ));
                };
            let flows = m.outputs();
            let input = ("Input", m.input_id.as_str());
            let calls = m.input.attempts.get();
            push(
                "Records",
                Some(input),
                Unit::Count,
                Reading::Sum {
                    sum: m.input.records.get(),
                    calls,
                },
            );
            push(
                "Bytes",
                Some(input),
                Unit::Bytes,
                Reading::Sum {
                    sum: m.input.bytes.get(),
                    calls,
                },
            );
            let peak = if closing {
                m.input.millis_behind_peak.take()
            } else {
                m.input.millis_behind_peak.get()
            };
            push(
                "MillisBehindLatest",
                Some(input),
                Unit::Milliseconds,
                Reading::Peak {
                    max: peak.max(m.input.millis_behind.get()) as f64,
                    calls,
                },
            );
            for (id, f) in &flows {
                let at = Some(("Output", id.as_str()));
                let calls = f.attempts.get();
                push(
                    "Records",
                    at,
                    Unit::Count,
                    Reading::Sum {
                        sum: f.records.get(),
                        calls,
                    },
                );
                push(
                    "Bytes",
                    at,
                    Unit::Bytes,
                    Reading::Sum {
                        sum: f.bytes.get(),
                        calls,
                    },
                );
                push(
                    "Success",
                    at,
                    Unit::Count,
                    Reading::Ratio {
                        successes: f.successes.get(),
                        attempts: calls,
                    },
                );
            }
            let p = &m.processing;
            // Answered before made: a call counted between the two reads
            // is a failure this minute, not a success without its call.
            let answered = p.answered.get();
            let runs = p.duration.count();
            if runs > 0 {
                for (metric, c, unit) in [
                    ("InputProcessing.OkRecords", &p.ok_records, Unit::Count),
                    ("InputProcessing.OkBytes", &p.ok_bytes, Unit::Bytes),
                    ("InputProcessing.DroppedRecords", &p.dropped, Unit::Count),
                    (
                        "InputProcessing.ProcessingFailedRecords",
                        &p.failed,
                        Unit::Count,
                    ),
                ] {
                    let reading = Reading::Sum {
                        sum: c.get(),
                        calls: runs,
                    };
                    push(metric, Some(input), unit, reading);
                }
                // Invocations answered of those made (the count last: the calls).
                let reading = Reading::Ratio {
                    successes: answered,
                    attempts: runs,
                };
                push("InputProcessing.Success", Some(input), Unit::Count, reading);
                let reading = Reading::Durations {
                    sum_ms: p.duration.sum_s() * 1000.0,
                    count: runs,
                };
                push(
                    "InputProcessing.Duration",
                    Some(input),
                    Unit::Milliseconds,
                    reading,
                );
            }
            for (id, f) in &flows {
                let deliveries = f.lambda_duration.count();
                if deliveries == 0 {
                    continue;
                }
                let at = Some(("Output", id.as_str()));
                for (metric, c) in [
                    ("LambdaDelivery.OkRecords", &f.lambda_ok),
                    ("LambdaDelivery.DeliveryFailedRecords", &f.lambda_failed),
                ] {
                    let reading = Reading::Sum {
                        sum: c.get(),
                        calls: deliveries,
                    };
                    push(metric, at, Unit::Count, reading);
                }
                let reading = Reading::Durations {
                    sum_ms: f.lambda_duration.sum_s() * 1000.0,
                    count: deliveries,
                };
                push("LambdaDelivery.Duration", at, Unit::Milliseconds, reading);
            }
            if running {
                push(
                    "KPUs",
                    None,
                    Unit::Count,
                    Reading::Peak {
                        max: 1.0,
                        calls: every_minute,
                    },
                );
            }
        }
    }
}
