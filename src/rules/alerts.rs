//! SLO alerts from `spec.alerts`, on the engine-neutral records plus `up` and the engine's
//! core metric, each with a summary, a description and a runbook link.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::records;
use crate::api::AlertsSpec;
use crate::engines::{EngineProfile, Role};

/// Share of a resource's targets, in percent, that may be down before `InferenceTargetDown`
/// fires (after 10 minutes): one pod of ten loading its model does not alert.
pub const TARGETS_DOWN_PERCENT: u32 = 10;

/// One alert before it becomes a rule.
struct Alert {
    name: &'static str,
    expr: String,
    for_: &'static str,
    severity: &'static str,
    summary: &'static str,
    description: String,
}

/// The alerting rules for one resource: `selector` is its `inference_monitoring` matcher (on
/// the records), `series` the matchers of its raw series (`up` and the core metric; the same
/// matcher unless `output: none`). Alerts on roles the engine does not report are left out.
pub fn alerting_rules(
    profile: &EngineProfile,
    spec: &AlertsSpec,
    selector: &str,
    series: &str,
) -> Vec<Value> {
    let has = |role| profile.source(role).is_some();
    let mut alerts = Vec::new();
    if has(Role::Ttft) {
        alerts.push(Alert {
            name: "InferenceTimeToFirstTokenHigh",
            expr: format!("{}{{{selector}}} > {}", records::TTFT_P95, spec.ttft_p95_seconds),
            for_: "10m",
            severity: "warning",
            summary: "Time to first token is over its target.",
            description: format!(
                "p95 time to first token of {{{{ $labels.model }}}} in {{{{ $labels.namespace }}}} is {{{{ $value | humanizeDuration }}}}, over the {}s target.",
                spec.ttft_p95_seconds
            ),
        });
    }
    if has(Role::InterTokenLatency) {
        alerts.push(Alert {
            name: "InferenceInterTokenLatencyHigh",
            expr: format!(
                "{}{{{selector}}} > {}",
                records::ITL_P95,
                spec.inter_token_latency_p95_seconds
            ),
            for_: "10m",
            severity: "warning",
            summary: "Inter-token latency is over its target.",
            description: format!(
                "p95 inter-token latency of {{{{ $labels.model }}}} in {{{{ $labels.namespace }}}} is {{{{ $value | humanizeDuration }}}}, over the {}s target.",
                spec.inter_token_latency_p95_seconds
            ),
        });
    }
    if has(Role::Errors) && has(Role::Requests) {
        alerts.push(Alert {
            name: "InferenceErrorRatioHigh",
            expr: format!("{}{{{selector}}} > {}", records::ERROR_RATIO, spec.error_ratio),
            for_: "10m",
            severity: "warning",
            summary: "Too many inference requests fail.",
            description: format!(
                "{{{{ $value | humanizePercentage }}}} of requests to {{{{ $labels.inference_monitoring }}}} failed over 5 minutes, over the {} target.",
                spec.error_ratio
            ),
        });
    }
    alerts.push(Alert {
        name: "InferenceQueueBacklog",
        expr: format!(
            "sum by (cluster, inference_monitoring, namespace, model) ({}{{{selector}}}) > {}",
            records::WAITING,
            spec.queue_waiting
        ),
        for_: "10m",
        severity: "warning",
        summary: "Requests pile up in the queue.",
        description: format!(
            "{{{{ $value }}}} requests of {{{{ $labels.inference_monitoring }}}} have been waiting for 10 minutes (threshold {}): add replicas or lower the load.",
            spec.queue_waiting
        ),
    });
    if has(Role::Preemptions) {
        alerts.push(Alert {
            name: "InferencePreemptions",
            expr: format!(
                "max by (cluster, inference_monitoring, namespace, pod) ({}{{{selector}}}) * 60 > {}",
                records::PREEMPTIONS,
                spec.preemptions_per_minute
            ),
            for_: "15m",
            severity: "warning",
            summary: "The engine preempts requests: its KV cache is too small for the load.",
            description: format!(
                "{{{{ $labels.pod }}}} has preempted {{{{ $value | humanize }}}} requests a minute for 15 minutes (threshold {}): preempted requests are recomputed or swapped, which costs latency; add replicas, lower the load or give the KV cache more memory.",
                spec.preemptions_per_minute
            ),
        });
    }
    if let (Some(limit), true) = (spec.kv_cache_usage, has(Role::KvCacheUsage)) {
        alerts.push(Alert {
            name: "InferenceKVCacheSaturated",
            expr: format!(
                "max by (cluster, inference_monitoring, namespace, pod) ({}{{{selector}}}) > {limit}",
                records::KV_CACHE_USAGE,
            ),
            for_: "15m",
            severity: "warning",
            summary: "The KV cache has been nearly full for 15 minutes.",
            description: format!(
                "KV-cache usage of {{{{ $labels.pod }}}} is {{{{ $value | humanizePercentage }}}}, over {limit} for 15 minutes. This alert was asked for with spec.alerts.kvCacheUsage; InferencePreemptions says when a full cache costs latency."
            ),
        });
    }
    alerts.push(Alert {
        name: "InferenceTargetDown",
        expr: format!(
            "100 * count by (cluster, inference_monitoring) (up{{{series}}} == 0) / count by (cluster, inference_monitoring) (up{{{series}}}) > {TARGETS_DOWN_PERCENT}"
        ),
        for_: "10m",
        severity: "warning",
        summary: "Prometheus cannot scrape a share of the inference targets.",
        description: format!(
            "{{{{ $value | humanize }}}}% of the targets of {{{{ $labels.inference_monitoring }}}} have been down for 10 minutes (more than {TARGETS_DOWN_PERCENT}%). A single pod whose model is still loading serves no metrics and stays below this share."
        ),
    });
    if let Some(core) = &profile.core_metric {
        alerts.push(Alert {
            name: "InferenceMetricsMissing",
            expr: format!(
                "absent({core}{{{series}}}) and on () (count(up{{{series}}} == 1) > 0)"
            ),
            for_: "10m",
            severity: "critical",
            summary: "Inference targets are up but export no engine metrics.",
            description: format!(
                "Targets of {{{{ $labels.inference_monitoring }}}} are scraped but {core} is missing: the engine's metrics are off or were renamed ({}).",
                profile.metrics_flag
            ),
        });
    }
    alerts.iter().map(|alert| rule(alert, spec)).collect()
}

fn rule(alert: &Alert, spec: &AlertsSpec) -> Value {
    let mut labels = BTreeMap::from([("severity".to_string(), alert.severity.to_string())]);
    labels.extend(spec.labels.clone());
    json!({
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.for_,
        "labels": labels,
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": runbook_url(&spec.runbook_base_url, alert.name),
        }
    })
}

/// `base` and the alert name, with a `/` between them unless `base` already ends in `/` or `#`.
pub fn runbook_url(base: &str, alert: &str) -> String {
    if base.ends_with('/') || base.ends_with('#') {
        format!("{base}{alert}")
    } else {
        format!("{base}/{alert}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_urls_join_with_one_separator() {
        for (base, want) in [
            ("https://x/runbooks", "https://x/runbooks/A"),
            ("https://x/runbooks/", "https://x/runbooks/A"),
            ("https://x/runbooks.md#", "https://x/runbooks.md#A"),
        ] {
            assert_eq!(runbook_url(base, "A"), want);
        }
    }

    fn alert_names(spec: &AlertsSpec) -> Vec<String> {
        let profile = crate::engines::profile(crate::api::Engine::Vllm).unwrap();
        alerting_rules(&profile, spec, "x=\"y\"", "x=\"y\"")
            .iter()
            .map(|r| r["alert"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_kv_cache_alert_is_opt_in() {
        let kv = "InferenceKVCacheSaturated".to_string();
        assert!(!alert_names(&AlertsSpec::default()).contains(&kv));
        let spec = AlertsSpec {
            kv_cache_usage: Some(0.98),
            ..AlertsSpec::default()
        };
        assert!(alert_names(&spec).contains(&kv));
        assert!(alert_names(&spec).contains(&"InferencePreemptions".to_string()));
    }
}
