//! Signing the requests Riffle itself sends (Firehose delivering to an
//! S3-compatible store): AWS's signer (`aws-sigv4`) with S3's settings, the
//! signature in the `Authorization` header.
//!
//! S3's rules: the path is signed as sent (single percent-encoding, no
//! normalisation: keys may hold `//` or `.`), and the body's hash goes in
//! `x-amz-content-sha256`; Riffle sends `UNSIGNED-PAYLOAD` (S3 allows it; the
//! connection carries the object once, and hashing hundreds of MB per object
//! would cost a core more than the write).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

/// Who signs, and for which service and region.
#[derive(Clone, Debug)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The signing name (`s3`).
    pub service: String,
}

impl Signer {
    /// The headers to add to a request (`x-amz-date`, `x-amz-content-sha256`,
    /// `authorization`). `uri` is the path (already percent-encoded as it will
    /// be sent) and query; `headers` are the ones to sign, `host` among them.
    pub fn sign(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.signature_location = SignatureLocation::Headers;
        self.signed(
            method,
            uri,
            headers,
            SignableBody::UnsignedPayload,
            settings,
            now,
        )
    }

    /// The headers to add to a request of a JSON-protocol service (Kinesis,
    /// Firehose), signed as AWS's SDKs sign them: the body hashed into the
    /// signature, the path normalised, no `x-amz-content-sha256` header.
    pub fn sign_payload(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let body = SignableBody::Bytes(body);
        self.signed(method, uri, headers, body, SigningSettings::default(), now)
    }

    /// AWS's signer on one request with these settings: the headers to add.
    fn signed(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
        settings: SigningSettings,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let request = SignableRequest::new(method, uri, headers.iter().copied(), body)
            .map_err(|e| format!("cannot sign {method} {uri}: {e}"))?;
        let identity = Credentials::new(
            self.access_key.clone(),
            self.secret_key.clone(),
            None,
            None,
            "riffle",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let (instructions, _) = sign(request, &params)
            .map_err(|e| format!("cannot sign {method} {uri}: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// A key as an S3 path segment sequence: every byte percent-encoded except
/// the unreserved ones and `/` (what S3's signature and the HTTP path both use).
pub fn encode_key(key: &str) -> String {
    percent_encoded(key, true)
}

/// A query parameter's value as SigV4 signs it: every byte percent-encoded
/// except the unreserved ones (`/` too).
pub fn encode_query(value: &str) -> String {
    percent_encoded(value, false)
}

fn percent_encoded(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn keys_are_encoded_as_s3_signs_them() {
        assert_eq!(encode_key("a/b c=!{x}.gz"), "a/b%20c%3D%21%7Bx%7D.gz");
        assert_eq!(encode_key("ü"), "%C3%BC");
    }

    #[test]
    fn signatures_are_aws_s3_signatures() {
        // The signature's shape here; a server that verifies SigV4 (SeaweedFS,
        // tests/python/test_firehose.py) checks it for real.
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
        };
        // 20130524T000000Z
        let at = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let headers = signer
            .sign(
                "PUT",
                "/examplebucket/test%24file.text",
                &[("host", "examplebucket.s3.amazonaws.com")],
                at,
            )
            .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20130524T000000Z");
        assert_eq!(get("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        let auth = get("authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="),
            "{auth}"
        );
        // Deterministic: the same request, the same signature.
        let again = signer
            .sign(
                "PUT",
                "/examplebucket/test%24file.text",
                &[("host", "examplebucket.s3.amazonaws.com")],
                at,
            )
            .unwrap();
        assert_eq!(headers, again);
    }
}
