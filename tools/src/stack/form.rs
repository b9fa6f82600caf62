//! What a property's value may be (`Form`), checked on the template as
//! written (a function such as `{"Ref": ..}` stands for any value until it is
//! resolved) and coerced once resolved, as CloudFormation coerces: `"3"`
//! where an integer is expected, `3` where a string is. A property that is
//! an API structure is walked through the service's model, so an unknown
//! member anywhere below it is refused with its path.

use riffle_aws::model::{ServiceModel, ShapeKind};
use serde_json::{Map, Value};

use crate::aws_http::Service;

/// The value a property takes.
#[derive(Debug, Clone, Copy)]
pub enum Form {
    String,
    Integer,
    StringList,
    /// A list of `{Key, Value}` objects.
    Tags,
    /// The shape of this name in the service's model.
    Shape(Service, &'static str),
    /// An object of these properties (CloudFormation's own, not the API's).
    Object(&'static [Prop]),
}

/// A property of a resource type, or of one of CloudFormation's own objects.
#[derive(Debug)]
pub struct Prop {
    pub name: &'static str,
    pub form: Form,
    pub required: bool,
    /// A change replaces the resource ("Update requires: Replacement").
    pub replaces: bool,
}

/// `{"Ref": ..}` or `{"Fn::...": ..}`: a function's call, its name.
pub fn function(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    let (name, _) = map.iter().next()?;
    (map.len() == 1 && (name == "Ref" || name.starts_with("Fn::"))).then_some(name.as_str())
}

/// Checks the properties of `props` (at `path`) against `form`s, functions
/// accepted anywhere; the first mismatch, with its path.
pub fn check_props(props: &Map<String, Value>, schema: &[Prop], path: &str) -> Result<(), String> {
    for (key, value) in props {
        let prop = schema.iter().find(|p| p.name == key).ok_or_else(|| {
            let names: Vec<&str> = schema.iter().map(|p| p.name).collect();
            format!(
                "{path}.{key}: no such property (expected one of: {})",
                names.join(", ")
            )
        })?;
        check(value, prop.form, &format!("{path}.{key}"))?;
    }
    if let Some(missing) = schema
        .iter()
        .find(|p| p.required && !props.contains_key(p.name))
    {
        return Err(format!(
            "{path}: the required property {} is missing",
            missing.name
        ));
    }
    Ok(())
}

/// Checks one value against its form.
pub fn check(value: &Value, form: Form, path: &str) -> Result<(), String> {
    walk(value, form, path, false).map(|_| ())
}

/// The resolved value coerced to its form (`"3"` → 3 for an integer).
pub fn coerce(value: &Value, form: Form, path: &str) -> Result<Value, String> {
    walk(value, form, path, true)
}

fn walk(value: &Value, form: Form, path: &str, coerce: bool) -> Result<Value, String> {
    if !coerce && function(value).is_some() {
        return Ok(Value::Null);
    }
    match form {
        Form::String => scalar(value, ScalarKind::String, path),
        Form::Integer => scalar(value, ScalarKind::Integer, path),
        Form::StringList => list(value, path, |v, p| walk(v, Form::String, p, coerce)),
        Form::Tags => sorted_tags(
            list(value, path, |v, p| {
                let map = v
                    .as_object()
                    .ok_or_else(|| format!("{p}: expected a tag, {{Key, Value}}"))?;
                let mut tag = Map::new();
                for (k, v) in map {
                    if k != "Key" && k != "Value" {
                        return Err(format!("{p}.{k}: a tag has only Key and Value"));
                    }
                    tag.insert(
                        k.clone(),
                        walk(v, Form::String, &format!("{p}.{k}"), coerce)?,
                    );
                }
                if !map.contains_key("Key") || !map.contains_key("Value") {
                    return Err(format!("{p}: a tag needs Key and Value"));
                }
                Ok(Value::Object(tag))
            })?,
            path,
        ),
        Form::Object(props) => {
            let map = value
                .as_object()
                .ok_or_else(|| format!("{path}: expected an object"))?;
            match coerce {
                false => check_props(map, props, path).map(|_| Value::Null),
                true => {
                    let mut out = Map::new();
                    for (k, v) in map {
                        let form = props
                            .iter()
                            .find(|p| p.name == k)
                            .map_or(Form::String, |p| p.form);
                        out.insert(k.clone(), walk(v, form, &format!("{path}.{k}"), true)?);
                    }
                    Ok(Value::Object(out))
                }
            }
        }
        Form::Shape(service, name) => {
            let model = service.model();
            let shape = model
                .shape(name)
                .unwrap_or_else(|| panic!("the {name} shape is in the model"));
            shaped(model, shape, value, path, coerce)
        }
    }
}

fn shaped(
    model: &ServiceModel,
    shape: &riffle_aws::model::Shape,
    value: &Value,
    path: &str,
    coerce: bool,
) -> Result<Value, String> {
    if !coerce && function(value).is_some() {
        return Ok(Value::Null);
    }
    match &shape.kind {
        ShapeKind::Structure { document: true, .. } => Ok(value.clone()),
        ShapeKind::Structure { members, .. } => {
            let map = value
                .as_object()
                .ok_or_else(|| format!("{path}: expected an object"))?;
            let mut out = Map::new();
            for (k, v) in map {
                let member = members.iter().find(|m| m.json_key() == k).ok_or_else(|| {
                    let names: Vec<&str> = members.iter().map(|m| m.json_key()).collect();
                    format!(
                        "{path}.{k}: no such property (expected one of: {})",
                        names.join(", ")
                    )
                })?;
                let inner = shaped(
                    model,
                    model.get(member.shape),
                    v,
                    &format!("{path}.{k}"),
                    coerce,
                )?;
                out.insert(k.clone(), inner);
            }
            if let Some(m) = members
                .iter()
                .find(|m| m.required && !map.contains_key(m.json_key()))
            {
                return Err(format!(
                    "{path}: the required property {} is missing",
                    m.json_key()
                ));
            }
            Ok(Value::Object(out))
        }
        ShapeKind::List { member } => list(value, path, |v, p| {
            shaped(model, model.get(*member), v, p, coerce)
        }),
        ShapeKind::Map { value: inner, .. } => {
            let map = value
                .as_object()
                .ok_or_else(|| format!("{path}: expected an object"))?;
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(
                    k.clone(),
                    shaped(model, model.get(*inner), v, &format!("{path}.{k}"), coerce)?,
                );
            }
            Ok(Value::Object(out))
        }
        ShapeKind::String | ShapeKind::Blob { .. } | ShapeKind::Timestamp { .. } => {
            scalar(value, ScalarKind::String, path)
        }
        ShapeKind::Boolean => scalar(value, ScalarKind::Boolean, path),
        ShapeKind::Integer | ShapeKind::Long => scalar(value, ScalarKind::Integer, path),
        ShapeKind::Float | ShapeKind::Double => scalar(value, ScalarKind::Number, path),
    }
}

/// Tags in the order of their keys (the server's order: a template's tags
/// in another order are the same tags), each key once, none of the keys
/// AWS reserves (`aws:`) or the stack's own (`riffle/`).
fn sorted_tags(mut tags: Value, path: &str) -> Result<Value, String> {
    if let Value::Array(items) = &mut tags {
        items.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
        for pair in items.windows(2) {
            if pair[0]["Key"] == pair[1]["Key"] && pair[0]["Key"].is_string() {
                return Err(format!("{path}: the tag {} is given twice", pair[0]["Key"]));
            }
        }
        for tag in items.iter() {
            let key = tag["Key"].as_str().unwrap_or_default();
            let lower = key.to_ascii_lowercase();
            if lower.starts_with("aws:") || lower.starts_with("riffle/") {
                return Err(format!(
                    "{path}: the tag key {key} is reserved (aws: for AWS, riffle/ for the stack's own tags)"
                ));
            }
        }
    }
    Ok(tags)
}

fn list(
    value: &Value,
    path: &str,
    mut item: impl FnMut(&Value, &str) -> Result<Value, String>,
) -> Result<Value, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{path}: expected a list"))?;
    let out = items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v, &format!("{path}.{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(out))
}

#[derive(Clone, Copy)]
enum ScalarKind {
    String,
    Integer,
    Number,
    Boolean,
}

/// A scalar as its kind, from the forms CloudFormation accepts for it.
fn scalar(value: &Value, kind: ScalarKind, path: &str) -> Result<Value, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(format!("{path}: expected {}", kind.name())),
    };
    let bad = || format!("{path}: expected {}, got {value}", kind.name());
    match kind {
        ScalarKind::String => Ok(Value::String(text)),
        ScalarKind::Integer => text.parse::<i64>().map(Value::from).map_err(|_| bad()),
        ScalarKind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(bad),
        ScalarKind::Boolean => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
    }
}

impl ScalarKind {
    fn name(self) -> &'static str {
        match self {
            ScalarKind::String => "a string",
            ScalarKind::Integer => "an integer",
            ScalarKind::Number => "a number",
            ScalarKind::Boolean => "a boolean",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_shapes_refuse_unknown_members_with_their_path() {
        let form = Form::Shape(Service::Firehose, "ExtendedS3DestinationConfiguration");
        let ok = json!({"BucketARN": "arn:aws:s3:::b", "RoleARN": "r", "BufferingHints": {"SizeInMBs": "5"}});
        check(&ok, form, "P").unwrap();
        assert_eq!(
            coerce(&ok, form, "P").unwrap()["BufferingHints"]["SizeInMBs"],
            json!(5)
        );
        let bad = json!({"BucketARN": "b", "RoleARN": "r", "BufferingHints": {"SizeInMB": 5}});
        let e = check(&bad, form, "P").unwrap_err();
        assert!(
            e.starts_with("P.BufferingHints.SizeInMB: no such property"),
            "{e}"
        );
        let missing = json!({"RoleARN": "r"});
        assert_eq!(
            check(&missing, form, "P").unwrap_err(),
            "P: the required property BucketARN is missing"
        );
        assert!(
            check(
                &json!({"BucketARN": {"Fn::GetAtt": ["B", "Arn"]}, "RoleARN": "r"}),
                form,
                "P"
            )
            .is_ok()
        );
    }

    #[test]
    fn scalars_coerce_as_cloudformation_does() {
        assert_eq!(coerce(&json!("3"), Form::Integer, "P").unwrap(), json!(3));
        assert_eq!(coerce(&json!(3), Form::String, "P").unwrap(), json!("3"));
        assert_eq!(
            coerce(
                &json!("true"),
                Form::Shape(Service::Firehose, "BooleanObject"),
                "P"
            )
            .unwrap(),
            json!(true)
        );
        assert_eq!(
            coerce(&json!("x"), Form::Integer, "P").unwrap_err(),
            "P: expected an integer, got \"x\""
        );
        assert_eq!(
            check(&json!([{"Key": "a"}]), Form::Tags, "T").unwrap_err(),
            "T.0: a tag needs Key and Value"
        );
    }
}
