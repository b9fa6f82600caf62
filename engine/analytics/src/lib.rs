//! riffle-analytics: Kinesis Data Analytics for SQL applications run on
//! Riffle's own streams (docs/analytics.md says what is served;
//! docs/analytics-design.md has the design and its sources).
//!
//! Pure parts (no runtime, unit-tested):
//! - `sql`: the KDA dialect parsed (a token pre-pass, then sqlparser) into
//!   streams and pumps, with every error at its line and column;
//! - `schema`: the SQL column types and their Arrow forms.

pub mod schema;
pub mod sql;
