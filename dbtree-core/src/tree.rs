//! The shared lemon tree: ten fixed positions, ripeness, regrowth and the choice of each new quiz.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{QuizId, UserId};

/// Number of lemons on the tree.
pub const POSITIONS: u8 = 10;

/// A lemon's place on the tree, `0..=9`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Position(u8);

/// A number that is not a tree position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("position must be between 0 and 9, got {0}")]
pub struct InvalidPosition(pub i64);

impl Position {
    /// Validates a position.
    ///
    /// # Errors
    /// [`InvalidPosition`] outside `0..=9`.
    pub fn new(n: i64) -> Result<Position, InvalidPosition> {
        u8::try_from(n)
            .ok()
            .filter(|p| *p < POSITIONS)
            .map(Position)
            .ok_or(InvalidPosition(n))
    }

    /// All ten positions in order.
    pub fn all() -> impl Iterator<Item = Position> {
        (0..POSITIONS).map(Position)
    }

    /// The position as a number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Position {
    type Error = InvalidPosition;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        Position::new(n)
    }
}

impl From<Position> for i64 {
    fn from(p: Position) -> Self {
        i64::from(p.0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Timing of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreePolicy {
    /// How long a harvested lemon takes to regrow (default 1 h).
    pub regrowth: TimeDelta,
}

impl Default for TreePolicy {
    fn default() -> Self {
        Self {
            regrowth: TimeDelta::hours(1),
        }
    }
}

/// Whether a lemon can be played for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LemonState {
    /// On the tree, with a quiz waiting.
    Ripe,
    /// Harvested; regrows at `regrows_at`.
    Regrowing {
        /// When it was harvested.
        harvested_at: DateTime<Utc>,
        /// When it is due to be ripe again.
        regrows_at: DateTime<Utc>,
    },
}

/// One lemon on the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lemon {
    /// Its place.
    pub position: Position,
    /// The quiz a player must answer to win it.
    pub quiz: QuizId,
    /// Counts ripenings: an attempt started in one cycle can never win a later one.
    pub cycle: u64,
    /// Ripe or regrowing.
    pub state: LemonState,
    /// Who harvested it last, if anyone.
    pub harvested_by: Option<UserId>,
}

impl Lemon {
    /// Whether it can be played for now.
    pub fn is_ripe(&self) -> bool {
        matches!(self.state, LemonState::Ripe)
    }

    /// Whether a regrowing lemon is due to become ripe at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        match self.state {
            LemonState::Ripe => false,
            LemonState::Regrowing { regrows_at, .. } => regrows_at <= now,
        }
    }
}

/// The state a lemon enters when harvested at `now`.
pub fn harvested_state(now: DateTime<Utc>, policy: &TreePolicy) -> LemonState {
    LemonState::Regrowing {
        harvested_at: now,
        regrows_at: now + policy.regrowth,
    }
}

/// How often a quiz has been put on the tree, for choosing the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuizUsage {
    /// The quiz.
    pub quiz: QuizId,
    /// Times it has been put on the tree.
    pub uses: u64,
}

/// Chooses the quiz for a regrowing lemon: the least-used quiz that is not currently on the tree
/// (ties broken by the lowest id). `None` if every available quiz is on the tree; the lemon then
/// keeps its previous quiz.
pub fn choose_next_quiz(candidates: &[QuizUsage], on_tree: &BTreeSet<QuizId>) -> Option<QuizId> {
    candidates
        .iter()
        .filter(|c| !on_tree.contains(&c.quiz))
        .min_by_key(|c| (c.uses, c.quiz))
        .map(|c| c.quiz)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn positions_are_zero_to_nine() {
        assert_eq!(Position::all().count(), 10);
        assert!(Position::new(0).is_ok());
        assert!(Position::new(9).is_ok());
        assert_eq!(Position::new(10), Err(InvalidPosition(10)));
        assert_eq!(Position::new(-1), Err(InvalidPosition(-1)));
        assert_eq!(Position::new(i64::MAX), Err(InvalidPosition(i64::MAX)));
    }

    #[test]
    fn a_harvested_lemon_is_due_exactly_one_hour_later() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let lemon = Lemon {
            position: Position::new(3).unwrap(),
            quiz: QuizId(1),
            cycle: 0,
            state: harvested_state(t, &TreePolicy::default()),
            harvested_by: None,
        };
        assert!(!lemon.is_ripe());
        assert!(!lemon.is_due(t + TimeDelta::minutes(59)));
        assert!(lemon.is_due(t + TimeDelta::hours(1)));
    }

    #[test]
    fn next_quiz_is_least_used_and_not_on_the_tree() {
        let u = |id, uses| QuizUsage {
            quiz: QuizId(id),
            uses,
        };
        let candidates = [u(1, 0), u(2, 0), u(3, 5), u(4, 1)];
        let on_tree: BTreeSet<_> = [QuizId(1)].into();
        assert_eq!(choose_next_quiz(&candidates, &on_tree), Some(QuizId(2)));
        let on_tree: BTreeSet<_> = [QuizId(1), QuizId(2)].into();
        assert_eq!(choose_next_quiz(&candidates, &on_tree), Some(QuizId(4)));
        let all: BTreeSet<_> = candidates.iter().map(|c| c.quiz).collect();
        assert_eq!(choose_next_quiz(&candidates, &all), None);
    }
}
