//! SQL text built from names and values we were given: identifier and literal
//! quoting, and the Redshift rules for table and column names.
//!
//! Every identifier or value that reaches SQL in this crate goes through
//! [`quote_ident`] or [`quote_literal`]; nothing is pasted in unescaped.
//! Redshift folds identifiers to lowercase (quoted ones too, unless a session
//! turns `enable_case_sensitive_identifier` on), so names are folded here before
//! they are quoted: `MyTable` and `"MyTable"` both name PostgreSQL's `mytable`.

/// The longest identifier accepted: Redshift's limit (127 bytes); PostgreSQL
/// truncates past 63, which would make two long names collide silently.
pub const IDENTIFIER_SIZE_MAX: usize = 63;

/// `"name"` with every `"` doubled: safe for any identifier text.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'` with every `'` doubled. Backslashes need no escape: the server
/// runs with `standard_conforming_strings` on (the default since 9.1; the
/// client refuses a server that reports it off).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A table named by `DataTableName`: `table` or `schema.table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// Reads `table`, `schema.table`, either part optionally in double quotes
    /// (`""` inside quotes is one `"`), folded to lowercase as Redshift does.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts = split_names(text, '.', "DataTableName")?;
        match parts.as_slice() {
            [name] => Ok(TableName {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(TableName {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(format!(
                "DataTableName '{text}' must be a table name or schema.table"
            )),
        }
    }

    /// The name quoted for SQL: `"schema"."table"` or `"table"`.
    pub fn to_sql(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

/// Reads `DataTableColumns`: a comma-separated list of column names (each
/// optionally double-quoted), folded to lowercase. Empty or blank → `None`
/// (Redshift loads all columns then).
pub fn parse_columns(text: &str) -> Result<Option<Vec<String>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let columns = split_names(text, ',', "DataTableColumns")?;
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(format!(
                "DataTableColumns names column '{c}' more than once"
            ));
        }
    }
    Ok(Some(columns))
}

/// Splits `text` on `sep` outside double quotes; each part trimmed, unquoted
/// (or lowercased when it was bare), non-empty and at most
/// [`IDENTIFIER_SIZE_MAX`] bytes.
fn split_names(text: &str, sep: char, what: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return Err(format!("{what} '{text}' has an unterminated quoted name")),
                }
            }
            name = name.to_lowercase();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == sep || c == '"' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            name = name.trim_end().to_lowercase();
        }
        if name.is_empty() {
            return Err(format!("{what} '{text}' has an empty name"));
        }
        if name.len() > IDENTIFIER_SIZE_MAX {
            return Err(format!(
                "{what} '{text}': the name '{name}' is longer than {IDENTIFIER_SIZE_MAX} bytes"
            ));
        }
        if name.contains('\0') {
            return Err(format!("{what} '{text}' has a name with a NUL character"));
        }
        names.push(name);
        match chars.next() {
            None => return Ok(names),
            Some(c) if c == sep => continue,
            Some(c) => return Err(format!("{what} '{text}' has an unexpected '{c}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_table(text: &str, expected: Result<&str, &str>) {
        let got = TableName::parse(text).map(|t| t.to_sql());
        match expected {
            Ok(sql) => assert_eq!(got, Ok(sql.to_string()), "{text}"),
            Err(part) => {
                let e = got.expect_err(text);
                assert!(e.contains(part), "{text}: {e}");
            }
        }
    }

    #[test]
    fn table_names() {
        check_table("events", Ok("\"events\""));
        check_table("Events", Ok("\"events\""));
        check_table(" public.Events ", Ok("\"public\".\"events\""));
        check_table("\"My Schema\".\"a.b\"", Ok("\"my schema\".\"a.b\""));
        check_table("\"we\"\"ird\"", Ok("\"we\"\"ird\""));
        check_table("x\"; DROP TABLE y; --", Err("unexpected '\"'"));
        check_table("a.b.c", Err("schema.table"));
        check_table("a.", Err("empty name"));
        check_table("\"open", Err("unterminated"));
        check_table(&"x".repeat(64), Err("longer than 63"));
    }

    #[test]
    fn column_lists() {
        assert_eq!(parse_columns("  "), Ok(None));
        assert_eq!(
            parse_columns("id, Name ,\"Ts\""),
            Ok(Some(vec!["id".into(), "name".into(), "ts".into()]))
        );
        assert!(parse_columns("a,,b").unwrap_err().contains("empty name"));
        assert!(
            parse_columns("a, A")
                .unwrap_err()
                .contains("more than once")
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's \\"), "'it''s \\'");
    }
}
