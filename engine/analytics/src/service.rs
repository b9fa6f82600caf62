//! Kinesis Data Analytics on the HTTP gateway:
//! `X-Amz-Target: KinesisAnalytics_20150814.<Operation>`, AWS JSON 1.1,
//! signed for `kinesisanalytics`. Every input is checked against AWS's
//! model (`riffle_aws::model::kinesis_analytics()`) before an operation
//! (`ops.rs`, `ops_parts.rs`) runs.
//!
//! [`AnalyticsService::start`] opens the applications' metadata log and
//! finishes the deletions a restart interrupted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_aws::model::Rules;
use riffle_engine::Engine;
use riffle_engine::http::service::{LocalFuture, json_answer, json_operation};
use riffle_engine::http::{Call, HttpBody, Route, Service};
use riffle_engine::meta::MetaHandle;
use riffle_protocol::Error;

use crate::state::{AnalyticsEvent, AnalyticsState, Transition};
use crate::{ops, ops_discover, ops_parts};

/// The `X-Amz-Target` prefix of the operations.
pub const TARGET_PREFIX: &str = "KinesisAnalytics_20150814.";

/// The data stream holding a delivery stream's records and whether it takes
/// puts, None when the delivery stream does not exist (Firehose's
/// `records_stream` answers; the binary wires it, so this crate does not
/// depend on Firehose's).
pub type DeliveryStreams = Arc<dyn Fn(&str) -> Option<(String, bool)> + Send + Sync>;

/// Reads an object of an S3-compatible server: `(bucket, key, max, whole)`
/// gives its bytes (None: no such object): with `whole`, all of them,
/// refused when over `max`; otherwise its first `max` at most. The binary
/// wires Firehose's S3 client, so this crate does not depend on it.
pub type ObjectReader = Arc<
    dyn Fn(
            String,
            String,
            usize,
            bool,
        ) -> LocalFuture<'static, Result<Option<bytes::Bytes>, String>>
        + Send
        + Sync,
>;

/// Counts records put into a delivery stream: (name, records, bytes).
pub type DeliveryPuts = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// How the server runs Kinesis Data Analytics.
#[derive(Clone)]
pub struct AnalyticsConfig {
    pub region: String,
    pub account: String,
    /// How long STARTING, STOPPING, UPDATING and DELETING last (the
    /// server's `state_delay_ms`; 0: the end state at once).
    pub state_delay_ms: u64,
    /// Function names and ARNs mapped to the URLs serving them
    /// (`[functions]`): an input preprocessor's or a Lambda output's
    /// `ResourceARN` may be one of them, or an http(s) URL.
    pub functions: BTreeMap<String, String>,
    /// Applications this server keeps at most.
    pub applications_max: usize,
    /// None: no delivery stream exists (inputs and outputs naming one are refused).
    pub delivery_streams: Option<DeliveryStreams>,
    /// Counts records an output appended to a delivery stream in its
    /// metrics (Firehose's `count_incoming`: name, records, bytes).
    pub delivery_puts: Option<DeliveryPuts>,
    /// Reads objects of the S3-compatible server the server is given
    /// (None: objects are in the embedded store, `<data-dir>/s3/`).
    pub objects: Option<ObjectReader>,
    /// A PEM file of CAs trusted beside the system's, for https function
    /// URLs (the server's `ca_file`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for AnalyticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsConfig")
            .field("region", &self.region)
            .field("account", &self.account)
            .field("state_delay_ms", &self.state_delay_ms)
            .field("applications_max", &self.applications_max)
            .finish_non_exhaustive()
    }
}

/// What AWS's model cannot say: a Lambda `ResourceARN` may be an http(s)
/// URL of an HTTP function (its `arn:.*` pattern is replaced;
/// `ops_parts::check_function` checks it).
const RULES: Rules<'static> = Rules {
    required: &[],
    unpatterned: &[
        ("InputLambdaProcessor", "ResourceARN"),
        ("InputLambdaProcessorUpdate", "ResourceARNUpdate"),
        ("LambdaOutput", "ResourceARN"),
        ("LambdaOutputUpdate", "ResourceARNUpdate"),
    ],
};

/// What every call shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: AnalyticsConfig,
    pub(crate) meta: MetaHandle<AnalyticsState>,
    /// Places for code checks running at once (one per core): each runs on
    /// a thread of its own (`ops::check_code`).
    pub(crate) parses: (flume::Sender<()>, flume::Receiver<()>),
    /// Per application id, the channel its last run's end is told on
    /// (`run::Run`'s drop): a resumed run waits for the run before it.
    pub(crate) runs_over: std::sync::Mutex<HashMap<u64, RunOver>>,
    /// The TLS client configuration of Lambda outputs' calls.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// AWS/KinesisAnalytics metrics, per application.
    pub(crate) metrics: crate::metrics::Metrics,
}

/// A run's number and the channel told at its end (a message once all its
/// tasks are gone).
pub(crate) type RunOver = (u64, flume::Sender<()>, flume::Receiver<()>);

impl Shared {
    pub(crate) fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesisanalytics:{}:{}:application/{name}",
            self.config.region, self.config.account
        )
    }

    /// The application an ARN of this server names.
    pub(crate) fn name_of_arn<'a>(&self, arn: &'a str) -> Option<&'a str> {
        arn.strip_prefix("arn:aws:kinesisanalytics:")?
            .strip_prefix(self.config.region.as_str())?
            .strip_prefix(':')?
            .strip_prefix(self.config.account.as_str())?
            .strip_prefix(":application/")
            .filter(|n| !n.is_empty())
    }

    /// Purges application `name` (incarnation `id`) once its Deleting
    /// transition, begun at `since_ms`, is over.
    pub(crate) async fn purge_later(&self, name: String, id: u64, since_ms: i64) {
        let delay = i64::try_from(self.config.state_delay_ms).unwrap_or(i64::MAX);
        let due = since_ms.saturating_add(delay);
        let wait = due.saturating_sub(riffle_engine::rt::now_ms()).max(0) as u64;
        riffle_engine::rt::sleep(Duration::from_millis(wait)).await;
        if let Err(e) = self.meta.apply(AnalyticsEvent::Purge { name, id }).await {
            tracing::debug!("purge of a deleted application: {}", e.message);
        }
    }
}

/// Kinesis Data Analytics, registered with the gateway by the binary.
#[derive(Clone)]
pub struct AnalyticsService {
    pub(crate) shared: Arc<Shared>,
}

impl AnalyticsService {
    /// Its metrics, for the server's registry and CloudWatch's API.
    pub fn metrics(&self) -> crate::metrics::AnalyticsMetrics {
        crate::metrics::AnalyticsMetrics(self.shared.clone())
    }

    /// Opens the applications' metadata and finishes interrupted deletions.
    /// Blocks (call it while wiring the server).
    pub fn start(engine: Engine, config: AnalyticsConfig) -> Result<AnalyticsService, Error> {
        let meta = MetaHandle::<AnalyticsState>::open(&engine, "analytics")?;
        let places = engine.core_count().max(1);
        let parses = flume::bounded(places);
        for _ in 0..places {
            let _ = parses.0.try_send(());
        }
        let tls = riffle_engine::http::client::tls_config(config.ca_file.as_deref())
            .map_err(Error::invalid)?;
        let shared = Arc::new(Shared {
            engine,
            config,
            meta,
            parses,
            runs_over: Default::default(),
            tls,
            metrics: Default::default(),
        });
        let state = shared.meta.state();
        for app in state.apps.values() {
            if let Some((Transition::Deleting, since)) = app.transition {
                let (s, name, id) = (shared.clone(), app.name.clone(), app.id);
                shared.engine.run_on_core(0, move || {
                    riffle_engine::rt::spawn(async move { s.purge_later(name, id, since).await })
                })?;
            }
        }
        for app in state.apps.values() {
            if app.running
                && app
                    .transition
                    .is_none_or(|(t, _)| t != Transition::Deleting)
            {
                resume(&shared, app.clone())?;
            }
        }
        Ok(AnalyticsService { shared })
    }
}

/// Starts a RUNNING application again after a restart, from its last
/// checkpoint (progress.rs); one that has none (it ran before checkpoints
/// existed) from NOW.
fn resume(shared: &Arc<Shared>, app: crate::state::App) -> Result<(), Error> {
    let catalog = crate::plan::Catalog::of(app.input.as_ref(), &app.references);
    let inputs: Vec<String> = catalog.inputs.iter().map(|(n, _)| n.clone()).collect();
    let planned = crate::sql::on_parser_stack(|| {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let tables: Vec<&str> = catalog
            .reference_tables
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let context = crate::sql::Context {
            inputs: &inputs,
            reference_tables: &tables,
        };
        crate::sql::parse_on_this_stack(&app.code, &context)
            .and_then(|script| crate::plan::plan(&script, &catalog))
    });
    let plan = match planned {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!("analytics application {} cannot run: {e}", app.name);
            return Ok(());
        }
    };
    let s = shared.clone();
    shared.engine.run_on_core(0, move || {
        riffle_engine::rt::spawn(async move {
            let at = match &app.progress {
                Some(p) => crate::run::StartAt::Resume(p.clone()),
                None => crate::run::StartAt::Now,
            };
            if let Err(e) = crate::run::start(&s, &app, plan, at).await {
                tracing::warn!(
                    "analytics application {} cannot run: {}",
                    app.name,
                    e.message
                );
            }
        })
    })
}

impl Service for AnalyticsService {
    fn name(&self) -> &'static str {
        "kinesisanalytics"
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route::Target {
            prefix: TARGET_PREFIX,
            signing_name: "kinesisanalytics",
        }]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    fn has_operation(&self, operation: &str) -> bool {
        riffle_aws::model::kinesis_analytics()
            .operation(operation)
            .is_some()
    }

    /// The application a call names, by name or (the tag calls) by ARN
    /// (IAM). DiscoverInputSchema's `ResourceARN` is the source it samples,
    /// not an application: decided on `*`, as on AWS.
    fn resources(
        &self,
        operation: &str,
        parts: &hyper::http::request::Parts,
        body: &[u8],
    ) -> Result<Vec<riffle_engine::http::authz::ResourceRef>, String> {
        let members: &[&'static str] = if operation == "DiscoverInputSchema" {
            &["ApplicationName"]
        } else {
            &["ApplicationName", "ResourceARN"]
        };
        let named = riffle_engine::http::authz::members(parts, body, members)?;
        Ok(riffle_engine::http::authz::plain(
            named
                .into_iter()
                .map(|(member, v)| match member {
                    "ApplicationName" => self.shared.arn(&v),
                    _ => v,
                })
                .collect(),
        ))
    }
}

impl AnalyticsService {
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let model = riffle_aws::model::kinesis_analytics();
        let (format, op, input) = json_operation(&call, TARGET_PREFIX, model, &RULES);
        let input = match input {
            Ok(input) => input,
            Err(r) => return json_answer(format, Err(r)),
        };
        let input = Input(&input);
        let s = &self.shared;
        let result = match op.as_str() {
            "CreateApplication" => ops::create(s, input).await,
            "DescribeApplication" => ops::describe(s, input),
            "ListApplications" => ops::list(s, input),
            "DeleteApplication" => ops::delete(s, input).await,
            "UpdateApplication" => ops::update(s, input).await,
            "StartApplication" => ops::start(s, input).await,
            "StopApplication" => ops::stop(s, input).await,
            "TagResource" => ops::tag(s, input).await,
            "UntagResource" => ops::untag(s, input).await,
            "ListTagsForResource" => ops::list_tags(s, input),
            "DiscoverInputSchema" => ops_discover::discover(s, input).await,
            "AddApplicationInput" => ops_parts::add_input(s, input).await,
            "AddApplicationInputProcessingConfiguration" => {
                ops_parts::add_processing(s, input).await
            }
            "DeleteApplicationInputProcessingConfiguration" => {
                ops_parts::delete_processing(s, input).await
            }
            "AddApplicationOutput" => ops_parts::add_output(s, input).await,
            "DeleteApplicationOutput" => ops_parts::delete_output(s, input).await,
            "AddApplicationReferenceDataSource" => ops_parts::add_reference(s, input).await,
            "DeleteApplicationReferenceDataSource" => ops_parts::delete_reference(s, input).await,
            "AddApplicationCloudWatchLoggingOption" => ops_parts::add_logging(s, input).await,
            "DeleteApplicationCloudWatchLoggingOption" => ops_parts::delete_logging(s, input).await,
            _ => Err(Refusal::unknown_operation()),
        };
        json_answer(format, result)
    }
}
