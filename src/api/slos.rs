//! `spec.slos`: service-level objectives, each turned into error-ratio records per window,
//! an error-budget record and multi-window burn-rate alerts.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The most objectives one resource may list.
pub const MAX_SLOS: usize = 16;

/// One objective: the share of good requests (`target` percent) over a compliance `window`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    /// Name of the objective, unique in the resource: a DNS label (lower-case letters, digits
    /// and `-`, at most 63). It becomes the `slo` label of its records and alerts.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// What is measured: `ttft`, `interTokenLatency` or `e2eLatency` (a request is good when
    /// it is at most `thresholdSeconds`, counted from the engine's histogram buckets), or
    /// `availability` (a request is good when it does not fail).
    pub sli: SloIndicator,

    /// Latency objectives: the threshold in seconds. It must be one of the bucket boundaries
    /// of the engine's histogram (converted to seconds when the engine reports milliseconds);
    /// `infmon validate` names the nearest boundaries otherwise. Not allowed for availability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("spec.slos[].thresholdSeconds must be positive"))]
    pub threshold_seconds: Option<f64>,

    /// The objective in percent of good requests, greater than 0 and less than 100, e.g. 99.5.
    #[x_kube(validation = Rule::new("self > 0.0 && self < 100.0").message("spec.slos[].target must be a percentage greater than 0 and less than 100, e.g. 99.5"))]
    pub target: f64,

    /// The compliance window in days over which the error budget is counted, e.g. `28d`.
    /// Default: `28d`.
    #[serde(default = "default_window")]
    #[schemars(length(max = 4), regex(pattern = r"^[1-9][0-9]?d$"))]
    pub window: String,

    /// Only requests of this model (the engine's model label). Default: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub model: Option<String>,

    /// Burn-rate alerts fire only when the long window of an alert pair counted at least this
    /// many requests, so a handful of requests cannot page. Default: 100.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub min_requests: u32,
}

/// The indicator an objective measures.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum SloIndicator {
    /// Time to first token at most the threshold.
    Ttft,
    /// Inter-token latency at most the threshold.
    InterTokenLatency,
    /// End-to-end request latency at most the threshold.
    E2eLatency,
    /// Requests that do not fail (errors over all requests).
    Availability,
}

impl SloIndicator {
    /// The camelCase value as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            SloIndicator::Ttft => "ttft",
            SloIndicator::InterTokenLatency => "interTokenLatency",
            SloIndicator::E2eLatency => "e2eLatency",
            SloIndicator::Availability => "availability",
        }
    }
}

fn default_window() -> String {
    "28d".into()
}

fn default_min_requests() -> u32 {
    100
}
