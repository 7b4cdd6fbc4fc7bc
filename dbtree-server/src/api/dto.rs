//! Request and response bodies (JSON, camelCase) and their conversions from core types.
//!
//! A field whose type is another schema here (an enum or an object) has no `///` doc and no
//! `#[oai(nullable)]`: either makes poem-openapi wrap the `$ref` in
//! `allOf: [{$ref}, {description}]`, which openapi-python-client cannot read over an enum (it
//! drops the whole model). What such a field means is said on its type, or on the containing
//! type's doc.

mod console;

pub use console::{CliDto, UsageDto};

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::{Enum, Object};

use dbtree_core::billing::{BillingPolicy, Runway, deletion_due};
use dbtree_core::boundary::EngineSupport;
use dbtree_core::policy::Policy;

use dbtree_core::harvest::{ClickChallenge, HarvestReceipt};
use dbtree_core::instance::{self as inst, Instance, InstanceStatus, Price};
use dbtree_core::ledger::LedgerEntry;
use dbtree_core::service::{AnswerOutcome, CapacityReport, Leaderboard, Profile, QuizStarted};
use dbtree_core::stats::{DailyHarvest, GlobalStats, Ranked};
use dbtree_core::tree::{Lemon, LemonState};

/// A sign-in code request.
#[derive(Debug, Object, serde::Deserialize)]
pub struct CodeRequest {
    /// Where to send the code.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
}

/// A sign-in code is on its way.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CodeSentDto {
    /// The normalised address.
    pub email: String,
    /// When the code expires.
    pub expires_at: DateTime<Utc>,
    /// Seconds before another code may be requested.
    pub resend_after_seconds: u32,
}

/// A sign-in with a code.
#[derive(Debug, Object, serde::Deserialize)]
pub struct SessionRequest {
    /// The address the code was sent to.
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// The six digits.
    #[oai(validator(pattern = r"^\s*[0-9]{6}\s*$"))]
    pub code: String,
}

/// A new session, with the profile of its account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionDto {
    /// The bearer token: send it as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
    /// Whether the account was created by this sign-in.
    pub is_new_user: bool,
    pub profile: ProfileDto,
}

/// A user's own figures: the profile.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProfileDto {
    /// Account id.
    pub id: String,
    /// Address.
    pub email: String,
    /// Lemons now.
    pub balance: u32,
    /// Earnings stop at this balance.
    pub balance_cap: u32,
    /// Lemons ever credited.
    pub earned_total: u64,
    /// Lemons ever spent.
    pub spent_total: u64,
    /// Consecutive UTC days with a harvest (0 if broken).
    pub streak_days: u32,
    /// End of the harvest cooldown, while cooling down.
    pub cooldown_until: Option<DateTime<Utc>>,
    /// Whether the account manages the quiz bank.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Lemons per hour the running instances cost together (0 when nothing runs).
    pub hourly_burn: u32,
    /// Whole hours the balance pays at that burn; absent when nothing runs.
    pub runway_hours: Option<u32>,
    /// When billing will pause the first running instance at that burn (absent when nothing
    /// runs).
    pub runway_ends_at: Option<DateTime<Utc>>,
    /// Whether the runway is shorter than `lowBalanceHours`.
    pub low_balance: bool,
    /// Below this many hours of runway the balance is low (a banner, and one email).
    pub low_balance_hours: u32,
    /// Minutes a paused instance waits for lemons before it is deleted with its data.
    pub pause_grace_minutes: i64,
    /// The most live instances the account may have.
    pub instance_limit: u32,
}

impl ProfileDto {
    /// Adds the runway figures and the limits they are read against.
    pub fn with_runway(mut self, runway: &Runway, policy: &Policy) -> Self {
        let billing = &policy.billing;
        self.hourly_burn = runway.hourly_burn.get();
        self.runway_hours = runway.hours;
        self.runway_ends_at = runway.first_pause().map(|p| p.pauses_at);
        self.low_balance = runway.is_low(billing);
        self.low_balance_hours = billing.low_balance_hours;
        self.pause_grace_minutes = billing.pause_grace.num_minutes();
        self.instance_limit = policy.instances.max_live_per_user;
        self
    }
}

impl From<Profile> for ProfileDto {
    fn from(p: Profile) -> Self {
        Self {
            id: p.id.to_string(),
            email: p.email.to_string(),
            balance: p.balance.get(),
            balance_cap: p.balance_cap.get(),
            earned_total: p.earned_total,
            spent_total: p.spent_total,
            streak_days: p.streak_days,
            cooldown_until: p.cooldown_until,
            is_admin: p.is_admin,
            created_at: p.created_at,
            hourly_burn: 0,
            runway_hours: None,
            runway_ends_at: None,
            low_balance: false,
            low_balance_hours: 0,
            pause_grace_minutes: 0,
            instance_limit: 0,
        }
    }
}

/// Whether a lemon can be played for: ripe or regrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum LemonStateDto {
    /// On the tree.
    Ripe,
    /// Harvested; back at `regrowsAt`.
    Regrowing,
}

/// One lemon.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct LemonDto {
    /// 0–9.
    pub position: u8,
    pub state: LemonStateDto,
    /// When a regrowing lemon is due back.
    pub regrows_at: Option<DateTime<Utc>>,
    /// Counts ripenings.
    pub cycle: u64,
}

impl From<&Lemon> for LemonDto {
    fn from(l: &Lemon) -> Self {
        let (state, regrows_at) = match l.state {
            LemonState::Ripe => (LemonStateDto::Ripe, None),
            LemonState::Regrowing { regrows_at, .. } => {
                (LemonStateDto::Regrowing, Some(regrows_at))
            }
        };
        Self {
            position: l.position.get(),
            state,
            regrows_at,
            cycle: l.cycle,
        }
    }
}

/// The tree.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TreeDto {
    /// The ten lemons by position.
    pub lemons: Vec<LemonDto>,
    /// The server's clock, to count down regrowth.
    pub server_time: DateTime<Utc>,
}

/// A quiz handed out.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct QuizDto {
    /// Send the answer and the harvest to this attempt.
    pub attempt_id: String,
    /// The question.
    pub question: String,
    /// The options; answer with an index.
    pub options: Vec<String>,
    /// easy, normal or hard.
    pub difficulty: String,
    /// How fast the circle of a right answer moves: slow (easy), medium (normal) or fast
    /// (hard). Known before the round so players can get ready.
    pub circle_speed: String,
    /// The time limit.
    pub time_limit_ms: i64,
    /// The last instant an answer counts.
    pub deadline: DateTime<Utc>,
}

impl From<QuizStarted> for QuizDto {
    fn from(q: QuizStarted) -> Self {
        Self {
            attempt_id: q.attempt.to_string(),
            question: q.question,
            options: q.options,
            difficulty: q.difficulty.as_str().to_owned(),
            circle_speed: q.speed.as_str().to_owned(),
            time_limit_ms: q.time_limit.num_milliseconds(),
            deadline: q.deadline,
        }
    }
}

/// An answer.
#[derive(Debug, Object, serde::Deserialize)]
pub struct AnswerRequest {
    /// Index of the chosen option.
    pub option: i64,
}

/// The moving circle to click, chosen by the server and sent with a right answer that opened
/// the harvest window. Its centre at `t` ms is
/// `x = 0.5 + 0.4·sin(2π·fx·t/periodMs + phase)`, `y = 0.5 + 0.4·sin(2π·fy·t/periodMs)`.
/// A click at offset `c` counts when it lies within `hitTolerance × radius` of the centre at
/// some whole millisecond in `[c − lagAllowanceMs, c]` (display and input lag).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ChallengeDto {
    /// How long the circle moves.
    pub window_ms: u32,
    /// Base period.
    pub period_ms: u32,
    /// Horizontal frequency, 1–3.
    pub fx: u8,
    /// Vertical frequency, 1–3.
    pub fy: u8,
    /// Horizontal phase in radians.
    pub phase: f64,
    /// Circle radius (play-area fraction).
    pub radius: f64,
    /// A click within `hitTolerance × radius` of the centre hits.
    pub hit_tolerance: f64,
    /// How many milliseconds before the click's offset the circle may have been where the click
    /// landed.
    pub lag_allowance_ms: u32,
}

impl From<ClickChallenge> for ChallengeDto {
    fn from(c: ClickChallenge) -> Self {
        Self {
            window_ms: c.window_ms,
            period_ms: c.period_ms,
            fx: c.fx,
            fy: c.fy,
            phase: c.phase,
            radius: c.radius,
            hit_tolerance: c.hit_tolerance,
            lag_allowance_ms: c.lag_allowance_ms,
        }
    }
}

/// The result of answering; `challenge` is the circle to click, present when the answer opened
/// the harvest window.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AnswerDto {
    /// Whether the answer was right.
    pub correct: bool,
    /// The right option.
    pub correct_option: u8,
    /// Why it is right.
    pub explanation: String,
    pub challenge: Option<ChallengeDto>,
    /// When the harvest window closes.
    pub window_closes_at: Option<DateTime<Utc>>,
}

impl From<AnswerOutcome> for AnswerDto {
    fn from(a: AnswerOutcome) -> Self {
        Self {
            correct: a.correct,
            correct_option: a.correct_option,
            explanation: a.explanation,
            challenge: a.challenge.map(Into::into),
            window_closes_at: a.window_closes_at,
        }
    }
}

/// A click on the circle.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct HarvestRequest {
    /// Milliseconds after the circle appeared.
    pub click_offset_ms: i64,
    /// Horizontal position, 0–1.
    pub x: f64,
    /// Vertical position, 0–1.
    pub y: f64,
}

/// A won lemon.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct HarvestDto {
    /// Lemons for the harvest.
    pub reward: u32,
    /// Streak bonus paid with it.
    pub streak_bonus: u32,
    /// Balance after both.
    pub balance: u32,
    /// The ledger entry of the reward.
    pub transaction_id: String,
}

impl From<HarvestReceipt> for HarvestDto {
    fn from(r: HarvestReceipt) -> Self {
        Self {
            reward: r.reward.get(),
            streak_bonus: r.streak_bonus.get(),
            balance: r.balance_after.get(),
            transaction_id: r.entry.to_string(),
        }
    }
}

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum EngineDto {
    /// PostgreSQL.
    Postgresql,
    /// Redis.
    Redis,
    /// MongoDB (standalone).
    Mongodb,
}

impl From<EngineDto> for inst::Engine {
    fn from(e: EngineDto) -> Self {
        match e {
            EngineDto::Postgresql => inst::Engine::Postgresql,
            EngineDto::Redis => inst::Engine::Redis,
            EngineDto::Mongodb => inst::Engine::Mongodb,
        }
    }
}

impl From<inst::Engine> for EngineDto {
    fn from(e: inst::Engine) -> Self {
        match e {
            inst::Engine::Postgresql => EngineDto::Postgresql,
            inst::Engine::Redis => EngineDto::Redis,
            inst::Engine::Mongodb => EngineDto::Mongodb,
        }
    }
}

/// A preset size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PresetDto {
    /// Smallest.
    Tiny,
    /// Small.
    Small,
    /// Medium.
    Medium,
    /// Largest.
    Large,
}

impl From<PresetDto> for inst::PresetSize {
    fn from(p: PresetDto) -> Self {
        match p {
            PresetDto::Tiny => inst::PresetSize::Tiny,
            PresetDto::Small => inst::PresetSize::Small,
            PresetDto::Medium => inst::PresetSize::Medium,
            PresetDto::Large => inst::PresetSize::Large,
        }
    }
}

impl From<inst::PresetSize> for PresetDto {
    fn from(p: inst::PresetSize) -> Self {
        match p {
            inst::PresetSize::Tiny => PresetDto::Tiny,
            inst::PresetSize::Small => PresetDto::Small,
            inst::PresetSize::Medium => PresetDto::Medium,
            inst::PresetSize::Large => PresetDto::Large,
        }
    }
}

/// Compute, memory and disk.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesDto {
    /// vCPU, 0.1–2.0 in steps of 0.05 for custom specifications.
    pub cpu: f64,
    /// MiB, 128–4096 for custom specifications.
    pub memory_mib: i64,
    /// GiB, 1–50 for custom specifications.
    pub disk_gib: i64,
}

impl From<inst::Resources> for ResourcesDto {
    fn from(r: inst::Resources) -> Self {
        Self {
            cpu: r.cpu.cores(),
            memory_mib: i64::from(r.memory_mib),
            disk_gib: i64::from(r.disk_gib),
        }
    }
}

/// What an instance costs, in lemons; an instance's price is fixed at its creation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PriceDto {
    /// Paid once at creation.
    pub creation_cost: u32,
    /// Paid every hour while running.
    pub hourly_cost: u32,
    /// 24 hours.
    pub daily_cost: u32,
    /// 720 hours.
    pub monthly_cost: u32,
}

impl From<Price> for PriceDto {
    fn from(p: Price) -> Self {
        Self {
            creation_cost: p.creation_cost.get(),
            hourly_cost: p.hourly_cost.get(),
            daily_cost: p.daily_cost.get(),
            monthly_cost: p.monthly_cost.get(),
        }
    }
}

/// One preset of the catalogue: an engine and a size, the `resources` it gets and the `price` it
/// costs.
#[derive(Debug, Object)]
pub struct PresetEntryDto {
    pub engine: EngineDto,
    pub preset: PresetDto,
    pub resources: ResourcesDto,
    pub price: PriceDto,
}

/// A specification to price: an engine and either a `preset` size or custom `resources`.
/// Leave out the one not used (`null` is refused, as the schema says).
#[derive(Debug, Object, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct QuoteRequest {
    pub engine: EngineDto,
    #[serde(default, deserialize_with = "super::body::not_null")]
    pub preset: Option<PresetDto>,
    #[serde(default, deserialize_with = "super::body::not_null")]
    pub resources: Option<ResourcesDto>,
}

/// A new instance: a name, an engine and either a `preset` size or custom `resources`.
/// Leave out the one not used (`null` is refused, as the schema says).
#[derive(Debug, Object, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct CreateInstanceRequest {
    /// A DNS label: 3–40 lower-case letters, digits and `-`.
    #[oai(validator(
        min_length = 3,
        max_length = 40,
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    ))]
    pub name: String,
    pub engine: EngineDto,
    #[serde(default, deserialize_with = "super::body::not_null")]
    pub preset: Option<PresetDto>,
    #[serde(default, deserialize_with = "super::body::not_null")]
    pub resources: Option<ResourcesDto>,
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StatusDto {
    /// Being brought up.
    Provisioning,
    /// Up and billed.
    Running,
    /// Stopped by its owner.
    Stopped,
    /// Stopped for lack of lemons.
    Paused,
    /// Provisioning failed (refunded).
    Error,
    /// Being deleted.
    Deleting,
    /// Gone.
    Deleted,
}

impl From<InstanceStatus> for StatusDto {
    fn from(s: InstanceStatus) -> Self {
        match s {
            InstanceStatus::Provisioning => StatusDto::Provisioning,
            InstanceStatus::Running => StatusDto::Running,
            InstanceStatus::Stopped => StatusDto::Stopped,
            InstanceStatus::Paused => StatusDto::Paused,
            InstanceStatus::Error => StatusDto::Error,
            InstanceStatus::Deleting => StatusDto::Deleting,
            InstanceStatus::Deleted => StatusDto::Deleted,
        }
    }
}

/// An instance: its engine, its `preset` size if created from one, its resources, its price
/// (fixed at creation) and its state.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct InstanceDto {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    pub engine: EngineDto,
    pub preset: Option<PresetDto>,
    pub resources: ResourcesDto,
    pub price: PriceDto,
    pub status: StatusDto,
    /// Why it is in that state, when there is something to say.
    pub status_reason: Option<String>,
    /// NodePort it is reached on.
    pub node_port: Option<u16>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When billing paused it, while paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// While running: when billing will pause it at the owner's current burn and balance.
    pub pauses_at: Option<DateTime<Utc>>,
    /// While running or paused: when it will be deleted with its data unless the balance is
    /// topped up (the grace period after a pause).
    pub deletes_at: Option<DateTime<Utc>>,
}

impl InstanceDto {
    /// Adds when billing will pause and delete it.
    pub fn with_runway(
        mut self,
        instance: &Instance,
        runway: &Runway,
        policy: &BillingPolicy,
    ) -> Self {
        match instance.status {
            InstanceStatus::Running => {
                if let Some(p) = runway.pause_of(instance.id) {
                    self.pauses_at = Some(p.pauses_at);
                    self.deletes_at = Some(p.deleted_at);
                }
            }
            InstanceStatus::Paused => {
                self.deletes_at = instance.paused_at.map(|at| deletion_due(at, policy));
            }
            InstanceStatus::Provisioning
            | InstanceStatus::Stopped
            | InstanceStatus::Error
            | InstanceStatus::Deleting
            | InstanceStatus::Deleted => {}
        }
        self
    }
}

impl From<&Instance> for InstanceDto {
    fn from(i: &Instance) -> Self {
        Self {
            id: i.id.to_string(),
            name: i.name.to_string(),
            engine: i.engine().into(),
            preset: i.spec.size().map(Into::into),
            resources: i.resources().into(),
            price: i.price.into(),
            status: i.status.into(),
            status_reason: i.status_reason.clone(),
            node_port: i.node_port.map(|p| p.get()),
            created_at: i.created_at,
            updated_at: i.updated_at,
            paused_at: i.paused_at,
            pauses_at: None,
            deletes_at: None,
        }
    }
}

/// How to connect (the password is never shown again): host, port, the URI template and `cli`,
/// the engine's command-line client ready to copy.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ConnectionDto {
    /// Public host.
    pub host: String,
    /// NodePort.
    pub port: u16,
    /// Connection URI with a `{password}` placeholder.
    pub uri_template: String,
    pub cli: CliDto,
}

/// An instance with its connection details: `connection` is there once it has a NodePort.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InstanceDetailDto {
    /// The instance.
    #[oai(flatten)]
    pub instance: InstanceDto,
    pub connection: Option<ConnectionDto>,
    /// The server software that runs it, when the cluster says (`PostgreSQL 15.14`,
    /// `Redis 7.0.15`, `MongoDB 7.0.14`, or `MongoDB-compatible: FerretDB 1.24.2` for a MongoDB
    /// instance served by FerretDB).
    pub server: Option<String>,
}

/// Credentials, shown exactly once.
#[derive(Debug, Object)]
pub struct CredentialsDto {
    /// User name.
    pub username: String,
    /// Password (never stored by dbtree, never shown again).
    pub password: String,
    /// A connection URI including the password.
    pub uri: String,
}

/// A created instance (provisioning) and its one-time credentials: save them now, the password
/// is shown only once.
#[derive(Debug, Object)]
pub struct CreatedInstanceDto {
    pub instance: InstanceDto,
    pub credentials: CredentialsDto,
}

/// One ledger entry.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TransactionDto {
    /// Its id.
    pub id: String,
    /// Why the balance changed.
    pub kind: String,
    /// Signed change.
    pub amount: i64,
    /// Balance right after.
    pub balance_after: u32,
    /// The instance concerned, if any.
    pub instance_id: Option<String>,
    /// The name of the instance concerned, if any.
    pub instance_name: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<&LedgerEntry> for TransactionDto {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind.as_str().to_owned(),
            amount: e.delta,
            balance_after: e.balance_after.get(),
            instance_id: e.instance.map(|i| i.to_string()),
            instance_name: None,
            created_at: e.at,
        }
    }
}

/// A page of ledger entries, newest first.
#[derive(Debug, Object)]
pub struct TransactionPageDto {
    /// The entries.
    pub items: Vec<TransactionDto>,
    /// Entries in the whole list.
    pub total: u64,
    /// Page size.
    pub limit: u32,
    /// Entries skipped.
    pub offset: u64,
}

/// Lemons harvested on one day.
#[derive(Debug, Object)]
pub struct DailyHarvestDto {
    /// The UTC day.
    pub date: NaiveDate,
    /// Lemons from harvests and streak bonuses.
    pub lemons: u64,
}

impl From<&DailyHarvest> for DailyHarvestDto {
    fn from(d: &DailyHarvest) -> Self {
        Self {
            date: d.day,
            lemons: d.lemons,
        }
    }
}

/// Daily harvests, oldest first.
#[derive(Debug, Object)]
pub struct HarvestHistoryDto {
    /// One entry per day.
    pub days: Vec<DailyHarvestDto>,
}

/// Global figures.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct StatsDto {
    /// Sum of harvest rewards ever paid.
    pub lemons_harvested: u64,
    /// Accounts that are not deleted.
    pub live_users: u64,
    /// Instances ever created.
    pub instances_created: u64,
    /// Lemons a new account starts with.
    pub welcome_bonus: u32,
}

impl From<GlobalStats> for StatsDto {
    fn from(s: GlobalStats) -> Self {
        Self {
            lemons_harvested: s.lemons_harvested,
            live_users: s.live_users,
            instances_created: s.instances_created,
            welcome_bonus: 0,
        }
    }
}

/// One leaderboard row.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RankedDto {
    /// 1-based.
    pub rank: u32,
    /// A masked address.
    pub masked_email: String,
    /// Balance, or correct answers today.
    pub score: u64,
}

impl From<&Ranked> for RankedDto {
    fn from(r: &Ranked) -> Self {
        Self {
            rank: r.rank,
            masked_email: r.masked_email.clone(),
            score: r.score,
        }
    }
}

/// The leaderboard.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct LeaderboardDto {
    /// Top balances.
    pub richest: Vec<RankedDto>,
    /// Most correct answers today (UTC).
    pub quiz_masters_today: Vec<RankedDto>,
}

impl From<Leaderboard> for LeaderboardDto {
    fn from(l: Leaderboard) -> Self {
        Self {
            richest: l.richest.iter().map(Into::into).collect(),
            quiz_masters_today: l.quiz_masters_today.iter().map(Into::into).collect(),
        }
    }
}

/// Which preset sizes of an engine can be created now.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct EngineFitDto {
    pub engine: EngineDto,
    /// Sizes that fit, smallest first (none when the engine is not available).
    pub presets: Vec<PresetDto>,
    /// Whether this server can run the engine at all.
    pub available: bool,
    /// The server software that runs it, when known (`MongoDB-compatible: FerretDB 1.24.2`).
    pub server: Option<String>,
    /// Why it is not available (a missing program), when it is not.
    pub unavailable_reason: Option<String>,
}

/// The node's capacity in aggregate.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CapacityDto {
    /// Node vCPU.
    pub total_cpu: f64,
    /// Node MiB.
    pub total_memory_mib: u32,
    /// vCPU kept for the system.
    pub reserved_cpu: f64,
    /// MiB kept for the system.
    pub reserved_memory_mib: u32,
    /// vCPU held by instances.
    pub used_cpu: f64,
    /// MiB held by instances.
    pub used_memory_mib: u64,
    /// Instances holding resources.
    pub instances: u32,
    /// Preset sizes that fit now.
    pub fits: Vec<EngineFitDto>,
}

impl From<CapacityReport> for CapacityDto {
    fn from(c: CapacityReport) -> Self {
        Self {
            total_cpu: c.budget.total_cpu.cores(),
            total_memory_mib: c.budget.total_memory_mib,
            reserved_cpu: c.budget.reserved_cpu.cores(),
            reserved_memory_mib: c.budget.reserved_memory_mib,
            used_cpu: c.usage.cpu_milli as f64 / 1000.0,
            used_memory_mib: c.usage.memory_mib,
            instances: c.usage.instances,
            fits: c
                .fits
                .into_iter()
                .map(|f| {
                    let (available, server, unavailable_reason) = match f.support {
                        EngineSupport::Available { server } => (true, server, None),
                        EngineSupport::Unavailable { reason } => (false, None, Some(reason)),
                    };
                    EngineFitDto {
                        engine: f.engine.into(),
                        presets: f.sizes.into_iter().map(Into::into).collect(),
                        available,
                        server,
                        unavailable_reason,
                    }
                })
                .collect(),
        }
    }
}

/// What a support inquiry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SupportCategoryDto {
    /// Something is broken.
    Bug,
    /// Lemons and charges.
    Billing,
    /// An idea.
    Feature,
    /// Anything else.
    Other,
}

impl From<SupportCategoryDto> for dbtree_core::support::SupportCategory {
    fn from(c: SupportCategoryDto) -> Self {
        use dbtree_core::support::SupportCategory as C;
        match c {
            SupportCategoryDto::Bug => C::Bug,
            SupportCategoryDto::Billing => C::Billing,
            SupportCategoryDto::Feature => C::Feature,
            SupportCategoryDto::Other => C::Other,
        }
    }
}

/// A support inquiry.
#[derive(Debug, Object, serde::Deserialize)]
pub struct SupportRequest {
    pub category: SupportCategoryDto,
    /// 3–120 characters.
    #[oai(validator(min_length = 3, max_length = 120))]
    pub subject: String,
    /// 10–4000 characters.
    #[oai(validator(min_length = 10, max_length = 4000))]
    pub message: String,
}

/// A received inquiry.
#[derive(Debug, Object)]
pub struct SupportReceivedDto {
    /// Its number.
    pub id: i64,
}

/// A quiz of the bank, answer included (administrators only).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AdminQuizDto {
    /// Its id.
    pub id: i64,
    /// basics, sql, design, performance or cloud.
    pub category: String,
    /// easy, normal or hard.
    pub difficulty: String,
    /// The question.
    pub question: String,
    /// The options.
    pub options: Vec<String>,
    /// Index of the correct option.
    pub correct_option: u8,
    /// Seconds to answer, 10–30.
    pub time_limit_seconds: u32,
    /// Why the answer is right.
    pub explanation: String,
    /// Times put on the tree.
    pub uses: u64,
    /// Never put on the tree again.
    pub retired: bool,
}

impl From<&dbtree_core::quiz::Quiz> for AdminQuizDto {
    fn from(q: &dbtree_core::quiz::Quiz) -> Self {
        Self {
            id: q.id.0,
            category: q.content.category.as_str().to_owned(),
            difficulty: q.content.difficulty.as_str().to_owned(),
            question: q.content.question.clone(),
            options: q.content.options.clone(),
            correct_option: q.content.correct_option,
            time_limit_seconds: q.content.time_limit_seconds,
            explanation: q.content.explanation.clone(),
            uses: q.uses,
            retired: q.retired,
        }
    }
}

/// A new quiz.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct NewQuizRequest {
    /// basics, sql, design, performance or cloud.
    #[oai(validator(max_length = 20))]
    pub category: String,
    /// easy, normal or hard.
    #[oai(validator(max_length = 20))]
    pub difficulty: String,
    /// 10–500 characters.
    #[oai(validator(min_length = 10, max_length = 500))]
    pub question: String,
    /// 2–6 options of 1–200 characters.
    #[oai(validator(min_items = 2, max_items = 6))]
    pub options: Vec<String>,
    /// Index of the correct option.
    pub correct_option: u8,
    /// Seconds to answer, 10–30.
    pub time_limit_seconds: u32,
    /// Why the answer is right (up to 1000 characters).
    #[oai(default, validator(max_length = 1000))]
    #[serde(default)]
    pub explanation: String,
}
