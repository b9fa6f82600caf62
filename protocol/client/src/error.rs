//! `ClientError`: every way a client call can fail, split by who is at fault and
//! whether the request may have taken effect. Owns the retry classification the
//! client, the producer and the consumer share; it knows nothing about sockets.

use std::sync::Arc;
use std::time::Duration;

use riffle_protocol::{Error, ErrorCode};

/// Why a call failed. Cheap to clone (a producer hands one error to many records).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (its code and message).
    #[error("server error: {0}")]
    Server(Error),
    /// No connection could be established (every reconnect attempt failed). The
    /// request was not sent.
    #[error("cannot connect: {0}")]
    Io(Arc<std::io::Error>),
    /// No reply within the request timeout. The request was sent: its outcome is
    /// unknown. The connection stays up; a late reply is discarded.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection broke before the reply arrived. `request_sent` says whether
    /// the whole request had been handed to the socket: when it had not, the server
    /// cannot have seen it and a resend is safe.
    #[error("connection lost ({reason}); the request {}", if *.request_sent { "was sent, its outcome is unknown" } else { "was not sent" })]
    ConnectionLost { request_sent: bool, reason: String },
    /// The server broke the protocol (bad frame, unexpected reply, invalid batch).
    /// It concerns this call only; a frame size out of bounds, after which the
    /// byte stream cannot be followed, closes the connection and fails every
    /// call on it with `ConnectionLost` instead.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The caller's input was refused before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An async subscription's queue of unread push frames overflowed while other
    /// calls kept reading the connection; the subscription was cancelled.
    #[error("subscription fell behind: more than {frames_max} unread push frames")]
    Lagged { frames_max: usize },
    /// A producer's record was not sent within its time to live
    /// (`ProducerConfig::record_ttl`); nothing of it was stored.
    #[error("record not sent within its time to live ({waited:?} since send)")]
    Expired { waited: Duration },
    /// The client (or producer) was closed.
    #[error("closed")]
    Closed,
}

impl ClientError {
    /// The server's error code, when the server answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether the request certainly had no effect on the server, so sending it
    /// again cannot duplicate anything: it was never sent, or the server refused it
    /// with a transient error (throttling, internal failure).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Server(e) => is_retryable_code(e.code),
            ClientError::Io(_) => true,
            ClientError::ConnectionLost { request_sent, .. } => !request_sent,
            _ => false,
        }
    }

    /// Whether the request may or may not have taken effect (sent, then the reply
    /// was lost or late). Idempotent requests may be resent; others may not.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout(_)
                | ClientError::ConnectionLost {
                    request_sent: true,
                    ..
                }
        )
    }

    pub(crate) fn protocol(why: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol(why.to_string())
    }
}

/// Server error codes that mean "nothing happened, try again later".
pub fn is_retryable_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ProvisionedThroughputExceeded | ErrorCode::Internal
    )
}

impl From<Error> for ClientError {
    fn from(e: Error) -> ClientError {
        ClientError::Server(e)
    }
}
