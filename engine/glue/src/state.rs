//! The Glue Data Catalog's durable metadata: databases, their tables and each
//! table's versions. A [`StateMachine`] over [`Event`]s, kept in
//! `<data-dir>/meta/glue/` by the engine's metadata log.
//!
//! Names are stored as Glue stores them: lowercase (the handlers lowercase
//! what clients send before building an event; `check` refuses an event whose
//! names are not). A table's definition is the `TableInput` as given (its
//! `Name` lowercased); every `UpdateTable` adds a version, numbered from 0.
//!
//! Runtime-free and deterministic: times come in with the events, and the
//! number of versions a table keeps comes in with each update.

use std::collections::BTreeMap;

use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::StateMachine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    /// The `DatabaseInput` as given, without `Name`.
    pub input: Value,
    pub created_ms: i64,
    /// Bytes of `input` as JSON (what [`GlueState::bytes`] counts).
    pub size: u64,
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
    /// Given with CreateDatabase (kept; GetTags is not served).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One table and its versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub created_ms: i64,
    /// By version id; never empty; the last one is the table's current
    /// definition. Archived versions are the ones before it.
    pub versions: BTreeMap<u64, TableVersion>,
}

/// One version of a table's definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableVersion {
    /// The `TableInput` as given, `Name` lowercased.
    pub input: Value,
    /// When this version was made (the table's UpdateTime while it is current).
    pub updated_ms: i64,
    /// Bytes of `input` as JSON.
    pub size: u64,
}

impl Table {
    /// The current version: its id and definition.
    pub fn latest(&self) -> (u64, &TableVersion) {
        let (id, v) = self
            .versions
            .last_key_value()
            .expect("a table has a version");
        (*id, v)
    }
}

/// The whole catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlueState {
    #[serde(default)]
    pub databases: BTreeMap<String, Database>,
    /// Bytes of every stored input (databases' and tables' versions), the
    /// measure the handlers bound the catalog by.
    #[serde(default)]
    pub bytes: u64,
}

/// A change to the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    CreateDatabase {
        name: String,
        input: Value,
        at_ms: i64,
        /// CreateDatabase's `Tags`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    /// Removes the database and every table in it (Glue deletes them too).
    DeleteDatabase {
        name: String,
    },
    CreateTable {
        database: String,
        name: String,
        input: Value,
        at_ms: i64,
    },
    /// A new version of the table. `expected_version`: the version the client
    /// updated from (`UpdateTable`'s VersionId), refused if it is not the
    /// current one. `skip_archive`: the current version is replaced, not
    /// kept. At most `versions_max` versions are kept: the oldest go.
    UpdateTable {
        database: String,
        name: String,
        input: Value,
        expected_version: Option<u64>,
        skip_archive: bool,
        versions_max: u32,
        at_ms: i64,
    },
    DeleteTable {
        database: String,
        name: String,
    },
}

/// Glue's EntityNotFoundException for a database.
pub fn database_not_found(name: &str) -> Error {
    Error::not_found(format!("Database {name} not found."))
}

/// Glue's EntityNotFoundException for a table.
pub fn table_not_found(name: &str) -> Error {
    Error::not_found(format!("Table {name} not found."))
}

/// The size [`GlueState::bytes`] counts for a stored input.
pub fn input_size(input: &Value) -> u64 {
    serde_json::to_string(input).map_or(0, |s| s.len() as u64)
}

/// Whether `name` is as the handlers make names: its own lowercase. (Not "has
/// no uppercase character": some, as `𝐀` U+1D400 or `🄰` U+1F130, have no
/// lowercase form and stay as they are.)
pub fn is_lowercase(name: &str) -> bool {
    name == name.to_lowercase()
}

fn lowercase(name: &str) -> Result<(), Error> {
    // Ours to guarantee (handlers lowercase): an internal error, not the client's.
    match is_lowercase(name) {
        false => Err(Error::internal(format!(
            "the name {name:?} is not lowercase"
        ))),
        true => Ok(()),
    }
}

impl GlueState {
    pub fn database(&self, name: &str) -> Result<&Database, Error> {
        self.databases
            .get(name)
            .ok_or_else(|| database_not_found(name))
    }

    pub fn table(&self, database: &str, name: &str) -> Result<&Table, Error> {
        self.database(database)?
            .tables
            .get(name)
            .ok_or_else(|| table_not_found(name))
    }

    /// The number of tables in every database.
    pub fn table_count(&self) -> usize {
        self.databases.values().map(|d| d.tables.len()).sum()
    }
}

impl StateMachine for GlueState {
    type Event = Event;

    fn check(&self, event: &Event) -> Result<(), Error> {
        match event {
            Event::CreateDatabase { name, .. } => {
                lowercase(name)?;
                match self.databases.contains_key(name) {
                    true => Err(Error::in_use("Database already exists.")),
                    false => Ok(()),
                }
            }
            Event::DeleteDatabase { name } => self.database(name).map(|_| ()),
            Event::CreateTable { database, name, .. } => {
                lowercase(name)?;
                match self.database(database)?.tables.contains_key(name) {
                    true => Err(Error::in_use("Table already exists.")),
                    false => Ok(()),
                }
            }
            Event::UpdateTable {
                database,
                name,
                expected_version,
                versions_max,
                ..
            } => {
                if *versions_max == 0 {
                    return Err(Error::internal("an update keeping no version"));
                }
                let (current, _) = self.table(database, name)?.latest();
                match expected_version {
                    Some(v) if *v != current => Err(Error::new(
                        ErrorCode::ConcurrentModification,
                        format!(
                            "Table {name} was updated to version {current}; the update was made from version {v}."
                        ),
                    )),
                    _ => Ok(()),
                }
            }
            Event::DeleteTable { database, name } => self.table(database, name).map(|_| ()),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::CreateDatabase {
                name,
                input,
                at_ms,
                tags,
            } => {
                let size = input_size(&input);
                self.bytes += size;
                self.databases.insert(
                    name.clone(),
                    Database {
                        name,
                        input,
                        created_ms: at_ms,
                        size,
                        tables: BTreeMap::new(),
                        tags,
                    },
                );
            }
            Event::DeleteDatabase { name } => {
                let d = self.databases.remove(&name).expect("checked");
                self.bytes -= d.size + d.tables.values().map(table_size).sum::<u64>();
            }
            Event::CreateTable {
                database,
                name,
                input,
                at_ms,
            } => {
                let size = input_size(&input);
                self.bytes += size;
                let version = TableVersion {
                    input,
                    updated_ms: at_ms,
                    size,
                };
                let d = self.databases.get_mut(&database).expect("checked");
                d.tables.insert(
                    name.clone(),
                    Table {
                        name,
                        created_ms: at_ms,
                        versions: BTreeMap::from([(0, version)]),
                    },
                );
            }
            Event::UpdateTable {
                database,
                name,
                input,
                skip_archive,
                versions_max,
                at_ms,
                ..
            } => {
                let size = input_size(&input);
                let d = self.databases.get_mut(&database).expect("checked");
                let t = d.tables.get_mut(&name).expect("checked");
                let (current, _) = t.latest();
                let mut freed = 0;
                if skip_archive {
                    freed += t.versions.remove(&current).expect("current").size;
                }
                t.versions.insert(
                    current + 1,
                    TableVersion {
                        input,
                        updated_ms: at_ms,
                        size,
                    },
                );
                while t.versions.len() > versions_max as usize {
                    freed += t.versions.pop_first().expect("not empty").1.size;
                }
                self.bytes = self.bytes + size - freed;
            }
            Event::DeleteTable { database, name } => {
                let d = self.databases.get_mut(&database).expect("checked");
                let t = d.tables.remove(&name).expect("checked");
                self.bytes -= table_size(&t);
            }
        }
    }

    fn verify(&self) -> Result<(), String> {
        let mut bytes = 0;
        for (key, d) in &self.databases {
            if *key != d.name || !is_lowercase(&d.name) {
                return Err(format!("database {key:?} is stored as {:?}", d.name));
            }
            if d.size != input_size(&d.input) {
                return Err(format!("database {key}'s size {} is wrong", d.size));
            }
            bytes += d.size;
            for (name, t) in &d.tables {
                if *name != t.name || !is_lowercase(&t.name) {
                    return Err(format!("table {key}.{name} is stored as {:?}", t.name));
                }
                if t.versions.is_empty() {
                    return Err(format!("table {key}.{name} has no version"));
                }
                for (id, v) in &t.versions {
                    if v.size != input_size(&v.input) {
                        return Err(format!("version {id} of {key}.{name}: size {}", v.size));
                    }
                }
                bytes += table_size(t);
            }
        }
        match bytes == self.bytes {
            true => Ok(()),
            false => Err(format!(
                "the catalog counts {} bytes, its inputs hold {bytes}",
                self.bytes
            )),
        }
    }
}

fn table_size(t: &Table) -> u64 {
    t.versions.values().map(|v| v.size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(state: &mut GlueState, event: Event) -> Result<(), Error> {
        state.check(&event)?;
        state.apply(event);
        state.verify().unwrap();
        Ok(())
    }

    fn update(name: &str, expected: Option<u64>, skip: bool, max: u32) -> Event {
        Event::UpdateTable {
            database: "db".into(),
            name: name.into(),
            input: json!({"Name": name, "Description": format!("{expected:?} {skip}")}),
            expected_version: expected,
            skip_archive: skip,
            versions_max: max,
            at_ms: 2,
        }
    }

    #[test]
    fn database_tags_are_kept() {
        let mut s = GlueState::default();
        let mut tags = BTreeMap::new();
        tags.insert("team".to_string(), "data".to_string());
        applied(
            &mut s,
            Event::CreateDatabase {
                name: "db".into(),
                input: json!({}),
                at_ms: 1,
                tags: tags.clone(),
            },
        )
        .unwrap();
        assert_eq!(s.databases["db"].tags, tags);
        // Kept across a snapshot (the state is JSON).
        let back: GlueState = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back.databases["db"].tags, tags);
    }

    fn with_table() -> GlueState {
        let mut s = GlueState::default();
        let db = Event::CreateDatabase {
            name: "db".into(),
            input: json!({}),
            at_ms: 1,
            tags: Default::default(),
        };
        applied(&mut s, db).unwrap();
        let t = Event::CreateTable {
            database: "db".into(),
            name: "t".into(),
            input: json!({"Name": "t"}),
            at_ms: 1,
        };
        applied(&mut s, t).unwrap();
        s
    }

    #[test]
    fn refusals_are_glues() {
        let mut s = with_table();
        let check = |s: &mut GlueState, e: Event, code: ErrorCode, message: &str| {
            let err = applied(s, e).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (code, message));
        };
        let db = |name: &str| Event::CreateDatabase {
            name: name.into(),
            input: json!({}),
            at_ms: 1,
            tags: Default::default(),
        };
        check(
            &mut s,
            db("db"),
            ErrorCode::ResourceInUse,
            "Database already exists.",
        );
        let table = |database: &str, name: &str| Event::CreateTable {
            database: database.into(),
            name: name.into(),
            input: json!({}),
            at_ms: 1,
        };
        check(
            &mut s,
            table("db", "t"),
            ErrorCode::ResourceInUse,
            "Table already exists.",
        );
        check(
            &mut s,
            table("no", "t"),
            ErrorCode::ResourceNotFound,
            "Database no not found.",
        );
        let delete = Event::DeleteTable {
            database: "db".into(),
            name: "x".into(),
        };
        check(
            &mut s,
            delete,
            ErrorCode::ResourceNotFound,
            "Table x not found.",
        );
        check(
            &mut s,
            update("t", Some(3), false, 10),
            ErrorCode::ConcurrentModification,
            "Table t was updated to version 0; the update was made from version 3.",
        );
        check(
            &mut s,
            db("Up"),
            ErrorCode::Internal,
            "the name \"Up\" is not lowercase",
        );
    }

    #[test]
    fn names_the_handlers_lowercase_are_accepted_even_with_uppercase_characters() {
        // `𝐀` and `🄰` are uppercase letters without a lowercase form: a
        // lowercased name keeps them, and the state takes it.
        for name in ["𝐀", "🄰", "a𝐀b", "straße", "σς", "i\u{307}"] {
            let lowered = name.to_lowercase();
            let mut s = GlueState::default();
            let db = Event::CreateDatabase {
                name: lowered.clone(),
                input: json!({}),
                at_ms: 1,
                tags: Default::default(),
            };
            applied(&mut s, db).unwrap();
            let t = Event::CreateTable {
                database: lowered.clone(),
                name: lowered.clone(),
                input: json!({}),
                at_ms: 1,
            };
            applied(&mut s, t).unwrap();
        }
        // Lowercasing is idempotent for every character, so whatever a handler
        // lowercased passes the check.
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let once = c.to_lowercase().collect::<String>();
            assert!(is_lowercase(&once), "{c:?} lowercases to {once:?}");
        }
        assert!(!is_lowercase("Up") && !is_lowercase("Σ"));
    }

    #[test]
    fn updates_add_versions_archive_or_replace_and_keep_at_most_the_bound() {
        let mut s = with_table();
        let ids = |s: &GlueState| -> Vec<u64> {
            s.table("db", "t")
                .unwrap()
                .versions
                .keys()
                .copied()
                .collect()
        };
        applied(&mut s, update("t", Some(0), false, 10)).unwrap();
        applied(&mut s, update("t", None, false, 10)).unwrap();
        assert_eq!(ids(&s), [0, 1, 2]);
        // SkipArchive: the current version is replaced by the next id.
        applied(&mut s, update("t", Some(2), true, 10)).unwrap();
        assert_eq!(ids(&s), [0, 1, 3]);
        // The oldest go beyond the bound.
        applied(&mut s, update("t", None, false, 2)).unwrap();
        assert_eq!(ids(&s), [3, 4]);
        assert_eq!(s.table("db", "t").unwrap().latest().1.updated_ms, 2);
    }

    #[test]
    fn deleting_a_database_deletes_its_tables_and_their_bytes() {
        let mut s = with_table();
        applied(&mut s, update("t", None, false, 10)).unwrap();
        assert!(s.bytes > 0);
        applied(&mut s, Event::DeleteDatabase { name: "db".into() }).unwrap();
        assert_eq!(s, GlueState::default());
    }
}
