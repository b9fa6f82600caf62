//! GetMedia's chunks, as Kinesis Video Streams writes them: the producer
//! session's MKV header (EBML header, Segment of unknown size, Info,
//! Tracks), a `Tags` element naming the fragment
//! (`AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `..._SERVER_TIMESTAMP`,
//! `..._PRODUCER_TIMESTAMP`), the fragment's Cluster with its Timecode
//! made absolute (the producer timestamp, in the session's ticks:
//! `mkv::with_timecode`), and a
//! `Tags` element with `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW` and
//! `AWS_KINESISVIDEO_CONTINUATION_TOKEN`. Timestamps are seconds with
//! three decimals (`1726677687.758`). Pure.
//!
//! ```text
//! chunk = header · Tags{Tag{SimpleTag(name, string)×3}} · Cluster' · Tags{Tag{SimpleTag×2}}
//! element = ID · size (8-byte vint: 0x01 then 7 bytes) · payload
//! ```

/// Matroska element IDs written here.
const TAGS: u32 = 0x1254_C367;
const TAG: u32 = 0x7373;
const SIMPLE_TAG: u32 = 0x67C8;
const TAG_NAME: u32 = 0x45A3;
const TAG_STRING: u32 = 0x4487;

/// Appends an element: its ID, an 8-byte size, the payload.
fn element(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&id_bytes[skip..]);
    out.extend_from_slice(&size_vint8(payload.len() as u64));
    out.extend_from_slice(payload);
}

/// `size` as an 8-byte EBML variable-length integer.
fn size_vint8(size: u64) -> [u8; 8] {
    debug_assert!(size < (1 << 56) - 1);
    let mut b = size.to_be_bytes();
    b[0] = 0x01;
    b
}

/// A `Tags` element holding one `Tag` with these name/value pairs.
pub fn tags(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut tag = Vec::new();
    for (name, value) in pairs {
        let mut simple = Vec::new();
        element(&mut simple, TAG_NAME, name.as_bytes());
        element(&mut simple, TAG_STRING, value.as_bytes());
        element(&mut tag, SIMPLE_TAG, &simple);
    }
    let mut tags = Vec::new();
    element(&mut tags, TAG, &tag);
    let mut out = Vec::new();
    element(&mut out, TAGS, &tags);
    out
}

/// The chunk that ends a media answer on an error, as Kinesis Video writes
/// it: a `Tags` element with `AWS_KINESISVIDEO_ERROR_CODE` (a description)
/// and `AWS_KINESISVIDEO_ERROR_ID` (4500-4506 for the stream's KMS key,
/// 4000 for a fragment gone, 5000 otherwise).
pub fn error_tags(e: &riffle_protocol::Error) -> Vec<u8> {
    use riffle_protocol::ErrorCode;
    let (id, what) = match e.code {
        ErrorCode::KmsAccessDenied => (4500, "Access denied for the stream's KMS key"),
        ErrorCode::KmsDisabled => (4501, "The stream's KMS key is disabled"),
        ErrorCode::KmsInvalidState => {
            (4505, "Invalid state of the KMS key specified in the stream")
        }
        ErrorCode::KmsNotFound => (4506, "Unable to find the KMS key specified in the stream"),
        ErrorCode::ResourceNotFound => (4000, "Requested fragment is not found"),
        _ => (5000, "Internal error"),
    };
    let description = format!("{what}: {}", e.message);
    tags(&[
        ("AWS_KINESISVIDEO_ERROR_CODE", &description),
        ("AWS_KINESISVIDEO_ERROR_ID", &id.to_string()),
    ])
}

/// `ms` since the epoch as AWS writes it in tags: seconds, three decimals.
pub fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_have_their_documented_bytes() {
        // TagName and TagString: 2 + 8 + 1 = 11 bytes each; SimpleTag
        // 2 + 8 + 22 = 32; Tag 2 + 8 + 32 = 42; Tags 4 + 8 + 42.
        let expected: Vec<u8> = [
            &[0x12, 0x54, 0xC3, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 42][..],
            &[0x73, 0x73, 0x01, 0, 0, 0, 0, 0, 0, 32],
            &[0x67, 0xC8, 0x01, 0, 0, 0, 0, 0, 0, 22],
            &[0x45, 0xA3, 0x01, 0, 0, 0, 0, 0, 0, 1, b'A'],
            &[0x44, 0x87, 0x01, 0, 0, 0, 0, 0, 0, 1, b'b'],
        ]
        .concat();
        assert_eq!(tags(&[("A", "b")]), expected);
    }

    #[test]
    fn timestamps_are_seconds_with_three_decimals() {
        assert_eq!(seconds_text(1_726_677_687_758), "1726677687.758");
        assert_eq!(seconds_text(1_000), "1.000");
        assert_eq!(seconds_text(5), "0.005");
        assert_eq!(seconds_text(-1_500), "-1.500");
    }
}
