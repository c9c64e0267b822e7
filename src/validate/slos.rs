//! `spec.slos` resolved against the engine in effect: each objective's indicator must be a
//! histogram the engine reports (or its error and request counters), and a latency threshold
//! must be one of the histogram's bucket boundaries, so the share of requests under it is
//! counted, not interpolated.

use crate::api::{SloIndicator, SloSpec};
use crate::engines::{EngineProfile, Role, Source, Unit};

use super::error::ResolveError;
use super::grammar::promql_string;

/// A resolved objective, the input of the SLO rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// Name, unique in the resource (the `slo` label).
    pub name: String,
    /// What is measured.
    pub indicator: SloIndicator,
    /// Good requests in percent, in (0, 100).
    pub target: f64,
    /// Compliance window in days.
    pub window_days: u32,
    /// A label matcher on the engine's model label (`model_name="m"`), when only one model
    /// counts.
    pub model_matcher: Option<String>,
    /// The model as written in the spec.
    pub model: Option<String>,
    /// Least requests in an alert pair's long window for its alert to fire.
    pub min_requests: u32,
    /// Latency objectives: the threshold.
    pub threshold: Option<Threshold>,
}

impl Slo {
    /// The share of requests allowed to be bad, e.g. 0.005 for a 99.5 % target.
    pub fn error_budget(&self) -> f64 {
        // Rounded to 12 places so 100 - 99.9 reads 0.001, not 0.0010000000000000009.
        ((100.0 - self.target) / 100.0 * 1e12).round() / 1e12
    }
}

/// A latency threshold and the bucket it selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// In seconds, as written in the spec.
    pub seconds: f64,
    /// The bucket boundary in the histogram's own unit (the `le` value).
    pub le: f64,
}

/// The role an indicator reads.
pub fn indicator_role(indicator: SloIndicator) -> Option<Role> {
    match indicator {
        SloIndicator::Ttft => Some(Role::Ttft),
        SloIndicator::InterTokenLatency => Some(Role::InterTokenLatency),
        SloIndicator::E2eLatency => Some(Role::E2eLatency),
        SloIndicator::Availability => None,
    }
}

fn invalid(field: String, problem: String) -> ResolveError {
    ResolveError::Invalid { field, problem }
}

/// Checks every objective against `profile` (the engine with `spec.metrics` applied).
pub fn resolve_slos(specs: &[SloSpec], profile: &EngineProfile) -> Result<Vec<Slo>, ResolveError> {
    let mut slos: Vec<Slo> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let field = |f: &str| format!("spec.slos[{i}].{f}");
        if slos.iter().any(|s| s.name == spec.name) {
            return Err(invalid(
                field("name"),
                format!(
                    "{:?} is used twice; give each objective its own name",
                    spec.name
                ),
            ));
        }
        if !super::is_dns_label(&spec.name) {
            return Err(invalid(
                field("name"),
                format!(
                    "{:?} is not a DNS label (at most 63 lower-case letters, digits and '-')",
                    spec.name
                ),
            ));
        }
        if !(spec.target > 0.0 && spec.target < 100.0) {
            return Err(invalid(
                field("target"),
                format!(
                    "{} is not a percentage greater than 0 and less than 100; write e.g. 99.5",
                    spec.target
                ),
            ));
        }
        let window_days = spec
            .window
            .strip_suffix('d')
            .and_then(|d| d.parse::<u32>().ok())
            .filter(|d| (1..=99).contains(d))
            .ok_or_else(|| {
                invalid(
                    field("window"),
                    format!(
                        "{:?} is not a number of days from 1d to 99d, e.g. 28d",
                        spec.window
                    ),
                )
            })?;
        if spec.min_requests == 0 {
            return Err(invalid(
                field("minRequests"),
                "must be at least 1".to_string(),
            ));
        }
        let model_matcher = match &spec.model {
            None => None,
            Some(model) => Some(model_matcher(spec, profile, &field("model"), model)?),
        };
        let threshold = match indicator_role(spec.sli) {
            None => {
                if spec.threshold_seconds.is_some() {
                    return Err(invalid(
                        field("thresholdSeconds"),
                        "availability counts failed requests and takes no threshold; remove it"
                            .to_string(),
                    ));
                }
                if profile.source(Role::Errors).is_none()
                    || (profile.source(Role::AllRequests).is_none()
                        && profile.source(Role::Requests).is_none())
                {
                    return Err(invalid(
                        field("sli"),
                        format!(
                            "{} reports no failed-request counter, so availability cannot be measured; map one in spec.metrics.errors or choose a latency indicator",
                            profile.title
                        ),
                    ));
                }
                None
            }
            Some(role) => Some(threshold(spec, profile, role, &field)?),
        };
        slos.push(Slo {
            name: spec.name.clone(),
            indicator: spec.sli,
            target: spec.target,
            window_days,
            model_matcher,
            model: spec.model.clone(),
            min_requests: spec.min_requests,
            threshold,
        });
    }
    Ok(slos)
}

fn model_matcher(
    spec: &SloSpec,
    profile: &EngineProfile,
    field: &str,
    model: &str,
) -> Result<String, ResolveError> {
    let Some(label) = profile.model_label.as_deref() else {
        return Err(invalid(
            field.to_string(),
            format!(
                "{} names no model on its series; remove model (or name the label in spec.metrics.modelLabel)",
                profile.title
            ),
        ));
    };
    if spec.sli == SloIndicator::Availability && !profile.per_model {
        return Err(invalid(
            field.to_string(),
            format!(
                "{} counts failed requests without a model label, so availability is measured for every model; remove model",
                profile.title
            ),
        ));
    }
    Ok(format!("{label}={}", promql_string(model)))
}

fn unit_symbol(unit: Unit) -> &'static str {
    match unit {
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "µs",
        _ => "s",
    }
}

fn threshold(
    spec: &SloSpec,
    profile: &EngineProfile,
    role: Role,
    field: &dyn Fn(&str) -> String,
) -> Result<Threshold, ResolveError> {
    let unit = match profile.source(role) {
        Some(Source::Histogram { unit, .. })
            if matches!(
                unit,
                Unit::Seconds | Unit::Milliseconds | Unit::Microseconds
            ) =>
        {
            *unit
        }
        other => {
            let what = match other {
                None => "does not report it at all".to_string(),
                Some(Source::Approximation { note, .. }) => {
                    format!("only approximates it ({note})")
                }
                Some(Source::DurationCounter { .. }) => {
                    "reports only its total time, a mean, not a histogram".to_string()
                }
                Some(_) => "does not report it as a histogram of durations".to_string(),
            };
            return Err(invalid(
                field("sli"),
                format!(
                    "{} needs a histogram of {}, and {} {what}; the share of requests under a threshold cannot be counted. Choose another indicator, or map a histogram in spec.metrics.{}",
                    spec.sli.as_str(),
                    role.title().to_lowercase(),
                    profile.title,
                    role.key(),
                ),
            ));
        }
    };
    let Some(seconds) = spec.threshold_seconds else {
        return Err(invalid(
            field("thresholdSeconds"),
            format!(
                "a {} objective needs a threshold in seconds, one of the histogram's bucket boundaries",
                spec.sli.as_str()
            ),
        ));
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(invalid(
            field("thresholdSeconds"),
            format!("{seconds} must be a positive number of seconds"),
        ));
    }
    let factor = unit.to_base_factor();
    let value = seconds / factor;
    let Some(bounds) = profile.buckets(role) else {
        // A mapped histogram: its buckets are not in the catalog.
        return Ok(Threshold { seconds, le: value });
    };
    if let Some(le) = bounds.iter().copied().find(|b| same_boundary(*b, value)) {
        return Ok(Threshold { seconds, le });
    }
    Err(invalid(
        field("thresholdSeconds"),
        format!(
            "{seconds} s is not a bucket boundary of {}'s {} histogram ({}), so the share of requests under it could only be interpolated; {}",
            profile.title,
            role.title().to_lowercase(),
            unit_symbol(unit),
            nearest_boundaries(bounds, value, unit),
        ),
    ))
}

/// A bucket boundary `le` (in `unit`) as a user reads it: `2.5 s`, or `1.98 s (1980 ms)`.
pub fn describe_boundary(le: f64, unit: Unit) -> String {
    let secs = (le * unit.to_base_factor() * 1e12).round() / 1e12;
    if unit == Unit::Seconds {
        format!("{secs} s")
    } else {
        format!("{secs} s ({le} {})", unit_symbol(unit))
    }
}

/// The boundaries of `bounds` (ascending, in `unit`) on either side of `value`, as a clause:
/// "the nearest are 1 s and 2.5 s", "the largest is …", "the smallest is …" or "it has none".
pub fn nearest_boundaries(bounds: &[f64], value: f64, unit: Unit) -> String {
    let show = |b: f64| describe_boundary(b, unit);
    let below = bounds.iter().copied().rfind(|b| *b < value).map(show);
    let above = bounds.iter().copied().find(|b| *b > value).map(show);
    match (below, above) {
        (Some(b), Some(a)) => format!("the nearest are {b} and {a}"),
        (Some(b), None) => format!("the largest is {b}"),
        (None, Some(a)) => format!("the smallest is {a}"),
        (None, None) => "it has none".to_string(),
    }
}

/// Whether `served` (an `le` as the engine spells it, parsed) is the boundary `le`, allowing
/// for float spelling (`0.1` against `0.1000000001`).
pub fn same_boundary(served: f64, le: f64) -> bool {
    (served - le).abs() <= 1e-9 * le.abs().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Engine;
    use crate::engines::profile;

    fn spec(sli: SloIndicator, threshold: Option<f64>) -> SloSpec {
        SloSpec {
            name: "s".into(),
            sli,
            threshold_seconds: threshold,
            target: 99.5,
            window: "28d".into(),
            model: None,
            min_requests: 100,
        }
    }

    fn problem(specs: &[SloSpec], engine: Engine) -> String {
        match resolve_slos(specs, &profile(engine).unwrap()).unwrap_err() {
            ResolveError::Invalid { field, problem } => format!("{field}: {problem}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_boundary_in_the_engines_unit_is_accepted() {
        let max = profile(Engine::Max).unwrap();
        let slos = resolve_slos(&[spec(SloIndicator::Ttft, Some(1.98))], &max).unwrap();
        assert_eq!(
            slos[0].threshold,
            Some(Threshold {
                seconds: 1.98,
                le: 1980.0
            })
        );
        assert_eq!(slos[0].window_days, 28);
        assert_eq!(slos[0].error_budget(), 0.005);
        let vllm = profile(Engine::Vllm).unwrap();
        let slos =
            resolve_slos(&[spec(SloIndicator::InterTokenLatency, Some(0.1))], &vllm).unwrap();
        assert_eq!(slos[0].threshold.as_ref().unwrap().le, 0.1);
    }

    #[test]
    fn a_threshold_between_boundaries_names_the_nearest_in_both_units() {
        let max = problem(&[spec(SloIndicator::Ttft, Some(2.0))], Engine::Max);
        assert!(
            max.starts_with("spec.slos[0].thresholdSeconds: 2 s is not a bucket boundary")
                && max.ends_with("the nearest are 1.98 s (1980 ms) and 2.95 s (2950 ms)"),
            "{max}"
        );
        let vllm = problem(&[spec(SloIndicator::Ttft, Some(5000.0))], Engine::Vllm);
        assert!(vllm.ends_with("the largest is 2560 s"), "{vllm}");
    }

    #[test]
    fn tgi_boundaries_keep_their_float_digits_and_a_twelve_digit_threshold_selects_one() {
        let tgi = profile(Engine::Tgi).unwrap();
        let slos = resolve_slos(
            &[spec(SloIndicator::InterTokenLatency, Some(0.498788509512))],
            &tgi,
        )
        .unwrap();
        let le = slos[0].threshold.as_ref().unwrap().le;
        // 0.0001 * 1.5^21 in f64, as TGI computes it and serves it.
        assert_eq!(le.to_string(), "0.49878850951194753");
        let dynamo = problem(
            &[spec(SloIndicator::InterTokenLatency, Some(2.0))],
            Engine::Dynamo,
        );
        assert!(
            dynamo.ends_with("the nearest are 1.2 s and 2.3 s"),
            "{dynamo}"
        );
    }

    #[test]
    fn indicators_the_engine_lacks_are_rejected_with_the_reason() {
        let tgi = problem(&[spec(SloIndicator::Ttft, Some(1.0))], Engine::Tgi);
        assert!(
            tgi.starts_with("spec.slos[0].sli: ttft needs a histogram"),
            "{tgi}"
        );
        assert!(tgi.contains("only approximates it"), "{tgi}");
        let triton = problem(&[spec(SloIndicator::E2eLatency, Some(1.0))], Engine::Triton);
        assert!(triton.contains("only its total time"), "{triton}");
        let llama = problem(&[spec(SloIndicator::Availability, None)], Engine::Llamacpp);
        assert!(
            llama.starts_with(
                "spec.slos[0].sli: llama.cpp server reports no failed-request counter"
            ),
            "{llama}"
        );
    }

    #[test]
    fn fields_are_checked_and_named() {
        let mut bad = spec(SloIndicator::Availability, Some(1.0));
        assert!(problem(&[bad.clone()], Engine::Vllm).starts_with("spec.slos[0].thresholdSeconds"));
        bad.threshold_seconds = None;
        bad.target = 100.0;
        assert!(problem(&[bad.clone()], Engine::Vllm).starts_with("spec.slos[0].target"));
        bad.target = 99.0;
        bad.window = "4w".into();
        assert!(problem(&[bad.clone()], Engine::Vllm).starts_with("spec.slos[0].window"));
        bad.window = "7d".into();
        bad.model = Some("m".into());
        // vLLM counts failures at the HTTP layer, which has no model label.
        assert!(problem(&[bad.clone()], Engine::Vllm).starts_with("spec.slos[0].model"));
        let ok = spec(SloIndicator::Availability, None);
        assert!(problem(&[ok.clone(), ok.clone()], Engine::Vllm).starts_with("spec.slos[1].name"));
        let no_threshold = spec(SloIndicator::Ttft, None);
        assert!(
            problem(&[no_threshold], Engine::Vllm).starts_with("spec.slos[0].thresholdSeconds")
        );
        let mut per_model = spec(SloIndicator::Ttft, Some(1.0));
        per_model.model = Some("llama \"3\"".into());
        let slos = resolve_slos(&[per_model], &profile(Engine::Vllm).unwrap()).unwrap();
        assert_eq!(
            slos[0].model_matcher.as_deref(),
            Some(r#"model_name="llama \"3\"""#)
        );
    }

    #[test]
    fn more_objectives_than_the_crd_allows_are_refused_by_resolve() {
        let slos: Vec<serde_json::Value> = (0..=crate::api::MAX_SLOS)
            .map(|i| serde_json::json!({"name": format!("s{i}"), "sli": "availability", "target": 99}))
            .collect();
        let resource: crate::api::InferenceMonitoring = serde_json::from_value(serde_json::json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1",
            "kind": "InferenceMonitoring",
            "metadata": {"name": "x", "namespace": "llm"},
            "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "x"}}, "slos": slos},
        }))
        .unwrap();
        let err =
            crate::validate::resolve(&resource, &crate::validate::ClusterFacts::assumed_offline())
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("spec.slos: Too many: 17"), "{err}");
    }
}
