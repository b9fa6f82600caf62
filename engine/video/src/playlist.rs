//! HLS playlists and DASH manifests for a playback session, as text. Pure:
//! the session's fragments (chosen by `playback.rs`) and what the tracks
//! say in, the playlist out.
//!
//! One media playlist (or Representation) carries every track muxed in
//! fMP4 (CMAF), as Kinesis Video's HLS serves a stream's video and audio.
//! A new producer session (another MKV header, by content) gets its own init segment:
//! `#EXT-X-MAP` again in HLS (with a discontinuity), a new Period in DASH.

use std::fmt::Write as _;

use crate::index::Entry;
use crate::mkv::Track;
use crate::timeline::Period;

/// Where discontinuity tags go (HLS's `DiscontinuityMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discontinuity {
    Always,
    Never,
    /// Where fragments leave a gap or overlap of more than 50 ms, or the
    /// producer session changes.
    OnDiscontinuity,
}

/// A gap or overlap above this between fragments is a discontinuity.
const GAP_MS_MAX: i64 = 50;

/// One fragment as a playlist lists it.
#[derive(Clone, Debug)]
pub struct Item {
    pub entry: Entry,
    /// Its media sequence number in this session.
    pub sequence: u64,
    /// Its Period on a live DASH session's timeline (`timeline.rs`),
    /// fixed when first listed, so a live manifest stays put across
    /// reloads.
    pub period: Period,
    /// Its producer session: its MKV header by content (a session writes
    /// its header again every 10 minutes: the same bytes, one session).
    pub session: u64,
}

/// What the URLs of a session look like: `{base}{file}?SessionToken={token}`.
/// `track`: the segments of one track only (DASH's adaptation sets).
pub struct Urls<'a> {
    pub token: &'a str,
    pub track: Option<u64>,
}

impl Urls<'_> {
    fn track_param(&self) -> String {
        self.track
            .map_or(String::new(), |t| format!("&TrackNumber={t}"))
    }
    /// A session's segments are named by their sequence numbers (short
    /// URLs: ffmpeg's DASH reader sizes its URL buffer by the manifest's).
    pub fn init(&self, item: &Item) -> String {
        format!(
            "getMP4InitFragment.mp4?SessionToken={}&SequenceNumber={}{}",
            self.token,
            item.sequence,
            self.track_param()
        )
    }
    pub fn media(&self, item: &Item) -> String {
        format!(
            "getMP4MediaFragment.mp4?SessionToken={}&SequenceNumber={}{}",
            self.token,
            item.sequence,
            self.track_param()
        )
    }
    /// `media` for a DASH template: `$Number$` is the sequence number.
    pub fn media_template(&self) -> String {
        format!(
            "getMP4MediaFragment.mp4?SessionToken={}&SequenceNumber=$Number${}",
            self.token,
            self.track_param()
        )
    }
    pub fn media_playlist(&self) -> String {
        format!("getHLSMediaPlaylist.m3u8?SessionToken={}", self.token)
    }
}

/// RFC 6381 codec names of the tracks (H.264 from its avcC profile and
/// level, AAC from its object type; H.265 as `hvc1`).
pub fn codecs(tracks: &[Track]) -> String {
    let names: Vec<String> = tracks
        .iter()
        .filter_map(|t| {
            let cpd = t.codec_private.as_deref().unwrap_or(&[]);
            match t.codec_id.as_str() {
                "V_MPEG4/ISO/AVC" => cpd
                    .get(1..4)
                    .map(|p| format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2])),
                "V_MPEGH/ISO/HEVC" => Some("hvc1".to_string()),
                "A_AAC" => Some(format!(
                    "mp4a.40.{}",
                    cpd.first().map_or(2, |b| (b >> 3).max(1))
                )),
                _ => None,
            }
        })
        .collect();
    names.join(",")
}

/// The video track's size, if any.
fn resolution(tracks: &[Track]) -> Option<(u64, u64)> {
    tracks
        .iter()
        .find(|t| t.track_type == 1)
        .and_then(|t| Some((t.pixel_width?, t.pixel_height?)))
}

/// Bits a second the fragments need at most.
fn bandwidth(items: &[Item]) -> u64 {
    items
        .iter()
        .map(|i| {
            u64::from(i.entry.facts.size) * 8 * 1000 / u64::from(i.entry.facts.duration_ms.max(1))
        })
        .max()
        .unwrap_or(1)
        .max(1)
}

pub fn hls_master(tracks: &[Track], items: &[Item], urls: &Urls<'_>) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", bandwidth(items));
    let codecs = codecs(tracks);
    if !codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{codecs}\"");
    }
    if let Some((w, h)) = resolution(tracks) {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    let _ = write!(out, "\n{}\n", urls.media_playlist());
    out
}

/// `ms` since the epoch as ISO 8601 with milliseconds, UTC.
pub fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (y, m, d) = riffle_protocol::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// The media playlist. `ended`: the session's fragments are all listed
/// (`#EXT-X-ENDLIST`, ON_DEMAND).
pub fn hls_media(
    items: &[Item],
    urls: &Urls<'_>,
    discontinuity: Discontinuity,
    show_time: bool,
    ended: bool,
) -> String {
    let target = items
        .iter()
        .map(|i| u64::from(i.entry.facts.duration_ms).div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}",
        items.first().map_or(0, |i| i.sequence)
    );
    if discontinuity == Discontinuity::Always {
        // Every boundary is one: as many went by as sequence numbers did.
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            items.first().map_or(0, |i| i.sequence)
        );
    }
    if ended {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let mut prev: Option<&Item> = None;
    for item in items {
        let e = &item.entry;
        let new_header = prev.is_none_or(|p| p.session != item.session);
        if let Some(p) = prev {
            let gap = e.facts.producer_ms
                - (p.entry.facts.producer_ms + i64::from(p.entry.facts.duration_ms));
            let mark = match discontinuity {
                Discontinuity::Always => true,
                Discontinuity::Never => false,
                Discontinuity::OnDiscontinuity => new_header || gap.abs() > GAP_MS_MAX,
            };
            if mark || new_header {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
        }
        if new_header {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", urls.init(item));
        }
        if show_time {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                iso8601(e.facts.producer_ms)
            );
        }
        let _ = writeln!(
            out,
            "#EXTINF:{:.3},",
            f64::from(e.facts.duration_ms) / 1000.0
        );
        let _ = writeln!(out, "{}", urls.media(item));
        prev = Some(item);
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// `ms` as an ISO 8601 duration (`PT4.000S`).
fn duration(ms: i64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// A manifest's Periods: runs of consecutive items of one producer
/// session. Live: the items of each of the timeline's Periods, in the order
/// of their starts.
fn runs(items: &[Item], live: bool) -> Vec<Vec<&Item>> {
    let mut runs: Vec<Vec<&Item>> = Vec::new();
    for item in items {
        let found = if live {
            runs.iter_mut()
                .find(|run| run[0].period.id == item.period.id)
        } else {
            runs.last_mut().filter(|run| run[0].session == item.session)
        };
        match found {
            Some(run) => run.push(item),
            None => runs.push(vec![item]),
        }
    }
    if live {
        runs.sort_by_key(|run| run[0].period.id);
    }
    runs
}

/// The DASH manifest: a Period per producer session, and in it an
/// AdaptationSet per track (video, audio: players read one track per
/// Representation), each a SegmentList of the session's fragments. `live`:
/// a dynamic manifest the player reloads, whose timeline is available from
/// this time (ms since the epoch, the server's clock) and stays put across
/// reloads: the items' Periods, segments at their producer times (as
/// their `tfdt`s) from the Period's first (presentationTimeOffset). A
/// static manifest's timeline is its fragments' durations end to end, a
/// Period per run of one producer session.
pub fn dash_mpd(
    tracks: &[Track],
    items: &[Item],
    token: &str,
    base_url: &str,
    live: Option<i64>,
    now_ms: i64,
) -> String {
    let total: i64 = items
        .iter()
        .map(|i| i64::from(i.entry.facts.duration_ms))
        .sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" minBufferTime=\"PT2S\"",
    );
    if let Some(available_ms) = live {
        // Back to the earliest segment listed.
        let depth = items
            .iter()
            .map(|i| i.period.at(i.entry.facts.producer_ms))
            .min()
            .map_or(0, |first| {
                now_ms.saturating_sub(available_ms).saturating_sub(first)
            });
        let _ = write!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"PT1S\" timeShiftBufferDepth=\"{}\"",
            iso8601(available_ms),
            iso8601(now_ms),
            duration(depth.max(1000))
        );
    } else {
        let _ = write!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(total)
        );
    }
    out.push_str(">\n");
    // Absolute: players resolve the segments against it (and ffmpeg sizes
    // its URL buffer by it).
    let _ = writeln!(out, "  <BaseURL>{}</BaseURL>", xml_escape(base_url));
    if live.is_some() && items.is_empty() {
        // Nothing placed yet: an MPD has a Period.
        out.push_str("  <Period id=\"waiting\" start=\"PT0S\"/>\n");
    }
    let mut start_ms = 0i64;
    for (period, run) in runs(items, live.is_some()).into_iter().enumerate() {
        let run_ms: i64 = run
            .iter()
            .map(|it| i64::from(it.entry.facts.duration_ms))
            .sum();
        // Live: a Period stays where the timeline placed it.
        let (period_id, period_start) = match live {
            Some(_) => (run[0].period.id, run[0].period.start_ms),
            None => (u32::try_from(period).unwrap_or(u32::MAX), start_ms),
        };
        let _ = writeln!(
            out,
            "  <Period id=\"{period_id}\" start=\"{}\">",
            duration(period_start)
        );
        for track in tracks {
            let audio = track.track_type == 2;
            let urls = Urls {
                token,
                track: Some(track.number),
            };
            let _ = write!(
                out,
                "    <AdaptationSet mimeType=\"{}\" segmentAlignment=\"true\">\n      <Representation id=\"{period_id}-{}\" bandwidth=\"{}\"",
                if audio { "audio/mp4" } else { "video/mp4" },
                track.number,
                bandwidth(items)
            );
            let codecs = codecs(std::slice::from_ref(track));
            if !codecs.is_empty() {
                let _ = write!(out, " codecs=\"{codecs}\"");
            }
            if let (false, Some(w), Some(h)) = (audio, track.pixel_width, track.pixel_height) {
                let _ = write!(out, " width=\"{w}\" height=\"{h}\"");
            }
            out.push_str(">\n");
            // Live, a template numbered by the sequence numbers (players
            // follow a sliding window by number and time); otherwise (or
            // when a run's numbers have gaps) the list of segment URLs.
            let consecutive = run.windows(2).all(|w| w[1].sequence == w[0].sequence + 1);
            let template = live.is_some() && consecutive;
            if template {
                let _ = writeln!(
                    out,
                    "        <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{}\" startNumber=\"{}\" initialization=\"{}\" media=\"{}\">",
                    run[0].period.anchor_ms,
                    run[0].sequence,
                    xml_escape(&urls.init(run[0])),
                    xml_escape(&urls.media_template())
                );
            } else {
                match live {
                    Some(_) => {
                        let _ = writeln!(
                            out,
                            "        <SegmentList timescale=\"1000\" presentationTimeOffset=\"{}\">",
                            run[0].period.anchor_ms
                        );
                    }
                    None => out.push_str("        <SegmentList timescale=\"1000\">\n"),
                }
                let _ = writeln!(
                    out,
                    "          <Initialization sourceURL=\"{}\"/>",
                    xml_escape(&urls.init(run[0]))
                );
            }
            out.push_str("          <SegmentTimeline>\n");
            let mut t = 0i64;
            for (k, it) in run.iter().enumerate() {
                let mut d = i64::from(it.entry.facts.duration_ms);
                if live.is_some() {
                    // Producer times (media time, as the segments' tfdt),
                    // from the Period's presentationTimeOffset; a duration
                    // (its frames' average) never runs into the next.
                    t = it.entry.facts.producer_ms;
                    if let Some(next) = run.get(k + 1) {
                        d = d.min(next.entry.facts.producer_ms.saturating_sub(t));
                    }
                }
                let _ = writeln!(out, "            <S t=\"{t}\" d=\"{d}\"/>");
                t += d;
            }
            out.push_str("          </SegmentTimeline>\n");
            if template {
                out.push_str("        </SegmentTemplate>\n");
            } else {
                for it in &run {
                    let _ = writeln!(
                        out,
                        "          <SegmentURL media=\"{}\"/>",
                        xml_escape(&urls.media(it))
                    );
                }
                out.push_str("        </SegmentList>\n");
            }
            out.push_str("      </Representation>\n    </AdaptationSet>\n");
        }
        out.push_str("  </Period>\n");
        start_ms += run_ms;
    }
    if live.is_some() {
        // The server's clock, for players whose own clock is off.
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
            iso8601(now_ms)
        );
    }
    out.push_str("</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FragmentFacts;

    fn item(n: u128, header: u64, producer_ms: i64, sequence: u64) -> Item {
        Item {
            entry: Entry {
                facts: FragmentFacts {
                    number: n,
                    header_offset: header,
                    producer_ms,
                    server_ms: producer_ms,
                    duration_ms: 1000,
                    size: 125_000,
                    timecode: 0,
                },
                offset: 0,
                part_count: 1,
            },
            sequence,
            period: Period::default(),
            session: header,
        }
    }

    #[test]
    fn a_media_playlist_lists_each_fragment_with_its_init() {
        let items = [item(1, 0, 0, 7), item(2, 0, 1000, 8), item(3, 9, 5000, 9)];
        let urls = Urls {
            token: "T",
            track: None,
        };
        let text = hls_media(&items, &urls, Discontinuity::OnDiscontinuity, false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "#EXTM3U",
                "#EXT-X-VERSION:7",
                "#EXT-X-TARGETDURATION:1",
                "#EXT-X-MEDIA-SEQUENCE:7",
                "#EXT-X-PLAYLIST-TYPE:VOD",
            ]
        );
        // One init per producer session, a discontinuity where the third
        // fragment's session (and a 3 s gap) begins; none between 1 and 2.
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert!(
            text.contains(
                "#EXTINF:1.000,\ngetMP4MediaFragment.mp4?SessionToken=T&SequenceNumber=8\n"
            )
        );
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        let always = hls_media(&items, &urls, Discontinuity::Always, true, false);
        assert!(always.contains("#EXT-X-DISCONTINUITY-SEQUENCE:7\n"));
        assert_eq!(always.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
        assert!(always.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:01.000Z"));
        assert!(!always.contains("ENDLIST"));
    }

    #[test]
    fn codec_names_come_from_the_codec_private_data() {
        let track = |codec_id: &str, cpd: &[u8]| Track {
            number: 1,
            uid: 1,
            track_type: if codec_id.starts_with('V') { 1 } else { 2 },
            codec_id: codec_id.into(),
            codec_private: Some(bytes::Bytes::copy_from_slice(cpd)),
            pixel_width: Some(320),
            pixel_height: Some(240),
            sampling_frequency: None,
            channels: None,
        };
        let tracks = [
            track("V_MPEG4/ISO/AVC", &[1, 0x64, 0x00, 0x1E, 0xFF]),
            track("A_AAC", &[0x12, 0x10]),
        ];
        assert_eq!(codecs(&tracks), "avc1.64001e,mp4a.40.2");
        let urls = Urls {
            token: "T",
            track: None,
        };
        let master = hls_master(&tracks, &[item(1, 0, 0, 0)], &urls);
        assert!(
            master
                .contains("BANDWIDTH=1000000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=320x240")
        );
        assert_eq!(iso8601(1_726_677_687_758), "2024-09-18T16:41:27.758Z");
    }

    #[test]
    fn a_manifest_has_a_period_per_producer_session() {
        let items = [item(1, 0, 0, 0), item(2, 0, 1000, 1), item(3, 9, 5000, 2)];
        let track = |number, track_type| Track {
            number,
            uid: number,
            track_type,
            codec_id: "A_AAC".into(),
            codec_private: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        };
        let mpd = dash_mpd(
            &[track(1, 1), track(2, 2)],
            &items,
            "T",
            "http://h/dash/v1/",
            None,
            0,
        );
        assert_eq!(mpd.matches("<Period ").count(), 2);
        // A set per track in each period, its segments of that track only.
        assert_eq!(mpd.matches("<AdaptationSet ").count(), 4);
        assert!(mpd.contains("mimeType=\"audio/mp4\""));
        assert!(mpd.contains("&amp;TrackNumber=2\"/>"));
        assert!(mpd.contains("type=\"static\" mediaPresentationDuration=\"PT3.000S\""));
        assert!(mpd.contains("<Period id=\"1\" start=\"PT2.000S\">"));
        assert!(mpd.contains("SessionToken=T&amp;SequenceNumber=2&amp;TrackNumber=2"));
    }

    #[test]
    fn a_live_manifest_keeps_its_timeline_as_the_window_slides() {
        let track = Track {
            number: 1,
            uid: 1,
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: None,
            pixel_width: Some(320),
            pixel_height: Some(180),
            sampling_frequency: None,
            channels: None,
        };
        // Fragment k starts at producer time 10 + k s; a second producer
        // session (header 9) begins with fragment 4, its Period at 4 s.
        let at = |seq: u64, header: u64| Item {
            period: match header {
                0 => Period {
                    id: 0,
                    start_ms: 0,
                    anchor_ms: 10_000,
                },
                _ => Period {
                    id: 1,
                    start_ms: 4000,
                    anchor_ms: 14_000,
                },
            },
            ..item(u128::from(seq) + 1, header, 10_000 + seq as i64 * 1000, seq)
        };
        let mpd = |items: &[Item]| {
            dash_mpd(
                std::slice::from_ref(&track),
                items,
                "T",
                "http://h/",
                Some(50_000),
                60_000,
            )
        };
        let first = mpd(&[at(0, 0), at(1, 0), at(2, 0)]);
        let later = mpd(&[at(2, 0), at(3, 0), at(4, 9)]);
        for m in [&first, &later] {
            assert!(
                m.contains("type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:50.000Z\"")
            );
            assert!(m.contains("<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"1970-01-01T00:01:00.000Z\"/>"));
            // Fragment 2 at its producer time (its tfdt) in both.
            assert!(m.contains("<S t=\"12000\" d=\"1000\"/>"));
        }
        // Numbered by sequence numbers, from the Period's first producer time.
        assert!(later.contains("<Period id=\"0\" start=\"PT0.000S\">"));
        assert!(later.contains(
            "<SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"10000\" startNumber=\"2\""
        ));
        assert!(later.contains("SequenceNumber=$Number$&amp;TrackNumber=1\">"));
        // The new producer session: a Period of its own, where it began.
        assert!(later.contains("<Period id=\"1\" start=\"PT4.000S\">"));
        assert!(later.contains("presentationTimeOffset=\"14000\" startNumber=\"4\""));
        assert!(later.contains("<S t=\"14000\" d=\"1000\"/>"));
    }

    #[test]
    fn a_live_manifest_shows_each_period_once_in_order() {
        let track = Track {
            number: 1,
            uid: 1,
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        };
        // Fragment `n` (sequence `seq`) at producer time `at_ms`, in
        // Period `id` that starts at id s with producer time id s.
        let on = |id: u32, n: u128, header: u64, seq: u64, at_ms: i64| Item {
            period: Period {
                id,
                start_ms: i64::from(id) * 1000,
                anchor_ms: i64::from(id) * 1000,
            },
            ..item(n, header, at_ms, seq)
        };
        // Period 1 (camera 7) between two of camera 0's; in Period 2 a
        // sequence number is not listed (camera 7's fragment waiting), and
        // the first fragment's duration (1 s) runs past the next's start.
        let items = [
            on(0, 1, 0, 0, 0),
            on(1, 2, 7, 1, 1000),
            on(2, 3, 0, 2, 2000),
            on(2, 5, 0, 4, 2900),
        ];
        let m = dash_mpd(
            std::slice::from_ref(&track),
            &items,
            "T",
            "http://h/",
            Some(0),
            5000,
        );
        assert_eq!(m.matches("<Period ").count(), 3);
        let at = |id: &str| m.find(&format!("<Period id=\"{id}\"")).unwrap();
        assert!(at("0") < at("1") && at("1") < at("2"));
        assert!(m.contains("<Period id=\"2\" start=\"PT2.000S\">"));
        // Back to the first segment listed: 5 s.
        assert!(m.contains("timeShiftBufferDepth=\"PT5.000S\""));
        // Sequence numbers 2 and 4 are not a template's run: listed.
        assert!(m.contains("SequenceNumber=2&amp;TrackNumber=1\"/>"));
        assert!(m.contains("SequenceNumber=4&amp;TrackNumber=1\"/>"));
        assert_eq!(m.matches("<SegmentTemplate ").count(), 2);
        assert!(m.contains("<S t=\"2000\" d=\"900\"/>\n            <S t=\"2900\" d=\"1000\"/>"));
        // Nothing placed yet: a Period all the same (an MPD needs one).
        let empty = dash_mpd(
            std::slice::from_ref(&track),
            &[],
            "T",
            "http://h/",
            Some(0),
            5000,
        );
        assert!(empty.contains("type=\"dynamic\""));
        assert!(empty.contains("<Period id=\"waiting\" start=\"PT0S\"/>"));
    }
}
