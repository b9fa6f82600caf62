//! `riffle apply|diff|delete -f stack.yaml`: CloudFormation-shaped templates
//! (`Parameters`, `Resources`, `Outputs`; `Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! ...) of Kinesis streams and consumers, Firehose delivery streams,
//! Kinesis Analytics applications with their outputs and reference data,
//! and video streams, applied through the server's AWS HTTP API.
//!
//! - `yaml`: the template's text as JSON (short forms as long forms);
//! - `template`: sections, types, properties and references checked, order;
//! - `form`: property values checked and coerced (API shapes from the models);
//! - `resolve`: the functions evaluated;
//! - `kinds`: each type read, made, changed and deleted;
//! - `plan`: the steps, and their execution;
//! - `api`: the signed HTTP calls.

mod form;
mod kinds;
mod plan;
mod resolve;
mod template;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::{Common, Failure};
pub use plan::Mode;
use plan::{Action, Step};

#[derive(clap::Args, Debug)]
pub struct StackArgs {
    /// The template: YAML or JSON, CloudFormation's shape.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// The stack's name [default: the file's name without its extension].
    #[arg(long)]
    pub stack_name: Option<String>,
    /// A parameter's value, NAME=VALUE (repeat for each parameter).
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE")]
    pub parameters: Vec<String>,
    /// The server's HTTP API address (the stack's services are called there).
    #[arg(long, env = "RIFFLE_HTTP", default_value = crate::firehose_cli::DEFAULT_HTTP)]
    pub http: String,
    /// The region requests are signed for, and AWS::Region [default:
    /// AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long)]
    pub region: Option<String>,
}

pub fn run(common: &Common, args: StackArgs, mode: Mode) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| Failure {
        code: 2,
        message: format!("cannot read {}: {e}", args.file.display()),
    })?;
    let file = args.file.display().to_string();
    let refused = |e: String| Failure {
        code: 2,
        message: format!("{file}: {e}"),
    };
    let template =
        template::Template::read(&yaml::parse(&text).map_err(refused)?).map_err(refused)?;
    let explicit = args.stack_name.is_some();
    let stack = match &args.stack_name {
        Some(s) => s.clone(),
        None => args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let valid = stack.len() <= 128
        && stack.starts_with(|c: char| c.is_ascii_alphabetic())
        && stack
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(Failure {
            code: 2,
            message: format!(
                "the stack name {stack:?} is not letters, digits and hyphens starting with a letter (give --stack-name)"
            ),
        });
    }
    let api = crate::aws_http::Api::of_command(&args.http, args.region.as_deref(), common)?;
    let mut values = values(&template, &args.parameters, &stack, &api.region).map_err(&refused)?;
    if text.contains("AWS::AccountId") {
        let id = account(&api).map_err(|e| Failure {
            code: if e.unreachable { 3 } else { 1 },
            message: e.to_string(),
        })?;
        values.insert("AWS::AccountId".into(), json!(id));
    }
    plan::precheck(&template, &values).map_err(&refused)?;
    let json_out = common.json;
    let mut report = |step: &Step| {
        if !json_out {
            println!("{}", line(step, mode));
        }
    };
    let stopped = |e: plan::Stopped| Failure {
        code: if e.unreachable { 3 } else { 1 },
        message: e.message,
    };
    // An apply first runs as a diff: what it would refuse (a resource of
    // another stack, a replacement its policy forbids) stops it before
    // anything changes.
    if mode == Mode::Apply {
        plan::run(
            &api,
            &template,
            &stack,
            values.clone(),
            Mode::Diff,
            explicit,
            &mut |_| {},
        )
        .map_err(stopped)?;
    }
    let outcome =
        plan::run(&api, &template, &stack, values, mode, explicit, &mut report).map_err(stopped)?;
    let counts = count(&outcome.steps);
    if json_out {
        let outputs: serde_json::Map<String, Value> = outcome
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or(Value::Null)))
            .collect();
        let out = json!({
            "StackName": stack,
            "Changes": outcome.steps.iter().map(Step::json).collect::<Vec<_>>(),
            "Outputs": outputs,
            "Changed": counts.changed(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON serializes")
        );
        return Ok(());
    }
    println!("{}", counts.summary(&stack, mode));
    if !outcome.outputs.is_empty() {
        println!("Outputs:");
        for (name, value) in &outcome.outputs {
            let shown = match value {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "(known after apply)".into(),
            };
            println!("  {name} = {shown}");
        }
    }
    Ok(())
}

/// The parameters' values (given, else their defaults) and the pseudo parameters.
fn values(
    template: &template::Template,
    given: &[String],
    stack: &str,
    region: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let mut given_map = BTreeMap::new();
    for g in given {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| format!("--parameter {g}: expected NAME=VALUE"))?;
        if !template.parameters.contains_key(k) {
            return Err(format!(
                "--parameter {k}: the template has no such parameter"
            ));
        }
        given_map.insert(k.to_string(), v.to_string());
    }
    let mut out = BTreeMap::new();
    for (name, p) in &template.parameters {
        let value = given_map.get(name).or(p.default.as_ref()).ok_or_else(|| {
            format!("Parameters.{name}: no value (give --parameter {name}=VALUE)")
        })?;
        let checked = p
            .check(value)
            .map_err(|e| format!("Parameters.{name}: {e}"))?;
        out.insert(name.clone(), checked);
    }
    out.insert("AWS::Region".into(), json!(region));
    out.insert("AWS::StackName".into(), json!(stack));
    out.insert("AWS::Partition".into(), json!("aws"));
    out.insert("AWS::URLSuffix".into(), json!("amazonaws.com"));
    Ok(out)
}

/// The server's account: Kinesis names it in the refusal of a stream that
/// does not exist ("Stream X under account 123456789012 not found.").
fn account(api: &crate::aws_http::Api) -> Result<String, crate::aws_http::ApiError> {
    let probe = json!({"StreamName": "riffle-stack-account-probe-0"});
    let message = match api.call(
        crate::aws_http::Service::Kinesis,
        "DescribeStreamSummary",
        &probe,
    ) {
        Ok(d) => d["StreamDescriptionSummary"]["StreamARN"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Err(e) if e.is("ResourceNotFoundException") => e.message,
        Err(e) => return Err(e),
    };
    message
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 12)
        .map(str::to_string)
        .ok_or_else(|| {
            kinds::refusal("the server's account could not be learned for AWS::AccountId")
        })
}

fn line(step: &Step, mode: Mode) -> String {
    let done = mode == Mode::Diff;
    let word = match (&step.action, done) {
        (Action::Create, true) => "create",
        (Action::Create, false) => "created",
        (Action::Update(_), true) => "update",
        (Action::Update(_), false) => "updated",
        (Action::Replace(_), true) => "replace",
        (Action::Replace(_), false) => "replaced",
        (Action::Delete, true) => "delete",
        (Action::Delete, false) => "deleted",
        (Action::Unchanged, _) => "unchanged",
        (Action::Retain, true) => "retain",
        (Action::Retain, false) => "retained",
        (Action::Left, _) => "left",
    };
    let name = step
        .physical_id
        .as_deref()
        .map_or("(known after apply)".to_string(), plan::shown);
    let mut out = format!("{word:<10} {} ({}) {name}", step.logical_id, step.type_name);
    match &step.action {
        Action::Update(p) if p.is_empty() => {
            out.push_str(": an update or a replacement, known after apply")
        }
        Action::Left => out.push_str(": not in the template (give --stack-name to delete it)"),
        Action::Update(p) | Action::Replace(p) => out.push_str(&format!(": {}", p.join(", "))),
        _ => {}
    }
    out
}

#[derive(Default)]
struct Counts {
    create: usize,
    update: usize,
    replace: usize,
    delete: usize,
    unchanged: usize,
    retain: usize,
    left: usize,
}

fn count(steps: &[Step]) -> Counts {
    let mut c = Counts::default();
    for s in steps {
        match s.action {
            Action::Create => c.create += 1,
            Action::Update(_) => c.update += 1,
            Action::Replace(_) => c.replace += 1,
            Action::Delete => c.delete += 1,
            Action::Unchanged => c.unchanged += 1,
            Action::Retain => c.retain += 1,
            Action::Left => c.left += 1,
        }
    }
    c
}

impl Counts {
    fn changed(&self) -> usize {
        self.create + self.update + self.replace + self.delete + self.retain
    }

    fn summary(&self, stack: &str, mode: Mode) -> String {
        let mut out = self.counted(stack, mode);
        if self.left > 0 {
            out.push_str(&format!(
                "\n{} resource(s) stack {stack} made earlier are not in the template and were left alone: the stack's name comes from the file's; give --stack-name {stack} to delete them",
                self.left
            ));
        }
        out
    }

    fn counted(&self, stack: &str, mode: Mode) -> String {
        if mode == Mode::Delete {
            return format!(
                "stack {stack}: {} deleted, {} retained",
                self.delete, self.retain
            );
        }
        if self.changed() == 0 {
            return format!(
                "stack {stack}: no changes ({} resources as the template says)",
                self.unchanged
            );
        }
        let (a, b, c, d) = match mode {
            Mode::Diff => ("to create", "to update", "to replace", "to delete"),
            _ => ("created", "updated", "replaced", "deleted"),
        };
        let mut out = format!(
            "stack {stack}: {} {a}, {} {b}, {} {c}, {} {d}, {} unchanged",
            self.create, self.update, self.replace, self.delete, self.unchanged
        );
        if self.retain > 0 {
            out.push_str(&format!(", {} retained", self.retain));
        }
        out
    }
}
