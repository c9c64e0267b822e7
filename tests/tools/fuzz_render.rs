//! Property test over document → validate → resolve → render: whatever a resource says, nothing
//! panics, an accepted resource always renders, and promtool accepts the rule groups and scrape
//! configs of a sample of accepted resources. Documents mix valid values with the characters
//! and words that broke the grammar before (quotes, backslashes, template delimiters, PromQL
//! keywords, path separators, non-ASCII, huge durations). Bounded: 256 cases, a few seconds.
//!
//! Seeds: every example and every file in tests/invalid runs through the same property first;
//! failures proptest finds are kept in `fuzz_render.proptest-regressions` (committed).

use infmon_devkit as support;

use std::sync::Mutex;

use infmon::render::render_all;
use infmon::render::scrape::{prometheus_yml, raw_scrape_configs};
use infmon::rules;
use infmon::validate::{ClusterFacts, Validated, resolve, validate_document};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};

/// Accepted resources kept for the promtool pass.
const SAMPLE: usize = 40;

/// Strings from pieces that matter to the grammars involved.
fn tricky() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "x_1",
        "sum",
        "on",
        "bool",
        "inf",
        "\"",
        "\\",
        "{{",
        "}}",
        "$",
        "(",
        "(?=x)",
        ".*",
        "..",
        "/",
        ":",
        "=",
        "=~",
        ",",
        " ",
        "é",
        "1",
        "-",
        ".",
        "inference_monitoring",
        "__name__",
        "\n",
    ]);
    prop::collection::vec(pieces, 0..6).prop_map(|p| p.concat())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("vllm".to_string()),
        Just("1vllm".to_string()),
        Just("a.b".to_string()),
        "[a-z0-9][a-z0-9.-]{0,70}",
        tricky(),
    ]
}

fn metric_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("requests_total".to_string()),
        Just("stage_seconds".to_string()),
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        tricky(),
    ]
}

fn matchers() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just(r#"code=~"5..""#.to_string()),
        (tricky(), tricky()).prop_map(|(l, v)| format!("{l}=\"{v}\"")),
        tricky(),
    ])
}

fn mapping(kind: &'static str) -> impl Strategy<Value = Value> {
    (metric_name(), matchers(), "[a-z][a-z0-9]{0,8}").prop_map(move |(name, matchers, title)| {
        let mut m = json!({"name": name, "type": kind, "title": title});
        if let Some(matchers) = matchers {
            m["matchers"] = json!(matchers);
        }
        m
    })
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("15s".to_string()),
        Just("0s".to_string()),
        Just("100000000h".to_string()),
        "[0-9]{1,4}(ms|s|m|h)",
    ]
}

fn relabeling() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "replace",
            "keep",
            "drop",
            "hashmod",
            "labeldrop",
            "lowercase",
        ]),
        tricky(),
        prop::option::of(tricky()),
        prop::option::of(0u64..4),
    )
        .prop_map(|(action, regex, target, modulus)| {
            let mut r = json!({"action": action, "sourceLabels": ["__name__"], "regex": regex});
            if let Some(target) = target {
                r["targetLabel"] = json!(target);
            }
            if let Some(modulus) = modulus {
                r["modulus"] = json!(modulus);
            }
            r
        })
}

fn document() -> impl Strategy<Value = Value> {
    (
        (name(), prop::sample::select(vec!["vllm", "sglang", "custom", "triton"])),
        prop::option::of(prop::collection::vec("[a-z0-9.]{1,12}:[0-9]{1,6}", 1..3)),
        (duration(), duration()),
        prop::collection::vec(relabeling(), 0..3),
        (prop::collection::vec(mapping("histogram"), 0..4), prop::collection::vec(mapping("gauge"), 0..3)),
        prop::option::of(mapping("counter")),
        (tricky(), tricky(), tricky()),
        any::<bool>(),
    )
        .prop_map(
            |((name, engine), hosts, (interval, health), relabelings, (stages, queues), errors, (label, value, runbook), raw)| {
                let mut spec = json!({
                    "engine": engine,
                    "endpoint": {"interval": interval, "scrapeTimeout": "1s", "metricRelabelings": relabelings},
                    "prometheus": {"healthCheckInterval": health},
                    "metrics": {"stages": stages, "queues": queues,
                                "requests": {"name": "requests_total", "type": "counter"}},
                    "alerts": {"labels": {label: value}, "runbookBaseUrl": format!("https://runbooks.example/{runbook}")},
                });
                match hosts {
                    Some(hosts) => spec["staticTargets"] = json!(hosts),
                    None => spec["selector"] = json!({"matchLabels": {"app": "x"}}),
                }
                if engine == "custom" && spec.get("selector").is_some() {
                    spec["endpoint"]["port"] = json!("metrics");
                    spec["endpoint"]["path"] = json!("/metrics");
                }
                if let Some(errors) = errors {
                    spec["metrics"]["errors"] = errors;
                }
                if raw {
                    spec["prometheus"]["output"] = json!("rawScrapeConfig");
                }
                json!({
                    "apiVersion": "monitoring.inference.dev/v1alpha1",
                    "kind": "InferenceMonitoring",
                    "metadata": {"name": name, "namespace": "team-a"},
                    "spec": spec,
                })
            },
        )
}

/// The property: no panic anywhere, and an accepted resource renders.
fn pipeline(document: &Value, sample: &Mutex<Vec<Validated>>) -> Result<(), TestCaseError> {
    let Ok(resource) = validate_document(document) else {
        return Ok(());
    };
    let Ok(validated) = resolve(&resource, &ClusterFacts::assumed_offline()) else {
        return Ok(());
    };
    let rendered = render_all(&validated);
    prop_assert!(
        rendered.is_ok(),
        "accepted but not rendered: {rendered:?}\n{document}"
    );
    // What the API server would refuse: objects over 1.5 MiB, annotations over 256 KiB.
    for child in rendered.unwrap() {
        let size = serde_json::to_vec(&child.object).unwrap().len();
        prop_assert!(size < 1_572_864, "{} is {size} bytes", child.name);
        let annotations = serde_json::to_vec(&child.object["metadata"]["annotations"])
            .unwrap()
            .len();
        prop_assert!(
            annotations < 262_144,
            "{} annotations: {annotations} bytes",
            child.name
        );
    }
    let mut sample = sample.lock().unwrap();
    if sample.len() < SAMPLE {
        sample.push(validated);
    }
    Ok(())
}

fn seeds() -> Vec<Value> {
    let mut seeds = Vec::new();
    for dir in ["examples", "tests/invalid"] {
        for entry in std::fs::read_dir(support::repo_path(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let documents = infmon::manifests::parse_documents(&path, &text).unwrap();
                seeds.extend(documents.into_iter().map(|d| d.value));
            }
        }
    }
    seeds
}

#[test]
fn any_document_validates_and_renders_without_panic_and_promtool_accepts_the_output() {
    let sample = Mutex::new(Vec::new());
    for seed in seeds() {
        pipeline(&seed, &sample).unwrap();
    }
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/tools/fuzz_render.proptest-regressions",
        ))),
        ..Config::default()
    });
    runner
        .run(&document(), |doc| pipeline(&doc, &sample))
        .unwrap_or_else(|e| panic!("{e}"));

    let sample = sample.into_inner().unwrap();
    assert!(
        sample.len() >= 10,
        "too few accepted resources to check: {}",
        sample.len()
    );
    let groups: Vec<Value> = sample
        .iter()
        .filter_map(rules::groups)
        .flat_map(|g| g.as_array().cloned().unwrap_or_default())
        .enumerate()
        .map(|(i, mut group)| {
            group["name"] = json!(format!("sample-{i}"));
            group
        })
        .collect();
    assert!(!groups.is_empty());
    let rules_yaml = serde_yaml::to_string(&json!({"groups": groups})).unwrap();
    support::promtool::check_rules(&rules_yaml).unwrap_or_else(|e| panic!("{e}\n{rules_yaml}"));

    let jobs: Vec<Value> = sample
        .iter()
        .flat_map(|v| raw_scrape_configs(v).unwrap())
        .enumerate()
        .map(|(i, mut job)| {
            job["job_name"] = json!(format!("sample-{i}"));
            // Debian's promtool is built without Kubernetes discovery; what is checked here is
            // everything else of the job (relabelings, metric relabelings, durations, files).
            if let Some(map) = job.as_object_mut()
                && map.remove("kubernetes_sd_configs").is_some()
            {
                map.insert(
                    "static_configs".into(),
                    json!([{"targets": ["127.0.0.1:1"]}]),
                );
            }
            job
        })
        .collect();
    // Every file a job reads stays inside the Prometheus Operator's secrets directory.
    let config = serde_yaml::to_string(&prometheus_yml(jobs)).unwrap();
    for line in config.lines().filter(|l| l.contains("_file:")) {
        let path = line
            .split_once(": ")
            .map(|(_, p)| p.trim())
            .unwrap_or_default();
        let parts: Vec<&str> = path.split('/').collect();
        assert!(
            path.starts_with("/etc/prometheus/secrets/")
                && parts.len() == 6
                && !path.contains(".."),
            "{line}"
        );
    }
    // Syntax only: the Secrets named are not mounted here.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, &config).unwrap();
    support::run(
        std::process::Command::new(support::tools::require(support::tools::Tool::Promtool))
            .args(["check", "config", "--syntax-only"])
            .arg(&file),
    )
    .unwrap_or_else(|e| panic!("{e}\n{config}"));
}
