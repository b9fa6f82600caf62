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
        push_ascii(out, &text);
        return;
    }
    let (y, m, d) = civil_from_days(days);
    let mut text = [b'-'; 10];
    put_digits(&mut text[5..7], m as u32);
    put_digits(&mut text[8..10], d as u32);
    if !(0..=9999).contains(&y) {
        // A year of other than four digits, then `-MM-dd`.
        push_display(out, y);
        push_ascii(out, &text[4..]);
        return;
    }
    put_digits(&mut text[0..4], y as u32);
    LAST.set(Some((days, text)));
    push_ascii(out, &text);
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
    push_ascii(out, &text);
}

/// Appends `text`, which is ASCII when it is digits and separators written
/// here (checked a word at a time; `str::from_utf8` on these short texts
/// was 10% of a row's encoding), else lossily as UTF-8.
fn push_ascii(out: &mut String, text: &[u8]) {
    if text.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8 on their own, so the String stays
        // UTF-8 (checked just above).
        unsafe { out.as_mut_vec() }.extend_from_slice(text);
    } else {
        out.push_str(&String::from_utf8_lossy(text));
    }
}

/// The last `to.len()` decimal digits of `n` into `to`, zero-padded.
fn put_digits(to: &mut [u8], mut n: u32) {
    for b in to.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
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
#[path = "encode_tests.rs"]
mod tests;
