//! The state every reconcile shares: the client, the Event recorder, the metrics, the
//! operator's configuration, the discovered cluster facts and the clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::Notify;

use super::metrics::Metrics;
use crate::discovery::Discovered;
use crate::validate::GpuExporterSettings;

/// Operator-wide settings (from `infmon run` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Prometheus URL used when a resource names none.
    pub default_prometheus_url: Option<String>,
    /// Credentials sent to `default_prometheus_url` (and to no other URL) when a resource
    /// brings none.
    pub default_credentials: crate::health::Credentials,
    /// Monitor labels used when a resource sets none and no Prometheus selector asks for any.
    pub default_monitor_labels: BTreeMap<String, String>,
    /// How often a healthy resource is reconciled again (reads only unless something drifted).
    pub resync: Duration,
    /// How often the health loop asks Prometheus (a resource's longer interval wins).
    pub health_interval: Duration,
    /// Namespaces the operator may read and write in; empty: the whole cluster.
    pub namespaces: Vec<String>,
    /// The shared DCGM exporter's settings.
    pub gpu_exporter: GpuExporterSettings,
    /// What resources may ask for (Prometheus URLs, dashboard namespaces).
    pub policy: crate::validate::Policy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_prometheus_url: None,
            default_credentials: crate::health::Credentials::default(),
            default_monitor_labels: BTreeMap::new(),
            resync: Duration::from_secs(300),
            health_interval: Duration::from_secs(30),
            namespaces: Vec::new(),
            gpu_exporter: GpuExporterSettings::default(),
            policy: crate::validate::Policy::default(),
        }
    }
}

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
    /// Woken after every reconcile, so the shared objects follow the set of resources.
    pub shared_changed: Arc<Notify>,
    failures: Mutex<HashMap<String, u32>>,
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
            shared_changed: Arc::new(Notify::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// A snapshot of the discovered facts.
    pub fn facts(&self) -> Discovered {
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
