//! The second pass over an input: the model's constraints (required members,
//! lengths, ranges, patterns, enums), collected over the whole input into one
//! ValidationException as AWS's front end writes it. Members are visited in
//! model order, each member's own constraints before its children's; AWS lists
//! its violations in an order of its own, which clients do not rely on (the
//! kinesalite suite compares them as a set).
//!
//! A list or map whose elements are scalars is reported once, at the list, with
//! every constraint of the element shape (`Member must satisfy constraint:
//! [...]`, `Map keys must ...`, `Map value must ...`); elements that are
//! structures, lists or maps are visited one by one (`records.1.member.data`).

use std::fmt;

use serde_json::{Map, Value};

use super::check::{
    BlobCheck, Path, StringCheck, Violations, describe_constraints, length_violations,
    number_in_range, range_violations,
};
use super::render::{truncating_i64, write_java_double, write_value};
use super::serialization::base64_decoded_len;
use super::shape::{ServiceModel, Shape, ShapeId, ShapeKind};
use super::{InputError, serialization};

/// Required members a service adds to its model, for where AWS's front end is
/// stricter than the published model: Kinesis made `StreamName` optional when
/// it added `StreamARN`, yet AWS answers `Value null at 'streamName' failed to
/// satisfy constraint: Member must not be null` when neither is given. Each
/// rule names a structure shape (or `"*"`: every structure with that member)
/// and a member that must be present unless one of `unless_present` is.
///
/// ```
/// use riffle_aws::model::{Required, Rules};
/// const KINESIS: Rules<'static> = Rules {
///     required: &[
///         Required { shape: "*", member: "StreamName", unless_present: &["StreamARN"] },
///         Required { shape: "PutRecordsRequestEntry", member: "PartitionKey", unless_present: &[] },
///     ],
///     unpatterned: &[],
/// };
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules<'a> {
    pub required: &'a [Required<'a>],
    /// Members whose model pattern the service does not apply, because it
    /// serves more than AWS does and checks the value itself (Firehose's
    /// `ClusterJDBCURL` names any PostgreSQL server, not only Redshift's
    /// host names): `(structure shape, member)`.
    pub unpatterned: &'a [(&'a str, &'a str)],
}

/// See `Rules`.
#[derive(Clone, Copy, Debug)]
pub struct Required<'a> {
    /// A structure shape's name, or `"*"` for every structure.
    pub shape: &'a str,
    /// The member, as the model spells it.
    pub member: &'a str,
    /// The rule does not apply when any of these members is present.
    pub unless_present: &'a [&'a str],
}

impl Rules<'static> {
    /// The model alone.
    pub const NONE: Rules<'static> = Rules {
        required: &[],
        unpatterned: &[],
    };
}

impl Rules<'_> {
    /// Whether a rule makes `member` of `shape` required in `object`.
    fn requires(&self, shape: &Shape, member: &str, object: Option<&Map<String, Value>>) -> bool {
        self.required.iter().any(|r| {
            r.member == member
                && (r.shape == "*" || r.shape == shape.name)
                && !r.unless_present.iter().any(|other| {
                    let key = shape.member(other).map_or(*other, |m| m.json_key());
                    object
                        .and_then(|o| o.get(key))
                        .is_some_and(|v| !v.is_null())
                })
        })
    }
}

impl ServiceModel {
    /// Checks `operation`'s input as AWS's JSON 1.1 front end does: types first
    /// (the first mismatch is a SerializationException), then every constraint
    /// (a ValidationException listing up to 10 violations).
    ///
    /// For REST operations `input` is the body object; members bound to a
    /// header, the URI or the query are checked only if the caller puts them
    /// into `input`, already typed.
    pub fn check_input(&self, operation: &str, input: &Value) -> Result<(), InputError> {
        self.check_input_with(operation, input, &Rules::NONE)
    }

    /// `check_input` with the service's own required members added.
    pub fn check_input_with(
        &self,
        operation: &str,
        input: &Value,
        rules: &Rules<'_>,
    ) -> Result<(), InputError> {
        let op = self
            .operation(operation)
            .ok_or_else(|| InputError::UnknownOperation(operation.to_string()))?;
        let Some(id) = op.input else {
            return Ok(());
        };
        serialization::check(self, id, input).map_err(InputError::Serialization)?;
        let mut validator = Validator {
            model: self,
            rules,
            out: Violations::new(),
        };
        validator.structure(id, input.as_object(), &Path::ROOT);
        validator.out.into_result()
    }
}

struct Validator<'m, 'r> {
    model: &'m ServiceModel,
    rules: &'r Rules<'r>,
    out: Violations,
}

impl Validator<'_, '_> {
    fn structure(&mut self, id: ShapeId, object: Option<&Map<String, Value>>, path: &Path<'_>) {
        let shape = self.model.get(id);
        for member in shape.members() {
            if self.out.is_full() {
                return;
            }
            let value = object
                .and_then(|o| o.get(member.json_key()))
                .filter(|v| !v.is_null());
            let member_path = path.member(&member.name);
            let unpatterned = self
                .rules
                .unpatterned
                .iter()
                .any(|(s, m)| *s == shape.name && *m == member.name);
            match value {
                Some(Value::String(v)) if unpatterned => {
                    if let Some(check) = StringCheck::new(self.model.get(member.shape)) {
                        check
                            .without_pattern()
                            .check(v, &member_path, &mut self.out);
                    }
                }
                Some(v) => self.value(member.shape, v, &member_path),
                None => {
                    if member.required || self.rules.requires(shape, &member.name, object) {
                        self.out.not_null(&member_path);
                    }
                }
            }
        }
    }

    /// `value` has passed the type checks of serialization.rs.
    fn value(&mut self, id: ShapeId, value: &Value, path: &Path<'_>) {
        let model = self.model;
        let shape = model.get(id);
        match (&shape.kind, value) {
            (ShapeKind::String, Value::String(s)) => {
                if let Some(check) = StringCheck::new(shape) {
                    check.check(s, path, &mut self.out);
                }
            }
            (ShapeKind::Blob { .. }, Value::String(s)) => {
                if let Some(check) = BlobCheck::new(shape) {
                    check.check(base64_decoded_len(s).unwrap_or(0), path, &mut self.out);
                }
            }
            (
                ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double,
                Value::Number(_),
            ) if !scalar_valid(shape, value) => {
                let (number, shown) = number(shape, value);
                range_violations(shape, number, path, shown, &mut self.out);
            }
            (
                ShapeKind::Structure {
                    document: false, ..
                },
                Value::Object(o),
            ) => {
                self.structure(id, Some(o), path);
            }
            (ShapeKind::List { member }, Value::Array(items)) => {
                self.length(shape, id, value, items.len(), path);
                let element = model.get(*member);
                if is_container(element) {
                    for (i, item) in items.iter().enumerate().filter(|(_, v)| !v.is_null()) {
                        self.value(*member, item, &path.index(i));
                    }
                } else if items.iter().any(|v| !scalar_valid(element, v)) {
                    let shown = Shown { model, id, value };
                    let constraint = describe_constraints(element);
                    self.out.push(
                        path,
                        Some(shown),
                        format_args!("Member must satisfy constraint: [{constraint}]"),
                    );
                }
            }
            (
                ShapeKind::Map {
                    key,
                    value: value_shape,
                },
                Value::Object(entries),
            ) => {
                self.length(shape, id, value, entries.len(), path);
                let shown = Shown { model, id, value };
                let key_shape = model.get(*key);
                // Map keys are strings.
                let key_check = StringCheck::new(key_shape);
                if key_check.is_some_and(|c| entries.keys().any(|k| !c.is_valid(k))) {
                    let constraint = describe_constraints(key_shape);
                    self.out.push(
                        path,
                        Some(&shown),
                        format_args!("Map keys must satisfy constraint: [{constraint}]"),
                    );
                }
                let element = model.get(*value_shape);
                if is_container(element) {
                    for (k, v) in entries.iter().filter(|(_, v)| !v.is_null()) {
                        self.value(*value_shape, v, &path.key(k));
                    }
                } else if entries.values().any(|v| !scalar_valid(element, v)) {
                    let constraint = describe_constraints(element);
                    self.out.push(
                        path,
                        Some(&shown),
                        format_args!("Map value must satisfy constraint: [{constraint}]"),
                    );
                }
            }
            _ => {}
        }
    }

    /// The length constraints of a list or map with `len` elements.
    fn length(&mut self, shape: &Shape, id: ShapeId, value: &Value, len: usize, path: &Path<'_>) {
        let len = len as u64;
        let short = shape.length_min.is_some_and(|min| len < min);
        let long = shape.length_max.is_some_and(|max| len > max);
        if short || long {
            let shown = Shown {
                model: self.model,
                id,
                value,
            };
            length_violations(shape, len, path, Some(shown), &mut self.out);
        }
    }
}

fn is_container(shape: &Shape) -> bool {
    matches!(
        shape.kind,
        ShapeKind::Structure { .. } | ShapeKind::List { .. } | ShapeKind::Map { .. }
    )
}

/// Whether a scalar list element or map key/value satisfies its shape; null
/// and values of other types (left to the type pass) count as satisfying.
fn scalar_valid(shape: &Shape, value: &Value) -> bool {
    match (&shape.kind, value) {
        (ShapeKind::String, Value::String(s)) => {
            StringCheck::new(shape).is_none_or(|c| c.is_valid(s))
        }
        (ShapeKind::Blob { .. }, Value::String(s)) => {
            BlobCheck::new(shape).is_none_or(|c| c.is_valid(base64_decoded_len(s).unwrap_or(0)))
        }
        (
            ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double,
            Value::Number(_),
        ) => number_in_range(shape, number(shape, value).0),
        _ => true,
    }
}

/// A number as coral converts it for `shape`, and how its message shows it.
fn number(shape: &Shape, value: &Value) -> (f64, ShownNumber) {
    let Value::Number(n) = value else {
        return (0.0, ShownNumber::Integer(0));
    };
    match shape.kind {
        ShapeKind::Integer => {
            let v = truncating_i64(n, i32::MIN.into(), i32::MAX.into());
            (v as f64, ShownNumber::Integer(v))
        }
        ShapeKind::Long => {
            let v = truncating_i64(n, i64::MIN, i64::MAX);
            (v as f64, ShownNumber::Integer(v))
        }
        _ => {
            let v = n.as_f64().unwrap_or(0.0);
            (v, ShownNumber::Double(v))
        }
    }
}

enum ShownNumber {
    Integer(i64),
    Double(f64),
}

impl fmt::Display for ShownNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShownNumber::Integer(v) => write!(f, "{v}"),
            ShownNumber::Double(v) => write_java_double(f, *v),
        }
    }
}

/// A list or map value written as AWS shows it, only when a message needs it.
struct Shown<'a> {
    model: &'a ServiceModel,
    id: ShapeId,
    value: &'a Value,
}

/// The most of a value a message shows: a list of millions of elements must
/// not make a message of hundreds of megabytes (AWS shows whole lists; this
/// is room for PutRecords' 501 records, 33 KB, twice). Longer values end in `...`.
pub(crate) const SHOWN_CHARS_MAX: usize = 64 * 1024;

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bounded = Bounded {
            f,
            left: SHOWN_CHARS_MAX,
            cut: false,
        };
        match write_value(&mut bounded, self.model, self.id, self.value) {
            Err(_) if bounded.cut => bounded.f.write_str("..."),
            r => r,
        }
    }
}

/// Writes at most `left` bytes (on a character boundary), then fails with `cut` set.
struct Bounded<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl fmt::Write for Bounded<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.left {
            self.left -= s.len();
            return self.f.write_str(s);
        }
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.f.write_str(&s[..end])?;
        self.left = 0;
        self.cut = true;
        Err(fmt::Error)
    }
}
