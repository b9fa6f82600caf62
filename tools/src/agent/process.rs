//! `dataProcessingOptions`: the Kinesis Agent's record converters, with the
//! bytes they produce (`processing/processors/*.java`, printed by Jackson:
//! `processing/utils/SimpleJSONPrinter.java`, `PrettyJSONPrinter.java`).
//!
//! - SINGLELINE: the lines joined, each trimmed (Java's `String.trim`) unless
//!   `parseOptions` has NO_TRIM, joined with nothing or, with
//!   ESCAPE_NEW_LINE, with the three characters `\\n`; then a newline.
//! - CSVTOJSON: the record (its last newline off) split by `delimiter` (a
//!   Java pattern, default `,`, with Java's `String.split` rules: trailing
//!   empty fields dropped), one JSON member per `customFieldNames` entry,
//!   missing columns null, extra columns dropped; then a newline.
//! - LOGTOJSON: `logformat`'s parsers; a record that does not match is skipped.
//! - ADDMETADATA: `{"ts"?, "metadata", "data"}`; `ts` (when `timestamp` is
//!   "true") is the UTC time `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`.
//! - ADDBRACKETS: `{` + record + `}`.
//!
//! Options apply in order; a converter's error sends the record as read
//! (the agent's "falling back to raw data").
//! ADDEC2METADATA and USINGPLUGGIN (EC2 instance metadata, Java plug-ins) are
//! refused: Riffle's agent has neither.

use regex::Regex;

use super::config::{Obj, pattern};
use super::json::{self, Json, Out};
use super::logformat::{LogFormat, LogParser};

const OPTION_NAMES: &[&str] = &[
    "ADDMETADATA",
    "ADDEC2METADATA",
    "SINGLELINE",
    "CSVTOJSON",
    "LOGTOJSON",
    "ADDBRACKETS",
    "USINGPLUGGIN",
];

/// One data processing option.
#[derive(Debug)]
pub enum Converter {
    SingleLine {
        no_trim: bool,
        escape_new_line: bool,
    },
    CsvToJson {
        fields: Vec<String>,
        delimiter: Regex,
        pretty: bool,
    },
    LogToJson {
        parser: LogParser,
        pretty: bool,
    },
    AddMetadata {
        metadata: Json,
        timestamp: bool,
        pretty: bool,
    },
    AddBrackets,
}

fn json_format(o: &Obj<'_>) -> Result<bool, String> {
    Ok(o.enumeration("jsonFormat", &["COMPACT", "PRETTYPRINT"])? == Some(1))
}

impl Converter {
    /// An entry of `dataProcessingOptions`; `at` prefixes key names in errors.
    pub fn from_config(v: &Json, at: &str) -> Result<Converter, String> {
        let o = Obj::of(v, "a data processing option")?;
        let name = o
            .enumeration("optionName", OPTION_NAMES)?
            .ok_or("Required configuration value missing: optionName")?;
        let keys: &[&str] = match OPTION_NAMES[name] {
            "SINGLELINE" => &["optionName", "parseOptions"],
            "CSVTOJSON" => &["optionName", "customFieldNames", "delimiter", "jsonFormat"],
            "LOGTOJSON" => &[
                "optionName",
                "logFormat",
                "matchPattern",
                "customFieldNames",
                "jsonFormat",
            ],
            "ADDMETADATA" => &["optionName", "metadata", "timestamp", "jsonFormat"],
            "ADDBRACKETS" => &["optionName"],
            other => {
                return Err(format!(
                    "optionName {other} is not supported by Riffle's agent (it needs the Java agent's EC2 metadata or plug-ins)"
                ));
            }
        };
        o.check_keys(keys, &[], at)?;
        Ok(match OPTION_NAMES[name] {
            "SINGLELINE" => {
                let options = o.strings("parseOptions")?.unwrap_or_default();
                Converter::SingleLine {
                    no_trim: options.iter().any(|s| s == "NO_TRIM"),
                    escape_new_line: options.iter().any(|s| s == "ESCAPE_NEW_LINE"),
                }
            }
            "CSVTOJSON" => Converter::CsvToJson {
                fields: o
                    .strings("customFieldNames")?
                    .ok_or("Required list missing: customFieldNames")?,
                delimiter: pattern(
                    "delimiter",
                    &o.string("delimiter")?.unwrap_or_else(|| ",".into()),
                    "{}",
                )?,
                pretty: json_format(&o)?,
            },
            "LOGTOJSON" => {
                let format = o
                    .enumeration("logFormat", LogFormat::NAMES)?
                    .ok_or("Required configuration value missing: logFormat")?;
                let format = LogFormat::from_name(LogFormat::NAMES[format]).expect("a listed name");
                let parser = LogParser::new(
                    format,
                    o.string("matchPattern")?.as_deref(),
                    o.strings("customFieldNames")?,
                )?;
                Converter::LogToJson {
                    parser,
                    pretty: json_format(&o)?,
                }
            }
            "ADDMETADATA" => Converter::AddMetadata {
                metadata: o.get("metadata").cloned().unwrap_or(Json::Null),
                // `new Boolean((String) ...)`: the text "true", any case.
                timestamp: match o.get("timestamp") {
                    Some(Json::Bool(b)) => *b,
                    Some(Json::Str(s)) => s.eq_ignore_ascii_case("true"),
                    _ => false,
                },
                pretty: json_format(&o)?,
            },
            _ => Converter::AddBrackets,
        })
    }

    /// Converts a record: `Ok(None)` skips it (LOGTOJSON, no match);
    /// `now_ms` is ADDMETADATA's `ts`.
    pub fn convert(&self, data: &[u8], now_ms: i64) -> Result<Option<Vec<u8>>, String> {
        let text = String::from_utf8_lossy(data);
        let mut out = String::with_capacity(data.len() + 64);
        match self {
            Converter::SingleLine {
                no_trim,
                escape_new_line,
            } => {
                let lines = java_split(&text, text.match_indices('\n').map(|(i, _)| (i, i + 1)));
                let join = if *escape_new_line { "\\\\n" } else { "" };
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        out.push_str(join);
                    }
                    out.push_str(if *no_trim { line } else { java_trim(line) });
                }
            }
            Converter::CsvToJson {
                fields,
                delimiter,
                pretty,
            } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let columns = java_split(
                    line,
                    delimiter.find_iter(line).map(|m| (m.start(), m.end())),
                );
                let members: Vec<(&str, Out<'_>)> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.as_str(), Out::Str(columns.get(i).copied())))
                    .collect();
                json::write_object(&mut out, &members, *pretty);
            }
            Converter::LogToJson { parser, pretty } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let Some(values) = parser.parse(line) else {
                    return Ok(None);
                };
                let members: Vec<(&str, Out<'_>)> = parser
                    .fields()
                    .iter()
                    .zip(values)
                    .map(|(f, v)| (f.as_str(), Out::Str(v)))
                    .collect();
                json::write_object(&mut out, &members, *pretty);
            }
            Converter::AddMetadata {
                metadata,
                timestamp,
                pretty,
            } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let ts = riffle_protocol::time::format_rfc3339_ms(now_ms);
                let mut members = Vec::with_capacity(3);
                if *timestamp {
                    members.push(("ts", Out::Str(Some(ts.as_str()))));
                }
                members.push(("metadata", Out::Json(metadata)));
                members.push(("data", Out::Str(Some(line))));
                json::write_object(&mut out, &members, *pretty);
            }
            Converter::AddBrackets => {
                out.push('{');
                out.push_str(&text);
                out.push('}');
                return Ok(Some(out.into_bytes()));
            }
        }
        out.push('\n');
        Ok(Some(out.into_bytes()))
    }
}

/// Applies `converters` in order (the agent's `AgentDataConverterChain`).
pub fn convert_all(
    converters: &[Converter],
    data: &[u8],
    now_ms: i64,
) -> Result<Option<Vec<u8>>, String> {
    let mut current: Option<Vec<u8>> = None;
    for c in converters {
        let input = current.as_deref().unwrap_or(data);
        match c.convert(input, now_ms)? {
            Some(next) => current = Some(next),
            None => return Ok(None),
        }
    }
    Ok(Some(current.unwrap_or_else(|| data.to_vec())))
}

/// Java's `String.split(regex)` given the delimiter matches: a zero-width
/// match at the start makes no leading field; trailing empty fields go.
fn java_split(s: &str, matches: impl Iterator<Item = (usize, usize)>) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    for (start, end) in matches {
        if end == 0 {
            continue; // a zero-width match at the beginning
        }
        out.push(&s[from..start]);
        from = end;
    }
    out.push(&s[from..]);
    while out.len() > 1 && out.last().is_some_and(|f| f.is_empty()) {
        out.pop();
    }
    if out.len() == 1 && out[0].is_empty() && !s.is_empty() {
        out.clear(); // every field was empty: Java gives an empty array
    }
    out
}

/// Java's `String.trim`: every character up to U+0020 off both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter(config: &str) -> Converter {
        Converter::from_config(&json::parse(config).unwrap(), "").unwrap()
    }

    fn check(config: &str, input: &str, expected: Option<&str>) {
        let c = converter(config);
        let out = c.convert(input.as_bytes(), 1_700_000_000_123).unwrap();
        assert_eq!(
            out.as_deref().map(|b| std::str::from_utf8(b).unwrap()),
            expected,
            "{config} on {input:?}"
        );
    }

    // The golden bytes below are the agent's own expectations, from
    // tst/com/amazon/kinesis/streaming/agent/processing/processors/DataConverterTest.java
    // (amazon-kinesis-agent 2.0.13), unless marked as derived from the Java code.

    #[test]
    fn singleline() {
        let input = "{\n   \"a\": {\n           \"b\": 1,\n           \"c\": null,\n           \"d\": true\n    },\n   \"e\": \"f\",\n   \"g\": 2\n     }\n";
        check(
            r#"{"optionName": "SINGLELINE", "parseOptions": ["ESCAPE_NEW_LINE"]}"#,
            input,
            Some(
                "{\\\\n\"a\": {\\\\n\"b\": 1,\\\\n\"c\": null,\\\\n\"d\": true\\\\n},\\\\n\"e\": \"f\",\\\\n\"g\": 2\\\\n}\n",
            ),
        );
        // Derived from SingleLineDataConverter.java: trimmed, joined with nothing.
        check(
            r#"{"optionName": "SINGLELINE"}"#,
            " a \n\tb\n\n",
            Some("ab\n"),
        );
        check(
            r#"{"optionName": "SINGLELINE", "parseOptions": ["NO_TRIM"]}"#,
            " a \n\tb\n",
            Some(" a \tb\n"),
        );
    }

    #[test]
    fn csvtojson() {
        let four = r#"{"optionName": "CSVTOJSON", "customFieldNames": ["column1", "column2", "column3", "column4"]}"#;
        check(
            four,
            "value1, value2,valu\ne3,    value4\n",
            Some(
                "{\"column1\":\"value1\",\"column2\":\" value2\",\"column3\":\"valu\\ne3\",\"column4\":\"    value4\"}\n",
            ),
        );
        check(
            four,
            "value1, value2,value3\n",
            Some(
                "{\"column1\":\"value1\",\"column2\":\" value2\",\"column3\":\"value3\",\"column4\":null}\n",
            ),
        );
        check(
            four,
            "value1,value2,value3,value4,value5\n",
            Some(
                "{\"column1\":\"value1\",\"column2\":\"value2\",\"column3\":\"value3\",\"column4\":\"value4\"}\n",
            ),
        );
        check(
            r#"{"optionName": "CSVTOJSON", "customFieldNames": ["column1", "column2", "column3", "column4"], "delimiter": "\\t"}"#,
            "value1\t value2\tvalue3\t    value4\n",
            Some(
                "{\"column1\":\"value1\",\"column2\":\" value2\",\"column3\":\"value3\",\"column4\":\"    value4\"}\n",
            ),
        );
        // Derived from String.split: trailing empty fields are dropped (null),
        // inner ones kept; the delimiter is a pattern.
        check(
            four,
            "a,,b,\n",
            Some("{\"column1\":\"a\",\"column2\":\"\",\"column3\":\"b\",\"column4\":null}\n"),
        );
        check(
            r#"{"optionName": "CSVTOJSON", "customFieldNames": ["x", "y"], "delimiter": "[;|]"}"#,
            "1|2\n",
            Some("{\"x\":\"1\",\"y\":\"2\"}\n"),
        );
        check(
            r#"{"optionName": "CSVTOJSON", "customFieldNames": ["x"], "jsonFormat": "PRETTYPRINT"}"#,
            "1\n",
            Some("{\n  \"x\" : \"1\"\n}\n"),
        );
    }

    #[test]
    fn logtojson() {
        check(
            r#"{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}"#,
            "123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200 10450 \"-\" \"Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)\" \"ANY_RANDOM_DATA\"",
            Some(
                "{\"host\":\"123.45.67.89\",\"ident\":null,\"authuser\":null,\"datetime\":\"27/Oct/2000:09:27:09 -0400\",\"request\":\"GET /java/javaResources.html HTTP/1.0\",\"response\":\"200\",\"bytes\":\"10450\",\"referer\":null,\"agent\":\"Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)\"}\n",
            ),
        );
        check(
            r#"{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG", "customFieldNames": ["column1", "column2", "column3", "column4", "column5", "column6", "column7"]}"#,
            "123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200 10450\n",
            Some(
                "{\"column1\":\"123.45.67.89\",\"column2\":null,\"column3\":null,\"column4\":\"27/Oct/2000:09:27:09 -0400\",\"column5\":\"GET /java/javaResources.html HTTP/1.0\",\"column6\":\"200\",\"column7\":\"10450\"}\n",
            ),
        );
        check(
            r#"{"optionName": "LOGTOJSON", "logFormat": "SYSLOG"}"#,
            "Mar 12 12:01:02 server4 snort: Ports to decode telnet on: 21 23 25 119\n",
            Some(
                "{\"timestamp\":\"Mar 12 12:01:02\",\"hostname\":\"server4\",\"program\":\"snort\",\"processid\":null,\"message\":\"Ports to decode telnet on: 21 23 25 119\"}\n",
            ),
        );
        check(
            r#"{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}"#,
            "123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200",
            None,
        );
    }

    #[test]
    fn addmetadata_and_brackets() {
        check(
            r#"{"optionName": "ADDMETADATA", "metadata": {"foo": {"bar": "bas"}, "key": "value"}}"#,
            "This is the data",
            Some(
                "{\"metadata\":{\"foo\":{\"bar\":\"bas\"},\"key\":\"value\"},\"data\":\"This is the data\"}\n",
            ),
        );
        // Derived from AddMetadataConverter.java: "ts" first, the newline off
        // the data and put back after the JSON; metadata in file order.
        check(
            r#"{"optionName": "ADDMETADATA", "timestamp": "true", "metadata": {"z": 1.5e0, "a": [1, "x"]}}"#,
            "line\n",
            Some(
                "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"metadata\":{\"z\":1.5,\"a\":[1,\"x\"]},\"data\":\"line\"}\n",
            ),
        );
        check(
            r#"{"optionName": "ADDBRACKETS"}"#,
            "hello there!! :)",
            Some("{hello there!! :)}"),
        );
    }

    #[test]
    fn chains_apply_in_order_and_stop_on_skip() {
        let chain = [
            converter(r#"{"optionName": "CSVTOJSON", "customFieldNames": ["a", "b"]}"#),
            converter(r#"{"optionName": "ADDMETADATA", "metadata": "m"}"#),
        ];
        assert_eq!(
            convert_all(&chain, b"1,2\n", 0).unwrap().unwrap(),
            b"{\"metadata\":\"m\",\"data\":\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":\\\"2\\\"}\"}\n"
        );
        let skip = [converter(
            r#"{"optionName": "LOGTOJSON", "logFormat": "SYSLOG"}"#,
        )];
        assert_eq!(convert_all(&skip, b"not a syslog line\n", 0).unwrap(), None);
        assert_eq!(convert_all(&[], b"raw\n", 0).unwrap().unwrap(), b"raw\n");
    }

    #[test]
    fn option_errors() {
        for (config, expected) in [
            (
                r#"{"optionName": "CSVTOJSON"}"#,
                "Required list missing: customFieldNames",
            ),
            (
                r#"{"optionName": "LOGTOJSON"}"#,
                "Required configuration value missing: logFormat",
            ),
            (
                r#"{"optionName": "LOGTOJSON", "logFormat": "NGINX"}"#,
                "Value(NGINX) is not legally accepted by key: logFormat. Legal values are COMMONAPACHELOG,COMBINEDAPACHELOG,APACHEERRORLOG,SYSLOG,RFC3339SYSLOG",
            ),
            (
                r#"{"optionName": "CSVTOJSON", "customFieldNames": ["a"], "jsonFormat": "YAML"}"#,
                "Value(YAML) is not legally accepted by key: jsonFormat. Legal values are COMPACT,PRETTYPRINT",
            ),
            (
                r#"{"optionName": "ADDEC2METADATA"}"#,
                "optionName ADDEC2METADATA is not supported",
            ),
            (
                r#"{"optionName": "SINGLELINE", "x": 1}"#,
                "Unknown configuration key: x",
            ),
        ] {
            let e = Converter::from_config(&json::parse(config).unwrap(), "").unwrap_err();
            assert!(e.starts_with(expected), "{config}: {e}");
        }
    }

    #[test]
    fn java_split_rules() {
        let split = |s: &str, d: &str| {
            let re = Regex::new(d).unwrap();
            java_split(s, re.find_iter(s).map(|m| (m.start(), m.end())))
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(split("a,b,,", ","), ["a", "b"]);
        assert_eq!(split(",a", ","), ["", "a"]);
        assert_eq!(split("", ","), [""]);
        assert_eq!(split(",,", ","), Vec::<String>::new());
        assert_eq!(split("abc", ""), ["a", "b", "c"]);
    }
}
