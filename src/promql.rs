//! PromQL built from the engine catalog: one expression per [`Source`], already scaled to
//! seconds or a 0–1 ratio, shared by the dashboards and the recording rules so both read the
//! engine's series the same way.

use crate::engines::{Source, Unit};

/// Where and how an expression aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    /// Label matchers without braces, e.g. `namespace=~"$namespace"`; never empty (catalog
    /// templates append matchers after it).
    pub sel: &'a str,
    /// Grouping labels, e.g. `namespace, pod`.
    pub by: &'a str,
    /// Rate window, e.g. `5m` or `$__rate_interval`.
    pub window: &'a str,
}

/// Whether the source has a distribution, so different quantiles give different values.
/// Counters, gauges, duration counters (a mean) and templates without `{q}` do not.
pub fn has_quantiles(source: &Source) -> bool {
    match source {
        Source::Histogram { unit, .. } => *unit != Unit::Count,
        Source::Approximation { template, .. } => template.contains("{q}"),
        _ => false,
    }
}

/// Seconds spent per second in a duration histogram (the rate of its `_sum`, converted),
/// summed by `scope.by`; `None` for other sources. Dividing one stage's by the total of all
/// stages gives its share of request time.
pub fn time_spent(source: &Source, scope: &Scope) -> Option<String> {
    let Source::Histogram {
        name,
        matchers,
        unit,
    } = source
    else {
        return None;
    };
    let Scope { sel, by, window } = *scope;
    Some(scaled(
        format!(
            "sum by ({by}) (rate({}[{window}]))",
            series(&format!("{name}_sum"), sel, matchers)
        ),
        *unit,
    ))
}

/// The expression for a source, in seconds, ratios or plain counts per second:
///
/// - counters and token histograms: the per-second rate, summed;
/// - gauges: summed (counts) or averaged (ratios, percentages);
/// - duration histograms: the quantile `q`; count histograms (batch sizes): the mean;
/// - duration counters: the mean (sum rate over count rate);
/// - approximations: the catalog's template with the placeholders filled in.
pub fn expr(source: &Source, q: f64, scope: &Scope) -> String {
    let Scope { sel, by, window } = *scope;
    match source {
        Source::Counter { name, matchers } => {
            format!(
                "sum by ({by}) (rate({}[{window}]))",
                series(name, sel, matchers)
            )
        }
        Source::Gauge {
            name,
            matchers,
            unit,
        } => {
            let op = match unit {
                Unit::Ratio | Unit::Percent => "avg",
                _ => "sum",
            };
            scaled(
                format!("{op} by ({by}) ({})", series(name, sel, matchers)),
                *unit,
            )
        }
        Source::Histogram {
            name,
            matchers,
            unit: Unit::Count,
        } => format!(
            "sum by ({by}) (rate({}[{window}])) / sum by ({by}) (rate({}[{window}]))",
            series(&format!("{name}_sum"), sel, matchers),
            series(&format!("{name}_count"), sel, matchers),
        ),
        Source::Histogram {
            name,
            matchers,
            unit,
        } => scaled(
            format!(
                "histogram_quantile({q}, sum by ({by}, le) (rate({}[{window}])))",
                series(&format!("{name}_bucket"), sel, matchers)
            ),
            *unit,
        ),
        Source::HistogramSum { name } => format!(
            "sum by ({by}) (rate({}[{window}]))",
            series(&format!("{name}_sum"), sel, "")
        ),
        Source::DurationCounter { name, count, unit } => scaled(
            format!(
                "sum by ({by}) (rate({}[{window}])) / sum by ({by}) (rate({}[{window}]))",
                series(name, sel, ""),
                series(count, sel, "")
            ),
            *unit,
        ),
        Source::Approximation { template, .. } => template
            .replace("{sel}", sel)
            .replace("{by}", by)
            .replace("{q}", &q.to_string())
            .replace("{w}", window),
    }
}

/// What a reader should know about how the expression relates to the engine's series: the
/// approximation note, the unit conversion, or that a mean stands in for quantiles.
pub fn caveat(source: &Source) -> Option<String> {
    match source {
        Source::Approximation { note, .. } => Some(note.to_string()),
        Source::DurationCounter { unit, .. } => Some(format!(
            "The engine reports a cumulative duration counter, not a histogram: this is the mean, the same at every quantile; converted from {} to seconds.",
            unit_name(*unit)
        )),
        Source::Histogram {
            unit: Unit::Count, ..
        } => Some("Mean per engine step (histogram sum over count).".to_string()),
        Source::Histogram { unit, .. } | Source::Gauge { unit, .. }
            if unit.to_base_factor() != 1.0 =>
        {
            Some(format!(
                "The engine reports {}; converted in the query.",
                unit_name(*unit)
            ))
        }
        _ => None,
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "seconds",
        Unit::Milliseconds => "milliseconds",
        Unit::Microseconds => "microseconds",
        Unit::Ratio => "a ratio",
        Unit::Percent => "a percentage",
        Unit::Count => "a count",
        Unit::TokensPerSecond => "tokens per second",
        Unit::Megabytes => "megabytes",
        Unit::Bytes => "bytes",
    }
}

/// `name{sel,matchers}`.
/// `name{sel,matchers}`, leaving out whichever part is empty.
pub(crate) fn series(name: &str, sel: &str, matchers: &str) -> String {
    let all: Vec<&str> = [sel, matchers]
        .into_iter()
        .filter(|m| !m.is_empty())
        .collect();
    if all.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", all.join(","))
    }
}

fn scaled(expr: String, unit: Unit) -> String {
    let factor = unit.to_base_factor();
    if factor == 1.0 {
        expr
    } else {
        format!("{expr} * {factor}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Engine;
    use crate::engines::{Role, profile};

    const SCOPE: Scope = Scope {
        sel: r#"pod=~"$pod""#,
        by: "pod",
        window: "5m",
    };

    fn source(engine: Engine, role: Role) -> Source {
        profile(engine).unwrap().source(role).unwrap().clone()
    }

    #[test]
    fn histograms_become_quantiles_in_seconds() {
        assert_eq!(
            expr(&source(Engine::Vllm, Role::Ttft), 0.95, &SCOPE),
            r#"histogram_quantile(0.95, sum by (pod, le) (rate(vllm:time_to_first_token_seconds_bucket{pod=~"$pod"}[5m])))"#
        );
        assert_eq!(
            expr(&source(Engine::Max, Role::Ttft), 0.5, &SCOPE),
            r#"histogram_quantile(0.5, sum by (pod, le) (rate(maxserve_time_to_first_token_milliseconds_bucket{pod=~"$pod"}[5m]))) * 0.001"#
        );
    }

    #[test]
    fn triton_durations_are_means_in_seconds() {
        let e2e = source(Engine::Triton, Role::E2eLatency);
        assert!(!has_quantiles(&e2e));
        assert_eq!(
            expr(&e2e, 0.95, &SCOPE),
            r#"sum by (pod) (rate(nv_inference_request_duration_us{pod=~"$pod"}[5m])) / sum by (pod) (rate(nv_inference_request_success{pod=~"$pod"}[5m])) * 0.000001"#
        );
        assert!(caveat(&e2e).unwrap().contains("microseconds"));
    }

    #[test]
    fn matchers_and_templates_are_filled_in() {
        assert_eq!(
            expr(&source(Engine::Vllm, Role::Errors), 0.5, &SCOPE),
            r#"sum by (pod) (rate(http_requests_total{pod=~"$pod",status=~"5.."}[5m]))"#
        );
        let tgi = expr(&source(Engine::Tgi, Role::Ttft), 0.99, &SCOPE);
        assert!(
            tgi.contains(
                r#"tgi_batch_inference_duration_bucket{pod=~"$pod",method="prefill"}[5m]"#
            )
        );
        assert!(tgi.starts_with("histogram_quantile(0.99, sum by (pod, le)"));
        assert_eq!(
            expr(&source(Engine::Max, Role::KvCacheUsage), 0.5, &SCOPE),
            r#"histogram_quantile(0.5, sum by (pod, le) (rate(maxserve_cache_used_kv_pct_percent_bucket{pod=~"$pod"}[5m]))) * 0.01"#
        );
    }

    #[test]
    fn only_distributions_have_quantiles() {
        assert!(has_quantiles(&source(Engine::Tgi, Role::Ttft)));
        assert!(!has_quantiles(&source(
            Engine::Llamacpp,
            Role::InterTokenLatency
        )));
        assert!(!has_quantiles(&source(Engine::Vllm, Role::BatchSize)));
        assert!(!has_quantiles(&source(Engine::Vllm, Role::Requests)));
    }
}
