//! Source records (JSON, CSV) into Arrow `RecordBatch`es by an input's
//! schema, with KDA's coercion rules and one error per bad row
//! (docs/analytics-design.md §2.1, §2.2, §2.4, §5.3).
//!
//! - `InputFormat::compile` turns the API's `SourceSchema` into a plan once
//!   (JSONPaths parsed into a trie, `path.rs`), refusing what is not served.
//! - `Decoder` is the hot path: per record, one pass of its own JSON scanner
//!   (`json.rs`) that captures only mapped values as spans, or a CSV split;
//!   each row's values are coerced (`coerce.rs`) into a staged row first and
//!   appended to reused Arrow builders (`builders.rs`) only when the whole
//!   row coerced, so a bad row leaves nothing behind but its `DecodeError`.
//! - Any bytes give rows or errors, never a panic.
//!
//! Riffle's choices where AWS's documents are silent (each tested):
//! - a `RecordRowPath` value that is missing, null or not an array gives no
//!   rows and no error; `$.arr[0:]` on a value that is not an array gives
//!   that value (as text, or coerced);
//! - only one array per schema may be flattened, one level deep;
//! - strings into numbers, dates and times are trimmed of whitespace first;
//!   `NaN` and `inf` are not numbers; a fraction into an integer column or
//!   beyond a decimal's scale is an error (never rounded);
//! - timestamps take `T` or a space, 1 to 9 fraction digits (kept to ms) and
//!   an optional `Z`; no other offsets;
//! - BINARY(n)/VARBINARY(n) values are cut to n bytes like text to n
//!   characters; CHAR(n) is not padded.
//!
//! Measured: `cargo test --release -p riffle-analytics
//! decode::tests::bid_throughput -- --nocapture` decodes 200,000
//! Nexmark-like bids (177 bytes of JSON, 7 columns: three BIGINT, three
//! VARCHAR, a TIMESTAMP) at 0.8 to 1.4 M records/s (141 to 245 MB/s) on one
//! core of the shared 2-core dev machine under other builds' load, batches
//! of 10,000 (2026-12-03; printed, not asserted).

mod builders;
mod coerce;

/// KDA's TIMESTAMP text (`1992-02-14[ 18:35:44[.f]]`, `T` or a space, an
/// optional `Z`) in ms since the epoch: the decoder's and CAST's one reading.
pub(crate) use coerce::timestamp as parse_timestamp;
mod json;
mod path;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::builder::TimestampMillisecondBuilder;
use arrow_schema::{Field, Schema, SchemaRef};

use crate::config::SourceSchema;
use crate::schema::SqlType;
use builders::Builder;
use coerce::{Scratch, Span, Src, Staged};
use json::{Captures, Kind};
use path::JsonPlan;

/// A row (a JSON record, an element of its row array, or a CSV row) larger
/// than this is a `Parse_error` (design §2.4).
pub const ROW_SIZE_MAX: usize = 512 * 1024;

/// `DecodeError::data` is cut to this: error_stream's `DATA_ROW` is
/// `VARCHAR(49152)` of hex, two characters a byte (design §2.4).
pub const ERROR_DATA_MAX: usize = 24_576;

/// The system columns every input row carries after its own (design §2.1).
pub const ROWTIME: &str = "ROWTIME";
pub const APPROXIMATE_ARRIVAL_TIME: &str = "APPROXIMATE_ARRIVAL_TIME";

/// The key of an input field's metadata holding its SQL type as KDA writes
/// it (`VARCHAR(4)`): Arrow's `Utf8` forgets the length.
pub const SQL_TYPE_METADATA: &str = "sql_type";

/// A value quoted in an error message is cut to this many characters.
const MESSAGE_VALUE_CHARS_MAX: usize = 256;

/// An input column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    /// The JSONPath from the row (JSON); unused for CSV.
    pub mapping: Option<String>,
}

/// How records split into rows and rows into values, as the API gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Json {
        row_path: String,
    },
    Csv {
        row_delimiter: String,
        column_delimiter: String,
    },
}

/// A CSV delimiter; one character is searched for faster.
#[derive(Clone, Debug)]
enum Delimiter {
    Char(char),
    Text(Box<str>),
}

impl Delimiter {
    fn new(text: &str) -> Delimiter {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Delimiter::Char(c),
            _ => Delimiter::Text(text.into()),
        }
    }

    /// The next occurrence in `text`: its offset and length.
    fn find(&self, text: &str) -> Option<(usize, usize)> {
        match self {
            Delimiter::Char(c) => text.find(*c).map(|i| (i, c.len_utf8())),
            Delimiter::Text(d) => text.find(&**d).map(|i| (i, d.len())),
        }
    }

    /// The spans of the pieces of `text` between delimiters.
    fn pieces<'a>(&'a self, text: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut at = Some(0);
        std::iter::from_fn(move || {
            let start = at?;
            match self.find(&text[start..]) {
                Some((i, len)) => {
                    at = Some(start + i + len);
                    Some((start, start + i))
                }
                None => {
                    at = None;
                    Some((start, text.len()))
                }
            }
        })
    }
}

#[derive(Clone, Debug)]
enum Plan {
    Json(JsonPlan),
    Csv { rows: Delimiter, fields: Delimiter },
}

/// An input's record format compiled for decoding.
#[derive(Clone, Debug)]
pub struct InputFormat {
    format: Format,
    columns: Vec<Column>,
    plan: Plan,
    schema: SchemaRef,
}

impl InputFormat {
    /// Compiles the API's `InputSchema`; the error says which column or
    /// member is refused and why.
    pub fn compile(source: &SourceSchema) -> Result<InputFormat, String> {
        if let Some(encoding) = source.encoding.as_deref()
            && encoding != "UTF-8"
        {
            return Err(format!("RecordEncoding {encoding} is not UTF-8"));
        }
        let columns = source
            .columns
            .iter()
            .map(|c| {
                Ok(Column {
                    name: c.name.clone(),
                    ty: SqlType::parse(&c.sql_type)
                        .map_err(|e| format!("column {:?}: {e}", c.name))?,
                    mapping: c.mapping.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let params = source.format.mapping.as_ref();
        let format = match source.format.kind.as_str() {
            "JSON" => Format::Json {
                row_path: params
                    .and_then(|p| p.json.as_ref())
                    .ok_or("JSONMappingParameters is required for RecordFormatType JSON")?
                    .row_path
                    .clone(),
            },
            "CSV" => {
                let csv = params
                    .and_then(|p| p.csv.as_ref())
                    .ok_or("CSVMappingParameters is required for RecordFormatType CSV")?;
                Format::Csv {
                    row_delimiter: csv.row_delimiter.clone(),
                    column_delimiter: csv.column_delimiter.clone(),
                }
            }
            other => return Err(format!("RecordFormatType {other} is not JSON or CSV")),
        };
        InputFormat::new(format, columns)
    }

    /// Compiles a format and its columns.
    pub fn new(format: Format, columns: Vec<Column>) -> Result<InputFormat, String> {
        if columns.is_empty() {
            return Err("an input needs at least one column".into());
        }
        for (i, c) in columns.iter().enumerate() {
            if c.name.eq_ignore_ascii_case(ROWTIME)
                || c.name.eq_ignore_ascii_case(APPROXIMATE_ARRIVAL_TIME)
            {
                return Err(format!(
                    "column {:?}: the name is a system column's",
                    c.name
                ));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("column {:?} appears twice", c.name));
            }
        }
        let plan = match &format {
            Format::Json { row_path } => {
                let mut mappings = Vec::with_capacity(columns.len());
                for c in &columns {
                    let Some(m) = c.mapping.as_deref() else {
                        return Err(format!(
                            "column {:?} needs a Mapping: it is required for RecordFormatType JSON",
                            c.name
                        ));
                    };
                    mappings.push((c.name.as_str(), m));
                }
                Plan::Json(JsonPlan::build(row_path, &mappings)?)
            }
            Format::Csv {
                row_delimiter,
                column_delimiter,
            } => {
                if row_delimiter.is_empty() || column_delimiter.is_empty() {
                    return Err(
                        "RecordRowDelimiter and RecordColumnDelimiter must not be empty".into(),
                    );
                }
                if row_delimiter == column_delimiter {
                    return Err("RecordRowDelimiter and RecordColumnDelimiter must differ".into());
                }
                Plan::Csv {
                    rows: Delimiter::new(row_delimiter),
                    fields: Delimiter::new(column_delimiter),
                }
            }
        };
        let schema = batch_schema(&columns);
        Ok(InputFormat {
            format,
            columns,
            plan,
            schema,
        })
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

fn batch_schema(columns: &[Column]) -> SchemaRef {
    let ts = SqlType::Timestamp;
    let typed = |ty: SqlType| HashMap::from([(SQL_TYPE_METADATA.to_string(), ty.to_string())]);
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.ty.arrow(), true).with_metadata(typed(c.ty)))
        .collect();
    for name in [ROWTIME, APPROXIMATE_ARRIVAL_TIME] {
        fields.push(Field::new(name, ts.arrow(), false).with_metadata(typed(ts)));
    }
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of the batches decoded by `format`: its columns (names
/// as declared, nullable, SQL type in the metadata) then `ROWTIME` and
/// `APPROXIMATE_ARRIVAL_TIME` (timestamps in ms, never null).
pub fn schema_of(format: &InputFormat) -> SchemaRef {
    format.schema.clone()
}

/// What went wrong with a row, as error_stream's `ERROR_NAME` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not UTF-8, not JSON, or a row over `ROW_SIZE_MAX`.
    Parse,
    /// A value that does not coerce into its column's type.
    Coercion,
    /// A record the input preprocessing function failed.
    ProcessingFailed,
}

impl ErrorKind {
    /// `Parse_error`, `Coercion_error` or `ProcessingFailed`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Parse => "Parse_error",
            ErrorKind::Coercion => "Coercion_error",
            ErrorKind::ProcessingFailed => "ProcessingFailed",
        }
    }
}

/// A record or row that gave no row: one error_stream row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: ErrorKind,
    pub message: String,
    /// The record (JSON) or the row (CSV), cut to `ERROR_DATA_MAX` bytes.
    pub data: Vec<u8>,
    pub rowtime_ms: i64,
}

/// Builds `RecordBatch`es from records. Lives on the core of one source
/// shard's task; reused from batch to batch.
#[derive(Debug)]
pub struct Decoder {
    format: Arc<InputFormat>,
    caps: Captures,
    out: Output,
}

/// The decoder's output side: builders, the row being staged, errors.
#[derive(Debug)]
struct Output {
    builders: Vec<Builder>,
    rowtime: TimestampMillisecondBuilder,
    arrival: TimestampMillisecondBuilder,
    /// The staged row: one value per column.
    row: Vec<Staged>,
    scratch: Scratch,
    errors: Vec<DecodeError>,
    rows: usize,
    /// Rows of the record being pushed so far, decoded or not.
    slot: u32,
    /// Per row appended since the last `finish`, its place among its
    /// record's rows (those that failed counted).
    slots: Vec<u32>,
}

impl Decoder {
    pub fn new(format: Arc<InputFormat>) -> Decoder {
        let builders = format.columns.iter().map(|c| Builder::new(c.ty)).collect();
        let row = Vec::with_capacity(format.columns.len());
        Decoder {
            format,
            caps: Captures::default(),
            out: Output {
                builders,
                rowtime: TimestampMillisecondBuilder::new(),
                arrival: TimestampMillisecondBuilder::new(),
                row,
                scratch: Scratch::default(),
                errors: Vec::new(),
                rows: 0,
                slot: 0,
                slots: Vec::new(),
            },
        }
    }

    /// Rows appended since the last `finish`.
    pub fn row_count(&self) -> usize {
        self.out.rows
    }

    /// Per row appended since the last `finish`, its place among the rows
    /// of the record it came from, those that did not decode counted (so
    /// a row keeps its place when a schema change decodes one before it).
    pub fn slots(&self) -> &[u32] {
        &self.out.slots
    }

    /// Decodes one record into rows; a bad record or row becomes a
    /// `DecodeError` instead. Returns the rows added.
    pub fn push(&mut self, data: &[u8], rowtime_ms: i64, arrival_ms: i64) -> usize {
        self.out.slot = 0;
        self.push_more(data, rowtime_ms, arrival_ms)
    }

    /// [`Decoder::push`] of more of the same record (its rows' slots go on).
    fn push_more(&mut self, data: &[u8], rowtime_ms: i64, arrival_ms: i64) -> usize {
        let before = self.out.rows;
        let times = Times {
            rowtime_ms,
            arrival_ms,
        };
        match &self.format.plan {
            Plan::Json(plan) => push_json(
                &self.format,
                plan,
                &mut self.caps,
                &mut self.out,
                data,
                times,
            ),
            Plan::Csv { rows, fields } => {
                self.out.push_csv(&self.format, rows, fields, data, times)
            }
        }
        self.out.rows - before
    }

    /// Decodes a preprocessing function's answer for one record: for JSON,
    /// every JSON document in it, one after another (AWS lets a function
    /// answer several); for CSV, its rows. Returns the rows added.
    pub fn push_documents(&mut self, data: &[u8], rowtime_ms: i64, arrival_ms: i64) -> usize {
        self.out.slot = 0;
        if !matches!(self.format.plan, Plan::Json(_)) {
            return self.push_more(data, rowtime_ms, arrival_ms);
        }
        let mut rows = 0;
        let mut cur = json::Cursor::new(data);
        loop {
            cur.ws();
            let start = cur.i;
            if start >= data.len() {
                return rows;
            }
            match cur.skip(0) {
                Ok(_) => rows += self.push_more(&data[start..cur.i], rowtime_ms, arrival_ms),
                // The rest is not JSON: one parse error for it.
                Err(_) => return rows + self.push_more(&data[start..], rowtime_ms, arrival_ms),
            }
        }
    }

    /// A record a preprocessing function answered `ProcessingFailed` for:
    /// an error row (ERROR_NAME `ProcessingFailed`, DATA_ROW the record).
    pub fn processing_failed(&mut self, data: &[u8], rowtime_ms: i64) {
        self.out.error(
            ErrorKind::ProcessingFailed,
            "The input preprocessing function answered ProcessingFailed for this record".into(),
            data,
            Times {
                rowtime_ms,
                arrival_ms: rowtime_ms,
            },
        );
    }

    /// The batch of the rows pushed since the last call and the errors met;
    /// the decoder starts over empty.
    pub fn finish(&mut self) -> (RecordBatch, Vec<DecodeError>) {
        let out = &mut self.out;
        let rows = out.rows;
        let mut arrays = Vec::with_capacity(out.builders.len() + 2);
        // Each builder is left with room for a batch like this one.
        for (b, column) in out.builders.iter_mut().zip(&self.format.columns) {
            let bytes = b.value_bytes();
            arrays.push(b.finish());
            *b = Builder::with_capacity(column.ty, rows, bytes);
        }
        arrays.push(Arc::new(out.rowtime.finish()));
        arrays.push(Arc::new(out.arrival.finish()));
        out.rowtime = TimestampMillisecondBuilder::with_capacity(rows);
        out.arrival = TimestampMillisecondBuilder::with_capacity(rows);
        let batch = RecordBatch::try_new(self.format.schema.clone(), arrays)
            .expect("builders are made from the schema's own column types");
        out.rows = 0;
        out.slots.clear();
        (batch, std::mem::take(&mut out.errors))
    }
}

#[derive(Clone, Copy, Debug)]
struct Times {
    rowtime_ms: i64,
    arrival_ms: i64,
}

fn push_json(
    format: &InputFormat,
    plan: &JsonPlan,
    caps: &mut Captures,
    out: &mut Output,
    data: &[u8],
    times: Times,
) {
    if plan.row_keys.is_none() && data.len() > ROW_SIZE_MAX {
        return out.parse_error(data, too_large(data.len()), times);
    }
    let record = match std::str::from_utf8(data) {
        Ok(r) => r,
        Err(e) => return out.parse_error(data, not_utf8(e), times),
    };
    if plan.row_keys.is_none() {
        match json::scan_record(plan, caps, data) {
            Ok(()) => out.json_rows(format, plan, caps, record, times),
            Err(fail) => out.parse_error(data, not_json(fail, data.len()), times),
        }
        return;
    }
    // Rows of a row array are appended as they are met, so the record is
    // checked whole first: a record that is not JSON gives no row at all.
    let mut cur = json::Cursor::new(data);
    if let Err(fail) = cur.skip(0).and_then(|_| cur.end()) {
        return out.parse_error(data, not_json(fail, data.len()), times);
    }
    let walked = json::scan_rows(plan, caps, data, &mut |caps, start, end| {
        if end - start > ROW_SIZE_MAX {
            out.parse_error(data, too_large(end - start), times);
        } else {
            out.json_rows(format, plan, caps, record, times);
        }
    });
    debug_assert!(walked.is_ok(), "the record was checked to be JSON");
}

fn too_large(len: usize) -> String {
    format!("Row of {len} bytes is over the {ROW_SIZE_MAX}-byte limit")
}

fn not_utf8(e: std::str::Utf8Error) -> String {
    format!("Record is not valid UTF-8 (at byte {})", e.valid_up_to())
}

fn not_json(fail: json::Fail, len: usize) -> String {
    match fail {
        json::Fail::Syntax(at) if at >= len => {
            "Record is not valid JSON (it ends early)".to_string()
        }
        json::Fail::Syntax(at) => format!("Record is not valid JSON (at byte {at})"),
        json::Fail::TooDeep => {
            format!(
                "Record nests arrays and objects deeper than {} levels",
                json::DEPTH_MAX
            )
        }
    }
}

impl Output {
    fn parse_error(&mut self, data: &[u8], message: String, times: Times) {
        self.error(ErrorKind::Parse, message, data, times);
    }

    fn error(&mut self, kind: ErrorKind, message: String, data: &[u8], times: Times) {
        self.slot += 1;
        self.errors.push(DecodeError {
            kind,
            message,
            data: data[..data.len().min(ERROR_DATA_MAX)].to_vec(),
            rowtime_ms: times.rowtime_ms,
        });
    }

    fn begin_row(&mut self) {
        self.row.clear();
        self.scratch.text.clear();
        self.scratch.bin.clear();
    }

    /// Appends the staged row to the builders.
    fn commit_row(&mut self, record: &str, times: Times) {
        for (b, v) in self.builders.iter_mut().zip(&self.row) {
            b.append(*v, record, &self.scratch);
        }
        self.rowtime.append_value(times.rowtime_ms);
        self.arrival.append_value(times.arrival_ms);
        self.rows += 1;
        self.slots.push(self.slot);
        self.slot += 1;
    }

    /// The rows of one JSON row's captures (several if it flattens an
    /// array), each appended whole or turned into a coercion error.
    fn json_rows(
        &mut self,
        format: &InputFormat,
        plan: &JsonPlan,
        caps: &Captures,
        record: &str,
        times: Times,
    ) {
        for r in 0..caps.row_count() {
            self.begin_row();
            let mut failed = None;
            for (c, column) in format.columns.iter().enumerate() {
                let cap = caps.get(plan, plan.slots[c], r);
                let span = Span::record(cap.start, cap.end);
                let src = match cap.kind {
                    Kind::Missing | Kind::Null => Src::Null,
                    Kind::True => Src::Bool(true),
                    Kind::False => Src::Bool(false),
                    Kind::Number => Src::Number(span),
                    Kind::String { escaped: false } => Src::Str(span),
                    Kind::String { escaped: true } => {
                        let start = self.scratch.text.len();
                        json::unescape_into(
                            record.get(cap.start..cap.end).unwrap_or(""),
                            &mut self.scratch.text,
                        );
                        Src::Str(Span {
                            scratch: true,
                            start,
                            end: self.scratch.text.len(),
                        })
                    }
                    Kind::Array | Kind::Object => Src::Json(span),
                };
                match coerce::coerce(src, column.ty, record, &mut self.scratch, false) {
                    Ok(v) => self.row.push(v),
                    Err(()) => {
                        failed = Some(coercion_message(column, src, record, &self.scratch));
                        break;
                    }
                }
            }
            match failed {
                None => self.commit_row(record, times),
                Some(message) => self.error(ErrorKind::Coercion, message, record.as_bytes(), times),
            }
        }
    }

    fn push_csv(
        &mut self,
        format: &InputFormat,
        rows: &Delimiter,
        fields: &Delimiter,
        data: &[u8],
        times: Times,
    ) {
        let record = match std::str::from_utf8(data) {
            Ok(r) => r,
            Err(e) => return self.parse_error(data, not_utf8(e), times),
        };
        for (start, end) in rows.pieces(record) {
            if start == end {
                continue;
            }
            let row = &record[start..end];
            if row.len() > ROW_SIZE_MAX {
                self.parse_error(row.as_bytes(), too_large(row.len()), times);
                continue;
            }
            self.begin_row();
            let mut pieces = fields.pieces(row);
            let mut failed = None;
            for column in &format.columns {
                let src = match pieces.next() {
                    Some((a, b)) => Src::Str(Span::record(start + a, start + b)),
                    None => Src::Null,
                };
                match coerce::coerce(src, column.ty, record, &mut self.scratch, true) {
                    Ok(v) => self.row.push(v),
                    Err(()) => {
                        failed = Some(coercion_message(column, src, record, &self.scratch));
                        break;
                    }
                }
            }
            match failed {
                None => self.commit_row(record, times),
                Some(message) => self.error(ErrorKind::Coercion, message, row.as_bytes(), times),
            }
        }
    }
}

/// `Cannot coerce "abc" to INTEGER for column "PRICE"`: strings quoted,
/// numbers, booleans and JSON text as written.
fn coercion_message(column: &Column, src: Src, record: &str, scratch: &Scratch) -> String {
    let text = |s: Span| {
        let from = if s.scratch {
            scratch.text.as_str()
        } else {
            record
        };
        let t = from.get(s.start..s.end).unwrap_or("");
        let cut = coerce::char_prefix(t, MESSAGE_VALUE_CHARS_MAX);
        if cut < t.len() {
            format!("{}…", &t[..cut])
        } else {
            t.to_string()
        }
    };
    let value = match src {
        Src::Null => "NULL".to_string(),
        Src::Bool(b) => b.to_string(),
        Src::Number(s) | Src::Json(s) => text(s),
        Src::Str(s) => format!("\"{}\"", text(s)),
    };
    format!(
        "Cannot coerce {value} to {} for column \"{}\"",
        column.ty, column.name
    )
}
