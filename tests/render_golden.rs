//! Golden files for `infmon render`: every example (and the extra inputs in
//! `tests/golden/inputs/`) rendered as Kubernetes YAML, and the static-targets example as a
//! prometheus.yml. Every rendered object also passes the real schemas: monitoring kinds
//! against the upstream Prometheus Operator CRDs, core kinds with `kubernetes-validate --strict`.
//!
//! Regenerate after an intended change with `make golden`
//! (`INFMON_UPDATE_GOLDEN=1 cargo test --test render_golden`) and review the diff.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const UPDATE_ENV: &str = "INFMON_UPDATE_GOLDEN";
const UPDATE_HINT: &str = "make golden   (INFMON_UPDATE_GOLDEN=1 cargo test --test render_golden)";

/// Every input: `examples/*.yaml` and `tests/golden/inputs/*.yaml`, sorted by file name.
fn inputs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/golden/inputs"] {
        for entry in std::fs::read_dir(support::repo_path(dir)).expect("input dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|p| p.file_name().map(ToOwned::to_owned));
    assert!(files.len() >= 13, "inputs missing: {files:?}");
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// `infmon render -f FILE --engine vllm [--format FORMAT]` (`--engine` only matters for
/// `engine: auto`). Panics unless it exits 0.
fn render(input: &Path, format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(["render", "--engine", "vllm", "--format", format, "-f"])
        .arg(input)
        .output()
        .expect("run infmon");
    assert!(
        output.status.success(),
        "infmon render -f {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Every (golden file, rendered text) pair.
fn rendered() -> Vec<(PathBuf, String)> {
    let golden = support::repo_path("tests/golden");
    let mut pairs: Vec<(PathBuf, String)> = inputs()
        .iter()
        .map(|input| {
            (
                golden.join(format!("{}.yaml", stem(input))),
                render(input, "kubernetes"),
            )
        })
        .collect();
    pairs.push((
        golden.join("static-targets.prometheus.yml"),
        render(
            &support::repo_path("examples/static-targets.yaml"),
            "prometheus",
        ),
    ));
    pairs
}

#[test]
fn golden_files_match() {
    let pairs = rendered();
    let update = std::env::var_os(UPDATE_ENV).is_some();
    let mut drift = Vec::new();
    for (path, text) in &pairs {
        if update {
            std::fs::write(path, text).expect("write golden file");
        } else if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            drift.push(path.display().to_string());
        }
    }
    assert!(
        drift.is_empty(),
        "rendered output differs from the golden files:\n  {}\nIf the change is intended, regenerate them with\n  {UPDATE_HINT}\nand review the diff.",
        drift.join("\n  ")
    );
    // No golden file without an input.
    let expected: Vec<&PathBuf> = pairs.iter().map(|(p, _)| p).collect();
    let stale: Vec<PathBuf> = std::fs::read_dir(support::repo_path("tests/golden"))
        .expect("golden dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && !expected.contains(&p))
        .collect();
    assert!(
        stale.is_empty(),
        "golden files without an input (delete them): {stale:?}"
    );
}

#[test]
fn monitoring_objects_validate_against_upstream_crds() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for input in inputs() {
        for doc in support::yaml_docs(&render(&input, "kubernetes")) {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            if !api_version.starts_with("monitoring.coreos.com/") {
                continue;
            }
            checked += 1;
            if let Err(errors) = support::upstream::validate_against_crd(&doc) {
                failures.push(format!(
                    "{} {} from {}:\n    {}",
                    doc["kind"],
                    doc["metadata"]["name"],
                    input.display(),
                    errors.join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} monitoring objects checked");
}

#[test]
fn core_objects_pass_kubernetes_validate_strict() {
    let all: String = inputs()
        .iter()
        .map(|input| render(input, "kubernetes"))
        .collect();
    let kinds: Vec<String> = support::yaml_docs(&all)
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in ["DaemonSet", "Service", "Secret"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} rendered");
    }
    if let Err(output) = support::kubernetes_validate(&all) {
        panic!("kubernetes-validate --strict 1.33 failed:\n{output}");
    }
}
