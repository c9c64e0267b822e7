//! Cluster-shared objects: the DCGM exporter and the shared dashboards, computed from the
//! current set of resources as a whole (not from events), applied under the shared label and
//! pruned by it when no resource wants them any more, which also removes what a resource
//! deleted while the operator was down left behind. It writes no status: the exporter's
//! readiness is read from the DaemonSet cache by each user's reconcile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Error;
use super::apply::{self, Outcome, Owner};
use super::context::Context;
use super::reconcile::facts_for;
use crate::api::{Engine, InferenceMonitoring};
use crate::dashboards::shared_settings_notes;
use crate::discovery::{self, SelectedKind, selectors};
use crate::model::{SHARED_LABEL, shared_selector};
use crate::render::{ChildKind, render_shared};
use crate::validate::{DcgmPlan, Validated, resolve};

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
    /// Why infmon's exporter could not be applied, when it could not.
    pub exporter_failure: Option<String>,
    /// How many resources were asked to reconcile because that changed.
    pub reconciles_asked: usize,
}

/// One pass over `resources` (the current set, from the controller's caches): render the
/// shared objects, apply them and prune the rest. It writes no status: each resource's
/// reconcile writes `GpuExporterReady` from the DaemonSet cache; when the exporter's DaemonSet
/// could or could not be applied, unlike in the last pass, its users are reconciled to say so,
/// and so are resources whose dashboard delivery settings the shared copies stopped or
/// started ignoring.
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
    let exporter_failure = children
        .iter()
        .find(|c| c.kind == ChildKind::DaemonSet)
        .filter(|d| !outcome.present.contains(&apply::reference(d)))
        .and_then(|_| outcome.failures.first())
        .map(|err| {
            format!(
                "the shared DCGM exporter could not be applied: {err}; {}",
                err.hint()
            )
        });
    let mut pass = Pass {
        outcome,
        exporter_failure: exporter_failure.clone(),
        reconciles_asked: 0,
    };
    // Resources whose dashboard delivery settings the shared copies do not follow are told so
    // in their `DashboardsReady` message, by their own reconcile.
    for key in ctx.set_dashboard_notes(shared_settings_notes(&validated)) {
        if let Some((namespace, name)) = key.split_once('/') {
            ctx.reconcile_soon(namespace, name);
            pass.reconciles_asked += 1;
        }
    }
    if ctx.set_exporter_failure(exporter_failure) {
        for v in validated.iter().filter(|v| v.dcgm == DcgmPlan::Deploy) {
            ctx.reconcile_soon(&v.namespace, &v.name);
            pass.reconciles_asked += 1;
        }
    }
    Ok(pass)
}

/// Runs [`sync`] once `ready` resolves (the controller's caches hold every resource: before
/// that an empty list would prune everything), then whenever a reconcile or the cleanup of a
/// deleted resource changed what resources want (`ctx.shared_changed`) and every `tick`, over the resources `list` returns, until the task is dropped.
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
