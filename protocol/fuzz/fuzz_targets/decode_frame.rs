//! Fuzz target: native protocol frame decoding. Arbitrary bytes go to
//! `decode_request` and `decode_reply` (default `Limits`), once as given and once
//! with the size field set to the input's length and the crc recomputed, so the
//! fuzzer reaches the body decoders instead of dying at the crc. Neither decoder
//! may panic, and whatever decodes must re-encode to exactly the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_protocol::Limits;
use riffle_protocol::native::{
    Api, FRAME_HEADER_SIZE, Reply, decode_reply, decode_request, encode_error, encode_push,
    encode_request, encode_response,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    check(data, &limits);
    if data.len() >= FRAME_HEADER_SIZE {
        let mut sealed = data.to_vec();
        sealed[0..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c(&sealed[8..]);
        sealed[4..8].copy_from_slice(&crc.to_le_bytes());
        check(&sealed, &limits);
    }
});

fn check(frame: &[u8], limits: &Limits) {
    if let Ok((header, request)) = decode_request(frame, limits) {
        let mut out = Vec::new();
        encode_request(&mut out, header.request_id, &request);
        assert_eq!(out, frame, "request {request:?} re-encodes differently");
    }
    if let Ok((header, reply)) = decode_reply(frame, limits) {
        let mut out = Vec::new();
        match &reply {
            Reply::Response(r) => {
                let api =
                    Api::from_u16(header.api_key).expect("a decoded response has a known api");
                encode_response(&mut out, api, header.request_id, r);
            }
            Reply::Error(e) => {
                encode_error(&mut out, header.api_key, header.request_id, e);
            }
            Reply::Push { records, end } => {
                encode_push(&mut out, header.request_id, records, *end);
            }
        }
        assert_eq!(out, frame, "reply {reply:?} re-encodes differently");
    }
}
