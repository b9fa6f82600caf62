//! What an output writes: the rows of an in-application stream's batch as
//! records, one per row, in the output's `DestinationSchema.RecordFormatType`
//! (docs/analytics-design.md §2.6), and error_stream's rows as a batch
//! (§2.4), so an output named `error_stream` is encoded like any other.
//!
//! Pure: no runtime. The writer tasks (§5.9) call [`encode_rows`] and send
//! the records; the sources and pumps turn their `DecodeError`s and
//! `PumpError`s into [`ErrorRow`]s and [`error_batch`]es.
//!
//! Value text, the same in JSON and CSV (**Riffle**: AWS's exact forms are
//! unverified):
//! - BOOLEAN `true`/`false`; integers in decimal;
//! - REAL and DOUBLE as the shortest text that reads back as the same value
//!   of that width (REAL 0.1 is `0.1`), never in exponent form (REAL 1e20
//!   is `100000000000000000000`); NaN and ±infinity are not JSON numbers
//!   and are written as NULL;
//! - DECIMAL from its exact digits, all of its scale (`5.00`, `-0.05`);
//! - TIMESTAMP `yyyy-MM-dd HH:mm:ss.SSS`, DATE `yyyy-MM-dd`, TIME
//!   `HH:mm:ss.SSS` (UTC);
//! - BINARY/VARBINARY as lowercase hex (`de0f`), as error_stream's DATA_ROW.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time32MillisecondType, TimestampMillisecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time32MillisecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use riffle_protocol::time::civil_from_days;

use crate::decode::{DecodeError, ERROR_DATA_MAX, ROWTIME, SQL_TYPE_METADATA};
use crate::exec::pump::PumpError;
use crate::schema::SqlType;

/// error_stream's `ERROR_LEVEL VARCHAR(10)`.
pub const ERROR_LEVEL_CHARS_MAX: usize = 10;
/// error_stream's `ERROR_NAME VARCHAR(32)`.
pub const ERROR_NAME_CHARS_MAX: usize = 32;
/// error_stream's `MESSAGE VARCHAR(4096)`.
pub const MESSAGE_CHARS_MAX: usize = 4096;
/// error_stream's `DATA_ROW VARCHAR(49152)`: hex, two characters a byte.
pub const DATA_ROW_CHARS_MAX: usize = 49_152;
/// error_stream's `PUMP_NAME VARCHAR(128)`.
pub const PUMP_NAME_CHARS_MAX: usize = 128;

/// The decoder cuts a bad record to exactly what DATA_ROW's hex holds.
const _: () = assert!(ERROR_DATA_MAX * 2 == DATA_ROW_CHARS_MAX);

/// error_stream's ERROR_LEVEL: every row is an error.
const ERROR_LEVEL: &str = "ERROR";
const _: () = assert!(ERROR_LEVEL.len() <= ERROR_LEVEL_CHARS_MAX);

const MS_PER_DAY: i64 = 86_400_000;

/// How an output writes its rows: `DestinationSchema.RecordFormatType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per row, keys the column names in order.
    Json,
    /// The values joined by `,`, ending with `\n`.
    Csv,
}

impl RecordFormat {
    /// The format the API's `RecordFormatType` names (`JSON` or `CSV`,
    /// exactly as the model's enum spells them).
    pub fn of(record_format_type: &str) -> Option<RecordFormat> {
        match record_format_type {
            "JSON" => Some(RecordFormat::Json),
            "CSV" => Some(RecordFormat::Csv),
            _ => None,
        }
    }
}

/// The records (one per row) of `batch`, a batch of an in-application
/// stream (its declared columns, then `ROWTIME`), in row order.
///
/// Every column is written but the one named `ROWTIME` (the system column:
/// last in a stream the code creates, before `APPROXIMATE_ARRIVAL_TIME` in
/// an input stream's batch, which is written).
/// - JSON: `{"NAME":value,…}` with the Arrow field names as keys (the
///   declared names exactly), NULL as `null`, text and times as JSON
///   strings, no trailing newline.
/// - CSV: the values joined by `,`, then `\n`; NULL (and NaN/±infinity) is
///   an empty field; text is quoted with `"` (inner quotes doubled) only
///   when it holds `,`, `"`, `\r` or `\n`; times are not quoted.
///
/// Panics if a column's type is not one a stream holds
/// ([`SqlType::arrow`]): the plan makes every stream's columns.
pub fn encode_rows(batch: &RecordBatch, format: RecordFormat) -> Vec<Vec<u8>> {
    let records = encode(batch, format);
    (0..records.len())
        .map(|i| records.get(i).as_bytes().to_vec())
        .collect()
}

/// Strings written one after another into one buffer (no allocation per
/// piece): a batch's records, or their partition keys.
#[derive(Debug, Default)]
pub struct Pieces {
    text: String,
    /// Where each piece ends in `text`.
    ends: Vec<usize>,
}

impl Pieces {
    pub fn with_capacity(pieces: usize, bytes: usize) -> Pieces {
        Pieces {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(pieces),
        }
    }

    /// The buffer the next piece is written at the end of.
    pub fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// Ends the piece written since the last end.
    pub fn end(&mut self) {
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// The records of `batch` (one per row, as [`encode_rows`] says) in one
/// buffer.
pub fn encode(batch: &RecordBatch, format: RecordFormat) -> Pieces {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    // Each JSON key is escaped once per batch, with its `:`.
    let mut keys = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == ROWTIME {
            continue;
        }
        columns.push(Column::of(array));
        if format == RecordFormat::Json {
            let mut key = String::with_capacity(field.name().len() + 3);
            push_json_string(&mut key, field.name());
            key.push(':');
            keys.push(key);
        }
    }
    // Room for the records: the keys and punctuation of every row, about
    // 20 bytes a value, and the text the columns hold.
    let rows = batch.num_rows();
    let text: usize = (columns.iter())
        .map(|c| match c {
            Column::Text(a) => span_bytes(a.value_offsets()),
            Column::Binary(a) => span_bytes(a.value_offsets()) * 2,
            _ => 0,
        })
        .sum();
    let per_row: usize = keys.iter().map(|k| k.len() + 21).sum::<usize>() + 2;
    let mut records = Pieces::with_capacity(rows, rows * per_row + text);
    for row in 0..batch.num_rows() {
        match format {
            RecordFormat::Json => json_row(records.text(), &keys, &columns, row),
            RecordFormat::Csv => csv_row(records.text(), &columns, row),
        }
        records.end();
    }
    records
}

/// The bytes the values of a (maybe sliced) text or binary array take.
fn span_bytes(offsets: &[i32]) -> usize {
    match (offsets.first(), offsets.last()) {
        (Some(&a), Some(&b)) => usize::try_from(b - a).unwrap_or(0),
        _ => 0,
    }
}

fn json_row(out: &mut String, keys: &[String], columns: &[Column<'_>], row: usize) {
    out.push('{');
    for (i, (key, column)) in keys.iter().zip(columns).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        match column.value(row) {
            Value::Null => out.push_str("null"),
            Value::Text(s) => push_json_string(out, s),
            Value::Binary(b) => {
                out.push('"');
                push_hex(out, b);
                out.push('"');
            }
            v @ (Value::Timestamp(_) | Value::Date(_) | Value::Time(_)) => {
                out.push('"');
                push_plain(out, v);
                out.push('"');
            }
            v => push_plain(out, v),
        }
    }
    out.push('}');
}

fn csv_row(out: &mut String, columns: &[Column<'_>], row: usize) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match column.value(row) {
            Value::Null => {}
            Value::Text(s) => push_csv_text(out, s),
            Value::Binary(b) => push_hex(out, b),
            v => push_plain(out, v),
        }
    }
    out.push('\n');
}

/// A column of a stream's batch, downcast once per batch.
enum Column<'a> {
    Null,
    Boolean(&'a BooleanArray),
    Int8(&'a Int8Array),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Text(&'a StringArray),
    Binary(&'a BinaryArray),
    Timestamp(&'a TimestampMillisecondArray),
    Date(&'a Date32Array),
    Time(&'a Time32MillisecondArray),
}

/// One value of a column, borrowed.
#[derive(Clone, Copy)]
enum Value<'a> {
    Null,
    Boolean(bool),
    Int(i64),
    Float32(f32),
    Float64(f64),
    /// The unscaled value and the scale.
    Decimal(i128, i8),
    Text(&'a str),
    Binary(&'a [u8]),
    /// ms since the epoch.
    Timestamp(i64),
    /// Days since the epoch.
    Date(i32),
    /// ms since midnight.
    Time(i32),
}

impl<'a> Column<'a> {
    fn of(array: &'a ArrayRef) -> Column<'a> {
        match array.data_type() {
            DataType::Null => Column::Null,
            DataType::Boolean => Column::Boolean(array.as_boolean()),
            DataType::Int8 => Column::Int8(array.as_primitive::<Int8Type>()),
            DataType::Int16 => Column::Int16(array.as_primitive::<Int16Type>()),
            DataType::Int32 => Column::Int32(array.as_primitive::<Int32Type>()),
            DataType::Int64 => Column::Int64(array.as_primitive::<Int64Type>()),
            DataType::Float32 => Column::Float32(array.as_primitive::<Float32Type>()),
            DataType::Float64 => Column::Float64(array.as_primitive::<Float64Type>()),
            DataType::Decimal128(_, scale) => {
                Column::Decimal(array.as_primitive::<Decimal128Type>(), *scale)
            }
            DataType::Utf8 => Column::Text(array.as_string::<i32>()),
            DataType::Binary => Column::Binary(array.as_binary::<i32>()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Column::Timestamp(array.as_primitive::<TimestampMillisecondType>())
            }
            DataType::Date32 => Column::Date(array.as_primitive::<Date32Type>()),
            DataType::Time32(TimeUnit::Millisecond) => {
                Column::Time(array.as_primitive::<Time32MillisecondType>())
            }
            other => panic!("a stream has no column of Arrow type {other}"),
        }
    }

    fn value(&self, row: usize) -> Value<'a> {
        let v = match *self {
            Column::Null => return Value::Null,
            Column::Boolean(a) if a.is_null(row) => return Value::Null,
            Column::Boolean(a) => Value::Boolean(a.value(row)),
            Column::Int8(a) if a.is_null(row) => return Value::Null,
            Column::Int8(a) => Value::Int(a.value(row).into()),
            Column::Int16(a) if a.is_null(row) => return Value::Null,
            Column::Int16(a) => Value::Int(a.value(row).into()),
            Column::Int32(a) if a.is_null(row) => return Value::Null,
            Column::Int32(a) => Value::Int(a.value(row).into()),
            Column::Int64(a) if a.is_null(row) => return Value::Null,
            Column::Int64(a) => Value::Int(a.value(row)),
            Column::Float32(a) if a.is_null(row) => return Value::Null,
            Column::Float32(a) => Value::Float32(a.value(row)),
            Column::Float64(a) if a.is_null(row) => return Value::Null,
            Column::Float64(a) => Value::Float64(a.value(row)),
            Column::Decimal(a, _) if a.is_null(row) => return Value::Null,
            Column::Decimal(a, scale) => Value::Decimal(a.value(row), scale),
            Column::Text(a) if a.is_null(row) => return Value::Null,
            Column::Text(a) => Value::Text(a.value(row)),
            Column::Binary(a) if a.is_null(row) => return Value::Null,
            Column::Binary(a) => Value::Binary(a.value(row)),
            Column::Timestamp(a) if a.is_null(row) => return Value::Null,
            Column::Timestamp(a) => Value::Timestamp(a.value(row)),
            Column::Date(a) if a.is_null(row) => return Value::Null,
            Column::Date(a) => Value::Date(a.value(row)),
            Column::Time(a) if a.is_null(row) => return Value::Null,
            Column::Time(a) => Value::Time(a.value(row)),
        };
        match v {
            Value::Float32(f) if !f.is_finite() => Value::Null,
            Value::Float64(f) if !f.is_finite() => Value::Null,
            v => v,
        }
    }
}

/// A value written the same in JSON and CSV, with no quotes: numbers,
/// booleans and times (inside a JSON string for times).
fn push_plain(out: &mut String, v: Value<'_>) {
    match v {
        Value::Boolean(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(i)),
        Value::Float32(f) => push_float(out, f),
        Value::Float64(f) => push_float(out, f),
        Value::Decimal(d, scale) => push_decimal(out, d, scale),
        Value::Timestamp(ms) => push_timestamp(out, ms),
        Value::Date(days) => push_date(out, i64::from(days)),
        Value::Time(ms) => push_time_of_day(out, i64::from(ms)),
        Value::Null | Value::Text(_) | Value::Binary(_) => {
            unreachable!("NULL, text and binary are written by each format")
        }
    }
}

/// A finite float as the shortest text that reads back as it, never in
/// exponent form, made by ryu (Rust's `Display`, which writes the same
/// digits, was 6% of a projection's CPU): its `.0` on whole numbers is left
/// out, and its exponent forms are left to `Display`. Where two texts of
/// the shortest length are equally near (only at 16 or more digits for
/// DOUBLE, 7 for REAL), ryu
/// takes the even last digit and `Display` the upper one; both read back
/// as the same value. CAST to VARCHAR writes floats with this too.
pub(crate) fn push_float<F: ryu::Float + fmt::Display>(out: &mut String, f: F) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f);
    if text.contains('e') {
        push_display(out, f);
    } else {
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
    }
}

fn push_display(out: &mut String, v: impl fmt::Display) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{v}");
}

/// The exact text of the unscaled decimal `d` with `scale` fraction digits
/// (a negative scale appends zeros).
fn push_decimal(out: &mut String, d: i128, scale: i8) {
    if d < 0 {
        out.push('-');
    }
    let start = out.len();
    push_display(out, d.unsigned_abs());
    if scale < 0 {
        for _ in 0..scale.unsigned_abs() {
            out.push('0');
        }
        return;
    }
    let scale = scale as usize;
    if scale == 0 {
        return;
    }
    let digits = out.len() - start;
    if digits <= scale {
        // 5 with scale 2 is 0.05: pad to one integer digit.
        let zeros = scale + 1 - digits;
        out.insert_str(start, &"0".repeat(zeros));
    }
    let point = out.len() - scale;
    out.insert(point, '.');
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, UTC, as `eval::format_time`.
pub(crate) fn push_timestamp(out: &mut String, ms: i64) {
    push_date(out, ms.div_euclid(MS_PER_DAY));
    out.push(' ');
    push_time_of_day(out, ms.rem_euclid(MS_PER_DAY));
}

/// `yyyy-MM-dd` of a day counted from 1970-01-01.
fn push_date(out: &mut String, days: i64) {
    // A column's times mostly share their day: the last day's text is kept.
    thread_local! {
        static LAST: std::cell::Cell<Option<(i64, [u8; 10])>> = const { std::cell::Cell::new(None) };
    }
    if let Some((d, text)) = LAST.get()
        && d == days
    {
        out.push_str(std::str::from_utf8(&text).expect("digits and dashes"));
        return;
    }
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        push_display(out, y);
        out.push('-');
        push_digits(out, m as u32, 2);
        out.push('-');
        push_digits(out, d as u32, 2);
        return;
    }
    let mut text = [b'-'; 10];
    put_digits(&mut text[0..4], y as u32);
    put_digits(&mut text[5..7], m as u32);
    put_digits(&mut text[8..10], d as u32);
    LAST.set(Some((days, text)));
    out.push_str(std::str::from_utf8(&text).expect("digits and dashes"));
}

/// `HH:mm:ss.SSS` of ms since midnight; a value outside one day is taken
/// modulo a day (a TIME column never holds one).
fn push_time_of_day(out: &mut String, ms: i64) {
    let ms = ms.rem_euclid(MS_PER_DAY) as u32;
    let mut text = *b"00:00:00.000";
    put_digits(&mut text[0..2], ms / 3_600_000);
    put_digits(&mut text[3..5], ms / 60_000 % 60);
    put_digits(&mut text[6..8], ms / 1000 % 60);
    put_digits(&mut text[9..12], ms % 1000);
    out.push_str(std::str::from_utf8(&text).expect("digits and separators"));
}

/// The last `to.len()` decimal digits of `n` into `to`, zero-padded.
fn put_digits(to: &mut [u8], mut n: u32) {
    for b in to.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        let digit = n / 10u32.pow(p) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// The lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    push_hex(&mut s, bytes);
    s
}

/// `s` as a JSON string: `"` and `\` escaped, control characters as
/// `\n`, `\t`… or `\u00XX`; everything else (all of Unicode) as is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    loop {
        let i = plain + crate::plain::plain_len(&bytes[plain..]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        // Every escaped byte is ASCII, so `i` is a char boundary.
        out.push_str(&s[plain..i]);
        plain = i + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// `s` as a CSV field: quoted, inner quotes doubled, only if it holds a
/// `,`, `"`, `\r` or `\n`.
fn push_csv_text(out: &mut String, s: &str) {
    if !s.contains([',', '"', '\r', '\n']) {
        out.push_str(s);
        return;
    }
    out.push('"');
    let mut pieces = s.split('"');
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        out.push_str("\"\"");
        out.push_str(piece);
    }
    out.push('"');
}

/// error_stream's columns (docs/analytics-design.md §2.4), nullable, their
/// SQL types in the fields' metadata as the decoder's are, then `ROWTIME`.
pub fn error_stream_schema() -> SchemaRef {
    let varchar = |len: usize| SqlType::Varchar { len: len as u32 };
    let columns = [
        ("ERROR_TIME", SqlType::Timestamp),
        ("ERROR_LEVEL", varchar(ERROR_LEVEL_CHARS_MAX)),
        ("ERROR_NAME", varchar(ERROR_NAME_CHARS_MAX)),
        ("MESSAGE", varchar(MESSAGE_CHARS_MAX)),
        ("DATA_ROWTIME", SqlType::Timestamp),
        ("DATA_ROW", varchar(DATA_ROW_CHARS_MAX)),
        ("PUMP_NAME", varchar(PUMP_NAME_CHARS_MAX)),
    ];
    let typed = |name: &str, ty: SqlType, nullable: bool| {
        Field::new(name, ty.arrow(), nullable).with_metadata(
            [(SQL_TYPE_METADATA.to_string(), ty.to_string())]
                .into_iter()
                .collect::<HashMap<_, _>>(),
        )
    };
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|(name, ty)| typed(name, *ty, true))
        .collect();
    fields.push(typed(ROWTIME, SqlType::Timestamp, false));
    Arc::new(Schema::new(fields))
}

/// One error_stream row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRow {
    /// When the failure happened (the engine clock): ERROR_TIME and ROWTIME.
    pub error_time_ms: i64,
    /// ERROR_NAME: `Parse_error`, `Coercion_error`, `Division_by_zero`…
    pub name: &'static str,
    pub message: String,
    /// The failed row's ROWTIME (the record's for a decode error).
    pub data_rowtime_ms: i64,
    /// DATA_ROW, as given (hex, from the constructors).
    pub data_row: String,
    /// PUMP_NAME: empty for a decode error.
    pub pump: String,
}

impl ErrorRow {
    /// A decode error: DATA_ROW the hex of the record (or CSV row) bytes,
    /// PUMP_NAME empty, ERROR_NAME `Parse_error` or `Coercion_error`.
    pub fn of_decode(e: &DecodeError, now_ms: i64) -> ErrorRow {
        ErrorRow {
            error_time_ms: now_ms,
            name: e.kind.name(),
            message: e.message.clone(),
            data_rowtime_ms: e.rowtime_ms,
            data_row: hex(&e.data[..e.data.len().min(ERROR_DATA_MAX)]),
            pump: String::new(),
        }
    }

    /// A pump's row error: DATA_ROW the hex of the UTF-8 bytes of the
    /// row's JSON text (design §2.4: the input row as JSON text; DATA_ROW
    /// is hex), only as many bytes as DATA_ROW holds; PUMP_NAME the pump.
    pub fn of_pump(e: &PumpError, now_ms: i64) -> ErrorRow {
        let row = e.row.as_bytes();
        ErrorRow {
            error_time_ms: now_ms,
            name: e.name,
            message: e.message.clone(),
            data_rowtime_ms: e.rowtime_ms,
            data_row: hex(&row[..row.len().min(ERROR_DATA_MAX)]),
            pump: e.pump.clone(),
        }
    }
}

/// `rows` as a batch of [`error_stream_schema`], in order, ROWTIME their
/// error time; ERROR_NAME, MESSAGE, DATA_ROW and PUMP_NAME cut to their
/// VARCHAR lengths in characters (never inside a character).
pub fn error_batch(rows: &[ErrorRow]) -> RecordBatch {
    let times =
        || TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.error_time_ms));
    let texts = |max: usize, text: fn(&ErrorRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| cut(text(r), max)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(times()),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|_| ERROR_LEVEL),
        )),
        texts(ERROR_NAME_CHARS_MAX, |r| r.name),
        texts(MESSAGE_CHARS_MAX, |r| &r.message),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.data_rowtime_ms),
        )),
        texts(DATA_ROW_CHARS_MAX, |r| &r.data_row),
        texts(PUMP_NAME_CHARS_MAX, |r| &r.pump),
        Arc::new(times()),
    ];
    RecordBatch::try_new(error_stream_schema(), columns)
        .expect("the columns follow error_stream_schema")
}

/// `s` cut to `chars` characters.
fn cut(s: &str, chars: usize) -> &str {
    if s.len() <= chars {
        return s;
    }
    match s.char_indices().nth(chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ErrorKind;
    use crate::expr::eval::format_time;

    /// A stream batch of `columns` (name, SQL type, values) and a ROWTIME.
    fn stream(columns: Vec<(&str, SqlType, ArrayRef)>) -> RecordBatch {
        let rows = columns.first().map_or(0, |c| c.2.len());
        let mut fields: Vec<Field> = columns
            .iter()
            .map(|(name, ty, _)| Field::new(*name, ty.arrow(), true))
            .collect();
        fields.push(Field::new(ROWTIME, SqlType::Timestamp.arrow(), false));
        let mut arrays: Vec<ArrayRef> = columns.into_iter().map(|c| c.2).collect();
        arrays.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            (0..rows as i64).map(|r| 1_000 + r),
        )));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("a valid batch")
    }

    fn texts(records: &[Vec<u8>]) -> Vec<&str> {
        records
            .iter()
            .map(|r| std::str::from_utf8(r).expect("UTF-8"))
            .collect()
    }

    /// The records of `batch` in JSON and in CSV are exactly these (and the
    /// JSON ones are JSON objects).
    fn check(batch: &RecordBatch, json: &[&str], csv: &[&str]) {
        let records = encode_rows(batch, RecordFormat::Json);
        assert_eq!(texts(&records), json);
        for record in &records {
            let read: serde_json::Value = serde_json::from_slice(record).expect("valid JSON");
            assert!(read.is_object());
        }
        assert_eq!(texts(&encode_rows(batch, RecordFormat::Csv)), csv);
    }

    fn decimal(values: Vec<Option<i128>>, precision: u8, scale: i8) -> ArrayRef {
        Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(precision, scale)
                .expect("a valid decimal type"),
        )
    }

    #[test]
    fn floats_read_back_exactly_and_are_displays_text_but_for_ties() {
        let mut rng = riffle_store::testkit::Rng::new(0x5eed_f10a7);
        // Display's text, but for ties at 16 or more significant digits
        // (7 for REAL), where both read back as the value.
        fn check<F>(f: F)
        where
            F: ryu::Float + fmt::Display + std::str::FromStr + PartialEq + fmt::LowerExp,
            <F as std::str::FromStr>::Err: fmt::Debug,
        {
            let mut out = String::new();
            push_float(&mut out, f);
            let display = f.to_string();
            let digits = out.trim_start_matches(['-', '0', '.']).replace('.', "");
            if out != display {
                // Ties need digits finer than the float's precision.
                let fine = if std::mem::size_of::<F>() == 8 { 16 } else { 7 };
                assert!(digits.len() >= fine, "{f:e}: {out} against {display}");
                assert_eq!(out.len(), display.len(), "{f:e}");
            }
            assert!(!out.contains('e'), "{f:e}: {out}");
            assert!(out.parse::<F>().unwrap() == f, "{f:e}: {out}");
        }
        let check64 = |f: f64| {
            if f.is_finite() {
                check(f)
            }
        };
        for f in [
            0.0, -0.0, 1.0, 0.1, 0.908, 1e15, 1e16, 1e17, 1e20, 1e-5, 1e-7, 123.456,
        ] {
            check64(f);
            check64(-f);
        }
        for _ in 0..50_000 {
            // Any bits, and prices as q1 makes them.
            check64(f64::from_bits(rng.next_u64()));
            check64(0.908 * (rng.next_u64() % 100_000_000) as f64);
        }
        for _ in 0..50_000 {
            let f = f32::from_bits(rng.next_u64() as u32);
            if f.is_finite() {
                check(f);
            }
        }
    }

    #[test]
    fn times_of_alternating_days_are_written_each_with_its_own_date() {
        // The last day's text is kept: days that alternate, and days out of
        // four-digit years, must each get theirs.
        let day = 86_400_000i64;
        let times = [
            0,
            day + 3_723_004,
            1,
            -1,
            day + 86_399_999,
            253_402_300_800_000,
            day,
            -62_135_596_800_001,
        ];
        let batch = stream(vec![(
            "T",
            SqlType::Timestamp,
            Arc::new(TimestampMillisecondArray::from_iter_values(times)) as ArrayRef,
        )]);
        assert_eq!(
            texts(&encode_rows(&batch, RecordFormat::Csv)),
            vec![
                "1970-01-01 00:00:00.000\n",
                "1970-01-02 01:02:03.004\n",
                "1970-01-01 00:00:00.001\n",
                "1969-12-31 23:59:59.999\n",
                "1970-01-02 23:59:59.999\n",
                "10000-01-01 00:00:00.000\n",
                "1970-01-02 00:00:00.000\n",
                "0000-12-31 23:59:59.999\n",
            ]
        );
    }

    #[test]
    fn record_format_types_are_the_models_names() {
        assert_eq!(RecordFormat::of("JSON"), Some(RecordFormat::Json));
        assert_eq!(RecordFormat::of("CSV"), Some(RecordFormat::Csv));
        assert_eq!(RecordFormat::of("json"), None);
        assert_eq!(RecordFormat::of("PARQUET"), None);
    }

    #[test]
    fn every_type_in_json_and_csv_with_nulls() {
        let batch = stream(vec![
            (
                "B",
                SqlType::Boolean,
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ),
            (
                "T8",
                SqlType::TinyInt,
                Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(7), None])),
            ),
            (
                "S16",
                SqlType::SmallInt,
                Arc::new(Int16Array::from(vec![Some(i16::MAX), Some(-7), None])),
            ),
            (
                "I32",
                SqlType::Integer,
                Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(0), None])),
            ),
            (
                "B64",
                SqlType::BigInt,
                Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
            ),
            (
                "R",
                SqlType::Real,
                Arc::new(Float32Array::from(vec![Some(0.1), Some(1e20), None])),
            ),
            (
                "D",
                SqlType::Double,
                Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(-2.5), None])),
            ),
            (
                "N",
                SqlType::Decimal {
                    precision: 5,
                    scale: 2,
                },
                decimal(vec![Some(500), Some(-5), None], 5, 2),
            ),
            (
                "V",
                SqlType::Varchar { len: 20 },
                Arc::new(StringArray::from(vec![Some("plain"), Some(""), None])),
            ),
            (
                "TS",
                SqlType::Timestamp,
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    Some(-1),
                    None,
                ])),
            ),
            (
                "DT",
                SqlType::Date,
                Arc::new(Date32Array::from(vec![Some(0), Some(-1), None])),
            ),
            (
                "TM",
                SqlType::Time,
                Arc::new(Time32MillisecondArray::from(vec![
                    Some(0),
                    Some(86_399_999),
                    None,
                ])),
            ),
            (
                "BIN",
                SqlType::Varbinary { len: 4 },
                Arc::new(BinaryArray::from(vec![
                    Some(&[0xde_u8, 0x0f, 0x00][..]),
                    Some(&[][..]),
                    None,
                ])),
            ),
        ]);
        check(
            &batch,
            &[
                concat!(
                    r#"{"B":true,"T8":-128,"S16":32767,"I32":-2147483648,"#,
                    r#""B64":-9223372036854775808,"R":0.1,"D":0.30000000000000004,"#,
                    r#""N":5.00,"V":"plain","TS":"2023-11-14 22:13:20.123","#,
                    r#""DT":"1970-01-01","TM":"00:00:00.000","BIN":"de0f00"}"#
                ),
                concat!(
                    r#"{"B":false,"T8":7,"S16":-7,"I32":0,"#,
                    r#""B64":9223372036854775807,"R":100000000000000000000,"D":-2.5,"#,
                    r#""N":-0.05,"V":"","TS":"1969-12-31 23:59:59.999","#,
                    r#""DT":"1969-12-31","TM":"23:59:59.999","BIN":""}"#
                ),
                concat!(
                    r#"{"B":null,"T8":null,"S16":null,"I32":null,"B64":null,"R":null,"#,
                    r#""D":null,"N":null,"V":null,"TS":null,"DT":null,"TM":null,"BIN":null}"#
                ),
            ],
            &[
                "true,-128,32767,-2147483648,-9223372036854775808,0.1,0.30000000000000004,\
                 5.00,plain,2023-11-14 22:13:20.123,1970-01-01,00:00:00.000,de0f00\n",
                "false,7,-7,0,9223372036854775807,100000000000000000000,-2.5,\
                 -0.05,,1969-12-31 23:59:59.999,1969-12-31,23:59:59.999,\n",
                ",,,,,,,,,,,,\n",
            ],
        );
    }

    #[test]
    fn reals_are_written_shortest_for_their_width_and_non_finite_as_null() {
        let reals = [
            0.1_f32,
            1e20,
            1e-7,
            3.4028235e38,
            1.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
        ];
        let doubles = [
            0.1_f64,
            1e20,
            1e-7,
            1.0 / 3.0,
            1.0,
            -0.0,
            f64::NAN,
            f64::NEG_INFINITY,
        ];
        let batch = stream(vec![
            (
                "R",
                SqlType::Real,
                Arc::new(Float32Array::from(reals.to_vec())),
            ),
            (
                "D",
                SqlType::Double,
                Arc::new(Float64Array::from(doubles.to_vec())),
            ),
        ]);
        check(
            &batch,
            &[
                r#"{"R":0.1,"D":0.1}"#,
                r#"{"R":100000000000000000000,"D":100000000000000000000}"#,
                r#"{"R":0.0000001,"D":0.0000001}"#,
                r#"{"R":340282350000000000000000000000000000000,"D":0.3333333333333333}"#,
                r#"{"R":1,"D":1}"#,
                r#"{"R":-0,"D":-0}"#,
                r#"{"R":null,"D":null}"#,
                r#"{"R":null,"D":null}"#,
            ],
            &[
                "0.1,0.1\n",
                "100000000000000000000,100000000000000000000\n",
                "0.0000001,0.0000001\n",
                "340282350000000000000000000000000000000,0.3333333333333333\n",
                "1,1\n",
                "-0,-0\n",
                ",\n",
                ",\n",
            ],
        );
    }

    #[test]
    fn decimals_are_their_exact_digits_as_arrow_writes_them() {
        let values = [
            500_i128,
            -5,
            0,
            -1,
            12_345,
            -12_345,
            99_999_999_999_999_999,
            i128::MAX,
            i128::MIN,
        ];
        for scale in [0_i8, 1, 2, 5, 38] {
            let array = Decimal128Array::from(values.to_vec())
                .with_precision_and_scale(38, scale)
                .expect("a valid decimal type");
            for (row, &v) in values.iter().enumerate() {
                let mut out = String::new();
                push_decimal(&mut out, v, scale);
                assert_eq!(out, array.value_as_string(row), "{v} at scale {scale}");
            }
        }
        let batch = stream(vec![(
            "P",
            SqlType::Decimal {
                precision: 10,
                scale: 4,
            },
            decimal(vec![Some(1), Some(-123_456_789)], 10, 4),
        )]);
        check(
            &batch,
            &[r#"{"P":0.0001}"#, r#"{"P":-12345.6789}"#],
            &["0.0001\n", "-12345.6789\n"],
        );
    }

    #[test]
    fn text_is_escaped_in_json_and_quoted_in_csv_only_when_needed() {
        let values = [
            r#"say "hi""#,
            r"back\slash",
            "tab\tnew\nline\rret",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "é€😀 \u{2028}",
            "a,b",
            "plain text; no quotes",
            "\"",
        ];
        let batch = stream(vec![(
            "X",
            SqlType::Varchar { len: 100 },
            Arc::new(StringArray::from(values.to_vec())),
        )]);
        check(
            &batch,
            &[
                r#"{"X":"say \"hi\""}"#,
                r#"{"X":"back\\slash"}"#,
                r#"{"X":"tab\tnew\nline\rret"}"#,
                "{\"X\":\"\\u0000\\u0001\\b\\f\\u001f\u{7f}\"}",
                "{\"X\":\"é€😀 \u{2028}\"}",
                r#"{"X":"a,b"}"#,
                r#"{"X":"plain text; no quotes"}"#,
                r#"{"X":"\""}"#,
            ],
            &[
                "\"say \"\"hi\"\"\"\n",
                "back\\slash\n",
                "\"tab\tnew\nline\rret\"\n",
                "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}\n",
                "é€😀 \u{2028}\n",
                "\"a,b\"\n",
                "plain text; no quotes\n",
                "\"\"\"\"\n",
            ],
        );
        // Every JSON record reads back as the text it was made from.
        for (record, value) in encode_rows(&batch, RecordFormat::Json).iter().zip(values) {
            let read: serde_json::Value = serde_json::from_slice(record).expect("valid JSON");
            assert_eq!(read["X"], value);
        }
    }

    #[test]
    fn keys_are_the_declared_names_in_order_escaped() {
        let batch = stream(vec![
            (
                "zeta",
                SqlType::Integer,
                Arc::new(Int32Array::from(vec![1])),
            ),
            (
                "Mixed \"Case\"",
                SqlType::Integer,
                Arc::new(Int32Array::from(vec![2])),
            ),
            (
                "ALPHA",
                SqlType::Integer,
                Arc::new(Int32Array::from(vec![3])),
            ),
        ]);
        check(
            &batch,
            &[r#"{"zeta":1,"Mixed \"Case\"":2,"ALPHA":3}"#],
            &["1,2,3\n"],
        );
    }

    #[test]
    fn rowtime_is_not_written_wherever_it_is() {
        // A stream's batch: ROWTIME last (`stream` adds it).
        let batch = stream(vec![(
            "A",
            SqlType::Integer,
            Arc::new(Int32Array::from(vec![1])),
        )]);
        assert_eq!(batch.num_columns(), 2);
        check(&batch, &[r#"{"A":1}"#], &["1\n"]);
        // An input stream's batch: ROWTIME, then APPROXIMATE_ARRIVAL_TIME.
        let ts = || Field::new(ROWTIME, SqlType::Timestamp.arrow(), false);
        let schema = Schema::new(vec![
            Field::new("A", DataType::Int32, true),
            ts(),
            Field::new(
                "APPROXIMATE_ARRIVAL_TIME",
                SqlType::Timestamp.arrow(),
                false,
            ),
        ]);
        let time: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0]));
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int32Array::from(vec![1])), time.clone(), time],
        )
        .expect("a valid batch");
        check(
            &batch,
            &[r#"{"A":1,"APPROXIMATE_ARRIVAL_TIME":"1970-01-01 00:00:00.000"}"#],
            &["1,1970-01-01 00:00:00.000\n"],
        );
    }

    #[test]
    fn an_empty_batch_gives_no_records() {
        let batch = stream(vec![(
            "A",
            SqlType::Integer,
            Arc::new(Int32Array::from(Vec::<i32>::new())),
        )]);
        check(&batch, &[], &[]);
        check(&error_batch(&[]), &[], &[]);
    }

    #[test]
    fn times_are_written_as_format_time_does() {
        let cases = [
            0_i64,
            -1,
            -86_400_000,
            -62_135_596_800_000, // 0001-01-01
            951_782_400_000,     // 2000-02-29
            253_402_300_799_999, // 9999-12-31 23:59:59.999
            1_700_000_000_123,
        ];
        for ms in cases {
            let mut out = String::new();
            push_timestamp(&mut out, ms);
            assert_eq!(out, format_time(ms), "{ms}");
        }
        let mut out = String::new();
        push_timestamp(&mut out, -62_135_596_800_000);
        assert_eq!(out, "0001-01-01 00:00:00.000");
        // Beyond year 9999 the year grows, the rest stays in place.
        let mut out = String::new();
        push_timestamp(&mut out, 253_402_300_800_000);
        assert_eq!(out, "10000-01-01 00:00:00.000");
    }

    fn decode_error(message: &str, data: &[u8]) -> DecodeError {
        DecodeError {
            kind: ErrorKind::Coercion,
            message: message.to_string(),
            data: data.to_vec(),
            rowtime_ms: 1_000,
        }
    }

    fn pump_error(pump: &str, row: &str) -> PumpError {
        PumpError {
            pump: pump.to_string(),
            name: "Division_by_zero",
            message: "division by zero".to_string(),
            rowtime_ms: 2_000,
            row: row.to_string(),
        }
    }

    #[test]
    fn error_rows_of_decode_and_pump_errors() {
        let e = ErrorRow::of_decode(&decode_error("bad", b"{\"a\":1}"), 5_000);
        assert_eq!(
            e,
            ErrorRow {
                error_time_ms: 5_000,
                name: "Coercion_error",
                message: "bad".to_string(),
                data_rowtime_ms: 1_000,
                data_row: "7b2261223a317d".to_string(),
                pump: String::new(),
            }
        );
        let e = ErrorRow::of_pump(&pump_error("P1", r#"{"é":1}"#), 6_000);
        assert_eq!(
            e,
            ErrorRow {
                error_time_ms: 6_000,
                name: "Division_by_zero",
                message: "division by zero".to_string(),
                data_rowtime_ms: 2_000,
                data_row: "7b22c3a9223a317d".to_string(),
                pump: "P1".to_string(),
            }
        );
        let parse = DecodeError {
            kind: ErrorKind::Parse,
            ..decode_error("not JSON", b"\xff")
        };
        assert_eq!(ErrorRow::of_decode(&parse, 0).name, "Parse_error");
    }

    #[test]
    fn error_batch_cuts_at_the_column_lengths_on_char_boundaries() {
        // 4095 ASCII then two multi-byte chars: the cut keeps one of them.
        let message = format!("{}é€", "m".repeat(MESSAGE_CHARS_MAX - 1));
        let decode = ErrorRow::of_decode(&decode_error(&message, &[0xab; ERROR_DATA_MAX]), 7_000);
        // A row longer than DATA_ROW holds: only its first bytes, as hex.
        let long_row = format!("{{\"A\":\"{}\"}}", "ü".repeat(20_000));
        let pump = ErrorRow::of_pump(&pump_error(&"ß".repeat(200), &long_row), 8_000);
        assert_eq!(pump.data_row.len(), DATA_ROW_CHARS_MAX);
        let named = ErrorRow {
            name: "Ärger_über_einen_sehr_langen_Fehlernamen",
            data_row: "x".repeat(DATA_ROW_CHARS_MAX + 1),
            ..pump.clone()
        };
        let batch = error_batch(&[decode, pump, named]);
        assert_eq!(batch.schema(), error_stream_schema());
        let column = |name: &str| -> Vec<String> {
            let c = batch.column_by_name(name).expect("a column");
            match c.data_type() {
                DataType::Utf8 => c
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.expect("no NULL").to_string())
                    .collect(),
                _ => c
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            }
        };
        assert_eq!(column("ERROR_TIME"), ["7000", "8000", "8000"]);
        assert_eq!(column("ROWTIME"), ["7000", "8000", "8000"]);
        assert_eq!(column("DATA_ROWTIME"), ["1000", "2000", "2000"]);
        assert_eq!(column("ERROR_LEVEL"), ["ERROR"; 3]);
        assert_eq!(
            column("ERROR_NAME"),
            [
                "Coercion_error",
                "Division_by_zero",
                "Ärger_über_einen_sehr_langen_Feh"
            ]
        );
        let messages = column("MESSAGE");
        assert_eq!(
            messages[0],
            format!("{}é", "m".repeat(MESSAGE_CHARS_MAX - 1))
        );
        assert_eq!(messages[0].chars().count(), MESSAGE_CHARS_MAX);
        let data = column("DATA_ROW");
        assert_eq!(data[0], "ab".repeat(ERROR_DATA_MAX));
        let row_hex = hex(long_row.as_bytes());
        assert_eq!(data[1], row_hex[..DATA_ROW_CHARS_MAX]);
        assert_eq!(data[2], "x".repeat(DATA_ROW_CHARS_MAX));
        assert_eq!(
            column("PUMP_NAME"),
            [
                String::new(),
                "ß".repeat(PUMP_NAME_CHARS_MAX),
                "ß".repeat(PUMP_NAME_CHARS_MAX)
            ]
        );
    }

    #[test]
    fn error_stream_schema_is_the_documented_columns() {
        let schema = error_stream_schema();
        let described: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let ty = f.metadata().get(SQL_TYPE_METADATA).expect("a SQL type");
                format!("{} {ty}", f.name())
            })
            .collect();
        assert_eq!(
            described,
            [
                "ERROR_TIME TIMESTAMP",
                "ERROR_LEVEL VARCHAR(10)",
                "ERROR_NAME VARCHAR(32)",
                "MESSAGE VARCHAR(4096)",
                "DATA_ROWTIME TIMESTAMP",
                "DATA_ROW VARCHAR(49152)",
                "PUMP_NAME VARCHAR(128)",
                "ROWTIME TIMESTAMP",
            ]
        );
    }

    #[test]
    fn an_output_named_error_stream_sends_its_rows_as_json() {
        let rows = [
            ErrorRow::of_decode(
                &DecodeError {
                    kind: ErrorKind::Parse,
                    message: "not JSON: \"x".to_string(),
                    data: b"x\n".to_vec(),
                    rowtime_ms: -1,
                },
                1_700_000_000_000,
            ),
            ErrorRow::of_pump(&pump_error("P", r#"{"A":0}"#), 1_700_000_000_001),
        ];
        check(
            &error_batch(&rows),
            &[
                concat!(
                    r#"{"ERROR_TIME":"2023-11-14 22:13:20.000","ERROR_LEVEL":"ERROR","#,
                    r#""ERROR_NAME":"Parse_error","MESSAGE":"not JSON: \"x","#,
                    r#""DATA_ROWTIME":"1969-12-31 23:59:59.999","DATA_ROW":"780a","#,
                    r#""PUMP_NAME":""}"#
                ),
                concat!(
                    r#"{"ERROR_TIME":"2023-11-14 22:13:20.001","ERROR_LEVEL":"ERROR","#,
                    r#""ERROR_NAME":"Division_by_zero","MESSAGE":"division by zero","#,
                    r#""DATA_ROWTIME":"1970-01-01 00:00:02.000","DATA_ROW":"7b2241223a307d","#,
                    r#""PUMP_NAME":"P"}"#
                ),
            ],
            &[
                "2023-11-14 22:13:20.000,ERROR,Parse_error,\"not JSON: \"\"x\",\
                 1969-12-31 23:59:59.999,780a,\n",
                "2023-11-14 22:13:20.001,ERROR,Division_by_zero,division by zero,\
                 1970-01-01 00:00:02.000,7b2241223a307d,P\n",
            ],
        );
    }
}
