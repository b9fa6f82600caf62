//! IAM's decisions at the gateway: each signed call's principal (its access
//! key's IAM user), action (`<service>:<Operation>`) and resource (the ARN
//! its service names, with the resource's policy and tags) decided by
//! `riffle_aws::iam` against the user's identity policies (its own and its
//! groups') and the resource's policy. A refusal is AWS's
//! `AccessDeniedException` with AWS's message. On only when the server
//! verifies signatures and was given identities with policies.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use riffle_aws::error::Refusal;
use riffle_aws::iam::{Blame, Context, Decision, Policy, Request, blame, evaluate};

/// An IAM user: its ARN, account and identity policies.
#[derive(Debug)]
pub struct Identity {
    pub arn: String,
    pub account: String,
    pub policies: Vec<Arc<Policy>>,
}

/// What a call acts on, as its service names it.
#[derive(Debug, Default)]
pub struct ResourceRef {
    /// Its ARN; `*` for an action on no resource (ListStreams).
    pub arn: String,
    /// Its resource policy, if it has one (a JSON document).
    pub policy: Option<String>,
    /// Its tags (`aws:ResourceTag/<key>`).
    pub tags: BTreeMap<String, String>,
}

/// The tags a request puts or names (IAM's `aws:RequestTag/<key>` and
/// `aws:TagKeys`).
#[derive(Debug, Default)]
pub struct RequestTags {
    /// The tags it sets: key → value.
    pub tags: BTreeMap<String, String>,
    /// Every tag key it names (the keys it sets and the keys it removes).
    pub keys: Vec<String>,
}

impl RequestTags {
    /// The tags of a call that sets or removes tags (an operation whose name
    /// holds `Tag` or `tag`: Untag*) or creates a resource (`Create*`), read from its body as
    /// the services read it: `Tags` as a map (Kinesis, Video) or a list of
    /// `{Key, Value}` (Firehose, Analytics), `TagKeys` or `TagKeyList` as a
    /// list of keys. Any other call's body is not read (puts are not parsed
    /// twice).
    pub fn of(
        signing_name: &str,
        operation: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<RequestTags, String> {
        let mut out = RequestTags::default();
        let tags_call = operation
            .as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"tag"));
        if !(tags_call || operation.starts_with("Create")) {
            return Ok(out);
        }
        let input = decode_as_read(signing_name, parts, body)?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        match input.get("Tags") {
            Some(serde_json::Value::Object(map)) => {
                for (k, v) in map {
                    if let Some(v) = text(v) {
                        out.tags.insert(k.clone(), v);
                    }
                }
            }
            Some(serde_json::Value::Array(list)) => {
                for t in list {
                    if let Some(k) = t.get("Key").and_then(text) {
                        let v = t.get("Value").and_then(text).unwrap_or_default();
                        out.tags.insert(k, v);
                    }
                }
            }
            _ => {}
        }
        out.keys.extend(out.tags.keys().cloned());
        for member in ["TagKeys", "TagKeyList"] {
            if let Some(serde_json::Value::Array(keys)) = input.get(member) {
                out.keys.extend(keys.iter().filter_map(text));
            }
        }
        out.keys.sort();
        out.keys.dedup();
        Ok(out)
    }
}

/// A request's body decoded as its service reads it: the REST services
/// (Kinesis Video, Lambda) always as JSON, the others by their Content-Type
/// (JSON or CBOR). `Err` when it does not decode: a call IAM must read is
/// refused rather than decided on nothing.
fn decode_as_read(
    signing_name: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if matches!(signing_name, "kinesisvideo" | "lambda") {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        return match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err("the body is not a JSON object".into()),
            Err(e) => Err(format!("the body is not JSON: {e}")),
        };
    }
    riffle_aws::json::Format::of(&parts.headers).decode_object(body)
}

/// What a call makes its service do on the caller's behalf with other
/// resources, each as the action the caller could take itself (AWS mediates
/// these with the service's IAM role; Riffle asks the caller's policies):
/// an Analytics application's inputs (`kinesis:GetRecords` on a stream,
/// `firehose:DescribeDeliveryStream` on a delivery stream) and outputs
/// (`kinesis:PutRecords`, `firehose:PutRecordBatch`,
/// `lambda:InvokeFunction`), DiscoverInputSchema's source, a delivery
/// stream's Kinesis source and a Lambda mapping's event source
/// (`kinesis:GetRecords`, or `kinesis:SubscribeToShard` for a consumer).
/// Read from the body only for the operations that name such resources.
pub fn delegated(
    signing_name: &str,
    operation: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, String> {
    let relevant = match signing_name {
        "kinesisanalytics" => matches!(
            operation,
            "CreateApplication"
                | "AddApplicationInput"
                | "AddApplicationOutput"
                | "AddApplicationInputProcessingConfiguration"
                | "UpdateApplication"
                | "DiscoverInputSchema"
        ),
        "firehose" => operation == "CreateDeliveryStream",
        "lambda" => matches!(
            operation,
            "CreateEventSourceMapping" | "UpdateEventSourceMapping"
        ),
        _ => false,
    };
    if !relevant {
        return Ok(Vec::new());
    }
    let input = decode_as_read(signing_name, parts, body)?;
    let mut out = Vec::new();
    let reading = |arn: &str| {
        if arn.contains(":kinesis:") && arn.contains("/consumer/") {
            "kinesis:SubscribeToShard"
        } else if arn.contains(":firehose:") {
            "firehose:DescribeDeliveryStream"
        } else {
            "kinesis:GetRecords"
        }
    };
    walk(
        &serde_json::Value::Object(input),
        "",
        &mut |parent, key, value| {
            let Some(arn) = value.as_str() else { return };
            let action = match (parent, key) {
                (p, "ResourceARN" | "ResourceARNUpdate")
                    if p.starts_with("KinesisStreamsInput") =>
                {
                    "kinesis:GetRecords"
                }
                (p, "ResourceARN" | "ResourceARNUpdate")
                    if p.starts_with("KinesisFirehoseInput") =>
                {
                    "firehose:DescribeDeliveryStream"
                }
                (p, "ResourceARN" | "ResourceARNUpdate")
                    if p.starts_with("KinesisStreamsOutput") =>
                {
                    "kinesis:PutRecords"
                }
                (p, "ResourceARN" | "ResourceARNUpdate")
                    if p.starts_with("KinesisFirehoseOutput") =>
                {
                    "firehose:PutRecordBatch"
                }
                (p, "ResourceARN" | "ResourceARNUpdate")
                    if p.starts_with("LambdaOutput") || p.starts_with("InputLambdaProcessor") =>
                {
                    "lambda:InvokeFunction"
                }
                // DiscoverInputSchema's source (top level).
                ("", "ResourceARN") if operation == "DiscoverInputSchema" => reading(arn),
                ("KinesisStreamSourceConfiguration", "KinesisStreamARN") => "kinesis:GetRecords",
                ("", "EventSourceArn") => reading(arn),
                _ => return,
            };
            out.push((action, arn.to_string()));
        },
    );
    out.sort();
    out.dedup();
    Ok(out)
}

/// The resource an ARN names, with its policy and tags when it is a data
/// stream of this server (other resources: the ARN alone).
pub fn resource_of_arn(
    engine: &crate::Engine,
    region: &str,
    account: &str,
    arn: String,
) -> ResourceRef {
    let stream = match crate::kinesis::names_of_arn(&arn, region, account) {
        Some(crate::kinesis::ArnNames::Stream(name)) => Some(name.to_string()),
        _ => None,
    };
    match stream {
        Some(name) => ResourceRef {
            policy: engine.settings(&name).ok().and_then(|s| s.resource_policy),
            tags: engine.tags(&name).unwrap_or_default(),
            arn,
        },
        None => ResourceRef {
            arn,
            ..ResourceRef::default()
        },
    }
}

/// Calls `f(parent key, key, value)` for every member of every object in `v`.
fn walk(v: &serde_json::Value, parent: &str, f: &mut dyn FnMut(&str, &str, &serde_json::Value)) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                f(parent, k, child);
                walk(child, k, f);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk(item, parent, f);
            }
        }
        _ => {}
    }
}

/// The identities of the server's access keys.
#[derive(Debug)]
pub struct Authorizer {
    /// By access key id.
    pub identities: BTreeMap<String, Arc<Identity>>,
    /// The account resources belong to.
    pub account: String,
}

impl Authorizer {
    /// Decides `action` of `access_key` on the resource `arn` alone (no
    /// resource policy, tags or request tags): for what the gateway serves
    /// that is not an AWS call (`/metrics`, the console's audit view and its
    /// "may I?" answers).
    pub fn authorize_arn(
        &self,
        access_key: &str,
        action: &str,
        arn: &str,
        source_ip: Option<IpAddr>,
        secure: bool,
    ) -> Result<(), Refusal> {
        let resource = ResourceRef {
            arn: arn.to_string(),
            policy: None,
            tags: BTreeMap::new(),
        };
        self.authorize(
            access_key,
            action,
            &resource,
            &RequestTags::default(),
            source_ip,
            secure,
        )
    }

    /// Decides a call of `access_key` (signed: its identity is known, else
    /// it is refused as an unknown principal).
    pub fn authorize(
        &self,
        access_key: &str,
        action: &str,
        resource: &ResourceRef,
        request: &RequestTags,
        source_ip: Option<IpAddr>,
        secure: bool,
    ) -> Result<(), Refusal> {
        let Some(identity) = self.identities.get(access_key) else {
            return Err(denied(&format!(
                "The access key {access_key} names no identity, so it is not authorized to perform: {action}"
            )));
        };
        let mut cx = Context::new();
        if let Some(ip) = source_ip {
            cx.set("aws:SourceIp", vec![ip.to_string()]);
        }
        cx.set("aws:SecureTransport", vec![secure.to_string()]);
        cx.set("aws:PrincipalArn", vec![identity.arn.clone()]);
        cx.set("aws:PrincipalAccount", vec![identity.account.clone()]);
        if let Some(name) = identity.arn.rsplit('/').next() {
            cx.set("aws:username", vec![name.to_string()]);
        }
        for (k, v) in &resource.tags {
            cx.set(&format!("aws:ResourceTag/{k}"), vec![v.clone()]);
        }
        for (k, v) in &request.tags {
            cx.set(&format!("aws:RequestTag/{k}"), vec![v.clone()]);
        }
        if !request.keys.is_empty() {
            cx.set("aws:TagKeys", request.keys.clone());
        }
        // A resource policy that does not parse denies everything (it may
        // hold a deny this engine cannot read).
        let resource_policy = match resource.policy.as_deref().map(|p| Policy::parse(p, true)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                return Err(denied(&format!(
                    "User: {} is not authorized to perform: {action} on resource: {} because its resource-based policy cannot be read ({e})",
                    identity.arn, resource.arn
                )));
            }
        };
        let identity_policies: Vec<&Policy> = identity.policies.iter().map(|p| &**p).collect();
        let request = Request {
            principal: &identity.arn,
            principal_account: &identity.account,
            action,
            resource: &resource.arn,
            resource_account: &self.account,
            context: &cx,
        };
        let decision = evaluate(&identity_policies, resource_policy.as_ref(), &request);
        if decision == Decision::Allow {
            return Ok(());
        }
        // AWS's words name the kind of policy the refusal is owed to.
        let (a, kind) = match blame(&identity_policies, resource_policy.as_ref(), &request) {
            Blame::Identity => ("an", "identity-based"),
            Blame::Resource => ("a", "resource-based"),
        };
        let because = match decision {
            Decision::ExplicitDeny => format!("with an explicit deny in {a} {kind} policy"),
            _ => format!("because no {kind} policy allows the {action} action"),
        };
        Err(denied(&format!(
            "User: {} is not authorized to perform: {action} on resource: {} {because}",
            identity.arn, resource.arn
        )))
    }
}

impl Authorizer {
    /// The refusal of a call whose resource cannot be told.
    pub fn unnamed(&self, access_key: &str, action: &str, why: &str) -> Refusal {
        let who = self
            .identities
            .get(access_key)
            .map_or(access_key.to_string(), |i| i.arn.clone());
        denied(&format!(
            "User: {who} is not authorized to perform: {action}: the resource the request names cannot be told ({why})"
        ))
    }
}

/// The string members `names` of a request's body (JSON or CBOR, decoded
/// as the services decode theirs, so both read the same values), in the
/// order of `names`; `Err` when the body does not decode or a member is
/// not a string.
pub fn members(
    parts: &http::request::Parts,
    body: &[u8],
    names: &[&'static str],
) -> Result<Vec<(&'static str, String)>, String> {
    let input = riffle_aws::json::Format::of(&parts.headers).decode_object(body)?;
    let mut out = Vec::new();
    for name in names {
        match input.get(*name) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => out.push((*name, s.clone())),
            Some(_) => return Err(format!("{name} is not a string")),
        }
    }
    Ok(out)
}

/// `arns` as resources without policy or tags (`*` when there is none).
pub fn plain(arns: Vec<String>) -> Vec<ResourceRef> {
    let mut arns = arns;
    arns.sort();
    arns.dedup();
    if arns.is_empty() {
        arns.push("*".into());
    }
    arns.into_iter()
        .map(|arn| ResourceRef {
            arn,
            ..ResourceRef::default()
        })
        .collect()
}

fn denied(message: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "AccessDeniedException",
        message.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer() -> Authorizer {
        let read_one = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":["kinesis:Get*","kinesis:DescribeStreamSummary"],
                "Resource":"arn:aws:kinesis:us-east-1:111122223333:stream/stream1"},
                {"Effect":"Deny","Action":"kinesis:GetRecords","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.9.0.0/16"}}}]}"#,
            false,
        )
        .unwrap();
        Authorizer {
            identities: [(
                "AKIDALICE".to_string(),
                Arc::new(Identity {
                    arn: "arn:aws:iam::111122223333:user/alice".into(),
                    account: "111122223333".into(),
                    policies: vec![Arc::new(read_one)],
                }),
            )]
            .into(),
            account: "111122223333".into(),
        }
    }

    fn stream(name: &str) -> ResourceRef {
        ResourceRef {
            arn: format!("arn:aws:kinesis:us-east-1:111122223333:stream/{name}"),
            ..ResourceRef::default()
        }
    }

    #[test]
    fn refusals_are_awss_access_denied() {
        let a = authorizer();
        assert!(
            a.authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &stream("stream1"),
                &RequestTags::default(),
                None,
                false
            )
            .is_ok()
        );
        let r = a
            .authorize(
                "AKIDALICE",
                "kinesis:PutRecord",
                &stream("stream1"),
                &RequestTags::default(),
                None,
                false,
            )
            .unwrap_err();
        assert_eq!(r.kind.as_str(), "AccessDeniedException");
        assert_eq!(
            r.message,
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:111122223333:stream/stream1 because no identity-based policy allows the kinesis:PutRecord action"
        );
        let r = a
            .authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &stream("stream1"),
                &RequestTags::default(),
                Some("10.9.1.1".parse().unwrap()),
                false,
            )
            .unwrap_err();
        assert!(
            r.message
                .ends_with("with an explicit deny in an identity-based policy"),
            "{}",
            r.message
        );
        assert!(
            a.authorize(
                "AKIDBOB",
                "kinesis:GetRecords",
                &stream("stream1"),
                &RequestTags::default(),
                None,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn a_resource_policy_grants_what_identity_policies_do_not() {
        let a = authorizer();
        let mut shared = stream("stream2");
        assert!(
            a.authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &shared,
                &RequestTags::default(),
                None,
                false
            )
            .is_err()
        );
        shared.policy = Some(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kinesis:GetRecords","Resource":"*"}}"#.into(),
        );
        assert!(
            a.authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &shared,
                &RequestTags::default(),
                None,
                false
            )
            .is_ok()
        );
        // One that does not parse denies everything.
        shared.policy = Some("{".into());
        let r = a
            .authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &shared,
                &RequestTags::default(),
                None,
                false,
            )
            .unwrap_err();
        assert!(
            r.message.contains("resource-based policy cannot be read"),
            "{}",
            r.message
        );
    }

    #[test]
    fn request_tags_are_read_in_every_services_form() {
        let parts = |ct: &str| {
            http::Request::post("/")
                .header("content-type", ct)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let json = parts("application/x-amz-json-1.1");
        let k = RequestTags::of(
            "kinesis",
            "AddTagsToStream",
            &json,
            br#"{"StreamName":"s","Tags":{"team":"data","env":"dev"}}"#,
        )
        .unwrap();
        assert_eq!(k.tags.get("team").map(String::as_str), Some("data"));
        assert_eq!(k.keys, ["env", "team"]);
        let f = RequestTags::of(
            "firehose",
            "CreateDeliveryStream",
            &json,
            br#"{"Tags":[{"Key":"team","Value":"data"},{"Key":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(f.tags.len(), 2);
        assert_eq!(f.tags["x"], "");
        let u = RequestTags::of(
            "kinesisanalytics",
            "UntagResource",
            &json,
            br#"{"ResourceARN":"a","TagKeys":["b","a"]}"#,
        )
        .unwrap();
        assert_eq!(u.keys, ["a", "b"]);
        let v = RequestTags::of(
            "kinesisvideo",
            "UntagStream",
            &parts("application/json"),
            br#"{"TagKeyList":["k"]}"#,
        )
        .unwrap();
        assert_eq!(v.keys, ["k"]);
        // Other calls' bodies are not read.
        let p = RequestTags::of("kinesis", "PutRecords", &json, br#"{"Tags":{"a":"b"}}"#).unwrap();
        assert!(p.tags.is_empty() && p.keys.is_empty());
    }

    #[test]
    fn a_refusal_names_the_kind_of_policy_it_is_owed_to() {
        let mut a = authorizer();
        let mut r = stream("stream1");
        // The resource's policy denies what the identity allows.
        r.policy = Some(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:GetRecords","Resource":"*"}}"#.into(),
        );
        let e = a
            .authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &r,
                &RequestTags::default(),
                None,
                false,
            )
            .unwrap_err();
        assert!(
            e.message
                .ends_with("with an explicit deny in a resource-based policy"),
            "{}",
            e.message
        );
        // Across accounts: the identity allows, the resource's policy does not.
        a.account = "999999999999".into();
        let other = ResourceRef {
            arn: "arn:aws:kinesis:us-east-1:999999999999:stream/stream1".into(),
            ..ResourceRef::default()
        };
        let all = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}"#,
            false,
        )
        .unwrap();
        let alice = a.identities.get_mut("AKIDALICE").unwrap();
        Arc::get_mut(alice).unwrap().policies = vec![Arc::new(all)];
        let e = a
            .authorize(
                "AKIDALICE",
                "kinesis:GetRecords",
                &other,
                &RequestTags::default(),
                None,
                false,
            )
            .unwrap_err();
        assert!(
            e.message
                .ends_with("because no resource-based policy allows the kinesis:GetRecords action"),
            "{}",
            e.message
        );
    }

    #[test]
    fn delegated_resources_are_read_as_the_services_read_them() {
        let parts = |ct: &str| {
            http::Request::post("/")
                .header("content-type", ct)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let json = parts("application/x-amz-json-1.1");
        let got = delegated(
            "kinesisanalytics",
            "UpdateApplication",
            &json,
            br#"{"ApplicationUpdate":{"InputUpdates":[{"KinesisStreamsInputUpdate":{"ResourceARNUpdate":"arn:aws:kinesis:r:1:stream/in"}}],
                "OutputUpdates":[{"KinesisFirehoseOutputUpdate":{"ResourceARNUpdate":"arn:aws:firehose:r:1:deliverystream/out"}}]}}"#,
        ).unwrap();
        assert_eq!(
            got,
            [
                (
                    "firehose:PutRecordBatch",
                    "arn:aws:firehose:r:1:deliverystream/out".to_string()
                ),
                (
                    "kinesis:GetRecords",
                    "arn:aws:kinesis:r:1:stream/in".to_string()
                ),
            ]
        );
        let lambda = delegated(
            "lambda",
            "CreateEventSourceMapping",
            &parts("application/json"),
            br#"{"EventSourceArn":"arn:aws:kinesis:r:1:stream/s/consumer/c:1","FunctionName":"f"}"#,
        )
        .unwrap();
        assert_eq!(lambda[0].0, "kinesis:SubscribeToShard");
        let discover = delegated(
            "kinesisanalytics",
            "DiscoverInputSchema",
            &json,
            br#"{"ResourceARN":"arn:aws:firehose:r:1:deliverystream/d"}"#,
        )
        .unwrap();
        assert_eq!(discover[0].0, "firehose:DescribeDeliveryStream");
        // Other operations' bodies are not read.
        assert!(
            delegated("kinesis", "PutRecords", &json, br#"{"EventSourceArn":"x"}"#)
                .unwrap()
                .is_empty()
        );
        // A REST service's body is JSON whatever its Content-Type claims; one
        // that is not JSON is refused, not read as naming nothing.
        let cbor = parts("application/x-amz-cbor-1.1");
        let l = delegated(
            "lambda",
            "CreateEventSourceMapping",
            &cbor,
            br#"{"EventSourceArn":"arn:aws:kinesis:r:1:stream/s"}"#,
        )
        .unwrap();
        assert_eq!(l[0].0, "kinesis:GetRecords");
        assert!(delegated("lambda", "CreateEventSourceMapping", &cbor, b"\xa1").is_err());
        assert!(RequestTags::of("kinesisvideo", "TagStream", &cbor, b"{not json").is_err());
        // Analytics' preprocessor is invoked on the caller's behalf too.
        let pre = delegated(
            "kinesisanalytics",
            "AddApplicationInputProcessingConfiguration",
            &json,
            br#"{"InputProcessingConfiguration":{"InputLambdaProcessor":{"ResourceARN":"arn:aws:lambda:r:1:function:f"}}}"#,
        )
        .unwrap();
        assert_eq!(pre[0].0, "lambda:InvokeFunction");
    }
}
