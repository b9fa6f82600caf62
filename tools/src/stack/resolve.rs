//! The template's functions evaluated: `Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Base64`, over the
//! parameters' values, the pseudo parameters and what is known of each
//! resource. A resource not made yet (`riffle diff` of a new one) has no ARN:
//! whatever depends on it resolves to `None`, "known after apply".

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::form::function;
use super::template::{SubPart, get_att, sub_args, sub_parts};

/// What one resource is known as: its `Ref` value and attributes.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub reference: String,
    pub attributes: Map<String, Value>,
}

/// The values the functions read.
#[derive(Debug, Default)]
pub struct Scope {
    /// Parameters and pseudo parameters (`AWS::Region`, ...).
    pub values: BTreeMap<String, Value>,
    /// Resources known by now, by logical id.
    pub resources: BTreeMap<String, Known>,
}

impl Scope {
    /// `value` with its functions evaluated; None when it needs something
    /// not known yet. Errors name the path.
    pub fn resolve(&self, value: &Value, path: &str) -> Result<Option<Value>, String> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    match self.resolve(v, &format!("{path}.{i}"))? {
                        Some(v) => out.push(v),
                        None => return Ok(None),
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) => match function(value) {
                Some(name) => self.call(name, &map[name], &format!("{path}.{name}")),
                None => {
                    let mut out = Map::new();
                    for (k, v) in map {
                        match self.resolve(v, &format!("{path}.{k}"))? {
                            Some(v) => out.insert(k.clone(), v),
                            None => return Ok(None),
                        };
                    }
                    Ok(Some(Value::Object(out)))
                }
            },
            other => Ok(Some(other.clone())),
        }
    }

    fn call(&self, name: &str, arg: &Value, path: &str) -> Result<Option<Value>, String> {
        match name {
            "Ref" => Ok(self.lookup(arg.as_str().unwrap_or_default(), None)),
            "Fn::GetAtt" => {
                let (r, a) =
                    get_att(arg).ok_or(format!("{path}: expected [Resource, Attribute]"))?;
                Ok(self.lookup(r, Some(a)))
            }
            "Fn::Sub" => {
                let (text, vars) = sub_args(arg).ok_or(format!("{path}: expected a string"))?;
                let mut own = BTreeMap::new();
                for (k, v) in vars {
                    match self.resolve(v, &format!("{path}.1.{k}"))? {
                        Some(v) => own.insert(k.as_str(), text_of(&v, path)?),
                        None => return Ok(None),
                    };
                }
                let mut out = String::new();
                for part in sub_parts(text).map_err(|e| format!("{path}: {e}"))? {
                    let variable = match part {
                        SubPart::Text(t) => {
                            out.push_str(&t);
                            continue;
                        }
                        SubPart::Variable(v) => v,
                    };
                    let value = match own.get(variable) {
                        Some(v) => v.clone(),
                        None => {
                            let found = match variable.split_once('.') {
                                Some((r, a)) if !self.values.contains_key(variable) => {
                                    self.lookup(r, Some(a))
                                }
                                _ => self.lookup(variable, None),
                            };
                            match found {
                                Some(v) => text_of(&v, path)?,
                                None => return Ok(None),
                            }
                        }
                    };
                    out.push_str(&value);
                }
                Ok(Some(Value::String(out)))
            }
            "Fn::Join" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or(format!("{path}: expected [delimiter, [values]]"))?;
                let delimiter = items[0]
                    .as_str()
                    .ok_or(format!("{path}.0: expected a string"))?;
                let Some(list) = self.resolve(&items[1], &format!("{path}.1"))? else {
                    return Ok(None);
                };
                let parts = list
                    .as_array()
                    .ok_or(format!("{path}.1: expected a list"))?;
                let texts = parts
                    .iter()
                    .map(|p| text_of(p, path))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Value::String(texts.join(delimiter))))
            }
            "Fn::Select" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or(format!("{path}: expected [index, [values]]"))?;
                let (Some(index), Some(list)) = (
                    self.resolve(&items[0], path)?,
                    self.resolve(&items[1], path)?,
                ) else {
                    return Ok(None);
                };
                let i = text_of(&index, path)?
                    .parse::<usize>()
                    .map_err(|_| format!("{path}.0: expected an index"))?;
                let list = list
                    .as_array()
                    .ok_or(format!("{path}.1: expected a list"))?;
                list.get(i)
                    .cloned()
                    .map(Some)
                    .ok_or(format!("{path}: index {i} of a list of {}", list.len()))
            }
            "Fn::Split" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or(format!("{path}: expected [delimiter, string]"))?;
                let delimiter = items[0]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .ok_or(format!("{path}.0: expected a delimiter"))?;
                let Some(text) = self.resolve(&items[1], path)? else {
                    return Ok(None);
                };
                let text = text_of(&text, path)?;
                Ok(Some(Value::Array(
                    text.split(delimiter).map(Value::from).collect(),
                )))
            }
            "Fn::Base64" => {
                let Some(text) = self.resolve(arg, path)? else {
                    return Ok(None);
                };
                Ok(Some(Value::String(BASE64.encode(text_of(&text, path)?))))
            }
            _ => Err(format!("{path}: not supported")),
        }
    }

    /// A parameter, pseudo parameter or resource (`attribute` for Fn::GetAtt).
    fn lookup(&self, name: &str, attribute: Option<&str>) -> Option<Value> {
        match attribute {
            None => self.values.get(name).cloned().or_else(|| {
                self.resources
                    .get(name)
                    .map(|k| Value::String(k.reference.clone()))
            }),
            Some(a) => self.resources.get(name)?.attributes.get(a).cloned(),
        }
    }
}

/// A scalar as text (Fn::Join and Fn::Sub parts).
fn text_of(value: &Value, path: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{path}: expected a string, got {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.values.insert("AWS::Region".into(), json!("us-east-1"));
        s.values.insert("Env".into(), json!("prod"));
        s.values.insert("Zones".into(), json!(["a", "b"]));
        s.resources.insert(
            "Stream".into(),
            Known {
                reference: "orders".into(),
                attributes: Map::from_iter([(
                    "Arn".into(),
                    json!("arn:aws:kinesis:us-east-1:000000000000:stream/orders"),
                )]),
            },
        );
        s
    }

    #[test]
    fn functions_evaluate() {
        let s = scope();
        let r = |v: Value| s.resolve(&v, "P").unwrap();
        assert_eq!(r(json!({"Ref": "Stream"})), Some(json!("orders")));
        assert_eq!(
            r(json!({"Fn::GetAtt": ["Stream", "Arn"]})).unwrap(),
            json!("arn:aws:kinesis:us-east-1:000000000000:stream/orders")
        );
        assert_eq!(
            r(json!({"Fn::Sub": "${Env}-${Stream}-${AWS::Region}-${!Kept}"})),
            Some(json!("prod-orders-us-east-1-${Kept}"))
        );
        assert_eq!(
            r(json!({"Fn::Sub": ["${!Literal}-${Env}-${V}", {"V": "${!not}"}]})),
            Some(json!("${Literal}-prod-${!not}"))
        );
        assert_eq!(
            r(json!({"Fn::Sub": ["${X}/${Stream.Arn}", {"X": {"Ref": "Env"}}]})).unwrap(),
            json!("prod/arn:aws:kinesis:us-east-1:000000000000:stream/orders")
        );
        assert_eq!(
            r(json!({"Fn::Join": ["-", ["a", {"Ref": "Env"}, 3]]})),
            Some(json!("a-prod-3"))
        );
        assert_eq!(
            r(json!({"Fn::Select": [1, {"Ref": "Zones"}]})),
            Some(json!("b"))
        );
        assert_eq!(
            r(json!({"Fn::Split": [",", "x,y"]})),
            Some(json!(["x", "y"]))
        );
        assert_eq!(r(json!({"Fn::Base64": "hi"})), Some(json!("aGk=")));
        assert_eq!(r(json!({"A": [{"Fn::GetAtt": ["Later", "Arn"]}]})), None);
        assert_eq!(
            s.resolve(&json!({"Fn::Select": [5, ["a"]]}), "P")
                .unwrap_err(),
            "P.Fn::Select: index 5 of a list of 1"
        );
    }
}
