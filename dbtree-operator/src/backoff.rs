//! How long to wait before retrying a failed reconcile: exponential in the number of
//! consecutive failures, capped, with "equal jitter" (half fixed, half random) so that many
//! instances failing together do not retry in lockstep.

use std::time::Duration;

/// Retry timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay scale of the first retry.
    pub base: Duration,
    /// Largest delay scale.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th consecutive failure (1 for the first), with `jitter`
    /// in `[0, 1)`: within `[scale / 2, scale)` where `scale = min(base · 2^(failures-1), max)`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let scale = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = scale / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A jitter fraction in `[0, 1)` from the operating system's random source; the midpoint if
/// that source fails (the delay is then still bounded and positive).
pub fn random_jitter() -> f64 {
    getrandom::u32().map_or(0.5, |n| f64::from(n) / (f64::from(u32::MAX) + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap_and_stay_within_the_jitter_band() {
        let b = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(1, 0.999_999), Duration::from_micros(1_999_999));
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(6));
        assert_eq!(b.delay(10, 0.0), Duration::from_secs(30), "capped at max");
        assert_eq!(
            b.delay(u32::MAX, 0.0),
            Duration::from_secs(30),
            "no overflow"
        );
        assert_eq!(
            b.delay(0, 0.0),
            Duration::from_secs(1),
            "0 counts as the first failure"
        );
    }

    #[test]
    fn random_jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
