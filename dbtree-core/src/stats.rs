//! Figures for stats pages: pagination bounds, the daily-harvest range, and leaderboard rows.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// A page of a list, as requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Items per page, 1–100.
    pub limit: u32,
    /// Items to skip.
    pub offset: u64,
}

/// A request outside what the stats endpoints serve; names the parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max}")]
pub struct RangeError {
    /// The parameter.
    pub field: &'static str,
    /// Minimum.
    pub min: i64,
    /// Maximum.
    pub max: i64,
}

impl PageRequest {
    /// Largest page.
    pub const MAX_LIMIT: u32 = 100;

    /// Validates a page request.
    ///
    /// # Errors
    /// [`RangeError`] for `limit` outside 1–100 or a negative `offset`.
    pub fn new(limit: i64, offset: i64) -> Result<PageRequest, RangeError> {
        let limit = u32::try_from(limit)
            .ok()
            .filter(|l| (1..=Self::MAX_LIMIT).contains(l))
            .ok_or(RangeError {
                field: "limit",
                min: 1,
                max: i64::from(Self::MAX_LIMIT),
            })?;
        let offset = u64::try_from(offset).map_err(|_| RangeError {
            field: "offset",
            min: 0,
            max: i64::MAX,
        })?;
        Ok(PageRequest { limit, offset })
    }
}

/// A page of results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
}

/// Validates the number of days of daily-harvest history (1–90).
///
/// # Errors
/// [`RangeError`] outside 1–90.
pub fn harvest_history_days(days: i64) -> Result<u32, RangeError> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=90).contains(d))
        .ok_or(RangeError {
            field: "days",
            min: 1,
            max: 90,
        })
}

/// Lemons harvested on one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyHarvest {
    /// The day.
    pub day: NaiveDate,
    /// Lemons from harvests and streak bonuses.
    pub lemons: u64,
}

/// Every day of the `days` ending `today`, oldest first, zero where `sparse` has nothing.
pub fn fill_days(today: NaiveDate, days: u32, sparse: &[DailyHarvest]) -> Vec<DailyHarvest> {
    (0..days)
        .rev()
        .filter_map(|back| today.checked_sub_days(Days::new(u64::from(back))))
        .map(|day| DailyHarvest {
            day,
            lemons: sparse
                .iter()
                .filter(|d| d.day == day)
                .map(|d| d.lemons)
                .sum(),
        })
        .collect()
}

/// One leaderboard row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    /// 1-based rank.
    pub rank: u32,
    /// The masked email ([`crate::auth::Email::masked`]).
    pub masked_email: String,
    /// Balance, or correct answers today.
    pub score: u64,
}

/// Global figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalStats {
    /// Sum of harvest rewards ever paid.
    pub lemons_harvested: u64,
    /// Accounts that are not deleted.
    pub live_users: u64,
    /// Instances ever created.
    pub instances_created: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(PageRequest::new(100, 0).is_ok());
        assert_eq!(PageRequest::new(101, 0).unwrap_err().field, "limit");
        assert_eq!(PageRequest::new(0, 0).unwrap_err().field, "limit");
        assert_eq!(PageRequest::new(10, -1).unwrap_err().field, "offset");
        assert_eq!(harvest_history_days(90), Ok(90));
        assert!(harvest_history_days(0).is_err() && harvest_history_days(91).is_err());
    }

    #[test]
    fn days_are_filled_oldest_first() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let yesterday = today.pred_opt().unwrap();
        let filled = fill_days(
            today,
            3,
            &[DailyHarvest {
                day: yesterday,
                lemons: 6,
            }],
        );
        let lemons: Vec<_> = filled.iter().map(|d| d.lemons).collect();
        assert_eq!(lemons, [0, 6, 0]);
        assert_eq!(filled[2].day, today);
    }
}
