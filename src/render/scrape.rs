//! Scrape configuration for every output mode: the Prometheus Operator's `ScrapeConfig`
//! (`monitoring.coreos.com/v1alpha1`), the raw `scrape_configs` Secret for plain Prometheus or
//! `additionalScrapeConfigs`, and a complete `prometheus.yml` for static targets outside
//! Kubernetes. Selector targets are selected by relabeling ([`super::relabel`]).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::endpoint::{operator_security, plain_security};
use super::monitors::{SCRAPE_COMPONENT, kubernetes_sd, monitor_for, monitor_meta};
use super::relabel::{
    identity_labels, pod_labels, pod_selection, selector_rules, static_target_labels, to_operator,
    to_prometheus,
};
use super::{Child, ChildKind, RenderError, child_name, object_meta};
use crate::api::RelabelConfig;
use crate::validate::{DEFAULT_INTERVAL, Namespaces, Output, Targets, Validated};

/// Key of the raw scrape config Secret (the one kube-prometheus-stack uses for
/// `additionalScrapeConfigs`).
pub const RAW_SCRAPE_CONFIG_KEY: &str = "additional-scrape-configs.yaml";

/// Every scrape child of a resource for its output mode.
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    Ok(match (resource.output, &resource.targets) {
        (
            output @ (Output::PodMonitor | Output::ServiceMonitor),
            Targets::Pods {
                selector,
                namespaces,
            },
        ) => {
            selector_rules(selector)?;
            let kind = if output == Output::PodMonitor {
                ChildKind::PodMonitor
            } else {
                ChildKind::ServiceMonitor
            };
            vec![monitor_for(kind, resource, selector, namespaces)]
        }
        (Output::PodMonitor | Output::ServiceMonitor, Targets::Static(_)) => {
            return Err(RenderError::StaticTargets {
                resource: resource.key(),
            });
        }
        (Output::ScrapeConfig, _) => vec![scrape_config(resource)?],
        (Output::RawScrapeConfig, _) => vec![raw_scrape_config_secret(resource)?],
        // An existing job scrapes the targets: a second scrape would double every sum.
        (Output::None, _) => Vec::new(),
    })
}

/// The relabel rules of the resource's own scrape job (selection for pods, then labels).
fn job_relabelings(resource: &Validated) -> Result<Vec<RelabelConfig>, RenderError> {
    let mut rules = match &resource.targets {
        Targets::Pods {
            selector,
            namespaces,
        } => {
            let mut rules = pod_selection(selector, namespaces, &resource.endpoint.port)?;
            rules.extend(pod_labels());
            rules
        }
        Targets::Static(_) => static_target_labels(resource),
    };
    rules.extend(identity_labels(resource));
    Ok(rules)
}

/// A `ScrapeConfig`: Kubernetes pod discovery (plus relabel selection) for a selector,
/// `staticConfigs` for static targets.
pub fn scrape_config(resource: &Validated) -> Result<Child, RenderError> {
    let endpoint = &resource.endpoint;
    let mut spec = Map::new();
    match &resource.targets {
        Targets::Pods { namespaces, .. } => {
            let mut sd = json!({"role": "Pod"});
            if let Namespaces::Names(names) = namespaces {
                sd["namespaces"] = json!({"names": names});
            }
            spec.insert("kubernetesSDConfigs".into(), json!([sd]));
        }
        Targets::Static(hosts) => {
            spec.insert("staticConfigs".into(), json!([{"targets": hosts}]));
        }
    }
    spec.insert("metricsPath".into(), json!(endpoint.path));
    spec.insert("scheme".into(), json!(endpoint.scheme.as_str()));
    spec.insert("scrapeInterval".into(), json!(endpoint.interval));
    spec.insert("scrapeTimeout".into(), json!(endpoint.scrape_timeout));
    spec.insert("honorLabels".into(), json!(endpoint.honor_labels));
    spec.insert(
        "relabelings".into(),
        to_operator(&job_relabelings(resource)?),
    );
    operator_security(endpoint, &mut spec);
    let meta = monitor_meta(
        resource,
        &resource.namespace,
        child_name(&resource.name, ""),
        SCRAPE_COMPONENT,
    );
    Ok(Child::from_value(
        ChildKind::ScrapeConfig,
        json!({"metadata": meta, "spec": spec}),
    ))
}

/// The `job_name` of the resource's plain scrape job: `<namespace>/<name>`, like a
/// PodMonitor's default job label.
pub fn job_name(resource: &Validated) -> String {
    resource.key()
}

/// The `scrapePool` under which Prometheus' `/api/v1/targets` lists the resource's inference
/// targets, per output kind (empty for `none`: the existing job's pool is not infmon's).
pub fn scrape_pool(resource: &Validated) -> String {
    let (namespace, name) = (&resource.namespace, child_name(&resource.name, ""));
    match resource.output {
        Output::PodMonitor => format!("podMonitor/{namespace}/{name}/0"),
        Output::ServiceMonitor => format!("serviceMonitor/{namespace}/{name}/0"),
        Output::ScrapeConfig => format!("scrapeConfig/{namespace}/{name}"),
        Output::RawScrapeConfig => job_name(resource),
        Output::None => String::new(),
    }
}

/// The resource's own plain Prometheus `scrape_config` entry.
pub fn plain_job(resource: &Validated) -> Result<Value, RenderError> {
    let endpoint = &resource.endpoint;
    let mut job = Map::new();
    job.insert("job_name".into(), json!(job_name(resource)));
    job.insert("scrape_interval".into(), json!(endpoint.interval));
    job.insert("scrape_timeout".into(), json!(endpoint.scrape_timeout));
    job.insert("metrics_path".into(), json!(endpoint.path));
    job.insert("scheme".into(), json!(endpoint.scheme.as_str()));
    job.insert("honor_labels".into(), json!(endpoint.honor_labels));
    match &resource.targets {
        Targets::Pods { namespaces, .. } => {
            job.insert("kubernetes_sd_configs".into(), kubernetes_sd(namespaces));
        }
        Targets::Static(hosts) => {
            job.insert("static_configs".into(), json!([{"targets": hosts}]));
        }
    }
    job.insert(
        "relabel_configs".into(),
        job_relabelings(resource)?
            .iter()
            .map(to_prometheus)
            .collect(),
    );
    plain_security(endpoint, &mut job);
    Ok(Value::Object(job))
}

/// The `scrape_configs` list of a raw scrape config: the resource's job (the shared DCGM
/// exporter has a Secret of its own, see [`super::dcgm::raw_scrape_config_secret`]).
pub fn raw_scrape_configs(resource: &Validated) -> Result<Vec<Value>, RenderError> {
    Ok(vec![plain_job(resource)?])
}

/// The Secret holding the raw `scrape_configs` list under [`RAW_SCRAPE_CONFIG_KEY`].
pub fn raw_scrape_config_secret(resource: &Validated) -> Result<Child, RenderError> {
    let name = child_name(&resource.name, "scrape-config");
    let metadata = object_meta(resource, &resource.namespace, name, SCRAPE_COMPONENT);
    scrape_configs_secret(metadata, &raw_scrape_configs(resource)?)
}

/// A Secret with `metadata` holding `jobs` as a `scrape_configs` list under
/// [`RAW_SCRAPE_CONFIG_KEY`] (for `Prometheus.spec.additionalScrapeConfigs`).
pub fn scrape_configs_secret(metadata: ObjectMeta, jobs: &[Value]) -> Result<Child, RenderError> {
    let yaml = serde_yaml::to_string(jobs).map_err(|source| RenderError::Yaml {
        name: metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    let secret = Secret {
        metadata,
        data: Some(BTreeMap::from([(
            RAW_SCRAPE_CONFIG_KEY.to_string(),
            ByteString(yaml.into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    Child::new(ChildKind::Secret, &secret)
}

/// The `scrape_configs` of a resource for a `prometheus.yml` outside Kubernetes. Only static
/// targets can be scraped there; selector targets need Kubernetes discovery. Rule files and
/// other jobs can be appended by the caller before [`prometheus_yml`].
pub fn prometheus_scrape_configs(resource: &Validated) -> Result<Vec<Value>, RenderError> {
    match resource.targets {
        Targets::Static(_) => Ok(vec![plain_job(resource)?]),
        Targets::Pods { .. } => Err(RenderError::NeedsKubernetes {
            resource: resource.key(),
        }),
    }
}

/// A complete `prometheus.yml` document: `global` plus the given `scrape_configs`.
pub fn prometheus_yml(scrape_configs: Vec<Value>) -> Value {
    json!({
        "global": {
            "scrape_interval": DEFAULT_INTERVAL,
            "evaluation_interval": DEFAULT_INTERVAL,
        },
        "scrape_configs": scrape_configs,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validated_from_yaml;
    use super::*;

    const PODS: &str = r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: chat, namespace: llm}
spec:
  engine: sglang
  selector: {matchLabels: {app: chat}}
  namespaceSelector: {matchNames: [llm, llm-b]}
  endpoint:
    port: metrics
    scheme: https
    tls: {ca: {name: ca, key: ca.crt}, serverName: chat.llm.svc}
    authorization: {credentials: {name: token, key: t}}
  prometheus: {output: OUTPUT}
  gpu: {dcgmExporter: {enabled: true}}
"#;

    const STATIC: &str = r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: compose, namespace: default}
spec:
  engine: vllm
  staticTargets: [10.0.0.1:8000]
  prometheus: {output: OUTPUT}
"#;

    fn resource(template: &str, output: &str) -> Validated {
        validated_from_yaml(&template.replace("OUTPUT", output))
    }

    fn raw_jobs(child: &Child) -> Vec<Value> {
        let encoded = child.object["data"][RAW_SCRAPE_CONFIG_KEY]
            .as_str()
            .expect("secret data");
        let bytes: ByteString = serde_json::from_value(json!(encoded)).expect("base64");
        serde_yaml::from_slice(&bytes.0).expect("a YAML list")
    }

    #[test]
    fn scrape_config_discovers_pods_in_the_selected_namespaces() {
        let child = scrape_config(&resource(PODS, "scrapeConfig")).unwrap();
        assert_eq!(child.kind, ChildKind::ScrapeConfig);
        let spec = &child.object["spec"];
        assert_eq!(
            spec["kubernetesSDConfigs"],
            json!([{"role": "Pod", "namespaces": {"names": ["llm", "llm-b"]}}])
        );
        assert_eq!(spec["metricsPath"], "/metrics");
        assert_eq!(spec["scheme"], "https");
        assert_eq!(spec["scrapeInterval"], "15s");
        assert_eq!(
            spec["tlsConfig"],
            json!({"ca": {"secret": {"name": "ca", "key": "ca.crt"}}, "serverName": "chat.llm.svc"})
        );
        assert_eq!(
            spec["authorization"],
            json!({"credentials": {"name": "token", "key": "t"}})
        );
        let relabelings = spec["relabelings"].as_array().unwrap();
        assert_eq!(
            relabelings[0],
            json!({"action": "keep", "sourceLabels": ["__meta_kubernetes_namespace"], "regex": "(llm|llm-b)"})
        );
        assert!(relabelings.contains(&json!({"action": "keep", "sourceLabels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics"})));
        assert_eq!(
            relabelings.last().unwrap(),
            &json!({"action": "replace", "targetLabel": "inference_engine", "replacement": "sglang"})
        );
    }

    #[test]
    fn scrape_config_lists_static_targets() {
        let child = scrape_config(&resource(STATIC, "scrapeConfig")).unwrap();
        let spec = &child.object["spec"];
        assert_eq!(
            spec["staticConfigs"],
            json!([{"targets": ["10.0.0.1:8000"]}])
        );
        assert!(spec.get("kubernetesSDConfigs").is_none());
        assert_eq!(
            spec["relabelings"][1],
            json!({"action": "replace", "sourceLabels": ["__address__"], "targetLabel": "pod"})
        );
    }

    #[test]
    fn raw_secret_holds_a_scrape_configs_list_without_the_shared_dcgm_job() {
        let resource = resource(PODS, "rawScrapeConfig");
        let all = children(&resource).unwrap();
        assert_eq!(all.len(), 1);
        let secret = &all[0];
        assert_eq!(secret.kind, ChildKind::Secret);
        assert_eq!(secret.name, "chat-scrape-config");
        let jobs = raw_jobs(secret);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job["job_name"], "llm/chat");
        assert_eq!(
            job["kubernetes_sd_configs"],
            json!([{"role": "pod", "namespaces": {"names": ["llm", "llm-b"]}}])
        );
        assert_eq!(
            job["tls_config"],
            json!({"ca_file": "/etc/prometheus/secrets/ca/ca.crt", "server_name": "chat.llm.svc"})
        );
        assert_eq!(
            job["authorization"],
            json!({"credentials_file": "/etc/prometheus/secrets/token/t"})
        );
        assert_eq!(
            job["relabel_configs"][1],
            json!({"action": "keep", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running"})
        );
    }

    #[test]
    fn prometheus_yml_only_for_static_targets() {
        let jobs = prometheus_scrape_configs(&resource(STATIC, "auto")).unwrap();
        assert_eq!(
            jobs[0]["static_configs"],
            json!([{"targets": ["10.0.0.1:8000"]}])
        );
        let config = prometheus_yml(jobs);
        assert_eq!(config["global"]["scrape_interval"], "15s");
        assert_eq!(config["scrape_configs"][0]["job_name"], "default/compose");
        let err = prometheus_scrape_configs(&resource(PODS, "podMonitor")).unwrap_err();
        assert!(
            matches!(err, RenderError::NeedsKubernetes { ref resource } if resource == "llm/chat")
        );
    }

    #[test]
    fn scrape_pools_follow_the_operator_naming() {
        assert_eq!(
            scrape_pool(&resource(PODS, "podMonitor")),
            "podMonitor/llm/chat/0"
        );
        assert_eq!(
            scrape_pool(&resource(PODS, "serviceMonitor")),
            "serviceMonitor/llm/chat/0"
        );
        assert_eq!(
            scrape_pool(&resource(PODS, "scrapeConfig")),
            "scrapeConfig/llm/chat"
        );
        assert_eq!(scrape_pool(&resource(PODS, "rawScrapeConfig")), "llm/chat");
    }

    #[test]
    fn monitors_reject_static_targets_built_by_hand() {
        let mut resource = resource(STATIC, "scrapeConfig");
        resource.output = Output::PodMonitor;
        assert!(matches!(
            children(&resource),
            Err(RenderError::StaticTargets { .. })
        ));
    }
}
