//! AWS's front-door answers, before any service: what an AWS JSON-protocol
//! endpoint (`POST /` with `X-Amz-Target: <Service_date>.<Operation>`) answers
//! to a request before an operation sees it, decided by the request's shape
//! alone (method, Content-Type, target, whether the body is empty or starts
//! like a JSON or CBOR document), as AWS answers them (kinesalite's
//! connection.js, recorded from AWS):
//!
//! 1. CORS: with an `Origin`, every answer allows any origin and exposes AWS's
//!    headers; `OPTIONS` with an `Origin` is a preflight, answered 200 with the
//!    requested headers and method echoed.
//! 2. Any other method than POST: `AccessDeniedException` (403, an XML body).
//! 3. An empty body: `SerializationException` when the target names an
//!    operation a service has, else `UnknownOperationException`; in JSON when
//!    the Content-Type is JSON 1.1, else in CBOR; no message.
//! 4. A Content-Type that is none of JSON 1.1, CBOR 1.1 and the deprecated
//!    `application/json`: `AccessDeniedException` when the target does not
//!    name a service and an operation, else a 404 `<UnknownOperationException/>`.
//! 5. A body that is not a JSON (or CBOR) object or array: `SerializationException`
//!    without a message (in the deprecated `application/json` envelope for that
//!    Content-Type).
//! 6. `application/json` goes no further: a 404 `UnknownOperationException`
//!    in its envelope.
//! 7. A target no service has: `UnknownOperationException`.
//!
//! Every answer to a JSON-protocol request carries `x-amzn-RequestId` and
//! `x-amz-id-2` (a preflight only the first). Requests routed to a REST
//! service are untouched. The front door knows no service: it asks the routed
//! one only whether it has an operation (`Service::has_operation`).

use std::cell::Cell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use riffle_aws::json::{CBOR_CONTENT_TYPE, Format, JSON_CONTENT_TYPE};

use super::service::{HttpBody, Routed, Service, Services, whole};

/// The deprecated JSON Content-Type AWS still recognizes, only to refuse it.
const DEPRECATED_JSON: &str = "application/json";
/// AWS JSON 1.0 (CloudWatch's): JSON bodies as 1.1's.
const JSON_10_CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The headers a cross-origin caller may read (AWS's list).
const EXPOSED_HEADERS: &str =
    "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date";

/// How long a preflight answer may be cached, in seconds (AWS: two days).
const PREFLIGHT_MAX_AGE_S: u32 = 172_800;

/// Random bytes in `x-amz-id-2` (AWS sends 64-80).
const ID_2_BYTES: usize = 72;

/// One request's place at the front door.
#[derive(Debug)]
pub(super) struct Front {
    /// A JSON-protocol request (anything not routed to a REST service).
    json_protocol: bool,
    origin: bool,
    preflight: bool,
}

impl Front {
    pub(super) fn of(parts: &http::request::Parts, services: &Services) -> Front {
        let rest = !parts.headers.contains_key("x-amz-target")
            && matches!(services.route(parts), Routed::Service { .. });
        let origin = parts.headers.contains_key(hyper::header::ORIGIN);
        Front {
            json_protocol: !rest,
            origin,
            preflight: !rest && origin && parts.method == Method::OPTIONS,
        }
    }

    /// The answer decided before the body is read: a CORS preflight, or a
    /// method other than POST.
    pub(super) fn before_body(&self, parts: &http::request::Parts) -> Option<Response<HttpBody>> {
        if !self.json_protocol {
            return None;
        }
        if self.preflight {
            let mut resp = Response::builder().status(StatusCode::OK);
            let echoed = [
                (
                    "access-control-request-headers",
                    "Access-Control-Allow-Headers",
                ),
                (
                    "access-control-request-method",
                    "Access-Control-Allow-Methods",
                ),
            ];
            for (asked, allowed) in echoed {
                if let Some(v) = parts.headers.get(asked) {
                    resp = resp.header(allowed, v);
                }
            }
            let resp = resp
                .header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S)
                .body(Bytes::new())
                .expect("a valid response");
            return Some(whole(resp));
        }
        if parts.method != Method::POST {
            return Some(access_denied());
        }
        None
    }

    /// The answer decided by the body's shape, the Content-Type and the
    /// target, before the signature and the service; `service` is the one the
    /// target routed to.
    pub(super) fn after_body(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        service: Option<&dyn Service>,
    ) -> Option<Response<HttpBody>> {
        if !self.json_protocol {
            return None;
        }
        let content_type = content_type(parts);
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (service_name, operation) = target.split_once('.').unwrap_or((target, ""));
        let known = !operation.is_empty() && service.is_some_and(|s| s.has_operation(operation));
        // AWS JSON 1.0 only for a service that speaks it (CloudWatch);
        // Kinesis's front door refuses it, as AWS's does.
        let json_1_0 = service.is_some_and(|s| s.speaks_json_1_0());
        if body.is_empty() {
            let format = if content_type == JSON_CONTENT_TYPE
                || (json_1_0 && content_type == JSON_10_CONTENT_TYPE)
            {
                Format::Json
            } else {
                Format::Cbor
            };
            let kind = if known {
                "SerializationException"
            } else {
                "UnknownOperationException"
            };
            return Some(bare(format, kind));
        }
        let format = match content_type {
            JSON_CONTENT_TYPE => Format::Json,
            JSON_10_CONTENT_TYPE if json_1_0 => Format::Json,
            CBOR_CONTENT_TYPE => Format::Cbor,
            DEPRECATED_JSON => Format::Json,
            _ if service_name.is_empty() || operation.is_empty() => return Some(access_denied()),
            _ => {
                return Some(xml(
                    StatusCode::NOT_FOUND,
                    "UnknownOperationException",
                    None,
                ));
            }
        };
        let deprecated = content_type == DEPRECATED_JSON;
        if !starts_like_a_document(format, body) {
            return Some(if deprecated {
                deprecated_json(StatusCode::BAD_REQUEST, "SerializationException")
            } else {
                bare(format, "SerializationException")
            });
        }
        if deprecated {
            return Some(deprecated_json(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
            ));
        }
        if !known {
            return Some(bare(format, "UnknownOperationException"));
        }
        None
    }

    /// Adds the headers every answer to a JSON-protocol request carries.
    pub(super) fn finish(&self, mut resp: Response<HttpBody>) -> Response<HttpBody> {
        if !self.json_protocol {
            return resp;
        }
        let (request_id, id_2) = ids(!self.preflight);
        let headers = resp.headers_mut();
        headers.insert(
            "x-amzn-RequestId",
            request_id.parse().expect("a uuid is a header value"),
        );
        if let Some(id_2) = id_2 {
            headers.insert(
                "x-amz-id-2",
                id_2.parse().expect("base64 is a header value"),
            );
        }
        if self.origin {
            headers.insert(
                "Access-Control-Allow-Origin",
                http::HeaderValue::from_static("*"),
            );
            if !self.preflight {
                headers.insert(
                    "Access-Control-Expose-Headers",
                    http::HeaderValue::from_static(EXPOSED_HEADERS),
                );
            }
        }
        resp
    }
}

/// The media type of the request's Content-Type (before any `;`, trimmed),
/// or "" without one.
fn content_type(parts: &http::request::Parts) -> &str {
    parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or("", |c| c.split(';').next().unwrap_or("").trim())
}

/// Whether `body` may be a JSON (or CBOR) object or array: AWS refuses
/// anything else (a string, a number, `null`, not JSON at all) before the
/// operation's input is read. Malformed documents that start like one are the
/// service's to refuse.
fn starts_like_a_document(format: Format, body: &[u8]) -> bool {
    match format {
        Format::Json => matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        ),
        // Major types 4 (array), 5 (map) and 6 (tag).
        Format::Cbor => matches!(body.first(), Some(0x80..=0xdb)),
    }
}

/// `{"__type": kind}` in `format`, 400.
fn bare(format: Format, kind: &str) -> Response<HttpBody> {
    whole(riffle_aws::error::Refusal::client(kind, "").to_response(format))
}

/// AWS's 403 for a request it cannot tie to an operation.
fn access_denied() -> Response<HttpBody> {
    xml(
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        Some("Unable to determine service/operation name to be authorized"),
    )
}

/// An XML answer without a Content-Type, as AWS's front door sends it:
/// `<Kind/>` or `<Kind>\n  <Message>...</Message>\n</Kind>`.
fn xml(status: StatusCode, kind: &str, message: Option<&str>) -> Response<HttpBody> {
    let body = match message {
        None => format!("<{kind}/>\n"),
        Some(m) => format!("<{kind}>\n  <Message>{m}</Message>\n</{kind}>\n"),
    };
    let resp = Response::builder()
        .status(status)
        .header("x-amzn-ErrorType", kind)
        .body(Bytes::from(body))
        .expect("a valid response");
    whole(resp)
}

/// The deprecated `application/json` envelope:
/// `{"Output":{"__type":"com.amazon.coral.service#<kind>"},"Version":"1.0"}`.
fn deprecated_json(status: StatusCode, kind: &str) -> Response<HttpBody> {
    let body = serde_json::json!({
        "Output": {"__type": format!("com.amazon.coral.service#{kind}")},
        "Version": "1.0",
    });
    let resp = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, DEPRECATED_JSON)
        .header("x-amzn-ErrorType", kind)
        .body(Bytes::from(body.to_string()))
        .expect("a valid response");
    whole(resp)
}

thread_local! {
    /// Request ids need to be unique, not secret: a SplitMix64 sequence per
    /// core, seeded from the clock and the standard library's per-process keys.
    static IDS: Cell<u64> = Cell::new(seed());
}

/// Fills `out` with the next values of this thread's sequence.
pub(super) fn fill(out: &mut [u8]) {
    IDS.with(|state| {
        for chunk in out.chunks_mut(8) {
            let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    });
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // RandomState is seeded per process (and per thread) by the standard library.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(nanos);
    h.finish()
}

/// A new request id (a version 4 UUID), for answers services write themselves.
pub(crate) fn request_id() -> String {
    ids(false).0
}

/// A request id (`x-amzn-RequestId`, a version 4 UUID) and, when asked, an
/// `x-amz-id-2` (base64 of random bytes).
fn ids(with_id_2: bool) -> (String, Option<String>) {
    let mut u = [0u8; 16];
    fill(&mut u);
    let request_id = riffle_aws::ids::uuid_v4(u);
    let id_2 = with_id_2.then(|| {
        let mut b = [0u8; ID_2_BYTES];
        fill(&mut b);
        BASE64.encode(b)
    });
    (request_id, id_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::service::{Call, LocalFuture, Route};
    use http_body_util::BodyExt;

    /// A JSON-protocol service with one operation, `Op`.
    struct Toy;

    impl Service for Toy {
        fn name(&self) -> &'static str {
            "toy"
        }
        fn routes(&self) -> Vec<Route> {
            vec![
                Route::Target {
                    prefix: "Toy_20200101.",
                    signing_name: "toy",
                },
                Route::Rest {
                    path_prefix: "/rest",
                    signing_name: "toy",
                    streaming_body: false,
                },
            ]
        }
        fn call(&self, _call: Call) -> LocalFuture<'_, Response<HttpBody>> {
            unreachable!("the front door's decisions only")
        }
        fn has_operation(&self, operation: &str) -> bool {
            operation == "Op"
        }
    }

    /// What the front door answers: (status, content type, body) or `None`
    /// when the request goes on to its service.
    fn answer(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<(u16, Option<String>, Vec<u8>)> {
        let mut services = Services::new();
        services.register(std::sync::Arc::new(Toy));
        let mut req = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        let front = Front::of(&parts, &services);
        let service: Option<&dyn Service> = match services.route(&parts) {
            Routed::Service { service, .. } => Some(service),
            _ => None,
        };
        let resp = front
            .before_body(&parts)
            .or_else(|| front.after_body(&parts, body, service))?;
        let resp = front.finish(resp);
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(resp.headers().contains_key("x-amzn-RequestId"));
        let body = futures_lite::future::block_on(resp.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec();
        Some((status, content_type, body))
    }

    const JSON: &str = "application/x-amz-json-1.1";
    const CBOR: &str = "application/x-amz-cbor-1.1";

    fn json(status: u16, body: &str) -> Option<(u16, Option<String>, Vec<u8>)> {
        Some((status, Some(JSON.into()), body.as_bytes().to_vec()))
    }

    fn cbor(status: u16, kind: &str) -> Option<(u16, Option<String>, Vec<u8>)> {
        let body = riffle_aws::cbor::from_json(
            &serde_json::json!({ "__type": kind }),
            &Default::default(),
        );
        Some((status, Some(CBOR.into()), body))
    }

    fn xml(status: u16, body: &str) -> Option<(u16, Option<String>, Vec<u8>)> {
        Some((status, None, body.as_bytes().to_vec()))
    }

    #[test]
    fn aws_front_door_answers() {
        const DENIED: &str = "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n";
        let op = ("x-amz-target", "Toy_20200101.Op");
        let json_type = ("content-type", JSON);
        for (method, headers, body, expected) in [
            // Methods other than POST.
            ("GET", vec![], &b""[..], xml(403, DENIED)),
            ("PUT", vec![op], b"{}", xml(403, DENIED)),
            ("OPTIONS", vec![], b"", xml(403, DENIED)),
            // An empty body: known operation or not; JSON only for JSON 1.1.
            ("POST", vec![], b"", cbor(400, "UnknownOperationException")),
            ("POST", vec![op], b"", cbor(400, "SerializationException")),
            (
                "POST",
                vec![op, json_type],
                b"",
                json(400, r#"{"__type":"SerializationException"}"#),
            ),
            (
                "POST",
                vec![("x-amz-target", "Toy_20200101.Other"), json_type],
                b"",
                json(400, r#"{"__type":"UnknownOperationException"}"#),
            ),
            // A Content-Type AWS does not read.
            ("POST", vec![], b"{}", xml(403, DENIED)),
            (
                "POST",
                vec![op, ("content-type", "application/x-amz-json-1.0")],
                b"{}",
                xml(404, "<UnknownOperationException/>\n"),
            ),
            // Not a document.
            (
                "POST",
                vec![op, json_type],
                b"hello",
                json(400, r#"{"__type":"SerializationException"}"#),
            ),
            (
                "POST",
                vec![op, ("content-type", "  application/json  ;")],
                b"hello",
                Some((
                    400,
                    Some("application/json".into()),
                    br#"{"Output":{"__type":"com.amazon.coral.service#SerializationException"},"Version":"1.0"}"#.to_vec(),
                )),
            ),
            (
                "POST",
                vec![op, ("content-type", "application/json")],
                b"{}",
                Some((
                    404,
                    Some("application/json".into()),
                    br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#.to_vec(),
                )),
            ),
            // Targets no service has.
            (
                "POST",
                vec![("x-amz-target", "Other_1.Op"), json_type],
                b"{}",
                json(400, r#"{"__type":"UnknownOperationException"}"#),
            ),
            (
                "POST",
                vec![("x-amz-target", "Toy_20200101.Other"), ("content-type", CBOR)],
                &[0xa0],
                cbor(400, "UnknownOperationException"),
            ),
            // Well formed: the service's.
            ("POST", vec![op, json_type], b"{}", None),
            (
                "POST",
                vec![op, ("content-type", " application/x-amz-json-1.1 ;x")],
                b"{}",
                None,
            ),
            ("POST", vec![op, ("content-type", CBOR)], &[0xa0], None),
        ] {
            let got = answer(method, "/", &headers, body);
            let show = |a: &Option<(u16, Option<String>, Vec<u8>)>| {
                a.as_ref()
                    .map(|(s, c, b)| (*s, c.clone(), String::from_utf8_lossy(b).into_owned()))
            };
            assert_eq!(show(&got), show(&expected), "{method} {headers:?} {body:?}");
        }
        // REST routes are the service's, whatever the method.
        assert_eq!(answer("GET", "/rest/x", &[], b""), None);
    }

    #[test]
    fn cors() {
        let mut services = Services::new();
        services.register(std::sync::Arc::new(Toy));
        let (parts, ()) = http::Request::builder()
            .method("OPTIONS")
            .uri("/")
            .header("origin", "whatever")
            .header("access-control-request-headers", "a, b, c")
            .header("access-control-request-method", "d")
            .body(())
            .unwrap()
            .into_parts();
        let front = Front::of(&parts, &services);
        let resp = front.finish(front.before_body(&parts).expect("a preflight"));
        let h = resp.headers();
        assert_eq!(resp.status(), 200);
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-headers"], "a, b, c");
        assert_eq!(h["access-control-allow-methods"], "d");
        assert_eq!(h["access-control-max-age"], "172800");
        assert!(!h.contains_key("x-amz-id-2") && !h.contains_key("content-type"));
        // Any other answer to a request with an Origin exposes AWS's headers.
        let (parts, ()) = http::Request::builder()
            .method("GET")
            .uri("/")
            .header("origin", "whatever")
            .body(())
            .unwrap()
            .into_parts();
        let front = Front::of(&parts, &services);
        let resp = front.finish(front.before_body(&parts).expect("refused"));
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(
            resp.headers()["access-control-expose-headers"],
            EXPOSED_HEADERS
        );
        assert!(resp.headers().contains_key("x-amz-id-2"));
    }

    #[test]
    fn documents_are_recognized_by_their_first_byte() {
        for (format, body, ok) in [
            (Format::Json, &b"{}"[..], true),
            (Format::Json, b"  \n[1]", true),
            (Format::Json, b"{broken", true),
            (Format::Json, b"hello", false),
            (Format::Json, b"null", false),
            (Format::Json, b"\"s\"", false),
            (Format::Json, b"   ", false),
            (Format::Cbor, &[0xa0], true),
            (Format::Cbor, &[0x80], true),
            (Format::Cbor, &[0xf6], false),
            (Format::Cbor, &[0x61, b'a'], false),
        ] {
            assert_eq!(starts_like_a_document(format, body), ok, "{body:?}");
        }
    }

    #[test]
    fn ids_look_like_aws_ids() {
        let (id, id_2) = ids(true);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        let id_2 = BASE64.decode(id_2.unwrap()).unwrap();
        assert!((64..=80).contains(&id_2.len()));
        assert_ne!(ids(false).0, id);
        assert!(ids(false).1.is_none());
    }
}
