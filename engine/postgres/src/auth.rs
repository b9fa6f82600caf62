//! Which authentication methods the client answers: libpq's `require_auth`
//! ([`AuthMethods`]), and the check [`crate::Client`] makes on each request
//! of the server's before answering it.
//!
//! Why: without TLS, anyone between Riffle and the database can answer the
//! startup message itself. Asked for a cleartext password, a client that
//! obeys hands the password over; asked for MD5 after SCRAM has begun, it
//! gives up SCRAM's protection. So cleartext is refused unless allowed, and
//! once SASL has begun no other method is answered.

/// One authentication method, named as libpq's `require_auth` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// `none`: the server lets the user in without asking (trust).
    None,
    /// `password`: the password in cleartext (AuthenticationCleartextPassword).
    Password,
    /// `md5`: AuthenticationMD5Password.
    Md5,
    /// `scram-sha-256`: SASL with SCRAM-SHA-256.
    ScramSha256,
}

impl AuthMethod {
    const ALL: [AuthMethod; 4] = [
        AuthMethod::None,
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::ScramSha256,
    ];

    /// libpq's name: `none`, `password`, `md5`, `scram-sha-256`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The methods the client will answer. The default refuses only cleartext
/// (`password`): `none`, `md5`, `scram-sha-256`. Read from `require_auth=`
/// of `ClusterJDBCURL` with [`AuthMethods::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthMethods {
    bits: u8,
}

impl Default for AuthMethods {
    fn default() -> AuthMethods {
        AuthMethods::NONE
            .with(AuthMethod::None)
            .with(AuthMethod::Md5)
            .with(AuthMethod::ScramSha256)
    }
}

impl AuthMethods {
    /// No method at all (start of a builder).
    pub const NONE: AuthMethods = AuthMethods { bits: 0 };

    /// These methods and `method`.
    pub const fn with(self, method: AuthMethod) -> AuthMethods {
        AuthMethods {
            bits: self.bits | 1 << method as u8,
        }
    }

    pub fn allows(self, method: AuthMethod) -> bool {
        self.bits & method.bit() != 0
    }

    /// libpq's `require_auth` syntax: a comma-separated list of methods the
    /// server may use (`scram-sha-256,md5`), or of methods it may not, each
    /// with `!` (`!password,!md5`; every other method is allowed, `none`
    /// included). `gss` and `sspi` are known names; this client never does
    /// them, so they allow nothing. `Err` names the bad part.
    pub fn parse(list: &str) -> Result<AuthMethods, String> {
        let mut allowed = AuthMethods::NONE;
        let mut refused = AuthMethods::NONE;
        let mut seen: Vec<&str> = Vec::new();
        let (mut positive, mut negative) = (false, false);
        for item in list.split(',') {
            let (negated, name) = match item.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, item),
            };
            if seen.contains(&name) {
                return Err(format!("require_auth names '{name}' more than once"));
            }
            seen.push(name);
            let method = match name {
                "gss" | "sspi" => None,
                _ => Some(
                    AuthMethod::ALL
                        .into_iter()
                        .find(|m| m.name() == name)
                        .ok_or_else(|| {
                            format!(
                                "require_auth has an unknown method '{name}' (known: password, md5, scram-sha-256, gss, sspi, none)"
                            )
                        })?,
                ),
            };
            if negated {
                negative = true;
                if let Some(m) = method {
                    refused = refused.with(m);
                }
            } else {
                positive = true;
                if let Some(m) = method {
                    allowed = allowed.with(m);
                }
            }
        }
        match (positive, negative) {
            (true, true) => Err("require_auth cannot mix methods with negated (!) methods".into()),
            (false, _) => Ok(AuthMethods {
                bits: !refused.bits & ALL_BITS,
            }),
            (true, false) => Ok(allowed),
        }
    }

    /// `Err` (an [`crate::PgError::Auth`] text) unless `method` is allowed.
    pub(crate) fn check(self, method: AuthMethod) -> Result<(), String> {
        if self.allows(method) {
            return Ok(());
        }
        let what = match method {
            AuthMethod::None => "lets the user in without authentication",
            AuthMethod::Password => "asks for the password in cleartext",
            AuthMethod::Md5 => "asks for MD5 password authentication",
            AuthMethod::ScramSha256 => "asks for SCRAM-SHA-256 authentication",
        };
        Err(format!(
            "the server {what} ({}), which require_auth does not allow (allowed: {}); \
             add require_auth={} to ClusterJDBCURL to allow it",
            method.name(),
            self.names(),
            method.name()
        ))
    }

    /// The allowed methods' names, comma-separated.
    pub fn names(self) -> String {
        let names: Vec<&str> = AuthMethod::ALL
            .into_iter()
            .filter(|m| self.allows(*m))
            .map(AuthMethod::name)
            .collect();
        if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        }
    }
}

const ALL_BITS: u8 = (1 << AuthMethod::ALL.len()) - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMethod::*;

    fn check(list: &str, expected: Result<&[AuthMethod], &str>) {
        match expected {
            Ok(methods) => {
                let got = AuthMethods::parse(list).unwrap_or_else(|e| panic!("{list}: {e}"));
                for m in AuthMethod::ALL {
                    assert_eq!(got.allows(m), methods.contains(&m), "{list}: {m:?}");
                }
            }
            Err(part) => {
                let e = AuthMethods::parse(list).expect_err(list);
                assert!(e.contains(part), "{list}: {e}");
            }
        }
    }

    #[test]
    fn require_auth_lists() {
        check("scram-sha-256", Ok(&[ScramSha256]));
        check("password,md5,none", Ok(&[Password, Md5, None]));
        check("!password", Ok(&[None, Md5, ScramSha256]));
        check("!password,!none", Ok(&[Md5, ScramSha256]));
        check("gss,md5", Ok(&[Md5]));
        check("!sspi", Ok(&[None, Password, Md5, ScramSha256]));
        check("md5,!password", Err("cannot mix"));
        check("md5,md5", Err("more than once"));
        check("scram", Err("unknown method 'scram'"));
        check("", Err("unknown method ''"));
        check("MD5", Err("unknown method 'MD5'"));
    }

    #[test]
    fn default_refuses_only_cleartext() {
        let d = AuthMethods::default();
        assert_eq!(d.names(), "none, md5, scram-sha-256");
        let e = d.check(Password).unwrap_err();
        assert!(
            e.contains("cleartext") && e.contains("require_auth=password"),
            "{e}"
        );
        assert!(d.check(Md5).is_ok());
        assert_eq!(AuthMethods::NONE.names(), "nothing");
    }
}
