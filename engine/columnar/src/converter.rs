//! `Converter`: Firehose records in, one Parquet file out.
//!
//! A record is read whole (every JSON object in it checked against the schema) before
//! any of its rows reach the column builders, so a refused record leaves no rows.
//! Rows gather in builders until `BATCH_ROWS_MAX` rows or `BATCH_INPUT_BYTES_MAX`
//! input bytes, then go to parquet's `ArrowWriter` as one `RecordBatch`; the writer
//! keeps the open row group (encoded and compressed) in memory until it reaches
//! `block_size_bytes`, then appends it to the file's bytes.
//!
//! Runs on the caller's thread, with no runtime; not `Sync`-shared (one per object).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;

use crate::builder::{Cell, ColumnBuilder};
use crate::deserializer::{Deserializer, Reader};
use crate::json::{self, Member, Value};
use crate::options::ParquetOptions;
use crate::types::Schema;

/// Rows per Arrow batch handed to the Parquet writer: large enough for vectorised
/// encoding, small enough that the builders stay a few MiB.
pub const BATCH_ROWS_MAX: usize = 8192;
/// Input bytes per batch. Every list element and string byte in a batch comes from at
/// most this many input bytes (numbers turned into text grow at most ~5x), which keeps
/// Arrow's i32 offsets far from overflow; it is also the largest record accepted.
pub const BATCH_INPUT_BYTES_MAX: usize = 32 * 1024 * 1024;

pub struct Converter {
    reader: Reader,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    writer: ArrowWriter<Vec<u8>>,
    batch_rows: usize,
    batch_input_bytes: usize,
    row_count: u64,
}

/// Firehose moves a converter to a worker thread.
const _: () = {
    const fn send<T: Send>() {}
    send::<Converter>();
};

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("row_count", &self.row_count)
            .field("batch_rows", &self.batch_rows)
            .finish_non_exhaustive()
    }
}

impl Converter {
    /// Refuses a deserializer it cannot compile (an unsupported Joda pattern) and
    /// options parquet cannot use (zero sizes).
    pub fn new(
        schema: &Schema,
        deserializer: Deserializer,
        options: ParquetOptions,
    ) -> Result<Converter, String> {
        let columns: Vec<_> = schema
            .columns()
            .iter()
            .map(|c| (c.name.clone(), c.hive_type.clone()))
            .collect();
        let reader = Reader::new(&columns, &deserializer)?;
        let properties = options.writer_properties()?;
        let writer_options = ArrowWriterOptions::new()
            .with_properties(properties)
            .with_skip_arrow_metadata(true);
        let arrow_schema = Arc::clone(schema.arrow_schema());
        let writer = ArrowWriter::try_new_with_options(
            Vec::new(),
            Arc::clone(&arrow_schema),
            writer_options,
        )
        .map_err(|e| format!("cannot write Parquet for this schema: {e}"))?;
        Ok(Converter {
            reader,
            schema: arrow_schema,
            builders: schema
                .columns()
                .iter()
                .map(|c| ColumnBuilder::new(&c.hive_type))
                .collect(),
            writer,
            batch_rows: 0,
            batch_input_bytes: 0,
            row_count: 0,
        })
    }

    /// One Firehose record: one or more concatenated JSON objects (whitespace between
    /// them allowed), each a row. All or nothing: on error no row of it is kept, and
    /// the message says which object and column and why (for the error prefix).
    pub fn push(&mut self, record: &[u8]) -> Result<(), String> {
        if record.len() > BATCH_INPUT_BYTES_MAX {
            return Err(format!(
                "the record is {} bytes, more than the {BATCH_INPUT_BYTES_MAX} a conversion accepts",
                record.len()
            ));
        }
        let values =
            json::read_all(record).map_err(|e| format!("the record is not valid JSON: {e}"))?;
        let mut objects: Vec<&[Member<'_>]> = Vec::with_capacity(values.len());
        for value in &values {
            let Value::Object(members) = value else {
                return Err(format!(
                    "the record holds {} where a JSON object was expected; records must be JSON objects, concatenated if several ({{\"a\":1}}{{\"a\":2}})",
                    value.kind()
                ));
            };
            objects.push(members);
        }
        if objects.is_empty() {
            return Err("the record holds no JSON object".to_owned());
        }
        let several = objects.len() > 1;
        let mut rows: Vec<Vec<Cell<'_>>> = Vec::with_capacity(objects.len());
        for (index, object) in objects.into_iter().enumerate() {
            let row = self.reader.row(object).map_err(|e| {
                if several {
                    format!("JSON object {} of the record: {e}", index + 1)
                } else {
                    e
                }
            })?;
            rows.push(row);
        }
        // Every row is checked: nothing below can fail for a reason of the record's.
        if self.batch_input_bytes + record.len() > BATCH_INPUT_BYTES_MAX {
            self.flush_batch()?;
        }
        for row in &rows {
            for (builder, cell) in self.builders.iter_mut().zip(row) {
                builder.append(cell);
            }
            self.batch_rows += 1;
            self.row_count += 1;
            if self.batch_rows >= BATCH_ROWS_MAX {
                self.flush_batch()?;
            }
        }
        self.batch_input_bytes += record.len();
        Ok(())
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.row_count
    }

    /// Bytes held now: the finished row groups plus the open one (estimated); rows
    /// still in the builders are not counted.
    pub fn memory_size(&self) -> usize {
        self.writer.inner().len() + self.writer.memory_size()
    }

    /// The complete Parquet file. A converter with no rows gives a valid file with no
    /// row groups.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        self.flush_batch()?;
        self.writer
            .into_inner()
            .map_err(|e| format!("cannot finish the Parquet file: {e}"))
    }

    fn flush_batch(&mut self) -> Result<(), String> {
        if self.batch_rows == 0 {
            return Ok(());
        }
        let arrays = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| format!("internal error: the batch does not match the schema: {e}"))?;
        self.batch_rows = 0;
        self.batch_input_bytes = 0;
        self.writer
            .write(&batch)
            .map_err(|e| format!("cannot write the Parquet row group: {e}"))
    }
}
