//! One Arrow builder per column, kept by the decoder across batches: a
//! whole coerced row is appended at once (`Staged` values), and `finish`
//! hands out the arrays and leaves the builders empty for the next batch.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time32MillisecondBuilder, TimestampMillisecondBuilder,
};

use super::coerce::{Scratch, Staged};
use crate::schema::SqlType;

/// A column's builder, typed by its SQL type's Arrow form.
#[derive(Debug)]
pub(super) enum Builder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Time(Time32MillisecondBuilder),
    Ts(TimestampMillisecondBuilder),
}

impl Builder {
    pub fn new(ty: SqlType) -> Builder {
        Builder::with_capacity(ty, 0, 0)
    }

    /// A builder with room for `rows` values and, for text and binary,
    /// `bytes` of them: a batch like the last one is built without
    /// growing (and copying) its buffers.
    pub fn with_capacity(ty: SqlType, rows: usize, bytes: usize) -> Builder {
        match ty {
            SqlType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            SqlType::TinyInt => Builder::I8(Int8Builder::with_capacity(rows)),
            SqlType::SmallInt => Builder::I16(Int16Builder::with_capacity(rows)),
            SqlType::Integer => Builder::I32(Int32Builder::with_capacity(rows)),
            SqlType::BigInt => Builder::I64(Int64Builder::with_capacity(rows)),
            SqlType::Real => Builder::F32(Float32Builder::with_capacity(rows)),
            SqlType::Double => Builder::F64(Float64Builder::with_capacity(rows)),
            SqlType::Decimal { precision, scale } => Builder::Dec(
                Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(precision, scale)
                    .expect("schema.rs bounds a decimal's precision and scale"),
            ),
            SqlType::Char { .. } | SqlType::Varchar { .. } => {
                Builder::Text(StringBuilder::with_capacity(rows, bytes))
            }
            SqlType::Binary { .. } | SqlType::Varbinary { .. } => {
                Builder::Bin(BinaryBuilder::with_capacity(rows, bytes))
            }
            SqlType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            SqlType::Time => Builder::Time(Time32MillisecondBuilder::with_capacity(rows)),
            SqlType::Timestamp => Builder::Ts(TimestampMillisecondBuilder::with_capacity(rows)),
        }
    }

    /// The bytes of text or binary values appended so far (0 for others).
    pub fn value_bytes(&self) -> usize {
        match self {
            Builder::Text(b) => b.values_slice().len(),
            Builder::Bin(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    /// Appends one value coerced for this column's type.
    pub fn append(&mut self, v: Staged, record: &str, scratch: &Scratch) {
        match (self, v) {
            (Builder::Bool(b), Staged::Null) => b.append_null(),
            (Builder::I8(b), Staged::Null) => b.append_null(),
            (Builder::I16(b), Staged::Null) => b.append_null(),
            (Builder::I32(b), Staged::Null) => b.append_null(),
            (Builder::I64(b), Staged::Null) => b.append_null(),
            (Builder::F32(b), Staged::Null) => b.append_null(),
            (Builder::F64(b), Staged::Null) => b.append_null(),
            (Builder::Dec(b), Staged::Null) => b.append_null(),
            (Builder::Text(b), Staged::Null) => b.append_null(),
            (Builder::Bin(b), Staged::Null) => b.append_null(),
            (Builder::Date(b), Staged::Null) => b.append_null(),
            (Builder::Time(b), Staged::Null) => b.append_null(),
            (Builder::Ts(b), Staged::Null) => b.append_null(),
            (Builder::Bool(b), Staged::Bool(x)) => b.append_value(x),
            // The ranges were checked by the coercion.
            (Builder::I8(b), Staged::Int(x)) => b.append_value(x as i8),
            (Builder::I16(b), Staged::Int(x)) => b.append_value(x as i16),
            (Builder::I32(b), Staged::Int(x)) => b.append_value(x as i32),
            (Builder::I64(b), Staged::Int(x)) => b.append_value(x),
            (Builder::F32(b), Staged::F32(x)) => b.append_value(x),
            (Builder::F64(b), Staged::F64(x)) => b.append_value(x),
            (Builder::Dec(b), Staged::Dec(x)) => b.append_value(x),
            (Builder::Text(b), Staged::Text(span)) => {
                let from = if span.scratch {
                    scratch.text.as_str()
                } else {
                    record
                };
                b.append_value(from.get(span.start..span.end).unwrap_or(""));
            }
            (Builder::Bin(b), Staged::Bin(start, end)) => {
                b.append_value(scratch.bin.get(start..end).unwrap_or(&[]));
            }
            (Builder::Date(b), Staged::Date(x)) => b.append_value(x),
            (Builder::Time(b), Staged::Time(x)) => b.append_value(x),
            (Builder::Ts(b), Staged::Ts(x)) => b.append_value(x),
            // `coerce` makes values of the column's type only.
            (_, v) => unreachable!("{v:?} was coerced for another type"),
        }
    }

    /// The column so far; the builder is left empty.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I8(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Dec(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bin(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
        }
    }
}
