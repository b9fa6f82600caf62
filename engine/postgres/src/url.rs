//! `ClusterJDBCURL` read: where the database is and how to reach it.
//!
//! Accepted: `jdbc:redshift://host:port/db` (AWS's pattern for the field; port
//! 5439 by default) and `jdbc:postgresql://host[:port]/db[?params]` (5432 by
//! default). Hosts may be names, IPv4 or `[IPv6]`. Parameters: `sslmode`
//! `disable`/`allow`/`prefer` are served without TLS; `require`, `verify-ca`
//! and `verify-full` are refused because this client has no TLS. `user`,
//! `password` and `ApplicationName` are read, and libpq's `require_auth`
//! ([`AuthMethods::parse`]; without it cleartext passwords are refused);
//! other parameters JDBC drivers know (`connectTimeout`, `ssl`, ...) are
//! refused by name so nobody believes they took effect.
//!
//! `%XX` decoding is this file's own, not `riffle_aws::rest::percent_decode`
//! (the same ten lines): riffle-aws brings regex, fancy-regex, aws-sigv4,
//! ciborium, http and serde_json, far too much for a database client that
//! otherwise needs only hashing and base64.

use crate::auth::AuthMethods;

/// Where to connect: parsed from `ClusterJDBCURL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    /// `user=` from the URL, if any (Firehose's `Username` wins over it).
    pub user: Option<String>,
    /// `password=` from the URL, if any (Firehose's `Password` wins over it).
    pub password: Option<String>,
    /// `redshift` or `postgresql`: which driver the URL named.
    pub scheme: Scheme,
    /// `require_auth=` from the URL, else [`AuthMethods::default`]: pass it
    /// to [`crate::Client::connect_with`].
    pub require_auth: AuthMethods,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Redshift,
    Postgresql,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Redshift => 5439,
            Scheme::Postgresql => 5432,
        }
    }
}

/// Reads a `ClusterJDBCURL`; errors name what is wrong.
pub fn parse_jdbc_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = if let Some(rest) = strip_prefix_ci(url, "jdbc:redshift://") {
        (Scheme::Redshift, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "jdbc:postgresql://") {
        (Scheme::Postgresql, rest)
    } else {
        return Err(format!(
            "ClusterJDBCURL '{url}' must start with jdbc:redshift:// or jdbc:postgresql://"
        ));
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let Some((authority, database)) = before_query.split_once('/') else {
        return Err(format!(
            "ClusterJDBCURL '{url}' has no database (…/database)"
        ));
    };
    let database = percent_decode(database)
        .ok_or_else(|| format!("ClusterJDBCURL '{url}' has a bad %-escape in the database name"))?;
    if database.is_empty() || database.contains('/') {
        return Err(format!(
            "ClusterJDBCURL '{url}' must name one database after the host"
        ));
    }
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("ClusterJDBCURL '{url}' has a bad host or port '{authority}'"))?;
    let port = match port {
        Some(p) => p,
        None => scheme.default_port(),
    };
    let mut target = Target {
        host,
        port,
        database,
        user: None,
        password: None,
        scheme,
        require_auth: AuthMethods::default(),
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| format!("ClusterJDBCURL '{url}' has a bad %-escape in '{key}'"))?;
        match key {
            "sslmode" => match value.as_str() {
                "disable" | "allow" | "prefer" => {}
                "require" | "verify-ca" | "verify-full" => {
                    return Err(format!(
                        "ClusterJDBCURL sslmode={value} is not supported: Riffle connects to \
                         PostgreSQL without TLS (use sslmode=disable or prefer, on a trusted network)"
                    ));
                }
                other => return Err(format!("ClusterJDBCURL has an unknown sslmode '{other}'")),
            },
            "user" => target.user = Some(value),
            "password" => target.password = Some(value),
            "ApplicationName" => {}
            "require_auth" => {
                target.require_auth =
                    AuthMethods::parse(&value).map_err(|e| format!("ClusterJDBCURL: {e}"))?;
            }
            other => {
                return Err(format!(
                    "ClusterJDBCURL parameter '{other}' is not supported (supported: sslmode, user, password, ApplicationName, require_auth)"
                ));
            }
        }
    }
    Ok(target)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host, port).
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return None,
            Ok(n) => Some(n),
        },
    };
    Some((host.to_string(), port))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // from_str_radix alone would take "+1".
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Result<(&str, u16, &str), &str>) {
        let got = parse_jdbc_url(url);
        match expected {
            Ok((host, port, db)) => {
                let t = got.unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_eq!(
                    (t.host.as_str(), t.port, t.database.as_str()),
                    (host, port, db),
                    "{url}"
                );
            }
            Err(part) => {
                let e = got.expect_err(url);
                assert!(e.contains(part), "{url}: {e}");
            }
        }
    }

    #[test]
    fn urls() {
        check(
            "jdbc:redshift://examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com:5439/dev",
            Ok((
                "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com",
                5439,
                "dev",
            )),
        );
        check("jdbc:redshift://h/dev", Ok(("h", 5439, "dev")));
        check(
            "jdbc:postgresql://127.0.0.1/db",
            Ok(("127.0.0.1", 5432, "db")),
        );
        check(
            "JDBC:PostgreSQL://h:6000/my%20db?sslmode=disable",
            Ok(("h", 6000, "my db")),
        );
        check("jdbc:postgresql://[::1]:5433/db", Ok(("::1", 5433, "db")));
        check("jdbc:postgresql://[::1]/db", Ok(("::1", 5432, "db")));
        check(
            "jdbc:postgresql://h:5432/db?sslmode=require",
            Err("sslmode=require is not supported"),
        );
        check(
            "jdbc:postgresql://h/db?sslmode=verify-full",
            Err("without TLS"),
        );
        check(
            "jdbc:postgresql://h/db?sslmode=bogus",
            Err("unknown sslmode"),
        );
        check(
            "jdbc:postgresql://h/db?connectTimeout=5",
            Err("'connectTimeout' is not supported"),
        );
        check("jdbc:mysql://h/db", Err("must start with"));
        check("jdbc:postgresql://h:99999/db", Err("bad host or port"));
        check("jdbc:postgresql://h:0/db", Err("bad host or port"));
        check("jdbc:postgresql://h", Err("no database"));
        check("jdbc:postgresql://h/", Err("one database"));
        check("jdbc:postgresql://h/a/b", Err("one database"));
        check("jdbc:postgresql://:5432/db", Err("bad host"));
        check("jdbc:postgresql://h h/db", Err("bad host"));
    }

    #[test]
    fn user_and_password_parameters() {
        let t =
            parse_jdbc_url("jdbc:postgresql://h/db?user=u%40x&password=p%26w&ApplicationName=a")
                .unwrap();
        assert_eq!(t.user.as_deref(), Some("u@x"));
        assert_eq!(t.password.as_deref(), Some("p&w"));
        assert_eq!(t.scheme, Scheme::Postgresql);
        assert_eq!(t.require_auth, AuthMethods::default());
    }

    #[test]
    fn require_auth_parameter() {
        use crate::auth::AuthMethod;
        let t = parse_jdbc_url("jdbc:postgresql://h/db?require_auth=password%2Cmd5").unwrap();
        assert!(t.require_auth.allows(AuthMethod::Password));
        assert!(t.require_auth.allows(AuthMethod::Md5));
        assert!(!t.require_auth.allows(AuthMethod::ScramSha256));
        assert!(!t.require_auth.allows(AuthMethod::None));
        let t = parse_jdbc_url("jdbc:redshift://h/db?require_auth=!md5").unwrap();
        assert!(t.require_auth.allows(AuthMethod::Password));
        assert!(!t.require_auth.allows(AuthMethod::Md5));
        check(
            "jdbc:postgresql://h/db?require_auth=kerberos",
            Err("ClusterJDBCURL: require_auth has an unknown method 'kerberos'"),
        );
    }

    #[test]
    fn bad_escapes() {
        // "%+1" and "%-1" parse as numbers but are not %XX escapes.
        for url in [
            "jdbc:postgresql://h/a%+1",
            "jdbc:postgresql://h/a%-1",
            "jdbc:postgresql://h/a%4",
            "jdbc:postgresql://h/a%zz",
            "jdbc:postgresql://h/a%ff",
        ] {
            check(url, Err("bad %-escape"));
        }
        check("jdbc:postgresql://h/a%2b", Ok(("h", 5432, "a+")));
    }
}
