//! riffle-aws: what every AWS-shaped service of Riffle shares, without a runtime.
//!
//! - `json`: the AWS JSON 1.1 / CBOR 1.1 body formats of a request and its answer;
//! - `cbor`: CBOR bodies to and from the JSON form (blobs, timestamps);
//! - `error`: AWS error answers (`__type`, message, `x-amzn-ErrorType`, status);
//! - `input`: typed access to a JSON input object, decoding and checking it
//!   against the service's model, blobs decoded in bulk for hot paths;
//! - `ids`: UUIDs of AWS's shape;
//! - `rest`: REST-JSON helpers (path parameters, header members, an
//!   operation's input assembled from labels, query, headers and body and
//!   checked against the model: `decode_checked`);
//! - `eventstream`: the `application/vnd.amazon.eventstream` framing;
//! - `model`: the service models and the member validation derived from them;
//! - `sigv4`: Signature Version 4 verification;
//! - `sign`: signing the requests Riffle sends (to S3-compatible stores).
//!
//! No I/O, no async, no clock reads: the gateway and the services do those.

pub mod cbor;
pub mod error;
pub mod eventstream;
pub mod iam;
pub mod ids;
pub mod input;
pub mod json;
pub mod model;
pub mod rest;
pub mod sign;
pub mod sigv4;
