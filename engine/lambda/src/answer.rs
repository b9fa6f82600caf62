//! What a function's answer to an invocation means (docs/lambda-design.md
//! §2.3 and §2.4): success; a function error (a status other than 2xx, no
//! answer, the `X-Amz-Function-Error` header, Lambda's error shape
//! `{"errorType", "errorMessage"}` with a 2xx status, as AWS's Runtime
//! Interface Emulator answers a handler exception, or the emulator's
//! timeout text); or, with `ReportBatchItemFailures`, a partial failure:
//! the batch resumes from the failed record lowest in shard order. The
//! success and failure answers of §2.4 are the ones AWS gave in LocalStack's
//! recordings.

use serde_json::Value;

/// The largest answer taken (AWS's 6 MB invocation payload limit).
pub const ANSWER_BYTES_MAX: usize = 6 * 1024 * 1024;

/// A function's answer as received.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub status: u16,
    /// The `X-Amz-Function-Error` header's value, if any.
    pub function_error: Option<&'a str>,
    pub body: &'a [u8],
}

/// What the answer means for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every record is done.
    Success,
    /// The whole batch failed (retried, bisected or sent to OnFailure by the
    /// mapping's rules). `function_error` is what `responseContext` reports
    /// (`Unhandled`, `Handled`, or None for a status or transport failure).
    FunctionError {
        function_error: Option<String>,
        reason: String,
    },
    /// Records before `from` (an index into the batch) are done; the batch
    /// resumes at `from`.
    Partial { from: usize },
}

fn error(function_error: Option<&str>, reason: impl Into<String>) -> Outcome {
    Outcome::FunctionError {
        function_error: function_error.map(str::to_owned),
        reason: reason.into(),
    }
}

/// Judges `answer` to a batch whose records have the sequence numbers
/// `sequence_numbers` (decimal, in shard order). `report_item_failures`:
/// the mapping's `FunctionResponseTypes` has `ReportBatchItemFailures`.
pub fn judge<S: AsRef<str>>(
    answer: &Answer<'_>,
    sequence_numbers: &[S],
    report_item_failures: bool,
) -> Outcome {
    if !(200..300).contains(&answer.status) {
        return error(
            None,
            format!("the function answered HTTP {}", answer.status),
        );
    }
    if let Some(kind) = answer.function_error {
        return error(
            Some(kind),
            format!("the function reported an error ({kind})"),
        );
    }
    if answer.body.len() > ANSWER_BYTES_MAX {
        return error(None, "the function's answer is larger than 6 MB");
    }
    if answer.body.starts_with(b"Task timed out after ") {
        return error(Some("Unhandled"), "the function timed out");
    }
    let parsed: Option<Value> = serde_json::from_slice(answer.body).ok();
    if let Some(Value::Object(o)) = &parsed
        && let (Some(Value::String(kind)), Some(Value::String(message))) =
            (o.get("errorType"), o.get("errorMessage"))
    {
        return error(Some("Unhandled"), format!("{kind}: {message}"));
    }
    if !report_item_failures {
        return Outcome::Success;
    }
    // ReportBatchItemFailures: "", [], null, {} and an empty or null list are
    // complete success.
    let body = String::from_utf8_lossy(answer.body);
    if body.trim().is_empty() {
        return Outcome::Success;
    }
    let failures = match &parsed {
        Some(Value::Null) => return Outcome::Success,
        Some(Value::Array(a)) if a.is_empty() => return Outcome::Success,
        Some(Value::Object(o)) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Outcome::Success,
            Some(Value::Array(items)) if items.is_empty() => return Outcome::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return error(None, "batchItemFailures is not a list"),
        },
        _ => return error(None, "the answer is not a batchItemFailures object"),
    };
    let mut from = usize::MAX;
    for item in failures {
        let id = match item.get("itemIdentifier") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => return error(None, "a batchItemFailures item has no itemIdentifier"),
        };
        match sequence_numbers.iter().position(|s| s.as_ref() == id) {
            Some(i) => from = from.min(i),
            None => {
                return error(
                    None,
                    format!("itemIdentifier {id} is not a record of the batch"),
                );
            }
        }
    }
    Outcome::Partial { from }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs() -> Vec<String> {
        ["101", "102", "103"].map(str::to_owned).to_vec()
    }

    fn ok(body: &str) -> Answer<'_> {
        Answer {
            status: 200,
            function_error: None,
            body: body.as_bytes(),
        }
    }

    fn is_error(o: &Outcome) -> bool {
        matches!(o, Outcome::FunctionError { .. })
    }

    #[test]
    fn function_errors() {
        let s = seqs();
        for status in [400, 429, 500, 502, 503] {
            let a = Answer { status, ..ok("{}") };
            assert!(is_error(&judge(&a, &s, false)), "{status}");
        }
        let handled = Answer {
            function_error: Some("Handled"),
            ..ok("\"fine\"")
        };
        assert_eq!(
            judge(&handled, &s, false),
            Outcome::FunctionError {
                function_error: Some("Handled".into()),
                reason: "the function reported an error (Handled)".into()
            }
        );
        // The emulator: a handler exception is 200 with Lambda's error shape.
        let exception = ok(
            r#"{"errorMessage": "division by zero", "errorType": "ZeroDivisionError", "requestId": "x", "stackTrace": []}"#,
        );
        assert!(is_error(&judge(&exception, &s, false)));
        assert!(is_error(&judge(
            &ok("Task timed out after 3.00 seconds"),
            &s,
            false
        )));
        // Data that merely has an errorMessage is not an error.
        assert_eq!(
            judge(&ok(r#"{"errorMessage": "x"}"#), &s, false),
            Outcome::Success
        );
        let huge = "x".repeat(ANSWER_BYTES_MAX + 1);
        assert!(is_error(&judge(&ok(&huge), &s, false)));
        // Anything else is success without ReportBatchItemFailures.
        for body in [
            "",
            "null",
            "not json",
            r#"{"batchItemFailures": [{"itemIdentifier": "102"}]}"#,
        ] {
            assert_eq!(judge(&ok(body), &s, false), Outcome::Success, "{body}");
        }
    }

    #[test]
    fn report_batch_item_failures_as_aws_recorded_them() {
        let s = seqs();
        for body in [
            "",
            "[]",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(judge(&ok(body), &s, true), Outcome::Success, "{body:?}");
        }
        for body in [
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": 123}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "999"}]}"#,
            r#"{"batchItemFailures": [{"foo": 123}]}"#,
            r#"{"batchItemFailures": [{"foo": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": 102}]}"#,
            r#"{"batchItemFailures": "102"}"#,
            "\"done\"",
        ] {
            assert!(is_error(&judge(&ok(body), &s, true)), "{body}");
        }
        let partial =
            r#"{"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "102"}]}"#;
        assert_eq!(judge(&ok(partial), &s, true), Outcome::Partial { from: 1 });
        let last = r#"{"batchItemFailures": [{"itemIdentifier": "103"}]}"#;
        assert_eq!(judge(&ok(last), &s, true), Outcome::Partial { from: 2 });
    }
}
