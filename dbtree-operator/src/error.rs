//! The controller's error: what went wrong while reconciling, labelled for metrics. Every
//! variant is retried by the error policy with backoff; none is terminal.

/// A reconcile that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request (or could not be reached).
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The object lacks the name or namespace every request about it needs.
    #[error("the DBInstance has no metadata.{0}")]
    Unaddressable(&'static str),
    /// A status or patch body could not be serialised.
    #[error("cannot serialise a request body: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The operating system gave no randomness for an administrator password.
    #[error("no randomness for a password: {0}")]
    Entropy(String),
}

impl Error {
    /// A short, bounded label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code >= 500 => "api_server",
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(_)) => "api_refused",
            Error::Kube(_) => "api_unreachable",
            Error::Unaddressable(_) => "unaddressable",
            Error::Serialise(_) => "serialise",
            Error::Entropy(_) => "entropy",
        }
    }
}
