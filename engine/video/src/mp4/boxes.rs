//! The ISO BMFF box writer (ISO/IEC 14496-12) and the boxes every output
//! shares: ftyp, mvhd, and a trak down to its stbl (whose sample tables the
//! caller writes). Infallible: callers check their inputs against the
//! limits in `mp4/mod.rs` first, which keeps every box under 4 GiB.
//!
//! ```text
//! box      : size (u32 BE, whole box) · type (4 ASCII bytes) · body
//! full box : box whose body starts with version (u8) · flags (u24 BE)
//! ```
//! Every integer is big-endian; "16.16" and "8.8" are fixed-point.

use super::codec::{Entry, Kind};

/// A growing output buffer with box nesting.
#[derive(Debug, Default)]
pub(super) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// The low 24 bits of `v`.
    pub fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Overwrites 4 bytes written earlier at `at` (a placeholder).
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        let field = self
            .buf
            .get_mut(at..at + 4)
            .expect("patching a written placeholder");
        field.copy_from_slice(&v.to_be_bytes());
    }

    /// Writes a box: its head, what `body` writes, then its size.
    pub fn boxed<R>(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Writer) -> R) -> R {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(kind);
        let r = body(self);
        let size = u32::try_from(self.buf.len() - start)
            .expect("the limits in mp4/mod.rs keep every box below 4 GiB");
        self.patch_u32(start, size);
        r
    }

    /// Writes a full box (version and flags first in its body).
    pub fn full<R>(
        &mut self,
        kind: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Writer) -> R,
    ) -> R {
        self.boxed(kind, |w| {
            w.u8(version);
            w.u24(flags);
            body(w)
        })
    }
}

/// ftyp: major brand, minor version 0... (512 for isom), compatible brands.
pub(super) fn ftyp(w: &mut Writer, major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) {
    w.boxed(b"ftyp", |w| {
        w.bytes(major);
        w.u32(minor);
        for brand in compatible {
            w.bytes(*brand);
        }
    });
}

/// The unity matrix of mvhd and tkhd (16.16, 16.16, 2.30).
const MATRIX_UNITY: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// mvhd: version 1 only when the duration needs it; times of creation and
/// modification are 0 (unknown).
pub(super) fn mvhd(w: &mut Writer, duration: u64, next_track_id: u32) {
    let version = u8::from(duration > u64::from(u32::MAX));
    w.full(b"mvhd", version, 0, |w| {
        times_and_duration(w, version, super::MOVIE_TIMESCALE, duration);
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(2 + 8); // reserved
        for m in MATRIX_UNITY {
            w.u32(m);
        }
        w.zeros(6 * 4); // pre_defined
        w.u32(next_track_id);
    });
}

/// creation_time, modification_time (0), timescale, duration: 32- or
/// 64-bit by version, as in mvhd and mdhd.
fn times_and_duration(w: &mut Writer, version: u8, timescale: u32, duration: u64) {
    if version == 1 {
        w.u64(0);
        w.u64(0);
        w.u32(timescale);
        w.u64(duration);
    } else {
        w.u32(0);
        w.u32(0);
        w.u32(timescale);
        w.u32(duration as u32);
    }
}

/// What a trak says besides its sample tables.
pub(super) struct TrakSpec<'a> {
    pub track_id: u32,
    pub entry: &'a Entry,
    /// Track duration in the movie timescale, edits included (0: fragmented).
    pub duration_movie: u64,
    /// Media duration in the track's timescale (0: fragmented).
    pub duration_media: u64,
    /// A leading empty edit (movie timescale): the track starts this long
    /// after the movie.
    pub delay_movie: u64,
    /// Where presentation starts in the media (track timescale): the
    /// composition offsets' shift, so the first frame shows at the track's
    /// start. With either non-zero, an edts is written.
    pub media_time: u64,
}

/// trak{ tkhd · edts? · mdia{ mdhd · hdlr · minf{ vmhd|smhd · dinf · stbl{
/// stsd · what `tables` writes } } } }.
pub(super) fn trak(w: &mut Writer, spec: &TrakSpec<'_>, tables: impl FnOnce(&mut Writer)) {
    let entry = spec.entry;
    w.boxed(b"trak", |w| {
        tkhd(w, spec);
        if spec.delay_movie > 0 || spec.media_time > 0 {
            edts(w, spec);
        }
        w.boxed(b"mdia", |w| {
            let version = u8::from(spec.duration_media > u64::from(u32::MAX));
            w.full(b"mdhd", version, 0, |w| {
                times_and_duration(w, version, entry.timescale, spec.duration_media);
                w.u16(LANGUAGE_UND);
                w.u16(0); // pre_defined
            });
            let (handler, name): (&[u8; 4], &[u8]) = match entry.kind {
                Kind::Video => (b"vide", b"VideoHandler\0"),
                Kind::Audio => (b"soun", b"SoundHandler\0"),
            };
            w.full(b"hdlr", 0, 0, |w| {
                w.u32(0); // pre_defined
                w.bytes(handler);
                w.zeros(12); // reserved
                w.bytes(name);
            });
            w.boxed(b"minf", |w| {
                match entry.kind {
                    // graphicsmode copy, opcolor 0
                    Kind::Video => w.full(b"vmhd", 0, 1, |w| w.zeros(8)),
                    // balance 0, reserved
                    Kind::Audio => w.full(b"smhd", 0, 0, |w| w.zeros(4)),
                }
                w.boxed(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.u32(1);
                        // flags 1: the media is in this file.
                        w.full(b"url ", 0, 1, |_| {});
                    });
                });
                w.boxed(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.u32(1);
                        w.bytes(&entry.sample_entry);
                    });
                    tables(w);
                });
            });
        });
    });
}

/// ISO 639-2 "und" packed as three 5-bit letters (each - 0x60).
pub(super) const LANGUAGE_UND: u16 =
    ((b'u' as u16 - 0x60) << 10) | ((b'n' as u16 - 0x60) << 5) | (b'd' as u16 - 0x60);
const _: () = assert!(LANGUAGE_UND == 0x55C4);

/// tkhd flags: enabled, in movie, in preview.
const TKHD_FLAGS: u32 = 0x7;

fn tkhd(w: &mut Writer, spec: &TrakSpec<'_>) {
    let version = u8::from(spec.duration_movie > u64::from(u32::MAX));
    w.full(b"tkhd", version, TKHD_FLAGS, |w| {
        if version == 1 {
            w.u64(0);
            w.u64(0);
            w.u32(spec.track_id);
            w.u32(0); // reserved
            w.u64(spec.duration_movie);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(spec.track_id);
            w.u32(0);
            w.u32(spec.duration_movie as u32);
        }
        w.zeros(8); // reserved
        w.u16(0); // layer
        w.u16(0); // alternate_group
        w.u16(match spec.entry.kind {
            Kind::Audio => 0x0100, // 1.0
            Kind::Video => 0,
        });
        w.u16(0); // reserved
        for m in MATRIX_UNITY {
            w.u32(m);
        }
        w.u32(u32::from(spec.entry.width) << 16);
        w.u32(u32::from(spec.entry.height) << 16);
    });
}

/// edts{ elst: an empty edit of `delay_movie` (if any), then the media
/// from `media_time` to the end }.
///
/// ```text
/// elst v0: entry_count u32 · (segment_duration u32 · media_time i32 · rate 1.0 (u16 1 · u16 0))*
/// elst v1: the same with segment_duration u64 · media_time i64
/// ```
fn edts(w: &mut Writer, spec: &TrakSpec<'_>) {
    let media_duration = spec.duration_movie - spec.delay_movie;
    let mut edits = Vec::with_capacity(2);
    if spec.delay_movie > 0 {
        edits.push((spec.delay_movie, -1i64));
    }
    let media_time =
        i64::try_from(spec.media_time).expect("a shift of a 32-bit composition offset");
    edits.push((media_duration, media_time));
    let wide = spec.delay_movie.max(media_duration) > u64::from(u32::MAX)
        || media_time > i64::from(i32::MAX);
    let version = u8::from(wide);
    w.boxed(b"edts", |w| {
        w.full(b"elst", version, 0, |w| {
            w.u32(edits.len() as u32);
            for (segment_duration, media_time) in edits {
                if version == 1 {
                    w.u64(segment_duration);
                    w.u64(media_time as u64);
                } else {
                    w.u32(segment_duration as u32);
                    w.i32(media_time as i32);
                }
                w.u16(1); // media_rate_integer
                w.u16(0); // media_rate_fraction
            }
        });
    });
}

/// The `mdat` head for `payload_len` bytes: 8 bytes, or 16 with a 64-bit
/// largesize when the box would pass 4 GiB.
pub(super) fn mdat_head(payload_len: u64) -> Vec<u8> {
    match u32::try_from(payload_len + 8) {
        Ok(size) => [&size.to_be_bytes()[..], b"mdat"].concat(),
        Err(_) => [
            &1u32.to_be_bytes()[..],
            b"mdat",
            &(payload_len + 16).to_be_bytes(),
        ]
        .concat(),
    }
}
