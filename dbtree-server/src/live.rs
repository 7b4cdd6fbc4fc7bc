//! Live tree changes for `GET /api/v1/tree/events`.
//!
//! One poller per server replica reads the tree from the store every half second (and at once
//! when this replica harvests), compares it with the last state it saw, and broadcasts each
//! changed lemon to every subscriber. Reading the store, rather than listening only to local
//! harvests, makes changes made by other replicas and by regrowth visible within a second.

use std::sync::Arc;
use std::time::Duration;

use dbtree_core::service::App;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::{Notify, RwLock, broadcast, watch};

use crate::api::dto::LemonDto;

/// How often the poller reads the tree.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// The hub subscribers listen to.
#[derive(Clone)]
pub struct TreeHub {
    inner: Arc<Inner>,
}

struct Inner {
    changes: broadcast::Sender<LemonDto>,
    latest: RwLock<Vec<LemonDto>>,
    nudge: Notify,
}

impl std::fmt::Debug for TreeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeHub")
            .field("subscribers", &self.inner.changes.receiver_count())
            .finish()
    }
}

impl Default for TreeHub {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeHub {
    /// A hub with no state yet.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                changes,
                latest: RwLock::new(Vec::new()),
                nudge: Notify::new(),
            }),
        }
    }

    /// Asks the poller to look now (after a local harvest or regrowth).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Every lemon as last seen, then each change as it is seen. A subscriber that falls behind
    /// gets the whole tree again.
    pub fn subscribe(&self) -> BoxStream<'static, LemonDto> {
        let inner = self.inner.clone();
        let receiver = inner.changes.subscribe();
        stream::once(async move { (inner, receiver) })
            .flat_map(|(inner, receiver)| {
                let snapshot_source = inner.clone();
                stream::once(
                    async move { stream::iter(snapshot_source.latest.read().await.clone()) },
                )
                .flatten()
                .chain(
                    stream::unfold((inner, receiver), |(inner, mut receiver)| async move {
                        let next = match receiver.recv().await {
                            Ok(lemon) => vec![lemon],
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                inner.latest.read().await.clone()
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        };
                        Some((stream::iter(next), (inner, receiver)))
                    })
                    .flatten(),
                )
            })
            .boxed()
    }

    /// Reads the tree, remembers it, and broadcasts what changed. Returns how many lemons changed.
    pub async fn refresh(&self, app: &App) -> usize {
        let lemons = match app.tree.tree().await {
            Ok(lemons) => lemons,
            Err(e) => {
                tracing::warn!(error = %e, "live tree: cannot read the tree");
                return 0;
            }
        };
        let now: Vec<LemonDto> = lemons.iter().map(LemonDto::from).collect();
        let mut latest = self.inner.latest.write().await;
        let changed: Vec<LemonDto> = now
            .iter()
            .filter(|l| !latest.contains(l))
            .cloned()
            .collect();
        *latest = now;
        drop(latest);
        for lemon in &changed {
            // no subscribers is fine
            let _ = self.inner.changes.send(lemon.clone());
        }
        changed.len()
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(self, app: App, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.refresh(&app).await;
            tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = self.inner.nudge.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
