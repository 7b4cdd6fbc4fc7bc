//! Quizzes and harvests: cooldowns, locks, deadlines, clicks, regrowth, streaks.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use dbtree_core::harvest::{ClickRefusal, HarvestRefusal};
use dbtree_core::lemons::Lemons;
use dbtree_core::service::{AbandonError, AnswerError, HarvestError, StartQuizError};

use super::helpers::*;

#[tokio::test]
async fn a_fresh_install_has_ten_ripe_lemons_with_distinct_quizzes() {
    let (_sb, app) = fresh().await;
    let tree = app.tree.tree().await.unwrap();
    assert_eq!(tree.len(), 10);
    assert!(tree.iter().all(|l| l.is_ripe()));
    let quizzes: BTreeSet<_> = tree.iter().map(|l| l.quiz).collect();
    assert_eq!(quizzes.len(), 10);
    // preparing twice changes nothing
    app.prepare().await.unwrap();
    assert_eq!(app.tree.tree().await.unwrap(), tree);
    assert!(app.quizzes.list().await.unwrap().len() >= 60);
}

#[tokio::test]
async fn one_quiz_at_a_time_per_user_but_many_users_per_lemon() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let first = app.tree.start_quiz(&ann, pos(0)).await.unwrap();
    match app.tree.start_quiz(&ann, pos(1)).await {
        Err(StartQuizError::QuizInProgress { until }) => assert_eq!(until, Some(first.deadline)),
        other => panic!("{other:?}"),
    }
    assert!(
        app.tree.start_quiz(&bob, pos(0)).await.is_ok(),
        "two players on one lemon"
    );
    // up to the deadline the quiz may still be answered: the lock holds
    sb.clock.advance(first.time_limit);
    assert!(matches!(
        app.tree.start_quiz(&ann, pos(1)).await,
        Err(StartQuizError::QuizInProgress { .. })
    ));
    // past it, the lock is released at once (its own expiry is 3 s later still)
    sb.clock.advance(TimeDelta::milliseconds(1));
    assert!(app.tree.start_quiz(&ann, pos(1)).await.is_ok());
}

#[tokio::test]
async fn abandoning_releases_the_lock_at_once_and_ends_the_quiz() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let first = app.tree.start_quiz(&ann, pos(0)).await.unwrap();
    assert!(matches!(
        app.tree.abandon(bob.id, first.attempt).await,
        Err(AbandonError::UnknownAttempt)
    ));
    app.tree.abandon(ann.id, first.attempt).await.unwrap();
    let second = app.tree.start_quiz(&ann, pos(1)).await.unwrap();
    // abandoning again is harmless and leaves the new quiz's lock alone
    app.tree.abandon(ann.id, first.attempt).await.unwrap();
    assert!(matches!(
        app.tree.start_quiz(&ann, pos(2)).await,
        Err(StartQuizError::QuizInProgress { .. })
    ));
    let correct = sb.correct_option(first.attempt).await;
    assert!(matches!(
        app.tree
            .answer(ann.id, first.attempt, i64::from(correct))
            .await,
        Err(AnswerError::Abandoned)
    ));
    // a late answer releases the lock too
    sb.clock
        .advance(second.time_limit + TimeDelta::milliseconds(1));
    assert!(matches!(
        app.tree.answer(ann.id, second.attempt, 0).await,
        Err(AnswerError::TimeExpired { .. })
    ));
    let third = app.tree.start_quiz(&ann, pos(2)).await.unwrap();
    // abandoning an answered quiz changes nothing
    let correct = sb.correct_option(third.attempt).await;
    let outcome = app
        .tree
        .answer(ann.id, third.attempt, i64::from(correct))
        .await
        .unwrap();
    assert!(outcome.challenge.is_some());
    app.tree.abandon(ann.id, third.attempt).await.unwrap();
    let challenge = outcome.challenge.unwrap();
    let (x, y) = challenge.centre_at(300.0);
    sb.clock.advance(TimeDelta::milliseconds(400));
    let won = app
        .tree
        .harvest(
            ann.id,
            third.attempt,
            &dbtree_core::harvest::Click {
                click_offset_ms: 300,
                x,
                y,
            },
        )
        .await;
    assert!(won.is_ok(), "{won:?}");
}

#[tokio::test]
async fn answers_are_checked_and_the_correct_option_revealed_only_when_on_time() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let quiz = app.tree.start_quiz(&ann, pos(2)).await.unwrap();
    let correct = sb.correct_option(quiz.attempt).await;
    let max = quiz.options.len() as i64 - 1;
    assert!(matches!(
        app.tree.answer(ann.id, quiz.attempt, max + 1).await,
        Err(AnswerError::InvalidOption { .. })
    ));
    assert!(matches!(
        app.tree.answer(ann.id, quiz.attempt, -1).await,
        Err(AnswerError::InvalidOption { .. })
    ));
    let wrong = if correct == 0 { 1 } else { 0 };
    let outcome = app
        .tree
        .answer(ann.id, quiz.attempt, i64::from(wrong))
        .await
        .unwrap();
    assert!(!outcome.correct && outcome.challenge.is_none());
    assert_eq!(outcome.correct_option, correct);
    assert!(matches!(
        app.tree
            .answer(ann.id, quiz.attempt, i64::from(correct))
            .await,
        Err(AnswerError::AlreadyAnswered)
    ));
    // a wrong answer opens no window
    let click = dbtree_core::harvest::Click {
        click_offset_ms: 10,
        x: 0.5,
        y: 0.5,
    };
    assert!(matches!(
        app.tree.harvest(ann.id, quiz.attempt, &click).await,
        Err(HarvestError::Refused(HarvestRefusal::NotEligible))
    ));

    // late answer: refused without revealing the option
    let quiz = app.tree.start_quiz(&ann, pos(3)).await.unwrap();
    let correct = sb.correct_option(quiz.attempt).await;
    sb.clock
        .advance(quiz.time_limit + TimeDelta::milliseconds(1));
    let late = app
        .tree
        .answer(ann.id, quiz.attempt, i64::from(correct))
        .await
        .unwrap_err();
    assert!(
        matches!(late, AnswerError::TimeExpired { late_ms: 1 }),
        "{late:?}"
    );
    assert!(matches!(
        app.tree.harvest(ann.id, quiz.attempt, &click).await,
        Err(HarvestError::Refused(HarvestRefusal::NotEligible))
    ));

    // someone else's attempt does not exist for you
    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let theirs = app.tree.start_quiz(&bob, pos(4)).await.unwrap();
    assert!(matches!(
        app.tree.answer(ann.id, theirs.attempt, 0).await,
        Err(AnswerError::UnknownAttempt)
    ));
}

#[tokio::test]
async fn the_window_is_five_seconds_and_a_miss_ends_the_attempt() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let (attempt, challenge) = answer_correctly(&sb, &app, &ann, pos(0)).await;
    sb.clock.advance_ms(5001);
    let late = app
        .tree
        .harvest(ann.id, attempt, &on_circle(&challenge, 4000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            HarvestError::Refused(HarvestRefusal::WindowClosed { elapsed_ms: 5001 })
        ),
        "{late:?}"
    );
    // settled: a retry says the same even with a perfect click
    let again = app
        .tree
        .harvest(ann.id, attempt, &on_circle(&challenge, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            HarvestError::Refused(HarvestRefusal::WindowClosed { .. })
        ),
        "{again:?}"
    );

    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let (attempt, challenge) = answer_correctly(&sb, &app, &bob, pos(0)).await;
    let mut miss = on_circle(&challenge, 1500);
    miss.x = if miss.x > 0.5 {
        miss.x - 0.3
    } else {
        miss.x + 0.3
    };
    sb.clock.advance_ms(1600);
    let err = app.tree.harvest(bob.id, attempt, &miss).await.unwrap_err();
    assert!(
        matches!(
            err,
            HarvestError::Refused(HarvestRefusal::Click(ClickRefusal::Missed { .. }))
        ),
        "{err:?}"
    );
    let err = app
        .tree
        .harvest(bob.id, attempt, &on_circle(&challenge, 1500))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HarvestError::Refused(HarvestRefusal::Click(ClickRefusal::Missed { .. }))
        ),
        "{err:?}"
    );
    // the lemon is still there for others
    assert!(app.tree.tree().await.unwrap()[0].is_ripe());
}

#[tokio::test]
async fn a_repeated_harvest_returns_the_same_receipt_and_pays_once() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    let (attempt, challenge) = answer_correctly(&sb, &app, &ann, pos(5)).await;
    sb.clock.advance_ms(700);
    let click = on_circle(&challenge, 600);
    let first = app.tree.harvest(ann.id, attempt, &click).await.unwrap();
    sb.clock.advance(TimeDelta::minutes(5));
    let second = app.tree.harvest(ann.id, attempt, &click).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(reload(&app, &token).await.balance.get(), 18);
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn the_cooldown_holds_at_quiz_start_and_at_harvest() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    // answer two quizzes before harvesting either
    let (a, ca) = answer_correctly(&sb, &app, &ann, pos(0)).await;
    let (b, cb) = answer_correctly(&sb, &app, &ann, pos(1)).await;
    app.tree
        .harvest(ann.id, b, &on_circle(&cb, 50))
        .await
        .unwrap();
    let err = app.tree.harvest(ann.id, a, &on_circle(&ca, 50)).await;
    assert!(matches!(err, Err(HarvestError::Cooldown { .. })), "{err:?}");
    let ann = reload(&app, &token).await;
    assert!(matches!(
        app.tree.start_quiz(&ann, pos(2)).await,
        Err(StartQuizError::Cooldown { .. })
    ));
    sb.clock.advance(TimeDelta::hours(1));
    assert!(app.tree.start_quiz(&ann, pos(2)).await.is_ok());
}

#[tokio::test]
async fn exactly_one_of_two_correct_players_wins() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let (a, ca) = answer_correctly(&sb, &app, &ann, pos(6)).await;
    let (b, cb) = answer_correctly(&sb, &app, &bob, pos(6)).await;
    app.tree
        .harvest(bob.id, b, &on_circle(&cb, 10))
        .await
        .unwrap();
    let lost = app
        .tree
        .harvest(ann.id, a, &on_circle(&ca, 10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            lost,
            HarvestError::Refused(HarvestRefusal::AlreadyHarvested)
        ),
        "{lost:?}"
    );
    let lemon = &app.tree.tree().await.unwrap()[6];
    assert_eq!(lemon.harvested_by, Some(bob.id));
    // a quiz on a regrowing lemon is refused with its regrowth time
    assert!(matches!(
        app.tree.start_quiz(&ann, pos(6)).await,
        Err(StartQuizError::NotRipe {
            regrows_at: Some(_)
        })
    ));
}

#[tokio::test]
async fn lemons_regrow_after_an_hour_with_a_quiz_not_on_the_tree() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let before = app.tree.tree().await.unwrap();
    win(&sb, &app, &ann, pos(8)).await;
    sb.clock.advance(TimeDelta::minutes(59));
    assert!(app.tree.regrow().await.unwrap().is_empty());
    sb.clock.advance(TimeDelta::minutes(1));
    let regrown = app.tree.regrow().await.unwrap();
    assert_eq!(regrown.len(), 1);
    let lemon = &regrown[0];
    assert!(lemon.is_ripe());
    assert_eq!(lemon.cycle, before[8].cycle + 1);
    let others: BTreeSet<_> = before.iter().map(|l| l.quiz).collect();
    assert!(
        !others.contains(&lemon.quiz),
        "the new quiz must not be on the tree"
    );
    assert!(
        app.tree.regrow().await.unwrap().is_empty(),
        "each lemon regrows once"
    );
}

#[tokio::test]
async fn streaks_pay_on_the_third_day() {
    let (sb, app) = fresh().await;
    let mut bonuses = Vec::new();
    let mut balance = 0;
    for day in 0..3 {
        // sessions last a day: sign in each morning
        let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
        let receipt = win(&sb, &app, &ann, pos(day)).await;
        bonuses.push(receipt.streak_bonus.get());
        balance = receipt.balance_after.get();
        sb.clock.advance(TimeDelta::days(1));
    }
    assert_eq!(bonuses, [0, 0, 5]);
    assert_eq!(balance, 15 + 9 + 5);
}

#[tokio::test]
async fn at_the_cap_a_harvest_is_refused_and_the_lemon_stays() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    let (a, ca) = answer_correctly(&sb, &app, &ann, pos(9)).await;
    grant(&sb, &ann, 485, "fill-up").await;
    let full = app
        .tree
        .harvest(ann.id, a, &on_circle(&ca, 30))
        .await
        .unwrap_err();
    assert!(
        matches!(full, HarvestError::StorageFull { cap } if cap == Lemons::new(500)),
        "{full:?}"
    );
    assert!(app.tree.tree().await.unwrap()[9].is_ripe());
    let ann = reload(&app, &token).await;
    assert!(matches!(
        app.tree.start_quiz(&ann, pos(9)).await,
        Err(StartQuizError::StorageFull { .. })
    ));
}
