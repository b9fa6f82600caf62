//! `GET /metrics` on the HTTP port: every service's metrics in Prometheus's
//! text format, from the registry the binary filled (see `crate::metrics`).
//! Unsigned, like a Prometheus scrape; when the server verifies signatures,
//! the gateway asks this route for one too (credentials for scrapers are the
//! security issue's work).

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

use super::service::{Call, HttpBody, LocalFuture, Route, Service, whole};
use crate::metrics::Registry;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// The metrics route of the gateway.
pub struct MetricsService {
    registry: Arc<Registry>,
}

impl MetricsService {
    pub fn new(registry: Arc<Registry>) -> MetricsService {
        MetricsService { registry }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<HttpBody> {
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
        vec![Route::Rest {
            path_prefix: PATH,
            signing_name: "metrics",
            streaming_body: false,
        }]
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
