//! Golden files for `infmon render`: every example (and the extra inputs in
//! `tests/golden/inputs/`) rendered as Kubernetes YAML, and the static-targets example as a
//! prometheus.yml. Every rendered monitoring object also passes the upstream Prometheus
//! Operator CRD schemas (core kinds are checked with `kubernetes-validate` in the tools suite).
//!
//! Regenerate after an intended change with `make golden`
//! (`INFMON_UPDATE_GOLDEN=1 cargo test --test offline render_golden`) and review the diff.

use infmon_devkit as support;

use std::path::{Path, PathBuf};

use support::golden::{inputs, stem};

fn render(input: &Path, format: &str) -> String {
    support::golden::render(env!("CARGO_BIN_EXE_infmon"), input, format)
}

const UPDATE_ENV: &str = "INFMON_UPDATE_GOLDEN";
const UPDATE_HINT: &str =
    "make golden   (INFMON_UPDATE_GOLDEN=1 cargo test --test offline render_golden)";

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
