use super::*;

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";

fn policy(text: &str) -> Policy {
    Policy::parse(text, false).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stream(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

/// Decides `action` on `resource` for alice of ACCOUNT.
fn decide(
    identity: &[&Policy],
    resource_policy: Option<&Policy>,
    action: &str,
    resource: &str,
    cx: &Context,
) -> Decision {
    evaluate(
        identity,
        resource_policy,
        &Request {
            principal: &format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            principal_account: ACCOUNT,
            action,
            resource,
            resource_account: ACCOUNT,
            context: cx,
        },
    )
}

use Decision::*;

/// The IAM documentation's Kinesis examples (controlling-access.md).
#[test]
fn the_documentations_kinesis_examples() {
    let cx = Context::new();
    let read_only = policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["kinesis:Get*","kinesis:DescribeStreamSummary"],"Resource":["{}"]}},
            {{"Effect":"Allow","Action":["kinesis:ListStreams"],"Resource":["*"]}}]}}"#,
        stream("stream1")
    ));
    for (action, resource, want) in [
        ("kinesis:GetRecords", stream("stream1"), Allow),
        ("kinesis:GetShardIterator", stream("stream1"), Allow),
        ("kinesis:DescribeStreamSummary", stream("stream1"), Allow),
        ("kinesis:ListStreams", "*".to_string(), Allow),
        ("kinesis:PutRecord", stream("stream1"), ImplicitDeny),
        ("kinesis:GetRecords", stream("stream2"), ImplicitDeny),
        ("kinesis:DescribeStream", stream("stream1"), ImplicitDeny),
    ] {
        assert_eq!(
            decide(&[&read_only], None, action, &resource, &cx),
            want,
            "read-only {action} {resource}"
        );
    }
    let write_all = policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kinesis:PutRecord"],
            "Resource":["arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/*"]}}]}}"#
    ));
    assert_eq!(
        decide(
            &[&write_all],
            None,
            "kinesis:PutRecord",
            &stream("any"),
            &cx
        ),
        Allow
    );
    assert_eq!(
        decide(
            &[&write_all],
            None,
            "kinesis:PutRecords",
            &stream("any"),
            &cx
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &[&write_all],
            None,
            "kinesis:PutRecord",
            &format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/x"),
            &cx
        ),
        ImplicitDeny
    );
    let full_one = policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":"kinesis:*","Resource":"{}"}}}}"#,
        stream("stream1")
    ));
    assert_eq!(
        decide(
            &[&full_one],
            None,
            "kinesis:DeleteStream",
            &stream("stream1"),
            &cx
        ),
        Allow
    );
    assert_eq!(
        decide(
            &[&full_one],
            None,
            "kinesis:DeleteStream",
            &stream("stream10"),
            &cx
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &[&full_one],
            None,
            "firehose:PutRecord",
            &stream("stream1"),
            &cx
        ),
        ImplicitDeny
    );
    let all_regions = policy(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:*:{ACCOUNT}:stream/*"}}]}}"#
    ));
    assert_eq!(
        decide(
            &[&all_regions],
            None,
            "kinesis:PutRecord",
            &format!("arn:aws:kinesis:ap-south-1:{ACCOUNT}:stream/s"),
            &cx
        ),
        Allow
    );
    // Actions compare without case; ARNs with.
    assert_eq!(
        decide(
            &[&full_one],
            None,
            "Kinesis:putrecord",
            &stream("stream1"),
            &cx
        ),
        Allow
    );
    assert_eq!(
        decide(
            &[&full_one],
            None,
            "kinesis:PutRecord",
            &stream("Stream1"),
            &cx
        ),
        ImplicitDeny
    );
}

#[test]
fn an_explicit_deny_wins_and_not_elements_invert() {
    let cx = Context::new();
    let allow_all = policy(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    let deny_delete =
        policy(r#"{"Statement":{"Effect":"Deny","Action":"kinesis:Delete*","Resource":"*"}}"#);
    assert_eq!(
        decide(
            &[&allow_all, &deny_delete],
            None,
            "kinesis:DeleteStream",
            &stream("s"),
            &cx
        ),
        ExplicitDeny
    );
    assert_eq!(
        decide(
            &[&allow_all, &deny_delete],
            None,
            "kinesis:CreateStream",
            &stream("s"),
            &cx
        ),
        Allow
    );
    assert_eq!(
        decide(&[], None, "kinesis:CreateStream", &stream("s"), &cx),
        ImplicitDeny
    );
    // Everything but Kinesis, on everything but stream "keep".
    let not = policy(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","NotAction":"kinesis:*","Resource":"*"}},
            {{"Effect":"Allow","Action":"kinesis:*","NotResource":"{}"}}]}}"#,
        stream("keep")
    ));
    assert_eq!(decide(&[&not], None, "firehose:PutRecord", "*", &cx), Allow);
    assert_eq!(
        decide(&[&not], None, "kinesis:DeleteStream", &stream("keep"), &cx),
        ImplicitDeny
    );
    assert_eq!(
        decide(&[&not], None, "kinesis:DeleteStream", &stream("other"), &cx),
        Allow
    );
}

#[test]
fn conditions_on_source_ip_tags_and_arns() {
    let p = policy(
        r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{
            "IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},
            "StringEquals":{"aws:ResourceTag/env":"prod"}}}]}"#,
    );
    let mut cx = Context::new();
    cx.set("aws:SourceIp", vec!["10.1.2.3".into()]);
    cx.set("aws:ResourceTag/env", vec!["prod".into()]);
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &cx),
        Allow
    );
    // Keys compare without case.
    let mut upper = Context::new();
    upper.set("AWS:SOURCEIP", vec!["::ffff:10.9.9.9".into()]);
    upper.set("aws:resourcetag/env", vec!["prod".into()]);
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &upper),
        Allow
    );
    cx.set("aws:SourceIp", vec!["192.168.1.1".into()]);
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &cx),
        ImplicitDeny
    );
    cx.set("aws:SourceIp", vec!["2001:db8:1::5".into()]);
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &cx),
        Allow
    );
    cx.set("aws:ResourceTag/env", vec!["dev".into()]);
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &cx),
        ImplicitDeny
    );
    // A missing key: false, but for a negated operator or IfExists.
    let missing = Context::new();
    assert_eq!(
        decide(&[&p], None, "kinesis:PutRecord", &stream("s"), &missing),
        ImplicitDeny
    );
    let neg = policy(
        r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
                         {"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:ResourceTag/env":"prod"}}}]}"#,
    );
    let mut inside = Context::new();
    inside.set("aws:SourceIp", vec!["10.0.0.1".into()]);
    assert_eq!(
        decide(&[&neg], None, "kinesis:PutRecord", &stream("s"), &inside),
        Allow
    );
    let mut outside = Context::new();
    outside.set("aws:SourceIp", vec!["8.8.8.8".into()]);
    assert_eq!(
        decide(&[&neg], None, "kinesis:PutRecord", &stream("s"), &outside),
        ExplicitDeny
    );
    assert_eq!(
        decide(&[&neg], None, "kinesis:PutRecord", &stream("s"), &missing),
        ExplicitDeny
    );
    // ArnLike on the resource's ARN.
    let arn = policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{{"ArnLike":{{"kinesis:StreamARN":"arn:aws:kinesis:*:{ACCOUNT}:stream/app-*"}}}}}}}}"#
    ));
    let mut a = Context::new();
    a.set("kinesis:StreamARN", vec![stream("app-1")]);
    assert_eq!(
        decide(&[&arn], None, "kinesis:PutRecord", &stream("app-1"), &a),
        Allow
    );
    a.set("kinesis:StreamARN", vec![stream("web-1")]);
    assert_eq!(
        decide(&[&arn], None, "kinesis:PutRecord", &stream("web-1"), &a),
        ImplicitDeny
    );
}

#[test]
fn multi_valued_keys_and_null() {
    // Tags on create only from an allowed set, and at least one given.
    let p = policy(
        r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:AddTagsToStream","Resource":"*","Condition":{
            "ForAllValues:StringLike":{"aws:TagKeys":["env","team-*"]},
            "Null":{"aws:TagKeys":"false"}}}]}"#,
    );
    let tags = |keys: &[&str]| {
        let mut cx = Context::new();
        if !keys.is_empty() {
            cx.set("aws:TagKeys", keys.iter().map(|k| k.to_string()).collect());
        }
        cx
    };
    let d = |cx: &Context| decide(&[&p], None, "kinesis:AddTagsToStream", &stream("s"), cx);
    assert_eq!(d(&tags(&["env", "team-a"])), Allow);
    assert_eq!(d(&tags(&["env", "owner"])), ImplicitDeny);
    assert_eq!(
        d(&tags(&[])),
        ImplicitDeny,
        "Null false: the key must be present"
    );
    let any = policy(
        r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"owner"}}}}"#,
    );
    assert_eq!(
        decide(
            &[&any],
            None,
            "kinesis:AddTagsToStream",
            &stream("s"),
            &tags(&["env", "owner"])
        ),
        ExplicitDeny
    );
    assert_eq!(
        decide(
            &[&any],
            None,
            "kinesis:AddTagsToStream",
            &stream("s"),
            &tags(&["env"])
        ),
        ImplicitDeny
    );
    let numeric = policy(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThanEquals":{"kinesis:ShardCount":"4"},"Bool":{"aws:SecureTransport":true}}}}"#,
    );
    let mut cx = Context::new();
    cx.set("kinesis:ShardCount", vec!["3".into()]);
    cx.set("aws:SecureTransport", vec!["true".into()]);
    assert_eq!(
        decide(&[&numeric], None, "kinesis:CreateStream", &stream("s"), &cx),
        Allow
    );
    cx.set("kinesis:ShardCount", vec!["5".into()]);
    assert_eq!(
        decide(&[&numeric], None, "kinesis:CreateStream", &stream("s"), &cx),
        ImplicitDeny
    );
}

#[test]
fn a_resource_policy_grants_within_and_across_accounts() {
    let cx = Context::new();
    let grant = |who: &str| {
        Policy::parse(
            &format!(
                r#"{{"Statement":[{{"Sid":"share","Effect":"Allow","Principal":{{"AWS":{who}}},"Action":["kinesis:GetRecords","kinesis:GetShardIterator"],"Resource":"{}"}}]}}"#,
                stream("shared")
            ),
            true,
        )
        .unwrap()
    };
    let bob = format!("arn:aws:iam::{OTHER}:user/bob");
    let shared = stream("shared");
    let d = |identity: &[&Policy],
             rp: Option<&Policy>,
             principal: &str,
             account: &str,
             action: &str| {
        evaluate(
            identity,
            rp,
            &Request {
                principal,
                principal_account: account,
                action,
                resource: &shared,
                resource_account: ACCOUNT,
                context: &cx,
            },
        )
    };
    let bobs_own =
        policy(r#"{"Statement":{"Effect":"Allow","Action":"kinesis:Get*","Resource":"*"}}"#);
    // Another account's user needs its own allow and the resource's.
    let by_arn = grant(&format!("\"{bob}\""));
    assert_eq!(
        d(
            &[&bobs_own],
            Some(&by_arn),
            &bob,
            OTHER,
            "kinesis:GetRecords"
        ),
        Allow
    );
    assert_eq!(
        d(&[], Some(&by_arn), &bob, OTHER, "kinesis:GetRecords"),
        ImplicitDeny
    );
    assert_eq!(
        d(&[&bobs_own], None, &bob, OTHER, "kinesis:GetRecords"),
        ImplicitDeny
    );
    assert_eq!(
        d(
            &[&bobs_own],
            Some(&by_arn),
            &bob,
            OTHER,
            "kinesis:GetRecords"
        ),
        Allow
    );
    assert_eq!(
        d(
            &[&bobs_own],
            Some(&by_arn),
            &bob,
            OTHER,
            "kinesis:PutRecord"
        ),
        ImplicitDeny
    );
    // An account id names all of the account's identities.
    let by_account = grant(&format!("\"{OTHER}\""));
    let carol = format!("arn:aws:iam::{OTHER}:user/carol");
    assert_eq!(
        d(
            &[&bobs_own],
            Some(&by_account),
            &carol,
            OTHER,
            "kinesis:GetShardIterator"
        ),
        Allow
    );
    // Within the account the resource policy alone suffices.
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let by_alice = grant(&format!("[\"{alice}\"]"));
    assert_eq!(
        d(&[], Some(&by_alice), &alice, ACCOUNT, "kinesis:GetRecords"),
        Allow
    );
    assert_eq!(
        d(&[], Some(&by_alice), &bob, OTHER, "kinesis:GetRecords"),
        ImplicitDeny
    );
}

#[test]
fn malformed_policies_are_refused_with_their_node() {
    for (text, resource, path, says) in [
        ("[]", false, "$", "a policy is a JSON object"),
        ("{", false, "$", "not JSON"),
        ("{}", false, "$", "Statement is missing"),
        (r#"{"Statement":[]}"#, false, "$.Statement", "at least one"),
        (
            r#"{"Version":"2020-01-01","Statement":[]}"#,
            false,
            "$.Version",
            "2012-10-17",
        ),
        (
            r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
            false,
            "$.Statement[0].Effect",
            "Allow",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
            false,
            "$.Statement[0]",
            "Action or NotAction",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
            false,
            "$.Statement[0]",
            "both Action and NotAction",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"PutRecord","Resource":"*"}}"#,
            false,
            "$.Statement[0].Action[0]",
            "service:Operation",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"stream/x"}}"#,
            false,
            "$.Statement[0].Resource[0]",
            "not an ARN",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
            false,
            "$.Statement[0]",
            "Resource or NotResource",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
            false,
            "$.Statement[0].Action",
            "must not be empty",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#,
            false,
            "$.Statement[0].Action[0]",
            "must be a string",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringSorta":{"k":"v"}}}}"#,
            false,
            "$.Statement[0].Condition.StringSorta",
            "unknown condition operator",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
            false,
            "$.Statement[0].Condition.IpAddress.aws:SourceIp[0]",
            "not a value",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
            false,
            "$.Statement[0].Condition.Bool.aws:SecureTransport[0]",
            "not a value",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}}"#,
            false,
            "$.Statement[0]",
            "cannot name a Principal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            true,
            "$.Statement[0]",
            "needs a Principal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":"*"}}"#,
            true,
            "$.Statement[0].Principal.Service",
            "only AWS principals",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"*"}}"#,
            true,
            "$.Statement[0].Principal.AWS[0]",
            "not an account id",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Sid":"has space"}}"#,
            false,
            "$.Statement[0].Sid",
            "letters and digits",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}}"#,
            false,
            "$.Statement[0].Extra",
            "unknown element",
        ),
    ] {
        let e = Policy::parse(text, resource).expect_err(text);
        assert_eq!(e.path, path, "{text}: {e}");
        assert!(e.message.contains(says), "{text}: {e}");
        assert!(e.to_string().starts_with("malformed policy document: "));
    }
    let big = format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Sid":"{}"}}}}"#,
        "a".repeat(70_000)
    );
    assert!(
        Policy::parse(&big, false)
            .unwrap_err()
            .message
            .contains("more than")
    );
}

#[test]
fn wildcards() {
    for (p, v, fold, want) in [
        ("*", "", false, true),
        ("kinesis:Get*", "kinesis:GetRecords", false, true),
        ("kinesis:Get*", "kinesis:getrecords", true, true),
        ("kinesis:Get*", "kinesis:getrecords", false, false),
        ("a?c", "abc", false, true),
        ("a?c", "ac", false, false),
        (
            "*:stream/*",
            "arn:aws:kinesis:r:1:stream/x/consumer/c:1",
            false,
            true,
        ),
        ("a*b*c", "axxbyyc", false, true),
        ("a*b*c", "axxbyy", false, false),
        ("**", "anything", false, true),
    ] {
        assert_eq!(wildcard_match(p, v, fold), want, "{p} {v}");
    }
}

/// Mutations of valid policies (bytes flipped, cut, repeated) are parsed
/// or refused, never a panic; what parses evaluates without one.
#[test]
fn mutated_policies_never_panic() {
    let seeds = [
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A1","Effect":"Allow","Action":["kinesis:Get*"],"Resource":"arn:aws:kinesis:*:111122223333:stream/*","Condition":{"ForAllValues:StringLike":{"aws:TagKeys":["env","t*"]},"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        r#"{"Statement":{"Effect":"Deny","NotAction":"kinesis:Delete*","NotResource":["arn:aws:kinesis:*:*:stream/keep"],"Condition":{"Null":{"aws:TagKeys":"true"},"NumericLessThan":{"n":"3"}}}}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::444455556666:user/bob"]},"Action":"kinesis:*"}]}"#,
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut cx = Context::new();
    cx.set("aws:SourceIp", vec!["10.0.0.1".into()]);
    cx.set("aws:TagKeys", vec!["env".into()]);
    cx.set("n", vec!["2".into()]);
    let mut parsed = 0;
    for i in 0..20_000 {
        let seed = seeds[i % seeds.len()].as_bytes();
        let mut b = seed.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % b.len().max(1);
            match next() % 4 {
                0 => b[at] = (next() % 128) as u8,
                1 => b.truncate(at),
                2 => {
                    let piece: Vec<u8> = b[at..].iter().take(20).copied().collect();
                    b.splice(at..at, piece);
                }
                _ => {
                    b.remove(at);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&b);
        for resource in [false, true] {
            if let Ok(p) = Policy::parse(&text, resource) {
                parsed += 1;
                let _ = decide(&[&p], None, "kinesis:GetRecords", &stream("s"), &cx);
                let _ = decide(&[], Some(&p), "kinesis:GetRecords", &stream("s"), &cx);
            }
        }
    }
    assert!(parsed > 0, "some mutations still parse");
}
