//! Quiz attempts: deadlines with millisecond precision and the in-progress lock's lifetime.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::harvest::{ClickChallenge, HarvestState};
use crate::ids::{AttemptId, QuizId, UserId};
use crate::tree::Position;

/// Timing of quiz attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuizPolicy {
    /// Added to a quiz's time limit to get the lifetime of the one-quiz-per-user lock, so a lock
    /// outlives the answer deadline (default 3 s).
    pub lock_grace: TimeDelta,
}

impl Default for QuizPolicy {
    fn default() -> Self {
        Self {
            lock_grace: TimeDelta::seconds(3),
        }
    }
}

impl QuizPolicy {
    /// How long the in-progress lock of a quiz with this time limit lives.
    pub fn lock_ttl(&self, time_limit: TimeDelta) -> TimeDelta {
        time_limit + self.lock_grace
    }
}

/// The last instant an answer counts as on time.
pub fn deadline(started_at: DateTime<Utc>, time_limit: TimeDelta) -> DateTime<Utc> {
    started_at + time_limit
}

/// Whether an answer given at `at` is within the time limit, to the millisecond.
pub fn answered_on_time(
    started_at: DateTime<Utc>,
    time_limit: TimeDelta,
    at: DateTime<Utc>,
) -> bool {
    (at - started_at).num_milliseconds() <= time_limit.num_milliseconds()
}

/// What a user answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The chosen option.
    pub option: u8,
    /// Whether it was the correct one.
    pub correct: bool,
    /// Whether it came before the deadline.
    pub on_time: bool,
    /// When the server received it: the harvest window starts here.
    pub at: DateTime<Utc>,
    /// The click challenge, present exactly when the answer was correct and on time.
    pub challenge: Option<ClickChallenge>,
}

impl AnswerRecord {
    /// Whether this answer opens a harvest window.
    pub fn opens_window(&self) -> bool {
        self.correct && self.on_time
    }
}

/// One user playing for one lemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its identifier.
    pub id: AttemptId,
    /// Who plays.
    pub user: UserId,
    /// For which lemon.
    pub position: Position,
    /// In which ripening of that lemon.
    pub lemon_cycle: u64,
    /// The quiz the lemon carried.
    pub quiz: QuizId,
    /// When the quiz was handed out.
    pub started_at: DateTime<Utc>,
    /// The quiz's time limit.
    pub time_limit: TimeDelta,
    /// The answer, once given.
    pub answer: Option<AnswerRecord>,
    /// Where the harvest stands.
    pub harvest: HarvestState,
}

impl Attempt {
    /// The answer deadline.
    pub fn deadline(&self) -> DateTime<Utc> {
        deadline(self.started_at, self.time_limit)
    }

    /// Whether the attempt still needs its user's one-quiz lock at `now`: it is unanswered,
    /// not abandoned, and its deadline has not passed. An attempt that answered (on time or
    /// late), gave up, or ran out of time releases the lock at once; the lock's expiry is only
    /// the backstop.
    pub fn holds_quiz_lock(&self, now: DateTime<Utc>) -> bool {
        self.answer.is_none()
            && self.harvest == HarvestState::AwaitingAnswer
            && answered_on_time(self.started_at, self.time_limit, now)
    }

    /// Whether the attempt can still be answered or abandoned: nothing was answered and it was
    /// not given up.
    pub fn is_unanswered(&self) -> bool {
        self.answer.is_none() && self.harvest == HarvestState::AwaitingAnswer
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn deadline_is_exact_to_the_millisecond() {
        let start =
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds(700);
        let limit = TimeDelta::seconds(15);
        assert!(answered_on_time(
            start,
            limit,
            start + TimeDelta::milliseconds(14_999)
        ));
        assert!(answered_on_time(
            start,
            limit,
            start + TimeDelta::milliseconds(15_000)
        ));
        assert!(!answered_on_time(
            start,
            limit,
            start + TimeDelta::milliseconds(15_001)
        ));
        assert_eq!(
            deadline(start, limit),
            start + TimeDelta::milliseconds(15_000)
        );
    }

    #[test]
    fn an_attempt_holds_the_lock_only_while_it_can_be_answered_in_time() {
        use crate::ids::{AttemptId, QuizId, UserId};
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let open = Attempt {
            id: AttemptId::from_random_bytes([1; 16]),
            user: UserId::from_random_bytes([2; 16]),
            position: Position::new(3).unwrap(),
            lemon_cycle: 0,
            quiz: QuizId(1),
            started_at: start,
            time_limit: TimeDelta::seconds(10),
            answer: None,
            harvest: HarvestState::AwaitingAnswer,
        };
        let ms = TimeDelta::milliseconds;
        let answered = Attempt {
            answer: Some(AnswerRecord {
                option: 1,
                correct: false,
                on_time: true,
                at: start + ms(2000),
                challenge: None,
            }),
            harvest: HarvestState::NotEligible,
            ..open.clone()
        };
        let abandoned = Attempt {
            harvest: HarvestState::Abandoned,
            ..open.clone()
        };
        let table = [
            (&open, ms(0), true),
            (&open, ms(10_000), true),
            (&open, ms(10_001), false),
            (&answered, ms(2_500), false),
            (&abandoned, ms(1), false),
        ];
        for (attempt, after, holds) in table {
            assert_eq!(
                attempt.holds_quiz_lock(start + after),
                holds,
                "{:?} at +{after}",
                attempt.harvest
            );
        }
        assert!(open.is_unanswered());
        assert!(!answered.is_unanswered() && !abandoned.is_unanswered());
    }

    #[test]
    fn lock_outlives_the_deadline_by_the_grace() {
        let p = QuizPolicy::default();
        assert_eq!(p.lock_ttl(TimeDelta::seconds(20)), TimeDelta::seconds(23));
    }
}
