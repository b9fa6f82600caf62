//! Answer shapes: the model's `Database`, `Table` and `TableVersion` made from
//! the stored inputs, with what Glue adds (CatalogId, DatabaseName, times,
//! VersionId, defaults it reports). Pure.

use serde_json::{Map, Value, json};

use crate::state::{Database, Table, TableVersion};

/// Seconds since the epoch, as JSON 1.1 timestamps are written.
pub fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// What Glue reports as a database's default permissions for new tables when
/// none are given (Lake Formation's default: IAM access control only).
fn default_permissions() -> Value {
    json!([{
        "Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"},
        "Permissions": ["ALL"],
    }])
}

/// A `Database`.
pub fn database(d: &Database, catalog_id: &str) -> Value {
    let mut m = d.input.as_object().cloned().unwrap_or_default();
    m.insert("Name".into(), json!(d.name));
    m.insert("CreateTime".into(), seconds(d.created_ms));
    m.insert("CatalogId".into(), json!(catalog_id));
    m.entry("CreateTableDefaultPermissions")
        .or_insert_with(default_permissions);
    Value::Object(m)
}

/// `TableInput` members the `Table` shape has under another shape, left out.
const INPUT_ONLY: &[&str] = &["ViewDefinition"];

/// A `Table` as of version `id` (its definition `v`).
pub fn table(database: &str, t: &Table, id: u64, v: &TableVersion, catalog_id: &str) -> Value {
    let mut m: Map<String, Value> = v.input.as_object().cloned().unwrap_or_default();
    for member in INPUT_ONLY {
        m.remove(*member);
    }
    m.insert("Name".into(), json!(t.name));
    m.insert("DatabaseName".into(), json!(database));
    m.insert("CreateTime".into(), seconds(t.created_ms));
    m.insert("UpdateTime".into(), seconds(v.updated_ms));
    m.entry("Retention").or_insert(json!(0));
    m.entry("PartitionKeys").or_insert(json!([]));
    m.insert("IsRegisteredWithLakeFormation".into(), json!(false));
    m.insert("CatalogId".into(), json!(catalog_id));
    m.insert("VersionId".into(), json!(id.to_string()));
    Value::Object(m)
}

/// A `TableVersion`.
pub fn table_version(
    database: &str,
    t: &Table,
    id: u64,
    v: &TableVersion,
    catalog_id: &str,
) -> Value {
    json!({
        "Table": table(database, t, id, v, catalog_id),
        "VersionId": id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_database_carries_what_glue_adds() {
        let d = Database {
            name: "db".into(),
            input: json!({"Description": "d", "Parameters": {"k": "v"}}),
            created_ms: 1_700_000_000_500,
            size: 0,
            tables: BTreeMap::new(),
            tags: BTreeMap::new(),
        };
        assert_eq!(
            database(&d, "123456789012"),
            json!({
                "Name": "db", "Description": "d", "Parameters": {"k": "v"},
                "CreateTime": 1_700_000_000.5, "CatalogId": "123456789012",
                "CreateTableDefaultPermissions": [{
                    "Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"},
                    "Permissions": ["ALL"],
                }],
            })
        );
    }

    #[test]
    fn a_table_is_its_input_with_glues_members() {
        let v = TableVersion {
            input: json!({
                "Name": "t", "Retention": 5, "ViewDefinition": {"IsProtected": true},
                "StorageDescriptor": {"Columns": [{"Name": "a", "Type": "int"}]},
            }),
            updated_ms: 3000,
            size: 0,
        };
        let t = Table {
            name: "t".into(),
            created_ms: 1000,
            versions: BTreeMap::from([(4, v.clone())]),
        };
        assert_eq!(
            table_version("db", &t, 4, &v, "000000000000"),
            json!({
                "VersionId": "4",
                "Table": {
                    "Name": "t", "DatabaseName": "db", "Retention": 5,
                    "StorageDescriptor": {"Columns": [{"Name": "a", "Type": "int"}]},
                    "PartitionKeys": [], "CreateTime": 1.0, "UpdateTime": 3.0,
                    "IsRegisteredWithLakeFormation": false,
                    "CatalogId": "000000000000", "VersionId": "4",
                },
            })
        );
    }
}
