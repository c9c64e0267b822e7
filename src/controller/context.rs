//! The state every reconcile shares: the client, the Event recorder, the metrics, the
//! operator's configuration, the discovered cluster facts, the caches, the clock, and what is
//! remembered per resource between passes (its resolution, its last health verdict, the
//! fingerprints of its children, its failures), and the watches of referenced Secrets. [`Context::forget`] drops all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::Notify;

use super::apply::Applied;
use super::cache::Caches;
use super::dereference::Resolved;
use super::metrics::{Metrics, ResourceLabels};
use super::secrets::SecretWatches;
use crate::discovery::Discovered;
use crate::health::HealthReport;

pub use super::config::Config;

/// The time source of status conditions (whole seconds, as the API server stores them, so a
/// recomputed status compares equal to the stored one).
pub type Clock = Arc<dyn Fn() -> Time + Send + Sync>;

/// The wall clock, truncated to seconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time"))
    })
}

/// Shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events (aggregates repeats).
    pub recorder: Recorder,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
    /// Operator settings.
    pub config: Config,
    /// Cluster facts, refreshed by the discovery loop.
    pub discovered: Arc<RwLock<Discovered>>,
    /// Time source.
    pub clock: Clock,
    /// The watched cluster state.
    pub caches: Arc<Caches>,
    /// Woken when a reconcile changed what a resource wants (or one was deleted), so the
    /// shared objects follow the set of resources.
    pub shared_changed: Arc<Notify>,
    failures: Mutex<HashMap<String, u32>>,
    resolved: RwLock<HashMap<String, Arc<Resolved>>>,
    verdicts: Mutex<HashMap<String, HealthReport>>,
    applied: Mutex<HashMap<String, Applied>>,
    trigger: OnceLock<tokio::sync::mpsc::UnboundedSender<(String, String)>>,
    exporter_failure: Mutex<Option<String>>,
    dashboard_notes: Mutex<BTreeMap<String, String>>,
    secrets: OnceLock<SecretWatches>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        config: Config,
        discovered: Arc<RwLock<Discovered>>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        let reporter = Reporter {
            controller: "infmon".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            discovered,
            clock,
            caches: Arc::new(Caches::new()),
            shared_changed: Arc::new(Notify::new()),
            failures: Mutex::new(HashMap::new()),
            resolved: RwLock::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            applied: Mutex::new(HashMap::new()),
            trigger: OnceLock::new(),
            exporter_failure: Mutex::new(None),
            dashboard_notes: Mutex::new(BTreeMap::new()),
            secrets: OnceLock::new(),
        }
    }

    /// The same context reading `caches`.
    pub fn with_caches(mut self, caches: Arc<Caches>) -> Self {
        self.caches = caches;
        self
    }

    /// Where [`Context::reconcile_soon`] sends `(namespace, name)` (set once by the runner).
    pub fn set_trigger(&self, sender: tokio::sync::mpsc::UnboundedSender<(String, String)>) {
        let _ = self.trigger.set(sender);
    }

    /// Asks the controller to reconcile `namespace/name` (no-op without a controller).
    pub fn reconcile_soon(&self, namespace: &str, name: &str) {
        if let Some(sender) = self.trigger.get() {
            let _ = sender.send((namespace.to_string(), name.to_string()));
        }
    }

    /// From now on, the health check reads credentials from watches of the Secrets resources
    /// reference (see [`SecretWatches`]) instead of reading them at each check.
    pub fn watch_secrets(&self) {
        let _ = self.secrets.set(SecretWatches::new(self.client.clone()));
    }

    /// The Secret watches, once [`Context::watch_secrets`] turned them on.
    pub fn secret_watches(&self) -> Option<&SecretWatches> {
        self.secrets.get()
    }

    /// Records why the shared pass could not apply the exporter's DaemonSet (`None`: it
    /// could); returns whether that changed.
    pub fn set_exporter_failure(&self, failure: Option<String>) -> bool {
        let mut current = lock(&self.exporter_failure);
        let changed = *current != failure;
        *current = failure;
        changed
    }

    /// Records, per resource (`namespace/name`), why the shared dashboards do not follow its
    /// delivery settings (resources absent from `notes` have none, deleted ones included);
    /// returns the resources whose note changed.
    pub fn set_dashboard_notes(&self, notes: BTreeMap<String, String>) -> Vec<String> {
        let mut current = lock(&self.dashboard_notes);
        let changed = current
            .keys()
            .chain(notes.keys())
            .filter(|key| current.get(*key) != notes.get(*key))
            .cloned()
            .collect::<BTreeSet<_>>();
        *current = notes;
        changed.into_iter().collect()
    }

    /// Why the shared dashboards do not follow `key`'s delivery settings, if they do not.
    pub fn dashboard_note(&self, key: &str) -> Option<String> {
        lock(&self.dashboard_notes).get(key).cloned()
    }

    /// Why the shared pass last could not apply the exporter's DaemonSet.
    pub fn exporter_failure(&self) -> Option<String> {
        lock(&self.exporter_failure).clone()
    }

    /// Remembers the resolution of `key` (`namespace/name`) for the health loop; returns
    /// whether it differs from the one remembered before.
    pub fn remember(&self, key: &str, resolved: Resolved) -> bool {
        let mut all = self.resolved.write().unwrap_or_else(|p| p.into_inner());
        if all.get(key).is_some_and(|old| **old == resolved) {
            return false;
        }
        all.insert(key.to_string(), Arc::new(resolved));
        true
    }

    /// Forgets the resolution of `key` (its spec no longer resolves): no more health checks.
    /// Returns whether one was remembered.
    pub fn drop_resolution(&self, key: &str) -> bool {
        self.resolved
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
            .is_some()
    }

    /// Every remembered resolution, by key.
    pub fn resolutions(&self) -> Vec<(String, Arc<Resolved>)> {
        let mut all: Vec<(String, Arc<Resolved>)> = self
            .resolved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Records the health verdict of `key`; returns whether it differs from the last one
    /// (beyond the time of the check).
    pub fn record_verdict(&self, key: &str, report: HealthReport) -> bool {
        let mut verdicts = lock(&self.verdicts);
        let changed = verdicts.get(key).is_none_or(|old| {
            old.diagnosis != report.diagnosis
                || old.observation != report.observation
                || old.engine != report.engine
        });
        verdicts.insert(key.to_string(), report);
        changed
    }

    /// The last health verdict of `key`.
    pub fn verdict(&self, key: &str) -> Option<HealthReport> {
        lock(&self.verdicts).get(key).cloned()
    }

    /// The fingerprints recorded for the children of `key`, taken out for a sync (put back
    /// with [`Context::put_applied`]).
    pub fn take_applied(&self, key: &str) -> Applied {
        lock(&self.applied).remove(key).unwrap_or_default()
    }

    /// Stores the fingerprints of the children of `key` after a sync.
    pub fn put_applied(&self, key: &str, applied: Applied) {
        lock(&self.applied).insert(key.to_string(), applied);
    }

    /// Keys of every resource something is remembered about.
    pub fn remembered_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .resolved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .chain(lock(&self.verdicts).keys().cloned())
            .chain(lock(&self.applied).keys().cloned())
            .chain(lock(&self.failures).keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Drops everything remembered about `key` (`namespace/name`), including its
    /// `/metrics` series: the resource is gone.
    pub fn forget(&self, key: &str) {
        self.resolved
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        lock(&self.verdicts).remove(key);
        lock(&self.applied).remove(key);
        lock(&self.failures).remove(key);
        if let Some((namespace, name)) = key.split_once('/') {
            self.metrics.targets_up.remove(&ResourceLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
    }

    /// A snapshot of the discovered facts, with the consumers of monitors as the caches hold
    /// them and the running DCGM exporter as the pod cache sees it now (when pods are cached; in namespaced mode, where the cache covers only the
    /// watched namespaces, only an exporter found there replaces what discovery found
    /// cluster-wide).
    pub fn facts(&self) -> Discovered {
        let mut facts = self.discovered_snapshot();
        (facts.prometheuses, facts.other_consumers) = self.caches.consumers(&facts);
        facts.existing_dcgm_exporter = self.caches.existing_exporter(
            &facts,
            self.config.namespaces.is_empty(),
            &self.config.gpu_exporter,
        );
        facts
    }

    /// A snapshot of the discovered facts as discovery left them (no cache scan).
    pub fn discovered_snapshot(&self) -> Discovered {
        self.discovered
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records one more consecutive failure of `key` and returns the delay before the next
    /// attempt: 5 s doubling up to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 5u64.saturating_mul(1 << (*n - 1).min(6));
        Duration::from_secs(secs.min(300))
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
