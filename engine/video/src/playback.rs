//! HLS and DASH playback: GetHLSStreamingSessionURL and
//! GetDASHStreamingSessionURL make a session (kept in memory until it
//! expires; at most 10 a stream, a new one revoking the oldest) and answer
//! its URL; players then GET the session's playlist or manifest, init
//! segments and media segments under `/hls/v1/` and `/dash/v1/` with the
//! session token as their only credential (a `Route::Bearer` path: no
//! signature, as AWS's session URLs).
//!
//! Segments are fMP4 (`mp4.rs`) built from the stored fragments on each
//! request, without re-encoding; media times are the producer timestamps.
//! PlaybackMode: ON_DEMAND (the fragments in the range, at most
//! `MaxMediaPlaylistFragmentResults`, ended), LIVE (the newest fragments,
//! a playlist the player reloads), LIVE_REPLAY (from the range's start on,
//! growing as fragments are stored). Sessions do not survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use http::StatusCode;
use hyper::Response;
use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::http::HttpBody;
use riffle_engine::http::service::whole;
use riffle_engine::rt;
use serde_json::{Value, json};

use crate::index::{Entry, TimeKind};
use crate::mkv::{Block, Event, SplitLimits, Splitter, Track};
use crate::playlist::{self, Discontinuity, Item, Urls};
use crate::service::{Shared, invalid};
use crate::state::VideoStream;
use crate::timeline::{Period, Timeline};

/// AWS: 10 active sessions a stream; a new one revokes the oldest.
const SESSIONS_PER_STREAM_MAX: usize = 10;
/// AWS: a session URL lasts 300 s unless `Expires` says otherwise.
const EXPIRES_S_DEFAULT: i64 = 300;
/// AWS: playlists list 5 fragments live, 1,000 on demand, by default.
const LIVE_FRAGMENTS_DEFAULT: usize = 5;
const ON_DEMAND_FRAGMENTS_DEFAULT: usize = 1000;
/// AWS: ON_DEMAND and LIVE_REPLAY ranges end within 24 h of their start.
const RANGE_MS_MAX: i64 = 24 * 3600 * 1000;
/// AWS: a LIVE session needs a fragment from the last 30 s.
const LIVE_RECENT_MS: i64 = 30_000;

/// Where players' requests go.
pub const HLS_PREFIX: &str = "/hls/v1/";
pub const DASH_PREFIX: &str = "/dash/v1/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Live,
    LiveReplay,
    OnDemand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Hls,
    Dash,
}

/// One playback session.
struct Session {
    stream: VideoStream,
    protocol: Protocol,
    mode: Mode,
    kind: TimeKind,
    start_ms: i64,
    end_ms: i64,
    fragments_max: usize,
    discontinuity: Discontinuity,
    show_time: bool,
    expires_ms: i64,
    created_ms: i64,
    /// Media sequence numbers given so far (stable across reloads), both ways.
    sequences: BTreeMap<u128, u64>,
    numbers: BTreeMap<u64, u128>,
    /// Where a live DASH manifest shows each fragment listed.
    timeline: Timeline,
    /// Producer sessions' headers read so far: a hash of each one's bytes
    /// by its offset (a session writes its header again every 10 minutes:
    /// the same bytes, the same session).
    headers: BTreeMap<u64, u64>,
}

/// A session token: 128 bits from the operating system's generator (the
/// token is the session's only credential).
fn new_token() -> Result<String, Refusal> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                e.to_string(),
            )
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Every live session, by token.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

fn time_kind(selector: Option<Input<'_>>) -> Result<TimeKind, Refusal> {
    Ok(match selector {
        Some(s) if s.str("FragmentSelectorType")? == Some("PRODUCER_TIMESTAMP") => {
            TimeKind::Producer
        }
        _ => TimeKind::Server,
    })
}

/// GetHLSStreamingSessionURL and GetDASHStreamingSessionURL.
pub(crate) fn session_url(
    s: &Shared,
    input: Input<'_>,
    parts: &http::request::Parts,
    dash: bool,
) -> Result<Value, Refusal> {
    let stream = s.named(input)?;
    if stream.retention_hours == 0 {
        return Err(Refusal::client(
            "NoDataRetentionException",
            format!("Stream {} keeps no data.", stream.name),
        ));
    }
    let base = crate::streams::own_url(s, parts)?;
    let mode = match input.str("PlaybackMode")? {
        Some("ON_DEMAND") => Mode::OnDemand,
        Some("LIVE_REPLAY") => Mode::LiveReplay,
        _ => Mode::Live,
    };
    let selector_member = if dash {
        "DASHFragmentSelector"
    } else {
        "HLSFragmentSelector"
    };
    let selector = input.object(selector_member)?;
    let kind = time_kind(selector)?;
    let range = match selector {
        Some(sel) => sel.object("TimestampRange")?,
        None => None,
    };
    let (start_ms, end_ms) = match (mode, range) {
        (Mode::Live, Some(_)) => {
            return Err(invalid("LIVE playback takes no TimestampRange."));
        }
        (Mode::Live, None) => (i64::MIN, i64::MAX),
        (_, None) => {
            return Err(invalid(
                "ON_DEMAND and LIVE_REPLAY playback need a TimestampRange.",
            ));
        }
        (_, Some(r)) => {
            let start = r
                .timestamp_ms("StartTimestamp")?
                .ok_or_else(|| invalid("TimestampRange needs a StartTimestamp."))?;
            let end = r.timestamp_ms("EndTimestamp")?;
            let end = match (mode, end) {
                (Mode::OnDemand, None) => {
                    return Err(invalid("ON_DEMAND playback needs an EndTimestamp."));
                }
                (_, None) => i64::MAX,
                (_, Some(e)) if e < start || e.saturating_sub(start) > RANGE_MS_MAX => {
                    return Err(invalid(
                        "EndTimestamp must be after StartTimestamp and within 24 hours of it.",
                    ));
                }
                (_, Some(e)) => e,
            };
            (start, end)
        }
    };
    if !dash && input.str("ContainerFormat")? == Some("MPEG_TS") {
        return Err(invalid(
            "ContainerFormat MPEG_TS is not served by this server; use FRAGMENTED_MP4.",
        ));
    }
    let discontinuity = match input.str("DiscontinuityMode")? {
        Some("ALWAYS") => Discontinuity::Always,
        Some("NEVER") => Discontinuity::Never,
        Some(_) => Discontinuity::OnDiscontinuity,
        // AWS: ALWAYS by server timestamps, NEVER by producer timestamps.
        None if kind == TimeKind::Server => Discontinuity::Always,
        None => Discontinuity::Never,
    };
    let max_member = if dash {
        "MaxManifestFragmentResults"
    } else {
        "MaxMediaPlaylistFragmentResults"
    };
    let fragments_max = input.int(max_member)?.map_or(
        if mode == Mode::OnDemand {
            ON_DEMAND_FRAGMENTS_DEFAULT
        } else {
            LIVE_FRAGMENTS_DEFAULT
        },
        |n| n as usize,
    );
    let now = rt::now_ms();
    // AWS: no fragment in the range (or, live, in the last 30 s) is a
    // ResourceNotFoundException.
    {
        let media = s.media.index(&stream.internal);
        let index = media.index.lock().unwrap();
        let any = match mode {
            Mode::Live => index
                .last()
                .is_some_and(|e| e.facts.server_ms >= now - LIVE_RECENT_MS),
            _ => index
                .in_range(kind, start_ms, end_ms, None)
                .next()
                .is_some(),
        };
        if !any {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!(
                    "Stream {} has no fragments to play for this request.",
                    stream.name
                ),
            ));
        }
    }
    let expires = input.int("Expires")?.unwrap_or(EXPIRES_S_DEFAULT);
    let token = new_token()?;
    let session = Session {
        stream: stream.clone(),
        protocol: if dash { Protocol::Dash } else { Protocol::Hls },
        mode,
        kind,
        start_ms,
        end_ms,
        fragments_max,
        discontinuity,
        show_time: input.str("DisplayFragmentTimestamp")? == Some("ALWAYS"),
        expires_ms: now + expires * 1000,
        created_ms: now,
        sequences: BTreeMap::new(),
        numbers: BTreeMap::new(),
        timeline: Timeline::default(),
        headers: BTreeMap::new(),
    };
    {
        let mut sessions = s.sessions.0.lock().unwrap();
        sessions.retain(|_, v| v.expires_ms > now);
        let mut same: Vec<(i64, String)> = sessions
            .iter()
            .filter(|(_, v)| v.stream.id == stream.id && v.stream.name == stream.name)
            .map(|(k, v)| (v.created_ms, k.clone()))
            .collect();
        same.sort();
        while same.len() >= SESSIONS_PER_STREAM_MAX {
            let (_, oldest) = same.remove(0);
            sessions.remove(&oldest);
        }
        sessions.insert(token.clone(), session);
    }
    Ok(if dash {
        json!({ "DASHStreamingSessionURL": format!("{base}{DASH_PREFIX}getDASHManifest.mpd?SessionToken={token}") })
    } else {
        json!({ "HLSStreamingSessionURL": format!("{base}{HLS_PREFIX}getHLSMasterPlaylist.m3u8?SessionToken={token}") })
    })
}

/// A query's parameters.
fn query(parts: &http::request::Parts) -> HashMap<String, String> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<HttpBody> {
    whole(
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("a valid response"),
    )
}

fn refused(r: Refusal) -> Response<HttpBody> {
    whole(r.to_rest_response())
}

/// A player's GET under `/hls/v1/` or `/dash/v1/`.
pub(crate) async fn serve(s: &Shared, parts: &http::request::Parts) -> Response<HttpBody> {
    let q = query(parts);
    let token = q.get("SessionToken").cloned().unwrap_or_default();
    let path = parts.uri.path();
    let file = path.rsplit('/').next().unwrap_or("");
    let now = rt::now_ms();
    let segment = matches!(file, "getMP4InitFragment.mp4" | "getMP4MediaFragment.mp4");
    let sequence = q.get("SequenceNumber").and_then(|n| n.parse::<u64>().ok());
    // Under the lock: the session checked, and either the segment's
    // fragment number or the playlist's fragments; the reads after. A live
    // DASH manifest needs its producer sessions' headers: those not read
    // yet are read (outside the lock) and the fragments chosen again.
    let mut found = None;
    for _ in 0..2 {
        let (chosen, unread) = {
            let mut sessions = s.sessions.0.lock().unwrap();
            match sessions.get_mut(&token) {
                Some(session) if session.expires_ms > now && valid(s, session, path) => {
                    let internal = session.stream.internal.clone();
                    if segment {
                        let number = sequence.and_then(|seq| session.numbers.get(&seq).copied());
                        (
                            Some((Found::Segment(number), session.protocol, internal)),
                            Vec::new(),
                        )
                    } else {
                        let (chosen, unread) = choose(s, session, now);
                        (
                            Some((Found::Playlist(chosen), session.protocol, internal)),
                            unread,
                        )
                    }
                }
                _ => (None, Vec::new()),
            }
        };
        found = chosen;
        let Some((_, _, internal)) = &found else {
            break;
        };
        if unread.is_empty() {
            break;
        }
        let mut read = Vec::with_capacity(unread.len());
        for offset in unread {
            let content = match crate::read::header(&s.engine, internal, offset).await {
                Ok((scale_ns, mkv)) => {
                    let mut h = std::hash::DefaultHasher::new();
                    std::hash::Hash::hash(&(scale_ns, &mkv[..]), &mut h);
                    std::hash::Hasher::finish(&h)
                }
                // Gone with retention (its fragments stay a little longer):
                // a session of its own; only its segments fail.
                Err(_) => offset,
            };
            read.push((offset, content));
        }
        if let Some(session) = s.sessions.0.lock().unwrap().get_mut(&token) {
            session.headers.extend(read);
        }
    }
    let Some((found, protocol, internal)) = found else {
        return refused(Refusal::new(
            StatusCode::FORBIDDEN,
            "NotAuthorizedException",
            "The session token is not valid or has expired.",
        ));
    };
    let track = q.get("TrackNumber").and_then(|t| t.parse::<u64>().ok());
    match found {
        Found::Segment(number) => {
            let entry = number.and_then(|n| {
                s.media
                    .index(&internal)
                    .index
                    .lock()
                    .unwrap()
                    .get(n)
                    .copied()
            });
            let Some(entry) = entry else {
                return refused(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "No such fragment in this session.",
                ));
            };
            let built = if file == "getMP4InitFragment.mp4" {
                init_segment(s, &internal, &entry, track).await
            } else {
                // mfhd's sequence number: 1 and up.
                let mfhd = u32::try_from(sequence.unwrap_or(0) + 1).unwrap_or(u32::MAX);
                media_segment(s, &internal, &entry, mfhd, track).await
            };
            match built {
                Ok(bytes) => answer(StatusCode::OK, "video/mp4", bytes),
                Err(r) => refused(r),
            }
        }
        Found::Playlist(chosen) => {
            let urls = Urls {
                token: &token,
                track: None,
            };
            let items = &chosen.items;
            match (protocol, file) {
                (Protocol::Hls, "getHLSMasterPlaylist.m3u8")
                | (Protocol::Dash, "getDASHManifest.mpd") => {
                    let tracks = match items.first() {
                        Some(i) => match session_tracks(s, &internal, &i.entry).await {
                            Ok(t) => t,
                            Err(r) => return refused(r),
                        },
                        None => Vec::new(),
                    };
                    if protocol == Protocol::Hls {
                        let text = playlist::hls_master(&tracks, items, &urls);
                        answer(StatusCode::OK, "application/vnd.apple.mpegurl", text)
                    } else {
                        let base = match crate::streams::own_url(s, parts) {
                            Ok(b) => format!("{b}{DASH_PREFIX}"),
                            Err(r) => return refused(r),
                        };
                        let text = playlist::dash_mpd(
                            &tracks,
                            items,
                            &token,
                            &base,
                            // Live before any fragment: an empty dynamic
                            // manifest the player reloads.
                            (!chosen.ended).then(|| chosen.available_ms.unwrap_or(now)),
                            now,
                        );
                        answer(StatusCode::OK, "application/dash+xml", text)
                    }
                }
                (Protocol::Hls, "getHLSMediaPlaylist.m3u8") => {
                    let text = playlist::hls_media(
                        items,
                        &urls,
                        chosen.discontinuity,
                        chosen.show_time,
                        chosen.ended,
                    );
                    answer(StatusCode::OK, "application/vnd.apple.mpegurl", text)
                }
                _ => refused(Refusal::unknown_operation()),
            }
        }
    }
}

/// A session serves its own protocol's path, while its stream lives.
fn valid(s: &Shared, session: &Session, path: &str) -> bool {
    let prefix = match session.protocol {
        Protocol::Hls => HLS_PREFIX,
        Protocol::Dash => DASH_PREFIX,
    };
    path.starts_with(prefix)
        && s.meta
            .state()
            .streams
            .get(&session.stream.name)
            .is_some_and(|v| v.id == session.stream.id)
}

/// What a request of a session is for.
enum Found {
    /// A segment: the fragment its sequence number names, if any.
    Segment(Option<u128>),
    Playlist(Chosen),
}

/// A playlist's fragments and how to show them.
struct Chosen {
    items: Vec<Item>,
    /// When the session's timeline starts, on the server's clock (none
    /// until a listing held a fragment).
    available_ms: Option<i64>,
    /// All there will be (`#EXT-X-ENDLIST`, a static manifest).
    ended: bool,
    discontinuity: Discontinuity,
    show_time: bool,
}

/// The session's fragments now, with their sequence numbers.
/// LIVE: the newest settled ones. LIVE_REPLAY: from the range's start, as
/// far as the time since the session began reaches (AWS adds fragments as
/// their durations elapse), the newest of them; ended once that passes the
/// range's end. ON_DEMAND: the first ones of the range, ended. A live DASH
/// manifest lists those its timeline placed (`timeline.rs`). Each
/// fragment's producer session is known by its header's content: the
/// offsets of the headers not read yet come back beside.
fn choose(s: &Shared, session: &mut Session, now: i64) -> (Chosen, Vec<u64>) {
    let media = s.media.index(&session.stream.internal);
    let index = media.index.lock().unwrap();
    let settled = index.settled_below();
    let max = session.fragments_max;
    let (picked, ended): (Vec<Entry>, bool) = match session.mode {
        Mode::Live => (index.newest(max, settled), false),
        Mode::LiveReplay => {
            let reached = session
                .start_ms
                .saturating_add(now.saturating_sub(session.created_ms));
            let upto = reached.min(session.end_ms);
            let released: Vec<Entry> = index
                .in_range(session.kind, session.start_ms, upto, None)
                .take_while(|e| e.facts.number < settled)
                .copied()
                .collect();
            let from = released.len().saturating_sub(max);
            (
                released[from..].to_vec(),
                session.end_ms != i64::MAX && reached >= session.end_ms,
            )
        }
        Mode::OnDemand => (
            index
                .in_range(session.kind, session.start_ms, session.end_ms, None)
                .take_while(|e| e.facts.number < settled)
                .take(max)
                .copied()
                .collect(),
            true,
        ),
    };
    drop(index);
    let mut next = session.numbers.keys().next_back().map_or(0, |m| m + 1);
    let live_dash = session.protocol == Protocol::Dash && !ended;
    let mut unread: Vec<u64> = Vec::new();
    for e in &picked {
        let offset = e.facts.header_offset;
        if !session.headers.contains_key(&offset) && !unread.contains(&offset) {
            unread.push(offset);
        }
    }
    let periods = if live_dash {
        if let Some(first) = picked.first() {
            // A live listing goes on by number: those before never return.
            session.timeline.forget_below(first.facts.number);
        }
        if !unread.is_empty() && session.timeline.available_ms().is_none() {
            // The first manifest fixes the timeline's origin: not before
            // its fragments' headers are read.
            vec![None; picked.len()]
        } else {
            let headers = &session.headers;
            session.timeline.place(
                &picked,
                |e| headers.get(&e.facts.header_offset).copied(),
                now,
            )
        }
    } else {
        // A fragment whose header was not read yet (written since this
        // request read the others) waits for the next reload, so that its
        // tags do not change between reloads.
        picked
            .iter()
            .map(|e| {
                session
                    .headers
                    .contains_key(&e.facts.header_offset)
                    .then(Period::default)
            })
            .collect()
    };
    let mut items = Vec::with_capacity(picked.len());
    for (entry, period) in picked.into_iter().zip(periods) {
        let n = entry.facts.number;
        let sequence = match session.sequences.get(&n) {
            Some(seq) => *seq,
            None => {
                session.sequences.insert(n, next);
                session.numbers.insert(next, n);
                next += 1;
                next - 1
            }
        };
        // A fragment the live timeline has not placed is not listed yet.
        if let Some(period) = period
            && let Some(&producer_session) = session.headers.get(&entry.facts.header_offset)
        {
            items.push(Item {
                entry,
                sequence,
                period,
                session: producer_session,
            });
        }
    }
    let chosen = Chosen {
        available_ms: session.timeline.available_ms(),
        items,
        ended,
        discontinuity: session.discontinuity,
        show_time: session.show_time,
    };
    (chosen, unread)
}

fn media_error(e: crate::mp4::Mp4Error) -> Refusal {
    match e.aws_exception() {
        Some(kind) => Refusal::client(kind, e.to_string()),
        None => Refusal::client("InvalidArgumentException", e.to_string()),
    }
}

fn read_error(e: riffle_protocol::Error) -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("The fragment cannot be read: {}", e.message),
    )
}

/// A fragment's session: its TimecodeScale and tracks, its cluster.
pub(crate) async fn fragment_of(
    s: &Shared,
    internal: &str,
    e: &Entry,
) -> Result<(u64, Vec<Track>, Vec<u8>), Refusal> {
    let (scale_ns, header) = crate::read::header(&s.engine, internal, e.facts.header_offset)
        .await
        .map_err(read_error)?;
    let cluster = crate::read::cluster(&s.engine, internal, e)
        .await
        .map_err(read_error)?;
    let mut splitter = Splitter::new(SplitLimits::AWS);
    let mut events = Vec::new();
    let _ = splitter.push(&header, &mut events);
    let _ = splitter.push(&cluster, &mut events);
    let tracks = events
        .into_iter()
        .find_map(|ev| match ev {
            Event::Header(h) => Some(h.tracks),
            _ => None,
        })
        .ok_or_else(|| {
            Refusal::client(
                "InvalidArgumentException",
                "The stored header does not read.",
            )
        })?;
    Ok((scale_ns, tracks, cluster))
}

async fn session_tracks(s: &Shared, internal: &str, e: &Entry) -> Result<Vec<Track>, Refusal> {
    fragment_of(s, internal, e)
        .await
        .map(|(_, tracks, _)| tracks)
}

/// The tracks asked for: all, or the one `track` names.
fn only(tracks: Vec<Track>, track: Option<u64>) -> Result<Vec<Track>, Refusal> {
    match track {
        None => Ok(tracks),
        Some(n) => {
            let one: Vec<Track> = tracks.into_iter().filter(|t| t.number == n).collect();
            if one.is_empty() {
                return Err(invalid(format!("The session's media has no track {n}.")));
            }
            Ok(one)
        }
    }
}

async fn init_segment(
    s: &Shared,
    internal: &str,
    e: &Entry,
    track: Option<u64>,
) -> Result<Vec<u8>, Refusal> {
    let (_, tracks, _) = fragment_of(s, internal, e).await?;
    crate::mp4::init_segment(&only(tracks, track)?).map_err(media_error)
}

/// A fragment's blocks with their times moved onto the producer timeline
/// (the cluster's timecode becomes its producer timestamp).
pub(crate) fn blocks_at_producer_time(
    e: &Entry,
    scale_ns: u64,
    cluster: &[u8],
) -> Result<Vec<Block>, Refusal> {
    let mut blocks = crate::mkv::blocks(cluster)
        .map_err(|err| Refusal::client("InvalidMediaFrameException", err.to_string()))?;
    let producer_ticks = i128::from(e.facts.producer_ms) * 1_000_000 / i128::from(scale_ns.max(1));
    let shift = producer_ticks - i128::from(e.facts.timecode);
    for b in &mut blocks {
        b.time = i64::try_from(i128::from(b.time) + shift).unwrap_or(i64::MAX);
    }
    Ok(blocks)
}

async fn media_segment(
    s: &Shared,
    internal: &str,
    e: &Entry,
    sequence: u32,
    track: Option<u64>,
) -> Result<Vec<u8>, Refusal> {
    let (scale_ns, tracks, cluster) = fragment_of(s, internal, e).await?;
    let tracks = only(tracks, track)?;
    let mut blocks = blocks_at_producer_time(e, scale_ns, &cluster)?;
    blocks.retain(|b| tracks.iter().any(|t| t.number == b.track));
    crate::mp4::media_segment(sequence.max(1), &tracks, &blocks, scale_ns, &[]).map_err(media_error)
}
