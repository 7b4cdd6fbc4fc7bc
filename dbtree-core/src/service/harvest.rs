//! The tree, quizzes and the harvest race.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Deps, InternalError, internal_errors, random_bytes, with_random_u32s};
use crate::boundary::{
    BackendError, ClaimError, LockOutcome, NewAttempt, PlantError, RecordAnswerError,
    StartAttemptError, User,
};
use crate::harvest::{
    CircleSpeed, Click, ClickChallenge, HarvestGate, HarvestReceipt, HarvestRefusal, HarvestState,
    check_harvest_request,
};
use crate::ids::{AttemptId, UserId};
use crate::lemons::Lemons;
use crate::quiz::{AnswerRecord, Attempt, Difficulty, answered_on_time};
use crate::tree::{Lemon, LemonState, Position};

/// The tree and the harvest flow.
#[derive(Clone, Debug)]
pub struct TreeService {
    deps: Deps,
}

/// A quiz handed out.
#[derive(Clone, Debug, PartialEq)]
pub struct QuizStarted {
    /// The attempt.
    pub attempt: AttemptId,
    /// The question.
    pub question: String,
    /// The options, in order.
    pub options: Vec<String>,
    /// The quiz's difficulty.
    pub difficulty: Difficulty,
    /// How fast the circle of a right answer will move (tied to the difficulty).
    pub speed: CircleSpeed,
    /// The time limit.
    pub time_limit: TimeDelta,
    /// The last instant an answer counts.
    pub deadline: DateTime<Utc>,
}

/// Why no quiz was handed out.
#[derive(Debug, thiserror::Error)]
pub enum StartQuizError {
    /// The user harvested less than the cooldown ago.
    #[error("you harvested recently; you can play again at {until}")]
    Cooldown {
        /// End of the cooldown.
        until: DateTime<Utc>,
    },
    /// The balance is at the cap: a harvest could not be credited.
    #[error("lemon storage is full (cap {cap}); spend some lemons first")]
    StorageFull {
        /// The cap.
        cap: Lemons,
    },
    /// The lemon is regrowing.
    #[error("this lemon is not ripe")]
    NotRipe {
        /// When it is due to be ripe, if known.
        regrows_at: Option<DateTime<Utc>>,
    },
    /// Another quiz of the user is in progress (in another tab or device): it can still be
    /// answered until `until`, or abandoned.
    #[error("you already have a quiz in progress")]
    QuizInProgress {
        /// Its answer deadline, if known.
        until: Option<DateTime<Utc>>,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// The result of answering.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerOutcome {
    /// Whether the answer was right.
    pub correct: bool,
    /// The right option (revealed only now).
    pub correct_option: u8,
    /// Why it is right.
    pub explanation: String,
    /// The click challenge, when the answer opened a harvest window.
    pub challenge: Option<ClickChallenge>,
    /// When the window closes, if one opened.
    pub window_closes_at: Option<DateTime<Utc>>,
}

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// No such attempt of this user.
    #[error("unknown quiz attempt")]
    UnknownAttempt,
    /// The option does not exist.
    #[error("option must be between 0 and {max}")]
    InvalidOption {
        /// The highest option index.
        max: u8,
    },
    /// Answered before.
    #[error("this quiz was already answered")]
    AlreadyAnswered,
    /// The player gave this quiz up.
    #[error("this quiz was abandoned")]
    Abandoned,
    /// The time limit passed (the correct option is not revealed).
    #[error("the time limit passed {late_ms} ms ago")]
    TimeExpired {
        /// How late the answer was.
        late_ms: i64,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why a harvest paid nothing.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// No such attempt of this user.
    #[error("unknown quiz attempt")]
    UnknownAttempt,
    /// The request or click is refused (no window, late, missed, lost).
    #[error(transparent)]
    Refused(#[from] HarvestRefusal),
    /// The user harvested another lemon within the cooldown.
    #[error("you harvested recently; you can harvest again at {until}")]
    Cooldown {
        /// End of the cooldown.
        until: DateTime<Utc>,
    },
    /// The balance is at the cap.
    #[error("lemon storage is full (cap {cap})")]
    StorageFull {
        /// The cap.
        cap: Lemons,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why an attempt was not abandoned.
#[derive(Debug, thiserror::Error)]
pub enum AbandonError {
    /// No such attempt of this user.
    #[error("unknown quiz attempt")]
    UnknownAttempt,
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

internal_errors!(StartQuizError, AnswerError, HarvestError, AbandonError);

impl TreeService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// The ten lemons.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn tree(&self) -> Result<Vec<Lemon>, InternalError> {
        Ok(self.deps.store.lemons().await?)
    }

    /// Plants missing lemons, ripe (first start).
    ///
    /// # Errors
    /// [`InternalError`]: storage failed, or the bank has no quiz for a lemon
    /// ([`InternalError::Inconsistent`]: [`crate::service::App::prepare`] seeds it first).
    pub async fn plant(&self) -> Result<Vec<Lemon>, InternalError> {
        match self.deps.store.plant(self.deps.clock.now()).await {
            Ok(lemons) => Ok(lemons),
            Err(e @ PlantError::EmptyBank) => Err(InternalError::Inconsistent(e.to_string())),
            Err(PlantError::Backend(b)) => Err(b.into()),
        }
    }

    /// Regrows every lemon that is due; returns them.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn regrow(&self) -> Result<Vec<Lemon>, InternalError> {
        Ok(self.deps.store.regrow_due(self.deps.clock.now()).await?)
    }

    /// Hands out the quiz of a ripe lemon.
    ///
    /// # Errors
    /// In order: [`StartQuizError::Cooldown`], [`StartQuizError::StorageFull`],
    /// [`StartQuizError::NotRipe`], [`StartQuizError::QuizInProgress`].
    pub async fn start_quiz(
        &self,
        user: &User,
        position: Position,
    ) -> Result<QuizStarted, StartQuizError> {
        let policy = &self.deps.policy;
        let now = self.deps.clock.now();
        if let Some(until) = policy.harvest.in_cooldown(user.last_harvest_at, now) {
            return Err(StartQuizError::Cooldown { until });
        }
        if user.balance >= policy.ledger.balance_cap {
            return Err(StartQuizError::StorageFull {
                cap: policy.ledger.balance_cap,
            });
        }
        let lemons = self.deps.store.lemons().await?;
        let lemon = lemons
            .into_iter()
            .find(|l| l.position == position)
            .ok_or_else(|| InternalError::Inconsistent(format!("lemon {position} missing")))?;
        if let LemonState::Regrowing { regrows_at, .. } = lemon.state {
            return Err(StartQuizError::NotRipe {
                regrows_at: Some(regrows_at),
            });
        }
        let quiz =
            self.deps.store.quiz(lemon.quiz).await?.ok_or_else(|| {
                InternalError::Inconsistent(format!("quiz {} missing", lemon.quiz))
            })?;
        let time_limit = TimeDelta::seconds(i64::from(quiz.content.time_limit_seconds));
        let attempt = AttemptId::from_random_bytes(random_bytes(self.deps.entropy.as_ref())?);
        let ttl = policy.quiz.lock_ttl(time_limit);
        self.take_quiz_lock(user.id, attempt, ttl, now).await?;
        let new = NewAttempt {
            id: attempt,
            user: user.id,
            position,
            lemon_cycle: lemon.cycle,
            quiz: quiz.id,
            started_at: now,
            time_limit,
        };
        match self.deps.store.start_attempt(&new).await {
            Ok(stored) => Ok(QuizStarted {
                attempt,
                question: quiz.content.question,
                options: quiz.content.options,
                difficulty: quiz.content.difficulty,
                speed: CircleSpeed::for_difficulty(quiz.content.difficulty),
                time_limit,
                deadline: stored.deadline(),
            }),
            Err(e) => {
                self.deps.quiz_lock.release(user.id, attempt).await?;
                match e {
                    StartAttemptError::NotRipe => Err(StartQuizError::NotRipe { regrows_at: None }),
                    StartAttemptError::Backend(b) => Err(b.into()),
                }
            }
        }
    }

    /// Takes the user's one-quiz lock for `attempt`. A lock still held by an attempt that no
    /// longer needs it (answered, abandoned, or past its deadline: the lock's expiry is only the
    /// backstop) is released first.
    async fn take_quiz_lock(
        &self,
        user: UserId,
        attempt: AttemptId,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<(), StartQuizError> {
        let lock = &self.deps.quiz_lock;
        for _ in 0..2 {
            if lock.acquire(user, attempt, ttl).await? == LockOutcome::Acquired {
                return Ok(());
            }
            let Some(holder) = lock.holder(user).await? else {
                continue;
            };
            match self.own_attempt(user, holder).await? {
                Some(held) if held.holds_quiz_lock(now) => {
                    return Err(StartQuizError::QuizInProgress {
                        until: Some(held.deadline()),
                    });
                }
                Some(_) => {
                    lock.release(user, holder).await?;
                }
                // being recorded by a concurrent start: that start holds the lock
                None => return Err(StartQuizError::QuizInProgress { until: None }),
            }
        }
        Err(StartQuizError::QuizInProgress { until: None })
    }

    async fn own_attempt(
        &self,
        user: UserId,
        id: AttemptId,
    ) -> Result<Option<Attempt>, BackendError> {
        Ok(self
            .deps
            .store
            .attempt(id)
            .await?
            .filter(|a| a.user == user))
    }

    /// Answers a quiz. A correct answer within the time limit opens the harvest window and
    /// returns the click challenge.
    ///
    /// # Errors
    /// In order: [`AnswerError::UnknownAttempt`], [`AnswerError::InvalidOption`],
    /// [`AnswerError::Abandoned`], [`AnswerError::AlreadyAnswered`],
    /// [`AnswerError::TimeExpired`].
    pub async fn answer(
        &self,
        user: UserId,
        id: AttemptId,
        option: i64,
    ) -> Result<AnswerOutcome, AnswerError> {
        let attempt = self
            .own_attempt(user, id)
            .await?
            .ok_or(AnswerError::UnknownAttempt)?;
        let quiz =
            self.deps.store.quiz(attempt.quiz).await?.ok_or_else(|| {
                InternalError::Inconsistent(format!("quiz {} missing", attempt.quiz))
            })?;
        let max = u8::try_from(quiz.content.options.len().saturating_sub(1)).unwrap_or(u8::MAX);
        let option = u8::try_from(option)
            .ok()
            .filter(|o| *o <= max)
            .ok_or(AnswerError::InvalidOption { max })?;
        if attempt.harvest == HarvestState::Abandoned {
            return Err(AnswerError::Abandoned);
        }
        if attempt.answer.is_some() {
            return Err(AnswerError::AlreadyAnswered);
        }
        let now = self.deps.clock.now();
        let on_time = answered_on_time(attempt.started_at, attempt.time_limit, now);
        let correct = option == quiz.content.correct_option;
        let shape = &self.deps.policy.harvest.challenge;
        let speed = CircleSpeed::for_difficulty(quiz.content.difficulty);
        let challenge = if correct && on_time {
            Some(with_random_u32s(self.deps.entropy.as_ref(), |draw| {
                ClickChallenge::generate(draw, shape, speed)
            })?)
        } else {
            None
        };
        let record = AnswerRecord {
            option,
            correct,
            on_time,
            at: now,
            challenge,
        };
        let stored = match self.deps.store.record_answer(id, &record).await {
            Ok(a) => a,
            Err(RecordAnswerError::AlreadyAnswered(stored))
                if stored.harvest == HarvestState::Abandoned =>
            {
                return Err(AnswerError::Abandoned);
            }
            Err(RecordAnswerError::AlreadyAnswered(_)) => return Err(AnswerError::AlreadyAnswered),
            Err(RecordAnswerError::UnknownAttempt) => return Err(AnswerError::UnknownAttempt),
            Err(RecordAnswerError::Backend(b)) => return Err(b.into()),
        };
        self.deps.quiz_lock.release(user, id).await?;
        if !on_time {
            let late_ms = (now - attempt.deadline()).num_milliseconds();
            return Err(AnswerError::TimeExpired { late_ms });
        }
        let challenge = stored.answer.as_ref().and_then(|a| a.challenge);
        Ok(AnswerOutcome {
            correct,
            correct_option: quiz.content.correct_option,
            explanation: quiz.content.explanation,
            challenge,
            window_closes_at: challenge.map(|_| now + self.deps.policy.harvest.window),
        })
    }

    /// Gives up a quiz: an unanswered attempt can no longer be answered, and the user's quiz
    /// lock is released at once, so another quiz can start right away. Idempotent: abandoning an
    /// answered or already abandoned attempt changes nothing (and still releases the lock if
    /// this attempt holds it).
    ///
    /// # Errors
    /// [`AbandonError::UnknownAttempt`] for another user's or an unknown attempt.
    pub async fn abandon(&self, user: UserId, id: AttemptId) -> Result<(), AbandonError> {
        let attempt = self
            .own_attempt(user, id)
            .await?
            .ok_or(AbandonError::UnknownAttempt)?;
        if attempt.is_unanswered() {
            self.deps.store.abandon_attempt(id).await?;
        }
        self.deps.quiz_lock.release(user, id).await?;
        Ok(())
    }

    /// Harvests with a click. Exactly one harvest wins each ripe lemon; a repeated request for
    /// the same attempt returns the same outcome and never pays twice.
    ///
    /// # Errors
    /// [`HarvestError::UnknownAttempt`], then [`HarvestRefusal`] in the order of
    /// [`check_harvest_request`], then the claim's refusals.
    pub async fn harvest(
        &self,
        user: UserId,
        id: AttemptId,
        click: &Click,
    ) -> Result<HarvestReceipt, HarvestError> {
        let attempt = self
            .own_attempt(user, id)
            .await?
            .ok_or(HarvestError::UnknownAttempt)?;
        let now = self.deps.clock.now();
        let policy = &self.deps.policy;
        match check_harvest_request(&attempt, click, now, &policy.harvest) {
            Ok(HarvestGate::Replay(receipt)) => return Ok(receipt),
            Ok(HarvestGate::Claim) => {}
            Err(refusal) => {
                if let Some(state) = refusal.settles_as() {
                    self.deps.store.settle_attempt(id, &state).await?;
                }
                return Err(refusal.into());
            }
        }
        match self.deps.store.claim_lemon(id, user, now, policy).await {
            Ok(receipt) => Ok(receipt),
            Err(ClaimError::AlreadyHarvested) => Err(HarvestRefusal::AlreadyHarvested.into()),
            Err(ClaimError::NotEligible) => Err(HarvestRefusal::NotEligible.into()),
            Err(ClaimError::Cooldown { until }) => Err(HarvestError::Cooldown { until }),
            Err(ClaimError::StorageFull { cap }) => Err(HarvestError::StorageFull { cap }),
            Err(ClaimError::Backend(b)) => Err(b.into()),
        }
    }
}
