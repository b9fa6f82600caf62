//! Lambda's event-source mappings on the HTTP gateway: the REST-JSON paths
//! under `/2015-03-31/event-source-mappings`, signed for `lambda`, each
//! input assembled and checked against AWS's model
//! (`riffle_aws::model::lambda()`) before an operation (`ops.rs`) runs.
//!
//! [`LambdaService::start`] opens the mappings' metadata log, finishes
//! deletions a restart interrupted, and starts every enabled mapping's shard
//! tasks (`task.rs`), which run whether or not HTTP is served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::model::Rules;
use riffle_engine::Engine;
use riffle_engine::http::service::{LocalFuture, whole};
use riffle_engine::http::{Call, HttpBody, Operation, Route, Service};
use riffle_engine::meta::MetaHandle;
use riffle_protocol::Error;

use crate::ops;
use crate::state::{LambdaEvent, LambdaState, Mapping, Transition};

/// Where the five operations live.
pub const PATH_PREFIX: &str = "/2015-03-31/event-source-mappings";

/// How the server runs the mappings.
#[derive(Clone, Debug)]
pub struct LambdaConfig {
    pub region: String,
    pub account: String,
    /// How long Creating, Updating, Enabling, Disabling and Deleting last
    /// (the server's `state_delay_ms`; 0: the end state at once).
    pub state_delay_ms: u64,
    /// Function names and ARNs mapped to the URLs serving them (`[functions]`).
    pub functions: BTreeMap<String, String>,
    /// The invocations a function URL takes at once (the `concurrency` of a
    /// `[functions]` entry); URLs not named: no limit.
    pub concurrency: BTreeMap<String, usize>,
    /// More CA certificates (PEM) to trust for https functions.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long an invocation may take (then it is a function error).
    pub invocation_timeout: Duration,
}

impl LambdaConfig {
    /// 10 s past the Runtime Interface Emulator's default function timeout
    /// (300 s), so the emulator's own timeout answer comes first.
    pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(310);
}

/// What AWS's model cannot say: FunctionName may be an http(s) URL (its
/// pattern is replaced; `function::resolve` checks it).
const RULES: Rules<'static> = Rules {
    required: &[],
    unpatterned: &[
        ("CreateEventSourceMappingRequest", "FunctionName"),
        ("UpdateEventSourceMappingRequest", "FunctionName"),
        ("ListEventSourceMappingsRequest", "FunctionName"),
    ],
};

/// What every call and every shard task shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: LambdaConfig,
    pub(crate) meta: MetaHandle<LambdaState>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Shard tasks running: (uuid, incarnation, shard).
    pub(crate) running: Mutex<BTreeSet<(String, u64, u32)>>,
    /// Each mapping's LastProcessingResult (kept in memory), by incarnation.
    pub(crate) results: Mutex<BTreeMap<u64, &'static str>>,
    pub(crate) metrics: crate::metrics::Metrics,
    /// The server is stopping: tasks write their checkpoints and end.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Per limited function URL, its free invocation places (tokens).
    pub(crate) places: BTreeMap<String, (flume::Sender<()>, flume::Receiver<()>)>,
}

/// An invocation place of a limited function, given back when dropped.
pub(crate) struct Place(Option<flume::Sender<()>>);

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.try_send(());
        }
    }
}

/// What a mapping shows as its state at `now_ms`; None once it is deleted.
pub(crate) fn shown_state(m: &Mapping, now_ms: i64, delay_ms: u64) -> Option<&'static str> {
    match m.transition {
        Some((t, since)) if now_ms < since.saturating_add(delay_ms as i64) => Some(t.aws_name()),
        Some((Transition::Deleting, _)) => None,
        _ => Some(if m.enabled { "Enabled" } else { "Disabled" }),
    }
}

impl Shared {
    pub(crate) fn stream_arn(&self, stream: &str) -> String {
        riffle_engine::kinesis::stream_arn(&self.config.region, &self.config.account, stream)
    }

    /// The mapping `uuid` as clients see it (not once deleted).
    pub(crate) fn visible(&self, uuid: &str) -> Option<Mapping> {
        let state = self.meta.state();
        let m = state.mappings.get(uuid)?;
        shown_state(m, riffle_engine::rt::now_ms(), self.config.state_delay_ms)?;
        Some(m.clone())
    }

    /// A place to invoke `url`, waiting (without blocking the core) while
    /// its `concurrency` invocations are in flight.
    pub(crate) async fn place(&self, url: &str) -> Place {
        match self.places.get(url) {
            None => Place(None),
            Some((tx, rx)) => {
                // The channel lives as long as `self`: a token always comes.
                let _ = rx.recv_async().await;
                Place(Some(tx.clone()))
            }
        }
    }

    pub(crate) fn result_of(&self, id: u64) -> &'static str {
        self.results
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or("No records processed")
    }

    pub(crate) fn set_result(&self, id: u64, result: &'static str) {
        self.results.lock().unwrap().insert(id, result);
    }

    /// Removes mapping `uuid` (incarnation `id`) once its Deleting state
    /// has been shown for the delay, from a task on a core.
    pub(crate) async fn purge_later(&self, uuid: String, id: u64, since_ms: i64) {
        let due = since_ms.saturating_add(self.config.state_delay_ms as i64);
        let wait = due.saturating_sub(riffle_engine::rt::now_ms()).max(0) as u64;
        riffle_engine::rt::sleep(Duration::from_millis(wait)).await;
        if let Err(e) = self.meta.apply(LambdaEvent::Purge { uuid, id }).await {
            tracing::debug!("purge of a deleted mapping: {}", e.message);
        }
        self.results.lock().unwrap().remove(&id);
    }
}

/// The event-source mappings, registered with the gateway by the binary.
#[derive(Clone)]
pub struct LambdaService {
    pub(crate) shared: Arc<Shared>,
}

impl LambdaService {
    /// Opens the mappings' metadata and starts their shard tasks. Blocks
    /// (call it while wiring the server).
    pub fn start(engine: Engine, config: LambdaConfig) -> Result<LambdaService, Error> {
        let meta = MetaHandle::<LambdaState>::open(&engine, "lambda")?;
        let tls = riffle_engine::http::client::tls_config(config.ca_file.as_deref())
            .map_err(Error::invalid)?;
        let places = config
            .concurrency
            .iter()
            .map(|(url, n)| {
                let (tx, rx) = flume::bounded((*n).max(1));
                for _ in 0..(*n).max(1) {
                    let _ = tx.try_send(());
                }
                (url.clone(), (tx, rx))
            })
            .collect();
        let shared = Arc::new(Shared {
            stopping: Default::default(),
            places,
            engine,
            config,
            meta,
            tls,
            running: Mutex::default(),
            results: Mutex::default(),
            metrics: Default::default(),
        });
        let state = shared.meta.state();
        for m in state.mappings.values() {
            if let Some((Transition::Deleting, since)) = m.transition {
                let (s, uuid, id) = (shared.clone(), m.uuid.clone(), m.id);
                shared.engine.run_on_core(0, move || {
                    riffle_engine::rt::spawn(async move { s.purge_later(uuid, id, since).await })
                })?;
                continue;
            }
            for (core, task) in crate::task::tasks(&shared, &m.uuid, m.id) {
                shared.engine.run_on_core(core, task)?;
            }
        }
        Ok(LambdaService { shared })
    }

    /// Stops the shard tasks for a clean shutdown: each ends after its
    /// invocation in flight and writes its checkpoint, so nothing done is
    /// invoked again after the restart. Waits up to `grace` (then the
    /// engine's shutdown drops what is left: invoked again, at least once).
    /// Blocks: call it off the cores, before the engine shuts down.
    pub fn stop(&self, grace: Duration) {
        let s = &self.shared;
        s.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = std::time::Instant::now() + grace;
        while !s.running.lock().unwrap().is_empty() {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    "event-source mapping tasks still running after {grace:?}: their last \
                     records will be invoked again after the restart"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The mappings' metrics, for the server's registry (`GET /metrics`).
    pub fn metrics(&self) -> crate::metrics::LambdaMetrics {
        crate::metrics::LambdaMetrics(self.shared.clone())
    }
}

impl Service for LambdaService {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route::Rest {
            path_prefix: PATH_PREFIX,
            signing_name: "lambda",
            streaming_body: false,
        }]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    fn operation<'a>(&self, parts: &'a http::request::Parts) -> Option<Operation<'a>> {
        let (name, uuid) = operation_of(parts)?;
        Some(Operation {
            name,
            data: false,
            label: uuid.map(|u| ("UUID", u)),
        })
    }
}

/// The operation a request's method and path name, and the mapping's
/// UUID its path carries (as sent).
fn operation_of(parts: &http::request::Parts) -> Option<(&'static str, Option<&str>)> {
    let rest = parts.uri.path().strip_prefix(PATH_PREFIX)?;
    match (rest.trim_end_matches('/'), parts.method.as_str()) {
        ("", "POST") => Some(("CreateEventSourceMapping", None)),
        ("", "GET") => Some(("ListEventSourceMappings", None)),
        (uuid, m) if uuid.starts_with('/') && !uuid[1..].contains('/') => {
            let op = match m {
                "GET" => "GetEventSourceMapping",
                "PUT" => "UpdateEventSourceMapping",
                "DELETE" => "DeleteEventSourceMapping",
                _ => return None,
            };
            Some((op, Some(&uuid[1..])))
        }
        _ => None,
    }
}

impl LambdaService {
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let Some((op, uuid)) = operation_of(&call.parts) else {
            return unknown();
        };
        let labels = match uuid {
            None => BTreeMap::new(),
            Some(uuid) => match riffle_aws::rest::match_path("/{UUID}", &format!("/{uuid}")) {
                Some(l) => l,
                None => return unknown(),
            },
        };
        let input = match riffle_aws::rest::decode_checked(
            riffle_aws::model::lambda(),
            op,
            &labels,
            call.parts.uri.query(),
            &call.parts.headers,
            call.body.whole(),
            &RULES,
        ) {
            Ok(m) => m,
            Err(r) => return whole(r.to_rest_response()),
        };
        let input = riffle_aws::input::Input(&input);
        let s = &self.shared;
        let result = match op {
            "CreateEventSourceMapping" => ops::create(s, input).await,
            "GetEventSourceMapping" => ops::get(s, input),
            "ListEventSourceMappings" => ops::list(s, input),
            "UpdateEventSourceMapping" => ops::update(s, input).await,
            _ => ops::delete(s, input).await,
        };
        whole(match result {
            Ok((status, body)) => Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Bytes::from(body.to_string()))
                .expect("a valid response"),
            Err(r) => r.to_rest_response(),
        })
    }
}

/// AWS's answer to a path or method under the prefix it does not serve.
fn unknown() -> Response<HttpBody> {
    whole(Refusal::unknown_operation().to_rest_response())
}
