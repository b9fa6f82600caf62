//! Authentication on the native protocol (api keys 18, 19): the connection
//! proves it holds an access key's secret without sending it.
//!
//! ```text
//! AuthChallenge request    empty
//! AuthChallenge response   bytes nonce (32 random bytes, new for each challenge)
//! Authenticate request     str access_key_id, bytes proof (32 bytes)
//! Authenticate response    str principal (the key's IAM user ARN)
//! ```
//!
//! `proof = HMAC-SHA256(secret, "riffle-native-auth/1" 0x00 nonce access_key_id)`
//! ([`proof`]): a nonce is answered once, so a proof overheard on the wire
//! opens no other connection. Once authenticated, every request of the
//! connection is the key's user's, decided by its IAM policies as the HTTP
//! API's calls are (docs/security.md). A server that checks no signatures
//! answers Authenticate without checking the proof.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::frame::{FrameError, FrameReader, FrameWriter};

/// A challenge's random bytes.
pub const NONCE_LEN: usize = 32;
/// An HMAC-SHA256.
pub const PROOF_LEN: usize = 32;
/// Access key ids: AWS's are 16 to 128 characters.
pub const ACCESS_KEY_ID_CHARS_MAX: u32 = 128;
/// The principal the server names (an IAM user ARN).
pub const PRINCIPAL_CHARS_MAX: u32 = 2048;
const CONTEXT: &[u8] = b"riffle-native-auth/1\0";

/// The proof that the holder of `secret` answers the challenge `nonce` as
/// `access_key_id`.
pub fn proof(secret: &str, nonce: &[u8; NONCE_LEN], access_key_id: &str) -> [u8; PROOF_LEN] {
    mac(secret, nonce, access_key_id)
        .finalize()
        .into_bytes()
        .into()
}

/// The HMAC a proof is, before its last step.
fn mac(secret: &str, nonce: &[u8; NONCE_LEN], access_key_id: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(CONTEXT);
    mac.update(nonce);
    mac.update(access_key_id.as_bytes());
    mac
}

/// Whether `given` is the proof (compared in constant time).
pub fn proof_matches(
    secret: &str,
    nonce: &[u8; NONCE_LEN],
    access_key_id: &str,
    given: &[u8; PROOF_LEN],
) -> bool {
    mac(secret, nonce, access_key_id)
        .verify_slice(given)
        .is_ok()
}

pub(super) fn put_nonce(w: &mut FrameWriter<'_>, nonce: &[u8; NONCE_LEN]) {
    w.bytes(nonce);
}

pub(super) fn get_fixed<const N: usize>(
    r: &mut FrameReader<'_>,
    field: &'static str,
) -> Result<[u8; N], FrameError> {
    let b = r.bytes(field, N)?;
    b.try_into()
        .map_err(|_| FrameError::malformed(field, format!("{} bytes, expected {N}", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_names_its_key_nonce_and_secret() {
        let nonce = [7u8; NONCE_LEN];
        let p = proof("secret", &nonce, "AKID");
        assert!(proof_matches("secret", &nonce, "AKID", &p));
        assert!(!proof_matches("secret2", &nonce, "AKID", &p));
        assert!(!proof_matches("secret", &[8u8; NONCE_LEN], "AKID", &p));
        assert!(!proof_matches("secret", &nonce, "AKIE", &p));
    }
}
