//! Scrape configuration for every output mode: the Prometheus Operator's `ScrapeConfig`
//! (`monitoring.coreos.com/v1alpha1`), the raw `scrape_configs` Secret for plain Prometheus or
//! `additionalScrapeConfigs`, and a complete `prometheus.yml` for static targets outside
//! Kubernetes. Selector targets are selected by relabeling ([`super::relabel`]).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};

use super::endpoint::{operator_security, plain_security};
use super::monitors::{SCRAPE_COMPONENT, monitor_meta, pod_monitor, service_monitor};
use super::relabel::{
    identity_labels, pod_labels, pod_selection, static_target_labels, to_operator, to_prometheus,
};
use super::{Child, ChildKind, RenderError, child_name, dcgm, object_meta};
use crate::api::RelabelConfig;
use crate::validate::{DEFAULT_INTERVAL, Namespaces, Output, Targets, Validated};

/// Key of the raw scrape config Secret (the one kube-prometheus-stack uses for
/// `additionalScrapeConfigs`).
pub const RAW_SCRAPE_CONFIG_KEY: &str = "additional-scrape-configs.yaml";

/// Every scrape child of a resource for its output mode.
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    Ok(match (resource.output, &resource.targets) {
        (
            Output::PodMonitor,
            Targets::Pods {
                selector,
                namespaces,
            },
        ) => {
            vec![pod_monitor(resource, selector, namespaces)]
        }
        (
            Output::ServiceMonitor,
            Targets::Pods {
                selector,
                namespaces,
            },
        ) => {
            vec![service_monitor(resource, selector, namespaces)]
        }
        (Output::PodMonitor | Output::ServiceMonitor, Targets::Static(_)) => {
            return Err(RenderError::StaticTargets {
                resource: resource.key(),
            });
        }
        (Output::ScrapeConfig, _) => vec![scrape_config(resource)],
        (Output::RawScrapeConfig, _) => vec![raw_scrape_config_secret(resource)?],
    })
}

/// The relabel rules of the resource's own scrape job (selection for pods, then labels).
fn job_relabelings(resource: &Validated) -> Vec<RelabelConfig> {
    let mut rules = match &resource.targets {
        Targets::Pods {
            selector,
            namespaces,
        } => {
            let mut rules = pod_selection(selector, namespaces, &resource.endpoint.port);
            rules.extend(pod_labels());
            rules
        }
        Targets::Static(_) => static_target_labels(resource),
    };
    rules.extend(identity_labels(resource));
    rules
}

/// A `ScrapeConfig`: Kubernetes pod discovery (plus relabel selection) for a selector,
/// `staticConfigs` for static targets.
pub fn scrape_config(resource: &Validated) -> Child {
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
        to_operator(&job_relabelings(resource)),
    );
    operator_security(endpoint, &mut spec);
    let meta = monitor_meta(
        resource,
        &resource.namespace,
        child_name(&resource.name, ""),
        SCRAPE_COMPONENT,
    );
    Child::from_value(
        ChildKind::ScrapeConfig,
        json!({"metadata": meta, "spec": spec}),
    )
}

/// The `job_name` of the resource's plain scrape job: `<namespace>/<name>`, like a
/// PodMonitor's default job label.
pub fn job_name(resource: &Validated) -> String {
    resource.key()
}

/// The resource's own plain Prometheus `scrape_config` entry.
pub fn plain_job(resource: &Validated) -> Value {
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
        job_relabelings(resource)
            .iter()
            .map(to_prometheus)
            .collect(),
    );
    plain_security(endpoint, &mut job);
    Value::Object(job)
}

/// Plain `kubernetes_sd_configs` with role `pod`, restricted to the given namespaces.
pub fn kubernetes_sd(namespaces: &Namespaces) -> Value {
    match namespaces {
        Namespaces::Any => json!([{"role": "pod"}]),
        Namespaces::Names(names) => {
            json!([{"role": "pod", "namespaces": {"names": names}}])
        }
    }
}

/// The `scrape_configs` list of a raw scrape config: the resource's job, plus the DCGM
/// exporter's when one is deployed.
pub fn raw_scrape_configs(resource: &Validated) -> Vec<Value> {
    let mut jobs = vec![plain_job(resource)];
    jobs.extend(dcgm::plain_job(resource));
    jobs
}

/// The Secret holding the raw `scrape_configs` list under [`RAW_SCRAPE_CONFIG_KEY`].
pub fn raw_scrape_config_secret(resource: &Validated) -> Result<Child, RenderError> {
    let name = child_name(&resource.name, "scrape-config");
    let yaml = serde_yaml::to_string(&raw_scrape_configs(resource)).map_err(|source| {
        RenderError::Yaml {
            name: name.clone(),
            source,
        }
    })?;
    let secret = Secret {
        metadata: object_meta(resource, &resource.namespace, name, SCRAPE_COMPONENT),
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
        Targets::Static(_) => Ok(vec![plain_job(resource)]),
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
