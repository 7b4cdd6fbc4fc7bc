//! Leader election over a `coordination.k8s.io/v1` Lease: one replica reconciles, the others
//! wait. The leader renews the lease every few seconds; a replica takes the lease over only
//! after it has gone unrenewed for its whole duration. Writes are conditional on the lease's
//! resource version, so two replicas racing for it cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Lease timing and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease object's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This replica (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (shorter than the duration, so it
    /// stops before anyone else may start).
    pub renew_deadline: Duration,
    /// How often to renew, or to try to acquire.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Default timing (15 s lease, 10 s renew deadline, 2 s retry) for `identity`.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the lease as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Wait {
        /// Who.
        holder: String,
    },
}

/// Decides what `identity` should do about `lease` at `now`.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return Decision::TakeOver;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    let expires = renewed.0.as_second().saturating_add(duration);
    if now.as_second() > expires {
        Decision::TakeOver
    } else {
        Decision::Wait {
            holder: holder.to_owned(),
        }
    }
}

/// Campaigns for and renews one Lease.
#[derive(Clone, Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    /// An elector for `config`'s lease.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One round: acquire, renew or wait. `Ok(true)` when this replica holds the lease after
    /// it; `Ok(false)` when another does or won a race for it (a 409 is a lost race, not an
    /// error).
    ///
    /// # Errors
    /// Any other API failure.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.config.identity,
            now,
        );
        let result = match (decision, current) {
            (Decision::Wait { .. }, _) => return Ok(false),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(now, now, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.take().unwrap_or_default();
                let acquired = spec.acquire_time.map_or(now, |t| t.0);
                let transitions = spec.lease_transitions.unwrap_or(0);
                lease.spec = Some(self.held_spec(acquired, now, transitions));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::TakeOver, Some(mut lease)) => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                lease.spec = Some(self.held_spec(now, now, transitions.saturating_add(1)));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up (best effort) so another replica need not wait for it to expire.
    ///
    /// # Errors
    /// An API failure.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if ours {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await?;
        }
        Ok(())
    }

    fn held_spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            acquire_time: Some(MicroTime(at(renewed - 100))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let now = 1_000_000;
        assert_eq!(decide(None, "a", at(now)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("a", now - 60)), "a", at(now)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("b", now - 5)), "a", at(now)),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&held_by("b", now - 15)), "a", at(now)),
            Decision::Wait { holder: "b".into() },
            "a lease is live through its last second"
        );
        assert_eq!(
            decide(Some(&held_by("b", now - 16)), "a", at(now)),
            Decision::TakeOver
        );
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("b", now)
        };
        assert_eq!(decide(Some(&released), "a", at(now)), Decision::TakeOver);
        let never_renewed = LeaseSpec {
            renew_time: None,
            acquire_time: None,
            ..held_by("b", now)
        };
        assert_eq!(
            decide(Some(&never_renewed), "a", at(now)),
            Decision::TakeOver
        );
    }
}
