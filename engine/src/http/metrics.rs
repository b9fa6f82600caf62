//! `GET /metrics` on the HTTP port: every service's metrics in Prometheus's
//! text format, from the registry the binary filled (see `crate::metrics`).
//! Open when the server verifies no signatures; otherwise it takes HTTP
//! Basic credentials, an access key id and its secret (what Prometheus's
//! `basic_auth` sends), and answers 401 with a Basic challenge without
//! them; with IAM policies, the key's user must also be allowed
//! `cloudwatch:GetMetricData` (what reading the same metrics through
//! CloudWatch's API takes), else 403 with IAM's refusal.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

use super::service::{Call, HttpBody, LocalFuture, Route, Service, whole};
use crate::metrics::Registry;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// The metrics route of the gateway.
pub struct MetricsService {
    registry: Arc<Registry>,
    /// Access keys (id → secret) a scraper must name; `None`: open.
    keys: Option<BTreeMap<String, String>>,
    /// The keys' policies, when the server has them.
    authorizer: Option<Arc<super::authz::Authorizer>>,
}

/// The action a scrape is decided as.
pub const SCRAPE_ACTION: &str = "cloudwatch:GetMetricData";

impl MetricsService {
    pub fn new(
        registry: Arc<Registry>,
        keys: Option<BTreeMap<String, String>>,
        authorizer: Option<Arc<super::authz::Authorizer>>,
    ) -> MetricsService {
        MetricsService {
            registry,
            keys,
            authorizer,
        }
    }

    /// None when the request may read the metrics; else the answer.
    fn refusal(&self, call: &Call) -> Option<Response<HttpBody>> {
        let keys = self.keys.as_ref()?;
        let Some(key) = basic_key(&call.parts, keys) else {
            return Some(basic_challenge("metrics"));
        };
        let authz = self.authorizer.as_ref()?;
        authz
            .authorize_arn(
                &key,
                SCRAPE_ACTION,
                "*",
                call.peer.map(|p| p.ip()),
                call.secure,
            )
            .err()
            .map(|r| forbidden(&r))
    }
}

/// The access key id of the request's Basic credentials (`id:secret`), when
/// they name a key of `keys` with its secret.
pub(crate) fn basic_key(
    parts: &http::request::Parts,
    keys: &BTreeMap<String, String>,
) -> Option<String> {
    let (id, secret) = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(i, s)| (i.to_string(), s.to_string()))
        })?;
    keys.get(&id)
        .filter(|want| constant_time_eq(want.as_bytes(), secret.as_bytes()))
        .map(|_| id)
}

/// A 403 with IAM's refusal, as plain text.
pub(crate) fn forbidden(r: &riffle_aws::error::Refusal) -> Response<HttpBody> {
    plain(StatusCode::FORBIDDEN, &format!("{}: {}", r.kind, r.message))
}

/// A 401 asking for Basic credentials (an access key id and its secret).
pub(crate) fn basic_challenge(what: &str) -> Response<HttpBody> {
    let mut resp = plain(
        StatusCode::UNAUTHORIZED,
        &format!("{what} need Basic credentials: an access key id and its secret"),
    );
    resp.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"riffle\""),
    );
    resp
}

/// Equal bytes, compared in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plain-text answer.
pub(crate) fn plain(status: StatusCode, text: &str) -> Response<HttpBody> {
    whole(
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Bytes::from(format!("{text}\n")))
            .expect("a valid response"),
    )
}

impl Service for MetricsService {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn routes(&self) -> Vec<Route> {
        // The route that asks for no signature: the credentials are checked here.
        vec![Route::Bearer { path_prefix: PATH }]
    }

    /// A scrape is not an AWS call: not in the audit trail.
    fn operation<'a>(&self, _parts: &'a http::request::Parts) -> Option<super::Operation<'a>> {
        None
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(async move {
            if call.parts.uri.path() != PATH {
                return plain(StatusCode::NOT_FOUND, "not found: metrics are at /metrics");
            }
            if call.parts.method != Method::GET && call.parts.method != Method::HEAD {
                return plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "metrics are read with GET /metrics",
                );
            }
            if let Some(refused) = self.refusal(&call) {
                return refused;
            }
            let (text, content_type) = crate::metrics::text(&self.registry);
            whole(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(hyper::header::CONTENT_TYPE, content_type)
                    .body(Bytes::from(text))
                    .expect("a valid response"),
            )
        })
    }
}
