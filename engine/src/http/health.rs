//! `GET /health` (liveness: the gateway answers) and `GET /ready`
//! (readiness: the server recovered its data and every listener is up, and
//! it is not stopping) on the HTTP port, for load balancers and
//! orchestrators. Always open: no signature is asked for even when the
//! server verifies them, and they are not in the audit trail. The body is
//! a short text; the status says it all (200, or 503 while not ready).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

use super::service::{Call, HttpBody, LocalFuture, Route, Service, whole};

pub const HEALTH: &str = "/health";
pub const READY: &str = "/ready";

/// Whether the server is ready: set by the binary once every listener is
/// up, cleared when it begins to stop.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The health routes of the gateway.
pub struct HealthService {
    ready: Readiness,
}

impl HealthService {
    pub fn new(ready: Readiness) -> HealthService {
        HealthService { ready }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<HttpBody> {
    whole(
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(hyper::header::CACHE_CONTROL, "no-store")
            .body(Bytes::from(format!("{text}\n")))
            .expect("a valid response"),
    )
}

impl Service for HealthService {
    fn name(&self) -> &'static str {
        "health"
    }

    fn routes(&self) -> Vec<Route> {
        // Open to all: the route kind that asks for no signature.
        vec![
            Route::Bearer {
                path_prefix: HEALTH,
            },
            Route::Bearer { path_prefix: READY },
        ]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(async move {
            let path = call.parts.uri.path();
            if call.parts.method != Method::GET && call.parts.method != Method::HEAD {
                return plain(StatusCode::METHOD_NOT_ALLOWED, "read with GET");
            }
            match path {
                HEALTH => plain(StatusCode::OK, "ok"),
                READY if self.ready.get() => plain(StatusCode::OK, "ready"),
                READY => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
                _ => plain(StatusCode::NOT_FOUND, "not found"),
            }
        })
    }

    /// Not AWS calls: not in the audit trail.
    fn operation<'a>(&self, _parts: &'a http::request::Parts) -> Option<super::Operation<'a>> {
        None
    }
}
