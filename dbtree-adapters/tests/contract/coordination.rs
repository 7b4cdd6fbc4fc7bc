//! Contract: the quiz lock and the rate limiter.

use chrono::TimeDelta;
use dbtree_core::boundary::{LockOutcome, RateDecision, RateKey, RateLimit};
use dbtree_core::ids::{AttemptId, UserId};

use crate::contract::backends::CoordinationEnv;
use crate::contract::fixtures::id_bytes;

fn ids(n: u64) -> (UserId, AttemptId) {
    (
        UserId::from_random_bytes(id_bytes(n)),
        AttemptId::from_random_bytes(id_bytes(n + 500)),
    )
}

pub(crate) async fn the_lock_is_exclusive_and_released_only_by_its_holder(env: &CoordinationEnv) {
    let (user, a1) = ids(1);
    let (_, a2) = ids(2);
    let (other, a3) = ids(3);
    let ttl = TimeDelta::seconds(30);
    assert_eq!(
        env.lock.acquire(user, a1, ttl).await.unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        env.lock.acquire(user, a2, ttl).await.unwrap(),
        LockOutcome::Held
    );
    assert_eq!(
        env.lock.acquire(other, a3, ttl).await.unwrap(),
        LockOutcome::Acquired,
        "per user"
    );
    assert!(!env.lock.release(user, a2).await.unwrap(), "not the holder");
    assert_eq!(
        env.lock.acquire(user, a2, ttl).await.unwrap(),
        LockOutcome::Held
    );
    assert!(env.lock.release(user, a1).await.unwrap());
    assert!(!env.lock.release(user, a1).await.unwrap(), "released once");
    assert_eq!(
        env.lock.acquire(user, a2, ttl).await.unwrap(),
        LockOutcome::Acquired
    );
}

pub(crate) async fn the_holder_is_known_while_the_lock_lives(env: &CoordinationEnv) {
    let (user, a1) = ids(20);
    let (_, a2) = ids(21);
    assert_eq!(env.lock.holder(user).await.unwrap(), None);
    env.lock
        .acquire(user, a1, TimeDelta::milliseconds(300))
        .await
        .unwrap();
    assert_eq!(env.lock.holder(user).await.unwrap(), Some(a1));
    assert!(env.lock.release(user, a1).await.unwrap());
    assert_eq!(env.lock.holder(user).await.unwrap(), None, "released");
    env.lock
        .acquire(user, a2, TimeDelta::milliseconds(300))
        .await
        .unwrap();
    env.wait(TimeDelta::milliseconds(350)).await;
    assert_eq!(env.lock.holder(user).await.unwrap(), None, "expired");
}

pub(crate) async fn the_lock_expires_after_its_lifetime(env: &CoordinationEnv) {
    let (user, a1) = ids(10);
    let (_, a2) = ids(11);
    assert_eq!(
        env.lock
            .acquire(user, a1, TimeDelta::milliseconds(300))
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    env.wait(TimeDelta::milliseconds(100)).await;
    assert_eq!(
        env.lock
            .acquire(user, a2, TimeDelta::seconds(30))
            .await
            .unwrap(),
        LockOutcome::Held
    );
    env.wait(TimeDelta::milliseconds(350)).await;
    assert_eq!(
        env.lock
            .acquire(user, a2, TimeDelta::seconds(30))
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    assert!(
        !env.lock.release(user, a1).await.unwrap(),
        "an expired holder releases nothing"
    );
    assert!(env.lock.release(user, a2).await.unwrap());
}

pub(crate) async fn concurrent_acquires_have_one_winner(env: &CoordinationEnv) {
    let (user, _) = ids(20);
    let mut tasks = Vec::new();
    for n in 0..32u64 {
        let lock = env.lock.clone();
        tasks.push(tokio::spawn(async move {
            lock.acquire(
                user,
                AttemptId::from_random_bytes(id_bytes(700 + n)),
                TimeDelta::seconds(30),
            )
            .await
            .unwrap()
        }));
    }
    let mut acquired = 0;
    for t in tasks {
        acquired += usize::from(t.await.unwrap() == LockOutcome::Acquired);
    }
    assert_eq!(acquired, 1);
}

pub(crate) async fn the_rate_limit_window_slides(env: &CoordinationEnv) {
    let key = RateKey::inquiries_from(UserId::from_random_bytes(id_bytes(30)));
    let other = RateKey::inquiries_from(UserId::from_random_bytes(id_bytes(31)));
    let limit = RateLimit {
        max: 3,
        window: TimeDelta::seconds(1),
    };
    for _ in 0..3 {
        assert_eq!(
            env.limiter.hit(&key, limit).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!(
        env.limiter.hit(&key, limit).await.unwrap(),
        RateDecision::Limited {
            retry_after_secs: 1
        }
    );
    assert_eq!(
        env.limiter.hit(&other, limit).await.unwrap(),
        RateDecision::Allowed,
        "per key"
    );
    env.wait(TimeDelta::milliseconds(1100)).await;
    assert_eq!(
        env.limiter.hit(&key, limit).await.unwrap(),
        RateDecision::Allowed
    );
    let hour = RateLimit {
        max: 1,
        window: TimeDelta::hours(1),
    };
    let third = RateKey::inquiries_from(UserId::from_random_bytes(id_bytes(32)));
    env.limiter.hit(&third, hour).await.unwrap();
    let RateDecision::Limited { retry_after_secs } = env.limiter.hit(&third, hour).await.unwrap()
    else {
        panic!("the second hit within the hour must be limited");
    };
    assert!(
        (3590..=3600).contains(&retry_after_secs),
        "{retry_after_secs}"
    );
}

pub(crate) async fn concurrent_hits_never_exceed_the_limit(env: &CoordinationEnv) {
    let key = RateKey::inquiries_from(UserId::from_random_bytes(id_bytes(40)));
    let limit = RateLimit {
        max: 10,
        window: TimeDelta::minutes(1),
    };
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (limiter, key) = (env.limiter.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            limiter.hit(&key, limit).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap() == RateDecision::Allowed);
    }
    assert_eq!(allowed, 10);
}
