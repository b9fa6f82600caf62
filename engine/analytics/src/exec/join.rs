//! Stream ⋈ reference table (docs/analytics-design.md §3.4 "Joins"): a hash
//! join, pure. `RefTable::build` indexes the reference rows once by their
//! equality keys (at Start and at every UpdateApplication); `join` probes
//! it with each stream row, no window.
//!
//! Keys are compared by value, whatever the Arrow width: a table column of
//! TINYINT/SMALLINT/INTEGER/BIGINT, REAL/DOUBLE/DECIMAL, VARCHAR/CHAR,
//! BOOLEAN or TIMESTAMP is widened to its evaluation type
//! (`expr::eval::widen`; DECIMAL to a DOUBLE as the evaluator reads it)
//! and each key value row-encoded into bytes, so a stream key of the same
//! evaluation type finds its rows through one `HashMap` lookup. An integer
//! meets a DOUBLE by value (`2` = `2.0`; `2.5` matches no integer). SQL's
//! rules: a NULL key never matches, nor does NaN (`NaN = NaN` is false);
//! `-0.0 = 0.0`. A key column of another type (DATE, TIME, BINARY: the
//! planner does not offer them) or of a type the stream key cannot equal
//! matches nothing.
//!
//! Output: the stream row's columns then every table column (nullable, with
//! their own names: Arrow schemas allow a name twice), one row per match
//! in (stream row, table row) order; a LEFT join keeps a stream row without
//! match once, with NULL table columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
    StringArray, TimestampMillisecondArray, UInt32Array, new_null_array,
};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, FieldRef, Schema, TimeUnit};

use crate::expr::Ty;
use crate::expr::eval::widen;

/// How a key's values are compared: the evaluation type they widen to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyClass {
    Int,
    Float,
    Text,
    Bool,
    Time,
    /// A type no stream key equals: never matches.
    None,
}

/// A key column in its comparable form, downcast once.
enum KeyArray {
    Int(Int64Array),
    Float(Float64Array),
    Text(StringArray),
    Bool(BooleanArray),
    Time(TimestampMillisecondArray),
    /// A type no stream key equals.
    None,
}

/// Each row's key of a stream-to-stream join as bytes (None: it can match
/// nothing: a NULL, NaN, another type): `keys` one array per ON equality,
/// encoded as values of the other stream's key columns, whose types are
/// `like`, so both sides' keys compare as a reference join's do.
pub fn row_keys(keys: &[ArrayRef], like: &[DataType]) -> Vec<Option<Vec<u8>>> {
    let n = keys.first().map_or(0, |k| k.len());
    let arrays: Vec<KeyArray> = keys.iter().map(KeyArray::of).collect();
    let classes: Vec<KeyClass> = like
        .iter()
        .map(|t| KeyArray::of(&new_null_array(t, 0)).class())
        .collect();
    (0..n)
        .map(|row| {
            let mut key = Vec::new();
            (arrays.len() == classes.len()
                && arrays
                    .iter()
                    .zip(&classes)
                    .all(|(a, c)| a.encode(row, *c, &mut key)))
            .then_some(key)
        })
        .collect()
}

impl KeyArray {
    /// `a` widened to its evaluation type (DECIMAL into DOUBLE).
    fn of(a: &ArrayRef) -> KeyArray {
        match a.data_type() {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                KeyArray::Int(widen(a, Ty::Int).as_primitive::<Int64Type>().clone())
            }
            DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
                KeyArray::Float(widen(a, Ty::Float).as_primitive::<Float64Type>().clone())
            }
            DataType::Utf8 => KeyArray::Text(a.as_string::<i32>().clone()),
            DataType::Boolean => KeyArray::Bool(a.as_boolean().clone()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => KeyArray::Time(
                widen(a, Ty::Time)
                    .as_primitive::<TimestampMillisecondType>()
                    .clone(),
            ),
            _ => KeyArray::None,
        }
    }

    fn class(&self) -> KeyClass {
        match self {
            KeyArray::Int(_) => KeyClass::Int,
            KeyArray::Float(_) => KeyClass::Float,
            KeyArray::Text(_) => KeyClass::Text,
            KeyArray::Bool(_) => KeyClass::Bool,
            KeyArray::Time(_) => KeyClass::Time,
            KeyArray::None => KeyClass::None,
        }
    }

    /// Appends row `row`'s value, encoded as a key of class `to`, to `out`;
    /// false when it can equal no value of that class (NULL, NaN, another
    /// type, a fraction against integers).
    fn encode(&self, row: usize, to: KeyClass, out: &mut Vec<u8>) -> bool {
        match (to, self) {
            (KeyClass::Int, KeyArray::Int(a)) if a.is_valid(row) => {
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            (KeyClass::Int, KeyArray::Float(a)) if a.is_valid(row) => {
                let f = a.value(row);
                // In i64's range and whole: the integer it equals.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
                if !(f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)) {
                    return false;
                }
                out.extend_from_slice(&(f as i64).to_le_bytes());
            }
            (KeyClass::Float, KeyArray::Float(_) | KeyArray::Int(_)) => {
                let f = match self {
                    KeyArray::Int(a) if a.is_valid(row) => a.value(row) as f64,
                    KeyArray::Float(a) if a.is_valid(row) => a.value(row),
                    _ => return false,
                };
                if f.is_nan() {
                    return false;
                }
                // -0.0 and 0.0 are equal: one encoding.
                let f = if f == 0.0 { 0.0 } else { f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            (KeyClass::Text, KeyArray::Text(a)) if a.is_valid(row) => {
                let s = a.value(row);
                // Length first, so two keys' bytes never run together.
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            (KeyClass::Bool, KeyArray::Bool(a)) if a.is_valid(row) => {
                out.push(u8::from(a.value(row)));
            }
            (KeyClass::Time, KeyArray::Time(a)) if a.is_valid(row) => {
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            _ => return false,
        }
        true
    }
}

/// The table rows of one key value: most keys have one.
#[derive(Debug)]
enum Rows {
    One(u32),
    Many(Vec<u32>),
}

impl Rows {
    fn push(&mut self, row: u32) {
        match self {
            Rows::One(first) => *self = Rows::Many(vec![*first, row]),
            Rows::Many(rows) => rows.push(row),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Rows::One(r) => std::slice::from_ref(r),
            Rows::Many(rs) => rs,
        }
    }
}

/// A reference table indexed by its equality keys. Immutable once built:
/// shared by every core's tasks through an `Arc`.
pub struct RefTable {
    table: RecordBatch,
    /// The table's fields as the join writes them: all nullable.
    fields: Vec<FieldRef>,
    /// The comparable class of each key column, in ON's order.
    classes: Vec<KeyClass>,
    index: HashMap<Box<[u8]>, Rows>,
}

impl RefTable {
    /// `table`: the reference rows; `keys`: the column indexes of the
    /// equality keys (in ON's order). Rows with a NULL key are kept in the
    /// table but never match. A key index out of the table's columns (a
    /// planner bug) gives a table that matches nothing.
    pub fn build(table: RecordBatch, keys: Vec<usize>) -> RefTable {
        let fields = table
            .schema()
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        let mut index: HashMap<Box<[u8]>, Rows> = HashMap::new();
        let in_range = keys.iter().all(|k| *k < table.num_columns());
        debug_assert!(
            in_range,
            "key columns {keys:?} of a {}-column table",
            table.num_columns()
        );
        let columns: Vec<KeyArray> = match in_range {
            true => keys
                .iter()
                .map(|k| KeyArray::of(table.column(*k)))
                .collect(),
            false => Vec::new(),
        };
        let classes: Vec<KeyClass> = match in_range {
            true => columns.iter().map(KeyArray::class).collect(),
            false => vec![KeyClass::None; keys.len()],
        };
        let mut key = Vec::new();
        for row in 0..table.num_rows() {
            key.clear();
            if !columns.iter().all(|c| c.encode(row, c.class(), &mut key)) {
                continue;
            }
            let row = row as u32;
            match index.get_mut(key.as_slice()) {
                Some(rows) => rows.push(row),
                None => {
                    index.insert(key.as_slice().into(), Rows::One(row));
                }
            }
        }
        RefTable {
            table,
            fields,
            classes,
            index,
        }
    }

    /// The reference rows (NULL-keyed ones included).
    pub fn rows(&self) -> usize {
        self.table.num_rows()
    }

    /// The reference rows as loaded.
    pub fn table(&self) -> &RecordBatch {
        &self.table
    }

    /// The schema of `join`'s output for stream batches of `stream`:
    /// its fields, then the table's (nullable).
    pub fn output_schema(&self, stream: &Schema) -> Arc<Schema> {
        let fields: Vec<FieldRef> = stream
            .fields()
            .iter()
            .cloned()
            .chain(self.fields.iter().cloned())
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Which stream rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Only the stream rows with a match.
    Inner,
    /// Every stream row; those without a match once, with NULL table
    /// columns.
    Left,
}

/// Joins `batch` (stream rows) with `table` on `keys`: one array per key in
/// ON's order, evaluated on the stream rows (`crate::expr::eval`'s types;
/// narrower ones are widened). Gives the stream row's columns then the
/// table's, one row per match in (stream row, table row) order. Key arrays
/// not as long as the batch (a caller's bug) match nothing.
pub fn join(
    table: &RefTable,
    batch: &RecordBatch,
    keys: &[ArrayRef],
    kind: JoinKind,
) -> RecordBatch {
    join_from(table, batch, keys, kind).0
}

/// [`join`], and the stream row each output row was made from.
pub fn join_from(
    table: &RefTable,
    batch: &RecordBatch,
    keys: &[ArrayRef],
    kind: JoinKind,
) -> (RecordBatch, Vec<u32>) {
    let n = batch.num_rows();
    let usable = keys.len() == table.classes.len() && keys.iter().all(|k| k.len() == n);
    debug_assert!(
        usable,
        "{} key arrays for {} keys, {n} rows",
        keys.len(),
        table.classes.len()
    );
    let probes: Vec<KeyArray> = match usable {
        true => keys.iter().map(KeyArray::of).collect(),
        false => Vec::new(),
    };
    // The stream row and the table row of each output row (a row not
    // `matched`: NULL table columns).
    let mut left: Vec<u32> = Vec::with_capacity(n);
    let mut right: Vec<u32> = Vec::with_capacity(n);
    let mut matched: Vec<bool> = Vec::with_capacity(n);
    let mut key = Vec::new();
    for row in 0..n {
        key.clear();
        let found = usable
            && probes
                .iter()
                .zip(&table.classes)
                .all(|(p, to)| p.encode(row, *to, &mut key));
        let rows = match found {
            true => table.index.get(key.as_slice()).map(Rows::as_slice),
            false => None,
        };
        match rows {
            Some(rows) => {
                for r in rows {
                    left.push(row as u32);
                    right.push(*r);
                    matched.push(true);
                }
            }
            None if kind == JoinKind::Left => {
                left.push(row as u32);
                right.push(0);
                matched.push(false);
            }
            None => {}
        }
    }
    let schema = table.output_schema(&batch.schema());
    let rows = left.len();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    match output(table, batch, &left, right, matched)
        .and_then(|columns| RecordBatch::try_new_with_options(schema.clone(), columns, &options))
    {
        Ok(out) => (out, left),
        Err(e) => {
            // Only an output over Arrow's 2 GiB of text in one column (a
            // key with very many table rows) gets here.
            tracing::error!("reference join: {e}; the batch's {rows} rows are dropped");
            (RecordBatch::new_empty(schema), Vec::new())
        }
    }
}

/// The output columns: the stream's taken at `left`, the table's at
/// `right` (NULL where not `matched`).
fn output(
    table: &RefTable,
    batch: &RecordBatch,
    left: &[u32],
    right: Vec<u32>,
    matched: Vec<bool>,
) -> Result<Vec<ArrayRef>, arrow_schema::ArrowError> {
    let identity =
        left.len() == batch.num_rows() && left.iter().enumerate().all(|(i, r)| *r as usize == i);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + table.fields.len());
    if identity {
        columns.extend(batch.columns().iter().cloned());
    } else {
        let at = UInt32Array::from(left.to_vec());
        for c in batch.columns() {
            columns.push(arrow_select::take::take(c.as_ref(), &at, None)?);
        }
    }
    let len = left.len();
    if matched.iter().all(|m| !m) {
        columns.extend(
            table
                .fields
                .iter()
                .map(|f| new_null_array(f.data_type(), len)),
        );
    } else {
        let nulls = NullBuffer::new(BooleanBuffer::from(matched));
        let at = UInt32Array::new(right.into(), Some(nulls));
        for c in table.table.columns() {
            columns.push(arrow_select::take::take(c.as_ref(), &at, None)?);
        }
    }
    Ok(columns)
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
