//! What the instance console shows besides the instance: the engine's own usage figures and the
//! command-line client to connect with.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use dbtree_core::boundary::UsageReport;
use dbtree_core::instance::{Engine, Instance};

/// The engine's command-line client for an instance: copy `command` and run it; it asks for the
/// password (there is no placeholder to fill in).
#[derive(Debug, Object)]
pub struct CliDto {
    /// `psql`, `redis-cli` or `mongosh`.
    pub tool: String,
    /// The command.
    pub command: String,
}

impl CliDto {
    /// The client of `engine` for `host:port`.
    pub fn new(engine: Engine, host: &str, port: u16) -> Self {
        Self {
            tool: engine.cli_tool().to_owned(),
            command: engine.cli_command(host, port),
        }
    }
}

/// What the instance's engine itself reports about its use, next to what the instance may use.
/// When `available` is false, `reason` says why (the engine is stopped, or the cluster cannot
/// ask it) and no figure is given; a figure the engine does not report is absent.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UsageDto {
    /// Whether the engine answered.
    pub available: bool,
    /// Why there are no figures.
    pub reason: Option<String>,
    /// Memory the engine uses, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory the instance may use, MiB.
    pub memory_limit_mib: u32,
    /// Disk its data uses, bytes.
    pub disk_used_bytes: Option<u64>,
    /// Disk the instance may use, GiB.
    pub disk_limit_gib: u32,
    /// Client connections open now.
    pub connections: Option<u32>,
    /// When the figures were taken.
    pub measured_at: DateTime<Utc>,
}

impl UsageDto {
    /// The report for `instance` at `now`.
    pub fn new(instance: &Instance, report: UsageReport, now: DateTime<Utc>) -> Self {
        let resources = instance.resources();
        let mut dto = Self {
            available: false,
            reason: None,
            memory_used_bytes: None,
            memory_limit_mib: resources.memory_mib,
            disk_used_bytes: None,
            disk_limit_gib: resources.disk_gib,
            connections: None,
            measured_at: now,
        };
        match report {
            UsageReport::Measured(usage) => {
                dto.available = true;
                dto.memory_used_bytes = usage.memory_used_bytes;
                dto.disk_used_bytes = usage.disk_used_bytes;
                dto.connections = usage.connections;
            }
            UsageReport::NotAvailable { reason } => dto.reason = Some(reason),
        }
        dto
    }
}
