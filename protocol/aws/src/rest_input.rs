//! REST-JSON input assembly (Lambda, Video): an operation's input object built
//! from the four places a REST request carries members — URI labels, the query
//! string, headers and the JSON body — each member placed by the model's
//! `location`/`locationName`, its text converted to the member shape's type,
//! and the whole object then checked against the model as the JSON 1.1 path
//! does (`input::decode_checked`). Declared from `rest.rs`; its one entry point
//! is re-exported there as `rest::decode_checked`.
//!
//! Owns: where a member's text comes from and how text becomes a typed JSON
//! value. Does not own: routing (`rest::match_path` finds the labels), the
//! model's checks (`model`), or answering (`error::Refusal`).
//!
//! Not handled: operations whose input names a `payload` member (Lambda's
//! `Invoke`): the model parser does not read `payload`, so such a body is
//! treated as a JSON object of body members like any other.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::error::Refusal;
use crate::input::lower_first;
use crate::json::Format;
use crate::model::{Location, Member, Rules, ServiceModel, ShapeId, ShapeKind};

/// An operation's input assembled from a REST-JSON request, placed by the
/// model's `location`/`locationName` of each top-level input member, then
/// checked against the model with the service's rules: the input object a
/// REST handler starts from.
///
/// - `labels`: URI labels matched by `rest::match_path`, keyed by the
///   template's names (the members' `locationName`);
/// - `query`: the raw query string (after `?`), percent-encoded; `+` is a space;
///   keys the model does not name are ignored, as AWS ignores them;
/// - `headers`: header members by `locationName`, case-insensitively; a
///   `headers` member collects every header with its prefix (prefix stripped);
/// - `body`: a JSON object of the body members (empty: none).
///
/// Members bound outside the body are keyed by their model name, body members
/// by their JSON key (`Member::json_key`), as the model's checks read them.
/// Refusals: UnknownOperationException; SerializationException for a body
/// that is not a JSON object, a member of the wrong type, or a label, query or
/// header value that cannot be read as its shape's type; ValidationException
/// for the model's constraints.
pub fn decode_checked(
    model: &ServiceModel,
    operation: &str,
    labels: &BTreeMap<String, String>,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
    rules: &Rules<'_>,
) -> Result<Map<String, Value>, Refusal> {
    let op = model
        .operation(operation)
        .ok_or_else(Refusal::unknown_operation)?;
    let mut input = Format::Json
        .decode_object(body)
        .map_err(Refusal::serialization)?;
    let Some(input_id) = op.input else {
        return Ok(input);
    };
    let members = model.get(input_id).members();
    // A body key naming a member bound elsewhere does not stand in for it:
    // the label, query or header value is the member.
    for member in members.iter().filter(|m| m.location != Location::Body) {
        input.remove(&member.name);
    }
    let query_pairs: Vec<(String, String)> = match query {
        Some(q) => form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        None => Vec::new(),
    };
    for member in members {
        let name = member.location_name.as_deref().unwrap_or(&member.name);
        let value = match member.location {
            Location::Body | Location::StatusCode => None,
            Location::Uri => match labels.get(name) {
                Some(text) => Some(scalar(model, member, member.shape, text)?),
                None => None,
            },
            Location::QueryString => query_member(model, member, members, &query_pairs)?,
            Location::Header => header_member(model, member, headers, name)?,
            Location::Headers => prefixed_headers(model, member, headers, name)?,
        };
        if let Some(value) = value {
            input.insert(member.name.clone(), value);
        }
    }
    let input = Value::Object(input);
    model.check_input_with(operation, &input, rules)?;
    match input {
        Value::Object(map) => Ok(map),
        _ => unreachable!("built as an object"),
    }
}

/// A query-string member: a list takes every value of its key, a map every
/// pair no other member names, a scalar the first value of its key.
fn query_member(
    model: &ServiceModel,
    member: &Member,
    members: &[Member],
    pairs: &[(String, String)],
) -> Result<Option<Value>, Refusal> {
    let name = member.location_name.as_deref().unwrap_or(&member.name);
    match &model.get(member.shape).kind {
        ShapeKind::List { member: element } => {
            let items = pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| scalar(model, member, *element, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((!items.is_empty()).then_some(Value::Array(items)))
        }
        ShapeKind::Map { value, .. } => {
            let named = |key: &str| {
                members.iter().any(|m| {
                    m.location == Location::QueryString
                        && m.location_name.as_deref().unwrap_or(&m.name) == key
                })
            };
            let mut map = Map::new();
            for (k, v) in pairs.iter().filter(|(k, _)| !named(k)) {
                match &model.get(*value).kind {
                    ShapeKind::List { member: element } => {
                        let item = scalar(model, member, *element, v)?;
                        let slot = map
                            .entry(k.clone())
                            .or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(items) = slot {
                            items.push(item);
                        }
                    }
                    _ => {
                        if !map.contains_key(k) {
                            map.insert(k.clone(), scalar(model, member, *value, v)?);
                        }
                    }
                }
            }
            Ok((!map.is_empty()).then_some(Value::Object(map)))
        }
        _ => match pairs.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Ok(Some(scalar(model, member, member.shape, v)?)),
            None => Ok(None),
        },
    }
}

/// A header member: a list is the header's comma-separated values.
fn header_member(
    model: &ServiceModel,
    member: &Member,
    headers: &http::HeaderMap,
    name: &str,
) -> Result<Option<Value>, Refusal> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    let text = header_text(raw, name)?;
    match &model.get(member.shape).kind {
        ShapeKind::List { member: element } => {
            let items = text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| scalar(model, member, *element, s))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(Value::Array(items)))
        }
        _ => Ok(Some(scalar(model, member, member.shape, text)?)),
    }
}

/// A `headers` member: every header whose name starts with `prefix`, keyed by
/// the rest of its name (lower case, as HTTP/2 sends names); repeated headers
/// are joined with `,` as HTTP reads them.
fn prefixed_headers(
    model: &ServiceModel,
    member: &Member,
    headers: &http::HeaderMap,
    prefix: &str,
) -> Result<Option<Value>, Refusal> {
    let prefix = prefix.to_ascii_lowercase();
    let value_shape = match &model.get(member.shape).kind {
        ShapeKind::Map { value, .. } => *value,
        _ => member.shape,
    };
    let mut collected: BTreeMap<&str, String> = BTreeMap::new();
    for (header, raw) in headers {
        // `HeaderName`s are lower case.
        let Some(key) = header.as_str().strip_prefix(prefix.as_str()) else {
            continue;
        };
        let text = header_text(raw, header.as_str())?;
        collected
            .entry(key)
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(text);
            })
            .or_insert_with(|| text.to_owned());
    }
    if collected.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for (key, text) in collected {
        map.insert(key.to_owned(), scalar(model, member, value_shape, &text)?);
    }
    Ok(Some(Value::Object(map)))
}

/// A header's value as text: visible ASCII, as HTTP header values are.
fn header_text<'h>(raw: &'h http::HeaderValue, name: &str) -> Result<&'h str, Refusal> {
    raw.to_str().map_err(|_| {
        Refusal::serialization(format!(
            "Header '{name}' must hold visible ASCII characters only"
        ))
    })
}

/// The text of `member` (or of one element of it) read as shape `id`'s type.
/// Strings and blobs (base64, checked by the model's type pass) stay text.
fn scalar(
    model: &ServiceModel,
    member: &Member,
    id: ShapeId,
    text: &str,
) -> Result<Value, Refusal> {
    let unreadable = |java: &str| {
        Refusal::serialization(format!(
            "Value '{text}' at '{}' can not be converted to {java}",
            lower_first(&member.name)
        ))
    };
    Ok(match &model.get(id).kind {
        ShapeKind::Integer => {
            let v: i32 = text.parse().map_err(|_| unreadable("an Integer"))?;
            Value::from(v)
        }
        ShapeKind::Long => {
            let v: i64 = text.parse().map_err(|_| unreadable("a Long"))?;
            Value::from(v)
        }
        ShapeKind::Float | ShapeKind::Double => {
            let java = if matches!(model.get(id).kind, ShapeKind::Float) {
                "a Float"
            } else {
                "a Double"
            };
            let v: f64 = text.parse().map_err(|_| unreadable(java))?;
            Value::Number(Number::from_f64(v).ok_or_else(|| unreadable(java))?)
        }
        ShapeKind::Boolean => {
            if text.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if text.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                return Err(unreadable("a Boolean"));
            }
        }
        ShapeKind::Timestamp { iso8601 } => timestamp(text, *iso8601).ok_or_else(|| {
            unreadable("a timestamp (epoch seconds or ISO 8601, e.g. 2026-11-25T12:00:00Z)")
        })?,
        _ => Value::String(text.to_owned()),
    })
}

/// A timestamp given as text: an `iso8601` shape keeps valid ISO 8601 text
/// (the model's type pass takes strings there); any other shape takes epoch
/// seconds, an ISO 8601 time becoming its epoch seconds, as the JSON form of
/// the input carries them (`Input::timestamp_ms`).
fn timestamp(text: &str, iso8601: bool) -> Option<Value> {
    let ms = riffle_protocol::time::parse_rfc3339_ms(text);
    if iso8601 {
        return ms.ok().map(|_| Value::String(text.to_owned()));
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(Value::from(seconds));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Number::from_f64(seconds).map(Value::Number);
    }
    let ms = ms.ok()?;
    if ms % 1000 == 0 {
        Some(Value::from(ms / 1000))
    } else {
        Number::from_f64(ms as f64 / 1000.0).map(Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lambda;
    use serde_json::json;

    const UUID: &str = "0c8a4a3e-1b0f-4a6e-9d8f-2a1b3c4d5e6f";
    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/s1";
    const SER: &str = "SerializationException";
    const VAL: &str = "ValidationException";

    /// A REST request, built as `labels(..).query(..).headers(..).body(..)`.
    #[derive(Clone, Copy, Default)]
    struct Request<'a> {
        labels: &'a [(&'a str, &'a str)],
        query: Option<&'a str>,
        headers: &'a [(&'a str, &'a str)],
        body: &'a str,
    }

    fn labels<'a>(labels: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            labels,
            ..Request::default()
        }
    }

    fn query(q: &str) -> Request<'_> {
        Request::default().query(q)
    }

    fn body(b: &str) -> Request<'_> {
        Request::default().body(b)
    }

    impl<'a> Request<'a> {
        fn query(self, query: &'a str) -> Self {
            Request {
                query: Some(query),
                ..self
            }
        }
        fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
            Request { headers, ..self }
        }
        fn body(self, body: &'a str) -> Self {
            Request { body, ..self }
        }
    }

    fn decode(
        model: &ServiceModel,
        op: &str,
        r: Request<'_>,
    ) -> Result<Map<String, Value>, Refusal> {
        let labels = r.labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let mut headers = http::HeaderMap::new();
        for (k, v) in r.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            headers.append(name, http::HeaderValue::from_str(v).unwrap());
        }
        let body = r.body.as_bytes();
        decode_checked(
            model,
            op,
            &labels.collect(),
            r.query,
            &headers,
            body,
            &Rules::NONE,
        )
    }

    /// `op` of `model` given `r` assembles `expected`.
    fn check_ok(model: &ServiceModel, op: &str, r: Request<'_>, expected: Value) {
        let got = decode(model, op, r);
        assert_eq!(got.map(Value::Object), Ok(expected), "{op}");
    }

    /// `op` of `model` given `r` is refused (400) with `kind` and `message`.
    fn check_err(model: &ServiceModel, op: &str, r: Request<'_>, kind: &str, message: &str) {
        let got = decode(model, op, r).expect_err(op);
        let got = (got.status, got.kind.as_str(), got.message.as_str());
        assert_eq!(got, (http::StatusCode::BAD_REQUEST, kind, message), "{op}");
    }

    #[test]
    fn query_members_are_decoded_and_typed() {
        let list = |q, expected| check_ok(lambda(), "ListEventSourceMappings", query(q), expected);
        list(
            "MaxItems=3&FunctionName=f&Marker=a+b%2Bc&Unknown=1",
            json!({"MaxItems": 3, "FunctionName": "f", "Marker": "a b+c"}),
        );
        list(
            "EventSourceArn=arn%3Aaws%3Akinesis%3Aus-east-1%3A123456789012%3Astream%2Fs1",
            json!({ "EventSourceArn": ARN }),
        );
        // The first of repeated scalar values; an empty query is no members.
        list("MaxItems=5&MaxItems=7", json!({"MaxItems": 5}));
        list("", json!({}));
        check_ok(
            lambda(),
            "ListEventSourceMappings",
            Request::default(),
            json!({}),
        );
    }

    #[test]
    fn query_values_are_checked_against_the_model() {
        for (q, kind, message) in [
            (
                "MaxItems=0",
                VAL,
                "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ),
            (
                "MaxItems=10001",
                VAL,
                "1 validation error detected: Value '10001' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 10000",
            ),
            (
                "MaxItems=abc",
                SER,
                "Value 'abc' at 'maxItems' can not be converted to an Integer",
            ),
            (
                "MaxItems=",
                SER,
                "Value '' at 'maxItems' can not be converted to an Integer",
            ),
            (
                "MaxItems=1.5",
                SER,
                "Value '1.5' at 'maxItems' can not be converted to an Integer",
            ),
            (
                "MaxItems=2147483648",
                SER,
                "Value '2147483648' at 'maxItems' can not be converted to an Integer",
            ),
        ] {
            check_err(lambda(), "ListEventSourceMappings", query(q), kind, message);
        }
    }

    #[test]
    fn uri_labels_fill_members_and_meet_the_models_length() {
        let uuid = [("UUID", UUID)];
        check_ok(
            lambda(),
            "GetEventSourceMapping",
            labels(&uuid),
            json!({ "UUID": UUID }),
        );
        // An empty body is no members.
        let delete = labels(&uuid).body("");
        check_ok(
            lambda(),
            "DeleteEventSourceMapping",
            delete,
            json!({ "UUID": UUID }),
        );
        // The model: UUIDString is a string of exactly 36 characters.
        let long = format!("{UUID}0");
        for (op, uuid, message) in [
            (
                "GetEventSourceMapping",
                "abc",
                "1 validation error detected: Value 'abc' at 'uUID' failed to satisfy constraint: Member must have length greater than or equal to 36".to_string(),
            ),
            (
                "DeleteEventSourceMapping",
                &long,
                format!("1 validation error detected: Value '{long}' at 'uUID' failed to satisfy constraint: Member must have length less than or equal to 36"),
            ),
        ] {
            check_err(lambda(), op, labels(&[("UUID", uuid)]), VAL, &message);
        }
        check_err(
            lambda(),
            "GetEventSourceMapping",
            Request::default(),
            VAL,
            "1 validation error detected: Value null at 'uUID' failed to satisfy constraint: Member must not be null",
        );
    }

    #[test]
    fn body_and_label_members_combine() {
        let uuid = [("UUID", UUID)];
        // A body key naming the label member does not replace the label.
        check_ok(
            lambda(),
            "UpdateEventSourceMapping",
            labels(&uuid).body(r#"{"BatchSize": 5, "Enabled": false, "UUID": "other"}"#),
            json!({"UUID": UUID, "BatchSize": 5, "Enabled": false}),
        );
        let create = format!(r#"{{"FunctionName": "f", "EventSourceArn": "{ARN}"}}"#);
        check_ok(
            lambda(),
            "CreateEventSourceMapping",
            body(&create),
            json!({"FunctionName": "f", "EventSourceArn": ARN}),
        );
        check_err(
            lambda(),
            "UpdateEventSourceMapping",
            labels(&uuid).body(r#"{"BatchSize": 0}"#),
            VAL,
            "1 validation error detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1",
        );
    }

    #[test]
    fn bad_bodies_are_refused_as_the_json_path_refuses_them() {
        let create = "CreateEventSourceMapping";
        for b in [
            r#"{"FunctionName": "f", "BatchSize": "x"}"#,
            r#"{"FunctionName": "f", "Enabled": 1}"#,
            r#"{"FunctionName": "f""#,
            "[1]",
            "\"f\"",
        ] {
            let json_path = crate::input::decode_checked(
                lambda(),
                Format::Json,
                create,
                b.as_bytes(),
                &Rules::NONE,
            );
            let rest = decode(lambda(), create, body(b)).expect_err(b);
            assert_eq!(Err(&rest), json_path.as_ref(), "{b}");
            assert_eq!(rest.kind, SER, "{b}");
        }
        let wrong_type = body(r#"{"FunctionName": "f", "BatchSize": "x"}"#);
        let message = "class java.lang.String can not be converted to an Integer";
        check_err(lambda(), create, wrong_type, SER, message);
        check_err(
            lambda(),
            create,
            body("[1]"),
            SER,
            "Start of structure or map expected",
        );
        let invalid = labels(&[("UUID", UUID)]).body("{not json");
        let invalid = decode(lambda(), "DeleteEventSourceMapping", invalid).expect_err("invalid");
        assert_eq!(invalid.kind, SER);
        assert!(
            invalid.message.starts_with("malformed JSON: "),
            "{invalid:?}"
        );
    }

    #[test]
    fn unknown_operations_are_refused_as_the_json_path_refuses_them() {
        let got = decode(lambda(), "NoSuchOperation", Request::default());
        assert_eq!(got, Err(Refusal::unknown_operation()));
    }

    #[test]
    fn lambda_header_members_are_read_case_insensitively() {
        // Invoke also has a payload, not handled here: the body stays empty.
        let invoke = labels(&[("FunctionName", "f")]);
        check_ok(
            lambda(),
            "Invoke",
            invoke.headers(&[
                ("x-amz-invocation-type", "Event"),
                ("X-Amz-Log-Type", "Tail"),
            ]),
            json!({"FunctionName": "f", "InvocationType": "Event", "LogType": "Tail"}),
        );
        // The enum is listed in AWS's (Java hash) order, not the model's.
        check_err(
            lambda(),
            "Invoke",
            invoke.headers(&[("X-Amz-Invocation-Type", "Later")]),
            VAL,
            "1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun, Event]",
        );
    }

    /// A REST-JSON model with every location and scalar type this file reads.
    const PLACES: &str = r#"{
      "metadata": {"protocol": "rest-json", "apiVersion": "2020-01-01", "endpointPrefix": "places"},
      "operations": {
        "Put": {"name": "Put", "http": {"method": "POST", "requestUri": "/things/{Id}"},
                "input": {"shape": "PutInput"}},
        "Ping": {"name": "Ping", "http": {"method": "GET", "requestUri": "/ping"}}
      },
      "shapes": {
        "PutInput": {"type": "structure", "required": ["Id"], "members": {
          "Id": {"shape": "Count", "location": "uri", "locationName": "Id"},
          "Flag": {"shape": "Flag", "location": "querystring", "locationName": "flag"},
          "Names": {"shape": "Names", "location": "querystring", "locationName": "name"},
          "Since": {"shape": "Time", "location": "querystring", "locationName": "since"},
          "Until": {"shape": "IsoTime", "location": "header", "locationName": "X-Until"},
          "Size": {"shape": "Size", "location": "header", "locationName": "X-Size"},
          "Ratio": {"shape": "Ratio", "location": "header", "locationName": "X-Ratio"},
          "Tags": {"shape": "Names", "location": "header", "locationName": "X-Tags"},
          "Meta": {"shape": "Meta", "location": "headers", "locationName": "X-Meta-"},
          "Note": {"shape": "Name", "locationName": "note"}
        }},
        "Count": {"type": "integer", "min": 1},
        "Flag": {"type": "boolean"},
        "Names": {"type": "list", "member": {"shape": "Name"}},
        "Name": {"type": "string", "max": 5},
        "Time": {"type": "timestamp"},
        "IsoTime": {"type": "timestamp", "timestampFormat": "iso8601"},
        "Size": {"type": "long"},
        "Ratio": {"type": "double"},
        "Meta": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Name"}}
      }
    }"#;

    #[test]
    fn every_location_and_scalar_type_is_placed() {
        let model = ServiceModel::parse(PLACES).unwrap();
        let headers = [
            ("x-until", "2026-01-02T03:04:05.5Z"),
            ("X-Size", "-9000000000"),
            ("X-Ratio", "0.25"),
            ("X-Tags", "t1, t2"),
            ("X-Meta-Color", "red"),
            ("x-meta-shape", "a"),
            ("x-meta-shape", "b"),
            ("x-other", "ignored"),
        ];
        check_ok(
            &model,
            "Put",
            labels(&[("Id", "7")])
                .query("flag=TRUE&name=a&since=2026-01-02T03:04:05Z&name=b%20c&other=x")
                .headers(&headers)
                .body(r#"{"note": "hi"}"#),
            json!({
                "Id": 7,
                "Flag": true,
                "Names": ["a", "b c"],
                "Since": 1767323045,
                "Until": "2026-01-02T03:04:05.5Z",
                "Size": -9000000000i64,
                "Ratio": 0.25,
                "Tags": ["t1", "t2"],
                "Meta": {"color": "red", "shape": "a,b"},
                "note": "hi",
            }),
        );
        // Epoch seconds, whole or not.
        for (since, expected) in [
            ("since=1767323045", json!(1767323045)),
            ("since=1.5", json!(1.5)),
        ] {
            let r = labels(&[("Id", "1")]).query(since);
            check_ok(&model, "Put", r, json!({"Id": 1, "Since": expected}));
        }
        // An operation without input takes any JSON object, and no other body.
        check_ok(
            &model,
            "Ping",
            query("a=b").body(r#"{"a": 1}"#),
            json!({"a": 1}),
        );
        check_err(
            &model,
            "Ping",
            body("1"),
            SER,
            "Start of structure or map expected",
        );
    }

    #[test]
    fn unreadable_values_name_the_member() {
        let model = ServiceModel::parse(PLACES).unwrap();
        let time = "can not be converted to a timestamp (epoch seconds or ISO 8601, e.g. 2026-11-25T12:00:00Z)";
        for (id, q, headers, message) in [
            (
                "x",
                "",
                &[][..],
                "Value 'x' at 'id' can not be converted to an Integer".to_string(),
            ),
            (
                "1",
                "flag=yes",
                &[],
                "Value 'yes' at 'flag' can not be converted to a Boolean".into(),
            ),
            (
                "1",
                "since=yesterday",
                &[],
                format!("Value 'yesterday' at 'since' {time}"),
            ),
            (
                "1",
                "",
                &[("X-Until", "1767323045")],
                format!("Value '1767323045' at 'until' {time}"),
            ),
            (
                "1",
                "",
                &[("X-Size", "1e3")],
                "Value '1e3' at 'size' can not be converted to a Long".into(),
            ),
            (
                "1",
                "",
                &[("X-Ratio", "NaN")],
                "Value 'NaN' at 'ratio' can not be converted to a Double".into(),
            ),
        ] {
            let id = [("Id", id)];
            let r = labels(&id).query(q).headers(headers);
            check_err(&model, "Put", r, SER, &message);
        }
        // Constraints reach members from every place, each under its own name.
        check_err(
            &model,
            "Put",
            labels(&[("Id", "0")])
                .query("name=toolong")
                .headers(&[("X-Meta-K", "toolong")]),
            VAL,
            "3 validation errors detected: Value '0' at 'id' failed to satisfy constraint: Member must have value greater than or equal to 1; Value '[toolong]' at 'names' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 5]; Value '{k=toolong}' at 'meta' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 5]",
        );
    }

    #[test]
    fn header_values_must_be_visible_ascii() {
        let model = ServiceModel::parse(PLACES).unwrap();
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes("é".as_bytes()).unwrap();
        headers.insert("x-meta-k", value);
        let labels = [("Id".to_string(), "1".to_string())].into();
        let got = decode_checked(&model, "Put", &labels, None, &headers, b"", &Rules::NONE);
        let message = "Header 'x-meta-k' must hold visible ASCII characters only";
        assert_eq!(got, Err(Refusal::serialization(message)));
    }
}
