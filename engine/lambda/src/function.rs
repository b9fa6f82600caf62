//! Which function a mapping invokes: `FunctionName` as an `http(s)://` URL
//! (used as given, with a synthesized ARN, docs/lambda-design.md §5.3), or a
//! name, partial ARN (`ACCOUNT:function:NAME`) or ARN that the server's
//! `[functions]` table maps to a URL (under the qualified ARN, the
//! unqualified ARN, or the bare name). Pure.

use std::collections::BTreeMap;

/// A resolved function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
    pub arn: String,
    /// Where invocations are POSTed.
    pub url: String,
    /// The name messages show (the synthesized one for a URL).
    pub name: String,
    /// The version or alias named (`$LATEST` when none): the OnFailure
    /// record's `executedVersion`.
    pub version: String,
}

/// FunctionName → function, or AWS's "Function does not exist".
pub fn resolve(
    function_name: &str,
    functions: &BTreeMap<String, String>,
    region: &str,
    account: &str,
) -> Result<Function, String> {
    if function_name.starts_with("http://") || function_name.starts_with("https://") {
        let name = url_name(function_name);
        return Ok(Function {
            arn: format!("arn:aws:lambda:{region}:{account}:function:{name}"),
            url: function_name.to_string(),
            name,
            version: "$LATEST".into(),
        });
    }
    let (arn_region, arn_account, name, qualifier) =
        parts(function_name).ok_or_else(|| format!("Function does not exist: {function_name}"))?;
    let region = arn_region.unwrap_or(region);
    let account = arn_account.unwrap_or(account);
    let unqualified = format!("arn:aws:lambda:{region}:{account}:function:{name}");
    let arn = match qualifier {
        Some(q) => format!("{unqualified}:{q}"),
        None => unqualified.clone(),
    };
    let url = [function_name, arn.as_str(), unqualified.as_str(), name]
        .iter()
        .find_map(|k| functions.get(*k))
        .cloned()
        .ok_or_else(|| {
            format!(
                "Function does not exist: {function_name} is not an http(s):// URL, and the \
                 server's [functions] table does not map it (NAME = \"http://...\")"
            )
        })?;
    Ok(Function {
        arn,
        url,
        name: name.to_string(),
        version: qualifier.unwrap_or("$LATEST").to_string(),
    })
}

/// (region, account, name, qualifier) of `NAME[:Q]`, `ACCOUNT:function:NAME[:Q]`
/// or `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:Q]`.
#[allow(clippy::type_complexity)]
fn parts(s: &str) -> Option<(Option<&str>, Option<&str>, &str, Option<&str>)> {
    let fields: Vec<&str> = s.split(':').collect();
    let (region, account, rest) = match fields.as_slice() {
        ["arn", _, "lambda", region, account, "function", rest @ ..] => {
            (Some(*region), Some(*account), rest)
        }
        [account, "function", rest @ ..] => (None, Some(*account), rest),
        rest => (None, None, rest),
    };
    let (name, qualifier) = match rest {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        _ => return None,
    };
    let valid = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    (valid(name) && qualifier.is_none_or(|q| valid(q.trim_start_matches('$'))))
        .then_some((region, account, name, qualifier))
}

/// A function name for a URL (AWS's name pattern, at most 64 characters):
/// the URL with every other character as `-`, cut to 55, then `-` and the
/// URL's FNV-1a hash, so equal URLs give equal names.
fn url_name(url: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in url.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let plain: String = url
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .take(55)
        .collect();
    format!("{plain}-{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_stable_arn_matching_awss_pattern() {
        let url = "http://127.0.0.1:9000/2015-03-31/functions/function/invocations";
        let f = resolve(url, &BTreeMap::new(), "us-east-1", "000000000000").unwrap();
        assert_eq!(f.url, url);
        assert!(
            f.arn.starts_with(
                "arn:aws:lambda:us-east-1:000000000000:function:http---127-0-0-1-9000-2015-03-31-functions-function-inv-"
            ),
            "{}",
            f.arn
        );
        assert!(f.name.len() <= 64);
        assert_eq!(
            resolve(url, &BTreeMap::new(), "us-east-1", "000000000000").unwrap(),
            f
        );
        let other = resolve(
            "http://127.0.0.1:9001/x",
            &BTreeMap::new(),
            "us-east-1",
            "000000000000",
        )
        .unwrap();
        assert_ne!(other.arn, f.arn);
    }

    #[test]
    fn names_and_arns_go_through_the_functions_table() {
        let functions: BTreeMap<String, String> = [
            ("billing".to_string(), "http://b/".to_string()),
            (
                "arn:aws:lambda:us-east-1:000000000000:function:audit:PROD".to_string(),
                "http://a/".to_string(),
            ),
        ]
        .into();
        let r = |n: &str| resolve(n, &functions, "us-east-1", "000000000000");
        let f = r("billing").unwrap();
        assert_eq!(
            (f.arn.as_str(), f.url.as_str(), f.version.as_str()),
            (
                "arn:aws:lambda:us-east-1:000000000000:function:billing",
                "http://b/",
                "$LATEST"
            )
        );
        assert_eq!(
            r("arn:aws:lambda:us-east-1:000000000000:function:billing")
                .unwrap()
                .url,
            "http://b/"
        );
        assert_eq!(r("000000000000:function:billing").unwrap().url, "http://b/");
        let q = r("audit:PROD").unwrap();
        assert_eq!((q.url.as_str(), q.version.as_str()), ("http://a/", "PROD"));
        assert_eq!(
            q.arn,
            "arn:aws:lambda:us-east-1:000000000000:function:audit:PROD"
        );
        assert!(
            r("audit")
                .unwrap_err()
                .starts_with("Function does not exist")
        );
        assert!(r("nope").is_err());
        assert!(r("a:b:c:d").is_err());
    }
}
