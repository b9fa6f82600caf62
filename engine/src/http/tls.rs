//! TLS for the HTTP gateway: a certificate chain and its key from PEM files,
//! rustls with the ring provider, ALPN `h2` then `http/1.1` (hyper then serves
//! HTTP/2 or HTTP/1.1 on the decrypted stream as on a plain one).

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// An acceptor for the certificate chain in `cert` and the private key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| invalid(cert, e))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| invalid(cert, e))?;
    if certs.is_empty() {
        return Err(invalid(cert, "no certificate in the file"));
    }
    let key_der = rustls_pemfile::private_key(&mut io::BufReader::new(
        std::fs::File::open(key).map_err(|e| invalid(key, e))?,
    ))
    .map_err(|e| invalid(key, e))?
    .ok_or_else(|| invalid(key, "no private key in the file"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| invalid(cert, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
