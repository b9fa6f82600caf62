//! `ServiceModel::parse`: reads a botocore `service-2.json` into the shapes of
//! shape.rs. Member order is kept as the model writes it (AWS reports
//! violations member by member), so the file is read through serde structs
//! rather than a `serde_json::Value`, whose maps are sorted. Documentation,
//! examples and endpoint rules are ignored.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Number;

use super::pattern::Pattern;
use super::render::enum_message;
use super::shape::{
    Bound, EnumValues, Http, Location, Member, Metadata, Operation, ServiceModel, Shape, ShapeId,
    ShapeKind,
};

/// A JSON object read as its entries, in document order.
struct Ordered<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, T>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[derive(Deserialize)]
struct RawModel {
    metadata: RawMetadata,
    #[serde(default = "no_entries")]
    operations: Ordered<RawOperation>,
    shapes: Ordered<RawShape>,
}

fn no_entries<T>() -> Ordered<T> {
    Ordered(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetadata {
    protocol: String,
    api_version: String,
    endpoint_prefix: String,
    target_prefix: Option<String>,
    json_version: Option<String>,
    signing_name: Option<String>,
    service_id: Option<String>,
}

#[derive(Deserialize)]
struct RawOperation {
    name: String,
    input: Option<RawRef>,
    output: Option<RawRef>,
    #[serde(default)]
    http: RawHttp,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawHttp {
    #[serde(default)]
    method: String,
    #[serde(default)]
    request_uri: String,
}

#[derive(Deserialize)]
struct RawRef {
    shape: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    members: Option<Ordered<RawMember>>,
    #[serde(default)]
    required: Vec<String>,
    member: Option<RawRef>,
    key: Option<RawRef>,
    value: Option<RawRef>,
    min: Option<Number>,
    max: Option<Number>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    #[serde(default)]
    document: bool,
    #[serde(default)]
    streaming: bool,
    timestamp_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMember {
    shape: String,
    location: Option<String>,
    location_name: Option<String>,
}

impl ServiceModel {
    /// Parses a botocore `service-2.json`. Fails on malformed JSON, a shape
    /// type this crate does not know, or a reference to a missing shape. A
    /// pattern that cannot be compiled is not a failure: it is listed in
    /// `skipped_patterns()` and its shape is checked without it.
    pub fn parse(json: &str) -> Result<ServiceModel, String> {
        let raw: RawModel =
            serde_json::from_str(json).map_err(|e| format!("service model: {e}"))?;
        let shape_ids: HashMap<String, ShapeId> = raw
            .shapes
            .0
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), ShapeId(i as u32)))
            .collect();
        assert!(shape_ids.len() <= u32::MAX as usize);
        let resolve = |name: &str, from: &str| {
            shape_ids
                .get(name)
                .copied()
                .ok_or_else(|| format!("shape {from} refers to missing shape {name}"))
        };

        let mut shapes = Vec::with_capacity(raw.shapes.0.len());
        let mut skipped_patterns = Vec::new();
        for (name, raw_shape) in raw.shapes.0 {
            let kind = shape_kind(&name, &raw_shape, &resolve)?;
            let numeric = matches!(
                kind,
                ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double
            );
            let pattern = match raw_shape.pattern {
                None => None,
                Some(p) => match Pattern::compile(&p) {
                    Ok(compiled) => Some(compiled),
                    Err(why) => {
                        skipped_patterns.push((name.clone(), p, why));
                        None
                    }
                },
            };
            let (length_min, length_max, value_min, value_max) = if numeric {
                (
                    None,
                    None,
                    raw_shape.min.map(bound),
                    raw_shape.max.map(bound),
                )
            } else {
                (
                    raw_shape.min.as_ref().map(length).transpose()?,
                    raw_shape.max.as_ref().map(length).transpose()?,
                    None,
                    None,
                )
            };
            let enum_values = raw_shape.enum_values.map(|values| EnumValues {
                message: enum_message(&values),
                values,
            });
            shapes.push(Shape {
                name,
                kind,
                length_min,
                length_max,
                value_min,
                value_max,
                pattern,
                enum_values,
            });
        }

        let mut operations = Vec::with_capacity(raw.operations.0.len());
        let mut operation_ids = HashMap::new();
        for (key, op) in raw.operations.0 {
            let input = op.input.map(|r| resolve(&r.shape, &key)).transpose()?;
            if let Some(id) = input
                && !matches!(shapes[id.0 as usize].kind, ShapeKind::Structure { .. })
            {
                return Err(format!("operation {key}: input is not a structure"));
            }
            let output = op.output.map(|r| resolve(&r.shape, &key)).transpose()?;
            operation_ids.insert(op.name.clone(), operations.len());
            operations.push(Operation {
                name: op.name,
                input,
                output,
                http: Http {
                    method: op.http.method,
                    request_uri: op.http.request_uri,
                },
            });
        }

        let m = raw.metadata;
        Ok(ServiceModel {
            metadata: Metadata {
                protocol: m.protocol,
                api_version: m.api_version,
                endpoint_prefix: m.endpoint_prefix,
                target_prefix: m.target_prefix,
                json_version: m.json_version,
                signing_name: m.signing_name,
                service_id: m.service_id,
            },
            shapes,
            shape_ids,
            operations,
            operation_ids,
            skipped_patterns,
        })
    }
}

fn shape_kind(
    name: &str,
    raw: &RawShape,
    resolve: &impl Fn(&str, &str) -> Result<ShapeId, String>,
) -> Result<ShapeKind, String> {
    let target = |r: &Option<RawRef>, what: &str| match r {
        Some(r) => resolve(&r.shape, name),
        None => Err(format!("shape {name} has no {what}")),
    };
    Ok(match raw.kind.as_str() {
        "structure" => {
            let mut members = Vec::new();
            for (member_name, m) in raw.members.iter().flat_map(|m| &m.0) {
                let location = match m.location.as_deref() {
                    None => Location::Body,
                    Some("header") => Location::Header,
                    Some("headers") => Location::Headers,
                    Some("uri") => Location::Uri,
                    Some("querystring") => Location::QueryString,
                    Some("statusCode") => Location::StatusCode,
                    Some(other) => return Err(format!("{name}.{member_name}: location {other}")),
                };
                members.push(Member {
                    name: member_name.clone(),
                    shape: resolve(&m.shape, name)?,
                    required: raw.required.iter().any(|r| r == member_name),
                    location,
                    location_name: m.location_name.clone(),
                });
            }
            ShapeKind::Structure {
                members,
                document: raw.document,
            }
        }
        "list" => ShapeKind::List {
            member: target(&raw.member, "member")?,
        },
        "map" => ShapeKind::Map {
            key: target(&raw.key, "key")?,
            value: target(&raw.value, "value")?,
        },
        "string" => ShapeKind::String,
        "blob" => ShapeKind::Blob {
            streaming: raw.streaming,
        },
        "boolean" => ShapeKind::Boolean,
        "integer" => ShapeKind::Integer,
        "long" => ShapeKind::Long,
        "float" => ShapeKind::Float,
        "double" => ShapeKind::Double,
        "timestamp" => ShapeKind::Timestamp {
            iso8601: raw.timestamp_format.as_deref() == Some("iso8601"),
        },
        other => return Err(format!("shape {name}: unknown type {other}")),
    })
}

fn bound(n: Number) -> Bound {
    Bound {
        value: n.as_f64().unwrap_or(0.0),
        text: n.to_string(),
    }
}

fn length(n: &Number) -> Result<u64, String> {
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or_else(|| format!("bad length bound {n}"))
}
