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
//!
//! Adapters translate driver errors at the seam: no driver error type crosses into
//! `dbtree-core`'s types.

#![forbid(unsafe_code)]

#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "system")]
pub mod system;
