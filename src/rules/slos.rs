//! Rules for `spec.slos`: per objective, the share of bad requests over each window from 5m to
//! 3d (a ratio of sums, so every request weighs the same), the request rate behind it, the
//! error budget left over the compliance window, and the multi-window burn-rate alerts: a
//! page when the budget burns 14.4x too fast over 1h and 5m or 6x over 6h and 30m, a ticket
//! at 3x over 1d and 2h or 1x over 3d and 6h. Every record is grouped by `cluster` as well,
//! so series of several clusters evaluated by one ruler stay apart (the label is simply
//! absent when the series carry none).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::records;
use crate::api::{AlertsSpec, SloIndicator};
use crate::engines::{EngineProfile, Source};
use crate::promql::{self, Scope};
use crate::validate::{Slo, indicator_role};

/// Share of bad requests over a window, per objective; the window follows `rate`.
pub const ERROR_RATIO_PREFIX: &str = "inference:slo_errors:ratio_rate";
/// Requests per second over a window, per objective; the window follows `rate`.
pub const REQUESTS_PREFIX: &str = "inference:slo_requests:rate";
/// Share of the error budget left over the compliance window: 1 untouched, 0 spent,
/// negative overspent.
pub const BUDGET_REMAINING: &str = "inference:slo_error_budget:remaining";
/// The objective as a 0-1 ratio (0.995 for 99.5 %), beside the records it applies to, for
/// dashboards: burn rate is a window's bad ratio over `1 - objective`.
pub const OBJECTIVE: &str = "inference:slo_objective:ratio";
/// The alert every tier raises, told apart by `severity`.
pub const BURN_ALERT: &str = "InferenceSLOErrorBudgetBurn";

/// The alert raised when an objective's source series are missing while the resource's
/// targets are up (a renamed series, a histogram switched off): its SLO would otherwise
/// silently report nothing.
pub const SERIES_ALERT: &str = "InferenceSLOSeriesMissing";

/// Every window an error ratio is recorded over.
pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// One pair of the multi-window alerts: burn `factor` over both `long` and `short`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    /// How many times faster than sustainable the budget burns.
    pub factor: f64,
    /// The window that proves the burn is significant.
    pub long: &'static str,
    /// The window that proves it still goes on (so the alert resolves soon after it stops).
    pub short: &'static str,
    /// Seconds in `long`, to turn its request rate into a count.
    pub long_seconds: u32,
}

/// A tier: its pairs and the `severity` its alert carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tier {
    /// `page` or `ticket`.
    pub name: &'static str,
    /// The alert's `severity` label.
    pub severity: &'static str,
    /// Either pair fires the tier.
    pub pairs: [Pair; 2],
}

/// The page and ticket tiers.
pub const TIERS: [Tier; 2] = [
    Tier {
        name: "page",
        severity: "critical",
        pairs: [
            Pair {
                factor: 14.4,
                long: "1h",
                short: "5m",
                long_seconds: 3600,
            },
            Pair {
                factor: 6.0,
                long: "6h",
                short: "30m",
                long_seconds: 6 * 3600,
            },
        ],
    },
    Tier {
        name: "ticket",
        severity: "warning",
        pairs: [
            Pair {
                factor: 3.0,
                long: "1d",
                short: "2h",
                long_seconds: 86_400,
            },
            Pair {
                factor: 1.0,
                long: "3d",
                short: "6h",
                long_seconds: 3 * 86_400,
            },
        ],
    },
];

/// Labels every SLO record keeps.
const BY: &str = "cluster, inference_monitoring, inference_engine, namespace";

/// A number as PromQL reads it, without float noise (`0.072`, not `0.07200000000000001`).
fn number(value: f64) -> String {
    format!("{}", (value * 1e12).round() / 1e12)
}

/// A regular expression matching the `le` label of `bound` however the exporter spelled it:
/// `2.5`, `1980` or `1980.0`, and Go's exponent form (`1e+06`).
pub fn le_pattern(bound: f64) -> String {
    let plain = format!("{bound}");
    let mut forms = vec![plain.clone()];
    if bound.fract() == 0.0 {
        forms.push(format!("{plain}.0"));
    }
    // Go's shortest %g switches to an exponent below 1e-4 and from 1e6 on.
    let exponent = bound.abs().log10().floor();
    if bound != 0.0 && !(-4.0..6.0).contains(&exponent) {
        let (mantissa, exp) = format!("{bound:e}")
            .split_once('e')
            .map(|(m, e)| (m.to_string(), e.parse::<i32>().unwrap_or(0)))
            .unwrap_or_default();
        let sign = if exp < 0 { '-' } else { '+' };
        forms.push(format!("{mantissa}e{sign}{:02}", exp.abs()));
    }
    forms
        .iter()
        .map(|f| f.replace('.', "[.]").replace('+', "[+]"))
        .collect::<Vec<_>>()
        .join("|")
}

/// The selector of an objective's series: the resource, and its model if it names one.
fn selector(slo: &Slo, resource: &str) -> String {
    match &slo.model_matcher {
        Some(model) => format!("{resource},{model}"),
        None => resource.to_string(),
    }
}

/// (bad-ratio, request-rate) expressions of an objective over `window`; `None` when the
/// engine lacks what it reads (resolve rejects such objectives).
fn sli(slo: &Slo, profile: &EngineProfile, sel: &str, window: &str) -> Option<(String, String)> {
    let scope = Scope {
        sel,
        by: BY,
        window,
    };
    match (indicator_role(slo.indicator), &slo.threshold) {
        (Some(role), Some(threshold)) => {
            let Some(Source::Histogram { name, matchers, .. }) = profile.source(role) else {
                return None;
            };
            let extra = if matchers.is_empty() {
                String::new()
            } else {
                format!(",{matchers}")
            };
            let all = format!("sum by ({BY}) (rate({name}_count{{{sel}{extra}}}[{window}]))");
            let good = format!(
                "sum by ({BY}) (rate({name}_bucket{{{sel}{extra},le=~\"{}\"}}[{window}]))",
                le_pattern(threshold.le)
            );
            Some((format!("({all} - {good}) / {all}"), all))
        }
        _ if slo.indicator == SloIndicator::Availability => {
            let all = profile
                .source(crate::engines::Role::AllRequests)
                .or_else(|| profile.source(crate::engines::Role::Requests))?;
            Some((
                records::error_ratio(profile, &scope)?,
                promql::expr(all, 0.5, &scope),
            ))
        }
        _ => None,
    }
}

/// The series whose absence leaves an objective without data: a latency histogram's
/// `_count`, or availability's request counter (its error counter may rightly be absent while
/// nothing failed). `None` when the source is not a plain series.
fn source_series(slo: &Slo, profile: &EngineProfile, sel: &str) -> Option<(String, String)> {
    let source = match indicator_role(slo.indicator) {
        Some(role) => profile.source(role)?,
        None => profile
            .source(crate::engines::Role::AllRequests)
            .or_else(|| profile.source(crate::engines::Role::Requests))?,
    };
    let (name, matchers) = match source {
        Source::Histogram { name, matchers, .. } => (format!("{name}_count"), matchers),
        Source::Counter { name, matchers } => (name.to_string(), matchers),
        _ => return None,
    };
    let series = promql::series(&name, sel, matchers);
    Some((name, series))
}

/// The recording rules of every objective; `resource` is the `inference_monitoring` matcher.
pub fn recording_rules(slos: &[Slo], profile: &EngineProfile, resource: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for slo in slos {
        let sel = selector(slo, resource);
        let labels = json!({"slo": slo.name});
        for window in WINDOWS {
            let Some((ratio, requests)) = sli(slo, profile, &sel, window) else {
                continue;
            };
            rules.push(json!({
                "record": format!("{ERROR_RATIO_PREFIX}{window}"),
                "expr": ratio,
                "labels": labels,
            }));
            if TIERS
                .iter()
                .any(|t| t.pairs.iter().any(|p| p.long == window))
            {
                rules.push(json!({
                    "record": format!("{REQUESTS_PREFIX}{window}"),
                    "expr": requests,
                    "labels": labels,
                }));
            }
        }
        if let Some((ratio, _)) = sli(slo, profile, &sel, "1h") {
            rules.push(json!({
                "record": OBJECTIVE,
                "expr": format!("0 * ({ratio}) + {}", number(slo.target / 100.0)),
                "labels": labels,
            }));
        }
        let window = format!("{}d", slo.window_days);
        if let Some((ratio, _)) = sli(slo, profile, &sel, &window) {
            rules.push(json!({
                "record": BUDGET_REMAINING,
                "expr": format!("1 - ({ratio}) / {}", number(slo.error_budget())),
                "labels": labels,
            }));
        }
    }
    rules
}

/// The burn-rate alerts of every objective (one rule per tier, on the records: `resource` is
/// the owner matcher) and its guard: a ticket when the series it is computed from are absent
/// for 15 minutes while the resource has targets up (`raw` matches its raw series).
pub fn alerting_rules(
    slos: &[Slo],
    profile: &EngineProfile,
    spec: &AlertsSpec,
    resource: &str,
    raw: &str,
) -> Vec<Value> {
    let mut rules = Vec::new();
    for slo in slos {
        if let Some((metric, series)) = source_series(slo, profile, &selector(slo, raw)) {
            let mut labels = BTreeMap::from([
                ("severity".to_string(), TIERS[1].severity.to_string()),
                ("slo_tier".to_string(), TIERS[1].name.to_string()),
                ("slo".to_string(), slo.name.clone()),
            ]);
            labels.extend(spec.labels.clone());
            rules.push(json!({
                "alert": SERIES_ALERT,
                "expr": format!("absent({series}) and on () (count(up{{{raw}}} == 1) > 0)"),
                "for": "15m",
                "labels": labels,
                "annotations": {
                    "summary": format!("SLO {} has no data: the series it is computed from are missing.", slo.name),
                    "description": format!(
                        // Annotations are templates: only the metric name and the objective's
                        // name (both grammar-checked) go in, never matcher values from the spec.
                        "Targets of {{{{ $labels.inference_monitoring }}}} are up but none reports {metric} as SLO {} counts it, so it measures nothing: the engine renamed or dropped the series{}; check the engine's release against the catalog and spec.metrics.",
                        slo.name,
                        if slo.model.is_some() {
                            ", or no pod serves the objective's model"
                        } else {
                            ""
                        }
                    ),
                    "runbook_url": super::runbook_url(&spec.runbook_base_url, SERIES_ALERT),
                },
            }));
        }
        let sel = format!(r#"slo="{}",{resource}"#, slo.name);
        for tier in TIERS {
            let pairs: Vec<String> = tier
                .pairs
                .iter()
                .map(|pair| {
                    let limit = number(pair.factor * slo.error_budget());
                    format!(
                        "({ERROR_RATIO_PREFIX}{long}{{{sel}}} > {limit} and {ERROR_RATIO_PREFIX}{short}{{{sel}}} > {limit} and {REQUESTS_PREFIX}{long}{{{sel}}} * {secs} >= {min})",
                        long = pair.long,
                        short = pair.short,
                        secs = pair.long_seconds,
                        min = slo.min_requests,
                    )
                })
                .collect();
            let mut labels = BTreeMap::from([
                ("severity".to_string(), tier.severity.to_string()),
                ("slo_tier".to_string(), tier.name.to_string()),
            ]);
            labels.extend(spec.labels.clone());
            let what = match &slo.threshold {
                Some(t) => format!(
                    "{} of {}s or less",
                    slo.indicator.as_str(),
                    number(t.seconds)
                ),
                None => "requests that do not fail".to_string(),
            };
            rules.push(json!({
                "alert": BURN_ALERT,
                "expr": pairs.join(" or "),
                "labels": labels,
                "annotations": {
                    "summary": format!("The error budget of SLO {} burns too fast ({}).", slo.name, tier.name),
                    "description": format!(
                        "{{{{ $value | humanizePercentage }}}} of requests of {{{{ $labels.inference_monitoring }}}} missed the objective ({what} for {}% of requests over {}d): the error budget burns faster than the {} tier allows.",
                        number(slo.target),
                        slo.window_days,
                        tier.name
                    ),
                    "runbook_url": super::runbook_url(&spec.runbook_base_url, BURN_ALERT),
                },
            }));
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_spec_string_reaches_an_annotation_template() {
        let profile = crate::engines::profile(crate::api::Engine::Vllm).unwrap();
        let resource: crate::api::InferenceMonitoring = serde_json::from_value(json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
            "metadata": {"name": "llm", "namespace": "ai"},
            "spec": {"engine": "vllm", "selector": {}, "slos": [{
                "name": "ttft", "sli": "ttft", "thresholdSeconds": 1.0, "target": 99.0,
                "model": "{{ with query `sum by (namespace) (up)` }}{{ . }}{{ end }}",
            }]},
        }))
        .unwrap();
        let slos =
            crate::validate::resolve(&resource, &crate::validate::ClusterFacts::assumed_offline())
                .unwrap()
                .slos;
        let rules = alerting_rules(
            &slos,
            &profile,
            &AlertsSpec::default(),
            r#"inference_monitoring="ai/llm""#,
            r#"inference_monitoring="ai/llm""#,
        );
        assert!(!rules.is_empty());
        for rule in &rules {
            let annotations = rule["annotations"].to_string();
            assert!(!annotations.contains("query"), "{annotations}");
        }
    }

    #[test]
    fn le_patterns_match_every_spelling() {
        assert_eq!(le_pattern(2.5), "2[.]5");
        assert_eq!(le_pattern(1980.0), "1980|1980[.]0");
        assert_eq!(le_pattern(1_000_000.0), "1000000|1000000[.]0|1e[+]06");
        assert_eq!(le_pattern(0.00015), "0[.]00015");
        assert_eq!(le_pattern(0.00005), "0[.]00005|5e-05");
    }

    #[test]
    fn tiers_follow_the_workbook() {
        let pairs: Vec<(f64, &str, &str)> = TIERS
            .iter()
            .flat_map(|t| t.pairs.iter().map(|p| (p.factor, p.long, p.short)))
            .collect();
        assert_eq!(
            pairs,
            [
                (14.4, "1h", "5m"),
                (6.0, "6h", "30m"),
                (3.0, "1d", "2h"),
                (1.0, "3d", "6h")
            ]
        );
        assert_eq!(number(14.4 * 0.005), "0.072");
    }
}
