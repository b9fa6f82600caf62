//! Record framing: a file's bytes cut into records as the Kinesis Agent cuts
//! them (`tailing/AbstractParser.java`, `SingleLineSplitter.java`,
//! `RegexSplitter.java`, `AbstractRecord.truncate`).
//!
//! - One line per record, its newline included; a line not ended yet waits.
//! - With `multiLineStartPattern`: a record runs from a line to the line
//!   before the next one whose start matches the pattern (the first line
//!   always belongs to the record). When the reader is at the end of the file
//!   and the bytes read end with a newline, what is pending is a record (the
//!   agent does the same: a record still being written may be cut there).
//! - `skipHeaderLines` lines are dropped when a file is read from offset 0.
//! - A record longer than the parser's buffer (`hold_max`: 5 MiB for Kinesis,
//!   4 MiB for Firehose, as the agent's buffer) is cut at that size and the
//!   rest of it discarded up to the next record: memory stays bounded.
//! - [`truncate`]: a record over the destination's limit keeps its first
//!   bytes, its last ones replaced by `truncatedRecordTerminator`.
//!
//! Pure: bytes in, records with their file offsets out.

use regex::Regex;

/// A record cut from a file: its bytes and where they were.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed {
    pub data: Vec<u8>,
    /// File offset of the record's first byte.
    pub start: u64,
    /// File offset just past the record (and past anything discarded with it).
    pub end: u64,
}

/// Cuts one file's bytes into records.
#[derive(Debug)]
pub struct Framer {
    multi_line: Option<Regex>,
    hold_max: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// Where the search for the record's end resumes (an index into `buf`).
    scan: usize,
    /// Multi-line: whether the record's first line is complete.
    first_line_done: bool,
    skip_lines: usize,
    discarding: bool,
}

impl Framer {
    pub fn new(multi_line: Option<Regex>, hold_max: usize) -> Framer {
        assert!(hold_max > 0);
        Framer {
            multi_line,
            hold_max,
            buf: Vec::new(),
            pos: 0,
            buf_start: 0,
            scan: 0,
            first_line_done: false,
            skip_lines: 0,
            discarding: false,
        }
    }

    /// Starts over at `offset` of a file (dropping what is buffered);
    /// `skip_header_lines` apply when `offset` is 0.
    pub fn reset(&mut self, offset: u64, skip_header_lines: usize) {
        self.buf.clear();
        self.pos = 0;
        self.scan = 0;
        self.buf_start = offset;
        self.first_line_done = false;
        self.discarding = false;
        self.skip_lines = if offset == 0 { skip_header_lines } else { 0 };
    }

    /// The file offset of the next byte to read.
    pub fn read_offset(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// The file offset of the first byte not yet in a record.
    pub fn consumed_offset(&self) -> u64 {
        self.buf_start + self.pos as u64
    }

    /// Bytes buffered and not yet in a record.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Adds bytes read at [`Framer::read_offset`].
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.buf_start += self.pos as u64;
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next record, if the buffered bytes hold one; `at_eof`: nothing more
    /// can be read for now.
    pub fn next(&mut self, at_eof: bool) -> Option<Framed> {
        loop {
            if self.skip_lines > 0 {
                let nl = self.find_newline(self.pos)?;
                self.pos = nl + 1;
                self.scan = self.pos;
                self.skip_lines -= 1;
                continue;
            }
            if self.discarding {
                let boundary = self.boundary(at_eof)?;
                self.pos = boundary;
                self.scan = self.pos;
                self.first_line_done = false;
                self.discarding = false;
                continue;
            }
            if let Some(end) = self.boundary(at_eof) {
                if end - self.pos > self.hold_max {
                    // Longer than the buffer: cut, the rest discarded with it.
                    let mut record = self.take(self.pos + self.hold_max);
                    record.end = self.buf_start + end as u64;
                    self.pos = end;
                    self.scan = end;
                    return Some(record);
                }
                return Some(self.take(end));
            }
            if self.buf.len() - self.pos >= self.hold_max {
                let end = self.pos + self.hold_max;
                let record = self.take(end);
                self.discarding = true;
                return Some(record);
            }
            return None;
        }
    }

    /// What is left, as a last record (the file is done with: rotated away).
    pub fn flush(&mut self) -> Option<Framed> {
        if self.discarding || self.skip_lines > 0 || self.pending() == 0 {
            self.pos = self.buf.len();
            return None;
        }
        Some(self.take(self.buf.len()))
    }

    fn take(&mut self, end: usize) -> Framed {
        let start = self.pos;
        let framed = Framed {
            data: self.buf[start..end].to_vec(),
            start: self.buf_start + start as u64,
            end: self.buf_start + end as u64,
        };
        self.pos = end;
        self.scan = end;
        self.first_line_done = false;
        framed
    }

    fn find_newline(&mut self, from: usize) -> Option<usize> {
        let from = from.max(self.scan);
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => Some(from + i),
            None => {
                self.scan = self.buf.len();
                None
            }
        }
    }

    /// The index just past the record that starts at `pos`, if it is complete.
    fn boundary(&mut self, at_eof: bool) -> Option<usize> {
        let Some(pattern) = &self.multi_line else {
            return self.find_newline(self.pos).map(|nl| nl + 1);
        };
        let pattern = pattern.clone();
        loop {
            let line_start = self.scan.max(self.pos);
            let Some(i) = self.buf[line_start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let nl = line_start + i;
            if self.first_line_done {
                let line = String::from_utf8_lossy(&self.buf[line_start..=nl]);
                if pattern.is_match(&line) {
                    return Some(line_start);
                }
            }
            self.first_line_done = true;
            self.scan = nl + 1;
        }
        if at_eof && self.first_line_done && self.buf.last() == Some(&b'\n') && !self.discarding {
            return Some(self.buf.len());
        }
        None
    }
}

/// Cuts `data` to `max_data` bytes, its last bytes replaced by `terminator`
/// (the agent's `AbstractRecord.truncate`); a record within the limit is left.
pub fn truncate(data: &mut Vec<u8>, max_data: usize, terminator: &[u8]) -> bool {
    if data.len() <= max_data {
        return false;
    }
    assert!(terminator.len() < max_data);
    data.truncate(max_data);
    let at = max_data - terminator.len();
    data[at..].copy_from_slice(terminator);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one (the last one at the end of the file) and
    /// gives the records as text with their offsets.
    fn frame(framer: &mut Framer, chunks: &[&str]) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            framer.push(c.as_bytes());
            while let Some(r) = framer.next(i + 1 == chunks.len()) {
                out.push((String::from_utf8(r.data).unwrap(), r.start, r.end));
            }
        }
        out
    }

    fn texts(records: &[(String, u64, u64)]) -> Vec<&str> {
        records.iter().map(|r| r.0.as_str()).collect()
    }

    #[test]
    fn single_lines() {
        let mut f = Framer::new(None, 1 << 20);
        let r = frame(&mut f, &["a\nbb", "b\n\nc"]);
        assert_eq!(
            r,
            [
                ("a\n".into(), 0, 2),
                ("bbb\n".into(), 2, 6),
                ("\n".into(), 6, 7)
            ]
        );
        // "c" waits for its newline.
        assert_eq!(f.consumed_offset(), 7);
        assert_eq!(f.read_offset(), 8);
        f.push(b"d\n");
        assert_eq!(f.next(true).unwrap().data, b"cd\n");
        // A rotated-away file's unfinished line is sent as it is.
        f.push(b"tail");
        assert_eq!(f.next(true), None);
        assert_eq!(
            f.flush().unwrap(),
            Framed {
                data: b"tail".to_vec(),
                start: 10,
                end: 14
            }
        );
    }

    #[test]
    fn header_lines_are_skipped_from_offset_zero_only() {
        let mut f = Framer::new(None, 1 << 20);
        f.reset(0, 2);
        assert_eq!(
            texts(&frame(&mut f, &["h1\nh", "2\nx\ny\n"])),
            ["x\n", "y\n"]
        );
        let mut f = Framer::new(None, 1 << 20);
        f.reset(5, 2);
        assert_eq!(frame(&mut f, &["x\n"]), [("x\n".into(), 5, 7)]);
    }

    #[test]
    fn multi_line_records() {
        let start = Regex::new(r"\A(?:\d{4}-)").unwrap();
        let mut f = Framer::new(Some(start.clone()), 1 << 20);
        let r = frame(
            &mut f,
            &[
                "2024- one\n  at a\n  at",
                " b\n2024- two\n",
                "2024- three\nmore\n",
            ],
        );
        assert_eq!(
            texts(&r),
            [
                "2024- one\n  at a\n  at b\n",
                "2024- two\n",
                "2024- three\nmore\n"
            ]
        );
        // Not at the end of the file: the last record waits for the next start.
        let mut f = Framer::new(Some(start.clone()), 1 << 20);
        f.push(b"2024- a\ncont\n");
        assert_eq!(f.next(false), None);
        f.push(b"2024- b\n");
        assert_eq!(f.next(false).unwrap().data, b"2024- a\ncont\n");
        assert_eq!(f.next(false), None);
        // At the end, a pending record is sent only when it ends with a newline.
        let mut f = Framer::new(Some(start), 1 << 20);
        f.push(b"2024- a\npartial");
        assert_eq!(f.next(true), None);
        f.push(b"\n");
        assert_eq!(f.next(true).unwrap().data, b"2024- a\npartial\n");
    }

    #[test]
    fn runaway_records_are_cut_and_the_rest_discarded() {
        let mut f = Framer::new(None, 4);
        let r = frame(&mut f, &["abcdefg", "hij\nxy\n"]);
        assert_eq!(r, [("abcd".into(), 0, 4), ("xy\n".into(), 11, 14)]);
        let start = Regex::new(r"\AS").unwrap();
        let mut f = Framer::new(Some(start), 8);
        let r = frame(&mut f, &["S 123456789\nmore\nS ok\n"]);
        assert_eq!(texts(&r), ["S 123456", "S ok\n"]);
    }

    #[test]
    fn truncation_puts_the_terminator_last() {
        let mut d = b"0123456789".to_vec();
        assert!(truncate(&mut d, 6, b"\n"));
        assert_eq!(d, b"01234\n");
        let mut d = b"0123456789".to_vec();
        assert!(truncate(&mut d, 6, b"...\n"));
        assert_eq!(d, b"01...\n");
        let mut d = b"01".to_vec();
        assert!(!truncate(&mut d, 6, b"\n"));
        assert_eq!(d, b"01");
    }
}
