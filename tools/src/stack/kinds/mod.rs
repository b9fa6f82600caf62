//! The resource types a stack may hold: each one's properties (`Prop`s, the
//! ones of CloudFormation's documentation), its `Fn::GetAtt` attributes, and
//! how it is read, made, changed and deleted through the server's API
//! (`Handler`). One module per service.

mod analytics;
mod firehose;
mod kinesis;
mod video;

use serde_json::{Map, Value, json};

use super::form::Prop;
use super::resolve::Known;
use crate::aws_http::{Api, ApiError};

/// A resource type.
pub struct Kind {
    pub type_name: &'static str,
    pub properties: &'static [Prop],
    pub attributes: &'static [&'static str],
    pub handler: &'static (dyn Handler + Sync),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name)
    }
}

pub static ALL: [&Kind; 7] = [
    &kinesis::STREAM,
    &kinesis::CONSUMER,
    &firehose::DELIVERY_STREAM,
    &analytics::APPLICATION,
    &analytics::OUTPUT,
    &analytics::REFERENCE,
    &video::STREAM,
];

pub fn by_name(name: &str) -> Option<&'static Kind> {
    ALL.iter().copied().find(|k| k.type_name == name)
}

/// The tags that say which stack and logical id a resource belongs to.
pub const STACK_TAG: &str = "riffle/stack";
pub const LOGICAL_ID_TAG: &str = "riffle/logical-id";
/// `Retain` when the resource's DeletionPolicy keeps it: recorded on the
/// resource, so that it is kept once it has left the template too.
pub const DELETION_POLICY_TAG: &str = "riffle/deletion-policy";

/// Where a resource sits in its stack (for its generated name and tags).
pub struct Place<'a> {
    pub stack: &'a str,
    pub logical_id: &'a str,
    /// Its DeletionPolicy is Retain.
    pub retain: bool,
}

impl Place<'_> {
    /// The name of a resource whose template gives none (CloudFormation's
    /// `stack-LogicalId-RANDOM`, without the random part: the same name on
    /// every apply), cut to `max` characters.
    pub fn generated_name(&self, max: usize) -> String {
        let name = format!("{}-{}", self.stack, self.logical_id);
        name.chars().take(max).collect()
    }

    /// The stack's own tags, as `(key, value)`.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            (STACK_TAG.to_string(), self.stack.to_string()),
            (LOGICAL_ID_TAG.to_string(), self.logical_id.to_string()),
        ];
        if self.retain {
            tags.push((DELETION_POLICY_TAG.to_string(), "Retain".to_string()));
        }
        tags
    }
}

/// A resource as the server has it.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its properties in the template's terms (the ones it reports).
    pub props: Map<String, Value>,
    /// Its `Ref` value and attributes.
    pub known: Known,
    /// Its stack and logical id, from its tags (None: not a stack's).
    pub owner: Option<(String, String)>,
    /// Its DeletionPolicy was Retain when the stack last applied it.
    pub retain: bool,
    /// The describing call's answer, for the calls that need a version.
    pub raw: Value,
}

/// How a resource type is read, made, changed and deleted.
pub trait Handler {
    /// The name (or names) the resource is found by; None when it needs a
    /// value not known yet. A generated name is written into `props`.
    fn identity(&self, props: &mut Map<String, Value>, place: &Place<'_>) -> Option<String>;
    /// Refuses what the type's handler refuses on AWS before any call.
    fn check(&self, _props: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
    /// `props` with CloudFormation's defaults where the template says nothing.
    fn defaults(&self, _props: &mut Map<String, Value>) {}
    /// The resource, or None when it does not exist.
    fn read(&self, api: &Api, identity: &str) -> Result<Option<Current>, ApiError>;
    /// Makes it (and waits until it can be used).
    fn create(
        &self,
        api: &Api,
        identity: &str,
        props: &Map<String, Value>,
        place: &Place<'_>,
    ) -> Result<(), ApiError>;
    /// Changes the properties named in `changed` in place.
    fn update(
        &self,
        api: &Api,
        current: &Current,
        props: &Map<String, Value>,
        changed: &[String],
    ) -> Result<(), ApiError>;
    /// The properties whose values differ: by default every property either
    /// side has (one the template leaves out goes back to its default).
    fn changes(&self, desired: &Map<String, Value>, current: &Map<String, Value>) -> Vec<String> {
        let mut keys: Vec<&String> = desired.keys().collect();
        keys.extend(current.keys().filter(|k| !desired.contains_key(*k)));
        keys.into_iter()
            .filter(|k| !same(desired.get(*k), current.get(*k)))
            .cloned()
            .collect()
    }
    /// Deletes it (and waits until it is gone).
    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError>;
    /// Adds and removes tags of the stack's own (`riffle/...`).
    fn retag(
        &self,
        _api: &Api,
        _current: &Current,
        _add: &[(String, String)],
        _remove: &[&str],
    ) -> Result<(), ApiError> {
        Ok(())
    }
    /// Takes the stack's tags off a resource the stack keeps but no longer
    /// manages (Retain).
    fn disown(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        self.retag(
            api,
            current,
            &[],
            &[STACK_TAG, LOGICAL_ID_TAG, DELETION_POLICY_TAG],
        )
    }
    /// Whether the type carries the stack's tags (a resource of it with no
    /// such tag was not made by a stack). Parts of another resource do not.
    fn tracked(&self) -> bool {
        false
    }
    /// The identities and logical ids of the resources of `stack` (by their
    /// tags); empty for types that are found through their parent.
    fn owned(&self, _api: &Api, _stack: &str) -> Result<Vec<(String, String)>, ApiError> {
        Ok(Vec::new())
    }
}

/// `{"Key": k, "Value": v}` tags as pairs, the stack's own left out.
pub fn user_tags(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = tags
        .iter()
        .filter(|(k, _)| !k.starts_with("riffle/"))
        .cloned()
        .collect();
    out.sort();
    out
}

/// Makes the user's tags of `current` those `props` gives: the keys gone
/// removed, the new or changed ones added, through the type's `retag`.
pub fn set_user_tags(
    handler: &dyn Handler,
    api: &Api,
    current: &Current,
    props: &Map<String, Value>,
) -> Result<(), ApiError> {
    let (now, want) = (tag_pairs(&current.props), tag_pairs(props));
    let gone: Vec<&str> = now
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !want.iter().any(|(w, _)| w == k))
        .collect();
    let added: Vec<(String, String)> = want.iter().filter(|t| !now.contains(t)).cloned().collect();
    handler.retag(api, current, &added, &gone)
}

/// The logical id a resource has in `stack`, from its tags (`tags`, as
/// read); None when it is not the stack's. A resource gone meanwhile, or
/// that the caller may not see, is not the stack's to manage.
pub fn member_of(
    stack: &str,
    tags: Result<Vec<(String, String)>, ApiError>,
) -> Result<Option<String>, ApiError> {
    let tags = match tags {
        Err(e) if e.is("ResourceNotFoundException") || e.is("AccessDeniedException") => {
            return Ok(None);
        }
        r => r?,
    };
    Ok(owner(&tags).filter(|(s, _)| s == stack).map(|(_, id)| id))
}

/// Whether a resource's tags record DeletionPolicy Retain.
pub fn retained(tags: &[(String, String)]) -> bool {
    tags.iter()
        .any(|(k, v)| k == DELETION_POLICY_TAG && v == "Retain")
}

/// The stack and logical id a resource's tags name.
pub fn owner(tags: &[(String, String)]) -> Option<(String, String)> {
    let get = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    Some((get(STACK_TAG)?, get(LOGICAL_ID_TAG)?))
}

/// A template's `Tags` list as pairs.
pub fn tag_pairs(props: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = props
        .get("Tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        t["Key"].as_str().unwrap_or_default().to_string(),
                        t["Value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Pairs as a template's `Tags` list.
pub fn tag_list(pairs: &[(String, String)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Pairs as a JSON map (`{"k": "v"}`), as Kinesis and Video take tags.
pub fn tag_map(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Calls `read` until `done` says the resource is ready (or gone, for None),
/// up to ten minutes: a CLI waiting on the server's state machine, as
/// CloudFormation waits.
pub fn wait_until(
    what: &str,
    mut read: impl FnMut() -> Result<Option<Current>, ApiError>,
    done: impl Fn(Option<&Current>) -> bool,
) -> Result<Option<Current>, ApiError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        let now = read()?;
        if done(now.as_ref()) {
            return Ok(now);
        }
        if std::time::Instant::now() > deadline {
            return Err(ApiError {
                kind: String::new(),
                message: format!("{what}: still not done after ten minutes"),
                unreachable: false,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
}

/// An error of the stack command itself (not of a call).
pub fn refusal(message: impl Into<String>) -> ApiError {
    ApiError {
        kind: String::new(),
        message: message.into(),
        unreachable: false,
    }
}

/// Whether a property as the template gives it is what the server has.
/// Within objects, a member the server does not report (a secret, a value it
/// does not echo) is taken as unchanged, and a described member is found
/// under its `*Description` name; scalars compare as CloudFormation coerces
/// them (`"5"` is 5).
pub fn same(desired: Option<&Value>, current: Option<&Value>) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (desired, current) {
        (None, None) => true,
        (Some(v), None) | (None, Some(v)) => empty(v),
        (Some(d), Some(c)) => alike(d, c),
    }
}

fn alike(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => d.iter().all(|(k, dv)| {
            let found = described(k).into_iter().find_map(|name| c.get(&name));
            found.is_none_or(|cv| alike(dv, cv))
        }),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(d, c)| alike(d, c))
        }
        (Value::String(d), Value::Number(c)) => d == &c.to_string(),
        (Value::Number(d), Value::String(c)) => &d.to_string() == c,
        (Value::String(d), Value::Bool(c)) => d == &c.to_string(),
        (Value::Number(d), Value::Number(c)) => d.as_f64() == c.as_f64(),
        (d, c) => d == c,
    }
}

/// Whether the server's description `described` reports member `key` of
/// value `want` in full (each of an object's members, at every depth): a
/// member it does not echo (a password) cannot be known unchanged.
pub fn reported(key: &str, want: &Value, described: &Value) -> bool {
    let Some(now) = self::described(key)
        .into_iter()
        .find_map(|name| described.get(&name))
    else {
        return false;
    };
    match want {
        Value::Object(members) => members.iter().all(|(k, v)| reported(k, v, now)),
        _ => true,
    }
}

/// The names a template's member may be described under.
fn described(key: &str) -> Vec<String> {
    let mut names = vec![
        key.to_string(),
        key.replace("Configuration", "Description"),
        format!("{key}Description"),
    ];
    if key == "S3Configuration" {
        names.push("S3DestinationDescription".into());
    }
    names
}

/// A template's value (of a `*Configuration` or API input shape) in the
/// terms of an update shape (`S3BackupConfiguration` → `S3BackupUpdate`,
/// `ResourceARN` → `ResourceARNUpdate`, `RecordColumns` → `RecordColumnUpdates`).
pub fn update_shaped(
    model: &riffle_aws::model::ServiceModel,
    shape: &riffle_aws::model::Shape,
    value: &Value,
    path: &str,
) -> Result<Value, String> {
    use riffle_aws::model::ShapeKind;
    match (&shape.kind, value) {
        (
            ShapeKind::Structure {
                document: false,
                members,
            },
            Value::Object(map),
        ) => {
            let mut out = Map::new();
            for (k, v) in map {
                let candidates = [
                    k.clone(),
                    format!("{k}Update"),
                    k.replace("Configuration", "Update"),
                    format!("{}Updates", k.trim_end_matches('s')),
                ];
                let member = candidates
                    .iter()
                    .find_map(|c| members.iter().find(|m| m.json_key() == c))
                    .ok_or_else(|| {
                        format!(
                            "{path}.{k} cannot be changed in place (no member of {} takes it)",
                            shape.name
                        )
                    })?;
                out.insert(
                    member.json_key().to_string(),
                    update_shaped(model, model.get(member.shape), v, &format!("{path}.{k}"))?,
                );
            }
            Ok(Value::Object(out))
        }
        (ShapeKind::List { member }, Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| update_shaped(model, model.get(*member), v, &format!("{path}.{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_when_the_server_reports_more_or_under_described_names() {
        let d = json!({"BucketARN": "b", "BufferingHints": {"SizeInMBs": "5"}, "S3BackupConfiguration": {"BucketARN": "x"}});
        let c = json!({"BucketARN": "b", "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300}, "S3BackupDescription": {"BucketARN": "x", "RoleARN": "r"}});
        assert!(same(Some(&d), Some(&c)));
        let c2 = json!({"BucketARN": "b", "BufferingHints": {"SizeInMBs": 6}});
        assert!(!same(Some(&d), Some(&c2)));
        assert!(same(Some(&json!([])), None));
        assert!(!same(None, Some(&json!({"EncryptionType": "KMS"}))));
    }

    #[test]
    fn configurations_become_updates() {
        let model = riffle_aws::model::kinesis_analytics();
        let input = json!({"NamePrefix": "p", "KinesisStreamsInput": {"ResourceARN": "a", "RoleARN": "r"},
            "InputSchema": {"RecordFormat": {"RecordFormatType": "JSON"}, "RecordColumns": [{"Name": "x", "SqlType": "INT"}]},
            "InputParallelism": {"Count": 1}});
        let update = update_shaped(
            model,
            model.shape("InputUpdate").unwrap(),
            &input,
            "Inputs.0",
        )
        .unwrap();
        assert_eq!(
            update,
            json!({"NamePrefixUpdate": "p", "KinesisStreamsInputUpdate": {"ResourceARNUpdate": "a", "RoleARNUpdate": "r"},
            "InputSchemaUpdate": {"RecordFormatUpdate": {"RecordFormatType": "JSON"}, "RecordColumnUpdates": [{"Name": "x", "SqlType": "INT"}]},
            "InputParallelismUpdate": {"CountUpdate": 1}})
        );
        let firehose = riffle_aws::model::firehose();
        let e = update_shaped(
            firehose,
            firehose.shape("ExtendedS3DestinationUpdate").unwrap(),
            &json!({"Nope": 1}),
            "P",
        )
        .unwrap_err();
        assert!(e.starts_with("P.Nope cannot be changed in place"), "{e}");
    }
}
