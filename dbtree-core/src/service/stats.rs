//! Public and personal figures.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Days;

use super::{Deps, InternalError};
use crate::boundary::EngineSupport;
use crate::ids::{InstanceId, UserId};
use crate::instance::{Engine, InstanceName, NodeBudget, PresetSize, Usage, sizes_that_fit};
use crate::ledger::LedgerEntry;
use crate::stats::{DailyHarvest, GlobalStats, Page, PageRequest, Ranked, fill_days};
use crate::streak::utc_day;

/// Figures.
#[derive(Clone, Debug)]
pub struct StatsService {
    deps: Deps,
}

/// The leaderboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaderboard {
    /// Top balances.
    pub richest: Vec<Ranked>,
    /// Most correct answers today (UTC).
    pub quiz_masters_today: Vec<Ranked>,
}

/// Which preset sizes of one engine can be created now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineFit {
    /// The engine.
    pub engine: Engine,
    /// Sizes that fit, smallest first (none if the cluster cannot run the engine).
    pub sizes: Vec<PresetSize>,
    /// Whether the cluster can run the engine at all, and with which server.
    pub support: EngineSupport,
}

/// The node's capacity in aggregate (no instance names or owners).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityReport {
    /// The budget.
    pub budget: NodeBudget,
    /// What is held now.
    pub usage: Usage,
    /// Which presets fit.
    pub fits: Vec<EngineFit>,
}

fn ranked(rows: Vec<(crate::auth::Email, u64)>) -> Vec<Ranked> {
    rows.into_iter()
        .zip(1u32..)
        .map(|((email, score), rank)| Ranked {
            rank,
            masked_email: email.masked(),
            score,
        })
        .collect()
}

impl StatsService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Global figures.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn global(&self) -> Result<GlobalStats, InternalError> {
        let store = &self.deps.store;
        Ok(GlobalStats {
            lemons_harvested: store.total_harvested().await?,
            live_users: store.count_live_users().await?,
            instances_created: store.count_created().await?,
        })
    }

    /// The top three balances and today's top three quiz masters, emails masked.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn leaderboard(&self) -> Result<Leaderboard, InternalError> {
        let store = &self.deps.store;
        let today = utc_day(self.deps.clock.now());
        let richest = store
            .richest(3)
            .await?
            .into_iter()
            .map(|(e, b)| (e, u64::from(b.get())))
            .collect();
        Ok(Leaderboard {
            richest: ranked(richest),
            quiz_masters_today: ranked(store.quiz_masters(today, 3).await?),
        })
    }

    /// Lemons harvested per day over the last `days` days (validated with
    /// [`crate::stats::harvest_history_days`]), oldest first, zero days included.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn daily_harvests(
        &self,
        user: UserId,
        days: u32,
    ) -> Result<Vec<DailyHarvest>, InternalError> {
        let today = utc_day(self.deps.clock.now());
        let from = today
            .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
            .unwrap_or(today);
        let sparse = self.deps.store.daily_harvests(user, from, today).await?;
        Ok(fill_days(today, days, &sparse))
    }

    /// A page of the user's ledger, newest first, optionally about one instance.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn transactions(
        &self,
        user: UserId,
        instance: Option<InstanceId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, InternalError> {
        Ok(self.deps.store.history(user, instance, page).await?)
    }

    /// The names of the owner's instances among `ids` (deleted ones included), to show next to
    /// their ledger entries.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn instance_names(
        &self,
        owner: UserId,
        ids: impl IntoIterator<Item = InstanceId>,
    ) -> Result<BTreeMap<InstanceId, InstanceName>, InternalError> {
        let wanted: BTreeSet<InstanceId> = ids.into_iter().collect();
        let mut names = BTreeMap::new();
        for id in wanted {
            if let Some(instance) = self.deps.store.instance(id).await?
                && instance.owner == owner
            {
                names.insert(id, instance.name);
            }
        }
        Ok(names)
    }

    /// The node's capacity in aggregate, with the preset sizes that fit now (none for an engine
    /// the cluster cannot run).
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn capacity(&self) -> Result<CapacityReport, InternalError> {
        let usage = self.deps.store.usage().await?;
        let budget = self.deps.policy.instances.budget;
        let fits = Engine::ALL
            .into_iter()
            .map(|engine| {
                let support = self.deps.cluster.engine_support(engine);
                let sizes = match support {
                    EngineSupport::Available { .. } => sizes_that_fit(&budget, usage, engine),
                    EngineSupport::Unavailable { .. } => Vec::new(),
                };
                EngineFit {
                    engine,
                    sizes,
                    support,
                }
            })
            .collect();
        Ok(CapacityReport {
            budget,
            usage,
            fits,
        })
    }
}
