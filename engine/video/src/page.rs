//! Page tokens of the list operations (ListStreams, ListFragments,
//! GetImages): where the next page starts, as text (a stream name, a
//! fragment number, a sample index), carried base64 as the models'
//! `NextToken` patterns want. One home for writing and reading them.

use base64::Engine as _;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;

use crate::service::invalid;

/// The token of a page that goes on after `text`.
pub(crate) fn token(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The `NextToken` member read back through `parse` (empty or absent: the
/// first page); a token this server did not make is InvalidArgumentException.
pub(crate) fn next<T>(
    input: Input<'_>,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, Refusal> {
    match input.str("NextToken")? {
        None | Some("") => Ok(None),
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| parse(&text))
            .map(Some)
            .ok_or_else(|| invalid("The NextToken is not valid.")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn input(token: Option<&str>) -> Map<String, Value> {
        match token {
            Some(t) => json!({ "NextToken": t }),
            None => json!({}),
        }
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn tokens_read_back_and_strangers_are_refused() {
        let t = token("cam-7");
        let m = input(Some(&t));
        assert_eq!(
            next(Input(&m), |s| Some(s.to_string())).unwrap(),
            Some("cam-7".into())
        );
        assert_eq!(
            next(Input(&input(None)), |s| Some(s.to_string())).unwrap(),
            None
        );
        assert_eq!(
            next(Input(&input(Some(""))), |s| s.parse::<u32>().ok()).unwrap(),
            None
        );
        for bad in ["***", &token("x")] {
            let e = next(Input(&input(Some(bad))), |s| s.parse::<u32>().ok()).unwrap_err();
            assert_eq!(e.kind, "InvalidArgumentException");
        }
    }
}
