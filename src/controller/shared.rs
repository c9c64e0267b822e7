//! Cluster-shared objects: the DCGM exporter and the shared dashboards, computed from the
//! current set of resources as a whole (not from events), applied under the shared label and
//! pruned by it when no resource wants them any more, which also removes what a resource
//! deleted while the operator was down left behind. The exporter's readiness, read from its
//! DaemonSet, becomes `GpuExporterReady` of every resource that uses it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::{info, warn};

use super::Error;
use super::apply::{self, Outcome, Owner};
use super::context::Context;
use super::reconcile::facts_for;
use super::status::summarize;
use crate::api::{
    ConditionReason as R, ConditionType as T, Conditions, Engine, InferenceMonitoring,
    InferenceMonitoringStatus,
};
use crate::discovery::{self, SelectedKind, selectors};
use crate::model::{SHARED_LABEL, shared_labels, shared_selector};
use crate::render::dcgm::{DCGM_COMPONENT, EXPORTER_NAME};
use crate::render::{ChildKind, render_shared};
use crate::validate::{DcgmPlan, Validated, resolve};

pub use super::status::{EXPORTER_REASONS, WAITING_MESSAGE};

/// A condition as (status: `None` for Unknown, reason, message).
pub type ConditionState = (Option<bool>, R, String);

/// `GpuExporterReady` from the exporter DaemonSet's status (`numberReady` of
/// `desiredNumberScheduled`) and, when pods are not ready, why: the first waiting container's
/// reason (e.g. `CrashLoopBackOff`) among `pods`.
pub fn exporter_condition(
    namespace: &str,
    status: Option<&DaemonSetStatus>,
    pods: &[Pod],
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
    let why = pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            Some(format!(
                "pod {} is {reason}{}",
                pod.name_any(),
                waiting
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ))
        })
    });
    (
        Some(false),
        R::ExporterNotReady,
        format!(
            "{ready} of {desired} DCGM exporter pods are ready{}; see kubectl -n {namespace} describe daemonset {EXPORTER_NAME}",
            why.map(|w| format!(" ({w})")).unwrap_or_default()
        ),
    )
}

/// `current` with `GpuExporterReady` set to `state` and `Ready` recomputed.
pub fn with_exporter_condition(
    current: &InferenceMonitoringStatus,
    state: &ConditionState,
    generation: Option<i64>,
    now: &Time,
) -> InferenceMonitoringStatus {
    let mut status = current.clone();
    let (ok, reason, message) = state;
    match ok {
        Some(ok) => status.conditions.set_condition(
            T::GpuExporterReady,
            *ok,
            *reason,
            message.clone(),
            generation,
            now,
        ),
        None => status.conditions.set_unknown(
            T::GpuExporterReady,
            *reason,
            message.clone(),
            generation,
            now,
        ),
    }
    summarize(&mut status, generation, now);
    status
}

/// The resources as the shared objects see them: every one not being deleted, resolved with
/// the discovered facts and the engine its status recorded (a resource not yet reconciled
/// with `engine: auto` wants no engine dashboard yet). Resources that do not resolve want
/// nothing.
fn resolved(ctx: &Context, resources: &[Arc<InferenceMonitoring>]) -> Vec<Validated> {
    let discovered = ctx.facts();
    let namespace = &ctx.config.gpu_exporter.namespace;
    let name_labels = BTreeMap::from([(
        discovery::NAMESPACE_NAME_LABEL.to_string(),
        namespace.clone(),
    )]);
    let mut labels = selectors::select(
        &discovered.prometheuses,
        SelectedKind::ServiceMonitor,
        false,
        namespace,
        &name_labels,
        None,
    )
    .required_labels;
    if labels.is_empty() {
        labels = ctx.config.default_monitor_labels.clone();
    }
    resources
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter_map(|resource| {
            let detected = resource
                .status
                .as_ref()
                .and_then(|s| s.detected_engine.as_deref())
                .and_then(|e| e.parse::<Engine>().ok());
            let mut facts = facts_for(&discovered, ctx, detected);
            facts.required_monitor_labels = labels.clone();
            resolve(resource, &facts).ok()
        })
        .collect()
}

/// Where shared objects are looked for: everywhere, or (namespaced mode) the watched
/// namespaces and the exporter's.
fn scope(ctx: &Context) -> Vec<String> {
    let mut scope = ctx.config.namespaces.clone();
    let exporter = &ctx.config.gpu_exporter.namespace;
    if !scope.is_empty() && !scope.contains(exporter) {
        scope.push(exporter.clone());
    }
    scope
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Applying and pruning the shared objects.
    pub outcome: Outcome,
    /// The exporter's readiness, when infmon runs one.
    pub exporter: Option<ConditionState>,
    /// How many statuses were written.
    pub statuses_written: usize,
}

/// One pass over `resources` (the current set, from the controller's caches): render the
/// shared objects, apply them and prune the rest, read the exporter's readiness and write it
/// into the users' `GpuExporterReady`.
pub async fn sync(ctx: &Context, resources: &[Arc<InferenceMonitoring>]) -> Result<Pass, Error> {
    let discovered = ctx.facts();
    let validated = resolved(ctx, resources);
    let children = render_shared(&validated, &ctx.config.gpu_exporter)?;
    let nobody = Owner {
        namespace: String::new(),
        name: String::new(),
        reference: None,
    };
    let outcome = apply::sync_selected(
        &ctx.client,
        (&scope(ctx), Some(&ctx.config.gpu_exporter.namespace)),
        (&shared_selector(), "shared by every resource"),
        &nobody,
        &children,
        &discovered.served,
        // The cache covers the exporter's namespace only when it covers the cluster.
        ctx.config
            .namespaces
            .is_empty()
            .then(|| {
                ctx.caches
                    .labelled(&discovered.served, SHARED_LABEL, "true")
            })
            .flatten(),
    )
    .await;
    let mut pass = Pass {
        outcome,
        ..Pass::default()
    };
    let (state, plan) = if let Some(found) = &discovered.existing_dcgm_exporter {
        let state = (
            Some(true),
            R::ExistingExporter,
            format!("{found} already runs, so infmon does not deploy a second one"),
        );
        (state, DcgmPlan::SkippedExisting)
    } else if let Some(daemon_set) = children.iter().find(|c| c.kind == ChildKind::DaemonSet) {
        let applied = pass.outcome.present.contains(&apply::reference(daemon_set));
        let state = match pass.outcome.failures.first() {
            Some(err) if !applied => (
                Some(false),
                R::ApiError,
                format!(
                    "the shared DCGM exporter could not be applied: {err}; {}",
                    err.hint()
                ),
            ),
            _ => exporter_readiness(ctx).await?,
        };
        pass.exporter = Some(state.clone());
        (state, DcgmPlan::Deploy)
    } else {
        return Ok(pass);
    };
    let now = (ctx.clock)();
    for resource in resources {
        let Some(v) = validated.iter().find(|v| {
            v.namespace == resource.namespace().unwrap_or_default() && v.name == resource.name_any()
        }) else {
            continue;
        };
        if v.dcgm != plan {
            continue;
        }
        let current = resource.status.clone().unwrap_or_default();
        let desired = with_exporter_condition(&current, &state, resource.metadata.generation, &now);
        if desired == current {
            continue;
        }
        match super::reconcile::apply_status(&ctx.client, &v.namespace, &v.name, &desired).await {
            Ok(_) => pass.statuses_written += 1,
            Err(err) => {
                warn!(resource = %v.key(), error = %err, "cannot write GpuExporterReady")
            }
        }
    }
    Ok(pass)
}

/// `GpuExporterReady` of infmon's exporter, from its DaemonSet (and, when some pods are not
/// ready, its pods).
async fn exporter_readiness(ctx: &Context) -> Result<ConditionState, Error> {
    let namespace = ctx.config.gpu_exporter.namespace.clone();
    let daemon_sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let daemon_set = daemon_sets
        .get_opt(EXPORTER_NAME)
        .await
        .map_err(|e| Error::kube(format!("read DaemonSet {namespace}/{EXPORTER_NAME}"), e))?;
    let status = daemon_set.and_then(|d| d.status);
    let not_ready = status
        .as_ref()
        .is_some_and(|s| s.number_ready < s.desired_number_scheduled);
    let pods = if not_ready {
        let selector = shared_labels(DCGM_COMPONENT)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        api.list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::kube(format!("list DCGM exporter pods in {namespace}"), e))?
            .items
    } else {
        Vec::new()
    };
    Ok(exporter_condition(&namespace, status.as_ref(), &pods))
}

/// Runs [`sync`] once `ready` resolves (the controller's caches hold every resource: before
/// that an empty list would prune everything), then after every reconcile (`ctx.shared_changed`)
/// and every `tick`, over the resources `list` returns, until the task is dropped.
pub async fn run(
    ctx: Arc<Context>,
    tick: Duration,
    ready: impl Future<Output = ()>,
    list: impl Fn() -> Vec<Arc<InferenceMonitoring>> + Send,
) {
    ready.await;
    loop {
        match sync(&ctx, &list()).await {
            Ok(pass) => {
                for failure in &pass.outcome.failures {
                    warn!(error = %failure, "cannot apply a shared object");
                }
                if !pass.outcome.conflicts.is_empty() {
                    warn!(
                        conflicts = %pass.outcome.conflicts.join(", "),
                        "shared objects left untouched: objects of the same name exist that infmon does not manage"
                    );
                }
                let changed = pass.outcome.created.len() + pass.outcome.updated.len();
                if changed + pass.outcome.pruned.len() > 0 {
                    info!(
                        applied = changed,
                        pruned = pass.outcome.pruned.len(),
                        "shared objects synced"
                    );
                }
            }
            Err(err) => warn!(error = %err, "cannot sync the shared objects"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = ctx.shared_changed.notified() => {
                // Let a burst of reconciles settle into one pass.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
