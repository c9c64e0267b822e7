//! One check cycle for any number of resources. Its cost is fixed: one `up` query, at most
//! one targets request, one core-metric query and one bucket query, each covering every
//! resource (grouped by the `inference_monitoring` label), never a request per resource.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backend::{BackendError, MetricsBackend};
use super::diagnose::{
    ENGINE_LABEL, HealthReport, HealthTarget, Observation, RESOURCE_LABEL, Snapshot, diagnose,
    diagnose_slos, diagnose_unreachable,
};

/// The query for every generated inference target's `up` series (GPU exporters, which carry
/// no engine label, are left out).
pub fn up_query() -> String {
    format!("up{{{RESOURCE_LABEL}!=\"\", {ENGINE_LABEL}!=\"\"}}")
}

/// The query that tells, per resource and instance, which core metrics are present; `None`
/// when no resource has a core metric. It grows with the number of distinct engines, not
/// resources.
pub fn core_metric_query(targets: &[HealthTarget]) -> Option<String> {
    let names: BTreeSet<&str> = targets
        .iter()
        .filter_map(|t| t.core_metric.as_deref())
        .collect();
    if names.is_empty() {
        return None;
    }
    let alternatives: Vec<&str> = names.into_iter().collect();
    Some(format!(
        "count by ({RESOURCE_LABEL}, instance, __name__) ({{__name__=~\"{}\", {RESOURCE_LABEL}!=\"\"}})",
        alternatives.join("|")
    ))
}

/// The query that lists, per resource, the bucket boundaries served by the histograms that
/// latency objectives read; `None` when no resource has a latency objective. Like the
/// core-metric query it grows with the number of distinct histograms, not resources.
pub fn bucket_query(targets: &[HealthTarget]) -> Option<String> {
    let names: BTreeSet<&str> = targets
        .iter()
        .flat_map(|t| t.slo_buckets.iter().map(|b| b.series.as_str()))
        .collect();
    if names.is_empty() {
        return None;
    }
    let alternatives: Vec<&str> = names.into_iter().collect();
    Some(format!(
        "count by ({RESOURCE_LABEL}, __name__, le) ({{__name__=~\"{}\", {RESOURCE_LABEL}!=\"\"}})",
        alternatives.join("|")
    ))
}

/// Asks the backend once for everything the check needs (the requests run concurrently).
pub async fn fetch_snapshot(
    backend: &dyn MetricsBackend,
    targets: &[HealthTarget],
) -> Result<Snapshot, BackendError> {
    let up_query = up_query();
    let core_query = core_metric_query(targets);
    let core = async {
        match &core_query {
            Some(query) => backend.query(query).await,
            None => Ok(Vec::new()),
        }
    };
    let bucket_query = bucket_query(targets);
    let buckets = async {
        match &bucket_query {
            Some(query) => backend.query(query).await,
            None => Ok(Vec::new()),
        }
    };
    let (up, active, core, buckets) =
        futures::try_join!(backend.query(&up_query), backend.targets(), core, buckets)?;
    Ok(Snapshot::new(up, active, core).with_buckets(buckets))
}

/// Checks every resource with one fixed set of requests; `checked_at` is the caller's
/// clock. When the backend cannot be asked, every report says `PrometheusUnreachable`
/// (status `Unknown`).
pub async fn check_all(
    backend: &dyn MetricsBackend,
    targets: &[HealthTarget],
    checked_at: Time,
) -> Vec<HealthReport> {
    if targets.is_empty() {
        return Vec::new();
    }
    let snapshot = fetch_snapshot(backend, targets).await;
    targets
        .iter()
        .map(|target| {
            let (observation, diagnosis, slos) = match &snapshot {
                Ok(snapshot) => {
                    let observation = snapshot.observe(target);
                    let diagnosis = diagnose(target, &observation);
                    let slos = diagnose_slos(target, &observation);
                    (observation, diagnosis, slos)
                }
                Err(error) => {
                    let unreachable = diagnose_unreachable(error);
                    let slos = (!target.slo_buckets.is_empty()).then(|| unreachable.clone());
                    (Observation::default(), unreachable, slos)
                }
            };
            HealthReport {
                key: target.key.clone(),
                engine: target.engine,
                observation,
                diagnosis,
                slos,
                checked_at: checked_at.clone(),
            }
        })
        .collect()
}
