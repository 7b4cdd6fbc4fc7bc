//! Judging a harvest request before the lemon is claimed.

use chrono::{DateTime, Utc};

use super::{Click, ClickRefusal, HarvestPolicy, HarvestReceipt, HarvestState};
use crate::quiz::Attempt;

/// What to do with a harvest request that passed the gate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HarvestGate {
    /// The attempt already won: answer with the same receipt, pay nothing.
    Replay(HarvestReceipt),
    /// Claim the lemon.
    Claim,
}

/// Why a harvest request is refused before any claim.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum HarvestRefusal {
    /// The attempt has no correct, on-time answer.
    #[error("this attempt has no correct, on-time answer")]
    NotEligible,
    /// Someone else won the lemon (a repeat of an earlier outcome).
    #[error("the lemon was already harvested")]
    AlreadyHarvested,
    /// The request arrived after the harvest window.
    #[error("the harvest window closed {elapsed_ms} ms after the answer")]
    WindowClosed {
        /// Milliseconds between answer and request.
        elapsed_ms: i64,
    },
    /// The click itself does not count.
    #[error(transparent)]
    Click(#[from] ClickRefusal),
}

impl HarvestRefusal {
    /// The state the attempt settles in after this refusal, if it settles: a miss, or a request
    /// arriving after the window, ends the attempt, so a repeated request gets the same answer.
    /// A malformed click (outside the play area, a negative offset or one past the window) is
    /// refused without settling anything.
    pub fn settles_as(&self) -> Option<HarvestState> {
        match *self {
            HarvestRefusal::WindowClosed { elapsed_ms } => {
                Some(HarvestState::TooLate { elapsed_ms })
            }
            HarvestRefusal::Click(ClickRefusal::Missed { distance, .. }) => {
                Some(HarvestState::Missed { distance })
            }
            HarvestRefusal::Click(
                ClickRefusal::OutsidePlayArea
                | ClickRefusal::NegativeOffset
                | ClickRefusal::AfterWindow { .. },
            )
            | HarvestRefusal::NotEligible
            | HarvestRefusal::AlreadyHarvested => None,
        }
    }
}

/// Milliseconds from the answer to `now` (negative values, from replicas whose clocks disagree,
/// count as zero).
pub fn window_elapsed_ms(answered_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - answered_at).num_milliseconds().max(0)
}

/// Judges a harvest request for `attempt` at `now`, in precedence order:
/// settled attempts first (a win replays its receipt; a loss, miss or late click repeats its
/// refusal), then eligibility, then the window (≤ 5000 ms after the answer, inclusive), then the
/// click. Ownership is checked by the caller (another user's attempt is "not found").
///
/// # Errors
/// [`HarvestRefusal`] as described.
pub fn check_harvest_request(
    attempt: &Attempt,
    click: &Click,
    now: DateTime<Utc>,
    policy: &HarvestPolicy,
) -> Result<HarvestGate, HarvestRefusal> {
    match &attempt.harvest {
        HarvestState::Won(receipt) => return Ok(HarvestGate::Replay(*receipt)),
        HarvestState::Lost => return Err(HarvestRefusal::AlreadyHarvested),
        HarvestState::Missed { distance } => {
            let allowed = attempt
                .answer
                .as_ref()
                .and_then(|a| a.challenge)
                .map_or_else(
                    || policy.challenge.hit_tolerance * policy.challenge.radius,
                    |c| c.allowed_distance(),
                );
            return Err(ClickRefusal::Missed {
                distance: *distance,
                allowed,
            }
            .into());
        }
        HarvestState::TooLate { elapsed_ms } => {
            return Err(HarvestRefusal::WindowClosed {
                elapsed_ms: *elapsed_ms,
            });
        }
        HarvestState::AwaitingAnswer | HarvestState::NotEligible | HarvestState::Abandoned => {
            return Err(HarvestRefusal::NotEligible);
        }
        HarvestState::Open => {}
    }
    let Some((answer, challenge)) = attempt
        .answer
        .as_ref()
        .filter(|a| a.opens_window())
        .and_then(|a| a.challenge.map(|c| (a, c)))
    else {
        return Err(HarvestRefusal::NotEligible);
    };
    let elapsed_ms = window_elapsed_ms(answer.at, now);
    if elapsed_ms > policy.window.num_milliseconds() {
        return Err(HarvestRefusal::WindowClosed { elapsed_ms });
    }
    challenge.judge(click)?;
    Ok(HarvestGate::Claim)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::harvest::ClickChallenge;
    use crate::ids::{AttemptId, EntryId, QuizId, UserId};
    use crate::lemons::Lemons;
    use crate::quiz::AnswerRecord;
    use crate::tree::Position;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
    }

    fn challenge() -> ClickChallenge {
        ClickChallenge {
            window_ms: 5000,
            period_ms: 3000,
            fx: 1,
            fy: 2,
            phase: 0.5,
            radius: 0.08,
            hit_tolerance: 1.1,
            lag_allowance_ms: 120,
        }
    }

    fn open_attempt() -> Attempt {
        Attempt {
            id: AttemptId::from_random_bytes([1; 16]),
            user: UserId::from_random_bytes([2; 16]),
            position: Position::new(4).unwrap(),
            lemon_cycle: 0,
            quiz: QuizId(1),
            started_at: t0() - TimeDelta::seconds(5),
            time_limit: TimeDelta::seconds(15),
            answer: Some(AnswerRecord {
                option: 0,
                correct: true,
                on_time: true,
                at: t0(),
                challenge: Some(challenge()),
            }),
            harvest: HarvestState::Open,
        }
    }

    fn on_circle(t: i64) -> Click {
        let (x, y) = challenge().centre_at(t as f64);
        Click {
            click_offset_ms: t,
            x,
            y,
        }
    }

    #[test]
    fn window_edges_4999_5000_5001() {
        let p = HarvestPolicy::default();
        let a = open_attempt();
        for (ms, ok) in [(4999, true), (5000, true), (5001, false)] {
            let got =
                check_harvest_request(&a, &on_circle(1000), t0() + TimeDelta::milliseconds(ms), &p);
            if ok {
                assert_eq!(got, Ok(HarvestGate::Claim), "{ms}");
            } else {
                assert_eq!(
                    got,
                    Err(HarvestRefusal::WindowClosed { elapsed_ms: ms }),
                    "{ms}"
                );
            }
        }
    }

    #[test]
    fn settled_attempts_repeat_their_outcome() {
        let p = HarvestPolicy::default();
        let receipt = HarvestReceipt {
            entry: EntryId::from_random_bytes([3; 16]),
            reward: Lemons::new(3),
            streak_bonus: Lemons::ZERO,
            balance_after: Lemons::new(18),
            harvested_at: t0(),
        };
        let won = Attempt {
            harvest: HarvestState::Won(receipt),
            ..open_attempt()
        };
        let late = t0() + TimeDelta::hours(1);
        assert_eq!(
            check_harvest_request(&won, &on_circle(1), late, &p),
            Ok(HarvestGate::Replay(receipt))
        );
        let lost = Attempt {
            harvest: HarvestState::Lost,
            ..open_attempt()
        };
        assert_eq!(
            check_harvest_request(&lost, &on_circle(1), t0(), &p),
            Err(HarvestRefusal::AlreadyHarvested)
        );
        let unanswered = Attempt {
            answer: None,
            harvest: HarvestState::AwaitingAnswer,
            ..open_attempt()
        };
        assert_eq!(
            check_harvest_request(&unanswered, &on_circle(1), t0(), &p),
            Err(HarvestRefusal::NotEligible)
        );
    }

    #[test]
    fn a_miss_settles_the_attempt() {
        let p = HarvestPolicy::default();
        let mut click = on_circle(2000);
        click.y = if click.y > 0.5 {
            click.y - 0.3
        } else {
            click.y + 0.3
        };
        let err = check_harvest_request(&open_attempt(), &click, t0() + TimeDelta::seconds(2), &p)
            .unwrap_err();
        assert!(matches!(
            err.settles_as(),
            Some(HarvestState::Missed { .. })
        ));
        let bad = Click {
            x: f64::INFINITY,
            ..click
        };
        let err = check_harvest_request(&open_attempt(), &bad, t0(), &p).unwrap_err();
        assert_eq!(err.settles_as(), None);
        let past_window = Click {
            click_offset_ms: 5001,
            ..on_circle(100)
        };
        let err = check_harvest_request(&open_attempt(), &past_window, t0(), &p).unwrap_err();
        assert_eq!(err.settles_as(), None, "a malformed offset settles nothing");
    }
}
