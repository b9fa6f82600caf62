//! Reading stored media back from a video stream's internal stream: a
//! fragment's cluster from its parts, and its session's MKV header, each
//! checked against what the index says (record.rs has the layout).

use bytes::Bytes;
use riffle_engine::Engine;
use riffle_protocol::Error;
use riffle_store::iterator::IteratorToken;

use crate::index::Entry;
use crate::record::{self, Stored};

/// A cursor at `offset` of the internal stream's one shard.
fn cursor(engine: &Engine, internal: &str, offset: u64) -> Result<IteratorToken, Error> {
    Ok(IteratorToken {
        stream_id: engine.stream_id(internal)?,
        stream_name: internal.to_string(),
        shard_index: 0,
        offset,
        issued_ms: riffle_engine::rt::now_ms(),
    })
}

/// A session's header: its TimecodeScale and its MKV header.
pub(crate) async fn header(
    engine: &Engine,
    internal: &str,
    offset: u64,
) -> Result<(u64, Bytes), Error> {
    let got = engine
        .read_at(&cursor(engine, internal, offset)?, Some(1), 0)
        .await?;
    match got.records().next() {
        Some(r) if r.offset == offset => match record::parse(r.partition_key(), r.data()) {
            Some(Stored::Header { scale_ns, mkv }) => Ok((scale_ns, Bytes::copy_from_slice(mkv))),
            _ => Err(Error::internal(format!(
                "record {offset} of {internal} is not a session header"
            ))),
        },
        _ => Err(gone(internal, offset)),
    }
}

fn gone(internal: &str, offset: u64) -> Error {
    Error::not_found(format!("record {offset} of {internal} is no longer kept"))
}

/// A fragment's cluster, put together from its parts (consecutive records
/// of its number from `entry.offset` on; another session's records may lie
/// between the appends of a large fragment).
pub(crate) async fn cluster(
    engine: &Engine,
    internal: &str,
    entry: &Entry,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(entry.facts.size as usize);
    let mut next_part = 0u16;
    let mut at = cursor(engine, internal, entry.offset)?;
    // Its parts' keys begin with its number.
    let key = format!("{}.", record::number_text(entry.facts.number));
    loop {
        let want = u32::from(entry.part_count - next_part);
        let got = engine.read_at(&at, Some(want.max(1)), 0).await?;
        if next_part == 0 && got.records().next().map(|r| r.offset) != Some(entry.offset) {
            return Err(gone(internal, entry.offset));
        }
        for r in got.records() {
            if !r.partition_key().starts_with(&key) {
                continue;
            }
            match record::parse(r.partition_key(), r.data()) {
                Some(Stored::Part {
                    facts, part, bytes, ..
                }) if facts == entry.facts && part == next_part => {
                    out.extend_from_slice(bytes);
                    next_part += 1;
                    if next_part == entry.part_count {
                        return Ok(out);
                    }
                }
                _ => {
                    return Err(Error::internal(format!(
                        "fragment {key}: record {} is not its part {next_part}",
                        r.offset
                    )));
                }
            }
        }
        if got.record_count == 0 {
            return Err(Error::internal(format!(
                "fragment {key}: parts from {next_part} on are missing"
            )));
        }
        at.offset = got.next_offset();
    }
}
