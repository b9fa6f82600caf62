//! `riffle server`: settings (flags > environment > config file > defaults),
//! the engine, the native protocol server, and graceful shutdown on SIGINT or
//! SIGTERM (stop accepting, finish in-flight requests, flush and sync, exit 0).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use riffle_engine::http::{HttpConfig, HttpServer, Services};
use riffle_engine::kinesis::{KinesisConfig, KinesisService};
use riffle_engine::net::{Extensions, NativeServer, NetConfig};
use riffle_engine::{Durability, Engine, EngineConfig};
use riffle_firehose::{FirehoseConfig, FirehoseService};
use riffle_glue::{GlueConfig, GlueService};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4600";
pub const DEFAULT_DATA_DIR: &str = "./riffle-data";
pub const DEFAULT_HTTP: &str = "127.0.0.1:4567";

/// `riffle server` flags; each may also come from the environment (clap) or the
/// config file.
#[derive(clap::Args, Debug, Default)]
pub struct ServerArgs {
    /// Config file (TOML) with any of: data_dir, listen, cores, durability, http,
    /// region, account, auth, access_keys, subscription_ms, state_delay_ms,
    /// http_connections_max, http_idle_ms, shard_limits, kms_keyring, allow,
    /// http_allow, native_allow (and the other long flags' names).
    #[arg(long, env = "RIFFLE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the streams live [default: ./riffle-data]. Must support O_DIRECT (not tmpfs).
    #[arg(long, env = "RIFFLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Native protocol address [default: 127.0.0.1:4600].
    #[arg(long, env = "RIFFLE_LISTEN")]
    pub listen: Option<String>,
    /// Executor threads, one per core [default: every CPU].
    #[arg(long, env = "RIFFLE_CORES")]
    pub cores: Option<usize>,
    /// fsync: acknowledge after the data is on disk (default); none: after the write.
    #[arg(long, env = "RIFFLE_DURABILITY", value_parser = ["fsync", "none"])]
    pub durability: Option<String>,
    /// Do not pin executors to CPUs (when sharing the machine with other work).
    #[arg(long, env = "RIFFLE_NO_PIN")]
    pub no_pin: bool,
    /// AWS-compatible HTTP API address, or `off` [default: 127.0.0.1:4567].
    #[arg(long, env = "RIFFLE_HTTP")]
    pub http: Option<String>,
    /// The region stream ARNs carry [default: us-east-1].
    #[arg(long, env = "RIFFLE_REGION")]
    pub region: Option<String>,
    /// The 12-digit account id stream ARNs carry [default: 000000000000].
    #[arg(long, env = "RIFFLE_ACCOUNT")]
    pub account: Option<String>,
    /// Serve the HTTP API over TLS with this certificate chain (PEM; `riffle
    /// cert` writes a self-signed one). Needs --tls-key.
    #[arg(long, env = "RIFFLE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "RIFFLE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// TLS on the native port: its certificate chain (PEM; `riffle cert` makes one).
    #[arg(long, env = "RIFFLE_NATIVE_TLS_CERT", requires = "native_tls_key")]
    pub native_tls_cert: Option<PathBuf>,
    /// The native port's private key (PEM).
    #[arg(long, env = "RIFFLE_NATIVE_TLS_KEY", requires = "native_tls_cert")]
    pub native_tls_key: Option<PathBuf>,
    /// Mutual TLS: the TLS listeners (HTTP with --tls-cert, native with
    /// --native-tls-cert) take only clients presenting a certificate signed by
    /// a certificate of this file (PEM).
    #[arg(long, env = "RIFFLE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// none: accept any request, signed or not (default); sigv4: verify AWS
    /// Signature V4 with the access keys of the config file (`access_keys`) or
    /// RIFFLE_ACCESS_KEYS (`ID:SECRET,...`).
    #[arg(long, env = "RIFFLE_AUTH", value_parser = ["none", "sigv4"])]
    pub auth: Option<String>,
    /// How long a SubscribeToShard subscription lasts, in ms [default: 300000,
    /// AWS's five minutes].
    #[arg(long, env = "RIFFLE_SUBSCRIPTION_MS")]
    pub subscription_ms: Option<u64>,
    /// How long streams report CREATING, UPDATING (after a reshard, an
    /// encryption or a capacity-mode change) and DELETING, in ms [default: 0:
    /// ACTIVE or gone at once]. Like AWS, CREATING and DELETING streams take no
    /// records and only ACTIVE ones can be resharded.
    #[arg(long, env = "RIFFLE_STATE_DELAY_MS")]
    pub state_delay_ms: Option<u64>,
    /// HTTP connections one core serves at once; more are closed on accept
    /// [default: 4096].
    #[arg(long, env = "RIFFLE_HTTP_CONNECTIONS_MAX")]
    pub http_connections_max: Option<usize>,
    /// An HTTP connection that moves no byte for this long is closed, in ms
    /// [default: 300000].
    #[arg(long, env = "RIFFLE_HTTP_IDLE_MS")]
    pub http_idle_ms: Option<u64>,
    /// none: no per-shard throughput limits (default); aws: AWS's (writes 1
    /// MiB and 1,000 records per second per shard, GetRecords 5 calls and 2
    /// MiB per second), refused with ProvisionedThroughputExceededException.
    #[arg(long, env = "RIFFLE_SHARD_LIMITS", value_parser = ["none", "aws"])]
    pub shard_limits: Option<String>,
    /// An S3-compatible server (http://HOST:PORT) that Firehose's S3
    /// destinations deliver to, path-style and SigV4-signed; default: files
    /// under <data-dir>/s3/<bucket>/.
    #[arg(long, env = "RIFFLE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The S3 server's access key (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "RIFFLE_S3_ACCESS_KEY")]
    pub s3_access_key: Option<String>,
    /// The S3 server's secret key (default: AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "RIFFLE_S3_SECRET_KEY")]
    pub s3_secret_key: Option<String>,
    /// The region requests to the S3 server are signed for (default: --region).
    #[arg(long, env = "RIFFLE_S3_REGION")]
    pub s3_region: Option<String>,
    /// More CA certificates (PEM) to trust for outgoing https (Firehose's
    /// destinations, functions and S3 endpoint), besides the system's.
    #[arg(long, env = "RIFFLE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// on: every call of every service is written to <data-dir>/audit/ as a
    /// CloudTrail record (default); off: no audit trail.
    #[arg(long, env = "RIFFLE_AUDIT", value_parser = ["on", "off"])]
    pub audit: Option<String>,
    /// Record data events too (PutRecord(s), GetRecords, GetShardIterator,
    /// SubscribeToShard, Firehose's puts, PutMedia and the media reads).
    #[arg(long, env = "RIFFLE_AUDIT_DATA_EVENTS")]
    pub audit_data_events: bool,
    /// Audit files last written longer ago than this are removed [default: 168].
    #[arg(long, env = "RIFFLE_AUDIT_RETENTION_HOURS")]
    pub audit_retention_hours: Option<u64>,
    /// Hours of one-minute metric points CloudWatch's API serves [default: 3].
    #[arg(long, env = "RIFFLE_METRICS_RETENTION_HOURS")]
    pub metrics_retention_hours: Option<u64>,
    /// IAM users and groups with their policies (JSON; docs/security.md):
    /// with `--auth sigv4`, every signed call is decided by its signer's
    /// policies and its resource's policy.
    #[arg(long, env = "RIFFLE_IAM_POLICIES")]
    pub iam_policies: Option<PathBuf>,
    /// The KMS keyring encryption at rest takes its keys from (made and
    /// changed with `riffle kms`; docs/security.md). A keyring protected by a
    /// passphrase is opened with RIFFLE_KMS_PASSPHRASE. Without one, every
    /// KMS key is missing (KMSNotFoundException).
    #[arg(long, env = "RIFFLE_KMS_KEYRING")]
    pub kms_keyring: Option<PathBuf>,
    /// Address ranges both listeners take connections from
    /// (`10.0.0.0/8,192.168.1.7,::1`); others are closed at once. Default: any.
    #[arg(long, env = "RIFFLE_ALLOW")]
    pub allow: Option<String>,
    /// The HTTP listener's own allow-list (instead of --allow).
    #[arg(long, env = "RIFFLE_HTTP_ALLOW")]
    pub http_allow: Option<String>,
    /// The native listener's own allow-list (instead of --allow).
    #[arg(long, env = "RIFFLE_NATIVE_ALLOW")]
    pub native_allow: Option<String>,
    /// A listener of its own for `GET /metrics`, `/health` and `/ready` (e.g.
    /// on an operations network), besides the HTTP port's.
    #[arg(long, env = "RIFFLE_METRICS")]
    pub metrics: Option<SocketAddr>,
}

/// The config file's shape. Unknown keys are an error, so typos are not ignored.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    cores: Option<usize>,
    durability: Option<String>,
    http: Option<String>,
    region: Option<String>,
    account: Option<String>,
    auth: Option<String>,
    access_keys: Option<Vec<AccessKey>>,
    subscription_ms: Option<u64>,
    state_delay_ms: Option<u64>,
    http_connections_max: Option<usize>,
    http_idle_ms: Option<u64>,
    shard_limits: Option<String>,
    s3_endpoint: Option<String>,
    s3_access_key: Option<String>,
    s3_secret_key: Option<String>,
    s3_region: Option<String>,
    /// Firehose's `Lambda` processors and Lambda event-source mappings:
    /// function name or ARN = "http://URL".
    functions: Option<std::collections::BTreeMap<String, FunctionEntry>>,
    ca_file: Option<PathBuf>,
    audit: Option<String>,
    audit_data_events: Option<bool>,
    audit_retention_hours: Option<u64>,
    metrics_retention_hours: Option<u64>,
    iam_policies: Option<PathBuf>,
    kms_keyring: Option<PathBuf>,
    allow: Option<String>,
    http_allow: Option<String>,
    native_allow: Option<String>,
    metrics: Option<SocketAddr>,
}

/// A `[functions]` entry: the URL, or `{ url = "...", concurrency = N }` to
/// limit the invocations in flight at once (1 for a container running AWS's
/// Runtime Interface Emulator, which serves one at a time).
#[derive(serde::Deserialize, Debug)]
#[serde(untagged)]
enum FunctionEntry {
    Url(String),
    Limited(LimitedFunction),
}

/// `{ url = "...", concurrency = N }` (a misspelt key is refused).
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LimitedFunction {
    url: String,
    concurrency: Option<usize>,
}

/// An access key of the config file: `access_keys = [{ id = "...", secret
/// = "...", user = "..." }]`; `user` names its IAM user (the key id when
/// absent).
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AccessKey {
    id: String,
    secret: String,
    user: Option<String>,
}

/// Settings after merging every source.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub cores: Option<usize>,
    pub durability: Durability,
    pub pin: bool,
    /// The HTTP API's address; `None`: off.
    pub http: Option<SocketAddr>,
    pub region: String,
    pub account: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// SigV4 access keys (id → secret) when `--auth sigv4`.
    pub sigv4_keys: Option<std::collections::BTreeMap<String, String>>,
    pub subscription_ms: u64,
    pub state_delay_ms: u64,
    pub http_connections_max: usize,
    pub http_idle_ms: u64,
    /// AWS's per-shard throughput limits enforced (`--shard-limits aws`).
    pub shard_limits: bool,
    /// Firehose's S3-compatible server; None: the embedded store.
    pub s3: Option<riffle_firehose::s3::S3Config>,
    /// Function names and ARNs mapped to the URLs serving them (`[functions]`).
    pub functions: std::collections::BTreeMap<String, String>,
    /// The invocations each function URL takes at once, where the config
    /// limits them (Lambda event-source mappings honour it).
    pub function_concurrency: std::collections::BTreeMap<String, usize>,
    /// More CA certificates to trust for outgoing https.
    pub ca_file: Option<PathBuf>,
    /// The audit trail, when on.
    pub audit: Option<AuditSettings>,
    /// IAM user names by access key id (those the config names).
    pub users: std::collections::BTreeMap<String, String>,
    /// Minutes of metric points CloudWatch's API serves.
    pub metrics_minutes: usize,
    /// IAM's decisions on signed calls.
    pub authorizer: Option<Arc<riffle_engine::http::authz::Authorizer>>,
    /// Encryption at rest's KMS, when a keyring is given.
    pub kms: Option<Arc<riffle_engine::kms::Kms>>,
    /// The native port's TLS certificate and key.
    pub native_tls: Option<(PathBuf, PathBuf)>,
    /// Mutual TLS's client CA, for every TLS listener.
    pub tls_client_ca: Option<PathBuf>,
    /// The metrics listener's address, when one is asked for.
    pub metrics: Option<SocketAddr>,
    /// The listeners' allow-lists (`None`: any address).
    pub http_allow: Option<riffle_engine::allow::AllowList>,
    pub native_allow: Option<riffle_engine::allow::AllowList>,
}

/// What the audit trail records and keeps.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub data_events: bool,
    pub retention: Duration,
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

pub fn settings(args: ServerArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| anyhow!("invalid listen address {listen:?}: {e} (expected IP:PORT)"))?;
    let durability = match args
        .durability
        .or(file.durability)
        .as_deref()
        .unwrap_or("fsync")
    {
        "fsync" => Durability::Fsync,
        "none" => Durability::None,
        other => bail!("invalid durability {other:?}: expected fsync or none"),
    };
    let http = args
        .http
        .or(file.http)
        .unwrap_or_else(|| DEFAULT_HTTP.to_string());
    let http =
        match http.as_str() {
            "off" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| {
                anyhow!("invalid http address {a:?}: {e} (expected IP:PORT or off)")
            })?),
        };
    let region = args
        .region
        .or(file.region)
        .unwrap_or_else(|| "us-east-1".to_string());
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        bail!("invalid region {region:?}: expected e.g. us-east-1");
    }
    let account = args
        .account
        .or(file.account)
        .unwrap_or_else(|| "000000000000".to_string());
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        bail!("invalid account {account:?}: expected 12 digits");
    }
    let mut users = std::collections::BTreeMap::new();
    let sigv4_keys = match args.auth.or(file.auth).as_deref().unwrap_or("none") {
        "none" => None,
        "sigv4" => {
            let mut keys = std::collections::BTreeMap::new();
            for k in file.access_keys.unwrap_or_default() {
                if let Some(user) = k.user {
                    if user.is_empty()
                        || user.len() > 64
                        || !user
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
                    {
                        bail!(
                            "invalid user {user:?} of access key {}: IAM user names are 1 to 64 of A-Z a-z 0-9 +=,.@_-",
                            k.id
                        );
                    }
                    users.insert(k.id.clone(), user);
                }
                keys.insert(k.id, k.secret);
            }
            if let Ok(env) = std::env::var("RIFFLE_ACCESS_KEYS") {
                for pair in env.split(',').filter(|p| !p.is_empty()) {
                    let (id, secret) = pair
                        .split_once(':')
                        .ok_or_else(|| anyhow!("RIFFLE_ACCESS_KEYS entries are ID:SECRET"))?;
                    keys.insert(id.to_owned(), secret.to_owned());
                }
            }
            if keys.is_empty() {
                bail!(
                    "--auth sigv4 needs access keys (access_keys in the config file, or RIFFLE_ACCESS_KEYS)"
                );
            }
            Some(keys)
        }
        other => bail!("invalid auth {other:?}: expected none or sigv4"),
    };
    let subscription_ms = args
        .subscription_ms
        .or(file.subscription_ms)
        .unwrap_or(300_000);
    if subscription_ms == 0 {
        bail!("subscription_ms must be at least 1");
    }
    let http_connections_max = args
        .http_connections_max
        .or(file.http_connections_max)
        .unwrap_or(4096);
    let http_idle_ms = args.http_idle_ms.or(file.http_idle_ms).unwrap_or(300_000);
    let authorizer = match (args.iam_policies.or(file.iam_policies), &sigv4_keys) {
        (None, _) => None,
        (Some(_), None) => {
            bail!("--iam-policies needs --auth sigv4 (policies decide signed calls)")
        }
        (Some(path), Some(keys)) => {
            // Each key's user: the one it names, else its id.
            let key_users = keys
                .keys()
                .map(|k| {
                    (
                        k.clone(),
                        users.get(k).cloned().unwrap_or_else(|| k.clone()),
                    )
                })
                .collect();
            Some(Arc::new(crate::iam_file::load(
                &path, &key_users, &account,
            )?))
        }
    };
    let allow = args.allow.or(file.allow);
    let allow_list = |flag: &str, text: Option<String>| {
        text.map(|t| {
            riffle_engine::allow::AllowList::parse(&t).map_err(|e| anyhow!("--{flag}: {e}"))
        })
        .transpose()
    };
    let http_allow = match args.http_allow.or(file.http_allow) {
        Some(t) => allow_list("http-allow", Some(t))?,
        None => allow_list("allow", allow.clone())?,
    };
    let native_allow = match args.native_allow.or(file.native_allow) {
        Some(t) => allow_list("native-allow", Some(t))?,
        None => allow_list("allow", allow)?,
    };
    let tls_client_ca = args.tls_client_ca;
    if tls_client_ca.is_some() && args.tls_cert.is_none() && args.native_tls_cert.is_none() {
        bail!("--tls-client-ca needs a TLS listener (--tls-cert or --native-tls-cert)");
    }
    if tls_client_ca.is_some() && (args.tls_cert.is_none() || args.native_tls_cert.is_none()) {
        tracing::warn!(
            "--tls-client-ca asks client certificates of the TLS listeners only: the {} port serves plain connections",
            if args.tls_cert.is_none() {
                "HTTP"
            } else {
                "native"
            }
        );
    }
    let kms = match args.kms_keyring.or(file.kms_keyring) {
        None => None,
        Some(path) => {
            let passphrase = std::env::var(riffle_engine::kms::keyring::PASSPHRASE_ENV)
                .ok()
                .filter(|p| !p.is_empty());
            Some(
                riffle_engine::kms::Kms::open(&path, passphrase, &account, &region)
                    .map_err(|e| anyhow!("{}", e.message))?,
            )
        }
    };
    let metrics_minutes = match args
        .metrics_retention_hours
        .or(file.metrics_retention_hours)
    {
        Some(0) => bail!("metrics_retention_hours must be at least 1"),
        Some(h) if h > 48 => bail!("metrics_retention_hours is at most 48"),
        h => h.unwrap_or(3) as usize * 60,
    };
    let audit = match args.audit.or(file.audit).as_deref().unwrap_or("on") {
        "on" => Some(AuditSettings {
            data_events: args.audit_data_events || file.audit_data_events.unwrap_or(false),
            retention: Duration::from_secs(
                match args.audit_retention_hours.or(file.audit_retention_hours) {
                    Some(0) => bail!("audit_retention_hours must be at least 1"),
                    hours => hours.unwrap_or(168).saturating_mul(3600),
                },
            ),
        }),
        "off" => None,
        other => bail!("invalid audit {other:?}: expected on or off"),
    };
    if http_connections_max == 0 || http_idle_ms == 0 {
        bail!("http_connections_max and http_idle_ms must be at least 1");
    }
    let shard_limits = match args
        .shard_limits
        .or(file.shard_limits)
        .as_deref()
        .unwrap_or("none")
    {
        "none" => false,
        "aws" => true,
        other => bail!("invalid shard_limits {other:?}: expected none or aws"),
    };
    let cores = args.cores.or(file.cores);
    if cores == Some(0) {
        bail!("cores must be at least 1");
    }
    let s3 = match args.s3_endpoint.or(file.s3_endpoint) {
        None => None,
        Some(endpoint) => {
            let access_key = args
                .s3_access_key
                .or(file.s3_access_key)
                .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok());
            let secret_key = args
                .s3_secret_key
                .or(file.s3_secret_key)
                .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok());
            let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
                bail!(
                    "--s3-endpoint needs credentials: --s3-access-key and --s3-secret-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                );
            };
            Some(riffle_firehose::s3::S3Config {
                endpoint,
                access_key,
                secret_key,
                region: args
                    .s3_region
                    .or(file.s3_region)
                    .unwrap_or_else(|| region.clone()),
            })
        }
    };
    let mut functions = std::collections::BTreeMap::new();
    let mut function_concurrency = std::collections::BTreeMap::new();
    for (name, entry) in file.functions.unwrap_or_default() {
        let url = match entry {
            FunctionEntry::Url(url) => url,
            FunctionEntry::Limited(LimitedFunction { url, concurrency }) => {
                match concurrency {
                    Some(0) => bail!("[functions] {name}: concurrency must be at least 1"),
                    Some(n) => {
                        function_concurrency.insert(url.clone(), n);
                    }
                    None => {}
                }
                url
            }
        };
        functions.insert(name, url);
    }
    Ok(Settings {
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen,
        cores,
        durability,
        pin: !args.no_pin,
        http,
        region,
        account,
        tls: args.tls_cert.zip(args.tls_key),
        native_tls: args.native_tls_cert.zip(args.native_tls_key),
        tls_client_ca,
        sigv4_keys,
        subscription_ms,
        state_delay_ms: args.state_delay_ms.or(file.state_delay_ms).unwrap_or(0),
        http_connections_max,
        http_idle_ms,
        shard_limits,
        s3,
        functions,
        function_concurrency,
        ca_file: args.ca_file.or(file.ca_file),
        audit,
        users,
        metrics_minutes,
        authorizer,
        kms,
        metrics: args.metrics.or(file.metrics),
        http_allow,
        native_allow,
    })
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread it starts
/// later), so that [`wait_for_signal`] can take them synchronously.
pub(crate) fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame; the calls only write it
    // and the thread's signal mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

pub(crate) fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by `block_signals`; `sig` is a valid out pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Raises the soft open-files limit to the hard one: every connection is a file.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local, zero-initialised rlimit.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    raise_fd_limit();
    let signals = block_signals();
    let mut config = EngineConfig::new(&settings.data_dir);
    if let Some(c) = settings.cores {
        config.cores = c;
    }
    config.durability = settings.durability;
    config.pin = settings.pin;
    config.state_delay_ms = settings.state_delay_ms;
    config.account = settings.account.clone();
    config.kms = settings.kms.clone();
    config.shard_limits = settings
        .shard_limits
        .then(riffle_engine::config::ShardLimits::aws);
    let engine = Engine::start(config).map_err(|e| anyhow!("cannot start: {}", e.message))?;
    // The Glue Data Catalog, opened before Firehose: Firehose's record format
    // conversion reads table schemas through `glue.catalog()` (a
    // `riffle_glue::GlueCatalog`, Clone + Send + Sync).
    let glue = match GlueService::start(
        &engine,
        GlueConfig {
            account: settings.account.clone(),
        },
    ) {
        Ok(g) => g,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("cannot start Glue: {}", e.message);
        }
    };
    // Firehose delivers whether or not HTTP is served.
    let firehose = match FirehoseService::start(
        engine.clone(),
        FirehoseConfig {
            region: settings.region.clone(),
            account: settings.account.clone(),
            state_delay_ms: settings.state_delay_ms,
            s3: settings.s3.clone(),
            functions: settings.functions.clone(),
            ca_file: settings.ca_file.clone(),
            glue: Some(glue.catalog()),
        },
    ) {
        Ok(f) => f,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("cannot start Firehose: {}", e.message);
        }
    };
    // Lambda event-source mappings invoke whether or not HTTP is served.
    let lambda = match riffle_lambda::LambdaService::start(
        engine.clone(),
        riffle_lambda::LambdaConfig {
            region: settings.region.clone(),
            account: settings.account.clone(),
            state_delay_ms: settings.state_delay_ms,
            functions: settings.functions.clone(),
            concurrency: settings.function_concurrency.clone(),
            ca_file: settings.ca_file.clone(),
            invocation_timeout: riffle_lambda::LambdaConfig::INVOCATION_TIMEOUT,
        },
    ) {
        Ok(l) => l,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("cannot start Lambda event-source mappings: {}", e.message);
        }
    };
    // Kinesis Data Analytics applications (their metadata; HTTP only).
    let analytics = {
        let firehose = firehose.clone();
        // Reference objects and DiscoverInputSchema's samples on the
        // S3-compatible server Firehose delivers to.
        let objects = firehose.s3_client().map(|client| {
            let reader: riffle_analytics::ObjectReader = Arc::new(
                move |bucket: String, key: String, max: usize, whole: bool| {
                    let client = client.clone();
                    Box::pin(async move { client.get(&bucket, &key, max, whole).await })
                },
            );
            reader
        });
        match riffle_analytics::AnalyticsService::start(
            engine.clone(),
            riffle_analytics::AnalyticsConfig {
                region: settings.region.clone(),
                account: settings.account.clone(),
                state_delay_ms: settings.state_delay_ms,
                functions: settings.functions.clone(),
                applications_max: riffle_analytics::limits::APPLICATIONS_MAX,
                delivery_streams: Some(Arc::new({
                    let firehose = firehose.clone();
                    move |name: &str| firehose.records_stream(name)
                })),
                delivery_puts: Some(Arc::new(move |name: &str, records: u64, bytes: u64| {
                    firehose.count_incoming(name, records, bytes)
                })),
                objects,
                ca_file: settings.ca_file.clone(),
            },
        ) {
            Ok(a) => a,
            Err(e) => {
                let _ = engine.shutdown();
                bail!("cannot start Kinesis Data Analytics: {}", e.message);
            }
        }
    };
    // Kinesis Video Streams (its control plane; HTTP only).
    let video = match riffle_video::VideoService::start(
        engine.clone(),
        riffle_video::VideoConfig {
            region: settings.region.clone(),
            account: settings.account.clone(),
            state_delay_ms: settings.state_delay_ms,
            tls: settings.tls.is_some(),
            streams_max: riffle_video::VideoConfig::STREAMS_MAX,
            ca_file: settings.ca_file.clone(),
        },
    ) {
        Ok(v) => v,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("cannot start Kinesis Video Streams: {}", e.message);
        }
    };
    // Consumer groups' leases (served on the native port only).
    let groups = match riffle_groups::GroupsService::start(&engine) {
        Ok(g) => g,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("cannot start consumer groups: {}", e.message);
        }
    };
    // The native port opens once every service it serves is ready (Firehose's
    // FirehosePutRecordBatch and FirehoseDescribe, the consumer groups'
    // operations, among Kinesis's).
    // The audit trail of the HTTP API's and the native protocol's calls
    // (written by a thread of its own).
    let audit_log = match &settings.audit {
        Some(a) => {
            let mut config = riffle_engine::audit::AuditConfig::new(
                settings.data_dir.join("audit"),
                &settings.account,
                &settings.region,
            );
            config.retention = a.retention;
            match riffle_engine::audit::AuditLog::open(config) {
                Ok(log) => Some(Arc::new(log)),
                Err(e) => {
                    let _ = engine.shutdown();
                    bail!("cannot open the audit trail: {e}");
                }
            }
        }
        _ => None,
    };
    let trail = audit_log.as_ref().map(|log| {
        Arc::new(riffle_engine::http::Trail {
            log: log.clone(),
            data_events: settings.audit.as_ref().is_some_and(|a| a.data_events),
            account: settings.account.clone(),
            region: settings.region.clone(),
            users: settings.users.clone(),
            accounts: settings
                .authorizer
                .iter()
                .flat_map(|a| &a.identities)
                .filter(|(_, i)| i.account != settings.account)
                .map(|(key, i)| (key.clone(), i.account.clone()))
                .collect(),
        })
    });
    let mut extensions = Extensions::new();
    extensions.register(Arc::new(firehose.clone()));
    extensions.register(Arc::new(groups));
    let server = match NativeServer::start_with(
        &engine,
        NetConfig {
            allow: settings.native_allow.clone(),
            // With signatures checked, native connections authenticate with
            // the same access keys and are decided by the same policies.
            tls: settings.native_tls.clone(),
            tls_client_ca: settings.tls_client_ca.clone(),
            trail: trail.clone(),
            auth: settings
                .sigv4_keys
                .clone()
                .map(|keys| riffle_engine::net::auth::NativeAuth {
                    keys,
                    authorizer: settings.authorizer.clone(),
                    region: settings.region.clone(),
                    account: settings.account.clone(),
                }),
            ..NetConfig::new(settings.listen)
        },
        extensions,
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = engine.shutdown();
            bail!("{}", e.message);
        }
    };
    let http_config = |a| HttpConfig {
        trail: trail.clone(),
        authorizer: settings.authorizer.clone(),
        tls: settings.tls.clone(),
        sigv4_keys: settings.sigv4_keys.clone(),
        region: settings.region.clone(),
        connections_per_core_max: settings.http_connections_max,
        idle_ms: settings.http_idle_ms,
        allow: settings.http_allow.clone(),
        tls_client_ca: settings.tls_client_ca.clone(),
        ..HttpConfig::new(a)
    };
    // Every service's metrics, served at GET /metrics on the HTTP port.
    let mut registry = riffle_engine::metrics::registry();
    registry
        .sub_registry_with_prefix("firehose")
        .register_collector(Box::new(firehose.metrics()));
    registry
        .sub_registry_with_prefix("lambda")
        .register_collector(Box::new(lambda.metrics()));
    registry
        .sub_registry_with_prefix("kinesisanalytics")
        .register_collector(Box::new(analytics.metrics()));
    registry
        .sub_registry_with_prefix("kinesisvideo")
        .register_collector(Box::new(video.metrics()));
    registry
        .sub_registry_with_prefix("engine")
        .register_collector(Box::new(riffle_engine::engine_metrics::EngineMetrics::new(
            engine.clone(),
        )));
    registry
        .sub_registry_with_prefix("kinesis")
        .register_collector(Box::new(
            riffle_engine::kinesis::metrics::KinesisMetrics::new(engine.clone()),
        ));
    let registry = Arc::new(registry);
    // CloudWatch's API: the same metrics as one-minute points, closed by a
    // thread of their own.
    let ring = Arc::new(riffle_engine::cloudwatch::ring::Ring::new(
        vec![
            Arc::new(riffle_engine::kinesis::metrics::KinesisMetrics::new(
                engine.clone(),
            )),
            Arc::new(firehose.metrics()),
            Arc::new(video.metrics()),
            Arc::new(analytics.metrics()),
        ],
        settings.metrics_minutes,
        riffle_engine::rt::now_ms(),
    ));
    let (stop_sampling, sampling) = flume::bounded::<()>(1);
    {
        let ring = ring.clone();
        std::thread::Builder::new()
            .name("riffle-metrics".into())
            .spawn(move || ring.run(sampling))
            .context("cannot start the metrics sampler")?;
    }
    // GET /ready answers 200 once every listener is up, until shutdown.
    let readiness = riffle_engine::http::health::Readiness::default();
    // The AWS services on the HTTP port.
    let services = || {
        let mut services = Services::new();
        services.register(Arc::new(KinesisService::new(
            engine.clone(),
            KinesisConfig {
                region: settings.region.clone(),
                account: settings.account.clone(),
                subscription_ms: settings.subscription_ms,
            },
        )));
        services.register(Arc::new(firehose.clone()));
        services.register(Arc::new(glue.clone()));
        services.register(Arc::new(lambda.clone()));
        services.register(Arc::new(analytics.clone()));
        services.register(Arc::new(video.clone()));
        services.register(Arc::new(riffle_engine::http::metrics::MetricsService::new(
            registry.clone(),
            settings.sigv4_keys.clone(),
            settings.authorizer.clone(),
        )));
        services.register(Arc::new(riffle_engine::http::health::HealthService::new(
            readiness.clone(),
        )));
        services.register(Arc::new(riffle_engine::cloudwatch::CloudWatchService::new(
            ring.clone(),
        )));
        services.register(Arc::new(riffle_engine::http::console::ConsoleService::new(
            settings.sigv4_keys.clone(),
            settings.authorizer.clone(),
            settings
                .audit
                .as_ref()
                .map(|_| settings.data_dir.join("audit")),
            &settings.region,
            &settings.account,
        )));
        services
    };
    let http = match settings
        .http
        .map(|a| HttpServer::start(&engine, http_config(a), services()))
    {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            server.shutdown(Duration::from_secs(1));
            let _ = engine.shutdown();
            bail!("cannot serve HTTP on {}: {e}", settings.http.expect("set"));
        }
    };
    // The metrics listener: /metrics, /health and /ready only, plain HTTP,
    // the same Basic credentials and the HTTP port's allow-list.
    let metrics_http = match settings.metrics.map(|a| {
        let mut services = Services::new();
        services.register(Arc::new(riffle_engine::http::metrics::MetricsService::new(
            registry.clone(),
            settings.sigv4_keys.clone(),
            settings.authorizer.clone(),
        )));
        services.register(Arc::new(riffle_engine::http::health::HealthService::new(
            readiness.clone(),
        )));
        let config = HttpConfig {
            allow: settings.http_allow.clone(),
            ..HttpConfig::new(a)
        };
        HttpServer::start(&engine, config, services)
    }) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            if let Some(h) = &http {
                h.shutdown();
            }
            server.shutdown(Duration::from_secs(1));
            let _ = engine.shutdown();
            bail!(
                "cannot serve metrics on {}: {e}",
                settings.metrics.expect("set")
            );
        }
    };
    tracing::info!(
        listen = %server.local_addr(),
        http = ?http.as_ref().map(|h| h.local_addr()),
        data_dir = %settings.data_dir.display(),
        cores = engine.core_count(),
        durability = ?settings.durability,
        "riffle server ready"
    );
    readiness.set(true);
    // The one line scripts wait for.
    println!("riffle listening on {}", server.local_addr());
    if let Some(h) = &http {
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("riffle http listening on {}", h.local_addr());
        tracing::info!(endpoint = %format!("{scheme}://{}", h.local_addr()), "AWS API ready");
    }
    if let Some(m) = &metrics_http {
        println!("riffle metrics listening on {}", m.local_addr());
    }
    let sig = wait_for_signal(&signals);
    tracing::info!(signal = sig, "shutting down");
    readiness.set(false);
    // Both gateways stop accepting, let the requests in flight finish (up to
    // 30 s), then the engine syncs and stops.
    if let Some(h) = &http {
        h.shutdown();
    }
    if let Some(m) = &metrics_http {
        m.shutdown();
    }
    server.shutdown(Duration::from_secs(30));
    if let Some(h) = &http {
        let left = h.drain(Duration::from_secs(30));
        if left > 0 {
            tracing::warn!(requests = left, "HTTP requests still in flight at shutdown");
        }
    }
    if let Some(m) = &metrics_http {
        m.drain(Duration::from_secs(2));
    }
    // Every call answered is in the trail, synced.
    if let Some(log) = &audit_log {
        log.close();
    }
    drop(stop_sampling);
    // Mappings finish their invocations in flight and write their checkpoints.
    lambda.stop(Duration::from_secs(10));
    engine
        .shutdown()
        .map_err(|e| anyhow!("shutdown failed: {}", e.message))?;
    tracing::info!("stopped cleanly");
    Ok(())
}
