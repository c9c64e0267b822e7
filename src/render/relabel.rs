//! Relabeling rules shared by every scrape builder: the labels every target carries, and the
//! keep/drop rules that do Kubernetes pod selection through relabeling (for `ScrapeConfig` and
//! raw `scrape_configs`, where no operator translates a selector for us).
//!
//! Rules are built once as [`RelabelConfig`] (the Prometheus Operator's camelCase shape) and
//! converted with [`to_prometheus`] for plain Prometheus files (snake_case).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Map, Value};

use super::RenderError;
use crate::api::{RelabelAction, RelabelConfig};
use crate::validate::{Namespaces, PortRef, Validated};

pub use crate::model::{INFERENCE_ENGINE_LABEL, INFERENCE_MONITORING_LABEL};

/// Prometheus' Kubernetes pod discovery labels read here.
const META_NAMESPACE: &str = "__meta_kubernetes_namespace";
const META_POD_NAME: &str = "__meta_kubernetes_pod_name";
const META_CONTAINER_NAME: &str = "__meta_kubernetes_pod_container_name";
const META_CONTAINER_INIT: &str = "__meta_kubernetes_pod_container_init";
const META_PORT_NAME: &str = "__meta_kubernetes_pod_container_port_name";
const META_PORT_NUMBER: &str = "__meta_kubernetes_pod_container_port_number";
const META_PHASE: &str = "__meta_kubernetes_pod_phase";
const META_LABEL: &str = "__meta_kubernetes_pod_label_";
const META_LABEL_PRESENT: &str = "__meta_kubernetes_pod_labelpresent_";

fn rule(
    action: RelabelAction,
    source_labels: &[&str],
    regex: Option<String>,
    target_label: Option<&str>,
    replacement: Option<&str>,
) -> RelabelConfig {
    RelabelConfig {
        source_labels: (!source_labels.is_empty())
            .then(|| source_labels.iter().map(ToString::to_string).collect()),
        regex,
        target_label: target_label.map(str::to_string),
        replacement: replacement.map(str::to_string),
        action: Some(action),
        ..Default::default()
    }
}

fn copy(source: &str, target: &str) -> RelabelConfig {
    rule(RelabelAction::Replace, &[source], None, Some(target), None)
}

fn set(target: &str, value: &str) -> RelabelConfig {
    rule(RelabelAction::Replace, &[], None, Some(target), Some(value))
}

fn keep(source: &str, regex: String) -> RelabelConfig {
    rule(RelabelAction::Keep, &[source], Some(regex), None, None)
}

fn drop(sources: &[&str], regex: String) -> RelabelConfig {
    rule(RelabelAction::Drop, sources, Some(regex), None, None)
}

/// Escapes RE2 metacharacters so a label value matches literally.
pub fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Kubernetes label name as Prometheus' discovery spells it in `__meta_*` labels: every
/// character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn alternatives(values: &[String]) -> String {
    let escaped: Vec<String> = values.iter().map(|v| escape_regex(v)).collect();
    format!("({})", escaped.join("|"))
}

/// `inference_monitoring="<namespace>/<name>"`: the owner, on every target (DCGM's too).
pub fn owner_label(resource: &Validated) -> RelabelConfig {
    set(INFERENCE_MONITORING_LABEL, &resource.key())
}

/// The labels that name an inference target's owner and engine.
pub fn identity_labels(resource: &Validated) -> Vec<RelabelConfig> {
    vec![
        owner_label(resource),
        set(INFERENCE_ENGINE_LABEL, resource.engine.as_str()),
    ]
}

/// `namespace`, `pod` and `container` from pod discovery.
pub fn pod_labels() -> Vec<RelabelConfig> {
    vec![
        copy(META_NAMESPACE, "namespace"),
        copy(META_POD_NAME, "pod"),
        copy(META_CONTAINER_NAME, "container"),
    ]
}

/// For static targets (there is no pod): `namespace` is the resource's and `pod` the
/// `host:port` address, so per-namespace and per-pod dashboards still work.
pub fn static_target_labels(resource: &Validated) -> Vec<RelabelConfig> {
    vec![
        set("namespace", &resource.namespace),
        copy("__address__", "pod"),
    ]
}

/// Keep/drop rules that turn Prometheus' pod discovery (one target per declared container
/// port) into exactly the selected pods' metrics port: namespace restriction, running pods,
/// no init containers, the label selector, then the port by name or number.
pub fn pod_selection(
    selector: &LabelSelector,
    namespaces: &Namespaces,
    port: &PortRef,
) -> Result<Vec<RelabelConfig>, RenderError> {
    let mut rules = Vec::new();
    if let Namespaces::Names(names) = namespaces {
        rules.push(keep(META_NAMESPACE, alternatives(names)));
    }
    rules.push(keep(META_PHASE, "Running".into()));
    rules.push(drop(&[META_CONTAINER_INIT], "true".into()));
    rules.extend(selector_rules(selector)?);
    rules.push(match port {
        PortRef::Name(name) => keep(META_PORT_NAME, escape_regex(name)),
        PortRef::Number(number) => keep(META_PORT_NUMBER, number.to_string()),
    });
    Ok(rules)
}

/// A label selector as relabel rules over `__meta_kubernetes_pod_label_*` and
/// `__meta_kubernetes_pod_labelpresent_*`: `matchLabels` and each `matchExpressions` entry
/// must all hold (In, NotIn, Exists, DoesNotExist). Fails on a requirement Kubernetes would
/// reject (unknown operator, In/NotIn without values, Exists/DoesNotExist with values).
pub fn selector_rules(selector: &LabelSelector) -> Result<Vec<RelabelConfig>, RenderError> {
    let mut requirements: Vec<LabelSelectorRequirement> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| LabelSelectorRequirement {
            key: key.clone(),
            operator: "In".into(),
            values: Some(vec![value.clone()]),
        })
        .collect();
    requirements.extend(selector.match_expressions.iter().flatten().cloned());
    let mut rules = Vec::new();
    for requirement in &requirements {
        rules.extend(requirement_rules(requirement)?);
    }
    Ok(rules)
}

fn requirement_rules(
    requirement: &LabelSelectorRequirement,
) -> Result<Vec<RelabelConfig>, RenderError> {
    let name = sanitize_label_name(&requirement.key);
    let value = format!("{META_LABEL}{name}");
    let present = format!("{META_LABEL_PRESENT}{name}");
    let values = requirement.values.clone().unwrap_or_default();
    let invalid = |reason: &str| RenderError::InvalidSelector {
        key: requirement.key.clone(),
        reason: reason.to_string(),
    };
    Ok(match (requirement.operator.as_str(), values.is_empty()) {
        ("In", false) => vec![
            keep(&present, "true".into()),
            keep(&value, alternatives(&values)),
        ],
        ("NotIn", false) => vec![drop(
            &[&present, &value],
            format!("true;{}", alternatives(&values)),
        )],
        ("Exists", true) => vec![keep(&present, "true".into())],
        ("DoesNotExist", true) => vec![drop(&[&present], "true".into())],
        ("In" | "NotIn", true) => return Err(invalid("operator In and NotIn need values")),
        ("Exists" | "DoesNotExist", false) => {
            return Err(invalid("operator Exists and DoesNotExist take no values"));
        }
        (other, _) => {
            return Err(invalid(&format!(
                "unknown operator {other:?}; use In, NotIn, Exists or DoesNotExist"
            )));
        }
    })
}

/// A rule in plain Prometheus' snake_case form (`relabel_configs`, `metric_relabel_configs`).
pub fn to_prometheus(rule: &RelabelConfig) -> Value {
    let camel = serde_json::to_value(rule).unwrap_or_default();
    let mut out = Map::new();
    for (key, value) in camel.as_object().into_iter().flatten() {
        let key = match key.as_str() {
            "sourceLabels" => "source_labels",
            "targetLabel" => "target_label",
            other => other,
        };
        out.insert(key.to_string(), value.clone());
    }
    Value::Object(out)
}

/// Rules in the Prometheus Operator's camelCase form.
pub fn to_operator(rules: &[RelabelConfig]) -> Value {
    serde_json::to_value(rules).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn selector_translates_every_operator() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "vllm".to_string(),
            )])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["canary".into(), "a.b".into()]),
                },
                LabelSelectorRequirement {
                    key: "gpu".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "skip".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let rules: Vec<Value> = selector_rules(&selector)
            .unwrap()
            .iter()
            .map(to_prometheus)
            .collect();
        assert_eq!(
            Value::Array(rules),
            json!([
                {"action": "keep", "source_labels": ["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"], "regex": "true"},
                {"action": "keep", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": "(vllm)"},
                {"action": "drop", "source_labels": ["__meta_kubernetes_pod_labelpresent_tier", "__meta_kubernetes_pod_label_tier"], "regex": "true;(canary|a\\.b)"},
                {"action": "keep", "source_labels": ["__meta_kubernetes_pod_labelpresent_gpu"], "regex": "true"},
                {"action": "drop", "source_labels": ["__meta_kubernetes_pod_labelpresent_skip"], "regex": "true"},
            ])
        );
    }

    #[test]
    fn port_by_name_or_number() {
        let selector = LabelSelector::default();
        let named =
            pod_selection(&selector, &Namespaces::Any, &PortRef::Name("http".into())).unwrap();
        assert_eq!(
            to_prometheus(named.last().unwrap()),
            json!({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http"})
        );
        let numbered = pod_selection(
            &selector,
            &Namespaces::Names(vec!["a".into(), "b".into()]),
            &PortRef::Number(8000),
        )
        .unwrap();
        assert_eq!(
            to_prometheus(numbered.last().unwrap()),
            json!({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": "8000"})
        );
        assert_eq!(
            to_prometheus(&numbered[0]),
            json!({"action": "keep", "source_labels": ["__meta_kubernetes_namespace"], "regex": "(a|b)"})
        );
        // Any namespace: no namespace rule, the phase rule comes first.
        assert_eq!(named[0].source_labels, Some(vec![META_PHASE.to_string()]));
    }

    #[test]
    fn selectors_kubernetes_rejects_are_errors() {
        let requirement = |operator: &str, values: Option<Vec<String>>| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: operator.into(),
                values,
            }]),
            ..Default::default()
        };
        for (operator, values, reason) in [
            (
                "Foo",
                Some(vec!["a".to_string()]),
                "unknown operator \"Foo\"",
            ),
            ("In", None, "need values"),
            ("NotIn", Some(vec![]), "need values"),
            ("Exists", Some(vec!["a".to_string()]), "take no values"),
        ] {
            let err = selector_rules(&requirement(operator, values)).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("spec.selector")
                    && message.contains("tier")
                    && message.contains(reason),
                "{message}"
            );
        }
    }

    #[test]
    fn sanitizes_like_kubernetes_discovery() {
        assert_eq!(
            sanitize_label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(escape_regex("a.b-c"), "a\\.b-c");
    }
}
