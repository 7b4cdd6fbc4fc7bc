//! Thousands of random operations through the use cases, then the invariant checker.

use std::sync::Arc;

use chrono::TimeDelta;
use dbtree_adapters::memory::{
    ManualClock, MemoryCluster, MemoryQuizLock, MemoryRateLimiter, RecordingMailer, SeededEntropy,
};
use dbtree_core::boundary::{ClusterError, ClusterEvent, Observation, PostRequest};
use dbtree_core::harvest::Click;
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Engine, InstanceName, InstanceSpec, InstanceStatus, PresetSize, Resources,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;
use dbtree_core::service::{App, Deps};
use dbtree_core::stats::PageRequest;
use dbtree_core::tree::Position;

use crate::contract::backends::StoreEnv;

/// xorshift64*: reproducible choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default, Debug)]
struct Tally {
    sign_ins: u32,
    harvests: u32,
    creates: u32,
    charges: u64,
    deletes: u32,
}

fn internal<T, E: std::fmt::Debug>(
    result: Result<T, E>,
    is_internal: impl Fn(&E) -> bool,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) if is_internal(&e) => panic!("infrastructure failure: {e:?}"),
        Err(_) => None,
    }
}

macro_rules! domain {
    ($result:expr, $ty:path) => {
        internal($result, |e| matches!(e, $ty(_)))
    };
}

pub(crate) async fn ten_thousand_mixed_operations_leave_no_violations(env: &StoreEnv) {
    let operations: usize = std::env::var("DBTREE_RANDOM_OPERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let clock = Arc::new(ManualClock::fixed());
    let cluster = Arc::new(MemoryCluster::new());
    cluster.script(|s| s.auto_report = false);
    let mailer = Arc::new(RecordingMailer::new());
    let deps = Deps {
        store: env.store.clone(),
        quiz_lock: Arc::new(MemoryQuizLock::new(clock.clone())),
        rate_limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
        mailer: mailer.clone(),
        cluster: cluster.clone(),
        clock: clock.clone(),
        entropy: Arc::new(SeededEntropy::new(2026)),
        policy: Arc::new(Policy::default()),
    };
    let app = App::new(deps);
    app.prepare().await.unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut users: Vec<UserId> = Vec::new();
    let mut tally = Tally::default();
    let names = ["alpha", "beta", "gamma"];

    for step in 0..operations {
        let roll = rng.below(100);
        let someone = (!users.is_empty()).then(|| users[rng.below(users.len() as u64) as usize]);
        match (roll, someone) {
            (0..=7, _) | (_, None) => {
                if users.len() >= 40 {
                    continue;
                }
                let email = format!("rand{}@example.org", users.len());
                if app.accounts.request_code(&email, None).await.is_ok() {
                    let code = mailer.last_code_for(&email).unwrap();
                    let signed = app.accounts.verify(&email, &code, None).await.unwrap();
                    users.push(signed.profile.id);
                    tally.sign_ins += 1;
                }
            }
            (8..=34, Some(id)) => {
                let Some(user) = env.store.user(id).await.unwrap() else {
                    continue;
                };
                let position = Position::new(rng.below(10) as i64).unwrap();
                let Ok(quiz) = app.tree.start_quiz(&user, position).await else {
                    continue;
                };
                let attempt = env.store.attempt(quiz.attempt).await.unwrap().unwrap();
                let correct = env
                    .store
                    .quiz(attempt.quiz)
                    .await
                    .unwrap()
                    .unwrap()
                    .content
                    .correct_option;
                let option = if rng.chance(75) {
                    correct
                } else {
                    (correct + 1) % quiz.options.len() as u8
                };
                clock.advance_ms(rng.below(25_000) as i64);
                let answer = domain!(
                    app.tree
                        .answer(user.id, quiz.attempt, i64::from(option))
                        .await,
                    dbtree_core::service::AnswerError::Internal
                );
                let Some(challenge) = answer.and_then(|a| a.challenge) else {
                    continue;
                };
                let elapsed = rng.below(6_000) as i64;
                clock.advance_ms(elapsed);
                let (x, y) = challenge.centre_at(elapsed as f64 * 0.8);
                let miss = if rng.chance(15) { 0.3 } else { 0.0 };
                let click = Click {
                    click_offset_ms: (elapsed as f64 * 0.8) as i64,
                    x: (x + miss).min(1.0),
                    y,
                };
                if domain!(
                    app.tree.harvest(user.id, quiz.attempt, &click).await,
                    dbtree_core::service::HarvestError::Internal
                )
                .is_some()
                {
                    tally.harvests += 1;
                }
            }
            (35..=39, _) => {
                app.tree.regrow().await.unwrap();
            }
            (40..=49, Some(id)) => {
                let Some(user) = env.store.user(id).await.unwrap() else {
                    continue;
                };
                let engine = Engine::ALL[rng.below(3) as usize];
                let spec = if rng.chance(70) {
                    InstanceSpec::Preset {
                        engine,
                        size: PresetSize::ALL[rng.below(4) as usize],
                    }
                } else {
                    let resources = Resources::custom(
                        0.1 + 0.05 * rng.below(10) as f64,
                        128 + 64 * rng.below(20) as i64,
                        1 + rng.below(20) as i64,
                    )
                    .unwrap();
                    InstanceSpec::Custom { engine, resources }
                };
                let name = InstanceName::parse(names[rng.below(3) as usize]).unwrap();
                if domain!(
                    app.instances.create(&user, name, spec).await,
                    dbtree_core::service::CreateError::Internal
                )
                .is_some()
                {
                    tally.creates += 1;
                }
            }
            (50..=57, _) => {
                let provisioning = env
                    .store
                    .instances_in(&[InstanceStatus::Provisioning])
                    .await
                    .unwrap();
                if provisioning.is_empty() {
                    continue;
                }
                let instance = &provisioning[rng.below(provisioning.len() as u64) as usize];
                let observation = if rng.chance(85) {
                    Observation::Ready
                } else {
                    Observation::Failed {
                        reason: "engine crashed".into(),
                    }
                };
                app.instances
                    .observe(&ClusterEvent {
                        instance: instance.id,
                        observation,
                    })
                    .await
                    .unwrap();
            }
            (58..=67, Some(id)) => {
                let mine = app.instances.list(id).await.unwrap();
                if mine.is_empty() {
                    continue;
                }
                let target: InstanceId = mine[rng.below(mine.len() as u64) as usize].id;
                let result = match rng.below(4) {
                    0 => app.instances.stop(id, target).await.map(|_| ()),
                    1 => app.instances.start(id, target).await.map(|_| ()),
                    2 => app
                        .instances
                        .rotate_credentials(id, target)
                        .await
                        .map(|_| ()),
                    _ => {
                        tally.deletes += 1;
                        app.instances.delete(id, target).await.map(|_| ())
                    }
                };
                domain!(result, dbtree_core::service::InstanceActionError::Internal);
            }
            (68..=72, _) => {
                let report = app.billing.run_pass().await.unwrap();
                assert!(report.failures.is_empty(), "{:?}", report.failures);
                tally.charges += u64::from(report.charged) + u64::from(report.resumed);
            }
            (73..=79, _) => clock.advance(TimeDelta::minutes(1 + rng.below(120) as i64)),
            (80..=84, Some(id)) => {
                let request = PostRequest {
                    user: id,
                    kind: EntryKind::AdminGrant,
                    amount: Lemons::new(1 + rng.below(40) as u32),
                    key: IdempotencyKey::admin_grant(&format!("rand-{step}")).unwrap(),
                    instance: None,
                    at: dbtree_core::boundary::Clock::now(clock.as_ref()),
                };
                let _ = env.store.post(&request, &Policy::default().ledger).await;
            }
            (85..=87, _) => {
                let refuse = rng
                    .chance(50)
                    .then(|| ClusterError::permanent("the engine binary is missing"));
                cluster.script(|s| s.refuse_provision = refuse);
            }
            (88..=91, _) => {
                app.instances.resync().await.unwrap();
            }
            (92..=95, Some(id)) => {
                let page =
                    PageRequest::new(1 + rng.below(100) as i64, rng.below(20) as i64).unwrap();
                app.stats.transactions(id, None, page).await.unwrap();
                app.stats
                    .daily_harvests(id, 1 + rng.below(90) as u32)
                    .await
                    .unwrap();
                app.stats.leaderboard().await.unwrap();
                app.stats.capacity().await.unwrap();
            }
            (_, Some(id)) => {
                if rng.chance(10) {
                    let deleted = app.accounts.delete_account(id).await;
                    assert!(
                        !matches!(
                            deleted,
                            Err(dbtree_core::service::DeleteAccountError::Internal(_))
                        ),
                        "{deleted:?}"
                    );
                    users.retain(|u| *u != id);
                }
            }
        }
    }
    assert!(
        tally.sign_ins >= 10
            && tally.harvests >= 10
            && tally.creates >= 10
            && tally.charges >= 10
            && tally.deletes >= 5,
        "the run did too little: {tally:?}"
    );
    if let Some(report) = env.invariants().await {
        assert!(report.is_clean(), "{report}");
        assert!(report.entries > 100, "{report}");
        println!("{operations} operations ({tally:?}): {report}");
    }
}
