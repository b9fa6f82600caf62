//! Riffle's Glue Data Catalog subset: databases, tables and table versions,
//! served with AWS Glue's API (`AWSGlue.*`, JSON 1.1) so that `aws glue
//! create-database` / `create-table` work unchanged, and read by Firehose's
//! record format conversion through [`GlueCatalog`] (its
//! `SchemaConfiguration` names a database, a table and a version).
//!
//! Pure parts, runtime-free and unit-tested: `state` (the metadata's state
//! machine), `listing` (GetTables' Expression, paging tokens), `shapes` (the
//! answers), `catalog` (the schema read). Runtime parts: `service` (the
//! gateway's `Service`), `ops` (the operations). docs/glue.md says what is
//! served and how it differs from AWS.

pub mod catalog;
pub mod listing;
mod ops;
pub mod service;
pub mod shapes;
pub mod state;

#[cfg(test)]
mod state_tests;

pub use catalog::{GlueCatalog, TableSchema};
pub use service::{GlueConfig, GlueService};
