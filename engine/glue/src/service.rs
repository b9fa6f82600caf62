//! Glue on the HTTP gateway: `X-Amz-Target: AWSGlue.<Operation>`, AWS JSON
//! 1.1, signed for `glue`. Every input is checked against AWS's model
//! (`riffle_aws::model::glue()`) before an operation runs; the operations are
//! in `ops.rs`. Refusals are answered in Glue's form: its exception names, the
//! message under `Message`.
//!
//! [`GlueService::start`] opens the catalog's metadata log; [`GlueService::catalog`]
//! is the read handle other services (Firehose) are given.

use std::sync::Arc;

use hyper::Response;
use riffle_aws::error::{Refusal, ok_response};
use riffle_aws::input::Input;
use riffle_aws::json::Format;
use riffle_engine::Engine;
use riffle_engine::http::service::{LocalFuture, whole};
use riffle_engine::http::{Call, HttpBody, Route, Service};
use riffle_engine::meta::MetaHandle;
use riffle_protocol::{Error, ErrorCode};
use serde_json::json;

use crate::catalog::GlueCatalog;
use crate::ops;
use crate::state::GlueState;

/// The `X-Amz-Target` prefix of Glue's operations.
pub const TARGET_PREFIX: &str = "AWSGlue.";

/// The operations served; the model's others are answered UnknownOperationException.
pub const OPERATIONS: &[&str] = &[
    "CreateDatabase",
    "GetDatabase",
    "GetDatabases",
    "DeleteDatabase",
    "CreateTable",
    "GetTable",
    "GetTables",
    "UpdateTable",
    "DeleteTable",
    "GetTableVersion",
    "GetTableVersions",
];

/// Whether Glue's model has `operation`: the front door's "known operation"
/// (an empty body for one is SerializationException). Only [`OPERATIONS`] are
/// served; the model's others are answered UnknownOperationException by
/// `dispatch`.
fn known(operation: &str) -> bool {
    riffle_aws::model::glue().operation(operation).is_some()
}

/// How the server runs Glue.
#[derive(Clone, Debug)]
pub struct GlueConfig {
    /// The 12-digit account: the catalog's id.
    pub account: String,
}

/// What every call shares.
pub(crate) struct Shared {
    pub(crate) config: GlueConfig,
    pub(crate) meta: MetaHandle<GlueState>,
}

/// Glue, registered with the gateway by the binary.
#[derive(Clone)]
pub struct GlueService {
    shared: Arc<Shared>,
}

impl GlueService {
    /// Opens the catalog's metadata. Blocks (call it while wiring the server).
    pub fn start(engine: &Engine, config: GlueConfig) -> Result<GlueService, Error> {
        let meta = MetaHandle::<GlueState>::open(engine, "glue")?;
        Ok(GlueService {
            shared: Arc::new(Shared { config, meta }),
        })
    }

    /// The read handle on the catalog (for Firehose's format conversion).
    pub fn catalog(&self) -> GlueCatalog {
        GlueCatalog {
            meta: self.shared.meta.clone(),
            catalog_id: self.shared.config.account.clone(),
        }
    }
}

impl Service for GlueService {
    fn name(&self) -> &'static str {
        "glue"
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route::Target {
            prefix: TARGET_PREFIX,
            signing_name: "glue",
        }]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(self.dispatch(call))
    }

    fn has_operation(&self, operation: &str) -> bool {
        known(operation)
    }
}

impl GlueService {
    async fn dispatch(&self, call: Call) -> Response<HttpBody> {
        let format = Format::of(&call.parts.headers);
        let op = call
            .parts
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .unwrap_or("")
            .to_string();
        if !OPERATIONS.contains(&op.as_str()) {
            return whole(Refusal::unknown_operation().to_response(format));
        }
        let input = match riffle_aws::input::decode_checked(
            riffle_aws::model::glue(),
            format,
            &op,
            call.body.whole(),
            &riffle_aws::model::Rules::NONE,
        ) {
            Ok(m) => m,
            Err(r) => return whole(r.to_response(format)),
        };
        let input = Input(&input);
        let s = &self.shared;
        let result = match op.as_str() {
            "CreateDatabase" => ops::create_database(s, input).await,
            "GetDatabase" => ops::get_database(s, input),
            "GetDatabases" => ops::get_databases(s, input),
            "DeleteDatabase" => ops::delete_database(s, input).await,
            "CreateTable" => ops::create_table(s, input).await,
            "GetTable" => ops::get_table(s, input),
            "GetTables" => ops::get_tables(s, input),
            "UpdateTable" => ops::update_table(s, input).await,
            "DeleteTable" => ops::delete_table(s, input).await,
            "GetTableVersion" => ops::get_table_version(s, input),
            "GetTableVersions" => ops::get_table_versions(s, input),
            _ => Err(Refusal::unknown_operation()),
        };
        whole(match result {
            Ok(v) => ok_response(format, format.encode(&v, &Default::default())),
            Err(r) => glue_response(&r, format),
        })
    }
}

/// Glue's exception for a riffle error.
pub fn refusal(e: Error) -> Refusal {
    let kind = match e.code {
        ErrorCode::ResourceNotFound => "EntityNotFoundException",
        ErrorCode::ResourceInUse => "AlreadyExistsException",
        ErrorCode::InvalidArgument => "InvalidInputException",
        ErrorCode::LimitExceeded => "ResourceNumberLimitExceededException",
        ErrorCode::ConcurrentModification => "ConcurrentModificationException",
        ErrorCode::Internal | ErrorCode::StorageFailed => {
            return Refusal::new(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceException",
                e.message,
            );
        }
        // Not made by Glue's operations; kept as the engine names them.
        ErrorCode::ExpiredIterator
        | ErrorCode::ProvisionedThroughputExceeded
        | ErrorCode::KmsDisabled
        | ErrorCode::KmsNotFound
        | ErrorCode::KmsInvalidState
        | ErrorCode::KmsAccessDenied
        | ErrorCode::AccessDenied => {
            return Refusal::from(e);
        }
    };
    Refusal::client(kind, e.message)
}

/// Glue's own exceptions carry their message as `Message` (the model's
/// member); the gateway-wide ones (validation, serialization, unknown
/// operation) keep the common form.
fn glue_response(r: &Refusal, format: Format) -> hyper::Response<bytes::Bytes> {
    const GLUE_KINDS: &[&str] = &[
        "EntityNotFoundException",
        "AlreadyExistsException",
        "InvalidInputException",
        "ResourceNumberLimitExceededException",
        "ConcurrentModificationException",
        "InternalServiceException",
    ];
    if !GLUE_KINDS.contains(&r.kind.as_str()) {
        return r.to_response(format);
    }
    let body = json!({"__type": r.kind, "Message": r.message});
    let mut resp = ok_response(format, format.encode(&body, &Default::default()));
    *resp.status_mut() = r.status;
    resp.headers_mut().insert(
        "x-amzn-ErrorType",
        hyper::header::HeaderValue::from_str(&r.kind).expect("an ASCII name"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_answered_with_glues_names_and_message_member() {
        let check = |e: Error, status: u16, body: &str| {
            let resp = glue_response(&refusal(e), Format::Json);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(std::str::from_utf8(resp.body()).unwrap(), body);
            let kind: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                resp.headers()["x-amzn-ErrorType"],
                kind["__type"].as_str().unwrap()
            );
        };
        check(
            Error::not_found("Database x not found."),
            400,
            r#"{"Message":"Database x not found.","__type":"EntityNotFoundException"}"#,
        );
        check(
            Error::in_use("Table already exists."),
            400,
            r#"{"Message":"Table already exists.","__type":"AlreadyExistsException"}"#,
        );
        check(
            Error::invalid("bad"),
            400,
            r#"{"Message":"bad","__type":"InvalidInputException"}"#,
        );
        check(
            Error::new(ErrorCode::LimitExceeded, "many"),
            400,
            r#"{"Message":"many","__type":"ResourceNumberLimitExceededException"}"#,
        );
        check(
            Error::new(ErrorCode::ConcurrentModification, "v"),
            400,
            r#"{"Message":"v","__type":"ConcurrentModificationException"}"#,
        );
        check(
            Error::internal("disk"),
            500,
            r#"{"Message":"disk","__type":"InternalServiceException"}"#,
        );
        // The gateway-wide ones keep their form.
        let resp = glue_response(&Refusal::validation("1 validation error"), Format::Json);
        assert_eq!(
            std::str::from_utf8(resp.body()).unwrap(),
            r#"{"__type":"ValidationException","message":"1 validation error"}"#
        );
    }

    #[test]
    fn every_served_operation_is_in_the_model() {
        for op in OPERATIONS {
            assert!(known(op), "{op}");
        }
    }

    #[test]
    fn known_operations_are_the_models_not_only_the_served_ones() {
        for op in ["GetPartitions", "CreateCrawler", "GetTags", "StartJobRun"] {
            assert!(known(op) && !OPERATIONS.contains(&op), "{op}");
        }
        for op in ["", "PutRecord", "getTable", "CreateDeliveryStream"] {
            assert!(!known(op), "{op}");
        }
    }
}
