//! A template read and checked before anything is called: its sections
//! (`Parameters`, `Resources`, `Outputs`; `Conditions`, `Mappings` and
//! transforms are refused), each resource's type and properties (`kinds`),
//! the functions it uses and what they name, and the order of the resources
//! by their dependencies. Every refusal names the node's path
//! (`Resources.Stream.Properties.ShardCount`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::form::{self, function};
use super::kinds::{self, Kind};

/// A checked template.
#[derive(Debug)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    pub resources: BTreeMap<String, Resource>,
    pub outputs: BTreeMap<String, Output>,
    /// The resources' logical ids, each after what it depends on.
    pub order: Vec<String>,
}

#[derive(Debug)]
pub struct Parameter {
    pub kind: ParameterKind,
    pub default: Option<String>,
    pub allowed: Option<Vec<String>>,
    pub pattern: Option<regex::Regex>,
    pub length: (Option<u64>, Option<u64>),
    pub value_range: (Option<f64>, Option<f64>),
    pub constraint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKind {
    String,
    Number,
    CommaDelimitedList,
    NumberList,
}

#[derive(Debug)]
pub struct Resource {
    pub kind: &'static Kind,
    pub properties: Map<String, Value>,
    /// The logical ids it names (Ref, Fn::GetAtt, Fn::Sub, DependsOn).
    pub depends_on: BTreeSet<String>,
    /// `DeletionPolicy: Retain`: `riffle delete` and removal leave it.
    pub retain: bool,
    /// `UpdateReplacePolicy: Retain`: a replacement leaves the old one.
    pub retain_replaced: bool,
}

#[derive(Debug)]
pub struct Output {
    pub value: Value,
}

/// The pseudo parameters a `Ref` may name.
pub const PSEUDO: [&str; 5] = [
    "AWS::Region",
    "AWS::AccountId",
    "AWS::StackName",
    "AWS::Partition",
    "AWS::URLSuffix",
];

/// The functions a template may call.
const FUNCTIONS: [&str; 7] = [
    "Ref",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::Base64",
];

impl Template {
    pub fn read(doc: &Value) -> Result<Template, String> {
        let top = doc.as_object().ok_or("the template is not a mapping")?;
        for key in top.keys() {
            match key.as_str() {
                "AWSTemplateFormatVersion"
                | "Description"
                | "Metadata"
                | "Parameters"
                | "Resources"
                | "Outputs" => {}
                "Conditions" | "Mappings" | "Transform" | "Rules" => {
                    return Err(format!("{key}: not supported by riffle's stack files"));
                }
                _ => return Err(format!("{key}: not a section of a template")),
            }
        }
        if let Some(v) = top.get("AWSTemplateFormatVersion")
            && v != "2010-09-09"
        {
            return Err(format!(
                "AWSTemplateFormatVersion: expected 2010-09-09, got {v}"
            ));
        }
        let parameters = match top.get("Parameters") {
            None => BTreeMap::new(),
            Some(p) => section(p, "Parameters")?
                .iter()
                .map(|(name, v)| Ok((name.clone(), parameter(v, &format!("Parameters.{name}"))?)))
                .collect::<Result<_, String>>()?,
        };
        let raw = section(
            top.get("Resources")
                .ok_or("Resources: the template has no resources")?,
            "Resources",
        )?;
        if raw.is_empty() {
            return Err("Resources: the template has no resources".into());
        }
        let mut resources = BTreeMap::new();
        for (id, v) in raw {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "Resources.{id}: a logical id is letters and digits"
                ));
            }
            if parameters.contains_key(id) {
                return Err(format!("Resources.{id}: a parameter has this name too"));
            }
            resources.insert(id.clone(), resource(v, &format!("Resources.{id}"))?);
        }
        let outputs = match top.get("Outputs") {
            None => BTreeMap::new(),
            Some(o) => section(o, "Outputs")?
                .iter()
                .map(|(name, v)| Ok((name.clone(), output(v, &format!("Outputs.{name}"))?)))
                .collect::<Result<_, String>>()?,
        };
        let mut template = Template {
            parameters,
            resources,
            outputs,
            order: Vec::new(),
        };
        template.check_references()?;
        template.order = template.ordered()?;
        Ok(template)
    }

    /// Every function's names exist; each resource's dependencies recorded.
    fn check_references(&mut self) -> Result<(), String> {
        let ids: Vec<String> = self.resources.keys().cloned().collect();
        for id in &ids {
            let mut names = BTreeSet::new();
            let r = &self.resources[id];
            for (k, v) in &r.properties {
                self.references(v, &format!("Resources.{id}.Properties.{k}"), &mut names)?;
            }
            let r = self.resources.get_mut(id).expect("listed");
            for name in &r.depends_on {
                if !ids.contains(name) {
                    return Err(format!("Resources.{id}.DependsOn: no resource {name}"));
                }
            }
            if names.contains(id) || r.depends_on.contains(id) {
                return Err(format!(
                    "Resources.{id}: a resource cannot depend on itself"
                ));
            }
            r.depends_on.extend(names);
        }
        for (name, o) in &self.outputs {
            self.references(
                &o.value,
                &format!("Outputs.{name}.Value"),
                &mut BTreeSet::new(),
            )?;
        }
        Ok(())
    }

    /// The resources `value` names (into `names`), each name checked.
    fn references(
        &self,
        value: &Value,
        path: &str,
        names: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        match value {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.references(v, &format!("{path}.{i}"), names)?;
                }
                Ok(())
            }
            Value::Object(map) => {
                let Some(name) = function(value) else {
                    for (k, v) in map {
                        self.references(v, &format!("{path}.{k}"), names)?;
                    }
                    return Ok(());
                };
                let arg = &map[name];
                let path = format!("{path}.{name}");
                if !FUNCTIONS.contains(&name) {
                    return Err(format!(
                        "{path}: not supported by riffle's stack files (they support {})",
                        FUNCTIONS.join(", ")
                    ));
                }
                match name {
                    "Ref" => {
                        let target = arg.as_str().ok_or(format!("{path}: expected a name"))?;
                        self.named(target, None, &path, names)
                    }
                    "Fn::GetAtt" => {
                        let (target, attribute) = get_att(arg)
                            .ok_or(format!("{path}: expected [Resource, Attribute]"))?;
                        self.named(target, Some(attribute), &path, names)
                    }
                    "Fn::Sub" => {
                        let (text, vars) = sub_args(arg).ok_or(format!(
                            "{path}: expected a string, or [string, {{variables}}]"
                        ))?;
                        for (k, v) in vars {
                            self.references(v, &format!("{path}.1.{k}"), names)?;
                        }
                        let parts = sub_parts(text).map_err(|e| format!("{path}: {e}"))?;
                        let variables = parts.iter().filter_map(|p| match p {
                            SubPart::Variable(v) => Some(*v),
                            SubPart::Text(_) => None,
                        });
                        for variable in variables {
                            if vars.contains_key(variable) {
                                continue;
                            }
                            match variable.split_once('.') {
                                Some((r, a)) if !PSEUDO.contains(&variable) => {
                                    self.named(r, Some(a), &path, names)?
                                }
                                _ => self.named(variable, None, &path, names)?,
                            }
                        }
                        Ok(())
                    }
                    _ => self.references(arg, &path, names),
                }
            }
            _ => Ok(()),
        }
    }

    /// `target` (with `attribute`, for Fn::GetAtt) names something that exists.
    fn named(
        &self,
        target: &str,
        attribute: Option<&str>,
        path: &str,
        names: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        if attribute.is_none() && (PSEUDO.contains(&target) || self.parameters.contains_key(target))
        {
            return Ok(());
        }
        let r = self
            .resources
            .get(target)
            .ok_or_else(|| format!("{path}: no parameter or resource {target}"))?;
        if let Some(a) = attribute
            && !r.kind.attributes.contains(&a)
        {
            return Err(format!(
                "{path}: {} has no attribute {a} ({})",
                r.kind.type_name,
                match r.kind.attributes {
                    [] => "it has none".to_string(),
                    all => format!("it has: {}", all.join(", ")),
                }
            ));
        }
        names.insert(target.to_string());
        Ok(())
    }

    /// The logical ids in an order where each comes after its dependencies.
    fn ordered(&self) -> Result<Vec<String>, String> {
        let mut order: Vec<String> = Vec::new();
        let mut placed = BTreeSet::new();
        while order.len() < self.resources.len() {
            let ready: Vec<&String> = self
                .resources
                .iter()
                .filter(|(id, r)| {
                    !placed.contains(*id) && r.depends_on.iter().all(|d| placed.contains(d))
                })
                .map(|(id, _)| id)
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = self
                    .resources
                    .keys()
                    .filter(|id| !placed.contains(*id))
                    .map(String::as_str)
                    .collect();
                return Err(format!(
                    "Resources: a circular dependency among {}",
                    stuck.join(", ")
                ));
            }
            for id in ready {
                placed.insert(id.clone());
                order.push(id.clone());
            }
        }
        Ok(order)
    }
}

fn section<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected a mapping"))
}

fn parameter(v: &Value, path: &str) -> Result<Parameter, String> {
    let map = section(v, path)?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(format!("{path}.{key}: expected a string")),
        }
    };
    let number = |key: &str| -> Result<Option<f64>, String> {
        text(key)?
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| format!("{path}.{key}: expected a number"))
            })
            .transpose()
    };
    for key in map.keys() {
        match key.as_str() {
            "Type"
            | "Default"
            | "AllowedValues"
            | "AllowedPattern"
            | "MinLength"
            | "MaxLength"
            | "MinValue"
            | "MaxValue"
            | "Description"
            | "NoEcho"
            | "ConstraintDescription" => {}
            _ => return Err(format!("{path}.{key}: not a parameter's property")),
        }
    }
    let kind = match text("Type")?.as_deref() {
        Some("String") => ParameterKind::String,
        Some("Number") => ParameterKind::Number,
        Some("CommaDelimitedList") => ParameterKind::CommaDelimitedList,
        Some("List<Number>") => ParameterKind::NumberList,
        Some(other) => {
            return Err(format!(
                "{path}.Type: {other} is not supported (String, Number, CommaDelimitedList, List<Number>)"
            ));
        }
        None => return Err(format!("{path}: the required property Type is missing")),
    };
    let allowed = match map.get("AllowedValues") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(format!("{path}.AllowedValues: expected strings")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(format!("{path}.AllowedValues: expected a list")),
    };
    let pattern = text("AllowedPattern")?
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| format!("{path}.AllowedPattern: {e}"))
        })
        .transpose()?;
    let length = (
        number("MinLength")?.map(|n| n as u64),
        number("MaxLength")?.map(|n| n as u64),
    );
    let parameter = Parameter {
        kind,
        default: text("Default")?,
        allowed,
        pattern,
        length,
        value_range: (number("MinValue")?, number("MaxValue")?),
        constraint: text("ConstraintDescription")?,
    };
    if let Some(d) = &parameter.default {
        parameter
            .check(d)
            .map_err(|e| format!("{path}.Default: {e}"))?;
    }
    Ok(parameter)
}

impl Parameter {
    /// The value given for the parameter, checked: its JSON form for `Ref`.
    pub fn check(&self, given: &str) -> Result<Value, String> {
        let refused = |why: String| Err(self.constraint.clone().unwrap_or(why));
        let items: Vec<&str> = match self.kind {
            ParameterKind::String | ParameterKind::Number => vec![given],
            _ => given.split(',').map(str::trim).collect(),
        };
        for item in &items {
            if let Some(allowed) = &self.allowed
                && !allowed.iter().any(|a| a == item)
            {
                return refused(format!(
                    "{item:?} is not one of the allowed values ({})",
                    allowed.join(", ")
                ));
            }
            if let Some(p) = &self.pattern
                && !p.is_match(item)
            {
                return refused(format!(
                    "{item:?} does not match the allowed pattern {}",
                    p.as_str()
                ));
            }
            let chars = item.chars().count() as u64;
            if self.length.0.is_some_and(|m| chars < m) || self.length.1.is_some_and(|m| chars > m)
            {
                return refused(format!("{item:?} is not of the allowed length"));
            }
            if matches!(self.kind, ParameterKind::Number | ParameterKind::NumberList) {
                let Ok(n) = item.parse::<f64>() else {
                    return refused(format!("{item:?} is not a number"));
                };
                if self.value_range.0.is_some_and(|m| n < m)
                    || self.value_range.1.is_some_and(|m| n > m)
                {
                    return refused(format!("{item} is out of the allowed range"));
                }
            }
        }
        Ok(match self.kind {
            ParameterKind::String | ParameterKind::Number => Value::String(given.to_string()),
            _ => Value::Array(items.into_iter().map(Value::from).collect()),
        })
    }
}

fn resource(v: &Value, path: &str) -> Result<Resource, String> {
    let map = section(v, path)?;
    for key in map.keys() {
        match key.as_str() {
            "Type"
            | "Properties"
            | "DependsOn"
            | "DeletionPolicy"
            | "UpdateReplacePolicy"
            | "Metadata" => {}
            "Condition" | "CreationPolicy" | "UpdatePolicy" => {
                return Err(format!(
                    "{path}.{key}: not supported by riffle's stack files"
                ));
            }
            _ => return Err(format!("{path}.{key}: not an attribute of a resource")),
        }
    }
    let type_name = match map.get("Type") {
        None => return Err(format!("{path}: the required property Type is missing")),
        Some(Value::String(t)) => t.as_str(),
        Some(other) => return Err(format!("{path}.Type: expected a type's name, got {other}")),
    };
    let kind = kinds::by_name(type_name).ok_or_else(|| {
        let names: Vec<&str> = kinds::ALL.iter().map(|k| k.type_name).collect();
        format!(
            "{path}.Type: {type_name} is not a type riffle's stack files know (they know {})",
            names.join(", ")
        )
    })?;
    let properties = match map.get("Properties") {
        None => Map::new(),
        Some(p) => section(p, &format!("{path}.Properties"))?.clone(),
    };
    form::check_props(&properties, kind.properties, &format!("{path}.Properties"))?;
    let depends_on = match map.get("DependsOn") {
        None => BTreeSet::new(),
        Some(Value::String(s)) => BTreeSet::from([s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or(format!("{path}.DependsOn: expected names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "{path}.DependsOn: expected a name or a list of names"
            ));
        }
    };
    let policy = |key: &str| match map.get(key).map(|v| v.as_str()) {
        None | Some(Some("Delete")) => Ok(false),
        Some(Some("Retain")) => Ok(true),
        _ => Err(format!("{path}.{key}: expected Delete or Retain")),
    };
    Ok(Resource {
        kind,
        properties,
        depends_on,
        retain: policy("DeletionPolicy")?,
        retain_replaced: policy("UpdateReplacePolicy")?,
    })
}

fn output(v: &Value, path: &str) -> Result<Output, String> {
    let map = section(v, path)?;
    for key in map.keys() {
        match key.as_str() {
            "Value" | "Description" => {}
            "Export" | "Condition" => {
                return Err(format!(
                    "{path}.{key}: not supported by riffle's stack files"
                ));
            }
            _ => return Err(format!("{path}.{key}: not a property of an output")),
        }
    }
    Ok(Output {
        value: map
            .get("Value")
            .cloned()
            .ok_or_else(|| format!("{path}: the required property Value is missing"))?,
    })
}

/// Fn::GetAtt's arguments: `[Resource, Attribute]` or `"Resource.Attribute"`.
pub fn get_att(arg: &Value) -> Option<(&str, &str)> {
    match arg {
        Value::String(s) => s.split_once('.'),
        Value::Array(items) if items.len() == 2 => Some((items[0].as_str()?, items[1].as_str()?)),
        _ => None,
    }
}

/// Fn::Sub's arguments: the text and its own variables.
pub fn sub_args(arg: &Value) -> Option<(&str, &Map<String, Value>)> {
    static NONE: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match arg {
        Value::String(s) => Some((s, NONE.get_or_init(Map::new))),
        Value::Array(items) if items.len() == 2 => {
            Some((items[0].as_str()?, items[1].as_object()?))
        }
        _ => None,
    }
}

/// A piece of an Fn::Sub text.
#[derive(Debug, PartialEq, Eq)]
pub enum SubPart<'t> {
    /// Text as it is (`${!Literal}` already written `${Literal}`).
    Text(String),
    /// A `${Name}` or `${Resource.Attribute}` to substitute.
    Variable(&'t str),
}

/// An Fn::Sub text read left to right into text and variables.
pub fn sub_parts(text: &str) -> Result<Vec<SubPart<'_>>, String> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("a ${ without its }")?;
        let inner = &after[..end];
        match inner.strip_prefix('!') {
            Some(kept) => {
                literal.push_str("${");
                literal.push_str(kept);
                literal.push('}');
            }
            None => {
                let name = inner.trim();
                if name.is_empty() {
                    return Err("an empty ${} names nothing".into());
                }
                if !literal.is_empty() {
                    out.push(SubPart::Text(std::mem::take(&mut literal)));
                }
                out.push(SubPart::Variable(name));
            }
        }
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(SubPart::Text(literal));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
