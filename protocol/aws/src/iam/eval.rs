//! Deciding a request against policies, as IAM's evaluation logic
//! documents it for a request within one account, and across accounts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Condition, Effect, Matcher, Operator, Policy, SetQualifier, wildcard_match};

/// What a request is, as policies see it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `arn:aws:iam::ACCOUNT:user/NAME`.
    pub principal: &'a str,
    pub principal_account: &'a str,
    /// `kinesis:PutRecord`.
    pub action: &'a str,
    /// The resource's ARN (`*` for actions on no resource, as ListStreams).
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_account: &'a str,
    pub context: &'a Context,
}

/// The request's condition keys (`aws:SourceIp`, `aws:ResourceTag/env`,
/// `aws:TagKeys`, ...), by lower-cased name; multi-valued keys hold
/// several values.
#[derive(Clone, Debug, Default)]
pub struct Context {
    keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets a key (its name compares case-insensitively).
    pub fn set(&mut self, key: &str, values: Vec<String>) -> &mut Context {
        self.keys.insert(key.to_ascii_lowercase(), values);
        self
    }

    fn get(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement denied it.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
}

/// What one set of policies says of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Says {
    allow: bool,
    deny: bool,
}

fn says<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    r: &Request<'_>,
    resource: bool,
) -> Says {
    let mut out = Says::default();
    for p in policies {
        for s in &p.statements {
            let principal_ok = match (&s.principal, resource) {
                (Some(m), true) => matches(m, |pat| principal_match(pat, r)),
                (None, false) => true,
                _ => false,
            };
            let applies = principal_ok
                && matches(&s.action, |pat| wildcard_match(pat, r.action, true))
                && s.resource
                    .as_ref()
                    .is_none_or(|m| matches(m, |pat| wildcard_match(pat, r.resource, false)))
                && s.conditions.iter().all(|c| condition(c, r.context));
            if applies {
                match s.effect {
                    Effect::Allow => out.allow = true,
                    Effect::Deny => out.deny = true,
                }
            }
        }
    }
    out
}

fn matches(m: &Matcher, hit: impl Fn(&str) -> bool) -> bool {
    match m {
        Matcher::Any(p) => p.iter().any(|p| hit(p)),
        Matcher::NoneOf(p) => !p.iter().any(|p| hit(p)),
    }
}

/// A resource policy's principal: `*`, the principal's ARN, or its
/// account's root (which stands for every identity of the account).
fn principal_match(pattern: &str, r: &Request<'_>) -> bool {
    pattern == "*"
        || wildcard_match(pattern, r.principal, false)
        || pattern == format!("arn:aws:iam::{}:root", r.principal_account)
}

/// Decides `r` given the principal's identity policies and the resource's
/// policy, if any. Within one account an allow from either suffices; a
/// principal of another account needs an allow from both (IAM's
/// cross-account rule). An explicit deny in either wins.
pub fn evaluate(
    identity: &[&Policy],
    resource_policy: Option<&Policy>,
    r: &Request<'_>,
) -> Decision {
    let by_identity = says(identity.iter().copied(), r, false);
    let by_resource = resource_policy.map_or(Says::default(), |p| says([p], r, true));
    if by_identity.deny || by_resource.deny {
        return Decision::ExplicitDeny;
    }
    let allowed = if r.principal_account == r.resource_account {
        by_identity.allow || by_resource.allow
    } else {
        by_identity.allow && by_resource.allow
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Which kind of policy a refusal is owed to, for its message (AWS names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// An identity policy denies it, or none allows it.
    Identity,
    /// Only the resource's policy denies it, or (across accounts) the
    /// identity allows it and the resource's policy does not.
    Resource,
}

/// Who refused a request [`evaluate`] does not allow.
pub fn blame(identity: &[&Policy], resource_policy: Option<&Policy>, r: &Request<'_>) -> Blame {
    let by_identity = says(identity.iter().copied(), r, false);
    let by_resource = resource_policy.map_or(Says::default(), |p| says([p], r, true));
    let resource_denies = !by_identity.deny && by_resource.deny;
    let cross_account_unallowed = r.principal_account != r.resource_account
        && by_identity.allow
        && !by_resource.allow
        && !by_identity.deny;
    if resource_denies || cross_account_unallowed {
        Blame::Resource
    } else {
        Blame::Identity
    }
}

fn condition(c: &Condition, context: &Context) -> bool {
    use Operator::*;
    let present = context.get(&c.key).filter(|v| !v.is_empty());
    if c.operator == Null {
        // "true": the key must be absent.
        let want_absent = c.values.iter().any(|v| v == "true");
        return want_absent == present.is_none();
    }
    let Some(values) = present else {
        return c.if_exists
            || c.qualifier == SetQualifier::ForAllValues
            || (c.qualifier == SetQualifier::Single && negated(c.operator));
    };
    let one = |v: &str| test(c.operator, v, &c.values);
    match c.qualifier {
        // A negated operator holds when no value matches the policy's.
        SetQualifier::Single if negated(c.operator) => values.iter().all(|v| one(v)),
        SetQualifier::Single | SetQualifier::ForAnyValue => values.iter().any(|v| one(v)),
        SetQualifier::ForAllValues => values.iter().all(|v| one(v)),
    }
}

fn negated(op: Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        StringNotEquals
            | StringNotEqualsIgnoreCase
            | StringNotLike
            | ArnNotEquals
            | ArnNotLike
            | NotIpAddress
            | NumericNotEquals
    )
}

/// Whether one request value passes the operator against the policy's
/// values (any of them; for a negated operator, none of them).
fn test(op: Operator, value: &str, wanted: &[String]) -> bool {
    use Operator::*;
    let any = |f: &dyn Fn(&str) -> bool| wanted.iter().any(|w| f(w));
    let number = |s: &str| s.parse::<f64>().ok();
    let numeric = |f: fn(f64, f64) -> bool| {
        number(value).is_some_and(|v| any(&|w| number(w).is_some_and(|w| f(v, w))))
    };
    match op {
        StringEquals | ArnEquals => any(&|w| w == value),
        StringNotEquals | ArnNotEquals => !any(&|w| w == value),
        StringEqualsIgnoreCase => any(&|w| w.eq_ignore_ascii_case(value)),
        StringNotEqualsIgnoreCase => !any(&|w| w.eq_ignore_ascii_case(value)),
        StringLike | ArnLike => any(&|w| wildcard_match(w, value, false)),
        StringNotLike | ArnNotLike => !any(&|w| wildcard_match(w, value, false)),
        IpAddress => value
            .parse::<IpAddr>()
            .is_ok_and(|ip| any(&|w| Cidr::parse(w).is_some_and(|c| c.contains(ip)))),
        NotIpAddress => !value
            .parse::<IpAddr>()
            .is_ok_and(|ip| any(&|w| Cidr::parse(w).is_some_and(|c| c.contains(ip)))),
        Bool => any(&|w| w.eq_ignore_ascii_case(value)),
        NumericEquals => numeric(|a, b| a == b),
        NumericNotEquals => !numeric(|a, b| a == b),
        NumericLessThan => numeric(|a, b| a < b),
        NumericLessThanEquals => numeric(|a, b| a <= b),
        NumericGreaterThan => numeric(|a, b| a > b),
        NumericGreaterThanEquals => numeric(|a, b| a >= b),
        Null => false,
    }
}

/// An IP address range (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    bits: u32,
    v6: bool,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let (value, width, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, false),
            IpAddr::V6(v6) => (u128::from(v6), 128, true),
        };
        let bits = bits.unwrap_or(width);
        if bits > width {
            return None;
        }
        Some(Cidr {
            net: value & mask(bits, width),
            bits,
            v6,
        })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 address seen as IPv6 (::ffff:a.b.c.d) is the IPv4 one.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (value, width, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, false),
            IpAddr::V6(v6) => (u128::from(v6), 128, true),
        };
        v6 == self.v6 && value & mask(self.bits, width) == self.net
    }
}

/// The top `bits` of a `width`-bit address.
fn mask(bits: u32, width: u32) -> u128 {
    if bits == 0 {
        0
    } else {
        let all: u128 = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        all & !((1u128 << (width - bits)) - 1)
    }
}
