//! The SQL types of KDA's dialect: what a `SqlType` of the API or a column
//! of `CREATE STREAM` may be, parsed once by sqlparser's type parser so both
//! mean the same, and each type's Arrow form (docs/analytics-design.md §2.2).

use std::fmt;

use arrow_schema::{DataType, TimeUnit};
use sqlparser::ast::{self, CharacterLength, ExactNumberInfo};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Decimal precision Riffle serves (Arrow's Decimal128 holds 38; KDA's
/// exact decimals are parsed by `riffle_columnar`-style code up to 19).
pub const DECIMAL_PRECISION_MAX: u8 = 38;

/// A column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlType {
    Boolean,
    TinyInt,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Fixed-length text; longer values are truncated to `len` characters.
    Char {
        len: u32,
    },
    /// Text up to `len` characters; longer values are truncated.
    Varchar {
        len: u32,
    },
    Binary {
        len: u32,
    },
    Varbinary {
        len: u32,
    },
    Date,
    Time,
    Timestamp,
}

impl SqlType {
    /// Parses a type as the API's `SqlType` members spell it (`VARCHAR(4)`,
    /// `REAL`, `DECIMAL(10,2)`, `TIMESTAMP`).
    pub fn parse(text: &str) -> Result<SqlType, String> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| format!("{text:?} is not a SQL type: {e}"))?;
        let ty = parser
            .parse_data_type()
            .map_err(|e| format!("{text:?} is not a SQL type: {e}"))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(format!("{text:?} is not a SQL type"));
        }
        SqlType::of_ast(&ty)
    }

    /// The type sqlparser parsed, or why KDA has no such column type.
    pub fn of_ast(ty: &ast::DataType) -> Result<SqlType, String> {
        use ast::DataType as D;
        let chars = |l: &Option<CharacterLength>, default: u32| match l {
            None => Ok(default),
            Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("length {length} of {ty} is out of range")),
            Some(CharacterLength::Max) => Err(format!("{ty} is not a KDA type")),
        };
        let bytes = |l: Option<u64>, default: u32| match l {
            None => Ok(default),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("length {n} of {ty} is out of range")),
        };
        let decimal = |info: &ExactNumberInfo| {
            let (p, s) = match *info {
                ExactNumberInfo::None => (DECIMAL_PRECISION_MAX as u64, 0),
                ExactNumberInfo::Precision(p) => (p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
            };
            if !(1..=DECIMAL_PRECISION_MAX as u64).contains(&p) || s < 0 || s as u64 > p {
                return Err(format!(
                    "{ty}: precision must be 1 to {DECIMAL_PRECISION_MAX} and scale 0 to the precision"
                ));
            }
            Ok(SqlType::Decimal {
                precision: p as u8,
                scale: s as i8,
            })
        };
        Ok(match ty {
            D::Boolean | D::Bool => SqlType::Boolean,
            D::TinyInt(None) => SqlType::TinyInt,
            D::SmallInt(None) => SqlType::SmallInt,
            D::Int(None) | D::Integer(None) => SqlType::Integer,
            D::BigInt(None) => SqlType::BigInt,
            D::Real => SqlType::Real,
            D::Double(ExactNumberInfo::None) | D::DoublePrecision => SqlType::Double,
            D::Float(ExactNumberInfo::None) => SqlType::Double,
            D::Decimal(info) | D::Numeric(info) | D::Dec(info) => decimal(info)?,
            D::Char(l) | D::Character(l) => SqlType::Char { len: chars(l, 1)? },
            D::Varchar(l) | D::CharVarying(l) | D::CharacterVarying(l) => SqlType::Varchar {
                // A VARCHAR without a length holds up to a row's size.
                len: chars(l, 65_535)?,
            },
            D::Binary(l) => SqlType::Binary { len: bytes(*l, 1)? },
            D::Varbinary(l) => SqlType::Varbinary {
                len: match l {
                    None => 65_535,
                    Some(ast::BinaryLength::IntegerLength { length }) => bytes(Some(*length), 1)?,
                    Some(ast::BinaryLength::Max) => return Err(format!("{ty} is not a KDA type")),
                },
            },
            D::Date => SqlType::Date,
            D::Time(None, ast::TimezoneInfo::None) => SqlType::Time,
            D::Timestamp(None, ast::TimezoneInfo::None) => SqlType::Timestamp,
            other => return Err(format!("{other} is not a KDA column type")),
        })
    }

    /// The Arrow type values of this SQL type are kept in.
    pub fn arrow(self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            SqlType::Char { .. } | SqlType::Varchar { .. } => DataType::Utf8,
            SqlType::Binary { .. } | SqlType::Varbinary { .. } => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            SqlType::TinyInt
                | SqlType::SmallInt
                | SqlType::Integer
                | SqlType::BigInt
                | SqlType::Real
                | SqlType::Double
                | SqlType::Decimal { .. }
        )
    }

    pub fn is_text(self) -> bool {
        matches!(self, SqlType::Char { .. } | SqlType::Varchar { .. })
    }
}

impl fmt::Display for SqlType {
    /// The type as KDA writes it (`VARCHAR(4)`, `DECIMAL(10,2)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::TinyInt => f.write_str("TINYINT"),
            SqlType::SmallInt => f.write_str("SMALLINT"),
            SqlType::Integer => f.write_str("INTEGER"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Real => f.write_str("REAL"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            SqlType::Char { len } => write!(f, "CHAR({len})"),
            SqlType::Varchar { len } => write!(f, "VARCHAR({len})"),
            SqlType::Binary { len } => write!(f, "BINARY({len})"),
            SqlType::Varbinary { len } => write!(f, "VARBINARY({len})"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Time => f.write_str("TIME"),
            SqlType::Timestamp => f.write_str("TIMESTAMP"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_type_strings_parse_as_code_does() {
        let cases = [
            ("VARCHAR(4)", SqlType::Varchar { len: 4 }),
            ("varchar(16)", SqlType::Varchar { len: 16 }),
            ("REAL", SqlType::Real),
            ("DOUBLE", SqlType::Double),
            ("DOUBLE PRECISION", SqlType::Double),
            ("INTEGER", SqlType::Integer),
            ("INT", SqlType::Integer),
            ("BIGINT", SqlType::BigInt),
            ("TINYINT", SqlType::TinyInt),
            ("SMALLINT", SqlType::SmallInt),
            ("BOOLEAN", SqlType::Boolean),
            ("TIMESTAMP", SqlType::Timestamp),
            ("timestamp", SqlType::Timestamp),
            ("DATE", SqlType::Date),
            ("TIME", SqlType::Time),
            ("CHAR(3)", SqlType::Char { len: 3 }),
            (
                "DECIMAL(10,2)",
                SqlType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("VARBINARY(8)", SqlType::Varbinary { len: 8 }),
        ];
        for (text, want) in cases {
            assert_eq!(SqlType::parse(text), Ok(want), "{text}");
        }
        for t in [
            SqlType::Varchar { len: 4 },
            SqlType::Decimal {
                precision: 10,
                scale: 2,
            },
            SqlType::Timestamp,
        ] {
            assert_eq!(SqlType::parse(&t.to_string()), Ok(t));
        }
    }

    #[test]
    fn other_types_are_refused_with_the_reason() {
        for bad in [
            "TEXT",
            "JSON",
            "VARCHAR(0)",
            "DECIMAL(40,2)",
            "INT ARRAY",
            "",
            "VARCHAR(4) x",
        ] {
            assert!(SqlType::parse(bad).is_err(), "{bad}");
        }
        assert!(SqlType::parse("TEXT").unwrap_err().contains("TEXT"));
    }
}
