//! What the operator learns about the cluster: which optional APIs it serves, the
//! `Prometheus` resources and their selectors, whether a DCGM exporter already runs, and
//! which engine a resource's pods run. The matching and detection are pure
//! ([`selectors`], [`engine`]); the functions here only read the API server.

pub mod engine;
pub mod exporters;
pub mod selectors;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::render::ChildKind;
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
}

impl Discovered {
    /// Whether `kind` can be written to this cluster.
    pub fn serves(&self, kind: ChildKind) -> bool {
        self.served.contains(&kind)
    }
}

/// The `Prometheus` kind (read only).
pub fn prometheus_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Prometheus"),
        "prometheuses",
    )
}

/// Reads the served APIs, the `Prometheus` resources and the DCGM exporter pods (cluster-wide,
/// since an exporter serves every namespace; only in the namespaces of `scope` when the
/// operator may not list pods cluster-wide).
pub async fn discover(client: &Client, scope: &[String]) -> Result<Discovered, kube::Error> {
    let mut served: BTreeSet<ChildKind> = ChildKind::ALL
        .into_iter()
        .filter(|k| !k.is_optional_api())
        .collect();
    let mut group_versions: Vec<String> = ChildKind::ALL
        .iter()
        .filter(|k| k.is_optional_api())
        .map(|k| k.api_version().to_string())
        .collect();
    group_versions.sort();
    group_versions.dedup();
    for group_version in group_versions {
        let plurals = match client.list_api_group_resources(&group_version).await {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(kube::Error::Api(status)) if status.is_not_found() => Vec::new(),
            Err(err) => return Err(err),
        };
        served.extend(
            ChildKind::ALL
                .into_iter()
                .filter(|k| k.api_version() == group_version)
                .filter(|k| plurals.iter().any(|p| p == k.plural())),
        );
    }
    let prometheuses = if served.contains(&ChildKind::PodMonitor) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &prometheus_resource());
        let list = api.list(&ListParams::default()).await?;
        let mut selectors = Vec::with_capacity(list.items.len());
        for item in &list.items {
            let value = serde_json::to_value(item).map_err(kube::Error::SerdeError)?;
            selectors
                .push(PrometheusSelectors::from_object(&value).map_err(kube::Error::SerdeError)?);
        }
        selectors
    } else {
        Vec::new()
    };
    let existing_dcgm_exporter = find_exporter(client, scope).await?;
    Ok(Discovered {
        served,
        prometheuses,
        existing_dcgm_exporter,
    })
}

/// The first known DCGM exporter whose pods run, looked for cluster-wide (metadata only), or in
/// the namespaces of `scope` when listing pods cluster-wide is forbidden.
pub async fn find_exporter(
    client: &Client,
    scope: &[String],
) -> Result<Option<FoundExporter>, kube::Error> {
    for kind in KNOWN_EXPORTERS {
        let params = ListParams::default().labels(kind.selector).limit(1);
        let all: Api<Pod> = Api::all(client.clone());
        let pods = match all.list_metadata(&params).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.is_forbidden() && !scope.is_empty() => {
                let mut pods = Vec::new();
                for ns in scope {
                    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                    pods.extend(api.list_metadata(&params).await?.items);
                    if !pods.is_empty() {
                        break;
                    }
                }
                pods
            }
            Err(err) => return Err(err),
        };
        if let Some(pod) = pods.first() {
            return Ok(Some(FoundExporter {
                kind,
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            }));
        }
    }
    Ok(None)
}

/// The labels of a namespace, for namespace selectors. Only read when a selector needs more
/// than the namespace's name.
pub async fn namespace_labels(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api.get_metadata(namespace).await?;
    Ok(ns.metadata.labels.unwrap_or_default())
}

/// Whether matching `prometheuses`' namespace selectors needs a namespace's labels beyond
/// its name (a selector other than null or `{}`).
pub fn needs_namespace_labels(prometheuses: &[PrometheusSelectors]) -> bool {
    prometheuses.iter().any(|p| {
        [
            &p.pod_monitor_namespace_selector,
            &p.service_monitor_namespace_selector,
            &p.scrape_config_namespace_selector,
            &p.rule_namespace_selector,
        ]
        .into_iter()
        .flatten()
        .any(|s| {
            s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
                || s.match_expressions.as_ref().is_some_and(|m| !m.is_empty())
        })
    })
}
