//! The read API other services use: [`GlueCatalog`] answers a table's schema
//! (columns and partition keys with their Hive type strings) as of a version,
//! from the last published state, without a lock. Firehose's record format
//! conversion reads its `SchemaConfiguration` through it.

use riffle_engine::meta::MetaHandle;
use riffle_protocol::Error;
use serde_json::Value;

use crate::state::{GlueState, Table, TableVersion};

/// A table's schema as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// `StorageDescriptor.Columns`: (name, Hive type string), in order.
    pub columns: Vec<(String, String)>,
    /// `PartitionKeys`: (name, Hive type string), in order.
    pub partition_keys: Vec<(String, String)>,
    /// The version these come from ("0", "1", ...).
    pub version_id: String,
}

/// A handle on the catalog. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct GlueCatalog {
    pub(crate) meta: MetaHandle<GlueState>,
    pub(crate) catalog_id: String,
}

impl std::fmt::Debug for GlueCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueCatalog")
            .field("catalog_id", &self.catalog_id)
            .finish()
    }
}

impl GlueCatalog {
    /// The catalog's id: the server's account.
    pub fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    /// The schema of `database`.`table` as of `version_id` (None or "LATEST":
    /// the current version). Names are matched as Glue matches them, ignoring
    /// case. Errors name what is missing: the database, the table, the version,
    /// or a column without a type.
    pub fn table(
        &self,
        database: &str,
        table: &str,
        version_id: Option<&str>,
    ) -> Result<TableSchema, Error> {
        let state = self.meta.state();
        schema(&state, database, table, version_id)
    }
}

/// [`GlueCatalog::table`] on a state.
pub fn schema(
    state: &GlueState,
    database: &str,
    table: &str,
    version_id: Option<&str>,
) -> Result<TableSchema, Error> {
    let (database, table) = (database.to_lowercase(), table.to_lowercase());
    let d = state
        .databases
        .get(&database)
        .ok_or_else(|| Error::not_found(format!("Glue database {database} not found.")))?;
    let t = d.tables.get(&table).ok_or_else(|| {
        Error::not_found(format!(
            "Glue table {table} not found in database {database}."
        ))
    })?;
    let (id, v) = version(t, version_id).map_err(|e| match e {
        VersionError::NotANumber(v) => Error::invalid(format!(
            "Glue table {database}.{table}: VersionId {v:?} is not a version number."
        )),
        VersionError::Missing(v) => {
            Error::not_found(format!("Glue table {database}.{table} has no version {v}."))
        }
    })?;
    let where_ = format!("{database}.{table} version {id}");
    let columns = columns_of(
        v.input.pointer("/StorageDescriptor/Columns"),
        &where_,
        "column",
    )?;
    let partition_keys = columns_of(v.input.get("PartitionKeys"), &where_, "partition key")?;
    Ok(TableSchema {
        columns,
        partition_keys,
        version_id: id.to_string(),
    })
}

fn columns_of(
    list: Option<&Value>,
    where_: &str,
    what: &str,
) -> Result<Vec<(String, String)>, Error> {
    let Some(list) = list.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|c| {
            let name = c.get("Name").and_then(Value::as_str).unwrap_or_default();
            match c.get("Type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Ok((name.to_string(), t.to_string())),
                _ => Err(Error::invalid(format!(
                    "Glue table {where_}: {what} {name} has no Type."
                ))),
            }
        })
        .collect()
}

/// Why a version could not be found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VersionError {
    NotANumber(String),
    Missing(u64),
}

/// Version `id` of `t` (None or "LATEST": the current one).
pub(crate) fn version<'t>(
    t: &'t Table,
    id: Option<&str>,
) -> Result<(u64, &'t TableVersion), VersionError> {
    match id {
        None | Some("LATEST") => Ok(t.latest()),
        Some(s) => {
            let n: u64 = s
                .parse()
                .map_err(|_| VersionError::NotANumber(s.to_string()))?;
            t.versions
                .get(&n)
                .map(|v| (n, v))
                .ok_or(VersionError::Missing(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Event;
    use riffle_protocol::ErrorCode;
    use riffle_store::metalog::StateMachine;
    use serde_json::json;

    fn state() -> GlueState {
        let mut s = GlueState::default();
        let events = [
            Event::CreateDatabase {
                name: "db".into(),
                input: json!({}),
                at_ms: 0,
                tags: Default::default(),
            },
            Event::CreateTable {
                database: "db".into(),
                name: "t".into(),
                input: json!({
                    "Name": "t",
                    "StorageDescriptor": {"Columns": [
                        {"Name": "id", "Type": "bigint"},
                        {"Name": "tags", "Type": "array<struct<k:string,v:string>>"},
                    ]},
                    "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                }),
                at_ms: 0,
            },
            Event::UpdateTable {
                database: "db".into(),
                name: "t".into(),
                input: json!({"Name": "t", "StorageDescriptor": {"Columns": [
                    {"Name": "id", "Type": "string"}, {"Name": "untyped"},
                ]}}),
                expected_version: None,
                skip_archive: false,
                versions_max: 10,
                at_ms: 1,
            },
        ];
        for e in events {
            s.check(&e).unwrap();
            s.apply(e);
        }
        s
    }

    #[test]
    fn schemas_by_version_and_errors_that_name_what_is_missing() {
        let s = state();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        let v0 = schema(&s, "DB", "T", Some("0")).unwrap();
        assert_eq!(
            v0,
            TableSchema {
                columns: vec![
                    pair("id", "bigint"),
                    pair("tags", "array<struct<k:string,v:string>>")
                ],
                partition_keys: vec![pair("dt", "string")],
                version_id: "0".into(),
            }
        );
        let check = |db: &str, t: &str, v: Option<&str>, code: ErrorCode, message: &str| {
            let e = schema(&s, db, t, v).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (code, message));
        };
        // The latest version has a column without a type.
        let untyped = "Glue table db.t version 1: column untyped has no Type.";
        check("db", "t", None, ErrorCode::InvalidArgument, untyped);
        check(
            "db",
            "t",
            Some("LATEST"),
            ErrorCode::InvalidArgument,
            untyped,
        );
        check(
            "nodb",
            "t",
            None,
            ErrorCode::ResourceNotFound,
            "Glue database nodb not found.",
        );
        check(
            "db",
            "x",
            None,
            ErrorCode::ResourceNotFound,
            "Glue table x not found in database db.",
        );
        check(
            "db",
            "t",
            Some("7"),
            ErrorCode::ResourceNotFound,
            "Glue table db.t has no version 7.",
        );
        check(
            "db",
            "t",
            Some("v1"),
            ErrorCode::InvalidArgument,
            "Glue table db.t: VersionId \"v1\" is not a version number.",
        );
    }
}
