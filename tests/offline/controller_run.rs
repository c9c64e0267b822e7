//! `infmon run` against a kubeconfig that points at nothing fails fast with a clear message.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn run_without_a_reachable_api_server_fails_fast_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        r#"apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody, namespace: default}
current-context: nowhere
users:
- name: nobody
  user: {token: not-a-real-token}
"#,
    )
    .unwrap();
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args([
            "run",
            "--metrics-port",
            "0",
            "--probe-port",
            "0",
            "--log-format",
            "text",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(
        stderr.contains("error: cannot reach the Kubernetes API server at https://127.0.0.1:1/"),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
