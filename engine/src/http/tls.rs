//! TLS for the listeners: a certificate chain and its key from PEM files,
//! rustls with the ring provider. The HTTP gateway offers ALPN `h2` then
//! `http/1.1` (hyper then serves HTTP/2 or HTTP/1.1 on the decrypted stream as
//! on a plain one); the native protocol offers none. With a client CA
//! (`--tls-client-ca`), a client must present a certificate it signed
//! (mutual TLS).

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

/// An acceptor for `cert` and `key`, requiring client certificates signed by
/// a certificate of `client_ca` when given, offering `alpn`.
pub fn acceptor_for(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: Vec<Vec<u8>>,
) -> io::Result<TlsAcceptor> {
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
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut io::BufReader::new(
                std::fs::File::open(ca).map_err(|e| invalid(ca, e))?,
            )) {
                roots
                    .add(c.map_err(|e| invalid(ca, e))?)
                    .map_err(|e| invalid(ca, e))?;
            }
            if roots.is_empty() {
                return Err(invalid(ca, "no certificate in the file"));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| invalid(cert, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
