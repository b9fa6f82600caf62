//! A policy document's JSON into a [`Policy`], refusing what IAM refuses
//! (`MalformedPolicyDocument`) with the path of the offending node.

use serde_json::{Map, Value};

use super::{Condition, Effect, Matcher, Operator, Policy, SetQualifier, Statement};

/// Policies larger than this are refused before they are read (IAM's
/// largest, an inline role policy, is 10,240 characters; Kinesis's resource
/// policies 20 KiB).
pub const POLICY_BYTES_MAX: usize = 64 << 10;
/// Statements and values a policy may hold at most.
const STATEMENTS_MAX: usize = 500;
const VALUES_MAX: usize = 1_000;

/// Why a policy document was refused: the node and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed policy document: {}: {}",
            self.path, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

fn err(path: &str, message: impl Into<String>) -> PolicyError {
    PolicyError {
        path: path.to_string(),
        message: message.into(),
    }
}

impl Policy {
    /// Parses and checks a policy document (`resource`: a resource policy,
    /// whose statements name a `Principal`).
    pub fn parse(text: &str, resource: bool) -> Result<Policy, PolicyError> {
        if text.len() > POLICY_BYTES_MAX {
            return Err(err(
                "$",
                format!("{} bytes is more than {POLICY_BYTES_MAX}", text.len()),
            ));
        }
        let v: Value =
            serde_json::from_str(text).map_err(|e| err("$", format!("not JSON: {e}")))?;
        Policy::from_value(&v, resource)
    }

    pub fn from_value(v: &Value, resource: bool) -> Result<Policy, PolicyError> {
        let doc = v
            .as_object()
            .ok_or_else(|| err("$", "a policy is a JSON object"))?;
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(err(&format!("$.{key}"), "unknown element"));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => {
                return Err(err("$.Version", "must be \"2012-10-17\" or \"2008-10-17\""));
            }
        }
        if let Some(id) = doc.get("Id")
            && !id.is_string()
        {
            return Err(err("$.Id", "must be a string"));
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) if a.is_empty() => {
                return Err(err("$.Statement", "must hold at least one statement"));
            }
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(s @ Value::Object(_)) => vec![s],
            Some(_) => return Err(err("$.Statement", "must be an object or a list of them")),
            None => return Err(err("$", "Statement is missing")),
        };
        if statements.len() > STATEMENTS_MAX {
            return Err(err(
                "$.Statement",
                format!("more than {STATEMENTS_MAX} statements"),
            ));
        }
        let mut out = Vec::with_capacity(statements.len());
        for (i, s) in statements.into_iter().enumerate() {
            out.push(statement(s, &format!("$.Statement[{i}]"), resource)?);
        }
        Ok(Policy { statements: out })
    }
}

fn statement(v: &Value, path: &str, resource: bool) -> Result<Statement, PolicyError> {
    let s = v
        .as_object()
        .ok_or_else(|| err(path, "a statement is a JSON object"))?;
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(err(&format!("{path}.{key}"), "unknown element"));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) if sid.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(sid.clone())
        }
        Some(_) => return Err(err(&format!("{path}.Sid"), "must be letters and digits")),
    };
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => {
            return Err(err(
                &format!("{path}.Effect"),
                "must be \"Allow\" or \"Deny\"",
            ));
        }
    };
    let action = pair(s, path, "Action", "NotAction", list)?
        .ok_or_else(|| err(path, "needs Action or NotAction"))?;
    {
        let (Matcher::Any(a) | Matcher::NoneOf(a)) = &action;
        for (i, p) in a.iter().enumerate() {
            if p != "*"
                && !p
                    .split_once(':')
                    .is_some_and(|(svc, op)| !svc.is_empty() && !op.is_empty())
            {
                return Err(err(
                    &format!("{path}.Action[{i}]"),
                    format!("{p:?} is not \"service:Operation\" or \"*\""),
                ));
            }
        }
    }
    let resource_m = pair(s, path, "Resource", "NotResource", list)?;
    if let Some(Matcher::Any(r) | Matcher::NoneOf(r)) = &resource_m {
        for (i, p) in r.iter().enumerate() {
            if p != "*" && !p.starts_with("arn:") {
                return Err(err(
                    &format!("{path}.Resource[{i}]"),
                    format!("{p:?} is not an ARN or \"*\""),
                ));
            }
        }
    }
    let principal = pair(s, path, "Principal", "NotPrincipal", principals)?;
    if resource && principal.is_none() {
        return Err(err(path, "a resource policy's statement needs a Principal"));
    }
    if !resource && principal.is_some() {
        return Err(err(
            path,
            "an identity policy's statement cannot name a Principal",
        ));
    }
    if !resource && resource_m.is_none() {
        return Err(err(path, "needs Resource or NotResource"));
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(c) => conditions(c, &format!("{path}.Condition"))?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource: resource_m,
        conditions,
    })
}

/// `Action` or `NotAction` (never both).
fn pair(
    s: &Map<String, Value>,
    path: &str,
    is: &str,
    not: &str,
    read: fn(&Value, &str) -> Result<Vec<String>, PolicyError>,
) -> Result<Option<Matcher>, PolicyError> {
    match (s.get(is), s.get(not)) {
        (Some(_), Some(_)) => Err(err(path, format!("has both {is} and {not}"))),
        (Some(v), None) => Ok(Some(Matcher::Any(read(v, &format!("{path}.{is}"))?))),
        (None, Some(v)) => Ok(Some(Matcher::NoneOf(read(v, &format!("{path}.{not}"))?))),
        (None, None) => Ok(None),
    }
}

/// A string or a non-empty list of strings.
fn list(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let out: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if !a.is_empty() && a.len() <= VALUES_MAX => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| err(&format!("{path}[{i}]"), "must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Value::Array(a) if a.is_empty() => return Err(err(path, "must not be empty")),
        _ => return Err(err(path, "must be a string or a list of strings")),
    };
    Ok(out)
}

/// `"*"`, or `{"AWS": ...}` with account ids, `arn:aws:iam::ACCOUNT:root` or
/// user ARNs (as ARNs: an account id becomes its root).
fn principals(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec!["*".into()]),
        Value::Object(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                if k != "AWS" {
                    return Err(err(
                        &format!("{path}.{k}"),
                        "only AWS principals are served",
                    ));
                }
                for (i, p) in list(v, &format!("{path}.AWS"))?.into_iter().enumerate() {
                    if p == "*" || p.starts_with("arn:aws:iam::") {
                        out.push(p);
                    } else if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
                        out.push(format!("arn:aws:iam::{p}:root"));
                    } else {
                        return Err(err(
                            &format!("{path}.AWS[{i}]"),
                            format!("{p:?} is not an account id or an IAM ARN"),
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(err(path, "names no principal"));
            }
            Ok(out)
        }
        _ => Err(err(path, "must be \"*\" or {\"AWS\": ...}")),
    }
}

fn conditions(v: &Value, path: &str) -> Result<Vec<Condition>, PolicyError> {
    let blocks = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object of operators"))?;
    let mut out = Vec::new();
    for (name, keys) in blocks {
        let here = format!("{path}.{name}");
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else {
            (SetQualifier::Single, name.as_str())
        };
        let (if_exists, op_name) = match rest.strip_suffix("IfExists") {
            Some(op) if op != "Null" => (true, op),
            _ => (false, rest),
        };
        let operator = operator(op_name).ok_or_else(|| err(&here, "unknown condition operator"))?;
        let keys = keys
            .as_object()
            .ok_or_else(|| err(&here, "must be an object of condition keys"))?;
        if keys.is_empty() {
            return Err(err(&here, "names no condition key"));
        }
        for (key, values) in keys {
            let kpath = format!("{here}.{key}");
            let values: Vec<String> = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(a) => {
                    let mut out = Vec::with_capacity(a.len());
                    for (i, x) in a.iter().enumerate() {
                        out.push(match x {
                            Value::String(s) => s.clone(),
                            Value::Bool(b) => b.to_string(),
                            Value::Number(n) => n.to_string(),
                            _ => return Err(err(&format!("{kpath}[{i}]"), "must be a string")),
                        });
                    }
                    if out.is_empty() || out.len() > VALUES_MAX {
                        return Err(err(&kpath, "must hold 1 to 1,000 values"));
                    }
                    out
                }
                Value::String(s) => vec![s.clone()],
                _ => return Err(err(&kpath, "must be a string or a list of strings")),
            };
            check_values(operator, &values, &kpath)?;
            out.push(Condition {
                operator,
                qualifier,
                if_exists,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// Values the operator cannot compare are refused when the policy is read.
fn check_values(op: Operator, values: &[String], path: &str) -> Result<(), PolicyError> {
    use Operator::*;
    for (i, v) in values.iter().enumerate() {
        let bad = match op {
            IpAddress | NotIpAddress => super::eval::Cidr::parse(v).is_none(),
            Bool | Null => v != "true" && v != "false",
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => v.parse::<f64>().is_err(),
            _ => false,
        };
        if bad {
            return Err(err(
                &format!("{path}[{i}]"),
                format!("{v:?} is not a value {op:?} compares"),
            ));
        }
    }
    Ok(())
}

fn operator(name: &str) -> Option<Operator> {
    use Operator::*;
    Some(match name {
        "StringEquals" => StringEquals,
        "StringNotEquals" => StringNotEquals,
        "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
        "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
        "StringLike" => StringLike,
        "StringNotLike" => StringNotLike,
        "ArnEquals" => ArnEquals,
        "ArnNotEquals" => ArnNotEquals,
        "ArnLike" => ArnLike,
        "ArnNotLike" => ArnNotLike,
        "IpAddress" => IpAddress,
        "NotIpAddress" => NotIpAddress,
        "Bool" => Bool,
        "NumericEquals" => NumericEquals,
        "NumericNotEquals" => NumericNotEquals,
        "NumericLessThan" => NumericLessThan,
        "NumericLessThanEquals" => NumericLessThanEquals,
        "NumericGreaterThan" => NumericGreaterThan,
        "NumericGreaterThanEquals" => NumericGreaterThanEquals,
        "Null" => Null,
        _ => return None,
    })
}
