//! `infmon check` as a pipeline runs it: exit codes 0 / 1 / 2, the table and the JSON.

use infmon_devkit as support;
use infmon_devkit::health_common;

use std::process::{Command, Output};

use health_common::{Proxy, prometheus_config, resource_yaml, vllm_page};
use support::exporter::Exporter;
use support::prometheus::Prometheus;

fn infmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(args)
        .env_remove("INFMON_PROMETHEUS_URL")
        .output()
        .expect("run infmon")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_codes_table_and_json() {
    let exporter = Exporter::start(vllm_page);
    let healthy = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let mut prometheus = Prometheus::start(&prometheus_config(&[&healthy]));
    let dir = tempfile::tempdir().unwrap();
    let healthy_file = dir.path().join("healthy.yaml");
    std::fs::write(&healthy_file, &healthy).unwrap();
    let healthy_file = healthy_file.to_str().unwrap();
    let url = prometheus.url();

    // Polls until healthy (a new target takes ~5.5 s to be scraped).
    let out = infmon(&[
        "check",
        "-f",
        healthy_file,
        "--prometheus",
        &url,
        "--wait",
        "30s",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("RESOURCE   ENGINE  TARGETS  STATUS   MESSAGE"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(
            "demo/chat  vllm    1/1      Healthy  1/1 targets up; vllm:num_requests_running present"
        ),
        "{stdout}"
    );

    let out = infmon(&[
        "check",
        "-f",
        healthy_file,
        "--prometheus",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let resource = &json["resources"][0];
    assert_eq!(resource["resource"], "demo/chat");
    assert_eq!(resource["status"], "True");
    assert_eq!(resource["reason"], "Healthy");
    assert_eq!(
        resource["targets"],
        serde_json::json!({"up": 1, "down": 0, "total": 1})
    );
    assert_eq!(resource["coreMetricPresent"], true);

    // A resource Prometheus has no target for: unhealthy, exit 1.
    let missing_file = dir.path().join("missing.yaml");
    std::fs::write(
        &missing_file,
        resource_yaml("absent", "tgi", &["127.0.0.1:9".to_string()]),
    )
    .unwrap();
    let out = infmon(&[
        "check",
        "-f",
        healthy_file,
        missing_file.to_str().unwrap(),
        "--prometheus",
        &url,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("demo/absent  tgi     0/0      NoTargets"),
        "{stdout}"
    );

    // An unreadable file: could not check, exit 2.
    let out = infmon(&["check", "-f", "/nonexistent.yaml", "--prometheus", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent.yaml"),
        "{}",
        text(&out.stderr)
    );

    // Prometheus stopped: could not check, exit 2, and the table says why.
    prometheus.stop();
    let out = infmon(&["check", "-f", healthy_file, "--prometheus", &url]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("PrometheusUnreachable  cannot reach the query API at http://127.0.0.1:"),
        "{stdout}"
    );
}

#[test]
fn tenant_header_flag_for_a_mimir_style_api() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    let proxy = Proxy::requiring(
        &prometheus.url(),
        "/prometheus",
        Some(("X-Scope-OrgID", "team-a")),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.yaml");
    std::fs::write(&file, &chat).unwrap();
    let file = file.to_str().unwrap();
    let url = proxy.url();

    let out = infmon(&[
        "check",
        "-f",
        file,
        "--prometheus",
        &url,
        "--prometheus-header",
        "X-Scope-OrgID=team-a",
        "--wait",
        "30s",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("demo/chat  vllm    1/1      Healthy"),
        "{stdout}"
    );

    // Without the header: could not check, and the message names what to look at.
    let out = infmon(&["check", "-f", file, "--prometheus", &url]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("HTTP 401 Unauthorized") && stdout.contains("X-Scope-OrgID"),
        "{stdout}"
    );

    // A malformed flag is refused before anything is asked.
    let out = infmon(&[
        "check",
        "-f",
        file,
        "--prometheus",
        &url,
        "--prometheus-header",
        "X-Scope-OrgID",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NAME=VALUE"),
        "{}",
        text(&out.stderr)
    );
}
