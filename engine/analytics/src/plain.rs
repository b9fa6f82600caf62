//! The one byte scan the JSON decoder and encoder share: how far a string's
//! bytes go before the first one JSON cannot hold as is (`"`, `\` or a
//! control character), sixteen bytes at a time with SSE2 (x86-64's
//! baseline), then eight at a time in a word.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The flags (high bit of a byte) of the zero bytes of `v`. The lowest set
/// flag is always a zero byte; flags above it may not be (a borrow), so
/// only the lowest is read.
fn zeros(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGH
}

/// The length of the longest prefix of `bytes` with no `"`, `\` or byte
/// below 0x20: what a JSON string holds as it is.
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(i..i + 16) {
        let flags = special16(chunk.try_into().expect("sixteen bytes"));
        if flags != 0 {
            return i + flags.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Bytes below 0x20 flag like zeros: the lowest flag is exact.
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let special = zeros(w ^ (ONES * u64::from(b'"'))) | zeros(w ^ (ONES * u64::from(b'\\')));
        let flags = control | special;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if matches!(b, b'"' | b'\\' | 0..=0x1f) {
            break;
        }
        i += 1;
    }
    i
}

/// A bit per byte of `chunk` (byte i, bit i) that is `"`, `\\` or below 0x20.
#[cfg(target_arch = "x86_64")]
fn special16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: the load reads the 16 bytes `chunk` holds and needs no
    // alignment; SSE2, the only feature used, is part of every x86-64
    // target (the compiler does not count baseline features as enabled for
    // these calls, hence the block).
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned: a byte is below 0x20 when min(byte, 0x1f) is itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::plain_len;

    /// The plain bytes counted one by one.
    fn slow(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(bytes.len())
    }

    #[test]
    fn the_scan_stops_where_a_byte_by_byte_scan_stops() {
        // Every special byte at every place of a text, around bytes that
        // trip word tricks (0x80 and up, 0x21, 0x5d, 0x01).
        let fillers: [u8; 6] = [b'a', 0x80, 0xff, 0x21, 0x5d, 0xc3];
        let specials: [u8; 6] = [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'];
        // 43 bytes: sixteen at a time twice, then a word, then three bytes
        // one by one: every path meets a special byte at each of its places.
        for &fill in &fillers {
            let plain = vec![fill; 43];
            assert_eq!(plain_len(&plain), slow(&plain));
            for at in 0..43 {
                for &s in &specials {
                    let mut text = plain.clone();
                    text[at] = s;
                    assert_eq!(plain_len(&text), at, "{fill:#x} {s:#x} at {at}");
                    // A second special byte after the first changes nothing.
                    if at + 1 < 43 {
                        text[at + 1] = b'"';
                        assert_eq!(plain_len(&text), at);
                    }
                }
            }
        }
        assert_eq!(plain_len(b""), 0);
        let url = "https://www.nexmark.com/éa";
        assert_eq!(plain_len(url.as_bytes()), url.len());
        assert_eq!(plain_len(b"{\"auction\":1000"), 1);
        assert_eq!(plain_len(b"auction\":1000"), 7);
        for len in 0..40 {
            let text: Vec<u8> = (0..len).map(|i| 0x20 + (i * 7 % 90) as u8).collect();
            assert_eq!(plain_len(&text), slow(&text), "{text:?}");
        }
    }
}
