//! Small steps the suites share: users, lemons, open attempts, instances.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{NewAttempt, NewInstance, NewUser, PostRequest, Store, User};
use dbtree_core::harvest::ClickChallenge;
use dbtree_core::ids::{AttemptId, InstanceId, UserId};
use dbtree_core::instance::{Engine, Instance, InstanceName, InstanceSpec, PresetSize};
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;
use dbtree_core::quiz::{AnswerRecord, shipped_bank};
use dbtree_core::tree::Position;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

pub(crate) fn policy() -> Policy {
    Policy::default()
}

pub(crate) fn id_bytes(n: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8] = 0xa5;
    b
}

pub(crate) async fn user(store: &Arc<dyn Store>, n: u64) -> User {
    let new = NewUser {
        id: UserId::from_random_bytes(id_bytes(n)),
        email: Email::parse(&format!("user{n}@example.org")).unwrap(),
        now: t0(),
    };
    store.register(&new, &policy().ledger).await.unwrap().user
}

pub(crate) async fn grant(store: &Arc<dyn Store>, user: UserId, amount: u32, reference: &str) {
    let request = PostRequest {
        user,
        kind: EntryKind::AdminGrant,
        amount: Lemons::new(amount),
        key: IdempotencyKey::admin_grant(reference).unwrap(),
        instance: None,
        at: t0(),
    };
    store.post(&request, &policy().ledger).await.unwrap();
}

pub(crate) async fn balance(store: &Arc<dyn Store>, user: UserId) -> u32 {
    store.balance(user).await.unwrap().unwrap().get()
}

pub(crate) async fn planted(store: &Arc<dyn Store>) {
    store.seed_quizzes(&shipped_bank().unwrap()).await.unwrap();
    store.plant(t0()).await.unwrap();
}

pub(crate) fn challenge() -> ClickChallenge {
    ClickChallenge {
        window_ms: 5000,
        period_ms: 3000,
        fx: 1,
        fy: 2,
        phase: 0.25,
        radius: 0.08,
        hit_tolerance: 1.1,
        lag_allowance_ms: 120,
    }
}

/// An attempt of `user` on `position` with a correct, on-time answer at `at`.
pub(crate) async fn open_attempt(
    store: &Arc<dyn Store>,
    user: UserId,
    position: u8,
    n: u64,
    at: DateTime<Utc>,
) -> AttemptId {
    let lemon = store
        .lemons()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.position.get() == position)
        .unwrap();
    let id = AttemptId::from_random_bytes(id_bytes(1_000_000 + n));
    let new = NewAttempt {
        id,
        user,
        position: Position::new(i64::from(position)).unwrap(),
        lemon_cycle: lemon.cycle,
        quiz: lemon.quiz,
        started_at: at - TimeDelta::seconds(3),
        time_limit: TimeDelta::seconds(20),
    };
    store.start_attempt(&new).await.unwrap();
    let answer = AnswerRecord {
        option: 0,
        correct: true,
        on_time: true,
        at,
        challenge: Some(challenge()),
    };
    store.record_answer(id, &answer).await.unwrap();
    id
}

pub(crate) fn name(n: &str) -> InstanceName {
    InstanceName::parse(n).unwrap()
}

pub(crate) fn tiny_redis() -> InstanceSpec {
    InstanceSpec::Preset {
        engine: Engine::Redis,
        size: PresetSize::Tiny,
    }
}

pub(crate) fn new_instance(
    owner: UserId,
    n: u64,
    instance_name: &str,
    spec: InstanceSpec,
) -> NewInstance {
    NewInstance {
        id: InstanceId::from_random_bytes(id_bytes(2_000_000 + n)),
        owner,
        name: name(instance_name),
        spec,
        price: spec.price(),
        created_at: t0(),
    }
}

pub(crate) async fn created(
    store: &Arc<dyn Store>,
    owner: UserId,
    n: u64,
    instance_name: &str,
    spec: InstanceSpec,
) -> Instance {
    store
        .create_instance(
            &new_instance(owner, n, instance_name, spec),
            &policy().instances,
        )
        .await
        .unwrap()
        .instance
}

/// Every entry of a user, through the public history API.
pub(crate) async fn entries(
    store: &Arc<dyn Store>,
    user: UserId,
) -> Vec<dbtree_core::ledger::LedgerEntry> {
    let page = dbtree_core::stats::PageRequest::new(100, 0).unwrap();
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let got = store
            .history(
                user,
                None,
                dbtree_core::stats::PageRequest { offset, ..page },
            )
            .await
            .unwrap();
        let n = got.items.len() as u64;
        all.extend(got.items);
        if n < 100 {
            return all;
        }
        offset += n;
    }
}

/// The user's balance equals the sum of the entries the history shows.
pub(crate) async fn assert_balanced(store: &Arc<dyn Store>, user: UserId) {
    let sum: i64 = entries(store, user).await.iter().map(|e| e.delta).sum();
    assert_eq!(
        i64::from(balance(store, user).await),
        sum,
        "balance != sum of entries"
    );
}
