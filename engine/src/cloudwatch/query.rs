//! CloudWatch's older query protocol (what SDKs sent before JSON 1.0:
//! botocore before 1.42.7, the AWS CLI v1 of then, Java v1, Ruby v2): a form
//! (`Action=GetMetricStatistics&Version=2010-08-01&Dimensions.member.1.Name=..`)
//! in a POST body or a GET's query, answered in XML
//! (`<GetMetricStatisticsResponse><GetMetricStatisticsResult>..`). The form
//! is read into the same JSON input the JSON protocol carries, walking the
//! operation's input shape in the model (structures `A.B`, lists
//! `X.member.N` up to the first missing index, `X=` for an empty list,
//! timestamps in ISO 8601); the JSON answer is written out walking the
//! output shape (lists as `<member>`, timestamps in ISO 8601, every list
//! written even when empty, as botocore needs). Errors are `ErrorResponse`.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use riffle_aws::model::{ServiceModel, Shape, ShapeKind};
use serde_json::{Map, Number, Value};

/// CloudWatch's XML namespace.
pub const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// A form's parameters (`+` is a space; percent-decoded).
pub fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The operation's input as the JSON protocol carries it, from the form's
/// parameters (members the model does not name are left out).
pub fn input(
    model: &ServiceModel,
    shape: &Shape,
    params: &BTreeMap<String, String>,
) -> Map<String, Value> {
    match value(model, shape, "", params) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn value(
    model: &ServiceModel,
    shape: &Shape,
    prefix: &str,
    params: &BTreeMap<String, String>,
) -> Option<Value> {
    let key = |name: &str| match prefix {
        "" => name.to_string(),
        p => format!("{p}.{name}"),
    };
    match &shape.kind {
        ShapeKind::Structure {
            members,
            document: false,
        } => {
            let mut out = Map::new();
            for m in members {
                if let Some(v) = value(model, model.get(m.shape), &key(m.json_key()), params) {
                    out.insert(m.json_key().to_string(), v);
                }
            }
            (!out.is_empty() || prefix.is_empty()).then_some(Value::Object(out))
        }
        ShapeKind::Structure { document: true, .. } => None,
        ShapeKind::List { member } => {
            if params.get(prefix).is_some_and(|v| v.is_empty()) {
                return Some(Value::Array(Vec::new()));
            }
            let mut items = Vec::new();
            for i in 1.. {
                let at = format!("{prefix}.member.{i}");
                let dotted = format!("{at}.");
                let present = params.contains_key(&at)
                    || params
                        .range(dotted.clone()..)
                        .next()
                        .is_some_and(|(k, _)| k.starts_with(&dotted));
                if !present {
                    break;
                }
                items.push(value(model, model.get(*member), &at, params).unwrap_or(Value::Null));
            }
            (!items.is_empty()).then_some(Value::Array(items))
        }
        ShapeKind::Map { .. } => None,
        kind => {
            let text = params.get(prefix)?;
            Some(scalar(kind, text))
        }
    }
}

/// A scalar's text as its JSON form; text that is not of its type is kept
/// as text, for the model's checks to refuse in CloudWatch's words.
fn scalar(kind: &ShapeKind, text: &str) -> Value {
    let typed = match kind {
        ShapeKind::Integer | ShapeKind::Long => text.parse::<i64>().ok().map(Value::from),
        ShapeKind::Float | ShapeKind::Double => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        ShapeKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ShapeKind::Timestamp { .. } => riffle_protocol::time::parse_rfc3339_ms(text)
            .ok()
            .or_else(|| text.parse::<f64>().ok().map(|s| (s * 1000.0) as i64))
            .and_then(|ms| Number::from_f64(ms as f64 / 1000.0))
            .map(Value::Number),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::String(text.to_string()))
}

/// The answer of `operation` (its output `output`) as AWS writes it.
pub fn response(model: &ServiceModel, operation: &str, output: &Value, request_id: &str) -> String {
    let mut body = String::new();
    if let Some(shape) = model
        .operation(operation)
        .and_then(|o| o.output)
        .map(|id| model.get(id))
        && let ShapeKind::Structure { members, .. } = &shape.kind
    {
        for m in members {
            if let Some(v) = output.get(m.json_key()) {
                element(model, model.get(m.shape), m.json_key(), v, &mut body);
            }
        }
    }
    format!(
        "<{operation}Response xmlns=\"{XMLNS}\"><{operation}Result>{body}</{operation}Result>\
         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{operation}Response>"
    )
}

fn element(model: &ServiceModel, shape: &Shape, name: &str, v: &Value, out: &mut String) {
    match (&shape.kind, v) {
        (ShapeKind::Structure { members, .. }, Value::Object(map)) => {
            out.push_str(&format!("<{name}>"));
            for m in members {
                if let Some(inner) = map.get(m.json_key()) {
                    element(model, model.get(m.shape), m.json_key(), inner, out);
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        (ShapeKind::List { member }, Value::Array(items)) => {
            if items.is_empty() {
                out.push_str(&format!("<{name}/>"));
                return;
            }
            out.push_str(&format!("<{name}>"));
            for item in items {
                element(model, model.get(*member), "member", item, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        (ShapeKind::Timestamp { .. }, Value::Number(n)) => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            out.push_str(&format!(
                "<{name}>{}</{name}>",
                riffle_protocol::time::format_rfc3339_ms(ms)
            ));
        }
        (_, Value::Null) => {}
        (_, Value::String(s)) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        (_, other) => out.push_str(&format!("<{name}>{}</{name}>", escape(&other.to_string()))),
    }
}

/// Text as XML character data (characters XML 1.0 cannot carry dropped).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | '\n' => out.push(c),
            // A parser would read a raw CR as a LF.
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An `ErrorResponse` (`Sender` for 4xx, `Receiver` for 5xx).
pub fn error(code: &str, message: &str, sender: bool, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>",
        if sender { "Sender" } else { "Receiver" },
        escape(code),
        escape(message)
    )
}

/// The query protocol's code for a refusal the gateway makes before the
/// service (signature, IAM, body size), from its JSON kind.
pub fn gateway_code(kind: &str) -> &str {
    match kind {
        "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
        "IncompleteSignatureException" => "IncompleteSignature",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "AccessDeniedException" => "AccessDenied",
        "UnknownOperationException" => "InvalidAction",
        "SerializationException" => "InvalidParameterValue",
        other => other.strip_suffix("Exception").unwrap_or(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input_of(op: &str, text: &str) -> Value {
        let model = riffle_aws::model::monitoring();
        Value::Object(input(model, model.input(op).unwrap(), &form(text)))
    }

    #[test]
    fn forms_read_as_the_json_protocol_carries_them() {
        let v = input_of(
            "GetMetricStatistics",
            "Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FKinesis&MetricName=IncomingRecords\
             &Dimensions.member.1.Name=StreamName&Dimensions.member.1.Value=s+1\
             &StartTime=2026-01-01T00%3A00%3A00Z&EndTime=2026-01-02T00%3A00%3A00.500000Z&Period=60\
             &Statistics.member.1=Sum&Statistics.member.2=Average&Unit=Count",
        );
        assert_eq!(
            v,
            json!({"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords",
                   "Dimensions": [{"Name": "StreamName", "Value": "s 1"}],
                   "StartTime": 1767225600.0, "EndTime": 1767312000.5, "Period": 60,
                   "Statistics": ["Sum", "Average"], "Unit": "Count"})
        );
        let v = input_of(
            "GetMetricData",
            "MetricDataQueries.member.1.Id=m1&MetricDataQueries.member.1.MetricStat.Metric.Namespace=AWS%2FKinesis\
             &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=StreamName\
             &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value=s\
             &MetricDataQueries.member.1.MetricStat.Period=60&MetricDataQueries.member.1.ReturnData=true\
             &MetricDataQueries.member.2.Id=m2",
        );
        assert_eq!(
            v["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"][0]["Value"],
            "s"
        );
        assert_eq!(v["MetricDataQueries"][0]["ReturnData"], true);
        assert_eq!(v["MetricDataQueries"][1], json!({"Id": "m2"}));
        assert_eq!(
            input_of("ListMetrics", "Dimensions="),
            json!({"Dimensions": []})
        );
        // Not of its type: kept as text for the model's checks.
        assert_eq!(input_of("GetMetricStatistics", "Period=x")["Period"], "x");
    }

    #[test]
    fn answers_are_written_as_aws_writes_them() {
        let model = riffle_aws::model::monitoring();
        let xml = response(
            model,
            "GetMetricStatistics",
            &json!({"Label": "a<b", "Datapoints": [{"Timestamp": 1767225600.0, "Sum": 12.0, "Unit": "Count"}]}),
            "r1",
        );
        assert_eq!(
            xml,
            format!(
                "<GetMetricStatisticsResponse xmlns=\"{XMLNS}\"><GetMetricStatisticsResult><Label>a&lt;b</Label>\
                 <Datapoints><member><Timestamp>2026-01-01T00:00:00.000Z</Timestamp><Sum>12.0</Sum><Unit>Count</Unit></member></Datapoints>\
                 </GetMetricStatisticsResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetMetricStatisticsResponse>"
            )
        );
        let empty = response(model, "ListMetrics", &json!({"Metrics": []}), "r2");
        assert!(
            empty.contains("<ListMetricsResult><Metrics/></ListMetricsResult>"),
            "{empty}"
        );
        assert_eq!(
            form("a=%2F%zz&b"),
            BTreeMap::from([("a".into(), "/%zz".into()), ("b".into(), "".into())])
        );
    }
}
