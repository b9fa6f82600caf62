//! Tests of `tail`: files written and rotated the way logrotate does (rename
//! with `create`, `copytruncate`), truncation without a copy, resuming from
//! a checkpoint after rotations while stopped, the file footer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::*;
use crate::agent::test_dir;

fn settings(dir: &Path, initial: InitialPosition) -> TailSettings {
    TailSettings {
        directory: dir.to_path_buf(),
        glob: Glob::new("app.log*").unwrap(),
        initial_position: initial,
        skip_header_lines: 0,
        multi_line_start: None,
        file_footer: None,
        hold_max: 1 << 20,
    }
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Sets a file's modification time `secs` after the epoch (rotation order).
fn age(path: &Path, secs: u64) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

/// Steps until idle; the records read, and the last record's position.
fn drain(t: &mut Tailer) -> (Vec<String>, Option<Position>) {
    let mut out = Vec::new();
    let mut last = None;
    while t
        .step(&mut |r, info| {
            last = Some(info.position(r.end));
            out.push(String::from_utf8(r.data).unwrap());
        })
        .unwrap()
        == Step::Progress
    {}
    (out, last)
}

fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i:04}\n")).collect()
}

fn expect(got: &[String], from: usize, to: usize) {
    let want: Vec<String> = (from..to).map(|i| format!("line {i:04}\n")).collect();
    assert_eq!(got, want);
}

#[test]
fn initial_position_and_growth() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(&log, &lines(0, 3));
    let mut end = Tailer::new(settings(dir.path(), InitialPosition::EndOfFile), "t", None);
    let mut start = Tailer::new(
        settings(dir.path(), InitialPosition::StartOfFile),
        "t",
        None,
    );
    assert!(drain(&mut end).0.is_empty());
    expect(&drain(&mut start).0, 0, 3);
    append(&log, &lines(3, 5));
    expect(&drain(&mut end).0, 3, 5);
    expect(&drain(&mut start).0, 3, 5);
    // Nothing to tail yet: idle, then the file appears.
    let empty = test_dir();
    let mut t = Tailer::new(
        settings(empty.path(), InitialPosition::StartOfFile),
        "t",
        None,
    );
    assert!(drain(&mut t).0.is_empty());
    append(&empty.path().join("app.log"), &lines(0, 1));
    expect(&drain(&mut t).0, 0, 1);
}

#[test]
fn rename_rotation_like_logrotate_create() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(&log, &lines(0, 10));
    age(&log, 100);
    let mut t = Tailer::new(
        settings(dir.path(), InitialPosition::StartOfFile),
        "t",
        None,
    );
    expect(&drain(&mut t).0, 0, 10);
    // Written, then rotated before the tailer looks: the old file is read to
    // its end, then the new one.
    append(&log, &lines(10, 15));
    age(&log, 100);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines(15, 20));
    age(&log, 200);
    expect(&drain(&mut t).0, 10, 20);
    // Two rotations between looks (app.log.2, app.log.1, app.log).
    append(&log, &lines(20, 22));
    age(&log, 200);
    std::fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.2")).unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines(22, 25));
    age(&log, 300);
    std::fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.3")).unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines(25, 27));
    age(&log, 400);
    expect(&drain(&mut t).0, 20, 27);
}

#[test]
fn copytruncate_rotation() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(&log, &lines(0, 10));
    let mut t = Tailer::new(
        settings(dir.path(), InitialPosition::StartOfFile),
        "t",
        None,
    );
    expect(&drain(&mut t).0, 0, 10);
    append(&log, &lines(10, 14));
    // logrotate copytruncate: copy, (the tailer may look here), truncate.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    assert!(
        drain(&mut t).0.len() == 4,
        "lines 10..14 from the original, not the copy again"
    );
    append(&log, &lines(14, 16));
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines(16, 19));
    // Lines 14 and 15 come from the copy, then the truncated file anew.
    expect(&drain(&mut t).0, 14, 19);
    append(&log, &lines(19, 20));
    expect(&drain(&mut t).0, 19, 20);
}

#[test]
fn truncation_without_a_copy_reads_from_the_start() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(&log, &lines(0, 5));
    let mut t = Tailer::new(
        settings(dir.path(), InitialPosition::StartOfFile),
        "t",
        None,
    );
    expect(&drain(&mut t).0, 0, 5);
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines(100, 102));
    expect(&drain(&mut t).0, 100, 102);
    // Truncated and rewritten past the old size: the first bytes tell.
    std::fs::write(&log, lines(200, 210)).unwrap();
    expect(&drain(&mut t).0, 200, 210);
}

#[test]
fn resumes_from_a_checkpoint_after_rotations() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(&log, &lines(0, 6));
    age(&log, 100);
    let mut t = Tailer::new(settings(dir.path(), InitialPosition::EndOfFile), "t", None);
    drain(&mut t);
    append(&log, &lines(6, 8));
    age(&log, 100);
    let (got, cp) = drain(&mut t);
    expect(&got, 6, 8);
    let cp = cp.unwrap();
    // Stopped; meanwhile written and rotated (rename).
    append(&log, &lines(8, 10));
    age(&log, 100);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines(10, 12));
    age(&log, 200);
    let mut t = Tailer::new(
        settings(dir.path(), InitialPosition::EndOfFile),
        "t",
        Some(cp.clone()),
    );
    let (got, cp2) = drain(&mut t);
    expect(&got, 8, 12);
    // Stopped again; copytruncate meanwhile.
    append(&log, &lines(12, 13));
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    age(&dir.path().join("app.log.1"), 300);
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines(13, 15));
    age(&log, 400);
    let mut t = Tailer::new(settings(dir.path(), InitialPosition::EndOfFile), "t", cp2);
    expect(&drain(&mut t).0, 12, 15);
    // A checkpoint whose file is gone: the oldest newer file, from its start.
    let gone = Position {
        path: dir.path().join("app.log.9"),
        ino: u64::MAX,
        mtime_ns: 350 * 1_000_000_000,
        ..cp
    };
    let mut t = Tailer::new(
        settings(dir.path(), InitialPosition::EndOfFile),
        "t",
        Some(gone),
    );
    expect(&drain(&mut t).0, 13, 15);
}

#[test]
fn footer_ends_a_file_and_headers_are_skipped() {
    let dir = test_dir();
    let log = dir.path().join("app.log");
    append(
        &log,
        &format!("h1\nh2\n{}END\n{}", lines(0, 2), lines(50, 51)),
    );
    let mut s = settings(dir.path(), InitialPosition::StartOfFile);
    s.skip_header_lines = 2;
    s.file_footer = Some(Regex::new(r"(?m)\A(?:END)\z").unwrap());
    let mut t = Tailer::new(s, "t", None);
    expect(&drain(&mut t).0, 0, 2);
    append(&log, &lines(51, 52));
    assert!(drain(&mut t).0.is_empty());
}
