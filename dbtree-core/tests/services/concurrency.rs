//! Many tasks at once: one harvest winner, no third instance, one bonus, one charge.

use std::sync::Arc;

use dbtree_core::boundary::User;
use dbtree_core::harvest::{ClickChallenge, HarvestRefusal};
use dbtree_core::ids::AttemptId;
use dbtree_core::instance::{CreateRefusal, Engine, InstanceName, InstanceSpec, PresetSize};
use dbtree_core::ledger::EntryKind;
use dbtree_core::service::{CreateError, HarvestError};

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_harvests_of_one_lemon_have_exactly_one_winner() {
    let (sb, app) = fresh().await;
    let mut players: Vec<(User, AttemptId, ClickChallenge)> = Vec::new();
    for i in 0..200 {
        let (user, _) = sign_in(&sb, &app, &format!("player{i}@example.org")).await;
        let quiz = app.tree.start_quiz(&user, pos(3)).await.unwrap();
        let correct = sb.correct_option(quiz.attempt).await;
        let challenge = app
            .tree
            .answer(user.id, quiz.attempt, i64::from(correct))
            .await
            .unwrap()
            .challenge
            .unwrap();
        players.push((user, quiz.attempt, challenge));
    }
    let app = Arc::new(app);
    let barrier = Arc::new(tokio::sync::Barrier::new(players.len()));
    let mut tasks = Vec::new();
    for (user, attempt, challenge) in players {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            app.tree
                .harvest(user.id, attempt, &on_circle(&challenge, 250))
                .await
        }));
    }
    let (mut won, mut lost) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(HarvestError::Refused(HarvestRefusal::AlreadyHarvested)) => lost += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, lost), (1, 199));
    let harvests = sb
        .store
        .all_entries()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Harvest)
        .count();
    assert_eq!(harvests, 1);
    assert_ledger_consistent(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_make_a_third_instance() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 200, "many").await;
    let ann = reload(&app, &token).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (app, ann) = (app.clone(), ann.clone());
        tasks.push(tokio::spawn(async move {
            let spec = InstanceSpec::Preset {
                engine: Engine::Redis,
                size: PresetSize::Tiny,
            };
            app.instances
                .create(&ann, InstanceName::parse(&format!("db-{i}")).unwrap(), spec)
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(CreateError::Refused(CreateRefusal::InstanceLimit { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(app.instances.list(ann.id).await.unwrap().len(), 2);
    assert_eq!(reload(&app, &token).await.balance.get(), 215 - 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sign_ins_with_one_code_open_one_session_and_pay_one_bonus() {
    let (sb, app) = fresh().await;
    app.accounts
        .request_code("dup@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("dup@example.org").unwrap();
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (app, code) = (app.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            app.accounts.verify("dup@example.org", &code, None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "a code is single use");
    let bonuses = sb
        .store
        .all_entries()
        .into_iter()
        .filter(|e| e.kind == EntryKind::WelcomeBonus)
        .count();
    assert_eq!(bonuses, 1);
}
