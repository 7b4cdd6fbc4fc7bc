//! `Lemons`, the virtual currency every balance, price and reward is counted in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative amount of lemons.
///
/// Balances, prices and rewards are all `Lemons`; a ledger entry's signed change is an `i64`
/// derived from its kind (see [`crate::ledger::EntryKind`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lemons(u32);

impl Lemons {
    /// No lemons.
    pub const ZERO: Lemons = Lemons(0);

    /// `n` lemons.
    pub const fn new(n: u32) -> Self {
        Self(n)
    }

    /// The amount as a plain number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The amount as a signed 64-bit number (for ledger arithmetic).
    pub const fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Lemons) -> Option<Lemons> {
        match self.0.checked_add(other.0) {
            Some(n) => Some(Lemons(n)),
            None => None,
        }
    }

    /// `self - other`, or `None` if `other` is larger.
    pub const fn checked_sub(self, other: Lemons) -> Option<Lemons> {
        match self.0.checked_sub(other.0) {
            Some(n) => Some(Lemons(n)),
            None => None,
        }
    }

    /// `self - other`, floored at zero.
    pub const fn saturating_sub(self, other: Lemons) -> Lemons {
        Lemons(self.0.saturating_sub(other.0))
    }

    /// `self × factor`, or `None` on overflow.
    pub const fn checked_mul(self, factor: u32) -> Option<Lemons> {
        match self.0.checked_mul(factor) {
            Some(n) => Some(Lemons(n)),
            None => None,
        }
    }

    /// Converts a stored signed amount back, refusing negatives and overflow.
    pub fn try_from_i64(n: i64) -> Option<Lemons> {
        u32::try_from(n).ok().map(Lemons)
    }
}

impl fmt::Display for Lemons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Lemons::new(3).checked_sub(Lemons::new(4)), None);
        assert_eq!(Lemons::new(3).saturating_sub(Lemons::new(4)), Lemons::ZERO);
        assert_eq!(Lemons::new(u32::MAX).checked_add(Lemons::new(1)), None);
        assert_eq!(Lemons::new(7).checked_mul(24), Some(Lemons::new(168)));
        assert_eq!(Lemons::try_from_i64(-1), None);
        assert_eq!(Lemons::try_from_i64(15), Some(Lemons::new(15)));
    }
}
