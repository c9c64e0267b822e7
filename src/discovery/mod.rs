//! What the operator learns about the cluster: which optional APIs it serves, the
//! `Prometheus` and `PrometheusAgent` resources and their selectors, other known consumers of
//! monitors, whether a DCGM exporter already runs, and
//! which engine a resource's pods run. The matching and detection are pure
//! ([`selectors`], [`engine`]); the functions here only read the API server.

pub mod engine;
pub mod exporters;
pub mod selectors;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::render::ChildKind;
use crate::validate::GpuExporterSettings;
pub use exporters::{FoundExporter, KNOWN_EXPORTERS, KnownExporter};
pub use selectors::{PrometheusSelectors, SelectedKind, Selection};

/// Label every namespace carries with its own name (Kubernetes ≥ 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Facts about the whole cluster, refreshed periodically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discovered {
    /// Child kinds the cluster serves (core kinds always; CRD-backed ones when installed).
    pub served: BTreeSet<ChildKind>,
    /// The `Prometheus` resources' selectors (empty without the Prometheus Operator).
    pub prometheuses: Vec<PrometheusSelectors>,
    /// A DCGM exporter infmon did not deploy runs somewhere in the cluster.
    pub existing_dcgm_exporter: Option<FoundExporter>,
    /// Other consumers of Prometheus Operator monitors (see [`OTHER_CONSUMERS`]) that run in
    /// the cluster, e.g. `VMAgent monitoring/vm (VictoriaMetrics operator)`, sorted. infmon
    /// cannot read their selection, so it lets the health check decide instead of reporting
    /// `NotSelected`.
    pub other_consumers: Vec<String>,
}

impl Discovered {
    /// Whether `kind` can be written to this cluster.
    pub fn serves(&self, kind: ChildKind) -> bool {
        self.served.contains(&kind)
    }
}

/// A kind, besides `Prometheus` and `PrometheusAgent`, known to pick up PodMonitors and
/// ServiceMonitors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// API group and version, e.g. `operator.victoriametrics.com/v1beta1`.
    pub group_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// The product it belongs to, for status messages.
    pub product: &'static str,
    /// A JSON pointer into the object that must be `true` for it to read monitors; `None`
    /// when every object does (or may).
    pub enabled_by: Option<&'static str>,
}

/// The other consumers of monitors infmon recognizes: the VictoriaMetrics operator (which
/// converts Prometheus Operator monitors for its `VMAgent`s by default), the OpenTelemetry
/// operator's target allocator (when `prometheusCR` is enabled), and Grafana Alloy run by its
/// operator (whose `prometheus.operator.*` components read monitors).
pub const OTHER_CONSUMERS: [Consumer; 3] = [
    Consumer {
        group_version: "collectors.grafana.com/v1alpha1",
        kind: "Alloy",
        plural: "alloys",
        product: "Grafana Alloy",
        enabled_by: None,
    },
    Consumer {
        group_version: "opentelemetry.io/v1beta1",
        kind: "OpenTelemetryCollector",
        plural: "opentelemetrycollectors",
        product: "OpenTelemetry target allocator",
        enabled_by: Some("/spec/targetAllocator/prometheusCR/enabled"),
    },
    Consumer {
        group_version: "operator.victoriametrics.com/v1beta1",
        kind: "VMAgent",
        plural: "vmagents",
        product: "VictoriaMetrics operator",
        enabled_by: None,
    },
];

impl Consumer {
    /// The kind as an API resource.
    pub fn resource(&self) -> ApiResource {
        let (group, version) = self
            .group_version
            .split_once('/')
            .unwrap_or(("", self.group_version));
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.kind),
            self.plural,
        )
    }

    /// `Kind namespace/name (product)` of an object of this kind that consumes monitors.
    pub fn describe(&self, object: &serde_json::Value) -> Option<String> {
        if let Some(pointer) = self.enabled_by
            && object.pointer(pointer) != Some(&serde_json::Value::Bool(true))
        {
            return None;
        }
        let meta = &object["metadata"];
        Some(format!(
            "{} {}/{} ({})",
            self.kind,
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
            self.product
        ))
    }
}

/// API version of `PrometheusAgent`.
const PROMETHEUS_AGENT_VERSION: &str = "monitoring.coreos.com/v1alpha1";

/// The `Prometheus` kind (read only).
pub fn prometheus_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Prometheus"),
        "prometheuses",
    )
}

/// Reads the served APIs, the `Prometheus` resources and the DCGM exporter pods (cluster-wide,
/// since an exporter serves every namespace; only in the namespaces of `scope` when the
/// operator may not list pods cluster-wide; only those in the namespaces `exporters` trusts
/// count).
pub async fn discover(
    client: &Client,
    scope: &[String],
    exporters: &GpuExporterSettings,
) -> Result<Discovered, kube::Error> {
    let mut served: BTreeSet<ChildKind> = ChildKind::ALL
        .into_iter()
        .filter(|k| !k.is_optional_api())
        .collect();
    let group_versions: Vec<&str> = ChildKind::ALL
        .iter()
        .filter(|k| k.is_optional_api())
        .map(|k| k.api_version())
        .chain(OTHER_CONSUMERS.iter().map(|c| c.group_version))
        .collect();
    let plurals = served_plurals(client, group_versions).await?;
    let is_served = |group_version: &str, plural: &str| {
        plurals
            .get(group_version)
            .is_some_and(|names| names.iter().any(|p| p == plural))
    };
    served.extend(
        ChildKind::ALL
            .into_iter()
            .filter(|k| k.is_optional_api() && is_served(k.api_version(), k.plural())),
    );
    let mut prometheuses = Vec::new();
    let mut selecting = vec![prometheus_resource()];
    if is_served(PROMETHEUS_AGENT.group_version, PROMETHEUS_AGENT.plural) {
        selecting.push(PROMETHEUS_AGENT.resource());
    }
    if served.contains(&ChildKind::PodMonitor) {
        for resource in selecting {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            for item in api.list(&ListParams::default()).await?.items {
                let value = serde_json::to_value(&item).map_err(kube::Error::SerdeError)?;
                let mut selectors =
                    PrometheusSelectors::from_object(&value).map_err(kube::Error::SerdeError)?;
                if resource.kind == PROMETHEUS_AGENT.kind {
                    selectors.mark_agent();
                }
                prometheuses.push(selectors);
            }
        }
    }
    let mut other_consumers = Vec::new();
    for consumer in OTHER_CONSUMERS
        .iter()
        .filter(|c| is_served(c.group_version, c.plural))
    {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &consumer.resource());
        for item in api.list(&ListParams::default()).await?.items {
            let value = serde_json::to_value(&item).map_err(kube::Error::SerdeError)?;
            other_consumers.extend(consumer.describe(&value));
        }
    }
    other_consumers.sort();
    let existing_dcgm_exporter = find_exporter(client, scope, exporters).await?;
    Ok(Discovered {
        served,
        prometheuses,
        existing_dcgm_exporter,
        other_consumers,
    })
}

/// The resources (plural names) the cluster serves in each of `group_versions`.
async fn served_plurals<'a>(
    client: &Client,
    mut group_versions: Vec<&'a str>,
) -> Result<BTreeMap<&'a str, Vec<String>>, kube::Error> {
    group_versions.sort();
    group_versions.dedup();
    let mut plurals = BTreeMap::new();
    for group_version in group_versions {
        let names = match client.list_api_group_resources(group_version).await {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(kube::Error::Api(status)) if status.is_not_found() => Vec::new(),
            Err(err) => return Err(err),
        };
        plurals.insert(group_version, names);
    }
    Ok(plurals)
}

/// `PrometheusAgent` as a consumer of monitors (its selectors are read like a `Prometheus`'s).
pub const PROMETHEUS_AGENT: Consumer = Consumer {
    group_version: PROMETHEUS_AGENT_VERSION,
    kind: "PrometheusAgent",
    plural: "prometheusagents",
    product: "Prometheus Operator",
    enabled_by: None,
};

/// The consumers of monitors besides `Prometheus` whose kinds the cluster serves:
/// [`PROMETHEUS_AGENT`] and those of [`OTHER_CONSUMERS`] (the operator watches them).
pub async fn served_consumers(client: &Client) -> Result<Vec<Consumer>, kube::Error> {
    let all: Vec<Consumer> = std::iter::once(PROMETHEUS_AGENT)
        .chain(OTHER_CONSUMERS)
        .collect();
    let plurals = served_plurals(client, all.iter().map(|c| c.group_version).collect()).await?;
    Ok(all
        .into_iter()
        .filter(|c| {
            plurals
                .get(c.group_version)
                .is_some_and(|names| names.iter().any(|p| p == c.plural))
        })
        .collect())
}

/// The first known DCGM exporter whose pods run in a namespace `exporters` trusts, looked for
/// cluster-wide (metadata only), or in the namespaces of `scope` when listing pods
/// cluster-wide is forbidden.
pub async fn find_exporter(
    client: &Client,
    scope: &[String],
    exporters: &GpuExporterSettings,
) -> Result<Option<FoundExporter>, kube::Error> {
    for kind in KNOWN_EXPORTERS {
        let params = ListParams::default().labels(kind.selector);
        let all: Api<Pod> = Api::all(client.clone());
        let pods = match all.list_metadata(&params).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.is_forbidden() && !scope.is_empty() => {
                let mut pods = Vec::new();
                for ns in scope.iter().filter(|ns| exporters.trusts_exporters_in(ns)) {
                    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                    pods.extend(api.list_metadata(&params).await?.items);
                }
                pods
            }
            Err(err) => return Err(err),
        };
        let trusted = pods.iter().find_map(|pod| {
            let namespace = pod.metadata.namespace.as_deref()?;
            exporters
                .trusts_exporters_in(namespace)
                .then(|| namespace.to_string())
        });
        if let Some(namespace) = trusted {
            return Ok(Some(FoundExporter { kind, namespace }));
        }
    }
    Ok(None)
}
