//! Retries of Kubernetes API calls: exponential backoff with full jitter, for the failures a
//! retry can fix (conflicts, throttling, API server errors, transport errors).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use dbtree_core::boundary::ClusterError;

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least one is always made).
    pub attempts: u32,
    /// The backoff ceiling before the first retry; it doubles after each one.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, backing off within 200 ms, 400 ms, 800 ms, 1.6 s (about 3 s at worst).
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the pause after failed attempt number `attempt` (1-based).
    fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Whether a failed call is worth repeating.
pub(crate) fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        // Malformed requests or responses will be just as malformed next time.
        kube::Error::SerdeError(_)
        | kube::Error::BuildRequest(_)
        | kube::Error::InferConfig(_)
        | kube::Error::Discovery(_)
        | kube::Error::TlsRequired
        | kube::Error::ProxyProtocolUnsupported { .. }
        | kube::Error::ProxyProtocolDisabled { .. } => false,
        _ => true,
    }
}

/// Runs `call` until it succeeds, fails for good, or the attempts run out; returns the last
/// error in the last case.
pub(crate) async fn retrying<T, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    mut call: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if attempt < policy.attempts && is_retryable(&error) => {
                let pause = jitter(policy.ceiling(attempt));
                tracing::debug!(what, attempt, pause_ms = pause.as_millis() as u64, error = %error, "retrying a Kubernetes API call");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A uniformly random pause in `0..=ceiling` ("full jitter"), so replicas that failed together
/// do not retry together. The randomness only spreads load; it needs no cryptographic quality.
fn jitter(ceiling: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(hasher.finish() % nanos.saturating_add(1))
}

/// The dbtree-side meaning of a failed call. `NotFound` only where the caller says a 404 means
/// the instance is unknown.
pub(crate) fn to_cluster_error(what: &str, error: &kube::Error) -> ClusterError {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            ClusterError::not_found(format!("{what}: not found in the cluster"))
        }
        kube::Error::Api(status) if (400..500).contains(&status.code) && !is_retryable(error) => {
            ClusterError::permanent(format!(
                "{what}: the Kubernetes API refused it ({} {}): {}",
                status.code, status.reason, status.message
            ))
        }
        kube::Error::Api(status) => ClusterError::transient(format!(
            "{what}: the Kubernetes API failed ({} {})",
            status.code, status.reason
        )),
        other if !is_retryable(other) => ClusterError::permanent(format!("{what}: {other}")),
        other => ClusterError::transient(format!(
            "{what}: the Kubernetes API is unreachable: {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16) -> kube::Error {
        let mut status = Status::failure("boom", "Reason");
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn conflicts_throttling_and_server_errors_are_retried_client_errors_are_not() {
        for code in [409, 429, 500, 503, 504] {
            assert!(is_retryable(&api(code)), "{code}");
        }
        for code in [400, 403, 404, 422] {
            assert!(!is_retryable(&api(code)), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_jitter_stays_below_it() {
        let policy = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.ceiling(5), Duration::from_secs(1));
        assert_eq!(policy.ceiling(64), Duration::from_secs(1));
        let pauses: Vec<Duration> = (0..64)
            .map(|_| jitter(Duration::from_millis(100)))
            .collect();
        assert!(pauses.iter().all(|p| *p <= Duration::from_millis(100)));
        assert!(pauses.iter().any(|p| *p != pauses[0]), "jitter varies");
    }

    #[test]
    fn failures_map_to_cluster_error_kinds() {
        use dbtree_core::boundary::ClusterErrorKind as K;
        assert_eq!(to_cluster_error("x", &api(404)).kind, K::NotFound);
        assert_eq!(to_cluster_error("x", &api(422)).kind, K::Permanent);
        assert_eq!(to_cluster_error("x", &api(409)).kind, K::Transient);
        assert_eq!(to_cluster_error("x", &api(500)).kind, K::Transient);
    }

    #[tokio::test]
    async fn retrying_stops_at_success_or_at_the_last_attempt() {
        let policy = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result = retrying(policy, "t", || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(api(500)) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.ok(), Some(3));
        let mut calls = 0;
        let result: Result<(), _> = retrying(policy, "t", || {
            calls += 1;
            async { Err(api(503)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let result: Result<(), _> = retrying(policy, "t", || {
            calls += 1;
            async { Err(api(422)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a refusal is not retried");
    }
}
