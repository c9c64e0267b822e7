//! Every Kubernetes API permission the operator uses, in one table. The controller's calls are
//! made only through kinds listed here, and the Helm chart's ClusterRole/Roles are checked
//! against it by a test, so RBAC and code cannot drift apart.

use crate::render::ChildKind;

/// One RBAC rule: API group, resource and verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource (plural, optionally with a subresource, e.g. `inferencemonitorings/status`).
    pub resource: &'static str,
    /// Verbs, sorted.
    pub verbs: &'static [&'static str],
}

/// Verbs the operator needs on the kinds it generates: read its watch cache, apply
/// (server-side apply is `patch`; a first apply of a missing object is `create` authorization
/// too), and prune.
pub const CHILD_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "watch"];

/// Permissions beyond the generated kinds, each for a call the controller makes (API
/// discovery under `/apis/<group>/<version>` is a non-resource URL every authenticated user
/// may read).
pub const OTHER_PERMISSIONS: &[Permission] = &[
    // The controller's watch; the finalizer helper adds and removes the finalizer by patch.
    Permission {
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings",
        verbs: &["list", "patch", "watch"],
    },
    // Status is written by server-side apply.
    Permission {
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings/status",
        verbs: &["patch"],
    },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    Permission {
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings/finalizers",
        verbs: &["update"],
    },
    // Engine detection lists the selected pods; pod changes re-trigger reconciles (watch);
    // DCGM exporter detection lists the pods of known exporters cluster-wide (metadata only;
    // the chart grants this list in its ClusterRole in namespaced mode too); the shared
    // exporter's readiness lists its own pods.
    Permission {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
    },
    // Namespace labels for Prometheus namespace selectors (optional: without it, namespaces
    // are matched by name only).
    Permission {
        group: "",
        resource: "namespaces",
        verbs: &["get"],
    },
    // Which Prometheus selects the monitors, and what labels it needs; watched to react to
    // selector changes.
    Permission {
        group: "monitoring.coreos.com",
        resource: "prometheuses",
        verbs: &["list", "watch"],
    },
    // PrometheusAgents select monitors like Prometheuses do; the other known consumers of
    // monitors are listed so that infmon does not report NotSelected where they run.
    Permission {
        group: "monitoring.coreos.com",
        resource: "prometheusagents",
        verbs: &["list"],
    },
    Permission {
        group: "operator.victoriametrics.com",
        resource: "vmagents",
        verbs: &["list"],
    },
    Permission {
        group: "opentelemetry.io",
        resource: "opentelemetrycollectors",
        verbs: &["list"],
    },
    Permission {
        group: "collectors.grafana.com",
        resource: "alloys",
        verbs: &["list"],
    },
    // Events are created, and repeats patched into a series.
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
    // Leader election: read, create once, then renew/take over by replace.
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "get", "update"],
    },
];

/// Every permission, sorted by group then resource.
pub fn permissions() -> Vec<Permission> {
    permissions_with(true)
}

/// The permissions for a feature set: without `secrets` (`--without-secrets`) the operator
/// neither writes the raw scrape-config Secret nor reads query credentials, so it gets no
/// access to Secrets at all.
pub fn permissions_with(secrets: bool) -> Vec<Permission> {
    let mut all: Vec<Permission> = ChildKind::ALL
        .iter()
        .filter(|kind| secrets || **kind != ChildKind::Secret)
        .map(|kind| Permission {
            group: kind.group(),
            resource: kind.plural(),
            verbs: CHILD_VERBS,
        })
        .chain(OTHER_PERMISSIONS.iter().copied())
        .collect();
    all.sort_by_key(|p| (p.group, p.resource));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_and_verbs_sorted() {
        for p in permissions() {
            assert!(!p.group.contains('*') && !p.resource.contains('*'));
            assert!(p.verbs.iter().all(|v| *v != "*"));
            assert!(p.verbs.windows(2).all(|w| w[0] < w[1]), "{p:?}");
        }
    }

    #[test]
    fn without_secrets_nothing_touches_secrets() {
        assert!(
            permissions_with(false)
                .iter()
                .all(|p| p.resource != "secrets")
        );
        assert!(permissions().iter().any(|p| p.resource == "secrets"));
        assert_eq!(permissions_with(false).len() + 1, permissions().len());
    }

    #[test]
    fn every_generated_kind_is_covered() {
        let all = permissions();
        for kind in ChildKind::ALL {
            assert!(
                all.iter()
                    .any(|p| p.group == kind.group() && p.resource == kind.plural())
            );
        }
    }
}
