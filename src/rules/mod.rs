//! Prometheus rules for one resource: engine-neutral recording rules, threshold alerts and the
//! rules of its service-level objectives, as a
//! `PrometheusRule` child or as a plain rule file (`render --format prometheus`).

mod alerts;
pub mod records;
pub mod slos;

pub use alerts::runbook_url;

use serde_json::{Value, json};

use crate::model::{Child, ChildKind, RenderError, child_name, standard_labels};
use crate::validate::Validated;

/// The rule groups (`spec.groups` of a PrometheusRule): the recording rules whenever alerts or
/// dashboards are on (the overview dashboard reads them), the alerts when alerts are on, and
/// the SLO records (with their burn-rate alerts when alerts are on) when `spec.slos` lists any;
/// `None` when none of these applies. Every rule reads only this resource's targets
/// (`inference_monitoring="<ns>/<name>"`).
pub fn groups(resource: &Validated) -> Option<Value> {
    if resource.alerts.is_none() && resource.dashboards.is_none() && resource.slos.is_empty() {
        return None;
    }
    let selector = format!(r#"inference_monitoring="{}""#, resource.key());
    let key = resource.key();
    let mut groups = vec![json!({
        "name": format!("infmon:{key}:recording"),
        "rules": records::recording_rules(&resource.profile, &selector),
    })];
    if let Some(spec) = &resource.alerts {
        groups.push(json!({
            "name": format!("infmon:{key}:alerts"),
            "rules": alerts::alerting_rules(&resource.profile, spec, &selector),
        }));
    }
    if !resource.slos.is_empty() {
        let mut rules = slos::recording_rules(&resource.slos, &resource.profile, &selector);
        if let Some(spec) = &resource.alerts {
            rules.extend(slos::alerting_rules(
                &resource.slos,
                &resource.profile,
                spec,
                &selector,
            ));
        }
        groups.push(json!({"name": format!("infmon:{key}:slos"), "rules": rules}));
    }
    Some(Value::Array(groups))
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
