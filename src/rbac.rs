//! Every Kubernetes API permission the operator uses, in one table. The controller's calls are
//! made only through kinds listed here, and the Helm chart's ClusterRole/Roles are checked
//! against it by a test, so RBAC and code cannot drift apart.

use crate::render::ChildKind;

/// Where a permission is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The whole cluster, in both modes (cluster-scoped kinds and reads across namespaces).
    Cluster,
    /// Every namespace the operator reads and writes: the whole cluster in cluster mode (a
    /// ClusterRole); in namespaced mode each watched namespace and the exporter's (a Role each).
    Watched,
    /// Only the namespace of the shared DCGM exporter (the chart's `gpuExporter.namespace`).
    ExporterNamespace,
    /// Only the operator's own namespace (the leader-election Lease).
    OperatorNamespace,
}

/// One RBAC rule: where, API group, resource and verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// Where it is granted.
    pub scope: Scope,
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
        scope: Scope::Watched,
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings",
        verbs: &["list", "patch", "watch"],
    },
    // Status is written by server-side apply.
    Permission {
        scope: Scope::Watched,
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings/status",
        verbs: &["patch"],
    },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    Permission {
        scope: Scope::Watched,
        group: "monitoring.inference.dev",
        resource: "inferencemonitorings/finalizers",
        verbs: &["update"],
    },
    // The pod cache (engine detection, DCGM exporter detection) lists pods (metadata only)
    // cluster-wide and watches them where resources are watched; pod changes re-trigger
    // reconciles; the shared exporter's readiness reads its pods from that cache.
    Permission {
        scope: Scope::Cluster,
        group: "",
        resource: "pods",
        verbs: &["list"],
    },
    // Pod changes re-trigger reconciles (the list before the watch is granted cluster-wide).
    Permission {
        scope: Scope::Watched,
        group: "",
        resource: "pods",
        verbs: &["watch"],
    },
    // Namespace labels for Prometheus namespace selectors, cached from a metadata watch
    // (optional: without it, namespaces are matched by name only).
    Permission {
        scope: Scope::Cluster,
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
    },
    // A metadata watch of CRDs: when one is installed or removed, the served kinds are read
    // again and their watches started or stopped (without it, they are polled).
    Permission {
        scope: Scope::Cluster,
        group: "apiextensions.k8s.io",
        resource: "customresourcedefinitions",
        verbs: &["list", "watch"],
    },
    // Which Prometheus selects the monitors, and what labels it needs; watched to react to
    // selector changes. They usually run in a namespace the operator does not watch.
    Permission {
        scope: Scope::Cluster,
        group: "monitoring.coreos.com",
        resource: "prometheuses",
        verbs: &["list", "watch"],
    },
    // PrometheusAgents select monitors like Prometheuses do; the other known consumers of
    // monitors are watched so that infmon does not report NotSelected where they run (and
    // one created later changes the selection without a restart).
    Permission {
        scope: Scope::Cluster,
        group: "monitoring.coreos.com",
        resource: "prometheusagents",
        verbs: &["list", "watch"],
    },
    Permission {
        scope: Scope::Cluster,
        group: "operator.victoriametrics.com",
        resource: "vmagents",
        verbs: &["list", "watch"],
    },
    Permission {
        scope: Scope::Cluster,
        group: "opentelemetry.io",
        resource: "opentelemetrycollectors",
        verbs: &["list", "watch"],
    },
    Permission {
        scope: Scope::Cluster,
        group: "collectors.grafana.com",
        resource: "alloys",
        verbs: &["list", "watch"],
    },
    // Events are created, and repeats patched into a series.
    Permission {
        scope: Scope::Watched,
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
    // Leader election: read, create once, then renew/take over by replace.
    Permission {
        scope: Scope::OperatorNamespace,
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "get", "update"],
    },
];

/// Every permission, Secrets included, sorted by scope, group and resource.
pub fn permissions() -> Vec<Permission> {
    permissions_with(true)
}

/// The permissions for a feature set, sorted by scope, group and resource. The generated kinds
/// are granted where the operator writes them: the shared exporter's DaemonSet and Service
/// ([`ChildKind::exporter_only`]) in the exporter's namespace only, the others in every
/// watched namespace. Without `secrets` (`--without-secrets`) the operator neither writes the
/// raw scrape-config Secret nor reads query credentials, so it gets no access to Secrets.
pub fn permissions_with(secrets: bool) -> Vec<Permission> {
    let mut all: Vec<Permission> = ChildKind::ALL
        .iter()
        .filter(|kind| secrets || **kind != ChildKind::Secret)
        .map(|kind| Permission {
            scope: if kind.exporter_only() {
                Scope::ExporterNamespace
            } else {
                Scope::Watched
            },
            group: kind.group(),
            resource: kind.plural(),
            verbs: CHILD_VERBS,
        })
        .chain(OTHER_PERMISSIONS.iter().copied())
        .collect();
    all.sort_by_key(|p| (p.scope, p.group, p.resource));
    all
}

/// The permissions of one scope for a feature set.
pub fn permissions_in(scope: Scope, secrets: bool) -> Vec<Permission> {
    permissions_with(secrets)
        .into_iter()
        .filter(|p| p.scope == scope)
        .collect()
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

    #[test]
    fn daemon_sets_and_services_only_in_the_exporter_namespace() {
        let exporter: Vec<(&str, &str)> = permissions_in(Scope::ExporterNamespace, true)
            .iter()
            .map(|p| (p.group, p.resource))
            .collect();
        assert_eq!(exporter, [("", "services"), ("apps", "daemonsets")]);
        for scope in [Scope::Cluster, Scope::Watched, Scope::OperatorNamespace] {
            assert!(
                permissions_in(scope, true)
                    .iter()
                    .all(|p| !["services", "daemonsets"].contains(&p.resource)),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn cluster_wide_in_both_modes_only_reads() {
        for p in permissions_in(Scope::Cluster, true) {
            assert!(
                p.verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
                "{p:?}"
            );
            assert_ne!(p.resource, "secrets");
        }
    }
}
