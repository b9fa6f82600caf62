//! What a stack's template asks of the server, step by step: each resource
//! read, compared and (with `apply`) made, changed, replaced or deleted, in
//! the order of its dependencies, what it becomes known as feeding the
//! functions of the resources after it. Resources the stack made earlier
//! (by their `riffle/stack` tag) that the template no longer has are deleted.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::form;
use super::kinds::{self, Current, Kind, Place};
use super::resolve::Scope;
use super::template::Template;
use crate::aws_http::{Api, ApiError};

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    /// In place: these properties.
    Update(Vec<String>),
    /// A new resource for the old one: these properties changed.
    Replace(Vec<String>),
    Delete,
    Unchanged,
    /// `DeletionPolicy: Retain`: left on the server.
    Retain,
}

impl Action {
    pub fn word(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update(_) => "update",
            Action::Replace(_) => "replace",
            Action::Delete => "delete",
            Action::Unchanged => "unchanged",
            Action::Retain => "retain",
        }
    }
}

/// One resource's step.
#[derive(Debug, Clone)]
pub struct Step {
    pub logical_id: String,
    pub type_name: &'static str,
    /// Its name (None: known after apply).
    pub physical_id: Option<String>,
    pub action: Action,
}

impl Step {
    pub fn json(&self) -> Value {
        let mut v = json!({
            "LogicalResourceId": self.logical_id,
            "ResourceType": self.type_name,
            "PhysicalResourceId": self.physical_id.as_deref().map(shown),
            "Action": self.action.word(),
        });
        if let Action::Update(p) | Action::Replace(p) = &self.action {
            v["Properties"] = json!(p);
        }
        v
    }
}

/// What the commands do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Diff,
    Apply,
    Delete,
}

/// A failure: of a call (with the step it stopped at) or of the template.
pub struct Stopped {
    pub message: String,
    pub unreachable: bool,
}

impl From<ApiError> for Stopped {
    fn from(e: ApiError) -> Stopped {
        Stopped {
            message: e.to_string(),
            unreachable: e.unreachable,
        }
    }
}

impl From<String> for Stopped {
    fn from(message: String) -> Stopped {
        Stopped {
            message,
            unreachable: false,
        }
    }
}

/// What a run did (or, for diff, would do), and the outputs' values.
pub struct Outcome {
    pub steps: Vec<Step>,
    pub outputs: BTreeMap<String, Option<Value>>,
}

/// Every property whose value is known before any call (it names no
/// resource) resolved, coerced and checked: a template refused for what it
/// says is refused before anything is made.
pub fn precheck(template: &Template, values: &BTreeMap<String, Value>) -> Result<(), String> {
    let scope = Scope {
        values: values.clone(),
        resources: BTreeMap::new(),
    };
    for id in &template.order {
        let resource = &template.resources[id];
        let path = format!("Resources.{id}.Properties");
        let mut known = Map::new();
        for (k, v) in &resource.properties {
            let at = format!("{path}.{k}");
            if let Some(v) = scope.resolve(v, &at)? {
                let prop = resource
                    .kind
                    .properties
                    .iter()
                    .find(|p| p.name == k)
                    .expect("checked");
                known.insert(k.clone(), form::coerce(&v, prop.form, &at)?);
            }
        }
        resource
            .kind
            .handler
            .check(&known)
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// An API error as the failure of the resource `id`.
fn at(id: &str) -> impl Fn(ApiError) -> Stopped + '_ {
    move |e| Stopped {
        message: format!("Resources.{id}: {e}"),
        unreachable: e.unreachable,
    }
}

/// The display name of a physical id (a part's `APP\tNAME` as `APP/NAME`,
/// a consumer's `STREAM_ARN NAME` as `NAME on STREAM_ARN`).
pub fn shown(identity: &str) -> String {
    if let Some((app, name)) = identity.split_once('\t') {
        return format!("{app}/{name}");
    }
    match identity.split_once(' ') {
        Some((stream, name)) => format!("{name} on {stream}"),
        None => identity.to_string(),
    }
}

/// Runs the template against the server in `mode`, reporting each step to
/// `report` as it is decided (apply: once it is done).
pub fn run(
    api: &Api,
    template: &Template,
    stack: &str,
    values: BTreeMap<String, Value>,
    mode: Mode,
    report: &mut dyn FnMut(&Step),
) -> Result<Outcome, Stopped> {
    let mut scope = Scope {
        values,
        resources: BTreeMap::new(),
    };
    // What the stack made earlier, by logical id.
    let mut owned: BTreeMap<String, (&'static Kind, String)> = BTreeMap::new();
    for kind in kinds::ALL {
        for (identity, logical_id) in kind.handler.owned(api, stack)? {
            owned.insert(logical_id, (kind, identity));
        }
    }
    let mut steps = Vec::new();
    // Delete reads everything first, then deletes in reverse order.
    let mut to_delete: Vec<(String, &'static Kind, String, Option<Current>, bool)> = Vec::new();
    for id in &template.order {
        let resource = &template.resources[id];
        let kind = resource.kind;
        let place = Place {
            stack,
            logical_id: id,
        };
        let path = format!("Resources.{id}.Properties");
        let resolved = scope.resolve(&Value::Object(resource.properties.clone()), &path)?;
        let desired = match resolved {
            Some(Value::Object(map)) => {
                let mut props = Map::new();
                for (k, v) in map {
                    let prop = kind
                        .properties
                        .iter()
                        .find(|p| p.name == k)
                        .expect("checked");
                    props.insert(
                        k.clone(),
                        form::coerce(&v, prop.form, &format!("{path}.{k}"))?,
                    );
                }
                kind.handler
                    .check(&props)
                    .map_err(|e| format!("{path}: {e}"))?;
                kind.handler.defaults(&mut props);
                Some(props)
            }
            _ => None,
        };
        let mut desired = desired;
        let identity = desired
            .as_mut()
            .and_then(|d| kind.handler.identity(d, &place));
        let Some(identity) = identity else {
            if mode == Mode::Apply {
                return Err(format!("Resources.{id}: a value it needs is not known (a resource it names has no such attribute)").into());
            }
            // Diff: it depends on something made by the apply (an update
            // with no property named: which ones is known after apply).
            let action = match (mode, owned.remove(id)) {
                (Mode::Delete, _) => Action::Unchanged,
                (_, Some(_)) => Action::Update(Vec::new()),
                (_, None) => Action::Create,
            };
            let step = Step {
                logical_id: id.clone(),
                type_name: kind.type_name,
                physical_id: None,
                action,
            };
            report(&step);
            steps.push(step);
            continue;
        };
        let desired = desired.expect("an identity comes from properties");
        let current = kind.handler.read(api, &identity).map_err(at(id))?;
        if let Some(c) = &current {
            match &c.owner {
                Some((s, l)) if s != stack || l != id => {
                    return Err(format!(
                        "Resources.{id}: {} {} belongs to stack {s} (as {l})",
                        kind.type_name,
                        shown(&identity)
                    )
                    .into());
                }
                None if kind.handler.tracked() && mode != Mode::Delete => {
                    return Err(format!(
                        "Resources.{id}: {} {} exists and was not made by this stack (no riffle/stack tag): rename it in the template or delete it first",
                        kind.type_name,
                        shown(&identity)
                    )
                    .into());
                }
                _ => {}
            }
        }
        // The resource this logical id had before, under another name or type.
        let previous = owned
            .remove(id)
            .filter(|(k, i)| !(std::ptr::eq(*k, kind) && *i == identity));
        if mode == Mode::Delete {
            if let Some((k, i)) = previous {
                let c = k.handler.read(api, &i).map_err(at(id))?;
                to_delete.push((id.clone(), k, i, c, resource.retain));
            }
            let ours = current
                .as_ref()
                .is_some_and(|c| c.owner.is_some() || !kind.handler.tracked());
            if let Some(c) = &current {
                scope.resources.insert(id.clone(), c.known.clone());
            }
            to_delete.push((
                id.clone(),
                kind,
                identity,
                current.filter(|_| ours),
                resource.retain,
            ));
            continue;
        }
        let (action, old) = match (&current, previous) {
            (_, Some((old_kind, old_identity))) => {
                let old = old_kind.handler.read(api, &old_identity).map_err(at(id))?;
                (
                    Action::Replace(replaced_by(kind, old_kind, &desired, old.as_ref())),
                    old.map(|c| (old_kind, c)),
                )
            }
            (None, None) => (Action::Create, None),
            (Some(c), None) => {
                let changed = kind.handler.changes(&desired, &c.props);
                let replaced: Vec<String> = changed
                    .iter()
                    .filter(|k| {
                        kind.properties
                            .iter()
                            .any(|p| p.name == k.as_str() && p.replaces)
                    })
                    .cloned()
                    .collect();
                match (changed.is_empty(), replaced.is_empty()) {
                    (true, _) => (Action::Unchanged, None),
                    (false, true) => (Action::Update(changed), None),
                    (false, false) => (Action::Replace(replaced), Some((kind, c.clone()))),
                }
            }
        };
        let step = Step {
            logical_id: id.clone(),
            type_name: kind.type_name,
            physical_id: Some(identity.clone()),
            action,
        };
        if mode == Mode::Apply {
            let done: Result<(), ApiError> = (|| match &step.action {
                Action::Create => kind.handler.create(api, &identity, &desired, &place),
                Action::Update(changed) => kind.handler.update(
                    api,
                    current.as_ref().expect("an update has a current"),
                    &desired,
                    changed,
                ),
                Action::Replace(_) => {
                    let (old_kind, old) = old.expect("a replacement has an old resource");
                    let same_name = std::ptr::eq(old_kind, kind) && current.is_some();
                    if same_name {
                        // Same name: the old one must go first.
                        old_kind.handler.delete(api, &old)?;
                        kind.handler.create(api, &identity, &desired, &place)?;
                    } else {
                        kind.handler.create(api, &identity, &desired, &place)?;
                        if !resource.retain {
                            old_kind.handler.delete(api, &old)?;
                        }
                    }
                    Ok(())
                }
                _ => Ok(()),
            })();
            done.map_err(at(id))?;
            let now = kind
                .handler
                .read(api, &identity)
                .map_err(at(id))?
                .ok_or_else(|| {
                    Stopped::from(format!(
                        "Resources.{id}: {} is not there after it was made",
                        shown(&identity)
                    ))
                })?;
            scope.resources.insert(id.clone(), now.known);
        } else if let (Some(c), Action::Update(_) | Action::Unchanged) = (&current, &step.action) {
            scope.resources.insert(id.clone(), c.known.clone());
        }
        report(&step);
        steps.push(step);
    }
    if mode == Mode::Delete {
        for (id, kind, identity, current, retain) in to_delete.into_iter().rev() {
            let Some(c) = current else { continue };
            let action = if retain {
                Action::Retain
            } else {
                Action::Delete
            };
            if !retain {
                kind.handler.delete(api, &c).map_err(at(&id))?;
            }
            let step = Step {
                logical_id: id,
                type_name: kind.type_name,
                physical_id: Some(identity),
                action,
            };
            report(&step);
            steps.push(step);
        }
    }
    // Resources the stack made that the template no longer has.
    for (id, (kind, identity)) in owned {
        if let Some(c) = kind.handler.read(api, &identity).map_err(at(&id))? {
            if mode != Mode::Diff {
                kind.handler.delete(api, &c).map_err(at(&id))?;
            }
            let step = Step {
                logical_id: id,
                type_name: kind.type_name,
                physical_id: Some(identity),
                action: Action::Delete,
            };
            report(&step);
            steps.push(step);
        }
    }
    let mut outputs = BTreeMap::new();
    if mode != Mode::Delete {
        for (name, o) in &template.outputs {
            outputs.insert(
                name.clone(),
                scope.resolve(&o.value, &format!("Outputs.{name}.Value"))?,
            );
        }
    }
    Ok(Outcome { steps, outputs })
}

/// The properties a rename (or a change of type) replaced a resource for.
fn replaced_by(
    kind: &Kind,
    old_kind: &Kind,
    desired: &Map<String, Value>,
    old: Option<&Current>,
) -> Vec<String> {
    if !std::ptr::eq(kind, old_kind) {
        return vec!["Type".into()];
    }
    let Some(old) = old else { return Vec::new() };
    kind.properties
        .iter()
        .filter(|p| p.replaces && !kinds::same(desired.get(p.name), old.props.get(p.name)))
        .map(|p| p.name.to_string())
        .collect()
}
