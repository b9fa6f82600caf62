//! AWS's published service models (botocore's `service-2.json`, vendored in
//! `protocol/aws/models/`) and the member validation derived from them, with
//! the exact messages of AWS's JSON 1.1 front end.
//!
//! - `shape`: the parsed model (shapes, members, constraints, operations);
//! - `parse`: `ServiceModel::parse` from botocore JSON;
//! - `pattern`: Java `pattern` constraints, translated and compiled once;
//! - `serialization`: the type pass (SerializationException);
//! - `validation`: the constraint pass over a `serde_json::Value`
//!   (ValidationException), and `Rules` a service adds to its model;
//! - `check`: per-value checks (`StringCheck`, `BlobCheck`, `IntegerCheck`),
//!   paths and the violation list, shared by the validator and by hot paths
//!   that parse into their own structs;
//! - `render`: how AWS's Java front end prints values, numbers and enum sets;
//! - `embedded`: the models compiled in (`kinesis()`, `firehose()`, ...).
//!
//! API boundary: pure functions of the model and the input; no I/O, no clock.

mod check;
mod embedded;
mod parse;
mod pattern;
pub(crate) mod render;
mod serialization;
mod shape;
mod validation;

#[cfg(test)]
mod tests;

use std::fmt;

pub use check::{
    BlobCheck, IntegerCheck, Path, StringCheck, StructureListCheck, VIOLATIONS_REPORTED_MAX,
    Violations, java_length,
};
pub use embedded::{
    ModelFn, all, firehose, glue, kinesis, kinesis_analytics, kinesis_video,
    kinesis_video_archived_media, kinesis_video_media, lambda, monitoring,
};
pub use pattern::Pattern;
pub use serialization::base64_decoded_len;
pub use shape::{
    Bound, EnumValues, Http, Location, Member, Metadata, Operation, ServiceModel, Shape, ShapeId,
    ShapeKind,
};
pub use validation::{Required, Rules};

/// Why an input was refused, in AWS's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// A member's JSON value cannot be of its shape's type: the first one found.
    Serialization(String),
    /// Constraints broken: `N validation error(s) detected: A; B`.
    Validation(String),
    /// The model has no such operation (AWS answers UnknownOperationException
    /// without a message); holds the name asked for.
    UnknownOperation(String),
}

impl InputError {
    /// AWS's exception name (`__type`).
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::Serialization(_) => "SerializationException",
            InputError::Validation(_) => "ValidationException",
            InputError::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// The message AWS sends (empty for an unknown operation).
    pub fn message(&self) -> &str {
        match self {
            InputError::Serialization(m) | InputError::Validation(m) => m,
            InputError::UnknownOperation(_) => "",
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownOperation(op) => write!(f, "UnknownOperationException: {op}"),
            other => write!(f, "{}: {}", other.kind(), other.message()),
        }
    }
}

impl std::error::Error for InputError {}

impl Shape {
    /// The string checks of this shape, for a hot path.
    pub fn string_check(&self) -> Option<StringCheck<'_>> {
        StringCheck::new(self)
    }

    /// The blob length checks of this shape, for a hot path.
    pub fn blob_check(&self) -> Option<BlobCheck<'_>> {
        BlobCheck::new(self)
    }

    /// The length checks of this list of structures, for a hot path.
    pub fn structure_list_check<'m>(
        &'m self,
        model: &'m ServiceModel,
    ) -> Option<StructureListCheck<'m>> {
        StructureListCheck::new(model, self)
    }

    /// The value range of this integer or long shape, for a hot path.
    pub fn integer_check(&self) -> Option<IntegerCheck<'_>> {
        IntegerCheck::new(self)
    }
}
