//! The MP4 writer checked by the real ffprobe and ffmpeg: each source MKV
//! (the fixtures in tests/data, plus two made here by ffmpeg: H.264 with
//! B-frames and H.265) is split with `mkv::Splitter`, read with
//! `mkv::blocks`, and written as (1) init + media segments concatenated,
//! (2) the same as an HLS playlist, (3) a whole MP4, (4) a whole MP4 with
//! co64. Each must give ffprobe the source's codecs, sizes, frame counts
//! and packet times, and decode with no error output. Without ffprobe or
//! ffmpeg on the PATH the checks print a note and are skipped.
//!
//! The files go to `$TMPDIR/riffle-mp4-<pid>-<case>/`, removed when a case
//! passes; `RIFFLE_KEEP_MP4=1` keeps them (to try in other players).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tests::paths;
use super::whole::whole_mp4_with;
use super::{init_segment, media_segment, track_starts, whole_mp4};
use crate::mkv::{Block, Event, Header, SplitLimits, Splitter, blocks};

enum Source {
    /// A file in tests/data.
    Fixture(&'static [u8]),
    /// Made by `ffmpeg -hide_banner -v error TESTSRC <codec args> -pix_fmt
    /// yuv420p -f matroska -live 1 <out>`.
    Ffmpeg(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    source: Source,
    /// Frames are reordered (B-frames): composition offsets go negative.
    reordered: bool,
}

/// 3 s of 160x120 testsrc at 10 fps, as the fixtures.
const TESTSRC: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=160x120:rate=10",
    "-t",
    "3",
];

const CASES: &[Case] = &[
    Case {
        name: "testsrc-3s",
        reordered: false,
        source: Source::Fixture(include_bytes!("../../tests/data/testsrc-3s.mkv")),
    },
    Case {
        name: "testsrc-3s-nonlive",
        reordered: false,
        source: Source::Fixture(include_bytes!("../../tests/data/testsrc-3s-nonlive.mkv")),
    },
    Case {
        name: "testsrc-aac-3s",
        reordered: false,
        source: Source::Fixture(include_bytes!("../../tests/data/testsrc-aac-3s.mkv")),
    },
    Case {
        name: "gst-streamable-3s",
        reordered: false,
        source: Source::Fixture(include_bytes!("../../tests/data/gst-streamable-3s.mkv")),
    },
    Case {
        name: "h264-bframes",
        reordered: true,
        source: Source::Ffmpeg(&[
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-keyint_min",
            "10",
            "-sc_threshold",
            "0",
            "-bf",
            "2",
        ]),
    },
    Case {
        name: "h265",
        reordered: true, // x265 uses B-frames by default
        source: Source::Ffmpeg(&[
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=10:min-keyint=10:scenecut=0:log-level=error",
        ]),
    },
];

/// Runs a tool; `None` when it is not installed.
fn run(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{tool}: {e}"),
    }
}

/// What ffprobe says of a file: format name, duration, and per stream
/// "codec WxH frames" (e.g. "h264 160x120 30", "aac 45").
#[derive(Debug, PartialEq)]
struct Probe {
    format: String,
    duration: f64,
    streams: Vec<String>,
}

fn probe(path: &Path) -> Option<Probe> {
    let path = path.to_str().unwrap();
    let entries = "stream=codec_name,width,height,nb_read_frames:format=format_name,duration";
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            entries,
            "-of",
            "json",
            path,
        ],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffprobe {path}: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let size = match (s["width"].as_u64(), s["height"].as_u64()) {
                (Some(w), Some(h)) => format!(" {w}x{h}"),
                _ => String::new(),
            };
            format!(
                "{}{size} {}",
                s["codec_name"].as_str().unwrap(),
                s["nb_read_frames"].as_str().unwrap()
            )
        })
        .collect();
    Some(Probe {
        format: json["format"]["format_name"].as_str().unwrap().to_string(),
        duration: json["format"]["duration"]
            .as_str()
            .map_or(f64::NAN, |d| d.parse().unwrap()),
        streams,
    })
}

/// Each stream's packet presentation times (ms, sorted), as ffprobe reads them.
fn packet_times(path: &Path) -> Option<Vec<Vec<i64>>> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    )?;
    let mut streams: Vec<Vec<i64>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (index, time) = line.split_once(',').unwrap();
        let index: usize = index.parse().unwrap();
        let ms = (time.parse::<f64>().unwrap() * 1000.0).round() as i64;
        streams.resize_with(streams.len().max(index + 1), Vec::new);
        streams[index].push(ms);
    }
    streams.iter_mut().for_each(|s| s.sort_unstable());
    Some(streams)
}

/// `ffmpeg -v error <input args> -f null -`: must exit 0 and say nothing.
fn ffmpeg_clean(args: &[&str]) -> Option<String> {
    let all = [&["-hide_banner", "-v", "error"], args, &["-f", "null", "-"]].concat();
    let out = run("ffmpeg", &all)?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg {args:?}: {stderr}"
    );
    Some(stderr)
}

fn split(upload: &[u8]) -> (Header, Vec<Vec<Block>>) {
    let mut splitter = Splitter::new(SplitLimits::AWS);
    let mut events = Vec::new();
    splitter.push(upload, &mut events).unwrap();
    splitter.finish(&mut events).unwrap();
    let mut header = None;
    let mut fragments = Vec::new();
    for event in events {
        match event {
            Event::Header(h) => header = Some(h),
            Event::Fragment(f) => fragments.push(blocks(&f.bytes).unwrap()),
            Event::FragmentStarted { .. } => {}
        }
    }
    (header.unwrap(), fragments)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("riffle-mp4-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The source's bytes; `None` (after a note) when ffmpeg is needed and missing.
fn source_bytes(case: &Case, dir: &Path) -> Option<Vec<u8>> {
    match case.source {
        Source::Fixture(bytes) => Some(bytes.to_vec()),
        Source::Ffmpeg(args) => {
            let out = dir.join("source.mkv");
            let all = [
                &["-hide_banner", "-v", "error"][..],
                TESTSRC,
                args,
                &[
                    "-pix_fmt",
                    "yuv420p",
                    "-f",
                    "matroska",
                    "-live",
                    "1",
                    out.to_str().unwrap(),
                ],
            ]
            .concat();
            let made = run("ffmpeg", &all)?;
            assert!(
                made.status.success(),
                "{}: {}",
                case.name,
                String::from_utf8_lossy(&made.stderr)
            );
            Some(std::fs::read(out).unwrap())
        }
    }
}

#[test]
fn ffprobe_reads_what_the_source_holds() {
    if run("ffprobe", &["-version"]).is_none() || run("ffmpeg", &["-version"]).is_none() {
        eprintln!("note: ffprobe/ffmpeg not installed; the MP4 files are not checked by them");
        return;
    }
    for case in CASES {
        check_case(case);
    }
}

fn check_case(case: &Case) {
    let name = case.name;
    let dir = temp_dir(name);
    let upload = source_bytes(case, &dir).expect("ffmpeg is installed");
    let source = dir.join("source.mkv");
    std::fs::write(&source, &upload).unwrap();
    let want = probe(&source).unwrap();
    let want_times = packet_times(&source).unwrap();
    eprintln!("{name}: source {want:?}");

    let (header, fragments) = split(&upload);
    let scale = header.timecode_scale_ns;
    let tracks = &header.tracks;
    assert!(
        fragments.len() >= 3,
        "{name}: {} fragments",
        fragments.len()
    );

    // (1) init + media segments, as separate files and concatenated.
    let init = init_segment(tracks).unwrap();
    std::fs::write(dir.join("init.mp4"), &init).unwrap();
    let mut concatenated = init.clone();
    let mut playlist = String::new();
    let mut target = 0f64;
    for (i, blocks) in fragments.iter().enumerate() {
        let next = fragments
            .get(i + 1)
            .map(|b| track_starts(b))
            .unwrap_or_default();
        let segment = media_segment(i as u32 + 1, tracks, blocks, scale, &next).unwrap();
        assert_eq!(paths(&segment)[0], "moof");
        std::fs::write(dir.join(format!("seg{}.m4s", i + 1)), &segment).unwrap();
        concatenated.extend_from_slice(&segment);
        let start = blocks.iter().map(|b| b.time).min().unwrap();
        let end = match next.iter().map(|&(_, t)| t).min() {
            Some(next) => next,
            None => blocks.iter().map(|b| b.time).max().unwrap() + 100, // 10 fps
        };
        let seconds = (end - start) as f64 * scale as f64 / 1e9;
        target = target.max(seconds.ceil());
        playlist.push_str(&format!("#EXTINF:{seconds:.3},\nseg{}.m4s\n", i + 1));
    }
    let fmp4 = dir.join("fragmented.mp4");
    std::fs::write(&fmp4, &concatenated).unwrap();
    let got = probe(&fmp4).unwrap();
    eprintln!("{name}: init+segments {got:?}");
    assert_eq!(got.streams, want.streams, "{name}: init + segments");
    // ffmpeg reads fragments with negative composition offsets (B-frames)
    // with every time raised by the largest one's magnitude, as it reads its
    // own `-movflags negative_cts_offsets` output (players apply the signed
    // offsets as written). So: the source's times, all shifted the same,
    // and not at all without reordering.
    let got_times = packet_times(&fmp4).unwrap();
    let shift = got_times[0][0] - want_times[0][0];
    assert_eq!(shift > 0, case.reordered, "{name}: shift {shift} ms");
    let shifted: Vec<Vec<i64>> = want_times
        .iter()
        .map(|s| s.iter().map(|t| t + shift).collect())
        .collect();
    assert_eq!(got_times, shifted, "{name}: init + segments");
    ffmpeg_clean(&["-i", fmp4.to_str().unwrap()]).unwrap();

    // (2) HLS: the playlist plays (stream copy), ffprobe sees the streams.
    let m3u8 = dir.join("playlist.m3u8");
    std::fs::write(
        &m3u8,
        format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n{playlist}#EXT-X-ENDLIST\n"
        ),
    )
    .unwrap();
    ffmpeg_clean(&["-i", m3u8.to_str().unwrap(), "-c", "copy"]).unwrap();
    let hls = probe(&m3u8).unwrap();
    eprintln!("{name}: hls {hls:?}");
    assert_eq!(hls.format, "hls", "{name}");
    assert_eq!(hls.streams, want.streams, "{name}: hls");

    // (3) and (4): whole MP4s, with 32- and 64-bit chunk offsets.
    let all: Vec<Block> = fragments.concat();
    for (file, mp4) in [
        ("whole.mp4", whole_mp4(tracks, &all, scale).unwrap()),
        (
            "whole-co64.mp4",
            whole_mp4_with(tracks, &all, scale, 0).unwrap(),
        ),
    ] {
        let boxes = paths(&mp4);
        assert!(!boxes.iter().any(|p| p.contains("moof")), "{name} {file}");
        let top: Vec<&String> = boxes.iter().filter(|p| !p.contains('/')).collect();
        assert_eq!(top, ["ftyp", "moov", "mdat"], "{name} {file}");
        let path = dir.join(file);
        std::fs::write(&path, &mp4).unwrap();
        let got = probe(&path).unwrap();
        eprintln!("{name}: {file} {got:?}");
        assert_eq!(got.format, "mov,mp4,m4a,3gp,3g2,mj2", "{name} {file}");
        assert_eq!(got.streams, want.streams, "{name} {file}");
        assert!(
            (got.duration - 3.0).abs() < 0.1,
            "{name} {file}: {} s",
            got.duration
        );
        assert_eq!(packet_times(&path).unwrap(), want_times, "{name} {file}");
        ffmpeg_clean(&["-i", path.to_str().unwrap()]).unwrap();
    }
    if std::env::var_os("RIFFLE_KEEP_MP4").is_some() {
        eprintln!("{name}: kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
