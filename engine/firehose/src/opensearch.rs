//! The OpenSearch destinations, the pure half: `AmazonopensearchserviceDestinationConfiguration`,
//! `ElasticsearchDestinationConfiguration` and
//! `AmazonOpenSearchServerlessDestinationConfiguration` with AWS's defaults,
//! their descriptions, index names with rotation, document ids, the `_bulk`
//! request and answer, and the failed-document lines AWS writes. The
//! requests themselves are sent by `delivery/search.rs`.
//!
//! Riffle runs beside a self-hosted cluster: the URL is `ClusterEndpoint`
//! (`CollectionEndpoint` for Serverless); a `DomainARN` cannot be resolved and
//! is refused. `VpcConfiguration` is refused too (there is no VPC to join).
//!
//! Request: `POST <endpoint>/_bulk?filter_path=<BULK_FILTER_PATH>` (OpenSearch
//! and Elasticsearch both take `filter_path`: each item of the answer keeps
//! only its status and its error's type and reason, not its index, id,
//! shards or the error's causes, so the answer to `BULK_DOCS_MAX` documents
//! fits the 8 MiB an answer is read to), `Content-Type: application/x-ndjson`, per
//! record an action line `{"index":{"_index":..,"_id":..}}` (`_type` only when
//! `TypeName` is not empty: Elasticsearch before 7) and the record itself,
//! which must be one JSON object (its line breaks, insignificant whitespace
//! in valid JSON, are sent as spaces). A record that is not a JSON object is a
//! failed document at once, never sent (it would break the NDJSON body).
//!
//! Index rotation appends the record's UTC arrival time: `-yyyy-MM-dd-HH`,
//! `-yyyy-MM-dd`, `-YYYY-wWW`, `-yyyy-MM`. Weeks follow AWS's stated US
//! convention: weeks start on Sunday and week 1 is the week that holds the
//! year's first Saturday (so the week of 1 January), numbered in its
//! week-based year (27-31 December 2015 is `2016-w01`). AWS's own example table
//! (`2016-02-25` → `w08`) agrees with ISO weeks instead, not with its rule;
//! the rule is followed here (`w09`).
//!
//! Document ids (`FIREHOSE_DEFAULT`): AWS documents only that they are stable
//! across attempts. Riffle's are `<20 hex digits of SHA-256(object id)>-<record
//! index>`: the object id names the delivery stream incarnation, shard and
//! first offset, so a retry, and a rebuild after a crash, index the same
//! documents again instead of adding copies. `NO_DOCUMENT_ID` sends none.
//!
//! Answers: 200 with `errors:false` indexes everything; with `errors:true`
//! each item's `status` decides: 2xx indexed, 429 and 5xx retried, other 4xx
//! failed (retrying cannot help a mapping error). Any other answer (429, 5xx,
//! 4xx, no answer) fails the whole request, retried until `RetryOptions` runs
//! out. Failed documents go to the backup bucket under the
//! `AmazonOpenSearchService-failed` error output type (AWS's name for all three
//! destinations) as `{"attemptsMade","arrivalTimestamp","errorCode",
//! "errorMessage","attemptEndingTimestamp","esDocumentId","esIndexName",
//! "esTypeName","rawData"}` (Serverless: `osDocumentId`, `osIndexName`), the
//! error code being the HTTP status (`"400"`), or `OpenSearch.ConnectionFailed`
//! when no answer came. Failure messages are cut to
//! [`FAILURE_MESSAGE_BYTES_MAX`] bytes by [`capped`], for both destinations.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_protocol::Error;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::destination::S3Destination;
use crate::members::{backup, buffering, retry_ms, with_backup_defaults};
use crate::time::civil_of_ms;

/// AWS's defaults: 5 MiB or 300 s, retried for 300 s.
pub const SIZE_MIB_DEFAULT: u64 = 5;
pub const INTERVAL_S_DEFAULT: u64 = 300;
pub const RETRY_S_DEFAULT: u64 = 300;
/// Documents per `_bulk` request: each answers with an item, which
/// `BULK_FILTER_PATH` keeps to its status and its error's type and reason
/// (~30 bytes indexed, ~150 refused), and answers are read up to
/// `http_client::ANSWER_BYTES_MAX` (8 MiB): room for items of 1.6 KiB each.
pub const BULK_DOCS_MAX: usize = 5_000;
/// The item bytes `BULK_DOCS_MAX` leaves room for: more than a filtered item
/// with an error's reason takes.
const BULK_ITEM_BYTES_ROOM: usize = 1_600;
const _: () = assert!(BULK_DOCS_MAX * BULK_ITEM_BYTES_ROOM < crate::http_client::ANSWER_BYTES_MAX);
/// The members of a `_bulk` answer that are read: the rest (each item's
/// index, id, version, shards, an error's cause and stack) is left out by
/// the cluster.
pub const BULK_FILTER_PATH: &str = "errors,items.*.status,items.*.error.type,items.*.error.reason";
/// Body bytes per `_bulk` request: under OpenSearch's default
/// `http.max_content_length` (100 MB) even for a 100 MB buffer's records.
pub const BULK_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The error output type of failed documents (`!{firehose:error-output-type}`).
pub const ERROR_OUTPUT_TYPE: &str = "AmazonOpenSearchService-failed";
/// The error code of a request that got no answer.
pub const CONNECTION_FAILED: &str = "OpenSearch.ConnectionFailed";
/// Bytes of a failure message, at most: a message is reported by
/// DescribeDeliveryStream, logged, and copied into the error line of every
/// record it failed (thousands per request), so an answer's body (read up
/// to 8 MiB) is never carried whole.
pub const FAILURE_MESSAGE_BYTES_MAX: usize = 512;
/// OpenSearch's longest index name, in bytes.
const INDEX_NAME_BYTES_MAX: usize = 255;

/// Which of AWS's three OpenSearch destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenSearch,
    Elasticsearch,
    Serverless,
}

impl Flavor {
    /// The stored destination kind (the configuration member without
    /// `DestinationConfiguration`).
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::OpenSearch => "Amazonopensearchservice",
            Flavor::Elasticsearch => "Elasticsearch",
            Flavor::Serverless => "AmazonOpenSearchServerless",
        }
    }

    pub fn of_kind(kind: &str) -> Option<Flavor> {
        [
            Flavor::OpenSearch,
            Flavor::Elasticsearch,
            Flavor::Serverless,
        ]
        .into_iter()
        .find(|f| f.kind() == kind)
    }

    /// The `DestinationDescription` member.
    pub fn description_member(self) -> String {
        format!("{}DestinationDescription", self.kind())
    }

    fn endpoint_member(self) -> &'static str {
        match self {
            Flavor::Serverless => "CollectionEndpoint",
            _ => "ClusterEndpoint",
        }
    }
}

/// `IndexRotationPeriod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    NoRotation,
    OneHour,
    OneDay,
    OneWeek,
    OneMonth,
}

impl Rotation {
    fn of_aws_name(name: &str) -> Option<Rotation> {
        Some(match name {
            "NoRotation" => Rotation::NoRotation,
            "OneHour" => Rotation::OneHour,
            "OneDay" => Rotation::OneDay,
            "OneWeek" => Rotation::OneWeek,
            "OneMonth" => Rotation::OneMonth,
            _ => return None,
        })
    }
}

/// An OpenSearch destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchDestination {
    pub flavor: Flavor,
    /// The cluster's (collection's) URL, without a trailing `/`.
    pub endpoint: String,
    pub index: String,
    /// `TypeName`, when not empty.
    pub type_name: Option<String>,
    pub rotation: Rotation,
    /// `FIREHOSE_DEFAULT`: documents carry Riffle's stable ids.
    pub document_ids: bool,
    pub size_bytes: u64,
    pub interval_ms: u64,
    pub retry_ms: u64,
    /// `AllDocuments`: every record also goes to the backup bucket.
    pub backup_all: bool,
    pub backup: S3Destination,
}

impl SearchDestination {
    /// The `_bulk` URL, with the `filter_path` that keeps the answer small.
    pub fn bulk_url(&self) -> String {
        format!("{}/_bulk?filter_path={BULK_FILTER_PATH}", self.endpoint)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// The stored configuration: as given, with AWS's defaults filled in.
pub fn with_defaults(flavor: Flavor, mut config: Map<String, Value>) -> Map<String, Value> {
    config.entry("BufferingHints").or_insert_with(
        || json!({"SizeInMBs": SIZE_MIB_DEFAULT, "IntervalInSeconds": INTERVAL_S_DEFAULT}),
    );
    config
        .entry("RetryOptions")
        .or_insert_with(|| json!({"DurationInSeconds": RETRY_S_DEFAULT}));
    config
        .entry("S3BackupMode")
        .or_insert_with(|| json!("FailedDocumentsOnly"));
    config
        .entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    if flavor != Flavor::Serverless {
        config
            .entry("IndexRotationPeriod")
            .or_insert_with(|| json!("OneDay"));
        config
            .entry("DocumentIdOptions")
            .or_insert_with(|| json!({"DefaultDocumentIdFormat": "FIREHOSE_DEFAULT"}));
    }
    with_backup_defaults(config)
}

/// Why OpenSearch would refuse `name` as an index name, if it would.
fn index_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return Some("must be lowercase");
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '-', '_' or '+'");
    }
    if name == "." || name == ".." {
        return Some("must not be '.' or '..'");
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        return Some("must not contain \\ / * ? \" < > | space , # or :");
    }
    None
}

/// Reads (and so checks) a stored OpenSearch destination.
pub fn of_config(flavor: Flavor, config: &Map<String, Value>) -> Result<SearchDestination, Error> {
    let member = flavor.endpoint_member();
    let endpoint = config.get(member).and_then(Value::as_str);
    if flavor != Flavor::Serverless && config.contains_key("DomainARN") {
        return Err(invalid(match endpoint {
            Some(_) => "Specify either ClusterEndpoint or DomainARN, not both.",
            None => {
                "Riffle delivers to a self-hosted cluster and cannot resolve a DomainARN: give ClusterEndpoint (the cluster's https:// URL) instead."
            }
        }));
    }
    let endpoint = endpoint.ok_or_else(|| {
        invalid(format!(
            "{member} is required: the URL of the {} Riffle delivers to",
            if flavor == Flavor::Serverless {
                "collection"
            } else {
                "cluster"
            }
        ))
    })?;
    crate::http_client::HttpUrl::parse(endpoint).map_err(|e| invalid(format!("{member}: {e}")))?;
    if endpoint.contains(['?', '#']) {
        return Err(invalid(format!(
            "{member} {endpoint} must not have a query or fragment: Riffle appends /_bulk to it"
        )));
    }
    if config.contains_key("VpcConfiguration") {
        return Err(invalid(format!(
            "Riffle does not join VPCs: remove VpcConfiguration and give a {member} Riffle can reach."
        )));
    }
    let index = config
        .get("IndexName")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("IndexName is required"))?;
    if let Some(problem) = index_name_problem(index) {
        return Err(invalid(format!(
            "IndexName {index:?} {problem} (OpenSearch's index name rules)"
        )));
    }
    let rotation = match config.get("IndexRotationPeriod").and_then(Value::as_str) {
        None => Rotation::NoRotation,
        Some(name) => Rotation::of_aws_name(name).ok_or_else(|| {
            invalid(format!(
                "IndexRotationPeriod {name} is not one of NoRotation, OneHour, OneDay, OneWeek, OneMonth."
            ))
        })?,
    };
    let type_name = match config.get("TypeName").and_then(Value::as_str) {
        Some(t) if flavor == Flavor::Serverless => {
            return Err(invalid(format!(
                "TypeName {t} is not a member of AmazonOpenSearchServerlessDestinationConfiguration."
            )));
        }
        None | Some("") => None,
        Some(t) => Some(t.to_string()),
    };
    let document_ids = match config
        .get("DocumentIdOptions")
        .and_then(|d| d.get("DefaultDocumentIdFormat"))
        .and_then(Value::as_str)
    {
        None | Some("FIREHOSE_DEFAULT") => true,
        Some("NO_DOCUMENT_ID") => false,
        Some(other) => {
            return Err(invalid(format!(
                "DefaultDocumentIdFormat {other} is not FIREHOSE_DEFAULT or NO_DOCUMENT_ID."
            )));
        }
    };
    let backup_all = match config.get("S3BackupMode").and_then(Value::as_str) {
        None | Some("FailedDocumentsOnly") => false,
        Some("AllDocuments") => true,
        Some(other) => {
            return Err(invalid(format!(
                "S3BackupMode {other} is not FailedDocumentsOnly or AllDocuments."
            )));
        }
    };
    let (size_bytes, interval_ms) = buffering(config, SIZE_MIB_DEFAULT, INTERVAL_S_DEFAULT)?;
    // Longest name a rotation gives: "-yyyy-MM-dd-HH" (14 bytes).
    if index.len() + 14 > INDEX_NAME_BYTES_MAX {
        return Err(invalid(format!(
            "IndexName {index:?} is too long: with its rotation suffix it must fit OpenSearch's {INDEX_NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(SearchDestination {
        flavor,
        endpoint: endpoint.trim_end_matches('/').to_string(),
        index: index.to_string(),
        type_name,
        rotation,
        document_ids,
        size_bytes,
        interval_ms,
        retry_ms: retry_ms(config, RETRY_S_DEFAULT),
        backup_all,
        backup: backup(config)?,
    })
}

/// The `...DestinationDescription`: the configuration with the backup as an
/// `S3DestinationDescription`.
pub fn describe(config: &Map<String, Value>) -> Value {
    let mut out = config.clone();
    if let Some(s3) = out.remove("S3Configuration") {
        out.insert("S3DestinationDescription".into(), s3);
    }
    Value::Object(out)
}

/// The week of `ms` by AWS's US convention (weeks start on Sunday, week 1 holds
/// 1 January): (week-based year, week 1..=53).
pub fn us_week(ms: i64) -> (i64, u32) {
    let days = ms.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday (Sunday = 0).
    let sunday = days - (days + 4).rem_euclid(7);
    // The week belongs to the year of its Saturday (a week holding 1 January
    // holds that year's first Saturday).
    let saturday = civil_of_ms((sunday + 6) * 86_400_000);
    let week = (saturday.day_of_year - 1) / 7 + 1;
    (saturday.year, week)
}

/// The index a record that arrived at `arrival_ms` goes to.
pub fn index_name(base: &str, rotation: Rotation, arrival_ms: i64) -> String {
    let t = civil_of_ms(arrival_ms);
    match rotation {
        Rotation::NoRotation => base.to_string(),
        Rotation::OneHour => format!(
            "{base}-{:04}-{:02}-{:02}-{:02}",
            t.year, t.month, t.day, t.hour
        ),
        Rotation::OneDay => format!("{base}-{:04}-{:02}-{:02}", t.year, t.month, t.day),
        Rotation::OneWeek => {
            let (year, week) = us_week(arrival_ms);
            format!("{base}-{year:04}-w{week:02}")
        }
        Rotation::OneMonth => format!("{base}-{:04}-{:02}", t.year, t.month),
    }
}

/// The `FIREHOSE_DEFAULT` id of record `index` of the object `object_id` names.
pub fn document_id(object_id: &str, index: usize) -> String {
    let digest = Sha256::digest(object_id.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{index}")
}

/// A record as the document source of one bulk line: a JSON object, its
/// line breaks (whitespace between tokens in valid JSON) sent as spaces.
pub fn document(record: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let text = std::str::from_utf8(record)
        .map_err(|e| format!("The record is not UTF-8 ({e}); it was not sent."))?;
    // (A raw line break inside a string is invalid JSON: every one left is
    // whitespace between tokens.)
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| format!("The record is not valid JSON ({e}); it was not sent."))?;
    if record.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("The record is JSON but not a JSON object; it was not sent.".into());
    }
    if record.iter().any(|&b| b == b'\n' || b == b'\r') {
        let flat = record
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        return Ok(Cow::Owned(flat));
    }
    Ok(Cow::Borrowed(record))
}

/// One document of a bulk request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc<'a> {
    pub index: String,
    pub id: Option<String>,
    pub source: Cow<'a, [u8]>,
}

/// The action line of `doc` (with its newline).
fn action_line(doc: &Doc<'_>, type_name: Option<&str>) -> Vec<u8> {
    let mut meta = Map::new();
    meta.insert("_index".into(), json!(doc.index));
    if let Some(t) = type_name {
        meta.insert("_type".into(), json!(t));
    }
    if let Some(id) = &doc.id {
        meta.insert("_id".into(), json!(id));
    }
    let mut line = serde_json::to_vec(&json!({ "index": meta })).expect("JSON serializes");
    line.push(b'\n');
    line
}

/// The bytes `doc` takes in a bulk body.
pub fn doc_bytes(doc: &Doc<'_>, type_name: Option<&str>) -> usize {
    action_line(doc, type_name).len() + doc.source.len() + 1
}

/// The NDJSON body of a `_bulk` request (ends with a newline, as `_bulk` requires).
pub fn bulk_body<'a>(docs: impl Iterator<Item = &'a Doc<'a>>, type_name: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for doc in docs {
        body.extend(action_line(doc, type_name));
        body.extend_from_slice(&doc.source);
        body.push(b'\n');
    }
    body
}

/// Consecutive ranges of items of `sizes` bytes, each of at most `count_max`
/// items and `bytes_max` bytes (an item alone when it is larger).
pub(crate) fn ranges(sizes: &[usize], count_max: usize, bytes_max: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == count_max || bytes + size > bytes_max) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// What became of one document of a bulk request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Indexed,
    /// 429 or 5xx: worth another attempt.
    Retry {
        code: String,
        message: String,
    },
    /// Any other failure: final.
    Failed {
        code: String,
        message: String,
    },
}

/// A whole request that failed (retried until `RetryOptions` runs out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFailed {
    pub code: String,
    pub message: String,
}

/// `message` cut to [`FAILURE_MESSAGE_BYTES_MAX`] bytes at a character
/// boundary, ending with `...` when cut. Every failure message of the search
/// destinations (OpenSearch's and Splunk's, made from an answer or from a
/// request that got none) is made through here.
pub fn capped(mut message: String) -> String {
    if message.len() <= FAILURE_MESSAGE_BYTES_MAX {
        return message;
    }
    let mut end = FAILURE_MESSAGE_BYTES_MAX - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str("...");
    message
}

/// The start of an answer's body as text, for a failure message (which
/// [`capped`] cuts again): never the whole of a large body.
pub fn answer_text(body: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&body[..body.len().min(FAILURE_MESSAGE_BYTES_MAX)])
}

/// Reads the answer to a bulk request of `count` documents: what became of
/// each, in order.
pub fn read_bulk_answer(
    status: u16,
    body: &[u8],
    count: usize,
) -> Result<Vec<Item>, RequestFailed> {
    if !(200..300).contains(&status) {
        return Err(RequestFailed {
            code: status.to_string(),
            message: capped(format!(
                "The cluster answered {status}: {}",
                answer_text(body)
            )),
        });
    }
    let malformed = |why: &str| RequestFailed {
        code: status.to_string(),
        message: capped(format!(
            "The cluster's bulk answer {why}: {}",
            answer_text(body)
        )),
    };
    let answer: Value = serde_json::from_slice(body).map_err(|_| malformed("is not JSON"))?;
    if answer.get("errors").and_then(Value::as_bool) == Some(false) {
        return Ok(vec![Item::Indexed; count]);
    }
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("has no items"))?;
    if items.len() != count {
        return Err(malformed(&format!(
            "has {} items for {count} documents",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .ok_or_else(|| malformed("has an item that is not an action"))?;
            let status = result
                .get("status")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed("has an item without a status"))?;
            if (200..300).contains(&status) {
                return Ok(Item::Indexed);
            }
            // `type: reason`, the type first so a cut leaves it whole.
            let error = result.get("error");
            let text = |member: &str| error.and_then(|e| e.get(member)).and_then(Value::as_str);
            let message = capped(match (text("type"), text("reason"), error) {
                (Some(kind), Some(reason), _) => format!("{kind}: {reason}"),
                (Some(kind), None, _) => kind.to_string(),
                (None, _, Some(e)) => e.to_string(),
                (None, _, None) => format!("status {status}"),
            });
            let code = status.to_string();
            Ok(if status == 429 || status >= 500 {
                Item::Retry { code, message }
            } else {
                Item::Failed { code, message }
            })
        })
        .collect()
}

/// What a failed-document line says of its document.
pub struct FailedDoc<'a> {
    pub attempts: u32,
    pub arrival_ms: i64,
    pub code: &'a str,
    pub message: &'a str,
    pub ended_ms: i64,
    pub id: Option<&'a str>,
    pub index: &'a str,
    pub raw: &'a [u8],
}

/// One line of an `AmazonOpenSearchService-failed` error object, as AWS writes it.
pub fn error_record(flavor: Flavor, type_name: Option<&str>, f: &FailedDoc<'_>) -> Vec<u8> {
    let mut line = json!({
        "attemptsMade": f.attempts,
        "arrivalTimestamp": f.arrival_ms,
        "errorCode": f.code,
        "errorMessage": f.message,
        "attemptEndingTimestamp": f.ended_ms,
    });
    if flavor == Flavor::Serverless {
        line["osDocumentId"] = json!(f.id);
        line["osIndexName"] = json!(f.index);
    } else {
        line["esDocumentId"] = json!(f.id);
        line["esIndexName"] = json!(f.index);
        line["esTypeName"] = json!(type_name.unwrap_or(""));
    }
    line["rawData"] = json!(BASE64.encode(f.raw));
    let mut bytes = serde_json::to_vec(&line).expect("JSON serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
#[path = "opensearch_tests.rs"]
mod tests;
