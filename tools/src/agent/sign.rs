//! SigV4 for the agent's requests, by AWS's own signer (`aws-sigv4`): the
//! JSON body's SHA-256 in the signature (Kinesis and Firehose do not take
//! S3's `UNSIGNED-PAYLOAD`), `host`, `content-type` and `x-amz-target`
//! signed. Credentials: `awsAccessKeyId`/`awsSecretAccessKey` from the
//! config, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`) from the environment.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From the config's keys, else the environment; `None` when neither has both.
    pub fn find(
        access_key_id: Option<&str>,
        secret_access_key: Option<&str>,
    ) -> Option<Credentials> {
        if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
            return Some(Credentials {
                access_key_id: id.into(),
                secret_access_key: secret.into(),
                session_token: None,
            });
        }
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// Signs a JSON-protocol POST to `/`: the headers to add (`x-amz-date`,
/// `authorization`, and `x-amz-security-token` with a session token).
pub fn sign_post(
    credentials: &Credentials,
    region: &str,
    service: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let request = SignableRequest::new(
        "POST",
        "/",
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "agent.json",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The region of an AWS endpoint host (`kinesis.us-west-2.amazonaws.com`,
/// `firehose.eu-west-1.amazonaws.com.cn`, `kinesis-fips.us-east-1...`).
pub fn region_of_host(host: &str) -> Option<String> {
    let mut parts = host.split('.');
    let service = parts.next()?;
    let region = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let aws = rest
        .first()
        .is_some_and(|d| *d == "amazonaws" || *d == "api");
    let looks_like_region =
        region.split('-').count() >= 3 && region.chars().last()?.is_ascii_digit();
    (aws && !service.is_empty() && looks_like_region).then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn signatures_cover_the_body() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 20150830T123600Z
        let headers = [
            ("host", "kinesis.us-east-1.amazonaws.com"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.PutRecords"),
        ];
        let sign =
            |body: &[u8]| sign_post(&creds, "us-east-1", "kinesis", &headers, body, at).unwrap();
        let a = sign(b"{}");
        let get = |h: &[(String, String)], name: &str| {
            h.iter().find(|(k, _)| k == name).unwrap().1.clone()
        };
        assert_eq!(get(&a, "x-amz-date"), "20150830T123600Z");
        let auth = get(&a, "authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="),
            "{auth}"
        );
        // Another body, another signature; the same body, the same one.
        assert_ne!(get(&sign(b"{ }"), "authorization"), auth);
        assert_eq!(get(&sign(b"{}"), "authorization"), auth);
    }

    #[test]
    fn regions_from_hosts() {
        assert_eq!(
            region_of_host("kinesis.us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_host("firehose.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_host("127.0.0.1"), None);
        assert_eq!(region_of_host("localhost"), None);
        assert_eq!(region_of_host("kinesis.example.com"), None);
    }
}
