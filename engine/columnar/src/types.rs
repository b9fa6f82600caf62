//! Hive/Glue column types: `HiveType`, the parser of Glue's type strings
//! (`parse_type`), and the table `Schema` with its Arrow schema.
//!
//! Owns the mapping Hive type → Arrow `DataType` (and through it the Parquet type the
//! writer chooses). Knows nothing about JSON or Parquet options.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit};

/// Deepest nesting of `array`/`map`/`struct` accepted in a type string. The parser and
/// the converters recurse once per level; 64 is far beyond real Glue tables (Hive's own
/// parsers choke much earlier) and keeps every recursion's stack small.
pub const TYPE_DEPTH_MAX: usize = 64;
/// Hive's limits on `char(n)` and `varchar(n)`.
pub const CHAR_LENGTH_MAX: u32 = 255;
pub const VARCHAR_LENGTH_MAX: u32 = 65535;
/// Hive's (and Arrow's Decimal128) largest decimal precision.
pub const DECIMAL_PRECISION_MAX: u8 = 38;

/// A Hive column type as Glue writes it in `Columns[].Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HiveType {
    String,
    Char(u32),
    Varchar(u32),
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    Timestamp,
    Binary,
    Array(Box<HiveType>),
    /// Key (always a primitive type) and value.
    Map(Box<HiveType>, Box<HiveType>),
    /// Fields in order, names as written.
    Struct(Vec<(String, HiveType)>),
}

impl HiveType {
    /// Whether this is a primitive (non-nested) type.
    pub fn is_primitive(&self) -> bool {
        !matches!(
            self,
            HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_)
        )
    }

    /// The Arrow type a column of this type is built as (all children nullable except
    /// a map's keys). Timestamps are `Timestamp(Microsecond, None)`, which the Parquet
    /// writer stores as INT64 `TIMESTAMP(MICROS, isAdjustedToUTC=false)`.
    pub fn arrow_type(&self) -> DataType {
        match self {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => DataType::Utf8,
            HiveType::Boolean => DataType::Boolean,
            HiveType::TinyInt => DataType::Int8,
            HiveType::SmallInt => DataType::Int16,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Decimal { precision, scale } => {
                DataType::Decimal128(*precision, *scale as i8)
            }
            HiveType::Date => DataType::Date32,
            HiveType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            HiveType::Binary => DataType::Binary,
            HiveType::Array(element) => DataType::List(list_field(element)),
            HiveType::Map(key, value) => DataType::Map(map_entries_field(key, value), false),
            HiveType::Struct(fields) => DataType::Struct(struct_fields(fields)),
        }
    }
}

/// The list's child: Parquet's standard name `element`.
pub(crate) fn list_field(element: &HiveType) -> Arc<Field> {
    Arc::new(Field::new("element", element.arrow_type(), true))
}

/// The map's entries: Parquet's standard `key_value { key, value }`.
pub(crate) fn map_entries_field(key: &HiveType, value: &HiveType) -> Arc<Field> {
    let entries = Fields::from(vec![
        Field::new("key", key.arrow_type(), false),
        Field::new("value", value.arrow_type(), true),
    ]);
    Arc::new(Field::new("key_value", DataType::Struct(entries), false))
}

pub(crate) fn struct_fields(fields: &[(String, HiveType)]) -> Fields {
    fields
        .iter()
        .map(|(name, t)| Field::new(name, t.arrow_type(), true))
        .collect()
}

impl fmt::Display for HiveType {
    /// Hive's canonical spelling (lower case, no spaces), as `DESCRIBE` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::String => f.write_str("string"),
            HiveType::Char(n) => write!(f, "char({n})"),
            HiveType::Varchar(n) => write!(f, "varchar({n})"),
            HiveType::Boolean => f.write_str("boolean"),
            HiveType::TinyInt => f.write_str("tinyint"),
            HiveType::SmallInt => f.write_str("smallint"),
            HiveType::Int => f.write_str("int"),
            HiveType::BigInt => f.write_str("bigint"),
            HiveType::Float => f.write_str("float"),
            HiveType::Double => f.write_str("double"),
            HiveType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            HiveType::Date => f.write_str("date"),
            HiveType::Timestamp => f.write_str("timestamp"),
            HiveType::Binary => f.write_str("binary"),
            HiveType::Array(e) => write!(f, "array<{e}>"),
            HiveType::Map(k, v) => write!(f, "map<{k},{v}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    if name
                        .chars()
                        .any(|c| c.is_whitespace() || ":,<>()`".contains(c))
                    {
                        write!(f, "`{}`:{t}", name.replace('`', "``"))?;
                    } else {
                        write!(f, "{name}:{t}")?;
                    }
                }
                f.write_str(">")
            }
        }
    }
}

/// Parses a Glue/Hive type string: `string`, `char(n)`, `varchar(n)`, `boolean`,
/// `tinyint`, `smallint`, `int`/`integer`, `bigint`, `float`, `double`,
/// `decimal`/`decimal(p)`/`decimal(p,s)` (also `dec`, `numeric`; bare `decimal` is
/// Hive's `decimal(10,0)`), `date`, `timestamp`, `binary`, `array<T>`, `map<K,V>`
/// (K primitive), `struct<a:T,b:U>` (names may be back-quoted). Keywords are
/// case-insensitive; whitespace is allowed between tokens.
pub fn parse_type(text: &str) -> Result<HiveType, String> {
    let mut parser = Parser { text, pos: 0 };
    let parsed = parser
        .parse(0)
        .map_err(|e| format!("type \"{text}\": {e}"))?;
    parser.skip_ws();
    if parser.pos < text.len() {
        return Err(format!(
            "type \"{text}\": unexpected \"{}\" at offset {} after a complete type",
            parser.rest_excerpt(),
            parser.pos
        ));
    }
    Ok(parsed)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.text[self.pos..].chars().next()
    }

    fn rest_excerpt(&self) -> String {
        self.text[self.pos..].chars().take(16).collect()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.peek() {
            Some(found) if found == c => {
                self.pos += c.len_utf8();
                Ok(())
            }
            Some(_) => Err(format!(
                "expected '{c}' at offset {} but found \"{}\"",
                self.pos,
                self.rest_excerpt()
            )),
            None => Err(format!(
                "expected '{c}' at offset {} but the text ends",
                self.pos
            )),
        }
    }

    /// A keyword: ASCII letters only.
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn number(&mut self) -> Result<u32, String> {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(format!("expected a number at offset {start}"));
        }
        self.pos += len;
        rest[..len]
            .parse::<u32>()
            .map_err(|_| format!("number \"{}\" at offset {start} is too large", &rest[..len]))
    }

    /// A struct field name: back-quoted (`` `a b` ``, with ``` `` ``` for a quote) or a
    /// run of characters other than whitespace and `:,<>()`.
    fn field_name(&mut self) -> Result<String, String> {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        if let Some(quoted) = rest.strip_prefix('`') {
            let mut name = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '`' {
                    if quoted[i + 1..].starts_with('`') {
                        name.push('`');
                        chars.next();
                        continue;
                    }
                    self.pos = start + 1 + i + 1;
                    if name.is_empty() {
                        return Err(format!("empty field name at offset {start}"));
                    }
                    return Ok(name);
                }
                name.push(c);
            }
            return Err(format!(
                "unterminated back-quoted field name at offset {start}"
            ));
        }
        let len = rest
            .find(|c: char| c.is_whitespace() || ":,<>()`".contains(c))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(format!("expected a field name at offset {start}"));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    fn parse(&mut self, depth: usize) -> Result<HiveType, String> {
        if depth > TYPE_DEPTH_MAX {
            return Err(format!("nested deeper than {TYPE_DEPTH_MAX} levels"));
        }
        let start = {
            self.skip_ws();
            self.pos
        };
        let word = self.word().to_ascii_lowercase();
        let t = match word.as_str() {
            "string" => HiveType::String,
            "boolean" => HiveType::Boolean,
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
            "binary" => HiveType::Binary,
            "char" | "varchar" => {
                self.expect('(')?;
                let n = self.number()?;
                self.expect(')')?;
                let max = if word == "char" {
                    CHAR_LENGTH_MAX
                } else {
                    VARCHAR_LENGTH_MAX
                };
                if n == 0 || n > max {
                    return Err(format!("{word} length {n} is outside 1..={max}"));
                }
                if word == "char" {
                    HiveType::Char(n)
                } else {
                    HiveType::Varchar(n)
                }
            }
            "decimal" | "dec" | "numeric" => self.decimal()?,
            "array" => {
                self.expect('<')?;
                let element = self.parse(depth + 1)?;
                self.expect('>')?;
                HiveType::Array(Box::new(element))
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse(depth + 1)?;
                if !key.is_primitive() {
                    return Err(format!("a map's key must be a primitive type, not {key}"));
                }
                self.expect(',')?;
                let value = self.parse(depth + 1)?;
                self.expect('>')?;
                HiveType::Map(Box::new(key), Box::new(value))
            }
            "struct" => self.struct_fields(depth)?,
            "" => {
                return Err(match self.peek() {
                    None => format!("expected a type at offset {start} but the text ends"),
                    Some(_) => format!(
                        "expected a type at offset {start} but found \"{}\"",
                        self.rest_excerpt()
                    ),
                });
            }
            _ => return Err(format!("unknown type \"{word}\" at offset {start}")),
        };
        Ok(t)
    }

    fn decimal(&mut self) -> Result<HiveType, String> {
        let (mut precision, mut scale) = (10u32, 0u32);
        if self.peek() == Some('(') {
            self.expect('(')?;
            precision = self.number()?;
            if self.peek() == Some(',') {
                self.expect(',')?;
                scale = self.number()?;
            }
            self.expect(')')?;
        }
        if precision == 0 || precision > u32::from(DECIMAL_PRECISION_MAX) {
            return Err(format!(
                "decimal precision {precision} is outside 1..={DECIMAL_PRECISION_MAX}"
            ));
        }
        if scale > precision {
            return Err(format!(
                "decimal scale {scale} is larger than its precision {precision}"
            ));
        }
        Ok(HiveType::Decimal {
            precision: precision as u8,
            scale: scale as u8,
        })
    }

    fn struct_fields(&mut self, depth: usize) -> Result<HiveType, String> {
        self.expect('<')?;
        let mut fields: Vec<(String, HiveType)> = Vec::new();
        if self.peek() == Some('>') {
            return Err("a struct needs at least one field".to_owned());
        }
        loop {
            let name = self.field_name()?;
            if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(format!("struct field \"{name}\" appears twice"));
            }
            self.expect(':')?;
            let t = self.parse(depth + 1)?;
            fields.push((name, t));
            match self.peek() {
                Some(',') => self.expect(',')?,
                _ => break,
            }
        }
        self.expect('>')?;
        Ok(HiveType::Struct(fields))
    }
}

/// One Glue column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub hive_type: HiveType,
}

/// A table's columns (Glue's `StorageDescriptor.Columns`) and the Arrow schema built
/// from them: one nullable field per column, in order.
#[derive(Clone, Debug)]
pub struct Schema {
    columns: Vec<Column>,
    arrow: SchemaRef,
}

impl Schema {
    /// From (name, type string) pairs. Refuses an empty table, empty or duplicate
    /// names (Hive names are case-insensitive) and bad type strings, naming the column.
    pub fn new(columns: &[(String, String)]) -> Result<Schema, String> {
        if columns.is_empty() {
            return Err("the table has no columns".to_owned());
        }
        let mut parsed: Vec<Column> = Vec::with_capacity(columns.len());
        for (name, type_text) in columns {
            if name.trim().is_empty() {
                return Err("a column has an empty name".to_owned());
            }
            if parsed.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
                return Err(format!("column \"{name}\" appears twice"));
            }
            let hive_type = parse_type(type_text).map_err(|e| format!("column \"{name}\": {e}"))?;
            parsed.push(Column {
                name: name.clone(),
                hive_type,
            });
        }
        let fields: Vec<Field> = parsed
            .iter()
            .map(|c| Field::new(&c.name, c.hive_type.arrow_type(), true))
            .collect();
        Ok(Schema {
            columns: parsed,
            arrow: Arc::new(ArrowSchema::new(fields)),
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        let parsed = parse_type(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.to_string(), expected, "{text}");
        // The canonical form parses back to the same type.
        assert_eq!(parse_type(expected).unwrap(), parsed);
    }

    fn refused(text: &str, needle: &str) {
        let err = parse_type(text).expect_err(text);
        assert!(err.contains(needle), "{text}: {err:?} lacks {needle:?}");
    }

    #[test]
    fn parses_scalars_case_insensitively() {
        for (text, expected) in [
            ("string", "string"),
            ("STRING", "string"),
            ("Char(10)", "char(10)"),
            ("varchar ( 300 )", "varchar(300)"),
            ("boolean", "boolean"),
            ("TINYINT", "tinyint"),
            ("smallint", "smallint"),
            ("int", "int"),
            ("Integer", "int"),
            ("bigint", "bigint"),
            ("float", "float"),
            ("double", "double"),
            ("decimal", "decimal(10,0)"),
            ("decimal(7)", "decimal(7,0)"),
            ("DECIMAL(38, 10)", "decimal(38,10)"),
            ("numeric(5,2)", "decimal(5,2)"),
            ("date", "date"),
            ("  timestamp ", "timestamp"),
            ("binary", "binary"),
        ] {
            check(text, expected);
        }
    }

    #[test]
    fn parses_nested() {
        check("array<int>", "array<int>");
        check("ARRAY < STRING >", "array<string>");
        check("map<string,array<bigint>>", "map<string,array<bigint>>");
        check(
            "struct< a : int , B:struct<c:array<map<int, double>>>, `we ird`:string>",
            "struct<a:int,B:struct<c:array<map<int,double>>>,`we ird`:string>",
        );
        check(
            "array<struct<x:decimal(5,2),y:timestamp>>",
            "array<struct<x:decimal(5,2),y:timestamp>>",
        );
        check("struct<`a``b`:int>", "struct<`a``b`:int>");
        let t = parse_type("struct<a:int,b:string>").unwrap();
        assert_eq!(
            t,
            HiveType::Struct(vec![
                ("a".into(), HiveType::Int),
                ("b".into(), HiveType::String)
            ])
        );
    }

    #[test]
    fn refuses_bad_types_clearly() {
        refused("", "expected a type at offset 0 but the text ends");
        refused("strin", "unknown type \"strin\"");
        refused("int int", "unexpected \"int\" at offset 4");
        refused("array<int", "expected '>' at offset 9 but the text ends");
        refused("array<>", "expected a type at offset 6 but found \">\"");
        refused(
            "map<array<int>,string>",
            "a map's key must be a primitive type, not array<int>",
        );
        refused("map<string>", "expected ','");
        refused("struct<>", "at least one field");
        refused("struct<a:int,A:string>", "struct field \"A\" appears twice");
        refused("struct<a int>", "expected ':'");
        refused("decimal(39,2)", "decimal precision 39 is outside 1..=38");
        refused(
            "decimal(5,6)",
            "decimal scale 6 is larger than its precision 5",
        );
        refused("char(0)", "char length 0 is outside 1..=255");
        refused(
            "varchar(70000)",
            "varchar length 70000 is outside 1..=65535",
        );
        refused("char", "expected '('");
        refused("decimal(99999999999)", "too large");
        refused("uniontype<int,string>", "unknown type \"uniontype\"");
        let deep = format!("{}int{}", "array<".repeat(70), ">".repeat(70));
        refused(&deep, "nested deeper than 64 levels");
    }

    #[test]
    fn schema_builds_arrow_fields() {
        let cols = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let schema = Schema::new(&cols(&[
            ("id", "bigint"),
            ("tags", "array<string>"),
            ("attrs", "map<string,int>"),
            ("ts", "timestamp"),
        ]))
        .unwrap();
        let arrow = schema.arrow_schema();
        assert_eq!(arrow.fields().len(), 4);
        assert!(arrow.fields().iter().all(|f| f.is_nullable()));
        assert_eq!(arrow.field(0).data_type(), &DataType::Int64);
        assert_eq!(
            arrow.field(3).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert!(matches!(arrow.field(1).data_type(), DataType::List(f) if f.name() == "element"));
        assert!(
            matches!(arrow.field(2).data_type(), DataType::Map(f, false) if f.name() == "key_value")
        );

        let err = Schema::new(&cols(&[("a", "int"), ("b", "nope")])).unwrap_err();
        assert!(
            err.starts_with("column \"b\": type \"nope\": unknown type"),
            "{err}"
        );
        assert_eq!(Schema::new(&[]).unwrap_err(), "the table has no columns");
        let err = Schema::new(&cols(&[("a", "int"), ("A", "int")])).unwrap_err();
        assert_eq!(err, "column \"A\" appears twice");
    }
}
