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
    let current = engine.tags(&name)?;
    check_characters(
        tags.iter().flat_map(|(k, v)| [k, v]),
        &format!(
            "Failed to add tags to stream {name} under account {}",
            config.account
        ),
    )?;
    let limit = engine.limits().tags_per_stream_max as usize;
    let after = current.len() + tags.keys().filter(|k| !current.contains_key(*k)).count();
    if after > limit {
        // AWS's words, from when its limit was 10 (it is 50 now).
        return Err(Refusal::from(Error::invalid(format!(
            "Failed to add tags to stream {name} under account {} because a given stream cannot have more than 10 tags associated with it.",
            config.account
        ))));
    }
    engine.add_tags(&name, tags).await?;
    Ok(json!({}))
}

/// AWS's refusal of tags with characters it does not allow: anything but
/// Unicode letters, digits, spaces and `_ . / = + - @` (and `%`, which passes
/// the first check and fails the second, with its own message).
pub(super) fn check_characters<'a>(
    strings: impl Iterator<Item = &'a String> + Clone,
    failed_to: &str,
) -> Result<(), Refusal> {
    let allowed = |c: char| {
        c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_./=+-@%".contains(c)
    };
    if !strings.clone().all(|s| s.chars().all(allowed)) {
        return Err(Refusal::from(Error::invalid(
            "Some tags contain invalid characters. Valid characters: \
             Unicode letters, digits, white space, _ . / = + - % @.",
        )));
    }
    if strings.clone().any(|s| s.contains('%')) {
        return Err(Refusal::from(Error::invalid(format!(
            "{failed_to} because some tags contained illegal characters. The allowed characters are \
             Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
        ))));
    }
    Ok(())
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
    // The stream's existence is checked first.
    engine.tags(&name)?;
    check_characters(
        keys.iter(),
        &format!(
            "Failed to remove tags from stream {name} under account {}",
            config.account
        ),
    )?;
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
