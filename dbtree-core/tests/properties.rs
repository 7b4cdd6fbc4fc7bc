//! Invariants of the rules and of the memory store, over random inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dbtree_adapters::memory::MemoryStore;
use dbtree_core::auth::Email;
use dbtree_core::boundary::{
    LedgerStore, NewUser, NodePortStore, PostError, PostRequest, ReservePortError, UserStore,
};
use dbtree_core::harvest::{
    ChallengeShape, CircleSpeed, Click, ClickChallenge, ClickRefusal, HarvestGate, HarvestPolicy,
    HarvestRefusal, HarvestState, check_harvest_request,
};
use dbtree_core::ids::{AttemptId, InstanceId, QuizId, UserId};
use dbtree_core::instance::{
    Engine, InstanceEvent, InstanceSpec, InstanceStatus, MilliCpu, NodePortError, NodePortPolicy,
    PresetSize, Resources, next_status, preset, price,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerPolicy};
use dbtree_core::lemons::Lemons;
use dbtree_core::quiz::{AnswerRecord, Attempt};
use dbtree_core::tree::Position;
use futures_executor::block_on;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
}

/// A random ledger operation: a kind, an amount, and which of a few keys it uses (reusing a key
/// is a retry).
fn ledger_op() -> impl Strategy<Value = (EntryKind, u32, u8)> {
    (
        prop::sample::select(EntryKind::ALL.to_vec()),
        0u32..120,
        0u8..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Through the memory store: the balance always equals the sum of the user's entries, never
    /// goes negative, and stays within the cap except for what refunds (never refused by the cap)
    /// added on top. A retried key changes nothing.
    #[test]
    fn ledger_sum_equals_balance_within_the_cap(ops in prop::collection::vec(ledger_op(), 1..120)) {
        let store = MemoryStore::new();
        let policy = LedgerPolicy::default();
        let user = UserId::from_random_bytes([1; 16]);
        let email = Email::parse("prop@example.org").unwrap();
        block_on(store.register(&NewUser { id: user, email, now: t0() }, &policy)).unwrap();
        let mut refunded: u64 = 0;
        let mut first_kind_of_key: BTreeMap<u8, EntryKind> = BTreeMap::new();
        for (i, (kind, amount, key)) in ops.into_iter().enumerate() {
            let request = PostRequest {
                user,
                kind,
                amount: Lemons::new(amount),
                key: IdempotencyKey::parse(format!("prop:{key}")).unwrap(),
                instance: None,
                at: t0() + TimeDelta::seconds(i as i64),
            };
            let before = block_on(store.balance(user)).unwrap().unwrap();
            let result = block_on(store.post(&request, &policy));
            let after = block_on(store.balance(user)).unwrap().unwrap();
            match (&result, first_kind_of_key.get(&key)) {
                (Err(PostError::KeyConflict(_)), Some(k)) => prop_assert_ne!(*k, kind),
                (Ok(dbtree_core::boundary::PostOutcome::Replayed(_)), Some(k)) => {
                    prop_assert_eq!(*k, kind);
                    prop_assert_eq!(before, after, "a retry changed the balance");
                }
                (Ok(dbtree_core::boundary::PostOutcome::Posted(e)), None) => {
                    first_kind_of_key.insert(key, kind);
                    if kind == EntryKind::InstanceRefund {
                        refunded += e.delta.unsigned_abs();
                    }
                }
                (Err(PostError::Refused(_)), None) => prop_assert_eq!(before, after),
                (other, seen) => prop_assert!(false, "unexpected {:?} (key seen: {:?})", other, seen),
            }
            let sum: i64 = store.all_entries().iter().filter(|e| e.user == user).map(|e| e.delta).sum();
            prop_assert_eq!(sum, i64::from(after.get()), "balance != sum of entries");
            prop_assert!(u64::from(after.get()) <= u64::from(policy.balance_cap.get()) + refunded);
        }
    }

    /// Without refunds, the balance stays within 0..=cap.
    #[test]
    fn without_refunds_the_balance_stays_within_zero_and_the_cap(
        ops in prop::collection::vec(ledger_op().prop_filter("no refunds", |(k, _, _)| *k != EntryKind::InstanceRefund), 1..120)
    ) {
        let store = MemoryStore::new();
        let policy = LedgerPolicy::default();
        let user = UserId::from_random_bytes([2; 16]);
        let email = Email::parse("cap@example.org").unwrap();
        block_on(store.register(&NewUser { id: user, email, now: t0() }, &policy)).unwrap();
        for (i, (kind, amount, _)) in ops.into_iter().enumerate() {
            let request = PostRequest {
                user,
                kind,
                amount: Lemons::new(amount),
                key: IdempotencyKey::parse(format!("op:{i}")).unwrap(),
                instance: None,
                at: t0(),
            };
            let _ = block_on(store.post(&request, &policy));
            let balance = block_on(store.balance(user)).unwrap().unwrap();
            prop_assert!(balance <= policy.balance_cap);
        }
    }

    /// NodePorts handed out are unique, inside the range, never reserved; exhaustion is clean.
    #[test]
    fn node_ports_unique_in_range_never_reserved(
        first in 30000u16..30050,
        width in 0u16..60,
        reserved in prop::collection::btree_set(30000u16..30110, 0..8),
        ops in prop::collection::vec((any::<bool>(), 0u8..80), 1..200),
    ) {
        let policy = NodePortPolicy { first, last: first + width, reserved };
        let store = MemoryStore::new();
        let ids: Vec<InstanceId> = (0..80u8).map(|i| InstanceId::from_random_bytes([i; 16])).collect();
        let mut held: BTreeMap<InstanceId, u16> = BTreeMap::new();
        for (reserve, who) in ops {
            let id = ids[usize::from(who)];
            if reserve {
                match block_on(store.reserve_node_port(id, &policy)) {
                    Ok(port) => {
                        prop_assert!(policy.check(port.get()).is_ok(), "{port} outside policy");
                        if let Some(previous) = held.get(&id) {
                            prop_assert_eq!(*previous, port.get(), "not idempotent");
                        }
                        held.insert(id, port.get());
                    }
                    Err(ReservePortError::Exhausted(NodePortError::Exhausted { .. })) => {
                        prop_assert_eq!(held.len(), policy.allocatable());
                        prop_assert!(!held.contains_key(&id));
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            } else {
                let released = block_on(store.release_node_port(id)).unwrap();
                prop_assert_eq!(released.map(|p| p.get()), held.remove(&id));
            }
            let distinct: BTreeSet<u16> = held.values().copied().collect();
            prop_assert_eq!(distinct.len(), held.len(), "a port was given twice");
        }
    }

    /// Lowest-free allocation never hands out a taken or reserved port, and finds the lowest.
    #[test]
    fn lowest_free_is_the_lowest_allowed_untaken_port(
        taken in prop::collection::btree_set(30000u16..30100, 0..100),
        reserved in prop::collection::btree_set(30000u16..30100, 0..10),
    ) {
        let policy = NodePortPolicy { first: 30000, last: 30099, reserved: reserved.clone() };
        let expected = (30000u16..=30099).find(|p| !taken.contains(p) && !reserved.contains(p));
        match policy.lowest_free(&taken) {
            Ok(port) => prop_assert_eq!(Some(port.get()), expected),
            Err(_) => prop_assert_eq!(expected, None),
        }
    }

    /// Once deleting, an instance never returns to a live state: the only move is the cluster's
    /// confirmation into the terminal `deleted`.
    #[test]
    fn nothing_leaves_deleting_but_the_teardown(
        start in prop::sample::select(InstanceStatus::ALL.to_vec()),
        events in prop::collection::vec(prop::sample::select(vec![
            InstanceEvent::Provisioned, InstanceEvent::ProvisioningFailed, InstanceEvent::StopRequested,
            InstanceEvent::StartRequested, InstanceEvent::BillingPaused, InstanceEvent::BillingResumed,
            InstanceEvent::DeleteRequested, InstanceEvent::GraceExpired, InstanceEvent::TeardownConfirmed,
        ]), 0..40),
    ) {
        let mut status = start;
        for event in events {
            let was = status;
            if let Ok(next) = next_status(status, event) {
                status = next;
            }
            if was == InstanceStatus::Deleting {
                prop_assert!(matches!(status, InstanceStatus::Deleting | InstanceStatus::Deleted));
            }
            if was == InstanceStatus::Deleted {
                prop_assert_eq!(status, InstanceStatus::Deleted);
            }
        }
    }

    /// The circle's own centre hits at every offset inside the window, and so does the place
    /// it was at up to the lag allowance earlier (display and input lag), on every speed; every
    /// click after the window is refused, wherever it lands.
    #[test]
    fn the_circle_hits_itself_with_lag_inside_the_window_and_nothing_after(
        draws in prop::array::uniform3(any::<u32>()),
        speed in prop::sample::select(vec![CircleSpeed::Slow, CircleSpeed::Medium, CircleSpeed::Fast]),
        offset in 0i64..=5000,
        lag in 0i64..=120,
        late in 5001i64..1_000_000,
        x in 0.0f64..=1.0,
        y in 0.0f64..=1.0,
    ) {
        let mut it = draws.into_iter();
        let challenge = ClickChallenge::generate(|| it.next().unwrap_or(0), &ChallengeShape::default(), speed);
        let (cx, cy) = challenge.centre_at(offset as f64);
        prop_assert_eq!(challenge.judge(&Click { click_offset_ms: offset, x: cx, y: cy }), Ok(()));
        let (lx, ly) = challenge.centre_at((offset - lag).max(0) as f64);
        prop_assert_eq!(challenge.judge(&Click { click_offset_ms: offset, x: lx, y: ly }), Ok(()));
        prop_assert!(
            matches!(challenge.judge(&Click { click_offset_ms: late, x, y }), Err(ClickRefusal::AfterWindow { .. })),
            "late click at {} accepted", late
        );
    }

    /// The harvest window is exactly 5 s after the answer, to the millisecond.
    #[test]
    fn the_harvest_window_is_exactly_five_seconds(elapsed_ms in 0i64..20_000, draws in prop::array::uniform3(any::<u32>())) {
        let mut it = draws.into_iter();
        let challenge = ClickChallenge::generate(|| it.next().unwrap_or(0), &ChallengeShape::default(), CircleSpeed::Fast);
        let answered = t0();
        let attempt = Attempt {
            id: AttemptId::from_random_bytes([3; 16]),
            user: UserId::from_random_bytes([4; 16]),
            position: Position::new(0).unwrap(),
            lemon_cycle: 0,
            quiz: QuizId(1),
            started_at: answered - TimeDelta::seconds(3),
            time_limit: TimeDelta::seconds(10),
            answer: Some(AnswerRecord { option: 0, correct: true, on_time: true, at: answered, challenge: Some(challenge) }),
            harvest: HarvestState::Open,
        };
        let (x, y) = challenge.centre_at(100.0);
        let click = Click { click_offset_ms: 100, x, y };
        let result = check_harvest_request(&attempt, &click, answered + TimeDelta::milliseconds(elapsed_ms), &HarvestPolicy::default());
        if elapsed_ms <= 5000 {
            prop_assert_eq!(result, Ok(HarvestGate::Claim));
        } else {
            prop_assert_eq!(result, Err(HarvestRefusal::WindowClosed { elapsed_ms }));
        }
    }

    /// Custom prices are at least one lemon an hour, creation is at most ten hours, and more
    /// of any resource never costs less, in creation or per hour, unless the larger spec is
    /// exactly a preset: that costs exactly the preset's table price (§4.3), which can be below
    /// the formula for a spec just under it (PostgreSQL 0.5 vCPU / 1024 MiB / 9 GiB costs 30 to
    /// create, the medium preset 0.5 / 1024 / 10 costs 20).
    #[test]
    fn custom_prices_are_monotone(
        engine in prop::sample::select(Engine::ALL.to_vec()),
        cpu_steps in 2u32..=40, memory in 128u32..=4096, disk in 1u32..=50,
        more_cpu in 0u32..=5, more_memory in 0u32..=512, more_disk in 0u32..=10,
    ) {
        let spec = |c: u32, m: u32, d: u32| InstanceSpec::Custom {
            engine,
            resources: Resources { cpu: MilliCpu(c * 50), memory_mib: m, disk_gib: d },
        };
        let base = price(&spec(cpu_steps, memory, disk));
        prop_assert!(base.hourly_cost >= Lemons::new(1));
        prop_assert!(base.creation_cost.get() <= 10 * base.hourly_cost.get());
        let larger = spec((cpu_steps + more_cpu).min(40), (memory + more_memory).min(4096), (disk + more_disk).min(50));
        let is_preset = PresetSize::ALL.iter().any(|s| preset(engine, *s).resources == larger.resources());
        let bigger = price(&larger);
        if !is_preset {
            prop_assert!(bigger.hourly_cost >= base.hourly_cost);
            prop_assert!(bigger.creation_cost >= base.creation_cost);
        }
    }

    /// No spec costs less than a preset it contains (equal or more cpu, memory and disk), in
    /// creation or per hour; a spec equal to a preset costs exactly the preset's price.
    #[test]
    fn no_spec_costs_less_than_a_preset_it_contains(
        engine in prop::sample::select(Engine::ALL.to_vec()),
        size in prop::sample::select(PresetSize::ALL.to_vec()),
        extra_cpu in 0u32..=25, extra_memory in 0u32..=3000, extra_disk in 0u32..=45,
    ) {
        let p = preset(engine, size);
        let r = p.resources;
        let equal = price(&InstanceSpec::Custom { engine, resources: r });
        prop_assert_eq!(equal, p.price);
        let bigger = Resources {
            cpu: MilliCpu((r.cpu.0 + extra_cpu * 50).min(2000)),
            memory_mib: (r.memory_mib + extra_memory).min(4096),
            disk_gib: (r.disk_gib + extra_disk).min(50),
        };
        let got = price(&InstanceSpec::Custom { engine, resources: bigger });
        prop_assert!(got.creation_cost >= p.price.creation_cost, "{:?} creation {:?} < {:?}", bigger, got, p.price);
        prop_assert!(got.hourly_cost >= p.price.hourly_cost, "{:?} hourly {:?} < {:?}", bigger, got, p.price);
    }
}
