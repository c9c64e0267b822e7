//! The NVIDIA DCGM exporter: DaemonSet, Service and its scrape configuration, built when the
//! resolved plan says to deploy one (whether one already runs is decided by the caller).
//!
//! Follows the upstream manifest: port 9400 named `metrics`, Kubernetes pod attribution
//! through the kubelet's pod-resources socket (read-only), capability `SYS_ADMIN` only for the
//! profiling counters, and `honorLabels: true` so the exporter's `pod`/`namespace` labels (the
//! GPU's workload) are kept instead of being renamed `exported_*`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::monitors::{kubernetes_sd, monitor_meta};
use super::relabel::{owner_label, pod_labels, pod_selection, to_operator, to_prometheus};
use super::{Child, ChildKind, RenderError, child_name, object_meta, standard_labels};
use crate::api::parse_duration;
use crate::validate::{DcgmExporter, DcgmPlan, Namespaces, Output, PortRef, Validated};

/// Component label of the exporter's objects.
pub const DCGM_COMPONENT: &str = "dcgm-exporter";
/// The exporter's metrics port.
pub const DCGM_PORT: u16 = 9400;
/// Name of the metrics port on the container and the Service.
pub const DCGM_PORT_NAME: &str = "metrics";
/// The kubelet's pod-resources directory (pod ↔ GPU mapping).
pub const POD_RESOURCES_PATH: &str = "/var/lib/kubelet/pod-resources";
const MAX_SCRAPE_TIMEOUT: &str = "10s";

/// The exporter's children: DaemonSet, Service and, for Prometheus Operator outputs, a
/// ServiceMonitor (raw outputs get a job in the raw Secret instead, see [`plain_job`]).
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    let DcgmPlan::Deploy(exporter) = &resource.dcgm else {
        return Ok(Vec::new());
    };
    let mut children = vec![
        Child::new(ChildKind::DaemonSet, &daemon_set(resource, exporter))?,
        Child::new(ChildKind::Service, &service(resource, exporter))?,
    ];
    if resource.output != Output::RawScrapeConfig {
        children.push(service_monitor(resource, exporter));
    }
    Ok(children)
}

fn name(resource: &Validated) -> String {
    child_name(&resource.name, DCGM_COMPONENT)
}

fn meta(resource: &Validated, exporter: &DcgmExporter) -> ObjectMeta {
    object_meta(
        resource,
        &exporter.namespace,
        name(resource),
        DCGM_COMPONENT,
    )
}

/// The labels on the exporter's pods and Service, also their selector.
fn selector_labels(resource: &Validated) -> BTreeMap<String, String> {
    standard_labels(resource, DCGM_COMPONENT)
}

fn scrape_timeout(interval: &str) -> String {
    if parse_duration(interval) < parse_duration(MAX_SCRAPE_TIMEOUT) {
        interval.to_string()
    } else {
        MAX_SCRAPE_TIMEOUT.to_string()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("512Mi".into()),
        )])),
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

/// The exporter DaemonSet.
pub fn daemon_set(resource: &Validated, exporter: &DcgmExporter) -> DaemonSet {
    let labels = selector_labels(resource);
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
        image: Some(exporter.image.clone()),
        env: Some(vec![
            env("DCGM_EXPORTER_LISTEN", &format!(":{DCGM_PORT}")),
            env("DCGM_EXPORTER_KUBERNETES", "true"),
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
        security_context: Some(SecurityContext {
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: Some(vec!["SYS_ADMIN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "pod-resources".into(),
            mount_path: POD_RESOURCES_PATH.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        resources: Some(exporter.resources.clone().unwrap_or_else(default_resources)),
        liveness_probe: Some(health_probe.clone()),
        readiness_probe: Some(health_probe),
        ..Default::default()
    };
    DaemonSet {
        metadata: meta(resource, exporter),
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
                    node_selector: (!exporter.node_selector.is_empty())
                        .then(|| exporter.node_selector.clone()),
                    tolerations: (!exporter.tolerations.is_empty())
                        .then(|| exporter.tolerations.clone()),
                    runtime_class_name: exporter.runtime_class_name.clone(),
                    priority_class_name: Some("system-node-critical".into()),
                    automount_service_account_token: Some(false),
                    volumes: Some(vec![Volume {
                        name: "pod-resources".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: POD_RESOURCES_PATH.into(),
                            type_: Some("Directory".into()),
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The exporter Service: port 9400 named `metrics`.
pub fn service(resource: &Validated, exporter: &DcgmExporter) -> Service {
    Service {
        metadata: meta(resource, exporter),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(resource)),
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

/// The ServiceMonitor for the exporter Service, with `honorLabels: true`.
pub fn service_monitor(resource: &Validated, exporter: &DcgmExporter) -> Child {
    let meta = monitor_meta(
        resource,
        &exporter.namespace,
        name(resource),
        DCGM_COMPONENT,
    );
    let mut relabelings = pod_labels();
    relabelings.push(owner_label(resource));
    Child::from_value(
        ChildKind::ServiceMonitor,
        json!({
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": selector_labels(resource)},
                "namespaceSelector": {"matchNames": [exporter.namespace]},
                "endpoints": [{
                    "port": DCGM_PORT_NAME,
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": exporter.interval,
                    "scrapeTimeout": scrape_timeout(&exporter.interval),
                    "honorLabels": true,
                    "relabelings": to_operator(&relabelings),
                }],
            },
        }),
    )
}

/// The exporter's plain scrape job for a raw scrape config, when one is deployed and the
/// output is raw (other outputs use [`service_monitor`]).
pub fn plain_job(resource: &Validated) -> Result<Option<Value>, RenderError> {
    let DcgmPlan::Deploy(exporter) = &resource.dcgm else {
        return Ok(None);
    };
    if resource.output != Output::RawScrapeConfig {
        return Ok(None);
    }
    let namespaces = Namespaces::Names(vec![exporter.namespace.clone()]);
    let selector = LabelSelector {
        match_labels: Some(selector_labels(resource)),
        ..Default::default()
    };
    let mut rules = pod_selection(
        &selector,
        &namespaces,
        &PortRef::Name(DCGM_PORT_NAME.into()),
    )?;
    rules.extend(pod_labels());
    rules.push(owner_label(resource));
    Ok(Some(json!({
        "job_name": format!("{}/{DCGM_COMPONENT}", resource.key()),
        "scrape_interval": exporter.interval,
        "scrape_timeout": scrape_timeout(&exporter.interval),
        "metrics_path": "/metrics",
        "scheme": "http",
        "honor_labels": true,
        "kubernetes_sd_configs": kubernetes_sd(&namespaces),
        "relabel_configs": rules.iter().map(to_prometheus).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validated_from_yaml;
    use super::*;

    fn resource(output: &str, dcgm: &str) -> Validated {
        validated_from_yaml(&format!(
            r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {{name: chat, namespace: llm}}
spec:
  engine: vllm
  selector: {{matchLabels: {{app: chat}}}}
  prometheus: {{output: {output}, monitorLabels: {{release: kps}}}}
  gpu: {{dcgmExporter: {dcgm}}}
"#
        ))
    }

    fn kinds(children: &[Child]) -> Vec<ChildKind> {
        children.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn nothing_unless_deploying() {
        assert!(
            children(&resource("podMonitor", "{enabled: false}"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn daemon_set_follows_the_upstream_manifest() {
        let all = children(&resource("podMonitor", "{enabled: true}")).unwrap();
        assert_eq!(
            kinds(&all),
            [
                ChildKind::DaemonSet,
                ChildKind::Service,
                ChildKind::ServiceMonitor
            ]
        );
        let ds = &all[0].object;
        assert_eq!(all[0].name, "chat-dcgm-exporter");
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        let container = &pod["containers"][0];
        assert_eq!(
            container["ports"],
            json!([{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}])
        );
        assert_eq!(
            container["env"],
            json!([
                {"name": "DCGM_EXPORTER_LISTEN", "value": ":9400"},
                {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ])
        );
        assert_eq!(
            container["securityContext"],
            json!({
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "runAsUser": 0,
                "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]},
            })
        );
        assert_eq!(
            container["volumeMounts"],
            json!([{"name": "pod-resources", "mountPath": POD_RESOURCES_PATH, "readOnly": true}])
        );
        assert_eq!(pod["volumes"][0]["hostPath"]["path"], POD_RESOURCES_PATH);
        assert_eq!(
            container["resources"],
            json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
        );
        // The default toleration from resolution, no runtime class unless asked.
        assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
        assert!(pod.get("runtimeClassName").is_none());
        assert_eq!(
            ds["spec"]["selector"]["matchLabels"],
            ds["spec"]["template"]["metadata"]["labels"]
        );
    }

    #[test]
    fn spec_settings_are_applied() {
        let all = children(&resource(
            "podMonitor",
            "{enabled: true, namespace: gpu, runtimeClassName: nvidia, nodeSelector: {gpu: 'yes'}, resources: {limits: {memory: 1Gi}}}",
        ))
        .unwrap();
        let pod = &all[0].object["spec"]["template"]["spec"];
        assert_eq!(all[0].namespace, "gpu");
        assert_eq!(pod["runtimeClassName"], "nvidia");
        assert_eq!(pod["nodeSelector"], json!({"gpu": "yes"}));
        assert_eq!(
            pod["containers"][0]["resources"],
            json!({"limits": {"memory": "1Gi"}})
        );
    }

    #[test]
    fn service_and_monitor_keep_the_workload_labels() {
        let all = children(&resource("podMonitor", "{enabled: true, interval: 5s}")).unwrap();
        let service = &all[1].object["spec"];
        assert_eq!(
            service["ports"],
            json!([{"name": "metrics", "port": 9400, "targetPort": "metrics", "protocol": "TCP"}])
        );
        let monitor = &all[2].object;
        assert_eq!(monitor["metadata"]["labels"]["release"], "kps");
        assert_eq!(
            monitor["spec"]["selector"]["matchLabels"],
            service["selector"]
        );
        let ep = &monitor["spec"]["endpoints"][0];
        assert_eq!(ep["port"], "metrics");
        assert_eq!(ep["honorLabels"], true);
        assert_eq!(ep["interval"], "5s");
        assert_eq!(ep["scrapeTimeout"], "5s");
        assert_eq!(
            ep["relabelings"].as_array().unwrap().last().unwrap(),
            &json!({"action": "replace", "targetLabel": "inference_monitoring", "replacement": "llm/chat"})
        );
    }

    #[test]
    fn raw_output_scrapes_through_the_secret_instead_of_a_monitor() {
        let resource = resource("rawScrapeConfig", "{enabled: true}");
        assert_eq!(
            kinds(&children(&resource).unwrap()),
            [ChildKind::DaemonSet, ChildKind::Service]
        );
        let job = plain_job(&resource).unwrap().expect("a DCGM job");
        assert_eq!(job["scrape_timeout"], "10s");
        assert!(
            plain_job(&self::resource("podMonitor", "{enabled: true}"))
                .unwrap()
                .is_none()
        );
    }
}
