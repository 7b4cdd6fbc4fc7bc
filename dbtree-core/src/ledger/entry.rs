//! Ledger entries and their kinds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::IdempotencyKey;
use crate::ids::{EntryId, InstanceId, UserId};
use crate::lemons::Lemons;

/// Why a balance changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The one-off bonus for a newly registered email address.
    WelcomeBonus,
    /// The reward for winning a lemon.
    Harvest,
    /// The bonus for harvesting on 3, 7 or 30 consecutive UTC days.
    StreakBonus,
    /// The one-off creation cost of an instance.
    InstanceCreate,
    /// The hourly running cost of an instance.
    InstanceHourly,
    /// A creation cost given back after a failed provisioning.
    InstanceRefund,
    /// Lemons granted by an administrator.
    AdminGrant,
}

impl EntryKind {
    /// Every kind, in declaration order.
    pub const ALL: [EntryKind; 7] = [
        EntryKind::WelcomeBonus,
        EntryKind::Harvest,
        EntryKind::StreakBonus,
        EntryKind::InstanceCreate,
        EntryKind::InstanceHourly,
        EntryKind::InstanceRefund,
        EntryKind::AdminGrant,
    ];

    /// Whether this kind takes lemons away from the balance.
    pub const fn is_debit(self) -> bool {
        matches!(self, EntryKind::InstanceCreate | EntryKind::InstanceHourly)
    }

    /// Whether this kind is an earning, which the balance cap clips.
    pub const fn is_earning(self) -> bool {
        matches!(
            self,
            EntryKind::WelcomeBonus
                | EntryKind::Harvest
                | EntryKind::StreakBonus
                | EntryKind::AdminGrant
        )
    }

    /// The stable snake_case name used in storage and in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::WelcomeBonus => "welcome_bonus",
            EntryKind::Harvest => "harvest",
            EntryKind::StreakBonus => "streak_bonus",
            EntryKind::InstanceCreate => "instance_create",
            EntryKind::InstanceHourly => "instance_hourly",
            EntryKind::InstanceRefund => "instance_refund",
            EntryKind::AdminGrant => "admin_grant",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A stored kind name that dbtree does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger entry kind `{0}`")]
pub struct UnknownEntryKind(pub String);

impl FromStr for EntryKind {
    type Err = UnknownEntryKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEntryKind(s.to_owned()))
    }
}

/// One immutable balance change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Derived from `key` ([`IdempotencyKey::entry_id`]).
    pub id: EntryId,
    /// Whose balance changed.
    pub user: UserId,
    /// Why it changed.
    pub kind: EntryKind,
    /// The signed change: positive for credits, negative for debits.
    pub delta: i64,
    /// The balance right after this entry.
    pub balance_after: Lemons,
    /// The business event this entry records.
    pub key: IdempotencyKey,
    /// The instance the entry is about, for instance costs and refunds.
    pub instance: Option<InstanceId>,
    /// When the entry was written.
    pub at: DateTime<Utc>,
}
