//! IAM policy documents (`riffle_aws::iam`) from arbitrary bytes: parsed as
//! an identity and as a resource policy, refused with a message or
//! accepted, never a panic; what parses is evaluated against a fixed
//! request, and a refusal names a node of the document (`$...`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../aws/src/iam/mod.rs"]
#[allow(dead_code)]
mod iam;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut cx = iam::Context::new();
    cx.set("aws:SourceIp", vec!["10.1.2.3".into()]);
    cx.set("aws:TagKeys", vec!["env".into(), "team".into()]);
    cx.set("aws:ResourceTag/env", vec!["prod".into()]);
    for resource in [false, true] {
        match iam::Policy::parse(&text, resource) {
            Ok(p) => {
                let r = iam::Request {
                    principal: "arn:aws:iam::111122223333:user/alice",
                    principal_account: "111122223333",
                    action: "kinesis:GetRecords",
                    resource: "arn:aws:kinesis:us-east-1:111122223333:stream/s",
                    resource_account: "111122223333",
                    context: &cx,
                };
                let _ = iam::evaluate(&[&p], None, &r);
                let _ = iam::evaluate(&[], Some(&p), &r);
            }
            Err(e) => assert!(e.path.starts_with('$'), "{e}"),
        }
    }
});
