//! The child model every builder shares: what kind of object a child is ([`ChildKind`]), the
//! generated object itself ([`Child`]), why building failed ([`RenderError`]), and the names,
//! labels, hashes and target-label constants that tie a child to its owner.
//!
//! This module sits below every builder (scrape configuration, DCGM exporter, dashboards,
//! rules) and imports none of them, so imports point one way: model ← builders ← orchestration.

mod kinds;
mod names;
mod shared;

pub use kinds::ChildKind;
pub use names::{
    MANAGER, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, child_name, hex_sha256, label_value,
    owner_selector, short_hash, standard_labels,
};
pub use shared::{SHARED_LABEL, foreign_name, shared_labels, shared_selector};

use serde::Serialize;
use serde_json::Value;

use crate::validate::Validated;

/// Target label naming the owning resource (`<namespace>/<name>`); the health checks group by it.
/// The same name `resolve` reserves against user matchers and relabelings.
pub const INFERENCE_MONITORING_LABEL: &str = crate::validate::OWNER_TARGET_LABEL;
/// Target label naming the engine. Not `engine`: vLLM already exports an `engine` label.
pub const INFERENCE_ENGINE_LABEL: &str = crate::validate::ENGINE_TARGET_LABEL;

/// One generated object: its kind from the [`ChildKind`] table and its full manifest
/// (`apiVersion`, `kind`, `metadata`, …) as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// What kind of object it is.
    pub kind: ChildKind,
    /// Namespace (every child kind is namespaced).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The manifest.
    pub object: Value,
}

/// Why children could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A builder produced something that does not serialize (a bug).
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        /// Kind being built.
        kind: &'static str,
        /// Name being built.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A raw scrape config could not be written as YAML (a bug).
    #[error("cannot write the scrape configs of {name} as YAML: {source}")]
    Yaml {
        /// Name of the Secret being built.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A PodMonitor or ServiceMonitor was asked for static targets.
    #[error(
        "{resource}: spec.prometheus.output: PodMonitor and ServiceMonitor select pods and cannot scrape spec.staticTargets"
    )]
    StaticTargets {
        /// `namespace/name` of the resource.
        resource: String,
    },
    /// A label selector requirement Kubernetes would reject.
    #[error("spec.selector.matchExpressions: key {key:?}: {reason}")]
    InvalidSelector {
        /// The requirement's label key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A `prometheus.yml` was asked for pods, which only Kubernetes discovery can find.
    #[error(
        "{resource}: selects pods with spec.selector, which needs Kubernetes service discovery; a prometheus.yml can only scrape spec.staticTargets (use --format kubernetes)"
    )]
    NeedsKubernetes {
        /// `namespace/name` of the resource.
        resource: String,
    },
    /// A dashboard is too large to store in a Kubernetes object.
    #[error(
        "dashboard {name} is {size} bytes, over the {limit}-byte limit of a Kubernetes object; {hint}"
    )]
    TooLarge {
        /// Dashboard name.
        name: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
        /// What to do.
        hint: &'static str,
    },
}

impl Child {
    /// Wraps a typed object (k8s-openapi or our own struct that serializes to a full manifest).
    pub fn new(kind: ChildKind, object: &impl Serialize) -> Result<Self, RenderError> {
        let object = serde_json::to_value(object).map_err(|source| RenderError::Serialize {
            kind: kind.kind(),
            name: String::new(),
            source,
        })?;
        Ok(Self::from_value(kind, object))
    }

    /// Wraps a manifest already in JSON form, filling `apiVersion`/`kind` from the table.
    pub fn from_value(kind: ChildKind, mut object: Value) -> Self {
        object["apiVersion"] = Value::String(kind.api_version().to_string());
        object["kind"] = Value::String(kind.kind().to_string());
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or_default().to_string();
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        Self {
            kind,
            namespace,
            name,
            object,
        }
    }

    /// `Kind namespace/name`, for messages.
    pub fn display_name(&self) -> String {
        format!("{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

/// Orders children the way `infmon render` prints and the controller applies them: by kind
/// (in [`ChildKind`] declaration order), then namespace, then name.
pub fn sort_children(children: &mut [Child]) {
    children.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
}

/// Metadata shared by every child: name, namespace and the standard labels.
pub fn object_meta(
    resource: &Validated,
    namespace: &str,
    name: String,
    component: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(standard_labels(resource, component)),
        ..Default::default()
    }
}
