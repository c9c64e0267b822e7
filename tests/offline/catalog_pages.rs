//! The catalog against the engines: every series each catalog entry reads, with its type and
//! label matchers, is on the engine's exposition page in `tests/fixtures/engines/`, a page
//! written from that engine's own metric definitions (never from the catalog). A renamed
//! series makes the check fail.

use std::collections::BTreeMap;

use infmon::engines::{EngineProfile, Role, Source, all_profiles, profile};
use infmon_devkit::pages::{Family, families, page};

/// What is wrong with `profile` against `page`'s families; empty when every series is there.
fn problems(profile: &EngineProfile, page: &BTreeMap<String, Family>) -> Vec<String> {
    let sample = |name: &str| -> Option<(&str, &std::collections::BTreeSet<String>)> {
        page.values()
            .find_map(|f| f.samples.get(name).map(|labels| (f.kind.as_str(), labels)))
    };
    let mut problems = Vec::new();
    let mut need = |role: &str, name: &str, kind: Option<&str>, matchers: &str| {
        let Some((found, labels)) = sample(name) else {
            problems.push(format!("{role}: {name} is not on the page"));
            return;
        };
        if let Some(kind) = kind
            && found != kind
        {
            problems.push(format!("{role}: {name} is a {found}, not a {kind}"));
        }
        for label in matcher_labels(matchers) {
            if !labels.contains(&label) {
                problems.push(format!("{role}: {name} has no label {label}"));
            }
        }
    };
    let per_worker = profile.extras.per_worker.iter().flat_map(|view| {
        view.series
            .iter()
            .map(move |s| (format!("perWorker ({})", view.label), &s.source))
    });
    let roles = profile.roles.iter().map(|(r, s)| (r.key().to_string(), s));
    for (role, source) in roles.chain(per_worker) {
        let role = role.as_str();
        match source {
            Source::Counter { name, matchers } => need(role, name, Some("counter"), matchers),
            Source::Gauge { name, matchers, .. } => need(role, name, Some("gauge"), matchers),
            Source::Histogram { name, matchers, .. } => {
                need(role, &format!("{name}_bucket"), Some("histogram"), matchers)
            }
            Source::HistogramSum { name } => {
                need(role, &format!("{name}_sum"), Some("histogram"), "")
            }
            Source::DurationCounter { name, count, .. } => {
                need(role, name, Some("counter"), "");
                need(role, count, Some("counter"), "");
            }
            Source::Approximation { template, .. } => {
                for (name, matchers) in template_series(template) {
                    need(role, &name, None, &matchers);
                }
            }
        }
    }
    if let Some(view) = &profile.extras.per_worker {
        for series in &view.series {
            for name in series.source.series_names() {
                need(
                    "perWorker",
                    &name,
                    None,
                    &format!(r#"{}=~".+""#, view.label),
                );
            }
        }
    }
    let core = profile.core_metric.as_deref().unwrap_or_default();
    need("coreMetric", core, None, "");
    if let Some(label) = profile.model_label.as_deref() {
        need("modelLabel", core, None, &format!(r#"{label}=~".+""#));
    }
    problems
}

/// Label names of matchers such as `status=~"5..",method="POST"`.
fn matcher_labels(matchers: &str) -> Vec<String> {
    matchers
        .split(',')
        .filter_map(|m| m.split(['=', '!']).next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The series a template reads: every name written right before `{{sel}`, with the matchers
/// the template adds after the selector.
fn template_series(template: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in template.match_indices("{{sel}") {
        let name: String = template[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let rest = &template[at + "{{sel}".len()..];
        let matchers = rest
            .strip_prefix(',')
            .and_then(|r| r.split_once('}'))
            .map(|(m, _)| m.to_string())
            .unwrap_or_default();
        found.push((name, matchers));
    }
    assert!(!found.is_empty(), "a template reads no series: {template}");
    found
}

#[test]
fn every_catalog_series_is_on_its_engines_page() {
    let mut all = Vec::new();
    for p in all_profiles() {
        let page = families(&page(p.engine.as_str()));
        all.extend(
            problems(&p, &page)
                .into_iter()
                .map(|e| format!("{}: {e}", p.engine)),
        );
    }
    assert!(
        all.is_empty(),
        "catalog series missing from the engines' pages:\n{}",
        all.join("\n")
    );
}

#[test]
fn a_renamed_catalog_series_fails_the_check() {
    let vllm = profile(infmon::api::Engine::Vllm).unwrap();
    let page = families(&page("vllm"));
    assert!(problems(&vllm, &page).is_empty());
    let mut renamed = vllm.clone();
    for (role, source) in &mut renamed.roles {
        if *role == Role::Ttft
            && let Source::Histogram { name, .. } = source
        {
            *name = "vllm:time_to_first_token".into();
        }
    }
    let found = problems(&renamed, &page);
    assert_eq!(
        found,
        ["ttft: vllm:time_to_first_token_bucket is not on the page"],
        "{found:?}"
    );
    let mut wrong_label = vllm.clone();
    for (role, source) in &mut wrong_label.roles {
        if *role == Role::Errors
            && let Source::Counter { matchers, .. } = source
        {
            *matchers = r#"code=~"5..""#.into();
        }
    }
    assert_eq!(
        problems(&wrong_label, &page),
        ["errors: http_requests_total has no label code"]
    );
}

#[test]
fn pages_are_consistent_histograms() {
    for name in all_profiles()
        .iter()
        .map(|p| p.engine.as_str())
        .chain(["dcgm"])
    {
        let text = page(name);
        let mut buckets: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap();
            assert!(value >= 0.0, "{name}: {line}");
            let (name_part, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty() && !l.starts_with("le="))
                .collect();
            if let Some(base) = name_part.strip_suffix("_bucket") {
                buckets
                    .entry(format!("{base}{labels:?}"))
                    .or_default()
                    .push(value);
            } else if let Some(base) = name_part.strip_suffix("_count") {
                counts.insert(format!("{base}{labels:?}"), value);
            }
        }
        for (key, values) in &buckets {
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "{name}: {key} buckets are not cumulative"
            );
            let count = counts
                .get(key)
                .unwrap_or_else(|| panic!("{name}: {key} has no _count"));
            assert_eq!(
                values.last(),
                Some(count),
                "{name}: {key} _count is not the +Inf bucket"
            );
        }
    }
}

#[test]
fn every_role_of_every_engine_is_in_the_catalog_on_purpose() {
    // The second-tier roles an engine's page has series for are in its catalog entry.
    let expected: [(&str, &[Role]); 3] = [
        (
            "vllm",
            &[
                Role::PrefixCacheHitRate,
                Role::Preemptions,
                Role::QueueTime,
                Role::PrefillTime,
                Role::DecodeTime,
                Role::SpecDecodeAcceptance,
                Role::FinishedReason,
            ],
        ),
        (
            "trtllm",
            &[
                Role::PrefixCacheHitRate,
                Role::QueueTime,
                Role::PrefillTime,
                Role::DecodeTime,
                Role::SpecDecodeAcceptance,
                Role::FinishedReason,
            ],
        ),
        (
            "sglang",
            &[
                Role::PrefixCacheHitRate,
                Role::Preemptions,
                Role::QueueTime,
                Role::SpecDecodeAcceptance,
            ],
        ),
    ];
    for (engine, roles) in expected {
        let p = profile(engine.parse().unwrap()).unwrap();
        for role in roles {
            assert!(p.source(*role).is_some(), "{engine} lacks {role:?}");
        }
    }
}

/// The `le` boundaries (without `+Inf`) of every series `<name>_bucket` on `page`, in order
/// of first appearance.
fn page_boundaries(page: &str, name: &str) -> Vec<f64> {
    let prefix = format!("{name}_bucket{{");
    let mut found: Vec<f64> = Vec::new();
    for line in page.lines().filter(|l| l.starts_with(&prefix)) {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no le label: {line}"));
        if le == "+Inf" {
            continue;
        }
        let le: f64 = le.parse().unwrap_or_else(|_| panic!("bad le: {line}"));
        if !found.contains(&le) {
            found.push(le);
        }
    }
    found
}

#[test]
fn catalog_buckets_are_the_boundaries_the_engines_serve() {
    let mut checked = 0;
    for p in all_profiles() {
        let text = page(p.engine.as_str());
        for (role, bounds) in &p.buckets {
            let Some(Source::Histogram { name, .. }) = p.source(*role) else {
                panic!("{}: {} has buckets but no histogram", p.engine, role.key());
            };
            assert_eq!(
                page_boundaries(&text, name),
                bounds.to_vec(),
                "{}: {}",
                p.engine,
                role.key()
            );
            checked += 1;
        }
        // Every latency histogram an SLO can use has its boundaries in the catalog.
        for role in [Role::Ttft, Role::InterTokenLatency, Role::E2eLatency] {
            if matches!(p.source(role), Some(Source::Histogram { .. })) {
                assert!(
                    p.buckets(role).is_some(),
                    "{}: {} has no buckets",
                    p.engine,
                    role.key()
                );
            }
        }
    }
    assert!(checked >= 20, "only {checked} histograms checked");
    // MAX reports milliseconds: its boundary near 2 s is 1980 on the page.
    let max = profile(infmon::api::Engine::Max).unwrap();
    assert!(max.buckets(Role::Ttft).unwrap().contains(&1980.0));
}
