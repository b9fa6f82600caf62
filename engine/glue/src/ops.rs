//! Glue's operations on databases, tables and table versions. Inputs have
//! passed the model's checks; what is checked here is what Glue checks after
//! them (InvalidInputException, the catalog's bounds), then the state's own
//! refusals (EntityNotFoundException, AlreadyExistsException,
//! ConcurrentModificationException) come from the metadata log.
//!
//! Names are lowercased as Glue lowercases them, on the way in and in lookups.

use std::ops::Bound;
use std::sync::Arc;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::rt;
use riffle_protocol::{Error, ErrorCode};
use riffle_store::metalog::EVENT_SIZE_MAX;
use serde_json::{Map, Value, json};

use crate::catalog::{VersionError, version};
use crate::listing::{NameFilter, PAGE_SIZE_DEFAULT, page, position};
use crate::service::{Shared, refusal};
use crate::shapes;
use crate::state::{Event, GlueState, input_size};

type Answer = Result<Value, Refusal>;

/// Databases in the catalog (AWS's default quota per account).
pub const DATABASES_MAX: usize = 10_000;
/// Tables in the whole catalog. Riffle's bound, below AWS's (200,000 per
/// database): the catalog is one in-memory state, cloned on every change.
pub const TABLES_MAX: usize = 20_000;
/// Versions a table keeps (its current one and the newest archived ones);
/// an update past it drops the oldest. AWS keeps up to 100,000 and then
/// refuses; Riffle keeps fewer and never refuses an update for it.
pub const TABLE_VERSIONS_MAX: u32 = 100;
/// Bytes of stored definitions (as JSON) in the whole catalog: the state is
/// cloned whole on every change and snapshotted whole every 256 changes, so
/// it stays small enough for both to be cheap.
pub const CATALOG_BYTES_MAX: u64 = 64 << 20;

/// Refuses a CatalogId that is not this server's account.
fn catalog(s: &Shared, input: &Input<'_>) -> Result<(), Refusal> {
    match input.str("CatalogId")? {
        Some(id) if id != s.config.account => Err(refusal(Error::not_found(format!(
            "Catalog {id} not found: this server's catalog is {}.",
            s.config.account
        )))),
        _ => Ok(()),
    }
}

/// Members that name features Riffle does not serve: refused, not ignored,
/// so a client relying on them hears it.
fn unserved(input: &Input<'_>, members: &[&str]) -> Result<(), Refusal> {
    for m in members {
        if input.get(m).is_some() {
            return Err(refusal(Error::invalid(format!(
                "{m} is not supported by this server (Riffle serves no Lake Formation transactions, time travel or open table formats)."
            ))));
        }
    }
    Ok(())
}

fn lower(input: &Input<'_>, key: &str) -> Result<String, Refusal> {
    Ok(input.required_str(key)?.to_lowercase())
}

fn page_size(input: &Input<'_>) -> Result<usize, Refusal> {
    Ok(input.int("MaxResults")?.map_or(PAGE_SIZE_DEFAULT, |n| {
        n.clamp(1, PAGE_SIZE_DEFAULT as i64) as usize
    }))
}

/// Refuses an event the metadata log could not hold, or one past the bytes bound.
fn check_size(state: &GlueState, event: &Event, added: u64, what: &str) -> Result<(), Refusal> {
    let size = serde_json::to_vec(event).map_or(usize::MAX, |v| v.len());
    if size > EVENT_SIZE_MAX {
        return Err(refusal(Error::invalid(format!(
            "{what} is {size} bytes as stored; this server takes at most {EVENT_SIZE_MAX}."
        ))));
    }
    if state.bytes + added > CATALOG_BYTES_MAX {
        return Err(refusal(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "The catalog holds {} bytes of definitions; this server takes at most {CATALOG_BYTES_MAX}.",
                state.bytes
            ),
        )));
    }
    Ok(())
}

async fn apply(s: &Shared, event: Event) -> Answer {
    s.meta.apply(event).await.map_err(refusal)?;
    Ok(json!({}))
}

pub(crate) async fn create_database(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let db = input
        .object("DatabaseInput")?
        .ok_or_else(|| riffle_aws::input::null_member("DatabaseInput"))?;
    let name = lower(&db, "Name")?;
    let mut stored = db.0.clone();
    stored.remove("Name");
    let state = s.meta.state();
    if state.databases.len() >= DATABASES_MAX && !state.databases.contains_key(&name) {
        return Err(refusal(Error::new(
            ErrorCode::LimitExceeded,
            format!("The catalog holds {DATABASES_MAX} databases, the most it takes."),
        )));
    }
    let input = Value::Object(stored);
    let added = input_size(&input);
    let event = Event::CreateDatabase {
        name,
        input,
        at_ms: rt::now_ms(),
    };
    check_size(&state, &event, added, "DatabaseInput")?;
    apply(s, event).await
}

pub(crate) fn get_database(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let name = lower(&input, "Name")?;
    let state = s.meta.state();
    let d = state.database(&name).map_err(refusal)?;
    Ok(json!({ "Database": shapes::database(d, &s.config.account) }))
}

pub(crate) fn get_databases(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let state = s.meta.state();
    // Databases shared from other accounts: none here.
    if input.str("ResourceShareType")? == Some("FOREIGN") {
        return Ok(json!({ "DatabaseList": [] }));
    }
    let after = match input.str("NextToken")? {
        Some(t) => Bound::Excluded(position(t).map_err(refusal)?),
        None => Bound::Unbounded,
    };
    let (list, next) = page(
        state
            .databases
            .range((after, Bound::Unbounded))
            .map(|(_, d)| d),
        |d| d.name.clone(),
        page_size(&input)?,
    );
    let list: Vec<Value> = list
        .into_iter()
        .map(|d| shapes::database(d, &s.config.account))
        .collect();
    let mut answer = json!({ "DatabaseList": list });
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    Ok(answer)
}

pub(crate) async fn delete_database(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let name = lower(&input, "Name")?;
    apply(s, Event::DeleteDatabase { name }).await
}

/// The table a create or update names (the request's `Name` or its
/// `TableInput.Name`, which must agree) and its `TableInput` as stored.
fn table_input(input: &Input<'_>) -> Result<(String, Value), Refusal> {
    let Some(table) = input.object("TableInput")? else {
        return Err(refusal(Error::invalid("TableInput is required.")));
    };
    let top = input.str("Name")?.map(str::to_lowercase);
    let inner = table.str("Name")?.map(str::to_lowercase);
    let name = match (top, inner) {
        (Some(a), Some(b)) if a != b => {
            return Err(refusal(Error::invalid(format!(
                "Name {a} and TableInput.Name {b} name different tables."
            ))));
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => return Err(riffle_aws::input::null_member("TableInput.Name")),
    };
    let mut stored: Map<String, Value> = table.0.clone();
    stored.insert("Name".into(), json!(name));
    Ok((name, Value::Object(stored)))
}

pub(crate) async fn create_table(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    unserved(&input, &["TransactionId", "OpenTableFormatInput"])?;
    let database = lower(&input, "DatabaseName")?;
    let (name, stored) = table_input(&input)?;
    let state = s.meta.state();
    state.database(&database).map_err(refusal)?;
    if state.table_count() >= TABLES_MAX {
        return Err(refusal(Error::new(
            ErrorCode::LimitExceeded,
            format!("The catalog holds {TABLES_MAX} tables, the most this server takes."),
        )));
    }
    let added = input_size(&stored);
    let event = Event::CreateTable {
        database,
        name,
        input: stored,
        at_ms: rt::now_ms(),
    };
    check_size(&state, &event, added, "TableInput")?;
    apply(s, event).await
}

pub(crate) async fn update_table(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    unserved(&input, &["TransactionId", "UpdateOpenTableFormatInput"])?;
    let database = lower(&input, "DatabaseName")?;
    let (name, stored) = table_input(&input)?;
    let expected_version = match input.str("VersionId")? {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            refusal(Error::invalid(format!(
                "VersionId {v} is not a version number."
            )))
        })?),
    };
    let state = s.meta.state();
    state.table(&database, &name).map_err(refusal)?;
    let added = input_size(&stored);
    let event = Event::UpdateTable {
        database,
        name,
        input: stored,
        expected_version,
        skip_archive: input.bool("SkipArchive")?.unwrap_or(false),
        versions_max: TABLE_VERSIONS_MAX,
        at_ms: rt::now_ms(),
    };
    check_size(&state, &event, added, "TableInput")?;
    apply(s, event).await
}

pub(crate) async fn delete_table(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    unserved(&input, &["TransactionId"])?;
    let database = lower(&input, "DatabaseName")?;
    let name = lower(&input, "Name")?;
    apply(s, Event::DeleteTable { database, name }).await
}

pub(crate) fn get_table(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    unserved(&input, &["TransactionId", "QueryAsOfTime"])?;
    let database = lower(&input, "DatabaseName")?;
    let name = lower(&input, "Name")?;
    let state = s.meta.state();
    let t = state.table(&database, &name).map_err(refusal)?;
    let (id, v) = t.latest();
    Ok(json!({ "Table": shapes::table(&database, t, id, v, &s.config.account) }))
}

pub(crate) fn get_tables(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    unserved(&input, &["TransactionId", "QueryAsOfTime"])?;
    let database = lower(&input, "DatabaseName")?;
    let filter = match input.str("Expression")? {
        Some(e) => Some(NameFilter::compile(e).map_err(refusal)?),
        None => None,
    };
    let after = match input.str("NextToken")? {
        Some(t) => Bound::Excluded(position(t).map_err(refusal)?),
        None => Bound::Unbounded,
    };
    let state = s.meta.state();
    let d = state.database(&database).map_err(refusal)?;
    let tables = d
        .tables
        .range((after, Bound::Unbounded))
        .map(|(_, t)| t)
        .filter(|t| filter.as_ref().is_none_or(|f| f.matches(&t.name)));
    let (list, next) = page(tables, |t| t.name.clone(), page_size(&input)?);
    let list: Vec<Value> = list
        .into_iter()
        .map(|t| {
            let (id, v) = t.latest();
            shapes::table(&database, t, id, v, &s.config.account)
        })
        .collect();
    let mut answer = json!({ "TableList": list });
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    Ok(answer)
}

pub(crate) fn get_table_version(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let database = lower(&input, "DatabaseName")?;
    let name = lower(&input, "TableName")?;
    let state = s.meta.state();
    let t = state.table(&database, &name).map_err(refusal)?;
    let (id, v) = version(t, input.str("VersionId")?).map_err(|e| match e {
        VersionError::NotANumber(v) => refusal(Error::invalid(format!(
            "VersionId {v} is not a version number."
        ))),
        VersionError::Missing(v) => refusal(Error::not_found(format!(
            "Version {v} of table {name} not found."
        ))),
    })?;
    Ok(json!({
        "TableVersion": shapes::table_version(&database, t, id, v, &s.config.account)
    }))
}

pub(crate) fn get_table_versions(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    catalog(s, &input)?;
    let database = lower(&input, "DatabaseName")?;
    let name = lower(&input, "TableName")?;
    let state = s.meta.state();
    let t = state.table(&database, &name).map_err(refusal)?;
    // Newest first; a token resumes below the last version listed.
    let below = match input.str("NextToken")? {
        Some(token) => {
            let p = position(token).map_err(refusal)?;
            let id: u64 = p
                .parse()
                .map_err(|_| refusal(Error::invalid(format!("Invalid NextToken: {token}"))))?;
            Bound::Excluded(id)
        }
        None => Bound::Unbounded,
    };
    let versions = t.versions.range((Bound::Unbounded, below)).rev();
    let (list, next) = page(versions, |(id, _)| id.to_string(), page_size(&input)?);
    let list: Vec<Value> = list
        .into_iter()
        .map(|(id, v)| shapes::table_version(&database, t, *id, v, &s.config.account))
        .collect();
    let mut answer = json!({ "TableVersions": list });
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    Ok(answer)
}
