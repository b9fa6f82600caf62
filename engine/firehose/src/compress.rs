//! Object bodies in each `CompressionFormat`: the records' data concatenated,
//! then
//! - `GZIP`: one gzip member;
//! - `ZIP`: a ZIP archive with one deflated entry (the object's name without
//!   its extension), written here (local header, data, central directory,
//!   end record; objects stay far below ZIP64's 4 GiB);
//! - `Snappy`: Snappy's framing format (stream identifier, crc-checked chunks);
//! - `HADOOP_SNAPPY`: Hadoop's `BlockCompressorStream` layout, per block of at
//!   most 256 KiB: `[uncompressed length: u32 BE][compressed length: u32 BE]
//!   [raw Snappy]`, what Hadoop's `SnappyCodec` reads.

use std::io::Write as _;

use crate::destination::Compression;

/// Hadoop's default Snappy buffer (`io.compression.codec.snappy.buffersize`).
const HADOOP_BLOCK: usize = 256 * 1024;

/// The body of an object whose records, concatenated, are `data`; `entry`
/// names a ZIP archive's entry.
pub fn body(compression: Compression, data: &[u8], entry: &str) -> Vec<u8> {
    match compression {
        Compression::Uncompressed => data.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(data).expect("writing to a Vec");
            gz.finish().expect("writing to a Vec")
        }
        Compression::Snappy => {
            let mut enc = snap::write::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            enc.write_all(data).expect("writing to a Vec");
            enc.into_inner().expect("writing to a Vec")
        }
        Compression::HadoopSnappy => hadoop_snappy(data),
        Compression::Zip => {
            let mut deflate = flate2::write::DeflateEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::fast(),
            );
            deflate.write_all(data).expect("writing to a Vec");
            let deflated = deflate.finish().expect("writing to a Vec");
            zip_one(entry, &deflated, crc32fast::hash(data), data.len() as u64)
        }
    }
}

fn hadoop_snappy(data: &[u8]) -> Vec<u8> {
    let mut enc = snap::raw::Encoder::new();
    let mut out = Vec::with_capacity(data.len() / 2 + 16);
    for block in data.chunks(HADOOP_BLOCK) {
        let compressed = enc
            .compress_vec(block)
            .expect("a block under Snappy's limit");
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    out
}

/// A ZIP archive of one deflated entry.
fn zip_one(name: &str, deflated: &[u8], crc: u32, size: u64) -> Vec<u8> {
    // Sizes over 4 GiB would need ZIP64; objects are at most 128 MiB before compression.
    let size = u32::try_from(size).expect("an object under 4 GiB");
    let csize = u32::try_from(deflated.len()).expect("an object under 4 GiB");
    let name = name.as_bytes();
    let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let name = &name[..name_len as usize];
    // 1980-01-01 00:00 in DOS time: the entry's time is not meaningful.
    let (time, date) = (0u16, (1 << 5) | 1);
    // General purpose flag 0x0800: the name is UTF-8.
    let flags = 0x0800u16;
    let mut out = Vec::with_capacity(deflated.len() + 2 * name.len() + 98);
    let u16le = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    // Local file header.
    u32le(&mut out, 0x0403_4b50);
    for v in [20, flags, 8, time, date] {
        u16le(&mut out, v);
    }
    for v in [crc, csize, size] {
        u32le(&mut out, v);
    }
    u16le(&mut out, name_len);
    u16le(&mut out, 0);
    out.extend_from_slice(name);
    out.extend_from_slice(deflated);
    // Central directory.
    let cd_offset = out.len() as u32;
    u32le(&mut out, 0x0201_4b50);
    for v in [20, 20, flags, 8, time, date] {
        u16le(&mut out, v);
    }
    for v in [crc, csize, size] {
        u32le(&mut out, v);
    }
    for v in [name_len, 0, 0, 0, 0] {
        u16le(&mut out, v);
    }
    u32le(&mut out, 0); // external attributes
    u32le(&mut out, 0); // the local header's offset
    out.extend_from_slice(name);
    let cd_size = out.len() as u32 - cd_offset;
    // End of central directory.
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, 1, 1] {
        u16le(&mut out, v);
    }
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn records() -> Vec<Vec<u8>> {
        (0..10_000)
            .map(|i| format!("{{\"n\":{i},\"text\":\"record number {i}\"}}\n").into_bytes())
            .collect()
    }

    fn joined() -> Vec<u8> {
        records().concat()
    }

    fn of(c: Compression) -> Vec<u8> {
        body(c, &joined(), "obj")
    }

    #[test]
    fn uncompressed_and_gzip() {
        assert_eq!(of(Compression::Uncompressed), joined());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&of(Compression::Gzip)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, joined());
    }

    #[test]
    fn snappy_framed() {
        let framed = of(Compression::Snappy);
        // The stream identifier chunk: 0xff, length 6, "sNaPpY".
        assert_eq!(&framed[..10], b"\xff\x06\x00\x00sNaPpY");
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&framed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, joined());
    }

    #[test]
    fn hadoop_snappy_blocks() {
        let body = of(Compression::HadoopSnappy);
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let raw = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
            let len = u32::from_be_bytes(body[at + 4..at + 8].try_into().unwrap()) as usize;
            let block = snap::raw::Decoder::new()
                .decompress_vec(&body[at + 8..at + 8 + len])
                .unwrap();
            assert_eq!(block.len(), raw);
            assert!(raw <= HADOOP_BLOCK);
            out.extend_from_slice(&block);
            at += 8 + len;
        }
        assert_eq!(out, joined());
        assert!(joined().len() > HADOOP_BLOCK, "several blocks are tested");
    }

    #[test]
    fn zip_archives_hold_one_entry() {
        let zip = of(Compression::Zip);
        // The end record points at the central directory, which points at the entry.
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], &0x0605_4b50u32.to_le_bytes());
        let cd = u32::from_le_bytes(zip[end + 16..end + 20].try_into().unwrap()) as usize;
        assert_eq!(&zip[cd..cd + 4], &0x0201_4b50u32.to_le_bytes());
        assert_eq!(&zip[..4], &0x0403_4b50u32.to_le_bytes());
        let name_len = u16::from_le_bytes(zip[26..28].try_into().unwrap()) as usize;
        assert_eq!(&zip[30..30 + name_len], b"obj");
        let csize = u32::from_le_bytes(zip[18..22].try_into().unwrap()) as usize;
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&zip[30 + name_len..30 + name_len + csize])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, joined());
        let crc = u32::from_le_bytes(zip[14..18].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&joined()));
    }
}
