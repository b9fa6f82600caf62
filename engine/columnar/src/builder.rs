//! Column builders: checked values (`Cell`) appended to Arrow arrays, one builder per
//! column, nested as the Hive type is.
//!
//! Appending cannot fail: the deserializer has already checked every value against the
//! column's type, so a cell of the wrong shape here is a bug in this crate (it panics).
//! List and map offsets are `i32`; the converter bounds a batch's input bytes so that
//! no offset can overflow.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, Fields};

use crate::types::{HiveType, list_field, map_entries_field, struct_fields};

/// One value checked against its column's type, borrowing text from the parsed JSON.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    /// Every integer type, dates (days) and timestamps (microseconds).
    Int(i64),
    /// float and double.
    Float(f64),
    /// Unscaled, at the column's scale.
    Decimal(i128),
    Text(Cow<'a, str>),
    Bytes(&'a [u8]),
    List(Vec<Cell<'a>>),
    /// Keys are never `Null`.
    Map(Vec<(Cell<'a>, Cell<'a>)>),
    /// One cell per field, in the type's order.
    Struct(Vec<Cell<'a>>),
}

pub(crate) enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<ColumnBuilder>,
    },
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        keys: Box<ColumnBuilder>,
        values: Box<ColumnBuilder>,
    },
    Struct {
        fields: Fields,
        nulls: NullBufferBuilder,
        children: Vec<ColumnBuilder>,
    },
}

/// Rows a builder reserves room for up front.
const CAPACITY_ROWS: usize = 1024;

impl ColumnBuilder {
    pub(crate) fn new(t: &HiveType) -> ColumnBuilder {
        match t {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => ColumnBuilder::Utf8(
                StringBuilder::with_capacity(CAPACITY_ROWS, CAPACITY_ROWS * 16),
            ),
            HiveType::Boolean => {
                ColumnBuilder::Boolean(BooleanBuilder::with_capacity(CAPACITY_ROWS))
            }
            HiveType::TinyInt => ColumnBuilder::Int8(Int8Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::SmallInt => ColumnBuilder::Int16(Int16Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::Int => ColumnBuilder::Int32(Int32Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::BigInt => ColumnBuilder::Int64(Int64Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::Float => ColumnBuilder::Float32(Float32Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::Double => {
                ColumnBuilder::Float64(Float64Builder::with_capacity(CAPACITY_ROWS))
            }
            HiveType::Decimal { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(CAPACITY_ROWS)
                    .with_data_type(DataType::Decimal128(*precision, *scale as i8)),
            ),
            HiveType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(CAPACITY_ROWS)),
            HiveType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(CAPACITY_ROWS))
            }
            HiveType::Binary => ColumnBuilder::Binary(BinaryBuilder::new()),
            HiveType::Array(element) => ColumnBuilder::List {
                field: list_field(element),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(CAPACITY_ROWS),
                child: Box::new(ColumnBuilder::new(element)),
            },
            HiveType::Map(key, value) => ColumnBuilder::Map {
                entries: map_entries_field(key, value),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(CAPACITY_ROWS),
                keys: Box::new(ColumnBuilder::new(key)),
                values: Box::new(ColumnBuilder::new(value)),
            },
            HiveType::Struct(fields) => ColumnBuilder::Struct {
                fields: struct_fields(fields),
                nulls: NullBufferBuilder::new(CAPACITY_ROWS),
                children: fields.iter().map(|(_, t)| ColumnBuilder::new(t)).collect(),
            },
        }
    }

    /// Appends one checked cell.
    pub(crate) fn append(&mut self, cell: &Cell<'_>) {
        if matches!(cell, Cell::Null) {
            self.append_null();
            return;
        }
        match (self, cell) {
            (ColumnBuilder::Boolean(b), Cell::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Int8(b), Cell::Int(v)) => b.append_value(narrow(*v)),
            (ColumnBuilder::Int16(b), Cell::Int(v)) => b.append_value(narrow(*v)),
            (ColumnBuilder::Int32(b), Cell::Int(v)) => b.append_value(narrow(*v)),
            (ColumnBuilder::Int64(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuilder::Date(b), Cell::Int(v)) => b.append_value(narrow(*v)),
            (ColumnBuilder::Timestamp(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuilder::Float32(b), Cell::Float(v)) => b.append_value(*v as f32),
            (ColumnBuilder::Float64(b), Cell::Float(v)) => b.append_value(*v),
            (ColumnBuilder::Decimal(b), Cell::Decimal(v)) => b.append_value(*v),
            (ColumnBuilder::Utf8(b), Cell::Text(v)) => b.append_value(v),
            (ColumnBuilder::Binary(b), Cell::Bytes(v)) => b.append_value(v),
            (
                ColumnBuilder::List {
                    offsets,
                    nulls,
                    child,
                    ..
                },
                Cell::List(items),
            ) => {
                for item in items {
                    child.append(item);
                }
                push_offset(offsets, items.len());
                nulls.append_non_null();
            }
            (
                ColumnBuilder::Map {
                    offsets,
                    nulls,
                    keys,
                    values,
                    ..
                },
                Cell::Map(entries),
            ) => {
                for (key, value) in entries {
                    assert!(!matches!(key, Cell::Null), "a map key is never null");
                    keys.append(key);
                    values.append(value);
                }
                push_offset(offsets, entries.len());
                nulls.append_non_null();
            }
            (
                ColumnBuilder::Struct {
                    nulls, children, ..
                },
                Cell::Struct(cells),
            ) => {
                assert_eq!(children.len(), cells.len(), "one cell per struct field");
                for (child, cell) in children.iter_mut().zip(cells) {
                    child.append(cell);
                }
                nulls.append_non_null();
            }
            (_, cell) => unreachable!("a checked cell has its column's shape: {cell:?}"),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Decimal(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::List { offsets, nulls, .. }
            | ColumnBuilder::Map { offsets, nulls, .. } => {
                push_offset(offsets, 0);
                nulls.append_null();
            }
            ColumnBuilder::Struct {
                nulls, children, ..
            } => {
                for child in children {
                    child.append_null();
                }
                nulls.append_null();
            }
        }
    }

    /// The array of everything appended since the last `finish`; the builder is empty
    /// again afterwards.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::List {
                field,
                offsets,
                nulls,
                child,
            } => {
                let values = child.finish();
                Arc::new(ListArray::new(
                    field.clone(),
                    take_offsets(offsets),
                    values,
                    nulls.finish(),
                ))
            }
            ColumnBuilder::Map {
                entries,
                offsets,
                nulls,
                keys,
                values,
            } => {
                let DataType::Struct(entry_fields) = entries.data_type() else {
                    unreachable!("map entries are a struct")
                };
                let entry_array = StructArray::new(
                    entry_fields.clone(),
                    vec![keys.finish(), values.finish()],
                    None,
                );
                Arc::new(MapArray::new(
                    entries.clone(),
                    take_offsets(offsets),
                    entry_array,
                    nulls.finish(),
                    false,
                ))
            }
            ColumnBuilder::Struct {
                fields,
                nulls,
                children,
            } => {
                let arrays = children.iter_mut().map(ColumnBuilder::finish).collect();
                Arc::new(StructArray::new(fields.clone(), arrays, nulls.finish()))
            }
        }
    }
}

/// A value the deserializer range-checked for the narrower type.
fn narrow<T: TryFrom<i64>>(v: i64) -> T {
    T::try_from(v).unwrap_or_else(|_| unreachable!("{v} was range-checked"))
}

fn push_offset(offsets: &mut Vec<i32>, added: usize) {
    let last = *offsets.last().expect("offsets start with 0") as usize;
    let next = i32::try_from(last + added).expect("a batch's input bytes bound its list offsets");
    offsets.push(next);
}

fn take_offsets(offsets: &mut Vec<i32>) -> OffsetBuffer<i32> {
    let taken = std::mem::replace(offsets, vec![0]);
    OffsetBuffer::new(ScalarBuffer::from(taken))
}
