//! Firehose's operations on the native protocol: `FirehosePutRecordBatch`
//! (AWS's PutRecordBatch) and `FirehoseDescribe` (DescribeDeliveryStream).
//! Their bodies' codecs live here; `messages.rs` routes to them. The server
//! side is an extension the binary registers (`riffle_engine::net::Extension`,
//! implemented by riffle-firehose), so a server without Firehose answers them
//! with an error, as a server older than these api keys does ("unknown api key").
//!
//! Wire layouts (notation of `messages.rs`; `bytes` = u32 length + the bytes,
//! no padding; `text` = `bytes` holding UTF-8):
//! ```text
//! FirehosePutRecordBatch request   str delivery_stream, [bytes record data]
//! FirehosePutRecordBatch response  u8 encrypted (0|1), [result]
//!   result                         u8 0, str record_id
//!                                | u8 1, str error_code, str error_message
//! FirehoseDescribe request         str delivery_stream
//! FirehoseDescribe response        text: DescribeDeliveryStream's JSON answer
//! ```
//! Records are plain byte strings, not record batches (`batch.rs`): a Firehose
//! record has no partition key, hash key or arrival time, and the server puts
//! the records through the same path as the JSON API's PutRecordBatch (into
//! its internal stream, on a shard it picks), so a batch built by the client
//! could not be appended as sent anyway. The frame's crc covers them.
//!
//! FailedPutCount is not on the wire: it is the number of failed results
//! ([`FirehosePutBatch::failed_put_count`]), so the two cannot disagree. A
//! per-record failure carries AWS's error code as text
//! (`ServiceUnavailableException`), as AWS's RequestResponses do; errors of a
//! whole call are the protocol's error frames (`riffle_protocol::ErrorCode`).
//!
//! DescribeDeliveryStream's answer travels as its JSON text: the description
//! is a deep tree (source, encryption, destinations of several kinds with
//! their processing, buffering, partitioning and failure details) that the
//! server already builds as AWS answers it; a binary form would be a second
//! schema to keep in step with every destination kind, and lossy.
//!
//! Bounds: the decoder enforces what bounds allocation and reading (names of
//! at most [`DELIVERY_STREAM_NAME_CHARS_MAX`] characters, at most
//! [`PUT_RECORD_BATCH_COUNT_MAX`] records, the frame size); AWS's other limits
//! ([`RECORD_DATA_SIZE_MAX`], [`PUT_RECORD_BATCH_BYTES_MAX`], names' pattern,
//! at least one record) are checked by the server, which refuses them in
//! AWS's words, and by the client before it sends.

use super::frame::{FRAME_HEADER_SIZE, FrameError, FrameReader, FrameWriter};
use super::messages::{ERROR_MESSAGE_CHARS_MAX, Request, truncated};

// AWS's Firehose constants. They are not in `Limits` (which configures the
// Kinesis data path): AWS's own constants sit beside the code that answers
// with them, and no server setting changes them.

/// AWS: delivery stream names are 1 to 64 characters of `[a-zA-Z0-9_.-]`.
pub const DELIVERY_STREAM_NAME_CHARS_MAX: u32 = 64;
/// AWS: PutRecordBatch takes at most 500 records.
pub const PUT_RECORD_BATCH_COUNT_MAX: u32 = 500;
/// AWS: a record's data is at most 1,000 KiB (the model's `Data` blob maximum).
pub const RECORD_DATA_SIZE_MAX: usize = 1000 * 1024;
/// AWS: a PutRecordBatch's records' data together is at most 4 MiB.
pub const PUT_RECORD_BATCH_BYTES_MAX: usize = 4 << 20;
/// Record ids are opaque to clients; the server's are 28 characters.
pub const RECORD_ID_CHARS_MAX: u32 = 256;
/// AWS's error codes are exception names (`ServiceUnavailableException`).
pub const ERROR_CODE_CHARS_MAX: u32 = 128;

/// The largest FirehosePutRecordBatch request frame at AWS's limits: the
/// header, a name of 64 four-byte characters, the records' lengths and data.
/// The server's request frame bound (`frame::request_frame_size_max`) holds it
/// with the default `Limits` (a test checks it).
pub const REQUEST_FRAME_SIZE_MAX: u32 = (FRAME_HEADER_SIZE
    + 2
    + 4 * DELIVERY_STREAM_NAME_CHARS_MAX as usize
    + 4
    + 4 * PUT_RECORD_BATCH_COUNT_MAX as usize
    + PUT_RECORD_BATCH_BYTES_MAX) as u32;

// A batch of maximal records cannot fit the call's bound: both bounds matter.
const _: () = assert!(
    PUT_RECORD_BATCH_COUNT_MAX as usize * RECORD_DATA_SIZE_MAX > PUT_RECORD_BATCH_BYTES_MAX
);
const _: () = assert!(RECORD_DATA_SIZE_MAX < PUT_RECORD_BATCH_BYTES_MAX);

/// One record's outcome in a FirehosePutRecordBatch answer, in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirehoseRecordResult<'a> {
    /// Stored durably; AWS's RecordId.
    Stored { record_id: &'a str },
    /// Not stored: AWS's ErrorCode (`ServiceUnavailableException`) and ErrorMessage.
    Failed {
        error_code: &'a str,
        message: &'a str,
    },
}

/// The answer to a FirehosePutRecordBatch (AWS's PutRecordBatchOutput).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirehosePutBatch<'a> {
    /// Whether the delivery stream encrypts records at rest.
    pub encrypted: bool,
    /// One per record sent, in order.
    pub results: Vec<FirehoseRecordResult<'a>>,
}

impl FirehosePutBatch<'_> {
    /// AWS's FailedPutCount.
    pub fn failed_put_count(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r, FirehoseRecordResult::Failed { .. }))
            .count()
    }
}

pub(super) fn put_request(w: &mut FrameWriter<'_>, delivery_stream: &str, records: &[&[u8]]) {
    w.str(delivery_stream);
    w.u32(records.len() as u32);
    for r in records {
        w.bytes(r);
    }
}

pub(super) fn get_put_request<'a>(r: &mut FrameReader<'a>) -> Result<Request<'a>, FrameError> {
    let delivery_stream = r.str("delivery_stream", DELIVERY_STREAM_NAME_CHARS_MAX)?;
    let count = r.count("records", PUT_RECORD_BATCH_COUNT_MAX, 4)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        // The frame bounds the data; AWS's sizes are the server's to refuse.
        records.push(r.bytes("record", usize::MAX)?);
    }
    Ok(Request::FirehosePutRecordBatch {
        delivery_stream,
        records,
    })
}

pub(super) fn get_describe_request<'a>(r: &mut FrameReader<'a>) -> Result<Request<'a>, FrameError> {
    Ok(Request::FirehoseDescribe {
        delivery_stream: r.str("delivery_stream", DELIVERY_STREAM_NAME_CHARS_MAX)?,
    })
}

pub(super) fn put_put_batch(w: &mut FrameWriter<'_>, batch: &FirehosePutBatch<'_>) {
    w.u8(batch.encrypted as u8);
    w.u32(batch.results.len() as u32);
    for result in &batch.results {
        match *result {
            FirehoseRecordResult::Stored { record_id } => {
                w.u8(0);
                w.str(record_id)
            }
            FirehoseRecordResult::Failed {
                error_code,
                message,
            } => {
                w.u8(1);
                w.str(error_code);
                w.str(truncated(message))
            }
        }
    }
}

pub(super) fn get_put_batch<'a>(
    r: &mut FrameReader<'a>,
) -> Result<FirehosePutBatch<'a>, FrameError> {
    let encrypted = match r.u8()? {
        0 => false,
        1 => true,
        b => {
            return Err(FrameError::malformed(
                "FirehosePutRecordBatch",
                format!("encrypted is {b}, not 0 or 1"),
            ));
        }
    };
    let count = r.count("results", PUT_RECORD_BATCH_COUNT_MAX, 1 + 2)?;
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        results.push(match r.u8()? {
            0 => FirehoseRecordResult::Stored {
                record_id: r.str("record_id", RECORD_ID_CHARS_MAX)?,
            },
            1 => FirehoseRecordResult::Failed {
                error_code: r.str("error_code", ERROR_CODE_CHARS_MAX)?,
                message: r.str("error_message", ERROR_MESSAGE_CHARS_MAX)?,
            },
            t => {
                return Err(FrameError::malformed(
                    "FirehosePutRecordBatch",
                    format!("unknown result tag {t}"),
                ));
            }
        });
    }
    Ok(FirehosePutBatch { encrypted, results })
}

pub(super) fn get_description<'a>(
    r: &mut FrameReader<'a>,
    frame_size_max: u32,
) -> Result<&'a str, FrameError> {
    r.text("description", frame_size_max as usize)
}

#[cfg(test)]
mod tests {
    //! Golden bytes, round trips, truncation at every byte and refusals of the
    //! Firehose messages (the style of `protocol/tests/native_codec.rs`).

    use super::*;
    use crate::Limits;
    use crate::native::{
        Api, Reply, Response, decode_reply, decode_request, encode_request, encode_response,
        request_frame_size_max,
    };

    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s
            .lines()
            .map(|l| l.split('#').next().unwrap())
            .collect::<String>()
            .split_whitespace()
            .collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    fn request_frame(request: &Request<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(&mut out, 7, request);
        out
    }

    fn response_frame(api: Api, response: &Response<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_response(&mut out, api, 7, response);
        out
    }

    /// Compares a frame with its golden bytes, crc aside (the decoders check it).
    fn check_golden(frame: &[u8], golden: &str) {
        let mut expected = hex(golden);
        expected[4..8].copy_from_slice(&frame[4..8]);
        assert_eq!(frame, expected.as_slice());
    }

    #[test]
    fn put_request_golden_round_trip_and_truncation() {
        let limits = Limits::default();
        let request = Request::FirehosePutRecordBatch {
            delivery_stream: "s",
            records: vec![b"ab", b""],
        };
        let frame = request_frame(&request);
        check_golden(
            &frame,
            "29000000 00000000 0c00 0100 0000 0000 0700000000000000  # size 41, api 12, v1, id 7
             0100 73                                                  # delivery_stream 's'
             02000000                                                 # 2 records
             02000000 6162                                            # 'ab'
             00000000                                                 # ''",
        );
        let (header, decoded) = decode_request(&frame, &limits).unwrap();
        assert_eq!((header.request_id, decoded), (7, request));
        for len in 0..frame.len() {
            assert!(decode_request(&frame[..len], &limits).is_err(), "{len}");
        }
    }

    #[test]
    fn describe_golden_and_round_trips() {
        let limits = Limits::default();
        let request = Request::FirehoseDescribe {
            delivery_stream: "s",
        };
        let frame = request_frame(&request);
        check_golden(
            &frame,
            "1b000000 00000000 0d00 0100 0000 0000 0700000000000000  # size 27, api 13
             0100 73                                                  # 's'",
        );
        assert_eq!(decode_request(&frame, &limits).unwrap().1, request);
        let json = r#"{"DeliveryStreamDescription":{"DeliveryStreamName":"s"}}"#;
        let response = Response::FirehoseDescription(json);
        let frame = response_frame(Api::FirehoseDescribe, &response);
        assert_eq!(&frame[24..28], (json.len() as u32).to_le_bytes());
        assert_eq!(
            decode_reply(&frame, &limits).unwrap().1,
            Reply::Response(response)
        );
        for len in 0..frame.len() {
            assert!(decode_reply(&frame[..len], &limits).is_err(), "{len}");
        }
    }

    #[test]
    fn put_response_golden_round_trip_and_truncation() {
        let limits = Limits::default();
        let batch = FirehosePutBatch {
            encrypted: true,
            results: vec![
                FirehoseRecordResult::Stored { record_id: "id" },
                FirehoseRecordResult::Failed {
                    error_code: "E",
                    message: "m",
                },
            ],
        };
        assert_eq!(batch.failed_put_count(), 1);
        let response = Response::FirehosePutBatch(batch);
        let frame = response_frame(Api::FirehosePutRecordBatch, &response);
        check_golden(
            &frame,
            "29000000 00000000 0c00 0100 0100 0000 0700000000000000  # size 41, api 12, response
             01                                                       # encrypted
             02000000                                                 # 2 results
             00 0200 6964                                             # stored 'id'
             01 0100 45 0100 6d                                       # failed 'E' 'm'",
        );
        assert_eq!(
            decode_reply(&frame, &limits).unwrap().1,
            Reply::Response(response)
        );
        for len in 0..frame.len() {
            assert!(decode_reply(&frame[..len], &limits).is_err(), "{len}");
        }
    }

    /// Patches bytes of a frame at `at` and re-seals its crc.
    fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&f[8..]);
        f[4..8].copy_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn refusals() {
        let limits = Limits::default();
        let long_name = "n".repeat(65);
        let over: Vec<&[u8]> = vec![b"x"; 501];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "501 records",
                request_frame(&Request::FirehosePutRecordBatch {
                    delivery_stream: "s",
                    records: over,
                }),
                "records has 501 entries, more than 500",
            ),
            (
                "a name of 65 characters",
                request_frame(&Request::FirehoseDescribe {
                    delivery_stream: &long_name,
                }),
                "delivery_stream is longer than 64 characters",
            ),
            (
                "a record longer than the body",
                patched(
                    &request_frame(&Request::FirehosePutRecordBatch {
                        delivery_stream: "s",
                        records: vec![b"ab"],
                    }),
                    31,
                    &9u32.to_le_bytes(),
                ),
                "body ends at byte 37 but a field needs 9 bytes at 35",
            ),
            (
                "a count promising more than the body holds",
                patched(
                    &request_frame(&Request::FirehosePutRecordBatch {
                        delivery_stream: "s",
                        records: vec![b"ab"],
                    }),
                    27,
                    &3u32.to_le_bytes(),
                ),
                "records claims 3 entries but only 6 bytes follow",
            ),
        ];
        for (what, frame, expected) in cases {
            let e = decode_request(&frame, &limits).unwrap_err().1.to_string();
            assert!(e.contains(expected), "{what}: {e}");
        }
        let stored = response_frame(
            Api::FirehosePutRecordBatch,
            &Response::FirehosePutBatch(FirehosePutBatch {
                encrypted: false,
                results: vec![FirehoseRecordResult::Stored { record_id: "id" }],
            }),
        );
        let description =
            response_frame(Api::FirehoseDescribe, &Response::FirehoseDescription("{}"));
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("encrypted 2", patched(&stored, 24, &[2]), "encrypted is 2"),
            (
                "result tag 2",
                patched(&stored, 29, &[2]),
                "unknown result tag 2",
            ),
            (
                "a description that is not UTF-8",
                patched(&description, 28, &[0xff]),
                "description is not UTF-8",
            ),
        ];
        for (what, frame, expected) in cases {
            let e = decode_reply(&frame, &limits).unwrap_err().to_string();
            assert!(e.contains(expected), "{what}: {e}");
        }
    }

    #[test]
    fn the_largest_batch_fits_the_request_frame_bound() {
        let data = vec![7u8; RECORD_DATA_SIZE_MAX];
        let mut records: Vec<&[u8]> =
            vec![&data; PUT_RECORD_BATCH_BYTES_MAX / RECORD_DATA_SIZE_MAX];
        let rest = vec![7u8; PUT_RECORD_BATCH_BYTES_MAX % RECORD_DATA_SIZE_MAX];
        records.push(&rest);
        let name = "n".repeat(DELIVERY_STREAM_NAME_CHARS_MAX as usize);
        let frame = request_frame(&Request::FirehosePutRecordBatch {
            delivery_stream: &name,
            records,
        });
        assert!(frame.len() <= REQUEST_FRAME_SIZE_MAX as usize);
        // AWS's Kinesis limits (the default) bound request frames above it.
        let limits = Limits::default();
        assert!(request_frame_size_max(&limits) >= REQUEST_FRAME_SIZE_MAX);
        assert!(decode_request(&frame, &limits).is_ok());
    }
}
