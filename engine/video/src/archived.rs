//! The archived-media operations served so far (boto3
//! `kinesis-video-archived-media`): ListFragments (by producer or server
//! timestamp range, paged) and GetMediaForFragmentList (the chunks of the
//! fragments named, in the order named).
//!
//! ListFragments' token is the last number of the page before, base64;
//! fragments come in number order (AWS promises no order), never past a
//! number still being received (so a later page misses none). A stream
//! that keeps no data (`DataRetentionInHours` 0) has no fragments to list
//! or get, as on AWS; GetMedia still reads them.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::http::HttpBody;
use riffle_engine::http::service::{streamed, whole};
use riffle_engine::rt;
use serde_json::{Value, json};

use crate::index::{Entry, TimeKind};
use crate::record;
use crate::service::{Shared, invalid};

/// ListFragments' page when MaxResults is not given (the model's bound).
const LIST_PAGE_DEFAULT: usize = 1_000;

pub(crate) async fn list_fragments(s: &Shared, input: Input<'_>) -> Result<Value, Refusal> {
    let stream = s.named(input)?;
    if stream.retention_hours == 0 {
        return Ok(json!({ "Fragments": [] }));
    }
    let page = input
        .int("MaxResults")?
        .map_or(LIST_PAGE_DEFAULT, |n| n as usize);
    let (kind, start_ms, end_ms) = match input.object("FragmentSelector")? {
        None => (TimeKind::Server, i64::MIN, i64::MAX),
        Some(sel) => {
            let kind = match sel.required_str("FragmentSelectorType")? {
                "PRODUCER_TIMESTAMP" => TimeKind::Producer,
                _ => TimeKind::Server,
            };
            let range = sel
                .object("TimestampRange")?
                .ok_or_else(|| invalid("TimestampRange is required."))?;
            let start = range.timestamp_ms("StartTimestamp")?.unwrap_or(i64::MIN);
            let end = range.timestamp_ms("EndTimestamp")?.unwrap_or(i64::MAX);
            if start > end {
                return Err(invalid("StartTimestamp must not be after EndTimestamp."));
            }
            (kind, start, end)
        }
    };
    // The token is the last fragment number of the page before.
    let after = crate::page::next(input, record::parse_number)?;
    let media = s.media.index(&stream.internal);
    crate::media::prune(&s.engine, &media, &stream.internal).await;
    let index = media.index.lock().unwrap();
    let settled = index.settled_below();
    let mut chosen: Vec<&Entry> = index
        .in_range(kind, start_ms, end_ms, after)
        .take_while(|e| e.facts.number < settled)
        .take(page + 1)
        .collect();
    let more = chosen.len() > page;
    chosen.truncate(page);
    let fragments: Vec<Value> = chosen.iter().map(|e| fragment(e)).collect();
    let mut out = json!({ "Fragments": fragments });
    if more && let Some(last) = chosen.last() {
        out["NextToken"] = json!(crate::page::token(&record::number_text(last.facts.number)));
    }
    Ok(out)
}

/// A fragment as ListFragments shows it.
fn fragment(e: &Entry) -> Value {
    json!({
        "FragmentNumber": record::number_text(e.facts.number),
        "FragmentSizeInBytes": e.facts.size,
        "ProducerTimestamp": e.facts.producer_ms as f64 / 1000.0,
        "ServerTimestamp": e.facts.server_ms as f64 / 1000.0,
        "FragmentLengthInMilliseconds": e.facts.duration_ms,
    })
}

/// GetMediaForFragmentList: the chunks of the fragments named, in the
/// order named; a number this stream does not have is refused before any
/// chunk is sent.
pub(crate) async fn media_for_fragment_list(
    s: &Arc<Shared>,
    input: Input<'_>,
) -> Response<HttpBody> {
    let found = (|| {
        let stream = s.named(input)?;
        let media = s.media.index(&stream.internal);
        let kind = crate::media::ReaderKind::FragmentList;
        let place = media.reader(kind).ok_or_else(|| {
            Refusal::client(
                "ClientLimitExceededException",
                format!(
                    "Stream {} already has {} GetMediaForFragmentList connections.",
                    stream.name,
                    kind.max()
                ),
            )
        })?;
        let index = media.index.lock().unwrap();
        let entries = input
            .string_list("Fragments")?
            .iter()
            .map(|text| {
                record::parse_number(text)
                    .filter(|_| stream.retention_hours > 0)
                    .and_then(|n| index.get(n).copied())
                    .ok_or_else(|| {
                        Refusal::new(
                            StatusCode::NOT_FOUND,
                            "ResourceNotFoundException",
                            format!("Fragment {text} of stream {} was not found.", stream.name),
                        )
                    })
            })
            .collect::<Result<Vec<Entry>, Refusal>>()?;
        drop(index);
        Ok::<_, Refusal>((stream, entries, place))
    })();
    let (stream, entries, place) = match found {
        Ok(f) => f,
        Err(r) => return whole(r.to_rest_response()),
    };
    let (tx, resp) = streamed(StatusCode::OK, "video/webm", 2);
    let s = s.clone();
    rt::spawn(async move {
        let _place = place;
        // The last header read (a session's fragments share one).
        let mut last: Option<(u64, u64, Bytes)> = None;
        for e in entries {
            let header = match &last {
                Some((at, scale_ns, h)) if *at == e.facts.header_offset => {
                    Ok((*scale_ns, h.clone()))
                }
                _ => crate::read::header(&s.engine, &stream.internal, e.facts.header_offset).await,
            };
            let chunk = match header {
                Ok((scale_ns, header)) => {
                    last = Some((e.facts.header_offset, scale_ns, header.clone()));
                    crate::read::cluster(&s.engine, &stream.internal, &e)
                        .await
                        .map(|c| crate::get_media::compose(&e, scale_ns, &header, &c, rt::now_ms()))
                }
                Err(err) => Err(err),
            };
            match chunk {
                Ok(c) => {
                    if !tx.send(Bytes::from(c)).await {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(
                        "video stream {}: GetMediaForFragmentList: {}",
                        stream.name,
                        err.message
                    );
                    // The client is told why the answer ends.
                    let _ = tx.send(Bytes::from(crate::chunk::error_tags(&err))).await;
                    return;
                }
            }
        }
    });
    resp
}
