//! The name-level checks on the statements read, in code order, before any
//! column is resolved (docs/analytics-design.md §3.2, §3.6):
//! - streams, pumps, the application's input streams and reference tables
//!   and `error_stream` share one namespace: a plain `CREATE` of a taken
//!   name is refused, `CREATE OR REPLACE` replaces an earlier one of the
//!   same kind (in its place), and an input, a reference table or
//!   `error_stream` is never created by the code (compared without case:
//!   **Riffle**, so `ERROR_STREAM` is not mistaken for the real one);
//! - a pump's `INSERT INTO` names a stream the code created before it;
//! - a pump's top-level SELECT (each side of a set operation) was written
//!   `SELECT STREAM`;
//! - no pump cycle (a stream feeding itself through pumps).

use std::collections::{HashMap, VecDeque};

use sqlparser::ast::{ObjectNamePart, SetExpr, Spanned};

use super::ddl::Statement;
use super::walk;
use super::{Context, Name, Pos, PumpDef, Script, Source, SqlError, StreamDef};
use crate::limits::ERROR_STREAM;

/// What a name is in the application's namespace.
#[derive(Clone, Copy)]
enum Entry {
    Stream(usize),
    Pump(usize),
}

pub(super) fn check(
    statements: Vec<Statement>,
    context: &Context<'_>,
    source: &Source<'_>,
) -> Result<Script, SqlError> {
    let mut script = Script::default();
    let mut names: HashMap<String, Entry> = HashMap::new();
    for statement in statements {
        match statement {
            Statement::Stream(stream) => {
                not_reserved(&stream.name, "Stream", stream.at, context)?;
                match names.get(&stream.name.text) {
                    None => {
                        names.insert(
                            stream.name.text.clone(),
                            Entry::Stream(script.streams.len()),
                        );
                        script.streams.push(stream);
                    }
                    Some(&Entry::Stream(i)) if stream.or_replace => script.streams[i] = stream,
                    Some(&Entry::Stream(i)) => {
                        return Err(taken(
                            &stream.name,
                            "stream",
                            "stream",
                            script.streams[i].at,
                            stream.at,
                        ));
                    }
                    Some(&Entry::Pump(i)) => {
                        return Err(taken(
                            &stream.name,
                            "stream",
                            "pump",
                            script.pumps[i].at,
                            stream.at,
                        ));
                    }
                }
            }
            Statement::Pump(pump) => {
                not_reserved(&pump.name, "Pump", pump.at, context)?;
                check_target(&pump, &names, context)?;
                check_stream_select(&pump, source)?;
                match names.get(&pump.name.text) {
                    None => {
                        names.insert(pump.name.text.clone(), Entry::Pump(script.pumps.len()));
                        script.pumps.push(pump);
                    }
                    Some(&Entry::Pump(i)) if pump.or_replace => script.pumps[i] = pump,
                    Some(&Entry::Pump(i)) => {
                        return Err(taken(
                            &pump.name,
                            "pump",
                            "pump",
                            script.pumps[i].at,
                            pump.at,
                        ));
                    }
                    Some(&Entry::Stream(i)) => {
                        return Err(taken(
                            &pump.name,
                            "pump",
                            "stream",
                            script.streams[i].at,
                            pump.at,
                        ));
                    }
                }
            }
        }
    }
    check_cycles(&script)?;
    Ok(script)
}

fn is_error_stream(name: &Name) -> bool {
    name.text.eq_ignore_ascii_case(ERROR_STREAM)
}

/// The names the code may not create.
fn not_reserved(name: &Name, kind: &str, at: Pos, context: &Context<'_>) -> Result<(), SqlError> {
    let why = if is_error_stream(name) {
        "error_stream is the application's error stream"
    } else if context.inputs.contains(&name.text.as_str()) {
        "it is an input stream of the application"
    } else if context.reference_tables.contains(&name.text.as_str()) {
        "it is a reference table of the application"
    } else {
        return Ok(());
    };
    Err(SqlError::at(
        format!("{kind} {name} cannot be created: {why}"),
        at,
    ))
}

/// `name`, written at `at`, is already a `was` (a stream or a pump)
/// created at `first`; `kind` is what the statement at `at` creates.
fn taken(name: &Name, kind: &str, was: &str, first: Pos, at: Pos) -> SqlError {
    let message = if kind == was {
        format!(
            "{} {name} already exists (created at line {}, column {}; \
             CREATE OR REPLACE replaces it)",
            capitalized(kind),
            first.line,
            first.column
        )
    } else {
        format!(
            "{name} is already a {was} (created at line {}, column {})",
            first.line, first.column
        )
    };
    SqlError::at(message, at)
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A pump writes a stream the code created before it.
fn check_target(
    pump: &PumpDef,
    names: &HashMap<String, Entry>,
    context: &Context<'_>,
) -> Result<(), SqlError> {
    let target = &pump.target;
    let why = if is_error_stream(target) {
        "only the application writes error_stream".to_string()
    } else if context.inputs.contains(&target.text.as_str()) {
        "it is an input stream".to_string()
    } else if context.reference_tables.contains(&target.text.as_str()) {
        "it is a reference table".to_string()
    } else {
        match names.get(&target.text) {
            Some(Entry::Stream(_)) => return Ok(()),
            Some(Entry::Pump(_)) => "it is a pump, not a stream".to_string(),
            None => "no stream of that name is created before this pump".to_string(),
        }
    };
    Err(SqlError::at(
        format!("Pump {} cannot write {target}: {why}", pump.name),
        pump.target_at,
    ))
}

/// The pump's top-level query is `SELECT STREAM` (each side of a UNION).
fn check_stream_select(pump: &PumpDef, source: &Source<'_>) -> Result<(), SqlError> {
    let mut pending = vec![pump.query.body.as_ref()];
    while let Some(body) = pending.pop() {
        match body {
            SetExpr::Select(select) => {
                if !pump.is_stream_select(select) {
                    let at = Pos::of(select.select_token.0.span.start);
                    return Err(SqlError::unsupported(
                        "SELECT without STREAM in a pump (a query over a stream never ends)",
                        at,
                        source,
                    ));
                }
            }
            SetExpr::Query(query) => pending.push(&query.body),
            SetExpr::SetOperation { left, right, .. } => {
                pending.push(right);
                pending.push(left);
            }
            other => {
                // `VALUES (…)` has no token of its own in the AST.
                let start = other.span().start;
                let at = match other {
                    SetExpr::Values(_) => pump.query_at,
                    _ if start.line > 0 => Pos::of(start),
                    _ => pump.query_at,
                };
                return Err(SqlError::unsupported(
                    "A pump query that is not SELECT STREAM",
                    at,
                    source,
                ));
            }
        }
    }
    Ok(())
}

/// One pump's flow: a stream it reads into the stream it writes.
struct Edge<'s> {
    from: &'s Name,
    pump: &'s Name,
    to: &'s Name,
}

/// Refuses the first pump (in code order) that closes a cycle, naming the
/// cycle.
fn check_cycles(script: &Script) -> Result<(), SqlError> {
    let streams: HashMap<&str, &StreamDef> = script
        .streams
        .iter()
        .map(|s| (s.name.text.as_str(), s))
        .collect();
    let mut edges: Vec<Edge<'_>> = Vec::new();
    for pump in &script.pumps {
        let relations = walk::relations(&pump.query);
        let defined: Vec<Name> = relations
            .defined
            .iter()
            .map(|i| Name::of_ident(i))
            .collect();
        let mut sources: Vec<&Name> = Vec::new();
        for name in relations.read {
            let Some(ObjectNamePart::Identifier(ident)) = name.0.last() else {
                continue;
            };
            let read = Name::of_ident(ident);
            if defined.iter().any(|d| d.text == read.text) {
                continue;
            }
            if let Some(stream) = streams.get(read.text.as_str())
                && !sources.iter().any(|s| s.text == stream.name.text)
            {
                sources.push(&stream.name);
            }
        }
        for from in &sources {
            edges.push(Edge {
                from,
                pump: &pump.name,
                to: &pump.target,
            });
        }
        if let Some(path) = cycle_through(&edges, &pump.target) {
            let mut cycle = format!("{}", pump.target);
            for edge in path {
                cycle.push_str(&format!(" → {} → {}", edge.pump, edge.to));
            }
            return Err(SqlError::at(
                format!("A pump cycle ({cycle}) is not supported"),
                pump.at,
            ));
        }
    }
    Ok(())
}

/// The shortest chain of edges `start → … → start`. Called after each
/// pump's edges are added (they all end at `start`, its target), so a
/// cycle found is one that pump closed.
fn cycle_through<'e, 's>(edges: &'e [Edge<'s>], start: &'s Name) -> Option<Vec<&'e Edge<'s>>> {
    // Breadth-first from `start`; `came_by[i]` is the edge that reached
    // stream `seen[i]`.
    let mut seen: Vec<&str> = vec![start.text.as_str()];
    let mut came_by: Vec<Option<usize>> = vec![None];
    let mut queue = VecDeque::from([0usize]);
    while let Some(node) = queue.pop_front() {
        for (e, edge) in edges.iter().enumerate() {
            if edge.from.text != seen[node] {
                continue;
            }
            // Closing the cycle: the edge leads back to `start`.
            if edge.to.text == start.text {
                let mut path = vec![edge];
                let mut at = node;
                while let Some(prev) = came_by[at] {
                    path.push(&edges[prev]);
                    at = seen
                        .iter()
                        .position(|s| *s == edges[prev].from.text)
                        .unwrap_or(0);
                }
                path.reverse();
                return Some(path);
            }
            if !seen.contains(&edge.to.text.as_str()) {
                seen.push(&edge.to.text);
                came_by.push(Some(e));
                queue.push_back(seen.len() - 1);
            }
        }
    }
    None
}
