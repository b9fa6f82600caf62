//! The identities file (`--iam-policies FILE`): IAM users and groups with
//! their identity policies, in IAM's own JSON policy language:
//!
//! ```json
//! {"Users":  {"alice": {"Groups": ["readers"], "Policies": [{"Version": "2012-10-17", "Statement": [...]}]},
//!             "carol": {"Account": "444455556666", "Policies": [...]}},
//!  "Groups": {"readers": {"Policies": [...]}}}
//! ```
//!
//! An access key names its user with `user` in `access_keys` (the key id
//! when it names none); a user the file does not list has no policy, so
//! it may do nothing. A malformed file or policy stops the server with
//! the offending node named.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use riffle_aws::iam::Policy;
use riffle_engine::http::authz::{Authorizer, Identity};
use serde_json::Value;

/// The authorizer for `keys` (access key id → user name) from the file.
pub fn load(
    path: &Path,
    keys: &BTreeMap<String, String>,
    account: &str,
) -> anyhow::Result<Authorizer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the identities file {}", path.display()))?;
    parse(&text, keys, account)
        .with_context(|| format!("invalid identities file {}", path.display()))
}

/// IAM's user and group names: 1 to 64 of letters, digits and `+=,.@_-`.
fn check_name(name: &str, path: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        bail!("{path}: IAM names are 1 to 64 of A-Z a-z 0-9 +=,.@_-");
    }
    Ok(())
}

fn parse(text: &str, keys: &BTreeMap<String, String>, account: &str) -> anyhow::Result<Authorizer> {
    let doc: Value = serde_json::from_str(text).map_err(|e| anyhow!("not JSON: {e}"))?;
    let doc = doc
        .as_object()
        .ok_or_else(|| anyhow!("$: a JSON object of Users and Groups"))?;
    for key in doc.keys() {
        if key != "Users" && key != "Groups" {
            bail!("$.{key}: unknown element (Users, Groups)");
        }
    }
    let policies_of = |v: &Value, path: &str| -> anyhow::Result<Vec<Arc<Policy>>> {
        match v.get("Policies") {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Policy::from_value(p, false)
                        .map(Arc::new)
                        .map_err(|e| anyhow!("{path}.Policies[{i}]: {e}"))
                })
                .collect(),
            Some(_) => bail!("{path}.Policies: a list of policy documents"),
        }
    };
    let section = |key: &str| -> anyhow::Result<Option<&serde_json::Map<String, Value>>> {
        match doc.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => bail!("$.{key}: an object of names"),
        }
    };
    // What a user or a group may hold, nothing else (a misspelt key would
    // silently take its policies away).
    let entry = |v: &Value, path: &str, allowed: &[&str]| -> anyhow::Result<()> {
        let m = v.as_object().ok_or_else(|| anyhow!("{path}: an object"))?;
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                bail!("{path}.{k}: unknown element ({})", allowed.join(", "));
            }
        }
        Ok(())
    };
    let mut groups: BTreeMap<String, Vec<Arc<Policy>>> = BTreeMap::new();
    for (name, g) in section("Groups")?.into_iter().flatten() {
        let path = format!("$.Groups.{name}");
        check_name(name, &path)?;
        entry(g, &path, &["Policies"])?;
        groups.insert(name.clone(), policies_of(g, &path)?);
    }
    let mut users: BTreeMap<String, Arc<Identity>> = BTreeMap::new();
    for (name, u) in section("Users")?.into_iter().flatten() {
        let path = format!("$.Users.{name}");
        check_name(name, &path)?;
        entry(u, &path, &["Account", "Groups", "Policies"])?;
        if u.get("Groups").is_some_and(|g| !g.is_array()) {
            bail!("{path}.Groups: a list of group names");
        }
        let user_account = match u.get("Account") {
            None => account.to_string(),
            Some(Value::String(a)) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => {
                a.clone()
            }
            Some(_) => bail!("{path}.Account: 12 digits"),
        };
        let mut policies = policies_of(u, &path)?;
        for (i, g) in u
            .get("Groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let g = g
                .as_str()
                .ok_or_else(|| anyhow!("{path}.Groups[{i}]: a group's name"))?;
            let group = groups
                .get(g)
                .ok_or_else(|| anyhow!("{path}.Groups[{i}]: no group {g:?} in Groups"))?;
            policies.extend(group.iter().cloned());
        }
        users.insert(
            name.clone(),
            Arc::new(Identity {
                arn: format!("arn:aws:iam::{user_account}:user/{name}"),
                account: user_account,
                policies,
            }),
        );
    }
    let identities = keys
        .iter()
        .map(|(key, user)| {
            let identity = users.get(user).cloned().unwrap_or_else(|| {
                Arc::new(Identity {
                    arn: format!("arn:aws:iam::{account}:user/{user}"),
                    account: account.to_string(),
                    policies: Vec::new(),
                })
            });
            (key.clone(), identity)
        })
        .collect();
    Ok(Authorizer {
        identities,
        account: account.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_get_their_groups_policies_and_keys_their_users() {
        let keys: BTreeMap<String, String> = [
            ("AKIDA".to_string(), "alice".to_string()),
            ("AKIDC".to_string(), "carol".to_string()),
            ("AKIDX".to_string(), "nobody".to_string()),
        ]
        .into();
        let a = parse(
            r#"{"Users":{"alice":{"Groups":["readers"],"Policies":[{"Statement":{"Effect":"Allow","Action":"kinesis:PutRecord","Resource":"*"}}]},
                         "carol":{"Account":"444455556666"}},
                "Groups":{"readers":{"Policies":[{"Statement":{"Effect":"Allow","Action":"kinesis:Get*","Resource":"*"}}]}}}"#,
            &keys,
            "111122223333",
        )
        .unwrap();
        assert_eq!(a.identities["AKIDA"].policies.len(), 2);
        assert_eq!(
            a.identities["AKIDA"].arn,
            "arn:aws:iam::111122223333:user/alice"
        );
        assert_eq!(
            a.identities["AKIDC"].arn,
            "arn:aws:iam::444455556666:user/carol"
        );
        assert!(a.identities["AKIDX"].policies.is_empty());
    }

    #[test]
    fn a_bad_file_names_its_node() {
        let keys = BTreeMap::new();
        for (text, says) in [
            ("[", "not JSON"),
            (r#"{"Roles":{}}"#, "$.Roles: unknown element"),
            (
                r#"{"Users":{"a":{"Groups":["g"]}}}"#,
                "$.Users.a.Groups[0]: no group",
            ),
            (r#"{"Users":{"a":{"Account":"12"}}}"#, "$.Users.a.Account"),
            (r#"{"Users":[]}"#, "$.Users: an object"),
            (
                r#"{"Users":{"a":{"Policy":[]}}}"#,
                "$.Users.a.Policy: unknown element",
            ),
            (
                r#"{"Users":{"a":{"Groups":"g"}}}"#,
                "$.Users.a.Groups: a list",
            ),
            (r#"{"Users":{"a/b":{}}}"#, "$.Users.a/b: IAM names"),
            (
                r#"{"Users":{"a":{"Policies":[{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}]}}}"#,
                "$.Users.a.Policies[0]: malformed policy document: $.Statement[0].Effect",
            ),
        ] {
            let e = parse(text, &keys, "111122223333").unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
