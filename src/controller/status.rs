//! The status a reconcile wants to see, computed purely from what it found and did, from
//! the health loop's last verdict and from the shared exporter's readiness (read from the
//! DaemonSet cache). The reconcile is the only status writer; it patches the status only when
//! it differs from the live one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use k8s_openapi::api::apps::v1::DaemonSetStatus;

use super::Error;
use super::apply::Outcome;
use crate::api::{
    ConditionReason as R, ConditionType as T, Conditions, Engine, InferenceMonitoringStatus,
};
use crate::discovery::Selection;
use crate::health::HealthReport;
use crate::render::dcgm::EXPORTER_NAME;
use crate::render::{Child, ChildKind};
use crate::validate::{DcgmPlan, Validated};

/// `GpuExporterReady`'s message until the exporter's DaemonSet has a status.
pub const WAITING_MESSAGE: &str =
    "waiting for the shared DCGM exporter's DaemonSet to report its pods";

/// A condition as (status: `None` for Unknown, reason, message).
pub type ConditionState = (Option<bool>, R, String);

/// `GpuExporterReady` of infmon's exporter in `namespace` from its DaemonSet's status
/// (`numberReady` of `desiredNumberScheduled`) and, when pods are not ready, `why` (e.g.
/// `pod x is CrashLoopBackOff`).
pub fn exporter_condition(
    namespace: &str,
    status: Option<&DaemonSetStatus>,
    why: Option<&str>,
) -> ConditionState {
    let Some(status) = status else {
        return (None, R::Progressing, WAITING_MESSAGE.to_string());
    };
    let desired = status.desired_number_scheduled;
    let ready = status.number_ready;
    if desired == 0 {
        return (
            Some(false),
            R::NoGpuNodes,
            format!(
                "no node matches the DCGM exporter's node selector, so {namespace}/{EXPORTER_NAME} runs no pod; label the GPU nodes or change the operator's gpuExporter.nodeSelector and gpuExporter.tolerations"
            ),
        );
    }
    if ready >= desired {
        return (
            Some(true),
            R::ExporterReady,
            format!("{ready} of {desired} DCGM exporter pods are ready"),
        );
    }
    (
        Some(false),
        R::ExporterNotReady,
        format!(
            "{ready} of {desired} DCGM exporter pods are ready{}; see kubectl -n {namespace} describe daemonset {EXPORTER_NAME}",
            why.map(|w| format!(" ({w})")).unwrap_or_default()
        ),
    )
}

/// What a reconcile learned, the input of [`desired`].
#[derive(Debug)]
pub struct Report<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The resolved resource, or why it could not be resolved.
    pub resolved: Result<&'a Validated, &'a Error>,
    /// The engine in effect (resolved, or detected).
    pub engine: Option<Engine>,
    /// Which Prometheus picks the monitors up (`None` for outputs no Prometheus selects).
    pub selection: Option<&'a Selection>,
    /// The generated children.
    pub children: &'a [Child],
    /// What applying them did (`None` when nothing was applied).
    pub outcome: Option<&'a Outcome>,
    /// The health loop's last verdict on the resource, if it checked it yet.
    pub health: Option<&'a HealthReport>,
    /// `GpuExporterReady` as the caches tell it: the shared exporter's readiness, or the
    /// exporter infmon found running instead (`None`: not known yet).
    pub exporter: Option<&'a ConditionState>,
    /// Why the shared dashboards do not follow this resource's delivery settings, if they
    /// do not (added to `DashboardsReady`'s message).
    pub dashboards_note: Option<&'a str>,
}

/// The status `report` calls for, starting from `current` (so `lastTransitionTime` only
/// moves when a condition flips, and the health loop's `targets` are kept).
pub fn desired(
    current: Option<&InferenceMonitoringStatus>,
    report: &Report<'_>,
    now: &Time,
) -> InferenceMonitoringStatus {
    let mut status = current.cloned().unwrap_or_default();
    let generation = report.generation;
    let conditions = &mut status.conditions;
    let mut set = |t: T, ok: Option<bool>, reason: R, message: String| match ok {
        Some(ok) => conditions.set_condition(t, ok, reason, message, generation, now),
        None => conditions.set_unknown(t, reason, message, generation, now),
    };

    let validated = match report.resolved {
        Ok(v) => v,
        Err(err) => {
            let message = format!("{err}");
            set(
                T::ResourcesApplied,
                Some(false),
                err.condition_reason(),
                message,
            );
            for t in [T::TargetsHealthy, T::DashboardsReady, T::GpuExporterReady] {
                set(
                    t,
                    None,
                    R::Progressing,
                    "waiting for ResourcesApplied to become True".into(),
                );
            }
            status
                .conditions
                .retain(|c| c.type_ != T::SlosMeasurable.as_str());
            summarize(&mut status, generation, now);
            status.observed_generation = generation;
            status.detected_engine = report.engine.map(|e| e.to_string());
            status.selected_by.clear();
            return status;
        }
    };
    let outcome = report.outcome;
    let failures = outcome.map(|o| o.failures.as_slice()).unwrap_or_default();
    let conflicts = outcome.map(|o| o.conflicts.as_slice()).unwrap_or_default();
    let unserved = outcome.map(|o| o.unserved.as_slice()).unwrap_or_default();

    let (applied, reason, message) = if let Some(err) = failures.first() {
        (
            false,
            err.condition_reason(),
            format!("{err}; {}", err.hint()),
        )
    } else if !conflicts.is_empty() {
        (
            false,
            R::Conflict,
            format!(
                "objects with generated names exist but are not managed by infmon, so they were left untouched: {}; delete or rename them and infmon creates its own",
                conflicts.join(", ")
            ),
        )
    } else if !unserved.is_empty() {
        (
            false,
            R::ApiUnavailable,
            format!(
                "{} could not be created because the cluster does not serve their API; install the CRDs (Prometheus Operator, Grafana Operator) or turn the feature off in the spec",
                unserved.join(", ")
            ),
        )
    } else {
        (
            true,
            R::Applied,
            format!("{} generated objects are applied", report.children.len()),
        )
    };
    set(T::ResourcesApplied, Some(applied), reason, message.clone());

    let kind_state = |kinds: &[ChildKind]| -> Option<bool> {
        let mine: Vec<&Child> = report
            .children
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .collect();
        if mine.is_empty() {
            return None;
        }
        let present = outcome.map(|o| o.present.as_slice()).unwrap_or_default();
        Some(
            mine.iter()
                .all(|c| present.contains(&super::apply::reference(c))),
        )
    };
    let state_message = |ok: Option<bool>, what: &str, none: &str| match ok {
        Some(true) => (Some(true), R::Applied, format!("{what} applied")),
        Some(false) => (Some(false), reason, message.clone()),
        None => (None, R::Progressing, none.to_string()),
    };

    let (ok, r, m) = match &validated.dashboards {
        None => (
            Some(true),
            R::Disabled,
            "dashboards are disabled (spec.dashboards.enabled)".into(),
        ),
        Some(_) => state_message(
            kind_state(&[ChildKind::ConfigMap, ChildKind::GrafanaDashboard]),
            "dashboards",
            "no dashboard objects were generated for this engine yet",
        ),
    };
    let m = match report.dashboards_note {
        Some(note) if validated.dashboards.is_some() => format!("{m}; {note}"),
        _ => m,
    };
    set(T::DashboardsReady, ok, r, m);

    let (ok, r, m) = match &validated.dcgm {
        DcgmPlan::Disabled => (
            Some(true),
            R::Disabled,
            "the DCGM exporter is disabled (spec.gpu.dcgmExporter.enabled)".into(),
        ),
        // The exporter found running is named when it is known.
        DcgmPlan::SkippedExisting => report.exporter.cloned().unwrap_or_else(|| (
            Some(true),
            R::ExistingExporter,
            "a DCGM exporter infmon did not deploy already runs in the cluster (GPU Operator, dcgm-exporter chart or cloud-managed), so infmon does not deploy a second one".into(),
        )),
        DcgmPlan::Deploy => report
            .exporter
            .cloned()
            .unwrap_or_else(|| (None, R::Progressing, WAITING_MESSAGE.into())),
    };
    set(T::GpuExporterReady, ok, r, m);

    match report.selection.and_then(|s| s.problem.as_ref()) {
        Some(problem) => set(T::TargetsHealthy, Some(false), R::NotSelected, problem.clone()),
        None if validated.health.url.is_none() => set(
            T::TargetsHealthy,
            None,
            R::HealthCheckDisabled,
            "no Prometheus URL is configured, so scraping is not verified; set spec.prometheus.url or the operator's --prometheus-url".into(),
        ),
        None => match report.health {
            Some(verdict) => {
                verdict.apply_condition(&mut status.conditions, generation);
                let mut targets = verdict.targets_status();
                // The time of the check alone is not worth a write.
                if let Some(old) = &status.targets {
                    let mut unchanged = targets.clone();
                    unchanged.last_checked = old.last_checked.clone();
                    if &unchanged == old {
                        targets = unchanged;
                    }
                }
                status.targets = Some(targets);
            }
            // Not checked by this process yet: a verdict stored earlier stands; a verdict of
            // this writer's own that no longer applies gives way to "waiting".
            None => {
                let stale = status
                    .conditions
                    .condition(T::TargetsHealthy)
                    .is_none_or(|c| {
                        [R::NotSelected.as_str(), R::HealthCheckDisabled.as_str()]
                            .contains(&c.reason.as_str())
                    });
                if stale {
                    let message = match report.selection.and_then(|s| s.note.as_ref()) {
                        Some(note) => format!("waiting for the first health check; {note}"),
                        None => "waiting for the first health check".into(),
                    };
                    status.conditions.set_unknown(
                        T::TargetsHealthy,
                        R::Progressing,
                        message,
                        generation,
                        now,
                    );
                }
            }
        },
    }
    // `SLOsMeasurable` is a health check's finding: with no check, an earlier one would stand
    // unchallenged.
    if !super::dereference::health_checked(validated, report.selection) {
        status
            .conditions
            .retain(|c| c.type_ != T::SlosMeasurable.as_str());
    }

    summarize(&mut status, generation, now);
    status.observed_generation = generation;
    status.detected_engine = report.engine.map(|e| e.to_string());
    status.selected_by = report
        .selection
        .map(|s| s.selected_by.clone())
        .unwrap_or_default();
    let mut children = outcome.map(|o| o.present.clone()).unwrap_or_default();
    children.sort();
    status.children = children;
    status
}

/// `Ready`: True when every other condition is True (an unverified health check counts as
/// True), otherwise the first failing condition's reason and message.
pub fn summarize(status: &mut InferenceMonitoringStatus, generation: Option<i64>, now: &Time) {
    let order = [
        T::ResourcesApplied,
        T::TargetsHealthy,
        T::GpuExporterReady,
        T::DashboardsReady,
    ];
    let blocking = order.iter().find_map(|t| {
        let c = status.conditions.condition(*t)?;
        let fine = c.status == "True"
            || (c.status == "Unknown" && c.reason == R::HealthCheckDisabled.as_str());
        (!fine).then(|| (c.status.clone(), c.reason.clone(), c.message.clone()))
    });
    match blocking {
        None => status.conditions.set_condition(
            T::Ready,
            true,
            R::Healthy,
            "every generated object is applied",
            generation,
            now,
        ),
        Some((state, reason, message)) => {
            let reason = reason_from_str(&reason);
            if state == "Unknown" {
                status
                    .conditions
                    .set_unknown(T::Ready, reason, message, generation, now);
            } else {
                status
                    .conditions
                    .set_condition(T::Ready, false, reason, message, generation, now);
            }
        }
    }
}

fn reason_from_str(text: &str) -> R {
    R::ALL
        .into_iter()
        .find(|r| r.as_str() == text)
        .unwrap_or(R::Progressing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InferenceMonitoring;
    use crate::validate::{ClusterFacts, ResolveError, resolve};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn validated(url: Option<&str>) -> Validated {
        let mut spec = json!({"engine": "vllm", "selector": {}, "dashboards": {"enabled": false}});
        if let Some(url) = url {
            spec["prometheus"] = json!({"url": url});
        }
        let r: InferenceMonitoring = serde_json::from_value(json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
            "metadata": {"name": "llm", "namespace": "ai", "generation": 2}, "spec": spec,
        }))
        .unwrap();
        resolve(&r, &ClusterFacts::assumed_offline()).unwrap()
    }

    fn report<'a>(
        resolved: Result<&'a Validated, &'a Error>,
        outcome: Option<&'a Outcome>,
    ) -> Report<'a> {
        Report {
            generation: Some(2),
            resolved,
            engine: Some(Engine::Vllm),
            selection: None,
            children: &[],
            outcome,
            health: None,
            exporter: None,
            dashboards_note: None,
        }
    }

    fn message_of(status: &InferenceMonitoringStatus, t: T) -> &str {
        &status.conditions.condition(t).unwrap().message
    }

    fn get(status: &InferenceMonitoringStatus, t: T) -> (String, String, Time) {
        let c = status.conditions.condition(t).unwrap();
        (
            c.status.clone(),
            c.reason.clone(),
            c.last_transition_time.clone(),
        )
    }

    #[test]
    fn an_slo_verdict_goes_when_nothing_checks_health_any_more() {
        let mut earlier = InferenceMonitoringStatus::default();
        earlier.conditions.set_condition(
            T::SlosMeasurable,
            true,
            R::BucketsServed,
            "every threshold is a served bucket",
            Some(1),
            &at(5),
        );
        let v = validated(None);
        let outcome = Outcome::default();
        let now = desired(Some(&earlier), &report(Ok(&v), Some(&outcome)), &at(20));
        assert_eq!(get(&now, T::TargetsHealthy).1, "HealthCheckDisabled");
        assert!(now.conditions.condition(T::SlosMeasurable).is_none());

        let err = Error::from(ResolveError::PortWithStaticTargets { port: "x".into() });
        let broken = desired(Some(&earlier), &report(Err(&err), None), &at(20));
        assert!(broken.conditions.condition(T::SlosMeasurable).is_none());
    }

    #[test]
    fn fixing_the_spec_flips_the_conditions_and_their_transition_times() {
        let err = Error::from(ResolveError::PortWithStaticTargets { port: "x".into() });
        let broken = desired(None, &report(Err(&err), None), &at(10));
        assert_eq!(
            get(&broken, T::ResourcesApplied),
            ("False".into(), "InvalidSpec".into(), at(10))
        );
        assert_eq!(
            get(&broken, T::Ready),
            ("False".into(), "InvalidSpec".into(), at(10))
        );
        assert_eq!(broken.observed_generation, Some(2));

        let v = validated(None);
        let outcome = Outcome::default();
        let fixed = desired(Some(&broken), &report(Ok(&v), Some(&outcome)), &at(20));
        assert_eq!(
            get(&fixed, T::ResourcesApplied),
            ("True".into(), "Applied".into(), at(20))
        );
        // Health is not verified without a URL, which does not hold Ready back.
        assert_eq!(get(&fixed, T::TargetsHealthy).1, "HealthCheckDisabled");
        assert_eq!(
            get(&fixed, T::Ready),
            ("True".into(), "Healthy".into(), at(20))
        );
        assert_eq!(get(&fixed, T::DashboardsReady).1, "Disabled");
    }

    #[test]
    fn recomputing_an_unchanged_report_changes_nothing() {
        let v = validated(None);
        let outcome = Outcome::default();
        let first = desired(None, &report(Ok(&v), Some(&outcome)), &at(10));
        let again = desired(Some(&first), &report(Ok(&v), Some(&outcome)), &at(99));
        assert_eq!(first, again);
    }

    #[test]
    fn the_health_loops_verdict_is_kept_and_conflicts_block_ready() {
        let v = validated(Some("http://prometheus:9090"));
        let outcome = Outcome::default();
        let mut current = desired(None, &report(Ok(&v), Some(&outcome)), &at(10));
        assert_eq!(get(&current, T::TargetsHealthy).1, "Progressing");
        current.conditions.set_condition(
            T::TargetsHealthy,
            false,
            R::TargetsDown,
            "1 of 1 targets down",
            Some(2),
            &at(15),
        );
        let conflicted = Outcome {
            conflicts: vec!["Secret ai/llm-scrape-config".into()],
            ..Outcome::default()
        };
        let next = desired(Some(&current), &report(Ok(&v), Some(&conflicted)), &at(20));
        assert_eq!(
            get(&next, T::TargetsHealthy),
            ("False".into(), "TargetsDown".into(), at(15))
        );
        assert_eq!(get(&next, T::ResourcesApplied).1, "Conflict");
        let message = &next
            .conditions
            .condition(T::ResourcesApplied)
            .unwrap()
            .message;
        assert!(
            message.ends_with(
                "left untouched: Secret ai/llm-scrape-config; delete or rename them and infmon creates its own"
            ),
            "{message}"
        );
        assert_eq!(get(&next, T::Ready).1, "Conflict");
    }

    #[test]
    fn an_existing_dcgm_exporter_is_reported_instead_of_deploying_one() {
        let mut v = validated(None);
        v.dcgm = DcgmPlan::SkippedExisting;
        let outcome = Outcome::default();
        let status = desired(None, &report(Ok(&v), Some(&outcome)), &at(10));
        assert_eq!(
            get(&status, T::GpuExporterReady),
            ("True".into(), "ExistingExporter".into(), at(10))
        );
        let message = message_of(&status, T::GpuExporterReady);
        assert!(message.contains("GPU Operator"), "{message}");
    }

    #[test]
    fn the_shared_exporter_readiness_is_waited_for_then_taken_from_the_report() {
        let mut v = validated(None);
        v.dcgm = DcgmPlan::Deploy;
        let outcome = Outcome::default();
        let first = desired(None, &report(Ok(&v), Some(&outcome)), &at(10));
        let gpu = first.conditions.condition(T::GpuExporterReady).unwrap();
        assert_eq!(
            (gpu.status.as_str(), gpu.reason.as_str()),
            ("Unknown", "Progressing")
        );
        assert_eq!(gpu.message, super::WAITING_MESSAGE);
        let counts: DaemonSetStatus = serde_json::from_value(
            json!({"desiredNumberScheduled": 2, "numberReady": 1, "currentNumberScheduled": 2, "numberMisscheduled": 0}),
        )
        .unwrap();
        let state = exporter_condition("gpu", Some(&counts), Some("pod x is CrashLoopBackOff"));
        let with = Report {
            exporter: Some(&state),
            dashboards_note: None,
            ..report(Ok(&v), Some(&outcome))
        };
        let again = desired(Some(&first), &with, &at(30));
        assert_eq!(
            get(&again, T::GpuExporterReady),
            ("False".into(), "ExporterNotReady".into(), at(30))
        );
        let message = message_of(&again, T::GpuExporterReady);
        assert!(
            message.starts_with("1 of 2 DCGM exporter pods are ready (pod x is CrashLoopBackOff)"),
            "{message}"
        );
        assert_eq!(get(&again, T::Ready).1, "ExporterNotReady");
    }

    fn healthy_at(secs: i64) -> HealthReport {
        use crate::health::{Diagnosis, Observation};
        HealthReport {
            key: "ai/llm".into(),
            engine: Engine::Vllm,
            observation: Observation {
                up: 2,
                total: 2,
                ..Observation::default()
            },
            diagnosis: Diagnosis {
                status: crate::health::ConditionStatus::True,
                reason: R::Healthy,
                message: "2 of 2 targets up".into(),
            },
            slos: None,
            checked_at: at(secs),
        }
    }

    #[test]
    fn the_health_verdict_is_written_by_the_reconcile_and_a_recheck_alone_changes_nothing() {
        let v = validated(Some("http://prometheus:9090"));
        let outcome = Outcome::default();
        let verdict = healthy_at(15);
        let with = |health| Report {
            health,
            ..report(Ok(&v), Some(&outcome))
        };
        let first = desired(None, &with(Some(&verdict)), &at(20));
        assert_eq!(
            get(&first, T::TargetsHealthy),
            ("True".into(), "Healthy".into(), at(15))
        );
        assert_eq!(get(&first, T::Ready).1, "Healthy");
        assert_eq!(first.targets.as_ref().unwrap().summary, "2/2");
        let later = healthy_at(45);
        assert_eq!(desired(Some(&first), &with(Some(&later)), &at(50)), first);
        // After a restart, before the first check, the stored verdict stands.
        assert_eq!(desired(Some(&first), &with(None), &at(60)), first);
    }
}
