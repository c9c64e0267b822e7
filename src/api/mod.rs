//! The `InferenceMonitoring` custom resource (`monitoring.inference.dev/v1alpha1`).
//!
//! Every field's doc comment becomes its `kubectl explain` text, so each one says what the
//! field does and what happens when it is left out. Structural checks live in the schema
//! (enums, patterns, ranges); cross-field checks are CEL rules (`x-kubernetes-validations`)
//! that the API server evaluates at `kubectl apply` time and `infmon validate` evaluates
//! offline with the very same rule text.

mod bounds;
mod conditions;
mod durations;
mod metrics;
mod slos;

pub use bounds::{MAX_ITEMS, MAX_LENGTH, MAX_PROPERTIES};
pub use conditions::{ConditionReason, ConditionType, Conditions};
pub use durations::{DURATION_PATTERN, parse_duration};
pub use metrics::{MetricMapping, MetricType, MetricUnit, MetricsSpec};
pub use slos::{MAX_SLOS, SloIndicator, SloSpec};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "monitoring.inference.dev";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the resource.
pub const KIND: &str = "InferenceMonitoring";

/// Desired observability for one inference service: which pods (or hosts) serve it, which
/// engine they run, and what infmon should generate for it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "monitoring.inference.dev",
    version = "v1alpha1",
    kind = "InferenceMonitoring",
    plural = "inferencemonitorings",
    shortname = "infmon",
    category = "monitoring",
    doc = "InferenceMonitoring gives an LLM inference service complete, verified observability: scrape configuration, dashboards, recording rules, SLO alerts and GPU telemetry, with status that says whether Prometheus really scrapes it.",
    namespaced,
    status = "InferenceMonitoringStatus",
    cel,
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".status.detectedEngine"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".status.targets.summary"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("has(self.selector) != has(self.staticTargets)").message("exactly one of spec.selector and spec.staticTargets must be set").reason(Reason::FieldValueRequired),
    validation = Rule::new("self.engine != 'custom' || (has(self.endpoint) && has(self.endpoint.port) && has(self.endpoint.path))").message("spec.endpoint.port and spec.endpoint.path are required when spec.engine is custom").reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.selector) || !has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])").message("spec.selector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"),
    validation = Rule::new("!has(self.selector) || !has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? (has(e.values) && size(e.values) > 0) : (!has(e.values) || size(e.values) == 0))").message("spec.selector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"),
    validation = Rule::new("!has(self.staticTargets) || !has(self.namespaceSelector)").message("spec.namespaceSelector applies to spec.selector only; remove it when spec.staticTargets is set"),
    validation = Rule::new("!has(self.staticTargets) || !has(self.prometheus) || !has(self.prometheus.output) || self.prometheus.output != 'none'").message("spec.prometheus.output: none reads pods an existing scrape job collects; it cannot be used with spec.staticTargets"),
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = bounds::bounded)]
pub struct InferenceMonitoringSpec {
    /// The inference engine the selected pods run. It picks the metrics port, path and metric
    /// names (see the README's engine table). Default: `auto`, detected from the pods' images, commands and ports (the result is
    /// shown in `status.detectedEngine`). Use `custom` for any other Prometheus-native service
    /// and describe its endpoint in `spec.endpoint`.
    #[serde(default)]
    pub engine: Engine,

    /// Label selector for the inference pods to scrape. Exactly one of `selector` and
    /// `staticTargets` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Namespaces in which `selector` looks for pods. Default: only this resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,

    /// `host:port` addresses of inference servers outside Kubernetes (docker compose, bare
    /// hosts), scraped as static targets. Exactly one of `selector` and `staticTargets` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), inner(length(max = 261)))]
    #[x_kube(validation = Rule::new("self.all(t, t.matches('^(\\\\[[0-9a-fA-F:.]+\\\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$'))").message("every spec.staticTargets entry must be host:port, e.g. 10.0.0.5:8000 or [::1]:8000"))]
    pub static_targets: Option<Vec<String>>,

    /// How to scrape the metrics endpoint. Each field set here overrides the engine's preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointSpec>,

    /// Where the scrape configuration goes and which Prometheus the health checks ask.
    #[serde(default)]
    pub prometheus: PrometheusSpec,

    /// Grafana dashboards for the engine, an engine-neutral overview and (with the DCGM
    /// exporter on) GPU use per inference pod.
    #[serde(default)]
    pub dashboards: DashboardsSpec,

    /// GPU telemetry for the nodes the inference pods run on.
    #[serde(default)]
    pub gpu: GpuSpec,

    /// SLO alerts and the engine-neutral recording rules they are built on.
    #[serde(default)]
    pub alerts: AlertsSpec,

    /// Metric names per role, for `engine: custom` (any Prometheus-native service) or to
    /// override single roles of a known engine, e.g. a series an engine version renamed.
    /// Default: the engine's catalog entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,

    /// Service-level objectives: for each, error-ratio records over 5m to 3d, the error budget
    /// left over its window, and multi-window burn-rate alerts that page (14.4x over 1h and
    /// 5m, 6x over 6h and 30m) or open a ticket (3x over 1d and 2h, 1x over 3d and 6h).
    /// Default: none. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub slos: Vec<SloSpec>,
}

/// The inference engine a service runs.
#[derive(
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Detect the engine from the selected pods.
    #[default]
    Auto,
    /// vLLM (`vllm serve`).
    Vllm,
    /// SGLang (`python -m sglang.launch_server`).
    Sglang,
    /// Hugging Face Text Generation Inference.
    Tgi,
    /// NVIDIA Triton Inference Server.
    Triton,
    /// TensorRT-LLM's OpenAI server (`trtllm-serve`).
    Trtllm,
    /// JetStream (TPU).
    Jetstream,
    /// Modular MAX Serve.
    Max,
    /// NVIDIA Dynamo frontend.
    Dynamo,
    /// NVIDIA Dynamo workers (the system metrics port, `DYN_SYSTEM_PORT`).
    DynamoWorker,
    /// Removed: Dynamo no longer ships the KV-router metrics aggregator. Refused with a message
    /// naming `dynamo` and `dynamoworker` instead.
    DynamoRouter,
    /// llama.cpp server (`llama-server`).
    Llamacpp,
    /// Any other Prometheus-native service, described by `spec.endpoint`.
    Custom,
}

impl Engine {
    /// Every engine, in declaration order.
    pub const ALL: [Engine; 13] = [
        Engine::Auto,
        Engine::Vllm,
        Engine::Sglang,
        Engine::Tgi,
        Engine::Triton,
        Engine::Trtllm,
        Engine::Jetstream,
        Engine::Max,
        Engine::Dynamo,
        Engine::DynamoWorker,
        Engine::DynamoRouter,
        Engine::Llamacpp,
        Engine::Custom,
    ];

    /// The spelling used in the spec, labels and file names (`vllm`, `llamacpp`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Vllm => "vllm",
            Engine::Sglang => "sglang",
            Engine::Tgi => "tgi",
            Engine::Triton => "triton",
            Engine::Trtllm => "trtllm",
            Engine::Jetstream => "jetstream",
            Engine::Max => "max",
            Engine::Dynamo => "dynamo",
            Engine::DynamoWorker => "dynamoworker",
            Engine::DynamoRouter => "dynamorouter",
            Engine::Llamacpp => "llamacpp",
            Engine::Custom => "custom",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Engine::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Engine::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown engine {s:?}; known engines: {}", known.join(", "))
            })
    }
}

/// Namespaces to look for pods in, as in Prometheus Operator monitors (not a label selector).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.any) && self.any && has(self.matchNames) && size(self.matchNames) > 0)").message("spec.namespaceSelector: set either any or matchNames, not both"))]
pub struct NamespaceSelector {
    /// Select pods in every namespace. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<bool>,
    /// Select pods in exactly these namespaces (at most 64). Default: empty (only this resource's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub match_names: Option<Vec<String>>,
}

/// Scrape settings. Unset fields take the engine's preset (see the README's engine table).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.interval) || !has(self.scrapeTimeout) || duration(self.scrapeTimeout) <= duration(self.interval)").message("spec.endpoint.scrapeTimeout must not be longer than spec.endpoint.interval"))]
pub struct EndpointSpec {
    /// Metrics port: a container port name (e.g. `metrics`) or number (1-65535). Default: the
    /// engine's metrics port (vLLM 8000, SGLang 30000, TGI 80, Triton 8002, MAX 8001, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("string(self).matches('^[0-9]+$') ? (int(string(self)) >= 1 && int(string(self)) <= 65535) : string(self).matches('^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$')").message("spec.endpoint.port must be a number between 1 and 65535 or a container port name (lowercase letters, digits and '-', at most 15 characters)"))]
    pub port: Option<IntOrString>,

    /// HTTP path of the metrics endpoint. Default: the engine's (`/metrics`; trtllm-serve
    /// `/prometheus/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,

    /// `http` or `https`. Default: `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,

    /// Scrape interval, e.g. `15s` or `1m`. Default: `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"),
        length(min = 2)
    )]
    pub interval: Option<String>,

    /// Scrape timeout, e.g. `10s`; must not exceed `interval`. Default: `10s` (capped at the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"),
        length(min = 2)
    )]
    pub scrape_timeout: Option<String>,

    /// Keep the target's own labels when they clash with the labels Prometheus attaches.
    /// Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_labels: Option<bool>,

    /// TLS settings for `https` endpoints. Default: none (system trust store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Authorization header sent with each scrape. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,

    /// Relabelings applied to scraped samples before ingestion (Prometheus
    /// `metric_relabel_configs`), e.g. to drop high-cardinality series. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_relabelings: Option<Vec<RelabelConfig>>,
}

/// URL scheme of a metrics endpoint.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// TLS settings for scraping.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret key holding the PEM CA bundle that signs the server certificate. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeySelector>,
    /// Server name to verify the certificate against. Default: the target's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip certificate verification. Only for testing. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// An `Authorization` header read from a Secret.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Header type. Default: `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.lowerAscii() != 'basic'").message("spec.endpoint.authorization.type must not be Basic; basic auth is not supported here"))]
    pub r#type: Option<String>,
    /// Secret key holding the credentials (for `Bearer`, the token). Required.
    pub credentials: SecretKeySelector,
}

/// A Prometheus relabeling rule (same fields as the Prometheus Operator's `RelabelConfig`).
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    /// Labels whose values are concatenated (with `separator`) and matched against `regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    /// Separator between concatenated source label values. Default: `;`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Label written by `replace`, `hashmod`, `lowercase` and `uppercase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// RE2 regular expression matched against the concatenated values. Default: `(.*)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Modulus for `hashmod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    /// Replacement for `replace` (may reference regex groups as `$1`). Default: `$1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Action: replace, keep, drop, hashmod, labelmap, labeldrop, labelkeep, lowercase,
    /// uppercase, keepequal or dropequal. Default: `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RelabelAction>,
}

/// A relabeling action.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Replace `target_label` with `replacement`.
    Replace,
    /// Keep only matching series.
    Keep,
    /// Drop matching series.
    Drop,
    /// Set `target_label` to a hash modulo `modulus`.
    Hashmod,
    /// Copy labels whose names match `regex`.
    Labelmap,
    /// Drop labels whose names match `regex`.
    Labeldrop,
    /// Keep only labels whose names match `regex`.
    Labelkeep,
    /// Lower-case the value into `target_label`.
    Lowercase,
    /// Upper-case the value into `target_label`.
    Uppercase,
    /// Keep series where the source value equals `target_label`'s value.
    Keepequal,
    /// Drop series where the source value equals `target_label`'s value.
    Dropequal,
}

/// Which kind of scrape configuration infmon generates.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "camelCase")]
pub enum OutputMode {
    /// `podMonitor` when the Prometheus Operator is installed, else `rawScrapeConfig`.
    #[default]
    Auto,
    /// A Prometheus Operator `PodMonitor` (no Service needed).
    PodMonitor,
    /// A Prometheus Operator `ServiceMonitor` (the pods need a Service exposing the metrics port).
    ServiceMonitor,
    /// A Prometheus Operator `ScrapeConfig` (`monitoring.coreos.com/v1alpha1`).
    ScrapeConfig,
    /// A Secret holding a `scrape_configs` list (key `additional-scrape-configs.yaml`) for plain
    /// Prometheus or `additionalScrapeConfigs`.
    RawScrapeConfig,
    /// No scrape configuration: an existing scrape job (a platform's own monitors) already
    /// collects the series, found by `existingTargets`; rules, dashboards and health checks
    /// read them there.
    None,
}

/// Prometheus integration.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.output) || self.output != 'none' || has(self.existingTargets)").message("spec.prometheus.existingTargets is required when spec.prometheus.output is none: name the job, or a label, of the scrape job that already collects the series").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.existingTargets) || (has(self.output) && self.output == 'none')").message("spec.prometheus.existingTargets is only read with spec.prometheus.output: none; remove it, or set output to none"))]
pub struct PrometheusSpec {
    /// Kind of scrape configuration to generate; `none` generates none and reads the series an
    /// existing scrape job collects (see `existingTargets`). Default: `auto`.
    #[serde(default)]
    pub output: OutputMode,

    /// With `output: none`: how to find the targets an existing scrape job (e.g. a platform's
    /// own PodMonitor) already scrapes, by their `job` or by a label the existing monitors put
    /// on them. Only series in the namespaces `selector` looks in, and not claimed by another
    /// InferenceMonitoring, are read. Required with `output: none`, rejected otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_targets: Option<ExistingTargets>,

    /// Labels stamped on every generated monitor and rule so that your Prometheus selects them
    /// (e.g. `release: kube-prometheus-stack`). Default: empty, in which case the operator reads
    /// the cluster's `Prometheus` resources and uses the labels their selectors require.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub monitor_labels: BTreeMap<String, String>,

    /// Base URL of the Prometheus-compatible query API used for health checks (Prometheus,
    /// Thanos Query, Mimir's `/prometheus` prefix, VictoriaMetrics …), e.g.
    /// `http://prometheus-operated.monitoring:9090`. Default: the operator's `--prometheus-url`;
    /// without either, health checks are skipped and `TargetsHealthy` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s/]+(/.*)?$')").message("spec.prometheus.url must be an http:// or https:// URL"))]
    pub url: Option<String>,

    /// Credentials for the query API. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PrometheusAuth>,

    /// How often the health check runs, e.g. `1m`. Default: the operator's global interval (`1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"),
        length(min = 2)
    )]
    pub health_check_interval: Option<String>,
}

/// The targets of an existing scrape job (`output: none`): exactly one of `job` and `label`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.job) != has(self.label)").message("spec.prometheus.existingTargets: set job or label, exactly one"))]
pub struct ExistingTargets {
    /// The `job` label of the existing targets, e.g. `dynamo-system/dynamo-frontend` (a
    /// PodMonitor's default job is `<namespace>/<name>`). Default: none (`label` is then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub job: Option<String>,
    /// A target label the existing monitors set (e.g. through a PodMonitor's
    /// `podTargetLabels`), as `{name: component, value: frontend}`. Default: none (`job` is
    /// then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<TargetLabel>,
}

/// One target label, `name="value"`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetLabel {
    /// A Prometheus label name; not `inference_monitoring` or `inference_engine`, which infmon
    /// sets itself.
    #[schemars(
        regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9_]*$"),
        length(min = 1, max = 128)
    )]
    pub name: String,
    /// The value the existing targets carry.
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
}

/// Credentials for the Prometheus query API, read from Secrets in this resource's namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.bearerToken) && has(self.basicAuth))").message("spec.prometheus.auth: set bearerToken or basicAuth, not both"))]
#[x_kube(validation = Rule::new("has(self.cert) == has(self.key)").message("spec.prometheus.auth: set cert and key together (a client certificate needs its private key)"))]
pub struct PrometheusAuth {
    /// Secret key holding a bearer token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeySelector>,
    /// Basic-auth username and password. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Secret key holding the PEM CA bundle for an `https` URL. Default: system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeySelector>,
    /// Secret key holding a PEM client certificate (with its chain) for an `https` URL that
    /// requires one (mutual TLS); needs `key`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<SecretKeySelector>,
    /// Secret key holding the PEM private key of `cert`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretKeySelector>,
    /// Extra HTTP headers sent with every query, e.g. Grafana Mimir's tenant header
    /// `X-Scope-OrgID`. At most 16. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<QueryHeader>,
}

/// One extra HTTP header for the query API: a literal `value`, or `valueFrom` a Secret for a
/// header that carries a credential.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("spec.prometheus.auth.headers: set value or valueFrom, exactly one"))]
#[x_kube(validation = Rule::new("!(self.name.lowerAscii() in ['authorization', 'host', 'content-length', 'content-type', 'connection', 'transfer-encoding'])").message("spec.prometheus.auth.headers: this header is set by infmon itself (use bearerToken or basicAuth for Authorization)"))]
pub struct QueryHeader {
    /// Header name, e.g. `X-Scope-OrgID`.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"),
        length(min = 1, max = 128)
    )]
    pub name: String,
    /// The header's value, e.g. a tenant id. Default: none (`valueFrom` is then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
    /// Secret key holding the value (never logged or written to status). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretKeySelector>,
}

/// Basic-auth credentials from Secrets.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// Secret key holding the username.
    pub username: SecretKeySelector,
    /// Secret key holding the password.
    pub password: SecretKeySelector,
}

/// Where dashboards go.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "camelCase")]
pub enum DashboardTarget {
    /// ConfigMaps picked up by Grafana's dashboard sidecar.
    #[default]
    ConfigMap,
    /// Grafana Operator `GrafanaDashboard` resources (`grafana.integreatly.org/v1beta1`).
    GrafanaDashboard,
}

/// Grafana dashboards.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.target) || self.target != 'grafanaDashboard' || has(self.instanceSelector)").message("spec.dashboards.instanceSelector is required when spec.dashboards.target is grafanaDashboard").reason(Reason::FieldValueRequired))]
pub struct DashboardsSpec {
    /// Generate dashboards. Default: true.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// `configMap` (Grafana sidecar) or `grafanaDashboard` (Grafana Operator). Default: `configMap`.
    #[serde(default)]
    pub target: DashboardTarget,

    /// Namespace the dashboards are written to (the one Grafana's sidecar or Grafana Operator
    /// watches). Default: this resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// Labels on each dashboard ConfigMap that Grafana's sidecar selects on.
    /// Default: `grafana_dashboard: "1"` (kube-prometheus-stack's setting).
    #[serde(default = "default_dashboard_labels")]
    pub labels: BTreeMap<String, String>,

    /// Grafana folder title to place the dashboards in. Default: none (Grafana's default folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,

    /// Annotation key that carries `folder` on ConfigMaps; must match the sidecar's
    /// `folderAnnotation` setting. Default: `grafana_folder`.
    #[serde(default = "default_folder_annotation")]
    pub folder_annotation: String,

    /// Label selector choosing the `Grafana` instances (Grafana Operator). Required when
    /// `target` is `grafanaDashboard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,
}

impl Default for DashboardsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            target: DashboardTarget::default(),
            namespace: None,
            labels: default_dashboard_labels(),
            folder: None,
            folder_annotation: default_folder_annotation(),
            instance_selector: None,
        }
    }
}

/// GPU telemetry.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpec {
    /// NVIDIA DCGM exporter on GPU nodes. Default: disabled.
    #[serde(default)]
    pub dcgm_exporter: DcgmExporterSpec,
}

/// The NVIDIA DCGM exporter. infmon runs one exporter DaemonSet for every resource that asks
/// for it, configured by the operator (Helm values `gpuExporter.*`), and none at all when the
/// GPU Operator, the dcgm-exporter chart or a cloud provider already runs one.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.image)").message("removed; the exporter image is the operator's setting gpuExporter.image (Helm value); delete the field").field_path(".image"),
    validation = Rule::new("!has(self.__namespace__)").message("removed; the exporter runs in the operator's gpuExporter.namespace (Helm value); delete the field").field_path(".namespace"),
    validation = Rule::new("!has(self.nodeSelector)").message("removed; the exporter's nodes are the operator's setting gpuExporter.nodeSelector (Helm value); delete the field").field_path(".nodeSelector"),
    validation = Rule::new("!has(self.tolerations)").message("removed; the exporter's tolerations are the operator's setting gpuExporter.tolerations (Helm value); delete the field").field_path(".tolerations"),
    validation = Rule::new("!has(self.runtimeClassName)").message("removed; the exporter's RuntimeClass is the operator's setting gpuExporter.runtimeClassName (Helm value); delete the field").field_path(".runtimeClassName"),
    validation = Rule::new("!has(self.resources)").message("removed; the exporter's resources are the operator's setting gpuExporter.resources (Helm value); delete the field").field_path(".resources"),
    validation = Rule::new("!has(self.interval)").message("removed; the exporter's scrape interval is the operator's setting gpuExporter.interval (Helm value); delete the field").field_path(".interval"),
    validation = Rule::new("!has(self.skipIfPresent) || self.skipIfPresent").message("infmon never runs a second exporter on a node that already has one; remove the field or set it to true").field_path(".skipIfPresent")
)]
pub struct DcgmExporterSpec {
    /// Use GPU telemetry: infmon's shared DCGM exporter (one per GPU node, settings from the
    /// operator's `gpuExporter` values) unless one already runs. Default: false.
    #[serde(default)]
    pub enabled: bool,

    /// Kept for compatibility; must be true: an exporter that already runs (GPU Operator,
    /// dcgm-exporter chart, cloud-managed) is always used instead of deploying a second one.
    #[serde(default = "default_true")]
    pub skip_if_present: bool,

    /// Removed: set by the operator (gpuExporter.image). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub image: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.namespace). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub namespace: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.nodeSelector). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub node_selector: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.tolerations). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub tolerations: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.runtimeClassName). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub runtime_class_name: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.resources). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub resources: Option<serde_json::Value>,
    /// Removed: set by the operator (gpuExporter.interval). Rejected when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "removed_field")]
    pub interval: Option<serde_json::Value>,
}

/// Schema of a removed field: any value is accepted by the structure (so the API server does
/// not prune it silently) and then rejected by the CEL rule that names its replacement.
fn removed_field(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

impl Default for DcgmExporterSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            skip_if_present: true,
            image: None,
            namespace: None,
            node_selector: None,
            tolerations: None,
            runtime_class_name: None,
            resources: None,
            interval: None,
        }
    }
}

/// SLO alerts. Each target is checked over five-minute windows.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertsSpec {
    /// Generate the SLO alerts. Default: true. The engine-neutral recording rules are generated
    /// whenever alerts or dashboards are on (the overview dashboard reads them).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Alert when the p95 time to first token exceeds this many seconds. Default: 2.
    #[serde(default = "default_ttft_p95")]
    #[x_kube(validation = Rule::new("self > 0.0").message("spec.alerts.ttftP95Seconds must be positive"))]
    pub ttft_p95_seconds: f64,

    /// Alert when the p95 inter-token latency exceeds this many seconds. Default: 0.1.
    #[serde(default = "default_itl_p95")]
    #[x_kube(validation = Rule::new("self > 0.0").message("spec.alerts.interTokenLatencyP95Seconds must be positive"))]
    pub inter_token_latency_p95_seconds: f64,

    /// Alert when the share of failed requests exceeds this ratio (0-1). Default: 0.05.
    #[serde(default = "default_error_ratio")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("spec.alerts.errorRatio must be greater than 0 and at most 1"))]
    pub error_ratio: f64,

    /// Alert when more than this many requests wait in the queue for 10 minutes. Default: 10.
    #[serde(default = "default_queue_waiting")]
    #[x_kube(validation = Rule::new("self > 0.0").message("spec.alerts.queueWaiting must be positive"))]
    pub queue_waiting: f64,

    /// Alert when a pod preempts more than this many requests per minute for 15 minutes (on
    /// engines that report preemptions: vLLM, SGLang, MAX). KV-cache usage near 100 % is
    /// normal under load and never alerts; preemptions are what it costs when the cache is
    /// too small. Default: 1.
    #[serde(default = "default_preemptions_per_minute")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("spec.alerts.preemptionsPerMinute must not be negative"))]
    pub preemptions_per_minute: f64,

    /// Opt-in: also alert when a pod's KV-cache usage stays above this ratio (0-1) for 15
    /// minutes. Default: unset, no such alert (a nearly full cache is how vLLM runs under load;
    /// the preemption alert says when it costs latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("spec.alerts.kvCacheUsage must be greater than 0 and at most 1"))]
    pub kv_cache_usage: Option<f64>,

    /// Base URL of the runbooks; each alert links `<runbookBaseUrl>/<AlertName>`.
    /// Default: the "Alert runbooks" section of the project's README.
    #[serde(default = "default_runbook_base_url")]
    pub runbook_base_url: String,

    /// Extra labels on every alert, e.g. `severity` routing or `team`. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for AlertsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ttft_p95_seconds: default_ttft_p95(),
            inter_token_latency_p95_seconds: default_itl_p95(),
            error_ratio: default_error_ratio(),
            queue_waiting: default_queue_waiting(),
            preemptions_per_minute: default_preemptions_per_minute(),
            kv_cache_usage: None,
            runbook_base_url: default_runbook_base_url(),
            labels: BTreeMap::new(),
        }
    }
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InferenceMonitoringStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions: `Ready` (summary), `ResourcesApplied`, `TargetsHealthy`, `DashboardsReady`,
    /// `GpuExporterReady`. Each reason is a stable CamelCase word; each message says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Scrape target health as last seen by Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<TargetsStatus>,

    /// The engine in effect: `spec.engine`, or the one detected from the pods when it is `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_engine: Option<String>,

    /// `Prometheus` (`namespace/name`) and `PrometheusAgent` (`namespace/name (PrometheusAgent)`)
    /// resources whose selectors pick up the generated monitors; when there is none, the other
    /// known consumers of monitors running in the cluster (e.g. `VMAgent vm/agent
    /// (VictoriaMetrics operator)`), whose scraping the health check verifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected_by: Vec<String>,

    /// Objects generated for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildReference>,
}

/// Scrape target counts from the last health check.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetsStatus {
    /// Targets whose last scrape succeeded.
    pub up: u32,
    /// Targets whose last scrape failed.
    pub down: u32,
    /// All targets Prometheus discovered for this resource.
    pub total: u32,
    /// `up/total`, shown by `kubectl get`.
    pub summary: String,
    /// The first failing target's scrape error, e.g. `connection refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When Prometheus was last asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<Time>,
}

/// A reference to a generated object.
#[derive(
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct ChildReference {
    /// API version of the object, e.g. `monitoring.coreos.com/v1`.
    pub api_version: String,
    /// Kind of the object, e.g. `PodMonitor`.
    pub kind: String,
    /// Namespace of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
}

fn default_true() -> bool {
    true
}
fn default_dashboard_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("grafana_dashboard".to_string(), "1".to_string())])
}
fn default_folder_annotation() -> String {
    "grafana_folder".to_string()
}
fn default_ttft_p95() -> f64 {
    2.0
}
fn default_itl_p95() -> f64 {
    0.1
}
fn default_error_ratio() -> f64 {
    0.05
}
fn default_queue_waiting() -> f64 {
    10.0
}
fn default_preemptions_per_minute() -> f64 {
    1.0
}
/// Default base URL of the alert runbooks.
pub const DEFAULT_RUNBOOK_BASE_URL: &str = "https://github.com/infmon/infmon/blob/main/README.md#";
fn default_runbook_base_url() -> String {
    DEFAULT_RUNBOOK_BASE_URL.to_string()
}
