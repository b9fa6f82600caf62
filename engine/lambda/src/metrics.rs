//! The mappings' metrics at `GET /metrics` (prefix `lambda_`), named for
//! AWS/Lambda's CloudWatch metrics of a function fed by a mapping, labelled
//! by the mapping's UUID: `Invocations`, `Errors`, `Duration`, `IteratorAge`
//! (the age of the last invoked batch's last record), and the mapping's
//! event counts (`PolledEventCount`, `FilteredOutEventCount`,
//! `InvokedEventCount`, `FailedInvokeEventCount`, `DroppedEventCount`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use riffle_engine::metrics::{Count, Durations, Level, Values, encode, snake_name};

use crate::service::Shared;

/// One mapping's (incarnation's) figures.
#[derive(Debug, Default)]
pub struct MappingMetrics {
    pub id: u64,
    pub invocations: Count,
    pub errors: Count,
    pub duration: Durations,
    /// ms.
    pub iterator_age: Level,
    pub polled: Count,
    pub filtered_out: Count,
    pub invoked: Count,
    pub failed_invoke: Count,
    pub dropped: Count,
}

/// Every mapping's figures, by UUID.
#[derive(Debug, Default)]
pub struct Metrics {
    mappings: RwLock<BTreeMap<String, Arc<MappingMetrics>>>,
}

impl Metrics {
    /// The figures of incarnation `id` of mapping `uuid` (fresh for a new one).
    pub fn of(&self, uuid: &str, id: u64) -> Arc<MappingMetrics> {
        if let Some(m) = self
            .mappings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .filter(|m| m.id == id)
        {
            return m.clone();
        }
        let mut all = self.mappings.write().unwrap_or_else(|e| e.into_inner());
        let m = all.entry(uuid.to_string()).or_default();
        if m.id != id {
            *m = Arc::new(MappingMetrics {
                id,
                ..Default::default()
            });
        }
        m.clone()
    }
}

/// The collector registered with the server's registry.
pub struct LambdaMetrics(pub(crate) Arc<Shared>);

impl std::fmt::Debug for LambdaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LambdaMetrics")
    }
}

type Label<'a> = [(&'static str, &'a str); 1];

/// A counter of a mapping's figures.
type Field = fn(&MappingMetrics) -> &Count;

impl Collector for LambdaMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.0.meta.state();
        let live: Vec<(String, Arc<MappingMetrics>)> = {
            let mut all = self
                .0
                .metrics
                .mappings
                .write()
                .unwrap_or_else(|e| e.into_inner());
            all.retain(|uuid, m| state.mappings.get(uuid).is_some_and(|x| x.id == m.id));
            all.iter().map(|(u, m)| (u.clone(), m.clone())).collect()
        };
        let help =
            |cw: &str| format!("CloudWatch AWS/Lambda {cw} (dimension EventSourceMappingUUID)");
        let counters: [(&str, Field); 7] = [
            ("Invocations", |m| &m.invocations),
            ("Errors", |m| &m.errors),
            ("PolledEventCount", |m| &m.polled),
            ("FilteredOutEventCount", |m| &m.filtered_out),
            ("InvokedEventCount", |m| &m.invoked),
            ("FailedInvokeEventCount", |m| &m.failed_invoke),
            ("DroppedEventCount", |m| &m.dropped),
        ];
        for (cw, field) in counters {
            let series: Vec<(Label<'_>, u64)> = live
                .iter()
                .map(|(u, m)| ([("uuid", u.as_str())], field(m).get()))
                .collect();
            encode(
                &mut encoder,
                &snake_name(cw),
                &help(cw),
                Values::Counter(series),
            )?;
        }
        let ages: Vec<(Label<'_>, f64)> = live
            .iter()
            .map(|(u, m)| ([("uuid", u.as_str())], m.iterator_age.get() as f64 / 1000.0))
            .collect();
        encode(
            &mut encoder,
            &snake_name("IteratorAge"),
            &help("IteratorAge"),
            Values::GaugeSeconds(ages),
        )?;
        let durations: Vec<(Label<'_>, &Durations)> = live
            .iter()
            .map(|(u, m)| ([("uuid", u.as_str())], &m.duration))
            .collect();
        encode(
            &mut encoder,
            &snake_name("Duration"),
            &help("Duration"),
            Values::Durations(durations),
        )
    }
}
