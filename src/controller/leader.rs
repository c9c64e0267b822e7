//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas can run and only
//! one reconciles. Every write is a create or an optimistic-concurrency replace (the
//! `resourceVersion` read with the Lease), so two candidates can never both win a round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

/// One candidate's handle on the Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Where and who: the Lease's namespace and name, this replica's identity, and how long a
/// lease stays valid without renewal.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the operator's).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica (the pod name).
    pub identity: String,
    /// Validity without renewal; renewals happen every third of it.
    pub duration: Duration,
}

impl LeaseLock {
    /// A lock on the Lease named in `settings`.
    pub fn new(client: Client, settings: &LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            name: settings.name.clone(),
            identity: settings.identity.clone(),
            duration: settings.duration,
        }
    }

    /// How often the holder renews.
    pub fn renew_period(&self) -> Duration {
        self.duration / 3
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().try_into().unwrap_or(i32::MAX)),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One election round at `now`: creates the Lease, renews it when held, or takes it over
    /// when the holder let it expire. Returns whether this replica leads.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return lost_race_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let spec = if holder == self.identity {
            self.spec(now, spec.acquire_time, spec.lease_transitions.unwrap_or(0))
        } else {
            let valid_for =
                SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
            let expired = spec.renew_time.is_none_or(|t| t.0 + valid_for <= now);
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            self.spec(now, None, spec.lease_transitions.unwrap_or(0) + 1)
        };
        let updated = Lease {
            metadata: lease.metadata,
            spec: Some(spec),
        };
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &updated)
                .await,
        )
    }

    /// Gives the Lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }
}

/// A 409 (someone else wrote first) means this round was lost, not an error.
fn lost_race_is_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}
