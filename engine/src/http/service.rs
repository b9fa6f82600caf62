//! The seam between the HTTP gateway and the AWS services it serves.
//!
//! A service (Kinesis Data Streams, Firehose, Analytics, Video, ...) implements
//! [`Service`]: it names the requests it answers ([`Route`]: an `X-Amz-Target`
//! prefix, or REST paths with their signing name) and answers one [`Call`] at a
//! time on the accepting core. The gateway owns everything before that: the
//! connection and its bounds, TLS, h2c, the body limit and budget, SigV4, CORS,
//! and the answers to requests no service claims. A service never edits the
//! gateway; the binary (`tools/`) hands the gateway its services.
//!
//! Bodies: a request's body is read whole (within `HttpConfig::body_bytes_max`)
//! unless its route asks for a streamed body ([`RequestBody::Streaming`]: an
//! hours-long upload, e.g. PutMedia), which the service reads chunk by chunk.
//! Answers are whole, or streamed from a bounded channel ([`streamed`]): an
//! event stream or an endless media answer; a slow reader holds back its own
//! answer's producer, nothing else.

use std::convert::Infallible;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Response, StatusCode};

/// A response body: whole, or streamed from a channel.
pub type HttpBody = Either<Full<Bytes>, StreamBody<BodyStream>>;
pub type BodyStream = flume::r#async::RecvStream<'static, Result<Frame<Bytes>, Infallible>>;

/// A future on the current core (services answer on the accepting core).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Which requests a service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The AWS JSON protocol: `POST /` with `X-Amz-Target: <prefix><Operation>`
    /// (e.g. `Kinesis_20131202.`), signed for `signing_name` (e.g. `kinesis`).
    /// The body is read whole.
    Target {
        prefix: &'static str,
        signing_name: &'static str,
    },
    /// REST: paths starting with `path_prefix` (e.g. `/2015-03-31/event-source-mappings`,
    /// or a whole path such as `/putMedia`). A request signed for another service
    /// (the credential scope's signing name) is not this route's; an unsigned one
    /// is matched by path alone. `streaming_body`: the service reads the body
    /// itself, chunk by chunk ([`RequestBody::Streaming`]).
    Rest {
        path_prefix: &'static str,
        signing_name: &'static str,
        streaming_body: bool,
    },
    /// REST paths whose requests carry their own credential instead of a
    /// signature: a bearer token the service checks (Kinesis Video's HLS
    /// and DASH session URLs, which players fetch with plain GETs). No SigV4
    /// is asked for even when the server verifies signatures; the body is
    /// read whole.
    Bearer { path_prefix: &'static str },
    /// AWS's query protocol: `POST /` with a form body
    /// (`application/x-www-form-urlencoded`, `Action=...&Version=...`), or
    /// `GET /?Action=...`, signed for `signing_name` (an unsigned one goes to
    /// the only query route). The body is read whole.
    Query { signing_name: &'static str },
}

/// One request handed to a service.
pub struct Call {
    pub parts: http::request::Parts,
    pub body: RequestBody,
    /// The access key that signed the request, when signatures are verified.
    pub access_key: Option<String>,
    /// Who sent it (IAM's `aws:SourceIp`), and whether over TLS
    /// (`aws:SecureTransport`): for services that decide access themselves.
    pub peer: Option<std::net::SocketAddr>,
    pub secure: bool,
}

/// A request's body as the service receives it.
pub enum RequestBody {
    /// Read whole, within the gateway's limit.
    Whole(Bytes),
    /// Read by the service (routes with `streaming_body`).
    Streaming(StreamingBody),
}

impl RequestBody {
    /// The whole body (empty for a streamed one: its route reads it itself).
    pub fn whole(&self) -> &[u8] {
        match self {
            RequestBody::Whole(b) => b,
            RequestBody::Streaming(_) => &[],
        }
    }
}

/// A request body read chunk by chunk. It holds one of its core's streamed-body
/// places (`HttpConfig::streamed_bodies_per_core_max`) until dropped; the
/// connection's idle timeout still applies.
pub struct StreamingBody {
    pub(super) body: Incoming,
    pub(super) _permit: Option<crate::rt::Permit>,
}

impl StreamingBody {
    /// The next chunk of data; `None` at the end of the body.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, String>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    // Trailers: nothing more to read.
                    Err(_) => return None,
                },
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }
}

/// An AWS service on the gateway. Shared by every core (`Send + Sync`); each
/// call runs on the core that accepted its connection.
pub trait Service: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;

    /// The requests this service answers.
    fn routes(&self) -> Vec<Route>;

    /// Answers one request.
    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>>;

    /// Whether this service has `operation` (the part of an `X-Amz-Target`
    /// after the service's name). The gateway answers a JSON-protocol request
    /// with an empty body as AWS does: SerializationException for an operation
    /// the service has, UnknownOperationException for one it has not.
    fn has_operation(&self, _operation: &str) -> bool {
        true
    }

    /// Whether its JSON-protocol requests come as AWS JSON 1.0
    /// (`application/x-amz-json-1.0`, CloudWatch's) rather than 1.1.
    fn speaks_json_1_0(&self) -> bool {
        false
    }

    /// What a request of `operation` acts on, for IAM: every resource it
    /// names (ARN, `*` when none; policy and tags), all of which must allow
    /// it; `Err`: it cannot be told (the call is refused). By default `*`.
    fn resources(
        &self,
        _operation: &str,
        _parts: &http::request::Parts,
        _body: &[u8],
    ) -> Result<Vec<super::authz::ResourceRef>, String> {
        Ok(vec![super::authz::ResourceRef {
            arn: "*".into(),
            ..Default::default()
        }])
    }

    /// The operation of a request whose body has been read (a query
    /// protocol's `Action` may be in it), for IAM and the audit trail. By
    /// default [`Service::operation`].
    fn operation_of_call<'a>(
        &self,
        parts: &'a http::request::Parts,
        _body: &'a [u8],
    ) -> Option<super::Operation<'a>> {
        self.operation(parts)
    }

    /// The gateway's refusal of a request of this service (its signature,
    /// its policies, its size) in the service's protocol, when not the
    /// JSON protocol's (the query protocol's XML). `None`: the gateway's own.
    fn refusal(
        &self,
        _parts: &http::request::Parts,
        _refusal: &riffle_aws::error::Refusal,
    ) -> Option<Response<HttpBody>> {
        None
    }

    /// The AWS operation a request of this service is, for the audit trail:
    /// its name in the service's model and whether CloudTrail calls it a
    /// data event. `None`: not an AWS operation (not recorded). By default,
    /// the operation its `X-Amz-Target` names, a management event.
    fn operation<'a>(&self, parts: &'a http::request::Parts) -> Option<super::Operation<'a>> {
        target_operation(parts)
            .filter(|name| self.has_operation(name))
            .map(|name| super::Operation {
                name,
                data: false,
                label: None,
            })
    }
}

/// Whether a request without `X-Amz-Target` is of the query protocol: a
/// POST of a form, or a GET naming an `Action`.
pub fn is_query(parts: &http::request::Parts) -> bool {
    if parts.headers.contains_key("x-amz-target") {
        return false;
    }
    match parts.method {
        http::Method::POST => parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }),
        http::Method::GET => parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action="))),
        _ => false,
    }
}

/// The operation an `X-Amz-Target` names: what follows its last `.`
/// (`Kinesis_20131202.PutRecord` → `PutRecord`).
pub fn target_operation(parts: &http::request::Parts) -> Option<&str> {
    let target = parts.headers.get("x-amz-target")?.to_str().ok()?;
    let (_, name) = target.rsplit_once('.')?;
    (!name.is_empty()).then_some(name)
}

/// A whole answer.
pub fn whole(resp: Response<Bytes>) -> Response<HttpBody> {
    resp.map(|b| Either::Left(Full::new(b)))
}

/// The sending side of a streamed answer: `send` waits while the channel is
/// full (the client reads slowly) and fails once the client is gone.
pub struct StreamSender(flume::Sender<Result<Frame<Bytes>, Infallible>>);

impl StreamSender {
    /// Queues `data`; `false` when the client went away.
    pub async fn send(&self, data: Bytes) -> bool {
        self.0.send_async(Ok(Frame::data(data))).await.is_ok()
    }

    /// Queues `data` if there is room now; `false` when full or gone.
    pub fn try_send(&self, data: Bytes) -> bool {
        self.0.try_send(Ok(Frame::data(data))).is_ok()
    }

    /// The answer's receiving side is gone (the connection closed and the
    /// gateway dropped the answer): nothing sent would reach the client.
    pub fn is_closed(&self) -> bool {
        self.0.is_disconnected()
    }
}

/// A streamed answer with `status` and `content_type`, fed through a channel of
/// `capacity` messages; the answer ends when the sender is dropped.
pub fn streamed(
    status: StatusCode,
    content_type: &str,
    capacity: usize,
) -> (StreamSender, Response<HttpBody>) {
    let (tx, rx) = flume::bounded(capacity);
    let resp = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Either::Right(StreamBody::new(rx.into_stream())))
        .expect("a valid response");
    (StreamSender(tx), resp)
}

/// The services of a gateway and how a request finds its own.
#[derive(Default)]
pub struct Services {
    targets: Vec<(&'static str, &'static str, usize)>,
    /// (signing name, service) of the query protocol's routes.
    queries: Vec<(&'static str, usize)>,
    /// (prefix, signing name, streaming body, bearer, service).
    rest: Vec<(&'static str, &'static str, bool, bool, usize)>,
    services: Vec<std::sync::Arc<dyn Service>>,
}

/// What a request is routed to.
pub(super) enum Routed<'a> {
    Service {
        service: &'a dyn Service,
        /// What its signature's scope must name.
        signing_name: &'static str,
        streaming_body: bool,
        /// A `Route::Bearer` path: the service checks its own credential.
        bearer: bool,
    },
    /// An `X-Amz-Target` no service claims.
    UnknownTarget,
    /// No target and no REST route.
    Nothing,
}

impl Services {
    pub fn new() -> Services {
        Services::default()
    }

    /// Registers a service. Panics when one of its routes is already another
    /// service's: two services claiming the same requests is a wiring bug.
    pub fn register(&mut self, service: std::sync::Arc<dyn Service>) -> &mut Services {
        let index = self.services.len();
        for route in service.routes() {
            match route {
                Route::Target {
                    prefix,
                    signing_name,
                } => {
                    assert!(
                        !self.targets.iter().any(|(p, ..)| *p == prefix),
                        "target prefix {prefix} registered twice"
                    );
                    self.targets.push((prefix, signing_name, index));
                }
                Route::Rest {
                    path_prefix,
                    signing_name,
                    streaming_body,
                } => {
                    assert!(
                        !self
                            .rest
                            .iter()
                            .any(|(p, s, ..)| *p == path_prefix && *s == signing_name),
                        "REST path {path_prefix} registered twice"
                    );
                    self.rest
                        .push((path_prefix, signing_name, streaming_body, false, index));
                }
                Route::Query { signing_name } => {
                    assert!(
                        !self.queries.iter().any(|(s, _)| *s == signing_name),
                        "query route {signing_name} registered twice"
                    );
                    self.queries.push((signing_name, index));
                }
                Route::Bearer { path_prefix } => {
                    assert!(
                        !self.rest.iter().any(|(p, ..)| *p == path_prefix),
                        "REST path {path_prefix} registered twice"
                    );
                    self.rest.push((path_prefix, "", false, true, index));
                }
            }
        }
        // The longest REST prefix wins.
        self.rest.sort_by_key(|(p, ..)| std::cmp::Reverse(p.len()));
        self.services.push(service);
        self
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.services.iter().map(|s| s.name()).collect()
    }

    /// The service a request is for.
    pub(super) fn route(&self, parts: &http::request::Parts) -> Routed<'_> {
        if let Some(target) = parts.headers.get("x-amz-target") {
            let target = target.as_bytes();
            return match self
                .targets
                .iter()
                .find(|(p, ..)| target.starts_with(p.as_bytes()))
            {
                Some((_, signing_name, i)) => Routed::Service {
                    service: &*self.services[*i],
                    signing_name,
                    streaming_body: false,
                    bearer: false,
                },
                None => Routed::UnknownTarget,
            };
        }
        let path = parts.uri.path();
        // The query protocol: a form at `/`, to the service it is signed for.
        if path == "/" && is_query(parts) {
            let signed_for = riffle_aws::sigv4::signing_name(parts);
            let found = match signed_for.as_deref() {
                Some(s) => self.queries.iter().find(|(q, _)| *q == s),
                None if self.queries.len() == 1 => self.queries.first(),
                None => None,
            };
            if let Some((signing_name, i)) = found {
                return Routed::Service {
                    service: &*self.services[*i],
                    signing_name,
                    streaming_body: false,
                    bearer: false,
                };
            }
        }
        // SigV4 normalizes dot segments before it signs: a path that has them
        // (or empty ones, but for a trailing slash) could be routed here yet
        // signed for another; such a path is not routed at all.
        let mut segments = path.split('/').skip(1).peekable();
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            if seg == "." || seg == ".." || (seg.is_empty() && !last) {
                return Routed::Nothing;
            }
        }
        let signed_for = riffle_aws::sigv4::signing_name(parts);
        for (prefix, signing, streaming, bearer, i) in &self.rest {
            let under = path.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/')
            });
            if under && (*bearer || signed_for.as_deref().is_none_or(|s| s == *signing)) {
                return Routed::Service {
                    service: &*self.services[*i],
                    signing_name: signing,
                    streaming_body: *streaming,
                    bearer: *bearer,
                };
            }
        }
        Routed::Nothing
    }
}

/// An AWS JSON-protocol call read (Firehose, Analytics): the request's
/// format (JSON or CBOR), the operation its `X-Amz-Target` names after
/// `prefix` (empty when none), and its input decoded and checked against
/// `model` with the service's `rules`, or AWS's refusal (answer it with
/// [`json_answer`]).
pub fn json_operation(
    call: &Call,
    prefix: &str,
    model: &riffle_aws::model::ServiceModel,
    rules: &riffle_aws::model::Rules<'_>,
) -> (
    riffle_aws::json::Format,
    String,
    Result<serde_json::Map<String, serde_json::Value>, riffle_aws::error::Refusal>,
) {
    let format = riffle_aws::json::Format::of(&call.parts.headers);
    let operation = call
        .parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix(prefix))
        .unwrap_or("")
        .to_string();
    let input =
        riffle_aws::input::decode_checked(model, format, &operation, call.body.whole(), rules);
    (format, operation, input)
}

/// An operation's outcome as a JSON-protocol service answers it, in the
/// request's format.
pub fn json_answer(
    format: riffle_aws::json::Format,
    result: Result<serde_json::Value, riffle_aws::error::Refusal>,
) -> Response<HttpBody> {
    whole(match result {
        Ok(v) => riffle_aws::error::ok_response(format, format.encode(&v, &Default::default())),
        Err(r) => r.to_response(format),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_name_comes_from_the_credential_scope() {
        let mut h = http::HeaderMap::new();
        h.insert(
            hyper::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AK/20261202/us-east-1/kinesisvideo/aws4_request, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        let parts = |uri: &str, h: &http::HeaderMap| {
            let mut b = http::Request::builder().uri(uri);
            for (k, v) in h {
                b = b.header(k, v);
            }
            b.body(()).unwrap().into_parts().0
        };
        use riffle_aws::sigv4::signing_name;
        assert_eq!(
            signing_name(&parts("/", &h)).as_deref(),
            Some("kinesisvideo")
        );
        assert_eq!(signing_name(&parts("/", &http::HeaderMap::new())), None);
        // Presigned: percent-encoded either case, the parameter name too.
        for presigned in [
            "/getMedia?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261202%2Fus-east-1%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20261202T000000Z",
            "/getMedia?X-Amz-Credential=AK%2f20261202%2fus-east-1%2fkinesisvideo%2faws4_request",
            "/getMedia?X%2DAmz%2DCredential=AK/20261202/us-east-1/kinesisvideo/aws4_request",
        ] {
            assert_eq!(
                signing_name(&parts(presigned, &http::HeaderMap::new())).as_deref(),
                Some("kinesisvideo"),
                "{presigned}"
            );
        }
    }

    struct Named(&'static str, Vec<Route>);

    impl Service for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn routes(&self) -> Vec<Route> {
            self.1.clone()
        }
        fn call(&self, _: Call) -> LocalFuture<'_, Response<HttpBody>> {
            unreachable!("routing only")
        }
    }

    #[test]
    fn rest_paths_route_by_whole_segments_and_never_with_dot_segments() {
        let mut services = Services::new();
        services.register(std::sync::Arc::new(Named(
            "upload",
            vec![Route::Rest {
                path_prefix: "/toy/upload",
                signing_name: "toy",
                streaming_body: true,
            }],
        )));
        let routed = |path: &str| {
            let parts = http::Request::builder()
                .uri(path)
                .body(())
                .unwrap()
                .into_parts()
                .0;
            match services.route(&parts) {
                Routed::Service { service, .. } => Some(service.name()),
                _ => None,
            }
        };
        assert_eq!(routed("/toy/upload"), Some("upload"));
        assert_eq!(routed("/toy/upload/part"), Some("upload"));
        assert_eq!(routed("/toy/uploadX"), None);
        assert_eq!(routed("/toy/upload/../other"), None);
        assert_eq!(routed("/toy/./upload"), None);
        assert_eq!(routed("/toy//upload"), None);
        assert_eq!(routed("/toy/upload/"), Some("upload"));
        assert_eq!(routed("/other"), None);
    }
}
