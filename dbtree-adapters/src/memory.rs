//! In-memory implementations of every boundary trait, correct under concurrency (each operation
//! runs under one lock), for tests, examples and embedding without a database.

mod cluster;
mod coordination;
mod mailer;
mod sandbox;
mod store;
mod time;

pub use cluster::{ClusterScript, MemoryCluster, SimulatedInstance};
pub use coordination::{MemoryQuizLock, MemoryRateLimiter};
pub use mailer::RecordingMailer;
pub use sandbox::Sandbox;
pub use store::MemoryStore;
pub use time::{ManualClock, SeededEntropy};
