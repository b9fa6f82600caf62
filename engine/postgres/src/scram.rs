//! SCRAM-SHA-256 (RFC 5802, RFC 7677), the client side, as PostgreSQL uses it:
//! no channel binding (`n,,`), an empty user name (the server takes the
//! startup message's), and a check of the server's signature so a server that
//! does not know the password cannot pretend to.
//!
//! The password is used as its UTF-8 bytes; SASLprep is not applied, which is
//! the identity for ASCII passwords (PostgreSQL also falls back to the raw
//! bytes when SASLprep fails).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The most PBKDF2 iterations a server may ask for: PostgreSQL's default is
/// 4096 (`scram_iterations`, settable since 16); this allows 24 times that,
/// two SHA-256 blocks each, on the caller's thread. A larger count is a
/// server making us burn CPU.
pub const SCRAM_ITERATIONS_MAX: u32 = 100_000;

pub const MECHANISM: &str = "SCRAM-SHA-256";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one block: RFC 5802's Hi(). The HMAC keyed
/// with the password is set up once and cloned for each iteration.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    // HMAC takes keys of any length.
    let keyed = HmacSha256::new_from_slice(password).unwrap_or_else(|_| unreachable!());
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// One SCRAM exchange.
pub struct ScramClient {
    password: Vec<u8>,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; 32]>,
}

impl ScramClient {
    /// `nonce`: printable ASCII without `,` (see [`random_nonce`]).
    pub fn new(user: &str, password: &str, nonce: String) -> ScramClient {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.as_bytes().to_vec(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: None,
        }
    }

    /// client-first-message.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// client-final-message for `server_first`.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                Some(("m=", _)) => return Err("the server asks for a SCRAM extension".into()),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("bad server-first-message '{server_first}'"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|&i| (1..=SCRAM_ITERATIONS_MAX).contains(&i))
            .ok_or_else(|| {
                format!("the server asks for {iterations} iterations (1..={SCRAM_ITERATIONS_MAX})")
            })?;
        let salted = hi(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        // c= is base64("n,,"): no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks server-final-message's `v=`.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused SCRAM: {e}"));
        }
        let Some(expected) = self.server_signature else {
            return Err("server-final-message before server-first-message".into());
        };
        let v = server_final
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or_else(|| format!("bad server-final-message '{server_final}'"))?;
        match BASE64.decode(v) {
            Ok(sig) if sig == expected => Ok(()),
            _ => Err("the server's signature is wrong: it does not know the password".into()),
        }
    }
}

/// 24 base64 characters from 18 bytes of /dev/urandom.
pub fn random_nonce() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(BASE64.encode(bytes))
}

/// MD5 authentication's answer: `md5` + hex(md5(hex(md5(password + user)) + salt)).
pub fn md5_password(user: &str, password: &str, salt: &[u8; 4]) -> String {
    use md5::Md5;
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = hex(&Md5::digest([inner.as_bytes(), salt].concat()));
    format!("md5{outer}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange.
    #[test]
    fn rfc7677_example() {
        let mut c = ScramClient::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        let e = c
            .verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(e.contains("does not know the password"), "{e}");
    }

    #[test]
    fn refuses_bad_server_messages() {
        let cases = [
            ("r=other,s=AAAA,i=4096", "does not extend"),
            ("r=abc,s=AAAA,i=4096", "does not extend"),
            ("r=abcX,s=!!,i=4096", "not base64"),
            ("r=abcX,s=AAAA,i=0", "iterations"),
            ("r=abcX,s=AAAA,i=99999999", "iterations"),
            ("r=abcX,s=AAAA", "bad server-first"),
            ("m=ext,r=abcX,s=AAAA,i=1", "extension"),
        ];
        for (msg, part) in cases {
            let mut c = ScramClient::new("", "p", "abc".into());
            let e = c.client_final(msg).unwrap_err();
            assert!(e.contains(part), "{msg}: {e}");
        }
        let c = ScramClient::new("", "p", "abc".into());
        assert!(
            c.verify_server_final("e=invalid-proof")
                .unwrap_err()
                .contains("invalid-proof")
        );
    }

    /// RFC 7914 section 11's PBKDF2-HMAC-SHA256 vectors (their first 32
    /// bytes: one block), and the iteration cap.
    #[test]
    fn pbkdf2_vectors() {
        fn unhex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }
        assert_eq!(
            hi(b"passwd", b"salt", 1).to_vec(),
            unhex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
        );
        assert_eq!(
            hi(b"Password", b"NaCl", 80_000).to_vec(),
            unhex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56")
        );
        let mut c = ScramClient::new("", "p", "abc".into());
        let e = c
            .client_final(&format!("r=abcX,s=AAAA,i={}", SCRAM_ITERATIONS_MAX + 1))
            .unwrap_err();
        assert!(e.contains("(1..=100000)"), "{e}");
        c.client_final(&format!("r=abcX,s=AAAA,i={SCRAM_ITERATIONS_MAX}"))
            .unwrap();
    }

    #[test]
    fn md5_answer() {
        // Computed independently (Python's hashlib) for salt 01 02 03 04.
        assert_eq!(
            md5_password("alice", "secret", &[1, 2, 3, 4]),
            "md598a0412b9c31436fc53776e863350083"
        );
    }

    #[test]
    fn nonces_differ() {
        let a = random_nonce().unwrap();
        let b = random_nonce().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(!a.contains(','));
    }
}
