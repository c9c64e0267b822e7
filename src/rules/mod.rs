//! Prometheus rules for one resource: engine-neutral recording rules, threshold alerts and the
//! rules of its service-level objectives, as a
//! `PrometheusRule` child or as a plain rule file (`render --format prometheus`).

mod alerts;
pub mod records;
pub mod slos;

pub use alerts::runbook_url;

use serde_json::{Value, json};

use crate::model::{
    Child, ChildKind, INFERENCE_ENGINE_LABEL, INFERENCE_MONITORING_LABEL, RenderError, child_name,
    standard_labels,
};
use crate::validate::Validated;

/// The rule groups (`spec.groups` of a PrometheusRule): the recording rules whenever alerts or
/// dashboards are on (the overview dashboard reads them), the alerts when alerts are on, and
/// the SLO records (with their burn-rate alerts when alerts are on) when `spec.slos` lists any;
/// `None` when none of these applies. Every rule reads only this resource's targets
/// (`inference_monitoring="<ns>/<name>"`, or with `output: none` the existing job's series
/// that no resource claims, in the resource's namespaces). With `output: none` every rule
/// sets `inference_monitoring` and `inference_engine` itself (rule labels win over the
/// series' own), so no record or alert it writes carries another resource's owner label.
pub fn groups(resource: &Validated) -> Option<Value> {
    if resource.alerts.is_none() && resource.dashboards.is_none() && resource.slos.is_empty() {
        return None;
    }
    let owner = resource.owner_matcher();
    let series = resource.series_matchers();
    let key = resource.key();
    let mut groups = vec![(
        "recording",
        records::recording_rules(&resource.profile, &series),
    )];
    if let Some(spec) = &resource.alerts {
        groups.push((
            "alerts",
            alerts::alerting_rules(&resource.profile, spec, &owner, &series),
        ));
    }
    if !resource.slos.is_empty() {
        let mut rules = slos::recording_rules(&resource.slos, &resource.profile, &series);
        if let Some(spec) = &resource.alerts {
            rules.extend(slos::alerting_rules(
                &resource.slos,
                &resource.profile,
                spec,
                &owner,
                &series,
            ));
        }
        groups.push(("slos", rules));
    }
    Some(Value::Array(
        groups
            .into_iter()
            .map(|(suffix, mut rules)| {
                if resource.existing.is_some() {
                    rules
                        .iter_mut()
                        .for_each(|rule| label_as_owned(rule, resource));
                }
                json!({"name": format!("infmon:{key}:{suffix}"), "rules": rules})
            })
            .collect(),
    ))
}

/// Sets the owner and engine labels on a rule (`output: none`: the series read carry neither).
fn label_as_owned(rule: &mut Value, resource: &Validated) {
    let labels = rule
        .as_object_mut()
        .expect("rules are objects")
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(INFERENCE_MONITORING_LABEL.into(), resource.key().into());
        labels.insert(
            INFERENCE_ENGINE_LABEL.into(),
            resource.engine.as_str().into(),
        );
    }
}

/// A Prometheus rule file (`groups: ...`) for `rule_files`, or `None` when no rules apply.
pub fn rule_file(resource: &Validated) -> Option<String> {
    let groups = groups(resource)?;
    Some(
        serde_yaml::to_string(&json!({ "groups": groups })).expect("JSON values serialize to YAML"),
    )
}

/// The `PrometheusRule` child, labelled with `monitorLabels` so the Prometheus selects it.
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    let Some(groups) = groups(resource) else {
        return Ok(Vec::new());
    };
    let mut labels = resource.monitor_labels.clone();
    labels.extend(standard_labels(resource, "rules"));
    let object = json!({
        "metadata": {
            "name": child_name(&resource.name, "rules"),
            "namespace": resource.namespace,
            "labels": labels,
        },
        "spec": {"groups": groups},
    });
    Ok(vec![Child::from_value(ChildKind::PrometheusRule, object)])
}
