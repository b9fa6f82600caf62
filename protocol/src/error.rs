//! Error codes shared by every Riffle interface, named after the AWS Kinesis
//! exceptions so gateways can map them one to one.

use std::fmt;

/// What went wrong, in AWS Kinesis terms. The numeric values are part of the
/// native wire format: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The stream, shard or consumer does not exist (AWS `ResourceNotFoundException`).
    ResourceNotFound = 1,
    /// The resource is not in a state that allows the operation (`ResourceInUseException`).
    ResourceInUse = 2,
    /// A parameter is invalid (`InvalidArgumentException`).
    InvalidArgument = 3,
    /// The shard iterator is older than five minutes (`ExpiredIteratorException`).
    ExpiredIterator = 4,
    /// A throughput limit was exceeded (`ProvisionedThroughputExceededException`).
    ProvisionedThroughputExceeded = 5,
    /// An account or server limit was exceeded (`LimitExceededException`).
    LimitExceeded = 6,
    /// The server failed; the request may be retried (`InternalFailure`).
    Internal = 7,
    /// The server's storage failed; the shard no longer acknowledges writes.
    StorageFailed = 8,
    /// A change was made against a stale version (Firehose's
    /// `ConcurrentModificationException`).
    ConcurrentModification = 9,
    /// The stream's KMS key is disabled (`KMSDisabledException`).
    KmsDisabled = 10,
    /// The stream's KMS key does not exist (`KMSNotFoundException`).
    KmsNotFound = 11,
    /// The KMS key is not in a state that allows its use, such as pending
    /// deletion (`KMSInvalidStateException`).
    KmsInvalidState = 12,
    /// The caller may not use the KMS key (`KMSAccessDeniedException`).
    KmsAccessDenied = 13,
    /// The caller is not authenticated, or its policies do not allow the call
    /// (`AccessDeniedException`).
    AccessDenied = 14,
}

impl ErrorCode {
    /// The exception name AWS uses for this code.
    pub fn aws_name(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::ResourceInUse => "ResourceInUseException",
            ErrorCode::InvalidArgument => "InvalidArgumentException",
            ErrorCode::ExpiredIterator => "ExpiredIteratorException",
            ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorCode::LimitExceeded => "LimitExceededException",
            ErrorCode::Internal | ErrorCode::StorageFailed => "InternalFailure",
            ErrorCode::ConcurrentModification => "ConcurrentModificationException",
            ErrorCode::KmsDisabled => "KMSDisabledException",
            ErrorCode::KmsNotFound => "KMSNotFoundException",
            ErrorCode::KmsInvalidState => "KMSInvalidStateException",
            ErrorCode::KmsAccessDenied => "KMSAccessDeniedException",
            ErrorCode::AccessDenied => "AccessDeniedException",
        }
    }
}

/// An error with its code and a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::ResourceNotFound, message)
    }
    pub fn in_use(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::ResourceInUse, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.aws_name(), self.message)
    }
}

impl std::error::Error for Error {}
