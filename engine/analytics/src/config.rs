//! An application's parts as the API gives them (inputs, outputs, reference
//! data sources, CloudWatch logging options), kept in AWS's own member
//! names so a description answers them back as given, plus the checks AWS
//! makes beyond its model (docs/analytics-design.md §1.4). Pure.
//!
//! Inputs reaching here passed the model's checks (`decode_checked`), so
//! required members are present and strings fit their lengths and patterns.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::SqlType;

/// A resource the application reads or writes and the role AWS would use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRole {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "RoleARN")]
    pub role_arn: String,
}

/// The input preprocessor (`InputProcessingConfiguration`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processing {
    #[serde(rename = "InputLambdaProcessor")]
    pub lambda: ResourceRole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonMapping {
    #[serde(rename = "RecordRowPath")]
    pub row_path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvMapping {
    #[serde(rename = "RecordRowDelimiter")]
    pub row_delimiter: String,
    #[serde(rename = "RecordColumnDelimiter")]
    pub column_delimiter: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingParameters {
    #[serde(
        rename = "JSONMappingParameters",
        skip_serializing_if = "Option::is_none"
    )]
    pub json: Option<JsonMapping>,
    #[serde(
        rename = "CSVMappingParameters",
        skip_serializing_if = "Option::is_none"
    )]
    pub csv: Option<CsvMapping>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFormat {
    /// `JSON` or `CSV` (the model's enum).
    #[serde(rename = "RecordFormatType")]
    pub kind: String,
    #[serde(rename = "MappingParameters", skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingParameters>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordColumn {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Mapping", skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    #[serde(rename = "SqlType")]
    pub sql_type: String,
}

/// `SourceSchema`: an input's or a reference table's record format and columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSchema {
    #[serde(rename = "RecordFormat")]
    pub format: RecordFormat,
    #[serde(rename = "RecordEncoding", skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(rename = "RecordColumns")]
    pub columns: Vec<RecordColumn>,
}

/// Where an input's records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    KinesisStreams,
    KinesisFirehose,
}

/// An input (`Input`), with the id the application gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputConf {
    pub id: String,
    pub name_prefix: String,
    pub source_kind: SourceKind,
    pub source: ResourceRole,
    pub processing: Option<Processing>,
    pub schema: SourceSchema,
    pub parallelism: u32,
}

impl InputConf {
    /// `<NamePrefix>_001 … _0NN`: the in-application streams of this input.
    pub fn stream_names(&self) -> Vec<String> {
        (1..=self.parallelism)
            .map(|i| format!("{}_{i:03}", self.name_prefix))
            .collect()
    }
}

/// Where an output's rows go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestinationKind {
    KinesisStreams,
    KinesisFirehose,
    Lambda,
}

impl DestinationKind {
    fn member(self) -> &'static str {
        match self {
            DestinationKind::KinesisStreams => "KinesisStreamsOutput",
            DestinationKind::KinesisFirehose => "KinesisFirehoseOutput",
            DestinationKind::Lambda => "LambdaOutput",
        }
    }
}

/// An output (`Output`), with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputConf {
    pub id: String,
    /// The in-application stream whose rows are written.
    pub name: String,
    pub kind: DestinationKind,
    pub destination: ResourceRole,
    /// `JSON` or `CSV`.
    pub format: String,
}

/// A reference data source (`ReferenceDataSource`), with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceConf {
    pub id: String,
    pub table_name: String,
    pub bucket_arn: String,
    pub file_key: String,
    pub role_arn: String,
    pub schema: SourceSchema,
}

/// A CloudWatch logging option: stored and answered, nothing is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingConf {
    pub id: String,
    pub log_stream_arn: String,
    pub role_arn: String,
}

/// A refusal of this module: InvalidArgumentException's message.
pub type Invalid = String;

fn parse<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, Invalid> {
    serde_json::from_value(v.clone()).map_err(|e| format!("{what} is not valid: {e}"))
}

fn role(v: &Value) -> Result<ResourceRole, Invalid> {
    parse(v, "the resource")
}

/// Reads and checks an `Input` (`id` given by the application).
pub fn input_of(v: &Value, id: String) -> Result<InputConf, Invalid> {
    let (source_kind, source) = match (v.get("KinesisStreamsInput"), v.get("KinesisFirehoseInput"))
    {
        (Some(s), None) => (SourceKind::KinesisStreams, role(s)?),
        (None, Some(f)) => (SourceKind::KinesisFirehose, role(f)?),
        _ => {
            return Err(
                "Either KinesisStreamsInput or KinesisFirehoseInput is required, not both.".into(),
            );
        }
    };
    let processing = match v.get("InputProcessingConfiguration") {
        Some(p) => Some(parse::<Processing>(p, "InputProcessingConfiguration")?),
        None => None,
    };
    let schema: SourceSchema = parse(&v["InputSchema"], "InputSchema")?;
    check_schema(&schema, "InputSchema")?;
    let parallelism = v
        .pointer("/InputParallelism/Count")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    Ok(InputConf {
        id,
        name_prefix: v["NamePrefix"].as_str().unwrap_or_default().to_string(),
        source_kind,
        source,
        processing,
        schema,
        parallelism,
    })
}

/// Reads and checks an `Output`.
pub fn output_of(v: &Value, id: String) -> Result<OutputConf, Invalid> {
    let mut found = [
        DestinationKind::KinesisStreams,
        DestinationKind::KinesisFirehose,
        DestinationKind::Lambda,
    ]
    .into_iter()
    .filter_map(|k| v.get(k.member()).map(|d| (k, d)));
    let (kind, destination) = match (found.next(), found.next()) {
        (Some((k, d)), None) => (k, role(d)?),
        _ => {
            return Err(
                "Exactly one of KinesisStreamsOutput, KinesisFirehoseOutput or LambdaOutput is required."
                    .into(),
            );
        }
    };
    Ok(OutputConf {
        id,
        name: v["Name"].as_str().unwrap_or_default().to_string(),
        kind,
        destination,
        format: v
            .pointer("/DestinationSchema/RecordFormatType")
            .and_then(Value::as_str)
            .unwrap_or("JSON")
            .to_string(),
    })
}

/// Reads and checks a `ReferenceDataSource`.
pub fn reference_of(v: &Value, id: String) -> Result<ReferenceConf, Invalid> {
    let Some(s3) = v.get("S3ReferenceDataSource") else {
        return Err("S3ReferenceDataSource is required.".into());
    };
    let schema: SourceSchema = parse(&v["ReferenceSchema"], "ReferenceSchema")?;
    check_schema(&schema, "ReferenceSchema")?;
    let text = |k: &str| s3[k].as_str().unwrap_or_default().to_string();
    Ok(ReferenceConf {
        id,
        table_name: v["TableName"].as_str().unwrap_or_default().to_string(),
        bucket_arn: text("BucketARN"),
        file_key: text("FileKey"),
        role_arn: text("ReferenceRoleARN"),
        schema,
    })
}

/// Reads a `CloudWatchLoggingOption`.
pub fn logging_of(v: &Value, id: String) -> LoggingConf {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    LoggingConf {
        id,
        log_stream_arn: text("LogStreamARN"),
        role_arn: text("RoleARN"),
    }
}

/// The checks of a `SourceSchema` beyond the model: the mapping parameters
/// of its format, a `Mapping` per JSON column, types KDA knows, unique
/// column names.
pub fn check_schema(schema: &SourceSchema, what: &str) -> Result<(), Invalid> {
    let params = schema.format.mapping.clone().unwrap_or_default();
    match schema.format.kind.as_str() {
        "JSON" => {
            if params.json.is_none() {
                return Err(format!(
                    "{what}: JSONMappingParameters is required for RecordFormatType JSON."
                ));
            }
            if let Some(c) = schema.columns.iter().find(|c| c.mapping.is_none()) {
                return Err(format!(
                    "{what}: column {} needs a Mapping: it is required for RecordFormatType JSON.",
                    c.name
                ));
            }
        }
        "CSV" => {
            if params.csv.is_none() {
                return Err(format!(
                    "{what}: CSVMappingParameters is required for RecordFormatType CSV."
                ));
            }
        }
        other => {
            return Err(format!(
                "{what}: RecordFormatType {other} is not JSON or CSV."
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for c in &schema.columns {
        if c.name.is_empty() {
            return Err(format!("{what}: a column has an empty Name."));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(format!("{what}: column {} appears twice.", c.name));
        }
        SqlType::parse(&c.sql_type).map_err(|e| format!("{what}: column {}: {e}", c.name))?;
    }
    // What the decoder serves: its JSONPath forms, delimiters, names.
    crate::decode::InputFormat::compile(schema).map_err(|e| format!("{what}: {e}"))?;
    Ok(())
}

/// `ResourceRole` as a description answers it.
fn described(r: &ResourceRole) -> Value {
    serde_json::to_value(r).expect("plain strings")
}

impl InputConf {
    /// `InputDescription`; `start` is the position of the last start, if any.
    pub fn description(&self, start: Option<&str>) -> Value {
        let mut d = serde_json::json!({
            "InputId": self.id,
            "NamePrefix": self.name_prefix,
            "InAppStreamNames": self.stream_names(),
            "InputSchema": self.schema,
            "InputParallelism": { "Count": self.parallelism },
            "InputStartingPositionConfiguration": match start {
                Some(p) => serde_json::json!({ "InputStartingPosition": p }),
                None => serde_json::json!({}),
            },
        });
        let key = match self.source_kind {
            SourceKind::KinesisStreams => "KinesisStreamsInputDescription",
            SourceKind::KinesisFirehose => "KinesisFirehoseInputDescription",
        };
        d[key] = described(&self.source);
        if let Some(p) = &self.processing {
            d["InputProcessingConfigurationDescription"] =
                serde_json::json!({ "InputLambdaProcessorDescription": described(&p.lambda) });
        }
        d
    }
}

impl OutputConf {
    pub fn description(&self) -> Value {
        let mut d = serde_json::json!({
            "OutputId": self.id,
            "Name": self.name,
            "DestinationSchema": { "RecordFormatType": self.format },
        });
        d[format!("{}Description", self.kind.member())] = described(&self.destination);
        d
    }
}

impl ReferenceConf {
    pub fn description(&self) -> Value {
        serde_json::json!({
            "ReferenceId": self.id,
            "TableName": self.table_name,
            "S3ReferenceDataSourceDescription": {
                "BucketARN": self.bucket_arn,
                "FileKey": self.file_key,
                "ReferenceRoleARN": self.role_arn,
            },
            "ReferenceSchema": self.schema,
        })
    }
}

impl LoggingConf {
    pub fn description(&self) -> Value {
        serde_json::json!({
            "CloudWatchLoggingOptionId": self.id,
            "LogStreamARN": self.log_stream_arn,
            "RoleARN": self.role_arn,
        })
    }
}

/// `{ResourceARNUpdate, RoleARNUpdate}` applied to `r`.
fn role_updated(r: &ResourceRole, v: &Value) -> ResourceRole {
    let text = |k: &str, old: &str| v[k].as_str().unwrap_or(old).to_string();
    ResourceRole {
        resource_arn: text("ResourceARNUpdate", &r.resource_arn),
        role_arn: text("RoleARNUpdate", &r.role_arn),
    }
}

/// A role update that names a resource of a new kind must name both members.
fn role_new(v: &Value, what: &str) -> Result<ResourceRole, Invalid> {
    match (v["ResourceARNUpdate"].as_str(), v["RoleARNUpdate"].as_str()) {
        (Some(arn), Some(role)) => Ok(ResourceRole {
            resource_arn: arn.into(),
            role_arn: role.into(),
        }),
        _ => Err(format!(
            "{what} needs ResourceARNUpdate and RoleARNUpdate to change the kind of resource."
        )),
    }
}

impl InputConf {
    /// This input after an `InputUpdate`.
    pub fn updated(&self, v: &Value) -> Result<InputConf, Invalid> {
        let mut next = self.clone();
        if let Some(p) = v["NamePrefixUpdate"].as_str() {
            next.name_prefix = p.to_string();
        }
        match (
            v.get("KinesisStreamsInputUpdate"),
            v.get("KinesisFirehoseInputUpdate"),
        ) {
            (Some(_), Some(_)) => {
                return Err(
                    "Either KinesisStreamsInputUpdate or KinesisFirehoseInputUpdate, not both."
                        .into(),
                );
            }
            (Some(u), None) => {
                next.source = match self.source_kind {
                    SourceKind::KinesisStreams => role_updated(&self.source, u),
                    SourceKind::KinesisFirehose => role_new(u, "KinesisStreamsInputUpdate")?,
                };
                next.source_kind = SourceKind::KinesisStreams;
            }
            (None, Some(u)) => {
                next.source = match self.source_kind {
                    SourceKind::KinesisFirehose => role_updated(&self.source, u),
                    SourceKind::KinesisStreams => role_new(u, "KinesisFirehoseInputUpdate")?,
                };
                next.source_kind = SourceKind::KinesisFirehose;
            }
            (None, None) => {}
        }
        if let Some(u) = v.pointer("/InputProcessingConfigurationUpdate/InputLambdaProcessorUpdate")
        {
            next.processing = Some(Processing {
                lambda: match &self.processing {
                    Some(p) => role_updated(&p.lambda, u),
                    None => role_new(u, "InputLambdaProcessorUpdate")?,
                },
            });
        }
        if let Some(u) = v.get("InputSchemaUpdate") {
            if let Some(f) = u.get("RecordFormatUpdate") {
                next.schema.format = parse(f, "RecordFormatUpdate")?;
            }
            if let Some(e) = u["RecordEncodingUpdate"].as_str() {
                next.schema.encoding = Some(e.to_string());
            }
            if let Some(c) = u.get("RecordColumnUpdates") {
                next.schema.columns = parse(c, "RecordColumnUpdates")?;
            }
            check_schema(&next.schema, "InputSchemaUpdate")?;
        }
        if let Some(n) = v
            .pointer("/InputParallelismUpdate/CountUpdate")
            .and_then(Value::as_u64)
        {
            next.parallelism = n as u32;
        }
        Ok(next)
    }
}

impl OutputConf {
    /// This output after an `OutputUpdate`.
    pub fn updated(&self, v: &Value) -> Result<OutputConf, Invalid> {
        let mut next = self.clone();
        if let Some(n) = v["NameUpdate"].as_str() {
            next.name = n.to_string();
        }
        let kinds = [
            DestinationKind::KinesisStreams,
            DestinationKind::KinesisFirehose,
            DestinationKind::Lambda,
        ];
        let mut found = kinds
            .into_iter()
            .filter_map(|k| v.get(format!("{}Update", k.member())).map(|u| (k, u)));
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => {
                return Err("At most one destination update may be given.".into());
            }
            (Some((k, u)), None) => {
                next.destination = match k == self.kind {
                    true => role_updated(&self.destination, u),
                    false => role_new(u, &format!("{}Update", k.member()))?,
                };
                next.kind = k;
            }
            _ => {}
        }
        if let Some(f) = v
            .pointer("/DestinationSchemaUpdate/RecordFormatType")
            .and_then(Value::as_str)
        {
            next.format = f.to_string();
        }
        Ok(next)
    }
}

impl ReferenceConf {
    /// This reference data source after a `ReferenceDataSourceUpdate`.
    pub fn updated(&self, v: &Value) -> Result<ReferenceConf, Invalid> {
        let mut next = self.clone();
        if let Some(t) = v["TableNameUpdate"].as_str() {
            next.table_name = t.to_string();
        }
        if let Some(s3) = v.get("S3ReferenceDataSourceUpdate") {
            let text = |k: &str, old: &str| s3[k].as_str().unwrap_or(old).to_string();
            next.bucket_arn = text("BucketARNUpdate", &self.bucket_arn);
            next.file_key = text("FileKeyUpdate", &self.file_key);
            next.role_arn = text("ReferenceRoleARNUpdate", &self.role_arn);
        }
        if let Some(s) = v.get("ReferenceSchemaUpdate") {
            next.schema = parse(s, "ReferenceSchemaUpdate")?;
            check_schema(&next.schema, "ReferenceSchemaUpdate")?;
        }
        Ok(next)
    }
}

impl LoggingConf {
    /// This option after a `CloudWatchLoggingOptionUpdate`.
    pub fn updated(&self, v: &Value) -> LoggingConf {
        let text = |k: &str, old: &str| v[k].as_str().unwrap_or(old).to_string();
        LoggingConf {
            id: self.id.clone(),
            log_stream_arn: text("LogStreamARNUpdate", &self.log_stream_arn),
            role_arn: text("RoleARNUpdate", &self.role_arn),
        }
    }
}
