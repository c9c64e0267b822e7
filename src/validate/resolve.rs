//! Resolving a checked spec into a [`Validated`] resource: the engine preset merged with the
//! spec's overrides, `auto` choices made from the cluster's facts, every default applied. The
//! builders take only this, so none of them guesses about an `Option`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::{
    AlertsSpec, AuthorizationSpec, DashboardTarget, Engine, InferenceMonitoring, NamespaceSelector,
    OutputMode, PrometheusAuth, RelabelConfig, Scheme, TlsSpec, parse_duration,
};
use crate::engines::{self, EngineProfile};

pub use super::error::ResolveError;
use super::policy::Policy;

/// Default scrape interval.
pub const DEFAULT_INTERVAL: &str = "15s";
/// Default scrape timeout (capped at the interval).
pub const DEFAULT_SCRAPE_TIMEOUT: &str = "10s";
/// Default health-check interval.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What infmon knows about the cluster it generates for. The controller discovers these; the
/// CLI assumes a cluster with the Prometheus Operator and Grafana Operator installed.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterFacts {
    /// `monitoring.coreos.com/v1` PodMonitor, ServiceMonitor and PrometheusRule are served.
    pub prometheus_operator: bool,
    /// `monitoring.coreos.com/v1alpha1` ScrapeConfig is served.
    pub scrape_config_api: bool,
    /// `grafana.integreatly.org/v1beta1` GrafanaDashboard is served.
    pub grafana_operator: bool,
    /// The engine detected from the selected pods, for `engine: auto`.
    pub detected_engine: Option<Engine>,
    /// A DCGM exporter already runs (e.g. the GPU Operator's).
    pub existing_dcgm_exporter: bool,
    /// Labels the cluster's `Prometheus` selectors require, used when `monitorLabels` is empty.
    pub required_monitor_labels: BTreeMap<String, String>,
    /// The operator-wide Prometheus URL, used when the spec names none.
    pub default_prometheus_url: Option<String>,
    /// What the operator's configuration allows resources to ask for.
    pub policy: Policy,
    /// Dashboards show their `cluster` picker: the Grafana data source holds several
    /// clusters (Thanos Query, Mimir). Hidden otherwise; its "All" matches series without a
    /// `cluster` label either way. Flag: `--multi-cluster-dashboards`.
    pub multi_cluster_dashboards: bool,
}

impl ClusterFacts {
    /// The facts assumed without a cluster (`infmon render`): every optional API present,
    /// nothing detected, no exporter running.
    pub fn assumed_offline() -> Self {
        Self {
            prometheus_operator: true,
            scrape_config_api: true,
            grafana_operator: true,
            detected_engine: None,
            existing_dcgm_exporter: false,
            required_monitor_labels: BTreeMap::new(),
            default_prometheus_url: None,
            policy: Policy::default(),
            multi_cluster_dashboards: false,
        }
    }
}

/// A resolved resource: the only input of every builder.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// Name of the resource.
    pub name: String,
    /// Namespace of the resource.
    pub namespace: String,
    /// UID (set for resources read from the API server; used for owner references).
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The engine in effect (never `auto`).
    pub engine: Engine,
    /// The catalog entry in effect.
    pub profile: EngineProfile,
    /// What to scrape.
    pub targets: Targets,
    /// How to scrape it.
    pub endpoint: Endpoint,
    /// The scrape configuration kind to generate.
    pub output: Output,
    /// Labels for every generated monitor and rule.
    pub monitor_labels: BTreeMap<String, String>,
    /// Dashboards, if enabled.
    pub dashboards: Option<Dashboards>,
    /// What to do about the DCGM exporter.
    pub dcgm: DcgmPlan,
    /// SLO alerts, if enabled.
    pub alerts: Option<AlertsSpec>,
    /// Where the health checks query.
    pub health: HealthCheck,
    /// Service-level objectives (`spec.slos`), checked against the engine.
    pub slos: Vec<super::Slo>,
    /// With `output: none`, the existing scrape job whose series are read.
    pub existing: Option<ExistingJob>,
}

impl Validated {
    /// `namespace/name`: the value of the `inference_monitoring` label on every target.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The matcher on the owner label, which every target infmon scrapes and every record
    /// and alert it writes for this resource carries.
    pub fn owner_matcher(&self) -> String {
        format!(
            "{}={}",
            super::OWNER_TARGET_LABEL,
            super::grammar::promql_string(&self.key())
        )
    }

    /// PromQL matchers for this resource's own raw series (`up`, the engine's series): the
    /// owner label, or with `output: none` those of the existing job.
    pub fn series_matchers(&self) -> String {
        match &self.existing {
            Some(existing) => existing.matchers(),
            None => self.owner_matcher(),
        }
    }
}

/// With `output: none`: the targets of an existing scrape job, found by one target label and
/// kept to the namespaces the resource's selector looks in. Targets that carry an owner label
/// (scraped by infmon for some resource) never belong to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingJob {
    /// The target label, e.g. `job`.
    pub label: String,
    /// Its value.
    pub value: String,
    /// The namespaces the targets must be in; `None`: any.
    pub namespaces: Option<Vec<String>>,
}

impl ExistingJob {
    /// PromQL matchers for the job's series: the label, the namespaces, no owner label.
    pub fn matchers(&self) -> String {
        let mut matchers = format!(
            "{}={}",
            self.label,
            super::grammar::promql_string(&self.value)
        );
        match self.namespaces.as_deref() {
            Some([one]) => matchers.push_str(&format!(r#",namespace="{one}""#)),
            // Namespace names are DNS labels: no regex metacharacters to escape.
            Some(many) => matchers.push_str(&format!(r#",namespace=~"{}""#, many.join("|"))),
            None => {}
        }
        matchers.push_str(&format!(r#",{}="""#, super::OWNER_TARGET_LABEL));
        matchers
    }

    /// Whether a target with these labels (after relabeling) belongs to the job.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(&self.label) == Some(&self.value)
            && labels
                .get(super::OWNER_TARGET_LABEL)
                .is_none_or(String::is_empty)
            && self
                .namespaces
                .as_ref()
                .is_none_or(|names| labels.get("namespace").is_some_and(|ns| names.contains(ns)))
    }

    /// The job for people, e.g. `job="dynamo-system/dynamo-frontend" in namespace llm`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}={}",
            self.label,
            super::grammar::promql_string(&self.value)
        );
        match self.namespaces.as_deref() {
            Some([one]) => text.push_str(&format!(" in namespace {one}")),
            Some(many) => text.push_str(&format!(" in namespaces {}", many.join(", "))),
            None => {}
        }
        text
    }
}

/// The pods or hosts to scrape.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Pods matching a label selector.
    Pods {
        /// The selector.
        selector: LabelSelector,
        /// Where to look.
        namespaces: Namespaces,
    },
    /// Fixed `host:port` addresses.
    Static(Vec<String>),
}

/// Namespaces to look for pods in.
#[derive(Clone, Debug, PartialEq)]
pub enum Namespaces {
    /// Every namespace.
    Any,
    /// These namespaces (the resource's own by default).
    Names(Vec<String>),
}

/// A metrics port.
#[derive(Clone, Debug, PartialEq)]
pub enum PortRef {
    /// A container port name.
    Name(String),
    /// A port number.
    Number(u16),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Name(name) => f.write_str(name),
            PortRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Scrape settings with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Port (ignored for static targets).
    pub port: PortRef,
    /// Path.
    pub path: String,
    /// Scheme.
    pub scheme: Scheme,
    /// Scrape interval, e.g. `15s`.
    pub interval: String,
    /// Scrape timeout, never above the interval.
    pub scrape_timeout: String,
    /// Honor target labels.
    pub honor_labels: bool,
    /// TLS settings.
    pub tls: Option<TlsSpec>,
    /// Authorization header.
    pub authorization: Option<AuthorizationSpec>,
    /// Metric relabelings.
    pub metric_relabelings: Vec<RelabelConfig>,
}

/// The scrape configuration kind, after `auto` was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `PodMonitor`.
    PodMonitor,
    /// `ServiceMonitor`.
    ServiceMonitor,
    /// `ScrapeConfig`.
    ScrapeConfig,
    /// A Secret with a `scrape_configs` list.
    RawScrapeConfig,
    /// No scrape configuration: an existing job's series are read ([`ExistingJob`]).
    None,
}

/// Dashboard delivery with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboards {
    /// ConfigMap or GrafanaDashboard.
    pub target: DashboardTarget,
    /// Namespace to write to.
    pub namespace: String,
    /// Labels for the sidecar.
    pub labels: BTreeMap<String, String>,
    /// Folder title and the annotation key that carries it.
    pub folder: Option<Folder>,
    /// Grafana instance selector (GrafanaDashboard only).
    pub instance_selector: Option<LabelSelector>,
    /// Show the dashboards' `cluster` picker (from [`ClusterFacts`]).
    pub multi_cluster: bool,
}

/// A Grafana folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Folder {
    /// Folder title.
    pub title: String,
    /// ConfigMap annotation key that carries it.
    pub annotation: String,
}

/// What to do about the DCGM exporter.
#[derive(Clone, Debug, PartialEq)]
pub enum DcgmPlan {
    /// Not asked for.
    Disabled,
    /// Asked for, but an exporter infmon did not deploy already runs in the cluster.
    SkippedExisting,
    /// Wants infmon's shared exporter (one for the cluster; its settings are the operator's).
    Deploy,
}

/// The health-check settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// Query API base URL; `None` disables health checks.
    pub url: Option<String>,
    /// Credentials.
    pub auth: Option<PrometheusAuth>,
    /// How often to check.
    pub interval: Duration,
}

/// Resolves a resource that passed [`super::validate_document`] (or the API server).
pub fn resolve(
    resource: &InferenceMonitoring,
    facts: &ClusterFacts,
) -> Result<Validated, ResolveError> {
    let spec = &resource.spec;
    let namespace = resource
        .namespace()
        .unwrap_or_else(|| "default".to_string());
    let engine = match spec.engine {
        Engine::Auto => facts
            .detected_engine
            .ok_or_else(|| ResolveError::EngineUndetermined {
                reason: "no engine was detected from the selected pods".into(),
            })?,
        Engine::DynamoRouter => {
            return Err(ResolveError::EngineRemoved {
                engine: Engine::DynamoRouter,
                instead: "Dynamo removed its KV-router metrics aggregator (port 9091, llm_kv_* and llm_load_* series) in October 2025; monitor the frontend with engine dynamo (its router series are dynamo_frontend_router_* and dynamo_frontend_worker_*) and the workers with engine dynamoworker",
            });
        }
        engine => engine,
    };
    let metrics = super::grammar::check(resource)?;
    let preset = engines::profile(engine).unwrap_or_else(EngineProfile::custom);
    let profile = match &metrics {
        Some(metrics) => engines::with_overrides(preset, metrics),
        None => preset,
    };

    let slos = super::slos::resolve_slos(&spec.slos, &profile)?;

    let targets = match (&spec.selector, &spec.static_targets) {
        (_, Some(hosts)) => Targets::Static(hosts.clone()),
        (selector, None) => Targets::Pods {
            selector: selector.clone().unwrap_or_default(),
            namespaces: pod_namespaces(spec.namespace_selector.as_ref(), &namespace),
        },
    };

    let mut endpoint = resolve_endpoint(
        spec.endpoint.clone().unwrap_or_default(),
        &profile,
        &targets,
    )?;
    if !endpoint.metric_relabelings.is_empty() {
        // Last, so no user rule can claim or hide another resource's series.
        for (label, value) in [
            (
                super::OWNER_TARGET_LABEL,
                format!("{namespace}/{}", resource.name_any()),
            ),
            (super::ENGINE_TARGET_LABEL, engine.as_str().to_string()),
        ] {
            endpoint.metric_relabelings.push(RelabelConfig {
                target_label: Some(label.to_string()),
                replacement: Some(value),
                action: Some(crate::api::RelabelAction::Replace),
                ..Default::default()
            });
        }
    }
    let output = resolve_output(spec.prometheus.output, &targets, facts)?;
    let existing = existing_job(&spec.prometheus, output, &targets)?;
    if facts.policy.without_secrets {
        check_without_secrets(resource, output)?;
    }

    let monitor_labels = if spec.prometheus.monitor_labels.is_empty() {
        facts.required_monitor_labels.clone()
    } else {
        spec.prometheus.monitor_labels.clone()
    };

    check_policy(resource, &namespace, facts)?;

    let dashboards = spec.dashboards.enabled.then(|| Dashboards {
        target: spec.dashboards.target,
        namespace: spec
            .dashboards
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        labels: spec.dashboards.labels.clone(),
        folder: spec.dashboards.folder.clone().map(|title| Folder {
            title,
            annotation: spec.dashboards.folder_annotation.clone(),
        }),
        instance_selector: spec.dashboards.instance_selector.clone(),
        multi_cluster: facts.multi_cluster_dashboards,
    });

    let dcgm = if !spec.gpu.dcgm_exporter.enabled {
        DcgmPlan::Disabled
    } else if facts.existing_dcgm_exporter {
        DcgmPlan::SkippedExisting
    } else {
        DcgmPlan::Deploy
    };

    let health = HealthCheck {
        url: spec
            .prometheus
            .url
            .clone()
            .or_else(|| facts.default_prometheus_url.clone()),
        auth: spec.prometheus.auth.clone(),
        interval: spec
            .prometheus
            .health_check_interval
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_HEALTH_CHECK_INTERVAL),
    };

    Ok(Validated {
        name: resource.name_any(),
        namespace,
        uid: resource.metadata.uid.clone(),
        generation: resource.metadata.generation,
        engine,
        profile,
        targets,
        endpoint,
        output,
        monitor_labels,
        dashboards,
        dcgm,
        alerts: spec.alerts.enabled.then(|| spec.alerts.clone()),
        health,
        slos,
        existing,
    })
}

/// The existing job of `output: none` (`existingTargets` required then, refused otherwise, as
/// the CRD's rules say; checked again for objects stored before them).
fn existing_job(
    spec: &crate::api::PrometheusSpec,
    output: Output,
    targets: &Targets,
) -> Result<Option<ExistingJob>, ResolveError> {
    const FIELD: &str = "spec.prometheus.existingTargets";
    let existing = match (output, &spec.existing_targets) {
        (Output::None, Some(existing)) => existing,
        (Output::None, None) => {
            return Err(ResolveError::Invalid {
                field: FIELD.into(),
                problem: "required when spec.prometheus.output is none: name the job, or a label, of the scrape job that already collects the series".into(),
            });
        }
        (_, Some(_)) => {
            return Err(ResolveError::Invalid {
                field: FIELD.into(),
                problem:
                    "only read with spec.prometheus.output: none; remove it, or set output to none"
                        .into(),
            });
        }
        (_, None) => return Ok(None),
    };
    let (label, value) = match (&existing.job, &existing.label) {
        (Some(job), None) => ("job".to_string(), job.clone()),
        (None, Some(label)) => (label.name.clone(), label.value.clone()),
        _ => {
            return Err(ResolveError::Invalid {
                field: FIELD.into(),
                problem: "set job or label, exactly one".into(),
            });
        }
    };
    let namespaces = match targets {
        Targets::Pods {
            namespaces: Namespaces::Names(names),
            ..
        } => Some(names.clone()),
        _ => None,
    };
    Ok(Some(ExistingJob {
        label,
        value,
        namespaces,
    }))
}

/// Rejects what the operator's policy does not allow.
fn check_policy(
    resource: &InferenceMonitoring,
    namespace: &str,
    facts: &ClusterFacts,
) -> Result<(), ResolveError> {
    let spec = &resource.spec;
    let policy = &facts.policy;
    if let Some(url) = &spec.prometheus.url
        && !policy.allows_prometheus_url(url, facts.default_prometheus_url.as_deref())
    {
        let mut allowed = facts
            .default_prometheus_url
            .clone()
            .into_iter()
            .collect::<Vec<_>>();
        if let super::Allowed::Only(urls) = &policy.prometheus_urls {
            allowed.extend(urls.iter().cloned());
        }
        return Err(ResolveError::Forbidden {
            field: "spec.prometheus.url",
            value: url.clone(),
            setting: "--prometheus-url and --allowed-prometheus-urls (Helm operator.prometheusUrl and operator.policy.allowedPrometheusUrls)",
            allowed: if allowed.is_empty() {
                "none".into()
            } else {
                allowed.join(", ")
            },
            remedy: "remove spec.prometheus.url to use the operator's Prometheus, or ask the operator's administrators to allow this URL",
        });
    }
    if spec.dashboards.enabled
        && let Some(target) = &spec.dashboards.namespace
        && !policy.allows_dashboard_namespace(target, namespace)
    {
        return Err(ResolveError::Forbidden {
            field: "spec.dashboards.namespace",
            value: target.clone(),
            setting: "--dashboard-namespaces (Helm operator.policy.dashboardNamespaces), besides the resource's own namespace",
            allowed: policy.dashboard_namespaces.describe(),
            remedy: "remove spec.dashboards.namespace to write dashboards to this resource's namespace, or use an allowed namespace",
        });
    }
    Ok(())
}

/// Under `--without-secrets`: no output or setting that needs the operator to touch Secrets.
fn check_without_secrets(
    resource: &InferenceMonitoring,
    output: Output,
) -> Result<(), ResolveError> {
    const SETTING: &str = "--without-secrets (Helm rbac.secrets: false)";
    if output == Output::RawScrapeConfig {
        return Err(ResolveError::Forbidden {
            field: "spec.prometheus.output",
            value: output_name(output).to_string(),
            setting: SETTING,
            allowed: "podMonitor, serviceMonitor, scrapeConfig".into(),
            remedy: "the raw scrape configuration is a Secret, which this operator may not write; choose another output (auto picks rawScrapeConfig only without the Prometheus Operator), or ask the operator's administrators to grant Secret access (Helm rbac.secrets: true)",
        });
    }
    if resource.spec.prometheus.auth.is_some() {
        return Err(ResolveError::Forbidden {
            field: "spec.prometheus.auth",
            value: "credentials from Secrets".into(),
            setting: SETTING,
            allowed: "none".into(),
            remedy: "this operator may not read Secrets; remove spec.prometheus.auth, use a query API that needs no credentials, or ask the operator's administrators to grant Secret access (Helm rbac.secrets: true)",
        });
    }
    Ok(())
}

fn resolve_endpoint(
    spec: crate::api::EndpointSpec,
    profile: &EngineProfile,
    targets: &Targets,
) -> Result<Endpoint, ResolveError> {
    let port = match (&spec.port, targets) {
        (Some(port), Targets::Static(_)) => {
            return Err(ResolveError::PortWithStaticTargets {
                port: match port {
                    IntOrString::Int(n) => n.to_string(),
                    IntOrString::String(s) => s.clone(),
                },
            });
        }
        (Some(IntOrString::Int(n)), _) => PortRef::Number(u16::try_from(*n).unwrap_or(0)),
        (Some(IntOrString::String(s)), _) => match s.parse::<u16>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(s.clone()),
        },
        (None, _) if profile.port == 0 => match targets {
            Targets::Static(_) => PortRef::Number(0),
            Targets::Pods { .. } => {
                return Err(ResolveError::PortUnresolved {
                    engine: profile.engine,
                });
            }
        },
        (None, _) => PortRef::Number(profile.port),
    };
    let interval = spec
        .interval
        .unwrap_or_else(|| DEFAULT_INTERVAL.to_string());
    let scrape_timeout = spec.scrape_timeout.unwrap_or_else(|| {
        let default = parse_duration(DEFAULT_SCRAPE_TIMEOUT);
        if parse_duration(&interval) < default {
            interval.clone()
        } else {
            DEFAULT_SCRAPE_TIMEOUT.to_string()
        }
    });
    Ok(Endpoint {
        port,
        path: spec.path.unwrap_or_else(|| profile.path.to_string()),
        scheme: spec.scheme.unwrap_or(profile.scheme),
        interval,
        scrape_timeout,
        honor_labels: spec.honor_labels.unwrap_or(false),
        tls: spec.tls,
        authorization: spec.authorization,
        metric_relabelings: spec.metric_relabelings.unwrap_or_default(),
    })
}

/// The scrape configuration kind [`resolve`] picks for `resource` in a cluster with `facts`,
/// for a caller that needs it before resolving (the monitor labels depend on it).
pub fn planned_output(
    resource: &InferenceMonitoring,
    facts: &ClusterFacts,
) -> Result<Output, ResolveError> {
    let targets = match &resource.spec.static_targets {
        Some(_) => Targets::Static(Vec::new()),
        None => Targets::Pods {
            selector: LabelSelector::default(),
            namespaces: Namespaces::Any,
        },
    };
    resolve_output(resource.spec.prometheus.output, &targets, facts)
}

fn resolve_output(
    mode: OutputMode,
    targets: &Targets,
    facts: &ClusterFacts,
) -> Result<Output, ResolveError> {
    let is_static = matches!(targets, Targets::Static(_));
    let output = match mode {
        OutputMode::Auto if is_static && facts.scrape_config_api => Output::ScrapeConfig,
        OutputMode::Auto if is_static => Output::RawScrapeConfig,
        OutputMode::Auto if facts.prometheus_operator => Output::PodMonitor,
        OutputMode::Auto => Output::RawScrapeConfig,
        OutputMode::PodMonitor => Output::PodMonitor,
        OutputMode::ServiceMonitor => Output::ServiceMonitor,
        OutputMode::ScrapeConfig => Output::ScrapeConfig,
        OutputMode::RawScrapeConfig => Output::RawScrapeConfig,
        OutputMode::None => Output::None,
    };
    match output {
        Output::PodMonitor | Output::ServiceMonitor | Output::None if is_static => {
            Err(ResolveError::StaticTargetsUnsupported {
                output: output_name(output),
            })
        }
        Output::PodMonitor | Output::ServiceMonitor if !facts.prometheus_operator => {
            Err(ResolveError::ApiUnavailable {
                output: output_name(output),
                api: "monitoring.coreos.com/v1",
            })
        }
        Output::ScrapeConfig if !facts.scrape_config_api => Err(ResolveError::ApiUnavailable {
            output: output_name(output),
            api: "monitoring.coreos.com/v1alpha1 ScrapeConfig",
        }),
        _ => Ok(output),
    }
}

/// Where `spec.selector` looks for pods: every namespace, the `matchNames` (sorted, without
/// repeats), or by default the resource's own namespace.
pub fn pod_namespaces(selector: Option<&NamespaceSelector>, own: &str) -> Namespaces {
    match selector {
        Some(ns) if ns.any == Some(true) => Namespaces::Any,
        Some(ns) if ns.match_names.as_ref().is_some_and(|n| !n.is_empty()) => {
            let mut names = ns.match_names.clone().unwrap_or_default();
            names.sort();
            names.dedup();
            Namespaces::Names(names)
        }
        _ => Namespaces::Names(vec![own.to_string()]),
    }
}

/// The spec spelling of an output.
pub fn output_name(output: Output) -> &'static str {
    match output {
        Output::PodMonitor => "podMonitor",
        Output::ServiceMonitor => "serviceMonitor",
        Output::ScrapeConfig => "scrapeConfig",
        Output::RawScrapeConfig => "rawScrapeConfig",
        Output::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_document;
    use serde_json::json;

    fn parse(spec: serde_json::Value) -> InferenceMonitoring {
        validate_document(&json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1",
            "kind": "InferenceMonitoring",
            "metadata": {"name": "llm", "namespace": "ai"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_removed_dynamo_router_names_what_to_use_instead() {
        let err = resolve(
            &parse(json!({"engine": "dynamorouter", "selector": {"matchLabels": {"app": "r"}}})),
            &ClusterFacts::assumed_offline(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("spec.engine: dynamorouter is no longer supported"),
            "{err}"
        );
        assert!(
            err.contains("engine dynamo ") && err.contains("engine dynamoworker"),
            "{err}"
        );
    }

    #[test]
    fn an_undetected_engine_lists_the_catalog() {
        let err = ResolveError::EngineUndetermined { reason: "x".into() }.to_string();
        for p in engines::all_profiles() {
            assert!(err.contains(p.engine.as_str()), "{err}");
        }
        assert!(
            !err.contains("dynamorouter") && err.ends_with("llamacpp or custom"),
            "{err}"
        );
    }

    #[test]
    fn engine_preset_fills_every_default() {
        let v = resolve(
            &parse(json!({"engine": "max", "selector": {"matchLabels": {"app": "max"}}})),
            &ClusterFacts::assumed_offline(),
        )
        .unwrap();
        assert_eq!(v.endpoint.port, PortRef::Number(8001));
        assert_eq!(v.endpoint.path, "/metrics");
        assert_eq!(
            (
                v.endpoint.interval.as_str(),
                v.endpoint.scrape_timeout.as_str()
            ),
            ("15s", "10s")
        );
        assert_eq!(v.output, Output::PodMonitor);
        assert_eq!(
            v.targets,
            Targets::Pods {
                selector: LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "max".into())])),
                    ..Default::default()
                },
                namespaces: Namespaces::Names(vec!["ai".into()]),
            }
        );
        assert_eq!(v.key(), "ai/llm");
        assert_eq!(v.dashboards.unwrap().namespace, "ai");
        assert_eq!(v.dcgm, DcgmPlan::Disabled);
    }

    #[test]
    fn overrides_win_and_timeout_is_capped_at_a_short_interval() {
        let v = resolve(
            &parse(json!({"engine": "trtllm", "selector": {}, "endpoint": {"port": "http", "interval": "5s"}})),
            &ClusterFacts::assumed_offline(),
        )
        .unwrap();
        assert_eq!(v.endpoint.port, PortRef::Name("http".into()));
        assert_eq!(v.endpoint.path, "/prometheus/metrics");
        assert_eq!(v.endpoint.scrape_timeout, "5s");
    }

    #[test]
    fn auto_engine_needs_detection() {
        let r = parse(json!({"selector": {}}));
        let err = resolve(&r, &ClusterFacts::assumed_offline()).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.engine: engine is auto"),
            "{err}"
        );
        let facts = ClusterFacts {
            detected_engine: Some(Engine::Sglang),
            ..ClusterFacts::assumed_offline()
        };
        assert_eq!(resolve(&r, &facts).unwrap().engine, Engine::Sglang);
    }

    #[test]
    fn output_auto_follows_the_cluster() {
        let no_operator = ClusterFacts {
            prometheus_operator: false,
            scrape_config_api: false,
            ..ClusterFacts::assumed_offline()
        };
        let pods = parse(json!({"engine": "vllm", "selector": {}}));
        assert_eq!(
            resolve(&pods, &no_operator).unwrap().output,
            Output::RawScrapeConfig
        );
        let hosts = parse(json!({"engine": "vllm", "staticTargets": ["10.0.0.1:8000"]}));
        assert_eq!(
            resolve(&hosts, &ClusterFacts::assumed_offline())
                .unwrap()
                .output,
            Output::ScrapeConfig
        );
        assert_eq!(
            resolve(&hosts, &no_operator).unwrap().output,
            Output::RawScrapeConfig
        );
        let explicit = parse(
            json!({"engine": "vllm", "selector": {}, "prometheus": {"output": "serviceMonitor"}}),
        );
        assert!(matches!(
            resolve(&explicit, &no_operator),
            Err(ResolveError::ApiUnavailable { .. })
        ));
    }

    #[test]
    fn static_targets_reject_pod_outputs_and_ports() {
        let r = parse(
            json!({"engine": "vllm", "staticTargets": ["a:1"], "prometheus": {"output": "podMonitor"}}),
        );
        assert!(matches!(
            resolve(&r, &ClusterFacts::assumed_offline()),
            Err(ResolveError::StaticTargetsUnsupported { .. })
        ));
        let r = parse(
            json!({"engine": "vllm", "staticTargets": ["a:1"], "endpoint": {"port": "metrics"}}),
        );
        let err = resolve(&r, &ClusterFacts::assumed_offline()).unwrap_err();
        assert!(err.to_string().starts_with("spec.endpoint.port:"), "{err}");
    }

    #[test]
    fn monitor_labels_fall_back_to_what_prometheus_selects() {
        let facts = ClusterFacts {
            required_monitor_labels: BTreeMap::from([("release".into(), "kps".into())]),
            ..ClusterFacts::assumed_offline()
        };
        let r = parse(json!({"engine": "vllm", "selector": {}}));
        assert_eq!(
            resolve(&r, &facts).unwrap().monitor_labels["release"],
            "kps"
        );
        let r = parse(
            json!({"engine": "vllm", "selector": {}, "prometheus": {"monitorLabels": {"team": "a"}}}),
        );
        assert_eq!(
            resolve(&r, &facts).unwrap().monitor_labels,
            BTreeMap::from([("team".into(), "a".into())])
        );
    }

    #[test]
    fn without_secrets_refuses_what_needs_them() {
        let facts = ClusterFacts {
            policy: Policy {
                without_secrets: true,
                ..Policy::default()
            },
            ..ClusterFacts::assumed_offline()
        };
        let raw = parse(
            json!({"engine": "vllm", "selector": {}, "prometheus": {"output": "rawScrapeConfig"}}),
        );
        let err = resolve(&raw, &facts).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.prometheus.output: \"rawScrapeConfig\" is not allowed"),
            "{err}"
        );
        let auth = parse(
            json!({"engine": "vllm", "selector": {}, "prometheus": {"auth": {"bearerToken": {"name": "t", "key": "k"}}}}),
        );
        let err = resolve(&auth, &facts).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.prometheus.auth:"),
            "{err}"
        );
        // Both name the Helm value that grants Secret access.
        assert!(err.to_string().contains("rbac.secrets: true"), "{err}");
        let err = resolve(&raw, &facts).unwrap_err();
        assert!(err.to_string().contains("rbac.secrets: true"), "{err}");
        let plain = parse(json!({"engine": "vllm", "selector": {}}));
        assert_eq!(resolve(&plain, &facts).unwrap().output, Output::PodMonitor);
    }

    #[test]
    fn dcgm_is_skipped_when_an_exporter_runs() {
        let r = parse(
            json!({"engine": "vllm", "selector": {}, "gpu": {"dcgmExporter": {"enabled": true}}}),
        );
        let running = ClusterFacts {
            existing_dcgm_exporter: true,
            ..ClusterFacts::assumed_offline()
        };
        assert_eq!(
            resolve(&r, &running).unwrap().dcgm,
            DcgmPlan::SkippedExisting
        );
        assert_eq!(
            resolve(&r, &ClusterFacts::assumed_offline()).unwrap().dcgm,
            DcgmPlan::Deploy
        );
    }

    #[test]
    fn output_none_reads_the_existing_job_in_the_resource_namespaces() {
        let r = parse(
            json!({"engine": "vllm", "selector": {"matchLabels": {"app": "v"}},
            "namespaceSelector": {"matchNames": ["b", "a"]},
            "prometheus": {"output": "none", "existingTargets": {"job": "platform/v\"llm"}}}),
        );
        let v = resolve(&r, &ClusterFacts::assumed_offline()).unwrap();
        assert_eq!(v.output, Output::None);
        assert_eq!(
            v.series_matchers(),
            r#"job="platform/v\"llm",namespace=~"a|b",inference_monitoring="""#
        );
        assert_eq!(v.owner_matcher(), r#"inference_monitoring="ai/llm""#);
        let job = v.existing.unwrap();
        let target = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(job.matches(&target(&[("job", "platform/v\"llm"), ("namespace", "a")])));
        // Another namespace, another job, or a target some resource owns: not ours.
        assert!(!job.matches(&target(&[("job", "platform/v\"llm"), ("namespace", "c")])));
        assert!(!job.matches(&target(&[("job", "other"), ("namespace", "a")])));
        assert!(!job.matches(&target(&[
            ("job", "platform/v\"llm"),
            ("namespace", "a"),
            ("inference_monitoring", "c/other"),
        ])));

        let by_label = parse(json!({"engine": "vllm", "selector": {},
            "prometheus": {"output": "none", "existingTargets": {"label": {"name": "component", "value": "frontend"}}}}));
        assert_eq!(
            resolve(&by_label, &ClusterFacts::assumed_offline())
                .unwrap()
                .series_matchers(),
            r#"component="frontend",namespace="ai",inference_monitoring="""#
        );
        let anywhere = parse(
            json!({"engine": "vllm", "selector": {}, "namespaceSelector": {"any": true},
            "prometheus": {"output": "none", "existingTargets": {"job": "j"}}}),
        );
        assert_eq!(
            resolve(&anywhere, &ClusterFacts::assumed_offline())
                .unwrap()
                .series_matchers(),
            r#"job="j",inference_monitoring="""#
        );
    }

    #[test]
    fn existing_targets_go_with_output_none_only() {
        use crate::api::{ExistingTargets, TargetLabel};
        let facts = ClusterFacts::assumed_offline();
        // As stored before the CRD's rules: resolve names the field either way.
        let error = |spec: serde_json::Value, output, existing: Option<ExistingTargets>| {
            let mut r = parse(spec);
            r.spec.prometheus.output = output;
            r.spec.prometheus.existing_targets = existing;
            resolve(&r, &facts).unwrap_err()
        };
        let pods = || json!({"engine": "vllm", "selector": {}});
        let job = |job: &str| {
            Some(ExistingTargets {
                job: Some(job.into()),
                label: None,
            })
        };
        let cases = [
            (
                error(pods(), OutputMode::None, None),
                "spec.prometheus.existingTargets: required when spec.prometheus.output is none",
            ),
            (
                error(pods(), OutputMode::PodMonitor, job("j")),
                "spec.prometheus.existingTargets: only read with spec.prometheus.output: none",
            ),
            (
                error(
                    pods(),
                    OutputMode::None,
                    Some(ExistingTargets {
                        job: None,
                        label: Some(TargetLabel {
                            name: "inference_monitoring".into(),
                            value: "other/victim".into(),
                        }),
                    }),
                ),
                "spec.prometheus.existingTargets.label.name: \"inference_monitoring\" is set by infmon",
            ),
            (
                error(pods(), OutputMode::None, job("a\nb")),
                "spec.prometheus.existingTargets.job:",
            ),
        ];
        for (err, expected) in cases {
            assert!(err.to_string().starts_with(expected), "{err}");
        }
        let hosts = error(
            json!({"engine": "vllm", "staticTargets": ["a:1"]}),
            OutputMode::None,
            job("j"),
        );
        assert_eq!(
            hosts,
            ResolveError::StaticTargetsUnsupported { output: "none" }
        );
    }
}
