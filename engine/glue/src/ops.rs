//! Glue's operations on databases, tables and table versions. Inputs have
//! passed the model's checks; what is checked here is what Glue checks after
//! them (InvalidInputException, the catalog's bounds), then the state's own
//! refusals (EntityNotFoundException, AlreadyExistsException,
//! ConcurrentModificationException) come from the metadata log.
//!
//! Names are lowercased as Glue lowercases them, on the way in and in lookups.
//!
//! The catalog's bounds (databases, tables, bytes) are checked against the
//! state published before the change, not inside the metadata log's
//! serialized apply: concurrent creates that each see room can together go
//! past a bound by as many as run at once. Accepted: the bounds keep the
//! in-memory catalog small, they are not quotas a client is billed by, and
//! `StateMachine::check` must not depend on limits (replay re-runs it).

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
/// so a client relying on them hears it. A member that asks for nothing
/// (`false`, `[]`, `{}`) is accepted.
fn unserved(input: &Input<'_>, members: &[&str]) -> Result<(), Refusal> {
    for m in members {
        let asks = match input.get(m) {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        };
        if asks {
            return Err(unserved_member(m));
        }
    }
    Ok(())
}

fn unserved_member(member: &str) -> Refusal {
    refusal(Error::invalid(format!(
        "{member} is not supported by this server (Riffle's Glue serves databases, tables and table versions: no Lake Formation transactions, time travel, open table formats, partition indexes or views)."
    )))
}

/// `AttributesToGet` read: `None` when absent (everything is answered), else
/// the attributes asked for, which must be one of `combinations` (the ones
/// Glue documents for the operation).
fn attributes<'a>(
    input: &Input<'a>,
    op: &str,
    combinations: &[&[&str]],
) -> Result<Option<Vec<&'a str>>, Refusal> {
    let Some(v) = input.get("AttributesToGet") else {
        return Ok(None);
    };
    let mut asked: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    asked.sort_unstable();
    asked.dedup();
    let fits = |c: &&[&str]| {
        let mut c = c.to_vec();
        c.sort_unstable();
        c == asked
    };
    if combinations.iter().any(fits) {
        return Ok(Some(asked));
    }
    let listed: Vec<String> = combinations.iter().map(|c| c.join(", ")).collect();
    Err(refusal(Error::invalid(format!(
        "AttributesToGet [{}] is not one of the combinations {op} takes: [{}].",
        asked.join(", "),
        listed.join("], [")
    ))))
}

/// `answer` cut to the members `attributes` ask for (`members` pairs each
/// attribute with the member it names).
fn only(answer: Value, attributes: &[&str], members: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    for (attribute, member) in members {
        if attributes.contains(attribute)
            && let Some(v) = answer.get(*member)
        {
            out.insert(member.to_string(), v.clone());
        }
    }
    Value::Object(out)
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
    // Kept with the database (GetTags is not served).
    let tags: std::collections::BTreeMap<String, String> = match input.get("Tags") {
        Some(Value::Object(tags)) => tags
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        _ => Default::default(),
    };
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
        tags,
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
    let attributes = attributes(
        &input,
        "GetDatabases",
        &[&["NAME"], &["NAME", "TARGET_DATABASE"]],
    )?;
    let state = s.meta.state();
    // Databases shared from other accounts, or federated ones (referencing
    // an external entity): none here. ALL is the local ones.
    if matches!(
        input.str("ResourceShareType")?,
        Some("FOREIGN" | "FEDERATED")
    ) {
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
        .map(|d| {
            let d = shapes::database(d, &s.config.account);
            match &attributes {
                Some(a) => only(
                    d,
                    a,
                    &[("NAME", "Name"), ("TARGET_DATABASE", "TargetDatabase")],
                ),
                None => d,
            }
        })
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
    unserved(
        &input,
        &["TransactionId", "OpenTableFormatInput", "PartitionIndexes"],
    )?;
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
    unserved(
        &input,
        &[
            "TransactionId",
            "UpdateOpenTableFormatInput",
            "ViewUpdateAction",
            "Force",
        ],
    )?;
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
    let combinations: &[&[&str]] = &[
        &["DEFAULT"],
        &["LATEST_ICEBERG_METADATA"],
        &["DEFAULT", "LATEST_ICEBERG_METADATA"],
    ];
    // DEFAULT is the definition answered anyway; Iceberg metadata is an open
    // table format's, not served.
    if let Some(a) = attributes(&input, "GetTable", combinations)?
        && a.contains(&"LATEST_ICEBERG_METADATA")
    {
        return Err(unserved_member("AttributesToGet LATEST_ICEBERG_METADATA"));
    }
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
    let attributes = attributes(&input, "GetTables", &[&["NAME"], &["NAME", "TABLE_TYPE"]])?;
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
    // Federated tables (referencing an entity outside the catalog): none here.
    if input.str("ResourceShareType")? == Some("FEDERATED") {
        return Ok(json!({ "TableList": [] }));
    }
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
            let t = shapes::table(&database, t, id, v, &s.config.account);
            match &attributes {
                Some(a) => only(t, a, &[("NAME", "Name"), ("TABLE_TYPE", "TableType")]),
                None => t,
            }
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
