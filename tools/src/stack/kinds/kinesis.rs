//! `AWS::Kinesis::Stream` and `AWS::Kinesis::StreamConsumer`.

use serde_json::{Map, Value, json};

use super::{
    Current, Handler, Kind, Place, owner, refusal, tag_list, tag_pairs, user_tags, wait_until,
};
use crate::aws_http::{Api, ApiError, Service};
use crate::stack::form::{Form, Prop};
use crate::stack::resolve::Known;

const ENCRYPTION: &[Prop] = &[
    Prop {
        name: "EncryptionType",
        form: Form::String,
        required: true,
        replaces: false,
    },
    Prop {
        name: "KeyId",
        form: Form::String,
        required: true,
        replaces: false,
    },
];
const MODE: &[Prop] = &[Prop {
    name: "StreamMode",
    form: Form::String,
    required: true,
    replaces: false,
}];

pub static STREAM: Kind = Kind {
    type_name: "AWS::Kinesis::Stream",
    properties: &[
        Prop {
            name: "Name",
            form: Form::String,
            required: false,
            replaces: true,
        },
        Prop {
            name: "ShardCount",
            form: Form::Integer,
            required: false,
            replaces: false,
        },
        Prop {
            name: "RetentionPeriodHours",
            form: Form::Integer,
            required: false,
            replaces: false,
        },
        Prop {
            name: "StreamEncryption",
            form: Form::Object(ENCRYPTION),
            required: false,
            replaces: false,
        },
        Prop {
            name: "StreamModeDetails",
            form: Form::Object(MODE),
            required: false,
            replaces: false,
        },
        Prop {
            name: "DesiredShardLevelMetrics",
            form: Form::StringList,
            required: false,
            replaces: false,
        },
        Prop {
            name: "Tags",
            form: Form::Tags,
            required: false,
            replaces: false,
        },
    ],
    attributes: &["Arn"],
    handler: &StreamHandler,
};

struct StreamHandler;

fn call(api: &Api, op: &str, input: Value) -> Result<Value, ApiError> {
    api.call(Service::Kinesis, op, &input)
}

impl StreamHandler {
    fn tags(api: &Api, name: &str) -> Result<Vec<(String, String)>, ApiError> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let mut input = json!({"StreamName": name, "Limit": 50});
            if let Some(s) = &start {
                input["ExclusiveStartTagKey"] = json!(s);
            }
            let page = call(api, "ListTagsForStream", input)?;
            for t in page["Tags"].as_array().into_iter().flatten() {
                out.push((
                    t["Key"].as_str().unwrap_or_default().to_string(),
                    t["Value"].as_str().unwrap_or_default().to_string(),
                ));
            }
            let next = out.last().map(|(k, _)| k.clone());
            if page["HasMoreTags"] != true || next.is_none() || next == start {
                return Ok(out);
            }
            start = next;
        }
    }

    fn active(api: &Api, name: &str) -> Result<Current, ApiError> {
        wait_until(
            &format!("stream {name}"),
            || self_read(api, name),
            |c| c.is_some_and(|c| c.raw["StreamStatus"] == "ACTIVE"),
        )?
        .ok_or_else(|| refusal(format!("stream {name} is gone")))
    }
}

fn self_read(api: &Api, name: &str) -> Result<Option<Current>, ApiError> {
    StreamHandler.read(api, name)
}

impl Handler for StreamHandler {
    fn identity(&self, props: &mut Map<String, Value>, place: &Place<'_>) -> Option<String> {
        let name = props
            .entry("Name")
            .or_insert_with(|| Value::String(place.generated_name(128)));
        name.as_str().map(str::to_string)
    }

    fn check(&self, props: &Map<String, Value>) -> Result<(), String> {
        if props
            .get("StreamModeDetails")
            .is_some_and(|m| m["StreamMode"] == "ON_DEMAND")
            && props.contains_key("ShardCount")
        {
            return Err("ShardCount is not expected when StreamMode=ON_DEMAND".into());
        }
        Ok(())
    }

    fn defaults(&self, props: &mut Map<String, Value>) {
        props.entry("RetentionPeriodHours").or_insert(json!(24));
        let mode = props
            .entry("StreamModeDetails")
            .or_insert(json!({"StreamMode": "PROVISIONED"}));
        if mode["StreamMode"] == "PROVISIONED" {
            props.entry("ShardCount").or_insert(json!(1));
        } else {
            props.remove("ShardCount");
        }
        props.entry("DesiredShardLevelMetrics").or_insert(json!([]));
        // ALL is the seven metrics (as the server reports them), each once.
        if let Some(Value::Array(m)) = props.get_mut("DesiredShardLevelMetrics") {
            if m.iter().any(|v| v == "ALL") {
                *m = riffle_engine::kinesis::SHARD_LEVEL_METRICS
                    .iter()
                    .map(|s| json!(s))
                    .collect();
            }
            m.dedup_by(|a, b| a == b);
        }
        props.entry("Tags").or_insert(json!([]));
        if let Some(Value::Array(m)) = props.get_mut("DesiredShardLevelMetrics") {
            m.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            m.dedup();
        }
    }

    fn read(&self, api: &Api, name: &str) -> Result<Option<Current>, ApiError> {
        let d = match call(api, "DescribeStreamSummary", json!({"StreamName": name})) {
            Err(e) if e.is("ResourceNotFoundException") => return Ok(None),
            r => r?,
        };
        let s = &d["StreamDescriptionSummary"];
        let tags = Self::tags(api, name)?;
        let mut props = Map::new();
        props.insert("Name".into(), json!(name));
        props.insert(
            "RetentionPeriodHours".into(),
            s["RetentionPeriodHours"].clone(),
        );
        let mode = match s["StreamModeDetails"]["StreamMode"].as_str() {
            Some(m) => m.to_string(),
            None => "PROVISIONED".into(),
        };
        if mode == "PROVISIONED" {
            props.insert("ShardCount".into(), s["OpenShardCount"].clone());
        }
        props.insert("StreamModeDetails".into(), json!({"StreamMode": mode}));
        if s["EncryptionType"] == "KMS" {
            props.insert(
                "StreamEncryption".into(),
                json!({"EncryptionType": "KMS", "KeyId": s["KeyId"]}),
            );
        }
        let mut metrics: Vec<Value> = s["EnhancedMonitoring"][0]["ShardLevelMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        metrics.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        props.insert("DesiredShardLevelMetrics".into(), Value::Array(metrics));
        props.insert("Tags".into(), tag_list(&user_tags(&tags)));
        let arn = s["StreamARN"].clone();
        Ok(Some(Current {
            props,
            known: Known {
                reference: name.to_string(),
                attributes: Map::from_iter([("Arn".into(), arn)]),
            },
            owner: owner(&tags),
            retain: super::retained(&tags),
            raw: s.clone(),
        }))
    }

    fn create(
        &self,
        api: &Api,
        name: &str,
        props: &Map<String, Value>,
        place: &Place<'_>,
    ) -> Result<(), ApiError> {
        let mut input =
            json!({"StreamName": name, "StreamModeDetails": props["StreamModeDetails"]});
        if let Some(n) = props.get("ShardCount") {
            input["ShardCount"] = n.clone();
        }
        // The stack's tags come with the stream: never one without them.
        let mut tags = tag_pairs(props);
        tags.extend(place.tags());
        input["Tags"] = super::tag_map(&tags);
        call(api, "CreateStream", input)?;
        let mut current = Self::active(api, name)?;
        // What CreateStream does not take: the same calls as an update.
        current.props.remove("StreamModeDetails");
        let changed: Vec<String> = [
            "RetentionPeriodHours",
            "StreamEncryption",
            "DesiredShardLevelMetrics",
        ]
        .into_iter()
        .filter(|k| props.get(*k) != current.props.get(*k))
        .map(str::to_string)
        .collect();
        self.update(api, &current, props, &changed)
    }

    fn update(
        &self,
        api: &Api,
        current: &Current,
        props: &Map<String, Value>,
        changed: &[String],
    ) -> Result<(), ApiError> {
        let name = current.known.reference.as_str();
        let arn = current.known.attributes["Arn"].clone();
        for key in changed {
            match key.as_str() {
                "StreamModeDetails" => {
                    call(
                        api,
                        "UpdateStreamMode",
                        json!({"StreamARN": arn, "StreamModeDetails": props[key]}),
                    )?;
                    let now = Self::active(api, name)?;
                    if let Some(n) = props
                        .get("ShardCount")
                        .filter(|n| now.props.get("ShardCount") != Some(n))
                    {
                        call(
                            api,
                            "UpdateShardCount",
                            json!({"StreamName": name, "TargetShardCount": n, "ScalingType": "UNIFORM_SCALING"}),
                        )?;
                        Self::active(api, name)?;
                    }
                }
                "ShardCount" if !changed.iter().any(|k| k == "StreamModeDetails") => {
                    call(
                        api,
                        "UpdateShardCount",
                        json!({"StreamName": name, "TargetShardCount": props[key], "ScalingType": "UNIFORM_SCALING"}),
                    )?;
                    Self::active(api, name)?;
                }
                "RetentionPeriodHours" => {
                    let want = props[key].as_i64().unwrap_or(24);
                    let now = current.props[key].as_i64().unwrap_or(24);
                    let op = if want > now {
                        "IncreaseStreamRetentionPeriod"
                    } else {
                        "DecreaseStreamRetentionPeriod"
                    };
                    call(
                        api,
                        op,
                        json!({"StreamName": name, "RetentionPeriodHours": want}),
                    )?;
                    Self::active(api, name)?;
                }
                "StreamEncryption" => {
                    match props.get(key) {
                        Some(e) => call(
                            api,
                            "StartStreamEncryption",
                            json!({"StreamName": name, "EncryptionType": e["EncryptionType"], "KeyId": e["KeyId"]}),
                        )?,
                        None => {
                            let e = &current.props[key];
                            call(
                                api,
                                "StopStreamEncryption",
                                json!({"StreamName": name, "EncryptionType": e["EncryptionType"], "KeyId": e["KeyId"]}),
                            )?
                        }
                    };
                    Self::active(api, name)?;
                }
                "DesiredShardLevelMetrics" => {
                    let list = |m: Option<&Value>| -> Vec<Value> {
                        m.and_then(Value::as_array).cloned().unwrap_or_default()
                    };
                    let (want, now) = (list(props.get(key)), list(current.props.get(key)));
                    let off: Vec<&Value> = now.iter().filter(|m| !want.contains(m)).collect();
                    let on: Vec<&Value> = want.iter().filter(|m| !now.contains(m)).collect();
                    if !off.is_empty() {
                        call(
                            api,
                            "DisableEnhancedMonitoring",
                            json!({"StreamName": name, "ShardLevelMetrics": off}),
                        )?;
                    }
                    if !on.is_empty() {
                        call(
                            api,
                            "EnableEnhancedMonitoring",
                            json!({"StreamName": name, "ShardLevelMetrics": on}),
                        )?;
                    }
                }
                "Tags" => super::set_user_tags(self, api, current, props)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        let name = current.known.reference.as_str();
        call(
            api,
            "DeleteStream",
            json!({"StreamName": name, "EnforceConsumerDeletion": true}),
        )?;
        wait_until(
            &format!("deleting stream {name}"),
            || self_read(api, name),
            |c| c.is_none(),
        )?;
        Ok(())
    }

    fn tracked(&self) -> bool {
        true
    }

    fn retag(
        &self,
        api: &Api,
        current: &Current,
        add: &[(String, String)],
        remove: &[&str],
    ) -> Result<(), ApiError> {
        let name = &current.known.reference;
        if !remove.is_empty() {
            call(
                api,
                "RemoveTagsFromStream",
                json!({"StreamName": name, "TagKeys": remove}),
            )?;
        }
        // At most 10 tags a call (AWS's AddTagsToStream).
        for chunk in add.chunks(10) {
            call(
                api,
                "AddTagsToStream",
                json!({"StreamName": name, "Tags": super::tag_map(chunk)}),
            )?;
        }
        Ok(())
    }

    fn owned(&self, api: &Api, stack: &str) -> Result<Vec<(String, String)>, ApiError> {
        let mut names = Vec::new();
        let mut input = json!({"Limit": 1000});
        loop {
            let page = call(api, "ListStreams", input.clone())?;
            let batch: Vec<String> = page["StreamNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            let last = batch.last().cloned();
            names.extend(batch);
            match (page["HasMoreStreams"] == true, last) {
                (true, Some(last)) if input["ExclusiveStartStreamName"] != last.as_str() => {
                    input["ExclusiveStartStreamName"] = json!(last)
                }
                _ => break,
            }
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(id) = super::member_of(stack, Self::tags(api, &name))? {
                out.push((name, id));
            }
        }
        Ok(out)
    }
}

pub static CONSUMER: Kind = Kind {
    type_name: "AWS::Kinesis::StreamConsumer",
    properties: &[
        Prop {
            name: "ConsumerName",
            form: Form::String,
            required: true,
            replaces: true,
        },
        Prop {
            name: "StreamARN",
            form: Form::String,
            required: true,
            replaces: true,
        },
    ],
    attributes: &[
        "ConsumerARN",
        "ConsumerCreationTimestamp",
        "ConsumerName",
        "ConsumerStatus",
        "StreamARN",
    ],
    handler: &ConsumerHandler,
};

struct ConsumerHandler;

/// A consumer's identity: `STREAM_ARN CONSUMER_NAME`.
fn consumer_of(identity: &str) -> (&str, &str) {
    identity.split_once(' ').unwrap_or((identity, ""))
}

impl Handler for ConsumerHandler {
    fn identity(&self, props: &mut Map<String, Value>, _place: &Place<'_>) -> Option<String> {
        Some(format!(
            "{} {}",
            props.get("StreamARN")?.as_str()?,
            props.get("ConsumerName")?.as_str()?
        ))
    }

    fn read(&self, api: &Api, identity: &str) -> Result<Option<Current>, ApiError> {
        let (stream, name) = consumer_of(identity);
        let d = match call(
            api,
            "DescribeStreamConsumer",
            json!({"StreamARN": stream, "ConsumerName": name}),
        ) {
            Err(e) if e.is("ResourceNotFoundException") => return Ok(None),
            r => r?,
        };
        let c = &d["ConsumerDescription"];
        let attributes = Map::from_iter([
            ("ConsumerARN".into(), c["ConsumerARN"].clone()),
            (
                "ConsumerCreationTimestamp".into(),
                json!(c["ConsumerCreationTimestamp"].to_string()),
            ),
            ("ConsumerName".into(), c["ConsumerName"].clone()),
            ("ConsumerStatus".into(), c["ConsumerStatus"].clone()),
            ("StreamARN".into(), c["StreamARN"].clone()),
        ]);
        let props = Map::from_iter([
            ("ConsumerName".into(), json!(name)),
            ("StreamARN".into(), json!(stream)),
        ]);
        Ok(Some(Current {
            props,
            known: Known {
                reference: c["ConsumerARN"].as_str().unwrap_or_default().to_string(),
                attributes,
            },
            owner: None,
            retain: false,
            raw: c.clone(),
        }))
    }

    fn create(
        &self,
        api: &Api,
        identity: &str,
        _props: &Map<String, Value>,
        _place: &Place<'_>,
    ) -> Result<(), ApiError> {
        let (stream, name) = consumer_of(identity);
        call(
            api,
            "RegisterStreamConsumer",
            json!({"StreamARN": stream, "ConsumerName": name}),
        )?;
        wait_until(
            &format!("consumer {name}"),
            || self.read(api, identity),
            |c| c.is_some_and(|c| c.raw["ConsumerStatus"] == "ACTIVE"),
        )?;
        Ok(())
    }

    fn update(
        &self,
        _api: &Api,
        _current: &Current,
        _props: &Map<String, Value>,
        _changed: &[String],
    ) -> Result<(), ApiError> {
        // Every property of a consumer replaces it.
        Ok(())
    }

    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        let arn = current.known.reference.as_str();
        match call(api, "DeregisterStreamConsumer", json!({"ConsumerARN": arn})) {
            Err(e) if e.is("ResourceNotFoundException") => return Ok(()),
            r => r?,
        };
        let identity = format!(
            "{} {}",
            current.props["StreamARN"].as_str().unwrap_or_default(),
            current.props["ConsumerName"].as_str().unwrap_or_default()
        );
        wait_until(
            &format!("deregistering consumer {arn}"),
            || self.read(api, &identity),
            |c| c.is_none(),
        )?;
        Ok(())
    }
}
