//! The operator's settings for the one DCGM exporter it runs for every resource: cluster-level
//! choices (image, namespace, nodes, priority, security) that belong to whoever installs the
//! operator (Helm values, the `--gpu-exporter` flag), never to a resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

/// Default DCGM exporter image.
pub const DEFAULT_GPU_EXPORTER_IMAGE: &str =
    "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless";
/// Default namespace of the exporter when neither the chart nor the flag names one.
pub const DEFAULT_GPU_EXPORTER_NAMESPACE: &str = "infmon-system";

/// How infmon runs its DCGM exporter (one DaemonSet for the whole cluster). JSON keys are
/// camelCase, as in the chart's `gpuExporter` values; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct GpuExporterSettings {
    /// Container image.
    pub image: String,
    /// Namespace of the DaemonSet, its Service and monitor.
    pub namespace: String,
    /// Nodes the exporter runs on.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for tainted GPU nodes.
    pub tolerations: Vec<Toleration>,
    /// PriorityClass of the pods; none by default (a node-critical class is the installer's
    /// choice, not a default in a user namespace).
    pub priority_class_name: Option<String>,
    /// RuntimeClass of the pods, e.g. `nvidia`; the cluster default when unset.
    pub runtime_class_name: Option<String>,
    /// CPU and memory of the exporter container.
    pub resources: ResourceRequirements,
    /// Collect DCGM profiling counters (`DCGM_FI_PROF_*`): adds the `SYS_ADMIN` capability the
    /// profiling module needs. Off by default.
    pub profiling: bool,
    /// How often Prometheus scrapes the exporter, e.g. `15s`.
    pub interval: String,
    /// Namespaces where a DCGM exporter infmon did not deploy (GPU Operator, dcgm-exporter
    /// chart, GKE) counts as already running, so infmon deploys none: platform namespaces a
    /// team cannot create pods in. A pod labelled like such an exporter elsewhere is ignored,
    /// so no team can switch the shared exporter off. `["*"]`: any namespace.
    pub existing_exporter_namespaces: Vec<String>,
}

/// The namespaces the GPU Operator (plain and on OpenShift), a cluster-level install and GKE's
/// managed monitoring run their DCGM exporters in, and the usual monitoring namespace.
pub const DEFAULT_EXISTING_EXPORTER_NAMESPACES: [&str; 5] = [
    "gpu-operator",
    "nvidia-gpu-operator",
    "kube-system",
    "gke-managed-system",
    "monitoring",
];

impl Default for GpuExporterSettings {
    fn default() -> Self {
        Self {
            image: DEFAULT_GPU_EXPORTER_IMAGE.to_string(),
            namespace: DEFAULT_GPU_EXPORTER_NAMESPACE.to_string(),
            node_selector: BTreeMap::from([(
                "nvidia.com/gpu.present".to_string(),
                "true".to_string(),
            )]),
            tolerations: vec![Toleration {
                key: Some("nvidia.com/gpu".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }],
            priority_class_name: None,
            runtime_class_name: None,
            resources: ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("100m".into())),
                    ("memory".to_string(), Quantity("128Mi".into())),
                ])),
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity("512Mi".into()),
                )])),
                ..Default::default()
            },
            profiling: false,
            interval: super::DEFAULT_INTERVAL.to_string(),
            existing_exporter_namespaces: DEFAULT_EXISTING_EXPORTER_NAMESPACES
                .map(String::from)
                .to_vec(),
        }
    }
}

impl GpuExporterSettings {
    /// Parses the `--gpu-exporter` flag: a JSON object with any of the fields (the chart passes
    /// its `gpuExporter` values), the rest defaulted. Empty text gives the defaults.
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let settings: Self = serde_json::from_str(text)
            .map_err(|e| format!("--gpu-exporter: not valid settings JSON: {e}"))?;
        if settings.namespace.is_empty() || settings.image.is_empty() {
            return Err("--gpu-exporter: namespace and image must not be empty".into());
        }
        if crate::api::parse_duration(&settings.interval).is_none() {
            return Err(format!(
                "--gpu-exporter: interval {:?} is not a duration like 15s",
                settings.interval
            ));
        }
        Ok(settings)
    }

    /// Whether an exporter found in `namespace` counts (see `existing_exporter_namespaces`).
    pub fn trusts_exporters_in(&self, namespace: &str) -> bool {
        self.existing_exporter_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_keeps_the_other_defaults() {
        let s = GpuExporterSettings::from_json(
            r#"{"namespace": "gpu", "priorityClassName": "system-node-critical", "profiling": true}"#,
        )
        .unwrap();
        assert_eq!(s.namespace, "gpu");
        assert_eq!(
            s.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert!(s.profiling);
        assert_eq!(s.image, DEFAULT_GPU_EXPORTER_IMAGE);
        assert_eq!(s.interval, "15s");
        assert!(s.trusts_exporters_in("gpu-operator") && !s.trusts_exporters_in("team-a"));
        let any = GpuExporterSettings::from_json(r#"{"existingExporterNamespaces": ["*"]}"#);
        assert!(any.unwrap().trusts_exporters_in("team-a"));
        assert_eq!(
            GpuExporterSettings::from_json("").unwrap(),
            GpuExporterSettings::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = GpuExporterSettings::from_json(r#"{"imag": "x"}"#).unwrap_err();
        assert!(err.contains("imag"), "{err}");
        assert!(GpuExporterSettings::from_json(r#"{"interval": "soon"}"#).is_err());
        assert!(GpuExporterSettings::from_json(r#"{"namespace": ""}"#).is_err());
    }
}
