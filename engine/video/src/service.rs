//! Kinesis Video Streams on the HTTP gateway: the control plane's REST-JSON
//! paths (`/createStream`, `/describeStream`, ...), signed for
//! `kinesisvideo`, each input assembled and checked against AWS's model
//! (`riffle_aws::model::kinesis_video()`) before an operation runs
//! (`streams.rs`, `tags.rs`).
//!
//! [`VideoService::start`] opens the streams' metadata log and removes
//! internal streams that no video stream names any more (a crash between
//! the engine's step and the metadata's step of a create or delete).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_aws::model::Rules;
use riffle_engine::Engine;
use riffle_engine::http::service::{LocalFuture, whole};
use riffle_engine::http::{Call, HttpBody, Operation, RequestBody, Route, Service};
use riffle_engine::meta::MetaHandle;
use riffle_protocol::{Error, ErrorCode};
use serde_json::Value;

use crate::state::{INTERNAL_OWNER, VideoState, VideoStream, name_of_arn};
use crate::{streams, tags};

/// How the server runs video streams.
#[derive(Clone, Debug)]
pub struct VideoConfig {
    pub region: String,
    pub account: String,
    /// How long a new stream shows CREATING (the server's `state_delay_ms`).
    pub state_delay_ms: u64,
    /// The HTTP port serves TLS: GetDataEndpoint answers `https://`.
    pub tls: bool,
    /// Video streams the account may have (AWS's default quota: 10,000).
    pub streams_max: usize,
    /// More CA certificates (PEM) to trust for https image endpoints.
    pub ca_file: Option<std::path::PathBuf>,
}

impl VideoConfig {
    /// AWS's default quota of video streams per account and region.
    pub const STREAMS_MAX: usize = 10_000;
}

/// The control plane's operations and their paths, as AWS's model has them.
const OPERATIONS: &[(&str, &str)] = &[
    ("/createStream", "CreateStream"),
    ("/describeStream", "DescribeStream"),
    ("/listStreams", "ListStreams"),
    ("/deleteStream", "DeleteStream"),
    ("/updateStream", "UpdateStream"),
    ("/updateDataRetention", "UpdateDataRetention"),
    ("/getDataEndpoint", "GetDataEndpoint"),
    ("/tagStream", "TagStream"),
    ("/untagStream", "UntagStream"),
    ("/listTagsForStream", "ListTagsForStream"),
    ("/TagResource", "TagResource"),
    ("/UntagResource", "UntagResource"),
    ("/ListTagsForResource", "ListTagsForResource"),
    (
        "/updateImageGenerationConfiguration",
        "UpdateImageGenerationConfiguration",
    ),
    (
        "/describeImageGenerationConfiguration",
        "DescribeImageGenerationConfiguration",
    ),
    (
        "/updateNotificationConfiguration",
        "UpdateNotificationConfiguration",
    ),
    (
        "/describeNotificationConfiguration",
        "DescribeNotificationConfiguration",
    ),
];

/// The data plane's operations with whole request bodies, by path:
/// GetMedia (`kinesis-video-media`) and the archived-media ones
/// (`kinesis-video-archived-media`).
const MEDIA_OPERATIONS: &[(&str, &str)] = &[
    ("/getMedia", "GetMedia"),
    ("/listFragments", "ListFragments"),
    ("/getMediaForFragmentList", "GetMediaForFragmentList"),
    ("/getImages", "GetImages"),
    ("/getHLSStreamingSessionURL", "GetHLSStreamingSessionURL"),
    ("/getDASHStreamingSessionURL", "GetDASHStreamingSessionURL"),
    ("/getClip", "GetClip"),
];

/// The signing name of all three Kinesis Video APIs.
pub const SIGNING_NAME: &str = "kinesisvideo";

/// PutMedia's path (a streamed upload).
const PUT_MEDIA: &str = "/putMedia";

/// What every call shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: VideoConfig,
    pub(crate) meta: MetaHandle<VideoState>,
    /// Each stream's fragment index.
    pub(crate) media: crate::media::Media,
    /// HLS and DASH playback sessions.
    pub(crate) sessions: crate::playback::Sessions,
    /// Each stream's image generator's incarnation (generator.rs): a
    /// generator whose number is not the stream's current one ends.
    pub(crate) generators: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// TLS for image endpoints (the server's extra CA certificates).
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// AWS/KinesisVideo's metrics, per stream.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    pub(crate) fn arn(&self, name: &str, created_ms: i64) -> String {
        format!(
            "arn:aws:kinesisvideo:{}:{}:stream/{name}/{created_ms}",
            self.config.region, self.config.account
        )
    }

    /// The stream a request names by `StreamName` or `StreamARN` (one of
    /// them is required; when both are given they must name the same one).
    pub(crate) fn named(&self, input: Input<'_>) -> Result<VideoStream, Refusal> {
        self.named_by(input, "StreamName", "StreamARN")
    }

    /// [`Shared::named`] with other member names (`ResourceARN`).
    pub(crate) fn named_by(
        &self,
        input: Input<'_>,
        name_member: &str,
        arn_member: &str,
    ) -> Result<VideoStream, Refusal> {
        let name = input.str(name_member)?;
        let arn = input.str(arn_member)?;
        let state = self.meta.state();
        let found = match (name, arn) {
            (None, None) => {
                return Err(invalid(format!(
                    "Either {name_member} or {arn_member} must be given."
                )));
            }
            (Some(n), None) => state.streams.get(n).ok_or_else(|| not_found_name(n))?,
            (n, Some(a)) => {
                let s = state.by_arn(a).ok_or_else(|| not_found_arn(a))?;
                if n.is_some_and(|n| n != s.name) {
                    return Err(invalid(format!(
                        "{name_member} and {arn_member} name different streams."
                    )));
                }
                s
            }
        };
        Ok(found.clone())
    }

    /// What a stream shows as its status now.
    pub(crate) fn status(&self, s: &VideoStream) -> &'static str {
        let shown_from = s
            .created_ms
            .saturating_add(self.config.state_delay_ms as i64);
        if riffle_engine::rt::now_ms() < shown_from {
            "CREATING"
        } else {
            "ACTIVE"
        }
    }
}

/// AWS's answer for a stream name it does not have.
pub(crate) fn not_found_name(name: &str) -> Refusal {
    refusal(crate::state::not_found(name))
}

fn not_found_arn(arn: &str) -> Refusal {
    match name_of_arn(arn) {
        Some(name) => not_found_name(name),
        None => Refusal::client(
            "InvalidArgumentException",
            format!("The ARN {arn} does not name a video stream."),
        ),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::client("InvalidArgumentException", message)
}

/// An engine or metadata error in Kinesis Video's words: its exception
/// names and HTTP statuses (ResourceNotFoundException is a 404).
pub(crate) fn refusal(e: Error) -> Refusal {
    let (status, kind) = match e.code {
        ErrorCode::ResourceNotFound => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
        ErrorCode::ResourceInUse => (StatusCode::BAD_REQUEST, "ResourceInUseException"),
        ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, "InvalidArgumentException"),
        ErrorCode::ConcurrentModification => (StatusCode::BAD_REQUEST, "VersionMismatchException"),
        ErrorCode::LimitExceeded => (
            StatusCode::BAD_REQUEST,
            "TagsPerResourceExceededLimitException",
        ),
        ErrorCode::ProvisionedThroughputExceeded => {
            (StatusCode::BAD_REQUEST, "ClientLimitExceededException")
        }
        ErrorCode::ExpiredIterator | ErrorCode::Internal | ErrorCode::StorageFailed => {
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
        }
        // Kinesis Video's models name no KMS exception: its stream's key
        // refused (the message says how).
        ErrorCode::KmsAccessDenied | ErrorCode::AccessDenied => {
            (StatusCode::FORBIDDEN, "AccessDeniedException")
        }
        ErrorCode::KmsDisabled | ErrorCode::KmsNotFound | ErrorCode::KmsInvalidState => {
            (StatusCode::BAD_REQUEST, "InvalidArgumentException")
        }
    };
    Refusal::new(status, kind, e.message)
}

/// Kinesis Video Streams, registered with the gateway by the binary.
#[derive(Clone)]
pub struct VideoService {
    pub(crate) shared: Arc<Shared>,
}

impl VideoService {
    /// The collector of AWS/KinesisVideo's metrics (`GET /metrics`).
    pub fn metrics(&self) -> crate::metrics::VideoMetrics {
        crate::metrics::VideoMetrics(self.shared.metrics.clone())
    }

    /// Opens the video streams' metadata and removes orphaned internal
    /// streams. Blocks (call it while wiring the server).
    pub fn start(engine: Engine, config: VideoConfig) -> Result<VideoService, Error> {
        let meta = MetaHandle::<VideoState>::open(&engine, "video")?;
        let tls = riffle_engine::http::client::tls_config(config.ca_file.as_deref())
            .map_err(Error::invalid)?;
        let shared = Arc::new(Shared {
            engine,
            config,
            meta,
            media: Default::default(),
            sessions: Default::default(),
            generators: Default::default(),
            tls,
            metrics: Default::default(),
        });
        let state = shared.meta.state();
        let named: std::collections::BTreeSet<&str> = state
            .streams
            .values()
            .map(|s| s.internal.as_str())
            .collect();
        let orphans: Vec<String> = shared
            .engine
            .internal_streams(INTERNAL_OWNER)
            .into_iter()
            .filter(|s| !named.contains(s.as_str()))
            .collect();
        let streams: Vec<(String, String, u32)> = state
            .streams
            .values()
            .map(|s| (s.name.clone(), s.internal.clone(), s.retention_hours))
            .collect();
        // Orphans removed; every stream's retention as its metadata says (a
        // crash may have come between the two steps of a change); every
        // stream's index rebuilt from its records.
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        let s = shared.clone();
        shared.engine.run_on_core(0, move || {
            riffle_engine::rt::spawn(async move {
                for o in orphans {
                    if let Err(e) = s.engine.delete_stream(&o).await {
                        tracing::warn!("cannot delete the orphaned internal stream {o}: {e}");
                    }
                }
                for (name, internal, hours) in streams {
                    let hours = crate::streams::stored_hours(&s.engine, hours);
                    let kept = s
                        .engine
                        .describe_stream(&internal)
                        .map(|d| d.retention_hours);
                    if kept.is_ok_and(|k| k != hours)
                        && let Err(e) = s.engine.set_retention_hours(&internal, hours).await
                    {
                        tracing::warn!("video stream {name}: cannot set its retention: {e}");
                    }
                    match s.media.rebuild(&s.engine, &internal).await {
                        Ok(n) => tracing::debug!("video stream {name}: {n} fragments"),
                        Err(e) => {
                            tracing::warn!("video stream {name}: cannot read its fragments: {e}")
                        }
                    }
                }
                let _ = done.send(());
            })
        })?;
        let _ = wait.recv();
        // The image generators of the streams configured for them.
        for v in state.streams.values() {
            if v.image_generation.is_some() {
                crate::generator::start(&shared, &v.name, v.id);
            }
        }
        Ok(VideoService { shared })
    }
}

impl Service for VideoService {
    fn name(&self) -> &'static str {
        "kinesisvideo"
    }

    fn routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = OPERATIONS
            .iter()
            .chain(MEDIA_OPERATIONS)
            .map(|(path, _)| Route::Rest {
                path_prefix: path,
                signing_name: SIGNING_NAME,
                streaming_body: false,
            })
            .collect();
        routes.push(Route::Rest {
            path_prefix: PUT_MEDIA,
            signing_name: SIGNING_NAME,
            streaming_body: true,
        });
        // Players fetch session URLs unsigned: the session token is the credential.
        routes.push(Route::Bearer {
            path_prefix: crate::playback::HLS_PREFIX,
        });
        routes.push(Route::Bearer {
            path_prefix: crate::playback::DASH_PREFIX,
        });
        routes
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    /// The video stream a call names, by name or ARN, in its body or (a
    /// PutMedia) its headers (IAM).
    fn resources(
        &self,
        _operation: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Vec<riffle_engine::http::authz::ResourceRef>, String> {
        let mut named = if parts.uri.path() == PUT_MEDIA {
            Vec::new()
        } else {
            riffle_engine::http::authz::members(
                parts,
                body,
                &["StreamName", "StreamARN", "ResourceARN"],
            )?
        };
        for (header, member) in [
            ("x-amzn-stream-name", "StreamName"),
            ("x-amzn-stream-arn", "StreamARN"),
        ] {
            if let Some(v) = parts.headers.get(header) {
                let v = v.to_str().map_err(|_| format!("{header} is not text"))?;
                named.push((member, v.to_string()));
            }
        }
        let state = self.shared.meta.state();
        Ok(riffle_engine::http::authz::plain(
            named
                .into_iter()
                .map(|(member, v)| match member {
                    // A stream's ARN holds its creation time; one that does
                    // not exist is named with 0.
                    "StreamName" => {
                        let created = state.streams.get(&v).map_or(0, |s| s.created_ms);
                        self.shared.arn(&v, created)
                    }
                    _ => v,
                })
                .collect(),
        ))
    }

    /// The control plane's operations are management events; PutMedia and
    /// the media and archived-media ones data events. Playback segments
    /// (session URLs) are not recorded.
    fn operation<'a>(&self, parts: &'a http::request::Parts) -> Option<Operation<'a>> {
        let path = parts.uri.path();
        let (name, data) = if path == PUT_MEDIA {
            ("PutMedia", true)
        } else if let Some((_, op)) = MEDIA_OPERATIONS.iter().find(|(p, _)| *p == path) {
            (*op, true)
        } else {
            (OPERATIONS.iter().find(|(p, _)| *p == path)?.1, false)
        };
        Some(Operation {
            name,
            data,
            label: None,
        })
    }
}

impl VideoService {
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let path = call.parts.uri.path();
        if path == PUT_MEDIA {
            return match (call.parts.method == http::Method::POST, call.body) {
                (true, RequestBody::Streaming(body)) => {
                    crate::put_media::put_media(&self.shared, &call.parts, body).await
                }
                _ => whole(Refusal::unknown_operation().to_rest_response()),
            };
        }
        if path.starts_with(crate::playback::HLS_PREFIX)
            || path.starts_with(crate::playback::DASH_PREFIX)
        {
            return match call.parts.method {
                http::Method::GET | http::Method::HEAD => {
                    crate::playback::serve(&self.shared, &call.parts).await
                }
                _ => whole(Refusal::unknown_operation().to_rest_response()),
            };
        }
        if let Some((_, op)) = MEDIA_OPERATIONS.iter().find(|(p, _)| *p == path) {
            return self.media(op, &call).await;
        }
        let Some((_, op)) = OPERATIONS.iter().find(|(p, _)| *p == path) else {
            return whole(Refusal::unknown_operation().to_rest_response());
        };
        if call.parts.method != http::Method::POST {
            return whole(Refusal::unknown_operation().to_rest_response());
        }
        let input = match input_of(riffle_aws::model::kinesis_video(), op, &call) {
            Ok(m) => m,
            Err(r) => return whole(r.to_rest_response()),
        };
        let input = Input(&input);
        let s = &self.shared;
        let result = match *op {
            "CreateStream" => streams::create(s, input).await,
            "DescribeStream" => streams::describe(s, input),
            "ListStreams" => streams::list(s, input),
            "DeleteStream" => streams::delete(s, input).await,
            "UpdateStream" => streams::update(s, input).await,
            "UpdateDataRetention" => streams::update_retention(s, input).await,
            "GetDataEndpoint" => streams::data_endpoint(s, input, &call.parts),
            "TagStream" => tags::tag_stream(s, input).await,
            "UntagStream" => tags::untag_stream(s, input).await,
            "ListTagsForStream" => tags::list_for_stream(s, input),
            "TagResource" => tags::tag_resource(s, input).await,
            "UntagResource" => tags::untag_resource(s, input).await,
            "UpdateImageGenerationConfiguration" => {
                crate::generator::update_image_generation(s, input).await
            }
            "DescribeImageGenerationConfiguration" => {
                crate::generator::describe_image_generation(s, input)
            }
            "UpdateNotificationConfiguration" => {
                crate::generator::update_notification(s, input).await
            }
            "DescribeNotificationConfiguration" => {
                crate::generator::describe_notification(s, input)
            }
            _ => tags::list_for_resource(s, input),
        };
        whole(match result {
            Ok(body) => ok(body),
            Err(r) => r.to_rest_response(),
        })
    }
}

impl VideoService {
    /// GetMedia and the archived-media operations.
    async fn media(&self, op: &str, call: &Call) -> Response<HttpBody> {
        if call.parts.method != http::Method::POST {
            return whole(Refusal::unknown_operation().to_rest_response());
        }
        let s = &self.shared;
        if op == "GetMedia" {
            return crate::get_media::get_media(s, call).await;
        }
        let input = match input_of(riffle_aws::model::kinesis_video_archived_media(), op, call) {
            Ok(m) => m,
            Err(r) => return whole(r.to_rest_response()),
        };
        let input = Input(&input);
        match op {
            "ListFragments" => whole(match crate::archived::list_fragments(s, input).await {
                Ok(body) => ok(body),
                Err(r) => r.to_rest_response(),
            }),
            "GetImages" => whole(match crate::images::get_images(s, input).await {
                Ok(body) => ok(body),
                Err(r) => r.to_rest_response(),
            }),
            "GetHLSStreamingSessionURL" | "GetDASHStreamingSessionURL" => {
                let dash = op == "GetDASHStreamingSessionURL";
                whole(
                    match crate::playback::session_url(s, input, &call.parts, dash) {
                        Ok(body) => ok(body),
                        Err(r) => r.to_rest_response(),
                    },
                )
            }
            "GetClip" => crate::clip::get_clip(s, input).await,
            _ => crate::archived::media_for_fragment_list(s, input).await,
        }
    }
}

/// A call's input for `op` of `model`, assembled from the request (REST
/// labels none: every Kinesis Video path is an operation) and checked
/// against the model.
pub(crate) fn input_of(
    model: &riffle_aws::model::ServiceModel,
    op: &str,
    call: &Call,
) -> Result<serde_json::Map<String, Value>, Refusal> {
    riffle_aws::rest::decode_checked(
        model,
        op,
        &BTreeMap::new(),
        call.parts.uri.query(),
        &call.parts.headers,
        call.body.whole(),
        &Rules::NONE,
    )
}

/// A 200 answer with a JSON body.
pub(crate) fn ok(body: Value) -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .expect("a valid response")
}
