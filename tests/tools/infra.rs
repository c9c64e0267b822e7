//! Self-test of the shared test support: every helper runs the real tool and is shown to
//! both accept good input and reject bad input.

use infmon_devkit as support;

use std::time::Duration;

use serde_json::json;
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};
use support::{http, promtool, upstream};

fn counter_body(n: u64) -> String {
    format!(
        "# HELP infmon_selftest_requests_total Requests.\n\
         # TYPE infmon_selftest_requests_total counter\n\
         infmon_selftest_requests_total{{engine=\"fake\"}} {}\n",
        n + 1
    )
}

fn static_config(target: &str) -> String {
    format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n\
         - job_name: selftest\n  \
           static_configs: [{{targets: ['{target}']}}]\n"
    )
}

#[test]
fn exporter_serves_fresh_bodies_404s_and_refuses_after_stop() {
    let mut exporter = Exporter::start(counter_body);
    let first = http::get(&exporter.url()).expect("exporter answers");
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(first.body.contains("} 1\n"), "{}", first.body);
    let second = http::get(&exporter.url()).expect("exporter answers");
    assert!(second.body.contains("} 2\n"), "{}", second.body);
    assert_eq!(exporter.scrapes(), 2);

    let other = http::get(&format!("http://{}/other", exporter.addr())).unwrap();
    assert_eq!(other.status, 404);
    exporter.set_not_found(true);
    assert_eq!(http::get(&exporter.url()).unwrap().status, 404);
    assert_eq!(exporter.scrapes(), 2, "404 answers are not scrapes");

    let custom = Exporter::builder()
        .path("/custom")
        .not_found()
        .start(|_| String::new());
    assert_eq!(
        custom.url(),
        format!("http://127.0.0.1:{}/custom", custom.port())
    );
    assert_eq!(http::get(&custom.url()).unwrap().status, 404);

    let url = exporter.url();
    exporter.stop();
    let err = http::get(&url).expect_err("stopped exporter must refuse connections");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn prometheus_scrapes_exporter_then_sees_it_refuse_connections() {
    let mut exporter = Exporter::start(counter_body);
    let mut prometheus = Prometheus::start(&static_config(&exporter.addr()));

    let target = prometheus.wait_for_target(&exporter.url(), "up");
    assert_eq!(target["labels"]["job"], "selftest");
    assert_eq!(target["labels"]["instance"], exporter.addr());

    // The counter advances between scrapes.
    let mut last = Vec::new();
    let advanced = prometheus.wait_until(TARGET_TIMEOUT, POLL, |p| {
        last = p.query_values("infmon_selftest_requests_total");
        last.first().is_some_and(|(_, v)| *v >= 2.0)
    });
    assert!(advanced, "no advancing sample; last result {last:?}");
    let (labels, _) = &last[0];
    assert_eq!(labels["engine"], "fake");
    assert_eq!(labels["job"], "selftest");

    exporter.stop();
    let down = prometheus.wait_for_target(&exporter.url(), "down");
    let last_error = down["lastError"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("connection refused"),
        "lastError: {last_error}"
    );
    let up = prometheus.query_values("up{job=\"selftest\"}");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].1, 0.0);

    let url = prometheus.url();
    prometheus.stop();
    assert!(
        http::get(&format!("{url}/-/ready")).is_err(),
        "a stopped Prometheus must be unreachable"
    );
}

#[test]
fn prometheus_file_sd_target_written_before_start_sees_a_404() {
    let exporter = Exporter::builder().not_found().start(counter_body);
    let prometheus = Prometheus::start_with(|dir| {
        let targets = dir.join("targets.json");
        std::fs::write(
            &targets,
            json!([{"targets": [exporter.addr()], "labels": {"pod": "vllm-0"}}]).to_string(),
        )
        .unwrap();
        format!(
            "global: {{scrape_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: filesd\n  \
               file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
            targets.display()
        )
    });
    let target = prometheus.wait_for_target(&exporter.url(), "down");
    assert_eq!(target["labels"]["pod"], "vllm-0");
    let last_error = target["lastError"].as_str().unwrap_or_default();
    assert!(last_error.contains("404"), "lastError: {last_error}");

    // A file written after start is picked up by file_sd too: the exporter recovers.
    exporter.set_not_found(false);
    prometheus.write_file(
        "targets.json",
        &json!([{"targets": [exporter.addr()], "labels": {"pod": "vllm-1"}}]).to_string(),
    );
    let ok = prometheus.wait_until(TARGET_TIMEOUT, POLL, |p| {
        p.target(&exporter.url())
            .is_some_and(|t| t["labels"]["pod"] == "vllm-1" && t["health"] == "up")
    });
    assert!(ok, "targets: {:#}", prometheus.targets());
}

#[test]
#[should_panic(expected = "Prometheus did not become ready")]
fn prometheus_with_a_bad_config_fails_loudly() {
    Prometheus::start("scrape_configs: [{job_name: x, kubernetes_sd_configs: [{role: pod}]}]\n");
}

fn service_monitor() -> serde_json::Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "vllm", "namespace": "llm", "labels": {"app": "vllm"}},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "scheme": "http"}]
        }
    })
}

#[test]
fn upstream_crd_validation_accepts_valid_and_rejects_invalid_objects() {
    assert!(upstream::dir().join("crds").is_dir());
    upstream::validate_against_crd(&service_monitor()).expect("valid ServiceMonitor");

    let mut unknown = service_monitor();
    unknown["spec"]["endpoints"][0]["bogusField"] = json!(true);
    let errors = upstream::validate_against_crd(&unknown).expect_err("unknown field");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/spec/endpoints/0: ") && e.contains("bogusField")),
        "{errors:?}"
    );

    let mut bad_interval = service_monitor();
    bad_interval["spec"]["endpoints"][0]["interval"] = json!("15 seconds");
    let errors = upstream::validate_against_crd(&bad_interval).expect_err("bad interval");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/spec/endpoints/0/interval: ")),
        "{errors:?}"
    );

    let errors = upstream::validate_against_crd(&json!({"apiVersion": "v1", "kind": "Nope"}))
        .expect_err("no CRD for this kind");
    assert!(errors[0].contains("no upstream CRD"), "{errors:?}");

    let kinds = upstream::known_kinds();
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "GrafanaDashboard",
    ] {
        assert!(
            kinds.iter().any(|(_, k)| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
}

#[test]
fn kubernetes_validate_checks_core_kinds_strictly() {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: vllm, namespace: llm}\n\
                   spec: {selector: {app: vllm}, ports: [{name: http, port: 8000}]}\n";
    // CRD-based documents are left out.
    let with_monitor = format!(
        "{service}---\n{}",
        serde_yaml::to_string(&service_monitor()).unwrap()
    );
    let output = support::kubernetes_validate(&with_monitor).expect("valid Service");
    assert!(output.contains("passed"), "{output}");

    let unknown = service.replace("ports:", "bogus: 1, ports:");
    let err = support::kubernetes_validate(&unknown).expect_err("unknown field");
    assert!(err.contains("bogus"), "{err}");

    let wrong_type = service.replace("port: 8000", "port: eighty");
    assert!(support::kubernetes_validate(&wrong_type).is_err());

    let unknown_kind = "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: x}\n";
    assert!(
        support::kubernetes_validate(unknown_kind).is_err(),
        "a kind without schema fails"
    );
}

#[test]
fn promtool_checks_configs_and_rules() {
    let valid = static_config("127.0.0.1:9");
    let output = promtool::check_config(&valid).expect("valid config");
    assert!(output.contains("SUCCESS"), "{output}");
    let slow = "global: {scrape_interval: 5s, scrape_timeout: 10s}\nscrape_configs: [{job_name: x, static_configs: [{targets: ['127.0.0.1:9']}]}]\n";
    let err = promtool::check_config(slow).expect_err("scrape_timeout > scrape_interval");
    assert!(
        err.contains("scrape timeout greater than scrape interval"),
        "{err}"
    );

    let rules = "groups:\n- name: infmon\n  rules:\n  \
                 - record: job:up:sum\n    expr: sum by (job) (up)\n";
    promtool::check_rules(rules).expect("valid rules");
    let bad = rules.replace("sum by (job) (up)", "sum by (job) (up");
    assert!(promtool::check_rules(&bad).is_err());

    let tests = "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n\
                 - interval: 1m\n  input_series:\n  \
                 - {series: 'up{job=\"a\",pod=\"x\"}', values: '1 1 1'}\n  \
                 - {series: 'up{job=\"a\",pod=\"y\"}', values: '1 0 1'}\n  \
                 promql_expr_test:\n  \
                 - {expr: 'job:up:sum', eval_time: 1m, exp_samples: [{labels: 'job:up:sum{job=\"a\"}', value: 1}]}\n";
    promtool::test_rules_with(rules, tests).expect("rule unit test passes");
    let wrong = tests.replace("value: 1}", "value: 2}");
    assert!(promtool::test_rules_with(rules, &wrong).is_err());
}

#[test]
fn helm_runs_offline() {
    let version = support::helm::run(&["version", "--short"]).expect("helm version");
    assert!(version.starts_with("v3."), "{version}");
    assert!(support::helm::run(&["lint", "/nonexistent-chart"]).is_err());
}

#[test]
fn wait_until_polls_until_true_or_timeout() {
    let mut calls = 0;
    assert!(support::wait_until(
        Duration::from_secs(1),
        Duration::from_millis(1),
        || {
            calls += 1;
            calls == 3
        }
    ));
    assert!(!support::wait_until(
        Duration::from_millis(20),
        Duration::from_millis(5),
        || false
    ));
}
