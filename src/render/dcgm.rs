//! The NVIDIA DCGM exporter, once for the whole cluster: a DaemonSet (one pod per GPU node),
//! its counters ConfigMap, its Service and one monitor, built from the operator's
//! [`GpuExporterSettings`] for every resource that wants GPU telemetry. Whether an exporter
//! infmon did not deploy already runs is decided before (those resources resolve to
//! [`DcgmPlan::SkippedExisting`] and want nothing here).
//!
//! Hardening: the pod gets `seccompProfile: RuntimeDefault` and the container a read-only root
//! filesystem with an `emptyDir` at `/tmp` for the embedded host engine's scratch files. It
//! runs as root because DCGM opens the NVIDIA device nodes and the kubelet's pod-resources
//! socket, both root-owned on the node; every capability is dropped, and `SYS_ADMIN` is added
//! back only when the operator asks for profiling counters (`DCGM_FI_PROF_*`). No
//! PriorityClass unless the operator names one. `honorLabels: true` keeps the exporter's
//! `pod`/`namespace` labels (the GPU's workload) instead of renaming them `exported_*`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::monitors::kubernetes_sd;
use super::relabel::{pod_labels, pod_selection, to_operator, to_prometheus};
use super::scrape::scrape_configs_secret;
use crate::api::parse_duration;
use crate::model::{Child, ChildKind, RenderError, shared_labels};
use crate::validate::{DcgmPlan, GpuExporterSettings, Namespaces, Output, PortRef, Validated};

/// Component label of the exporter's objects.
pub const DCGM_COMPONENT: &str = "dcgm-exporter";
/// Name of every exporter object (one per cluster, in the operator's exporter namespace).
pub const EXPORTER_NAME: &str = "infmon-dcgm-exporter";
/// The exporter's metrics port.
pub const DCGM_PORT: u16 = 9400;
/// Name of the metrics port on the container and the Service.
pub const DCGM_PORT_NAME: &str = "metrics";
/// The kubelet's pod-resources directory (pod ↔ GPU mapping).
pub const POD_RESOURCES_PATH: &str = "/var/lib/kubelet/pod-resources";
/// Where the counters file is mounted.
const COUNTERS_DIR: &str = "/etc/infmon-dcgm";
/// The counters file's key in the ConfigMap.
const COUNTERS_FILE: &str = "counters.csv";
const MAX_SCRAPE_TIMEOUT: &str = "10s";

/// The fields the exporter collects: what the dashboards read plus common health signals,
/// as (field, Prometheus type, help).
const COUNTERS: [(&str, &str, &str); 12] = [
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "gauge",
        "Memory utilization (in %).",
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "Framebuffer memory used (in MiB).",
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "gauge",
        "Framebuffer memory free (in MiB).",
    ),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
    ),
    (
        "DCGM_FI_DEV_SM_CLOCK",
        "gauge",
        "SM clock frequency (in MHz).",
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        "gauge",
        "Memory clock frequency (in MHz).",
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        "gauge",
        "Value of the last XID error encountered.",
    ),
    (
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "counter",
        "Total number of PCIe retries.",
    ),
    ("DCGM_FI_DRIVER_VERSION", "label", "Driver version."),
];

/// The profiling (DCP) fields, collected only with the operator's `profiling` setting: they
/// need `SYS_ADMIN`.
const PROFILING_COUNTERS: [(&str, &str, &str); 3] = [
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active.",
    ),
];

/// The resources among `resources` that want infmon's exporter, in key order.
pub fn users(resources: &[Validated]) -> Vec<&Validated> {
    let mut users: Vec<&Validated> = resources
        .iter()
        .filter(|r| r.dcgm == DcgmPlan::Deploy)
        .collect();
    users.sort_by_key(|r| r.key());
    users
}

/// The exporter's objects when at least one of `resources` wants it: counters ConfigMap,
/// DaemonSet, Service, and a ServiceMonitor, or, when every user scrapes through raw scrape
/// configs, a Secret with the exporter's raw job.
pub fn children(
    settings: &GpuExporterSettings,
    resources: &[Validated],
) -> Result<Vec<Child>, RenderError> {
    let users = users(resources);
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut children = vec![
        Child::new(ChildKind::ConfigMap, &counters(settings))?,
        Child::new(ChildKind::DaemonSet, &daemon_set(settings))?,
        Child::new(ChildKind::Service, &service(settings))?,
    ];
    if users.iter().any(|r| r.output != Output::RawScrapeConfig) {
        children.push(service_monitor(settings, &users));
    } else {
        children.push(raw_scrape_config_secret(settings)?);
    }
    Ok(children)
}

fn meta(settings: &GpuExporterSettings) -> ObjectMeta {
    ObjectMeta {
        name: Some(EXPORTER_NAME.to_string()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(shared_labels(DCGM_COMPONENT)),
        ..Default::default()
    }
}

/// The labels on the exporter's pods and Service, also their selector.
fn selector_labels() -> BTreeMap<String, String> {
    shared_labels(DCGM_COMPONENT)
}

fn scrape_timeout(interval: &str) -> String {
    if parse_duration(interval) < parse_duration(MAX_SCRAPE_TIMEOUT) {
        interval.to_string()
    } else {
        MAX_SCRAPE_TIMEOUT.to_string()
    }
}

/// The counters file (`-f`): [`COUNTERS`], plus [`PROFILING_COUNTERS`] with profiling on.
pub fn counters(settings: &GpuExporterSettings) -> ConfigMap {
    let profiling = if settings.profiling {
        &PROFILING_COUNTERS[..]
    } else {
        &[]
    };
    let mut csv = String::from("# Generated by infmon: field, Prometheus type, help.\n");
    for (field, kind, help) in COUNTERS.iter().chain(profiling) {
        csv.push_str(&format!("{field}, {kind}, {help}\n"));
    }
    ConfigMap {
        metadata: meta(settings),
        data: Some(BTreeMap::from([(COUNTERS_FILE.to_string(), csv)])),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn container_security(settings: &GpuExporterSettings) -> SecurityContext {
    SecurityContext {
        privileged: Some(false),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        capabilities: Some(Capabilities {
            add: settings.profiling.then(|| vec!["SYS_ADMIN".into()]),
            drop: Some(vec!["ALL".into()]),
        }),
        ..Default::default()
    }
}

/// The exporter DaemonSet.
pub fn daemon_set(settings: &GpuExporterSettings) -> DaemonSet {
    let labels = selector_labels();
    let health_probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::String(DCGM_PORT_NAME.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(45),
        period_seconds: Some(10),
        ..Default::default()
    };
    let container = Container {
        name: DCGM_COMPONENT.into(),
        image: Some(settings.image.clone()),
        env: Some(vec![
            env("DCGM_EXPORTER_LISTEN", &format!(":{DCGM_PORT}")),
            env("DCGM_EXPORTER_KUBERNETES", "true"),
            env(
                "DCGM_EXPORTER_COLLECTORS",
                &format!("{COUNTERS_DIR}/{COUNTERS_FILE}"),
            ),
            EnvVar {
                name: "NODE_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.nodeName".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(DCGM_PORT_NAME.into()),
            container_port: i32::from(DCGM_PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        security_context: Some(container_security(settings)),
        volume_mounts: Some(vec![
            mount("pod-resources", POD_RESOURCES_PATH, true),
            mount("counters", COUNTERS_DIR, true),
            mount("scratch", "/tmp", false),
        ]),
        resources: Some(settings.resources.clone()),
        liveness_probe: Some(health_probe.clone()),
        readiness_probe: Some(health_probe),
        ..Default::default()
    };
    DaemonSet {
        metadata: meta(settings),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    node_selector: (!settings.node_selector.is_empty())
                        .then(|| settings.node_selector.clone()),
                    tolerations: (!settings.tolerations.is_empty())
                        .then(|| settings.tolerations.clone()),
                    runtime_class_name: settings.runtime_class_name.clone(),
                    priority_class_name: settings.priority_class_name.clone(),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "pod-resources".into(),
                            host_path: Some(HostPathVolumeSource {
                                path: POD_RESOURCES_PATH.into(),
                                type_: Some("Directory".into()),
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "counters".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: EXPORTER_NAME.into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "scratch".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The exporter Service: port 9400 named `metrics`.
pub fn service(settings: &GpuExporterSettings) -> Service {
    Service {
        metadata: meta(settings),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some(DCGM_PORT_NAME.into()),
                port: i32::from(DCGM_PORT),
                target_port: Some(IntOrString::String(DCGM_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The monitor labels of the exporter's monitor: every user's `monitorLabels`, the first user
/// (by `namespace/name`) winning a clash, so each user's Prometheus selects it.
fn monitor_labels(users: &[&Validated]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for user in users {
        for (key, value) in &user.monitor_labels {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    labels.extend(shared_labels(DCGM_COMPONENT));
    labels
}

/// The ServiceMonitor for the exporter Service, with `honorLabels: true`.
pub fn service_monitor(settings: &GpuExporterSettings, users: &[&Validated]) -> Child {
    Child::from_value(
        ChildKind::ServiceMonitor,
        json!({
            "metadata": {
                "name": EXPORTER_NAME,
                "namespace": settings.namespace,
                "labels": monitor_labels(users),
            },
            "spec": {
                "selector": {"matchLabels": selector_labels()},
                "namespaceSelector": {"matchNames": [settings.namespace]},
                "endpoints": [{
                    "port": DCGM_PORT_NAME,
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": settings.interval,
                    "scrapeTimeout": scrape_timeout(&settings.interval),
                    "honorLabels": true,
                    "relabelings": to_operator(&pod_labels()),
                }],
            },
        }),
    )
}

/// The exporter's plain scrape job, for Prometheus servers configured with raw scrape configs.
pub fn plain_job(settings: &GpuExporterSettings) -> Result<Value, RenderError> {
    let namespaces = Namespaces::Names(vec![settings.namespace.clone()]);
    let selector = LabelSelector {
        match_labels: Some(selector_labels()),
        ..Default::default()
    };
    let mut rules = pod_selection(
        &selector,
        &namespaces,
        &PortRef::Name(DCGM_PORT_NAME.into()),
    )?;
    rules.extend(pod_labels());
    Ok(json!({
        "job_name": format!("{}/{EXPORTER_NAME}", settings.namespace),
        "scrape_interval": settings.interval,
        "scrape_timeout": scrape_timeout(&settings.interval),
        "metrics_path": "/metrics",
        "scheme": "http",
        "honor_labels": true,
        "kubernetes_sd_configs": kubernetes_sd(&namespaces),
        "relabel_configs": rules.iter().map(to_prometheus).collect::<Vec<_>>(),
    }))
}

/// The Secret with the exporter's raw `scrape_configs` list (add it to the Prometheus'
/// additional scrape configs next to the resources' own).
pub fn raw_scrape_config_secret(settings: &GpuExporterSettings) -> Result<Child, RenderError> {
    let mut metadata = meta(settings);
    metadata.name = Some(format!("{EXPORTER_NAME}-scrape-config"));
    scrape_configs_secret(metadata, &[plain_job(settings)?])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validated_from_yaml;
    use super::*;

    fn resource(namespace: &str, name: &str, output: &str, enabled: bool) -> Validated {
        validated_from_yaml(&format!(
            r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  engine: vllm
  selector: {{matchLabels: {{app: chat}}}}
  prometheus: {{output: {output}, monitorLabels: {{release: kps-{namespace}}}}}
  gpu: {{dcgmExporter: {{enabled: {enabled}}}}}
"#
        ))
    }

    fn kinds(children: &[Child]) -> Vec<ChildKind> {
        children.iter().map(|c| c.kind).collect()
    }

    fn settings() -> GpuExporterSettings {
        GpuExporterSettings {
            namespace: "gpu".into(),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_unless_a_resource_wants_it() {
        let off = [resource("llm", "chat", "podMonitor", false)];
        assert!(children(&settings(), &off).unwrap().is_empty());
        assert!(children(&settings(), &[]).unwrap().is_empty());
    }

    #[test]
    fn one_exporter_for_every_user() {
        let resources = [
            resource("llm", "vllm", "podMonitor", true),
            resource("team-b", "vllm", "podMonitor", true),
            resource("team-c", "chat", "podMonitor", false),
        ];
        let all = children(&settings(), &resources).unwrap();
        assert_eq!(
            kinds(&all),
            [
                ChildKind::ConfigMap,
                ChildKind::DaemonSet,
                ChildKind::Service,
                ChildKind::ServiceMonitor
            ]
        );
        for child in &all {
            assert_eq!(
                (child.namespace.as_str(), child.name.as_str()),
                ("gpu", EXPORTER_NAME)
            );
            let labels = &child.object["metadata"]["labels"];
            assert_eq!(labels["monitoring.inference.dev/shared"], "true");
            assert!(labels.get("monitoring.inference.dev/owner-name").is_none());
        }
        // Both users' Prometheus selectors find the monitor.
        let monitor = &all[3].object;
        assert_eq!(monitor["metadata"]["labels"]["release"], "kps-llm");
        assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], json!(true));
        assert_eq!(
            monitor["spec"]["selector"]["matchLabels"],
            all[2].object["spec"]["selector"]
        );
    }

    #[test]
    fn hardened_by_default_and_sys_admin_only_for_profiling() {
        let ds = serde_json::to_value(daemon_set(&settings())).unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"],
            json!({"seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert!(pod.get("priorityClassName").is_none());
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"],
            json!({
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsUser": 0,
                "runAsNonRoot": false,
                "capabilities": {"drop": ["ALL"]},
            })
        );
        assert!(
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "scratch", "mountPath": "/tmp", "readOnly": false}))
        );
        assert!(!counters(&settings()).data.unwrap()[COUNTERS_FILE].contains("DCGM_FI_PROF_"));

        let profiling = GpuExporterSettings {
            profiling: true,
            priority_class_name: Some("system-node-critical".into()),
            ..settings()
        };
        let ds = serde_json::to_value(daemon_set(&profiling)).unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        assert_eq!(
            pod["containers"][0]["securityContext"]["capabilities"],
            json!({"add": ["SYS_ADMIN"], "drop": ["ALL"]})
        );
        assert!(counters(&profiling).data.unwrap()[COUNTERS_FILE].contains("DCGM_FI_PROF_"));
    }

    #[test]
    fn raw_users_only_get_a_raw_job_instead_of_a_monitor() {
        let resources = [resource("llm", "chat", "rawScrapeConfig", true)];
        let all = children(&settings(), &resources).unwrap();
        assert_eq!(
            kinds(&all),
            [
                ChildKind::ConfigMap,
                ChildKind::DaemonSet,
                ChildKind::Service,
                ChildKind::Secret
            ]
        );
        let job = plain_job(&settings()).unwrap();
        assert_eq!(job["job_name"], "gpu/infmon-dcgm-exporter");
        assert_eq!(job["scrape_timeout"], "10s");
        assert_eq!(job["honor_labels"], true);
    }
}
