//! DiscoverInputSchema's inference: sample records in, an `InputSchema`
//! (format, columns, types) and `ParsedInputRecords` out
//! (docs/analytics-design.md §1.7). Pure: the caller reads the records
//! (a stream's sample, an S3 object as one record, a preprocessor's output)
//! and answers the result; nothing here touches the runtime.
//!
//! The rules, and where each comes from:
//! - Format: JSON when every record is one or more JSON objects
//!   (whitespace-separated, so an NDJSON object is one record); otherwise
//!   CSV. Columns of JSON are the leaves of the objects in first-seen order,
//!   named by their key and mapped by the JSONPath to them (`$.a.b`; a key
//!   that is not letters, digits and `_` is written `$['a.b']`); an array is
//!   one VARCHAR column `$.a[0:]` holding its JSON text (design §2.1).
//!   A top-level array or scalar is not JSON here (**Riffle**).
//! - CSV: row delimiter `\r\n` if any record has it, else `\n` ([DG]
//!   `sch-dis-ref.md` answers `"\r\n"`); column delimiter the first of
//!   `,` `|` tab `;` that splits every row into the same count > 1. The
//!   first row is a header when all its fields are text and some column
//!   below it is not (the [DG] example); it then names the columns and is
//!   left out of the types. No quoting is interpreted (the API has none).
//! - Types: integers `INTEGER` (`BIGINT` past i32), fractions `REAL`,
//!   `true`/`false` `BOOLEAN`, `yyyy-MM-dd HH:mm:ss[.f]` `TIMESTAMP`, other
//!   text `VARCHAR(n)`, n the smallest power of two ≥ the longest value and
//!   ≥ 4 (reproduces every size in [DG] and the demo; the rule is
//!   **unverified**). Mixed values widen: INTEGER+BIGINT → BIGINT,
//!   INTEGER+REAL → REAL, BIGINT or DOUBLE with any number → DOUBLE (a REAL
//!   cannot hold a BIGINT exactly), anything else mixed → VARCHAR. Nulls,
//!   missing fields and empty CSV fields decide nothing; a column that only
//!   ever held them is `VARCHAR(4)` (the sizing rule at length 0;
//!   **Riffle**). JSON strings are text unless they are timestamps (JSON
//!   has numbers and booleans of its own); an integer beyond i64 is text.
//! - Names: [`column_name`] ([DG] `sch-dis.md`), then a repeated name gets
//!   `_2`, `_3`, … (the first smallest not taken by any column; **Riffle**).
//! - `ParsedInputRecords`: every row (a CSV header too) as text, `null`
//!   where the value would not coerce to its column's type ([DG]'s header
//!   row shows `null` under its INTEGER columns).
//!
//! Bounds: the first [`SAMPLE_RECORDS_MAX`] records, the first
//! [`SAMPLE_RECORD_BYTES_MAX`] of each (cut back to its last `\n`), the
//! first [`SAMPLE_ROWS_MAX`] rows, at most [`COLUMNS_MAX`] columns. No input
//! panics.
//!
//! [DG]: AWS's Kinesis Data Analytics for SQL developer guide.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::config::{
    CsvMapping, JsonMapping, MappingParameters, RecordColumn, RecordFormat, SourceSchema,
};
use crate::schema::SqlType;

/// Records looked at; AWS reads "random samples" of unstated size ([DG]
/// `sch-dis.md`); 100 is Riffle's (design §1.7).
pub const SAMPLE_RECORDS_MAX: usize = 100;
/// Bytes of one record looked at: a Kinesis record's maximum size. An S3
/// object is one record, so only its first MiB is sampled (**Riffle**).
pub const SAMPLE_RECORD_BYTES_MAX: usize = 1 << 20;
/// Rows inferred from and answered in `ParsedInputRecords` (an S3 object
/// may hold many rows; **Riffle**).
pub const SAMPLE_ROWS_MAX: usize = 100;
/// `RecordColumns` holds 1 to 1000 entries (the API model).
pub const COLUMNS_MAX: usize = 1000;
/// A discovered column name is at most this long ([DG] `sch-dis.md`).
pub const NAME_CHARS_MAX: usize = 100;
/// The smallest discovered VARCHAR ([DG]: `AK` and `Coal` give `VARCHAR(4)`).
pub const VARCHAR_LEN_MIN: u32 = 4;
/// The largest discovered VARCHAR: the sqlref's CHAR bound; longer values
/// are truncated by the decoder (**Riffle**).
pub const VARCHAR_LEN_MAX: u32 = 65_535;

/// UnableToDetectSchemaException's message when the sample is empty
/// (**unverified** wording; design §1.7).
pub const NO_DATA: &str = "No data was found in the source to discover a schema.";

/// What discovery found: the schema and the sample's rows as parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovered {
    /// `InputSchema`.
    pub schema: SourceSchema,
    /// `ParsedInputRecords`: one list per row, one entry per column.
    pub parsed: Vec<Vec<Option<String>>>,
}

/// Infers a schema from sample records, or says why none could be
/// (UnableToDetectSchemaException's message).
pub fn discover(records: &[&[u8]]) -> Result<Discovered, String> {
    let samples: Vec<&[u8]> = records
        .iter()
        .take(SAMPLE_RECORDS_MAX)
        .map(|r| considered(r))
        .filter(|r| !r.iter().all(u8::is_ascii_whitespace))
        .collect();
    if samples.is_empty() {
        return Err(NO_DATA.into());
    }
    match json_rows(&samples) {
        Some(rows) => discover_json(&rows),
        None => discover_csv(&samples),
    }
}

/// The part of a record looked at: all of it, or its first
/// [`SAMPLE_RECORD_BYTES_MAX`] bytes cut back to the last `\n` so no row is
/// half there.
fn considered(record: &[u8]) -> &[u8] {
    if record.len() <= SAMPLE_RECORD_BYTES_MAX {
        return record;
    }
    let head = &record[..SAMPLE_RECORD_BYTES_MAX];
    match head.iter().rposition(|b| *b == b'\n') {
        Some(end) => &head[..end],
        None => head,
    }
}

/// The name discovery gives a column whose source name is `raw` at 0-based
/// position `index` ([DG] `sch-dis.md`): kept, unless (a) it is a reserved
/// word (case-insensitive; `USER` → `COL_USER`, `year` → `COL_year`),
/// (b) it has characters other than ASCII letters, digits and `_`, which
/// are removed (`USER@DOMAIN` → `COL_USERDOMAIN`), (c) it starts with a
/// digit, or (d) it is longer than [`NAME_CHARS_MAX`]: then it is `COL_` and
/// the cleaned name, cut to [`NAME_CHARS_MAX`] (**unverified** cut). Nothing
/// left gives `COL_<index>` (`@@` → `COL_0`).
pub fn column_name(raw: &str, index: usize) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if cleaned.is_empty() {
        return format!("COL_{index}");
    }
    let renamed = cleaned.len() != raw.len()
        || cleaned.starts_with(|c: char| c.is_ascii_digit())
        || is_reserved(&cleaned)
        || cleaned.len() > NAME_CHARS_MAX;
    if !renamed {
        return cleaned;
    }
    let mut name = format!("COL_{cleaned}");
    // ASCII only, so any byte index is a char boundary.
    name.truncate(NAME_CHARS_MAX);
    name
}

/// Whether `word` is reserved (compared case-insensitively).
pub fn is_reserved(word: &str) -> bool {
    RESERVED_WORDS
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

/// SQL:2011's reserved words (ISO/IEC 9075-2:2011 §5.2 <reserved word>;
/// `END-EXEC` left out: a cleaned name never has `-`) plus the streaming
/// words of KDA's dialect. **Unverified** against SQLstream's own list;
/// [DG]'s examples (`TIMESTAMP`, `USER`, `VALUES`, `YEAR`, `month`) are in it.
/// Sorted, upper case (a test holds it so).
const RESERVED_WORDS: &[&str] = &[
    "ABS",
    "ALL",
    "ALLOCATE",
    "ALTER",
    "AND",
    "ANY",
    "ARE",
    "ARRAY",
    "ARRAY_AGG",
    "ARRAY_MAX_CARDINALITY",
    "AS",
    "ASENSITIVE",
    "ASYMMETRIC",
    "AT",
    "ATOMIC",
    "AUTHORIZATION",
    "AVG",
    "BEGIN",
    "BEGIN_FRAME",
    "BEGIN_PARTITION",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BLOB",
    "BOOLEAN",
    "BOTH",
    "BY",
    "CALL",
    "CALLED",
    "CARDINALITY",
    "CASCADED",
    "CASE",
    "CAST",
    "CEIL",
    "CEILING",
    "CHAR",
    "CHARACTER",
    "CHARACTER_LENGTH",
    "CHAR_LENGTH",
    "CHECK",
    "CLOB",
    "CLOSE",
    "COALESCE",
    "COLLATE",
    "COLLECT",
    "COLUMN",
    "COMMIT",
    "CONDITION",
    "CONNECT",
    "CONSTRAINT",
    "CONTAINS",
    "CONVERT",
    "CORR",
    "CORRESPONDING",
    "COUNT",
    "COVAR_POP",
    "COVAR_SAMP",
    "CREATE",
    "CROSS",
    "CUBE",
    "CUME_DIST",
    "CURRENT",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_DEFAULT_TRANSFORM_GROUP",
    "CURRENT_PATH",
    "CURRENT_ROLE",
    "CURRENT_ROW",
    "CURRENT_SCHEMA",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_TRANSFORM_GROUP_FOR_TYPE",
    "CURRENT_USER",
    "CURSOR",
    "CYCLE",
    "DATE",
    "DAY",
    "DEALLOCATE",
    "DEC",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DELETE",
    "DENSE_RANK",
    "DEREF",
    "DESCRIBE",
    "DETERMINISTIC",
    "DISCONNECT",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "DYNAMIC",
    "EACH",
    "ELEMENT",
    "ELSE",
    "END",
    "END_FRAME",
    "END_PARTITION",
    "EQUALS",
    "ESCAPE",
    "EVERY",
    "EXCEPT",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXP",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FILTER",
    "FIRST_VALUE",
    "FLOAT",
    "FLOOR",
    "FOR",
    "FOREIGN",
    "FRAME_ROW",
    "FREE",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUSION",
    "GET",
    "GLOBAL",
    "GRANT",
    "GROUP",
    "GROUPING",
    "GROUPS",
    "HAVING",
    "HOLD",
    "HOUR",
    "IDENTITY",
    "IN",
    "INDICATOR",
    "INNER",
    "INOUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERSECTION",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "LAG",
    "LANGUAGE",
    "LARGE",
    "LAST_VALUE",
    "LATERAL",
    "LEAD",
    "LEADING",
    "LEFT",
    "LIKE",
    "LIKE_REGEX",
    "LN",
    "LOCAL",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "LOWER",
    "MATCH",
    "MAX",
    "MEMBER",
    "MERGE",
    "METHOD",
    "MIN",
    "MINUTE",
    "MOD",
    "MODIFIES",
    "MODULE",
    "MONTH",
    "MULTISET",
    "NATIONAL",
    "NATURAL",
    "NCHAR",
    "NCLOB",
    "NEW",
    "NO",
    "NONE",
    "NORMALIZE",
    "NOT",
    "NTH_VALUE",
    "NTILE",
    "NULL",
    "NULLIF",
    "NUMERIC",
    "OCCURRENCES_REGEX",
    "OCTET_LENGTH",
    "OF",
    "OFFSET",
    "OLD",
    "ON",
    "ONLY",
    "OPEN",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OVER",
    "OVERLAPS",
    "OVERLAY",
    "PARAMETER",
    "PARTITION",
    "PERCENT",
    "PERCENTILE_CONT",
    "PERCENTILE_DISC",
    "PERCENT_RANK",
    "PERIOD",
    "PORTION",
    "POSITION",
    "POSITION_REGEX",
    "POWER",
    "PRECEDES",
    "PRECISION",
    "PREPARE",
    "PRIMARY",
    "PROCEDURE",
    "PUMP",
    "RANGE",
    "RANK",
    "READS",
    "REAL",
    "RECURSIVE",
    "REF",
    "REFERENCES",
    "REFERENCING",
    "REGR_AVGX",
    "REGR_AVGY",
    "REGR_COUNT",
    "REGR_INTERCEPT",
    "REGR_R2",
    "REGR_SLOPE",
    "REGR_SXX",
    "REGR_SXY",
    "REGR_SYY",
    "RELEASE",
    "RESULT",
    "RETURN",
    "RETURNS",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROLLUP",
    "ROW",
    "ROWS",
    "ROWTIME",
    "ROW_NUMBER",
    "SAVEPOINT",
    "SCOPE",
    "SCROLL",
    "SEARCH",
    "SECOND",
    "SELECT",
    "SENSITIVE",
    "SESSION_USER",
    "SET",
    "SIMILAR",
    "SMALLINT",
    "SOME",
    "SPECIFIC",
    "SPECIFICTYPE",
    "SQL",
    "SQLEXCEPTION",
    "SQLSTATE",
    "SQLWARNING",
    "SQRT",
    "START",
    "STATIC",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STEP",
    "STREAM",
    "SUBMULTISET",
    "SUBSTRING",
    "SUBSTRING_REGEX",
    "SUCCEEDS",
    "SUM",
    "SYMMETRIC",
    "SYSTEM",
    "SYSTEM_TIME",
    "SYSTEM_USER",
    "TABLE",
    "TABLESAMPLE",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE",
    "TO",
    "TRAILING",
    "TRANSLATE",
    "TRANSLATE_REGEX",
    "TRANSLATION",
    "TREAT",
    "TRIGGER",
    "TRIM",
    "TRIM_ARRAY",
    "TRUE",
    "TRUNCATE",
    "UESCAPE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UNNEST",
    "UPDATE",
    "UPPER",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VALUE_OF",
    "VARBINARY",
    "VARCHAR",
    "VARYING",
    "VAR_POP",
    "VAR_SAMP",
    "VERSIONING",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WIDTH_BUCKET",
    "WINDOW",
    "WITH",
    "WITHIN",
    "WITHOUT",
    "YEAR",
];

/// Makes the names unique: a name already taken gets `_2`, `_3`, … (cut
/// so the result stays within [`NAME_CHARS_MAX`]), never one that another
/// column has as its own name.
fn unique_names(names: Vec<String>) -> Vec<String> {
    let own: HashSet<String> = names.iter().cloned().collect();
    let mut used: HashSet<String> = HashSet::with_capacity(names.len());
    names
        .into_iter()
        .map(|name| {
            if used.insert(name.clone()) {
                return name;
            }
            let mut n = 2usize;
            loop {
                let suffix = format!("_{n}");
                let mut candidate = name.clone();
                // Names are ASCII (see `column_name`), so this cut is safe.
                candidate.truncate(NAME_CHARS_MAX - suffix.len());
                candidate.push_str(&suffix);
                if !own.contains(&candidate) && used.insert(candidate.clone()) {
                    return candidate;
                }
                n += 1;
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Types

/// What one value looks like; a column's kind is its values' kinds widened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    BigInt,
    Real,
    Double,
    Boolean,
    Timestamp,
    Text,
}

/// The narrowest kind holding both.
fn widen(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        _ if a == b => a,
        (Integer, BigInt) | (BigInt, Integer) => BigInt,
        (Integer, Real) | (Real, Integer) => Real,
        (Integer | BigInt | Real | Double, Integer | BigInt | Real | Double) => Double,
        _ => Text,
    }
}

/// Whether a value of kind `value` coerces into a column of kind `column`.
fn fits(value: Kind, column: Kind) -> bool {
    widen(value, column) == column
}

fn integer_kind(n: i64) -> Kind {
    if i32::try_from(n).is_ok() {
        Kind::Integer
    } else {
        Kind::BigInt
    }
}

/// A CSV field's kind; `None` for the empty field (decides nothing).
fn text_kind(field: &str) -> Option<Kind> {
    if field.is_empty() {
        return None;
    }
    Some(if let Ok(n) = field.parse::<i64>() {
        integer_kind(n)
    } else if is_fraction(field) {
        Kind::Real
    } else if field.eq_ignore_ascii_case("true") || field.eq_ignore_ascii_case("false") {
        Kind::Boolean
    } else if is_timestamp(field) {
        Kind::Timestamp
    } else {
        Kind::Text
    })
}

/// `[+-]digits.digits[e[+-]digits]` with digits on at least one side of
/// the point, or digits with an exponent; finite as an f64.
fn is_fraction(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    let point = b.get(i) == Some(&b'.');
    if point {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    let mut exponent = false;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
        exponent = true;
    }
    i == b.len() && (point || exponent) && s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// `yyyy-MM-dd HH:mm:ss` with an optional `.` and 1 to 9 fraction digits,
/// a real date and time: the decoder's TIMESTAMP reading, in the one form
/// discovery takes as a timestamp (a space, no zone).
fn is_timestamp(s: &str) -> bool {
    s.len() >= 19
        && s.as_bytes()[10] == b' '
        && !s.ends_with('Z')
        && crate::decode::parse_timestamp(s).is_some()
}

/// One column's values so far.
#[derive(Clone, Debug, Default)]
struct Column {
    kind: Option<Kind>,
    chars_max: usize,
}

impl Column {
    fn see(&mut self, kind: Kind, text: &str) {
        self.kind = Some(match self.kind {
            None => kind,
            Some(k) => widen(k, kind),
        });
        self.chars_max = self.chars_max.max(text.chars().count());
    }

    fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Text)
    }

    fn sql_type(&self) -> SqlType {
        match self.kind() {
            Kind::Integer => SqlType::Integer,
            Kind::BigInt => SqlType::BigInt,
            Kind::Real => SqlType::Real,
            Kind::Double => SqlType::Double,
            Kind::Boolean => SqlType::Boolean,
            Kind::Timestamp => SqlType::Timestamp,
            Kind::Text => SqlType::Varchar {
                len: varchar_len(self.chars_max),
            },
        }
    }
}

/// The smallest power of two ≥ `chars` and ≥ [`VARCHAR_LEN_MIN`], at most
/// [`VARCHAR_LEN_MAX`].
fn varchar_len(chars: usize) -> u32 {
    let len = u32::try_from(chars)
        .ok()
        .and_then(u32::checked_next_power_of_two)
        .unwrap_or(VARCHAR_LEN_MAX);
    len.clamp(VARCHAR_LEN_MIN, VARCHAR_LEN_MAX)
}

/// A value as `ParsedInputRecords` shows it under a column of kind
/// `column`: its text, or `None` when it would not coerce. An empty CSV
/// field (`kind` `None`) shows only under text.
fn shown(kind: Option<Kind>, text: &str, column: Kind) -> Option<String> {
    let visible = match kind {
        Some(k) => fits(k, column),
        None => column == Kind::Text,
    };
    visible.then(|| text.to_string())
}

fn too_many_columns(count: usize) -> String {
    format!(
        "The records have {count} columns; a schema holds at most {COLUMNS_MAX}, so none was discovered."
    )
}

fn schema_of(format: RecordFormat, columns: Vec<RecordColumn>) -> SourceSchema {
    SourceSchema {
        format,
        encoding: Some("UTF-8".into()),
        columns,
    }
}

// ---------------------------------------------------------------------------
// JSON

/// A JSON value with its objects' members in source order (serde_json's
/// `Value` sorts them unless a feature this workspace does not set is on).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

impl Json {
    /// The member `key`; the last one when it repeats (as serde_json reads).
    fn member(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Compact JSON text, members in source order.
    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => write_json_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

fn write_json_string(s: &str, out: &mut String) {
    // Serializing a str cannot fail; the fallback keeps this total anyway.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// The rows when every sample is one or more JSON objects, else `None`.
/// Every sample is checked; only the first [`SAMPLE_ROWS_MAX`] rows kept.
fn json_rows(samples: &[&[u8]]) -> Option<Vec<Json>> {
    let mut rows = Vec::new();
    for sample in samples {
        for value in serde_json::Deserializer::from_slice(sample).into_iter::<Json>() {
            let value = value.ok()?;
            if !matches!(value, Json::Object(_)) {
                return None;
            }
            if rows.len() < SAMPLE_ROWS_MAX {
                rows.push(value);
            }
        }
    }
    Some(rows)
}

/// A JSON column: the keys leading to it and whether it held an array.
#[derive(Clone, Debug)]
struct Leaf {
    keys: Vec<String>,
    array: bool,
    non_null: bool,
}

impl Leaf {
    /// The JSONPath from the row: `$.a.b`, `$['a.b']`, `$.a[0:]`.
    fn mapping(&self) -> String {
        let mut path = String::from("$");
        for key in &self.keys {
            let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if plain {
                path.push('.');
                path.push_str(key);
            } else {
                path.push_str("['");
                for c in key.chars() {
                    if c == '\'' || c == '\\' {
                        path.push('\\');
                    }
                    path.push(c);
                }
                path.push_str("']");
            }
        }
        if self.array {
            path.push_str("[0:]");
        }
        path
    }
}

/// The leaves of the rows in first-seen order. A path seen as an object
/// and otherwise only as null is not a leaf (its members are).
fn json_leaves(rows: &[Json]) -> Result<Vec<Leaf>, String> {
    struct Walk {
        leaves: Vec<Leaf>,
        index: HashMap<Vec<String>, usize>,
        objects: HashSet<Vec<String>>,
    }
    impl Walk {
        fn object(&mut self, members: &[(String, Json)], keys: &mut Vec<String>) {
            for (key, value) in members {
                if self.leaves.len() > COLUMNS_MAX {
                    return;
                }
                keys.push(key.clone());
                match value {
                    Json::Object(inner) if !inner.is_empty() => {
                        self.objects.insert(keys.clone());
                        self.object(inner, keys);
                    }
                    Json::Object(_) => {}
                    _ => {
                        let at = match self.index.get(keys.as_slice()) {
                            Some(at) => *at,
                            None => {
                                self.index.insert(keys.clone(), self.leaves.len());
                                self.leaves.push(Leaf {
                                    keys: keys.clone(),
                                    array: false,
                                    non_null: false,
                                });
                                self.leaves.len() - 1
                            }
                        };
                        let leaf = &mut self.leaves[at];
                        leaf.array |= matches!(value, Json::Array(_));
                        leaf.non_null |= !matches!(value, Json::Null);
                    }
                }
                keys.pop();
            }
        }
    }
    let mut walk = Walk {
        leaves: Vec::new(),
        index: HashMap::new(),
        objects: HashSet::new(),
    };
    for row in rows {
        if let Json::Object(members) = row {
            walk.object(members, &mut Vec::new());
        }
    }
    let Walk {
        leaves, objects, ..
    } = walk;
    let leaves: Vec<Leaf> = leaves
        .into_iter()
        .filter(|l| l.non_null || !objects.contains(&l.keys))
        .collect();
    if leaves.len() > COLUMNS_MAX {
        return Err(too_many_columns(leaves.len()));
    }
    if leaves.is_empty() {
        return Err("The JSON records have no fields to make columns of.".into());
    }
    Ok(leaves)
}

/// A JSON value's kind and text under a leaf; `None` for null or missing.
fn json_value(value: Option<&Json>, leaf: &Leaf) -> Option<(Kind, String)> {
    let value = value?;
    let kind = match value {
        Json::Null => return None,
        _ if leaf.array => Kind::Text,
        Json::Bool(_) => Kind::Boolean,
        Json::Number(n) => match n.as_i64() {
            Some(i) => integer_kind(i),
            None if n.is_f64() => Kind::Real,
            None => Kind::Text,
        },
        Json::String(s) if is_timestamp(s) => return Some((Kind::Timestamp, s.clone())),
        Json::String(s) => return Some((Kind::Text, s.clone())),
        Json::Array(_) | Json::Object(_) => Kind::Text,
    };
    Some((kind, value.text()))
}

fn lookup<'a>(row: &'a Json, keys: &[String]) -> Option<&'a Json> {
    keys.iter().try_fold(row, |at, key| at.member(key))
}

fn discover_json(rows: &[Json]) -> Result<Discovered, String> {
    let leaves = json_leaves(rows)?;
    let values: Vec<Vec<Option<(Kind, String)>>> = rows
        .iter()
        .map(|row| {
            leaves
                .iter()
                .map(|leaf| json_value(lookup(row, &leaf.keys), leaf))
                .collect()
        })
        .collect();
    let mut columns = vec![Column::default(); leaves.len()];
    for row in &values {
        for (column, value) in columns.iter_mut().zip(row) {
            if let Some((kind, text)) = value {
                column.see(*kind, text);
            }
        }
    }
    let names = unique_names(
        leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| column_name(leaf.keys.last().map_or("", String::as_str), i))
            .collect(),
    );
    let parsed = values
        .iter()
        .map(|row| {
            row.iter()
                .zip(&columns)
                .map(|(value, column)| {
                    value
                        .as_ref()
                        .and_then(|(kind, text)| shown(Some(*kind), text, column.kind()))
                })
                .collect()
        })
        .collect();
    let record_columns = names
        .into_iter()
        .zip(&leaves)
        .zip(&columns)
        .map(|((name, leaf), column)| RecordColumn {
            name,
            mapping: Some(leaf.mapping()),
            sql_type: column.sql_type().to_string(),
        })
        .collect();
    let format = RecordFormat {
        kind: "JSON".into(),
        mapping: Some(MappingParameters {
            json: Some(JsonMapping {
                row_path: "$".into(),
            }),
            csv: None,
        }),
    };
    Ok(Discovered {
        schema: schema_of(format, record_columns),
        parsed,
    })
}

// ---------------------------------------------------------------------------
// CSV

/// Column delimiters tried, in order (**unverified** list; design §1.7).
const COLUMN_DELIMITERS: [&str; 4] = [",", "|", "\t", ";"];

/// A record's text; a record cut at [`SAMPLE_RECORD_BYTES_MAX`] without a
/// newline may end inside a character, which is dropped.
fn record_text(sample: &[u8]) -> Option<&str> {
    match std::str::from_utf8(sample) {
        Ok(text) => Some(text),
        Err(e) if e.error_len().is_none() && sample.len() >= SAMPLE_RECORD_BYTES_MAX => {
            std::str::from_utf8(&sample[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

fn discover_csv(samples: &[&[u8]]) -> Result<Discovered, String> {
    let texts: Vec<&str> = samples
        .iter()
        .map(|s| record_text(s))
        .collect::<Option<_>>()
        .ok_or(
            "The records are neither JSON objects nor UTF-8 text, so no schema was discovered.",
        )?;
    let row_delimiter = if texts.iter().any(|t| t.contains("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    let rows: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.split(row_delimiter))
        .filter(|row| !row.is_empty())
        .take(SAMPLE_ROWS_MAX)
        .collect();
    let Some(first) = rows.first() else {
        return Err(NO_DATA.into());
    };
    let found = COLUMN_DELIMITERS.into_iter().find_map(|d| {
        let count = first.split(d).count();
        (count > 1 && rows.iter().all(|row| row.split(d).count() == count)).then_some((d, count))
    });
    let Some((column_delimiter, count)) = found else {
        return Err("The records are neither JSON objects nor rows that one of ',', '|', tab or ';' \
                    splits into the same number of columns (more than one), so no schema was discovered."
            .into());
    };
    if count > COLUMNS_MAX {
        return Err(too_many_columns(count));
    }
    let fields: Vec<Vec<(&str, Option<Kind>)>> = rows
        .iter()
        .map(|row| {
            row.split(column_delimiter)
                .map(|f| (f, text_kind(f)))
                .collect()
        })
        .collect();
    let infer = |rows: &[Vec<(&str, Option<Kind>)>]| {
        let mut columns = vec![Column::default(); count];
        for row in rows {
            for (column, (text, kind)) in columns.iter_mut().zip(row) {
                if let Some(kind) = kind {
                    column.see(*kind, text);
                }
            }
        }
        columns
    };
    let below = infer(fields.get(1..).unwrap_or_default());
    let header = fields.len() > 1
        && fields[0].iter().all(|(_, kind)| *kind == Some(Kind::Text))
        && below
            .iter()
            .any(|c| c.kind.is_some_and(|k| k != Kind::Text));
    let (columns, names) = if header {
        let names = fields[0]
            .iter()
            .enumerate()
            .map(|(i, (text, _))| column_name(text, i))
            .collect();
        (below, names)
    } else {
        (
            infer(&fields),
            (0..count).map(|i| format!("COL_{i}")).collect(),
        )
    };
    let parsed = fields
        .iter()
        .map(|row| {
            row.iter()
                .zip(&columns)
                .map(|((text, kind), column)| shown(*kind, text, column.kind()))
                .collect()
        })
        .collect();
    let record_columns = unique_names(names)
        .into_iter()
        .zip(&columns)
        .map(|(name, column)| RecordColumn {
            name,
            mapping: None,
            sql_type: column.sql_type().to_string(),
        })
        .collect();
    let format = RecordFormat {
        kind: "CSV".into(),
        mapping: Some(MappingParameters {
            json: None,
            csv: Some(CsvMapping {
                row_delimiter: row_delimiter.into(),
                column_delimiter: column_delimiter.into(),
            }),
        }),
    };
    Ok(Discovered {
        schema: schema_of(format, record_columns),
        parsed,
    })
}

#[cfg(test)]
mod tests {
    use riffle_store::testkit::Rng;
    use serde_json::{Value, json};

    use super::*;

    fn found(records: &[&str]) -> Discovered {
        let bytes: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
        match discover(&bytes) {
            Ok(d) => d,
            Err(e) => panic!("no schema for {records:?}: {e}"),
        }
    }

    fn schema_json(d: &Discovered) -> Value {
        serde_json::to_value(&d.schema).expect("a schema serializes")
    }

    fn parsed_json(d: &Discovered) -> Value {
        serde_json::to_value(&d.parsed).expect("rows serialize")
    }

    /// Columns as (Name, Mapping, SqlType) for short assertions.
    fn columns(d: &Discovered) -> Vec<(String, Option<String>, String)> {
        d.schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.mapping.clone(), c.sql_type.clone()))
            .collect()
    }

    fn col(name: &str, mapping: Option<&str>, ty: &str) -> (String, Option<String>, String) {
        (name.into(), mapping.map(Into::into), ty.into())
    }

    #[test]
    fn aws_demo_json_records_give_the_demo_schema() {
        let d = found(&[
            r#"{"TICKER_SYMBOL":"QXZ","SECTOR":"HEALTHCARE","CHANGE":-0.05,"PRICE":84.51}"#,
            r#"{"TICKER_SYMBOL":"WSB","SECTOR":"FINANCIAL","CHANGE":0.97,"PRICE":54.88}"#,
            r#"{"TICKER_SYMBOL":"NFLX","SECTOR":"TECHNOLOGY","CHANGE":-2.45,"PRICE":111.37}"#,
            r#"{"TICKER_SYMBOL":"AMZN","SECTOR":"RETAIL","CHANGE":1.1,"PRICE":812.3}"#,
            r#"{"TICKER_SYMBOL":"XOM","SECTOR":"ENERGY","CHANGE":0.31,"PRICE":90.23}"#,
        ]);
        assert_eq!(
            schema_json(&d),
            json!({
                "RecordFormat": {
                    "RecordFormatType": "JSON",
                    "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}
                },
                "RecordEncoding": "UTF-8",
                "RecordColumns": [
                    {"Name": "TICKER_SYMBOL", "Mapping": "$.TICKER_SYMBOL", "SqlType": "VARCHAR(4)"},
                    {"Name": "SECTOR", "Mapping": "$.SECTOR", "SqlType": "VARCHAR(16)"},
                    {"Name": "CHANGE", "Mapping": "$.CHANGE", "SqlType": "REAL"},
                    {"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "REAL"}
                ]
            })
        );
        assert_eq!(d.parsed.len(), 5);
        assert_eq!(
            parsed_json(&d)[0],
            json!(["QXZ", "HEALTHCARE", "-0.05", "84.51"])
        );
        assert!(crate::config::check_schema(&d.schema, "InputSchema").is_ok());
    }

    /// [DG] sch-dis-ref.md: the S3 object (one record) and the answer's
    /// `InputSchema` and `ParsedInputRecords`, key for key.
    #[test]
    fn developer_guide_csv_example_is_reproduced() {
        let object = "year,month,state,producer_type,energy_source,units,consumption\r\n\
            2001,1,AK,TotalElectricPowerIndustry,Coal,ShortTons,47615\r\n\
            2001,1,AK,ElectricGeneratorsElectricUtilities,Coal,ShortTons,16535\r\n\
            2001,1,AK,CombinedHeatandPowerElectricPower,Coal,ShortTons,22890\r\n\
            2001,1,AL,TotalElectricPowerIndustry,Coal,ShortTons,3020601\r\n\
            2001,1,AL,ElectricGeneratorsElectricUtilities,Coal,ShortTons,2987681";
        let d = found(&[object]);
        assert_eq!(
            schema_json(&d),
            json!({
                "RecordEncoding": "UTF-8",
                "RecordColumns": [
                    {"SqlType": "INTEGER", "Name": "COL_year"},
                    {"SqlType": "INTEGER", "Name": "COL_month"},
                    {"SqlType": "VARCHAR(4)", "Name": "state"},
                    {"SqlType": "VARCHAR(64)", "Name": "producer_type"},
                    {"SqlType": "VARCHAR(4)", "Name": "energy_source"},
                    {"SqlType": "VARCHAR(16)", "Name": "units"},
                    {"SqlType": "INTEGER", "Name": "consumption"}
                ],
                "RecordFormat": {
                    "RecordFormatType": "CSV",
                    "MappingParameters": {
                        "CSVMappingParameters": {
                            "RecordRowDelimiter": "\r\n",
                            "RecordColumnDelimiter": ","
                        }
                    }
                }
            })
        );
        assert_eq!(
            parsed_json(&d),
            json!([
                [
                    null,
                    null,
                    "state",
                    "producer_type",
                    "energy_source",
                    "units",
                    null
                ],
                [
                    "2001",
                    "1",
                    "AK",
                    "TotalElectricPowerIndustry",
                    "Coal",
                    "ShortTons",
                    "47615"
                ],
                [
                    "2001",
                    "1",
                    "AK",
                    "ElectricGeneratorsElectricUtilities",
                    "Coal",
                    "ShortTons",
                    "16535"
                ],
                [
                    "2001",
                    "1",
                    "AK",
                    "CombinedHeatandPowerElectricPower",
                    "Coal",
                    "ShortTons",
                    "22890"
                ],
                [
                    "2001",
                    "1",
                    "AL",
                    "TotalElectricPowerIndustry",
                    "Coal",
                    "ShortTons",
                    "3020601"
                ],
                [
                    "2001",
                    "1",
                    "AL",
                    "ElectricGeneratorsElectricUtilities",
                    "Coal",
                    "ShortTons",
                    "2987681"
                ]
            ])
        );
        assert!(crate::config::check_schema(&d.schema, "InputSchema").is_ok());
    }

    #[test]
    fn column_names_follow_the_col_rules() {
        let long: String = "a".repeat(150);
        let digit_long = format!("9{}", "b".repeat(120));
        let cases: &[(&str, usize, &str)] = &[
            // [DG] sch-dis.md's table.
            ("USER", 0, "COL_USER"),
            ("USER@DOMAIN", 0, "COL_USERDOMAIN"),
            ("@@", 0, "COL_0"),
            // [DG] sch-dis-ref.md: case kept.
            ("year", 0, "COL_year"),
            ("month", 1, "COL_month"),
            // [DG] sch-dis.md's reserved examples.
            ("TIMESTAMP", 0, "COL_TIMESTAMP"),
            ("VALUES", 0, "COL_VALUES"),
            ("Year", 0, "COL_Year"),
            // KDA's streaming words.
            ("rowtime", 0, "COL_rowtime"),
            ("STREAM", 0, "COL_STREAM"),
            ("pump", 0, "COL_pump"),
            ("Step", 0, "COL_Step"),
            // Kept.
            ("state", 2, "state"),
            ("TICKER_SYMBOL", 0, "TICKER_SYMBOL"),
            ("_x1", 0, "_x1"),
            ("USERS", 0, "USERS"),
            // Characters removed; leading digit; nothing left at a position.
            ("a b-c", 0, "COL_abc"),
            ("été", 0, "COL_t"),
            ("1st", 0, "COL_1st"),
            ("@@", 7, "COL_7"),
            ("", 3, "COL_3"),
            ("日本", 1, "COL_1"),
        ];
        for (raw, index, want) in cases {
            assert_eq!(column_name(raw, *index), *want, "{raw:?} at {index}");
        }
        let cut = column_name(&long, 0);
        assert_eq!(cut, format!("COL_{}", "a".repeat(96)));
        assert_eq!(cut.len(), NAME_CHARS_MAX);
        assert_eq!(
            column_name(&digit_long, 0),
            format!("COL_9{}", "b".repeat(95))
        );
        let exactly = "c".repeat(NAME_CHARS_MAX);
        assert_eq!(column_name(&exactly, 0), exactly);
    }

    #[test]
    fn reserved_words_are_sorted_upper_case_and_hold_the_examples() {
        assert!(RESERVED_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(RESERVED_WORDS.iter().all(|w| {
            w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }));
        for word in [
            "timestamp",
            "user",
            "values",
            "year",
            "month",
            "ROWTIME",
            "stream",
            "pump",
            "step",
        ] {
            assert!(is_reserved(word), "{word}");
        }
        for word in [
            "state",
            "units",
            "consumption",
            "SECTOR",
            "PRICE",
            "CHANGE",
            "TICKER_SYMBOL",
        ] {
            assert!(!is_reserved(word), "{word}");
        }
    }

    #[test]
    fn duplicate_names_get_suffixes_never_taking_another_columns_name() {
        let d = found(&[r#"{"x":{"id":1},"y":{"id":2},"id_2":"a","USER":1,"COL_USER":2}"#]);
        assert_eq!(
            columns(&d),
            vec![
                col("id", Some("$.x.id"), "INTEGER"),
                col("id_3", Some("$.y.id"), "INTEGER"),
                col("id_2", Some("$.id_2"), "VARCHAR(4)"),
                col("COL_USER", Some("$.USER"), "INTEGER"),
                col("COL_USER_2", Some("$.COL_USER"), "INTEGER"),
            ]
        );
        assert!(crate::config::check_schema(&d.schema, "InputSchema").is_ok());
        let long = unique_names(vec!["a".repeat(100), "a".repeat(100)]);
        assert_eq!(long[1], format!("{}_2", "a".repeat(98)));
    }

    #[test]
    fn nested_json_gives_leaf_columns_in_first_seen_order() {
        let d = found(&[
            r#"{"a":{"b":1,"c":"x"},"d":[1,2],"e":{}}"#,
            r#"{"a":{"b":2,"f":{"g":true}},"h":null}"#,
            r#"{"a.b":3.5,"h":"2024-02-29 10:00:00"}"#,
        ]);
        assert_eq!(
            columns(&d),
            vec![
                col("b", Some("$.a.b"), "INTEGER"),
                col("c", Some("$.a.c"), "VARCHAR(4)"),
                col("d", Some("$.d[0:]"), "VARCHAR(8)"),
                col("g", Some("$.a.f.g"), "BOOLEAN"),
                col("h", Some("$.h"), "TIMESTAMP"),
                col("COL_ab", Some("$['a.b']"), "REAL"),
            ]
        );
        assert_eq!(
            parsed_json(&d),
            json!([
                ["1", "x", "[1,2]", null, null, null],
                ["2", null, null, "true", null, null],
                [null, null, null, null, "2024-02-29 10:00:00", "3.5"]
            ])
        );
        assert!(crate::config::check_schema(&d.schema, "InputSchema").is_ok());
    }

    #[test]
    fn a_path_seen_as_object_and_as_value_keeps_both() {
        let d = found(&[
            r#"{"a":{"b":1}}"#,
            r#"{"a":"flat"}"#,
            r#"{"k":null}"#,
            r#"{"k":{"m":1}}"#,
        ]);
        assert_eq!(
            columns(&d),
            vec![
                col("b", Some("$.a.b"), "INTEGER"),
                col("a", Some("$.a"), "VARCHAR(8)"),
                col("m", Some("$.k.m"), "INTEGER"),
            ]
        );
        // The object under `$.a` shows as its JSON text (it coerces to text).
        assert_eq!(parsed_json(&d)[0], json!(["1", "{\"b\":1}", null]));
    }

    #[test]
    fn mixed_values_widen() {
        let d = found(&[
            r#"{"i":1,"r":1,"v":1,"big":1,"bd":1,"n":null,"t":"2024-01-02 03:04:05","b":true,"bn":true,"tx":"2024-01-02 03:04:05"}"#,
            r#"{"i":-7,"r":2.5,"v":"abcde","big":3000000000,"bd":3000000000,"t":"2024-01-02 03:04:05.123","b":false,"bn":0,"tx":"so"}"#,
            r#"{"bd":0.5,"n":null,"huge":18446744073709551615}"#,
        ]);
        assert_eq!(
            columns(&d),
            vec![
                col("i", Some("$.i"), "INTEGER"),
                col("r", Some("$.r"), "REAL"),
                col("v", Some("$.v"), "VARCHAR(8)"),
                col("big", Some("$.big"), "BIGINT"),
                col("bd", Some("$.bd"), "DOUBLE"),
                col("n", Some("$.n"), "VARCHAR(4)"),
                col("t", Some("$.t"), "TIMESTAMP"),
                col("b", Some("$.b"), "BOOLEAN"),
                col("bn", Some("$.bn"), "VARCHAR(4)"),
                col("tx", Some("$.tx"), "VARCHAR(32)"),
                col("huge", Some("$.huge"), "VARCHAR(32)"),
            ]
        );
        assert_eq!(parsed_json(&d)[1][1], json!("2.5"));
        assert_eq!(parsed_json(&d)[1][2], json!("abcde"));
        assert_eq!(parsed_json(&d)[0][5], Value::Null);
        assert_eq!(parsed_json(&d)[0][9], json!("2024-01-02 03:04:05"));
    }

    #[test]
    fn csv_mixed_columns_widen_and_values_that_do_not_fit_show_null() {
        // No header: the first row has a number.
        let d = found(&["1;2.5;x;true\n", "3000000000;7;;FALSE\n", "4;8;y;maybe\n"]);
        assert_eq!(
            columns(&d),
            vec![
                col("COL_0", None, "BIGINT"),
                col("COL_1", None, "REAL"),
                col("COL_2", None, "VARCHAR(4)"),
                col("COL_3", None, "VARCHAR(8)"),
            ]
        );
        assert_eq!(
            d.schema.format.mapping,
            Some(MappingParameters {
                json: None,
                csv: Some(CsvMapping {
                    row_delimiter: "\n".into(),
                    column_delimiter: ";".into(),
                }),
            })
        );
        assert_eq!(
            parsed_json(&d),
            json!([
                ["1", "2.5", "x", "true"],
                ["3000000000", "7", "", "FALSE"],
                ["4", "8", "y", "maybe"]
            ])
        );
        // An empty field under a number column shows null; a header's text
        // under a number column too.
        let d = found(&["id\tscore\n1\t\n2\t0.5\n"]);
        assert_eq!(
            columns(&d),
            vec![col("id", None, "INTEGER"), col("score", None, "REAL")]
        );
        assert_eq!(
            parsed_json(&d),
            json!([[null, null], ["1", null], ["2", "0.5"]])
        );
    }

    #[test]
    fn csv_delimiters_are_tried_in_order() {
        let cases: &[(&str, &str, &str)] = &[
            ("a,b\nc,d", "\n", ","),
            ("a|b,c\nd|e", "\n", "|"),
            ("a\tb\r\nc\td\r\n", "\r\n", "\t"),
            ("a,b;c\nd,e;f;g", "\n", ","),
            ("a;b;c\nd;e;f", "\n", ";"),
        ];
        for (text, row, column) in cases {
            let d = found(&[text]);
            let csv = d.schema.format.mapping.and_then(|m| m.csv);
            assert_eq!(
                csv,
                Some(CsvMapping {
                    row_delimiter: (*row).into(),
                    column_delimiter: (*column).into()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn csv_all_text_has_no_header() {
        let d = found(&["name,city\n", "ann,oslo\n", "bob,rome\n"]);
        assert_eq!(
            columns(&d),
            vec![
                col("COL_0", None, "VARCHAR(4)"),
                col("COL_1", None, "VARCHAR(4)")
            ]
        );
        assert_eq!(d.parsed.len(), 3);
        // A header of reserved and odd names, renamed and made unique.
        let d = found(&["user,user,1x,@@\n5,6,7,8\n"]);
        let names: Vec<&str> = d.schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["COL_user", "COL_user_2", "COL_1x", "COL_3"]);
    }

    #[test]
    fn timestamps_and_numbers_are_recognised() {
        let cases: &[(&str, Option<Kind>)] = &[
            ("", None),
            ("0", Some(Kind::Integer)),
            ("-2147483648", Some(Kind::Integer)),
            ("2147483648", Some(Kind::BigInt)),
            ("99999999999999999999", Some(Kind::Text)),
            ("1.5", Some(Kind::Real)),
            ("-.5", Some(Kind::Real)),
            ("5.", Some(Kind::Real)),
            ("1e5", Some(Kind::Real)),
            ("1e999", Some(Kind::Text)),
            ("inf", Some(Kind::Text)),
            ("NaN", Some(Kind::Text)),
            (".", Some(Kind::Text)),
            ("1.2.3", Some(Kind::Text)),
            ("True", Some(Kind::Boolean)),
            ("2001-01-01 00:00:00", Some(Kind::Timestamp)),
            ("1992-02-14 18:35:44.0", Some(Kind::Timestamp)),
            ("2024-02-29 23:59:59.123456789", Some(Kind::Timestamp)),
            ("2023-02-29 10:00:00", Some(Kind::Text)),
            ("2024-13-01 10:00:00", Some(Kind::Text)),
            ("2024-01-01 24:00:00", Some(Kind::Text)),
            ("2024-01-01T10:00:00", Some(Kind::Text)),
            ("2024-01-01 10:00:00.", Some(Kind::Text)),
            ("2024-01-01 10:00:00.1234567890", Some(Kind::Text)),
            ("1992-02-14", Some(Kind::Text)),
        ];
        for (text, want) in cases {
            assert_eq!(text_kind(text), *want, "{text:?}");
        }
    }

    #[test]
    fn varchar_sizes_are_powers_of_two_from_four() {
        let cases = [
            (0, 4),
            (2, 4),
            (4, 4),
            (5, 8),
            (9, 16),
            (35, 64),
            (64, 64),
            (65, 128),
        ];
        for (chars, len) in cases {
            assert_eq!(varchar_len(chars), len, "{chars}");
        }
        assert_eq!(varchar_len(70_000), VARCHAR_LEN_MAX);
        assert_eq!(varchar_len(usize::MAX), VARCHAR_LEN_MAX);
    }

    #[test]
    fn nothing_to_discover_is_an_error() {
        assert_eq!(discover(&[]), Err(NO_DATA.to_string()));
        assert_eq!(discover(&[b"", b" \r\n\t"]), Err(NO_DATA.to_string()));
        assert_eq!(discover(&[b"\n\n"]), Err(NO_DATA.to_string()));
        for bad in [
            &b"just some words"[..],
            b"a,b\nc",
            b"\xff\xfe,\x00",
            b"[1]",
            b"42",
            b"{} {\"a\":1",
            b"{}",
        ] {
            let result = discover(&[bad]);
            assert!(result.is_err(), "{bad:?}: {result:?}");
        }
        // JSON and non-JSON together fall back to CSV, which fails here.
        assert!(discover(&[br#"{"a":1}"#, b"plain"]).is_err());
    }

    #[test]
    fn ndjson_records_hold_one_row_per_object() {
        let d = found(&["{\"a\":1}\n{\"a\":2}\n", "{\"a\":3}"]);
        assert_eq!(columns(&d), vec![col("a", Some("$.a"), "INTEGER")]);
        assert_eq!(parsed_json(&d), json!([["1"], ["2"], ["3"]]));
    }

    #[test]
    fn work_is_bounded() {
        // Records past the hundredth are not looked at.
        let mut records: Vec<Vec<u8>> = (0..100).map(|i| format!("{i},x").into_bytes()).collect();
        records.push(b"not,a,row,of,this,shape".to_vec());
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let d = discover(&refs).expect("the first hundred are CSV");
        assert_eq!(d.parsed.len(), SAMPLE_RECORDS_MAX);
        // A record past 1 MiB is cut at its last newline; rows are capped.
        let mut big = "1,2\n"
            .repeat(SAMPLE_RECORD_BYTES_MAX / 4 + 10)
            .into_bytes();
        big.extend_from_slice(b"1,2,3,4,5");
        let d = discover(&[&big]).expect("the first MiB is CSV");
        assert_eq!(d.parsed.len(), SAMPLE_ROWS_MAX);
        assert_eq!(
            columns(&d),
            vec![col("COL_0", None, "INTEGER"), col("COL_1", None, "INTEGER")]
        );
        // Too many columns is refused.
        let wide = vec!["1"; COLUMNS_MAX + 1].join(",");
        assert!(discover(&[wide.as_bytes()]).is_err());
        let members: Vec<String> = (0..=COLUMNS_MAX).map(|i| format!("\"k{i}\":1")).collect();
        let wide_json = format!("{{{}}}", members.join(","));
        assert!(discover(&[wide_json.as_bytes()]).is_err());
        // Deep nesting is refused by the parser, not the stack.
        let deep = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
        let _ = discover(&[deep.as_bytes()]);
    }

    #[test]
    fn random_bytes_never_panic_and_any_schema_found_is_valid() {
        let seed = riffle_store::testkit::seeds(&[0x5EED_D15C_0BE5])[0];
        println!("RIFFLE_SEED={seed}");
        let mut rng = Rng::new(seed);
        let alphabet: &[u8] = b"{}[]\":,|;\t\r\n 0123456789.-+eEtruefalsnl@abcXYZ_\\\xc3\xa9\xff";
        let mut accepted = 0;
        for _ in 0..3000 {
            let record_count = 1 + rng.below(4);
            let records: Vec<Vec<u8>> = (0..record_count)
                .map(|_| {
                    let len = rng.below(64);
                    (0..len)
                        .map(|_| {
                            if rng.below(8) == 0 {
                                rng.next_u64() as u8
                            } else {
                                alphabet[rng.below(alphabet.len())]
                            }
                        })
                        .collect()
                })
                .collect();
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            if let Ok(d) = discover(&refs) {
                accepted += 1;
                let width = d.schema.columns.len();
                assert!((1..=COLUMNS_MAX).contains(&width), "{records:?}");
                assert!(d.parsed.iter().all(|row| row.len() == width), "{records:?}");
                assert!(
                    crate::config::check_schema(&d.schema, "InputSchema").is_ok(),
                    "{records:?}: {:?}",
                    d.schema
                );
            }
        }
        println!("{accepted} of 3000 random samples gave a schema");
    }

    #[test]
    fn structured_random_samples_give_valid_schemas() {
        let mut rng = Rng::new(0xC0FF_EE00);
        let values = [
            "1",
            "-2.5",
            "\"x\"",
            "true",
            "null",
            "[1]",
            "{\"q\":2}",
            "\"2024-01-01 00:00:00\"",
            "99999999999",
        ];
        let keys = ["a", "b", "USER", "x y", "1a", "@@", "a.b", "it's"];
        for _ in 0..500 {
            let records: Vec<String> = (0..1 + rng.below(5))
                .map(|_| {
                    let members: Vec<String> = (0..1 + rng.below(5))
                        .map(|_| {
                            format!(
                                "{}:{}",
                                serde_json::to_string(keys[rng.below(keys.len())])
                                    .unwrap_or_default(),
                                values[rng.below(values.len())]
                            )
                        })
                        .collect();
                    format!("{{{}}}", members.join(","))
                })
                .collect();
            let refs: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
            let d = match discover(&refs) {
                Ok(d) => d,
                Err(e) => panic!("{records:?}: {e}"),
            };
            let width = d.schema.columns.len();
            assert!(d.parsed.iter().all(|row| row.len() == width), "{records:?}");
            assert!(
                crate::config::check_schema(&d.schema, "InputSchema").is_ok(),
                "{records:?}: {:?}",
                d.schema
            );
        }
    }
}
