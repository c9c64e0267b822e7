//! The engine catalog: one table of facts per inference engine (where its metrics live, what
//! must be switched on, how to recognise its pods, and which series fill each role in units),
//! read by the scrape builders, dashboards, recording rules, health checks and test fixtures.
//! Engines differ here, in data; the code that reads the table is the same for all of them.
//!
//! The facts are data: one YAML file per engine under `src/engines/catalog/`, embedded at
//! build time and parsed once ([`catalog`]). Each file names the engine release its series were
//! checked against, in that engine's own metric definitions; the tests scrape exposition pages
//! written from those definitions (`tests/fixtures/engines/`), never pages made from this
//! catalog. Names drift between versions; `spec.metrics` lets users override single roles.

mod catalog;

use std::borrow::Cow;

use crate::api::{Engine, MetricMapping, MetricType, MetricUnit, MetricsSpec, Scheme};

/// How a series' values are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// Milliseconds (MAX Serve, Triton histograms).
    Milliseconds,
    /// Microseconds (Triton duration counters).
    Microseconds,
    /// A ratio from 0 to 1.
    Ratio,
    /// A percentage from 0 to 100.
    Percent,
    /// A plain count (requests, tokens, sequences).
    Count,
    /// Tokens per second (llama.cpp's mean decode speed).
    TokensPerSecond,
    /// Megabytes (2^20 bytes).
    Megabytes,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// The factor that turns a value in this unit into the base unit: seconds for durations,
    /// a 0–1 ratio for shares, bytes for memory.
    pub fn to_base_factor(self) -> f64 {
        match self {
            Unit::Milliseconds => 1e-3,
            Unit::Microseconds => 1e-6,
            Unit::Percent => 1e-2,
            Unit::Megabytes => 1_048_576.0,
            Unit::Seconds | Unit::Ratio | Unit::Count | Unit::TokensPerSecond | Unit::Bytes => 1.0,
        }
    }
}

/// A series, or the arithmetic that stands in for one, that fills a role.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A counter; the role is its per-second rate.
    Counter {
        /// Series name (with `_total` where the engine has it).
        name: Cow<'static, str>,
        /// Extra label matchers, e.g. `status=~"5.."`, or empty.
        matchers: Cow<'static, str>,
    },
    /// A gauge read as is.
    Gauge {
        /// Series name.
        name: Cow<'static, str>,
        /// Extra label matchers, or empty.
        matchers: Cow<'static, str>,
        /// Unit of the values.
        unit: Unit,
    },
    /// A histogram; quantiles come from `<name>_bucket`.
    Histogram {
        /// Base name (without `_bucket`/`_sum`/`_count`).
        name: Cow<'static, str>,
        /// Extra label matchers, or empty.
        matchers: Cow<'static, str>,
        /// Unit of the observations.
        unit: Unit,
    },
    /// A histogram of counts (tokens per request) whose `_sum` rate is a throughput.
    HistogramSum {
        /// Base name.
        name: Cow<'static, str>,
    },
    /// A cumulative duration counter (Triton's `*_duration_us`): mean = rate(sum) / rate(count).
    DurationCounter {
        /// The duration counter.
        name: Cow<'static, str>,
        /// The counter of completed requests it is divided by.
        count: Cow<'static, str>,
        /// Unit of the counter.
        unit: Unit,
    },
    /// A PromQL template for engines that lack the series, e.g. TGI's TTFT approximation.
    /// Placeholders: `{sel}` (label matchers without braces), `{by}` (grouping labels),
    /// `{q}` (quantile), `{w}` (rate window). The result is already in seconds or a ratio.
    Approximation {
        /// The template.
        template: Cow<'static, str>,
        /// Why it is an approximation, shown in panel descriptions.
        note: Cow<'static, str>,
    },
}

impl Source {
    /// Every series name the source reads (for linting queries against the catalog).
    pub fn series_names(&self) -> Vec<String> {
        match self {
            Source::Counter { name, .. } | Source::Gauge { name, .. } => vec![name.to_string()],
            Source::Histogram { name, .. } => vec![format!("{name}_bucket")],
            Source::HistogramSum { name } => vec![format!("{name}_sum")],
            Source::DurationCounter { name, count, .. } => {
                vec![name.to_string(), count.to_string()]
            }
            Source::Approximation { .. } => Vec::new(),
        }
    }
}

/// What a series means, independent of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Finished requests (rate).
    Requests,
    /// Failed requests (rate).
    Errors,
    /// Requests waiting in the queue.
    Waiting,
    /// Requests being processed.
    Running,
    /// Time to first token.
    Ttft,
    /// Inter-token latency (time per output token).
    InterTokenLatency,
    /// End-to-end request latency.
    E2eLatency,
    /// Prompt (input) tokens processed.
    PromptTokens,
    /// Generated (output) tokens.
    GenerationTokens,
    /// KV-cache usage, 0–1.
    KvCacheUsage,
    /// Batch size (sequences or tokens per engine step).
    BatchSize,
    /// Every request, failed or not, counted where the errors are counted: the error ratio's
    /// denominator (errors over all requests, both from the same layer).
    AllRequests,
    /// Share of prompt tokens served from the prefix (KV) cache, 0–1.
    PrefixCacheHitRate,
    /// Requests preempted (or retracted) to free KV cache (rate).
    Preemptions,
    /// Time a request waits in the queue before it is scheduled.
    QueueTime,
    /// Time spent computing the prompt (prefill).
    PrefillTime,
    /// Time spent generating tokens after the first (decode).
    DecodeTime,
    /// Accepted over proposed speculative-decoding draft tokens, 0–1.
    SpecDecodeAcceptance,
    /// Finished requests per second by finish reason (stop, length, abort, …).
    FinishedReason,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 19] = [
        Role::Requests,
        Role::Errors,
        Role::Waiting,
        Role::Running,
        Role::Ttft,
        Role::InterTokenLatency,
        Role::E2eLatency,
        Role::PromptTokens,
        Role::GenerationTokens,
        Role::KvCacheUsage,
        Role::BatchSize,
        Role::AllRequests,
        Role::PrefixCacheHitRate,
        Role::Preemptions,
        Role::QueueTime,
        Role::PrefillTime,
        Role::DecodeTime,
        Role::SpecDecodeAcceptance,
        Role::FinishedReason,
    ];

    /// The camelCase key used in `spec.metrics` and documentation.
    pub fn key(self) -> &'static str {
        match self {
            Role::Requests => "requests",
            Role::Errors => "errors",
            Role::Waiting => "waiting",
            Role::Running => "running",
            Role::Ttft => "ttft",
            Role::InterTokenLatency => "interTokenLatency",
            Role::E2eLatency => "e2eLatency",
            Role::PromptTokens => "promptTokens",
            Role::GenerationTokens => "generationTokens",
            Role::KvCacheUsage => "kvCacheUsage",
            Role::BatchSize => "batchSize",
            Role::AllRequests => "allRequests",
            Role::PrefixCacheHitRate => "prefixCacheHitRate",
            Role::Preemptions => "preemptions",
            Role::QueueTime => "queueTime",
            Role::PrefillTime => "prefillTime",
            Role::DecodeTime => "decodeTime",
            Role::SpecDecodeAcceptance => "specDecodeAcceptance",
            Role::FinishedReason => "finishedReason",
        }
    }

    /// Whether the role is a duration (its unit defaults to seconds).
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Role::Ttft
                | Role::InterTokenLatency
                | Role::E2eLatency
                | Role::QueueTime
                | Role::PrefillTime
                | Role::DecodeTime
        )
    }

    /// Whether the role counts tokens (a histogram of it contributes its `_sum`).
    pub fn is_token_count(self) -> bool {
        matches!(self, Role::PromptTokens | Role::GenerationTokens)
    }

    /// A human title for panels and tables.
    pub fn title(self) -> &'static str {
        match self {
            Role::Requests => "Requests",
            Role::Errors => "Errors",
            Role::Waiting => "Waiting requests",
            Role::Running => "Running requests",
            Role::Ttft => "Time to first token",
            Role::InterTokenLatency => "Inter-token latency",
            Role::E2eLatency => "End-to-end latency",
            Role::PromptTokens => "Prompt tokens",
            Role::GenerationTokens => "Generation tokens",
            Role::KvCacheUsage => "KV-cache usage",
            Role::BatchSize => "Batch size",
            Role::AllRequests => "All requests",
            Role::PrefixCacheHitRate => "Prefix-cache hit rate",
            Role::Preemptions => "Preemptions",
            Role::QueueTime => "Queue time",
            Role::PrefillTime => "Prefill time",
            Role::DecodeTime => "Decode time",
            Role::SpecDecodeAcceptance => "Speculative-decoding acceptance",
            Role::FinishedReason => "Finished requests by reason",
        }
    }
}

/// Substrings that identify an engine's pods, for `engine: auto`.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Substrings of container images (lower-case), e.g. `vllm/vllm-openai`.
    pub images: &'static [&'static str],
    /// Substrings of the container command line (command + args joined by spaces).
    pub commands: &'static [&'static str],
}

/// Facts about one engine.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineProfile {
    /// Which engine.
    pub engine: Engine,
    /// Display name, e.g. `vLLM`.
    pub title: &'static str,
    /// The engine release whose metric definitions the series were checked against, e.g.
    /// `vLLM 0.33.0`; empty for a custom service.
    pub release: &'static str,
    /// Default metrics port.
    pub port: u16,
    /// Default metrics path.
    pub path: &'static str,
    /// Default scheme.
    pub scheme: Scheme,
    /// What the user must do for the engine to expose metrics (named in diagnoses).
    pub metrics_flag: &'static str,
    /// A series every healthy target exports; guards `absent()` alerts and health checks.
    /// `None` only for a custom service whose mapping names none.
    pub core_metric: Option<Cow<'static, str>>,
    /// The label that names the model, if the engine has one.
    pub model_label: Option<Cow<'static, str>>,
    /// Requests are counted per model and the same request can be counted by several models
    /// (Triton's ensembles and their composing models): dashboards and rules keep the model
    /// label instead of summing over it.
    pub per_model: bool,
    /// Series per role; roles the engine does not report are missing.
    pub roles: Vec<(Role, Source)>,
    /// Default bucket boundaries (in the histogram's own unit, without `+Inf`) of the
    /// latency histograms whose buckets the catalog knows; an SLO threshold must be one.
    pub buckets: Vec<(Role, &'static [f64])>,
    /// How to recognise the engine's pods.
    pub detection: Detection,
    /// Series beyond the roles, used by the generic service dashboard.
    pub extras: Extras,
}

/// A source with a display name (a latency stage, a queue).
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// Display name, e.g. `tokenization`.
    pub name: String,
    /// The series.
    pub source: Source,
}

/// Series beyond the roles: request stages, queues, workers and service-reported GPU gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// Latency stages of a request (histograms).
    pub stages: Vec<Named>,
    /// Queue-size gauges.
    pub queues: Vec<Named>,
    /// A per-worker request counter and the label naming the worker.
    pub worker_requests: Option<(Source, String)>,
    /// GPU memory used, as the service reports it.
    pub gpu_memory: Option<Source>,
    /// GPU utilisation, as the service reports it.
    pub gpu_utilization: Option<Source>,
    /// Series with one line per worker (a router's view of its workers).
    pub per_worker: Option<WorkerView>,
    /// Show the DCGM GPU panels of the namespace's pods beside the engine's.
    pub gpu_panels: bool,
}

/// Series a component reports about each worker, told apart by one label.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerView {
    /// The label naming the worker, e.g. `worker_id`.
    pub label: &'static str,
    /// One panel each.
    pub series: Vec<WorkerSeries>,
}

/// One per-worker series.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSeries {
    /// Panel title.
    pub title: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// A 0–1 share (shown as a percentage) rather than a plain number.
    pub ratio: bool,
    /// The series (grouped by the worker label as well).
    pub source: Source,
}

impl EngineProfile {
    /// The entry of a `custom` service before its `spec.metrics` mapping is applied: the
    /// endpoint comes from the spec, the series from the mapping.
    pub fn custom() -> Self {
        Self {
            engine: Engine::Custom,
            title: "Custom service",
            release: "",
            port: 0,
            path: "/metrics",
            scheme: Scheme::Http,
            metrics_flag: "make the service serve Prometheus metrics on spec.endpoint.port and spec.endpoint.path",
            core_metric: None,
            model_label: None,
            per_model: false,
            roles: Vec::new(),
            buckets: Vec::new(),
            detection: Detection {
                images: &[],
                commands: &[],
            },
            extras: Extras::default(),
        }
    }

    /// The source of a role, if the engine reports it.
    pub fn source(&self, role: Role) -> Option<&Source> {
        self.roles.iter().find(|(r, _)| *r == role).map(|(_, s)| s)
    }

    /// The default bucket boundaries of a role's histogram, in its own unit, if known.
    pub fn buckets(&self, role: Role) -> Option<&'static [f64]> {
        self.buckets
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, b)| *b)
    }

    /// Every series name the profile reads.
    pub fn series_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .iter()
            .flat_map(|(_, s)| s.series_names())
            .collect();
        names.extend(self.core_metric.iter().map(ToString::to_string));
        names.sort();
        names.dedup();
        names
    }
}

/// The profile of a concrete engine, from the catalog; `None` for `auto`, `custom` and the
/// removed `dynamorouter`.
pub fn profile(engine: Engine) -> Option<EngineProfile> {
    catalog::profiles()
        .iter()
        .find(|p| p.engine == engine)
        .cloned()
}

/// Applies `spec.metrics`: each mapped role replaces the preset's source, the rest stay; stages,
/// queues, workers and GPU gauges go to [`Extras`]; the core metric and model label follow
/// the mapping (for a custom service the core metric defaults to its `requests` series).
pub fn with_overrides(mut profile: EngineProfile, metrics: &MetricsSpec) -> EngineProfile {
    let roles = [
        (Role::Requests, &metrics.requests),
        (Role::Errors, &metrics.errors),
        (Role::Waiting, &metrics.waiting),
        (Role::Running, &metrics.running),
        (Role::Ttft, &metrics.ttft),
        (Role::InterTokenLatency, &metrics.inter_token_latency),
        (Role::E2eLatency, &metrics.e2e_latency),
        (Role::PromptTokens, &metrics.prompt_tokens),
        (Role::GenerationTokens, &metrics.generation_tokens),
        (Role::KvCacheUsage, &metrics.kv_cache_usage),
        (Role::BatchSize, &metrics.batch_size),
    ];
    for (role, mapping) in roles {
        let Some(mapping) = mapping else { continue };
        let source = mapped_source(mapping, role.is_latency(), role.is_token_count());
        // A mapped series has buckets of its own, which the catalog does not know.
        profile.buckets.retain(|(r, _)| *r != role);
        match profile.roles.iter_mut().find(|(r, _)| *r == role) {
            Some((_, existing)) => *existing = source,
            None => profile.roles.push((role, source)),
        }
    }
    profile.roles.sort_by_key(|(role, _)| *role);

    let named = |m: &MetricMapping, latency: bool| Named {
        name: m.title.clone().unwrap_or_else(|| m.name.clone()),
        source: mapped_source(m, latency, false),
    };
    profile
        .extras
        .stages
        .extend(metrics.stages.iter().map(|m| named(m, true)));
    profile
        .extras
        .queues
        .extend(metrics.queues.iter().map(|m| named(m, false)));
    if let Some(m) = &metrics.worker_requests {
        let label = m.worker_label.clone().unwrap_or_else(|| "worker_id".into());
        profile.extras.worker_requests = Some((mapped_source(m, false, false), label));
    }
    if let Some(m) = &metrics.gpu_memory {
        profile.extras.gpu_memory = Some(mapped_source(m, false, false));
    }
    if let Some(m) = &metrics.gpu_utilization {
        profile.extras.gpu_utilization = Some(mapped_source(m, false, false));
    }

    if let Some(core) = &metrics.core_metric {
        profile.core_metric = Some(Cow::Owned(core.clone()));
    } else if profile.core_metric.is_none() {
        profile.core_metric = metrics
            .requests
            .as_ref()
            .map(|m| Cow::Owned(m.name.clone()));
    }
    if let Some(label) = &metrics.model_label {
        profile.model_label = Some(Cow::Owned(label.clone()));
    }
    profile
}

fn mapped_source(mapping: &MetricMapping, latency: bool, token_count: bool) -> Source {
    let unit = match mapping.unit {
        Some(unit) => Unit::from(unit),
        None if latency => Unit::Seconds,
        None => Unit::Count,
    };
    let name = Cow::Owned(mapping.name.clone());
    let matchers = Cow::Owned(mapping.matchers.clone().unwrap_or_default());
    match mapping.r#type {
        MetricType::Counter => Source::Counter { name, matchers },
        MetricType::Gauge => Source::Gauge {
            name,
            matchers,
            unit,
        },
        MetricType::Histogram if token_count => Source::HistogramSum { name },
        MetricType::Histogram => Source::Histogram {
            name,
            matchers,
            unit,
        },
    }
}

impl From<MetricUnit> for Unit {
    fn from(unit: MetricUnit) -> Self {
        match unit {
            MetricUnit::Seconds => Unit::Seconds,
            MetricUnit::Milliseconds => Unit::Milliseconds,
            MetricUnit::Microseconds => Unit::Microseconds,
            MetricUnit::Ratio => Unit::Ratio,
            MetricUnit::Percent => Unit::Percent,
            MetricUnit::Count => Unit::Count,
            MetricUnit::Megabytes => Unit::Megabytes,
            MetricUnit::Bytes => Unit::Bytes,
        }
    }
}

/// Profiles of every concrete engine, in declaration order.
pub fn all_profiles() -> Vec<EngineProfile> {
    Engine::ALL.into_iter().filter_map(profile).collect()
}

/// The `spec.engine` values a user can choose, as a sentence fragment for messages:
/// `vllm, sglang, …, llamacpp or custom`.
pub fn engine_choices() -> String {
    let names: Vec<&str> = all_profiles().iter().map(|p| p.engine.as_str()).collect();
    format!("{} or custom", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_concrete_engine_has_a_profile_and_auto_custom_do_not() {
        assert_eq!(all_profiles().len(), 10);
        assert!(profile(Engine::Auto).is_none());
        assert!(profile(Engine::Custom).is_none());
        for p in all_profiles() {
            assert_eq!(profile(p.engine).unwrap().engine, p.engine);
            assert!(p.path.starts_with('/'), "{}", p.title);
        }
    }

    #[test]
    fn presets_match_the_engines_documentation() {
        let trt = profile(Engine::Trtllm).unwrap();
        assert_eq!((trt.port, trt.path), (8000, "/prometheus/metrics"));
        let max = profile(Engine::Max).unwrap();
        assert_eq!(max.port, 8001);
        assert!(matches!(
            max.source(Role::Ttft),
            Some(Source::Histogram {
                unit: Unit::Milliseconds,
                ..
            })
        ));
        assert!(
            profile(Engine::Sglang)
                .unwrap()
                .metrics_flag
                .contains("--enable-metrics")
        );
        assert!(
            profile(Engine::Llamacpp)
                .unwrap()
                .metrics_flag
                .contains("--metrics")
        );
        assert!(
            profile(Engine::Jetstream)
                .unwrap()
                .metrics_flag
                .contains("--prometheus_port")
        );
        assert!(
            profile(Engine::Triton)
                .unwrap()
                .metrics_flag
                .contains("histogram_latencies=true")
        );
    }

    #[test]
    fn removed_metric_names_are_not_used() {
        let removed = [
            "vllm:gpu_cache_usage_perc",
            "vllm:gpu_prefix_cache_hits",
            "vllm:time_per_output_token_seconds",
            "vllm:num_requests_swapped",
            "sglang:time_per_output_token_seconds",
            // Dynamo: the kvstats_ infix and the KV-router aggregator's series are gone.
            "dynamo_component_kvstats_",
            "llm_kv_",
            "llm_requests_",
            "llm_load_",
        ];
        // Names whose current spelling only adds a suffix.
        let renamed = ["jetstream_request_success_count"];
        for p in all_profiles() {
            for name in p.series_names() {
                assert!(
                    !removed.iter().any(|r| name.starts_with(r))
                        && !renamed.contains(&name.as_str()),
                    "{} uses removed {name}",
                    p.title
                );
            }
            assert!(
                !p.metrics_flag.contains("MAX_SERVE_METRIC_LEVEL"),
                "{}: MAX_SERVE_METRIC_LEVEL no longer exists",
                p.title
            );
        }
    }

    fn mapping(name: &str, r#type: MetricType, unit: Option<MetricUnit>) -> MetricMapping {
        MetricMapping {
            name: name.into(),
            r#type,
            unit,
            matchers: None,
            title: None,
            worker_label: None,
        }
    }

    #[test]
    fn an_override_replaces_exactly_one_role() {
        let preset = profile(Engine::Vllm).unwrap();
        let metrics = MetricsSpec {
            kv_cache_usage: Some(mapping(
                "vllm:gpu_cache_usage_perc",
                MetricType::Gauge,
                Some(MetricUnit::Ratio),
            )),
            ..Default::default()
        };
        let merged = with_overrides(preset.clone(), &metrics);
        for role in Role::ALL {
            if role == Role::KvCacheUsage {
                assert_eq!(
                    merged.source(role).unwrap().series_names(),
                    ["vllm:gpu_cache_usage_perc"]
                );
            } else {
                assert_eq!(merged.source(role), preset.source(role), "{role:?} changed");
            }
        }
        assert_eq!(merged.core_metric, preset.core_metric);
    }

    #[test]
    fn a_custom_service_is_described_by_its_mapping() {
        let custom = EngineProfile::custom();
        let metrics = MetricsSpec {
            requests: Some(mapping("request_count_total", MetricType::Counter, None)),
            e2e_latency: Some(mapping(
                "request_latency_ms",
                MetricType::Histogram,
                Some(MetricUnit::Milliseconds),
            )),
            stages: vec![MetricMapping {
                title: Some("tokenization".into()),
                ..mapping("tokenization_latency_seconds", MetricType::Histogram, None)
            }],
            gpu_memory: Some(mapping(
                "gpu_memory_mb",
                MetricType::Gauge,
                Some(MetricUnit::Megabytes),
            )),
            ..Default::default()
        };
        let merged = with_overrides(custom, &metrics);
        assert_eq!(merged.core_metric.as_deref(), Some("request_count_total"));
        assert!(matches!(
            merged.source(Role::E2eLatency),
            Some(Source::Histogram {
                unit: Unit::Milliseconds,
                ..
            })
        ));
        assert_eq!(merged.extras.stages[0].name, "tokenization");
        assert!(matches!(
            merged.extras.stages[0].source,
            Source::Histogram {
                unit: Unit::Seconds,
                ..
            }
        ));
        assert!(matches!(
            merged.extras.gpu_memory,
            Some(Source::Gauge {
                unit: Unit::Megabytes,
                ..
            })
        ));
        assert_eq!(Unit::Megabytes.to_base_factor(), 1_048_576.0);
    }

    #[test]
    fn every_engine_has_a_core_metric_and_load() {
        for p in all_profiles() {
            assert!(p.core_metric.as_deref().is_some_and(|m| !m.is_empty()));
            assert!(
                p.source(Role::Waiting).is_some() || p.source(Role::Running).is_some(),
                "{} has neither waiting nor running requests",
                p.title
            );
        }
    }
}
