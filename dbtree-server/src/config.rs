//! Configuration: command-line flags and `DBTREE_*` environment variables, validated at start
//! with an error that names the bad setting. Secrets (database and Redis URLs may hold
//! passwords) are never printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use clap::{Parser, ValueEnum};
use dbtree_core::auth::{CodeKey, Email};
use dbtree_core::instance::{MilliCpu, NodeBudget, NodePortPolicy};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;

use crate::limits::HttpLimits;

/// Where sign-in codes and notifications go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MailerKind {
    /// Log them (development, the embedded default).
    Console,
    /// Amazon SES.
    Ses,
}

/// Where instances run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClusterKind {
    /// Real engine processes on this machine.
    Local,
    /// `DBInstance` objects in a Kubernetes cluster, run by the dbtree operator (in-cluster
    /// service account, or the local kubeconfig).
    Kube,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The dbtree server.
#[derive(Clone, Parser)]
#[command(
    name = "dbtree-server",
    version,
    about = "Lemon-gated databases: the dbtree API server"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "DBTREE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the SQLite file and local engines.
    #[arg(long, env = "DBTREE_DATA_DIR", default_value = "./dbtree-data")]
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…` (default: the SQLite file in the data directory).
    #[arg(long, env = "DBTREE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "DBTREE_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// `redis://…` for quiz locks and rate limits shared by replicas (default: in-process).
    #[arg(long, env = "DBTREE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Where sign-in codes and notifications go.
    #[arg(long, env = "DBTREE_MAILER", value_enum, default_value = "console")]
    pub mailer: MailerKind,
    /// SES region (default: from the AWS configuration).
    #[arg(long, env = "DBTREE_SES_REGION")]
    pub ses_region: Option<String>,
    /// SES sender address (required with `--mailer ses`).
    #[arg(long, env = "DBTREE_SES_FROM")]
    pub ses_from: Option<String>,
    /// SES endpoint override (for tests and VPC endpoints).
    #[arg(long, env = "DBTREE_SES_ENDPOINT")]
    pub ses_endpoint: Option<String>,
    /// Where instances run.
    #[arg(long, env = "DBTREE_CLUSTER", value_enum, default_value = "local")]
    pub cluster: ClusterKind,
    /// Host name users connect to their databases with.
    #[arg(long, env = "DBTREE_PUBLIC_HOST", default_value = "127.0.0.1")]
    pub public_host: String,
    /// Address local engines listen on.
    #[arg(long, env = "DBTREE_LOCAL_BIND", default_value = "127.0.0.1")]
    pub local_bind: String,
    /// Keep local engines running when the server stops (by default a graceful shutdown stops
    /// them, data kept, and the next start brings back those that should run).
    #[arg(long, env = "DBTREE_KEEP_ENGINES_RUNNING", default_value_t = false)]
    pub keep_engines_running: bool,
    /// The `ferretdb` binary for local MongoDB instances when `mongod` is not installed
    /// (default: `ferretdb` on PATH, else what `.ci/ferretdb` built in ~/.cache/dbtree).
    #[arg(long, env = "DBTREE_FERRETDB")]
    pub ferretdb: Option<PathBuf>,
    /// Administrators' emails, comma-separated.
    #[arg(long, env = "DBTREE_ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
    /// Browser origins allowed to call the API, comma-separated.
    #[arg(long, env = "DBTREE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Node vCPU.
    #[arg(long, env = "DBTREE_NODE_CPU", default_value_t = 2.0)]
    pub node_cpu: f64,
    /// Node memory, MiB.
    #[arg(long, env = "DBTREE_NODE_MEMORY_MIB", default_value_t = 8192)]
    pub node_memory_mib: u32,
    /// vCPU reserved for the system.
    #[arg(long, env = "DBTREE_RESERVED_CPU", default_value_t = 0.5)]
    pub reserved_cpu: f64,
    /// Memory reserved for the system, MiB.
    #[arg(long, env = "DBTREE_RESERVED_MEMORY_MIB", default_value_t = 1536)]
    pub reserved_memory_mib: u32,
    /// First NodePort handed out.
    #[arg(long, env = "DBTREE_NODE_PORT_FIRST", default_value_t = 30000)]
    pub node_port_first: u16,
    /// Last NodePort handed out.
    #[arg(long, env = "DBTREE_NODE_PORT_LAST", default_value_t = 31999)]
    pub node_port_last: u16,
    /// NodePorts never handed out, comma-separated.
    #[arg(
        long,
        env = "DBTREE_RESERVED_NODE_PORTS",
        value_delimiter = ',',
        default_value = "30080"
    )]
    pub reserved_node_ports: Vec<u16>,
    /// Welcome bonus, lemons.
    #[arg(long, env = "DBTREE_WELCOME_BONUS", default_value_t = 15)]
    pub welcome_bonus: u32,
    /// Harvest reward, lemons.
    #[arg(long, env = "DBTREE_HARVEST_REWARD", default_value_t = 3)]
    pub harvest_reward: u32,
    /// Balance cap for earnings, lemons.
    #[arg(long, env = "DBTREE_BALANCE_CAP", default_value_t = 500)]
    pub balance_cap: u32,
    /// Live instances per user.
    #[arg(long, env = "DBTREE_MAX_INSTANCES_PER_USER", default_value_t = 2)]
    pub max_instances_per_user: u32,
    /// Seconds between billing passes (each hour is charged once whatever the interval).
    #[arg(long, env = "DBTREE_BILLING_INTERVAL_SECS", default_value_t = 300)]
    pub billing_interval_secs: u64,
    /// Log format.
    #[arg(long, env = "DBTREE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Key sign-in codes are stored under (HMAC-SHA-256): 64 hexadecimal characters, the same on
    /// every replica (default: `secret.key` in the data directory, created on first start).
    #[arg(long, env = "DBTREE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Largest request body accepted, bytes (larger: 413 `payload_too_large`).
    #[arg(long, env = "DBTREE_MAX_BODY_BYTES", default_value_t = 65536)]
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive (slower: 408 `request_timeout`).
    #[arg(long, env = "DBTREE_BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,
    /// Seconds a request's headers may take to arrive; also how long a kept-alive connection may
    /// wait for its next request.
    #[arg(long, env = "DBTREE_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may move no data before it is closed.
    #[arg(long, env = "DBTREE_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Live event streams (`/api/v1/tree/events`) in all (more: 503).
    #[arg(long, env = "DBTREE_MAX_EVENT_STREAMS", default_value_t = 1000)]
    pub max_event_streams: u32,
    /// Live event streams per client address (more: 429).
    #[arg(
        long,
        env = "DBTREE_MAX_EVENT_STREAMS_PER_CLIENT",
        default_value_t = 20
    )]
    pub max_event_streams_per_client: u32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.as_deref().map(redact))
            .field("redis", &self.redis_url.as_deref().map(redact))
            .field("mailer", &self.mailer)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A setting that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The flag and variable.
    pub setting: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn bad(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file (its URL).
    Sqlite(String),
    /// PostgreSQL (its URL, which may hold a password).
    Postgres(String),
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Storage.
    pub storage: Storage,
    /// PostgreSQL pool size.
    pub database_max_connections: u32,
    /// Redis URL, if any.
    pub redis_url: Option<String>,
    /// Mailer.
    pub mailer: MailerKind,
    /// SES settings.
    pub ses: Option<SesConfig>,
    /// Cluster driver.
    pub cluster: ClusterKind,
    /// Public host.
    pub public_host: String,
    /// Bind address of local engines.
    pub local_bind: String,
    /// Whether local engines outlive the server.
    pub keep_engines_running: bool,
    /// The FerretDB binary, if given.
    pub ferretdb: Option<PathBuf>,
    /// CORS origins.
    pub cors_origins: Vec<String>,
    /// Every number.
    pub policy: Policy,
    /// Billing pass interval.
    pub billing_interval: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// The configured sign-in code key, if any (else the data directory's key file).
    pub secret_key: Option<CodeKey>,
    /// Request, connection and event-stream limits.
    pub http: HttpLimits,
}

/// SES settings.
#[derive(Clone, Debug)]
pub struct SesConfig {
    /// Region override.
    pub region: Option<String>,
    /// Sender.
    pub from: Email,
    /// Endpoint override.
    pub endpoint: Option<String>,
}

impl Settings {
    /// Checks every setting and builds the configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            bad(
                "--listen / DBTREE_LISTEN",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        let secret_key = self
            .secret_key
            .as_deref()
            .map(CodeKey::parse)
            .transpose()
            .map_err(|e| bad("--secret-key / DBTREE_SECRET_KEY", e.to_string()))?;
        let http = self.http_limits()?;
        let cors_origins = self
            .cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| {
                let scheme_ok = o.starts_with("https://") || o.starts_with("http://");
                if scheme_ok && poem::http::HeaderValue::from_str(o).is_ok() && !o.ends_with('/') {
                    Ok(o.to_owned())
                } else {
                    Err(bad(
                        "--cors-origins / DBTREE_CORS_ORIGINS",
                        format!("`{o}` is not an origin like https://app.example.org"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let storage = match self.database_url {
            None => Storage::Sqlite(format!(
                "sqlite:{}",
                self.data_dir.join("dbtree.sqlite").display()
            )),
            Some(url) if url.starts_with("sqlite:") => Storage::Sqlite(url),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Storage::Postgres(url)
            }
            Some(url) => {
                return Err(bad(
                    "--database-url / DBTREE_DATABASE_URL",
                    format!("`{}` must start with sqlite: or postgres://", redact(&url)),
                ));
            }
        };
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(bad(
                "--redis-url / DBTREE_REDIS_URL",
                format!("`{}` must start with redis:// or rediss://", redact(url)),
            ));
        }
        let ses = match self.mailer {
            MailerKind::Console => None,
            MailerKind::Ses => {
                let from = self.ses_from.as_deref().ok_or_else(|| {
                    bad(
                        "--ses-from / DBTREE_SES_FROM",
                        "is required with --mailer ses",
                    )
                })?;
                let from = Email::parse(from)
                    .map_err(|e| bad("--ses-from / DBTREE_SES_FROM", e.to_string()))?;
                Some(SesConfig {
                    region: self.ses_region.clone(),
                    from,
                    endpoint: self.ses_endpoint.clone(),
                })
            }
        };
        let admin_emails = self
            .admin_emails
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                Email::parse(e).map_err(|err| {
                    bad(
                        "--admin-emails / DBTREE_ADMIN_EMAILS",
                        format!("`{e}`: {err}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cpu = |setting, value: f64| {
            MilliCpu::from_cores(value)
                .ok_or_else(|| bad(setting, format!("{value} is not a number of cores")))
        };
        let budget = NodeBudget {
            total_cpu: cpu("--node-cpu / DBTREE_NODE_CPU", self.node_cpu)?,
            total_memory_mib: self.node_memory_mib,
            reserved_cpu: cpu("--reserved-cpu / DBTREE_RESERVED_CPU", self.reserved_cpu)?,
            reserved_memory_mib: self.reserved_memory_mib,
        };
        if budget.usable_cpu().0 == 0 || budget.usable_memory_mib() == 0 {
            return Err(bad(
                "--reserved-cpu / --reserved-memory-mib",
                "the reserve leaves nothing for instances",
            ));
        }
        if self.node_port_first > self.node_port_last || self.node_port_first < 1024 {
            return Err(bad(
                "--node-port-first / --node-port-last",
                format!(
                    "{}-{} is not a range of unprivileged ports",
                    self.node_port_first, self.node_port_last
                ),
            ));
        }
        if self.balance_cap == 0 || self.harvest_reward == 0 {
            return Err(bad("--balance-cap / --harvest-reward", "must be positive"));
        }
        if self.billing_interval_secs == 0 || self.billing_interval_secs > 3600 {
            return Err(bad(
                "--billing-interval-secs / DBTREE_BILLING_INTERVAL_SECS",
                "must be between 1 and 3600",
            ));
        }
        let mut policy = Policy::default();
        policy.ledger.welcome_bonus = Lemons::new(self.welcome_bonus);
        policy.ledger.harvest_reward = Lemons::new(self.harvest_reward);
        policy.ledger.balance_cap = Lemons::new(self.balance_cap);
        policy.instances.max_live_per_user = self.max_instances_per_user;
        policy.instances.budget = budget;
        policy.instances.node_ports = NodePortPolicy {
            first: self.node_port_first,
            last: self.node_port_last,
            reserved: self.reserved_node_ports.iter().copied().collect(),
        };
        policy.auth.admin_emails = admin_emails;
        policy.billing.interval =
            TimeDelta::seconds(i64::try_from(self.billing_interval_secs).unwrap_or(3600));
        Ok(Config {
            listen,
            data_dir: self.data_dir,
            storage,
            database_max_connections: self.database_max_connections.max(1),
            redis_url: self.redis_url,
            mailer: self.mailer,
            ses,
            cluster: self.cluster,
            public_host: self.public_host,
            local_bind: self.local_bind,
            keep_engines_running: self.keep_engines_running,
            ferretdb: self.ferretdb,
            cors_origins,
            policy,
            billing_interval: Duration::from_secs(self.billing_interval_secs),
            log_format: self.log_format,
            secret_key,
            http,
        })
    }

    /// The HTTP limits, each checked.
    fn http_limits(&self) -> Result<HttpLimits, ConfigError> {
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(bad(
                "--max-body-bytes / DBTREE_MAX_BODY_BYTES",
                "must be between 1024 and 16777216",
            ));
        }
        let secs = |setting, value: u64| {
            if (1..=3600).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(bad(setting, "must be between 1 and 3600 seconds"))
            }
        };
        if self.max_event_streams == 0 || self.max_event_streams_per_client == 0 {
            return Err(bad(
                "--max-event-streams / --max-event-streams-per-client",
                "must be positive",
            ));
        }
        Ok(HttpLimits {
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: secs(
                "--body-read-timeout-secs / DBTREE_BODY_READ_TIMEOUT_SECS",
                self.body_read_timeout_secs,
            )?,
            header_read_timeout: secs(
                "--header-read-timeout-secs / DBTREE_HEADER_READ_TIMEOUT_SECS",
                self.header_read_timeout_secs,
            )?,
            idle_timeout: secs(
                "--idle-timeout-secs / DBTREE_IDLE_TIMEOUT_SECS",
                self.idle_timeout_secs,
            )?,
            max_event_streams: self.max_event_streams,
            max_event_streams_per_client: self.max_event_streams_per_client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut all = vec!["dbtree-server"];
        all.extend_from_slice(args);
        Settings::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults_are_the_embedded_default() {
        let c = settings(&[]).validate().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.storage,
            Storage::Sqlite("sqlite:./dbtree-data/dbtree.sqlite".into())
        );
        assert_eq!(
            (c.mailer, c.cluster),
            (MailerKind::Console, ClusterKind::Local)
        );
        assert_eq!(
            c.policy,
            Policy {
                billing: c.policy.billing.clone(),
                ..Policy::default()
            }
        );
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.http.max_body_bytes, 65536);
        assert!(c.secret_key.is_none(), "the key file is the default");
    }

    #[test]
    fn http_limits_and_the_secret_key_are_configurable() {
        let key = "ab".repeat(32);
        let c = settings(&[
            "--max-body-bytes",
            "2048",
            "--header-read-timeout-secs",
            "2",
            "--idle-timeout-secs",
            "5",
            "--max-event-streams",
            "7",
            "--max-event-streams-per-client",
            "3",
            "--secret-key",
            &key,
        ])
        .validate()
        .unwrap();
        assert_eq!(c.http.max_body_bytes, 2048);
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.http.idle_timeout, Duration::from_secs(5));
        assert_eq!(
            (
                c.http.max_event_streams,
                c.http.max_event_streams_per_client
            ),
            (7, 3)
        );
        assert_eq!(c.secret_key, Some(CodeKey::parse(&key).unwrap()));
        assert!(!format!("{c:?}").contains(&key), "the key is never printed");
    }

    #[test]
    fn bad_settings_are_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--listen", "nowhere"], "DBTREE_LISTEN"),
            (
                &["--database-url", "mysql://u:secret@h/db"],
                "DBTREE_DATABASE_URL",
            ),
            (&["--redis-url", "http://x"], "DBTREE_REDIS_URL"),
            (&["--mailer", "ses"], "DBTREE_SES_FROM"),
            (&["--admin-emails", "not-an-email"], "DBTREE_ADMIN_EMAILS"),
            (
                &["--node-port-first", "32000", "--node-port-last", "31000"],
                "--node-port-first",
            ),
            (&["--reserved-cpu", "2.0"], "--reserved-cpu"),
            (
                &["--billing-interval-secs", "0"],
                "DBTREE_BILLING_INTERVAL_SECS",
            ),
            (&["--secret-key", "hunter2"], "DBTREE_SECRET_KEY"),
            (&["--max-body-bytes", "10"], "DBTREE_MAX_BODY_BYTES"),
            (
                &["--header-read-timeout-secs", "0"],
                "DBTREE_HEADER_READ_TIMEOUT_SECS",
            ),
            (&["--max-event-streams", "0"], "--max-event-streams"),
            (&["--cors-origins", "*"], "DBTREE_CORS_ORIGINS"),
        ];
        for (args, named) in cases {
            let err = settings(args).validate().unwrap_err().to_string();
            assert!(err.contains(named), "{args:?}: {err}");
            assert!(
                !err.contains(":secret@") && !err.contains("hunter2"),
                "a secret leaked: {err}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        let s = settings(&["--database-url", "postgres://app:hunter2@db/x"]);
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
