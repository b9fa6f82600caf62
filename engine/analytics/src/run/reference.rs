//! Loading a reference data source (docs/analytics-design.md §3.4 "Joins",
//! §5.9): its object read from the embedded store
//! (`<data-dir>/s3/<bucket>/<key>`) and decoded with the reference schema
//! into one `RecordBatch`, the table a `exec::join::RefTable` indexes.
//! Blocking (a file read): callers run it off the cores, on a thread.
//!
//! - The object is found as DiscoverInputSchema finds one
//!   (`ops_discover.rs`): a bucket name by S3's rules, a key of plain parts
//!   (no empty, `.` or `..` part), and the file, links resolved, inside the
//!   bucket's directory and a regular file. Anything else is "not found".
//! - At most `REFERENCE_BYTES_MAX` (64 MiB) is loaded: AWS allows an object
//!   of 1 GB, but Riffle keeps the table in memory (**Riffle**).
//! - Records: a leading UTF-8 byte order mark is dropped. CSV: the object
//!   is cut at `RecordRowDelimiter` and each row decoded on its own, so a
//!   row that is not UTF-8 loses itself only; every row is data (no header
//!   is skipped: a header row is a row, or a bad row if it does not
//!   coerce). JSON: the object is a sequence of JSON documents separated by
//!   whitespace (JSON Lines, or one document, such as an array read with
//!   `RecordRowPath` `$[0:]`), each decoded as a record by the schema,
//!   as DiscoverInputSchema reads an object's JSON; text that is not JSON
//!   is one bad row up to the end of the line where it fails, and loading
//!   goes on from the next line. A document read with a `RecordRowPath`
//!   that does not flatten is one row, at most `decode::ROW_SIZE_MAX`.
//! - Rows that do not decode are skipped and counted (`Loaded::bad_rows`).
//! - The table holds the declared columns only: the decoder's `ROWTIME`
//!   and `APPROXIMATE_ARRIVAL_TIME` are dropped (a reference row has no
//!   time).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::config::ReferenceConf;
use crate::decode::{Decoder, Format, InputFormat};

/// The largest reference object loaded (AWS: 1 GB; **Riffle**: the table
/// lives in memory).
pub(crate) const REFERENCE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A loaded reference table.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The rows decoded, in the object's order: the schema's columns only.
    pub(crate) batch: RecordBatch,
    /// Rows (or JSON documents) that did not decode, skipped.
    pub(crate) bad_rows: usize,
    /// A bad row's reason (a JSON parse error first), for the log.
    pub(crate) first_error: Option<String>,
}

/// Reads reference data source `r`'s object under `data_dir` and decodes
/// it; the error says why nothing was loaded (a schema not served, an
/// object not found, too large or unreadable).
pub(crate) fn load(data_dir: &Path, r: &ReferenceConf) -> Result<Loaded, String> {
    let data = read_object(data_dir, &r.bucket_arn, &r.file_key)?;
    load_bytes(r, &data)
}

/// Decodes reference data source `r`'s object, read already (from an
/// S3-compatible server).
pub(crate) fn load_bytes(r: &ReferenceConf, data: &[u8]) -> Result<Loaded, String> {
    let format = InputFormat::compile(&r.schema)
        .map_err(|e| format!("The reference schema of table {}: {e}", r.table_name))?;
    Ok(decode(Arc::new(format), data))
}

/// The bytes of the object, at most `REFERENCE_BYTES_MAX`.
fn read_object(data_dir: &Path, bucket_arn: &str, key: &str) -> Result<Vec<u8>, String> {
    let path = crate::objects::object_path(data_dir, bucket_arn, key)?;
    let unreadable = |e: std::io::Error| format!("Object {key} cannot be read: {e}");
    let too_large = |len: u64| {
        format!(
            "Object {key} is {len} bytes: this server loads reference objects of at most \
             {REFERENCE_BYTES_MAX} bytes (AWS allows 1 GB)."
        )
    };
    let file = std::fs::File::open(&path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    if len > REFERENCE_BYTES_MAX {
        return Err(too_large(len));
    }
    let mut data = Vec::with_capacity(len as usize);
    // One byte more than the limit tells a file that grew since.
    file.take(REFERENCE_BYTES_MAX + 1)
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() as u64 > REFERENCE_BYTES_MAX {
        return Err(too_large(data.len() as u64));
    }
    Ok(data)
}

/// Decodes every record of `data` into one batch of the schema's columns.
fn decode(format: Arc<InputFormat>, data: &[u8]) -> Loaded {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let columns = format.columns().len();
    let mut decoder = Decoder::new(format.clone());
    let mut unsplit = Vec::new();
    match format.format() {
        Format::Csv { row_delimiter, .. } => {
            for row in split(data, row_delimiter.as_bytes()) {
                decoder.push(row, 0, 0);
            }
        }
        Format::Json { .. } => {
            for piece in json_documents(data) {
                match piece {
                    Ok(document) => {
                        decoder.push(document, 0, 0);
                    }
                    Err(message) => unsplit.push(message),
                }
            }
        }
    }
    let (batch, errors) = decoder.finish();
    // The declared columns: ROWTIME and APPROXIMATE_ARRIVAL_TIME follow.
    let indices: Vec<usize> = (0..columns).collect();
    let batch = batch
        .project(&indices)
        .expect("the decoder's batch starts with the schema's columns");
    let first_error = match (unsplit.first(), errors.first()) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(e)) => Some(format!("{}: {}", e.kind.name(), e.message)),
        (None, None) => None,
    };
    Loaded {
        batch,
        bad_rows: unsplit.len() + errors.len(),
        first_error,
    }
}

/// The pieces of `data` between occurrences of `delimiter` (not empty).
fn split<'a>(data: &'a [u8], delimiter: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        let found = match delimiter {
            [] => None,
            [b] => r.iter().position(|c| c == b),
            d => r.windows(d.len()).position(|w| w == d),
        };
        match found {
            Some(i) => {
                rest = Some(&r[i + delimiter.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The JSON documents of `data`, whitespace apart; text that is not JSON
/// is one error up to the end of the line where it fails.
fn json_documents(data: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = data.get(at..)?;
        let start = rest.iter().position(|c| !c.is_ascii_whitespace())?;
        let rest = &rest[start..];
        let mut documents =
            serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
        match documents.next()? {
            Ok(_) => {
                let end = documents.byte_offset();
                at += start + end;
                Some(Ok(&rest[..end]))
            }
            Err(e) => {
                // serde_json counts lines from 1: skip past the line it
                // failed on.
                let line_end = rest
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\n')
                    .nth(e.line().saturating_sub(1))
                    .map_or(rest.len(), |(i, _)| i + 1);
                at += start + line_end;
                Some(Err(format!("Parse_error: Record is not valid JSON ({e})")))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;

    use super::*;
    use crate::config::SourceSchema;
    use crate::config::{CsvMapping, JsonMapping, MappingParameters, RecordColumn, RecordFormat};
    use std::path::PathBuf;

    /// A directory of its own under the system's temporary one, removed
    /// when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "riffle-reference-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("temp dir");
            TempDir(path)
        }

        /// Writes object `key` of `bucket`.
        fn object(&self, bucket: &str, key: &str, data: &[u8]) -> PathBuf {
            let path = self.0.join("s3").join(bucket).join(key);
            std::fs::create_dir_all(path.parent().expect("a key has a parent")).expect("dirs");
            std::fs::write(&path, data).expect("object written");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn column(name: &str, ty: &str, mapping: Option<&str>) -> RecordColumn {
        RecordColumn {
            name: name.into(),
            mapping: mapping.map(Into::into),
            sql_type: ty.into(),
        }
    }

    fn csv_schema(columns: Vec<RecordColumn>) -> SourceSchema {
        SourceSchema {
            format: RecordFormat {
                kind: "CSV".into(),
                mapping: Some(MappingParameters {
                    json: None,
                    csv: Some(CsvMapping {
                        row_delimiter: "\n".into(),
                        column_delimiter: ",".into(),
                    }),
                }),
            },
            encoding: Some("UTF-8".into()),
            columns,
        }
    }

    fn json_schema(row_path: &str, columns: Vec<RecordColumn>) -> SourceSchema {
        SourceSchema {
            format: RecordFormat {
                kind: "JSON".into(),
                mapping: Some(MappingParameters {
                    json: Some(JsonMapping {
                        row_path: row_path.into(),
                    }),
                    csv: None,
                }),
            },
            encoding: None,
            columns,
        }
    }

    fn company_csv() -> SourceSchema {
        csv_schema(vec![
            column("Ticker", "VARCHAR(4)", None),
            column("Company", "VARCHAR(20)", None),
        ])
    }

    fn reference(bucket: &str, key: &str, schema: SourceSchema) -> ReferenceConf {
        ReferenceConf {
            id: "1.1".into(),
            table_name: "CompanyName".into(),
            bucket_arn: format!("arn:aws:s3:::{bucket}"),
            file_key: key.into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            schema,
        }
    }

    /// The batch's rows, every column as text.
    fn texts(batch: &RecordBatch) -> Vec<Vec<String>> {
        (0..batch.num_rows())
            .map(|r| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            "NULL".to_string()
                        } else if let Some(s) = c.as_string_opt::<i32>() {
                            s.value(r).to_string()
                        } else {
                            c.as_primitive::<Int32Type>().value(r).to_string()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn row(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn a_csv_company_table_loads_its_declared_columns() {
        let dir = TempDir::new();
        dir.object(
            "ref-bucket",
            "tickers/companies.csv",
            b"AMZN,Amazon\nASD,SomeCompanyA\nMMB,SomeCompanyB\n",
        );
        let r = reference("ref-bucket", "tickers/companies.csv", company_csv());
        let loaded = load(&dir.0, &r).expect("loads");
        assert_eq!(loaded.bad_rows, 0);
        assert_eq!(loaded.first_error, None);
        let names: Vec<_> = loaded
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["Ticker", "Company"]);
        assert_eq!(
            texts(&loaded.batch),
            vec![
                row(&["AMZN", "Amazon"]),
                row(&["ASD", "SomeCompanyA"]),
                row(&["MMB", "SomeCompanyB"]),
            ]
        );
    }

    #[test]
    fn json_lines_and_pretty_documents_load_one_row_each() {
        let dir = TempDir::new();
        let object = "\u{feff}{\"Ticker\":\"AMZN\",\"Company\":\"Amazon\"}\n\
                      {\"Ticker\":\"ASD\",\"Company\":\"SomeCompanyA\"}\n\n\
                      {\n  \"Ticker\": \"MMB\",\n  \"Company\": \"SomeCompanyB\"\n}\n";
        dir.object("ref-bucket", "companies.json", object.as_bytes());
        let schema = json_schema(
            "$",
            vec![
                column("Ticker", "VARCHAR(4)", Some("$.Ticker")),
                column("Company", "VARCHAR(20)", Some("$.Company")),
            ],
        );
        let loaded =
            load(&dir.0, &reference("ref-bucket", "companies.json", schema)).expect("loads");
        assert_eq!(loaded.bad_rows, 0);
        assert_eq!(
            texts(&loaded.batch),
            vec![
                row(&["AMZN", "Amazon"]),
                row(&["ASD", "SomeCompanyA"]),
                row(&["MMB", "SomeCompanyB"]),
            ]
        );
    }

    #[test]
    fn a_json_array_loads_with_a_flattening_row_path() {
        let dir = TempDir::new();
        let object = br#"[{"Ticker":"AMZN","Id":1},{"Ticker":"ASD","Id":2}]"#;
        dir.object("ref-bucket", "companies.json", object);
        let schema = json_schema(
            "$[0:]",
            vec![
                column("Ticker", "VARCHAR(4)", Some("$.Ticker")),
                column("Id", "INTEGER", Some("$.Id")),
            ],
        );
        let loaded =
            load(&dir.0, &reference("ref-bucket", "companies.json", schema)).expect("loads");
        assert_eq!(loaded.bad_rows, 0);
        assert_eq!(
            texts(&loaded.batch),
            vec![row(&["AMZN", "1"]), row(&["ASD", "2"])]
        );
    }

    #[test]
    fn bad_rows_are_skipped_and_counted() {
        let dir = TempDir::new();
        let schema = csv_schema(vec![
            column("Ticker", "VARCHAR(4)", None),
            column("Id", "INTEGER", None),
        ]);
        // A header that does not coerce, a value that does not, a row
        // that is not UTF-8.
        dir.object(
            "ref-bucket",
            "ids.csv",
            b"Ticker,Id\nAMZN,1\nASD,x\n\xff\xfe,3\nMMB,4",
        );
        let loaded = load(&dir.0, &reference("ref-bucket", "ids.csv", schema)).expect("loads");
        assert_eq!(loaded.bad_rows, 3);
        assert_eq!(
            loaded.first_error.as_deref(),
            Some(r#"Coercion_error: Cannot coerce "Id" to INTEGER for column "Id""#)
        );
        assert_eq!(
            texts(&loaded.batch),
            vec![row(&["AMZN", "1"]), row(&["MMB", "4"])]
        );

        let schema = json_schema(
            "$",
            vec![
                column("Ticker", "VARCHAR(4)", Some("$.Ticker")),
                column("Id", "INTEGER", Some("$.Id")),
            ],
        );
        let object = "{\"Ticker\":\"AMZN\",\"Id\":1}\n\
                      {\"Ticker\":\"ASD\",\"Id\":\n\
                      not json at all\n\
                      {\"Ticker\":\"ASD\",\"Id\":\"two\"}\n\
                      {\"Ticker\":\"MMB\",\"Id\":3}";
        dir.object("ref-bucket", "ids.json", object.as_bytes());
        let loaded = load(&dir.0, &reference("ref-bucket", "ids.json", schema)).expect("loads");
        // The cut document (up to the line it fails on), and the coercion.
        assert_eq!(loaded.bad_rows, 2);
        assert!(
            loaded
                .first_error
                .as_deref()
                .is_some_and(|e| e.starts_with("Parse_error: Record is not valid JSON")),
            "{:?}",
            loaded.first_error
        );
        assert_eq!(
            texts(&loaded.batch),
            vec![row(&["AMZN", "1"]), row(&["MMB", "3"])]
        );
    }

    #[test]
    fn a_missing_object_or_bucket_is_not_found() {
        let dir = TempDir::new();
        dir.object("ref-bucket", "here.csv", b"AMZN,Amazon\n");
        for (bucket, key) in [
            ("ref-bucket", "missing.csv"),
            ("other-bucket", "here.csv"),
            ("ref-bucket", "here.csv/"),
        ] {
            let err = load(&dir.0, &reference(bucket, key, company_csv())).expect_err("not found");
            assert_eq!(err, format!("Object {key} in bucket {bucket} not found."));
        }
        // A directory is not an object.
        dir.object("ref-bucket", "folder/inner.csv", b"");
        let err = load(&dir.0, &reference("ref-bucket", "folder", company_csv()))
            .expect_err("a directory");
        assert_eq!(err, "Object folder in bucket ref-bucket not found.");
    }

    #[test]
    fn a_key_or_bucket_escaping_the_bucket_is_refused() {
        let dir = TempDir::new();
        dir.object("secret-bucket", "secret.csv", b"AMZN,Amazon\n");
        dir.object("ref-bucket", "here.csv", b"AMZN,Amazon\n");
        std::fs::write(dir.0.join("outside.csv"), b"AMZN,Amazon\n").expect("written");
        for key in [
            "../secret-bucket/secret.csv",
            "sub/../../secret-bucket/secret.csv",
            "./here.csv",
            "/etc/passwd",
            "../../outside.csv",
        ] {
            let err =
                load(&dir.0, &reference("ref-bucket", key, company_csv())).expect_err("refused");
            assert!(err.ends_with("not found."), "{key}: {err}");
        }
        for arn in [
            "arn:aws:s3:::..",
            "arn:aws:s3:::a/../b",
            "arn:aws:s3:::Ref",
            "ref-bucket",
        ] {
            let mut r = reference("ref-bucket", "here.csv", company_csv());
            r.bucket_arn = arn.into();
            let err = load(&dir.0, &r).expect_err("refused");
            assert!(err.contains("is not an S3 bucket ARN"), "{arn}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_bucket_is_refused() {
        let dir = TempDir::new();
        let secret = dir.object("secret-bucket", "secret.csv", b"AMZN,Amazon\n");
        let link = dir.0.join("s3").join("ref-bucket").join("link.csv");
        std::fs::create_dir_all(link.parent().expect("parent")).expect("dirs");
        std::os::unix::fs::symlink(&secret, &link).expect("link");
        let err =
            load(&dir.0, &reference("ref-bucket", "link.csv", company_csv())).expect_err("refused");
        assert_eq!(err, "Object link.csv in bucket ref-bucket not found.");
    }

    #[test]
    fn an_object_over_the_limit_is_refused() {
        let dir = TempDir::new();
        let path = dir.object("ref-bucket", "big.csv", b"");
        // Sparse: no 64 MiB written.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(REFERENCE_BYTES_MAX + 1))
            .expect("grown");
        let err = load(&dir.0, &reference("ref-bucket", "big.csv", company_csv()))
            .expect_err("too large");
        assert!(
            err.contains("at most 67108864 bytes (AWS allows 1 GB)"),
            "{err}"
        );
    }

    #[test]
    fn a_schema_not_served_is_refused() {
        let dir = TempDir::new();
        dir.object("ref-bucket", "here.csv", b"AMZN,Amazon\n");
        let mut schema = company_csv();
        schema.encoding = Some("UTF-16".into());
        let err = load(&dir.0, &reference("ref-bucket", "here.csv", schema)).expect_err("refused");
        assert!(
            err.starts_with("The reference schema of table CompanyName:"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_object_is_an_empty_table() {
        let dir = TempDir::new();
        dir.object("ref-bucket", "empty.csv", b"");
        let loaded =
            load(&dir.0, &reference("ref-bucket", "empty.csv", company_csv())).expect("loads");
        assert_eq!(loaded.batch.num_rows(), 0);
        assert_eq!(loaded.batch.num_columns(), 2);
        assert_eq!(loaded.bad_rows, 0);
    }

    #[test]
    fn splitting_keeps_every_piece_between_delimiters() {
        let pieces: Vec<&[u8]> = split(b"a\r\nb\r\n\r\nc", b"\r\n").collect();
        assert_eq!(pieces, [&b"a"[..], b"b", b"", b"c"]);
        let pieces: Vec<&[u8]> = split(b"a|b|", b"|").collect();
        assert_eq!(pieces, [&b"a"[..], b"b", b""]);
    }
}
