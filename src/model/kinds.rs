//! The kinds of object infmon generates, as one table: API version, kind and plural are data
//! the renderer, the controller's apply/prune and the RBAC rules all read.

/// A kind infmon generates. Declaration order is the apply order (configuration before the
/// workloads that read it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// `v1` Secret (raw scrape configs).
    Secret,
    /// `v1` ConfigMap (dashboards).
    ConfigMap,
    /// `v1` Service (DCGM exporter).
    Service,
    /// `apps/v1` DaemonSet (DCGM exporter).
    DaemonSet,
    /// `monitoring.coreos.com/v1` PodMonitor.
    PodMonitor,
    /// `monitoring.coreos.com/v1` ServiceMonitor.
    ServiceMonitor,
    /// `monitoring.coreos.com/v1alpha1` ScrapeConfig.
    ScrapeConfig,
    /// `monitoring.coreos.com/v1` PrometheusRule.
    PrometheusRule,
    /// `grafana.integreatly.org/v1beta1` GrafanaDashboard.
    GrafanaDashboard,
}

impl ChildKind {
    /// Every kind, in apply order.
    pub const ALL: [ChildKind; 9] = [
        ChildKind::Secret,
        ChildKind::ConfigMap,
        ChildKind::Service,
        ChildKind::DaemonSet,
        ChildKind::PodMonitor,
        ChildKind::ServiceMonitor,
        ChildKind::ScrapeConfig,
        ChildKind::PrometheusRule,
        ChildKind::GrafanaDashboard,
    ];

    fn row(self) -> (&'static str, &'static str, &'static str, &'static str) {
        // (group, version, kind, plural)
        match self {
            ChildKind::Secret => ("", "v1", "Secret", "secrets"),
            ChildKind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            ChildKind::Service => ("", "v1", "Service", "services"),
            ChildKind::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets"),
            ChildKind::PodMonitor => ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
            ChildKind::ServiceMonitor => (
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
            ),
            ChildKind::ScrapeConfig => (
                "monitoring.coreos.com",
                "v1alpha1",
                "ScrapeConfig",
                "scrapeconfigs",
            ),
            ChildKind::PrometheusRule => (
                "monitoring.coreos.com",
                "v1",
                "PrometheusRule",
                "prometheusrules",
            ),
            ChildKind::GrafanaDashboard => (
                "grafana.integreatly.org",
                "v1beta1",
                "GrafanaDashboard",
                "grafanadashboards",
            ),
        }
    }

    /// API group (`""` for core).
    pub fn group(self) -> &'static str {
        self.row().0
    }
    /// API version without the group.
    pub fn version(self) -> &'static str {
        self.row().1
    }
    /// Kind.
    pub fn kind(self) -> &'static str {
        self.row().2
    }
    /// Plural resource name.
    pub fn plural(self) -> &'static str {
        self.row().3
    }
    /// `group/version`, or `version` for the core group.
    pub fn api_version(self) -> &'static str {
        match self {
            ChildKind::Secret | ChildKind::ConfigMap | ChildKind::Service => "v1",
            ChildKind::DaemonSet => "apps/v1",
            ChildKind::PodMonitor | ChildKind::ServiceMonitor | ChildKind::PrometheusRule => {
                "monitoring.coreos.com/v1"
            }
            ChildKind::ScrapeConfig => "monitoring.coreos.com/v1alpha1",
            ChildKind::GrafanaDashboard => "grafana.integreatly.org/v1beta1",
        }
    }
    /// The kube `ApiResource` for dynamic API calls.
    pub fn api_resource(self) -> kube::api::ApiResource {
        let gvk = kube::api::GroupVersionKind::gvk(self.group(), self.version(), self.kind());
        kube::api::ApiResource::from_gvk_with_plural(&gvk, self.plural())
    }
    /// Whether only the shared DCGM exporter uses the kind (its DaemonSet and Service): no
    /// resource owns such an object, and the operator reads and writes the kind only in the
    /// exporter's namespace (where alone RBAC grants it).
    pub fn exporter_only(self) -> bool {
        matches!(self, ChildKind::Service | ChildKind::DaemonSet)
    }
    /// Whether the kind comes from an optional CRD (it may be missing from a cluster).
    pub fn is_optional_api(self) -> bool {
        !self.group().is_empty() && self.group() != "apps"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_agrees_with_group_and_version() {
        for kind in ChildKind::ALL {
            let expected = if kind.group().is_empty() {
                kind.version().to_string()
            } else {
                format!("{}/{}", kind.group(), kind.version())
            };
            assert_eq!(kind.api_version(), expected);
            assert_eq!(kind.api_resource().plural, kind.plural());
        }
        assert!(ChildKind::PodMonitor.is_optional_api());
        assert!(!ChildKind::DaemonSet.is_optional_api());
    }
}
