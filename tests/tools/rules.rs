//! The generated rules: promtool accepts every engine's rule file, the PrometheusRule matches
//! the upstream CRD, every expression parses and reads only catalog series, and the promtool
//! unit tests in tests/promtool/ see each alert fire and stay quiet.
//!
//! Regenerate tests/promtool/*.rules.yml with `make golden`.

use infmon_devkit as support;
use infmon_devkit::lint;

use std::collections::BTreeSet;

use infmon::render::ChildKind;
use infmon::rules::{self, records};
use serde_json::Value;

/// Examples whose rule files are committed for the promtool unit tests.
const GOLDEN: [&str; 4] = ["vllm", "llamacpp", "vllm-slos", "max"];

fn examples() -> impl Iterator<Item = &'static str> {
    lint::ENGINE_EXAMPLES
        .into_iter()
        .chain(["kitchen-sink", "static-targets", "vllm-slos"])
}

#[test]
fn promtool_accepts_every_rule_file() {
    for example in examples() {
        let text = rules::rule_file(&lint::example(example)).expect("alerts enabled");
        support::promtool::check_rules(&text).unwrap_or_else(|e| panic!("{example}: {e}\n{text}"));
    }
}

#[test]
fn prometheus_rules_match_the_upstream_crd_and_carry_monitor_labels() {
    for example in examples() {
        let resource = lint::example(example);
        let children = rules::children(&resource).unwrap();
        assert_eq!(children.len(), 1, "{example}");
        let child = &children[0];
        assert_eq!(child.kind, ChildKind::PrometheusRule);
        assert_eq!(child.namespace, resource.namespace);
        for (key, value) in &resource.monitor_labels {
            assert_eq!(child.object["metadata"]["labels"][key], *value, "{example}");
        }
        assert_eq!(
            child.object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "infmon"
        );
        support::upstream::validate_against_crd(&child.object)
            .unwrap_or_else(|e| panic!("{example}: {e:?}"));
    }
    let kitchen = rules::children(&lint::example("kitchen-sink")).unwrap();
    assert_eq!(
        kitchen[0].object["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let mut bad = kitchen[0].object.clone();
    bad["spec"]["groups"][0]["bogus"] = serde_json::json!(1);
    assert!(
        support::upstream::validate_against_crd(&bad).is_err(),
        "the schema check must reject unknown fields"
    );
}

fn all_rules(groups: &Value) -> Vec<Value> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn every_expression_parses_and_is_filtered_to_the_resource() {
    for example in examples() {
        let resource = lint::example(example);
        let groups = rules::groups(&resource).unwrap();
        let selector = format!(r#"inference_monitoring="{}""#, resource.key());
        let mut allowed: BTreeSet<String> = resource.profile.series_names().into_iter().collect();
        for name in resource.profile.series_names() {
            if let Some(base) = name.strip_suffix("_bucket").or(name.strip_suffix("_sum")) {
                allowed.extend(["_bucket", "_sum", "_count"].map(|s| format!("{base}{s}")));
            }
        }
        for rule in all_rules(&groups) {
            let expr = rule["expr"].as_str().unwrap();
            let what = format!(
                "{example}/{}{}",
                rule["record"].as_str().unwrap_or(""),
                rule["alert"].as_str().unwrap_or("")
            );
            let parsed = lint::parse(&what, expr);
            assert!(
                expr.contains(&selector),
                "{what} is not filtered to the resource: {expr}"
            );
            for metric in lint::metric_names(&parsed) {
                let ok = allowed.contains(&metric)
                    || metric.starts_with("inference:")
                    || metric == "up"
                    || template_names(&resource).contains(&metric);
                assert!(ok, "{what}: {metric} is not in the catalog: {expr}");
            }
        }
    }
}

fn template_names(resource: &infmon::validate::Validated) -> BTreeSet<String> {
    resource
        .profile
        .roles
        .iter()
        .filter_map(|(_, s)| match s {
            infmon::engines::Source::Approximation { template, .. } => Some(template.to_string()),
            _ => None,
        })
        .flat_map(|t| {
            let expr = t
                .replace("{sel}", "a=\"b\"")
                .replace("{by}", "pod")
                .replace("{q}", "0.5")
                .replace("{w}", "1m");
            lint::metric_names(&lint::parse("template", &expr))
        })
        .collect()
}

#[test]
fn records_and_alerts_follow_the_engine_roles_and_the_spec() {
    let vllm = rules::groups(&lint::example("vllm")).unwrap();
    let names: Vec<String> = all_rules(&vllm)
        .iter()
        .map(|r| {
            r["record"]
                .as_str()
                .or(r["alert"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    for record in [
        records::TTFT_P95,
        records::ERROR_RATIO,
        records::KV_CACHE_USAGE,
        records::GENERATION_TOKENS,
    ] {
        assert!(names.iter().any(|n| n == record), "vllm lacks {record}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| !n.contains(':'))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "InferenceTimeToFirstTokenHigh",
            "InferenceInterTokenLatencyHigh",
            "InferenceErrorRatioHigh",
            "InferenceQueueBacklog",
            "InferencePreemptions",
            "InferenceTargetDown",
            "InferenceMetricsMissing"
        ]
    );
    // vLLM's model label becomes `model`; TGI has none.
    let ttft = all_rules(&vllm)
        .into_iter()
        .find(|r| r["record"] == records::TTFT_P95)
        .unwrap();
    assert!(
        ttft["expr"]
            .as_str()
            .unwrap()
            .starts_with(r#"label_replace(histogram_quantile(0.95"#)
    );
    // llama.cpp: no TTFT, no error counter, no KV cache: no such records or alerts.
    let llama = all_rules(&rules::groups(&lint::example("llamacpp")).unwrap());
    let llama_names: Vec<&str> = llama
        .iter()
        .filter_map(|r| r["record"].as_str().or(r["alert"].as_str()))
        .collect();
    assert!(!llama_names.iter().any(|n| n.contains("ttft")
        || n.contains("FirstToken")
        || n.contains("Error")
        || n.contains("KV")));
    // The kitchen sink's thresholds, runbook base and labels.
    let kitchen = all_rules(&rules::groups(&lint::example("kitchen-sink")).unwrap());
    let ttft_alert = kitchen
        .iter()
        .find(|r| r["alert"] == "InferenceTimeToFirstTokenHigh")
        .unwrap();
    assert!(ttft_alert["expr"].as_str().unwrap().ends_with("> 1.5"));
    assert_eq!(ttft_alert["labels"]["team"], "ml-platform");
    assert_eq!(
        ttft_alert["annotations"]["runbook_url"],
        "https://runbooks.example.com/inference/InferenceTimeToFirstTokenHigh"
    );
    for alert in kitchen.iter().filter(|r| r["alert"].is_string()) {
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{alert}"
            );
        }
    }
    // Without alerts the recording rules stay (the overview dashboard reads them); with
    // dashboards off too, no rules are generated.
    let mut disabled = lint::example("vllm");
    disabled.alerts = None;
    let groups = rules::groups(&disabled).unwrap();
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["infmon:llm/vllm:recording"]);
    disabled.dashboards = None;
    assert!(rules::rule_file(&disabled).is_none());
    assert!(rules::children(&disabled).unwrap().is_empty());
}

#[test]
fn committed_rule_files_match_and_promtool_unit_tests_pass() {
    let dir = support::repo_path("tests/promtool");
    let update = std::env::var_os("INFMON_UPDATE_GOLDEN").is_some();
    for example in GOLDEN {
        let text = rules::rule_file(&lint::example(example)).unwrap();
        let path = dir.join(format!("{example}.rules.yml"));
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "{} is stale: run `make golden`",
            path.display()
        );
    }
    support::promtool::test_rules(&dir).unwrap_or_else(|e| panic!("{e}"));
}
