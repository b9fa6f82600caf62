//! Cutting the server's byte stream into frames, without doing I/O.
//!
//! Owns [`Frame`] (one whole server frame in a 16-aligned buffer, so the batches
//! inside it, which start at 8-byte frame offsets, can be validated in place) and
//! [`FrameAssembler`], shared by the blocking client's reader thread and the async
//! client. It checks a frame's size against the limit before allocating for it; it
//! does not check crc or body: `ops::decode` does, for whoever waits on the frame.

use riffle_protocol::native::{FRAME_HEADER_SIZE, FrameHeader};
use rkyv::util::AlignedVec;

use crate::error::ClientError;

/// Bytes read from the socket at a time; frames larger than this are read
/// straight into their own buffer.
pub(crate) const READ_BUFFER_SIZE: usize = 64 * 1024;

/// One whole frame from the server. Only its size has been checked.
pub(crate) struct Frame {
    pub header: FrameHeader,
    pub bytes: AlignedVec<16>,
}

impl Frame {
    pub fn request_id(&self) -> u64 {
        self.header.request_id
    }
}

struct Partial {
    header: FrameHeader,
    bytes: AlignedVec<16>,
    filled: usize,
}

/// Sans-I/O frame reader: `read_buf` says where the next read goes, `filled`
/// reports how many bytes arrived, `next_frame` hands out whole frames.
pub(crate) struct FrameAssembler {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    partial: Option<Partial>,
    /// The last `read_buf` returned the partial frame's own buffer.
    direct: bool,
    frame_size_max: u32,
}

impl FrameAssembler {
    pub fn new(frame_size_max: u32) -> FrameAssembler {
        FrameAssembler {
            buf: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            partial: None,
            direct: false,
            frame_size_max,
        }
    }

    /// The next whole frame among the bytes read so far, if there is one. An error
    /// (a frame size out of bounds) leaves the stream unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        if self.partial.is_none() {
            if self.end - self.start < FRAME_HEADER_SIZE {
                return Ok(None);
            }
            let header = FrameHeader::parse(&self.buf[self.start..self.end], self.frame_size_max)
                .map_err(ClientError::protocol)?;
            let mut bytes = AlignedVec::<16>::with_capacity(header.frame_size as usize);
            bytes.resize(header.frame_size as usize, 0);
            self.partial = Some(Partial {
                header,
                bytes,
                filled: 0,
            });
        }
        let Some(p) = self.partial.as_mut() else {
            return Ok(None);
        };
        let n = (p.bytes.len() - p.filled).min(self.end - self.start);
        p.bytes[p.filled..p.filled + n].copy_from_slice(&self.buf[self.start..self.start + n]);
        p.filled += n;
        self.start += n;
        if p.filled < p.bytes.len() {
            return Ok(None);
        }
        Ok(self.partial.take().map(|p| Frame {
            header: p.header,
            bytes: p.bytes,
        }))
    }

    /// Where the next read should put its bytes (never empty). Call only after
    /// `next_frame` returned `None`.
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        self.direct = false;
        if let Some(p) = self.partial.as_mut()
            && self.start == self.end
            && p.bytes.len() - p.filled >= READ_BUFFER_SIZE
        {
            self.direct = true;
            return &mut p.bytes[p.filled..];
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into the slice the last `read_buf` returned.
    pub fn filled(&mut self, n: usize) {
        match self.partial.as_mut() {
            Some(p) if self.direct => p.filled += n,
            _ => self.end += n,
        }
        self.direct = false;
    }
}

#[cfg(test)]
mod tests {
    use riffle_protocol::native::{Api, Response, encode_response};

    use super::*;

    /// Feeds `stream` to an assembler in reads of at most `chunk` bytes and
    /// returns the request ids of the frames it produced.
    fn check(stream: &[u8], chunk: usize, expected_ids: &[u64]) {
        let mut asm = FrameAssembler::new(u32::MAX);
        let mut ids = Vec::new();
        let mut pos = 0;
        loop {
            while let Some(frame) = asm.next_frame().unwrap() {
                assert_eq!(frame.bytes.len(), frame.header.frame_size as usize);
                assert_eq!(frame.bytes.as_ptr() as usize % 16, 0);
                ids.push(frame.request_id());
            }
            if pos == stream.len() {
                break;
            }
            let buf = asm.read_buf();
            assert!(!buf.is_empty());
            let n = buf.len().min(chunk).min(stream.len() - pos);
            buf[..n].copy_from_slice(&stream[pos..pos + n]);
            asm.filled(n);
            pos += n;
        }
        assert_eq!(ids, expected_ids, "chunk {chunk}");
    }

    #[test]
    fn cuts_frames_at_any_read_boundary() {
        let mut stream = Vec::new();
        let mut ids = Vec::new();
        for id in 0..200u64 {
            let names: Vec<String> = (0..id % 7 * 300).map(|i| format!("s{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            encode_response(
                &mut stream,
                Api::ListStreams,
                id,
                &Response::StreamNames(names),
            );
            ids.push(id);
        }
        for chunk in [1, 7, 24, 25, 4096, READ_BUFFER_SIZE, usize::MAX] {
            check(&stream, chunk, &ids);
        }
    }

    #[test]
    fn refuses_oversized_frame_before_allocating() {
        let mut asm = FrameAssembler::new(1024);
        let mut header = [0u8; FRAME_HEADER_SIZE];
        header[0..4].copy_from_slice(&(u32::MAX).to_le_bytes());
        asm.read_buf()[..FRAME_HEADER_SIZE].copy_from_slice(&header);
        asm.filled(FRAME_HEADER_SIZE);
        assert!(matches!(asm.next_frame(), Err(ClientError::Protocol(_))));
    }
}
