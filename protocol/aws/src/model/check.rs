//! Member constraints, checked one value at a time: the pieces both the
//! `serde_json::Value` validator (validation.rs) and hot paths with their own
//! parsed structs (PutRecords' borrowed records) use, so both write AWS's
//! exact fragments. A check that passes allocates nothing: paths are a chain of
//! borrowed segments on the stack and are written out only into a message.

use std::fmt::{self, Write as _};

use super::InputError;
use super::render::{write_lower_first, write_structure};
use super::shape::{ServiceModel, Shape, ShapeKind};

/// How many violations AWS reports in one ValidationException: coral stops
/// collecting at 10 (kinesalite's putRecords.js recorded 501 invalid records
/// answered with the list's own violation and the first nine records').
pub const VIOLATIONS_REPORTED_MAX: usize = 10;

/// Where a value sits in the input, as AWS writes it: lowerCamel member names
/// joined by `.`, list elements as `records.1.member` (1-based), map values as
/// `tags.<key>.member`.
#[derive(Clone, Copy, Debug)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Segment<'a> {
    Root,
    /// A member name as the model spells it (`PartitionKey`).
    Member(&'a str),
    /// A 0-based list index.
    Index(usize),
    Key(&'a str),
}

impl Path<'static> {
    /// The input structure itself.
    pub const ROOT: Path<'static> = Path {
        parent: None,
        segment: Segment::Root,
    };
}

impl<'a> Path<'a> {
    /// The member `name` (as the model spells it) of this structure.
    pub fn member(&'a self, name: &'a str) -> Path<'a> {
        self.child(Segment::Member(name))
    }

    /// Element `index` (0-based; written 1-based) of this list.
    pub fn index(&'a self, index: usize) -> Path<'a> {
        self.child(Segment::Index(index))
    }

    /// The value under `key` of this map.
    pub fn key(&'a self, key: &'a str) -> Path<'a> {
        self.child(Segment::Key(key))
    }

    fn child(&'a self, segment: Segment<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            segment,
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parent_written = match self.parent {
            Some(parent) if !matches!(parent.segment, Segment::Root) => {
                parent.fmt(f)?;
                true
            }
            _ => false,
        };
        if parent_written {
            f.write_char('.')?;
        }
        match self.segment {
            Segment::Root => Ok(()),
            Segment::Member(name) => write_lower_first(f, name),
            Segment::Index(i) => write!(f, "{}.member", i + 1),
            Segment::Key(k) => write!(f, "{k}.member"),
        }
    }
}

/// The violations found in one input, in the order found, at most
/// `VIOLATIONS_REPORTED_MAX`. Empty until the first violation: no allocation.
#[derive(Debug, Default)]
pub struct Violations {
    count: usize,
    /// `A; B; C`.
    joined: String,
}

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many are reported (at most `VIOLATIONS_REPORTED_MAX`).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether more would be dropped.
    pub fn is_full(&self) -> bool {
        self.count >= VIOLATIONS_REPORTED_MAX
    }

    /// `Value null at '<path>' failed to satisfy constraint: Member must not be null`.
    pub fn not_null(&mut self, path: &Path<'_>) {
        self.push(path, None::<&str>, format_args!("Member must not be null"));
    }

    /// Adds `Value '<value>' at '<path>' failed to satisfy constraint:
    /// <constraint>`; `value: None` writes `Value null`.
    pub fn push(
        &mut self,
        path: &Path<'_>,
        value: Option<impl fmt::Display>,
        constraint: fmt::Arguments<'_>,
    ) {
        if self.is_full() {
            return;
        }
        if self.count > 0 {
            self.joined.push_str("; ");
        }
        self.count += 1;
        // Writing into a String cannot fail.
        let _ = match value {
            Some(v) => write!(
                self.joined,
                "Value '{v}' at '{path}' failed to satisfy constraint: {constraint}"
            ),
            None => write!(
                self.joined,
                "Value null at '{path}' failed to satisfy constraint: {constraint}"
            ),
        };
    }

    /// The ValidationException message: `1 validation error detected: A` or
    /// `N validation errors detected: A; B`.
    pub fn message(&self) -> Option<String> {
        match self.count {
            0 => None,
            1 => Some(format!("1 validation error detected: {}", self.joined)),
            n => Some(format!("{n} validation errors detected: {}", self.joined)),
        }
    }

    pub fn into_result(self) -> Result<(), InputError> {
        match self.message() {
            None => Ok(()),
            Some(m) => Err(InputError::Validation(m)),
        }
    }
}

/// A string's length as Java counts it (UTF-16 code units).
pub fn java_length(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// The constraints of a string shape, checked against a `&str`.
#[derive(Clone, Copy, Debug)]
pub struct StringCheck<'m> {
    shape: &'m Shape,
    /// Whether the model's pattern applies (a service may check a member's
    /// value itself: `Rules::unpatterned`).
    pattern: bool,
}

impl<'m> StringCheck<'m> {
    /// `None` unless `shape` is a string.
    pub fn new(shape: &'m Shape) -> Option<StringCheck<'m>> {
        matches!(shape.kind, ShapeKind::String).then_some(StringCheck {
            shape,
            pattern: true,
        })
    }

    /// The same checks but the pattern's.
    pub fn without_pattern(mut self) -> StringCheck<'m> {
        self.pattern = false;
        self
    }

    /// Whether `value` satisfies every constraint.
    pub fn is_valid(&self, value: &str) -> bool {
        let s = self.shape;
        let length_ok = || {
            let len = java_length(value) as u64;
            s.length_min.is_none_or(|min| len >= min) && s.length_max.is_none_or(|max| len <= max)
        };
        length_ok()
            && (!self.pattern || s.pattern.as_ref().is_none_or(|p| p.is_match(value)))
            && s.enum_values
                .as_ref()
                .is_none_or(|e| e.values.iter().any(|v| v == value))
    }

    /// Appends a violation per constraint `value` breaks, in the order
    /// pattern, minimum length, maximum length, enum.
    pub fn check(&self, value: &str, path: &Path<'_>, out: &mut Violations) {
        if self.is_valid(value) {
            return;
        }
        let s = self.shape;
        if let Some(p) = s.pattern.as_ref().filter(|_| self.pattern)
            && !p.is_match(value)
        {
            out.push(
                path,
                Some(value),
                format_args!(
                    "Member must satisfy regular expression pattern: {}",
                    p.as_str()
                ),
            );
        }
        length_violations(s, java_length(value) as u64, path, Some(value), out);
        if let Some(e) = &s.enum_values
            && !e.values.iter().any(|v| v == value)
        {
            out.push(path, Some(value), format_args!("{}", e.message));
        }
    }
}

/// The length constraints of a blob shape, checked against a decoded length.
#[derive(Clone, Copy, Debug)]
pub struct BlobCheck<'m> {
    shape: &'m Shape,
}

impl<'m> BlobCheck<'m> {
    /// `None` unless `shape` is a blob.
    pub fn new(shape: &'m Shape) -> Option<BlobCheck<'m>> {
        matches!(shape.kind, ShapeKind::Blob { .. }).then_some(BlobCheck { shape })
    }

    pub fn is_valid(&self, len: usize) -> bool {
        let len = len as u64;
        self.shape.length_min.is_none_or(|min| len >= min)
            && self.shape.length_max.is_none_or(|max| len <= max)
    }

    /// Appends a violation if `len` decoded bytes break a length constraint;
    /// the value shows as AWS shows it, `java.nio.HeapByteBuffer[pos=0 lim=N cap=N]`.
    pub fn check(&self, len: usize, path: &Path<'_>, out: &mut Violations) {
        if self.is_valid(len) {
            return;
        }
        length_violations(self.shape, len as u64, path, Some(HeapByteBuffer(len)), out);
    }
}

/// A blob as coral's message shows it.
pub(crate) struct HeapByteBuffer(pub usize);

impl fmt::Display for HeapByteBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0;
        write!(f, "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]")
    }
}

/// The length constraints of a list of structures (PutRecords' `Records`),
/// checked against an element count; the list shows as AWS shows it, each
/// element as coral's `toString` of the structure.
#[derive(Clone, Debug)]
pub struct StructureListCheck<'m> {
    shape: &'m Shape,
    /// `com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310`.
    element: String,
}

impl<'m> StructureListCheck<'m> {
    /// `None` unless `shape` (of `model`) is a list of structures.
    pub fn new(model: &'m ServiceModel, shape: &'m Shape) -> Option<StructureListCheck<'m>> {
        let ShapeKind::List { member } = shape.kind else {
            return None;
        };
        let element = model.get(member);
        if !element.is_structure() {
            return None;
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = write_structure(&mut text, model, &element.name);
        Some(StructureListCheck {
            shape,
            element: text,
        })
    }

    pub fn is_valid(&self, len: usize) -> bool {
        let len = len as u64;
        self.shape.length_min.is_none_or(|min| len >= min)
            && self.shape.length_max.is_none_or(|max| len <= max)
    }

    /// Appends a violation if a list of `len` elements breaks a length constraint.
    pub fn check(&self, len: usize, path: &Path<'_>, out: &mut Violations) {
        if !self.is_valid(len) {
            let shown = Repeated {
                text: &self.element,
                count: len,
            };
            length_violations(self.shape, len as u64, path, Some(shown), out);
        }
    }
}

/// `[e, e, e]`.
struct Repeated<'a> {
    text: &'a str,
    count: usize,
}

impl fmt::Display for Repeated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for i in 0..self.count {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(self.text)?;
        }
        f.write_char(']')
    }
}

/// The value range of an integer or long shape, checked against an `i64`.
#[derive(Clone, Copy, Debug)]
pub struct IntegerCheck<'m> {
    shape: &'m Shape,
}

impl<'m> IntegerCheck<'m> {
    /// `None` unless `shape` is an integer or a long.
    pub fn new(shape: &'m Shape) -> Option<IntegerCheck<'m>> {
        matches!(shape.kind, ShapeKind::Integer | ShapeKind::Long).then_some(IntegerCheck { shape })
    }

    pub fn is_valid(&self, value: i64) -> bool {
        number_in_range(self.shape, value as f64)
    }

    pub fn check(&self, value: i64, path: &Path<'_>, out: &mut Violations) {
        if !self.is_valid(value) {
            range_violations(self.shape, value as f64, path, value, out);
        }
    }
}

pub(crate) fn number_in_range(shape: &Shape, value: f64) -> bool {
    shape.value_min.as_ref().is_none_or(|b| value >= b.value)
        && shape.value_max.as_ref().is_none_or(|b| value <= b.value)
}

/// `Member must have value greater/less than or equal to N` for the bound(s)
/// `value` breaks; `shown` is how the value is written.
pub(crate) fn range_violations(
    shape: &Shape,
    value: f64,
    path: &Path<'_>,
    shown: impl fmt::Display,
    out: &mut Violations,
) {
    if let Some(min) = &shape.value_min
        && value < min.value
    {
        out.push(
            path,
            Some(&shown),
            format_args!(
                "Member must have value greater than or equal to {}",
                min.text
            ),
        );
    }
    if let Some(max) = &shape.value_max
        && value > max.value
    {
        out.push(
            path,
            Some(&shown),
            format_args!("Member must have value less than or equal to {}", max.text),
        );
    }
}

/// `Member must have length greater/less than or equal to N` for the
/// bound(s) `len` breaks.
pub(crate) fn length_violations(
    shape: &Shape,
    len: u64,
    path: &Path<'_>,
    shown: Option<impl fmt::Display>,
    out: &mut Violations,
) {
    if let Some(min) = shape.length_min
        && len < min
    {
        out.push(
            path,
            shown.as_ref(),
            format_args!("Member must have length greater than or equal to {min}"),
        );
    }
    if let Some(max) = shape.length_max
        && len > max
    {
        out.push(
            path,
            shown.as_ref(),
            format_args!("Member must have length less than or equal to {max}"),
        );
    }
}

/// All constraints of a scalar shape as AWS lists them when a list element or
/// map entry breaks one: `Member must have length less than or equal to 128,
/// Member must have length greater than or equal to 1` (maximum first, as
/// AWS's removeTagsFromStream answer shows).
pub(crate) fn describe_constraints(shape: &Shape) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(max) = shape.length_max {
        parts.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    if let Some(min) = shape.length_min {
        parts.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = &shape.value_max {
        parts.push(format!(
            "Member must have value less than or equal to {}",
            max.text
        ));
    }
    if let Some(min) = &shape.value_min {
        parts.push(format!(
            "Member must have value greater than or equal to {}",
            min.text
        ));
    }
    if let Some(p) = &shape.pattern {
        parts.push(format!(
            "Member must satisfy regular expression pattern: {}",
            p.as_str()
        ));
    }
    if let Some(e) = &shape.enum_values {
        parts.push(e.message.clone());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kinesis;

    fn check(run: impl FnOnce(&mut Violations), expected: Option<&str>) {
        let mut out = Violations::new();
        run(&mut out);
        assert_eq!(out.message().as_deref(), expected);
    }

    #[test]
    fn hot_path_checks() {
        let m = kinesis();
        let pk = StringCheck::new(
            m.member_shape("PutRecordsRequestEntry", "PartitionKey")
                .unwrap(),
        )
        .unwrap();
        let hash_key = StringCheck::new(
            m.member_shape("PutRecordsRequestEntry", "ExplicitHashKey")
                .unwrap(),
        )
        .unwrap();
        let data =
            BlobCheck::new(m.member_shape("PutRecordsRequestEntry", "Data").unwrap()).unwrap();
        let limit = IntegerCheck::new(m.member_shape("GetRecordsInput", "Limit").unwrap()).unwrap();
        let records = Path::ROOT.member("Records");
        check(
            |out| {
                for i in 0..3 {
                    let entry = records.index(i);
                    pk.check("key", &entry.member("PartitionKey"), out);
                    hash_key.check("12", &entry.member("ExplicitHashKey"), out);
                    data.check(10, &entry.member("Data"), out);
                }
                limit.check(10000, &Path::ROOT.member("Limit"), out);
            },
            None,
        );
        check(
            |out| {
                let entry = records.index(1);
                pk.check("", &entry.member("PartitionKey"), out);
                hash_key.check("01", &entry.member("ExplicitHashKey"), out);
                data.check(10 * 1024 * 1024 + 1, &entry.member("Data"), out);
                limit.check(0, &Path::ROOT.member("Limit"), out);
            },
            Some(
                "4 validation errors detected: \
                 Value '' at 'records.2.member.partitionKey' failed to satisfy constraint: \
                 Member must have length greater than or equal to 1; \
                 Value '01' at 'records.2.member.explicitHashKey' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: ^(0|([1-9]\\d{0,38}))$; \
                 Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' at 'records.2.member.data' \
                 failed to satisfy constraint: Member must have length less than or equal to 10485760; \
                 Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ),
        );
    }

    #[test]
    fn structure_lists() {
        let m = kinesis();
        let records =
            StructureListCheck::new(m, m.member_shape("PutRecordsInput", "Records").unwrap())
                .unwrap();
        let path = Path::ROOT.member("Records");
        check(|out| records.check(500, &path, out), None);
        check(
            |out| records.check(0, &path, out),
            Some(
                "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
        );
        let entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
        check(
            |out| records.check(501, &path, out),
            Some(&format!(
                "1 validation error detected: Value '[{}]' at 'records' failed to satisfy constraint: \
                 Member must have length less than or equal to 500",
                vec![entry; 501].join(", ")
            )),
        );
        assert!(StructureListCheck::new(m, m.shape("TagKeyList").unwrap()).is_none());
    }

    #[test]
    fn caps_at_ten() {
        let m = kinesis();
        let pk = StringCheck::new(m.shape("PartitionKey").unwrap()).unwrap();
        let records = Path::ROOT.member("Records");
        let mut out = Violations::new();
        for i in 0..20 {
            pk.check("", &records.index(i), &mut out);
        }
        assert_eq!(out.len(), VIOLATIONS_REPORTED_MAX);
        let message = out.message().unwrap();
        assert!(message.starts_with("10 validation errors detected: "));
        assert!(message.ends_with("at 'records.10.member' failed to satisfy constraint: Member must have length greater than or equal to 1"));
    }

    #[test]
    fn paths() {
        let tags = Path::ROOT.member("Tags");
        let value = tags.key("env");
        assert_eq!(tags.to_string(), "tags");
        assert_eq!(
            value.member("KMSKeyArn").to_string(),
            "tags.env.member.kMSKeyArn"
        );
        assert_eq!(Path::ROOT.to_string(), "");
    }
}
