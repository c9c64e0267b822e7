//! Development support for infmon, kept out of its public library: what the test binaries
//! share (real tools, a scripted API server, PromQL linting, loopback exporters) and the demo
//! stand-ins for GPU servers (`infmon-demo-exporter`).
//!
//! The test binaries (`tests/offline`, `tests/tools`) use it as `infmon_devkit`. A test that
//! needs a missing tool fails (panics) with install instructions; nothing is ever skipped
//! silently. `make tools` (`.ci/install-tools`) installs everything, and `make test` runs it.

pub mod api_emulator;
pub mod exporter;
pub mod fixtures;
pub mod golden;
pub mod health_common;
pub mod helm;
pub mod http;
pub mod lint;
pub mod mock_api;
pub mod pages;
pub mod prometheus;
pub mod promtool;
pub mod tools;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (two levels above this crate's `tests/support`).
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("the repository root exists")
    })
}

/// Polls `condition` every `poll` until it returns true or `timeout` has passed. Returns
/// whether it became true; callers assert on it with a message of their own. The condition
/// is always evaluated at least once, and once more at the deadline.
pub fn wait_until(timeout: Duration, poll: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

/// Parses a (multi-document) YAML string into JSON values, skipping empty documents.
/// Panics on invalid YAML.
pub fn yaml_docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|err| panic!("invalid YAML: {err}\n{yaml}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Runs a command to completion. `Ok(stdout + stderr)` when it exits 0, `Err(stdout +
/// stderr)` otherwise (including the exit status). Panics when it cannot be started.
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{command:?} failed ({}):\n{text}", output.status))
    }
}

/// API groups whose kinds are custom resources: `kubernetes_validate` has no schema for them
/// (validate those with [`upstream::validate_against_crd`]).
pub const CRD_API_GROUPS: &[&str] = &[
    "monitoring.coreos.com",
    "grafana.integreatly.org",
    "monitoring.inference.dev",
];

/// Validates the core-kind documents of a (multi-document) YAML string with
/// `kubernetes-validate --strict -k 1.33.0`: wrong types and unknown fields are errors.
///
/// Documents whose apiVersion group is in [`CRD_API_GROUPS`] are left out. Any other kind
/// that kubernetes-validate has no schema for (it only prints a WARN and exits 0) is
/// reported as an error too. `Ok(output)` when everything passed, including when no core
/// document was left to check; `Err(output)` otherwise.
pub fn kubernetes_validate(yaml: &str) -> Result<String, String> {
    let core: Vec<Value> = yaml_docs(yaml)
        .into_iter()
        .filter(|doc| {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
            !CRD_API_GROUPS.contains(&group)
        })
        .collect();
    if core.is_empty() {
        return Ok("no core documents to validate".into());
    }
    let text: String = core
        .iter()
        .map(|doc| {
            let yaml = serde_yaml::to_string(doc).expect("a JSON value serializes to YAML");
            format!("---\n{yaml}")
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, &text).expect("write manifests");
    let result = run(
        Command::new(tools::require(tools::Tool::KubernetesValidate))
            .args(["--strict", "-k", "1.33.0"])
            .arg(&file),
    );
    match result {
        Ok(output)
            if output
                .lines()
                .any(|l| l.starts_with("WARN") || l.starts_with("ERROR")) =>
        {
            Err(format!("kubernetes-validate warned:\n{output}\n{text}"))
        }
        Ok(output) => Ok(output),
        Err(output) => Err(format!("{output}\n{text}")),
    }
}

/// Path of a repo-relative file, for tests that take inputs from the source tree.
pub fn repo_path(relative: impl AsRef<Path>) -> PathBuf {
    repo_root().join(relative)
}
