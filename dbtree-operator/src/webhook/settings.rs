//! The `dbtree-webhook` command line (`DBTREE_WEBHOOK_*` environment variables), checked at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dbtree_core::instance::{InstancePolicy, MilliCpu, NodeBudget, NodePortPolicy};

use super::WebhookConfig;

/// dbtree's validating admission webhook for `DBInstance` objects.
#[derive(Clone, Debug, Parser)]
#[command(name = "dbtree-webhook", version)]
pub struct WebhookSettings {
    /// Address to serve `POST /validate` and `GET /healthz` on, over TLS.
    #[arg(long, env = "DBTREE_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain served to the API server.
    #[arg(long, env = "DBTREE_WEBHOOK_TLS_CERT", default_value = "/tls/tls.crt")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, env = "DBTREE_WEBHOOK_TLS_KEY", default_value = "/tls/tls.key")]
    pub tls_key: PathBuf,
    /// A user name allowed to create DBInstances for any owner (repeatable), e.g.
    /// `system:serviceaccount:dbtree:dbtree-server`.
    #[arg(
        long = "trusted-service-account",
        env = "DBTREE_WEBHOOK_TRUSTED_SERVICE_ACCOUNTS",
        value_delimiter = ','
    )]
    pub trusted_service_accounts: Vec<String>,
    /// Live instances one owner may have.
    #[arg(long, env = "DBTREE_WEBHOOK_MAX_LIVE_PER_USER", default_value_t = 2)]
    pub max_live_per_user: u32,
    /// Node CPU, in cores.
    #[arg(long, env = "DBTREE_WEBHOOK_NODE_CPU", default_value_t = 2.0)]
    pub node_cpu: f64,
    /// Node memory, MiB.
    #[arg(long, env = "DBTREE_WEBHOOK_NODE_MEMORY_MIB", default_value_t = 8192)]
    pub node_memory_mib: u32,
    /// CPU kept for the system, in cores.
    #[arg(long, env = "DBTREE_WEBHOOK_RESERVED_CPU", default_value_t = 0.5)]
    pub reserved_cpu: f64,
    /// Memory kept for the system, MiB.
    #[arg(
        long,
        env = "DBTREE_WEBHOOK_RESERVED_MEMORY_MIB",
        default_value_t = 1536
    )]
    pub reserved_memory_mib: u32,
    /// First NodePort instances may use.
    #[arg(long, env = "DBTREE_WEBHOOK_NODE_PORT_FIRST", default_value_t = 30000)]
    pub node_port_first: u16,
    /// Last NodePort instances may use (inclusive).
    #[arg(long, env = "DBTREE_WEBHOOK_NODE_PORT_LAST", default_value_t = 31999)]
    pub node_port_last: u16,
    /// NodePorts in the range that instances may never use (comma-separated).
    #[arg(
        long,
        env = "DBTREE_WEBHOOK_RESERVED_NODE_PORTS",
        value_delimiter = ',',
        default_value = "30080"
    )]
    pub reserved_node_ports: Vec<u16>,
}

/// A setting that cannot work, named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct InvalidSetting {
    /// The flag.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl WebhookSettings {
    /// The webhook configuration these settings describe.
    ///
    /// # Errors
    /// [`InvalidSetting`] naming the first flag that cannot work.
    pub fn config(&self) -> Result<WebhookConfig, InvalidSetting> {
        let cores = |setting: &'static str, value: f64| {
            MilliCpu::from_cores(value).ok_or_else(|| InvalidSetting {
                setting,
                problem: format!("{value} is not a whole number of millicores"),
            })
        };
        let budget = NodeBudget {
            total_cpu: cores("--node-cpu", self.node_cpu)?,
            total_memory_mib: self.node_memory_mib,
            reserved_cpu: cores("--reserved-cpu", self.reserved_cpu)?,
            reserved_memory_mib: self.reserved_memory_mib,
        };
        if budget.usable_cpu().0 == 0 || budget.usable_memory_mib() == 0 {
            return Err(InvalidSetting {
                setting: "--reserved-cpu",
                problem: "the reserve leaves no CPU or memory for instances".to_owned(),
            });
        }
        if self.node_port_first > self.node_port_last {
            return Err(InvalidSetting {
                setting: "--node-port-first",
                problem: format!(
                    "{} is after --node-port-last {}",
                    self.node_port_first, self.node_port_last
                ),
            });
        }
        if self.trusted_service_accounts.iter().any(String::is_empty) {
            return Err(InvalidSetting {
                setting: "--trusted-service-account",
                problem: "must not be empty".to_owned(),
            });
        }
        let instances = InstancePolicy {
            max_live_per_user: self.max_live_per_user,
            budget,
            node_ports: NodePortPolicy {
                first: self.node_port_first,
                last: self.node_port_last,
                reserved: self.reserved_node_ports.iter().copied().collect(),
            },
        };
        Ok(WebhookConfig::new(
            self.trusted_service_accounts.iter().cloned(),
            instances,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(args: &[&str]) -> WebhookSettings {
        WebhookSettings::try_parse_from(
            std::iter::once("dbtree-webhook").chain(args.iter().copied()),
        )
        .unwrap()
    }

    #[test]
    fn defaults_are_the_products_policy() {
        let config = parse(&[]).config().unwrap();
        assert_eq!(config.instances, InstancePolicy::default());
        assert!(config.trusted_service_accounts.is_empty());
    }

    #[test]
    fn trusted_accounts_repeat_and_bad_numbers_are_named() {
        let s = parse(&[
            "--trusted-service-account",
            "system:serviceaccount:dbtree:dbtree-server",
            "--trusted-service-account",
            "admin",
        ]);
        let config = s.config().unwrap();
        assert!(config.is_trusted("admin"));
        assert!(config.is_trusted("system:serviceaccount:dbtree:dbtree-server"));
        assert!(!config.is_trusted("alice"));
        let e = parse(&["--node-cpu", "1.0001"]).config().unwrap_err();
        assert_eq!(e.setting, "--node-cpu");
        let e = parse(&["--node-port-first", "32000"]).config().unwrap_err();
        assert_eq!(e.setting, "--node-port-first");
        let e = parse(&["--reserved-cpu", "2"]).config().unwrap_err();
        assert_eq!(e.setting, "--reserved-cpu");
    }
}
