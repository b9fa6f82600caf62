//! `riffle kms`: makes and changes the keys of a local KMS keyring (the file
//! `riffle server --kms-keyring` reads; format in `riffle_engine::kms::keyring`).
//! Works on the file, not through a server: a running server reads the file
//! again within a second of a change.
//!
//! A new keyring protects its keys with the passphrase in
//! `RIFFLE_KMS_PASSPHRASE`; `--plaintext` keeps them in the clear instead
//! (the operator's choice, stated on the command line).

use std::path::PathBuf;

use anyhow::anyhow;
use riffle_engine::kms::keyring::{KeyState, Keyring, PASSPHRASE_ENV};

#[derive(clap::Args, Debug)]
pub struct KmsArgs {
    #[command(subcommand)]
    pub command: KmsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KmsCommand {
    /// Make a new key (printed as KMS's KeyMetadata).
    CreateKey {
        #[command(flatten)]
        keyring: KeyringArg,
        /// Its alias (`alias/NAME` or `NAME`).
        #[arg(long)]
        alias: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Keep key material in the clear in a new keyring file (else it is
        /// sealed with the passphrase in RIFFLE_KMS_PASSPHRASE).
        #[arg(long)]
        plaintext: bool,
    },
    /// List the keys (one JSON object a line: id, ARN, aliases, state).
    List {
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// Disable a key: puts and reads under it fail with KMSDisabledException.
    Disable {
        #[command(flatten)]
        keyring: KeyringArg,
        /// Key id, ARN, `alias/NAME` or alias ARN.
        key: String,
    },
    /// Enable a disabled key again.
    Enable {
        #[command(flatten)]
        keyring: KeyringArg,
        key: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct KeyringArg {
    /// The keyring file.
    #[arg(long, env = "RIFFLE_KMS_KEYRING")]
    pub keyring: PathBuf,
    /// The account and region key ARNs name (as the server's).
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

fn passphrase() -> Option<String> {
    std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty())
}

fn metadata(k: &KeyringArg, key: &riffle_engine::kms::keyring::Key) -> serde_json::Value {
    serde_json::json!({
        "KeyId": key.id,
        "Arn": format!("arn:aws:kms:{}:{}:key/{}", k.region, k.account, key.id),
        "Aliases": key.aliases,
        "KeyState": match key.state { KeyState::Enabled => "Enabled", KeyState::Disabled => "Disabled" },
        "Enabled": key.state == KeyState::Enabled,
        "CreationDate": key.created_ms as f64 / 1000.0,
        "Description": key.description,
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
    })
}

pub fn run(args: KmsArgs) -> anyhow::Result<()> {
    let err = |e: riffle_engine::kms::keyring::KeyringError| anyhow!("{e}");
    match args.command {
        KmsCommand::CreateKey {
            keyring,
            alias,
            description,
            plaintext,
        } => {
            let key = Keyring::update(&keyring.keyring, passphrase().as_deref(), plaintext, |k| {
                k.create_key(alias.as_deref(), &description)
                    .map(|k| (k.clone(), true))
            })
            .map_err(err)?;
            println!(
                "{}",
                serde_json::json!({"KeyMetadata": metadata(&keyring, &key)})
            );
        }
        KmsCommand::List { keyring } => {
            let ring = Keyring::load(&keyring.keyring, passphrase().as_deref()).map_err(err)?;
            for key in &ring.keys {
                println!("{}", metadata(&keyring, key));
            }
        }
        KmsCommand::Disable { keyring, key } => set_state(&keyring, &key, KeyState::Disabled)?,
        KmsCommand::Enable { keyring, key } => set_state(&keyring, &key, KeyState::Enabled)?,
    }
    Ok(())
}

fn set_state(keyring: &KeyringArg, key: &str, state: KeyState) -> anyhow::Result<()> {
    let changed = Keyring::update(&keyring.keyring, passphrase().as_deref(), false, |k| {
        if k.find(key).is_none() {
            return Err(riffle_engine::kms::keyring::KeyringError::Refused(format!(
                "no key {key} in {}",
                keyring.keyring.display()
            )));
        }
        k.set_state(key, state).map(|k| (k.clone(), true))
    })
    .map_err(|e| anyhow!("{e}"))?;
    println!(
        "{}",
        serde_json::json!({"KeyMetadata": metadata(keyring, &changed)})
    );
    Ok(())
}
