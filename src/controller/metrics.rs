//! The operator's own metrics, served on `/metrics` in the Prometheus text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// [`super::Error::metric_label`].
    pub error: String,
}

/// Labels of the per-kind child counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Child kind, e.g. `PodMonitor`.
    pub kind: String,
}

/// Labels identifying one InferenceMonitoring.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Every metric the operator exports, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile failures by error label.
    pub failures: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Children written (created or updated) by kind.
    pub children_applied: Family<KindLabels, Counter>,
    /// Children deleted because no resource wants them any more, by kind.
    pub children_pruned: Family<KindLabels, Counter>,
    /// Scrape targets up per resource, from the last health check.
    pub targets_up: Family<ResourceLabels, Gauge>,
    /// Watched resources skipped because they could not be read.
    pub malformed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("infmon");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let children_applied = Family::<KindLabels, Counter>::default();
        let children_pruned = Family::<KindLabels, Counter>::default();
        let targets_up = Family::<ResourceLabels, Gauge>::default();
        let malformed = Counter::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconcile failures by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "children_applied",
            "Generated objects created or updated, by kind",
            children_applied.clone(),
        );
        registry.register(
            "children_pruned",
            "Generated objects deleted because their resource no longer wants them, by kind",
            children_pruned.clone(),
        );
        registry.register(
            "health_targets_up",
            "Scrape targets up per InferenceMonitoring at the last health check",
            targets_up.clone(),
        );
        registry.register(
            "malformed_resources",
            "InferenceMonitorings skipped because they could not be read (see the Warning Event)",
            malformed.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            children_applied,
            children_pruned,
            targets_up,
            malformed,
        }
    }
}

impl Metrics {
    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts a failure.
    pub fn failure(&self, label: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: label.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_labels() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.failure("forbidden");
        m.children_applied
            .get_or_create(&KindLabels {
                kind: "PodMonitor".into(),
            })
            .inc();
        let text = m.encode();
        assert!(text.contains("infmon_reconciles_total 1"), "{text}");
        assert!(
            text.contains("infmon_reconcile_failures_total{error=\"forbidden\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("infmon_children_applied_total{kind=\"PodMonitor\"} 1"),
            "{text}"
        );
        assert!(text.contains("infmon_reconcile_duration_seconds_bucket"));
    }
}
