//! REST-JSON helpers (Video, Lambda): matching a request path against a model's
//! `requestUri` template, reading header members, and (`rest_input.rs`,
//! re-exported here as `decode_checked`) assembling an operation's input from
//! its labels, query, headers and body and checking it against the model.

use std::collections::BTreeMap;

#[path = "rest_input.rs"]
mod rest_input;

pub use rest_input::decode_checked;

/// Matches `path` (without the query) against a template such as
/// `/2015-03-31/event-source-mappings/{UUID}`: the captured parameters
/// (percent-decoded), or `None` when it does not match. `{Name+}` captures the
/// rest of the path, slashes included.
pub fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let template = template.split('?').next().unwrap_or(template);
    let mut params = BTreeMap::new();
    let mut t = template.trim_start_matches('/').split('/');
    let mut p = path.trim_start_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(seg), Some(got)) => {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if let Some(greedy) = name.strip_suffix('+') {
                        let mut rest = vec![got];
                        rest.extend(p.by_ref());
                        params.insert(greedy.to_owned(), percent_decode(&rest.join("/"))?);
                        return t.next().is_none().then_some(params);
                    }
                    if got.is_empty() {
                        return None;
                    }
                    params.insert(name.to_owned(), percent_decode(got)?);
                } else if seg != got {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// `%XX` decoding of a path segment; `None` for a malformed escape or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A header member's value as text (`None` when absent or not visible ASCII).
pub fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: &str, path: &str, expected: Option<&[(&str, &str)]>) {
        let got = match_path(template, path);
        let expected = expected.map(|e| {
            e.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(got, expected, "{template} vs {path}");
    }

    #[test]
    fn paths_match_templates() {
        check("/createStream", "/createStream", Some(&[]));
        check("/createStream", "/createstream", None);
        check(
            "/2015-03-31/event-source-mappings/{UUID}",
            "/2015-03-31/event-source-mappings/ab%2Dc",
            Some(&[("UUID", "ab-c")]),
        );
        check(
            "/2015-03-31/event-source-mappings/{UUID}",
            "/2015-03-31/event-source-mappings/",
            None,
        );
        check("/a/{Key+}", "/a/b/c", Some(&[("Key", "b/c")]));
        check("/a/{Id}", "/a/%zz", None);
        check("/a/{Id}", "/a/%+1", None);
        check(
            "/2015-03-31/functions/{F}/invocations?x",
            "/2015-03-31/functions/f/invocations",
            Some(&[("F", "f")]),
        );
    }
}
