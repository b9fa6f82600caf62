//! A minimal PostgreSQL client for Firehose's Redshift destination: a batch
//! is loaded with `COPY ... FROM STDIN` when `ClusterJDBCURL` names a
//! PostgreSQL server (or anything speaking its protocol).
//!
//! Pure parts, no runtime: [`parse_jdbc_url`] (`url.rs`), [`copy_plan`]
//! (`plan.rs`: Redshift's CopyOptions read), [`CopyPlan::prepare`]
//! (`convert.rs`: a batch in Redshift's text, CSV or JSON 'auto' written as
//! PostgreSQL CSV; `json.rs` reads JSON), quoting (`sql.rs`), SCRAM and MD5
//! (`scram.rs`), which authentication methods are answered ([`AuthMethods`],
//! libpq's `require_auth`, `auth.rs`), the wire format (`wire.rs`). The
//! [`Client`] (`client.rs`) is generic over
//! `futures_lite::{AsyncRead, AsyncWrite} + Unpin`; it never spawns, sleeps
//! or names a runtime. No TLS: so a cleartext password is refused unless
//! `require_auth` allows it, and nothing but SCRAM is answered once SCRAM
//! has begun.
//!
//! Use (the caller owns the connection, the timeout, and gunzipping when
//! `plan.gzip`):
//!
//! ```text
//! let target = parse_jdbc_url(&cfg.cluster_jdbc_url)?;  // host, port, database, require_auth
//! let plan = copy_plan(&cmd.data_table_name, cmd.data_table_columns.as_deref(),
//!                      cmd.copy_options.as_deref())?;    // once per configuration
//! let stream = riffle_engine::rt::net::connect(addr).await?;
//! let mut client = Client::connect_with(stream, &target.database, &user, &password,
//!                                       target.require_auth).await?;
//! let rows = client.load(&plan, &batch).await?;         // BEGIN; columns; COPY; COMMIT
//! ```
//!
//! CPU: [`CopyPlan::prepare`] converts a whole batch (about a second for
//! 128 MiB) and SCRAM's key derivation runs up to [`SCRAM_ITERATIONS_MAX`]
//! HMACs (24 times PostgreSQL's default). `load` prepares on the caller's thread; a caller
//! that must not block its thread that long splits it:
//!
//! ```text
//! let table = client.begin_load(&plan).await?;          // BEGIN; columns
//! let batch = match on_a_worker(move || plan.prepare(&data, &table)).await {
//!     Ok(batch) => batch,
//!     Err(e) => { client.abort_load().await?; return Err(PgError::Data(e)) }  // ROLLBACK
//! };
//! let rows = client.finish_load(&batch).await?;         // COPY; COMMIT (ROLLBACK on error)
//! ```
//!
//! Bounds on what the server sends: each message [`MESSAGE_SIZE_MAX`], a
//! query's whole answer [`QUERY_ANSWER_SIZE_MAX`], ParameterStatus
//! [`PARAMETER_COUNT_MAX`] names and [`PARAMETERS_SIZE_MAX`] bytes.
//!
//! Errors: [`PgError::Server`] carries the server's SQLSTATE, severity,
//! message and detail (Firehose shows them as AWS shows Redshift's);
//! [`PgError::Data`] is a batch the COPY options cannot read. Either way
//! nothing of the batch is loaded.
//!
//! # Redshift COPY on PostgreSQL
//!
//! Every batch is read here with Redshift's rules and sent to PostgreSQL as
//! CSV (`COPY t (cols) FROM STDIN WITH (FORMAT csv)`), so the rules below are
//! Redshift's, not PostgreSQL's text format's. Option names are
//! case-insensitive, `AS` is optional where Redshift allows it, one trailing
//! `;` is allowed, and an option given twice is refused.
//!
//! Served:
//! - text (the default): `DELIMITER [AS] 'x'` (one or more characters, `|`
//!   by default; `'\t'` and octal `'\ddd'` escapes), a backslash is data
//!   unless `ESCAPE`, which makes `\x` stand for `x` (newline, delimiter,
//!   backslash). `NULL AS 'x'` (default `\N`): a field whose source text is
//!   it is NULL.
//! - `CSV [QUOTE [AS] 'q']`, `FORMAT [AS] CSV`: RFC 4180 quoting with `q`
//!   (default `"`), `,` by default, CRLF or LF, blanks (space, tab) around
//!   a quoted field skipped unless they are the delimiter (`DELIMITER '\t'`
//!   or `' '`: every tab or space then separates fields); an unquoted
//!   `NULL AS` field is NULL. `ESCAPE` with CSV is
//!   refused, as Redshift does.
//! - `JSON [AS] 'auto'`, `JSON 'auto ignorecase'`, `FORMAT [AS] JSON ...`:
//!   concatenated or newline-separated objects; top-level keys match column
//!   names exactly ('auto'; Redshift's columns are lowercase) or ignoring
//!   case; a missing key or `null` is NULL; numbers and booleans load as their
//!   source text (no float rounding); nested objects/arrays load as their
//!   JSON text. Arrays as records and JSONPaths files (`'s3://...'`) are
//!   refused.
//! - Columns: DataTableColumns, else all the table's columns in order (read
//!   from `pg_attribute` for the table `to_regclass` finds, along the whole
//!   `search_path` as COPY does). Names fold to lowercase as in
//!   Redshift and are always quoted; `schema.table` is allowed.
//! - Per type, as Redshift: an empty or blank field of a non-character column
//!   is NULL. `EMPTYASNULL`, `BLANKSASNULL` (character columns),
//!   `TRIMBLANKS` (varchar/text), `TRUNCATECOLUMNS` (to the declared length
//!   in characters; Redshift counts bytes), `FILLRECORD` (missing trailing
//!   fields are empty: NULL, or `''` for character columns unless
//!   EMPTYASNULL), `IGNOREHEADER n` (any n, text and CSV), `IGNOREBLANKLINES`,
//!   `ACCEPTINVCHARS [AS] ['c']` (each invalid UTF-8 byte becomes `c`, `?`
//!   by default; without it invalid UTF-8 fails the batch).
//! - `GZIP`: a flag on the plan; the caller gunzips before loading.
//! - Accepted and ignored, safely: `TIMEFORMAT`/`DATEFORMAT` `'auto'` or the
//!   default format (PostgreSQL reads ISO itself), `ENCODING UTF8`,
//!   `COMPUPDATE`, `STATUPDATE`, `ROUNDEC` (PostgreSQL rounds numeric input
//!   anyway), `EXPLICIT_IDS`.
//! - `MAXERROR n`: accepted but not honoured past 0. PostgreSQL's COPY
//!   cannot skip rows, so one bad row fails the whole batch and nothing is
//!   loaded (Firehose retries, then writes the batch to its error prefix).
//!
//! Refused, by name: `FIXEDWIDTH`, `AVRO`, `PARQUET`, `ORC`, `SHAPEFILE`,
//! JSONPaths, `LZOP`, `BZIP2`, `ZSTD`, the S3 reading options (`MANIFEST`,
//! `REGION`, `ENCRYPTED`, `CREDENTIALS`, `IAM_ROLE`, ...), `REMOVEQUOTES`,
//! `ACCEPTANYDATE`, `NOLOAD`, other date/time formats, and anything unknown.
//!
//! Differences left: Redshift truncates decimals past a column's scale
//! unless ROUNDEC, PostgreSQL rounds; length limits count characters, not
//! bytes; error texts are PostgreSQL's (SQLSTATEs, not STL_LOAD_ERRORS).

mod auth;
mod client;
mod convert;
mod error;
mod json;
mod plan;
mod scram;
mod sql;
mod url;
mod wire;

pub use auth::{AuthMethod, AuthMethods};
pub use client::{Client, Rows};
pub use convert::{Batch, TableColumn};
pub use error::{PgError, ServerError};
pub use plan::{CopyPlan, MAX_ERROR_COUNT_MAX, SourceFormat, copy_plan};
pub use scram::SCRAM_ITERATIONS_MAX;
pub use sql::{IDENTIFIER_SIZE_MAX, TableName, quote_ident, quote_literal};
pub use url::{Scheme, Target, parse_jdbc_url};
pub use wire::{
    COPY_CHUNK_SIZE_MAX, MESSAGE_SIZE_MAX, PARAMETER_COUNT_MAX, PARAMETERS_SIZE_MAX,
    QUERY_ANSWER_SIZE_MAX,
};
