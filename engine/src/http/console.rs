//! The web console at `/console/` on the HTTP port: one page (embedded in the
//! binary: no CDN, no build step) that shows the server's streams with their
//! shards (hash ranges, lineage) and consumers, per-stream throughput and
//! iterator-age charts from CloudWatch's API, delivery streams with their
//! status, failures and deliveries, applications with their SQL and status,
//! video streams (played live through their HLS session), and the audit
//! trail's last events.
//!
//! Read-only unless the server checks signatures: then the page offers to
//! create and delete what the user's policies allow, asking this service
//! which actions they allow (`/console/allowed`, IAM's decision without the
//! call), and the calls themselves are decided again by the gateway.
//!
//! The page calls the AWS APIs of the same server, under `/console/api`
//! (`/console/api` + a REST path for Kinesis Video): the gateway takes such a
//! call as the AWS call it wraps, made with the browser's Basic credentials
//! (an access key id and its secret) instead of a signature when the server
//! checks signatures, so the console's user's IAM policies decide each call
//! as they decide the user's SDK calls. Without signatures, it is open like
//! the rest of the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

use super::metrics::{basic_challenge, basic_key, plain};
use super::service::{Call, HttpBody, LocalFuture, Route, Service, whole};

/// Where the console lives.
pub const PATH: &str = "/console";
/// Where its AWS calls go.
const API: &str = "/console/api";

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const FAVICON: &str = include_str!("console/favicon.svg");

/// Whether the request is a console call (`/console/api[/rest/path]`).
pub(crate) fn is_api_call(parts: &http::request::Parts) -> bool {
    match parts.uri.path().strip_prefix(API) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Rewrites a console call (`/console/api[/rest/path]`) to the AWS call it
/// wraps (`/` or the REST path); true when it was one.
pub(crate) fn unwrap_api_call(parts: &mut http::request::Parts) -> bool {
    let path = parts.uri.path();
    let rest = match path.strip_prefix(API) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return false,
    };
    let rewritten = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    match rewritten.parse::<http::Uri>() {
        Ok(uri) => {
            parts.uri = uri;
            true
        }
        Err(_) => false,
    }
}

/// The header every console call carries. A page of another site cannot send
/// it without a CORS preflight, which a call with the browser's credentials
/// does not pass (the gateway never allows credentials cross-origin): so
/// another site cannot make the browser call the API as its console user.
pub const CONSOLE_HEADER: &str = "x-riffle-console";

/// The refusal of a console call without [`CONSOLE_HEADER`] (a form or a
/// simple request of another site), or from another origin.
pub(crate) fn cross_site(parts: &http::request::Parts) -> Option<Response<HttpBody>> {
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let foreign_origin = parts
        .headers
        .get(hyper::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| {
            o.split_once("://")
                .map(|(_, rest)| rest)
                .is_none_or(|authority| Some(authority) != host)
        });
    if parts.headers.contains_key(CONSOLE_HEADER) && !foreign_origin {
        return None;
    }
    Some(plain(
        StatusCode::FORBIDDEN,
        "console calls come from the console's own page (X-Riffle-Console, same origin)",
    ))
}

/// The console's pages.
pub struct ConsoleService {
    /// Access keys (id → secret) a console user must name; `None`: open.
    keys: Option<BTreeMap<String, String>>,
    /// The keys' policies, when the server has them.
    authorizer: Option<Arc<super::authz::Authorizer>>,
    /// The audit trail's directory, when the server keeps one.
    audit: Option<PathBuf>,
    /// The page with the server's region and account (for the ARNs it asks about).
    index: String,
}

/// Audit records `/console/audit` answers at most (the newest).
const AUDIT_EVENTS_MAX: usize = 50;
/// Checks one `/console/allowed` asks at most.
const CHECKS_MAX: usize = 500;

impl ConsoleService {
    pub fn new(
        keys: Option<BTreeMap<String, String>>,
        authorizer: Option<Arc<super::authz::Authorizer>>,
        audit: Option<PathBuf>,
        region: &str,
        account: &str,
    ) -> ConsoleService {
        // Both come from the server's settings (letters, digits, hyphens).
        let safe = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        };
        let index = INDEX.replacen(
            "<html lang=\"en\">",
            &format!(
                "<html lang=\"en\" data-region=\"{}\" data-account=\"{}\">",
                safe(region),
                safe(account)
            ),
            1,
        );
        ConsoleService {
            keys,
            authorizer,
            audit,
            index,
        }
    }

    /// Whether the user of `key` may do `action` on `resource` (IAM's
    /// decision, as the gateway would make it for the call). No one may on
    /// a server that checks no signatures: its console is read-only.
    fn allows(&self, call: &Call, key: Option<&str>, action: &str, resource: &str) -> bool {
        let Some(key) = key else { return false };
        let Some(authz) = &self.authorizer else {
            // Signatures without policies: every key may do everything.
            return true;
        };
        authz
            .authorize_arn(
                key,
                action,
                resource,
                call.peer.map(|p| p.ip()),
                call.secure,
            )
            .is_ok()
    }

    /// `POST /console/allowed` `{"Checks": [{"Action", "Resource"}]}`:
    /// `{"Allowed": [bool]}`, in order.
    fn allowed(&self, call: &Call, key: Option<&str>) -> Response<HttpBody> {
        let input: serde_json::Value = match serde_json::from_slice(call.body.whole()) {
            Ok(v) => v,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")),
        };
        let Some(checks) = input["Checks"].as_array().filter(|c| c.len() <= CHECKS_MAX) else {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"Checks\": [{{\"Action\", \"Resource\"}}]}}, at most {CHECKS_MAX}"
                ),
            );
        };
        let allowed: Vec<bool> = checks
            .iter()
            .map(|c| match (c["Action"].as_str(), c["Resource"].as_str()) {
                (Some(a), Some(r)) => self.allows(call, key, a, r),
                _ => false,
            })
            .collect();
        json_answer(&serde_json::json!({ "Allowed": allowed }))
    }

    /// `GET /console/audit`: the trail's newest records, newest first, for
    /// a user allowed `cloudtrail:LookupEvents` (when policies apply). Not
    /// on a server that checks no signatures: the trail is the operator's
    /// (its files are 0600), and such a server has no user to ask.
    async fn audit(&self, call: &Call, key: Option<&str>) -> Response<HttpBody> {
        let Some(key) = key else {
            return json_answer(&serde_json::json!({
                "Events": [], "Enabled": false,
                "Note": "the audit trail is shown to users of a server that checks signatures (--auth sigv4)",
            }));
        };
        if let Some(authz) = &self.authorizer
            && let Err(r) = authz.authorize_arn(
                key,
                "cloudtrail:LookupEvents",
                "*",
                call.peer.map(|p| p.ip()),
                call.secure,
            )
        {
            return super::metrics::forbidden(&r);
        }
        let Some(dir) = self.audit.clone() else {
            return json_answer(&serde_json::json!({ "Events": [], "Enabled": false,
                "Note": "the server keeps no audit trail (riffle server --audit off)" }));
        };
        // Off the core: a thread reads the files' ends, two at most at once
        // (the guard gives its place back however the thread ends).
        static READING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        struct Place;
        impl Drop for Place {
            fn drop(&mut self) {
                READING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        let taken = READING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let place = Place;
        if taken >= 2 {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit trail is being read: try again",
            );
        }
        let (tx, rx) = flume::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("riffle-console-audit".into())
            .spawn(move || {
                let _place = place;
                let _ = tx.send(last_events(&dir, AUDIT_EVENTS_MAX));
            });
        let events = match spawned {
            Ok(_) => rx.recv_async().await.unwrap_or_default(),
            Err(e) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot read the audit trail now: {e}"),
                );
            }
        };
        json_answer(&serde_json::json!({ "Events": events, "Enabled": true }))
    }
}

/// Bytes read from the end of each trail file at most.
const AUDIT_TAIL_BYTES: u64 = 1 << 20;

/// The trail's newest `max` records, newest first: read from the end of the
/// newest files (at most [`AUDIT_TAIL_BYTES`] of each, two files), whole
/// lines only (the last may be being written).
fn last_events(dir: &std::path::Path, max: usize) -> Vec<serde_json::Value> {
    use std::io::{Read, Seek, SeekFrom};
    let mut events = Vec::new();
    let files = crate::audit::files(dir).unwrap_or_default();
    for file in files.iter().rev().take(2) {
        // A file that cannot be read ends the list: an older one would
        // leave a gap.
        let Ok(mut f) = std::fs::File::open(file) else {
            break;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            break;
        };
        let from = len.saturating_sub(AUDIT_TAIL_BYTES);
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_err()
            || f.take(AUDIT_TAIL_BYTES).read_to_end(&mut tail).is_err()
        {
            break;
        }
        let text = String::from_utf8_lossy(&tail);
        let mut lines: Vec<&str> = text.split('\n').collect();
        // Cut into a line when reading from the middle: its start is lost.
        if from > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        for line in lines.into_iter().rev() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                events.push(v);
                if events.len() == max {
                    return events;
                }
            }
        }
        // The file's start was not read: an older file would leave a gap.
        if from > 0 {
            break;
        }
    }
    events
}

fn json_answer(v: &serde_json::Value) -> Response<HttpBody> {
    whole(
        Response::builder()
            .status(StatusCode::OK)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CACHE_CONTROL, "no-store")
            .header("X-Content-Type-Options", "nosniff")
            .body(Bytes::from(v.to_string()))
            .expect("a valid response"),
    )
}

fn asset(content_type: &str, body: impl Into<Bytes>) -> Response<HttpBody> {
    whole(
        Response::builder()
            .status(StatusCode::OK)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::CACHE_CONTROL, "no-cache")
            .header(
                "Content-Security-Policy",
                // blob: media: the live player's MediaSource.
                "default-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            )
            .header("X-Content-Type-Options", "nosniff")
            .body(body.into())
            .expect("a valid response"),
    )
}

impl Service for ConsoleService {
    fn name(&self) -> &'static str {
        "console"
    }

    fn routes(&self) -> Vec<Route> {
        // No signature: the Basic credentials are checked here.
        vec![Route::Bearer { path_prefix: PATH }]
    }

    /// The pages are not AWS calls (the calls they make are recorded as theirs).
    fn operation<'a>(&self, _parts: &'a http::request::Parts) -> Option<super::Operation<'a>> {
        None
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(async move {
            let parts = &call.parts;
            let key = match &self.keys {
                None => None,
                Some(keys) => match basic_key(parts, keys) {
                    Some(k) => Some(k),
                    None => return basic_challenge("the console's pages"),
                },
            };
            if parts.uri.path() == "/console/allowed" {
                if parts.method != Method::POST {
                    return plain(StatusCode::METHOD_NOT_ALLOWED, "POST the checks");
                }
                return self.allowed(&call, key.as_deref());
            }
            if parts.method != Method::GET && parts.method != Method::HEAD {
                return plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the console is read with GET",
                );
            }
            match parts.uri.path() {
                "/console/audit" => self.audit(&call, key.as_deref()).await,
                "/console" => whole(
                    Response::builder()
                        .status(StatusCode::MOVED_PERMANENTLY)
                        .header(hyper::header::LOCATION, "/console/")
                        .body(Bytes::new())
                        .expect("a valid response"),
                ),
                "/console/" | "/console/index.html" => {
                    asset("text/html; charset=utf-8", self.index.clone())
                }
                "/console/app.js" => asset("text/javascript; charset=utf-8", APP_JS),
                "/console/app.css" => asset("text/css; charset=utf-8", APP_CSS),
                "/console/favicon.svg" => asset("image/svg+xml", FAVICON),
                _ => plain(
                    StatusCode::NOT_FOUND,
                    "not found: the console is at /console/",
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_call_comes_from_the_consoles_origin_over_both_http_versions() {
        let call = |uri: &str, headers: &[(&str, &str)]| {
            let mut b = http::Request::post(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let parts = b.body(()).unwrap().into_parts().0;
            assert!(is_api_call(&parts));
            cross_site(&parts).is_none()
        };
        let c = ("x-riffle-console", "1");
        // HTTP/1.1: the Host header.
        assert!(call(
            "/console/api",
            &[c, ("host", "h:1"), ("origin", "http://h:1")]
        ));
        assert!(!call(
            "/console/api",
            &[c, ("host", "h:1"), ("origin", "http://evil:1")]
        ));
        assert!(!call(
            "/console/api",
            &[("host", "h:1"), ("origin", "http://h:1")]
        ));
        // HTTP/2: the host is the URI's authority, no Host header.
        assert!(call(
            "https://h:1/console/api",
            &[c, ("origin", "https://h:1")]
        ));
        assert!(!call(
            "https://h:1/console/api",
            &[c, ("origin", "https://evil:1")]
        ));
        // No Origin (a same-origin GET-style fetch of some browsers): the header suffices.
        assert!(call("/console/api/listStreams", &[c]));
    }

    #[test]
    fn the_audit_trail_is_read_from_its_newest_files_ends() {
        let dir = std::env::temp_dir().join(format!("riffle-console-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |n: usize| format!("{{\"eventID\":\"{n}\"}}\n");
        std::fs::write(
            dir.join("a_000001.jsonl"),
            (0..3).map(line).collect::<String>(),
        )
        .unwrap();
        // The newest file: its last line half written.
        let newest = (3..5).map(line).collect::<String>() + "{\"eventID\":\"5";
        std::fs::write(dir.join("b_000001.jsonl"), newest).unwrap();
        let ids = |max| -> Vec<String> {
            last_events(&dir, max)
                .iter()
                .map(|e| e["eventID"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(3), ["4", "3", "2"]);
        assert_eq!(ids(50), ["4", "3", "2", "1", "0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn console_calls_are_unwrapped_to_the_aws_call() {
        let mut parts = http::Request::post("/console/api")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(unwrap_api_call(&mut parts));
        assert_eq!(parts.uri.path(), "/");
        let mut parts = http::Request::post("/console/api/listStreams?x=1")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(unwrap_api_call(&mut parts));
        assert_eq!(parts.uri.to_string(), "/listStreams?x=1");
        for other in ["/console/", "/console/apix", "/"] {
            let mut parts = http::Request::post(other).body(()).unwrap().into_parts().0;
            assert!(!unwrap_api_call(&mut parts), "{other}");
            assert_eq!(parts.uri.path(), other);
        }
    }
}
