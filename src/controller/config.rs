//! The operator's configuration, from `infmon run` flags and Helm values: what every reconcile
//! reads and no resource may change.

use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Dashboards show their `cluster` picker (a Grafana data source over several clusters).
    pub multi_cluster_dashboards: bool,
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
            multi_cluster_dashboards: false,
        }
    }
}
