//! IAM's policy language: a policy document parsed and checked
//! ([`Policy::parse`]: a malformed one is refused with a message naming the
//! offending node, never a panic), and a request decided the way IAM's
//! evaluation logic documents it ([`evaluate`]: an explicit deny wins, then
//! an allow from an identity policy or a resource policy, else an implicit
//! deny; a principal of another account needs both).
//!
//! Served: `Version`, `Id`, `Statement` (one or a list), `Sid`, `Effect`,
//! `Principal` / `NotPrincipal` (`"*"` or `{"AWS": ...}`: account ids, root
//! and user ARNs), `Action` / `NotAction` (`service:Operation`, `*` and `?`
//! wildcards, case-insensitive), `Resource` / `NotResource` (ARNs with `*`
//! and `?`), `Condition` with the string, ARN, IP address, bool, numeric and
//! `Null` operators, `...IfExists`, and `ForAnyValue:` / `ForAllValues:`
//! for multi-valued keys (`aws:TagKeys`). Pure: no clock, no I/O.

mod eval;
mod parse;

pub use eval::{Blame, Cidr, Context, Decision, Request, blame, evaluate};
pub use parse::PolicyError;

/// A parsed policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

/// `Allow` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Patterns a value must match (`Action`, `Resource`, `Principal`), or
/// must not (`NotAction`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    Any(Vec<String>),
    NoneOf(Vec<String>),
}

/// One statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// Resource policies only: whom it is about (`None` in identity policies).
    pub principal: Option<Matcher>,
    pub action: Matcher,
    /// `None`: a resource policy's statement without one (its resource).
    pub resource: Option<Matcher>,
    pub conditions: Vec<Condition>,
}

/// How a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnNotEquals,
    ArnLike,
    ArnNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Null,
}

/// `ForAnyValue:` / `ForAllValues:` before an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// One condition: a key compared with its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub qualifier: SetQualifier,
    /// `...IfExists`: true when the key is not in the request.
    pub if_exists: bool,
    /// As written (keys compare case-insensitively).
    pub key: String,
    pub values: Vec<String>,
}

/// `*` (any run of characters) and `?` (one character) against `value`;
/// `fold`: case-insensitive (actions).
pub fn wildcard_match(pattern: &str, value: &str, fold: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let eq = |a: char, b: char| {
        if fold {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    // Greedy with backtracking to the last `*`: linear in practice,
    // quadratic at worst (patterns are short).
    let (mut i, mut j) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && eq(p[i], v[j]))) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests;
