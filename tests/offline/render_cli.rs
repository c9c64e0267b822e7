//! `infmon render` as a user runs it: exit codes (0 ok, 1 invalid input, 2 unreadable),
//! clear messages naming the field, nothing on stdout on failure, and byte-identical output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn render(args: &[&str], files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infmon"))
        .arg("render")
        .args(args)
        .arg("-f")
        .args(files)
        .output()
        .expect("run infmon")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failure with this exit code, an empty stdout and every `needle` in stderr.
fn assert_fails(output: &Output, code: i32, needles: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
    assert!(
        output.stdout.is_empty(),
        "stdout on failure: {:?}",
        output.stdout
    );
    for needle in needles {
        assert!(
            stderr(output).contains(needle),
            "stderr lacks {needle:?}:\n{}",
            stderr(output)
        );
    }
}

fn temp_file(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), contents).unwrap();
    file
}

#[test]
fn output_is_byte_identical_across_runs() {
    let examples: Vec<PathBuf> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let files: Vec<&Path> = examples.iter().map(PathBuf::as_path).collect();
    let first = render(&["--engine", "vllm"], &files);
    let second = render(&["--engine", "vllm"], &files);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(first.stdout.len() > 10_000);
    assert_eq!(first.stdout, second.stdout);

    let static_targets = repo("examples/static-targets.yaml");
    let a = render(&["--format", "prometheus"], &[&static_targets]);
    let b = render(&["--format", "prometheus"], &[&static_targets]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn children_of_several_files_come_out_sorted_by_kind() {
    let output = render(
        &[],
        &[
            &repo("examples/vllm.yaml"),
            &repo("examples/kitchen-sink.yaml"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    // vllm: shared dashboard ConfigMaps (vllm, overview) in its namespace, PodMonitor,
    // PrometheusRule; kitchen-sink: the same two dashboards and the GPU one in monitoring, and
    // the shared DCGM exporter's counters ConfigMap, Service, DaemonSet and ServiceMonitor.
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Service",
            "DaemonSet",
            "PodMonitor",
            "PodMonitor",
            "ServiceMonitor",
            "PrometheusRule",
            "PrometheusRule",
        ]
    );
}

#[test]
fn unreadable_input_exits_2() {
    assert_fails(
        &render(&[], &[Path::new("/nonexistent/monitoring.yaml")]),
        2,
        &["cannot read /nonexistent/monitoring.yaml"],
    );
    let broken = temp_file("spec: [unclosed\n");
    assert_fails(&render(&[], &[broken.path()]), 2, &["invalid YAML"]);
    let empty = temp_file("# nothing here\n");
    assert_fails(&render(&[], &[empty.path()]), 2, &["no documents"]);
}

#[test]
fn invalid_resources_exit_1_naming_the_field() {
    assert_fails(
        &render(&[], &[&repo("tests/invalid/unknown-engine.yaml")]),
        1,
        &["unknown-engine: invalid", "spec.engine", "ollama"],
    );
    assert_fails(
        &render(&[], &[&repo("tests/invalid/unknown-field.yaml")]),
        1,
        &["spec", "selectr"],
    );
    // One bad document fails the whole run, and nothing is printed for the good one.
    assert_fails(
        &render(
            &[],
            &[
                &repo("examples/vllm.yaml"),
                &repo("tests/invalid/port-zero.yaml"),
            ],
        ),
        1,
        &["spec.endpoint.port"],
    );
}

#[test]
fn auto_needs_an_engine_offline() {
    let auto = repo("examples/auto-detect.yaml");
    // Offline there are no pods: the message says so and lists the engines to pass, rather
    // than reporting a failed detection.
    let output = render(&[], &[&auto]);
    assert_fails(
        &output,
        1,
        &[
            "spec.engine",
            "offline",
            "pass --engine ENGINE",
            "vllm",
            "sglang",
            "llamacpp",
        ],
    );
    assert!(
        !stderr(&output).contains("selected pods"),
        "{}",
        stderr(&output)
    );
    let output = render(&["--engine", "sglang"], &[&auto]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("portNumber: 30000"), "{text}");
    assert!(text.contains("replacement: sglang"), "{text}");

    let bad = render(&["--engine", "ollama"], &[&auto]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("unknown engine \"ollama\""),
        "{}",
        stderr(&bad)
    );
    let auto_engine = render(&["--engine", "auto"], &[&auto]);
    assert_eq!(auto_engine.status.code(), Some(2));
    assert!(
        stderr(&auto_engine).contains("not auto"),
        "{}",
        stderr(&auto_engine)
    );
}

#[test]
fn unresolvable_ports_exit_1() {
    // A custom engine has no preset port to fall back on.
    assert_fails(
        &render(
            &["--engine", "custom"],
            &[&repo("examples/auto-detect.yaml")],
        ),
        1,
        &["spec.endpoint.port", "custom"],
    );
    let static_with_port = temp_file(
        "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\nmetadata: {name: s, namespace: default}\nspec:\n  engine: vllm\n  staticTargets: [10.0.0.1:8000]\n  endpoint: {port: metrics}\n",
    );
    assert_fails(
        &render(&[], &[static_with_port.path()]),
        1,
        &["spec.endpoint.port", "host:port"],
    );
}

#[test]
fn selectors_kubernetes_would_reject_exit_1() {
    let bad = temp_file(
        "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\nmetadata: {name: x, namespace: llm}\nspec:\n  engine: vllm\n  selector:\n    matchExpressions: [{key: tier, operator: Equals, values: [a]}]\n",
    );
    assert_fails(
        &render(&[], &[bad.path()]),
        1,
        &[
            ": x: invalid",
            "spec.selector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist",
        ],
    );
}

#[test]
fn prometheus_format_needs_static_targets() {
    assert_fails(
        &render(&["--format", "prometheus"], &[&repo("examples/vllm.yaml")]),
        1,
        &["llm/vllm", "spec.selector", "--format kubernetes"],
    );
}
