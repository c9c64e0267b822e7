//! Status conditions: their types, stable reasons, and the one rule for updating them
//! (`lastTransitionTime` moves only when the status flips).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types infmon writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    /// Summary of the others: true when every applicable condition is true.
    Ready,
    /// Every generated object was applied.
    ResourcesApplied,
    /// Prometheus scrapes the targets and the engine's core metric is present.
    TargetsHealthy,
    /// Dashboards were written.
    DashboardsReady,
    /// GPU metrics are collected (by our exporter or one that already runs).
    GpuExporterReady,
    /// Every latency objective's threshold is a bucket boundary the engine serves (only on
    /// resources with latency objectives; not part of `Ready`).
    SlosMeasurable,
}

impl ConditionType {
    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::ResourcesApplied => "ResourcesApplied",
            ConditionType::TargetsHealthy => "TargetsHealthy",
            ConditionType::DashboardsReady => "DashboardsReady",
            ConditionType::GpuExporterReady => "GpuExporterReady",
            ConditionType::SlosMeasurable => "SLOsMeasurable",
        }
    }
}

/// Stable CamelCase reasons. Tools (Argo CD health checks, alerts on status) match on these,
/// so they never change once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionReason {
    /// Everything is as desired.
    Healthy,
    /// Objects were applied.
    Applied,
    /// The spec cannot be turned into objects.
    InvalidSpec,
    /// An object with a generated name exists and is not ours.
    Conflict,
    /// The API server refused or failed a request.
    ApiError,
    /// The operator lacks RBAC for a request.
    Forbidden,
    /// No pod matches the selector, or Prometheus discovered no target.
    NoTargets,
    /// Some targets fail to be scraped.
    TargetsDown,
    /// Targets answer 404 on the metrics path.
    MetricsEndpointMissing,
    /// Targets are up but the engine's core metric is absent.
    CoreMetricAbsent,
    /// A target's metrics endpoint is also scraped by another job, so every sum counts it twice.
    DuplicateTargets,
    /// The Prometheus query API could not be reached.
    PrometheusUnreachable,
    /// No Prometheus URL is configured, so health is not checked.
    HealthCheckDisabled,
    /// Work has not finished yet.
    Progressing,
    /// The feature is turned off in the spec.
    Disabled,
    /// An existing DCGM exporter is used instead of deploying one.
    ExistingExporter,
    /// `engine: auto` could not pick one engine.
    EngineUndetermined,
    /// A required API (CRD) is not installed in the cluster.
    ApiUnavailable,
    /// No Prometheus selects the generated monitors.
    NotSelected,
    /// Every pod of infmon's shared DCGM exporter is ready.
    ExporterReady,
    /// Some pods of infmon's shared DCGM exporter are not ready.
    ExporterNotReady,
    /// No node matches the DCGM exporter's node selector (the operator's gpuExporter settings).
    NoGpuNodes,
    /// Some targets are down because their pods are still loading (started recently or not
    /// Ready); not a failure.
    Loading,
    /// Every latency threshold is among the bucket boundaries the engine serves.
    BucketsServed,
    /// A latency threshold is not among the bucket boundaries the engine serves.
    ThresholdNotServed,
    /// No bucket series of a latency objective's histogram was seen yet.
    BucketsNotSeen,
}

impl ConditionReason {
    /// Every reason.
    pub const ALL: [ConditionReason; 26] = [
        ConditionReason::Healthy,
        ConditionReason::Applied,
        ConditionReason::InvalidSpec,
        ConditionReason::Conflict,
        ConditionReason::ApiError,
        ConditionReason::Forbidden,
        ConditionReason::NoTargets,
        ConditionReason::TargetsDown,
        ConditionReason::MetricsEndpointMissing,
        ConditionReason::CoreMetricAbsent,
        ConditionReason::DuplicateTargets,
        ConditionReason::PrometheusUnreachable,
        ConditionReason::HealthCheckDisabled,
        ConditionReason::Progressing,
        ConditionReason::Disabled,
        ConditionReason::ExistingExporter,
        ConditionReason::EngineUndetermined,
        ConditionReason::ApiUnavailable,
        ConditionReason::NotSelected,
        ConditionReason::ExporterReady,
        ConditionReason::ExporterNotReady,
        ConditionReason::NoGpuNodes,
        ConditionReason::Loading,
        ConditionReason::BucketsServed,
        ConditionReason::ThresholdNotServed,
        ConditionReason::BucketsNotSeen,
    ];

    /// The `reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionReason::Healthy => "Healthy",
            ConditionReason::Applied => "Applied",
            ConditionReason::InvalidSpec => "InvalidSpec",
            ConditionReason::Conflict => "Conflict",
            ConditionReason::ApiError => "ApiError",
            ConditionReason::Forbidden => "Forbidden",
            ConditionReason::NoTargets => "NoTargets",
            ConditionReason::TargetsDown => "TargetsDown",
            ConditionReason::MetricsEndpointMissing => "MetricsEndpointMissing",
            ConditionReason::CoreMetricAbsent => "CoreMetricAbsent",
            ConditionReason::DuplicateTargets => "DuplicateTargets",
            ConditionReason::PrometheusUnreachable => "PrometheusUnreachable",
            ConditionReason::HealthCheckDisabled => "HealthCheckDisabled",
            ConditionReason::Progressing => "Progressing",
            ConditionReason::Disabled => "Disabled",
            ConditionReason::ExistingExporter => "ExistingExporter",
            ConditionReason::EngineUndetermined => "EngineUndetermined",
            ConditionReason::ApiUnavailable => "ApiUnavailable",
            ConditionReason::NotSelected => "NotSelected",
            ConditionReason::ExporterReady => "ExporterReady",
            ConditionReason::ExporterNotReady => "ExporterNotReady",
            ConditionReason::NoGpuNodes => "NoGpuNodes",
            ConditionReason::Loading => "Loading",
            ConditionReason::BucketsServed => "BucketsServed",
            ConditionReason::ThresholdNotServed => "ThresholdNotServed",
            ConditionReason::BucketsNotSeen => "BucketsNotSeen",
        }
    }
}

/// Operations on a list of conditions.
pub trait Conditions {
    /// Sets a condition. `lastTransitionTime` changes only when `status` changes, so rewriting
    /// an unchanged condition leaves the list byte-for-byte equal (no status churn).
    #[allow(clippy::too_many_arguments)]
    fn set_condition(
        &mut self,
        type_: ConditionType,
        status: bool,
        reason: ConditionReason,
        message: impl Into<String>,
        observed_generation: Option<i64>,
        now: &Time,
    );
    /// Sets a condition whose status is `Unknown`.
    fn set_unknown(
        &mut self,
        type_: ConditionType,
        reason: ConditionReason,
        message: impl Into<String>,
        observed_generation: Option<i64>,
        now: &Time,
    );
    /// Finds a condition by type.
    fn condition(&self, type_: ConditionType) -> Option<&Condition>;
}

fn upsert(list: &mut Vec<Condition>, new: Condition) {
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let last_transition_time = if existing.status == new.status {
                existing.last_transition_time.clone()
            } else {
                new.last_transition_time.clone()
            };
            *existing = Condition {
                last_transition_time,
                ..new
            };
        }
        None => list.push(new),
    }
    list.sort_by_key(|c| c.type_.clone());
}

impl Conditions for Vec<Condition> {
    fn set_condition(
        &mut self,
        type_: ConditionType,
        status: bool,
        reason: ConditionReason,
        message: impl Into<String>,
        observed_generation: Option<i64>,
        now: &Time,
    ) {
        upsert(
            self,
            Condition {
                type_: type_.as_str().to_string(),
                status: if status { "True" } else { "False" }.to_string(),
                reason: reason.as_str().to_string(),
                message: message.into(),
                observed_generation,
                last_transition_time: now.clone(),
            },
        );
    }

    fn set_unknown(
        &mut self,
        type_: ConditionType,
        reason: ConditionReason,
        message: impl Into<String>,
        observed_generation: Option<i64>,
        now: &Time,
    ) {
        upsert(
            self,
            Condition {
                type_: type_.as_str().to_string(),
                status: "Unknown".to_string(),
                reason: reason.as_str().to_string(),
                message: message.into(),
                observed_generation,
                last_transition_time: now.clone(),
            },
        );
    }

    fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.iter().find(|c| c.type_ == type_.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut list = Vec::new();
        list.set_condition(
            ConditionType::Ready,
            false,
            ConditionReason::Progressing,
            "wait",
            Some(1),
            &at(10),
        );
        list.set_condition(
            ConditionType::Ready,
            false,
            ConditionReason::NoTargets,
            "none",
            Some(2),
            &at(20),
        );
        let c = list.condition(ConditionType::Ready).unwrap();
        assert_eq!(c.last_transition_time, at(10));
        assert_eq!(c.reason, "NoTargets");
        assert_eq!(c.observed_generation, Some(2));

        list.set_condition(
            ConditionType::Ready,
            true,
            ConditionReason::Healthy,
            "ok",
            Some(2),
            &at(30),
        );
        let c = list.condition(ConditionType::Ready).unwrap();
        assert_eq!(c.last_transition_time, at(30));
        assert_eq!(c.status, "True");
    }

    #[test]
    fn conditions_are_kept_sorted_by_type() {
        let mut list = Vec::new();
        list.set_condition(
            ConditionType::TargetsHealthy,
            true,
            ConditionReason::Healthy,
            "",
            None,
            &at(1),
        );
        list.set_unknown(
            ConditionType::DashboardsReady,
            ConditionReason::Progressing,
            "",
            None,
            &at(1),
        );
        let types: Vec<_> = list.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["DashboardsReady", "TargetsHealthy"]);
        assert_eq!(list[0].status, "Unknown");
    }
}
