//! The server's AWS HTTP API as the commands call it (`riffle firehose`,
//! `riffle apply|diff|delete`): one operation of
//! Kinesis, Firehose, Kinesis Analytics or Kinesis Video Streams, its target
//! or path and signing name taken from the service's model, signed with
//! SigV4 when the command has credentials (a server with `--auth sigv4`
//! decides each call by the caller's policies, as for any client).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use riffle_aws::model::ServiceModel;
use riffle_aws::sign::Signer;
use serde_json::Value;

/// The services a stack's resources live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kinesis,
    Firehose,
    Analytics,
    Video,
}

impl Service {
    pub fn model(self) -> &'static ServiceModel {
        match self {
            Service::Kinesis => riffle_aws::model::kinesis(),
            Service::Firehose => riffle_aws::model::firehose(),
            Service::Analytics => riffle_aws::model::kinesis_analytics(),
            Service::Video => riffle_aws::model::kinesis_video(),
        }
    }
}

/// AWS's refusal of a call (`kind` is the exception's name), or no answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: String,
    pub message: String,
    /// The server could not be reached (exit code 3, as the other commands).
    pub unreachable: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind.is_empty() {
            true => f.write_str(&self.message),
            false => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

impl ApiError {
    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

/// Where and as whom the calls go.
pub struct Api {
    pub http: String,
    pub region: String,
    pub credentials: Option<riffle_client::Credentials>,
}

impl Api {
    /// The API at `http` as the command's user: its credentials (options,
    /// else AWS's environment and profile) and region (`region`, else
    /// AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1).
    pub fn of_command(
        http: &str,
        region: Option<&str>,
        common: &crate::cli::Common,
    ) -> Result<Api, crate::cli::Failure> {
        let region = region
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        Ok(Api {
            http: http.to_string(),
            region,
            credentials: common.credentials()?,
        })
    }

    /// One operation with its JSON input: the answer's JSON.
    pub fn call(
        &self,
        service: Service,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let model = service.model();
        let http = &self.http;
        let body = input.to_string();
        let (path, content_type, target) = match &model.metadata.target_prefix {
            Some(prefix) => (
                "/".to_string(),
                "application/x-amz-json-1.1",
                Some(format!("{prefix}.{operation}")),
            ),
            None => {
                let op = model.operation(operation).ok_or_else(|| ApiError {
                    kind: String::new(),
                    message: format!(
                        "{operation} is not an operation of {}",
                        model.metadata.endpoint_prefix
                    ),
                    unreachable: false,
                })?;
                (op.http.request_uri.clone(), "application/json", None)
            }
        };
        let mut headers: Vec<(&str, &str)> = vec![("host", http), ("content-type", content_type)];
        if let Some(t) = &target {
            headers.push(("x-amz-target", t));
        }
        let signed = match &self.credentials {
            None => Vec::new(),
            Some(c) => Signer {
                access_key: c.access_key_id.clone(),
                secret_key: c.secret_access_key.clone(),
                region: self.region.clone(),
                service: model.metadata.signing_name().to_string(),
            }
            .sign_payload("POST", &path, &headers, body.as_bytes(), SystemTime::now())
            .map_err(|message| ApiError {
                kind: String::new(),
                message,
                unreachable: false,
            })?,
        };
        let mut request = format!("POST {path} HTTP/1.1\r\n");
        for (k, v) in headers
            .iter()
            .copied()
            .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        let unreachable = |e: std::io::Error| ApiError {
            kind: String::new(),
            message: format!("cannot reach the HTTP API at {http}: {e} (--http, RIFFLE_HTTP)"),
            unreachable: true,
        };
        let mut conn = TcpStream::connect(http.as_str()).map_err(unreachable)?;
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(unreachable)?;
        conn.write_all(request.as_bytes()).map_err(unreachable)?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).map_err(unreachable)?;
        answered(&answer).map_err(|(kind, message)| ApiError {
            kind,
            message,
            unreachable: false,
        })
    }
}

/// An HTTP/1.1 answer (read to its close): the JSON body of a 2xx, else
/// AWS's error type (header `x-amzn-ErrorType` or the body's `__type`) and message.
fn answered(answer: &[u8]) -> Result<Value, (String, String)> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            (
                String::new(),
                "the server did not answer in HTTP".to_string(),
            )
        })?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = match chunked {
        true => dechunked(&answer[end + 4..]).ok_or_else(|| {
            (
                String::new(),
                "the server's answer was cut short".to_string(),
            )
        })?,
        false => answer[end + 4..].to_vec(),
    };
    let parsed: Option<Value> = match body.iter().all(u8::is_ascii_whitespace) {
        true => Some(Value::Object(Default::default())),
        false => serde_json::from_slice(&body).ok(),
    };
    if (200..300).contains(&status) {
        return parsed.ok_or_else(|| {
            (
                String::new(),
                format!("the server answered {status} with a body that is not JSON"),
            )
        });
    }
    let parsed = parsed.unwrap_or(Value::Null);
    let header_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-amzn-errortype")
            .then(|| v.trim().to_string())
    });
    let kind = header_type
        .or_else(|| parsed["__type"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let kind = kind.split(':').next().unwrap_or_default();
    let kind = kind.rsplit('#').next().unwrap_or_default().to_string();
    let message = parsed["message"]
        .as_str()
        .or(parsed["Message"].as_str())
        .unwrap_or("")
        .to_string();
    Err((kind, message))
}

/// A chunked body's bytes; None when it ends before its last chunk.
fn dechunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_header_or_body() {
        let a = b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ResourceNotFoundException:http://x\r\n\r\n{\"message\":\"m\"}";
        assert_eq!(
            answered(a).unwrap_err(),
            ("ResourceNotFoundException".into(), "m".into())
        );
        let b = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"__type\":\"com.amazon#LimitExceededException\",\"Message\":\"n\"}";
        assert_eq!(
            answered(b).unwrap_err(),
            ("LimitExceededException".into(), "n".into())
        );
        let c = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(answered(c).unwrap(), serde_json::json!({"a": 1}));
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n";
        assert_eq!(
            answered(cut).unwrap_err().1,
            "the server's answer was cut short"
        );
        let html = b"HTTP/1.1 200 OK\r\n\r\n<html>";
        assert!(answered(html).unwrap_err().1.contains("not JSON"));
        assert_eq!(
            answered(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            serde_json::json!({})
        );
    }
}
