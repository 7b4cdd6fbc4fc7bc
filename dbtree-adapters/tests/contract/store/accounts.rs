//! Contract: users, the ledger, sign-in codes, sessions, support.

use chrono::{NaiveDate, TimeDelta};
use dbtree_core::auth::{
    AuthPolicy, CodeIssueRefusal, CodeVerdict, Email, Session, SessionToken, SignInCode,
};
use dbtree_core::boundary::{
    IssueCodeError, NewCode, NewUser, PostError, PostOutcome, PostRequest,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerRefusal};
use dbtree_core::lemons::Lemons;
use dbtree_core::stats::PageRequest;
use dbtree_core::support::{SupportCategory, SupportInquiry};

use crate::contract::backends::StoreEnv;
use crate::contract::fixtures::*;

fn request(user: UserId, kind: EntryKind, amount: u32, key: &str) -> PostRequest {
    PostRequest {
        user,
        kind,
        amount: Lemons::new(amount),
        key: IdempotencyKey::parse(key).unwrap(),
        instance: None,
        at: t0(),
    }
}

pub(crate) async fn posting_moves_balance_and_ledger_together(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 1).await;
    assert_eq!(balance(s, u.id).await, 15, "welcome bonus");
    let p = policy().ledger;
    s.post(&request(u.id, EntryKind::Harvest, 3, "t:h1"), &p)
        .await
        .unwrap();
    s.post(&request(u.id, EntryKind::InstanceCreate, 10, "t:c1"), &p)
        .await
        .unwrap();
    let refund = s
        .post(&request(u.id, EntryKind::InstanceRefund, 10, "t:r1"), &p)
        .await
        .unwrap();
    assert!(
        matches!(refund, PostOutcome::Posted(ref e) if e.delta == 10 && e.balance_after.get() == 18)
    );
    assert_eq!(balance(s, u.id).await, 18);
    assert_balanced(s, u.id).await;
    let kinds: Vec<_> = entries(s, u.id).await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::InstanceRefund,
            EntryKind::InstanceCreate,
            EntryKind::Harvest,
            EntryKind::WelcomeBonus
        ]
    );
}

pub(crate) async fn a_retried_key_changes_nothing(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 2).await;
    let other = user(s, 3).await;
    let p = policy().ledger;
    let first = s
        .post(&request(u.id, EntryKind::Harvest, 3, "t:once"), &p)
        .await
        .unwrap();
    let again = s
        .post(&request(u.id, EntryKind::Harvest, 3, "t:once"), &p)
        .await
        .unwrap();
    assert!(matches!(first, PostOutcome::Posted(_)));
    assert_eq!(again, PostOutcome::Replayed(first.entry().clone()));
    // through the second handle (another replica) too
    let third = env
        .second
        .post(&request(u.id, EntryKind::Harvest, 3, "t:once"), &p)
        .await
        .unwrap();
    assert!(matches!(third, PostOutcome::Replayed(_)));
    assert_eq!(balance(s, u.id).await, 18);
    // the same key for another event is a conflict, and changes nothing
    let clash = s
        .post(&request(other.id, EntryKind::Harvest, 3, "t:once"), &p)
        .await
        .unwrap_err();
    assert!(matches!(clash, PostError::KeyConflict(_)), "{clash:?}");
    let clash = s
        .post(&request(u.id, EntryKind::AdminGrant, 3, "t:once"), &p)
        .await
        .unwrap_err();
    assert!(matches!(clash, PostError::KeyConflict(_)), "{clash:?}");
    assert_eq!(
        (balance(s, u.id).await, balance(s, other.id).await),
        (18, 15)
    );
}

pub(crate) async fn debits_refuse_a_short_balance_and_earnings_clip_at_the_cap(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 4).await;
    let p = policy().ledger;
    let short = s
        .post(&request(u.id, EntryKind::InstanceHourly, 16, "t:d1"), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(
            short,
            PostError::Refused(LedgerRefusal::InsufficientLemons { .. })
        ),
        "{short:?}"
    );
    assert_eq!(balance(s, u.id).await, 15);
    assert_eq!(
        entries(s, u.id).await.len(),
        1,
        "a refused post writes nothing"
    );
    s.post(&request(u.id, EntryKind::AdminGrant, 490, "t:g1"), &p)
        .await
        .unwrap();
    assert_eq!(balance(s, u.id).await, 500, "clipped to the cap");
    let full = s
        .post(&request(u.id, EntryKind::Harvest, 3, "t:h2"), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(full, PostError::Refused(LedgerRefusal::StorageFull { .. })),
        "{full:?}"
    );
    s.post(&request(u.id, EntryKind::InstanceRefund, 30, "t:r2"), &p)
        .await
        .unwrap();
    assert_eq!(balance(s, u.id).await, 530, "refunds ignore the cap");
    let nobody = s
        .post(
            &request(
                UserId::from_random_bytes([9; 16]),
                EntryKind::Harvest,
                3,
                "t:x",
            ),
            &p,
        )
        .await
        .unwrap_err();
    assert!(matches!(nobody, PostError::UnknownUser), "{nobody:?}");
    assert_balanced(s, u.id).await;
}

pub(crate) async fn concurrent_debits_never_overdraw(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 5).await;
    grant(s, u.id, 85, "t:fifty").await; // 100
    let p = policy().ledger;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            store
                .post(
                    &request(u.id, EntryKind::InstanceHourly, 3, &format!("t:debit-{i}")),
                    &p,
                )
                .await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(PostOutcome::Posted(_)) => accepted += 1,
            Err(PostError::Refused(LedgerRefusal::InsufficientLemons { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 33, "100 / 3 = 33 debits fit");
    assert_eq!(balance(s, u.id).await, 1);
    let debits = entries(s, u.id)
        .await
        .into_iter()
        .filter(|e| e.kind == EntryKind::InstanceHourly)
        .count();
    assert_eq!(debits, accepted, "every accepted debit has its entry");
    assert_balanced(s, u.id).await;
}

pub(crate) async fn history_pages_newest_first_and_filters(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 6).await;
    let instance = InstanceId::from_random_bytes([7; 16]);
    let p = policy().ledger;
    for i in 0..7 {
        let mut r = request(u.id, EntryKind::Harvest, 1, &format!("t:p{i}"));
        r.at = t0() + TimeDelta::minutes(i);
        if i % 3 == 0 {
            r.instance = Some(instance);
        }
        s.post(&r, &p).await.unwrap();
    }
    let page = s
        .history(u.id, None, PageRequest::new(3, 0).unwrap())
        .await
        .unwrap();
    assert_eq!(page.total, 8);
    let keys: Vec<_> = page
        .items
        .iter()
        .map(|e| e.key.as_str().to_owned())
        .collect();
    assert_eq!(keys, ["t:p6", "t:p5", "t:p4"]);
    let last = s
        .history(u.id, None, PageRequest::new(3, 6).unwrap())
        .await
        .unwrap();
    assert_eq!(last.items.len(), 2);
    let filtered = s
        .history(u.id, Some(instance), PageRequest::new(100, 0).unwrap())
        .await
        .unwrap();
    assert_eq!((filtered.total, filtered.items.len()), (3, 3));
    assert!(filtered.items.iter().all(|e| e.instance == Some(instance)));
}

pub(crate) async fn daily_harvests_group_by_utc_day(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 7).await;
    let p = policy().ledger;
    let day = |d: i64, h: i64| t0() + TimeDelta::days(d) + TimeDelta::hours(h);
    for (i, (at, kind, n)) in [
        (day(0, 1), EntryKind::Harvest, 3),
        (day(0, 13), EntryKind::StreakBonus, 5),
        (day(1, 0), EntryKind::Harvest, 3),
        (day(2, 5), EntryKind::AdminGrant, 9),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = request(u.id, kind, n, &format!("t:day{i}"));
        r.at = at;
        s.post(&r, &p).await.unwrap();
    }
    let d0 = t0().date_naive();
    let got = s
        .daily_harvests(u.id, d0, d0 + chrono::Days::new(2))
        .await
        .unwrap();
    let got: Vec<(NaiveDate, u64)> = got.into_iter().map(|d| (d.day, d.lemons)).collect();
    assert_eq!(got, [(d0, 8), (d0 + chrono::Days::new(1), 3)]);
    assert_eq!(s.total_harvested().await.unwrap(), 6);
}

pub(crate) async fn registration_pays_the_welcome_bonus_once_per_email_ever(env: &StoreEnv) {
    let s = &env.store;
    let email = Email::parse("once@example.org").unwrap();
    let first = NewUser {
        id: UserId::from_random_bytes([1; 16]),
        email: email.clone(),
        now: t0(),
    };
    let reg = s.register(&first, &policy().ledger).await.unwrap();
    assert!(reg.created && reg.welcome.is_some());
    let again = s
        .register(
            &NewUser {
                id: UserId::from_random_bytes([2; 16]),
                ..first.clone()
            },
            &policy().ledger,
        )
        .await
        .unwrap();
    assert!(!again.created && again.welcome.is_none());
    assert_eq!(again.user.id, reg.user.id);
    assert!(s.delete_user(reg.user.id, t0()).await.unwrap());
    assert!(
        !s.delete_user(reg.user.id, t0()).await.unwrap(),
        "idempotent"
    );
    assert!(s.user(reg.user.id).await.unwrap().is_none());
    let back = s
        .register(
            &NewUser {
                id: UserId::from_random_bytes([3; 16]),
                ..first
            },
            &policy().ledger,
        )
        .await
        .unwrap();
    assert!(back.created && back.welcome.is_none(), "no second bonus");
    assert_eq!(back.user.balance, Lemons::ZERO);
    assert_eq!(s.count_live_users().await.unwrap(), 1);
}

pub(crate) async fn concurrent_registrations_make_one_account(env: &StoreEnv) {
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = if i % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let new = NewUser {
                id: UserId::from_random_bytes([i + 10; 16]),
                email: Email::parse("race@example.org").unwrap(),
                now: t0(),
            };
            store.register(&new, &policy().ledger).await.unwrap()
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut bonuses = 0;
    for t in tasks {
        let reg = t.await.unwrap();
        ids.insert(reg.user.id);
        bonuses += usize::from(reg.welcome.is_some());
    }
    assert_eq!((ids.len(), bonuses), (1, 1));
}

fn code(email: &Email, digits: &str, at: chrono::DateTime<chrono::Utc>) -> NewCode {
    let policy = AuthPolicy::default();
    NewCode {
        email: email.clone(),
        hash: SignInCode::parse(digits)
            .unwrap()
            .hash_for(email, &policy.code_key),
        issued_at: at,
        expires_at: policy.code_expires_at(at),
    }
}

pub(crate) async fn codes_follow_the_resend_rules_and_verdicts(env: &StoreEnv) {
    let s = &env.store;
    // five codes per email per hour, so the walk below reaches the allowance
    let a = AuthPolicy {
        codes_per_hour_per_email: 5,
        ..AuthPolicy::default()
    };
    let email = Email::parse("codes@example.org").unwrap();
    s.issue_code(&code(&email, "111111", t0()), &a)
        .await
        .unwrap();
    let soon = s
        .issue_code(&code(&email, "222222", t0() + TimeDelta::seconds(30)), &a)
        .await
        .unwrap_err();
    assert!(
        matches!(
            soon,
            IssueCodeError::Refused(CodeIssueRefusal::ResendTooSoon {
                retry_after_secs: 30
            })
        ),
        "{soon:?}"
    );
    let later = t0() + TimeDelta::seconds(60);
    s.issue_code(&code(&email, "333333", later), &a)
        .await
        .unwrap();
    let hash = |d: &str| SignInCode::parse(d).unwrap().hash_for(&email, &a.code_key);
    // the older code was superseded
    assert!(matches!(
        s.redeem_code(&email, &hash("111111"), later, &a)
            .await
            .unwrap(),
        CodeVerdict::Wrong { attempts_left: 4 }
    ));
    for left in (0..4).rev() {
        assert_eq!(
            s.redeem_code(&email, &hash("000000"), later, &a)
                .await
                .unwrap(),
            CodeVerdict::Wrong {
                attempts_left: left
            }
        );
    }
    assert_eq!(
        s.redeem_code(&email, &hash("333333"), later, &a)
            .await
            .unwrap(),
        CodeVerdict::Locked
    );
    // a fresh code: accepted once, concurrently too
    let fresh = later + TimeDelta::seconds(60);
    s.issue_code(&code(&email, "444444", fresh), &a)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        let (email, h) = (email.clone(), hash("444444"));
        tasks.push(tokio::spawn(async move {
            store
                .redeem_code(&email, &h, fresh, &AuthPolicy::default())
                .await
                .unwrap()
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += usize::from(t.await.unwrap() == CodeVerdict::Accepted);
    }
    assert_eq!(accepted, 1);
    assert_eq!(
        s.redeem_code(&email, &hash("444444"), fresh, &a)
            .await
            .unwrap(),
        CodeVerdict::NoCode
    );
    // expiry, withdrawal and purge
    let fourth = fresh + TimeDelta::seconds(60);
    s.issue_code(&code(&email, "555555", fourth), &a)
        .await
        .unwrap();
    assert_eq!(
        s.redeem_code(&email, &hash("555555"), fourth + TimeDelta::minutes(10), &a)
            .await
            .unwrap(),
        CodeVerdict::Expired
    );
    let fifth = fourth + TimeDelta::seconds(60);
    s.issue_code(&code(&email, "666666", fifth), &a)
        .await
        .unwrap();
    s.withdraw_code(&email, fifth).await.unwrap();
    // the undelivered code left no trace: no resend gap
    s.issue_code(&code(&email, "777777", fifth), &a)
        .await
        .unwrap();
    let sixth = fifth + TimeDelta::seconds(60);
    let too_many = s
        .issue_code(&code(&email, "999999", sixth), &a)
        .await
        .unwrap_err();
    assert!(
        matches!(
            too_many,
            IssueCodeError::Refused(CodeIssueRefusal::TooManyCodes { .. })
        ),
        "5 codes in the hour: {too_many:?}"
    );
    let purged = s.purge_expired(t0() + TimeDelta::hours(2)).await.unwrap();
    assert_eq!(purged.codes, 5);
    s.issue_code(&code(&email, "888888", t0() + TimeDelta::hours(2)), &a)
        .await
        .unwrap();
}

pub(crate) async fn sessions_are_per_device_and_end_cleanly(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 8).await;
    let make = |b: u8, hours: i64| {
        let token = SessionToken::from_random_bytes([b; 32]);
        (
            token.clone(),
            Session {
                user: u.id,
                token_hash: token.hash(),
                created_at: t0(),
                expires_at: t0() + TimeDelta::hours(hours),
            },
        )
    };
    let (phone, phone_session) = make(1, 24);
    let (laptop, laptop_session) = make(2, 24);
    let (old, old_session) = make(3, 1);
    for session in [&phone_session, &laptop_session, &old_session] {
        s.create_session(session).await.unwrap();
    }
    let later = t0() + TimeDelta::hours(2);
    assert_eq!(
        s.session(&phone.hash(), later).await.unwrap(),
        Some(phone_session.clone())
    );
    assert_eq!(
        s.session(&old.hash(), later).await.unwrap(),
        None,
        "expired"
    );
    assert!(s.end_session(&phone.hash()).await.unwrap());
    assert!(!s.end_session(&phone.hash()).await.unwrap());
    assert!(s.session(&laptop.hash(), later).await.unwrap().is_some());
    assert_eq!(s.purge_expired(later).await.unwrap().sessions, 1);
    assert_eq!(s.end_all_sessions(u.id).await.unwrap(), 1);
    assert!(s.session(&laptop.hash(), later).await.unwrap().is_none());
    // a deleted account's sessions vanish with it, its ledger stays
    let (tablet, tablet_session) = make(4, 24);
    s.create_session(&tablet_session).await.unwrap();
    s.delete_user(u.id, later).await.unwrap();
    assert!(s.session(&tablet.hash(), later).await.unwrap().is_none());
    assert_eq!(s.richest(10).await.unwrap().len(), 0);
}

pub(crate) async fn leaderboards_and_inquiries(env: &StoreEnv) {
    let s = &env.store;
    let a = user(s, 20).await;
    let b = user(s, 21).await;
    let _c = user(s, 22).await;
    grant(s, b.id, 100, "t:rich").await;
    grant(s, a.id, 10, "t:less").await;
    let top = s.richest(2).await.unwrap();
    let emails: Vec<_> = top
        .iter()
        .map(|(e, l)| (e.as_str().to_owned(), l.get()))
        .collect();
    assert_eq!(
        emails,
        [
            ("user21@example.org".to_owned(), 115),
            ("user20@example.org".to_owned(), 25)
        ]
    );
    let inquiry = SupportInquiry::new(
        SupportCategory::Billing,
        "Where are my lemons?",
        "I harvested twice today.",
    )
    .unwrap();
    let first = s.record_inquiry(a.id, &inquiry, t0()).await.unwrap();
    let second = s.record_inquiry(a.id, &inquiry, t0()).await.unwrap();
    assert_ne!(first, second);
}

pub(crate) async fn low_balance_warnings_are_set_once_and_cleared(env: &StoreEnv) {
    let s = &env.store;
    let ann = user(s, 60).await;
    let bob = user(s, 61).await;
    assert!(s.low_balance_warned().await.unwrap().is_empty());
    assert!(s.mark_low_balance_warned(ann.id, t0()).await.unwrap());
    assert!(
        !env.second
            .mark_low_balance_warned(ann.id, t0())
            .await
            .unwrap(),
        "set once"
    );
    // concurrent marks from several replicas: exactly one wins
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                env.store.clone()
            } else {
                env.second.clone()
            };
            let id = bob.id;
            tokio::spawn(async move { store.mark_low_balance_warned(id, t0()).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += u32::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
    let mut warned = s.low_balance_warned().await.unwrap();
    warned.sort();
    let mut both = vec![ann.id, bob.id];
    both.sort();
    assert_eq!(warned, both);
    assert!(s.clear_low_balance_warning(ann.id).await.unwrap());
    assert!(
        !s.clear_low_balance_warning(ann.id).await.unwrap(),
        "cleared once"
    );
    assert_eq!(s.low_balance_warned().await.unwrap(), vec![bob.id]);
    assert!(
        s.mark_low_balance_warned(ann.id, t0()).await.unwrap(),
        "a new episode"
    );
    // a deleted account is not listed (and cannot be marked)
    s.delete_user(bob.id, t0()).await.unwrap();
    assert_eq!(s.low_balance_warned().await.unwrap(), vec![ann.id]);
    assert!(!s.mark_low_balance_warned(bob.id, t0()).await.unwrap());
}
