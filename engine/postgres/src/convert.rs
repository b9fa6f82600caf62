//! One batch turned into what PostgreSQL's COPY reads: Redshift text, CSV or
//! JSON records, read with Redshift's rules, written as PostgreSQL CSV.
//!
//! Output format (what the `COPY ... WITH (FORMAT csv)` of [`Batch::sql`]
//! reads): one line per row, fields separated by `,`, every non-NULL value in
//! double quotes with `"` doubled, NULL as an empty unquoted field. Quoting
//! every value keeps `""` (empty string) apart from NULL and makes `\.` lines
//! impossible.
//!
//! What needs the table's columns ([`TableColumn`], from
//! [`CopyPlan::columns_sql`]): the column list when DataTableColumns is empty,
//! and their types for Redshift's per-type rules (an empty or blank field of a
//! non-character column is NULL; EMPTYASNULL, BLANKSASNULL, TRIMBLANKS and
//! TRUNCATECOLUMNS apply to character columns).

use std::borrow::Cow;

use crate::json::{Objects, Value};
use crate::plan::{CopyPlan, SourceFormat};
use crate::sql::quote_ident;

/// One column of the target table, as [`CopyPlan::columns_sql`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    pub name: String,
    /// The type without modifiers, as `format_type` writes it: `integer`,
    /// `character varying`, `character`, `text`, ...
    pub data_type: String,
    /// The declared length of `char(n)`/`varchar(n)`.
    pub character_maximum_length: Option<usize>,
}

impl TableColumn {
    /// A row of [`CopyPlan::columns_sql`]'s answer.
    pub fn from_row(row: &[Option<String>]) -> Result<TableColumn, String> {
        match row {
            [Some(name), Some(data_type), length] => Ok(TableColumn {
                name: name.clone(),
                data_type: data_type.clone(),
                character_maximum_length: match length {
                    Some(l) => Some(l.parse().map_err(|_| format!("bad column length '{l}'"))?),
                    None => None,
                },
            }),
            _ => Err("the column query answered an unexpected row".into()),
        }
    }
}

/// A batch ready for [`crate::Client::copy_in`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `COPY "schema"."table" ("a", "b") FROM STDIN WITH (FORMAT csv)`.
    pub sql: String,
    /// The rows, as PostgreSQL CSV.
    pub body: Vec<u8>,
    pub row_count: u64,
}

/// What the per-type rules need to know of a target column.
#[derive(Clone, Copy, Debug)]
struct Kind {
    character: bool,
    /// VARCHAR/TEXT: TRIMBLANKS applies.
    varying: bool,
    max_chars: Option<usize>,
}

impl Kind {
    fn of(column: &str, table: &[TableColumn]) -> Kind {
        match table.iter().find(|c| c.name == column) {
            Some(c) => {
                let t = c.data_type.as_str();
                Kind {
                    character: matches!(t, "character varying" | "character" | "text"),
                    varying: matches!(t, "character varying" | "text"),
                    max_chars: c.character_maximum_length,
                }
            }
            // Not in the table: the COPY will name it; keep the text as is.
            None => Kind {
                character: true,
                varying: false,
                max_chars: None,
            },
        }
    }
}

/// One field as read: its text, and whether it was the NULL AS marker.
struct Field {
    value: String,
    null: bool,
}

impl CopyPlan {
    /// The columns COPY fills: DataTableColumns, else the table's.
    pub fn target_columns(&self, table: &[TableColumn]) -> Vec<String> {
        match &self.columns {
            Some(c) => c.clone(),
            None => table.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// `COPY table (columns) FROM STDIN WITH (FORMAT csv)`; no list when
    /// `columns` is empty.
    pub fn copy_sql(&self, columns: &[String]) -> String {
        let list = if columns.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            format!(" ({})", names.join(", "))
        };
        format!(
            "COPY {}{list} FROM STDIN WITH (FORMAT csv)",
            self.table.to_sql()
        )
    }

    /// Reads `data` (already gunzipped) with the plan's Redshift rules and
    /// writes it as PostgreSQL CSV for the table whose columns are `table`.
    /// `Err` names the line (or byte) and what is wrong with it.
    pub fn prepare(&self, data: &[u8], table: &[TableColumn]) -> Result<Batch, String> {
        let columns = self.target_columns(table);
        if columns.is_empty() {
            return Err(format!(
                "table {} has no columns this user can see",
                self.table.to_sql()
            ));
        }
        let kinds: Vec<Kind> = columns.iter().map(|c| Kind::of(c, table)).collect();
        let text = self.decode(data)?;
        let mut body = Vec::with_capacity(data.len() + data.len() / 4);
        let mut row_count = 0u64;
        let mut row: Vec<Option<String>> = Vec::with_capacity(columns.len());
        match &self.format {
            SourceFormat::JsonAuto { ignore_case } => {
                for object in Objects::new(&text) {
                    let object = object?;
                    row.clear();
                    for (column, kind) in columns.iter().zip(&kinds) {
                        let found = object.iter().rev().find(|(key, _)| {
                            if *ignore_case {
                                key.to_lowercase() == column.to_lowercase()
                            } else {
                                key == column
                            }
                        });
                        row.push(match found {
                            None | Some((_, Value::Null)) => None,
                            Some((_, Value::Str(s))) => self.finish(s.clone(), *kind),
                            Some((_, Value::Raw(r))) => self.finish(r.to_string(), *kind),
                        });
                    }
                    write_row(&mut body, &row);
                    row_count += 1;
                }
            }
            SourceFormat::Text { .. } | SourceFormat::Csv { .. } => {
                let mut skipped = 0u64;
                let mut emit = |fields: &mut Vec<Field>, line: u64| -> Result<(), String> {
                    if skipped < self.ignore_header_count {
                        skipped += 1;
                        return Ok(());
                    }
                    let blank = fields.len() == 1 && fields[0].value.is_empty() && !fields[0].null;
                    if blank && self.ignore_blank_lines {
                        return Ok(());
                    }
                    if fields.len() > columns.len() {
                        return Err(format!(
                            "line {line}: Extra column(s) found ({} fields for {} columns)",
                            fields.len(),
                            columns.len()
                        ));
                    }
                    if fields.len() < columns.len() {
                        if !self.fill_record {
                            return Err(format!(
                                "line {line}: Delimiter not found ({} fields for {} columns; FILLRECORD loads short records)",
                                fields.len(),
                                columns.len()
                            ));
                        }
                        while fields.len() < columns.len() {
                            fields.push(Field {
                                value: String::new(),
                                null: false,
                            });
                        }
                    }
                    row.clear();
                    for (field, kind) in fields.drain(..).zip(&kinds) {
                        row.push(if field.null {
                            None
                        } else {
                            self.finish(field.value, *kind)
                        });
                    }
                    write_row(&mut body, &row);
                    row_count += 1;
                    Ok(())
                };
                match &self.format {
                    SourceFormat::Text { delimiter, escape } => {
                        read_text(&text, delimiter, *escape, &self.null_as, &mut emit)?
                    }
                    SourceFormat::Csv { delimiter, quote } => {
                        read_csv(&text, delimiter, *quote, &self.null_as, &mut emit)?
                    }
                    SourceFormat::JsonAuto { .. } => {}
                }
            }
        }
        Ok(Batch {
            sql: self.copy_sql(&columns),
            body,
            row_count,
        })
    }

    /// The batch as UTF-8; with ACCEPTINVCHARS each invalid byte becomes the
    /// replacement character, as Redshift does (same length in bytes).
    fn decode<'a>(&self, data: &'a [u8]) -> Result<Cow<'a, str>, String> {
        match std::str::from_utf8(data) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => {
                let Some(replacement) = self.accept_invalid_chars else {
                    return Err(format!(
                        "invalid UTF-8 at byte {} (ACCEPTINVCHARS loads it with a replacement character)",
                        e.valid_up_to()
                    ));
                };
                let mut out = String::with_capacity(data.len());
                let mut rest = data;
                loop {
                    match std::str::from_utf8(rest) {
                        Ok(s) => {
                            out.push_str(s);
                            return Ok(Cow::Owned(out));
                        }
                        Err(e) => {
                            let (valid, after) = rest.split_at(e.valid_up_to());
                            // valid_up_to() marks the end of valid UTF-8.
                            out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                            let bad = e.error_len().unwrap_or(after.len());
                            out.extend(std::iter::repeat_n(replacement, bad));
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
    }

    /// Redshift's per-type rules for one non-NULL value.
    fn finish(&self, mut value: String, kind: Kind) -> Option<String> {
        let blank = value.chars().all(char::is_whitespace);
        if !kind.character {
            // An empty or blank field of a non-character column is NULL.
            return if blank { None } else { Some(value) };
        }
        if (value.is_empty() && self.empty_as_null) || (blank && self.blanks_as_null) {
            return None;
        }
        if self.trim_blanks && kind.varying {
            value.truncate(value.trim_end().len());
        }
        if self.truncate_columns
            && let Some(max) = kind.max_chars
            && let Some((cut, _)) = value.char_indices().nth(max)
        {
            value.truncate(cut);
        }
        Some(value)
    }
}

fn write_row(body: &mut Vec<u8>, row: &[Option<String>]) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if let Some(v) = value {
            body.push(b'"');
            for part in v.split('"').enumerate() {
                if part.0 > 0 {
                    body.extend_from_slice(b"\"\"");
                }
                body.extend_from_slice(part.1.as_bytes());
            }
            body.push(b'"');
        }
    }
    body.push(b'\n');
}

type Emit<'e> = dyn FnMut(&mut Vec<Field>, u64) -> Result<(), String> + 'e;

/// Redshift text: records end at a newline, fields at `delimiter`; with
/// `escape` a backslash makes the next character data (newline, delimiter,
/// backslash). A field whose source text is `null_as` is NULL.
fn read_text(
    text: &str,
    delimiter: &str,
    escape: bool,
    null_as: &str,
    emit: &mut Emit,
) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut fields = Vec::new();
    let mut value = String::new();
    let mut field_start = 0;
    let mut pos = 0;
    let mut line = 1u64;
    let mut record_line = 1u64;
    let end_field = |fields: &mut Vec<Field>, value: &mut String, raw: &str| {
        fields.push(Field {
            null: raw == null_as,
            value: std::mem::take(value),
        });
    };
    while pos < bytes.len() {
        if escape && bytes[pos] == b'\\' {
            let Some(c) = text[pos + 1..].chars().next() else {
                return Err(format!("line {line}: a backslash (ESCAPE) ends the data"));
            };
            if c == '\n' {
                line += 1;
            }
            value.push(c);
            pos += 1 + c.len_utf8();
        } else if text[pos..].starts_with(delimiter) {
            end_field(&mut fields, &mut value, &text[field_start..pos]);
            pos += delimiter.len();
            field_start = pos;
        } else if bytes[pos] == b'\n' {
            end_field(&mut fields, &mut value, &text[field_start..pos]);
            emit(&mut fields, record_line)?;
            fields.clear();
            pos += 1;
            line += 1;
            record_line = line;
            field_start = pos;
        } else {
            let c = text[pos..].chars().next().unwrap_or('\0');
            value.push(c);
            pos += c.len_utf8().max(1);
        }
    }
    if field_start < bytes.len() || !fields.is_empty() {
        end_field(&mut fields, &mut value, &text[field_start..]);
        emit(&mut fields, record_line)?;
    }
    Ok(())
}

/// The position after the blanks (space, tab) at `pos`, stopping at the
/// delimiter: a blank that starts it is a delimiter, never skipped (with
/// `DELIMITER '\t'`, `x\t\t"z"` has an empty middle field).
fn skip_blanks(text: &str, mut pos: usize, delimiter: &str) -> usize {
    while text[pos..].starts_with([' ', '\t']) && !text[pos..].starts_with(delimiter) {
        pos += 1;
    }
    pos
}

/// CSV: fields split by `delimiter`, optionally enclosed in `quote` (doubled
/// inside); blanks between a delimiter and a quote are skipped, except those
/// that start the delimiter; CRLF ends a record like LF. An unquoted field
/// equal to `null_as` is NULL.
fn read_csv(
    text: &str,
    delimiter: &str,
    quote: char,
    null_as: &str,
    emit: &mut Emit,
) -> Result<(), String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    let mut line = 1u64;
    let len = text.len();
    while pos < len {
        let record_line = line;
        loop {
            // One field starting at `pos`.
            let after_blanks = skip_blanks(text, pos, delimiter);
            if text[after_blanks..].starts_with(quote) {
                let mut value = String::new();
                let mut p = after_blanks + quote.len_utf8();
                loop {
                    let Some(c) = text[p..].chars().next() else {
                        return Err(format!("line {record_line}: a quoted field is not closed"));
                    };
                    p += c.len_utf8();
                    if c == quote {
                        if text[p..].starts_with(quote) {
                            value.push(quote);
                            p += quote.len_utf8();
                        } else {
                            break;
                        }
                    } else {
                        if c == '\n' {
                            line += 1;
                        }
                        value.push(c);
                    }
                }
                pos = skip_blanks(text, p, delimiter);
                fields.push(Field { value, null: false });
                if text[pos..].starts_with(delimiter) {
                    pos += delimiter.len();
                    continue;
                }
                let rest = &text[pos..];
                if rest.is_empty() || rest.starts_with('\n') || rest.starts_with("\r\n") {
                    break;
                }
                return Err(format!("line {record_line}: text after a closing quote"));
            }
            let rest = &text[pos..];
            let end = rest
                .char_indices()
                .find(|&(i, c)| c == '\n' || rest[i..].starts_with(delimiter))
                .map_or(rest.len(), |(i, _)| i);
            let mut raw = &rest[..end];
            pos += end;
            let at_delimiter = text[pos..].starts_with(delimiter) && !text[pos..].starts_with('\n');
            if !at_delimiter {
                raw = raw.strip_suffix('\r').unwrap_or(raw);
            }
            fields.push(Field {
                null: raw == null_as,
                value: raw.to_string(),
            });
            if at_delimiter {
                pos += delimiter.len();
                continue;
            }
            break;
        }
        // At the end of a record: a newline (after an optional CR) or the end.
        if text[pos..].starts_with("\r\n") {
            pos += 2;
        } else if text[pos..].starts_with('\n') {
            pos += 1;
        }
        line += 1;
        emit(&mut fields, record_line)?;
        fields.clear();
    }
    Ok(())
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
