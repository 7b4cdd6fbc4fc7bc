//! Contract: the tree, attempts, the harvest claim, regrowth, the quiz bank.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use dbtree_core::boundary::{
    AddQuizError, ClaimError, NewAttempt, PlantError, RecordAnswerError, StartAttemptError,
};
use dbtree_core::harvest::HarvestState;
use dbtree_core::ids::AttemptId;
use dbtree_core::ledger::EntryKind;
use dbtree_core::quiz::{AnswerRecord, shipped_bank};
use dbtree_core::tree::Position;

use crate::contract::backends::StoreEnv;
use crate::contract::fixtures::*;

pub(crate) async fn planting_is_idempotent_with_distinct_quizzes(env: &StoreEnv) {
    let s = &env.store;
    let bank = shipped_bank().unwrap();
    assert_eq!(s.seed_quizzes(&bank).await.unwrap(), bank.len() as u64);
    assert_eq!(
        s.seed_quizzes(&bank).await.unwrap(),
        0,
        "seeding twice adds nothing"
    );
    let tree = s.plant(t0()).await.unwrap();
    assert_eq!(tree.len(), 10);
    assert!(tree.iter().all(|l| l.is_ripe() && l.cycle == 0));
    let quizzes: BTreeSet<_> = tree.iter().map(|l| l.quiz).collect();
    assert_eq!(quizzes.len(), 10);
    assert_eq!(
        env.second.plant(t0()).await.unwrap(),
        tree,
        "planting twice changes nothing"
    );
    let uses: u64 = s.quizzes().await.unwrap().iter().map(|q| q.uses).sum();
    assert_eq!(uses, 10);
}

/// A tree cannot be planted without a quiz for each lemon: a typed refusal, planting nothing
/// (not an infrastructure failure).
pub(crate) async fn planting_from_an_empty_bank_is_refused(env: &StoreEnv) {
    let s = &env.store;
    assert!(matches!(s.plant(t0()).await, Err(PlantError::EmptyBank)));
    assert!(s.lemons().await.unwrap().is_empty());
    let bank = shipped_bank().unwrap();
    let only = s.add_quiz(&bank[0]).await.unwrap();
    assert!(s.retire_quiz(only.id).await.unwrap());
    assert!(
        matches!(env.second.plant(t0()).await, Err(PlantError::EmptyBank)),
        "a retired quiz is not hung on a lemon"
    );
    assert!(s.lemons().await.unwrap().is_empty());
}

pub(crate) async fn the_quiz_bank_refuses_duplicates_and_retires(env: &StoreEnv) {
    let s = &env.store;
    let bank = shipped_bank().unwrap();
    let added = s.add_quiz(&bank[0]).await.unwrap();
    assert_eq!(added.content, bank[0]);
    assert!(matches!(
        s.add_quiz(&bank[0]).await,
        Err(AddQuizError::Duplicate)
    ));
    assert_eq!(s.quiz(added.id).await.unwrap(), Some(added.clone()));
    assert!(s.retire_quiz(added.id).await.unwrap());
    assert!(!s.retire_quiz(added.id).await.unwrap());
    assert!(s.quiz(added.id).await.unwrap().unwrap().retired);
    assert_eq!(s.quizzes().await.unwrap().len(), 1);
}

pub(crate) async fn attempts_need_a_ripe_lemon_and_take_the_first_answer(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let u = user(s, 30).await;
    let lemon = s.lemons().await.unwrap()[4].clone();
    let stale = NewAttempt {
        id: AttemptId::from_random_bytes([1; 16]),
        user: u.id,
        position: lemon.position,
        lemon_cycle: lemon.cycle + 1,
        quiz: lemon.quiz,
        started_at: t0(),
        time_limit: TimeDelta::seconds(15),
    };
    assert!(matches!(
        s.start_attempt(&stale).await,
        Err(StartAttemptError::NotRipe)
    ));
    let good = NewAttempt {
        lemon_cycle: lemon.cycle,
        ..stale.clone()
    };
    let attempt = s.start_attempt(&good).await.unwrap();
    assert_eq!(
        (attempt.harvest.clone(), attempt.answer.clone()),
        (HarvestState::AwaitingAnswer, None)
    );
    assert_eq!(s.attempt(good.id).await.unwrap(), Some(attempt));
    let wrong = AnswerRecord {
        option: 1,
        correct: false,
        on_time: true,
        at: t0(),
        challenge: None,
    };
    let stored = s.record_answer(good.id, &wrong).await.unwrap();
    assert_eq!(stored.harvest, HarvestState::NotEligible);
    let right = AnswerRecord {
        option: 0,
        correct: true,
        on_time: true,
        at: t0(),
        challenge: Some(challenge()),
    };
    assert!(
        matches!(s.record_answer(good.id, &right).await, Err(RecordAnswerError::AlreadyAnswered(a)) if a.answer == Some(wrong.clone()))
    );
    assert!(matches!(
        s.record_answer(AttemptId::from_random_bytes([2; 16]), &right)
            .await,
        Err(RecordAnswerError::UnknownAttempt)
    ));
    // settling only changes an open attempt
    let open = open_attempt(s, u.id, 5, 1, t0()).await;
    let missed = HarvestState::Missed { distance: 0.3 };
    assert_eq!(
        s.settle_attempt(open, &missed)
            .await
            .unwrap()
            .unwrap()
            .harvest,
        missed
    );
    assert_eq!(
        s.settle_attempt(open, &HarvestState::TooLate { elapsed_ms: 9 })
            .await
            .unwrap()
            .unwrap()
            .harvest,
        missed
    );
    assert_eq!(
        s.attempt(open)
            .await
            .unwrap()
            .unwrap()
            .answer
            .unwrap()
            .challenge,
        Some(challenge())
    );
}

pub(crate) async fn an_abandoned_attempt_is_never_answered_and_an_answered_one_never_abandoned(
    env: &StoreEnv,
) {
    let s = &env.store;
    planted(s).await;
    let u = user(s, 31).await;
    let lemon = s.lemons().await.unwrap()[2].clone();
    let new = |n: u8| NewAttempt {
        id: AttemptId::from_random_bytes([n; 16]),
        user: u.id,
        position: lemon.position,
        lemon_cycle: lemon.cycle,
        quiz: lemon.quiz,
        started_at: t0(),
        time_limit: TimeDelta::seconds(15),
    };
    let answer = AnswerRecord {
        option: 0,
        correct: true,
        on_time: true,
        at: t0(),
        challenge: Some(challenge()),
    };
    // abandoned first: the answer is refused, with the stored (abandoned) attempt
    let given_up = s.start_attempt(&new(7)).await.unwrap();
    let stored = s.abandon_attempt(given_up.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.harvest.clone(), stored.answer.clone()),
        (HarvestState::Abandoned, None)
    );
    assert!(matches!(
        s.record_answer(given_up.id, &answer).await,
        Err(RecordAnswerError::AlreadyAnswered(a)) if a.harvest == HarvestState::Abandoned && a.answer.is_none()
    ));
    assert_eq!(
        s.abandon_attempt(given_up.id)
            .await
            .unwrap()
            .unwrap()
            .harvest,
        HarvestState::Abandoned,
        "abandoning twice changes nothing"
    );
    // answered first: abandoning changes nothing
    let answered = s.start_attempt(&new(8)).await.unwrap();
    s.record_answer(answered.id, &answer).await.unwrap();
    let stored = s.abandon_attempt(answered.id).await.unwrap().unwrap();
    assert_eq!(stored.harvest, HarvestState::Open);
    assert_eq!(stored.answer, Some(answer.clone()));
    // an unknown attempt is a typed answer, not an infrastructure failure
    assert_eq!(
        s.abandon_attempt(AttemptId::from_random_bytes([9; 16]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.settle_attempt(AttemptId::from_random_bytes([9; 16]), &HarvestState::Lost)
            .await
            .unwrap(),
        None
    );
    // racing: exactly one of answer and abandon wins
    for n in 10..20u8 {
        let raced = s.start_attempt(&new(n)).await.unwrap();
        let (a, b) = (env.store.clone(), env.second.clone());
        let record = answer.clone();
        let answering = tokio::spawn(async move { a.record_answer(raced.id, &record).await });
        let abandoning = tokio::spawn(async move { b.abandon_attempt(raced.id).await });
        let answered = answering.await.unwrap().is_ok();
        abandoning.await.unwrap().unwrap();
        let end = s.attempt(raced.id).await.unwrap().unwrap();
        if answered {
            assert_eq!(end.harvest, HarvestState::Open, "{n}");
        } else {
            assert_eq!(
                (end.harvest, end.answer),
                (HarvestState::Abandoned, None),
                "{n}"
            );
        }
    }
}

pub(crate) async fn a_claim_pays_once_and_replays_its_receipt(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let u = user(s, 31).await;
    let attempt = open_attempt(s, u.id, 2, 2, t0()).await;
    let p = policy();
    let receipt = s.claim_lemon(attempt, u.id, t0(), &p).await.unwrap();
    assert_eq!(
        (
            receipt.reward.get(),
            receipt.streak_bonus.get(),
            receipt.balance_after.get()
        ),
        (3, 0, 18)
    );
    let replay = env
        .second
        .claim_lemon(attempt, u.id, t0() + TimeDelta::minutes(1), &p)
        .await
        .unwrap();
    assert_eq!(replay, receipt);
    assert_eq!(balance(s, u.id).await, 18);
    let lemon = s.lemons().await.unwrap()[2].clone();
    assert!(!lemon.is_ripe());
    assert_eq!(lemon.harvested_by, Some(u.id));
    let stored = s.attempt(attempt).await.unwrap().unwrap();
    assert_eq!(stored.harvest, HarvestState::Won(receipt));
    let after = s.user(u.id).await.unwrap().unwrap();
    assert_eq!(after.last_harvest_at, Some(t0()));
    assert_eq!(after.streak.days, 1);
    let harvests = entries(s, u.id)
        .await
        .into_iter()
        .filter(|e| e.kind == EntryKind::Harvest)
        .count();
    assert_eq!(harvests, 1);
    // somebody else's attempt cannot be claimed by this user
    let other = user(s, 32).await;
    let theirs = open_attempt(s, other.id, 3, 3, t0()).await;
    assert!(matches!(
        s.claim_lemon(theirs, u.id, t0(), &p).await,
        Err(ClaimError::NotEligible)
    ));
}

pub(crate) async fn claims_are_refused_in_cooldown_and_at_the_cap(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let p = policy();
    let u = user(s, 33).await;
    let first = open_attempt(s, u.id, 0, 4, t0()).await;
    let second = open_attempt(s, u.id, 1, 5, t0()).await;
    s.claim_lemon(first, u.id, t0(), &p).await.unwrap();
    let cooled = s
        .claim_lemon(second, u.id, t0() + TimeDelta::seconds(2), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(cooled, ClaimError::Cooldown { until } if until == t0() + TimeDelta::hours(1)),
        "{cooled:?}"
    );
    assert!(
        s.lemons().await.unwrap()[1].is_ripe(),
        "a refused claim leaves the lemon"
    );
    let rich = user(s, 34).await;
    grant(s, rich.id, 485, "t:full").await;
    let at_cap = open_attempt(s, rich.id, 1, 6, t0()).await;
    assert!(matches!(
        s.claim_lemon(at_cap, rich.id, t0(), &p).await,
        Err(ClaimError::StorageFull { .. })
    ));
    assert!(s.lemons().await.unwrap()[1].is_ripe());
}

pub(crate) async fn concurrent_claims_of_one_lemon_have_one_winner(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let mut attempts = Vec::new();
    for n in 0..200u64 {
        let u = user(s, 100 + n).await;
        attempts.push((u.id, open_attempt(s, u.id, 7, 100 + n, t0()).await));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(attempts.len()));
    let mut tasks = Vec::new();
    for (i, (user, attempt)) in attempts.into_iter().enumerate() {
        let store = if i % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .claim_lemon(attempt, user, t0() + TimeDelta::seconds(1), &policy())
                .await
        }));
    }
    let (mut won, mut lost) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(receipt) => won.push(receipt),
            Err(ClaimError::AlreadyHarvested) => lost += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won.len(), lost), (1, 199));
    let winner = s.lemons().await.unwrap()[7].harvested_by.unwrap();
    let harvest_entries: Vec<_> = entries(s, winner)
        .await
        .into_iter()
        .filter(|e| e.kind == EntryKind::Harvest)
        .collect();
    assert_eq!(harvest_entries.len(), 1);
    assert_eq!(
        s.total_harvested().await.unwrap(),
        3,
        "one reward in the whole ledger"
    );
    if let Some(report) = env.invariants().await {
        assert!(report.is_clean(), "{report}");
    }
}

pub(crate) async fn lemons_regrow_once_with_a_quiz_not_on_the_tree(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let p = policy();
    for (n, position) in [(40u64, 0u8), (41, 6)] {
        let u = user(s, n).await;
        let attempt = open_attempt(s, u.id, position, n, t0()).await;
        s.claim_lemon(attempt, u.id, t0(), &p).await.unwrap();
    }
    assert!(
        s.regrow_due(t0() + TimeDelta::minutes(59))
            .await
            .unwrap()
            .is_empty()
    );
    let before: BTreeSet<_> = s.lemons().await.unwrap().iter().map(|l| l.quiz).collect();
    let due = t0() + TimeDelta::hours(1);
    let (a, b) = tokio::join!(s.regrow_due(due), env.second.regrow_due(due));
    let mut regrown = a.unwrap();
    regrown.extend(b.unwrap());
    let positions: BTreeSet<u8> = regrown.iter().map(|l| l.position.get()).collect();
    assert_eq!(positions, [0, 6].into(), "each lemon regrows exactly once");
    for lemon in &regrown {
        assert!(lemon.is_ripe() && lemon.cycle == 1);
        assert!(!before.contains(&lemon.quiz), "a quiz not on the tree");
    }
    let tree = s.lemons().await.unwrap();
    let quizzes: BTreeSet<_> = tree.iter().map(|l| l.quiz).collect();
    assert_eq!(quizzes.len(), 10, "no quiz twice on the tree");
    assert_eq!(Position::all().count(), tree.len());
}

pub(crate) async fn quiz_masters_count_correct_on_time_answers_per_day(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let a = user(s, 50).await;
    let b = user(s, 51).await;
    for (i, u) in [a.id, a.id, b.id].into_iter().enumerate() {
        open_attempt(s, u, i as u8, 500 + i as u64, t0()).await;
    }
    open_attempt(s, b.id, 5, 510, t0() + TimeDelta::days(1)).await;
    let masters = s.quiz_masters(t0().date_naive(), 3).await.unwrap();
    let got: Vec<_> = masters
        .iter()
        .map(|(e, n)| (e.as_str().to_owned(), *n))
        .collect();
    assert_eq!(
        got,
        [
            ("user50@example.org".to_owned(), 2),
            ("user51@example.org".to_owned(), 1)
        ]
    );
}

/// Every harvest state answers a claim as [`dbtree_core::harvest::plan_claim`] decides: only an
/// `Open` attempt races, a `Won` one replays, a `Lost` one stays lost, and every settled or
/// unanswered state is refused as not eligible, paying nothing.
pub(crate) async fn a_claim_answers_by_the_attempts_harvest_state(env: &StoreEnv) {
    let s = &env.store;
    planted(s).await;
    let p = policy();
    let later = t0() + TimeDelta::seconds(1);
    let winner = user(s, 40).await;
    let loser = user(s, 41).await;
    let won = open_attempt(s, winner.id, 6, 40, t0()).await;
    let lost = open_attempt(s, loser.id, 6, 41, t0()).await;
    s.claim_lemon(won, winner.id, later, &p).await.unwrap();
    assert!(matches!(
        s.claim_lemon(lost, loser.id, later, &p).await,
        Err(ClaimError::AlreadyHarvested)
    ));
    assert_eq!(
        s.attempt(lost).await.unwrap().unwrap().harvest,
        HarvestState::Lost
    );
    assert!(
        matches!(
            env.second.claim_lemon(lost, loser.id, later, &p).await,
            Err(ClaimError::AlreadyHarvested)
        ),
        "a lost attempt stays lost"
    );

    let u = user(s, 42).await;
    let before = balance(s, u.id).await;
    let lemon = s.lemons().await.unwrap()[8].clone();
    let mut refused = Vec::new();
    let unanswered = NewAttempt {
        id: AttemptId::from_random_bytes(id_bytes(4_200)),
        user: u.id,
        position: lemon.position,
        lemon_cycle: lemon.cycle,
        quiz: lemon.quiz,
        started_at: t0(),
        time_limit: TimeDelta::seconds(20),
    };
    s.start_attempt(&unanswered).await.unwrap();
    refused.push(("awaiting an answer", unanswered.id));
    let given_up = NewAttempt {
        id: AttemptId::from_random_bytes(id_bytes(4_201)),
        ..unanswered.clone()
    };
    s.start_attempt(&given_up).await.unwrap();
    s.abandon_attempt(given_up.id).await.unwrap();
    refused.push(("abandoned", given_up.id));
    let wrong = NewAttempt {
        id: AttemptId::from_random_bytes(id_bytes(4_202)),
        ..unanswered.clone()
    };
    s.start_attempt(&wrong).await.unwrap();
    let answer = AnswerRecord {
        option: 1,
        correct: false,
        on_time: true,
        at: t0(),
        challenge: None,
    };
    s.record_answer(wrong.id, &answer).await.unwrap();
    refused.push(("not eligible", wrong.id));
    let missed = open_attempt(s, u.id, 8, 4_203, t0()).await;
    s.settle_attempt(missed, &HarvestState::Missed { distance: 0.4 })
        .await
        .unwrap();
    refused.push(("missed", missed));
    let late = open_attempt(s, u.id, 8, 4_204, t0()).await;
    s.settle_attempt(late, &HarvestState::TooLate { elapsed_ms: 6_000 })
        .await
        .unwrap();
    refused.push(("too late", late));
    refused.push(("unknown", AttemptId::from_random_bytes(id_bytes(4_299))));
    for (what, attempt) in refused {
        assert!(
            matches!(
                s.claim_lemon(attempt, u.id, later, &p).await,
                Err(ClaimError::NotEligible)
            ),
            "{what}"
        );
    }
    assert_eq!(
        balance(s, u.id).await,
        before,
        "a refused claim pays nothing"
    );
    assert!(s.lemons().await.unwrap()[8].is_ripe());
}
