//! A lemon-gated quota inside another platform: a CI service that sells build minutes for lemons.
//!
//! The CI service has its own account type ([`Developer`]) and its own storage (a journal file,
//! [`journal::JournalLedger`]) and uses nothing of dbtree but `dbtree-core`:
//!
//! - it implements the boundary traits it needs, [`LedgerStore`] and [`Clock`], and nothing else
//!   (no users, sessions, tree or instances: those belong to dbtree's own platform);
//! - developers **earn** lemons through core's rules: the welcome bonus once per address, and a
//!   won lemon for each fixed flaky test, with core's reward, cooldown, streak bonuses and cap;
//! - they **spend** lemons on CI minutes: a job reserves its minutes up front (a debit that core's
//!   posting rule refuses when the balance is short) and gets the unused part back afterwards
//!   (a refund, which the cap never refuses). Every change carries an idempotency key, so a
//!   retried webhook never charges or pays twice.
//!
//! The use case [`CiQuota`] is written against `Arc<dyn LedgerStore>`: any store that keeps the
//! trait's MUST clauses works, including dbtree's own PostgreSQL and SQLite stores.
//!
//! Run: `cargo run -p dbtree-examples --bin lemon-gated-ci-minutes`. Exits non-zero if a figure
//! disagrees with the published rules.

mod journal;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{Clock, LedgerStore, PostError, PostOutcome, PostRequest};
use dbtree_core::ids::{AttemptId, UserId};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerRefusal};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;
use dbtree_core::stats::PageRequest;
use journal::{JournalLedger, RewardRefusal};

/// The CI platform's own account type: dbtree only ever sees its `UserId`.
#[derive(Debug, Clone)]
struct Developer {
    handle: &'static str,
    email: Email,
    id: UserId,
}

impl Developer {
    fn new(handle: &'static str, email: &str, n: u8) -> Result<Developer, String> {
        Ok(Developer {
            handle,
            email: Email::parse(email).map_err(|e| format!("{email}: {e}"))?,
            id: UserId::from_random_bytes([n; 16]),
        })
    }
}

/// The example's clock: scripted, so the streak and the cooldown can be shown in one run.
#[derive(Debug)]
struct ScriptedClock(Mutex<DateTime<Utc>>);

impl ScriptedClock {
    fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = at;
        }
    }
}

impl Clock for ScriptedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map_or(DateTime::UNIX_EPOCH, |now| *now)
    }
}

/// One lemon buys this many CI minutes; jobs are charged per started block.
const MINUTES_PER_LEMON: u32 = 10;

fn lemons_for(minutes: u32) -> Lemons {
    Lemons::new(minutes.div_ceil(MINUTES_PER_LEMON))
}

/// The CI service's use case: gate jobs on lemons.
///
/// Core's ledger has two debit kinds; a CI job is a one-off purchase, so it posts as
/// `InstanceCreate` under the CI service's own key `ci-job:<id>`, and its unused minutes come
/// back as `InstanceRefund` under `ci-refund:<id>`.
#[derive(Clone)]
struct CiQuota {
    ledger: Arc<dyn LedgerStore>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
}

#[derive(Debug, PartialEq, Eq)]
enum JobDecision {
    /// The job may run; `charged` lemons were taken (or had been, for a retried request).
    Admitted { charged: Lemons, balance: Lemons },
    /// Not enough lemons: the job waits.
    Refused { required: Lemons, available: Lemons },
}

impl CiQuota {
    async fn post(
        &self,
        user: UserId,
        kind: EntryKind,
        amount: Lemons,
        key: String,
    ) -> Result<Result<PostOutcome, PostError>, String> {
        let key = IdempotencyKey::parse(key).map_err(|e| e.to_string())?;
        let request = PostRequest {
            user,
            kind,
            amount,
            key,
            instance: None,
            at: self.clock.now(),
        };
        Ok(self.ledger.post(&request, &self.policy.ledger).await)
    }

    /// The welcome bonus, once per normalised address ever.
    async fn welcome(&self, dev: &Developer) -> Result<PostOutcome, String> {
        let request = PostRequest {
            user: dev.id,
            kind: EntryKind::WelcomeBonus,
            amount: self.policy.ledger.welcome_bonus,
            key: IdempotencyKey::welcome(&dev.email),
            instance: None,
            at: self.clock.now(),
        };
        self.ledger
            .post(&request, &self.policy.ledger)
            .await
            .map_err(|e| e.to_string())
    }

    /// Reserves `minutes` for job `job`: the whole price up front, or a refusal.
    async fn reserve(
        &self,
        dev: &Developer,
        job: u64,
        minutes: u32,
    ) -> Result<JobDecision, String> {
        let price = lemons_for(minutes);
        match self
            .post(
                dev.id,
                EntryKind::InstanceCreate,
                price,
                format!("ci-job:{job}"),
            )
            .await?
        {
            Ok(outcome) => Ok(JobDecision::Admitted {
                charged: price,
                balance: outcome.entry().balance_after,
            }),
            Err(PostError::Refused(LedgerRefusal::InsufficientLemons {
                required,
                available,
            })) => Ok(JobDecision::Refused {
                required,
                available,
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Settles job `job` that reserved `reserved` minutes and used `used`: refunds unused blocks.
    async fn settle(
        &self,
        dev: &Developer,
        job: u64,
        reserved: u32,
        used: u32,
    ) -> Result<Lemons, String> {
        let unused = lemons_for(reserved).saturating_sub(lemons_for(used));
        if unused == Lemons::ZERO {
            return Ok(Lemons::ZERO);
        }
        self.post(
            dev.id,
            EntryKind::InstanceRefund,
            unused,
            format!("ci-refund:{job}"),
        )
        .await?
        .map_err(|e| e.to_string())?;
        Ok(unused)
    }

    /// A sponsor's top-up (an administrator's grant), clipped to the cap like every earning.
    async fn sponsor(
        &self,
        dev: &Developer,
        amount: u32,
        reference: &str,
    ) -> Result<Lemons, String> {
        let outcome = self
            .post(
                dev.id,
                EntryKind::AdminGrant,
                Lemons::new(amount),
                format!("grant:{reference}"),
            )
            .await?
            .map_err(|e| e.to_string())?;
        Ok(outcome.entry().balance_after)
    }
}

/// Collects every figure that disagrees with what the rules say it must be.
#[derive(Debug, Default)]
struct Checks(Vec<String>);

impl Checks {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
}

fn main() -> ExitCode {
    let journal_path =
        std::env::temp_dir().join(format!("ci-minutes-{}.jsonl", std::process::id()));
    let outcome = futures_executor::block_on(run(&journal_path));
    let _ = std::fs::remove_file(&journal_path);
    match outcome {
        Ok(checks) if checks.0.is_empty() => {
            println!("\nevery figure matches the rules");
            ExitCode::SUCCESS
        }
        Ok(checks) => {
            for failure in &checks.0 {
                eprintln!("WRONG: {failure}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(journal_path: &std::path::Path) -> Result<Checks, String> {
    let mut check = Checks::default();
    let day = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).single();
    let start = day(2, 9, 0).ok_or("bad date")?;
    let clock = Arc::new(ScriptedClock(Mutex::new(start)));
    let store = Arc::new(JournalLedger::open(journal_path).map_err(|e| e.to_string())?);
    let policy = Arc::new(Policy::default());
    let quota = CiQuota {
        ledger: store.clone(),
        clock: clock.clone(),
        policy: policy.clone(),
    };
    let ada = Developer::new("ada", "ada@ci.example.org", 1)?;
    let bob = Developer::new("bob", "bob@ci.example.org", 2)?;
    let carol = Developer::new("carol", "carol@ci.example.org", 3)?;
    let fix = |n: u8| AttemptId::from_random_bytes([0x40 + n; 16]);
    let reward = |dev: &Developer, n: u8| {
        store.reward_fix(
            dev.id,
            fix(n),
            clock.now(),
            &policy.ledger,
            &policy.streaks,
            &policy.harvest,
        )
    };
    let balance = |dev: &Developer| {
        let store = store.clone();
        let id = dev.id;
        async move {
            store
                .balance(id)
                .await
                .ok()
                .flatten()
                .map_or(0, Lemons::get)
        }
    };

    println!("== enrolment: core's welcome bonus, once per address");
    for dev in [&ada, &bob, &carol] {
        store.open_account(dev.id).map_err(|e| e.to_string())?;
        let posted = quota.welcome(dev).await?;
        println!(
            "  {:<6} +{} → {}",
            dev.handle,
            posted.entry().delta,
            posted.entry().balance_after
        );
    }
    let again = quota.welcome(&ada).await?;
    check.eq(
        "a second welcome is a replay",
        matches!(again, PostOutcome::Replayed(_)),
        true,
    );
    check.eq("ada after enrolling twice", balance(&ada).await, 15);

    println!("\n== earning: a fixed flaky test wins a lemon (reward, cooldown, streak, cap)");
    for (when, dev, n, want) in [
        (day(2, 9, 0), &ada, 1, Ok((3, 18))),
        (day(2, 9, 5), &bob, 2, Ok((3, 18))),
        (day(2, 9, 6), &bob, 2, Ok((3, 18))), // the same fix reported twice pays once
        (
            day(2, 9, 30),
            &bob,
            3,
            Err(RewardRefusal::Cooldown {
                until: day(2, 10, 5).ok_or("date")?,
            }),
        ),
        (day(3, 9, 0), &ada, 4, Ok((3, 21))),
        (day(4, 9, 0), &ada, 5, Ok((8, 29))), // third day in a row: +3 and the +5 streak bonus
    ] {
        clock.set(when.ok_or("bad date")?);
        let got = reward(dev, n)
            .map_err(|e| e.to_string())?
            .map(|(credited, after)| (credited, after.get()));
        println!(
            "  {} {:<6} fix #{n}: {got:?}",
            clock.now().format("%a %H:%M"),
            dev.handle
        );
        check.eq(&format!("{} fix #{n}", dev.handle), got, want);
    }

    println!("\n== spending: CI minutes at {MINUTES_PER_LEMON} minutes per lemon");
    clock.set(day(4, 10, 0).ok_or("bad date")?);
    let job = quota.reserve(&ada, 101, 120).await?;
    println!("  ada    job 101, 120 min: {job:?}");
    check.eq(
        "ada reserves 120 minutes",
        job,
        JobDecision::Admitted {
            charged: Lemons::new(12),
            balance: Lemons::new(17),
        },
    );
    let retry = quota.reserve(&ada, 101, 120).await?;
    check.eq(
        "a retried reservation charges nothing more",
        retry,
        JobDecision::Admitted {
            charged: Lemons::new(12),
            balance: Lemons::new(17),
        },
    );
    let refund = quota.settle(&ada, 101, 120, 43).await?;
    println!("  ada    job 101 used 43 min: {refund} lemons back");
    check.eq("43 of 120 minutes refunds 7 lemons", refund.get(), 7);
    check.eq("ada after job 101", balance(&ada).await, 24);

    let job = quota.reserve(&bob, 102, 200).await?;
    println!("  bob    job 102, 200 min: {job:?}");
    check.eq(
        "bob cannot afford 200 minutes",
        job,
        JobDecision::Refused {
            required: Lemons::new(20),
            available: Lemons::new(18),
        },
    );
    let job = quota.reserve(&bob, 103, 180).await?;
    println!("  bob    job 103, 180 min: {job:?}");
    check.eq(
        "bob spends everything on 180 minutes",
        job,
        JobDecision::Admitted {
            charged: Lemons::new(18),
            balance: Lemons::ZERO,
        },
    );
    check.eq(
        "a fully used job refunds nothing",
        quota.settle(&bob, 103, 180, 175).await?.get(),
        0,
    );

    let after = quota.sponsor(&carol, 600, "sponsor-2026-03").await?;
    println!(
        "  carol  sponsored 600: balance {after} (the cap is {})",
        policy.ledger.balance_cap
    );
    check.eq("a grant is clipped to the cap", after.get(), 500);
    let full = reward(&carol, 6).map_err(|e| e.to_string())?;
    check.eq(
        "no reward at the cap",
        full,
        Err(RewardRefusal::StorageFull),
    );

    println!("\n== the books");
    let page = PageRequest::new(100, 0).map_err(|e| e.to_string())?;
    let history = store
        .history(ada.id, None, page)
        .await
        .map_err(|e| e.to_string())?;
    for e in history.items.iter().rev() {
        println!(
            "  ada  {:<16} {:>+4} → {:>3}  {}",
            e.kind, e.delta, e.balance_after, e.key
        );
    }
    check.eq("ada's entries", history.total, 7);
    let days = store
        .daily_harvests(
            ada.id,
            start.date_naive(),
            (start + TimeDelta::days(6)).date_naive(),
        )
        .await
        .map_err(|e| e.to_string())?;
    check.eq(
        "ada's daily harvests",
        days.iter().map(|d| d.lemons).collect::<Vec<_>>(),
        vec![3, 3, 8],
    );
    check.eq(
        "lemons harvested in all",
        store.total_harvested().await.map_err(|e| e.to_string())?,
        9 + 3,
    );

    // The journal is the storage: reopening it gives the same books.
    let reopened = JournalLedger::open(journal_path).map_err(|e| e.to_string())?;
    let audit = reopened.audit().map_err(|e| e.to_string())?;
    check.eq(
        "every balance equals the sum of its entries",
        audit.iter().all(|(_, _, ok)| *ok),
        true,
    );
    for dev in [&ada, &bob, &carol] {
        let stored = reopened.balance(dev.id).await.map_err(|e| e.to_string())?;
        println!(
            "  {:<6} balance {}",
            dev.handle,
            stored.map_or(0, Lemons::get)
        );
        check.eq(
            &format!("{} after reopening", dev.handle),
            stored,
            store.balance(dev.id).await.map_err(|e| e.to_string())?,
        );
    }
    check.eq(
        "final balances",
        (
            balance(&ada).await,
            balance(&bob).await,
            balance(&carol).await,
        ),
        (24, 0, 500),
    );
    Ok(check)
}
