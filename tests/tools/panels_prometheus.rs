//! Every panel returns data: a real Prometheus scrapes loopback exporters serving the pages
//! of tests/fixtures/engines/ (written from each engine's and the DCGM exporter's own metric
//! definitions, not from the catalog) with the target labels a real infmon scrape attaches;
//! only resources whose series come from `spec.metrics` get pages made from their mapping.
//! It evaluates the generated recording rules and answers every panel query and variable of
//! every dashboard with at least one series, in the right units.

use infmon_devkit as support;
use infmon_devkit::lint;

use std::time::Duration;

use infmon::api::Engine;
use infmon::dashboards::{EMBEDDED, generate};
use infmon::engines;
use infmon::rules::rule_file;
use infmon_devkit::fixtures::{FIXTURE_MODEL, engine_page};
use serde_json::Value;
use support::exporter::Exporter;
use support::pages::{self, PAGE_MODEL};
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};

/// How long rates and recording rules may take to have data once targets are up.
const DATA_TIMEOUT: Duration = Duration::from_secs(45);

struct Query {
    what: String,
    expr: String,
    unit: String,
}

#[test]
fn every_panel_and_variable_returns_data_from_a_real_prometheus() {
    let mut resources: Vec<_> = lint::ENGINE_EXAMPLES
        .iter()
        .chain(&lint::MAPPED_EXAMPLES)
        .map(|e| lint::example(e))
        .collect();
    resources.push(lint::resource(
        "custom milliseconds",
        lint::CUSTOM_MILLISECONDS,
    ));
    let pod = |name: &str| format!("{name}-0");

    let mut exporters = Vec::new();
    let mut jobs = String::new();
    for resource in &resources {
        let profile = resource.profile.clone();
        let builder = Exporter::builder().path(profile.path);
        let exporter = if engine_page_applies(resource) {
            let page = pages::page(resource.engine.as_str());
            builder.start(move |tick| pages::scrape(&page, tick))
        } else {
            builder.start(move |tick| engine_page(&profile, tick))
        };
        let engine = resource.engine.as_str();
        let name = resource.name.as_str();
        jobs.push_str(&format!(
            "  - job_name: {name}\n    metrics_path: {path}\n    static_configs:\n      - targets: ['{addr}']\n        labels: {{namespace: {ns}, pod: {pod}, container: server, inference_engine: {engine}, inference_monitoring: '{key}'}}\n",
            path = exporter.path(),
            addr = exporter.addr(),
            ns = resource.namespace,
            pod = pod(name),
            key = resource.key(),
        ));
        exporters.push(exporter);
    }
    let workloads: Vec<(String, String)> = resources
        .iter()
        .map(|r| (r.namespace.clone(), pod(&r.name)))
        .collect();
    // The DCGM page's GPU once per workload pod, as the exporter reports one GPU per pod.
    let dcgm_page = pages::page("dcgm");
    let dcgm = Exporter::start(move |tick| {
        let mut text = String::new();
        for (gpu, (namespace, pod)) in workloads.iter().enumerate() {
            let page = dcgm_page
                .replace(
                    r#"namespace="gpu-workloads""#,
                    &format!(r#"namespace="{namespace}""#),
                )
                .replace(r#"pod="gpu-workload-0""#, &format!(r#"pod="{pod}""#))
                .replace(r#"gpu="0""#, &format!(r#"gpu="{gpu}""#));
            let page = if gpu == 0 {
                page
            } else {
                page.lines()
                    .filter(|l| !l.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            text.push_str(&pages::scrape(&page, tick));
        }
        text
    });
    // The exporter's own pod labels, overridden by the GPU workloads' (honor_labels), as
    // infmon's DCGM scrape does.
    jobs.push_str(&format!(
        "  - job_name: dcgm\n    honor_labels: true\n    static_configs:\n      - targets: ['{}']\n        labels: {{namespace: gpu-operator, pod: dcgm-exporter-x, container: exporter}}\n",
        dcgm.addr()
    ));

    let builder = Prometheus::builder();
    let rule_paths: Vec<String> = resources
        .iter()
        .map(|r| {
            let text = rule_file(r).expect("examples enable alerts");
            builder
                .write_file(&format!("rules/{}.yml", r.name), &text)
                .display()
                .to_string()
        })
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}\nscrape_configs:\n{jobs}",
        rule_paths
            .iter()
            .map(|p| format!("  - {p}\n"))
            .collect::<String>()
    );
    let prometheus = builder.start(&config);

    let expected_targets = resources.len() + 1;
    let up = prometheus.wait_until(TARGET_TIMEOUT, POLL, |p| {
        let targets = p.active_targets();
        targets.len() == expected_targets && targets.iter().all(|t| t["health"] == "up")
    });
    assert!(up, "targets not up: {:#}", prometheus.targets());
    for group in prometheus.rules()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "rule failed: {rule:#}");
        }
    }

    let queries = queries(&resources);
    // The generic service dashboard of the custom example has every kind of mapped panel.
    for panel in [
        "Latency by stage (p95)",
        "Share of request time by stage",
        "Queue sizes",
        "Requests per worker",
        "GPU memory used",
        "GPU utilisation",
        "End-to-end latency",
    ] {
        assert!(
            queries
                .iter()
                .any(|q| q.what.starts_with(&format!("reranker/{panel} "))),
            "the custom service dashboard lacks {panel:?}"
        );
    }
    let mut empty: Vec<&Query> = Vec::new();
    let mut answers: Vec<(&Query, Vec<(Value, f64)>)> = Vec::new();
    let ready = support::wait_until(DATA_TIMEOUT, POLL * 2, || {
        answers = queries
            .iter()
            .map(|q| (q, prometheus.query_values(&q.expr)))
            .collect();
        empty = answers
            .iter()
            .filter(|(_, r)| r.is_empty())
            .map(|(q, _)| *q)
            .collect();
        empty.is_empty()
    });
    assert!(
        ready,
        "{} of {} queries returned no series:\n{}",
        empty.len(),
        queries.len(),
        empty
            .iter()
            .map(|q| format!("  {}: {}", q.what, q.expr))
            .collect::<Vec<_>>()
            .join("\n")
    );

    for (query, samples) in &answers {
        for (labels, value) in samples {
            let ok = match query.unit.as_str() {
                // Fixture latencies lie between 25 ms and 2.5 s (TGI's approximation adds two).
                "s" => *value > 0.01 && *value < 6.0,
                "percentunit" => (0.0..=1.0).contains(value),
                _ => value.is_finite() && *value >= 0.0,
            };
            assert!(
                ok,
                "{}: {value} {} out of range for {labels}: {}",
                query.what, query.unit, query.expr
            );
        }
    }
    // A custom service reporting milliseconds is recorded in seconds. No panel reads this
    // record, so wait for its first evaluation.
    let mut recorded = Vec::new();
    let evaluated = prometheus.wait_until(DATA_TIMEOUT, POLL, |p| {
        recorded = p.query_values(
            r#"inference:e2e_latency_seconds:p95{inference_monitoring="search/embedder"}"#,
        );
        !recorded.is_empty()
    });
    assert!(evaluated, "no e2e record for the custom service");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(
        recorded[0].1 > 0.01 && recorded[0].1 < 3.0,
        "custom service e2e p95 not in seconds: {recorded:?}"
    );

    // MAX reports milliseconds, Triton microseconds: both are seconds once queried.
    let max_ttft = answers
        .iter()
        .find(|(q, _)| q.what.starts_with("max/Time to first token"))
        .unwrap();
    assert!(
        max_ttft.1[0].1 < 3.0,
        "MAX TTFT not in seconds: {:?}",
        max_ttft.1
    );

    // The silent-breakage guard stays quiet while targets are up, and a target that goes
    // down is reported as down, not as missing metrics.
    let alert_names = |p: &Prometheus, state: &str| -> Vec<(String, String)> {
        p.alerts()
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == state || state.is_empty())
            .map(|a| {
                let labels = &a["labels"];
                (
                    labels["alertname"].as_str().unwrap().to_string(),
                    labels["inference_monitoring"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let noisy: Vec<_> = alert_names(&prometheus, "")
        .into_iter()
        .filter(|(name, _)| name == "InferenceMetricsMissing" || name == "InferenceTargetDown")
        .collect();
    assert!(noisy.is_empty(), "alerts on healthy targets: {noisy:?}");
    let llamacpp = lint::ENGINE_EXAMPLES
        .iter()
        .position(|e| *e == "llamacpp")
        .unwrap();
    exporters[llamacpp].stop();
    let down = (
        "InferenceTargetDown".to_string(),
        "llm/llamacpp".to_string(),
    );
    let pending = prometheus.wait_until(TARGET_TIMEOUT, POLL, |p| {
        alert_names(p, "pending").contains(&down)
    });
    assert!(
        pending,
        "no pending InferenceTargetDown: {:#}",
        prometheus.alerts()
    );
    let missing = (
        "InferenceMetricsMissing".to_string(),
        "llm/llamacpp".to_string(),
    );
    assert!(!alert_names(&prometheus, "").contains(&missing));
}

/// Whether the resource reads its engine's preset series, so the engine's own page applies;
/// resources with `spec.metrics` mappings or a custom service get pages made from the mapping.
fn engine_page_applies(resource: &infmon::validate::Validated) -> bool {
    resource.engine != Engine::Custom
        && engines::profile(resource.engine).as_ref() == Some(&resource.profile)
}

/// The model label value the resource's page carries.
fn page_model(resource: &infmon::validate::Validated) -> &'static str {
    match resource.engine {
        _ if !engine_page_applies(resource) => FIXTURE_MODEL,
        // Triton's models are the ensemble's; the LLM series are the tensorrt_llm model's.
        Engine::Triton => "tensorrt_llm",
        _ => PAGE_MODEL,
    }
}

/// Every panel query and variable selector of every dashboard, with the variables set to
/// one concrete choice each (engine dashboards: that engine's fixture pod and model): the
/// embedded dashboards, and the ones generated for resources with `spec.metrics`.
fn queries(resources: &[infmon::validate::Validated]) -> Vec<Query> {
    let embedded = EMBEDDED.iter().map(|(name, json)| {
        let resource = resources.iter().find(|r| r.engine.as_str() == *name);
        (name.to_string(), json.to_string(), resource)
    });
    let generated = resources
        .iter()
        .filter(|r| engines::profile(r.engine).as_ref() != Some(&r.profile))
        .map(|r| {
            let json = generate::resource_dashboard(r).to_json().to_string();
            (r.name.clone(), json, Some(r))
        });
    let mut queries = Vec::new();
    for (name, json, resource) in embedded.chain(generated) {
        let dashboard: Value = serde_json::from_str(&json).unwrap();
        let pod = resource.map_or(".*".to_string(), |r| format!("{}-0", r.name));
        let namespace = resource.map_or("llm", |r| r.namespace.as_str());
        let values = lint::Values {
            namespace,
            pod: &pod,
            model: match resource {
                Some(r) if r.profile.model_label.is_some() => page_model(r),
                _ => ".*",
            },
            engine: ".*",
        };
        for panel in dashboard["panels"].as_array().unwrap() {
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
            for target in panel["targets"].as_array().unwrap() {
                queries.push(Query {
                    what: format!(
                        "{name}/{} [{}]",
                        panel["title"].as_str().unwrap(),
                        target["legendFormat"].as_str().unwrap()
                    ),
                    expr: lint::substitute(target["expr"].as_str().unwrap(), &values),
                    unit: unit.to_string(),
                });
            }
        }
        for (variable, selector) in lint::variable_selectors(&dashboard) {
            queries.push(Query {
                what: format!("{name}/variable {variable}"),
                expr: lint::substitute(&selector, &values),
                unit: String::new(),
            });
        }
    }
    queries
}
