//! Why a resource cannot be resolved: one error type for `resolve` and the grammar checks it
//! runs, each naming the field to fix.

use crate::api::Engine;
use crate::engines;

/// A spec that cannot be resolved, with the field to fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// `engine: auto` and no engine was detected.
    #[error(
        "spec.engine: engine is auto and none could be detected ({reason}); set spec.engine to one of {}",
        engines::engine_choices()
    )]
    EngineUndetermined {
        /// Why detection failed.
        reason: String,
    },
    /// `spec.engine` names an engine whose metrics no longer exist upstream.
    #[error("spec.engine: {engine} is no longer supported: {instead}")]
    EngineRemoved {
        /// The removed engine.
        engine: Engine,
        /// What to use instead.
        instead: &'static str,
    },
    /// The chosen output needs an API the cluster does not serve.
    #[error(
        "spec.prometheus.output: {output} needs the {api} API, which this cluster does not serve; install the Prometheus Operator CRDs or use output rawScrapeConfig"
    )]
    ApiUnavailable {
        /// The requested output.
        output: &'static str,
        /// The missing API.
        api: &'static str,
    },
    /// The output cannot scrape static targets.
    #[error(
        "spec.prometheus.output: {output} selects pods and cannot scrape spec.staticTargets; use scrapeConfig or rawScrapeConfig (or leave output as auto)"
    )]
    StaticTargetsUnsupported {
        /// The requested output.
        output: &'static str,
    },
    /// A port was given where each target already carries one.
    #[error(
        "spec.endpoint.port: static targets carry their own port (host:port), so spec.endpoint.port {port:?} cannot be applied; remove it"
    )]
    PortWithStaticTargets {
        /// The port given.
        port: String,
    },
    /// A ServiceMonitor's endpoint names a Service port by name only.
    #[error(
        "spec.endpoint.port: engine {engine} has no default port to resolve for a custom service; set spec.endpoint.port"
    )]
    PortUnresolved {
        /// The engine.
        engine: Engine,
    },
    /// The resource asks for something the operator's policy does not allow.
    #[error(
        "{field}: {value:?} is not allowed by the operator's policy ({setting} allows: {allowed}); {remedy}"
    )]
    Forbidden {
        /// The spec field.
        field: &'static str,
        /// The value asked for.
        value: String,
        /// The operator setting that forbids it (flag and Helm value).
        setting: &'static str,
        /// What the setting allows.
        allowed: String,
        /// What to do.
        remedy: &'static str,
    },
    /// A value that would not be valid where it lands (PromQL, Prometheus configuration,
    /// Kubernetes object names, …).
    #[error("{field}: {problem}")]
    Invalid {
        /// The spec field, e.g. `spec.metrics.queues[0].matchers`.
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
}
