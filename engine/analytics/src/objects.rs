//! Objects of the embedded object store (`<data-dir>/s3/<bucket>/<key>`),
//! as DiscoverInputSchema and reference tables read them: a bucket named by
//! S3's rules, a plain key, and the file, links resolved, a regular file
//! inside its bucket. Anything else is "not found", so no path outside the
//! store is ever opened or named.

use std::path::{Path, PathBuf};

/// S3's bucket naming rules: 3 to 63 of `a-z 0-9 . -`, starting and ending
/// with a letter or digit, no `..`.
fn bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !b.contains("..")
}

/// The bucket an `arn:aws:s3:::BUCKET` names.
pub(crate) fn bucket_of_arn(bucket_arn: &str) -> Result<&str, String> {
    bucket_arn
        .strip_prefix("arn:aws:s3:::")
        .filter(|b| bucket_name(b))
        .ok_or_else(|| format!("{bucket_arn} is not an S3 bucket ARN (arn:aws:s3:::BUCKET)."))
}

/// The file of object `key` in bucket `bucket_arn` of the embedded store,
/// links resolved, if it is a regular file inside the bucket.
pub(crate) fn object_path(data_dir: &Path, bucket_arn: &str, key: &str) -> Result<PathBuf, String> {
    let bucket = bucket_of_arn(bucket_arn)?;
    let not_found = || format!("Object {key} in bucket {bucket} not found.");
    if key
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part == ".")
    {
        return Err(not_found());
    }
    let root = data_dir.join("s3").join(bucket);
    match (root.canonicalize(), root.join(key).canonicalize()) {
        (Ok(root), Ok(real)) if real.starts_with(&root) && real.is_file() => Ok(real),
        _ => Err(not_found()),
    }
}
