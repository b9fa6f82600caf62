//! LOGTOJSON's log formats: the Kinesis Agent's patterns
//! (`processing/parsers/PatternConstants.java`), field names
//! (`ApacheLogParser.java`, `SysLogParser.java`) and rules, for
//! COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG, RFC3339SYSLOG,
//! and a custom `matchPattern` with `customFieldNames`.
//!
//! The patterns are Java regular expressions; here they are written for the
//! `regex` crate with Java's meanings kept: `\d \w \s \S` are ASCII as in
//! Java (not Unicode as in Rust), `.` stops at every Java line terminator
//! (`\r`, U+0085, U+2028, U+2029 as well as `\n`). A record must match the
//! whole pattern (Java's `Matcher.matches`); the leftmost-first semantics of
//! the `regex` crate pick the same groups as Java's backtracking for these
//! patterns (no back-references or look-around).

use regex::Regex;

/// Java's `.` (any character but a line terminator).
const DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
const W: &str = "[a-zA-Z_0-9]";
const S: &str = r"[ \t\n\x0B\f\r]";
const INT: &str = "(?:[+-]?(?:[0-9]+))";
const POSINT: &str = "(?:[1-9][0-9]*)";
const NONNEGINT: &str = "(?:[0-9]+)";
const NOQUOTE: &str = "[^\"]+";
const IP: &str = r"(?:[0-9\.]+)";
const USER: &str = "(?:[a-zA-Z0-9._-]+)";
const MONTHDAY: &str = "(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])";
const DAY: &str = "(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)";
const MONTH: &str = r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b";
const YEAR: &str = "(?:[1-9][0-9]*)";
const HOUR: &str = "(?:2[0123]|[01]?[0-9])";
const MINUTE: &str = "(?:[0-5][0-9])";
const SECOND: &str = r"(?:(?:[0-5]?[0-9]|60)(?:[:\.,][0-9]+)?)";
const RFC3339: &str = r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)(?:Z|(?:[-+][0-9]{2}:[0-9]{2}))";

const HOSTNAME: &str = r"(?:[a-zA-Z_0-9\-]+)(?:\.(?:[a-zA-Z_0-9\-]+))*(?:\.?|\b)";
fn iporhost() -> String {
    format!("(?:{HOSTNAME}|{IP})")
}
fn time() -> String {
    format!("(?:{HOUR}:{MINUTE}:{SECOND})")
}

fn common_apache_log() -> String {
    let httpdate = format!("(?:{MONTHDAY}/{MONTH}/{YEAR}:{}{S}{INT})", time());
    format!(
        "({}) ({USER}) ({USER}) \\[({httpdate})\\] \"({NOQUOTE})\" ({INT}|\\-) ({INT}|\\-)",
        iporhost()
    )
}

fn combined_apache_log() -> String {
    format!("{} \"({NOQUOTE})\" \"({NOQUOTE})\"", common_apache_log())
}

fn apache_error_log() -> String {
    let timestamp = format!("(?:{DAY}{S}+{MONTH}{S}+{MONTHDAY}{S}+{}{S}+{YEAR})", time());
    let urihost = format!("(?:{}(?::{POSINT})?)", iporhost());
    format!(
        "\\[({timestamp})\\] \\[(?:({W}+):)?({W}+)\\] \\[pid ({NONNEGINT})(?::tid ({NONNEGINT}))?\\] \\[client ({urihost})\\] ({DOT}*)"
    )
}

fn syslog(timestamp: &str) -> String {
    let facility = format!("<{NONNEGINT}{DOT}{NONNEGINT}>");
    let prog = r"([a-zA-Z_0-9\._/%-]+)";
    format!("({timestamp}) (?:{facility} )?({USER}) {prog}(?:\\[({POSINT})\\])?: ({DOT}*)")
}

/// A log format the agent knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    CommonApacheLog,
    CombinedApacheLog,
    ApacheErrorLog,
    Syslog,
    Rfc3339Syslog,
}

impl LogFormat {
    pub const NAMES: &[&str] = &[
        "COMMONAPACHELOG",
        "COMBINEDAPACHELOG",
        "APACHEERRORLOG",
        "SYSLOG",
        "RFC3339SYSLOG",
    ];

    pub fn from_name(name: &str) -> Option<LogFormat> {
        Some(match name {
            "COMMONAPACHELOG" => LogFormat::CommonApacheLog,
            "COMBINEDAPACHELOG" => LogFormat::CombinedApacheLog,
            "APACHEERRORLOG" => LogFormat::ApacheErrorLog,
            "SYSLOG" => LogFormat::Syslog,
            "RFC3339SYSLOG" => LogFormat::Rfc3339Syslog,
            _ => return None,
        })
    }

    fn fields(self) -> &'static [&'static str] {
        const COMMON: &[&str] = &[
            "host", "ident", "authuser", "datetime", "request", "response", "bytes",
        ];
        const COMBINED: &[&str] = &[
            "host", "ident", "authuser", "datetime", "request", "response", "bytes", "referer",
            "agent",
        ];
        const ERROR: &[&str] = &[
            "timestamp",
            "module",
            "severity",
            "processid",
            "threadid",
            "client",
            "message",
        ];
        const SYSLOG: &[&str] = &["timestamp", "hostname", "program", "processid", "message"];
        match self {
            LogFormat::CommonApacheLog => COMMON,
            LogFormat::CombinedApacheLog => COMBINED,
            LogFormat::ApacheErrorLog => ERROR,
            LogFormat::Syslog | LogFormat::Rfc3339Syslog => SYSLOG,
        }
    }

    /// The pattern, to match a whole record.
    fn pattern(self) -> String {
        match self {
            // The Apache access formats end in ".*": more fields may follow.
            LogFormat::CommonApacheLog => format!("{}{DOT}*", common_apache_log()),
            LogFormat::CombinedApacheLog => format!("{}{DOT}*", combined_apache_log()),
            LogFormat::ApacheErrorLog => apache_error_log(),
            LogFormat::Syslog => syslog(&format!("(?:{MONTH}{S}+{MONTHDAY}{S}+{})", time())),
            LogFormat::Rfc3339Syslog => syslog(RFC3339),
        }
    }

    /// The Apache parsers read a lone `-` as a missing field (null).
    fn dash_is_null(self) -> bool {
        matches!(
            self,
            LogFormat::CommonApacheLog | LogFormat::CombinedApacheLog | LogFormat::ApacheErrorLog
        )
    }
}

/// A compiled LOGTOJSON parser.
#[derive(Debug)]
pub struct LogParser {
    format: LogFormat,
    pattern: Regex,
    fields: Vec<String>,
}

impl LogParser {
    /// The parser for `format`, or for `match_pattern` (which needs
    /// `custom_fields`); `custom_fields` alone renames the format's fields
    /// (as many as it has). Errors are the agent's words.
    pub fn new(
        format: LogFormat,
        match_pattern: Option<&str>,
        custom_fields: Option<Vec<String>>,
    ) -> Result<LogParser, String> {
        if let Some(pattern) = match_pattern {
            let Some(fields) = custom_fields else {
                return Err(
                    "customFieldNames must be specified when matchPattern is specified".into(),
                );
            };
            let pattern = Regex::new(&format!(r"\A(?:{pattern})\z"))
                .map_err(|e| format!("matchPattern {pattern:?} is not a valid pattern: {e}"))?;
            return Ok(LogParser {
                format,
                pattern,
                fields,
            });
        }
        let defaults = format.fields();
        let fields = match custom_fields {
            Some(f) if f.len() != defaults.len() => {
                return Err("Invalid custom field names for the selected log format. Please modify the field names or specify the matchPattern".into());
            }
            Some(f) => f,
            None => defaults.iter().map(|s| s.to_string()).collect(),
        };
        let pattern = Regex::new(&format!(r"\A(?:{})\z", format.pattern()))
            .expect("the built-in log patterns compile");
        Ok(LogParser {
            format,
            pattern,
            fields,
        })
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The record's fields in order (`None`: null), or `None` when the record
    /// does not match (the agent then skips the record).
    pub fn parse<'r>(&self, record: &'r str) -> Option<Vec<Option<&'r str>>> {
        let caps = self.pattern.captures(record)?;
        if caps.len() - 1 != self.fields.len() {
            return None;
        }
        Some(
            (1..caps.len())
                .map(|i| {
                    let v = caps.get(i).map(|m| m.as_str());
                    match v {
                        Some("-") if self.format.dash_is_null() => None,
                        v => v,
                    }
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden cases from the agent's own tests
    // (tst/com/amazon/kinesis/streaming/agent/processing/processors/DataConverterTest.java).
    fn check(format: LogFormat, line: &str, expected: Option<&[Option<&str>]>) {
        let p = LogParser::new(format, None, None).unwrap();
        assert_eq!(p.parse(line).as_deref(), expected, "{line}");
    }

    #[test]
    fn apache_access_logs() {
        let line = "123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200 10450";
        let fields = [
            Some("123.45.67.89"),
            None,
            None,
            Some("27/Oct/2000:09:27:09 -0400"),
            Some("GET /java/javaResources.html HTTP/1.0"),
            Some("200"),
            Some("10450"),
        ];
        check(LogFormat::CommonApacheLog, line, Some(&fields));
        check(
            LogFormat::CommonApacheLog,
            &format!("{line} \"-\" \"Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)\""),
            Some(&fields),
        );
        check(
            LogFormat::CommonApacheLog,
            &line.replace("123.45.67.89", "lj1036.inktomisearch.com"),
            Some(&[
                Some("lj1036.inktomisearch.com"),
                None,
                None,
                fields[3],
                fields[4],
                fields[5],
                fields[6],
            ]),
        );
        // The response alone: not a record of this format (skipped).
        check(
            LogFormat::CommonApacheLog,
            &line.replace(" 10450", ""),
            None,
        );
        let mut combined = fields.to_vec();
        combined.extend([
            None,
            Some("Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)"),
        ]);
        check(
            LogFormat::CombinedApacheLog,
            &format!(
                "{line} \"-\" \"Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)\" \"ANY_RANDOM_DATA\""
            ),
            Some(&combined),
        );
    }

    #[test]
    fn apache_error_logs() {
        check(
            LogFormat::ApacheErrorLog,
            "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico",
            Some(&[
                Some("Fri Sep 09 10:42:29.902022 2011"),
                Some("core"),
                Some("error"),
                Some("35708"),
                Some("4328636416"),
                Some("72.15.99.187"),
                Some("File does not exist: /usr/local/apache2/htdocs/favicon.ico"),
            ]),
        );
        check(
            LogFormat::ApacheErrorLog,
            "[Fri Sep 09 10:42:29 2011] [core:error] [pid 35708] [client 72.15.99.187] File does not exist: /x",
            Some(&[
                Some("Fri Sep 09 10:42:29 2011"),
                Some("core"),
                Some("error"),
                Some("35708"),
                None,
                Some("72.15.99.187"),
                Some("File does not exist: /x"),
            ]),
        );
        check(
            LogFormat::ApacheErrorLog,
            "[Fri Sep 09 10:42:29.902022 2011] [error] [pid 35708:tid 4328636416] [client 72.15.99.187:12345] File does not exist: /x",
            Some(&[
                Some("Fri Sep 09 10:42:29.902022 2011"),
                None,
                Some("error"),
                Some("35708"),
                Some("4328636416"),
                Some("72.15.99.187:12345"),
                Some("File does not exist: /x"),
            ]),
        );
    }

    #[test]
    fn syslogs() {
        check(
            LogFormat::Syslog,
            "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds) ",
            Some(&[
                Some("Mar 12 12:00:08"),
                Some("server2"),
                Some("rcd"),
                Some("308"),
                Some("Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds) "),
            ]),
        );
        check(
            LogFormat::Syslog,
            "Mar 12 12:01:02 server4 snort: Ports to decode telnet on: 21 23 25 119",
            Some(&[
                Some("Mar 12 12:01:02"),
                Some("server4"),
                Some("snort"),
                None,
                Some("Ports to decode telnet on: 21 23 25 119"),
            ]),
        );
        // SYSLOG keeps a lone "-" (only the Apache parsers read it as null).
        check(
            LogFormat::Rfc3339Syslog,
            "2024-03-01T10:00:00.123+01:00 <1.2> host1 cron[7]: -",
            Some(&[
                Some("2024-03-01T10:00:00.123+01:00"),
                Some("host1"),
                Some("cron"),
                Some("7"),
                Some("-"),
            ]),
        );
        // Java's "." does not match "\r": a CRLF line is not a syslog record.
        check(
            LogFormat::Syslog,
            "Mar 12 12:01:02 server4 snort: x\r",
            None,
        );
    }

    #[test]
    fn custom_patterns_and_names() {
        let p = LogParser::new(
            LogFormat::CommonApacheLog,
            Some(r#"^([\d.]+) (\S+) (\S+) \[([\w:/]+\s[+\-]\d{4})\] "(.+?)" (\d{3})"#),
            Some((1..=6).map(|i| format!("column{i}")).collect()),
        )
        .unwrap();
        assert_eq!(
            p.parse("123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200"),
            Some(vec![Some("123.45.67.89"), None, None, Some("27/Oct/2000:09:27:09 -0400"), Some("GET /java/javaResources.html HTTP/1.0"), Some("200")])
        );
        assert_eq!(
            LogParser::new(LogFormat::Syslog, Some("(a)"), None).unwrap_err(),
            "customFieldNames must be specified when matchPattern is specified"
        );
        assert!(
            LogParser::new(LogFormat::Syslog, None, Some(vec!["a".into()]))
                .unwrap_err()
                .starts_with("Invalid custom field names for the selected log format")
        );
        // More groups than names: every record is skipped, as the agent does.
        let p = LogParser::new(LogFormat::Syslog, Some("(a)(b)"), Some(vec!["x".into()])).unwrap();
        assert_eq!(p.parse("ab"), None);
    }
}
