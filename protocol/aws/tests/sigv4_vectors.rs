//! `sigv4::verify` against signatures `aws-sigv4` did not compute: AWS's own
//! SigV4 test suite (`sigv4-test-suite/`) and Kinesis requests signed by
//! botocore (`sigv4-botocore/`). Every header-signed and query-signed request
//! verifies, and the same request with its body, a signed header, its path or
//! its signature changed does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::request::Parts;
use riffle_aws::sigv4::{Expect, Payload, kind, verify};

/// The suite's key, region and service (every `context.json` names the same).
const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const EXPECT: Expect<'static> = Expect {
    service: "service",
    region: Some("us-east-1"),
    payload: Payload::Signed,
    signed_headers: &[],
};
/// 2015-08-30T12:36:00Z, the suite's `timestamp`.
const NOW_S: u64 = 1_440_938_160;

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4-test-suite")
}

fn keys() -> BTreeMap<String, String> {
    BTreeMap::from([(KEY_ID.to_owned(), SECRET.to_owned())])
}

/// A request file as an HTTP/1.1 server hands it on: the target as sent on the
/// wire (a space or a non-ASCII byte percent-encoded, as clients send them),
/// header values without surrounding whitespace, the body after the blank line.
fn load(case: &str, file: &str) -> (Parts, Vec<u8>) {
    load_path(&suite().join(case).join(file))
}

fn load_path(path: &Path) -> (Parts, Vec<u8>) {
    let text = std::fs::read_to_string(path).expect("vector file");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, rest) = request_line.split_once(' ').expect("method");
    let target = rest.strip_suffix(" HTTP/1.1").expect("HTTP/1.1");
    let mut wire = String::new();
    for b in target.bytes() {
        if b == b' ' || !b.is_ascii() {
            wire += &format!("%{b:02X}");
        } else {
            wire.push(b as char);
        }
    }
    let mut builder = http::Request::builder().method(method).uri(wire);
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        builder = builder.header(name, value.trim());
    }
    let (parts, ()) = builder.body(()).expect("a valid request").into_parts();
    (parts, body.as_bytes().to_vec())
}

const CASES: [&str; 10] = [
    "get-vanilla",
    "post-vanilla",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-header-value-trim",
    "get-header-key-duplicate",
    "post-header-key-sort",
    "post-x-www-form-urlencoded",
    "get-slashes-normalized",
];

fn check(
    case: &str,
    file: &str,
    edit: impl Fn(&mut Parts, &mut Vec<u8>),
    expected: Result<(), &str>,
) {
    let (mut parts, mut body) = load(case, file);
    edit(&mut parts, &mut body);
    let got = verify(&parts, &body, &keys(), NOW_S, &EXPECT)
        .map(|p| assert_eq!(p.access_key_id, KEY_ID))
        .map_err(|e| {
            assert_eq!(e.status, 400);
            e.kind
        });
    assert_eq!(got, expected, "{case}/{file}");
}

#[test]
fn every_signed_form_of_the_suite_verifies() {
    for case in CASES {
        for file in ["header-signed-request.txt", "query-signed-request.txt"] {
            check(case, file, |_, _| {}, Ok(()));
        }
    }
}

#[test]
fn a_changed_request_of_the_suite_does_not_verify() {
    type Edit = fn(&mut Parts, &mut Vec<u8>);
    let edits: [(&str, Edit); 5] = [
        ("body", |_, body| body.extend_from_slice(b"&Param2=value2")),
        ("method", |parts, _| parts.method = http::Method::PUT),
        ("path", |parts, _| {
            parts.uri = format!("/other{}", parts.uri).parse().unwrap()
        }),
        ("host", |parts, _| {
            parts.headers.insert("host", "example.org".parse().unwrap());
        }),
        ("signature", |parts, _| {
            let uri = parts.uri.to_string();
            if let Some(i) = uri.find("X-Amz-Signature=") {
                let mut uri = uri.into_bytes();
                let at = i + "X-Amz-Signature=".len();
                uri[at] = if uri[at] == b'0' { b'1' } else { b'0' };
                parts.uri = String::from_utf8(uri).unwrap().parse().unwrap();
            } else {
                let auth = parts.headers["authorization"].to_str().unwrap();
                let flipped = if auth.ends_with('0') { "1" } else { "0" };
                let auth = format!("{}{flipped}", &auth[..auth.len() - 1]);
                parts.headers.insert("authorization", auth.parse().unwrap());
            }
        }),
    ];
    for case in ["post-x-www-form-urlencoded", "get-header-key-duplicate"] {
        for file in ["header-signed-request.txt", "query-signed-request.txt"] {
            for (what, edit) in edits {
                let (mut parts, mut body) = load(case, file);
                edit(&mut parts, &mut body);
                let e = verify(&parts, &body, &keys(), NOW_S, &EXPECT)
                    .expect_err(&format!("{case}/{file} with its {what} changed"));
                assert_eq!(e.kind, kind::INVALID, "{case}/{file} {what}: {e:?}");
            }
        }
    }
    // A signed header's value changed; a signed header removed.
    for file in ["header-signed-request.txt", "query-signed-request.txt"] {
        let changed = |parts: &mut Parts, _: &mut Vec<u8>| {
            parts
                .headers
                .insert("my-header1", "value3".parse().unwrap());
        };
        check("post-header-key-sort", file, changed, Err(kind::INVALID));
        let removed = |parts: &mut Parts, _: &mut Vec<u8>| {
            parts.headers.remove("my-header1");
        };
        check("post-header-key-sort", file, removed, Err(kind::INVALID));
    }
    // An unsigned header added is no change (AWS signs what the client chose).
    for file in ["header-signed-request.txt", "query-signed-request.txt"] {
        let added = |parts: &mut Parts, _: &mut Vec<u8>| {
            parts.headers.insert("user-agent", "curl".parse().unwrap());
        };
        check("get-vanilla", file, added, Ok(()));
    }
}

#[test]
fn the_suite_signed_an_hour_ago_is_too_old_for_headers_not_for_its_query_form() {
    let (parts, body) = load("get-vanilla", "header-signed-request.txt");
    let e = verify(&parts, &body, &keys(), NOW_S + 3600, &EXPECT).unwrap_err();
    assert_eq!(
        e.message,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T132100Z (20150830T133600Z - 15 min.)"
    );
    // The query form carries X-Amz-Expires=3600: valid for exactly an hour.
    let (parts, body) = load("get-vanilla", "query-signed-request.txt");
    assert!(verify(&parts, &body, &keys(), NOW_S + 3600, &EXPECT).is_ok());
    let e = verify(&parts, &body, &keys(), NOW_S + 3601, &EXPECT).unwrap_err();
    assert_eq!(
        e.message,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T133601Z - 3600 sec.)"
    );
}

#[test]
fn the_suite_with_a_session_token_is_refused_once_its_signature_verifies() {
    for file in ["header-signed-request.txt", "query-signed-request.txt"] {
        let (parts, body) = load("get-vanilla-with-session-token", file);
        let e = verify(&parts, &body, &keys(), NOW_S, &EXPECT).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                kind::UNRECOGNIZED_CLIENT,
                "The security token included in the request is invalid"
            ),
            "{file}"
        );
    }
}

#[test]
fn the_suite_under_another_key_or_scope_is_refused() {
    let (parts, body) = load("get-vanilla", "header-signed-request.txt");
    let other = BTreeMap::from([("AKIDOTHER".to_owned(), SECRET.to_owned())]);
    let e = verify(&parts, &body, &other, NOW_S, &EXPECT).unwrap_err();
    assert_eq!(e.kind, kind::UNRECOGNIZED_CLIENT);
    let wrong = BTreeMap::from([(KEY_ID.to_owned(), "not the secret".to_owned())]);
    let e = verify(&parts, &body, &wrong, NOW_S, &EXPECT).unwrap_err();
    assert_eq!(e.kind, kind::INVALID);
    let kinesis = Expect::json("kinesis", "us-east-1");
    let e = verify(&parts, &body, &keys(), NOW_S, &kinesis).unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            kind::INVALID,
            "Credential should be scoped to correct service: 'kinesis'. "
        )
    );
}

/// botocore's Kinesis requests (`sigv4-botocore/capture.py`): header-signed
/// with and without `x-amz-content-sha256`, and query-signed (presigned).
#[test]
fn kinesis_requests_signed_by_botocore_verify_and_not_with_another_body() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4-botocore");
    let kinesis = Expect::json("kinesis", "us-east-1");
    for file in [
        "list-streams-header.txt",
        "put-record-header.txt",
        "put-record-content-sha256.txt",
        "list-streams-presigned.txt",
        "list-streams-presigned-body.txt",
    ] {
        let (parts, body) = load_path(&dir.join(file));
        let p = verify(&parts, &body, &keys(), NOW_S, &kinesis).expect(file);
        assert_eq!(p.access_key_id, KEY_ID);
        let mut other = body.clone();
        other.extend_from_slice(b" ");
        let e = verify(&parts, &other, &keys(), NOW_S, &kinesis).unwrap_err();
        assert_eq!(e.kind, kind::INVALID, "{file}");
        let expected = if parts.headers.contains_key("x-amz-content-sha256") {
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        } else {
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
        };
        assert_eq!(e.message, expected, "{file}");
    }
}
