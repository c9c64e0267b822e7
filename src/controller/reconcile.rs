//! One pass over one InferenceMonitoring: dereference (every read, from the caches) →
//! resolve once → render → plan and apply → status and Events. Deletion runs the cleanup
//! behind the finalizer and forgets the resource. A resource the API server stores but this
//! version cannot read is reported and skipped.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizing, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::Error;
use super::apply::{self, FIELD_MANAGER, Outcome, Owner};
use super::context::Context;
use super::dereference::{dereference, resolve_once};
use super::metrics::KindLabels;
use super::status::{self, ConditionState, Report};
use crate::api::{ConditionReason as R, Engine, InferenceMonitoring, InferenceMonitoringStatus};
use crate::discovery::Discovered;
use crate::render::{ChildKind, render_all};
use crate::validate::{ClusterFacts, DcgmPlan, Validated};

/// The finalizer that guards cleanup of children outside the resource's namespace.
pub const FINALIZER: &str = "inferencemonitorings.monitoring.inference.dev/cleanup";

/// What the controller watches: a resource, or one that failed to deserialize.
pub type Watched = DeserializeGuard<InferenceMonitoring>;

fn key(obj: &InferenceMonitoring) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// `namespace/name` of a watched resource, readable or not.
pub fn watched_key(obj: &Watched) -> String {
    let meta = match &obj.0 {
        Ok(r) => &r.metadata,
        Err(invalid) => &invalid.metadata,
    };
    format!(
        "{}/{}",
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default()
    )
}

/// Reconciles one watched resource (the `Controller`'s reconcile function).
pub async fn reconcile(obj: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    let resource = match &obj.0 {
        Ok(resource) => Arc::new(resource.clone()),
        Err(invalid) => return Ok(skip_malformed(invalid, &ctx).await),
    };
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let span = info_span!("reconcile", resource = %format!("{namespace}/{name}"));
    async move {
        let start = Instant::now();
        ctx.metrics.reconciles.inc();
        let api: Api<InferenceMonitoring> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = finalizer(&api, FINALIZER, resource.clone(), |event| async {
            match event {
                Finalizing::Apply(obj) => apply(&obj, &ctx).await,
                Finalizing::Cleanup(obj) => cleanup(&obj, &ctx).await,
            }
        })
        .await
        .map_err(Error::from);
        ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
        if result.is_ok() {
            ctx.succeeded(&key(&resource));
        }
        result
    }
    .instrument(span)
    .await
}

/// A stored resource that does not deserialize (written before the schema tightened, say):
/// logged, counted, reported as a Warning Event, and skipped until it changes.
async fn skip_malformed(invalid: &InvalidObject, ctx: &Context) -> Action {
    let meta = &invalid.metadata;
    let resource = format!(
        "{}/{}",
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default()
    );
    warn!(resource = %resource, error = %invalid.error, "skipping a resource infmon cannot read");
    ctx.metrics.malformed.inc();
    let reference = ObjectReference {
        api_version: Some(InferenceMonitoring::api_version(&()).to_string()),
        kind: Some(InferenceMonitoring::kind(&()).to_string()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".into(),
        note: Some(truncate(
            format!(
                "infmon cannot read this resource and skips it: {}; fix it with kubectl edit or apply it again",
                invalid.error
            ),
            1024,
        )),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        warn!(error = %err, "cannot publish an Event");
    }
    Action::await_change()
}

/// What to do after a failed reconcile: count it, then back off (transient) or wait for a
/// spec change (permanent, so an invalid spec cannot hot-loop).
pub fn error_policy(obj: Arc<Watched>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(err.metric_label());
    let key = watched_key(&obj);
    if err.is_transient() {
        let delay = ctx.backoff(&key);
        warn!(resource = %key, error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
        Action::requeue(delay)
    } else {
        warn!(resource = %key, error = %err, "reconcile failed; waiting for a spec change");
        Action::await_change()
    }
}

/// The cluster facts `resolve` takes, from the discovered ones (for the shared objects, which
/// resolve every resource with the engine its status recorded).
pub(super) fn facts_for(
    discovered: &Discovered,
    ctx: &Context,
    detected: Option<Engine>,
) -> ClusterFacts {
    ClusterFacts {
        prometheus_operator: discovered.serves(ChildKind::PodMonitor),
        scrape_config_api: discovered.serves(ChildKind::ScrapeConfig),
        grafana_operator: discovered.serves(ChildKind::GrafanaDashboard),
        detected_engine: detected,
        existing_dcgm_exporter: discovered.existing_dcgm_exporter.is_some(),
        required_monitor_labels: std::collections::BTreeMap::new(),
        default_prometheus_url: ctx.config.default_prometheus_url.clone(),
        policy: ctx.config.policy.clone(),
        multi_cluster_dashboards: ctx.config.multi_cluster_dashboards,
    }
}

fn owner(obj: &InferenceMonitoring) -> Owner {
    Owner {
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        reference: obj.controller_owner_ref(&()).map(|mut r| {
            r.block_owner_deletion = Some(true);
            r
        }),
    }
}

async fn cleanup(obj: &InferenceMonitoring, ctx: &Context) -> Result<Action, Error> {
    let owner = owner(obj);
    let owned = ctx.caches.owned_by(&owner.namespace, &owner.name);
    let deleted = apply::cleanup(&ctx.client, &owner, &owned).await?;
    for (kind, _) in &deleted {
        ctx.metrics
            .children_pruned
            .get_or_create(&KindLabels {
                kind: kind.kind().to_string(),
            })
            .inc();
    }
    info!(
        deleted = deleted.len(),
        "cleaned up children outside the namespace"
    );
    ctx.forget(&key(obj));
    ctx.shared_changed.notify_one();
    Ok(Action::await_change())
}

async fn apply(obj: &InferenceMonitoring, ctx: &Context) -> Result<Action, Error> {
    let key = key(obj);
    let found = dereference(obj, &ctx.caches, &ctx.discovered_snapshot(), &ctx.config);
    let detected = found.detected.clone().and_then(Result::ok);
    let resolved = match resolve_once(obj, &found, &ctx.config) {
        Ok(resolved) => resolved,
        Err(err) => {
            forget_resolution(ctx, &key);
            return wait_for_spec_change(obj, ctx, &err.into(), detected).await;
        }
    };
    let validated = &resolved.validated;
    // The resource's own children. (Objects shared by every resource that wants them are
    // computed from all cached resources, not here.)
    let children = match render_all(validated) {
        Ok(children) => children,
        Err(err) => {
            forget_resolution(ctx, &key);
            let err = Error::from(err);
            return wait_for_spec_change(obj, ctx, &err, detected).await;
        }
    };
    let owner = owner(obj);
    let me = owner.label_key();
    let mut live = ctx.caches.owned_by(&owner.namespace, &owner.name);
    live.extend(
        children
            .iter()
            .filter_map(|c| ctx.caches.child(c.kind, &c.namespace, &c.name))
            .filter(|l| l.owner.as_deref() != Some(me.as_str())),
    );
    let mut applied = ctx.take_applied(&key);
    let plan = apply::plan(&children, &owner, &found.served, &live, &applied);
    let outcome = apply::execute(&ctx.client, &owner, &children, &plan, &mut applied).await;
    ctx.put_applied(&key, applied);
    count(ctx, &outcome);
    let health = ctx.verdict(&key);
    let exporter = exporter_state(ctx, validated);
    let dashboards_note = ctx.dashboard_note(&key);
    let report = Report {
        generation: obj.metadata.generation,
        resolved: Ok(validated),
        engine: Some(validated.engine),
        selection: resolved.selection.as_ref(),
        children: &children,
        outcome: Some(&outcome),
        health: health.as_ref(),
        exporter: exporter.as_ref(),
        dashboards_note: dashboards_note.as_deref(),
    };
    let written = write_status(obj, ctx, &report).await?;
    events(ctx, obj, &outcome).await;
    // The shared objects follow what the resources want (their resolutions) and the engines
    // their statuses record: a pass that changed neither leaves them alone.
    if ctx.remember(&key, resolved) || written {
        ctx.shared_changed.notify_one();
    }
    let Outcome { failures, .. } = outcome;
    match failures.into_iter().next() {
        Some(err) => Err(err),
        None => Ok(Action::requeue(ctx.config.resync)),
    }
}

/// `GpuExporterReady` from memory: the exporter infmon found running instead of its own, or
/// its own exporter's readiness from the DaemonSet and pod caches (or why the shared pass
/// could not apply it). `None` when the resource wants no exporter or nothing is known yet.
fn exporter_state(ctx: &Context, validated: &Validated) -> Option<ConditionState> {
    match validated.dcgm {
        DcgmPlan::Disabled => None,
        DcgmPlan::SkippedExisting => ctx.facts().existing_dcgm_exporter.map(|found| {
            (
                Some(true),
                R::ExistingExporter,
                format!("{found} already runs, so infmon does not deploy a second one"),
            )
        }),
        DcgmPlan::Deploy => {
            if let Some(failure) = ctx.exporter_failure() {
                return Some((Some(false), R::ApiError, failure));
            }
            let namespace = &ctx.config.gpu_exporter.namespace;
            let status = ctx.caches.exporter_status(namespace)?;
            // Why pods wait is looked up (a scan of the pod cache) only when some do.
            let why = status
                .as_ref()
                .filter(|s| s.number_ready < s.desired_number_scheduled)
                .and_then(|_| ctx.caches.exporter_waiting(namespace));
            Some(status::exporter_condition(
                namespace,
                status.as_ref(),
                why.as_deref(),
            ))
        }
    }
}

/// Forgets the resolution of `key` (its spec no longer resolves); the shared objects follow
/// when it wanted some.
fn forget_resolution(ctx: &Context, key: &str) {
    if ctx.drop_resolution(key) {
        ctx.shared_changed.notify_one();
    }
}

/// A spec that cannot be turned into children: said in the status (and once as a Warning
/// Event), then nothing until the resource changes, so it cannot hot-loop.
async fn wait_for_spec_change(
    obj: &InferenceMonitoring,
    ctx: &Context,
    err: &Error,
    detected: Option<Engine>,
) -> Result<Action, Error> {
    let report = Report {
        generation: obj.metadata.generation,
        resolved: Err(err),
        engine: detected,
        selection: None,
        children: &[],
        outcome: None,
        health: None,
        exporter: None,
        dashboards_note: None,
    };
    if write_status(obj, ctx, &report).await? {
        publish(
            ctx,
            obj,
            EventType::Warning,
            err.event_reason(),
            err.to_string(),
        )
        .await;
    }
    info!(error = %err, "spec cannot be applied; waiting for a change");
    Ok(Action::await_change())
}

fn count(ctx: &Context, outcome: &Outcome) {
    for (kind, _) in outcome
        .created
        .iter()
        .chain(&outcome.updated)
        .chain(&outcome.reverted)
    {
        ctx.metrics
            .children_applied
            .get_or_create(&KindLabels {
                kind: kind.kind().to_string(),
            })
            .inc();
    }
    for (kind, _) in &outcome.pruned {
        ctx.metrics
            .children_pruned
            .get_or_create(&KindLabels {
                kind: kind.kind().to_string(),
            })
            .inc();
    }
}

/// Patches the status when it differs from the live one. Returns whether it wrote.
async fn write_status(
    obj: &InferenceMonitoring,
    ctx: &Context,
    report: &Report<'_>,
) -> Result<bool, Error> {
    let now = (ctx.clock)();
    let desired: InferenceMonitoringStatus = status::desired(obj.status.as_ref(), report, &now);
    if obj.status.as_ref() == Some(&desired) {
        return Ok(false);
    }
    apply_status(
        &ctx.client,
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
        &desired,
    )
    .await
    .map_err(|e| Error::kube("write status", e))?;
    Ok(true)
}

/// Server-side applies a resource's whole status under the operator's field manager (the
/// reconcile is its only writer).
async fn apply_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &InferenceMonitoringStatus,
) -> Result<(), kube::Error> {
    let api: Api<InferenceMonitoring> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": InferenceMonitoring::api_version(&()),
        "kind": InferenceMonitoring::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

async fn events(ctx: &Context, obj: &InferenceMonitoring, outcome: &Outcome) {
    let names = |list: &[(ChildKind, String)]| {
        list.iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // (type, reason, what happened, the children it happened to)
    let summaries = [
        (
            EventType::Normal,
            "Created",
            "created",
            names(&outcome.created),
        ),
        (
            EventType::Normal,
            "Updated",
            "updated",
            names(&outcome.updated),
        ),
        (
            EventType::Normal,
            "Deleted",
            "deleted, no longer generated:",
            names(&outcome.pruned),
        ),
        (
            EventType::Normal,
            "Reapplied",
            "re-applied after another writer changed them:",
            names(&outcome.reverted),
        ),
        (
            EventType::Warning,
            "Conflict",
            "left untouched because infmon does not own them:",
            outcome.conflicts.join(", "),
        ),
    ];
    for (type_, reason, what, children) in summaries {
        if !children.is_empty() {
            publish(ctx, obj, type_, reason, format!("{what} {children}")).await;
        }
    }
    for err in &outcome.failures {
        publish(
            ctx,
            obj,
            EventType::Warning,
            err.event_reason(),
            err.to_string(),
        )
        .await;
    }
}

/// Publishes an Event about `obj`; a failure to publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    obj: &InferenceMonitoring,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(note, 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(error = %err, reason, "cannot publish an Event");
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_fit_the_limit() {
        assert_eq!(truncate("é".repeat(600), 1024).len(), 1023);
        assert_eq!(truncate("short".into(), 1024), "short");
    }
}
