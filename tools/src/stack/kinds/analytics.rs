//! `AWS::KinesisAnalytics::Application` and its `ApplicationOutput` and
//! `ApplicationReferenceDataSource` (Kinesis Data Analytics for SQL, the
//! 2015-08-14 API). Each change is one versioned call, the version read
//! just before it.

use serde_json::{Map, Value, json};

use super::{Current, Handler, Kind, Place, owner, refusal, tag_list, update_shaped, wait_until};
use crate::aws_http::{Api, ApiError, Service};
use crate::stack::form::{Form, Prop};
use crate::stack::resolve::Known;

const S: Service = Service::Analytics;

fn call(api: &Api, op: &str, input: Value) -> Result<Value, ApiError> {
    api.call(S, op, &input)
}

/// DescribeApplication's ApplicationDetail, or None.
fn detail(api: &Api, name: &str) -> Result<Option<Value>, ApiError> {
    match call(api, "DescribeApplication", json!({"ApplicationName": name})) {
        Err(e) if e.is("ResourceNotFoundException") => Ok(None),
        r => Ok(Some(r?["ApplicationDetail"].take())),
    }
}

fn version(api: &Api, name: &str) -> Result<Value, ApiError> {
    let d =
        detail(api, name)?.ok_or_else(|| refusal(format!("application {name} does not exist")))?;
    Ok(d["ApplicationVersionId"].clone())
}

fn update_application(api: &Api, name: &str, update: Value) -> Result<(), ApiError> {
    call(
        api,
        "UpdateApplication",
        json!({
            "ApplicationName": name,
            "CurrentApplicationVersionId": version(api, name)?,
            "ApplicationUpdate": update,
        }),
    )?;
    Ok(())
}

fn shaped_update(value: &Value, shape: &str, path: &str) -> Result<Value, ApiError> {
    let model = S.model();
    update_shaped(
        model,
        model.shape(shape).expect("in the model"),
        value,
        path,
    )
    .map_err(refusal)
}

pub static APPLICATION: Kind = Kind {
    type_name: "AWS::KinesisAnalytics::Application",
    properties: &[
        Prop {
            name: "ApplicationName",
            form: Form::String,
            required: false,
            replaces: true,
        },
        // The 2015 API has no call that changes a description.
        Prop {
            name: "ApplicationDescription",
            form: Form::String,
            required: false,
            replaces: true,
        },
        Prop {
            name: "ApplicationCode",
            form: Form::String,
            required: false,
            replaces: false,
        },
        Prop {
            name: "Inputs",
            form: Form::Shape(S, "Inputs"),
            required: true,
            replaces: false,
        },
    ],
    attributes: &[],
    handler: &ApplicationHandler,
};

struct ApplicationHandler;

fn tags(api: &Api, arn: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let t = call(api, "ListTagsForResource", json!({"ResourceARN": arn}))?;
    Ok(t["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["Key"].as_str().unwrap_or_default().to_string(),
                t["Value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

impl Handler for ApplicationHandler {
    fn identity(&self, props: &mut Map<String, Value>, place: &Place<'_>) -> Option<String> {
        let name = props
            .entry("ApplicationName")
            .or_insert_with(|| Value::String(place.generated_name(128)));
        name.as_str().map(str::to_string)
    }

    fn read(&self, api: &Api, name: &str) -> Result<Option<Current>, ApiError> {
        let Some(d) = detail(api, name)? else {
            return Ok(None);
        };
        let mut props = Map::new();
        props.insert("ApplicationName".into(), json!(name));
        for key in ["ApplicationDescription", "ApplicationCode"] {
            if let Some(v) = d
                .get(key)
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                props.insert(key.into(), v.clone());
            }
        }
        props.insert(
            "Inputs".into(),
            d["InputDescriptions"]
                .as_array()
                .cloned()
                .map(Value::Array)
                .unwrap_or(json!([])),
        );
        let all = tags(api, &d["ApplicationARN"])?;
        Ok(Some(Current {
            props,
            known: Known {
                reference: name.to_string(),
                attributes: Map::new(),
            },
            owner: owner(&all),
            retain: super::retained(&all),
            raw: d,
        }))
    }

    fn create(
        &self,
        api: &Api,
        name: &str,
        props: &Map<String, Value>,
        place: &Place<'_>,
    ) -> Result<(), ApiError> {
        let mut input = props.clone();
        input.insert("ApplicationName".into(), json!(name));
        input.insert("Tags".into(), tag_list(&place.tags()));
        call(api, "CreateApplication", Value::Object(input))?;
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
        let mut update = Map::new();
        if changed.iter().any(|k| k == "ApplicationCode") {
            update.insert(
                "ApplicationCodeUpdate".into(),
                props.get("ApplicationCode").cloned().unwrap_or(json!("")),
            );
        }
        if changed.iter().any(|k| k == "Inputs") {
            let want = props
                .get("Inputs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let now = current.raw["InputDescriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match (now.len(), want.len()) {
                (0, _) => {
                    for input in &want {
                        call(
                            api,
                            "AddApplicationInput",
                            json!({
                                "ApplicationName": name,
                                "CurrentApplicationVersionId": version(api, name)?,
                                "Input": input,
                            }),
                        )?;
                    }
                }
                (n, m) if n == m => {
                    let mut updates = Vec::new();
                    for (i, (w, c)) in want.iter().zip(&now).enumerate() {
                        let mut u = shaped_update(w, "InputUpdate", &format!("Inputs.{i}"))?;
                        u["InputId"] = c["InputId"].clone();
                        updates.push(u);
                    }
                    update.insert("InputUpdates".into(), Value::Array(updates));
                }
                _ => {
                    return Err(refusal(format!(
                        "application {name}: an input cannot be removed in place (the API has no call for it); give the application a new name to replace it"
                    )));
                }
            }
        }
        if !update.is_empty() {
            update_application(api, name, Value::Object(update))?;
        }
        Ok(())
    }

    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        let name = current.known.reference.as_str();
        call(
            api,
            "DeleteApplication",
            json!({"ApplicationName": name, "CreateTimestamp": current.raw["CreateTimestamp"]}),
        )?;
        wait_until(
            &format!("deleting application {name}"),
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
        let arn = &current.raw["ApplicationARN"];
        if !remove.is_empty() {
            call(
                api,
                "UntagResource",
                json!({"ResourceARN": arn, "TagKeys": remove}),
            )?;
        }
        if !add.is_empty() {
            call(
                api,
                "TagResource",
                json!({"ResourceARN": arn, "Tags": tag_list(add)}),
            )?;
        }
        Ok(())
    }

    fn owned(&self, api: &Api, stack: &str) -> Result<Vec<(String, String)>, ApiError> {
        let mut out = Vec::new();
        let mut input = json!({"Limit": 50});
        loop {
            let page = call(api, "ListApplications", input.clone())?;
            let apps = page["ApplicationSummaries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for app in &apps {
                if let Some(id) = super::member_of(stack, tags(api, &app["ApplicationARN"]))? {
                    let name = app["ApplicationName"].as_str().unwrap_or_default();
                    out.push((name.to_string(), id));
                }
            }
            match (page["HasMoreApplications"] == true, apps.last()) {
                (true, Some(last))
                    if input["ExclusiveStartApplicationName"] != last["ApplicationName"] =>
                {
                    input["ExclusiveStartApplicationName"] = last["ApplicationName"].clone()
                }
                _ => return Ok(out),
            }
        }
    }
}

/// An application's part (an output or a reference data source): its
/// identity is `APPLICATION\tNAME`.
struct Part {
    /// The property holding it (`Output`, `ReferenceDataSource`).
    property: &'static str,
    /// Its name's member (`Name`, `TableName`).
    name: &'static str,
    /// ApplicationDetail's list of them and each one's id member.
    described: &'static str,
    id: &'static str,
    add: &'static str,
    remove: &'static str,
    /// ApplicationUpdate's list and its item shape.
    updates: &'static str,
    update_shape: &'static str,
}

pub static OUTPUT: Kind = Kind {
    type_name: "AWS::KinesisAnalytics::ApplicationOutput",
    properties: &[
        Prop {
            name: "ApplicationName",
            form: Form::String,
            required: true,
            replaces: true,
        },
        Prop {
            name: "Output",
            form: Form::Shape(S, "Output"),
            required: true,
            replaces: false,
        },
    ],
    attributes: &[],
    handler: &Part {
        property: "Output",
        name: "Name",
        described: "OutputDescriptions",
        id: "OutputId",
        add: "AddApplicationOutput",
        remove: "DeleteApplicationOutput",
        updates: "OutputUpdates",
        update_shape: "OutputUpdate",
    },
};

pub static REFERENCE: Kind = Kind {
    type_name: "AWS::KinesisAnalytics::ApplicationReferenceDataSource",
    properties: &[
        Prop {
            name: "ApplicationName",
            form: Form::String,
            required: true,
            replaces: true,
        },
        Prop {
            name: "ReferenceDataSource",
            form: Form::Shape(S, "ReferenceDataSource"),
            required: true,
            replaces: false,
        },
    ],
    attributes: &[],
    handler: &Part {
        property: "ReferenceDataSource",
        name: "TableName",
        described: "ReferenceDataSourceDescriptions",
        id: "ReferenceId",
        add: "AddApplicationReferenceDataSource",
        remove: "DeleteApplicationReferenceDataSource",
        updates: "ReferenceDataSourceUpdates",
        update_shape: "ReferenceDataSourceUpdate",
    },
};

fn part_of(identity: &str) -> (&str, &str) {
    identity.split_once('\t').unwrap_or((identity, ""))
}

impl Handler for Part {
    fn identity(&self, props: &mut Map<String, Value>, _place: &Place<'_>) -> Option<String> {
        let app = props.get("ApplicationName")?.as_str()?;
        let name = props.get(self.property)?.get(self.name)?.as_str()?;
        Some(format!("{app}\t{name}"))
    }

    fn read(&self, api: &Api, identity: &str) -> Result<Option<Current>, ApiError> {
        let (app, name) = part_of(identity);
        let Some(d) = detail(api, app)? else {
            return Ok(None);
        };
        let Some(part) = d[self.described]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p[self.name]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        else {
            return Ok(None);
        };
        let props = Map::from_iter([
            ("ApplicationName".into(), json!(app)),
            (self.property.into(), part.clone()),
        ]);
        Ok(Some(Current {
            props,
            known: Known {
                reference: part[self.id].as_str().unwrap_or_default().to_string(),
                attributes: Map::new(),
            },
            owner: None,
            retain: false,
            raw: part.clone(),
        }))
    }

    fn create(
        &self,
        api: &Api,
        identity: &str,
        props: &Map<String, Value>,
        _place: &Place<'_>,
    ) -> Result<(), ApiError> {
        let (app, _) = part_of(identity);
        call(
            api,
            self.add,
            json!({
                "ApplicationName": app,
                "CurrentApplicationVersionId": version(api, app)?,
                self.property: props[self.property],
            }),
        )?;
        Ok(())
    }

    fn update(
        &self,
        api: &Api,
        current: &Current,
        props: &Map<String, Value>,
        _changed: &[String],
    ) -> Result<(), ApiError> {
        let app = current.props["ApplicationName"]
            .as_str()
            .unwrap_or_default();
        let mut update = shaped_update(&props[self.property], self.update_shape, self.property)?;
        update[self.id] = json!(current.known.reference);
        update_application(api, app, json!({ self.updates: [update] }))
    }

    fn delete(&self, api: &Api, current: &Current) -> Result<(), ApiError> {
        let app = current.props["ApplicationName"]
            .as_str()
            .unwrap_or_default();
        let Some(d) = detail(api, app)? else {
            return Ok(());
        };
        match call(
            api,
            self.remove,
            json!({
                "ApplicationName": app,
                "CurrentApplicationVersionId": d["ApplicationVersionId"],
                self.id: current.known.reference,
            }),
        ) {
            Err(e) if e.is("ResourceNotFoundException") => Ok(()),
            r => r.map(|_| ()),
        }
    }
}
