//! The CI platform's own storage: an append-only journal file of JSON lines, replayed into memory
//! on open. It implements dbtree-core's `LedgerStore` boundary trait, so every balance change
//! goes through core's posting rule, and adds one atomic operation of its own (rewarding a fix)
//! built on core's harvest-credit rule.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use dbtree_core::boundary::{BackendError, LedgerStore, PostError, PostOutcome, PostRequest};
use dbtree_core::harvest::HarvestPolicy;
use dbtree_core::harvest::plan_harvest_credit;
use dbtree_core::ids::{AttemptId, InstanceId, UserId};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, Posting};
use dbtree_core::lemons::Lemons;
use dbtree_core::stats::{DailyHarvest, Page, PageRequest};
use dbtree_core::streak::{Streak, StreakPolicy, utc_day};
use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    /// A developer account was opened (balance zero).
    Opened { user: UserId },
    /// A balance change.
    Entry(LedgerEntry),
}

/// What the journal says, in memory.
#[derive(Debug, Default)]
struct Books {
    balances: HashMap<UserId, Lemons>,
    /// Every entry, oldest first.
    entries: Vec<LedgerEntry>,
    /// Index into `entries` by idempotency key.
    by_key: HashMap<IdempotencyKey, usize>,
    /// Harvest streaks, derived from the harvest entries.
    streaks: HashMap<UserId, Streak>,
    /// The last reward per developer (start of core's cooldown).
    last_reward_at: HashMap<UserId, DateTime<Utc>>,
}

impl Books {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Opened { user } => {
                self.balances.entry(user).or_insert(Lemons::ZERO);
            }
            Record::Entry(entry) => {
                self.balances.insert(entry.user, entry.balance_after);
                if entry.kind == EntryKind::Harvest {
                    let streak = self.streaks.entry(entry.user).or_default();
                    *streak = streak.after_harvest_on(utc_day(entry.at));
                    self.last_reward_at.insert(entry.user, entry.at);
                }
                self.by_key.insert(entry.key.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    fn entry(&self, key: &IdempotencyKey) -> Option<&LedgerEntry> {
        self.by_key.get(key).and_then(|&i| self.entries.get(i))
    }
}

/// Why a fix earned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RewardRefusal {
    /// The developer was rewarded less than core's cooldown ago.
    Cooldown { until: DateTime<Utc> },
    /// The balance sits at the cap.
    StorageFull,
    /// Not a developer of this platform.
    UnknownUser,
}

/// A ledger kept in a journal file.
#[derive(Debug)]
pub(crate) struct JournalLedger {
    path: PathBuf,
    books: Mutex<Books>,
}

fn io_error(what: &'static str) -> impl FnOnce(std::io::Error) -> BackendError {
    move |e| BackendError::with_source(what, e)
}

impl JournalLedger {
    /// Opens (or creates) the journal at `path` and replays it.
    pub(crate) fn open(path: &Path) -> Result<JournalLedger, BackendError> {
        let mut books = Books::default();
        if path.exists() {
            let file = File::open(path).map_err(io_error("cannot open the journal"))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io_error("cannot read the journal"))?;
                let record = serde_json::from_str(&line)
                    .map_err(|e| BackendError::with_source("a journal line is corrupt", e))?;
                books.apply(record);
            }
        }
        Ok(JournalLedger {
            path: path.to_owned(),
            books: Mutex::new(books),
        })
    }

    fn books(&self) -> Result<MutexGuard<'_, Books>, BackendError> {
        self.books
            .lock()
            .map_err(|_| BackendError::new("the journal lock is poisoned"))
    }

    /// Writes records to the file first, then to memory: a failed write changes nothing.
    fn commit(&self, books: &mut Books, records: Vec<Record>) -> Result<(), BackendError> {
        let mut text = String::new();
        for record in &records {
            let line = serde_json::to_string(record)
                .map_err(|e| BackendError::with_source("cannot encode a record", e))?;
            text.push_str(&line);
            text.push('\n');
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(io_error("cannot append to the journal"))?;
        for record in records {
            books.apply(record);
        }
        Ok(())
    }

    /// Opens an account with a zero balance (idempotent).
    pub(crate) fn open_account(&self, user: UserId) -> Result<(), BackendError> {
        let mut books = self.books()?;
        if books.balances.contains_key(&user) {
            return Ok(());
        }
        self.commit(&mut books, vec![Record::Opened { user }])
    }

    /// Rewards one fixed flaky test as a won lemon: core's cooldown, reward, streak bonus and cap,
    /// decided and written under one lock, keyed by the fix so a retried webhook pays once.
    /// Returns the lemons credited (reward + bonus) and the balance after.
    pub(crate) fn reward_fix(
        &self,
        user: UserId,
        fix: AttemptId,
        now: DateTime<Utc>,
        ledger: &LedgerPolicy,
        streaks: &StreakPolicy,
        harvest: &HarvestPolicy,
    ) -> Result<Result<(u32, Lemons), RewardRefusal>, BackendError> {
        let mut books = self.books()?;
        let reward_key = IdempotencyKey::harvest(fix);
        let bonus_key = IdempotencyKey::streak(fix);
        if let Some(paid) = books.entry(&reward_key) {
            let bonus = books.entry(&bonus_key).map_or(0, |e| e.delta);
            let credited = u32::try_from(paid.delta + bonus).unwrap_or(0);
            let balance = books.balances.get(&user).copied().unwrap_or_default();
            return Ok(Ok((credited, balance)));
        }
        let Some(&balance) = books.balances.get(&user) else {
            return Ok(Err(RewardRefusal::UnknownUser));
        };
        if let Some(until) = harvest.in_cooldown(books.last_reward_at.get(&user).copied(), now) {
            return Ok(Err(RewardRefusal::Cooldown { until }));
        }
        let streak = books.streaks.get(&user).copied().unwrap_or_default();
        let Ok(credit) = plan_harvest_credit(balance, streak, now, ledger, streaks) else {
            return Ok(Err(RewardRefusal::StorageFull));
        };
        let entry = |kind, key: IdempotencyKey, posting: Posting| LedgerEntry {
            id: key.entry_id(),
            user,
            kind,
            delta: posting.delta,
            balance_after: posting.balance_after,
            key,
            instance: None,
            at: now,
        };
        let mut records = vec![Record::Entry(entry(
            EntryKind::Harvest,
            reward_key,
            credit.reward,
        ))];
        if let Some(bonus) = credit.streak_bonus {
            records.push(Record::Entry(entry(
                EntryKind::StreakBonus,
                bonus_key,
                bonus,
            )));
        }
        self.commit(&mut books, records)?;
        let credited = credit.reward_lemons().get() + credit.bonus_lemons().get();
        Ok(Ok((credited, credit.balance_after())))
    }

    /// Every account and its balance, and whether each equals the sum of its entries.
    pub(crate) fn audit(&self) -> Result<Vec<(UserId, Lemons, bool)>, BackendError> {
        let books = self.books()?;
        let mut rows: Vec<_> = books
            .balances
            .iter()
            .map(|(&user, &balance)| {
                let sum: i64 = books
                    .entries
                    .iter()
                    .filter(|e| e.user == user)
                    .map(|e| e.delta)
                    .sum();
                (user, balance, sum == balance.as_i64())
            })
            .collect();
        rows.sort_by_key(|(user, _, _)| *user);
        Ok(rows)
    }
}

#[async_trait]
impl LedgerStore for JournalLedger {
    async fn post(
        &self,
        request: &PostRequest,
        policy: &LedgerPolicy,
    ) -> Result<PostOutcome, PostError> {
        let mut books = self.books()?;
        if let Some(earlier) = books.entry(&request.key) {
            // the one rule for a reused key: same user and kind replay, anything else conflicts
            return dbtree_core::boundary::replay_or_conflict(earlier.clone(), request);
        }
        let balance = *books
            .balances
            .get(&request.user)
            .ok_or(PostError::UnknownUser)?;
        // The one rule every balance change goes through: debits refused when short, earnings
        // clipped to the cap, refunds never refused.
        let posting =
            dbtree_core::ledger::plan_posting(request.kind, request.amount, balance, policy)?;
        let entry = request.entry(&posting);
        self.commit(&mut books, vec![Record::Entry(entry.clone())])?;
        Ok(PostOutcome::Posted(entry))
    }

    async fn balance(&self, user: UserId) -> Result<Option<Lemons>, BackendError> {
        Ok(self.books()?.balances.get(&user).copied())
    }

    async fn history(
        &self,
        user: UserId,
        instance: Option<InstanceId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, BackendError> {
        let books = self.books()?;
        let mine: Vec<&LedgerEntry> = books
            .entries
            .iter()
            .rev()
            .filter(|e| e.user == user && (instance.is_none() || e.instance == instance))
            .collect();
        let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
        Ok(Page {
            total: mine.len() as u64,
            items: mine
                .into_iter()
                .skip(skip)
                .take(page.limit as usize)
                .cloned()
                .collect(),
        })
    }

    async fn daily_harvests(
        &self,
        user: UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyHarvest>, BackendError> {
        let books = self.books()?;
        let mut days: Vec<DailyHarvest> = Vec::new();
        for e in books.entries.iter().filter(|e| {
            e.user == user
                && matches!(e.kind, EntryKind::Harvest | EntryKind::StreakBonus)
                && (from..=to).contains(&utc_day(e.at))
        }) {
            let lemons = u64::try_from(e.delta).unwrap_or(0);
            match days.iter_mut().find(|d| d.day == utc_day(e.at)) {
                Some(d) => d.lemons += lemons,
                None => days.push(DailyHarvest {
                    day: utc_day(e.at),
                    lemons,
                }),
            }
        }
        days.sort_by_key(|d| d.day);
        Ok(days)
    }

    async fn total_harvested(&self) -> Result<u64, BackendError> {
        Ok(self
            .books()?
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Harvest)
            .map(|e| u64::try_from(e.delta).unwrap_or(0))
            .sum())
    }
}
