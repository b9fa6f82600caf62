//! A stored cluster with its Timecode set to another value: GetMedia's
//! chunks carry absolute (producer) times as AWS's do. The blocks' times
//! are relative to the cluster's, so every frame moves with it. Read with
//! this directory's EBML reader; written with an 8-byte size, as the
//! splitter writes fragments.

use super::ebml::{self, id};

/// Appends an element: its ID bytes, an 8-byte size, the payload.
fn write(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    let id = id.to_be_bytes();
    let skip = id.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&id[skip..]);
    let mut size = (payload.len() as u64).to_be_bytes();
    size[0] = 0x01;
    out.extend_from_slice(&size);
    out.extend_from_slice(payload);
}

/// `cluster` (a Cluster element of known size, as PutMedia stores it) with
/// its Timecode child set to `timecode`; `None` if the bytes are not such
/// a Cluster with a Timecode (never for what PutMedia stored).
pub fn with_timecode(cluster: &[u8], timecode: u64) -> Option<Vec<u8>> {
    let head = ebml::parse_head(cluster).ok()??;
    if head.id != id::CLUSTER {
        return None;
    }
    let size = usize::try_from(head.size?).ok()?;
    let body = cluster.get(head.len..head.len.checked_add(size)?)?;
    let mut children = Vec::with_capacity(body.len() + 8);
    let mut replaced = false;
    for child in ebml::children(body) {
        let child = child.ok()?;
        if child.id == id::TIMECODE && !replaced {
            write(&mut children, id::TIMECODE, &timecode.to_be_bytes());
            replaced = true;
        } else {
            children.extend_from_slice(body.get(child.at..child.body_at + child.body.len())?);
        }
    }
    replaced.then(|| {
        let mut out = Vec::with_capacity(children.len() + 12);
        write(&mut out, id::CLUSTER, &children);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::with_timecode;

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
