//! `agent.json`: the Amazon Kinesis Agent's configuration file, read with its
//! keys, defaults, valid ranges and error messages
//! (`config/Configuration.java`, `config/AgentConfiguration.java`,
//! `tailing/FileFlow.java`, `tailing/KinesisFileFlow.java`,
//! `tailing/FirehoseFileFlow.java`). One difference, on purpose: a key the
//! agent does not know is refused with its name (the Java agent ignores it,
//! so a misspelt `maxBufferAgeMilis` silently does nothing). Keys the agent
//! knows but Riffle's agent has no use for (CloudWatch, STS, connection pool
//! tuning, ...) are accepted and listed by [`AgentConfig::ignored`].
//!
//! Pure: reads a string, returns the settings or an error message.

use std::path::PathBuf;

use regex::Regex;

use super::json::{self, Json};
use super::process::Converter;

/// Where the agent keeps its checkpoints unless `checkpointFile` says.
pub const DEFAULT_CHECKPOINT_FILE: &str = "/var/run/aws-kinesis-agent/checkpoints";

/// The agent's top-level keys that Riffle's agent reads.
const TOP_KEYS: &[&str] = &[
    "checkpointFile",
    "kinesis.endpoint",
    "kinesis.region",
    "firehose.endpoint",
    "awsAccessKeyId",
    "awsSecretAccessKey",
    "shutdownTimeoutMillis",
    "maxSendingThreads",
    "maxSendingThreadsPerCore",
    "connectionTimeoutMillis",
    "socketTimeoutMillis",
    "flows",
];

/// The agent's top-level keys that are accepted and have no effect here.
const TOP_KEYS_IGNORED: &[&str] = &[
    "assumeRoleARN",
    "assumeRoleExternalId",
    "checkpointTimeToLiveDays",
    "checkpoints.connectionTimeoutSeconds",
    "checkpoints.queryTimeoutSeconds",
    "cloudwatch.emitMetrics",
    "cloudwatch.endpoint",
    "cloudwatch.metricsBufferTimeMillis",
    "cloudwatch.metricsQueueSize",
    "cloudwatch.namespace",
    "cloudwatch.tagInstance",
    "connectionTTLMillis",
    "log.emitInternalMetrics",
    "log.emitMetrics",
    "log.statusReportingPeriodSeconds",
    "maxConnections",
    "sendingThreadsKeepAliveMillis",
    "sendingThreadsMaxQueueSize",
    "sts.endpoint",
    "useHttpGzip",
    "useTcpKeepAlive",
    "userAgent",
    "userAgentOverride",
    "userDefinedCredentialsProvider.classname",
    "userDefinedCredentialsProvider.location",
];

const FLOW_KEYS: &[&str] = &[
    "filePattern",
    "kinesisStream",
    "deliveryStream",
    "partitionKeyOption",
    "initialPosition",
    "multiLineStartPattern",
    "skipHeaderLines",
    "truncatedRecordTerminator",
    "maxBufferAgeMillis",
    "maxBufferSizeRecords",
    "maxBufferSizeBytes",
    "retryInitialBackoffMillis",
    "retryMaxBackoffMillis",
    "minTimeBetweenFilePollsMillis",
    "fileFooterPattern",
    "dataProcessingOptions",
    "aggregatedRecordSizeBytes",
];

const FLOW_KEYS_IGNORED: &[&str] = &[
    "maxTimeBetweenFileTrackerRefreshMillis",
    "publishQueueCapacity",
    "waitOnFullPublishQueueMillis",
    "waitOnEmptyPublishQueueMillis",
    "waitOnFullRetryQueueMillis",
    "log.emitInternalMetrics",
];

/// Kinesis: 1 MiB a record (the partition key included), 500 records and
/// 5 MiB a PutRecords call (`KinesisConstants.java`).
pub const KINESIS_RECORD_BYTES_MAX: usize = 1024 * 1024;
pub const KINESIS_BATCH_RECORDS_MAX: usize = 500;
pub const KINESIS_BATCH_BYTES_MAX: usize = 5 * 1024 * 1024;
/// Firehose: 1,000 KiB a record, 500 records and 4 MiB a PutRecordBatch call
/// (`FirehoseConstants.java`).
pub const FIREHOSE_RECORD_BYTES_MAX: usize = 1000 * 1024;
pub const FIREHOSE_BATCH_RECORDS_MAX: usize = 500;
pub const FIREHOSE_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The whole configuration.
#[derive(Debug)]
pub struct AgentConfig {
    pub checkpoint_file: PathBuf,
    pub kinesis_endpoint: Option<String>,
    pub kinesis_region: Option<String>,
    pub firehose_endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub shutdown_timeout_ms: u64,
    /// Concurrent requests per flow (the agent's sending thread pool).
    pub sending_threads: usize,
    pub connection_timeout_ms: u64,
    pub socket_timeout_ms: u64,
    pub flows: Vec<FlowConfig>,
    /// Keys present that the agent knows and Riffle's agent does not use.
    pub ignored: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKeyOption {
    Random,
    Deterministic,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Kinesis {
        stream: String,
        partition_key: PartitionKeyOption,
    },
    Firehose {
        delivery_stream: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialPosition {
    StartOfFile,
    EndOfFile,
}

/// One flow: a file pattern and where its records go.
#[derive(Debug)]
pub struct FlowConfig {
    /// `kinesis:<stream>:<pattern>` or `fh:<delivery stream>:<pattern>`, as the agent names flows.
    pub id: String,
    pub directory: PathBuf,
    /// The file-name glob (Java's `glob:` syntax).
    pub file_glob: String,
    pub destination: Destination,
    pub initial_position: InitialPosition,
    /// `multiLineStartPattern`, anchored at the line's start (Java's `lookingAt`).
    pub multi_line_start: Option<Regex>,
    pub skip_header_lines: usize,
    pub truncated_record_terminator: Vec<u8>,
    pub max_buffer_age_ms: u64,
    pub max_buffer_size_records: usize,
    pub max_buffer_size_bytes: usize,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    pub min_time_between_file_polls_ms: u64,
    /// `fileFooterPattern`: a record (trimmed) matching it ends the file.
    pub file_footer: Option<Regex>,
    pub converters: Vec<Converter>,
}

impl FlowConfig {
    /// The largest record the destination takes (bytes; for Kinesis the
    /// partition key counts too).
    pub fn record_bytes_max(&self) -> usize {
        match self.destination {
            Destination::Kinesis { .. } => KINESIS_RECORD_BYTES_MAX,
            Destination::Firehose { .. } => FIREHOSE_RECORD_BYTES_MAX,
        }
    }
}

/// An object's members, read as the agent's `Configuration` reads them.
pub struct Obj<'a> {
    pub members: &'a [(String, Json)],
}

impl<'a> Obj<'a> {
    pub fn of(v: &'a Json, what: &str) -> Result<Obj<'a>, String> {
        match v {
            Json::Obj(members) => Ok(Obj { members }),
            other => Err(format!("{what} must be an object, not {}", other.kind())),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Json> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Refuses a key outside `known` and `ignored`, naming it; gives the
    /// ignored keys present.
    pub fn check_keys(
        &self,
        known: &[&str],
        ignored: &[&str],
        at: &str,
    ) -> Result<Vec<String>, String> {
        let mut skipped = Vec::new();
        for (k, _) in self.members {
            if ignored.contains(&k.as_str()) {
                skipped.push(format!("{at}{k}"));
            } else if !known.contains(&k.as_str()) {
                let mut names: Vec<&str> = known.iter().chain(ignored).copied().collect();
                names.sort_unstable();
                return Err(format!(
                    "Unknown configuration key: {at}{k} (known keys here: {})",
                    names.join(", ")
                ));
            }
        }
        Ok(skipped)
    }

    /// `readString`: a string, or a number or boolean as text; null reads as absent.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v.as_text().map(Some).ok_or_else(|| {
                format!(
                    "Failed to convert value ({}) to desired type (class java.lang.String): {key}",
                    v.kind()
                )
            }),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<String, String> {
        self.string(key)?
            .ok_or_else(|| format!("Required configuration value missing: {key}"))
    }

    /// `readInteger` / `readLong`: a number or a numeric string, in `range`.
    pub fn integer(
        &self,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
        class: &str,
    ) -> Result<i64, String> {
        let Some(text) = self.string(key)? else {
            return Ok(default);
        };
        let value: i64 = text.trim().parse().map_err(|_| {
            format!(
                "Failed to convert value ({text}) to desired type (class java.lang.{class}): {key}"
            )
        })?;
        if value < min || value > max {
            // Guava's Range.closed(min, max).toString().
            return Err(format!(
                "'{key}' value {value} is outside of valid range ([{min}\u{2025}{max}])"
            ));
        }
        Ok(value)
    }

    /// `readEnum`: one of `names`, or the default when absent.
    pub fn enumeration(&self, key: &str, names: &[&str]) -> Result<Option<usize>, String> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        names
            .iter()
            .position(|n| *n == text)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "Value({text}) is not legally accepted by key: {key}. Legal values are {}",
                    names.join(",")
                )
            })
    }

    /// `readList` of strings; absent: `None`.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Arr(items)) => items
                .iter()
                .map(|i| {
                    i.as_text().ok_or_else(|| {
                        format!("Failed to convert list item ({}) to desired type (class java.lang.String): {key}", i.kind())
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(format!("Configuration value is not a list: {key} is {}", v.kind())),
        }
    }
}

/// Compiles a Java pattern for the `regex` crate (most Java patterns mean the
/// same there; look-around and back-references are refused with the reason).
pub fn pattern(key: &str, text: &str, anchored: &str) -> Result<Regex, String> {
    Regex::new(&anchored.replace("{}", text))
        .map_err(|e| format!("{key} {text:?} is not a pattern Riffle's agent can use: {e}"))
}

impl AgentConfig {
    /// Reads `agent.json`'s text.
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let root = json::parse(text)?;
        let top = Obj::of(&root, "agent.json")?;
        let mut ignored = top.check_keys(TOP_KEYS, TOP_KEYS_IGNORED, "")?;
        let flows_json = match top.get("flows") {
            Some(Json::Arr(items)) => items.as_slice(),
            Some(other) => {
                return Err(format!(
                    "Configuration value is not a list: flows is {}",
                    other.kind()
                ));
            }
            None => return Err("Required list missing: flows".into()),
        };
        let mut flows: Vec<FlowConfig> = Vec::new();
        for (i, f) in flows_json.iter().enumerate() {
            let at = format!("flows[{i}].");
            let (flow, skipped) = parse_flow(f, &at).map_err(|e| format!("flows[{i}]: {e}"))?;
            if flows.iter().any(|other| other.id == flow.id) {
                return Err(format!("Duplicate flow: {}", flow.id));
            }
            ignored.extend(skipped);
            flows.push(flow);
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
        Ok(AgentConfig {
            checkpoint_file: PathBuf::from(
                top.string("checkpointFile")?
                    .unwrap_or_else(|| DEFAULT_CHECKPOINT_FILE.into()),
            ),
            kinesis_endpoint: top.string("kinesis.endpoint")?.filter(|s| !s.is_empty()),
            kinesis_region: top.string("kinesis.region")?.filter(|s| !s.is_empty()),
            firehose_endpoint: top.string("firehose.endpoint")?.filter(|s| !s.is_empty()),
            access_key_id: top.string("awsAccessKeyId")?,
            secret_access_key: top.string("awsSecretAccessKey")?,
            shutdown_timeout_ms: top.integer(
                "shutdownTimeoutMillis",
                10_000,
                0,
                i64::MAX,
                "Long",
            )? as u64,
            // The agent's default: max(2, maxSendingThreadsPerCore (12) x cores)
            // (AgentConfiguration.defaultMaxSendingThreads). Sends wait for
            // the server's fsync: it takes this many in flight to keep up.
            sending_threads: {
                let per_core = top.integer("maxSendingThreadsPerCore", 12, 1, 1024, "Integer")?;
                top.integer(
                    "maxSendingThreads",
                    (per_core * cores).clamp(2, 1024),
                    1,
                    1024,
                    "Integer",
                )? as usize
            },
            connection_timeout_ms: top.integer(
                "connectionTimeoutMillis",
                10_000,
                1,
                i64::MAX,
                "Integer",
            )? as u64,
            socket_timeout_ms: top.integer("socketTimeoutMillis", 50_000, 1, i64::MAX, "Integer")?
                as u64,
            flows,
            ignored,
        })
    }
}

fn parse_flow(f: &Json, at: &str) -> Result<(FlowConfig, Vec<String>), String> {
    let o = Obj::of(f, "a flow")?;
    let ignored = o.check_keys(FLOW_KEYS, FLOW_KEYS_IGNORED, at)?;
    let pattern_text = o.required_string("filePattern")?;
    if pattern_text.ends_with('/') {
        return Err("File name component is empty!".into());
    }
    let (directory, file_glob) = match pattern_text.rsplit_once('/') {
        Some((dir, name)) => (if dir.is_empty() { "/" } else { dir }, name),
        None => return Err("Directory component is empty!".into()),
    };
    if directory.contains(['*', '?', '[', '{']) {
        return Err(format!(
            "filePattern {pattern_text}: globs are matched in the file name only, as the agent does (the directory is {directory})"
        ));
    }
    super::files::Glob::new(file_glob)?;
    let source = format!("{directory}/{file_glob}");
    // A flow with both keys is a Firehose flow, as in FileFlowFactory.
    let (destination, id, (record_max, records_max, bytes_max)) =
        if let Some(name) = o.string("deliveryStream")? {
            if o.get("partitionKeyOption").is_some() {
                return Err("partitionKeyOption is for kinesisStream flows".into());
            }
            (
                Destination::Firehose {
                    delivery_stream: name.clone(),
                },
                format!("fh:{name}:{source}"),
                (
                    FIREHOSE_RECORD_BYTES_MAX,
                    FIREHOSE_BATCH_RECORDS_MAX,
                    FIREHOSE_BATCH_BYTES_MAX,
                ),
            )
        } else if let Some(name) = o.string("kinesisStream")? {
            let key = match o.enumeration("partitionKeyOption", &["RANDOM", "DETERMINISTIC"])? {
                Some(1) => PartitionKeyOption::Deterministic,
                _ => PartitionKeyOption::Random,
            };
            (
                Destination::Kinesis {
                    stream: name.clone(),
                    partition_key: key,
                },
                format!("kinesis:{name}:{source}"),
                (
                    KINESIS_RECORD_BYTES_MAX,
                    KINESIS_BATCH_RECORDS_MAX,
                    KINESIS_BATCH_BYTES_MAX,
                ),
            )
        } else {
            return Err(
                "Could not create flow from the given configuration. Could not recognize flow type."
                    .into(),
            );
        };
    if o.integer(
        "aggregatedRecordSizeBytes",
        0,
        0,
        record_max as i64,
        "Integer",
    )? != 0
    {
        return Err("aggregatedRecordSizeBytes (several lines in one Firehose record) is not supported by Riffle's agent; leave it 0".into());
    }
    let initial_position =
        match o.enumeration("initialPosition", &["START_OF_FILE", "END_OF_FILE"])? {
            Some(0) => InitialPosition::StartOfFile,
            _ => InitialPosition::EndOfFile,
        };
    let multi_line_start = match o.string("multiLineStartPattern")? {
        Some(p) if !p.is_empty() => Some(pattern("multiLineStartPattern", &p, r"\A(?:{})")?),
        _ => None,
    };
    let file_footer = match o.string("fileFooterPattern")? {
        Some(p) if !p.is_empty() => Some(pattern("fileFooterPattern", &p, r"(?m)\A(?:{})\z")?),
        _ => None,
    };
    let terminator = o
        .string("truncatedRecordTerminator")?
        .unwrap_or_else(|| "\n".into());
    if terminator.len() >= record_max {
        return Err("Record terminator not specified or exceeds the maximum record size".into());
    }
    let converters = match o.get("dataProcessingOptions") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Arr(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Converter::from_config(item, &format!("{at}dataProcessingOptions[{i}]."))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "Configuration value is not a list: dataProcessingOptions is {}",
                other.kind()
            ));
        }
    };
    let flow = FlowConfig {
        id,
        directory: PathBuf::from(directory),
        file_glob: file_glob.to_string(),
        destination,
        initial_position,
        multi_line_start,
        skip_header_lines: o.integer("skipHeaderLines", 0, 0, i32::MAX as i64, "Integer")? as usize,
        truncated_record_terminator: terminator.into_bytes(),
        max_buffer_age_ms: o.integer("maxBufferAgeMillis", 60_000, 1_000, 900_000, "Long")? as u64,
        max_buffer_size_records: o.integer(
            "maxBufferSizeRecords",
            records_max as i64,
            1,
            records_max as i64,
            "Integer",
        )? as usize,
        max_buffer_size_bytes: o.integer(
            "maxBufferSizeBytes",
            bytes_max as i64,
            1,
            bytes_max as i64,
            "Integer",
        )? as usize,
        retry_initial_backoff_ms: o.integer(
            "retryInitialBackoffMillis",
            100,
            0,
            i64::MAX,
            "Long",
        )? as u64,
        retry_max_backoff_ms: o.integer("retryMaxBackoffMillis", 10_000, 0, i64::MAX, "Long")?
            as u64,
        min_time_between_file_polls_ms: o.integer(
            "minTimeBetweenFilePollsMillis",
            100,
            0,
            i64::MAX,
            "Long",
        )? as u64,
        file_footer,
        converters,
    };
    Ok((flow, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(extra: &str) -> String {
        format!(
            r#"{{"checkpointFile": "/tmp/cp", "flows": [{{"filePattern": "/var/log/app.log*", "kinesisStream": "s"{extra}}}]}}"#
        )
    }

    fn error(text: &str) -> String {
        AgentConfig::parse(text).unwrap_err()
    }

    #[test]
    fn defaults_are_the_agents() {
        let c = AgentConfig::parse(&flow("")).unwrap();
        assert_eq!(c.checkpoint_file, PathBuf::from("/tmp/cp"));
        assert_eq!(c.shutdown_timeout_ms, 10_000);
        let f = &c.flows[0];
        assert_eq!(f.id, "kinesis:s:/var/log/app.log*");
        assert_eq!(f.directory, PathBuf::from("/var/log"));
        assert_eq!(f.file_glob, "app.log*");
        assert_eq!(
            f.destination,
            Destination::Kinesis {
                stream: "s".into(),
                partition_key: PartitionKeyOption::Random
            }
        );
        assert_eq!(f.initial_position, InitialPosition::EndOfFile);
        assert_eq!(f.max_buffer_age_ms, 60_000);
        assert_eq!(f.max_buffer_size_records, 500);
        assert_eq!(f.max_buffer_size_bytes, 5 * 1024 * 1024);
        assert_eq!(f.truncated_record_terminator, b"\n");
        assert_eq!(f.skip_header_lines, 0);
        assert!(f.multi_line_start.is_none() && f.converters.is_empty());
        let c = AgentConfig::parse(
            r#"{"flows": [{"filePattern": "/l/a.log", "deliveryStream": "d", "maxBufferSizeBytes": "1000"}]}"#,
        )
        .unwrap();
        assert_eq!(c.checkpoint_file, PathBuf::from(DEFAULT_CHECKPOINT_FILE));
        assert_eq!(c.flows[0].id, "fh:d:/l/a.log");
        assert_eq!(c.flows[0].max_buffer_size_records, 500);
        assert_eq!(c.flows[0].max_buffer_size_bytes, 1000);
        assert_eq!(c.flows[0].record_bytes_max(), 1000 * 1024);
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, expected) in [
            (
                r#"{"flows": [], "maxBufferAgeMilis": 5}"#.to_string(),
                "Unknown configuration key: maxBufferAgeMilis (known keys here: ",
            ),
            (
                flow(r#", "partitionKey": "RANDOM""#),
                "flows[0]: Unknown configuration key: flows[0].partitionKey",
            ),
            (
                flow(r#", "partitionKeyOption": "HASH""#),
                "flows[0]: Value(HASH) is not legally accepted by key: partitionKeyOption. Legal values are RANDOM,DETERMINISTIC",
            ),
            (
                flow(r#", "maxBufferAgeMillis": 10"#),
                "flows[0]: 'maxBufferAgeMillis' value 10 is outside of valid range ([1000\u{2025}900000])",
            ),
            (
                flow(r#", "maxBufferSizeRecords": 1.5"#),
                "flows[0]: Failed to convert value (1.5) to desired type (class java.lang.Integer): maxBufferSizeRecords",
            ),
            (
                r#"{"flows": [{"filePattern": "/l/a"}]}"#.into(),
                "flows[0]: Could not create flow from the given configuration. Could not recognize flow type.",
            ),
            (
                r#"{"flows": [{"kinesisStream": "s"}]}"#.into(),
                "flows[0]: Required configuration value missing: filePattern",
            ),
            (
                r#"{"flows": [{"kinesisStream": "s", "filePattern": "a.log"}]}"#.into(),
                "flows[0]: Directory component is empty!",
            ),
            (
                flow(
                    r#", "dataProcessingOptions": [{"optionName": "CSVTOJSON", "customFieldNames": ["a"], "delimeter": ";"}]"#,
                ),
                "flows[0]: Unknown configuration key: flows[0].dataProcessingOptions[0].delimeter",
            ),
            (
                flow(r#", "dataProcessingOptions": [{"optionName": "TOXML"}]"#),
                "flows[0]: Value(TOXML) is not legally accepted by key: optionName. Legal values are ADDMETADATA,ADDEC2METADATA,SINGLELINE,CSVTOJSON,LOGTOJSON,ADDBRACKETS,USINGPLUGGIN",
            ),
            (
                r#"{"flows": {}}"#.into(),
                "Configuration value is not a list: flows is an object",
            ),
            (r#"{}"#.into(), "Required list missing: flows"),
            (
                r#"{"flows": [], }"#.into(),
                "expected a quoted key at line 1, column 15",
            ),
        ] {
            let e = error(&text);
            assert!(
                e.starts_with(expected),
                "{text}\n  gave {e}\n  not  {expected}"
            );
        }
        let dup = r#"{"flows": [{"filePattern": "/l/a", "kinesisStream": "s"}, {"filePattern": "/l/a", "kinesisStream": "s"}]}"#;
        assert_eq!(error(dup), "Duplicate flow: kinesis:s:/l/a");
    }

    #[test]
    fn known_keys_without_effect_are_listed() {
        let c = AgentConfig::parse(
            r#"{"cloudwatch.emitMetrics": false, "flows": [{"filePattern": "/l/a", "kinesisStream": "s", "publishQueueCapacity": 5}]}"#,
        )
        .unwrap();
        assert_eq!(
            c.ignored,
            ["cloudwatch.emitMetrics", "flows[0].publishQueueCapacity"]
        );
    }
}
