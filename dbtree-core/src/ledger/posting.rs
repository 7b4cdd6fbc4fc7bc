//! The posting rule: how much a balance change really moves, or why it is refused.

use serde::{Deserialize, Serialize};

use super::EntryKind;
use crate::lemons::Lemons;

/// The numbers of the lemon economy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPolicy {
    /// Paid once per normalised email address, ever (default 15).
    pub welcome_bonus: Lemons,
    /// Paid for winning a lemon (default 3).
    pub harvest_reward: Lemons,
    /// Earnings stop at this balance (default 500). Refunds ignore it.
    pub balance_cap: Lemons,
}

impl Default for LedgerPolicy {
    fn default() -> Self {
        Self {
            welcome_bonus: Lemons::new(15),
            harvest_reward: Lemons::new(3),
            balance_cap: Lemons::new(500),
        }
    }
}

/// Why a balance change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerRefusal {
    /// A debit larger than the balance.
    #[error("not enough lemons: {required} required, {available} available")]
    InsufficientLemons {
        /// Lemons the operation needs.
        required: Lemons,
        /// Lemons on the balance.
        available: Lemons,
    },
    /// An earning while the balance already sits at the cap.
    #[error("lemon storage is full: the balance is at the cap of {cap}")]
    StorageFull {
        /// The balance cap.
        cap: Lemons,
    },
    /// A posting of zero lemons, which would be an empty entry.
    #[error("a ledger entry must move at least one lemon")]
    ZeroAmount,
    /// A credit that does not fit the counter (never happens with a sane cap).
    #[error("the balance would overflow")]
    Overflow,
}

/// A planned balance change, computed before it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    /// Signed change of the balance.
    pub delta: i64,
    /// Balance after the change.
    pub balance_after: Lemons,
}

/// How much of an earning fits under the cap.
///
/// # Errors
/// [`LedgerRefusal::StorageFull`] if the balance is already at (or above) the cap.
pub fn clip_earning(balance: Lemons, amount: Lemons, cap: Lemons) -> Result<Lemons, LedgerRefusal> {
    match cap.checked_sub(balance) {
        Some(room) if room > Lemons::ZERO => Ok(amount.min(room)),
        _ => Err(LedgerRefusal::StorageFull { cap }),
    }
}

/// Plans posting `amount` of `kind` on `balance`.
///
/// Debits are refused when the balance is short and never go below zero. Earnings are clipped to
/// the cap (a partially clipped earning posts what fits; at the cap it is refused). Refunds are
/// never refused by the cap.
///
/// # Errors
/// In this order: [`LedgerRefusal::ZeroAmount`], then [`LedgerRefusal::InsufficientLemons`] for
/// debits, [`LedgerRefusal::StorageFull`] for earnings, [`LedgerRefusal::Overflow`] for credits.
pub fn plan_posting(
    kind: EntryKind,
    amount: Lemons,
    balance: Lemons,
    policy: &LedgerPolicy,
) -> Result<Posting, LedgerRefusal> {
    if amount == Lemons::ZERO {
        return Err(LedgerRefusal::ZeroAmount);
    }
    if kind.is_debit() {
        let after = balance
            .checked_sub(amount)
            .ok_or(LedgerRefusal::InsufficientLemons {
                required: amount,
                available: balance,
            })?;
        return Ok(Posting {
            delta: -amount.as_i64(),
            balance_after: after,
        });
    }
    let credited = if kind.is_earning() {
        clip_earning(balance, amount, policy.balance_cap)?
    } else {
        amount
    };
    let after = balance
        .checked_add(credited)
        .ok_or(LedgerRefusal::Overflow)?;
    Ok(Posting {
        delta: credited.as_i64(),
        balance_after: after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: u32) -> Lemons {
        Lemons::new(n)
    }

    type Case = (EntryKind, u32, u32, Result<(i64, u32), LedgerRefusal>);

    #[test]
    fn posting_table() {
        let p = LedgerPolicy::default();
        use EntryKind::*;
        use LedgerRefusal::*;
        let cases: &[Case] = &[
            (Harvest, 3, 0, Ok((3, 3))),
            (Harvest, 3, 498, Ok((2, 500))),
            (Harvest, 3, 499, Ok((1, 500))),
            (Harvest, 3, 500, Err(StorageFull { cap: l(500) })),
            (StreakBonus, 50, 480, Ok((20, 500))),
            (WelcomeBonus, 15, 0, Ok((15, 15))),
            (AdminGrant, 10, 495, Ok((5, 500))),
            (InstanceRefund, 30, 500, Ok((30, 530))),
            (InstanceRefund, 30, 499, Ok((30, 529))),
            (InstanceCreate, 5, 5, Ok((-5, 0))),
            (
                InstanceCreate,
                6,
                5,
                Err(InsufficientLemons {
                    required: l(6),
                    available: l(5),
                }),
            ),
            (
                InstanceHourly,
                1,
                0,
                Err(InsufficientLemons {
                    required: l(1),
                    available: l(0),
                }),
            ),
            (InstanceHourly, 0, 10, Err(ZeroAmount)),
            (InstanceRefund, 1, u32::MAX, Err(Overflow)),
        ];
        for (kind, amount, balance, want) in cases {
            let got = plan_posting(*kind, l(*amount), l(*balance), &p)
                .map(|x| (x.delta, x.balance_after.get()));
            assert_eq!(&got, want, "{kind} of {amount} on {balance}");
        }
    }
}
