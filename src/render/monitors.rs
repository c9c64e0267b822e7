//! Prometheus Operator `PodMonitor` and `ServiceMonitor` (`monitoring.coreos.com/v1`) for
//! selector targets.
//!
//! Ports follow upstream exactly: a PodMonitor endpoint names a container port with `port`
//! or gives its number with `portNumber`; a ServiceMonitor endpoint names a *Service* port
//! with `port`, while a number can only be matched against the pods behind the Service with
//! `targetPort`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::{Map, Value, json};

use super::endpoint::operator_security;
use super::relabel::{identity_labels, pod_labels, to_operator};
use super::{Child, ChildKind, child_name, object_meta};
use crate::validate::{Namespaces, PortRef, Validated};

/// Component label of the scrape objects.
pub const SCRAPE_COMPONENT: &str = "scrape";

/// Metadata of a monitor: the standard labels plus `monitorLabels`, so that the cluster's
/// Prometheus selects it (the standard labels win on a clash: the owner must stay findable).
pub fn monitor_meta(
    resource: &Validated,
    namespace: &str,
    name: String,
    component: &str,
) -> ObjectMeta {
    let mut meta = object_meta(resource, namespace, name, component);
    let mut labels = resource.monitor_labels.clone();
    labels.extend(meta.labels.take().unwrap_or_default());
    meta.labels = Some(labels);
    meta
}

/// The Prometheus Operator's `namespaceSelector` (not a label selector).
pub fn namespace_selector(namespaces: &Namespaces) -> Value {
    match namespaces {
        Namespaces::Any => json!({"any": true}),
        Namespaces::Names(names) => json!({"matchNames": names}),
    }
}

/// Plain `kubernetes_sd_configs` with role `pod`, restricted to the given namespaces.
pub fn kubernetes_sd(namespaces: &Namespaces) -> Value {
    match namespaces {
        Namespaces::Any => json!([{"role": "pod"}]),
        Namespaces::Names(names) => {
            json!([{"role": "pod", "namespaces": {"names": names}}])
        }
    }
}

/// Scrape settings common to both monitor kinds' endpoints.
fn endpoint_fields(resource: &Validated) -> Map<String, Value> {
    let endpoint = &resource.endpoint;
    let mut out = Map::new();
    out.insert("path".into(), json!(endpoint.path));
    out.insert("scheme".into(), json!(endpoint.scheme.as_str()));
    out.insert("interval".into(), json!(endpoint.interval));
    out.insert("scrapeTimeout".into(), json!(endpoint.scrape_timeout));
    out.insert("honorLabels".into(), json!(endpoint.honor_labels));
    let mut relabelings = pod_labels();
    relabelings.extend(identity_labels(resource));
    out.insert("relabelings".into(), to_operator(&relabelings));
    operator_security(endpoint, &mut out);
    out
}

fn monitor(
    resource: &Validated,
    kind: ChildKind,
    selector: &LabelSelector,
    namespaces: &Namespaces,
    endpoints_key: &str,
    endpoint: Map<String, Value>,
) -> Child {
    let meta = monitor_meta(
        resource,
        &resource.namespace,
        child_name(&resource.name, ""),
        SCRAPE_COMPONENT,
    );
    Child::from_value(
        kind,
        json!({
            "metadata": meta,
            "spec": {
                "selector": selector,
                "namespaceSelector": namespace_selector(namespaces),
                endpoints_key: [endpoint],
            },
        }),
    )
}

/// A `PodMonitor` or `ServiceMonitor` for the selected pods or Services. The kinds differ
/// only in how they spell their endpoints and a numbered port: a PodMonitor names a container
/// port with `port` or gives `portNumber`; a ServiceMonitor names a Service port with `port`
/// or matches the pods' port number with `targetPort`.
pub fn monitor_for(
    kind: ChildKind,
    resource: &Validated,
    selector: &LabelSelector,
    namespaces: &Namespaces,
) -> Child {
    let (endpoints_key, number_key) = match kind {
        ChildKind::ServiceMonitor => ("endpoints", "targetPort"),
        _ => ("podMetricsEndpoints", "portNumber"),
    };
    let mut endpoint = endpoint_fields(resource);
    match &resource.endpoint.port {
        PortRef::Name(name) => endpoint.insert("port".into(), json!(name)),
        PortRef::Number(number) => endpoint.insert(number_key.into(), json!(number)),
    };
    monitor(
        resource,
        kind,
        selector,
        namespaces,
        endpoints_key,
        endpoint,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validated_from_yaml;
    use super::*;
    use crate::render::scrape::children;

    fn resource(output: &str, port: &str) -> Validated {
        validated_from_yaml(&format!(
            r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {{name: chat, namespace: llm}}
spec:
  engine: vllm
  selector: {{matchLabels: {{app: chat}}}}
  endpoint: {{port: {port}}}
  prometheus:
    output: {output}
    monitorLabels: {{release: kps}}
"#
        ))
    }

    fn endpoint(child: &Child, key: &str) -> Value {
        child.object["spec"][key][0].clone()
    }

    #[test]
    fn pod_monitor_names_or_numbers_the_container_port() {
        let named = &children(&resource("podMonitor", "http")).unwrap()[0];
        assert_eq!(named.kind, ChildKind::PodMonitor);
        let ep = endpoint(named, "podMetricsEndpoints");
        assert_eq!(ep["port"], "http");
        assert!(ep.get("portNumber").is_none() && ep.get("targetPort").is_none());

        let numbered = &children(&resource("podMonitor", "8000")).unwrap()[0];
        let ep = endpoint(numbered, "podMetricsEndpoints");
        assert_eq!(ep["portNumber"], 8000);
        assert!(ep.get("port").is_none() && ep.get("targetPort").is_none());
    }

    #[test]
    fn service_monitor_names_the_service_port_or_targets_the_pod_port_number() {
        let named = &children(&resource("serviceMonitor", "http")).unwrap()[0];
        assert_eq!(named.kind, ChildKind::ServiceMonitor);
        let ep = endpoint(named, "endpoints");
        assert_eq!(ep["port"], "http");
        assert!(ep.get("targetPort").is_none());

        let numbered = &children(&resource("serviceMonitor", "8000")).unwrap()[0];
        let ep = endpoint(numbered, "endpoints");
        assert_eq!(ep["targetPort"], 8000);
        assert!(ep.get("port").is_none() && ep.get("portNumber").is_none());
    }

    #[test]
    fn monitors_carry_monitor_labels_and_target_labels() {
        let monitor = &children(&resource("podMonitor", "http")).unwrap()[0];
        assert_eq!(monitor.name, "chat");
        assert_eq!(monitor.namespace, "llm");
        let labels = &monitor.object["metadata"]["labels"];
        assert_eq!(labels["release"], "kps");
        assert_eq!(labels["app.kubernetes.io/component"], "scrape");
        assert_eq!(labels["monitoring.inference.dev/owner-name"], "chat");
        let spec = &monitor.object["spec"];
        assert_eq!(spec["selector"], json!({"matchLabels": {"app": "chat"}}));
        assert_eq!(spec["namespaceSelector"], json!({"matchNames": ["llm"]}));
        let ep = &spec["podMetricsEndpoints"][0];
        assert_eq!(ep["path"], "/metrics");
        assert_eq!(ep["interval"], "15s");
        assert_eq!(ep["scrapeTimeout"], "10s");
        assert_eq!(
            ep["relabelings"],
            json!([
                {"action": "replace", "sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": "namespace"},
                {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
                {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_container_name"], "targetLabel": "container"},
                {"action": "replace", "targetLabel": "inference_monitoring", "replacement": "llm/chat"},
                {"action": "replace", "targetLabel": "inference_engine", "replacement": "vllm"},
            ])
        );
    }

    #[test]
    fn any_namespace_is_the_operator_any_flag() {
        assert_eq!(namespace_selector(&Namespaces::Any), json!({"any": true}));
    }
}
