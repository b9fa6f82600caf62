//! How requests name streams and consumers (names, ARNs of this server's
//! region and account) and the opaque paging tokens.

use super::prelude::*;

/// What a Kinesis ARN of this server's region and account names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArnNames<'a> {
    /// `...:stream/NAME`.
    Stream(&'a str),
    /// `...:stream/NAME/consumer/CONSUMER:EPOCH` (the epoch as written).
    Consumer {
        stream: &'a str,
        consumer: &'a str,
        epoch: &'a str,
    },
}

/// Parses a stream or stream consumer ARN of region `region` and account
/// `account`; None for anything else, and for a service's internal stream
/// (`firehose:<name>`), which no client names.
pub fn names_of_arn<'a>(arn: &'a str, region: &str, account: &str) -> Option<ArnNames<'a>> {
    let rest = arn
        .strip_prefix("arn:aws:kinesis:")?
        .strip_prefix(region)?
        .strip_prefix(':')?
        .strip_prefix(account)?
        .strip_prefix(":stream/")?;
    let named = |s: &str| !s.is_empty() && !riffle_store::catalog::is_internal_stream(s);
    match rest.split_once("/consumer/") {
        Some((stream, rest)) => {
            let (consumer, epoch) = rest.rsplit_once(':')?;
            (named(stream) && !consumer.is_empty()).then_some(ArnNames::Consumer {
                stream,
                consumer,
                epoch,
            })
        }
        None => (named(rest) && !rest.contains('/')).then_some(ArnNames::Stream(rest)),
    }
}

/// The ARN of stream `name` in region `region` and account `account`.
pub fn stream_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{name}")
}

/// The stream a stream ARN names.
pub(super) fn stream_of_arn(arn_str: &str, config: &KinesisConfig) -> Result<String, Refusal> {
    match names_of_arn(arn_str, &config.region, &config.account) {
        Some(ArnNames::Stream(name)) => Ok(name.to_owned()),
        _ => Err(Refusal::from(Error::invalid(format!(
            "{arn_str} is not a stream ARN of this server ({}<name>)",
            arn_prefix(config)
        )))),
    }
}

/// The stream and consumer a consumer ARN names (`.../stream/S/consumer/C:EPOCH`).
pub(super) fn consumer_of_arn(
    arn_str: &str,
    config: &KinesisConfig,
) -> Result<(String, String), Refusal> {
    match names_of_arn(arn_str, &config.region, &config.account) {
        Some(ArnNames::Consumer {
            stream, consumer, ..
        }) => Ok((stream.to_owned(), consumer.to_owned())),
        _ => Err(Refusal::from(Error::invalid(format!(
            "{arn_str} is not a consumer ARN of this server"
        )))),
    }
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
    stream_arn(&config.region, &config.account, "")
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

#[cfg(test)]
mod arn_tests {
    use super::*;

    #[test]
    fn arns_of_this_region_and_account_name_streams_and_consumers() {
        let of =
            |arn: &str| names_of_arn(arn, "us-east-1", "000000000000").map(|n| format!("{n:?}"));
        let p = "arn:aws:kinesis:us-east-1:000000000000:stream/";
        assert_eq!(
            of(&format!("{p}s")),
            Some(format!("{:?}", ArnNames::Stream("s")))
        );
        assert_eq!(
            of(&format!("{p}s/consumer/c:1700000000")),
            Some(format!(
                "{:?}",
                ArnNames::Consumer {
                    stream: "s",
                    consumer: "c",
                    epoch: "1700000000"
                }
            ))
        );
        for bad in [
            p.to_string(),
            format!("{p}a/b"),
            format!("{p}firehose:x"),
            format!("{p}s/consumer/:1"),
            format!("{p}s/consumer/c"),
            "arn:aws:kinesis:eu-west-1:000000000000:stream/s".into(),
            "arn:aws:kinesis:us-east-1:111111111111:stream/s".into(),
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/s".into(),
        ] {
            assert_eq!(of(&bad), None, "{bad}");
        }
        assert_eq!(
            stream_arn("us-east-1", "000000000000", "s"),
            format!("{p}s")
        );
    }
}
