//! What the PostgreSQL and SQLite stores share: conversions between stored values and domain
//! types, and the invariant report.

mod bind;
mod statuses;

use std::fmt;
use std::str::FromStr;

use dbtree_core::boundary::BackendError;
use dbtree_core::instance::{Engine, InstanceSpec, MilliCpu, PresetSize, Price, Resources};
use dbtree_core::lemons::Lemons;

pub(crate) use bind::{bind_i32, bind_i64};
pub(crate) use statuses::status_names;

/// A stored number that must be a lemon amount.
pub(crate) fn lemons(field: &str, n: i64) -> Result<Lemons, BackendError> {
    Lemons::try_from_i64(n)
        .ok_or_else(|| BackendError::new(format!("stored {field} {n} is not a lemon amount")))
}

/// A stored number that must fit a `u32`.
pub(crate) fn u32_of(field: &str, n: i64) -> Result<u32, BackendError> {
    u32::try_from(n).map_err(|_| BackendError::new(format!("stored {field} {n} is out of range")))
}

/// A stored number that must be non-negative.
pub(crate) fn u64_of(field: &str, n: i64) -> Result<u64, BackendError> {
    u64::try_from(n).map_err(|_| BackendError::new(format!("stored {field} {n} is negative")))
}

/// Parses a stored name (status, kind, engine…).
pub(crate) fn parse<T: FromStr>(field: &str, text: &str) -> Result<T, BackendError>
where
    T::Err: fmt::Display,
{
    text.parse()
        .map_err(|e| BackendError::new(format!("stored {field} is invalid: {e}")))
}

/// Rebuilds an instance's spec and price from its stored columns.
pub(crate) fn spec_and_price(
    engine: &str,
    size: Option<&str>,
    cpu_milli: i64,
    memory_mib: i64,
    disk_gib: i64,
    creation_cost: i64,
    hourly_cost: i64,
) -> Result<(InstanceSpec, Price), BackendError> {
    let engine: Engine = parse("engine", engine)?;
    let spec = match size {
        Some(size) => InstanceSpec::Preset {
            engine,
            size: parse::<PresetSize>("size", size)?,
        },
        None => InstanceSpec::Custom {
            engine,
            resources: Resources {
                cpu: MilliCpu(u32_of("cpu_milli", cpu_milli)?),
                memory_mib: u32_of("memory_mib", memory_mib)?,
                disk_gib: u32_of("disk_gib", disk_gib)?,
            },
        },
    };
    let price = Price::from_rates(
        lemons("creation_cost", creation_cost)?,
        lemons("hourly_cost", hourly_cost)?,
    );
    Ok((spec, price))
}

/// One broken invariant found on a live database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A balance differs from the sum of its user's ledger entries.
    BalanceMismatch {
        /// The user.
        user: String,
        /// The stored balance.
        balance: i64,
        /// The sum of the user's entries.
        ledger_sum: i64,
    },
    /// A balance is negative.
    NegativeBalance {
        /// The user.
        user: String,
        /// The balance.
        balance: i64,
    },
    /// An entry's `balance_after` is not the running sum of the entries before it.
    BrokenRunningBalance {
        /// The entry.
        entry: String,
    },
    /// An idempotency key appears more than once.
    RepeatedKey {
        /// The key.
        key: String,
        /// How often.
        count: i64,
    },
    /// A held NodePort does not belong to a live instance.
    OrphanNodePort {
        /// The port.
        port: i64,
        /// The instance it is held for.
        instance: String,
    },
    /// A NodePort is held for more than one instance, or an instance holds several.
    SharedNodePort {
        /// The port or instance.
        what: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::BalanceMismatch {
                user,
                balance,
                ledger_sum,
            } => {
                write!(
                    f,
                    "user {user}: balance {balance} but ledger sum {ledger_sum}"
                )
            }
            Violation::NegativeBalance { user, balance } => {
                write!(f, "user {user}: negative balance {balance}")
            }
            Violation::BrokenRunningBalance { entry } => {
                write!(f, "entry {entry}: balance_after is not the running sum")
            }
            Violation::RepeatedKey { key, count } => {
                write!(f, "idempotency key {key} appears {count} times")
            }
            Violation::OrphanNodePort { port, instance } => {
                write!(
                    f,
                    "NodePort {port} is held for {instance}, which is not a live instance"
                )
            }
            Violation::SharedNodePort { what } => write!(f, "NodePort shared: {what}"),
        }
    }
}

/// The result of an invariant check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvariantReport {
    /// Users checked.
    pub users: u64,
    /// Ledger entries checked.
    pub entries: u64,
    /// NodePorts checked.
    pub node_ports: u64,
    /// What is wrong; empty when every invariant holds.
    pub violations: Vec<Violation>,
}

impl InvariantReport {
    /// Whether every invariant holds.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for InvariantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} users, {} ledger entries, {} NodePorts: {} violations",
            self.users,
            self.entries,
            self.node_ports,
            self.violations.len()
        )?;
        for v in &self.violations {
            write!(f, "\n  - {v}")?;
        }
        Ok(())
    }
}
