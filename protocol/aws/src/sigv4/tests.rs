//! Tests of `sigv4`: every malformed-signature answer of kinesalite's
//! connection.js, and `verify` against requests signed as a client signs them
//! (by `aws-sigv4` in client mode), then tampered with.

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use super::*;

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 20150830T123600Z.
const T: u64 = 1_440_938_160;
const BODY: &[u8] = br#"{"Limit":10}"#;
const KINESIS: Expect<'static> = Expect {
    service: "kinesis",
    region: Some("us-east-1"),
    payload: Payload::Signed,
    signed_headers: &["x-amz-target"],
};
/// An S3-style REST service: `UNSIGNED-PAYLOAD` allowed.
const REST: Expect<'static> = Expect {
    service: "kinesis",
    region: Some("us-east-1"),
    payload: Payload::UnsignedAllowed,
    signed_headers: &[],
};
/// A REST route whose body is streamed after the signature is checked.
const STREAMED: Expect<'static> = Expect {
    service: "kinesis",
    region: Some("us-east-1"),
    payload: Payload::Streamed,
    signed_headers: &[],
};

fn keys() -> BTreeMap<String, String> {
    BTreeMap::from([(KEY_ID.to_owned(), SECRET.to_owned())])
}

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().method("POST").uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

// ---- check_shape: kinesalite test/connection.js, the JSON cases from line 374 ----

const AMZ_JSON: (&str, &str) = ("content-type", "application/x-amz-json-1.1");
const TARGET: (&str, &str) = ("x-amz-target", "Kinesis_20131202.ListStreams");
const ALL_FOUR_MISSING: &str = "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=X";
const ALL_FIVE_MISSING: &str = "AWS query-string parameters must include 'X-Amz-Algorithm'. AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters.";

fn check_shape_case(uri: &str, headers: &[(&str, &str)], expected: Result<(), (&str, &str)>) {
    let got = check_shape(&parts(uri, headers));
    let got = got.map_err(|e| {
        assert_eq!(e.status, 400, "{uri} {headers:?}");
        (e.kind, e.message)
    });
    let expected = expected.map_err(|(k, m)| (k, m.to_owned()));
    assert_eq!(got, expected, "{uri} {headers:?}");
    // carries_auth agrees: only a request with neither form is "missing".
    let missing = matches!(&got, Err((k, _)) if *k == kind::MISSING_TOKEN);
    assert_eq!(carries_auth(&parts(uri, headers)), !missing);
}

#[test]
fn check_shape_answers_connection_js() {
    // "should return MissingAuthenticationTokenException if no auth"
    check_shape_case(
        "/",
        &[AMZ_JSON, TARGET],
        Err((kind::MISSING_TOKEN, "Missing Authentication Token")),
    );
    // "... if no auth and content type with spaces"
    check_shape_case(
        "/",
        &[
            ("content-type", "   application/x-amz-json-1.1   ;whatever"),
            TARGET,
        ],
        Err((kind::MISSING_TOKEN, "Missing Authentication Token")),
    );
    // "should return IncompleteSignatureException if invalid auth"
    check_shape_case(
        "/",
        &[AMZ_JSON, TARGET, ("authorization", "X")],
        Err((kind::INCOMPLETE, ALL_FOUR_MISSING)),
    );
    // "... if incomplete auth header and query" (X-Amz-Algorith: not the parameter)
    check_shape_case(
        "/?X-Amz-Algorith",
        &[AMZ_JSON, TARGET, ("authorization", "X")],
        Err((kind::INCOMPLETE, ALL_FOUR_MISSING)),
    );
    // "MissingAuthenticationTokenException if all query params except X-Amz-Algorithm"
    check_shape_case(
        "/?X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-SignedHeaders=c&X-Amz-Date=d",
        &[AMZ_JSON, TARGET],
        Err((kind::MISSING_TOKEN, "Missing Authentication Token")),
    );
    // "InvalidSignatureException if both auth header and query"
    check_shape_case(
        "/?X-Amz-Algorithm",
        &[AMZ_JSON, TARGET, ("authorization", "X")],
        Err((
            kind::INVALID,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
    );
    // The three spellings of "AWS4- Signature=b Credential=a" with a Date header.
    for auth in [
        "AWS4- Signature=b Credential=a",
        "AWS4- Signature=b,Credential=a",
        "AWS4- Signature=b, Credential=a",
    ] {
        let message = format!(
            "Authorization header requires 'SignedHeaders' parameter. Authorization={auth}"
        );
        check_shape_case(
            "/",
            &[AMZ_JSON, TARGET, ("authorization", auth), ("date", "a")],
            Err((kind::INCOMPLETE, &message)),
        );
    }
    // "IncompleteSignatureException if empty X-Amz-Algorithm query"
    check_shape_case(
        "/?X-Amz-Algorithm",
        &[AMZ_JSON, TARGET],
        Err((kind::INCOMPLETE, ALL_FIVE_MISSING)),
    );
    // "IncompleteSignatureException if missing X-Amz-SignedHeaders query"
    check_shape_case(
        "/?X-Amz-Algorithm=a&X-Amz-Credential=b&X-Amz-Signature=c&X-Amz-Date=d",
        &[AMZ_JSON, TARGET],
        Err((
            kind::INCOMPLETE,
            "AWS query-string parameters must include 'X-Amz-SignedHeaders'. Re-examine the query-string parameters.",
        )),
    );
    // Complete shapes pass, whatever their values: verifying them is `verify`'s work.
    check_shape_case(
        "/",
        &[
            (
                "authorization",
                "AWS4- Credential=a, SignedHeaders=b, Signature=c",
            ),
            ("x-amz-date", "d"),
        ],
        Ok(()),
    );
    check_shape_case(
        "/?X-Amz-Algorithm=a&X-Amz-Credential=b&X-Amz-Signature=c&X-Amz-SignedHeaders=d&X-Amz-Date=e",
        &[],
        Ok(()),
    );
    // An empty value is a missing one.
    check_shape_case(
        "/",
        &[
            (
                "authorization",
                "AWS4- Credential=, SignedHeaders=b, Signature=c",
            ),
            ("x-amz-date", "d"),
        ],
        Err((
            kind::INCOMPLETE,
            "Authorization header requires 'Credential' parameter. Authorization=AWS4- Credential=, SignedHeaders=b, Signature=c",
        )),
    );
}

// ---- verify: requests signed as a client signs them ----

/// How the test client signs.
#[derive(Clone, Copy)]
struct Signing {
    at: u64,
    key_id: &'static str,
    secret: &'static str,
    region: &'static str,
    service: &'static str,
    token: Option<&'static str>,
    query: Option<u64>,
    content_sha256: bool,
    unsigned: bool,
}

const CLIENT: Signing = Signing {
    at: T,
    key_id: KEY_ID,
    secret: SECRET,
    region: "us-east-1",
    service: "kinesis",
    token: None,
    query: None,
    content_sha256: false,
    unsigned: false,
};

/// A Kinesis ListStreams request, as an HTTP/1.1 server hands it on.
fn list_streams() -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "localhost:4567")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .body(())
        .unwrap()
}

fn signed(mut req: http::Request<()>, body: &[u8], s: Signing) -> Parts {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let signable = SignableRequest::new(
        method.as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        if s.unsigned {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(body)
        },
    )
    .unwrap();
    let mut settings = SigningSettings::default();
    if let Some(expires_s) = s.query {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires_s));
    }
    if s.content_sha256 {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity =
        Credentials::new(s.key_id, s.secret, s.token.map(str::to_owned), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(UNIX_EPOCH + Duration::from_secs(s.at))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req.into_parts().0
}

fn set(mut parts: Parts, name: &'static str, value: &str) -> Parts {
    parts.headers.insert(name, value.parse().unwrap());
    parts
}

/// The Authorization header with `from` replaced by `to`.
fn edit_auth(parts: Parts, from: &str, to: &str) -> Parts {
    let auth = parts.headers["authorization"].to_str().unwrap().to_owned();
    assert!(auth.contains(from), "{auth} lacks {from}");
    set(parts, "authorization", &auth.replacen(from, to, 1))
}

fn refused(parts: &Parts, body: &[u8], now_s: u64, expect: &Expect<'_>) -> (&'static str, String) {
    let e = verify(parts, body, &keys(), now_s, expect).unwrap_err();
    assert_eq!(e.status, 400);
    (e.kind, e.message)
}

fn accepted(parts: &Parts, body: &[u8], now_s: u64, expect: &Expect<'_>) {
    let p = verify(parts, body, &keys(), now_s, expect).unwrap();
    assert_eq!(p.access_key_id, KEY_ID);
}

#[test]
fn a_signed_request_verifies_with_or_without_x_amz_content_sha256() {
    accepted(&signed(list_streams(), BODY, CLIENT), BODY, T, &KINESIS);
    let with_hash = Signing {
        content_sha256: true,
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, with_hash);
    assert!(parts.headers.contains_key("x-amz-content-sha256"));
    accepted(&parts, BODY, T, &KINESIS);
    // An empty body too.
    accepted(&signed(list_streams(), b"", CLIENT), b"", T, &KINESIS);
}

#[test]
fn another_body_under_a_captured_signature_is_refused() {
    let swapped = br#"{"Limit":11}"#;
    // Without x-amz-content-sha256 the recomputed payload hash differs.
    let parts = signed(list_streams(), BODY, CLIENT);
    assert_eq!(
        refused(&parts, swapped, T, &KINESIS),
        (kind::INVALID, SIGNATURE_MISMATCH.to_owned())
    );
    // With it, the header no longer matches the body.
    let with_hash = Signing {
        content_sha256: true,
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, with_hash);
    assert_eq!(
        refused(&parts, swapped, T, &KINESIS),
        (
            kind::INVALID,
            "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned()
        )
    );
    // And with the header rewritten to the new body's hash, the signature breaks.
    let parts = set(
        parts,
        "x-amz-content-sha256",
        &hex(&Sha256::digest(swapped)),
    );
    assert_eq!(
        refused(&parts, swapped, T, &KINESIS),
        (kind::INVALID, SIGNATURE_MISMATCH.to_owned())
    );
    // Same for a presigned request: its body is signed too.
    let presigned = Signing {
        query: Some(300),
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, presigned);
    accepted(&parts, BODY, T, &KINESIS);
    assert_eq!(
        refused(&parts, swapped, T, &KINESIS),
        (kind::INVALID, SIGNATURE_MISMATCH.to_owned())
    );
}

#[test]
fn unsigned_payload_only_where_the_service_allows_it() {
    let unsigned = Signing {
        content_sha256: true,
        unsigned: true,
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, unsigned);
    assert_eq!(parts.headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    assert_eq!(
        refused(&parts, BODY, T, &KINESIS),
        (
            kind::INVALID,
            "This service does not accept 'UNSIGNED-PAYLOAD': sign the payload's SHA-256."
                .to_owned()
        )
    );
    accepted(&parts, BODY, T, &REST);
    // S3-style presigning: UNSIGNED-PAYLOAD is the payload line, no header.
    let presigned = Signing {
        query: Some(300),
        unsigned: true,
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, presigned);
    accepted(&parts, BODY, T, &REST);
    assert_eq!(
        refused(&parts, BODY, T, &KINESIS),
        (kind::INVALID, SIGNATURE_MISMATCH.to_owned())
    );
}

#[test]
fn a_streamed_body_is_signed_as_unsigned_payload_only() {
    // The body is not there to hash: a signature over a body hash (the real
    // one, the empty body's, or none claimed) must not pass for it.
    let must = (
        kind::INVALID,
        "This request's body is streamed: sign it with 'x-amz-content-sha256: UNSIGNED-PAYLOAD'."
            .to_owned(),
    );
    for signing in [
        CLIENT,
        Signing {
            content_sha256: true,
            ..CLIENT
        },
    ] {
        let parts = signed(list_streams(), BODY, signing);
        assert_eq!(refused(&parts, &[], T, &STREAMED), must);
        let empty = signed(list_streams(), b"", signing);
        assert_eq!(refused(&empty, &[], T, &STREAMED), must);
    }
    let unsigned = Signing {
        content_sha256: true,
        unsigned: true,
        ..CLIENT
    };
    accepted(&signed(list_streams(), BODY, unsigned), &[], T, &STREAMED);
    let presigned = Signing {
        query: Some(300),
        unsigned: true,
        ..CLIENT
    };
    accepted(&signed(list_streams(), BODY, presigned), &[], T, &STREAMED);
}

#[test]
fn x_amz_target_must_be_signed_for_json_services() {
    // A request whose operation header is outside the signature could be
    // replayed as another operation with the same body.
    let mut req = list_streams();
    req.headers_mut().remove("x-amz-target");
    let mut parts = signed(req, BODY, CLIENT);
    // Signed without it, the request verifies where the header is not needed...
    accepted(&parts, BODY, T, &REST);
    parts.headers.insert(
        "x-amz-target",
        http::HeaderValue::from_static("Kinesis_20131202.DeleteStream"),
    );
    accepted(&parts, BODY, T, &REST);
    // ...but not where it chooses the operation.
    assert_eq!(
        refused(&parts, BODY, T, &KINESIS),
        (
            kind::INVALID,
            "'x-amz-target' must be a 'SignedHeader' in the AWS Authorization.".to_owned()
        )
    );
}

#[test]
fn streaming_payload_signatures_are_refused_clearly() {
    for form in [
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    ] {
        let parts = set(
            signed(list_streams(), BODY, CLIENT),
            "x-amz-content-sha256",
            form,
        );
        for expect in [KINESIS, REST] {
            let (kind, message) = refused(&parts, BODY, T, &expect);
            assert_eq!(kind, kind::INVALID);
            assert!(
                message.contains(form) && message.contains("does not support"),
                "{message}"
            );
        }
    }
}

#[test]
fn the_clock_may_be_15_minutes_off_either_way() {
    let parts = signed(list_streams(), BODY, CLIENT);
    accepted(&parts, BODY, T + SKEW_MAX_S, &KINESIS);
    accepted(&parts, BODY, T - SKEW_MAX_S, &KINESIS);
    assert_eq!(
        refused(&parts, BODY, T + 16 * 60, &KINESIS),
        (
            kind::INVALID,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)".to_owned()
        )
    );
    assert_eq!(
        refused(&parts, BODY, T - 16 * 60, &KINESIS),
        (
            kind::INVALID,
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T122000Z + 15 min.)".to_owned()
        )
    );
}

#[test]
fn an_unknown_key_or_a_wrong_secret_is_refused() {
    let stranger = Signing {
        key_id: "AKIDOTHER",
        ..CLIENT
    };
    assert_eq!(
        refused(&signed(list_streams(), BODY, stranger), BODY, T, &KINESIS),
        (
            kind::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid.".to_owned()
        )
    );
    let wrong = Signing {
        secret: "not the secret",
        ..CLIENT
    };
    assert_eq!(
        refused(&signed(list_streams(), BODY, wrong), BODY, T, &KINESIS),
        (kind::INVALID, SIGNATURE_MISMATCH.to_owned())
    );
    // No keys at all: nobody is recognized.
    let e = verify(
        &signed(list_streams(), BODY, CLIENT),
        BODY,
        &BTreeMap::new(),
        T,
        &KINESIS,
    )
    .unwrap_err();
    assert_eq!(e.kind, kind::UNRECOGNIZED_CLIENT);
}

#[test]
fn a_session_token_is_refused_after_the_signature() {
    let with_token = Signing {
        token: Some("a-token"),
        ..CLIENT
    };
    for query in [None, Some(300)] {
        let parts = signed(
            list_streams(),
            BODY,
            Signing {
                query,
                ..with_token
            },
        );
        assert_eq!(
            refused(&parts, BODY, T, &KINESIS),
            (
                kind::UNRECOGNIZED_CLIENT,
                "The security token included in the request is invalid".to_owned()
            )
        );
    }
}

/// AWS's answers to a bad date, Host, algorithm or credential scope, in AWS's order.
#[test]
fn scope_date_and_algorithm_errors_carry_aws_messages() {
    let good = || signed(list_streams(), BODY, CLIENT);
    let cases: Vec<(Parts, &str, &str)> = vec![
        (
            set(good(), "x-amz-date", "2015-08-30"),
            kind::INCOMPLETE,
            "Date must be in ISO-8601 'basic format'. Got '2015-08-30'. See http://en.wikipedia.org/wiki/ISO_8601",
        ),
        (
            edit_auth(
                good(),
                "SignedHeaders=content-type;host;",
                "SignedHeaders=content-type;",
            ),
            kind::INVALID,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            edit_auth(good(), "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
            kind::INCOMPLETE,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
        ),
        (
            edit_auth(good(), "/kinesis/aws4_request", "/kinesis"),
            kind::INCOMPLETE,
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/kinesis'",
        ),
        (
            edit_auth(
                good(),
                "20150830/us-east-1/kinesis/aws4_request",
                "20150829/eu-west-1/s3/aws5_request",
            ),
            kind::INVALID,
            "Credential should be scoped to a valid region, not 'eu-west-1'. Credential should be scoped to correct service: 'kinesis'. Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150829' != '20150830', from '20150830T123600Z'.",
        ),
        (
            signed(
                list_streams(),
                BODY,
                Signing {
                    region: "us-west-2",
                    ..CLIENT
                },
            ),
            kind::INVALID,
            "Credential should be scoped to a valid region, not 'us-west-2'. ",
        ),
        (
            signed(
                list_streams(),
                BODY,
                Signing {
                    service: "firehose",
                    ..CLIENT
                },
            ),
            kind::INVALID,
            "Credential should be scoped to correct service: 'kinesis'. ",
        ),
        (
            {
                let mut p = set(good(), "date", "Sun, 30 Aug 2015 12:36:00 GMT");
                p.headers.remove("x-amz-date");
                p
            },
            kind::INCOMPLETE,
            "Riffle verifies SigV4 with the X-Amz-Date header; the Date header form is not supported.",
        ),
        (
            edit_auth(good(), ";x-amz-date;", ";"),
            kind::INVALID,
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ),
    ];
    for (parts, kind, message) in cases {
        assert_eq!(
            refused(&parts, BODY, T, &KINESIS),
            (kind, message.to_owned())
        );
    }
    // Any region when none is expected; trailing slashes of a credential ignored.
    let anywhere = Expect {
        region: None,
        ..KINESIS
    };
    let west = signed(
        list_streams(),
        BODY,
        Signing {
            region: "us-west-2",
            ..CLIENT
        },
    );
    accepted(&west, BODY, T, &anywhere);
}

#[test]
fn any_change_to_a_signed_part_breaks_the_signature() {
    let good = || signed(list_streams(), BODY, CLIENT);
    let mut tampered: Vec<(&str, Parts)> = vec![
        (
            "target",
            set(good(), "x-amz-target", "Kinesis_20131202.DeleteStream"),
        ),
        ("host", set(good(), "host", "evil:4567")),
        (
            "content-type",
            set(good(), "content-type", "application/x-amz-cbor-1.1"),
        ),
        (
            "signed header dropped",
            // (x-amz-target dropped is refused before: it must be signed.)
            edit_auth(good(), "content-type;host", "host"),
        ),
        (
            "signed header added",
            edit_auth(good(), "content-type;host", "accept;content-type;host"),
        ),
        ("signature upper case", {
            let auth = good().headers["authorization"].to_str().unwrap().to_owned();
            let (head, sig) = auth.split_once("Signature=").unwrap();
            set(
                good(),
                "authorization",
                &format!("{head}Signature={}", sig.to_uppercase()),
            )
        }),
        ("signature cut", {
            let auth = good().headers["authorization"].to_str().unwrap().to_owned();
            set(good(), "authorization", &auth[..auth.len() - 2])
        }),
    ];
    let mut removed = good();
    removed.headers.remove("x-amz-target");
    tampered.push(("signed header removed", removed));
    let mut method = good();
    method.method = http::Method::PUT;
    tampered.push(("method", method));
    let mut path = good();
    path.uri = "/streams".parse().unwrap();
    tampered.push(("path", path));
    let mut query = good();
    query.uri = "/?Limit=1".parse().unwrap();
    tampered.push(("query", query));
    for (what, parts) in tampered {
        assert_eq!(
            refused(&parts, BODY, T, &KINESIS),
            (kind::INVALID, SIGNATURE_MISMATCH.to_owned()),
            "{what}"
        );
    }
    // Headers the client did not sign may come and go (proxies add them).
    let extra = set(good(), "user-agent", "changed-by-a-proxy");
    accepted(&extra, BODY, T, &KINESIS);
}

#[test]
fn an_http2_request_names_its_host_in_the_uri() {
    let req = http::Request::builder()
        .method("POST")
        .uri("http://localhost:4567/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .body(())
        .unwrap();
    let parts = signed(req, BODY, CLIENT);
    assert!(!parts.headers.contains_key("host"));
    accepted(&parts, BODY, T, &KINESIS);
}

#[test]
fn a_presigned_request_verifies_until_it_expires() {
    let presigned = Signing {
        query: Some(300),
        ..CLIENT
    };
    let parts = signed(list_streams(), BODY, presigned);
    assert!(parts.uri.query().unwrap().contains("X-Amz-Signature="));
    assert!(!parts.headers.contains_key("authorization"));
    accepted(&parts, BODY, T, &KINESIS);
    // Older than 15 minutes is fine while X-Amz-Expires lasts...
    let long = signed(
        list_streams(),
        BODY,
        Signing {
            query: Some(3600),
            ..CLIENT
        },
    );
    accepted(&long, BODY, T + 3600, &KINESIS);
    // ...and not after.
    assert_eq!(
        refused(&parts, BODY, T + 301, &KINESIS),
        (
            kind::INVALID,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 300 sec.)".to_owned()
        )
    );
    // Dated in the future: as for headers.
    let (kind, message) = refused(&parts, BODY, T - 16 * 60, &KINESIS);
    assert_eq!(kind, kind::INVALID);
    assert!(
        message.starts_with("Signature not yet current"),
        "{message}"
    );
    // A header added to a presigned request: the signature is in the query, so
    // both forms at once.
    let both = set(
        parts.clone(),
        "authorization",
        "AWS4-HMAC-SHA256 Credential=a",
    );
    assert_eq!(refused(&both, BODY, T, &KINESIS).0, kind::INVALID);
}

#[test]
fn a_presigned_request_with_bad_parameters_is_refused() {
    let presigned = Signing {
        query: Some(300),
        ..CLIENT
    };
    let good = signed(list_streams(), BODY, presigned);
    let query = good.uri.query().unwrap().to_owned();
    let with_query = |q: String| {
        let mut p = good.clone();
        p.uri = format!("/?{q}").parse().unwrap();
        p
    };
    let replace = |from: &str, to: &str| {
        assert!(query.contains(from), "{query} lacks {from}");
        with_query(query.replacen(from, to, 1))
    };
    let cases: Vec<(Parts, &str, &str)> = vec![
        (
            replace("X-Amz-Expires=300&", ""),
            kind::INCOMPLETE,
            "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters.",
        ),
        (
            replace("X-Amz-Expires=300", "X-Amz-Expires=604801"),
            kind::INCOMPLETE,
            "X-Amz-Expires must be a number of seconds from 1 to 604800 (a week), not '604801'.",
        ),
        (
            replace("X-Amz-Expires=300", "X-Amz-Expires=0"),
            kind::INCOMPLETE,
            "X-Amz-Expires must be a number of seconds from 1 to 604800 (a week), not '0'.",
        ),
        (
            with_query(format!("{query}&X-Amz-Date=20150830T123600Z")),
            kind::INCOMPLETE,
            "AWS query-string parameters must not repeat 'X-Amz-Date'. Re-examine the query-string parameters.",
        ),
        (
            replace(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                "X-Amz-Algorithm=AWS4-HMAC-SHA512",
            ),
            kind::INCOMPLETE,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
        ),
        (
            replace("X-Amz-Expires=300", "X-Amz-Expires=299"),
            kind::INVALID,
            SIGNATURE_MISMATCH,
        ),
        (
            with_query(format!("Limit=1&{query}")),
            kind::INVALID,
            SIGNATURE_MISMATCH,
        ),
    ];
    for (parts, kind, message) in cases {
        assert_eq!(
            refused(&parts, BODY, T, &KINESIS),
            (kind, message.to_owned())
        );
    }
}

/// Whatever a client sends, `verify` answers and does not panic.
#[test]
fn odd_requests_are_answered_not_panicked_on() {
    let good = signed(list_streams(), BODY, CLIENT);
    let auth = good.headers["authorization"].to_str().unwrap().to_owned();
    let signed_headers = [
        "",
        ";",
        "host;;x-amz-date",
        "host;bad name;x-amz-date",
        "HOST;X-AMZ-DATE",
        "host;host;x-amz-date",
    ];
    let paths = ["/../..", "//", "/%zz", "/a/./b/../c", "*", "/%2e%2e/"];
    for sh in signed_headers {
        let parts = set(
            good.clone(),
            "authorization",
            &auth.replacen("content-type;host;x-amz-date;x-amz-target", sh, 1),
        );
        assert!(verify(&parts, BODY, &keys(), T, &KINESIS).is_err(), "{sh}");
    }
    for path in paths {
        let mut parts = good.clone();
        if let Ok(uri) = path.parse() {
            parts.uri = uri;
            // SigV4 signs the normalized path: `/../..` is `/`, as signed. A
            // REST router must route on the same normalized path.
            let normalized = matches!(path, "/../.." | "//");
            let got = verify(&parts, BODY, &keys(), T, &KINESIS);
            assert_eq!(got.is_ok(), normalized, "{path}: {got:?}");
        }
    }
    for date in [
        "20151330T123600Z",
        "20150230T123600Z",
        "20150830T243600Z",
        "2015083OT123600Z",
        "+0150830T123600Z",
        "",
    ] {
        let parts = set(good.clone(), "x-amz-date", date);
        assert_eq!(
            refused(&parts, BODY, T, &KINESIS).0,
            kind::INCOMPLETE,
            "{date}"
        );
    }
    let mut binary = good.clone();
    binary.headers.insert(
        "x-amz-target",
        http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    assert!(verify(&binary, BODY, &keys(), T, &KINESIS).is_err());
}

#[test]
fn amz_dates_round_trip() {
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(T));
    assert_eq!(format_amz_date(T), "20150830T123600Z");
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
    assert_eq!(parse_amz_date("20230229T000000Z"), None);
    assert_eq!(parse_amz_date("19691231T235959Z"), None);
    assert_eq!(parse_amz_date("20150830T123600"), None);
    for s in [0, T, 4_102_444_800, 253_402_300_799] {
        assert_eq!(parse_amz_date(&format_amz_date(s)), Some(s));
    }
}
