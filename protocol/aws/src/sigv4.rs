//! AWS Signature Version 4 verification: `check_shape` answers a malformed or
//! missing signature as AWS does before any secret is looked at; `verify` then
//! recomputes the signature with AWS's own signer (the `aws-sigv4` crate) from
//! the request as received and the secret of the access key it names, and
//! compares it in constant time.
//!
//! What binds a signature to a request here, and why each rule exists:
//! - the body is always hashed; an `x-amz-content-sha256` header must equal that
//!   hash, so a captured request cannot carry another body (the hand-written
//!   verifier this replaces trusted the header);
//! - `UNSIGNED-PAYLOAD` only where the service allows it (`Payload::UnsignedAllowed`,
//!   S3-style REST services; `Payload::Streamed`, a body not read yet), never for
//!   JSON-protocol services (Kinesis, Firehose);
//! - `STREAMING-*` chunk signatures are refused until they are supported;
//! - exactly the request's SignedHeaders are signed, and the signer's list must
//!   come out equal to the client's, so no header is silently dropped or added;
//! - the request time is within 15 minutes of the server's clock (header form),
//!   or within its `X-Amz-Expires` (query form, "presigned"), which is supported;
//! - session tokens are refused: Riffle issues none.
//!
//! Messages and their order follow what AWS's JSON services answer (kinesalite's
//! and dynalite's suites recorded them against AWS); all are HTTP 400 there.
//! Pure functions: the caller passes the clock; no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use riffle_protocol::time::{civil_from_days, days_from_civil};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far the request time may be from the server's clock (AWS: 15 minutes).
pub const SKEW_MAX_S: u64 = 15 * 60;
/// The longest `X-Amz-Expires` of a presigned request (AWS: one week).
pub const PRESIGNED_EXPIRES_MAX_S: u64 = 7 * 24 * 3600;
/// AWS answers every signature refusal of a JSON-protocol service with 400
/// (kinesalite's `assertMissing`, `assertIncomplete`, `assertInvalid`).
const STATUS: u16 = 400;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const SECURITY_TOKEN: &str = "x-amz-security-token";
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// AWS's exception names (`__type`) for signature refusals.
pub mod kind {
    pub const MISSING_TOKEN: &str = "MissingAuthenticationTokenException";
    pub const INCOMPLETE: &str = "IncompleteSignatureException";
    pub const INVALID: &str = "InvalidSignatureException";
    pub const UNRECOGNIZED_CLIENT: &str = "UnrecognizedClientException";
}

/// The query parameters of a query-string ("presigned") signature.
mod param {
    pub const ALGORITHM: &str = "X-Amz-Algorithm";
    pub const CREDENTIAL: &str = "X-Amz-Credential";
    pub const SIGNATURE: &str = "X-Amz-Signature";
    pub const SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
    pub const DATE: &str = "X-Amz-Date";
    pub const EXPIRES: &str = "X-Amz-Expires";
    pub const SECURITY_TOKEN: &str = "X-Amz-Security-Token";
    /// The ones `check_shape` requires, in the order AWS lists them.
    pub const REQUIRED: [&str; 5] = [ALGORITHM, CREDENTIAL, SIGNATURE, SIGNED_HEADERS, DATE];
    /// The ones the signer writes itself, taken out of the query it is given.
    pub const SIGNING: [&str; 6] = [
        ALGORITHM,
        CREDENTIAL,
        SIGNATURE,
        SIGNED_HEADERS,
        DATE,
        EXPIRES,
    ];
}

/// Why a request is refused: AWS's exception name, its message, the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// AWS's `__type`, one of `kind::*`.
    pub kind: &'static str,
    pub message: String,
    pub status: u16,
}

fn refuse(kind: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        kind,
        message: message.into(),
        status: STATUS,
    }
}

impl From<AuthError> for crate::error::Refusal {
    fn from(e: AuthError) -> Self {
        let status = http::StatusCode::from_u16(e.status).expect("AuthError statuses are valid");
        crate::error::Refusal::new(status, e.kind, e.message)
    }
}

/// Who signed a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub access_key_id: String,
}

/// What the service expects of a signature's scope and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The service name the credential scope must carry (`kinesis`, `firehose`).
    pub service: &'a str,
    /// The region the scope must carry; `None`: any region.
    pub region: Option<&'a str>,
    /// How the payload must be signed.
    pub payload: Payload,
    /// Headers that must be among the signed ones besides `host` (e.g.
    /// `x-amz-target`, which chooses the operation of a JSON-protocol request:
    /// unsigned, a captured request could be replayed as another operation).
    pub signed_headers: &'a [&'a str],
}

/// How a request's payload must be bound to its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The body is signed: its SHA-256 is in the canonical request (JSON-protocol
    /// services: Kinesis, Firehose).
    Signed,
    /// Signed, or `UNSIGNED-PAYLOAD` (assumed by a presigned request without
    /// `x-amz-content-sha256`), as S3-style REST services allow.
    UnsignedAllowed,
    /// The body is streamed to the service after the signature is checked, so it
    /// cannot be hashed first: only `UNSIGNED-PAYLOAD` is accepted (said by the
    /// header, or assumed by a presigned request without it).
    Streamed,
}

impl<'a> Expect<'a> {
    /// A JSON-protocol service (Kinesis, Firehose): signed payloads only, and
    /// `x-amz-target` signed.
    pub fn json(service: &'a str, region: &'a str) -> Expect<'a> {
        Expect {
            service,
            region: Some(region),
            payload: Payload::Signed,
            signed_headers: &["x-amz-target"],
        }
    }
}

/// Whether the request carries a signature at all (an `Authorization` header
/// or an `X-Amz-Algorithm` query parameter). A gateway that does not verify
/// signatures still answers a malformed one with `check_shape`.
pub fn carries_auth(parts: &Parts) -> bool {
    parts.headers.contains_key(http::header::AUTHORIZATION)
        || query_pairs(parts).any(|(k, _)| k == param::ALGORITHM)
}

fn query_pairs(parts: &Parts) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
}

/// AWS's answer to a missing or malformed signature, before any key is looked
/// up: no signature at all, both forms at once, or a form missing components
/// (each missing one listed, in AWS's words and order).
pub fn check_shape(parts: &Parts) -> Result<(), AuthError> {
    let header = parts.headers.get(http::header::AUTHORIZATION);
    let has_algorithm = query_pairs(parts).any(|(k, _)| k == param::ALGORITHM);
    match (header, has_algorithm) {
        (None, false) => Err(refuse(kind::MISSING_TOKEN, "Missing Authentication Token")),
        (Some(_), true) => Err(refuse(
            kind::INVALID,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (Some(value), false) => {
            let auth = String::from_utf8_lossy(value.as_bytes());
            let fields = AuthFields::parse(&auth);
            let mut message = String::new();
            for (name, value) in [
                ("Credential", fields.credential),
                ("Signature", fields.signature),
                ("SignedHeaders", fields.signed_headers),
            ] {
                if value.is_none_or(str::is_empty) {
                    message += &format!("Authorization header requires '{name}' parameter. ");
                }
            }
            if !parts.headers.contains_key("x-amz-date") && !parts.headers.contains_key("date") {
                message += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
            }
            if message.is_empty() {
                Ok(())
            } else {
                Err(refuse(kind::INCOMPLETE, message + "Authorization=" + &auth))
            }
        }
        (None, true) => {
            let mut message = String::new();
            for name in param::REQUIRED {
                if !query_pairs(parts).any(|(k, v)| k == name && !v.is_empty()) {
                    message += &format!("AWS query-string parameters must include '{name}'. ");
                }
            }
            if message.is_empty() {
                Ok(())
            } else {
                Err(refuse(
                    kind::INCOMPLETE,
                    message + "Re-examine the query-string parameters.",
                ))
            }
        }
    }
}

/// The components of an `Authorization` header, split as AWS splits them: the
/// first word is the algorithm, the rest are `Name=value` separated by commas
/// or spaces (the last of a repeated name wins).
struct AuthFields<'a> {
    algorithm: &'a str,
    credential: Option<&'a str>,
    signed_headers: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> AuthFields<'a> {
    fn parse(auth: &'a str) -> AuthFields<'a> {
        let mut words = auth.split([',', ' ']);
        let mut fields = AuthFields {
            algorithm: words.next().unwrap_or(""),
            credential: None,
            signed_headers: None,
            signature: None,
        };
        for word in words.filter(|w| !w.is_empty()) {
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            // AWS reads the value up to a further '=' (kinesalite: `split('=')[1]`).
            let value = value.split('=').next().unwrap_or("");
            match name {
                "Credential" => fields.credential = Some(value),
                "SignedHeaders" => fields.signed_headers = Some(value),
                "Signature" => fields.signature = Some(value),
                _ => {}
            }
        }
        fields
    }
}

/// Where the signature travels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    Header,
    /// `X-Amz-*` query parameters; `expires_s` is `X-Amz-Expires`.
    Query {
        expires_s: u64,
    },
}

/// A signature as the request claims it, shape already checked.
struct Claim {
    form: Form,
    algorithm: String,
    credential: String,
    signed_headers: String,
    signature: String,
    /// `X-Amz-Date`, as sent.
    date: String,
    /// The raw query without the parameters the signer writes itself.
    query: String,
}

/// The signing name (service) of a request's credential scope
/// (`AKID/20261202/us-east-1/<service>/aws4_request`), read where `verify`
/// reads it: the `Authorization` header, else a presigned request's
/// `X-Amz-Credential` (percent-decoded). None for an unsigned request or a
/// scope without one. A router uses it to tell services on the same path apart.
pub fn signing_name(parts: &Parts) -> Option<String> {
    let credential = match parts.headers.get(http::header::AUTHORIZATION) {
        Some(value) => AuthFields::parse(value.to_str().ok()?)
            .credential?
            .to_owned(),
        None => form_urlencoded::parse(parts.uri.query()?.as_bytes())
            .find(|(k, _)| k == param::CREDENTIAL)?
            .1
            .into_owned(),
    };
    credential.split('/').nth(3).map(str::to_owned)
}

fn claim(parts: &Parts) -> Result<Claim, AuthError> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let auth = value
            .to_str()
            .map_err(|_| refuse(kind::INVALID, SIGNATURE_MISMATCH))?;
        let fields = AuthFields::parse(auth);
        let date = match parts.headers.get("x-amz-date") {
            Some(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
            None => {
                return Err(refuse(
                    kind::INCOMPLETE,
                    "Riffle verifies SigV4 with the X-Amz-Date header; the Date header form is not supported.",
                ));
            }
        };
        return Ok(Claim {
            form: Form::Header,
            algorithm: fields.algorithm.to_owned(),
            credential: fields.credential.unwrap_or("").to_owned(),
            signed_headers: fields.signed_headers.unwrap_or("").to_owned(),
            signature: fields.signature.unwrap_or("").to_owned(),
            date,
            query: parts.uri.query().unwrap_or("").to_owned(),
        });
    }
    // The query form: each signing parameter exactly once.
    let mut found: BTreeMap<&str, String> = BTreeMap::new();
    let mut rest = Vec::new();
    for piece in parts.uri.query().unwrap_or("").split('&') {
        let decoded = form_urlencoded::parse(piece.as_bytes()).next();
        match decoded {
            Some((k, v)) if param::SIGNING.contains(&k.as_ref()) => {
                let name = param::SIGNING
                    .into_iter()
                    .find(|p| *p == k)
                    .expect("just matched");
                if found.insert(name, v.into_owned()).is_some() {
                    return Err(refuse(
                        kind::INCOMPLETE,
                        format!(
                            "AWS query-string parameters must not repeat '{name}'. Re-examine the query-string parameters."
                        ),
                    ));
                }
            }
            _ => rest.push(piece),
        }
    }
    let mut take = |name| found.remove(name).unwrap_or_default();
    let expires = take(param::EXPIRES);
    let expires_s = match expires.parse::<u64>() {
        Ok(s) if (1..=PRESIGNED_EXPIRES_MAX_S).contains(&s) && !expires.starts_with('0') => s,
        _ if expires.is_empty() => {
            return Err(refuse(
                kind::INCOMPLETE,
                "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters.",
            ));
        }
        _ => {
            return Err(refuse(
                kind::INCOMPLETE,
                format!(
                    "X-Amz-Expires must be a number of seconds from 1 to {PRESIGNED_EXPIRES_MAX_S} (a week), not '{expires}'."
                ),
            ));
        }
    };
    Ok(Claim {
        form: Form::Query { expires_s },
        algorithm: take(param::ALGORITHM),
        credential: take(param::CREDENTIAL),
        signed_headers: take(param::SIGNED_HEADERS),
        signature: take(param::SIGNATURE),
        date: take(param::DATE),
        query: rest.join("&"),
    })
}

/// Verifies the request's signature against `keys` (access key id → secret):
/// `check_shape` first, then AWS's checks in AWS's order (date format, clock
/// skew, Host signed, algorithm, credential scope, key id), then the payload
/// rules, then the signature recomputed by `aws-sigv4` over the method, path,
/// query, exactly the SignedHeaders, the request's X-Amz-Date and the payload
/// hash. `now_s`: the server's clock, seconds since the epoch.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    keys: &BTreeMap<String, String>,
    now_s: u64,
    expect: &Expect<'_>,
) -> Result<Principal, AuthError> {
    check_shape(parts)?;
    let claim = claim(parts)?;

    let Some(request_s) = parse_amz_date(&claim.date) else {
        return Err(refuse(
            kind::INCOMPLETE,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
                claim.date
            ),
        ));
    };
    check_time(claim.form, request_s, now_s)?;

    let signed: Vec<String> = claim
        .signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if !signed.iter().any(|h| h == "host") {
        return Err(refuse(
            kind::INVALID,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    for required in expect.signed_headers {
        if !signed.iter().any(|h| h == required) && parts.headers.contains_key(*required) {
            return Err(refuse(
                kind::INVALID,
                format!("'{required}' must be a 'SignedHeader' in the AWS Authorization."),
            ));
        }
    }
    if claim.algorithm != ALGORITHM {
        return Err(refuse(
            kind::INCOMPLETE,
            format!(
                "Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now). ",
                claim.algorithm
            ),
        ));
    }

    // Credential: keyid/date/region/service/aws4_request (trailing slashes ignored).
    let scope: Vec<&str> = claim.credential.trim_end_matches('/').split('/').collect();
    let [key_id, scope_date, region, service, terminator] = scope[..] else {
        return Err(refuse(
            kind::INCOMPLETE,
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
                claim.credential
            ),
        ));
    };
    let mut message = String::new();
    if region.is_empty() || expect.region.is_some_and(|r| r != region) {
        message += &format!("Credential should be scoped to a valid region, not '{region}'. ");
    }
    if service != expect.service {
        message += &format!(
            "Credential should be scoped to correct service: '{}'. ",
            expect.service
        );
    }
    if terminator != "aws4_request" {
        message += &format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        );
    }
    // `parse_amz_date` accepted 16 ASCII bytes: the day is the first 8.
    let day = &claim.date[..8];
    if scope_date != day {
        message += &format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{day}', from '{}'.",
            claim.date
        );
    }
    if !message.is_empty() {
        return Err(refuse(kind::INVALID, message));
    }

    let Some(secret) = keys.get(key_id) else {
        return Err(refuse(
            kind::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid.",
        ));
    };

    let payload = payload_hash(parts, body, claim.form, expect)?;

    if claim.form == Form::Header && !signed.iter().any(|h| h == "x-amz-date") {
        return Err(refuse(
            kind::INVALID,
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }

    let expected = recompute(
        parts, &claim, &signed, key_id, secret, region, service, request_s, payload,
    )
    .ok_or_else(|| refuse(kind::INVALID, SIGNATURE_MISMATCH))?;
    let same_headers = expected.signed_headers == claim.signed_headers;
    let same_signature: bool = expected
        .signature
        .as_bytes()
        .ct_eq(claim.signature.as_bytes())
        .into();
    if !(same_headers && same_signature) {
        return Err(refuse(kind::INVALID, SIGNATURE_MISMATCH));
    }

    // AWS checks a session token after the signature; Riffle issues none.
    if parts.headers.contains_key(SECURITY_TOKEN)
        || query_pairs(parts).any(|(k, _)| k == param::SECURITY_TOKEN)
    {
        return Err(refuse(
            kind::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid",
        ));
    }
    Ok(Principal {
        access_key_id: key_id.to_owned(),
    })
}

/// Header form: within `SKEW_MAX_S` of `now_s` either way. Query form: not
/// later than that ahead, and not past its `X-Amz-Expires`.
fn check_time(form: Form, request_s: u64, now_s: u64) -> Result<(), AuthError> {
    let date = format_amz_date(request_s);
    if request_s > now_s.saturating_add(SKEW_MAX_S) {
        return Err(refuse(
            kind::INVALID,
            format!(
                "Signature not yet current: {date} is still later than {} ({} + 15 min.)",
                format_amz_date(now_s.saturating_add(SKEW_MAX_S)),
                format_amz_date(now_s)
            ),
        ));
    }
    let (window_s, window) = match form {
        Form::Header => (SKEW_MAX_S, "15 min.".to_owned()),
        Form::Query { expires_s } => (expires_s, format!("{expires_s} sec.")),
    };
    if request_s.saturating_add(window_s) < now_s {
        return Err(refuse(
            kind::INVALID,
            format!(
                "Signature expired: {date} is now earlier than {} ({} - {window})",
                format_amz_date(now_s - window_s),
                format_amz_date(now_s)
            ),
        ));
    }
    Ok(())
}

/// The payload line of the canonical request. The body is always hashed; a
/// claimed hash must be that hash, or `UNSIGNED-PAYLOAD` where allowed.
fn payload_hash(
    parts: &Parts,
    body: &[u8],
    form: Form,
    expect: &Expect<'_>,
) -> Result<String, AuthError> {
    let streamed = || {
        refuse(
            kind::INVALID,
            format!(
                "This request's body is streamed: sign it with 'x-amz-content-sha256: {UNSIGNED_PAYLOAD}'."
            ),
        )
    };
    let presigned = matches!(form, Form::Query { .. });
    let mut claimed = parts.headers.get_all(CONTENT_SHA256).iter();
    let value = match (claimed.next(), claimed.next()) {
        (None, _) => {
            return match expect.payload {
                Payload::Streamed | Payload::UnsignedAllowed if presigned => {
                    Ok(UNSIGNED_PAYLOAD.to_owned())
                }
                Payload::Streamed => Err(streamed()),
                Payload::Signed | Payload::UnsignedAllowed => Ok(hex(&Sha256::digest(body))),
            };
        }
        (Some(v), None) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        (Some(_), Some(_)) => {
            return Err(refuse(
                kind::INVALID,
                "The request carries more than one 'x-amz-content-sha256' header.",
            ));
        }
    };
    if value.starts_with("STREAMING-") {
        return Err(refuse(
            kind::INVALID,
            format!(
                "Riffle does not support the chunked payload signature '{value}'; sign the whole payload (x-amz-content-sha256: its SHA-256)."
            ),
        ));
    }
    if value == UNSIGNED_PAYLOAD {
        return if expect.payload != Payload::Signed {
            Ok(value)
        } else {
            Err(refuse(
                kind::INVALID,
                format!(
                    "This service does not accept '{UNSIGNED_PAYLOAD}': sign the payload's SHA-256."
                ),
            ))
        };
    }
    if expect.payload == Payload::Streamed {
        return Err(streamed());
    }
    let body_hash = hex(&Sha256::digest(body));
    if value != body_hash {
        return Err(refuse(
            kind::INVALID,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok(body_hash)
}

struct Expected {
    signature: String,
    signed_headers: String,
}

/// The signature `aws-sigv4` computes for the request as received; `None`
/// when the request cannot be signed as it stands (a signed header it lacks,
/// a value that is not text), which can only mean a mismatch.
#[allow(clippy::too_many_arguments)]
fn recompute(
    parts: &Parts,
    claim: &Claim,
    signed: &[String],
    key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    request_s: u64,
    payload: String,
) -> Option<Expected> {
    // The signer adds host itself (we give it the request's), and x-amz-date
    // in the header form; every other signed header is passed as received.
    let host = match parts.headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    let mut headers = vec![("host", host)];
    for name in signed {
        if name == "host" || (claim.form == Form::Header && name == "x-amz-date") {
            continue;
        }
        let mut values = parts.headers.get_all(name.as_str()).iter().peekable();
        values.peek()?;
        for value in values {
            headers.push((name.as_str(), value.to_str().ok()?));
        }
    }
    let path = match parts.uri.path() {
        "" => "/",
        p => p,
    };
    let uri = if claim.query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", claim.query)
    };
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Precomputed(payload),
    )
    .ok()?;

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    // Sign exactly what the client signed: nothing excluded.
    settings.excluded_headers = None;
    match claim.form {
        Form::Header => settings.signature_location = SignatureLocation::Headers,
        Form::Query { expires_s } => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(expires_s));
        }
    }
    let identity = Credentials::new(key_id, secret, None, None, "riffle").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(UNIX_EPOCH + Duration::from_secs(request_s))
        .settings(settings)
        .build()
        .expect("every signing parameter is set")
        .into();
    let (instructions, signature) = sign(request, &params).ok()?.into_parts();

    let signed_headers = match claim.form {
        Form::Header => {
            let (_, auth) = instructions
                .headers()
                .find(|(k, _)| *k == "authorization")?;
            let fields = AuthFields::parse(auth);
            fields.signed_headers?.to_owned()
        }
        Form::Query { .. } => {
            // The other values the signer wrote must be the ones received too.
            let written = |name: &str| {
                instructions
                    .params()
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            if written(param::DATE)? != claim.date
                || written(param::CREDENTIAL)? != claim.credential
                || written(param::ALGORITHM)? != claim.algorithm
            {
                return None;
            }
            written(param::SIGNED_HEADERS)?
        }
    };
    Some(Expected {
        signature,
        signed_headers,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `20150830T123600Z` (ISO 8601 basic format, UTC) as seconds since the epoch;
/// `None` for anything else, including impossible dates.
fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(r)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) || hh > 23 || mm > 59 || ss > 59 || days < 0 {
        return None;
    }
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Seconds since the epoch as `20150830T123600Z`.
fn format_amz_date(s: u64) -> String {
    let s = i64::try_from(s).unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil_from_days(s.div_euclid(86_400));
    let rem = s.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
