//! The seam between the native protocol server and services beside Kinesis
//! (Firehose, ...): a service crate depends on the engine, so the engine
//! cannot call it; instead the binary registers the service's [`Extension`]
//! for the api keys it serves ([`Api::FirehosePutRecordBatch`], ...), as it
//! registers the service's `http::Service` with the HTTP gateway.
//!
//! The server still owns everything before and after a call: framing, the
//! frame's bounds and decoding (`riffle_protocol::native`), the connection's
//! in-flight and byte budgets, and the reply's queue. An extension gets the
//! decoded request on the accepting core and encodes one response through
//! [`Answer`], or fails with an `Error` (sent as an error frame). Requests for
//! an api no extension serves are answered with InvalidArgument.

use std::sync::Arc;

use riffle_protocol::Error;
use riffle_protocol::native::{Api, Request, Response, encode_response};

pub use crate::http::service::LocalFuture;

/// The api keys only an extension serves; the engine serves all the others:
/// Firehose's (riffle-firehose) and consumer groups' (the groups crate).
pub const EXTENSION_APIS: [Api; 6] = [
    Api::FirehosePutRecordBatch,
    Api::FirehoseDescribe,
    Api::GroupHeartbeat,
    Api::GroupCheckpoint,
    Api::GroupDescribe,
    Api::GroupLeave,
];

/// A service's native operations. Shared by every core (`Send + Sync`); each
/// call runs on the core that accepted its connection.
pub trait Extension: Send + Sync + 'static {
    /// For logs and errors.
    fn name(&self) -> &'static str;

    /// The api keys it serves (each one of [`EXTENSION_APIS`]).
    fn apis(&self) -> Vec<Api>;

    /// Answers one request (of one of `apis`): `answer.respond(...)` once, or
    /// an error.
    fn call<'a>(
        &'a self,
        request: &'a Request<'a>,
        answer: Answer<'a>,
    ) -> LocalFuture<'a, Result<(), Error>>;
}

/// Where an extension writes its response frame.
pub struct Answer<'o> {
    api: Api,
    request_id: u64,
    out: &'o mut Vec<u8>,
}

impl<'o> Answer<'o> {
    pub(super) fn new(api: Api, request_id: u64, out: &'o mut Vec<u8>) -> Answer<'o> {
        Answer {
            api,
            request_id,
            out,
        }
    }

    /// Encodes the response to the request.
    pub fn respond(self, response: &Response<'_>) {
        encode_response(self.out, self.api, self.request_id, response);
    }
}

/// The extensions of a server, by api key.
#[derive(Clone, Default)]
pub struct Extensions {
    by_api: Vec<(Api, Arc<dyn Extension>)>,
}

impl Extensions {
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// Registers an extension. Panics when it claims an api the engine serves
    /// or another extension's: two handlers for one api is a wiring bug.
    pub fn register(&mut self, extension: Arc<dyn Extension>) -> &mut Extensions {
        for api in extension.apis() {
            assert!(
                EXTENSION_APIS.contains(&api),
                "extension {} claims {api:?}, which the engine serves",
                extension.name()
            );
            if let Some((_, other)) = self.by_api.iter().find(|(a, _)| *a == api) {
                panic!(
                    "extensions {} and {} both claim {api:?}",
                    other.name(),
                    extension.name()
                );
            }
            self.by_api.push((api, extension.clone()));
        }
        self
    }

    /// The extension serving `api`.
    pub fn get(&self, api: Api) -> Option<&dyn Extension> {
        self.by_api
            .iter()
            .find(|(a, _)| *a == api)
            .map(|(_, e)| &**e)
    }
}
