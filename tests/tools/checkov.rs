//! Checkov, a Kubernetes policy linter this project did not write, over everything infmon puts
//! into a cluster: `helm template` of the chart with the default values and with each values
//! file in `charts/infmon/ci/` (and the e2e values), and `infmon render` of every example.
//!
//! Each chart rendering is scanned on its own (Checkov's graph checks, such as "pods without a
//! NetworkPolicy", look across the files of one scan), the examples together, with Checkov's
//! Kubernetes checks and the extra one in `tests/checkov/checks/`. Accepted findings are listed with their reasons
//! in `tests/checkov/exceptions.yaml`; any other finding fails, and so does an exception that
//! no longer matches anything.

use infmon_devkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use support::tools::{self, Tool};

const NAMESPACE: &str = "infmon-system";

/// How many Checkov processes run at once (each takes a few seconds of CPU).
const PARALLEL: usize = 3;

/// One accepted finding.
#[derive(Debug, Deserialize)]
struct Exception {
    /// Checkov's check id, e.g. `CKV_K8S_38`.
    check: String,
    /// Patterns of `<rendering>: <resource>`; `*` matches anything.
    #[serde(rename = "where")]
    places: Vec<String>,
    /// Why it is accepted.
    reason: String,
}

/// One failed check.
#[derive(Debug)]
struct Finding {
    check: String,
    name: String,
    /// `<rendering>: <resource>`.
    place: String,
}

fn exceptions() -> Vec<Exception> {
    let path = support::repo_path("tests/checkov/exceptions.yaml");
    let text = std::fs::read_to_string(&path).expect("tests/checkov/exceptions.yaml");
    let exceptions: Vec<Exception> =
        serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    for exception in &exceptions {
        assert!(
            exception.reason.trim().len() > 10 && !exception.places.is_empty(),
            "{}: every exception needs a reason and a place",
            exception.check
        );
    }
    exceptions
}

/// Whether `text` matches `pattern`, in which `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// `helm template` of the chart: (rendering name, YAML) for the default values, each values
/// file in `charts/infmon/ci/` and the e2e values.
fn chart_renderings() -> Vec<(String, String)> {
    let chart = support::repo_path("charts/infmon");
    let mut values: Vec<(String, Option<PathBuf>)> = vec![("default".into(), None)];
    let mut ci: Vec<PathBuf> = std::fs::read_dir(chart.join("ci"))
        .expect("charts/infmon/ci")
        .map(|entry| entry.unwrap().path())
        .collect();
    ci.sort();
    values.extend(ci.into_iter().map(|path| {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        (stem, Some(path))
    }));
    values.push((
        "e2e-values".into(),
        Some(support::repo_path("e2e/values.yaml")),
    ));
    values
        .into_iter()
        .map(|(name, file)| {
            let chart = chart.display().to_string();
            let mut args = vec![
                "template".to_string(),
                "infmon".into(),
                chart,
                "--namespace".into(),
                NAMESPACE.into(),
                "--kube-version".into(),
                "1.33.0".into(),
            ];
            if let Some(file) = file {
                args.extend(["--values".into(), file.display().to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let yaml = support::helm::run(&args).unwrap_or_else(|err| panic!("{name}: {err}"));
            (format!("chart-{name}"), yaml)
        })
        .collect()
}

/// `infmon render` of every example: (rendering name, YAML). `engine: auto` resources are
/// rendered as vLLM (offline, no pods can be inspected).
fn example_renderings() -> Vec<(String, String)> {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(support::repo_path("examples"))
        .expect("examples/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    examples.sort();
    examples
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let yaml = support::run(
                Command::new(env!("CARGO_BIN_EXE_infmon"))
                    .args(["render", "--engine", "vllm", "-f"])
                    .arg(&path),
            )
            .unwrap_or_else(|err| panic!("{name}: {err}"));
            (format!("example-{name}"), yaml)
        })
        .collect()
}

/// Runs Checkov over renderings scanned together. Returns its failed checks and how many
/// resources and passed checks it saw.
fn checkov(checkov: &Path, renderings: &[(String, String)]) -> (Vec<Finding>, u64, u64) {
    // Not a dot-directory (tempfile's default): Checkov skips hidden directories.
    let dir = tempfile::Builder::new()
        .prefix("checkov-")
        .tempdir()
        .expect("temp dir");
    for (name, yaml) in renderings {
        std::fs::write(dir.path().join(format!("{name}.yaml")), yaml).expect("write rendering");
    }
    let output = Command::new(checkov)
        .arg("--directory")
        .arg(dir.path())
        .args(["--framework", "kubernetes", "--output", "json", "--quiet"])
        // No calls to the vendor's platform: no API key, no guideline download.
        .arg("--skip-download")
        .arg("--external-checks-dir")
        .arg(support::repo_path("tests/checkov/checks"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", checkov.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = renderings.iter().map(|(name, _)| name.as_str()).collect();
    // Exit status 1 means "findings"; anything it could not scan shows in the report.
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "{names:?}: checkov printed no JSON report ({err}, {}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    // A scan that found nothing to check prints the summary alone.
    let summary = report.get("summary").unwrap_or(&report);
    assert_eq!(summary["parsing_errors"], 0, "{names:?}: {summary}");
    let findings = report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|failed| {
            // `/<rendering>.yaml`, relative to the scanned directory.
            let file = failed["file_path"].as_str().unwrap_or_default();
            let rendering = file.trim_start_matches('/').trim_end_matches(".yaml");
            Finding {
                check: failed["check_id"].as_str().unwrap_or_default().to_string(),
                name: failed["check_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                place: format!(
                    "{rendering}: {}",
                    failed["resource"].as_str().unwrap_or_default()
                ),
            }
        })
        .collect();
    (
        findings,
        summary["resource_count"].as_u64().unwrap_or_default(),
        summary["passed"].as_u64().unwrap_or_default(),
    )
}

/// Whether a rendering holds an object of a built-in kind (Checkov has no checks for the
/// Prometheus Operator's or Grafana Operator's custom resources).
fn has_builtin_kinds(yaml: &str) -> bool {
    support::yaml_docs(yaml).iter().any(|doc| {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        !support::CRD_API_GROUPS.contains(&group)
    })
}

/// Runs one Checkov scan per group of renderings, a few at a time. Returns all findings, and
/// panics when Checkov saw nothing in a group that holds built-in kinds.
fn scan(groups: &[Vec<(String, String)>]) -> Vec<Finding> {
    let checkov_path = tools::require(Tool::Checkov);
    let mut findings = Vec::new();
    for batch in groups.chunks(PARALLEL) {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|group| {
                    let checkov_path = &checkov_path;
                    scope.spawn(move || (group, checkov(checkov_path, group)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (group, (found, resources, passed)) in results {
            if group.iter().any(|(_, yaml)| has_builtin_kinds(yaml)) {
                assert!(
                    resources > 0 && passed + found.len() as u64 > 0,
                    "{:?}: Checkov checked nothing ({resources} resources, {passed} passed)",
                    group.iter().map(|(name, _)| name).collect::<Vec<_>>()
                );
            }
            findings.extend(found);
        }
    }
    findings
}

/// Findings no exception accepts, as readable lines.
fn unaccepted(findings: &[Finding], exceptions: &[Exception]) -> Vec<String> {
    findings
        .iter()
        .filter(|finding| {
            !exceptions.iter().any(|exception| {
                exception.check == finding.check
                    && exception.places.iter().any(|p| glob(p, &finding.place))
            })
        })
        .map(|f| format!("{} {:?} at {}", f.check, f.name, f.place))
        .collect()
}

#[test]
fn checkov_finds_nothing_beyond_the_accepted_exceptions() {
    // Each chart rendering alone (they are alternative installs, and a NetworkPolicy in one
    // must not cover the pods of another); the examples together, as one cluster holds them.
    let charts = chart_renderings();
    let examples = example_renderings();
    assert!(charts.len() >= 5 && examples.len() >= 10);
    let mut groups: Vec<Vec<(String, String)>> =
        charts.into_iter().map(|chart| vec![chart]).collect();
    groups.push(examples);
    let findings = scan(&groups);
    let exceptions = exceptions();

    let new = unaccepted(&findings, &exceptions);
    assert!(
        new.is_empty(),
        "Checkov findings that tests/checkov/exceptions.yaml does not accept (fix them, or \
         add an entry with the reason they are by design):\n{}",
        new.join("\n")
    );
    let stale: Vec<String> = exceptions
        .iter()
        .flat_map(|exception| {
            exception
                .places
                .iter()
                .filter(|place| {
                    !findings
                        .iter()
                        .any(|f| f.check == exception.check && glob(place, &f.place))
                })
                .map(move |place| format!("{} at {place}", exception.check))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "entries in tests/checkov/exceptions.yaml that match no finding any more (remove \
         them):\n{}",
        stale.join("\n")
    );
}

/// The lint can fail: a privileged pod's findings are not accepted by the exceptions.
#[test]
fn a_privileged_pod_is_reported() {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: infmon, namespace: {NAMESPACE}}}\n\
         spec:\n  hostNetwork: true\n  containers:\n    - name: operator\n      image: infmon:latest\n\
         \x20     securityContext: {{privileged: true}}\n"
    );
    let findings = scan(&[vec![("chart-default".to_string(), pod)]]);
    let new = unaccepted(&findings, &exceptions());
    for check in ["CKV_K8S_16", "CKV_K8S_19"] {
        assert!(
            new.iter().any(|line| line.starts_with(check)),
            "{check} (privileged container, host network) not reported: {new:#?}"
        );
    }
}

#[test]
fn glob_matches_stars_only() {
    assert!(glob(
        "chart-*: Deployment.*.infmon",
        "chart-ha: Deployment.infmon-system.infmon"
    ));
    assert!(glob("example-x: Pod.*", "example-x: Pod.llm.a.b"));
    assert!(glob("exact", "exact"));
    assert!(!glob("exact", "exact-not"));
    assert!(!glob("chart-*: Pod.*", "example-x: Pod.llm"));
    assert!(!glob("a*b*c", "a-c-b"));
}
