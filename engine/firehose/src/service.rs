//! Firehose on the HTTP gateway: `X-Amz-Target: Firehose_20150804.<Operation>`,
//! AWS JSON 1.1, signed for `firehose`. Every input is checked against AWS's
//! model (`riffle_aws::model::firehose()`) before an operation runs; the
//! operations are in `ops.rs` (control plane) and `puts.rs` (records).
//!
//! [`FirehoseService::start`] opens Firehose's metadata log, removes internal
//! streams no delivery stream owns (left by a crash between the two steps of
//! a create or a delete), and starts delivery for every delivery stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use hyper::Response;
use riffle_aws::error::{Refusal, ok_response};
use riffle_aws::input::Input;
use riffle_aws::json::Format;
use riffle_engine::Engine;
use riffle_engine::http::service::{LocalFuture, json_answer, json_operation, whole};
use riffle_engine::http::{Call, HttpBody, Operation, Route, Service};
use riffle_engine::meta::MetaHandle;
use riffle_protocol::Error;

use crate::sink::{LocalStore, ObjectStore};
use crate::state::{FirehoseState, SourceKind};
use crate::{delivery, ops, puts};

/// The `X-Amz-Target` prefix of Firehose's operations.
pub const TARGET_PREFIX: &str = "Firehose_20150804.";

/// The owner name of Firehose's internal streams (`firehose:<delivery stream>`).
pub const INTERNAL_OWNER: &str = "firehose";

/// The internal stream that holds a Direct PUT delivery stream's records.
/// Firehose's word for every KMS refusal (AWS: "thrown when an attempt to put
/// records or to start or stop delivery stream encryption fails" because KMS
/// answered AccessDenied, InvalidState, Disabled or NotFound): the KMS's
/// exception is named in the message.
pub(crate) fn kms_worded(r: Refusal) -> Refusal {
    if r.kind.starts_with("KMS") {
        let message = format!("{}: {}", r.kind, r.message);
        return Refusal::client("InvalidKMSResourceException", message);
    }
    r
}

pub fn internal_stream(name: &str) -> String {
    format!("{INTERNAL_OWNER}:{name}")
}

/// How the server runs Firehose.
#[derive(Clone, Debug)]
pub struct FirehoseConfig {
    pub region: String,
    /// The 12-digit account in ARNs and messages.
    pub account: String,
    /// How long a new delivery stream reports CREATING (the engine's
    /// `state_delay_ms`; 0: ACTIVE at once).
    pub state_delay_ms: u64,
    /// The S3-compatible server S3 destinations deliver to; None: the
    /// embedded store under `<data-dir>/s3/`.
    pub s3: Option<crate::s3::S3Config>,
    /// Function names and ARNs a `Lambda` processor's `LambdaArn` may name,
    /// mapped to the URL that serves the function (the config's `[functions]`).
    pub functions: BTreeMap<String, String>,
    /// More CA certificates (PEM) to trust for https destinations, functions
    /// and S3 endpoints, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// The Glue Data Catalog record format conversion reads schemas from
    /// (None: conversion fails for want of a catalog).
    pub glue: Option<riffle_glue::GlueCatalog>,
}

/// What Firehose adds to its model: the Redshift destination's
/// `ClusterJDBCURL` names any PostgreSQL server (`jdbc:postgresql://HOST...`),
/// not only Redshift's host names, and `redshift::of_config` checks it.
const RULES: riffle_aws::model::Rules<'static> = riffle_aws::model::Rules {
    required: &[],
    unpatterned: &[
        ("RedshiftDestinationConfiguration", "ClusterJDBCURL"),
        ("RedshiftDestinationUpdate", "ClusterJDBCURL"),
    ],
};

/// A delivery failure, as DescribeDeliveryStream reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub details: String,
}

/// An incarnation's delivery failures, by source shard.
pub(crate) type Failures = (u64, BTreeMap<(u32, Side), Failure>);

/// Which side of a delivery task failed: reading its source (`Kinesis.*`
/// kinds), or processing and writing. Each side's failure is cleared by that
/// side's next success (a task reads the next records while it writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Side {
    Write,
    Source,
}

impl Side {
    fn of(kind: &str) -> Side {
        match kind.starts_with("Kinesis.") {
            true => Side::Source,
            false => Side::Write,
        }
    }
}

/// What every call and every delivery task shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: FirehoseConfig,
    pub(crate) meta: MetaHandle<FirehoseState>,
    pub(crate) store: ObjectStore,
    pub(crate) workers: crate::workers::Workers,
    /// TLS for https destinations, functions and S3 endpoints.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Delivery failures per delivery stream (its incarnation) and source
    /// shard, each until that shard delivers again.
    pub(crate) failures: Mutex<BTreeMap<String, Failures>>,
    /// Delivery tasks running: (delivery stream, incarnation, shard).
    pub(crate) running: Mutex<BTreeSet<(String, u64, u32)>>,
    /// Spreads Direct PUT calls over the internal streams' shards.
    pub(crate) next_shard: std::sync::atomic::AtomicU64,
    /// Per delivery stream, what the metrics report (`metrics.rs`).
    pub(crate) metrics: crate::metrics::Metrics,
}

impl Shared {
    pub(crate) fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            self.config.region, self.config.account
        )
    }

    /// AWS's ResourceNotFoundException for a delivery stream.
    pub(crate) fn not_found(&self, name: &str) -> Error {
        Error::not_found(format!(
            "Firehose {name} under account {} not found.",
            self.config.account
        ))
    }

    /// The state's refusal, in AWS's words (the state does not know the account).
    pub(crate) fn worded(&self, e: Error) -> Error {
        match e.code {
            riffle_protocol::ErrorCode::ResourceNotFound => Error::not_found(e.message.replace(
                " not found.",
                &format!(" under account {} not found.", self.config.account),
            )),
            riffle_protocol::ErrorCode::ResourceInUse => Error::in_use(
                e.message
                    .replace("accountId", &format!("accountId {}", self.config.account)),
            ),
            _ => e,
        }
    }

    /// Records a delivery failure of shard `shard` of incarnation `id`.
    pub(crate) fn fail(&self, name: &str, id: u64, shard: u32, failure: Failure) {
        tracing::warn!(
            "delivery stream {name} shard {shard}: {}: {}",
            failure.kind,
            failure.details
        );
        let mut failures = self.failures.lock().unwrap();
        let entry = failures
            .entry(name.to_string())
            .or_insert_with(|| (id, BTreeMap::new()));
        if entry.0 != id {
            *entry = (id, BTreeMap::new());
        }
        entry.1.insert((shard, Side::of(failure.kind)), failure);
    }

    /// Shard `shard` of incarnation `id` wrote (`Side::Write`) or read its
    /// source (`Side::Source`): that side's failure is over.
    pub(crate) fn recovered(&self, name: &str, id: u64, shard: u32, side: Side) {
        let mut failures = self.failures.lock().unwrap();
        if let Some((failed_id, shards)) = failures.get_mut(name)
            && *failed_id == id
        {
            shards.remove(&(shard, side));
            if shards.is_empty() {
                failures.remove(name);
            }
        }
    }

    /// The failure DescribeDeliveryStream reports for incarnation `id`.
    pub(crate) fn failure(&self, name: &str, id: u64) -> Option<Failure> {
        let failures = self.failures.lock().unwrap();
        let (failed_id, shards) = failures.get(name)?;
        (*failed_id == id)
            .then(|| shards.values().next().cloned())
            .flatten()
    }
}

/// Firehose, registered with the gateway by the binary.
#[derive(Clone)]
pub struct FirehoseService {
    pub(crate) shared: Arc<Shared>,
}

impl FirehoseService {
    /// Opens Firehose's metadata, tidies internal streams and starts delivery.
    /// Blocks (call it while wiring the server).
    pub fn start(engine: Engine, config: FirehoseConfig) -> Result<FirehoseService, Error> {
        let meta = MetaHandle::<FirehoseState>::open(&engine, "firehose")?;
        let tls =
            crate::http_client::tls_config(config.ca_file.as_deref()).map_err(Error::invalid)?;
        let store = match &config.s3 {
            Some(s3) => {
                ObjectStore::S3(crate::s3::S3Client::new(s3, tls.clone()).map_err(Error::invalid)?)
            }
            None => ObjectStore::Local(
                LocalStore::start(engine.config().data_dir.join("s3"))
                    .map_err(|e| Error::internal(format!("cannot start the object writer: {e}")))?,
            ),
        };
        let workers = crate::workers::Workers::start(engine.core_count())
            .map_err(|e| Error::internal(format!("cannot start the worker threads: {e}")))?;
        let shared = Arc::new(Shared {
            engine,
            config,
            meta,
            store,
            workers,
            tls,
            failures: Mutex::default(),
            running: Mutex::default(),
            next_shard: Default::default(),
            metrics: Default::default(),
        });
        let state = shared.meta.state();
        // Internal streams whose delivery stream is gone (a crash between
        // the engine's step and the metadata's step of a create or delete).
        let orphans: Vec<String> = shared
            .engine
            .internal_streams(INTERNAL_OWNER)
            .into_iter()
            .filter(|s| {
                let name = &s[INTERNAL_OWNER.len() + 1..];
                !state.streams.contains_key(name)
            })
            .collect();
        if !orphans.is_empty() {
            let engine = shared.engine.clone();
            let (done, wait) = flume::bounded(1);
            engine.clone().run_on_core(0, move || {
                riffle_engine::rt::spawn(async move {
                    for s in orphans {
                        if let Err(e) = engine.delete_stream(&s).await {
                            tracing::warn!("cannot delete the orphaned internal stream {s}: {e:?}");
                        }
                    }
                    let _ = done.send(());
                })
            })?;
            let _ = wait.recv();
        }
        for s in state.streams.values() {
            for (core, task) in delivery::tasks(&shared, &s.name, s.id) {
                shared.engine.run_on_core(core, task)?;
            }
        }
        Ok(FirehoseService { shared })
    }

    /// Whether delivery stream `name` exists (and is not being deleted):
    /// other services' checks of a delivery stream they are given.
    pub fn delivery_stream_exists(&self, name: &str) -> bool {
        self.shared.meta.state().streams.contains_key(name)
    }

    /// The data stream holding delivery stream `name`'s records, and
    /// whether it takes puts (Direct PUT: its internal stream; otherwise
    /// its source Kinesis stream, which does not): other services read a
    /// delivery stream's records there, and write a Direct PUT one's.
    pub fn records_stream(&self, name: &str) -> Option<(String, bool)> {
        let state = self.shared.meta.state();
        match &state.streams.get(name)?.source {
            SourceKind::DirectPut => Some((internal_stream(name), true)),
            SourceKind::KinesisStreamAsSource {
                stream, stream_arn, ..
            } => {
                // Metadata from before the name was kept: the ARN's.
                let name = match stream.is_empty() {
                    true => stream_arn.rsplit('/').next().unwrap_or_default(),
                    false => stream,
                };
                Some((name.to_string(), false))
            }
        }
    }

    /// Counts records another service appended to Direct PUT delivery
    /// stream `name`'s internal stream (a Kinesis Data Analytics output) as
    /// PutRecordBatch's would be: `IncomingRecords`, `IncomingBytes` and
    /// `IncomingPutRequests`.
    pub fn count_incoming(&self, name: &str, records: u64, bytes: u64) {
        let Some(id) = self.shared.meta.state().streams.get(name).map(|d| d.id) else {
            return;
        };
        let m = self.shared.metrics.of(name, id);
        // The request last: CloudWatch's sampler reads it as the calls.
        m.incoming_records.add(records);
        m.incoming_bytes.add(bytes);
        m.incoming_put_requests.add(1);
    }

    /// The S3-compatible server's client when objects go to one (None: the
    /// embedded store), for other services reading objects there.
    pub fn s3_client(&self) -> Option<crate::s3::S3Client> {
        match &self.shared.store {
            ObjectStore::S3(c) => Some(c.clone()),
            ObjectStore::Local(_) => None,
        }
    }

    /// Firehose's metrics, for the server's registry (`GET /metrics`).
    pub fn metrics(&self) -> crate::metrics::FirehoseMetrics {
        crate::metrics::FirehoseMetrics(self.shared.clone())
    }
}

impl Service for FirehoseService {
    fn name(&self) -> &'static str {
        "firehose"
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route::Target {
            prefix: TARGET_PREFIX,
            signing_name: "firehose",
        }]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    fn has_operation(&self, operation: &str) -> bool {
        riffle_aws::model::firehose().operation(operation).is_some()
    }

    /// The delivery stream a call names (IAM).
    fn resources(
        &self,
        _operation: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Vec<riffle_engine::http::authz::ResourceRef>, String> {
        let named = riffle_engine::http::authz::members(parts, body, &["DeliveryStreamName"])?;
        Ok(riffle_engine::http::authz::plain(
            named
                .into_iter()
                .map(|(_, n)| self.shared.arn(&n))
                .collect(),
        ))
    }

    fn operation<'a>(&self, parts: &'a http::request::Parts) -> Option<Operation<'a>> {
        let name = riffle_engine::http::service::target_operation(parts)?;
        self.has_operation(name).then_some(Operation {
            name,
            // Not in CloudTrail on AWS: data events here, recorded when asked.
            data: matches!(name, "PutRecord" | "PutRecordBatch"),
            label: None,
        })
    }
}

impl FirehoseService {
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let format = Format::of(&call.parts.headers);
        let target = call.parts.headers.get("x-amz-target").map(|v| v.as_bytes());
        if format == Format::Json
            && target == Some(b"Firehose_20150804.PutRecordBatch")
            && let Some(result) = puts::put_record_batch_fast(&self.shared, call.body.whole()).await
        {
            return whole(match result {
                Ok(body) => ok_response(format, body),
                Err(r) => kms_worded(r).to_response(format),
            });
        }
        let model = riffle_aws::model::firehose();
        let (format, op, input) = json_operation(&call, TARGET_PREFIX, model, &RULES);
        let input = match input {
            Ok(input) => input,
            Err(r) => return json_answer(format, Err(r)),
        };
        let input = Input(&input);
        let s = &self.shared;
        let result = match op.as_str() {
            "CreateDeliveryStream" => ops::create(s, input).await,
            "DeleteDeliveryStream" => ops::delete(s, input).await,
            "DescribeDeliveryStream" => ops::describe(s, input),
            "ListDeliveryStreams" => ops::list(s, input),
            "UpdateDestination" => ops::update_destination(s, input).await,
            "StartDeliveryStreamEncryption" => ops::start_encryption(s, input).await,
            "StopDeliveryStreamEncryption" => ops::stop_encryption(s, input).await,
            "TagDeliveryStream" => ops::tag(s, input).await,
            "UntagDeliveryStream" => ops::untag(s, input).await,
            "ListTagsForDeliveryStream" => ops::list_tags(s, input),
            "PutRecord" => puts::put_record(s, input).await,
            "PutRecordBatch" => puts::put_record_batch(s, input).await,
            _ => Err(Refusal::unknown_operation()),
        };
        json_answer(format, result.map_err(kms_worded))
    }
}
