//! `infmon render --format prometheus` output loaded by a real Prometheus: promtool accepts it
//! and the static target (a loopback exporter) is scraped with the infmon target labels.

use infmon_devkit as support;

use std::process::Command;

use serde_json::json;
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};

#[test]
fn rendered_prometheus_yml_scrapes_a_static_target() {
    let exporter = Exporter::builder()
        .path("/prometheus/metrics")
        .start(|n| format!("trtllm_request_success_total {n}\n"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("host.yaml");
    std::fs::write(
        &input,
        format!(
            "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\nmetadata: {{name: box, namespace: edge}}\nspec:\n  engine: trtllm\n  staticTargets: [\"{}\"]\n  endpoint: {{interval: 1s, scrapeTimeout: 1s}}\n",
            exporter.addr()
        ),
    )
    .unwrap();
    let rules_file = dir.path().join("infmon-rules.yml");
    let output = Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(["render", "--format", "prometheus", "-f"])
        .arg(&input)
        .arg("--rules-file")
        .arg(&rules_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = String::from_utf8(output.stdout).unwrap();
    support::promtool::check_config(&config)
        .unwrap_or_else(|err| panic!("promtool rejects the rendered prometheus.yml: {err}"));

    let prometheus = Prometheus::start(&config);
    // trtllm-serve's path comes from the engine catalog.
    let target = prometheus.wait_for_target(&exporter.url(), "up");
    assert_eq!(
        target["labels"],
        json!({
            "inference_engine": "trtllm",
            "inference_monitoring": "edge/box",
            "instance": exporter.addr(),
            "job": "edge/box",
            "namespace": "edge",
            "pod": exporter.addr(),
        })
    );
    let mut series = Vec::new();
    let scraped = prometheus.wait_until(TARGET_TIMEOUT, POLL, |p| {
        series = p.query_values("trtllm_request_success_total");
        !series.is_empty()
    });
    assert!(scraped, "no samples of the static target");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].0["inference_monitoring"], "edge/box");

    // The rule file written beside it is listed in rule_files and loaded.
    let rule_text = std::fs::read_to_string(&rules_file).unwrap();
    support::promtool::check_rules(&rule_text)
        .unwrap_or_else(|err| panic!("promtool rejects the rules: {err}"));
    let groups = prometheus.rules()["groups"].clone();
    let mut names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    // /api/v1/rules does not promise an order.
    names.sort_unstable();
    assert_eq!(
        names,
        ["infmon:edge/box:alerts", "infmon:edge/box:recording"]
    );
}
