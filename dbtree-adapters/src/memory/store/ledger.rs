//! The ledger in memory.

use async_trait::async_trait;
use chrono::NaiveDate;
use dbtree_core::boundary::{BackendError, LedgerStore, PostError, PostOutcome, PostRequest};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::ledger::{EntryKind, LedgerEntry, LedgerPolicy};
use dbtree_core::lemons::Lemons;
use dbtree_core::stats::{DailyHarvest, Page, PageRequest};
use dbtree_core::streak::utc_day;

use super::MemoryStore;

#[async_trait]
impl LedgerStore for MemoryStore {
    async fn post(
        &self,
        request: &PostRequest,
        policy: &LedgerPolicy,
    ) -> Result<PostOutcome, PostError> {
        self.state.lock().post(request, policy)
    }

    async fn balance(&self, user: UserId) -> Result<Option<Lemons>, BackendError> {
        Ok(self.state.lock().live_user(user).map(|u| u.balance))
    }

    async fn history(
        &self,
        user: UserId,
        instance: Option<InstanceId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, BackendError> {
        let s = self.state.lock();
        let mine: Vec<&LedgerEntry> = s
            .ledger
            .iter()
            .rev()
            .filter(|e| e.user == user && (instance.is_none() || e.instance == instance))
            .collect();
        let items = mine
            .iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .map(|e| (*e).clone())
            .collect();
        Ok(Page {
            items,
            total: mine.len() as u64,
        })
    }

    async fn daily_harvests(
        &self,
        user: UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyHarvest>, BackendError> {
        let s = self.state.lock();
        let mut days: Vec<DailyHarvest> = Vec::new();
        for e in s.ledger.iter().filter(|e| {
            e.user == user && matches!(e.kind, EntryKind::Harvest | EntryKind::StreakBonus)
        }) {
            let day = utc_day(e.at);
            if day < from || day > to {
                continue;
            }
            let lemons = e.delta.unsigned_abs();
            match days.iter_mut().find(|d| d.day == day) {
                Some(d) => d.lemons += lemons,
                None => days.push(DailyHarvest { day, lemons }),
            }
        }
        days.sort_by_key(|d| d.day);
        Ok(days)
    }

    async fn total_harvested(&self) -> Result<u64, BackendError> {
        let s = self.state.lock();
        Ok(s.ledger
            .iter()
            .filter(|e| e.kind == EntryKind::Harvest)
            .map(|e| e.delta.unsigned_abs())
            .sum())
    }
}
