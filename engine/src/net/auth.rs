//! Who a native connection is, and what it may do: the challenge and proof of
//! `riffle_protocol::native::auth` against the server's access keys, then
//! every request decided by IAM's policies as the HTTP API decides its calls
//! (`http::authz`), with the same actions and resources.
//!
//! When the server checks signatures (`--auth sigv4`), a connection must
//! authenticate before anything but Ping: other requests are refused with
//! AccessDeniedException. Without it, Authenticate is answered without a check
//! (a client that always authenticates works with both).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use riffle_protocol::native::Request;
use riffle_protocol::native::auth::{NONCE_LEN, proof_matches};
use riffle_protocol::{Error, ErrorCode};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Engine;
use crate::http::authz::{Authorizer, ResourceRef};

/// What the native listener checks (`NetConfig::auth`).
#[derive(Clone, Debug)]
pub struct NativeAuth {
    /// Access keys: id → secret (the HTTP API's).
    pub keys: BTreeMap<String, String>,
    /// IAM's decisions; `None`: every authenticated call is allowed.
    pub authorizer: Option<Arc<Authorizer>>,
    /// Resources' ARNs name these.
    pub region: String,
    pub account: String,
}

/// A connection's authentication state (one core, one connection).
#[derive(Default)]
pub(super) struct ConnAuth {
    /// The last challenge, answered at most once.
    nonce: Cell<Option<[u8; NONCE_LEN]>>,
    /// The access key the connection proved it holds.
    key: RefCell<Option<String>>,
}

fn denied(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::AccessDenied, message)
}

impl ConnAuth {
    /// The access key the connection proved it holds, if any.
    pub(super) fn key(&self) -> Option<String> {
        self.key.borrow().clone()
    }

    /// A new challenge (AuthChallenge).
    pub(super) fn challenge(&self) -> Result<[u8; NONCE_LEN], Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::internal("the system's random source failed"))?;
        self.nonce.set(Some(nonce));
        Ok(nonce)
    }

    /// Checks an Authenticate; answers the principal.
    pub(super) fn authenticate(
        &self,
        auth: Option<&NativeAuth>,
        access_key_id: &str,
        proof: &[u8; 32],
    ) -> Result<String, Error> {
        let Some(auth) = auth else {
            // No signatures checked: nothing to prove.
            return Ok("anonymous".to_string());
        };
        let Some(nonce) = self.nonce.take() else {
            return Err(denied(
                "Authenticate answers a challenge: send AuthChallenge first (each challenge is answered once)",
            ));
        };
        let Some(secret) = auth.keys.get(access_key_id) else {
            return Err(denied(format!(
                "The security token included in the request is invalid: no access key {access_key_id}"
            )));
        };
        if !proof_matches(secret, &nonce, access_key_id, proof) {
            return Err(denied(
                "The proof does not match what the access key's secret gives for this challenge",
            ));
        }
        *self.key.borrow_mut() = Some(access_key_id.to_string());
        Ok(auth
            .authorizer
            .as_ref()
            .and_then(|a| a.identities.get(access_key_id))
            .map_or_else(
                || format!("arn:aws:iam::{}:user/{access_key_id}", auth.account),
                |i| i.arn.clone(),
            ))
    }

    /// Whether the connection may make `request` (anything when the server
    /// checks no signatures).
    pub(super) fn decide(
        &self,
        auth: Option<&NativeAuth>,
        engine: &Engine,
        request: &Request<'_>,
        peer: Option<IpAddr>,
        secure: bool,
    ) -> Result<(), Error> {
        let Some(auth) = auth else { return Ok(()) };
        if matches!(
            request,
            Request::Ping { .. } | Request::AuthChallenge | Request::Authenticate { .. }
        ) {
            return Ok(());
        }
        let key = self.key.borrow();
        let Some(key) = key.as_deref() else {
            return Err(denied(
                "This connection is not authenticated: the server checks signatures, so a client authenticates first (AuthChallenge, Authenticate; riffle-client does with AWS credentials)",
            ));
        };
        let Some(authorizer) = &auth.authorizer else {
            return Ok(());
        };
        let Some((action, resource)) = action_of(auth, engine, request) else {
            return Ok(());
        };
        authorizer
            .authorize(
                key,
                action,
                &resource,
                &crate::http::authz::RequestTags::default(),
                peer,
                secure,
            )
            .map_err(|r| denied(r.message))
    }
}

/// The IAM action and resource of a native request, as the HTTP API names
/// the same call; `None` for what acts on nothing (Unsubscribe: one's own
/// subscription).
fn action_of(
    auth: &NativeAuth,
    engine: &Engine,
    request: &Request<'_>,
) -> Option<(&'static str, ResourceRef)> {
    let stream = |name: &str| ResourceRef {
        arn: crate::kinesis::stream_arn(&auth.region, &auth.account, name),
        policy: engine.settings(name).ok().and_then(|s| s.resource_policy),
        tags: engine.tags(name).unwrap_or_default(),
    };
    let plain = |arn: String| ResourceRef {
        arn,
        ..ResourceRef::default()
    };
    Some(match *request {
        Request::CreateStream { stream: s, .. } => ("kinesis:CreateStream", stream(s)),
        Request::DeleteStream { stream: s } => ("kinesis:DeleteStream", stream(s)),
        Request::DescribeStream { stream: s } => ("kinesis:DescribeStream", stream(s)),
        Request::ListShards { stream: s } => ("kinesis:ListShards", stream(s)),
        Request::ListStreams => ("kinesis:ListStreams", plain("*".into())),
        Request::PutRecord { stream: s, .. } => ("kinesis:PutRecord", stream(s)),
        Request::PutRecords { stream: s, .. } => ("kinesis:PutRecords", stream(s)),
        Request::GetShardIterator { stream: s, .. } => ("kinesis:GetShardIterator", stream(s)),
        // The stream the iterator reads (none: the read fails on its own).
        Request::GetRecords { iterator, .. } => (
            "kinesis:GetRecords",
            match engine.iterator_stream(iterator) {
                Some(s) => stream(&s),
                None => plain("*".into()),
            },
        ),
        Request::Subscribe { stream: s, .. } => ("kinesis:SubscribeToShard", stream(s)),
        // Consumer groups read their stream and keep checkpoints of it.
        Request::GroupHeartbeat { stream: s, .. }
        | Request::GroupCheckpoint { stream: s, .. }
        | Request::GroupDescribe { stream: s, .. }
        | Request::GroupLeave { stream: s, .. } => ("kinesis:GetRecords", stream(s)),
        Request::FirehosePutRecordBatch {
            delivery_stream, ..
        } => (
            "firehose:PutRecordBatch",
            plain(format!(
                "arn:aws:firehose:{}:{}:deliverystream/{delivery_stream}",
                auth.region, auth.account
            )),
        ),
        Request::FirehoseDescribe { delivery_stream } => (
            "firehose:DescribeDeliveryStream",
            plain(format!(
                "arn:aws:firehose:{}:{}:deliverystream/{delivery_stream}",
                auth.region, auth.account
            )),
        ),
        Request::Ping { .. }
        | Request::Unsubscribe { .. }
        | Request::AuthChallenge
        | Request::Authenticate { .. } => return None,
    })
}
