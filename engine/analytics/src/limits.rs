//! The bounds an application lives within, each with where it comes from
//! (docs/analytics-design.md §1.5).

/// One streaming source per application (AWS developer guide,
/// how-it-works-input: "a single streaming source").
pub const INPUTS_MAX: usize = 1;
/// "up to three destinations" (CreateApplication's documentation).
pub const OUTPUTS_MAX: usize = 3;
/// One reference data source per application (AWS's published limits).
pub const REFERENCE_SOURCES_MAX: usize = 1;
/// User tags per application (TagResource's documentation).
pub const TAGS_USER_MAX: usize = 50;
/// Applications per server unless the configuration says otherwise
/// (AWS's default per region).
pub const APPLICATIONS_MAX: usize = 50;
/// ListApplications answers this many when `Limit` is absent (**unverified**:
/// AWS's default is not documented; 50 is the model's maximum).
pub const LIST_LIMIT_DEFAULT: usize = 50;
/// The name of the in-application stream errors go to (developer guide,
/// error-handling).
pub const ERROR_STREAM: &str = "error_stream";

/// A sliding window's RANGE spans at most this (ms): its rows are held in
/// memory (AWS recommends an hour or less; **Riffle**'s bound).
pub const SLIDING_RANGE_MS_MAX: i64 = 24 * 3_600_000;

/// `ROWS n PRECEDING` takes n up to this (**Riffle**: the rows are held in
/// memory per partition).
pub const SLIDING_ROWS_MAX: u64 = 100_000;

/// A streaming ORDER BY's leading ROWTIME step is at most this (ms): a
/// step's rows are held until it ends (**Riffle**).
pub const SORT_BUCKET_MS_MAX: i64 = 3_600_000;

/// How far back a resumed run reads for a `ROWS n PRECEDING` frame, whose
/// rows have no bound in time (progress.rs): 5 minutes (**Riffle**). A
/// partition's rows older than that are not in its frame after a restart.
pub const ROWS_REPLAY_MS: i64 = 300_000;

/// How often a running application takes a checkpoint (**Riffle**).
pub const CHECKPOINT_INTERVAL_MS: i64 = 1000;

/// Records of one output's destination read at most when a resumed run
/// looks for the rows written after its checkpoint (**Riffle**): past it,
/// rows may be written twice (logged).
pub const RESUME_SCAN_RECORDS_MAX: usize = 2_000_000;
