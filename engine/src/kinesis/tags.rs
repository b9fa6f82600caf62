//! Tags of streams, by name (`*ToStream`, `*FromStream`) or by ARN (`*Resource`).

use super::prelude::*;

/// AddTagsToStream and TagResource.
pub(super) async fn add_tags_to_stream(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = tagged_stream(op, &input, config)?;
    let tags = input.string_map("Tags")?;
    engine.add_tags(&name, tags).await?;
    Ok(json!({}))
}

/// RemoveTagsFromStream and UntagResource.
pub(super) async fn remove_tags_from_stream(
    cx: &Ctx<'_>,
    op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = tagged_stream(op, &input, config)?;
    let keys = input.string_list("TagKeys")?;
    engine.remove_tags(&name, keys).await?;
    Ok(json!({}))
}

/// ListTagsForStream.
pub(super) async fn list_tags_for_stream(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = stream_name(&input, config)?;
    let start = input.str("ExclusiveStartTagKey")?;
    let limit = input.int("Limit")?.unwrap_or(50).clamp(1, 50) as usize;
    let tags: Vec<(String, String)> = engine
        .tags(&name)?
        .into_iter()
        .filter(|(k, _)| start.is_none_or(|s| k.as_str() > s))
        .collect();
    let more = tags.len() > limit;
    let tags: Vec<Value> = tags
        .into_iter()
        .take(limit)
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({"Tags": tags, "HasMoreTags": more}))
}

/// ListTagsForResource.
pub(super) async fn list_tags_for_resource(
    cx: &Ctx<'_>,
    _op: &str,
    input: Input<'_>,
) -> Result<Value, Refusal> {
    let engine = cx.engine;
    let config = cx.config;
    let name = resource_stream(&input, config)?;
    let tags: Vec<Value> = engine
        .tags(&name)?
        .into_iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({"Tags": tags}))
}
