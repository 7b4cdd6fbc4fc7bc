//! Implementations of `dbtree-core`'s boundary traits.
//!
//! Each backend is behind a feature:
//!
//! | feature | adapters |
//! |---|---|
//! | `memory` | [`memory::MemoryStore`], [`memory::MemoryQuizLock`], [`memory::MemoryRateLimiter`], [`memory::RecordingMailer`], [`memory::MemoryCluster`], [`memory::ManualClock`], [`memory::SeededEntropy`], and the [`memory::Sandbox`] that wires them |
//! | `system` | [`system::SystemClock`], [`system::OsEntropy`] |
//! | `postgres` | [`postgres::PgStore`] (production storage, several replicas) |
//! | `sqlite` | [`sqlite::SqliteStore`] (the embedded default) |
//! | `redis` | [`redis::RedisQuizLock`], [`redis::RedisRateLimiter`] |
//! | `console` | [`console::ConsoleMailer`] (logs sign-in codes: development and embedded use only) |
//! | `ses` | [`ses::SesMailer`] (email through Amazon SES v2) |
//! | `local` | [`local::LocalCluster`] (instances as database processes on this machine: the embedded default) |
//! | `kube` | [`kube::KubeCluster`] (instances as `DBInstance` objects run by the dbtree operator) and the [`kube::DBInstance`] custom resource |
//!
//! Adapters translate driver errors at the seam: no driver error type crosses into
//! `dbtree-core`'s types.

#![forbid(unsafe_code)]

#[cfg(feature = "console")]
pub mod console;
#[cfg(feature = "kube")]
pub mod kube;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "system")]
pub mod system;
