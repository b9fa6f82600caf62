//! The two JSON SerDes Firehose offers (`Deserializer`): how a JSON object's keys find
//! the table's columns and how each JSON value becomes a checked `Cell` of its column's
//! type. Compiled once per converter (`Reader`); reading cannot touch the builders, so
//! a refused record leaves nothing behind.
//!
//! Value rules, shared by both SerDes unless said:
//! - `null` and missing keys are nulls; keys without a column are ignored; of two keys
//!   read into one column (a duplicate, or `A` and `a` ignoring case), the later wins.
//! - string/char/varchar take strings as they are, numbers and booleans as their JSON
//!   text, arrays and objects as compact JSON text; `varchar(n)`/`char(n)` keep the
//!   first n characters (`char` without trailing spaces, as Hive stores it).
//! - Numbers are read from their source text (`json.rs` keeps it), never through an
//!   f64: a number read as string keeps its text (`1.50` stays `1.50`).
//! - Integer types take JSON integers, numbers with no fraction (`3.0`, `1e3`) and
//!   strings of an integer (`"12"`), exactly; out-of-range or fractional values are
//!   refused (Hive's SerDes would truncate `1.7` to 1; we refuse rather than lose data).
//! - float/double take numbers and numeric strings (`"NaN"`, `"Infinity"` too), rounded
//!   once from the text to the column's width; a finite text beyond the type's range
//!   (`1e400`) is refused rather than stored as infinity.
//! - decimal(p,s) takes numbers and numeric strings, rounds half-up to s digits and
//!   refuses a value with more than p-s integer digits.
//! - boolean takes `true`/`false` and the strings `"true"`/`"false"` (any case).
//! - date takes `yyyy-[M]M-[d]d` strings (a trailing time is ignored).
//! - binary takes a string's UTF-8 bytes.
//! - timestamp: see `time.rs`; OpenX also takes JSON numbers (epoch s/ms/float s),
//!   Hive takes numbers only with the `millis` format.
//! - array ← JSON array, map ← JSON object (keys read as the key type, case kept),
//!   struct ← JSON object, matched by field name like the top level.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::builder::Cell;
use crate::json::{Member, Value};
use crate::number::{self, NotInteger};
use crate::time::{self, JodaPattern};
use crate::types::HiveType;

/// How JSON is read: Firehose's `InputFormatConfiguration.Deserializer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deserializer {
    /// `OpenXJsonSerDe`.
    OpenX {
        /// Match keys to columns ignoring case (AWS's default: true).
        case_insensitive: bool,
        /// Read `a.b` as the key `a_b` (Hive names cannot hold dots).
        convert_dots_in_json_keys_to_underscores: bool,
        /// Column name → the JSON key it is read from (e.g. `ts` ← `timestamp`). Like
        /// OpenX, a mapping applies to struct fields of that name at any depth.
        column_to_json_key_mappings: BTreeMap<String, String>,
    },
    /// `HiveJsonSerDe`: keys match columns ignoring case.
    Hive {
        /// Joda-Time patterns tried in order, or `millis`; then Hive's default
        /// `yyyy-MM-dd HH:mm:ss[.fffffffff]`.
        timestamp_formats: Vec<String>,
    },
}

impl Default for Deserializer {
    /// OpenX with AWS's defaults.
    fn default() -> Self {
        Deserializer::OpenX {
            case_insensitive: true,
            convert_dots_in_json_keys_to_underscores: false,
            column_to_json_key_mappings: BTreeMap::new(),
        }
    }
}

impl Deserializer {
    /// Checks the configuration (Joda patterns) without building a converter.
    pub fn validate(&self) -> Result<(), String> {
        Rules::new(self).map(|_| ())
    }
}

/// A Hive timestamp format, compiled.
#[derive(Clone, Debug)]
enum HiveFormat {
    Millis,
    Joda(JodaPattern),
}

#[derive(Clone, Debug)]
struct Rules {
    case_insensitive: bool,
    dots_to_underscores: bool,
    /// Lower-cased column name → JSON key.
    mappings: HashMap<String, String>,
    /// None: OpenX's timestamp rules.
    hive_formats: Option<Vec<HiveFormat>>,
    /// How the formats read in errors.
    formats_text: String,
}

impl Rules {
    fn new(deserializer: &Deserializer) -> Result<Rules, String> {
        Ok(match deserializer {
            Deserializer::OpenX {
                case_insensitive,
                convert_dots_in_json_keys_to_underscores,
                column_to_json_key_mappings,
            } => Rules {
                case_insensitive: *case_insensitive,
                dots_to_underscores: *convert_dots_in_json_keys_to_underscores,
                mappings: column_to_json_key_mappings
                    .iter()
                    .map(|(column, key)| (column.to_lowercase(), key.clone()))
                    .collect(),
                hive_formats: None,
                formats_text: "yyyy-MM-dd'T'HH:mm:ss[.S]'Z', yyyy-[M]M-[d]d HH:mm:ss[.S], epoch seconds or milliseconds".to_owned(),
            },
            Deserializer::Hive { timestamp_formats } => {
                let this_year = current_year();
                let mut formats = Vec::with_capacity(timestamp_formats.len());
                for text in timestamp_formats {
                    if text == "millis" {
                        formats.push(HiveFormat::Millis);
                    } else {
                        formats.push(HiveFormat::Joda(JodaPattern::compile(text, this_year)?));
                    }
                }
                let mut formats_text: Vec<&str> = timestamp_formats.iter().map(String::as_str).collect();
                formats_text.push("yyyy-MM-dd HH:mm:ss[.fffffffff]");
                Rules {
                    case_insensitive: true,
                    dots_to_underscores: false,
                    mappings: HashMap::new(),
                    hive_formats: Some(formats),
                    formats_text: formats_text.join(", "),
                }
            }
        })
    }

    /// A JSON key as it is looked up.
    fn normalize<'k>(&self, key: &'k str) -> Cow<'k, str> {
        let dots = self.dots_to_underscores && key.contains('.');
        let upper =
            self.case_insensitive && key.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80);
        if !dots && !upper {
            return Cow::Borrowed(key);
        }
        let mut out = if dots {
            key.replace('.', "_")
        } else {
            key.to_owned()
        };
        if upper {
            out = out.to_lowercase();
        }
        Cow::Owned(out)
    }
}

/// This year (UTC), for Joda's two-digit-year pivot.
fn current_year() -> i64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    1970 + seconds / 31_556_952
}

/// A column type compiled for reading.
#[derive(Clone, Debug)]
enum Plan {
    Leaf(HiveType),
    Array(Box<Plan>),
    Map(HiveType, Box<Plan>),
    Struct(StructPlan),
}

#[derive(Clone, Debug)]
struct StructPlan {
    names: Vec<String>,
    plans: Vec<Plan>,
    /// Normalized JSON key → the fields read from it (two when a mapping points a
    /// column at another column's name).
    lookup: HashMap<String, Vec<usize>>,
}

impl StructPlan {
    fn new(fields: &[(String, HiveType)], rules: &Rules) -> StructPlan {
        let mut lookup: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, (name, _)) in fields.iter().enumerate() {
            let key = rules.mappings.get(&name.to_lowercase()).unwrap_or(name);
            let key = rules.normalize(key).into_owned();
            lookup.entry(key).or_default().push(index);
        }
        StructPlan {
            names: fields.iter().map(|(n, _)| n.clone()).collect(),
            plans: fields.iter().map(|(_, t)| Plan::new(t, rules)).collect(),
            lookup,
        }
    }
}

impl Plan {
    fn new(t: &HiveType, rules: &Rules) -> Plan {
        match t {
            HiveType::Array(element) => Plan::Array(Box::new(Plan::new(element, rules))),
            HiveType::Map(key, value) => {
                Plan::Map((**key).clone(), Box::new(Plan::new(value, rules)))
            }
            HiveType::Struct(fields) => Plan::Struct(StructPlan::new(fields, rules)),
            leaf => Plan::Leaf(leaf.clone()),
        }
    }
}

/// A value refused, with the path to it (innermost first while it bubbles up).
struct Problem {
    path_rev: Vec<String>,
    message: String,
}

impl Problem {
    fn new(message: String) -> Problem {
        Problem {
            path_rev: Vec::new(),
            message,
        }
    }
    fn within(mut self, segment: String) -> Problem {
        self.path_rev.push(segment);
        self
    }
}

/// A deserializer compiled against a table's columns.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    root: StructPlan,
    rules: Rules,
}

impl Reader {
    pub(crate) fn new(
        columns: &[(String, HiveType)],
        deserializer: &Deserializer,
    ) -> Result<Reader, String> {
        let rules = Rules::new(deserializer)?;
        Ok(Reader {
            root: StructPlan::new(columns, &rules),
            rules,
        })
    }

    /// One row: a cell per column. The error names the column path and the reason.
    pub(crate) fn row<'a>(&self, object: &'a [Member<'a>]) -> Result<Vec<Cell<'a>>, String> {
        self.struct_cells(&self.root, object).map_err(|p| {
            let mut path = String::new();
            for segment in p.path_rev.iter().rev() {
                if !path.is_empty() && !segment.starts_with('[') {
                    path.push('.');
                }
                path.push_str(segment);
            }
            format!("column \"{path}\": {}", p.message)
        })
    }

    fn struct_cells<'a>(
        &self,
        plan: &StructPlan,
        object: &'a [Member<'a>],
    ) -> Result<Vec<Cell<'a>>, Problem> {
        // Members in source order: of two keys read into one field, the last wins.
        let mut slots: Vec<Option<&'a Value<'a>>> = vec![None; plan.plans.len()];
        for (key, value) in object {
            if let Some(indexes) = plan.lookup.get(self.rules.normalize(key).as_ref()) {
                for &index in indexes {
                    slots[index] = Some(value);
                }
            }
        }
        let mut cells = Vec::with_capacity(slots.len());
        for (index, slot) in slots.into_iter().enumerate() {
            let cell = match slot {
                None => Cell::Null,
                Some(value) => self
                    .cell(&plan.plans[index], value)
                    .map_err(|p| p.within(plan.names[index].clone()))?,
            };
            cells.push(cell);
        }
        Ok(cells)
    }

    fn cell<'a>(&self, plan: &Plan, value: &'a Value<'a>) -> Result<Cell<'a>, Problem> {
        if matches!(value, Value::Null) {
            return Ok(Cell::Null);
        }
        match plan {
            Plan::Leaf(t) => self.leaf(t, value).map_err(Problem::new),
            Plan::Array(element) => {
                let Value::Array(items) = value else {
                    return Err(Problem::new(format!(
                        "expected a JSON array, found {}",
                        excerpt(value)
                    )));
                };
                let mut cells = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    cells.push(
                        self.cell(element, item)
                            .map_err(|p| p.within(format!("[{i}]")))?,
                    );
                }
                Ok(Cell::List(cells))
            }
            Plan::Map(key_type, value_plan) => {
                let Value::Object(object) = value else {
                    return Err(Problem::new(format!(
                        "expected a JSON object (a map), found {}",
                        excerpt(value)
                    )));
                };
                let mut entries = Vec::with_capacity(object.len());
                for (key, item) in object {
                    let key_cell = self.text(key_type, key).map_err(|m| {
                        Problem::new(format!("map key: {m}")).within(format!("[{}]", quoted(key)))
                    })?;
                    let value_cell = self
                        .cell(value_plan, item)
                        .map_err(|p| p.within(format!("[{}]", quoted(key))))?;
                    entries.push((key_cell, value_cell));
                }
                Ok(Cell::Map(entries))
            }
            Plan::Struct(fields) => {
                let Value::Object(object) = value else {
                    return Err(Problem::new(format!(
                        "expected a JSON object (a struct), found {}",
                        excerpt(value)
                    )));
                };
                Ok(Cell::Struct(self.struct_cells(fields, object)?))
            }
        }
    }

    /// A primitive from any JSON value (not null).
    fn leaf<'a>(&self, t: &HiveType, value: &'a Value<'a>) -> Result<Cell<'a>, String> {
        match value {
            Value::String(s) => self.text(t, s),
            Value::Number(n) => self.number(t, n),
            Value::Bool(b) => match t {
                HiveType::Boolean => Ok(Cell::Bool(*b)),
                HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => Ok(sized_text(
                    t,
                    Cow::Borrowed(if *b { "true" } else { "false" }),
                )),
                _ => Err(expected(t, value)),
            },
            Value::Array(_) | Value::Object(_) => match t {
                HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => {
                    Ok(sized_text(t, Cow::Owned(value.to_string())))
                }
                _ => Err(expected(t, value)),
            },
            Value::Null => Ok(Cell::Null),
        }
    }

    /// A primitive from a JSON string (or a map key).
    fn text<'a>(&self, t: &HiveType, s: &'a str) -> Result<Cell<'a>, String> {
        let shown = || excerpt(&Value::String(Cow::Borrowed(s)));
        let refuse = || format!("expected {t}, found {}", shown());
        match t {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => {
                Ok(sized_text(t, Cow::Borrowed(s)))
            }
            HiveType::Binary => Ok(Cell::Bytes(s.as_bytes())),
            HiveType::Boolean => {
                if s.eq_ignore_ascii_case("true") {
                    Ok(Cell::Bool(true))
                } else if s.eq_ignore_ascii_case("false") {
                    Ok(Cell::Bool(false))
                } else {
                    Err(refuse())
                }
            }
            HiveType::TinyInt | HiveType::SmallInt | HiveType::Int | HiveType::BigInt => {
                let v: i64 = s.parse().map_err(|_| refuse())?;
                integer_in_range(t, v)
            }
            HiveType::Float | HiveType::Double => float(t, s).ok_or_else(refuse),
            HiveType::Decimal { precision, scale } => number::decimal(s, *precision, *scale)
                .map(Cell::Decimal)
                .map_err(|why| format!("{} {why}", shown())),
            HiveType::Date => time::parse_date(s)
                .map(|d| Cell::Int(i64::from(d)))
                .ok_or_else(|| format!("{} is not a date (yyyy-MM-dd)", shown())),
            HiveType::Timestamp => {
                let micros = match &self.rules.hive_formats {
                    None => time::parse_openx_text(s),
                    Some(formats) => hive_timestamp(formats, s),
                };
                micros.map(Cell::Int).ok_or_else(|| {
                    format!(
                        "{} is not a timestamp in any of the formats ({})",
                        shown(),
                        self.rules.formats_text
                    )
                })
            }
            HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_) => {
                unreachable!("only primitive types are leaves")
            }
        }
    }

    /// A primitive from a JSON number's source text, read exactly.
    fn number<'a>(&self, t: &HiveType, text: &'a str) -> Result<Cell<'a>, String> {
        let n = || cut(text); // as it reads in an error
        match t {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => {
                Ok(sized_text(t, Cow::Borrowed(text)))
            }
            HiveType::TinyInt | HiveType::SmallInt | HiveType::Int | HiveType::BigInt => {
                match number::integer(text) {
                    Ok(v) => integer_in_range(t, v),
                    Err(NotInteger::Fraction) => Err(format!("{} is not an integer ({t})", n())),
                    Err(NotInteger::OutOfRange) => Err(format!("{} is out of range for {t}", n())),
                    Err(NotInteger::Malformed) => Err(format!("expected {t}, found {}", n())),
                }
            }
            HiveType::Float | HiveType::Double => {
                float(t, text).ok_or_else(|| format!("{} is out of range for {t}", n()))
            }
            HiveType::Decimal { precision, scale } => number::decimal(text, *precision, *scale)
                .map(Cell::Decimal)
                .map_err(|why| format!("{} {why}", n())),
            HiveType::Timestamp => {
                let micros = match &self.rules.hive_formats {
                    None => time::parse_openx_text(text),
                    Some(formats) => hive_timestamp(formats, text),
                };
                micros.map(Cell::Int).ok_or_else(|| {
                    format!(
                        "{} is not a timestamp in any of the formats ({})",
                        n(),
                        self.rules.formats_text
                    )
                })
            }
            _ => Err(format!("expected {t}, found {}", n())),
        }
    }
}

/// A float/double from a number's text, rounded once to the column's width; `NaN` and
/// `Infinity` strings are taken, a finite text too large for the type is not.
fn float<'a>(t: &HiveType, text: &str) -> Option<Cell<'a>> {
    let finite_text = !text.contains(['n', 'N', 'i', 'I']);
    let value = if matches!(t, HiveType::Float) {
        f64::from(text.parse::<f32>().ok()?)
    } else {
        text.parse::<f64>().ok()?
    };
    (value.is_finite() || !finite_text).then_some(Cell::Float(value))
}

fn hive_timestamp(formats: &[HiveFormat], text: &str) -> Option<i64> {
    formats
        .iter()
        .find_map(|f| match f {
            HiveFormat::Millis => time::parse_millis(text),
            HiveFormat::Joda(p) => p.parse(text),
        })
        .or_else(|| time::parse_hive_default(text))
}

fn integer_in_range<'a>(t: &HiveType, v: i64) -> Result<Cell<'a>, String> {
    let (min, max) = match t {
        HiveType::TinyInt => (i64::from(i8::MIN), i64::from(i8::MAX)),
        HiveType::SmallInt => (i64::from(i16::MIN), i64::from(i16::MAX)),
        HiveType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    if (min..=max).contains(&v) {
        Ok(Cell::Int(v))
    } else {
        Err(format!("{v} is out of range for {t} ({min}..={max})"))
    }
}

/// char/varchar keep their first n characters; char drops trailing spaces.
fn sized_text<'a>(t: &HiveType, s: Cow<'a, str>) -> Cell<'a> {
    let limit = match t {
        HiveType::Char(n) | HiveType::Varchar(n) => *n as usize,
        _ => return Cell::Text(s),
    };
    let cut = s.char_indices().nth(limit).map(|(i, _)| i);
    let mut s = match (cut, s) {
        (Some(i), Cow::Borrowed(b)) => Cow::Borrowed(&b[..i]),
        (Some(i), Cow::Owned(mut o)) => {
            o.truncate(i);
            Cow::Owned(o)
        }
        (None, s) => s,
    };
    if matches!(t, HiveType::Char(_)) {
        s = match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_end_matches(' ')),
            Cow::Owned(o) => Cow::Owned(o.trim_end_matches(' ').to_owned()),
        };
    }
    Cell::Text(s)
}

fn expected(t: &HiveType, value: &Value<'_>) -> String {
    format!("expected {t}, found {}", excerpt(value))
}

/// A value as it reads in an error: its JSON, cut to 64 characters.
fn excerpt(value: &Value<'_>) -> String {
    cut(&value.to_string()).into_owned()
}

/// Text cut to 64 characters for an error.
fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(64) {
        Some((i, _)) => Cow::Owned(format!("{}...", &text[..i])),
        None => Cow::Borrowed(text),
    }
}

fn quoted(key: &str) -> String {
    Value::String(Cow::Borrowed(key)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_text_cuts_by_characters() {
        assert_eq!(
            sized_text(&HiveType::Varchar(3), Cow::Borrowed("héllo")),
            Cell::Text(Cow::Borrowed("hél"))
        );
        assert_eq!(
            sized_text(&HiveType::Char(5), Cow::Borrowed("ab   cd")),
            Cell::Text(Cow::Borrowed("ab"))
        );
        assert_eq!(
            sized_text(&HiveType::String, Cow::Borrowed("ab  ")),
            Cell::Text(Cow::Borrowed("ab  "))
        );
    }

    #[test]
    fn keys_normalize() {
        let openx = |ci: bool, dots: bool| {
            Rules::new(&Deserializer::OpenX {
                case_insensitive: ci,
                convert_dots_in_json_keys_to_underscores: dots,
                column_to_json_key_mappings: BTreeMap::new(),
            })
            .unwrap()
        };
        assert_eq!(openx(true, true).normalize("A.Bc"), "a_bc");
        assert_eq!(openx(false, true).normalize("A.Bc"), "A_Bc");
        assert_eq!(openx(true, false).normalize("A.Bc"), "a.bc");
        assert!(matches!(
            openx(true, true).normalize("plain"),
            Cow::Borrowed(_)
        ));
        let err = Deserializer::Hive {
            timestamp_formats: vec!["yyyy-ww".into()],
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("unsupported Joda pattern letter 'w'"), "{err}");
        assert!(
            Deserializer::Hive {
                timestamp_formats: vec!["millis".into(), "dd/MM/yyyy".into()]
            }
            .validate()
            .is_ok()
        );
    }
}
