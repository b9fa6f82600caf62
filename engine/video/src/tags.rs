//! A video stream's tags, in both of AWS's forms: TagStream, UntagStream
//! and ListTagsForStream (a stream by name or ARN, tags as a map) and
//! TagResource, UntagResource and ListTagsForResource (a stream by
//! `ResourceARN`, tags as a list of Key/Value on the way in). A stream has
//! at most 50 (TagsPerResourceExceededLimitException).

use std::collections::BTreeMap;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use serde_json::{Value, json};

use crate::service::{Shared, refusal};
use crate::state::{VideoEvent, VideoStream};

async fn add(
    s: &Shared,
    v: &VideoStream,
    tags: BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    s.meta
        .apply(VideoEvent::Tag {
            name: v.name.clone(),
            id: v.id,
            tags,
        })
        .await
        .map_err(refusal)?;
    Ok(json!({}))
}

async fn remove(s: &Shared, v: &VideoStream, keys: Vec<String>) -> Result<Value, Refusal> {
    s.meta
        .apply(VideoEvent::Untag {
            name: v.name.clone(),
            id: v.id,
            keys,
        })
        .await
        .map_err(refusal)?;
    Ok(json!({}))
}

pub(crate) async fn tag_stream(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    add(s, &v, input.string_map("Tags")?).await
}

pub(crate) async fn untag_stream(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    remove(s, &v, input.string_list("TagKeyList")?).await
}

pub(crate) fn list_for_stream(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = s.named(input)?;
    Ok(json!({ "Tags": v.tags }))
}

/// The stream `ResourceARN` names.
fn resource(s: &Shared, input: Input<'_>) -> Result<VideoStream, Refusal> {
    s.named_by(input, "StreamName", "ResourceARN")
}

pub(crate) async fn tag_resource(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = resource(s, input)?;
    // The model checked each entry's Key and Value; a key given twice
    // keeps its last value.
    let tags = input
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = t.get("Key")?.as_str()?;
            let value = t.get("Value")?.as_str()?;
            Some((key.to_string(), value.to_string()))
        })
        .collect();
    add(s, &v, tags).await
}

pub(crate) async fn untag_resource(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = resource(s, input)?;
    remove(s, &v, input.string_list("TagKeyList")?).await
}

pub(crate) fn list_for_resource(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let v = resource(s, input)?;
    Ok(json!({ "Tags": v.tags }))
}
