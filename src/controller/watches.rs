//! Which resources a watched object concerns: a pod matters to every InferenceMonitoring
//! whose selector picks it (for engine detection and "no pod matches" diagnoses). And how a
//! watch stream is run.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use tracing::warn;

use crate::api::InferenceMonitoring;
use crate::selector::matches;

/// Whether `resource` selects a pod in `namespace` with `labels`.
pub fn selects_pod(
    resource: &InferenceMonitoring,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = &resource.spec.selector else {
        return false;
    };
    let in_scope = match &resource.spec.namespace_selector {
        Some(ns) if ns.any == Some(true) => true,
        Some(ns) if ns.match_names.as_ref().is_some_and(|n| !n.is_empty()) => ns
            .match_names
            .iter()
            .flatten()
            .any(|name| name == namespace),
        _ => resource.namespace().as_deref() == Some(namespace),
    };
    in_scope && matches(selector, labels)
}

/// Runs a watch stream to its end, logging its failures (the watcher retries them).
pub(super) async fn drain<T, E: std::fmt::Display>(
    stream: impl Stream<Item = Result<T, E>>,
    what: &str,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Err(err) = event {
            warn!(watch = what, error = %err, "watch failed; retrying");
        }
    }
}

/// `ai/llm` with `spec`, for the controller's unit tests.
#[cfg(test)]
pub(super) fn test_resource(spec: serde_json::Value) -> InferenceMonitoring {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": "llm", "namespace": "ai"}, "spec": spec,
    }))
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::test_resource as resource;
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_are_matched_by_selector_and_namespace_scope() {
        let labels = BTreeMap::from([("app".to_string(), "vllm".to_string())]);
        let own = resource(json!({"selector": {"matchLabels": {"app": "vllm"}}}));
        assert!(selects_pod(&own, "ai", &labels));
        assert!(!selects_pod(&own, "other", &labels));
        assert!(!selects_pod(&own, "ai", &BTreeMap::new()));
        let named = resource(
            json!({"selector": {"matchLabels": {"app": "vllm"}}, "namespaceSelector": {"matchNames": ["a", "b"]}}),
        );
        assert!(selects_pod(&named, "b", &labels));
        assert!(!selects_pod(&named, "ai", &labels));
        let any = resource(
            json!({"selector": {"matchLabels": {"app": "vllm"}}, "namespaceSelector": {"any": true}}),
        );
        assert!(selects_pod(&any, "anywhere", &labels));
        let hosts = resource(json!({"staticTargets": ["10.0.0.1:8000"]}));
        assert!(!selects_pod(&hosts, "ai", &labels));
    }
}
