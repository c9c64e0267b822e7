//! `spec.metrics`: user-defined metric names per role, for any Prometheus-native inference
//! service (`engine: custom`) or to follow an engine version that renamed a series.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Metric names per role. For `engine: custom` this is the whole catalog; for a known engine
/// each role set here replaces that role's preset and the others keep theirs.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Finished requests: a counter. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'counter'").message("spec.metrics.requests must be a counter (type: counter)"))]
    pub requests: Option<MetricMapping>,

    /// Failed requests: a counter (use `matchers` to pick failures out of a request counter,
    /// e.g. `code=~"5.."`). Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'counter'").message("spec.metrics.errors must be a counter (type: counter)"))]
    pub errors: Option<MetricMapping>,

    /// Requests waiting in the queue: a gauge. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'gauge'").message("spec.metrics.waiting must be a gauge (type: gauge)"))]
    pub waiting: Option<MetricMapping>,

    /// Requests in progress: a gauge. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'gauge'").message("spec.metrics.running must be a gauge (type: gauge)"))]
    pub running: Option<MetricMapping>,

    /// Time to first token: a histogram in a time unit. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'histogram'").message("spec.metrics.ttft must be a histogram (type: histogram)"))]
    #[x_kube(validation = Rule::new("!has(self.unit) || self.unit in ['seconds', 'milliseconds', 'microseconds']").message("spec.metrics.ttft.unit must be seconds, milliseconds or microseconds"))]
    pub ttft: Option<MetricMapping>,

    /// Inter-token latency (time per output token): a histogram in a time unit. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'histogram'").message("spec.metrics.interTokenLatency must be a histogram (type: histogram)"))]
    #[x_kube(validation = Rule::new("!has(self.unit) || self.unit in ['seconds', 'milliseconds', 'microseconds']").message("spec.metrics.interTokenLatency.unit must be seconds, milliseconds or microseconds"))]
    pub inter_token_latency: Option<MetricMapping>,

    /// End-to-end request latency: a histogram in a time unit. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'histogram'").message("spec.metrics.e2eLatency must be a histogram (type: histogram)"))]
    #[x_kube(validation = Rule::new("!has(self.unit) || self.unit in ['seconds', 'milliseconds', 'microseconds']").message("spec.metrics.e2eLatency.unit must be seconds, milliseconds or microseconds"))]
    pub e2e_latency: Option<MetricMapping>,

    /// Prompt tokens: a counter, or a histogram of tokens per request (its `_sum` is used).
    /// Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type != 'gauge'").message("spec.metrics.promptTokens must be a counter or a histogram"))]
    pub prompt_tokens: Option<MetricMapping>,

    /// Generated tokens: a counter, or a histogram of tokens per request. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type != 'gauge'").message("spec.metrics.generationTokens must be a counter or a histogram"))]
    pub generation_tokens: Option<MetricMapping>,

    /// KV-cache usage: a gauge with unit `ratio` (0-1) or `percent` (0-100). Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'gauge'").message("spec.metrics.kvCacheUsage must be a gauge (type: gauge)"))]
    #[x_kube(validation = Rule::new("has(self.unit) && self.unit in ['ratio', 'percent']").message("spec.metrics.kvCacheUsage.unit must be ratio or percent"))]
    pub kv_cache_usage: Option<MetricMapping>,

    /// Batch size: a gauge or a histogram. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type != 'counter'").message("spec.metrics.batchSize must be a gauge or a histogram"))]
    pub batch_size: Option<MetricMapping>,

    /// Named latency stages of a request (tokenization, queue wait, inference, …), each a
    /// histogram in a time unit with a `title`; the generic dashboard shows each stage's share
    /// of the total.
    /// Default: none. At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(s, s.type == 'histogram')").message("every spec.metrics.stages entry must be a histogram (type: histogram)"))]
    #[x_kube(validation = Rule::new("self.all(s, !has(s.unit) || s.unit in ['seconds', 'milliseconds', 'microseconds'])").message("every spec.metrics.stages unit must be seconds, milliseconds or microseconds"))]
    #[x_kube(validation = Rule::new("self.all(s, has(s.title))").message("every spec.metrics.stages entry needs a title"))]
    pub stages: Vec<MetricMapping>,

    /// Queue-size gauges shown side by side (tokenizer, model, batch queues, …). Default: none.
    /// At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(q, q.type == 'gauge')").message("every spec.metrics.queues entry must be a gauge (type: gauge)"))]
    pub queues: Vec<MetricMapping>,

    /// A per-worker request counter and the label naming the worker (`workerLabel`), for
    /// per-worker throughput. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'counter' && has(self.workerLabel)").message("spec.metrics.workerRequests must be a counter with workerLabel set"))]
    pub worker_requests: Option<MetricMapping>,

    /// GPU memory used, a gauge the service reports itself (unit `megabytes` or `bytes`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'gauge' && has(self.unit) && self.unit in ['megabytes', 'bytes']").message("spec.metrics.gpuMemory must be a gauge with unit megabytes or bytes"))]
    pub gpu_memory: Option<MetricMapping>,

    /// GPU utilisation, a gauge the service reports itself (unit `percent` or `ratio`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.type == 'gauge' && has(self.unit) && self.unit in ['percent', 'ratio']").message("spec.metrics.gpuUtilization must be a gauge with unit percent or ratio"))]
    pub gpu_utilization: Option<MetricMapping>,

    /// A series every healthy target exports, checked by health checks and `absent()` alerts.
    /// Default: the engine's; for `custom`, the `requests` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"))]
    pub core_metric: Option<String>,

    /// The label that names the model on the service's series. Default: the engine's; none for `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9_]*$"))]
    pub model_label: Option<String>,
}

/// One metric mapped to a role.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricMapping {
    /// Series name as exported, without `_bucket`/`_sum`/`_count` for histograms
    /// (e.g. `request_latency_seconds`).
    #[schemars(regex(pattern = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"))]
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub r#type: MetricType,
    /// Unit of the values: seconds, milliseconds, microseconds, ratio, percent, count,
    /// megabytes or bytes. Default: seconds for latency roles, count otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<MetricUnit>,
    /// Extra label matchers, e.g. `code=~"5.."`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r#"^[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*"(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*")*$"#
    ))]
    pub matchers: Option<String>,
    /// Display name in `stages` and `queues`, e.g. `tokenization`. Default: the metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"))]
    pub title: Option<String>,
    /// Label naming the worker (in `workerRequests` only), e.g. `worker_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9_]*$"))]
    pub worker_label: Option<String>,
}

/// A Prometheus metric type.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A monotonically increasing counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// The unit of a metric's values.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Microseconds.
    Microseconds,
    /// 0-1.
    Ratio,
    /// 0-100.
    Percent,
    /// A plain count.
    Count,
    /// Megabytes (2^20 bytes).
    Megabytes,
    /// Bytes.
    Bytes,
}
