//! `AWS::KinesisFirehose::DeliveryStream`: its properties are
//! CreateDeliveryStream's members, so each is checked against Firehose's
//! model; a changed destination is sent as UpdateDestination's `*Update`.

use serde_json::{Map, Value, json};

use super::{
    Current, Handler, Kind, Place, owner, refusal, same, tag_list, tag_pairs, update_shaped,
    user_tags, wait_until,
};
use crate::aws_http::{Api, ApiError, Service};
use crate::stack::form::{Form, Prop};
use crate::stack::resolve::Known;

const fn shape(name: &'static str, replaces: bool) -> Prop {
    Prop {
        name,
        form: Form::Shape(Service::Firehose, name),
        required: false,
        replaces,
    }
}

pub static DELIVERY_STREAM: Kind = Kind {
    type_name: "AWS::KinesisFirehose::DeliveryStream",
    properties: &[
        Prop {
            name: "DeliveryStreamName",
            form: Form::String,
            required: false,
            replaces: true,
        },
        Prop {
            name: "DeliveryStreamType",
            form: Form::String,
            required: false,
            replaces: true,
        },
        shape("DirectPutSourceConfiguration", true),
        shape("KinesisStreamSourceConfiguration", true),
        shape("MSKSourceConfiguration", true),
        shape("DatabaseSourceConfiguration", true),
        shape("DeliveryStreamEncryptionConfigurationInput", false),
        shape("S3DestinationConfiguration", false),
        shape("ExtendedS3DestinationConfiguration", false),
        shape("HttpEndpointDestinationConfiguration", false),
        shape("RedshiftDestinationConfiguration", false),
        shape("ElasticsearchDestinationConfiguration", false),
        shape("AmazonopensearchserviceDestinationConfiguration", false),
        shape("AmazonOpenSearchServerlessDestinationConfiguration", false),
        shape("SplunkDestinationConfiguration", false),
        shape("SnowflakeDestinationConfiguration", false),
        shape("IcebergDestinationConfiguration", false),
        Prop {
            name: "Tags",
            form: Form::Tags,
            required: false,
            replaces: false,
        },
    ],
    attributes: &["Arn"],
    handler: &DeliveryStreamHandler,
};

struct DeliveryStreamHandler;

fn call(api: &Api, op: &str, input: Value) -> Result<Value, ApiError> {
    api.call(Service::Firehose, op, &input)
}

fn is_destination(key: &str) -> bool {
    key.ends_with("DestinationConfiguration")
}

fn tags(api: &Api, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut input = json!({"DeliveryStreamName": name, "Limit": 50});
    loop {
        let page = call(api, "ListTagsForDeliveryStream", input.clone())?;
        let before = out.len();
        for t in page["Tags"].as_array().into_iter().flatten() {
            out.push((
                t["Key"].as_str().unwrap_or_default().to_string(),
                t["Value"].as_str().unwrap_or_default().to_string(),
            ));
        }
        if page["HasMoreTags"] != true || out.len() == before {
            return Ok(out);
        }
        input["ExclusiveStartTagKey"] = json!(out.last().map(|(k, _)| k.clone()));
    }
}

fn active(api: &Api, name: &str) -> Result<Current, ApiError> {
    wait_until(
        &format!("delivery stream {name}"),
        || DeliveryStreamHandler.read(api, name),
        |c| c.is_some_and(|c| c.raw["DeliveryStreamStatus"] == "ACTIVE"),
    )?
    .ok_or_else(|| refusal(format!("delivery stream {name} is gone")))
}

impl Handler for DeliveryStreamHandler {
    fn identity(&self, props: &mut Map<String, Value>, place: &Place<'_>) -> Option<String> {
        let name = props
            .entry("DeliveryStreamName")
            .or_insert_with(|| Value::String(place.generated_name(64)));
        name.as_str().map(str::to_string)
    }

    fn defaults(&self, props: &mut Map<String, Value>) {
        props
            .entry("DeliveryStreamType")
            .or_insert(json!("DirectPut"));
        props.entry("Tags").or_insert(json!([]));
    }

    fn read(&self, api: &Api, name: &str) -> Result<Option<Current>, ApiError> {
        let d = match call(
            api,
            "DescribeDeliveryStream",
            json!({"DeliveryStreamName": name}),
        ) {
            Err(e) if e.is("ResourceNotFoundException") => return Ok(None),
            r => r?,
        };
        let d = &d["DeliveryStreamDescription"];
        let mut props = Map::new();
        props.insert("DeliveryStreamName".into(), json!(name));
        props.insert("DeliveryStreamType".into(), d["DeliveryStreamType"].clone());
        if let Some(source) = d["Source"].as_object() {
            for (k, v) in source {
                props.insert(k.replace("Description", "Configuration"), v.clone());
            }
        }
        if let Some(dest) = d["Destinations"][0].as_object() {
            for (k, v) in dest
                .iter()
                .filter(|(k, _)| k.ends_with("DestinationDescription"))
            {
                props.insert(k.replace("Description", "Configuration"), v.clone());
            }
        }
        let e = &d["DeliveryStreamEncryptionConfiguration"];
        if e["Status"] == "ENABLED" || e["Status"] == "ENABLING" {
            let mut input = json!({"KeyType": e["KeyType"]});
            if e["KeyType"] == "CUSTOMER_MANAGED_CMK" {
                input["KeyARN"] = e["KeyARN"].clone();
            }
            props.insert("DeliveryStreamEncryptionConfigurationInput".into(), input);
        }
        let all = tags(api, name)?;
        props.insert("Tags".into(), tag_list(&user_tags(&all)));
        Ok(Some(Current {
            props,
            known: Known {
                reference: name.to_string(),
                attributes: Map::from_iter([("Arn".into(), d["DeliveryStreamARN"].clone())]),
            },
            owner: owner(&all),
            retain: super::retained(&all),
            raw: d.clone(),
        }))
    }

    fn changes(&self, desired: &Map<String, Value>, current: &Map<String, Value>) -> Vec<String> {
        // A destination is compared only as the template names it (Firehose
        // describes an S3 destination as both S3 and ExtendedS3).
        let mut keys: Vec<&String> = desired.keys().collect();
        keys.extend(
            current
                .keys()
                .filter(|k| !is_destination(k) && !desired.contains_key(*k)),
        );
        keys.into_iter()
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
        let mut input = props.clone();
        input.insert("DeliveryStreamName".into(), json!(name));
        let mut tags = tag_pairs(props);
        tags.extend(place.tags());
        input.insert("Tags".into(), tag_list(&tags));
        call(api, "CreateDeliveryStream", Value::Object(input))?;
        active(api, name)?;
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
        let model = Service::Firehose.model();
        for key in changed {
            if is_destination(key) {
                let Some(config) = props.get(key) else {
                    continue;
                };
                let update_key = key.replace("Configuration", "Update");
                let shape = model
                    .shape(&update_key)
                    .ok_or_else(|| refusal(format!("{key} cannot be changed in place")))?;
                // Only the members that differ (some cannot be sent as an
                // update, such as a search destination's S3BackupMode, though
                // unchanged), and those the server does not echo (a password,
                // an endpoint's access key): they may have changed.
                let config = match (config, current.props.get(key)) {
                    (Value::Object(want), Some(now)) => Value::Object(
                        want.iter()
                            .filter(|(k, v)| {
                                !super::reported(k, v, now)
                                    || !super::same(Some(&json!({ (*k).clone(): v })), Some(now))
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    (config, _) => config.clone(),
                };
                let update = update_shaped(model, shape, &config, key).map_err(refusal)?;
                let now = active(api, name)?;
                call(
                    api,
                    "UpdateDestination",
                    json!({
                        "DeliveryStreamName": name,
                        "CurrentDeliveryStreamVersionId": now.raw["VersionId"],
                        "DestinationId": now.raw["Destinations"][0]["DestinationId"],
                        update_key: update,
                    }),
                )?;
                continue;
            }
            match key.as_str() {
                "DeliveryStreamEncryptionConfigurationInput" => {
                    match props.get(key) {
                        Some(e) => call(
                            api,
                            "StartDeliveryStreamEncryption",
                            json!({"DeliveryStreamName": name, key: e}),
                        )?,
                        None => call(
                            api,
                            "StopDeliveryStreamEncryption",
                            json!({"DeliveryStreamName": name}),
                        )?,
                    };
                    wait_until(
                        &format!("encryption of {name}"),
                        || self.read(api, name),
                        |c| {
                            c.is_some_and(|c| {
                                let s = &c.raw["DeliveryStreamEncryptionConfiguration"]["Status"];
                                s != "ENABLING" && s != "DISABLING"
                            })
                        },
                    )?;
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
            "DeleteDeliveryStream",
            json!({"DeliveryStreamName": name}),
        )?;
        wait_until(
            &format!("deleting delivery stream {name}"),
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
        let name = &current.known.reference;
        if !remove.is_empty() {
            call(
                api,
                "UntagDeliveryStream",
                json!({"DeliveryStreamName": name, "TagKeys": remove}),
            )?;
        }
        if !add.is_empty() {
            call(
                api,
                "TagDeliveryStream",
                json!({"DeliveryStreamName": name, "Tags": tag_list(add)}),
            )?;
        }
        Ok(())
    }

    fn owned(&self, api: &Api, stack: &str) -> Result<Vec<(String, String)>, ApiError> {
        let mut names: Vec<String> = Vec::new();
        let mut input = json!({"Limit": 10000});
        loop {
            let page = call(api, "ListDeliveryStreams", input.clone())?;
            let batch: Vec<String> = page["DeliveryStreamNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            let last = batch.last().cloned();
            names.extend(batch);
            match (page["HasMoreDeliveryStreams"] == true, last) {
                (true, Some(last))
                    if input["ExclusiveStartDeliveryStreamName"] != last.as_str() =>
                {
                    input["ExclusiveStartDeliveryStreamName"] = json!(last)
                }
                _ => break,
            }
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(id) = super::member_of(stack, tags(api, &name))? {
                out.push((name, id));
            }
        }
        Ok(out)
    }
}
