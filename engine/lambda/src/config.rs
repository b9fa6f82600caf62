//! A mapping's configuration: the members of CreateEventSourceMapping and
//! UpdateEventSourceMapping that apply to a Kinesis source, their defaults
//! (AWS's, as recorded for a Kinesis create), the checks AWS makes beyond
//! its model (docs/lambda-design.md §1, in that order), and the members
//! echoed in an `EventSourceMappingConfiguration`. Pure: no clock, no I/O;
//! stream existence and function resolution are the caller's.

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::filter::Filters;

/// AWS's default quota of filters per mapping.
pub const FILTERS_MAX: usize = 5;

/// Members AWS has for other kinds of event sources (Kafka, SQS, MQ,
/// DocumentDB): refused for a Kinesis source.
const NOT_FOR_KINESIS: [&str; 10] = [
    "Topics",
    "Queues",
    "SourceAccessConfigurations",
    "SelfManagedEventSource",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig",
    "ScalingConfig",
    "ProvisionedPollerConfig",
    "LoggingConfig",
];

/// Where reading starts when a mapping is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
}

impl StartingPosition {
    pub fn aws_name(&self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
            StartingPosition::AtTimestamp(_) => "AT_TIMESTAMP",
        }
    }
}

/// Every member of a Kinesis mapping, defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// As the caller gave it (a name, an ARN or a URL).
    pub function_name: String,
    pub batch_size: u32,
    pub batching_window_s: u32,
    pub parallelization_factor: u32,
    pub starting_position: StartingPosition,
    /// `DestinationConfig.OnFailure.Destination`: a stream ARN of this server.
    pub on_failure: Option<String>,
    /// -1: records never expire.
    pub maximum_record_age_s: i64,
    pub bisect_on_error: bool,
    /// -1: retried until the records expire.
    pub maximum_retry_attempts: i64,
    pub tumbling_window_s: u32,
    pub report_item_failures: bool,
    /// FilterCriteria's patterns (JSON texts), compiled by [`Config::filters`].
    pub filters: Option<Vec<String>>,
    pub kms_key_arn: Option<String>,
    /// `MetricsConfig.Metrics`, echoed.
    pub metrics: Option<Vec<String>>,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::client("InvalidParameterValueException", message)
}

impl Config {
    /// The configuration CreateEventSourceMapping's `input` asks for, checked
    /// (rules 1, 5 to 10, 13 to 16 of the design; the model's checks ran
    /// before). `now_ms` bounds `StartingPositionTimestamp`.
    pub fn of_create(input: &Input<'_>, now_ms: i64) -> Result<Config, Refusal> {
        refuse_other_sources(input)?;
        let function_name = input.required_str("FunctionName")?.to_string();
        let starting_position = match input.str("StartingPosition")? {
            None => {
                return Err(invalid(
                    "1 validation error detected: Value null at 'startingPosition' failed to \
                     satisfy constraint: Member must not be null.",
                ));
            }
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") => StartingPosition::Latest,
            Some("AT_TIMESTAMP") => match input.timestamp_ms("StartingPositionTimestamp")? {
                None => return Err(invalid("Need to specify a timestamp")),
                Some(t) if t > now_ms => {
                    return Err(invalid(
                        "StartingPositionTimestamp must not be in the future",
                    ));
                }
                Some(t) => StartingPosition::AtTimestamp(t),
            },
            // The model's enum check words this one.
            Some(other) => {
                return Err(Refusal::validation(format!(
                    "1 validation error detected: Value '{other}' at 'startingPosition' failed \
                     to satisfy constraint: Member must satisfy enum value set: [LATEST, \
                     AT_TIMESTAMP, TRIM_HORIZON]"
                )));
            }
        };
        if !matches!(starting_position, StartingPosition::AtTimestamp(_))
            && input.get("StartingPositionTimestamp").is_some()
        {
            return Err(invalid(
                "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP",
            ));
        }
        let mut config = Config {
            function_name,
            batch_size: 100,
            batching_window_s: 0,
            parallelization_factor: 1,
            starting_position,
            on_failure: None,
            maximum_record_age_s: -1,
            bisect_on_error: false,
            maximum_retry_attempts: -1,
            tumbling_window_s: 0,
            report_item_failures: false,
            filters: None,
            kms_key_arn: None,
            metrics: None,
        };
        config.merge(input)?;
        Ok(config)
    }

    /// This configuration with UpdateEventSourceMapping's `input` applied
    /// (members not given keep their values), checked again as a whole.
    pub fn updated(&self, input: &Input<'_>) -> Result<Config, Refusal> {
        refuse_other_sources(input)?;
        let mut config = self.clone();
        if let Some(f) = input.str("FunctionName")? {
            config.function_name = f.to_string();
        }
        config.merge(input)?;
        Ok(config)
    }

    /// Applies the members both operations share, then checks the whole.
    fn merge(&mut self, input: &Input<'_>) -> Result<(), Refusal> {
        let uint = |key: &str| -> Result<Option<u32>, Refusal> {
            // The model's ranges were checked: these are small and positive.
            Ok(input.int(key)?.map(|v| v.clamp(0, u32::MAX as i64) as u32))
        };
        if let Some(v) = uint("BatchSize")? {
            self.batch_size = v;
        }
        if let Some(v) = uint("MaximumBatchingWindowInSeconds")? {
            self.batching_window_s = v;
        }
        if let Some(v) = uint("ParallelizationFactor")? {
            self.parallelization_factor = v;
        }
        if let Some(v) = uint("TumblingWindowInSeconds")? {
            self.tumbling_window_s = v;
        }
        if let Some(v) = input.int("MaximumRecordAgeInSeconds")? {
            self.maximum_record_age_s = v;
        }
        if let Some(v) = input.int("MaximumRetryAttempts")? {
            self.maximum_retry_attempts = v;
        }
        if let Some(v) = input.bool("BisectBatchOnFunctionError")? {
            self.bisect_on_error = v;
        }
        if input.get("FunctionResponseTypes").is_some() {
            let types = list_of(input, "FunctionResponseTypes")?;
            self.report_item_failures = types.iter().any(|t| t == "ReportBatchItemFailures");
        }
        if let Some(d) = input.object("DestinationConfig")? {
            if d.get("OnSuccess").is_some() {
                return Err(invalid(
                    "Unsupported DestinationConfig parameter for given event source mapping type.",
                ));
            }
            self.on_failure = match d.object("OnFailure")? {
                Some(f) => f
                    .str("Destination")?
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                None => None,
            };
        }
        if let Some(f) = input.object("FilterCriteria")? {
            let patterns = match f.get("Filters") {
                None => Vec::new(),
                Some(Value::Array(filters)) => filters
                    .iter()
                    .map(|filter| {
                        filter
                            .get("Pattern")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| invalid("Invalid filter pattern definition."))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(invalid("Invalid filter pattern definition.")),
            };
            self.filters = Some(patterns);
        }
        if let Some(k) = input.str("KMSKeyArn")? {
            self.kms_key_arn = (!k.is_empty()).then(|| k.to_owned());
        }
        if let Some(m) = input.object("MetricsConfig")? {
            self.metrics = Some(list_of(&m, "Metrics")?);
        }
        self.check()
    }

    /// The rules across members.
    fn check(&self) -> Result<(), Refusal> {
        if (0..60).contains(&self.maximum_record_age_s) {
            return Err(invalid(
                "MaximumRecordAgeInSeconds must be either -1 (forever) or between 60 and 604800 \
                 (inclusive)",
            ));
        }
        if self.tumbling_window_s > 0 && self.parallelization_factor > 1 {
            return Err(invalid(
                "TumblingWindowInSeconds is not supported with a ParallelizationFactor greater \
                 than 1",
            ));
        }
        if let Some(patterns) = &self.filters {
            if patterns.len() > FILTERS_MAX {
                return Err(invalid(format!(
                    "Invalid filter criteria: a mapping takes at most {FILTERS_MAX} filters, {} \
                     were given",
                    patterns.len()
                )));
            }
            self.filters().map_err(invalid)?;
        }
        Ok(())
    }

    /// The compiled filters (none: every record passes).
    pub fn filters(&self) -> Result<Filters, String> {
        let patterns: Vec<&str> = self.filters.iter().flatten().map(String::as_str).collect();
        Filters::compile(&patterns)
    }

    /// The members an `EventSourceMappingConfiguration` shows for this
    /// configuration (the caller adds identity, state and times).
    pub fn answer_members(&self, out: &mut Map<String, Value>) {
        out.insert("BatchSize".into(), json!(self.batch_size));
        out.insert(
            "MaximumBatchingWindowInSeconds".into(),
            json!(self.batching_window_s),
        );
        out.insert(
            "ParallelizationFactor".into(),
            json!(self.parallelization_factor),
        );
        out.insert(
            "StartingPosition".into(),
            json!(self.starting_position.aws_name()),
        );
        if let StartingPosition::AtTimestamp(ms) = self.starting_position {
            out.insert(
                "StartingPositionTimestamp".into(),
                json!(ms as f64 / 1000.0),
            );
        }
        let on_failure = match &self.on_failure {
            Some(d) => json!({ "Destination": d }),
            None => json!({}),
        };
        out.insert(
            "DestinationConfig".into(),
            json!({ "OnFailure": on_failure }),
        );
        out.insert(
            "MaximumRecordAgeInSeconds".into(),
            json!(self.maximum_record_age_s),
        );
        out.insert(
            "BisectBatchOnFunctionError".into(),
            json!(self.bisect_on_error),
        );
        out.insert(
            "MaximumRetryAttempts".into(),
            json!(self.maximum_retry_attempts),
        );
        out.insert(
            "TumblingWindowInSeconds".into(),
            json!(self.tumbling_window_s),
        );
        let types: Vec<&str> = match self.report_item_failures {
            true => vec!["ReportBatchItemFailures"],
            false => vec![],
        };
        out.insert("FunctionResponseTypes".into(), json!(types));
        if let Some(patterns) = &self.filters {
            let filters: Vec<Value> = patterns.iter().map(|p| json!({ "Pattern": p })).collect();
            out.insert("FilterCriteria".into(), json!({ "Filters": filters }));
        }
        if let Some(k) = &self.kms_key_arn {
            out.insert("KMSKeyArn".into(), json!(k));
        }
        if let Some(m) = &self.metrics {
            out.insert("MetricsConfig".into(), json!({ "Metrics": m }));
        }
    }
}

/// A list of strings that may be empty (to clear it).
fn list_of(input: &Input<'_>, key: &str) -> Result<Vec<String>, Refusal> {
    match input.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) if a.is_empty() => Ok(Vec::new()),
        Some(_) => input.string_list(key),
    }
}

/// Members a Kinesis source has no use for are refused by name.
fn refuse_other_sources(input: &Input<'_>) -> Result<(), Refusal> {
    match NOT_FOR_KINESIS.iter().find(|m| input.get(m).is_some()) {
        Some(m) => Err(invalid(format!(
            "{m} is not supported for Kinesis event sources."
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<Config, Refusal> {
        let map = v.as_object().unwrap().clone();
        Config::of_create(&Input(&map), 2_000_000_000_000)
    }

    fn message(r: Result<Config, Refusal>) -> (String, String) {
        let r = r.expect_err("refused");
        (r.kind, r.message)
    }

    #[test]
    fn defaults_are_awss_for_a_kinesis_source() {
        let c = create(json!({"FunctionName": "f", "StartingPosition": "LATEST"})).unwrap();
        let mut out = Map::new();
        c.answer_members(&mut out);
        assert_eq!(
            Value::Object(out),
            json!({
                "BatchSize": 100, "MaximumBatchingWindowInSeconds": 0, "ParallelizationFactor": 1,
                "StartingPosition": "LATEST", "DestinationConfig": {"OnFailure": {}},
                "MaximumRecordAgeInSeconds": -1, "BisectBatchOnFunctionError": false,
                "MaximumRetryAttempts": -1, "TumblingWindowInSeconds": 0,
                "FunctionResponseTypes": [],
            })
        );
    }

    #[test]
    fn rules_beyond_the_model_answer_in_awss_words() {
        let invalid = |m: &str| ("InvalidParameterValueException".to_string(), m.to_string());
        assert_eq!(
            message(create(json!({"FunctionName": "f"}))),
            invalid(
                "1 validation error detected: Value null at 'startingPosition' failed to satisfy \
                 constraint: Member must not be null."
            )
        );
        assert_eq!(
            message(create(
                json!({"FunctionName": "f", "StartingPosition": "AT_TIMESTAMP"})
            )),
            invalid("Need to specify a timestamp")
        );
        assert_eq!(
            message(create(
                json!({"FunctionName": "f", "StartingPosition": "LATEST",
                                  "MaximumRecordAgeInSeconds": 59})
            )),
            invalid(
                "MaximumRecordAgeInSeconds must be either -1 (forever) or between 60 and 604800 \
                 (inclusive)"
            )
        );
        assert_eq!(
            message(create(
                json!({"FunctionName": "f", "StartingPosition": "LATEST",
                                  "DestinationConfig": {"OnSuccess": {"Destination": "x"}}})
            )),
            invalid("Unsupported DestinationConfig parameter for given event source mapping type.")
        );
        assert_eq!(
            message(create(
                json!({"FunctionName": "f", "StartingPosition": "LATEST",
                                  "Queues": ["q"]})
            )),
            invalid("Queues is not supported for Kinesis event sources.")
        );
        let (kind, m) = message(create(
            json!({"FunctionName": "f", "StartingPosition": "LATEST",
            "FilterCriteria": {"Filters": [{"Pattern": "{\"data\": 1}"}]}}),
        ));
        assert_eq!(kind, "InvalidParameterValueException");
        assert!(m.starts_with("Invalid filter pattern definition."), "{m}");
        let six: Vec<Value> = (0..6)
            .map(|_| json!({"Pattern": "{\"data\": {\"a\": [1]}}"}))
            .collect();
        let (_, m) = message(create(
            json!({"FunctionName": "f", "StartingPosition": "LATEST",
            "FilterCriteria": {"Filters": six}}),
        ));
        assert!(m.contains("at most 5 filters"), "{m}");
        let (_, m) = message(create(
            json!({"FunctionName": "f", "StartingPosition": "LATEST",
            "TumblingWindowInSeconds": 60, "ParallelizationFactor": 2}),
        ));
        assert!(m.contains("ParallelizationFactor"), "{m}");
        let (kind, m) = message(create(
            json!({"FunctionName": "f", "StartingPosition": "AT_TIMESTAMP",
            "StartingPositionTimestamp": 2_000_000_001.0}),
        ));
        assert_eq!(kind, "InvalidParameterValueException");
        assert!(m.contains("future"), "{m}");
    }

    #[test]
    fn updates_keep_what_they_do_not_name_and_are_checked_whole() {
        let c = create(
            json!({"FunctionName": "f", "StartingPosition": "TRIM_HORIZON",
                              "BatchSize": 10, "ParallelizationFactor": 2}),
        )
        .unwrap();
        let u = json!({"BatchSize": 20, "FunctionResponseTypes": ["ReportBatchItemFailures"]});
        let u = c.updated(&Input(u.as_object().unwrap())).unwrap();
        assert_eq!(
            (
                u.batch_size,
                u.parallelization_factor,
                u.report_item_failures
            ),
            (20, 2, true)
        );
        assert_eq!(u.starting_position, StartingPosition::TrimHorizon);
        let bad = json!({"TumblingWindowInSeconds": 30});
        assert!(c.updated(&Input(bad.as_object().unwrap())).is_err());
    }
}
