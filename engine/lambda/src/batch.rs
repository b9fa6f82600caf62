//! What happens to one batch until every record of it is done
//! (docs/lambda-design.md §4.2, §4.4): invoked; on a function error
//! bisected (BisectBatchOnFunctionError; halving is not a retry) or retried
//! after a backoff until MaximumRetryAttempts, then discarded to the
//! OnFailure destination; on a partial failure (ReportBatchItemFailures) the
//! records before the reported one are done and the rest is retried (never
//! halved); before each invocation, records older than
//! MaximumRecordAgeInSeconds are discarded, each contiguous run with its own
//! OnFailure record. Pure: the caller invokes, waits and discards as the
//! [`Step`]s say, and reports each answer.

use std::ops::Range;
use std::time::Duration;

use crate::answer::Outcome;

/// Retries back off from this, doubling, to `RETRY_MAX`.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(10);

/// The mapping's failure handling.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub bisect: bool,
    /// -1: retried until the records expire.
    pub maximum_retry_attempts: i64,
    /// None: records never expire.
    pub maximum_record_age_ms: Option<i64>,
}

/// Why records went to the OnFailure destination (the record's `condition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn aws_name(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Invoke the function with these records (indexes into the batch);
    /// then call [`Retrier::answered`].
    Invoke(Range<usize>),
    /// These records are done without success: write an OnFailure record
    /// (`invoke_count`: the invocations that included them, at least 1).
    Discard {
        records: Range<usize>,
        condition: Condition,
        invoke_count: u32,
    },
    /// Wait before the next step (a retry's backoff).
    Wait(Duration),
    /// Every record is done.
    Done,
}

#[derive(Clone, Debug)]
struct Work {
    records: Range<usize>,
    attempts: u32,
    retries: u32,
    /// A retry: back off first.
    wait_first: bool,
}

/// One batch's progress.
#[derive(Debug)]
pub struct Retrier {
    policy: Policy,
    /// What is left, the next on top.
    stack: Vec<Work>,
    in_flight: Option<Work>,
    discard: Option<Step>,
    backoff: Duration,
}

impl Retrier {
    /// A batch of `len` records.
    pub fn new(len: usize, policy: Policy) -> Retrier {
        let stack = match len {
            0 => Vec::new(),
            _ => vec![Work {
                records: 0..len,
                attempts: 0,
                retries: 0,
                wait_first: false,
            }],
        };
        Retrier {
            policy,
            stack,
            in_flight: None,
            discard: None,
            backoff: RETRY_FIRST,
        }
    }

    /// The next step at `now_ms`; `arrival_ms(i)` is record `i`'s arrival.
    pub fn next(&mut self, now_ms: i64, arrival_ms: impl Fn(usize) -> i64) -> Step {
        debug_assert!(self.in_flight.is_none(), "an invocation awaits its answer");
        if let Some(step) = self.discard.take() {
            return step;
        }
        if let Some(mut w) = self.stack.pop() {
            if w.wait_first {
                w.wait_first = false;
                let wait = self.backoff;
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
                self.stack.push(w);
                return Step::Wait(wait);
            }
            if let Some(max_age) = self.policy.maximum_record_age_ms {
                let expired = |i: &usize| now_ms.saturating_sub(arrival_ms(*i)) > max_age;
                if let Some(first) = w.records.clone().find(expired)
                    && first > w.records.start
                {
                    // The records before the expired ones go first.
                    self.stack.push(Work {
                        records: first..w.records.end,
                        ..w.clone()
                    });
                    w.records = w.records.start..first;
                } else if let Some(first) = w.records.clone().find(expired) {
                    let end = (first..w.records.end)
                        .find(|i| !expired(i))
                        .unwrap_or(w.records.end);
                    if end < w.records.end {
                        self.stack.push(Work {
                            records: end..w.records.end,
                            ..w.clone()
                        });
                    }
                    return Step::Discard {
                        records: first..end,
                        condition: Condition::RecordAgeExceeded,
                        invoke_count: w.attempts.max(1),
                    };
                }
            }
            let records = w.records.clone();
            self.in_flight = Some(w);
            return Step::Invoke(records);
        }
        Step::Done
    }

    /// The answer to the last [`Step::Invoke`].
    pub fn answered(&mut self, outcome: &Outcome) {
        let Some(mut w) = self.in_flight.take() else {
            return;
        };
        w.attempts += 1;
        match outcome {
            Outcome::Success => self.backoff = RETRY_FIRST,
            Outcome::Partial { from } => {
                let start = (w.records.start + from).min(w.records.end);
                w.records = start..w.records.end;
                self.failed(w, true);
            }
            Outcome::FunctionError { .. } => self.failed(w, false),
        }
    }

    fn failed(&mut self, mut w: Work, partial: bool) {
        if w.records.is_empty() {
            return;
        }
        if self.policy.bisect && !partial && w.records.len() > 1 {
            let mid = w.records.start + w.records.len().div_ceil(2);
            self.stack.push(Work {
                records: mid..w.records.end,
                wait_first: false,
                ..w.clone()
            });
            self.stack.push(Work {
                records: w.records.start..mid,
                wait_first: false,
                ..w
            });
            return;
        }
        w.retries += 1;
        let max = self.policy.maximum_retry_attempts;
        if max >= 0 && i64::from(w.retries) > max {
            self.discard = Some(Step::Discard {
                records: w.records,
                condition: Condition::RetryAttemptsExhausted,
                invoke_count: w.attempts,
            });
            return;
        }
        w.wait_first = true;
        self.stack.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bisect: bool, retries: i64) -> Policy {
        Policy {
            bisect,
            maximum_retry_attempts: retries,
            maximum_record_age_ms: None,
        }
    }

    fn fail() -> Outcome {
        Outcome::FunctionError {
            function_error: Some("Unhandled".into()),
            reason: "x".into(),
        }
    }

    /// Runs a batch of `len` records against `answer` (which sees each
    /// invocation's records), giving the steps taken (waits left out).
    fn run(len: usize, p: Policy, mut answer: impl FnMut(&Range<usize>) -> Outcome) -> Vec<Step> {
        let mut r = Retrier::new(len, p);
        let mut steps = Vec::new();
        for _ in 0..1000 {
            let step = r.next(0, |_| 0);
            match &step {
                Step::Done => return steps,
                Step::Invoke(range) => {
                    let outcome = answer(range);
                    r.answered(&outcome);
                }
                Step::Wait(_) => continue,
                Step::Discard { .. } => {}
            }
            steps.push(step);
        }
        panic!("no end: {steps:?}");
    }

    #[test]
    fn retries_run_out_into_one_discard() {
        let steps = run(3, policy(false, 2), |_| fail());
        assert_eq!(
            steps,
            vec![
                Step::Invoke(0..3),
                Step::Invoke(0..3),
                Step::Invoke(0..3),
                Step::Discard {
                    records: 0..3,
                    condition: Condition::RetryAttemptsExhausted,
                    invoke_count: 3
                },
            ]
        );
    }

    #[test]
    fn bisecting_finds_the_poison_record_and_does_not_count_as_a_retry() {
        // Record 5 of 8 always fails; retries 0.
        let steps = run(8, policy(true, 0), |r| match r.contains(&5) {
            true => fail(),
            false => Outcome::Success,
        });
        assert_eq!(
            steps,
            vec![
                Step::Invoke(0..8),
                Step::Invoke(0..4),
                Step::Invoke(4..8),
                Step::Invoke(4..6),
                Step::Invoke(4..5),
                Step::Invoke(5..6),
                Step::Discard {
                    records: 5..6,
                    condition: Condition::RetryAttemptsExhausted,
                    invoke_count: 4
                },
                Step::Invoke(6..8),
            ]
        );
    }

    #[test]
    fn a_partial_failure_retries_the_rest_only_and_is_not_halved() {
        // [r3, r4, r5] reports r5 (index 2) every time: retried as [r5]
        // until the retries (3) run out; 4 invocations in all.
        let steps = run(3, policy(true, 3), |r| Outcome::Partial {
            from: 2 - r.start,
        });
        assert_eq!(
            steps,
            vec![
                Step::Invoke(0..3),
                Step::Invoke(2..3),
                Step::Invoke(2..3),
                Step::Invoke(2..3),
                Step::Discard {
                    records: 2..3,
                    condition: Condition::RetryAttemptsExhausted,
                    invoke_count: 4
                },
            ]
        );
    }

    #[test]
    fn expired_records_are_discarded_in_runs_before_invoking() {
        let p = Policy {
            maximum_record_age_ms: Some(60_000),
            ..policy(false, -1)
        };
        let arrivals = [0, 0, 50_000, 0, 50_000, 50_000];
        let mut r = Retrier::new(6, p);
        let now = 100_000;
        let mut steps = Vec::new();
        loop {
            let step = r.next(now, |i| arrivals[i]);
            if step == Step::Done {
                break;
            }
            if matches!(step, Step::Invoke(_)) {
                r.answered(&Outcome::Success);
            }
            steps.push(step);
        }
        let discard = |records| Step::Discard {
            records,
            condition: Condition::RecordAgeExceeded,
            invoke_count: 1,
        };
        assert_eq!(
            steps,
            vec![
                discard(0..2),
                Step::Invoke(2..3),
                discard(3..4),
                Step::Invoke(4..6)
            ]
        );
    }

    #[test]
    fn infinite_retries_back_off_up_to_the_maximum_and_reset_on_success() {
        let mut r = Retrier::new(1, policy(false, -1));
        let mut waits = Vec::new();
        for _ in 0..10 {
            assert_eq!(r.next(0, |_| 0), Step::Invoke(0..1));
            r.answered(&fail());
            match r.next(0, |_| 0) {
                Step::Wait(w) => waits.push(w.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(r.next(0, |_| 0), Step::Invoke(0..1));
        r.answered(&Outcome::Success);
        assert_eq!(r.next(0, |_| 0), Step::Done);
        assert_eq!(Retrier::new(0, policy(false, 0)).next(0, |_| 0), Step::Done);
    }
}
