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
    /// `DeletionPolicy: Retain` (or `UpdateReplacePolicy`): left on the
    /// server, without the stack's tags.
    Retain,
    /// Not named by the template, left alone: the stack was not named.
    Left,
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
            Action::Left => "left",
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

/// A resource the template no longer names, dealt with after every step.
struct Leftover {
    logical_id: String,
    kind: &'static Kind,
    identity: String,
    current: Current,
    /// Kept on the server (a Retain policy) rather than deleted: it loses
    /// the stack's tags.
    keep: bool,
    /// Named by the template (disposed of whether the stack was named or not).
    named: bool,
}

/// The order leftovers go in: what reads from others first (applications,
/// delivery streams), streams last.
fn disposal_rank(kind: &Kind) -> u8 {
    match kind.type_name {
        "AWS::KinesisAnalytics::Application" => 0,
        "AWS::KinesisFirehose::DeliveryStream" => 1,
        "AWS::KinesisVideo::Stream" => 2,
        _ => 3,
    }
}

/// Runs the template against the server in `mode`, reporting each step to
/// `report` as it is decided (apply: once it is done). `explicit`: the stack
/// was named by the user; without it, resources the template does not name
/// (left from earlier applies, renamed away) are left alone, since another
/// template of the same file name may have made them.
pub fn run(
    api: &Api,
    template: &Template,
    stack: &str,
    values: BTreeMap<String, Value>,
    mode: Mode,
    explicit: bool,
    report: &mut dyn FnMut(&Step),
) -> Result<Outcome, Stopped> {
    let mut scope = Scope {
        values,
        resources: BTreeMap::new(),
    };
    // What the stack made earlier, by logical id (more than one after an
    // interrupted replacement).
    let mut owned: BTreeMap<String, Vec<(&'static Kind, String)>> = BTreeMap::new();
    for kind in kinds::ALL {
        for (identity, logical_id) in kind.handler.owned(api, stack)? {
            owned.entry(logical_id).or_default().push((kind, identity));
        }
    }
    let mut steps = Vec::new();
    // Old resources of replacements and the stack's resources the template
    // no longer has: dealt with once every other step is done.
    let mut leftovers: Vec<Leftover> = Vec::new();
    // Delete: what the template names, deleted in reverse order at the end.
    let mut to_delete: Vec<Leftover> = Vec::new();
    // Resources found by their tags: kept or not as their recorded
    // DeletionPolicy says (`keep` overrides it, for replacements).
    let read_all = |id: &str,
                    entries: Vec<(&'static Kind, String)>,
                    keep: Option<bool>|
     -> Result<Vec<Leftover>, Stopped> {
        let mut out = Vec::new();
        for (kind, identity) in entries {
            if let Some(current) = kind.handler.read(api, &identity).map_err(at(id))? {
                out.push(Leftover {
                    logical_id: id.to_string(),
                    kind,
                    identity,
                    keep: keep.unwrap_or(current.retain),
                    current,
                    named: false,
                });
            }
        }
        Ok(out)
    };
    for id in &template.order {
        let resource = &template.resources[id];
        let kind = resource.kind;
        let place = Place {
            stack,
            logical_id: id,
            retain: resource.retain,
        };
        let path = format!("Resources.{id}.Properties");
        let resolved = scope.resolve(&Value::Object(resource.properties.clone()), &path)?;
        let mut desired = match resolved {
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
        let identity = desired
            .as_mut()
            .and_then(|d| kind.handler.identity(d, &place));
        let Some(identity) = identity else {
            match mode {
                Mode::Apply => {
                    return Err(format!(
                        "Resources.{id}: its properties name a value that is still not known once the resources before it are made"
                    )
                    .into());
                }
                // What the stack made for it is found by its tags.
                Mode::Delete => {
                    let entries = owned.remove(id).unwrap_or_default();
                    to_delete.extend(read_all(id, entries, None)?);
                }
                // It depends on something the apply makes: which of its
                // properties change is known then.
                Mode::Diff => {
                    let action = match owned.remove(id) {
                        Some(_) => Action::Update(Vec::new()),
                        None => Action::Create,
                    };
                    let step = Step {
                        logical_id: id.clone(),
                        type_name: kind.type_name,
                        physical_id: None,
                        action,
                    };
                    report(&step);
                    steps.push(step);
                }
            }
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
        // What this logical id had before under another name (or type).
        let entries: Vec<(&'static Kind, String)> = owned
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, i)| !(std::ptr::eq(*k, kind) && *i == identity))
            .collect();
        let previous = read_all(
            id,
            entries,
            (mode != Mode::Delete).then_some(resource.retain_replaced),
        )?;
        if mode == Mode::Delete {
            to_delete.extend(previous);
            let ours = current
                .as_ref()
                .is_some_and(|c| c.owner.is_some() || !kind.handler.tracked());
            if let Some(c) = current.filter(|_| ours) {
                scope.resources.insert(id.clone(), c.known.clone());
                to_delete.push(Leftover {
                    logical_id: id.clone(),
                    kind,
                    identity,
                    current: c,
                    keep: resource.retain,
                    named: true,
                });
            }
            continue;
        }
        let action = match (&current, previous.first()) {
            (Some(c), _) => {
                let mut changed = kind.handler.changes(&desired, &c.props);
                // The DeletionPolicy it records (tracked types).
                if kind.handler.tracked() && c.retain != resource.retain {
                    changed.push("DeletionPolicy".into());
                }
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
                    (true, _) => Action::Unchanged,
                    (false, true) => Action::Update(changed),
                    (false, false) => Action::Replace(replaced),
                }
            }
            (None, Some(old)) => {
                Action::Replace(replaced_by(kind, old.kind, &desired, &old.current))
            }
            (None, None) => Action::Create,
        };
        if let (Action::Replace(_), Some(_)) = (&action, &current)
            && resource.retain_replaced
        {
            return Err(format!(
                "Resources.{id}: a replacement under the same name deletes the old {} first, which its UpdateReplacePolicy: Retain forbids: give the resource a new name",
                shown(&identity)
            )
            .into());
        }
        // Older copies (an interrupted replacement) and the resource renamed away.
        leftovers.extend(previous);
        let step = Step {
            logical_id: id.clone(),
            type_name: kind.type_name,
            physical_id: Some(identity.clone()),
            action,
        };
        if mode == Mode::Apply {
            let done: Result<(), ApiError> = (|| match (&step.action, &current) {
                (Action::Create, _) | (Action::Replace(_), None) => {
                    kind.handler.create(api, &identity, &desired, &place)
                }
                (Action::Update(changed), Some(c)) => {
                    kind.handler.update(api, c, &desired, changed)
                }
                (Action::Replace(_), Some(c)) => {
                    // The same name: the old one must go first.
                    kind.handler.delete(api, c)?;
                    kind.handler.create(api, &identity, &desired, &place)
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
            // The DeletionPolicy recorded on it, as the template says now.
            if kind.handler.tracked() && now.retain != resource.retain {
                let policy = [(kinds::DELETION_POLICY_TAG.to_string(), "Retain".to_string())];
                let retag = match resource.retain {
                    true => kind.handler.retag(api, &now, &policy, &[]),
                    false => kind
                        .handler
                        .retag(api, &now, &[], &[kinds::DELETION_POLICY_TAG]),
                };
                retag.map_err(at(id))?;
            }
            scope.resources.insert(id.clone(), now.known);
        } else if let (Some(c), Action::Update(_) | Action::Unchanged) = (&current, &step.action) {
            scope.resources.insert(id.clone(), c.known.clone());
        }
        report(&step);
        steps.push(step);
    }
    // The stack's resources the template no longer has.
    for (id, entries) in std::mem::take(&mut owned) {
        leftovers.extend(read_all(&id, entries, None)?);
    }
    leftovers.sort_by_key(|l| disposal_rank(l.kind));
    if mode == Mode::Delete {
        // What the template names first (in reverse order), then the rest.
        to_delete.reverse();
        let (mut first, mut rest): (Vec<Leftover>, Vec<Leftover>) =
            to_delete.into_iter().partition(|l| l.named);
        rest.append(&mut leftovers);
        rest.sort_by_key(|l| disposal_rank(l.kind));
        first.append(&mut rest);
        for left in first {
            let allowed = left.named || explicit;
            let step = dispose(api, left, allowed, true)?;
            report(&step);
            steps.push(step);
        }
    } else {
        for left in leftovers {
            let step = dispose(api, left, explicit, mode == Mode::Apply)?;
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

/// A resource the stack is done with: deleted, or kept without the stack's
/// tags (Retain); left alone when the stack was not named (`allowed`
/// false). `act`: do it (apply, delete), else only say it (diff).
fn dispose(api: &Api, left: Leftover, allowed: bool, act: bool) -> Result<Step, Stopped> {
    let action = match (allowed, left.keep) {
        (false, _) => Action::Left,
        (true, true) => Action::Retain,
        (true, false) => Action::Delete,
    };
    if act {
        let done = match action {
            Action::Retain => left.kind.handler.disown(api, &left.current),
            Action::Delete => left.kind.handler.delete(api, &left.current),
            _ => Ok(()),
        };
        done.map_err(at(&left.logical_id))?;
    }
    Ok(Step {
        logical_id: left.logical_id,
        type_name: left.kind.type_name,
        physical_id: Some(left.identity),
        action,
    })
}

/// The properties a rename (or a change of type) replaced a resource for.
fn replaced_by(
    kind: &Kind,
    old_kind: &Kind,
    desired: &Map<String, Value>,
    old: &Current,
) -> Vec<String> {
    if !std::ptr::eq(kind, old_kind) {
        return vec!["Type".into()];
    }
    kind.properties
        .iter()
        .filter(|p| p.replaces && !kinds::same(desired.get(p.name), old.props.get(p.name)))
        .map(|p| p.name.to_string())
        .collect()
}
