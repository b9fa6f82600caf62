//! Native protocol codec tests: every message's golden bytes, its round trip and
//! its truncation at every byte; malformed and over-limit frames get their
//! specific error; seeded random messages round-trip and random mutations never
//! panic the decoders.
//!
//! Golden frames are hex with `#` comments naming each field, checked by hand
//! against docs/protocol.md. A golden that changes is a wire format change.
//! Randomized tests print their seed; `RIFFLE_SEED=<seed>` replays one.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use riffle_protocol::batch;
use riffle_protocol::native::{
    Api, BatchResult, FRAME_HEADER_SIZE, FirehosePutBatch, FirehoseRecordResult, FrameError,
    HeldLease, InitialPosition, LeaseCheckpoint, LeaseRow, Records, Reply, Request, Response,
    ShardBatch, ShardInfo, Span, StartPosition, StreamInfo, decode_reply, decode_request,
    encode_error, encode_push, encode_request, encode_response, flags, frame_size,
    request_frame_size_max, response_frame_size_max,
};
use riffle_protocol::{BatchBuilder, Error, ErrorCode, Limits, RecordIn};
use rkyv::util::AlignedVec;

// ---------------------------------------------------------------------------
// Messages as the tests see them: a request, or a reply with the api key and
// request id of its header.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Reply,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Msg<'a> {
    Request {
        id: u64,
        request: Request<'a>,
    },
    Reply {
        api_key: u16,
        id: u64,
        reply: Reply<'a>,
    },
}

impl<'a> Msg<'a> {
    fn side(&self) -> Side {
        match self {
            Msg::Request { .. } => Side::Request,
            Msg::Reply { .. } => Side::Reply,
        }
    }

    /// Every batch the message carries.
    fn batches(&self) -> Vec<&'a [u8]> {
        let spans = |r: &Records<'a>| r.spans.iter().map(|s| s.batch).collect();
        match self {
            Msg::Request {
                request: Request::PutRecord { batch, .. },
                ..
            } => vec![*batch],
            Msg::Request {
                request: Request::PutRecords { batches, .. },
                ..
            } => batches.iter().map(|b| b.batch).collect(),
            Msg::Reply {
                reply: Reply::Response(Response::Records(r)),
                ..
            }
            | Msg::Reply {
                reply: Reply::Push { records: r, .. },
                ..
            } => spans(r),
            _ => Vec::new(),
        }
    }
}

fn request(id: u64, request: Request<'_>) -> Msg<'_> {
    Msg::Request { id, request }
}

fn response(api: Api, id: u64, response: Response<'_>) -> Msg<'_> {
    Msg::Reply {
        api_key: api as u16,
        id,
        reply: Reply::Response(response),
    }
}

fn error(api_key: u16, id: u64, code: ErrorCode, message: &str) -> Msg<'static> {
    Msg::Reply {
        api_key,
        id,
        reply: Reply::Error(Error::new(code, message)),
    }
}

fn push(id: u64, records: Records<'_>, end: bool) -> Msg<'_> {
    Msg::Reply {
        api_key: Api::Subscribe as u16,
        id,
        reply: Reply::Push { records, end },
    }
}

fn encode(msg: &Msg<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = match msg {
        Msg::Request { id, request } => encode_request(&mut out, *id, request),
        Msg::Reply { api_key, id, reply } => match reply {
            Reply::Response(r) => {
                let api = Api::from_u16(*api_key).expect("responses answer known apis");
                encode_response(&mut out, api, *id, r)
            }
            Reply::Error(e) => encode_error(&mut out, *api_key, *id, e),
            Reply::Push { records, end } => {
                assert_eq!(
                    *api_key,
                    Api::Subscribe as u16,
                    "pushes belong to Subscribe"
                );
                encode_push(&mut out, *id, records, *end)
            }
        },
    };
    assert_eq!(n, out.len(), "encoders return the frame's length");
    out
}

/// Decodes a frame as `side`. Request errors that come without a header (the
/// server cannot trust the size, so it closes the connection) read "[closes] ...".
fn decode<'a>(side: Side, frame: &'a [u8], limits: &Limits) -> Result<Msg<'a>, String> {
    match side {
        Side::Request => match decode_request(frame, limits) {
            Ok((h, request)) => Ok(Msg::Request {
                id: h.request_id,
                request,
            }),
            Err((Some(_), e)) => Err(e.to_string()),
            Err((None, e)) => Err(format!("[closes] {e}")),
        },
        Side::Reply => decode_reply(frame, limits)
            .map(|(h, reply)| Msg::Reply {
                api_key: h.api_key,
                id: h.request_id,
                reply,
            })
            .map_err(|e| e.to_string()),
    }
}

// ---------------------------------------------------------------------------
// Hex and raw frames.

/// Parses hex; whitespace and `#` comments (to the end of a line) are ignored.
fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .flat_map(|line| line.split('#').next().unwrap().bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|d| u8::from_str_radix(std::str::from_utf8(d).unwrap(), 16).expect("hex digit"))
        .collect()
}

/// Hex, 16 bytes a line, each line prefixed by its offset.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let h: String = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:4}: {h}\n", i * 16)
        })
        .collect()
}

/// Recomputes a frame's crc (over bytes 8..).
fn reseal(frame: &mut [u8]) {
    let crc = crc32c::crc32c(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// `frame` with `bytes` written at `at`, crc recomputed.
fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at..at + bytes.len()].copy_from_slice(bytes);
    reseal(&mut f);
    f
}

/// A frame with this header and body; size and crc are filled in.
fn raw(api_key: u16, flags: u16, body: &Body) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&((FRAME_HEADER_SIZE + body.0.len()) as u32).to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&api_key.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&flags.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    f.extend_from_slice(&7u64.to_le_bytes());
    f.extend_from_slice(&body.0);
    reseal(&mut f);
    f
}

/// A hand-built body, for frames the encoders refuse to produce.
#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn u8(mut self, v: u8) -> Body {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Body {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Body {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Body {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, v: &[u8]) -> Body {
        self.0.extend_from_slice(v);
        self
    }
    fn str(self, s: &str) -> Body {
        self.u16(s.len() as u16).bytes(s.as_bytes())
    }
    /// u32 length, zero padding to an 8-byte frame offset (the header is 24
    /// bytes, so the body's own offset decides), the bytes.
    fn batch(self, b: &[u8]) -> Body {
        let body = self.u32(b.len() as u32);
        let pad = body.0.len().next_multiple_of(8) - body.0.len();
        body.bytes(&[0; 8][..pad]).bytes(b)
    }
    /// The fixed fields of Records up to and including the option tag (None).
    fn records_head(self) -> Body {
        self.u32(1).u64(0).u64(0).u8(0)
    }
}

// ---------------------------------------------------------------------------
// The one checker of valid messages, and the one checker of refused frames.

/// Encodes `msg`, compares with the golden hex, decodes it back (also from an
/// 8-aligned buffer, where every batch must verify in place), and refuses every
/// truncation: each prefix as is, and each prefix ≥ 24 bytes with its size field
/// patched to the prefix's length and the crc recomputed. With
/// `RIFFLE_FUZZ_CORPUS=<dir>` set, also writes the frame there as a fuzz seed.
fn check(msg: Msg<'_>, expected_hex: &str) {
    let frame = encode(&msg);
    let expected = unhex(expected_hex);
    assert!(
        frame == expected,
        "golden bytes differ for {msg:?}\nactual:\n{}expected:\n{}",
        hex(&frame),
        hex(&expected)
    );
    round_trip(&msg, &frame, &Limits::default());
    if let Some(dir) = std::env::var_os("RIFFLE_FUZZ_CORPUS") {
        // Seeds for protocol/fuzz (see its README), named by their crc.
        let name = format!(
            "golden-{:08x}",
            u32::from_le_bytes(frame[4..8].try_into().unwrap())
        );
        std::fs::write(std::path::Path::new(&dir).join(name), &frame).unwrap();
    }
    let side = msg.side();
    let limits = Limits::default();
    let max = request_frame_size_max(&limits).max(response_frame_size_max(&limits));
    assert_eq!(frame_size(&frame, max), Ok(Some(frame.len())));
    for cut in 0..frame.len() {
        let prefix = &frame[..cut];
        assert!(
            decode(side, prefix, &limits).is_err(),
            "prefix of {cut} bytes decoded"
        );
        if cut >= FRAME_HEADER_SIZE {
            let short = patched(prefix, 0, &(cut as u32).to_le_bytes());
            let got = decode(side, &short, &limits);
            assert!(
                got.is_err(),
                "body truncated to {cut} bytes decoded: {got:?}"
            );
        } else {
            assert_eq!(frame_size(prefix, max), Ok(None));
        }
    }
}

/// Decodes `frame` back into `msg`, from a plain and from an 8-aligned buffer.
fn round_trip(msg: &Msg<'_>, frame: &[u8], limits: &Limits) {
    let decoded = decode(msg.side(), frame, limits);
    assert_eq!(decoded.as_ref(), Ok(msg), "round trip");
    let mut aligned = AlignedVec::<16>::with_capacity(frame.len());
    aligned.extend_from_slice(frame);
    let decoded = decode(msg.side(), &aligned, limits).expect("decodes when aligned");
    for b in decoded.batches() {
        batch::verify(b).expect("a batch in an aligned frame verifies in place");
    }
}

/// Decodes `frame` as `side` under `limits`: `expected` is "ok", or a substring
/// of the error (see [`decode`] for "[closes]").
fn check_err(name: &str, side: Side, frame: &[u8], limits: &Limits, expected: &str) {
    match decode(side, frame, limits) {
        Ok(msg) => assert!(
            expected == "ok",
            "{name}: decoded {msg:?}, expected {expected}"
        ),
        Err(e) => assert!(
            expected != "ok" && e.contains(expected),
            "{name}: got error {e:?}, expected {expected:?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// Batches, pinned once and reused by the goldens.

fn record<'a>(key: &'a str, data: &'a [u8]) -> RecordIn<'a> {
    RecordIn {
        partition_key: key,
        explicit_hash_key: None,
        data,
        arrival_ms: 0,
    }
}

/// One record, key "k", data "hi", as a client builds it (offset and time 0).
fn batch_one() -> AlignedVec<16> {
    BatchBuilder::new().encode(&[record("k", b"hi")])
}

/// `batch_one` as the server stores it: base offset 42, arrival 1_700_000_000_000.
fn batch_sealed() -> AlignedVec<16> {
    let mut b = BatchBuilder::new().build(&[record("k", b"hi")]);
    b.seal(42, 1_700_000_000_000);
    b.into_inner()
}

/// Two records: ("k", explicit hash key 5, "hi") and ("k2", "").
fn batch_two() -> AlignedVec<16> {
    let mut first = record("k", b"hi");
    first.explicit_hash_key = Some(5u128.to_le_bytes());
    BatchBuilder::new().encode(&[first, record("k2", b"")])
}

fn batch_of(count: usize) -> AlignedVec<16> {
    BatchBuilder::new().encode(&vec![record("k", b""); count])
}

macro_rules! batch_one_hex {
    () => {
        "
        52464c42 0100 0000 70000000 d024c446  # batch: RFLB, v1, flags, length 112, crc
        0000000000000000 01000000 00000000    # base_offset 0, record_count 1, reserved
        0000000000000000 0000000000000000     # first_arrival_ms, last_arrival_ms
        6b 6869 0000000000 f8ffffff 01000000  # rkyv: 'k' 'hi' pad | record: key -8 len 1
        00 00000000000000000000000000000000   # explicit_hash_key None
        000000 ddffffff 02000000 00000000     # pad | data -35 len 2 | pad
        0000000000000000 d0ffffff 01000000    # arrival_ms | root vec -48 len 1
        "
    };
}

macro_rules! batch_sealed_hex {
    () => {
        "
        52464c42 0100 0000 70000000 47c06368  # batch: RFLB, v1, flags, length 112, crc
        2a00000000000000 01000000 00000000    # base_offset 42, record_count 1, reserved
        0068e5cf8b010000 0068e5cf8b010000     # first/last arrival_ms 1_700_000_000_000
        6b 6869 0000000000 f8ffffff 01000000  # rkyv: 'k' 'hi' pad | record: key -8 len 1
        00 00000000000000000000000000000000   # explicit_hash_key None
        000000 ddffffff 02000000 00000000     # pad | data -35 len 2 | pad
        0068e5cf8b010000 d0ffffff 01000000    # arrival_ms | root vec -48 len 1
        "
    };
}

macro_rules! batch_two_hex {
    () => {
        "
        52464c42 0100 0000 a0000000 86b0417d  # batch: RFLB, v1, flags, length 160, crc
        0000000000000000 02000000 00000000    # base_offset 0, record_count 2, reserved
        0000000000000000 0000000000000000     # first_arrival_ms, last_arrival_ms
        6b 6869 6b32 000000 f8ffffff 01000000 # rkyv: 'k' 'hi' 'k2' pad | record 0: key -8 len 1
        01 05000000000000000000000000000000   # explicit_hash_key Some(5)
        000000 ddffffff 02000000 00000000     # pad | data -35 len 2 | pad
        0000000000000000                      # arrival_ms
        cbffffff 02000000                     # record 1: key -53 len 2
        00 00000000000000000000000000000000   # explicit_hash_key None
        000000 b1ffffff 00000000 00000000     # pad | data -79 len 0 | pad
        0000000000000000 a0ffffff 02000000    # arrival_ms | root vec -96 len 2
        "
    };
}

#[test]
fn golden_batches() {
    assert_eq!(hex(&batch_one()), hex(&unhex(batch_one_hex!())));
    assert_eq!(hex(&batch_sealed()), hex(&unhex(batch_sealed_hex!())));
    assert_eq!(hex(&batch_two()), hex(&unhex(batch_two_hex!())));
}

// ---------------------------------------------------------------------------
// Requests: golden bytes, round trip, truncation.
// Header: size, crc, api_key, api_version, flags, reserved, request_id.

#[test]
fn ping() {
    check(
        request(
            0x0807_0605_0403_0201,
            Request::Ping {
                nonce: 0x1122_3344_5566_7788,
            },
        ),
        "
        20000000 0f5a61b3 0000 0100 0000 0000 0102030405060708  # size 32, Ping, id
        8877665544332211                                         # nonce
        ",
    );
}

#[test]
fn create_stream() {
    check(
        request(
            1,
            Request::CreateStream {
                stream: "orders",
                shard_count: 4,
            },
        ),
        "
        24000000 a038dbe9 0100 0100 0000 0000 0100000000000000  # size 36, CreateStream
        0600 6f7264657273                                        # stream 'orders'
        04000000                                                 # shard_count 4
        ",
    );
}

#[test]
fn delete_stream() {
    check(
        request(2, Request::DeleteStream { stream: "orders" }),
        "
        20000000 995881a5 0200 0100 0000 0000 0200000000000000  # size 32, DeleteStream
        0600 6f7264657273                                        # stream 'orders'
        ",
    );
}

#[test]
fn describe_stream() {
    check(
        request(3, Request::DescribeStream { stream: "orders" }),
        "
        20000000 e997c2ed 0300 0100 0000 0000 0300000000000000  # size 32, DescribeStream
        0600 6f7264657273                                        # stream 'orders'
        ",
    );
}

#[test]
fn list_streams() {
    check(
        request(4, Request::ListStreams),
        "
        18000000 2ae16ef1 0400 0100 0000 0000 0400000000000000  # size 24, ListStreams, no body
        ",
    );
}

#[test]
fn list_shards() {
    check(
        request(5, Request::ListShards { stream: "orders" }),
        "
        20000000 3842a659 0500 0100 0000 0000 0500000000000000  # size 32, ListShards
        0600 6f7264657273                                        # stream 'orders'
        ",
    );
}

#[test]
fn put_record() {
    let b = batch_one();
    check(
        request(
            6,
            Request::PutRecord {
                stream: "orders",
                batch: &b,
            },
        ),
        concat!(
            "
            98000000 631e61bf 0600 0100 0000 0000 0600000000000000  # size 152, PutRecord
            0600 6f7264657273                                        # stream 'orders'
            70000000 00000000                                        # batch length 112, pad to 40
            ",
            batch_one_hex!()
        ),
    );
}

#[test]
fn put_records() {
    let (one, two) = (batch_one(), batch_two());
    check(
        request(
            7,
            Request::PutRecords {
                stream: "orders",
                stream_id: 9,
                batches: vec![
                    ShardBatch {
                        shard_index: 0,
                        batch: &one,
                    },
                    ShardBatch {
                        shard_index: 3,
                        batch: &two,
                    },
                ],
            },
        ),
        concat!(
            "
            50010000 760a2b42 0700 0100 0000 0000 0700000000000000  # size 336, PutRecords
            0600 6f7264657273                                        # stream 'orders'
            0900000000000000                                         # stream_id 9
            02000000                                                 # 2 batches
            00000000 70000000 00000000                               # shard 0, length 112, pad to 56
            ",
            batch_one_hex!(),
            "
            03000000 a0000000                                        # shard 3, length 160, no pad (176)
            ",
            batch_two_hex!()
        ),
    );
}

/// Sequence number 2^127 | shard 1 << 64 | offset 42, little-endian.
const SEQ: u128 = (1 << 127) | (1 << 64) | 42;

#[test]
fn get_shard_iterator_every_position() {
    let cases = [
        (StartPosition::TrimHorizon, "25000000 8cac521d", "00"),
        (StartPosition::Latest, "25000000 8f2f39ef", "01"),
        (
            StartPosition::AtSequenceNumber(SEQ),
            "35000000 5d97fd02",
            "02 2a00000000000000 01000000 00000080",
        ),
        (
            StartPosition::AfterSequenceNumber(SEQ),
            "35000000 024b195d",
            "03 2a00000000000000 01000000 00000080",
        ),
        (
            StartPosition::AtTimestamp(1_700_000_000_000),
            "2d000000 1a713435",
            "04 0068e5cf8b010000",
        ),
    ];
    for (position, size_crc, position_hex) in cases {
        check(
            request(
                8,
                Request::GetShardIterator {
                    stream: "orders",
                    shard_index: 1,
                    position,
                },
            ),
            &format!(
                "{size_crc} 0800 0100 0000 0000 0800000000000000  # GetShardIterator
                0600 6f7264657273                                  # stream 'orders'
                01000000                                           # shard_index 1
                {position_hex}                                     # StartPosition"
            ),
        );
    }
}

#[test]
fn get_records() {
    check(
        request(
            9,
            Request::GetRecords {
                iterator: "it-1",
                limit: 100,
            },
        ),
        "
        22000000 c750fe09 0900 0100 0000 0000 0900000000000000  # size 34, GetRecords
        0400 69742d31                                            # iterator 'it-1'
        64000000                                                 # limit 100
        ",
    );
}

#[test]
fn subscribe() {
    check(
        request(
            10,
            Request::Subscribe {
                stream: "orders",
                shard_index: 2,
                position: StartPosition::Latest,
            },
        ),
        "
        25000000 1a844557 0a00 0100 0000 0000 0a00000000000000  # size 37, Subscribe
        0600 6f7264657273                                        # stream 'orders'
        02000000                                                 # shard_index 2
        01                                                       # Latest
        ",
    );
}

#[test]
fn unsubscribe() {
    check(
        request(
            11,
            Request::Unsubscribe {
                subscription_id: 10,
            },
        ),
        "
        20000000 3c3baf99 0b00 0100 0000 0000 0b00000000000000  # size 32, Unsubscribe
        0a00000000000000                                         # subscription_id 10
        ",
    );
}

// ---------------------------------------------------------------------------
// Responses (flags 0x0001), errors (0x0003) and pushes (0x0005, 0x000d).

#[test]
fn pong() {
    check(
        response(
            Api::Ping,
            0x0807_0605_0403_0201,
            Response::Pong {
                nonce: 0x1122_3344_5566_7788,
            },
        ),
        "
        20000000 b2ad2284 0000 0100 0100 0000 0102030405060708  # size 32, Ping, RESPONSE
        8877665544332211                                         # nonce
        ",
    );
}

#[test]
fn done() {
    check(
        response(Api::CreateStream, 1, Response::Done),
        "
        18000000 456b369c 0100 0100 0100 0000 0100000000000000  # size 24, CreateStream, RESPONSE
        ",
    );
    check(
        response(Api::Subscribe, 10, Response::Done),
        "
        18000000 22a7549f 0a00 0100 0100 0000 0a00000000000000  # size 24, Subscribe, RESPONSE
        ",
    );
}

#[test]
fn stream() {
    check(
        response(
            Api::DescribeStream,
            3,
            Response::Stream(StreamInfo {
                name: "orders",
                status: "ACTIVE",
                retention_hours: 24,
                created_ms: 1_700_000_000_000,
                shards: vec![
                    ShardInfo {
                        shard_index: 0,
                        hash_key_start: 0,
                        hash_key_end: u128::MAX >> 1,
                    },
                    ShardInfo {
                        shard_index: 1,
                        hash_key_start: 1 << 127,
                        hash_key_end: u128::MAX,
                    },
                ],
            }),
        ),
        "
        80000000 4fe25922 0300 0100 0100 0000 0300000000000000  # size 128, DescribeStream
        0600 6f7264657273                                        # name 'orders'
        0600 414354495645                                        # status 'ACTIVE'
        18000000                                                 # retention_hours 24
        0068e5cf8b010000                                         # created_ms
        02000000                                                 # 2 shards
        00000000                                                 # shard 0
        00000000000000000000000000000000                         #   hash_key_start 0
        ffffffffffffffffffffffffffffff7f                         #   hash_key_end 2^127-1
        01000000                                                 # shard 1
        00000000000000000000000000000080                         #   hash_key_start 2^127
        ffffffffffffffffffffffffffffffff                         #   hash_key_end 2^128-1
        ",
    );
}

#[test]
fn stream_names() {
    check(
        response(
            Api::ListStreams,
            4,
            Response::StreamNames(vec!["a", "orders"]),
        ),
        "
        27000000 81668bf8 0400 0100 0100 0000 0400000000000000  # size 39, ListStreams
        02000000                                                 # 2 names
        0100 61                                                  # 'a'
        0600 6f7264657273                                        # 'orders'
        ",
    );
}

#[test]
fn shards() {
    check(
        response(
            Api::ListShards,
            5,
            Response::Shards {
                stream_id: 4,
                shards: vec![ShardInfo {
                    shard_index: 2,
                    hash_key_start: 5,
                    hash_key_end: 6,
                }],
            },
        ),
        "
        48000000 d962d311 0500 0100 0100 0000 0500000000000000  # size 72, ListShards
        0400000000000000                                         # stream_id 4
        01000000                                                 # 1 shard
        02000000                                                 # shard_index 2
        05000000000000000000000000000000                         # hash_key_start 5
        06000000000000000000000000000000                         # hash_key_end 6
        ",
    );
}

#[test]
fn put() {
    check(
        response(
            Api::PutRecord,
            6,
            Response::Put {
                shard_index: 3,
                offset: 42,
            },
        ),
        "
        24000000 90f6389f 0600 0100 0100 0000 0600000000000000  # size 36, PutRecord
        03000000                                                 # shard_index 3
        2a00000000000000                                         # offset 42
        ",
    );
}

#[test]
fn put_batches() {
    check(
        response(
            Api::PutRecords,
            7,
            Response::PutBatches(vec![
                BatchResult {
                    shard_index: 0,
                    outcome: Ok((42, 1)),
                },
                BatchResult {
                    shard_index: 3,
                    outcome: Err(Error::new(
                        ErrorCode::ProvisionedThroughputExceeded,
                        "slow down",
                    )),
                },
            ]),
        ),
        "
        3f000000 50956171 0700 0100 0100 0000 0700000000000000  # size 63, PutRecords
        02000000                                                 # 2 results
        00000000 0000 2a00000000000000 01000000                  # shard 0, ok, base 42, 1 record
        03000000 0500 0900 736c6f7720646f776e                    # shard 3, code 5, 'slow down'
        ",
    );
}

#[test]
fn iterator() {
    check(
        response(Api::GetShardIterator, 8, Response::Iterator("it-1")),
        "
        1e000000 9858da1a 0800 0100 0100 0000 0800000000000000  # size 30, GetShardIterator
        0400 69742d31                                            # iterator 'it-1'
        ",
    );
}

#[test]
fn records() {
    let b = batch_sealed();
    check(
        response(
            Api::GetRecords,
            9,
            Response::Records(Records {
                shard_index: 1,
                millis_behind_latest: 5,
                next_offset: 43,
                next_iterator: Some("it-2"),
                spans: vec![Span {
                    skip: 0,
                    take: 1,
                    batch: &b,
                }],
            }),
        ),
        concat!(
            "
            b8000000 3ae0eb95 0900 0100 0100 0000 0900000000000000  # size 184, GetRecords
            01000000                                                 # shard_index 1
            0500000000000000                                         # millis_behind_latest 5
            2b00000000000000                                         # next_offset 43
            01 0400 69742d32                                         # next_iterator Some('it-2')
            01000000                                                 # 1 span
            00000000 01000000                                        # skip 0, take 1
            70000000 0000000000                                      # length 112, pad to 72
            ",
            batch_sealed_hex!()
        ),
    );
}

#[test]
fn error_reply() {
    check(
        error(
            Api::DescribeStream as u16,
            3,
            ErrorCode::ResourceNotFound,
            "no stream orders",
        ),
        "
        2c000000 bd498da3 0300 0100 0300 0000 0300000000000000  # size 44, RESPONSE|ERROR
        0100                                                     # code 1 ResourceNotFound
        1000 6e6f2073747265616d206f7264657273                    # message 'no stream orders'
        ",
    );
}

#[test]
fn error_reply_to_an_unknown_api() {
    check(
        error(
            0x1234,
            12,
            ErrorCode::InvalidArgument,
            "unknown api key 4660",
        ),
        "
        30000000 35ca75a0 3412 0100 0300 0000 0c00000000000000  # size 48, api key 0x1234 echoed
        0300                                                     # code 3 InvalidArgument
        1400 756e6b6e6f776e20617069206b65792034363630            # 'unknown api key 4660'
        ",
    );
}

#[test]
fn push_frame() {
    let b = batch_sealed();
    check(
        push(
            10,
            Records {
                shard_index: 2,
                millis_behind_latest: 0,
                next_offset: 43,
                next_iterator: None,
                spans: vec![Span {
                    skip: 0,
                    take: 1,
                    batch: &b,
                }],
            },
            false,
        ),
        concat!(
            "
            b0000000 bf32ce3f 0a00 0100 0500 0000 0a00000000000000  # size 176, RESPONSE|PUSH
            02000000                                                 # shard_index 2
            0000000000000000                                         # millis_behind_latest 0
            2b00000000000000                                         # next_offset 43
            00                                                       # next_iterator None
            01000000                                                 # 1 span
            00000000 01000000                                        # skip 0, take 1
            70000000 000000                                          # length 112, pad to 64
            ",
            batch_sealed_hex!()
        ),
    );
}

#[test]
fn push_frame_end() {
    check(
        push(
            10,
            Records {
                shard_index: 2,
                millis_behind_latest: 0,
                next_offset: 43,
                next_iterator: None,
                spans: Vec::new(),
            },
            true,
        ),
        "
        31000000 b4cc49bd 0a00 0100 0d00 0000 0a00000000000000  # size 49, RESPONSE|PUSH|END
        02000000                                                 # shard_index 2
        0000000000000000                                         # millis_behind_latest 0
        2b00000000000000                                         # next_offset 43
        00                                                       # next_iterator None
        00000000                                                 # no spans
        ",
    );
}

// ---------------------------------------------------------------------------
// Properties of the codec as a whole.

#[test]
fn every_error_code_has_its_wire_value() {
    let codes = [
        (ErrorCode::ResourceNotFound, 1),
        (ErrorCode::ResourceInUse, 2),
        (ErrorCode::InvalidArgument, 3),
        (ErrorCode::ExpiredIterator, 4),
        (ErrorCode::ProvisionedThroughputExceeded, 5),
        (ErrorCode::LimitExceeded, 6),
        (ErrorCode::Internal, 7),
        (ErrorCode::StorageFailed, 8),
        (ErrorCode::ConcurrentModification, 9),
        (ErrorCode::KmsDisabled, 10),
        (ErrorCode::KmsNotFound, 11),
        (ErrorCode::KmsInvalidState, 12),
        (ErrorCode::KmsAccessDenied, 13),
        (ErrorCode::AccessDenied, 14),
    ];
    for (code, wire) in codes {
        let msg = error(Api::Ping as u16, 1, code, "why");
        let frame = encode(&msg);
        assert_eq!(frame[24..26], u16::to_le_bytes(wire), "{code:?}");
        round_trip(&msg, &frame, &Limits::default());
    }
}

#[test]
fn frames_append_to_a_buffer() {
    // Encoders append after what is already there; each frame's size and crc
    // cover only itself.
    let msgs = [
        request(1, Request::Ping { nonce: 9 }),
        error(Api::PutRecords as u16, 2, ErrorCode::Internal, "x"),
        response(Api::Ping, 1, Response::Pong { nonce: 9 }),
    ];
    let mut out = vec![0xAA; 8];
    for m in &msgs {
        out.extend_from_slice(&encode(m));
    }
    let mut rest = &out[8..];
    for m in &msgs {
        let n = frame_size(rest, u32::MAX).unwrap().unwrap();
        round_trip(m, &rest[..n], &Limits::default());
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
}

#[test]
fn default_frame_size_bounds() {
    // request: 24 + 1024 + batch_size_max (48 + 10 MiB + 500 * 64) + 500 * (48 + 32).
    assert_eq!(request_frame_size_max(&Limits::default()), 10_558_856);
    // response: 24 + 64 KiB + 10 MiB + 2 * batch_size_max + 10_000 * 32.
    assert_eq!(response_frame_size_max(&Limits::default()), 31_906_936);
    let header = |size: u32| {
        let mut h = vec![0; FRAME_HEADER_SIZE];
        h[..4].copy_from_slice(&size.to_le_bytes());
        h
    };
    assert_eq!(frame_size(&header(24), 100), Ok(Some(24)));
    assert_eq!(frame_size(&header(100), 100), Ok(Some(100)));
    assert_eq!(
        frame_size(&header(101), 100),
        Err(FrameError::BadSize {
            size: 101,
            min: 24,
            max: 100
        })
    );
    assert!(frame_size(&header(23), 100).is_err());
}

// ---------------------------------------------------------------------------
// Refused frames: each gets its own error.

fn ping_frame() -> Vec<u8> {
    encode(&request(1, Request::Ping { nonce: 9 }))
}

#[test]
fn header_errors() {
    let limits = Limits::default();
    let ping = ping_frame();
    let mut longer = ping.clone();
    longer.push(0);
    let mut bad_crc = ping.clone();
    bad_crc[24] ^= 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("valid", ping.clone(), "ok"),
        (
            "short header",
            ping[..10].to_vec(),
            "[closes] frame is incomplete: 10 bytes, need 24",
        ),
        (
            "size 0",
            patched(&ping, 0, &0u32.to_le_bytes()),
            "[closes] frame size 0 is outside 24..=10558856",
        ),
        (
            "size 23",
            patched(&ping, 0, &23u32.to_le_bytes()),
            "[closes] frame size 23 is outside",
        ),
        (
            "size over request_frame_size_max",
            patched(&ping, 0, &10_558_857u32.to_le_bytes()),
            "[closes] frame size 10558857 is outside 24..=10558856",
        ),
        (
            "size u32::MAX",
            patched(&ping, 0, &u32::MAX.to_le_bytes()),
            "[closes] frame size 4294967295",
        ),
        (
            "size at the bound, bytes missing",
            patched(&ping, 0, &10_558_856u32.to_le_bytes()),
            "buffer holds 32 bytes, header says 10558856",
        ),
        (
            "two frames in one buffer",
            [ping.clone(), ping.clone()].concat(),
            "buffer holds 64 bytes, header says 32",
        ),
        (
            "one byte too many",
            longer,
            "buffer holds 33 bytes, header says 32",
        ),
        ("body byte flipped", bad_crc, "frame crc mismatch"),
        (
            "crc flipped",
            {
                let mut f = ping.clone();
                f[4] ^= 0x80;
                f
            },
            "frame crc mismatch",
        ),
        (
            "unknown api 20",
            patched(&ping, 8, &20u16.to_le_bytes()),
            "unknown api key 20",
        ),
        (
            "unknown api 65535",
            patched(&ping, 8, &u16::MAX.to_le_bytes()),
            "unknown api key 65535",
        ),
        (
            "version 0",
            patched(&ping, 10, &0u16.to_le_bytes()),
            "unsupported api version 0 for api key 0",
        ),
        (
            "version 2",
            patched(&ping, 10, &2u16.to_le_bytes()),
            "unsupported api version 2 for api key 0",
        ),
        (
            "reserved 1",
            patched(&ping, 14, &1u16.to_le_bytes()),
            "bad frame flags 0x0000",
        ),
        (
            "unknown flag",
            patched(&ping, 12, &0x10u16.to_le_bytes()),
            "bad frame flags 0x0010",
        ),
        (
            "RESPONSE on a request",
            patched(&ping, 12, &flags::RESPONSE.to_le_bytes()),
            "bad frame flags 0x0001",
        ),
        (
            "PUSH on a request",
            patched(&ping, 12, &flags::PUSH.to_le_bytes()),
            "bad frame flags 0x0004",
        ),
        // Order: crc before flags before api before version.
        (
            "bad crc and unknown api",
            {
                let mut f = patched(&ping, 8, &99u16.to_le_bytes());
                f[4] ^= 1;
                f
            },
            "crc mismatch",
        ),
        (
            "unknown flag and unknown api",
            patched(&ping, 8, &[99, 0, 1, 0, 0x10, 0]),
            "bad frame flags 0x0010",
        ),
        (
            "unknown api and version",
            patched(&ping, 8, &[99, 0, 2, 0]),
            "unknown api key 99",
        ),
    ];
    for (name, frame, expected) in cases {
        check_err(name, Side::Request, &frame, &limits, expected);
    }
}

#[test]
fn request_body_errors() {
    let limits = Limits::default();
    let ping = Api::Ping as u16;
    let name = |n: usize, c: char| c.to_string().repeat(n);
    let create = |stream: &str| {
        raw(
            Api::CreateStream as u16,
            0,
            &Body::default().str(stream).u32(1),
        )
    };
    let get_records = |it: &str| raw(Api::GetRecords as u16, 0, &Body::default().str(it).u32(0));
    let iterator = |kind: u8| {
        raw(
            Api::GetShardIterator as u16,
            0,
            &Body::default().str("s").u32(0).u8(kind).bytes(&[0; 16]),
        )
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ping", raw(ping, 0, &Body::default().u64(1)), "ok"),
        (
            "ping, 7 byte body",
            raw(ping, 0, &Body::default().bytes(&[0; 7])),
            "malformed Ping: body ends at byte 31 but a field needs 8 bytes at 24",
        ),
        (
            "ping, 9 byte body",
            raw(ping, 0, &Body::default().bytes(&[0; 9])),
            "malformed Ping: 1 trailing bytes",
        ),
        (
            "ListStreams with a body",
            raw(Api::ListStreams as u16, 0, &Body::default().u8(0)),
            "malformed ListStreams: 1 trailing bytes",
        ),
        ("stream of 128 chars", create(&name(128, 'a')), "ok"),
        (
            "stream of 129 chars",
            create(&name(129, 'a')),
            "malformed CreateStream: stream is longer than 128 characters",
        ),
        ("stream of 128 4-byte chars", create(&name(128, '𝄞')), "ok"),
        (
            "stream of 129 2-byte chars",
            create(&name(129, 'é')),
            "stream is longer than 128 characters",
        ),
        (
            "stream of 513 bytes",
            create(&name(513, 'a')),
            "stream is longer than 128 characters",
        ),
        (
            "stream not UTF-8",
            raw(
                Api::DeleteStream as u16,
                0,
                &Body::default().u16(1).u8(0xff),
            ),
            "malformed DeleteStream: stream is not UTF-8",
        ),
        (
            "stream longer than the body",
            raw(
                Api::DeleteStream as u16,
                0,
                &Body::default().u16(100).bytes(b"abc"),
            ),
            "body ends at byte 29 but a field needs 100 bytes at 26",
        ),
        ("empty stream name", create(""), "ok"),
        (
            "iterator of 1024 chars",
            get_records(&name(1024, 'i')),
            "ok",
        ),
        (
            "iterator of 1025 chars",
            get_records(&name(1025, 'i')),
            "malformed GetRecords: iterator is longer than 1024 characters",
        ),
        (
            "position kind 4",
            iterator(4),
            "malformed GetShardIterator: 8 trailing bytes",
        ),
        (
            "position kind 5",
            iterator(5),
            "malformed StartPosition: unknown kind 5",
        ),
        ("position kind 255", iterator(255), "unknown kind 255"),
    ];
    for (name, frame, expected) in cases {
        check_err(name, Side::Request, &frame, &limits, expected);
    }
}

#[test]
fn batch_errors() {
    let limits = Limits::default();
    let one = batch_one();
    let put_record = |b: &[u8]| {
        encode(&request(
            1,
            Request::PutRecord {
                stream: "orders",
                batch: b,
            },
        ))
    };
    let put_records = |batches: &[&[u8]]| {
        let batches = batches
            .iter()
            .map(|b| ShardBatch {
                shard_index: 0,
                batch: b,
            })
            .collect();
        encode(&request(
            1,
            Request::PutRecords {
                stream: "s",
                stream_id: 0,
                batches,
            },
        ))
    };
    let good = put_record(&one);
    // PutRecord: stream "orders" ends at 32, length at 32..36, padding 36..40.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("PutRecord", good.clone(), "ok"),
        (
            "nonzero batch padding",
            patched(&good, 36, &[1]),
            "malformed PutRecord: nonzero batch padding",
        ),
        (
            "nonzero last padding byte",
            patched(&good, 39, &[0x80]),
            "nonzero batch padding",
        ),
        (
            "batch length past the body",
            patched(&good, 32, &113u32.to_le_bytes()),
            "body ends at byte 152 but a field needs 113 bytes at 40",
        ),
        (
            "batch length u32::MAX",
            patched(&good, 32, &u32::MAX.to_le_bytes()),
            "batch of 4294967295 bytes exceeds 10517808",
        ),
        (
            "PutRecord of two records",
            put_record(&batch_two()),
            "malformed PutRecord: the batch must hold exactly one record",
        ),
        (
            "PutRecord of no records",
            put_record(&batch_of(0)),
            "the batch must hold exactly one record",
        ),
        (
            "PutRecord of 10 bytes",
            put_record(&one[..10]),
            "the batch must hold exactly one record",
        ),
        (
            "PutRecords of 500 batches",
            put_records(&vec![&one[..]; 500]),
            "ok",
        ),
        (
            "PutRecords of 501 batches",
            put_records(&vec![&one[..]; 501]),
            "malformed PutRecords: batches has 501 entries, more than 500",
        ),
        (
            "PutRecords of 500 records",
            put_records(&[&batch_of(250), &batch_of(250)]),
            "ok",
        ),
        (
            "PutRecords of 501 records",
            put_records(&[&batch_of(250), &batch_of(251)]),
            "malformed PutRecords: more than 500 records in one request",
        ),
        ("PutRecords of no batches", put_records(&[]), "ok"),
        (
            "PutRecords claiming 3 batches, holding 1",
            raw(
                Api::PutRecords as u16,
                0,
                &Body::default().str("s").u64(0).u32(3).u32(0).batch(&one),
            ),
            "malformed PutRecords: batches claims 3 entries but only 121 bytes follow",
        ),
        (
            "PutRecords claiming u32::MAX batches",
            raw(
                Api::PutRecords as u16,
                0,
                &Body::default().str("s").u64(0).u32(u32::MAX),
            ),
            "batches has 4294967295 entries, more than 500",
        ),
    ];
    for (name, frame, expected) in cases {
        check_err(name, Side::Request, &frame, &limits, expected);
    }
}

#[test]
fn reply_errors() {
    let limits = Limits::default();
    let sealed = batch_sealed();
    let pong = encode(&response(Api::Ping, 1, Response::Pong { nonce: 9 }));
    let err = encode(&error(3, 1, ErrorCode::Internal, "x"));
    let end = encode(&push(
        1,
        Records {
            shard_index: 0,
            millis_behind_latest: 0,
            next_offset: 0,
            next_iterator: None,
            spans: Vec::new(),
        },
        true,
    ));
    let records = Api::GetRecords as u16;
    let resp = flags::RESPONSE;
    let error_flags = flags::RESPONSE | flags::ERROR;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("pong", pong.clone(), "ok"),
        ("error", err.clone(), "ok"),
        ("end push", end.clone(), "ok"),
        ("a request", ping_frame(), "bad frame flags 0x0000"),
        (
            "size 23",
            patched(&pong, 0, &23u32.to_le_bytes()),
            "frame size 23 is outside 24..=31906936",
        ),
        (
            "size over response_frame_size_max",
            patched(&pong, 0, &31_906_937u32.to_le_bytes()),
            "frame size 31906937 is outside",
        ),
        (
            "short header",
            pong[..23].to_vec(),
            "frame is incomplete: 23 bytes, need 24",
        ),
        (
            "one byte too many",
            [&pong[..], &[0]].concat(),
            "buffer holds 33 bytes, header says 32",
        ),
        (
            "bad crc",
            {
                let mut f = pong.clone();
                f[30] ^= 1;
                f
            },
            "frame crc mismatch",
        ),
        (
            "unknown api",
            patched(&pong, 8, &20u16.to_le_bytes()),
            "unknown api key 20",
        ),
        (
            "version 2",
            patched(&pong, 10, &2u16.to_le_bytes()),
            "unsupported api version 2",
        ),
        (
            "reserved",
            patched(&pong, 14, &1u16.to_le_bytes()),
            "bad frame flags 0x0001",
        ),
        (
            "unknown flag",
            patched(&pong, 12, &0x11u16.to_le_bytes()),
            "bad frame flags 0x0011",
        ),
        (
            "END without PUSH",
            patched(&pong, 12, &(resp | flags::END).to_le_bytes()),
            "bad frame flags 0x0009",
        ),
        (
            "push of another api",
            patched(&end, 8, &records.to_le_bytes()),
            "malformed Push: push frames belong to Subscribe, not api key 9",
        ),
        (
            "error with bad crc",
            {
                let mut f = err.clone();
                f[24] ^= 1;
                f
            },
            "frame crc mismatch",
        ),
        (
            "error to an unknown api",
            patched(&err, 8, &999u16.to_le_bytes()),
            "ok",
        ),
        (
            "error and PUSH",
            patched(&err, 12, &(error_flags | flags::PUSH).to_le_bytes()),
            "bad frame flags 0x0007",
        ),
        (
            "error, unknown flag",
            patched(&err, 12, &(error_flags | 0x100).to_le_bytes()),
            "bad frame flags 0x0103",
        ),
        (
            "error, reserved",
            patched(&err, 14, &1u16.to_le_bytes()),
            "bad frame flags 0x0003",
        ),
        (
            "error, version 0",
            patched(&err, 10, &0u16.to_le_bytes()),
            "unsupported api version 0 for api key 3",
        ),
        (
            "error code 0",
            patched(&err, 24, &0u16.to_le_bytes()),
            "malformed Error: unknown error code 0",
        ),
        (
            "error code 15",
            patched(&err, 24, &15u16.to_le_bytes()),
            "malformed Error: unknown error code 15",
        ),
        (
            "error, message of 4096 chars",
            raw(
                0,
                error_flags,
                &Body::default().u16(7).str(&"m".repeat(4096)),
            ),
            "ok",
        ),
        (
            "error, message of 4097 chars",
            raw(
                0,
                error_flags,
                &Body::default().u16(7).str(&"m".repeat(4097)),
            ),
            "malformed Error: message is longer than 4096 characters",
        ),
        (
            "error, trailing byte",
            raw(0, error_flags, &Body::default().u16(7).str("m").u8(0)),
            "malformed Error: 1 trailing bytes",
        ),
        (
            "error, no body",
            raw(0, error_flags, &Body::default()),
            "malformed Error: body ends at byte 24",
        ),
        (
            "status of 33 chars",
            raw(
                Api::DescribeStream as u16,
                resp,
                &Body::default()
                    .str("s")
                    .str(&"S".repeat(33))
                    .u32(24)
                    .u64(0)
                    .u32(0),
            ),
            "malformed DescribeStream: status is longer than 32 characters",
        ),
        (
            "stream names claim more than the body",
            raw(Api::ListStreams as u16, resp, &Body::default().u32(1000)),
            "malformed ListStreams: streams claims 1000 entries but only 0 bytes follow",
        ),
        (
            "shards claim u32::MAX",
            raw(
                Api::ListShards as u16,
                resp,
                &Body::default().u64(0).u32(u32::MAX).bytes(&[0; 36]),
            ),
            "shards claims 4294967295 entries but only 36 bytes follow",
        ),
        (
            "results claim more than the body",
            raw(
                Api::PutRecords as u16,
                resp,
                &Body::default().u32(3).u32(0).u16(0).u64(0).u32(1),
            ),
            "results claims 3 entries but only 18 bytes follow",
        ),
        (
            "results over 500",
            raw(Api::PutRecords as u16, resp, &Body::default().u32(501)),
            "malformed PutRecords: results has 501 entries, more than 500",
        ),
        (
            "result with code 99",
            raw(
                Api::PutRecords as u16,
                resp,
                &Body::default().u32(1).u32(0).u16(99).str("x"),
            ),
            "malformed PutRecords: unknown error code 99",
        ),
        (
            "records, option tag 2",
            raw(
                records,
                resp,
                &Body::default().u32(1).u64(0).u64(0).u8(2).u32(0),
            ),
            "malformed Records: bad option tag 2",
        ),
        (
            "records, next_iterator of 1025 chars",
            raw(
                records,
                resp,
                &Body::default()
                    .u32(1)
                    .u64(0)
                    .u64(0)
                    .u8(1)
                    .str(&"i".repeat(1025))
                    .u32(0),
            ),
            "malformed GetRecords: next_iterator is longer than 1024 characters",
        ),
        (
            "records, spans claim more than the body",
            raw(records, resp, &Body::default().records_head().u32(5)),
            "malformed GetRecords: spans claims 5 entries but only 0 bytes follow",
        ),
        (
            "records, spans over 10000",
            raw(records, resp, &Body::default().records_head().u32(10_001)),
            "spans has 10001 entries, more than 10000",
        ),
        (
            "records, span of its whole batch",
            raw(
                records,
                resp,
                &Body::default()
                    .records_head()
                    .u32(1)
                    .u32(0)
                    .u32(1)
                    .batch(&sealed),
            ),
            "ok",
        ),
        (
            "records, span past its batch",
            raw(
                records,
                resp,
                &Body::default()
                    .records_head()
                    .u32(1)
                    .u32(1)
                    .u32(1)
                    .batch(&sealed),
            ),
            "malformed Records: span reaches past its batch's records",
        ),
        (
            "records, take u32::MAX",
            raw(
                records,
                resp,
                &Body::default()
                    .records_head()
                    .u32(1)
                    .u32(u32::MAX)
                    .u32(u32::MAX)
                    .batch(&sealed),
            ),
            "span reaches past",
        ),
        (
            "records, nonzero padding",
            {
                let f = raw(
                    records,
                    resp,
                    &Body::default()
                        .records_head()
                        .u32(1)
                        .u32(0)
                        .u32(1)
                        .batch(&sealed),
                );
                patched(&f, f.len() - 113, &[1])
            },
            "malformed GetRecords: nonzero batch padding",
        ),
        (
            "push, trailing byte",
            raw(
                Api::Subscribe as u16,
                resp | flags::PUSH,
                &Body::default().records_head().u32(0).u8(0),
            ),
            "malformed Push: 1 trailing bytes",
        ),
    ];
    for (name, frame, expected) in cases {
        check_err(name, Side::Reply, &frame, &limits, expected);
    }
}

#[test]
fn custom_limits_are_honoured() {
    let limits = Limits {
        stream_name_chars_max: 8,
        put_records_count_max: 3,
        request_size_max: 0,
        get_records_count_max: 2,
        get_records_bytes_max: 0,
        ..Limits::default()
    };
    // batch_size_max = 48 + 0 + 3 * 64; the frame bounds follow from it.
    assert_eq!(limits.batch_size_max(), 240);
    assert_eq!(request_frame_size_max(&limits), 24 + 1024 + 240 + 3 * 80);
    assert_eq!(
        response_frame_size_max(&limits),
        24 + 65536 + 2 * 240 + 2 * 32
    );
    let (one, three, big) = (
        batch_one(),
        batch_of(3),
        BatchBuilder::new().encode(&[record("k", &[7; 200])]),
    );
    let two_two = batch_of(2);
    let huge = BatchBuilder::new().encode(&[record("k", &[7; 2000])]);
    let giant = BatchBuilder::new().encode(&[record("k", &[7; 70_000])]);
    let stream = |s| request(1, Request::DeleteStream { stream: s });
    fn put_record(b: &[u8]) -> Msg<'_> {
        request(
            1,
            Request::PutRecord {
                stream: "s",
                batch: b,
            },
        )
    }
    fn put_records(n: usize, b: &[u8]) -> Msg<'_> {
        let batches = (0..n)
            .map(|i| ShardBatch {
                shard_index: i as u32,
                batch: b,
            })
            .collect();
        request(
            1,
            Request::PutRecords {
                stream: "s",
                stream_id: 0,
                batches,
            },
        )
    }
    fn records(n: usize, b: &[u8]) -> Msg<'_> {
        let spans = vec![
            Span {
                skip: 0,
                take: 1,
                batch: b
            };
            n
        ];
        response(
            Api::GetRecords,
            1,
            Response::Records(Records {
                shard_index: 0,
                millis_behind_latest: 0,
                next_offset: 0,
                next_iterator: None,
                spans,
            }),
        )
    }
    let results = |n: u32| {
        let r = (0..n)
            .map(|i| BatchResult {
                shard_index: i,
                outcome: Ok((0, 1)),
            })
            .collect();
        response(Api::PutRecords, 1, Response::PutBatches(r))
    };
    // (name, message, under the small limits, under the defaults)
    let cases: Vec<(&str, Msg<'_>, &str, &str)> = vec![
        ("stream of 8 chars", stream("orders12"), "ok", "ok"),
        (
            "stream of 9 chars",
            stream("orders123"),
            "stream is longer than 8 characters",
            "ok",
        ),
        ("3 batches", put_records(3, &one), "ok", "ok"),
        (
            "4 batches",
            put_records(4, &one),
            "batches has 4 entries, more than 3",
            "ok",
        ),
        ("3 records in one batch", put_records(1, &three), "ok", "ok"),
        (
            "4 records in two batches",
            put_records(2, &two_two),
            "more than 3 records in one request",
            "ok",
        ),
        ("batch at batch_size_max", put_record(&one), "ok", "ok"),
        (
            "batch over batch_size_max",
            put_record(&big),
            "exceeds 240",
            "ok",
        ),
        (
            "frame over request_frame_size_max",
            put_record(&huge),
            "[closes] frame size 2144 is outside 24..=1528",
            "ok",
        ),
        ("2 spans", records(2, &one), "ok", "ok"),
        (
            "3 spans",
            records(3, &one),
            "spans has 3 entries, more than 2",
            "ok",
        ),
        ("3 results", results(3), "ok", "ok"),
        (
            "4 results",
            results(4),
            "results has 4 entries, more than 3",
            "ok",
        ),
        (
            "frame over response_frame_size_max",
            records(1, &giant),
            "frame size 70176 is outside 24..=66104",
            "ok",
        ),
    ];
    assert!(one.len() <= 240 && three.len() <= 240 && big.len() > 240);
    for (name, msg, small, default) in cases {
        let frame = encode(&msg);
        check_err(name, msg.side(), &frame, &limits, small);
        check_err(name, msg.side(), &frame, &Limits::default(), default);
    }
}

// ---------------------------------------------------------------------------
// Seeded randomized tests.

fn seed() -> u64 {
    let seed = match std::env::var("RIFFLE_SEED") {
        Ok(s) => s.parse().expect("RIFFLE_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("seed {seed} (replay: RIFFLE_SEED={seed})");
    seed
}

/// What random messages borrow from: a text of mixed-width characters and
/// batches of 1 to 4 records, some sealed.
struct Pool {
    text: String,
    /// Byte offset of every char boundary of `text`.
    bounds: Vec<usize>,
    batches: Vec<AlignedVec<16>>,
}

impl Pool {
    fn new(rng: &mut SmallRng) -> Pool {
        let alphabet = [
            'a', 'Z', '0', '-', '.', '_', ' ', 'é', '€', '𝄞', '\0', '\u{ffff}',
        ];
        let text: String = (0..5000)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let mut bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        bounds.push(text.len());
        let batches = (0..24)
            .map(|i| {
                let count = if i % 3 == 0 {
                    1
                } else {
                    rng.random_range(1..=4)
                };
                let data: Vec<Vec<u8>> = (0..count)
                    .map(|_| {
                        (0..rng.random_range(0..300))
                            .map(|_| rng.random())
                            .collect()
                    })
                    .collect();
                let records: Vec<RecordIn<'_>> = data
                    .iter()
                    .map(|d| RecordIn {
                        partition_key: "key",
                        explicit_hash_key: rng.random_bool(0.3).then(|| rng.random()),
                        data: d,
                        arrival_ms: 0,
                    })
                    .collect();
                let mut b = BatchBuilder::new().build(&records);
                if rng.random_bool(0.5) {
                    b.seal(rng.random_range(0..1 << 40), rng.random());
                }
                b.into_inner()
            })
            .collect();
        Pool {
            text,
            bounds,
            batches,
        }
    }

    /// A string of at most `chars_max` characters, often empty or exactly at the bound.
    fn str(&self, rng: &mut SmallRng, chars_max: usize) -> &str {
        let n = match rng.random_range(0..8) {
            0 => 0,
            1 => chars_max,
            _ => rng.random_range(0..=chars_max.min(40)),
        };
        let start = rng.random_range(0..self.bounds.len() - n);
        &self.text[self.bounds[start]..self.bounds[start + n]]
    }

    fn batch(&self, rng: &mut SmallRng) -> &[u8] {
        &self.batches[rng.random_range(0..self.batches.len())]
    }

    fn single_record_batch(&self, rng: &mut SmallRng) -> &[u8] {
        loop {
            let b = self.batch(rng);
            if record_count(b) == 1 {
                return b;
            }
        }
    }
}

fn record_count(batch: &[u8]) -> u32 {
    u32::from_le_bytes(batch[24..28].try_into().unwrap())
}

fn small(rng: &mut SmallRng) -> usize {
    if rng.random_bool(0.9) {
        rng.random_range(0..4)
    } else {
        rng.random_range(0..40)
    }
}

fn random_position(rng: &mut SmallRng) -> StartPosition {
    match rng.random_range(0..5) {
        0 => StartPosition::TrimHorizon,
        1 => StartPosition::Latest,
        2 => StartPosition::AtSequenceNumber(rng.random()),
        3 => StartPosition::AfterSequenceNumber(rng.random()),
        _ => StartPosition::AtTimestamp(rng.random()),
    }
}

fn random_lease_checkpoint(rng: &mut SmallRng) -> LeaseCheckpoint {
    match rng.random_range(0..4) {
        0 => LeaseCheckpoint::TrimHorizon,
        1 => LeaseCheckpoint::Latest,
        2 => LeaseCheckpoint::After {
            sequence_number: rng.random(),
            sub_sequence_number: rng.random_bool(0.5).then(|| rng.random()),
        },
        _ => LeaseCheckpoint::ShardEnd,
    }
}

fn random_shard(rng: &mut SmallRng) -> ShardInfo {
    ShardInfo {
        shard_index: rng.random(),
        hash_key_start: rng.random(),
        hash_key_end: rng.random(),
    }
}

fn random_error(rng: &mut SmallRng, pool: &Pool) -> Error {
    let codes = [
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceInUse,
        ErrorCode::InvalidArgument,
        ErrorCode::ExpiredIterator,
        ErrorCode::ProvisionedThroughputExceeded,
        ErrorCode::LimitExceeded,
        ErrorCode::Internal,
        ErrorCode::StorageFailed,
        ErrorCode::ConcurrentModification,
    ];
    let code = codes[rng.random_range(0..codes.len())];
    Error::new(code, pool.str(rng, 4096))
}

fn random_records<'p>(rng: &mut SmallRng, pool: &'p Pool, iterator: bool) -> Records<'p> {
    let spans = (0..small(rng).min(8))
        .map(|_| {
            let batch = pool.batch(rng);
            let count = record_count(batch);
            let skip = rng.random_range(0..=count);
            let take = rng.random_range(0..=count - skip);
            Span { skip, take, batch }
        })
        .collect();
    Records {
        shard_index: rng.random(),
        millis_behind_latest: rng.random(),
        next_offset: rng.random(),
        next_iterator: (iterator && rng.random_bool(0.7)).then(|| pool.str(rng, 1024)),
        spans,
    }
}

fn random_msg<'p>(rng: &mut SmallRng, pool: &'p Pool) -> Msg<'p> {
    let id = rng.random();
    let name = |rng: &mut SmallRng| pool.str(rng, 128);
    if rng.random_bool(0.5) {
        let api = Api::ALL[rng.random_range(0..Api::ALL.len())];
        let request = match api {
            Api::Ping => Request::Ping {
                nonce: rng.random(),
            },
            Api::CreateStream => Request::CreateStream {
                stream: name(rng),
                shard_count: rng.random(),
            },
            Api::DeleteStream => Request::DeleteStream { stream: name(rng) },
            Api::DescribeStream => Request::DescribeStream { stream: name(rng) },
            Api::ListStreams => Request::ListStreams,
            Api::ListShards => Request::ListShards { stream: name(rng) },
            Api::PutRecord => Request::PutRecord {
                stream: name(rng),
                batch: pool.single_record_batch(rng),
            },
            Api::PutRecords => Request::PutRecords {
                stream: name(rng),
                stream_id: rng.random(),
                batches: (0..small(rng))
                    .map(|_| ShardBatch {
                        shard_index: rng.random(),
                        batch: pool.batch(rng),
                    })
                    .collect(),
            },
            Api::GetShardIterator => Request::GetShardIterator {
                stream: name(rng),
                shard_index: rng.random(),
                position: random_position(rng),
            },
            Api::GetRecords => Request::GetRecords {
                iterator: pool.str(rng, 1024),
                limit: rng.random(),
            },
            Api::Subscribe => Request::Subscribe {
                stream: name(rng),
                shard_index: rng.random(),
                position: random_position(rng),
            },
            Api::Unsubscribe => Request::Unsubscribe {
                subscription_id: rng.random(),
            },
            Api::FirehosePutRecordBatch => Request::FirehosePutRecordBatch {
                delivery_stream: pool.str(rng, 64),
                records: (0..small(rng)).map(|_| pool.batch(rng)).collect(),
            },
            Api::FirehoseDescribe => Request::FirehoseDescribe {
                delivery_stream: pool.str(rng, 64),
            },
            Api::GroupHeartbeat => Request::GroupHeartbeat {
                stream: name(rng),
                group: pool.str(rng, 128),
                worker: pool.str(rng, 128),
                failover_ms: rng.random(),
                initial: match rng.random_bool(0.5) {
                    true => InitialPosition::TrimHorizon,
                    false => InitialPosition::Latest,
                },
                released: (0..small(rng)).map(|_| rng.random()).collect(),
            },
            Api::GroupCheckpoint => Request::GroupCheckpoint {
                stream: name(rng),
                group: pool.str(rng, 128),
                worker: pool.str(rng, 128),
                shard_index: rng.random(),
                counter: rng.random(),
                checkpoint: random_lease_checkpoint(rng),
            },
            Api::GroupDescribe => Request::GroupDescribe {
                stream: name(rng),
                group: pool.str(rng, 128),
            },
            Api::GroupLeave => Request::GroupLeave {
                stream: name(rng),
                group: pool.str(rng, 128),
                worker: pool.str(rng, 128),
            },
            Api::AuthChallenge => Request::AuthChallenge,
            Api::Authenticate => Request::Authenticate {
                access_key_id: pool.str(rng, 128),
                proof: rng.random(),
            },
        };
        return Msg::Request { id, request };
    }
    match rng.random_range(0..10) {
        0 => Msg::Reply {
            api_key: rng.random(),
            id,
            reply: Reply::Error(random_error(rng, pool)),
        },
        1 => push(id, random_records(rng, pool, false), rng.random()),
        _ => {
            let api = Api::ALL[rng.random_range(0..Api::ALL.len())];
            let r = match api {
                Api::Ping => Response::Pong {
                    nonce: rng.random(),
                },
                Api::CreateStream | Api::DeleteStream | Api::Subscribe | Api::Unsubscribe => {
                    Response::Done
                }
                Api::DescribeStream => Response::Stream(StreamInfo {
                    name: name(rng),
                    status: pool.str(rng, 32),
                    retention_hours: rng.random(),
                    created_ms: rng.random(),
                    shards: (0..small(rng)).map(|_| random_shard(rng)).collect(),
                }),
                Api::ListStreams => {
                    Response::StreamNames((0..small(rng)).map(|_| name(rng)).collect())
                }
                Api::ListShards => Response::Shards {
                    stream_id: rng.random(),
                    shards: (0..small(rng)).map(|_| random_shard(rng)).collect(),
                },
                Api::PutRecord => Response::Put {
                    shard_index: rng.random(),
                    offset: rng.random(),
                },
                Api::PutRecords => Response::PutBatches(
                    (0..small(rng))
                        .map(|_| BatchResult {
                            shard_index: rng.random(),
                            outcome: if rng.random_bool(0.6) {
                                Ok((rng.random(), rng.random()))
                            } else {
                                Err(random_error(rng, pool))
                            },
                        })
                        .collect(),
                ),
                Api::GetShardIterator => Response::Iterator(pool.str(rng, 1024)),
                Api::GetRecords => Response::Records(random_records(rng, pool, true)),
                Api::FirehosePutRecordBatch => Response::FirehosePutBatch(FirehosePutBatch {
                    encrypted: rng.random(),
                    results: (0..small(rng))
                        .map(|_| match rng.random_bool(0.6) {
                            true => FirehoseRecordResult::Stored {
                                record_id: pool.str(rng, 256),
                            },
                            false => FirehoseRecordResult::Failed {
                                error_code: pool.str(rng, 128),
                                message: pool.str(rng, 4096),
                            },
                        })
                        .collect(),
                }),
                Api::FirehoseDescribe => Response::FirehoseDescription(pool.str(rng, 4096)),
                Api::GroupHeartbeat => Response::GroupLeases(
                    (0..small(rng))
                        .map(|_| HeldLease {
                            shard_index: rng.random(),
                            counter: rng.random(),
                            revoked: rng.random(),
                            checkpoint: random_lease_checkpoint(rng),
                            parents: (0..rng.random_range(0..=2)).map(|_| rng.random()).collect(),
                        })
                        .collect(),
                ),
                Api::GroupDescribe => Response::GroupTable {
                    rows: (0..small(rng))
                        .map(|_| LeaseRow {
                            shard_index: rng.random(),
                            owner: rng.random_bool(0.5).then(|| pool.str(rng, 128)),
                            counter: rng.random(),
                            checkpoint: random_lease_checkpoint(rng),
                            parents: (0..rng.random_range(0..=2)).map(|_| rng.random()).collect(),
                        })
                        .collect(),
                    workers: (0..small(rng)).map(|_| pool.str(rng, 128)).collect(),
                },
                Api::GroupCheckpoint | Api::GroupLeave => Response::GroupDone,
                Api::AuthChallenge => Response::Challenge {
                    nonce: rng.random(),
                },
                Api::Authenticate => Response::Authenticated {
                    principal: pool.str(rng, 2048),
                },
            };
            response(api, id, r)
        }
    }
}

#[test]
fn random_messages_round_trip() {
    let mut rng = SmallRng::seed_from_u64(seed());
    let pool = Pool::new(&mut rng);
    let limits = Limits::default();
    for _ in 0..10_000 {
        let msg = random_msg(&mut rng, &pool);
        let frame = encode(&msg);
        round_trip(&msg, &frame, &limits);
    }
}

/// Decodes `frame` both ways; whatever decodes must encode to the same bytes
/// (one encoding per message, so nothing a decoder accepts is ambiguous).
fn decode_canonical(frame: &[u8], limits: &Limits) -> usize {
    let mut decoded = 0;
    for side in [Side::Request, Side::Reply] {
        if let Ok(msg) = decode(side, frame, limits) {
            assert!(
                encode(&msg) == frame,
                "{side:?} decoded to {msg:?}, which encodes differently from\n{}",
                hex(frame)
            );
            decoded += 1;
        }
    }
    decoded
}

fn mutate(rng: &mut SmallRng, frame: &mut Vec<u8>) {
    const INTERESTING: [u32; 12] = [0, 1, 2, 7, 8, 24, 255, 500, 501, 1025, 0xffff, u32::MAX];
    let len = frame.len();
    match rng.random_range(0..8) {
        0 if len > 0 => {
            let at = rng.random_range(0..len);
            frame[at] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let at = rng.random_range(0..len);
            frame[at] = rng.random();
        }
        2 => frame.truncate(rng.random_range(0..=len)),
        3 => frame.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
        4 if len > 0 => {
            frame.remove(rng.random_range(0..len));
        }
        5 => frame.insert(rng.random_range(0..=len), rng.random()),
        6 if len >= 4 => {
            let at = rng.random_range(0..=len - 4);
            let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
            frame[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            *frame = (0..rng.random_range(0..160))
                .map(|_| rng.random())
                .collect()
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = SmallRng::seed_from_u64(seed());
    let pool = Pool::new(&mut rng);
    let limits = Limits::default();
    let small_limits = Limits {
        stream_name_chars_max: 4,
        put_records_count_max: 2,
        get_records_count_max: 2,
        ..Limits::default()
    };
    let mut decoded = 0;
    for i in 0..100_000 {
        let mut frame = encode(&random_msg(&mut rng, &pool));
        for _ in 0..rng.random_range(1..=3) {
            mutate(&mut rng, &mut frame);
        }
        // Mostly make size and crc right, so the mutation reaches the body.
        if frame.len() >= FRAME_HEADER_SIZE && rng.random_bool(0.8) {
            let len = frame.len() as u32;
            frame[..4].copy_from_slice(&len.to_le_bytes());
            reseal(&mut frame);
        }
        let limits = if i % 4 == 0 { &small_limits } else { &limits };
        decoded += decode_canonical(&frame, limits);
    }
    // Not a property, a sanity check that mutations do not all die at the crc.
    assert!(decoded > 1000, "only {decoded} mutated frames decoded");
}
