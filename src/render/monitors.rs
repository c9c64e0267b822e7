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

/// A `PodMonitor` for the selected pods: `port` for a container port name, `portNumber`
/// for a number.
pub fn pod_monitor(
    resource: &Validated,
    selector: &LabelSelector,
    namespaces: &Namespaces,
) -> Child {
    let mut endpoint = endpoint_fields(resource);
    match &resource.endpoint.port {
        PortRef::Name(name) => endpoint.insert("port".into(), json!(name)),
        PortRef::Number(number) => endpoint.insert("portNumber".into(), json!(number)),
    };
    monitor(
        resource,
        ChildKind::PodMonitor,
        selector,
        namespaces,
        "podMetricsEndpoints",
        endpoint,
    )
}

/// A `ServiceMonitor` for the Services carrying the selector's labels: `port` for a Service
/// port name, `targetPort` for a pod port number.
pub fn service_monitor(
    resource: &Validated,
    selector: &LabelSelector,
    namespaces: &Namespaces,
) -> Child {
    let mut endpoint = endpoint_fields(resource);
    match &resource.endpoint.port {
        PortRef::Name(name) => endpoint.insert("port".into(), json!(name)),
        PortRef::Number(number) => endpoint.insert("targetPort".into(), json!(number)),
    };
    monitor(
        resource,
        ChildKind::ServiceMonitor,
        selector,
        namespaces,
        "endpoints",
        endpoint,
    )
}
