//! One reconcile of one InferenceMonitoring: discover what the resource needs from the
//! cluster, resolve, render, apply and prune, then write status and Events. Deletion runs
//! the cleanup behind the finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizing, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::Error;
use super::apply::{self, FIELD_MANAGER, Outcome, Owner};
use super::context::Context;
use super::metrics::KindLabels;
use super::status::{self, Report};
use crate::api::{Engine, InferenceMonitoring, InferenceMonitoringStatus};
use crate::discovery::{self, Discovered, SelectedKind, Selection, engine, selectors};
use crate::render::{ChildKind, render_all};
use crate::validate::{ClusterFacts, Namespaces, ResolveError, Validated, pod_namespaces, resolve};

/// The finalizer that guards cleanup of children outside the resource's namespace.
pub const FINALIZER: &str = "inferencemonitorings.monitoring.inference.dev/cleanup";

fn key(obj: &InferenceMonitoring) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Reconciles one resource (the `Controller`'s reconcile function).
pub async fn reconcile(obj: Arc<InferenceMonitoring>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let span = info_span!("reconcile", resource = %format!("{namespace}/{name}"));
    async move {
        let start = Instant::now();
        ctx.metrics.reconciles.inc();
        let api: Api<InferenceMonitoring> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = finalizer(&api, FINALIZER, obj.clone(), |event| async {
            match event {
                Finalizing::Apply(obj) => apply(&obj, &ctx).await,
                Finalizing::Cleanup(obj) => cleanup(&obj, &ctx).await,
            }
        })
        .await
        .map_err(Error::from);
        ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
        if result.is_ok() {
            ctx.succeeded(&key(&obj));
        }
        result
    }
    .instrument(span)
    .await
}

/// What to do after a failed reconcile: count it, then back off (transient) or wait for a
/// spec change (permanent, so an invalid spec cannot hot-loop).
pub fn error_policy(obj: Arc<InferenceMonitoring>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(err.metric_label());
    let key = key(&obj);
    if err.is_transient() {
        let delay = ctx.backoff(&key);
        warn!(resource = %key, error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
        Action::requeue(delay)
    } else {
        warn!(resource = %key, error = %err, "reconcile failed; waiting for a spec change");
        Action::await_change()
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
    let served = ctx.facts().served;
    let deleted = apply::cleanup(&ctx.client, &ctx.config.namespaces, &owner(obj), &served).await?;
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
    ctx.shared_changed.notify_one();
    Ok(Action::await_change())
}

/// The pods `spec.selector` selects, for engine detection.
async fn selected_pods(obj: &InferenceMonitoring, ctx: &Context) -> Result<Vec<Pod>, Error> {
    let selector = obj.spec.selector.clone().unwrap_or_default();
    let selector =
        kube::core::Selector::try_from(selector).map_err(|e| Error::Selector(e.to_string()))?;
    let params = ListParams::default().labels_from(&selector);
    let own = obj.namespace().unwrap_or_default();
    let mut pods = Vec::new();
    match pod_namespaces(obj.spec.namespace_selector.as_ref(), &own) {
        Namespaces::Any => {
            let api: Api<Pod> = Api::all(ctx.client.clone());
            pods = api
                .list(&params)
                .await
                .map_err(|e| Error::kube("list selected pods", e))?
                .items;
        }
        Namespaces::Names(names) => {
            for ns in names {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                let list = api
                    .list(&params)
                    .await
                    .map_err(|e| Error::kube(format!("list selected pods in {ns}"), e))?;
                pods.extend(list.items);
            }
        }
    }
    Ok(pods)
}

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
        required_monitor_labels: BTreeMap::new(),
        default_prometheus_url: ctx.config.default_prometheus_url.clone(),
        policy: ctx.config.policy.clone(),
    }
}

/// Everything the resource needs from the cluster before it can be resolved.
struct Findings {
    detected: Option<Engine>,
    resolved: Result<Validated, Error>,
    selection: Option<Selection>,
}

async fn find(
    obj: &InferenceMonitoring,
    ctx: &Context,
    discovered: &Discovered,
) -> Result<Findings, Error> {
    let mut undetermined = None;
    let detected = if obj.spec.engine == Engine::Auto && obj.spec.selector.is_some() {
        match engine::detect(&selected_pods(obj, ctx).await?) {
            Ok(engine) => Some(engine),
            Err(why) => {
                undetermined = Some(why.to_string());
                None
            }
        }
    } else {
        None
    };
    let mut facts = facts_for(discovered, ctx, detected);
    let first = match resolve(obj, &facts) {
        Ok(v) => v,
        Err(ResolveError::EngineUndetermined { .. }) if undetermined.is_some() => {
            let reason = undetermined.unwrap_or_default();
            return Ok(Findings {
                detected,
                resolved: Err(ResolveError::EngineUndetermined { reason }.into()),
                selection: None,
            });
        }
        Err(err) => {
            return Ok(Findings {
                detected,
                resolved: Err(err.into()),
                selection: None,
            });
        }
    };
    let Some(kind) =
        SelectedKind::of_output(first.output).filter(|_| discovered.serves(ChildKind::PodMonitor))
    else {
        return Ok(Findings {
            detected,
            resolved: Ok(first),
            selection: None,
        });
    };
    let namespace = first.namespace.clone();
    let mut namespace_labels = BTreeMap::from([(
        discovery::NAMESPACE_NAME_LABEL.to_string(),
        namespace.clone(),
    )]);
    if discovery::needs_namespace_labels(&discovered.prometheuses) {
        match discovery::namespace_labels(&ctx.client, &namespace).await {
            Ok(labels) => namespace_labels = labels,
            // Namespaced installs cannot read Namespaces: match by name only.
            Err(kube::Error::Api(status)) if status.is_forbidden() => {}
            Err(e) => return Err(Error::kube(format!("read namespace {namespace}"), e)),
        }
    }
    let explicit = &obj.spec.prometheus.monitor_labels;
    let with_rules = first.alerts.is_some();
    let labels = if explicit.is_empty() {
        let found = selectors::select(
            &discovered.prometheuses,
            kind,
            with_rules,
            &namespace,
            &namespace_labels,
            None,
        )
        .required_labels;
        if found.is_empty() {
            ctx.config.default_monitor_labels.clone()
        } else {
            found
        }
    } else {
        explicit.clone()
    };
    let selection = selectors::select(
        &discovered.prometheuses,
        kind,
        with_rules,
        &namespace,
        &namespace_labels,
        Some(&labels),
    )
    .or_other_consumers(&discovered.other_consumers);
    facts.required_monitor_labels = labels;
    Ok(Findings {
        detected,
        resolved: resolve(obj, &facts).map_err(Error::from),
        selection: Some(selection),
    })
}

async fn apply(obj: &InferenceMonitoring, ctx: &Context) -> Result<Action, Error> {
    let discovered = ctx.facts();
    let findings = match find(obj, ctx, &discovered).await {
        Ok(findings) => findings,
        Err(err) => {
            let report = Report {
                generation: obj.metadata.generation,
                resolved: Err(&err),
                engine: None,
                selection: None,
                children: &[],
                outcome: None,
            };
            write_status(obj, ctx, &report).await?;
            publish(
                ctx,
                obj,
                EventType::Warning,
                err.event_reason(),
                err.to_string(),
            )
            .await;
            return Err(err);
        }
    };
    let validated = match &findings.resolved {
        Ok(v) => v,
        Err(err) => return wait_for_spec_change(obj, ctx, err, findings.detected).await,
    };
    let children = match render_all(validated) {
        Ok(children) => children,
        Err(err) => {
            let err = Error::from(err);
            return wait_for_spec_change(obj, ctx, &err, findings.detected).await;
        }
    };
    let outcome = apply::sync(
        &ctx.client,
        &ctx.config.namespaces,
        &owner(obj),
        &children,
        &discovered.served,
    )
    .await;
    count(ctx, &outcome);
    ctx.shared_changed.notify_one();
    let report = Report {
        generation: obj.metadata.generation,
        resolved: Ok(validated),
        engine: Some(validated.engine),
        selection: findings.selection.as_ref(),
        children: &children,
        outcome: Some(&outcome),
    };
    write_status(obj, ctx, &report).await?;
    events(ctx, obj, &outcome).await;
    let Outcome { failures, .. } = outcome;
    match failures.into_iter().next() {
        Some(err) => Err(err),
        None => Ok(Action::requeue(ctx.config.resync)),
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
    for (kind, _) in outcome.created.iter().chain(&outcome.updated) {
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
    let api: Api<InferenceMonitoring> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": InferenceMonitoring::api_version(&()),
        "kind": InferenceMonitoring::kind(&()),
        "status": desired,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::kube("write status", e))?;
    Ok(true)
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
