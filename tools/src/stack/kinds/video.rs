//! `AWS::KinesisVideo::Stream`.

use serde_json::{Map, Value, json};

use super::{
    Current, Handler, Kind, Place, owner, refusal, same, tag_list, tag_map, tag_pairs, user_tags,
    wait_until,
};
use crate::aws_http::{Api, ApiError, Service};
use crate::stack::form::{Form, Prop};
use crate::stack::resolve::Known;

pub static STREAM: Kind = Kind {
    type_name: "AWS::KinesisVideo::Stream",
    properties: &[
        Prop {
            name: "Name",
            form: Form::String,
            required: false,
            replaces: true,
        },
        Prop {
            name: "DataRetentionInHours",
            form: Form::Integer,
            required: false,
            replaces: false,
        },
        Prop {
            name: "DeviceName",
            form: Form::String,
            required: false,
            replaces: false,
        },
        Prop {
            name: "KmsKeyId",
            form: Form::String,
            required: false,
            replaces: true,
        },
        Prop {
            name: "MediaType",
            form: Form::String,
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
    api.call(Service::Video, op, &input)
}

fn tags(api: &Api, arn: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut input = json!({"StreamARN": arn});
    loop {
        let page = call(api, "ListTagsForStream", input.clone())?;
        if let Some(t) = page["Tags"].as_object() {
            out.extend(
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
            );
        }
        match page["NextToken"].as_str() {
            Some(next) if !next.is_empty() && input["NextToken"] != next => {
                input["NextToken"] = json!(next)
            }
            _ => return Ok(out),
        }
    }
}

impl StreamHandler {
    fn active(&self, api: &Api, name: &str) -> Result<Current, ApiError> {
        wait_until(
            &format!("video stream {name}"),
            || self.read(api, name),
            |c| c.is_some_and(|c| c.raw["Status"] == "ACTIVE"),
        )?
        .ok_or_else(|| refusal(format!("video stream {name} is gone")))
    }
}

impl Handler for StreamHandler {
    fn identity(&self, props: &mut Map<String, Value>, place: &Place<'_>) -> Option<String> {
        let name = props
            .entry("Name")
            .or_insert_with(|| Value::String(place.generated_name(256)));
        name.as_str().map(str::to_string)
    }

    fn defaults(&self, props: &mut Map<String, Value>) {
        props.entry("DataRetentionInHours").or_insert(json!(0));
        props.entry("Tags").or_insert(json!([]));
    }

    fn read(&self, api: &Api, name: &str) -> Result<Option<Current>, ApiError> {
        let d = match call(api, "DescribeStream", json!({"StreamName": name})) {
            Err(e) if e.is("ResourceNotFoundException") => return Ok(None),
            r => r?,
        };
        let info = &d["StreamInfo"];
        let mut props = Map::new();
        props.insert("Name".into(), json!(name));
        for key in [
            "DataRetentionInHours",
            "DeviceName",
            "KmsKeyId",
            "MediaType",
        ] {
            if !info[key].is_null() {
                props.insert(key.into(), info[key].clone());
            }
        }
        let all = tags(api, &info["StreamARN"])?;
        props.insert("Tags".into(), tag_list(&user_tags(&all)));
        Ok(Some(Current {
            props,
            known: Known {
                reference: name.to_string(),
                attributes: Map::from_iter([("Arn".into(), info["StreamARN"].clone())]),
            },
            owner: owner(&all),
            retain: super::retained(&all),
            raw: info.clone(),
        }))
    }

    fn changes(&self, desired: &Map<String, Value>, current: &Map<String, Value>) -> Vec<String> {
        // The server fills DeviceName, MediaType and KmsKeyId when the
        // template leaves them out: only what the template says is compared.
        desired
            .keys()
            .filter(|k| !same(desired.get(*k), current.get(*k)))
            .cloned()
            .collect()
    }

    fn create(
        &self,
        api: &Api,
        name: &str,
        props: &Map<String, Value>,
        place: &Place<'_>,
    ) -> Result<(), ApiError> {
        let mut input =
            json!({"StreamName": name, "DataRetentionInHours": props["DataRetentionInHours"]});
        for key in ["DeviceName", "KmsKeyId", "MediaType"] {
            if let Some(v) = props.get(key) {
                input[key] = v.clone();
            }
        }
        let mut tags = tag_pairs(props);
        tags.extend(place.tags());
        input["Tags"] = tag_map(&tags);
        call(api, "CreateStream", input)?;
        self.active(api, name)?;
        Ok(())
    }

    fn update(
        &self,
        api: &Api,
        current: &Current,
        props: &Map<String, Value>,
        changed: &[String],
    ) -> Result<(), ApiError> {
        let name = current.known.reference.as_str();
        if changed
            .iter()
            .any(|k| k == "DeviceName" || k == "MediaType")
        {
            let now = self.active(api, name)?;
            let mut input = json!({"StreamName": name, "CurrentVersion": now.raw["Version"]});
            for key in ["DeviceName", "MediaType"] {
                if let Some(v) = props.get(key) {
                    input[key] = v.clone();
                }
            }
            call(api, "UpdateStream", input)?;
        }
        if changed.iter().any(|k| k == "DataRetentionInHours") {
            let now = self.active(api, name)?;
            let want = props["DataRetentionInHours"].as_i64().unwrap_or(0);
            let have = now.raw["DataRetentionInHours"].as_i64().unwrap_or(0);
            let operation = if want > have {
                "INCREASE_DATA_RETENTION"
            } else {
                "DECREASE_DATA_RETENTION"
            };
            call(
                api,
                "UpdateDataRetention",
                json!({
                    "StreamName": name,
                    "CurrentVersion": now.raw["Version"],
                    "Operation": operation,
                    "DataRetentionChangeInHours": (want - have).abs(),
                }),
            )?;
        }
        if changed.iter().any(|k| k == "Tags") {
            super::set_user_tags(self, api, current, props)?;
        }
        self.active(api, name)?;
        Ok(())
    }

    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        let name = current.known.reference.as_str();
        call(
            api,
            "DeleteStream",
            json!({"StreamARN": current.known.attributes["Arn"]}),
        )?;
        wait_until(
            &format!("deleting video stream {name}"),
            || self.read(api, name),
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
        let arn = &current.known.attributes["Arn"];
        if !remove.is_empty() {
            call(
                api,
                "UntagStream",
                json!({"StreamARN": arn, "TagKeyList": remove}),
            )?;
        }
        if !add.is_empty() {
            call(
                api,
                "TagStream",
                json!({"StreamARN": arn, "Tags": tag_map(add)}),
            )?;
        }
        Ok(())
    }

    fn owned(&self, api: &Api, stack: &str) -> Result<Vec<(String, String)>, ApiError> {
        let mut out = Vec::new();
        let mut input = json!({});
        loop {
            let page = call(api, "ListStreams", input.clone())?;
            for info in page["StreamInfoList"].as_array().into_iter().flatten() {
                if let Some(id) = super::member_of(stack, tags(api, &info["StreamARN"]))? {
                    let name = info["StreamName"].as_str().unwrap_or_default();
                    out.push((name.to_string(), id));
                }
            }
            match page["NextToken"].as_str() {
                Some(next) if !next.is_empty() && input["NextToken"] != next => {
                    input["NextToken"] = json!(next)
                }
                _ => return Ok(out),
            }
        }
    }
}
