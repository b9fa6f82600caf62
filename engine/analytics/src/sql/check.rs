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

use std::collections::{HashMap, HashSet, VecDeque};

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
/// cycle. Linear in the code's size times log(pumps): whether the first
/// `k` pumps make a cycle is one depth-first pass, and the first `k` that
/// does is found by bisection (hostile code with thousands of pumps and
/// edges must not hold the server).
fn check_cycles(script: &Script) -> Result<(), SqlError> {
    let streams: HashMap<&str, &StreamDef> = script
        .streams
        .iter()
        .map(|s| (s.name.text.as_str(), s))
        .collect();
    let mut flows: Vec<Vec<Edge<'_>>> = Vec::with_capacity(script.pumps.len());
    for pump in &script.pumps {
        let relations = walk::relations(&pump.query);
        let defined: HashSet<String> = relations
            .defined
            .iter()
            .map(|i| Name::of_ident(i).text)
            .collect();
        let mut sources: Vec<&Name> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for name in relations.read {
            let Some(ObjectNamePart::Identifier(ident)) = name.0.last() else {
                continue;
            };
            let read = Name::of_ident(ident);
            if defined.contains(&read.text) {
                continue;
            }
            if let Some(stream) = streams.get(read.text.as_str())
                && seen.insert(stream.name.text.as_str())
            {
                sources.push(&stream.name);
            }
        }
        flows.push(
            sources
                .into_iter()
                .map(|from| Edge {
                    from,
                    pump: &pump.name,
                    to: &pump.target,
                })
                .collect(),
        );
    }
    if !has_cycle(flows.iter().flatten()) {
        return Ok(());
    }
    // The smallest k whose first k pumps make a cycle: pump k - 1 closed it.
    let (mut acyclic, mut cyclic) = (0, flows.len());
    while cyclic - acyclic > 1 {
        let mid = (acyclic + cyclic) / 2;
        match has_cycle(flows[..mid].iter().flatten()) {
            true => cyclic = mid,
            false => acyclic = mid,
        }
    }
    let pump = &script.pumps[cyclic - 1];
    let edges: Vec<&Edge<'_>> = flows[..cyclic].iter().flatten().collect();
    let path = cycle_through(&edges, &pump.target).unwrap_or_default();
    let mut cycle = format!("{}", pump.target);
    for edge in path {
        cycle.push_str(&format!(" → {} → {}", edge.pump, edge.to));
    }
    Err(SqlError::at(
        format!("A pump cycle ({cycle}) is not supported"),
        pump.at,
    ))
}

/// Whether these edges make a cycle: a depth-first pass with colours, by
/// hand (no recursion).
fn has_cycle<'e, 's: 'e>(edges: impl Iterator<Item = &'e Edge<'s>>) -> bool {
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in edges {
        next.entry(e.from.text.as_str())
            .or_default()
            .push(e.to.text.as_str());
    }
    // Absent: not visited; false: on the current path; true: done.
    let mut done: HashMap<&str, bool> = HashMap::new();
    for &start in next.keys() {
        if done.contains_key(start) {
            continue;
        }
        done.insert(start, false);
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((node, i)) = stack.last_mut() {
            let outs = next.get(*node).map_or(&[][..], Vec::as_slice);
            match outs.get(*i) {
                None => {
                    done.insert(*node, true);
                    stack.pop();
                }
                Some(&to) => {
                    *i += 1;
                    match done.get(to) {
                        Some(false) => return true,
                        Some(true) => {}
                        None => {
                            done.insert(to, false);
                            stack.push((to, 0));
                        }
                    }
                }
            }
        }
    }
    false
}

/// The shortest chain of edges `start → … → start`, breadth-first.
fn cycle_through<'e, 's>(edges: &[&'e Edge<'s>], start: &'s Name) -> Option<Vec<&'e Edge<'s>>> {
    let mut out: HashMap<&str, Vec<&'e Edge<'s>>> = HashMap::new();
    for e in edges {
        out.entry(e.from.text.as_str()).or_default().push(e);
    }
    // The edge that first reached each stream.
    let mut came_by: HashMap<&str, Option<&'e Edge<'s>>> =
        HashMap::from([(start.text.as_str(), None)]);
    let mut queue = VecDeque::from([start.text.as_str()]);
    while let Some(node) = queue.pop_front() {
        for &edge in out.get(node).map_or(&[][..], Vec::as_slice) {
            if edge.to.text == start.text {
                let mut path = vec![edge];
                let mut at = node;
                while let Some(Some(prev)) = came_by.get(at) {
                    path.push(prev);
                    at = prev.from.text.as_str();
                }
                path.reverse();
                return Some(path);
            }
            if !came_by.contains_key(edge.to.text.as_str()) {
                came_by.insert(edge.to.text.as_str(), Some(edge));
                queue.push_back(edge.to.text.as_str());
            }
        }
    }
    None
}
