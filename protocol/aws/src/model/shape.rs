//! The parsed form of a botocore `service-2.json`: shapes with their constraints,
//! structure members, operations and the service metadata. Built once by
//! `ServiceModel::parse` (parse.rs) and read-only afterwards; every lookup a
//! request needs is an index or one hash lookup.

use std::collections::HashMap;

use super::pattern::Pattern;

/// Index of a shape in `ServiceModel::shapes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShapeId(pub(crate) u32);

/// One AWS service model.
#[derive(Debug)]
pub struct ServiceModel {
    pub metadata: Metadata,
    pub(crate) shapes: Vec<Shape>,
    pub(crate) shape_ids: HashMap<String, ShapeId>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) operation_ids: HashMap<String, usize>,
    /// Patterns neither `regex` nor `fancy-regex` could compile: (shape, pattern,
    /// why). Those shapes are checked without their pattern.
    pub(crate) skipped_patterns: Vec<(String, String, String)>,
}

/// The `metadata` object of a model, the parts the gateway routes and signs by.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// `json`, `rest-json`, `smithy-rpc-v2-cbor`, ...
    pub protocol: String,
    pub api_version: String,
    pub endpoint_prefix: String,
    /// `X-Amz-Target` prefix of JSON-protocol services (`Kinesis_20131202`).
    pub target_prefix: Option<String>,
    /// `1.1` for `application/x-amz-json-1.1`.
    pub json_version: Option<String>,
    /// SigV4 service name; botocore omits it when it equals `endpoint_prefix`,
    /// so `signing_name()` falls back to that.
    pub signing_name: Option<String>,
    pub service_id: Option<String>,
}

impl Metadata {
    pub fn signing_name(&self) -> &str {
        self.signing_name
            .as_deref()
            .unwrap_or(&self.endpoint_prefix)
    }
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    /// `None`: the operation takes no input.
    pub input: Option<ShapeId>,
    /// `None`: the operation answers nothing (AWS sends an empty body).
    pub output: Option<ShapeId>,
    pub http: Http,
}

/// The `http` binding of an operation (meaningful for REST protocols; JSON 1.1
/// operations are all `POST /`).
#[derive(Debug, Clone, Default)]
pub struct Http {
    pub method: String,
    /// e.g. `/getMedia` or `/2015-03-31/functions/{FunctionName}/invocations`.
    pub request_uri: String,
}

/// Where a structure member travels (REST protocols); JSON 1.1 members are all
/// in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Body,
    Header,
    /// A map of headers sharing a prefix (`locationName` is the prefix).
    Headers,
    Uri,
    QueryString,
    StatusCode,
}

/// A member of a structure.
#[derive(Debug, Clone)]
pub struct Member {
    /// As in the model (`StreamName`).
    pub name: String,
    pub shape: ShapeId,
    pub required: bool,
    pub location: Location,
    /// The header, URI label or query name when `location` is not `Body`; the
    /// JSON key when it is `Body` and the model renames it.
    pub location_name: Option<String>,
}

impl Member {
    /// The key of this member in a JSON body.
    pub fn json_key(&self) -> &str {
        match (self.location, &self.location_name) {
            (Location::Body, Some(name)) => name,
            _ => &self.name,
        }
    }
}

/// What a shape is.
#[derive(Debug, Clone)]
pub enum ShapeKind {
    Structure {
        members: Vec<Member>,
        /// `document: true`: any JSON value.
        document: bool,
    },
    List {
        member: ShapeId,
    },
    Map {
        key: ShapeId,
        value: ShapeId,
    },
    String,
    Blob {
        /// The payload of a REST operation, not a JSON member.
        streaming: bool,
    },
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    Timestamp {
        /// `timestampFormat: iso8601`: sent as a string, not epoch seconds.
        iso8601: bool,
    },
}

/// A numeric bound as the model states it: compared as a number, shown as the
/// model spells it (`0`, `0.0`, `100000`).
#[derive(Debug, Clone)]
pub struct Bound {
    pub value: f64,
    pub text: String,
}

/// The string values of an enum, in model order (for membership) and in the
/// order AWS lists them in its message (see `render::java_hash_order`).
#[derive(Debug, Clone)]
pub struct EnumValues {
    pub values: Vec<String>,
    /// `Member must satisfy enum value set: [A, B]`.
    pub(crate) message: String,
}

/// A shape and its constraints. `length_*` apply to strings (UTF-16 units, as
/// Java counts), blobs (bytes), lists (elements) and maps (entries); `value_*`
/// to numbers.
#[derive(Debug, Clone)]
pub struct Shape {
    pub name: String,
    pub kind: ShapeKind,
    pub length_min: Option<u64>,
    pub length_max: Option<u64>,
    pub value_min: Option<Bound>,
    pub value_max: Option<Bound>,
    pub pattern: Option<Pattern>,
    pub enum_values: Option<EnumValues>,
}

impl Shape {
    pub fn is_structure(&self) -> bool {
        matches!(self.kind, ShapeKind::Structure { .. })
    }

    /// Members of a structure; empty for other shapes.
    pub fn members(&self) -> &[Member] {
        match &self.kind {
            ShapeKind::Structure { members, .. } => members,
            _ => &[],
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members().iter().find(|m| m.name == name)
    }

    /// Whether the shape itself carries a constraint (a list or map whose
    /// members do is not counted).
    pub fn has_constraints(&self) -> bool {
        self.length_min.is_some()
            || self.length_max.is_some()
            || self.value_min.is_some()
            || self.value_max.is_some()
            || self.pattern.is_some()
            || self.enum_values.is_some()
    }
}

impl ServiceModel {
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shape_ids.get(name).map(|id| self.get(*id))
    }

    pub fn get(&self, id: ShapeId) -> &Shape {
        &self.shapes[id.0 as usize]
    }

    pub fn shapes(&self) -> impl Iterator<Item = &Shape> {
        self.shapes.iter()
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operation_ids.get(name).map(|i| &self.operations[*i])
    }

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.operations.iter()
    }

    /// The input shape of `operation`, if it has one.
    pub fn input(&self, operation: &str) -> Option<&Shape> {
        self.operation(operation)?.input.map(|id| self.get(id))
    }

    /// The shape of `structure`'s member `member` (`("PutRecordsRequestEntry",
    /// "PartitionKey")`): what a hot path asks for its checks.
    pub fn member_shape(&self, structure: &str, member: &str) -> Option<&Shape> {
        let member = self.shape(structure)?.member(member)?;
        Some(self.get(member.shape))
    }

    /// Patterns this model states but that are not checked: (shape, pattern, why).
    pub fn skipped_patterns(&self) -> &[(String, String, String)] {
        &self.skipped_patterns
    }
}
