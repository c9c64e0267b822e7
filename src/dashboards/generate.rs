//! The dashboards, built from the engine catalog and the recording-rule names: one generator
//! for every engine dashboard (engines differ only in the catalog's data), an engine-neutral
//! overview on the recording rules, and a GPU dashboard joining DCGM series to inference pods.

use crate::engines::{EngineProfile, Role, Source};
use crate::model::short_hash;
use crate::promql::{self, Scope};
use crate::rules::records;
use crate::validate::Validated;

use super::model::{Dashboard, Panel, Target, Variable};

/// Quantiles shown for latency distributions.
const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")];

/// One engine-dashboard panel: which roles it plots, in what unit.
struct PanelSpec {
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    /// (role, legend suffix)
    roles: &'static [(Role, &'static str)],
}

const ENGINE_PANELS: [PanelSpec; 13] = [
    PanelSpec {
        title: "Requests and errors",
        unit: "reqps",
        description: "Finished and failed requests per second.",
        roles: &[(Role::Requests, "requests"), (Role::Errors, "errors")],
    },
    PanelSpec {
        title: "Time to first token",
        unit: "s",
        description: "Time from request arrival to the first generated token.",
        roles: &[(Role::Ttft, "")],
    },
    PanelSpec {
        title: "Inter-token latency",
        unit: "s",
        description: "Time between consecutive generated tokens.",
        roles: &[(Role::InterTokenLatency, "")],
    },
    PanelSpec {
        title: "End-to-end latency",
        unit: "s",
        description: "Time from request arrival to the last token.",
        roles: &[(Role::E2eLatency, "")],
    },
    PanelSpec {
        title: "Token throughput (tokens/s)",
        unit: "short",
        description: "Prompt tokens processed and tokens generated per second.",
        roles: &[
            (Role::PromptTokens, "prompt"),
            (Role::GenerationTokens, "generation"),
        ],
    },
    PanelSpec {
        title: "Waiting and running requests",
        unit: "short",
        description: "Requests queued and requests being processed.",
        roles: &[(Role::Waiting, "waiting"), (Role::Running, "running")],
    },
    PanelSpec {
        title: "KV-cache usage",
        unit: "percentunit",
        description: "Share of the KV cache in use; near 100% requests queue or get preempted.",
        roles: &[(Role::KvCacheUsage, "")],
    },
    PanelSpec {
        title: "Batch size",
        unit: "short",
        description: "Sequences or tokens per engine step.",
        roles: &[(Role::BatchSize, "")],
    },
    PanelSpec {
        title: "Prefix-cache hit rate",
        unit: "percentunit",
        description: "Share of prompt tokens served from the prefix cache: what cache-aware routing and prompt layout raise.",
        roles: &[(Role::PrefixCacheHitRate, "")],
    },
    PanelSpec {
        title: "Preemptions",
        unit: "short",
        description: "Requests preempted per second to free KV cache: above zero, the batch is larger than the cache holds.",
        roles: &[(Role::Preemptions, "")],
    },
    PanelSpec {
        title: "Queue, prefill and decode time",
        unit: "s",
        description: "Where request time goes: waiting to be scheduled, computing the prompt, generating the rest.",
        roles: &[
            (Role::QueueTime, "queue"),
            (Role::PrefillTime, "prefill"),
            (Role::DecodeTime, "decode"),
        ],
    },
    PanelSpec {
        title: "Speculative-decoding acceptance",
        unit: "percentunit",
        description: "Accepted over proposed draft tokens; empty without speculative decoding.",
        roles: &[(Role::SpecDecodeAcceptance, "")],
    },
    PanelSpec {
        title: "Finished requests by reason",
        unit: "reqps",
        description: "Finished requests per second by finish reason: many length stops mean max_tokens cuts answers short.",
        roles: &[(Role::FinishedReason, "{{finished_reason}}")],
    },
];

/// Dashboard name (file stem and uid suffix) of an engine.
pub fn engine_dashboard_name(profile: &EngineProfile) -> &'static str {
    profile.engine.as_str()
}

/// The dashboard of one engine: a panel for each group of roles the engine reports.
pub fn engine_dashboard(profile: &EngineProfile) -> Dashboard {
    let core = profile.core_metric.as_deref().unwrap_or("up");
    let by = match (profile.per_model, profile.model_label.as_deref()) {
        (true, Some(label)) => format!("namespace, pod, {label}"),
        _ => "namespace, pod".to_string(),
    };
    // The engine's series carry its model label (the catalog's), so the model picker
    // narrows every panel of the engine's own series, not only the pod list. Series of
    // another layer lack the label (vLLM's and SGLang's HTTP counters): `|` keeps them,
    // still narrowed by pod.
    let model_matcher = profile
        .model_label
        .as_deref()
        .map(|label| format!(r#",{label}=~"$model|""#))
        .unwrap_or_default();
    let sel = format!(r#"namespace=~"$namespace",pod=~"$pod"{model_matcher}"#);
    let scope = Scope {
        sel: &sel,
        by: &by,
        window: "$__rate_interval",
    };
    let mut panels: Vec<Panel> = ENGINE_PANELS
        .iter()
        .filter_map(|spec| engine_panel(profile, spec, &scope))
        .collect();
    if let Some(expr) = records::error_ratio(profile, &scope) {
        panels.insert(
            1,
            Panel {
                title: "Error ratio".into(),
                description: "Failed over all requests, both counted on the same layer.".into(),
                unit: "percentunit",
                targets: vec![Target {
                    expr,
                    legend: pod_legend(profile, &[]),
                }],
            },
        );
    }
    panels.extend(extra_panels(profile, &scope));
    if profile.extras.gpu_panels {
        panels.extend(gpu_device_panels(
            r#"namespace=~"$namespace",pod!="""#,
            "Pods: every pod with GPUs in the selected namespaces; the pod picker does not apply.",
        ));
    }
    let mut variables = vec![Variable {
        name: "namespace",
        label: "Namespace",
        query: format!("label_values({core}, namespace)"),
    }];
    if let Some(label) = profile.model_label.as_deref() {
        variables.push(Variable {
            name: "model",
            label: "Model",
            query: format!(r#"label_values({core}{{namespace=~"$namespace"}}, {label})"#),
        });
    }
    variables.push(Variable {
        name: "pod",
        label: "Pod",
        query: format!(r#"label_values({core}{{namespace=~"$namespace"{model_matcher}}}, pod)"#),
    });
    let name = engine_dashboard_name(profile);
    Dashboard {
        uid: format!("infmon-{name}"),
        title: format!("Inference / {}", profile.title),
        description: format!(
            "{} metrics as scraped by infmon, per pod. Generated from the infmon engine catalog.",
            profile.title
        ),
        tags: vec!["infmon".into(), "inference".into(), name.into()],
        variables,
        panels,
    }
}

/// The dashboard of one resource whose catalog entry differs from its engine's preset
/// (`spec.metrics` overrides, or a custom service): generated from the merged entry, with a
/// uid and title of its own so it never replaces the shared engine dashboard.
pub fn resource_dashboard(resource: &Validated) -> Dashboard {
    let mut dashboard = engine_dashboard(&resource.profile);
    let key = resource.key();
    dashboard.uid = format!("infmon-{}-{}", resource.engine, short_hash(&key));
    dashboard.title = format!("Inference / {} ({key})", resource.profile.title);
    dashboard.description = format!(
        "{} metrics of {key} as scraped by infmon, per pod, with the metric names from its spec.metrics.",
        resource.profile.title
    );
    dashboard
}

/// Panels for the series beyond the roles (`spec.metrics` stages, queues, workers and GPU
/// gauges), each only when mapped.
fn extra_panels(profile: &EngineProfile, scope: &Scope) -> Vec<Panel> {
    let extras = &profile.extras;
    let mut panels = Vec::new();
    if !extras.stages.is_empty() {
        panels.push(Panel {
            title: "Latency by stage (p95)".into(),
            description: "95th-percentile time each request spends in each stage.".into(),
            unit: "s",
            targets: extras
                .stages
                .iter()
                .map(|stage| Target {
                    expr: promql::expr(&stage.source, 0.95, scope),
                    legend: format!("{{{{pod}}}} {}", stage.name),
                })
                .collect(),
        });
        let spent: Vec<String> = extras
            .stages
            .iter()
            .filter_map(|stage| promql::time_spent(&stage.source, scope))
            .collect();
        let total = spent.join(" + ");
        panels.push(Panel {
            title: "Share of request time by stage".into(),
            description: "Each stage's share of the time requests spend in all stages.".into(),
            unit: "percentunit",
            targets: extras
                .stages
                .iter()
                .zip(&spent)
                .map(|(stage, part)| Target {
                    expr: format!("{part} / ({total})"),
                    legend: format!("{{{{pod}}}} {}", stage.name),
                })
                .collect(),
        });
    }
    if !extras.queues.is_empty() {
        panels.push(Panel {
            title: "Queue sizes".into(),
            description: "Items waiting in each of the service's queues.".into(),
            unit: "short",
            targets: extras
                .queues
                .iter()
                .map(|queue| Target {
                    expr: promql::expr(&queue.source, 0.5, scope),
                    legend: format!("{{{{pod}}}} {}", queue.name),
                })
                .collect(),
        });
    }
    if let Some((source, worker_label)) = &extras.worker_requests {
        let by = format!("namespace, {worker_label}");
        let per_worker = Scope { by: &by, ..*scope };
        panels.push(Panel {
            title: "Requests per worker".into(),
            description: format!("Requests per second handled by each worker ({worker_label})."),
            unit: "reqps",
            targets: vec![Target {
                expr: promql::expr(source, 0.5, &per_worker),
                legend: format!("{{{{{worker_label}}}}}"),
            }],
        });
    }
    if let Some(view) = &extras.per_worker {
        let by = format!("namespace, {}", view.label);
        let per_worker = Scope { by: &by, ..*scope };
        panels.extend(view.series.iter().map(|series| Panel {
            title: series.title.into(),
            description: series.description.into(),
            unit: if series.ratio { "percentunit" } else { "short" },
            targets: vec![Target {
                expr: promql::expr(&series.source, 0.5, &per_worker),
                legend: format!("{{{{{}}}}}", view.label),
            }],
        }));
    }
    let gauges = [
        (
            &extras.gpu_memory,
            "GPU memory used",
            "bytes",
            "GPU memory the service reports in use.",
        ),
        (
            &extras.gpu_utilization,
            "GPU utilisation",
            "percentunit",
            "GPU utilisation the service reports.",
        ),
    ];
    for (source, title, unit, description) in gauges {
        if let Some(source) = source {
            panels.push(Panel {
                title: title.into(),
                description: description.into(),
                unit,
                targets: vec![Target {
                    expr: promql::expr(source, 0.5, scope),
                    legend: "{{pod}}".into(),
                }],
            });
        }
    }
    panels
}

fn engine_panel(profile: &EngineProfile, spec: &PanelSpec, scope: &Scope) -> Option<Panel> {
    let mut targets = Vec::new();
    let mut description = vec![spec.description.to_string()];
    for (role, suffix) in spec.roles {
        let Some(source) = profile.source(*role) else {
            continue;
        };
        let legend = |extra: &str| pod_legend(profile, &[suffix, extra]);
        if promql::has_quantiles(source) {
            targets.extend(QUANTILES.iter().map(|(q, name)| Target {
                expr: promql::expr(source, *q, scope),
                legend: legend(name),
            }));
        } else {
            let extra = if spec.unit == "s" { "mean" } else { "" };
            targets.push(Target {
                expr: promql::expr(source, 0.5, scope),
                legend: legend(extra),
            });
        }
        description.extend(promql::caveat(source));
    }
    (!targets.is_empty()).then(|| Panel {
        title: spec.title.to_string(),
        description: description.join(" "),
        unit: spec.unit,
        targets,
    })
}

/// `{{pod}}` (and the model, where requests are counted per model) followed by the non-empty
/// parts.
fn pod_legend(profile: &EngineProfile, parts: &[&str]) -> String {
    let model = match (profile.per_model, profile.model_label.as_deref()) {
        (true, Some(label)) => format!("{{{{{label}}}}}"),
        _ => String::new(),
    };
    let all: Vec<&str> = ["{{pod}}", model.as_str()]
        .into_iter()
        .chain(parts.iter().copied())
        .filter(|p| !p.is_empty())
        .collect();
    all.join(" ")
}

/// The engine-neutral overview, on the recording rules (needs `spec.alerts.enabled`).
pub fn overview() -> Dashboard {
    let sel = r#"namespace=~"$namespace",inference_engine=~"$engine",model=~"$model""#;
    let sel_no_model = r#"namespace=~"$namespace",inference_engine=~"$engine""#;
    // `inference_monitoring` (`<namespace>/<name>`) keeps two resources with the same
    // namespace, engine and model apart.
    let by = "namespace, inference_monitoring, inference_engine, model";
    let legend = "{{inference_monitoring}} {{model}} ({{inference_engine}})";
    let sum = |record: &str, suffix: &str| Target {
        expr: format!("sum by ({by}) ({record}{{{sel}}})"),
        legend: format!("{legend} {suffix}").trim_end().to_string(),
    };
    let direct = |record: &str, suffix: &str| Target {
        expr: format!("{record}{{{sel}}}"),
        legend: format!("{legend} {suffix}"),
    };
    let panels = vec![
        Panel {
            title: "Requests".into(),
            description: "Finished requests per second, per resource and model.".into(),
            unit: "reqps",
            targets: vec![sum(records::REQUESTS, "")],
        },
        Panel {
            title: "Error ratio".into(),
            description: "Failed over all requests, both counted on the same layer, per resource (engines without an error counter are absent).".into(),
            unit: "percentunit",
            targets: vec![Target {
                expr: format!("{}{{{sel_no_model}}}", records::ERROR_RATIO),
                legend: "{{inference_monitoring}} ({{inference_engine}})".into(),
            }],
        },
        Panel {
            title: "Time to first token".into(),
            description: "p50, p95 and p99 per resource and model. TGI's is approximated (queue plus prefill time); llama.cpp has none.".into(),
            unit: "s",
            targets: vec![
                direct(records::TTFT_P50, "p50"),
                direct(records::TTFT_P95, "p95"),
                direct(records::TTFT_P99, "p99"),
            ],
        },
        Panel {
            title: "Inter-token and end-to-end latency (p95)".into(),
            description: "p95 per resource and model. llama.cpp's inter-token latency and Triton's end-to-end latency are means.".into(),
            unit: "s",
            targets: vec![
                direct(records::ITL_P95, "inter-token"),
                direct(records::E2E_P95, "end-to-end"),
            ],
        },
        Panel {
            title: "Token throughput (tokens/s)".into(),
            description: "Prompt and generated tokens per second, per resource and model.".into(),
            unit: "short",
            targets: vec![
                sum(records::PROMPT_TOKENS, "prompt"),
                sum(records::GENERATION_TOKENS, "generation"),
            ],
        },
        Panel {
            title: "Waiting and running requests".into(),
            description: "Queued and in-flight requests, per resource and model.".into(),
            unit: "short",
            targets: vec![
                sum(records::WAITING, "waiting"),
                sum(records::RUNNING, "running"),
            ],
        },
        Panel {
            title: "Prefix-cache hit rate".into(),
            description: "Share of prompt tokens served from the prefix cache, mean over each model's pods (engines without the series are absent).".into(),
            unit: "percentunit",
            targets: vec![Target {
                expr: format!("avg by ({by}) ({}{{{sel}}})", records::PREFIX_CACHE_HIT_RATE),
                legend: legend.into(),
            }],
        },
        Panel {
            title: "Queue, prefill and decode time (p95)".into(),
            description: "Where request time goes, p95 per model (engines without the series are absent; Triton's queue time is a mean).".into(),
            unit: "s",
            targets: vec![
                direct(records::QUEUE_TIME_P95, "queue"),
                direct(records::PREFILL_TIME_P95, "prefill"),
                direct(records::DECODE_TIME_P95, "decode"),
            ],
        },
        Panel {
            title: "KV-cache usage (fullest pod)".into(),
            description: "The highest KV-cache usage among the pods of each resource and model.".into(),
            unit: "percentunit",
            targets: vec![Target {
                expr: format!("max by ({by}) ({}{{{sel}}})", records::KV_CACHE_USAGE),
                legend: legend.into(),
            }],
        },
    ];
    Dashboard {
        uid: "infmon-overview".into(),
        title: "Inference / Overview".into(),
        description: "Every engine on infmon's engine-neutral recording rules (inference:*), in seconds, ratios and per-second rates.".into(),
        tags: vec!["infmon".into(), "inference".into()],
        variables: vec![
            Variable {
                name: "namespace",
                label: "Namespace",
                query: format!("label_values({}, namespace)", records::WAITING),
            },
            Variable {
                name: "engine",
                label: "Engine",
                query: format!(
                    r#"label_values({}{{namespace=~"$namespace"}}, inference_engine)"#,
                    records::WAITING
                ),
            },
            Variable {
                name: "model",
                label: "Model",
                query: format!(
                    r#"label_values({}{{namespace=~"$namespace",inference_engine=~"$engine"}}, model)"#,
                    records::WAITING
                ),
            },
        ],
        panels,
    }
}

/// DCGM series the GPU dashboard reads.
pub const DCGM_METRICS: [&str; 5] = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_FB_FREE",
];

/// How GPU series are attributed to pods, said in every GPU panel's description.
const GPU_ATTRIBUTION: &str = "GPUs are attributed to pods by the DCGM exporter's pod label (needs DCGM_EXPORTER_KUBERNETES and honorLabels on the scrape).";

/// Utilisation, framebuffer and power of the GPUs of the pods `sel` matches (DCGM series),
/// one line per pod and GPU model; `pods` says in each description which pods those are.
fn gpu_device_panels(sel: &str, pods: &str) -> Vec<Panel> {
    let by = "namespace, pod, modelName";
    let legend = "{{pod}} ({{modelName}})";
    let attribution = GPU_ATTRIBUTION;
    let per_pod = |title: &str, what: &str, expr: String, unit: &'static str| Panel {
        title: title.into(),
        description: format!("{what} {pods} {attribution}"),
        unit,
        targets: vec![Target {
            expr,
            legend: legend.into(),
        }],
    };
    vec![
        per_pod(
            "GPU utilisation",
            "Mean utilisation of the GPUs each pod uses.",
            format!("avg by ({by}) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}) / 100"),
            "percentunit",
        ),
        per_pod(
            "Framebuffer used",
            "GPU memory in use by each pod's GPUs.",
            format!("sum by ({by}) (DCGM_FI_DEV_FB_USED{{{sel}}}) * 1048576"),
            "bytes",
        ),
        per_pod(
            "Framebuffer used (share)",
            "Used over used plus free GPU memory.",
            format!(
                "sum by ({by}) (DCGM_FI_DEV_FB_USED{{{sel}}}) / (sum by ({by}) (DCGM_FI_DEV_FB_USED{{{sel}}}) + sum by ({by}) (DCGM_FI_DEV_FB_FREE{{{sel}}}))"
            ),
            "percentunit",
        ),
        per_pod(
            "Power",
            "Power drawn by each pod's GPUs.",
            format!("sum by ({by}) (DCGM_FI_DEV_POWER_USAGE{{{sel}}})"),
            "watt",
        ),
    ]
}

/// GPU use of the inference pods, from the DCGM exporter's per-pod labels.
pub fn gpu() -> Dashboard {
    let sel = r#"namespace=~"$namespace",pod=~"$pod",pod!="""#;
    let attribution = GPU_ATTRIBUTION;
    let mut panels = gpu_device_panels(sel, "Pods: those the pod picker selects.");
    panels.extend([
        Panel {
            title: "GPU utilisation by model".into(),
            description: format!(
                "Mean utilisation of the GPUs serving each model: pods are matched to models through infmon's recording rules ({}); a pod serving several models counts for one of them. {attribution}",
                records::WAITING
            ),
            unit: "percentunit",
            targets: vec![Target {
                expr: format!(
                    r#"avg by (namespace, model) (avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}) / 100 * on (namespace, pod) group_left (model) topk by (namespace, pod) (1, 0 * {}{{namespace=~"$namespace"}} + 1))"#,
                    records::WAITING
                ),
                legend: "{{namespace}} {{model}}".into(),
            }],
        },
        Panel {
            title: "GPU temperature".into(),
            description: format!(
                "Per GPU. The exporter's host label is Hostname before dcgm-exporter 4.8.2 and hostname after; both are kept. {attribution}"
            ),
            unit: "celsius",
            targets: vec![Target {
                expr: format!(
                    "max by (Hostname, hostname, gpu, namespace, pod) (DCGM_FI_DEV_GPU_TEMP{{{sel}}})"
                ),
                legend: "{{Hostname}}{{hostname}} GPU {{gpu}} ({{pod}})".into(),
            }],
        },
        Panel {
            title: "Generated tokens per GPU-busy second".into(),
            description: format!(
                "Generated tokens per second over the pod's GPU utilisation (0-1): throughput per fully busy GPU. Needs infmon's recording rules ({}). {attribution}",
                records::GENERATION_TOKENS
            ),
            unit: "short",
            targets: vec![Target {
                expr: format!(
                    r#"sum by (namespace, pod) ({}{{namespace=~"$namespace",pod=~"$pod"}}) / on (namespace, pod) (sum by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}) / 100)"#,
                    records::GENERATION_TOKENS
                ),
                legend: "{{namespace}}/{{pod}}".into(),
            }],
        },
    ]);
    Dashboard {
        uid: "infmon-gpu".into(),
        title: "Inference / GPUs".into(),
        description: "DCGM exporter series per inference pod: utilisation, memory, power, temperature and tokens per GPU-second.".into(),
        tags: vec!["infmon".into(), "inference".into(), "gpu".into()],
        variables: vec![
            Variable {
                name: "namespace",
                label: "Namespace",
                query: "label_values(DCGM_FI_DEV_GPU_UTIL, namespace)".into(),
            },
            Variable {
                name: "pod",
                label: "Pod",
                query: r#"label_values(DCGM_FI_DEV_GPU_UTIL{namespace=~"$namespace"}, pod)"#.into(),
            },
        ],
        panels,
    }
}

/// Service-level objectives of every resource with `spec.slos`, on the SLO records: the share
/// of good requests against the objective, the error budget left, the burn rate per window
/// and the burn-rate alerts firing.
pub fn slo() -> Dashboard {
    use crate::rules::slos::{
        BUDGET_REMAINING, BURN_ALERT, ERROR_RATIO_PREFIX, OBJECTIVE, WINDOWS,
    };
    let sel = r#"namespace=~"$namespace",slo=~"$slo""#;
    let legend = "{{inference_monitoring}} {{slo}} {{cluster}}";
    let panels = vec![
        Panel {
            title: "Good requests against the objective".into(),
            description: "Share of requests that met the objective over the last hour (solid) and the objective itself.".into(),
            unit: "percentunit",
            targets: vec![
                Target {
                    expr: format!("1 - {ERROR_RATIO_PREFIX}1h{{{sel}}}"),
                    legend: format!("{legend} good (1h)"),
                },
                Target {
                    expr: format!("{OBJECTIVE}{{{sel}}}"),
                    legend: format!("{legend} objective"),
                },
            ],
        },
        Panel {
            title: "Error budget remaining".into(),
            description: "Share of the error budget left over the objective's compliance window: 100% untouched, 0 spent, below 0 overspent.".into(),
            unit: "percentunit",
            targets: vec![Target {
                expr: format!("{BUDGET_REMAINING}{{{sel}}}"),
                legend: legend.into(),
            }],
        },
        Panel {
            title: "Burn rate per window".into(),
            description: "How many times faster than sustainable the budget burns, per window. The page tier fires at 14.4 (1h and 5m) or 6 (6h and 30m), the ticket tier at 3 (1d and 2h) or 1 (3d and 6h), when the long window counted enough requests.".into(),
            unit: "short",
            targets: WINDOWS
                .iter()
                .map(|w| Target {
                    expr: format!("{ERROR_RATIO_PREFIX}{w}{{{sel}}} / (1 - {OBJECTIVE}{{{sel}}})"),
                    legend: format!("{legend} {w}"),
                })
                .collect(),
        },
        Panel {
            title: "Burn-rate alerts firing".into(),
            description: format!("{BURN_ALERT} alerts firing, per objective and tier (page or ticket); 0 when none fires."),
            unit: "short",
            targets: vec![Target {
                expr: format!(
                    r#"count by (inference_monitoring, slo, slo_tier) (ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",{sel}}}) or on () vector(0)"#
                ),
                legend: "{{inference_monitoring}} {{slo}} {{slo_tier}}".into(),
            }],
        },
    ];
    Dashboard {
        uid: "infmon-slo".into(),
        title: "Inference / SLOs".into(),
        description: "Service-level objectives from spec.slos: good requests against the objective, error budget left, burn rate per window and the alerts firing.".into(),
        tags: vec!["infmon".into(), "inference".into(), "slo".into()],
        variables: vec![
            Variable {
                name: "namespace",
                label: "Namespace",
                query: format!("label_values({BUDGET_REMAINING}, namespace)"),
            },
            Variable {
                name: "slo",
                label: "Objective",
                query: format!(r#"label_values({BUDGET_REMAINING}{{namespace=~"$namespace"}}, slo)"#),
            },
        ],
        panels,
    }
}

/// The Markdown table of which engine-dashboard panels exist for which engine, as the README
/// shows it: ✓ native series, ≈ approximated or a mean standing in for quantiles, — no panel.
pub fn panel_table(profiles: &[EngineProfile]) -> String {
    let mut table = String::from("| Panel |");
    for p in profiles {
        table.push_str(&format!(" {} |", p.engine.as_str()));
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(profiles.len()));
    for spec in &ENGINE_PANELS {
        table.push_str(&format!("\n| {} |", spec.title));
        for p in profiles {
            let sources: Vec<_> = spec
                .roles
                .iter()
                .filter_map(|(r, _)| p.source(*r))
                .collect();
            let approximate = sources.iter().any(|s| {
                matches!(
                    s,
                    Source::Approximation { .. } | Source::DurationCounter { .. }
                )
            });
            let cell = match (sources.is_empty(), approximate) {
                (true, _) => "—",
                (false, true) => "≈",
                (false, false) => "✓",
            };
            table.push_str(&format!(" {cell} |"));
        }
    }
    table.push('\n');
    table
}
