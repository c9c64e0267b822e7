//! One check cycle for any number of resources. Its cost is fixed: one `up` query, at most
//! one targets request, one core-metric query and one bucket query, each covering every
//! resource (grouped by the `inference_monitoring` label), never a request per resource.
//! Resources with `output: none` add a term to the queries that gives their existing job's
//! series that label.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backend::{BackendError, MetricsBackend, Sample};
use super::diagnose::{
    ENGINE_LABEL, HealthReport, HealthTarget, Observation, RESOURCE_LABEL, Snapshot, diagnose,
    diagnose_slos, diagnose_unreachable,
};

/// The query for every generated inference target's `up` series (GPU exporters, which carry
/// no engine label, are left out).
pub fn up_query() -> String {
    format!("up{{{RESOURCE_LABEL}!=\"\", {ENGINE_LABEL}!=\"\"}}")
}

/// [`up_query`], plus the `up` series of the existing jobs of `output: none` resources among
/// `targets`, labelled as theirs.
pub fn up_query_for(targets: &[HealthTarget]) -> String {
    let mut query = up_query();
    for target in targets {
        if let Some(job) = &target.existing {
            query.push_str(" or ");
            query.push_str(&as_owned(format!("up{{{}}}", job.matchers()), target));
        }
    }
    query
}

/// `expr` with the resource's [`RESOURCE_LABEL`] and [`ENGINE_LABEL`] set, as its generated
/// targets would carry them.
fn as_owned(expr: String, target: &HealthTarget) -> String {
    format!(
        r#"label_replace(label_replace({expr}, "{RESOURCE_LABEL}", {}, "", ""), "{ENGINE_LABEL}", "{}", "", "")"#,
        crate::validate::promql_string(&target.key),
        target.engine.as_str()
    )
}

/// The query that tells, per resource and instance, which core metrics are present; `None`
/// when no resource has a core metric. It grows with the number of distinct engines, not
/// resources.
pub fn core_metric_query(targets: &[HealthTarget]) -> Option<String> {
    grouped_count(targets, "instance, __name__", |t| {
        t.core_metric.as_deref().into_iter().collect()
    })
}

/// The query that lists, per resource, the bucket boundaries served by the histograms that
/// latency objectives read; `None` when no resource has a latency objective. Like the
/// core-metric query it grows with the number of distinct histograms, not resources.
pub fn bucket_query(targets: &[HealthTarget]) -> Option<String> {
    grouped_count(targets, "__name__, le", |t| {
        t.slo_buckets.iter().map(|b| b.series.as_str()).collect()
    })
}

/// `count by (<RESOURCE_LABEL>, <by>)` over the series `names` gives for each resource, in one
/// query for all of them, plus a term per `output: none` resource over its existing job's
/// series, labelled as its own; `None` when no resource names any series.
fn grouped_count<'a>(
    targets: &'a [HealthTarget],
    by: &str,
    names: impl Fn(&'a HealthTarget) -> BTreeSet<&'a str>,
) -> Option<String> {
    let all: BTreeSet<&str> = targets.iter().flat_map(&names).collect();
    if all.is_empty() {
        return None;
    }
    let mut query = format!(
        "count by ({RESOURCE_LABEL}, {by}) ({{__name__=~\"{}\", {RESOURCE_LABEL}!=\"\"}})",
        all.into_iter().collect::<Vec<_>>().join("|")
    );
    for target in targets {
        let own = names(target);
        let (Some(job), false) = (&target.existing, own.is_empty()) else {
            continue;
        };
        let matcher = match own.len() {
            1 => format!("=\"{}\"", own.into_iter().collect::<Vec<_>>()[0]),
            _ => format!("=~\"{}\"", own.into_iter().collect::<Vec<_>>().join("|")),
        };
        query.push_str(" or ");
        query.push_str(&as_owned(
            format!(
                "count by ({by}) ({{__name__{matcher}, {}}})",
                job.matchers()
            ),
            target,
        ));
    }
    Some(query)
}

/// Asks the backend once for everything the check needs (the requests run concurrently).
pub async fn fetch_snapshot(
    backend: &dyn MetricsBackend,
    targets: &[HealthTarget],
) -> Result<Snapshot, BackendError> {
    let up_query = up_query_for(targets);
    let core_query = core_metric_query(targets);
    let bucket_query = bucket_query(targets);
    let (up, active, core, buckets) = futures::try_join!(
        backend.query(&up_query),
        backend.targets(),
        query_if_any(backend, core_query.as_deref()),
        query_if_any(backend, bucket_query.as_deref()),
    )?;
    Ok(Snapshot::new(up, active, core).with_buckets(buckets))
}

/// The answer to `query`, or nothing without one.
async fn query_if_any(
    backend: &dyn MetricsBackend,
    query: Option<&str>,
) -> Result<Vec<Sample>, BackendError> {
    match query {
        Some(query) => backend.query(query).await,
        None => Ok(Vec::new()),
    }
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
