//! Target health: does Prometheus scrape each resource's targets, and do they export the
//! engine's core metric? [`check_all`] asks a [`MetricsBackend`] (the real one is
//! [`PrometheusBackend`]) a fixed number of questions per cycle, and [`diagnose`] turns the
//! answers into the `TargetsHealthy` condition: `Healthy`, `NoTargets`, `TargetsDown`,
//! `MetricsEndpointMissing`, `CoreMetricAbsent`, `Loading` (targets of pods still loading
//! their model are down), or `PrometheusUnreachable`; and, for resources with latency
//! objectives, the `SLOsMeasurable` condition ([`diagnose_slos`]): is each threshold among
//! the bucket boundaries the engine really serves?

mod backend;
mod check;
mod diagnose;
mod prometheus;

pub use backend::{BackendError, MetricsBackend, Sample, ScrapeHealth, Target};
pub use check::{
    bucket_query, check_all, core_metric_query, fetch_snapshot, up_query, up_query_for,
};
pub use diagnose::{
    ConditionStatus, Diagnosis, Discovery, DuplicateTarget, ENGINE_LABEL, FailingTarget,
    HealthReport, HealthTarget, LOADING_GRACE, Observation, PodState, RESOURCE_LABEL, SloBucket,
    Snapshot, diagnose, diagnose_slos, diagnose_unreachable, is_loading,
};
pub use prometheus::{
    BasicCredentials, ClientCertificate, Credentials, DEFAULT_TIMEOUT, PrometheusBackend, Secret,
};
