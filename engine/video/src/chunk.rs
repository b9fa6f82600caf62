//! GetMedia's chunks, as Kinesis Video Streams writes them: the producer
//! session's MKV header (EBML header, Segment of unknown size, Info,
//! Tracks), a `Tags` element naming the fragment
//! (`AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `..._SERVER_TIMESTAMP`,
//! `..._PRODUCER_TIMESTAMP`), the fragment's Cluster with its Timecode
//! made absolute (the producer timestamp, in the session's ticks), and a
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
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;

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

/// `ms` since the epoch as AWS writes it in tags: seconds, three decimals.
pub fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// Reads an EBML variable-length integer at `at`: (value with the length
/// marker removed, its length). `None` when cut short or invalid.
fn vint(data: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *data.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = u64::from(first) & (0xFF >> len);
    for i in 1..len {
        value = (value << 8) | u64::from(*data.get(at + i)?);
    }
    Some((value, len))
}

/// An element ID at `at` (its bytes, marker kept, as IDs are written).
fn element_id(data: &[u8], at: usize) -> Option<(u32, usize)> {
    let first = *data.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let mut id = 0u32;
    for i in 0..len {
        id = (id << 8) | u32::from(*data.get(at + i)?);
    }
    Some((id, len))
}

/// `cluster` (a stored fragment: a Cluster element of known size) with its
/// Timecode child set to `timecode`; the blocks' times are relative to it,
/// so every frame moves with it. `None` if the bytes are not such a
/// Cluster (never for what PutMedia stored).
pub fn with_timecode(cluster: &[u8], timecode: u64) -> Option<Vec<u8>> {
    let (id, id_len) = element_id(cluster, 0)?;
    let (size, size_len) = vint(cluster, id_len)?;
    let body_start = id_len + size_len;
    let body = cluster.get(body_start..body_start.checked_add(size as usize)?)?;
    if id != CLUSTER {
        return None;
    }
    let mut children = Vec::with_capacity(body.len() + 8);
    let mut at = 0;
    let mut replaced = false;
    while at < body.len() {
        let (child, child_id_len) = element_id(body, at)?;
        let (child_size, child_size_len) = vint(body, at + child_id_len)?;
        let end = (at + child_id_len + child_size_len).checked_add(child_size as usize)?;
        if end > body.len() {
            return None;
        }
        if child == TIMECODE && !replaced {
            element(&mut children, TIMECODE, &timecode.to_be_bytes());
            replaced = true;
        } else {
            children.extend_from_slice(&body[at..end]);
        }
        at = end;
    }
    if !replaced {
        return None;
    }
    let mut out = Vec::with_capacity(children.len() + 12);
    element(&mut out, CLUSTER, &children);
    Some(out)
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

    #[test]
    fn a_cluster_gets_its_absolute_timecode() {
        // Cluster(known 1-byte size) { Timecode(1 byte: 2), SimpleBlock(4 bytes) }
        let cluster = [
            0x1F, 0x43, 0xB6, 0x75, 0x89, // Cluster, size 9
            0xE7, 0x81, 0x02, // Timecode = 2
            0xA3, 0x84, 0x81, 0x00, 0x00, 0x80, // SimpleBlock track 1, +0, key
        ];
        let out = with_timecode(&cluster, 1_700_000_000_000).expect("a cluster");
        let mut expected = vec![0x1F, 0x43, 0xB6, 0x75, 0x01, 0, 0, 0, 0, 0, 0, 23];
        expected.extend_from_slice(&[0xE7, 0x01, 0, 0, 0, 0, 0, 0, 8]);
        expected.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        expected.extend_from_slice(&[0xA3, 0x84, 0x81, 0x00, 0x00, 0x80]);
        assert_eq!(out, expected);
        // Its own output reads back too.
        assert_eq!(with_timecode(&out, 7).map(|o| o.len()), Some(out.len()));
        // Not a cluster, cut short, or without a Timecode.
        assert_eq!(with_timecode(&cluster[..10], 1), None);
        assert_eq!(with_timecode(&[0x1A, 0x45, 0xDF, 0xA3, 0x80], 1), None);
        assert_eq!(with_timecode(&[0x1F, 0x43, 0xB6, 0x75, 0x80], 1), None);
    }
}
