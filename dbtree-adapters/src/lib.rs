//! Implementations of `dbtree-core`'s boundary traits.
//!
//! Each backend is behind a feature:
//!
//! | feature | adapters |
//! |---|---|
//! | `memory` | [`memory::MemoryStore`], [`memory::MemoryQuizLock`], [`memory::MemoryRateLimiter`], [`memory::RecordingMailer`], [`memory::MemoryCluster`], [`memory::ManualClock`], [`memory::SeededEntropy`], and the [`memory::Sandbox`] that wires them |
//! | `system` | [`system::SystemClock`], [`system::OsEntropy`] |
//!
//! Adapters translate driver errors at the seam: no driver error type crosses into
//! `dbtree-core`'s types.

#![forbid(unsafe_code)]

#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "system")]
pub mod system;
