//! What the webhook is configured with: who is trusted to name owners, and the instance policy.

use std::collections::BTreeSet;

use dbtree_core::instance::InstancePolicy;

/// The webhook's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    /// User names (e.g. `system:serviceaccount:dbtree:dbtree-server`) that may create
    /// `DBInstance`s on behalf of any owner. Everyone else owns what they create.
    pub trusted_service_accounts: BTreeSet<String>,
    /// The per-user limit, the node budget and the NodePort range: the same numbers as the
    /// server's `Policy::instances`.
    pub instances: InstancePolicy,
}

impl WebhookConfig {
    /// A configuration trusting `accounts`, with `instances` as the policy.
    pub fn new<S: Into<String>>(
        accounts: impl IntoIterator<Item = S>,
        instances: InstancePolicy,
    ) -> Self {
        Self {
            trusted_service_accounts: accounts.into_iter().map(Into::into).collect(),
            instances,
        }
    }

    /// Whether `username` may set another user as the owner.
    pub fn is_trusted(&self, username: &str) -> bool {
        self.trusted_service_accounts.contains(username)
    }
}
