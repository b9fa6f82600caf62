//! `riffle cert`: writes a self-signed certificate and its key (PEM) for local
//! TLS (`riffle server --tls-cert cert.pem --tls-key key.pem`). Clients trust it
//! by pointing at the certificate (e.g. boto3 `verify="cert.pem"`, curl
//! `--cacert cert.pem`).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct CertArgs {
    /// Directory to write cert.pem and key.pem into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Host names and IP addresses the certificate is for.
    #[arg(long = "name", default_values = ["localhost", "127.0.0.1"])]
    pub names: Vec<String>,
}

pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let certified = rcgen::generate_simple_self_signed(args.names.clone())
        .context("cannot generate a certificate")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let cert = args.out.join("cert.pem");
    let key = args.out.join("key.pem");
    std::fs::write(&cert, certified.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    write_private(&key, certified.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    println!(
        "wrote {} and {} for {}",
        cert.display(),
        key.display(),
        args.names.join(", ")
    );
    Ok(())
}

/// Writes a file readable by its owner only (a private key).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
