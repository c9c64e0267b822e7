//! Cluster-shared objects: the ones that exist once for every resource that wants them (the
//! DCGM exporter, one copy of each dashboard per dashboards namespace). They carry no owner
//! labels, only [`SHARED_LABEL`], so that no single resource's prune removes them; the
//! controller computes them from all resources at once and removes them by that label when no
//! resource wants them any more.

use std::collections::BTreeMap;

use super::names::{MANAGER, child_name, short_hash};
use crate::validate::Validated;

/// Label on every cluster-shared object (value `"true"`).
pub const SHARED_LABEL: &str = "monitoring.inference.dev/shared";

/// The labels of a shared object: the standard `app.kubernetes.io/*` ones and [`SHARED_LABEL`].
pub fn shared_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), MANAGER.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
        (SHARED_LABEL.to_string(), "true".to_string()),
    ])
}

/// The label selector that finds every shared object (for pruning).
pub fn shared_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGER},{SHARED_LABEL}=true")
}

/// The name of a per-resource object placed outside the resource's namespace:
/// `<namespace>-<name>-<suffix>-<hash of namespace/name>`, shortened to 63 characters. The
/// namespace keeps `llm/vllm` and `team-b/vllm` apart; the hash keeps `a-b/c` and `a/b-c`
/// apart.
pub fn foreign_name(resource: &Validated, suffix: &str) -> String {
    child_name(
        &format!("{}-{}", resource.namespace, resource.name),
        &format!("{suffix}-{}", short_hash(&resource.key())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::validated_from_yaml;

    fn resource(namespace: &str, name: &str) -> Validated {
        validated_from_yaml(&format!(
            "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{engine: vllm, selector: {{}}}}\n"
        ))
    }

    #[test]
    fn foreign_names_tell_namespaces_apart_and_fit() {
        let a = foreign_name(&resource("llm", "vllm"), "dashboard-vllm");
        let b = foreign_name(&resource("team-b", "vllm"), "dashboard-vllm");
        assert_ne!(a, b);
        assert!(a.starts_with("llm-vllm-dashboard-vllm-"), "{a}");
        let c = foreign_name(&resource("a-b", "c"), "x");
        let d = foreign_name(&resource("a", "b-c"), "x");
        assert_ne!(c, d);
        let long = foreign_name(
            &resource(&"n".repeat(63), &"m".repeat(63)),
            "dashboard-vllm",
        );
        assert!(long.len() <= 63, "{long}");
        assert_eq!(
            long,
            foreign_name(
                &resource(&"n".repeat(63), &"m".repeat(63)),
                "dashboard-vllm"
            )
        );
    }

    #[test]
    fn the_selector_matches_the_labels() {
        let labels = shared_labels("dashboard");
        for pair in shared_selector().split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            assert_eq!(labels[k], v);
        }
    }
}
