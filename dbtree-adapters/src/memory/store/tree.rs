//! Lemons, quizzes and attempts in memory.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{
    AddQuizError, BackendError, ClaimError, NewAttempt, PlantError, QuizStore, RecordAnswerError,
    StartAttemptError, TreeStore,
};
use dbtree_core::harvest::{ClaimPlan, HarvestReceipt, HarvestState, plan_claim};
use dbtree_core::ids::{AttemptId, QuizId, UserId};
use dbtree_core::policy::Policy;
use dbtree_core::quiz::{AnswerRecord, Attempt, NewQuiz, Quiz};
use dbtree_core::streak::utc_day;
use dbtree_core::tree::{Lemon, LemonState, Position, QuizUsage, choose_next_quiz};

use super::{MemoryStore, State, post_error_to_backend};

impl State {
    fn next_quiz(&self, on_tree: &BTreeSet<QuizId>) -> Option<QuizId> {
        let candidates: Vec<QuizUsage> = self
            .quizzes
            .values()
            .filter(|q| !q.retired)
            .map(|q| QuizUsage {
                quiz: q.id,
                uses: q.uses,
            })
            .collect();
        choose_next_quiz(&candidates, on_tree)
    }

    fn quizzes_on_tree(&self) -> BTreeSet<QuizId> {
        self.lemons.values().map(|l| l.quiz).collect()
    }

    fn use_quiz(&mut self, id: QuizId) {
        if let Some(q) = self.quizzes.get_mut(&id) {
            q.uses += 1;
        }
    }
}

#[async_trait]
impl TreeStore for MemoryStore {
    async fn plant(&self, _now: DateTime<Utc>) -> Result<Vec<Lemon>, PlantError> {
        let mut s = self.state.lock();
        for position in Position::all() {
            if s.lemons.contains_key(&position) {
                continue;
            }
            let on_tree = s.quizzes_on_tree();
            let quiz = s
                .next_quiz(&on_tree)
                .or_else(|| s.next_quiz(&BTreeSet::new()))
                .ok_or(PlantError::EmptyBank)?;
            s.use_quiz(quiz);
            s.lemons.insert(
                position,
                Lemon {
                    position,
                    quiz,
                    cycle: 0,
                    state: LemonState::Ripe,
                    harvested_by: None,
                },
            );
        }
        Ok(s.lemons.values().cloned().collect())
    }

    async fn lemons(&self) -> Result<Vec<Lemon>, BackendError> {
        Ok(self.state.lock().lemons.values().cloned().collect())
    }

    async fn start_attempt(&self, new: &NewAttempt) -> Result<Attempt, StartAttemptError> {
        let mut s = self.state.lock();
        let ripe = s
            .lemons
            .get(&new.position)
            .is_some_and(|l| l.is_ripe() && l.cycle == new.lemon_cycle && l.quiz == new.quiz);
        if !ripe {
            return Err(StartAttemptError::NotRipe);
        }
        if s.attempts.contains_key(&new.id) {
            return Err(BackendError::new("attempt id already in use").into());
        }
        let attempt = Attempt {
            id: new.id,
            user: new.user,
            position: new.position,
            lemon_cycle: new.lemon_cycle,
            quiz: new.quiz,
            started_at: new.started_at,
            time_limit: new.time_limit,
            answer: None,
            harvest: HarvestState::AwaitingAnswer,
        };
        s.attempts.insert(new.id, attempt.clone());
        Ok(attempt)
    }

    async fn attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError> {
        Ok(self.state.lock().attempts.get(&id).cloned())
    }

    async fn record_answer(
        &self,
        id: AttemptId,
        answer: &AnswerRecord,
    ) -> Result<Attempt, RecordAnswerError> {
        let mut s = self.state.lock();
        let attempt = s
            .attempts
            .get_mut(&id)
            .ok_or(RecordAnswerError::UnknownAttempt)?;
        if !attempt.is_unanswered() {
            return Err(RecordAnswerError::AlreadyAnswered(Box::new(
                attempt.clone(),
            )));
        }
        attempt.harvest = if answer.opens_window() {
            HarvestState::Open
        } else {
            HarvestState::NotEligible
        };
        attempt.answer = Some(answer.clone());
        Ok(attempt.clone())
    }

    async fn abandon_attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError> {
        let mut s = self.state.lock();
        let Some(attempt) = s.attempts.get_mut(&id) else {
            return Ok(None);
        };
        if attempt.is_unanswered() {
            attempt.harvest = HarvestState::Abandoned;
        }
        Ok(Some(attempt.clone()))
    }

    async fn settle_attempt(
        &self,
        id: AttemptId,
        state: &HarvestState,
    ) -> Result<Option<Attempt>, BackendError> {
        let mut s = self.state.lock();
        let Some(attempt) = s.attempts.get_mut(&id) else {
            return Ok(None);
        };
        if attempt.harvest == HarvestState::Open {
            attempt.harvest = state.clone();
        }
        Ok(Some(attempt.clone()))
    }

    async fn claim_lemon(
        &self,
        id: AttemptId,
        user: UserId,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<HarvestReceipt, ClaimError> {
        let mut s = self.state.lock();
        let player = s.live_user(user);
        let claim = match plan_claim(s.attempts.get(&id), user, player.as_ref(), now, policy)? {
            ClaimPlan::Replay(receipt) => return Ok(receipt),
            ClaimPlan::Race(claim) => claim,
        };
        if !claim.wins(s.lemons.get(&claim.position)) {
            let (lost, refusal) = claim.gone();
            if let Some(a) = s.attempts.get_mut(&id) {
                a.harvest = lost;
            }
            return Err(refusal);
        }
        if let Some(lemon) = s.lemons.get_mut(&claim.position) {
            lemon.state = claim.lemon_state();
            lemon.harvested_by = Some(user);
        }
        let reward = s
            .post(&claim.reward, &policy.ledger)
            .map_err(post_error_to_backend)?
            .entry()
            .clone();
        let bonus = match &claim.streak_bonus {
            Some(request) => Some(
                s.post(request, &policy.ledger)
                    .map_err(post_error_to_backend)?
                    .entry()
                    .clone(),
            ),
            None => None,
        };
        if let Some(row) = s.users.get_mut(&user) {
            row.last_harvest_at = Some(claim.harvested_at);
            row.streak = claim.streak_after;
        }
        let receipt = claim.receipt(&reward, bonus.as_ref());
        if let Some(a) = s.attempts.get_mut(&id) {
            a.harvest = HarvestState::Won(receipt);
        }
        Ok(receipt)
    }

    async fn regrow_due(&self, now: DateTime<Utc>) -> Result<Vec<Lemon>, BackendError> {
        let mut s = self.state.lock();
        let due: Vec<Position> = s
            .lemons
            .values()
            .filter(|l| l.is_due(now))
            .map(|l| l.position)
            .collect();
        let mut regrown = Vec::new();
        for position in due {
            let on_tree = s.quizzes_on_tree();
            let next = s.next_quiz(&on_tree);
            if let Some(q) = next {
                s.use_quiz(q);
            }
            if let Some(lemon) = s.lemons.get_mut(&position) {
                if let Some(q) = next {
                    lemon.quiz = q;
                }
                lemon.cycle += 1;
                lemon.state = LemonState::Ripe;
                regrown.push(lemon.clone());
            }
        }
        Ok(regrown)
    }

    async fn quiz_masters(
        &self,
        day: NaiveDate,
        n: u32,
    ) -> Result<Vec<(Email, u64)>, BackendError> {
        let s = self.state.lock();
        let mut counts: HashMap<UserId, u64> = HashMap::new();
        for a in s.attempts.values() {
            if a.answer
                .as_ref()
                .is_some_and(|x| x.correct && x.on_time && utc_day(x.at) == day)
            {
                *counts.entry(a.user).or_default() += 1;
            }
        }
        let mut rows: Vec<(Email, u64)> = counts
            .into_iter()
            .filter_map(|(id, c)| s.live_user(id).map(|u| (u.email, c)))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows.truncate(n as usize);
        Ok(rows)
    }
}

#[async_trait]
impl QuizStore for MemoryStore {
    async fn seed_quizzes(&self, bank: &[NewQuiz]) -> Result<u64, BackendError> {
        let mut added = 0;
        for quiz in bank {
            match self.add_quiz(quiz).await {
                Ok(_) => added += 1,
                Err(AddQuizError::Duplicate) => {}
                Err(AddQuizError::Backend(b)) => return Err(b),
            }
        }
        Ok(added)
    }

    async fn add_quiz(&self, quiz: &NewQuiz) -> Result<Quiz, AddQuizError> {
        let mut s = self.state.lock();
        if s.quizzes
            .values()
            .any(|q| q.content.question == quiz.question)
        {
            return Err(AddQuizError::Duplicate);
        }
        let id = QuizId(s.quizzes.keys().next_back().map_or(1, |k| k.0 + 1));
        let stored = Quiz {
            id,
            content: quiz.clone(),
            uses: 0,
            retired: false,
        };
        s.quizzes.insert(id, stored.clone());
        Ok(stored)
    }

    async fn quiz(&self, id: QuizId) -> Result<Option<Quiz>, BackendError> {
        Ok(self.state.lock().quizzes.get(&id).cloned())
    }

    async fn quizzes(&self) -> Result<Vec<Quiz>, BackendError> {
        Ok(self.state.lock().quizzes.values().cloned().collect())
    }

    async fn retire_quiz(&self, id: QuizId) -> Result<bool, BackendError> {
        let mut s = self.state.lock();
        Ok(match s.quizzes.get_mut(&id) {
            Some(q) if !q.retired => {
                q.retired = true;
                true
            }
            _ => false,
        })
    }
}
