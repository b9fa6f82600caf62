//! Client settings with their defaults and the reason for each, and the
//! exponential backoff every retry loop of this crate uses.

use std::time::Duration;

use riffle_protocol::Limits;

/// Settings of the blocking [`Client`](crate::Client).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// One TCP connect attempt gives up after this long. A local server answers
    /// in well under a millisecond; a second covers a loaded remote one.
    pub connect_timeout: Duration,
    /// A call without a reply after this long fails with `Timeout`. Puts wait for
    /// an fsync; 30 s is far above any healthy latency and below TCP's own timeouts.
    pub request_timeout: Duration,
    /// A broken connection is re-established lazily by the next call, trying at
    /// most this many times (the first attempt immediately, then with backoff).
    pub reconnect_attempts_max: u32,
    /// Delay before the second reconnect attempt; it doubles after each failure.
    pub reconnect_backoff_initial: Duration,
    /// The doubling stops here.
    pub reconnect_backoff_max: Duration,
    /// Idempotent calls (ping, describe, list, get iterator, get records, subscribe)
    /// whose connection broke before the reply are resent this many times.
    /// Non-idempotent calls are resent only when they were certainly not sent.
    pub idempotent_retries_max: u32,
    /// Push frames a subscription buffers before the connection's reader waits
    /// for the subscriber (backpressure reaches the server through TCP).
    pub subscription_frames_max: usize,
    /// Bounds checked on everything the server sends (must be at least the
    /// server's own limits).
    pub limits: Limits,
    /// The access key every connection authenticates with (a server that
    /// checks signatures requires it; `Credentials::from_env` reads AWS's
    /// variables and files). `None`: connections do not authenticate.
    pub credentials: Option<Credentials>,
    /// TLS to the server (a server started with `--native-tls-cert`); `None`:
    /// plain TCP.
    pub tls: Option<ClientTls>,
}

/// TLS settings of a client: rustls's configuration (trust roots, a client
/// certificate for mutual TLS) and the name the server's certificate must carry.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl ClientTls {
    /// Trusts the certificates of `ca_file` (PEM: the server's self-signed
    /// certificate, or its CA), presents `client` (certificate chain and key
    /// files, PEM) when given, and expects `server_name` in the server's.
    pub fn from_files(
        ca_file: &std::path::Path,
        client: Option<(&std::path::Path, &std::path::Path)>,
        server_name: &str,
    ) -> Result<ClientTls, String> {
        let read = |p: &std::path::Path| {
            std::fs::File::open(p)
                .map(std::io::BufReader::new)
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut read(ca_file)?) {
            let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca_file.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in the file", ca_file.display()));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = rustls_pemfile::certs(&mut read(cert)?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key_der = rustls_pemfile::private_key(&mut read(key)?)
                    .map_err(|e| format!("{}: {e}", key.display()))?
                    .ok_or_else(|| format!("{}: no private key in the file", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| format!("{}: {e}", cert.display()))?
            }
        };
        let server_name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("{server_name}: {e}"))?;
        Ok(ClientTls {
            config: std::sync::Arc::new(config),
            server_name,
        })
    }
}

/// An access key: its id and secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials AWS's tools would use: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, else the profile `AWS_PROFILE` (default
    /// `default`) of `AWS_SHARED_CREDENTIALS_FILE` (default
    /// `~/.aws/credentials`); `None` when there are none.
    pub fn from_env() -> Option<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
            });
        }
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                var("HOME").map(|h| std::path::Path::new(&h).join(".aws").join("credentials"))
            })?;
        let text = std::fs::read_to_string(file).ok()?;
        Credentials::from_profile(
            &text,
            &var("AWS_PROFILE").unwrap_or_else(|| "default".into()),
        )
    }

    /// The `[profile]` section's `aws_access_key_id` and
    /// `aws_secret_access_key` of a credentials file (INI).
    pub fn from_profile(text: &str, profile: &str) -> Option<Credentials> {
        let (mut section, mut id, mut secret) = (String::new(), None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            if section != profile {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" => id = Some(v.trim().to_string()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        Some(Credentials {
            access_key_id: id?,
            secret_access_key: secret?,
        })
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            reconnect_attempts_max: 6,
            reconnect_backoff_initial: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            idempotent_retries_max: 2,
            subscription_frames_max: 64,
            limits: Limits::default(),
            credentials: None,
            tls: None,
        }
    }
}

/// Settings of the [`AsyncClient`](crate::AsyncClient). It has no timeouts of its
/// own (it names no runtime and owns no timer): wrap calls in the runtime's
/// timeout; dropping a call's future is safe at any point.
#[derive(Clone, Debug)]
pub struct AsyncClientConfig {
    /// Push frames a subscription may queue while other calls read the connection
    /// on its behalf; past this the subscription fails with `Lagged`.
    pub subscription_frames_max: usize,
    /// Bounds checked on everything the server sends.
    pub limits: Limits,
}

impl Default for AsyncClientConfig {
    fn default() -> AsyncClientConfig {
        AsyncClientConfig {
            subscription_frames_max: 1024,
            limits: Limits::default(),
        }
    }
}

/// Exponential backoff without jitter: `initial, 2 initial, 4 initial, ... max`.
/// Deterministic on purpose (tests measure it); Riffle clients are few per server.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next: initial.min(max),
            max,
        }
    }

    /// The delay to wait now; the following one is twice as long, up to the max.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// [`Backoff::next_delay`] with "equal jitter": half of it, plus a random
    /// part of the other half, so that clients refused together spread their
    /// retries. `state` is the caller's random state (any nonzero seed).
    pub fn next_delay_jittered(&mut self, state: &mut u64) -> Duration {
        let delay = self.next_delay();
        let half = delay / 2;
        // xorshift64: enough to spread retries.
        let mut x = (*state).max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        half + (delay - half).mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(45));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(45), ms(45)]);
        let mut b = Backoff::new(ms(100), ms(30));
        assert_eq!(b.next_delay(), ms(30));
    }

    #[test]
    fn jittered_delays_stay_in_the_upper_half_and_spread() {
        let ms = Duration::from_millis;
        let mut seen = std::collections::BTreeSet::new();
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100 {
            let mut b = Backoff::new(ms(100), ms(100));
            let d = b.next_delay_jittered(&mut state);
            assert!(d >= ms(50) && d <= ms(100), "{d:?}");
            seen.insert(d.as_micros() / 5000);
        }
        assert!(seen.len() >= 5, "delays spread: {seen:?}");
    }

    #[test]
    fn a_profile_is_read_from_a_credentials_file() {
        let text = "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = s1\n\n# other\n[ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=s2\nregion = eu\n";
        let c = Credentials::from_profile(text, "ci").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKIDCI", "s2")
        );
        assert_eq!(
            Credentials::from_profile(text, "default")
                .unwrap()
                .access_key_id,
            "AKIDDEF"
        );
        assert!(Credentials::from_profile(text, "missing").is_none());
        assert!(
            !format!("{c:?}").contains("s2"),
            "the secret is not in Debug"
        );
    }
}
