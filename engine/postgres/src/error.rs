//! What can go wrong talking to PostgreSQL: the server's own error (with its
//! SQLSTATE, which Firehose shows as AWS shows Redshift's), the connection,
//! the protocol, authentication, and a batch that cannot be read.

use std::fmt;

/// An ErrorResponse from the server, field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC` (the non-localized `V` field when sent).
    pub severity: String,
    /// SQLSTATE, e.g. `28P01` (invalid password), `42P01` (no such table).
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// `CONTEXT`: for COPY, which line of the data failed.
    pub context: Option<String>,
}

impl ServerError {
    /// Reads an ErrorResponse/NoticeResponse body: `(type byte, cstring)*, 0`.
    pub(crate) fn parse(body: &[u8]) -> ServerError {
        let mut e = ServerError::default();
        let mut localized_severity = None;
        for field in body.split(|&b| b == 0) {
            let Some((&kind, value)) = field.split_first() else {
                continue;
            };
            let value = String::from_utf8_lossy(value).into_owned();
            match kind {
                b'S' => localized_severity = Some(value),
                b'V' => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                b'W' => e.context = Some(value),
                _ => {}
            }
        }
        if e.severity.is_empty() {
            e.severity = localized_severity.unwrap_or_default();
        }
        e
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " (detail: {d})")?;
        }
        if let Some(c) = &self.context {
            write!(f, " (context: {c})")?;
        }
        Ok(())
    }
}

/// Every failure of a [`crate::Client`] call.
#[derive(Debug)]
pub enum PgError {
    /// The server refused: its SQLSTATE, severity, message, detail.
    Server(Box<ServerError>),
    /// The connection failed (reset, closed, refused).
    Io(std::io::Error),
    /// The server said something this client does not understand, or the
    /// connection is unusable (an earlier call was dropped halfway).
    Protocol(String),
    /// Authentication could not be done by this client (an unsupported
    /// method, or a SCRAM server that failed to prove it knows the password).
    Auth(String),
    /// The batch could not be read with the COPY options (bad JSON, a record
    /// with too many fields, invalid UTF-8, ...). Nothing was loaded.
    Data(String),
}

impl PgError {
    /// The SQLSTATE when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Server(e) => write!(f, "{e}"),
            PgError::Io(e) => write!(f, "connection to PostgreSQL failed: {e}"),
            PgError::Protocol(m) => write!(f, "PostgreSQL protocol: {m}"),
            PgError::Auth(m) => write!(f, "PostgreSQL authentication: {m}"),
            PgError::Data(m) => write!(f, "the batch cannot be loaded: {m}"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<std::io::Error> for PgError {
    fn from(e: std::io::Error) -> PgError {
        PgError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_fields() {
        let body = b"SFEHLER\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0Dmore\0WCOPY x, line 2\0Xignored\0\0";
        let e = ServerError::parse(body);
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.code, "42P01");
        assert_eq!(e.message, "relation \"x\" does not exist");
        assert_eq!(e.detail.as_deref(), Some("more"));
        assert_eq!(e.context.as_deref(), Some("COPY x, line 2"));
        assert_eq!(
            PgError::Server(Box::new(e)).to_string(),
            "ERROR 42P01: relation \"x\" does not exist (detail: more) (context: COPY x, line 2)"
        );
        assert_eq!(ServerError::parse(b"SFATAL\0\0").severity, "FATAL");
    }
}
