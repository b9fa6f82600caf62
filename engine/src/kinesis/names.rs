//! How requests name streams and consumers (names, ARNs of this server's
//! region and account) and the opaque paging tokens.

use super::prelude::*;

/// The stream a stream ARN names.
pub(super) fn stream_of_arn(arn_str: &str, config: &KinesisConfig) -> Result<String, Refusal> {
    let prefix = arn_prefix(config);
    match arn_str.strip_prefix(&prefix) {
        // Not a service's internal stream (`firehose:<name>`): no client names one.
        Some(name)
            if !name.is_empty()
                && !name.contains('/')
                && !riffle_store::catalog::is_internal_stream(name) =>
        {
            Ok(name.to_owned())
        }
        _ => Err(Refusal::from(Error::invalid(format!(
            "{arn_str} is not a stream ARN of this server ({prefix}<name>)"
        )))),
    }
}

/// The stream and consumer a consumer ARN names (`.../stream/S/consumer/C:EPOCH`).
pub(super) fn consumer_of_arn(
    arn_str: &str,
    config: &KinesisConfig,
) -> Result<(String, String), Refusal> {
    let prefix = arn_prefix(config);
    let parsed = arn_str.strip_prefix(&prefix).and_then(|rest| {
        let (stream, rest) = rest.split_once("/consumer/")?;
        let (consumer, _epoch) = rest.rsplit_once(':')?;
        (!stream.is_empty()
            && !consumer.is_empty()
            && !riffle_store::catalog::is_internal_stream(stream))
        .then(|| (stream.to_owned(), consumer.to_owned()))
    });
    parsed.ok_or_else(|| {
        Refusal::from(Error::invalid(format!(
            "{arn_str} is not a consumer ARN of this server"
        )))
    })
}

/// The stream a tag operation names: by `ResourceARN` for the *Resource ones
/// (TagResource, UntagResource, ListTagsForResource), else by name or ARN.
pub(super) fn tagged_stream(
    op: &str,
    input: &Input<'_>,
    config: &KinesisConfig,
) -> Result<String, Refusal> {
    if op.ends_with("Resource") {
        resource_stream(input, config)
    } else {
        stream_name(input, config)
    }
}

/// What every stream ARN of this server starts with.
pub(super) fn arn_prefix(config: &KinesisConfig) -> String {
    format!(
        "arn:aws:kinesis:{}:{}:stream/",
        config.region, config.account
    )
}

pub(super) fn arn(config: &KinesisConfig, name: &str) -> String {
    format!("{}{name}", arn_prefix(config))
}

/// The stream an operation names, by `StreamName` or `StreamARN`.
pub(super) fn stream_name(input: &Input<'_>, config: &KinesisConfig) -> Result<String, Refusal> {
    if let Some(name) = input.str("StreamName")? {
        return Ok(name.to_owned());
    }
    match input.str("StreamARN")? {
        Some(arn_str) => stream_of_arn(arn_str, config),
        // The model's rules refuse this first, in these words.
        None => Err(null_member("StreamName")),
    }
}

/// Paging tokens: opaque to clients (base64 of what the next page continues after).
pub(super) fn encode_token(s: &str) -> String {
    BASE64.encode(s)
}

pub(super) fn decode_token(token: &str) -> Result<String, Refusal> {
    BASE64
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Refusal::from(Error::invalid("invalid NextToken")))
}

/// The stream a tagging or policy operation's `ResourceARN` names.
pub(super) fn resource_stream(
    input: &Input<'_>,
    config: &KinesisConfig,
) -> Result<String, Refusal> {
    stream_of_arn(input.required_str("ResourceARN")?, config)
}
