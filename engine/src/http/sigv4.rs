//! AWS Signature Version 4 verification for the HTTP gateway (`--auth sigv4`):
//! the signature is recomputed from the request with the secret of the access
//! key it names and compared in constant time; the request time must be within
//! 15 minutes of the server's clock. Without configured keys every request,
//! signed or not, is accepted (the default).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use hyper::http::request::Parts;
use sha2::{Digest, Sha256};

/// Why a request is refused: AWS's exception name and message.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthError {
    pub kind: &'static str,
    pub message: String,
}

fn err(kind: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        kind,
        message: message.into(),
    }
}

const SKEW_MAX_S: i64 = 15 * 60;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies the request's `Authorization` header against `keys` (access key id
/// → secret). `now_s`: the server's clock, seconds since the epoch.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    keys: &BTreeMap<String, String>,
    now_s: i64,
) -> Result<(), AuthError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Err(err(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let Some(fields) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(err(
            "IncompleteSignatureException",
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(err(
            "IncompleteSignatureException",
            "Authorization header requires Credential, SignedHeaders and Signature",
        ));
    };
    let mut scope_parts = credential.splitn(2, '/');
    let key_id = scope_parts.next().unwrap_or("");
    let scope = scope_parts.next().unwrap_or("");
    let Some(secret) = keys.get(key_id) else {
        return Err(err(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    let scope_fields: Vec<&str> = scope.split('/').collect();
    if scope_fields.len() != 4 || scope_fields[3] != "aws4_request" {
        return Err(err(
            "IncompleteSignatureException",
            format!("Credential scope {scope:?} is not date/region/service/aws4_request"),
        ));
    }
    let Some(amz_date) = header("x-amz-date") else {
        return Err(err(
            "IncompleteSignatureException",
            "The request must contain an X-Amz-Date header",
        ));
    };
    let Some(request_s) = parse_amz_date(amz_date) else {
        return Err(err(
            "IncompleteSignatureException",
            format!("X-Amz-Date {amz_date:?} is not YYYYMMDDTHHMMSSZ"),
        ));
    };
    if !amz_date.starts_with(scope_fields[0]) {
        return Err(err(
            "InvalidSignatureException",
            "The credential scope date does not match X-Amz-Date",
        ));
    }
    if (request_s - now_s).abs() > SKEW_MAX_S {
        return Err(err(
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is more than 15 minutes from the server's time"),
        ));
    }

    // The canonical request.
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = if name == "host" {
            header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()))
        } else {
            header(name)
        };
        let Some(value) = value else {
            return Err(err(
                "IncompleteSignatureException",
                format!("signed header {name} is missing from the request"),
            ));
        };
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let payload_hash = match header("x-amz-content-sha256") {
        Some(h) => h.to_owned(),
        None => hex(&Sha256::digest(body)),
    };
    let path = if parts.uri.path().is_empty() {
        "/"
    } else {
        parts.uri.path()
    };
    let mut query: Vec<&str> = parts
        .uri
        .query()
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    query.sort_unstable();
    let canonical_request = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        parts.method,
        query.join("&")
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut k = hmac(
        format!("AWS4{secret}").as_bytes(),
        scope_fields[0].as_bytes(),
    );
    for part in &scope_fields[1..] {
        k = hmac(&k, part.as_bytes());
    }
    let expected = hex(&hmac(&k, string_to_sign.as_bytes()));
    // Constant time: compare every byte whatever the first difference.
    let same = expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(err(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

/// `20260101T000000Z` as seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let rfc = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(9..11)?,
        n(11..13)?,
        n(13..15)?
    );
    riffle_protocol::time::parse_rfc3339_ms(&rfc)
        .ok()
        .map(|ms| ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request signed as a client signs it (the algorithm written out, with
    /// AWS's documentation example key) verifies; any change to it does not.
    #[test]
    fn a_signed_request_verifies_and_tampering_does_not() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let keys = BTreeMap::from([("AKIDEXAMPLE".to_owned(), secret.to_owned())]);
        let sign = |body: &[u8], date: &str| {
            // Sign as a client would, with the same algorithm written out.
            let canonical = format!(
                "POST\n/\n\nhost:example.com\nx-amz-date:{date}\n\nhost;x-amz-date\n{}",
                hex(&Sha256::digest(body))
            );
            let scope = format!("{}/us-east-1/kinesis/aws4_request", &date[..8]);
            let sts = format!(
                "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
                hex(&Sha256::digest(canonical.as_bytes()))
            );
            let mut k = hmac(format!("AWS4{secret}").as_bytes(), &date.as_bytes()[..8]);
            for p in ["us-east-1", "kinesis", "aws4_request"] {
                k = hmac(&k, p.as_bytes());
            }
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders=host;x-amz-date, Signature={}",
                hex(&hmac(&k, sts.as_bytes()))
            )
        };
        let request = |auth: &str, date: &str| {
            let req = hyper::Request::builder()
                .method("POST")
                .uri("/")
                .header("host", "example.com")
                .header("x-amz-date", date)
                .header("authorization", auth)
                .body(())
                .unwrap();
            req.into_parts().0
        };
        let date = "20260101T000000Z";
        let now = parse_amz_date(date).unwrap();
        let auth = sign(b"{}", date);
        assert_eq!(verify(&request(&auth, date), b"{}", &keys, now), Ok(()));
        // Another body, another key, a stale clock, no header: refused.
        let e = verify(&request(&auth, date), b"{ }", &keys, now).unwrap_err();
        assert_eq!(e.kind, "InvalidSignatureException");
        let other = BTreeMap::from([("AKIDEXAMPLE".to_owned(), "other".to_owned())]);
        assert_eq!(
            verify(&request(&auth, date), b"{}", &other, now)
                .unwrap_err()
                .kind,
            "InvalidSignatureException"
        );
        let stranger = BTreeMap::from([("AKIDOTHER".to_owned(), secret.to_owned())]);
        assert_eq!(
            verify(&request(&auth, date), b"{}", &stranger, now)
                .unwrap_err()
                .kind,
            "UnrecognizedClientException"
        );
        assert!(
            verify(&request(&auth, date), b"{}", &keys, now + 16 * 60)
                .unwrap_err()
                .message
                .contains("expired")
        );
        let bare = hyper::Request::builder()
            .uri("/")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(
            verify(&bare, b"", &keys, now).unwrap_err().kind,
            "MissingAuthenticationTokenException"
        );
        assert_eq!(parse_amz_date("2026-01-01"), None);
    }
}
